/*
 * encode.c - writes struct ferry_frame as one whole frame (length prefix
 * and msgpack map) into a struct ferry_buf, with msgpack-c's packer. On
 * the hot path (a DELIVER per message): one reserve for the frame's upper
 * bound, then plain appends. Does not validate; callers keep to the limits.
 */
#include <assert.h>
#include <string.h>

#include <msgpack.h>

#include "ferry_proto.h"

/* The packer writes through this into the output buffer. `failed` is
 * sticky, so a frame with a hole in it is never kept. */
struct encoder {
    msgpack_packer pk;
    struct ferry_buf *out;
    bool failed;
};

static inline void put_raw(struct encoder *e, const void *p, size_t n)
{
    struct ferry_buf *b = e->out;
    if (n == 0 || e->failed)
        return;
    /* The frame's upper bound was reserved up front, so this is the path
     * taken: a bare copy, no call into the buffer's growth logic. */
    if (n <= b->cap - b->len) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return;
    }
    if (ferry_buf_append(b, p, n) != 0)
        e->failed = true;
}

static int packer_write(void *data, const char *bytes, size_t len)
{
    struct encoder *e = data;
    put_raw(e, bytes, len);
    return e->failed ? -1 : 0;
}

/* ---- upper bound of the encoded size ------------------------------------- */

/* Widest map, array, str or bin header. */
#define HEADER_MAX 5u
/* Widest key (fixstr of up to 14 bytes: "dropped_oldest") with its widest
 * scalar value (uint64: 9 bytes). */
#define SCALAR_PAIR_MAX (1u + 14u + 9u)
/* More scalar keys than any frame has. */
#define SCALAR_PAIRS_MAX 12u

/* A key with a str, bin or raw-map value of len bytes. */
static size_t span_bound(size_t len)
{
    return 1 + 11 + HEADER_MAX + len;
}

static size_t items_bound(const struct ferry_frame *f)
{
    size_t n = span_bound(0);
    for (size_t i = 0; i < f->item_count; i++) {
        /* {"h": map, "prio": uint, "ttl": uint, "p": bin}: map header, the
         * keys and uints, bin header. */
        n += 1 + 2 + 5 + 1 + 4 + 9 + 2 + HEADER_MAX + f->items[i].payload.len
             + f->items[i].headers.len;
    }
    return n;
}

static size_t conns_bound(const struct ferry_frame *f)
{
    size_t n = 2 * span_bound(0) + SCALAR_PAIR_MAX;
    for (size_t i = 0; i < f->conn_count; i++)
        n += 1 + 7 * SCALAR_PAIR_MAX + span_bound(f->conns[i].peer.len)
           + span_bound(f->conns[i].name.len);
    return n;
}

static size_t stats_bound(const struct ferry_frame *f)
{
    size_t n = 2 * span_bound(0) + 1 + 15 * SCALAR_PAIR_MAX;
    for (size_t i = 0; i < f->stats_count; i++)
        n += 1 + 22 * SCALAR_PAIR_MAX + f->stats[i].name.len
             + span_bound(f->stats[i].overflow.len)
             + 12 + FERRY_PRIORITY_LEVELS * 9; /* "depth_prio": key, array */
    return n;
}

/* Bytes the frame takes at most, prefix included. */
static size_t frame_bound(const struct ferry_frame *f)
{
    size_t n = FERRY_FRAME_PREFIX + HEADER_MAX + SCALAR_PAIRS_MAX * SCALAR_PAIR_MAX;
    n += span_bound(f->queue.len) + span_bound(f->name.len) + span_bound(f->text.len);
    n += span_bound(f->payload.len) + span_bound(f->headers.len) + span_bound(f->topic.len);
    n += span_bound(f->to.len);
    switch (f->type) {
    case FERRY_F_CONFIRM: case FERRY_F_ACK: case FERRY_F_NACK: case FERRY_F_TOUCH:
        n += span_bound(0) + 9 * f->uint_count;
        break;
    case FERRY_F_PUBLISH_BATCH:
        n += items_bound(f);
        break;
    case FERRY_F_OK:
        n += stats_bound(f) + conns_bound(f) + items_bound(f) + span_bound(0);
        for (size_t i = 0; i < f->pattern_count; i++)
            n += HEADER_MAX + f->patterns[i].len;
        break;
    default:
        break;
    }
    return n;
}

