/*
 * dispatch.c - moves messages between a queue and its consumers: round-robin
 * delivery, the consumers' windows and lifetime, settlement, and the EOS and
 * JOIN answers that settlement triggers. Knows sessions only as core.h shows
 * them; nothing of frames or sockets.
 */
#include <stdlib.h>

#include "core.h"

/* Callbacks. A session is called back only for its attached consumers and
 * JOINs (a GET is detached just before its answer), and a session being
 * freed has none left. A callback may make its own session unwritable
 * (broker.h): so every change of state is complete before a callback, and
 * every walk survives consumers moving between a queue's ring and idle list. */

static uint64_t message_size(const struct message *m)
{
    return (uint64_t)m->headers_len + m->payload_len;
}

/* ---- consumers ---- */

static bool consumer_has_room(const struct consumer *c)
{
    return c->session->writable && c->inflight < c->window;
}

void dispatch_attach(struct consumer *c, struct queue *q)
{
    struct session *s = c->session;
    /* The session owns c from here. */
    if (c->sub != 0)
        id_map_put(&s->subs, c->sub, c);
    else
        id_map_put(&s->gets, c->rid, c);
    c->session_prev = NULL;
    c->session_next = s->consumers;
    if (s->consumers != NULL)
        s->consumers->session_prev = c;
    s->consumers = c;
    queue_add_consumer(q, c, consumer_has_room(c));
}

void dispatch_detach(struct consumer *c)
{
    struct session *s = c->session;
    queue_remove_consumer(c->queue, c);
    if (c->sub != 0)
        id_map_remove(&s->subs, c->sub);
    else
        id_map_remove(&s->gets, c->rid);
    if (c->session_prev != NULL)
        c->session_prev->session_next = c->session_next;
    else
        s->consumers = c->session_next;
    if (c->session_next != NULL)
        c->session_next->session_prev = c->session_prev;
    c->session_next = NULL;
    c->session_prev = NULL;
    if (c->inflight == 0)
        free(c);
    /* Otherwise the session's tag table still points at c, and the last of
     * its deliveries to be settled frees it (dispatch_slot_freed). */
}

void dispatch_refresh(struct consumer *c)
{
    queue_set_consumer_ready(c->queue, c, consumer_has_room(c));
}

void dispatch_slot_freed(struct consumer *c)
{
    if (c == NULL)
        return;
    c->inflight--;
    if (c->queue != NULL)
        dispatch_refresh(c);
    else if (c->inflight == 0)
        free(c); /* detached, and this was its last delivery in flight */
}

/* ---- delivery ---- */

/* Hands m (just taken from q's ready list) to c, with an ack deadline of
 * deadline_ms (0: none). The session's tag table must have room
 * (tags_reserve), and the broker's timers too if there is a deadline. */
static void deliver(struct consumer *c, struct message *m, uint64_t deadline_ms)
{
    struct session *s = c->session;
    struct queue *q = m->queue;
    uint64_t tag = s->next_tag++;
    uint64_t sub = c->sub;
    uint64_t rid = c->rid;

    m->state = MESSAGE_INFLIGHT;
    m->attempts++;
    /* Logged before the DELIVER can reach the consumer (ferryd writes
     * sockets only after the journal's flush), so that after a crash the
     * message comes back with a count above any the consumer saw. */
    broker_log_attempts(q->broker, m);
    q->stats.inflight++;
    q->stats.delivered++;
    if (m->attempts > 1)
        q->stats.redelivered++;
    /* The queue keeps owning m; the tag table only points at it until the
     * delivery is settled or the session goes. */
    tags_insert(&s->tags, tag, m, sub != 0 ? c : NULL);
    if (deadline_ms != 0)
        retry_arm_deadline(q->broker, m, s, tag, deadline_ms);
    if (sub != 0) {
        c->inflight++;
        dispatch_refresh(c);
    } else {
        dispatch_detach(c); /* a GET is served once */
    }
    s->ops->deliver(s->owner, sub, rid, tag, m);
}

void dispatch(struct queue *q)
{
    /* Each turn delivers one ready message, and a consumer leaves the ring
     * as soon as it has no room: no consumer is looked at without being
     * served. An expired message is never delivered, nor one whose
     * attempts are used up (after a restart, or a reload that lowered
     * max_attempts): they are taken out on the way; the clock is read only
     * if a message has an expiry. */
    uint64_t now = 0;
    bool taken_out = false;
    while (queue_has_ready(q) && q->cursor != NULL) {
        struct message *m = queue_pop_front(q);
        if (m->expires_at != 0 && expiry_passed(q->broker, m, &now)) {
            expiry_expire(q->broker, m);
            taken_out = true;
            continue;
        }
        if (q->settings.max_attempts != 0 && m->attempts >= q->settings.max_attempts) {
            if (!retry_dead_letter_ready(q->broker, m))
                break; /* back at the front: the next dispatch of q tries again */
            taken_out = true;
            continue;
        }
        struct consumer *c = queue_next_consumer(q);
        uint64_t deadline = retry_deadline_of(c, q);
        if (tags_reserve(&c->session->tags) != 0 ||
            (deadline != 0 && timer_heap_reserve(&q->broker->timers) != 0)) {
            queue_push_front(q, m); /* out of memory: ready again; the next dispatch of q retries */
            break;
        }
        deliver(c, m, deadline);
    }
    /* Publishes are refused once ended, so this may be the moment it drains. */
    if (taken_out && q->stats.ended && queue_drained(q))
        dispatch_end_of_stream(q);
}

