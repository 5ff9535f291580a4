/*
 * test_hostile.c - a real ferryd against clients that break the protocol
 * on purpose, from raw sockets: random bytes, impossible lengths, frames
 * cut short, msgpack of the wrong shape, unknown types, bad acks, a frame
 * before the handshake, huge names, too many queues. Each case gets the
 * error docs/PROTOCOL.md names for it (code, fatal or not); a well-behaved
 * libferry client keeps its round trips through all of it; and ferryd's
 * memory does not grow with repeated rounds of bad clients.
 */
#include "harness.h"
#include "raw.h"

#include <check.h>
#include <ferry.h>
#include <ferry_proto.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Every test's ferryd: defaults, but a short handshake timeout, so that a
 * silent client before HELLO is closed within the test's time; and no
 * heartbeat, so that no PING comes between a raw client and the answer it
 * waits for however slow the machine (test_liveness.c covers heartbeats). */
#define HANDSHAKE_TIMEOUT_MS 500
static const char conf_text[] = "[limits]\nhandshake_timeout = 500ms\nheartbeat_timeout = 0s\n";

/* The default queue limit (ferryd.conf(5): max_queues). */
#define MAX_QUEUES_DEFAULT 10000

static struct ferryd daemon_;
static ferry_conn *good_; /* the well-behaved client, open through each test */
static unsigned good_seq_;

/* ---- the well-behaved client ----------------------------------------------- */

/* One publish with confirm and its way back: ferryd still serves others. */
static void assert_good_client_served(const char *after)
{
    char payload[64];
    int len = snprintf(payload, sizeof payload, "calm %u", good_seq_++);
    int rc = ferry_publish(good_, "calm", payload, (size_t)len, NULL, 0, FERRY_PUBLISH_CONFIRM);
    ck_assert_msg(rc == FERRY_OK, "after %s: publish: %s", after, ferry_strerror(rc));
    ferry_message *m = NULL;
    rc = ferry_get(good_, "calm", 5000, &m);
    ck_assert_msg(rc == FERRY_OK, "after %s: get: %s", after, ferry_strerror(rc));
    ck_assert_int_eq(m->len, (size_t)len);
    ck_assert_int_eq(memcmp(m->data, payload, (size_t)len), 0);
    ck_assert_int_eq(ferry_ack(good_, m->tag), FERRY_OK);
    ferry_message_free(m);
    ck_assert_msg(ferryd_alive(&daemon_), "ferryd died after %s", after);
}

