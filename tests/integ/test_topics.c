/*
 * test_topics.c - fan-out, temporary queues and request/reply through a
 * real ferryd: every bound queue gets every message, a temporary queue is
 * its connection's alone and goes with it, `ferry subscribe` prints what
 * is published to its patterns.
 */
#include "harness.h"
#include "raw.h"

#include <check.h>
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

#define WAIT_MS 10000

static struct ferryd daemon_;

static void teardown(void)
{
    ferryd_stop(&daemon_);
}

static void start_daemon(void)
{
    ck_assert_int_eq(ferryd_start(&daemon_, NULL), 0);
}

/* ferryd exits cleanly (status 0: no leak under LeakSanitizer). */
static void stop_daemon(void)
{
    ck_assert_int_eq(ferryd_stop(&daemon_), 0);
}

static const struct ferry_publish_options confirmed = { .flags = FERRY_PUBLISH_CONFIRM };

static void ok(int rc, const char *what)
{
    const char *text = NULL;
    if (rc == FERRY_ESERVER)
        ferry_server_error(&text);
    ck_assert_msg(rc == FERRY_OK, "%s: %s %s", what, ferry_strerror(rc), text ? text : "");
}

static ferry_conn *connect_or_fail(void)
{
    ferry_conn *c = NULL;
    ok(ferry_connect(daemon_.url, &c), "connect");
    return c;
}

/* The broker refused with `code`. */
static void refused(int rc, int code, const char *what)
{
    ck_assert_msg(rc == FERRY_ESERVER, "%s: %s", what, ferry_strerror(rc));
    ck_assert_int_eq(ferry_server_error(NULL), code);
}

static struct ferry_queue_info queue_info(ferry_conn *c, const char *queue)
{
    struct ferry_stats *st = NULL;
    ok(ferry_stats(c, queue, &st), queue);
    ck_assert_uint_eq(st->count, 1);
    struct ferry_queue_info info = st->queues[0];
    info.name = NULL; /* freed below */
    ferry_stats_free(st);
    return info;
}

/* The queue's patterns, newest first, as one space-separated string. */
static void assert_bindings(ferry_conn *c, const char *queue, const char *want)
{
    char **patterns = NULL;
    size_t count = 0;
    ok(ferry_bindings(c, queue, &patterns, &count), "bindings");
    char got[1024] = "";
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            strcat(got, " ");
        strncat(got, patterns[i], sizeof got - strlen(got) - 2);
    }
    ck_assert_ptr_null(patterns[count]);
    ferry_bindings_free(patterns);
    ck_assert_str_eq(got, want);
}

/* ---- fan-out ---- */

START_TEST(test_every_bound_queue_gets_every_message_in_order)
{
    start_daemon();
    ferry_conn *c = connect_or_fail();
    ok(ferry_bind(c, "fan-all", "orders.#"), "bind");
    ok(ferry_bind(c, "fan-one-word", "orders.*"), "bind");
    ok(ferry_bind(c, "fan-eu", "*.eu"), "bind");
    ok(ferry_bind(c, "fan-eu", "orders.eu"), "bind"); /* two patterns, one copy */
    ok(ferry_bind(c, "fan-invoices", "invoices.#"), "bind");
    enum { N = 2000 };
    char text[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(text, sizeof text, "m%d", i);
        ok(ferry_publish_topic(c, "orders.eu", text, (size_t)n, NULL), "publish");
    }
    ok(ferry_publish_topic(c, "nobody.listens", "x", 1, NULL), "publish");
    ok(ferry_flush(c, WAIT_MS), "flush");
    ck_assert_uint_eq(queue_info(c, "fan-all").depth, N);
    ck_assert_uint_eq(queue_info(c, "fan-one-word").depth, N);
    ck_assert_uint_eq(queue_info(c, "fan-eu").depth, N);
    ck_assert_uint_eq(queue_info(c, "fan-invoices").depth, 0);
    ck_assert_uint_eq(queue_info(c, "fan-eu").bindings, 2);
    assert_bindings(c, "fan-eu", "orders.eu *.eu");
    char **none = NULL;
    size_t none_count = 0;
    refused(ferry_bindings(c, "no-such-queue", &none, &none_count), FERRY_CODE_NOT_FOUND, "bindings");
    ck_assert_ptr_null(none);
    struct ferry_stats *st = NULL;
    ok(ferry_stats(c, NULL, &st), "stats");
    ck_assert_uint_eq(st->topic_publishes, N + 1);
    ck_assert_uint_eq(st->unroutable, 1);
    ck_assert_uint_eq(st->copies, 3 * N);
    ck_assert_uint_eq(st->skipped, 0);
    ck_assert_uint_eq(st->bindings, 5);
    ferry_stats_free(st);
    /* In publish order in each. */
    for (int i = 0; i < 5; i++) {
        ferry_message *m = NULL;
        ok(ferry_get(c, "fan-eu", 0, &m), "get");
        int n = snprintf(text, sizeof text, "m%d", i);
        ck_assert_uint_eq(m->len, (size_t)n);
        ck_assert(memcmp(m->data, text, m->len) == 0);
        ok(ferry_ack(c, m->tag), "ack");
        ferry_message_free(m);
    }
    ck_assert_uint_eq(queue_info(c, "fan-all").depth, N);
    ok(ferry_unbind(c, "fan-all", "orders.#"), "unbind");
    refused(ferry_unbind(c, "fan-all", "orders.#"), FERRY_CODE_NOT_FOUND, "unbind twice");
    ok(ferry_publish_topic(c, "orders.eu", "late", 4, &confirmed), "publish");
    ck_assert_uint_eq(queue_info(c, "fan-all").depth, N);
    ck_assert_uint_eq(queue_info(c, "fan-one-word").depth, N + 1);
    ferry_close(c);
    stop_daemon();
}
END_TEST

