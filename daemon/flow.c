/*
 * flow.c - flow control: a queue's bounds (max_length, max_bytes) and the
 * broker's max_memory, what a publish meets at them (block, reject,
 * drop-oldest), and the sessions parked by the block policy, woken first
 * parked first once room is made. Knows sessions only as core.h shows
 * them; nothing of connections: a parked session's connection is told
 * through session_ops.unblocked.
 */
#include "core.h"

/* Parked sessions are woken once their queue (or memory) is below the
 * bound by this fraction of it (at least one message or byte): a wake
 * then lets many publishes through, instead of one retry per ack. */
#define RESUME_SLACK_DIVISOR 16u

/* Where a publish overflows. */
enum overflow_at { FITS, AT_QUEUE, AT_MEMORY };

static uint64_t memory_of(uint64_t messages, uint64_t bytes)
{
    return bytes + messages * (uint64_t)BROKER_MESSAGE_OVERHEAD;
}

/* The level at or below which sessions parked on `bound` are woken. */
static uint64_t resume_level(uint64_t bound)
{
    uint64_t slack = bound / RESUME_SLACK_DIVISOR;
    return bound - (slack > 0 ? slack : 1);
}

/* Ready, delayed and in flight: every message the queue holds. */
static uint64_t queue_length(const struct queue *q)
{
    return q->stats.depth + q->stats.delayed + q->stats.inflight;
}

static bool over(uint64_t bound, uint64_t now, uint64_t more)
{
    return bound != 0 && now + more > bound;
}

static enum overflow_at overflow_of(const struct broker *b, const struct queue *q, uint64_t n,
                                    uint64_t bytes)
{
    const struct queue_settings *s = &q->settings;
    if (over(s->max_length, queue_length(q), n) || over(s->max_bytes, q->stats.bytes, bytes))
        return AT_QUEUE;
    if (over(b->max_memory, broker_memory(b), memory_of(n, bytes)))
        return AT_MEMORY;
    return FITS;
}

/* Larger than a bound: no amount of waiting or dropping makes it fit. */
static bool never_fits(const struct broker *b, const struct queue *q, uint64_t n, uint64_t bytes)
{
    const struct queue_settings *s = &q->settings;
    return over(s->max_length, 0, n) || over(s->max_bytes, 0, bytes) ||
           over(b->max_memory, 0, memory_of(n, bytes));
}

/* How many of q's ready messages must go, in drop order (queue.h: the
 * oldest of the lowest priority first), for n messages of `bytes` to fit;
 * false if all of them are not enough (in flight and delayed ones stay). */
static bool count_oldest(const struct broker *b, const struct queue *q, uint64_t n, uint64_t bytes,
                         uint64_t *count)
{
    const struct queue_settings *s = &q->settings;
    uint64_t length = queue_length(q), qbytes = q->stats.bytes;
    uint64_t memory = broker_memory(b);
    uint64_t dropped = 0;
    const struct message *m = queue_first_to_drop(q);
    for (;;) {
        if (!over(s->max_length, length, n) && !over(s->max_bytes, qbytes, bytes) &&
            !over(b->max_memory, memory, memory_of(n, bytes))) {
            *count = dropped;
            return true;
        }
        if (m == NULL)
            return false;
        uint64_t size = (uint64_t)m->headers_len + m->payload_len;
        length--;
        qbytes -= size;
        memory -= memory_of(1, size);
        dropped++;
        m = queue_next_to_drop(q, m);
    }
}

/* ---- parking ---- */

static void park(struct park_list *list, struct session *s)
{
    s->parked_in = list;
    s->park_next = NULL;
    s->park_prev = list->tail;
    if (list->tail != NULL)
        list->tail->park_next = s;
    else
        list->head = s;
    list->tail = s;
    list->count++;
}

