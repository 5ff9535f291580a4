/*
 * conn.c - one client connection of ferryd: its socket, its input and
 * output buffers, its states (awaiting HELLO, open, closing, lingering),
 * and the set of all connections, which at the end of each turn of the
 * loop has the journal flushed (commit.c) and then writes every
 * connection's output with one write(). What each frame does is in
 * requests.c.
 *
 * Knows frames (proto/) and the broker (broker.h); knows nothing of
 * listeners, addresses or signals (server.c).
 */
#include "conn_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* One read() asks for this much; a few reads per event keep one busy
 * peer from starving the others. */
#define READ_CHUNK (64u * 1024u)
#define READS_PER_EVENT 4
/* A busy connection keeps its buffers' memory (growing them again for
 * every burst would cost a realloc and fresh pages each time); an open
 * connection idle this long gives it back. */
#define IDLE_TRIM_S 1

/* Once this many connections have closed, the heap is given back to the
 * system (malloc_trim) when closes have stopped for HEAP_TRIM_QUIET_S:
 * glibc keeps freed memory otherwise, and a storm of connections would
 * leave ferryd as large as at its peak. */
#define HEAP_TRIM_AFTER_CLOSES 64
#define HEAP_TRIM_QUIET_S 1

/* A closing connection gets this long to take its last output. */
#define CLOSING_TIMEOUT_S 5
/* TCP: after the last byte is out, how long to wait for the peer to
 * close, so that its unread input does not make the kernel reset the
 * connection (a reset can destroy the ERROR frame before the peer reads
 * it). A Unix socket keeps the data readable, so it closes at once. */
#define LINGER_TIMEOUT_S 2

static void conn_close(struct conn *c);
static void process_input(struct conn *c);
static void end_batch(struct conn *c);

/* ---- small helpers ------------------------------------------------------ */

static struct timeval seconds(long s)
{
    return (struct timeval){ .tv_sec = s, .tv_usec = 0 };
}

/* ---- the dirty list: connections with output to write ------------------ */

/* Appends at the tail: connections are written in the order they got
 * output, so the DELIVERs a publish causes go out before the CONFIRM the
 * publisher gets at the end of its batch (that is the latency path). */
static void mark_dirty(struct conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->dirty_next = NULL;
    c->dirty_prev = c->set->dirty_tail;
    if (c->dirty_prev)
        c->dirty_prev->dirty_next = c;
    else
        c->set->dirty = c;
    c->set->dirty_tail = c;
}

static void unmark_dirty(struct conn *c)
{
    if (!c->dirty)
        return;
    if (c->dirty_prev)
        c->dirty_prev->dirty_next = c->dirty_next;
    else
        c->set->dirty = c->dirty_next;
    if (c->dirty_next)
        c->dirty_next->dirty_prev = c->dirty_prev;
    else
        c->set->dirty_tail = c->dirty_prev;
    c->dirty = false;
    c->dirty_prev = c->dirty_next = NULL;
}

/* ---- output ------------------------------------------------------------- */

static void throttle(struct conn *c)
{
    if (c->throttled)
        return;
    c->throttled = true;
    /* Allowed from inside a session_ops callback: see broker.h. */
    broker_session_set_writable(c->set->broker, c->session, false);
    event_del(c->read_ev);
}

/* Entered on a fatal error or the peer's EOF: nothing more is read or
 * handled, nothing more is delivered; the output still goes out. */
static void enter_closing(struct conn *c)
{
    c->state = CONN_CLOSING;
    broker_session_set_writable(c->set->broker, c->session, false);
    event_del(c->read_ev);
    struct timeval tv = seconds(CLOSING_TIMEOUT_S);
    event_add(c->timer_ev, &tv);
    mark_dirty(c);
}

/* Sends a fatal ERROR after the output already queued, then closes.
 * Safe inside session_ops callbacks: it does not free the connection. */
void conn_fail(struct conn *c, enum ferry_code code, const char *text)
{
    if (c->state >= CONN_CLOSING)
        return;
    conn_emit_confirms(c); /* what was accepted stays confirmed */
    log_debug("conn %" PRIu64 ": fatal %s: %s", c->id, ferry_code_name(code), text);
    struct ferry_frame f = {
        .type = FERRY_F_ERROR, .code = code, .fatal = true, .text = text_bytes(text),
    };
    if (ferry_frame_encode(&c->out, &f) != 0)
        log_warn("conn %" PRIu64 ": no memory for the ERROR frame; closing", c->id);
    enter_closing(c);
}

