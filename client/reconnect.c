/*
 * reconnect.c - making a broken connection again (ferry_options.reconnect):
 * the backoff between attempts, the new socket and its handshake (same
 * producer identity), subscriptions opened again with their credit, and
 * the publishes not yet confirmed sent again from the resend store, with
 * their ids, for the broker to confirm without queueing them twice.
 * Whoever waits does it: a blocking call, the keeper thread, or the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"

bool reconnect__wanted(const struct ferry_conn *c, int status)
{
    return c->reconnect && !c->no_reconnect && (status == FERRY_EIO || status == FERRY_ECLOSED);
}

uint64_t reconnect__user_tag(const struct ferry_conn *c, uint64_t broker_tag)
{
    if (!c->reconnect)
        return broker_tag;
    return (c->epoch << CONN_TAG_BITS) | (broker_tag & CONN_TAG_MASK);
}

bool reconnect__broker_tag(const struct ferry_conn *c, uint64_t user_tag, uint64_t *broker_tag)
{
    if (!c->reconnect) {
        *broker_tag = user_tag;
        return true;
    }
    if ((user_tag >> CONN_TAG_BITS) != (c->epoch & (UINT64_MAX >> CONN_TAG_BITS)))
        return false; /* delivered before a reconnect: the broker has it back already */
    *broker_tag = user_tag & CONN_TAG_MASK;
    return true;
}

int reconnect__due_in(const struct ferry_conn *c)
{
    if (!c->broken)
        return -1;
    int64_t left = c->next_attempt_ms - conn__now_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/* After `attempts` failed attempts: base, 2 x base, 4 x base... up to max. */
static int64_t backoff_ms(const struct ferry_conn *c)
{
    int64_t delay = c->reconnect_base_ms;
    for (unsigned i = 1; i < c->attempts && delay < c->reconnect_max_ms; i++)
        delay *= 2;
    return delay < c->reconnect_max_ms ? delay : c->reconnect_max_ms;
}

/* ---- one attempt, mutex released ----------------------------------------- */

static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = { .fd = fd, .events = events };
    int64_t left = deadline - conn__now_ms();
    if (left <= 0)
        return FERRY_ETIMEDOUT;
    int n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
    if (n < 0 && errno == EINTR)
        return FERRY_OK;
    return n > 0 ? FERRY_OK : FERRY_ETIMEDOUT;
}

