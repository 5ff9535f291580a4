/*
 * test_priority.c - message priorities through a real ferryd and libferry:
 * higher levels first and FIFO within a level (single publishes and batch
 * items), a nacked message back at the front of its own level, the
 * per-level depth in STATS, and a queue's default priority from the conf
 * file.
 */
#include "harness.h"

#include <check.h>
#include <ferry.h>
#include <ferry_proto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 10000

static struct ferryd daemon_;

/* ferryd exits cleanly (status 0: no leak under LeakSanitizer, no crash
 * at exit). */
static void teardown(void)
{
    ck_assert_msg(ferryd_stop(&daemon_) == 0, "ferryd did not exit cleanly (see above)");
}

static ferry_conn *start_and_connect(const char *conf)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    if (conf != NULL)
        ck_assert_int_eq(ferryd_write_conf(&daemon_, conf), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    ferry_conn *c = NULL;
    int rc = ferry_connect(daemon_.url, &c);
    ck_assert_msg(rc == FERRY_OK, "connect: %s", ferry_strerror(rc));
    return c;
}

/* Publishes `text` at `priority` (negative: none given), confirmed. */
static void publish_at(ferry_conn *c, const char *queue, const char *text, int priority)
{
    struct ferry_publish_options o = {
        .flags = FERRY_PUBLISH_CONFIRM,
        .has_priority = priority >= 0,
        .priority = (uint8_t)(priority >= 0 ? priority : 0),
    };
    int rc = ferry_publish_opts(c, queue, text, strlen(text), &o);
    ck_assert_msg(rc == FERRY_OK, "publish %s: %s", text, ferry_strerror(rc));
}

/* GETs the next message, checks its payload and attempt; returns its tag. */
static uint64_t take(ferry_conn *c, const char *queue, const char *text, uint32_t attempt)
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

/* GETs and acks each of the NULL-terminated payloads, in that order. */
static void take_in_order(ferry_conn *c, const char *queue, const char *const *texts)
{
    for (size_t i = 0; texts[i] != NULL; i++)
        ck_assert_int_eq(ferry_ack(c, take(c, queue, texts[i], 1)), FERRY_OK);
}

START_TEST(test_higher_levels_come_first_and_each_level_in_publish_order)
{
    ferry_conn *c = start_and_connect(NULL);
    publish_at(c, "jobs", "low-1", 1);
    publish_at(c, "jobs", "plain-1", -1);
    publish_at(c, "jobs", "top-1", 9);
    publish_at(c, "jobs", "mid-1", 5);
    struct ferry_msg batch[] = {
        { .data = "mid-2", .len = 5, .has_priority = true, .priority = 5 },
        { .data = "plain-2", .len = 7 },
        { .data = "top-2", .len = 5, .has_priority = true, .priority = 9 },
        { .data = "low-2", .len = 5, .has_priority = true, .priority = 1 },
    };
    ck_assert_int_eq(ferry_publish_batch(c, "jobs", batch, 4, FERRY_PUBLISH_CONFIRM), FERRY_OK);

    struct ferry_stats *st = NULL;
    ck_assert_int_eq(ferry_stats(c, "jobs", &st), FERRY_OK);
    ck_assert_uint_eq(st->count, 1);
    const uint64_t want[FERRY_PRIORITY_MAX + 1] = { 2, 2, 0, 0, 0, 2, 0, 0, 0, 2 };
    for (unsigned p = 0; p <= FERRY_PRIORITY_MAX; p++)
        ck_assert_uint_eq(st->queues[0].depth_by_priority[p], want[p]);
    ferry_stats_free(st);

    static const char *const order[] = {
        "top-1", "top-2", "mid-1", "mid-2", "low-1", "low-2", "plain-1", "plain-2", NULL,
    };
    take_in_order(c, "jobs", order);
    ferry_close(c);
}
END_TEST

START_TEST(test_a_nacked_message_goes_back_to_the_front_of_its_own_level)
{
    ferry_conn *c = start_and_connect(NULL);
    publish_at(c, "jobs", "a", 4);
    publish_at(c, "jobs", "b", 4);
    publish_at(c, "jobs", "c", 2);
    uint64_t tag = take(c, "jobs", "a", 1);
    publish_at(c, "jobs", "urgent", 8);
    ck_assert_int_eq(ferry_nack(c, tag, true), FERRY_OK);
    ck_assert_int_eq(ferry_ack(c, take(c, "jobs", "urgent", 1)), FERRY_OK);
    ck_assert_int_eq(ferry_ack(c, take(c, "jobs", "a", 2)), FERRY_OK);
    static const char *const rest[] = { "b", "c", NULL };
    take_in_order(c, "jobs", rest);
    ferry_close(c);
}
END_TEST

START_TEST(test_a_priority_above_9_is_refused_by_libferry)
{
    ferry_conn *c = start_and_connect(NULL);
    struct ferry_publish_options o = { .has_priority = true, .priority = 10 };
    ck_assert_int_eq(ferry_publish_opts(c, "jobs", "x", 1, &o), FERRY_EINVAL);
    struct ferry_msg bad = { .data = "x", .len = 1, .has_priority = true, .priority = 200 };
    ck_assert_int_eq(ferry_publish_batch(c, "jobs", &bad, 1, 0), FERRY_EINVAL);
    ferry_close(c);
}
END_TEST

START_TEST(test_the_conf_file_gives_a_queue_its_default_priority)
{
    ferry_conn *c = start_and_connect("[queues]\n"
                                      "priority = 2\n"
                                      "[queue \"alerts\"]\n"
                                      "priority = 7\n");
    publish_at(c, "alerts", "given-6", 6);
    publish_at(c, "alerts", "default", -1);
    publish_at(c, "alerts", "given-8", 8);
    static const char *const alerts[] = { "given-8", "default", "given-6", NULL };
    take_in_order(c, "alerts", alerts);

    publish_at(c, "other", "given-1", 1);
    publish_at(c, "other", "default", -1);
    publish_at(c, "other", "given-3", 3);
    static const char *const other[] = { "given-3", "default", "given-1", NULL };
    take_in_order(c, "other", other);
    ferry_close(c);
}
END_TEST

static Suite *priority_suite(void)
{
    Suite *s = suite_create("priority");
    TCase *tc = tcase_create("in memory");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_higher_levels_come_first_and_each_level_in_publish_order);
    tcase_add_test(tc, test_a_nacked_message_goes_back_to_the_front_of_its_own_level);
    tcase_add_test(tc, test_a_priority_above_9_is_refused_by_libferry);
    tcase_add_test(tc, test_the_conf_file_gives_a_queue_its_default_priority);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(priority_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
