/*
 * server.c - ferryd's process: the libevent loop, the signals (stop,
 * reload), the order in which everything is set up and torn down, the
 * configuration in force and what a reload may change of it, the pid file,
 * what systemd hears (ready, status, watchdog, stopping), and the durable
 * log's place in that order (opened before any listener, closed last).
 *
 * Knows the parts it wires together by their interfaces only: sockets are
 * listeners.c's, frames conn.c's, the sd-daemon protocol service.c's, the
 * log durable.c's.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker.h"
#include "conn.h"
#include "durable.h"
#include "listeners.h"
#include "service.h"

/* File descriptors kept beyond the connections (listeners, log, libevent). */
#define FD_RESERVE 64
/* How often systemd's STATUS= line is brought up to date. */
#define STATUS_INTERVAL_S 5

struct server {
    struct config cfg;          /* in force; owned */
    server_reload_fn *reload;
    void *reload_arg;
    struct event_base *base;
    struct broker *broker;
    struct durable *durable;    /* NULL: no durable queue; owned */
    enum queue_fsync log_fsync; /* the strongest policy the log was opened for */
    struct conn_set *conns;
    struct listener_set *listeners;
    struct event *sigint_ev;
    struct event *sigterm_ev;
    struct event *sighup_ev;
    struct event *stop_timer;     /* bounds the graceful stop */
    struct event *status_timer;   /* STATUS= for systemd, when it listens */
    struct event *watchdog_timer; /* WATCHDOG=1, when systemd asks for it */
    bool stopping;
    time_t limit_logged_at;       /* rate limit of the max-connections warning */
    char pid_file[CONFIG_PATH_MAX + 1]; /* the one written, removed at exit */
    int exit_status;
};

/* ---- what systemd hears --------------------------------------------------------- */

/* A short live summary: "3 connections, 120 messages in 2 queues". */
static void format_status(const struct server *s, char *out, size_t size)
{
    snprintf(out, size, "%zu connections, %" PRIu64 " messages in %zu queues",
             conn_set_count(s->conns), broker_message_count(s->broker),
             broker_queue_count(s->broker));
}

static void on_status_timer(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;
    char status[128];
    format_status(s, status, sizeof status);
    service_status(status);
}

static void on_watchdog_timer(evutil_socket_t fd, short what, void *arg)
{
    service_watchdog_ping();
}

/* Persistent timers; the watchdog's at half of systemd's interval, so
 * that one late turn of the loop does not get ferryd killed. */
static int start_service_timers(struct server *s)
{
    if (service_notify_enabled()) {
        s->status_timer = event_new(s->base, -1, EV_PERSIST, on_status_timer, s);
        struct timeval tv = { .tv_sec = STATUS_INTERVAL_S };
        if (!s->status_timer || event_add(s->status_timer, &tv) != 0)
            return -1;
    }
    uint64_t usec = service_watchdog_usec();
    if (usec > 0) {
        uint64_t half = usec / 2;
        s->watchdog_timer = event_new(s->base, -1, EV_PERSIST, on_watchdog_timer, s);
        struct timeval tv = { .tv_sec = (time_t)(half / 1000000u),
                              .tv_usec = (suseconds_t)(half % 1000000u) };
        if (!s->watchdog_timer || event_add(s->watchdog_timer, &tv) != 0)
            return -1;
        log_info("systemd watchdog: pinging every %" PRIu64 " ms", half / 1000u);
    }
    return 0;
}

/* ---- the pid file ----------------------------------------------------------------- */

/* Written once every listener is open, so that its presence means a
 * server that can be reached; written aside and renamed, so that a
 * reader never sees it empty; removed at exit. */