static void setup(void)
{
    ck_assert_int_eq(ferryd_prepare(&daemon_), 0);
    ck_assert_int_eq(ferryd_write_conf(&daemon_, conf_text), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    ck_assert_int_eq(ferry_connect(daemon_.url, &good_), FERRY_OK);
    good_seq_ = 0;
    assert_good_client_served("start-up");
}

static void teardown(void)
{
    ferry_close(good_);
    good_ = NULL;
    ck_assert_msg(ferryd_stop(&daemon_) == 0, "ferryd did not exit cleanly (see above)");
}

static struct ferry_bytes bytes_of(const char *s)
{
    return (struct ferry_bytes){ (const uint8_t *)s, strlen(s) };
}

/* ---- random bytes ---------------------------------------------------------- */

static uint64_t rng_state_;

static uint64_t next_random(void)
{
    /* xorshift64*: reproducible from the seed printed below. */
    rng_state_ ^= rng_state_ >> 12;
    rng_state_ ^= rng_state_ << 25;
    rng_state_ ^= rng_state_ >> 27;
    return rng_state_ * 0x2545f4914f6cdd1dull;
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(next_random() >> 56);
}

/* Random bytes, before or after HELLO, with or without a correct length
 * prefix, then EOF. Whatever they are, ferryd answers with at most one
 * fatal error and closes; if they announce a body longer than what came,
 * the EOF closes the connection without an answer. */
static void one_random_client(int round)
{
    struct raw r;
    raw_open(&r, &daemon_);
    bool after_hello = round % 2 == 1;
    bool framed = round % 4 >= 2;
    if (after_hello)
        raw_hello(&r);
    uint8_t bytes[4096];
    size_t len = 1 + next_random() % sizeof bytes;
    fill_random(bytes, len);
    if (framed)
        raw_send_body(&r, bytes, len);
    else
        raw_write(&r, bytes, len);
    shutdown(r.fd, SHUT_WR);

    struct ferry_frame f;
    char what[64];
    snprintf(what, sizeof what, "random round %d", round);
    if (raw_next(&r, &f)) {
        ck_assert_msg(f.type == FERRY_F_ERROR && f.fatal, "%s: got %s", what,
                      ferry_frame_type_name(f.type));
        ck_assert_msg(f.code == FERRY_CODE_BAD_FRAME || f.code == FERRY_CODE_UNKNOWN_FRAME
                      || f.code == FERRY_CODE_FRAME_TOO_LARGE || f.code == FERRY_CODE_HANDSHAKE,
                      "%s: code %s", what, ferry_code_name(f.code));
        ck_assert_msg(!framed || f.code != FERRY_CODE_FRAME_TOO_LARGE, "%s: a 4 KiB frame too large", what);
        raw_expect_closed(&r, what);
    }
    raw_close(&r);
}

START_TEST(test_random_bytes_get_a_fatal_error_and_only_their_client_is_closed)
{
    uint64_t seed = 0x5eed0000u + (uint64_t)_i;
    rng_state_ = seed;
    for (int round = 0; round < 64; round++) {
        one_random_client(round);
        if (round % 16 == 15)
            assert_good_client_served("random bytes");
    }
}
END_TEST

/* ---- lengths ------------------------------------------------------------------- */

START_TEST(test_a_4_gib_length_prefix_is_refused_at_once_without_waiting_for_a_body)
{
    static const uint8_t huge[4] = { 0xff, 0xff, 0xff, 0xff };
    for (int after_hello = 0; after_hello <= 1; after_hello++) {
        struct raw r;
        raw_open(&r, &daemon_);
        if (after_hello)
            raw_hello(&r);
        long long t0 = harness_now_ms();
        raw_write(&r, huge, sizeof huge); /* and no body, no EOF */
        raw_expect_error(&r, FERRY_CODE_FRAME_TOO_LARGE, true, "4 GiB prefix");
        raw_expect_closed(&r, "4 GiB prefix");
        ck_assert_int_lt(harness_now_ms() - t0, 3000);
        raw_close(&r);
        assert_good_client_served("a 4 GiB prefix");
    }
}
END_TEST

START_TEST(test_an_empty_frame_is_a_fatal_bad_frame)
{
    static const uint8_t zero[4] = { 0, 0, 0, 0 };
    struct raw r;
    raw_open(&r, &daemon_);
    raw_hello(&r);
    raw_write(&r, zero, sizeof zero);
    raw_expect_error(&r, FERRY_CODE_BAD_FRAME, true, "empty body");
    raw_expect_closed(&r, "empty body");
    raw_close(&r);
    assert_good_client_served("an empty frame");
}
END_TEST

/* The start of a PUBLISH whose prefix announces `total` body bytes, of
 * which `sent` are sent; then silence. */
static void send_half_publish(struct raw *r, size_t total, size_t sent)
{
    uint8_t *body = calloc(1, total);
    ck_assert_ptr_nonnull(body);
    static const uint8_t head[] = { 0x83, 0xa1, 't', 10, 0xa1, 'q', 0xa4, 'h', 'a', 'l', 'f',
                                    0xa1, 'p', 0xc6 };
    memcpy(body, head, sizeof head);
    uint8_t prefix[4] = { (uint8_t)(total >> 24), (uint8_t)(total >> 16), (uint8_t)(total >> 8),
                          (uint8_t)total };
    raw_write(r, prefix, sizeof prefix);
    raw_write(r, body, sent);
    free(body);
}

/* After HELLO, a frame cut in the middle holds its connection open until
 * the heartbeat timeout (off here; test_liveness.c shows the close). What
 * it holds meanwhile is that peer's input buffer: the bytes sent plus one
 * read, never the size the prefix announced. */
START_TEST(test_half_a_frame_then_silence_holds_only_its_own_buffer)
{
    enum { CLIENTS = 100, FRAME = 60000, SENT = FRAME / 2 };
    long before = harness_rss_kb(daemon_.pid);
    static struct raw r[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        raw_open(&r[i], &daemon_);
        raw_hello(&r[i]);
        send_half_publish(&r[i], FRAME, SENT);
    }
    ck_assert(raw_silent_for(&r[0], 300));
    ck_assert(raw_silent_for(&r[CLIENTS - 1], 10));
    assert_good_client_served("half frames");
    long during = harness_rss_kb(daemon_.pid);

    struct ferry_stats *st;
    ck_assert_int_eq(ferry_stats(good_, "calm", &st), FERRY_OK);
    ck_assert_uint_eq(st->connections, CLIENTS + 1);
    ferry_stats_free(st);

    /* Each holds at most its bytes plus one 64 KiB read; allow twice that. */
    long bound_kb = CLIENTS * 2 * (SENT + 65536) / 1024;
    printf("hostile: %d half frames of %d bytes: ferryd VmRSS %ld -> %ld KiB (bound +%ld)\n",
           CLIENTS, SENT, before, during, bound_kb);
    fflush(stdout);
    if (harness_rss_reliable())
        ck_assert_int_le(during - before, bound_kb);

    for (int i = 0; i < CLIENTS; i++)
        raw_close(&r[i]);
    assert_good_client_served("half frames closed");
}
END_TEST

/* Before HELLO, the same silence ends at the handshake timeout. */
START_TEST(test_half_a_frame_before_hello_is_closed_by_the_handshake_timeout)
{
    struct raw r;
    raw_open(&r, &daemon_);
    long long t0 = harness_now_ms();
    send_half_publish(&r, 1000, 500);
    raw_expect_error(&r, FERRY_CODE_HANDSHAKE, true, "silence before HELLO");
    long long waited = harness_now_ms() - t0;
    raw_expect_closed(&r, "silence before HELLO");
    raw_close(&r);
    ck_assert_int_ge(waited, HANDSHAKE_TIMEOUT_MS - 100);
    ck_assert_int_lt(waited, HANDSHAKE_TIMEOUT_MS + 5000);
    assert_good_client_served("a handshake timeout");
}
END_TEST

/* ---- the wrong shape ----------------------------------------------------- */

/* One body each; every one is valid msgpack (or nearly) but not a frame. */
static const struct shape_case {
    const char *name;
    uint8_t body[24];
    size_t len;
} wrong_shapes[] = {
    { "an array", { 0x92, 0x01, 0x02 }, 3 },
    { "a str", { 0xa3, 'a', 'b', 'c' }, 4 },
    { "nil", { 0xc0 }, 1 },
    { "an empty map", { 0x80 }, 1 },
    { "'q' before 't'", { 0x82, 0xa1, 'q', 0xa1, 'a', 0xa1, 't', 10 }, 8 },
    { "'t' a str", { 0x81, 0xa1, 't', 0xa1, 'a' }, 5 },
    { "a key that is an int", { 0x82, 0xa1, 't', 4, 0x01, 0x02 }, 6 },
    { "'q' an int", { 0x83, 0xa1, 't', 10, 0xa1, 'q', 5, 0xa1, 'p', 0xc4, 0 }, 11 },
    { "'p' a str", { 0x83, 0xa1, 't', 10, 0xa1, 'q', 0xa1, 'a', 0xa1, 'p', 0xa1, 'x' }, 12 },
    { "a duplicate key",
      { 0x84, 0xa1, 't', 10, 0xa1, 'q', 0xa1, 'a', 0xa1, 'q', 0xa1, 'b', 0xa1, 'p', 0xc4, 0 }, 16 },
    { "bytes after the map", { 0x81, 0xa1, 't', 4, 0xc0 }, 5 },
    { "'tags' not an array", { 0x82, 0xa1, 't', 23, 0xa4, 't', 'a', 'g', 's', 5 }, 10 },
    { "no tags", { 0x82, 0xa1, 't', 23, 0xa4, 't', 'a', 'g', 's', 0x90 }, 10 },
    { "a negative rid", { 0x82, 0xa1, 't', 4, 0xa3, 'r', 'i', 'd', 0xff }, 9 },
    { "a header key that is an int",
      { 0x84, 0xa1, 't', 10, 0xa1, 'q', 0xa1, 'a', 0xa1, 'h', 0x81, 0x01, 0xa1, 'x', 0xa1, 'p',
        0xc4, 0 }, 18 },
    { "nesting 9 deep", { 0x82, 0xa1, 't', 4, 0xa1, 'x', 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
                          0x91, 0x91, 0x91, 0x01 }, 16 },
    { "the byte 0xc1", { 0x81, 0xa1, 't', 0xc1 }, 4 },
    { "a map cut short", { 0x83, 0xa1, 't', 10, 0xa1, 'q' }, 6 },
    { "a required key missing", { 0x82, 0xa1, 't', 10, 0xa1, 'q', 0xa1, 'a' }, 8 },
};

START_TEST(test_valid_msgpack_of_the_wrong_shape_is_a_fatal_bad_frame)
{
    for (size_t i = 0; i < sizeof wrong_shapes / sizeof wrong_shapes[0]; i++) {
        const struct shape_case *c = &wrong_shapes[i];
        struct raw r;
        raw_open(&r, &daemon_);
        raw_hello(&r);
        raw_send_body(&r, c->body, c->len);
        raw_expect_error(&r, FERRY_CODE_BAD_FRAME, true, c->name);
        raw_expect_closed(&r, c->name);
        raw_close(&r);
        assert_good_client_served(c->name);
    }
}
END_TEST

/* ---- frame types ----------------------------------------------------------------- */

START_TEST(test_an_unknown_frame_type_is_a_fatal_unknown_frame)
{
    static const uint8_t t99[] = { 0x81, 0xa1, 't', 99 };
    static const uint8_t t0[] = { 0x81, 0xa1, 't', 0 };
    static const uint8_t t_big[] = { 0x81, 0xa1, 't', 0xcf, 1, 0, 0, 0, 0, 0, 0, 10 };
    const struct { const char *name; const uint8_t *body; size_t len; } cases[] = {
        { "t = 99", t99, sizeof t99 },
        { "t = 0", t0, sizeof t0 },
        { "t = 2^56 + 10", t_big, sizeof t_big },
    };
    for (int before_hello = 0; before_hello <= 1; before_hello++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            struct raw r;
            raw_open(&r, &daemon_);
            if (!before_hello)
                raw_hello(&r);
            raw_send_body(&r, cases[i].body, cases[i].len);
            /* The decoder refuses an unknown type before the handshake
             * state is looked at, so it is UNKNOWN_FRAME either way. */
            raw_expect_error(&r, FERRY_CODE_UNKNOWN_FRAME, true, cases[i].name);
            raw_expect_closed(&r, cases[i].name);
            raw_close(&r);
        }
    }
    assert_good_client_served("unknown frame types");
}
END_TEST