void flow_unpark(struct session *s)
{
    struct park_list *list = s->parked_in;
    if (list == NULL)
        return;
    if (s->park_prev != NULL)
        s->park_prev->park_next = s->park_next;
    else
        list->head = s->park_next;
    if (s->park_next != NULL)
        s->park_next->park_prev = s->park_prev;
    else
        list->tail = s->park_prev;
    list->count--;
    s->parked_in = NULL;
    s->park_next = NULL;
    s->park_prev = NULL;
}

/* Wakes the whole list, first parked first. A callback only schedules
 * the retry, so nothing here is re-entered. */
static void wake(struct park_list *list)
{
    struct session *s;
    while ((s = list->head) != NULL) {
        flow_unpark(s);
        s->ops->unblocked(s->owner);
    }
}

void flow_wake_all(struct broker *b, struct queue *q)
{
    wake(q != NULL ? &q->parked : &b->parked);
}

void flow_room_made(struct broker *b, struct queue *q)
{
    if (q->parked.head != NULL) {
        const struct queue_settings *s = &q->settings;
        bool below = (s->max_length == 0 || queue_length(q) <= resume_level(s->max_length)) &&
                     (s->max_bytes == 0 || q->stats.bytes <= resume_level(s->max_bytes));
        if (below)
            wake(&q->parked);
    }
    if (b->parked.head != NULL &&
        (b->max_memory == 0 || broker_memory(b) <= resume_level(b->max_memory)))
        wake(&b->parked);
}

/* ---- admission ---- */

static enum ferry_code refuse(struct queue *q)
{
    q->stats.rejected++;
    return FERRY_CODE_QUEUE_FULL;
}

enum ferry_code flow_admit(struct broker *b, struct queue *q, struct session *from,
                           uint64_t n, uint64_t bytes, uint64_t *drop)
{
    *drop = 0;
    const struct queue_settings *s = &q->settings;
    if (s->max_length == 0 && s->max_bytes == 0 && b->max_memory == 0)
        return FERRY_CODE_OK; /* the common case: no bound at all */

    enum overflow_at at = overflow_of(b, q, n, bytes);
    if (at == FITS && q->parked.head == NULL && b->parked.head == NULL)
        return FERRY_CODE_OK; /* room, and nobody waiting for it */
    /* Only a pure producer is parked: no delivery in flight, no
     * subscription, no waiting GET. Its connection is not read while it
     * is, so it could not ack; its deliveries would hold the room others
     * wait for; and a consumer that stopped consuming could be the one a
     * queue waits for to drain, so that parked sessions could wait for
     * each other in a cycle. A parked session holds nothing and takes
     * nothing: whatever makes room never waits for it. */
    bool may_park = s->overflow == QUEUE_OVERFLOW_BLOCK && from != NULL &&
                    from->tags.count == 0 && from->consumers == NULL &&
                    from->parked_in == NULL;
    struct park_list *ahead = q->parked.head != NULL ? &q->parked
                              : b->parked.head != NULL && b->max_memory != 0 ? &b->parked
                              : NULL;
    if (at == FITS && !(may_park && ahead != NULL))
        return FERRY_CODE_OK;
    if (never_fits(b, q, n, bytes))
        return refuse(q);

    switch (s->overflow) {
    case QUEUE_OVERFLOW_DROP_OLDEST:
        return count_oldest(b, q, n, bytes, drop) ? FERRY_CODE_OK : refuse(q);
    case QUEUE_OVERFLOW_REJECT:
        return refuse(q);
    case QUEUE_OVERFLOW_BLOCK:
        break;
    }
    if (!may_park)
        return refuse(q);
    if (at == AT_QUEUE)
        park(&q->parked, from);
    else if (at == AT_MEMORY)
        park(&b->parked, from);
    else
        park(ahead, from); /* it fits, but others wait for this room first */
    q->stats.blocked++;
    return FERRY_CODE_QUEUE_FULL;
}

void flow_drop_oldest(struct broker *b, struct queue *q, uint64_t count)
{
    for (uint64_t i = 0; i < count; i++) {
        struct message *m = queue_pop_to_drop(q);
        q->stats.dropped_oldest++;
        dispatch_forget(b, m); /* settles it in the journal if durable */
    }
}
