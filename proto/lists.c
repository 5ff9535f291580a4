/*
 * lists.c - the nested values of a frame: header maps, uint lists, batch
 * items and stats maps. Checked in full while decoding, then read again by
 * the public iterators, which therefore cannot fail on a decoded frame.
 * Knows nothing of the top-level frame map or the frame types.
 */
#include <string.h>

#include "lists.h"

static bool fail(const char **why, const char *reason)
{
    *why = reason;
    return false;
}

const char *proto_read_why(enum mpack_result res, const struct field_whys *w)
{
    switch (res) {
    case MPACK_WRONG_TYPE:
        return w->wrong_type;
    case MPACK_TRUNCATED:
        return w->truncated;
    case MPACK_TOO_DEEP:
        return "value nested deeper than 8 containers";
    case MPACK_INVALID:
        return "invalid msgpack byte 0xc1";
    default:
        return "no error";
    }
}

static bool key_is(struct ferry_bytes key, const char *name)
{
    size_t n = strlen(name);
    return key.len == n && memcmp(key.ptr, name, n) == 0;
}

/* Index of key in names[0..n), or -1. */
static int key_index(struct ferry_bytes key, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        if (key_is(key, names[i]))
            return i;
    }
    return -1;
}

static enum mpack_result read_str_or_bin(struct mpack_reader *r, struct ferry_bytes *s)
{
    enum mpack_result res = mpack_read_str(r, s);
    return res == MPACK_WRONG_TYPE ? mpack_read_bin(r, s) : res;
}

/* ---- header maps ------------------------------------------------------- */

/* One pair of a header map; *why is set on failure. */
static bool read_header_pair(struct mpack_reader *r, const struct field_whys *w,
                             struct ferry_kv *kv, const char **why)
{
    enum mpack_result res = mpack_read_str(r, &kv->key);
    if (res == MPACK_WRONG_TYPE)
        return fail(why, "field 'h': header keys must be str");
    if (res != MPACK_OK)
        return fail(why, proto_read_why(res, w));
    if (kv->key.len == 0 || kv->key.len > FERRY_HEADER_KEY_MAX)
        return fail(why, "field 'h': header keys must be 1..255 bytes");

    res = read_str_or_bin(r, &kv->value);
    if (res == MPACK_WRONG_TYPE)
        return fail(why, "field 'h': header values must be str or bin");
    if (res != MPACK_OK)
        return fail(why, proto_read_why(res, w));
    if (kv->value.len > FERRY_HEADER_VALUE_MAX)
        return fail(why, "field 'h': header value longer than 65535 bytes");
    return true;
}

bool proto_check_headers(struct mpack_reader *r, const struct field_whys *w,
                         struct ferry_bytes *raw, const char **why)
{
    const uint8_t *start = r->pos;
    uint32_t pairs;
    enum mpack_result res = mpack_read_map(r, &pairs);
    if (res != MPACK_OK)
        return fail(why, proto_read_why(res, w));
    if (pairs > FERRY_HEADERS_MAX)
        return fail(why, "field 'h': more than 64 headers");
    for (uint32_t i = 0; i < pairs; i++) {
        struct ferry_kv kv;
        if (!read_header_pair(r, w, &kv, why))
            return false;
    }
    raw->ptr = start;
    raw->len = (size_t)(r->pos - start);
    return true;
}

void ferry_headers_iter_init(struct ferry_iter *it, struct ferry_bytes headers)
{
    struct mpack_reader r;
    mpack_reader_init(&r, headers.ptr, headers.len);
    uint32_t pairs = 0;
    if (headers.len == 0 || mpack_read_map(&r, &pairs) != MPACK_OK)
        pairs = 0;
    it->pos = r.pos;
    it->end = r.end;
    it->left = pairs;
}

bool ferry_headers_next(struct ferry_iter *it, struct ferry_kv *h)
{
    static const struct field_whys whys = { "", "", "" };
    const char *ignored;
    if (it->left == 0)
        return false;
    struct mpack_reader r = { it->pos, it->end };
    if (!read_header_pair(&r, &whys, h, &ignored)) {
        it->left = 0; /* only a map that was never validated gets here */
        return false;
    }
    it->pos = r.pos;
    it->left--;
    return true;
}

/* ---- lists -------------------------------------------------------------- */

