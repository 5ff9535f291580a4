/*
 * record.h - the byte layout of the durable log's records and segment
 * headers (docs/STORAGE.md, "Format"): encoding and decoding of each
 * record body, and the checksum that seals a record. Pure code on byte
 * buffers: knows nothing of files, the write buffer or the store's state.
 */
#ifndef FERRY_RECORD_H
#define FERRY_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_proto.h"

/* ---- segment header ---- */

#define SEGMENT_MAGIC "FERRYLOG"        /* 8 bytes, no terminator on disk */
#define SEGMENT_VERSION 2u             /* written; 1 (no PUBLISH meta) is still read */
#define SEGMENT_VERSION_OLDEST 1u
#define SEGMENT_HEADER_SIZE 40u

struct segment_header {
    uint32_t version;
    uint64_t seq;               /* the segment's number, as in its file name */
    uint64_t next_id;           /* first message id not yet given out at creation */
    uint32_t next_queue_id;     /* first queue id not yet given out at creation */
};

/* Writes the 40 header bytes, checksum included. */
void segment_header_encode(uint8_t out[SEGMENT_HEADER_SIZE], const struct segment_header *h);

enum header_check {
    HEADER_OK,
    HEADER_BAD,         /* wrong magic or checksum: not a segment, or damaged */
    HEADER_NEWER,       /* sound, but of a format version this code does not know */
};
enum header_check segment_header_decode(const uint8_t in[SEGMENT_HEADER_SIZE],
                                        struct segment_header *out);

/* ---- record framing ---- */

/* Every record: u32 length of type+body, u32 CRC-32C of type+body, u8
 * type, body. All integers little-endian. */
#define RECORD_HEADER_SIZE 8u
#define RECORD_OVERHEAD (RECORD_HEADER_SIZE + 1u)   /* framing + type byte */
#define RECORD_MAX_LENGTH (1u << 30)                /* of type+body */

enum record_type {
    RECORD_QUEUE = 1,       /* a durable queue: its id, name, settings, ended flag */
    RECORD_PUBLISH = 2,     /* a message */
    RECORD_ACK = 3,         /* messages acked or dropped, by id (one or more) */
    RECORD_ATTEMPTS = 4,    /* a message's new delivery count */
    RECORD_END = 5,         /* a queue was ended */
    RECORD_REOPEN = 6,      /* a queue was reopened */
    RECORD_DELETE = 7,      /* a queue was deleted with all its messages */
};

/* Whether a type byte names a known record type. */
bool record_type_known(uint8_t type);

/* The size of a whole record whose body has body_len bytes. */
static inline size_t record_size(size_t body_len)
{
    return RECORD_OVERHEAD + body_len;
}

/* Fills the length, type and checksum of the record at rec, whose body
 * (body_len bytes at rec + RECORD_OVERHEAD) is already in place. */
void record_seal(uint8_t *rec, uint8_t type, size_t body_len);

/* The length field (type+body) and stored checksum of the record at rec. */
uint32_t record_length(const uint8_t *rec);
uint32_t record_stored_crc(const uint8_t *rec);
/* Whether the stored checksum matches the record's type+body. */
bool record_crc_ok(const uint8_t *rec);

/* Appends 8 more bytes (one id) to an ACK record sealed earlier, fixing
 * its length and checksum. The bytes must already follow the record. */
void record_extend_ack(uint8_t *rec);

/* ---- bodies ---- */

/* QUEUE: u32 queue id, u8 flags, u8 name length, name, settings. */
#define QUEUE_FLAG_ENDED 0x01u
#define QUEUE_FIXED_SIZE 6u
#define QUEUE_SETTINGS_MAX 65536u

struct record_queue {
    uint32_t queue_id;
    bool ended;
    struct ferry_bytes name;        /* 1..255 bytes */
    struct ferry_bytes settings;    /* opaque, from the broker */
};
size_t record_queue_body_size(const struct record_queue *q);
void record_queue_encode(uint8_t *body, const struct record_queue *q);
bool record_queue_decode(const uint8_t *body, size_t len, struct record_queue *out);

/* PUBLISH: u64 id, u32 queue id, u32 attempts, u8 flags, u32 headers
 * length, [flag META: u8 meta length M (1..255), M bytes of meta], headers,
 * payload (the rest). The meta is the broker's (opaque here). */
#define PUBLISH_FLAG_COPY 0x01u     /* re-appended by compaction */
#define PUBLISH_FLAG_META 0x02u     /* a meta block follows the fixed part (version 2) */
#define PUBLISH_FIXED_SIZE 21u
#define PUBLISH_META_MAX 255u
#define PUBLISH_ATTEMPTS_AT 12u     /* offset of the attempts field in the body */
#define PUBLISH_FLAGS_AT 16u

struct record_publish {
    uint64_t id;
    uint32_t queue_id;
    uint32_t attempts;
    uint8_t flags;
    struct ferry_bytes meta;        /* 0..255 bytes; flag META is set when not empty */
    struct ferry_bytes headers;
    struct ferry_bytes payload;
};
/* The size of the fixed part and meta block: where the headers start. */
size_t record_publish_head_size(const struct record_publish *p);
/* Writes the fixed part and the meta block (and sets flag META in it when
 * there is meta); the caller copies headers then payload after them. */
void record_publish_encode_head(uint8_t *body, const struct record_publish *p);
bool record_publish_decode(const uint8_t *body, size_t len, struct record_publish *out);
/* Rewrites the attempts and flags of an encoded PUBLISH body in place
 * (flags as record_publish_decode gave them, META included). */
void record_publish_patch(uint8_t *body, uint32_t attempts, uint8_t flags);

/* ACK: one or more u64 ids. */
#define ACK_ID_SIZE 8u
#define ACK_MAX_IDS 1024u
bool record_ack_valid(size_t len);
uint64_t record_ack_id(const uint8_t *body, size_t i);

/* ATTEMPTS: u64 id, u32 attempts. */
#define ATTEMPTS_BODY_SIZE 12u
void record_attempts_encode(uint8_t *body, uint64_t id, uint32_t attempts);
bool record_attempts_decode(const uint8_t *body, size_t len, uint64_t *id, uint32_t *attempts);

/* END, REOPEN, DELETE: u32 queue id. */
#define QUEUE_REF_BODY_SIZE 4u
void record_queue_ref_encode(uint8_t *body, uint32_t queue_id);
bool record_queue_ref_decode(const uint8_t *body, size_t len, uint32_t *queue_id);

/* ---- little-endian integers ---- */

static inline void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

#endif
