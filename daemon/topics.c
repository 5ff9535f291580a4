/*
 * topics.c - fan-out: binding queues to topic patterns and publishing to a
 * topic, a copy into every bound queue, each through the same path as a
 * plain publish (broker_publish_to). The trie is bindings.c's; this file
 * owns the rules: limits, one copy per queue, skipping queues that cannot
 * take one. Knows nothing of sockets, frames or files.
 */
#include <stdlib.h>

#include "core.h"
#include "core_alloc.h"

int topics_init(struct broker *b)
{
    return bindings_init(&b->bindings, b->seed);
}

void topics_free(struct broker *b)
{
    bindings_free(&b->bindings);
    free(b->fanout);
    b->fanout = NULL;
    b->fanout_cap = 0;
}

/* One more queue has bindings: the fan-out array must hold it too, so that
 * a publish never has to allocate. 0, or -1 on ENOMEM. */
static int fanout_reserve(struct broker *b)
{
    if (b->bound_queues < b->fanout_cap)
        return 0;
    size_t cap = b->fanout_cap == 0 ? 16 : b->fanout_cap * 2;
    struct queue **grown = core_malloc(cap * sizeof *grown);
    if (grown == NULL)
        return -1;
    free(b->fanout); /* holds nothing between publishes */
    b->fanout = grown;
    b->fanout_cap = cap;
    return 0;
}

void topics_forget_queue(struct broker *b, struct queue *q)
{
    if (q->bindings == NULL)
        return;
    bindings_remove_all(&b->bindings, &q->bindings);
    q->stats.bindings = 0;
    b->bound_queues--;
}

enum ferry_code broker_bind(struct broker *b, struct ferry_bytes queue, struct ferry_bytes pattern)
{
    if (!ferry_name_valid(queue))
        return FERRY_CODE_BAD_NAME;
    if (!ferry_pattern_valid(pattern))
        return FERRY_CODE_BAD_TOPIC;
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, true, &q);
    if (code != FERRY_CODE_OK)
        return code;
    if (bindings_contains(&b->bindings, pattern, q->bindings))
        return FERRY_CODE_OK;
    if (q->stats.bindings >= BROKER_BINDINGS_PER_QUEUE_MAX
        || bindings_count(&b->bindings) >= BROKER_BINDINGS_MAX)
        return FERRY_CODE_LIMIT;
    bool first = q->bindings == NULL;
    if (first && fanout_reserve(b) != 0)
        return FERRY_CODE_NO_MEMORY;
    bool added;
    code = bindings_add(&b->bindings, pattern, q, &q->bindings, &added);
    if (code != FERRY_CODE_OK || !added)
        return code;
    q->stats.bindings++;
    if (first)
        b->bound_queues++;
    return FERRY_CODE_OK;
}

enum ferry_code broker_unbind(struct broker *b, struct ferry_bytes queue, struct ferry_bytes pattern)
{
    if (!ferry_name_valid(queue))
        return FERRY_CODE_BAD_NAME;
    if (!ferry_pattern_valid(pattern))
        return FERRY_CODE_BAD_TOPIC;
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, false, &q);
    if (code == FERRY_CODE_OK)
        code = bindings_remove(&b->bindings, pattern, &q->bindings);
    if (code != FERRY_CODE_OK)
        return code;
    q->stats.bindings--;
    if (q->bindings == NULL)
        b->bound_queues--;
    return FERRY_CODE_OK;
}

/* bindings_match's callback: each queue joins the fan-out once. */
static void choose_queue(void *arg, void *target)
{
    struct broker *b = arg;
    struct queue *q = target;
    if (q->fanout_epoch == b->fanout_epoch)
        return;
    q->fanout_epoch = b->fanout_epoch;
    b->fanout[b->fanout_count++] = q; /* room: fanout_cap >= bound_queues */
}

/* Whether a refusal of one copy is the queue's own bound (skip it and go
 * on) rather than a failure the publisher must hear of. */
static bool copy_skipped(enum ferry_code code)
{
    return code == FERRY_CODE_QUEUE_FULL || code == FERRY_CODE_ENDED;
}

enum ferry_code broker_publish_topic(struct broker *b, struct ferry_bytes topic,
                                     struct ferry_bytes payload, struct ferry_bytes headers,
                                     const struct message_meta *meta, uint64_t *wait_lsn)
{
    if (wait_lsn != NULL)
        *wait_lsn = 0;
    if (!ferry_topic_valid(topic))
        return FERRY_CODE_BAD_TOPIC;
    if (payload.len > UINT32_MAX || headers.len > UINT32_MAX - payload.len)
        return FERRY_CODE_LIMIT;
    b->fanout_epoch++;
    b->fanout_count = 0;
    bindings_match(&b->bindings, topic, choose_queue, b);
    b->topic_stats.published++;
    if (b->fanout_count == 0) {
        b->topic_stats.unroutable++;
        return FERRY_CODE_OK;
    }
    /* Every queue gets its chance whatever happened to the others: one
     * full queue holds up nobody. The array is the broker's, and nothing
     * below publishes to a topic, so it stays as it is until the end. */
    enum ferry_code result = FERRY_CODE_OK;
    uint64_t last_lsn = 0;
    for (size_t i = 0; i < b->fanout_count; i++) {
        struct queue *q = b->fanout[i];
        uint64_t lsn = 0;
        enum ferry_code code = q->stats.ended
                                   ? FERRY_CODE_ENDED
                                   : broker_publish_to(b, q, NULL, payload, headers, meta, &lsn);
        if (code == FERRY_CODE_OK) {
            b->topic_stats.copies++;
            last_lsn = lsn > last_lsn ? lsn : last_lsn;
        } else if (copy_skipped(code)) {
            b->topic_stats.skipped++;
        } else if (result == FERRY_CODE_OK) {
            result = code;
        }
    }
    b->fanout_count = 0;
    if (wait_lsn != NULL)
        *wait_lsn = last_lsn;
    return result;
}

enum ferry_code broker_each_binding(struct broker *b, struct ferry_bytes queue,
                                    void (*fn)(void *arg, struct ferry_bytes pattern), void *arg)
{
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, queue, false, &q);
    if (code != FERRY_CODE_OK)
        return code;
    uint8_t buf[FERRY_TOPIC_MAX];
    for (const struct binding *bd = q->bindings; bd != NULL; bd = bd->target_next) {
        size_t len = bindings_pattern(bd, buf);
        fn(arg, (struct ferry_bytes){ buf, len });
    }
    return FERRY_CODE_OK;
}

void broker_topic_stats(const struct broker *b, struct topic_stats *out)
{
    *out = b->topic_stats;
    out->bindings = bindings_count(&b->bindings);
}
