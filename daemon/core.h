/*
 * core.h - what the files of the broker core share: the broker and session
 * structures and the dispatcher's functions. Internal to broker.c,
 * session.c and dispatch.c; the rest of ferryd sees only broker.h.
 */
#ifndef FERRY_CORE_H
#define FERRY_CORE_H

#include "broker.h"
#include "idmap.h"
#include "queue.h"
#include "queue_map.h"
#include "bindings.h"
#include "tags.h"
#include "timers.h"

#include <stddef.h>

struct broker {
    size_t max_queues;
    size_t max_consumers_per_queue;
    uint64_t max_memory;        /* 0: none (flow.c) */
    struct park_list parked;    /* parked on max_memory */
    struct queue_map queues;    /* live queues by name; the broker owns them */
    uint64_t messages;          /* ready + in flight, all queues */
    uint64_t bytes;             /* their headers + payload */
    uint64_t seed;              /* secret seed of the hashes of client-chosen keys */
    const struct broker_journal *journal; /* NULL: nothing is logged */
    broker_settings_fn *settings_of;      /* NULL: every queue in memory */
    void *settings_arg;
    struct broker_clock clock;
    struct timer_heap timers;   /* the messages' timers; points, owns none */
    /* Topics (topics.c). */
    struct bindings bindings;   /* every queue's binding patterns */
    struct queue **fanout;      /* a topic publish's queues; owned */
    size_t fanout_cap;          /* kept >= bound_queues, so matching never allocates */
    size_t fanout_count;        /* entries in use, during a topic publish */
    size_t bound_queues;        /* queues with at least one binding */
    uint64_t fanout_epoch;      /* of the current topic publish */
    struct topic_stats topic_stats;
    uint64_t next_temp;         /* numbers of server-named temporary queues */
    uint64_t expiring;          /* messages held with an expiry (ready, waiting, in flight) */
    uint64_t sweep_due;         /* broker clock ms of the next expiry sweep, while expiring */
    size_t sweep_slot;          /* the queue map slot the next sweep starts at */
};

/* The message a timer of the broker's heap is embedded in. */
static inline struct message *message_of_timer(struct timer *t)
{
    return (struct message *)((char *)t - offsetof(struct message, timer));
}

struct session {
    const struct session_ops *ops;
    void *owner;
    struct tag_table tags;          /* deliveries in flight on this session */
    uint64_t next_tag;
    struct id_map subs;             /* sub id -> attached subscription */
    struct id_map gets;             /* rid -> waiting GET */
    struct consumer *consumers;     /* all attached consumers, via session_next */
    struct join_waiter *joins;      /* via session_next */
    bool writable;
    /* Parked by a publish (flow.c): the list it waits in, NULL if not. */
    struct park_list *parked_in;
    struct session *park_next;
    struct session *park_prev;
    struct queue *temps;            /* its temporary queues, via temp_next */
    size_t temp_count;
};

/* ---- broker.c ---- */

/* The settings a new queue of that name gets (the conf file's). */
struct queue_settings broker_settings_for(const struct broker *b, struct ferry_bytes name);
/* Creates a queue that does not exist yet (checked by the caller), with
 * settings s. OK, LIMIT (max_queues), NO_MEMORY, or the journal's refusal. */
enum ferry_code broker_new_queue(struct broker *b, struct ferry_bytes name,
                                 const struct queue_settings *s, struct queue **out);
/* Appends one message to q (found and not ended) under q's flow control
 * (broker_publish; `from` NULL: nobody to park, so block refuses as
 * reject does), logs it if q is durable (*lsn: the LSN its confirm waits
 * for, 0 if none) and dispatches. OK, QUEUE_FULL, BAD_REQUEST, NO_MEMORY
 * or the journal's refusal (then nothing is queued). */
enum ferry_code broker_publish_to(struct broker *b, struct queue *q, struct session *from,
                                  struct ferry_bytes payload, struct ferry_bytes headers,
                                  const struct message_meta *meta, uint64_t *lsn);
/* Deletes q (its DELETE was logged, if it had to be): out of the name map
 * and its bindings, EOS to its subscriptions, JOINs fail, ready messages
 * dropped; freed now or with its last message in flight. */
void broker_delete_queue(struct broker *b, struct queue *q);

/* ---- topics.c ---- */

/* The trie and the fan-out array: 0, or -1 on ENOMEM. */
int topics_init(struct broker *b);
void topics_free(struct broker *b);
/* q is being deleted: its bindings go. */
void topics_forget_queue(struct broker *b, struct queue *q);

/* ---- temp_queues.c ---- */