START_TEST(test_bad_topics_and_patterns_are_refused_and_the_connection_lives)
{
    start_daemon();
    ferry_conn *c = connect_or_fail();
    /* libferry checks first... */
    ck_assert_int_eq(ferry_bind(c, "q", "a..b"), FERRY_EINVAL);
    ck_assert_int_eq(ferry_publish_topic(c, "a.*", "x", 1, NULL), FERRY_EINVAL);
    ck_assert_int_eq(ferry_publish_topic(c, NULL, "x", 1, NULL), FERRY_EINVAL);
    ok(ferry_bind(c, "q", "#"), "bind");
    ok(ferry_publish_topic(c, "a.b", "x", 1, &confirmed), "publish");
    ck_assert_uint_eq(queue_info(c, "q").depth, 1);
    ferry_close(c);
    stop_daemon();
}
END_TEST

START_TEST(test_a_durable_queue_gets_its_conf_bindings_back_after_a_restart)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    ck_assert_int_eq(ferryd_write_conf(&daemon_,
                                       "[server]\n"
                                       "data_dir = @DATA@\n"
                                       "[queue \"audit\"]\n"
                                       "durable = yes\n"
                                       "bind = orders.#\n"
                                       "bind = #.refunded\n"
                                       "[queue \"eu\"]\n"
                                       "bind = *.eu\n"),
                     0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    ferry_conn *c = connect_or_fail();
    /* Bound from the start, before any client asked. */
    ok(ferry_publish_topic(c, "orders.eu", "o1", 2, NULL), "publish");
    ok(ferry_publish_topic(c, "payments.refunded", "r1", 2, &confirmed), "publish");
    /* A binding made by a client lives in memory only. */
    ok(ferry_bind(c, "audit", "extra.*"), "bind");
    ck_assert_uint_eq(queue_info(c, "audit").depth, 2);
    ck_assert_uint_eq(queue_info(c, "eu").depth, 1);
    ferry_close(c);

    ferryd_kill(&daemon_); /* a crash: the confirmed copies are in the log */
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    c = connect_or_fail();
    assert_bindings(c, "audit", "#.refunded orders.#"); /* the conf's; extra.* is gone */
    ck_assert_uint_eq(queue_info(c, "audit").depth, 2); /* durable: its copies survived */
    ck_assert_uint_eq(queue_info(c, "eu").depth, 0);    /* in memory: gone, but bound again */
    ok(ferry_publish_topic(c, "orders.us", "o2", 2, NULL), "publish");
    ok(ferry_publish_topic(c, "shop.eu", "s1", 2, NULL), "publish");
    ok(ferry_publish_topic(c, "extra.x", "lost", 4, &confirmed), "publish");
    ck_assert_uint_eq(queue_info(c, "audit").depth, 3);
    ck_assert_uint_eq(queue_info(c, "eu").depth, 1);
    const char *want[] = { "o1", "r1", "o2" };
    for (int i = 0; i < 3; i++) {
        ferry_message *m = NULL;
        ok(ferry_get(c, "audit", WAIT_MS, &m), "get");
        ck_assert_uint_eq(m->len, strlen(want[i]));
        ck_assert(memcmp(m->data, want[i], m->len) == 0);
        ok(ferry_ack(c, m->tag), "ack");
        ferry_message_free(m);
    }
    ferry_close(c);
    stop_daemon();
}
END_TEST

/* Fan-out to bounded queues: one full with reject, one with drop-oldest,
 * one full with block (a copy never waits), one without bound; every
 * publish is confirmed and the unbounded queue gets every message. */
