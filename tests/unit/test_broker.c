/*
 * test_broker.c - the broker core (daemon/broker.h) driven without sockets.
 * Fake sessions record every callback; each test pins down one rule of
 * docs/PROTOCOL.md "Semantics" or of broker.h.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "core_alloc.h"
#include "fake_session.h"

/* ---- publishing and consuming ---- */

START_TEST(test_publish_then_consume_delivers_in_fifo_order)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    publish(b, "q", "one");
    publish(b, "q", "two");
    publish(b, "q", "three");
    consume(&a, "q", 1, 10);

    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 3);
    const char *want[] = { "one", "two", "three" };
    for (size_t i = 0; i < 3; i++) {
        const struct event *e = nth(&a, EV_DELIVER, i);
        ck_assert_str_eq(e->text, want[i]);
        ck_assert_uint_eq(e->sub, 1);
        ck_assert_uint_eq(e->rid, 0);
        ck_assert_uint_eq(e->tag, i + 1);
        ck_assert_uint_eq(e->attempt, 1);
    }
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_publish_to_a_subscribed_queue_delivers_at_once)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 10);
    ck_assert_uint_eq(a.count, 0);
    publish(b, "q", "now");
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 1);
    assert_delivery(&a, 0, "now", 1);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_headers_are_delivered_with_the_payload)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 10);
    /* fixmap {"k": "v"} */
    const uint8_t map[] = { 0x81, 0xa1, 'k', 0xa1, 'v' };
    struct ferry_bytes headers = { map, sizeof map };
    ck_assert_int_eq(broker_publish(b, NULL, bytes("q"), bytes("body"), headers, NULL, NULL), FERRY_CODE_OK);
    const struct event *e = nth(&a, EV_DELIVER, 0);
    ck_assert_str_eq(e->text, "body");
    ck_assert_int_eq(memcmp(e->headers, map, sizeof map), 0);
    ck_assert_uint_eq(broker_message_bytes(b), sizeof map + 4);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_deliveries_go_round_robin_across_consumers)
{
    struct broker *b = broker_new(NULL);
    struct fake f[3];
    for (int i = 0; i < 3; i++) {
        fake_open(&f[i], b);
        consume(&f[i], "q", 1, 10);
    }
    const char *payloads[] = { "m0", "m1", "m2", "m3", "m4", "m5" };
    for (int i = 0; i < 6; i++)
        publish(b, "q", payloads[i]);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(count_of(&f[i], EV_DELIVER), 2);
        assert_delivery(&f[i], 0, payloads[i], 1);
        assert_delivery(&f[i], 1, payloads[i + 3], 1);
    }
    for (int i = 0; i < 3; i++)
        fake_close(&f[i]);
    broker_free(b);
}
END_TEST

START_TEST(test_consumers_without_room_are_passed_over)
{
    struct broker *b = broker_new(NULL);
    struct fake a, c;
    fake_open(&a, b);
    fake_open(&c, b);
    consume(&a, "q", 1, 1);
    consume(&c, "q", 1, 10);
    for (int i = 0; i < 5; i++)
        publish(b, "q", "m");
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 1);
    ck_assert_uint_eq(count_of(&c, EV_DELIVER), 4);
    fake_close(&a);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_credit_window_is_respected_and_reopened_by_ack)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 2);
    const char *payloads[] = { "m1", "m2", "m3", "m4", "m5" };
    for (int i = 0; i < 5; i++)
        publish(b, "q", payloads[i]);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 2);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.depth, 3);
    ck_assert_uint_eq(st.inflight, 2);

    ack(&a, 1);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 3);
    assert_delivery(&a, 2, "m3", 1);
    ack(&a, 2);
    ack(&a, 3);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 5);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_credit_widens_the_window)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 1);
    for (int i = 0; i < 4; i++)
        publish(b, "q", "m");
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 1);
    ck_assert_int_eq(broker_credit(b, a.s, 1, 2), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 3);
    ck_assert_int_eq(broker_credit(b, a.s, 1, UINT64_MAX), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 4);
    ck_assert_int_eq(broker_credit(b, a.s, 9, 1), FERRY_CODE_UNKNOWN_SUB);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_consume_with_bad_values_is_refused)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    ck_assert_int_eq(broker_consume(b, a.s, bytes("q"), 0, 1), FERRY_CODE_BAD_REQUEST);
    ck_assert_int_eq(broker_consume(b, a.s, bytes("q"), 1, 0), FERRY_CODE_BAD_REQUEST);
    ck_assert_int_eq(broker_consume(b, a.s, bytes("q"), 1, (uint64_t)UINT32_MAX + 1),
                     FERRY_CODE_BAD_REQUEST);
    ck_assert_int_eq(broker_consume(b, a.s, bytes("bad name"), 1, 1), FERRY_CODE_BAD_NAME);
    ck_assert_int_eq(broker_consume(b, a.s, bytes(""), 1, 1), FERRY_CODE_BAD_NAME);
    ck_assert_uint_eq(broker_queue_count(b), 0);
    consume(&a, "q", 1, UINT32_MAX);
    ck_assert_int_eq(broker_consume(b, a.s, bytes("other"), 1, 1), FERRY_CODE_SUB_EXISTS);
    ck_assert_int_eq(broker_cancel(b, a.s, 2), FERRY_CODE_UNKNOWN_SUB);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_publish_with_a_bad_name_is_refused)
{
    struct broker *b = broker_new(NULL);
    ck_assert_int_eq(broker_publish(b, NULL, bytes("a/b"), bytes("x"), no_headers, NULL, NULL), FERRY_CODE_BAD_NAME);
    ck_assert_int_eq(broker_declare(b, bytes("")), FERRY_CODE_BAD_NAME);
    ck_assert_uint_eq(broker_queue_count(b), 0);
    ck_assert_uint_eq(broker_message_count(b), 0);
    broker_free(b);
}
END_TEST

/* ---- acknowledgement ---- */

START_TEST(test_ack_of_an_unknown_tag_is_refused)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    ck_assert_int_eq(broker_ack(b, a.s, 1), FERRY_CODE_UNKNOWN_TAG);
    ck_assert_int_eq(broker_ack(b, a.s, 0), FERRY_CODE_UNKNOWN_TAG);
    ck_assert_int_eq(broker_nack(b, a.s, 42, true), FERRY_CODE_UNKNOWN_TAG);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_ack_of_the_same_tag_twice_is_refused)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 5);
    publish(b, "q", "m");
    ack(&a, 1);
    ck_assert_int_eq(broker_ack(b, a.s, 1), FERRY_CODE_UNKNOWN_TAG);
    ck_assert_int_eq(broker_nack(b, a.s, 1, false), FERRY_CODE_UNKNOWN_TAG);
    ck_assert_uint_eq(stats_of(b, "q").acked, 1);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_ack_of_another_sessions_tag_is_refused)
{
    struct broker *b = broker_new(NULL);
    struct fake a, c;
    fake_open(&a, b);
    fake_open(&c, b);
    consume(&a, "q", 1, 5);
    publish(b, "q", "m");
    ck_assert_int_eq(broker_ack(b, c.s, 1), FERRY_CODE_UNKNOWN_TAG);
    ck_assert_int_eq(broker_nack(b, c.s, 1, true), FERRY_CODE_UNKNOWN_TAG);
    ack(&a, 1);
    fake_close(&a);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_nack_with_requeue_redelivers_first_with_attempt_2)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 1);
    publish(b, "q", "first");
    publish(b, "q", "second");
    assert_delivery(&a, 0, "first", 1);
    ck_assert_int_eq(broker_nack(b, a.s, 1, true), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 2);
    assert_delivery(&a, 1, "first", 2);
    ck_assert_uint_eq(nth(&a, EV_DELIVER, 1)->tag, 2);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.redelivered, 1);
    ck_assert_uint_eq(st.delivered, 2);
    ck_assert_uint_eq(st.depth, 1);
    ack(&a, 2);
    assert_delivery(&a, 2, "second", 1);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_nack_without_requeue_drops_and_counts_dropped)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 1);
    publish(b, "q", "gone");
    publish(b, "q", "next");
    ck_assert_int_eq(broker_nack(b, a.s, 1, false), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 2);
    assert_delivery(&a, 1, "next", 1);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.dropped, 1);
    ck_assert_uint_eq(st.acked, 0);
    ck_assert_uint_eq(broker_message_count(b), 1);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_session_free_returns_in_flight_messages_to_the_front_in_publish_order)
{
    struct broker *b = broker_new(NULL);
    struct fake a, c;
    fake_open(&a, b);
    fake_open(&c, b);
    consume(&c, "q", 1, 10);
    broker_session_set_writable(b, c.s, false);
    consume(&a, "q", 1, 3);
    const char *payloads[] = { "m1", "m2", "m3", "m4", "m5", "m6" };
    for (int i = 0; i < 6; i++)
        publish(b, "q", payloads[i]);
    ack(&a, 2); /* a holds m1, m3, m4; m5, m6 are ready */
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 4);

    fake_close(&a);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.depth, 5);
    ck_assert_uint_eq(st.inflight, 0);
    ck_assert_uint_eq(st.consumers, 1);

    broker_session_set_writable(b, c.s, true);
    ck_assert_uint_eq(count_of(&c, EV_DELIVER), 5);
    assert_delivery(&c, 0, "m1", 2);
    assert_delivery(&c, 1, "m3", 2);
    assert_delivery(&c, 2, "m4", 2);
    assert_delivery(&c, 3, "m5", 1);
    assert_delivery(&c, 4, "m6", 1);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_session_free_redelivers_to_another_consumer_at_once)
{
    struct broker *b = broker_new(NULL);
    struct fake a, c;
    fake_open(&a, b);
    fake_open(&c, b);
    consume(&a, "q", 1, 3);
    publish(b, "q", "m1");
    publish(b, "q", "m2");
    consume(&c, "q", 7, 10);
    ck_assert_uint_eq(c.count, 0);

    fake_close(&a);
    ck_assert_uint_eq(count_of(&c, EV_DELIVER), 2);
    assert_delivery(&c, 0, "m1", 2);
    assert_delivery(&c, 1, "m2", 2);
    ck_assert_uint_eq(nth(&c, EV_DELIVER, 0)->sub, 7);
    ck_assert_uint_eq(stats_of(b, "q").redelivered, 2);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_cancel_keeps_in_flight_messages_ackable)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 2);
    publish(b, "q", "m1");
    publish(b, "q", "m2");
    publish(b, "q", "m3");
    ck_assert_int_eq(broker_cancel(b, a.s, 1), FERRY_CODE_OK);
    ck_assert_int_eq(broker_cancel(b, a.s, 1), FERRY_CODE_UNKNOWN_SUB);
    ck_assert_int_eq(broker_credit(b, a.s, 1, 5), FERRY_CODE_UNKNOWN_SUB);
    ck_assert_uint_eq(stats_of(b, "q").consumers, 0);

    ack(&a, 1);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 2); /* nothing more for a cancelled sub */
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.inflight, 1);
    ck_assert_uint_eq(st.depth, 1);

    consume(&a, "q", 1, 5); /* the id is free again */
    assert_delivery(&a, 2, "m3", 1);
    ack(&a, 2);
    ack(&a, 3);
    ck_assert_uint_eq(broker_message_count(b), 0);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_session_free_with_a_cancelled_subscriptions_messages_redelivers_them)
{
    struct broker *b = broker_new(NULL);
    struct fake a, c;
    fake_open(&a, b);
    fake_open(&c, b);
    consume(&a, "q", 1, 2);
    publish(b, "q", "m1");
    ck_assert_int_eq(broker_cancel(b, a.s, 1), FERRY_CODE_OK);
    consume(&c, "q", 1, 2);
    fake_close(&a);
    assert_delivery(&c, 0, "m1", 2);
    fake_close(&c);
    broker_free(b);
}
END_TEST

/* ---- GET ---- */

START_TEST(test_get_delivers_a_ready_message_at_once)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    publish(b, "q", "m1");
    publish(b, "q", "m2");
    ck_assert_int_eq(broker_get(b, a.s, bytes("q"), 7), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 1);
    const struct event *e = nth(&a, EV_DELIVER, 0);
    ck_assert_str_eq(e->text, "m1");
    ck_assert_uint_eq(e->rid, 7);
    ck_assert_uint_eq(e->sub, 0);
    ck_assert_uint_eq(stats_of(b, "q").consumers, 0);
    ck_assert(!broker_get_cancel(b, a.s, 7)); /* already answered */
    ack(&a, e->tag);
    ck_assert_uint_eq(stats_of(b, "q").depth, 1);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_get_waits_for_the_next_publish)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    ck_assert_int_eq(broker_get(b, a.s, bytes("q"), 7), FERRY_CODE_OK);
    ck_assert_uint_eq(a.count, 0);
    ck_assert_uint_eq(broker_queue_count(b), 1); /* GET creates the queue */
    publish(b, "q", "late");
    publish(b, "q", "later");
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 1);
    ck_assert_uint_eq(nth(&a, EV_DELIVER, 0)->rid, 7);
    ck_assert_uint_eq(stats_of(b, "q").depth, 1);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_get_cancel_withdraws_a_waiting_get)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    ck_assert_int_eq(broker_get(b, a.s, bytes("q"), 7), FERRY_CODE_OK);
    ck_assert(broker_get_cancel(b, a.s, 7));
    ck_assert(!broker_get_cancel(b, a.s, 7));
    publish(b, "q", "m");
    ck_assert_uint_eq(a.count, 0);
    ck_assert_uint_eq(stats_of(b, "q").depth, 1);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_get_with_a_rid_in_use_or_zero_is_refused)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    ck_assert_int_eq(broker_get(b, a.s, bytes("q"), 0), FERRY_CODE_BAD_REQUEST);
    ck_assert_int_eq(broker_get(b, a.s, bytes("q"), 7), FERRY_CODE_OK);
    ck_assert_int_eq(broker_get(b, a.s, bytes("other"), 7), FERRY_CODE_BAD_REQUEST);
    ck_assert_int_eq(broker_get(b, a.s, bytes("no way"), 8), FERRY_CODE_BAD_NAME);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_get_is_served_round_robin_with_subscriptions)
{
    struct broker *b = broker_new(NULL);
    struct fake a, g;
    fake_open(&a, b);
    fake_open(&g, b);
    consume(&a, "q", 1, 10);
    ck_assert_int_eq(broker_get(b, g.s, bytes("q"), 5), FERRY_CODE_OK);
    publish(b, "q", "m1");
    publish(b, "q", "m2");
    publish(b, "q", "m3");
    assert_delivery(&a, 0, "m1", 1);
    assert_delivery(&g, 0, "m2", 1);
    assert_delivery(&a, 1, "m3", 1);
    ck_assert_uint_eq(count_of(&g, EV_DELIVER), 1);
    fake_close(&a);
    fake_close(&g);
    broker_free(b);
}
END_TEST

START_TEST(test_get_on_an_ended_drained_queue_answers_ended)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    ck_assert_int_eq(broker_declare(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_get(b, a.s, bytes("q"), 3), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_GET_ENDED), 1);
    ck_assert_uint_eq(nth(&a, EV_GET_ENDED, 0)->rid, 3);
    ck_assert(!broker_get_cancel(b, a.s, 3));
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_waiting_get_is_answered_ended_when_the_queue_drains)
{
    struct broker *b = broker_new(NULL);
    struct fake a, g;
    fake_open(&a, b);
    fake_open(&g, b);
    consume(&a, "q", 1, 1);
    publish(b, "q", "m");
    ck_assert_int_eq(broker_get(b, g.s, bytes("q"), 3), FERRY_CODE_OK);
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_uint_eq(g.count, 0);
    ack(&a, 1);
    ck_assert_uint_eq(count_of(&g, EV_GET_ENDED), 1);
    ck_assert(!broker_get_cancel(b, g.s, 3));
    fake_close(&a);
    fake_close(&g);
    broker_free(b);
}
END_TEST

/* ---- end of stream ---- */

START_TEST(test_eos_comes_after_end_once_all_messages_are_acked)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 4, 10);
    publish(b, "q", "m1");
    publish(b, "q", "m2");
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    ck_assert(stats_of(b, "q").ended);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 0);
    ack(&a, 1);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 0);
    ack(&a, 2);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 1);
    const struct event *e = nth(&a, EV_EOS, 0);
    ck_assert_uint_eq(e->sub, 4);
    ck_assert_str_eq(e->text, "q");
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 1); /* once */
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_eos_waits_for_requeued_messages)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 1);
    publish(b, "q", "m");
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_nack(b, a.s, 1, true), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 0);
    ck_assert_int_eq(broker_nack(b, a.s, 2, false), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 1);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_publish_to_an_ended_queue_is_refused)
{
    struct broker *b = broker_new(NULL);
    publish(b, "q", "m");
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_publish(b, NULL, bytes("q"), bytes("x"), no_headers, NULL, NULL), FERRY_CODE_ENDED);
    ck_assert_uint_eq(stats_of(b, "q").published, 1);
    ck_assert_int_eq(broker_end(b, bytes("nope")), FERRY_CODE_NOT_FOUND);
    ck_assert_int_eq(broker_reopen(b, bytes("nope")), FERRY_CODE_NOT_FOUND);
    broker_free(b);
}
END_TEST