/* Reads an array header of at least `min` and at most FERRY_LIST_MAX
 * entries; *list starts right after it. */
static bool read_list_header(struct mpack_reader *r, const struct field_whys *w, uint32_t min,
                             struct ferry_bytes *list, uint32_t *count, const char **why)
{
    enum mpack_result res = mpack_read_array(r, count);
    if (res != MPACK_OK)
        return fail(why, proto_read_why(res, w));
    if (*count < min || *count > FERRY_LIST_MAX)
        return fail(why, w->bad_value);
    list->ptr = r->pos;
    return true;
}

static void end_list(const struct mpack_reader *r, struct ferry_bytes *list)
{
    list->len = (size_t)(r->pos - list->ptr);
}

void ferry_iter_init(struct ferry_iter *it, const struct ferry_frame *f)
{
    struct mpack_reader r;
    mpack_reader_init(&r, f->list.ptr, f->list.len);
    it->pos = r.pos;
    it->end = r.end;
    it->left = f->list_count;
}

void ferry_iter_conns_init(struct ferry_iter *it, const struct ferry_frame *f)
{
    struct mpack_reader r;
    mpack_reader_init(&r, f->conn_list.ptr, f->conn_list.len);
    it->pos = r.pos;
    it->end = r.end;
    it->left = f->conn_list_count;
}

bool proto_check_uints(struct mpack_reader *r, const struct field_whys *w,
                       struct ferry_bytes *list, uint32_t *count, const char **why)
{
    if (!read_list_header(r, w, 1, list, count, why))
        return false;
    for (uint32_t i = 0; i < *count; i++) {
        uint64_t v;
        enum mpack_result res = mpack_read_uint(r, &v);
        if (res != MPACK_OK)
            return fail(why, proto_read_why(res, w));
    }
    end_list(r, list);
    return true;
}

bool ferry_iter_uint(struct ferry_iter *it, uint64_t *v)
{
    if (it->left == 0)
        return false;
    struct mpack_reader r = { it->pos, it->end };
    if (mpack_read_uint(&r, v) != MPACK_OK) {
        it->left = 0;
        return false;
    }
    it->pos = r.pos;
    it->left--;
    return true;
}

/* ---- batch items -------------------------------------------------------- */

static const struct field_whys item_headers_whys = {
    "field 'm': item 'h' must be a map", "field 'm': truncated", "",
};

/* An item's "prio": a uint 0..FERRY_PRIORITY_MAX. */
static bool read_item_priority(struct mpack_reader *r, const struct field_whys *w,
                               struct ferry_item *item, const char **why)
{
    if (item->has_priority)
        return fail(why, "field 'm': duplicate 'prio' in an item");
    uint64_t v;
    enum mpack_result res = mpack_read_uint(r, &v);
    if (res == MPACK_WRONG_TYPE)
        return fail(why, "field 'm': item 'prio' must be uint");
    if (res != MPACK_OK)
        return fail(why, proto_read_why(res, w));
    if (v > FERRY_PRIORITY_MAX)
        return fail(why, "field 'm': item 'prio' must be 0..9");
    item->priority = (uint8_t)v;
    item->has_priority = true;
    return true;
}

/* An item's "ttl": a uint 0..FERRY_TTL_MAX_MS. */
static bool read_item_ttl(struct mpack_reader *r, const struct field_whys *w,
                          struct ferry_item *item, bool *seen, const char **why)
{
    if (*seen)
        return fail(why, "field 'm': duplicate 'ttl' in an item");
    *seen = true;
    enum mpack_result res = mpack_read_uint(r, &item->ttl_ms);
    if (res == MPACK_WRONG_TYPE)
        return fail(why, "field 'm': item 'ttl' must be uint");
    if (res != MPACK_OK)
        return fail(why, proto_read_why(res, w));
    if (item->ttl_ms > FERRY_TTL_MAX_MS)
        return fail(why, "field 'm': item 'ttl' above 10 years (315360000000 ms)");
    return true;
}

/* The map form of an item: {"p": bin, "h"?: headers, "prio"?: uint,
 * "ttl"?: uint}, other keys skipped. */
