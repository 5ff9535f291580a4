/*
 * broker.c - the broker as a whole: its queues by name and their settings,
 * publishing, queue administration (declare, delete, purge, end, reopen),
 * what it tells the journal of durable queues, restoring what the journal
 * kept, and statistics. Sessions live in session.c, moving messages in
 * dispatch.c. Knows nothing of sockets, frames, libevent or files.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "core_alloc.h"
#include "hash.h"

#define DEFAULT_MAX_QUEUES 10000u
#define DEFAULT_MAX_CONSUMERS_PER_QUEUE 10000u

struct broker *broker_new(const struct broker_limits *limits)
{
    struct broker *b = core_calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    broker_set_limits(b, limits);
    b->seed = hash_random_seed();
    queue_map_init(&b->queues, b->seed);
    broker_set_clock(b, NULL);
    timer_heap_init(&b->timers);
    if (topics_init(b) != 0) {
        free(b);
        return NULL;
    }
    return b;
}

/* Frees q's ready and waiting messages; returns how many. dispatch_forget
 * settles the durable ones in the journal, unless q is deleted (the
 * journal dropped them with it) or the broker is being freed (they stay
 * for the restart). */
static uint64_t drop_ready(struct broker *b, struct queue *q)
{
    uint64_t n = 0;
    struct message *m;
    while ((m = queue_pop_front(q)) != NULL) {
        q->stats.dropped++;
        dispatch_forget(b, m);
        n++;
    }
    while ((m = q->waiting) != NULL) {
        dispatch_unwait(b, m);
        q->stats.dropped++;
        dispatch_forget(b, m);
        n++;
    }
    return n;
}

void broker_free(struct broker *b)
{
    if (b == NULL)
        return;
    /* What is still queued is not settled: it is what the journal keeps. */
    b->journal = NULL;
    /* With every session gone nothing is in flight, no consumer or JOIN
     * is left, and no deleted queue survives. */
    size_t slots = queue_map_slot_count(&b->queues);
    for (size_t i = 0; i < slots; i++) {
        struct queue *q = queue_map_slot(&b->queues, i);
        if (q == NULL)
            continue;
        drop_ready(b, q);
        queue_free(q);
    }
    queue_map_free(&b->queues);
    timer_heap_free(&b->timers);
    topics_free(b);
    free(b);
}

void broker_set_journal(struct broker *b, const struct broker_journal *j)
{
    b->journal = j;
}

void broker_set_settings_source(struct broker *b, broker_settings_fn *fn, void *arg)
{
    b->settings_of = fn;
    b->settings_arg = arg;
}

/* ---- time ---- */

static uint64_t system_now_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void broker_set_clock(struct broker *b, const struct broker_clock *clock)
{
    if (clock != NULL)
        b->clock = *clock;
    else
        b->clock = (struct broker_clock){ .now_ms = system_now_ms, .arg = NULL };
}

uint64_t broker_now(const struct broker *b)
{
    return b->clock.now_ms(b->clock.arg);
}

enum ferry_code broker_deliver_at(const struct broker *b, uint64_t delay_ms, uint64_t at,
                                  uint64_t *out)
{
    *out = 0;
    if (delay_ms == 0 && at == 0)
        return FERRY_CODE_OK;
    uint64_t now = broker_now(b);
    if (delay_ms > FERRY_DELAY_MAX_MS || (at > now && at - now > FERRY_DELAY_MAX_MS))
        return FERRY_CODE_BAD_REQUEST;
    uint64_t after_delay = delay_ms != 0 ? now + delay_ms : 0;
    *out = at > after_delay ? at : after_delay;
    return FERRY_CODE_OK;
}

uint64_t broker_next_due(const struct broker *b)
{
    const struct timer *t = timer_heap_top(&b->timers);
    uint64_t due = t != NULL ? t->due : UINT64_MAX;
    if (b->expiring > 0 && b->sweep_due < due)
        due = b->sweep_due;
    return due;
}

void broker_advance(struct broker *b)
{
    uint64_t now = broker_now(b);
    struct timer *t;
    size_t fired = 0;
    while (fired < BROKER_TIMERS_PER_ADVANCE && (t = timer_heap_top(&b->timers)) != NULL &&
           t->due <= now) {
        timer_disarm(&b->timers, t);
        dispatch_timer_fired(b, message_of_timer(t));
        fired++;
    }
    if (b->expiring > 0 && b->sweep_due <= now) {
        expiry_sweep(b, now);
        b->sweep_due = now + EXPIRY_SWEEP_MS;
    }
}