START_TEST(test_a_server_frame_sent_by_a_client_is_a_fatal_unknown_frame)
{
    static const uint64_t one[] = { 1 };
    const struct ferry_frame frames[] = {
        { .type = FERRY_F_WELCOME, .version = 1, .name = bytes_of("me"), .max_frame = 4096 },
        { .type = FERRY_F_OK, .rid = 1 },
        { .type = FERRY_F_CONFIRM, .uints = one, .uint_count = 1 },
        { .type = FERRY_F_DELIVER, .sub = 1, .tag = 1, .attempt = 1, .payload = bytes_of("x") },
        { .type = FERRY_F_EOS, .sub = 1, .queue = bytes_of("calm") },
        { .type = FERRY_F_ERROR, .code = 1, .text = bytes_of("no") },
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        struct raw r;
        raw_open(&r, &daemon_);
        raw_hello(&r);
        raw_send(&r, &frames[i]);
        const char *name = ferry_frame_type_name(frames[i].type);
        raw_expect_error(&r, FERRY_CODE_UNKNOWN_FRAME, true, name);
        raw_expect_closed(&r, name);
        raw_close(&r);
    }
    assert_good_client_served("server frames from a client");
}
END_TEST

/* ---- the handshake ------------------------------------------------------------ */

START_TEST(test_a_publish_before_the_handshake_is_a_fatal_handshake_error)
{
    struct raw r;
    raw_open(&r, &daemon_);
    struct ferry_frame publish = { .type = FERRY_F_PUBLISH, .queue = bytes_of("calm"),
                                   .payload = bytes_of("early"), .id = 1, .has_id = true };
    raw_send(&r, &publish);
    raw_expect_error(&r, FERRY_CODE_HANDSHAKE, true, "publish before HELLO");
    raw_expect_closed(&r, "publish before HELLO");
    raw_close(&r);

    /* Nothing of it was queued. */
    struct ferry_stats *st;
    ck_assert_int_eq(ferry_stats(good_, "calm", &st), FERRY_OK);
    ck_assert_uint_eq(st->queues[0].depth, 0);
    ferry_stats_free(st);
    assert_good_client_served("a publish before HELLO");
}
END_TEST

