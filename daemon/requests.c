/*
 * requests.c - what each frame from a client does: the handshake, publish
 * and confirm, consume, credit, ack and nack, GET (with its wait timer),
 * queue administration, JOIN and STATS; and the broker's callbacks that
 * turn deliveries, end-of-stream and answers into frames.
 *
 * Speaks frames and the broker; the socket, buffers and connection life
 * are conn.c's.
 */
#include "conn_internal.h"

#include <inttypes.h>
#include <stdlib.h>

#include "log.h"

#ifndef FERRYD_VERSION
#define FERRYD_VERSION "unknown"
#endif

/* Per connection: waiting GETs and JOINs, each holding server memory. */
#define GET_WAITS_MAX 1024u
#define JOINS_MAX 1024u
/* Per connection: open subscriptions, about 150 bytes each. Without this
 * bound one connection could open max_queues x max_consumers_per_queue
 * of them (10^8 by default, some 15 GB). */
#define SUBSCRIPTIONS_MAX 10000u
/* GET `wait` is cut to this (24 h). */
#define GET_WAIT_MAX_MS (24u * 3600u * 1000u)

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
    case FERRY_CODE_QUEUE_FULL: return "queue is full (its max_length or max_bytes, or the server's max_queued_memory)";
    case FERRY_CODE_NO_MEMORY: return "server out of memory";
    case FERRY_CODE_BAD_REQUEST: return "bad request";
    case FERRY_CODE_STORAGE: return "durable storage refused: disk limit reached or write error";
    case FERRY_CODE_BAD_TOPIC: return "bad topic or binding pattern";
    case FERRY_CODE_EXCLUSIVE: return "the queue is another connection's temporary queue";
    default: return ferry_code_name(code);
    }
}

/* ---- replies to requests -------------------------------------------------- */

/* A reply goes out after the confirms of the publishes before it, so a
 * client sees its requests answered in order. */
