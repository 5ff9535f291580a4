/*
 * buf.c - struct ferry_buf, the growable byte buffer that frames are
 * encoded into and read out of. Owns its `data` allocation; knows nothing
 * of frames or sockets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ferry_proto.h"

/* First allocation; small frames (ACK, CONFIRM, PING) fit without growth. */
#define BUF_MIN_CAP 256u

/* Moves the pending bytes to the front, reclaiming the consumed head. */
static void compact(struct ferry_buf *b)
{
    size_t pending = b->len - b->off;
    if (pending > 0)
        memmove(b->data, b->data + b->off, pending);
    b->off = 0;
    b->len = pending;
}

int ferry_buf_reserve(struct ferry_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;

    size_t pending = b->len - b->off;
    if (extra > SIZE_MAX - pending)
        return -1;
    /* Sliding costs a memmove of the pending bytes; do it only when the
     * head it reclaims is at least that large, so the copying stays
     * amortised O(1) per byte and the buffer never holds more than about
     * twice its pending bytes as dead head. */
    if (b->off >= pending && pending + extra <= b->cap) {
        compact(b);
        return 0;
    }

    if (extra > SIZE_MAX - b->len)
        return -1;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : BUF_MIN_CAP;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *data = realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

int ferry_buf_append(struct ferry_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0; /* p may be NULL then, and memcpy must not see it */
    if (ferry_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void ferry_buf_consume(struct ferry_buf *b, size_t n)
{
    size_t pending = b->len - b->off;
    if (n > pending)
        n = pending;
    b->off += n;
    if (b->off == b->len) {
        b->off = 0;
        b->len = 0;
    }
}

void ferry_buf_shrink(struct ferry_buf *b, size_t keep)
{
    compact(b);
    size_t cap = b->len > keep ? b->len : keep;
    if (cap >= b->cap)
        return;
    if (cap == 0) {
        ferry_buf_free(b);
        return;
    }
    uint8_t *data = realloc(b->data, cap);
    if (!data)
        return; /* the old block is still valid, just larger than wanted */
    b->data = data;
    b->cap = cap;
}

void ferry_buf_free(struct ferry_buf *b)
{
    free(b->data);
    *b = (struct ferry_buf){ 0 };
}
