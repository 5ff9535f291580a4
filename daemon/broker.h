/*
 * broker.h - the broker's core: named queues, messages, subscriptions,
 * delivery tags, acknowledgement, redelivery, end-of-stream and join.
 *
 * Owns every message and queue. Knows nothing of sockets, frames or
 * libevent: a connection appears here only as a `struct session` with a
 * table of callbacks, so this whole layer runs in unit tests without a
 * socket (tests/unit/test_broker.c).
 *
 * Everything happens on the daemon's single loop thread; nothing here
 * locks. Dispatch is immediate: any call that makes a message deliverable
 * (publish, ack, credit, nack, a session becoming writable) delivers it
 * before returning, through session_ops.deliver.
 */
#ifndef FERRY_BROKER_H
#define FERRY_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_proto.h"

struct broker;
struct session;
struct queue;

/* A message as the broker holds it: one allocation, headers then payload
 * in data[]. Owned by its queue from publish until it is acked or dropped;
 * while in flight the session's tag table points at it but does not own it. */
struct message {
    struct message *next;   /* ready list links; NULL while in flight */
    struct message *prev;
    struct queue *queue;    /* the queue it was published to */
    uint64_t seq;           /* per-queue publish order, from 1 */
    uint32_t attempts;      /* deliveries so far */
    uint32_t headers_len;   /* raw msgpack map at data[0], 0 if none */
    uint32_t payload_len;   /* payload at data[headers_len] */
    uint8_t data[];
};

static inline struct ferry_bytes message_payload(const struct message *m)
{
    return (struct ferry_bytes){ m->data + m->headers_len, m->payload_len };
}
static inline struct ferry_bytes message_headers(const struct message *m)
{
    return (struct ferry_bytes){ m->data, m->headers_len };
}

/* How the broker talks back to a connection. Each callback gets the
 * `owner` pointer given to broker_session_new. None may call back into
 * the broker, with one exception: a callback may call
 * broker_session_set_writable(b, s, false) for its own session (the one
 * `owner` belongs to), and dispatch then stops delivering to that session
 * at once, even in the middle of a loop (a CREDIT of 2^32 must not fill
 * one connection's output without bound). */
struct session_ops {
    /* Send a DELIVER: for a subscription (sub != 0) or for a GET (rid != 0).
     * `m` stays valid at least until the tag is acked, nacked, or the
     * session is freed; the callee copies what it sends. */
    void (*deliver)(void *owner, uint64_t sub, uint64_t rid, uint64_t tag,
                    const struct message *m);
    /* Send an EOS for subscription `sub` of queue `name`. */
    void (*end_of_stream)(void *owner, uint64_t sub, struct ferry_bytes name);
    /* Send the answer to a JOIN (code OK, or NOT_FOUND if the queue was
     * deleted while waiting). */
    void (*join_done)(void *owner, uint64_t rid, enum ferry_code code);
    /* Send the answer to a GET that found the queue ended and drained. */
    void (*get_ended)(void *owner, uint64_t rid);
};

/* Limits the broker enforces; zero means "no limit" except where noted. */
struct broker_limits {
    size_t max_queues;              /* default 10000 when 0 */
    size_t max_consumers_per_queue; /* default 10000 when 0; subscriptions, not GETs */
};

/* Per-queue counters and gauges, as STATS reports them. */
struct queue_stats {
    uint64_t depth, inflight, consumers;
    uint64_t published, delivered, acked, redelivered, dropped;
    uint64_t bytes;
    bool ended;
};

/* Creates an empty broker. NULL on ENOMEM. */
struct broker *broker_new(const struct broker_limits *limits);
/* Frees every queue and message. All sessions must be freed first. */
void broker_free(struct broker *b);

/* Registers a connection. NULL on ENOMEM. */
struct session *broker_session_new(struct broker *b, const struct session_ops *ops, void *owner);
/* Unregisters a connection: cancels its subscriptions, GETs and JOINs,
 * and puts its unacked messages back at the front of their queues in
 * publish order, to be redelivered with a higher attempt count. */
