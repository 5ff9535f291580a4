/*
 * session.c - what a connection does to the broker: the session's life,
 * subscriptions and credit, GETs, JOINs, acks and nacks, and taking back
 * its deliveries in flight when it goes. Knows nothing of frames or
 * sockets: a connection is its session_ops.
 */
#include <stdlib.h>

#include "core.h"
#include "core_alloc.h"

/* ---- queues to dispatch after a change that touched several ---- */

/* Linked through the queues themselves, so gathering them cannot fail.
 * Dispatch never frees a queue, so they all live until the list is run. */
static void work_add(struct queue **work, struct queue *q)
{
    if (q->in_work)
        return;
    q->in_work = true;
    q->work_next = *work;
    *work = q;
}

static void work_dispatch(struct queue *work)
{
    while (work != NULL) {
        struct queue *q = work;
        work = q->work_next;
        q->work_next = NULL;
        q->in_work = false;
        dispatch(q);
    }
}

/* ---- taking deliveries back ---- */

/* An in-flight message is dropped (a nack without requeue). */
static void drop_in_flight(struct broker *b, struct message *m)
{
    struct queue *q = m->queue;
    q->stats.inflight--;
    q->stats.dropped++;
    dispatch_forget(b, m);
    dispatch_settled(q);
}

/* The delivery no longer has an ack deadline (it is settled or taken back). */
static void disarm_deadline(struct broker *b, struct message *m)
{
    if (timer_armed(&m->timer))
        timer_disarm(&b->timers, &m->timer);
}

static int later_first(const void *a, const void *b)
{
    uint64_t x = ((const struct tag_entry *)a)->message->seq;
    uint64_t y = ((const struct tag_entry *)b)->message->seq;
    return (x < y) - (x > y);
}

/* Every delivery in flight on s goes back to the front of its queue. */
static void take_back_all(struct broker *b, struct session *s)
{
    struct tag_entry *entries;
    size_t n = tags_drain(&s->tags, &entries);
    struct queue *work = NULL;

    /* Sorted in place (the table is done with), latest first: pushing each
     * to the front then leaves every queue's share in publish order.
     * Messages of different queues compare meaninglessly, which is
     * harmless: each queue still sees its own in descending order. */
    if (n > 1)
        qsort(entries, n, sizeof *entries, later_first);
    for (size_t i = 0; i < n; i++) {
        dispatch_slot_freed(entries[i].consumer);
        disarm_deadline(b, entries[i].message);
        struct queue *q = retry_take_back(b, entries[i].message, RETRY_LOST, 0);
        if (q != NULL)
            work_add(&work, q);
    }
    /* Only once all are back, or the first redelivered would pass the others. */
    work_dispatch(work);
}

/* ---- the session ---- */

struct session *broker_session_new(struct broker *b, const struct session_ops *ops, void *owner)
{
    struct session *s = core_calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->ops = ops;
    s->owner = owner;
    s->next_tag = 1;
    s->writable = true;
    tags_init(&s->tags);
    id_map_init(&s->subs, b->seed);
    id_map_init(&s->gets, b->seed);
    return s;
}

void broker_session_free(struct broker *b, struct session *s)
{
    if (s == NULL)
        return;
    /* Detach everything first, so that nothing below calls back into s. */
    flow_unpark(s);
    while (s->consumers != NULL)
        dispatch_detach(s->consumers);
    while (s->joins != NULL)
        dispatch_join_cancel(s->joins);
    take_back_all(b, s);
    /* With its deliveries back, its temporary queues go with everything in them. */
    temp_queues_delete_all(b, s);
    tags_free(&s->tags);
    id_map_free(&s->subs);
    id_map_free(&s->gets);
    free(s);
}

size_t broker_session_subscriptions(const struct session *s)
{
    return s->subs.count;
}

/* Puts s's consumers into their rings or out as they now may take
 * messages, and dispatches their queues if `resume`. */
static void refresh_consumers(struct session *s, bool resume)
{
    struct queue *work = NULL;
    for (struct consumer *c = s->consumers; c != NULL; c = c->session_next) {
        dispatch_refresh(c);
        if (resume)
            work_add(&work, c->queue);
    }
    /* Dispatch may serve (and free) this session's GETs: the walk above is over. */
    work_dispatch(work);
}