/* ---- the journal ---- */

/* Whether q's events go to the journal. */
static bool is_logged(const struct broker *b, const struct queue *q)
{
    return b->journal != NULL && q->settings.durable && !q->deleted;
}

void broker_log_settle(struct broker *b, const struct message *m)
{
    if (m->store_id != 0 && is_logged(b, m->queue))
        b->journal->settle(b->journal->arg, &m->queue->settings, m->store_id);
}

void broker_log_attempts(struct broker *b, const struct message *m)
{
    if (m->store_id != 0 && is_logged(b, m->queue))
        b->journal->attempts(b->journal->arg, &m->queue->settings, m->store_id, m->attempts);
}

void broker_log_wait(struct broker *b, const struct message *m, uint64_t due)
{
    if (m->store_id == 0 || !is_logged(b, m->queue) || b->journal->rewrite == NULL)
        return;
    struct message_meta meta = {
        .deliver_at = due, .has_priority = true, .priority = m->priority,
        .expires_at = m->expires_at,
    };
    b->journal->rewrite(b->journal->arg, &m->queue->settings, m->store_id, m->attempts, &meta,
                        message_headers(m), message_payload(m));
}

enum queue_change { CHANGE_DECLARE, CHANGE_END, CHANGE_REOPEN, CHANGE_DELETE };

/* Asks the journal to log a change of q before the broker makes it. */
static enum ferry_code log_queue_change(struct broker *b, struct queue *q, enum queue_change what)
{
    if (!is_logged(b, q))
        return FERRY_CODE_OK;
    const struct broker_journal *j = b->journal;
    struct ferry_bytes name = queue_name(q);
    switch (what) {
    case CHANGE_DECLARE: return j->declare(j->arg, name, &q->settings);
    case CHANGE_END: return j->end(j->arg, name, &q->settings);
    case CHANGE_REOPEN: return j->reopen(j->arg, name, &q->settings);
    case CHANGE_DELETE: return j->delete_queue(j->arg, name, &q->settings);
    }
    return FERRY_CODE_INTERNAL;
}

/* ---- queues by name ---- */

/* A new queue with its settings, declared to the journal if durable, and
 * in the name map (reserved by the caller). */
static enum ferry_code create_queue(struct broker *b, struct ferry_bytes name,
                                    const struct queue_settings *s, bool log, struct queue **out)
{
    struct queue *q = queue_new(name);
    if (q == NULL)
        return FERRY_CODE_NO_MEMORY;
    q->broker = b;
    q->settings = *s;
    enum ferry_code code = log ? log_queue_change(b, q, CHANGE_DECLARE) : FERRY_CODE_OK;
    if (code != FERRY_CODE_OK) {
        queue_free(q);
        return code;
    }
    queue_map_insert(&b->queues, q); /* the broker owns q from here */
    *out = q;
    return FERRY_CODE_OK;
}

struct queue_settings broker_settings_for(const struct broker *b, struct ferry_bytes name)
{
    struct queue_settings s = { .durable = false, .fsync = QUEUE_FSYNC_ALWAYS };
    if (b->settings_of != NULL)
        b->settings_of(b->settings_arg, name, &s);
    return s;
}

enum ferry_code broker_find_queue(struct broker *b, struct ferry_bytes name, bool create,
                                  struct queue **out)
{
    if (!ferry_name_valid(name))
        return FERRY_CODE_BAD_NAME;
    struct queue *q = queue_map_find(&b->queues, name);
    if (q != NULL) {
        *out = q;
        return FERRY_CODE_OK;
    }
    /* "tmp." names are made by DECLARE_TEMP only: a reply to a requester
     * that is gone must not leave a queue behind. */
    if (!create || temp_queue_name_reserved(name))
        return FERRY_CODE_NOT_FOUND;
    struct queue_settings s = broker_settings_for(b, name);
    return broker_new_queue(b, name, &s, out);
}

