/*
 * broker.h - the broker's core: named queues, messages, subscriptions,
 * delivery tags, acknowledgement, redelivery, end-of-stream and join.
 *
 * Owns every message and queue. Knows nothing of sockets, frames,
 * libevent or files: a connection appears here only as a `struct session`
 * with a table of callbacks, and the durable log as a `struct
 * broker_journal`, so this whole layer runs in unit tests without a
 * socket or a disk (tests/unit/test_broker.c).
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
#include <string.h>

#include "ferry_proto.h"
#include "timers.h"

struct broker;
struct session;
struct queue;

/* Where a message is; dispatch.c moves it from one state to another. */
enum message_state {
    MESSAGE_READY,          /* in its queue's ready list */
    MESSAGE_INFLIGHT,       /* delivered and not settled: in a session's tag table */
    MESSAGE_WAITING,        /* held back until its timer (a delayed publish, a nack's
                             * delay, a backoff): in its queue's waiting list */
};

/* A message as the broker holds it: one allocation, headers then payload
 * in data[]. Owned by its queue from publish until it is acked or dropped;
 * while in flight the session's tag table points at it but does not own it. */
struct message {
    union {
        struct {                /* ready or waiting: its list links */
            struct message *next;
            struct message *prev;
        };
        struct {                /* in flight with a deadline: the delivery */
            struct session *holder;
            uint64_t tag;
        };
    };
    struct queue *queue;    /* the queue it was published to */
    uint64_t seq;           /* per-queue publish order, from 1 */
    uint64_t store_id;      /* its id in the journal (durable queues); 0: not logged */
    uint64_t expires_at;    /* broker clock ms from which it is never delivered; 0: never */
    struct timer timer;     /* armed while waiting (fires at the end of the wait) and
                             * while in flight with an ack deadline (fires at it) */
    uint32_t attempts;      /* deliveries so far */
    uint32_t headers_len;   /* raw msgpack map at data[0], 0 if none */
    uint32_t payload_len;   /* payload at data[headers_len] */
    uint8_t state;          /* enum message_state */
    uint8_t priority;       /* 0..FERRY_PRIORITY_MAX: its level in the ready lists */
    uint8_t data[];
};

/* What a publish says of a message beyond its bytes, and what the journal
 * keeps of it (later features add their fields here: one struct, one place).
 * A zeroed struct is a plain message. */
struct message_meta {
    uint64_t deliver_at;    /* broker clock ms before which it is not delivered; 0: now */
    bool has_priority;      /* false: the queue's default priority */
    uint8_t priority;       /* 0..FERRY_PRIORITY_MAX */
    /* Publish: its time to live in ms, counted from when it may first be
     * delivered (now, or its deliver_at); 0: the queue's. The queue's ttl,
     * if shorter, applies anyway. */
    uint64_t ttl_ms;
    /* The journal and a restore: the expiry the message got (broker clock
     * ms; 0: never); ttl_ms is then 0. */
    uint64_t expires_at;
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
    /* The session was parked by a publish to a full queue (policy block,
     * see broker_publish) and room has been made: it is parked no more.
     * The connection retries its publish later (not from this callback). */
    void (*unblocked)(void *owner);
};

/* ---- queue settings and the journal ---- */

/* When a confirmed publish to a durable queue is safe (docs/STORAGE.md,
 * "What a confirm promises"). */
enum queue_fsync {
    QUEUE_FSYNC_ALWAYS,     /* confirmed once fdatasync'd: survives a power loss */
    QUEUE_FSYNC_INTERVAL,   /* confirmed once written; synced within the interval */
    QUEUE_FSYNC_NEVER,      /* confirmed once written; syncing left to the OS */
};

/* What a publish that finds its queue full meets (docs/DESIGN.md, "Flow
 * control"). Also what it meets at the broker's max_memory. */
