/*
 * test_flow.c - flow control through a real ferryd, libferry and the CLI:
 * block (a publish waits until a consumer drains the queue while a producer
 * of another queue on another connection goes on), reject (an error per
 * publish id, the CLI's exit status), drop-oldest (its count), the global
 * max_queued_memory, and the slow consumer: one message a second taken
 * while producers publish a million, ferryd's memory staying bounded.
 */
#include "harness.h"

#include <check.h>
#include <ferry.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 20000

static struct ferryd daemon_;

static void teardown(void)
{
    ck_assert_int_eq(ferryd_stop(&daemon_), 0);
}

static void start_with(const char *conf)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    ck_assert_int_eq(ferryd_write_conf(&daemon_, conf), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
}

static void ok(int rc, const char *what)
{
    ck_assert_msg(rc == FERRY_OK, "%s: %s", what, ferry_strerror(rc));
}

static ferry_conn *connect_with_output(size_t max_output)
{
    struct ferry_options o = { .url = daemon_.url, .max_output_bytes = max_output };
    ferry_conn *c = NULL;
    ok(ferry_connect_opts(&o, &c), "connect");
    return c;
}

static ferry_conn *connect_plain(void)
{
    return connect_with_output(0);
}

/* The stats of one queue (it must exist) and the server's, by value. */
struct snapshot {
    struct ferry_queue_info q;
    uint64_t memory, max_memory, parked;
};

static struct snapshot snapshot_of(ferry_conn *c, const char *queue)
{
    struct ferry_stats *st = NULL;
    ok(ferry_stats(c, queue, &st), "stats");
    ck_assert_uint_eq(st->count, 1);
    struct snapshot s = {
        .q = st->queues[0], .memory = st->memory, .max_memory = st->max_memory,
        .parked = st->parked,
    };
    s.q.name = NULL; /* it points into st */
    ferry_stats_free(st);
    return s;
}

static uint64_t parked_now(ferry_conn *c)
{
    struct ferry_stats *st = NULL;
    ok(ferry_stats(c, NULL, &st), "stats");
    uint64_t parked = st->parked;
    ferry_stats_free(st);
    return parked;
}

/* Waits until the broker says `parked` connections are parked. */
static void wait_parked(ferry_conn *c, uint64_t parked)
{
    long long deadline = harness_now_ms() + WAIT_MS;
    while (parked_now(c) != parked) {
        ck_assert_msg(harness_now_ms() < deadline, "never %llu parked", (unsigned long long)parked);
        harness_sleep_ms(10);
    }
}

/* ---- block ---- */

#define BLOCK_MESSAGES 4000
#define BLOCK_PAYLOAD 1024

struct producer {
    ferry_conn *conn;
    const char *queue;
    int id;    /* payloads are "ID.N", N counting from 0 */
    int count;
    int published; /* read by the test thread while it runs */
    int rc;
    pthread_mutex_t mu;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    char payload[BLOCK_PAYLOAD];
    int rc = FERRY_OK;
    for (int i = 0; i < p->count && rc == FERRY_OK; i++) {
        memset(payload, 'a' + i % 26, sizeof payload);
        snprintf(payload, sizeof payload, "%d.%d", p->id, i);
        rc = ferry_publish(p->conn, p->queue, payload, sizeof payload, NULL, 0, 0);
        pthread_mutex_lock(&p->mu);
        p->published = i + 1;
        pthread_mutex_unlock(&p->mu);
    }
    if (rc == FERRY_OK)
        rc = ferry_flush(p->conn, WAIT_MS);
    p->rc = rc;
    return NULL;
}

static int published_so_far(struct producer *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->published;
    pthread_mutex_unlock(&p->mu);
    return n;
}

