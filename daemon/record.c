/*
 * record.c - encoding and decoding of segment headers and record bodies,
 * byte for byte as docs/STORAGE.md "Format" says. Every decoder checks
 * every length against the bytes it is given: a file may be damaged.
 * Knows nothing of files or of the store's state.
 */
#include "record.h"

#include <string.h>

#include "crc32c.h"

/* ---- segment header ---- */

/* Offsets inside the 40-byte header. */
#define HDR_MAGIC 0
#define HDR_VERSION 8
#define HDR_SIZE 12
#define HDR_SEQ 16
#define HDR_NEXT_ID 24
#define HDR_NEXT_QUEUE_ID 32
#define HDR_CRC 36

void segment_header_encode(uint8_t out[SEGMENT_HEADER_SIZE], const struct segment_header *h)
{
    memcpy(out + HDR_MAGIC, SEGMENT_MAGIC, 8);
    put_u32(out + HDR_VERSION, h->version);
    put_u32(out + HDR_SIZE, SEGMENT_HEADER_SIZE);
    put_u64(out + HDR_SEQ, h->seq);
    put_u64(out + HDR_NEXT_ID, h->next_id);
    put_u32(out + HDR_NEXT_QUEUE_ID, h->next_queue_id);
    put_u32(out + HDR_CRC, crc32c(0, out, HDR_CRC));
}

enum header_check segment_header_decode(const uint8_t in[SEGMENT_HEADER_SIZE],
                                        struct segment_header *out)
{
    if (memcmp(in + HDR_MAGIC, SEGMENT_MAGIC, 8) != 0)
        return HEADER_BAD;
    if (get_u32(in + HDR_CRC) != crc32c(0, in, HDR_CRC))
        return HEADER_BAD;
    out->version = get_u32(in + HDR_VERSION);
    if (out->version < SEGMENT_VERSION_OLDEST || out->version > SEGMENT_VERSION
        || get_u32(in + HDR_SIZE) != SEGMENT_HEADER_SIZE)
        return HEADER_NEWER;
    out->seq = get_u64(in + HDR_SEQ);
    out->next_id = get_u64(in + HDR_NEXT_ID);
    out->next_queue_id = get_u32(in + HDR_NEXT_QUEUE_ID);
    return HEADER_OK;
}

/* ---- framing ---- */

bool record_type_known(uint8_t type)
{
    return type >= RECORD_QUEUE && type <= RECORD_DELETE;
}

void record_seal(uint8_t *rec, uint8_t type, size_t body_len)
{
    uint32_t length = (uint32_t)(1 + body_len);
    rec[RECORD_HEADER_SIZE] = type;
    put_u32(rec, length);
    put_u32(rec + 4, crc32c(0, rec + RECORD_HEADER_SIZE, length));
}

uint32_t record_length(const uint8_t *rec)
{
    return get_u32(rec);
}

uint32_t record_stored_crc(const uint8_t *rec)
{
    return get_u32(rec + 4);
}

bool record_crc_ok(const uint8_t *rec)
{
    return crc32c(0, rec + RECORD_HEADER_SIZE, record_length(rec)) == record_stored_crc(rec);
}

void record_extend_ack(uint8_t *rec)
{
    uint32_t length = record_length(rec);
    /* CRC-32C continues over the new bytes: no need to read the old ones. */
    uint32_t crc = crc32c(record_stored_crc(rec), rec + RECORD_HEADER_SIZE + length, ACK_ID_SIZE);
    put_u32(rec, length + ACK_ID_SIZE);
    put_u32(rec + 4, crc);
}

/* ---- QUEUE ---- */

size_t record_queue_body_size(const struct record_queue *q)
{
    return QUEUE_FIXED_SIZE + q->name.len + q->settings.len;
}

void record_queue_encode(uint8_t *body, const struct record_queue *q)
{
    put_u32(body, q->queue_id);
    body[4] = q->ended ? QUEUE_FLAG_ENDED : 0;
    body[5] = (uint8_t)q->name.len;
    memcpy(body + QUEUE_FIXED_SIZE, q->name.ptr, q->name.len);
    if (q->settings.len > 0)
        memcpy(body + QUEUE_FIXED_SIZE + q->name.len, q->settings.ptr, q->settings.len);
}

