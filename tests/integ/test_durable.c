/*
 * test_durable.c - durable queues through real ferryd processes restarted
 * on the same data directory: a crash loop under load (no confirmed
 * message lost, no acked one back), restarts that keep order, attempt
 * counts, ended and deleted queues, a full disk (max_bytes, RLIMIT_FSIZE),
 * and a torn tail or a damaged record left on disk by a crash.
 */
#include "harness.h"

#include <check.h>
#include <dirent.h>
#include <ferry.h>
#include <ferry_proto.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000

static struct ferryd daemon_;

static void teardown(void)
{
    ferryd_stop(&daemon_);
}

/* Starts ferryd on a fresh directory with this conf (@DATA@: its data dir). */
static void start_with(const char *conf)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    ck_assert_int_eq(ferryd_write_conf(&daemon_, conf), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
}

static void crash_and_restart(void)
{
    ferryd_kill(&daemon_);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
}

static ferry_conn *connect_or_fail(void)
{
    ferry_conn *c = NULL;
    int rc = ferry_connect(daemon_.url, &c);
    ck_assert_msg(rc == FERRY_OK, "connect: %s", ferry_strerror(rc));
    return c;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* The daemon's log holds this text. */
static bool log_says(const char *text)
{
    FILE *f = fopen(daemon_.log, "r");
    if (!f)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

static void publish_confirmed(ferry_conn *c, const char *queue, const char *text)
{
    int rc = ferry_publish(c, queue, text, strlen(text), NULL, 0, FERRY_PUBLISH_CONFIRM);
    ck_assert_msg(rc == FERRY_OK, "publish %s: %s", text, ferry_strerror(rc));
}

/* GETs the next message and checks its payload and attempt; returns its tag. */
static uint64_t get_expect(ferry_conn *c, const char *queue, const char *text, uint32_t attempt)
{
    ferry_message *m = NULL;
    int rc = ferry_get(c, queue, WAIT_MS, &m);
    ck_assert_msg(rc == FERRY_OK, "get %s: %s", text, ferry_strerror(rc));
    ck_assert_msg(m->len == strlen(text) && memcmp(m->data, text, m->len) == 0,
                  "expected %s, got %.*s", text, (int)m->len, (const char *)m->data);
    ck_assert_uint_eq(m->attempt, attempt);
    uint64_t tag = m->tag;
    ferry_message_free(m);
    return tag;
}

/* A STATS round trip: what was sent before it has been handled. */
static void round_trip(ferry_conn *c)
{
    struct ferry_stats *st;
    ck_assert_int_eq(ferry_stats(c, NULL, &st), FERRY_OK);
    ferry_stats_free(st);
}

/* NULL if the queue does not exist; else its row (free the whole reply). */
static struct ferry_stats *queue_stats(ferry_conn *c, const char *queue)
{
    struct ferry_stats *st = NULL;
    int rc = ferry_stats(c, queue, &st);
    if (rc != FERRY_OK) {
        ck_assert_int_eq(ferry_server_error(NULL), FERRY_CODE_NOT_FOUND);
        return NULL;
    }
    return st;
}

/* ---- the crash loop ------------------------------------------------------------- */

#define CRASH_PRODUCERS 3
#define CRASH_MAX_PER_PRODUCER 200000
/* A batch sent again after a kill makes new messages (new copies) with
 * the same numbers: each copy is told apart by its try, up to this many. */
#define CRASH_TRIES 4
#define CRASH_BATCH 20
#define CRASH_KILLS 22
#define CRASH_QUEUE "crash"
/* Producers pause while the consumer is this far behind, so that the
 * drain at the end is short. */
#define CRASH_BACKLOG 20000
/* How often the consumer makes a round trip to learn its acks are handled. */
#define CRASH_ROUND_TRIP_MS 25

static const char *const crash_conf =
    "[server]\n"
    "data_dir = @DATA@\n"
    "[storage]\n"
    "fsync = always\n"
    "segment_size = 256KiB\n" /* small segments: rolls and compaction under the kills */
    "[queues]\n"
    "durable = yes\n";

/* Per message number (producer * CRASH_MAX_PER_PRODUCER + seq), and per
 * copy (number * CRASH_TRIES + try). */
struct crash_state {
    atomic_bool stop_producing;
    atomic_bool stop_consuming;
    atomic_uchar *confirmed;        /* per number: a copy's publish was confirmed */
    /* The consumer thread's own, per copy: */
    uint32_t *deliveries;
    uint32_t *max_attempt;          /* highest attempt seen in a DELIVER */
    bool *ack_known;                /* acked, and a later round trip came back */
    uint64_t *acked_unknown;        /* copies acked since the last round trip */
    size_t unknown_count;
    atomic_long confirmed_count;
    long violations_acked_back;     /* delivered after its ack was known */
    long violations_attempt;        /* attempt not above one seen before */
    long deliveries_total, redeliveries;
    atomic_long delivered_distinct;
};

static struct crash_state crash;

static size_t crash_index(uint32_t producer, uint32_t seq)
{
    return (size_t)producer * CRASH_MAX_PER_PRODUCER + seq;
}

static size_t crash_copy(size_t number, uint32_t try)
{
    return number * CRASH_TRIES + (try < CRASH_TRIES ? try : CRASH_TRIES - 1);
}

/* Whether any copy of the message numbered `number` was delivered. */
static bool crash_delivered(size_t number)
{
    for (uint32_t t = 0; t < CRASH_TRIES; t++) {
        if (crash.deliveries[crash_copy(number, t)] > 0)
            return true;
    }
    return false;
}

/* Connects as soon as the daemon is back; NULL once told to stop. */
static ferry_conn *connect_retrying(atomic_bool *stop)
{
    struct ferry_options o = { .url = daemon_.url, .connect_timeout_ms = 1000,
                               .request_timeout_ms = 5000 };
    while (!atomic_load(stop)) {
        ferry_conn *c = NULL;
        if (ferry_connect_opts(&o, &c) == FERRY_OK)
            return c;
        sleep_ms(5);
    }
    return NULL;
}

struct crash_producer {
    pthread_t thread;
    uint32_t index;
    long next;      /* the first seq not yet confirmed */
};

static void *crash_producer_main(void *arg)
{
    struct crash_producer *p = arg;
    uint32_t payloads[CRASH_BATCH][3];
    struct ferry_msg msgs[CRASH_BATCH];
    ferry_conn *c = NULL;
    uint32_t try = 0;
    while (!atomic_load(&crash.stop_producing) && p->next + CRASH_BATCH <= CRASH_MAX_PER_PRODUCER) {
        if (atomic_load(&crash.confirmed_count) - atomic_load(&crash.delivered_distinct) >
            CRASH_BACKLOG) {
            sleep_ms(5);
            continue;
        }
        if (!c && !(c = connect_retrying(&crash.stop_producing)))
            break;
        for (int i = 0; i < CRASH_BATCH; i++) {
            payloads[i][0] = p->index;
            payloads[i][1] = (uint32_t)(p->next + i);
            payloads[i][2] = try;
            msgs[i] = (struct ferry_msg){ .data = payloads[i], .len = sizeof payloads[i] };
        }
        int rc = ferry_publish_batch(c, CRASH_QUEUE, msgs, CRASH_BATCH, FERRY_PUBLISH_CONFIRM);
        if (rc != FERRY_OK) {
            /* The daemon died: the batch is sent again, as new copies. */
            ferry_close(c);
            c = NULL;
            try++;
            continue;
        }
        try = 0;
        for (int i = 0; i < CRASH_BATCH; i++)
            atomic_store(&crash.confirmed[crash_index(p->index, (uint32_t)(p->next + i))], 1);
        atomic_fetch_add(&crash.confirmed_count, CRASH_BATCH);
        p->next += CRASH_BATCH;
    }
    if (c)
        ferry_close(c);
    return NULL;
}

static void crash_on_message(ferry_conn *c, const ferry_message *m, void *arg)
{
    uint32_t id[3];
    ck_assert_uint_eq(m->len, sizeof id);
    memcpy(id, m->data, sizeof id);
    ck_assert_uint_lt(id[0], CRASH_PRODUCERS);
    ck_assert_uint_lt(id[1], CRASH_MAX_PER_PRODUCER);
    size_t number = crash_index(id[0], id[1]);
    size_t i = crash_copy(number, id[2]);
    crash.deliveries_total++;
    if (!crash_delivered(number))
        atomic_fetch_add(&crash.delivered_distinct, 1);
    if (crash.deliveries[i]++ > 0)
        crash.redeliveries++;
    if (crash.ack_known[i])
        crash.violations_acked_back++;
    if (m->attempt <= crash.max_attempt[i])
        crash.violations_attempt++;
    crash.max_attempt[i] = m->attempt;
    ck_assert_int_eq(ferry_ack(c, m->tag), FERRY_OK);
    if (crash.unknown_count < CRASH_PRODUCERS * (size_t)CRASH_MAX_PER_PRODUCER * CRASH_TRIES)
        crash.acked_unknown[crash.unknown_count++] = i;
}

/* A STATS round trip: the acks sent before it are handled once it comes
 * back (those sent while waiting for it, from callbacks, are not). */
static bool crash_learn_acks(ferry_conn *c)
{
    size_t before = crash.unknown_count;
    struct ferry_stats *st;
    if (ferry_stats(c, CRASH_QUEUE, &st) != FERRY_OK)
        return false;
    ferry_stats_free(st);
    for (size_t k = 0; k < before; k++)
        crash.ack_known[crash.acked_unknown[k]] = true;
    memmove(crash.acked_unknown, crash.acked_unknown + before,
            (crash.unknown_count - before) * sizeof *crash.acked_unknown);
    crash.unknown_count -= before;
    return true;
}

/* One connection's life: consume and ack, with a round trip now and then. */
static void crash_consume_once(ferry_conn *c)
{
    struct ferry_consume_options o = { .credit = 256, .on_message = crash_on_message };
    uint64_t sub;
    if (ferry_consume(c, CRASH_QUEUE, &o, &sub) != FERRY_OK)
        return;
    long long last_trip = harness_now_ms();
    while (!atomic_load(&crash.stop_consuming)) {
        struct pollfd pfd = { .fd = ferry_fd(c), .events = POLLIN };
        poll(&pfd, 1, 10);
        if (ferry_process(c) != FERRY_OK)
            return;
        if (crash.unknown_count == 0 || harness_now_ms() - last_trip < CRASH_ROUND_TRIP_MS)
            continue;
        if (!crash_learn_acks(c))
            return;
        last_trip = harness_now_ms();
    }
}

static void *crash_consumer_main(void *arg)
{
    while (!atomic_load(&crash.stop_consuming)) {
        ferry_conn *c = connect_retrying(&crash.stop_consuming);
        if (!c)
            break;
        crash_consume_once(c);
        ferry_close(c);
        crash.unknown_count = 0; /* their fate is unknown: they may come back */
    }
    return NULL;
}

static long confirmed_total(void)
{
    long n = 0;
    for (size_t i = 0; i < CRASH_PRODUCERS * (size_t)CRASH_MAX_PER_PRODUCER; i++)
        n += atomic_load(&crash.confirmed[i]);
    return n;
}

START_TEST(test_crash_loop_loses_no_confirmed_message_and_brings_back_no_acked_one)
{
    size_t n = CRASH_PRODUCERS * (size_t)CRASH_MAX_PER_PRODUCER;
    size_t copies = n * CRASH_TRIES;
    memset(&crash, 0, sizeof crash);
    crash.confirmed = calloc(n, sizeof *crash.confirmed);
    crash.deliveries = calloc(copies, sizeof *crash.deliveries);
    crash.max_attempt = calloc(copies, sizeof *crash.max_attempt);
    crash.ack_known = calloc(copies, sizeof *crash.ack_known);
    crash.acked_unknown = calloc(copies, sizeof *crash.acked_unknown);
    ck_assert(crash.confirmed && crash.deliveries && crash.max_attempt && crash.ack_known &&
              crash.acked_unknown);
    start_with(crash_conf);

    unsigned seed = (unsigned)time(NULL);
    printf("crash loop: seed %u\n", seed);
    struct crash_producer producers[CRASH_PRODUCERS];
    pthread_t consumer;
    pthread_create(&consumer, NULL, crash_consumer_main, NULL);
    for (uint32_t i = 0; i < CRASH_PRODUCERS; i++) {
        producers[i] = (struct crash_producer){ .index = i };
        pthread_create(&producers[i].thread, NULL, crash_producer_main, &producers[i]);
    }

    /* SIGKILL at random moments, each restart on the same directory. */
    long long start = harness_now_ms();
    for (int k = 0; k < CRASH_KILLS; k++) {
        sleep_ms(100 + rand_r(&seed) % 500);
        ferryd_kill(&daemon_);
        if (rand_r(&seed) % 4 == 0)
            sleep_ms(rand_r(&seed) % 100); /* clients find nobody for a while */
        ck_assert_msg(ferryd_restart(&daemon_, NULL) == 0, "restart %d failed (log %s)", k,
                      daemon_.log);
    }
    atomic_store(&crash.stop_producing, true);
    for (int i = 0; i < CRASH_PRODUCERS; i++)
        pthread_join(producers[i].thread, NULL);

    /* Drain: every confirmed message must come, at least once. */
    long want = confirmed_total();
    long long deadline = harness_now_ms() + 30000;
    while (harness_now_ms() < deadline) {
        long have = 0;
        for (size_t i = 0; i < n; i++)
            have += atomic_load(&crash.confirmed[i]) && crash_delivered(i);
        if (have == want)
            break;
        sleep_ms(50);
    }
    atomic_store(&crash.stop_consuming, true);
    pthread_join(consumer, NULL);

    long lost = 0;
    for (size_t i = 0; i < n; i++)
        lost += atomic_load(&crash.confirmed[i]) && !crash_delivered(i);
    long acked_known = 0;
    for (size_t i = 0; i < copies; i++)
        acked_known += crash.ack_known[i];
    printf("crash loop: %d kills in %.1f s; %ld messages confirmed, %ld delivered "
           "(%ld deliveries, %ld redeliveries), %ld acks known handled before a kill or the end; "
           "lost %ld, acked ones back %ld, attempt counts not above an earlier one %ld\n",
           CRASH_KILLS, (double)(harness_now_ms() - start) / 1000.0, want,
           atomic_load(&crash.delivered_distinct), crash.deliveries_total, crash.redeliveries,
           acked_known, lost, crash.violations_acked_back, crash.violations_attempt);
    fflush(stdout);
    ck_assert_int_gt(want, 1000);
    ck_assert_int_eq(lost, 0);
    ck_assert_int_eq(crash.violations_acked_back, 0);
    ck_assert_int_eq(crash.violations_attempt, 0);
    free(crash.confirmed);
    free(crash.deliveries);
    free(crash.max_attempt);
    free(crash.ack_known);
    free(crash.acked_unknown);
}
END_TEST

/* ---- restarts keep order, attempts, ended and deleted queues ---------------------- */

static const char *const restart_conf =
    "[server]\n"
    "data_dir = @DATA@\n"
    "[queues]\n"
    "durable = yes\n"
    "fsync = interval\n"
    "[queue \"scratch\"]\n"
    "durable = no\n";

/* What the restart tests expect after any restart, crash or not. */
static void expect_restored(ferry_conn *c)
{
    /* m1 was nacked once and in flight again (2 deliveries), m2 in flight once. */
    uint64_t tags[8];
    tags[0] = get_expect(c, "keep", "m1", 3);
    tags[1] = get_expect(c, "keep", "m2", 2);
    for (int i = 3; i < 8; i++) {
        char text[8];
        snprintf(text, sizeof text, "m%d", i);
        tags[i - 1] = get_expect(c, "keep", text, 1);
    }
    /* Taken back (unacked) when c closes: they stay for the next restart. */
    (void)tags;

    struct ferry_stats *st = queue_stats(c, "ended");
    ck_assert_ptr_nonnull(st);
    ck_assert(st->queues[0].ended);
    ck_assert_uint_eq(st->queues[0].depth, 2);
    ferry_stats_free(st);
    ck_assert_int_eq(ferry_publish(c, "ended", "x", 1, NULL, 0, FERRY_PUBLISH_CONFIRM),
                     FERRY_ESERVER);
    ck_assert_int_eq(ferry_server_error(NULL), FERRY_CODE_ENDED);

    ck_assert_ptr_null(queue_stats(c, "gone"));
    ck_assert_ptr_null(queue_stats(c, "scratch")); /* configured in memory */
    st = queue_stats(c, "declared");
    ck_assert_ptr_nonnull(st); /* declared durable, empty */
    ferry_stats_free(st);
}

START_TEST(test_restart_keeps_unacked_messages_in_order_with_attempts_and_queue_states)
{
    start_with(restart_conf);
    ferry_conn *c = connect_or_fail();
    for (int i = 0; i < 8; i++) {
        char text[8];
        snprintf(text, sizeof text, "m%d", i);
        publish_confirmed(c, "keep", text);
    }
    ck_assert_int_eq(ferry_ack(c, get_expect(c, "keep", "m0", 1)), FERRY_OK);
    ck_assert_int_eq(ferry_nack(c, get_expect(c, "keep", "m1", 1), true), FERRY_OK);
    get_expect(c, "keep", "m1", 2); /* in flight at the crash */
    get_expect(c, "keep", "m2", 1); /* in flight at the crash */
    publish_confirmed(c, "ended", "e1");
    publish_confirmed(c, "ended", "e2");
    ck_assert_int_eq(ferry_end(c, "ended"), FERRY_OK);
    publish_confirmed(c, "gone", "g1");
    ck_assert_int_eq(ferry_delete(c, "gone"), FERRY_OK);
    publish_confirmed(c, "scratch", "s1");
    ck_assert_int_eq(ferry_declare(c, "declared"), FERRY_OK);
    round_trip(c);

    crash_and_restart();
    ferry_close(c); /* the old connection died with the daemon */
    c = connect_or_fail();
    expect_restored(c);
    ferry_close(c);

    /* A graceful stop keeps the same (the GETs above were taken back). */
    ck_assert_int_eq(ferryd_terminate(&daemon_), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    c = connect_or_fail();
    /* One more delivery each, taken back when the connection closed. */
    uint64_t tag = get_expect(c, "keep", "m1", 4);
    ck_assert_int_eq(ferry_ack(c, tag), FERRY_OK);
    round_trip(c);
    ferry_close(c);
    ck_assert(log_says("queues and"));
}
END_TEST

/* ---- a full disk ------------------------------------------------------------------- */

static const char *const small_disk_conf =
    "[server]\n"
    "data_dir = @DATA@\n"
    "[storage]\n"
    "fsync = never\n"
    "segment_size = 4KiB\n"
    "max_bytes = 64KiB\n"
    "[queues]\n"
    "durable = yes\n";

/* Publishes 200-byte messages "NNNNN..." until one is refused with
 * STORAGE; returns how many were confirmed. */
static int fill_until_refused(ferry_conn *c, const char *queue, int first)
{
    char text[200];
    for (int i = first;; i++) {
        ck_assert_msg(i < first + 100000, "never refused");
        memset(text, 'x', sizeof text);
        snprintf(text, sizeof text, "%06d", i);
        text[6] = 'x';
        int rc = ferry_publish(c, queue, text, sizeof text, NULL, 0, FERRY_PUBLISH_CONFIRM);
        if (rc == FERRY_OK)
            continue;
        ck_assert_int_eq(rc, FERRY_ESERVER);
        ck_assert_int_eq(ferry_server_error(NULL), FERRY_CODE_STORAGE);
        return i - first;
    }
}

/* GETs `count` messages numbered from `first` in order and acks them. */
static void drain_numbered(ferry_conn *c, const char *queue, int first, int count)
{
    for (int i = first; i < first + count; i++) {
        ferry_message *m = NULL;
        ck_assert_int_eq(ferry_get(c, queue, WAIT_MS, &m), FERRY_OK);
        ck_assert_uint_eq(m->len, 200);
        ck_assert_int_eq(atoi(m->data), i);
        ck_assert_int_eq(ferry_ack(c, m->tag), FERRY_OK);
        ferry_message_free(m);
    }
    round_trip(c);
}

START_TEST(test_disk_limit_refuses_publishes_keeps_what_was_confirmed_and_resumes)
{
    start_with(small_disk_conf);
    ferry_conn *c = connect_or_fail();
    int confirmed = fill_until_refused(c, "full", 0);
    ck_assert_int_gt(confirmed, 100);
    /* The daemon goes on serving: in-memory queues, stats, more refusals. */
    publish_confirmed(c, "mem", "fine");
    ck_assert_int_eq(ferry_publish(c, "full", "y", 1, NULL, 0, FERRY_PUBLISH_CONFIRM),
                     FERRY_ESERVER);
    round_trip(c);
    ferry_close(c);

    /* Nothing confirmed was lost, even across a crash. */
    crash_and_restart();
    c = connect_or_fail();
    struct ferry_stats *st = queue_stats(c, "full");
    ck_assert_ptr_nonnull(st);
    ck_assert_uint_eq(st->queues[0].depth, (uint64_t)confirmed);
    ferry_stats_free(st);
    ck_assert_int_eq(ferry_publish(c, "full", "y", 1, NULL, 0, FERRY_PUBLISH_CONFIRM),
                     FERRY_ESERVER); /* still full after the restart */

    /* Acks free space: once the old segments go, publishes are taken again. */
    drain_numbered(c, "full", 0, confirmed);
    int again = fill_until_refused(c, "full", confirmed);
    ck_assert_int_gt(again, 100);
    drain_numbered(c, "full", confirmed, again);
    ferry_close(c);
    ck_assert(log_says("refusing publishes"));
    ck_assert(log_says("accepting publishes again"));
}
END_TEST

static const char *const fsize_conf =
    "[server]\n"
    "data_dir = @DATA@\n"
    "[storage]\n"
    "fsync = always\n"
    "[queues]\n"
    "durable = yes\n";

START_TEST(test_write_error_refuses_publishes_and_the_daemon_survives_with_the_log_sound)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    ck_assert_int_eq(ferryd_write_conf(&daemon_, fsize_conf), 0);
    daemon_.fsize_limit = 64 * 1024; /* writes past it fail with EFBIG */
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    ferry_conn *c = connect_or_fail();
    int confirmed = fill_until_refused(c, "efbig", 0);
    ck_assert_int_gt(confirmed, 50);
    ck_assert(ferryd_alive(&daemon_));
    publish_confirmed(c, "mem", "still serving");
    round_trip(c);
    ferry_close(c);
    ck_assert(log_says("refusing publishes"));

    /* Without the limit, everything confirmed is there, in order. */
    ferryd_kill(&daemon_);
    daemon_.fsize_limit = 0;
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    c = connect_or_fail();
    drain_numbered(c, "efbig", 0, confirmed);
    ferry_close(c);
}
END_TEST

/* ---- damage left on disk ------------------------------------------------------------- */

static const char *const plain_conf =
    "[server]\n"
    "data_dir = @DATA@\n"
    "[queues]\n"
    "durable = yes\n";

/* The path of the highest-numbered segment of the data directory. */
static void newest_segment(char *out, size_t size)
{
    DIR *dir = opendir(daemon_.data);
    ck_assert_ptr_nonnull(dir);
    char best[256] = ""; /* as long as d_name: gcc -O0 checks the snprintf below */
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len == 20 && strcmp(e->d_name + 16, ".log") == 0 && strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(dir);
    ck_assert_msg(best[0], "no segment in %s", daemon_.data);
    snprintf(out, size, "%s/%s", daemon_.data, best);
}

static off_t file_size(const char *path)
{
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    return sb.st_size;
}

START_TEST(test_torn_tail_after_a_crash_is_cut_and_the_rest_recovered)
{
    start_with(plain_conf);
    ferry_conn *c = connect_or_fail();
    for (int i = 0; i < 20; i++) {
        char text[8];
        snprintf(text, sizeof text, "t%d", i);
        publish_confirmed(c, "torn", text);
    }
    ferry_close(c);
    ferryd_kill(&daemon_);

    /* A crash in the middle of the last write: its record is cut short. */
    char path[256];
    newest_segment(path, sizeof path);
    ck_assert_int_eq(truncate(path, file_size(path) - 3), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    ck_assert(log_says("torn tail cut"));
    c = connect_or_fail();
    for (int i = 0; i < 19; i++) {
        char text[8];
        snprintf(text, sizeof text, "t%d", i);
        get_expect(c, "torn", text, 1);
    }
    struct ferry_stats *st = queue_stats(c, "torn");
    ck_assert_uint_eq(st->queues[0].depth, 0);
    ferry_stats_free(st);

    /* The log goes on after the cut. */
    publish_confirmed(c, "torn", "after");
    ferry_close(c);
    crash_and_restart();
    c = connect_or_fail();
    get_expect(c, "torn", "t0", 2);
    ferry_close(c);
}
END_TEST

START_TEST(test_a_flipped_byte_is_reported_with_file_and_offset_and_the_rest_recovered)
{
    start_with(plain_conf);
    ferry_conn *c = connect_or_fail();
    for (int i = 0; i < 10; i++) {
        char text[16];
        snprintf(text, sizeof text, "payload-%d", i);
        publish_confirmed(c, "flip", text);
    }
    ferry_close(c);
    ferryd_kill(&daemon_);

    /* One byte inside the payload of "payload-4" (each record is the
     * same size, the first record is the queue's). */
    char path[256];
    newest_segment(path, sizeof path);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    char buf[4096];
    ssize_t len = pread(fd, buf, sizeof buf, 0);
    ck_assert_int_gt(len, 0);
    char *hit = memmem(buf, (size_t)len, "payload-4", 9);
    ck_assert_ptr_nonnull(hit);
    char flipped = (char)(hit[3] ^ 0x20);
    ck_assert_int_eq(pwrite(fd, &flipped, 1, hit + 3 - buf), 1);
    close(fd);

    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    ck_assert(log_says("damage in 0000000000000001.log at offset"));
    c = connect_or_fail();
    for (int i = 0; i < 10; i++) {
        if (i == 4)
            continue;
        char text[16];
        snprintf(text, sizeof text, "payload-%d", i);
        get_expect(c, "flip", text, 1);
    }
    ferry_close(c);
}
END_TEST

/* ---- configuration ------------------------------------------------------------------ */

START_TEST(test_declare_of_a_configured_durable_queue_makes_it_durable_and_others_stay_in_memory)
{
    start_with("[server]\n"
               "data_dir = @DATA@\n"
               "[queues]\n"
               "durable = no\n"
               "[queue \"jobs\"]\n"
               "durable = yes\n"
               "fsync = never\n");
    ferry_conn *c = connect_or_fail();
    ck_assert_int_eq(ferry_declare(c, "jobs"), FERRY_OK);
    publish_confirmed(c, "jobs", "kept");
    publish_confirmed(c, "other", "lost");
    ferry_close(c);
    crash_and_restart();
    c = connect_or_fail();
    get_expect(c, "jobs", "kept", 1);
    ck_assert_ptr_null(queue_stats(c, "other"));
    ferry_close(c);
}
END_TEST

/* Runs ferryd with these arguments to its end (it must not start
 * serving); its exit status, its stderr in out. */
static int run_ferryd(const char *const *args, char *out, size_t size)
{
    char log[160];
    snprintf(log, sizeof log, "%s/run.log", daemon_.dir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, STDERR_FILENO);
        const char *argv[16] = { harness_ferryd_path() };
        for (int i = 0; args[i] && i < 14; i++)
            argv[i + 1] = args[i];
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(out, 1, size - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_durable_queues_without_a_data_dir_are_a_config_error_and_data_dir_may_be_given)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    ck_assert_int_eq(ferryd_write_conf(&daemon_, "[server]\n"
                                                  "data_dir =\n"
                                                  "[queues]\n"
                                                  "durable = yes\n"), 0);
    char out[2048];
    const char *start[] = { "-c", daemon_.conf, "-l", daemon_.url, NULL };
    ck_assert_int_eq(run_ferryd(start, out, sizeof out), 78);
    ck_assert_msg(strstr(out, ":4: key 'durable': durable queues need a data directory"), "%s",
                  out);
    const char *check[] = { "-c", daemon_.conf, "--check-config", NULL };
    ck_assert_int_eq(run_ferryd(check, out, sizeof out), 78);

    /* --data-dir gives one: the queue is durable. */
    char data_dir[160];
    snprintf(data_dir, sizeof data_dir, "--data-dir=%s", daemon_.data);
    const char *extra[] = { data_dir, NULL };
    ck_assert_int_eq(ferryd_restart(&daemon_, extra), 0);
    ferry_conn *c = connect_or_fail();
    publish_confirmed(c, "jobs", "kept");
    ferry_close(c);
    ferryd_kill(&daemon_);
    ck_assert_int_eq(ferryd_restart(&daemon_, extra), 0);
    c = connect_or_fail();
    get_expect(c, "jobs", "kept", 1);
    ferry_close(c);
}
END_TEST

static Suite *durable_suite(void)
{
    Suite *s = suite_create("durable");
    TCase *crash_tc = tcase_create("crash loop");
    tcase_add_checked_fixture(crash_tc, NULL, teardown);
    tcase_set_timeout(crash_tc, 180);
    tcase_add_test(crash_tc, test_crash_loop_loses_no_confirmed_message_and_brings_back_no_acked_one);
    suite_add_tcase(s, crash_tc);

    TCase *restart = tcase_create("restart");
    tcase_add_checked_fixture(restart, NULL, teardown);
    tcase_set_timeout(restart, 60);
    tcase_add_test(restart, test_restart_keeps_unacked_messages_in_order_with_attempts_and_queue_states);
    tcase_add_test(restart, test_declare_of_a_configured_durable_queue_makes_it_durable_and_others_stay_in_memory);
    tcase_add_test(restart, test_durable_queues_without_a_data_dir_are_a_config_error_and_data_dir_may_be_given);
    suite_add_tcase(s, restart);

    TCase *disk = tcase_create("disk");
    tcase_add_checked_fixture(disk, NULL, teardown);
    tcase_set_timeout(disk, 60);
    tcase_add_test(disk, test_disk_limit_refuses_publishes_keeps_what_was_confirmed_and_resumes);
    tcase_add_test(disk, test_write_error_refuses_publishes_and_the_daemon_survives_with_the_log_sound);
    tcase_add_test(disk, test_torn_tail_after_a_crash_is_cut_and_the_rest_recovered);
    tcase_add_test(disk, test_a_flipped_byte_is_reported_with_file_and_offset_and_the_rest_recovered);
    suite_add_tcase(s, disk);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(durable_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
