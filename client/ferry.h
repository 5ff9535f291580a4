/*
 * ferry.h - libferry, the C client of the ferry message broker.
 *
 * One `ferry_conn` is one connection to ferryd. It serves both sides:
 *
 *   Producers: blocking, thread-safe calls. ferry_publish() queues the
 *   frame and writes it (coalescing with other threads' frames into one
 *   write); ferry_flush() waits until the broker has confirmed every
 *   publish made so far on the connection. Many threads may share one
 *   connection: each call takes the connection's mutex for the time of an
 *   append to the output buffer, so threads serialise there. For the last
 *   bit of throughput give each thread its own connection.
 *
 *   Consumers: asynchronous. ferry_consume() registers a callback per
 *   message; messages are read and dispatched by ferry_process(), which
 *   either ferry_attach() calls from a libevent loop, or your own loop
 *   calls when ferry_fd() is readable (see "Event-loop integration").
 *   ferry_get() is the blocking alternative for simple programs.
 *
 * Errors: every call returns FERRY_OK (0) or a negative ferry_status.
 * When the broker answered with an error frame the call returns
 * FERRY_ESERVER, and ferry_server_error() tells the code and text (per
 * thread). ferry_strerror() names any status.
 *
 * Ownership rules:
 *   - Arguments are borrowed for the duration of the call only: the
 *     library copies what it keeps. A failed publish leaves everything with
 *     the caller, who may retry.
 *   - A `ferry_message` passed to a callback, and its payload and headers,
 *     belong to the library and are valid until the callback returns. Use
 *     ferry_message_copy() to keep one; free that with ferry_message_free().
 *   - A `ferry_message` from ferry_get() belongs to the caller: free it
 *     with ferry_message_free() (after acking it with ferry_ack()).
 *   - ferry_stats() results belong to the caller: ferry_stats_free().
 *
 * Fork: a connection belongs to the process that opened it. In a child,
 * every call on an inherited connection returns FERRY_EFORKED and touches
 * nothing shared; ferry_close() in the child frees the memory and closes
 * the child's copy of the descriptor without writing to it. Open a new
 * connection in the child.
 */
#ifndef FERRY_H
#define FERRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_VERSION_STRING "0.1.0"

/* Marks the library's exported symbols; everything else stays hidden. */
#if defined(__GNUC__)
#define FERRY_API __attribute__((visibility("default")))
#else
#define FERRY_API
#endif

/* Status codes. 0 is success; every error is negative. */
typedef enum ferry_status {
    FERRY_OK = 0,
    FERRY_EINVAL = -1,     /* a bad argument (NULL, bad queue name, too large) */
    FERRY_ENOMEM = -2,     /* out of memory */
    FERRY_ECONNECT = -3,   /* could not connect, or the handshake failed */
    FERRY_EIO = -4,        /* the connection broke; the conn is unusable */
    FERRY_EPROTO = -5,     /* the server sent something malformed; unusable */
    FERRY_ETIMEDOUT = -6,  /* the timeout passed first */
    FERRY_ESERVER = -7,    /* the broker refused: see ferry_server_error() */
    FERRY_EFORKED = -8,    /* the connection was opened by the parent process */
    FERRY_ECLOSED = -9,    /* the connection was closed */
    FERRY_EAGAIN = -10,    /* nothing could be done without blocking */
    FERRY_EDEADLK = -11,   /* a blocking call from inside this conn's callback */
    FERRY_EENDED = -12,    /* ferry_get: the queue is ended and drained */
} ferry_status;

/* Human-readable text of a status. Never NULL. */
FERRY_API const char *ferry_strerror(int status);

/* The broker's error code and text of the calling thread's last
 * FERRY_ESERVER (codes as in docs/PROTOCOL.md, e.g. 8 = ENDED, 18 =
 * STORAGE: a durable queue's log refused the publish, disk limit reached
 * or write error; retry later).
 * Returns the code, 0 if none; `text` may be NULL. */
FERRY_API int ferry_server_error(const char **text);

typedef struct ferry_conn ferry_conn;

