/*
 * test_retry.c - retries in the broker core (daemon/retry.c) on a fake
 * clock: ack deadlines and TOUCH, a nack's delay, the backoff after a
 * deadline or a lost consumer, max_attempts and the dead-letter queue with
 * its headers, PEEK and MOVE. Fake sessions (fake_session.h) record
 * deliveries.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "core_alloc.h"
#include "fake_session.h"

/* Gives queue q these retry settings (creating it). */
static void retrying(struct broker *b, const char *queue, uint64_t deadline, uint64_t backoff,
                     uint64_t backoff_max, uint32_t max_attempts, const char *dead_letter)
{
    ck_assert_int_eq(broker_declare(b, bytes(queue)), FERRY_CODE_OK);
    struct queue_settings s = {
        .ack_deadline_ms = deadline, .retry_backoff_ms = backoff,
        .retry_backoff_max_ms = backoff_max, .max_attempts = max_attempts,
    };
    snprintf(s.dead_letter, sizeof s.dead_letter, "%s", dead_letter);
    ck_assert_int_eq(broker_configure_queue(b, bytes(queue), &s), FERRY_CODE_OK);
}

static uint64_t tag_of(const struct fake *f, size_t i)
{
    return nth(f, EV_DELIVER, i)->tag;
}

static size_t deliveries(const struct fake *f)
{
    return count_of(f, EV_DELIVER);
}

/* The value of header `key` in the raw header bytes of a delivery. */
static bool has_header(const struct event *e, const char *key, const char *value)
{
    struct ferry_iter it;
    struct ferry_kv h;
    ferry_headers_iter_init(&it, (struct ferry_bytes){ (const uint8_t *)e->headers,
                                                       strlen(e->headers) });
    while (ferry_headers_next(&it, &h)) {
        if (h.key.len == strlen(key) && memcmp(h.key.ptr, key, h.key.len) == 0)
            return h.value.len == strlen(value) && memcmp(h.value.ptr, value, h.value.len) == 0;
    }
    return false;
}

/* ---- ack deadlines and TOUCH ---- */

START_TEST(test_a_delivery_not_acked_by_its_deadline_is_redelivered)
{
    struct broker *b = timed_broker();
    retrying(b, "q", 1000, 0, 0, 0, "");
    struct fake f;
    fake_open(&f, b);
    consume(&f, "q", 1, 10);
    publish(b, "q", "slow");
    ck_assert_uint_eq(deliveries(&f), 1);
    uint64_t first = tag_of(&f, 0);

    advance(b, 999);
    ck_assert_uint_eq(deliveries(&f), 1);
    advance(b, 1);
    ck_assert_uint_eq(deliveries(&f), 2);
    assert_delivery(&f, 1, "slow", 2);
    ck_assert_uint_eq(stats_of(b, "q").timeouts, 1);
    ck_assert_uint_eq(stats_of(b, "q").redelivered, 1);
    ck_assert_uint_eq(stats_of(b, "q").inflight, 1);
    /* The first delivery's tag is gone; the new one settles it. */
    ck_assert_int_eq(broker_ack(b, f.s, first), FERRY_CODE_UNKNOWN_TAG);
    ack(&f, tag_of(&f, 1));
    ck_assert_uint_eq(broker_next_due(b), UINT64_MAX);
    fake_close(&f);
    broker_free(b);
}
END_TEST

START_TEST(test_a_consume_deadline_overrides_the_queues_and_an_ack_disarms_it)
{
    struct broker *b = timed_broker();
    retrying(b, "q", 60000, 0, 0, 0, "");
    struct fake f;
    fake_open(&f, b);
    struct consume_options o = { .ack_deadline_ms = 100 };
    ck_assert_int_eq(broker_consume_opts(b, f.s, bytes("q"), 1, 10, &o), FERRY_CODE_OK);
    publish(b, "q", "a");
    publish(b, "q", "b");
    ack(&f, tag_of(&f, 0));
    advance(b, 100);
    ck_assert_uint_eq(deliveries(&f), 3); /* only b came back */
    assert_delivery(&f, 2, "b", 2);
    o.ack_deadline_ms = FERRY_DELAY_MAX_MS + 1;
    ck_assert_int_eq(broker_consume_opts(b, f.s, bytes("q"), 2, 10, &o), FERRY_CODE_BAD_REQUEST);
    fake_close(&f);
    broker_free(b);
}
END_TEST