START_TEST(test_block_holds_the_producer_until_a_consumer_drains_and_others_go_on)
{
    start_with("[queue \"small\"]\nmax_length = 8\noverflow = block\n");
    ferry_conn *admin = connect_plain();
    /* A small output bound, so that the producer's own buffer fills soon
     * after the broker stops reading it. */
    struct producer p = { .conn = connect_with_output(64 * 1024), .queue = "small",
                          .count = BLOCK_MESSAGES, .rc = -100 };
    pthread_mutex_init(&p.mu, NULL);
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, produce, &p), 0);

    /* The queue fills and the producer's connection is parked... */
    wait_parked(admin, 1);
    struct snapshot s = snapshot_of(admin, "small");
    ck_assert_uint_eq(s.q.depth, 8);
    ck_assert_uint_ge(s.q.blocked, 1);
    ck_assert_str_eq(s.q.overflow, "block");
    /* ...and its publishes stop once the socket and its output bound are
     * full: no progress for half a second, far from the end. */
    long long deadline = harness_now_ms() + WAIT_MS;
    int stuck = -1;
    while (published_so_far(&p) != stuck) {
        ck_assert_msg(harness_now_ms() < deadline, "the producer never stopped");
        stuck = published_so_far(&p);
        harness_sleep_ms(500);
    }
    ck_assert_int_lt(stuck, BLOCK_MESSAGES / 2);

    /* Another connection publishing to another queue is not held up. */
    ferry_conn *other = connect_plain();
    long long before = harness_now_ms();
    for (int i = 0; i < 100; i++)
        ok(ferry_publish(other, "elsewhere", "x", 1, NULL, 0, FERRY_PUBLISH_CONFIRM), "other");
    ck_assert_int_lt(harness_now_ms() - before, 5000);
    ck_assert_uint_eq(snapshot_of(admin, "elsewhere").q.depth, 100);

    /* A consumer drains the queue: every publish completes, in order. */
    ferry_conn *consumer = connect_plain();
    for (int i = 0; i < BLOCK_MESSAGES; i++) {
        ferry_message *m = NULL;
        ok(ferry_get(consumer, "small", WAIT_MS, &m), "get");
        char want[16];
        snprintf(want, sizeof want, "0.%d", i);
        ck_assert_msg(strcmp((const char *)m->data, want) == 0, "message %d out of order", i);
        ok(ferry_ack(consumer, m->tag), "ack");
        ferry_message_free(m);
    }
    ck_assert_int_eq(pthread_join(thread, NULL), 0);
    ok(p.rc, "the blocked producer");
    s = snapshot_of(admin, "small");
    ck_assert_uint_eq(s.q.published, BLOCK_MESSAGES);
    ck_assert_uint_eq(s.q.rejected, 0);
    ck_assert_uint_eq(s.parked, 0);
    ferry_close(consumer);
    ferry_close(other);
    ferry_close(p.conn);
    ferry_close(admin);
    pthread_mutex_destroy(&p.mu);
}
END_TEST

START_TEST(test_many_blocked_producers_all_get_through_each_in_its_order)
{
    enum { PRODUCERS = 4, EACH = 500 };
    start_with("[queue \"shared\"]\nmax_length = 16\n");
    struct producer p[PRODUCERS];
    pthread_t threads[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){ .conn = connect_with_output(64 * 1024), .queue = "shared",
                                  .id = i, .count = EACH, .rc = -100 };
        pthread_mutex_init(&p[i].mu, NULL);
        ck_assert_int_eq(pthread_create(&threads[i], NULL, produce, &p[i]), 0);
    }
    /* One consumer drains it: each producer's messages come in its order
     * (the payloads number them per producer), and every producer ends. */
    ferry_conn *consumer = connect_plain();
    int next[PRODUCERS] = { 0 };
    for (int n = 0; n < PRODUCERS * EACH; n++) {
        ferry_message *m = NULL;
        ok(ferry_get(consumer, "shared", WAIT_MS, &m), "get");
        int id = -1, seq = -1;
        ck_assert_int_eq(sscanf((const char *)m->data, "%d.%d", &id, &seq), 2);
        ck_assert(id >= 0 && id < PRODUCERS);
        ck_assert_msg(seq == next[id], "producer %d: got %d, expected %d", id, seq, next[id]);
        next[id]++;
        ok(ferry_ack(consumer, m->tag), "ack");
        ferry_message_free(m);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
        ok(p[i].rc, "a blocked producer");
        ferry_close(p[i].conn);
        pthread_mutex_destroy(&p[i].mu);
    }
    struct snapshot s = snapshot_of(consumer, "shared");
    ck_assert_uint_eq(s.q.published, PRODUCERS * EACH);
    ck_assert_uint_eq(s.q.rejected, 0);
    ck_assert_uint_ge(s.q.blocked, PRODUCERS);
    ck_assert_uint_eq(s.parked, 0);
    ferry_close(consumer);
}
END_TEST

