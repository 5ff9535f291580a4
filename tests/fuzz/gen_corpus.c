/*
 * gen_corpus.c - writes the seed corpora of the wire fuzz targets with
 * ferry's own encoder: valid frames of every type, and conversations that
 * reach deep states (a subscription with deliveries in flight, a waiting
 * GET, an ended queue). Usage: fuzz_gen_corpus DIR (tests/fuzz/corpus);
 * it writes DIR/frame, DIR/client_inbound and DIR/conn. Run it again after
 * a codec change. The conf file seeds (DIR/config) are written by hand.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ferry_proto.h"

static const char *root;

static struct ferry_bytes str(const char *s)
{
    return (struct ferry_bytes){ (const uint8_t *)s, strlen(s) };
}

static void append(struct ferry_buf *out, const struct ferry_frame *f)
{
    if (ferry_frame_encode(out, f) != 0) {
        fprintf(stderr, "gen-corpus: cannot encode type %d\n", (int)f->type);
        exit(1);
    }
}

/* Writes DIR/target/name: an optional selector byte, then the buffer. */
static void save(const char *target, const char *name, int selector, const struct ferry_buf *b)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        perror(path);
        exit(1);
    }
    if (selector >= 0)
        fputc(selector, fp);
    fwrite(b->data + b->off, 1, ferry_buf_pending(b), fp);
    if (fclose(fp) != 0) {
        perror(path);
        exit(1);
    }
}

/* Saves one frame alone. */
static void save_frame(const char *target, const char *name, int selector,
                       const struct ferry_frame *f)
{
    struct ferry_buf b = { 0 };
    append(&b, f);
    save(target, name, selector, &b);
    ferry_buf_free(&b);
}

/* ---- one frame of every type ---------------------------------------------- */

static struct ferry_buf trace_headers(void)
{
    struct ferry_buf h = { 0 };
    struct ferry_kv kv[2] = { { str("trace"), str("a1b2") }, { str("kind"), str("resize") } };
    if (ferry_headers_encode(&h, kv, 2) != 0)
        exit(1);
    return h;
}

