/*
 * cli_publish.c - `ferry publish`: messages from the command line or one
 * per line of standard input, sent in batches, then a flush so that exit
 * status 0 means every message was confirmed by the broker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "cli.h"
#include "ferry_proto.h"

/* A batch goes out as one PUBLISH_BATCH frame once it holds this many
 * messages or bytes: large enough to amortise the frame, small enough to
 * stay below the broker's max_frame (16 MiB by default; when a broker is
 * set lower, the fallback to single publishes covers it). */
#define BATCH_MESSAGES 256
#define BATCH_BYTES (256u * 1024u)
/* Line buffers bigger than this are freed after their batch is sent, so a
 * few long lines do not leave 256 large buffers behind. */
#define LINE_BUFFER_KEEP (64u * 1024u)

struct headers {
    struct ferry_header items[FERRY_HEADERS_MAX];
    size_t count;
};

/* Stdin lines waiting to be sent; each slot owns its getline() buffer. */
struct line_batch {
    char *lines[BATCH_MESSAGES];
    size_t capacity[BATCH_MESSAGES]; /* of each getline() buffer */
    size_t length[BATCH_MESSAGES];   /* of each line, newline removed */
    size_t count;
    size_t bytes;
    uint64_t first_line_number;   /* of lines[0], for error messages */
};

struct publisher {
    ferry_conn *conn;
    const char *queue;            /* or, with --topic, the topic */
    bool to_topic;
    const struct headers *headers;
    bool has_priority;            /* --priority given */
    uint8_t priority;
    uint64_t delay_ms;            /* --delay; 0: none */
    uint64_t deliver_at_ms;       /* --at; 0: none */
    uint64_t ttl_ms;              /* --ttl; 0: none given */
    const char *unit;             /* "line" or "message", for error messages */
    uint64_t failed_number;       /* the unit that could not be sent; 0: unknown */
    bool input_failed;            /* reading stdin failed, not the broker */
    uint64_t batches;             /* publish frames sent (one per batch of messages) */
    uint64_t refused;             /* of those, refused by the broker (refusal handler) */
};

/* ferry_refusal_fn: counts each refused batch; ferry_flush names the first. */
static void on_refusal(ferry_conn *c, uint64_t id, int code, const char *text, void *arg)
{
    struct publisher *p = arg;
    p->refused++;
}

/* Splits "-H key=value" in place (argv strings are writable): the '='
 * becomes the key's terminating NUL. */
static bool add_header(const struct cli_command *self, struct headers *h, char *arg)
{
    char *equals = strchr(arg, '=');

    if (equals == NULL || equals == arg) {
        cli_usage_error(self, "bad header '%s' (expected KEY=VALUE)", arg);
        return false;
    }
    if (h->count == FERRY_HEADERS_MAX) {
        cli_usage_error(self, "more than %u headers", FERRY_HEADERS_MAX);
        return false;
    }
    *equals = '\0';
    const char *value = equals + 1;
    size_t value_len = strlen(value);
    if (strlen(arg) > FERRY_HEADER_KEY_MAX || value_len > FERRY_HEADER_VALUE_MAX) {
        cli_usage_error(self, "header '%.64s' too long (key at most %u bytes, value %u)", arg,
                        FERRY_HEADER_KEY_MAX, FERRY_HEADER_VALUE_MAX);
        return false;
    }
    h->items[h->count++] = (struct ferry_header){arg, value, value_len};
    return true;
}

/* Reports a publish failure; a message over the broker's frame limit is
 * named like the broker's own refusal of it. */
static int publish_failed(const struct cli_command *self, const struct publisher *p, int status)
{
    if (p->input_failed) {
        cli_error("%s: cannot read standard input", self->name);
        return CLI_EXIT_BROKEN;
    }
    if (status == FERRY_ESERVER && p->refused > 0)
        cli_error("%s: the broker refused %llu of %llu batches (a batch is queued whole or "
                  "not at all)", self->name, (unsigned long long)p->refused,
                  (unsigned long long)p->batches);
    if (status != FERRY_EINVAL)
        return cli_fail(status, self->name);
    if (p->failed_number > 0)
        cli_error("%s: %s %llu is larger than the broker accepts",
                  ferry_code_name(FERRY_CODE_FRAME_TOO_LARGE), p->unit,
                  (unsigned long long)p->failed_number);
    else
        cli_error("%s: a message is larger than the broker accepts",
                  ferry_code_name(FERRY_CODE_FRAME_TOO_LARGE));
    return CLI_EXIT_REFUSED;
}

