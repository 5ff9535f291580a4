/*
 * conn.c - one client connection of ferryd: the protocol state machine
 * (HELLO first, then requests), its input and output buffers, and the set
 * of all connections, which flushes every connection's output with one
 * write() at the end of each input batch.
 *
 * Knows frames (proto/) and the broker (broker.h); knows nothing of
 * listeners, addresses or signals (server.c).
 */
#include "conn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#ifndef FERRYD_VERSION
#define FERRYD_VERSION "unknown"
#endif

/* One read() asks for this much; a few reads per event keep one busy
 * peer from starving the others. */
#define READ_CHUNK (64u * 1024u)
#define READS_PER_EVENT 4
/* Output capacity kept once a connection's output has drained. */
#define OUT_KEEP (64u * 1024u)

#define HANDSHAKE_TIMEOUT_S 10
/* A closing connection gets this long to take its last output. */
#define CLOSING_TIMEOUT_S 5
/* TCP: after the last byte is out, how long to wait for the peer to
 * close, so that its unread input does not make the kernel reset the
 * connection (a reset can destroy the ERROR frame before the peer reads
 * it). A Unix socket keeps the data readable, so it closes at once. */
#define LINGER_TIMEOUT_S 2

/* Per connection: waiting GETs and JOINs, each holding server memory. */
#define GET_WAITS_MAX 1024u
#define JOINS_MAX 1024u
/* GET `wait` is cut to this (24 h). */
#define GET_WAIT_MAX_MS (24u * 3600u * 1000u)

enum conn_state {
    CONN_AWAITING_HELLO, /* connected: only HELLO is accepted */
    CONN_OPEN,           /* handshake done: requests are served */
    CONN_CLOSING,        /* fatal error or EOF: no more input, output flushing */
    CONN_LINGERING,      /* TCP: output out, write side shut: waiting for the peer's EOF */
    CONN_CLOSED,         /* being freed: nothing more is sent */
};

/* A GET with `wait` > 0 that no message has answered yet. */
struct get_wait {
    struct get_wait *next;
    struct conn *conn;
    uint64_t rid;
    struct event *timer; /* owned: expiry answers OK empty */
};

struct conn {
    struct conn_set *set;
    struct conn *prev, *next;             /* set->all */
    struct conn *dirty_prev, *dirty_next; /* set->dirty, while `dirty` */
    bool dirty;

    int fd;                /* owned */
    bool is_tcp;           /* lingers before closing, see LINGER_TIMEOUT_S */
    uint64_t id;           /* for log lines */
    enum conn_state state;
    struct session *session; /* owned, freed through the broker; NULL once released */

    struct event *read_ev;  /* persistent; off while throttled or closing */
    struct event *write_ev; /* one-shot; added when the socket is full */
    struct event *timer_ev; /* handshake, closing and linger timeouts */
    bool write_armed;
    /* Output above max_output: the broker skips this session and no input
     * is read or handled until the output drains to half the bound. */
    bool throttled;

    struct ferry_buf in;  /* bytes read, not yet handled */
    struct ferry_buf out; /* frames encoded, not yet written */

    struct get_wait *gets; /* owned list */
    size_t get_count;
    size_t join_count;     /* JOINs the broker has not answered yet */

    /* The GET being handled right now, to know whether the broker answered
     * it before broker_get returned (0: none). */
    uint64_t get_now_rid;
    bool get_now_answered;
};

/* The ids of the publishes confirmed while one connection's input batch
 * is handled; they go out as one CONFIRM at the end of the batch. Only one
 * batch is handled at a time, so the set keeps one for all connections. */
struct confirm_batch {
    struct conn *owner;
    uint64_t *ids; /* owned */
    size_t count;
    size_t cap;
};

struct conn_set {
    struct event_base *base;
    struct broker *broker;
    struct conn_limits limits;
    const struct timeval *handshake_timeout; /* libevent common timeout */

    struct conn *all;
    size_t count;
    struct conn *dirty; /* connections with output to write */
    uint64_t next_id;
    uint64_t started_ms;

    struct confirm_batch confirms;

    bool shutting_down;
    void (*all_closed)(void *arg); /* called once, then cleared */
    void *all_closed_arg;
};

static const struct session_ops conn_session_ops;

static void conn_close(struct conn *c);
static void emit_confirms(struct conn *c);
static void flush_dirty(struct conn_set *set);
static void process_input(struct conn *c);
static void end_batch(struct conn *c);

/* ---- small helpers ------------------------------------------------------ */