static void every_frame_type(void)
{
    struct ferry_buf hb = trace_headers();
    struct ferry_bytes h = { hb.data + hb.off, ferry_buf_pending(&hb) };
    static const uint64_t ids[] = { 1, 2, 7 };
    struct ferry_item items[2] = { { str("one"), { NULL, 0 }, false, 0, 1000 }, { str("two"), h, true, 9, 0 } };
    struct ferry_queue_stats qs[2] = {
        { .name = str("fuzz"), .depth = 8, .inflight = 2, .consumers = 1, .published = 150,
          .delivered = 145, .acked = 140, .redelivered = 3, .bytes = 1200,
          .max_length = 1000, .overflow = str("drop-oldest"), .dropped_oldest = 4,
          .depth_by_priority = { 5, 0, 0, 0, 0, 2, 0, 0, 0, 1 }, .expired = 3 },
        { .name = str("other"), .ended = true, .overflow = str("block"), .blocked = 2 },
    };
    struct ferry_server_stats ss = {
        .connections = 2, .queues = 2, .uptime_ms = 3600000, .messages = 10, .bytes = 1200,
        .topic_publishes = 40, .unroutable = 1, .copies = 78, .bindings = 2,
        .memory = 1776, .max_memory = 1073741824, .parked = 1,
    };
    const struct ferry_bytes patterns[] = { str("f.#"), str("*.x") };
    const struct { const char *name; struct ferry_frame f; } frames[] = {
        { "hello", { .type = FERRY_F_HELLO, .version = 1, .name = str("ferry-cli") } },
        { "welcome", { .type = FERRY_F_WELCOME, .version = 1, .name = str("ferryd 0.1.0"),
                       .max_frame = FERRY_FRAME_MAX_DEFAULT, .heartbeat_ms = 30000 } },
        { "error-refusing-publish", { .type = FERRY_F_ERROR, .code = FERRY_CODE_QUEUE_FULL,
                                      .text = str("queue full"), .id = 1, .has_id = true } },
        { "error-fatal", { .type = FERRY_F_ERROR, .code = FERRY_CODE_BAD_FRAME,
                           .text = str("field 'q': expected str"), .fatal = true } },
        { "error-to-request", { .type = FERRY_F_ERROR, .code = FERRY_CODE_NOT_FOUND,
                                .text = str("no such queue"), .rid = 2 } },
        { "ping", { .type = FERRY_F_PING, .rid = 9 } },
        { "pong", { .type = FERRY_F_PONG, .rid = 9 } },
        { "ok", { .type = FERRY_F_OK, .rid = 2 } },
        { "ok-purge", { .type = FERRY_F_OK, .rid = 2, .count = 12 } },
        { "ok-get-empty", { .type = FERRY_F_OK, .rid = 2, .empty = true } },
        { "ok-stats", { .type = FERRY_F_OK, .rid = 2, .server_stats = &ss, .stats = qs,
                        .stats_count = 2 } },
        { "publish", { .type = FERRY_F_PUBLISH, .queue = str("fuzz"), .headers = h, .id = 7,
                       .has_id = true, .payload = str("hello") } },
        { "publish-batch", { .type = FERRY_F_PUBLISH_BATCH, .queue = str("fuzz"), .id = 8,
                             .has_id = true, .items = items, .item_count = 2 } },
        { "confirm", { .type = FERRY_F_CONFIRM, .uints = ids, .uint_count = 3 } },
        { "consume", { .type = FERRY_F_CONSUME, .rid = 1, .queue = str("fuzz"), .sub = 1,
                       .credit = 100 } },
        { "credit", { .type = FERRY_F_CREDIT, .sub = 1, .credit = 50 } },
        { "deliver-sub", { .type = FERRY_F_DELIVER, .sub = 1, .tag = 1, .attempt = 1,
                           .headers = h, .payload = str("hello") } },
        { "deliver-get", { .type = FERRY_F_DELIVER, .rid = 2, .tag = 5, .attempt = 2,
                           .payload = str("again") } },
        { "ack", { .type = FERRY_F_ACK, .uints = ids, .uint_count = 3 } },
        { "nack", { .type = FERRY_F_NACK, .uints = ids, .uint_count = 1, .requeue = false } },
        { "nack-delay", { .type = FERRY_F_NACK, .uints = ids, .uint_count = 1, .requeue = true,
                          .delay_ms = 500 } },
        { "consume-deadline", { .type = FERRY_F_CONSUME, .rid = 1, .queue = str("fuzz"), .sub = 2,
                                .credit = 10, .deadline_ms = 30000 } },
        { "touch", { .type = FERRY_F_TOUCH, .uints = ids, .uint_count = 2, .deadline_ms = 60000 } },
        { "peek", { .type = FERRY_F_PEEK, .rid = 20, .queue = str("fuzz.dead"), .count = 10 } },
        { "ok-peek", { .type = FERRY_F_OK, .rid = 20, .items = items, .item_count = 2 } },
        { "move", { .type = FERRY_F_MOVE, .rid = 21, .queue = str("fuzz.dead"), .to = str("fuzz") } },
        { "publish-delayed", { .type = FERRY_F_PUBLISH, .queue = str("fuzz"), .delay_ms = 5000,
                               .deliver_at = 1767225600000, .payload = str("later") } },
        { "publish-priority-ttl", { .type = FERRY_F_PUBLISH, .queue = str("fuzz"),
                                    .has_priority = true, .priority = 9, .ttl_ms = 30000,
                                    .payload = str("urgent") } },
        { "cancel", { .type = FERRY_F_CANCEL, .rid = 2, .sub = 1 } },
        { "get", { .type = FERRY_F_GET, .rid = 3, .queue = str("fuzz"), .wait_ms = 1000 } },
        { "eos", { .type = FERRY_F_EOS, .sub = 1, .queue = str("fuzz") } },
        { "declare", { .type = FERRY_F_DECLARE, .rid = 11, .queue = str("fuzz") } },
        { "delete", { .type = FERRY_F_DELETE, .rid = 12, .queue = str("fuzz") } },
        { "purge", { .type = FERRY_F_PURGE, .rid = 5, .queue = str("fuzz") } },
        { "stats-all", { .type = FERRY_F_STATS, .rid = 10 } },
        { "stats-one", { .type = FERRY_F_STATS, .rid = 10, .queue = str("fuzz") } },
        { "end", { .type = FERRY_F_END, .rid = 13, .queue = str("fuzz") } },
        { "reopen", { .type = FERRY_F_REOPEN, .rid = 14, .queue = str("fuzz") } },
        { "join", { .type = FERRY_F_JOIN, .rid = 15, .queue = str("fuzz") } },
        { "bind", { .type = FERRY_F_BIND, .rid = 16, .queue = str("fuzz"), .topic = str("f.*.#") } },
        { "unbind", { .type = FERRY_F_UNBIND, .rid = 17, .queue = str("fuzz"), .topic = str("f.*.#") } },
        { "publish-topic", { .type = FERRY_F_PUBLISH_TOPIC, .topic = str("f.x.y"), .headers = h,
                             .id = 9, .has_id = true, .payload = str("hello") } },
        { "declare-temp", { .type = FERRY_F_DECLARE_TEMP, .rid = 18 } },
        { "ok-declare-temp", { .type = FERRY_F_OK, .rid = 18, .queue = str("tmp.1") } },
        { "bindings", { .type = FERRY_F_BINDINGS, .rid = 19, .queue = str("fuzz") } },
        { "ok-bindings", { .type = FERRY_F_OK, .rid = 19, .has_patterns = true,
                           .patterns = patterns, .pattern_count = 2 } },
    };
    struct ferry_buf all = { 0 };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        save_frame("frame", frames[i].name, -1, &frames[i].f);
        append(&all, &frames[i].f);
    }
    save("frame", "every-type-in-one-stream", -1, &all);
    ferry_buf_free(&all);
    ferry_buf_free(&hb);
}