/* Connection options; zero means default. */
struct ferry_options {
    const char *url;          /* NULL: ferry_default_url() */
    const char *name;         /* client name shown in stats; NULL: program name */
    int connect_timeout_ms;   /* default 5000 */
    int request_timeout_ms;   /* blocking round trips (declare, stats...); default 30000 */
    size_t max_output_bytes;  /* bound of the unsent output buffer; default 8 MiB.
                                 ferry_publish blocks while it is full. With
                                 reconnect, it also bounds the unconfirmed
                                 publishes kept for sending again. */
    /* Reconnect when the connection breaks (off by default; see libferry(3),
     * "Reconnecting"): after reconnect_base_ms, then twice as long after
     * each failed attempt up to reconnect_max_ms, until it succeeds; then
     * subscriptions are opened again with their credit and unconfirmed
     * publishes sent again with their ids, which the broker confirms
     * without queueing twice. */
    bool reconnect;
    int reconnect_base_ms;    /* default 100 */
    int reconnect_max_ms;     /* default 5000 */
};

/* The URL used when none is given: $FERRY_URL, else
 * "unix:/run/ferry/ferryd.sock". Never NULL. */
FERRY_API const char *ferry_default_url(void);

/* Connects and completes the handshake. url NULL: default. */
FERRY_API int ferry_connect(const char *url, ferry_conn **out);
FERRY_API int ferry_connect_opts(const struct ferry_options *opts, ferry_conn **out);

/* Closes and frees. Unflushed publishes are written if the socket takes
 * them without blocking, else dropped: call ferry_flush() first. Not from
 * a callback of this connection, nor while another thread uses it. With
 * reconnect, it waits for a reconnect attempt the keeper thread is making
 * (at most connect_timeout_ms). */
FERRY_API void ferry_close(ferry_conn *c);

/* ---- producing ------------------------------------------------------- */

/* A header: NUL-terminated key, byte-string value. */
struct ferry_header {
    const char *key;
    const void *value;
    size_t value_len;
};

/* Message priorities: 0 (lowest) to FERRY_PRIORITY_MAX (highest). */
#define FERRY_PRIORITY_MAX 9u
/* The longest time to live of a message: 10 years, in ms. */
#define FERRY_TTL_MAX_MS 315360000000ull

/* One message of a batch. */
struct ferry_msg {
    const void *data;
    size_t len;
    const struct ferry_header *headers;
    size_t header_count;
    bool has_priority;   /* false: the queue's default priority */
    uint8_t priority;    /* 0..FERRY_PRIORITY_MAX */
    uint64_t ttl_ms;     /* time to live; 0: the queue's (see ferry_publish_options) */
};

#define FERRY_PUBLISH_CONFIRM 1 /* wait until this publish is confirmed */
/* Never wait: if the output buffer has no room for the frame, return
 * FERRY_EAGAIN with nothing queued (retry once ferry_fd() is writable or
 * after ferry_write_pending()); else queue it, write what the socket takes
 * now and return FERRY_OK: the rest goes out with later calls
 * (ferry_write_pending(), another publish, ferry_flush()). Not with
 * FERRY_PUBLISH_CONFIRM (FERRY_EINVAL). A broker whose queue is full under
 * the block policy stops reading this connection: the output buffer then
 * fills and non-blocking publishes get FERRY_EAGAIN. */
#define FERRY_PUBLISH_NONBLOCK 2

/* What ferry_publish_opts() sends beside the payload. A zeroed struct is
 * a plain publish, as ferry_publish() makes. */
struct ferry_publish_options {
    const struct ferry_header *headers;
    size_t header_count;
    int flags;           /* FERRY_PUBLISH_CONFIRM, FERRY_PUBLISH_NONBLOCK or 0 */
    bool has_priority;   /* false: the queue's default priority */
    uint8_t priority;    /* 0..FERRY_PRIORITY_MAX: higher is delivered first */
    uint64_t delay_ms;   /* not delivered before this many ms from now (0: at once) */
    uint64_t deliver_at_ms; /* nor before this Unix time in ms (0: none); with both, the
                             * later wins. At most 366 days ahead: further is FERRY_EINVAL
                             * here (delay) or a BAD_REQUEST refusal (deliver_at) */
    /* Time to live in ms (1..FERRY_TTL_MAX_MS), counted from the publish
     * (or the end of its delay): a message not delivered by then never
     * is. 0: the queue's (the queue's ttl, if shorter, applies anyway). */
    uint64_t ttl_ms;
};