static bool read_item_map(struct mpack_reader *r, uint32_t pairs, const struct field_whys *w,
                          struct ferry_item *item, const char **why)
{
    bool has_payload = false, has_headers = false, has_ttl = false;
    for (uint32_t i = 0; i < pairs; i++) {
        struct ferry_bytes key;
        enum mpack_result res = mpack_read_str(r, &key);
        if (res == MPACK_WRONG_TYPE)
            return fail(why, "field 'm': item keys must be str");
        if (res != MPACK_OK)
            return fail(why, proto_read_why(res, w));

        if (key_is(key, "p")) {
            if (has_payload)
                return fail(why, "field 'm': duplicate 'p' in an item");
            has_payload = true;
            res = mpack_read_bin(r, &item->payload);
            if (res == MPACK_WRONG_TYPE)
                return fail(why, "field 'm': item 'p' must be bin");
        } else if (key_is(key, "h")) {
            if (has_headers)
                return fail(why, "field 'm': duplicate 'h' in an item");
            has_headers = true;
            if (!proto_check_headers(r, &item_headers_whys, &item->headers, why))
                return false;
        } else if (key_is(key, "prio")) {
            if (!read_item_priority(r, w, item, why))
                return false;
        } else if (key_is(key, "ttl")) {
            if (!read_item_ttl(r, w, item, &has_ttl, why))
                return false;
        } else {
            res = mpack_skip(r);
        }
        if (res != MPACK_OK)
            return fail(why, proto_read_why(res, w));
    }
    if (!has_payload)
        return fail(why, "field 'm': an item map lacks 'p'");
    return true;
}

/* One item: a bin (the payload alone) or the map form. */
static bool read_item(struct mpack_reader *r, const struct field_whys *w,
                      struct ferry_item *item, const char **why)
{
    *item = (struct ferry_item){ .payload = { NULL, 0 } };
    enum mpack_result res = mpack_read_bin(r, &item->payload);
    if (res == MPACK_OK)
        return true;
    if (res != MPACK_WRONG_TYPE)
        return fail(why, proto_read_why(res, w));

    uint32_t pairs;
    res = mpack_read_map(r, &pairs);
    if (res == MPACK_WRONG_TYPE)
        return fail(why, "field 'm': an item must be bin or map");
    if (res != MPACK_OK)
        return fail(why, proto_read_why(res, w));
    return read_item_map(r, pairs, w, item, why);
}

bool proto_check_items(struct mpack_reader *r, const struct field_whys *w,
                       struct ferry_bytes *list, uint32_t *count, const char **why)
{
    if (!read_list_header(r, w, 1, list, count, why))
        return false;
    for (uint32_t i = 0; i < *count; i++) {
        struct ferry_item item;
        if (!read_item(r, w, &item, why))
            return false;
    }
    end_list(r, list);
    return true;
}

bool ferry_iter_item(struct ferry_iter *it, struct ferry_item *item)
{
    static const struct field_whys whys = { "", "", "" };
    const char *ignored;
    if (it->left == 0)
        return false;
    struct mpack_reader r = { it->pos, it->end };
    if (!read_item(&r, &whys, item, &ignored)) {
        it->left = 0;
        return false;
    }
    it->pos = r.pos;
    it->left--;
    return true;
}

/* ---- stats maps --------------------------------------------------------- */

/* How one kind of stats map is read: its keys, the reader of one value
 * (key is an index into keys), and the reasons given for a bad map. */
struct keyed_map {
    const char *const *keys;
    int key_count;
    enum mpack_result (*read_value)(struct mpack_reader *r, int key, void *out);
    const char *keys_not_str;
    const char *duplicate;
    const char *wrong_type;
};

/* Reads a map of m's keys into out: unknown keys are skipped, a known one
 * twice is refused. *seen gets bit k for each key k that was there. */
static bool read_keyed_map(struct mpack_reader *r, const struct field_whys *w,
                           const struct keyed_map *m, void *out, unsigned *seen,
                           const char **why)
{
    uint32_t pairs;
    enum mpack_result res = mpack_read_map(r, &pairs);
    if (res != MPACK_OK)
        return fail(why, proto_read_why(res, w));
    *seen = 0;
    for (uint32_t i = 0; i < pairs; i++) {
        struct ferry_bytes name;
        res = mpack_read_str(r, &name);
        if (res == MPACK_WRONG_TYPE)
            return fail(why, m->keys_not_str);
        if (res != MPACK_OK)
            return fail(why, proto_read_why(res, w));

        int key = key_index(name, m->keys, m->key_count);
        if (key < 0) {
            res = mpack_skip(r);
        } else if (*seen & (1u << key)) {
            return fail(why, m->duplicate);
        } else {
            *seen |= 1u << key;
            res = m->read_value(r, key, out);
            if (res == MPACK_WRONG_TYPE)
                return fail(why, m->wrong_type);
        }
        if (res != MPACK_OK)
            return fail(why, proto_read_why(res, w));
    }
    return true;
}

