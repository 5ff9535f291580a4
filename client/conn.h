/*
 * conn.h - the inside of a libferry connection, shared by the files of
 * client/: `struct ferry_conn`, the waiting and I/O machinery, and the hooks
 * through which inbound frames reach the concept that owns them.
 * Not installed: ferry.h is the public face. Internal names are
 * `module__verb` so that they never look like the public `ferry_*` API.
 */
#ifndef FERRY_CONN_H
#define FERRY_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ferry.h"
#include "ferry_proto.h"

/* Acks made inside callbacks are sent as one ACK frame per read batch, or
 * as soon as this many have accumulated. */
#define CONN_ACK_BATCH 1024u

/* Defaults for struct ferry_options fields left at zero. */
#define CONN_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define CONN_DEFAULT_REQUEST_TIMEOUT_MS 30000
#define CONN_DEFAULT_MAX_OUTPUT (8u * 1024u * 1024u)
#define CONN_DEFAULT_RECONNECT_BASE_MS 100
#define CONN_DEFAULT_RECONNECT_MAX_MS 5000

/* With reconnect, a tag the caller sees is the broker's tag (low bits) and
 * the connection's epoch (high bits): an ack of a tag from before a
 * reconnect is dropped instead of settling a new delivery of that number. */
#define CONN_TAG_BITS 48
#define CONN_TAG_MASK ((UINT64_C(1) << CONN_TAG_BITS) - 1)

/* A deadline on the monotonic clock in milliseconds; CONN_NO_DEADLINE waits
 * without limit. */
#define CONN_NO_DEADLINE INT64_C(-1)

struct ferry_events; /* event.c: the libevent glue, opaque everywhere else */

/* One publish kept for sending again (reconnect.c). */
struct resend_rec {
    uint64_t id;
    size_t len;    /* its frame's bytes in conn->resend */
    bool settled;  /* confirmed or refused: dropped once it is the oldest */
};

/* A broker error as the library keeps it: code and NUL-terminated text. */
struct server_error {
    uint32_t code; /* enum ferry_code; 0 = none */
    char text[FERRY_ERROR_TEXT_MAX + 1];
};

/* One subscription opened by ferry_consume(). */
struct ferry_sub {
    uint64_t id;
    char *queue; /* owned; every ferry_message.queue of this sub points here */
    ferry_message_fn on_message;
    ferry_eos_fn on_eos;
    void *arg;
    uint32_t credit; /* its window, CREDITs included: what a reconnect asks for again */
    uint64_t ack_deadline_ms; /* asked for again by a reconnect too */
    uint64_t reopen_rid; /* the rid of the CONSUME a reconnect sent for it; 0: none */
    /* Set by ferry_cancel(). The entry (and `queue`) is freed only by the
     * reader between batches, never while a callback may hold `queue`. */
    bool cancelled;
};

/* A thread waiting for the broker's answer to a request (rid) or to a
 * confirmed publish (publish id). It lives on the waiting thread's stack and
 * is linked into conn->waiters while it waits; the reader fills it in and
 * sets `done`. */
struct ferry_waiter {
    struct ferry_waiter *next;
    bool is_publish; /* `key` is a publish id, else a rid */
    uint64_t key;
    bool done;
    int status;               /* once done: FERRY_OK, FERRY_ESERVER or FERRY_ENOMEM */
    struct server_error error; /* when status is FERRY_ESERVER */

    /* What the reply carried, for the requests that want it. */
    uint64_t count;           /* OK `n` (PURGE) */
    char *name_out;           /* DECLARE_TEMP: gets OK `q`, NUL-terminated (FERRY_NAME_MAX + 1) */
    bool empty;               /* OK `empty` (GET) */
    const char *get_queue;    /* GET: the queue name, borrowed from the caller */
    ferry_message *message;   /* GET: the delivery, copied; ownership passes to the caller */
    bool wants_stats;
    struct ferry_stats *stats; /* STATS: decoded reply; ownership passes to the caller */
    bool wants_patterns;
    char **patterns;          /* BINDINGS: decoded reply, one allocation; ownership passes */
    size_t pattern_count;
    /* CONNS: the page is appended to *conns (grown here, owned by the
     * caller of ferry_connections); conns_next is the reply's cursor. */
    struct ferry_connections **conns;
    uint64_t conns_next;
    const char *peek_queue;   /* PEEK: the queue name, borrowed; set: the reply's messages are wanted */
    ferry_message **peeked;   /* PEEK: copies; ownership passes to the caller */
    size_t peeked_count;
};

