/*
 * test_flow.c - flow control in the broker core (daemon/flow.c): each
 * overflow policy at and one past each bound, in-flight messages counting,
 * the global max_memory, parked sessions woken by an ack, first parked
 * first. Fake sessions (fake_session.h) record deliveries and wake-ups.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "fake_session.h"

/* The tag of f's i-th delivery; how often f was woken; when it last was. */
static uint64_t tag_of(const struct fake *f, size_t i)
{
    return nth(f, EV_DELIVER, i)->tag;
}

static size_t wakes(const struct fake *f)
{
    return count_of(f, EV_UNBLOCKED);
}

static uint64_t woken_at(const struct fake *f)
{
    return nth(f, EV_UNBLOCKED, wakes(f) - 1)->clock;
}

/* A queue with these bounds and this policy. */
static void bounded(struct broker *b, const char *queue, uint64_t max_length, uint64_t max_bytes,
                    enum queue_overflow overflow)
{
    ck_assert_int_eq(broker_declare(b, bytes(queue)), FERRY_CODE_OK);
    struct queue_settings s = {
        .max_length = max_length, .max_bytes = max_bytes, .overflow = overflow,
    };
    ck_assert_int_eq(broker_configure_queue(b, bytes(queue), &s), FERRY_CODE_OK);
}

static enum ferry_code pub(struct broker *b, struct fake *from, const char *queue,
                           const char *payload)
{
    return broker_publish(b, from ? from->s : NULL, bytes(queue), bytes(payload), no_headers,
                          NULL, NULL);
}

static enum ferry_code pub_batch(struct broker *b, struct fake *from, const char *queue,
                                 const char *const *payloads, size_t n)
{
    return publish_batch_from(b, from ? from->s : NULL, queue, payloads, n, NULL);
}

/* ---- reject ---- */

START_TEST(test_reject_takes_max_length_and_refuses_one_more)
{
    struct broker *b = broker_new(NULL);
    bounded(b, "q", 3, 0, QUEUE_OVERFLOW_REJECT);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pub(b, NULL, "q", "m"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "m"), FERRY_CODE_QUEUE_FULL);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.depth, 3);
    ck_assert_uint_eq(st.published, 3);
    ck_assert_uint_eq(st.rejected, 1);
    ck_assert_uint_eq(st.max_length, 3);
    ck_assert_int_eq(st.overflow, QUEUE_OVERFLOW_REJECT);
    broker_free(b);
}
END_TEST

START_TEST(test_reject_takes_max_bytes_and_refuses_one_byte_more)
{
    struct broker *b = broker_new(NULL);
    bounded(b, "q", 0, 10, QUEUE_OVERFLOW_REJECT);
    ck_assert_int_eq(pub(b, NULL, "q", "12345"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "12345"), FERRY_CODE_OK); /* exactly at the bound */
    ck_assert_int_eq(pub(b, NULL, "q", "1"), FERRY_CODE_QUEUE_FULL);
    ck_assert_uint_eq(stats_of(b, "q").bytes, 10);
    ck_assert_uint_eq(stats_of(b, "q").rejected, 1);
    broker_free(b);
}
END_TEST

START_TEST(test_in_flight_messages_count_toward_the_bound)
{
    struct broker *b = broker_new(NULL);
    struct fake c;
    fake_open(&c, b);
    bounded(b, "q", 2, 0, QUEUE_OVERFLOW_REJECT);
    ck_assert_int_eq(broker_consume(b, c.s, bytes("q"), 1, 10), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "a"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "b"), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "q").depth, 0);
    ck_assert_uint_eq(stats_of(b, "q").inflight, 2);
    ck_assert_int_eq(pub(b, NULL, "q", "c"), FERRY_CODE_QUEUE_FULL);
    ck_assert_int_eq(broker_ack(b, c.s, tag_of(&c, 0)), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "c"), FERRY_CODE_OK);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_a_batch_counts_as_its_messages_all_or_nothing)
{
    struct broker *b = broker_new(NULL);
    bounded(b, "q", 3, 0, QUEUE_OVERFLOW_REJECT);
    const char *two[] = { "a", "b" };
    ck_assert_int_eq(pub_batch(b, NULL, "q", two, 2), FERRY_CODE_OK);
    ck_assert_int_eq(pub_batch(b, NULL, "q", two, 2), FERRY_CODE_QUEUE_FULL);
    ck_assert_uint_eq(stats_of(b, "q").depth, 2); /* nothing of the second batch */
    ck_assert_int_eq(pub(b, NULL, "q", "c"), FERRY_CODE_OK);
    broker_free(b);
}
END_TEST

