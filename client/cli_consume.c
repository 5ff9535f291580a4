/*
 * cli_consume.c - `ferry consume` and `ferry subscribe` (the same over a
 * temporary queue bound to topic patterns): a subscription driven by a libevent loop
 * (ferry_attach), printing each payload and acknowledging it only once it
 * has reached standard output. Owns the loop, its timer and signal events,
 * and the list of printed-but-unacknowledged tags; nothing else.
 *
 * Output is buffered: the callbacks of one read burst write into stdio, and
 * a deferred "flush" event then writes stdout once and acks the whole burst
 * in one frame, so a message is never acked before it was written.
 */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

#include "cli.h"
#include "ferry_proto.h"

#define DEFAULT_CREDIT 256u
/* The widest window accepted: unacked tags are kept in an array this big. */
#define MAX_CREDIT 65536u

struct consumer {
    const struct cli_command *self;
    ferry_conn *conn;
    struct event_base *base;
    struct event *flush_event;  /* deferred: write stdout, then ack */
    struct event *idle_timer;   /* NULL without --timeout */
    struct event *sigint_event;
    struct event *sigterm_event;

    uint64_t limit;             /* -n COUNT; 0: no limit */
    uint64_t received;          /* messages printed (extras not counted) */
    int idle_ms;                /* --timeout; -1: none */
    struct timespec last_activity; /* CLOCK_MONOTONIC, for the idle timeout */
    bool ack;                   /* false with --no-ack */

    /* Tags printed into the stdio buffer, acked after the next fflush.
     * Two arrays of `credit` tags, swapped at each ack: a blocking
     * ferry_ack_many() may run callbacks that start the next list while
     * the library still borrows the previous one. */
    uint64_t *unacked;
    uint64_t *acking;
    size_t unacked_count;
    size_t unacked_capacity;    /* the credit: the broker sends no more unacked */

    bool flush_scheduled;
    bool stopping;              /* the loop ends after the next flush */
    bool connection_over;       /* nothing more can be sent */
    int exit_code;              /* valid once stopping */
};

static int64_t monotonic_ms(struct timespec t)
{
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void schedule_flush(struct consumer *k)
{
    if (k->flush_scheduled)
        return;
    k->flush_scheduled = true;
    event_active(k->flush_event, EV_TIMEOUT, 1);
}

/* Makes the loop end after one more flush. The first reason to stop sets
 * the exit code. */
static void stop(struct consumer *k, int exit_code)
{
    if (k->stopping)
        return;
    k->stopping = true;
    k->exit_code = exit_code;
    schedule_flush(k);
}

/* Stops with an error that was already reported; it replaces a success
 * (the count was reached, but the last output or acks failed). */
static void stop_failed(struct consumer *k, int exit_code)
{
    if (k->stopping && k->exit_code == CLI_EXIT_OK)
        k->exit_code = exit_code;
    stop(k, exit_code);
}

/* Printed messages are acked only after they were written: when writing
 * fails, they stay unacked and go back to the queue when ferry exits. */
static void output_failed(struct consumer *k)
{
    k->unacked_count = 0;
    cli_error("%s: cannot write to standard output", k->self->name);
    stop_failed(k, CLI_EXIT_BROKEN);
}

/* Writes stdout out, then acks what it held. */
static void flush_output(struct consumer *k)
{
    if (fflush(stdout) != 0) {
        output_failed(k);
        return;
    }
    if (k->unacked_count == 0 || k->connection_over)
        return;
    uint64_t *tags = k->unacked;
    size_t count = k->unacked_count;
    k->unacked = k->acking;
    k->acking = tags;
    k->unacked_count = 0;
    /* Outside a callback this writes at once; while the socket is full it
     * reads too, and so may run on_message for the next list. */
    int status = ferry_ack_many(k->conn, tags, count);
    if (status != FERRY_OK)
        stop_failed(k, cli_fail(status, "ack"));
}

/* The deferred event: runs once the current burst of callbacks is done. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct consumer *k = arg;

    k->flush_scheduled = false;
    clock_gettime(CLOCK_MONOTONIC, &k->last_activity); /* once per burst, not per message */
    flush_output(k);
    if (k->stopping)
        event_base_loopbreak(k->base);
}

