/*
 * admin.c - queue administration: DECLARE, DELETE, PURGE, END, REOPEN,
 * JOIN, STATS, PEEK and MOVE, each a blocking round trip, and the decoding
 * of the STATS and PEEK replies into caller-owned memory.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"

/* Sends f (its rid set here) and waits for its answer in *w. */
static int admin_request(struct ferry_conn *c, struct ferry_frame *f, int timeout_ms,
                         struct ferry_waiter *w)
{
    if (conn__in_dispatch(c))
        return FERRY_EDEADLK;
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    rc = request__roundtrip(c, f, w, timeout_ms);
    conn__unlock(c);
    return rc;
}

/* Sends a request about one queue and waits for its answer in *w. */
static int queue_request(struct ferry_conn *c, enum ferry_frame_type type, const char *queue,
                         bool use_request_timeout, int timeout_ms, struct ferry_waiter *w)
{
    if (!c || !conn__queue_valid(queue))
        return FERRY_EINVAL;
    struct ferry_frame f = { .type = type, .queue = conn__bytes(queue) };
    return admin_request(c, &f, use_request_timeout ? c->request_timeout_ms : timeout_ms, w);
}

/* BIND or UNBIND. */
static int binding_request(struct ferry_conn *c, enum ferry_frame_type type, const char *queue,
                           const char *pattern)
{
    if (!c || !conn__queue_valid(queue) || !pattern || !ferry_pattern_valid(conn__bytes(pattern)))
        return FERRY_EINVAL;
    struct ferry_frame f = { .type = type, .queue = conn__bytes(queue), .topic = conn__bytes(pattern) };
    struct ferry_waiter w = { 0 };
    return admin_request(c, &f, c->request_timeout_ms, &w);
}

int ferry_bind(ferry_conn *c, const char *queue, const char *pattern)
{
    return binding_request(c, FERRY_F_BIND, queue, pattern);
}

int ferry_unbind(ferry_conn *c, const char *queue, const char *pattern)
{
    return binding_request(c, FERRY_F_UNBIND, queue, pattern);
}

int ferry_declare_temp(ferry_conn *c, const char *queue, char *name_out, size_t name_cap)
{
    if (!c || (queue && !conn__queue_valid(queue)) || !name_out || name_cap <= FERRY_NAME_MAX)
        return FERRY_EINVAL;
    struct ferry_frame f = { .type = FERRY_F_DECLARE_TEMP };
    if (queue)
        f.queue = conn__bytes(queue);
    struct ferry_waiter w = { .name_out = name_out };
    name_out[0] = '\0';
    return admin_request(c, &f, c->request_timeout_ms, &w);
}

int ferry_declare(ferry_conn *c, const char *queue)
{
    struct ferry_waiter w = { 0 };
    return queue_request(c, FERRY_F_DECLARE, queue, true, 0, &w);
}

int ferry_delete(ferry_conn *c, const char *queue)
{
    struct ferry_waiter w = { 0 };
    return queue_request(c, FERRY_F_DELETE, queue, true, 0, &w);
}

int ferry_purge(ferry_conn *c, const char *queue, uint64_t *purged)
{
    struct ferry_waiter w = { 0 };
    int rc = queue_request(c, FERRY_F_PURGE, queue, true, 0, &w);
    if (rc == FERRY_OK && purged)
        *purged = w.count;
    return rc;
}

int ferry_end(ferry_conn *c, const char *queue)
{
    struct ferry_waiter w = { 0 };
    return queue_request(c, FERRY_F_END, queue, true, 0, &w);
}

int ferry_reopen(ferry_conn *c, const char *queue)
{
    struct ferry_waiter w = { 0 };
    return queue_request(c, FERRY_F_REOPEN, queue, true, 0, &w);
}

int ferry_join(ferry_conn *c, const char *queue, int timeout_ms)
{
    struct ferry_waiter w = { 0 };
    return queue_request(c, FERRY_F_JOIN, queue, false, timeout_ms, &w);
}

