/*
 * test_retry.c - retries, dead letters and delays in a real ferryd: ack
 * deadlines and TOUCH, a nack's delay, a consumer process that crashes on
 * a poison message until it lands in the dead-letter queue while the rest
 * is consumed, PEEK and MOVE, delayed publishes; each also across a
 * SIGKILL and restart of a durable queue. Times are short and bounds
 * loose: "not before" is exact, "promptly" allows for a loaded machine.
 */
#include "harness.h"

#include <check.h>
#include <ferry.h>
#include <ferry_proto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 10000
/* How late "promptly" may be on a loaded 2-core machine. */
#define LATE_MS 3000

static struct ferryd daemon_;

/* ferryd exits cleanly (status 0: no leak under LeakSanitizer, no crash
 * at exit). */
static void teardown(void)
{
    ck_assert_msg(ferryd_stop(&daemon_) == 0, "ferryd did not exit cleanly (see above)");
}

static const char *const durable_conf =
    "[server]\n"
    "data_dir = @DATA@\n"
    "[queue \"dq\"]\n"
    "durable = yes\n"
    "fsync = always\n";

/* "jobs" retries with short times; "djobs" is the same, durable, with a
 * durable dead-letter queue. The ack deadlines are short, yet long enough
 * that a loaded machine does not run past them between a delivery and
 * what the test does next with it (a touch, a crash). */
static const char *const retry_conf =
    "[server]\n"
    "data_dir = @DATA@\n"
    "[queue \"jobs\"]\n"
    "ack_deadline = 1s\n"
    "retry_backoff = 100ms\n"
    "retry_backoff_max = 200ms\n"
    "max_attempts = 3\n"
    "dead_letter_queue = jobs.dead\n"
    "[queue \"djobs\"]\n"
    "durable = yes\n"
    "max_attempts = 2\n"
    "dead_letter_queue = djobs.dead\n"
    "[queue \"djobs.dead\"]\n"
    "durable = yes\n"
    "[queue \"dtimed\"]\n"
    "durable = yes\n"
    "ack_deadline = 1500ms\n";

static void start_with(const char *conf)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    ck_assert_int_eq(ferryd_write_conf(&daemon_, conf), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
}

static ferry_conn *connect_or_fail(void)
{
    ferry_conn *c = NULL;
    int rc = ferry_connect(daemon_.url, &c);
    ck_assert_msg(rc == FERRY_OK, "connect: %s", ferry_strerror(rc));
    return c;
}

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static void publish_delayed(ferry_conn *c, const char *queue, const char *text, uint64_t delay_ms,
                            uint64_t at_ms)
{
    struct ferry_publish_options o = {
        .flags = FERRY_PUBLISH_CONFIRM, .delay_ms = delay_ms, .deliver_at_ms = at_ms,
    };
    int rc = ferry_publish_opts(c, queue, text, strlen(text), &o);
    ck_assert_msg(rc == FERRY_OK, "publish %s: %s", text, ferry_strerror(rc));
}

/* GETs the next message, checks its payload, acks it; returns when it came. */
static uint64_t get_and_ack(ferry_conn *c, const char *queue, const char *text, int wait_ms)
{
    ferry_message *m = NULL;
    int rc = ferry_get(c, queue, wait_ms, &m);
    ck_assert_msg(rc == FERRY_OK, "get %s: %s", text, ferry_strerror(rc));
    uint64_t at = unix_ms();
    ck_assert_msg(m->len == strlen(text) && memcmp(m->data, text, m->len) == 0,
                  "expected %s, got %.*s", text, (int)m->len, (const char *)m->data);
    ck_assert_int_eq(ferry_ack(c, m->tag), FERRY_OK);
    ferry_message_free(m);
    return at;
}

static struct ferry_queue_info queue_info(ferry_conn *c, const char *queue)
{
    struct ferry_stats *st = NULL;
    ck_assert_int_eq(ferry_stats(c, queue, &st), FERRY_OK);
    ck_assert_uint_eq(st->count, 1);
    struct ferry_queue_info info = st->queues[0];
    info.name = NULL;
    ferry_stats_free(st);
    return info;
}

static void publish_confirmed(ferry_conn *c, const char *queue, const char *text)
{
    int rc = ferry_publish(c, queue, text, strlen(text), NULL, 0, FERRY_PUBLISH_CONFIRM);
    ck_assert_msg(rc == FERRY_OK, "publish %s: %s", text, ferry_strerror(rc));
}