static struct ferry_bytes text_bytes(const char *text)
{
    return (struct ferry_bytes){ (const uint8_t *)text, strlen(text) };
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timeval seconds(long s)
{
    return (struct timeval){ .tv_sec = s, .tv_usec = 0 };
}

/* Words for the ERROR frames the broker's codes turn into. */
static const char *code_text(enum ferry_code code)
{
    switch (code) {
    case FERRY_CODE_BAD_NAME: return "bad queue name";
    case FERRY_CODE_NOT_FOUND: return "no such queue";
    case FERRY_CODE_ENDED: return "queue is ended";
    case FERRY_CODE_UNKNOWN_SUB: return "no such subscription";
    case FERRY_CODE_SUB_EXISTS: return "subscription id already in use";
    case FERRY_CODE_LIMIT: return "server limit reached";
    case FERRY_CODE_QUEUE_FULL: return "queue is full";
    case FERRY_CODE_NO_MEMORY: return "server out of memory";
    case FERRY_CODE_BAD_REQUEST: return "bad request";
    default: return ferry_code_name(code);
    }
}

/* ---- the dirty list: connections with output to write ------------------ */

static void mark_dirty(struct conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->dirty_prev = NULL;
    c->dirty_next = c->set->dirty;
    if (c->dirty_next)
        c->dirty_next->dirty_prev = c;
    c->set->dirty = c;
}

static void unmark_dirty(struct conn *c)
{
    if (!c->dirty)
        return;
    if (c->dirty_prev)
        c->dirty_prev->dirty_next = c->dirty_next;
    else
        c->set->dirty = c->dirty_next;
    if (c->dirty_next)
        c->dirty_next->dirty_prev = c->dirty_prev;
    c->dirty = false;
    c->dirty_prev = c->dirty_next = NULL;
}

/* ---- output ------------------------------------------------------------- */

static void throttle(struct conn *c)
{
    if (c->throttled)
        return;
    c->throttled = true;
    /* Allowed from inside a session_ops callback: see broker.h. */
    broker_session_set_writable(c->set->broker, c->session, false);
    event_del(c->read_ev);
}

/* Entered on a fatal error or the peer's EOF: nothing more is read or
 * handled, nothing more is delivered; the output still goes out. */
static void enter_closing(struct conn *c)
{
    c->state = CONN_CLOSING;
    broker_session_set_writable(c->set->broker, c->session, false);
    event_del(c->read_ev);
    struct timeval tv = seconds(CLOSING_TIMEOUT_S);
    event_add(c->timer_ev, &tv);
    mark_dirty(c);
}

/* Sends a fatal ERROR after the output already queued, then closes.
 * Safe inside session_ops callbacks: it does not free the connection. */
static void conn_fail(struct conn *c, enum ferry_code code, const char *text)
{
    if (c->state >= CONN_CLOSING)
        return;
    emit_confirms(c); /* what was accepted stays confirmed */
    log_debug("conn %" PRIu64 ": fatal %s: %s", c->id, ferry_code_name(code), text);
    struct ferry_frame f = {
        .type = FERRY_F_ERROR, .code = code, .fatal = true, .text = text_bytes(text),
    };
    if (ferry_frame_encode(&c->out, &f) != 0)
        log_warn("conn %" PRIu64 ": no memory for the ERROR frame; closing", c->id);
    enter_closing(c);
}

/* Queues one frame for the peer. Every DELIVER, reply and CONFIRM passes
 * here: it is encoded straight into the output buffer and written at the
 * end of the batch. */
static void conn_send(struct conn *c, const struct ferry_frame *f)
{
    if (c->state >= CONN_CLOSING)
        return;
    if (ferry_frame_encode(&c->out, f) != 0) {
        conn_fail(c, FERRY_CODE_NO_MEMORY, "server out of memory");
        return;
    }
    mark_dirty(c);
    if (ferry_buf_pending(&c->out) > c->set->limits.max_output)
        throttle(c);
}

/* ---- confirms ------------------------------------------------------------ */

static void emit_confirms(struct conn *c)
{
    struct confirm_batch *batch = &c->set->confirms;
    if (batch->owner != c || batch->count == 0)
        return;
    struct ferry_frame f = {
        .type = FERRY_F_CONFIRM, .uints = batch->ids, .uint_count = batch->count,
    };
    batch->count = 0;
    conn_send(c, &f);
}

/* Makes room for one more id; false if memory is short. */
static bool confirm_room(struct confirm_batch *batch)
{
    if (batch->count < batch->cap)
        return true;
    if (batch->cap >= FERRY_LIST_MAX)
        return false;
    size_t cap = batch->cap ? batch->cap * 2 : 256;
    uint64_t *ids = realloc(batch->ids, cap * sizeof *ids);
    if (!ids)
        return false;
    batch->ids = ids;
    batch->cap = cap;
    return true;
}

static void confirm_add(struct conn *c, uint64_t id)
{
    struct confirm_batch *batch = &c->set->confirms;
    if (batch->owner != c) {
        if (batch->owner)
            emit_confirms(batch->owner);
        batch->owner = c;
    }
    if (!confirm_room(batch)) {
        /* The list is at the protocol's bound (or memory is short): send
         * what is gathered and start over. */
        emit_confirms(c);
        if (!confirm_room(batch)) {
            uint64_t one[1] = { id };
            struct ferry_frame f = { .type = FERRY_F_CONFIRM, .uints = one, .uint_count = 1 };
            conn_send(c, &f);
            return;
        }
    }
    batch->ids[batch->count++] = id;
}

/* ---- replies to requests -------------------------------------------------- */

/* A reply goes out after the confirms of the publishes before it, so a
 * client sees its requests answered in order. */
static void conn_reply(struct conn *c, const struct ferry_frame *f)
{
    emit_confirms(c);
    conn_send(c, f);
}

static void reply_ok(struct conn *c, uint64_t rid)
{
    struct ferry_frame f = { .type = FERRY_F_OK, .rid = rid };
    conn_reply(c, &f);
}

static void reply_error(struct conn *c, uint64_t rid, enum ferry_code code, const char *text)
{
    if (ferry_code_is_fatal(code)) {
        conn_fail(c, code, text);
        return;
    }
    struct ferry_frame f = {
        .type = FERRY_F_ERROR, .code = code, .rid = rid, .text = text_bytes(text),
    };
    conn_reply(c, &f);
}

/* OK, or ERROR with the broker's code. */
static void reply_code(struct conn *c, uint64_t rid, enum ferry_code code)
{
    if (code == FERRY_CODE_OK)
        reply_ok(c, rid);
    else
        reply_error(c, rid, code, code_text(code));
}

/* rid 0 is "absent"; requests that are answered need one. */
static bool has_rid(struct conn *c, const struct ferry_frame *f)
{
    if (f->rid != 0)
        return true;
    reply_error(c, 0, FERRY_CODE_BAD_REQUEST, "rid must be nonzero");
    return false;
}

/* ---- waiting GETs --------------------------------------------------------- */

static void get_wait_free(struct get_wait *w)
{
    event_free(w->timer);
    free(w);
}

/* Removes and frees the waiting GET `rid`; false if there is none. */
static bool get_wait_remove(struct conn *c, uint64_t rid)
{
    for (struct get_wait **link = &c->gets; *link; link = &(*link)->next) {
        struct get_wait *w = *link;
        if (w->rid == rid) {
            *link = w->next;
            c->get_count--;
            get_wait_free(w);
            return true;
        }
    }
    return false;
}

/* The broker answered GET `rid` (a message, or the queue ended). */
static void get_answered(struct conn *c, uint64_t rid)
{
    if (rid == c->get_now_rid)
        c->get_now_answered = true;
    else
        get_wait_remove(c, rid);
}

static void on_get_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct get_wait *w = arg;
    struct conn *c = w->conn;
    uint64_t rid = w->rid;
    get_wait_remove(c, rid); /* frees w and its timer; not used below */
    if (broker_get_cancel(c->set->broker, c->session, rid)) {
        struct ferry_frame f = { .type = FERRY_F_OK, .rid = rid, .empty = true };
        conn_reply(c, &f);
    }
    flush_dirty(c->set);
}

