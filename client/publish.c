/*
 * publish.c - the producer side: PUBLISH and PUBLISH_BATCH frames, publish
 * ids and their confirms, ferry_flush(). Every publish carries an id; the
 * bookkeeping is a count of unconfirmed ids plus the few ids a caller is
 * waiting for, so a confirm costs O(1) however many are outstanding.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"

/* Frame bytes beyond payload and header data, rounded up generously: the
 * estimate only decides when to wait for room in the output buffer. */
#define FRAME_OVERHEAD 64u
#define HEADER_OVERHEAD 8u

static int check_headers(const struct ferry_header *h, size_t n, size_t *estimate)
{
    if (n == 0)
        return FERRY_OK;
    if (!h || n > FERRY_HEADERS_MAX)
        return FERRY_EINVAL;
    for (size_t i = 0; i < n; i++) {
        size_t key_len = h[i].key ? strnlen(h[i].key, FERRY_HEADER_KEY_MAX + 1) : 0;
        if (key_len == 0 || key_len > FERRY_HEADER_KEY_MAX)
            return FERRY_EINVAL;
        if (h[i].value_len > FERRY_HEADER_VALUE_MAX || (!h[i].value && h[i].value_len))
            return FERRY_EINVAL;
        *estimate += key_len + h[i].value_len + HEADER_OVERHEAD;
    }
    return FERRY_OK;
}

static int check_message(const void *data, size_t len, const struct ferry_header *h, size_t n,
                         unsigned priority, uint64_t ttl_ms, size_t *estimate)
{
    if ((!data && len) || priority > FERRY_PRIORITY_MAX || ttl_ms > FERRY_TTL_MAX_MS)
        return FERRY_EINVAL;
    *estimate += len + FRAME_OVERHEAD;
    return check_headers(h, n, estimate);
}

/* Appends the raw msgpack map of n (checked) headers to *out. */
static int encode_headers(struct ferry_buf *out, const struct ferry_header *h, size_t n)
{
    struct ferry_kv kv[FERRY_HEADERS_MAX];
    for (size_t i = 0; i < n; i++) {
        kv[i].key = conn__bytes(h[i].key);
        kv[i].value = (struct ferry_bytes){ h[i].value, h[i].value_len };
    }
    return ferry_headers_encode(out, kv, n) == 0 ? FERRY_OK : FERRY_ENOMEM;
}

/* The id of the calling thread's last queued publish (ferry_last_publish_id). */
static _Thread_local uint64_t last_publish_id;

uint64_t ferry_last_publish_id(void)
{
    return last_publish_id;
}

/* How a publish waits, from its flags. FERRY_EINVAL for CONFIRM with
 * NONBLOCK; FERRY_EDEADLK for CONFIRM inside a callback. */
static int publish_mode(ferry_conn *c, int flags, bool *confirm, bool *nonblock)
{
    *confirm = (flags & FERRY_PUBLISH_CONFIRM) != 0;
    *nonblock = (flags & FERRY_PUBLISH_NONBLOCK) != 0;
    if (*confirm && *nonblock)
        return FERRY_EINVAL;
    if (*confirm && conn__in_dispatch(c))
        return FERRY_EDEADLK;
    return FERRY_OK;
}

/* Room for `need` bytes: waited for, or, non-blocking, there or EAGAIN. */
static int room_for(struct ferry_conn *c, size_t need, bool nonblock, int64_t deadline)
{
    return nonblock ? io__try_room(c, need) : io__wait_for_room(c, need, deadline);
}

/* Sends f (PUBLISH or PUBLISH_BATCH) under the next publish id and waits
 * as asked: until written, until confirmed, or (nonblock) not at all: what
 * the socket does not take now goes out with later calls. Mutex held. */
static int publish_frame(struct ferry_conn *c, struct ferry_frame *f, bool confirm,
                         bool nonblock, int64_t deadline)
{
    uint64_t id = c->next_publish_id;
    f->id = id;
    f->has_id = true;
    size_t before = ferry_buf_pending(&c->out);
    int rc = io__append(c, f);
    if (rc != FERRY_OK)
        return rc; /* nothing was queued: the caller may retry */
    if (c->reconnect) {
        /* Kept (one copy) until confirmed, to be sent again after a reconnect. */
        size_t len = ferry_buf_pending(&c->out) - before;
        rc = resend__record(c, id, c->out.data + c->out.off + before, len);
        if (rc != FERRY_OK) {
            c->out.len = c->out.off + before; /* taken back: nothing was queued */
            c->out_total -= len;
            return rc;
        }
    }
    c->next_publish_id++;
    c->unconfirmed++;
    last_publish_id = id;
    if (nonblock)
        return io__write_now(c);
    if (!confirm)
        return io__send(c, deadline);

    /* Linked before anything is written, so the confirm cannot be missed. */
    struct ferry_waiter w = { 0 };
    request__begin_publish(c, &w, id);
    rc = io__send(c, deadline);
    if (rc != FERRY_OK) {
        request__end(c, &w);
        return rc;
    }
    return request__wait(c, &w, deadline);
}

