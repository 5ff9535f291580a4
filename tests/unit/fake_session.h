/*
 * fake_session.h - what the unit tests of the broker core share: a fake
 * session that records every callback in order, and small helpers to
 * publish, consume and read statistics. No socket, no frame.
 */
#ifndef FERRY_TEST_FAKE_SESSION_H
#define FERRY_TEST_FAKE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"

enum event_kind { EV_DELIVER, EV_EOS, EV_JOIN_DONE, EV_GET_ENDED, EV_UNBLOCKED };

struct event {
    enum event_kind kind;
    uint64_t sub, rid, tag;
    uint32_t attempt;
    enum ferry_code code;
    uint64_t clock;     /* order of the callbacks across every fake session */
    char text[64];      /* DELIVER: payload; EOS: queue name */
    char headers[64];   /* DELIVER: raw header bytes */
};

struct fake {
    struct broker *b;
    struct session *s;
    struct event *events; /* owned */
    size_t count, cap;
    bool closing;       /* set while broker_session_free runs: no callback may come */
    size_t throttle_at; /* nonzero: at this many events, the callback makes its
                         * session unwritable, as a connection whose output is
                         * full does (broker.h allows it) */
};

/* The callbacks fake_open registers, for tests that open sessions themselves. */
extern const struct session_ops fake_ops;

/* A session of b recording into f. */
void fake_open(struct fake *f, struct broker *b);
/* Frees the session (checking it gets no callback meanwhile) and the log. */
void fake_close(struct fake *f);
size_t count_of(const struct fake *f, enum event_kind kind);
/* The i-th event of that kind (it must exist). */
const struct event *nth(const struct fake *f, enum event_kind kind, size_t i);

struct ferry_bytes bytes(const char *s);
/* Copies src into dst as a NUL-terminated string, cut to cap - 1 bytes. */
void copy_text(char *dst, size_t cap, struct ferry_bytes src);
extern const struct ferry_bytes no_headers;

/* Each asserts the broker's answer is OK. */
void publish(struct broker *b, const char *queue, const char *payload);
void consume(struct fake *f, const char *queue, uint64_t sub, uint64_t credit);
void ack(struct fake *f, uint64_t tag);
struct queue_stats stats_of(struct broker *b, const char *queue);
void assert_delivery(const struct fake *f, size_t i, const char *payload, uint32_t attempt);

/* Publishes the strings as one batch, from session `from` (may be NULL). */
enum ferry_code publish_batch_from(struct broker *b, struct session *from, const char *queue,
                                   const char *const *payloads, size_t n, uint64_t *lsn);
enum ferry_code publish_batch(struct broker *b, const char *queue, const char *const *payloads,
                              size_t n, uint64_t *lsn);

/* A fake clock for the broker's time (broker_set_clock): it says fake_now. */
extern uint64_t fake_now;
uint64_t fake_clock(void *arg);
/* A broker on the fake clock, at 1,000,000 ms. */
struct broker *timed_broker(void);
/* Moves the fake clock on by ms and lets the broker do what is due. */
void advance(struct broker *b, uint64_t ms);

#endif