START_TEST(test_a_full_bound_queue_holds_up_none_of_the_others)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    ck_assert_int_eq(ferryd_write_conf(&daemon_,
                                       "[queue \"all\"]\n"
                                       "bind = ev.#\n"
                                       "[queue \"rejecting\"]\n"
                                       "max_length = 5\n"
                                       "overflow = reject\n"
                                       "bind = ev.#\n"
                                       "[queue \"dropping\"]\n"
                                       "max_length = 5\n"
                                       "overflow = drop-oldest\n"
                                       "bind = ev.#\n"
                                       "[queue \"blocking\"]\n"
                                       "max_length = 5\n"
                                       "overflow = block\n"
                                       "bind = ev.#\n"),
                     0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    ferry_conn *c = connect_or_fail();
    /* Two of them full before the first copy. */
    for (int i = 0; i < 5; i++) {
        ok(ferry_publish(c, "rejecting", "old", 3, NULL, 0, FERRY_PUBLISH_CONFIRM), "fill");
        ok(ferry_publish(c, "blocking", "old", 3, NULL, 0, FERRY_PUBLISH_CONFIRM), "fill");
    }
    enum { N = 1000 };
    char text[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(text, sizeof text, "e%d", i);
        ok(ferry_publish_topic(c, "ev.created", text, (size_t)n, NULL), "publish");
    }
    ok(ferry_flush(c, WAIT_MS), "every topic publish confirmed");

    struct ferry_queue_info all = queue_info(c, "all");
    struct ferry_queue_info rejecting = queue_info(c, "rejecting");
    struct ferry_queue_info dropping = queue_info(c, "dropping");
    struct ferry_queue_info blocking = queue_info(c, "blocking");
    ck_assert_uint_eq(all.depth, N);
    ck_assert_uint_eq(rejecting.depth, 5);
    ck_assert_uint_eq(rejecting.rejected, N);
    ck_assert_uint_eq(dropping.depth, 5);
    ck_assert_uint_eq(dropping.dropped_oldest, N - 5);
    ck_assert_uint_eq(blocking.depth, 5);
    ck_assert_uint_eq(blocking.rejected, N); /* block is reject for a copy */
    ck_assert_uint_eq(blocking.blocked, 0);
    struct ferry_stats *st = NULL;
    ok(ferry_stats(c, NULL, &st), "stats");
    ck_assert_uint_eq(st->copies, N + N);
    ck_assert_uint_eq(st->skipped, 2 * N);
    ferry_stats_free(st);
    /* Every message, in order, in the unbounded one; the last five in drop-oldest's. */
    for (int i = 0; i < N; i++) {
        ferry_message *m = NULL;
        ok(ferry_get(c, "all", WAIT_MS, &m), "get");
        int n = snprintf(text, sizeof text, "e%d", i);
        ck_assert_msg(m->len == (size_t)n && memcmp(m->data, text, m->len) == 0,
                      "message %d of 'all' is not e%d", i, i);
        ok(ferry_ack(c, m->tag), "ack");
        ferry_message_free(m);
    }
    for (int i = N - 5; i < N; i++) {
        ferry_message *m = NULL;
        ok(ferry_get(c, "dropping", WAIT_MS, &m), "get");
        int n = snprintf(text, sizeof text, "e%d", i);
        ck_assert(m->len == (size_t)n && memcmp(m->data, text, m->len) == 0);
        ok(ferry_ack(c, m->tag), "ack");
        ferry_message_free(m);
    }
    ferry_close(c);
    stop_daemon();
}
END_TEST

/* ---- hostile input on the wire ---- */

START_TEST(test_bad_topics_and_patterns_on_the_wire_are_refused_and_not_fatal)
{
    start_daemon();
    struct raw r;
    raw_open(&r, &daemon_);
    raw_hello(&r);
    char long_pattern[FERRY_TOPIC_MAX + 2];
    memset(long_pattern, 'a', sizeof long_pattern - 1);
    long_pattern[sizeof long_pattern - 1] = '\0';
    const char *bad[] = { "", "a..b", ".a", "a.", "a*", "a.#b", "a b", "a/b", long_pattern,
                          "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28.29.30.31.32.33" };
    uint64_t rid = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ferry_frame bind = { .type = FERRY_F_BIND, .rid = rid, .queue = raw_bytes("q"),
                                    .topic = raw_bytes(bad[i]) };
        raw_send(&r, &bind);
        struct ferry_frame e = raw_expect_error(&r, FERRY_CODE_BAD_TOPIC, false, bad[i]);
        ck_assert_uint_eq(e.rid, rid++);
        struct ferry_frame publish = { .type = FERRY_F_PUBLISH_TOPIC, .topic = raw_bytes(bad[i]),
                                       .payload = raw_bytes("x"), .id = rid, .has_id = true };
        raw_send(&r, &publish);
        e = raw_expect_error(&r, FERRY_CODE_BAD_TOPIC, false, bad[i]);
        ck_assert(e.has_id && e.id == rid++);
    }
    /* A wildcard is a pattern, not a topic. */
    struct ferry_frame publish = { .type = FERRY_F_PUBLISH_TOPIC, .topic = raw_bytes("a.*"),
                                   .payload = raw_bytes("x") };
    raw_send(&r, &publish);
    raw_expect_error(&r, FERRY_CODE_BAD_TOPIC, false, "a wildcard topic");
    struct ferry_frame unbind = { .type = FERRY_F_UNBIND, .rid = rid, .queue = raw_bytes("nope"),
                                  .topic = raw_bytes("a") };
    raw_send(&r, &unbind);
    raw_expect_error(&r, FERRY_CODE_NOT_FOUND, false, "unbind of nothing");
    struct ferry_frame bad_queue = { .type = FERRY_F_BIND, .rid = ++rid, .queue = raw_bytes("a b"),
                                     .topic = raw_bytes("a") };
    raw_send(&r, &bad_queue);
    raw_expect_error(&r, FERRY_CODE_BAD_NAME, false, "bind of a bad queue name");
    raw_expect_alive(&r, ++rid, "after bad topics");
    raw_close(&r);
    stop_daemon();
}
END_TEST

