/*
 * frame.c - splits a byte stream into frames and decodes a frame body into
 * struct ferry_frame: the top-level map, its keys, which keys each frame
 * type takes and requires. Nested values are checked by lists.c. Knows
 * nothing of what a frame means to the broker or the client.
 */
#include <string.h>

#include "lists.h"
#include "mpack.h"

enum ferry_split ferry_frame_split(const uint8_t *data, size_t len, size_t max_frame,
                                   struct ferry_bytes *body, size_t *consumed)
{
    if (len < FERRY_FRAME_PREFIX)
        return FERRY_SPLIT_INCOMPLETE;
    uint32_t body_len = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16
                      | (uint32_t)data[2] << 8 | (uint32_t)data[3];
    /* Judged on the prefix alone, so a peer cannot make us buffer a body
     * we will refuse anyway. */
    if (body_len > max_frame)
        return FERRY_SPLIT_TOO_LARGE;
    if (len - FERRY_FRAME_PREFIX < body_len)
        return FERRY_SPLIT_INCOMPLETE;
    body->ptr = data + FERRY_FRAME_PREFIX;
    body->len = body_len;
    *consumed = FERRY_FRAME_PREFIX + (size_t)body_len;
    return FERRY_SPLIT_FRAME;
}

/* ---- the keys of the top-level map -------------------------------------- */

/* Every key any frame type knows. Ordered roughly by how often they are
 * seen on the hot path, since lookup walks the table in this order. */
enum field_id {
    FIELD_T, FIELD_Q, FIELD_P, FIELD_H, FIELD_ID, FIELD_TAGS, FIELD_SUB,
    FIELD_TAG, FIELD_N, FIELD_RID, FIELD_IDS, FIELD_M, FIELD_REQUEUE,
    FIELD_CREDIT, FIELD_WAIT, FIELD_CODE, FIELD_MSG, FIELD_FATAL,
    FIELD_EMPTY, FIELD_SERVER, FIELD_QUEUES, FIELD_V, FIELD_NAME, FIELD_AUTH,
    FIELD_MAX_FRAME, FIELD_HB, FIELD_TOPIC, FIELD_PATTERN, FIELD_PRIO, FIELD_DELAY, FIELD_AT,
    FIELD_BEFORE, FIELD_NEXT, FIELD_CONNS, FIELD_TTL, FIELD_PRODUCER, FIELD_DEADLINE, FIELD_TO,
    FIELD_PATTERNS, FIELD_COUNT,
};

enum field_kind {
    KIND_UINT,
    KIND_BOOL,
    KIND_STR,
    KIND_BIN,
    KIND_HEADERS,      /* lists.c: header map, kept raw */
    KIND_UINTS,        /* lists.c: array of uint */
    KIND_ITEMS,        /* lists.c: PUBLISH_BATCH items */
    KIND_QUEUE_STATS,  /* lists.c: STATS reply, one map per queue */
    KIND_CONN_STATS,   /* lists.c: CONNS reply, one map per connection */
    KIND_PATTERNS,     /* lists.c: BINDINGS reply, an array of str */
    KIND_SERVER_STATS, /* lists.c: STATS reply, server map */
    KIND_IGNORED_MAP,  /* any map, skipped (HELLO auth, reserved) */
};

struct field_desc {
    const char *key;
    size_t key_len;
    enum field_kind kind;
    struct field_whys whys;
    const char *duplicate;
    const char *missing;
};

/* Builds the static reasons for one key from its name, what type it
 * expects, and how its limit is put. */
#define FIELD(key, kind, expected, limit)                                        \
    { key, sizeof key - 1, kind,                                                 \
      { "field '" key "': expected " expected, "field '" key "': truncated",     \
        "field '" key "': " limit },                                             \
      "field '" key "': duplicate key", "field '" key "': missing" }

