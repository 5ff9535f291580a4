/*
 * event.c - event-loop integration: the descriptor and the calls a loop
 * makes (ferry_process, ferry_write_pending...), and ferry_attach() for
 * libevent. The only file that includes libevent; the rest of the library
 * knows the events only as `struct ferry_events`.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <sched.h>
#include <time.h>

#include "conn.h"

struct ferry_events {
    struct event *readable; /* EV_READ | EV_PERSIST: ferry_process() */
    struct event *writable; /* EV_WRITE, added while the loop's own output waits */
    struct event *heartbeat; /* a timer at ferry_next_timeout(): ferry_process() */
    uint64_t epoch;          /* the connection's epoch the read event was added for */
};

int ferry_fd(const ferry_conn *c)
{
    if (!c)
        return FERRY_EINVAL;
    if (conn__forked(c))
        return FERRY_EFORKED;
    return c->fd;
}

int ferry_process(ferry_conn *c)
{
    if (!c)
        return FERRY_EINVAL;
    if (conn__forked(c))
        return FERRY_EFORKED;
    if (conn__in_dispatch(c))
        return FERRY_EDEADLK;
    pthread_mutex_lock(&c->mu);
    /* From now on this thread does the reading (and so runs the callbacks). */
    c->loop_driven = true;
    c->loop_thread = pthread_self();
    if (c->keeper_started)
        pthread_cond_signal(&c->keeper_cv); /* this loop takes over its work */
    if (c->broken)
        reconnect__step(c); /* when due; blocks at most connect_timeout_ms */
    io__read_available(c);
    heartbeat__tick(c);
    io__write_now(c);
    if (c->dead && !c->death_reported) {
        c->death_reported = true;
        conn__report_error(c, c->dead, conn__bytes(ferry_strerror(c->dead)));
    }
    int rc = c->dead;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

bool ferry_want_write(ferry_conn *c)
{
    if (!c || conn__forked(c))
        return false;
    pthread_mutex_lock(&c->mu);
    /* Not while another thread drains the output: it writes everything,
     * and the loop would only spin on a writable socket meanwhile. */
    bool want = !c->dead && !c->broken && io__output_pending(c) > 0
             && !(c->writing && c->draining);
    pthread_mutex_unlock(&c->mu);
    return want;
}

int ferry_write_pending(ferry_conn *c)
{
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    rc = io__write_now(c);
    conn__unlock(c);
    return rc;
}

int ferry_next_timeout(ferry_conn *c)
{
    if (!c || conn__forked(c))
        return -1;
    pthread_mutex_lock(&c->mu);
    int ms = c->dead ? 0 : c->broken ? reconnect__due_in(c) : heartbeat__due_in(c);
    pthread_mutex_unlock(&c->mu);
    return ms;
}

uint64_t ferry_reconnects(ferry_conn *c)
{
    if (!c || conn__forked(c))
        return 0;
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->epoch;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ---- libevent --------------------------------------------------------- */

/* After the loop's own work: wait for writability if output is left, or
 * leave the loop's watch for good when the connection is over. */
static void rearm(ferry_conn *c, int rc)
{
    if (rc != FERRY_OK) {
        event_del(c->events->readable);
        event_del(c->events->writable);
        event_del(c->events->heartbeat);
        return;
    }
    pthread_mutex_lock(&c->mu);
    bool broken = c->broken;
    uint64_t epoch = c->epoch;
    pthread_mutex_unlock(&c->mu);
    if (broken) {
        /* Nothing to watch but the clock until the next attempt. */
        event_del(c->events->readable);
        event_del(c->events->writable);
    } else if (epoch != c->events->epoch) {
        /* Reconnected: the same descriptor number names a new socket,
         * which the backend (epoll) must be told about. */
        event_del(c->events->readable);
        event_add(c->events->readable, NULL);
        c->events->epoch = epoch;
    }
    if (ferry_want_write(c))
        event_add(c->events->writable, NULL);
    int ms = ferry_next_timeout(c);
    if (ms >= 0) {
        struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
        event_add(c->events->heartbeat, &tv); /* moves it if pending */
    }
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ferry_conn *c = arg;
    rearm(c, ferry_process(c));
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ferry_conn *c = arg;
    rearm(c, ferry_process(c));
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ferry_conn *c = arg;
    int rc = ferry_write_pending(c);
    if (rc != FERRY_OK)
        rc = ferry_process(c); /* reports the end to the error handler */
    rearm(c, rc);
}

void events__free(struct ferry_events *ev)
{
    event_free(ev->readable); /* event_free also removes it from the loop */
    event_free(ev->writable);
    event_free(ev->heartbeat);
    free(ev);
}

int ferry_attach(ferry_conn *c, struct event_base *base)
{
    if (!base)
        return FERRY_EINVAL;
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    if (c->events) {
        conn__unlock(c);
        return FERRY_EINVAL; /* attached already */
    }
    struct ferry_events *ev = calloc(1, sizeof *ev); /* owned by c from below */
    if (ev) {
        ev->readable = event_new(base, c->fd, EV_READ | EV_PERSIST, on_readable, c);
        ev->writable = event_new(base, c->fd, EV_WRITE, on_writable, c);
        ev->heartbeat = evtimer_new(base, on_heartbeat, c);
    }
    if (!ev || !ev->readable || !ev->writable || !ev->heartbeat
        || event_add(ev->readable, NULL) != 0) {
        if (ev) {
            if (ev->readable)
                event_free(ev->readable);
            if (ev->writable)
                event_free(ev->writable);
            if (ev->heartbeat)
                event_free(ev->heartbeat);
        }
        free(ev);
        conn__unlock(c);
        return FERRY_ENOMEM;
    }
    c->events = ev;
    ev->epoch = c->epoch;
    c->loop_driven = true;
    c->loop_thread = pthread_self(); /* until the loop's thread calls ferry_process() */
    if (c->keeper_started)
        pthread_cond_signal(&c->keeper_cv); /* the loop takes over its work */
    if (io__output_pending(c) > 0)
        event_add(ev->writable, NULL);
    int ms = heartbeat__due_in(c);
    if (ms >= 0) {
        struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
        event_add(ev->heartbeat, &tv);
    }
    conn__unlock(c);
    return FERRY_OK;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Busy polling: the loop is run without blocking for as long as bytes keep
 * arriving on `c` within busy_poll_us of each other, and blocks only after
 * that much silence. A wake-up from a blocking poll costs tens of
 * microseconds on a virtual machine; a poll that is already running sees
 * the bytes at once. The price is a core kept busy while traffic flows. */
int ferry_dispatch(ferry_conn *c, unsigned busy_poll_us)
{
    int rc = conn__lock(c);
    if (rc != FERRY_OK)
        return rc;
    struct event_base *base = c->events ? event_get_base(c->events->readable) : NULL;
    conn__unlock(c);
    if (!base)
        return FERRY_EINVAL; /* not attached */
    if (busy_poll_us == 0)
        return event_base_dispatch(base) < 0 ? FERRY_EIO : FERRY_OK;

    /* read_total only moves in the reading thread, which, for a connection
     * driven by this loop, is this thread: no lock is needed to watch it. */
    uint64_t seen = c->read_total;
    int64_t last_input = now_us();
    for (;;) {
        bool idle = now_us() - last_input > (int64_t)busy_poll_us;
        int loop = event_base_loop(base, idle ? EVLOOP_ONCE : EVLOOP_NONBLOCK);
        if (loop < 0)
            return FERRY_EIO;
        if (loop == 1 || event_base_got_break(base) || event_base_got_exit(base))
            return FERRY_OK; /* nothing left to watch, or asked to stop */
        if (c->read_total != seen) {
            seen = c->read_total;
            last_input = now_us();
        } else if (!idle) {
            sched_yield(); /* a thread waiting for this core runs first */
        }
    }
}