/* Keeps GET `rid` waiting `wait_ms` for a message. false on ENOMEM. */
static bool get_wait_start(struct conn *c, uint64_t rid, uint64_t wait_ms)
{
    struct get_wait *w = calloc(1, sizeof *w);
    if (!w)
        return false;
    w->conn = c;
    w->rid = rid;
    w->timer = evtimer_new(c->set->base, on_get_timeout, w);
    if (!w->timer) {
        free(w);
        return false;
    }
    struct timeval tv = {
        .tv_sec = (time_t)(wait_ms / 1000u),
        .tv_usec = (suseconds_t)(wait_ms % 1000u) * 1000,
    };
    event_add(w->timer, &tv);
    w->next = c->gets; /* the connection owns w from here */
    c->gets = w;
    c->get_count++;
    return true;
}

/* ---- session_ops: the broker talks back ---------------------------------- */

static void on_deliver(void *owner, uint64_t sub, uint64_t rid, uint64_t tag,
                       const struct message *m)
{
    struct conn *c = owner;
    if (rid != 0)
        get_answered(c, rid);
    struct ferry_frame f = {
        .type = FERRY_F_DELIVER,
        .sub = sub,
        .rid = rid,
        .tag = tag,
        .attempt = m->attempts,
        .headers = message_headers(m),
        .payload = message_payload(m),
    };
    conn_send(c, &f);
}

static void on_end_of_stream(void *owner, uint64_t sub, struct ferry_bytes name)
{
    struct ferry_frame f = { .type = FERRY_F_EOS, .sub = sub, .queue = name };
    conn_send(owner, &f);
}

static void on_join_done(void *owner, uint64_t rid, enum ferry_code code)
{
    struct conn *c = owner;
    if (c->join_count > 0)
        c->join_count--;
    reply_code(c, rid, code);
}

static void on_get_ended(void *owner, uint64_t rid)
{
    struct conn *c = owner;
    get_answered(c, rid);
    reply_error(c, rid, FERRY_CODE_ENDED, "queue is ended and drained");
}

static const struct session_ops conn_session_ops = {
    .deliver = on_deliver,
    .end_of_stream = on_end_of_stream,
    .join_done = on_join_done,
    .get_ended = on_get_ended,
};

/* ---- frame handlers ------------------------------------------------------ */