static void ignore_message(ferry_conn *c, const ferry_message *m, void *arg) {}

START_TEST(test_a_connection_that_also_consumes_is_refused_instead_of_blocked)
{
    start_with("[queue \"full\"]\nmax_length = 1\n");
    ferry_conn *c = connect_plain();
    ok(ferry_publish(c, "full", "a", 1, NULL, 0, FERRY_PUBLISH_CONFIRM), "publish a");
    struct ferry_consume_options o = { .credit = 1, .on_message = ignore_message };
    uint64_t sub;
    ok(ferry_consume(c, "elsewhere", &o, &sub), "consume");
    /* Stopped, it could not consume: it hears QUEUE_FULL at once. */
    ck_assert_int_eq(ferry_publish(c, "full", "b", 1, NULL, 0, FERRY_PUBLISH_CONFIRM),
                     FERRY_ESERVER);
    ck_assert_int_eq(ferry_server_error(NULL), 13);
    struct snapshot s = snapshot_of(c, "full");
    ck_assert_uint_eq(s.q.rejected, 1);
    ck_assert_uint_eq(s.q.blocked, 0);
    ck_assert_uint_eq(s.parked, 0);
    ferry_close(c);
}
END_TEST

START_TEST(test_non_blocking_publish_says_would_block_once_the_output_is_full)
{
    start_with("[queue \"small\"]\nmax_length = 1\n");
    ferry_conn *c = connect_with_output(64 * 1024);
    char payload[BLOCK_PAYLOAD] = { 0 };
    int rc = FERRY_OK, sent = 0;
    long long deadline = harness_now_ms() + WAIT_MS;
    while (rc == FERRY_OK && harness_now_ms() < deadline) {
        rc = ferry_publish(c, "small", payload, sizeof payload, NULL, 0, FERRY_PUBLISH_NONBLOCK);
        sent += rc == FERRY_OK;
    }
    ck_assert_msg(rc == FERRY_EAGAIN, "got %s", ferry_strerror(rc));
    ck_assert_int_gt(sent, 1);
    ck_assert_int_eq(ferry_publish(c, "small", "x", 1, NULL, 0,
                                   FERRY_PUBLISH_NONBLOCK | FERRY_PUBLISH_CONFIRM),
                     FERRY_EINVAL);
    ferry_close(c);
}
END_TEST

START_TEST(test_a_reload_that_raises_the_bound_lets_the_blocked_producer_through)
{
    start_with("[queue \"q\"]\nmax_length = 2\n");
    ferry_conn *admin = connect_plain();
    ferry_conn *producer = connect_plain();
    for (int i = 0; i < 3; i++)
        ok(ferry_publish(producer, "q", "m", 1, NULL, 0, 0), "publish");
    wait_parked(admin, 1);
    ck_assert_int_eq(ferry_flush(producer, 200), FERRY_ETIMEDOUT); /* the third waits */
    ck_assert_int_eq(ferryd_write_conf(&daemon_, "[queue \"q\"]\nmax_length = 10\n"), 0);
    ck_assert_int_eq(kill(daemon_.pid, SIGHUP), 0);
    ok(ferry_flush(producer, WAIT_MS), "the blocked publish after the reload");
    struct snapshot s = snapshot_of(admin, "q");
    ck_assert_uint_eq(s.q.depth, 3);
    ck_assert_uint_eq(s.q.max_length, 10);
    ck_assert_uint_eq(s.parked, 0);
    ferry_close(producer);
    ferry_close(admin);
}
END_TEST

