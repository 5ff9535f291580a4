/*
 * broker.c - the broker as a whole: its queues by name, publishing, queue
 * administration (declare, delete, purge, end, reopen) and statistics.
 * Sessions live in session.c, moving messages in dispatch.c. Knows nothing
 * of sockets, frames or libevent.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core.h"
#include "core_alloc.h"

#define DEFAULT_MAX_QUEUES 10000u
#define DEFAULT_MAX_CONSUMERS_PER_QUEUE 10000u

/* A secret for the hashes of names and ids that clients choose. Any value
 * works; a guessable one only lets a client slow its own lookups down. */
static uint64_t make_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed)
        return seed;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)now.tv_sec;
}

struct broker *broker_new(const struct broker_limits *limits)
{
    struct broker *b = core_calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->max_queues = DEFAULT_MAX_QUEUES;
    b->max_consumers_per_queue = DEFAULT_MAX_CONSUMERS_PER_QUEUE;
    if (limits != NULL && limits->max_queues != 0)
        b->max_queues = limits->max_queues;
    if (limits != NULL && limits->max_consumers_per_queue != 0)
        b->max_consumers_per_queue = limits->max_consumers_per_queue;
    b->seed = make_seed();
    queue_map_init(&b->queues, b->seed);
    return b;
}

/* Frees q's ready messages; returns how many. */
static uint64_t drop_ready(struct broker *b, struct queue *q)
{
    uint64_t n = 0;
    struct message *m;
    while ((m = queue_pop_front(q)) != NULL) {
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
    free(b);
}

enum ferry_code broker_find_queue(struct broker *b, struct ferry_bytes name, bool create,
                                  struct queue **out)
{
    if (!ferry_name_valid(name))
        return FERRY_CODE_BAD_NAME;
    struct queue *q = queue_map_find(&b->queues, name);
    if (q == NULL && !create)
        return FERRY_CODE_NOT_FOUND;
    if (q == NULL) {
        if (queue_map_count(&b->queues) >= b->max_queues)
            return FERRY_CODE_LIMIT;
        if (queue_map_reserve(&b->queues) != 0)
            return FERRY_CODE_NO_MEMORY;
        q = queue_new(name);
        if (q == NULL)
            return FERRY_CODE_NO_MEMORY;
        queue_map_insert(&b->queues, q); /* the broker owns q from here */
    }
    *out = q;
    return FERRY_CODE_OK;
}

/* ---- publishing ---- */

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

enum ferry_code broker_publish(struct broker *b, struct ferry_bytes queue,
                               struct ferry_bytes payload, struct ferry_bytes headers)
{
    /* Frames are far smaller; this only keeps the lengths' casts exact. */
    if (payload.len > UINT32_MAX || headers.len > UINT32_MAX)
        return FERRY_CODE_LIMIT;

    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, true, &q);
    if (code != FERRY_CODE_OK)
        return code;
    if (q->stats.ended)
        return FERRY_CODE_ENDED;
    struct message *m = message_new(payload, headers);
    if (m == NULL)
        return FERRY_CODE_NO_MEMORY;

    uint64_t size = (uint64_t)headers.len + payload.len;
    m->queue = q;
    m->seq = q->next_seq++;
    queue_push_back(q, m); /* the queue owns m from here */
    q->stats.published++;
    q->stats.bytes += size;
    b->messages++;
    b->bytes += size;
    dispatch(q);
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
    if (code != FERRY_CODE_OK)
        return code;

    /* Out of the map at once: a new queue of that name may be created,
     * while this one lives on for the acks of its messages in flight. */
    queue_map_remove(&b->queues, q);
    q->deleted = true;
    /* The JOINs first, so that dropping the messages cannot answer them OK. */
    while (q->joins != NULL)
        dispatch_join_done(q->joins, FERRY_CODE_NOT_FOUND);
    dispatch_close_consumers(q);
    drop_ready(b, q);
    if (q->stats.inflight == 0)
        queue_free(q);
    return FERRY_CODE_OK;
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
    q->stats.ended = false;
    return FERRY_CODE_OK;
}

/* ---- statistics ---- */

enum ferry_code broker_queue_stats(struct broker *b, struct ferry_bytes queue, struct queue_stats *out)
{
    struct queue *q;
    if (broker_find_queue(b, queue, false, &q) != FERRY_CODE_OK)
        return FERRY_CODE_NOT_FOUND;
    *out = q->stats;
    return FERRY_CODE_OK;
}

void broker_each_queue(struct broker *b,
                       void (*fn)(void *arg, struct ferry_bytes name, const struct queue_stats *st),
                       void *arg)
{
    size_t slots = queue_map_slot_count(&b->queues);
    for (size_t i = 0; i < slots; i++) {
        const struct queue *q = queue_map_slot(&b->queues, i);
        if (q != NULL)
            fn(arg, queue_name(q), &q->stats);
    }
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