static void on_hello(struct conn *c, const struct ferry_frame *f)
{
    if (f->version != FERRY_PROTO_VERSION) {
        conn_fail(c, FERRY_CODE_VERSION, "unsupported protocol version (this server speaks 1)");
        return;
    }
    event_del(c->timer_ev);
    c->state = CONN_OPEN;
    struct ferry_frame w = {
        .type = FERRY_F_WELCOME,
        .version = FERRY_PROTO_VERSION,
        .name = text_bytes("ferryd " FERRYD_VERSION),
        .max_frame = c->set->limits.max_frame,
        .heartbeat_ms = 0,
    };
    conn_reply(c, &w);
}

static void on_ping(struct conn *c, const struct ferry_frame *f)
{
    struct ferry_frame pong = { .type = FERRY_F_PONG, .rid = f->rid };
    conn_reply(c, &pong);
}

/* ERROR for a refused publish, carrying its id when it has one. */
static void refuse_publish(struct conn *c, const struct ferry_frame *f, enum ferry_code code)
{
    if (ferry_code_is_fatal(code)) {
        conn_fail(c, code, code_text(code));
        return;
    }
    struct ferry_frame e = {
        .type = FERRY_F_ERROR, .code = code, .text = text_bytes(code_text(code)),
        .id = f->id, .has_id = f->has_id,
    };
    conn_reply(c, &e);
}

static void on_publish(struct conn *c, const struct ferry_frame *f)
{
    enum ferry_code code = broker_publish(c->set->broker, f->queue, f->payload, f->headers);
    if (code != FERRY_CODE_OK) {
        refuse_publish(c, f, code);
        return;
    }
    if (f->has_id)
        confirm_add(c, f->id);
}

/* All or nothing: what can refuse a batch (the name, an ended queue, the
 * queue limit) refuses its first item, before anything is queued. Only
 * running out of memory half way could split it. */
static void on_publish_batch(struct conn *c, const struct ferry_frame *f)
{
    if (!ferry_name_valid(f->queue)) {
        refuse_publish(c, f, FERRY_CODE_BAD_NAME);
        return;
    }
    struct ferry_iter it;
    struct ferry_item item;
    ferry_iter_init(&it, f);
    while (ferry_iter_item(&it, &item)) {
        enum ferry_code code = broker_publish(c->set->broker, f->queue, item.payload, item.headers);
        if (code != FERRY_CODE_OK) {
            refuse_publish(c, f, code);
            return;
        }
    }
    if (f->has_id)
        confirm_add(c, f->id);
}

/* Cuts the bytes [from, to) (offsets into the pending output) back out. */
static void out_cut(struct conn *c, size_t from, size_t to)
{
    uint8_t *base = c->out.data + c->out.off;
    size_t pending = ferry_buf_pending(&c->out);
    memmove(base + from, base + to, pending - to);
    c->out.len -= to - from;
}

static void on_consume(struct conn *c, const struct ferry_frame *f)
{
    if (!has_rid(c, f))
        return;
    if (f->sub == 0 || f->credit == 0 || f->credit > UINT32_MAX) {
        reply_error(c, f->rid, FERRY_CODE_BAD_REQUEST, "sub must be nonzero and credit 1..2^32-1");
        return;
    }
    /* The OK goes out before the deliveries that broker_consume may make
     * at once, so it is queued first and cut back out if refused. */
    emit_confirms(c);
    size_t before = ferry_buf_pending(&c->out);
    reply_ok(c, f->rid);
    size_t after = ferry_buf_pending(&c->out);
    enum ferry_code code = broker_consume(c->set->broker, c->session, f->queue, f->sub, f->credit);
    if (code == FERRY_CODE_OK || c->state >= CONN_CLOSING)
        return;
    out_cut(c, before, after);
    reply_error(c, f->rid, code, code_text(code));
}

static void on_credit(struct conn *c, const struct ferry_frame *f)
{
    if (f->sub == 0) {
        reply_error(c, 0, FERRY_CODE_BAD_REQUEST, "sub must be nonzero");
        return;
    }
    enum ferry_code code = broker_credit(c->set->broker, c->session, f->sub, f->credit);
    if (code != FERRY_CODE_OK)
        reply_error(c, 0, code, code_text(code));
}

/* ACK and NACK: every tag is settled; the unknown ones earn one ERROR. */
static void on_settle(struct conn *c, const struct ferry_frame *f)
{
    struct ferry_iter it;
    uint64_t tag;
    uint64_t first_unknown = 0;
    size_t unknown = 0;
    ferry_iter_init(&it, f);
    while (ferry_iter_uint(&it, &tag)) {
        enum ferry_code code = f->type == FERRY_F_ACK
                                   ? broker_ack(c->set->broker, c->session, tag)
                                   : broker_nack(c->set->broker, c->session, tag, f->requeue);
        if (code != FERRY_CODE_OK && unknown++ == 0)
            first_unknown = tag;
    }
    if (unknown == 0)
        return;
    char text[128];
    snprintf(text, sizeof text, "%zu tag(s) not in flight on this connection (first: %" PRIu64 ")",
             unknown, first_unknown);
    reply_error(c, 0, FERRY_CODE_UNKNOWN_TAG, text);
}