/* Publishes one message. Returns once the frame is written to the socket
 * (or, with FERRY_PUBLISH_CONFIRM, confirmed by the broker). Blocks while
 * the output buffer is full (backpressure: a queue whose overflow policy
 * is block makes the broker stop reading the connection, so this is where
 * a producer waits for room in a full queue). Waits at most the request
 * timeout: FERRY_ETIMEDOUT then means the frame is queued but not all
 * written yet; it still goes out, and ferry_flush() tells its fate.
 * A refusal of an unconfirmed publish (QUEUE_FULL under the reject policy,
 * ENDED, STORAGE...) goes to the refusal handler with its id
 * (ferry_set_refusal_handler, ferry_last_publish_id) and is reported by the
 * next ferry_flush().
 * When another thread is writing this connection's output, the frame is
 * left to it: that thread writes everything pending before it returns, so
 * threads sharing a connection share their write() calls. From a callback
 * of this connection it does not block: the frame is written as the socket
 * allows, and FERRY_EAGAIN means the output buffer is full. */
FERRY_API int ferry_publish(ferry_conn *c, const char *queue, const void *data, size_t len,
                  const struct ferry_header *headers, size_t header_count, int flags);

/* ferry_publish with options (o NULL: none). FERRY_EINVAL for a priority
 * above FERRY_PRIORITY_MAX, a delay above FERRY_DELAY_MAX_MS or a ttl above
 * FERRY_TTL_MAX_MS; otherwise as ferry_publish. A delayed message waits in
 * the broker, not counted in its queue's depth but in "delayed", until its
 * time, then joins the back of the queue. */
FERRY_API int ferry_publish_opts(ferry_conn *c, const char *queue, const void *data, size_t len,
                                 const struct ferry_publish_options *o);

/* Publishes n messages in one frame; confirmed as a whole. Each message
 * may carry its own priority (not a delay). */
FERRY_API int ferry_publish_batch(ferry_conn *c, const char *queue, const struct ferry_msg *msgs,
                        size_t n, int flags);

/* Publishes one message to a topic: the broker puts a copy into every
 * queue bound to it by a matching pattern (see ferry_bind), or drops it if
 * none matches. Topic syntax: docs/PROTOCOL.md, "Topics" (words of
 * [A-Za-z0-9_:-] separated by '.', 255 bytes and 32 words at most);
 * FERRY_EINVAL if it is not one. Otherwise as ferry_publish_opts() (o
 * NULL: no header, no confirm, each queue's default priority). */
FERRY_API int ferry_publish_topic(ferry_conn *c, const char *topic, const void *data, size_t len,
                                  const struct ferry_publish_options *o);

/* The publish id of the calling thread's last publish that was queued
 * (by ferry_publish, ferry_publish_opts or ferry_publish_batch, on any
 * connection); 0 if none. Ids count up from 1 on each connection; a
 * refusal handler names the refused publish by it. */
FERRY_API uint64_t ferry_last_publish_id(void);

/* A publish the broker refused, that no FERRY_PUBLISH_CONFIRM caller waits
 * for: its id (ferry_last_publish_id), the broker's code (13 = QUEUE_FULL:
 * the queue or the broker's memory is at its bound under the reject policy,
 * or under block for a connection that also consumes, or drop-oldest
 * found nothing to drop) and text. Called once per refused
 * id, from the thread that reads the connection (a blocked publish or
 * flush, ferry_process, the libevent loop), with no lock held; it must not
 * make blocking calls on this connection (they return FERRY_EDEADLK). */
typedef void (*ferry_refusal_fn)(ferry_conn *c, uint64_t id, int code, const char *text,
                                 void *arg);
/* Sets the refusal handler (NULL: none; ferry_flush still reports the first). */
FERRY_API void ferry_set_refusal_handler(ferry_conn *c, ferry_refusal_fn fn, void *arg);

/* Waits until every publish made so far on this connection is confirmed.
 * Returns FERRY_OK, FERRY_ESERVER if any of them was refused since the last
 * flush (ferry_server_error() tells the first refusal), or an I/O status.
 * timeout_ms < 0 waits without limit. */
FERRY_API int ferry_flush(ferry_conn *c, int timeout_ms);

/* ---- consuming -------------------------------------------------------- */

