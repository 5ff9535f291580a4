/*
 * event.c - event-loop integration: the descriptor and the calls a loop
 * makes (ferry_process, ferry_write_pending...), and ferry_attach() for
 * libevent. The only file that includes libevent; the rest of the library
 * knows the events only as `struct ferry_events`.
 */
#include <event2/event.h>
#include <stdlib.h>

#include "conn.h"

struct ferry_events {
    struct event *readable; /* EV_READ | EV_PERSIST: ferry_process() */
    struct event *writable; /* EV_WRITE, added while the loop's own output waits */
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
    io__read_available(c);
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
    bool want = !c->dead && io__output_pending(c) > 0 && !(c->writing && c->draining);
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
    (void)c;
    return -1; /* no heartbeats yet */
}

/* ---- libevent --------------------------------------------------------- */

/* After the loop's own work: wait for writability if output is left, or
 * leave the loop's watch for good when the connection is over. */
static void rearm(ferry_conn *c, int rc)
{
    if (rc != FERRY_OK) {
        event_del(c->events->readable);
        event_del(c->events->writable);
        return;
    }
    if (ferry_want_write(c))
        event_add(c->events->writable, NULL);
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
    }
    if (!ev || !ev->readable || !ev->writable || event_add(ev->readable, NULL) != 0) {
        if (ev) {
            if (ev->readable)
                event_free(ev->readable);
            if (ev->writable)
                event_free(ev->writable);
        }
        free(ev);
        conn__unlock(c);
        return FERRY_ENOMEM;
    }
    c->events = ev;
    c->loop_driven = true;
    c->loop_thread = pthread_self(); /* until the loop's thread calls ferry_process() */
    if (io__output_pending(c) > 0)
        event_add(ev->writable, NULL);
    conn__unlock(c);
    return FERRY_OK;
}