enum queue_overflow {
    QUEUE_OVERFLOW_BLOCK,       /* the publishing session is parked until room is made */
    QUEUE_OVERFLOW_REJECT,      /* the publish is refused: QUEUE_FULL */
    QUEUE_OVERFLOW_DROP_OLDEST, /* the oldest ready messages are dropped to make room */
};

/* What a queue is, set when it is created (later issues add their bounds
 * here: one struct, one place). */
struct queue_settings {
    bool durable;           /* its messages are logged in the journal */
    enum queue_fsync fsync; /* durable queues only */
    uint8_t priority;       /* of a message published without one */
    uint64_t max_length;    /* messages ready, delayed and in flight; 0: no bound */
    uint64_t max_bytes;     /* their payload + header bytes; 0: no bound */
    enum queue_overflow overflow; /* at either bound or at max_memory */
    uint64_t ttl_ms;        /* time to live of its messages; 0: none */
    /* Retries (retry.c); 0 turns each off. */
    uint64_t ack_deadline_ms;      /* a delivery not settled in time is taken back */
    uint64_t retry_backoff_ms;     /* wait before redelivering after a deadline or a lost
                                    * consumer, doubled per attempt ... */
    uint64_t retry_backoff_max_ms; /* ... up to this (0: one day) */
    uint32_t max_attempts;         /* deliveries before the message is dead-lettered */
    char dead_letter[FERRY_NAME_MAX + 1]; /* its dead-letter queue; "": drop instead */
};

/* Whether two settings are the same in every field. */
static inline bool queue_settings_equal(const struct queue_settings *a,
                                        const struct queue_settings *b)
{
    return a->durable == b->durable && (!a->durable || a->fsync == b->fsync) &&
           a->priority == b->priority && a->ttl_ms == b->ttl_ms &&
           a->max_length == b->max_length && a->max_bytes == b->max_bytes &&
           a->overflow == b->overflow && a->ack_deadline_ms == b->ack_deadline_ms &&
           a->retry_backoff_ms == b->retry_backoff_ms &&
           a->retry_backoff_max_ms == b->retry_backoff_max_ms &&
           a->max_attempts == b->max_attempts && strcmp(a->dead_letter, b->dead_letter) == 0;
}

/* Where the broker logs what happens to durable queues. The core calls it
 * and never touches a file: ferryd's durable.c puts it on the store, the
 * unit tests on a fake. Every call names the queue's settings, so the
 * journal knows how safe each record must be made. Calls that return a
 * code are asked before the broker changes anything: a refusal (typically
 * FERRY_CODE_STORAGE or NO_MEMORY) leaves the broker as it was and is
 * passed on to the client. None may call back into the broker. */
struct broker_journal {
    void *arg;
    /* A durable queue is created, or its settings change. */
    enum ferry_code (*declare)(void *arg, struct ferry_bytes queue, const struct queue_settings *s);
    /* A message is about to be queued: log it with its meta (NULL: a plain
     * message), give it an id (nonzero, never reused) and the LSN its
     * confirm must wait for (0: at once). */
    enum ferry_code (*publish)(void *arg, struct ferry_bytes queue, const struct queue_settings *s,
                               const struct message_meta *meta, struct ferry_bytes headers,
                               struct ferry_bytes payload, uint64_t *id, uint64_t *lsn);
    /* The message left for good: acked, nacked without requeue, purged,
     * or taken back from a batch that failed. Never refused. */
    void (*settle)(void *arg, const struct queue_settings *s, uint64_t id);
    /* The message starts to wait (a nack's delay, a backoff) until
     * meta->deliver_at: log it again, whole, with this meta and attempt
     * count, so that the wait survives a restart. Never refused: if it
     * cannot be logged, the message comes back ready after a restart. NULL:
     * waits are not logged. */
    void (*rewrite)(void *arg, const struct queue_settings *s, uint64_t id, uint32_t attempts,
                    const struct message_meta *meta, struct ferry_bytes headers,
                    struct ferry_bytes payload);
    /* The message is being delivered for the attempts-th time. Never refused. */
    void (*attempts)(void *arg, const struct queue_settings *s, uint64_t id, uint32_t attempts);
    /* The queue is marked ended, reopened, or deleted with its messages. */
    enum ferry_code (*end)(void *arg, struct ferry_bytes queue, const struct queue_settings *s);
    enum ferry_code (*reopen)(void *arg, struct ferry_bytes queue, const struct queue_settings *s);
    enum ferry_code (*delete_queue)(void *arg, struct ferry_bytes queue, const struct queue_settings *s);
};

