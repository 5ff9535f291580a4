/*
 * test_spine.c - the whole path of a message through a real ferryd:
 * producer threads and processes, asynchronous consumers, acknowledgement,
 * redelivery after a consumer dies, end-of-stream, join, bad clients.
 */
#include "harness.h"

#include <check.h>
#include <event2/event.h>
#include <ferry.h>
#include <ferry_proto.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct ferryd daemon_;

static void setup(void)
{
    ck_assert_int_eq(ferryd_start(&daemon_, NULL), 0);
}

static void teardown(void)
{
    /* A sanitizer's or memcheck's report at ferryd's exit fails the test. */
    ck_assert_msg(ferryd_stop(&daemon_) == 0, "ferryd did not exit cleanly (see above)");
}

static ferry_conn *connect_or_fail(void)
{
    ferry_conn *c = NULL;
    int rc = ferry_connect(daemon_.url, &c);
    ck_assert_msg(rc == FERRY_OK, "connect: %s", ferry_strerror(rc));
    return c;
}

/* ---- many producers, three asynchronous consumers ------------------------ */

#define SPINE_THREADS 8
#define SPINE_PROCS 4
#define SPINE_PRODUCERS (SPINE_THREADS + SPINE_PROCS)
#define SPINE_CONSUMERS 3

static long spine_per_producer(void)
{
    const char *s = getenv("FERRY_TEST_MESSAGES");
    return s ? atol(s) : 100000;
}

struct spine_payload {
    uint32_t producer;
    uint32_t seq;
};

static int produce(ferry_conn *c, const char *queue, uint32_t producer, long count)
{
    for (long i = 0; i < count; i++) {
        struct spine_payload p = { producer, (uint32_t)i };
        int rc = ferry_publish(c, queue, &p, sizeof p, NULL, 0, 0);
        if (rc != FERRY_OK)
            return rc;
    }
    return ferry_flush(c, 60000);
}

struct spine_thread {
    ferry_conn *conn;
    uint32_t producer;
    long count;
    int rc;
};

static void *spine_producer_thread(void *arg)
{
    struct spine_thread *t = arg;
    t->rc = produce(t->conn, "spine", t->producer, t->count);
    return NULL;
}

struct spine_consumer {
    pthread_t thread;
    struct event_base *base;
    ferry_conn *conn;
    atomic_uchar *seen;        /* shared: deliveries per message */
    long per_producer;
    long received;
    long out_of_order;
    long last_seq[SPINE_PRODUCERS];
    bool got_eos;
};

static void spine_on_message(ferry_conn *c, const ferry_message *m, void *arg)
{
    struct spine_consumer *sc = arg;
    struct spine_payload p;
    ck_assert_uint_eq(m->len, sizeof p);
    memcpy(&p, m->data, sizeof p);
    ck_assert_uint_lt(p.producer, SPINE_PRODUCERS);
    ck_assert_int_lt(p.seq, sc->per_producer);
    atomic_fetch_add(&sc->seen[(long)p.producer * sc->per_producer + p.seq], 1);
    if ((long)p.seq <= sc->last_seq[p.producer])
        sc->out_of_order++;
    sc->last_seq[p.producer] = p.seq;
    sc->received++;
    ck_assert_int_eq(ferry_ack(c, m->tag), FERRY_OK);
}

static void spine_on_eos(ferry_conn *c, uint64_t sub, const char *queue, void *arg)
{
    struct spine_consumer *sc = arg;
    sc->got_eos = true;
    event_base_loopbreak(sc->base);
}

static void *spine_consumer_loop(void *arg)
{
    struct spine_consumer *sc = arg;
    event_base_dispatch(sc->base);
    return NULL;
}

