/*
 * conn.c - a connection's life: connect and handshake, close, the mutex,
 * failure, the fork check, and running user callbacks.
 * Knows nothing of what frames mean beyond HELLO; io.c moves the bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"

#include <fcntl.h>
#include <sys/random.h>

static int adopt(int fd, const struct ferry_options *o, const struct ferry_addr *addr,
                 int64_t deadline, ferry_conn **out);

/* Bumped in every child right after fork(): a connection remembers the
 * value it was opened under, so an inherited one is recognised without a
 * getpid() system call on every operation. Only the child writes it, while
 * it is still single-threaded. */
static unsigned long process_fork_generation;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* The connection whose callback the calling thread is running, if any. */
static _Thread_local struct ferry_conn *dispatching;

static void count_fork_in_child(void)
{
    process_fork_generation++;
}

static void register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, count_fork_in_child);
}

const char *ferry_default_url(void)
{
    const char *url = getenv("FERRY_URL");
    if (url && *url)
        return url;
    return "unix:" FERRY_DEFAULT_SOCKET;
}

bool conn__forked(const struct ferry_conn *c)
{
    return c->fork_generation != process_fork_generation;
}

int conn__lock(struct ferry_conn *c)
{
    if (!c)
        return FERRY_EINVAL;
    if (conn__forked(c))
        return FERRY_EFORKED;
    pthread_mutex_lock(&c->mu);
    if (c->dead) {
        int status = c->dead;
        pthread_mutex_unlock(&c->mu);
        return status;
    }
    return FERRY_OK;
}

void conn__unlock(struct ferry_conn *c)
{
    pthread_mutex_unlock(&c->mu);
}

void conn__wake(struct ferry_conn *c)
{
    pthread_cond_broadcast(&c->cv);
}

void conn__fail(struct ferry_conn *c, int status)
{
    if (!c->dead && !c->broken) {
        /* A thread blocked in poll() on the socket wakes with POLLHUP. */
        shutdown(c->fd, SHUT_RDWR);
        if (reconnect__wanted(c, status)) {
            /* Made again by the next thread that waits (reconnect.c). The
             * descriptor now names a pipe that is never readable, so that
             * an event loop does not spin on the dead socket meanwhile. */
            c->broken = true;
            c->attempts = 0;
            c->next_attempt_ms = conn__now_ms() + c->reconnect_base_ms;
            dup3(c->silent_fd, c->fd, O_CLOEXEC); /* dup2 would drop close-on-exec */
            if (c->keeper_started)
                pthread_cond_signal(&c->keeper_cv);
        } else {
            c->dead = status;
        }
    }
    conn__wake(c);
}

bool conn__in_dispatch(const struct ferry_conn *c)
{
    return dispatching == c;
}

struct ferry_conn *conn__begin_callback(struct ferry_conn *c)
{
    struct ferry_conn *saved = dispatching;
    /* Whoever waits for what this batch has settled so far need not wait
     * for the callback too. */
    conn__wake(c);
    dispatching = c;
    pthread_mutex_unlock(&c->mu);
    return saved;
}

void conn__end_callback(struct ferry_conn *c, struct ferry_conn *saved)
{
    pthread_mutex_lock(&c->mu);
    dispatching = saved;
}

void conn__copy_text(char out[FERRY_ERROR_TEXT_MAX + 1], struct ferry_bytes text)
{
    size_t len = text.len < FERRY_ERROR_TEXT_MAX ? text.len : FERRY_ERROR_TEXT_MAX;
    if (len)
        memcpy(out, text.ptr, len);
    out[len] = '\0';
}

void conn__report_error(struct ferry_conn *c, int code, struct ferry_bytes text)
{
    ferry_error_fn fn = c->on_error;
    void *arg = c->error_arg;
    if (!fn)
        return;
    char copy[FERRY_ERROR_TEXT_MAX + 1];
    conn__copy_text(copy, text);
    struct ferry_conn *saved = conn__begin_callback(c);
    fn(c, code, copy, arg);
    conn__end_callback(c, saved);
}