/* Queues one frame for the peer. Every DELIVER, reply and CONFIRM passes
 * here: it is encoded straight into the output buffer and written at the
 * end of the batch. */
void conn_send(struct conn *c, const struct ferry_frame *f)
{
    /* After a fatal ERROR nothing more is said; after the peer's EOF what
     * it asked is still answered. */
    if (c->state > CONN_CLOSING || (c->state == CONN_CLOSING && !c->peer_closed)
        || c->write_failed)
        return;
    if (ferry_frame_encode(&c->out, f) != 0) {
        conn_fail(c, FERRY_CODE_NO_MEMORY, "server out of memory");
        return;
    }
    mark_dirty(c);
    if (ferry_buf_pending(&c->out) > c->set->limits.max_output)
        throttle(c);
}

/* ---- confirms ------------------------------------------------------------ */

void conn_emit_confirms(struct conn *c)
{
    struct confirm_batch *batch = &c->set->confirms;
    if (batch->owner != c || batch->count == 0)
        return;
    struct ferry_frame f = {
        .type = FERRY_F_CONFIRM, .uints = batch->ids, .uint_count = batch->count,
    };
    batch->count = 0;
    conn_send(c, &f);
}

/* Makes room for one more id; false if memory is short. */
static bool confirm_room(struct confirm_batch *batch)
{
    if (batch->count < batch->cap)
        return true;
    if (batch->cap >= FERRY_LIST_MAX)
        return false;
    size_t cap = batch->cap ? batch->cap * 2 : 256;
    uint64_t *ids = realloc(batch->ids, cap * sizeof *ids);
    if (!ids)
        return false;
    batch->ids = ids;
    batch->cap = cap;
    return true;
}

void conn_confirm_add(struct conn *c, uint64_t id)
{
    struct confirm_batch *batch = &c->set->confirms;
    if (batch->owner != c) {
        if (batch->owner)
            conn_emit_confirms(batch->owner);
        batch->owner = c;
    }
    if (!confirm_room(batch)) {
        /* The list is at the protocol's bound (or memory is short): send
         * what is gathered and start over. */
        conn_emit_confirms(c);
        if (!confirm_room(batch)) {
            uint64_t one[1] = { id };
            struct ferry_frame f = { .type = FERRY_F_CONFIRM, .uints = one, .uint_count = 1 };
            conn_send(c, &f);
            return;
        }
    }
    batch->ids[batch->count++] = id;
}

/* ---- input -------------------------------------------------------------- */

/* Splits, decodes and handles every whole frame in the input buffer,
 * unless the connection closes or its output fills up first. */
static void process_input(struct conn *c)
{
    while (c->state <= CONN_OPEN && !c->throttled && !c->parked) {
        size_t pending = ferry_buf_pending(&c->in);
        if (pending == 0)
            break;
        struct ferry_bytes body;
        size_t used;
        enum ferry_split split = ferry_frame_split(c->in.data + c->in.off, pending,
                                                   c->max_frame, &body, &used);
        if (split == FERRY_SPLIT_INCOMPLETE)
            break;
        if (split == FERRY_SPLIT_TOO_LARGE) {
            conn_fail(c, FERRY_CODE_FRAME_TOO_LARGE, "frame larger than max_frame");
            break;
        }
        struct ferry_frame f;
        const char *why = NULL;
        enum ferry_code code = ferry_frame_decode(body.ptr, body.len, &f, &why);
        if (code != FERRY_CODE_OK) {
            conn_fail(c, code, why ? why : "bad frame");
            break;
        }
        requests_handle_frame(c, &f);
        if (c->parked)
            break; /* the frame stays, to be handled again once woken */
        ferry_buf_consume(&c->in, used); /* f pointed into these bytes */
    }
    if (c->state >= CONN_CLOSING)
        ferry_buf_free(&c->in);
}

/* The end of one input batch: the confirms it gathered go out as one frame. */
static void end_batch(struct conn *c)
{
    conn_emit_confirms(c);
}