/* ---- pairs --------------------------------------------------------------- */

/* Keys are short constant strings (at most 11 bytes): one fixstr, its
 * header byte and text written in one copy instead of two packer calls. */
static inline void put_key(struct encoder *e, const char *key)
{
    uint8_t fixstr[16];
    size_t len = strlen(key);
    assert(len < sizeof fixstr && len <= 31);
    fixstr[0] = (uint8_t)(0xa0 | len);
    memcpy(fixstr + 1, key, len);
    put_raw(e, fixstr, 1 + len);
}

static inline void put_uint(struct encoder *e, const char *key, uint64_t v)
{
    put_key(e, key);
    msgpack_pack_uint64(&e->pk, v);
}

static void put_bool(struct encoder *e, const char *key, bool v)
{
    put_key(e, key);
    if (v)
        msgpack_pack_true(&e->pk);
    else
        msgpack_pack_false(&e->pk);
}

static void put_str(struct encoder *e, const char *key, struct ferry_bytes s)
{
    put_key(e, key);
    msgpack_pack_str_with_body(&e->pk, s.ptr, s.len);
}

static void put_bin(struct encoder *e, const char *key, struct ferry_bytes b)
{
    put_key(e, key);
    msgpack_pack_bin_with_body(&e->pk, b.ptr, b.len);
}

/* A raw header map, copied as is: it was validated (or built by
 * ferry_headers_encode) before, re-encoding would only cost time. */
static void put_raw_map(struct encoder *e, const char *key, struct ferry_bytes map)
{
    put_key(e, key);
    put_raw(e, map.ptr, map.len);
}

/* The map header and the "t" pair every frame starts with. */
static void put_start(struct encoder *e, const struct ferry_frame *f, size_t pairs)
{
    msgpack_pack_map(&e->pk, pairs);
    put_uint(e, "t", (uint64_t)f->type);
}

/* ---- one function per frame shape --------------------------------------- */

static void encode_hello(struct encoder *e, const struct ferry_frame *f)
{
    bool has_name = f->name.len > 0, has_producer = f->producer != 0;
    put_start(e, f, 2 + has_name + has_producer);
    put_uint(e, "v", f->version);
    if (has_name)
        put_str(e, "name", f->name);
    if (has_producer)
        put_uint(e, "producer", f->producer);
}

static void encode_welcome(struct encoder *e, const struct ferry_frame *f)
{
    put_start(e, f, 5);
    put_uint(e, "v", f->version);
    put_str(e, "name", f->name);
    put_uint(e, "max_frame", f->max_frame);
    put_uint(e, "hb", f->heartbeat_ms);
}

static void encode_error(struct encoder *e, const struct ferry_frame *f)
{
    bool has_rid = f->rid != 0;
    put_start(e, f, 4 + has_rid + f->has_id);
    put_uint(e, "code", f->code);
    put_str(e, "msg", f->text);
    put_bool(e, "fatal", f->fatal);
    if (has_rid)
        put_uint(e, "rid", f->rid);
    if (f->has_id)
        put_uint(e, "id", f->id);
}

/* PING, PONG: an optional rid. */
static void encode_ping(struct encoder *e, const struct ferry_frame *f)
{
    bool has_rid = f->rid != 0;
    put_start(e, f, 1 + has_rid);
    if (has_rid)
        put_uint(e, "rid", f->rid);
}

static void put_server_stats(struct encoder *e, const struct ferry_server_stats *s)
{
    put_key(e, "server");
    msgpack_pack_map(&e->pk, 15);
    put_uint(e, "conns", s->connections);
    put_uint(e, "queues", s->queues);
    put_uint(e, "uptime_ms", s->uptime_ms);
    put_uint(e, "messages", s->messages);
    put_uint(e, "bytes", s->bytes);
    put_uint(e, "topic_pubs", s->topic_publishes);
    put_uint(e, "unroutable", s->unroutable);
    put_uint(e, "copies", s->copies);
    put_uint(e, "skipped", s->skipped);
    put_uint(e, "bindings", s->bindings);
    put_uint(e, "memory", s->memory);
    put_uint(e, "max_memory", s->max_memory);
    put_uint(e, "parked", s->parked);
    put_uint(e, "dups", s->dups);
    put_uint(e, "dup_evicted", s->dup_evicted);
}