/* GETs the next message of queue, checks payload and attempt; the caller
 * owns it. */
static ferry_message *get_expect(ferry_conn *c, const char *queue, const char *text,
                                 uint32_t attempt)
{
    ferry_message *m = NULL;
    int rc = ferry_get(c, queue, WAIT_MS, &m);
    ck_assert_msg(rc == FERRY_OK, "get %s: %s", text, ferry_strerror(rc));
    ck_assert_msg(m->len == strlen(text) && memcmp(m->data, text, m->len) == 0,
                  "expected %s, got %.*s", text, (int)m->len, (const char *)m->data);
    ck_assert_uint_eq(m->attempt, attempt);
    return m;
}

static bool header_is(const ferry_message *m, const char *key, const char *value)
{
    const void *v;
    size_t len;
    return ferry_message_header(m, key, &v, &len) && len == strlen(value) &&
           memcmp(v, value, len) == 0;
}

/* ---- ack deadlines, TOUCH, a nack's delay ---- */

START_TEST(test_an_unacked_delivery_comes_back_after_its_deadline_unless_touched)
{
    start_with(retry_conf);
    ferry_conn *c = connect_or_fail();
    publish_confirmed(c, "jobs", "slow");
    uint64_t t0 = unix_ms();
    ferry_message *m = get_expect(c, "jobs", "slow", 1);
    ferry_message_free(m);
    /* Not acked: back after the 1 s deadline and a 100 ms backoff. */
    m = get_expect(c, "jobs", "slow", 2);
    ck_assert_uint_ge(unix_ms(), t0 + 1100);
    uint64_t tag = m->tag;
    ferry_message_free(m);
    /* Touched for 5 s more at once, then every 200 ms for 1.2 s, it stays
     * with us (5 s, not the 1 s of the queue, so that a loaded machine
     * that runs this thread late does not lose it). */
    ck_assert_int_eq(ferry_touch(c, tag, 5000), FERRY_OK);
    for (int i = 0; i < 6; i++) {
        usleep(200 * 1000);
        ck_assert_int_eq(ferry_touch(c, tag, 5000), FERRY_OK);
    }
    ck_assert_uint_eq(queue_info(c, "jobs").inflight, 1);
    ck_assert_int_eq(ferry_ack(c, tag), FERRY_OK);
    struct ferry_queue_info info = queue_info(c, "jobs");
    ck_assert_uint_eq(info.acked, 1);
    ck_assert_uint_eq(info.timeouts, 1);
    ck_assert_uint_eq(info.depth + info.inflight + info.delayed, 0);
    ferry_close(c);
}
END_TEST

START_TEST(test_a_nack_with_a_delay_comes_back_no_sooner)
{
    ck_assert_int_eq(ferryd_start(&daemon_, NULL), 0);
    ferry_conn *c = connect_or_fail();
    publish_confirmed(c, "q", "again");
    ferry_message *m = get_expect(c, "q", "again", 1);
    uint64_t t0 = unix_ms();
    ck_assert_int_eq(ferry_nack_delay(c, m->tag, 700), FERRY_OK);
    ferry_message_free(m);
    ck_assert_uint_eq(queue_info(c, "q").delayed, 1);
    m = get_expect(c, "q", "again", 2);
    uint64_t at = unix_ms();
    ck_assert_uint_ge(at, t0 + 700);
    ck_assert_uint_le(at, t0 + 700 + LATE_MS);
    ck_assert_int_eq(ferry_ack(c, m->tag), FERRY_OK);
    ferry_message_free(m);
    ferry_close(c);
}
END_TEST

/* ---- a poison message and the dead-letter queue ---- */

#define POISON_OTHERS 50

/* A consumer process: acks every message but "poison", on which it dies. */
static void crashing_consumer(const char *url)
{
    ferry_conn *c;
    if (ferry_connect(url, &c) != FERRY_OK)
        _exit(3);
    for (;;) {
        ferry_message *m;
        int rc = ferry_get(c, "jobs", 5000, &m);
        if (rc == FERRY_ETIMEDOUT)
            _exit(0);
        if (rc != FERRY_OK)
            _exit(4);
        if (m->len == 6 && memcmp(m->data, "poison", 6) == 0)
            _exit(1); /* the crash: no ack, no goodbye */
        if (ferry_ack(c, m->tag) != FERRY_OK)
            _exit(5);
        ferry_message_free(m);
    }
}

