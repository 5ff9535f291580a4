/*
 * io.c - moving bytes between the socket and the connection's buffers:
 * connecting, and the reader and writer roles ("whoever waits, pumps").
 * A thread that must wait for something takes the role nobody holds and
 * polls with the mutex released, or sleeps until the role holder wakes it.
 * Knows nothing of what frames mean: inbound.c routes them.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"

/* Bytes asked of one recv(): large enough that a stream of small
 * deliveries costs one system call per many messages. */
#define READ_CHUNK (128u * 1024u)
/* Buffers emptied after a burst shrink back to this. */
#define BUF_KEEP (1024u * 1024u)
/* A writer stops after this many send() calls so that one thread does not
 * write for everybody forever; threads still waiting take over. */
#define WRITE_ROUNDS_MAX 64
/* With reconnect, the longest one poll() waits before it looks at the
 * connection's state again. */
#define RECONNECT_POLL_MS 200

static int poll_timeout(int64_t deadline)
{
    if (deadline == CONN_NO_DEADLINE)
        return -1;
    int64_t left = deadline - conn__now_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/* ---- connecting ------------------------------------------------------- */

static int wait_connected(int fd, int64_t deadline)
{
    struct pollfd pfd = { .fd = fd, .events = POLLOUT };
    int n;
    do {
        n = poll(&pfd, 1, poll_timeout(deadline));
    } while (n < 0 && errno == EINTR);
    if (n <= 0)
        return FERRY_ECONNECT;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
        return FERRY_ECONNECT;
    return FERRY_OK;
}

/* Connects the non-blocking fd, waiting at most until the deadline. */
static int connect_fd(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    for (;;) {
        if (connect(fd, sa, len) == 0)
            return FERRY_OK;
        if (errno == EINPROGRESS || errno == EINTR)
            return wait_connected(fd, deadline);
        /* A Unix socket whose listen backlog is full: try again shortly. */
        if (errno != EAGAIN || poll_timeout(deadline) == 0)
            return FERRY_ECONNECT;
        nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
    }
}

static int connect_unix(const char *path, int64_t deadline, int *fd_out)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof sa.sun_path)
        return FERRY_EINVAL;
    memcpy(sa.sun_path, path, len + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return FERRY_ECONNECT;
    int rc = connect_fd(fd, (const struct sockaddr *)&sa, sizeof sa, deadline);
    if (rc != FERRY_OK) {
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return FERRY_OK;
}

static int connect_tcp(const struct ferry_addr *a, int64_t deadline, int *fd_out)
{
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)a->port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *list;
    if (getaddrinfo(a->host, port, &hints, &list) != 0)
        return FERRY_ECONNECT;
    int rc = FERRY_ECONNECT;
    for (struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0)
            continue;
        rc = connect_fd(fd, ai->ai_addr, ai->ai_addrlen, deadline);
        if (rc == FERRY_OK) {
            /* Frames are written whole; do not let Nagle hold them back. */
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            *fd_out = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(list);
    return rc;
}

int io__connect(const struct ferry_addr *a, int64_t deadline, int *fd_out)
{
    if (a->kind == FERRY_ADDR_UNIX)
        return connect_unix(a->path, deadline, fd_out);
    return connect_tcp(a, deadline, fd_out);
}

/* ---- output ----------------------------------------------------------- */

size_t io__output_pending(const struct ferry_conn *c)
{
    return (size_t)(c->out_total - c->written_total);
}

int io__append(struct ferry_conn *c, const struct ferry_frame *f)
{
    size_t before = ferry_buf_pending(&c->out);
    if (ferry_frame_encode(&c->out, f) != 0)
        return FERRY_ENOMEM;
    size_t frame_len = ferry_buf_pending(&c->out) - before;
    if (frame_len - FERRY_FRAME_PREFIX > c->max_frame) {
        /* The broker would close the connection over it: take it back.
         * (The encoder may have compacted `out`, so count from `off`.) */
        c->out.len = c->out.off + before;
        return FERRY_EINVAL;
    }
    c->out_total += frame_len;
    return FERRY_OK;
}

/* Writes with the writer role held and the mutex held (released around
 * each send). FERRY_OK when nothing is left (or after WRITE_ROUNDS_MAX),
 * FERRY_EAGAIN when the socket is full, or the dead status. */
static int write_available(struct ferry_conn *c)
{
    int rc = FERRY_OK;
    uint64_t written_before = c->written_total;
    for (int round = 0; round < WRITE_ROUNDS_MAX && !c->dead; round++) {
        if (ferry_buf_pending(&c->sending) == 0) {
            if (ferry_buf_pending(&c->out) == 0)
                break;
            /* Take everything appended so far; appenders get the empty buffer. */
            struct ferry_buf taken = c->out;
            c->out = c->sending;
            c->sending = taken;
        }
        const uint8_t *from = c->sending.data + c->sending.off;
        size_t len = ferry_buf_pending(&c->sending);
        pthread_mutex_unlock(&c->mu);
        ssize_t n = send(c->fd, from, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        int err = errno;
        pthread_mutex_lock(&c->mu);
        if (n < 0) {
            if (err == EINTR)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK) {
                rc = FERRY_EAGAIN;
                break;
            }
            conn__fail(c, FERRY_EIO);
            break;
        }
        ferry_buf_consume(&c->sending, (size_t)n);
        c->written_total += (uint64_t)n;
    }
    if (ferry_buf_pending(&c->sending) == 0 && c->sending.cap > BUF_KEEP)
        ferry_buf_shrink(&c->sending, BUF_KEEP);
    if (c->written_total != written_before)
        conn__wake(c);
    return c->dead ? c->dead : rc;
}

int io__write_now(struct ferry_conn *c)
{
    if (c->writing || c->broken || io__output_pending(c) == 0)
        return c->dead;
    c->writing = true;
    c->draining = false; /* it stops at EAGAIN */
    int rc = write_available(c);
    c->writing = false;
    conn__wake(c);
    return rc == FERRY_EAGAIN ? FERRY_OK : rc;
}

/* Room for `need` more bytes of output; with reconnect, the publishes
 * kept for sending again count against the same bound: they leave only
 * with their confirms. */
static bool has_room(const struct ferry_conn *c, size_t need)
{
    size_t pending = io__output_pending(c);
    size_t kept = resend__pending(c);
    return (pending == 0 || pending + need <= c->max_output)
        && (kept == 0 || kept + need <= c->max_output);
}

int io__try_room(struct ferry_conn *c, size_t need)
{
    if (has_room(c, need))
        return FERRY_OK;
    int rc = io__write_now(c); /* what the socket takes, once */
    if (rc != FERRY_OK)
        return rc;
    return has_room(c, need) ? FERRY_OK : FERRY_EAGAIN;
}

int io__wait_for_room(struct ferry_conn *c, size_t need, int64_t deadline)
{
    for (;;) {
        if (has_room(c, need))
            return FERRY_OK;
        if (conn__in_dispatch(c))
            return io__try_room(c, need); /* a callback must not block */
        /* Room in the output comes from writing; room in the store from confirms. */
        size_t pending = io__output_pending(c);
        bool out_room = pending == 0 || pending + need <= c->max_output;
        int rc = io__pump(c, out_room ? PUMP_INPUT : PUMP_OUTPUT, deadline);
        if (rc != FERRY_OK)
            return rc;
    }
}

int io__send(struct ferry_conn *c, int64_t deadline)
{
    if (conn__in_dispatch(c))
        return io__write_now(c); /* the reader's batch end or the loop writes the rest */
    /* Writing until *everything* is out, not just our frame, is what lets
     * other producers leave theirs to us: their frames share our send(). */
    while (io__output_pending(c) > 0) {
        /* Between steps we hold no role, so a draining writer is another
         * thread, and it takes our bytes (appended before we got here). */
        if (c->writing && c->draining)
            return FERRY_OK;
        int rc = io__pump(c, PUMP_DRAIN, deadline);
        if (rc != FERRY_OK)
            return rc;
    }
    return FERRY_OK;
}

/* ---- input ------------------------------------------------------------ */

/* How much room the next recv() gets: a chunk, or, inside a large frame
 * whose prefix has arrived, as much again as is already buffered (at most
 * the rest of the frame). The buffer so doubles as the body arrives: the
 * prefix alone, four bytes any peer can make up, never sizes memory. */
static size_t read_size(const struct ferry_conn *c)
{
    size_t pending = ferry_buf_pending(&c->in);
    if (pending < FERRY_FRAME_PREFIX)
        return READ_CHUNK;
    const uint8_t *p = c->in.data + c->in.off;
    size_t body = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    if (body > FERRY_FRAME_MAX_CEILING)
        return READ_CHUNK; /* inbound.c refuses the frame */
    size_t whole = FERRY_FRAME_PREFIX + body;
    size_t missing = whole > pending ? whole - pending : 0;
    size_t step = pending > READ_CHUNK ? pending : READ_CHUNK;
    if (missing < step)
        step = missing;
    return step > READ_CHUNK ? step : READ_CHUNK;
}

/* One recv() and the processing of every whole frame it completes.
 * Reader role and mutex held. FERRY_OK, FERRY_EAGAIN or the dead status;
 * *more tells whether the socket may hold more (the recv filled the room). */
static int read_once(struct ferry_conn *c, bool *more)
{
    *more = false;
    if (ferry_buf_reserve(&c->in, read_size(c)) != 0) {
        conn__fail(c, FERRY_ENOMEM);
        return c->dead;
    }
    uint8_t *to = c->in.data + c->in.len;
    size_t room = c->in.cap - c->in.len;
    pthread_mutex_unlock(&c->mu);
    ssize_t n = recv(c->fd, to, room, MSG_DONTWAIT);
    int err = errno;
    pthread_mutex_lock(&c->mu);
    if (n == 0) {
        conn__fail(c, FERRY_ECLOSED);
        return c->dead;
    }
    if (n < 0) {
        if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
            return FERRY_EAGAIN;
        conn__fail(c, FERRY_EIO);
        return c->dead;
    }
    c->in.len += (size_t)n;
    c->read_total += (uint64_t)n;
    c->heard_ms = conn__now_ms();
    *more = (size_t)n == room;
    inbound__process(c);
    consume__flush_acks(c);
    consume__sweep(c);
    if (ferry_buf_pending(&c->in) == 0 && c->in.cap > BUF_KEEP)
        ferry_buf_shrink(&c->in, BUF_KEEP);
    conn__wake(c);
    /* Acks and pongs this batch produced go out now if nobody is writing. */
    int rc = io__write_now(c);
    return rc != FERRY_OK ? rc : c->dead;
}

int io__read_available(struct ferry_conn *c)
{
    if (c->dead)
        return c->dead;
    if (c->reading || c->broken)
        return FERRY_OK; /* another thread reads; it dispatches too */
    c->reading = true;
    int rc = FERRY_OK;
    bool more = true;
    /* Bounded so that a flood on one connection cannot starve the loop. */
    for (int i = 0; i < 16 && rc == FERRY_OK && more; i++)
        rc = read_once(c, &more);
    c->reading = false;
    conn__wake(c);
    return rc == FERRY_EAGAIN ? FERRY_OK : rc;
}

/* In event-loop mode only the loop's thread reads, so that callbacks run
 * there; other threads wait for it. */
static bool may_read(const struct ferry_conn *c)
{
    return !c->loop_driven || pthread_equal(c->loop_thread, pthread_self());
}

int io__pump(struct ferry_conn *c, enum pump_need need, int64_t deadline)
{
    if (c->dead)
        return c->dead;
    if (c->broken)
        return reconnect__pump(c, deadline);
    bool write = !c->writing && io__output_pending(c) > 0;
    if (write) {
        c->writing = true;
        c->draining = need == PUMP_DRAIN;
        int rc = write_available(c);
        if (rc != FERRY_EAGAIN) {
            c->writing = false;
            conn__wake(c);
            return rc;
        }
        /* The socket is full. Keep the role and wait for it to drain. */
    }
    /* A blocked writer reads too: a broker that cannot send us its
     * confirms may stop reading what we write. */
    bool read = !c->reading && may_read(c) && (need == PUMP_INPUT || write);
    if (!write && !read)
        return conn__sleep(c, deadline);
    if (read)
        c->reading = true;

    struct pollfd pfd = { .fd = c->fd, .events = (short)((read ? POLLIN : 0) | (write ? POLLOUT : 0)) };
    int timeout = poll_timeout(deadline);
    /* A break can swap the socket for a silent pipe under a poll that has
     * not started yet: with reconnect, look again now and then. */
    if (c->reconnect && (timeout < 0 || timeout > RECONNECT_POLL_MS))
        timeout = RECONNECT_POLL_MS;
    pthread_mutex_unlock(&c->mu);
    int n = poll(&pfd, 1, timeout);
    int err = errno;
    pthread_mutex_lock(&c->mu);

    bool more;
    if ((n < 0 && err != EINTR) || (n > 0 && (pfd.revents & POLLNVAL)))
        conn__fail(c, FERRY_EIO);
    if (n > 0 && read && (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
        read_once(c, &more);
    if (n > 0 && write && (pfd.revents & (POLLOUT | POLLHUP | POLLERR)))
        write_available(c);
    if (read)
        c->reading = false;
    if (write)
        c->writing = false;
    conn__wake(c);
    if (c->dead)
        return c->dead;
    if (n == 0 && poll_timeout(deadline) == 0)
        return FERRY_ETIMEDOUT;
    return c->dead;
}