enum ferry_code broker_new_queue(struct broker *b, struct ferry_bytes name,
                                 const struct queue_settings *s, struct queue **out)
{
    if (queue_map_count(&b->queues) >= b->max_queues)
        return FERRY_CODE_LIMIT;
    if (queue_map_reserve(&b->queues) != 0)
        return FERRY_CODE_NO_MEMORY;
    return create_queue(b, name, s, true, out);
}

/* ---- publishing ---- */

/* Frames are far smaller; this only keeps the lengths' casts exact. */
static bool too_large(struct ferry_bytes payload, struct ferry_bytes headers)
{
    return payload.len > UINT32_MAX || headers.len > UINT32_MAX - payload.len;
}

static struct message *message_new(struct ferry_bytes payload, struct ferry_bytes headers)
{
    struct message *m = core_malloc(sizeof *m + headers.len + payload.len);
    if (m == NULL)
        return NULL;
    *m = (struct message){
        .headers_len = (uint32_t)headers.len,
        .payload_len = (uint32_t)payload.len,
    };
    if (headers.len > 0)
        memcpy(m->data, headers.ptr, headers.len);
    if (payload.len > 0)
        memcpy(m->data + headers.len, payload.ptr, payload.len);
    return m;
}

/* Logs m, a new message of q, if q is durable: m gets its store id and
 * *lsn the LSN to wait for. */
static enum ferry_code log_publish(struct broker *b, struct queue *q, struct message *m,
                                   const struct message_meta *meta, uint64_t *lsn)
{
    if (!is_logged(b, q))
        return FERRY_CODE_OK;
    /* What the message got, not what was asked: the queue's defaults may
     * change before a restart. */
    struct message_meta kept = meta != NULL ? *meta : (struct message_meta){ 0 };
    kept.has_priority = true;
    kept.priority = m->priority;
    kept.ttl_ms = 0;
    kept.expires_at = m->expires_at;
    const struct broker_journal *j = b->journal;
    return j->publish(j->arg, queue_name(q), &q->settings, &kept, message_headers(m),
                      message_payload(m), &m->store_id, lsn);
}

/* The expiry of a message published now that may first be delivered at
 * `due` (0: now): the shorter of its own ttl and q's, counted from then;
 * 0 if neither has one. The clock is read only if one has. */
static uint64_t expiry_of(const struct broker *b, const struct queue *q,
                          const struct message_meta *meta, uint64_t due)
{
    uint64_t ttl = meta != NULL ? meta->ttl_ms : 0;
    if (ttl == 0 || (q->settings.ttl_ms != 0 && q->settings.ttl_ms < ttl))
        ttl = q->settings.ttl_ms;
    if (ttl == 0)
        return 0;
    uint64_t from = due != 0 ? due : broker_now(b);
    return ttl < UINT64_MAX - from ? from + ttl : UINT64_MAX;
}

/* Gives m, a new message of q that may first be delivered at `due`, what
 * meta says of it, with q's defaults for what it leaves out. BAD_REQUEST
 * if meta is out of range. */
static enum ferry_code apply_meta(const struct broker *b, const struct queue *q,
                                  struct message *m, const struct message_meta *meta,
                                  uint64_t due)
{
    m->priority = q->settings.priority;
    if (meta != NULL && meta->has_priority) {
        if (meta->priority > FERRY_PRIORITY_MAX)
            return FERRY_CODE_BAD_REQUEST;
        m->priority = meta->priority;
    }
    m->expires_at = expiry_of(b, q, meta, due);
    return FERRY_CODE_OK;
}

/* Puts m at the back of q, or in its waiting list until `due` if that is
 * nonzero (the heap has room: timer_heap_reserve); q owns it from here.
 * The caller dispatches. */
static void enqueue(struct broker *b, struct queue *q, struct message *m, uint64_t due)
{
    uint64_t size = (uint64_t)m->headers_len + m->payload_len;
    m->queue = q;
    m->seq = q->next_seq++;
    if (m->expires_at != 0) {
        q->expiring++;
        b->expiring++;
    }
    if (due != 0)
        dispatch_wait(b, m, due);
    else
        queue_push_back(q, m);
    q->stats.published++;
    q->stats.bytes += size;
    b->messages++;
    b->bytes += size;
}