START_TEST(test_a_second_hello_and_a_wrong_version_are_fatal)
{
    struct raw r;
    raw_open(&r, &daemon_);
    raw_hello(&r);
    struct ferry_frame hello = { .type = FERRY_F_HELLO, .version = FERRY_PROTO_VERSION };
    raw_send(&r, &hello);
    raw_expect_error(&r, FERRY_CODE_HANDSHAKE, true, "a second HELLO");
    raw_expect_closed(&r, "a second HELLO");
    raw_close(&r);

    raw_open(&r, &daemon_);
    hello.version = 2;
    raw_send(&r, &hello);
    raw_expect_error(&r, FERRY_CODE_VERSION, true, "HELLO v2");
    raw_expect_closed(&r, "HELLO v2");
    raw_close(&r);
    assert_good_client_served("bad HELLOs");
}
END_TEST

/* ---- acknowledgements ------------------------------------------------------------ */

/* Publishes one message to `queue` and takes it with a GET: its tag. */
static uint64_t take_one(struct raw *r, const char *queue, uint64_t rid)
{
    struct ferry_frame publish = { .type = FERRY_F_PUBLISH, .queue = bytes_of(queue),
                                   .payload = bytes_of("m") };
    raw_send(r, &publish);
    struct ferry_frame get = { .type = FERRY_F_GET, .rid = rid, .queue = bytes_of(queue),
                               .wait_ms = 5000 };
    raw_send(r, &get);
    struct ferry_frame f;
    ck_assert(raw_next(r, &f));
    ck_assert_msg(f.type == FERRY_F_DELIVER && f.rid == rid, "got %s", ferry_frame_type_name(f.type));
    return f.tag;
}

static void send_ack(struct raw *r, uint64_t tag)
{
    uint64_t tags[1] = { tag };
    struct ferry_frame ack = { .type = FERRY_F_ACK, .uints = tags, .uint_count = 1 };
    raw_send(r, &ack);
}

static struct ferry_queue_stats queue_stats(const char *queue)
{
    struct ferry_stats *st;
    ck_assert_int_eq(ferry_stats(good_, queue, &st), FERRY_OK);
    ck_assert_uint_eq(st->count, 1);
    struct ferry_queue_stats qs = {
        .depth = st->queues[0].depth, .inflight = st->queues[0].inflight,
        .acked = st->queues[0].acked,
    };
    ferry_stats_free(st);
    return qs;
}

