/*
 * test_proto.c - the wire codec against docs/PROTOCOL.md: round trips of
 * every frame type, truncation, hostile and random input, every limit at
 * its boundary, framing, the byte buffer and the name tables.
 * Bodies under test sit at the very end of a heap block of their exact
 * size, so AddressSanitizer catches any read past them.
 */
#include <check.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry_proto.h"

/* ---- helpers: bodies on the heap ---------------------------------------- */

/* The copy of the body last decoded; the decoded frame points into it. */
static uint8_t *held_body;

static void release_held_body(void)
{
    free(held_body);
    held_body = NULL;
}

/* Decodes a copy of body in a heap block of exactly len bytes. The frame
 * stays valid until the next call (or the end of the test). */
static enum ferry_code decode_copy(const void *body, size_t len, struct ferry_frame *f,
                                   const char **why)
{
    release_held_body();
    held_body = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(held_body);
    if (len)
        memcpy(held_body, body, len);
    const char *ignored;
    return ferry_frame_decode(held_body, len, f, why ? why : &ignored);
}

static enum ferry_code decode_sbuf(const msgpack_sbuffer *sb, struct ferry_frame *f, const char **why)
{
    return decode_copy(sb->data, sb->size, f, why);
}

static struct ferry_bytes bytes_of(const char *s)
{
    return (struct ferry_bytes){ (const uint8_t *)s, strlen(s) };
}