/* ---- parked on a full queue ------------------------------------------------ */

void conn_park(struct conn *c)
{
    c->parked = true;
    event_del(c->read_ev);
    event_add(c->hangup_ev, NULL);
}

/* The peer closed (or shut down its writing side) while parked: it is
 * not answered further; what it had in flight (nothing: flow.c) and its
 * place in the queue's list go with it. */
static void on_parked_hangup(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct conn_set *set = c->set;
    if (!c->parked || c->state != CONN_OPEN) {
        event_del(c->hangup_ev); /* level-triggered: it would fire again */
        return;
    }
    log_debug("conn %" PRIu64 ": peer closed while parked on a full queue", c->id);
    conn_close(c);
    conn_set_flush(set);
}

void conn_unblocked(struct conn *c)
{
    /* Active events run in the order they were made active: the first
     * parked retries first. */
    event_active(c->resume_ev, EV_TIMEOUT, 0);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (!c->parked || c->state != CONN_OPEN)
        return;
    c->parked = false;
    event_del(c->hangup_ev);
    c->heard_ms = monotonic_ms(); /* its silence while parked was ours */
    if (!c->throttled)
        event_add(c->read_ev, NULL);
    process_input(c); /* the parked frame first */
    end_batch(c);
    conn_set_flush(c->set);
}

/* ---- socket I/O ------------------------------------------------------------ */

/* Arms the idle trim once buffers hold memory; it fires IDLE_TRIM_S
 * later, whatever happens in between (re-arming on every event would
 * cost a timer update per batch). */
static void schedule_trim(struct conn *c)
{
    if (c->state != CONN_OPEN || c->trim_armed || (c->in.cap == 0 && c->out.cap == 0))
        return;
    struct timeval tv = seconds(IDLE_TRIM_S);
    if (event_add(c->timer_ev, &tv) == 0)
        c->trim_armed = true;
}

/* Frees the buffers that are empty; a connection still busy is trimmed
 * on a later round. */
static void trim_buffers(struct conn *c)
{
    c->trim_armed = false;
    if (ferry_buf_pending(&c->in) == 0)
        ferry_buf_free(&c->in);
    if (ferry_buf_pending(&c->out) == 0)
        ferry_buf_free(&c->out);
    schedule_trim(c);
}

/* Gives the connection's messages back to the broker, as soon as the
 * peer can no longer settle them (its last output is out, or it is gone):
 * they are redelivered elsewhere without waiting for the close. Must not
 * run inside a session_ops callback. */
void conn_release_session(struct conn *c)
{
    while (c->gets) {
        struct get_wait *w = c->gets;
        c->gets = w->next;
        requests_free_get(w);
    }
    c->get_count = 0;
    if (!c->session)
        return;
    /* The broker owns the session; freeing it requeues what c held, which
     * may deliver to other connections (they become dirty). */
    broker_session_free(c->set->broker, c->session);
    c->session = NULL;
}

/* Once everything is out, the write side is shut and the peer gets a
 * moment to read it and close its end. */
static void start_lingering(struct conn *c)
{
    c->state = CONN_LINGERING;
    shutdown(c->fd, SHUT_WR);
    event_add(c->read_ev, NULL);
    struct timeval tv = seconds(LINGER_TIMEOUT_S);
    event_add(c->timer_ev, &tv);
}

/* The output drained to half its bound: deliveries and input resume,
 * starting with the frames already buffered. */
static void unthrottle(struct conn *c)
{
    c->throttled = false;
    if (!c->parked)
        event_add(c->read_ev, NULL);
    broker_session_set_writable(c->set->broker, c->session, true);
    process_input(c);
    end_batch(c);
    conn_set_flush(c->set); /* what it published waits for the journal's flush */
}

static void arm_write(struct conn *c)
{
    if (!c->write_armed && event_add(c->write_ev, NULL) == 0)
        c->write_armed = true;
}

/* What follows a write: wait for the socket, resume, or finish closing
 * (which may free c). */