/* A delivered message. Valid only inside the callback unless copied. */
typedef struct ferry_message {
    uint64_t tag;          /* delivery tag: give it to ferry_ack/ferry_nack */
    uint64_t sub;          /* the subscription it came through (0 for ferry_get) */
    uint32_t attempt;      /* 1 on first delivery, more on redelivery */
    const char *queue;     /* NUL-terminated queue name */
    const void *data;      /* payload */
    size_t len;
    const void *headers;   /* raw msgpack map; use ferry_message_header() */
    size_t headers_len;
} ferry_message;

/* Finds header `key`. Returns true and sets value/len if present. */
FERRY_API bool ferry_message_header(const ferry_message *m, const char *key,
                          const void **value, size_t *len);
/* A caller-owned deep copy; NULL on ENOMEM. */
FERRY_API ferry_message *ferry_message_copy(const ferry_message *m);
/* Frees a message from ferry_message_copy() or ferry_get(). NULL is fine. */
FERRY_API void ferry_message_free(ferry_message *m);

typedef void (*ferry_message_fn)(ferry_conn *c, const ferry_message *m, void *arg);
/* End of stream: the queue was ended and every message before the end has
 * been delivered and acked (or the queue was deleted). */
typedef void (*ferry_eos_fn)(ferry_conn *c, uint64_t sub, const char *queue, void *arg);
/* An asynchronous error from the broker (an ack of an unknown tag, a
 * subscription the broker refused to open again after a reconnect...).
 * On a connection driven by ferry_attach() it is also called once, with
 * code < 0 (the ferry_status, e.g. FERRY_EIO) and text = ferry_strerror(code),
 * when the connection ends; no callback of that connection follows. */
typedef void (*ferry_error_fn)(ferry_conn *c, int code, const char *text, void *arg);

struct ferry_consume_options {
    uint32_t credit;            /* most unacked messages at once; default 256 */
    ferry_message_fn on_message; /* required */
    ferry_eos_fn on_eos;         /* optional */
    void *arg;                   /* given to both callbacks */
    uint64_t ack_deadline_ms;    /* a delivery not acked (or touched) this long after it came
                                  * is taken back and redelivered; 0: the queue's (ferryd.conf) */
};

/* Subscribes to `queue` (created if missing). Blocks for the broker's
 * answer; *sub_out receives the subscription id. Not from a callback. */
FERRY_API int ferry_consume(ferry_conn *c, const char *queue, const struct ferry_consume_options *o,
                  uint64_t *sub_out);
/* Widens the subscription's window by n messages. */
FERRY_API int ferry_credit(ferry_conn *c, uint64_t sub, uint32_t n);
/* Stops the subscription. Messages already delivered stay unacked until
 * acked or the connection closes. Does not wait. */
FERRY_API int ferry_cancel(ferry_conn *c, uint64_t sub);

/* Acknowledges deliveries. Callable from the callback (acks are then
 * batched into one frame per read) or from any thread (written at once). */
FERRY_API int ferry_ack(ferry_conn *c, uint64_t tag);
FERRY_API int ferry_ack_many(ferry_conn *c, const uint64_t *tags, size_t n);
/* Negative acknowledgement: requeue (to the front) or drop. A message that
 * used up its queue's max_attempts goes to its dead-letter queue instead. */
FERRY_API int ferry_nack(ferry_conn *c, uint64_t tag, bool requeue);
/* Negative acknowledgement with requeue after delay_ms (at most 366 days,
 * else FERRY_EINVAL): the message waits, then joins the back of its queue. */
FERRY_API int ferry_nack_delay(ferry_conn *c, uint64_t tag, uint64_t delay_ms);
/* Extends the ack deadline of a delivery still being worked on: it is now
 * due deadline_ms from now (0: its subscription's or queue's deadline
 * again). A tag no longer in flight (its deadline passed, it was settled)
 * is reported to the error handler as UNKNOWN_TAG. Does not wait. */
FERRY_API int ferry_touch(ferry_conn *c, uint64_t tag, uint64_t deadline_ms);

/* Blocking receive of one message for simple programs. Returns FERRY_OK
 * with *out set (caller owns it, must ack it), FERRY_ETIMEDOUT when none
 * came in time, or FERRY_EENDED if the queue is ended and drained.
 * timeout_ms < 0 waits without limit. */
FERRY_API int ferry_get(ferry_conn *c, const char *queue, int timeout_ms, ferry_message **out);