/* The settings a queue gets when it is created (by any call that creates
 * one), looked up by name: fills *out. */
typedef void broker_settings_fn(void *arg, struct ferry_bytes queue, struct queue_settings *out);

/* ---- time ----
 * The core reads a clock but owns no timer of the loop: ferryd asks
 * broker_next_due() at the end of each turn, arms one libevent timer
 * for it, and calls broker_advance() when it fires; the unit tests use a
 * fake clock and call broker_advance() themselves. */

/* The broker's time: milliseconds of the wall clock (Unix time), because
 * times kept in the journal (a deliver-at) must mean the same after a
 * restart. A step of the system clock moves every pending timer with it. */
struct broker_clock {
    uint64_t (*now_ms)(void *arg);
    void *arg;
};

/* Reads time from `clock` from now on (NULL: the system's CLOCK_REALTIME,
 * the default). The struct is copied. */
void broker_set_clock(struct broker *b, const struct broker_clock *clock);
/* The broker's clock now, in ms. */
uint64_t broker_now(const struct broker *b);
/* The deliver_at of a publish that asks for a delay (ms from now) and/or a
 * time (`at`, Unix ms), both 0 for none: the later of the two, or 0 for
 * none. BAD_REQUEST if that is more than FERRY_DELAY_MAX_MS from now. */
enum ferry_code broker_deliver_at(const struct broker *b, uint64_t delay_ms, uint64_t at,
                                  uint64_t *out);
/* When the broker's next timer is due (broker clock ms; at or before
 * broker_now(): due now), or UINT64_MAX if none is armed. O(1). */
uint64_t broker_next_due(const struct broker *b);
/* Does what the timers due by now ask (a delayed message becomes ready
 * and is delivered, ...), in due order, at most BROKER_TIMERS_PER_ADVANCE
 * of them (the rest are still due: broker_next_due says so, and the next
 * call goes on); and, while messages with an expiry are held, every
 * EXPIRY_SWEEP_MS, the expiry sweep. */
void broker_advance(struct broker *b);
/* So that a million messages delayed to the same millisecond do not hold
 * the loop for a second: the loop serves its connections in between. */
#define BROKER_TIMERS_PER_ADVANCE 16384u

/* Expiry. A message past its expiry is never delivered: dispatch drops it
 * (counted in stats.expired) on its way to a consumer. So that depth and
 * bytes say what can still be delivered when nobody consumes, a sweep
 * takes expired messages out of the ready lists every EXPIRY_SWEEP_MS,
 * looking at most at EXPIRY_SWEEP_BUDGET messages each time over all
 * queues (the heads of each level first, then on round each queue from
 * where it stopped). A message in flight does not expire; once requeued,
 * it is checked again. */
#define EXPIRY_SWEEP_MS 250u
#define EXPIRY_SWEEP_BUDGET 16384u

/* Limits the broker enforces; zero means "no limit" except where noted. */
struct broker_limits {
    size_t max_queues;              /* default 10000 when 0 */
    size_t max_consumers_per_queue; /* default 10000 when 0; subscriptions, not GETs */
    uint64_t max_memory;            /* queued memory of all queues (broker_memory); 0: none */
};

/* What one queued message costs beyond its payload and header bytes: its
 * struct and the allocator's header. broker_memory counts it. */
#define BROKER_MESSAGE_OVERHEAD (sizeof(struct message) + 16u)

