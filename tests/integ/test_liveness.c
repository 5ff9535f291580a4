/*
 * test_liveness.c - connection liveness against a real ferryd: heartbeats
 * (a silent raw client, a SIGSTOPped process and a half frame are closed
 * within heartbeat_timeout and their messages go to another consumer;
 * libferry keeps an idle connection alive on every kind of use and gives
 * up on a silent broker); per-connection statistics (CONNS names the slow
 * consumer, pages through more than one reply's worth) and KILL; an ACK
 * written just before the close counts even when ferryd's write fails.
 */
#include "harness.h"
#include "raw.h"

#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <ferry.h>
#include <ferry_proto.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Short, so that the tests are; the bounds below allow a loaded machine. */
#define HEARTBEAT_MS 1000
/* ferryd ticks every quarter of the timeout, so it closes a silent peer
 * between HEARTBEAT_MS and 1.25 x; this much more is slack for a loaded
 * 2-core machine (and for ASan). */
#define SLACK_MS 4000

static const char conf_text[] = "[limits]\nheartbeat_timeout = 1s\n";

static struct ferryd daemon_;

static void setup(void)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    ck_assert_int_eq(ferryd_write_conf(&daemon_, conf_text), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
}

/* Default heartbeat (30 s): raw clients may stay silent through a test. */
static void setup_default(void)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
}

static void teardown(void)
{
    ck_assert_msg(ferryd_stop(&daemon_) == 0, "ferryd did not exit cleanly (see above)");
}

static ferry_conn *connect_named(const char *name)
{
    struct ferry_options o = { .url = daemon_.url, .name = name };
    ferry_conn *c = NULL;
    int rc = ferry_connect_opts(&o, &c);
    ck_assert_msg(rc == FERRY_OK, "connect: %s", ferry_strerror(rc));
    return c;
}

static void publish_n(ferry_conn *c, const char *queue, int n)
{
    for (int i = 0; i < n; i++) {
        char payload[32];
        int len = snprintf(payload, sizeof payload, "m%d", i);
        ck_assert_int_eq(ferry_publish(c, queue, payload, (size_t)len, NULL, 0, 0), FERRY_OK);
    }
    ck_assert_int_eq(ferry_flush(c, 10000), FERRY_OK);
}

/* Takes n messages with ferry_get, each redelivered (attempt 2): the ones
 * a dead consumer held. Returns how long the first took to come. */
static long long take_redelivered(ferry_conn *c, const char *queue, int n)
{
    long long t0 = harness_now_ms(), first = -1;
    for (int i = 0; i < n; i++) {
        ferry_message *m = NULL;
        int rc = ferry_get(c, queue, HEARTBEAT_MS * 2 + SLACK_MS, &m);
        ck_assert_msg(rc == FERRY_OK, "message %d of %d: %s", i, n, ferry_strerror(rc));
        if (first < 0)
            first = harness_now_ms() - t0;
        ck_assert_uint_eq(m->attempt, 2);
        ck_assert_int_eq(ferry_ack(c, m->tag), FERRY_OK);
        ferry_message_free(m);
    }
    return first;
}

/* ---- ferryd closes silent peers -------------------------------------------- */

/* A raw client that consumes, holds its deliveries unacked and then says
 * nothing: ferryd PINGs it, then closes it with a fatal HEARTBEAT error
 * within the timeout, and another consumer gets the messages. */