START_TEST(test_touch_moves_the_deadline_of_a_message_still_being_worked_on)
{
    struct broker *b = timed_broker();
    retrying(b, "q", 1000, 0, 0, 0, "");
    struct fake f;
    fake_open(&f, b);
    consume(&f, "q", 1, 10);
    publish(b, "q", "long job");
    uint64_t tag = tag_of(&f, 0);
    for (int i = 0; i < 5; i++) {
        advance(b, 800);
        ck_assert_int_eq(broker_touch(b, f.s, tag, 0), FERRY_CODE_OK); /* another 1000 */
    }
    ck_assert_uint_eq(deliveries(&f), 1);
    ck_assert_int_eq(broker_touch(b, f.s, tag, 5000), FERRY_CODE_OK);
    advance(b, 4999);
    ck_assert_uint_eq(deliveries(&f), 1);
    advance(b, 1);
    ck_assert_uint_eq(deliveries(&f), 2);
    ck_assert_int_eq(broker_touch(b, f.s, tag, 0), FERRY_CODE_UNKNOWN_TAG);
    fake_close(&f);
    broker_free(b);
}
END_TEST

START_TEST(test_touch_without_any_deadline_does_nothing_unless_given_one)
{
    struct broker *b = timed_broker();
    struct fake f;
    fake_open(&f, b);
    consume(&f, "q", 1, 10);
    publish(b, "q", "x");
    ck_assert_int_eq(broker_touch(b, f.s, tag_of(&f, 0), 0), FERRY_CODE_OK);
    ck_assert_uint_eq(broker_next_due(b), UINT64_MAX);
    ck_assert_int_eq(broker_touch(b, f.s, tag_of(&f, 0), 300), FERRY_CODE_OK);
    advance(b, 300);
    ck_assert_uint_eq(deliveries(&f), 2);
    fake_close(&f);
    broker_free(b);
}
END_TEST

/* ---- nack delays and backoff ---- */

START_TEST(test_a_nack_with_a_delay_redelivers_after_it_behind_the_others)
{
    struct broker *b = timed_broker();
    struct fake f;
    fake_open(&f, b);
    publish(b, "q", "retry me");
    consume(&f, "q", 1, 1);
    ck_assert_int_eq(broker_nack_delay(b, f.s, tag_of(&f, 0), 500), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "q").delayed, 1);
    publish(b, "q", "next");
    ck_assert_uint_eq(deliveries(&f), 2);
    assert_delivery(&f, 1, "next", 1);
    ack(&f, tag_of(&f, 1));
    advance(b, 499);
    ck_assert_uint_eq(deliveries(&f), 2);
    advance(b, 1);
    assert_delivery(&f, 2, "retry me", 2);
    ck_assert_int_eq(broker_nack_delay(b, f.s, tag_of(&f, 2), FERRY_DELAY_MAX_MS + 1),
                     FERRY_CODE_BAD_REQUEST);
    fake_close(&f);
    broker_free(b);
}
END_TEST

/* Opens a consumer of q, expects a delivery of `payload` at `attempt`, and
 * drops the connection without acking (the consumer crashes). */
static void crash_on(struct broker *b, const char *queue, const char *payload, uint32_t attempt)
{
    struct fake f;
    fake_open(&f, b);
    consume(&f, queue, 1, 1);
    ck_assert_uint_eq(deliveries(&f), 1);
    assert_delivery(&f, 0, payload, attempt);
    fake_close(&f);
}