static void on_message(ferry_conn *c, const ferry_message *m, void *arg)
{
    struct consumer *k = arg;

    if (k->stopping) {
        /* Delivered after the count was reached (or after a stop): it is
         * not ours to keep, so give it back at once, in order. */
        ferry_nack(c, m->tag, true);
        return;
    }
    if (!cli_print_payload(m->data, m->len)) {
        ferry_nack(c, m->tag, true);
        output_failed(k);
        return;
    }
    k->received++;
    if (k->ack) {
        /* Full only if the broker exceeds the window; flushing makes room. */
        if (k->unacked_count == k->unacked_capacity)
            flush_output(k);
        k->unacked[k->unacked_count++] = m->tag;
    }
    if (k->limit > 0 && k->received == k->limit) {
        /* Cancel before the last acks go out: the broker handles frames in
         * order, so no ack can open the window for one more delivery. A
         * failure here means the connection is over: on_error tells. */
        ferry_cancel(c, m->sub);
        stop(k, CLI_EXIT_OK);
        return;
    }
    schedule_flush(k);
}

static void on_eos(ferry_conn *c, uint64_t sub, const char *queue, void *arg)
{
    stop(arg, CLI_EXIT_OK);
}

static void on_error(ferry_conn *c, int code, const char *text, void *arg)
{
    struct consumer *k = arg;

    if (code < 0) { /* the connection is over: nothing can be acked any more */
        bool reported = k->stopping && k->exit_code != CLI_EXIT_OK;
        k->connection_over = true;
        k->unacked_count = 0;
        stop_failed(k, reported ? k->exit_code : cli_fail(code, k->self->name));
        return;
    }
    cli_report_broker_error(code, text);
    if (ferry_code_is_fatal((uint32_t)code))
        stop_failed(k, CLI_EXIT_BROKEN); /* the broker closes the connection next */
}

static void on_idle_timer(evutil_socket_t fd, short what, void *arg)
{
    struct consumer *k = arg;
    struct timespec now;

    if (k->stopping)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t idle = monotonic_ms(now) - monotonic_ms(k->last_activity);
    if (idle < k->idle_ms) {
        int64_t left = k->idle_ms - idle;
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
        evtimer_add(k->idle_timer, &tv);
        return;
    }
    if (k->limit > 0 && k->received < k->limit) {
        cli_error("%s: timed out after %llu of %llu messages", k->self->name,
                  (unsigned long long)k->received, (unsigned long long)k->limit);
        stop(k, CLI_EXIT_TIMEOUT);
    } else {
        stop(k, CLI_EXIT_OK); /* without -n, running dry is the normal end */
    }
}

static void on_signal(evutil_socket_t signal_number, short what, void *arg)
{
    stop(arg, 128 + (int)signal_number); /* the shell's convention */
}

/* Creates the loop's own events. false on ENOMEM. */
static bool add_events(struct consumer *k)
{
    k->flush_event = event_new(k->base, -1, 0, on_flush, k);
    k->sigint_event = evsignal_new(k->base, SIGINT, on_signal, k);
    k->sigterm_event = evsignal_new(k->base, SIGTERM, on_signal, k);
    if (k->flush_event == NULL || k->sigint_event == NULL || k->sigterm_event == NULL)
        return false;
    if (evsignal_add(k->sigint_event, NULL) != 0 || evsignal_add(k->sigterm_event, NULL) != 0)
        return false;
    if (k->idle_ms < 0)
        return true;
    k->idle_timer = evtimer_new(k->base, on_idle_timer, k);
    struct timeval tv = {k->idle_ms / 1000, (k->idle_ms % 1000) * 1000};
    return k->idle_timer != NULL && evtimer_add(k->idle_timer, &tv) == 0;
}

static void free_events(struct consumer *k)
{
    struct event *events[] = {k->flush_event, k->idle_timer, k->sigint_event, k->sigterm_event};

    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
        if (events[i] != NULL)
            event_free(events[i]);
}

/* Subscribes and runs the loop until a reason to stop. */
static int run_consumer(struct consumer *k, const char *queue, uint32_t credit)
{
    struct ferry_consume_options opts = {
        .credit = credit,
        .on_message = on_message,
        .on_eos = on_eos,
        .arg = k,
    };
    uint64_t sub;

    /* The events exist before the first callback can run: the broker may
     * deliver while ferry_consume() waits for its answer. */
    clock_gettime(CLOCK_MONOTONIC, &k->last_activity);
    if (!add_events(k))
        return cli_fail(FERRY_ENOMEM, k->self->name);
    ferry_set_error_handler(k->conn, on_error, k);
    int status = ferry_attach(k->conn, k->base);
    if (status != FERRY_OK)
        return cli_fail(status, k->self->name);
    status = ferry_consume(k->conn, queue, &opts, &sub);
    if (status != FERRY_OK)
        return cli_fail(status, k->self->name);
    /* The last acks were written by the final flush (acks outside a
     * callback are written at once). Messages still in flight on the
     * connection go back to the queue when it closes. */
    if (event_base_dispatch(k->base) < 0)
        return cli_fail(FERRY_EIO, k->self->name);
    return k->exit_code;
}