/* ---- drop-oldest ---- */

START_TEST(test_drop_oldest_makes_room_one_past_max_length_and_counts_it)
{
    struct broker *b = broker_new(NULL);
    struct fake c;
    fake_open(&c, b);
    bounded(b, "q", 3, 0, QUEUE_OVERFLOW_DROP_OLDEST);
    const char *all[] = { "a", "b", "c", "d", "e" };
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pub(b, NULL, "q", all[i]), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "q").dropped_oldest, 0); /* at the bound: nothing dropped */
    ck_assert_int_eq(pub(b, NULL, "q", "d"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "e"), FERRY_CODE_OK);
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.depth, 3);
    ck_assert_uint_eq(st.dropped_oldest, 2);
    ck_assert_uint_eq(st.rejected, 0);
    ck_assert_uint_eq(broker_message_count(b), 3);
    ck_assert_int_eq(broker_consume(b, c.s, bytes("q"), 1, 10), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&c, EV_DELIVER), 3);
    ck_assert_str_eq(nth(&c, EV_DELIVER, 0)->text, "c");
    ck_assert_str_eq(nth(&c, EV_DELIVER, 2)->text, "e");
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_drop_oldest_drops_as_many_as_max_bytes_needs)
{
    struct broker *b = broker_new(NULL);
    bounded(b, "q", 0, 10, QUEUE_OVERFLOW_DROP_OLDEST);
    ck_assert_int_eq(pub(b, NULL, "q", "123"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "123"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "1234"), FERRY_CODE_OK); /* 10: at the bound */
    ck_assert_int_eq(pub(b, NULL, "q", "123456"), FERRY_CODE_OK); /* needs both 3s gone */
    struct queue_stats st = stats_of(b, "q");
    ck_assert_uint_eq(st.dropped_oldest, 2);
    ck_assert_uint_eq(st.bytes, 4 + 6);
    ck_assert_uint_eq(st.depth, 2);
    ck_assert_uint_eq(st.dropped, 0); /* that counter is for nacks and purges */
    broker_free(b);
}
END_TEST

START_TEST(test_drop_oldest_never_drops_in_flight_messages)
{
    struct broker *b = broker_new(NULL);
    struct fake c;
    fake_open(&c, b);
    bounded(b, "q", 2, 0, QUEUE_OVERFLOW_DROP_OLDEST);
    ck_assert_int_eq(broker_consume(b, c.s, bytes("q"), 1, 2), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "a"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "b"), FERRY_CODE_OK);
    /* Both in flight, none ready: nothing can be dropped. */
    ck_assert_int_eq(pub(b, NULL, "q", "c"), FERRY_CODE_QUEUE_FULL);
    ck_assert_uint_eq(stats_of(b, "q").rejected, 1);
    ck_assert_uint_eq(stats_of(b, "q").dropped_oldest, 0);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_drop_oldest_takes_the_lowest_priority_first)
{
    struct broker *b = broker_new(NULL);
    struct fake c;
    fake_open(&c, b);
    bounded(b, "q", 2, 0, QUEUE_OVERFLOW_DROP_OLDEST);
    struct message_meta high = { .has_priority = true, .priority = 5 };
    ck_assert_int_eq(broker_publish(b, NULL, bytes("q"), bytes("old-high"), no_headers, &high, NULL),
                     FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "low"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "new"), FERRY_CODE_OK); /* drops "low", not the older one */
    ck_assert_int_eq(broker_consume(b, c.s, bytes("q"), 1, 10), FERRY_CODE_OK);
    ck_assert_uint_eq(count_of(&c, EV_DELIVER), 2);
    ck_assert_str_eq(nth(&c, EV_DELIVER, 0)->text, "old-high");
    ck_assert_str_eq(nth(&c, EV_DELIVER, 1)->text, "new");
    fake_close(&c);
    broker_free(b);
}
END_TEST

/* ---- a publish that can never fit ---- */

