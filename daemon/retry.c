/*
 * retry.c - what becomes of a delivery that failed: its ack deadline (and
 * TOUCH), a nack's delay, the backoff after a deadline or a lost consumer,
 * the queue's max_attempts and its dead-letter queue, with the headers that
 * say where a dead letter came from. Knows the core (core.h), nothing of
 * frames, sockets or the clock's source.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* Backoff without a configured cap stops doubling here. */
#define BACKOFF_CAP_DEFAULT_MS (24ull * 3600 * 1000)
/* A dead letter its dead-letter queue refused (ended, out of memory, the
 * journal full) waits in its own queue at least this long before the
 * next try, so that a refusing DLQ is not asked at every dispatch. */
#define DEAD_LETTER_RETRY_MS 1000u

/* The header keys a dead letter gets (PROTOCOL.md, "Retries and dead
 * letters"); keys starting with the prefix are replaced, not repeated. */
#define DLQ_PREFIX "dlq-"
#define DLQ_QUEUE "dlq-queue"
#define DLQ_ATTEMPTS "dlq-attempts"
#define DLQ_REASON "dlq-reason"

static const char *reason_name(enum retry_reason why)
{
    switch (why) {
    case RETRY_NACK: return "nack";
    case RETRY_DEADLINE: return "deadline";
    case RETRY_LOST: return "lost";
    case RETRY_ATTEMPTS: return "attempts";
    case RETRY_EXPIRED: return "expired";
    }
    return "unknown";
}

/* ---- deadlines ---- */

void retry_arm_deadline(struct broker *b, struct message *m, struct session *s, uint64_t tag,
                        uint64_t deadline_ms)
{
    /* In flight m is in no list: its links name the delivery instead. */
    m->holder = s;
    m->tag = tag;
    timer_arm(&b->timers, &m->timer, broker_now(b) + deadline_ms);
}

void retry_deadline_passed(struct broker *b, struct message *m)
{
    struct session *s = m->holder;
    struct tag_entry e;
    if (!tags_take(&s->tags, m->tag, &e))
        return; /* cannot happen: a settled delivery's timer is disarmed */
    /* The tag is gone: a late ACK of it gets UNKNOWN_TAG. */
    dispatch_slot_freed(e.consumer);
    m->queue->stats.timeouts++;
    struct queue *q = retry_take_back(b, m, RETRY_DEADLINE, 0);
    if (q != NULL)
        dispatch(q);
}

/* ---- dead letters ---- */

static bool is_dlq_key(struct ferry_bytes key)
{
    size_t n = sizeof DLQ_PREFIX - 1;
    return key.len >= n && memcmp(key.ptr, DLQ_PREFIX, n) == 0;
}

static struct ferry_bytes text_of(const char *s)
{
    return (struct ferry_bytes){ (const uint8_t *)s, strlen(s) };
}

/* m's headers without dlq-* keys, plus `extra` (n of them) when given,
 * encoded into *out (the caller frees it). At most FERRY_HEADERS_MAX: the
 * last of m's own are left out if they and the extra ones do not fit.
 * 0, or -1 on ENOMEM. */
static int rewrite_headers(const struct message *m, const struct ferry_kv *extra, size_t n,
                           struct ferry_buf *out)
{
    struct ferry_kv kv[FERRY_HEADERS_MAX];
    size_t count = 0;
    struct ferry_iter it;
    struct ferry_kv h;
    ferry_headers_iter_init(&it, message_headers(m));
    while (count + n < FERRY_HEADERS_MAX && ferry_headers_next(&it, &h)) {
        if (!is_dlq_key(h.key))
            kv[count++] = h;
    }
    for (size_t i = 0; i < n; i++)
        kv[count++] = extra[i];
    if (count == 0)
        return 0;
    return ferry_headers_encode(out, kv, count);
}