static void on_cancel(struct conn *c, const struct ferry_frame *f)
{
    if (!has_rid(c, f))
        return;
    if (f->sub == 0) {
        reply_error(c, f->rid, FERRY_CODE_BAD_REQUEST, "sub must be nonzero");
        return;
    }
    reply_code(c, f->rid, broker_cancel(c->set->broker, c->session, f->sub));
}

static void on_get(struct conn *c, const struct ferry_frame *f)
{
    if (!has_rid(c, f))
        return;
    if (f->wait_ms > 0 && c->get_count >= GET_WAITS_MAX) {
        reply_error(c, f->rid, FERRY_CODE_LIMIT, "too many waiting GETs on this connection");
        return;
    }
    c->get_now_rid = f->rid;
    c->get_now_answered = false;
    enum ferry_code code = broker_get(c->set->broker, c->session, f->queue, f->rid);
    bool answered = c->get_now_answered;
    c->get_now_rid = 0;
    if (code != FERRY_CODE_OK) {
        reply_error(c, f->rid, code, code_text(code));
        return;
    }
    if (answered)
        return;
    uint64_t wait_ms = f->wait_ms < GET_WAIT_MAX_MS ? f->wait_ms : GET_WAIT_MAX_MS;
    if (wait_ms > 0 && get_wait_start(c, f->rid, wait_ms))
        return;
    bool was_waiting = broker_get_cancel(c->set->broker, c->session, f->rid);
    if (wait_ms > 0) {
        reply_error(c, f->rid, FERRY_CODE_NO_MEMORY, "server out of memory");
    } else if (was_waiting) {
        struct ferry_frame ok = { .type = FERRY_F_OK, .rid = f->rid, .empty = true };
        conn_reply(c, &ok);
    }
}

/* DECLARE, DELETE, END, REOPEN: a queue operation answered OK or ERROR. */
static void on_queue_admin(struct conn *c, const struct ferry_frame *f)
{
    if (!has_rid(c, f))
        return;
    struct broker *b = c->set->broker;
    enum ferry_code code;
    switch (f->type) {
    case FERRY_F_DECLARE: code = broker_declare(b, f->queue); break;
    case FERRY_F_DELETE: code = broker_delete(b, f->queue); break;
    case FERRY_F_END: code = broker_end(b, f->queue); break;
    case FERRY_F_REOPEN: code = broker_reopen(b, f->queue); break;
    default: code = FERRY_CODE_INTERNAL; break;
    }
    reply_code(c, f->rid, code);
}

static void on_purge(struct conn *c, const struct ferry_frame *f)
{
    if (!has_rid(c, f))
        return;
    uint64_t purged = 0;
    enum ferry_code code = broker_purge(c->set->broker, f->queue, &purged);
    if (code != FERRY_CODE_OK) {
        reply_error(c, f->rid, code, code_text(code));
        return;
    }
    struct ferry_frame ok = { .type = FERRY_F_OK, .rid = f->rid, .count = purged };
    conn_reply(c, &ok);
}

static void on_join(struct conn *c, const struct ferry_frame *f)
{
    if (!has_rid(c, f))
        return;
    if (c->join_count >= JOINS_MAX) {
        reply_error(c, f->rid, FERRY_CODE_LIMIT, "too many waiting JOINs on this connection");
        return;
    }
    c->join_count++; /* before the call: the broker may answer at once */
    enum ferry_code code = broker_join(c->set->broker, c->session, f->queue, f->rid);
    if (code != FERRY_CODE_OK) {
        c->join_count--;
        reply_error(c, f->rid, code, code_text(code));
    }
}

/* ---- STATS ----------------------------------------------------------------- */

struct stats_table {
    struct ferry_queue_stats *rows; /* owned by the handler */
    size_t count;
    size_t cap;
};

static struct ferry_queue_stats stats_row(struct ferry_bytes name, const struct queue_stats *st)
{
    return (struct ferry_queue_stats){
        .name = name, .depth = st->depth, .inflight = st->inflight,
        .consumers = st->consumers, .published = st->published,
        .delivered = st->delivered, .acked = st->acked,
        .redelivered = st->redelivered, .dropped = st->dropped,
        .bytes = st->bytes, .ended = st->ended,
    };
}

static void stats_collect(void *arg, struct ferry_bytes name, const struct queue_stats *st)
{
    struct stats_table *t = arg;
    if (t->count < t->cap)
        t->rows[t->count++] = stats_row(name, st);
}

