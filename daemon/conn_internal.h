/*
 * conn_internal.h - what conn.c (a connection's socket, buffers and life),
 * requests.c (what each frame does) and commit.c (confirms that wait for
 * the journal) share: the connection struct and the few calls between
 * them. Private to those three files.
 */
#ifndef FERRYD_CONN_INTERNAL_H
#define FERRYD_CONN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "broker.h"
#include "conn.h"
#include "durable.h"
#include "ferry_proto.h"

enum conn_state {
    CONN_AWAITING_HELLO, /* connected: only HELLO is accepted */
    CONN_OPEN,           /* handshake done: requests are served */
    CONN_CLOSING,        /* fatal error or EOF: no more input, output flushing */
    CONN_LINGERING,      /* TCP: output out, write side shut: waiting for the peer's EOF */
    CONN_CLOSED,         /* being freed: nothing more is sent */
};

/* A GET with `wait` > 0 that no message has answered yet. */
struct get_wait {
    struct get_wait *next;
    struct conn *conn;
    uint64_t rid;
    struct event *timer; /* owned: expiry answers OK empty */
};

struct conn {
    struct conn_set *set;
    struct conn *prev, *next;             /* set->all */
    struct conn *dirty_prev, *dirty_next; /* set->dirty, while `dirty` */
    bool dirty;

    int fd;                /* owned */
    bool is_tcp;           /* lingers before closing, see LINGER_TIMEOUT_S */
    size_t max_frame;      /* as its WELCOME says; a reload changes only new ones */
    uint64_t id;           /* for log lines */
    enum conn_state state;
    struct session *session; /* owned, freed through the broker; NULL once released */

    struct event *read_ev;  /* persistent; off while throttled or closing */
    struct event *write_ev; /* one-shot; added when the socket is full */
    /* Handshake, closing and linger timeouts; when open, the idle trim. */
    struct event *timer_ev;
    bool trim_armed;
    bool write_armed;
    /* Output above max_output: the broker skips this session and no input
     * is read or handled until the output drains to half the bound. */
    bool throttled;
    /* A publish found its queue full under the block policy: the broker
     * parked the session, the frame stays first in `in`, and nothing is
     * read or handled until the broker's unblocked call makes resume_ev
     * active, which handles the frame again (docs/DESIGN.md, "Flow control"). */
    bool parked;
    struct event *resume_ev;
    /* While parked: the peer closing its end (EV_CLOSED, which reads
     * nothing) closes the connection, so that a producer that gave up
     * does not hold its slot until the queue has room. */
    struct event *hangup_ev;

    /* The peer closed its side: what it asked is still answered (its
     * confirms among them) before the connection closes. */
    bool peer_closed;
    /* A write failed (the peer is gone): nothing more is sent; what it
     * wrote before it went is read and handled once, then it closes. */
    bool write_failed;
    size_t pending_confirms; /* its entries in set->pending */

    /* What CONNS shows of it (conns.c). */
    char peer[FERRY_PEER_MAX + 1]; /* "tcp:ADDR:PORT", "unix:pid=N,uid=N" */
    char *client_name;             /* owned copy of HELLO's name; NULL: none */
    size_t client_name_len;
    uint64_t opened_ms;            /* monotonic */

    /* The producer identity from HELLO, while the set's duplicate window
     * is on (duplicates.c); 0: none. */
    uint64_t producer;

    /* Heartbeat (heartbeat.c). Heard: any byte read, or any byte written
     * after a write that left output behind (the peer took it). */
    uint64_t heard_ms;       /* monotonic */
    uint64_t pinged_ms;      /* the last PING we sent it; 0: none */
    bool out_backed_up;      /* the last write() did not take everything */

    struct ferry_buf in;  /* bytes read, not yet handled */
    struct ferry_buf out; /* frames encoded, not yet written */

    struct get_wait *gets; /* owned list */
    size_t get_count;
    size_t join_count;     /* JOINs the broker has not answered yet */