START_TEST(test_bindings_too_many_for_a_frame_are_refused_with_limit)
{
    const char *const args[] = { "--max-frame", "4096", NULL };
    ck_assert_int_eq(ferryd_start(&daemon_, args), 0);
    ferry_conn *c = connect_or_fail();
    char pattern[80];
    for (int i = 0; i < 100; i++) { /* some 6 KB of patterns */
        snprintf(pattern, sizeof pattern, "a-rather-long-word-%03d.another-long-word.#", i);
        ok(ferry_bind(c, "wide", pattern), "bind");
    }
    char **patterns = NULL;
    size_t count = 0;
    refused(ferry_bindings(c, "wide", &patterns, &count), FERRY_CODE_LIMIT, "bindings");
    ok(ferry_unbind(c, "wide", "a-rather-long-word-000.another-long-word.#"), "unbind");
    ok(ferry_bind(c, "narrow", "x.#.#.y"), "bind");
    assert_bindings(c, "narrow", "x.#.y");
    ferry_close(c);
    stop_daemon();
}
END_TEST

/* Sends `count` frames made by make(i) in one write; returns how many
 * were answered OK, in order, and the code of the last answer. */
static size_t storm(struct raw *r, size_t count, struct ferry_frame (*make)(size_t i, char *buf),
                    uint32_t *last_code)
{
    struct ferry_buf out = { 0 };
    char buf[64];
    for (size_t i = 0; i < count; i++) {
        struct ferry_frame f = make(i, buf);
        ck_assert_int_eq(ferry_frame_encode(&out, &f), 0);
    }
    ck_assert(raw_write(r, out.data + out.off, ferry_buf_pending(&out)));
    ferry_buf_free(&out);
    size_t answered_ok = 0;
    for (size_t i = 0; i < count; i++) {
        struct ferry_frame f;
        ck_assert(raw_next(r, &f));
        ck_assert_uint_eq(f.rid, i + 1);
        ck_assert(f.type == FERRY_F_OK || (f.type == FERRY_F_ERROR && !f.fatal));
        *last_code = f.type == FERRY_F_OK ? FERRY_CODE_OK : f.code;
        answered_ok += f.type == FERRY_F_OK;
    }
    return answered_ok;
}

static struct ferry_frame bind_k(size_t i, char *buf)
{
    snprintf(buf, 64, "k%zu.#", i);
    return (struct ferry_frame){ .type = FERRY_F_BIND, .rid = i + 1, .queue = raw_bytes("many"),
                                 .topic = raw_bytes(buf) };
}

static struct ferry_frame declare_temp(size_t i, char *buf)
{
    (void)buf;
    return (struct ferry_frame){ .type = FERRY_F_DECLARE_TEMP, .rid = i + 1 };
}

START_TEST(test_bindings_and_temporary_queues_are_bounded)
{
    start_daemon();
    struct raw r;
    raw_open(&r, &daemon_);
    raw_hello(&r);
    uint32_t last = 0;
    ck_assert_uint_eq(storm(&r, 1025, bind_k, &last), 1024);
    ck_assert_msg(last == FERRY_CODE_LIMIT, "binding 1,025 got %s", ferry_code_name(last));
    ck_assert_uint_eq(storm(&r, 1025, declare_temp, &last), 1024);
    ck_assert_msg(last == FERRY_CODE_LIMIT, "temporary queue 1,025 got %s", ferry_code_name(last));
    raw_expect_alive(&r, 1u << 20, "at the limits");
    ferry_conn *c = connect_or_fail();
    struct ferry_stats *st = NULL;
    ok(ferry_stats(c, NULL, &st), "stats");
    ck_assert_uint_eq(st->queue_total, 1 + 1024);
    ck_assert_uint_eq(st->bindings, 1024);
    ferry_stats_free(st);
    raw_close(&r); /* its 1,024 temporary queues go with it */
    long long deadline = harness_now_ms() + WAIT_MS;
    uint64_t queues;
    do {
        ok(ferry_stats(c, NULL, &st), "stats");
        queues = st->queue_total;
        ferry_stats_free(st);
        if (queues > 1)
            harness_sleep_ms(10);
    } while (queues > 1 && harness_now_ms() < deadline);
    ck_assert_uint_eq(queues, 1);
    ferry_close(c);
    stop_daemon();
}
END_TEST

START_TEST(test_a_pattern_of_many_hashes_does_not_slow_publishing)
{
    start_daemon();
    ferry_conn *c = connect_or_fail();
    /* A costly pattern for a naive matcher, on the longest topics ('#' and
     * '*' alternate: runs of '#' are folded into one). */
    ok(ferry_bind(c, "trap", "#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.z"), "bind");
    char topic[2 * 32];
    for (size_t i = 0; i < 32; i++) {
        topic[2 * i] = 'a';
        topic[2 * i + 1] = '.';
    }
    topic[2 * 32 - 1] = '\0';
    enum { N = 2000 };
    long long start = harness_now_ms();
    for (int i = 0; i < N; i++)
        ok(ferry_publish_topic(c, topic, "x", 1, NULL), "publish");
    topic[2 * 32 - 2] = 'z';
    ok(ferry_publish_topic(c, topic, "hit", 3, &confirmed), "publish");
    long long took = harness_now_ms() - start;
    ck_assert_uint_eq(queue_info(c, "trap").depth, 1);
    fprintf(stderr, "topics: %d publishes against a 15-'#' pattern in %lld ms\n", N + 1, took);
    /* Some 20 ms idle; a naive matcher would take hours. Generous for ASan. */
    ck_assert_msg(took < 20000, "%d publishes took %lld ms", N + 1, took);
    ferry_close(c);
    stop_daemon();
}
END_TEST

