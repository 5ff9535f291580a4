/*
 * heartbeat.c - libferry's side of the heartbeat: PING a broker silent for
 * a quarter of the timeout WELCOME announced, give the connection up
 * (FERRY_EIO) once it is silent for the whole timeout, and the keeper
 * thread that does both, and answers the broker's PINGs, while no call and
 * no event loop is reading. A loop does it through ferry_process() and
 * ferry_next_timeout() (event.c) instead.
 */
#include <time.h>

#include "conn.h"

/* While broken, the keeper looks at the connection this often. */
#define KEEPER_RECONNECT_STEP_MS 100

static int64_t quarter_of(const struct ferry_conn *c)
{
    int64_t q = (int64_t)c->heartbeat_ms / 4;
    return q > 0 ? q : 1;
}

int heartbeat__due_in(const struct ferry_conn *c)
{
    if (c->heartbeat_ms == 0 || c->dead || c->broken)
        return -1;
    int64_t quarter = quarter_of(c);
    int64_t next_ping = (c->heard_ms > c->pinged_ms ? c->heard_ms : c->pinged_ms) + quarter;
    int64_t death = c->heard_ms + (int64_t)c->heartbeat_ms;
    int64_t next = next_ping < death ? next_ping : death;
    int64_t left = next - conn__now_ms();
    if (left <= 0)
        return 0;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

int heartbeat__tick(struct ferry_conn *c)
{
    if (c->heartbeat_ms == 0 || c->dead || c->broken)
        return -1;
    int64_t now = conn__now_ms();
    int64_t quarter = quarter_of(c);
    int64_t silent = now - c->heard_ms;
    if (silent >= (int64_t)c->heartbeat_ms) {
        conn__fail(c, FERRY_EIO); /* the broker or the path to it is gone */
        return -1;
    }
    if (silent >= quarter && now - c->pinged_ms >= quarter) {
        struct ferry_frame ping = { .type = FERRY_F_PING };
        if (io__append(c, &ping) != FERRY_OK) {
            conn__fail(c, FERRY_ENOMEM);
            return -1;
        }
        c->pinged_ms = now;
        io__write_now(c); /* or the writer role's holder writes it */
    }
    return heartbeat__due_in(c);
}

/* ---- the keeper thread ------------------------------------------------- */

static void *keeper_main(void *arg)
{
    struct ferry_conn *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->keeper_stop && !c->loop_driven && !c->dead) {
        if (c->broken) {
            /* Made again here if no call is waiting to do it. */
            reconnect__pump(c, conn__now_ms() + KEEPER_RECONNECT_STEP_MS);
            continue;
        }
        /* What came between calls: the broker's PINGs above all. A thread
         * in a blocking call reads for itself; then this does nothing. */
        if (!c->reading)
            io__read_available(c);
        int wait_ms = heartbeat__tick(c);
        if (wait_ms < 0 && !c->reconnect)
            break;
        if (wait_ms < 0)
            wait_ms = KEEPER_RECONNECT_STEP_MS; /* no heartbeat: it only watches for a break */
        if (wait_ms == 0)
            wait_ms = 1;
        int64_t until = conn__now_ms() + wait_ms;
        struct timespec ts = { .tv_sec = (time_t)(until / 1000),
                               .tv_nsec = (long)(until % 1000) * 1000000 };
        pthread_cond_timedwait(&c->keeper_cv, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int heartbeat__start(struct ferry_conn *c)
{
    if (c->heartbeat_ms == 0 && !c->reconnect)
        return FERRY_OK;
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return FERRY_ENOMEM;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&c->keeper_cv, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        return FERRY_ENOMEM;
    /* Set before the thread exists: it reads the flag (conn__fail). */
    c->keeper_started = true;
    if (pthread_create(&c->keeper, NULL, keeper_main, c) != 0) {
        c->keeper_started = false;
        pthread_cond_destroy(&c->keeper_cv);
        return FERRY_ENOMEM;
    }
    return FERRY_OK;
}

void heartbeat__stop(struct ferry_conn *c)
{
    if (!c->keeper_started)
        return;
    pthread_mutex_lock(&c->mu);
    c->keeper_stop = true;
    pthread_cond_signal(&c->keeper_cv);
    conn__wake(c); /* it may sleep on the connection's own while it reconnects */
    pthread_mutex_unlock(&c->mu);
    if (pthread_equal(c->keeper, pthread_self())) {
        /* ferry_close() from a callback the keeper ran, which libferry(3)
         * forbids (the keeper would go on with a freed connection): do not
         * join oneself, at least. */
        pthread_detach(c->keeper);
    } else {
        pthread_join(c->keeper, NULL);
    }
    pthread_cond_destroy(&c->keeper_cv);
    c->keeper_started = false;
}
