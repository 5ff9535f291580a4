/*
 * ferry_proto.h - the ferry wire protocol: framing, limits, frame types,
 * error codes, and the codec between bytes and `struct ferry_frame`.
 *
 * Owns: nothing but pure functions over caller-provided memory.
 * Knows nothing of sockets, file descriptors or event loops; the daemon and
 * the client library both build on it. docs/PROTOCOL.md is the normative
 * description; this header is its C binding.
 */
#ifndef FERRY_PROTO_H
#define FERRY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FERRY_PROTO_VERSION 1u

/* A frame is a 4-byte big-endian body length, then one msgpack map. */
#define FERRY_FRAME_PREFIX 4u
/* Default and absolute ceilings for a frame body (bytes after the prefix). */
#define FERRY_FRAME_MAX_DEFAULT (16u * 1024u * 1024u)
#define FERRY_FRAME_MAX_CEILING (256u * 1024u * 1024u)
/* The smallest max_frame a peer may announce. */
#define FERRY_FRAME_MAX_FLOOR 4096u

/* Queue names: 1..255 bytes of [A-Za-z0-9._:-]. */
#define FERRY_NAME_MAX 255u
/* Client names in HELLO: 0..255 bytes of UTF-8 (not checked beyond length). */
#define FERRY_CLIENT_NAME_MAX 255u
/* Error message text: at most this many bytes. */
#define FERRY_ERROR_TEXT_MAX 1024u
/* Headers: at most 64 pairs, key 1..255 bytes (str), value str or bin
 * of at most 65535 bytes. */
#define FERRY_HEADERS_MAX 64u
#define FERRY_HEADER_KEY_MAX 255u
#define FERRY_HEADER_VALUE_MAX 65535u
/* Topics and binding patterns: 1..255 bytes, 1..32 words separated by
 * '.', each word 1.. bytes of [A-Za-z0-9_:-]; in a pattern a word may
 * instead be `*` (exactly one word) or `#` (zero or more words). */
#define FERRY_TOPIC_MAX 255u
#define FERRY_TOPIC_WORDS_MAX 32u
/* Names of temporary queues begin with this; only DECLARE_TEMP makes a
 * queue of such a name. */
#define FERRY_TEMP_PREFIX "tmp."
/* Message priorities: 0 (lowest, the default) to 9 (highest). */
#define FERRY_PRIORITY_MAX 9u
#define FERRY_PRIORITY_LEVELS (FERRY_PRIORITY_MAX + 1u)
/* PEEK: at most this many messages in one reply (and "n" is the most the
 * client wants; absent, 10). */
#define FERRY_PEEK_MAX 100u
#define FERRY_PEEK_DEFAULT 10u
/* MOVE: at most this many messages in one request ("n" absent or larger
 * asks for this many), so that one request holds the server's loop for a
 * bounded time; libferry's ferry_move() asks again for the rest. */
#define FERRY_MOVE_MAX 10000u
/* The longest a PUBLISH may be delayed ("delay", or "at" from now): 366
 * days, so that every time the broker computes fits and stays meaningful. */
#define FERRY_DELAY_MAX_MS (366ull * 24 * 3600 * 1000)
/* A message's time to live ("ttl"): 1 ms to 10 years; 0 means none. */
#define FERRY_TTL_MAX_MS 315360000000ull
/* Items in one PUBLISH_BATCH, tags in one ACK/NACK, ids in one CONFIRM. */
#define FERRY_LIST_MAX 65536u

/* Frame types: the value of key "t". Numbers are part of the wire format. */
enum ferry_frame_type {
    FERRY_F_HELLO = 1,          /* client -> server, first frame */
    FERRY_F_WELCOME = 2,        /* server -> client, reply to HELLO */
    FERRY_F_ERROR = 3,          /* server -> client */
    FERRY_F_PING = 4,           /* either way */
    FERRY_F_PONG = 5,           /* either way, reply to PING */
    FERRY_F_OK = 6,             /* server -> client, success reply to a request with rid */

    FERRY_F_PUBLISH = 10,       /* client -> server */
    FERRY_F_PUBLISH_BATCH = 11, /* client -> server */
    FERRY_F_CONFIRM = 12,       /* server -> client */

