/*
 * message.c - ferry_message outside a callback: caller-owned copies (one
 * allocation: the struct, then payload, headers and queue name) and header
 * lookup. Knows nothing of connections.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"

ferry_message *message__new(uint64_t tag, uint64_t sub, uint64_t attempt, const char *queue,
                            struct ferry_bytes payload, struct ferry_bytes headers)
{
    size_t queue_len = strlen(queue);
    size_t extra = payload.len + headers.len + queue_len + 1;
    if (extra < payload.len) /* sizes from the network: guard the sum */
        return NULL;
    ferry_message *m = malloc(sizeof *m + extra);
    if (!m)
        return NULL;
    uint8_t *at = (uint8_t *)(m + 1);
    *m = (ferry_message){
        .tag = tag,
        .sub = sub,
        .attempt = attempt > UINT32_MAX ? UINT32_MAX : (uint32_t)attempt,
        .data = at,
        .len = payload.len,
    };
    if (payload.len)
        memcpy(at, payload.ptr, payload.len);
    at += payload.len;
    if (headers.len) {
        memcpy(at, headers.ptr, headers.len);
        m->headers = at;
        m->headers_len = headers.len;
        at += headers.len;
    }
    memcpy(at, queue, queue_len + 1);
    m->queue = (const char *)at;
    return m;
}

ferry_message *ferry_message_copy(const ferry_message *m)
{
    if (!m)
        return NULL;
    struct ferry_bytes payload = { m->data, m->data ? m->len : 0 };
    struct ferry_bytes headers = { m->headers, m->headers ? m->headers_len : 0 };
    return message__new(m->tag, m->sub, m->attempt, m->queue ? m->queue : "", payload, headers);
}

void ferry_message_free(ferry_message *m)
{
    free(m); /* one allocation: see message__new() */
}

bool ferry_message_header(const ferry_message *m, const char *key, const void **value,
                          size_t *len)
{
    if (!m || !key || !m->headers || m->headers_len == 0)
        return false;
    size_t key_len = strlen(key);
    struct ferry_iter it;
    struct ferry_kv h;
    ferry_headers_iter_init(&it, (struct ferry_bytes){ m->headers, m->headers_len });
    while (ferry_headers_next(&it, &h)) {
        if (h.key.len == key_len && memcmp(h.key.ptr, key, key_len) == 0) {
            if (value)
                *value = h.value.ptr;
            if (len)
                *len = h.value.len;
            return true;
        }
    }
    return false;
}
