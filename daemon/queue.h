/*
 * queue.h - one named queue: its ready messages (owned), one FIFO per
 * priority level with a bitmap of the non-empty ones, its
 * consumers (those with room in a round-robin ring, the others aside) and
 * JOIN waiters (linked, owned by their sessions), its counters. Knows
 * nothing of callbacks, tags or the name map: dispatch.c decides what moves.
 */
#ifndef FERRY_QUEUE_H
#define FERRY_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"

/* A receiver of messages on one queue: a subscription (sub != 0) or a
 * waiting GET (rid != 0), which is served once. Owned by its session; a
 * detached subscription (queue == NULL) lives on, owned by its deliveries
 * in flight, until the last one is settled. */
struct consumer {
    struct consumer *next;          /* queue's ring or idle list (circular) */
    struct consumer *prev;
    struct consumer *member_next;   /* queue's list of all its consumers */
    struct consumer *member_prev;
    struct consumer *session_next;  /* session's list of consumers */
    struct consumer *session_prev;
    struct queue *queue;            /* NULL once detached */
    struct session *session;
    uint64_t sub;                   /* subscription id, 0 for a GET */
    uint64_t rid;                   /* GET request id, 0 for a subscription */
    uint64_t window;                /* most deliveries unsettled at once */
    uint64_t ack_deadline_ms;       /* of its deliveries; 0: the queue's */
    uint64_t inflight;              /* deliveries not yet settled */
    bool in_ring;                   /* in the ring (can take a message now) */
};

/* A JOIN waiting for the messages published before it to be settled.
 * Owned by its session. */
struct join_waiter {
    struct join_waiter *next;       /* queue's list */
    struct join_waiter *prev;
    struct join_waiter *session_next;
    struct join_waiter *session_prev;
    struct queue *queue;
    struct session *session;
    uint64_t rid;
    uint64_t mark;                  /* messages with seq < mark count */
    uint64_t remaining;             /* of those, how many are unsettled */
};

/* Sessions parked by a publish to a full queue (policy block), first
 * parked first; linked through the sessions (core.h), owned by nobody. */
struct park_list {
    struct session *head;
    struct session *tail;
    size_t count;
};

/* The ready messages of one priority level, oldest first. */
struct ready_list {
    struct message *head;
    struct message *tail;
};

struct queue {
    struct ready_list ready[FERRY_PRIORITY_LEVELS]; /* by priority; owned */
    uint32_t ready_levels;          /* bit p set: ready[p] is not empty */
    struct message *sweep;          /* the ready message the expiry sweep looks
                                     * at next; NULL: start from the first */
    uint64_t expiring;              /* its messages with an expiry, held in any state */
    struct message *waiting;        /* messages waiting for their timer, in no
                                     * order (the broker's timer heap has
                                     * that); owned */
    struct consumer *cursor;        /* ring of consumers with room; next to serve */
    struct consumer *idle;          /* the other consumers (circular list) */
    struct consumer *members;       /* all consumers, in an order that moving
                                     * between ring and idle does not change */
    struct join_waiter *joins;
    struct park_list parked;        /* parked on this queue's bounds */
    struct queue *work_next;        /* a caller's list of queues to dispatch */
    bool in_work;
    bool deleted;                   /* out of the name map; lives for its in-flight messages */
    struct broker *broker;          /* that owns it; for the journal's calls */
    struct queue_settings settings;
    uint64_t next_seq;
    struct queue_stats stats;       /* kept up to date at every change (its
                                     * bounds and policy: see q->settings) */
    struct binding *bindings;       /* its bindings (the broker's trie owns them) */
    uint64_t fanout_epoch;          /* the last topic publish that chose it */
    struct session *owner;          /* a temporary queue's connection; NULL: none */
    struct queue *temp_next;        /* the owner's list of temporary queues */
    struct queue *temp_prev;
    size_t name_len;
    uint8_t name[];
};

/* A queue with no messages and no consumers. NULL on ENOMEM. */
struct queue *queue_new(struct ferry_bytes name);
/* Frees the struct; the caller has emptied it (messages, consumers, joins). */
void queue_free(struct queue *q);
struct ferry_bytes queue_name(const struct queue *q);
/* No message ready, waiting or in flight: every message published is settled. */
bool queue_drained(const struct queue *q);

/* The ready lists. push_back and push_front take ownership of m and put it
 * at the back or the front of its own level (m->priority). */
void queue_push_back(struct queue *q, struct message *m);
void queue_push_front(struct queue *q, struct message *m);
/* Takes the next message to deliver out of the lists: the oldest of the
 * highest non-empty level (NULL if none), in O(1). The queue still owns it
 * while it is in flight. */
struct message *queue_pop_front(struct queue *q);
/* Whether any message is ready. */
static inline bool queue_has_ready(const struct queue *q)
{
    return q->ready_levels != 0;
}
/* Takes ready message m out of its level (the queue still owns it). Every
 * unlink of a ready message goes through this or queue_pop_front, which
 * keep the sweep's place (q->sweep) valid. */
void queue_remove_ready(struct queue *q, struct message *m);
/* A walk of every ready message, in delivery order (highest level first,
 * oldest first within a level): the first, then the one after m; NULL
 * after the last. */
struct message *queue_first_ready(const struct queue *q);
struct message *queue_next_ready(const struct queue *q, const struct message *m);

/* The order drop-oldest takes ready messages in (flow.c): the oldest of
 * the lowest non-empty level first, and so on up. first/next walk it
 * (NULL after the last); pop takes the first out, as pop_front does. */
struct message *queue_first_to_drop(const struct queue *q);
struct message *queue_next_to_drop(const struct queue *q, const struct message *m);
struct message *queue_pop_to_drop(struct queue *q);

/* The waiting list (counted in stats.delayed). add takes ownership of m;
 * remove gives it back to the caller, with the queue still its owner. */
void queue_add_waiting(struct queue *q, struct message *m);
void queue_remove_waiting(struct queue *q, struct message *m);

/* Links c into the ring (ready) or aside, and counts subscriptions. */
void queue_add_consumer(struct queue *q, struct consumer *c, bool ready);
void queue_remove_consumer(struct queue *q, struct consumer *c);
/* Moves c into the ring or out of it. */
void queue_set_consumer_ready(struct queue *q, struct consumer *c, bool ready);
/* The consumer to serve next, round robin; NULL if none has room. */
struct consumer *queue_next_consumer(struct queue *q);
/* Calls fn for every consumer, in the ring or aside. fn may remove the
 * consumer it is given from the queue, and move any between ring and idle
 * (a session callback may make its session unwritable), but remove no
 * other. */
void queue_each_consumer(struct queue *q, void (*fn)(struct consumer *c, void *arg), void *arg);

void queue_add_join(struct queue *q, struct join_waiter *w);
void queue_remove_join(struct queue *q, struct join_waiter *w);

#endif