int ferry_move(ferry_conn *c, const char *queue, const char *to, uint64_t max, uint64_t *moved)
{
    if (!c || !conn__queue_valid(queue) || (to && !conn__queue_valid(to)))
        return FERRY_EINVAL;
    if (conn__in_dispatch(c))
        return FERRY_EDEADLK;
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    /* The broker moves at most FERRY_MOVE_MAX per request (so that one
     * request holds its loop for a bounded time): ask again until a
     * request moves nothing. */
    struct ferry_frame f = { .type = FERRY_F_MOVE, .queue = conn__bytes(queue) };
    if (to)
        f.to = conn__bytes(to);
    uint64_t total = 0;
    for (;;) {
        struct ferry_waiter w = { 0 };
        f.count = max == 0 ? 0 : max - total;
        rc = request__roundtrip(c, &f, &w, c->request_timeout_ms);
        if (rc != FERRY_OK)
            break;
        total += w.count;
        if (w.count == 0 || (max != 0 && total >= max))
            break;
    }
    conn__unlock(c);
    if (rc == FERRY_ESERVER && total > 0)
        rc = FERRY_OK; /* as the broker says of one request: some moved, then it stopped */
    if (rc == FERRY_OK && moved)
        *moved = total;
    return rc;
}

int admin__decode_peek(const struct ferry_frame *f, struct ferry_waiter *w)
{
    size_t n = f->list_is_items ? f->list_count : 0;
    w->peeked = calloc(n + 1, sizeof *w->peeked);
    if (!w->peeked)
        return FERRY_ENOMEM;
    struct ferry_iter it;
    struct ferry_item item;
    ferry_iter_init(&it, f);
    while (w->peeked_count < n && ferry_iter_item(&it, &item)) {
        ferry_message *m = message__new(0, 0, 0, w->peek_queue, item.payload, item.headers);
        if (!m)
            return FERRY_ENOMEM; /* the caller frees what was copied */
        w->peeked[w->peeked_count++] = m;
    }
    return FERRY_OK;
}

int ferry_peek(ferry_conn *c, const char *queue, size_t max, ferry_message ***msgs, size_t *count)
{
    if (!msgs || !count)
        return FERRY_EINVAL;
    *msgs = NULL;
    *count = 0;
    if (!c || !conn__queue_valid(queue) || max > FERRY_PEEK_MAX)
        return FERRY_EINVAL;
    if (conn__in_dispatch(c))
        return FERRY_EDEADLK;
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    struct ferry_waiter w = { .peek_queue = queue };
    struct ferry_frame f = { .type = FERRY_F_PEEK, .queue = conn__bytes(queue), .count = max };
    rc = request__roundtrip(c, &f, &w, c->request_timeout_ms);
    conn__unlock(c);
    if (rc != FERRY_OK) {
        ferry_peek_free(w.peeked, w.peeked_count);
        return rc;
    }
    *msgs = w.peeked; /* the reader copied them for us; the caller owns them now */
    *count = w.peeked_count;
    return FERRY_OK;
}

void ferry_peek_free(ferry_message **msgs, size_t count)
{
    if (!msgs)
        return;
    for (size_t i = 0; i < count; i++)
        ferry_message_free(msgs[i]);
    free(msgs);
}

int ferry_stats(ferry_conn *c, const char *queue, struct ferry_stats **out)
{
    if (!out)
        return FERRY_EINVAL;
    *out = NULL;
    if (!c || (queue && !conn__queue_valid(queue)))
        return FERRY_EINVAL;
    if (conn__in_dispatch(c))
        return FERRY_EDEADLK;
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    struct ferry_waiter w = { .wants_stats = true };
    struct ferry_frame f = { .type = FERRY_F_STATS };
    if (queue)
        f.queue = conn__bytes(queue);
    rc = request__roundtrip(c, &f, &w, c->request_timeout_ms);
    conn__unlock(c);
    if (rc == FERRY_OK)
        *out = w.stats; /* the reader decoded it for us; the caller owns it now */
    else
        ferry_stats_free(w.stats);
    return rc;
}

void ferry_stats_free(struct ferry_stats *s)
{
    free(s); /* one allocation: see admin__decode_stats() */
}

static void copy_queue_stats(struct ferry_queue_info *q, const struct ferry_queue_stats *qs,
                             char *name)
{
    if (qs->name.len)
        memcpy(name, qs->name.ptr, qs->name.len);
    name[qs->name.len] = '\0';
    *q = (struct ferry_queue_info){
        .name = name,
        .depth = qs->depth,
        .inflight = qs->inflight,
        .consumers = qs->consumers,
        .published = qs->published,
        .delivered = qs->delivered,
        .acked = qs->acked,
        .redelivered = qs->redelivered,
        .dropped = qs->dropped,
        .bytes = qs->bytes,
        .delayed = qs->delayed,
        .dead_lettered = qs->dead_lettered,
        .timeouts = qs->timeouts,
        .ended = qs->ended,
        .max_length = qs->max_length,
        .max_bytes = qs->max_bytes,
        .dropped_oldest = qs->dropped_oldest,
        .rejected = qs->rejected,
        .blocked = qs->blocked,
    };
    memcpy(q->depth_by_priority, qs->depth_by_priority, sizeof q->depth_by_priority);
    q->expired = qs->expired;
    q->bindings = qs->bindings;
    /* A policy this library does not know is shown cut, never overrun. */
    size_t len = qs->overflow.len < sizeof q->overflow ? qs->overflow.len : sizeof q->overflow - 1;
    if (len)
        memcpy(q->overflow, qs->overflow.ptr, len);
    q->overflow[len] = '\0';
}

