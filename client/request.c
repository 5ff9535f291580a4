/*
 * request.c - requests that the broker answers (rid -> OK/ERROR/DELIVER)
 * and the threads waiting for them or for a publish confirm. A waiter
 * lives on its thread's stack; the reader fills it in and wakes everyone.
 * Knows nothing of what a request asks; its caller reads the reply fields.
 */
#include <string.h>

#include "conn.h"

static void link_waiter(struct ferry_conn *c, struct ferry_waiter *w)
{
    w->next = c->waiters;
    c->waiters = w;
    if (w->is_publish)
        c->publish_waiters++;
}

void request__end(struct ferry_conn *c, struct ferry_waiter *w)
{
    for (struct ferry_waiter **p = &c->waiters; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            if (w->is_publish)
                c->publish_waiters--;
            return;
        }
    }
}

uint64_t request__begin(struct ferry_conn *c, struct ferry_waiter *w)
{
    w->is_publish = false;
    w->key = c->next_rid++;
    link_waiter(c, w);
    return w->key;
}

void request__begin_publish(struct ferry_conn *c, struct ferry_waiter *w, uint64_t id)
{
    w->is_publish = true;
    w->key = id;
    link_waiter(c, w);
}

struct ferry_waiter *request__find(struct ferry_conn *c, bool is_publish, uint64_t key)
{
    for (struct ferry_waiter *w = c->waiters; w; w = w->next) {
        if (w->key == key && w->is_publish == is_publish)
            return w;
    }
    return NULL;
}

void request__finish(struct ferry_conn *c, struct ferry_waiter *w, int status,
                     const struct ferry_frame *error)
{
    (void)c;
    w->done = true;
    w->status = status;
    if (error) {
        size_t len = error->text.len < FERRY_ERROR_TEXT_MAX ? error->text.len : FERRY_ERROR_TEXT_MAX;
        w->error.code = error->code;
        if (len)
            memcpy(w->error.text, error->text.ptr, len);
        w->error.text[len] = '\0';
    }
}

int request__wait(struct ferry_conn *c, struct ferry_waiter *w, int64_t deadline)
{
    int rc = FERRY_OK;
    while (!w->done) {
        rc = io__pump(c, PUMP_INPUT, deadline);
        if (rc != FERRY_OK)
            break;
    }
    request__end(c, w);
    if (w->done)
        rc = w->status; /* an answer that came wins over what happened after */
    if (rc == FERRY_ESERVER)
        status__set_server_error(w->error.code, w->error.text, strlen(w->error.text));
    return rc;
}

/* Requests that may be made twice to the same effect: after a reconnect
 * cut their answer off, they are asked again on the new connection. */
static bool repeatable(enum ferry_frame_type type)
{
    switch (type) {
    case FERRY_F_STATS: case FERRY_F_CONNS: case FERRY_F_JOIN: case FERRY_F_DECLARE:
    case FERRY_F_END: case FERRY_F_REOPEN:
        return true;
    default:
        return false; /* PURGE, DELETE, KILL would act twice; CONSUME is reopened */
    }
}

static int roundtrip_once(struct ferry_conn *c, struct ferry_frame *f, struct ferry_waiter *w,
                          int64_t deadline)
{
    /* Requests are small: wait only for the output not to be over its bound. */
    int rc = io__wait_for_room(c, 0, deadline);
    if (rc != FERRY_OK)
        return rc;
    f->rid = request__begin(c, w);
    rc = io__append(c, f);
    if (rc == FERRY_OK)
        rc = io__send(c, deadline);
    if (rc != FERRY_OK) {
        request__end(c, w);
        return rc;
    }
    return request__wait(c, w, deadline);
}

int request__roundtrip(struct ferry_conn *c, struct ferry_frame *f, struct ferry_waiter *w,
                       int timeout_ms)
{
    if (conn__in_dispatch(c))
        return FERRY_EDEADLK;
    int64_t deadline = conn__deadline(timeout_ms);
    struct ferry_waiter fresh = *w; /* the reply fields the caller preset */
    int rc = roundtrip_once(c, f, w, deadline);
    while (rc == FERRY_EIO && c->reconnect && !c->dead && repeatable(f->type)) {
        *w = fresh;
        rc = roundtrip_once(c, f, w, deadline);
    }
    return rc;
}

void request__on_ok(struct ferry_conn *c, const struct ferry_frame *f)
{
    struct ferry_waiter *w = request__find(c, false, f->rid);
    if (!w || w->done)
        return; /* its caller timed out and left, or a CANCEL nobody waits for */
    w->count = f->count;
    w->empty = f->empty;
    if (w->name_out != NULL) {
        if (f->queue.len == 0 || f->queue.len > FERRY_NAME_MAX) {
            request__finish(c, w, FERRY_EPROTO, NULL);
            return;
        }
        memcpy(w->name_out, f->queue.ptr, f->queue.len);
        w->name_out[f->queue.len] = '\0';
    }
    int status = FERRY_OK;
    if (w->wants_stats)
        status = admin__decode_stats(f, &w->stats);
    else if (w->wants_patterns)
        status = admin__decode_patterns(f, w);
    else if (w->conns)
        status = connections__decode_page(f, w);
    else if (w->peek_queue)
        status = admin__decode_peek(f, w);
    request__finish(c, w, status, NULL);
}
