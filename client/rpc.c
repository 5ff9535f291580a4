/*
 * rpc.c - request/reply: ferry_request() publishes a message carrying the
 * connection's private reply queue and a correlation id in its headers,
 * and waits for the reply with that id; ferry_reply() answers a delivered
 * request. The reply queue is one temporary queue per connection, made and
 * subscribed to by the first request; its deliveries are matched to the
 * waiting callers here, under the connection's mutex.
 */
#include <stdio.h>
#include <string.h>

#include "conn.h"

/* Most replies unacked at once on the reply subscription; acks from the
 * callback go out once per read, so this only bounds a burst. */
#define REPLY_CREDIT 1024u

/* One caller of ferry_request() waiting for its reply: on its stack,
 * linked into c->rpc_waiters while it waits. */
struct rpc_waiter {
    struct rpc_waiter *next;
    char corr[24];
    size_t corr_len;
    ferry_message *reply; /* set by the callback; ownership passes to the caller */
    int status;           /* FERRY_OK once replied, or FERRY_ENOMEM */
    bool done;
};

static void unlink_waiter(struct ferry_conn *c, struct rpc_waiter *w)
{
    for (struct rpc_waiter **p = &c->rpc_waiters; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            return;
        }
    }
}

/* The reply subscription's callback (reader thread, mutex released): hands
 * the reply to its caller, or drops it if nobody waits any more. */