/* Per-queue counters and gauges, as STATS reports them. */
struct queue_stats {
    uint64_t depth, inflight, consumers;
    uint64_t delayed;       /* waiting for their time (not in depth) */
    uint64_t dead_lettered; /* used up max_attempts: moved to the DLQ, or dropped */
    uint64_t timeouts;      /* deliveries taken back at their ack deadline */
    uint64_t depth_by_priority[FERRY_PRIORITY_LEVELS]; /* depth of each level */
    uint64_t published, delivered, acked, redelivered, dropped;
    uint64_t expired;       /* found past their expiry and dropped, never delivered */
    uint64_t bytes;
    uint64_t bindings;      /* its binding patterns */
    bool ended;
    /* Flow control: the queue's bounds and policy (its settings), and what
     * happened at them: messages dropped by drop-oldest, publishes refused
     * QUEUE_FULL, publishes that parked their session (policy block). */
    uint64_t max_length, max_bytes;
    enum queue_overflow overflow;
    uint64_t dropped_oldest, rejected, blocked;
};

/* Changes the limits (a reload). Lowering one below what exists removes
 * nothing: it refuses new queues or subscriptions until under it again,
 * and new publishes meet the overflow policies until memory is under
 * max_memory. Raising max_memory wakes the sessions parked on it. */
void broker_set_limits(struct broker *b, const struct broker_limits *limits);

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
/* Subscriptions the session has open (each holds server memory, so a
 * connection's are bounded, see requests.c). */
size_t broker_session_subscriptions(const struct session *s);
/* Whether a publish parked the session (policy block) and no room has
 * been made since: its connection must read nothing more. A parked
 * session is a pure producer (broker_publish): nothing to deliver to it. */
bool broker_session_parked(const struct session *s);
/* Deliveries the session has in flight (not yet acked or nacked). */
size_t broker_session_inflight(const struct session *s);

/* Logs durable queues from now on (NULL: nothing is logged; every queue
 * behaves as in memory). j must outlive the broker's use of it; broker_free
 * calls nothing of it. */
void broker_set_journal(struct broker *b, const struct broker_journal *j);
/* Where new queues take their settings from (NULL: in memory, the default). */
void broker_set_settings_source(struct broker *b, broker_settings_fn *fn, void *arg);
/* Changes an existing queue's settings, logging what the change needs
 * (a durable queue becoming in-memory is deleted from the journal; its
 * messages stay, in memory only). A queue may become durable only while
 * it holds no message (else BAD_REQUEST). New bounds remove nothing
 * already queued; the sessions parked on the queue are woken to try
 * again. OK, NOT_FOUND, BAD_NAME, BAD_REQUEST, or the journal's refusal. */
enum ferry_code broker_configure_queue(struct broker *b, struct ferry_bytes queue,
                                       const struct queue_settings *s);
/* The settings of an existing queue. OK or NOT_FOUND. */
enum ferry_code broker_queue_settings(struct broker *b, struct ferry_bytes queue,
                                      struct queue_settings *out);

/* Appends a message to the named queue, creating the queue if needed.
 * headers is a validated raw msgpack map or empty. Copies both. meta (NULL:
 * a plain message) may hold it back: a deliver_at in the future makes it
 * wait, outside the ready list, until broker_advance reaches that time;
 * then it joins the back of the ready list.
 * A message's priority (meta, else the queue's default) is its level in
 * the ready list: it goes to the back of that level. Its expiry is the
 * shorter of its ttl (meta) and the queue's, from when it may first be
 * delivered.
 * *wait_lsn (may be NULL) is the LSN the publish's confirm must wait for
 * (a durable queue's: see struct broker_journal), or 0 to confirm at once.
 * OK, BAD_NAME, ENDED, LIMIT, NO_MEMORY, QUEUE_FULL, BAD_REQUEST (priority
 * above FERRY_PRIORITY_MAX), or the journal's refusal.
 *
 * Flow control: if the queue is at max_length or max_bytes, or the broker
 * at max_memory, the queue's overflow policy applies. drop-oldest drops
 * its oldest ready messages, lowest priority level first (settled in the
 * journal), to make room, or
 * refuses QUEUE_FULL if its ready messages are not enough. reject
 * refuses QUEUE_FULL. block refuses QUEUE_FULL too but parks `from`
 * (broker_session_parked) until room is made (ops->unblocked), so that
 * its connection retries the same publish then; the session is parked
 * only if it is a pure producer: no delivery in flight, no subscription,
 * no waiting GET (its connection is not read while parked, so it could
 * not ack, and a consumer that stops could be what others wait for);
 * else it is refused QUEUE_FULL. `from` may be NULL (no session to park). A publish that
 * could never fit (larger than a bound) is refused under every policy.
 * While sessions are parked on a queue, block-policy publishes of other
 * sessions to it park behind them (first parked, first woken). */
