/*
 * test_expiry.c - message expiry through a real ferryd and libferry, with
 * short times: a message past its ttl is never delivered, the queue's ttl
 * from the conf file and the shorter of the two, depth falling to zero
 * without a consumer, a reload's new ttl and default priority on a live
 * queue; and a durable queue's priorities and expiries across a SIGKILL and
 * a graceful restart, expired messages going to its dead-letter queue.
 */
#include "harness.h"

#include <check.h>
#include <ferry.h>
#include <ferry_proto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 10000
/* How long a test waits for the sweep to catch up (it runs every 250 ms). */
#define SWEEP_WAIT_MS 10000

static struct ferryd daemon_;

/* ferryd exits cleanly (status 0: no leak under LeakSanitizer, no crash
 * at exit). */
static void teardown(void)
{
    ck_assert_msg(ferryd_stop(&daemon_) == 0, "ferryd did not exit cleanly (see above)");
}

static ferry_conn *connect_or_fail(void)
{
    ferry_conn *c = NULL;
    int rc = ferry_connect(daemon_.url, &c);
    ck_assert_msg(rc == FERRY_OK, "connect: %s", ferry_strerror(rc));
    return c;
}

static ferry_conn *start_and_connect(const char *conf)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    if (conf != NULL)
        ck_assert_int_eq(ferryd_write_conf(&daemon_, conf), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    return connect_or_fail();
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Publishes `text` with this ttl (0: none) and priority (negative: none). */
static void publish_with(ferry_conn *c, const char *queue, const char *text, uint64_t ttl_ms,
                         int priority)
{
    struct ferry_publish_options o = {
        .flags = FERRY_PUBLISH_CONFIRM,
        .ttl_ms = ttl_ms,
        .has_priority = priority >= 0,
        .priority = (uint8_t)(priority >= 0 ? priority : 0),
    };
    int rc = ferry_publish_opts(c, queue, text, strlen(text), &o);
    ck_assert_msg(rc == FERRY_OK, "publish %s: %s", text, ferry_strerror(rc));
}

/* GETs the next message, checks its payload and acks it. */
static void take(ferry_conn *c, const char *queue, const char *text)
{
    ferry_message *m = NULL;
    int rc = ferry_get(c, queue, WAIT_MS, &m);
    ck_assert_msg(rc == FERRY_OK, "get %s: %s", text, ferry_strerror(rc));
    ck_assert_msg(m->len == strlen(text) && memcmp(m->data, text, m->len) == 0,
                  "expected %s, got %.*s", text, (int)m->len, (const char *)m->data);
    ck_assert_int_eq(ferry_ack(c, m->tag), FERRY_OK);
    ferry_message_free(m);
}

/* GETs the next message, checks its payload and its dlq-reason header,
 * and acks it. */
static void take_dead_letter(ferry_conn *c, const char *queue, const char *text,
                             const char *reason)
{
    ferry_message *m = NULL;
    int rc = ferry_get(c, queue, WAIT_MS, &m);
    ck_assert_msg(rc == FERRY_OK, "get %s: %s", text, ferry_strerror(rc));
    ck_assert_msg(m->len == strlen(text) && memcmp(m->data, text, m->len) == 0,
                  "expected %s, got %.*s", text, (int)m->len, (const char *)m->data);
    const void *value;
    size_t len;
    ck_assert(ferry_message_header(m, "dlq-reason", &value, &len));
    ck_assert(len == strlen(reason) && memcmp(value, reason, len) == 0);
    ck_assert_int_eq(ferry_ack(c, m->tag), FERRY_OK);
    ferry_message_free(m);
}

static void expect_empty(ferry_conn *c, const char *queue)
{
    ferry_message *m = NULL;
    ck_assert_int_eq(ferry_get(c, queue, 0, &m), FERRY_ETIMEDOUT);
}

struct queue_counts {
    uint64_t depth, expired, bytes;
};

static struct queue_counts counts(ferry_conn *c, const char *queue)
{
    struct ferry_stats *st = NULL;
    ck_assert_int_eq(ferry_stats(c, queue, &st), FERRY_OK);
    ck_assert_uint_eq(st->count, 1);
    struct queue_counts q = { st->queues[0].depth, st->queues[0].expired, st->queues[0].bytes };
    ferry_stats_free(st);
    return q;
}

/* Waits (bounded) until the queue's expired count reaches `expired`. */
static struct queue_counts wait_expired(ferry_conn *c, const char *queue, uint64_t expired)
{
    long long deadline = harness_now_ms() + SWEEP_WAIT_MS;
    struct queue_counts q = counts(c, queue);
    while (q.expired < expired && harness_now_ms() < deadline) {
        sleep_ms(20);
        q = counts(c, queue);
    }
    ck_assert_uint_eq(q.expired, expired);
    return q;
}

START_TEST(test_a_message_past_its_ttl_is_never_delivered)
{
    ferry_conn *c = start_and_connect(NULL);
    publish_with(c, "jobs", "brief", 200, -1);
    publish_with(c, "jobs", "lasting", 0, -1);
    struct ferry_msg batch[] = {
        { .data = "brief-item", .len = 10, .ttl_ms = 200 },
        { .data = "lasting-item", .len = 12 },
    };
    ck_assert_int_eq(ferry_publish_batch(c, "jobs", batch, 2, FERRY_PUBLISH_CONFIRM), FERRY_OK);
    sleep_ms(300);
    take(c, "jobs", "lasting");
    take(c, "jobs", "lasting-item");
    expect_empty(c, "jobs");
    ck_assert_uint_eq(counts(c, "jobs").expired, 2);
    ferry_close(c);
}
END_TEST

START_TEST(test_the_queue_ttl_empties_a_queue_nobody_consumes)
{
    ferry_conn *c = start_and_connect("[queue \"short\"]\n"
                                      "ttl = 1s\n");
    long long published_at = harness_now_ms();
    struct ferry_msg batch[100];
    for (int i = 0; i < 100; i++)
        batch[i] = (struct ferry_msg){ .data = "0123456789", .len = 10 };
    ck_assert_int_eq(ferry_publish_batch(c, "short", batch, 100, FERRY_PUBLISH_CONFIRM), FERRY_OK);
    publish_with(c, "short", "own-ttl-longer", 60000, -1); /* the queue's 1 s is shorter */
    struct queue_counts q = counts(c, "short");
    if (harness_now_ms() - published_at < 900) { /* judged only if the machine kept up */
        ck_assert_uint_eq(q.depth, 101);
        ck_assert_uint_eq(q.expired, 0);
    }
    q = wait_expired(c, "short", 101);
    ck_assert_uint_eq(q.depth, 0);
    ck_assert_uint_eq(q.bytes, 0);
    ck_assert_int_ge(harness_now_ms() - published_at, 1000);
    ferry_close(c);
}
END_TEST

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

START_TEST(test_a_reload_gives_a_live_queue_its_new_ttl_and_priority)
{
    ferry_conn *c = start_and_connect("[queue \"live\"]\n"
                                      "durable = no\n");
    publish_with(c, "live", "before", 0, -1);
    ck_assert_int_eq(ferryd_write_conf(&daemon_, "[queue \"live\"]\n"
                                                 "ttl = 3s\n"
                                                 "priority = 4\n"),
                     0);
    ck_assert_int_eq(kill(daemon_.pid, SIGHUP), 0);
    /* Both lines: the test may read the log between the two writes. */
    static const char ttl_line[] = "reload: queue 'live': ttl 0 ms -> 3000 ms";
    static const char priority_line[] = "reload: queue 'live': default priority 0 -> 4";
    long long deadline = harness_now_ms() + WAIT_MS;
    while (!(log_says(ttl_line) && log_says(priority_line)) && harness_now_ms() < deadline)
        sleep_ms(20);
    ck_assert_msg(log_says(ttl_line), "no '%s' in %s", ttl_line, daemon_.log);
    ck_assert_msg(log_says(priority_line), "no '%s' in %s", priority_line, daemon_.log);
    publish_with(c, "live", "low", 0, 2);
    publish_with(c, "live", "after", 0, -1); /* the new default: priority 4 */
    long long confirmed_at = harness_now_ms();
    take(c, "live", "after");
    /* 'low' expires 3 s after its publish; 'before' had no ttl then. */
    long long left = confirmed_at + 3000 + 10 - harness_now_ms();
    if (left > 0)
        sleep_ms((long)left);
    take(c, "live", "before");
    expect_empty(c, "live");
    ck_assert_uint_eq(counts(c, "live").expired, 1);
    ferry_close(c);
}
END_TEST

START_TEST(test_a_ttl_above_10_years_is_refused_by_libferry)
{
    ferry_conn *c = start_and_connect(NULL);
    struct ferry_publish_options o = { .ttl_ms = FERRY_TTL_MAX_MS + 1 };
    ck_assert_int_eq(ferry_publish_opts(c, "jobs", "x", 1, &o), FERRY_EINVAL);
    ferry_close(c);
}
END_TEST

static const char *const durable_conf =
    "[server]\n"
    "data_dir = @DATA@\n"
    "[queue \"keep\"]\n"
    "durable = yes\n";

/* SIGKILLs ferryd, restarts it on the same directory and reconnects (c
 * is closed); then, if the restart was quick (before sent_at + 1300 ms, so
 * before a 1.5 s expiry stamped after sent_at), checks that `queue` still
 * holds `depth` ready messages. */
static ferry_conn *crash_and_check_depth(ferry_conn *c, const char *queue, long long sent_at,
                                         uint64_t depth)
{
    ferry_close(c);
    ferryd_kill(&daemon_);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    c = connect_or_fail();
    struct queue_counts q = counts(c, queue);
    if (harness_now_ms() < sent_at + 1300) /* judged only if the machine kept up */
        ck_assert_uint_eq(q.depth, depth);
    return c;
}

START_TEST(test_priorities_and_expiries_of_a_durable_queue_survive_restarts)
{
    ferry_conn *c = start_and_connect(durable_conf);
    publish_with(c, "keep", "low", 0, 1);
    publish_with(c, "keep", "plain", 0, -1);
    publish_with(c, "keep", "high", 0, 8);
    /* ferryd stamps the expiry between these two readings. */
    long long sent_at = harness_now_ms();
    publish_with(c, "keep", "brief", 1500, 9);
    long long confirmed_at = harness_now_ms();
    publish_with(c, "keep", "lasting", 600000, 5);
    /* 'brief' (priority 9) expires 1.5 s after its publish, ferryd down or
     * not: still there if the restart was quick, then gone. */
    c = crash_and_check_depth(c, "keep", sent_at, 5);
    long long left = confirmed_at + 1500 + 10 - harness_now_ms();
    if (left > 0)
        sleep_ms((long)left);
    take(c, "keep", "high");
    ck_assert_uint_eq(counts(c, "keep").expired, 1);
    ferry_close(c);
    ck_assert_int_eq(ferryd_terminate(&daemon_), 0);

    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    c = connect_or_fail();
    take(c, "keep", "lasting");
    take(c, "keep", "low");
    take(c, "keep", "plain");
    expect_empty(c, "keep");
    ferry_close(c);
}
END_TEST

static const char *const dead_letter_conf =
    "[server]\n"
    "data_dir = @DATA@\n"
    "[queue \"dead\"]\n"
    "durable = yes\n"
    "[queue \"orders\"]\n"
    "durable = yes\n"
    "ttl = 1500ms\n"
    "dead_letter_queue = dead\n";

START_TEST(test_expired_messages_go_to_the_dead_letter_queue_across_a_restart)
{
    ferry_conn *c = start_and_connect(dead_letter_conf);
    publish_with(c, "orders", "soon", 300, -1);
    long long sent_at = harness_now_ms();
    publish_with(c, "orders", "later", 0, -1); /* the queue's 1.5 s */
    /* The first goes to 'dead' while ferryd runs (the sweep, no consumer). */
    wait_expired(c, "orders", 1);
    take_dead_letter(c, "dead", "soon", "expired");
    /* The second kept its expiry across the crash: still there if the
     * restart was quick, then dead-lettered at its time. */
    c = crash_and_check_depth(c, "orders", sent_at, 1);
    wait_expired(c, "orders", 1); /* counted again from 0 after the restart */
    ck_assert_int_ge(harness_now_ms() - sent_at, 1500);
    take_dead_letter(c, "dead", "later", "expired");
    expect_empty(c, "orders");
    ferry_close(c);
}
END_TEST

static Suite *expiry_suite(void)
{
    Suite *s = suite_create("expiry");
    TCase *tc = tcase_create("short times");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_a_message_past_its_ttl_is_never_delivered);
    tcase_add_test(tc, test_the_queue_ttl_empties_a_queue_nobody_consumes);
    tcase_add_test(tc, test_a_ttl_above_10_years_is_refused_by_libferry);
    tcase_add_test(tc, test_a_reload_gives_a_live_queue_its_new_ttl_and_priority);
    tcase_add_test(tc, test_priorities_and_expiries_of_a_durable_queue_survive_restarts);
    tcase_add_test(tc, test_expired_messages_go_to_the_dead_letter_queue_across_a_restart);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(expiry_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