START_TEST(test_every_message_arrives_exactly_once_and_in_producer_order)
{
    long per = spine_per_producer();
    atomic_uchar *seen = calloc((size_t)(SPINE_PRODUCERS * per), sizeof *seen);
    struct spine_consumer consumers[SPINE_CONSUMERS];

    /* Producer processes first: fork before this process starts threads. */
    pid_t procs[SPINE_PROCS];
    for (int i = 0; i < SPINE_PROCS; i++) {
        procs[i] = fork();
        if (procs[i] == 0) {
            ferry_conn *c;
            if (ferry_connect(daemon_.url, &c) != FERRY_OK)
                _exit(3);
            int rc = produce(c, "spine", SPINE_THREADS + (uint32_t)i, per);
            ferry_close(c);
            _exit(rc == FERRY_OK ? 0 : 1);
        }
    }

    for (int i = 0; i < SPINE_CONSUMERS; i++) {
        struct spine_consumer *sc = &consumers[i];
        memset(sc, 0, sizeof *sc);
        sc->seen = seen;
        sc->per_producer = per;
        for (int p = 0; p < SPINE_PRODUCERS; p++)
            sc->last_seq[p] = -1;
        sc->base = event_base_new();
        sc->conn = connect_or_fail();
        struct ferry_consume_options o = { .credit = 256, .on_message = spine_on_message,
                                           .on_eos = spine_on_eos, .arg = sc };
        uint64_t sub;
        ck_assert_int_eq(ferry_attach(sc->conn, sc->base), FERRY_OK);
        ck_assert_int_eq(ferry_consume(sc->conn, "spine", &o, &sub), FERRY_OK);
        pthread_create(&sc->thread, NULL, spine_consumer_loop, sc);
    }

    /* Eight threads: half share one connection, half have their own. */
    ferry_conn *shared = connect_or_fail();
    struct spine_thread threads[SPINE_THREADS];
    pthread_t tids[SPINE_THREADS];
    for (int i = 0; i < SPINE_THREADS; i++) {
        threads[i] = (struct spine_thread){ i % 2 ? shared : connect_or_fail(), (uint32_t)i, per, -1 };
        pthread_create(&tids[i], NULL, spine_producer_thread, &threads[i]);
    }
    for (int i = 0; i < SPINE_THREADS; i++) {
        pthread_join(tids[i], NULL);
        ck_assert_msg(threads[i].rc == FERRY_OK, "producer thread %d: %s", i, ferry_strerror(threads[i].rc));
        if (threads[i].conn != shared)
            ferry_close(threads[i].conn);
    }
    for (int i = 0; i < SPINE_PROCS; i++) {
        int status;
        waitpid(procs[i], &status, 0);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "producer process %d failed", i);
    }

    /* The sentinel: consumers stop at end of stream, once all is acked. */
    ck_assert_int_eq(ferry_end(shared, "spine"), FERRY_OK);
    ck_assert_int_eq(ferry_join(shared, "spine", 60000), FERRY_OK);

    long total = 0, out_of_order = 0;
    for (int i = 0; i < SPINE_CONSUMERS; i++) {
        pthread_join(consumers[i].thread, NULL);
        ck_assert_msg(consumers[i].got_eos, "consumer %d got no end of stream", i);
        total += consumers[i].received;
        out_of_order += consumers[i].out_of_order;
        ferry_close(consumers[i].conn);
        event_base_free(consumers[i].base);
    }
    long missing = 0, duplicated = 0;
    for (long i = 0; i < SPINE_PRODUCERS * per; i++) {
        missing += seen[i] == 0;
        duplicated += seen[i] > 1;
    }
    printf("spine: %ld messages from %d producers to %d consumers; missing %ld, duplicated %ld, out of order %ld\n",
           total, SPINE_PRODUCERS, SPINE_CONSUMERS, missing, duplicated, out_of_order);
    ck_assert_int_eq(missing, 0);
    ck_assert_int_eq(duplicated, 0);
    ck_assert_int_eq(out_of_order, 0);
    ck_assert_int_eq(total, SPINE_PRODUCERS * per);
    /* Each consumer got a share: dispatch is round robin. */
    for (int i = 0; i < SPINE_CONSUMERS; i++)
        ck_assert_int_gt(consumers[i].received, 0);

    struct ferry_stats *st;
    ck_assert_int_eq(ferry_stats(shared, "spine", &st), FERRY_OK);
    ck_assert_uint_eq(st->count, 1);
    ck_assert_uint_eq(st->queues[0].published, (uint64_t)total);
    ck_assert_uint_eq(st->queues[0].acked, (uint64_t)total);
    ck_assert_uint_eq(st->queues[0].depth, 0);
    ck_assert(st->queues[0].ended);
    ferry_stats_free(st);
    ferry_close(shared);
    free(seen);
}
END_TEST