static int write_pid_file(struct server *s)
{
    const char *path = s->cfg.pid_file;
    if (!path[0])
        return 0;
    char tmp[CONFIG_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        log_error("cannot write pid file %s: %s", path, strerror(errno));
        return -1;
    }
    char text[32];
    int len = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    bool ok = fchmod(fd, 0644) == 0 && write(fd, text, (size_t)len) == len;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        log_error("cannot write pid file %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    snprintf(s->pid_file, sizeof s->pid_file, "%s", path);
    return 0;
}

static void remove_pid_file(struct server *s)
{
    if (s->pid_file[0] && unlink(s->pid_file) != 0 && errno != ENOENT)
        log_warn("cannot remove pid file %s: %s", s->pid_file, strerror(errno));
    s->pid_file[0] = '\0';
}

/* ---- accepting ----------------------------------------------------------------------- */

static void refuse_over_limit(struct server *s, int fd)
{
    time_t now = time(NULL);
    if (now != s->limit_logged_at) {
        log_warn("refusing connections: max_connections (%zu) reached", s->cfg.max_connections);
        s->limit_logged_at = now;
    }
    conn_reject(fd, FERRY_CODE_LIMIT, "too many connections");
}

static void on_accepted(void *arg, int fd, bool is_tcp)
{
    struct server *s = arg;
    if (conn_set_count(s->conns) >= s->cfg.max_connections) {
        refuse_over_limit(s, fd);
        return;
    }
    if (conn_open(s->conns, fd, is_tcp) != 0)
        log_warn("no memory for a new connection; closed it");
}

/* ---- limits ---------------------------------------------------------------------------- */

static struct conn_limits conn_limits_of(const struct config *cfg)
{
    return (struct conn_limits){
        .max_frame = cfg->max_frame,
        .max_output = cfg->max_output,
        .handshake_timeout_ms = cfg->handshake_timeout_ms,
        .heartbeat_ms = cfg->heartbeat_ms,
        .dedup_window_ms = cfg->dedup_window_ms,
        .dedup_entries = cfg->dedup_entries,
    };
}

/* Every connection is a descriptor: raise the soft limit toward what
 * max_connections needs. Falling short is not fatal (accept pauses). */
static void raise_fd_limit(size_t max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)max_connections + FD_RESERVE;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want)
        log_warn("open file limit %llu is below max_connections + %d; "
                 "accepting will pause when it is reached",
                 (unsigned long long)rl.rlim_cur, FD_RESERVE);
}

/* ---- durable queues ------------------------------------------------------------------------ */

static enum queue_fsync fsync_of(enum config_fsync f)
{
    switch (f) {
    case CONFIG_FSYNC_INTERVAL: return QUEUE_FSYNC_INTERVAL;
    case CONFIG_FSYNC_NEVER: return QUEUE_FSYNC_NEVER;
    default: return QUEUE_FSYNC_ALWAYS;
    }
}

static enum queue_overflow overflow_of(enum config_overflow o)
{
    switch (o) {
    case CONFIG_OVERFLOW_REJECT: return QUEUE_OVERFLOW_REJECT;
    case CONFIG_OVERFLOW_DROP_OLDEST: return QUEUE_OVERFLOW_DROP_OLDEST;
    default: return QUEUE_OVERFLOW_BLOCK;
    }
}

/* broker_settings_fn: a queue takes the settings configured in force
 * when it is created; a reload may change them (apply_queue_settings). */
static void queue_settings_of(void *arg, struct ferry_bytes name, struct queue_settings *out)
{
    const struct server *s = arg;
    char text[FERRY_NAME_MAX + 1];
    size_t len = name.len < FERRY_NAME_MAX ? name.len : FERRY_NAME_MAX;
    memcpy(text, name.ptr, len);
    text[len] = '\0';
    const struct config_queue_settings *c = config_queue_settings(&s->cfg, text);
    /* A queue configured durable has the log: open_durable opened it, or
     * ferryd did not start. */
    *out = (struct queue_settings){
        .durable = c->durable,
        .fsync = fsync_of(config_queue_fsync(&s->cfg, c)),
        .priority = (uint8_t)c->priority,
        .ttl_ms = c->ttl_ms,
        .max_length = c->max_length,
        .max_bytes = c->max_bytes,
        .overflow = overflow_of(c->overflow),
        .ack_deadline_ms = c->ack_deadline_ms,
        .retry_backoff_ms = c->retry_backoff_ms,
        .retry_backoff_max_ms = c->retry_backoff_max_ms,
        .max_attempts = (uint32_t)c->max_attempts,
    };
    memcpy(out->dead_letter, c->dead_letter_queue, sizeof out->dead_letter);
}