START_TEST(test_late_subscriber_of_an_ended_drained_queue_gets_eos_at_once)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    ck_assert_int_eq(broker_declare(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    consume(&a, "q", 2, 1);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 1);
    ck_assert_uint_eq(nth(&a, EV_EOS, 0)->sub, 2);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_reopen_clears_the_end)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 10);
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 1);
    ck_assert_int_eq(broker_reopen(b, bytes("q")), FERRY_CODE_OK);
    ck_assert(!stats_of(b, "q").ended);
    publish(b, "q", "again");
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 1);
    consume(&a, "q", 2, 10);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 1);
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    ack(&a, 1);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 3); /* a new end: both subscriptions */
    fake_close(&a);
    broker_free(b);
}
END_TEST

/* ---- join ---- */

START_TEST(test_join_completes_at_once_when_nothing_is_pending)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    /* A queue that does not exist holds no work: answered at once. */
    ck_assert_int_eq(broker_join(b, a.s, bytes("q"), 8), FERRY_CODE_OK);
    ck_assert_int_eq(broker_queue_count(b), 0); /* and not created */
    ck_assert_int_eq(broker_declare(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_join(b, a.s, bytes("q"), 9), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_JOIN_DONE), 2);
    ck_assert_uint_eq(nth(&a, EV_JOIN_DONE, 0)->rid, 8);
    ck_assert_uint_eq(nth(&a, EV_JOIN_DONE, 1)->rid, 9);
    ck_assert_int_eq(nth(&a, EV_JOIN_DONE, 0)->code, FERRY_CODE_OK);
    ck_assert_int_eq(nth(&a, EV_JOIN_DONE, 1)->code, FERRY_CODE_OK);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_join_completes_only_after_the_last_prior_message_is_settled)
{
    struct broker *b = broker_new(NULL);
    struct fake a, j;
    fake_open(&a, b);
    fake_open(&j, b);
    consume(&a, "q", 1, 1);
    publish(b, "q", "m1");
    publish(b, "q", "m2");
    publish(b, "q", "m3");
    ck_assert_int_eq(broker_join(b, j.s, bytes("q"), 9), FERRY_CODE_OK);
    ck_assert_int_eq(broker_nack(b, a.s, 1, true), FERRY_CODE_OK); /* requeue settles nothing */
    ack(&a, 2);
    ck_assert_int_eq(broker_nack(b, a.s, 3, false), FERRY_CODE_OK);
    ck_assert_uint_eq(j.count, 0);
    ack(&a, 4);
    ck_assert_uint_eq(count_of(&j, EV_JOIN_DONE), 1);
    ck_assert_int_eq(nth(&j, EV_JOIN_DONE, 0)->code, FERRY_CODE_OK);
    fake_close(&a);
    fake_close(&j);
    broker_free(b);
}
END_TEST

START_TEST(test_join_ignores_messages_published_after_it)
{
    struct broker *b = broker_new(NULL);
    struct fake a, j;
    fake_open(&a, b);
    fake_open(&j, b);
    publish(b, "q", "before");
    ck_assert_int_eq(broker_join(b, j.s, bytes("q"), 9), FERRY_CODE_OK);
    publish(b, "q", "after1");
    publish(b, "q", "after2");
    consume(&a, "q", 1, 10);
    ack(&a, 3);
    ack(&a, 2);
    ck_assert_uint_eq(j.count, 0);
    ack(&a, 1);
    ck_assert_uint_eq(count_of(&j, EV_JOIN_DONE), 1);
    fake_close(&a);
    fake_close(&j);
    broker_free(b);
}
END_TEST

START_TEST(test_session_free_cancels_gets_and_joins_silently)
{
    struct broker *b = broker_new(NULL);
    struct fake a, c;
    fake_open(&a, b);
    fake_open(&c, b);
    consume(&c, "q", 1, 1);
    publish(b, "q", "m");
    ck_assert_int_eq(broker_join(b, a.s, bytes("q"), 1), FERRY_CODE_OK);
    ck_assert_int_eq(broker_get(b, a.s, bytes("q"), 2), FERRY_CODE_OK);
    consume(&a, "q", 3, 1);
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    fake_close(&a); /* asserts no callback while freeing */
    ack(&c, 1);     /* would complete the join, answer the GET, send EOS */
    ck_assert_uint_eq(count_of(&c, EV_EOS), 1);
    ck_assert_uint_eq(stats_of(b, "q").consumers, 1);
    fake_close(&c);
    broker_free(b);
}
END_TEST

/* ---- delete and purge ---- */

START_TEST(test_delete_keeps_in_flight_messages_ackable)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 2);
    publish(b, "q", "m1");
    publish(b, "q", "m2");
    publish(b, "q", "m3");
    ck_assert_int_eq(broker_delete(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_uint_eq(broker_queue_count(b), 0);
    ck_assert_uint_eq(broker_message_count(b), 2); /* the ready one is gone */
    struct queue_stats st;
    ck_assert_int_eq(broker_queue_stats(b, bytes("q"), &st), FERRY_CODE_NOT_FOUND);
    ck_assert_int_eq(broker_delete(b, bytes("q")), FERRY_CODE_NOT_FOUND);
    ack(&a, 1);
    ack(&a, 2);
    ck_assert_uint_eq(broker_message_count(b), 0);
    ck_assert_uint_eq(broker_message_bytes(b), 0);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_delete_sends_eos_and_fails_joins_and_gets)
{
    struct broker *b = broker_new(NULL);
    struct fake a, j;
    fake_open(&a, b);
    fake_open(&j, b);
    consume(&a, "q", 5, 2);
    publish(b, "q", "m1");
    publish(b, "q", "m2");
    ck_assert_int_eq(broker_join(b, j.s, bytes("q"), 9), FERRY_CODE_OK);
    ck_assert_int_eq(broker_get(b, j.s, bytes("q"), 10), FERRY_CODE_OK);
    ck_assert_int_eq(broker_delete(b, bytes("q")), FERRY_CODE_OK);

    ck_assert_uint_eq(count_of(&a, EV_EOS), 1);
    ck_assert_uint_eq(nth(&a, EV_EOS, 0)->sub, 5);
    ck_assert_uint_eq(count_of(&j, EV_JOIN_DONE), 1);
    ck_assert_int_eq(nth(&j, EV_JOIN_DONE, 0)->code, FERRY_CODE_NOT_FOUND);
    ck_assert_uint_eq(count_of(&j, EV_GET_ENDED), 1);
    ck_assert_uint_eq(nth(&j, EV_GET_ENDED, 0)->rid, 10);
    /* the subscription is gone: its id is unknown and free again */
    ck_assert_int_eq(broker_credit(b, a.s, 5, 1), FERRY_CODE_UNKNOWN_SUB);
    consume(&a, "q", 5, 1);
    ack(&a, 1);
    ack(&a, 2);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 2);
    ck_assert_uint_eq(broker_message_count(b), 0);
    fake_close(&a);
    fake_close(&j);
    broker_free(b);
}
END_TEST

START_TEST(test_delete_of_an_ended_drained_queue_sends_no_second_eos)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 1);
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 1);
    ck_assert_int_eq(broker_delete(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 1);
    ck_assert_int_eq(broker_cancel(b, a.s, 1), FERRY_CODE_UNKNOWN_SUB);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_a_new_queue_may_take_a_deleted_queues_name)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 5);
    publish(b, "q", "old");
    ck_assert_int_eq(broker_delete(b, bytes("q")), FERRY_CODE_OK);
    publish(b, "q", "new");
    ck_assert_uint_eq(broker_queue_count(b), 1);
    ack(&a, 1); /* the old queue's message */
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.published, 1);
    ck_assert_uint_eq(st.acked, 0);
    ck_assert_uint_eq(st.depth, 1);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 1);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_requeue_of_a_deleted_queues_message_drops_it)
{
    struct broker *b = broker_new(NULL);
    struct fake a, c;
    fake_open(&a, b);
    fake_open(&c, b);
    consume(&a, "q", 1, 5);
    publish(b, "q", "m1");
    publish(b, "q", "m2");
    ck_assert_int_eq(broker_delete(b, bytes("q")), FERRY_CODE_OK);
    consume(&c, "q", 1, 5);
    ck_assert_int_eq(broker_nack(b, a.s, 1, true), FERRY_CODE_OK);
    ck_assert_uint_eq(broker_message_count(b), 1);
    fake_close(&a); /* m2 goes the same way */
    ck_assert_uint_eq(broker_message_count(b), 0);
    ck_assert_uint_eq(c.count, 0);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_purge_drops_ready_messages_only)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 1);
    publish(b, "q", "m1");
    publish(b, "q", "m2");
    publish(b, "q", "m3");
    uint64_t purged = 0;
    ck_assert_int_eq(broker_purge(b, bytes("q"), &purged), FERRY_CODE_OK);
    ck_assert_uint_eq(purged, 2);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.depth, 0);
    ck_assert_uint_eq(st.inflight, 1);
    ck_assert_uint_eq(st.dropped, 2);
    ck_assert_uint_eq(broker_message_count(b), 1);
    ack(&a, 1);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 1);
    ck_assert_int_eq(broker_purge(b, bytes("nope"), &purged), FERRY_CODE_NOT_FOUND);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_purge_settles_for_join_and_eos)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    publish(b, "q", "m1");
    publish(b, "q", "m2");
    ck_assert_int_eq(broker_join(b, a.s, bytes("q"), 9), FERRY_CODE_OK);
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    consume(&a, "q", 1, 1);
    broker_session_set_writable(b, a.s, false);
    ck_assert_int_eq(broker_get(b, a.s, bytes("q"), 10), FERRY_CODE_OK);
    ck_assert_int_eq(broker_nack(b, a.s, 1, true), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "q").depth, 2);
    ck_assert_uint_eq(a.count, 1);

    uint64_t purged = 0;
    ck_assert_int_eq(broker_purge(b, bytes("q"), &purged), FERRY_CODE_OK);
    ck_assert_uint_eq(purged, 2);
    ck_assert_uint_eq(count_of(&a, EV_JOIN_DONE), 1);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 1);
    ck_assert_uint_eq(count_of(&a, EV_GET_ENDED), 1);
    ck_assert_uint_eq(nth(&a, EV_GET_ENDED, 0)->rid, 10);
    ck_assert_uint_eq(broker_message_count(b), 0);
    fake_close(&a);
    broker_free(b);
}
END_TEST

/* ---- writability ---- */

START_TEST(test_unwritable_session_is_skipped_until_writable_again)
{
    struct broker *b = broker_new(NULL);
    struct fake a, c;
    fake_open(&a, b);
    fake_open(&c, b);
    consume(&a, "q", 1, 10);
    consume(&c, "q", 1, 1);
    broker_session_set_writable(b, a.s, false);
    ck_assert_int_eq(broker_get(b, a.s, bytes("q"), 8), FERRY_CODE_OK);
    publish(b, "q", "m1");
    publish(b, "q", "m2");
    publish(b, "q", "m3");
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 0);
    ck_assert_uint_eq(count_of(&c, EV_DELIVER), 1);

    broker_session_set_writable(b, a.s, true);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 2);
    ck_assert_uint_eq(stats_of(b, "q").depth, 0);
    ck_assert(!broker_get_cancel(b, a.s, 8)); /* the GET was served */
    fake_close(&a);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_session_made_unwritable_by_its_deliver_callback_gets_no_more)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    for (int i = 0; i < 10; i++)
        publish(b, "q", "m");
    a.throttle_at = 3;
    consume(&a, "q", 1, 100);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 3);
    ck_assert_uint_eq(stats_of(b, "q").depth, 7);
    a.throttle_at = 0;
    broker_session_set_writable(b, a.s, true);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 10);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_throttling_inside_a_broadcast_still_ends_every_subscription_once)
{
    struct broker *b = broker_new(NULL);
    struct fake a, c;
    fake_open(&a, b);
    fake_open(&c, b);
    consume(&a, "q", 1, 5);
    consume(&c, "q", 1, 5);
    consume(&a, "q", 2, 5);
    consume(&c, "q", 2, 5);
    ck_assert_int_eq(broker_get(b, a.s, bytes("q"), 7), FERRY_CODE_OK);
    a.throttle_at = 1;
    c.throttle_at = 1;
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 2);
    ck_assert_uint_eq(count_of(&c, EV_EOS), 2);
    ck_assert_uint_eq(count_of(&a, EV_GET_ENDED), 1);
    ck_assert_uint_ne(nth(&a, EV_EOS, 0)->sub, nth(&a, EV_EOS, 1)->sub);
    ck_assert_uint_ne(nth(&c, EV_EOS, 0)->sub, nth(&c, EV_EOS, 1)->sub);
    a.throttle_at = 0;
    c.throttle_at = 0;
    broker_session_set_writable(b, a.s, true);
    ck_assert_int_eq(broker_delete(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 2); /* they had theirs */
    fake_close(&a);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_throttling_inside_delete_ends_every_subscription)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    for (uint64_t sub = 1; sub <= 5; sub++)
        consume(&a, "q", sub, 1);
    a.throttle_at = 2;
    ck_assert_int_eq(broker_delete(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 5);
    fake_close(&a);
    broker_free(b);
}
END_TEST

/* ---- limits and statistics ---- */

START_TEST(test_max_queues_is_enforced)
{
    struct broker_limits limits = { .max_queues = 2 };
    struct broker *b = broker_new(&limits);
    struct fake a;
    fake_open(&a, b);
    ck_assert_int_eq(broker_declare(b, bytes("a")), FERRY_CODE_OK);
    publish(b, "b", "m");
    ck_assert_int_eq(broker_declare(b, bytes("a")), FERRY_CODE_OK); /* exists: no new queue */
    ck_assert_int_eq(broker_declare(b, bytes("c")), FERRY_CODE_LIMIT);
    ck_assert_int_eq(broker_publish(b, NULL, bytes("c"), bytes("m"), no_headers, NULL, NULL), FERRY_CODE_LIMIT);
    ck_assert_int_eq(broker_consume(b, a.s, bytes("c"), 1, 1), FERRY_CODE_LIMIT);
    ck_assert_int_eq(broker_get(b, a.s, bytes("c"), 1), FERRY_CODE_LIMIT);
    ck_assert_uint_eq(broker_queue_count(b), 2);
    ck_assert_int_eq(broker_delete(b, bytes("a")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_declare(b, bytes("c")), FERRY_CODE_OK);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_limits_changed_live_apply_to_what_comes_next)
{
    struct broker_limits limits = { .max_queues = 3 };
    struct broker *b = broker_new(&limits);
    ck_assert_int_eq(broker_declare(b, bytes("a")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_declare(b, bytes("b")), FERRY_CODE_OK);
    /* Lowered below what exists: nothing is removed, new queues refused. */
    limits.max_queues = 1;
    broker_set_limits(b, &limits);
    ck_assert_uint_eq(broker_queue_count(b), 2);
    ck_assert_int_eq(broker_declare(b, bytes("c")), FERRY_CODE_LIMIT);
    /* Raised: accepted again. */
    limits.max_queues = 10;
    broker_set_limits(b, &limits);
    ck_assert_int_eq(broker_declare(b, bytes("c")), FERRY_CODE_OK);
    broker_free(b);
}
END_TEST

START_TEST(test_max_consumers_per_queue_is_enforced)
{
    struct broker_limits limits = { .max_consumers_per_queue = 2 };
    struct broker *b = broker_new(&limits);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 1);
    consume(&a, "q", 2, 1);
    ck_assert_int_eq(broker_consume(b, a.s, bytes("q"), 3, 1), FERRY_CODE_LIMIT);
    consume(&a, "other", 3, 1);
    ck_assert_int_eq(broker_cancel(b, a.s, 1), FERRY_CODE_OK);
    consume(&a, "q", 4, 1);
    fake_close(&a);
    broker_free(b);
}
END_TEST

struct seen_queues {
    size_t count;
    uint64_t published;
};

static void count_queue(void *arg, struct ferry_bytes name, const struct queue_stats *st)
{
    struct seen_queues *seen = arg;
    ck_assert(name.len > 0);
    seen->count++;
    seen->published += st->published;
}

START_TEST(test_stats_count_every_step)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    publish(b, "q", "aa");
    publish(b, "q", "bbb");
    publish(b, "q", "c");
    publish(b, "r", "dddd");
    consume(&a, "q", 1, 2);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.published, 3);
    ck_assert_uint_eq(st.delivered, 2);
    ck_assert_uint_eq(st.depth, 1);
    ck_assert_uint_eq(st.inflight, 2);
    ck_assert_uint_eq(st.consumers, 1);
    ck_assert_uint_eq(st.bytes, 6);
    ck_assert(!st.ended);
    ck_assert_uint_eq(broker_message_count(b), 4);
    ck_assert_uint_eq(broker_message_bytes(b), 10);

    ack(&a, 1);                                                   /* aa acked, c delivered */
    ck_assert_int_eq(broker_nack(b, a.s, 2, true), FERRY_CODE_OK); /* bbb back, redelivered */
    ck_assert_int_eq(broker_nack(b, a.s, 4, false), FERRY_CODE_OK); /* bbb dropped */
    st = stats_of(b, "q");
    ck_assert_uint_eq(st.delivered, 4);
    ck_assert_uint_eq(st.redelivered, 1);
    ck_assert_uint_eq(st.acked, 1);
    ck_assert_uint_eq(st.dropped, 1);
    ck_assert_uint_eq(st.depth, 0);
    ck_assert_uint_eq(st.inflight, 1);
    ck_assert_uint_eq(st.bytes, 1);
    ck_assert_uint_eq(broker_message_count(b), 2);
    ck_assert_uint_eq(broker_message_bytes(b), 5);

    struct seen_queues seen = { 0 };
    broker_each_queue(b, count_queue, &seen);
    ck_assert_uint_eq(seen.count, 2);
    ck_assert_uint_eq(seen.published, 4);
    ck_assert_uint_eq(broker_queue_count(b), 2);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_many_queues_are_found_again_after_deletes)
{
    struct broker *b = broker_new(NULL);
    char name[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "queue.%d", i);
        ck_assert_int_eq(broker_declare(b, bytes(name)), FERRY_CODE_OK);
    }
    for (int i = 0; i < 2000; i += 2) {
        snprintf(name, sizeof name, "queue.%d", i);
        ck_assert_int_eq(broker_delete(b, bytes(name)), FERRY_CODE_OK);
    }
    ck_assert_uint_eq(broker_queue_count(b), 1000);
    struct queue_stats st;
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "queue.%d", i);
        enum ferry_code want = i % 2 ? FERRY_CODE_OK : FERRY_CODE_NOT_FOUND;
        ck_assert_int_eq(broker_queue_stats(b, bytes(name), &st), want);
    }
    broker_free(b);
}
END_TEST