int ferry_publish(ferry_conn *c, const char *queue, const void *data, size_t len,
                  const struct ferry_header *headers, size_t header_count, int flags)
{
    struct ferry_publish_options o = {
        .headers = headers, .header_count = header_count, .flags = flags,
    };
    return ferry_publish_opts(c, queue, data, len, &o);
}

/* One message to a queue (PUBLISH) or a topic (PUBLISH_TOPIC); `to` is
 * the name, checked by the caller. */
static int publish_one(ferry_conn *c, enum ferry_frame_type type, const char *to,
                       const void *data, size_t len, const struct ferry_publish_options *o)
{
    static const struct ferry_publish_options plain = { 0 };
    if (!o)
        o = &plain;
    const struct ferry_header *headers = o->headers;
    size_t header_count = o->header_count;
    size_t estimate = 0;
    if (o->delay_ms > FERRY_DELAY_MAX_MS)
        return FERRY_EINVAL;
    int rc = check_message(data, len, headers, header_count, o->priority, o->ttl_ms, &estimate);
    if (rc != FERRY_OK)
        return rc;
    bool confirm, nonblock;
    rc = publish_mode(c, o->flags, &confirm, &nonblock);
    if (rc != FERRY_OK)
        return rc;

    rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    int64_t deadline = conn__deadline(c->request_timeout_ms);
    rc = room_for(c, estimate + strlen(to), nonblock, deadline);
    if (rc == FERRY_OK) {
        struct ferry_frame f = {
            .type = type,
            .payload = { data, len },
            .has_priority = o->has_priority,
            .priority = o->priority,
            .delay_ms = o->delay_ms,
            .deliver_at = o->deliver_at_ms,
            .ttl_ms = o->ttl_ms,
        };
        if (type == FERRY_F_PUBLISH_TOPIC)
            f.topic = conn__bytes(to);
        else
            f.queue = conn__bytes(to);
        if (header_count) {
            /* The map is built in the connection's scratch buffer, which
             * stays untouched until the frame is encoded (mutex held). */
            ferry_buf_consume(&c->scratch, ferry_buf_pending(&c->scratch));
            rc = encode_headers(&c->scratch, o->headers, o->header_count);
            f.headers = (struct ferry_bytes){ c->scratch.data + c->scratch.off,
                                              ferry_buf_pending(&c->scratch) };
        }
        if (rc == FERRY_OK)
            rc = publish_frame(c, &f, confirm, nonblock, deadline);
    }
    conn__unlock(c);
    return rc;
}

int ferry_publish_opts(ferry_conn *c, const char *queue, const void *data, size_t len,
                       const struct ferry_publish_options *o)
{
    if (!c || !conn__queue_valid(queue))
        return FERRY_EINVAL;
    return publish_one(c, FERRY_F_PUBLISH, queue, data, len, o);
}

int ferry_publish_topic(ferry_conn *c, const char *topic, const void *data, size_t len,
                        const struct ferry_publish_options *o)
{
    if (!c || !topic || !ferry_topic_valid(conn__bytes(topic)))
        return FERRY_EINVAL;
    return publish_one(c, FERRY_F_PUBLISH_TOPIC, topic, data, len, o);
}

/* Fills items[] from msgs[], encoding every header map into *maps. */
static int build_items(const struct ferry_msg *msgs, size_t n, struct ferry_item *items,
                       struct ferry_buf *maps)
{
    /* First encode every map, then point at them: `maps` may move while it grows. */
    for (size_t i = 0; i < n; i++) {
        size_t before = ferry_buf_pending(maps);
        if (msgs[i].header_count
            && encode_headers(maps, msgs[i].headers, msgs[i].header_count) != FERRY_OK)
            return FERRY_ENOMEM;
        items[i].headers.len = ferry_buf_pending(maps) - before;
        items[i].payload = (struct ferry_bytes){ msgs[i].data, msgs[i].len };
        items[i].has_priority = msgs[i].has_priority;
        items[i].priority = msgs[i].priority;
        items[i].ttl_ms = msgs[i].ttl_ms;
    }
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].headers.len)
            items[i].headers.ptr = maps->data + maps->off + offset;
        offset += items[i].headers.len;
    }
    return FERRY_OK;
}