static void after_write(struct conn *c)
{
    size_t pending = ferry_buf_pending(&c->out);
    if (pending > 0)
        arm_write(c);
    else
        schedule_trim(c);

    if (c->state == CONN_CLOSING) {
        if (pending > 0)
            return;
        conn_release_session(c);
        if (c->is_tcp)
            start_lingering(c);
        else
            conn_close(c);
        return;
    }
    if (c->throttled && pending <= c->set->limits.max_output / 2)
        unthrottle(c);
}

/* A write failed: the peer is gone, or reads no more. What it wrote
 * before it went may still wait in the socket, its last ACKs among it (a
 * client acks, then closes): an open connection reads and handles that
 * once, answering nothing, before it closes (on_readable). Else, or while
 * parked (its frame waits for room), it closes now. May free c. */
static void lose_peer(struct conn *c)
{
    if (c->state != CONN_OPEN || c->parked) {
        conn_close(c);
        return;
    }
    c->write_failed = true;
    ferry_buf_consume(&c->out, ferry_buf_pending(&c->out));
    c->throttled = false; /* nothing waits to be written any more */
    broker_session_set_writable(c->set->broker, c->session, false); /* nothing more is delivered */
    event_active(c->read_ev, EV_READ, 0);
}

/* One write() of everything queued for c. May free c. */
static void conn_write(struct conn *c)
{
    if (c->write_armed || c->write_failed)
        return; /* the socket was full (the write event will come), or the peer is gone */
    size_t pending = ferry_buf_pending(&c->out);
    if (pending > 0) {
        ssize_t n;
        do
            n = write(c->fd, c->out.data + c->out.off, pending);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN) {
            log_debug("conn %" PRIu64 ": write: %s", c->id, strerror(errno));
            lose_peer(c);
            return;
        }
        if (n > 0) {
            ferry_buf_consume(&c->out, (size_t)n);
            if (c->out_backed_up)
                c->heard_ms = monotonic_ms(); /* the peer took what was stuck */
        }
        c->out_backed_up = n < 0 || (size_t)n < pending;
    }
    after_write(c);
}

/* Writes out every connection with output queued; closes the ones whose
 * peer is gone. Each pass takes one connection off the list; one comes
 * back only with new output, which credit and the bounds limit. */
static void write_dirty(struct conn_set *set)
{
    struct conn *c;
    while ((c = set->dirty) != NULL) {
        unmark_dirty(c);
        conn_write(c);
    }
}

/* The end of a turn of the loop. The event is made active from the
 * callbacks of this turn, so libevent runs it after every event that was
 * ready with them (one priority: it joins the tail of the active queue).
 * So all input of the turn shares one flush of the journal (group commit),
 * and nothing is written to a socket before the journal holds what it
 * answers: a CONFIRM, a DELIVER whose attempt count is logged, an OK after
 * an ACK. (A lower priority would starve it while input keeps coming.) */
static void on_turn_end(evutil_socket_t fd, short what, void *arg)
{
    struct conn_set *set = arg;
    set->turn_end_armed = false;
    commit_run(set);
    write_dirty(set);
    ticker_rearm(set); /* what this turn did may have moved the next timer */
}

void conn_set_flush(struct conn_set *set)
{
    if (set->turn_end_armed)
        return;
    set->turn_end_armed = true;
    event_active(set->turn_end_ev, EV_TIMEOUT, 0);
}

void conn_set_use_durable(struct conn_set *set, struct durable *durable)
{
    set->durable = durable;
}

/* Reads and handles input: at most READS_PER_EVENT reads. Returns false
 * if the connection is dead and must be closed at once. */