struct ferry_conn {
    int fd;
    unsigned long fork_generation; /* conn__forked() compares it to the process's */
    pthread_mutex_t mu;            /* guards everything below unless noted */
    pthread_cond_t cv;             /* broadcast whenever anything below changes */

    /* 0 while usable; once set, the status every call returns. */
    int dead;
    bool death_reported; /* the error handler has been told */
    bool welcomed;       /* the handshake is done */

    size_t max_frame;       /* from WELCOME: we never send a larger body */
    int request_timeout_ms; /* < 0: no limit */
    size_t max_output;      /* bound of the unsent output */

    /* Input. Only the thread holding the reader role (`reading`) touches
     * `in`, and it never compacts it while a callback runs. */
    bool reading;
    struct ferry_buf in;

    /* Output. Producers append frames to `out` under the mutex; the thread
     * holding the writer role swaps it with the empty `sending` and writes
     * `sending` with the mutex released, so writes of many threads
     * coalesce into one syscall. */
    bool writing;
    /* The writer role's holder writes until the output is empty before it
     * lets go: a producer that finds it so can leave its frame to it. */
    bool draining;
    struct ferry_buf out;
    struct ferry_buf sending; /* writer role only */
    uint64_t out_total;       /* bytes ever appended to `out` */
    uint64_t written_total;   /* bytes ever written to the socket */
    uint64_t read_total;      /* bytes ever read from the socket (reader role) */

    /* Event-loop mode: once ferry_process() or ferry_attach() is used, only
     * `loop_thread` reads (so callbacks run there); others wait for it. */
    bool loop_driven;
    pthread_t loop_thread;
    struct ferry_events *events; /* owned; NULL unless attached */

    /* Requests and confirms. */
    uint64_t next_rid;
    struct ferry_waiter *waiters;  /* intrusive list of on-stack waiters */
    size_t publish_waiters;        /* how many of them wait for a publish id */
    uint64_t next_publish_id;
    uint64_t unconfirmed;          /* publish ids neither confirmed nor refused */
    struct server_error first_refusal; /* first refusal no caller has seen */
    struct ferry_buf scratch;      /* header maps being encoded (under mu) */

    /* Subscriptions, sorted by id (ids count up, so appending keeps order). */
    uint64_t next_sub;
    struct ferry_sub *subs;
    size_t sub_count;
    size_t sub_cap;

    /* Acks made inside callbacks, waiting for the end of the read batch. */
    uint64_t pending_acks[CONN_ACK_BATCH];
    size_t pending_ack_count;

    ferry_error_fn on_error;
    void *error_arg;
    ferry_refusal_fn on_refusal; /* refused publishes nobody waits for */
    void *refusal_arg;

    /* Request/reply (rpc.c): the private reply queue, made by the first
     * ferry_request(), and the callers waiting for their replies. */
    enum { RPC_NONE, RPC_SETTING_UP, RPC_READY } rpc_state;
    char rpc_queue[FERRY_NAME_MAX + 1];
    uint64_t rpc_sub;              /* its subscription, once READY */
    uint64_t rpc_next_id;
    struct rpc_waiter *rpc_waiters; /* on the callers' stacks */

    /* Reconnecting (reconnect.c). Set at connect when asked for. */
    bool reconnect;
    struct ferry_addr addr;       /* where to connect again */
    char name[FERRY_CLIENT_NAME_MAX + 1];
    uint64_t producer;            /* HELLO "producer": random, kept for every reconnect */
    int connect_timeout_ms;
    int reconnect_base_ms, reconnect_max_ms;
    /* The connection broke and is to be made again: not dead, no I/O. */
    bool broken;
    bool reconnecting;            /* a thread is connecting (mutex released) */
    bool no_reconnect;            /* the break is not one to reconnect after */
    unsigned attempts;            /* failed attempts since the break */
    int64_t next_attempt_ms;
    uint64_t epoch;               /* reconnects so far: the high bits of tags */
    int silent_fd;                /* a pipe's read end, put at `fd` while broken; -1 */
    int silent_peer;              /* its write end, kept open; -1 */
    /* Unconfirmed publishes, their frames as sent, oldest first (ids
     * count up by one, so the record of id i is at i - recs[head].id). */
    struct ferry_buf resend;
    struct resend_rec *recs;
    size_t rec_head, rec_count, rec_cap;