/* Whether a queue of this name is made only by DECLARE_TEMP ("tmp."
 * prefix): other calls that create queues refuse it NOT_FOUND. */
bool temp_queue_name_reserved(struct ferry_bytes name);
/* q is being deleted: if it is a temporary queue, its owner forgets it. */
void temp_queue_forget(struct queue *q);
/* s is going: its temporary queues are deleted with their messages. */
void temp_queues_delete_all(struct broker *b, struct session *s);
/* Queues a new message with m's payload and the given headers at the back
 * of `to` (not ended), logged if `to` is durable, and dispatches `to`;
 * attempts start again, and `to`'s ttl counts from now. For dead letters
 * and their way back: bounds of flow control do not apply. OK, ENDED, LIMIT, NO_MEMORY, or the journal's
 * refusal (then nothing is queued). */
enum ferry_code broker_publish_copy(struct broker *b, struct queue *to, const struct message *m,
                                    struct ferry_bytes headers);

/* Finds the named queue, creating it if `create` (a call that fails later
 * may leave the queue it created, as a DECLARE would) and the name is not
 * reserved for temporary queues.
 * OK, BAD_NAME, NOT_FOUND (not create, or a "tmp." name), LIMIT, NO_MEMORY. */
enum ferry_code broker_find_queue(struct broker *b, struct ferry_bytes name, bool create,
                                  struct queue **out);

/* The journal's calls for one message of a durable queue (nothing for a
 * message that was never logged, or whose queue is in memory or deleted,
 * since the journal forgot that queue's messages with it). */
void broker_log_settle(struct broker *b, const struct message *m);
void broker_log_attempts(struct broker *b, const struct message *m);
/* m (waiting) starts a wait until `due` after its publish: the journal logs
 * it again with that deliver-at (see broker_journal.rewrite). */
void broker_log_wait(struct broker *b, const struct message *m, uint64_t due);

/* ---- retry.c ---- */

/* Why a delivery failed; also the "dlq-reason" header of a dead letter. */
enum retry_reason {
    RETRY_NACK,         /* nacked with requeue */
    RETRY_DEADLINE,     /* its ack deadline passed */
    RETRY_LOST,         /* its session went (the connection closed) */
    RETRY_ATTEMPTS,     /* found ready with its attempts used up (a restart, a reload) */
    RETRY_EXPIRED,      /* past its time to live (expiry.c) */
};

/* The ack deadline (ms) of a delivery of q's message to c (a GET's
 * consumer too); 0: none. Inline: dispatch asks it for every delivery. */
static inline uint64_t retry_deadline_of(const struct consumer *c, const struct queue *q)
{
    return c != NULL && c->ack_deadline_ms != 0 ? c->ack_deadline_ms : q->settings.ack_deadline_ms;
}
/* Arms m's ack deadline, deadline_ms from now, for delivery `tag` on s
 * (the heap has room: timer_heap_reserve). */
void retry_arm_deadline(struct broker *b, struct message *m, struct session *s, uint64_t tag,
                        uint64_t deadline_ms);
/* m was just taken out of flight for `why`: its tag entry is gone, its
 * slot freed, its deadline disarmed; stats.inflight still counts it.
 * Dropped if its queue is deleted, dead-lettered if its attempts are used
 * up; else it waits delay_ms (a nack's) or, for DEADLINE and LOST, the
 * queue's backoff, then joins the back of its queue, or with no wait goes
 * back to the front. Returns the queue to dispatch afterwards, or NULL. */
struct queue *retry_take_back(struct broker *b, struct message *m, enum retry_reason why,
                              uint64_t delay_ms);
/* m's ack deadline passed (its timer fired): taken back from its holder. */
void retry_deadline_passed(struct broker *b, struct message *m);
/* m, just taken from q's ready list by dispatch, has used up q's
 * max_attempts: dead-lettered instead of delivered (nothing here
 * dispatches q). false if nothing could take it and it is back at the
 * front of q: the caller must stop dispatching q. */
bool retry_dead_letter_ready(struct broker *b, struct message *m);

/* m (in no list or table, counted in no gauge) expired: a copy goes to its
 * queue's dead-letter queue if it has one (headers as for any dead letter,
 * dlq-reason "expired"), and m is settled. Not counted in dead_lettered. */
void retry_dead_letter_expired(struct broker *b, struct message *m);

/* Dead-letters every ready message of q that has used up q's
 * max_attempts (after a restart or a reload set them), keeping the others
 * in their order, and dispatches q. O(depth) if one has, else O(depth)
 * reads only. */
void retry_sweep(struct broker *b, struct queue *q);