START_TEST(test_many_subscriptions_of_one_session_are_found_again)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    for (uint64_t sub = 1; sub <= 3000; sub++)
        consume(&a, "q", sub * 0x100000001ULL, 1);
    for (uint64_t sub = 1; sub <= 3000; sub += 2)
        ck_assert_int_eq(broker_cancel(b, a.s, sub * 0x100000001ULL), FERRY_CODE_OK);
    for (uint64_t sub = 1; sub <= 3000; sub++) {
        enum ferry_code want = sub % 2 ? FERRY_CODE_UNKNOWN_SUB : FERRY_CODE_OK;
        ck_assert_int_eq(broker_credit(b, a.s, sub * 0x100000001ULL, 1), want);
    }
    ck_assert_uint_eq(stats_of(b, "q").consumers, 1500);
    fake_close(&a);
    broker_free(b);
}
END_TEST

/* ---- stress: random acks, nacks, disconnects ---- */

#define STRESS_MESSAGES 100000u
#define STRESS_PEERS 4
#define STRESS_QUEUES 2

struct held {
    uint64_t tag;
    uint32_t id;
};

struct peer {
    struct broker *b;
    struct session *s;
    struct held *held;      /* deliveries not yet settled */
    size_t count, cap;
    bool closing;
    bool writable;
    uint64_t last_rid;      /* of its latest GET */
};

/* ck_assert reports every passing check to the test runner through a pipe,
 * which would dominate a loop of millions of steps: the hot loop checks
 * with this instead. */
static void require(bool ok, const char *what)
{
    if (!ok)
        ck_abort_msg("stress: %s", what);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rng(uint32_t bound)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % bound);
}

static void peer_deliver(void *owner, uint64_t sub, uint64_t rid, uint64_t tag, const struct message *m)
{
    struct peer *p = owner;
    require(!p->closing, "callback to a session being freed");
    require(m->payload_len == sizeof(uint32_t), "payload intact");
    if (p->count == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->held = realloc(p->held, p->cap * sizeof *p->held);
        require(p->held != NULL, "test memory");
    }
    uint32_t id;
    memcpy(&id, message_payload(m).ptr, sizeof id);
    p->held[p->count++] = (struct held){ tag, id };
    if (p->writable && rng(64) == 0) {
        /* Output full: throttled from inside the callback, as broker.h allows. */
        p->writable = false;
        broker_session_set_writable(p->b, p->s, false);
    }
}

static void peer_unexpected(void *owner, uint64_t sub, struct ferry_bytes name)
{
    ck_abort_msg("no EOS expected");
}

static const struct session_ops peer_ops = { .deliver = peer_deliver, .end_of_stream = peer_unexpected };

static const char *const stress_queues[STRESS_QUEUES] = { "stress.0", "stress.1" };

static void peer_connect(struct peer *p)
{
    p->s = broker_session_new(p->b, &peer_ops, p);
    ck_assert_ptr_nonnull(p->s);
    p->count = 0;
    p->writable = true;
    for (int q = 0; q < STRESS_QUEUES; q++) {
        ck_assert_int_eq(broker_consume(p->b, p->s, bytes(stress_queues[q]), (uint64_t)q + 1,
                                        1 + rng(16)),
                         FERRY_CODE_OK);
    }
}

static void peer_disconnect(struct peer *p)
{
    p->closing = true;
    broker_session_free(p->b, p->s);
    p->closing = false;
    p->count = 0; /* what it held goes back to the queues */
}

/* Removes and returns a random held delivery of p (which holds some). */
static struct held take_random(struct peer *p)
{
    size_t i = rng((uint32_t)p->count);
    struct held h = p->held[i];
    p->held[i] = p->held[--p->count];
    return h;
}

START_TEST(test_stress_every_message_is_acked_exactly_once)
{
    struct broker *b = broker_new(NULL);
    struct peer peers[STRESS_PEERS] = { 0 };
    uint8_t *acked = calloc(STRESS_MESSAGES, 1);
    ck_assert_ptr_nonnull(acked);
    for (int i = 0; i < STRESS_PEERS; i++) {
        peers[i].b = b;
        peer_connect(&peers[i]);
    }

    uint32_t published = 0, acked_total = 0;
    uint64_t steps = 0;
    while (acked_total < STRESS_MESSAGES) {
        require(++steps < 50u * 1000 * 1000, "progress");
        struct peer *p = &peers[rng(STRESS_PEERS)];
        uint32_t op = rng(1000);
        if (op < 400 && published < STRESS_MESSAGES) {
            struct ferry_bytes payload = { (const uint8_t *)&published, sizeof published };
            require(broker_publish(b, NULL, bytes(stress_queues[published % STRESS_QUEUES]), payload,
                                   no_headers, NULL, NULL) == FERRY_CODE_OK,
                    "publish");
            published++;
        } else if (op < 800 && p->count > 0) {
            struct held h = take_random(p);
            require(broker_ack(b, p->s, h.tag) == FERRY_CODE_OK, "ack");
            require(acked[h.id] == 0, "acked once");
            acked[h.id] = 1;
            acked_total++;
        } else if (op < 900 && p->count > 0) {
            struct held h = take_random(p);
            require(broker_nack(b, p->s, h.tag, true) == FERRY_CODE_OK, "nack");
        } else if (op < 960) {
            p->writable = !p->writable;
            broker_session_set_writable(b, p->s, p->writable);
        } else if (op < 965) {
            peer_disconnect(p);
            peer_connect(p);
        } else if (op < 970) {
            require(broker_credit(b, p->s, 1 + rng(STRESS_QUEUES), 1) == FERRY_CODE_OK, "credit");
        } else if (op < 975) {
            /* Its deliveries stay in flight, held and acked later. */
            int q = (int)rng(STRESS_QUEUES);
            require(broker_cancel(b, p->s, (uint64_t)q + 1) == FERRY_CODE_OK, "cancel");
            require(broker_consume(b, p->s, bytes(stress_queues[q]), (uint64_t)q + 1, 1 + rng(16))
                        == FERRY_CODE_OK,
                    "consume again");
        } else if (op < 985) {
            if (p->last_rid != 0 && rng(2) == 0)
                broker_get_cancel(b, p->s, p->last_rid);
            p->last_rid++;
            require(broker_get(b, p->s, bytes(stress_queues[rng(STRESS_QUEUES)]), p->last_rid)
                        == FERRY_CODE_OK,
                    "get");
        }
    }

    ck_assert_uint_eq(broker_message_count(b), 0);
    ck_assert_uint_eq(broker_message_bytes(b), 0);
    uint64_t total_acked = 0, redelivered = 0;
    for (int q = 0; q < STRESS_QUEUES; q++) {
        struct queue_stats st = stats_of(b, stress_queues[q]);
        ck_assert_uint_eq(st.published, STRESS_MESSAGES / STRESS_QUEUES);
        ck_assert_uint_eq(st.depth, 0);
        ck_assert_uint_eq(st.inflight, 0);
        ck_assert_uint_eq(st.dropped, 0);
        total_acked += st.acked;
        redelivered += st.redelivered;
    }
    ck_assert_uint_eq(total_acked, STRESS_MESSAGES);
    ck_assert_uint_gt(redelivered, 0);
    for (int i = 0; i < STRESS_PEERS; i++) {
        ck_assert_uint_eq(peers[i].count, 0);
        peer_disconnect(&peers[i]);
        free(peers[i].held);
    }
    free(acked);
    broker_free(b);
}
END_TEST

/* ---- the journal ---- */

/* A fake journal that records every call, hands out ids from 100 and LSNs
 * from 1, and refuses what a test asks it to. */
enum jkind { J_DECLARE, J_PUBLISH, J_SETTLE, J_ATTEMPTS, J_END, J_REOPEN, J_DELETE, J_REWRITE };

struct jentry {
    enum jkind kind;
    char queue[32];         /* "" for calls that name a message */
    uint64_t id;
    uint32_t attempts;
    uint64_t deliver_at;    /* PUBLISH: its meta's */
    struct message_meta meta; /* PUBLISH: all of it */
    enum queue_fsync fsync;
};

struct fake_journal {
    struct broker_journal ops;
    struct jentry *log;
    size_t count, cap;
    uint64_t next_id, next_lsn;
    long publishes;               /* publish calls so far */
    long refuse_publish_at;       /* that publish call (1-based) is refused; 0: none */
    enum ferry_code refuse_changes; /* declare, end, reopen, delete answer this */
};

static struct jentry *jrecord(struct fake_journal *j, enum jkind kind, struct ferry_bytes queue,
                              const struct queue_settings *s)
{
    if (j->count == j->cap) {
        j->cap = j->cap ? j->cap * 2 : 16;
        j->log = realloc(j->log, j->cap * sizeof *j->log);
        ck_assert_ptr_nonnull(j->log);
    }
    struct jentry *e = &j->log[j->count++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    copy_text(e->queue, sizeof e->queue, queue);
    e->fsync = s->fsync;
    ck_assert(s->durable);
    return e;
}

static const struct ferry_bytes no_queue = { NULL, 0 };

static enum ferry_code j_change(void *arg, enum jkind kind, struct ferry_bytes q,
                                const struct queue_settings *s)
{
    struct fake_journal *j = arg;
    if (j->refuse_changes != FERRY_CODE_OK)
        return j->refuse_changes;
    jrecord(j, kind, q, s);
    return FERRY_CODE_OK;
}

static enum ferry_code j_declare(void *arg, struct ferry_bytes q, const struct queue_settings *s)
{
    return j_change(arg, J_DECLARE, q, s);
}
static enum ferry_code j_end(void *arg, struct ferry_bytes q, const struct queue_settings *s)
{
    return j_change(arg, J_END, q, s);
}
static enum ferry_code j_reopen(void *arg, struct ferry_bytes q, const struct queue_settings *s)
{
    return j_change(arg, J_REOPEN, q, s);
}
static enum ferry_code j_delete(void *arg, struct ferry_bytes q, const struct queue_settings *s)
{
    return j_change(arg, J_DELETE, q, s);
}

static enum ferry_code j_publish(void *arg, struct ferry_bytes q, const struct queue_settings *s,
                                 const struct message_meta *meta, struct ferry_bytes headers,
                                 struct ferry_bytes payload, uint64_t *id, uint64_t *lsn)
{
    struct fake_journal *j = arg;
    if (++j->publishes == j->refuse_publish_at)
        return FERRY_CODE_STORAGE;
    struct jentry *e = jrecord(j, J_PUBLISH, q, s);
    e->deliver_at = meta != NULL ? meta->deliver_at : 0;
    e->meta = meta != NULL ? *meta : (struct message_meta){ 0 };
    e->id = *id = j->next_id++;
    *lsn = j->next_lsn++;
    return FERRY_CODE_OK;
}

static void j_settle(void *arg, const struct queue_settings *s, uint64_t id)
{
    jrecord(arg, J_SETTLE, no_queue, s)->id = id;
}

static void j_attempts(void *arg, const struct queue_settings *s, uint64_t id, uint32_t attempts)
{
    struct jentry *e = jrecord(arg, J_ATTEMPTS, no_queue, s);
    e->id = id;
    e->attempts = attempts;
}

static void j_rewrite(void *arg, const struct queue_settings *s, uint64_t id, uint32_t attempts,
                      const struct message_meta *meta, struct ferry_bytes headers,
                      struct ferry_bytes payload)
{
    (void)headers;
    (void)payload;
    struct jentry *e = jrecord(arg, J_REWRITE, no_queue, s);
    e->id = id;
    e->attempts = attempts;
    e->deliver_at = meta->deliver_at;
}

static void journal_open(struct fake_journal *j, struct broker *b)
{
    memset(j, 0, sizeof *j);
    j->next_id = 100;
    j->next_lsn = 1;
    j->ops = (struct broker_journal){
        .arg = j, .declare = j_declare, .publish = j_publish, .settle = j_settle,
        .attempts = j_attempts, .end = j_end, .reopen = j_reopen, .delete_queue = j_delete,
        .rewrite = j_rewrite,
    };
    broker_set_journal(b, &j->ops);
}

static void journal_close(struct fake_journal *j)
{
    free(j->log);
    j->log = NULL;
}

static size_t jcount(const struct fake_journal *j, enum jkind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < j->count; i++)
        n += j->log[i].kind == kind;
    return n;
}

static const struct jentry *jnth(const struct fake_journal *j, enum jkind kind, size_t i)
{
    for (size_t k = 0; k < j->count; k++) {
        if (j->log[k].kind == kind && i-- == 0)
            return &j->log[k];
    }
    ck_abort_msg("no such journal entry");
    return NULL;
}

/* Ids published and neither settled nor dropped with a deleted queue. */
static size_t jlive(const struct fake_journal *j)
{
    size_t live = 0;
    for (size_t i = 0; i < j->count; i++) {
        const struct jentry *p = &j->log[i];
        if (p->kind != J_PUBLISH)
            continue;
        bool gone = false;
        for (size_t k = i + 1; k < j->count && !gone; k++) {
            const struct jentry *e = &j->log[k];
            gone = (e->kind == J_SETTLE && e->id == p->id) ||
                   (e->kind == J_DELETE && strcmp(e->queue, p->queue) == 0);
        }
        live += !gone;
    }
    return live;
}

/* Queues whose names start with "d" are durable; "di..." fsync interval. */
static void durable_names(void *arg, struct ferry_bytes name, struct queue_settings *out)
{
    (void)arg;
    bool durable = name.len > 0 && name.ptr[0] == 'd';
    bool interval = name.len > 1 && name.ptr[1] == 'i';
    *out = (struct queue_settings){
        .durable = durable,
        .fsync = interval ? QUEUE_FSYNC_INTERVAL : QUEUE_FSYNC_ALWAYS,
    };
}

static struct broker *durable_broker(struct fake_journal *j)
{
    struct broker *b = broker_new(NULL);
    ck_assert_ptr_nonnull(b);
    broker_set_settings_source(b, durable_names, NULL);
    journal_open(j, b);
    return b;
}

START_TEST(test_durable_publish_is_logged_before_it_is_queued_and_waits_for_its_lsn)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    uint64_t lsn = 0;
    ck_assert_int_eq(broker_publish(b, NULL, bytes("dq"), bytes("a"), no_headers, NULL, &lsn), FERRY_CODE_OK);
    ck_assert_uint_eq(lsn, 1);
    ck_assert_int_eq(broker_publish(b, NULL, bytes("dq"), bytes("b"), no_headers, NULL, &lsn), FERRY_CODE_OK);
    ck_assert_uint_eq(lsn, 2);
    ck_assert_uint_eq(jcount(&j, J_DECLARE), 1); /* created durable on first use */
    ck_assert_str_eq(jnth(&j, J_DECLARE, 0)->queue, "dq");
    ck_assert_uint_eq(jcount(&j, J_PUBLISH), 2);
    ck_assert_uint_eq(stats_of(b, "dq").depth, 2);
    broker_free(b);
    journal_close(&j);
}
END_TEST