/* HELLO out, WELCOME in, on a fresh socket. */
static int handshake(int fd, const struct ferry_frame *hello, int64_t deadline,
                     struct ferry_frame *welcome_out)
{
    struct ferry_buf buf = { 0 }; /* freed below */
    int rc = ferry_frame_encode(&buf, hello) == 0 ? FERRY_OK : FERRY_ENOMEM;
    while (rc == FERRY_OK && ferry_buf_pending(&buf) > 0) {
        ssize_t n = send(fd, buf.data + buf.off, ferry_buf_pending(&buf), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            ferry_buf_consume(&buf, (size_t)n);
        else if (n < 0 && (errno == EAGAIN || errno == EINTR))
            rc = wait_fd(fd, POLLOUT, deadline);
        else
            rc = FERRY_ECONNECT;
    }
    ferry_buf_free(&buf);
    while (rc == FERRY_OK) {
        struct ferry_bytes body;
        size_t used;
        enum ferry_split split = ferry_frame_split(buf.data + buf.off, ferry_buf_pending(&buf),
                                                   FERRY_FRAME_MAX_FLOOR, &body, &used);
        if (split == FERRY_SPLIT_TOO_LARGE) {
            rc = FERRY_ECONNECT;
            break;
        }
        if (split == FERRY_SPLIT_FRAME) {
            const char *why;
            bool ok = ferry_frame_decode(body.ptr, body.len, welcome_out, &why) == FERRY_CODE_OK
                   && welcome_out->type == FERRY_F_WELCOME
                   && welcome_out->version == FERRY_PROTO_VERSION
                   && welcome_out->max_frame >= FERRY_FRAME_MAX_FLOOR
                   && welcome_out->max_frame <= FERRY_FRAME_MAX_CEILING;
            rc = ok ? FERRY_OK : FERRY_ECONNECT;
            break; /* welcome_out's spans are not used after buf is freed */
        }
        if (ferry_buf_reserve(&buf, 4096) != 0) {
            rc = FERRY_ENOMEM;
            break;
        }
        ssize_t n = recv(fd, buf.data + buf.len, buf.cap - buf.len, MSG_DONTWAIT);
        if (n > 0)
            buf.len += (size_t)n;
        else if (n < 0 && (errno == EAGAIN || errno == EINTR))
            rc = wait_fd(fd, POLLIN, deadline);
        else
            rc = FERRY_ECONNECT;
    }
    ferry_buf_free(&buf);
    return rc;
}

/* ---- putting the new connection in place (mutex held) ------------------ */

/* Whoever waited for an answer on the old connection will not get it. */
static void fail_requests(struct ferry_conn *c)
{
    for (struct ferry_waiter *w = c->waiters; w; w = w->next)
        if (!w->is_publish && !w->done)
            request__finish(c, w, FERRY_EIO, NULL);
}

static int resubscribe(struct ferry_conn *c)
{
    for (size_t i = 0; i < c->sub_count; i++) {
        struct ferry_sub *s = &c->subs[i];
        if (s->cancelled)
            continue;
        struct ferry_frame f = {
            .type = FERRY_F_CONSUME, .rid = c->next_rid++, .queue = conn__bytes(s->queue),
            .sub = s->id, .credit = s->credit, .deadline_ms = s->ack_deadline_ms,
        };
        /* Its OK has no waiter and is dropped; its ERROR finds the
         * subscription by this rid (consume__on_reopen_refused). */
        s->reopen_rid = f.rid;
        int rc = io__append(c, &f);
        if (rc != FERRY_OK)
            return rc;
    }
    return FERRY_OK;
}

static int resend_all(struct ferry_conn *c)
{
    size_t offset = 0;
    for (size_t i = 0; i < c->rec_count; i++) {
        const struct resend_rec *r = &c->recs[(c->rec_head + i) % c->rec_cap];
        if (!r->settled) {
            if (ferry_buf_append(&c->out, c->resend.data + c->resend.off + offset, r->len) != 0)
                return FERRY_ENOMEM;
            c->out_total += r->len;
        }
        offset += r->len;
    }
    return FERRY_OK;
}

static void install(struct ferry_conn *c, int fd, const struct ferry_frame *welcome)
{
    /* The descriptor number callers know stays the same, close-on-exec
     * as at connect (dup2 would clear it, and an exec'd child would keep
     * the broker's connection open). */
    dup3(fd, c->fd, O_CLOEXEC);
    close(fd);
    c->max_frame = (size_t)welcome->max_frame;
    c->heartbeat_ms = welcome->heartbeat_ms;
    c->heard_ms = conn__now_ms();
    c->pinged_ms = 0;
    /* What was buffered belonged to the old connection: replies, acks of
     * its tags, half-sent frames. Publishes are in the resend store. */
    ferry_buf_consume(&c->in, ferry_buf_pending(&c->in));
    ferry_buf_consume(&c->out, ferry_buf_pending(&c->out));
    ferry_buf_consume(&c->sending, ferry_buf_pending(&c->sending));
    c->written_total = c->out_total;
    c->pending_ack_count = 0;
    c->epoch++;
    fail_requests(c);
    /* The private reply queue of ferry_request() died with the old
     * connection: the next request makes a new one (one waiting now for a
     * reply gets its timeout). Before resubscribe(): its subscription is
     * not resumed. */
    rpc__reset(c);
    c->broken = false;
    c->attempts = 0;
    int rc = resubscribe(c);
    if (rc == FERRY_OK)
        rc = resend_all(c);
    if (rc != FERRY_OK) {
        c->no_reconnect = true;
        conn__fail(c, rc);
    }
}

/* One attempt; the roles are taken so that nobody touches the socket. */
static void attempt(struct ferry_conn *c)
{
    struct ferry_frame hello = {
        .type = FERRY_F_HELLO, .version = FERRY_PROTO_VERSION,
        .name = conn__bytes(c->name), .producer = c->producer,
    };
    int64_t deadline = conn__deadline(c->connect_timeout_ms);
    c->reconnecting = c->reading = c->writing = true;
    pthread_mutex_unlock(&c->mu);
    int fd = -1;
    struct ferry_frame welcome;
    int rc = io__connect(&c->addr, deadline, &fd);
    if (rc == FERRY_OK)
        rc = handshake(fd, &hello, deadline, &welcome);
    pthread_mutex_lock(&c->mu);
    c->reconnecting = c->reading = c->writing = false;
    if (rc == FERRY_OK && !c->dead) {
        install(c, fd, &welcome);
    } else {
        if (fd >= 0)
            close(fd);
        c->attempts++;
        c->next_attempt_ms = conn__now_ms() + backoff_ms(c);
    }
    conn__wake(c);
}

static bool may_attempt(const struct ferry_conn *c)
{
    return c->broken && !c->dead && !c->reconnecting && !c->reading && !c->writing;
}

int reconnect__pump(struct ferry_conn *c, int64_t deadline)
{
    if (c->dead)
        return c->dead;
    int64_t now = conn__now_ms();
    if (deadline != CONN_NO_DEADLINE && now >= deadline)
        return FERRY_ETIMEDOUT;
    if (!may_attempt(c) || now < c->next_attempt_ms) {
        /* Another thread attempts, or holds a role it is about to drop, or
         * the backoff runs: sleep until woken or the attempt is due. */
        int64_t until = c->next_attempt_ms > now ? c->next_attempt_ms : now + 10;
        if (deadline != CONN_NO_DEADLINE && deadline < until)
            until = deadline;
        conn__sleep(c, until);
        return c->dead;
    }
    attempt(c);
    return c->dead;
}

void reconnect__step(struct ferry_conn *c)
{
    if (may_attempt(c) && conn__now_ms() >= c->next_attempt_ms)
        attempt(c);
}

/* ---- the resend store ------------------------------------------------------ */

size_t resend__pending(const struct ferry_conn *c)
{
    return ferry_buf_pending(&c->resend);
}

int resend__record(struct ferry_conn *c, uint64_t id, const uint8_t *frame, size_t len)
{
    if (c->rec_count == c->rec_cap) {
        size_t cap = c->rec_cap ? c->rec_cap * 2 : 64;
        struct resend_rec *recs = malloc(cap * sizeof *recs);
        if (!recs)
            return FERRY_ENOMEM;
        for (size_t i = 0; i < c->rec_count; i++) /* unwrapped, oldest first */
            recs[i] = c->recs[(c->rec_head + i) % c->rec_cap];
        free(c->recs);
        c->recs = recs; /* owned by c */
        c->rec_cap = cap;
        c->rec_head = 0;
    }
    if (ferry_buf_append(&c->resend, frame, len) != 0)
        return FERRY_ENOMEM;
    c->recs[(c->rec_head + c->rec_count++) % c->rec_cap] =
        (struct resend_rec){ .id = id, .len = len, .settled = false };
    return FERRY_OK;
}

void resend__settle(struct ferry_conn *c, uint64_t id)
{
    if (c->rec_count == 0)
        return;
    uint64_t first = c->recs[c->rec_head].id;
    if (id < first || id - first >= c->rec_count)
        return;
    c->recs[(c->rec_head + (id - first)) % c->rec_cap].settled = true;
    while (c->rec_count > 0 && c->recs[c->rec_head].settled) {
        ferry_buf_consume(&c->resend, c->recs[c->rec_head].len);
        c->rec_head = (c->rec_head + 1) % c->rec_cap;
        c->rec_count--;
    }
}

void reconnect__free(struct ferry_conn *c)
{
    ferry_buf_free(&c->resend);
    free(c->recs);
    c->recs = NULL;
    if (c->silent_fd >= 0)
        close(c->silent_fd);
    if (c->silent_peer >= 0)
        close(c->silent_peer);
}