/* Receives asynchronous broker errors; default: ignored. */
FERRY_API void ferry_set_error_handler(ferry_conn *c, ferry_error_fn fn, void *arg);

/* ---- event-loop integration ------------------------------------------ */

/* The socket. Poll it for reading always, and for writing while
 * ferry_want_write() is true. Do not read, write or close it yourself. */
FERRY_API int ferry_fd(const ferry_conn *c);
/* Reads what is readable without blocking and dispatches callbacks.
 * Returns FERRY_OK, or FERRY_EIO / FERRY_EPROTO / FERRY_ECLOSED when the
 * connection is over.
 * The thread that calls it (or, after ferry_attach(), the loop's thread)
 * becomes the connection's only reader, so that callbacks run there:
 * blocking calls from other threads then wait for it to read their
 * answers, so keep calling it whenever ferry_fd() is readable. */
FERRY_API int ferry_process(ferry_conn *c);
/* true while output is waiting for the socket to become writable. */
FERRY_API bool ferry_want_write(ferry_conn *c);
/* Writes pending output without blocking. FERRY_OK or an I/O status. */
FERRY_API int ferry_write_pending(ferry_conn *c);
/* Milliseconds until ferry_process() should be called again even without
 * input (heartbeats, the next reconnect attempt), or -1 for no deadline.
 * A ferry_process() that makes a reconnect attempt blocks while it
 * connects and waits for the broker's WELCOME: at most connect_timeout_ms
 * (a broker that accepts but does not answer, an unreachable TCP host). */
FERRY_API int ferry_next_timeout(ferry_conn *c);
/* How many times the connection was made again (ferry_options.reconnect).
 * ferry_fd() keeps its number across a reconnect, but names a new socket:
 * an epoll loop must register it again when this count changes. */
FERRY_API uint64_t ferry_reconnects(ferry_conn *c);

struct event_base;
/* Drives the connection from a libevent loop: adds read/write/timer events
 * to `base`, whose thread then runs the callbacks. Call once, before
 * event_base_dispatch. ferry_close() removes the events. When the
 * connection ends (EOF, I/O or protocol error) its events are removed and
 * the error handler is called with the status (see ferry_error_fn). */
FERRY_API int ferry_attach(ferry_conn *c, struct event_base *base);
/* Runs the loop `c` is attached to, as event_base_dispatch() does, until
 * event_base_loopbreak()/loopexit() or until no event is left. With
 * busy_poll_us > 0 the loop polls without blocking for as long as input
 * keeps arriving on `c` within busy_poll_us of each other, and blocks only
 * after that much silence: deliveries skip the wake-up of a sleeping
 * thread (tens of microseconds on a virtual machine), at the price of a
 * core kept busy while traffic flows (an empty poll yields the core to
 * any thread waiting for it, so that other processes are not held up). 0 is plain event_base_dispatch().
 * FERRY_EINVAL if `c` is not attached, FERRY_EIO if the loop fails. */
FERRY_API int ferry_dispatch(ferry_conn *c, unsigned busy_poll_us);

/* ---- queue administration (blocking round trips) ---------------------- */

FERRY_API int ferry_declare(ferry_conn *c, const char *queue);
FERRY_API int ferry_delete(ferry_conn *c, const char *queue);
FERRY_API int ferry_purge(ferry_conn *c, const char *queue, uint64_t *purged);
/* Marks the queue ended: further publishes are refused (code ENDED);
 * consumers get end-of-stream once everything before is acked. */
FERRY_API int ferry_end(ferry_conn *c, const char *queue);
/* Lifts the end mark: publishes are accepted again. */
FERRY_API int ferry_reopen(ferry_conn *c, const char *queue);
/* Waits until every message published to the queue before this call has
 * been acked (or dropped). timeout_ms < 0 waits without limit. */
FERRY_API int ferry_join(ferry_conn *c, const char *queue, int timeout_ms);

/* ---- request/reply ------------------------------------------------------ */

/* The headers a request carries: the queue to reply to and the id its reply
 * must carry back (docs/PROTOCOL.md, "Request/reply"). */
#define FERRY_HEADER_REPLY_TO "reply_to"
#define FERRY_HEADER_CORRELATION_ID "correlation_id"