    /* The GET being handled right now, to know whether the broker answered
     * it before broker_get returned (0: none). */
    uint64_t get_now_rid;
    bool get_now_answered;
};

/* The ids of the publishes confirmed while one connection's input batch
 * is handled; they go out as one CONFIRM at the end of the batch. Only one
 * batch is handled at a time, so the set keeps one for all connections. */
struct confirm_batch {
    struct conn *owner;
    uint64_t *ids; /* owned */
    size_t count;
    size_t cap;
};

/* A publish to a durable queue waiting for the journal's flush; its
 * CONFIRM, or its refusal, is sent once the flush has said (commit.c). */
struct pending_confirm {
    struct conn *conn;   /* NULL once the connection is gone */
    uint64_t id;         /* the publish's id, if has_id */
    uint64_t lsn;        /* confirmable once the journal is safe up to it */
    uint32_t anonymous;  /* publishes without an id folded into this entry */
    bool has_id;
    uint64_t producer;   /* its connection's producer identity (0: none) */
};

/* The pending confirms of every connection, oldest first (so LSNs grow
 * from head to tail): a ring of cap entries, cap a power of two. */
struct commit_queue {
    struct pending_confirm *ring; /* owned */
    size_t head, count, cap;
};

struct conn_set {
    struct event_base *base;
    struct broker *broker;
    struct durable *durable; /* NULL: no durable queue; not owned */
    struct conn_limits limits;
    const struct timeval *handshake_timeout; /* libevent common timeout */

    struct conn *all;
    size_t count;
    struct conn *dirty;      /* connections with output to write, oldest first */
    struct conn *dirty_tail;
    uint64_t next_id;
    uint64_t started_ms;

    struct confirm_batch confirms;
    struct commit_queue pending;

    /* The end of a turn of the loop: active (at the tail of the events
     * being run) whenever something was handled or queued for output. */
    struct event *turn_end_ev;
    bool turn_end_armed;
    struct event *sync_timer; /* the journal's INTERVAL syncs */
    struct event *tick_ev;    /* the broker's timers (ticker.c) */
    uint64_t tick_due;        /* broker clock ms tick_ev is armed for; UINT64_MAX: none */
    struct event *heartbeat_ev; /* heartbeat.c: every quarter of heartbeat_ms */
    struct dedup *dedup;        /* duplicates.c: owned; NULL until a producer asks */

    /* Connections closed since the heap was last given back to the
     * system, and the timer that does it once a burst of closes is over. */
    size_t closed_since_trim;
    struct event *heap_trim_ev;

    bool shutting_down;
    void (*all_closed)(void *arg); /* called once, then cleared */
    void *all_closed_arg;
};

/* ---- provided by conn.c ---- */

/* Queues one frame for the peer (encoded straight into the output buffer,
 * written at the end of the batch); throttles above max_output. */
void conn_send(struct conn *c, const struct ferry_frame *f);
/* Sends a fatal ERROR after the output already queued, then closes.
 * Safe inside session_ops callbacks: it does not free the connection. */
void conn_fail(struct conn *c, enum ferry_code code, const char *text);
/* Adds a publish id to the CONFIRM gathered for the current input batch. */
void conn_confirm_add(struct conn *c, uint64_t id);
/* Sends the gathered CONFIRM now (a reply must not overtake it). */
void conn_emit_confirms(struct conn *c);
/* Gives the connection's messages back to the broker at once (they are
 * redelivered elsewhere) and drops its waiting GETs. Not from inside a
 * session_ops callback. */
void conn_release_session(struct conn *c);
/* The publish being handled parked the session: stop reading and
 * handling input, the frame included, until conn_unblocked. */
void conn_park(struct conn *c);
/* The broker woke the session (from inside a broker call): the parked
 * frame is handled again from the loop, in the order of the wake-ups. */
void conn_unblocked(struct conn *c);
/* Asks for the end of this turn of the loop, which runs after every event
 * ready in this turn: the journal's flush and the confirms it allows
 * (commit_run), then one write() per connection that has output. */
