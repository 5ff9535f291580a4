/*
 * raw.c - a client that speaks frames by hand over a raw socket (raw.h).
 */
#include "raw.h"

#include <check.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void raw_open(struct raw *r, const struct ferryd *d)
{
    memset(r, 0, sizeof *r);
    r->fd = harness_raw_connect(d);
    ck_assert_int_ge(r->fd, 0);
    struct timeval tv = { RAW_READ_TIMEOUT_S, 0 };
    setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void raw_close(struct raw *r)
{
    close(r->fd);
    ferry_buf_free(&r->in);
}

/* false if ferryd is gone already (a fatal error may come before all is sent). */
bool raw_write(struct raw *r, const void *p, size_t n)
{
    const uint8_t *at = p;
    while (n > 0) {
        ssize_t w = send(r->fd, at, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        at += w;
        n -= (size_t)w;
    }
    return true;
}

void raw_send(struct raw *r, const struct ferry_frame *f)
{
    struct ferry_buf out = { 0 };
    ck_assert_int_eq(ferry_frame_encode(&out, f), 0);
    raw_write(r, out.data + out.off, ferry_buf_pending(&out));
    ferry_buf_free(&out);
}

/* Sends `body` behind a correct length prefix. */
void raw_send_body(struct raw *r, const uint8_t *body, size_t len)
{
    uint8_t prefix[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                          (uint8_t)len };
    raw_write(r, prefix, sizeof prefix);
    raw_write(r, body, len);
}

/* The next frame from ferryd; false on EOF, timeout or an undecodable frame. */
bool raw_next(struct raw *r, struct ferry_frame *f)
{
    ferry_buf_consume(&r->in, r->last);
    r->last = 0;
    for (;;) {
        struct ferry_bytes body;
        size_t used;
        if (ferry_frame_split(r->in.data + r->in.off, ferry_buf_pending(&r->in),
                              FERRY_FRAME_MAX_CEILING, &body, &used) == FERRY_SPLIT_FRAME) {
            r->last = used;
            const char *why;
            return ferry_frame_decode(body.ptr, body.len, f, &why) == FERRY_CODE_OK;
        }
        ck_assert_int_eq(ferry_buf_reserve(&r->in, 65536), 0);
        ssize_t n = recv(r->fd, r->in.data + r->in.len, r->in.cap - r->in.len, 0);
        if (n <= 0)
            return false;
        r->in.len += (size_t)n;
    }
}

void raw_hello_with(struct raw *r, struct ferry_frame hello, struct ferry_frame *welcome)
{
    hello.type = FERRY_F_HELLO;
    hello.version = FERRY_PROTO_VERSION;
    raw_send(r, &hello);
    struct ferry_frame f;
    ck_assert(raw_next(r, &f));
    ck_assert_int_eq(f.type, FERRY_F_WELCOME);
    if (welcome)
        *welcome = f;
}

void raw_hello(struct raw *r)
{
    struct ferry_frame hello = { .name = { (const uint8_t *)"hostile", 7 } };
    raw_hello_with(r, hello, NULL);
}

/* The next frame is an ERROR with this code and fatality; returns it. */
struct ferry_frame raw_expect_error(struct raw *r, uint32_t code, bool fatal, const char *what)
{
    struct ferry_frame f;
    ck_assert_msg(raw_next(r, &f), "%s: no frame came back", what);
    ck_assert_msg(f.type == FERRY_F_ERROR, "%s: got a %s, not an ERROR", what,
                  ferry_frame_type_name(f.type));
    ck_assert_msg(f.code == code, "%s: code %s, expected %s (%.*s)", what, ferry_code_name(f.code),
                  ferry_code_name(code), (int)f.text.len, (const char *)f.text.ptr);
    ck_assert_msg(f.fatal == fatal, "%s: fatal is %d", what, f.fatal);
    return f;
}

/* ferryd closes the connection: EOF, with nothing more before it. */
void raw_expect_closed(struct raw *r, const char *what)
{
    struct ferry_frame f;
    ck_assert_msg(!raw_next(r, &f), "%s: a %s came after the fatal error", what,
                  ferry_frame_type_name(f.type));
    ck_assert_msg(ferry_buf_pending(&r->in) == 0, "%s: stray bytes before EOF", what);
}

/* A PING answered by its PONG: the connection is alive and in order. */
void raw_expect_alive(struct raw *r, uint64_t rid, const char *what)
{
    struct ferry_frame ping = { .type = FERRY_F_PING, .rid = rid };
    raw_send(r, &ping);
    struct ferry_frame f;
    ck_assert_msg(raw_next(r, &f), "%s: no PONG", what);
    ck_assert_msg(f.type == FERRY_F_PONG && f.rid == rid, "%s: got %s rid %llu instead of PONG",
                  what, ferry_frame_type_name(f.type), (unsigned long long)f.rid);
}

/* true if nothing arrives within ms (the connection stays silent and open). */
bool raw_silent_for(struct raw *r, int ms)
{
    struct pollfd p = { .fd = r->fd, .events = POLLIN };
    return poll(&p, 1, ms) == 0;
}