START_TEST(test_a_reload_adds_the_bindings_of_the_conf_and_removes_none)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    ck_assert_int_eq(ferryd_write_conf(&daemon_, "[queue \"one\"]\nbind = a.#\n"), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    ferry_conn *c = connect_or_fail();
    ck_assert_uint_eq(queue_info(c, "one").bindings, 1);
    ck_assert_int_eq(ferryd_write_conf(&daemon_, "[queue \"one\"]\nbind = b.*\n"
                                                 "[queue \"two\"]\nbind = c\n"),
                     0);
    ck_assert_int_eq(kill(daemon_.pid, SIGHUP), 0);
    long long deadline = harness_now_ms() + WAIT_MS;
    struct ferry_stats *st = NULL;
    uint64_t bindings = 0;
    while (bindings < 3 && harness_now_ms() < deadline) {
        ok(ferry_stats(c, NULL, &st), "stats");
        bindings = st->bindings;
        ferry_stats_free(st);
        if (bindings < 3)
            harness_sleep_ms(10);
    }
    ck_assert_uint_eq(bindings, 3); /* a.# stays, b.* and c are added */
    ok(ferry_publish_topic(c, "a.x", "1", 1, NULL), "publish");
    ok(ferry_publish_topic(c, "b.y", "2", 1, NULL), "publish");
    ok(ferry_publish_topic(c, "c", "3", 1, &confirmed), "publish");
    ck_assert_uint_eq(queue_info(c, "one").depth, 2);
    ck_assert_uint_eq(queue_info(c, "two").depth, 1);
    ferry_close(c);
    stop_daemon();
}
END_TEST

/* ---- temporary queues ---- */

START_TEST(test_a_temporary_queue_is_private_and_goes_with_its_connection)
{
    start_daemon();
    ferry_conn *owner = connect_or_fail();
    ferry_conn *other = connect_or_fail();
    char name[FERRY_NAME_MAX + 1];
    ok(ferry_declare_temp(owner, NULL, name, sizeof name), "declare temp");
    ck_assert(strncmp(name, "tmp.", 4) == 0);
    ok(ferry_bind(owner, name, "news.#"), "bind");
    ok(ferry_publish_topic(other, "news.today", "n1", 2, &confirmed), "publish");
    ok(ferry_publish(other, name, "direct", 6, NULL, 0, FERRY_PUBLISH_CONFIRM), "publish to it");
    ck_assert_uint_eq(queue_info(other, name).depth, 2);

    /* Others may publish, not take or manage. */
    ferry_message *m = NULL;
    refused(ferry_get(other, name, 0, &m), FERRY_CODE_EXCLUSIVE, "get by another");
    refused(ferry_delete(other, name), FERRY_CODE_EXCLUSIVE, "delete by another");
    refused(ferry_purge(other, name, NULL), FERRY_CODE_EXCLUSIVE, "purge by another");
    refused(ferry_bind(other, name, "x"), FERRY_CODE_EXCLUSIVE, "bind by another");
    /* Nor read its messages, nor move them away (the replies it waits for). */
    ferry_message **peeked = NULL;
    size_t npeeked = 0;
    refused(ferry_peek(other, name, 10, &peeked, &npeeked), FERRY_CODE_EXCLUSIVE,
            "peek by another");
    refused(ferry_move(other, name, "stolen", 0, NULL), FERRY_CODE_EXCLUSIVE, "move by another");
    ck_assert_uint_eq(queue_info(other, name).depth, 2);
    char again[FERRY_NAME_MAX + 1];
    refused(ferry_declare_temp(other, name, again, sizeof again), FERRY_CODE_EXCLUSIVE,
            "declare another's");

    ok(ferry_get(owner, name, WAIT_MS, &m), "get by its owner");
    ck_assert(m->len == 2 && memcmp(m->data, "n1", 2) == 0);
    ferry_message_free(m); /* left unacked: it goes with the queue */

    ferry_close(owner);
    long long deadline = harness_now_ms() + WAIT_MS;
    struct ferry_stats *st = NULL;
    int rc;
    while ((rc = ferry_stats(other, name, &st)) == FERRY_OK && harness_now_ms() < deadline) {
        ferry_stats_free(st);
        st = NULL;
        harness_sleep_ms(10);
    }
    refused(rc, FERRY_CODE_NOT_FOUND, "stats of a closed connection's queue");
    /* A late message for it is refused, and makes no queue of that name. */
    refused(ferry_publish(other, name, "late", 4, NULL, 0, FERRY_PUBLISH_CONFIRM),
            FERRY_CODE_NOT_FOUND, "publish to a gone temporary queue");
    ok(ferry_stats(other, NULL, &st), "stats");
    ck_assert_uint_eq(st->messages, 0);
    ck_assert_uint_eq(st->queue_total, 0);
    ferry_stats_free(st);
    ferry_close(other);
    stop_daemon();
}
END_TEST