/* Encodes the OK reply; ERROR LIMIT instead if it would not fit a frame. */
static void send_stats(struct conn *c, uint64_t rid, const struct ferry_queue_stats *rows,
                       size_t count)
{
    struct broker *b = c->set->broker;
    struct ferry_server_stats server = {
        .connections = c->set->count,
        .queues = broker_queue_count(b),
        .uptime_ms = monotonic_ms() - c->set->started_ms,
        .messages = broker_message_count(b),
        .bytes = broker_message_bytes(b),
    };
    struct ferry_frame ok = {
        .type = FERRY_F_OK, .rid = rid,
        .server_stats = &server, .stats = rows, .stats_count = count,
    };
    emit_confirms(c);
    size_t before = ferry_buf_pending(&c->out);
    conn_reply(c, &ok);
    size_t after = ferry_buf_pending(&c->out);
    if (c->state >= CONN_CLOSING || after - before <= FERRY_FRAME_PREFIX + c->set->limits.max_frame)
        return;
    out_cut(c, before, after);
    reply_error(c, rid, FERRY_CODE_LIMIT, "stats too large for one frame; ask for one queue");
}

static void on_stats(struct conn *c, const struct ferry_frame *f)
{
    if (!has_rid(c, f))
        return;
    struct broker *b = c->set->broker;
    if (f->queue.len > 0) {
        struct queue_stats st;
        enum ferry_code code = broker_queue_stats(b, f->queue, &st);
        if (code != FERRY_CODE_OK) {
            reply_error(c, f->rid, code, code_text(code));
            return;
        }
        struct ferry_queue_stats row = stats_row(f->queue, &st);
        send_stats(c, f->rid, &row, 1);
        return;
    }
    size_t queues = broker_queue_count(b);
    struct stats_table t = { .cap = queues };
    if (queues > 0) {
        t.rows = calloc(queues, sizeof *t.rows);
        if (!t.rows) {
            reply_error(c, f->rid, FERRY_CODE_NO_MEMORY, "server out of memory");
            return;
        }
        broker_each_queue(b, stats_collect, &t);
    }
    send_stats(c, f->rid, t.rows, t.count); /* the names point into the broker */
    free(t.rows);
}

/* ---- dispatch -------------------------------------------------------------- */

static void handle_frame(struct conn *c, const struct ferry_frame *f)
{
    if (c->state == CONN_AWAITING_HELLO) {
        if (f->type == FERRY_F_HELLO)
            on_hello(c, f);
        else
            conn_fail(c, FERRY_CODE_HANDSHAKE, "the first frame must be HELLO");
        return;
    }
    switch (f->type) {
    case FERRY_F_HELLO: conn_fail(c, FERRY_CODE_HANDSHAKE, "HELLO was already received"); break;
    case FERRY_F_PING: on_ping(c, f); break;
    case FERRY_F_PONG: break; /* the server sends no PING; a stray PONG is harmless */
    case FERRY_F_PUBLISH: on_publish(c, f); break;
    case FERRY_F_PUBLISH_BATCH: on_publish_batch(c, f); break;
    case FERRY_F_CONSUME: on_consume(c, f); break;
    case FERRY_F_CREDIT: on_credit(c, f); break;
    case FERRY_F_ACK: on_settle(c, f); break;
    case FERRY_F_NACK: on_settle(c, f); break;
    case FERRY_F_CANCEL: on_cancel(c, f); break;
    case FERRY_F_GET: on_get(c, f); break;
    case FERRY_F_DECLARE: on_queue_admin(c, f); break;
    case FERRY_F_DELETE: on_queue_admin(c, f); break;
    case FERRY_F_END: on_queue_admin(c, f); break;
    case FERRY_F_REOPEN: on_queue_admin(c, f); break;
    case FERRY_F_PURGE: on_purge(c, f); break;
    case FERRY_F_JOIN: on_join(c, f); break;
    case FERRY_F_STATS: on_stats(c, f); break;
    case FERRY_F_WELCOME:
    case FERRY_F_ERROR:
    case FERRY_F_OK:
    case FERRY_F_CONFIRM:
    case FERRY_F_DELIVER:
    case FERRY_F_EOS:
    default:
        conn_fail(c, FERRY_CODE_UNKNOWN_FRAME, "frame type not accepted from a client");
        break;
    }
}

/* Splits, decodes and handles every whole frame in the input buffer,
 * unless the connection closes or its output fills up first. */
static void process_input(struct conn *c)
{
    while (c->state <= CONN_OPEN && !c->throttled) {
        size_t pending = ferry_buf_pending(&c->in);
        if (pending == 0)
            break;
        struct ferry_bytes body;
        size_t used;
        enum ferry_split split = ferry_frame_split(c->in.data + c->in.off, pending,
                                                   c->set->limits.max_frame, &body, &used);
        if (split == FERRY_SPLIT_INCOMPLETE)
            break;
        if (split == FERRY_SPLIT_TOO_LARGE) {
            conn_fail(c, FERRY_CODE_FRAME_TOO_LARGE, "frame larger than max_frame");
            break;
        }
        struct ferry_frame f;
        const char *why = NULL;
        enum ferry_code code = ferry_frame_decode(body.ptr, body.len, &f, &why);
        if (code != FERRY_CODE_OK) {
            conn_fail(c, code, why ? why : "bad frame");
            break;
        }
        handle_frame(c, &f);
        ferry_buf_consume(&c->in, used); /* f pointed into these bytes */
    }
    if (c->state >= CONN_CLOSING)
        ferry_buf_free(&c->in);
}