    /* Heartbeat (heartbeat.c): the broker's timeout from WELCOME (0: none),
     * when we last read a byte from it, when we last sent it a PING. */
    uint64_t heartbeat_ms;
    int64_t heard_ms;
    int64_t pinged_ms;
    /* The keeper thread answers the broker between blocking calls; it
     * runs until a loop drives the connection, or ferry_close(). */
    bool keeper_started;
    bool keeper_stop;
    pthread_t keeper;
    pthread_cond_t keeper_cv; /* signalled by ferry_close(), a break, a loop taking over */
};

/* ---- conn.c: lifetime, locking, failure ------------------------------- */

/* true in a child process that inherited the connection by fork(). */
bool conn__forked(const struct ferry_conn *c);
/* Checks fork, takes the mutex, checks the connection is alive. Returns
 * FERRY_OK with the mutex held, or a status with it released. */
int conn__lock(struct ferry_conn *c);
void conn__unlock(struct ferry_conn *c);
/* Wakes every thread waiting on the connection. */
void conn__wake(struct ferry_conn *c);
/* Marks the connection unusable with `status` (first failure wins) and
 * wakes everybody; shuts the socket down so that pollers wake too. */
void conn__fail(struct ferry_conn *c, int status);
/* true if the calling thread runs a callback of this connection. */
bool conn__in_dispatch(const struct ferry_conn *c);
/* Runs with the mutex released and the thread marked as dispatching `c`:
 * call before a user callback; conn__end_callback() after it. */
struct ferry_conn *conn__begin_callback(struct ferry_conn *c);
void conn__end_callback(struct ferry_conn *c, struct ferry_conn *saved);
/* Gives an error to the error handler, if any (mutex held, released for
 * the call): a broker code (> 0), or a ferry_status (< 0) when the
 * connection is lost. */
void conn__report_error(struct ferry_conn *c, int code, struct ferry_bytes text);
/* Copies a broker's text into out, cut to FERRY_ERROR_TEXT_MAX, NUL-terminated. */
void conn__copy_text(char out[FERRY_ERROR_TEXT_MAX + 1], struct ferry_bytes text);
/* Serves an already connected non-blocking socket: says HELLO and waits
 * for WELCOME until `deadline`. Takes fd whatever the outcome. The second
 * half of ferry_connect_opts(); also the way in for tests/fuzz, which hands
 * it one end of a socketpair whose other end plays the broker. */
int conn__adopt_fd(int fd, const struct ferry_options *o, int64_t deadline, ferry_conn **out);
/* true if queue is a non-NULL valid queue name; its bytes for a frame. */
bool conn__queue_valid(const char *queue);
struct ferry_bytes conn__bytes(const char *s);
/* Monotonic clock in ms; a deadline timeout_ms from now (< 0: none). */
int64_t conn__now_ms(void);
int64_t conn__deadline(int timeout_ms);
/* Waits on the condition variable until woken or the deadline passes.
 * FERRY_OK or FERRY_ETIMEDOUT. */
int conn__sleep(struct ferry_conn *c, int64_t deadline);

/* ---- io.c: sockets and the reader/writer roles ------------------------ */

/* Opens a non-blocking socket to `a` within the deadline. */
int io__connect(const struct ferry_addr *a, int64_t deadline, int *fd_out);
/* Unsent bytes (in `out` and `sending`). */
size_t io__output_pending(const struct ferry_conn *c);
/* Encodes f at the end of `out`. FERRY_OK, FERRY_ENOMEM, or FERRY_EINVAL
 * when the body would exceed max_frame (nothing is appended then). */
int io__append(struct ferry_conn *c, const struct ferry_frame *f);
/* Whether `need` more bytes fit the output bound, after writing what the
 * socket takes without blocking: FERRY_OK, FERRY_EAGAIN or the dead status. */
int io__try_room(struct ferry_conn *c, size_t need);
/* Waits (pumping) until out_total - written_total + need <= max_output.
 * In a callback it does not wait: FERRY_EAGAIN. */
