/*
 * fake_session.c - the unit tests' fake session and helpers (fake_session.h).
 */
#include "fake_session.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

void copy_text(char *dst, size_t cap, struct ferry_bytes src)
{
    size_t n = src.len < cap - 1 ? src.len : cap - 1;
    if (n > 0)
        memcpy(dst, src.ptr, n);
    dst[n] = '\0';
}

static uint64_t event_clock;

static struct event *record(void *owner, enum event_kind kind)
{
    struct fake *f = owner;
    ck_assert_msg(!f->closing, "callback to a session being freed");
    if (f->count == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->events = realloc(f->events, f->cap * sizeof *f->events);
        ck_assert_ptr_nonnull(f->events);
    }
    struct event *e = &f->events[f->count++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->clock = ++event_clock;
    if (f->throttle_at != 0 && f->count == f->throttle_at)
        broker_session_set_writable(f->b, f->s, false);
    return e;
}

static void on_deliver(void *owner, uint64_t sub, uint64_t rid, uint64_t tag, const struct message *m)
{
    struct event *e = record(owner, EV_DELIVER);
    e->sub = sub;
    e->rid = rid;
    e->tag = tag;
    e->attempt = m->attempts;
    copy_text(e->text, sizeof e->text, message_payload(m));
    copy_text(e->headers, sizeof e->headers, message_headers(m));
}

static void on_end_of_stream(void *owner, uint64_t sub, struct ferry_bytes name)
{
    struct event *e = record(owner, EV_EOS);
    e->sub = sub;
    copy_text(e->text, sizeof e->text, name);
}

static void on_join_done(void *owner, uint64_t rid, enum ferry_code code)
{
    struct event *e = record(owner, EV_JOIN_DONE);
    e->rid = rid;
    e->code = code;
}

static void on_get_ended(void *owner, uint64_t rid)
{
    record(owner, EV_GET_ENDED)->rid = rid;
}

static void on_unblocked(void *owner)
{
    record(owner, EV_UNBLOCKED);
}

const struct session_ops fake_ops = {
    .deliver = on_deliver,
    .end_of_stream = on_end_of_stream,
    .join_done = on_join_done,
    .get_ended = on_get_ended,
    .unblocked = on_unblocked,
};

void fake_open(struct fake *f, struct broker *b)
{
    memset(f, 0, sizeof *f);
    f->b = b;
    f->s = broker_session_new(b, &fake_ops, f);
    ck_assert_ptr_nonnull(f->s);
}

void fake_close(struct fake *f)
{
    if (f->s != NULL) {
        f->closing = true;
        broker_session_free(f->b, f->s);
        f->closing = false;
        f->s = NULL;
    }
    free(f->events);
    f->events = NULL;
    f->count = f->cap = 0;
}

size_t count_of(const struct fake *f, enum event_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < f->count; i++)
        n += f->events[i].kind == kind;
    return n;
}

const struct event *nth(const struct fake *f, enum event_kind kind, size_t i)
{
    for (size_t j = 0; j < f->count; j++) {
        if (f->events[j].kind == kind && i-- == 0)
            return &f->events[j];
    }
    ck_abort_msg("no such event");
    return NULL;
}

struct ferry_bytes bytes(const char *s)
{
    return (struct ferry_bytes){ (const uint8_t *)s, strlen(s) };
}

const struct ferry_bytes no_headers = { NULL, 0 };

void publish(struct broker *b, const char *queue, const char *payload)
{
    ck_assert_int_eq(broker_publish(b, NULL, bytes(queue), bytes(payload), no_headers, NULL, NULL), FERRY_CODE_OK);
}

void consume(struct fake *f, const char *queue, uint64_t sub, uint64_t credit)
{
    ck_assert_int_eq(broker_consume(f->b, f->s, bytes(queue), sub, credit), FERRY_CODE_OK);
}

void ack(struct fake *f, uint64_t tag)
{
    ck_assert_int_eq(broker_ack(f->b, f->s, tag), FERRY_CODE_OK);
}

struct queue_stats stats_of(struct broker *b, const char *queue)
{
    struct queue_stats st;
    ck_assert_int_eq(broker_queue_stats(b, bytes(queue), &st), FERRY_CODE_OK);
    return st;
}

void assert_delivery(const struct fake *f, size_t i, const char *payload, uint32_t attempt)
{
    const struct event *e = nth(f, EV_DELIVER, i);
    ck_assert_str_eq(e->text, payload);
    ck_assert_uint_eq(e->attempt, attempt);
}

/* The items of a batch from an array of strings. */
struct item_array {
    const char *const *payloads;
    size_t count, next;
};

static bool next_string(void *arg, struct ferry_bytes *payload, struct ferry_bytes *headers,
                        struct message_meta *meta)
{
    (void)meta;
    struct item_array *a = arg;
    if (a->next == a->count)
        return false;
    *payload = bytes(a->payloads[a->next++]);
    *headers = no_headers;
    return true;
}

enum ferry_code publish_batch_from(struct broker *b, struct session *from, const char *queue,
                                   const char *const *payloads, size_t n, uint64_t *lsn)
{
    struct item_array a = { payloads, n, 0 };
    struct broker_items items = { &a, next_string };
    return broker_publish_batch(b, from, bytes(queue), &items, lsn);
}

enum ferry_code publish_batch(struct broker *b, const char *queue, const char *const *payloads,
                              size_t n, uint64_t *lsn)
{
    return publish_batch_from(b, NULL, queue, payloads, n, lsn);
}

/* ---- the fake clock ---- */

uint64_t fake_now;

uint64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

struct broker *timed_broker(void)
{
    struct broker *b = broker_new(NULL);
    ck_assert_ptr_nonnull(b);
    fake_now = 1000000;
    broker_set_clock(b, &(struct broker_clock){ .now_ms = fake_clock });
    return b;
}

void advance(struct broker *b, uint64_t ms)
{
    fake_now += ms;
    broker_advance(b);
}
