/*
 * proto_examples.c - prints one realistic example of every frame type:
 * its readout and its bytes as the codec encodes them. The output is the
 * "Examples" section of docs/PROTOCOL.md; run it again after a codec change
 * and paste. msgpack-c's own unpacker reads the bytes back for the readout,
 * so the readout cannot drift from the bytes.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>

#include "ferry_proto.h"

#define S(s) { (const uint8_t *)(s), sizeof(s) - 1 }

/* str as "..."; bin as b"..." with \xNN for bytes that are not printable. */
static void print_text(const char *p, size_t n, bool is_bin)
{
    fputs(is_bin ? "b\"" : "\"", stdout);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    putchar('"');
}

static void print_object(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: fputs("null", stdout); break;
    case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", stdout); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: printf("%llu", (unsigned long long)o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: printf("%lld", (long long)o->via.i64); break;
    case MSGPACK_OBJECT_STR: print_text(o->via.str.ptr, o->via.str.size, false); break;
    case MSGPACK_OBJECT_BIN: print_text(o->via.bin.ptr, o->via.bin.size, true); break;
    case MSGPACK_OBJECT_ARRAY:
        putchar('[');
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                putchar(',');
            print_object(&o->via.array.ptr[i]);
        }
        putchar(']');
        break;
    case MSGPACK_OBJECT_MAP:
        putchar('{');
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i)
                putchar(',');
            print_object(&o->via.map.ptr[i].key);
            putchar(':');
            print_object(&o->via.map.ptr[i].val);
        }
        putchar('}');
        break;
    default: fputs("?", stdout); break;
    }
}

/* "00 00 00 1a  84 a1 74 0a ...": the prefix, then the body 16 bytes a line. */
static void print_hex(const uint8_t *frame, size_t len)
{
    printf("    %02x %02x %02x %02x ", frame[0], frame[1], frame[2], frame[3]);
    for (size_t i = FERRY_FRAME_PREFIX; i < len; i++) {
        size_t col = (i - FERRY_FRAME_PREFIX) % 16;
        if (col == 0 && i > FERRY_FRAME_PREFIX)
            printf("\n                ");
        printf(" %02x", frame[i]);
    }
    putchar('\n');
}

static int print_example(const char *title, const struct ferry_frame *f)
{
    struct ferry_buf out = { 0 };
    if (ferry_frame_encode(&out, f) != 0)
        return -1;
    const uint8_t *frame = out.data + out.off;
    size_t len = ferry_buf_pending(&out);

    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    const char *body = (const char *)frame + FERRY_FRAME_PREFIX;
    if (msgpack_unpack_next(&u, body, len - FERRY_FRAME_PREFIX, &off) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&u);
        ferry_buf_free(&out);
        return -1;
    }
    printf("%s (t=%d), %zu bytes\n    ", title, (int)f->type, len);
    print_object(&u.data);
    putchar('\n');
    print_hex(frame, len);
    putchar('\n');
    msgpack_unpacked_destroy(&u);
    ferry_buf_free(&out);
    return 0;
}