static const struct field_desc fields[FIELD_COUNT] = {
    [FIELD_T] = FIELD("t", KIND_UINT, "uint", ""),
    [FIELD_Q] = FIELD("q", KIND_STR, "str", ""),
    [FIELD_P] = FIELD("p", KIND_BIN, "bin", ""),
    [FIELD_H] = FIELD("h", KIND_HEADERS, "map", ""),
    [FIELD_ID] = FIELD("id", KIND_UINT, "uint", ""),
    [FIELD_TAGS] = FIELD("tags", KIND_UINTS, "array of uint", "must have 1..65536 entries"),
    [FIELD_SUB] = FIELD("sub", KIND_UINT, "uint", ""),
    [FIELD_TAG] = FIELD("tag", KIND_UINT, "uint", ""),
    [FIELD_N] = FIELD("n", KIND_UINT, "uint", ""),
    [FIELD_RID] = FIELD("rid", KIND_UINT, "uint", ""),
    [FIELD_IDS] = FIELD("ids", KIND_UINTS, "array of uint", "must have 1..65536 entries"),
    [FIELD_M] = FIELD("m", KIND_ITEMS, "array", "must have 1..65536 items"),
    [FIELD_REQUEUE] = FIELD("requeue", KIND_BOOL, "bool", ""),
    [FIELD_CREDIT] = FIELD("credit", KIND_UINT, "uint", ""),
    [FIELD_WAIT] = FIELD("wait", KIND_UINT, "uint", ""),
    [FIELD_CODE] = FIELD("code", KIND_UINT, "uint", "above 2^32-1"),
    [FIELD_MSG] = FIELD("msg", KIND_STR, "str", "longer than 1024 bytes"),
    [FIELD_FATAL] = FIELD("fatal", KIND_BOOL, "bool", ""),
    [FIELD_EMPTY] = FIELD("empty", KIND_BOOL, "bool", ""),
    [FIELD_SERVER] = FIELD("server", KIND_SERVER_STATS, "map", ""),
    [FIELD_QUEUES] = FIELD("queues", KIND_QUEUE_STATS, "array of maps", "more than 65536 queues"),
    [FIELD_V] = FIELD("v", KIND_UINT, "uint", ""),
    [FIELD_NAME] = FIELD("name", KIND_STR, "str", "longer than 255 bytes"),
    [FIELD_AUTH] = FIELD("auth", KIND_IGNORED_MAP, "map", ""),
    [FIELD_MAX_FRAME] = FIELD("max_frame", KIND_UINT, "uint", ""),
    [FIELD_HB] = FIELD("hb", KIND_UINT, "uint", ""),
    [FIELD_TOPIC] = FIELD("topic", KIND_STR, "str", ""),
    [FIELD_PATTERN] = FIELD("pattern", KIND_STR, "str", ""),
    [FIELD_PRIO] = FIELD("prio", KIND_UINT, "uint", "must be 0..9"),
    [FIELD_DELAY] = FIELD("delay", KIND_UINT, "uint", ""),
    [FIELD_AT] = FIELD("at", KIND_UINT, "uint", ""),
    [FIELD_BEFORE] = FIELD("before", KIND_UINT, "uint", ""),
    [FIELD_NEXT] = FIELD("next", KIND_UINT, "uint", ""),
    [FIELD_CONNS] = FIELD("conns", KIND_CONN_STATS, "array of maps", "more than 65536 connections"),
    [FIELD_TTL] = FIELD("ttl", KIND_UINT, "uint", "above 10 years (315360000000 ms)"),
    [FIELD_PRODUCER] = FIELD("producer", KIND_UINT, "uint", ""),
    [FIELD_DEADLINE] = FIELD("deadline", KIND_UINT, "uint", ""),
    [FIELD_TO] = FIELD("to", KIND_STR, "str", ""),
    [FIELD_PATTERNS] = FIELD("patterns", KIND_PATTERNS, "array of str", "more than 65536 patterns"),
};

/* The field a key names, or FIELD_COUNT for a key no frame type knows. */
static enum field_id field_lookup(struct ferry_bytes key)
{
    for (int id = 0; id < FIELD_COUNT; id++) {
        const struct field_desc *fd = &fields[id];
        /* Length and first byte first: most keys are one byte long. */
        if (fd->key_len == key.len && fd->key[0] == (char)key.ptr[0]
            && (key.len == 1 || memcmp(fd->key, key.ptr, key.len) == 0))
            return (enum field_id)id;
    }
    return FIELD_COUNT;
}

/* ---- which keys each frame type takes (PROTOCOL.md, "Frame types") ------ */

#define BIT(field) (UINT64_C(1) << (field))

struct frame_spec {
    uint64_t allowed;  /* keys read into the frame; other keys are skipped */
    uint64_t required; /* keys that must be present */
};