void ferry_set_refusal_handler(ferry_conn *c, ferry_refusal_fn fn, void *arg)
{
    if (!c || conn__forked(c))
        return;
    pthread_mutex_lock(&c->mu);
    c->on_refusal = fn;
    c->refusal_arg = arg;
    pthread_mutex_unlock(&c->mu);
}

void ferry_set_error_handler(ferry_conn *c, ferry_error_fn fn, void *arg)
{
    if (!c || conn__forked(c))
        return;
    pthread_mutex_lock(&c->mu);
    c->on_error = fn;
    c->error_arg = arg;
    pthread_mutex_unlock(&c->mu);
}

struct ferry_bytes conn__bytes(const char *s)
{
    return (struct ferry_bytes){ (const uint8_t *)s, strlen(s) };
}

bool conn__queue_valid(const char *queue)
{
    if (!queue)
        return false;
    /* strnlen: a name one byte too long is already invalid. */
    struct ferry_bytes name = { (const uint8_t *)queue, strnlen(queue, FERRY_NAME_MAX + 1) };
    return ferry_name_valid(name);
}

int64_t conn__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t conn__deadline(int timeout_ms)
{
    if (timeout_ms < 0)
        return CONN_NO_DEADLINE;
    return conn__now_ms() + timeout_ms;
}

int conn__sleep(struct ferry_conn *c, int64_t deadline)
{
    if (deadline == CONN_NO_DEADLINE) {
        pthread_cond_wait(&c->cv, &c->mu);
        return FERRY_OK;
    }
    if (conn__now_ms() >= deadline)
        return FERRY_ETIMEDOUT;
    struct timespec until = {
        .tv_sec = (time_t)(deadline / 1000),
        .tv_nsec = (long)(deadline % 1000) * 1000000,
    };
    pthread_cond_timedwait(&c->cv, &c->mu, &until);
    return FERRY_OK; /* the caller re-checks; the next call sees the deadline */
}

/* ---- connect and close ------------------------------------------------ */

static struct ferry_conn *conn_new(int fd, const struct ferry_options *o)
{
    struct ferry_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        goto fail;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* deadlines are monotonic */
    int rc = pthread_cond_init(&c->cv, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        goto fail;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        pthread_cond_destroy(&c->cv);
        goto fail;
    }
    c->fd = fd;
    c->fork_generation = process_fork_generation;
    c->max_frame = FERRY_FRAME_MAX_FLOOR; /* until WELCOME tells */
    c->request_timeout_ms = o->request_timeout_ms ? o->request_timeout_ms
                                                  : CONN_DEFAULT_REQUEST_TIMEOUT_MS;
    c->max_output = o->max_output_bytes ? o->max_output_bytes : CONN_DEFAULT_MAX_OUTPUT;
    c->next_rid = 1;
    c->next_publish_id = 1;
    c->next_sub = 1;
    c->heard_ms = conn__now_ms();
    c->silent_fd = c->silent_peer = -1;
    return c;
fail:
    free(c);
    return NULL;
}

/* Sends HELLO and waits for WELCOME (inbound.c sets `welcomed`). */
static int handshake(struct ferry_conn *c, int64_t deadline)
{
    struct ferry_frame hello = {
        .type = FERRY_F_HELLO,
        .version = FERRY_PROTO_VERSION,
        .name = conn__bytes(c->name),
        .producer = c->producer,
    };
    pthread_mutex_lock(&c->mu);
    int rc = io__append(c, &hello);
    while (rc == FERRY_OK && !c->welcomed)
        rc = io__pump(c, PUMP_INPUT, deadline);
    pthread_mutex_unlock(&c->mu);
    if (rc == FERRY_ENOMEM)
        return rc;
    return rc == FERRY_OK ? FERRY_OK : FERRY_ECONNECT;
}

int ferry_connect(const char *url, ferry_conn **out)
{
    struct ferry_options o = { .url = url };
    return ferry_connect_opts(&o, out);
}