int main(void)
{
    struct ferry_buf headers = { 0 };
    struct ferry_kv kv = { S("trace"), S("a1b2") };
    if (ferry_headers_encode(&headers, &kv, 1) != 0)
        return EXIT_FAILURE;
    struct ferry_bytes h = { headers.data + headers.off, ferry_buf_pending(&headers) };

    static const uint64_t ids[] = { 7, 8 };
    static const uint64_t tags[] = { 1, 2, 3 };
    static const uint64_t nacked[] = { 4 };
    struct ferry_item items[] = {
        { S("one"), { NULL, 0 }, false, 0, 0 },
        { S("two"), h, false, 0, 0 },
    };
    struct ferry_item prioritized[] = {
        { S("urgent"), { NULL, 0 }, true, 9, 0 },
        { S("later"), { NULL, 0 }, true, 1, 0 },
        { S("brief"), { NULL, 0 }, false, 0, 5000 },
    };
    static const struct ferry_server_stats server = { 2, 1, 3600000, 10, 1200, 40, 1, 78, 0, 2,
                                                        1920, 0, 0, 0, 0 };
    static const struct ferry_queue_stats queue = {
        S("jobs"), 8, 2, 1, 150, 145, 140, 3, 0, 1200, false,
        { 5, 0, 0, 0, 0, 2, 0, 0, 0, 1 }, 0, 4, 2, 1000, 0, S("block"), 0, 0, 4, 1, 2,
    };
    struct ferry_kv dead_kv[] = {
        { S("dlq-queue"), S("jobs") }, { S("dlq-attempts"), S("5") }, { S("dlq-reason"), S("lost") },
    };
    struct ferry_buf dead = { 0 };
    if (ferry_headers_encode(&dead, dead_kv, 3) != 0)
        return EXIT_FAILURE;
    struct ferry_item peeked[] = {
        { S("poison"), { dead.data + dead.off, ferry_buf_pending(&dead) }, false, 0, 0 },
    };
    static const struct ferry_conn_stats conn = {
        7, S("unix:pid=4242,uid=1000"), S("worker"), 65536, true, 1, 256, 60000, 15000,
    };

    static const struct ferry_bytes patterns[] = { S("orders.#"), S("#.refunded") };
    const struct {
        const char *title;
        struct ferry_frame f;
    } examples[] = {
        { "HELLO", { .type = FERRY_F_HELLO, .version = 1, .name = S("ferry-cli") } },
        { "HELLO of a producer that reconnects", { .type = FERRY_F_HELLO, .version = 1,
                                                   .name = S("worker"),
                                                   .producer = 0x1f2e3d4c5b6a7988ull } },
        { "WELCOME", { .type = FERRY_F_WELCOME, .version = 1, .name = S("ferryd 0.1.0"),
                       .max_frame = FERRY_FRAME_MAX_DEFAULT, .heartbeat_ms = 30000 } },
        { "ERROR refusing publish 7", { .type = FERRY_F_ERROR, .code = FERRY_CODE_QUEUE_FULL,
                                        .text = S("queue full"), .id = 7, .has_id = true } },
        { "ERROR, fatal", { .type = FERRY_F_ERROR, .code = FERRY_CODE_BAD_FRAME,
                            .text = S("field 'q': expected str"), .fatal = true } },
        { "PING", { .type = FERRY_F_PING, .rid = 9 } },
        { "PONG", { .type = FERRY_F_PONG, .rid = 9 } },
        { "OK", { .type = FERRY_F_OK, .rid = 4 } },
        { "OK to PURGE", { .type = FERRY_F_OK, .rid = 5, .count = 12 } },
        { "OK to GET, empty", { .type = FERRY_F_OK, .rid = 6, .empty = true } },
        { "OK to STATS", { .type = FERRY_F_OK, .rid = 10, .server_stats = &server, .stats = &queue,
                           .stats_count = 1 } },
        { "PUBLISH", { .type = FERRY_F_PUBLISH, .queue = S("jobs"), .headers = h, .id = 7,
                       .has_id = true, .payload = S("hello") } },
        { "PUBLISH with a priority and a ttl", { .type = FERRY_F_PUBLISH, .queue = S("jobs"),
                                                 .id = 7, .has_id = true, .has_priority = true,
                                                 .priority = 9, .ttl_ms = 30000,
                                                 .payload = S("hello") } },
        { "PUBLISH, delayed", { .type = FERRY_F_PUBLISH, .queue = S("jobs"), .delay_ms = 5000,
                                .payload = S("later") } },
        { "PUBLISH_BATCH", { .type = FERRY_F_PUBLISH_BATCH, .queue = S("jobs"), .id = 8,
                             .has_id = true, .items = items, .item_count = 2 } },
        { "PUBLISH_BATCH with priorities and a ttl", { .type = FERRY_F_PUBLISH_BATCH, .queue = S("jobs"),
                                             .items = prioritized, .item_count = 3 } },
        { "CONFIRM", { .type = FERRY_F_CONFIRM, .uints = ids, .uint_count = 2 } },
        { "CONSUME", { .type = FERRY_F_CONSUME, .rid = 1, .queue = S("jobs"), .sub = 1, .credit = 100 } },
        { "CREDIT", { .type = FERRY_F_CREDIT, .sub = 1, .credit = 50 } },
        { "DELIVER to a subscription", { .type = FERRY_F_DELIVER, .sub = 1, .tag = 1, .attempt = 1,
                                         .headers = h, .payload = S("hello") } },
        { "DELIVER answering GET", { .type = FERRY_F_DELIVER, .rid = 3, .tag = 5, .attempt = 2,
                                     .payload = S("again") } },
        { "ACK", { .type = FERRY_F_ACK, .uints = tags, .uint_count = 3 } },
        { "NACK", { .type = FERRY_F_NACK, .uints = nacked, .uint_count = 1, .requeue = false } },
        { "NACK, requeued after 500 ms", { .type = FERRY_F_NACK, .uints = nacked, .uint_count = 1,
                                           .requeue = true, .delay_ms = 500 } },
        { "CONSUME with an ack deadline", { .type = FERRY_F_CONSUME, .rid = 1, .queue = S("jobs"),
                                            .sub = 1, .credit = 100, .deadline_ms = 30000 } },
        { "TOUCH", { .type = FERRY_F_TOUCH, .uints = nacked, .uint_count = 1, .deadline_ms = 60000 } },
        { "PEEK", { .type = FERRY_F_PEEK, .rid = 20, .queue = S("jobs.dead"), .count = 10 } },
        { "OK to PEEK", { .type = FERRY_F_OK, .rid = 20, .items = peeked, .item_count = 1 } },
        { "MOVE back to each message's queue", { .type = FERRY_F_MOVE, .rid = 21,
                                                 .queue = S("jobs.dead") } },
        { "MOVE to a named queue", { .type = FERRY_F_MOVE, .rid = 22, .queue = S("jobs.dead"),
                                     .to = S("jobs.retry"), .count = 100 } },
        { "CANCEL", { .type = FERRY_F_CANCEL, .rid = 2, .sub = 1 } },
        { "GET", { .type = FERRY_F_GET, .rid = 3, .queue = S("jobs"), .wait_ms = 1000 } },
        { "EOS", { .type = FERRY_F_EOS, .sub = 1, .queue = S("jobs") } },
        { "DECLARE", { .type = FERRY_F_DECLARE, .rid = 11, .queue = S("jobs") } },
        { "DELETE", { .type = FERRY_F_DELETE, .rid = 12, .queue = S("jobs") } },
        { "PURGE", { .type = FERRY_F_PURGE, .rid = 5, .queue = S("jobs") } },
        { "STATS, all queues", { .type = FERRY_F_STATS, .rid = 10 } },
        { "END", { .type = FERRY_F_END, .rid = 13, .queue = S("jobs") } },
        { "REOPEN", { .type = FERRY_F_REOPEN, .rid = 14, .queue = S("jobs") } },
        { "JOIN", { .type = FERRY_F_JOIN, .rid = 15, .queue = S("jobs") } },
        { "BIND", { .type = FERRY_F_BIND, .rid = 16, .queue = S("audit"), .topic = S("orders.#") } },
        { "UNBIND", { .type = FERRY_F_UNBIND, .rid = 17, .queue = S("audit"), .topic = S("orders.#") } },
        { "PUBLISH_TOPIC", { .type = FERRY_F_PUBLISH_TOPIC, .topic = S("orders.eu.created"), .id = 9,
                             .has_id = true, .payload = S("hello") } },
        { "DECLARE_TEMP, server-named", { .type = FERRY_F_DECLARE_TEMP, .rid = 18 } },
        { "OK to DECLARE_TEMP", { .type = FERRY_F_OK, .rid = 18, .queue = S("tmp.1f") } },
        { "BINDINGS", { .type = FERRY_F_BINDINGS, .rid = 19, .queue = S("audit") } },
        { "OK to BINDINGS", { .type = FERRY_F_OK, .rid = 19, .has_patterns = true,
                              .patterns = patterns, .pattern_count = 2 } },
        { "CONNS", { .type = FERRY_F_CONNS, .rid = 19 } },
        { "OK to CONNS, one connection, more after it", { .type = FERRY_F_OK, .rid = 19,
                                                          .has_conns = true, .conns = &conn,
                                                          .conn_count = 1, .next = 7 } },
        { "KILL", { .type = FERRY_F_KILL, .rid = 20, .id = 7, .has_id = true } },
    };

    int rc = EXIT_SUCCESS;
    for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++) {
        if (print_example(examples[i].title, &examples[i].f) != 0) {
            fprintf(stderr, "proto-examples: cannot encode %s\n", examples[i].title);
            rc = EXIT_FAILURE;
        }
    }
    ferry_buf_free(&headers);
    ferry_buf_free(&dead);
    return rc;
}