START_TEST(test_in_memory_publish_is_not_logged_and_is_confirmed_at_once)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    uint64_t lsn = 99;
    ck_assert_int_eq(broker_publish(b, NULL, bytes("q"), bytes("a"), no_headers, NULL, &lsn), FERRY_CODE_OK);
    ck_assert_uint_eq(lsn, 0);
    ck_assert_uint_eq(j.count, 0);
    broker_free(b);
    journal_close(&j);
}
END_TEST

START_TEST(test_a_refused_publish_is_not_queued)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "dq", 1, 10);
    j.refuse_publish_at = 1;
    uint64_t lsn = 7;
    ck_assert_int_eq(broker_publish(b, NULL, bytes("dq"), bytes("a"), no_headers, NULL, &lsn),
                     FERRY_CODE_STORAGE);
    ck_assert_uint_eq(lsn, 0);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 0);
    ck_assert_uint_eq(stats_of(b, "dq").published, 0);
    ck_assert_uint_eq(broker_message_count(b), 0);
    fake_close(&a);
    broker_free(b);
    journal_close(&j);
}
END_TEST

START_TEST(test_a_batch_refused_half_way_queues_nothing_and_settles_what_it_logged)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "dq", 1, 10);
    const char *items[] = { "one", "two", "three", "four" };
    j.refuse_publish_at = 3;
    uint64_t lsn = 7;
    ck_assert_int_eq(publish_batch(b, "dq", items, 4, &lsn), FERRY_CODE_STORAGE);
    ck_assert_uint_eq(lsn, 0);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 0);
    ck_assert_uint_eq(stats_of(b, "dq").depth, 0);
    ck_assert_uint_eq(jcount(&j, J_PUBLISH), 2);
    ck_assert_uint_eq(jcount(&j, J_SETTLE), 2);
    ck_assert_uint_eq(jlive(&j), 0);

    /* The same batch goes through whole once the journal takes it. */
    ck_assert_int_eq(publish_batch(b, "dq", items, 4, &lsn), FERRY_CODE_OK);
    ck_assert_uint_eq(lsn, 6); /* the last item's */
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 4);
    for (size_t i = 0; i < 4; i++)
        assert_delivery(&a, i, items[i], 1);
    fake_close(&a);
    broker_free(b);
    journal_close(&j);
}
END_TEST

static long batch_allocations;

static bool fail_after_batch_allocations(void)
{
    return --batch_allocations < 0;
}

START_TEST(test_a_batch_that_runs_out_of_memory_half_way_queues_nothing)
{
    for (int memory = 0; memory < 4; memory++) {
        struct fake_journal j;
        struct broker *b = durable_broker(&j);
        ck_assert_int_eq(broker_declare(b, bytes("dq")), FERRY_CODE_OK);
        ck_assert_int_eq(broker_declare(b, bytes("q")), FERRY_CODE_OK);
        const char *items[] = { "one", "two", "three", "four" };
        batch_allocations = memory; /* the batch's copies: this many succeed */
        core_alloc_should_fail = fail_after_batch_allocations;
        enum ferry_code in_log = publish_batch(b, "dq", items, 4, NULL);
        batch_allocations = memory;
        enum ferry_code in_memory = publish_batch(b, "q", items, 4, NULL);
        core_alloc_should_fail = NULL;
        ck_assert_int_eq(in_log, FERRY_CODE_NO_MEMORY);
        ck_assert_int_eq(in_memory, FERRY_CODE_NO_MEMORY);
        ck_assert_uint_eq(broker_message_count(b), 0);
        ck_assert_uint_eq(stats_of(b, "dq").published, 0);
        ck_assert_uint_eq(jcount(&j, J_PUBLISH), (size_t)memory);
        ck_assert_uint_eq(jlive(&j), 0);
        broker_free(b);
        journal_close(&j);
    }
}
END_TEST

START_TEST(test_drop_oldest_settles_the_dropped_message_in_the_journal_after_the_new_one_is_logged)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    ck_assert_int_eq(broker_declare(b, bytes("dq")), FERRY_CODE_OK);
    struct queue_settings s = {
        .durable = true, .fsync = QUEUE_FSYNC_ALWAYS,
        .max_length = 1, .overflow = QUEUE_OVERFLOW_DROP_OLDEST,
    };
    ck_assert_int_eq(broker_configure_queue(b, bytes("dq"), &s), FERRY_CODE_OK);
    ck_assert_int_eq(broker_publish(b, NULL, bytes("dq"), bytes("a"), no_headers, NULL, NULL), FERRY_CODE_OK);
    j.refuse_publish_at = j.publishes + 1;
    ck_assert_int_eq(broker_publish(b, NULL, bytes("dq"), bytes("b"), no_headers, NULL, NULL),
                     FERRY_CODE_STORAGE);
    ck_assert_uint_eq(jcount(&j, J_SETTLE), 0); /* refused: "a" stays */
    j.refuse_publish_at = 0;
    ck_assert_int_eq(broker_publish(b, NULL, bytes("dq"), bytes("b"), no_headers, NULL, NULL), FERRY_CODE_OK);
    ck_assert_uint_eq(jcount(&j, J_SETTLE), 1);
    ck_assert_uint_eq(jnth(&j, J_SETTLE, 0)->id, jnth(&j, J_PUBLISH, 0)->id);
    ck_assert_uint_eq(jlive(&j), 1);
    ck_assert_uint_eq(stats_of(b, "dq").dropped_oldest, 1);
    broker_free(b);
    journal_close(&j);
}
END_TEST

START_TEST(test_each_delivery_logs_its_attempt_count_and_requeue_logs_nothing_more)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    struct fake a;
    fake_open(&a, b);
    ck_assert_int_eq(broker_publish(b, NULL, bytes("dq"), bytes("m"), no_headers, NULL, NULL), FERRY_CODE_OK);
    consume(&a, "dq", 1, 1);
    ck_assert_uint_eq(jcount(&j, J_ATTEMPTS), 1);
    ck_assert_uint_eq(jnth(&j, J_ATTEMPTS, 0)->id, 100);
    ck_assert_uint_eq(jnth(&j, J_ATTEMPTS, 0)->attempts, 1);
    ck_assert_int_eq(broker_nack(b, a.s, 1, true), FERRY_CODE_OK); /* redelivered at once */
    ck_assert_uint_eq(jcount(&j, J_ATTEMPTS), 2);
    ck_assert_uint_eq(jnth(&j, J_ATTEMPTS, 1)->attempts, 2);
    ck_assert_uint_eq(jcount(&j, J_SETTLE), 0);
    assert_delivery(&a, 1, "m", 2);
    fake_close(&a); /* back to the queue: nothing to log */
    ck_assert_uint_eq(jcount(&j, J_SETTLE), 0);
    ck_assert_uint_eq(jlive(&j), 1);
    broker_free(b);
    journal_close(&j);
}
END_TEST

START_TEST(test_ack_nack_drop_and_purge_settle_in_the_journal)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    struct fake a;
    fake_open(&a, b);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(broker_publish(b, NULL, bytes("dq"), bytes("m"), no_headers, NULL, NULL),
                         FERRY_CODE_OK);
    consume(&a, "dq", 1, 3);
    ck_assert_int_eq(broker_cancel(b, a.s, 1), FERRY_CODE_OK); /* 3 in flight, 1 ready */
    ack(&a, 1);
    ck_assert_uint_eq(jnth(&j, J_SETTLE, 0)->id, 100);
    ck_assert_int_eq(broker_nack(b, a.s, 2, false), FERRY_CODE_OK);
    ck_assert_uint_eq(jnth(&j, J_SETTLE, 1)->id, 101);
    uint64_t purged = 0;
    ck_assert_int_eq(broker_purge(b, bytes("dq"), &purged), FERRY_CODE_OK);
    ck_assert_uint_eq(purged, 1);
    ck_assert_uint_eq(jnth(&j, J_SETTLE, 2)->id, 103);
    ck_assert_uint_eq(jlive(&j), 1); /* the one in flight */
    fake_close(&a);
    broker_free(b); /* what is still queued is what the journal keeps */
    ck_assert_uint_eq(jcount(&j, J_SETTLE), 3);
    journal_close(&j);
}
END_TEST

START_TEST(test_delete_logs_the_queue_once_and_later_acks_of_its_messages_not_at_all)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    struct fake a;
    fake_open(&a, b);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(broker_publish(b, NULL, bytes("dq"), bytes("m"), no_headers, NULL, NULL),
                         FERRY_CODE_OK);
    consume(&a, "dq", 1, 1);
    ck_assert_int_eq(broker_delete(b, bytes("dq")), FERRY_CODE_OK);
    ck_assert_uint_eq(jcount(&j, J_DELETE), 1);
    ack(&a, 1);
    ck_assert_uint_eq(jcount(&j, J_SETTLE), 0);
    ck_assert_uint_eq(jlive(&j), 0);
    fake_close(&a);
    broker_free(b);
    journal_close(&j);
}
END_TEST

START_TEST(test_refused_queue_changes_leave_the_queue_as_it_was)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    j.refuse_changes = FERRY_CODE_STORAGE;
    ck_assert_int_eq(broker_declare(b, bytes("dq")), FERRY_CODE_STORAGE);
    ck_assert_int_eq(broker_queue_stats(b, bytes("dq"), &(struct queue_stats){ 0 }),
                     FERRY_CODE_NOT_FOUND);
    j.refuse_changes = FERRY_CODE_OK;
    ck_assert_int_eq(broker_declare(b, bytes("dq")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_publish(b, NULL, bytes("dq"), bytes("m"), no_headers, NULL, NULL), FERRY_CODE_OK);

    j.refuse_changes = FERRY_CODE_STORAGE;
    ck_assert_int_eq(broker_end(b, bytes("dq")), FERRY_CODE_STORAGE);
    ck_assert(!stats_of(b, "dq").ended);
    ck_assert_int_eq(broker_delete(b, bytes("dq")), FERRY_CODE_STORAGE);
    ck_assert_uint_eq(stats_of(b, "dq").depth, 1);
    j.refuse_changes = FERRY_CODE_OK;
    ck_assert_int_eq(broker_end(b, bytes("dq")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_end(b, bytes("dq")), FERRY_CODE_OK); /* already: not logged again */
    ck_assert_uint_eq(jcount(&j, J_END), 1);
    j.refuse_changes = FERRY_CODE_STORAGE;
    ck_assert_int_eq(broker_reopen(b, bytes("dq")), FERRY_CODE_STORAGE);
    ck_assert(stats_of(b, "dq").ended);
    j.refuse_changes = FERRY_CODE_OK;
    ck_assert_int_eq(broker_reopen(b, bytes("dq")), FERRY_CODE_OK);
    ck_assert_uint_eq(jcount(&j, J_REOPEN), 1);
    broker_free(b);
    journal_close(&j);
}
END_TEST

START_TEST(test_restored_messages_come_back_in_order_with_their_attempts_unlogged)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    struct queue_settings s = { .durable = true, .fsync = QUEUE_FSYNC_INTERVAL };
    ck_assert_int_eq(broker_restore_queue(b, bytes("dq"), &s), FERRY_CODE_OK);
    ck_assert_int_eq(broker_restore_message(b, bytes("dq"), 7, 0, NULL, no_headers, bytes("one")),
                     FERRY_CODE_OK);
    ck_assert_int_eq(broker_restore_message(b, bytes("dq"), 9, 2, NULL, no_headers, bytes("two")),
                     FERRY_CODE_OK);
    ck_assert_int_eq(broker_restore_end(b, bytes("dq")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_restore_message(b, bytes("nope"), 10, 0, NULL, no_headers, bytes("x")),
                     FERRY_CODE_NOT_FOUND);
    ck_assert_uint_eq(j.count, 0);
    struct queue_settings got;
    ck_assert_int_eq(broker_queue_settings(b, bytes("dq"), &got), FERRY_CODE_OK);
    ck_assert_int_eq(got.fsync, QUEUE_FSYNC_INTERVAL);

    struct fake a;
    fake_open(&a, b);
    consume(&a, "dq", 1, 10);
    assert_delivery(&a, 0, "one", 1);
    assert_delivery(&a, 1, "two", 3);
    ack(&a, 1);
    ack(&a, 2);
    ck_assert_uint_eq(jnth(&j, J_SETTLE, 0)->id, 7);
    ck_assert_uint_eq(jnth(&j, J_SETTLE, 1)->id, 9);
    ck_assert_int_eq(jnth(&j, J_SETTLE, 1)->fsync, QUEUE_FSYNC_INTERVAL);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 1); /* ended, now drained */
    fake_close(&a);
    broker_free(b);
    journal_close(&j);
}
END_TEST

START_TEST(test_a_queue_configured_in_memory_leaves_the_journal_and_keeps_its_messages)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(broker_publish(b, NULL, bytes("dq"), bytes("m"), no_headers, NULL, NULL),
                         FERRY_CODE_OK);
    struct queue_settings memory = { .durable = false };
    ck_assert_int_eq(broker_configure_queue(b, bytes("dq"), &memory), FERRY_CODE_OK);
    ck_assert_uint_eq(jcount(&j, J_DELETE), 1);
    ck_assert_uint_eq(stats_of(b, "dq").depth, 2);
    uint64_t lsn = 5;
    ck_assert_int_eq(broker_publish(b, NULL, bytes("dq"), bytes("m"), no_headers, NULL, &lsn), FERRY_CODE_OK);
    ck_assert_uint_eq(lsn, 0);
    /* Back to durable only while empty: its messages were never logged. */
    struct queue_settings durable = { .durable = true, .fsync = QUEUE_FSYNC_NEVER };
    ck_assert_int_eq(broker_configure_queue(b, bytes("dq"), &durable), FERRY_CODE_BAD_REQUEST);
    ck_assert_int_eq(broker_purge(b, bytes("dq"), NULL), FERRY_CODE_OK);
    ck_assert_uint_eq(jcount(&j, J_SETTLE), 0);
    ck_assert_int_eq(broker_configure_queue(b, bytes("dq"), &durable), FERRY_CODE_OK);
    ck_assert_uint_eq(jcount(&j, J_DECLARE), 2);
    ck_assert_int_eq(jnth(&j, J_DECLARE, 1)->fsync, QUEUE_FSYNC_NEVER);
    broker_free(b);
    journal_close(&j);
}
END_TEST

/* ---- allocation failure ---- */

static long allocations_until_failure;

static bool fail_one_allocation(void)
{
    return --allocations_until_failure == 0;
}

static bool ok_or_no_memory(enum ferry_code code)
{
    return code == FERRY_CODE_OK || code == FERRY_CODE_NO_MEMORY;
}

/* A little of everything; every call must succeed or say NO_MEMORY. */
static void busy_scenario(struct broker *b, struct fake *a, struct fake *c)
{
    ck_assert(ok_or_no_memory(broker_consume(b, a->s, bytes("q"), 1, 3)));
    ck_assert(ok_or_no_memory(broker_consume(b, c->s, bytes("q"), 1, 2)));
    for (int i = 0; i < 12; i++)
        ck_assert(ok_or_no_memory(broker_publish(b, NULL, bytes(i % 3 ? "q" : "r"), bytes("msg"), no_headers, NULL, NULL)));
    ck_assert(ok_or_no_memory(broker_get(b, c->s, bytes("r"), 5)));
    ck_assert(ok_or_no_memory(broker_get(b, c->s, bytes("q"), 6)));
    ck_assert(ok_or_no_memory(broker_join(b, c->s, bytes("q"), 7)));
    ck_assert(ok_or_no_memory(broker_declare(b, bytes("s"))));
    /* Topics: bindings, a temporary queue of c's, copies to all of them. */
    struct ferry_bytes temp;
    ck_assert(ok_or_no_memory(broker_bind(b, bytes("s"), bytes("t.#"))));
    ck_assert(ok_or_no_memory(broker_bind(b, bytes("r"), bytes("t.*"))));
    if (broker_declare_temp(b, c->s, bytes("tmp.c"), &temp) == FERRY_CODE_OK)
        ck_assert(ok_or_no_memory(broker_bind(b, bytes("tmp.c"), bytes("#"))));
    for (int i = 0; i < 3; i++)
        ck_assert(ok_or_no_memory(broker_publish_topic(b, bytes("t.x"), bytes("msg"), no_headers,
                                                       NULL, NULL)));
    enum ferry_code unbound = broker_unbind(b, bytes("s"), bytes("t.#")); /* allocates nothing */
    ck_assert(unbound == FERRY_CODE_OK || unbound == FERRY_CODE_NOT_FOUND);
    for (uint64_t tag = 1; tag <= 4; tag++) {
        broker_ack(b, a->s, tag);
        broker_nack(b, c->s, tag, tag % 2 == 0);
    }
    ck_assert(ok_or_no_memory(broker_end(b, bytes("q"))));
    broker_session_set_writable(b, a->s, false);
    broker_session_set_writable(b, a->s, true);
    ck_assert(ok_or_no_memory(broker_delete(b, bytes("r"))));
    enum ferry_code code = broker_credit(b, c->s, 1, 2); /* the sub may have failed to open */
    ck_assert(code == FERRY_CODE_OK || code == FERRY_CODE_UNKNOWN_SUB);
}