START_TEST(test_an_ack_of_an_unknown_tag_is_refused_and_the_connection_stays)
{
    struct raw r;
    raw_open(&r, &daemon_);
    raw_hello(&r);
    uint64_t tags[3] = { 12345, 0, UINT64_MAX };
    struct ferry_frame ack = { .type = FERRY_F_ACK, .uints = tags, .uint_count = 3 };
    raw_send(&r, &ack);
    raw_expect_error(&r, FERRY_CODE_UNKNOWN_TAG, false, "ack of unknown tags");
    struct ferry_frame nack = { .type = FERRY_F_NACK, .uints = tags, .uint_count = 1, .requeue = true };
    raw_send(&r, &nack);
    raw_expect_error(&r, FERRY_CODE_UNKNOWN_TAG, false, "nack of an unknown tag");
    raw_expect_alive(&r, 7, "after unknown tags");
    raw_close(&r);
    assert_good_client_served("unknown tags");
}
END_TEST

START_TEST(test_an_ack_given_twice_is_refused_the_second_time)
{
    struct raw r;
    raw_open(&r, &daemon_);
    raw_hello(&r);
    uint64_t tag = take_one(&r, "twice", 1);
    send_ack(&r, tag);
    raw_expect_alive(&r, 2, "after the first ack"); /* no error came before the PONG */
    send_ack(&r, tag);
    raw_expect_error(&r, FERRY_CODE_UNKNOWN_TAG, false, "the second ack");
    raw_expect_alive(&r, 3, "after the second ack");
    struct ferry_queue_stats qs = queue_stats("twice");
    ck_assert_uint_eq(qs.acked, 1);
    ck_assert_uint_eq(qs.inflight, 0);
    raw_close(&r);
    assert_good_client_served("an ack twice");
}
END_TEST

START_TEST(test_an_ack_of_another_connections_tag_is_refused_and_the_delivery_stays)
{
    struct raw owner, other;
    raw_open(&owner, &daemon_);
    raw_hello(&owner);
    raw_open(&other, &daemon_);
    raw_hello(&other);
    uint64_t tag = take_one(&owner, "theirs", 1);

    /* Tags count from 1 on each connection: `other` has none in flight. */
    send_ack(&other, tag);
    raw_expect_error(&other, FERRY_CODE_UNKNOWN_TAG, false, "ack of another's tag");
    uint64_t tags[1] = { tag };
    struct ferry_frame nack = { .type = FERRY_F_NACK, .uints = tags, .uint_count = 1 };
    raw_send(&other, &nack);
    raw_expect_error(&other, FERRY_CODE_UNKNOWN_TAG, false, "nack of another's tag");
    raw_expect_alive(&other, 2, "the other connection");
    struct ferry_queue_stats qs = queue_stats("theirs");
    ck_assert_uint_eq(qs.inflight, 1);
    ck_assert_uint_eq(qs.acked, 0);

    /* The owner still settles it. */
    send_ack(&owner, tag);
    raw_expect_alive(&owner, 2, "the owner");
    qs = queue_stats("theirs");
    ck_assert_uint_eq(qs.inflight, 0);
    ck_assert_uint_eq(qs.acked, 1);
    raw_close(&other);
    raw_close(&owner);
    assert_good_client_served("an ack of another's tag");
}
END_TEST

/* ---- names and queues --------------------------------------------------------------- */

START_TEST(test_a_queue_name_of_10000_bytes_is_refused_with_bad_name)
{
    enum { LONG = 10000 };
    char *name = malloc(LONG + 1);
    ck_assert_ptr_nonnull(name);
    memset(name, 'n', LONG);
    name[LONG] = '\0';
    struct ferry_bytes q = { (const uint8_t *)name, LONG };

    struct raw r;
    raw_open(&r, &daemon_);
    raw_hello(&r);
    struct ferry_frame publish = { .type = FERRY_F_PUBLISH, .queue = q, .payload = bytes_of("x"),
                                   .id = 5, .has_id = true };
    raw_send(&r, &publish);
    struct ferry_frame e = raw_expect_error(&r, FERRY_CODE_BAD_NAME, false, "publish");
    ck_assert(e.has_id);
    ck_assert_uint_eq(e.id, 5);

    const struct ferry_frame requests[] = {
        { .type = FERRY_F_DECLARE, .rid = 6, .queue = q },
        { .type = FERRY_F_CONSUME, .rid = 7, .queue = q, .sub = 1, .credit = 1 },
        { .type = FERRY_F_GET, .rid = 8, .queue = q, .wait_ms = 100 },
        { .type = FERRY_F_END, .rid = 9, .queue = q },
        { .type = FERRY_F_JOIN, .rid = 10, .queue = q },
    };
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        raw_send(&r, &requests[i]);
        const char *what = ferry_frame_type_name(requests[i].type);
        e = raw_expect_error(&r, FERRY_CODE_BAD_NAME, false, what);
        ck_assert_uint_eq(e.rid, requests[i].rid);
    }
    /* A short name with a forbidden character is refused the same way. */
    struct ferry_frame declare = { .type = FERRY_F_DECLARE, .rid = 11, .queue = bytes_of("a b") };
    raw_send(&r, &declare);
    raw_expect_error(&r, FERRY_CODE_BAD_NAME, false, "a name with a space");
    raw_expect_alive(&r, 12, "after bad names");
    raw_close(&r);
    free(name);
    assert_good_client_served("bad names");
}
END_TEST