/* ---- redelivery after a consumer is killed -------------------------------- */

START_TEST(test_unacked_messages_of_a_killed_consumer_are_redelivered)
{
    ferry_conn *c = connect_or_fail();
    for (uint32_t i = 0; i < 100; i++)
        ck_assert_int_eq(ferry_publish(c, "redeliver", &i, sizeof i, NULL, 0, 0), FERRY_OK);
    ck_assert_int_eq(ferry_flush(c, 10000), FERRY_OK);

    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t child = fork();
    if (child == 0) {
        /* Take 40 messages, ack none, and wait to be killed. */
        ferry_conn *cc;
        if (ferry_connect(daemon_.url, &cc) != FERRY_OK)
            _exit(3);
        for (int i = 0; i < 40; i++) {
            ferry_message *m;
            if (ferry_get(cc, "redeliver", 5000, &m) != FERRY_OK)
                _exit(4);
            ferry_message_free(m);
        }
        if (write(ready[1], "r", 1) != 1)
            _exit(5);
        pause();
        _exit(0);
    }
    char r;
    ck_assert_int_eq(read(ready[0], &r, 1), 1);
    struct ferry_stats *st;
    ck_assert_int_eq(ferry_stats(c, "redeliver", &st), FERRY_OK);
    ck_assert_uint_eq(st->queues[0].inflight, 40);
    ck_assert_uint_eq(st->queues[0].depth, 60);
    ferry_stats_free(st);

    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    /* ferryd learns of the death from the socket's EOF, in a turn of its
     * loop that may come after our next request: wait for the requeue. */
    long long deadline = harness_now_ms() + 5000;
    uint64_t inflight;
    do {
        ck_assert_int_eq(ferry_stats(c, "redeliver", &st), FERRY_OK);
        inflight = st->queues[0].inflight;
        ferry_stats_free(st);
    } while (inflight > 0 && harness_now_ms() < deadline && usleep(1000) == 0);
    ck_assert_uint_eq(inflight, 0);

    /* All 100 come back, the 40 first and in order, with attempt 2. */
    for (uint32_t i = 0; i < 100; i++) {
        ferry_message *m;
        int rc = ferry_get(c, "redeliver", 5000, &m);
        ck_assert_msg(rc == FERRY_OK, "get %u: %s", i, ferry_strerror(rc));
        uint32_t v;
        memcpy(&v, m->data, sizeof v);
        ck_assert_uint_eq(v, i);
        ck_assert_uint_eq(m->attempt, i < 40 ? 2 : 1);
        ck_assert_int_eq(ferry_ack(c, m->tag), FERRY_OK);
        ferry_message_free(m);
    }
    ck_assert_int_eq(ferry_stats(c, "redeliver", &st), FERRY_OK);
    ck_assert_uint_eq(st->queues[0].redelivered, 40);
    ferry_stats_free(st);
    ferry_close(c);
}
END_TEST

/* ---- end of stream and join ------------------------------------------------ */

struct joiner {
    const char *url;
    int rc;
    atomic_bool done;
};

static void *join_thread(void *arg)
{
    struct joiner *j = arg;
    ferry_conn *c;
    j->rc = ferry_connect(j->url, &c);
    if (j->rc == FERRY_OK) {
        j->rc = ferry_join(c, "eos", 20000);
        ferry_close(c);
    }
    atomic_store(&j->done, true);
    return NULL;
}

START_TEST(test_join_waits_until_every_earlier_message_is_acked)
{
    ferry_conn *c = connect_or_fail();
    ck_assert_int_eq(ferry_join(c, "eos", 1000), FERRY_OK); /* nothing pending: at once */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(ferry_publish(c, "eos", "x", 1, NULL, 0, FERRY_PUBLISH_CONFIRM), FERRY_OK);

    struct joiner j = { daemon_.url, -1, false };
    pthread_t t;
    pthread_create(&t, NULL, join_thread, &j);
    ferry_message *held[10];
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(ferry_get(c, "eos", 5000, &held[i]), FERRY_OK);
    usleep(200000);
    ck_assert_msg(!atomic_load(&j.done), "join returned while messages were unacked");
    /* Messages published after the join do not hold it up. */
    ck_assert_int_eq(ferry_publish(c, "eos", "late", 4, NULL, 0, FERRY_PUBLISH_CONFIRM), FERRY_OK);
    for (int i = 0; i < 9; i++) {
        ck_assert_int_eq(ferry_ack(c, held[i]->tag), FERRY_OK);
        ferry_message_free(held[i]);
    }
    usleep(200000);
    ck_assert(!atomic_load(&j.done));
    ck_assert_int_eq(ferry_ack(c, held[9]->tag), FERRY_OK);
    ferry_message_free(held[9]);
    pthread_join(t, NULL);
    ck_assert_int_eq(j.rc, FERRY_OK);
    ferry_close(c);
}
END_TEST

