/*
 * mpack.h - a strict, zero-copy, allocation-free msgpack pull reader.
 * Internal to proto/: the frame decoder and the list iterators read with it.
 * Knows msgpack only; nothing of frames, keys or ferry's limits.
 */
#ifndef FERRY_MPACK_H
#define FERRY_MPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_proto.h"

/* Containers nested deeper than this inside a skipped value are refused. */
#define MPACK_MAX_DEPTH 8u

/* Reads [pos, end). Every read either succeeds and advances pos, or fails:
 * MPACK_WRONG_TYPE leaves pos where it was, the others leave it undefined
 * (the caller gives up on the whole input). */
struct mpack_reader {
    const uint8_t *pos;
    const uint8_t *end;
};

enum mpack_result {
    MPACK_OK,
    MPACK_WRONG_TYPE, /* a well-formed value of another type is next */
    MPACK_TRUNCATED,  /* the value, or a length it claims, runs past the end */
    MPACK_TOO_DEEP,   /* containers nested deeper than MPACK_MAX_DEPTH */
    MPACK_INVALID,    /* the byte 0xc1, which msgpack never uses */
};

static inline void mpack_reader_init(struct mpack_reader *r, const uint8_t *p, size_t len)
{
    r->pos = p;
    r->end = len ? p + len : p; /* p may be NULL when len is 0 */
}

static inline size_t mpack_remaining(const struct mpack_reader *r)
{
    return (size_t)(r->end - r->pos);
}

/* Map header: *count pairs follow; fails unless 2 * count bytes remain. */
enum mpack_result mpack_read_map(struct mpack_reader *r, uint32_t *count);
/* Array header: *count values follow; fails unless count bytes remain. */
enum mpack_result mpack_read_array(struct mpack_reader *r, uint32_t *count);
/* A str; *s points into the input. */
enum mpack_result mpack_read_str(struct mpack_reader *r, struct ferry_bytes *s);
/* A bin; *s points into the input. */
enum mpack_result mpack_read_bin(struct mpack_reader *r, struct ferry_bytes *s);
/* A non-negative integer in any encoding; a negative one is WRONG_TYPE. */
enum mpack_result mpack_read_uint(struct mpack_reader *r, uint64_t *v);
enum mpack_result mpack_read_bool(struct mpack_reader *r, bool *v);
/* Skips one value of any type, containers included, at most
 * MPACK_MAX_DEPTH containers deep. Work is bounded by the input length:
 * every value read consumes at least one byte. */
enum mpack_result mpack_skip(struct mpack_reader *r);

#endif