/* m waits in its own queue for ms: true; or, if the heap cannot grow, is
 * ready at the front again: false. A durable m's wait is logged (it then
 * holds across a restart) if `keep`. */
static bool hold(struct broker *b, struct message *m, uint64_t ms, bool keep)
{
    if (ms > 0 && timer_heap_reserve(&b->timers) == 0) {
        uint64_t due = broker_now(b) + ms;
        if (keep)
            broker_log_wait(b, m, due); /* the whole message again, with its deliver-at */
        dispatch_wait(b, m, due);
        return true;
    }
    queue_push_front(m->queue, m);
    return false;
}

/* Publishes a copy of m (of queue q) to q's dead-letter queue `name`,
 * with the dlq-* headers. OK or why it was refused. */
static enum ferry_code publish_dead_letter(struct broker *b, struct message *m,
                                           struct ferry_bytes name, enum retry_reason why)
{
    char attempts[16];
    snprintf(attempts, sizeof attempts, "%u", (unsigned)m->attempts);
    const struct ferry_kv extra[] = {
        { text_of(DLQ_QUEUE), queue_name(m->queue) },
        { text_of(DLQ_ATTEMPTS), text_of(attempts) },
        { text_of(DLQ_REASON), text_of(reason_name(why)) },
    };
    struct ferry_buf headers = { 0 };
    struct queue *dlq;
    enum ferry_code code = broker_find_queue(b, name, true, &dlq);
    if (code == FERRY_CODE_OK && rewrite_headers(m, extra, 3, &headers) != 0)
        code = FERRY_CODE_NO_MEMORY;
    if (code == FERRY_CODE_OK) {
        struct ferry_bytes h = { headers.data + headers.off, ferry_buf_pending(&headers) };
        code = broker_publish_copy(b, dlq, m, h);
    }
    ferry_buf_free(&headers);
    return code;
}

/* q's dead-letter queue, or an empty span if it has none (or names itself). */
static struct ferry_bytes dead_letter_queue_of(const struct queue *q)
{
    struct ferry_bytes name = text_of(q->settings.dead_letter);
    struct ferry_bytes own = queue_name(q);
    if (name.len == own.len && memcmp(name.ptr, own.ptr, own.len) == 0)
        return (struct ferry_bytes){ NULL, 0 };
    return name;
}

/* Moves m (in no list or table and counted in no gauge of its queue q) to
 * q's dead-letter queue, or drops it when q has none. Counted in q's
 * dead_lettered either way. If the dead-letter queue refuses it, m waits
 * in q for the next try; false if it could not even wait and is ready at
 * the front of q again. Does not dispatch q. */
static bool dead_letter(struct broker *b, struct message *m, enum retry_reason why)
{
    struct queue *q = m->queue;
    struct ferry_bytes name = dead_letter_queue_of(q);
    if (name.len == 0) {
        q->stats.dead_lettered++;
        q->stats.dropped++;
        dispatch_forget(b, m);
        return true;
    }
    if (publish_dead_letter(b, m, name, why) != FERRY_CODE_OK) {
        /* Not lost: it waits in q and is dead-lettered at its next turn.
         * That wait is not logged: after a restart the message is found
         * used up and tried again at once, and a dead-letter queue that
         * keeps refusing must not have the log rewrite the whole message
         * at every try. */
        uint64_t wait = q->settings.retry_backoff_max_ms;
        return hold(b, m, wait > DEAD_LETTER_RETRY_MS ? wait : DEAD_LETTER_RETRY_MS, false);
    }
    q->stats.dead_lettered++;
    /* The copy is logged before the original is settled: a crash in
     * between leaves both (at least once), never neither. */
    dispatch_forget(b, m);
    return true;
}