/* subscribe: a temporary queue of this connection, bound to each pattern;
 * its name goes to *queue (buffer of FERRY_NAME_MAX + 1). */
static int temp_queue_for(const struct cli_command *self, ferry_conn *conn, char **patterns,
                          size_t n, char *queue)
{
    int status = ferry_declare_temp(conn, NULL, queue, FERRY_NAME_MAX + 1);
    for (size_t i = 0; i < n && status == FERRY_OK; i++)
        status = ferry_bind(conn, queue, patterns[i]);
    return status == FERRY_OK ? CLI_EXIT_OK : cli_fail(status, self->name);
}

/* Consumes `queue`, or with patterns (n > 0) a temporary queue bound to them. */
static int consume(const struct cli_command *self, const char *queue, char **patterns, size_t n,
                   struct consumer *k, uint32_t credit)
{
    char temp[FERRY_NAME_MAX + 1];
    int exit_code = CLI_EXIT_OK;

    k->self = self;
    k->unacked_capacity = credit;
    /* Owned by k, freed below. Unused with --no-ack but cheap. */
    k->unacked = calloc(credit, sizeof *k->unacked);
    k->acking = calloc(credit, sizeof *k->acking);
    k->base = event_base_new();
    if (k->unacked == NULL || k->acking == NULL || k->base == NULL) {
        exit_code = cli_fail(FERRY_ENOMEM, self->name);
        goto done;
    }
    exit_code = cli_connect(self, &k->conn);
    if (exit_code == CLI_EXIT_OK && n > 0) {
        exit_code = temp_queue_for(self, k->conn, patterns, n, temp);
        queue = temp;
    }
    if (exit_code == CLI_EXIT_OK)
        exit_code = run_consumer(k, queue, credit);
    if (k->conn != NULL)
        ferry_close(k->conn); /* removes its events from the base; the
                               * broker deletes a temporary queue */
done:
    free_events(k);
    if (k->base != NULL)
        event_base_free(k->base);
    free(k->unacked);
    free(k->acking);
    return exit_code;
}

/* The options consume and subscribe share; false when the command must
 * return *exit_code. The operands start at optind. */
static bool consume_options(const struct cli_command *self, int argc, char **argv,
                            struct consumer *k, uint64_t *credit, int *exit_code)
{
    static const struct option options[] = {
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"credit", required_argument, NULL, 'c'},
        {"no-ack", no_argument, NULL, 'A'},
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    *exit_code = CLI_EXIT_OK;
    while ((opt = cli_next_option(self, argc, argv, ":hn:t:c:", options, exit_code)) > 0) {
        if (opt == 'n' && !cli_parse_uint(optarg, 1, UINT64_MAX, &k->limit)) {
            *exit_code = cli_usage_error(self, "bad --count '%s' (expected a positive number)", optarg);
            return false;
        }
        if (opt == 't' && !cli_parse_seconds(optarg, &k->idle_ms)) {
            *exit_code = cli_usage_error(self, "bad --timeout '%s' (expected seconds)", optarg);
            return false;
        }
        if (opt == 'c' && !cli_parse_uint(optarg, 1, MAX_CREDIT, credit)) {
            *exit_code = cli_usage_error(self, "bad --credit '%s' (expected 1 to %u)", optarg,
                                         MAX_CREDIT);
            return false;
        }
        if (opt == 'A')
            k->ack = false;
    }
    if (opt == CLI_OPT_STOP)
        return false;
    /* Never ask for more than the count: no message waits unacked for us. */
    if (k->limit > 0 && k->limit < *credit)
        *credit = k->limit;
    return true;
}

int cli_cmd_consume(const struct cli_command *self, int argc, char **argv)
{
    struct consumer k = {.idle_ms = -1, .ack = true};
    uint64_t credit = DEFAULT_CREDIT;
    int exit_code;
    if (!consume_options(self, argc, argv, &k, &credit, &exit_code))
        return exit_code;
    const char *queue;
    exit_code = cli_one_queue(self, argc, argv, &queue);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    return consume(self, queue, NULL, 0, &k, (uint32_t)credit);
}

int cli_cmd_subscribe(const struct cli_command *self, int argc, char **argv)
{
    struct consumer k = {.idle_ms = -1, .ack = true};
    uint64_t credit = DEFAULT_CREDIT;
    int exit_code;
    if (!consume_options(self, argc, argv, &k, &credit, &exit_code))
        return exit_code;
    if (optind >= argc)
        return cli_usage_error(self, "missing PATTERN");
    for (int i = optind; i < argc; i++) {
        if (!cli_topic_valid(self, argv[i], true))
            return CLI_EXIT_USAGE;
    }
    return consume(self, NULL, argv + optind, (size_t)(argc - optind), &k, (uint32_t)credit);
}