static bool bytes_equal(struct ferry_bytes a, struct ferry_bytes b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ---- helpers: building bodies by hand with msgpack-c ---------------------- */

struct mp {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void mp_init(struct mp *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_destroy(struct mp *m)
{
    msgpack_sbuffer_destroy(&m->sb);
}

static void mp_str(struct mp *m, const char *s)
{
    msgpack_pack_str_with_body(&m->pk, s, strlen(s));
}

static void mp_bin(struct mp *m, const char *s)
{
    msgpack_pack_bin_with_body(&m->pk, s, strlen(s));
}

static void mp_key_uint(struct mp *m, const char *key, uint64_t v)
{
    mp_str(m, key);
    msgpack_pack_uint64(&m->pk, v);
}

static void mp_key_str(struct mp *m, const char *key, const char *v)
{
    mp_str(m, key);
    mp_str(m, v);
}

static void mp_key_bin(struct mp *m, const char *key, const char *v)
{
    mp_str(m, key);
    mp_bin(m, v);
}

/* A string of n copies of c, on the heap; the caller frees it. */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- sample frames ------------------------------------------------------- */

/* {"trace": "abc", "n": bin 01 02} */
static const uint8_t sample_headers[] = {
    0x82, 0xa5, 't', 'r', 'a', 'c', 'e', 0xa3, 'a', 'b', 'c', 0xa1, 'n', 0xc4, 0x02, 0x01, 0x02,
};
#define SAMPLE_HEADERS { sample_headers, sizeof sample_headers }

static const uint64_t sample_uints[] = { 1, 300, UINT64_MAX };
static const struct ferry_item sample_items[] = {
    { { (const uint8_t *)"first", 5 }, { NULL, 0 }, false, 0, 0 },
    { { (const uint8_t *)"second", 6 }, { sample_headers, sizeof sample_headers }, false, 0, 0 },
    { { (const uint8_t *)"", 0 }, { NULL, 0 }, false, 0, 0 },
    { { (const uint8_t *)"urgent", 6 }, { NULL, 0 }, true, 9, 0 },
    { { (const uint8_t *)"low", 3 }, { sample_headers, sizeof sample_headers }, true, 0, 60000 },
    { { (const uint8_t *)"brief", 5 }, { NULL, 0 }, false, 0, FERRY_TTL_MAX_MS },
};
static const struct ferry_queue_stats sample_queue_stats[] = {
    { { (const uint8_t *)"jobs", 4 }, 10, 2, 1, 100, 90, 88, 3, 1, 4096, false,
      { 7, 0, 0, 0, 0, 2, 0, 0, 0, 1 }, 5, 11, 3, 1000, 1048576,
      { (const uint8_t *)"drop-oldest", 11 }, 5, 0, 0, 2, 3 },
    { { (const uint8_t *)"mail.out", 8 }, 0, 0, 0, UINT64_MAX, 0, 0, 0, 0, 0, true,
      { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 7, UINT64_MAX, 0, 0, 0, { (const uint8_t *)"block", 5 },
      0, 7, UINT64_MAX, 0, UINT64_MAX },
};
static const struct ferry_server_stats sample_server_stats = { 3, 2, 123456, 12, 4096,
                                                               50, 4, 92, 2, 1024, 4960,
                                                               1073741824, 1, 77, 3 };
static const struct ferry_conn_stats sample_conn_stats[] = {
    { 7, { (const uint8_t *)"unix:pid=42,uid=1000", 20 }, { (const uint8_t *)"worker", 6 }, 65536,
      true, 1, 256, 60000, 15 },
    { 3, { (const uint8_t *)"tcp:127.0.0.1:50000", 19 }, { NULL, 0 }, 0, false, 0, 0, 0,
      UINT64_MAX },
};

/* A span initializer for a string literal. */
#define Q(s) { (const uint8_t *)(s), sizeof(s) - 1 }
static const struct ferry_bytes sample_patterns[] = { Q("orders.#"), Q("*.eu"), Q("a") };

/* Frames with every optional key present. */
static const struct ferry_frame full_samples[] = {
    { .type = FERRY_F_HELLO, .version = 1, .name = Q("ferry-cli/0.1"), .producer = UINT64_MAX - 1 },
    { .type = FERRY_F_WELCOME, .version = 1, .name = Q("ferryd 0.1.0"), .max_frame = 16777216,
      .heartbeat_ms = 30000 },
    { .type = FERRY_F_ERROR, .code = FERRY_CODE_QUEUE_FULL, .text = Q("queue is full"), .fatal = false,
      .rid = 9, .id = 77, .has_id = true },
    { .type = FERRY_F_PING, .rid = 5 },
    { .type = FERRY_F_PONG, .rid = 5 },
    { .type = FERRY_F_OK, .rid = 4, .count = 12 },
    { .type = FERRY_F_OK, .rid = 4, .empty = true },
    { .type = FERRY_F_OK, .rid = 8, .server_stats = &sample_server_stats, .stats = sample_queue_stats,
      .stats_count = 2 },
    { .type = FERRY_F_PUBLISH, .queue = Q("jobs"), .payload = Q("hello"), .headers = SAMPLE_HEADERS,
      .id = 1, .has_id = true, .has_priority = true, .priority = 9, .ttl_ms = 30000 },
    { .type = FERRY_F_PUBLISH, .queue = Q("jobs"), .payload = Q("later"), .delay_ms = 5000,
      .deliver_at = 1767225600000 },
    { .type = FERRY_F_PUBLISH_BATCH, .queue = Q("jobs"), .items = sample_items, .item_count = 6,
      .id = 2, .has_id = true },
    { .type = FERRY_F_CONFIRM, .uints = sample_uints, .uint_count = 3 },
    { .type = FERRY_F_CONSUME, .rid = 3, .queue = Q("jobs"), .sub = 1, .credit = 100,
      .deadline_ms = 30000 },
    { .type = FERRY_F_CREDIT, .sub = 1, .credit = 50 },
    { .type = FERRY_F_DELIVER, .sub = 1, .tag = 42, .attempt = 2, .headers = SAMPLE_HEADERS,
      .payload = Q("hello") },
    { .type = FERRY_F_DELIVER, .rid = 6, .tag = 43, .attempt = 1, .payload = Q("from a GET") },
    { .type = FERRY_F_ACK, .uints = sample_uints, .uint_count = 3 },
    { .type = FERRY_F_NACK, .uints = sample_uints, .uint_count = 2, .requeue = false },
    { .type = FERRY_F_NACK, .uints = sample_uints, .uint_count = 1, .requeue = true, .delay_ms = 500 },
    { .type = FERRY_F_TOUCH, .uints = sample_uints, .uint_count = 3, .deadline_ms = 30000 },
    { .type = FERRY_F_PEEK, .rid = 21, .queue = Q("jobs.dead"), .count = 50 },
    { .type = FERRY_F_MOVE, .rid = 22, .queue = Q("jobs.dead"), .to = Q("jobs"), .count = 7 },
    { .type = FERRY_F_OK, .rid = 21, .items = sample_items, .item_count = 2 },
    { .type = FERRY_F_CANCEL, .rid = 7, .sub = 1 },
    { .type = FERRY_F_GET, .rid = 8, .queue = Q("jobs"), .wait_ms = 1000 },
    { .type = FERRY_F_EOS, .sub = 1, .queue = Q("jobs") },
    { .type = FERRY_F_DECLARE, .rid = 10, .queue = Q("jobs") },
    { .type = FERRY_F_DELETE, .rid = 11, .queue = Q("jobs") },
    { .type = FERRY_F_PURGE, .rid = 12, .queue = Q("jobs") },
    { .type = FERRY_F_STATS, .rid = 13, .queue = Q("jobs") },
    { .type = FERRY_F_END, .rid = 14, .queue = Q("jobs") },
    { .type = FERRY_F_REOPEN, .rid = 15, .queue = Q("jobs") },
    { .type = FERRY_F_JOIN, .rid = 16, .queue = Q("jobs") },
    { .type = FERRY_F_BIND, .rid = 17, .queue = Q("jobs"), .topic = Q("orders.*.#") },
    { .type = FERRY_F_UNBIND, .rid = 18, .queue = Q("jobs"), .topic = Q("orders.*.#") },
    { .type = FERRY_F_PUBLISH_TOPIC, .topic = Q("orders.eu"), .headers = SAMPLE_HEADERS, .id = 19,
      .has_id = true, .payload = Q("hi") },
    { .type = FERRY_F_DECLARE_TEMP, .rid = 20, .queue = Q("mine") },
    { .type = FERRY_F_BINDINGS, .rid = 22, .queue = Q("audit") },
    { .type = FERRY_F_OK, .rid = 22, .has_patterns = true, .patterns = sample_patterns,
      .pattern_count = 3 },
    { .type = FERRY_F_OK, .rid = 20, .queue = Q("tmp.1") },
    { .type = FERRY_F_CONNS, .rid = 21, .before = 100 },
    { .type = FERRY_F_OK, .rid = 21, .has_conns = true, .conns = sample_conn_stats, .conn_count = 2,
      .next = 3 },
    { .type = FERRY_F_KILL, .rid = 22, .id = 7, .has_id = true },
};
#define FULL_SAMPLES (sizeof full_samples / sizeof full_samples[0])

/* The same types with every optional key absent. */
static const struct ferry_frame bare_samples[] = {
    { .type = FERRY_F_HELLO, .version = 1 },
    { .type = FERRY_F_WELCOME, .version = 1, .name = Q(""), .max_frame = 4096 },
    { .type = FERRY_F_ERROR, .code = FERRY_CODE_BAD_FRAME, .text = Q(""), .fatal = true },
    { .type = FERRY_F_PING },
    { .type = FERRY_F_PONG },
    { .type = FERRY_F_OK, .rid = 1 },
    { .type = FERRY_F_OK, .rid = 2, .server_stats = &sample_server_stats },
    { .type = FERRY_F_PUBLISH, .queue = Q("jobs"), .payload = Q("") },
    { .type = FERRY_F_PUBLISH_BATCH, .queue = Q("jobs"), .items = sample_items, .item_count = 1 },
    { .type = FERRY_F_CONFIRM, .uints = sample_uints, .uint_count = 1 },
    { .type = FERRY_F_CONSUME, .rid = 1, .queue = Q("q"), .sub = 1, .credit = 1 },
    { .type = FERRY_F_CREDIT, .sub = 1, .credit = 1 },
    { .type = FERRY_F_DELIVER, .tag = 1, .attempt = 1, .payload = Q("x") },
    { .type = FERRY_F_ACK, .uints = sample_uints, .uint_count = 1 },
    { .type = FERRY_F_NACK, .uints = sample_uints, .uint_count = 1, .requeue = true },
    { .type = FERRY_F_TOUCH, .uints = sample_uints, .uint_count = 1 },
    { .type = FERRY_F_PEEK, .rid = 1, .queue = Q("a") },
    { .type = FERRY_F_MOVE, .rid = 1, .queue = Q("a") },
    { .type = FERRY_F_CANCEL, .rid = 1, .sub = 1 },
    { .type = FERRY_F_GET, .rid = 1, .queue = Q("jobs") },
    { .type = FERRY_F_EOS, .sub = 1, .queue = Q("jobs") },
    { .type = FERRY_F_DECLARE, .rid = 1, .queue = Q("a") },
    { .type = FERRY_F_DELETE, .rid = 1, .queue = Q("a") },
    { .type = FERRY_F_PURGE, .rid = 1, .queue = Q("a") },
    { .type = FERRY_F_STATS, .rid = 1 },
    { .type = FERRY_F_END, .rid = 1, .queue = Q("a") },
    { .type = FERRY_F_REOPEN, .rid = 1, .queue = Q("a") },
    { .type = FERRY_F_JOIN, .rid = 1, .queue = Q("a") },
    { .type = FERRY_F_BIND, .rid = 1, .queue = Q("a"), .topic = Q("#") },
    { .type = FERRY_F_UNBIND, .rid = 1, .queue = Q("a"), .topic = Q("#") },
    { .type = FERRY_F_PUBLISH_TOPIC, .topic = Q("a"), .payload = Q("") },
    { .type = FERRY_F_DECLARE_TEMP, .rid = 1 },
    { .type = FERRY_F_BINDINGS, .rid = 1, .queue = Q("a") },
    { .type = FERRY_F_OK, .rid = 1, .has_patterns = true },
    { .type = FERRY_F_CONNS, .rid = 1 },
    { .type = FERRY_F_OK, .rid = 1, .has_conns = true },
    { .type = FERRY_F_KILL, .rid = 1, .id = 1, .has_id = true },
};
#define BARE_SAMPLES (sizeof bare_samples / sizeof bare_samples[0])

/* ---- helpers: encode, check, compare ------------------------------------- */

/* msgpack-c itself must read the body as exactly one map whose first key is "t". */
static void assert_msgpack_c_accepts(const uint8_t *body, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return ret = msgpack_unpack_next(&u, (const char *)body, len, &off);
    ck_assert_int_eq(ret, MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, len);
    ck_assert_int_eq(u.data.type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_ge(u.data.via.map.size, 1);
    msgpack_object key = u.data.via.map.ptr[0].key;
    ck_assert_int_eq(key.type, MSGPACK_OBJECT_STR);
    ck_assert_uint_eq(key.via.str.size, 1);
    ck_assert_int_eq(key.via.str.ptr[0], 't');
    msgpack_unpacked_destroy(&u);
}

/* Encodes f into *out (emptied first); returns the body, checked to be a
 * single whole frame that msgpack-c accepts. */
static struct ferry_bytes encode_checked(struct ferry_buf *out, const struct ferry_frame *f)
{
    ferry_buf_consume(out, ferry_buf_pending(out));
    ck_assert_int_eq(ferry_frame_encode(out, f), 0);
    struct ferry_bytes body;
    size_t consumed = 0;
    ck_assert_int_eq(ferry_frame_split(out->data + out->off, ferry_buf_pending(out),
                                       FERRY_FRAME_MAX_CEILING, &body, &consumed),
                     FERRY_SPLIT_FRAME);
    ck_assert_uint_eq(consumed, ferry_buf_pending(out));
    assert_msgpack_c_accepts(body.ptr, body.len);
    return body;
}

static void assert_uint_list_equal(const struct ferry_frame *want, const struct ferry_frame *got)
{
    ck_assert_uint_eq(got->list_count, want->uint_count);
    struct ferry_iter it;
    ferry_iter_init(&it, got);
    uint64_t v;
    /* Up to 65536 entries: assert only on failure (each ck_assert costs a
     * write to Check's log). */
    for (size_t i = 0; i < want->uint_count; i++) {
        if (!ferry_iter_uint(&it, &v) || v != want->uints[i])
            ck_abort_msg("entry %zu of %zu differs", i, want->uint_count);
    }
    ck_assert(!ferry_iter_uint(&it, &v));
}

static void assert_items_equal(const struct ferry_frame *want, const struct ferry_frame *got)
{
    ck_assert_uint_eq(got->list_count, want->item_count);
    struct ferry_iter it;
    ferry_iter_init(&it, got);
    struct ferry_item item;
    for (size_t i = 0; i < want->item_count; i++) {
        ck_assert(ferry_iter_item(&it, &item));
        ck_assert(bytes_equal(item.payload, want->items[i].payload));
        ck_assert(bytes_equal(item.headers, want->items[i].headers));
        ck_assert_int_eq(item.has_priority, want->items[i].has_priority);
        ck_assert_uint_eq(item.priority, want->items[i].priority);
        ck_assert_uint_eq(item.ttl_ms, want->items[i].ttl_ms);
    }
    ck_assert(!ferry_iter_item(&it, &item));
}

static void assert_stats_equal(const struct ferry_frame *want, const struct ferry_frame *got)
{
    ck_assert_int_eq(got->has_server_stats, want->server_stats != NULL);
    if (want->server_stats)
        ck_assert(memcmp(&got->server, want->server_stats, sizeof got->server) == 0);
    ck_assert_uint_eq(got->list_count, want->stats_count);
    struct ferry_iter it;
    ferry_iter_init(&it, got);
    struct ferry_queue_stats qs;
    for (size_t i = 0; i < want->stats_count; i++) {
        const struct ferry_queue_stats *w = &want->stats[i];
        ck_assert(ferry_iter_stats(&it, &qs));
        ck_assert(bytes_equal(qs.name, w->name));
        ck_assert_uint_eq(qs.depth, w->depth);
        ck_assert_uint_eq(qs.inflight, w->inflight);
        ck_assert_uint_eq(qs.consumers, w->consumers);
        ck_assert_uint_eq(qs.published, w->published);
        ck_assert_uint_eq(qs.delivered, w->delivered);
        ck_assert_uint_eq(qs.acked, w->acked);
        ck_assert_uint_eq(qs.redelivered, w->redelivered);
        ck_assert_uint_eq(qs.dropped, w->dropped);
        ck_assert_uint_eq(qs.bytes, w->bytes);
        ck_assert_uint_eq(qs.delayed, w->delayed);
        ck_assert_uint_eq(qs.dead_lettered, w->dead_lettered);
        ck_assert_uint_eq(qs.timeouts, w->timeouts);
        ck_assert_int_eq(qs.ended, w->ended);
        for (unsigned p = 0; p < FERRY_PRIORITY_LEVELS; p++)
            ck_assert_uint_eq(qs.depth_by_priority[p], w->depth_by_priority[p]);
        ck_assert_uint_eq(qs.expired, w->expired);
        ck_assert_uint_eq(qs.bindings, w->bindings);
        ck_assert_uint_eq(qs.max_length, w->max_length);
        ck_assert_uint_eq(qs.max_bytes, w->max_bytes);
        ck_assert(bytes_equal(qs.overflow, w->overflow));
        ck_assert_uint_eq(qs.dropped_oldest, w->dropped_oldest);
        ck_assert_uint_eq(qs.rejected, w->rejected);
        ck_assert_uint_eq(qs.blocked, w->blocked);
    }
    ck_assert(!ferry_iter_stats(&it, &qs));

    ck_assert_int_eq(got->has_patterns, want->has_patterns);
    ck_assert_uint_eq(got->pattern_list_count, want->pattern_count);
    ferry_iter_patterns_init(&it, got);
    struct ferry_bytes pattern;
    for (size_t i = 0; i < want->pattern_count; i++) {
        ck_assert(ferry_iter_str(&it, &pattern));
        ck_assert(bytes_equal(pattern, want->patterns[i]));
    }
    ck_assert(!ferry_iter_str(&it, &pattern));

    ck_assert_int_eq(got->has_conns, want->has_conns);
    ck_assert_uint_eq(got->conn_list_count, want->conn_count);
    ck_assert_uint_eq(got->next, want->next);
    ferry_iter_conns_init(&it, got);
    struct ferry_conn_stats cs;
    for (size_t i = 0; i < want->conn_count; i++) {
        const struct ferry_conn_stats *w = &want->conns[i];
        ck_assert(ferry_iter_conn(&it, &cs));
        ck_assert(bytes_equal(cs.peer, w->peer));
        ck_assert(bytes_equal(cs.name, w->name));
        ck_assert_uint_eq(cs.id, w->id);
        ck_assert_uint_eq(cs.out, w->out);
        ck_assert_int_eq(cs.throttled, w->throttled);
        ck_assert_uint_eq(cs.subs, w->subs);
        ck_assert_uint_eq(cs.inflight, w->inflight);
        ck_assert_uint_eq(cs.age_ms, w->age_ms);
        ck_assert_uint_eq(cs.idle_ms, w->idle_ms);
    }
    ck_assert(!ferry_iter_conn(&it, &cs));
}

/* Every field a decoder fills must come back as it was encoded. */
static void assert_decoded_equals(const struct ferry_frame *want, const struct ferry_frame *got)
{
    ck_assert_int_eq(got->type, want->type);
    ck_assert_uint_eq(got->rid, want->rid);
    ck_assert_uint_eq(got->id, want->id);
    ck_assert_int_eq(got->has_id, want->has_id);
    ck_assert_uint_eq(got->sub, want->sub);
    ck_assert_uint_eq(got->tag, want->tag);
    ck_assert_uint_eq(got->attempt, want->attempt);
    ck_assert_uint_eq(got->credit, want->credit);
    ck_assert_uint_eq(got->wait_ms, want->wait_ms);
    ck_assert_uint_eq(got->version, want->version);
    ck_assert_uint_eq(got->max_frame, want->max_frame);
    ck_assert_uint_eq(got->heartbeat_ms, want->heartbeat_ms);
    ck_assert_uint_eq(got->delay_ms, want->delay_ms);
    ck_assert_uint_eq(got->deliver_at, want->deliver_at);
    ck_assert_uint_eq(got->deadline_ms, want->deadline_ms);
    ck_assert(bytes_equal(got->to, want->to));
    ck_assert_uint_eq(got->count, want->count);
    ck_assert_uint_eq(got->before, want->before);
    ck_assert_uint_eq(got->producer, want->producer);
    ck_assert_uint_eq(got->code, want->code);
    ck_assert_int_eq(got->fatal, want->fatal);
    ck_assert_int_eq(got->requeue, want->requeue);
    ck_assert_int_eq(got->empty, want->empty);
    ck_assert_int_eq(got->has_priority, want->has_priority);
    ck_assert_uint_eq(got->priority, want->priority);
    ck_assert_uint_eq(got->ttl_ms, want->ttl_ms);
    ck_assert(bytes_equal(got->queue, want->queue));
    ck_assert(bytes_equal(got->topic, want->topic));
    ck_assert(bytes_equal(got->name, want->name));
    ck_assert(bytes_equal(got->text, want->text));
    ck_assert(bytes_equal(got->payload, want->payload));
    ck_assert(bytes_equal(got->headers, want->headers));

    switch (want->type) {
    case FERRY_F_CONFIRM: case FERRY_F_ACK: case FERRY_F_NACK: case FERRY_F_TOUCH:
        assert_uint_list_equal(want, got);
        break;
    case FERRY_F_PUBLISH_BATCH:
        assert_items_equal(want, got);
        break;
    case FERRY_F_OK:
        if (want->item_count > 0)
            assert_items_equal(want, got); /* the answer to PEEK */
        else
            assert_stats_equal(want, got);
        break;
    default:
        ck_assert_uint_eq(got->list_count, 0);
        ck_assert_int_eq(got->has_server_stats, false);
        ck_assert_int_eq(got->has_conns, false);
        break;
    }
}

static void assert_round_trips(const struct ferry_frame *samples, size_t n)
{
    struct ferry_buf out = { 0 };
    for (size_t i = 0; i < n; i++) {
        struct ferry_bytes body = encode_checked(&out, &samples[i]);
        struct ferry_frame got;
        const char *why = NULL;
        enum ferry_code code = decode_copy(body.ptr, body.len, &got, &why);
        ck_assert_msg(code == FERRY_CODE_OK, "%s: %s", ferry_frame_type_name(samples[i].type), why);
        assert_decoded_equals(&samples[i], &got);
    }
    ferry_buf_free(&out);
}

/* ---- round trips ---------------------------------------------------------- */

START_TEST(test_every_frame_type_round_trips_with_all_optional_keys)
{
    assert_round_trips(full_samples, FULL_SAMPLES);
}
END_TEST

START_TEST(test_every_frame_type_round_trips_without_optional_keys)
{
    assert_round_trips(bare_samples, BARE_SAMPLES);
}
END_TEST

START_TEST(test_samples_cover_every_frame_type)
{
    for (uint32_t t = 0; t < 64; t++) {
        if (!ferry_frame_type_name(t))
            continue;
        bool in_full = false, in_bare = false;
        for (size_t i = 0; i < FULL_SAMPLES; i++)
            in_full |= full_samples[i].type == (enum ferry_frame_type)t;
        for (size_t i = 0; i < BARE_SAMPLES; i++)
            in_bare |= bare_samples[i].type == (enum ferry_frame_type)t;
        ck_assert_msg(in_full && in_bare, "no sample of %s", ferry_frame_type_name(t));
    }
}
END_TEST

START_TEST(test_nack_without_requeue_key_defaults_to_requeue)
{
    struct mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    mp_key_uint(&m, "t", FERRY_F_NACK);
    mp_str(&m, "tags");
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_uint64(&m.pk, 5);
    struct ferry_frame f;
    ck_assert_int_eq(decode_sbuf(&m.sb, &f, NULL), FERRY_CODE_OK);
    ck_assert(f.requeue);
    mp_destroy(&m);
}
END_TEST

START_TEST(test_payload_is_the_last_thing_in_publish_and_deliver)
{
    static const struct ferry_frame *frames[] = { &full_samples[8], &full_samples[14] };
    struct ferry_buf out = { 0 };
    for (size_t i = 0; i < 2; i++) {
        ck_assert(frames[i]->type == FERRY_F_PUBLISH || frames[i]->type == FERRY_F_DELIVER);
        struct ferry_bytes body = encode_checked(&out, frames[i]);
        struct ferry_bytes p = frames[i]->payload;
        ck_assert_uint_ge(body.len, p.len);
        ck_assert(memcmp(body.ptr + body.len - p.len, p.ptr, p.len) == 0);
    }
    ferry_buf_free(&out);
}
END_TEST

START_TEST(test_frames_encoded_back_to_back_split_one_by_one)
{
    struct ferry_buf out = { 0 };
    ck_assert_int_eq(ferry_buf_append(&out, "xx", 2), 0);
    ferry_buf_consume(&out, 1); /* a pending byte and a consumed head */
    for (size_t i = 0; i < FULL_SAMPLES; i++)
        ck_assert_int_eq(ferry_frame_encode(&out, &full_samples[i]), 0);
    ferry_buf_consume(&out, 1);

    for (size_t i = 0; i < FULL_SAMPLES; i++) {
        struct ferry_bytes body;
        size_t consumed;
        ck_assert_int_eq(ferry_frame_split(out.data + out.off, ferry_buf_pending(&out),
                                           FERRY_FRAME_MAX_DEFAULT, &body, &consumed),
                         FERRY_SPLIT_FRAME);
        struct ferry_frame got;
        ck_assert_int_eq(ferry_frame_decode(body.ptr, body.len, &got, NULL), FERRY_CODE_OK);
        assert_decoded_equals(&full_samples[i], &got);
        ferry_buf_consume(&out, consumed);
    }
    ck_assert_uint_eq(ferry_buf_pending(&out), 0);
    ferry_buf_free(&out);
}
END_TEST

START_TEST(test_encoding_an_unknown_type_fails_and_appends_nothing)
{
    struct ferry_buf out = { 0 };
    ck_assert_int_eq(ferry_buf_append(&out, "abc", 3), 0);
    struct ferry_frame f = { .type = (enum ferry_frame_type)7 };
    ck_assert_int_eq(ferry_frame_encode(&out, &f), -1);
    ck_assert_uint_eq(ferry_buf_pending(&out), 3);
    ferry_buf_free(&out);
}
END_TEST

START_TEST(test_headers_encode_then_iterate_in_order)
{
    struct ferry_kv in[3] = {
        { bytes_of("trace-id"), bytes_of("abc123") },
        { bytes_of("x"), { (const uint8_t *)"\0\1\2", 3 } },
        { bytes_of("empty"), { NULL, 0 } },
    };
    struct ferry_buf out = { 0 };
    ck_assert_int_eq(ferry_headers_encode(&out, in, 3), 0);
    struct ferry_bytes raw = { out.data + out.off, ferry_buf_pending(&out) };

    /* They travel in a PUBLISH and come back intact. */
    struct ferry_frame pub = { .type = FERRY_F_PUBLISH, .queue = Q("q"), .payload = Q("p"), .headers = raw };
    struct ferry_buf frame = { 0 };
    struct ferry_bytes body = encode_checked(&frame, &pub);
    struct ferry_frame got;
    ck_assert_int_eq(decode_copy(body.ptr, body.len, &got, NULL), FERRY_CODE_OK);
    ck_assert(bytes_equal(got.headers, raw));

    struct ferry_iter it;
    ferry_headers_iter_init(&it, got.headers);
    struct ferry_kv kv;
    for (size_t i = 0; i < 3; i++) {
        ck_assert(ferry_headers_next(&it, &kv));
        ck_assert(bytes_equal(kv.key, in[i].key));
        ck_assert(bytes_equal(kv.value, in[i].value));
    }
    ck_assert(!ferry_headers_next(&it, &kv));

    ferry_headers_iter_init(&it, (struct ferry_bytes){ NULL, 0 });
    ck_assert(!ferry_headers_next(&it, &kv));
    ferry_buf_free(&out);
    ferry_buf_free(&frame);
}
END_TEST

/* ---- truncation ------------------------------------------------------------ */

START_TEST(test_every_proper_prefix_of_a_frame_is_incomplete)
{
    struct ferry_buf out = { 0 };
    for (size_t i = 0; i < FULL_SAMPLES + BARE_SAMPLES; i++) {
        const struct ferry_frame *f = i < FULL_SAMPLES ? &full_samples[i] : &bare_samples[i - FULL_SAMPLES];
        encode_checked(&out, f);
        size_t whole = ferry_buf_pending(&out);
        for (size_t len = 0; len < whole; len++) {
            uint8_t *copy = malloc(len ? len : 1);
            ck_assert_ptr_nonnull(copy);
            memcpy(copy, out.data + out.off, len);
            struct ferry_bytes body;
            size_t consumed;
            ck_assert_int_eq(ferry_frame_split(copy, len, FERRY_FRAME_MAX_DEFAULT, &body, &consumed),
                             FERRY_SPLIT_INCOMPLETE);
            free(copy);
        }
    }
    ferry_buf_free(&out);
}
END_TEST

START_TEST(test_every_proper_prefix_of_a_body_is_bad_frame)
{
    struct ferry_buf out = { 0 };
    for (size_t i = 0; i < FULL_SAMPLES + BARE_SAMPLES; i++) {
        const struct ferry_frame *f = i < FULL_SAMPLES ? &full_samples[i] : &bare_samples[i - FULL_SAMPLES];
        struct ferry_bytes body = encode_checked(&out, f);
        for (size_t len = 0; len < body.len; len++) {
            struct ferry_frame got;
            const char *why = NULL;
            ck_assert_msg(decode_copy(body.ptr, len, &got, &why) == FERRY_CODE_BAD_FRAME,
                          "%s cut at %zu", ferry_frame_type_name(f->type), len);
            ck_assert_ptr_nonnull(why);
        }
    }
    ferry_buf_free(&out);
}
END_TEST

/* ---- random input ---------------------------------------------------------- */

/* xorshift64*: fixed seeds make failures reproducible. */
static uint64_t prng_state;

static uint64_t prng(void)
{
    prng_state ^= prng_state >> 12;
    prng_state ^= prng_state << 25;
    prng_state ^= prng_state >> 27;
    return prng_state * 0x2545F4914F6CDD1DULL;
}

/* Iterates a raw header map to its end; false if it yields fewer pairs
 * than its map header announced. */
static bool headers_iterate_fully(struct ferry_bytes headers)
{
    struct ferry_iter it;
    struct ferry_kv kv;
    ferry_headers_iter_init(&it, headers);
    uint32_t announced = it.left, seen = 0;
    while (ferry_headers_next(&it, &kv))
        seen++;
    return seen == announced;
}

/* Everything a successful decode promises: iterators yield exactly
 * list_count entries and headers iterate to their end. Called in the
 * random loops, so it asserts only on failure (each ck_assert costs a
 * write to Check's log). */
static void assert_decoded_frame_is_usable(const struct ferry_frame *f)
{
    struct ferry_iter it;
    ferry_iter_init(&it, f);
    uint32_t n = 0;
    if (f->type == FERRY_F_CONFIRM || f->type == FERRY_F_ACK || f->type == FERRY_F_NACK ||
        f->type == FERRY_F_TOUCH) {
        uint64_t v;
        while (ferry_iter_uint(&it, &v))
            n++;
    } else if (f->type == FERRY_F_PUBLISH_BATCH || f->list_is_items) {
        struct ferry_item item;
        while (ferry_iter_item(&it, &item)) {
            if (!headers_iterate_fully(item.headers))
                ck_abort_msg("item headers of a decoded batch stop early");
            n++;
        }
    } else if (f->type == FERRY_F_OK) {
        struct ferry_queue_stats qs;
        while (ferry_iter_stats(&it, &qs))
            n++;
    }
    if (n != f->list_count)
        ck_abort_msg("%s: list_count %u, iterated %u", ferry_frame_type_name(f->type), f->list_count, n);
    if (!headers_iterate_fully(f->headers))
        ck_abort_msg("headers of a decoded frame stop early");
}

/* Decodes len bytes placed at the very end of block (block_size bytes). */
static enum ferry_code decode_at_tail(uint8_t *block, size_t block_size, const uint8_t *body,
                                      size_t len, struct ferry_frame *f)
{
    uint8_t *at = block + block_size - len;
    memmove(at, body, len);
    const char *why = NULL;
    enum ferry_code code = ferry_frame_decode(at, len, f, &why);
    if (code == FERRY_CODE_OK)
        assert_decoded_frame_is_usable(f);
    else if (code != FERRY_CODE_BAD_FRAME && code != FERRY_CODE_UNKNOWN_FRAME)
        ck_abort_msg("decode returned %d", code);
    else if (!why)
        ck_abort_msg("no reason given for %s", ferry_code_name(code));
    return code;
}

START_TEST(test_random_bodies_never_crash_the_decoder)
{
    enum { BODIES = 200000, MAX_LEN = 64 };
    uint8_t *block = malloc(MAX_LEN);
    ck_assert_ptr_nonnull(block);
    uint8_t body[MAX_LEN];
    prng_state = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < BODIES; i++) {
        size_t len = prng() % (MAX_LEN + 1);
        for (size_t j = 0; j < len; j++)
            body[j] = (uint8_t)prng();
        /* Half of them get past the first checks: a map starting with "t". */
        if (i % 2 && len >= 4) {
            body[0] = (uint8_t)(0x81 + prng() % 15);
            body[1] = 0xa1;
            body[2] = 't';
            body[3] = (uint8_t)(prng() % 40);
        }
        struct ferry_frame f;
        decode_at_tail(block, MAX_LEN, body, len, &f);
    }
    free(block);
}
END_TEST

START_TEST(test_random_mutations_of_valid_frames_never_crash_the_decoder)
{
    enum { MUTANTS = 200000, MAX_LEN = 2048 };
    static const uint8_t interesting[] = { 0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
                                           0xc4, 0xc6, 0xcf, 0xd3, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf,
                                           0xff };
    struct ferry_buf out = { 0 };
    uint8_t *bodies[FULL_SAMPLES];
    size_t lens[FULL_SAMPLES];
    for (size_t i = 0; i < FULL_SAMPLES; i++) {
        struct ferry_bytes b = encode_checked(&out, &full_samples[i]);
        ck_assert_uint_le(b.len, MAX_LEN / 2);
        bodies[i] = malloc(b.len);
        ck_assert_ptr_nonnull(bodies[i]);
        memcpy(bodies[i], b.ptr, b.len);
        lens[i] = b.len;
    }
    uint8_t *block = malloc(MAX_LEN);
    ck_assert_ptr_nonnull(block);
    uint8_t m[MAX_LEN];
    prng_state = 0xD1B54A32D192ED03ULL;
    size_t accepted = 0;

    for (int i = 0; i < MUTANTS; i++) {
        size_t k = prng() % FULL_SAMPLES;
        size_t len = lens[k];
        memcpy(m, bodies[k], len);
        int edits = 1 + (int)(prng() % 4);
        for (int e = 0; e < edits && len > 0; e++) {
            size_t at = prng() % len;
            switch (prng() % 5) {
            case 0: m[at] = (uint8_t)prng(); break;
            case 1: m[at] = interesting[prng() % sizeof interesting]; break;
            case 2: m[at] ^= (uint8_t)(1u << (prng() % 8)); break;
            case 3: len = at; break; /* truncate */
            default:                 /* insert a byte */
                if (len < MAX_LEN / 2) {
                    memmove(m + at + 1, m + at, len - at);
                    m[at] = interesting[prng() % sizeof interesting];
                    len++;
                }
                break;
            }
        }
        struct ferry_frame f;
        accepted += decode_at_tail(block, MAX_LEN, m, len, &f) == FERRY_CODE_OK;
    }
    /* Some mutants stay valid (a changed payload byte): the check above ran on them. */
    ck_assert_uint_gt(accepted, 0);
    for (size_t i = 0; i < FULL_SAMPLES; i++)
        free(bodies[i]);
    free(block);
    ferry_buf_free(&out);
}
END_TEST

/* ---- hostile shapes ---------------------------------------------------------- */

static enum ferry_code decode_bytes(const uint8_t *p, size_t n, const char **why)
{
    struct ferry_frame f;
    return decode_copy(p, n, &f, why);
}

START_TEST(test_container_headers_claiming_more_entries_than_bytes_fail_at_once)
{
    /* map32 of 4 billion pairs in a 10-byte body */
    static const uint8_t map32[] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 't', 0x04, 0xc0, 0xc0 };
    ck_assert_int_eq(decode_bytes(map32, sizeof map32, NULL), FERRY_CODE_BAD_FRAME);

    /* an ACK whose tags array32 claims 4 billion entries */
    static const uint8_t tags32[] = { 0x82, 0xa1, 't', 23, 0xa4, 't', 'a', 'g', 's',
                                      0xdd, 0xff, 0xff, 0xff, 0xff, 0x01 };
    ck_assert_int_eq(decode_bytes(tags32, sizeof tags32, NULL), FERRY_CODE_BAD_FRAME);

    /* an unknown key whose value is an array32 / map32 claiming 4 billion entries */
    static const uint8_t unknown_array32[] = { 0x82, 0xa1, 't', 4, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01 };
    ck_assert_int_eq(decode_bytes(unknown_array32, sizeof unknown_array32, NULL), FERRY_CODE_BAD_FRAME);
    static const uint8_t unknown_map32[] = { 0x82, 0xa1, 't', 4, 0xa1, 'x', 0xdf, 0x80, 0x00, 0x00, 0x00, 0x01 };
    ck_assert_int_eq(decode_bytes(unknown_map32, sizeof unknown_map32, NULL), FERRY_CODE_BAD_FRAME);

    /* str32 and bin32 lengths past the end */
    static const uint8_t str32[] = { 0x82, 0xa1, 't', 30, 0xa1, 'q', 0xdb, 0x7f, 0xff, 0xff, 0xff, 'a' };
    ck_assert_int_eq(decode_bytes(str32, sizeof str32, NULL), FERRY_CODE_BAD_FRAME);
    static const uint8_t bin32[] = { 0x83, 0xa1, 't', 10, 0xa1, 'q', 0xa1, 'a', 0xa1, 'p', 0xc6, 0xff, 0xff, 0xff, 0xff };
    ck_assert_int_eq(decode_bytes(bin32, sizeof bin32, NULL), FERRY_CODE_BAD_FRAME);

    /* a map16 count one above what the bytes can hold */
    static const uint8_t map16[] = { 0xde, 0x00, 0x03, 0xa1, 't', 4, 0xa1, 'x' };
    ck_assert_int_eq(decode_bytes(map16, sizeof map16, NULL), FERRY_CODE_BAD_FRAME);
}
END_TEST

/* PING with one unknown key "x" whose value is `depth` nested arrays around 0. */
static enum ferry_code decode_ping_with_nesting(int depth)
{
    struct mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    mp_key_uint(&m, "t", FERRY_F_PING);
    mp_str(&m, "x");
    for (int i = 0; i < depth; i++)
        msgpack_pack_array(&m.pk, 1);
    msgpack_pack_uint64(&m.pk, 0);
    struct ferry_frame f;
    enum ferry_code code = decode_sbuf(&m.sb, &f, NULL);
    mp_destroy(&m);
    return code;
}

START_TEST(test_unknown_key_nested_8_deep_is_skipped_and_9_deep_refused)
{
    ck_assert_int_eq(decode_ping_with_nesting(0), FERRY_CODE_OK);
    ck_assert_int_eq(decode_ping_with_nesting(8), FERRY_CODE_OK);
    ck_assert_int_eq(decode_ping_with_nesting(9), FERRY_CODE_BAD_FRAME);
    ck_assert_int_eq(decode_ping_with_nesting(10000), FERRY_CODE_BAD_FRAME);
}
END_TEST

START_TEST(test_unknown_keys_of_every_type_are_skipped)
{
    struct mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 13);
    mp_key_uint(&m, "t", FERRY_F_DECLARE);
    mp_str(&m, "nil"); msgpack_pack_nil(&m.pk);
    mp_str(&m, "neg"); msgpack_pack_int64(&m.pk, -5000000000LL);
    mp_str(&m, "f32"); msgpack_pack_float(&m.pk, 1.5f);
    mp_str(&m, "f64"); msgpack_pack_double(&m.pk, 2.5);
    mp_str(&m, "bin"); mp_bin(&m, "zz");
    mp_str(&m, "ext"); msgpack_pack_ext_with_body(&m.pk, "abcdefgh", 8, 1);
    mp_str(&m, "ext3"); msgpack_pack_ext_with_body(&m.pk, "abc", 3, 2);
    mp_str(&m, "map"); msgpack_pack_map(&m.pk, 1); msgpack_pack_int(&m.pk, 1); mp_str(&m, "v");
    mp_str(&m, "arr"); msgpack_pack_array(&m.pk, 2); msgpack_pack_true(&m.pk); msgpack_pack_nil(&m.pk);
    mp_str(&m, "rid_"); mp_str(&m, "not ours");
    mp_key_uint(&m, "rid", 3);
    mp_key_str(&m, "q", "jobs");
    struct ferry_frame f;
    const char *why = NULL;
    ck_assert_msg(decode_sbuf(&m.sb, &f, &why) == FERRY_CODE_OK, "%s", why);
    ck_assert_uint_eq(f.rid, 3);
    ck_assert(bytes_equal(f.queue, bytes_of("jobs")));
    mp_destroy(&m);
}
END_TEST

START_TEST(test_keys_of_other_frame_types_are_ignored)
{
    struct mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 4);
    mp_key_uint(&m, "t", FERRY_F_PING);
    mp_key_str(&m, "q", "jobs");      /* PING has no q */
    mp_str(&m, "tags"); mp_str(&m, "nonsense");
    mp_key_uint(&m, "rid", 2);
    struct ferry_frame f;
    ck_assert_int_eq(decode_sbuf(&m.sb, &f, NULL), FERRY_CODE_OK);
    ck_assert_uint_eq(f.queue.len, 0);
    ck_assert_uint_eq(f.list_count, 0);
    ck_assert_uint_eq(f.rid, 2);
    mp_destroy(&m);
}
END_TEST

START_TEST(test_duplicate_known_keys_are_bad_frame)
{
    /* "tags" is no DECLARE key, yet a key may still appear only once. */
    static const char *const dups[] = { "q", "t", "rid", "tags" };
    for (size_t i = 0; i < 4; i++) {
        bool ignored_key = strcmp(dups[i], "tags") == 0;
        struct mp m;
        mp_init(&m);
        msgpack_pack_map(&m.pk, ignored_key ? 5 : 4);
        mp_key_uint(&m, "t", FERRY_F_DECLARE);
        mp_key_uint(&m, "rid", 1);
        mp_key_str(&m, "q", "jobs");
        if (ignored_key)
            mp_key_uint(&m, dups[i], 1);
        mp_key_uint(&m, dups[i], 1);
        struct ferry_frame f;
        const char *why = NULL;
        ck_assert_msg(decode_sbuf(&m.sb, &f, &why) == FERRY_CODE_BAD_FRAME, "dup %s", dups[i]);
        ck_assert_ptr_nonnull(strstr(why, "duplicate"));
        mp_destroy(&m);
    }
}
END_TEST

START_TEST(test_t_not_first_is_bad_frame)
{
    struct mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    mp_key_uint(&m, "rid", 1);
    mp_key_uint(&m, "t", FERRY_F_PING);
    const char *why = NULL;
    struct ferry_frame f;
    ck_assert_int_eq(decode_sbuf(&m.sb, &f, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "key 't' must come first");
    mp_destroy(&m);
}
END_TEST

START_TEST(test_trailing_bytes_after_the_map_are_bad_frame)
{
    static const uint8_t ping[] = { 0x81, 0xa1, 't', 4 };
    static const uint8_t ping_and_more[] = { 0x81, 0xa1, 't', 4, 0xc0 };
    static const uint8_t two_maps[] = { 0x81, 0xa1, 't', 4, 0x81, 0xa1, 't', 4 };
    const char *why = NULL;
    ck_assert_int_eq(decode_bytes(ping, sizeof ping, NULL), FERRY_CODE_OK);
    ck_assert_int_eq(decode_bytes(ping_and_more, sizeof ping_and_more, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "trailing bytes after the map");
    ck_assert_int_eq(decode_bytes(two_maps, sizeof two_maps, NULL), FERRY_CODE_BAD_FRAME);
}
END_TEST

START_TEST(test_unknown_frame_type_is_unknown_frame)
{
    static const uint64_t types[] = { 0, 7, 9, 13, 19, 28, 29, 37, 255, 65536, UINT64_MAX };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        struct mp m;
        mp_init(&m);
        msgpack_pack_map(&m.pk, 1);
        mp_key_uint(&m, "t", types[i]);
        struct ferry_frame f;
        ck_assert_int_eq(decode_sbuf(&m.sb, &f, NULL), FERRY_CODE_UNKNOWN_FRAME);
        mp_destroy(&m);
    }
}
END_TEST

START_TEST(test_bodies_that_are_not_a_map_with_t_are_bad_frame)
{
    static const uint8_t not_a_map[] = { 0x91, 0x04 };
    static const uint8_t empty_map[] = { 0x80 };
    static const uint8_t int_key[] = { 0x81, 0x01, 0x04 };
    static const uint8_t bin_key[] = { 0x81, 0xc4, 0x01, 't', 0x04 };
    static const uint8_t negative_t[] = { 0x81, 0xa1, 't', 0xff };
    static const uint8_t str_t[] = { 0x81, 0xa1, 't', 0xa1, '4' };
    static const uint8_t reserved_byte[] = { 0x82, 0xa1, 't', 4, 0xa1, 'x', 0xc1 };
    static const uint8_t second_int_key[] = { 0x82, 0xa1, 't', 4, 0x05, 0x06 };
    const char *why = NULL;

    ck_assert_int_eq(decode_bytes((const uint8_t *)"", 0, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "empty body");
    ck_assert_int_eq(decode_bytes(not_a_map, sizeof not_a_map, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "body: expected a map");
    ck_assert_int_eq(decode_bytes(empty_map, sizeof empty_map, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "field 't': missing");
    ck_assert_int_eq(decode_bytes(int_key, sizeof int_key, NULL), FERRY_CODE_BAD_FRAME);
    ck_assert_int_eq(decode_bytes(bin_key, sizeof bin_key, NULL), FERRY_CODE_BAD_FRAME);
    ck_assert_int_eq(decode_bytes(negative_t, sizeof negative_t, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "field 't': expected uint");
    ck_assert_int_eq(decode_bytes(str_t, sizeof str_t, NULL), FERRY_CODE_BAD_FRAME);
    ck_assert_int_eq(decode_bytes(reserved_byte, sizeof reserved_byte, NULL), FERRY_CODE_BAD_FRAME);
    ck_assert_int_eq(decode_bytes(second_int_key, sizeof second_int_key, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "keys must be str");
}
END_TEST

START_TEST(test_integers_are_accepted_in_every_encoding)
{
    /* rid = 5 as uint8, uint16, uint32, uint64, int8, int16, int32, int64 */
    static const uint8_t encodings[][9] = {
        { 0xcc, 5 }, { 0xcd, 0, 5 }, { 0xce, 0, 0, 0, 5 }, { 0xcf, 0, 0, 0, 0, 0, 0, 0, 5 },
        { 0xd0, 5 }, { 0xd1, 0, 5 }, { 0xd2, 0, 0, 0, 5 }, { 0xd3, 0, 0, 0, 0, 0, 0, 0, 5 },
    };
    static const size_t sizes[] = { 2, 3, 5, 9, 2, 3, 5, 9 };
    for (size_t i = 0; i < 8; i++) {
        uint8_t body[32] = { 0x82, 0xa1, 't', 0xd0, 4, 0xa3, 'r', 'i', 'd' }; /* t as int8 */
        memcpy(body + 9, encodings[i], sizes[i]);
        struct ferry_frame f;
        const char *why = NULL;
        ck_assert_msg(decode_copy(body, 9 + sizes[i], &f, &why) == FERRY_CODE_OK, "%zu: %s", i, why);
        ck_assert_int_eq(f.type, FERRY_F_PING);
        ck_assert_uint_eq(f.rid, 5);
    }
}
END_TEST

START_TEST(test_negative_integers_are_refused_in_every_encoding)
{
    static const uint8_t encodings[][9] = {
        { 0xff }, { 0xd0, 0xfb }, { 0xd1, 0xff, 0xfb }, { 0xd2, 0xff, 0xff, 0xff, 0xfb },
        { 0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb },
    };
    static const size_t sizes[] = { 1, 2, 3, 5, 9 };
    for (size_t i = 0; i < 5; i++) {
        uint8_t body[32] = { 0x82, 0xa1, 't', 4, 0xa3, 'r', 'i', 'd' };
        memcpy(body + 8, encodings[i], sizes[i]);
        const char *why = NULL;
        ck_assert_int_eq(decode_bytes(body, 8 + sizes[i], &why), FERRY_CODE_BAD_FRAME);
        ck_assert_str_eq(why, "field 'rid': expected uint");
    }
}
END_TEST

START_TEST(test_code_above_32_bits_is_bad_frame)
{
    struct mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 4);
    mp_key_uint(&m, "t", FERRY_F_ERROR);
    mp_key_uint(&m, "code", (uint64_t)UINT32_MAX + 1);
    mp_key_str(&m, "msg", "x");
    mp_str(&m, "fatal");
    msgpack_pack_true(&m.pk);
    struct ferry_frame f;
    const char *why = NULL;
    ck_assert_int_eq(decode_sbuf(&m.sb, &f, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "field 'code': above 2^32-1");
    mp_destroy(&m);
}
END_TEST

/* A PUBLISH with uint key `key` = v, or a PUBLISH_BATCH whose one item has it. */
static enum ferry_code decode_publish_key(bool in_item, const char *key, uint64_t v,
                                          const char **why)
{
    struct mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, in_item ? 3 : 4);
    mp_key_uint(&m, "t", in_item ? FERRY_F_PUBLISH_BATCH : FERRY_F_PUBLISH);
    mp_key_str(&m, "q", "jobs");
    if (in_item) {
        mp_str(&m, "m");
        msgpack_pack_array(&m.pk, 1);
        msgpack_pack_map(&m.pk, 2);
    }
    mp_key_uint(&m, key, v);
    mp_key_bin(&m, "p", "x");
    struct ferry_frame f;
    enum ferry_code code = decode_sbuf(&m.sb, &f, why);
    mp_destroy(&m);
    return code;
}

START_TEST(test_ttl_up_to_10_years_is_accepted_and_more_refused)
{
    const char *why = NULL;
    ck_assert_int_eq(decode_publish_key(false, "ttl", 0, &why), FERRY_CODE_OK);
    ck_assert_int_eq(decode_publish_key(false, "ttl", FERRY_TTL_MAX_MS, &why), FERRY_CODE_OK);
    ck_assert_int_eq(decode_publish_key(true, "ttl", FERRY_TTL_MAX_MS, &why), FERRY_CODE_OK);
    ck_assert_int_eq(decode_publish_key(false, "ttl", FERRY_TTL_MAX_MS + 1, &why),
                     FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "field 'ttl': above 10 years (315360000000 ms)");
    ck_assert_int_eq(decode_publish_key(true, "ttl", UINT64_MAX, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "field 'm': item 'ttl' above 10 years (315360000000 ms)");
}
END_TEST

START_TEST(test_priority_0_to_9_is_accepted_and_10_refused)
{
    const char *why = NULL;
    for (uint64_t v = 0; v <= FERRY_PRIORITY_MAX; v++) {
        ck_assert_int_eq(decode_publish_key(false, "prio", v, &why), FERRY_CODE_OK);
        ck_assert_int_eq(decode_publish_key(true, "prio", v, &why), FERRY_CODE_OK);
    }
    ck_assert_int_eq(decode_publish_key(false, "prio", 10, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "field 'prio': must be 0..9");
    ck_assert_int_eq(decode_publish_key(false, "prio", UINT64_MAX, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_int_eq(decode_publish_key(true, "prio", 10, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "field 'm': item 'prio' must be 0..9");
}
END_TEST

/* ---- every key of every type: valid, missing, wrong type --------------------- */

/* PROTOCOL.md's frame table, restated independently of the decoder's. */
enum kind { K_UINT, K_BOOL, K_STR, K_BIN, K_HEADERS, K_UINTS, K_ITEMS, K_SERVER, K_QUEUES, K_AUTH,
            K_CONNS };

struct key_spec {
    const char *key;
    enum kind kind;
    bool required;
};

struct type_spec {
    enum ferry_frame_type type;
    struct key_spec keys[9];
};

#define REQ true
#define OPT false
static const struct type_spec type_specs[] = {
    { FERRY_F_HELLO, { { "v", K_UINT, REQ }, { "name", K_STR, OPT }, { "auth", K_AUTH, OPT },
                       { "producer", K_UINT, OPT } } },
    { FERRY_F_WELCOME, { { "v", K_UINT, REQ }, { "name", K_STR, REQ }, { "max_frame", K_UINT, REQ },
                         { "hb", K_UINT, REQ } } },
    { FERRY_F_ERROR, { { "code", K_UINT, REQ }, { "msg", K_STR, REQ }, { "fatal", K_BOOL, REQ },
                       { "rid", K_UINT, OPT }, { "id", K_UINT, OPT } } },
    { FERRY_F_PING, { { "rid", K_UINT, OPT } } },
    { FERRY_F_PONG, { { "rid", K_UINT, OPT } } },
    { FERRY_F_OK, { { "rid", K_UINT, REQ }, { "n", K_UINT, OPT }, { "empty", K_BOOL, OPT },
                    { "server", K_SERVER, OPT }, { "queues", K_QUEUES, OPT }, { "q", K_STR, OPT },
                    { "conns", K_CONNS, OPT }, { "next", K_UINT, OPT } } },
    { FERRY_F_PUBLISH, { { "q", K_STR, REQ }, { "p", K_BIN, REQ }, { "h", K_HEADERS, OPT },
                         { "id", K_UINT, OPT }, { "prio", K_UINT, OPT }, { "delay", K_UINT, OPT },
                         { "at", K_UINT, OPT }, { "ttl", K_UINT, OPT } } },
    { FERRY_F_PUBLISH_BATCH, { { "q", K_STR, REQ }, { "m", K_ITEMS, REQ }, { "id", K_UINT, OPT } } },
    { FERRY_F_CONFIRM, { { "ids", K_UINTS, REQ } } },
    { FERRY_F_CONSUME, { { "rid", K_UINT, REQ }, { "q", K_STR, REQ }, { "sub", K_UINT, REQ },
                         { "credit", K_UINT, REQ }, { "deadline", K_UINT, OPT } } },
    { FERRY_F_CREDIT, { { "sub", K_UINT, REQ }, { "n", K_UINT, REQ } } },
    { FERRY_F_DELIVER, { { "sub", K_UINT, OPT }, { "rid", K_UINT, OPT }, { "tag", K_UINT, REQ },
                         { "n", K_UINT, REQ }, { "h", K_HEADERS, OPT }, { "p", K_BIN, REQ } } },
    { FERRY_F_ACK, { { "tags", K_UINTS, REQ } } },
    { FERRY_F_NACK, { { "tags", K_UINTS, REQ }, { "requeue", K_BOOL, OPT }, { "delay", K_UINT, OPT } } },
    { FERRY_F_TOUCH, { { "tags", K_UINTS, REQ }, { "deadline", K_UINT, OPT } } },
    { FERRY_F_PEEK, { { "rid", K_UINT, REQ }, { "q", K_STR, REQ }, { "n", K_UINT, OPT } } },
    { FERRY_F_MOVE, { { "rid", K_UINT, REQ }, { "q", K_STR, REQ }, { "to", K_STR, OPT },
                      { "n", K_UINT, OPT } } },
    { FERRY_F_CANCEL, { { "rid", K_UINT, REQ }, { "sub", K_UINT, REQ } } },
    { FERRY_F_GET, { { "rid", K_UINT, REQ }, { "q", K_STR, REQ }, { "wait", K_UINT, OPT } } },
    { FERRY_F_EOS, { { "sub", K_UINT, REQ }, { "q", K_STR, REQ } } },
    { FERRY_F_DECLARE, { { "rid", K_UINT, REQ }, { "q", K_STR, REQ } } },
    { FERRY_F_DELETE, { { "rid", K_UINT, REQ }, { "q", K_STR, REQ } } },
    { FERRY_F_PURGE, { { "rid", K_UINT, REQ }, { "q", K_STR, REQ } } },
    { FERRY_F_STATS, { { "rid", K_UINT, REQ }, { "q", K_STR, OPT } } },
    { FERRY_F_END, { { "rid", K_UINT, REQ }, { "q", K_STR, REQ } } },
    { FERRY_F_REOPEN, { { "rid", K_UINT, REQ }, { "q", K_STR, REQ } } },
    { FERRY_F_JOIN, { { "rid", K_UINT, REQ }, { "q", K_STR, REQ } } },
    { FERRY_F_BIND, { { "rid", K_UINT, REQ }, { "q", K_STR, REQ }, { "pattern", K_STR, REQ } } },
    { FERRY_F_UNBIND, { { "rid", K_UINT, REQ }, { "q", K_STR, REQ }, { "pattern", K_STR, REQ } } },
    { FERRY_F_PUBLISH_TOPIC, { { "topic", K_STR, REQ }, { "p", K_BIN, REQ }, { "h", K_HEADERS, OPT },
                               { "id", K_UINT, OPT } } },
    { FERRY_F_DECLARE_TEMP, { { "rid", K_UINT, REQ }, { "q", K_STR, OPT } } },
    { FERRY_F_BINDINGS, { { "rid", K_UINT, REQ }, { "q", K_STR, REQ } } },
    { FERRY_F_CONNS, { { "rid", K_UINT, REQ }, { "before", K_UINT, OPT } } },
    { FERRY_F_KILL, { { "rid", K_UINT, REQ }, { "id", K_UINT, REQ } } },
};
#define TYPE_SPECS (sizeof type_specs / sizeof type_specs[0])

static size_t key_count(const struct type_spec *ts)
{
    size_t n = 0;
    while (n < 9 && ts->keys[n].key)
        n++;
    return n;
}

static void pack_server_map(struct mp *m, size_t keys)
{
    static const char *const names[] = { "conns", "queues", "uptime_ms", "messages", "bytes",
                                         "topic_pubs", "unroutable", "copies", "skipped",
                                         "bindings", "memory", "max_memory", "parked", "dups",
                                         "dup_evicted" };
    msgpack_pack_map(&m->pk, keys);
    for (size_t i = 0; i < keys; i++)
        mp_key_uint(m, names[i], i);
}

static void pack_conn_map(struct mp *m, size_t keys)
{
    static const char *const names[] = { "id", "out", "subs", "inflight", "age_ms", "idle_ms" };
    msgpack_pack_map(&m->pk, keys);
    size_t n = 0;
    if (n++ < keys)
        mp_key_str(m, "peer", "unix:pid=1,uid=0");
    if (n++ < keys)
        mp_key_str(m, "name", "w");
    if (n++ < keys) {
        mp_str(m, "throttled");
        msgpack_pack_false(&m->pk);
    }
    for (size_t i = 0; n++ < keys; i++)
        mp_key_uint(m, names[i], i);
}

static void pack_queue_map(struct mp *m, size_t keys)
{
    static const char *const names[] = { "depth", "inflight", "consumers", "published", "delivered",
                                         "acked", "redelivered", "dropped", "bytes", "delayed",
                                         "expired", "bindings", "max_length", "max_bytes",
                                         "dropped_oldest", "rejected", "blocked" };
    msgpack_pack_map(&m->pk, keys);
    size_t n = 0;
    if (n++ < keys)
        mp_key_str(m, "q", "jobs");
    if (n++ < keys) {
        mp_str(m, "ended");
        msgpack_pack_false(&m->pk);
    }
    if (n++ < keys)
        mp_key_str(m, "overflow", "block");
    if (n++ < keys) {
        mp_str(m, "depth_prio");
        msgpack_pack_array(&m->pk, FERRY_PRIORITY_LEVELS);
        for (unsigned p = 0; p < FERRY_PRIORITY_LEVELS; p++)
            msgpack_pack_uint64(&m->pk, p);
    }
    for (size_t i = 0; n++ < keys; i++)
        mp_key_uint(m, names[i], i);
}

static void pack_valid(struct mp *m, enum kind k)
{
    switch (k) {
    case K_UINT: msgpack_pack_uint64(&m->pk, 7); break;
    case K_BOOL: msgpack_pack_true(&m->pk); break;
    case K_STR: mp_str(m, "jobs"); break;
    case K_BIN: mp_bin(m, "hi"); break;
    case K_HEADERS: msgpack_pack_map(&m->pk, 1); mp_key_bin(m, "k", "v"); break;
    case K_UINTS:
        msgpack_pack_array(&m->pk, 2);
        msgpack_pack_uint64(&m->pk, 1);
        msgpack_pack_uint64(&m->pk, 2);
        break;
    case K_ITEMS:
        msgpack_pack_array(&m->pk, 2);
        mp_bin(m, "a");
        msgpack_pack_map(&m->pk, 2);
        mp_key_bin(m, "p", "b");
        mp_str(m, "h");
        msgpack_pack_map(&m->pk, 1);
        mp_key_str(m, "k", "v");
        break;
    case K_SERVER: pack_server_map(m, 15); break;
    case K_QUEUES: msgpack_pack_array(&m->pk, 1); pack_queue_map(m, 21); break;
    case K_CONNS: msgpack_pack_array(&m->pk, 1); pack_conn_map(m, 9); break;
    case K_AUTH: msgpack_pack_map(&m->pk, 1); mp_key_str(m, "user", "x"); break;
    }
}

/* Packs wrong value number `variant` for kind k; false when there are no more. */
static bool pack_wrong(struct mp *m, enum kind k, int variant)
{
    switch (k * 10 + variant) {
    case K_UINT * 10 + 0: mp_str(m, "7"); return true;
    case K_UINT * 10 + 1: msgpack_pack_int64(&m->pk, -1); return true;
    case K_UINT * 10 + 2: msgpack_pack_int64(&m->pk, -5000000000LL); return true;
    case K_UINT * 10 + 3: msgpack_pack_true(&m->pk); return true;
    case K_UINT * 10 + 4: msgpack_pack_nil(&m->pk); return true;
    case K_UINT * 10 + 5: msgpack_pack_double(&m->pk, 7.0); return true;
    case K_UINT * 10 + 6: mp_bin(m, "7"); return true;
    case K_BOOL * 10 + 0: msgpack_pack_uint64(&m->pk, 1); return true;
    case K_BOOL * 10 + 1: msgpack_pack_nil(&m->pk); return true;
    case K_BOOL * 10 + 2: mp_str(m, "true"); return true;
    case K_STR * 10 + 0: mp_bin(m, "jobs"); return true;
    case K_STR * 10 + 1: msgpack_pack_uint64(&m->pk, 5); return true;
    case K_STR * 10 + 2: msgpack_pack_nil(&m->pk); return true;
    case K_STR * 10 + 3: msgpack_pack_array(&m->pk, 0); return true;
    case K_BIN * 10 + 0: mp_str(m, "hi"); return true;
    case K_BIN * 10 + 1: msgpack_pack_uint64(&m->pk, 5); return true;
    case K_BIN * 10 + 2: msgpack_pack_nil(&m->pk); return true;
    case K_HEADERS * 10 + 0: msgpack_pack_array(&m->pk, 0); return true;
    case K_HEADERS * 10 + 1: mp_str(m, "k=v"); return true;
    case K_HEADERS * 10 + 2:
        msgpack_pack_map(&m->pk, 1);
        msgpack_pack_uint64(&m->pk, 1);
        mp_str(m, "v");
        return true;
    case K_HEADERS * 10 + 3:
        msgpack_pack_map(&m->pk, 1);
        mp_key_uint(m, "k", 1);
        return true;
    case K_HEADERS * 10 + 4:
        msgpack_pack_map(&m->pk, 1);
        mp_key_str(m, "", "v"); /* empty key */
        return true;
    case K_UINTS * 10 + 0: msgpack_pack_uint64(&m->pk, 5); return true;
    case K_UINTS * 10 + 1: msgpack_pack_array(&m->pk, 0); return true;
    case K_UINTS * 10 + 2:
        msgpack_pack_array(&m->pk, 2);
        msgpack_pack_uint64(&m->pk, 1);
        mp_str(m, "2");
        return true;
    case K_UINTS * 10 + 3:
        msgpack_pack_array(&m->pk, 1);
        msgpack_pack_int64(&m->pk, -1);
        return true;
    case K_UINTS * 10 + 4: msgpack_pack_map(&m->pk, 0); return true;
    case K_ITEMS * 10 + 0: mp_bin(m, "a"); return true;
    case K_ITEMS * 10 + 1: msgpack_pack_array(&m->pk, 0); return true;
    case K_ITEMS * 10 + 2:
        msgpack_pack_array(&m->pk, 1);
        mp_str(m, "a"); /* str, not bin */
        return true;
    case K_ITEMS * 10 + 3:
        msgpack_pack_array(&m->pk, 1);
        msgpack_pack_map(&m->pk, 1);
        mp_key_str(m, "h", "x"); /* no p, and h is not a map */
        return true;
    case K_ITEMS * 10 + 4:
        msgpack_pack_array(&m->pk, 1);
        msgpack_pack_map(&m->pk, 1);
        mp_str(m, "h");
        msgpack_pack_map(&m->pk, 0); /* no p */
        return true;
    case K_ITEMS * 10 + 5:
        msgpack_pack_array(&m->pk, 1);
        msgpack_pack_map(&m->pk, 2);
        mp_key_bin(m, "p", "a");
        mp_key_bin(m, "p", "b"); /* duplicate p */
        return true;
    case K_ITEMS * 10 + 6:
        msgpack_pack_array(&m->pk, 1);
        msgpack_pack_map(&m->pk, 1);
        mp_key_str(m, "p", "a"); /* p must be bin */
        return true;
    case K_SERVER * 10 + 0: msgpack_pack_array(&m->pk, 0); return true;
    case K_SERVER * 10 + 1: pack_server_map(m, 4); return true; /* "bytes" missing */
    case K_SERVER * 10 + 2:
        msgpack_pack_map(&m->pk, 5);
        mp_key_str(m, "conns", "1"); /* str, not uint */
        mp_key_uint(m, "queues", 1);
        mp_key_uint(m, "uptime_ms", 1);
        mp_key_uint(m, "messages", 1);
        mp_key_uint(m, "bytes", 1);
        return true;
    case K_QUEUES * 10 + 0: msgpack_pack_map(&m->pk, 0); return true;
    case K_QUEUES * 10 + 1:
        msgpack_pack_array(&m->pk, 1);
        msgpack_pack_uint64(&m->pk, 1);
        return true;
    case K_QUEUES * 10 + 2:
        msgpack_pack_array(&m->pk, 1);
        pack_queue_map(m, 12); /* "bytes" missing (the later keys may be) */
        return true;
    case K_QUEUES * 10 + 3:
        msgpack_pack_array(&m->pk, 1);
        msgpack_pack_map(&m->pk, 1);
        mp_key_uint(m, "q", 1); /* q must be str */
        return true;
    case K_QUEUES * 10 + 4:
        msgpack_pack_array(&m->pk, 1);
        msgpack_pack_map(&m->pk, 1);
        mp_key_uint(m, "ended", 1); /* ended must be bool */
        return true;
    case K_CONNS * 10 + 0: msgpack_pack_map(&m->pk, 0); return true;
    case K_CONNS * 10 + 1:
        msgpack_pack_array(&m->pk, 1);
        pack_conn_map(m, 8); /* a key missing */
        return true;
    case K_CONNS * 10 + 2:
        msgpack_pack_array(&m->pk, 1);
        msgpack_pack_map(&m->pk, 1);
        mp_key_uint(m, "peer", 1); /* peer must be str */
        return true;
    case K_CONNS * 10 + 3:
        msgpack_pack_array(&m->pk, 1);
        msgpack_pack_map(&m->pk, 1);
        mp_key_str(m, "out", "1"); /* out must be uint */
        return true;
    case K_AUTH * 10 + 0: msgpack_pack_array(&m->pk, 0); return true;
    case K_AUTH * 10 + 1: mp_str(m, "secret"); return true;
    default: return false;
    }
}

enum body_edit { EDIT_NONE, EDIT_OMIT, EDIT_WRONG };

/* A body of type ts with every key valid, except key number `which`,
 * omitted or given wrong value `variant`. false if there is no such variant. */
static bool build_body(struct mp *m, const struct type_spec *ts, size_t which, enum body_edit edit,
                       int variant)
{
    size_t n = key_count(ts);
    msgpack_pack_map(&m->pk, 1 + n - (edit == EDIT_OMIT));
    mp_key_uint(m, "t", ts->type);
    for (size_t i = 0; i < n; i++) {
        if (i == which && edit == EDIT_OMIT)
            continue;
        mp_str(m, ts->keys[i].key);
        if (i == which && edit == EDIT_WRONG) {
            if (!pack_wrong(m, ts->keys[i].kind, variant))
                return false;
        } else {
            pack_valid(m, ts->keys[i].kind);
        }
    }
    return true;
}

START_TEST(test_every_frame_type_decodes_with_every_key_valid)
{
    for (size_t t = 0; t < TYPE_SPECS; t++) {
        struct mp m;
        mp_init(&m);
        build_body(&m, &type_specs[t], 0, EDIT_NONE, 0);
        struct ferry_frame f;
        const char *why = NULL;
        ck_assert_msg(decode_sbuf(&m.sb, &f, &why) == FERRY_CODE_OK, "%s: %s",
                      ferry_frame_type_name(type_specs[t].type), why);
        ck_assert_int_eq(f.type, type_specs[t].type);
        assert_decoded_frame_is_usable(&f);
        mp_destroy(&m);
    }
}
END_TEST

START_TEST(test_a_missing_required_key_is_bad_frame_and_a_missing_optional_one_is_not)
{
    for (size_t t = 0; t < TYPE_SPECS; t++) {
        const struct type_spec *ts = &type_specs[t];
        for (size_t k = 0; k < key_count(ts); k++) {
            struct mp m;
            mp_init(&m);
            build_body(&m, ts, k, EDIT_OMIT, 0);
            struct ferry_frame f;
            const char *why = NULL;
            enum ferry_code code = decode_sbuf(&m.sb, &f, &why);
            if (ts->keys[k].required) {
                char want[64];
                snprintf(want, sizeof want, "field '%s': missing", ts->keys[k].key);
                ck_assert_msg(code == FERRY_CODE_BAD_FRAME, "%s without %s",
                              ferry_frame_type_name(ts->type), ts->keys[k].key);
                ck_assert_str_eq(why, want);
            } else {
                ck_assert_msg(code == FERRY_CODE_OK, "%s without %s: %s",
                              ferry_frame_type_name(ts->type), ts->keys[k].key, why);
            }
            mp_destroy(&m);
        }
    }
}
END_TEST

START_TEST(test_a_wrong_type_for_any_key_is_bad_frame)
{
    int cases = 0;
    for (size_t t = 0; t < TYPE_SPECS; t++) {
        const struct type_spec *ts = &type_specs[t];
        for (size_t k = 0; k < key_count(ts); k++) {
            for (int variant = 0;; variant++) {
                struct mp m;
                mp_init(&m);
                bool built = build_body(&m, ts, k, EDIT_WRONG, variant);
                if (built) {
                    struct ferry_frame f;
                    const char *why = NULL;
                    ck_assert_msg(decode_sbuf(&m.sb, &f, &why) == FERRY_CODE_BAD_FRAME,
                                  "%s, key %s, wrong value %d accepted", ferry_frame_type_name(ts->type),
                                  ts->keys[k].key, variant);
                    ck_assert_ptr_nonnull(why);
                    cases++;
                }
                mp_destroy(&m);
                if (!built)
                    break;
            }
        }
    }
    ck_assert_int_gt(cases, 200);
}
END_TEST

START_TEST(test_why_names_the_field_and_the_problem)
{
    struct mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 3);
    mp_key_uint(&m, "t", FERRY_F_DECLARE);
    mp_key_uint(&m, "rid", 1);
    mp_key_bin(&m, "q", "jobs");
    struct ferry_frame f;
    const char *why = NULL;
    ck_assert_int_eq(decode_sbuf(&m.sb, &f, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "field 'q': expected str");
    mp_destroy(&m);

    mp_init(&m);
    msgpack_pack_map(&m.pk, 3);
    mp_key_uint(&m, "t", FERRY_F_PUBLISH);
    mp_key_str(&m, "q", "jobs");
    mp_key_str(&m, "p", "payload as str");
    ck_assert_int_eq(decode_sbuf(&m.sb, &f, &why), FERRY_CODE_BAD_FRAME);
    ck_assert_str_eq(why, "field 'p': expected bin");
    mp_destroy(&m);
}
END_TEST

/* ---- limits ------------------------------------------------------------------ */

START_TEST(test_queue_name_of_255_bytes_is_valid_and_256_is_not)
{
    char *n255 = repeat('a', 255), *n256 = repeat('a', 256);
    ck_assert(ferry_name_valid(bytes_of(n255)));
    ck_assert(!ferry_name_valid(bytes_of(n256)));
    free(n255);
    free(n256);
}
END_TEST

START_TEST(test_queue_name_allows_only_its_alphabet)
{
    ck_assert(ferry_name_valid(bytes_of("AZaz09._-:")));
    ck_assert(ferry_name_valid(bytes_of("a")));
    ck_assert(!ferry_name_valid(bytes_of("")));
    static const char bad[] = " /\\*?#\"'@!$%&()+,;<=>[]^`{|}~\x7f\x80\xff";
    for (size_t i = 0; i < sizeof bad - 1; i++) {
        char name[4] = { 'a', bad[i], 'b', 0 };
        ck_assert_msg(!ferry_name_valid(bytes_of(name)), "0x%02x accepted", (uint8_t)bad[i]);
    }
    ck_assert(!ferry_name_valid((struct ferry_bytes){ (const uint8_t *)"a\0b", 3 }));
}
END_TEST

START_TEST(test_decoder_leaves_queue_name_rules_to_the_broker)
{
    char *n256 = repeat('a', 256);
    struct mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 3);
    mp_key_uint(&m, "t", FERRY_F_DECLARE);
    mp_key_uint(&m, "rid", 1);
    mp_key_str(&m, "q", n256);
    struct ferry_frame f;
    ck_assert_int_eq(decode_sbuf(&m.sb, &f, NULL), FERRY_CODE_OK);
    ck_assert_uint_eq(f.queue.len, 256);
    ck_assert(!ferry_name_valid(f.queue)); /* BAD_NAME, not BAD_FRAME */
    mp_destroy(&m);
    free(n256);
}
END_TEST

static enum ferry_code decode_hello_named(size_t len)
{
    char *name = repeat('n', len);
    struct mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 3);
    mp_key_uint(&m, "t", FERRY_F_HELLO);
    mp_key_uint(&m, "v", 1);
    mp_key_str(&m, "name", name);
    struct ferry_frame f;
    enum ferry_code code = decode_sbuf(&m.sb, &f, NULL);
    if (code == FERRY_CODE_OK)
        ck_assert_uint_eq(f.name.len, len);
    mp_destroy(&m);
    free(name);
    return code;
}

START_TEST(test_client_name_of_255_bytes_is_accepted_and_256_refused)
{
    ck_assert_int_eq(decode_hello_named(0), FERRY_CODE_OK);
    ck_assert_int_eq(decode_hello_named(255), FERRY_CODE_OK);
    ck_assert_int_eq(decode_hello_named(256), FERRY_CODE_BAD_FRAME);
}
END_TEST

static enum ferry_code decode_error_text(size_t len)
{
    char *text = repeat('e', len);
    struct mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 4);
    mp_key_uint(&m, "t", FERRY_F_ERROR);
    mp_key_uint(&m, "code", FERRY_CODE_INTERNAL);
    mp_key_str(&m, "msg", text);
    mp_str(&m, "fatal");
    msgpack_pack_true(&m.pk);
    struct ferry_frame f;
    enum ferry_code code = decode_sbuf(&m.sb, &f, NULL);
    mp_destroy(&m);
    free(text);
    return code;
}

START_TEST(test_error_text_of_1024_bytes_is_accepted_and_1025_refused)
{
    ck_assert_int_eq(decode_error_text(1024), FERRY_CODE_OK);
    ck_assert_int_eq(decode_error_text(1025), FERRY_CODE_BAD_FRAME);
}
END_TEST

/* A PUBLISH whose "h" has `pairs` headers, keys of key_len bytes (the
 * first one) and values of value_len bytes, as str or bin. */
static enum ferry_code decode_publish_with_headers(size_t pairs, size_t key_len, size_t value_len,
                                                   bool bin_values)
{
    char *value = repeat('v', value_len);
    char *long_key = repeat('k', key_len);
    struct mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 4);
    mp_key_uint(&m, "t", FERRY_F_PUBLISH);
    mp_key_str(&m, "q", "jobs");
    mp_str(&m, "h");
    msgpack_pack_map(&m.pk, pairs);
    for (size_t i = 0; i < pairs; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%zu", i);
        mp_str(&m, i == 0 ? long_key : key);
        if (bin_values)
            mp_bin(&m, value);
        else
            mp_str(&m, value);
    }
    mp_key_bin(&m, "p", "x");
    struct ferry_frame f;
    enum ferry_code code = decode_sbuf(&m.sb, &f, NULL);
    if (code == FERRY_CODE_OK) {
        struct ferry_iter it;
        struct ferry_kv kv;
        size_t n = 0;
        ferry_headers_iter_init(&it, f.headers);
        while (ferry_headers_next(&it, &kv))
            n++;
        ck_assert_uint_eq(n, pairs);
    }
    mp_destroy(&m);
    free(value);
    free(long_key);
    return code;
}

START_TEST(test_64_headers_are_accepted_and_65_refused)
{
    ck_assert_int_eq(decode_publish_with_headers(0, 1, 1, false), FERRY_CODE_OK);
    ck_assert_int_eq(decode_publish_with_headers(64, 1, 1, false), FERRY_CODE_OK);
    ck_assert_int_eq(decode_publish_with_headers(65, 1, 1, false), FERRY_CODE_BAD_FRAME);
}
END_TEST

START_TEST(test_header_key_of_1_to_255_bytes_is_accepted_and_0_or_256_refused)
{
    ck_assert_int_eq(decode_publish_with_headers(1, 1, 1, false), FERRY_CODE_OK);
    ck_assert_int_eq(decode_publish_with_headers(1, 255, 1, false), FERRY_CODE_OK);
    ck_assert_int_eq(decode_publish_with_headers(1, 256, 1, false), FERRY_CODE_BAD_FRAME);
    ck_assert_int_eq(decode_publish_with_headers(1, 0, 1, false), FERRY_CODE_BAD_FRAME);
}
END_TEST

START_TEST(test_header_value_of_65535_bytes_is_accepted_and_65536_refused)
{
    for (int bin = 0; bin < 2; bin++) {
        ck_assert_int_eq(decode_publish_with_headers(1, 3, 0, bin), FERRY_CODE_OK);
        ck_assert_int_eq(decode_publish_with_headers(1, 3, 65535, bin), FERRY_CODE_OK);
        ck_assert_int_eq(decode_publish_with_headers(1, 3, 65536, bin), FERRY_CODE_BAD_FRAME);
    }
}
END_TEST

/* A frame of `type` whose list key holds n entries. */
static enum ferry_code decode_list_of(enum ferry_frame_type type, size_t n)
{
    struct mp m;
    mp_init(&m);
    switch (type) {
    case FERRY_F_CONFIRM:
    case FERRY_F_ACK:
        msgpack_pack_map(&m.pk, 2);
        mp_key_uint(&m, "t", type);
        mp_str(&m, type == FERRY_F_CONFIRM ? "ids" : "tags");
        msgpack_pack_array(&m.pk, n);
        for (size_t i = 0; i < n; i++)
            msgpack_pack_uint64(&m.pk, i);
        break;
    default: /* PUBLISH_BATCH */
        msgpack_pack_map(&m.pk, 3);
        mp_key_uint(&m, "t", type);
        mp_key_str(&m, "q", "jobs");
        mp_str(&m, "m");
        msgpack_pack_array(&m.pk, n);
        for (size_t i = 0; i < n; i++)
            mp_bin(&m, "");
        break;
    }
    struct ferry_frame f;
    enum ferry_code code = decode_sbuf(&m.sb, &f, NULL);
    if (code == FERRY_CODE_OK) {
        ck_assert_uint_eq(f.list_count, n);
        assert_decoded_frame_is_usable(&f);
    }
    mp_destroy(&m);
    return code;
}

START_TEST(test_lists_of_65536_entries_are_accepted_and_65537_or_0_refused)
{
    static const enum ferry_frame_type types[] = { FERRY_F_CONFIRM, FERRY_F_ACK, FERRY_F_PUBLISH_BATCH };
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(decode_list_of(types[i], 1), FERRY_CODE_OK);
        ck_assert_int_eq(decode_list_of(types[i], 65536), FERRY_CODE_OK);
        ck_assert_int_eq(decode_list_of(types[i], 65537), FERRY_CODE_BAD_FRAME);
        ck_assert_int_eq(decode_list_of(types[i], 0), FERRY_CODE_BAD_FRAME);
    }
}
END_TEST

START_TEST(test_encoder_writes_lists_of_65536_entries_that_decode)
{
    uint64_t *tags = malloc(65536 * sizeof *tags);
    ck_assert_ptr_nonnull(tags);
    for (size_t i = 0; i < 65536; i++)
        tags[i] = UINT64_MAX - i;
    struct ferry_frame ack = { .type = FERRY_F_ACK, .uints = tags, .uint_count = 65536 };
    struct ferry_buf out = { 0 };
    struct ferry_bytes body = encode_checked(&out, &ack);
    struct ferry_frame got;
    ck_assert_int_eq(ferry_frame_decode(body.ptr, body.len, &got, NULL), FERRY_CODE_OK);
    assert_uint_list_equal(&ack, &got);
    ferry_buf_free(&out);
    free(tags);
}
END_TEST

/* ---- framing ---------------------------------------------------------------- */

static void put_prefix(uint8_t *p, uint32_t len)
{
    p[0] = (uint8_t)(len >> 24);
    p[1] = (uint8_t)(len >> 16);
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
}

START_TEST(test_split_accepts_exactly_max_frame_and_refuses_one_more)
{
    enum { MAX = 4096 };
    uint8_t *data = calloc(1, FERRY_FRAME_PREFIX + MAX + 1);
    ck_assert_ptr_nonnull(data);
    struct ferry_bytes body;
    size_t consumed = 0;

    put_prefix(data, MAX);
    ck_assert_int_eq(ferry_frame_split(data, FERRY_FRAME_PREFIX + MAX, MAX, &body, &consumed),
                     FERRY_SPLIT_FRAME);
    ck_assert_uint_eq(body.len, MAX);
    ck_assert_ptr_eq(body.ptr, data + FERRY_FRAME_PREFIX);
    ck_assert_uint_eq(consumed, FERRY_FRAME_PREFIX + MAX);

    put_prefix(data, MAX + 1);
    ck_assert_int_eq(ferry_frame_split(data, FERRY_FRAME_PREFIX + MAX + 1, MAX, &body, &consumed),
                     FERRY_SPLIT_TOO_LARGE);
    /* ...and already on the prefix alone */
    ck_assert_int_eq(ferry_frame_split(data, FERRY_FRAME_PREFIX, MAX, &body, &consumed),
                     FERRY_SPLIT_TOO_LARGE);
    free(data);
}
END_TEST

START_TEST(test_split_refuses_a_4_gib_prefix_without_reading_more)
{
    /* Exactly four bytes on the heap: reading a fifth would be caught. */
    uint8_t *prefix = malloc(FERRY_FRAME_PREFIX);
    ck_assert_ptr_nonnull(prefix);
    put_prefix(prefix, UINT32_MAX);
    struct ferry_bytes body;
    size_t consumed;
    ck_assert_int_eq(ferry_frame_split(prefix, FERRY_FRAME_PREFIX, FERRY_FRAME_MAX_CEILING, &body, &consumed),
                     FERRY_SPLIT_TOO_LARGE);
    free(prefix);
}
END_TEST

START_TEST(test_split_waits_for_the_whole_prefix_and_body)
{
    static const uint8_t frame[] = { 0, 0, 0, 4, 0x81, 0xa1, 't', 4, 0xee };
    struct ferry_bytes body;
    size_t consumed;
    for (size_t len = 0; len < 8; len++)
        ck_assert_int_eq(ferry_frame_split(frame, len, 4096, &body, &consumed), FERRY_SPLIT_INCOMPLETE);
    /* the byte after the frame is not part of it */
    ck_assert_int_eq(ferry_frame_split(frame, sizeof frame, 4096, &body, &consumed), FERRY_SPLIT_FRAME);
    ck_assert_uint_eq(consumed, 8);
    ck_assert_uint_eq(body.len, 4);
}
END_TEST

/* ---- the byte buffer ------------------------------------------------------------ */

START_TEST(test_buf_consuming_everything_resets_it_to_empty)
{
    struct ferry_buf b = { 0 };
    ck_assert_int_eq(ferry_buf_append(&b, "hello", 5), 0);
    ferry_buf_consume(&b, 2);
    ck_assert_uint_eq(b.off, 2);
    ck_assert_uint_eq(ferry_buf_pending(&b), 3);
    ck_assert(memcmp(b.data + b.off, "llo", 3) == 0);
    ferry_buf_consume(&b, 3);
    ck_assert_uint_eq(b.off, 0);
    ck_assert_uint_eq(b.len, 0);
    ferry_buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_buf_slides_pending_bytes_down_when_the_consumed_head_is_large)
{
    struct ferry_buf b = { 0 };
    uint8_t chunk[100];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (uint8_t)i;
    while (b.len + sizeof chunk <= b.cap || b.cap == 0)
        ck_assert_int_eq(ferry_buf_append(&b, chunk, sizeof chunk), 0);
    size_t cap = b.cap;
    uint8_t *data = b.data;
    /* leave the last 10 bytes pending: the head is far larger */
    ferry_buf_consume(&b, b.len - 10);
    ck_assert_int_eq(ferry_buf_append(&b, chunk, sizeof chunk), 0);
    ck_assert_uint_eq(b.cap, cap);
    ck_assert_ptr_eq(b.data, data);
    ck_assert_uint_eq(b.off, 0);
    ck_assert_uint_eq(b.len, 110);
    ck_assert(memcmp(b.data + 10, chunk, sizeof chunk) == 0);
    ck_assert(memcmp(b.data, chunk + 90, 10) == 0);
    ferry_buf_free(&b);
}
END_TEST

START_TEST(test_buf_grows_by_doubling_and_keeps_its_bytes)
{
    struct ferry_buf b = { 0 };
    ck_assert_int_eq(ferry_buf_append(&b, "a", 1), 0);
    size_t cap = b.cap;
    ck_assert_uint_ge(cap, 1);
    for (size_t i = 1; i < cap + 1; i++)
        ck_assert_int_eq(ferry_buf_append(&b, "a", 1), 0);
    ck_assert_uint_eq(b.cap, 2 * cap);
    ck_assert_int_eq(ferry_buf_reserve(&b, 10 * cap), 0);
    ck_assert_uint_ge(b.cap - b.len, 10 * cap);
    for (size_t i = 0; i < b.len; i++)
        ck_assert_int_eq(b.data[i], 'a');
    ferry_buf_free(&b);
}
END_TEST

START_TEST(test_buf_refuses_an_impossible_reservation_and_stays_intact)
{
    struct ferry_buf b = { 0 };
    ck_assert_int_eq(ferry_buf_append(&b, "abc", 3), 0);
    ck_assert_int_eq(ferry_buf_reserve(&b, SIZE_MAX), -1);
    ck_assert_int_eq(ferry_buf_reserve(&b, SIZE_MAX - 2), -1);
    ck_assert_uint_eq(ferry_buf_pending(&b), 3);
    ck_assert(memcmp(b.data, "abc", 3) == 0);
    ck_assert_int_eq(ferry_buf_append(&b, NULL, 0), 0);
    ferry_buf_free(&b);
}
END_TEST

START_TEST(test_buf_shrink_keeps_pending_bytes_and_at_most_keep_capacity)
{
    struct ferry_buf b = { 0 };
    ck_assert_int_eq(ferry_buf_reserve(&b, 100000), 0);
    ck_assert_int_eq(ferry_buf_append(&b, "0123456789", 10), 0);
    ferry_buf_consume(&b, 4);
    ferry_buf_shrink(&b, 4096);
    ck_assert_uint_eq(b.cap, 4096);
    ck_assert_uint_eq(b.off, 0);
    ck_assert_uint_eq(ferry_buf_pending(&b), 6);
    ck_assert(memcmp(b.data, "456789", 6) == 0);
    ferry_buf_shrink(&b, 0);
    ck_assert_uint_eq(b.cap, 6);
    ferry_buf_consume(&b, 6);
    ferry_buf_shrink(&b, 0);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.cap, 0);
    ferry_buf_free(&b);
}
END_TEST

/* ---- names -------------------------------------------------------------------- */

START_TEST(test_code_names_and_fatality_follow_the_error_table)
{
    static const struct { uint32_t code; const char *name; bool fatal; } table[] = {
        { 1, "BAD_FRAME", true },      { 2, "FRAME_TOO_LARGE", true }, { 3, "UNKNOWN_FRAME", true },
        { 4, "HANDSHAKE", true },      { 5, "VERSION", true },         { 6, "BAD_NAME", false },
        { 7, "NOT_FOUND", false },     { 8, "ENDED", false },          { 9, "UNKNOWN_TAG", false },
        { 10, "UNKNOWN_SUB", false },  { 11, "SUB_EXISTS", false },    { 12, "LIMIT", false },
        { 13, "QUEUE_FULL", false },   { 14, "NO_MEMORY", false },     { 15, "SHUTTING_DOWN", true },
        { 16, "INTERNAL", true },      { 17, "BAD_REQUEST", false },   { 18, "STORAGE", false },
        { 27, "BAD_TOPIC", false },    { 28, "EXCLUSIVE", false },
        { 21, "HEARTBEAT", true },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        ck_assert_str_eq(ferry_code_name(table[i].code), table[i].name);
        ck_assert_int_eq(ferry_code_is_fatal(table[i].code), table[i].fatal);
    }
    ck_assert_str_eq(ferry_code_name(0), "OK");
    ck_assert_str_eq(ferry_code_name(1000), "UNKNOWN");
    ck_assert_str_eq(ferry_code_name(UINT32_MAX), "UNKNOWN");
    ck_assert(!ferry_code_is_fatal(0));
    ck_assert(!ferry_code_is_fatal(1000));
}
END_TEST

START_TEST(test_frame_type_names_cover_exactly_the_frame_types)
{
    ck_assert_str_eq(ferry_frame_type_name(FERRY_F_HELLO), "HELLO");
    ck_assert_str_eq(ferry_frame_type_name(FERRY_F_PUBLISH_BATCH), "PUBLISH_BATCH");
    ck_assert_str_eq(ferry_frame_type_name(FERRY_F_JOIN), "JOIN");
    int named = 0;
    for (uint32_t t = 0; t < 100; t++)
        named += ferry_frame_type_name(t) != NULL;
    ck_assert_int_eq(named, 34);
    ck_assert_str_eq(ferry_frame_type_name(FERRY_F_BINDINGS), "BINDINGS");
    ck_assert_str_eq(ferry_frame_type_name(FERRY_F_BIND), "BIND");
    ck_assert_str_eq(ferry_frame_type_name(FERRY_F_DECLARE_TEMP), "DECLARE_TEMP");
    ck_assert_ptr_null(ferry_frame_type_name(0));
    ck_assert_ptr_null(ferry_frame_type_name(7));
    ck_assert_ptr_null(ferry_frame_type_name(UINT32_MAX));
}
END_TEST

/* ---- suite --------------------------------------------------------------------- */

int main(void)
{
    Suite *s = suite_create("proto");

    TCase *trip = tcase_create("round trip");
    tcase_add_test(trip, test_every_frame_type_round_trips_with_all_optional_keys);
    tcase_add_test(trip, test_every_frame_type_round_trips_without_optional_keys);
    tcase_add_test(trip, test_samples_cover_every_frame_type);
    tcase_add_test(trip, test_nack_without_requeue_key_defaults_to_requeue);
    tcase_add_test(trip, test_payload_is_the_last_thing_in_publish_and_deliver);
    tcase_add_test(trip, test_frames_encoded_back_to_back_split_one_by_one);
    tcase_add_test(trip, test_encoding_an_unknown_type_fails_and_appends_nothing);
    tcase_add_test(trip, test_headers_encode_then_iterate_in_order);

    TCase *hostile = tcase_create("hostile input");
    tcase_add_test(hostile, test_every_proper_prefix_of_a_frame_is_incomplete);
    tcase_add_test(hostile, test_every_proper_prefix_of_a_body_is_bad_frame);
    tcase_add_test(hostile, test_random_bodies_never_crash_the_decoder);
    tcase_add_test(hostile, test_random_mutations_of_valid_frames_never_crash_the_decoder);
    tcase_add_test(hostile, test_container_headers_claiming_more_entries_than_bytes_fail_at_once);
    tcase_add_test(hostile, test_unknown_key_nested_8_deep_is_skipped_and_9_deep_refused);
    tcase_add_test(hostile, test_unknown_keys_of_every_type_are_skipped);
    tcase_add_test(hostile, test_keys_of_other_frame_types_are_ignored);
    tcase_add_test(hostile, test_duplicate_known_keys_are_bad_frame);
    tcase_add_test(hostile, test_t_not_first_is_bad_frame);
    tcase_add_test(hostile, test_trailing_bytes_after_the_map_are_bad_frame);
    tcase_add_test(hostile, test_unknown_frame_type_is_unknown_frame);
    tcase_add_test(hostile, test_bodies_that_are_not_a_map_with_t_are_bad_frame);
    tcase_add_test(hostile, test_integers_are_accepted_in_every_encoding);
    tcase_add_test(hostile, test_negative_integers_are_refused_in_every_encoding);
    tcase_add_test(hostile, test_code_above_32_bits_is_bad_frame);
    tcase_add_test(hostile, test_priority_0_to_9_is_accepted_and_10_refused);
    tcase_add_test(hostile, test_ttl_up_to_10_years_is_accepted_and_more_refused);
    tcase_add_test(hostile, test_every_frame_type_decodes_with_every_key_valid);
    tcase_add_test(hostile, test_a_missing_required_key_is_bad_frame_and_a_missing_optional_one_is_not);
    tcase_add_test(hostile, test_a_wrong_type_for_any_key_is_bad_frame);
    tcase_add_test(hostile, test_why_names_the_field_and_the_problem);

    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_queue_name_of_255_bytes_is_valid_and_256_is_not);
    tcase_add_test(limits, test_queue_name_allows_only_its_alphabet);
    tcase_add_test(limits, test_decoder_leaves_queue_name_rules_to_the_broker);
    tcase_add_test(limits, test_client_name_of_255_bytes_is_accepted_and_256_refused);
    tcase_add_test(limits, test_error_text_of_1024_bytes_is_accepted_and_1025_refused);
    tcase_add_test(limits, test_64_headers_are_accepted_and_65_refused);
    tcase_add_test(limits, test_header_key_of_1_to_255_bytes_is_accepted_and_0_or_256_refused);
    tcase_add_test(limits, test_header_value_of_65535_bytes_is_accepted_and_65536_refused);
    tcase_add_test(limits, test_lists_of_65536_entries_are_accepted_and_65537_or_0_refused);
    tcase_add_test(limits, test_encoder_writes_lists_of_65536_entries_that_decode);
    tcase_add_test(limits, test_split_accepts_exactly_max_frame_and_refuses_one_more);
    tcase_add_test(limits, test_split_refuses_a_4_gib_prefix_without_reading_more);
    tcase_add_test(limits, test_split_waits_for_the_whole_prefix_and_body);

    TCase *buf = tcase_create("buffer and names");
    tcase_add_test(buf, test_buf_consuming_everything_resets_it_to_empty);
    tcase_add_test(buf, test_buf_slides_pending_bytes_down_when_the_consumed_head_is_large);
    tcase_add_test(buf, test_buf_grows_by_doubling_and_keeps_its_bytes);
    tcase_add_test(buf, test_buf_refuses_an_impossible_reservation_and_stays_intact);
    tcase_add_test(buf, test_buf_shrink_keeps_pending_bytes_and_at_most_keep_capacity);
    tcase_add_test(buf, test_code_names_and_fatality_follow_the_error_table);
    tcase_add_test(buf, test_frame_type_names_cover_exactly_the_frame_types);

    TCase *all[] = { trip, hostile, limits, buf };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tcase_add_checked_fixture(all[i], NULL, release_held_body);
        tcase_set_timeout(all[i], 60);
        suite_add_tcase(s, all[i]);
    }

    SRunner *sr = srunner_create(s);
    /* One process for all tests unless CK_FORK says otherwise: under ASan a
     * fork per test costs ~100 ms (LeakSanitizer runs at every exit), and
     * these tests share no state that a failure could leave behind. */
    if (!getenv("CK_FORK"))
        srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