START_TEST(test_a_producer_blocked_longer_than_the_heartbeat_timeout_stays_connected)
{
    start_with("[limits]\nheartbeat_timeout = 1s\n[queue \"q\"]\nmax_length = 1\n");
    ferry_conn *admin = connect_plain();
    ferry_conn *producer = connect_plain();
    ok(ferry_publish(producer, "q", "a", 1, NULL, 0, 0), "publish a");
    ok(ferry_publish(producer, "q", "b", 1, NULL, 0, 0), "publish b");
    wait_parked(admin, 1);
    /* Three heartbeat timeouts: ferryd does not read it, yet neither side
     * gives the other up. */
    ck_assert_int_eq(ferry_flush(producer, 3000), FERRY_ETIMEDOUT);
    ck_assert_uint_eq(parked_now(admin), 1);
    ferry_message *m = NULL;
    ok(ferry_get(admin, "q", WAIT_MS, &m), "get");
    ok(ferry_ack(admin, m->tag), "ack");
    ferry_message_free(m);
    ok(ferry_flush(producer, WAIT_MS), "the blocked publish");
    ck_assert_uint_eq(snapshot_of(admin, "q").q.depth, 1);
    ferry_close(producer);
    ferry_close(admin);
}
END_TEST

/* ---- reject ---- */

struct refusals {
    uint64_t ids[16];
    int codes[16];
    int count;
};

static void on_refusal(ferry_conn *c, uint64_t id, int code, const char *text, void *arg)
{
    struct refusals *r = arg;
    if (r->count < 16) {
        r->ids[r->count] = id;
        r->codes[r->count] = code;
    }
    r->count++;
}

/* Runs `ferry ARGS...` with FERRY_URL set; returns its exit status and
 * its standard error in err. */
static int run_cli(const char *const *args, char *err, size_t cap)
{
    int fd;
    pid_t pid = harness_cli_spawn(&daemon_, args, 2, &fd);
    ck_assert_int_ge(pid, 0);
    size_t len = 0;
    ssize_t got;
    while (len + 1 < cap && (got = read(fd, err + len, cap - 1 - len)) > 0)
        len += (size_t)got;
    err[len] = '\0';
    close(fd);
    int status = harness_reap(pid, WAIT_MS);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_reject_refuses_each_publish_past_the_bound_by_its_id)
{
    start_with("[queue \"rej\"]\nmax_length = 3\noverflow = reject\n");
    ferry_conn *c = connect_plain();
    struct refusals r = { .count = 0 };
    ferry_set_refusal_handler(c, on_refusal, &r);
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) {
        ok(ferry_publish(c, "rej", "m", 1, NULL, 0, 0), "publish");
        ids[i] = ferry_last_publish_id();
    }
    ck_assert_int_eq(ferry_flush(c, WAIT_MS), FERRY_ESERVER);
    ck_assert_int_eq(ferry_server_error(NULL), 13); /* QUEUE_FULL */
    ck_assert_int_eq(r.count, 2);
    ck_assert_uint_eq(r.ids[0], ids[3]);
    ck_assert_uint_eq(r.ids[1], ids[4]);
    ck_assert_int_eq(r.codes[0], 13);
    ck_assert_int_eq(r.codes[1], 13);

    /* A confirmed publish hears it itself, and the handler does not. */
    ck_assert_int_eq(ferry_publish(c, "rej", "m", 1, NULL, 0, FERRY_PUBLISH_CONFIRM),
                     FERRY_ESERVER);
    ck_assert_int_eq(ferry_server_error(NULL), 13);
    ck_assert_int_eq(r.count, 2);
    struct snapshot s = snapshot_of(c, "rej");
    ck_assert_uint_eq(s.q.depth, 3);
    ck_assert_uint_eq(s.q.rejected, 3);
    ck_assert_str_eq(s.q.overflow, "reject");
    ck_assert_uint_eq(s.q.max_length, 3);

    /* The CLI exits 1 and says why. */
    char err[2048];
    const char *args[] = { "publish", "rej", "late", NULL };
    ck_assert_int_eq(run_cli(args, err, sizeof err), 1);
    ck_assert_msg(strstr(err, "QUEUE_FULL") != NULL, "stderr: %s", err);
    ck_assert_msg(strstr(err, "refused 1 of 1 batches") != NULL, "stderr: %s", err);
    ferry_close(c);
}
END_TEST