/* Reads one entry of a list into out (a struct of the list's kind). */
typedef bool read_entry_fn(struct mpack_reader *r, const struct field_whys *w, void *out,
                           const char **why);

/* An array of 0..65536 entries, each valid; `one` is room for an entry. */
static bool check_list_of(struct mpack_reader *r, const struct field_whys *w,
                          read_entry_fn *read_entry, void *one, struct ferry_bytes *list,
                          uint32_t *count, const char **why)
{
    if (!read_list_header(r, w, 0, list, count, why))
        return false;
    for (uint32_t i = 0; i < *count; i++) {
        if (!read_entry(r, w, one, why))
            return false;
    }
    end_list(r, list);
    return true;
}

/* The next entry of a validated list. */
static bool iter_next(struct ferry_iter *it, read_entry_fn *read_entry, void *out)
{
    static const struct field_whys whys = { "", "", "" };
    const char *ignored;
    if (it->left == 0)
        return false;
    struct mpack_reader r = { it->pos, it->end };
    if (!read_entry(&r, &whys, out, &ignored)) {
        it->left = 0;
        return false;
    }
    it->pos = r.pos;
    it->left--;
    return true;
}

enum queue_stat_key {
    QS_Q, QS_DEPTH, QS_INFLIGHT, QS_CONSUMERS, QS_PUBLISHED, QS_DELIVERED,
    QS_ACKED, QS_REDELIVERED, QS_DROPPED, QS_BYTES, QS_ENDED, QS_DEPTH_PRIO, QS_DELAYED,
    QS_EXPIRED, QS_BINDINGS,
    QS_MAX_LENGTH, QS_MAX_BYTES, QS_OVERFLOW, QS_DROPPED_OLDEST, QS_REJECTED, QS_BLOCKED,
    QS_DEAD_LETTERED, QS_TIMEOUTS, QS_KEY_COUNT,
};

static const char *const queue_stat_keys[QS_KEY_COUNT] = {
    "q", "depth", "inflight", "consumers", "published", "delivered",
    "acked", "redelivered", "dropped", "bytes", "ended", "depth_prio", "delayed",
    "expired", "bindings",
    "max_length", "max_bytes", "overflow", "dropped_oldest", "rejected", "blocked",
    "deadletter", "timeouts",
};

/* "depth_prio": an array of FERRY_PRIORITY_LEVELS uints, level 0 first. */
static enum mpack_result read_depth_by_priority(struct mpack_reader *r, uint64_t *depths)
{
    uint32_t n;
    enum mpack_result res = mpack_read_array(r, &n);
    if (res != MPACK_OK)
        return res;
    if (n != FERRY_PRIORITY_LEVELS)
        return MPACK_WRONG_TYPE;
    for (uint32_t i = 0; i < n && res == MPACK_OK; i++)
        res = mpack_read_uint(r, &depths[i]);
    return res;
}