struct eos_state {
    struct event_base *base;
    int messages;
    int eos;
    bool ack;
};

static void eos_on_message(ferry_conn *c, const ferry_message *m, void *arg)
{
    struct eos_state *st = arg;
    st->messages++;
    if (st->ack)
        ferry_ack(c, m->tag);
}

static void eos_on_eos(ferry_conn *c, uint64_t sub, const char *queue, void *arg)
{
    struct eos_state *st = arg;
    st->eos++;
    event_base_loopbreak(st->base);
}

static void eos_timeout(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

START_TEST(test_end_of_stream_comes_after_the_last_ack_and_refuses_publishes)
{
    ferry_conn *p = connect_or_fail();
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(ferry_publish(p, "ending", "m", 1, NULL, 0, 0), FERRY_OK);
    ck_assert_int_eq(ferry_end(p, "ending"), FERRY_OK);

    /* Refused while ended, with the ENDED code. */
    ck_assert_int_eq(ferry_publish(p, "ending", "no", 2, NULL, 0, FERRY_PUBLISH_CONFIRM), FERRY_ESERVER);
    ck_assert_int_eq(ferry_server_error(NULL), FERRY_CODE_ENDED);

    /* A consumer that does not ack gets the messages but no EOS. */
    ferry_conn *c = connect_or_fail();
    struct eos_state st = { event_base_new(), 0, 0, false };
    struct ferry_consume_options o = { .credit = 10, .on_message = eos_on_message, .on_eos = eos_on_eos, .arg = &st };
    uint64_t sub;
    ck_assert_int_eq(ferry_attach(c, st.base), FERRY_OK);
    ck_assert_int_eq(ferry_consume(c, "ending", &o, &sub), FERRY_OK);
    struct event *tm = evtimer_new(st.base, eos_timeout, st.base);
    struct timeval half = { 0, 500000 };
    evtimer_add(tm, &half);
    event_base_dispatch(st.base);
    ck_assert_int_eq(st.messages, 5);
    ck_assert_int_eq(st.eos, 0);
    ferry_close(c); /* the 5 go back to the queue */

    /* A consumer that acks gets all five, then exactly one EOS. */
    c = connect_or_fail();
    st = (struct eos_state){ st.base, 0, 0, true };
    ck_assert_int_eq(ferry_attach(c, st.base), FERRY_OK);
    ck_assert_int_eq(ferry_consume(c, "ending", &o, &sub), FERRY_OK);
    struct timeval limit = { 10, 0 };
    evtimer_add(tm, &limit);
    event_base_dispatch(st.base);
    ck_assert_int_eq(st.messages, 5);
    ck_assert_int_eq(st.eos, 1);

    /* A late subscriber to an ended, drained queue gets EOS at once. */
    ferry_message *m;
    ck_assert_int_eq(ferry_get(p, "ending", 100, &m), FERRY_EENDED);

    /* Reopen: publishes are accepted again. */
    ck_assert_int_eq(ferry_reopen(p, "ending"), FERRY_OK);
    ck_assert_int_eq(ferry_publish(p, "ending", "yes", 3, NULL, 0, FERRY_PUBLISH_CONFIRM), FERRY_OK);
    event_free(tm);
    ferry_close(c);
    ferry_close(p);
    event_base_free(st.base);
}
END_TEST

START_TEST(test_busy_polling_dispatch_delivers_everything_and_stops_on_loopbreak)
{
    ferry_conn *p = connect_or_fail();
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(ferry_publish(p, "busy", "m", 1, NULL, 0, 0), FERRY_OK);
    ck_assert_int_eq(ferry_end(p, "busy"), FERRY_OK);

    ferry_conn *c = connect_or_fail();
    ck_assert_int_eq(ferry_dispatch(c, 100), FERRY_EINVAL); /* not attached */
    struct eos_state st = { event_base_new(), 0, 0, true };
    struct ferry_consume_options o = { .credit = 64, .on_message = eos_on_message, .on_eos = eos_on_eos, .arg = &st };
    uint64_t sub;
    ck_assert_int_eq(ferry_attach(c, st.base), FERRY_OK);
    ck_assert_int_eq(ferry_consume(c, "busy", &o, &sub), FERRY_OK);
    struct event *tm = evtimer_new(st.base, eos_timeout, st.base);
    struct timeval limit = { 10, 0 };
    evtimer_add(tm, &limit);
    long long t0 = harness_now_ms();
    /* The end of stream breaks the loop; the timer only bounds the test. */
    ck_assert_int_eq(ferry_dispatch(c, 1000), FERRY_OK);
    ck_assert_int_lt(harness_now_ms() - t0, 10000);
    ck_assert_int_eq(st.messages, 1000);
    ck_assert_int_eq(st.eos, 1);
    event_free(tm);
    ferry_close(c);
    ferry_close(p);
    event_base_free(st.base);
}
END_TEST

/* ---- hostile clients ------------------------------------------------------- */

/* Reads one frame from a raw socket into *f (body kept in buf). */
static int read_frame(int fd, uint8_t *buf, size_t cap, struct ferry_frame *f)
{
    size_t have = 0;
    for (;;) {
        struct ferry_bytes body;
        size_t used;
        if (ferry_frame_split(buf, have, cap, &body, &used) == FERRY_SPLIT_FRAME) {
            const char *why;
            return ferry_frame_decode(body.ptr, body.len, f, &why) == FERRY_CODE_OK ? 0 : -1;
        }
        ssize_t n = read(fd, buf + have, cap - have);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
}

static bool peer_closed(int fd)
{
    uint8_t b[64];
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return read(fd, b, sizeof b) == 0;
}

START_TEST(test_bad_frame_gets_an_error_and_only_that_client_is_closed)
{
    ferry_conn *good = connect_or_fail();
    ck_assert_int_eq(ferry_publish(good, "calm", "before", 6, NULL, 0, FERRY_PUBLISH_CONFIRM), FERRY_OK);

    static const struct { const char *name; uint8_t bytes[16]; size_t len; uint32_t code; } cases[] = {
        { "garbage body", { 0, 0, 0, 3, 0xc1, 0xc1, 0xc1 }, 7, FERRY_CODE_BAD_FRAME },
        { "4 GiB length prefix", { 0xff, 0xff, 0xff, 0xff }, 4, FERRY_CODE_FRAME_TOO_LARGE },
        { "publish before hello", { 0, 0, 0, 12, 0x83, 0xa1, 't', 10, 0xa1, 'q', 0xa1, 'a', 0xa1, 'p', 0xc4, 0 }, 16,
          FERRY_CODE_HANDSHAKE },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = harness_raw_connect(&daemon_);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, cases[i].bytes, cases[i].len), (ssize_t)cases[i].len);
        uint8_t buf[4096];
        struct ferry_frame f;
        ck_assert_msg(read_frame(fd, buf, sizeof buf, &f) == 0, "%s: no error frame", cases[i].name);
        ck_assert_int_eq(f.type, FERRY_F_ERROR);
        ck_assert_msg(f.code == cases[i].code, "%s: code %u", cases[i].name, f.code);
        ck_assert(f.fatal);
        ck_assert_msg(peer_closed(fd), "%s: connection left open", cases[i].name);
        close(fd);
    }

    /* The well-behaved client never noticed. */
    ck_assert_int_eq(ferry_publish(good, "calm", "after", 5, NULL, 0, FERRY_PUBLISH_CONFIRM), FERRY_OK);
    ferry_message *m;
    ck_assert_int_eq(ferry_get(good, "calm", 1000, &m), FERRY_OK);
    ck_assert_int_eq(m->len, 6);
    ck_assert_int_eq(memcmp(m->data, "before", 6), 0);
    ck_assert_int_eq(ferry_ack(good, m->tag), FERRY_OK);
    ferry_message_free(m);
    ck_assert(ferryd_alive(&daemon_));
    ferry_close(good);
}
END_TEST