/* ---- drop-oldest ---- */

START_TEST(test_drop_oldest_keeps_the_newest_and_counts_the_dropped)
{
    start_with("[queues]\nmax_length = 3\noverflow = drop-oldest\n");
    ferry_conn *c = connect_plain();
    for (int i = 1; i <= 10; i++) {
        char text[8];
        snprintf(text, sizeof text, "%d", i);
        ok(ferry_publish(c, "d", text, strlen(text), NULL, 0, FERRY_PUBLISH_CONFIRM), "publish");
    }
    struct snapshot s = snapshot_of(c, "d");
    ck_assert_uint_eq(s.q.depth, 3);
    ck_assert_uint_eq(s.q.published, 10);
    ck_assert_uint_eq(s.q.dropped_oldest, 7);
    ck_assert_uint_eq(s.q.rejected, 0);
    ck_assert_str_eq(s.q.overflow, "drop-oldest");
    const char *left[] = { "8", "9", "10" };
    for (int i = 0; i < 3; i++) {
        ferry_message *m = NULL;
        ok(ferry_get(c, "d", WAIT_MS, &m), "get");
        ck_assert(m->len == strlen(left[i]) && memcmp(m->data, left[i], m->len) == 0);
        ok(ferry_ack(c, m->tag), "ack");
        ferry_message_free(m);
    }
    ferry_close(c);
}
END_TEST

/* ---- max_queued_memory ---- */

START_TEST(test_max_queued_memory_bounds_all_queues_with_each_queues_policy)
{
    start_with("[limits]\nmax_queued_memory = 64KiB\n"
               "[queues]\noverflow = reject\n"
               "[queue \"wait\"]\noverflow = block\n");
    ferry_conn *c = connect_plain();
    char payload[1024] = { 0 };
    int accepted = 0, rc;
    while ((rc = ferry_publish(c, "a", payload, sizeof payload, NULL, 0,
                               FERRY_PUBLISH_CONFIRM)) == FERRY_OK)
        accepted++;
    ck_assert_int_eq(rc, FERRY_ESERVER);
    ck_assert_int_eq(ferry_server_error(NULL), 13);
    struct snapshot s = snapshot_of(c, "a");
    ck_assert_uint_eq(s.max_memory, 64 * 1024);
    ck_assert_uint_le(s.memory, s.max_memory);
    ck_assert_uint_gt(s.memory + 2 * sizeof payload, s.max_memory); /* full, near enough */
    ck_assert_int_gt(accepted, 40);
    /* Another queue meets the same limit, with its own policy. */
    ck_assert_int_eq(ferry_publish(c, "b", payload, sizeof payload, NULL, 0,
                                   FERRY_PUBLISH_CONFIRM), FERRY_ESERVER);
    /* Under block, a producer waits until memory is freed elsewhere. */
    ferry_conn *blocked = connect_plain();
    ok(ferry_publish(blocked, "wait", payload, sizeof payload, NULL, 0, 0), "publish to wait");
    wait_parked(c, 1);
    uint64_t purged = 0;
    ok(ferry_purge(c, "a", &purged), "purge");
    ck_assert_int_eq((int)purged, accepted);
    ok(ferry_flush(blocked, WAIT_MS), "the blocked publish");
    ck_assert_uint_eq(snapshot_of(c, "wait").q.depth, 1);
    ck_assert_uint_eq(snapshot_of(c, "wait").q.blocked, 1);
    ferry_close(blocked);
    ferry_close(c);
}
END_TEST

/* ---- credit ---- */

static void count_message(ferry_conn *c, const ferry_message *m, void *arg)
{
    (*(int *)arg)++; /* and never acks */
}

