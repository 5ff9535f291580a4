/*
 * heartbeat.c - ferryd's side of the heartbeat: one timer for all
 * connections, ticking every quarter of heartbeat_timeout. It PINGs an
 * open connection it has heard nothing from for a quarter of the timeout,
 * and closes one silent for the whole timeout, giving its messages in
 * flight back to their queues at once. What "heard" means is conn.c's.
 */
#include "conn_internal.h"

#include <inttypes.h>

#include "log.h"

/* The silent peer gets its fatal ERROR (if its socket still takes it),
 * but its messages do not wait for that: they go back now. */
static void expire(struct conn *c, uint64_t silent_ms)
{
    log_info("conn %" PRIu64 ": nothing heard for %" PRIu64 " ms; closing it", c->id, silent_ms);
    conn_fail(c, FERRY_CODE_HEARTBEAT, "nothing heard from the client within heartbeat_timeout");
    conn_release_session(c);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn_set *set = arg;
    uint64_t timeout = set->limits.heartbeat_ms;
    uint64_t quarter = timeout / 4;
    uint64_t now = monotonic_ms();
    /* Nothing is freed while walking: a closing connection stays on the
     * list until its output or its closing timer is done. */
    for (struct conn *c = set->all; c; c = c->next) {
        if (c->state != CONN_OPEN)
            continue; /* the handshake and closing timers cover the others */
        /* Parked on a full queue, it is not read, so its silence says
         * nothing; it is a pure producer (flow.c), so waiting costs only
         * its slot. Judged again from its wake-up on. It is PINGed all
         * the same, or the client, hearing nothing while it waits, would
         * take the broker for gone (its PONGs wait unread, a few bytes). */
        if (c->parked) {
            if (now - c->pinged_ms >= quarter) {
                struct ferry_frame ping = { .type = FERRY_F_PING };
                conn_send(c, &ping);
                c->pinged_ms = now;
            }
            continue;
        }
        uint64_t silent = now - c->heard_ms;
        if (silent >= timeout) {
            expire(c, silent);
        } else if (silent >= quarter && now - c->pinged_ms >= quarter) {
            struct ferry_frame ping = { .type = FERRY_F_PING };
            conn_send(c, &ping);
            c->pinged_ms = now;
        }
    }
    conn_set_flush(set);
}

int heartbeat_init(struct conn_set *set)
{
    set->heartbeat_ev = event_new(set->base, -1, EV_PERSIST, on_tick, set);
    return set->heartbeat_ev ? 0 : -1;
}

void heartbeat_apply(struct conn_set *set)
{
    uint64_t ms = set->limits.heartbeat_ms;
    event_del(set->heartbeat_ev);
    if (ms == 0)
        return;
    /* Connections silent under the old setting are judged by the new one
     * from the next tick; none is closed for the change itself. */
    uint64_t now = monotonic_ms();
    for (struct conn *c = set->all; c; c = c->next)
        if (c->heard_ms + ms < now)
            c->heard_ms = now - ms / 2;
    uint64_t tick = ms / 4;
    struct timeval tv = { .tv_sec = (time_t)(tick / 1000u),
                          .tv_usec = (suseconds_t)(tick % 1000u) * 1000 };
    event_add(set->heartbeat_ev, &tv);
}

void heartbeat_free(struct conn_set *set)
{
    if (set->heartbeat_ev)
        event_free(set->heartbeat_ev);
    set->heartbeat_ev = NULL;
}