    FERRY_F_CONSUME = 20,       /* client -> server */
    FERRY_F_CREDIT = 21,        /* client -> server */
    FERRY_F_DELIVER = 22,       /* server -> client */
    FERRY_F_ACK = 23,           /* client -> server */
    FERRY_F_NACK = 24,          /* client -> server */
    FERRY_F_CANCEL = 25,        /* client -> server */
    FERRY_F_GET = 26,           /* client -> server */
    FERRY_F_EOS = 27,           /* server -> client */

    FERRY_F_DECLARE = 30,       /* client -> server */
    FERRY_F_DELETE = 31,        /* client -> server */
    FERRY_F_PURGE = 32,         /* client -> server */
    FERRY_F_STATS = 33,         /* client -> server */
    FERRY_F_END = 34,           /* client -> server */
    FERRY_F_REOPEN = 35,        /* client -> server */
    FERRY_F_JOIN = 36,          /* client -> server */

    FERRY_F_CONNS = 45,         /* client -> server: list the connections */
    FERRY_F_KILL = 46,          /* client -> server: close a connection by id */
    FERRY_F_TOUCH = 50,         /* client -> server: move deliveries' ack deadlines */
    FERRY_F_PEEK = 51,          /* client -> server: a queue's first ready messages, left there */
    FERRY_F_MOVE = 52,          /* client -> server: ready messages to another queue */

    FERRY_F_BIND = 60,          /* client -> server: bind a queue to a pattern */
    FERRY_F_UNBIND = 61,        /* client -> server */
    FERRY_F_PUBLISH_TOPIC = 62, /* client -> server: a copy to every bound queue */
    FERRY_F_DECLARE_TEMP = 63,  /* client -> server: a queue of this connection */
    FERRY_F_BINDINGS = 64,      /* client -> server: list a queue's patterns */
};

/* Error codes carried by ERROR frames (key "code"). Part of the wire format.
 * "Fatal" ones are followed by the server closing the connection. */
enum ferry_code {
    FERRY_CODE_OK = 0,
    FERRY_CODE_BAD_FRAME = 1,        /* fatal: not a valid frame (msgpack, shape, types) */
    FERRY_CODE_FRAME_TOO_LARGE = 2,  /* fatal: length prefix above max_frame */
    FERRY_CODE_UNKNOWN_FRAME = 3,    /* fatal: unknown value of "t" */
    FERRY_CODE_HANDSHAKE = 4,        /* fatal: HELLO missing, repeated, or timed out */
    FERRY_CODE_VERSION = 5,          /* fatal: unsupported protocol version */
    FERRY_CODE_BAD_NAME = 6,         /* queue name empty, too long or bad characters */
    FERRY_CODE_NOT_FOUND = 7,        /* no such queue */
    FERRY_CODE_ENDED = 8,            /* publish to a queue marked ended */
    FERRY_CODE_UNKNOWN_TAG = 9,      /* ack/nack of a tag not in flight on this connection */
    FERRY_CODE_UNKNOWN_SUB = 10,     /* credit/cancel of a subscription that does not exist */
    FERRY_CODE_SUB_EXISTS = 11,      /* consume with a sub id already in use */
    FERRY_CODE_LIMIT = 12,           /* a server limit was reached (queues, consumers, connections) */
    FERRY_CODE_QUEUE_FULL = 13,      /* publish refused: queue at its bound */
    FERRY_CODE_NO_MEMORY = 14,       /* server could not allocate */
    FERRY_CODE_SHUTTING_DOWN = 15,   /* server is stopping */
    FERRY_CODE_INTERNAL = 16,        /* a server bug; please report */
    FERRY_CODE_BAD_REQUEST = 17,     /* well-formed frame with a bad value (credit 0, rid 0...) */
    FERRY_CODE_STORAGE = 18,         /* durable storage refused: disk limit reached or write error */

    FERRY_CODE_HEARTBEAT = 21,       /* fatal: nothing heard from the peer within the heartbeat timeout */
    FERRY_CODE_KILLED = 22,          /* fatal: an operator closed the connection (KILL) */

    FERRY_CODE_BAD_TOPIC = 27,       /* topic or binding pattern invalid */
    FERRY_CODE_EXCLUSIVE = 28,       /* the queue is another connection's temporary queue */
};
#define FERRY_CODE_LAST FERRY_CODE_EXCLUSIVE