START_TEST(test_a_consumer_that_does_not_ack_gets_no_more_than_its_credit)
{
    start_with("[queues]\nmax_length = 1000\n");
    ferry_conn *admin = connect_plain();
    for (int i = 0; i < 100; i++)
        ok(ferry_publish(admin, "q", "m", 1, NULL, 0, 0), "publish");
    ok(ferry_flush(admin, WAIT_MS), "flush");
    ferry_conn *c = connect_plain();
    int got = 0;
    struct ferry_consume_options o = { .credit = 5, .on_message = count_message, .arg = &got };
    uint64_t sub;
    ok(ferry_consume(c, "q", &o, &sub), "consume");
    /* The window fills (however slow the machine), then stays full: no
     * sixth message in another half second. */
    long long deadline = harness_now_ms() + WAIT_MS;
    while (got < 5 && harness_now_ms() < deadline) {
        ok(ferry_process(c), "process");
        harness_sleep_ms(10);
    }
    ck_assert_int_eq(got, 5);
    long long until = harness_now_ms() + 500;
    while (harness_now_ms() < until) {
        ok(ferry_process(c), "process");
        harness_sleep_ms(10);
    }
    ck_assert_int_eq(got, 5);
    struct snapshot s = snapshot_of(admin, "q");
    ck_assert_uint_eq(s.q.inflight, 5);
    ck_assert_uint_eq(s.q.depth, 95);
    ferry_close(c);
    ferry_close(admin);
}
END_TEST

/* ---- the slow consumer ---- */

/* Messages in all, and the memory limit, sized to run in about 20 s. */
#define SLOW_PRODUCERS 2
#define SLOW_BATCH 500
#define SLOW_PAYLOAD 100
#define SLOW_LIMIT_KIB 8192

static long slow_messages(void)
{
    const char *env = getenv("FERRY_TEST_SLOW_MESSAGES");
    if (env != NULL && atol(env) > 0)
        return atol(env);
    return harness_valgrind() ? 20000 : 1000000;
}

struct batch_producer {
    ferry_conn *conn;
    long count;
    int rc;
};

static void *produce_batches(void *arg)
{
    struct batch_producer *p = arg;
    static const char payload[SLOW_PAYLOAD] = { 'x' };
    struct ferry_msg msgs[SLOW_BATCH];
    for (int i = 0; i < SLOW_BATCH; i++)
        msgs[i] = (struct ferry_msg){ .data = payload, .len = sizeof payload };
    int rc = FERRY_OK;
    for (long sent = 0; sent < p->count && rc == FERRY_OK; sent += SLOW_BATCH) {
        size_t n = p->count - sent < SLOW_BATCH ? (size_t)(p->count - sent) : SLOW_BATCH;
        rc = ferry_publish_batch(p->conn, "slow", msgs, n, 0);
    }
    if (rc == FERRY_OK)
        rc = ferry_flush(p->conn, 120000);
    p->rc = rc;
    return NULL;
}

struct slow_consumer {
    ferry_conn *conn;
    volatile int stop; /* set by the test thread; read once a second */
    int taken;
};

static void *consume_slowly(void *arg)
{
    struct slow_consumer *k = arg;
    while (!k->stop) {
        ferry_message *m = NULL;
        if (ferry_get(k->conn, "slow", 100, &m) == FERRY_OK) {
            ferry_ack(k->conn, m->tag);
            ferry_message_free(m);
            k->taken++;
        }
        harness_sleep_ms(1000);
    }
    return NULL;
}