/* Publishes n messages (numbered from first_number) without waiting for
 * confirms. Returns a ferry_status. */
static int publish_messages(struct publisher *p, const struct ferry_msg *msgs, size_t n,
                            uint64_t first_number)
{
    bool delayed = p->delay_ms != 0 || p->deliver_at_ms != 0;
    int status = FERRY_EINVAL;
    /* A batch carries no delay, and a topic has no batch frame: those
     * messages go one by one. */
    if (!delayed && !p->to_topic)
        status = ferry_publish_batch(p->conn, p->queue, msgs, n, 0);
    if (status == FERRY_OK)
        p->batches++;
    if (status != FERRY_EINVAL)
        return status;
    /* The batch exceeds the broker's frame limit and nothing was sent:
     * send the messages one by one, which singles out one too big. */
    for (size_t i = 0; i < n; i++) {
        struct ferry_publish_options o = {
            .headers = msgs[i].headers, .header_count = msgs[i].header_count,
            .has_priority = msgs[i].has_priority, .priority = msgs[i].priority,
            .delay_ms = p->delay_ms, .deliver_at_ms = p->deliver_at_ms,
            .ttl_ms = msgs[i].ttl_ms,
        };
        status = p->to_topic
                     ? ferry_publish_topic(p->conn, p->queue, msgs[i].data, msgs[i].len, &o)
                     : ferry_publish_opts(p->conn, p->queue, msgs[i].data, msgs[i].len, &o);
        if (status == FERRY_OK)
            p->batches++;
        if (status != FERRY_OK) {
            p->failed_number = first_number + i;
            return status;
        }
    }
    return FERRY_OK;
}

/* One message as the command line asks it to be sent. */
static struct ferry_msg message_of(const struct publisher *p, const char *data, size_t len)
{
    return (struct ferry_msg){
        .data = data, .len = len,
        .headers = p->headers->items, .header_count = p->headers->count,
        .has_priority = p->has_priority, .priority = p->priority, .ttl_ms = p->ttl_ms,
    };
}

/* Sends the batch of lines and empties it. Returns a ferry_status. */
static int send_batch(struct publisher *p, struct line_batch *b)
{
    struct ferry_msg msgs[BATCH_MESSAGES];

    for (size_t i = 0; i < b->count; i++)
        msgs[i] = message_of(p, b->lines[i], b->length[i]);
    int status = publish_messages(p, msgs, b->count, b->first_line_number);
    for (size_t i = 0; i < b->count; i++) {
        if (b->capacity[i] > LINE_BUFFER_KEEP) {
            free(b->lines[i]);
            b->lines[i] = NULL;
            b->capacity[i] = 0;
        }
    }
    b->first_line_number += b->count;
    b->count = 0;
    b->bytes = 0;
    return status;
}

static void swap_slots(struct line_batch *b, size_t i, size_t j)
{
    char *line = b->lines[i];
    size_t capacity = b->capacity[i];

    b->lines[i] = b->lines[j];
    b->capacity[i] = b->capacity[j];
    b->lines[j] = line;
    b->capacity[j] = capacity;
}

/* Reads stdin to the end, publishing a batch whenever one is full. */
static int publish_lines(struct publisher *p, struct line_batch *b)
{
    b->first_line_number = 1;
    for (;;) {
        size_t slot = b->count;
        ssize_t got = getline(&b->lines[slot], &b->capacity[slot], stdin);
        if (got < 0)
            break;
        size_t len = (size_t)got;
        if (len > 0 && b->lines[slot][len - 1] == '\n')
            len--;
        if (b->count > 0 && b->bytes + len > BATCH_BYTES) {
            /* The new line does not fit: send the others, then make it the
             * first line of the next batch. */
            int status = send_batch(p, b);
            if (status != FERRY_OK)
                return status;
            swap_slots(b, 0, slot);
            slot = 0;
        }
        b->length[slot] = len;
        b->count++;
        b->bytes += len;
        if (b->count == BATCH_MESSAGES) {
            int status = send_batch(p, b);
            if (status != FERRY_OK)
                return status;
        }
    }
    if (ferror(stdin)) {
        p->input_failed = true;
        return FERRY_EIO;
    }
    return b->count > 0 ? send_batch(p, b) : FERRY_OK;
}

static void free_batch(struct line_batch *b)
{
    for (size_t i = 0; i < BATCH_MESSAGES; i++)
        free(b->lines[i]);
    free(b);
}