/* ---- what a broker sends to libferry ------------------------------------- */

/* Selector byte of fuzz_client_inbound (its value modulo 8): 1 = a STATS
 * waits, 3 = a CONNS (ferry_connections), 4 = a PEEK, 5 = a BINDINGS,
 * 6 = a DECLARE_TEMP, else a GET. */
#define WAIT_STATS 1
#define WAIT_GET 0
#define WAIT_CONNS 3
#define WAIT_PEEK 4
#define WAIT_BINDINGS 5
#define WAIT_TEMP 6

static void broker_streams(void)
{
    struct ferry_buf hb = trace_headers();
    struct ferry_bytes h = { hb.data + hb.off, ferry_buf_pending(&hb) };
    static const uint64_t one[] = { 1 };
    struct ferry_queue_stats qs = { .name = str("fuzz"), .depth = 1, .consumers = 1 };
    struct ferry_server_stats ss = {
        .connections = 1, .queues = 1, .uptime_ms = 5, .messages = 1, .bytes = 1, .memory = 73,
    };

    struct ferry_frame deliver = { .type = FERRY_F_DELIVER, .sub = 1, .tag = 1, .attempt = 1,
                                   .headers = h, .payload = str("hello") };
    struct ferry_frame deliver3 = { .type = FERRY_F_DELIVER, .sub = 1, .tag = 3, .attempt = 2,
                                    .payload = str("again") };
    struct ferry_frame confirm = { .type = FERRY_F_CONFIRM, .uints = one, .uint_count = 1 };
    struct ferry_frame refusal = { .type = FERRY_F_ERROR, .code = FERRY_CODE_ENDED,
                                   .text = str("queue is ended"), .id = 1, .has_id = true };
    struct ferry_frame async_error = { .type = FERRY_F_ERROR, .code = FERRY_CODE_UNKNOWN_TAG,
                                       .text = str("1 tag(s) not in flight") };
    struct ferry_frame eos = { .type = FERRY_F_EOS, .sub = 1, .queue = str("fuzz") };
    struct ferry_frame ping = { .type = FERRY_F_PING, .rid = 4 };
    struct ferry_frame stats = { .type = FERRY_F_OK, .rid = 2, .server_stats = &ss,
                                 .stats = &qs, .stats_count = 1 };
    struct ferry_frame got = { .type = FERRY_F_DELIVER, .rid = 2, .tag = 2, .attempt = 1,
                               .headers = h, .payload = str("got") };
    struct ferry_frame empty = { .type = FERRY_F_OK, .rid = 2, .empty = true };
    struct ferry_frame fatal = { .type = FERRY_F_ERROR, .code = FERRY_CODE_SHUTTING_DOWN,
                                 .text = str("server is shutting down"), .fatal = true };
    struct ferry_conn_stats cs[] = {
        { 2, str("unix:pid=1,uid=0"), str("fuzz"), 100, false, 1, 1, 5, 1 },
        { 1, str("tcp:127.0.0.1:7070"), str(""), 0, true, 0, 0, 9, 9 },
    };
    struct ferry_frame conns_page = { .type = FERRY_F_OK, .rid = 2, .has_conns = true,
                                      .conns = cs, .conn_count = 1, .next = 2 };
    struct ferry_frame conns_last = { .type = FERRY_F_OK, .rid = 3, .has_conns = true,
                                      .conns = cs + 1, .conn_count = 1 };
    struct ferry_frame killed = { .type = FERRY_F_ERROR, .code = FERRY_CODE_KILLED,
                                  .text = str("connection closed by an operator"), .fatal = true };

    struct ferry_buf b = { 0 };
    append(&b, &deliver);
    append(&b, &confirm);
    append(&b, &stats);
    save("client_inbound", "deliver-confirm-stats", WAIT_STATS, &b);
    ferry_buf_consume(&b, ferry_buf_pending(&b));

    append(&b, &deliver);
    append(&b, &deliver3);
    append(&b, &refusal);
    append(&b, &got);
    append(&b, &eos);
    save("client_inbound", "deliveries-refusal-get-eos", WAIT_GET, &b);
    ferry_buf_consume(&b, ferry_buf_pending(&b));

    append(&b, &ping);
    append(&b, &async_error);
    append(&b, &empty);
    append(&b, &fatal);
    save("client_inbound", "ping-error-empty-fatal", WAIT_GET, &b);
    ferry_buf_consume(&b, ferry_buf_pending(&b));

    append(&b, &ping);
    append(&b, &conns_page);
    append(&b, &conns_last);
    append(&b, &killed);
    save("client_inbound", "conns-pages-killed", WAIT_CONNS, &b);
    ferry_buf_consume(&b, ferry_buf_pending(&b));

    save_frame("client_inbound", "stats-reply", WAIT_STATS, &stats);
    save_frame("client_inbound", "get-reply", WAIT_GET, &got);

    struct ferry_item peeked[] = {
        { .payload = str("first"), .headers = h },
        { .payload = str("second") },
    };
    struct ferry_frame peek = { .type = FERRY_F_OK, .rid = 2, .items = peeked, .item_count = 2 };
    save_frame("client_inbound", "peek-reply", WAIT_PEEK, &peek);
    static const struct ferry_bytes patterns[] = {
        { (const uint8_t *)"orders.#", 8 }, { (const uint8_t *)"*.created", 9 },
    };
    struct ferry_frame bindings = { .type = FERRY_F_OK, .rid = 2, .has_patterns = true,
                                    .patterns = patterns, .pattern_count = 2 };
    save_frame("client_inbound", "bindings-reply", WAIT_BINDINGS, &bindings);
    struct ferry_frame temp = { .type = FERRY_F_OK, .rid = 2, .queue = str("tmp.1f") };
    save_frame("client_inbound", "declare-temp-reply", WAIT_TEMP, &temp);
    ferry_buf_free(&b);
    ferry_buf_free(&hb);
}