/* Sends DECLARE (or DELETE) of "q-FIRST".."q-(FIRST+COUNT-1)" in one
 * write, rids FIRST+1..; reads the answers: how many were OK, and the
 * code of the last. */
static size_t queue_storm(struct raw *r, enum ferry_frame_type type, int first, int count,
                          uint32_t *last_code)
{
    struct ferry_buf out = { 0 };
    for (int i = first; i < first + count; i++) {
        char name[32];
        snprintf(name, sizeof name, "q-%05d", i);
        struct ferry_frame f = { .type = type, .rid = (uint64_t)i + 1, .queue = bytes_of(name) };
        ck_assert_int_eq(ferry_frame_encode(&out, &f), 0);
    }
    ck_assert(raw_write(r, out.data + out.off, ferry_buf_pending(&out)));
    ferry_buf_free(&out);
    size_t ok = 0;
    for (int i = first; i < first + count; i++) {
        struct ferry_frame f;
        ck_assert(raw_next(r, &f));
        ck_assert_uint_eq(f.rid, (uint64_t)i + 1); /* answered in order */
        ck_assert(f.type == FERRY_F_OK || f.type == FERRY_F_ERROR);
        *last_code = f.type == FERRY_F_OK ? FERRY_CODE_OK : f.code;
        if (f.type == FERRY_F_ERROR)
            ck_assert_msg(!f.fatal, "queue %d: fatal %s", i, ferry_code_name(f.code));
        ok += f.type == FERRY_F_OK;
    }
    return ok;
}

static uint64_t queue_count(void)
{
    struct ferry_stats *st;
    ck_assert_int_eq(ferry_stats(good_, "calm", &st), FERRY_OK);
    uint64_t n = st->queue_total;
    ferry_stats_free(st);
    return n;
}

START_TEST(test_the_queue_past_the_default_limit_of_10000_is_refused_with_limit)
{
    struct raw r;
    raw_open(&r, &daemon_);
    raw_hello(&r);
    int existing = (int)queue_count(); /* "calm" counts */
    int room = MAX_QUEUES_DEFAULT - existing;
    uint32_t last = 0;
    size_t ok = queue_storm(&r, FERRY_F_DECLARE, 0, room + 1, &last);
    ck_assert_uint_eq(ok, (size_t)room);
    ck_assert_msg(last == FERRY_CODE_LIMIT, "the queue past the limit got %s", ferry_code_name(last));
    ck_assert_uint_eq(queue_count(), MAX_QUEUES_DEFAULT);
    raw_expect_alive(&r, 1u << 30, "at the queue limit");
    /* An existing queue still works; a new one is refused. */
    assert_good_client_served("10,000 queues");
    ck_assert_int_eq(ferry_declare(good_, "one-more"), FERRY_ESERVER);
    ck_assert_int_eq(ferry_server_error(NULL), FERRY_CODE_LIMIT);

    ck_assert_uint_eq(queue_storm(&r, FERRY_F_DELETE, 0, room, &last), (size_t)room);
    ck_assert_uint_eq(queue_count(), (uint64_t)existing);
    ck_assert_int_eq(ferry_declare(good_, "one-more"), FERRY_OK);
    raw_close(&r);
}
END_TEST

/* A STATS reply lists at most 65,536 queues (PROTOCOL.md, "Limits"). */
#define STATS_QUEUES_MAX 65536

START_TEST(test_stats_of_more_queues_than_a_reply_may_list_is_refused_with_limit)
{
    /* Restarted with room for more queues than one reply may list. */
    ferry_close(good_);
    good_ = NULL;
    ck_assert_int_eq(ferryd_terminate(&daemon_), 0);
    char conf[256];
    snprintf(conf, sizeof conf, "%smax_queues = %d\n", conf_text, STATS_QUEUES_MAX + 10);
    ck_assert_int_eq(ferryd_write_conf(&daemon_, conf), 0);
    ck_assert_int_eq(ferryd_restart(&daemon_, NULL), 0);
    ck_assert_int_eq(ferry_connect(daemon_.url, &good_), FERRY_OK);
    assert_good_client_served("a restart");

    struct raw r;
    raw_open(&r, &daemon_);
    raw_hello(&r);
    uint32_t last = 0;
    int room = STATS_QUEUES_MAX - (int)queue_count(); /* "calm" counts */
    ck_assert_uint_eq(queue_storm(&r, FERRY_F_DECLARE, 0, room, &last), (size_t)room);
    struct ferry_stats *st = NULL;
    ck_assert_int_eq(ferry_stats(good_, NULL, &st), FERRY_OK); /* exactly as many: listed */
    ck_assert_uint_eq(st->count, STATS_QUEUES_MAX);
    ferry_stats_free(st);

    ck_assert_uint_eq(queue_storm(&r, FERRY_F_DECLARE, room, 1, &last), 1);
    st = NULL;
    ck_assert_int_eq(ferry_stats(good_, NULL, &st), FERRY_ESERVER);
    ck_assert_int_eq(ferry_server_error(NULL), FERRY_CODE_LIMIT);
    ck_assert_int_eq(ferry_stats(good_, "calm", &st), FERRY_OK); /* one queue still answers */
    ck_assert_uint_eq(st->queue_total, STATS_QUEUES_MAX + 1);
    ferry_stats_free(st);
    raw_expect_alive(&r, 1u << 30, "after STATS");
    raw_close(&r);
    assert_good_client_served("STATS of too many queues");
}
END_TEST