static const struct frame_spec specs[] = {
    [FERRY_F_HELLO] = { BIT(FIELD_V) | BIT(FIELD_NAME) | BIT(FIELD_AUTH) | BIT(FIELD_PRODUCER),
                        BIT(FIELD_V) },
    [FERRY_F_WELCOME] = { BIT(FIELD_V) | BIT(FIELD_NAME) | BIT(FIELD_MAX_FRAME) | BIT(FIELD_HB),
                          BIT(FIELD_V) | BIT(FIELD_NAME) | BIT(FIELD_MAX_FRAME) | BIT(FIELD_HB) },
    [FERRY_F_ERROR] = { BIT(FIELD_CODE) | BIT(FIELD_MSG) | BIT(FIELD_FATAL) | BIT(FIELD_RID) | BIT(FIELD_ID),
                        BIT(FIELD_CODE) | BIT(FIELD_MSG) | BIT(FIELD_FATAL) },
    [FERRY_F_PING] = { BIT(FIELD_RID), 0 },
    [FERRY_F_PONG] = { BIT(FIELD_RID), 0 },
    [FERRY_F_OK] = { BIT(FIELD_RID) | BIT(FIELD_N) | BIT(FIELD_EMPTY) | BIT(FIELD_SERVER) | BIT(FIELD_QUEUES) | BIT(FIELD_Q)
                     | BIT(FIELD_CONNS) | BIT(FIELD_NEXT) | BIT(FIELD_M) | BIT(FIELD_PATTERNS),
                     BIT(FIELD_RID) },
    [FERRY_F_PUBLISH] = { BIT(FIELD_Q) | BIT(FIELD_P) | BIT(FIELD_H) | BIT(FIELD_ID) | BIT(FIELD_PRIO)
                          | BIT(FIELD_DELAY) | BIT(FIELD_AT) | BIT(FIELD_TTL),
                          BIT(FIELD_Q) | BIT(FIELD_P) },
    [FERRY_F_PUBLISH_BATCH] = { BIT(FIELD_Q) | BIT(FIELD_M) | BIT(FIELD_ID), BIT(FIELD_Q) | BIT(FIELD_M) },
    [FERRY_F_CONFIRM] = { BIT(FIELD_IDS), BIT(FIELD_IDS) },
    [FERRY_F_CONSUME] = { BIT(FIELD_RID) | BIT(FIELD_Q) | BIT(FIELD_SUB) | BIT(FIELD_CREDIT)
                          | BIT(FIELD_DEADLINE),
                          BIT(FIELD_RID) | BIT(FIELD_Q) | BIT(FIELD_SUB) | BIT(FIELD_CREDIT) },
    [FERRY_F_CREDIT] = { BIT(FIELD_SUB) | BIT(FIELD_N), BIT(FIELD_SUB) | BIT(FIELD_N) },
    [FERRY_F_DELIVER] = { BIT(FIELD_SUB) | BIT(FIELD_RID) | BIT(FIELD_TAG) | BIT(FIELD_N) | BIT(FIELD_H) | BIT(FIELD_P),
                          BIT(FIELD_TAG) | BIT(FIELD_N) | BIT(FIELD_P) },
    [FERRY_F_ACK] = { BIT(FIELD_TAGS), BIT(FIELD_TAGS) },
    [FERRY_F_NACK] = { BIT(FIELD_TAGS) | BIT(FIELD_REQUEUE) | BIT(FIELD_DELAY), BIT(FIELD_TAGS) },
    [FERRY_F_TOUCH] = { BIT(FIELD_TAGS) | BIT(FIELD_DEADLINE), BIT(FIELD_TAGS) },
    [FERRY_F_PEEK] = { BIT(FIELD_RID) | BIT(FIELD_Q) | BIT(FIELD_N), BIT(FIELD_RID) | BIT(FIELD_Q) },
    [FERRY_F_MOVE] = { BIT(FIELD_RID) | BIT(FIELD_Q) | BIT(FIELD_TO) | BIT(FIELD_N),
                       BIT(FIELD_RID) | BIT(FIELD_Q) },
    [FERRY_F_CANCEL] = { BIT(FIELD_RID) | BIT(FIELD_SUB), BIT(FIELD_RID) | BIT(FIELD_SUB) },
    [FERRY_F_GET] = { BIT(FIELD_RID) | BIT(FIELD_Q) | BIT(FIELD_WAIT), BIT(FIELD_RID) | BIT(FIELD_Q) },
    [FERRY_F_EOS] = { BIT(FIELD_SUB) | BIT(FIELD_Q), BIT(FIELD_SUB) | BIT(FIELD_Q) },
    [FERRY_F_DECLARE] = { BIT(FIELD_RID) | BIT(FIELD_Q), BIT(FIELD_RID) | BIT(FIELD_Q) },
    [FERRY_F_DELETE] = { BIT(FIELD_RID) | BIT(FIELD_Q), BIT(FIELD_RID) | BIT(FIELD_Q) },
    [FERRY_F_PURGE] = { BIT(FIELD_RID) | BIT(FIELD_Q), BIT(FIELD_RID) | BIT(FIELD_Q) },
    [FERRY_F_STATS] = { BIT(FIELD_RID) | BIT(FIELD_Q), BIT(FIELD_RID) },
    [FERRY_F_END] = { BIT(FIELD_RID) | BIT(FIELD_Q), BIT(FIELD_RID) | BIT(FIELD_Q) },
    [FERRY_F_REOPEN] = { BIT(FIELD_RID) | BIT(FIELD_Q), BIT(FIELD_RID) | BIT(FIELD_Q) },
    [FERRY_F_JOIN] = { BIT(FIELD_RID) | BIT(FIELD_Q), BIT(FIELD_RID) | BIT(FIELD_Q) },
    [FERRY_F_CONNS] = { BIT(FIELD_RID) | BIT(FIELD_BEFORE), BIT(FIELD_RID) },
    [FERRY_F_KILL] = { BIT(FIELD_RID) | BIT(FIELD_ID), BIT(FIELD_RID) | BIT(FIELD_ID) },
    [FERRY_F_BIND] = { BIT(FIELD_RID) | BIT(FIELD_Q) | BIT(FIELD_PATTERN),
                       BIT(FIELD_RID) | BIT(FIELD_Q) | BIT(FIELD_PATTERN) },
    [FERRY_F_UNBIND] = { BIT(FIELD_RID) | BIT(FIELD_Q) | BIT(FIELD_PATTERN),
                         BIT(FIELD_RID) | BIT(FIELD_Q) | BIT(FIELD_PATTERN) },
    [FERRY_F_PUBLISH_TOPIC] = { BIT(FIELD_TOPIC) | BIT(FIELD_P) | BIT(FIELD_H) | BIT(FIELD_ID) | BIT(FIELD_PRIO)
                                | BIT(FIELD_DELAY) | BIT(FIELD_AT) | BIT(FIELD_TTL),
                                BIT(FIELD_TOPIC) | BIT(FIELD_P) },
    [FERRY_F_DECLARE_TEMP] = { BIT(FIELD_RID) | BIT(FIELD_Q), BIT(FIELD_RID) },
    [FERRY_F_BINDINGS] = { BIT(FIELD_RID) | BIT(FIELD_Q), BIT(FIELD_RID) | BIT(FIELD_Q) },
};