int admin__decode_stats(const struct ferry_frame *f, struct ferry_stats **out)
{
    /* One allocation holds the struct, the queue array and every name, so
     * that ferry_stats_free() is one free(). First measure, then fill. */
    struct ferry_iter it;
    struct ferry_queue_stats qs;
    size_t count = 0, names = 0;
    ferry_iter_init(&it, f);
    while (ferry_iter_stats(&it, &qs)) {
        count++;
        names += qs.name.len + 1;
    }
    struct ferry_stats *s = calloc(1, sizeof *s + count * sizeof(struct ferry_queue_info) + names);
    if (!s)
        return FERRY_ENOMEM;
    if (f->has_server_stats) {
        s->connections = f->server.connections;
        s->queue_total = f->server.queues;
        s->uptime_ms = f->server.uptime_ms;
        s->topic_publishes = f->server.topic_publishes;
        s->unroutable = f->server.unroutable;
        s->copies = f->server.copies;
        s->skipped = f->server.skipped;
        s->bindings = f->server.bindings;
        s->messages = f->server.messages;
        s->bytes = f->server.bytes;
        s->memory = f->server.memory;
        s->max_memory = f->server.max_memory;
        s->parked = f->server.parked;
        s->duplicates_dropped = f->server.dups;
        s->duplicates_evicted = f->server.dup_evicted;
    }
    s->queues = count ? (struct ferry_queue_info *)(s + 1) : NULL;
    char *name = (char *)(s + 1) + count * sizeof(struct ferry_queue_info);
    ferry_iter_init(&it, f);
    for (size_t i = 0; i < count && ferry_iter_stats(&it, &qs); i++) {
        copy_queue_stats(&s->queues[i], &qs, name);
        name += qs.name.len + 1;
        s->count = i + 1;
    }
    *out = s;
    return FERRY_OK;
}

int ferry_bindings(ferry_conn *c, const char *queue, char ***patterns, size_t *count)
{
    if (!patterns || !count)
        return FERRY_EINVAL;
    *patterns = NULL;
    *count = 0;
    if (!c || !conn__queue_valid(queue))
        return FERRY_EINVAL;
    struct ferry_frame f = { .type = FERRY_F_BINDINGS, .queue = conn__bytes(queue) };
    struct ferry_waiter w = { .wants_patterns = true };
    int rc = admin_request(c, &f, c->request_timeout_ms, &w);
    if (rc == FERRY_OK) {
        *patterns = w.patterns; /* the reader decoded them for us; the caller owns them now */
        *count = w.pattern_count;
    } else {
        free(w.patterns);
    }
    return rc;
}

void ferry_bindings_free(char **patterns)
{
    free(patterns); /* one allocation: see admin__decode_patterns() */
}

int admin__decode_patterns(const struct ferry_frame *f, struct ferry_waiter *w)
{
    if (!f->has_patterns)
        return FERRY_EPROTO;
    /* One allocation: the pointers (and a NULL after them), then each
     * pattern NUL-terminated. First measure, then fill. */
    struct ferry_iter it;
    struct ferry_bytes p;
    size_t count = 0, text = 0;
    ferry_iter_patterns_init(&it, f);
    while (ferry_iter_str(&it, &p)) {
        count++;
        text += p.len + 1;
    }
    char **out = malloc((count + 1) * sizeof *out + text);
    if (!out)
        return FERRY_ENOMEM;
    char *next = (char *)(out + count + 1);
    size_t n = 0;
    ferry_iter_patterns_init(&it, f);
    while (n < count && ferry_iter_str(&it, &p)) {
        memcpy(next, p.ptr, p.len);
        next[p.len] = '\0';
        out[n++] = next;
        next += p.len + 1;
    }
    out[n] = NULL;
    w->patterns = out;
    w->pattern_count = n;
    return FERRY_OK;
}