/* Subscriptions hold server memory: one connection may have 10,000
 * (requests.c), whatever the queue and consumer limits allow. */
#define SUBSCRIPTIONS_PER_CONNECTION 10000

START_TEST(test_the_subscription_past_10000_on_one_connection_is_refused_with_limit)
{
    struct raw r;
    raw_open(&r, &daemon_);
    raw_hello(&r);
    struct ferry_buf out = { 0 };
    for (uint64_t sub = 1; sub <= SUBSCRIPTIONS_PER_CONNECTION + 1; sub++) {
        char queue[32];
        snprintf(queue, sizeof queue, "s-%d", (int)(sub % 3)); /* under 10,000 per queue */
        struct ferry_frame f = { .type = FERRY_F_CONSUME, .rid = sub, .sub = sub, .credit = 1,
                                 .queue = bytes_of(queue) };
        ck_assert_int_eq(ferry_frame_encode(&out, &f), 0);
    }
    ck_assert(raw_write(&r, out.data + out.off, ferry_buf_pending(&out)));
    ferry_buf_free(&out);
    for (uint64_t sub = 1; sub <= SUBSCRIPTIONS_PER_CONNECTION; sub++) {
        struct ferry_frame f;
        ck_assert(raw_next(&r, &f));
        ck_assert_msg(f.type == FERRY_F_OK && f.rid == sub, "subscription %llu: %s %s",
                      (unsigned long long)sub, ferry_frame_type_name(f.type), ferry_code_name(f.code));
    }
    struct ferry_frame e = raw_expect_error(&r, FERRY_CODE_LIMIT, false, "subscription 10,001");
    ck_assert_uint_eq(e.rid, SUBSCRIPTIONS_PER_CONNECTION + 1);

    /* One cancelled, one more fits. */
    struct ferry_frame cancel = { .type = FERRY_F_CANCEL, .rid = 1u << 20, .sub = 1 };
    raw_send(&r, &cancel);
    struct ferry_frame f;
    ck_assert(raw_next(&r, &f));
    ck_assert_int_eq(f.type, FERRY_F_OK);
    struct ferry_frame consume = { .type = FERRY_F_CONSUME, .rid = (1u << 20) + 1,
                                   .sub = 1u << 20, .credit = 1, .queue = bytes_of("s-0") };
    raw_send(&r, &consume);
    ck_assert(raw_next(&r, &f));
    ck_assert_msg(f.type == FERRY_F_OK, "after a cancel: %s", ferry_frame_type_name(f.type));
    raw_close(&r);
    assert_good_client_served("10,000 subscriptions");
}
END_TEST

/* ---- memory ---------------------------------------------------------------------------------- */

/* One of each kind of bad client, all gone when it returns. */
static void hostile_round(int round)
{
    rng_state_ = 0xabcd0000u + (uint64_t)round;
    for (int i = 0; i < 8; i++)
        one_random_client(i);
    for (size_t i = 0; i < sizeof wrong_shapes / sizeof wrong_shapes[0]; i++) {
        struct raw r;
        raw_open(&r, &daemon_);
        raw_hello(&r);
        raw_send_body(&r, wrong_shapes[i].body, wrong_shapes[i].len);
        raw_expect_error(&r, FERRY_CODE_BAD_FRAME, true, wrong_shapes[i].name);
        raw_close(&r);
    }
    /* Half frames, deliveries left in flight, waiting GETs and JOINs, a
     * subscription: all dropped by closing. */
    struct raw r[16];
    for (int i = 0; i < 16; i++) {
        raw_open(&r[i], &daemon_);
        raw_hello(&r[i]);
        char queue[32];
        snprintf(queue, sizeof queue, "held-%d", i);
        take_one(&r[i], queue, 1);
        struct ferry_frame get = { .type = FERRY_F_GET, .rid = 2, .queue = bytes_of(queue),
                                   .wait_ms = 60000 };
        struct ferry_frame join = { .type = FERRY_F_JOIN, .rid = 3, .queue = bytes_of(queue) };
        struct ferry_frame consume = { .type = FERRY_F_CONSUME, .rid = 4, .queue = bytes_of(queue),
                                       .sub = 1, .credit = 10 };
        raw_send(&r[i], &get);
        raw_send(&r[i], &join);
        raw_send(&r[i], &consume);
        send_half_publish(&r[i], 60000, 20000);
    }
    for (int i = 0; i < 16; i++)
        raw_close(&r[i]);
    /* A thousand queues made and deleted. */
    struct raw q;
    raw_open(&q, &daemon_);
    raw_hello(&q);
    uint32_t last;
    queue_storm(&q, FERRY_F_DECLARE, 0, 1000, &last);
    queue_storm(&q, FERRY_F_DELETE, 0, 1000, &last);
    raw_close(&q);
    for (int i = 0; i < 16; i++) {
        char queue[32];
        snprintf(queue, sizeof queue, "held-%d", i);
        ck_assert_int_eq(ferry_delete(good_, queue), FERRY_OK);
    }
    assert_good_client_served("a hostile round");
}

