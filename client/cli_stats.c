/*
 * cli_stats.c - `ferry stats`: the broker's statistics as a table for
 * people or as one JSON object for programs. Only formats what
 * ferry_stats() returns; names come from the network and are escaped.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

enum { COLUMN_COUNT = 14 }; /* the numeric columns, after the name */

static const char *const column_titles[COLUMN_COUNT] = {
    "DEPTH", "INFLIGHT", "CONSUMERS", "PUBLISHED", "DELIVERED",
    "ACKED", "REDELIVERED", "DROPPED", "EXPIRED", "BYTES", "DELAYED", "BINDINGS", "DEAD",
    "TIMEOUTS",
};

/* The same order, as JSON keys. */
static const char *const column_keys[COLUMN_COUNT] = {
    "depth", "inflight", "consumers", "published", "delivered",
    "acked", "redelivered", "dropped", "expired", "bytes", "delayed", "bindings",
    "dead_lettered", "timeouts",
};

static void queue_values(const struct ferry_queue_info *q, uint64_t values[COLUMN_COUNT])
{
    const uint64_t in_column_order[COLUMN_COUNT] = {
        q->depth, q->inflight, q->consumers, q->published, q->delivered,
        q->acked, q->redelivered, q->dropped, q->expired, q->bytes, q->delayed, q->bindings,
        q->dead_lettered, q->timeouts,
    };
    memcpy(values, in_column_order, sizeof in_column_order);
}