static void put_uints(struct encoder *e, const char *key, const uint64_t *v, size_t n);

static void put_queue_stats(struct encoder *e, const struct ferry_queue_stats *qs)
{
    msgpack_pack_map(&e->pk, 23);
    put_str(e, "q", qs->name);
    put_uint(e, "depth", qs->depth);
    put_uint(e, "inflight", qs->inflight);
    put_uint(e, "consumers", qs->consumers);
    put_uint(e, "published", qs->published);
    put_uint(e, "delivered", qs->delivered);
    put_uint(e, "acked", qs->acked);
    put_uint(e, "redelivered", qs->redelivered);
    put_uint(e, "dropped", qs->dropped);
    put_uint(e, "bytes", qs->bytes);
    put_uint(e, "delayed", qs->delayed);
    put_bool(e, "ended", qs->ended);
    put_uints(e, "depth_prio", qs->depth_by_priority, FERRY_PRIORITY_LEVELS);
    put_uint(e, "expired", qs->expired);
    put_uint(e, "bindings", qs->bindings);
    put_uint(e, "max_length", qs->max_length);
    put_uint(e, "max_bytes", qs->max_bytes);
    put_str(e, "overflow", qs->overflow);
    put_uint(e, "dropped_oldest", qs->dropped_oldest);
    put_uint(e, "rejected", qs->rejected);
    put_uint(e, "blocked", qs->blocked);
    put_uint(e, "deadletter", qs->dead_lettered);
    put_uint(e, "timeouts", qs->timeouts);
}

/* An item with nothing but a payload is its bare payload bin. */
static void put_item(struct encoder *e, const struct ferry_item *item)
{
    bool has_headers = item->headers.len > 0;
    bool has_ttl = item->ttl_ms != 0;
    if (!has_headers && !item->has_priority && !has_ttl) {
        msgpack_pack_bin_with_body(&e->pk, item->payload.ptr, item->payload.len);
        return;
    }
    msgpack_pack_map(&e->pk, 1u + has_headers + item->has_priority + has_ttl);
    if (has_headers)
        put_raw_map(e, "h", item->headers);
    if (item->has_priority)
        put_uint(e, "prio", item->priority);
    if (has_ttl)
        put_uint(e, "ttl", item->ttl_ms);
    put_bin(e, "p", item->payload);
}

/* OK: "n" when nonzero, "empty" when true, "q" when non-empty (the
 * answer to DECLARE_TEMP); a STATS reply (server_stats
 * set) carries "server" and "queues", the latter possibly empty. */
static void put_conn_stats(struct encoder *e, const struct ferry_conn_stats *cs)
{
    msgpack_pack_map(&e->pk, 9);
    put_uint(e, "id", cs->id);
    put_str(e, "peer", cs->peer);
    put_str(e, "name", cs->name);
    put_uint(e, "out", cs->out);
    put_bool(e, "throttled", cs->throttled);
    put_uint(e, "subs", cs->subs);
    put_uint(e, "inflight", cs->inflight);
    put_uint(e, "age_ms", cs->age_ms);
    put_uint(e, "idle_ms", cs->idle_ms);
}

/* The CONNS reply's list of an OK: "conns" (possibly empty). */
static void put_conns(struct encoder *e, const struct ferry_frame *f)
{
    put_key(e, "conns");
    msgpack_pack_array(&e->pk, f->conn_count);
    for (size_t i = 0; i < f->conn_count; i++)
        put_conn_stats(e, &f->conns[i]);
}