/* The spec of frame type t, or NULL if t is not a frame type. */
static const struct frame_spec *spec_of(uint64_t t)
{
    if (t >= sizeof specs / sizeof specs[0] || specs[t].allowed == 0)
        return NULL;
    return &specs[t];
}

/* ---- storing one value --------------------------------------------------- */

static enum ferry_code bad(const char **why, const char *reason)
{
    *why = reason;
    return FERRY_CODE_BAD_FRAME;
}

/* "n" means a different thing in each frame type that takes it. */
static uint64_t *n_target(struct ferry_frame *f)
{
    switch (f->type) {
    case FERRY_F_CREDIT: return &f->credit;
    case FERRY_F_DELIVER: return &f->attempt;
    default: return &f->count; /* OK: messages purged */
    }
}

static enum ferry_code store_uint(struct ferry_frame *f, enum field_id id, uint64_t v, const char **why)
{
    switch (id) {
    case FIELD_RID: f->rid = v; break;
    case FIELD_ID: f->id = v; f->has_id = true; break;
    case FIELD_SUB: f->sub = v; break;
    case FIELD_TAG: f->tag = v; break;
    case FIELD_N: *n_target(f) = v; break;
    case FIELD_CREDIT: f->credit = v; break;
    case FIELD_WAIT: f->wait_ms = v; break;
    case FIELD_V: f->version = v; break;
    case FIELD_MAX_FRAME: f->max_frame = v; break;
    case FIELD_HB: f->heartbeat_ms = v; break;
    case FIELD_PRIO:
        if (v > FERRY_PRIORITY_MAX)
            return bad(why, fields[id].whys.bad_value);
        f->priority = (uint8_t)v;
        f->has_priority = true;
        break;
    case FIELD_DELAY: f->delay_ms = v; break;
    case FIELD_AT: f->deliver_at = v; break;
    case FIELD_BEFORE: f->before = v; break;
    case FIELD_NEXT: f->next = v; break;
    case FIELD_TTL:
        if (v > FERRY_TTL_MAX_MS)
            return bad(why, fields[id].whys.bad_value);
        f->ttl_ms = v;
        break;
    case FIELD_PRODUCER: f->producer = v; break;
    case FIELD_DEADLINE: f->deadline_ms = v; break;
    case FIELD_CODE:
        if (v > UINT32_MAX)
            return bad(why, fields[id].whys.bad_value);
        f->code = (uint32_t)v;
        break;
    default: break;
    }
    return FERRY_CODE_OK;
}