/* ---- request/reply ---- */

enum { RPC_THREADS = 10, RPC_PER_THREAD = 100 };

struct requester {
    ferry_conn *conn; /* shared by every requester */
    int index;
    int ok;           /* replies that came back to the right caller */
    int failures;
};

static void *run_requester(void *arg)
{
    struct requester *r = arg;
    char text[64], want[80];
    for (int i = 0; i < RPC_PER_THREAD; i++) {
        int n = snprintf(text, sizeof text, "t%d-r%d", r->index, i);
        snprintf(want, sizeof want, "re:%s", text);
        ferry_message *reply = NULL;
        int rc = ferry_request(r->conn, "rpc", text, (size_t)n, NULL, 30000, &reply);
        if (rc == FERRY_OK && reply->len == strlen(want) && memcmp(reply->data, want, reply->len) == 0)
            r->ok++;
        else
            r->failures++;
        ferry_message_free(reply);
    }
    return NULL;
}

struct responder {
    const char *url;
    atomic_bool stop;
    long served;
};

/* Takes up to 16 requests at once and answers them last first, so that
 * replies come back in another order than the requests went out. */
static void *run_responder(void *arg)
{
    struct responder *s = arg;
    ferry_conn *c = NULL;
    if (ferry_connect(s->url, &c) != FERRY_OK)
        return NULL;
    while (!atomic_load(&s->stop)) {
        ferry_message *batch[16];
        size_t n = 0;
        while (n < 16 && ferry_get(c, "rpc", n == 0 ? 100 : 0, &batch[n]) == FERRY_OK)
            n++;
        while (n > 0) {
            ferry_message *m = batch[--n];
            char text[96];
            int len = snprintf(text, sizeof text, "re:%.*s", (int)m->len, (const char *)m->data);
            if (ferry_reply(c, m, text, (size_t)len, NULL) == FERRY_OK)
                s->served++;
            ferry_ack(c, m->tag);
            ferry_message_free(m);
        }
    }
    ferry_close(c);
    return NULL;
}

START_TEST(test_a_thousand_requests_from_ten_threads_each_get_their_own_reply)
{
    start_daemon();
    ferry_conn *c = connect_or_fail();
    struct responder s = { .url = daemon_.url };
    pthread_t responder;
    ck_assert_int_eq(pthread_create(&responder, NULL, run_responder, &s), 0);
    struct requester r[RPC_THREADS];
    pthread_t threads[RPC_THREADS];
    long long start = harness_now_ms();
    for (int i = 0; i < RPC_THREADS; i++) {
        r[i] = (struct requester){ .conn = c, .index = i };
        ck_assert_int_eq(pthread_create(&threads[i], NULL, run_requester, &r[i]), 0);
    }
    int ok_total = 0;
    for (int i = 0; i < RPC_THREADS; i++) {
        pthread_join(threads[i], NULL);
        ck_assert_msg(r[i].failures == 0, "thread %d: %d replies missing or wrong", i, r[i].failures);
        ok_total += r[i].ok;
    }
    long long took = harness_now_ms() - start;
    atomic_store(&s.stop, true);
    pthread_join(responder, NULL);
    ck_assert_int_eq(ok_total, RPC_THREADS * RPC_PER_THREAD);
    ck_assert_int_eq(s.served, RPC_THREADS * RPC_PER_THREAD);
    fprintf(stderr, "rpc: %d requests from %d threads on one connection in %lld ms\n", ok_total,
            RPC_THREADS, took);
    /* One reply queue for the whole connection, empty now; the request
     * queue too. */
    struct ferry_stats *st = NULL;
    ok(ferry_stats(c, NULL, &st), "stats");
    ck_assert_uint_eq(st->count, 2);
    ck_assert_uint_eq(st->messages, 0);
    ferry_stats_free(st);
    ferry_close(c);
    stop_daemon();
}
END_TEST

START_TEST(test_a_request_times_out_and_its_late_reply_goes_to_nobody)
{
    start_daemon();
    ferry_conn *c = connect_or_fail();
    ferry_message *reply = NULL;
    ck_assert_int_eq(ferry_request(c, "slow", "first", 5, NULL, 200, &reply), FERRY_ETIMEDOUT);
    ck_assert_ptr_null(reply);
    /* The responder comes late: the first reply is dropped, the second
     * request gets its own. */
    ferry_conn *server = connect_or_fail();
    ferry_message *m = NULL;
    ok(ferry_get(server, "slow", WAIT_MS, &m), "get");
    ok(ferry_reply(server, m, "late", 4, NULL), "reply");
    ok(ferry_ack(server, m->tag), "ack");
    ferry_message_free(m);
    ok(ferry_flush(server, WAIT_MS), "flush");
    ok(ferry_publish(c, "slow", "no headers", 10, NULL, 0, FERRY_PUBLISH_CONFIRM), "publish");
    ok(ferry_get(server, "slow", WAIT_MS, &m), "get");
    ck_assert_int_eq(ferry_reply(server, m, "x", 1, NULL), FERRY_EINVAL);
    ok(ferry_ack(server, m->tag), "ack");
    ferry_message_free(m);

    struct responder s = { .url = daemon_.url };
    pthread_t responder;
    ck_assert_int_eq(pthread_create(&responder, NULL, run_responder, &s), 0);
    ok(ferry_request(c, "rpc", "second", 6, NULL, WAIT_MS, &reply), "request");
    ck_assert(reply->len == 9 && memcmp(reply->data, "re:second", 9) == 0);
    ferry_message_free(reply);
    atomic_store(&s.stop, true);
    pthread_join(responder, NULL);
    ferry_close(server);
    ferry_close(c);
    stop_daemon();
}
END_TEST