START_TEST(test_a_poison_message_that_crashes_consumers_ends_in_the_dead_letter_queue)
{
    start_with(retry_conf);
    ferry_conn *c = connect_or_fail();
    publish_confirmed(c, "jobs", "poison");
    for (int i = 0; i < POISON_OTHERS; i++)
        publish_confirmed(c, "jobs", "ok");
    ck_assert_int_eq(ferry_declare(c, "jobs.dead"), FERRY_OK);

    int crashes = 0;
    long long deadline = harness_now_ms() + 15000;
    while (queue_info(c, "jobs.dead").depth == 0 && harness_now_ms() < deadline) {
        pid_t child = fork();
        if (child == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with this test process */
            crashing_consumer(daemon_.url);
        }
        int status = harness_reap(child, 10000);
        ck_assert(WIFEXITED(status));
        if (WEXITSTATUS(status) == 1)
            crashes++;
        else
            ck_assert_msg(WEXITSTATUS(status) == 0, "consumer exit %d", WEXITSTATUS(status));
    }
    ck_assert_int_eq(crashes, 3); /* max_attempts */
    /* The others were all consumed meanwhile: nothing waits behind the poison. */
    long long until = harness_now_ms() + 5000;
    while (queue_info(c, "jobs").acked < POISON_OTHERS && harness_now_ms() < until)
        usleep(10 * 1000);
    struct ferry_queue_info info = queue_info(c, "jobs");
    ck_assert_uint_eq(info.acked, POISON_OTHERS);
    ck_assert_uint_eq(info.dead_lettered, 1);
    ck_assert_uint_eq(info.depth + info.inflight + info.delayed, 0);

    /* Looked at without consuming it: where it came from, and why. */
    ferry_message **msgs;
    size_t n;
    ck_assert_int_eq(ferry_peek(c, "jobs.dead", 10, &msgs, &n), FERRY_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert(header_is(msgs[0], "dlq-queue", "jobs"));
    ck_assert(header_is(msgs[0], "dlq-attempts", "3"));
    ck_assert(header_is(msgs[0], "dlq-reason", "lost"));
    ferry_peek_free(msgs, n);
    ck_assert_uint_eq(queue_info(c, "jobs.dead").depth, 1);

    /* And moved back, a new message without the dead-letter headers. */
    uint64_t moved = 0;
    ck_assert_int_eq(ferry_move(c, "jobs.dead", NULL, 0, &moved), FERRY_OK);
    ck_assert_uint_eq(moved, 1);
    ferry_message *m = get_expect(c, "jobs", "poison", 1);
    const void *v;
    size_t len;
    ck_assert(!ferry_message_header(m, "dlq-reason", &v, &len));
    ck_assert_int_eq(ferry_ack(c, m->tag), FERRY_OK);
    ferry_message_free(m);
    ferry_close(c);
}
END_TEST

START_TEST(test_ferry_move_of_more_than_one_request_moves_them_all)
{
    /* The broker moves FERRY_MOVE_MAX per request; ferry_move asks again. */
    ck_assert_int_eq(ferryd_start(&daemon_, NULL), 0);
    ferry_conn *c = connect_or_fail();
    const uint64_t total = FERRY_MOVE_MAX + 5;
    for (uint64_t i = 0; i < total; i++)
        ck_assert_int_eq(ferry_publish(c, "many", "m", 1, NULL, 0, 0), FERRY_OK);
    ck_assert_uint_eq(queue_info(c, "many").depth, total);
    uint64_t moved = 0;
    ck_assert_int_eq(ferry_move(c, "many", "moved", 0, &moved), FERRY_OK);
    ck_assert_uint_eq(moved, total);
    ck_assert_uint_eq(queue_info(c, "moved").depth, total);
    ck_assert_uint_eq(queue_info(c, "many").depth, 0);
    /* A count is kept to across requests too. */
    ck_assert_int_eq(ferry_move(c, "moved", "many", FERRY_MOVE_MAX + 2, &moved), FERRY_OK);
    ck_assert_uint_eq(moved, FERRY_MOVE_MAX + 2);
    ck_assert_uint_eq(queue_info(c, "moved").depth, 3);
    ferry_close(c);
}
END_TEST

START_TEST(test_dead_letters_and_used_up_attempts_survive_a_crash)
{
    start_with(retry_conf);
    ferry_conn *c = connect_or_fail();
    publish_confirmed(c, "djobs", "dead");
    publish_confirmed(c, "djobs", "dying");
    /* "dead": nacked twice, dead-lettered. */
    ferry_message *m = get_expect(c, "djobs", "dead", 1);
    ck_assert_int_eq(ferry_nack(c, m->tag, true), FERRY_OK);
    ferry_message_free(m);
    m = get_expect(c, "djobs", "dead", 2);
    ck_assert_int_eq(ferry_nack(c, m->tag, true), FERRY_OK);
    ferry_message_free(m);
    /* "dying": its second delivery is in flight at the crash. */
    m = get_expect(c, "djobs", "dying", 1);
    ck_assert_int_eq(ferry_nack(c, m->tag, true), FERRY_OK);
    ferry_message_free(m);
    m = get_expect(c, "djobs", "dying", 2);
    ferry_message_free(m);
    ck_assert_uint_eq(queue_info(c, "djobs.dead").depth, 1);
    ferry_close(c);
    ferryd_kill(&daemon_);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);

    /* It comes back with its two attempts used up: dead-lettered at once. */
    c = connect_or_fail();
    ferry_message **msgs;
    size_t n = 0;
    long long until = harness_now_ms() + 5000;
    do {
        ck_assert_int_eq(ferry_peek(c, "djobs.dead", 10, &msgs, &n), FERRY_OK);
        if (n < 2)
            ferry_peek_free(msgs, n);
    } while (n < 2 && harness_now_ms() < until && usleep(10 * 1000) == 0);
    ck_assert_uint_eq(n, 2);
    ck_assert(msgs[0]->len == 4 && memcmp(msgs[0]->data, "dead", 4) == 0);
    ck_assert(header_is(msgs[0], "dlq-reason", "nack"));
    ck_assert(msgs[1]->len == 5 && memcmp(msgs[1]->data, "dying", 5) == 0);
    ck_assert(header_is(msgs[1], "dlq-reason", "attempts"));
    ck_assert(header_is(msgs[1], "dlq-attempts", "2"));
    ferry_peek_free(msgs, n);
    struct ferry_queue_info info = queue_info(c, "djobs");
    ck_assert_uint_eq(info.depth + info.inflight + info.delayed, 0);
    ferry_close(c);
}
END_TEST

