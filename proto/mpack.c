/*
 * mpack.c - the strict msgpack pull reader behind ferry_frame_decode().
 * Owns the meaning of every msgpack first byte; knows nothing of frames.
 *
 * Why not msgpack-c's unpacker: it builds a msgpack_object tree and sizes
 * each array or map allocation by the count the input claims, before
 * checking that the input holds that many entries, so a 10-byte frame
 * claiming 4 billion entries makes it allocate gigabytes. It also copies
 * or zone-allocates per object. This reader allocates nothing: spans point
 * into the input, and every length or count is checked against the bytes
 * left before it is trusted.
 */
#include "mpack.h"

enum kind {
    KIND_NIL,
    KIND_BOOL,
    KIND_UINT,   /* any integer encoding holding a value >= 0 */
    KIND_NEGINT, /* any integer encoding holding a value < 0 */
    KIND_FLOAT,
    KIND_STR,
    KIND_BIN,
    KIND_EXT,
    KIND_ARRAY,
    KIND_MAP,
};

/* The header of one value: its kind and, depending on the kind, its
 * unsigned value, bool, body length in bytes (str, bin, ext) or number of
 * entries (array: values, map: pairs). */
struct tag {
    enum kind kind;
    uint64_t value;
};

static uint64_t load_be(const uint8_t *p, unsigned n)
{
    switch (n) {
    case 1: return p[0];
    case 2: return (uint64_t)p[0] << 8 | p[1];
    case 4: return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
    default: return load_be(p, 4) << 32 | load_be(p + 4, 4);
    }
}

/* Reads an n-byte big-endian unsigned integer (n is 1, 2, 4 or 8). */
static enum mpack_result read_be(struct mpack_reader *r, unsigned n, uint64_t *v)
{
    if (mpack_remaining(r) < n)
        return MPACK_TRUNCATED;
    *v = load_be(r->pos, n);
    r->pos += n;
    return MPACK_OK;
}

/* int8..int64: n bytes of two's complement. */
static enum mpack_result read_signed(struct mpack_reader *r, unsigned n, struct tag *t)
{
    uint64_t raw;
    enum mpack_result res = read_be(r, n, &raw);
    if (res != MPACK_OK)
        return res;
    uint64_t sign_bit = (uint64_t)1 << (8 * n - 1);
    t->kind = (raw & sign_bit) ? KIND_NEGINT : KIND_UINT;
    t->value = raw;
    return MPACK_OK;
}

/* A header whose length (or count) field is n bytes wide. */
static enum mpack_result read_sized(struct mpack_reader *r, enum kind k, unsigned n, struct tag *t)
{
    t->kind = k;
    return read_be(r, n, &t->value);
}

/* Decodes the first byte and any length or scalar bytes after it. */
static enum mpack_result read_header(struct mpack_reader *r, struct tag *t)
{
    if (r->pos == r->end)
        return MPACK_TRUNCATED;
    uint8_t b = *r->pos++;

    if (b <= 0x7f) {
        *t = (struct tag){ KIND_UINT, b };
        return MPACK_OK;
    }
    if (b >= 0xe0) {
        *t = (struct tag){ KIND_NEGINT, b };
        return MPACK_OK;
    }
    if (b <= 0x8f) {
        *t = (struct tag){ KIND_MAP, b & 0x0fu };
        return MPACK_OK;
    }
    if (b <= 0x9f) {
        *t = (struct tag){ KIND_ARRAY, b & 0x0fu };
        return MPACK_OK;
    }
    if (b <= 0xbf) {
        *t = (struct tag){ KIND_STR, b & 0x1fu };
        return MPACK_OK;
    }

    uint64_t ignored;
    switch (b) {
    case 0xc0: *t = (struct tag){ KIND_NIL, 0 }; return MPACK_OK;
    case 0xc2: *t = (struct tag){ KIND_BOOL, 0 }; return MPACK_OK;
    case 0xc3: *t = (struct tag){ KIND_BOOL, 1 }; return MPACK_OK;
    case 0xc4: return read_sized(r, KIND_BIN, 1, t);
    case 0xc5: return read_sized(r, KIND_BIN, 2, t);
    case 0xc6: return read_sized(r, KIND_BIN, 4, t);
    case 0xc7: case 0xc8: case 0xc9: {
        /* ext 8/16/32: length, then a type byte, then the data. */
        enum mpack_result res = read_sized(r, KIND_EXT, 1u << (b - 0xc7), t);
        if (res == MPACK_OK)
            t->value += 1;
        return res;
    }
    case 0xca: t->kind = KIND_FLOAT; return read_be(r, 4, &ignored);
    case 0xcb: t->kind = KIND_FLOAT; return read_be(r, 8, &ignored);
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        return read_sized(r, KIND_UINT, 1u << (b - 0xcc), t);
    case 0xd0: case 0xd1: case 0xd2: case 0xd3:
        return read_signed(r, 1u << (b - 0xd0), t);
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        /* fixext 1/2/4/8/16: a type byte, then the data. */
        *t = (struct tag){ KIND_EXT, 1 + (1u << (b - 0xd4)) };
        return MPACK_OK;
    case 0xd9: return read_sized(r, KIND_STR, 1, t);
    case 0xda: return read_sized(r, KIND_STR, 2, t);
    case 0xdb: return read_sized(r, KIND_STR, 4, t);
    case 0xdc: return read_sized(r, KIND_ARRAY, 2, t);
    case 0xdd: return read_sized(r, KIND_ARRAY, 4, t);
    case 0xde: return read_sized(r, KIND_MAP, 2, t);
    case 0xdf: return read_sized(r, KIND_MAP, 4, t);
    default: return MPACK_INVALID; /* 0xc1 */
    }
}