/* Publishes the n arguments, in batches. Returns a ferry_status. */
static int publish_arguments(struct publisher *p, char **args, size_t n)
{
    struct ferry_msg msgs[BATCH_MESSAGES];
    size_t done = 0;

    while (done < n) {
        size_t count = 0;
        size_t bytes = 0;
        while (done + count < n && count < BATCH_MESSAGES && bytes < BATCH_BYTES) {
            const char *arg = args[done + count];
            msgs[count] = message_of(p, arg, strlen(arg));
            bytes += msgs[count++].len;
        }
        int status = publish_messages(p, msgs, count, done + 1);
        if (status != FERRY_OK)
            return status;
        done += count;
    }
    return FERRY_OK;
}

/* Publishes each operand from argv[first] on, or stdin's lines if none. */
static int publish_all(const struct cli_command *self, struct publisher *p, int argc,
                       char **argv, int first)
{
    int status;

    if (first < argc) {
        p->unit = "message";
        status = publish_arguments(p, argv + first, (size_t)(argc - first));
    } else {
        p->unit = "line";
        struct line_batch *batch = calloc(1, sizeof *batch); /* ~6 KiB: not on the stack */
        if (batch == NULL)
            return cli_fail(FERRY_ENOMEM, self->name);
        status = publish_lines(p, batch);
        free_batch(batch);
    }
    if (status == FERRY_OK)
        status = ferry_flush(p->conn, -1); /* exit 0 only once all is confirmed */
    return status == FERRY_OK ? CLI_EXIT_OK : publish_failed(self, p, status);
}

int cli_cmd_publish(const struct cli_command *self, int argc, char **argv)
{
    static const struct option options[] = {
        {"header", required_argument, NULL, 'H'},
        {"priority", required_argument, NULL, 'p'},
        {"delay", required_argument, NULL, 'D'},
        {"at", required_argument, NULL, 'A'},
        {"topic", no_argument, NULL, 'T'},
        {"ttl", required_argument, NULL, 'L'},
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct headers headers = {.count = 0};
    struct publisher p = {.headers = &headers};
    uint64_t delay_ms = 0, at_ms = 0;
    int exit_code = CLI_EXIT_OK;
    int opt;

    while ((opt = cli_next_option(self, argc, argv, ":hH:p:T", options, &exit_code)) > 0) {
        if (opt == 'H' && !add_header(self, &headers, optarg))
            return CLI_EXIT_USAGE;
        if (opt == 'T')
            p.to_topic = true;
        if (opt == 'p') {
            uint64_t level;
            if (!cli_parse_uint(optarg, 0, FERRY_PRIORITY_MAX, &level))
                return cli_usage_error(self, "bad priority '%s' (expected 0..%u)", optarg,
                                       FERRY_PRIORITY_MAX);
            p.has_priority = true;
            p.priority = (uint8_t)level;
        }
        if (opt == 'L' && (!cli_parse_duration(optarg, &p.ttl_ms) || p.ttl_ms == 0 ||
                           p.ttl_ms > FERRY_TTL_MAX_MS))
            return cli_usage_error(self, "bad --ttl '%s' (expected a duration above 0, at most "
                                   "3650d)", optarg);
        if (opt == 'D' && (!cli_parse_duration(optarg, &delay_ms) || delay_ms > FERRY_DELAY_MAX_MS))
            return cli_usage_error(self, "bad --delay '%s' (expected a duration of at most 366d)",
                                   optarg);
        if (opt == 'A') {
            if (strspn(optarg, "0123456789.") != strlen(optarg)
                || !cli_parse_duration(optarg, &at_ms) || at_ms == 0)
                return cli_usage_error(self, "bad --at '%s' (expected Unix seconds)", optarg);
        }
    }
    if (opt == CLI_OPT_STOP)
        return exit_code;
    if (optind >= argc)
        return cli_usage_error(self, p.to_topic ? "missing TOPIC" : "missing QUEUE");
    const char *queue = argv[optind];
    if (p.to_topic && !cli_topic_valid(self, queue, false))
        return CLI_EXIT_USAGE;
    if (!p.to_topic && !cli_queue_valid(self, queue))
        return CLI_EXIT_USAGE;

    p.queue = queue;
    p.delay_ms = delay_ms;
    p.deliver_at_ms = at_ms;
    exit_code = cli_connect(self, &p.conn);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    ferry_set_refusal_handler(p.conn, on_refusal, &p);
    exit_code = publish_all(self, &p, argc, argv, optind + 1);
    ferry_close(p.conn);
    return exit_code;
}