START_TEST(test_after_a_crash_deadlines_apply_again_and_nack_delays_are_kept)
{
    start_with(retry_conf);
    ferry_conn *c = connect_or_fail();
    publish_confirmed(c, "dtimed", "a");
    publish_confirmed(c, "dtimed", "b");
    ferry_message *a = get_expect(c, "dtimed", "a", 1); /* in flight at the crash */
    ferry_message *b = get_expect(c, "dtimed", "b", 1);
    uint64_t t_nack = unix_ms();
    ck_assert_int_eq(ferry_nack_delay(c, b->tag, 6000), FERRY_OK); /* waiting at the crash */
    ck_assert_uint_eq(queue_info(c, "dtimed").delayed, 1); /* a round trip: the nack is logged */
    ferry_message_free(a);
    ferry_message_free(b);
    ferry_close(c);
    ferryd_kill(&daemon_);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);

    /* a is ready again, its count kept; b still waits for its time. */
    c = connect_or_fail();
    struct ferry_queue_info info = queue_info(c, "dtimed");
    ck_assert_uint_eq(info.depth, 1);
    ck_assert_uint_eq(info.delayed, 1);
    uint64_t t0 = unix_ms(); /* before a's delivery, so its deadline is after t0 + 1500 */
    a = get_expect(c, "dtimed", "a", 2);
    /* a is not acked: its deadline takes it back as before the crash. */
    ferry_message_free(a);
    a = get_expect(c, "dtimed", "a", 3);
    ck_assert_uint_ge(unix_ms(), t0 + 1500);
    ck_assert_int_eq(ferry_ack(c, a->tag), FERRY_OK);
    ferry_message_free(a);
    b = get_expect(c, "dtimed", "b", 2);
    ck_assert_uint_ge(unix_ms(), t_nack + 6000);
    ck_assert_int_eq(ferry_ack(c, b->tag), FERRY_OK);
    ferry_message_free(b);
    ck_assert_uint_eq(queue_info(c, "dtimed").timeouts, 1);
    ferry_close(c);
}
END_TEST

/* ---- delayed publishes ---- */