void conn_set_flush(struct conn_set *set);

/* ---- provided by ticker.c ---- */

/* Creates the timer that drives the broker's timers, and arms it to fire
 * once at the start. 0, or -1 on ENOMEM. */
int ticker_init(struct conn_set *set);
void ticker_free(struct conn_set *set);
/* Arms the timer for the broker's next due time (end of each turn). */
void ticker_rearm(struct conn_set *set);

/* ---- provided by requests.c ---- */

/* The broker's callbacks into a connection. */
extern const struct session_ops conn_session_ops;
/* Handles one decoded frame from the peer. */
void requests_handle_frame(struct conn *c, const struct ferry_frame *f);
/* Frees one waiting GET and its timer. */
void requests_free_get(struct get_wait *w);

/* ---- provided by commit.c ---- */

/* Creates the turn-end and sync timer events (callbacks in conn.c and
 * commit.c). 0, or -1 on ENOMEM. */
int commit_init(struct conn_set *set, void (*turn_end)(evutil_socket_t, short, void *));
/* Frees them and the pending confirms. */
void commit_free(struct conn_set *set);
/* The publish (id if has_id) to a durable queue is confirmed, or refused,
 * once the journal's flush has reached lsn. */
void commit_wait(struct conn *c, bool has_id, uint64_t id, uint64_t lsn);
/* c is closing for good: its pending confirms are dropped. */
void commit_forget(struct conn *c);
/* The journal's flush (one write, at most one fdatasync), then a CONFIRM
 * for every publish now safe, or an ERROR STORAGE for every publish the
 * flush refused. Does nothing without a journal. */
void commit_run(struct conn_set *set);

/* ---- provided by conns.c ---- */

/* Fills c->peer from its socket (getpeername, or the Unix peer's pid and uid). */
void conns_describe_peer(struct conn *c);
/* CONNS: one page of the connections' statistics. */
void conns_on_list(struct conn *c, const struct ferry_frame *f);
/* KILL: closes the connection whose id the frame names. */
void conns_on_kill(struct conn *c, const struct ferry_frame *f);

/* ---- provided by duplicates.c ---- */

/* HELLO named producer `producer` (0: none): its publishes are checked
 * from now on, if the window is on (the table is made at the first). */
void duplicates_on_hello(struct conn *c, uint64_t producer);
/* For a connection with c->producer: true if publish f was accepted
 * within the window already; it is then confirmed again (or waits for
 * the journal as the first did) and must not be queued. */
bool duplicates_confirm_again(struct conn *c, const struct ferry_frame *f);
/* For a connection with c->producer: publish f was accepted. */
void duplicates_remember(struct conn *c, const struct ferry_frame *f, uint64_t wait_lsn);
/* The journal refused publish `id` of `producer` after all: a resend of
 * it is a new publish. */
void duplicates_forget(struct conn_set *set, uint64_t producer, uint64_t id);
/* A reload: the window's length. */
void duplicates_apply(struct conn_set *set);
/* For STATS: publishes confirmed again without being queued, and pairs
 * forgotten at dedup_entries before their window ended, since start. */
uint64_t duplicates_dropped(const struct conn_set *set);
uint64_t duplicates_evicted(const struct conn_set *set);
void duplicates_free(struct conn_set *set);

/* ---- provided by heartbeat.c ---- */

/* Creates the set's heartbeat timer (not armed). 0, or -1 on ENOMEM. */
int heartbeat_init(struct conn_set *set);
/* Arms the timer for set->limits.heartbeat_ms, or stops it for 0. */
void heartbeat_apply(struct conn_set *set);
void heartbeat_free(struct conn_set *set);

/* ---- small shared helpers ---- */

static inline struct ferry_bytes text_bytes(const char *text)
{
    return (struct ferry_bytes){ (const uint8_t *)text, strlen(text) };
}

static inline uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