START_TEST(test_redeliveries_after_lost_consumers_back_off_doubling_up_to_the_cap)
{
    struct broker *b = timed_broker();
    retrying(b, "q", 0, 100, 300, 0, "");
    publish(b, "q", "poison");
    crash_on(b, "q", "poison", 1);
    ck_assert_uint_eq(stats_of(b, "q").delayed, 1);
    const uint64_t waits[] = { 100, 200, 300, 300 };
    for (uint32_t i = 0; i < 4; i++) {
        struct fake f;
        fake_open(&f, b);
        consume(&f, "q", 1, 1);
        advance(b, waits[i] - 1);
        ck_assert_uint_eq(deliveries(&f), 0);
        advance(b, 1);
        ck_assert_uint_eq(deliveries(&f), 1);
        assert_delivery(&f, 0, "poison", i + 2);
        fake_close(&f); /* crashes again */
    }
    broker_free(b);
}
END_TEST

START_TEST(test_a_passed_deadline_backs_off_too_and_other_messages_go_on_meanwhile)
{
    struct broker *b = timed_broker();
    retrying(b, "q", 50, 1000, 0, 0, "");
    struct fake f;
    fake_open(&f, b);
    consume(&f, "q", 1, 10);
    publish(b, "q", "stuck");
    advance(b, 50); /* deadline: it waits 1000 */
    publish(b, "q", "fine");
    ck_assert_uint_eq(deliveries(&f), 2);
    assert_delivery(&f, 1, "fine", 1);
    ack(&f, tag_of(&f, 1));
    advance(b, 1000);
    assert_delivery(&f, 2, "stuck", 2);
    fake_close(&f);
    broker_free(b);
}
END_TEST

/* ---- max_attempts and dead letters ---- */

START_TEST(test_past_max_attempts_a_message_goes_to_the_dead_letter_queue_with_headers)
{
    struct broker *b = timed_broker();
    retrying(b, "q", 0, 0, 0, 2, "q.dead");
    struct fake f;
    fake_open(&f, b);
    publish(b, "q", "poison");
    consume(&f, "q", 1, 1);
    ck_assert_int_eq(broker_nack(b, f.s, tag_of(&f, 0), true), FERRY_CODE_OK);
    ck_assert_int_eq(broker_nack(b, f.s, tag_of(&f, 1), true), FERRY_CODE_OK);
    ck_assert_uint_eq(deliveries(&f), 2);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.dead_lettered, 1);
    ck_assert_uint_eq(st.depth + st.inflight + st.delayed, 0);
    ck_assert_uint_eq(stats_of(b, "q.dead").depth, 1);

    struct fake d;
    fake_open(&d, b);
    consume(&d, "q.dead", 1, 1);
    const struct event *e = nth(&d, EV_DELIVER, 0);
    ck_assert_str_eq(e->text, "poison");
    ck_assert_uint_eq(e->attempt, 1);
    ck_assert(has_header(e, "dlq-queue", "q"));
    ck_assert(has_header(e, "dlq-attempts", "2"));
    ck_assert(has_header(e, "dlq-reason", "nack"));
    fake_close(&d);
    fake_close(&f);
    broker_free(b);
}
END_TEST

START_TEST(test_without_a_dead_letter_queue_the_message_is_dropped_and_counted)
{
    struct broker *b = timed_broker();
    retrying(b, "q", 10, 0, 0, 1, "");
    struct fake f;
    fake_open(&f, b);
    consume(&f, "q", 1, 1);
    publish(b, "q", "once");
    advance(b, 10);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.dead_lettered, 1);
    ck_assert_uint_eq(st.dropped, 1);
    ck_assert_uint_eq(st.timeouts, 1);
    ck_assert_uint_eq(broker_message_count(b), 0);
    fake_close(&f);
    broker_free(b);
}
END_TEST