START_TEST(test_a_publish_larger_than_a_bound_is_refused_under_every_policy)
{
    struct broker *b = broker_new(NULL);
    struct fake p;
    fake_open(&p, b);
    bounded(b, "blk", 0, 4, QUEUE_OVERFLOW_BLOCK);
    bounded(b, "drp", 0, 4, QUEUE_OVERFLOW_DROP_OLDEST);
    bounded(b, "len", 2, 0, QUEUE_OVERFLOW_BLOCK);
    ck_assert_int_eq(pub(b, &p, "blk", "12345"), FERRY_CODE_QUEUE_FULL);
    ck_assert(!broker_session_parked(p.s)); /* waiting would never help */
    ck_assert_int_eq(pub(b, &p, "drp", "12345"), FERRY_CODE_QUEUE_FULL);
    const char *three[] = { "a", "b", "c" };
    ck_assert_int_eq(pub_batch(b, &p, "len", three, 3), FERRY_CODE_QUEUE_FULL);
    ck_assert(!broker_session_parked(p.s));
    fake_close(&p);
    broker_free(b);
}
END_TEST

/* ---- block ---- */

START_TEST(test_block_parks_one_past_the_bound_and_an_ack_wakes_it)
{
    struct broker *b = broker_new(NULL);
    struct fake p, c;
    fake_open(&p, b);
    fake_open(&c, b);
    bounded(b, "q", 2, 0, QUEUE_OVERFLOW_BLOCK);
    ck_assert_int_eq(broker_consume(b, c.s, bytes("q"), 1, 1), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, &p, "q", "a"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, &p, "q", "b"), FERRY_CODE_OK); /* at the bound */
    ck_assert(!broker_session_parked(p.s));
    ck_assert_int_eq(pub(b, &p, "q", "c"), FERRY_CODE_QUEUE_FULL);
    ck_assert(broker_session_parked(p.s));
    ck_assert_uint_eq(stats_of(b, "q").blocked, 1);
    ck_assert_uint_eq(stats_of(b, "q").rejected, 0);
    ck_assert_uint_eq(broker_parked_count(b), 1);
    ck_assert_uint_eq(wakes(&p), 0);

    ck_assert_int_eq(broker_ack(b, c.s, tag_of(&c, 0)), FERRY_CODE_OK);
    ck_assert_uint_eq(wakes(&p), 1);
    ck_assert(!broker_session_parked(p.s));
    ck_assert_int_eq(pub(b, &p, "q", "c"), FERRY_CODE_OK); /* the retry */
    ck_assert_uint_eq(stats_of(b, "q").published, 3);
    fake_close(&p);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_block_wakes_at_max_bytes_once_below_the_resume_level)
{
    struct broker *b = broker_new(NULL);
    struct fake p, c;
    fake_open(&p, b);
    fake_open(&c, b);
    bounded(b, "q", 0, 32, QUEUE_OVERFLOW_BLOCK); /* resumes at 30 bytes */
    ck_assert_int_eq(broker_consume(b, c.s, bytes("q"), 1, 100), FERRY_CODE_OK);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(pub(b, &p, "q", "xy"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, &p, "q", "xy"), FERRY_CODE_QUEUE_FULL);
    ck_assert(broker_session_parked(p.s));
    ck_assert_int_eq(broker_ack(b, c.s, tag_of(&c, 0)), FERRY_CODE_OK); /* 30 bytes */
    ck_assert_uint_eq(wakes(&p), 1);
    fake_close(&p);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_a_session_with_deliveries_in_flight_is_refused_not_parked)
{
    struct broker *b = broker_new(NULL);
    struct fake pc;
    fake_open(&pc, b);
    bounded(b, "q", 1, 0, QUEUE_OVERFLOW_BLOCK);
    ck_assert_int_eq(broker_consume(b, pc.s, bytes("q"), 1, 1), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, &pc, "q", "a"), FERRY_CODE_OK); /* delivered to pc itself */
    /* Parked, it could not ack "a", and nothing else would free the room. */
    ck_assert_int_eq(pub(b, &pc, "q", "b"), FERRY_CODE_QUEUE_FULL);
    ck_assert(!broker_session_parked(pc.s));
    ck_assert_uint_eq(stats_of(b, "q").rejected, 1);
    ck_assert_uint_eq(stats_of(b, "q").blocked, 0);
    fake_close(&pc);
    broker_free(b);
}
END_TEST