enum ferry_code broker_publish(struct broker *b, struct session *from, struct ferry_bytes queue,
                               struct ferry_bytes payload, struct ferry_bytes headers,
                               const struct message_meta *meta, uint64_t *wait_lsn);

/* The items of a batch, handed out one at a time: next() fills the next
 * item (meta comes zeroed: a plain message unless next() says more) and
 * returns true, or returns false after the last. */
struct broker_items {
    void *arg;
    bool (*next)(void *arg, struct ferry_bytes *payload, struct ferry_bytes *headers,
                 struct message_meta *meta);
};

/* Appends every item to the named queue, all or nothing: if any item is
 * refused (by memory or the journal), none is queued, and what was logged
 * of the others is settled again. *wait_lsn as for broker_publish, for the
 * batch as a whole. Codes and flow control as broker_publish, the batch
 * counting as its number of messages and its bytes. */
enum ferry_code broker_publish_batch(struct broker *b, struct session *from, struct ferry_bytes queue,
                                     const struct broker_items *items, uint64_t *wait_lsn);

/* ---- restoring what the journal kept (at start-up, before any session) ----
 * These change the broker as the original calls did, but log nothing and
 * ignore max_queues (the queues existed before). */

/* Creates the queue with these settings (or gives an existing one them).
 * OK, BAD_NAME, NO_MEMORY. */
enum ferry_code broker_restore_queue(struct broker *b, struct ferry_bytes queue,
                                     const struct queue_settings *s);
/* Appends a message to a restored queue, with its journal id, the
 * deliveries it had already had (its next delivery is attempts + 1) and
 * its meta (NULL: none): ready, or waiting if its deliver_at is still to
 * come. OK, NOT_FOUND, LIMIT, NO_MEMORY. */
enum ferry_code broker_restore_message(struct broker *b, struct ferry_bytes queue,
                                       uint64_t store_id, uint32_t attempts,
                                       const struct message_meta *meta,
                                       struct ferry_bytes headers, struct ferry_bytes payload);
/* Marks a restored queue ended (after its messages). OK, NOT_FOUND. */
enum ferry_code broker_restore_end(struct broker *b, struct ferry_bytes queue);

/* Subscribes: at most `credit` unacked messages at once (credit >= 1).
 * OK, BAD_NAME, SUB_EXISTS, LIMIT, BAD_REQUEST, NO_MEMORY. If the queue is
 * already ended and drained, EOS is sent at once. */
enum ferry_code broker_consume(struct broker *b, struct session *s, struct ferry_bytes queue,
                               uint64_t sub, uint64_t credit);
/* Widens a subscription's window by n. OK, UNKNOWN_SUB. */
enum ferry_code broker_credit(struct broker *b, struct session *s, uint64_t sub, uint64_t n);
/* Ends a subscription; its unacked messages stay in flight. OK, UNKNOWN_SUB. */
enum ferry_code broker_cancel(struct broker *b, struct session *s, uint64_t sub);

/* What a CONSUME may say beyond its credit. */
struct consume_options {
    uint64_t ack_deadline_ms;   /* its deliveries' ack deadline; 0: the queue's */
};
/* broker_consume with options (NULL: none). BAD_REQUEST for a deadline
 * above FERRY_DELAY_MAX_MS. */
