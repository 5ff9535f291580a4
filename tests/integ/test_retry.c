/*
 * test_retry.c - time in a real ferryd: delayed publishes (not delivered
 * before their time, delivered promptly after it), each also across a
 * SIGKILL and restart of a durable queue. Times are short and bounds
 * loose: "not before" is exact, "promptly" allows for a loaded machine.
 */
#include "harness.h"

#include <check.h>
#include <ferry.h>
#include <ferry_proto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define WAIT_MS 10000
/* How late "promptly" may be on a loaded 2-core machine. */
#define LATE_MS 3000

static struct ferryd daemon_;

static void teardown(void)
{
    ferryd_stop(&daemon_);
}

static const char *const durable_conf =
    "[server]\n"
    "data_dir = @DATA@\n"
    "[queue \"dq\"]\n"
    "durable = yes\n"
    "fsync = always\n";

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