START_TEST(test_a_silent_consumer_is_closed_and_its_messages_go_to_another)
{
    ferry_conn *producer = connect_named("producer");
    struct raw r;
    raw_open(&r, &daemon_);
    struct ferry_frame welcome;
    raw_hello_with(&r, (struct ferry_frame){ .name = raw_bytes("silent") }, &welcome);
    ck_assert_uint_eq(welcome.heartbeat_ms, HEARTBEAT_MS);
    struct ferry_frame consume = { .type = FERRY_F_CONSUME, .rid = 1, .queue = raw_bytes("hb"),
                                   .sub = 1, .credit = 10 };
    raw_send(&r, &consume);
    publish_n(producer, "hb", 5);

    struct ferry_frame f;
    int delivered = 0, pings = 0;
    long long silent_since = harness_now_ms();
    for (;;) {
        ck_assert_msg(raw_next(&r, &f), "no ERROR before EOF or timeout");
        if (f.type == FERRY_F_DELIVER)
            delivered++;
        else if (f.type == FERRY_F_PING)
            pings++;
        else if (f.type == FERRY_F_ERROR)
            break;
        if (f.type != FERRY_F_PING)
            silent_since = harness_now_ms(); /* counts from the last frame it could answer */
    }
    long long waited = harness_now_ms() - silent_since;
    ck_assert_int_eq(delivered, 5);
    ck_assert_int_ge(pings, 1);
    ck_assert_uint_eq(f.code, FERRY_CODE_HEARTBEAT);
    ck_assert(f.fatal);
    ck_assert_int_lt(waited, HEARTBEAT_MS * 5 / 4 + SLACK_MS);
    raw_close(&r);

    take_redelivered(producer, "hb", 5);
    ferry_close(producer);
}
END_TEST

/* The same for a real libferry process that is stopped (SIGSTOP): its
 * keeper thread cannot answer either. */
START_TEST(test_a_stopped_process_is_closed_and_its_messages_go_to_another)
{
    ferry_conn *producer = connect_named("producer");
    publish_n(producer, "stopped", 3);
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The child takes the three messages and holds them. It dies with
         * this test process: stopped, it would outlive a failed assertion. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        ferry_conn *c = NULL;
        if (ferry_connect(daemon_.url, &c) != FERRY_OK)
            _exit(1);
        for (int i = 0; i < 3; i++) {
            ferry_message *m = NULL;
            if (ferry_get(c, "stopped", 10000, &m) != FERRY_OK)
                _exit(2);
            ferry_message_free(m); /* not acked */
        }
        if (write(ready[1], "x", 1) != 1)
            _exit(3);
        for (;;)
            pause();
    }
    close(ready[1]);
    char x;
    ck_assert_int_eq(read(ready[0], &x, 1), 1);
    close(ready[0]);
    ck_assert_int_eq(kill(pid, SIGSTOP), 0);
    long long first = take_redelivered(producer, "stopped", 3);
    kill(pid, SIGKILL);
    harness_reap(pid, 5000);
    printf("liveness: a stopped consumer's messages came back after %lld ms\n", first);
    ck_assert_int_lt(first, HEARTBEAT_MS * 5 / 4 + SLACK_MS);
    ferry_close(producer);
}
END_TEST

/* A frame cut in the middle, then silence: closed by the heartbeat too. */
START_TEST(test_half_a_frame_then_silence_is_closed_by_the_heartbeat)
{
    struct raw r;
    raw_open(&r, &daemon_);
    raw_hello(&r);
    static const uint8_t half[] = { 0, 0, 0, 100, 0x83, 0xa1, 't', 10 };
    raw_write(&r, half, sizeof half);
    long long t0 = harness_now_ms();
    struct ferry_frame f;
    while (raw_next(&r, &f) && f.type == FERRY_F_PING)
        continue;
    ck_assert_int_eq(f.type, FERRY_F_ERROR);
    ck_assert_uint_eq(f.code, FERRY_CODE_HEARTBEAT);
    ck_assert_int_lt(harness_now_ms() - t0, HEARTBEAT_MS * 5 / 4 + SLACK_MS);
    raw_close(&r);
}
END_TEST

/* A reload puts a shorter heartbeat_timeout in force for the connections
 * already open: a silent one is closed by it, well before the old 30 s. */