START_TEST(test_a_poison_message_ends_in_the_dead_letter_queue_while_the_rest_is_consumed)
{
    struct broker *b = timed_broker();
    retrying(b, "jobs", 0, 100, 1000, 3, "jobs.dead");
    ck_assert_int_eq(broker_declare(b, bytes("jobs.dead")), FERRY_CODE_OK);
    publish(b, "jobs", "poison");
    for (int i = 0; i < 10; i++)
        publish(b, "jobs", "ok");
    /* Each consumer crashes on the poison message and acks the others. */
    int crashes = 0, acked = 0;
    while (stats_of(b, "jobs.dead").depth == 0 && crashes < 10) {
        struct fake f;
        fake_open(&f, b);
        consume(&f, "jobs", 1, 1);
        for (size_t i = 0; i < deliveries(&f); i++) {
            const struct event *e = nth(&f, EV_DELIVER, i);
            if (strcmp(e->text, "poison") == 0)
                break;
            ack(&f, e->tag);
            acked++;
        }
        fake_close(&f);
        crashes++;
        advance(b, 1000);
    }
    ck_assert_int_eq(crashes, 3);
    struct fake f;
    fake_open(&f, b);
    consume(&f, "jobs", 1, 100);
    for (size_t i = 0; i < deliveries(&f); i++)
        ack(&f, nth(&f, EV_DELIVER, i)->tag);
    ck_assert_int_eq(acked + (int)deliveries(&f), 10);
    ck_assert_uint_eq(stats_of(b, "jobs").dead_lettered, 1);
    ck_assert_uint_eq(stats_of(b, "jobs.dead").depth, 1);
    fake_close(&f);
    broker_free(b);
}
END_TEST

START_TEST(test_a_ready_message_with_its_attempts_used_up_is_dead_lettered_at_dispatch)
{
    struct broker *b = timed_broker();
    struct queue_settings s = { .max_attempts = 2 };
    snprintf(s.dead_letter, sizeof s.dead_letter, "dead");
    ck_assert_int_eq(broker_restore_queue(b, bytes("q"), &s), FERRY_CODE_OK);
    ck_assert_int_eq(broker_restore_message(b, bytes("q"), 7, 2, NULL, no_headers, bytes("old")),
                     FERRY_CODE_OK);
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    struct fake f;
    fake_open(&f, b);
    consume(&f, "q", 1, 1);
    ck_assert_uint_eq(deliveries(&f), 0);
    ck_assert_uint_eq(count_of(&f, EV_EOS), 1); /* drained by the dead-lettering */
    struct fake d;
    fake_open(&d, b);
    consume(&d, "dead", 1, 1);
    ck_assert(has_header(nth(&d, EV_DELIVER, 0), "dlq-reason", "attempts"));
    fake_close(&d);
    fake_close(&f);
    broker_free(b);
}
END_TEST

START_TEST(test_an_expired_message_goes_to_the_dead_letter_queue_when_there_is_one)
{
    struct broker *b = timed_broker();
    ck_assert_int_eq(broker_declare(b, bytes("q")), FERRY_CODE_OK);
    struct queue_settings s = { .ttl_ms = 100 };
    snprintf(s.dead_letter, sizeof s.dead_letter, "dead");
    ck_assert_int_eq(broker_configure_queue(b, bytes("q"), &s), FERRY_CODE_OK);
    publish(b, "q", "stale");
    advance(b, 100);
    struct fake f;
    fake_open(&f, b);
    consume(&f, "q", 1, 10);
    ck_assert_uint_eq(deliveries(&f), 0);
    ck_assert_uint_eq(stats_of(b, "q").expired, 1);
    ck_assert_uint_eq(stats_of(b, "q").dead_lettered, 0); /* that counts used-up attempts */
    consume(&f, "dead", 2, 10);
    const struct event *e = nth(&f, EV_DELIVER, 0);
    ck_assert_str_eq(e->text, "stale");
    ck_assert(has_header(e, "dlq-queue", "q"));
    ck_assert(has_header(e, "dlq-reason", "expired"));
    ck_assert(has_header(e, "dlq-attempts", "0"));
    fake_close(&f);
    broker_free(b);
}
END_TEST