/* The log is opened, and what it holds restored, only if some queue may
 * be durable; before any listener accepts. */
static int open_durable(struct server *s)
{
    broker_set_settings_source(s->broker, queue_settings_of, s);
    if (!config_any_durable(&s->cfg))
        return 0;
    struct durable_config dc = {
        .dir = s->cfg.data_dir,
        .strongest = fsync_of(config_strongest_fsync(&s->cfg)),
        .sync_interval_ms = (uint32_t)s->cfg.fsync_interval_ms,
        .segment_bytes = s->cfg.segment_size,
        .max_bytes = s->cfg.max_bytes,
        .settings_of = queue_settings_of,
        .settings_arg = s,
    };
    char err[512];
    s->log_fsync = dc.strongest;
    s->durable = durable_open(&dc, s->broker, err, sizeof err);
    if (!s->durable) {
        log_error("%s", err);
        return -1;
    }
    conn_set_use_durable(s->conns, s->durable);
    return 0;
}

/* ---- reloading --------------------------------------------------------------------------- */

static void log_size_change(const char *key, size_t old, size_t now)
{
    if (old != now)
        log_info("reload: %s %zu -> %zu", key, old, now);
}

static bool storage_same(const struct config *a, const struct config *b)
{
    return a->fsync == b->fsync && a->fsync_interval_ms == b->fsync_interval_ms &&
           a->segment_size == b->segment_size && a->max_bytes == b->max_bytes;
}

static bool settings_same(const struct config_queue_settings *a,
                          const struct config_queue_settings *b)
{
    return a->durable == b->durable && a->fsync == b->fsync && a->priority == b->priority &&
           a->ttl_ms == b->ttl_ms && a->max_length == b->max_length &&
           a->max_bytes == b->max_bytes && a->overflow == b->overflow;
}

static bool queue_settings_same(const struct config *a, const struct config *b)
{
    if (!settings_same(&a->queue_defaults, &b->queue_defaults) || a->queue_count != b->queue_count)
        return false;
    for (size_t i = 0; i < a->queue_count; i++) {
        if (strcmp(a->queues[i].name, b->queues[i].name) != 0 ||
            !settings_same(&a->queues[i].settings, &b->queues[i].settings))
            return false;
    }
    return true;
}

/* Whether the queue settings of `now` can be put in force without a
 * restart: the log must already be open if a queue is to be durable, and
 * opened for a policy at least as strong as any queue now asks (the log's
 * own writes, compaction and close, follow the policy it was opened for). */
static bool queue_settings_live(const struct server *s, const struct config *now)
{
    if (!config_any_durable(now))
        return true;
    return s->durable != NULL && fsync_of(config_strongest_fsync(now)) >= s->log_fsync;
}

/* What a reload cannot change, said once per reload. */
static void warn_restart_needed(const struct server *s, const struct config *old,
                                const struct config *now)
{
    const char *keys[7];
    size_t n = 0;
    if (strcmp(old->data_dir, now->data_dir) != 0)
        keys[n++] = "data_dir";
    if (strcmp(old->pid_file, now->pid_file) != 0)
        keys[n++] = "pid_file";
    if (!storage_same(old, now))
        keys[n++] = "the [storage] section";
    if (old->dedup_entries != now->dedup_entries)
        keys[n++] = "dedup_entries";
    if (!queue_settings_same(old, now) && !queue_settings_live(s, now))
        keys[n++] = "the queue settings ([queues], [queue \"NAME\"]: a durable queue "
                    "needs the log opened for its fsync policy)";
    for (size_t i = 0; i < n; i++)
        log_warn("reload: %s changed; it takes effect at the next restart", keys[i]);
}