START_TEST(test_a_delayed_message_waits_for_its_time_while_others_pass)
{
    ck_assert_int_eq(ferryd_start(&daemon_, NULL), 0);
    ferry_conn *c = connect_or_fail();
    uint64_t t0 = unix_ms();
    publish_delayed(c, "q", "later", 1500, 0);
    publish_delayed(c, "q", "at", 0, t0 + 1000);
    ck_assert_int_eq(ferry_publish(c, "q", "now", 3, NULL, 0, FERRY_PUBLISH_CONFIRM), FERRY_OK);
    struct ferry_queue_info info = queue_info(c, "q");
    ck_assert_uint_eq(info.delayed, 2);
    ck_assert_uint_eq(info.depth, 1);

    get_and_ack(c, "q", "now", WAIT_MS);
    uint64_t at = get_and_ack(c, "q", "at", WAIT_MS);
    ck_assert_uint_ge(at, t0 + 1000);
    ck_assert_uint_le(at, t0 + 1000 + LATE_MS);
    at = get_and_ack(c, "q", "later", WAIT_MS);
    ck_assert_uint_ge(at, t0 + 1500);
    ck_assert_uint_le(at, t0 + 1500 + LATE_MS);
    ck_assert_uint_eq(queue_info(c, "q").delayed, 0);
    ferry_close(c);
}
END_TEST

START_TEST(test_a_delay_beyond_366_days_is_refused)
{
    ck_assert_int_eq(ferryd_start(&daemon_, NULL), 0);
    ferry_conn *c = connect_or_fail();
    struct ferry_publish_options o = {
        .flags = FERRY_PUBLISH_CONFIRM, .deliver_at_ms = unix_ms() + FERRY_DELAY_MAX_MS + 60000,
    };
    ck_assert_int_eq(ferry_publish_opts(c, "q", "x", 1, &o), FERRY_ESERVER);
    ck_assert_int_eq(ferry_server_error(NULL), FERRY_CODE_BAD_REQUEST);
    o = (struct ferry_publish_options){ .delay_ms = FERRY_DELAY_MAX_MS + 1 };
    ck_assert_int_eq(ferry_publish_opts(c, "q", "x", 1, &o), FERRY_EINVAL);
    ferry_close(c);
}
END_TEST

START_TEST(test_a_delayed_durable_message_keeps_its_time_across_a_crash)
{
    start_with(durable_conf);
    ferry_conn *c = connect_or_fail();
    uint64_t t0 = unix_ms();
    publish_delayed(c, "dq", "later", 2500, 0);
    publish_delayed(c, "dq", "soon", 300, 0);
    ferry_close(c);
    ferryd_kill(&daemon_);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);

    c = connect_or_fail();
    struct ferry_queue_info info = queue_info(c, "dq");
    ck_assert_uint_eq(info.depth + info.delayed, 2);
    uint64_t at = get_and_ack(c, "dq", "soon", WAIT_MS);
    ck_assert_uint_ge(at, t0 + 300);
    at = get_and_ack(c, "dq", "later", WAIT_MS);
    ck_assert_uint_ge(at, t0 + 2500);
    ck_assert_uint_le(at, t0 + 2500 + LATE_MS);
    ferry_close(c);
}
END_TEST

static Suite *retry_suite(void)
{
    Suite *s = suite_create("retry");
    TCase *retries = tcase_create("retries and dead letters");
    tcase_add_checked_fixture(retries, NULL, teardown);
    tcase_set_timeout(retries, 60);
    tcase_add_test(retries, test_an_unacked_delivery_comes_back_after_its_deadline_unless_touched);
    tcase_add_test(retries, test_a_nack_with_a_delay_comes_back_no_sooner);
    tcase_add_test(retries, test_a_poison_message_that_crashes_consumers_ends_in_the_dead_letter_queue);
    tcase_add_test(retries, test_ferry_move_of_more_than_one_request_moves_them_all);
    tcase_add_test(retries, test_dead_letters_and_used_up_attempts_survive_a_crash);
    tcase_add_test(retries, test_after_a_crash_deadlines_apply_again_and_nack_delays_are_kept);
    suite_add_tcase(s, retries);
    TCase *delays = tcase_create("delayed publishes");
    tcase_add_checked_fixture(delays, NULL, teardown);
    tcase_set_timeout(delays, 60);
    tcase_add_test(delays, test_a_delayed_message_waits_for_its_time_while_others_pass);
    tcase_add_test(delays, test_a_delay_beyond_366_days_is_refused);
    tcase_add_test(delays, test_a_delayed_durable_message_keeps_its_time_across_a_crash);
    suite_add_tcase(s, delays);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(retry_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