void retry_dead_letter_expired(struct broker *b, struct message *m)
{
    struct ferry_bytes name = dead_letter_queue_of(m->queue);
    /* Expired, it would have been dropped: if the dead-letter queue refuses
     * it, it is (counted in dropped). */
    if (name.len > 0 && publish_dead_letter(b, m, name, RETRY_EXPIRED) != FERRY_CODE_OK)
        m->queue->stats.dropped++;
    dispatch_forget(b, m);
}

bool retry_dead_letter_ready(struct broker *b, struct message *m)
{
    return dead_letter(b, m, RETRY_ATTEMPTS);
}

/* ---- taking back ---- */

/* The wait before redelivery after the attempts-th delivery failed:
 * retry_backoff_ms, doubled for each attempt after the first, capped. */
static uint64_t backoff_ms(const struct queue_settings *s, uint32_t attempts)
{
    if (s->retry_backoff_ms == 0)
        return 0;
    uint64_t cap = s->retry_backoff_max_ms != 0 ? s->retry_backoff_max_ms : BACKOFF_CAP_DEFAULT_MS;
    uint64_t wait = s->retry_backoff_ms;
    for (uint32_t i = 1; i < attempts && wait < cap; i++)
        wait *= 2;
    return wait < cap ? wait : cap;
}

struct queue *retry_take_back(struct broker *b, struct message *m, enum retry_reason why,
                              uint64_t delay_ms)
{
    struct queue *q = m->queue;
    q->stats.inflight--;
    if (q->deleted) {
        q->stats.dropped++;
        dispatch_forget(b, m);
        dispatch_settled(q);
        return NULL;
    }
    if (q->settings.max_attempts != 0 && m->attempts >= q->settings.max_attempts) {
        (void)dead_letter(b, m, why); /* if it is back at the front, dispatch stops at it */
        dispatch_settled(q);
        return NULL;
    }
    uint64_t wait = why == RETRY_NACK ? delay_ms : backoff_ms(&q->settings, m->attempts);
    if (wait == 0) {
        queue_push_front(q, m); /* ready again; the queue still owns it */
        return q;
    }
    hold(b, m, wait, true);
    return q; /* if it could not wait it is at the front */
}

void retry_sweep(struct broker *b, struct queue *q)
{
    uint32_t max = q->settings.max_attempts;
    if (max == 0 || q->deleted)
        return;
    const struct message *m = queue_first_ready(q);
    while (m != NULL && m->attempts < max)
        m = queue_next_ready(q, m);
    if (m == NULL)
        return; /* none: nothing moves */
    /* All out, in delivery order (linked through next, which pop cleared),
     * then each back at the end of its level or dead-lettered. */
    struct message *all = NULL, **tail = &all, *next;
    for (struct message *p = queue_pop_front(q); p != NULL; p = queue_pop_front(q)) {
        *tail = p;
        tail = &p->next;
    }
    for (struct message *p = all; p != NULL; p = next) {
        next = p->next;
        p->next = NULL;
        if (p->attempts >= max)
            (void)dead_letter(b, p, RETRY_ATTEMPTS); /* if it cannot even wait, it is ready again */
        else
            queue_push_back(q, p);
    }
    dispatch_settled(q);
}

/* ---- looking at a queue, and moving dead letters back ---- */

/* The value of header `key` of m, or an empty span. */
static struct ferry_bytes header_value(const struct message *m, const char *key)
{
    struct ferry_bytes want = text_of(key);
    struct ferry_iter it;
    struct ferry_kv h;
    ferry_headers_iter_init(&it, message_headers(m));
    while (ferry_headers_next(&it, &h)) {
        if (h.key.len == want.len && memcmp(h.key.ptr, want.ptr, want.len) == 0)
            return h.value;
    }
    return (struct ferry_bytes){ NULL, 0 };
}