START_TEST(test_get_times_out_on_an_empty_queue)
{
    ferry_conn *c = connect_or_fail();
    ferry_message *m = NULL;
    long long t0 = harness_now_ms();
    ck_assert_int_eq(ferry_get(c, "empty", 200, &m), FERRY_ETIMEDOUT);
    long long waited = harness_now_ms() - t0;
    ck_assert_int_ge(waited, 150);
    ck_assert_int_lt(waited, 3000);
    ck_assert_ptr_null(m);
    ferry_close(c);
}
END_TEST

START_TEST(test_headers_travel_with_the_message)
{
    ferry_conn *c = connect_or_fail();
    struct ferry_header h[2] = { { "kind", "resize", 6 }, { "id", "42", 2 } };
    ck_assert_int_eq(ferry_publish(c, "hdr", "body", 4, h, 2, FERRY_PUBLISH_CONFIRM), FERRY_OK);
    ferry_message *m;
    ck_assert_int_eq(ferry_get(c, "hdr", 1000, &m), FERRY_OK);
    const void *v;
    size_t len;
    ck_assert(ferry_message_header(m, "kind", &v, &len));
    ck_assert_int_eq(len, 6);
    ck_assert_int_eq(memcmp(v, "resize", 6), 0);
    ck_assert(ferry_message_header(m, "id", &v, &len));
    ck_assert(!ferry_message_header(m, "absent", &v, &len));
    ck_assert_int_eq(ferry_ack(c, m->tag), FERRY_OK);
    ferry_message_free(m);
    ferry_close(c);
}
END_TEST