START_TEST(test_a_lowered_max_attempts_sweeps_used_up_messages_out_at_once)
{
    struct broker *b = timed_broker();
    struct fake f;
    fake_open(&f, b);
    publish(b, "q", "tried");
    publish(b, "q", "fresh");
    consume(&f, "q", 1, 1);
    ck_assert_int_eq(broker_nack(b, f.s, tag_of(&f, 0), true), FERRY_CODE_OK);
    ck_assert_int_eq(broker_cancel(b, f.s, 1), FERRY_CODE_OK);
    ck_assert_int_eq(broker_nack(b, f.s, tag_of(&f, 1), true), FERRY_CODE_OK); /* tried: 2 attempts */
    /* A reload sets max_attempts = 2: no consumer needs to come for it. */
    retrying(b, "q", 0, 0, 0, 2, "dead");
    ck_assert_uint_eq(stats_of(b, "q").depth, 1);
    ck_assert_uint_eq(stats_of(b, "q").dead_lettered, 1);
    ck_assert_uint_eq(stats_of(b, "dead").depth, 1);
    consume(&f, "q", 2, 10);
    assert_delivery(&f, 2, "fresh", 1);
    fake_close(&f);
    broker_free(b);
}
END_TEST

/* ---- PEEK and MOVE ---- */

static bool count_peeked(void *arg, const struct message *m)
{
    (void)m;
    (*(size_t *)arg)++;
    return true;
}

START_TEST(test_peek_leaves_messages_and_move_sends_dead_letters_back_without_their_headers)
{
    struct broker *b = timed_broker();
    retrying(b, "q", 0, 0, 0, 1, "dead");
    struct fake f;
    fake_open(&f, b);
    consume(&f, "q", 1, 10);
    ck_assert_int_eq(broker_cancel(b, f.s, 1), FERRY_CODE_OK);
    publish(b, "q", "a");
    publish(b, "q", "b");
    consume(&f, "q", 2, 10);
    ck_assert_int_eq(broker_nack(b, f.s, tag_of(&f, 0), true), FERRY_CODE_OK);
    ck_assert_int_eq(broker_nack(b, f.s, tag_of(&f, 1), true), FERRY_CODE_OK);
    ck_assert_int_eq(broker_cancel(b, f.s, 2), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "dead").depth, 2);

    size_t peeked = 0;
    ck_assert_int_eq(broker_peek(b, bytes("dead"), 1, count_peeked, &peeked), FERRY_CODE_OK);
    ck_assert_uint_eq(peeked, 1);
    peeked = 0;
    ck_assert_int_eq(broker_peek(b, bytes("dead"), 100, count_peeked, &peeked), FERRY_CODE_OK);
    ck_assert_uint_eq(peeked, 2);
    ck_assert_uint_eq(stats_of(b, "dead").depth, 2);
    ck_assert_int_eq(broker_peek(b, bytes("none"), 1, count_peeked, &peeked),
                     FERRY_CODE_NOT_FOUND);

    uint64_t moved = 0;
    ck_assert_int_eq(broker_move(b, bytes("dead"), bytes("dead"), 0, &moved),
                     FERRY_CODE_BAD_REQUEST);
    ck_assert_int_eq(broker_move(b, bytes("dead"), bytes(""), 1, &moved), FERRY_CODE_OK);
    ck_assert_uint_eq(moved, 1);
    ck_assert_int_eq(broker_move(b, bytes("dead"), bytes("elsewhere"), 0, &moved), FERRY_CODE_OK);
    ck_assert_uint_eq(moved, 1);
    ck_assert_uint_eq(stats_of(b, "dead").depth, 0);

    struct fake g;
    fake_open(&g, b);
    consume(&g, "q", 1, 10);
    consume(&g, "elsewhere", 2, 10);
    ck_assert_uint_eq(deliveries(&g), 2);
    assert_delivery(&g, 0, "a", 1); /* attempts start again */
    assert_delivery(&g, 1, "b", 1);
    ck_assert_str_eq(nth(&g, EV_DELIVER, 0)->headers, ""); /* dlq-* headers gone */
    fake_close(&g);
    fake_close(&f);
    broker_free(b);
}
END_TEST