static void encode_ok(struct encoder *e, const struct ferry_frame *f)
{
    bool has_n = f->count != 0;
    bool has_server = f->server_stats != NULL;
    bool has_queues = has_server || f->stats_count > 0;
    bool has_q = f->queue.len > 0;
    bool has_next = f->has_conns || f->next != 0; /* a CONNS reply always says "next" */
    bool has_items = f->item_count > 0;
    put_start(e, f, 2 + has_n + f->empty + has_server + has_queues + has_q + f->has_conns + has_next
                        + has_items + f->has_patterns);
    put_uint(e, "rid", f->rid);
    if (has_q)
        put_str(e, "q", f->queue);
    if (has_n)
        put_uint(e, "n", f->count);
    if (f->empty)
        put_bool(e, "empty", true);
    if (has_server)
        put_server_stats(e, f->server_stats);
    if (has_queues) {
        put_key(e, "queues");
        msgpack_pack_array(&e->pk, f->stats_count);
        for (size_t i = 0; i < f->stats_count; i++)
            put_queue_stats(e, &f->stats[i]);
    }
    if (f->has_conns)
        put_conns(e, f);
    if (f->has_patterns) {
        put_key(e, "patterns");
        msgpack_pack_array(&e->pk, f->pattern_count);
        for (size_t i = 0; i < f->pattern_count; i++)
            msgpack_pack_str_with_body(&e->pk, f->patterns[i].ptr, f->patterns[i].len);
    }
    if (has_next)
        put_uint(e, "next", f->next);
    if (has_items) {
        put_key(e, "m");
        msgpack_pack_array(&e->pk, f->item_count);
        for (size_t i = 0; i < f->item_count; i++)
            put_item(e, &f->items[i]);
    }
}

/* PUBLISH to a queue, PUBLISH_TOPIC to a topic. */
static void encode_publish(struct encoder *e, const struct ferry_frame *f)
{
    bool has_headers = f->headers.len > 0;
    bool has_delay = f->delay_ms != 0, has_at = f->deliver_at != 0;
    bool has_ttl = f->ttl_ms != 0;
    put_start(e, f, 3 + has_headers + f->has_id + f->has_priority + has_delay + has_at + has_ttl);
    if (f->type == FERRY_F_PUBLISH_TOPIC)
        put_str(e, "topic", f->topic);
    else
        put_str(e, "q", f->queue);
    if (has_headers)
        put_raw_map(e, "h", f->headers);
    if (f->has_id)
        put_uint(e, "id", f->id);
    if (f->has_priority)
        put_uint(e, "prio", f->priority);
    if (has_delay)
        put_uint(e, "delay", f->delay_ms);
    if (has_at)
        put_uint(e, "at", f->deliver_at);
    if (has_ttl)
        put_uint(e, "ttl", f->ttl_ms);
    put_bin(e, "p", f->payload); /* last: the payload is one memcpy */
}


static void encode_publish_batch(struct encoder *e, const struct ferry_frame *f)
{
    put_start(e, f, 3 + f->has_id);
    put_str(e, "q", f->queue);
    if (f->has_id)
        put_uint(e, "id", f->id);
    put_key(e, "m");
    msgpack_pack_array(&e->pk, f->item_count);
    for (size_t i = 0; i < f->item_count; i++)
        put_item(e, &f->items[i]);
}