static const char *fsync_name(enum queue_fsync f)
{
    switch (f) {
    case QUEUE_FSYNC_INTERVAL: return "interval";
    case QUEUE_FSYNC_NEVER: return "never";
    default: return "always";
    }
}

struct queue_names {
    char (*names)[FERRY_NAME_MAX + 1];
    size_t count, cap;
};

static void collect_queue_name(void *arg, struct ferry_bytes name, const struct queue_stats *st)
{
    struct queue_names *qn = arg;
    if (qn->count == qn->cap || name.len > FERRY_NAME_MAX)
        return;
    memcpy(qn->names[qn->count], name.ptr, name.len);
    qn->names[qn->count][name.len] = '\0';
    qn->count++;
}

static const char *overflow_name(enum queue_overflow o)
{
    switch (o) {
    case QUEUE_OVERFLOW_REJECT: return "reject";
    case QUEUE_OVERFLOW_DROP_OLDEST: return "drop-oldest";
    default: return "block";
    }
}

/* A queue's bounds or overflow policy changed by a reload. */
static void log_bounds_change(const char *queue, const struct queue_settings *had,
                              const struct queue_settings *want)
{
    if (had->max_length == want->max_length && had->max_bytes == want->max_bytes &&
        had->overflow == want->overflow)
        return;
    log_info("reload: queue '%s': max_length %" PRIu64 ", max_bytes %" PRIu64
             ", overflow %s (0: no bound)", queue, want->max_length, want->max_bytes,
             overflow_name(want->overflow));
}

/* Puts the queue settings of s->cfg in force: queues created from now on
 * take them (queue_settings_of), and every existing queue whose settings
 * differ is given its own. A queue that cannot take them keeps its
 * settings, and the log says why. */
static void apply_queue_settings(struct server *s)
{
    struct queue_names qn = { .cap = broker_queue_count(s->broker) };
    qn.names = calloc(qn.cap ? qn.cap : 1, sizeof *qn.names); /* owned here */
    if (!qn.names) {
        log_error("reload: out of memory; existing queues keep their settings");
        return;
    }
    /* Names first: the broker must not be called from its own iteration. */
    broker_each_queue(s->broker, collect_queue_name, &qn);
    for (size_t i = 0; i < qn.count; i++) {
        struct ferry_bytes name = { (const uint8_t *)qn.names[i], strlen(qn.names[i]) };
        struct queue_settings want, had;
        queue_settings_of(s, name, &want);
        if (broker_queue_settings(s->broker, name, &had) != FERRY_CODE_OK)
            continue;
        if (had.durable == want.durable && (!want.durable || had.fsync == want.fsync)) {
            /* The rest of the settings apply to what comes next: no log. */
            if (broker_configure_queue(s->broker, name, &want) != FERRY_CODE_OK)
                continue;
            if (had.priority != want.priority)
                log_info("reload: queue '%s': default priority %u -> %u", qn.names[i],
                         had.priority, want.priority);
            if (had.ttl_ms != want.ttl_ms)
                log_info("reload: queue '%s': ttl %" PRIu64 " ms -> %" PRIu64 " ms", qn.names[i],
                         had.ttl_ms, want.ttl_ms);
            log_bounds_change(qn.names[i], &had, &want);
            continue;
        }
        enum ferry_code code = broker_configure_queue(s->broker, name, &want);
        if (code == FERRY_CODE_BAD_REQUEST)
            log_warn("reload: queue '%s' stays in memory: it holds messages, and a queue "
                     "becomes durable only while empty", qn.names[i]);
        else if (code != FERRY_CODE_OK)
            log_warn("reload: queue '%s' keeps its settings: %s", qn.names[i],
                     ferry_code_name(code));
        else
            log_info("reload: queue '%s' is now %s%s", qn.names[i],
                     want.durable ? "durable, fsync " : "in memory",
                     want.durable ? fsync_name(want.fsync) : "");
    }
    free(qn.names);
}