static const char *const scenario_queues[] = { "q", "r", "s", "t" };

/* Each live queue's counters add up, and the global counts are their sum
 * (once no session is left, so nothing of a deleted queue is in flight). */
static void assert_consistent(struct broker *b)
{
    uint64_t messages = 0;
    size_t queues = 0;
    for (size_t i = 0; i < sizeof scenario_queues / sizeof scenario_queues[0]; i++) {
        struct queue_stats st;
        if (broker_queue_stats(b, bytes(scenario_queues[i]), &st) != FERRY_CODE_OK)
            continue;
        queues++;
        ck_assert_uint_eq(st.published, st.acked + st.dropped + st.depth + st.inflight);
        ck_assert_uint_eq(st.bytes, 3 * (st.depth + st.inflight));
        ck_assert_uint_eq(st.inflight, 0);
        ck_assert_uint_eq(st.consumers, 0);
        messages += st.depth;
    }
    ck_assert_uint_eq(queues, broker_queue_count(b));
    ck_assert_uint_eq(messages, broker_message_count(b));
    ck_assert_uint_eq(3 * messages, broker_message_bytes(b));
}

START_TEST(test_every_allocation_failure_leaves_the_broker_consistent)
{
    bool covered_all = false;
    for (long k = 1; k < 1000 && !covered_all; k++) {
        allocations_until_failure = k;
        core_alloc_should_fail = fail_one_allocation;
        struct broker *b = broker_new(NULL);
        struct fake a, c;
        memset(&a, 0, sizeof a);
        memset(&c, 0, sizeof c);
        a.b = c.b = b;
        if (b != NULL) {
            a.s = broker_session_new(b, &fake_ops, &a);
            c.s = broker_session_new(b, &fake_ops, &c);
        }
        if (a.s != NULL && c.s != NULL)
            busy_scenario(b, &a, &c);
        core_alloc_should_fail = NULL;
        covered_all = allocations_until_failure > 0; /* the k-th allocation never came */
        if (b == NULL)
            continue;

        /* Everything works again once memory is back. */
        if (a.s != NULL) {
            ck_assert_int_eq(broker_consume(b, a.s, bytes("t"), 99, 100), FERRY_CODE_OK);
            publish(b, "t", "new");
            ck_assert_uint_eq(nth(&a, EV_DELIVER, count_of(&a, EV_DELIVER) - 1)->sub, 99);
        }
        fake_close(&a);
        fake_close(&c);
        assert_consistent(b);
        broker_free(b);
    }
    ck_assert(covered_all);
}
END_TEST

START_TEST(test_every_allocation_failure_keeps_the_journal_in_step_with_the_broker)
{
    for (long k = 1; k < 400; k++) {
        struct fake_journal j;
        struct broker *b = durable_broker(&j);
        struct fake a;
        fake_open(&a, b);
        allocations_until_failure = k;
        core_alloc_should_fail = fail_one_allocation;
        const char *items[] = { "a", "b", "c" };
        for (int i = 0; i < 6; i++) {
            ck_assert(ok_or_no_memory(publish_batch(b, i % 2 ? "dq" : "dr", items, 3, NULL)));
            ck_assert(ok_or_no_memory(
                broker_publish(b, NULL, bytes("dq"), bytes("x"), no_headers, NULL, NULL)));
        }
        ck_assert(ok_or_no_memory(broker_consume(b, a.s, bytes("dq"), 1, 4)));
        for (uint64_t tag = 1; tag <= 3; tag++)
            broker_ack(b, a.s, tag);
        core_alloc_should_fail = NULL;
        fake_close(&a);
        /* Every message held is logged once, and nothing else is live. */
        ck_assert_uint_eq(jlive(&j), broker_message_count(b));
        broker_free(b);
        journal_close(&j);
    }
}
END_TEST

/* ---- time: a fake clock drives the broker's timers ---- */

static void publish_at(struct broker *b, const char *queue, const char *payload, uint64_t at)
{
    struct message_meta meta = { .deliver_at = at };
    ck_assert_int_eq(broker_publish(b, NULL, bytes(queue), bytes(payload), no_headers, &meta, NULL),
                     FERRY_CODE_OK);
}

START_TEST(test_delayed_publish_is_not_delivered_before_its_time_and_is_at_it)
{
    struct broker *b = timed_broker();
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 10);
    ck_assert_uint_eq(broker_next_due(b), UINT64_MAX);
    publish_at(b, "q", "later", fake_now + 500);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 0);
    ck_assert_uint_eq(stats_of(b, "q").delayed, 1);
    ck_assert_uint_eq(stats_of(b, "q").depth, 0);
    ck_assert_uint_eq(broker_next_due(b), fake_now + 500);

    advance(b, 499);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 0);
    advance(b, 1);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 1);
    assert_delivery(&a, 0, "later", 1);
    ck_assert_uint_eq(stats_of(b, "q").delayed, 0);
    ck_assert_uint_eq(broker_next_due(b), UINT64_MAX);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_a_deliver_at_in_the_past_is_delivered_at_once)
{
    struct broker *b = timed_broker();
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 10);
    publish_at(b, "q", "late", fake_now - 10);
    publish_at(b, "q", "now", fake_now);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 2);
    ck_assert_uint_eq(broker_next_due(b), UINT64_MAX);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_delayed_messages_come_out_in_due_order_behind_the_ready_ones)
{
    struct broker *b = timed_broker();
    publish_at(b, "q", "c", fake_now + 300);
    publish_at(b, "q", "a", fake_now + 100);
    publish_at(b, "q", "b", fake_now + 200);
    publish(b, "q", "ready");
    advance(b, 1000); /* all due at once: they queue in due order */
    struct fake f;
    fake_open(&f, b);
    consume(&f, "q", 1, 10);
    ck_assert_uint_eq(count_of(&f, EV_DELIVER), 4);
    assert_delivery(&f, 0, "ready", 1);
    assert_delivery(&f, 1, "a", 1);
    assert_delivery(&f, 2, "b", 1);
    assert_delivery(&f, 3, "c", 1);
    fake_close(&f);
    broker_free(b);
}
END_TEST

START_TEST(test_purge_and_delete_drop_delayed_messages_and_their_timers)
{
    struct broker *b = timed_broker();
    publish_at(b, "q", "x", fake_now + 100);
    publish_at(b, "q", "y", fake_now + 100);
    publish(b, "q", "z");
    uint64_t purged = 0;
    ck_assert_int_eq(broker_purge(b, bytes("q"), &purged), FERRY_CODE_OK);
    ck_assert_uint_eq(purged, 3);
    ck_assert_uint_eq(stats_of(b, "q").delayed, 0);
    ck_assert_uint_eq(broker_next_due(b), UINT64_MAX);

    publish_at(b, "q", "x", fake_now + 100);
    ck_assert_int_eq(broker_delete(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_uint_eq(broker_next_due(b), UINT64_MAX);
    ck_assert_uint_eq(broker_message_count(b), 0);
    advance(b, 1000);
    broker_free(b);
}
END_TEST

START_TEST(test_many_timers_due_at_once_fire_over_several_turns_in_due_order)
{
    /* More delayed messages due at one millisecond than one turn fires:
     * the loop serves its connections in between, and nothing is lost or
     * reordered. */
    struct broker *b = timed_broker();
    const uint64_t total = BROKER_TIMERS_PER_ADVANCE + 100;
    uint64_t at = fake_now + 100;
    for (uint64_t i = 0; i < total; i++)
        publish_at(b, "q", "d", at);
    publish_at(b, "q", "last", at + 1);
    fake_now += 200;
    ck_assert_uint_le(broker_next_due(b), fake_now);
    broker_advance(b);
    ck_assert_uint_eq(stats_of(b, "q").depth, BROKER_TIMERS_PER_ADVANCE);
    ck_assert_uint_eq(stats_of(b, "q").delayed, total + 1 - BROKER_TIMERS_PER_ADVANCE);
    ck_assert_uint_le(broker_next_due(b), fake_now); /* the rest is still due */
    broker_advance(b);
    ck_assert_uint_eq(stats_of(b, "q").delayed, 0);
    ck_assert_uint_eq(broker_next_due(b), UINT64_MAX);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, total + 1);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), total + 1);
    assert_delivery(&a, total, "last", 1); /* due last, out last */
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_join_and_end_of_stream_wait_for_delayed_messages)
{
    struct broker *b = timed_broker();
    struct fake f;
    fake_open(&f, b);
    publish_at(b, "q", "x", fake_now + 100);
    ck_assert_int_eq(broker_join(b, f.s, bytes("q"), 7), FERRY_CODE_OK);
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    consume(&f, "q", 1, 10);
    ck_assert_uint_eq(count_of(&f, EV_JOIN_DONE), 0);
    ck_assert_uint_eq(count_of(&f, EV_EOS), 0);
    advance(b, 100);
    ck_assert_uint_eq(count_of(&f, EV_DELIVER), 1);
    ack(&f, nth(&f, EV_DELIVER, 0)->tag);
    ck_assert_uint_eq(count_of(&f, EV_JOIN_DONE), 1);
    ck_assert_uint_eq(count_of(&f, EV_EOS), 1);
    fake_close(&f);
    broker_free(b);
}
END_TEST

/* ---- priorities ---- */

static enum ferry_code publish_priority(struct broker *b, const char *queue, const char *payload,
                                        unsigned priority)
{
    struct message_meta meta = { .has_priority = true, .priority = (uint8_t)priority };
    return broker_publish(b, NULL, bytes(queue), bytes(payload), no_headers, &meta, NULL);
}

static void publish_level(struct broker *b, const char *queue, const char *payload, unsigned priority)
{
    ck_assert_int_eq(publish_priority(b, queue, payload, priority), FERRY_CODE_OK);
}

/* The payloads delivered to f so far, in order, joined by spaces. */
static const char *delivered_text(const struct fake *f)
{
    static char text[512];
    text[0] = '\0';
    for (size_t i = 0; i < count_of(f, EV_DELIVER); i++) {
        if (i > 0)
            strcat(text, " ");
        strcat(text, nth(f, EV_DELIVER, i)->text);
    }
    return text;
}

START_TEST(test_higher_priority_is_delivered_first_and_fifo_within_a_level)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    publish_level(b, "q", "a0", 0);
    publish_level(b, "q", "b5", 5);
    publish_level(b, "q", "c9", 9);
    publish_level(b, "q", "d5", 5);
    publish(b, "q", "e0"); /* no priority: the queue's default, 0 */
    publish_level(b, "q", "f9", 9);
    consume(&a, "q", 1, 10);
    ck_assert_str_eq(delivered_text(&a), "c9 f9 b5 d5 a0 e0");
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_a_message_published_later_at_a_higher_level_passes_the_waiting_ones)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    publish_level(b, "q", "low1", 1);
    publish_level(b, "q", "low2", 1);
    consume(&a, "q", 1, 1);
    ck_assert_str_eq(delivered_text(&a), "low1");
    publish_level(b, "q", "high", 8);
    ack(&a, 1);
    ck_assert_str_eq(delivered_text(&a), "low1 high");
    ack(&a, 2);
    ck_assert_str_eq(delivered_text(&a), "low1 high low2");
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_nack_with_requeue_goes_back_to_the_front_of_its_own_level)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    publish_level(b, "q", "x5", 5);
    publish_level(b, "q", "y5", 5);
    publish_level(b, "q", "z0", 0);
    consume(&a, "q", 1, 1);
    ck_assert_str_eq(delivered_text(&a), "x5");
    /* A higher level arrived meanwhile: it goes first, then x5 before y5. */
    publish_level(b, "q", "m9", 9);
    ck_assert_int_eq(broker_nack(b, a.s, 1, true), FERRY_CODE_OK);
    ck_assert_str_eq(delivered_text(&a), "x5 m9");
    ack(&a, 2);
    ck_assert_str_eq(delivered_text(&a), "x5 m9 x5");
    ck_assert_uint_eq(nth(&a, EV_DELIVER, 2)->attempt, 2);
    ack(&a, 3);
    ack(&a, 4);
    ck_assert_str_eq(delivered_text(&a), "x5 m9 x5 y5 z0");
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_a_lost_session_returns_its_messages_to_the_front_of_their_levels)
{
    struct broker *b = broker_new(NULL);
    struct fake a, c;
    fake_open(&a, b);
    fake_open(&c, b);
    publish_level(b, "q", "a5", 5);
    publish_level(b, "q", "b2", 2);
    consume(&a, "q", 1, 2);
    ck_assert_str_eq(delivered_text(&a), "a5 b2");
    publish_level(b, "q", "c5", 5);
    publish_level(b, "q", "d2", 2);
    fake_close(&a);
    consume(&c, "q", 1, 10);
    ck_assert_str_eq(delivered_text(&c), "a5 c5 b2 d2");
    ck_assert_uint_eq(nth(&c, EV_DELIVER, 0)->attempt, 2);
    ck_assert_uint_eq(nth(&c, EV_DELIVER, 1)->attempt, 1);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_get_takes_the_highest_priority)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    publish_level(b, "q", "low", 0);
    publish_level(b, "q", "high", 7);
    ck_assert_int_eq(broker_get(b, a.s, bytes("q"), 7), FERRY_CODE_OK);
    ck_assert_str_eq(delivered_text(&a), "high");
    fake_close(&a);
    broker_free(b);
}
END_TEST

static void priority_three(void *arg, struct ferry_bytes name, struct queue_settings *out)
{
    (void)arg;
    if (name.len == 1 && name.ptr[0] == 'd')
        out->priority = 3;
}

START_TEST(test_the_queue_default_priority_applies_to_messages_without_one)
{
    struct broker *b = broker_new(NULL);
    broker_set_settings_source(b, priority_three, NULL);
    struct fake a;
    fake_open(&a, b);
    publish_level(b, "d", "two", 2);
    publish(b, "d", "default");
    publish_level(b, "d", "four", 4);
    publish_level(b, "d", "three", 3);
    consume(&a, "d", 1, 10);
    ck_assert_str_eq(delivered_text(&a), "four default three two");
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_a_priority_above_the_maximum_is_refused)
{
    struct broker *b = broker_new(NULL);
    publish(b, "q", "ok");
    ck_assert_int_eq(publish_priority(b, "q", "bad", FERRY_PRIORITY_MAX + 1), FERRY_CODE_BAD_REQUEST);
    ck_assert_int_eq(publish_priority(b, "q", "bad", 255), FERRY_CODE_BAD_REQUEST);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.depth, 1);
    ck_assert_uint_eq(st.published, 1);
    ck_assert_uint_eq(broker_message_count(b), 1);
    broker_free(b);
}
END_TEST

/* Batch items with priorities from a parallel array (-1: none). */
struct priority_items {
    const char *const *payloads;
    const int *priorities;
    size_t count, next;
};

static bool next_priority_item(void *arg, struct ferry_bytes *payload, struct ferry_bytes *headers,
                               struct message_meta *meta)
{
    struct priority_items *a = arg;
    if (a->next == a->count)
        return false;
    *payload = bytes(a->payloads[a->next]);
    *headers = no_headers;
    int p = a->priorities[a->next++];
    if (p >= 0) {
        meta->has_priority = true;
        meta->priority = (uint8_t)p;
    }
    return true;
}