int ferry_publish_batch(ferry_conn *c, const char *queue, const struct ferry_msg *msgs, size_t n,
                        int flags)
{
    if (!c || !conn__queue_valid(queue) || !msgs || n == 0 || n > FERRY_LIST_MAX)
        return FERRY_EINVAL;
    size_t estimate = strlen(queue);
    for (size_t i = 0; i < n; i++) {
        int rc = check_message(msgs[i].data, msgs[i].len, msgs[i].headers,
                               msgs[i].header_count, msgs[i].priority, msgs[i].ttl_ms,
                               &estimate);
        if (rc != FERRY_OK)
            return rc;
    }
    bool confirm, nonblock;
    int rc = publish_mode(c, flags, &confirm, &nonblock);
    if (rc != FERRY_OK)
        return rc;

    /* Built outside the mutex; both freed below. */
    struct ferry_item *items = calloc(n, sizeof *items);
    struct ferry_buf maps = { 0 };
    if (!items)
        return FERRY_ENOMEM;
    rc = build_items(msgs, n, items, &maps);
    if (rc == FERRY_OK)
        rc = conn__lock(c);
    if (rc == FERRY_OK) {
        int64_t deadline = conn__deadline(c->request_timeout_ms);
        rc = room_for(c, estimate, nonblock, deadline);
        struct ferry_frame f = {
            .type = FERRY_F_PUBLISH_BATCH,
            .queue = conn__bytes(queue),
            .items = items,
            .item_count = n,
        };
        if (rc == FERRY_OK)
            rc = publish_frame(c, &f, confirm, nonblock, deadline);
        conn__unlock(c);
    }
    free(items);
    ferry_buf_free(&maps);
    return rc;
}

int ferry_flush(ferry_conn *c, int timeout_ms)
{
    if (c && conn__in_dispatch(c))
        return FERRY_EDEADLK;
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    int64_t deadline = conn__deadline(timeout_ms);
    while (rc == FERRY_OK && c->unconfirmed > 0)
        rc = io__pump(c, PUMP_INPUT, deadline);
    if (rc == FERRY_OK && c->first_refusal.code) {
        status__set_server_error(c->first_refusal.code, c->first_refusal.text,
                                 strlen(c->first_refusal.text));
        c->first_refusal.code = 0;
        rc = FERRY_ESERVER;
    }
    conn__unlock(c);
    return rc;
}

/* Counts publish id `id` as answered. false if it cannot be one of ours. */
static bool settle(struct ferry_conn *c, uint64_t id)
{
    if (id == 0 || id >= c->next_publish_id || c->unconfirmed == 0)
        return false;
    c->unconfirmed--;
    if (c->reconnect)
        resend__settle(c, id);
    return true;
}

void publish__on_confirm(struct ferry_conn *c, const struct ferry_frame *f)
{
    struct ferry_iter it;
    uint64_t id;
    ferry_iter_init(&it, f);
    while (ferry_iter_uint(&it, &id)) {
        if (!settle(c, id)) {
            conn__fail(c, FERRY_EPROTO);
            return;
        }
        struct ferry_waiter *w = c->publish_waiters ? request__find(c, true, id) : NULL;
        if (w)
            request__finish(c, w, FERRY_OK, NULL);
    }
}

void publish__on_refusal(struct ferry_conn *c, const struct ferry_frame *f)
{
    if (!settle(c, f->id)) {
        conn__fail(c, FERRY_EPROTO);
        return;
    }
    struct ferry_waiter *w = c->publish_waiters ? request__find(c, true, f->id) : NULL;
    if (w) {
        request__finish(c, w, FERRY_ESERVER, f); /* its caller hears of it */
        return;
    }
    if (!c->first_refusal.code) { /* flush reports the first one */
        c->first_refusal.code = f->code ? f->code : FERRY_CODE_INTERNAL;
        conn__copy_text(c->first_refusal.text, f->text);
    }
    ferry_refusal_fn fn = c->on_refusal;
    void *arg = c->refusal_arg;
    if (!fn)
        return;
    char text[FERRY_ERROR_TEXT_MAX + 1];
    conn__copy_text(text, f->text);
    struct ferry_conn *saved = conn__begin_callback(c);
    fn(c, f->id, f->code ? (int)f->code : FERRY_CODE_INTERNAL, text, arg);
    conn__end_callback(c, saved);
}