static bool read_input(struct conn *c)
{
    for (int i = 0; i < READS_PER_EVENT; i++) {
        if (ferry_buf_reserve(&c->in, READ_CHUNK) != 0) {
            conn_fail(c, FERRY_CODE_NO_MEMORY, "server out of memory");
            return true;
        }
        ssize_t n = read(c->fd, c->in.data + c->in.len, READ_CHUNK);
        if (n > 0) {
            c->in.len += (size_t)n;
            c->heard_ms = monotonic_ms();
            process_input(c);
            if (c->state > CONN_OPEN || c->throttled || c->parked || (size_t)n < READ_CHUNK)
                break;
            continue;
        }
        if (n == 0) {
            log_debug("conn %" PRIu64 ": peer closed", c->id);
            conn_emit_confirms(c);
            c->peer_closed = true;
            enter_closing(c); /* answer what was asked, then close */
            ferry_buf_free(&c->in);
            return true;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            break;
        log_debug("conn %" PRIu64 ": read: %s", c->id, strerror(errno));
        return false;
    }
    schedule_trim(c);
    return true;
}

/* In CONN_LINGERING: drop what the peer still sends, until its EOF. */
static bool discard_input(struct conn *c)
{
    uint8_t scratch[4096];
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = read(c->fd, scratch, sizeof scratch);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            return true;
        return false; /* EOF or error: done */
    }
    return true;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct conn_set *set = c->set;
    bool alive = c->state == CONN_LINGERING ? discard_input(c) : read_input(c);
    if (alive && !c->write_failed)
        end_batch(c);
    else
        conn_close(c); /* after a failed write: once its last input is handled */
    conn_set_flush(set);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct conn_set *set = c->set;
    c->write_armed = false;
    conn_write(c);
    conn_set_flush(set);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct conn_set *set = c->set;
    if (c->state == CONN_AWAITING_HELLO)
        conn_fail(c, FERRY_CODE_HANDSHAKE, "no HELLO within handshake_timeout");
    else if (c->state == CONN_OPEN)
        trim_buffers(c);
    else
        conn_close(c);
    conn_set_flush(set);
}

/* ---- lifetime ---------------------------------------------------------------- */

static void notify_if_all_closed(struct conn_set *set)
{
    if (!set->shutting_down || set->count > 0 || !set->all_closed)
        return;
    void (*all_closed)(void *) = set->all_closed;
    set->all_closed = NULL;
    all_closed(set->all_closed_arg);
}

static void on_heap_trim(evutil_socket_t fd, short what, void *arg)
{
    struct conn_set *set = arg;
    set->closed_since_trim = 0;
    malloc_trim(0);
}

/* Counts a close; after enough, (re)starts the quiet period of the trim. */
static void note_close(struct conn_set *set)
{
    if (++set->closed_since_trim < HEAP_TRIM_AFTER_CLOSES)
        return;
    struct timeval tv = seconds(HEAP_TRIM_QUIET_S);
    event_add(set->heap_trim_ev, &tv);
}

/* Frees c now. Its in-flight messages go back to their queues and may be
 * delivered to other connections (which become dirty). */