/* Binds every [queue "NAME"] section's queue (created if missing, with its
 * settings) to its bind patterns. At start and at each reload: a reload
 * adds the bindings the file lists and removes none. What the broker
 * refuses (a limit) is logged; the others go on. */
static void apply_bindings(struct server *s)
{
    for (size_t i = 0; i < s->cfg.queue_count; i++) {
        const struct config_queue *q = &s->cfg.queues[i];
        struct ferry_bytes name = { (const uint8_t *)q->name, strlen(q->name) };
        const char *p = q->binds;
        while (p != NULL && *p != '\0') {
            size_t len = strcspn(p, " ");
            struct ferry_bytes pattern = { (const uint8_t *)p, len };
            enum ferry_code code = broker_bind(s->broker, name, pattern);
            if (code != FERRY_CODE_OK)
                log_warn("queue '%s': bind '%.*s': %s", q->name, (int)len, p,
                         ferry_code_name(code));
            p += len + (p[len] == ' ');
        }
    }
}

/* Puts the live-changeable settings of *now in force; the rest keep their
 * old values in s->cfg (and warn_restart_needed has said so). */
static void apply_live(struct server *s, struct config *now)
{
    struct config *old = &s->cfg;
    if (old->log_level != now->log_level)
        log_info("reload: log level %s -> %s", log_level_name(old->log_level),
                 log_level_name(now->log_level));
    log_set_level(now->log_level);
    log_size_change("max_connections", old->max_connections, now->max_connections);
    log_size_change("max_frame", old->max_frame, now->max_frame);
    log_size_change("max_output", old->max_output, now->max_output);
    if (old->handshake_timeout_ms != now->handshake_timeout_ms)
        log_info("reload: handshake_timeout %" PRIu64 " ms -> %" PRIu64 " ms",
                 old->handshake_timeout_ms, now->handshake_timeout_ms);
    if (old->heartbeat_ms != now->heartbeat_ms)
        log_info("reload: heartbeat_timeout %" PRIu64 " ms -> %" PRIu64 " ms",
                 old->heartbeat_ms, now->heartbeat_ms);
    if (old->dedup_window_ms != now->dedup_window_ms)
        log_info("reload: dedup_window %" PRIu64 " ms -> %" PRIu64 " ms",
                 old->dedup_window_ms, now->dedup_window_ms);
    if (old->shutdown_timeout_ms != now->shutdown_timeout_ms)
        log_info("reload: shutdown_timeout %" PRIu64 " ms -> %" PRIu64 " ms",
                 old->shutdown_timeout_ms, now->shutdown_timeout_ms);
    now->dedup_entries = old->dedup_entries; /* restart-only: the table's size */
    struct conn_limits limits = conn_limits_of(now);
    if (conn_set_limits(s->conns, &limits) != 0) {
        log_error("reload: out of memory; connection limits unchanged");
        now->max_frame = old->max_frame;
        now->max_output = old->max_output;
        now->handshake_timeout_ms = old->handshake_timeout_ms;
        now->heartbeat_ms = old->heartbeat_ms;
    }
    raise_fd_limit(now->max_connections);
    if (listeners_apply(s->listeners, now) != 0)
        log_error("reload: some listeners could not be opened (see above)");

    log_size_change("max_queues", old->max_queues, now->max_queues);
    log_size_change("max_consumers_per_queue", old->max_consumers_per_queue,
                    now->max_consumers_per_queue);
    log_size_change("max_queued_memory", old->max_queued_memory, now->max_queued_memory);
    struct broker_limits broker_limits = {
        .max_queues = now->max_queues,
        .max_consumers_per_queue = now->max_consumers_per_queue,
        .max_memory = now->max_queued_memory,
    };
    broker_set_limits(s->broker, &broker_limits);

    /* Restart-only settings stay as they are in force. */
    memcpy(now->data_dir, old->data_dir, sizeof now->data_dir);
    memcpy(now->pid_file, old->pid_file, sizeof now->pid_file);
    /* Storage settings too: they shape the log, which stays open. */
    now->fsync = old->fsync;
    now->fsync_interval_ms = old->fsync_interval_ms;
    now->segment_size = old->segment_size;
    now->max_bytes = old->max_bytes;
    bool queues_live = queue_settings_live(s, now);
    if (!queues_live && !queue_settings_same(old, now)) {
        now->queue_defaults = old->queue_defaults;
        now->durable_line = old->durable_line;
        struct config_queue *fresh = now->queues;
        size_t fresh_count = now->queue_count;
        now->queues = old->queues; /* now owns the sections in force; old the new ones */
        now->queue_count = old->queue_count;
        old->queues = fresh;
        old->queue_count = fresh_count;
    }
    config_move(&s->cfg, now); /* s->cfg owns now's contents from here */
    /* Every reload, not only one that changed them: a queue that could not
     * take its settings last time (it held messages) may take them now. */
    if (queues_live)
        apply_queue_settings(s);
    apply_bindings(s);
}