size_t broker_session_inflight(const struct session *s)
{
    return s->tags.count;
}

void broker_session_set_writable(struct broker *b, struct session *s, bool writable)
{
    (void)b;
    if (s->writable == writable)
        return;
    s->writable = writable;
    refresh_consumers(s, writable);
}

bool broker_session_parked(const struct session *s)
{
    return s->parked_in != NULL;
}

/* ---- subscriptions ---- */

enum ferry_code broker_consume(struct broker *b, struct session *s, struct ferry_bytes queue,
                               uint64_t sub, uint64_t credit)
{
    return broker_consume_opts(b, s, queue, sub, credit, NULL);
}

enum ferry_code broker_consume_opts(struct broker *b, struct session *s, struct ferry_bytes queue,
                                    uint64_t sub, uint64_t credit, const struct consume_options *o)
{
    if (sub == 0 || credit == 0 || credit > UINT32_MAX)
        return FERRY_CODE_BAD_REQUEST;
    uint64_t deadline_ms = o != NULL ? o->ack_deadline_ms : 0;
    if (deadline_ms > FERRY_DELAY_MAX_MS)
        return FERRY_CODE_BAD_REQUEST;
    if (!ferry_name_valid(queue))
        return FERRY_CODE_BAD_NAME;
    if (id_map_get(&s->subs, sub) != NULL)
        return FERRY_CODE_SUB_EXISTS;

    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, true, &q);
    if (code != FERRY_CODE_OK)
        return code;
    if (q->stats.consumers >= b->max_consumers_per_queue)
        return FERRY_CODE_LIMIT;
    if (id_map_reserve(&s->subs) != 0)
        return FERRY_CODE_NO_MEMORY;
    struct consumer *c = core_calloc(1, sizeof *c);
    if (c == NULL)
        return FERRY_CODE_NO_MEMORY;
    c->session = s;
    c->sub = sub;
    c->window = credit;
    c->ack_deadline_ms = deadline_ms;
    dispatch_attach(c, q);

    if (q->stats.ended && queue_drained(q))
        s->ops->end_of_stream(s->owner, sub, queue_name(q));
    else
        dispatch(q);
    return FERRY_CODE_OK;
}

enum ferry_code broker_credit(struct broker *b, struct session *s, uint64_t sub, uint64_t n)
{
    (void)b;
    struct consumer *c = id_map_get(&s->subs, sub);
    if (c == NULL)
        return FERRY_CODE_UNKNOWN_SUB;
    c->window = n > UINT64_MAX - c->window ? UINT64_MAX : c->window + n;
    dispatch_refresh(c);
    dispatch(c->queue);
    return FERRY_CODE_OK;
}

enum ferry_code broker_cancel(struct broker *b, struct session *s, uint64_t sub)
{
    (void)b;
    struct consumer *c = id_map_get(&s->subs, sub);
    if (c == NULL)
        return FERRY_CODE_UNKNOWN_SUB;
    dispatch_detach(c);
    return FERRY_CODE_OK;
}

/* ---- settling deliveries ---- */

enum ferry_code broker_ack(struct broker *b, struct session *s, uint64_t tag)
{
    struct tag_entry e;
    if (!tags_take(&s->tags, tag, &e))
        return FERRY_CODE_UNKNOWN_TAG;
    struct queue *q = e.message->queue;
    dispatch_slot_freed(e.consumer);
    disarm_deadline(b, e.message); /* one branch when no deadline is used */
    q->stats.inflight--;
    q->stats.acked++;
    dispatch_forget(b, e.message);
    dispatch_settled(q);
    return FERRY_CODE_OK;
}

