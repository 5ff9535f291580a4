/*
 * conns.c - the operator's view of the connections: who each peer is,
 * CONNS (one bounded page of per-connection statistics: output waiting,
 * throttling, subscriptions, messages in flight, age, silence) and KILL
 * (close one connection, its messages going back to their queues).
 * Reads the connection set; changes nothing but the connection killed.
 */
#include "conn_internal.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "log.h"

/* A page's entry takes at most this many bytes once encoded: nine keys
 * with their values, a peer of FERRY_PEER_MAX and a name of 255 bytes. */
#define CONN_ENTRY_MAX 600u

void conns_describe_peer(struct conn *c)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    snprintf(c->peer, sizeof c->peer, "?");
    if (getpeername(c->fd, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(c->peer, sizeof c->peer, "tcp:%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(c->peer, sizeof c->peer, "tcp:[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
        struct ucred cred;
        socklen_t cred_len = sizeof cred;
        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0)
            snprintf(c->peer, sizeof c->peer, "unix:pid=%ld,uid=%lu", (long)cred.pid,
                     (unsigned long)cred.uid);
        else
            snprintf(c->peer, sizeof c->peer, "unix");
    }
}

/* A reply goes out after the confirms of the publishes before it. */
static void reply(struct conn *c, const struct ferry_frame *f)
{
    conn_emit_confirms(c);
    conn_send(c, f);
}

static void reply_error(struct conn *c, uint64_t rid, enum ferry_code code, const char *text)
{
    struct ferry_frame f = {
        .type = FERRY_F_ERROR, .code = code, .rid = rid, .text = text_bytes(text),
    };
    reply(c, &f);
}

static struct ferry_conn_stats entry_of(const struct conn *c, uint64_t now)
{
    size_t subs = c->session ? broker_session_subscriptions(c->session) : 0;
    size_t inflight = c->session ? broker_session_inflight(c->session) : 0;
    return (struct ferry_conn_stats){
        .id = c->id,
        .peer = text_bytes(c->peer),
        .name = { (const uint8_t *)c->client_name, c->client_name_len },
        .out = ferry_buf_pending(&c->out),
        .throttled = c->throttled,
        .subs = subs,
        .inflight = inflight,
        .age_ms = now - c->opened_ms,
        .idle_ms = now - c->heard_ms,
    };
}

/* The set's list runs from the newest connection to the oldest (ids go
 * down), so a page is the first `page` connections with an id below
 * `before`, and `next` the last id it holds if an older one is left. */
void conns_on_list(struct conn *c, const struct ferry_frame *f)
{
    if (f->rid == 0) {
        reply_error(c, 0, FERRY_CODE_BAD_REQUEST, "rid must be nonzero");
        return;
    }
    size_t page = c->max_frame / CONN_ENTRY_MAX;
    if (page > FERRY_CONNS_PAGE_MAX)
        page = FERRY_CONNS_PAGE_MAX;
    struct ferry_conn_stats *rows = calloc(page, sizeof *rows); /* freed below */
    if (!rows) {
        reply_error(c, f->rid, FERRY_CODE_NO_MEMORY, "server out of memory");
        return;
    }
    uint64_t now = monotonic_ms();
    size_t count = 0;
    const struct conn *o = c->set->all;
    for (; o && count < page; o = o->next) {
        if (f->before == 0 || o->id < f->before)
            rows[count++] = entry_of(o, now);
    }
    struct ferry_frame ok = {
        .type = FERRY_F_OK, .rid = f->rid, .has_conns = true, .conns = rows, .conn_count = count,
        .next = o && count > 0 ? rows[count - 1].id : 0,
    };
    reply(c, &ok); /* the rows point into the connections: encoded before they change */
    free(rows);
}

void conns_on_kill(struct conn *c, const struct ferry_frame *f)
{
    if (f->rid == 0) {
        reply_error(c, 0, FERRY_CODE_BAD_REQUEST, "rid must be nonzero");
        return;
    }
    struct conn *victim = c->set->all;
    while (victim && victim->id != f->id)
        victim = victim->next;
    if (!victim || victim->state >= CONN_CLOSING) {
        reply_error(c, f->rid, FERRY_CODE_NOT_FOUND, "no such open connection");
        return;
    }
    struct ferry_frame ok = { .type = FERRY_F_OK, .rid = f->rid };
    reply(c, &ok);
    log_info("conn %" PRIu64 ": closed by KILL from conn %" PRIu64, victim->id, c->id);
    conn_fail(victim, FERRY_CODE_KILLED, "connection closed by an operator");
    conn_release_session(victim); /* its messages go back now */
}