START_TEST(test_a_session_that_also_consumes_is_refused_not_parked)
{
    struct broker *b = broker_new(NULL);
    struct fake sub, get;
    fake_open(&sub, b);
    fake_open(&get, b);
    bounded(b, "full", 1, 0, QUEUE_OVERFLOW_BLOCK);
    ck_assert_int_eq(pub(b, NULL, "full", "x"), FERRY_CODE_OK);
    /* A subscription (to any queue, nothing in flight): it might be the
     * consumer some parked producer waits for. */
    ck_assert_int_eq(broker_consume(b, sub.s, bytes("other"), 1, 10), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, &sub, "full", "y"), FERRY_CODE_QUEUE_FULL);
    ck_assert(!broker_session_parked(sub.s));
    /* A waiting GET likewise. */
    ck_assert_int_eq(broker_get(b, get.s, bytes("other"), 7), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, &get, "full", "y"), FERRY_CODE_QUEUE_FULL);
    ck_assert(!broker_session_parked(get.s));
    ck_assert_uint_eq(stats_of(b, "full").rejected, 2);
    ck_assert_uint_eq(stats_of(b, "full").blocked, 0);
    ck_assert_uint_eq(broker_parked_count(b), 0);
    fake_close(&sub);
    fake_close(&get);
    broker_free(b);
}
END_TEST

START_TEST(test_parked_sessions_are_woken_first_parked_first_and_newcomers_wait_behind)
{
    struct broker *b = broker_new(NULL);
    struct fake p1, p2, p3, c;
    fake_open(&p1, b);
    fake_open(&p2, b);
    fake_open(&p3, b);
    fake_open(&c, b);
    bounded(b, "q", 2, 0, QUEUE_OVERFLOW_BLOCK);
    ck_assert_int_eq(broker_consume(b, c.s, bytes("q"), 1, 2), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "a"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "q", "b"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, &p2, "q", "m"), FERRY_CODE_QUEUE_FULL);
    ck_assert_int_eq(pub(b, &p1, "q", "m"), FERRY_CODE_QUEUE_FULL);
    ck_assert_uint_eq(broker_parked_count(b), 2);
    /* Room for one (bound 2, resume level 1), but the parked come first. */
    ck_assert_int_eq(broker_ack(b, c.s, tag_of(&c, 0)), FERRY_CODE_OK);
    ck_assert_uint_eq(wakes(&p2), 1);
    ck_assert_uint_eq(wakes(&p1), 1);
    ck_assert_uint_lt(woken_at(&p2), woken_at(&p1));
    /* A newcomer while nobody is parked any more: it fits. */
    ck_assert_int_eq(pub(b, &p3, "q", "m"), FERRY_CODE_OK);
    /* The woken retry in order: both full again, parked in the same order. */
    ck_assert_int_eq(pub(b, &p2, "q", "m"), FERRY_CODE_QUEUE_FULL);
    ck_assert_int_eq(pub(b, &p1, "q", "m"), FERRY_CODE_QUEUE_FULL);
    /* The queue is full; a newcomer that would fit after an ack parks behind. */
    ck_assert_int_eq(broker_ack(b, c.s, tag_of(&c, 1)), FERRY_CODE_OK); /* 1 left: resume level */
    ck_assert_uint_eq(wakes(&p2), 2);
    ck_assert_uint_lt(woken_at(&p2), woken_at(&p1));
    fake_close(&p1);
    fake_close(&p2);
    fake_close(&p3);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_parked_publishers_wait_behind_the_first_even_where_there_is_room)
{
    struct broker *b = broker_new(NULL);
    struct fake p1, p2, c;
    fake_open(&p1, b);
    fake_open(&p2, b);
    fake_open(&c, b);
    bounded(b, "q", 32, 0, QUEUE_OVERFLOW_BLOCK); /* resumes at 30 */
    ck_assert_int_eq(broker_consume(b, c.s, bytes("q"), 1, 64), FERRY_CODE_OK);
    for (int i = 0; i < 32; i++)
        ck_assert_int_eq(pub(b, NULL, "q", "m"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, &p1, "q", "m"), FERRY_CODE_QUEUE_FULL);
    ck_assert_int_eq(broker_ack(b, c.s, tag_of(&c, 0)), FERRY_CODE_OK); /* 31: not yet */
    ck_assert_uint_eq(wakes(&p1), 0);
    ck_assert_int_eq(pub(b, &p2, "q", "m"), FERRY_CODE_QUEUE_FULL); /* fits, but p1 is first */
    ck_assert(broker_session_parked(p2.s));
    ck_assert_int_eq(pub(b, NULL, "q", "m"), FERRY_CODE_OK); /* nobody to park: no wait */
    ck_assert_int_eq(broker_ack(b, c.s, tag_of(&c, 1)), FERRY_CODE_OK);
    ck_assert_int_eq(broker_ack(b, c.s, tag_of(&c, 2)), FERRY_CODE_OK); /* 30 */
    ck_assert_uint_eq(wakes(&p1), 1);
    ck_assert_uint_eq(wakes(&p2), 1);
    ck_assert_uint_lt(woken_at(&p1), woken_at(&p2));
    fake_close(&p1);
    fake_close(&p2);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_raising_the_bound_deleting_the_queue_or_leaving_unparks)
{
    struct broker *b = broker_new(NULL);
    struct fake p1, p2, p3;
    fake_open(&p1, b);
    fake_open(&p2, b);
    fake_open(&p3, b);
    bounded(b, "q", 1, 0, QUEUE_OVERFLOW_BLOCK);
    bounded(b, "r", 1, 0, QUEUE_OVERFLOW_BLOCK);
    ck_assert_int_eq(pub(b, NULL, "q", "a"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "r", "a"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, &p1, "q", "b"), FERRY_CODE_QUEUE_FULL);
    ck_assert_int_eq(pub(b, &p2, "r", "b"), FERRY_CODE_QUEUE_FULL);
    ck_assert_int_eq(pub(b, &p3, "r", "b"), FERRY_CODE_QUEUE_FULL);

    struct queue_settings wider = { .max_length = 2, .overflow = QUEUE_OVERFLOW_BLOCK };
    ck_assert_int_eq(broker_configure_queue(b, bytes("q"), &wider), FERRY_CODE_OK);
    ck_assert_uint_eq(wakes(&p1), 1);
    ck_assert_int_eq(pub(b, &p1, "q", "b"), FERRY_CODE_OK);

    fake_close(&p3); /* leaves while parked */
    ck_assert_uint_eq(broker_parked_count(b), 1);
    ck_assert_int_eq(broker_delete(b, bytes("r")), FERRY_CODE_OK);
    ck_assert_uint_eq(wakes(&p2), 1);
    ck_assert_uint_eq(broker_parked_count(b), 0);
    fake_close(&p1);
    fake_close(&p2);
    broker_free(b);
}
END_TEST