static void store_bool(struct ferry_frame *f, enum field_id id, bool v)
{
    switch (id) {
    case FIELD_FATAL: f->fatal = v; break;
    case FIELD_REQUEUE: f->requeue = v; break;
    case FIELD_EMPTY: f->empty = v; break;
    default: break;
    }
}

static enum ferry_code store_str(struct ferry_frame *f, enum field_id id, struct ferry_bytes s,
                                 const char **why)
{
    switch (id) {
    case FIELD_Q:
        /* Name rules are not checked here: a bad name is a non-fatal
         * BAD_NAME from the broker, not a malformed frame. */
        f->queue = s;
        break;
    case FIELD_TOPIC:
    case FIELD_PATTERN:
        /* Like queue names: checked by the broker (BAD_TOPIC, not fatal). */
        f->topic = s;
        break;
    case FIELD_TO:
        f->to = s; /* a queue name: checked by the broker */
        break;
    case FIELD_NAME:
        if (f->type == FERRY_F_HELLO && s.len > FERRY_CLIENT_NAME_MAX)
            return bad(why, fields[id].whys.bad_value);
        f->name = s;
        break;
    case FIELD_MSG:
        if (s.len > FERRY_ERROR_TEXT_MAX)
            return bad(why, fields[id].whys.bad_value);
        f->text = s;
        break;
    default: break;
    }
    return FERRY_CODE_OK;
}

/* Reads a scalar value (uint, bool, str, bin) of field id into f. */
static enum ferry_code decode_scalar(struct mpack_reader *r, struct ferry_frame *f,
                                     enum field_id id, const char **why)
{
    const struct field_desc *fd = &fields[id];
    enum mpack_result res = MPACK_OK;
    uint64_t u;
    bool b;
    struct ferry_bytes s;

    switch (fd->kind) {
    case KIND_UINT:
        if ((res = mpack_read_uint(r, &u)) == MPACK_OK)
            return store_uint(f, id, u, why);
        break;
    case KIND_BOOL:
        if ((res = mpack_read_bool(r, &b)) == MPACK_OK)
            store_bool(f, id, b);
        break;
    case KIND_STR:
        if ((res = mpack_read_str(r, &s)) == MPACK_OK)
            return store_str(f, id, s, why);
        break;
    case KIND_BIN:
        res = mpack_read_bin(r, &f->payload);
        break;
    default:
        break;
    }
    if (res != MPACK_OK)
        return bad(why, proto_read_why(res, &fd->whys));
    return FERRY_CODE_OK;
}

/* A map whose content is ignored; only its well-formedness matters. */
static bool skip_map(struct mpack_reader *r, const struct field_whys *w, const char **why)
{
    struct mpack_reader ahead = *r;
    uint32_t pairs;
    enum mpack_result res = mpack_read_map(&ahead, &pairs);
    if (res == MPACK_OK)
        res = mpack_skip(r);
    if (res != MPACK_OK) {
        *why = proto_read_why(res, w);
        return false;
    }
    return true;
}

/* Reads the value of field id into f. */
static enum ferry_code decode_field(struct mpack_reader *r, struct ferry_frame *f,
                                    enum field_id id, const char **why)
{
    const struct field_whys *w = &fields[id].whys;
    bool ok;