/* Publishes a request to `queue` and waits up to timeout_ms (< 0: without
 * limit) for its reply. The request carries, besides o's headers (at most
 * 62 then), reply_to (this connection's private reply queue: a temporary
 * queue made by the first request and kept while the connection lives) and
 * correlation_id (unique on the connection). On FERRY_OK *reply is the
 * reply, owned by the caller (ferry_message_free; it needs no ack).
 * FERRY_ETIMEDOUT if none came in time (a late reply is dropped).
 * Thread-safe: any number of threads may wait on one connection at once,
 * each gets its own reply. Not from a callback (FERRY_EDEADLK). With
 * reconnect, a request waiting when the connection is made again returns
 * FERRY_EIO then (its reply queue went with the old connection; the request
 * may still be handled): retry if it may be handled twice. */
FERRY_API int ferry_request(ferry_conn *c, const char *queue, const void *data, size_t len,
                            const struct ferry_publish_options *o, int timeout_ms,
                            ferry_message **reply);
/* Answers a delivered request: publishes data to its reply_to queue with
 * its correlation_id (plus o's headers, at most 63). FERRY_EINVAL if the
 * request carries no reply_to or correlation_id. Acking the request is the
 * caller's business, as for any message; callable from a callback. If the
 * requester has gone, its reply queue has too: the broker refuses the
 * reply with NOT_FOUND (on its confirm, or at the next ferry_flush). */
FERRY_API int ferry_reply(ferry_conn *c, const ferry_message *request, const void *data, size_t len,
                          const struct ferry_publish_options *o);

/* Binds the queue (created if missing) to a topic pattern: words, `*` for
 * exactly one word, `#` for zero or more ("orders.*", "orders.#",
 * "#.created"). Binding twice is one binding. Bindings live as long as the
 * queue, in memory; list them in the conf file to have them at start. */
FERRY_API int ferry_bind(ferry_conn *c, const char *queue, const char *pattern);
/* Removes a binding (FERRY_ESERVER, code NOT_FOUND, if there is none). */
FERRY_API int ferry_unbind(ferry_conn *c, const char *queue, const char *pattern);

/* The patterns the queue is bound by (runs of '#' shown as one), in
 * *patterns (a NULL-terminated array, *count entries) that the caller frees
 * with ferry_bindings_free(). FERRY_ESERVER (NOT_FOUND) for no such queue. */
FERRY_API int ferry_bindings(ferry_conn *c, const char *queue, char ***patterns, size_t *count);
FERRY_API void ferry_bindings_free(char **patterns);

/* Declares a temporary queue of this connection: only this connection may
 * consume, get, bind, purge or delete it (others may publish to it), it is
 * never durable, and the broker deletes it with its messages when the
 * connection closes. queue NULL lets the broker choose a fresh name.
 * name_out (name_cap > 255 bytes) receives the queue's name. A reconnect
 * (ferry_options.reconnect) is a new connection: the queue is gone with
 * the old one, and a subscription to it is not resumed (the broker
 * refuses a 'tmp.' queue it does not have: the error handler hears it and
 * the subscription is forgotten); declare and bind again.
 * ferry_request() does that for its own reply queue. */
FERRY_API int ferry_declare_temp(ferry_conn *c, const char *queue, char *name_out, size_t name_cap);
/* The headers a dead letter carries (docs/PROTOCOL.md, "Retries and dead
 * letters"): the queue it came from, its deliveries there in decimal, and
 * why the last one failed ("nack", "deadline", "lost", "attempts" or
 * "expired"). Read them with ferry_message_header(). */
#define FERRY_HEADER_DLQ_QUEUE "dlq-queue"
#define FERRY_HEADER_DLQ_ATTEMPTS "dlq-attempts"
#define FERRY_HEADER_DLQ_REASON "dlq-reason"

/* Copies of up to `max` (at most 100; 0: 10) of the queue's ready messages,
 * in the order they would be delivered, left in the queue (a dead-letter
 * queue is browsed so). *msgs is an array of *count owned messages (tag
 * 0: they are not in flight), freed with ferry_peek_free(). Fewer come
 * when they would not fit one frame. FERRY_ESERVER with NOT_FOUND for a
 * queue that does not exist. */
FERRY_API int ferry_peek(ferry_conn *c, const char *queue, size_t max, ferry_message ***msgs,
                         size_t *count);