/* Reads a header and refuses any length or count that the bytes left
 * cannot hold: each array value and each map key or value takes at least
 * one byte. This is what keeps a lying header from costing anything. */
static enum mpack_result read_tag(struct mpack_reader *r, struct tag *t)
{
    enum mpack_result res = read_header(r, t);
    if (res != MPACK_OK)
        return res;
    uint64_t left = mpack_remaining(r);
    switch (t->kind) {
    case KIND_STR: case KIND_BIN: case KIND_EXT: case KIND_ARRAY:
        return t->value <= left ? MPACK_OK : MPACK_TRUNCATED;
    case KIND_MAP:
        return t->value <= left / 2 ? MPACK_OK : MPACK_TRUNCATED;
    default:
        return MPACK_OK;
    }
}

/* Reads the next header if it is of kind k; otherwise leaves r alone. */
static enum mpack_result expect(struct mpack_reader *r, enum kind k, struct tag *t)
{
    struct mpack_reader ahead = *r;
    enum mpack_result res = read_tag(&ahead, t);
    if (res != MPACK_OK)
        return res;
    if (t->kind != k)
        return MPACK_WRONG_TYPE;
    *r = ahead;
    return MPACK_OK;
}

enum mpack_result mpack_read_map(struct mpack_reader *r, uint32_t *count)
{
    struct tag t;
    enum mpack_result res = expect(r, KIND_MAP, &t);
    if (res == MPACK_OK)
        *count = (uint32_t)t.value; /* at most 32 bits wide on the wire */
    return res;
}

enum mpack_result mpack_read_array(struct mpack_reader *r, uint32_t *count)
{
    struct tag t;
    enum mpack_result res = expect(r, KIND_ARRAY, &t);
    if (res == MPACK_OK)
        *count = (uint32_t)t.value;
    return res;
}

static enum mpack_result read_span(struct mpack_reader *r, enum kind k, struct ferry_bytes *s)
{
    struct tag t;
    enum mpack_result res = expect(r, k, &t);
    if (res != MPACK_OK)
        return res;
    s->ptr = r->pos;
    s->len = (size_t)t.value; /* read_tag checked it fits in what is left */
    r->pos += s->len;
    return MPACK_OK;
}

enum mpack_result mpack_read_str(struct mpack_reader *r, struct ferry_bytes *s)
{
    /* Fast path: a fixstr that fits, as every key is. */
    if (r->pos < r->end && (*r->pos & 0xe0) == 0xa0) {
        size_t len = *r->pos & 0x1fu;
        if (len < mpack_remaining(r)) {
            s->ptr = r->pos + 1;
            s->len = len;
            r->pos += 1 + len;
            return MPACK_OK;
        }
    }
    return read_span(r, KIND_STR, s);
}

enum mpack_result mpack_read_bin(struct mpack_reader *r, struct ferry_bytes *s)
{
    return read_span(r, KIND_BIN, s);
}

enum mpack_result mpack_read_uint(struct mpack_reader *r, uint64_t *v)
{
    /* Fast paths: fixint and uint8..uint64, what packers write for
     * non-negative values (types, ids, tags, counts). */
    if (r->pos < r->end) {
        uint8_t b = *r->pos;
        if (b <= 0x7f) {
            *v = b;
            r->pos++;
            return MPACK_OK;
        }
        if (b >= 0xcc && b <= 0xcf) {
            unsigned n = 1u << (b - 0xcc);
            if (n < mpack_remaining(r)) {
                *v = load_be(r->pos + 1, n);
                r->pos += 1 + n;
                return MPACK_OK;
            }
        }
    }
    struct tag t;
    enum mpack_result res = expect(r, KIND_UINT, &t);
    if (res == MPACK_OK)
        *v = t.value;
    return res;
}

enum mpack_result mpack_read_bool(struct mpack_reader *r, bool *v)
{
    struct tag t;
    enum mpack_result res = expect(r, KIND_BOOL, &t);
    if (res == MPACK_OK)
        *v = t.value != 0;
    return res;
}

/* depth_left: how many more containers may open around this value. */
static enum mpack_result skip_value(struct mpack_reader *r, unsigned depth_left)
{
    struct tag t;
    enum mpack_result res = read_tag(r, &t);
    if (res != MPACK_OK)
        return res;

    uint64_t children;
    switch (t.kind) {
    case KIND_STR: case KIND_BIN: case KIND_EXT:
        r->pos += t.value; /* read_tag checked the body is there */
        return MPACK_OK;
    case KIND_ARRAY:
        children = t.value;
        break;
    case KIND_MAP:
        children = 2 * t.value;
        break;
    default:
        return MPACK_OK; /* scalars were consumed with their header */
    }

    if (depth_left == 0)
        return MPACK_TOO_DEEP;
    for (uint64_t i = 0; i < children; i++) {
        res = skip_value(r, depth_left - 1);
        if (res != MPACK_OK)
            return res;
    }
    return MPACK_OK;
}

enum mpack_result mpack_skip(struct mpack_reader *r)
{
    return skip_value(r, MPACK_MAX_DEPTH);
}