/* One value of a queue stats map, stored into *out (a ferry_queue_stats). */
static enum mpack_result read_queue_stat(struct mpack_reader *r, int key, void *out)
{
    struct ferry_queue_stats *qs = out;
    uint64_t *const counters[QS_KEY_COUNT] = {
        [QS_DEPTH] = &qs->depth, [QS_INFLIGHT] = &qs->inflight,
        [QS_CONSUMERS] = &qs->consumers, [QS_PUBLISHED] = &qs->published,
        [QS_DELIVERED] = &qs->delivered, [QS_ACKED] = &qs->acked,
        [QS_REDELIVERED] = &qs->redelivered, [QS_DROPPED] = &qs->dropped,
        [QS_BYTES] = &qs->bytes, [QS_DELAYED] = &qs->delayed, [QS_EXPIRED] = &qs->expired,
        [QS_BINDINGS] = &qs->bindings,
        [QS_MAX_LENGTH] = &qs->max_length, [QS_MAX_BYTES] = &qs->max_bytes,
        [QS_DROPPED_OLDEST] = &qs->dropped_oldest, [QS_REJECTED] = &qs->rejected,
        [QS_BLOCKED] = &qs->blocked,
        [QS_DEAD_LETTERED] = &qs->dead_lettered, [QS_TIMEOUTS] = &qs->timeouts,
    };
    if (key == QS_Q)
        return mpack_read_str(r, &qs->name);
    if (key == QS_OVERFLOW)
        return mpack_read_str(r, &qs->overflow);
    if (key == QS_ENDED)
        return mpack_read_bool(r, &qs->ended);
    if (key == QS_DEPTH_PRIO)
        return read_depth_by_priority(r, qs->depth_by_priority);
    return mpack_read_uint(r, counters[key]);
}

static const struct keyed_map queue_map = {
    queue_stat_keys, QS_KEY_COUNT, read_queue_stat,
    "field 'queues': keys must be str",
    "field 'queues': duplicate key in a queue",
    "field 'queues': 'q' and 'overflow' must be str, 'ended' bool, 'depth_prio' an "
    "array of 10 uints, the rest uint",
};

static bool read_queue_stats(struct mpack_reader *r, const struct field_whys *w, void *out,
                             const char **why)
{
    struct ferry_queue_stats *qs = out;
    *qs = (struct ferry_queue_stats){ .name = { NULL, 0 } };
    unsigned seen;
    if (!read_keyed_map(r, w, &queue_map, qs, &seen, why))
        return false;
    /* The keys after "ended" came later: absent, they are 0, so that a
     * newer reader takes an older server's stats. */
    const unsigned required = (1u << QS_DEPTH_PRIO) - 1;
    if ((seen & required) != required)
        return fail(why, "field 'queues': a queue lacks a key");
    return true;
}

bool proto_check_queue_stats(struct mpack_reader *r, const struct field_whys *w,
                             struct ferry_bytes *list, uint32_t *count, const char **why)
{
    struct ferry_queue_stats one;
    return check_list_of(r, w, read_queue_stats, &one, list, count, why);
}

bool ferry_iter_stats(struct ferry_iter *it, struct ferry_queue_stats *qs)
{
    return iter_next(it, read_queue_stats, qs);
}

enum conn_stat_key {
    CS_ID, CS_PEER, CS_NAME, CS_OUT, CS_THROTTLED, CS_SUBS, CS_INFLIGHT, CS_AGE_MS,
    CS_IDLE_MS, CS_KEY_COUNT,
};

static const char *const conn_stat_keys[CS_KEY_COUNT] = {
    "id", "peer", "name", "out", "throttled", "subs", "inflight", "age_ms", "idle_ms",
};

/* One value of a connection stats map, stored into *out (a ferry_conn_stats). */
static enum mpack_result read_conn_stat(struct mpack_reader *r, int key, void *out)
{
    struct ferry_conn_stats *cs = out;
    uint64_t *const counters[CS_KEY_COUNT] = {
        [CS_ID] = &cs->id, [CS_OUT] = &cs->out, [CS_SUBS] = &cs->subs,
        [CS_INFLIGHT] = &cs->inflight, [CS_AGE_MS] = &cs->age_ms, [CS_IDLE_MS] = &cs->idle_ms,
    };
    switch (key) {
    case CS_PEER:
        return mpack_read_str(r, &cs->peer);
    case CS_NAME:
        return mpack_read_str(r, &cs->name);
    case CS_THROTTLED:
        return mpack_read_bool(r, &cs->throttled);
    default:
        return mpack_read_uint(r, counters[key]);
    }
}

static const struct keyed_map conn_map = {
    conn_stat_keys, CS_KEY_COUNT, read_conn_stat,
    "field 'conns': keys must be str",
    "field 'conns': duplicate key in a connection",
    "field 'conns': 'peer' and 'name' must be str, 'throttled' bool, the rest uint",
};