START_TEST(test_requests_go_on_after_a_reconnect_over_a_new_reply_queue)
{
    start_daemon();
    struct ferry_options o = {
        .url = daemon_.url, .reconnect = true, .reconnect_base_ms = 20, .reconnect_max_ms = 200,
    };
    ferry_conn *c = NULL;
    ok(ferry_connect_opts(&o, &c), "connect");
    struct responder s = { .url = daemon_.url };
    pthread_t responder;
    ck_assert_int_eq(pthread_create(&responder, NULL, run_responder, &s), 0);
    ferry_message *reply = NULL;
    ok(ferry_request(c, "rpc", "before", 6, NULL, WAIT_MS, &reply), "request before");
    ferry_message_free(reply);
    atomic_store(&s.stop, true);
    pthread_join(responder, NULL);

    ferryd_kill(&daemon_);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    atomic_store(&s.stop, false);
    ck_assert_int_eq(pthread_create(&responder, NULL, run_responder, &s), 0);
    /* The first calls may meet the broken connection; within the timeout
     * libferry is connected again, with a new reply queue. */
    int rc = FERRY_EIO;
    long long deadline = harness_now_ms() + WAIT_MS;
    for (int round = 0; round < 3; round++) {
        do {
            reply = NULL;
            rc = ferry_request(c, "rpc", "after", 5, NULL, 2000, &reply);
        } while (rc != FERRY_OK && harness_now_ms() < deadline);
        ck_assert_msg(rc == FERRY_OK, "request after the restart: %s", ferry_strerror(rc));
        ck_assert(reply->len == 8 && memcmp(reply->data, "re:after", 8) == 0);
        ferry_message_free(reply);
    }
    ck_assert_uint_ge(ferry_reconnects(c), 1);
    atomic_store(&s.stop, true);
    pthread_join(responder, NULL);
    ferry_close(c);
    stop_daemon();
}
END_TEST

/* Closes the broker's connection named `name` after `delay_ms` (a thread). */
struct breaker {
    ferry_conn *admin;
    const char *name;
    long delay_ms;
    int killed;
};

static void *break_later(void *arg)
{
    struct breaker *b = arg;
    harness_sleep_ms(b->delay_ms);
    struct ferry_connections *l = NULL;
    if (ferry_connections(b->admin, &l) != FERRY_OK)
        return NULL;
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->conns[i].name, b->name) == 0 && ferry_kill(b->admin, l->conns[i].id) == FERRY_OK)
            b->killed++;
    ferry_connections_free(l);
    return NULL;
}

/* A request waiting for its reply when its connection breaks cannot get it
 * any more (its reply queue went with the old connection): with reconnect
 * it returns FERRY_EIO as soon as the connection is made again, not at its
 * timeout; the next request gets its reply over a new reply queue. */
START_TEST(test_a_request_waiting_through_a_reconnect_returns_at_once)
{
    enum { TIMEOUT_MS = 30000 };
    start_daemon();
    struct ferry_options o = {
        .url = daemon_.url, .name = "requester", .reconnect = true,
        .reconnect_base_ms = 20, .reconnect_max_ms = 200,
    };
    ferry_conn *c = NULL;
    ok(ferry_connect_opts(&o, &c), "connect");
    ferry_conn *admin = connect_or_fail();
    struct breaker b = { .admin = admin, .name = "requester", .delay_ms = 300 };
    pthread_t breaker;
    ck_assert_int_eq(pthread_create(&breaker, NULL, break_later, &b), 0);
    ferry_message *reply = NULL;
    long long t0 = harness_now_ms();
    int rc = ferry_request(c, "nobody", "lost", 4, NULL, TIMEOUT_MS, &reply);
    long long took = harness_now_ms() - t0;
    pthread_join(breaker, NULL);
    ck_assert_int_eq(b.killed, 1);
    ck_assert_msg(rc == FERRY_EIO, "request through a reconnect: %s after %lld ms",
                  ferry_strerror(rc), took);
    ck_assert_ptr_null(reply);
    ck_assert_int_lt(took, TIMEOUT_MS / 2);
    ck_assert_uint_ge(ferry_reconnects(c), 1);

    struct responder s = { .url = daemon_.url };
    pthread_t responder;
    ck_assert_int_eq(pthread_create(&responder, NULL, run_responder, &s), 0);
    ok(ferry_request(c, "rpc", "after", 5, NULL, WAIT_MS, &reply), "request after");
    ck_assert(reply->len == 8 && memcmp(reply->data, "re:after", 8) == 0);
    ferry_message_free(reply);
    atomic_store(&s.stop, true);
    pthread_join(responder, NULL);
    ferry_close(admin);
    ferry_close(c);
    stop_daemon();
}
END_TEST