enum ferry_code broker_consume_opts(struct broker *b, struct session *s, struct ferry_bytes queue,
                                    uint64_t sub, uint64_t credit, const struct consume_options *o);

/* Settles a delivery: ack frees the message; nack requeues it at the
 * front of its queue or drops it. OK, UNKNOWN_TAG. A nack with requeue of
 * a message that used up its queue's max_attempts dead-letters it. */
enum ferry_code broker_ack(struct broker *b, struct session *s, uint64_t tag);
enum ferry_code broker_nack(struct broker *b, struct session *s, uint64_t tag, bool requeue);
/* A nack with requeue whose message waits delay_ms (at most
 * FERRY_DELAY_MAX_MS, else BAD_REQUEST) before it joins the back of its
 * queue again; 0 is broker_nack's requeue. OK, UNKNOWN_TAG, BAD_REQUEST. */
enum ferry_code broker_nack_delay(struct broker *b, struct session *s, uint64_t tag,
                                  uint64_t delay_ms);
/* Moves the ack deadline of a delivery still in flight to deadline_ms
 * from now (0: its subscription's or queue's deadline again; nothing if
 * it has none). OK, UNKNOWN_TAG, BAD_REQUEST (above FERRY_DELAY_MAX_MS). */
enum ferry_code broker_touch(struct broker *b, struct session *s, uint64_t tag,
                             uint64_t deadline_ms);

/* One-shot receive: delivers the next ready message through
 * ops->deliver(rid), now or when one arrives; or ops->get_ended when the
 * queue is ended and drained. OK, BAD_NAME, BAD_REQUEST (rid in use or 0),
 * LIMIT (creating the queue would pass max_queues), NO_MEMORY. */
enum ferry_code broker_get(struct broker *b, struct session *s, struct ferry_bytes queue, uint64_t rid);
/* Withdraws a waiting GET (its time ran out). true if it was still waiting. */
bool broker_get_cancel(struct broker *b, struct session *s, uint64_t rid);

/* Queue administration. OK, BAD_NAME, NOT_FOUND (delete, purge, end,
 * reopen of an unknown queue), LIMIT, NO_MEMORY, or the journal's refusal
 * (declare, delete, end, reopen of a durable queue).
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

/* ---- dead letters (retry.c) ---- */

/* Calls fn for each of the first `max` ready messages of the queue, in
 * the order they would be delivered (expired ones passed over), until fn
 * returns false; they stay where they are. fn must not call into the
 * broker. OK, BAD_NAME, NOT_FOUND. */
enum ferry_code broker_peek(struct broker *b, struct ferry_bytes queue, size_t max,
                            bool (*fn)(void *arg, const struct message *m), void *arg);
/* Moves up to `max` (0, or more than FERRY_MOVE_MAX: FERRY_MOVE_MAX) of
 * the queue's ready messages, front first, to `to`, or, when `to` is
 * empty, each to the queue its "dlq-queue" header names (stopping at a
 * message without one). Each becomes a new message there without its
 * dlq-* headers, its attempts counted from 0, its expiry the target's ttl
 * from now; an expired one is expired instead (expiry_expire), not moved;
 * the new one is logged before the old one is settled. *moved says how
 * many. OK (also when it stopped early), BAD_NAME, NOT_FOUND, BAD_REQUEST
 * (`to` is the queue itself), or the refusal of the first move (ENDED,
 * LIMIT, NO_MEMORY, STORAGE). */
enum ferry_code broker_move(struct broker *b, struct ferry_bytes queue, struct ferry_bytes to,
                            uint64_t max, uint64_t *moved);

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
/* The memory max_memory bounds: bytes + BROKER_MESSAGE_OVERHEAD per message. */
uint64_t broker_memory(const struct broker *b);
/* The max_memory in force (0: none); sessions parked now, all queues. */
uint64_t broker_max_memory(const struct broker *b);
size_t broker_parked_count(const struct broker *b);