START_TEST(test_a_reloaded_heartbeat_timeout_applies_to_open_connections)
{
    ck_assert_int_eq(ferryd_write_conf(&daemon_, "[limits]\nheartbeat_timeout = 30s\n"), 0);
    ck_assert_int_eq(ferryd_terminate(&daemon_), 0); /* exited cleanly */
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    struct raw r;
    raw_open(&r, &daemon_);
    struct ferry_frame welcome;
    raw_hello_with(&r, (struct ferry_frame){ .name = raw_bytes("silent") }, &welcome);
    ck_assert_uint_eq(welcome.heartbeat_ms, 30000);
    ck_assert_int_eq(ferryd_write_conf(&daemon_, conf_text), 0); /* 1 s */
    long long t0 = harness_now_ms();
    ck_assert_int_eq(kill(daemon_.pid, SIGHUP), 0);
    struct ferry_frame f;
    while (raw_next(&r, &f) && f.type == FERRY_F_PING)
        continue;
    ck_assert_int_eq(f.type, FERRY_F_ERROR);
    ck_assert_uint_eq(f.code, FERRY_CODE_HEARTBEAT);
    ck_assert_int_lt(harness_now_ms() - t0, HEARTBEAT_MS * 5 / 4 + SLACK_MS);
    raw_close(&r);
}
END_TEST

/* ---- libferry keeps its connections alive ---------------------------------- */

/* A blocking client that makes no call for three timeouts is still
 * connected: its keeper thread answered ferryd's PINGs. */
START_TEST(test_an_idle_blocking_client_stays_connected)
{
    ferry_conn *c = connect_named("idle");
    usleep(3 * HEARTBEAT_MS * 1000);
    struct ferry_stats *st = NULL;
    int rc = ferry_stats(c, NULL, &st);
    ck_assert_msg(rc == FERRY_OK, "stats after idling: %s", ferry_strerror(rc));
    ferry_stats_free(st);
    ferry_close(c);
}
END_TEST

struct loop_consumer {
    int got;
    struct event_base *base;
};

static void on_loop_message(ferry_conn *c, const ferry_message *m, void *arg)
{
    struct loop_consumer *lc = arg;
    ferry_ack(c, m->tag);
    lc->got++;
    event_base_loopbreak(lc->base);
}

static void *publish_later(void *arg)
{
    usleep(3 * HEARTBEAT_MS * 1000);
    ferry_conn *p = NULL;
    if (ferry_connect(daemon_.url, &p) == FERRY_OK) {
        ferry_publish(p, "loop", "late", 4, NULL, 0, FERRY_PUBLISH_CONFIRM);
        ferry_close(p);
    }
    return NULL;
}

/* A consumer on a libevent loop with nothing to do for three timeouts is
 * still there when a message comes: the loop's timer answered. */
START_TEST(test_an_idle_consumer_on_a_libevent_loop_stays_connected)
{
    ferry_conn *c = connect_named("loop");
    struct loop_consumer lc = { .base = event_base_new() };
    ck_assert_ptr_nonnull(lc.base);
    ck_assert_int_eq(ferry_attach(c, lc.base), FERRY_OK);
    struct ferry_consume_options o = { .credit = 1, .on_message = on_loop_message, .arg = &lc };
    ck_assert_int_eq(ferry_consume(c, "loop", &o, NULL), FERRY_OK);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, publish_later, NULL), 0);
    struct timeval limit = { .tv_sec = 3 * HEARTBEAT_MS / 1000 + SLACK_MS / 1000 + 5 };
    event_base_loopexit(lc.base, &limit);
    event_base_dispatch(lc.base);
    pthread_join(t, NULL);
    ck_assert_int_eq(lc.got, 1);
    ferry_close(c);
    event_base_free(lc.base);
}
END_TEST

/* A consumer on its own poll() loop, woken by ferry_next_timeout(). */
START_TEST(test_an_idle_client_on_a_foreign_loop_stays_connected)
{
    ferry_conn *c = connect_named("poll");
    ck_assert_int_eq(ferry_process(c), FERRY_OK); /* this thread drives it from now on */
    long long end = harness_now_ms() + 3 * HEARTBEAT_MS;
    int wakeups = 0;
    while (harness_now_ms() < end) {
        int timeout = ferry_next_timeout(c);
        ck_assert_int_ge(timeout, 0);
        ck_assert_int_le(timeout, HEARTBEAT_MS);
        struct pollfd p = { .fd = ferry_fd(c), .events = POLLIN };
        poll(&p, 1, timeout);
        ck_assert_int_eq(ferry_process(c), FERRY_OK);
        wakeups++;
    }
    ck_assert_int_ge(wakeups, 3);
    ferry_close(c);
}
END_TEST

