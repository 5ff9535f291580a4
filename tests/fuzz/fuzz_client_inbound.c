/*
 * fuzz_client_inbound.c - libFuzzer target for libferry's handling of what
 * a broker sends. A socketpair stands in for the connection: this file
 * plays the broker on one end (WELCOME, then the OK that opens one
 * subscription), hands the other end to libferry (conn__adopt_fd), then
 * writes the fuzz input as the broker's next bytes, followed by EOF.
 *
 * While those bytes arrive, libferry has a subscription open (sub 1, whose
 * callback reads, copies and acks every delivery), one unconfirmed publish
 * (id 1), and one blocking request waiting for its answer (rid 2): by the
 * input's first byte modulo 8, a STATS (1), a ferry_connections() that
 * pages on with rid 3, 4... (3), a PEEK (4), a BINDINGS (5), a
 * DECLARE_TEMP (6), else a GET. Everything after that first byte is the
 * broker's byte stream.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h" /* client/conn.h: conn__adopt_fd */
#include "ferry.h"
#include "ferry_proto.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* More than this is cut: the socket buffer must take it all in one go,
 * since nobody reads while we write. */
#define INPUT_MAX (64u * 1024u)
#define TIMEOUT_MS 2000

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN); /* the client may close its end first */
    return 0;
}

/* ---- the broker's end ------------------------------------------------------ */

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* full or closed: the client sees what got through */
        p += w;
        n -= (size_t)w;
    }
}

static void send_frame(int fd, const struct ferry_frame *f)
{
    struct ferry_buf out = { 0 };
    if (ferry_frame_encode(&out, f) == 0)
        write_all(fd, out.data + out.off, ferry_buf_pending(&out));
    ferry_buf_free(&out);
}

/* Throws away what the client wrote, so its socket never fills. */
static void drain(int fd)
{
    uint8_t scratch[4096];
    while (recv(fd, scratch, sizeof scratch, MSG_DONTWAIT) > 0)
        continue;
}

/* ---- the client's callbacks ---------------------------------------------- */

static void on_message(ferry_conn *c, const ferry_message *m, void *arg)
{
    const void *value;
    size_t len;
    (void)ferry_message_header(m, "trace", &value, &len);
    ferry_message *copy = ferry_message_copy(m); /* owned here, freed at once */
    if (copy && (copy->len != m->len || (m->len && memcmp(copy->data, m->data, m->len) != 0)))
        abort();
    ferry_message_free(copy);
    if (m->tag % 3 == 0)
        ferry_nack(c, m->tag, m->tag % 2 == 0);
    else
        ferry_ack(c, m->tag);
}

static void on_eos(ferry_conn *c, uint64_t sub, const char *queue, void *arg)
{
    (void)strlen(queue);
}

static void on_error(ferry_conn *c, int code, const char *text, void *arg)
{
    (void)strlen(text);
}

/* ---- one input ------------------------------------------------------------ */

/* Connects over the pair and opens subscription 1 and publish 1.
 * NULL if the handshake or the subscription failed (not a finding). */
static ferry_conn *open_client(int client_fd, int broker_fd)
{
    struct ferry_frame welcome = {
        .type = FERRY_F_WELCOME, .version = FERRY_PROTO_VERSION,
        .name = { (const uint8_t *)"fuzz", 4 }, .max_frame = FERRY_FRAME_MAX_DEFAULT,
    };
    send_frame(broker_fd, &welcome);
    struct ferry_options o = {
        .name = "fuzz", .connect_timeout_ms = TIMEOUT_MS, .request_timeout_ms = TIMEOUT_MS,
    };
    ferry_conn *c;
    if (conn__adopt_fd(client_fd, &o, conn__deadline(TIMEOUT_MS), &c) != FERRY_OK)
        return NULL;
    ferry_set_error_handler(c, on_error, NULL);

    struct ferry_frame ok = { .type = FERRY_F_OK, .rid = 1 }; /* answers CONSUME */
    send_frame(broker_fd, &ok);
    struct ferry_consume_options co = { .credit = 8, .on_message = on_message, .on_eos = on_eos };
    uint64_t sub;
    if (ferry_consume(c, "fuzz", &co, &sub) != FERRY_OK
        || ferry_publish(c, "fuzz", "x", 1, NULL, 0, 0) != FERRY_OK) {
        ferry_close(c);
        return NULL;
    }
    drain(broker_fd);
    return c;
}