FERRY_API void ferry_peek_free(ferry_message **msgs, size_t count);
/* Moves up to `max` (0: all) of the queue's ready messages, front first,
 * to queue `to`, or with `to` NULL each back to the queue its "dlq-queue"
 * header names (stopping at a message without one). They become new
 * messages there, without their dlq-* headers and with attempts counted
 * from 1 again. *moved (may be NULL) says how many moved. The broker
 * moves at most FERRY_MOVE_MAX (10,000) per request: this asks again
 * until a request moves nothing. */
FERRY_API int ferry_move(ferry_conn *c, const char *queue, const char *to, uint64_t max,
                         uint64_t *moved);

struct ferry_queue_info {
    char *name;
    uint64_t depth, inflight, consumers, published, delivered, acked, redelivered, dropped, bytes;
    bool ended;
    uint64_t depth_by_priority[FERRY_PRIORITY_MAX + 1]; /* ready messages of each level */
    uint64_t delayed;       /* waiting for their time, not in depth */
    uint64_t expired;   /* past their time to live, never delivered */
    uint64_t bindings;  /* its topic binding patterns */
    /* Flow control: the queue's bounds (0: none), its overflow policy
     * ("block", "reject" or "drop-oldest"), and what happened at them. */
    uint64_t max_length, max_bytes;
    char overflow[16];
    uint64_t dropped_oldest, rejected, blocked;
    uint64_t dead_lettered; /* used up max_attempts: moved to the dead-letter queue, or dropped */
    uint64_t timeouts;      /* deliveries taken back at their ack deadline */
};

struct ferry_stats {
    uint64_t connections, queue_total, uptime_ms, messages, bytes; /* server-wide */
    /* Topics, server-wide: publishes to topics, those no binding matched,
     * the copies they made, copies a bound queue did not take (ended, or
     * full), and the bindings there are now. */
    uint64_t topic_publishes, unroutable, copies, skipped, bindings;
    /* Queued memory (bytes + about 90 per message), its limit (0: none),
     * and the connections parked on a full queue now. */
    uint64_t memory, max_memory, parked;
    /* Publishes a reconnecting producer sent again that the broker
     * confirmed without queueing them twice, and (producer, id) pairs it
     * forgot at its dedup_entries bound before their window ended (if this
     * grows, a duplicate may get through: raise dedup_entries). */
    uint64_t duplicates_dropped, duplicates_evicted;
    size_t count;                   /* entries in queues[] */
    struct ferry_queue_info *queues;
};

/* Statistics of one queue (queue != NULL) or of all. *out: ferry_stats_free. */
FERRY_API int ferry_stats(ferry_conn *c, const char *queue, struct ferry_stats **out);
FERRY_API void ferry_stats_free(struct ferry_stats *s);

/* ---- connections (operators) ---------------------------------------- */

/* One connection to the broker as the broker sees it. */
struct ferry_conn_info {
    uint64_t id;             /* the broker's connection id: ferry_kill() takes it */
    char peer[64];           /* "tcp:ADDR:PORT" or "unix:pid=PID,uid=UID" */
    char name[256];          /* the client's name (ferry_options.name); "" if none */
    uint64_t out_bytes;      /* output the broker holds for it, not yet written: a
                                slow consumer has much */
    bool throttled;          /* its output is over the broker's bound: it gets no
                                deliveries and is not read until it drains */
    uint64_t subscriptions;  /* open subscriptions */
    uint64_t inflight;       /* deliveries it has not acked yet */
    uint64_t age_ms;         /* since it connected */
    uint64_t idle_ms;        /* since the broker last heard from it */
};

struct ferry_connections {
    size_t count;                  /* entries in conns[] */
    struct ferry_conn_info *conns; /* newest first; in the same allocation */
};

/* Every connection of the broker (this one included), fetched in pages of
 * at most 1,000 (docs/PROTOCOL.md, CONNS). *out: ferry_connections_free. */
FERRY_API int ferry_connections(ferry_conn *c, struct ferry_connections **out);
FERRY_API void ferry_connections_free(struct ferry_connections *list);
/* Closes the broker's connection `id` (see ferry_connections): it gets a
 * fatal KILLED error and its unacked messages go back to their queues.
 * FERRY_ESERVER with code NOT_FOUND if there is no such open connection. */
FERRY_API int ferry_kill(ferry_conn *c, uint64_t id);

#ifdef __cplusplus
}
#endif
#endif