/* A borrowed byte span. Never owns memory. */
struct ferry_bytes {
    const uint8_t *ptr;
    size_t len;
};

/* One item of a PUBLISH_BATCH, for encoding. */
struct ferry_item {
    struct ferry_bytes payload;
    struct ferry_bytes headers; /* raw msgpack map, or len 0 for none */
    bool has_priority;          /* "prio" present */
    uint8_t priority;           /* 0..FERRY_PRIORITY_MAX */
    uint64_t ttl_ms;            /* "ttl": 0..FERRY_TTL_MAX_MS, 0 for none */
};

/* Statistics of one queue, carried in the OK reply to STATS. */
struct ferry_queue_stats {
    struct ferry_bytes name;
    uint64_t depth;       /* ready messages */
    uint64_t inflight;    /* delivered, not yet acked */
    uint64_t consumers;   /* subscriptions */
    uint64_t published;   /* accepted publishes since the queue was created */
    uint64_t delivered;   /* deliveries, redeliveries included */
    uint64_t acked;
    uint64_t redelivered; /* deliveries with attempt > 1 */
    uint64_t dropped;     /* nacked without requeue, or purged */
    uint64_t bytes;       /* payload + header bytes of ready and in-flight messages */
    bool ended;
    uint64_t depth_by_priority[FERRY_PRIORITY_LEVELS]; /* ready messages of each level */
    uint64_t delayed;     /* waiting for their time (a delayed publish), not in depth */
    uint64_t expired;     /* past their time to live, never delivered */
    uint64_t bindings;    /* its topic binding patterns */
    /* Flow control (docs/PROTOCOL.md, "Flow control"): the queue's bounds
     * (0: none), its overflow policy, and what happened at them. */
    uint64_t max_length;      /* messages ready, delayed and in flight */
    uint64_t max_bytes;       /* their payload + header bytes */
    struct ferry_bytes overflow; /* "block", "reject" or "drop-oldest" */
    uint64_t dropped_oldest;  /* messages dropped by drop-oldest to make room */
    uint64_t rejected;        /* publishes refused QUEUE_FULL */
    uint64_t blocked;         /* publishes that parked their connection (block) */
    uint64_t dead_lettered; /* used up max_attempts: moved to the dead-letter queue or dropped */
    uint64_t timeouts;    /* deliveries taken back at their ack deadline */
};

/* One connection as the OK reply to CONNS shows it. */
struct ferry_conn_stats {
    uint64_t id;            /* the server's connection id (KILL takes it) */
    struct ferry_bytes peer; /* "tcp:ADDR:PORT" or "unix:pid=N,uid=N" (0..FERRY_PEER_MAX bytes) */
    struct ferry_bytes name; /* the client name from HELLO (0..255 bytes) */
    uint64_t out;           /* bytes queued for it, not yet written */
    bool throttled;         /* its output is over the bound: no deliveries, no reading */
    uint64_t subs;          /* open subscriptions */
    uint64_t inflight;      /* deliveries not yet acked */
    uint64_t age_ms;        /* since it connected */
    uint64_t idle_ms;       /* since anything was heard from it (heartbeat) */
};
/* Longest peer text in a connection's stats. */
#define FERRY_PEER_MAX 63u
/* Connections in one OK reply to CONNS at most (fewer if max_frame is small). */
#define FERRY_CONNS_PAGE_MAX 1000u

/* Server-wide statistics, carried in the OK reply to STATS. */
struct ferry_server_stats {
    uint64_t connections;
    uint64_t queues;
    uint64_t uptime_ms;
    uint64_t messages;    /* ready + in flight, all queues */
    uint64_t bytes;       /* their payload + header bytes */
    uint64_t topic_publishes; /* publishes to topics (with a valid topic) */
    uint64_t unroutable;  /* of those, matched by no binding */
    uint64_t copies;      /* copies they put into bound queues */
    uint64_t skipped;     /* copies a bound queue did not take (ended, full) */
    uint64_t bindings;    /* bindings now, all queues */
    uint64_t memory;      /* what max_memory bounds: bytes + overhead per message */
    uint64_t max_memory;  /* 0: no limit */
    uint64_t parked;      /* connections parked on a full queue or on max_memory now */
    uint64_t dups;        /* publishes sent again by their producer, confirmed, not queued */
    uint64_t dup_evicted; /* (producer, id) pairs forgotten at dedup_entries, inside the window */
};