/* Waits until only the good client is connected (closing takes a turn). */
static void wait_for_connections(uint64_t n)
{
    long long deadline = harness_now_ms() + 10000;
    for (;;) {
        struct ferry_stats *st;
        ck_assert_int_eq(ferry_stats(good_, "calm", &st), FERRY_OK);
        uint64_t now = st->connections;
        ferry_stats_free(st);
        if (now == n)
            return;
        ck_assert_msg(harness_now_ms() < deadline, "%llu connections left, expected %llu",
                      (unsigned long long)now, (unsigned long long)n);
        usleep(10000);
    }
}

START_TEST(test_memory_does_not_grow_with_rounds_of_hostile_clients)
{
    enum { ROUNDS = 8 };
    long rss[ROUNDS + 1];
    rss[0] = harness_rss_kb(daemon_.pid);
    for (int i = 1; i <= ROUNDS; i++) {
        hostile_round(i);
        wait_for_connections(1);
        rss[i] = harness_rss_kb(daemon_.pid);
    }
    printf("hostile: ferryd VmRSS (KiB) at start, then after each round:");
    for (int i = 0; i <= ROUNDS; i++)
        printf(" %ld", rss[i]);
    printf("\n");
    fflush(stdout); /* before a failed assertion ends this process */
    /* The first half warms the allocator up (its free lists and
     * fragments settle); in the second half a leak would add its share
     * each round. 2 MiB of slack for the allocator's own moods, well under
     * what four leaked rounds would hold (16 half frames alone are
     * 320 KiB a round, 1,000 queues more). */
    long growth = rss[ROUNDS] - rss[ROUNDS / 2];
    if (harness_rss_reliable())
        ck_assert_msg(growth < 2048, "ferryd grew by %ld KiB over the last %d rounds", growth,
                      ROUNDS / 2);
}
END_TEST

static Suite *hostile_suite(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("raw sockets");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, harness_valgrind() ? 600 : 120);
    tcase_add_loop_test(tc, test_random_bytes_get_a_fatal_error_and_only_their_client_is_closed, 0, 2);
    tcase_add_test(tc, test_a_4_gib_length_prefix_is_refused_at_once_without_waiting_for_a_body);
    tcase_add_test(tc, test_an_empty_frame_is_a_fatal_bad_frame);
    tcase_add_test(tc, test_half_a_frame_then_silence_holds_only_its_own_buffer);
    tcase_add_test(tc, test_half_a_frame_before_hello_is_closed_by_the_handshake_timeout);
    tcase_add_test(tc, test_valid_msgpack_of_the_wrong_shape_is_a_fatal_bad_frame);
    tcase_add_test(tc, test_an_unknown_frame_type_is_a_fatal_unknown_frame);
    tcase_add_test(tc, test_a_server_frame_sent_by_a_client_is_a_fatal_unknown_frame);
    tcase_add_test(tc, test_a_publish_before_the_handshake_is_a_fatal_handshake_error);
    tcase_add_test(tc, test_a_second_hello_and_a_wrong_version_are_fatal);
    tcase_add_test(tc, test_an_ack_of_an_unknown_tag_is_refused_and_the_connection_stays);
    tcase_add_test(tc, test_an_ack_given_twice_is_refused_the_second_time);
    tcase_add_test(tc, test_an_ack_of_another_connections_tag_is_refused_and_the_delivery_stays);
    tcase_add_test(tc, test_a_queue_name_of_10000_bytes_is_refused_with_bad_name);
    tcase_add_test(tc, test_the_queue_past_the_default_limit_of_10000_is_refused_with_limit);
    tcase_add_test(tc, test_the_subscription_past_10000_on_one_connection_is_refused_with_limit);
    tcase_add_test(tc, test_stats_of_more_queues_than_a_reply_may_list_is_refused_with_limit);
    tcase_add_test(tc, test_memory_does_not_grow_with_rounds_of_hostile_clients);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* meson sets MALLOC_PERTURB_, with which glibc fills every allocation
     * and every free: ferryd's VmRSS would then count each of its 64 KiB
     * read buffers whole, measuring the fill rather than ferryd. */
    unsetenv("MALLOC_PERTURB_");
    SRunner *sr = srunner_create(hostile_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