enum ferry_code broker_publish_copy(struct broker *b, struct queue *to, const struct message *m,
                                    struct ferry_bytes headers)
{
    if (to->stats.ended)
        return FERRY_CODE_ENDED;
    struct ferry_bytes payload = message_payload(m);
    if (too_large(payload, headers))
        return FERRY_CODE_LIMIT;
    struct message *copy = message_new(payload, headers);
    if (copy == NULL)
        return FERRY_CODE_NO_MEMORY;
    copy->priority = m->priority;
    /* A new message of `to`: its ttl counts from now (a dead-letter queue
     * with a ttl must not keep dead letters for ever). */
    copy->expires_at = expiry_of(b, to, NULL, 0);
    struct message_meta meta = { .has_priority = true, .priority = m->priority };
    uint64_t lsn = 0;
    enum ferry_code code = log_publish(b, to, copy, &meta, &lsn);
    if (code != FERRY_CODE_OK) {
        free(copy); /* refused: not logged, never queued */
        return code;
    }
    enqueue(b, to, copy, 0);
    dispatch(to);
    return FERRY_CODE_OK;
}

/* The queue a publish goes to: found or created, and not ended. */
static enum ferry_code publish_target(struct broker *b, struct ferry_bytes queue, struct queue **out)
{
    enum ferry_code code = broker_find_queue(b, queue, true, out);
    if (code != FERRY_CODE_OK)
        return code;
    return (*out)->stats.ended ? FERRY_CODE_ENDED : FERRY_CODE_OK;
}

static void set_lsn(uint64_t *out, uint64_t lsn)
{
    if (out != NULL)
        *out = lsn;
}

/* When a message with meta must leave its wait: 0 if it need not wait. */
static uint64_t wait_until(const struct broker *b, const struct message_meta *meta)
{
    if (meta == NULL || meta->deliver_at == 0 || meta->deliver_at <= broker_now(b))
        return 0;
    return meta->deliver_at;
}

enum ferry_code broker_publish_to(struct broker *b, struct queue *q, struct session *from,
                                  struct ferry_bytes payload, struct ferry_bytes headers,
                                  const struct message_meta *meta, uint64_t *lsn)
{
    *lsn = 0;
    uint64_t drop;
    enum ferry_code code = flow_admit(b, q, from, 1, (uint64_t)payload.len + headers.len, &drop);
    if (code != FERRY_CODE_OK)
        return code;
    uint64_t due = wait_until(b, meta);
    if (due != 0 && timer_heap_reserve(&b->timers) != 0)
        return FERRY_CODE_NO_MEMORY;
    struct message *m = message_new(payload, headers);
    if (m == NULL)
        return FERRY_CODE_NO_MEMORY;
    /* The journal keeps the deliver-at only of a message that waits. */
    struct message_meta logged = meta != NULL ? *meta : (struct message_meta){ 0 };
    logged.deliver_at = due;
    code = apply_meta(b, q, m, meta, due);
    if (code == FERRY_CODE_OK)
        code = log_publish(b, q, m, &logged, lsn);
    if (code != FERRY_CODE_OK) {
        free(m); /* refused: not logged, never queued */
        return code;
    }
    flow_drop_oldest(b, q, drop); /* only once the new message is sure to go in */
    enqueue(b, q, m, due);
    if (due == 0)
        dispatch(q);
    return FERRY_CODE_OK;
}

enum ferry_code broker_publish(struct broker *b, struct session *from, struct ferry_bytes queue,
                               struct ferry_bytes payload, struct ferry_bytes headers,
                               const struct message_meta *meta, uint64_t *wait_lsn)
{
    set_lsn(wait_lsn, 0);
    if (too_large(payload, headers))
        return FERRY_CODE_LIMIT;
    struct queue *q;
    enum ferry_code code = publish_target(b, queue, &q);
    if (code != FERRY_CODE_OK)
        return code;
    uint64_t lsn = 0;
    code = broker_publish_to(b, q, from, payload, headers, meta, &lsn);
    set_lsn(wait_lsn, lsn);
    return code;
}

/* A batch being built: its messages, linked through m->next, not queued yet. */
struct batch {
    struct message *first;
    struct message **link;
    uint64_t count;
    uint64_t bytes;
};

/* Frees a batch that will not be queued, settling what was logged of it. */
static void batch_undo(struct broker *b, struct queue *q, struct message *m)
{
    while (m != NULL) {
        struct message *next = m->next;
        if (m->store_id != 0 && is_logged(b, q))
            b->journal->settle(b->journal->arg, &q->settings, m->store_id);
        free(m);
        m = next;
    }
}

