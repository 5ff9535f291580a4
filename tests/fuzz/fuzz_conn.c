/*
 * fuzz_conn.c - libFuzzer target for ferryd's connection state machine
 * (daemon/conn.c and requests.c over the real broker core). Each input
 * gets a fresh event_base, broker and conn_set, and two connections over
 * socketpairs:
 *   - A, the fuzzed one: the input is what its client sends, then EOF. If
 *     the input's first byte is odd, a valid HELLO goes first, so that most
 *     inputs reach the open state; the rest of the input follows.
 *   - B, a well-behaved neighbour: HELLO, a subscription to queue "fuzz"
 *     with credit 2, and a GET waiting on queue "other", so that what A
 *     publishes is delivered across connections.
 * The loop runs without blocking, reading what ferryd sends every other
 * pass, until both connections are gone; one still open after LOOP_PASSES
 * is a finding. Everything is then freed, so LeakSanitizer sees any
 * memory a connection, a session or the broker kept.
 *
 * Knows the daemon's internal headers; no listener, no process.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker.h"
#include "conn.h"
#include "ferry_proto.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits, so that inputs of a few KiB reach them: the frame bound,
 * the throttle on output, the queue and consumer limits. */
#define FUZZ_MAX_FRAME (64u * 1024u)
#define FUZZ_MAX_OUTPUT (4u * 1024u)
#define FUZZ_MAX_QUEUES 16u
#define FUZZ_MAX_CONSUMERS 4u
/* ferryd's socket buffer toward each peer (the kernel makes it at least
 * a few KiB). */
#define SOCKET_BUFFER 4096
/* Loop passes within which both connections must have closed. */
#define LOOP_PASSES 512

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN); /* ferryd ignores it too (server.c) */
    log_set_level(LOG_LEVEL_ERROR);
    return 0;
}

/* ---- the clients' ends --------------------------------------------------- */

/* The bytes one client still has to send, and its end of the pair. */
struct peer {
    int fd;
    const uint8_t *next;
    size_t left;
    bool eof_when_done; /* shut the write side once every byte is out */
    bool eof_sent;
};

/* Writes what the socket takes now; after the last byte, EOF if asked. */
static void peer_push(struct peer *p)
{
    while (p->left > 0) {
        ssize_t n = send(p->fd, p->next, p->left, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0)
            break;
        p->next += n;
        p->left -= (size_t)n;
    }
    if (p->left == 0 && p->eof_when_done && !p->eof_sent) {
        shutdown(p->fd, SHUT_WR);
        p->eof_sent = true;
    }
}

/* Reads and drops what ferryd sent, so that its output drains. */
static void peer_drain(struct peer *p)
{
    uint8_t scratch[16384];
    while (recv(p->fd, scratch, sizeof scratch, MSG_DONTWAIT) > 0)
        continue;
}

static void append_frame(struct ferry_buf *out, const struct ferry_frame *f)
{
    if (ferry_frame_encode(out, f) != 0)
        abort();
}

static void append_hello(struct ferry_buf *out)
{
    struct ferry_frame hello = { .type = FERRY_F_HELLO, .version = FERRY_PROTO_VERSION };
    append_frame(out, &hello);
}

/* B's whole conversation; it stays open until A is gone. */
static void neighbour_script(struct ferry_buf *out)
{
    static const uint8_t fuzz[] = "fuzz", other[] = "other";
    append_hello(out);
    struct ferry_frame consume = {
        .type = FERRY_F_CONSUME, .rid = 1, .queue = { fuzz, 4 }, .sub = 1, .credit = 2,
    };
    append_frame(out, &consume);
    struct ferry_frame get = {
        .type = FERRY_F_GET, .rid = 2, .queue = { other, 5 }, .wait_ms = 60000,
    };
    append_frame(out, &get);
}

/* ---- one input ------------------------------------------------------------ */

struct world {
    struct event_base *base;
    struct broker *broker;
    struct conn_set *set;
};

static void world_open(struct world *w)
{
    struct broker_limits bl = {
        .max_queues = FUZZ_MAX_QUEUES, .max_consumers_per_queue = FUZZ_MAX_CONSUMERS,
    };
    struct conn_limits cl = {
        .max_frame = FUZZ_MAX_FRAME, .max_output = FUZZ_MAX_OUTPUT,
        .handshake_timeout_ms = 60000,
    };
    w->base = event_base_new();
    w->broker = w->base ? broker_new(&bl) : NULL;
    w->set = w->broker ? conn_set_new(w->base, w->broker, &cl) : NULL;
    if (!w->set)
        abort(); /* out of memory before anything was fuzzed */
}

static void world_close(struct world *w)
{
    conn_set_free(w->set); /* sessions first: the broker outlives them */
    broker_free(w->broker);
    event_base_free(w->base);
}

/* Serves one end of a new pair as a ferryd connection; *p gets the other. */
static void connect_peer(struct world *w, struct peer *p, const struct ferry_buf *bytes,
                         bool eof_when_done)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    /* A small socket buffer fills after a few frames, so that the paths of
     * a full socket (the write event, throttling) are taken too. */
    int sndbuf = SOCKET_BUFFER;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (conn_open(w->set, sv[0], false) != 0) /* takes sv[0] */
        abort();
    size_t len = ferry_buf_pending(bytes);
    *p = (struct peer){
        .fd = sv[1], .next = len ? bytes->data + bytes->off : NULL, .left = len,
        .eof_when_done = eof_when_done,
    };
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct ferry_buf a_bytes = { 0 }, b_bytes = { 0 };
    if (data[0] & 1)
        append_hello(&a_bytes);
    if (ferry_buf_append(&a_bytes, data + 1, size - 1) != 0)
        abort();
    neighbour_script(&b_bytes);

    struct world w;
    world_open(&w);
    struct peer a, b;
    connect_peer(&w, &b, &b_bytes, false); /* B leaves once A is gone */
    connect_peer(&w, &a, &a_bytes, true);

    for (int pass = 0; pass < LOOP_PASSES && conn_set_count(w.set) > 0; pass++) {
        peer_push(&a);
        peer_push(&b);
        if (pass % 2 == 1) { /* every other pass: ferryd meets full sockets */
            peer_drain(&a);
            peer_drain(&b);
        }
        if (!b.eof_when_done && conn_set_count(w.set) <= 1) {
            b.eof_when_done = true;
            peer_push(&b);
        }
        event_base_loop(w.base, EVLOOP_NONBLOCK);
    }

    /* Both peers said EOF and read everything: a connection still open
     * now would be held forever (a hang, or a leak of its slot). */
    if (conn_set_count(w.set) > 0) {
        fprintf(stderr, "fuzz_conn: %zu connection(s) still open after their peers left\n",
                conn_set_count(w.set));
        abort();
    }
    world_close(&w);
    close(a.fd);
    close(b.fd);
    ferry_buf_free(&a_bytes);
    ferry_buf_free(&b_bytes);
    return 0;
}
