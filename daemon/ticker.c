/*
 * ticker.c - the broker core's timers on ferryd's loop: one libevent timer,
 * armed for broker_next_due() at the end of each turn (one look at the top
 * of the core's heap; re-armed only when that changed), which calls
 * broker_advance() and then asks for the end of the turn, so that what the
 * timers delivered is logged and written like any other output.
 */
#include <event2/event.h>

#include "conn_internal.h"

#define NOT_ARMED UINT64_MAX

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct conn_set *set = arg;
    set->tick_due = NOT_ARMED;
    broker_advance(set->broker);
    conn_set_flush(set); /* which re-arms the timer at the end of the turn */
}

void ticker_rearm(struct conn_set *set)
{
    uint64_t due = broker_next_due(set->broker);
    if (due == set->tick_due)
        return;
    set->tick_due = due;
    if (due == NOT_ARMED) {
        evtimer_del(set->tick_ev);
        return;
    }
    uint64_t now = broker_now(set->broker);
    uint64_t ms = due > now ? due - now : 0;
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000u),
                          .tv_usec = (suseconds_t)(ms % 1000u) * 1000 };
    evtimer_add(set->tick_ev, &tv);
}

int ticker_init(struct conn_set *set)
{
    set->tick_ev = evtimer_new(set->base, on_tick, set);
    if (!set->tick_ev)
        return -1;
    /* A first tick at once: timers restored from the journal get armed
     * even if no client ever sends anything. */
    set->tick_due = 0;
    struct timeval now = { 0, 0 };
    evtimer_add(set->tick_ev, &now);
    return 0;
}

void ticker_free(struct conn_set *set)
{
    if (set->tick_ev)
        event_free(set->tick_ev);
    set->tick_ev = NULL;
}