enum ferry_code broker_publish_batch(struct broker *b, struct session *from, struct ferry_bytes queue,
                                     const struct broker_items *items, uint64_t *wait_lsn)
{
    set_lsn(wait_lsn, 0);
    struct queue *q;
    enum ferry_code code = publish_target(b, queue, &q);
    if (code != FERRY_CODE_OK)
        return code;

    /* Every item is copied, logged and admitted before any is queued:
     * whatever fails, nothing of the batch has been delivered yet. */
    struct batch batch = { .first = NULL, .link = &batch.first };
    struct ferry_bytes payload, headers;
    struct message_meta meta = { 0 };
    uint64_t lsn = 0;
    while (items->next(items->arg, &payload, &headers, &meta)) {
        if (too_large(payload, headers)) {
            code = FERRY_CODE_LIMIT;
            break;
        }
        struct message *m = message_new(payload, headers);
        if (m == NULL) {
            code = FERRY_CODE_NO_MEMORY;
            break;
        }
        m->next = NULL;
        *batch.link = m; /* the batch owns m until it is queued or undone */
        batch.link = &m->next;
        batch.count++;
        batch.bytes += (uint64_t)payload.len + headers.len;
        meta.deliver_at = 0; /* items of a batch are not delayed */
        code = apply_meta(b, q, m, &meta, 0);
        if (code == FERRY_CODE_OK)
            code = log_publish(b, q, m, &meta, &lsn);
        if (code != FERRY_CODE_OK)
            break;
        meta = (struct message_meta){ 0 };
    }
    /* Admitted as a whole once its size is known. A refused batch of a
     * durable queue is settled again, as one the journal refused is. */
    uint64_t drop = 0;
    if (code == FERRY_CODE_OK)
        code = flow_admit(b, q, from, batch.count, batch.bytes, &drop);
    if (code != FERRY_CODE_OK) {
        batch_undo(b, q, batch.first);
        return code;
    }
    flow_drop_oldest(b, q, drop);
    struct message *m = batch.first;
    while (m != NULL) {
        struct message *next = m->next; /* enqueue relinks m */
        enqueue(b, q, m, 0);
        m = next;
    }
    dispatch(q);
    set_lsn(wait_lsn, lsn);
    return FERRY_CODE_OK;
}

/* ---- restoring what the journal kept ---- */

enum ferry_code broker_restore_queue(struct broker *b, struct ferry_bytes queue,
                                     const struct queue_settings *s)
{
    if (!ferry_name_valid(queue))
        return FERRY_CODE_BAD_NAME;
    struct queue *q = queue_map_find(&b->queues, queue);
    if (q != NULL) {
        q->settings = *s;
        return FERRY_CODE_OK;
    }
    if (queue_map_reserve(&b->queues) != 0)
        return FERRY_CODE_NO_MEMORY;
    return create_queue(b, queue, s, false, &q);
}

enum ferry_code broker_restore_message(struct broker *b, struct ferry_bytes queue,
                                       uint64_t store_id, uint32_t attempts,
                                       const struct message_meta *meta,
                                       struct ferry_bytes headers, struct ferry_bytes payload)
{
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, false, &q);
    if (code != FERRY_CODE_OK)
        return code;
    if (too_large(payload, headers))
        return FERRY_CODE_LIMIT;
    uint64_t due = wait_until(b, meta);
    if (due != 0 && timer_heap_reserve(&b->timers) != 0)
        return FERRY_CODE_NO_MEMORY;
    struct message *m = message_new(payload, headers);
    if (m == NULL)
        return FERRY_CODE_NO_MEMORY;
    m->store_id = store_id;
    m->attempts = attempts;
    /* As it was published: the journal kept what it got. */
    m->priority = meta != NULL && meta->has_priority && meta->priority <= FERRY_PRIORITY_MAX
                      ? meta->priority
                      : q->settings.priority;
    m->expires_at = meta != NULL ? meta->expires_at : 0;
    enqueue(b, q, m, due);
    dispatch(q);
    return FERRY_CODE_OK;
}