START_TEST(test_purge_and_delete_and_bad_names)
{
    ferry_conn *c = connect_or_fail();
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(ferry_publish(c, "trash", "x", 1, NULL, 0, 0), FERRY_OK);
    ck_assert_int_eq(ferry_flush(c, 5000), FERRY_OK);
    uint64_t n = 0;
    ck_assert_int_eq(ferry_purge(c, "trash", &n), FERRY_OK);
    ck_assert_uint_eq(n, 7);
    ck_assert_int_eq(ferry_delete(c, "trash"), FERRY_OK);
    ck_assert_int_eq(ferry_delete(c, "trash"), FERRY_ESERVER);
    ck_assert_int_eq(ferry_server_error(NULL), FERRY_CODE_NOT_FOUND);
    ck_assert_int_eq(ferry_declare(c, "bad name!"), FERRY_EINVAL);
    ferry_close(c);
}
END_TEST

START_TEST(test_a_forked_child_cannot_use_the_parents_connection)
{
    ferry_conn *c = connect_or_fail();
    pid_t child = fork();
    if (child == 0) {
        int rc = ferry_publish(c, "forked", "x", 1, NULL, 0, 0);
        ferry_close(c);
        _exit(rc == FERRY_EFORKED ? 0 : 1);
    }
    int status;
    waitpid(child, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The parent's connection is intact. */
    ck_assert_int_eq(ferry_publish(c, "forked", "y", 1, NULL, 0, FERRY_PUBLISH_CONFIRM), FERRY_OK);
    ferry_close(c);
}
END_TEST

static Suite *spine_suite(void)
{
    Suite *s = suite_create("spine");
    TCase *tc = tcase_create("daemon");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_every_message_arrives_exactly_once_and_in_producer_order);
    tcase_add_test(tc, test_unacked_messages_of_a_killed_consumer_are_redelivered);
    tcase_add_test(tc, test_join_waits_until_every_earlier_message_is_acked);
    tcase_add_test(tc, test_end_of_stream_comes_after_the_last_ack_and_refuses_publishes);
    tcase_add_test(tc, test_busy_polling_dispatch_delivers_everything_and_stops_on_loopbreak);
    tcase_add_test(tc, test_bad_frame_gets_an_error_and_only_that_client_is_closed);
    tcase_add_test(tc, test_get_times_out_on_an_empty_queue);
    tcase_add_test(tc, test_headers_travel_with_the_message);
    tcase_add_test(tc, test_purge_and_delete_and_bad_names);
    tcase_add_test(tc, test_a_forked_child_cannot_use_the_parents_connection);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(spine_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