START_TEST(test_batch_items_take_their_own_priorities_all_or_nothing)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    const char *payloads[] = { "p1", "none", "p6", "p1b" };
    const int good[] = { 1, -1, 6, 1 };
    struct priority_items items = { payloads, good, 4, 0 };
    struct broker_items it = { &items, next_priority_item };
    ck_assert_int_eq(broker_publish_batch(b, NULL, bytes("q"), &it, NULL), FERRY_CODE_OK);

    const int bad[] = { 1, 2, 10, 3 };
    struct priority_items refused = { payloads, bad, 4, 0 };
    it.arg = &refused;
    ck_assert_int_eq(broker_publish_batch(b, NULL, bytes("q"), &it, NULL), FERRY_CODE_BAD_REQUEST);
    ck_assert_uint_eq(stats_of(b, "q").depth, 4);

    consume(&a, "q", 1, 10);
    ck_assert_str_eq(delivered_text(&a), "p6 p1 p1b none");
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_stats_count_the_depth_of_each_priority)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    publish_level(b, "q", "a", 9);
    publish_level(b, "q", "b", 4);
    publish_level(b, "q", "c", 4);
    publish(b, "q", "d");
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.depth, 4);
    ck_assert_uint_eq(st.depth_by_priority[9], 1);
    ck_assert_uint_eq(st.depth_by_priority[4], 2);
    ck_assert_uint_eq(st.depth_by_priority[0], 1);
    consume(&a, "q", 1, 2); /* takes a9 and b4 */
    st = stats_of(b, "q");
    ck_assert_uint_eq(st.depth, 2);
    ck_assert_uint_eq(st.depth_by_priority[9], 0);
    ck_assert_uint_eq(st.depth_by_priority[4], 1);
    ck_assert_uint_eq(st.inflight, 2);
    ck_assert_int_eq(broker_nack(b, a.s, 1, true), FERRY_CODE_OK); /* a9 back, out again */
    ck_assert_uint_eq(stats_of(b, "q").depth_by_priority[9], 0);
    uint64_t purged = 0;
    ck_assert_int_eq(broker_purge(b, bytes("q"), &purged), FERRY_CODE_OK);
    ck_assert_uint_eq(purged, 2);
    st = stats_of(b, "q");
    for (unsigned p = 0; p < FERRY_PRIORITY_LEVELS; p++)
        ck_assert_uint_eq(st.depth_by_priority[p], 0);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_one_priority_only_keeps_plain_fifo_across_many_messages)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    char text[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(text, sizeof text, "%d", i);
        publish_level(b, "q", text, 6);
    }
    consume(&a, "q", 1, 1000);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 1000);
    for (int i = 0; i < 1000; i++) {
        snprintf(text, sizeof text, "%d", i);
        ck_assert_str_eq(nth(&a, EV_DELIVER, (size_t)i)->text, text);
    }
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_a_delayed_durable_publish_logs_its_deliver_at_and_comes_back_waiting)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    fake_now = 1000000;
    broker_set_clock(b, &(struct broker_clock){ .now_ms = fake_clock });
    publish_at(b, "dq", "later", fake_now + 500);
    publish(b, "dq", "now");
    ck_assert_uint_eq(jnth(&j, J_PUBLISH, 0)->deliver_at, fake_now + 500);
    ck_assert_uint_eq(jnth(&j, J_PUBLISH, 1)->deliver_at, 0);
    broker_free(b);
    journal_close(&j);

    /* The restart: the one still to come waits, the one whose time passed
     * while ferryd was down is ready at once. */
    b = durable_broker(&j);
    broker_set_clock(b, &(struct broker_clock){ .now_ms = fake_clock });
    struct queue_settings s = { .durable = true };
    ck_assert_int_eq(broker_restore_queue(b, bytes("dq"), &s), FERRY_CODE_OK);
    struct message_meta wait = { .deliver_at = fake_now + 500 };
    struct message_meta past = { .deliver_at = fake_now - 1 };
    ck_assert_int_eq(broker_restore_message(b, bytes("dq"), 1, 0, &wait, no_headers, bytes("later")),
                     FERRY_CODE_OK);
    ck_assert_int_eq(broker_restore_message(b, bytes("dq"), 2, 0, &past, no_headers, bytes("past")),
                     FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "dq").delayed, 1);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "dq", 1, 10);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 1);
    assert_delivery(&a, 0, "past", 1);
    advance(b, 500);
    assert_delivery(&a, 1, "later", 1);
    fake_close(&a);
    broker_free(b);
    journal_close(&j);
}
END_TEST

/* ---- topics (fan-out) and temporary queues ---- */

static void bind_queue(struct broker *b, const char *queue, const char *pattern)
{
    ck_assert_int_eq(broker_bind(b, bytes(queue), bytes(pattern)), FERRY_CODE_OK);
}

static enum ferry_code publish_topic(struct broker *b, const char *topic, const char *payload)
{
    return broker_publish_topic(b, bytes(topic), bytes(payload), no_headers, NULL, NULL);
}

START_TEST(test_a_topic_publish_puts_one_copy_in_every_matching_queue)
{
    struct broker *b = broker_new(NULL);
    bind_queue(b, "all-orders", "orders.#");
    bind_queue(b, "eu-anything", "*.eu");
    bind_queue(b, "eu-anything", "orders.eu"); /* two matching patterns: still one copy */
    bind_queue(b, "invoices", "invoices.#");
    ck_assert_int_eq(publish_topic(b, "orders.eu", "o1"), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "all-orders").depth, 1);
    ck_assert_uint_eq(stats_of(b, "eu-anything").depth, 1);
    ck_assert_uint_eq(stats_of(b, "invoices").depth, 0);
    ck_assert_uint_eq(stats_of(b, "eu-anything").bindings, 2);

    struct fake a;
    fake_open(&a, b);
    consume(&a, "eu-anything", 1, 10);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 1);
    assert_delivery(&a, 0, "o1", 1);

    struct topic_stats ts;
    broker_topic_stats(b, &ts);
    ck_assert_uint_eq(ts.published, 1);
    ck_assert_uint_eq(ts.copies, 2);
    ck_assert_uint_eq(ts.unroutable, 0);
    ck_assert_uint_eq(ts.bindings, 4);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_a_topic_nothing_matches_is_accepted_and_counted_unroutable)
{
    struct broker *b = broker_new(NULL);
    bind_queue(b, "q", "a.b");
    ck_assert_int_eq(publish_topic(b, "a.c", "x"), FERRY_CODE_OK);
    ck_assert_int_eq(publish_topic(b, "nothing", "x"), FERRY_CODE_OK);
    struct topic_stats ts;
    broker_topic_stats(b, &ts);
    ck_assert_uint_eq(ts.published, 2);
    ck_assert_uint_eq(ts.unroutable, 2);
    ck_assert_uint_eq(stats_of(b, "q").depth, 0);
    /* A topic is not a queue: none was created. */
    ck_assert_uint_eq(broker_queue_count(b), 1);
    broker_free(b);
}
END_TEST

START_TEST(test_bad_topics_and_patterns_are_refused)
{
    struct broker *b = broker_new(NULL);
    ck_assert_int_eq(broker_bind(b, bytes("q"), bytes("a..b")), FERRY_CODE_BAD_TOPIC);
    ck_assert_int_eq(broker_bind(b, bytes("q"), bytes("a*")), FERRY_CODE_BAD_TOPIC);
    ck_assert_int_eq(broker_bind(b, bytes("bad name"), bytes("a")), FERRY_CODE_BAD_NAME);
    ck_assert_int_eq(publish_topic(b, "a.*", "x"), FERRY_CODE_BAD_TOPIC);
    ck_assert_int_eq(publish_topic(b, "", "x"), FERRY_CODE_BAD_TOPIC);
    ck_assert_int_eq(broker_unbind(b, bytes("q"), bytes("a")), FERRY_CODE_NOT_FOUND);
    bind_queue(b, "q", "a");
    ck_assert_int_eq(broker_unbind(b, bytes("q"), bytes("b")), FERRY_CODE_NOT_FOUND);
    ck_assert_int_eq(broker_unbind(b, bytes("q"), bytes("a")), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "q").bindings, 0);
    ck_assert_int_eq(publish_topic(b, "a", "x"), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "q").depth, 0);
    broker_free(b);
}
END_TEST

START_TEST(test_bindings_per_queue_are_bounded)
{
    struct broker *b = broker_new(NULL);
    char p[32];
    for (unsigned i = 0; i < BROKER_BINDINGS_PER_QUEUE_MAX; i++) {
        snprintf(p, sizeof p, "k%u.#", i);
        bind_queue(b, "q", p);
    }
    ck_assert_int_eq(broker_bind(b, bytes("q"), bytes("one.more")), FERRY_CODE_LIMIT);
    bind_queue(b, "q", "k7.#"); /* an existing one is no new binding... */
    ck_assert_int_eq(broker_bind(b, bytes("r"), bytes("one.more")), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "q").bindings, BROKER_BINDINGS_PER_QUEUE_MAX);
    broker_free(b);
}
END_TEST

START_TEST(test_bindings_in_all_are_bounded)
{
    struct broker *b = broker_new(NULL);
    char q[32], p[32];
    unsigned queues = (BROKER_BINDINGS_MAX + BROKER_BINDINGS_PER_QUEUE_MAX - 1) /
                      BROKER_BINDINGS_PER_QUEUE_MAX;
    unsigned made = 0;
    for (unsigned i = 0; i < queues; i++) {
        snprintf(q, sizeof q, "q%u", i);
        for (unsigned k = 0; k < BROKER_BINDINGS_PER_QUEUE_MAX && made < BROKER_BINDINGS_MAX; k++) {
            snprintf(p, sizeof p, "w%u.k%u", i, k);
            ck_assert_int_eq(broker_bind(b, bytes(q), bytes(p)), FERRY_CODE_OK);
            made++;
        }
    }
    ck_assert_int_eq(broker_bind(b, bytes("extra"), bytes("x")), FERRY_CODE_LIMIT);
    struct topic_stats ts;
    broker_topic_stats(b, &ts);
    ck_assert_uint_eq(ts.bindings, BROKER_BINDINGS_MAX);
    ck_assert_int_eq(broker_unbind(b, bytes("q0"), bytes("w0.k0")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_bind(b, bytes("extra"), bytes("x")), FERRY_CODE_OK);
    ck_assert_int_eq(publish_topic(b, "w3.k7", "m"), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "q3").depth, 1);
    broker_free(b);
}
END_TEST

START_TEST(test_an_ended_bound_queue_is_skipped_and_the_others_get_the_copy)
{
    struct broker *b = broker_new(NULL);
    bind_queue(b, "a", "t");
    bind_queue(b, "b", "t");
    bind_queue(b, "c", "t");
    ck_assert_int_eq(broker_end(b, bytes("b")), FERRY_CODE_OK);
    ck_assert_int_eq(publish_topic(b, "t", "x"), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "a").depth, 1);
    ck_assert_uint_eq(stats_of(b, "b").depth, 0);
    ck_assert_uint_eq(stats_of(b, "c").depth, 1);
    struct topic_stats ts;
    broker_topic_stats(b, &ts);
    ck_assert_uint_eq(ts.copies, 2);
    ck_assert_uint_eq(ts.skipped, 1);
    broker_free(b);
}
END_TEST

/* Gives an existing queue a bound of `max` messages and a policy. */
static void bound_queue(struct broker *b, const char *queue, uint64_t max,
                        enum queue_overflow overflow)
{
    struct queue_settings s;
    ck_assert_int_eq(broker_queue_settings(b, bytes(queue), &s), FERRY_CODE_OK);
    s.max_length = max;
    s.overflow = overflow;
    ck_assert_int_eq(broker_configure_queue(b, bytes(queue), &s), FERRY_CODE_OK);
}

START_TEST(test_a_full_bound_queue_follows_its_policy_and_holds_up_no_other)
{
    struct broker *b = broker_new(NULL);
    struct fake producer;
    fake_open(&producer, b);
    const char *names[] = { "plain", "rejecting", "dropping", "blocking" };
    for (size_t i = 0; i < 4; i++)
        bind_queue(b, names[i], "t.#");
    bound_queue(b, "rejecting", 2, QUEUE_OVERFLOW_REJECT);
    bound_queue(b, "dropping", 2, QUEUE_OVERFLOW_DROP_OLDEST);
    bound_queue(b, "blocking", 2, QUEUE_OVERFLOW_BLOCK);
    char text[16];
    for (int i = 0; i < 10; i++) {
        snprintf(text, sizeof text, "m%d", i);
        ck_assert_int_eq(broker_publish_topic(b, bytes("t.x"), bytes(text), no_headers, NULL, NULL),
                         FERRY_CODE_OK);
    }
    ck_assert_uint_eq(stats_of(b, "plain").depth, 10);
    ck_assert_uint_eq(stats_of(b, "rejecting").depth, 2);
    ck_assert_uint_eq(stats_of(b, "rejecting").rejected, 8);
    ck_assert_uint_eq(stats_of(b, "dropping").depth, 2);
    ck_assert_uint_eq(stats_of(b, "dropping").dropped_oldest, 8);
    /* block is reject for a copy: nobody waits, nobody is parked. */
    ck_assert_uint_eq(stats_of(b, "blocking").depth, 2);
    ck_assert_uint_eq(stats_of(b, "blocking").blocked, 0);
    ck_assert_uint_eq(stats_of(b, "blocking").rejected, 8);
    ck_assert(!broker_session_parked(producer.s));
    struct topic_stats ts;
    broker_topic_stats(b, &ts);
    ck_assert_uint_eq(ts.copies, 10 + 2 + 10 + 2);
    ck_assert_uint_eq(ts.skipped, 16);
    /* Which ones each kept: the first two, the last two. */
    struct fake a;
    fake_open(&a, b);
    consume(&a, "rejecting", 1, 10);
    consume(&a, "dropping", 2, 10);
    assert_delivery(&a, 0, "m0", 1);
    assert_delivery(&a, 1, "m1", 1);
    assert_delivery(&a, 2, "m8", 1);
    assert_delivery(&a, 3, "m9", 1);
    fake_close(&a);
    fake_close(&producer);
    broker_free(b);
}
END_TEST

START_TEST(test_a_deleted_queue_loses_its_bindings)
{
    struct broker *b = broker_new(NULL);
    bind_queue(b, "gone", "t.#");
    bind_queue(b, "stays", "t.*");
    ck_assert_int_eq(broker_delete(b, bytes("gone")), FERRY_CODE_OK);
    ck_assert_int_eq(publish_topic(b, "t.x", "m"), FERRY_CODE_OK);
    ck_assert_uint_eq(broker_queue_count(b), 1); /* not created again */
    ck_assert_uint_eq(stats_of(b, "stays").depth, 1);
    struct topic_stats ts;
    broker_topic_stats(b, &ts);
    ck_assert_uint_eq(ts.bindings, 1);
    broker_free(b);
}
END_TEST

START_TEST(test_a_topic_publish_logs_one_record_per_durable_bound_queue)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    bind_queue(b, "d1", "e.#");
    bind_queue(b, "d2", "e.*");
    bind_queue(b, "mem", "#");
    uint64_t lsn = 0;
    ck_assert_int_eq(broker_publish_topic(b, bytes("e.x"), bytes("m"), no_headers, NULL, &lsn),
                     FERRY_CODE_OK);
    ck_assert_uint_eq(jcount(&j, J_PUBLISH), 2);
    ck_assert_uint_ne(lsn, 0);
    ck_assert_uint_eq(stats_of(b, "mem").depth, 1);
    /* A durable copy the journal refuses makes the publish fail with its
     * code; the other copies are queued all the same. */
    j.refuse_publish_at = j.publishes + 1;
    ck_assert_int_eq(broker_publish_topic(b, bytes("e.y"), bytes("n"), no_headers, NULL, &lsn),
                     FERRY_CODE_STORAGE);
    ck_assert_uint_eq(stats_of(b, "d1").depth + stats_of(b, "d2").depth, 3);
    ck_assert_uint_eq(stats_of(b, "mem").depth, 2);
    broker_free(b);
    journal_close(&j);
}
END_TEST

START_TEST(test_a_temporary_queue_is_named_by_the_broker_when_asked)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    struct ferry_bytes n1, n2;
    ck_assert_int_eq(broker_declare_temp(b, a.s, no_headers, &n1), FERRY_CODE_OK);
    ck_assert(n1.len > 4 && memcmp(n1.ptr, "tmp.", 4) == 0);
    char first[64];
    copy_text(first, sizeof first, n1);
    /* A queue already called like the next name (another session's
     * temporary queue) is passed over. */
    struct fake other;
    fake_open(&other, b);
    ck_assert_int_eq(broker_declare_temp(b, other.s, bytes("tmp.2"), &n2), FERRY_CODE_OK);
    ck_assert_int_eq(broker_declare_temp(b, a.s, no_headers, &n2), FERRY_CODE_OK);
    char second[64];
    copy_text(second, sizeof second, n2);
    ck_assert_str_ne(first, second);
    ck_assert_str_ne(second, "tmp.2");
    ck_assert_uint_eq(broker_queue_count(b), 3);
    fake_close(&a);
    ck_assert_uint_eq(broker_queue_count(b), 1);
    fake_close(&other);
    ck_assert_uint_eq(broker_queue_count(b), 0);
    broker_free(b);
}
END_TEST