int io__wait_for_room(struct ferry_conn *c, size_t need, int64_t deadline);
/* Makes sure what was appended reaches the socket: writes everything
 * pending (waiting and pumping as needed), or leaves it to the thread
 * already doing so; in a callback it writes what it can without blocking. */
int io__send(struct ferry_conn *c, int64_t deadline);

/* What a thread waits for, for io__pump(). */
enum pump_need {
    PUMP_OUTPUT, /* output progress: room in the buffer, bytes written */
    PUMP_INPUT,  /* something only the broker can send */
    PUMP_DRAIN,  /* an empty output buffer, written by this thread */
};
/* One step of waiting (mutex held): does the reading or writing nobody
 * else is doing, else sleeps on the condvar. Returns FERRY_OK (re-check
 * your condition), FERRY_ETIMEDOUT or the dead status. */
int io__pump(struct ferry_conn *c, enum pump_need need, int64_t deadline);
/* Writes without blocking if no other thread is writing. */
int io__write_now(struct ferry_conn *c);
/* The reader role, without blocking (ferry_process): reads what is
 * there and processes it. FERRY_OK or the dead status. */
int io__read_available(struct ferry_conn *c);

/* ---- inbound.c: frames from the broker -------------------------------- */

/* Processes every whole frame in c->in (reader role, mutex held). */
void inbound__process(struct ferry_conn *c);

/* ---- reconnect.c ------------------------------------------------------ */

/* true if the connection should be made again after failing with status. */
bool reconnect__wanted(const struct ferry_conn *c, int status);
/* Blocking use (mutex held, c->broken): waits for the next attempt and
 * makes it, or waits for the thread making it. FERRY_OK (re-check your
 * condition), FERRY_ETIMEDOUT, or the dead status. */
int reconnect__pump(struct ferry_conn *c, int64_t deadline);
/* Loop use (mutex held, c->broken): one attempt if one is due. */
void reconnect__step(struct ferry_conn *c);
/* ms until the next attempt, 0 if due; -1 if not broken. Mutex held. */
int reconnect__due_in(const struct ferry_conn *c);
/* The tag a caller sees for the broker's tag, and back (false: a tag from
 * before a reconnect, which must not be sent). */
uint64_t reconnect__user_tag(const struct ferry_conn *c, uint64_t broker_tag);
bool reconnect__broker_tag(const struct ferry_conn *c, uint64_t user_tag, uint64_t *broker_tag);
/* Keeps the frame of publish `id` (its bytes just appended to `out`) for
 * sending again. FERRY_OK or FERRY_ENOMEM. */
int resend__record(struct ferry_conn *c, uint64_t id, const uint8_t *frame, size_t len);
/* Publish `id` is confirmed or refused. */
void resend__settle(struct ferry_conn *c, uint64_t id);
/* Bytes kept for sending again. */
size_t resend__pending(const struct ferry_conn *c);
void reconnect__free(struct ferry_conn *c);

/* ---- heartbeat.c ------------------------------------------------------ */

/* Mutex held. PINGs a broker silent for a quarter of its timeout, fails
 * the connection (FERRY_EIO) once it is silent for the whole timeout.
 * Returns the ms until it should run again, -1 for never. */
int heartbeat__tick(struct ferry_conn *c);
/* The ms until heartbeat__tick() is due, -1 for never. Mutex held. */
int heartbeat__due_in(const struct ferry_conn *c);
/* Starts the keeper thread if the broker asked for heartbeats.
 * FERRY_OK or FERRY_ENOMEM. Mutex not held. */
int heartbeat__start(struct ferry_conn *c);
/* Stops and joins the keeper thread. Mutex not held. */
void heartbeat__stop(struct ferry_conn *c);

/* ---- request.c: requests with rid and the threads waiting for them ---- */

/* Links w (zeroed by the caller) as waiting for a new rid; returns the rid. */
uint64_t request__begin(struct ferry_conn *c, struct ferry_waiter *w);
/* Links w as waiting for publish id `id`. */
void request__begin_publish(struct ferry_conn *c, struct ferry_waiter *w, uint64_t id);
/* Unlinks w without waiting (the request could not be sent). */
void request__end(struct ferry_conn *c, struct ferry_waiter *w);
/* Waits until w is answered, the deadline passes or the conn dies; unlinks
 * w. Sets the thread's server error on FERRY_ESERVER. */