/* ---- libferry gives up on a silent broker ---------------------------------- */

/* A broker that says WELCOME (hb 500 ms) and then nothing at all. */
struct mute_broker {
    char path[108];
    int listen_fd;
    pthread_t thread;
};

static void *mute_broker_main(void *arg)
{
    struct mute_broker *mb = arg;
    int fd = accept(mb->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    struct ferry_frame welcome = { .type = FERRY_F_WELCOME, .version = FERRY_PROTO_VERSION,
                                   .name = raw_bytes("mute"), .max_frame = FERRY_FRAME_MAX_DEFAULT,
                                   .heartbeat_ms = 500 };
    struct ferry_buf out = { 0 };
    if (ferry_frame_encode(&out, &welcome) == 0
        && send(fd, out.data + out.off, ferry_buf_pending(&out), MSG_NOSIGNAL) < 0)
        perror("mute broker");
    ferry_buf_free(&out);
    uint8_t scratch[4096];
    while (recv(fd, scratch, sizeof scratch, 0) > 0)
        continue; /* reads its PINGs, answers nothing */
    close(fd);
    return NULL;
}

START_TEST(test_a_blocking_call_fails_when_the_broker_falls_silent)
{
    struct mute_broker mb;
    snprintf(mb.path, sizeof mb.path, "%s/mute.sock", daemon_.dir);
    mb.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", mb.path);
    ck_assert_int_eq(bind(mb.listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(mb.listen_fd, 1), 0);
    ck_assert_int_eq(pthread_create(&mb.thread, NULL, mute_broker_main, &mb), 0);

    char url[128];
    snprintf(url, sizeof url, "unix:%s", mb.path);
    ferry_conn *c = NULL;
    ck_assert_int_eq(ferry_connect(url, &c), FERRY_OK);
    long long t0 = harness_now_ms();
    ferry_message *m = NULL;
    int rc = ferry_get(c, "q", 60000, &m);
    long long waited = harness_now_ms() - t0;
    ck_assert_msg(rc == FERRY_EIO, "get: %s", ferry_strerror(rc));
    ck_assert_int_lt(waited, 500 + SLACK_MS);
    ferry_close(c); /* the mute broker sees EOF and ends */
    pthread_join(mb.thread, NULL);
    close(mb.listen_fd);
    unlink(mb.path);
}
END_TEST

/* ---- per-connection statistics and KILL --------------------------------- */

static const struct ferry_conn_info *find_by_name(const struct ferry_connections *l,
                                                  const char *name)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->conns[i].name, name) == 0)
            return &l->conns[i];
    return NULL;
}

/* A raw consumer with a wide window that never reads its socket: ferryd's
 * output for it piles up, and CONNS shows it with the most bytes waiting,
 * its name, its Unix peer's pid, its subscription and its messages in
 * flight. KILL then closes it and its messages go to another consumer. */