static void reload(struct server *s)
{
    if (!s->reload) {
        log_info("received SIGHUP; no configuration to reload");
        return;
    }
    log_info("received SIGHUP; reloading the configuration");
    service_reloading();
    struct config fresh;
    if (s->reload(s->reload_arg, &fresh) != 0) {
        config_free(&fresh);
        log_error("reload failed; the configuration in force stays");
    } else {
        config_use_default_listen(&fresh);
        warn_restart_needed(s, &s->cfg, &fresh);
        apply_live(s, &fresh);
        config_free(&fresh);
        log_info("configuration reloaded");
    }
    char status[128];
    format_status(s, status, sizeof status);
    service_ready(status);
}

/* ---- stopping ----------------------------------------------------------------------------- */

static void on_all_closed(void *arg)
{
    struct server *s = arg;
    event_base_loopbreak(s->base);
}

static void on_stop_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;
    log_warn("connections still open after shutdown_timeout (%" PRIu64 " ms); closing them",
             s->cfg.shutdown_timeout_ms);
    event_base_loopbreak(s->base);
}

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}

static void stop(struct server *s, int sig)
{
    if (s->stopping) {
        log_warn("second %s; exiting at once", signal_name(sig));
        s->exit_status = SERVER_EXIT_FAILURE;
        event_base_loopbreak(s->base);
        return;
    }
    s->stopping = true;
    log_info("received %s; stopping", signal_name(sig));
    service_stopping("stopping: flushing connections");
    listeners_close_all(s->listeners);
    uint64_t ms = s->cfg.shutdown_timeout_ms;
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000u),
                          .tv_usec = (suseconds_t)(ms % 1000u) * 1000 };
    event_add(s->stop_timer, &tv);
    conn_set_shutdown(s->conns, on_all_closed, s);
}

/* Runs in the loop, not in signal context (libevent's signal events). */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *s = arg;
    if (sig == SIGHUP) {
        if (!s->stopping)
            reload(s);
        return;
    }
    stop(s, (int)sig);
}

/* ---- setup and teardown -------------------------------------------------------------------- */

static struct event_base *new_base(void)
{
    struct event_config *config = event_config_new();
    if (!config)
        return NULL;
    /* One thread: libevent need not lock. */
    event_config_set_flag(config, EVENT_BASE_FLAG_NOLOCK);
    struct event_base *base = event_base_new_with_config(config);
    event_config_free(config);
    return base;
}

static struct event *add_signal(struct server *s, int sig)
{
    struct event *ev = evsignal_new(s->base, sig, on_signal, s);
    if (ev && event_add(ev, NULL) != 0) {
        event_free(ev);
        return NULL;
    }
    return ev;
}