static bool same_name(struct ferry_bytes a, struct ferry_bytes b)
{
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

enum ferry_code broker_peek(struct broker *b, struct ferry_bytes queue, size_t max,
                            bool (*fn)(void *arg, const struct message *m), void *arg)
{
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, false, &q);
    if (code != FERRY_CODE_OK)
        return code;
    /* An expired message is never delivered: it is not shown either (the
     * sweep or the next dispatch takes it out). Passing over them is
     * bounded like a sweep. */
    uint64_t now = 0;
    size_t seen = 0, passed = 0;
    for (const struct message *m = queue_first_ready(q);
         m != NULL && seen < max && passed < EXPIRY_SWEEP_BUDGET; m = queue_next_ready(q, m)) {
        if (m->expires_at != 0 && expiry_passed(b, m, &now)) {
            passed++;
            continue;
        }
        seen++;
        if (!fn(arg, m))
            break;
    }
    return FERRY_CODE_OK;
}

/* Moves q's first ready message (m) to `to`, without its dlq-* headers. */
static enum ferry_code move_one(struct broker *b, struct queue *q, struct message *m,
                                struct ferry_bytes to)
{
    struct queue *dest;
    enum ferry_code code = broker_find_queue(b, to, true, &dest);
    if (code != FERRY_CODE_OK)
        return code;
    struct ferry_buf headers = { 0 };
    if (rewrite_headers(m, NULL, 0, &headers) != 0)
        return FERRY_CODE_NO_MEMORY;
    /* Out of q first: publishing the copy dispatches `to`, which may
     * dead-letter into q and dispatch it, and must not find m there. */
    queue_remove_ready(q, m);
    struct ferry_bytes h = { headers.data + headers.off, ferry_buf_pending(&headers) };
    code = broker_publish_copy(b, dest, m, h);
    ferry_buf_free(&headers);
    if (code != FERRY_CODE_OK) {
        queue_push_front(q, m); /* refused before anything was dispatched */
        return code;
    }
    /* Logged in its new queue before it is settled in this one. */
    dispatch_forget(b, m);
    return FERRY_CODE_OK;
}

enum ferry_code broker_move(struct broker *b, struct ferry_bytes queue, struct ferry_bytes to,
                            uint64_t max, uint64_t *moved)
{
    *moved = 0;
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, false, &q);
    if (code != FERRY_CODE_OK)
        return code;
    if (to.len > 0 && !ferry_name_valid(to))
        return FERRY_CODE_BAD_NAME;
    if (same_name(to, queue_name(q)))
        return FERRY_CODE_BAD_REQUEST; /* it would move the same messages for ever */
    /* Only what is ready now: what moves in meanwhile is not moved again.
     * And at most FERRY_MOVE_MAX, looking at twice that at most (expired
     * ones are taken out on the way): one request holds the loop that long. */
    if (max == 0 || max > FERRY_MOVE_MAX)
        max = FERRY_MOVE_MAX;
    uint64_t ready = q->stats.depth, looked = 0;
    if (ready > 2 * (uint64_t)FERRY_MOVE_MAX)
        ready = 2 * (uint64_t)FERRY_MOVE_MAX;
    uint64_t now = 0;
    bool expired = false;
    while (*moved < max && looked < ready) {
        struct message *m = queue_first_ready(q);
        if (m == NULL)
            break;
        looked++;
        if (m->expires_at != 0 && expiry_passed(b, m, &now)) {
            /* Never delivered, never moved: it expires as dispatch would. */
            queue_remove_ready(q, m);
            expiry_expire(b, m);
            expired = true;
            continue;
        }
        struct ferry_bytes target = to.len > 0 ? to : header_value(m, DLQ_QUEUE);
        if (!ferry_name_valid(target) || same_name(target, queue_name(q)))
            break; /* not a dead letter: the move stops before it */
        code = move_one(b, q, m, target);
        if (code != FERRY_CODE_OK)
            break;
        (*moved)++;
    }
    if (*moved > 0 || expired)
        dispatch_settled(q); /* EOS and JOINs of q */
    return *moved == 0 && code != FERRY_CODE_OK ? code : FERRY_CODE_OK;
}