/* ---- topics and temporary queues (topics.c, temp_queues.c) ----
 * A publish to a topic puts a copy into every queue bound to it by a
 * matching pattern (docs/PROTOCOL.md, "Topics"); a temporary queue belongs
 * to the session that declared it and is deleted with it. */

/* Most bindings per queue, and in all. */
#define BROKER_BINDINGS_PER_QUEUE_MAX 1024u
#define BROKER_BINDINGS_MAX 100000u
/* Most temporary queues per session. */
#define BROKER_TEMP_QUEUES_PER_SESSION_MAX 1024u

/* Server-wide counters of topic publishing. */
struct topic_stats {
    uint64_t published;     /* topic publishes with a valid topic */
    uint64_t unroutable;    /* of those, matched by no binding */
    uint64_t copies;        /* copies queued */
    uint64_t skipped;       /* copies a bound queue did not take: ended, or
                             * full with policy reject or block */
    uint64_t bindings;      /* bindings now */
};

/* Binds the queue (created if missing) to a pattern; binding twice is one
 * binding. OK, BAD_NAME, BAD_TOPIC, LIMIT, NO_MEMORY, or the creating
 * journal's refusal. */
enum ferry_code broker_bind(struct broker *b, struct ferry_bytes queue, struct ferry_bytes pattern);
/* Removes one binding. OK, BAD_NAME, BAD_TOPIC, NOT_FOUND (no such queue
 * or binding). */
enum ferry_code broker_unbind(struct broker *b, struct ferry_bytes queue, struct ferry_bytes pattern);
/* Publishes a copy to each queue bound by a pattern matching `topic`, once
 * per queue however many of its patterns match. Queues that are ended, or
 * full and refusing (or blocking), are skipped and counted; a copy the
 * journal or memory refuses makes the result that code (the other copies
 * stay queued). A topic nothing matches is accepted and counted
 * unroutable. *wait_lsn as for broker_publish, for all the copies.
 * OK, BAD_TOPIC, LIMIT, NO_MEMORY, or the journal's refusal. */
enum ferry_code broker_publish_topic(struct broker *b, struct ferry_bytes topic,
                                     struct ferry_bytes payload, struct ferry_bytes headers,
                                     const struct message_meta *meta, uint64_t *wait_lsn);
void broker_topic_stats(const struct broker *b, struct topic_stats *out);
/* Calls fn with each pattern the queue is bound by (runs of '#' folded),
 * newest first; the span is valid during the call. OK or NOT_FOUND. */
enum ferry_code broker_each_binding(struct broker *b, struct ferry_bytes queue,
                                    void (*fn)(void *arg, struct ferry_bytes pattern), void *arg);

/* Declares a temporary queue of session s: in memory whatever the conf
 * file says, usable for receiving (CONSUME, GET), binding, purging and
 * deleting by s alone, deleted with its messages when s is freed. An
 * empty name asks the broker for a fresh one ("tmp." and a number); names
 * with that prefix are made by this call only (broker_find_queue).
 * *out is the name (valid while the queue lives). Declaring one of s's
 * own temporary queues again is OK. OK, BAD_NAME, EXCLUSIVE (the name is
 * a queue that is not s's temporary queue, or one the settings source
 * makes durable, "tmp." names aside), LIMIT (max_queues, or
 * BROKER_TEMP_QUEUES_PER_SESSION_MAX), NO_MEMORY. */
enum ferry_code broker_declare_temp(struct broker *b, struct session *s, struct ferry_bytes name,
                                    struct ferry_bytes *out);
/* EXCLUSIVE if the queue is another session's temporary queue, else OK
 * (also when it does not exist). Asked before a session consumes, gets,
 * peeks, moves messages out of, binds, unbinds, purges, ends, reopens or
 * deletes. */
enum ferry_code broker_check_access(struct broker *b, const struct session *s,
                                    struct ferry_bytes queue);

#endif