/* Gives an existing queue a ttl (its other settings: none). */
static void with_ttl(struct broker *b, const char *queue, uint64_t ttl_ms)
{
    ck_assert_int_eq(broker_declare(b, bytes(queue)), FERRY_CODE_OK);
    struct queue_settings s = { .ttl_ms = ttl_ms };
    ck_assert_int_eq(broker_configure_queue(b, bytes(queue), &s), FERRY_CODE_OK);
}

START_TEST(test_one_move_moves_at_most_ferry_move_max_messages)
{
    struct broker *b = timed_broker();
    const uint64_t total = FERRY_MOVE_MAX + 5;
    for (uint64_t i = 0; i < total; i++)
        publish(b, "big", "m");
    uint64_t moved = 0;
    ck_assert_int_eq(broker_move(b, bytes("big"), bytes("dest"), 0, &moved), FERRY_CODE_OK);
    ck_assert_uint_eq(moved, FERRY_MOVE_MAX);
    ck_assert_int_eq(broker_move(b, bytes("big"), bytes("dest"), total, &moved), FERRY_CODE_OK);
    ck_assert_uint_eq(moved, 5);
    ck_assert_uint_eq(stats_of(b, "dest").depth, total);
    broker_free(b);
}
END_TEST

static bool fail_always(void)
{
    return true;
}

START_TEST(test_a_move_refused_for_memory_leaves_the_message_first_in_its_queue)
{
    struct broker *b = timed_broker();
    publish(b, "src", "first");
    publish(b, "src", "second");
    ck_assert_int_eq(broker_declare(b, bytes("dest")), FERRY_CODE_OK);
    uint64_t moved = 0;
    core_alloc_should_fail = fail_always; /* the copy cannot be made */
    ck_assert_int_eq(broker_move(b, bytes("src"), bytes("dest"), 0, &moved),
                     FERRY_CODE_NO_MEMORY);
    core_alloc_should_fail = NULL;
    ck_assert_uint_eq(moved, 0);
    ck_assert_uint_eq(stats_of(b, "src").depth, 2);
    ck_assert_uint_eq(stats_of(b, "dest").depth, 0);
    ck_assert_uint_eq(broker_message_count(b), 2);
    struct fake f;
    fake_open(&f, b);
    consume(&f, "src", 1, 10);
    assert_delivery(&f, 0, "first", 1); /* still first, not yet delivered */
    assert_delivery(&f, 1, "second", 1);
    fake_close(&f);
    broker_free(b);
}
END_TEST

START_TEST(test_dead_letters_expire_with_the_ttl_of_their_dead_letter_queue)
{
    struct broker *b = timed_broker();
    retrying(b, "q", 0, 0, 0, 1, "dead");
    with_ttl(b, "dead", 1000);
    struct fake f;
    fake_open(&f, b);
    publish(b, "q", "poison");
    consume(&f, "q", 1, 10);
    ck_assert_int_eq(broker_nack(b, f.s, tag_of(&f, 0), true), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "dead").depth, 1);
    /* A new message of "dead": its ttl counts from the dead-lettering. */
    fake_now += 999;
    size_t peeked = 0;
    ck_assert_int_eq(broker_peek(b, bytes("dead"), 10, count_peeked, &peeked), FERRY_CODE_OK);
    ck_assert_uint_eq(peeked, 1);
    fake_now += 1;
    consume(&f, "dead", 2, 10);
    ck_assert_uint_eq(deliveries(&f), 1); /* only the first delivery from q */
    ck_assert_uint_eq(stats_of(b, "dead").expired, 1);
    ck_assert_uint_eq(stats_of(b, "dead").depth, 0);
    fake_close(&f);
    broker_free(b);
}
END_TEST