/* ---- max_memory ---- */

/* A broker whose max_memory holds exactly n one-byte messages. */
static struct broker *memory_broker(uint64_t n)
{
    struct broker_limits limits = { .max_memory = n * (1 + BROKER_MESSAGE_OVERHEAD) };
    struct broker *b = broker_new(&limits);
    ck_assert_ptr_nonnull(b);
    return b;
}

START_TEST(test_max_memory_applies_the_policy_of_the_queue_published_to)
{
    struct broker *b = memory_broker(4);
    struct fake p, c;
    fake_open(&p, b);
    fake_open(&c, b);
    bounded(b, "rej", 0, 0, QUEUE_OVERFLOW_REJECT);
    bounded(b, "drp", 0, 0, QUEUE_OVERFLOW_DROP_OLDEST);
    bounded(b, "blk", 0, 0, QUEUE_OVERFLOW_BLOCK);
    ck_assert_int_eq(pub(b, NULL, "rej", "a"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "rej", "b"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "drp", "c"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "blk", "d"), FERRY_CODE_OK); /* at the cap */
    ck_assert_uint_eq(broker_memory(b), broker_max_memory(b));

    ck_assert_int_eq(pub(b, NULL, "rej", "e"), FERRY_CODE_QUEUE_FULL);
    ck_assert_uint_eq(stats_of(b, "rej").rejected, 1);
    ck_assert_int_eq(pub(b, NULL, "drp", "f"), FERRY_CODE_OK); /* "c" makes room */
    ck_assert_uint_eq(stats_of(b, "drp").dropped_oldest, 1);
    ck_assert_int_eq(pub(b, &p, "blk", "g"), FERRY_CODE_QUEUE_FULL);
    ck_assert(broker_session_parked(p.s));

    /* An ack in another queue makes the room. */
    ck_assert_int_eq(broker_consume(b, c.s, bytes("rej"), 1, 10), FERRY_CODE_OK);
    ck_assert_int_eq(broker_ack(b, c.s, tag_of(&c, 0)), FERRY_CODE_OK);
    ck_assert_uint_eq(wakes(&p), 1);
    ck_assert_int_eq(pub(b, &p, "blk", "g"), FERRY_CODE_OK);
    ck_assert_uint_eq(broker_memory(b), broker_max_memory(b));
    fake_close(&p);
    fake_close(&c);
    broker_free(b);
}
END_TEST