/* ---- waiting for a time ---- */

void dispatch_wait(struct broker *b, struct message *m, uint64_t due)
{
    queue_add_waiting(m->queue, m);
    timer_arm(&b->timers, &m->timer, due);
}

void dispatch_unwait(struct broker *b, struct message *m)
{
    timer_disarm(&b->timers, &m->timer);
    queue_remove_waiting(m->queue, m);
}

void dispatch_timer_fired(struct broker *b, struct message *m)
{
    struct queue *q = m->queue;
    switch ((enum message_state)m->state) {
    case MESSAGE_WAITING:
        /* Its time came: it queues as if published now, behind the others. */
        queue_remove_waiting(q, m);
        queue_push_back(q, m);
        dispatch(q);
        return;
    case MESSAGE_INFLIGHT:
        retry_deadline_passed(b, m); /* its ack deadline */
        return;
    case MESSAGE_READY:
        return; /* no timer is armed in this state */
    }
}

/* ---- settlement ---- */

static void count_down_joins(struct queue *q, uint64_t seq)
{
    struct join_waiter *w = q->joins;
    while (w != NULL) {
        struct join_waiter *next = w->next;
        if (seq < w->mark && --w->remaining == 0)
            dispatch_join_done(w, FERRY_CODE_OK);
        w = next;
    }
}

void dispatch_forget(struct broker *b, struct message *m)
{
    struct queue *q = m->queue;
    broker_log_settle(b, m);
    uint64_t size = message_size(m);
    q->stats.bytes -= size;
    b->bytes -= size;
    b->messages--;
    if (m->expires_at != 0) {
        q->expiring--;
        b->expiring--;
    }
    if (q->joins != NULL)
        count_down_joins(q, m->seq);
    free(m); /* the queue owned m; no list or tag table points at it any more */
    if (q->parked.head != NULL || b->parked.head != NULL)
        flow_room_made(b, q);
}

void dispatch_settled(struct queue *q)
{
    if (q->deleted) {
        if (q->stats.inflight == 0)
            queue_free(q); /* out of the name map: its last message kept it alive */
        return;
    }
    /* Publishes are refused once ended, so this is the moment it drains. */
    if (q->stats.ended && queue_drained(q))
        dispatch_end_of_stream(q);
    dispatch(q);
}

struct ending {
    bool tell_subscriptions;    /* send them EOS */
    bool remove_subscriptions;  /* and detach them */
};

static void end_consumer(struct consumer *c, void *arg)
{
    const struct ending *how = arg;
    struct session *s = c->session;
    uint64_t sub = c->sub;
    uint64_t rid = c->rid;

    if (sub != 0) {
        if (how->tell_subscriptions)
            s->ops->end_of_stream(s->owner, sub, queue_name(c->queue));
        if (how->remove_subscriptions)
            dispatch_detach(c);
        return;
    }
    dispatch_detach(c);
    s->ops->get_ended(s->owner, rid);
}

void dispatch_end_of_stream(struct queue *q)
{
    struct ending how = { .tell_subscriptions = true, .remove_subscriptions = false };
    queue_each_consumer(q, end_consumer, &how);
}

void dispatch_close_consumers(struct queue *q)
{
    /* Ended and drained: every subscription has had its one EOS already. */
    struct ending how = {
        .tell_subscriptions = !(q->stats.ended && queue_drained(q)),
        .remove_subscriptions = true,
    };
    queue_each_consumer(q, end_consumer, &how);
}

/* ---- joins ---- */

void dispatch_join_attach(struct join_waiter *w, struct queue *q)
{
    struct session *s = w->session;
    /* The session owns w from here. */
    w->session_prev = NULL;
    w->session_next = s->joins;
    if (s->joins != NULL)
        s->joins->session_prev = w;
    s->joins = w;
    queue_add_join(q, w);
}

void dispatch_join_cancel(struct join_waiter *w)
{
    struct session *s = w->session;
    queue_remove_join(w->queue, w);
    if (w->session_prev != NULL)
        w->session_prev->session_next = w->session_next;
    else
        s->joins = w->session_next;
    if (w->session_next != NULL)
        w->session_next->session_prev = w->session_prev;
    free(w);
}

void dispatch_join_done(struct join_waiter *w, enum ferry_code code)
{
    struct session *s = w->session;
    uint64_t rid = w->rid;
    dispatch_join_cancel(w);
    s->ops->join_done(s->owner, rid, code);
}