/* Listeners from systemd if it passed any, else from the configuration. */
static int open_listeners(struct server *s)
{
    int passed = listeners_adopt_systemd(s->listeners);
    if (passed < 0)
        return -1;
    if (passed > 0) {
        if (s->cfg.listen_count > 0 && !s->cfg.listen_is_default)
            log_info("socket activation: the %zu configured listeners are not used",
                     s->cfg.listen_count);
        return 0;
    }
    config_use_default_listen(&s->cfg);
    return listeners_apply(s->listeners, &s->cfg);
}

static int setup(struct server *s)
{
    s->base = new_base();
    struct broker_limits broker_limits = {
        .max_queues = s->cfg.max_queues,
        .max_consumers_per_queue = s->cfg.max_consumers_per_queue,
        .max_memory = s->cfg.max_queued_memory,
    };
    s->broker = s->base ? broker_new(&broker_limits) : NULL;
    if (!s->broker) {
        log_error("out of memory");
        return -1;
    }
    struct conn_limits limits = conn_limits_of(&s->cfg);
    s->conns = conn_set_new(s->base, s->broker, &limits);
    s->listeners = listeners_new(s->base, on_accepted, s);
    s->sigint_ev = add_signal(s, SIGINT);
    s->sigterm_ev = add_signal(s, SIGTERM);
    s->sighup_ev = add_signal(s, SIGHUP);
    s->stop_timer = evtimer_new(s->base, on_stop_timeout, s);
    if (!s->conns || !s->listeners || !s->sigint_ev || !s->sigterm_ev || !s->sighup_ev ||
        !s->stop_timer || start_service_timers(s) != 0) {
        log_error("out of memory");
        return -1;
    }
    if (open_durable(s) != 0)
        return -1;
    apply_bindings(s); /* durable queues restored first: they keep their messages */
    if (open_listeners(s) != 0 || write_pid_file(s) != 0)
        return -1;
    return 0;
}

static void free_event(struct event *ev)
{
    if (ev)
        event_free(ev);
}

/* Frees whatever setup made, in the reverse order; safe after a partial
 * setup. */
static void teardown(struct server *s)
{
    listeners_free(s->listeners);
    conn_set_free(s->conns); /* sessions first: the broker outlives them */
    durable_close(s->durable); /* the last flush, once nothing appends */
    if (s->broker)
        broker_free(s->broker);
    free_event(s->sigint_ev);
    free_event(s->sigterm_ev);
    free_event(s->sighup_ev);
    free_event(s->stop_timer);
    free_event(s->status_timer);
    free_event(s->watchdog_timer);
    if (s->base)
        event_base_free(s->base);
    remove_pid_file(s);
    config_free(&s->cfg);
}

int server_run(struct config *cfg, server_reload_fn *reload_fn, void *reload_arg)
{
    /* A peer that vanishes makes write() fail with EPIPE, not kill us; a
     * log file over RLIMIT_FSIZE makes write() fail with EFBIG, which the
     * log refuses publishes for, not kill us. */
    struct sigaction ignore = { .sa_handler = SIG_IGN };
    sigaction(SIGPIPE, &ignore, NULL);
    sigaction(SIGXFSZ, &ignore, NULL);

    struct server s = { .reload = reload_fn, .reload_arg = reload_arg,
                        .exit_status = SERVER_EXIT_OK };
    config_init(&s.cfg);
    config_move(&s.cfg, cfg); /* s owns the configuration from here */
    log_set_level(s.cfg.log_level);
    raise_fd_limit(s.cfg.max_connections);

    if (setup(&s) != 0) {
        teardown(&s);
        return SERVER_EXIT_FAILURE;
    }
    char status[128];
    format_status(&s, status, sizeof status);
    service_ready(status);
    if (event_base_dispatch(s.base) < 0) {
        log_error("event loop failed");
        s.exit_status = SERVER_EXIT_FAILURE;
    }
    teardown(&s);
    log_info("stopped");
    return s.exit_status;
}
