/*
 * fuzz_frame.c - libFuzzer target for the wire codec (proto/): the input is
 * a byte stream as a peer would send it. Every whole frame is split off and
 * decoded; what decodes is re-encoded, decoded again, and must come back
 * the same, field by field and list entry by list entry.
 *
 * Knows only ferry_proto.h; no socket, no daemon, no client.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A finding: say what differs, then crash so that libFuzzer keeps the input. */
static void mismatch(const char *what)
{
    fprintf(stderr, "fuzz_frame: round trip changed %s\n", what);
    abort();
}

static bool same_bytes(struct ferry_bytes a, struct ferry_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* The typed lists a decoded frame needs to be encoded again. Owned by the
 * caller, freed with lists_free. */
struct lists {
    uint64_t *uints;
    struct ferry_item *items;
    struct ferry_queue_stats *stats;
    size_t count;
    struct ferry_conn_stats *conns; /* an OK to CONNS: its own list */
    size_t conn_count;
};

static void lists_free(struct lists *l)
{
    free(l->uints);
    free(l->items);
    free(l->stats);
    free(l->conns);
}

/* Reads every header of a validated map; returns how many there were. */
static size_t walk_headers(struct ferry_bytes headers)
{
    struct ferry_iter it;
    struct ferry_kv kv;
    size_t n = 0;
    ferry_headers_iter_init(&it, headers);
    while (ferry_headers_next(&it, &kv)) {
        if (kv.key.len == 0 || kv.key.len > FERRY_HEADER_KEY_MAX
            || kv.value.len > FERRY_HEADER_VALUE_MAX)
            mismatch("a header past its limits");
        n++;
    }
    if (n > FERRY_HEADERS_MAX)
        mismatch("the header count");
    return n;
}

/* Fills *l from f's raw list with the iterators; every entry must be there. */
static void read_conns(const struct ferry_frame *f, struct lists *l)
{
    struct ferry_iter it;
    size_t n = f->conn_list_count, got = 0;
    if (!f->has_conns)
        return;
    l->conns = calloc(n ? n : 1, sizeof *l->conns);
    if (!l->conns)
        abort(); /* out of memory: not a finding */
    ferry_iter_conns_init(&it, f);
    while (got < n && ferry_iter_conn(&it, &l->conns[got]))
        got++;
    if (got != n)
        mismatch("a validated connection list (the iterator stopped early)");
    l->conn_count = n;
}

static void read_lists(const struct ferry_frame *f, struct lists *l)
{
    struct ferry_iter it;
    size_t n = f->list_count;
    size_t got = 0;
    read_conns(f, l);
    ferry_iter_init(&it, f);
    switch (f->type) {
    case FERRY_F_CONFIRM: case FERRY_F_ACK: case FERRY_F_NACK: case FERRY_F_TOUCH:
        l->uints = calloc(n ? n : 1, sizeof *l->uints);
        while (l->uints && got < n && ferry_iter_uint(&it, &l->uints[got]))
            got++;
        break;
    case FERRY_F_PUBLISH_BATCH:
        l->items = calloc(n ? n : 1, sizeof *l->items);
        while (l->items && got < n && ferry_iter_item(&it, &l->items[got])) {
            walk_headers(l->items[got].headers);
            got++;
        }
        break;
    case FERRY_F_OK:
        if (f->list_is_items) { /* the answer to PEEK */
            l->items = calloc(n ? n : 1, sizeof *l->items);
            while (l->items && got < n && ferry_iter_item(&it, &l->items[got])) {
                walk_headers(l->items[got].headers);
                got++;
            }
            break;
        }
        l->stats = calloc(n ? n : 1, sizeof *l->stats);
        while (l->stats && got < n && ferry_iter_stats(&it, &l->stats[got]))
            got++;
        break;
    default:
        return;
    }
    if (!l->uints && !l->items && !l->stats)
        abort(); /* out of memory: not a finding, but nothing to compare */
    if (got != n)
        mismatch("a validated list (the iterator stopped early)");
    l->count = n;
}

/* The frame as ferry_frame_encode wants it: the typed lists instead of the raw one. */
static struct ferry_frame for_encoding(const struct ferry_frame *f, const struct lists *l)
{
    struct ferry_frame e = *f;
    e.uints = l->uints;
    e.uint_count = l->uints ? l->count : 0;
    e.items = l->items;
    e.item_count = l->items ? l->count : 0;
    e.stats = l->stats;
    e.stats_count = l->stats ? l->count : 0;
    e.server_stats = f->has_server_stats ? &f->server : NULL;
    e.conns = l->conns;
    e.conn_count = l->conn_count;
    return e;
}

static void compare_scalars(const struct ferry_frame *a, const struct ferry_frame *b)
{
    if (a->type != b->type) mismatch("type");
    if (a->rid != b->rid) mismatch("rid");
    if (a->has_id != b->has_id || a->id != b->id) mismatch("id");
    if (a->sub != b->sub) mismatch("sub");
    if (a->tag != b->tag) mismatch("tag");
    if (a->attempt != b->attempt) mismatch("attempt");
    if (a->before != b->before) mismatch("before");
    if (a->producer != b->producer) mismatch("producer");
    if (a->next != b->next) mismatch("next");
    if (a->has_conns != b->has_conns) mismatch("conns");
    if (a->credit != b->credit) mismatch("credit");
    if (a->wait_ms != b->wait_ms) mismatch("wait");
    if (a->version != b->version) mismatch("version");
    if (a->max_frame != b->max_frame) mismatch("max_frame");
    if (a->heartbeat_ms != b->heartbeat_ms) mismatch("hb");
    if (a->delay_ms != b->delay_ms) mismatch("delay");
    if (a->has_priority != b->has_priority || a->priority != b->priority) mismatch("prio");
    if (a->ttl_ms != b->ttl_ms) mismatch("ttl");
    if (a->deliver_at != b->deliver_at) mismatch("at");
    if (a->deadline_ms != b->deadline_ms) mismatch("deadline");
    if (!same_bytes(a->to, b->to)) mismatch("to");
    if (a->count != b->count) mismatch("count");
    if (a->code != b->code) mismatch("code");
    if (a->fatal != b->fatal) mismatch("fatal");
    if (a->requeue != b->requeue) mismatch("requeue");
    if (a->empty != b->empty) mismatch("empty");
    if (!same_bytes(a->queue, b->queue)) mismatch("q");
    if (!same_bytes(a->name, b->name)) mismatch("name");
    if (!same_bytes(a->text, b->text)) mismatch("msg");
    if (!same_bytes(a->payload, b->payload)) mismatch("p");
    if (!same_bytes(a->headers, b->headers)) mismatch("h");
    if (a->list_count != b->list_count) mismatch("the list length");
    if (a->has_server_stats != b->has_server_stats
        || memcmp(&a->server, &b->server, sizeof a->server) != 0)
        mismatch("server stats");
}

static void compare_conns(const struct lists *a, const struct lists *b)
{
    if (a->conn_count != b->conn_count)
        mismatch("the connection count");
    for (size_t i = 0; i < a->conn_count; i++) {
        const struct ferry_conn_stats *x = &a->conns[i], *y = &b->conns[i];
        if (x->id != y->id || !same_bytes(x->peer, y->peer) || !same_bytes(x->name, y->name)
            || x->out != y->out || x->throttled != y->throttled || x->subs != y->subs
            || x->inflight != y->inflight || x->age_ms != y->age_ms || x->idle_ms != y->idle_ms)
            mismatch("a connection's stats");
    }
}

static void compare_lists(const struct lists *a, const struct lists *b)
{
    compare_conns(a, b);
    for (size_t i = 0; i < a->count; i++) {
        if (a->uints && a->uints[i] != b->uints[i])
            mismatch("a list uint");
        if (a->items && (!same_bytes(a->items[i].payload, b->items[i].payload)
                         || !same_bytes(a->items[i].headers, b->items[i].headers)
                         || a->items[i].has_priority != b->items[i].has_priority
                         || a->items[i].priority != b->items[i].priority
                         || a->items[i].ttl_ms != b->items[i].ttl_ms))
            mismatch("a batch item");
        if (a->stats) {
            const struct ferry_queue_stats *x = &a->stats[i], *y = &b->stats[i];
            if (!same_bytes(x->name, y->name) || x->depth != y->depth
                || x->inflight != y->inflight || x->consumers != y->consumers
                || x->published != y->published || x->delivered != y->delivered
                || x->acked != y->acked || x->redelivered != y->redelivered
                || x->dropped != y->dropped || x->bytes != y->bytes || x->ended != y->ended
                || x->max_length != y->max_length || x->max_bytes != y->max_bytes
                || !same_bytes(x->overflow, y->overflow) || x->dropped_oldest != y->dropped_oldest
                || x->rejected != y->rejected || x->blocked != y->blocked
                || x->expired != y->expired
                || memcmp(x->depth_by_priority, y->depth_by_priority,
                          sizeof x->depth_by_priority) != 0)
                mismatch("a queue's stats");
        }
    }
}

/* Encodes f, decodes the result, and compares. */
static void round_trip(const struct ferry_frame *f)
{
    struct lists first = { 0 };
    read_lists(f, &first);
    walk_headers(f->headers);

    struct ferry_buf out = { 0 };
    struct ferry_frame e = for_encoding(f, &first);
    if (ferry_frame_encode(&out, &e) != 0)
        mismatch("into an encoding failure");

    struct ferry_bytes body;
    size_t used;
    const char *why = NULL;
    struct ferry_frame again;
    if (ferry_frame_split(out.data + out.off, ferry_buf_pending(&out), FERRY_FRAME_MAX_CEILING,
                          &body, &used) != FERRY_SPLIT_FRAME
        || used != ferry_buf_pending(&out))
        mismatch("the framing");
    if (ferry_frame_decode(body.ptr, body.len, &again, &why) != FERRY_CODE_OK) {
        fprintf(stderr, "fuzz_frame: re-encoded frame refused: %s\n", why ? why : "?");
        mismatch("into an undecodable frame");
    }
    compare_scalars(f, &again);
    struct lists second = { 0 };
    read_lists(&again, &second);
    compare_lists(&first, &second);

    lists_free(&second);
    lists_free(&first);
    ferry_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The input is a stream: frames back to back, as read from a socket.
     * A prefix above the default max_frame ends it, as it ends a connection. */
    const size_t max_frame = FERRY_FRAME_MAX_DEFAULT;
    size_t pos = 0;
    while (pos < size) {
        struct ferry_bytes body;
        size_t used;
        enum ferry_split split = ferry_frame_split(data + pos, size - pos, max_frame, &body, &used);
        if (split != FERRY_SPLIT_FRAME)
            break;
        struct ferry_frame f;
        const char *why = NULL;
        enum ferry_code code = ferry_frame_decode(body.ptr, body.len, &f, &why);
        if (code == FERRY_CODE_OK) {
            round_trip(&f);
            (void)ferry_frame_type_name(f.type);
        } else if (why == NULL || (code != FERRY_CODE_BAD_FRAME && code != FERRY_CODE_UNKNOWN_FRAME)) {
            /* The decoder's contract: BAD_FRAME or UNKNOWN_FRAME, with a reason. */
            fprintf(stderr, "fuzz_frame: refusal with code %d and no reason\n", (int)code);
            abort();
        }
        (void)ferry_name_valid(f.queue);
        pos += used;
    }
    return 0;
}