/*
 * A decoded (or to-be-encoded) frame. One flat struct for every type: each
 * type uses the fields its section of PROTOCOL.md names; the rest are zero.
 *
 * After ferry_frame_decode() every span points into the decoded body, so
 * the frame is valid only while that body is. Lists are left as validated
 * raw msgpack (`list`, `list_count`) and read with the iterators below.
 * For ferry_frame_encode(), lists come from the typed arrays `uints` and
 * `items` instead, and `stats`/`server_stats` are encoded when set.
 */
struct ferry_frame {
    enum ferry_frame_type type;

    uint64_t rid;          /* request id: nonzero on requests that get OK/ERROR */
    uint64_t id;           /* publish id to confirm (PUBLISH, PUBLISH_BATCH, ERROR) */
    bool has_id;
    uint64_t sub;          /* subscription id, chosen by the client */
    uint64_t tag;          /* delivery tag (DELIVER) */
    uint64_t attempt;      /* delivery attempt, 1 on first delivery (DELIVER) */
    uint64_t credit;       /* CONSUME window; CREDIT amount to add */
    uint64_t wait_ms;      /* GET: how long to wait for a message */
    uint64_t version;      /* HELLO, WELCOME */
    uint64_t max_frame;    /* WELCOME */
    uint64_t heartbeat_ms; /* WELCOME */
    uint64_t producer;     /* HELLO: the client's producer identity, stable across
                              reconnects (0: none; then no duplicate is dropped) */
    uint64_t delay_ms;     /* PUBLISH: not delivered before this many ms from now;
                            * NACK: wait before the requeued message is ready */
    uint64_t deliver_at;   /* PUBLISH: nor before this Unix time in ms (0: none) */
    uint64_t deadline_ms;  /* CONSUME: ack deadline of its deliveries; TOUCH: the new one
                            * from now (0: the subscription's or queue's) */
    uint64_t count;        /* OK: purged count (PURGE) */
    uint64_t before;       /* CONNS: only connections with a smaller id (0: from the newest) */
    uint64_t next;         /* OK to CONNS: `before` for the next page; 0 at the end */
    uint32_t code;         /* ERROR: enum ferry_code */
    bool fatal;            /* ERROR */
    bool requeue;          /* NACK (default true) */
    bool empty;            /* OK reply to GET: no message came in time */
    bool has_priority;     /* PUBLISH: "prio" present */
    uint8_t priority;      /* PUBLISH: 0..FERRY_PRIORITY_MAX */
    uint64_t ttl_ms;       /* PUBLISH: "ttl", 0..FERRY_TTL_MAX_MS; 0: none */

    struct ferry_bytes queue;   /* q (also in the OK reply to DECLARE_TEMP) */
    struct ferry_bytes topic;   /* PUBLISH_TOPIC topic; BIND, UNBIND pattern */
    struct ferry_bytes to;      /* MOVE: the target queue (absent: each message's dlq-queue) */
    struct ferry_bytes name;    /* HELLO client name, WELCOME server name */
    struct ferry_bytes text;    /* ERROR message */
    struct ferry_bytes payload; /* PUBLISH, DELIVER: the opaque message bytes */
    struct ferry_bytes headers; /* PUBLISH, DELIVER: raw msgpack map, len 0 if absent */

    /* Decoded lists: CONFIRM ids, ACK/NACK tags, PUBLISH_BATCH items, OK queues.
     * `list` spans the entries (after the array header). */
    struct ferry_bytes list;
    uint32_t list_count;

    /* For encoding only. */
    const uint64_t *uints;      /* CONFIRM ids, ACK/NACK tags */
    size_t uint_count;
    const struct ferry_item *items; /* PUBLISH_BATCH */
    size_t item_count;
    const struct ferry_queue_stats *stats; /* OK reply to STATS */
    size_t stats_count;
    const struct ferry_server_stats *server_stats; /* OK reply to STATS */