/* The end of one input batch: the confirms it gathered go out as one frame. */
static void end_batch(struct conn *c)
{
    emit_confirms(c);
}

/* ---- socket I/O ------------------------------------------------------------ */

/* Gives the connection's messages back to the broker, as soon as the
 * peer can no longer settle them (its last output is out, or it is gone):
 * they are redelivered elsewhere without waiting for the close. Must not
 * run inside a session_ops callback. */
static void release_session(struct conn *c)
{
    while (c->gets) {
        struct get_wait *w = c->gets;
        c->gets = w->next;
        get_wait_free(w);
    }
    c->get_count = 0;
    if (!c->session)
        return;
    /* The broker owns the session; freeing it requeues what c held, which
     * may deliver to other connections (they become dirty). */
    broker_session_free(c->set->broker, c->session);
    c->session = NULL;
}

/* Once everything is out, the write side is shut and the peer gets a
 * moment to read it and close its end. */
static void start_lingering(struct conn *c)
{
    c->state = CONN_LINGERING;
    shutdown(c->fd, SHUT_WR);
    event_add(c->read_ev, NULL);
    struct timeval tv = seconds(LINGER_TIMEOUT_S);
    event_add(c->timer_ev, &tv);
}

/* The output drained to half its bound: deliveries and input resume,
 * starting with the frames already buffered. */
static void unthrottle(struct conn *c)
{
    c->throttled = false;
    event_add(c->read_ev, NULL);
    broker_session_set_writable(c->set->broker, c->session, true);
    process_input(c);
    end_batch(c);
}

static void arm_write(struct conn *c)
{
    if (!c->write_armed && event_add(c->write_ev, NULL) == 0)
        c->write_armed = true;
}

/* What follows a write: wait for the socket, resume, or finish closing
 * (which may free c). */
static void after_write(struct conn *c)
{
    size_t pending = ferry_buf_pending(&c->out);
    if (pending > 0)
        arm_write(c);
    else if (c->out.cap > OUT_KEEP)
        ferry_buf_shrink(&c->out, OUT_KEEP);

    if (c->state == CONN_CLOSING) {
        if (pending > 0)
            return;
        release_session(c);
        if (c->is_tcp)
            start_lingering(c);
        else
            conn_close(c);
        return;
    }
    if (c->throttled && pending <= c->set->limits.max_output / 2)
        unthrottle(c);
}

/* One write() of everything queued for c. May free c. */
static void conn_write(struct conn *c)
{
    if (c->write_armed)
        return; /* the socket was full; the write event will come */
    size_t pending = ferry_buf_pending(&c->out);
    if (pending > 0) {
        ssize_t n;
        do
            n = write(c->fd, c->out.data + c->out.off, pending);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN) {
            log_debug("conn %" PRIu64 ": write: %s", c->id, strerror(errno));
            conn_close(c);
            return;
        }
        if (n > 0)
            ferry_buf_consume(&c->out, (size_t)n);
    }
    after_write(c);
}

/* Writes out every connection with output queued; closes the ones whose
 * peer is gone. Each pass takes one connection off the list; one comes
 * back only with new output, which credit and the bounds limit. */
static void flush_dirty(struct conn_set *set)
{
    struct conn *c;
    while ((c = set->dirty) != NULL) {
        unmark_dirty(c);
        conn_write(c);
    }
}

/* Reads and handles input: at most READS_PER_EVENT reads. Returns false
 * if the connection is dead and must be closed at once. */
static bool read_input(struct conn *c)
{
    for (int i = 0; i < READS_PER_EVENT; i++) {
        if (ferry_buf_reserve(&c->in, READ_CHUNK) != 0) {
            conn_fail(c, FERRY_CODE_NO_MEMORY, "server out of memory");
            return true;
        }
        ssize_t n = read(c->fd, c->in.data + c->in.len, READ_CHUNK);
        if (n > 0) {
            c->in.len += (size_t)n;
            process_input(c);
            if (c->state > CONN_OPEN || c->throttled || (size_t)n < READ_CHUNK)
                break;
            continue;
        }
        if (n == 0) {
            log_debug("conn %" PRIu64 ": peer closed", c->id);
            emit_confirms(c);
            enter_closing(c); /* answer what was asked, then close */
            ferry_buf_free(&c->in);
            return true;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            break;
        log_debug("conn %" PRIu64 ": read: %s", c->id, strerror(errno));
        return false;
    }
    /* An idle connection holds no input memory. */
    if (ferry_buf_pending(&c->in) == 0)
        ferry_buf_free(&c->in);
    return true;
}

/* In CONN_LINGERING: drop what the peer still sends, until its EOF. */
static bool discard_input(struct conn *c)
{
    uint8_t scratch[4096];
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = read(c->fd, scratch, sizeof scratch);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            return true;
        return false; /* EOF or error: done */
    }
    return true;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct conn_set *set = c->set;
    bool alive = c->state == CONN_LINGERING ? discard_input(c) : read_input(c);
    if (alive)
        end_batch(c);
    else
        conn_close(c);
    flush_dirty(set);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct conn_set *set = c->set;
    c->write_armed = false;
    conn_write(c);
    flush_dirty(set);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct conn_set *set = c->set;
    if (c->state == CONN_AWAITING_HELLO)
        conn_fail(c, FERRY_CODE_HANDSHAKE, "no HELLO within 10 s");
    else if (c->state >= CONN_CLOSING)
        conn_close(c);
    flush_dirty(set);
}