int request__wait(struct ferry_conn *c, struct ferry_waiter *w, int64_t deadline);
/* A whole round trip: sends f (its rid is set here) and waits for the
 * answer into w (zeroed by the caller, reply fields preset). Not from callbacks. */
int request__roundtrip(struct ferry_conn *c, struct ferry_frame *f, struct ferry_waiter *w,
                       int timeout_ms);
/* The waiter for a rid or a publish id, NULL if nobody waits for it. */
struct ferry_waiter *request__find(struct ferry_conn *c, bool is_publish, uint64_t key);
/* Marks w answered with `status` and the broker error (may be NULL). */
void request__finish(struct ferry_conn *c, struct ferry_waiter *w, int status,
                     const struct ferry_frame *error);
/* Inbound OK. */
void request__on_ok(struct ferry_conn *c, const struct ferry_frame *f);

/* ---- publish.c --------------------------------------------------------- */

/* Inbound CONFIRM: settles each listed publish id. */
void publish__on_confirm(struct ferry_conn *c, const struct ferry_frame *f);
/* An ERROR carrying a publish id: that publish was refused. */
void publish__on_refusal(struct ferry_conn *c, const struct ferry_frame *f);

/* ---- consume.c --------------------------------------------------------- */

/* Inbound DELIVER: to its subscription's callback, or to a waiting GET. */
void consume__on_deliver(struct ferry_conn *c, const struct ferry_frame *f);
/* Inbound EOS: to its subscription's end-of-stream callback. */
void consume__on_eos(struct ferry_conn *c, const struct ferry_frame *f);
/* Moves the acks batched by callbacks into `out` as one ACK frame. */
void consume__flush_acks(struct ferry_conn *c);
/* Frees cancelled subscriptions; reader role, no callback running. */
void consume__sweep(struct ferry_conn *c);
/* Frees every subscription (ferry_close). */
void consume__free_all(struct ferry_conn *c);
/* An ERROR whose rid no caller waits for: if it answers the CONSUME a
 * reconnect sent (reconnect.c), the subscription is dropped and the
 * refusal goes to the error handler; else nothing. Reader role, mutex held. */
void consume__on_reopen_refused(struct ferry_conn *c, const struct ferry_frame *f);

/* ---- rpc.c ------------------------------------------------------------- */

/* The connection was made again (reconnect.c, mutex held): the reply
 * queue died with the old one, so its subscription is dropped here (not
 * resumed), the callers waiting for a reply return FERRY_EIO, and the
 * next ferry_request() makes a new queue. */
void rpc__reset(struct ferry_conn *c);

/* ---- admin.c ----------------------------------------------------------- */

/* Decodes an OK reply to STATS into one caller-owned allocation. */
int admin__decode_stats(const struct ferry_frame *f, struct ferry_stats **out);
/* Decodes an OK reply to BINDINGS into w->patterns (one allocation). */
int admin__decode_patterns(const struct ferry_frame *f, struct ferry_waiter *w);
/* Copies the messages of an OK reply to PEEK into w->peeked (owned).
 * FERRY_OK or FERRY_ENOMEM. */
int admin__decode_peek(const struct ferry_frame *f, struct ferry_waiter *w);

/* ---- connections.c ----------------------------------------------------- */

/* Appends the connections of an OK reply to CONNS to *w->conns and sets
 * w->conns_next. FERRY_OK, FERRY_ENOMEM, or FERRY_EPROTO if it is no such reply. */
int connections__decode_page(const struct ferry_frame *f, struct ferry_waiter *w);

/* ---- message.c --------------------------------------------------------- */

/* A caller-owned ferry_message from the parts, in one allocation. */
ferry_message *message__new(uint64_t tag, uint64_t sub, uint64_t attempt, const char *queue,
                            struct ferry_bytes payload, struct ferry_bytes headers);

/* ---- event.c ----------------------------------------------------------- */

/* Removes and frees the libevent events (ferry_close). */
void events__free(struct ferry_events *ev);

/* ---- status.c ---------------------------------------------------------- */

/* Sets the calling thread's last server error (text need not be NUL-terminated). */
void status__set_server_error(uint32_t code, const char *text, size_t len);

#endif