bool record_queue_decode(const uint8_t *body, size_t len, struct record_queue *out)
{
    if (len < QUEUE_FIXED_SIZE)
        return false;
    size_t name_len = body[5];
    if (name_len == 0 || name_len > len - QUEUE_FIXED_SIZE)
        return false;
    size_t settings_len = len - QUEUE_FIXED_SIZE - name_len;
    if (settings_len > QUEUE_SETTINGS_MAX)
        return false;
    out->queue_id = get_u32(body);
    out->ended = (body[4] & QUEUE_FLAG_ENDED) != 0;
    out->name = (struct ferry_bytes){ body + QUEUE_FIXED_SIZE, name_len };
    out->settings = (struct ferry_bytes){ body + QUEUE_FIXED_SIZE + name_len, settings_len };
    return true;
}

/* ---- PUBLISH ---- */

size_t record_publish_head_size(const struct record_publish *p)
{
    return PUBLISH_FIXED_SIZE + (p->meta.len > 0 ? 1 + p->meta.len : 0);
}

void record_publish_encode_head(uint8_t *body, const struct record_publish *p)
{
    uint8_t flags = p->flags & (uint8_t)~PUBLISH_FLAG_META;
    put_u64(body, p->id);
    put_u32(body + 8, p->queue_id);
    put_u32(body + PUBLISH_ATTEMPTS_AT, p->attempts);
    put_u32(body + 17, (uint32_t)p->headers.len);
    if (p->meta.len > 0) {
        flags |= PUBLISH_FLAG_META;
        body[PUBLISH_FIXED_SIZE] = (uint8_t)p->meta.len;
        memcpy(body + PUBLISH_FIXED_SIZE + 1, p->meta.ptr, p->meta.len);
    }
    body[PUBLISH_FLAGS_AT] = flags;
}

bool record_publish_decode(const uint8_t *body, size_t len, struct record_publish *out)
{
    if (len < PUBLISH_FIXED_SIZE)
        return false;
    out->flags = body[PUBLISH_FLAGS_AT];
    size_t head = PUBLISH_FIXED_SIZE;
    out->meta = (struct ferry_bytes){ NULL, 0 };
    if (out->flags & PUBLISH_FLAG_META) {
        if (len < PUBLISH_FIXED_SIZE + 1)
            return false;
        size_t meta_len = body[PUBLISH_FIXED_SIZE];
        if (meta_len == 0 || meta_len > len - PUBLISH_FIXED_SIZE - 1)
            return false;
        out->meta = (struct ferry_bytes){ body + PUBLISH_FIXED_SIZE + 1, meta_len };
        head += 1 + meta_len;
    }
    size_t headers_len = get_u32(body + 17);
    if (headers_len > len - head)
        return false;
    out->id = get_u64(body);
    out->queue_id = get_u32(body + 8);
    out->attempts = get_u32(body + PUBLISH_ATTEMPTS_AT);
    out->headers = (struct ferry_bytes){ body + head, headers_len };
    out->payload = (struct ferry_bytes){ body + head + headers_len, len - head - headers_len };
    return out->id != 0;
}

void record_publish_patch(uint8_t *body, uint32_t attempts, uint8_t flags)
{
    put_u32(body + PUBLISH_ATTEMPTS_AT, attempts);
    body[PUBLISH_FLAGS_AT] = flags;
}

/* ---- ACK, ATTEMPTS, queue references ---- */

bool record_ack_valid(size_t len)
{
    return len >= ACK_ID_SIZE && len % ACK_ID_SIZE == 0;
}

uint64_t record_ack_id(const uint8_t *body, size_t i)
{
    return get_u64(body + i * ACK_ID_SIZE);
}

void record_attempts_encode(uint8_t *body, uint64_t id, uint32_t attempts)
{
    put_u64(body, id);
    put_u32(body + 8, attempts);
}

bool record_attempts_decode(const uint8_t *body, size_t len, uint64_t *id, uint32_t *attempts)
{
    if (len != ATTEMPTS_BODY_SIZE)
        return false;
    *id = get_u64(body);
    *attempts = get_u32(body + 8);
    return true;
}

void record_queue_ref_encode(uint8_t *body, uint32_t queue_id)
{
    put_u32(body, queue_id);
}

bool record_queue_ref_decode(const uint8_t *body, size_t len, uint32_t *queue_id)
{
    if (len != QUEUE_REF_BODY_SIZE)
        return false;
    *queue_id = get_u32(body);
    return true;
}