/* ---- lifetime ---------------------------------------------------------------- */

static void notify_if_all_closed(struct conn_set *set)
{
    if (!set->shutting_down || set->count > 0 || !set->all_closed)
        return;
    void (*all_closed)(void *) = set->all_closed;
    set->all_closed = NULL;
    all_closed(set->all_closed_arg);
}

/* Frees c now. Its in-flight messages go back to their queues and may be
 * delivered to other connections (which become dirty). */
static void conn_close(struct conn *c)
{
    struct conn_set *set = c->set;
    log_debug("conn %" PRIu64 ": closed", c->id);
    c->state = CONN_CLOSED;
    release_session(c);
    unmark_dirty(c);
    if (set->confirms.owner == c) {
        set->confirms.owner = NULL;
        set->confirms.count = 0;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        set->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    set->count--;

    event_free(c->read_ev);
    event_free(c->write_ev);
    event_free(c->timer_ev);
    close(c->fd);
    ferry_buf_free(&c->in);
    ferry_buf_free(&c->out);
    free(c);
    notify_if_all_closed(set);
}

int conn_open(struct conn_set *set, int fd, bool is_tcp)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        goto fail;
    c->set = set;
    c->fd = fd;
    c->is_tcp = is_tcp;
    c->id = ++set->next_id;
    c->read_ev = event_new(set->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->write_ev = event_new(set->base, fd, EV_WRITE, on_writable, c);
    c->timer_ev = evtimer_new(set->base, on_timer, c);
    if (!c->read_ev || !c->write_ev || !c->timer_ev)
        goto fail;
    c->session = broker_session_new(set->broker, &conn_session_ops, c);
    if (!c->session)
        goto fail;
    if (event_add(c->read_ev, NULL) != 0 || event_add(c->timer_ev, set->handshake_timeout) != 0) {
        broker_session_free(set->broker, c->session);
        goto fail;
    }

    c->next = set->all; /* the set owns c from here */
    if (c->next)
        c->next->prev = c;
    set->all = c;
    set->count++;
    log_debug("conn %" PRIu64 ": opened (fd %d)", c->id, fd);
    return 0;

fail:
    if (c) {
        if (c->read_ev)
            event_free(c->read_ev);
        if (c->write_ev)
            event_free(c->write_ev);
        if (c->timer_ev)
            event_free(c->timer_ev);
        free(c);
    }
    close(fd);
    return -1;
}

void conn_reject(int fd, enum ferry_code code, const char *text)
{
    struct ferry_buf out = { 0 };
    struct ferry_frame f = {
        .type = FERRY_F_ERROR, .code = code, .fatal = true, .text = text_bytes(text),
    };
    /* One try: the socket is new, so its buffer has room for one frame. */
    if (ferry_frame_encode(&out, &f) == 0) {
        ssize_t ignored = write(fd, out.data + out.off, ferry_buf_pending(&out));
        (void)ignored;
    }
    ferry_buf_free(&out);
    shutdown(fd, SHUT_WR);
    close(fd);
}

struct conn_set *conn_set_new(struct event_base *base, struct broker *broker,
                              const struct conn_limits *limits)
{
    struct conn_set *set = calloc(1, sizeof *set);
    if (!set)
        return NULL;
    set->base = base;
    set->broker = broker;
    set->limits = *limits;
    set->started_ms = monotonic_ms();
    /* Every connection starts the same timeout: a common timeout keeps
     * adding it O(1). */
    struct timeval tv = seconds(HANDSHAKE_TIMEOUT_S);
    set->handshake_timeout = event_base_init_common_timeout(base, &tv);
    if (!set->handshake_timeout) {
        free(set);
        return NULL;
    }
    return set;
}

void conn_set_free(struct conn_set *set)
{
    if (!set)
        return;
    set->all_closed = NULL;
    while (set->all)
        conn_close(set->all);
    free(set->confirms.ids);
    free(set);
}

size_t conn_set_count(const struct conn_set *set)
{
    return set->count;
}

void conn_set_shutdown(struct conn_set *set, void (*all_closed)(void *arg), void *arg)
{
    set->shutting_down = true;
    set->all_closed = all_closed;
    set->all_closed_arg = arg;
    for (struct conn *c = set->all; c; c = c->next)
        conn_fail(c, FERRY_CODE_SHUTTING_DOWN, "server is shutting down");
    flush_dirty(set);
    notify_if_all_closed(set);
}