static void conn_close(struct conn *c)
{
    struct conn_set *set = c->set;
    log_debug("conn %" PRIu64 ": closed", c->id);
    c->state = CONN_CLOSED;
    conn_release_session(c);
    unmark_dirty(c);
    if (c->pending_confirms > 0)
        commit_forget(c);
    if (set->confirms.owner == c) {
        set->confirms.owner = NULL;
        set->confirms.count = 0;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        set->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    set->count--;
    note_close(set);

    event_free(c->read_ev);
    event_free(c->write_ev);
    event_free(c->timer_ev);
    event_free(c->resume_ev);
    event_free(c->hangup_ev);
    close(c->fd);
    ferry_buf_free(&c->in);
    ferry_buf_free(&c->out);
    free(c->client_name);
    free(c);
    notify_if_all_closed(set);
}

int conn_open(struct conn_set *set, int fd, bool is_tcp)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        goto fail;
    c->set = set;
    c->fd = fd;
    c->is_tcp = is_tcp;
    c->max_frame = set->limits.max_frame;
    c->id = ++set->next_id;
    c->heard_ms = monotonic_ms();
    c->opened_ms = c->heard_ms;
    conns_describe_peer(c);
    c->read_ev = event_new(set->base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->write_ev = event_new(set->base, fd, EV_WRITE, on_writable, c);
    c->timer_ev = evtimer_new(set->base, on_timer, c);
    c->resume_ev = event_new(set->base, -1, 0, on_resume, c);
    c->hangup_ev = event_new(set->base, fd, EV_CLOSED, on_parked_hangup, c);
    if (!c->read_ev || !c->write_ev || !c->timer_ev || !c->resume_ev || !c->hangup_ev)
        goto fail;
    c->session = broker_session_new(set->broker, &conn_session_ops, c);
    if (!c->session)
        goto fail;
    if (event_add(c->read_ev, NULL) != 0 || event_add(c->timer_ev, set->handshake_timeout) != 0) {
        broker_session_free(set->broker, c->session);
        goto fail;
    }

    c->next = set->all; /* the set owns c from here */
    if (c->next)
        c->next->prev = c;
    set->all = c;
    set->count++;
    log_debug("conn %" PRIu64 ": opened (fd %d)", c->id, fd);
    return 0;

fail:
    if (c) {
        if (c->read_ev)
            event_free(c->read_ev);
        if (c->write_ev)
            event_free(c->write_ev);
        if (c->timer_ev)
            event_free(c->timer_ev);
        if (c->resume_ev)
            event_free(c->resume_ev);
        if (c->hangup_ev)
            event_free(c->hangup_ev);
        free(c);
    }
    close(fd);
    return -1;
}

void conn_reject(int fd, enum ferry_code code, const char *text)
{
    struct ferry_buf out = { 0 };
    struct ferry_frame f = {
        .type = FERRY_F_ERROR, .code = code, .fatal = true, .text = text_bytes(text),
    };
    /* One try: the socket is new, so its buffer has room for one frame. */
    if (ferry_frame_encode(&out, &f) == 0) {
        ssize_t ignored = write(fd, out.data + out.off, ferry_buf_pending(&out));
        (void)ignored;
    }
    ferry_buf_free(&out);
    shutdown(fd, SHUT_WR);
    close(fd);
}

struct conn_set *conn_set_new(struct event_base *base, struct broker *broker,
                              const struct conn_limits *limits)
{
    struct conn_set *set = calloc(1, sizeof *set);
    if (!set)
        return NULL;
    set->base = base;
    set->broker = broker;
    set->started_ms = monotonic_ms();
    set->heap_trim_ev = evtimer_new(base, on_heap_trim, set);
    if (!set->heap_trim_ev || heartbeat_init(set) != 0 || conn_set_limits(set, limits) != 0
        || commit_init(set, on_turn_end) != 0 || ticker_init(set) != 0) {
        if (set->heap_trim_ev)
            event_free(set->heap_trim_ev);
        heartbeat_free(set);
        commit_free(set);
        free(set);
        return NULL;
    }
    return set;
}

int conn_set_limits(struct conn_set *set, const struct conn_limits *limits)
{
    /* Every connection starts the same timeout: a common timeout keeps
     * adding it O(1). libevent keeps at most 256 of them per base, so
     * only that many different values can be reloaded. */
    uint64_t ms = limits->handshake_timeout_ms;
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000u),
                          .tv_usec = (suseconds_t)(ms % 1000u) * 1000 };
    const struct timeval *handshake = event_base_init_common_timeout(set->base, &tv);
    if (!handshake)
        return -1;
    set->handshake_timeout = handshake;
    /* A throttled connection compares with the new max_output when its
     * output next drains. */
    bool heartbeat_changed = set->limits.heartbeat_ms != limits->heartbeat_ms;
    set->limits = *limits;
    if (heartbeat_changed)
        heartbeat_apply(set);
    duplicates_apply(set);
    return 0;
}

void conn_set_free(struct conn_set *set)
{
    if (!set)
        return;
    set->all_closed = NULL;
    /* Nothing is delivered while they go: a message one of them gives
     * back must not count an attempt for a connection about to close. */
    for (struct conn *c = set->all; c; c = c->next)
        if (c->session)
            broker_session_set_writable(set->broker, c->session, false);
    while (set->all)
        conn_close(set->all);
    event_free(set->heap_trim_ev);
    ticker_free(set);
    heartbeat_free(set);
    duplicates_free(set);
    commit_free(set);
    free(set->confirms.ids);
    free(set);
}

size_t conn_set_count(const struct conn_set *set)
{
    return set->count;
}

void conn_set_shutdown(struct conn_set *set, void (*all_closed)(void *arg), void *arg)
{
    set->shutting_down = true;
    set->all_closed = all_closed;
    set->all_closed_arg = arg;
    commit_run(set); /* the publishes already in the journal are confirmed first */
    for (struct conn *c = set->all; c; c = c->next)
        conn_fail(c, FERRY_CODE_SHUTTING_DOWN, "server is shutting down");
    conn_set_flush(set);
    notify_if_all_closed(set);
}