/* ---- flow.c ---- */

/* Whether n more messages of `bytes` may go into q now, under its bounds
 * and max_memory; if not, what q's overflow policy does (broker_publish).
 * OK: *drop is how many of q's oldest ready messages must be dropped
 * first (flow_drop_oldest), after the publish itself is accepted.
 * QUEUE_FULL: refused, and `from` may be parked. O(1) unless messages
 * must be dropped. */
enum ferry_code flow_admit(struct broker *b, struct queue *q, struct session *from,
                           uint64_t n, uint64_t bytes, uint64_t *drop);
/* Drops q's `count` oldest ready messages, as flow_admit asked. */
void flow_drop_oldest(struct broker *b, struct queue *q, uint64_t count);
/* Room was made in q or in memory (a message left): wakes the sessions
 * parked on them once below the level to resume at. */
void flow_room_made(struct broker *b, struct queue *q);
/* Wakes every session parked on q, or on max_memory (q NULL): q's
 * settings or the limits changed, or q is being deleted. */
void flow_wake_all(struct broker *b, struct queue *q);
/* Takes s out of the list it is parked in (it is being freed). */
void flow_unpark(struct session *s);

/* ---- expiry.c ---- */

/* Whether m (with an expiry) has expired; *now is the broker's clock, read
 * into it on first need (0: not read yet), so a dispatch reads it once. */
bool expiry_passed(const struct broker *b, const struct message *m, uint64_t *now);
/* m, out of every list, has expired: counted, then dropped (the journal
 * settles it). The one place that decides where expired messages go. */
void expiry_expire(struct broker *b, struct message *m);
/* The bounded sweep (every EXPIRY_SWEEP_MS while messages with an expiry
 * are held): takes expired messages out of the ready lists, at most
 * EXPIRY_SWEEP_BUDGET looked at per sweep over all queues, so depth and
 * bytes say what can still be delivered. */
void expiry_sweep(struct broker *b, uint64_t now);

/* ---- dispatch.c ---- */

/* Delivers ready messages of q to its consumers with room, round robin,
 * until one or the other runs out. */
void dispatch(struct queue *q);

/* Links a new consumer (window set, session set) to q and its session; the
 * session's id map for it must have room (id_map_reserve). */
void dispatch_attach(struct consumer *c, struct queue *q);
/* Unlinks c from its queue and session. A subscription with deliveries in
 * flight lives on detached until the last is settled; else c is freed. */
void dispatch_detach(struct consumer *c);
/* Puts c into its queue's ring, or out of it, as its window and its
 * session's writability say. */
void dispatch_refresh(struct consumer *c);
/* One delivery of c (NULL: a GET's) was settled or taken back: a slot of
 * its window is free again. Frees a detached c with its last delivery. */
void dispatch_slot_freed(struct consumer *c);

/* m, of queue q and in no list, waits until `due` (broker clock ms) in q's
 * waiting list; the broker's heap has room (timer_heap_reserve). */
void dispatch_wait(struct broker *b, struct message *m, uint64_t due);
/* m's timer fired (it is disarmed already): a waiting message joins the
 * back of its queue's ready list and is dispatched. */
void dispatch_timer_fired(struct broker *b, struct message *m);
/* Takes a waiting m out of its queue's list and disarms its timer; the
 * queue still owns m. */
void dispatch_unwait(struct broker *b, struct message *m);

/* Frees a message that leaves the broker (acked, dropped, purged), settles
 * it in the journal, counts it down for the JOINs of its queue, and wakes
 * the sessions parked on the room it makes. The caller counts why. */
void dispatch_forget(struct broker *b, struct message *m);
/* After messages of q were forgotten: frees a deleted q with its last
 * in-flight message; else sends EOS if q just became ended and drained,
 * and dispatches. */
void dispatch_settled(struct queue *q);
/* q just became ended and drained: EOS to each subscription, get_ended to
 * each waiting GET (which is detached). */
void dispatch_end_of_stream(struct queue *q);
/* q is being deleted: EOS to each subscription that has not had one, then
 * detaches it; get_ended to each waiting GET, detached too. */
void dispatch_close_consumers(struct queue *q);

/* Links a new JOIN (rid, mark, remaining set) to q and its session. */
void dispatch_join_attach(struct join_waiter *w, struct queue *q);
/* Ends a JOIN: answers it with `code` and frees it. */
void dispatch_join_done(struct join_waiter *w, enum ferry_code code);
/* Unlinks a JOIN from its queue and session and frees it, unanswered. */
void dispatch_join_cancel(struct join_waiter *w);

#endif