START_TEST(test_a_temporary_queue_is_its_sessions_alone_but_anyone_may_publish_to_it)
{
    struct broker *b = broker_new(NULL);
    struct fake owner, other;
    fake_open(&owner, b);
    fake_open(&other, b);
    struct ferry_bytes name;
    ck_assert_int_eq(broker_declare_temp(b, owner.s, bytes("replies"), &name), FERRY_CODE_OK);
    ck_assert_int_eq(broker_check_access(b, owner.s, bytes("replies")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_check_access(b, other.s, bytes("replies")), FERRY_CODE_EXCLUSIVE);
    ck_assert_int_eq(broker_check_access(b, other.s, bytes("no-such")), FERRY_CODE_OK);
    /* Declared again by its owner: the same queue; by another: refused. */
    ck_assert_int_eq(broker_declare_temp(b, owner.s, bytes("replies"), &name), FERRY_CODE_OK);
    ck_assert_int_eq(broker_declare_temp(b, other.s, bytes("replies"), &name), FERRY_CODE_EXCLUSIVE);
    /* An ordinary queue cannot be made temporary. */
    publish(b, "plain", "x");
    ck_assert_int_eq(broker_declare_temp(b, owner.s, bytes("plain"), &name), FERRY_CODE_EXCLUSIVE);
    publish(b, "replies", "r1");
    consume(&owner, "replies", 1, 10);
    ck_assert_uint_eq(count_of(&owner, EV_DELIVER), 1);
    fake_close(&other);
    fake_close(&owner);
    broker_free(b);
}
END_TEST

START_TEST(test_a_name_configured_durable_cannot_be_taken_by_a_temporary_queue)
{
    struct broker *b = broker_new(NULL);
    broker_set_settings_source(b, durable_names, NULL); /* "d...": durable */
    struct fake owner;
    fake_open(&owner, b);
    struct ferry_bytes name;
    /* Not made yet, but its publishes are to be durable: a temporary queue
     * (in memory, gone with its connection) must not take the name. */
    ck_assert_int_eq(broker_declare_temp(b, owner.s, bytes("durable-jobs"), &name),
                     FERRY_CODE_EXCLUSIVE);
    ck_assert_uint_eq(broker_queue_count(b), 0);
    ck_assert_int_eq(broker_declare_temp(b, owner.s, bytes("replies"), &name), FERRY_CODE_OK);
    fake_close(&owner);
    broker_free(b);
}
END_TEST

START_TEST(test_a_temporary_queue_goes_with_its_session_messages_and_bindings_included)
{
    struct broker *b = broker_new(NULL);
    struct fake a, watcher;
    fake_open(&a, b);
    fake_open(&watcher, b);
    struct ferry_bytes name;
    ck_assert_int_eq(broker_declare_temp(b, a.s, bytes("mine"), &name), FERRY_CODE_OK);
    bind_queue(b, "mine", "news.#");
    ck_assert_int_eq(publish_topic(b, "news.today", "n1"), FERRY_CODE_OK);
    ck_assert_int_eq(publish_topic(b, "news.today", "n2"), FERRY_CODE_OK);
    consume(&a, "mine", 1, 1); /* one in flight, one ready */
    ck_assert_int_eq(broker_join(b, watcher.s, bytes("mine"), 9), FERRY_CODE_OK);
    fake_close(&a);
    ck_assert_int_eq(broker_queue_stats(b, bytes("mine"), &(struct queue_stats){ 0 }),
                     FERRY_CODE_NOT_FOUND);
    ck_assert_uint_eq(broker_message_count(b), 0);
    struct topic_stats ts;
    broker_topic_stats(b, &ts);
    ck_assert_uint_eq(ts.bindings, 0);
    /* A JOIN on it from elsewhere is answered: the queue is gone. */
    ck_assert_uint_eq(count_of(&watcher, EV_JOIN_DONE), 1);
    ck_assert_int_eq(nth(&watcher, EV_JOIN_DONE, 0)->code, FERRY_CODE_NOT_FOUND);
    ck_assert_int_eq(publish_topic(b, "news.today", "n3"), FERRY_CODE_OK);
    ck_assert_uint_eq(broker_queue_count(b), 0);
    fake_close(&watcher);
    broker_free(b);
}
END_TEST

START_TEST(test_a_dead_letter_refused_waits_without_rewriting_the_log_a_nack_delay_is_kept)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j); /* names starting with 'd' are durable */
    struct queue_settings s = { .durable = true, .fsync = QUEUE_FSYNC_ALWAYS, .max_attempts = 2 };
    snprintf(s.dead_letter, sizeof s.dead_letter, "dz");
    ck_assert_int_eq(broker_declare(b, bytes("dq")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_configure_queue(b, bytes("dq"), &s), FERRY_CODE_OK);
    ck_assert_int_eq(broker_declare(b, bytes("dz")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_end(b, bytes("dz")), FERRY_CODE_OK); /* refuses dead letters */
    publish(b, "dq", "x");
    struct fake f;
    fake_open(&f, b);
    consume(&f, "dq", 1, 10);
    /* A nack's wait is logged: it holds across a restart. */
    ck_assert_int_eq(broker_nack_delay(b, f.s, nth(&f, EV_DELIVER, 0)->tag, 60000), FERRY_CODE_OK);
    ck_assert_uint_eq(jcount(&j, J_REWRITE), 1);
    ck_assert_uint_eq(stats_of(b, "dq").delayed, 1);
    ck_assert_int_eq(broker_cancel(b, f.s, 1), FERRY_CODE_OK);
    ck_assert_int_eq(broker_purge(b, bytes("dq"), NULL), FERRY_CODE_OK);
    /* Used up, refused by its dead-letter queue: it waits, unlogged. */
    publish(b, "dq", "y");
    consume(&f, "dq", 2, 10);
    ck_assert_int_eq(broker_nack(b, f.s, nth(&f, EV_DELIVER, 1)->tag, true), FERRY_CODE_OK);
    ck_assert_int_eq(broker_nack(b, f.s, nth(&f, EV_DELIVER, 2)->tag, true), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "dq").delayed, 1);
    ck_assert_uint_eq(stats_of(b, "dq").dead_lettered, 0);
    ck_assert_uint_eq(jcount(&j, J_REWRITE), 1);
    fake_close(&f);
    broker_free(b);
    journal_close(&j);
}
END_TEST

START_TEST(test_a_temporary_queue_stays_in_memory_whatever_the_conf_says)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j); /* names starting with 'd' are durable */
    struct fake a;
    fake_open(&a, b);
    struct ferry_bytes name;
    /* A name the conf makes durable is refused (the next test); a
     * temporary queue the conf makes durable later stays in memory. */
    ck_assert_int_eq(broker_declare_temp(b, a.s, bytes("temp"), &name), FERRY_CODE_OK);
    publish(b, "temp", "x");
    ck_assert_uint_eq(jcount(&j, J_PUBLISH), 0);
    ck_assert_uint_eq(jcount(&j, J_DECLARE), 0);
    struct queue_settings s = { .durable = true, .fsync = QUEUE_FSYNC_ALWAYS };
    ck_assert_int_eq(broker_configure_queue(b, bytes("temp"), &s), FERRY_CODE_OK);
    publish(b, "temp", "y");
    ck_assert_uint_eq(jcount(&j, J_PUBLISH), 0);
    fake_close(&a);
    ck_assert_uint_eq(jcount(&j, J_DELETE), 0);
    broker_free(b);
    journal_close(&j);
}
END_TEST

START_TEST(test_only_declare_temp_makes_a_queue_with_a_tmp_name)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    /* A reply to a requester that is gone creates nothing. */
    ck_assert_int_eq(broker_publish(b, NULL, bytes("tmp.7"), bytes("late"), no_headers, NULL, NULL),
                     FERRY_CODE_NOT_FOUND);
    ck_assert_int_eq(broker_consume(b, a.s, bytes("tmp.7"), 1, 1), FERRY_CODE_NOT_FOUND);
    ck_assert_int_eq(broker_declare(b, bytes("tmp.7")), FERRY_CODE_NOT_FOUND);
    ck_assert_int_eq(broker_bind(b, bytes("tmp.7"), bytes("x")), FERRY_CODE_NOT_FOUND);
    ck_assert_uint_eq(broker_queue_count(b), 0);
    /* Declared temporary, it takes publishes like any queue. */
    struct ferry_bytes name;
    ck_assert_int_eq(broker_declare_temp(b, a.s, bytes("tmp.7"), &name), FERRY_CODE_OK);
    ck_assert_int_eq(broker_publish(b, NULL, bytes("tmp.7"), bytes("in"), no_headers, NULL, NULL),
                     FERRY_CODE_OK);
    /* "tmpfoo" and "x.tmp.y" are ordinary names. */
    publish(b, "tmpfoo", "x");
    publish(b, "x.tmp.y", "x");
    fake_close(&a);
    ck_assert_uint_eq(broker_queue_count(b), 2);
    broker_free(b);
}
END_TEST

START_TEST(test_temporary_queues_per_session_are_bounded)
{
    struct broker *b = broker_new(NULL);
    struct fake a;
    fake_open(&a, b);
    struct ferry_bytes name;
    for (unsigned i = 0; i < BROKER_TEMP_QUEUES_PER_SESSION_MAX; i++)
        ck_assert_int_eq(broker_declare_temp(b, a.s, no_headers, &name), FERRY_CODE_OK);
    ck_assert_int_eq(broker_declare_temp(b, a.s, no_headers, &name), FERRY_CODE_LIMIT);
    /* Deleting one makes room. */
    ck_assert_int_eq(broker_delete(b, bytes("tmp.1")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_declare_temp(b, a.s, no_headers, &name), FERRY_CODE_OK);
    fake_close(&a);
    ck_assert_uint_eq(broker_queue_count(b), 0);
    broker_free(b);
}
END_TEST


/* ---- expiry: the fake clock of "time" ---- */

static enum ferry_code publish_ttl(struct broker *b, const char *queue, const char *payload,
                                   uint64_t ttl_ms)
{
    struct message_meta meta = { .ttl_ms = ttl_ms };
    return broker_publish(b, NULL, bytes(queue), bytes(payload), no_headers, &meta, NULL);
}

static void publish_expiring(struct broker *b, const char *queue, const char *payload,
                             uint64_t ttl_ms)
{
    ck_assert_int_eq(publish_ttl(b, queue, payload, ttl_ms), FERRY_CODE_OK);
}

START_TEST(test_an_expired_message_is_never_delivered_and_is_counted)
{
    struct broker *b = timed_broker();
    struct fake a;
    fake_open(&a, b);
    publish_expiring(b, "q", "brief", 100);
    publish(b, "q", "lasting");
    publish_expiring(b, "q", "longer", 101);
    fake_now += 100; /* no advance: the check on the way to a consumer alone */
    consume(&a, "q", 1, 10);
    ck_assert_str_eq(delivered_text(&a), "lasting longer");
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.expired, 1);
    ck_assert_uint_eq(st.delivered, 2);
    ck_assert_uint_eq(st.depth, 0);
    ck_assert_uint_eq(st.bytes, strlen("lasting") + strlen("longer"));
    ck_assert_uint_eq(broker_message_count(b), 2);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_a_get_skips_expired_messages)
{
    struct broker *b = timed_broker();
    struct fake a;
    fake_open(&a, b);
    publish_expiring(b, "q", "old", 50);
    publish_expiring(b, "q", "fresh", 500);
    fake_now += 60;
    ck_assert_int_eq(broker_get(b, a.s, bytes("q"), 7), FERRY_CODE_OK);
    ck_assert_str_eq(delivered_text(&a), "fresh");
    ck_assert_uint_eq(stats_of(b, "q").expired, 1);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_the_sweep_keeps_depth_and_bytes_right_without_a_consumer)
{
    struct broker *b = timed_broker();
    publish_expiring(b, "q", "a", 100);
    publish_expiring(b, "q", "b", 100);
    publish(b, "q", "keep");
    publish_expiring(b, "r", "c", 400);
    ck_assert_uint_eq(broker_next_due(b), 0); /* a first sweep is due */
    advance(b, 99);
    ck_assert_uint_eq(stats_of(b, "q").depth, 3);
    ck_assert_uint_le(broker_next_due(b), fake_now + EXPIRY_SWEEP_MS);
    advance(b, EXPIRY_SWEEP_MS);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.depth, 1);
    ck_assert_uint_eq(st.expired, 2);
    ck_assert_uint_eq(st.bytes, strlen("keep"));
    ck_assert_uint_eq(stats_of(b, "r").depth, 1);
    advance(b, EXPIRY_SWEEP_MS);
    ck_assert_uint_eq(stats_of(b, "r").depth, 0);
    ck_assert_uint_eq(stats_of(b, "r").expired, 1);
    ck_assert_uint_eq(broker_message_count(b), 1);
    /* Nothing with an expiry is held: no sweep is due any more. */
    ck_assert_uint_eq(broker_next_due(b), UINT64_MAX);
    broker_free(b);
}
END_TEST

START_TEST(test_the_sweep_finds_expired_messages_behind_a_lasting_one)
{
    struct broker *b = timed_broker();
    publish_expiring(b, "q", "lasting", 100000);
    for (int i = 0; i < 5; i++)
        publish_expiring(b, "q", "brief", 100);
    publish_level(b, "q", "other-level", 3);
    advance(b, 100);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.expired, 5);
    ck_assert_uint_eq(st.depth, 2);
    broker_free(b);
}
END_TEST

START_TEST(test_the_sweep_looks_at_a_bounded_number_of_messages_each_time)
{
    struct broker *b = timed_broker();
    const uint64_t total = 2 * EXPIRY_SWEEP_BUDGET + 10;
    for (uint64_t i = 0; i < total; i++)
        publish_expiring(b, "q", "m", 100);
    advance(b, 100);
    ck_assert_uint_eq(stats_of(b, "q").expired, EXPIRY_SWEEP_BUDGET);
    ck_assert_uint_eq(stats_of(b, "q").depth, total - EXPIRY_SWEEP_BUDGET);
    advance(b, EXPIRY_SWEEP_MS);
    ck_assert_uint_eq(stats_of(b, "q").expired, 2 * EXPIRY_SWEEP_BUDGET);
    advance(b, EXPIRY_SWEEP_MS);
    ck_assert_uint_eq(stats_of(b, "q").expired, total);
    ck_assert_uint_eq(stats_of(b, "q").depth, 0);
    broker_free(b);
}
END_TEST

START_TEST(test_a_new_ttl_alone_is_put_in_force_on_an_existing_queue)
{
    /* A reload that changes nothing but a queue's ttl. */
    struct broker *b = timed_broker();
    ck_assert_int_eq(broker_declare(b, bytes("q")), FERRY_CODE_OK);
    struct queue_settings s;
    ck_assert_int_eq(broker_queue_settings(b, bytes("q"), &s), FERRY_CODE_OK);
    s.ttl_ms = 100;
    ck_assert_int_eq(broker_configure_queue(b, bytes("q"), &s), FERRY_CODE_OK);
    ck_assert_int_eq(broker_queue_settings(b, bytes("q"), &s), FERRY_CODE_OK);
    ck_assert_uint_eq(s.ttl_ms, 100);
    publish(b, "q", "brief");
    advance(b, 100);
    ck_assert_uint_eq(stats_of(b, "q").expired, 1);
    broker_free(b);
}
END_TEST

START_TEST(test_a_sweep_walks_a_bounded_part_of_a_map_of_many_queues)
{
    /* 9,000 queues take a map of 32,768 slots, twice what one sweep may
     * look at: the first sweep finds some of the expired messages, the
     * second the rest. */
    struct broker *b = timed_broker();
    const uint64_t queues = 9000;
    for (uint64_t i = 0; i < queues; i++) {
        char name[32];
        snprintf(name, sizeof name, "e-%llu", (unsigned long long)i);
        publish_expiring(b, name, "m", 100);
    }
    advance(b, 100);
    uint64_t left = broker_message_count(b);
    ck_assert_msg(left > 0 && left < queues, "%llu left after one sweep",
                  (unsigned long long)left);
    advance(b, EXPIRY_SWEEP_MS);
    ck_assert_uint_eq(broker_message_count(b), 0);
    broker_free(b);
}
END_TEST

/* Queues named "t..." have a ttl of 1 s. */
static void ttl_names(void *arg, struct ferry_bytes name, struct queue_settings *out)
{
    (void)arg;
    if (name.len > 0 && name.ptr[0] == 't')
        out->ttl_ms = 1000;
}

START_TEST(test_the_shorter_of_the_queue_ttl_and_the_message_ttl_applies)
{
    struct broker *b = timed_broker();
    broker_set_settings_source(b, ttl_names, NULL);
    publish_expiring(b, "t", "own-500", 500);
    publish_expiring(b, "t", "own-5000", 5000);
    publish(b, "t", "none");
    publish_expiring(b, "plain", "own-5000", 5000);
    publish(b, "plain", "none");
    fake_now += 500;
    broker_advance(b);
    ck_assert_uint_eq(stats_of(b, "t").expired, 1);
    fake_now += 499;
    broker_advance(b);
    ck_assert_uint_eq(stats_of(b, "t").depth, 2);
    advance(b, EXPIRY_SWEEP_MS); /* the next sweep, past 1 s */
    ck_assert_uint_eq(stats_of(b, "t").expired, 3); /* the queue's 1 s caps the 5 s */
    ck_assert_uint_eq(stats_of(b, "t").depth, 0);
    fake_now += 4000;
    broker_advance(b);
    ck_assert_uint_eq(stats_of(b, "plain").expired, 1);
    ck_assert_uint_eq(stats_of(b, "plain").depth, 1);
    broker_free(b);
}
END_TEST

