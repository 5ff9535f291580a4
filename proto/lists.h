/*
 * lists.h - internal to proto/: what the frame decoder (frame.c) shares
 * with lists.c, which checks the nested values of a frame (header maps,
 * uint lists, batch items, stats maps) and iterates them afterwards.
 */
#ifndef FERRY_LISTS_H
#define FERRY_LISTS_H

#include "ferry_proto.h"
#include "mpack.h"

/* The static reasons given for one top-level key, "field 'q': ...". */
struct field_whys {
    const char *wrong_type; /* "field 'q': expected str" */
    const char *truncated;  /* "field 'q': truncated" */
    const char *bad_value;  /* the key's own limit, e.g. "field 'name': longer than 255 bytes" */
};

/* Reason for a failed read of the value of a key described by w. */
const char *proto_read_why(enum mpack_result res, const struct field_whys *w);

/* Each check reads one value at r and returns true if it is valid, leaving
 * r just past it; otherwise false with *why set. */

/* A header map: str keys of 1..255 bytes to str or bin values of at most
 * 65535 bytes, at most 64 pairs. *raw spans the whole map. */
bool proto_check_headers(struct mpack_reader *r, const struct field_whys *w,
                         struct ferry_bytes *raw, const char **why);
/* An array of 1..65536 uints. *list spans the values after the array header. */
bool proto_check_uints(struct mpack_reader *r, const struct field_whys *w,
                       struct ferry_bytes *list, uint32_t *count, const char **why);
/* An array of 1..65536 batch items (bin, or map with "p" bin and "h"? headers). */
bool proto_check_items(struct mpack_reader *r, const struct field_whys *w,
                       struct ferry_bytes *list, uint32_t *count, const char **why);
/* An array of 0..65536 queue stats maps, every key present. */
bool proto_check_queue_stats(struct mpack_reader *r, const struct field_whys *w,
                             struct ferry_bytes *list, uint32_t *count, const char **why);
/* An array of 0..65536 connection stats maps, every key present. */
bool proto_check_conn_stats(struct mpack_reader *r, const struct field_whys *w,
                            struct ferry_bytes *list, uint32_t *count, const char **why);
/* The server stats map, every key present. */
/* An array of 0..65536 str, each 1..FERRY_TOPIC_MAX bytes (BINDINGS reply). */
bool proto_check_patterns(struct mpack_reader *r, const struct field_whys *w,
                          struct ferry_bytes *list, uint32_t *count, const char **why);
bool proto_check_server_stats(struct mpack_reader *r, const struct field_whys *w,
                              struct ferry_server_stats *out, const char **why);

#endif
