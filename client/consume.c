/*
 * consume.c - the consumer side: subscriptions and their callbacks,
 * DELIVER and EOS frames, ack / nack / credit / cancel, and ferry_get().
 * Callbacks run on the reading thread with the mutex released; the message
 * they get points straight into the input buffer.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"

#define DEFAULT_CREDIT 256u
/* The longest wait one GET asks of the broker; a longer or endless
 * ferry_get() asks again. */
#define GET_WAIT_CAP_MS 3600000

/* Binary search: ids count up, so the table is sorted by id. */
static struct ferry_sub *find_sub(struct ferry_conn *c, uint64_t id)
{
    size_t lo = 0, hi = c->sub_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->subs[mid].id == id)
            return &c->subs[mid];
        if (c->subs[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Appends a subscription; *id_out receives its id. */
static int add_sub(struct ferry_conn *c, const char *queue, const struct ferry_consume_options *o,
                   uint64_t *id_out)
{
    if (c->sub_count == c->sub_cap) {
        size_t cap = c->sub_cap ? c->sub_cap * 2 : 4;
        struct ferry_sub *grown = realloc(c->subs, cap * sizeof *grown);
        if (!grown)
            return FERRY_ENOMEM;
        c->subs = grown;
        c->sub_cap = cap;
    }
    char *name = strdup(queue);
    if (!name)
        return FERRY_ENOMEM;
    *id_out = c->next_sub++;
    c->subs[c->sub_count++] = (struct ferry_sub){
        .id = *id_out,
        .queue = name, /* owned by the table from here */
        .on_message = o->on_message,
        .on_eos = o->on_eos,
        .arg = o->arg,
        .credit = o->credit ? o->credit : DEFAULT_CREDIT,
        .ack_deadline_ms = o->ack_deadline_ms,
    };
    return FERRY_OK;
}

void consume__sweep(struct ferry_conn *c)
{
    size_t kept = 0;
    for (size_t i = 0; i < c->sub_count; i++) {
        if (c->subs[i].cancelled)
            free(c->subs[i].queue);
        else
            c->subs[kept++] = c->subs[i];
    }
    c->sub_count = kept;
}

void consume__free_all(struct ferry_conn *c)
{
    for (size_t i = 0; i < c->sub_count; i++)
        free(c->subs[i].queue);
    free(c->subs);
    c->subs = NULL;
    c->sub_count = c->sub_cap = 0;
}

/* Appends f and sends it: at once from other threads, without blocking
 * from a callback. Mutex held. */
static int send_control(struct ferry_conn *c, const struct ferry_frame *f)
{
    int rc = io__append(c, f);
    if (rc != FERRY_OK)
        return rc;
    return io__send(c, conn__deadline(c->request_timeout_ms));
}

/* A delivery nobody will handle goes back to the front of its queue
 * (written with the rest of the reader's batch). */
static void give_back(struct ferry_conn *c, uint64_t tag)
{
    struct ferry_frame nack = {
        .type = FERRY_F_NACK, .uints = &tag, .uint_count = 1, .requeue = true,
    };
    if (io__append(c, &nack) != FERRY_OK)
        conn__fail(c, FERRY_ENOMEM);
}

/* Sends CANCEL for s and forgets it. `wait`: send at once, else only what
 * the socket takes now. */
static int cancel_sub(struct ferry_conn *c, struct ferry_sub *s, bool wait)
{
    struct ferry_frame f = { .type = FERRY_F_CANCEL, .rid = c->next_rid++, .sub = s->id };
    s->cancelled = true;
    if (!c->reading)
        consume__sweep(c); /* no callback can hold s->queue now */
    if (wait)
        return send_control(c, &f);
    int rc = io__append(c, &f);
    return rc != FERRY_OK ? rc : io__write_now(c);
}

/* ---- inbound ---------------------------------------------------------- */

/* A DELIVER answering a GET: copied for the waiting ferry_get(). */
static void deliver_to_get(struct ferry_conn *c, const struct ferry_frame *f)
{
    struct ferry_waiter *w = request__find(c, false, f->rid);
    if (!w || w->done || !w->get_queue) {
        give_back(c, f->tag); /* its ferry_get() timed out and left */
        return;
    }
    w->message = message__new(reconnect__user_tag(c, f->tag), 0, f->attempt, w->get_queue,
                              f->payload, f->headers);
    if (!w->message) {
        give_back(c, f->tag);
        request__finish(c, w, FERRY_ENOMEM, NULL);
        return;
    }
    request__finish(c, w, FERRY_OK, NULL);
}

void consume__on_deliver(struct ferry_conn *c, const struct ferry_frame *f)
{
    if (f->rid) {
        deliver_to_get(c, f);
        return;
    }
    struct ferry_sub *s = find_sub(c, f->sub);
    if (!s || s->cancelled) {
        give_back(c, f->tag); /* sent before the broker saw our CANCEL */
        return;
    }
    /* Zero copy: the message points into the input buffer, which the
     * reader leaves alone until the batch ends. */
    ferry_message m = {
        .tag = reconnect__user_tag(c, f->tag),
        .sub = f->sub,
        .attempt = f->attempt > UINT32_MAX ? UINT32_MAX : (uint32_t)f->attempt,
        .queue = s->queue,
        .data = f->payload.ptr,
        .len = f->payload.len,
        .headers = f->headers.len ? f->headers.ptr : NULL,
        .headers_len = f->headers.len,
    };
    /* `s` may move while the mutex is released (the table can grow);
     * s->queue cannot: it is freed only by the reader between batches. */
    ferry_message_fn fn = s->on_message;
    void *arg = s->arg;
    struct ferry_conn *saved = conn__begin_callback(c);
    fn(c, &m, arg);
    conn__end_callback(c, saved);
}

void consume__on_eos(struct ferry_conn *c, const struct ferry_frame *f)
{
    struct ferry_sub *s = find_sub(c, f->sub);
    if (!s || s->cancelled || !s->on_eos)
        return;
    ferry_eos_fn fn = s->on_eos;
    void *arg = s->arg;
    const char *queue = s->queue;
    uint64_t sub = s->id;
    struct ferry_conn *saved = conn__begin_callback(c);
    fn(c, sub, queue, arg);
    conn__end_callback(c, saved);
}

void consume__flush_acks(struct ferry_conn *c)
{
    if (c->pending_ack_count == 0)
        return;
    struct ferry_frame ack = {
        .type = FERRY_F_ACK, .uints = c->pending_acks, .uint_count = c->pending_ack_count,
    };
    if (io__append(c, &ack) != FERRY_OK)
        conn__fail(c, FERRY_ENOMEM);
    c->pending_ack_count = 0;
}

void consume__on_reopen_refused(struct ferry_conn *c, const struct ferry_frame *f)
{
    for (size_t i = 0; i < c->sub_count; i++) {
        struct ferry_sub *s = &c->subs[i];
        if (s->cancelled || s->reopen_rid != f->rid)
            continue;
        /* Not open at the broker: forgotten, as ferry_cancel would (freed
         * by this reader after the batch), and its owner is told why. */
        s->cancelled = true;
        char why[FERRY_ERROR_TEXT_MAX + 1];
        conn__copy_text(why, f->text);
        char text[FERRY_ERROR_TEXT_MAX + 1];
        int len = snprintf(text, sizeof text, "queue '%s' not subscribed again after a reconnect: %s",
                           s->queue, why);
        size_t used = len < 0 ? 0 : (size_t)len < sizeof text ? (size_t)len : sizeof text - 1;
        conn__report_error(c, f->code ? (int)f->code : FERRY_CODE_INTERNAL,
                           (struct ferry_bytes){ (const uint8_t *)text, used });
        return;
    }
}

/* ---- public ----------------------------------------------------------- */

int ferry_consume(ferry_conn *c, const char *queue, const struct ferry_consume_options *o,
                  uint64_t *sub_out)
{
    if (!c || !conn__queue_valid(queue) || !o || !o->on_message)
        return FERRY_EINVAL;
    if (conn__in_dispatch(c))
        return FERRY_EDEADLK;
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    uint64_t sub;
    /* Registered before CONSUME is sent: deliveries may follow the OK at once. */
    rc = add_sub(c, queue, o, &sub);
    if (rc == FERRY_OK) {
        struct ferry_frame f = {
            .type = FERRY_F_CONSUME,
            .queue = conn__bytes(queue),
            .sub = sub,
            .credit = o->credit ? o->credit : DEFAULT_CREDIT,
            .deadline_ms = o->ack_deadline_ms,
        };
        struct ferry_waiter w = { 0 };
        rc = request__roundtrip(c, &f, &w, c->request_timeout_ms);
        if (rc == FERRY_EIO && c->reconnect && !c->dead)
            rc = FERRY_OK; /* cut by a reconnect, which opened it with the others */
        struct ferry_sub *s = find_sub(c, sub);
        if (rc == FERRY_OK && sub_out)
            *sub_out = sub;
        else if (rc == FERRY_ETIMEDOUT && s)
            cancel_sub(c, s, false); /* the broker may still open it: close it again */
        else if (rc != FERRY_OK && s && !s->cancelled) {
            s->cancelled = true;
            if (!c->reading)
                consume__sweep(c);
        }
    }
    conn__unlock(c);
    return rc;
}

int ferry_credit(ferry_conn *c, uint64_t sub, uint32_t n)
{
    if (n == 0)
        return FERRY_EINVAL;
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    struct ferry_sub *s = find_sub(c, sub);
    if (!s || s->cancelled) {
        rc = FERRY_EINVAL;
    } else {
        struct ferry_frame f = { .type = FERRY_F_CREDIT, .sub = sub, .credit = n };
        s->credit = n > UINT32_MAX - s->credit ? UINT32_MAX : s->credit + n;
        rc = send_control(c, &f);
    }
    conn__unlock(c);
    return rc;
}

int ferry_cancel(ferry_conn *c, uint64_t sub)
{
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    struct ferry_sub *s = find_sub(c, sub);
    rc = (!s || s->cancelled) ? FERRY_EINVAL : cancel_sub(c, s, true);
    conn__unlock(c);
    return rc;
}

int ferry_ack(ferry_conn *c, uint64_t tag)
{
    return ferry_ack_many(c, &tag, 1);
}

int ferry_ack_many(ferry_conn *c, const uint64_t *tags, size_t n)
{
    if (!tags && n)
        return FERRY_EINVAL;
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    if (conn__in_dispatch(c)) {
        /* Batched: one ACK frame at the end of the reader's batch. */
        for (size_t i = 0; i < n && !c->dead; i++) {
            uint64_t tag;
            if (!reconnect__broker_tag(c, tags[i], &tag))
                continue; /* from before a reconnect: the broker took it back */
            c->pending_acks[c->pending_ack_count++] = tag;
            if (c->pending_ack_count == CONN_ACK_BATCH) {
                consume__flush_acks(c);
                io__write_now(c);
            }
        }
        rc = c->dead;
    } else {
        while (n > 0 && rc == FERRY_OK) {
            /* The broker's tags, a chunk at a time (the same values without reconnect). */
            uint64_t chunk_tags[CONN_ACK_BATCH];
            size_t chunk = 0;
            for (; n > 0 && chunk < CONN_ACK_BATCH; tags++, n--)
                if (reconnect__broker_tag(c, *tags, &chunk_tags[chunk]))
                    chunk++;
            if (chunk == 0)
                break;
            struct ferry_frame f = { .type = FERRY_F_ACK, .uints = chunk_tags, .uint_count = chunk };
            rc = send_control(c, &f);
        }
    }
    conn__unlock(c);
    return rc;
}

/* Sends one NACK or TOUCH of `tag` (f's list is filled here) after the
 * acks gathered so far. */
static int send_after_acks(ferry_conn *c, uint64_t tag, struct ferry_frame *f)
{
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    consume__flush_acks(c); /* keep settlements in the order they were made */
    uint64_t broker_tag;
    if (!reconnect__broker_tag(c, tag, &broker_tag)) {
        conn__unlock(c);
        return FERRY_OK; /* from before a reconnect: the broker took it back */
    }
    f->uints = &broker_tag;
    f->uint_count = 1;
    rc = send_control(c, f);
    conn__unlock(c);
    return rc;
}

int ferry_nack(ferry_conn *c, uint64_t tag, bool requeue)
{
    struct ferry_frame f = { .type = FERRY_F_NACK, .requeue = requeue };
    return send_after_acks(c, tag, &f);
}

int ferry_nack_delay(ferry_conn *c, uint64_t tag, uint64_t delay_ms)
{
    if (delay_ms > FERRY_DELAY_MAX_MS)
        return FERRY_EINVAL;
    struct ferry_frame f = { .type = FERRY_F_NACK, .requeue = true, .delay_ms = delay_ms };
    return send_after_acks(c, tag, &f);
}

int ferry_touch(ferry_conn *c, uint64_t tag, uint64_t deadline_ms)
{
    if (deadline_ms > FERRY_DELAY_MAX_MS)
        return FERRY_EINVAL;
    struct ferry_frame f = { .type = FERRY_F_TOUCH, .deadline_ms = deadline_ms };
    return send_after_acks(c, tag, &f);
}

/* One GET waiting at most wait_ms at the broker. FERRY_OK with *out set,
 * FERRY_OK with *out NULL when nothing came, or an error. Mutex held. */
static int get_once(struct ferry_conn *c, const char *queue, int wait_ms, ferry_message **out)
{
    struct ferry_waiter w = { .get_queue = queue };
    struct ferry_frame f = {
        .type = FERRY_F_GET, .queue = conn__bytes(queue), .wait_ms = (uint64_t)wait_ms,
    };
    /* Our own limit is the broker's wait plus the usual grace for a reply. */
    int timeout = -1;
    if (c->request_timeout_ms >= 0) {
        int64_t t = (int64_t)wait_ms + c->request_timeout_ms;
        timeout = t > INT_MAX ? INT_MAX : (int)t;
    }
    int rc = request__roundtrip(c, &f, &w, timeout);
    if (rc == FERRY_ESERVER && w.error.code == FERRY_CODE_ENDED)
        return FERRY_EENDED;
    *out = w.message; /* NULL unless a message came; ownership passes up */
    return rc;
}

int ferry_get(ferry_conn *c, const char *queue, int timeout_ms, ferry_message **out)
{
    if (!out)
        return FERRY_EINVAL;
    *out = NULL;
    if (!c || !conn__queue_valid(queue))
        return FERRY_EINVAL;
    if (conn__in_dispatch(c))
        return FERRY_EDEADLK;
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    int64_t deadline = conn__deadline(timeout_ms);
    for (;;) {
        int64_t wait_ms = GET_WAIT_CAP_MS;
        if (deadline != CONN_NO_DEADLINE) {
            int64_t left = deadline - conn__now_ms();
            wait_ms = left < 0 ? 0 : (left < wait_ms ? left : wait_ms);
        }
        rc = get_once(c, queue, (int)wait_ms, out);
        if (rc == FERRY_EIO && c->reconnect && !c->dead)
            continue; /* cut by a reconnect: ask the new connection */
        if (rc != FERRY_OK || *out)
            break;
        if (deadline != CONN_NO_DEADLINE && conn__now_ms() >= deadline) {
            rc = FERRY_ETIMEDOUT;
            break;
        }
    }
    conn__unlock(c);
    return rc;
}