START_TEST(test_a_slow_consumer_and_a_million_publishes_keep_ferryd_within_its_limits)
{
    start_with("[limits]\nmax_queued_memory = 8MiB\n"
               "[queue \"slow\"]\noverflow = drop-oldest\n");
    long total = slow_messages();
    ferry_conn *admin = connect_plain();
    ok(ferry_declare(admin, "slow"), "declare");
    harness_sleep_ms(200);
    long idle_kb = harness_rss_kb(daemon_.pid);

    struct slow_consumer k = { .conn = connect_plain() };
    pthread_t consumer;
    ck_assert_int_eq(pthread_create(&consumer, NULL, consume_slowly, &k), 0);
    struct batch_producer p[SLOW_PRODUCERS];
    pthread_t producers[SLOW_PRODUCERS];
    for (int i = 0; i < SLOW_PRODUCERS; i++) {
        p[i] = (struct batch_producer){ .conn = connect_plain(), .count = total / SLOW_PRODUCERS };
        ck_assert_int_eq(pthread_create(&producers[i], NULL, produce_batches, &p[i]), 0);
    }
    /* VmRSS every 50 ms while they run: its peak is what is judged. */
    long peak_kb = idle_kb;
    long long started = harness_now_ms();
    bool done = false;
    while (!done) {
        long kb = harness_rss_kb(daemon_.pid);
        peak_kb = kb > peak_kb ? kb : peak_kb;
        struct snapshot s = snapshot_of(admin, "slow");
        ck_assert_uint_le(s.memory, s.max_memory); /* the accounting itself */
        done = s.q.published == (uint64_t)(total / SLOW_PRODUCERS) * SLOW_PRODUCERS;
        ck_assert_msg(harness_now_ms() - started < 110000, "producers too slow");
        harness_sleep_ms(50);
    }
    for (int i = 0; i < SLOW_PRODUCERS; i++) {
        ck_assert_int_eq(pthread_join(producers[i], NULL), 0);
        ok(p[i].rc, "producer");
        ferry_close(p[i].conn);
    }
    k.stop = 1;
    ck_assert_int_eq(pthread_join(consumer, NULL), 0);
    long long took = harness_now_ms() - started;

    struct snapshot s = snapshot_of(admin, "slow");
    printf("slow consumer: %ld published in %lld ms, %d consumed, %llu dropped, "
           "%llu held; ferryd VmRSS idle %ld KiB, peak %ld KiB (limit %d KiB)\n",
           total, took, k.taken, (unsigned long long)s.q.dropped_oldest,
           (unsigned long long)s.q.depth, idle_kb, peak_kb, SLOW_LIMIT_KIB);
    ck_assert_uint_le(s.memory, 8u * 1024 * 1024);
    ck_assert_uint_eq(s.q.dropped_oldest + s.q.depth + s.q.inflight + s.q.acked,
                      (uint64_t)total / SLOW_PRODUCERS * SLOW_PRODUCERS);
    ck_assert_int_ge(k.taken, 1);
    /* What ferryd holds beyond its idle size: the queued messages (the
     * limit), the connections' buffers (a read each, and replies), and
     * what the allocator keeps. Without the limit the million messages
     * would take about 190 MiB. */
    if (harness_rss_reliable())
        ck_assert_msg(peak_kb - idle_kb < 2 * SLOW_LIMIT_KIB + 8192,
                      "ferryd grew by %ld KiB", peak_kb - idle_kb);
    ferry_close(k.conn);
    ferry_close(admin);
}
END_TEST

static Suite *flow_suite(void)
{
    Suite *s = suite_create("flow");
    TCase *t = tcase_create("flow");
    tcase_set_timeout(t, 120);
    tcase_add_checked_fixture(t, NULL, teardown);
    tcase_add_test(t, test_block_holds_the_producer_until_a_consumer_drains_and_others_go_on);
    tcase_add_test(t, test_many_blocked_producers_all_get_through_each_in_its_order);
    tcase_add_test(t, test_a_connection_that_also_consumes_is_refused_instead_of_blocked);
    tcase_add_test(t, test_non_blocking_publish_says_would_block_once_the_output_is_full);
    tcase_add_test(t, test_a_reload_that_raises_the_bound_lets_the_blocked_producer_through);
    tcase_add_test(t, test_a_producer_blocked_longer_than_the_heartbeat_timeout_stays_connected);
    tcase_add_test(t, test_reject_refuses_each_publish_past_the_bound_by_its_id);
    tcase_add_test(t, test_drop_oldest_keeps_the_newest_and_counts_the_dropped);
    tcase_add_test(t, test_max_queued_memory_bounds_all_queues_with_each_queues_policy);
    tcase_add_test(t, test_a_consumer_that_does_not_ack_gets_no_more_than_its_credit);
    tcase_add_test(t, test_a_slow_consumer_and_a_million_publishes_keep_ferryd_within_its_limits);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(flow_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