int ferry_connect_opts(const struct ferry_options *opts, ferry_conn **out)
{
    if (!out)
        return FERRY_EINVAL;
    *out = NULL;

    struct ferry_options o = opts ? *opts : (struct ferry_options){ 0 };
    const char *url = o.url ? o.url : ferry_default_url();
    int timeout = o.connect_timeout_ms ? o.connect_timeout_ms : CONN_DEFAULT_CONNECT_TIMEOUT_MS;

    struct ferry_addr addr;
    const char *why;
    if (ferry_addr_parse(url, &addr, &why) != 0)
        return FERRY_EINVAL;
    int64_t deadline = conn__deadline(timeout);
    int fd;
    int rc = io__connect(&addr, deadline, &fd);
    if (rc != FERRY_OK)
        return rc;
    return adopt(fd, &o, &addr, deadline, out);
}

/* A random producer identity for HELLO: nonzero, so that it means one. */
static uint64_t random_producer(void)
{
    uint64_t id = 0;
    while (id == 0) {
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
            id = (uint64_t)conn__now_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    }
    return id;
}

/* What a reconnect needs: the address, the options, a producer identity
 * and the never-readable pipe that stands in for the socket while broken. */
static int prepare_reconnect(struct ferry_conn *c, const struct ferry_options *o,
                             const struct ferry_addr *addr)
{
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0)
        return FERRY_ENOMEM;
    c->silent_fd = pipe_fds[0]; /* both owned by c, closed by reconnect__free */
    c->silent_peer = pipe_fds[1];
    c->reconnect = true;
    c->addr = *addr;
    c->producer = random_producer();
    c->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms
                                                  : CONN_DEFAULT_CONNECT_TIMEOUT_MS;
    c->reconnect_base_ms = o->reconnect_base_ms > 0 ? o->reconnect_base_ms
                                                    : CONN_DEFAULT_RECONNECT_BASE_MS;
    c->reconnect_max_ms = o->reconnect_max_ms > 0 ? o->reconnect_max_ms
                                                  : CONN_DEFAULT_RECONNECT_MAX_MS;
    if (c->reconnect_max_ms < c->reconnect_base_ms)
        c->reconnect_max_ms = c->reconnect_base_ms;
    return FERRY_OK;
}

int conn__adopt_fd(int fd, const struct ferry_options *o, int64_t deadline, ferry_conn **out)
{
    return adopt(fd, o, NULL, deadline, out);
}

static int adopt(int fd, const struct ferry_options *o, const struct ferry_addr *addr,
                 int64_t deadline, ferry_conn **out)
{
    *out = NULL;
    pthread_once(&atfork_once, register_fork_handler);
    const char *name = o->name ? o->name : program_invocation_short_name;
    struct ferry_conn *c = conn_new(fd, o); /* owns fd from here */
    if (!c) {
        close(fd);
        return FERRY_ENOMEM;
    }
    size_t name_len = strnlen(name, FERRY_CLIENT_NAME_MAX);
    memcpy(c->name, name, name_len);
    c->name[name_len] = '\0';
    int rc = FERRY_OK;
    if (o->reconnect && addr)
        rc = prepare_reconnect(c, o, addr);
    if (rc == FERRY_OK)
        rc = handshake(c, deadline);
    if (rc == FERRY_OK)
        rc = heartbeat__start(c);
    if (rc != FERRY_OK) {
        ferry_close(c);
        return rc;
    }
    *out = c;
    return FERRY_OK;
}

static void free_memory(struct ferry_conn *c)
{
    consume__free_all(c);
    reconnect__free(c);
    ferry_buf_free(&c->in);
    ferry_buf_free(&c->out);
    ferry_buf_free(&c->sending);
    ferry_buf_free(&c->scratch);
    free(c);
}

void ferry_close(ferry_conn *c)
{
    if (!c)
        return;
    if (conn__forked(c)) {
        /* The mutex may have been held by a parent thread at fork time and
         * the socket is the parent's conversation: touch neither. The
         * libevent events belong to the parent's loop and are left alone. */
        close(c->fd);
        free_memory(c);
        return;
    }
    heartbeat__stop(c);
    pthread_mutex_lock(&c->mu);
    if (!c->dead) {
        consume__flush_acks(c);
        io__write_now(c); /* what the socket takes without blocking */
    }
    pthread_mutex_unlock(&c->mu);
    if (c->events)
        events__free(c->events);
    close(c->fd);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free_memory(c);
}
