/*
 * raw.h - a client that speaks frames by hand over a raw socket, for the
 * integration tests that must break the protocol, or fall silent, where
 * libferry would not: hostile input, heartbeats, duplicate publishes.
 * Failures are Check assertions, so use it inside Check tests only.
 */
#ifndef FERRY_TEST_RAW_H
#define FERRY_TEST_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ferry_proto.h>

#include "harness.h"

/* A frame returned by raw_next points into `in` and stays valid until the
 * next raw_next. */
struct raw {
    int fd;
    struct ferry_buf in;
    size_t last; /* bytes of the frame returned last */
};

/* Reads that get nothing for this long fail (raw_next returns false). */
#define RAW_READ_TIMEOUT_S 10

/* Connects to the daemon's Unix socket. */
void raw_open(struct raw *r, const struct ferryd *d);
void raw_close(struct raw *r);
/* false if ferryd is gone already (a fatal error may come before all is sent). */
bool raw_write(struct raw *r, const void *p, size_t n);
void raw_send(struct raw *r, const struct ferry_frame *f);
/* Sends `body` behind a correct length prefix. */
void raw_send_body(struct raw *r, const uint8_t *body, size_t len);
/* The next frame from ferryd; false on EOF, timeout or an undecodable frame. */
bool raw_next(struct raw *r, struct ferry_frame *f);
/* HELLO (with `hello`'s name and fields, version set here) and its WELCOME,
 * which is returned in *welcome if not NULL. */
void raw_hello_with(struct raw *r, struct ferry_frame hello, struct ferry_frame *welcome);
void raw_hello(struct raw *r);
/* The next frame is an ERROR with this code and fatality; returns it. */
struct ferry_frame raw_expect_error(struct raw *r, uint32_t code, bool fatal, const char *what);
/* ferryd closes the connection: EOF, with nothing more before it. */
void raw_expect_closed(struct raw *r, const char *what);
/* A PING answered by its PONG: the connection is alive and in order. */
void raw_expect_alive(struct raw *r, uint64_t rid, const char *what);
/* true if nothing arrives within ms (the connection stays silent and open). */
bool raw_silent_for(struct raw *r, int ms);

static inline struct ferry_bytes raw_bytes(const char *s)
{
    return (struct ferry_bytes){ (const uint8_t *)s, __builtin_strlen(s) };
}

#endif