static void on_reply(ferry_conn *c, const ferry_message *m, void *arg)
{
    (void)arg;
    const void *corr = NULL;
    size_t corr_len = 0;
    bool has_corr = ferry_message_header(m, FERRY_HEADER_CORRELATION_ID, &corr, &corr_len);
    pthread_mutex_lock(&c->mu);
    struct rpc_waiter *w = c->rpc_waiters;
    while (w != NULL && !(has_corr && !w->done && w->corr_len == corr_len
                          && memcmp(w->corr, corr, corr_len) == 0))
        w = w->next;
    if (w != NULL) {
        w->reply = ferry_message_copy(m); /* the caller owns it from here */
        w->status = w->reply != NULL ? FERRY_OK : FERRY_ENOMEM;
        w->done = true;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    ferry_ack(c, m->tag); /* answered, late or stray: it leaves the queue */
}

/* Makes the reply queue and its subscription once per connection; other
 * callers wait for the one doing it. Mutex not held on entry or return. */
static int rpc_setup(struct ferry_conn *c, int64_t deadline)
{
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    while (c->rpc_state == RPC_SETTING_UP && rc == FERRY_OK && !c->dead)
        rc = conn__sleep(c, deadline);
    if (rc == FERRY_OK && c->dead)
        rc = c->dead;
    if (rc != FERRY_OK || c->rpc_state == RPC_READY) {
        conn__unlock(c);
        return rc;
    }
    c->rpc_state = RPC_SETTING_UP;
    uint64_t epoch = c->epoch;
    conn__unlock(c); /* the two round trips lock for themselves */

    char name[FERRY_NAME_MAX + 1];
    rc = ferry_declare_temp(c, NULL, name, sizeof name);
    struct ferry_consume_options o = { .credit = REPLY_CREDIT, .on_message = on_reply };
    uint64_t sub = 0;
    if (rc == FERRY_OK)
        rc = ferry_consume(c, name, &o, &sub);
    pthread_mutex_lock(&c->mu); /* even if the connection died: the state must move on */
    if (c->epoch != epoch && !c->dead) {
        /* A reconnect came meanwhile: the queue went with the old
         * connection (a DECLARE_TEMP cut off says FERRY_EIO; a CONSUME cut
         * off counts as opened). The caller makes another. */
        c->rpc_state = RPC_NONE; /* its subscription: see rpc__reset() */
        rc = FERRY_OK;
    } else if (rc == FERRY_OK) {
        memcpy(c->rpc_queue, name, sizeof name);
        c->rpc_sub = sub;
        c->rpc_state = RPC_READY;
    } else {
        c->rpc_state = RPC_NONE; /* the next request tries again */
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void rpc__reset(struct ferry_conn *c)
{
    /* No reply can reach a caller waiting now: its reply_to queue is gone.
     * It returns FERRY_EIO at once instead of at its timeout. */
    for (struct rpc_waiter *w = c->rpc_waiters; w != NULL; w = w->next) {
        if (!w->done) {
            w->status = FERRY_EIO;
            w->done = true;
        }
    }
    /* The reply subscription, also one that rpc_setup() is opening now
     * (which then finds the epoch moved): not resumed, since the broker
     * would refuse the old queue's name. */
    for (size_t i = 0; i < c->sub_count; i++) {
        if (c->subs[i].on_message == on_reply)
            c->subs[i].cancelled = true; /* freed by the reader between batches */
    }
    c->rpc_sub = 0;
    if (c->rpc_state == RPC_READY)
        c->rpc_state = RPC_NONE;
}

/* Waits (pumping) until w is answered or the deadline passes; unlinks w.
 * Mutex held. */
static int rpc_wait(struct ferry_conn *c, struct rpc_waiter *w, int64_t deadline)
{
    int rc = FERRY_OK;
    while (!w->done && rc == FERRY_OK)
        rc = io__pump(c, PUMP_INPUT, deadline);
    unlink_waiter(c, w);
    return w->done ? w->status : rc; /* a reply that came wins */
}

/* The caller's headers and two more: the reply queue and the id. */
static int with_headers(const struct ferry_publish_options *o, struct ferry_header *out,
                        size_t extra, size_t *count)
{
    size_t n = o != NULL ? o->header_count : 0;
    if (n > FERRY_HEADERS_MAX - extra || (n > 0 && o->headers == NULL))
        return FERRY_EINVAL;
    if (n > 0)
        memcpy(out, o->headers, n * sizeof *out);
    *count = n;
    return FERRY_OK;
}

int ferry_request(ferry_conn *c, const char *queue, const void *data, size_t len,
                  const struct ferry_publish_options *o, int timeout_ms, ferry_message **reply)
{
    if (!reply)
        return FERRY_EINVAL;
    *reply = NULL;
    struct ferry_header headers[FERRY_HEADERS_MAX];
    size_t n;
    if (!c || !conn__queue_valid(queue) || with_headers(o, headers, 2, &n) != FERRY_OK)
        return FERRY_EINVAL;
    if (conn__in_dispatch(c))
        return FERRY_EDEADLK;
    int64_t deadline = conn__deadline(timeout_ms);
    int rc;
    for (;;) {
        rc = rpc_setup(c, deadline);
        if (rc != FERRY_OK)
            return rc;
        rc = conn__lock(c);
        if (rc != FERRY_OK)
            return rc;
        if (c->rpc_state == RPC_READY)
            break;
        /* A reconnect took the reply queue since: make another. */
        conn__unlock(c);
        if (deadline != CONN_NO_DEADLINE && conn__now_ms() >= deadline)
            return FERRY_ETIMEDOUT;
    }
    struct rpc_waiter w = { .next = c->rpc_waiters };
    w.corr_len = (size_t)snprintf(w.corr, sizeof w.corr, "%llx",
                                  (unsigned long long)++c->rpc_next_id);
    c->rpc_waiters = &w; /* linked before the request goes out: no reply is missed */
    char queue_name[FERRY_NAME_MAX + 1];
    memcpy(queue_name, c->rpc_queue, sizeof queue_name);
    conn__unlock(c);

    headers[n++] = (struct ferry_header){ FERRY_HEADER_REPLY_TO, queue_name, strlen(queue_name) };
    headers[n++] = (struct ferry_header){ FERRY_HEADER_CORRELATION_ID, w.corr, w.corr_len };
    struct ferry_publish_options po = o != NULL ? *o : (struct ferry_publish_options){ 0 };
    po.headers = headers;
    po.header_count = n;
    rc = ferry_publish_opts(c, queue, data, len, &po);

    /* w lives on this stack: it leaves the list whatever happened, so the
     * lock is taken even on a dead connection. */
    pthread_mutex_lock(&c->mu);
    if (rc == FERRY_OK)
        rc = rpc_wait(c, &w, deadline);
    else
        unlink_waiter(c, &w);
    pthread_mutex_unlock(&c->mu);
    if (rc == FERRY_OK)
        *reply = w.reply;
    else
        ferry_message_free(w.reply);
    return rc;
}

int ferry_reply(ferry_conn *c, const ferry_message *request, const void *data, size_t len,
                const struct ferry_publish_options *o)
{
    const void *to, *corr;
    size_t to_len, corr_len;
    if (!c || !request
        || !ferry_message_header(request, FERRY_HEADER_REPLY_TO, &to, &to_len)
        || !ferry_message_header(request, FERRY_HEADER_CORRELATION_ID, &corr, &corr_len)
        || to_len == 0 || to_len > FERRY_NAME_MAX)
        return FERRY_EINVAL;
    char queue[FERRY_NAME_MAX + 1];
    memcpy(queue, to, to_len);
    queue[to_len] = '\0';
    struct ferry_header headers[FERRY_HEADERS_MAX];
    size_t n;
    if (with_headers(o, headers, 1, &n) != FERRY_OK)
        return FERRY_EINVAL;
    headers[n++] = (struct ferry_header){ FERRY_HEADER_CORRELATION_ID, corr, corr_len };
    struct ferry_publish_options po = o != NULL ? *o : (struct ferry_publish_options){ 0 };
    po.headers = headers;
    po.header_count = n;
    return ferry_publish_opts(c, queue, data, len, &po);
}