    switch (fields[id].kind) {
    case KIND_HEADERS:
        ok = proto_check_headers(r, w, &f->headers, why);
        break;
    case KIND_UINTS:
        ok = proto_check_uints(r, w, &f->list, &f->list_count, why);
        break;
    case KIND_ITEMS:
        ok = proto_check_items(r, w, &f->list, &f->list_count, why);
        f->list_is_items = true;
        break;
    case KIND_QUEUE_STATS:
        ok = proto_check_queue_stats(r, w, &f->list, &f->list_count, why);
        f->list_is_items = false;
        break;
    case KIND_CONN_STATS:
        ok = proto_check_conn_stats(r, w, &f->conn_list, &f->conn_list_count, why);
        f->has_conns = ok;
        break;
    case KIND_PATTERNS:
        ok = proto_check_patterns(r, w, &f->pattern_list, &f->pattern_list_count, why);
        f->has_patterns = ok;
        break;
    case KIND_SERVER_STATS:
        ok = proto_check_server_stats(r, w, &f->server, why);
        f->has_server_stats = ok;
        break;
    case KIND_IGNORED_MAP:
        ok = skip_map(r, w, why);
        break;
    default:
        return decode_scalar(r, f, id, why);
    }
    return ok ? FERRY_CODE_OK : FERRY_CODE_BAD_FRAME;
}

/* ---- the frame map ------------------------------------------------------- */

/* The map header and the "t" pair that must come first. */
static enum ferry_code decode_type(struct mpack_reader *r, uint32_t *pairs, uint64_t *type,
                                   const char **why)
{
    if (mpack_remaining(r) == 0)
        return bad(why, "empty body");
    enum mpack_result res = mpack_read_map(r, pairs);
    if (res == MPACK_WRONG_TYPE)
        return bad(why, "body: expected a map");
    if (res != MPACK_OK)
        return bad(why, "body: truncated map");
    if (*pairs == 0)
        return bad(why, fields[FIELD_T].missing);

    struct ferry_bytes key;
    res = mpack_read_str(r, &key);
    if (res == MPACK_WRONG_TYPE)
        return bad(why, "keys must be str");
    if (res != MPACK_OK)
        return bad(why, "key: truncated");
    if (field_lookup(key) != FIELD_T)
        return bad(why, "key 't' must come first");

    res = mpack_read_uint(r, type);
    if (res != MPACK_OK)
        return bad(why, proto_read_why(res, &fields[FIELD_T].whys));
    return FERRY_CODE_OK;
}

/* One key/value pair after "t". seen: the keys met so far. */
static enum ferry_code decode_pair(struct mpack_reader *r, const struct frame_spec *spec,
                                   struct ferry_frame *f, uint64_t *seen, const char **why)
{
    static const struct field_whys unknown_whys = {
        "", "unknown key: truncated value", "",
    };
    struct ferry_bytes key;
    enum mpack_result res = mpack_read_str(r, &key);
    if (res == MPACK_WRONG_TYPE)
        return bad(why, "keys must be str");
    if (res != MPACK_OK)
        return bad(why, "key: truncated");

    enum field_id id = field_lookup(key);
    if (id != FIELD_COUNT) {
        /* Duplicates are refused for every key we know, even one this
         * frame type ignores; unknown keys cannot be tracked without
         * memory, and are skipped. */
        if (*seen & BIT(id))
            return bad(why, fields[id].duplicate);
        *seen |= BIT(id);
        if (spec->allowed & BIT(id))
            return decode_field(r, f, id, why);
    }
    res = mpack_skip(r);
    if (res != MPACK_OK)
        return bad(why, proto_read_why(res, &unknown_whys));
    return FERRY_CODE_OK;
}

enum ferry_code ferry_frame_decode(const uint8_t *body, size_t len,
                                   struct ferry_frame *f, const char **why)
{
    const char *ignored;
    if (!why)
        why = &ignored;
    memset(f, 0, sizeof *f);

    struct mpack_reader r;
    mpack_reader_init(&r, body, len);
    uint32_t pairs;
    uint64_t type;
    enum ferry_code code = decode_type(&r, &pairs, &type, why);
    if (code != FERRY_CODE_OK)
        return code;
    const struct frame_spec *spec = spec_of(type);
    if (!spec) {
        *why = "unknown frame type";
        return FERRY_CODE_UNKNOWN_FRAME;
    }
    f->type = (enum ferry_frame_type)type;
    f->requeue = type == FERRY_F_NACK; /* NACK requeues unless told not to */

    uint64_t seen = BIT(FIELD_T);
    for (uint32_t i = 1; i < pairs; i++) {
        code = decode_pair(&r, spec, f, &seen, why);
        if (code != FERRY_CODE_OK)
            return code;
    }
    if (r.pos != r.end)
        return bad(why, "trailing bytes after the map");

    uint64_t missing = spec->required & ~seen;
    if (missing == 0)
        return FERRY_CODE_OK;
    for (int id = 0; id < FIELD_COUNT; id++) {
        if (missing & BIT(id))
            return bad(why, fields[id].missing);
    }
    return FERRY_CODE_OK;
}