static bool read_conn_stats(struct mpack_reader *r, const struct field_whys *w, void *out,
                            const char **why)
{
    struct ferry_conn_stats *cs = out;
    *cs = (struct ferry_conn_stats){ .id = 0 };
    unsigned seen;
    if (!read_keyed_map(r, w, &conn_map, cs, &seen, why))
        return false;
    if (seen != (1u << CS_KEY_COUNT) - 1)
        return fail(why, "field 'conns': a connection lacks a key");
    if (cs->peer.len > FERRY_PEER_MAX || cs->name.len > FERRY_CLIENT_NAME_MAX)
        return fail(why, "field 'conns': 'peer' or 'name' too long");
    return true;
}

bool proto_check_conn_stats(struct mpack_reader *r, const struct field_whys *w,
                            struct ferry_bytes *list, uint32_t *count, const char **why)
{
    struct ferry_conn_stats one;
    return check_list_of(r, w, read_conn_stats, &one, list, count, why);
}

bool ferry_iter_conn(struct ferry_iter *it, struct ferry_conn_stats *cs)
{
    return iter_next(it, read_conn_stats, cs);
}

enum server_stat_key {
    SS_CONNS, SS_QUEUES, SS_UPTIME_MS, SS_MESSAGES, SS_BYTES, SS_TOPIC_PUBS, SS_UNROUTABLE,
    SS_COPIES, SS_SKIPPED, SS_BINDINGS, SS_MEMORY, SS_MAX_MEMORY, SS_PARKED, SS_DUPS,
    SS_DUP_EVICTED, SS_KEY_COUNT,
};

static const char *const server_stat_keys[SS_KEY_COUNT] = {
    "conns", "queues", "uptime_ms", "messages", "bytes", "topic_pubs", "unroutable",
    "copies", "skipped", "bindings", "memory", "max_memory", "parked", "dups", "dup_evicted",
};

/* One value of the server stats map, stored into *out (a ferry_server_stats). */
static enum mpack_result read_server_stat(struct mpack_reader *r, int key, void *out)
{
    struct ferry_server_stats *s = out;
    uint64_t *const counters[SS_KEY_COUNT] = {
        &s->connections, &s->queues, &s->uptime_ms, &s->messages, &s->bytes,
        &s->topic_publishes, &s->unroutable, &s->copies, &s->skipped, &s->bindings,
        &s->memory, &s->max_memory, &s->parked, &s->dups, &s->dup_evicted,
    };
    return mpack_read_uint(r, counters[key]);
}

static const struct keyed_map server_map = {
    server_stat_keys, SS_KEY_COUNT, read_server_stat,
    "field 'server': keys must be str",
    "field 'server': duplicate key",
    "field 'server': values must be uint",
};

bool proto_check_server_stats(struct mpack_reader *r, const struct field_whys *w,
                              struct ferry_server_stats *out, const char **why)
{
    unsigned seen;
    if (!read_keyed_map(r, w, &server_map, out, &seen, why))
        return false;
    /* The keys after "bytes" (topics, memory) came later: a map without
     * them is read as zeros. */
    const unsigned required = (1u << SS_TOPIC_PUBS) - 1;
    if ((seen & required) != required)
        return fail(why, "field 'server': lacks a key");
    return true;
}

/* ---- patterns (BINDINGS reply) ----------------------------------------- */

static bool read_pattern(struct mpack_reader *r, const struct field_whys *w, void *out,
                         const char **why)
{
    struct ferry_bytes *s = out;
    enum mpack_result res = mpack_read_str(r, s);
    if (res != MPACK_OK)
        return fail(why, proto_read_why(res, w));
    if (s->len == 0 || s->len > FERRY_TOPIC_MAX)
        return fail(why, "field 'patterns': a pattern of 0 or more than 255 bytes");
    return true;
}

bool proto_check_patterns(struct mpack_reader *r, const struct field_whys *w,
                          struct ferry_bytes *list, uint32_t *count, const char **why)
{
    struct ferry_bytes one;
    return check_list_of(r, w, read_pattern, &one, list, count, why);
}

void ferry_iter_patterns_init(struct ferry_iter *it, const struct ferry_frame *f)
{
    struct mpack_reader r;
    mpack_reader_init(&r, f->pattern_list.ptr, f->pattern_list.len);
    it->pos = r.pos;
    it->end = r.end;
    it->left = f->pattern_list_count;
}

bool ferry_iter_str(struct ferry_iter *it, struct ferry_bytes *s)
{
    return iter_next(it, read_pattern, s);
}