/* ---- the CLI ---- */

/* Runs `ferry ARGS...` with stdout into a pipe; returns its pid. */
static pid_t spawn_cli(const char *const *args, int *out_fd)
{
    pid_t pid = harness_cli_spawn(&daemon_, args, 1, out_fd);
    ck_assert_int_ge(pid, 0);
    return pid;
}

/* Reads everything until EOF (bounded by the child's own --timeout). */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t got;
    while (len + 1 < cap && (got = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)got;
    buf[len] = '\0';
    close(fd);
    return len;
}

START_TEST(test_ferry_subscribe_prints_what_is_published_to_its_patterns)
{
    start_daemon();
    ferry_conn *c = connect_or_fail();
    const char *args[] = { "subscribe", "-n", "3", "--timeout", "10", "alerts.*", "#.urgent",
                           NULL };
    int out;
    pid_t pid = spawn_cli(args, &out);
    /* Wait until its queue is bound: two bindings, the server says. */
    long long deadline = harness_now_ms() + WAIT_MS;
    for (;;) {
        struct ferry_stats *st = NULL;
        ok(ferry_stats(c, NULL, &st), "stats");
        bool bound = st->count == 1 && st->queues[0].consumers == 1;
        ferry_stats_free(st);
        if (bound)
            break;
        ck_assert_msg(harness_now_ms() < deadline, "ferry subscribe did not subscribe");
        harness_sleep_ms(10);
    }
    ok(ferry_publish_topic(c, "alerts.disk", "one", 3, NULL), "publish");
    ok(ferry_publish_topic(c, "alerts.disk.full", "not me", 6, NULL), "publish");
    ok(ferry_publish_topic(c, "db.urgent", "two", 3, NULL), "publish");
    ok(ferry_publish_topic(c, "alerts.urgent", "three", 5, NULL), "publish");
    ok(ferry_flush(c, WAIT_MS), "flush");
    char text[256];
    read_all(out, text, sizeof text);
    int status = harness_reap(pid, WAIT_MS);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "ferry subscribe: status %d",
                  status);
    ck_assert_str_eq(text, "one\ntwo\nthree\n");
    /* Its temporary queue went with it. */
    deadline = harness_now_ms() + WAIT_MS;
    struct ferry_stats *st = NULL;
    for (;;) {
        ok(ferry_stats(c, NULL, &st), "stats");
        size_t queues = st->count;
        ferry_stats_free(st);
        if (queues == 0)
            break;
        ck_assert_msg(harness_now_ms() < deadline, "the temporary queue stayed");
        harness_sleep_ms(10);
    }
    ferry_close(c);
    stop_daemon();
}
END_TEST

static Suite *topics_suite(void)
{
    Suite *s = suite_create("topics");
    TCase *fan = tcase_create("fan-out");
    tcase_add_checked_fixture(fan, NULL, teardown);
    tcase_set_timeout(fan, 60);
    tcase_add_test(fan, test_every_bound_queue_gets_every_message_in_order);
    tcase_add_test(fan, test_bad_topics_and_patterns_are_refused_and_the_connection_lives);
    tcase_add_test(fan, test_a_full_bound_queue_holds_up_none_of_the_others);
    tcase_add_test(fan, test_a_durable_queue_gets_its_conf_bindings_back_after_a_restart);
    tcase_add_test(fan, test_a_reload_adds_the_bindings_of_the_conf_and_removes_none);
    tcase_add_test(fan, test_a_temporary_queue_is_private_and_goes_with_its_connection);
    tcase_add_test(fan, test_bad_topics_and_patterns_on_the_wire_are_refused_and_not_fatal);
    tcase_add_test(fan, test_bindings_and_temporary_queues_are_bounded);
    tcase_add_test(fan, test_bindings_too_many_for_a_frame_are_refused_with_limit);
    tcase_add_test(fan, test_a_pattern_of_many_hashes_does_not_slow_publishing);
    tcase_add_test(fan, test_ferry_subscribe_prints_what_is_published_to_its_patterns);
    suite_add_tcase(s, fan);

    TCase *rpc = tcase_create("request/reply");
    tcase_add_checked_fixture(rpc, NULL, teardown);
    tcase_set_timeout(rpc, 120);
    tcase_add_test(rpc, test_a_thousand_requests_from_ten_threads_each_get_their_own_reply);
    tcase_add_test(rpc, test_a_request_times_out_and_its_late_reply_goes_to_nobody);
    tcase_add_test(rpc, test_requests_go_on_after_a_reconnect_over_a_new_reply_queue);
    tcase_add_test(rpc, test_a_request_waiting_through_a_reconnect_returns_at_once);
    suite_add_tcase(s, rpc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(topics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