static void print_uptime(uint64_t ms)
{
    uint64_t s = ms / 1000;

    if (s >= 86400)
        printf("%" PRIu64 "d ", s / 86400);
    printf("%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600 % 24, s / 60 % 60, s % 60);
}

/* The ready messages by priority, highest first, non-empty levels only
 * ("9:1 0:20"), or "-" when none is ready. */
static void print_priorities(const struct ferry_queue_info *q)
{
    const char *sep = "";
    for (unsigned i = 0; i <= FERRY_PRIORITY_MAX; i++) {
        unsigned p = FERRY_PRIORITY_MAX - i;
        if (q->depth_by_priority[p] == 0)
            continue;
        printf("%s%u:%" PRIu64, sep, p, q->depth_by_priority[p]);
        sep = " ";
    }
    puts(*sep == '\0' ? "-" : "");
}

/* ---- flow control: bounds, policy and what happened at them ---- */

enum { FLOW_COLUMNS = 5 };

static const char *const flow_titles[FLOW_COLUMNS] = {
    "MAX_LENGTH", "MAX_BYTES", "DROPPED_OLDEST", "REJECTED", "BLOCKED",
};

static void flow_values(const struct ferry_queue_info *q, uint64_t values[FLOW_COLUMNS])
{
    const uint64_t in_column_order[FLOW_COLUMNS] = {
        q->max_length, q->max_bytes, q->dropped_oldest, q->rejected, q->blocked,
    };
    memcpy(values, in_column_order, sizeof in_column_order);
}

/* Whether a queue has a bound or has met one: only those get a row. */
static bool flow_shown(const struct ferry_queue_info *q)
{
    return q->max_length || q->max_bytes || q->dropped_oldest || q->rejected || q->blocked;
}

/* A second table, for the queues flow_shown() picks; a bound of 0 is "-". */
static void print_flow_table(const struct ferry_stats *s, int name_width)
{
    int widths[FLOW_COLUMNS];
    uint64_t values[FLOW_COLUMNS];
    bool any = false;

    for (int c = 0; c < FLOW_COLUMNS; c++)
        widths[c] = (int)strlen(flow_titles[c]);
    for (size_t i = 0; i < s->count; i++) {
        if (!flow_shown(&s->queues[i]))
            continue;
        any = true;
        flow_values(&s->queues[i], values);
        for (int c = 0; c < FLOW_COLUMNS; c++)
            if (cli_decimal_width(values[c]) > widths[c])
                widths[c] = cli_decimal_width(values[c]);
    }
    if (!any)
        return;
    printf("%-*s", name_width, "QUEUE");
    for (int c = 0; c < FLOW_COLUMNS; c++)
        printf("  %*s", widths[c], flow_titles[c]);
    printf("  OVERFLOW\n");
    for (size_t i = 0; i < s->count; i++) {
        const struct ferry_queue_info *q = &s->queues[i];
        if (!flow_shown(q))
            continue;
        cli_print_name(q->name, name_width);
        flow_values(q, values);
        for (int c = 0; c < FLOW_COLUMNS; c++) {
            if (c < 2 && values[c] == 0)
                printf("  %*s", widths[c], "-");
            else
                printf("  %*" PRIu64, widths[c], values[c]);
        }
        printf("  ");
        cli_print_name(q->overflow, 0);
        putchar('\n');
    }
}

static void print_server_memory(const struct ferry_stats *s)
{
    printf("queued memory: %" PRIu64 " bytes", s->memory);
    if (s->max_memory != 0)
        printf(" of max_queued_memory %" PRIu64, s->max_memory);
    printf(", %" PRIu64 " connection(s) parked on a full queue\n", s->parked);
    if (s->duplicates_dropped != 0 || s->duplicates_evicted != 0)
        printf("duplicates: %" PRIu64 " publish(es) sent again confirmed, not queued; %" PRIu64
               " forgotten early at dedup_entries\n",
               s->duplicates_dropped, s->duplicates_evicted);
}

static void print_table(const struct ferry_stats *s)
{
    int name_width = (int)strlen("QUEUE");
    int widths[COLUMN_COUNT];
    uint64_t values[COLUMN_COUNT];

    for (int c = 0; c < COLUMN_COUNT; c++)
        widths[c] = (int)strlen(column_titles[c]);
    for (size_t i = 0; i < s->count; i++) {
        int len = (int)strlen(s->queues[i].name);
        name_width = len > name_width ? len : name_width;
        queue_values(&s->queues[i], values);
        for (int c = 0; c < COLUMN_COUNT; c++)
            if (cli_decimal_width(values[c]) > widths[c])
                widths[c] = cli_decimal_width(values[c]);
    }

    printf("%-*s", name_width, "QUEUE");
    for (int c = 0; c < COLUMN_COUNT; c++)
        printf("  %*s", widths[c], column_titles[c]);
    printf("  ENDED  BY PRIORITY\n");
    for (size_t i = 0; i < s->count; i++) {
        cli_print_name(s->queues[i].name, name_width);
        queue_values(&s->queues[i], values);
        for (int c = 0; c < COLUMN_COUNT; c++)
            printf("  %*" PRIu64, widths[c], values[c]);
        printf("  %-5s  ", s->queues[i].ended ? "yes" : "no");
        print_priorities(&s->queues[i]);
    }
    printf("server: %" PRIu64 " connections, %" PRIu64 " queues, %" PRIu64 " messages, %" PRIu64
           " bytes, up ",
           s->connections, s->queue_total, s->messages, s->bytes);
    print_uptime(s->uptime_ms);
    putchar('\n');
    printf("topics: %" PRIu64 " publishes, %" PRIu64 " unroutable, %" PRIu64 " copies, %" PRIu64
           " skipped, %" PRIu64 " bindings\n",
           s->topic_publishes, s->unroutable, s->copies, s->skipped, s->bindings);
    print_server_memory(s);
    print_flow_table(s, name_width);
}

/* A queue's flow control keys, each with its leading comma. */
static void print_json_flow(const struct ferry_queue_info *q)
{
    uint64_t values[FLOW_COLUMNS];
    static const char *const keys[FLOW_COLUMNS] = {
        "max_length", "max_bytes", "dropped_oldest", "rejected", "blocked",
    };
    flow_values(q, values);
    for (int c = 0; c < FLOW_COLUMNS; c++)
        printf(",\"%s\":%" PRIu64, keys[c], values[c]);
    fputs(",\"overflow\":", stdout);
    cli_print_json_string(q->overflow);
}

static void print_json(const struct ferry_stats *s)
{
    uint64_t values[COLUMN_COUNT];

    printf("{\"server\":{\"connections\":%" PRIu64 ",\"queues\":%" PRIu64
           ",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"uptime_ms\":%" PRIu64
           ",\"topic_publishes\":%" PRIu64 ",\"unroutable\":%" PRIu64 ",\"copies\":%" PRIu64
           ",\"skipped\":%" PRIu64 ",\"bindings\":%" PRIu64
           ",\"memory\":%" PRIu64 ",\"max_memory\":%" PRIu64 ",\"parked\":%" PRIu64
           ",\"duplicates_dropped\":%" PRIu64 ",\"duplicates_evicted\":%" PRIu64 "},"
           "\"queues\":[",
           s->connections, s->queue_total, s->messages, s->bytes, s->uptime_ms,
           s->topic_publishes, s->unroutable, s->copies, s->skipped, s->bindings, s->memory,
           s->max_memory, s->parked, s->duplicates_dropped, s->duplicates_evicted);
    for (size_t i = 0; i < s->count; i++) {
        fputs(i == 0 ? "{\"name\":" : ",{\"name\":", stdout);
        cli_print_json_string(s->queues[i].name);
        queue_values(&s->queues[i], values);
        for (int c = 0; c < COLUMN_COUNT; c++)
            printf(",\"%s\":%" PRIu64, column_keys[c], values[c]);
        printf(",\"ended\":%s,\"depth_by_priority\":[", s->queues[i].ended ? "true" : "false");
        for (unsigned p = 0; p <= FERRY_PRIORITY_MAX; p++)
            printf("%s%" PRIu64, p == 0 ? "" : ",", s->queues[i].depth_by_priority[p]);
        printf("]");
        print_json_flow(&s->queues[i]);
        printf("}");
    }
    printf("]}\n");
}

int cli_cmd_stats(const struct cli_command *self, int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    int exit_code = CLI_EXIT_OK;
    int opt;

    while ((opt = cli_next_option(self, argc, argv, ":hj", options, &exit_code)) > 0)
        json = json || opt == 'j';
    if (opt == CLI_OPT_STOP)
        return exit_code;

    const char *queue = NULL; /* all queues */
    if (optind < argc) {
        exit_code = cli_one_queue(self, argc, argv, &queue);
        if (exit_code != CLI_EXIT_OK)
            return exit_code;
    }
    ferry_conn *conn;
    struct ferry_stats *stats;
    exit_code = cli_connect(self, &conn);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    int status = ferry_stats(conn, queue, &stats);
    ferry_close(conn);
    if (status != FERRY_OK)
        return cli_fail(status, self->name);
    if (json)
        print_json(stats);
    else
        print_table(stats);
    ferry_stats_free(stats); /* ours since ferry_stats() returned it */
    return CLI_EXIT_OK;
}
