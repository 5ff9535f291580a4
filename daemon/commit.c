/*
 * commit.c - the confirms of publishes to durable queues: they wait in one
 * FIFO of (connection, publish id, LSN) until the journal's group commit,
 * once per turn of the loop, says they are safe (CONFIRM) or refused
 * (ERROR STORAGE); and the timer of the INTERVAL queues' syncs.
 *
 * Knows connections (conn_internal.h) and the journal's flush (durable.h);
 * nothing of sockets or of what is in the log.
 */
#include "conn_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

/* A ring that a burst grew past this many entries is freed once empty. */
#define RING_KEEP 4096u

static const char *const storage_text = "durable storage refused: disk limit reached or write error";

/* ---- the INTERVAL syncs ---- */

static void arm_sync_timer(struct conn_set *set)
{
    int ms = durable_next_sync_ms(set->durable);
    if (ms < 0 || evtimer_pending(set->sync_timer, NULL))
        return;
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
    evtimer_add(set->sync_timer, &tv);
}

static void on_sync_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn_set *set = arg;
    durable_tick(set->durable);
    arm_sync_timer(set); /* more was written since, or the timer came early */
}

int commit_init(struct conn_set *set, void (*turn_end)(evutil_socket_t, short, void *))
{
    set->turn_end_ev = event_new(set->base, -1, 0, turn_end, set);
    set->sync_timer = evtimer_new(set->base, on_sync_timer, set);
    if (!set->turn_end_ev || !set->sync_timer) {
        commit_free(set);
        return -1;
    }
    return 0;
}

void commit_free(struct conn_set *set)
{
    if (set->turn_end_ev)
        event_free(set->turn_end_ev);
    if (set->sync_timer)
        event_free(set->sync_timer);
    set->turn_end_ev = set->sync_timer = NULL;
    free(set->pending.ring);
    set->pending = (struct commit_queue){ 0 };
}

/* ---- the FIFO ---- */

static struct pending_confirm *entry(struct commit_queue *q, size_t i)
{
    return &q->ring[(q->head + i) & (q->cap - 1)];
}

/* Room for one more entry; false on ENOMEM. */
static bool ring_room(struct commit_queue *q)
{
    if (q->count < q->cap)
        return true;
    size_t cap = q->cap ? q->cap * 2 : 256;
    struct pending_confirm *ring = malloc(cap * sizeof *ring);
    if (!ring)
        return false;
    for (size_t i = 0; i < q->count; i++) /* unwrapped, oldest first */
        ring[i] = *entry(q, i);
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
    return true;
}

static void ring_pop(struct commit_queue *q)
{
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
    if (q->count == 0 && q->cap > RING_KEEP) {
        free(q->ring);
        *q = (struct commit_queue){ 0 };
    }
}

/* ---- waiting ---- */

/* The publish can neither wait nor be confirmed: it is logged and queued,
 * so refusing it only makes a retry a duplicate, which at-least-once
 * allows. */
static void refuse_unrecorded(struct conn *c, bool has_id, uint64_t id)
{
    struct ferry_frame e = {
        .type = FERRY_F_ERROR, .code = FERRY_CODE_NO_MEMORY,
        .text = text_bytes("server out of memory"), .id = id, .has_id = has_id,
    };
    conn_emit_confirms(c);
    conn_send(c, &e);
}

void commit_wait(struct conn *c, bool has_id, uint64_t id, uint64_t lsn)
{
    struct commit_queue *q = &c->set->pending;
    /* Publishes without an id only need refusing if the flush fails: a
     * run of them shares one entry, and one ERROR. */
    if (!has_id && q->count > 0) {
        struct pending_confirm *tail = entry(q, q->count - 1);
        if (tail->conn == c && !tail->has_id && tail->anonymous < UINT32_MAX) {
            tail->anonymous++;
            tail->lsn = lsn;
            return;
        }
    }
    if (!ring_room(q)) {
        refuse_unrecorded(c, has_id, id);
        return;
    }
    *entry(q, q->count++) = (struct pending_confirm){
        .conn = c, .id = id, .lsn = lsn, .has_id = has_id, .anonymous = has_id ? 0 : 1,
        .producer = c->producer,
    };
    c->pending_confirms++;
}

void commit_forget(struct conn *c)
{
    struct commit_queue *q = &c->set->pending;
    for (size_t i = 0; i < q->count && c->pending_confirms > 0; i++) {
        struct pending_confirm *p = entry(q, i);
        if (p->conn == c) {
            p->conn = NULL;
            c->pending_confirms--;
        }
    }
}

/* ---- resolving ---- */

static void refuse(struct pending_confirm *p)
{
    char text[160];
    const char *msg = storage_text;
    if (!p->has_id) {
        snprintf(text, sizeof text, "%s (%" PRIu32 " publishes without id)", storage_text,
                 p->anonymous);
        msg = text;
    }
    struct ferry_frame e = {
        .type = FERRY_F_ERROR, .code = FERRY_CODE_STORAGE, .text = text_bytes(msg),
        .id = p->id, .has_id = p->has_id,
    };
    conn_emit_confirms(p->conn); /* its confirms gathered so far go first */
    conn_send(p->conn, &e);
}

/* Every entry up to `safe` is confirmed; if the flush failed, every entry
 * is refused (none of them is in the log, or safe as its policy says). */
static void resolve(struct conn_set *set, enum ferry_code code, uint64_t safe)
{
    struct commit_queue *q = &set->pending;
    while (q->count > 0) {
        struct pending_confirm p = *entry(q, 0);
        if (code == FERRY_CODE_OK && p.lsn > safe)
            break; /* appended after this flush: the next one takes it */
        ring_pop(q);
        if (code != FERRY_CODE_OK && p.has_id)
            duplicates_forget(set, p.producer, p.id); /* not logged: a resend is new */
        if (!p.conn)
            continue;
        p.conn->pending_confirms--;
        if (code != FERRY_CODE_OK)
            refuse(&p);
        else if (p.has_id)
            conn_confirm_add(p.conn, p.id); /* runs of one connection share a CONFIRM */
    }
    if (set->confirms.owner)
        conn_emit_confirms(set->confirms.owner);
}

void commit_run(struct conn_set *set)
{
    if (!set->durable)
        return;
    uint64_t safe = 0;
    enum ferry_code code = durable_flush(set->durable, &safe);
    resolve(set, code, safe);
    arm_sync_timer(set);
}