static void conn_reply(struct conn *c, const struct ferry_frame *f)
{
    conn_emit_confirms(c);
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

/* Another connection's temporary queue may be published to, not received
 * from or managed: answers ERROR EXCLUSIVE and returns true if f's queue
 * is one. */
static bool refused_access(struct conn *c, const struct ferry_frame *f)
{
    enum ferry_code code = broker_check_access(c->set->broker, c->session, f->queue);
    if (code == FERRY_CODE_OK)
        return false;
    reply_error(c, f->rid, code, code_text(code));
    return true;
}

/* ---- waiting GETs --------------------------------------------------------- */

void requests_free_get(struct get_wait *w)
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
            requests_free_get(w);
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
    conn_set_flush(c->set);
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

static void on_unblocked(void *owner)
{
    conn_unblocked(owner);
}

const struct session_ops conn_session_ops = {
    .deliver = on_deliver,
    .end_of_stream = on_end_of_stream,
    .join_done = on_join_done,
    .get_ended = on_get_ended,
    .unblocked = on_unblocked,
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
    duplicates_on_hello(c, f->producer);
    if (f->name.len > 0) {
        /* Shown by CONNS; without memory for it the connection goes on nameless. */
        c->client_name = malloc(f->name.len); /* owned by c, freed in conn_close */
        if (c->client_name) {
            memcpy(c->client_name, f->name.ptr, f->name.len);
            c->client_name_len = f->name.len;
        }
    }
    struct ferry_frame w = {
        .type = FERRY_F_WELCOME,
        .version = FERRY_PROTO_VERSION,
        .name = text_bytes("ferryd " FERRYD_VERSION),
        .max_frame = c->max_frame,
        .heartbeat_ms = c->set->limits.heartbeat_ms,
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

/* An accepted publish is confirmed with this turn's input batch, or, if
 * its queue is durable (wait_lsn != 0), once the journal has it safe. */
static void accept_publish(struct conn *c, const struct ferry_frame *f, uint64_t wait_lsn)
{
    if (c->producer != 0)
        duplicates_remember(c, f, wait_lsn);
    if (wait_lsn != 0)
        commit_wait(c, f->has_id, f->id, wait_lsn);
    else if (f->has_id)
        conn_confirm_add(c, f->id);
}

/* A full queue of policy block parked the session: the frame waits, and
 * is handled again, whole, once the session is woken. So whatever a
 * publish records (a duplicate-id window...) it must record only once the
 * publish is accepted, never when it parks. */
static bool parked(struct conn *c, enum ferry_code code)
{
    if (code != FERRY_CODE_QUEUE_FULL || !broker_session_parked(c->session))
        return false;
    conn_park(c);
    return true;
}

/* What a PUBLISH or PUBLISH_TOPIC says beyond its bytes. OK or BAD_REQUEST. */
static enum ferry_code publish_meta(struct conn *c, const struct ferry_frame *f,
                                    struct message_meta *meta)
{
    *meta = (struct message_meta){
        .has_priority = f->has_priority, .priority = f->priority, .ttl_ms = f->ttl_ms,
    };
    if (f->delay_ms == 0 && f->deliver_at == 0) /* one branch for a plain publish */
        return FERRY_CODE_OK;
    return broker_deliver_at(c->set->broker, f->delay_ms, f->deliver_at, &meta->deliver_at);
}

static void on_publish(struct conn *c, const struct ferry_frame *f)
{
    struct message_meta meta;
    uint64_t wait_lsn;
    enum ferry_code code = publish_meta(c, f, &meta);
    if (code == FERRY_CODE_OK)
        code = broker_publish(c->set->broker, c->session, f->queue, f->payload, f->headers, &meta,
                              &wait_lsn);
    if (parked(c, code))
        return;
    if (code != FERRY_CODE_OK) {
        refuse_publish(c, f, code);
        return;
    }
    accept_publish(c, f, wait_lsn);
}

/* The batch frame's items, as the broker takes them. */
static bool next_item(void *arg, struct ferry_bytes *payload, struct ferry_bytes *headers,
                      struct message_meta *meta)
{
    struct ferry_item item;
    if (!ferry_iter_item(arg, &item))
        return false;
    *payload = item.payload;
    *headers = item.headers;
    meta->has_priority = item.has_priority;
    meta->priority = item.priority;
    meta->ttl_ms = item.ttl_ms;
    return true;
}

/* All or nothing: the broker queues every item or none. */
static void on_publish_batch(struct conn *c, const struct ferry_frame *f)
{
    struct ferry_iter it;
    ferry_iter_init(&it, f);
    struct broker_items items = { .arg = &it, .next = next_item };
    uint64_t wait_lsn;
    enum ferry_code code =
        broker_publish_batch(c->set->broker, c->session, f->queue, &items, &wait_lsn);
    if (parked(c, code))
        return;
    if (code != FERRY_CODE_OK) {
        refuse_publish(c, f, code);
        return;
    }
    accept_publish(c, f, wait_lsn);
}

/* Cuts the bytes [from, to) (offsets into the pending output) back out. */
static void out_cut(struct conn *c, size_t from, size_t to)
{
    uint8_t *base = c->out.data + c->out.off;
    size_t pending = ferry_buf_pending(&c->out);
    memmove(base + from, base + to, pending - to);
    c->out.len -= to - from;
}

/* Sends the reply `ok` (rid set), or ERROR LIMIT with `too_large` if it
 * would not fit the connection's max_frame. */
static void reply_within_frame(struct conn *c, const struct ferry_frame *ok, const char *too_large)
{
    conn_emit_confirms(c);
    size_t before = ferry_buf_pending(&c->out);
    conn_reply(c, ok);
    size_t after = ferry_buf_pending(&c->out);
    if (c->state >= CONN_CLOSING || after - before <= FERRY_FRAME_PREFIX + c->max_frame)
        return;
    out_cut(c, before, after);
    reply_error(c, ok->rid, FERRY_CODE_LIMIT, too_large);
}

static void on_consume(struct conn *c, const struct ferry_frame *f)
{
    if (!has_rid(c, f) || refused_access(c, f))
        return;
    if (f->sub == 0 || f->credit == 0 || f->credit > UINT32_MAX) {
        reply_error(c, f->rid, FERRY_CODE_BAD_REQUEST, "sub must be nonzero and credit 1..2^32-1");
        return;
    }
    if (broker_session_subscriptions(c->session) >= SUBSCRIPTIONS_MAX) {
        reply_error(c, f->rid, FERRY_CODE_LIMIT, "too many subscriptions on this connection");
        return;
    }
    /* The OK goes out before the deliveries that broker_consume may make
     * at once, so it is queued first and cut back out if refused. */
    conn_emit_confirms(c);
    size_t before = ferry_buf_pending(&c->out);
    reply_ok(c, f->rid);
    size_t after = ferry_buf_pending(&c->out);
    struct consume_options o = { .ack_deadline_ms = f->deadline_ms };
    enum ferry_code code =
        broker_consume_opts(c->set->broker, c->session, f->queue, f->sub, f->credit, &o);
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

/* What ACK, NACK or TOUCH does to one tag. */
static enum ferry_code settle_one(struct conn *c, const struct ferry_frame *f, uint64_t tag)
{
    struct broker *b = c->set->broker;
    switch (f->type) {
    case FERRY_F_ACK: return broker_ack(b, c->session, tag);
    case FERRY_F_TOUCH: return broker_touch(b, c->session, tag, f->deadline_ms);
    default:
        if (f->requeue && f->delay_ms != 0)
            return broker_nack_delay(b, c->session, tag, f->delay_ms);
        return broker_nack(b, c->session, tag, f->requeue);
    }
}

/* ACK, NACK and TOUCH: every tag is handled; the unknown ones earn one
 * ERROR, and any other refusal (a TOUCH without memory for its timer) one
 * more with its own code. */
static void on_settle(struct conn *c, const struct ferry_frame *f)
{
    if (f->delay_ms > FERRY_DELAY_MAX_MS || f->deadline_ms > FERRY_DELAY_MAX_MS) {
        reply_error(c, 0, FERRY_CODE_BAD_REQUEST, "delay or deadline above 366 days");
        return;
    }
    struct ferry_iter it;
    uint64_t tag;
    uint64_t first_unknown = 0;
    size_t unknown = 0;
    enum ferry_code other = FERRY_CODE_OK;
    ferry_iter_init(&it, f);
    while (ferry_iter_uint(&it, &tag)) {
        enum ferry_code code = settle_one(c, f, tag);
        if (code == FERRY_CODE_UNKNOWN_TAG && unknown++ == 0)
            first_unknown = tag;
        else if (code != FERRY_CODE_OK && code != FERRY_CODE_UNKNOWN_TAG)
            other = code;
    }
    if (other != FERRY_CODE_OK)
        reply_error(c, 0, other, code_text(other));
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
    if (!has_rid(c, f) || refused_access(c, f))
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
    /* Nothing was ready: wait for a message, or answer "empty" now. */
    uint64_t wait_ms = f->wait_ms < GET_WAIT_MAX_MS ? f->wait_ms : GET_WAIT_MAX_MS;
    if (wait_ms > 0 && get_wait_start(c, f->rid, wait_ms))
        return;
    broker_get_cancel(c->set->broker, c->session, f->rid);
    if (wait_ms > 0) {
        reply_error(c, f->rid, FERRY_CODE_NO_MEMORY, "server out of memory");
        return;
    }
    struct ferry_frame ok = { .type = FERRY_F_OK, .rid = f->rid, .empty = true };
    conn_reply(c, &ok);
}

/* DECLARE, DELETE, END, REOPEN: a queue operation answered OK or ERROR. */
static void on_queue_admin(struct conn *c, const struct ferry_frame *f)
{
    if (!has_rid(c, f) || (f->type != FERRY_F_DECLARE && refused_access(c, f)))
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
    if (!has_rid(c, f) || refused_access(c, f))
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

/* ---- PEEK and MOVE: looking at a (dead-letter) queue, moving it back ---- */

struct peeked {
    struct ferry_item items[FERRY_PEEK_MAX];
    size_t count;
    size_t bytes;       /* of their payloads and headers */
    size_t room;        /* most bytes the reply may carry */
};

static bool peek_collect(void *arg, const struct message *m)
{
    struct peeked *p = arg;
    size_t size = (size_t)m->headers_len + m->payload_len;
    if (p->count > 0 && p->bytes + size > p->room)
        return false; /* the reply is full: the first ones are enough to look at */
    p->items[p->count++] = (struct ferry_item){ .payload = message_payload(m),
                                                .headers = message_headers(m) };
    p->bytes += size;
    return p->count < FERRY_PEEK_MAX;
}

static void on_peek(struct conn *c, const struct ferry_frame *f)
{
    if (!has_rid(c, f) || refused_access(c, f))
        return;
    struct peeked *p = calloc(1, sizeof *p); /* ~5 KiB: not on the stack */
    if (!p) {
        reply_error(c, f->rid, FERRY_CODE_NO_MEMORY, code_text(FERRY_CODE_NO_MEMORY));
        return;
    }
    /* Half a frame for the messages leaves room for their framing. */
    p->room = c->max_frame / 2;
    size_t max = f->count == 0 ? FERRY_PEEK_DEFAULT : f->count;
    enum ferry_code code = broker_peek(c->set->broker, f->queue,
                                       max < FERRY_PEEK_MAX ? max : FERRY_PEEK_MAX, peek_collect, p);
    if (code != FERRY_CODE_OK) {
        reply_error(c, f->rid, code, code_text(code));
    } else {
        struct ferry_frame ok = { .type = FERRY_F_OK, .rid = f->rid, .items = p->items,
                                  .item_count = p->count };
        conn_emit_confirms(c);
        size_t before = ferry_buf_pending(&c->out);
        conn_reply(c, &ok);
        size_t after = ferry_buf_pending(&c->out);
        if (c->state < CONN_CLOSING && after - before > FERRY_FRAME_PREFIX + c->max_frame) {
            out_cut(c, before, after); /* one message larger than half a frame */
            reply_error(c, f->rid, FERRY_CODE_LIMIT, "the first message is too large to peek");
        }
    }
    free(p);
}

static void on_move(struct conn *c, const struct ferry_frame *f)
{
    /* Moving takes messages out of `q`; moving into `to` is a publish. */
    if (!has_rid(c, f) || refused_access(c, f))
        return;
    uint64_t moved = 0;
    enum ferry_code code = broker_move(c->set->broker, f->queue, f->to, f->count, &moved);
    if (code != FERRY_CODE_OK) {
        reply_error(c, f->rid, code, code_text(code));
        return;
    }
    struct ferry_frame ok = { .type = FERRY_F_OK, .rid = f->rid, .count = moved };
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

/* ---- topics and temporary queues ------------------------------------------ */

static void on_publish_topic(struct conn *c, const struct ferry_frame *f)
{
    uint64_t wait_lsn;
    struct message_meta meta;
    enum ferry_code code = publish_meta(c, f, &meta);
    if (code == FERRY_CODE_OK)
        code = broker_publish_topic(c->set->broker, f->topic, f->payload, f->headers, &meta,
                                    &wait_lsn);
    if (code != FERRY_CODE_OK) {
        refuse_publish(c, f, code);
        return;
    }
    accept_publish(c, f, wait_lsn);
}

/* BIND and UNBIND. */
static void on_binding(struct conn *c, const struct ferry_frame *f)
{
    if (!has_rid(c, f) || refused_access(c, f))
        return;
    struct broker *b = c->set->broker;
    enum ferry_code code = f->type == FERRY_F_BIND ? broker_bind(b, f->queue, f->topic)
                                                   : broker_unbind(b, f->queue, f->topic);
    reply_code(c, f->rid, code);
}

static void on_declare_temp(struct conn *c, const struct ferry_frame *f)
{
    if (!has_rid(c, f))
        return;
    struct ferry_bytes name;
    enum ferry_code code = broker_declare_temp(c->set->broker, c->session, f->queue, &name);
    if (code != FERRY_CODE_OK) {
        reply_error(c, f->rid, code, code_text(code));
        return;
    }
    struct ferry_frame ok = { .type = FERRY_F_OK, .rid = f->rid, .queue = name };
    conn_reply(c, &ok);
}

/* A queue's patterns, copied out of the trie for the reply. */
struct pattern_table {
    struct ferry_bytes *rows; /* owned by on_bindings, like text */
    uint8_t *text;            /* FERRY_TOPIC_MAX bytes per row */
    size_t count;
};

static void collect_pattern(void *arg, struct ferry_bytes pattern)
{
    struct pattern_table *t = arg;
    uint8_t *slot = t->text + t->count * FERRY_TOPIC_MAX;
    memcpy(slot, pattern.ptr, pattern.len);
    t->rows[t->count++] = (struct ferry_bytes){ slot, pattern.len };
}

static void on_bindings(struct conn *c, const struct ferry_frame *f)
{
    if (!has_rid(c, f))
        return;
    struct queue_stats st;
    enum ferry_code code = broker_queue_stats(c->set->broker, f->queue, &st);
    if (code != FERRY_CODE_OK) {
        reply_error(c, f->rid, code, code_text(code));
        return;
    }
    size_t n = st.bindings > 0 ? (size_t)st.bindings : 1;
    struct pattern_table t = {
        .rows = calloc(n, sizeof *t.rows), .text = malloc(n * FERRY_TOPIC_MAX),
    };
    if (t.rows == NULL || t.text == NULL) {
        reply_error(c, f->rid, FERRY_CODE_NO_MEMORY, "server out of memory");
    } else {
        broker_each_binding(c->set->broker, f->queue, collect_pattern, &t);
        struct ferry_frame ok = {
            .type = FERRY_F_OK, .rid = f->rid,
            .has_patterns = true, .patterns = t.rows, .pattern_count = t.count,
        };
        reply_within_frame(c, &ok, "bindings too many for one frame (max_frame)");
    }
    free(t.rows);
    free(t.text);
}

/* ---- STATS ----------------------------------------------------------------- */

struct stats_table {
    struct ferry_queue_stats *rows; /* owned by the handler */
    size_t count;
    size_t cap;
};

static struct ferry_bytes overflow_text(enum queue_overflow o)
{
    switch (o) {
    case QUEUE_OVERFLOW_REJECT: return text_bytes("reject");
    case QUEUE_OVERFLOW_DROP_OLDEST: return text_bytes("drop-oldest");
    default: return text_bytes("block");
    }
}

static struct ferry_queue_stats stats_row(struct ferry_bytes name, const struct queue_stats *st)
{
    struct ferry_queue_stats row = {
        .name = name, .depth = st->depth, .inflight = st->inflight,
        .consumers = st->consumers, .published = st->published,
        .delivered = st->delivered, .acked = st->acked,
        .redelivered = st->redelivered, .dropped = st->dropped,
        .bytes = st->bytes, .delayed = st->delayed, .ended = st->ended,
        .max_length = st->max_length, .max_bytes = st->max_bytes,
        .overflow = overflow_text(st->overflow), .dropped_oldest = st->dropped_oldest,
        .rejected = st->rejected, .blocked = st->blocked,
        .dead_lettered = st->dead_lettered, .timeouts = st->timeouts,
    };
    memcpy(row.depth_by_priority, st->depth_by_priority, sizeof row.depth_by_priority);
    row.expired = st->expired;
    row.bindings = st->bindings;
    return row;
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
    struct topic_stats topics;
    broker_topic_stats(b, &topics);
    struct ferry_server_stats server = {
        .connections = c->set->count,
        .queues = broker_queue_count(b),
        .uptime_ms = monotonic_ms() - c->set->started_ms,
        .messages = broker_message_count(b),
        .bytes = broker_message_bytes(b),
        .topic_publishes = topics.published,
        .unroutable = topics.unroutable,
        .copies = topics.copies,
        .skipped = topics.skipped,
        .bindings = topics.bindings,
        .memory = broker_memory(b),
        .max_memory = broker_max_memory(b),
        .parked = broker_parked_count(b),
        .dups = duplicates_dropped(c->set),
        .dup_evicted = duplicates_evicted(c->set),
    };
    struct ferry_frame ok = {
        .type = FERRY_F_OK, .rid = rid,
        .server_stats = &server, .stats = rows, .stats_count = count,
    };
    reply_within_frame(c, &ok, "stats too large for one frame; ask for one queue");
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
    /* A reply lists at most FERRY_LIST_MAX queues (a client refuses more
     * as a bad frame); past that, the table is not even made. */
    size_t queues = broker_queue_count(b);
    if (queues > FERRY_LIST_MAX) {
        reply_error(c, f->rid, FERRY_CODE_LIMIT,
                    "more than 65536 queues: too many for one STATS reply; ask for one queue");
        return;
    }
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

void requests_handle_frame(struct conn *c, const struct ferry_frame *f)
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
    case FERRY_F_PUBLISH:
        if (c->producer == 0 || !duplicates_confirm_again(c, f))
            on_publish(c, f);
        break;
    case FERRY_F_PUBLISH_BATCH:
        if (c->producer == 0 || !duplicates_confirm_again(c, f))
            on_publish_batch(c, f);
        break;
    case FERRY_F_CONSUME: on_consume(c, f); break;
    case FERRY_F_CREDIT: on_credit(c, f); break;
    case FERRY_F_ACK: on_settle(c, f); break;
    case FERRY_F_NACK: on_settle(c, f); break;
    case FERRY_F_TOUCH: on_settle(c, f); break;
    case FERRY_F_PEEK: on_peek(c, f); break;
    case FERRY_F_MOVE: on_move(c, f); break;
    case FERRY_F_CANCEL: on_cancel(c, f); break;
    case FERRY_F_GET: on_get(c, f); break;
    case FERRY_F_DECLARE: on_queue_admin(c, f); break;
    case FERRY_F_DELETE: on_queue_admin(c, f); break;
    case FERRY_F_END: on_queue_admin(c, f); break;
    case FERRY_F_REOPEN: on_queue_admin(c, f); break;
    case FERRY_F_PURGE: on_purge(c, f); break;
    case FERRY_F_JOIN: on_join(c, f); break;
    case FERRY_F_STATS: on_stats(c, f); break;
    case FERRY_F_PUBLISH_TOPIC:
        if (c->producer == 0 || !duplicates_confirm_again(c, f))
            on_publish_topic(c, f);
        break;
    case FERRY_F_BIND: on_binding(c, f); break;
    case FERRY_F_UNBIND: on_binding(c, f); break;
    case FERRY_F_DECLARE_TEMP: on_declare_temp(c, f); break;
    case FERRY_F_BINDINGS: on_bindings(c, f); break;
    case FERRY_F_CONNS: conns_on_list(c, f); break;
    case FERRY_F_KILL: conns_on_kill(c, f); break;
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