START_TEST(test_drop_oldest_at_max_memory_refuses_when_its_own_queue_has_nothing_ready)
{
    struct broker *b = memory_broker(2);
    bounded(b, "drp", 0, 0, QUEUE_OVERFLOW_DROP_OLDEST);
    ck_assert_int_eq(pub(b, NULL, "other", "a"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "other", "b"), FERRY_CODE_OK);
    ck_assert_int_eq(pub(b, NULL, "drp", "c"), FERRY_CODE_QUEUE_FULL);
    ck_assert_uint_eq(stats_of(b, "other").depth, 2); /* other queues are never dropped from */
    broker_free(b);
}
END_TEST

START_TEST(test_raising_max_memory_wakes_the_sessions_parked_on_it)
{
    struct broker *b = memory_broker(1);
    struct fake p;
    fake_open(&p, b);
    ck_assert_int_eq(pub(b, NULL, "q", "a"), FERRY_CODE_OK); /* default policy: block */
    ck_assert_int_eq(pub(b, &p, "q", "b"), FERRY_CODE_QUEUE_FULL);
    ck_assert(broker_session_parked(p.s));
    struct broker_limits none = { 0 };
    broker_set_limits(b, &none);
    ck_assert_uint_eq(wakes(&p), 1);
    ck_assert_int_eq(pub(b, &p, "q", "b"), FERRY_CODE_OK);
    fake_close(&p);
    broker_free(b);
}
END_TEST

START_TEST(test_no_bound_no_limit_accepts_everything)
{
    struct broker *b = broker_new(NULL);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(pub(b, NULL, "q", "m"), FERRY_CODE_OK);
    ck_assert_uint_eq(stats_of(b, "q").max_length, 0);
    ck_assert_uint_eq(broker_max_memory(b), 0);
    broker_free(b);
}
END_TEST

static Suite *flow_suite(void)
{
    Suite *s = suite_create("flow");
    TCase *policies = tcase_create("policies");
    tcase_add_test(policies, test_reject_takes_max_length_and_refuses_one_more);
    tcase_add_test(policies, test_reject_takes_max_bytes_and_refuses_one_byte_more);
    tcase_add_test(policies, test_in_flight_messages_count_toward_the_bound);
    tcase_add_test(policies, test_a_batch_counts_as_its_messages_all_or_nothing);
    tcase_add_test(policies, test_drop_oldest_makes_room_one_past_max_length_and_counts_it);
    tcase_add_test(policies, test_drop_oldest_drops_as_many_as_max_bytes_needs);
    tcase_add_test(policies, test_drop_oldest_never_drops_in_flight_messages);
    tcase_add_test(policies, test_drop_oldest_takes_the_lowest_priority_first);
    tcase_add_test(policies, test_a_publish_larger_than_a_bound_is_refused_under_every_policy);
    tcase_add_test(policies, test_no_bound_no_limit_accepts_everything);
    suite_add_tcase(s, policies);

    TCase *block = tcase_create("block");
    tcase_add_test(block, test_block_parks_one_past_the_bound_and_an_ack_wakes_it);
    tcase_add_test(block, test_block_wakes_at_max_bytes_once_below_the_resume_level);
    tcase_add_test(block, test_a_session_with_deliveries_in_flight_is_refused_not_parked);
    tcase_add_test(block, test_a_session_that_also_consumes_is_refused_not_parked);
    tcase_add_test(block, test_parked_sessions_are_woken_first_parked_first_and_newcomers_wait_behind);
    tcase_add_test(block, test_parked_publishers_wait_behind_the_first_even_where_there_is_room);
    tcase_add_test(block, test_raising_the_bound_deleting_the_queue_or_leaving_unparks);
    suite_add_tcase(s, block);

    TCase *memory = tcase_create("max_memory");
    tcase_add_test(memory, test_max_memory_applies_the_policy_of_the_queue_published_to);
    tcase_add_test(memory, test_drop_oldest_at_max_memory_refuses_when_its_own_queue_has_nothing_ready);
    tcase_add_test(memory, test_raising_max_memory_wakes_the_sessions_parked_on_it);
    suite_add_tcase(s, memory);
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