/* A nack with requeue (after delay_ms) or without. */
static enum ferry_code nack(struct broker *b, struct session *s, uint64_t tag, bool requeue,
                            uint64_t delay_ms)
{
    struct tag_entry e;
    if (!tags_take(&s->tags, tag, &e))
        return FERRY_CODE_UNKNOWN_TAG;
    dispatch_slot_freed(e.consumer);
    disarm_deadline(b, e.message);
    if (!requeue) {
        drop_in_flight(b, e.message);
        return FERRY_CODE_OK;
    }
    struct queue *q = retry_take_back(b, e.message, RETRY_NACK, delay_ms);
    if (q != NULL)
        dispatch(q);
    return FERRY_CODE_OK;
}

enum ferry_code broker_nack(struct broker *b, struct session *s, uint64_t tag, bool requeue)
{
    return nack(b, s, tag, requeue, 0);
}

enum ferry_code broker_nack_delay(struct broker *b, struct session *s, uint64_t tag,
                                  uint64_t delay_ms)
{
    if (delay_ms > FERRY_DELAY_MAX_MS)
        return FERRY_CODE_BAD_REQUEST;
    return nack(b, s, tag, true, delay_ms);
}

enum ferry_code broker_touch(struct broker *b, struct session *s, uint64_t tag,
                             uint64_t deadline_ms)
{
    if (deadline_ms > FERRY_DELAY_MAX_MS)
        return FERRY_CODE_BAD_REQUEST;
    struct tag_entry *e = tags_find(&s->tags, tag);
    if (e == NULL)
        return FERRY_CODE_UNKNOWN_TAG;
    struct message *m = e->message;
    if (deadline_ms == 0)
        deadline_ms = retry_deadline_of(e->consumer, m->queue);
    if (deadline_ms == 0)
        return FERRY_CODE_OK; /* no deadline to move */
    if (!timer_armed(&m->timer) && timer_heap_reserve(&b->timers) != 0)
        return FERRY_CODE_NO_MEMORY;
    retry_arm_deadline(b, m, s, tag, deadline_ms);
    return FERRY_CODE_OK;
}

/* ---- GET and JOIN ---- */

enum ferry_code broker_get(struct broker *b, struct session *s, struct ferry_bytes queue, uint64_t rid)
{
    if (rid == 0 || id_map_get(&s->gets, rid) != NULL)
        return FERRY_CODE_BAD_REQUEST;

    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, true, &q);
    if (code != FERRY_CODE_OK)
        return code;
    if (q->stats.ended && queue_drained(q)) {
        s->ops->get_ended(s->owner, rid);
        return FERRY_CODE_OK;
    }
    if (id_map_reserve(&s->gets) != 0)
        return FERRY_CODE_NO_MEMORY;
    struct consumer *c = core_calloc(1, sizeof *c);
    if (c == NULL)
        return FERRY_CODE_NO_MEMORY;
    c->session = s;
    c->rid = rid;
    c->window = 1;
    dispatch_attach(c, q);
    dispatch(q);
    return FERRY_CODE_OK;
}

bool broker_get_cancel(struct broker *b, struct session *s, uint64_t rid)
{
    (void)b;
    struct consumer *c = id_map_get(&s->gets, rid);
    if (c == NULL)
        return false;
    dispatch_detach(c);
    return true;
}

enum ferry_code broker_join(struct broker *b, struct session *s, struct ferry_bytes queue, uint64_t rid)
{
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, false, &q);
    if (code == FERRY_CODE_NOT_FOUND) {
        /* A queue that does not exist holds no work: like queue.join()
         * on an empty queue, the answer is immediate. */
        s->ops->join_done(s->owner, rid, FERRY_CODE_OK);
        return FERRY_CODE_OK;
    }
    if (code != FERRY_CODE_OK)
        return code;
    /* Every message not yet settled was published before this call. */
    uint64_t pending = q->stats.depth + q->stats.inflight + q->stats.delayed;
    if (pending == 0) {
        s->ops->join_done(s->owner, rid, FERRY_CODE_OK);
        return FERRY_CODE_OK;
    }
    struct join_waiter *w = core_calloc(1, sizeof *w);
    if (w == NULL)
        return FERRY_CODE_NO_MEMORY;
    w->session = s;
    w->rid = rid;
    w->mark = q->next_seq;
    w->remaining = pending;
    dispatch_join_attach(w, q);
    return FERRY_CODE_OK;
}
