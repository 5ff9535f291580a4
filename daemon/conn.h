/*
 * conn.h - ferryd's client connections: each one a protocol state machine
 * over a non-blocking socket, and the set of them that shares the event
 * loop, the broker and the output flush.
 *
 * Knows frames and the broker; knows nothing of listeners, addresses or
 * signals (server.c hands it accepted sockets).
 */
#ifndef FERRYD_CONN_H
#define FERRYD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "broker.h"
#include "durable.h"
#include "ferry_proto.h"

/* Per-connection bounds, from the server configuration. */
struct conn_limits {
    size_t max_frame;  /* largest frame body accepted (announced in WELCOME) */
    size_t max_output; /* output bytes queued before the connection is throttled */
    uint64_t handshake_timeout_ms; /* to say HELLO after connecting */
    /* A connection nothing was heard from for this long is closed (0:
     * never); one silent for a quarter of it is sent a PING. */
    uint64_t heartbeat_ms;
    /* Publishes a producer (HELLO "producer") sends again within this
     * window are confirmed, not queued again (0: off); at most
     * dedup_entries pairs are remembered (fixed when the table is made). */
    uint64_t dedup_window_ms;
    size_t dedup_entries;
};

/* Every open connection, plus what they share while one input batch is
 * handled (the list of connections with output to flush, the confirms
 * gathered). */
struct conn_set;

/* Creates an empty set on `base`, serving `broker`. Both stay owned by
 * the caller and must outlive the set. NULL on ENOMEM. */
struct conn_set *conn_set_new(struct event_base *base, struct broker *broker,
                              const struct conn_limits *limits);
/* Closes every connection at once (without flushing) and frees the set. */
void conn_set_free(struct conn_set *set);

/* Publishes to durable queues are confirmed only once `durable` (the
 * broker's journal; not owned, must outlive the set) has flushed them:
 * the set flushes it once per turn of the loop, before writing any
 * socket. NULL (the default): no journal. */
void conn_set_use_durable(struct conn_set *set, struct durable *durable);

/* Puts new limits in force (a reload): max_output and the heartbeat at
 * once for every connection; max_frame and the handshake timeout for the connections
 * opened from now on (a connection keeps the max_frame its WELCOME
 * announced). 0, or -1 on ENOMEM with the old limits kept. */
int conn_set_limits(struct conn_set *set, const struct conn_limits *limits);

/* Number of open connections, closing ones included. */
size_t conn_set_count(const struct conn_set *set);

/* Serves a freshly accepted non-blocking socket (TCP, or else Unix).
 * Takes ownership of fd whatever the outcome (closes it on failure).
 * 0, or -1 on ENOMEM. */
int conn_open(struct conn_set *set, int fd, bool is_tcp);

/* Sends one fatal ERROR frame on a non-blocking socket that will not be
 * served (a connection over the limit), then closes it. Takes fd. */
void conn_reject(int fd, enum ferry_code code, const char *text);

/* Starts a graceful stop: the journal is flushed and its confirms sent,
 * then every connection gets a fatal SHUTTING_DOWN error after the output
 * already queued, stops reading and closes once its output is out. `all_closed(arg)` is called once, when the last
 * connection is gone (at once if there is none). */
void conn_set_shutdown(struct conn_set *set, void (*all_closed)(void *arg), void *arg);

#endif