/* ---- what a client sends to ferryd ----------------------------------------- */

/* Selector byte of fuzz_conn: odd = the harness says HELLO first. */
#define SAY_HELLO 1
#define NO_HELLO 0

static void client_streams(void)
{
    struct ferry_buf hb = trace_headers();
    struct ferry_bytes h = { hb.data + hb.off, ferry_buf_pending(&hb) };
    static const uint64_t tags12[] = { 1, 2 }, tag3[] = { 3 }, tag99[] = { 99 };
    struct ferry_item items[2] = { { str("one"), { NULL, 0 }, false, 0, 1000 }, { str("two"), h, true, 9, 0 } };

    struct ferry_frame hello = { .type = FERRY_F_HELLO, .version = 1, .name = str("fuzz") };
    struct ferry_frame publish = { .type = FERRY_F_PUBLISH, .queue = str("fuzz"), .headers = h,
                                   .id = 1, .has_id = true, .payload = str("hello") };
    struct ferry_frame publish_other = { .type = FERRY_F_PUBLISH, .queue = str("other"),
                                         .payload = str("for the GET") };
    struct ferry_frame batch = { .type = FERRY_F_PUBLISH_BATCH, .queue = str("mine"), .id = 2,
                                 .has_id = true, .items = items, .item_count = 2 };
    struct ferry_frame consume = { .type = FERRY_F_CONSUME, .rid = 3, .queue = str("mine"),
                                   .sub = 7, .credit = 1 };
    struct ferry_frame ack = { .type = FERRY_F_ACK, .uints = tags12, .uint_count = 2 };
    struct ferry_frame nack = { .type = FERRY_F_NACK, .uints = tag3, .uint_count = 1,
                                .requeue = true };
    struct ferry_frame ack_unknown = { .type = FERRY_F_ACK, .uints = tag99, .uint_count = 1 };
    struct ferry_frame credit = { .type = FERRY_F_CREDIT, .sub = 7, .credit = 5 };
    struct ferry_frame cancel = { .type = FERRY_F_CANCEL, .rid = 4, .sub = 7 };
    struct ferry_frame get = { .type = FERRY_F_GET, .rid = 5, .queue = str("mine"), .wait_ms = 1 };
    struct ferry_frame get_now = { .type = FERRY_F_GET, .rid = 6, .queue = str("fuzz") };
    struct ferry_frame end = { .type = FERRY_F_END, .rid = 7, .queue = str("mine") };
    struct ferry_frame join = { .type = FERRY_F_JOIN, .rid = 8, .queue = str("mine") };
    struct ferry_frame reopen = { .type = FERRY_F_REOPEN, .rid = 9, .queue = str("mine") };
    struct ferry_frame purge = { .type = FERRY_F_PURGE, .rid = 10, .queue = str("mine") };
    struct ferry_frame del = { .type = FERRY_F_DELETE, .rid = 11, .queue = str("mine") };
    struct ferry_frame declare = { .type = FERRY_F_DECLARE, .rid = 12, .queue = str("q-1") };
    struct ferry_frame stats = { .type = FERRY_F_STATS, .rid = 13 };
    struct ferry_frame ping = { .type = FERRY_F_PING, .rid = 14 };
    struct ferry_frame conns = { .type = FERRY_F_CONNS, .rid = 15, .before = 2 };
    struct ferry_frame kill = { .type = FERRY_F_KILL, .rid = 16, .id = 1, .has_id = true };

    struct ferry_buf b = { 0 };
    /* Publish, consume, settle, and the queue's whole life. */
    append(&b, &publish);
    append(&b, &publish_other);
    append(&b, &batch);
    append(&b, &consume);
    append(&b, &ack);
    append(&b, &nack);
    append(&b, &credit);
    append(&b, &get);
    append(&b, &get_now);
    append(&b, &end);
    append(&b, &join);
    append(&b, &ack_unknown);
    append(&b, &cancel);
    append(&b, &reopen);
    append(&b, &purge);
    append(&b, &declare);
    append(&b, &stats);
    append(&b, &del);
    append(&b, &ping);
    append(&b, &conns);
    append(&b, &kill);
    save("conn", "a-whole-session", SAY_HELLO, &b);
    ferry_buf_consume(&b, ferry_buf_pending(&b));

    append(&b, &hello);
    append(&b, &publish);
    append(&b, &consume);
    append(&b, &hello); /* a second HELLO: fatal */
    save("conn", "own-hello-then-a-second", NO_HELLO, &b);
    ferry_buf_consume(&b, ferry_buf_pending(&b));

    append(&b, &publish);
    save("conn", "publish-before-hello", NO_HELLO, &b);
    ferry_buf_consume(&b, ferry_buf_pending(&b));

    append(&b, &consume);
    append(&b, &batch);
    append(&b, &batch);
    append(&b, &get);
    save("conn", "consume-then-batches", SAY_HELLO, &b);
    ferry_buf_consume(&b, ferry_buf_pending(&b));

    /* More output than ferryd's socket and output bound take at once. */
    enum { MANY = 400 };
    static struct ferry_item many[MANY];
    for (size_t i = 0; i < MANY; i++)
        many[i] = (struct ferry_item){ .payload = str("sixteen bytes...") };
    struct ferry_frame wide = { .type = FERRY_F_CONSUME, .rid = 3, .queue = str("mine"),
                                .sub = 7, .credit = 1000 };
    struct ferry_frame flood = { .type = FERRY_F_PUBLISH_BATCH, .queue = str("mine"),
                                 .items = many, .item_count = MANY };
    append(&b, &wide);
    append(&b, &flood);
    append(&b, &stats);
    save("conn", "deliveries-past-the-output-bound", SAY_HELLO, &b);
    ferry_buf_consume(&b, ferry_buf_pending(&b));

    /* Topics: a temporary queue and "fuzz" (B's) bound, copies to both. */
    struct ferry_frame temp = { .type = FERRY_F_DECLARE_TEMP, .rid = 20, .queue = str("tmp.mine") };
    struct ferry_frame bind_temp = { .type = FERRY_F_BIND, .rid = 21, .queue = str("tmp.mine"),
                                     .topic = str("f.#") };
    struct ferry_frame bind_fuzz = { .type = FERRY_F_BIND, .rid = 22, .queue = str("fuzz"),
                                     .topic = str("*.x") };
    struct ferry_frame topic = { .type = FERRY_F_PUBLISH_TOPIC, .topic = str("f.x"), .id = 23,
                                 .has_id = true, .payload = str("to both") };
    struct ferry_frame consume_temp = { .type = FERRY_F_CONSUME, .rid = 24, .queue = str("tmp.mine"),
                                        .sub = 9, .credit = 4 };
    struct ferry_frame unbind = { .type = FERRY_F_UNBIND, .rid = 25, .queue = str("fuzz"),
                                  .topic = str("*.x") };
    struct ferry_frame server_named = { .type = FERRY_F_DECLARE_TEMP, .rid = 26 };
    append(&b, &temp);
    append(&b, &bind_temp);
    append(&b, &bind_fuzz);
    append(&b, &topic);
    append(&b, &consume_temp);
    append(&b, &topic);
    append(&b, &unbind);
    append(&b, &server_named);
    struct ferry_frame list = { .type = FERRY_F_BINDINGS, .rid = 27, .queue = str("tmp.mine") };
    append(&b, &list);
    append(&b, &stats);
    save("conn", "topics-and-a-temporary-queue", SAY_HELLO, &b);
    ferry_buf_free(&b);
    ferry_buf_free(&hb);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_gen_corpus DIR\n");
        return 2;
    }
    root = argv[1];
    every_frame_type();
    broker_streams();
    client_streams();
    return 0;
}