    /* OK reply to CONNS: encoded from conns/conn_count when has_conns;
     * decoded into conn_list (read with ferry_iter_conns_init and
     * ferry_iter_conn), has_conns set. */
    bool has_conns;
    const struct ferry_conn_stats *conns;
    size_t conn_count;
    struct ferry_bytes conn_list;
    uint32_t conn_list_count;

    /* OK reply to BINDINGS: encoded from patterns/pattern_count when
     * has_patterns; decoded into pattern_list (read with
     * ferry_iter_patterns_init and ferry_iter_str), has_patterns set. */
    bool has_patterns;
    const struct ferry_bytes *patterns;
    size_t pattern_count;
    struct ferry_bytes pattern_list;
    uint32_t pattern_list_count;

    /* Decoded only: the list of an OK holds messages ("m", the answer to
     * PEEK; read with ferry_iter_item), not queue stats. */
    bool list_is_items;
    /* Decoded only: OK reply to STATS carried server stats. */
    bool has_server_stats;
    struct ferry_server_stats server;
};

/* ---- growable byte buffer -------------------------------------------- */

/* A contiguous byte buffer. Bytes [off, len) are pending; the owner frees
 * `data` with ferry_buf_free(). A zeroed struct is an empty buffer. */
struct ferry_buf {
    uint8_t *data;
    size_t off;
    size_t len;
    size_t cap;
};

/* Ensures room for `extra` more bytes after len; compacts or grows. 0 or -1 (ENOMEM). */
int ferry_buf_reserve(struct ferry_buf *b, size_t extra);
/* Appends n bytes. 0 or -1 (ENOMEM). */
int ferry_buf_append(struct ferry_buf *b, const void *p, size_t n);
/* Marks n pending bytes as consumed; resets to empty when all are. */
void ferry_buf_consume(struct ferry_buf *b, size_t n);
/* Number of pending bytes. */
static inline size_t ferry_buf_pending(const struct ferry_buf *b) { return b->len - b->off; }
/* Releases memory (keeps capacity up to `keep` bytes, 0 frees all). */
void ferry_buf_shrink(struct ferry_buf *b, size_t keep);
/* Frees the memory and zeroes the struct. */
void ferry_buf_free(struct ferry_buf *b);

/* ---- framing ---------------------------------------------------------- */

enum ferry_split {
    FERRY_SPLIT_FRAME,      /* a whole frame is at the front: *body is set */
    FERRY_SPLIT_INCOMPLETE, /* need more bytes */
    FERRY_SPLIT_TOO_LARGE,  /* the length prefix exceeds max_frame */
};

/* Looks at the front of [data, data+len). On FERRY_SPLIT_FRAME sets *body
 * to the frame body and *consumed to prefix + body length. */
enum ferry_split ferry_frame_split(const uint8_t *data, size_t len, size_t max_frame,
                                   struct ferry_bytes *body, size_t *consumed);

/* ---- codec ------------------------------------------------------------- */

/* Decodes and fully validates one frame body into *f (zeroed first).
 * Returns FERRY_CODE_OK, or BAD_FRAME / UNKNOWN_FRAME with *why set to a
 * static human-readable reason ("field 'q': expected str"). Never reads
 * outside [body, body+len) and never allocates. */
enum ferry_code ferry_frame_decode(const uint8_t *body, size_t len,
                                   struct ferry_frame *f, const char **why);

/* Appends one whole frame (prefix included) to *out.
 * Returns 0, or -1 on ENOMEM, an unknown f->type or a body over 4 GiB
 * (out unchanged in length). The caller is responsible for giving values
 * within the limits above; the encoder does not validate.
 * Optional keys are written when set: rid, sub, wait_ms and OK's count
 * when nonzero, id when has_id, empty when true, HELLO name and headers
 * when non-empty, STATS, DECLARE_TEMP and OK q when non-empty. An OK with server_stats carries
 * "server" and "queues" (from stats/stats_count, possibly empty); one
 * with has_conns "conns" (from conns/conn_count) and "next". CONNS
 * carries "before" when nonzero, HELLO "producer" when nonzero. NACK
 * always carries "requeue" (so set it: a zeroed frame means drop). */
int ferry_frame_encode(struct ferry_buf *out, const struct ferry_frame *f);

/* ---- list iterators (over validated decoded lists) --------------------- */

struct ferry_iter {
    const uint8_t *pos;
    const uint8_t *end;
    uint32_t left;
};