void broker_session_free(struct broker *b, struct session *s);
/* A session that cannot take more output is skipped by dispatch until it
 * is writable again (then dispatch resumes at once). */
void broker_session_set_writable(struct broker *b, struct session *s, bool writable);

/* Appends a message to the named queue, creating the queue if needed.
 * headers is a validated raw msgpack map or empty. Copies both.
 * OK, BAD_NAME, ENDED, LIMIT, NO_MEMORY. */
enum ferry_code broker_publish(struct broker *b, struct ferry_bytes queue,
                               struct ferry_bytes payload, struct ferry_bytes headers);

/* Subscribes: at most `credit` unacked messages at once (credit >= 1).
 * OK, BAD_NAME, SUB_EXISTS, LIMIT, BAD_REQUEST, NO_MEMORY. If the queue is
 * already ended and drained, EOS is sent at once. */
enum ferry_code broker_consume(struct broker *b, struct session *s, struct ferry_bytes queue,
                               uint64_t sub, uint64_t credit);
/* Widens a subscription's window by n. OK, UNKNOWN_SUB. */
enum ferry_code broker_credit(struct broker *b, struct session *s, uint64_t sub, uint64_t n);
/* Ends a subscription; its unacked messages stay in flight. OK, UNKNOWN_SUB. */
enum ferry_code broker_cancel(struct broker *b, struct session *s, uint64_t sub);

/* Settles a delivery: ack frees the message; nack requeues it at the
 * front of its queue or drops it. OK, UNKNOWN_TAG. */
enum ferry_code broker_ack(struct broker *b, struct session *s, uint64_t tag);
enum ferry_code broker_nack(struct broker *b, struct session *s, uint64_t tag, bool requeue);

/* One-shot receive: delivers the next ready message through
 * ops->deliver(rid), now or when one arrives; or ops->get_ended when the
 * queue is ended and drained. OK, BAD_NAME, BAD_REQUEST (rid in use or 0),
 * LIMIT (creating the queue would pass max_queues), NO_MEMORY. */
enum ferry_code broker_get(struct broker *b, struct session *s, struct ferry_bytes queue, uint64_t rid);
/* Withdraws a waiting GET (its time ran out). true if it was still waiting. */
bool broker_get_cancel(struct broker *b, struct session *s, uint64_t rid);

/* Queue administration. OK, BAD_NAME, NOT_FOUND (delete, purge, end,
 * reopen of an unknown queue), LIMIT, NO_MEMORY.
 * Delete drops ready messages, ends each subscription with EOS, fails
 * pending JOINs with NOT_FOUND; in-flight messages may still be acked. */
enum ferry_code broker_declare(struct broker *b, struct ferry_bytes queue);
enum ferry_code broker_delete(struct broker *b, struct ferry_bytes queue);
enum ferry_code broker_purge(struct broker *b, struct ferry_bytes queue, uint64_t *purged);
enum ferry_code broker_end(struct broker *b, struct ferry_bytes queue);
enum ferry_code broker_reopen(struct broker *b, struct ferry_bytes queue);

/* Answers through ops->join_done once every message published to the
 * queue before this call is acked or dropped (at once if none is pending,
 * or if the queue does not exist). OK (request accepted), BAD_NAME, NO_MEMORY. */
enum ferry_code broker_join(struct broker *b, struct session *s, struct ferry_bytes queue, uint64_t rid);

/* Statistics. broker_queue_stats: NOT_FOUND or OK. broker_each_queue
 * calls fn for every queue in name order-independent order; fn must not
 * call into the broker. */
enum ferry_code broker_queue_stats(struct broker *b, struct ferry_bytes queue, struct queue_stats *out);
void broker_each_queue(struct broker *b,
                       void (*fn)(void *arg, struct ferry_bytes name, const struct queue_stats *st),
                       void *arg);
size_t broker_queue_count(const struct broker *b);
/* Messages (ready + in flight) and their payload+header bytes, all queues. */
uint64_t broker_message_count(const struct broker *b);
uint64_t broker_message_bytes(const struct broker *b);

#endif