/* Where the target reads bytes it checks no further (ASan checks the reads). */
static volatile uint8_t last_byte;

enum waiting { WAIT_GET, WAIT_STATS, WAIT_CONNS, WAIT_PEEK, WAIT_BINDINGS, WAIT_TEMP };

static enum waiting waiting_of(uint8_t selector)
{
    switch (selector % 8) {
    case 1: return WAIT_STATS;
    case 3: return WAIT_CONNS;
    case 4: return WAIT_PEEK;
    case 5: return WAIT_BINDINGS;
    case 6: return WAIT_TEMP;
    default: return WAIT_GET;
    }
}

/* The request that waits while the fuzz bytes arrive (rid 2). */
static void wait_for_answer(ferry_conn *c, enum waiting what)
{
    if (what == WAIT_PEEK) {
        ferry_message **msgs = NULL;
        size_t n = 0;
        if (ferry_peek(c, "fuzz", 0, &msgs, &n) == FERRY_OK) {
            for (size_t i = 0; i < n; i++) {
                const void *value;
                size_t len;
                (void)ferry_message_header(msgs[i], "trace", &value, &len);
                if (msgs[i]->len)
                    last_byte = ((const uint8_t *)msgs[i]->data)[msgs[i]->len - 1]; /* ASan checks it */
            }
        }
        ferry_peek_free(msgs, n); /* ours whatever came back */
        return;
    }
    if (what == WAIT_BINDINGS) {
        char **patterns = NULL;
        size_t n = 0;
        if (ferry_bindings(c, "fuzz", &patterns, &n) == FERRY_OK) {
            for (size_t i = 0; i < n; i++)
                (void)strlen(patterns[i]);
            if (patterns[n] != NULL)
                abort(); /* NULL-terminated, as documented */
        }
        ferry_bindings_free(patterns);
        return;
    }
    if (what == WAIT_TEMP) {
        char name[FERRY_NAME_MAX + 1];
        if (ferry_declare_temp(c, NULL, name, sizeof name) == FERRY_OK
            && strnlen(name, sizeof name) == sizeof name)
            abort(); /* NUL-terminated within its buffer */
        return;
    }
    if (what == WAIT_CONNS) {
        struct ferry_connections *l = NULL;
        if (ferry_connections(c, &l) == FERRY_OK) {
            for (size_t i = 0; i < l->count; i++) {
                (void)strlen(l->conns[i].peer);
                (void)strlen(l->conns[i].name);
            }
            ferry_connections_free(l);
        }
        return;
    }
    if (what == WAIT_STATS) {
        struct ferry_stats *st = NULL;
        if (ferry_stats(c, NULL, &st) == FERRY_OK)
            ferry_stats_free(st);
        return;
    }
    ferry_message *m = NULL;
    if (ferry_get(c, "fuzz", TIMEOUT_MS, &m) == FERRY_OK) {
        const void *value;
        size_t len;
        (void)ferry_message_header(m, "trace", &value, &len);
        ferry_message_free(m); /* ferry_get's message is ours */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum waiting what = waiting_of(data[0]);
    data++;
    size--;
    if (size > INPUT_MAX)
        size = INPUT_MAX;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    ferry_conn *c = open_client(sv[0], sv[1]); /* owns sv[0] from here */
    if (c) {
        write_all(sv[1], data, size);
        shutdown(sv[1], SHUT_WR); /* after the input, EOF: nothing can wait forever */
        wait_for_answer(c, what);
        /* Whatever the request left unread; bounded, EOF ends it sooner. */
        for (int i = 0; i < 16 && ferry_process(c) == FERRY_OK; i++)
            drain(sv[1]);
        (void)ferry_flush(c, 0);
        ferry_close(c);
    }
    close(sv[1]);
    return 0;
}