static void put_uints(struct encoder *e, const char *key, const uint64_t *v, size_t n)
{
    put_key(e, key);
    msgpack_pack_array(&e->pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_uint64(&e->pk, v[i]);
}

/* CONFIRM, ACK, NACK, TOUCH. NACK always says "requeue", so a reader need
 * not know the default; "delay" (NACK) and "deadline" (TOUCH) when set. */
static void encode_uint_list(struct encoder *e, const struct ferry_frame *f)
{
    bool is_nack = f->type == FERRY_F_NACK;
    bool has_delay = is_nack && f->delay_ms != 0;
    bool has_deadline = f->type == FERRY_F_TOUCH && f->deadline_ms != 0;
    put_start(e, f, 2 + is_nack + has_delay + has_deadline);
    put_uints(e, f->type == FERRY_F_CONFIRM ? "ids" : "tags", f->uints, f->uint_count);
    if (is_nack)
        put_bool(e, "requeue", f->requeue);
    if (has_delay)
        put_uint(e, "delay", f->delay_ms);
    if (has_deadline)
        put_uint(e, "deadline", f->deadline_ms);
}

static void encode_consume(struct encoder *e, const struct ferry_frame *f)
{
    bool has_deadline = f->deadline_ms != 0;
    put_start(e, f, 5 + has_deadline);
    put_uint(e, "rid", f->rid);
    put_str(e, "q", f->queue);
    put_uint(e, "sub", f->sub);
    put_uint(e, "credit", f->credit);
    if (has_deadline)
        put_uint(e, "deadline", f->deadline_ms);
}

/* PEEK and MOVE: "n" when nonzero, MOVE's "to" when set. */
static void encode_peek_move(struct encoder *e, const struct ferry_frame *f)
{
    bool has_n = f->count != 0, has_to = f->to.len > 0;
    put_start(e, f, 3 + has_n + has_to);
    put_uint(e, "rid", f->rid);
    put_str(e, "q", f->queue);
    if (has_to)
        put_str(e, "to", f->to);
    if (has_n)
        put_uint(e, "n", f->count);
}

static void encode_credit(struct encoder *e, const struct ferry_frame *f)
{
    put_start(e, f, 3);
    put_uint(e, "sub", f->sub);
    put_uint(e, "n", f->credit);
}

static void encode_deliver(struct encoder *e, const struct ferry_frame *f)
{
    bool has_sub = f->sub != 0, has_rid = f->rid != 0, has_headers = f->headers.len > 0;
    put_start(e, f, 4 + has_sub + has_rid + has_headers);
    if (has_sub)
        put_uint(e, "sub", f->sub);
    if (has_rid)
        put_uint(e, "rid", f->rid);
    put_uint(e, "tag", f->tag);
    put_uint(e, "n", f->attempt);
    if (has_headers)
        put_raw_map(e, "h", f->headers);
    put_bin(e, "p", f->payload); /* last: the payload is one memcpy */
}

static void encode_cancel(struct encoder *e, const struct ferry_frame *f)
{
    put_start(e, f, 3);
    put_uint(e, "rid", f->rid);
    put_uint(e, "sub", f->sub);
}

static void encode_get(struct encoder *e, const struct ferry_frame *f)
{
    bool has_wait = f->wait_ms != 0;
    put_start(e, f, 3 + has_wait);
    put_uint(e, "rid", f->rid);
    put_str(e, "q", f->queue);
    if (has_wait)
        put_uint(e, "wait", f->wait_ms);
}

static void encode_eos(struct encoder *e, const struct ferry_frame *f)
{
    put_start(e, f, 3);
    put_uint(e, "sub", f->sub);
    put_str(e, "q", f->queue);
}

/* DECLARE, DELETE, PURGE, END, REOPEN, JOIN; and STATS (q absent: all
 * queues) and DECLARE_TEMP (q absent: the server names it). */
static void encode_queue_request(struct encoder *e, const struct ferry_frame *f)
{
    bool has_queue = (f->type != FERRY_F_STATS && f->type != FERRY_F_DECLARE_TEMP)
                     || f->queue.len > 0;
    put_start(e, f, 2 + has_queue);
    put_uint(e, "rid", f->rid);
    if (has_queue)
        put_str(e, "q", f->queue);
}

/* BIND, UNBIND: a queue and a pattern. */
static void encode_binding(struct encoder *e, const struct ferry_frame *f)
{
    put_start(e, f, 4);
    put_uint(e, "rid", f->rid);
    put_str(e, "q", f->queue);
    put_str(e, "pattern", f->topic);
}

/* CONNS: "before" when nonzero. */
static void encode_conns_request(struct encoder *e, const struct ferry_frame *f)
{
    bool has_before = f->before != 0;
    put_start(e, f, 2 + has_before);
    put_uint(e, "rid", f->rid);
    if (has_before)
        put_uint(e, "before", f->before);
}

static void encode_kill(struct encoder *e, const struct ferry_frame *f)
{
    put_start(e, f, 3);
    put_uint(e, "rid", f->rid);
    put_uint(e, "id", f->id);
}

/* false if f->type is not a frame type. */
static bool encode_body(struct encoder *e, const struct ferry_frame *f)
{
    switch (f->type) {
    case FERRY_F_HELLO: encode_hello(e, f); break;
    case FERRY_F_WELCOME: encode_welcome(e, f); break;
    case FERRY_F_ERROR: encode_error(e, f); break;
    case FERRY_F_PING: case FERRY_F_PONG: encode_ping(e, f); break;
    case FERRY_F_OK: encode_ok(e, f); break;
    case FERRY_F_CONNS: encode_conns_request(e, f); break;
    case FERRY_F_KILL: encode_kill(e, f); break;
    case FERRY_F_PUBLISH: encode_publish(e, f); break;
    case FERRY_F_PUBLISH_BATCH: encode_publish_batch(e, f); break;
    case FERRY_F_CONFIRM: case FERRY_F_ACK: case FERRY_F_NACK: case FERRY_F_TOUCH:
        encode_uint_list(e, f);
        break;
    case FERRY_F_PEEK: case FERRY_F_MOVE: encode_peek_move(e, f); break;
    case FERRY_F_CONSUME: encode_consume(e, f); break;
    case FERRY_F_CREDIT: encode_credit(e, f); break;
    case FERRY_F_DELIVER: encode_deliver(e, f); break;
    case FERRY_F_CANCEL: encode_cancel(e, f); break;
    case FERRY_F_GET: encode_get(e, f); break;
    case FERRY_F_EOS: encode_eos(e, f); break;
    case FERRY_F_DECLARE: case FERRY_F_DELETE: case FERRY_F_PURGE: case FERRY_F_STATS:
    case FERRY_F_END: case FERRY_F_REOPEN: case FERRY_F_JOIN: case FERRY_F_DECLARE_TEMP:
    case FERRY_F_BINDINGS:
        encode_queue_request(e, f);
        break;
    case FERRY_F_BIND: case FERRY_F_UNBIND: encode_binding(e, f); break;
    case FERRY_F_PUBLISH_TOPIC: encode_publish(e, f); break;
    default:
        return false;
    }
    return true;
}

int ferry_frame_encode(struct ferry_buf *out, const struct ferry_frame *f)
{
    size_t bound = frame_bound(f);
    if (ferry_buf_reserve(out, bound) != 0)
        return -1;
    /* Counted from the read cursor, which stays valid even if a
     * (never expected) later reserve compacts the buffer. */
    size_t start = out->len - out->off;

    struct encoder e = { .out = out, .failed = false };
    msgpack_packer_init(&e.pk, &e, packer_write);
    static const uint8_t prefix_placeholder[FERRY_FRAME_PREFIX];
    put_raw(&e, prefix_placeholder, sizeof prefix_placeholder);
    bool known = encode_body(&e, f);

    uint8_t *frame = out->data + out->off + start;
    size_t frame_len = out->len - out->off - start;
    size_t body_len = frame_len - FERRY_FRAME_PREFIX;
    if (!known || e.failed || body_len > UINT32_MAX) {
        out->len = out->off + start;
        return -1;
    }
    assert(frame_len <= bound);
    frame[0] = (uint8_t)(body_len >> 24);
    frame[1] = (uint8_t)(body_len >> 16);
    frame[2] = (uint8_t)(body_len >> 8);
    frame[3] = (uint8_t)body_len;
    return 0;
}

int ferry_headers_encode(struct ferry_buf *out, const struct ferry_kv *h, size_t n)
{
    size_t bound = HEADER_MAX;
    for (size_t i = 0; i < n; i++)
        bound += 2 * HEADER_MAX + h[i].key.len + h[i].value.len;
    if (ferry_buf_reserve(out, bound) != 0)
        return -1;
    size_t start = out->len - out->off;

    struct encoder e = { .out = out, .failed = false };
    msgpack_packer_init(&e.pk, &e, packer_write);
    msgpack_pack_map(&e.pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_str_with_body(&e.pk, h[i].key.ptr, h[i].key.len);
        /* Values are opaque bytes to ferry: bin, so nothing assumes UTF-8. */
        msgpack_pack_bin_with_body(&e.pk, h[i].value.ptr, h[i].value.len);
    }
    if (e.failed) {
        out->len = out->off + start;
        return -1;
    }
    return 0;
}