START_TEST(test_a_message_in_flight_does_not_expire_but_does_once_requeued)
{
    struct broker *b = timed_broker();
    struct fake a;
    fake_open(&a, b);
    publish_expiring(b, "q", "x", 100);
    consume(&a, "q", 1, 1);
    ck_assert_str_eq(delivered_text(&a), "x");
    advance(b, 1000);
    ck_assert_uint_eq(stats_of(b, "q").inflight, 1);
    ck_assert_uint_eq(stats_of(b, "q").expired, 0);
    ck_assert_int_eq(broker_nack(b, a.s, 1, true), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 1);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.expired, 1);
    ck_assert_uint_eq(st.inflight + st.depth, 0);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_a_delayed_message_lives_from_its_deliver_at)
{
    struct broker *b = timed_broker();
    struct fake a;
    fake_open(&a, b);
    consume(&a, "q", 1, 10);
    struct message_meta meta = { .deliver_at = fake_now + 1000, .ttl_ms = 500 };
    ck_assert_int_eq(broker_publish(b, NULL, bytes("q"), bytes("later"), no_headers, &meta, NULL),
                     FERRY_CODE_OK);
    meta = (struct message_meta){ .deliver_at = fake_now + 1000, .ttl_ms = 500 };
    ck_assert_int_eq(broker_publish(b, NULL, bytes("r"), bytes("unseen"), no_headers, &meta, NULL),
                     FERRY_CODE_OK);
    advance(b, 1000);
    ck_assert_str_eq(delivered_text(&a), "later");
    advance(b, 500);
    ck_assert_uint_eq(stats_of(b, "r").expired, 1);
    fake_close(&a);
    broker_free(b);
}
END_TEST

START_TEST(test_an_ended_queue_emptied_by_expiry_ends_its_stream)
{
    struct broker *b = timed_broker();
    struct fake a, c;
    fake_open(&a, b);
    fake_open(&c, b);
    publish_expiring(b, "q", "x", 100);
    publish_expiring(b, "r", "y", 100);
    ck_assert_int_eq(broker_end(b, bytes("q")), FERRY_CODE_OK);
    ck_assert_int_eq(broker_end(b, bytes("r")), FERRY_CODE_OK);
    fake_now += 100;
    consume(&a, "q", 1, 1); /* found expired on the way to a */
    ck_assert_uint_eq(count_of(&a, EV_DELIVER), 0);
    ck_assert_uint_eq(count_of(&a, EV_EOS), 1);
    ck_assert_int_eq(broker_join(b, c.s, bytes("r"), 5), FERRY_CODE_OK);
    broker_advance(b); /* found expired by the sweep */
    ck_assert_uint_eq(count_of(&c, EV_JOIN_DONE), 1);
    ck_assert_uint_eq(stats_of(b, "r").expired, 1);
    fake_close(&a);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_durable_messages_log_the_priority_and_expiry_they_got)
{
    struct fake_journal j;
    struct broker *b = durable_broker(&j);
    fake_now = 1000000;
    broker_set_clock(b, &(struct broker_clock){ .now_ms = fake_clock });
    struct message_meta meta = { .has_priority = true, .priority = 7, .ttl_ms = 500 };
    ck_assert_int_eq(broker_publish(b, NULL, bytes("dq"), bytes("a"), no_headers, &meta, NULL),
                     FERRY_CODE_OK);
    publish(b, "dq", "plain");
    ck_assert_int_eq(jnth(&j, J_PUBLISH, 0)->meta.priority, 7);
    ck_assert_uint_eq(jnth(&j, J_PUBLISH, 0)->meta.expires_at, fake_now + 500);
    ck_assert_uint_eq(jnth(&j, J_PUBLISH, 0)->meta.ttl_ms, 0);
    ck_assert_int_eq(jnth(&j, J_PUBLISH, 1)->meta.priority, 0);
    ck_assert_uint_eq(jnth(&j, J_PUBLISH, 1)->meta.expires_at, 0);
    broker_free(b);
    journal_close(&j);

    /* The restart: priorities as they were, the expired one never delivered. */
    b = durable_broker(&j);
    broker_set_clock(b, &(struct broker_clock){ .now_ms = fake_clock });
    struct queue_settings s = { .durable = true, .priority = 5 };
    ck_assert_int_eq(broker_restore_queue(b, bytes("dq"), &s), FERRY_CODE_OK);
    struct message_meta low = { .has_priority = true, .priority = 1 };
    struct message_meta high = { .has_priority = true, .priority = 8 };
    struct message_meta gone = { .has_priority = true, .expires_at = fake_now - 1 };
    struct message_meta lives = { .has_priority = true, .expires_at = fake_now + 1 };
    ck_assert_int_eq(broker_restore_message(b, bytes("dq"), 1, 0, &low, no_headers, bytes("low")),
                     FERRY_CODE_OK);
    ck_assert_int_eq(broker_restore_message(b, bytes("dq"), 2, 0, &gone, no_headers, bytes("gone")),
                     FERRY_CODE_OK);
    ck_assert_int_eq(broker_restore_message(b, bytes("dq"), 3, 1, &high, no_headers, bytes("high")),
                     FERRY_CODE_OK);
    ck_assert_int_eq(broker_restore_message(b, bytes("dq"), 4, 0, &lives, no_headers, bytes("lives")),
                     FERRY_CODE_OK);
    struct fake a;
    fake_open(&a, b);
    consume(&a, "dq", 1, 10);
    ck_assert_str_eq(delivered_text(&a), "high low lives");
    ck_assert_uint_eq(stats_of(b, "dq").expired, 1);
    ck_assert_uint_eq(jcount(&j, J_SETTLE), 1); /* the expired one left the journal */
    fake_close(&a);
    broker_free(b);
    journal_close(&j);
}
END_TEST

static Suite *broker_suite(void)
{
    Suite *s = suite_create("broker");
    TCase *basics = tcase_create("publish and consume");
    tcase_add_test(basics, test_publish_then_consume_delivers_in_fifo_order);
    tcase_add_test(basics, test_publish_to_a_subscribed_queue_delivers_at_once);
    tcase_add_test(basics, test_headers_are_delivered_with_the_payload);
    tcase_add_test(basics, test_deliveries_go_round_robin_across_consumers);
    tcase_add_test(basics, test_consumers_without_room_are_passed_over);
    tcase_add_test(basics, test_credit_window_is_respected_and_reopened_by_ack);
    tcase_add_test(basics, test_credit_widens_the_window);
    tcase_add_test(basics, test_consume_with_bad_values_is_refused);
    tcase_add_test(basics, test_publish_with_a_bad_name_is_refused);
    suite_add_tcase(s, basics);

    TCase *acks = tcase_create("acknowledgement");
    tcase_add_test(acks, test_ack_of_an_unknown_tag_is_refused);
    tcase_add_test(acks, test_ack_of_the_same_tag_twice_is_refused);
    tcase_add_test(acks, test_ack_of_another_sessions_tag_is_refused);
    tcase_add_test(acks, test_nack_with_requeue_redelivers_first_with_attempt_2);
    tcase_add_test(acks, test_nack_without_requeue_drops_and_counts_dropped);
    tcase_add_test(acks, test_session_free_returns_in_flight_messages_to_the_front_in_publish_order);
    tcase_add_test(acks, test_session_free_redelivers_to_another_consumer_at_once);
    tcase_add_test(acks, test_cancel_keeps_in_flight_messages_ackable);
    tcase_add_test(acks, test_session_free_with_a_cancelled_subscriptions_messages_redelivers_them);
    suite_add_tcase(s, acks);

    TCase *get = tcase_create("get");
    tcase_add_test(get, test_get_delivers_a_ready_message_at_once);
    tcase_add_test(get, test_get_waits_for_the_next_publish);
    tcase_add_test(get, test_get_cancel_withdraws_a_waiting_get);
    tcase_add_test(get, test_get_with_a_rid_in_use_or_zero_is_refused);
    tcase_add_test(get, test_get_is_served_round_robin_with_subscriptions);
    tcase_add_test(get, test_get_on_an_ended_drained_queue_answers_ended);
    tcase_add_test(get, test_waiting_get_is_answered_ended_when_the_queue_drains);
    suite_add_tcase(s, get);

    TCase *eos = tcase_create("end and join");
    tcase_add_test(eos, test_eos_comes_after_end_once_all_messages_are_acked);
    tcase_add_test(eos, test_eos_waits_for_requeued_messages);
    tcase_add_test(eos, test_publish_to_an_ended_queue_is_refused);
    tcase_add_test(eos, test_late_subscriber_of_an_ended_drained_queue_gets_eos_at_once);
    tcase_add_test(eos, test_reopen_clears_the_end);
    tcase_add_test(eos, test_join_completes_at_once_when_nothing_is_pending);
    tcase_add_test(eos, test_join_completes_only_after_the_last_prior_message_is_settled);
    tcase_add_test(eos, test_join_ignores_messages_published_after_it);
    tcase_add_test(eos, test_session_free_cancels_gets_and_joins_silently);
    suite_add_tcase(s, eos);

    TCase *admin = tcase_create("administration");
    tcase_add_test(admin, test_delete_keeps_in_flight_messages_ackable);
    tcase_add_test(admin, test_delete_sends_eos_and_fails_joins_and_gets);
    tcase_add_test(admin, test_delete_of_an_ended_drained_queue_sends_no_second_eos);
    tcase_add_test(admin, test_a_new_queue_may_take_a_deleted_queues_name);
    tcase_add_test(admin, test_requeue_of_a_deleted_queues_message_drops_it);
    tcase_add_test(admin, test_purge_drops_ready_messages_only);
    tcase_add_test(admin, test_purge_settles_for_join_and_eos);
    tcase_add_test(admin, test_unwritable_session_is_skipped_until_writable_again);
    tcase_add_test(admin, test_session_made_unwritable_by_its_deliver_callback_gets_no_more);
    tcase_add_test(admin, test_throttling_inside_a_broadcast_still_ends_every_subscription_once);
    tcase_add_test(admin, test_throttling_inside_delete_ends_every_subscription);
    tcase_add_test(admin, test_max_queues_is_enforced);
    tcase_add_test(admin, test_limits_changed_live_apply_to_what_comes_next);
    tcase_add_test(admin, test_max_consumers_per_queue_is_enforced);
    tcase_add_test(admin, test_stats_count_every_step);
    tcase_add_test(admin, test_many_queues_are_found_again_after_deletes);
    tcase_add_test(admin, test_many_subscriptions_of_one_session_are_found_again);
    suite_add_tcase(s, admin);

    TCase *journal = tcase_create("journal");
    tcase_add_test(journal, test_durable_publish_is_logged_before_it_is_queued_and_waits_for_its_lsn);
    tcase_add_test(journal, test_in_memory_publish_is_not_logged_and_is_confirmed_at_once);
    tcase_add_test(journal, test_a_refused_publish_is_not_queued);
    tcase_add_test(journal, test_a_batch_refused_half_way_queues_nothing_and_settles_what_it_logged);
    tcase_add_test(journal, test_a_batch_that_runs_out_of_memory_half_way_queues_nothing);
    tcase_add_test(journal, test_a_dead_letter_refused_waits_without_rewriting_the_log_a_nack_delay_is_kept);
    tcase_add_test(journal, test_drop_oldest_settles_the_dropped_message_in_the_journal_after_the_new_one_is_logged);
    tcase_add_test(journal, test_each_delivery_logs_its_attempt_count_and_requeue_logs_nothing_more);
    tcase_add_test(journal, test_ack_nack_drop_and_purge_settle_in_the_journal);
    tcase_add_test(journal, test_delete_logs_the_queue_once_and_later_acks_of_its_messages_not_at_all);
    tcase_add_test(journal, test_refused_queue_changes_leave_the_queue_as_it_was);
    tcase_add_test(journal, test_restored_messages_come_back_in_order_with_their_attempts_unlogged);
    tcase_add_test(journal, test_a_queue_configured_in_memory_leaves_the_journal_and_keeps_its_messages);
    suite_add_tcase(s, journal);

    TCase *stress = tcase_create("stress");
    tcase_set_timeout(stress, 100);
    tcase_add_test(stress, test_stress_every_message_is_acked_exactly_once);
    tcase_add_test(stress, test_every_allocation_failure_leaves_the_broker_consistent);
    tcase_add_test(stress, test_every_allocation_failure_keeps_the_journal_in_step_with_the_broker);
    suite_add_tcase(s, stress);

    TCase *timing = tcase_create("time");
    tcase_add_test(timing, test_delayed_publish_is_not_delivered_before_its_time_and_is_at_it);
    tcase_add_test(timing, test_a_deliver_at_in_the_past_is_delivered_at_once);
    tcase_add_test(timing, test_delayed_messages_come_out_in_due_order_behind_the_ready_ones);
    tcase_add_test(timing, test_purge_and_delete_drop_delayed_messages_and_their_timers);
    tcase_add_test(timing, test_many_timers_due_at_once_fire_over_several_turns_in_due_order);
    tcase_add_test(timing, test_join_and_end_of_stream_wait_for_delayed_messages);
    tcase_add_test(timing, test_a_delayed_durable_publish_logs_its_deliver_at_and_comes_back_waiting);
    suite_add_tcase(s, timing);

    TCase *priorities = tcase_create("priorities");
    tcase_add_test(priorities, test_higher_priority_is_delivered_first_and_fifo_within_a_level);
    tcase_add_test(priorities, test_a_message_published_later_at_a_higher_level_passes_the_waiting_ones);
    tcase_add_test(priorities, test_nack_with_requeue_goes_back_to_the_front_of_its_own_level);
    tcase_add_test(priorities, test_a_lost_session_returns_its_messages_to_the_front_of_their_levels);
    tcase_add_test(priorities, test_get_takes_the_highest_priority);
    tcase_add_test(priorities, test_the_queue_default_priority_applies_to_messages_without_one);
    tcase_add_test(priorities, test_a_priority_above_the_maximum_is_refused);
    tcase_add_test(priorities, test_batch_items_take_their_own_priorities_all_or_nothing);
    tcase_add_test(priorities, test_stats_count_the_depth_of_each_priority);
    tcase_add_test(priorities, test_one_priority_only_keeps_plain_fifo_across_many_messages);
    suite_add_tcase(s, priorities);

    TCase *topics = tcase_create("topics and temporary queues");
    tcase_add_test(topics, test_a_topic_publish_puts_one_copy_in_every_matching_queue);
    tcase_add_test(topics, test_a_topic_nothing_matches_is_accepted_and_counted_unroutable);
    tcase_add_test(topics, test_bad_topics_and_patterns_are_refused);
    tcase_add_test(topics, test_bindings_per_queue_are_bounded);
    tcase_add_test(topics, test_bindings_in_all_are_bounded);
    tcase_add_test(topics, test_an_ended_bound_queue_is_skipped_and_the_others_get_the_copy);
    tcase_add_test(topics, test_a_full_bound_queue_follows_its_policy_and_holds_up_no_other);
    tcase_add_test(topics, test_a_deleted_queue_loses_its_bindings);
    tcase_add_test(topics, test_a_topic_publish_logs_one_record_per_durable_bound_queue);
    tcase_add_test(topics, test_a_temporary_queue_is_named_by_the_broker_when_asked);
    tcase_add_test(topics, test_a_temporary_queue_is_its_sessions_alone_but_anyone_may_publish_to_it);
    tcase_add_test(topics, test_a_name_configured_durable_cannot_be_taken_by_a_temporary_queue);
    tcase_add_test(topics, test_a_temporary_queue_goes_with_its_session_messages_and_bindings_included);
    tcase_add_test(topics, test_a_temporary_queue_stays_in_memory_whatever_the_conf_says);
    tcase_add_test(topics, test_temporary_queues_per_session_are_bounded);
    tcase_add_test(topics, test_only_declare_temp_makes_a_queue_with_a_tmp_name);
    suite_add_tcase(s, topics);

    TCase *expiry = tcase_create("expiry");
    tcase_add_test(expiry, test_an_expired_message_is_never_delivered_and_is_counted);
    tcase_add_test(expiry, test_a_get_skips_expired_messages);
    tcase_add_test(expiry, test_the_sweep_keeps_depth_and_bytes_right_without_a_consumer);
    tcase_add_test(expiry, test_the_sweep_finds_expired_messages_behind_a_lasting_one);
    tcase_add_test(expiry, test_the_sweep_looks_at_a_bounded_number_of_messages_each_time);
    tcase_add_test(expiry, test_a_sweep_walks_a_bounded_part_of_a_map_of_many_queues);
    tcase_add_test(expiry, test_a_new_ttl_alone_is_put_in_force_on_an_existing_queue);
    tcase_add_test(expiry, test_the_shorter_of_the_queue_ttl_and_the_message_ttl_applies);
    tcase_add_test(expiry, test_a_message_in_flight_does_not_expire_but_does_once_requeued);
    tcase_add_test(expiry, test_a_delayed_message_lives_from_its_deliver_at);
    tcase_add_test(expiry, test_an_ended_queue_emptied_by_expiry_ends_its_stream);
    tcase_add_test(expiry, test_durable_messages_log_the_priority_and_expiry_they_got);
    suite_add_tcase(s, expiry);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(broker_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