START_TEST(test_connections_name_the_slow_consumer_and_kill_frees_its_messages)
{
    enum { MESSAGES = 200, PAYLOAD = 32 * 1024 };
    ferry_conn *admin = connect_named("admin");
    struct raw slow;
    raw_open(&slow, &daemon_);
    int small = 4096; /* so that little fits in the kernel's buffers */
    setsockopt(slow.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    raw_hello_with(&slow, (struct ferry_frame){ .name = raw_bytes("slow-consumer") }, NULL);
    struct ferry_frame consume = { .type = FERRY_F_CONSUME, .rid = 1, .queue = raw_bytes("bulk"),
                                   .sub = 1, .credit = MESSAGES };
    raw_send(&slow, &consume);
    static char payload[PAYLOAD];
    for (int i = 0; i < MESSAGES; i++)
        ck_assert_int_eq(ferry_publish(admin, "bulk", payload, sizeof payload, NULL, 0, 0), FERRY_OK);
    ck_assert_int_eq(ferry_flush(admin, 10000), FERRY_OK);

    struct ferry_connections *l = NULL;
    ck_assert_int_eq(ferry_connections(admin, &l), FERRY_OK);
    ck_assert_uint_eq(l->count, 2);
    const struct ferry_conn_info *s = find_by_name(l, "slow-consumer");
    const struct ferry_conn_info *a = find_by_name(l, "admin");
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(a);
    printf("liveness: the slow consumer holds %llu bytes unsent, the admin %llu\n",
           (unsigned long long)s->out_bytes, (unsigned long long)a->out_bytes);
    /* Most of 6.4 MB is still in ferryd: the kernel took a few hundred KiB at most. */
    ck_assert_uint_gt(s->out_bytes, (uint64_t)MESSAGES * PAYLOAD / 2);
    ck_assert_uint_eq(a->out_bytes, 0);
    ck_assert_uint_eq(s->subscriptions, 1);
    ck_assert_uint_eq(s->inflight, MESSAGES);
    ck_assert_uint_eq(a->subscriptions, 0);
    char want_peer[64];
    snprintf(want_peer, sizeof want_peer, "unix:pid=%ld,uid=%lu", (long)getpid(),
             (unsigned long)getuid());
    ck_assert_str_eq(s->peer, want_peer);
    ck_assert(s->id != a->id);
    uint64_t slow_id = s->id;
    ferry_connections_free(l);

    ck_assert_int_eq(ferry_kill(admin, slow_id), FERRY_OK);
    int rc = ferry_kill(admin, slow_id);
    ck_assert_int_eq(rc, FERRY_ESERVER);
    ck_assert_int_eq(ferry_server_error(NULL), FERRY_CODE_NOT_FOUND);
    ferry_message *m = NULL;
    ck_assert_int_eq(ferry_get(admin, "bulk", 10000, &m), FERRY_OK);
    ck_assert_uint_eq(m->attempt, 2);
    ferry_message_free(m);
    raw_close(&slow);
    ferry_close(admin);
}
END_TEST

/* More connections than one reply holds: ferry_connections pages through
 * them all, each once. */
START_TEST(test_connections_beyond_one_page_are_all_listed_once)
{
    enum { RAW = FERRY_CONNS_PAGE_MAX + 200 };
    ck_assert_int_ge(harness_raise_fd_limit(), RAW + 64);
    static struct raw r[RAW];
    for (int i = 0; i < RAW; i++) {
        raw_open(&r[i], &daemon_);
        raw_hello(&r[i]);
    }
    ferry_conn *admin = connect_named("admin");
    struct ferry_connections *l = NULL;
    ck_assert_int_eq(ferry_connections(admin, &l), FERRY_OK);
    ck_assert_uint_eq(l->count, RAW + 1);
    for (size_t i = 1; i < l->count; i++)
        ck_assert_uint_lt(l->conns[i].id, l->conns[i - 1].id); /* newest first, none twice */
    ferry_connections_free(l);
    ferry_close(admin);
    for (int i = 0; i < RAW; i++)
        raw_close(&r[i]);
}
END_TEST

/* ---- duplicate publishes of a reconnecting producer ------------------------ */

/* A raw producer: HELLO with `producer` (0: none), then PUBLISH ids
 * first..last to `queue`, each confirmed (one CONFIRM may list many). */
static void raw_publish_ids(uint64_t producer, const char *queue, uint64_t first, uint64_t last)
{
    struct raw r;
    raw_open(&r, &daemon_);
    raw_hello_with(&r, (struct ferry_frame){ .name = raw_bytes("raw-producer"),
                                             .producer = producer }, NULL);
    for (uint64_t id = first; id <= last; id++) {
        char payload[32];
        snprintf(payload, sizeof payload, "id %llu", (unsigned long long)id);
        struct ferry_frame pub = { .type = FERRY_F_PUBLISH, .queue = raw_bytes(queue),
                                   .payload = raw_bytes(payload), .id = id, .has_id = true };
        raw_send(&r, &pub);
    }
    uint64_t confirmed = 0;
    struct ferry_frame f;
    while (confirmed < last - first + 1) {
        ck_assert_msg(raw_next(&r, &f), "no CONFIRM");
        ck_assert_msg(f.type == FERRY_F_CONFIRM, "got %s", ferry_frame_type_name(f.type));
        confirmed += f.list_count;
    }
    raw_close(&r);
}

static uint64_t depth_of(ferry_conn *c, const char *queue)
{
    struct ferry_stats *st = NULL;
    ck_assert_int_eq(ferry_stats(c, queue, &st), FERRY_OK);
    uint64_t depth = st->queues[0].depth;
    ferry_stats_free(st);
    return depth;
}

/* Publishes 1..3, a cut, then 2..5 again from a new connection of the same
 * producer: 2 and 3 are confirmed but queued once; another producer's and
 * an anonymous connection's same ids are queued (they are other messages). */
START_TEST(test_a_producer_sending_ids_again_after_a_reconnect_is_confirmed_once)
{
    ferry_conn *admin = connect_named("admin");
    raw_publish_ids(0x1234, "dedup", 1, 3);
    raw_publish_ids(0x1234, "dedup", 2, 5);
    ck_assert_uint_eq(depth_of(admin, "dedup"), 5);
    struct ferry_stats *st = NULL;
    ck_assert_int_eq(ferry_stats(admin, NULL, &st), FERRY_OK);
    ck_assert_uint_eq(st->duplicates_dropped, 2); /* ids 2 and 3 */
    ck_assert_uint_eq(st->duplicates_evicted, 0);
    ferry_stats_free(st);
    raw_publish_ids(0x9999, "dedup", 1, 2);
    ck_assert_uint_eq(depth_of(admin, "dedup"), 7);
    raw_publish_ids(0, "dedup", 1, 2);
    ck_assert_uint_eq(depth_of(admin, "dedup"), 9);
    ferry_close(admin);
}
END_TEST

/* ---- the last ACK before a close ------------------------------------------- */

/* A raw consumer takes a small message and a 4 MiB one (credit 2), acks
 * the small one and closes at once, as `ferry consume -n 1` does, while
 * most of the large one still waits in ferryd's output. ferryd's next
 * write then fails (the peer is gone): the ACK, already in the socket,
 * must still be handled (ferryd used to close without reading it, and the
 * acked message came back). `stop`: ferryd is stopped meanwhile, so that
 * it sees the ACK, the close and a writable socket at once; else its
 * output bound is small, so that the large delivery throttles it (then it
 * reads nothing until it could write). */
static void ack_then_close(bool stop)
{
    enum { BIG = 4 * 1024 * 1024 };
    if (!stop) {
        ck_assert_int_eq(ferryd_terminate(&daemon_), 0); /* exited cleanly */
        ck_assert_int_eq(ferryd_write_conf(&daemon_, "[limits]\nmax_output = 64KiB\n"), 0);
        ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    }
    ferry_conn *admin = connect_named("admin");
    ck_assert_int_eq(ferry_publish(admin, "last", "small", 5, NULL, 0, 0), FERRY_OK);
    char *big = calloc(1, BIG);
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(ferry_publish(admin, "last", big, BIG, NULL, 0, 0), FERRY_OK);
    free(big);
    ck_assert_int_eq(ferry_flush(admin, 10000), FERRY_OK);

    struct raw r;
    raw_open(&r, &daemon_);
    raw_hello_with(&r, (struct ferry_frame){ .name = raw_bytes("acker") }, NULL);
    struct ferry_frame consume = { .type = FERRY_F_CONSUME, .rid = 1, .queue = raw_bytes("last"),
                                   .sub = 1, .credit = 2 };
    raw_send(&r, &consume);
    struct ferry_frame f;
    do
        ck_assert_msg(raw_next(&r, &f), "no DELIVER");
    while (f.type != FERRY_F_DELIVER);
    ck_assert_uint_eq(f.payload.len, 5);
    uint64_t tag = f.tag;
    /* The large delivery waits in ferryd's output (the socket took a part). */
    long long until = harness_now_ms() + 10000;
    for (bool waiting = false; !waiting;) {
        struct ferry_connections *l = NULL;
        ck_assert_int_eq(ferry_connections(admin, &l), FERRY_OK);
        const struct ferry_conn_info *a = find_by_name(l, "acker");
        waiting = a != NULL && a->out_bytes > 0;
        ferry_connections_free(l);
        ck_assert_msg(waiting || harness_now_ms() < until, "the large delivery never backed up");
        if (!waiting)
            harness_sleep_ms(10);
    }
    if (stop)
        ck_assert_int_eq(kill(daemon_.pid, SIGSTOP), 0);
    struct ferry_frame ack = { .type = FERRY_F_ACK, .uints = &tag, .uint_count = 1 };
    raw_send(&r, &ack);
    raw_close(&r); /* with the large delivery unread */
    if (stop) {
        harness_sleep_ms(100);
        ck_assert_int_eq(kill(daemon_.pid, SIGCONT), 0);
    }

    /* Once the connection is gone: the small message acked, the large back. */
    until = harness_now_ms() + 10000;
    for (;;) {
        struct ferry_stats *st = NULL;
        ck_assert_int_eq(ferry_stats(admin, "last", &st), FERRY_OK);
        struct ferry_queue_info q = st->queues[0];
        ferry_stats_free(st);
        if (q.inflight == 0) {
            ck_assert_msg(q.acked == 1 && q.depth == 1,
                          "the ACK before the close was lost: acked %llu, depth %llu",
                          (unsigned long long)q.acked, (unsigned long long)q.depth);
            break;
        }
        ck_assert_msg(harness_now_ms() < until, "the consumer's connection was never closed");
        harness_sleep_ms(10);
    }
    ferry_message *m = NULL;
    ck_assert_int_eq(ferry_get(admin, "last", 10000, &m), FERRY_OK);
    ck_assert_uint_eq(m->len, BIG);
    ck_assert_uint_eq(m->attempt, 2);
    ck_assert_int_eq(ferry_ack(admin, m->tag), FERRY_OK);
    ferry_message_free(m);
    ferry_close(admin);
}

START_TEST(test_an_ack_just_before_the_close_counts_when_ferryd_sees_both_at_once)
{
    ack_then_close(true);
}
END_TEST

START_TEST(test_an_ack_just_before_the_close_counts_when_ferryd_is_throttled)
{
    ack_then_close(false);
}
END_TEST

static Suite *liveness_suite(void)
{
    Suite *s = suite_create("liveness");
    TCase *tc = tcase_create("heartbeat");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, harness_valgrind() ? 600 : 60);
    tcase_add_test(tc, test_a_silent_consumer_is_closed_and_its_messages_go_to_another);
    tcase_add_test(tc, test_a_stopped_process_is_closed_and_its_messages_go_to_another);
    tcase_add_test(tc, test_half_a_frame_then_silence_is_closed_by_the_heartbeat);
    tcase_add_test(tc, test_a_reloaded_heartbeat_timeout_applies_to_open_connections);
    tcase_add_test(tc, test_an_idle_blocking_client_stays_connected);
    tcase_add_test(tc, test_an_idle_consumer_on_a_libevent_loop_stays_connected);
    tcase_add_test(tc, test_an_idle_client_on_a_foreign_loop_stays_connected);
    tcase_add_test(tc, test_a_blocking_call_fails_when_the_broker_falls_silent);
    suite_add_tcase(s, tc);

    TCase *conns = tcase_create("connections");
    tcase_add_checked_fixture(conns, setup_default, teardown);
    tcase_set_timeout(conns, harness_valgrind() ? 600 : 60);
    tcase_add_test(conns, test_connections_name_the_slow_consumer_and_kill_frees_its_messages);
    tcase_add_test(conns, test_connections_beyond_one_page_are_all_listed_once);
    tcase_add_test(conns, test_a_producer_sending_ids_again_after_a_reconnect_is_confirmed_once);
    tcase_add_test(conns, test_an_ack_just_before_the_close_counts_when_ferryd_sees_both_at_once);
    tcase_add_test(conns, test_an_ack_just_before_the_close_counts_when_ferryd_is_throttled);
    suite_add_tcase(s, conns);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(liveness_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