enum ferry_code broker_restore_end(struct broker *b, struct ferry_bytes queue)
{
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, false, &q);
    if (code != FERRY_CODE_OK)
        return code;
    if (!q->stats.ended) {
        q->stats.ended = true;
        if (queue_drained(q))
            dispatch_end_of_stream(q);
    }
    return FERRY_CODE_OK;
}

/* ---- administration ---- */

enum ferry_code broker_declare(struct broker *b, struct ferry_bytes queue)
{
    struct queue *q;
    return broker_find_queue(b, queue, true, &q);
}

enum ferry_code broker_delete(struct broker *b, struct ferry_bytes queue)
{
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, false, &q);
    if (code == FERRY_CODE_OK)
        code = log_queue_change(b, q, CHANGE_DELETE);
    if (code != FERRY_CODE_OK)
        return code;
    broker_delete_queue(b, q);
    return FERRY_CODE_OK;
}

void broker_delete_queue(struct broker *b, struct queue *q)
{
    /* Out of the map at once: a new queue of that name may be created,
     * while this one lives on for the acks of its messages in flight.
     * Being deleted, it logs nothing more: the journal forgot it. */
    topics_forget_queue(b, q);
    temp_queue_forget(q);
    queue_map_remove(&b->queues, q);
    q->deleted = true;
    /* Its parked publishers try again: on a new queue of that name. */
    flow_wake_all(b, q);
    /* The JOINs first, so that dropping the messages cannot answer them OK. */
    while (q->joins != NULL)
        dispatch_join_done(q->joins, FERRY_CODE_NOT_FOUND);
    dispatch_close_consumers(q);
    drop_ready(b, q);
    if (q->stats.inflight == 0)
        queue_free(q);
}

enum ferry_code broker_purge(struct broker *b, struct ferry_bytes queue, uint64_t *purged)
{
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, false, &q);
    if (code != FERRY_CODE_OK)
        return code;
    uint64_t n = drop_ready(b, q);
    if (n > 0)
        dispatch_settled(q);
    if (purged != NULL)
        *purged = n;
    return FERRY_CODE_OK;
}

enum ferry_code broker_end(struct broker *b, struct ferry_bytes queue)
{
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, false, &q);
    if (code != FERRY_CODE_OK)
        return code;
    if (q->stats.ended)
        return FERRY_CODE_OK; /* EOS was sent, or will be, once */
    code = log_queue_change(b, q, CHANGE_END);
    if (code != FERRY_CODE_OK)
        return code;
    q->stats.ended = true;
    if (queue_drained(q))
        dispatch_end_of_stream(q);
    return FERRY_CODE_OK;
}

enum ferry_code broker_reopen(struct broker *b, struct ferry_bytes queue)
{
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, false, &q);
    if (code != FERRY_CODE_OK)
        return code;
    if (!q->stats.ended)
        return FERRY_CODE_OK;
    code = log_queue_change(b, q, CHANGE_REOPEN);
    if (code != FERRY_CODE_OK)
        return code;
    q->stats.ended = false;
    return FERRY_CODE_OK;
}

/* ---- settings ---- */

/* Whether a and b keep messages the same way (the rest of the settings
 * apply to what comes next, and change without the journal). */
static bool same_storage(const struct queue_settings *a, const struct queue_settings *b)
{
    return a->durable == b->durable && (!a->durable || a->fsync == b->fsync);
}

/* q stops being durable: the journal deletes it, its messages stay in
 * memory (those in flight keep an id the journal no longer knows, which
 * makes their settling a no-op there). */
static enum ferry_code make_in_memory(struct broker *b, struct queue *q)
{
    enum ferry_code code = log_queue_change(b, q, CHANGE_DELETE);
    if (code != FERRY_CODE_OK)
        return code;
    for (struct message *m = queue_first_ready(q); m != NULL; m = queue_next_ready(q, m))
        m->store_id = 0;
    for (struct message *m = q->waiting; m != NULL; m = m->next)
        m->store_id = 0;
    return FERRY_CODE_OK;
}

