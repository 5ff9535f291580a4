/*
 * inbound.c - frames from the broker: splits the input buffer into frames,
 * validates them, and routes each to the concept that owns it (the
 * handshake, waiting requests, confirms, subscriptions, the error handler).
 * Frames are handled in place in the input buffer; nothing is copied here.
 */
#include "conn.h"

/* The largest frame body accepted from the broker. WELCOME's max_frame
 * bounds what we send; replies such as STATS may be larger, so incoming
 * frames are held to the protocol's absolute ceiling. */
#define INBOUND_FRAME_MAX FERRY_FRAME_MAX_CEILING

static void on_welcome(struct ferry_conn *c, const struct ferry_frame *f)
{
    if (c->welcomed || f->version != FERRY_PROTO_VERSION || f->max_frame < FERRY_FRAME_MAX_FLOOR
        || f->max_frame > FERRY_FRAME_MAX_CEILING) {
        conn__fail(c, FERRY_EPROTO);
        return;
    }
    c->max_frame = (size_t)f->max_frame;
    c->heartbeat_ms = f->heartbeat_ms;
    c->welcomed = true;
}

static void on_error(struct ferry_conn *c, const struct ferry_frame *f)
{
    if (!c->welcomed) {
        /* The reader is the connecting thread: it learns why. */
        status__set_server_error(f->code, (const char *)f->text.ptr, f->text.len);
        conn__fail(c, FERRY_ECONNECT);
        return;
    }
    struct ferry_waiter *w = f->rid ? request__find(c, false, f->rid) : NULL;
    if (w)
        request__finish(c, w, FERRY_ESERVER, f);
    else if (f->has_id)
        publish__on_refusal(c, f);
    else if (!f->rid)
        conn__report_error(c, (int)f->code, f->text);
    else /* a resubscription refused, or a request whose caller timed out and left */
        consume__on_reopen_refused(c, f);
    if (!f->fatal)
        return;
    /* The broker stopping, a heartbeat it missed, an operator's KILL: worth
     * a reconnect. Any other fatal error would only come again. */
    if (f->code != FERRY_CODE_SHUTTING_DOWN && f->code != FERRY_CODE_HEARTBEAT
        && f->code != FERRY_CODE_KILLED)
        c->no_reconnect = true;
    conn__fail(c, FERRY_ECLOSED);
}

static void on_ping(struct ferry_conn *c, const struct ferry_frame *f)
{
    struct ferry_frame pong = { .type = FERRY_F_PONG, .rid = f->rid };
    if (io__append(c, &pong) != FERRY_OK)
        conn__fail(c, FERRY_ENOMEM);
}

static void route(struct ferry_conn *c, const struct ferry_frame *f)
{
    if (!c->welcomed && f->type != FERRY_F_WELCOME && f->type != FERRY_F_ERROR) {
        conn__fail(c, FERRY_EPROTO);
        return;
    }
    switch (f->type) {
    case FERRY_F_WELCOME: on_welcome(c, f); break;
    case FERRY_F_ERROR: on_error(c, f); break;
    case FERRY_F_OK: request__on_ok(c, f); break;
    case FERRY_F_CONFIRM: publish__on_confirm(c, f); break;
    case FERRY_F_DELIVER: consume__on_deliver(c, f); break;
    case FERRY_F_EOS: consume__on_eos(c, f); break;
    case FERRY_F_PING: on_ping(c, f); break;
    case FERRY_F_PONG: break;
    default: conn__fail(c, FERRY_EPROTO); break; /* a client-to-server frame */
    }
}

void inbound__process(struct ferry_conn *c)
{
    size_t pos = c->in.off;
    while (!c->dead && !c->broken && pos < c->in.len) {
        struct ferry_bytes body;
        size_t used;
        enum ferry_split split = ferry_frame_split(c->in.data + pos, c->in.len - pos,
                                                   INBOUND_FRAME_MAX, &body, &used);
        if (split == FERRY_SPLIT_INCOMPLETE)
            break;
        if (split == FERRY_SPLIT_TOO_LARGE) {
            conn__fail(c, FERRY_EPROTO);
            break;
        }
        struct ferry_frame f;
        const char *why;
        if (ferry_frame_decode(body.ptr, body.len, &f, &why) != FERRY_CODE_OK) {
            conn__fail(c, FERRY_EPROTO);
            break;
        }
        /* Step past the frame first: callbacks run from route() while the
         * frame stays where it is (the buffer is not touched until the end). */
        pos += used;
        route(c, &f);
    }
    if (c->broken) {
        ferry_buf_consume(&c->in, ferry_buf_pending(&c->in)); /* the old connection's */
        return;
    }
    ferry_buf_consume(&c->in, pos - c->in.off);
}