void ferry_iter_init(struct ferry_iter *it, const struct ferry_frame *f);
/* Next uint of CONFIRM ids / ACK, NACK tags. false at the end. */
bool ferry_iter_uint(struct ferry_iter *it, uint64_t *v);
/* Next PUBLISH_BATCH item. false at the end. */
bool ferry_iter_item(struct ferry_iter *it, struct ferry_item *item);
/* Next queue of an OK reply to STATS. false at the end. */
bool ferry_iter_stats(struct ferry_iter *it, struct ferry_queue_stats *qs);
/* Iterates the connections of an OK reply to CONNS instead of `list`. */
void ferry_iter_conns_init(struct ferry_iter *it, const struct ferry_frame *f);
/* Next connection of an OK reply to CONNS. false at the end. */
bool ferry_iter_conn(struct ferry_iter *it, struct ferry_conn_stats *cs);
/* The patterns of an OK reply to BINDINGS: init, then next (each a str of
 * 1..FERRY_TOPIC_MAX bytes). */
void ferry_iter_patterns_init(struct ferry_iter *it, const struct ferry_frame *f);
bool ferry_iter_str(struct ferry_iter *it, struct ferry_bytes *s);

/* ---- headers ----------------------------------------------------------- */

/* Headers travel as a raw msgpack map of str keys to str/bin values. */
struct ferry_kv {
    struct ferry_bytes key;
    struct ferry_bytes value;
};

/* Appends the msgpack map for n headers to *out (no frame prefix); keys
 * as str, values as bin. 0 or -1 (ENOMEM). */
int ferry_headers_encode(struct ferry_buf *out, const struct ferry_kv *h, size_t n);
/* Iterates a validated raw header map: init with its bytes, then next. */
void ferry_headers_iter_init(struct ferry_iter *it, struct ferry_bytes headers);
bool ferry_headers_next(struct ferry_iter *it, struct ferry_kv *h);

/* ---- names and codes --------------------------------------------------- */

/* true if `name` is a valid queue name (length and characters). */
bool ferry_name_valid(struct ferry_bytes name);

/* ---- topics and binding patterns (topic.c) ------------------------------ */

/* true if `topic` is a valid topic (FERRY_TOPIC_MAX, no wildcard). */
bool ferry_topic_valid(struct ferry_bytes topic);
/* true if `pattern` is a valid binding pattern (words, `*`, `#`). */
bool ferry_pattern_valid(struct ferry_bytes pattern);
/* Splits s at every '.' into words (spans into s, empty words kept).
 * Returns the word count, or max + 1 if there are more than max. */
size_t ferry_topic_split(struct ferry_bytes s, struct ferry_bytes *words, size_t max);
/* true if a valid pattern matches a valid topic (false if either is
 * invalid). The plain reference; the daemon matches with a trie. */
bool ferry_topic_match(struct ferry_bytes pattern, struct ferry_bytes topic);
/* Symbolic name of an error code ("BAD_FRAME"), "UNKNOWN" if out of range. */
const char *ferry_code_name(uint32_t code);
/* Symbolic name of a frame type ("PUBLISH"), NULL if unknown. */
const char *ferry_frame_type_name(uint32_t type);
/* true if the error code makes the server close the connection. */
bool ferry_code_is_fatal(uint32_t code);

/* ---- addresses --------------------------------------------------------- */

/* Default Unix socket when neither FERRY_URL nor an option names one. */
#define FERRY_DEFAULT_SOCKET "/run/ferry/ferryd.sock"
#define FERRY_DEFAULT_TCP_PORT 7070u

enum ferry_addr_kind { FERRY_ADDR_UNIX, FERRY_ADDR_TCP };

/* A parsed URL: "unix:/path", "unix:///path", "tcp://host:port",
 * "tcp://[v6]:port". Pure string parsing: no lookup, no socket. */
struct ferry_addr {
    enum ferry_addr_kind kind;
    char path[108];   /* unix: sun_path, NUL-terminated */
    char host[256];   /* tcp: host name or literal, NUL-terminated, no brackets */
    uint16_t port;    /* tcp */
};

/* Parses url into *a. Returns 0, or -1 with *why set to a static reason. */
int ferry_addr_parse(const char *url, struct ferry_addr *a, const char **why);

#endif