/* The durability part of a settings change. */
static enum ferry_code change_durability(struct broker *b, struct queue *q,
                                         const struct queue_settings *s)
{
    if (q->settings.durable && !s->durable) {
        enum ferry_code code = make_in_memory(b, q);
        if (code == FERRY_CODE_OK)
            q->settings = *s;
        return code;
    }
    /* Messages already queued were never logged: logging them now would
     * be a second publish path; a queue becomes durable while empty. */
    if (!q->settings.durable && !queue_drained(q))
        return FERRY_CODE_BAD_REQUEST;
    struct queue_settings old = q->settings;
    q->settings = *s;
    enum ferry_code code = log_queue_change(b, q, CHANGE_DECLARE);
    if (code != FERRY_CODE_OK)
        q->settings = old;
    return code;
}

enum ferry_code broker_configure_queue(struct broker *b, struct ferry_bytes queue,
                                       const struct queue_settings *s)
{
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, false, &q);
    if (code != FERRY_CODE_OK)
        return code;
    struct queue_settings temp;
    if (q->owner != NULL) { /* a temporary queue is never durable */
        temp = *s;
        temp.durable = false;
        s = &temp;
    }
    if (queue_settings_equal(&q->settings, s))
        return code;
    if (same_storage(&q->settings, s))
        q->settings = *s; /* nothing to log */
    else
        code = change_durability(b, q, s);
    if (code == FERRY_CODE_OK) {
        flow_wake_all(b, q); /* they try again under the new bounds */
        retry_sweep(b, q);   /* ready messages past a new max_attempts go now */
    }
    return code;
}

enum ferry_code broker_queue_settings(struct broker *b, struct ferry_bytes queue,
                                      struct queue_settings *out)
{
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, false, &q);
    if (code == FERRY_CODE_OK)
        *out = q->settings;
    return code;
}

/* ---- statistics ---- */

/* q's counters with its bounds and policy, as STATS shows them. */
static struct queue_stats stats_view(const struct queue *q)
{
    struct queue_stats st = q->stats;
    st.max_length = q->settings.max_length;
    st.max_bytes = q->settings.max_bytes;
    st.overflow = q->settings.overflow;
    return st;
}

enum ferry_code broker_queue_stats(struct broker *b, struct ferry_bytes queue, struct queue_stats *out)
{
    struct queue *q;
    if (broker_find_queue(b, queue, false, &q) != FERRY_CODE_OK)
        return FERRY_CODE_NOT_FOUND;
    *out = stats_view(q);
    return FERRY_CODE_OK;
}

void broker_each_queue(struct broker *b,
                       void (*fn)(void *arg, struct ferry_bytes name, const struct queue_stats *st),
                       void *arg)
{
    size_t slots = queue_map_slot_count(&b->queues);
    for (size_t i = 0; i < slots; i++) {
        const struct queue *q = queue_map_slot(&b->queues, i);
        if (q == NULL)
            continue;
        struct queue_stats st = stats_view(q);
        fn(arg, queue_name(q), &st);
    }
}

void broker_set_limits(struct broker *b, const struct broker_limits *limits)
{
    b->max_queues = DEFAULT_MAX_QUEUES;
    b->max_consumers_per_queue = DEFAULT_MAX_CONSUMERS_PER_QUEUE;
    if (limits != NULL && limits->max_queues != 0)
        b->max_queues = limits->max_queues;
    if (limits != NULL && limits->max_consumers_per_queue != 0)
        b->max_consumers_per_queue = limits->max_consumers_per_queue;
    uint64_t old_memory = b->max_memory;
    b->max_memory = limits != NULL ? limits->max_memory : 0;
    if (b->max_memory != old_memory)
        flow_wake_all(b, NULL); /* they try again under the new limit */
}

size_t broker_queue_count(const struct broker *b)
{
    return queue_map_count(&b->queues);
}

uint64_t broker_message_count(const struct broker *b)
{
    return b->messages;
}

uint64_t broker_message_bytes(const struct broker *b)
{
    return b->bytes;
}

uint64_t broker_memory(const struct broker *b)
{
    return b->bytes + b->messages * (uint64_t)BROKER_MESSAGE_OVERHEAD;
}

uint64_t broker_max_memory(const struct broker *b)
{
    return b->max_memory;
}

size_t broker_parked_count(const struct broker *b)
{
    size_t n = b->parked.count;
    size_t slots = queue_map_slot_count(&b->queues);
    for (size_t i = 0; i < slots; i++) {
        const struct queue *q = queue_map_slot(&b->queues, i);
        if (q != NULL)
            n += q->parked.count;
    }
    return n;
}
