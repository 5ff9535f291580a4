/*
 * connections.c - the broker's connections as an operator sees them:
 * ferry_connections() fetches every page of CONNS into one caller-owned
 * allocation, ferry_kill() closes one of them.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"

/* Pages one listing may take: 10^4 pages of 1,000, far above any
 * broker's max_connections, so that a broker whose cursor never ends
 * cannot keep the call going for ever. */
#define PAGES_MAX 10000u

static void copy_text(char *to, size_t size, struct ferry_bytes from)
{
    size_t len = from.len < size - 1 ? from.len : size - 1;
    if (len)
        memcpy(to, from.ptr, len);
    to[len] = '\0';
}

int connections__decode_page(const struct ferry_frame *f, struct ferry_waiter *w)
{
    if (!f->has_conns)
        return FERRY_EPROTO;
    struct ferry_connections *list = *w->conns;
    size_t have = list ? list->count : 0;
    size_t grown = have + f->conn_list_count;
    list = realloc(list, sizeof *list + grown * sizeof list->conns[0]);
    if (!list)
        return FERRY_ENOMEM; /* *w->conns is still the caller's, unchanged */
    list->count = have;
    list->conns = (struct ferry_conn_info *)(list + 1);
    *w->conns = list;
    struct ferry_iter it;
    struct ferry_conn_stats cs;
    ferry_iter_conns_init(&it, f);
    while (list->count < grown && ferry_iter_conn(&it, &cs)) {
        struct ferry_conn_info *info = &list->conns[list->count++];
        *info = (struct ferry_conn_info){
            .id = cs.id, .out_bytes = cs.out, .throttled = cs.throttled,
            .subscriptions = cs.subs, .inflight = cs.inflight,
            .age_ms = cs.age_ms, .idle_ms = cs.idle_ms,
        };
        copy_text(info->peer, sizeof info->peer, cs.peer);
        copy_text(info->name, sizeof info->name, cs.name);
    }
    w->conns_next = f->next;
    return FERRY_OK;
}

int ferry_connections(ferry_conn *c, struct ferry_connections **out)
{
    if (!out)
        return FERRY_EINVAL;
    *out = NULL;
    if (c && conn__in_dispatch(c))
        return FERRY_EDEADLK;
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    struct ferry_connections *list = calloc(1, sizeof *list); /* the caller's once returned */
    if (!list) {
        conn__unlock(c);
        return FERRY_ENOMEM;
    }
    uint64_t before = 0;
    for (unsigned page = 0; rc == FERRY_OK; page++) {
        struct ferry_waiter w = { .conns = &list };
        struct ferry_frame f = { .type = FERRY_F_CONNS, .before = before };
        rc = request__roundtrip(c, &f, &w, c->request_timeout_ms);
        if (rc != FERRY_OK || w.conns_next == 0)
            break;
        /* The cursor must go down, or a broker could loop us. */
        if ((before != 0 && w.conns_next >= before) || page + 1 >= PAGES_MAX)
            rc = FERRY_EPROTO;
        before = w.conns_next;
    }
    conn__unlock(c);
    if (rc != FERRY_OK) {
        free(list);
        return rc;
    }
    *out = list;
    return FERRY_OK;
}

void ferry_connections_free(struct ferry_connections *list)
{
    free(list); /* one allocation */
}

int ferry_kill(ferry_conn *c, uint64_t id)
{
    if (id == 0)
        return FERRY_EINVAL;
    if (c && conn__in_dispatch(c))
        return FERRY_EDEADLK;
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    struct ferry_waiter w = { 0 };
    struct ferry_frame f = { .type = FERRY_F_KILL, .id = id, .has_id = true };
    rc = request__roundtrip(c, &f, &w, c->request_timeout_ms);
    conn__unlock(c);
    return rc;
}