START_TEST(test_peek_and_move_pass_over_expired_messages_and_move_never_revives_one)
{
    struct broker *b = timed_broker();
    with_ttl(b, "dead", 100);
    publish(b, "dead", "old");
    fake_now += 50;
    publish(b, "dead", "new");
    fake_now += 60; /* "old" expired 10 ms ago; "new" has 40 ms left */
    size_t peeked = 0;
    ck_assert_int_eq(broker_peek(b, bytes("dead"), 10, count_peeked, &peeked), FERRY_CODE_OK);
    ck_assert_uint_eq(peeked, 1);

    uint64_t moved = 0;
    ck_assert_int_eq(broker_move(b, bytes("dead"), bytes("back"), 0, &moved), FERRY_CODE_OK);
    ck_assert_uint_eq(moved, 1);
    ck_assert_uint_eq(stats_of(b, "dead").expired, 1);
    ck_assert_uint_eq(stats_of(b, "dead").depth, 0);
    ck_assert_uint_eq(broker_message_count(b), 1);
    /* "back" has no ttl: the moved message is a new one there and lasts. */
    advance(b, 10000);
    struct fake f;
    fake_open(&f, b);
    consume(&f, "back", 1, 10);
    ck_assert_uint_eq(deliveries(&f), 1);
    assert_delivery(&f, 0, "new", 1);
    fake_close(&f);
    broker_free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("retry");
    TCase *deadlines = tcase_create("deadlines");
    tcase_add_test(deadlines, test_a_delivery_not_acked_by_its_deadline_is_redelivered);
    tcase_add_test(deadlines, test_a_consume_deadline_overrides_the_queues_and_an_ack_disarms_it);
    tcase_add_test(deadlines, test_touch_moves_the_deadline_of_a_message_still_being_worked_on);
    tcase_add_test(deadlines, test_touch_without_any_deadline_does_nothing_unless_given_one);
    suite_add_tcase(s, deadlines);
    TCase *waits = tcase_create("delays and backoff");
    tcase_add_test(waits, test_a_nack_with_a_delay_redelivers_after_it_behind_the_others);
    tcase_add_test(waits, test_redeliveries_after_lost_consumers_back_off_doubling_up_to_the_cap);
    tcase_add_test(waits, test_a_passed_deadline_backs_off_too_and_other_messages_go_on_meanwhile);
    suite_add_tcase(s, waits);
    TCase *dead = tcase_create("dead letters");
    tcase_add_test(dead, test_past_max_attempts_a_message_goes_to_the_dead_letter_queue_with_headers);
    tcase_add_test(dead, test_without_a_dead_letter_queue_the_message_is_dropped_and_counted);
    tcase_add_test(dead, test_a_poison_message_ends_in_the_dead_letter_queue_while_the_rest_is_consumed);
    tcase_add_test(dead, test_a_ready_message_with_its_attempts_used_up_is_dead_lettered_at_dispatch);
    tcase_add_test(dead, test_an_expired_message_goes_to_the_dead_letter_queue_when_there_is_one);
    tcase_add_test(dead, test_a_lowered_max_attempts_sweeps_used_up_messages_out_at_once);
    tcase_add_test(dead, test_peek_leaves_messages_and_move_sends_dead_letters_back_without_their_headers);
    tcase_add_test(dead, test_one_move_moves_at_most_ferry_move_max_messages);
    tcase_add_test(dead, test_dead_letters_expire_with_the_ttl_of_their_dead_letter_queue);
    tcase_add_test(dead, test_a_move_refused_for_memory_leaves_the_message_first_in_its_queue);
    tcase_add_test(dead, test_peek_and_move_pass_over_expired_messages_and_move_never_revives_one);
    suite_add_tcase(s, dead);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
