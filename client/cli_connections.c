/*
 * cli_connections.c - `ferry connections`: every connection of the broker,
 * the one holding the most unsent output first, so that an operator can
 * name the slow consumer; and `ferry kill ID`, which closes one. Only
 * formats what ferry_connections() returns; text from the network is escaped.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum sort_key { SORT_OUT, SORT_INFLIGHT, SORT_IDLE, SORT_AGE, SORT_ID };

static enum sort_key sort_by;

static uint64_t key_of(const struct ferry_conn_info *c)
{
    switch (sort_by) {
    case SORT_INFLIGHT: return c->inflight;
    case SORT_IDLE: return c->idle_ms;
    case SORT_AGE: return c->age_ms;
    case SORT_ID: return c->id;
    default: return c->out_bytes;
    }
}

/* Largest first; ties by id, newest first. */
static int compare(const void *a, const void *b)
{
    const struct ferry_conn_info *x = a, *y = b;
    uint64_t kx = key_of(x), ky = key_of(y);
    if (kx != ky)
        return kx < ky ? 1 : -1;
    return x->id < y->id ? 1 : (x->id > y->id ? -1 : 0);
}

enum { COLUMN_COUNT = 6 };
static const char *const column_titles[COLUMN_COUNT] = {
    "OUT", "SUBS", "INFLIGHT", "AGE_MS", "IDLE_MS", "ID",
};

static void values_of(const struct ferry_conn_info *c, uint64_t v[COLUMN_COUNT])
{
    const uint64_t in_order[COLUMN_COUNT] = {
        c->out_bytes, c->subscriptions, c->inflight, c->age_ms, c->idle_ms, c->id,
    };
    memcpy(v, in_order, sizeof in_order);
}

static void print_table(const struct ferry_connections *l)
{
    int widths[COLUMN_COUNT], peer_width = (int)strlen("PEER");
    uint64_t v[COLUMN_COUNT];
    for (int k = 0; k < COLUMN_COUNT; k++)
        widths[k] = (int)strlen(column_titles[k]);
    for (size_t i = 0; i < l->count; i++) {
        int len = (int)strlen(l->conns[i].peer);
        peer_width = len > peer_width ? len : peer_width;
        values_of(&l->conns[i], v);
        for (int k = 0; k < COLUMN_COUNT; k++)
            if (cli_decimal_width(v[k]) > widths[k])
                widths[k] = cli_decimal_width(v[k]);
    }
    for (int k = 0; k < COLUMN_COUNT; k++)
        printf("%*s  ", widths[k], column_titles[k]);
    printf("THROTTLED  %-*s  NAME\n", peer_width, "PEER");
    for (size_t i = 0; i < l->count; i++) {
        values_of(&l->conns[i], v);
        for (int k = 0; k < COLUMN_COUNT; k++)
            printf("%*" PRIu64 "  ", widths[k], v[k]);
        printf("%-9s  ", l->conns[i].throttled ? "yes" : "no");
        cli_print_name(l->conns[i].peer, peer_width);
        printf("  ");
        cli_print_name(l->conns[i].name, 0);
        putchar('\n');
    }
}

static void print_json(const struct ferry_connections *l)
{
    printf("{\"connections\": [");
    for (size_t i = 0; i < l->count; i++) {
        const struct ferry_conn_info *c = &l->conns[i];
        printf("%s{\"id\": %" PRIu64 ", \"peer\": ", i ? ", " : "", c->id);
        cli_print_json_string(c->peer);
        printf(", \"name\": ");
        cli_print_json_string(c->name);
        printf(", \"out_bytes\": %" PRIu64 ", \"throttled\": %s, \"subscriptions\": %" PRIu64
               ", \"inflight\": %" PRIu64 ", \"age_ms\": %" PRIu64 ", \"idle_ms\": %" PRIu64 "}",
               c->out_bytes, c->throttled ? "true" : "false", c->subscriptions, c->inflight,
               c->age_ms, c->idle_ms);
    }
    printf("]}\n");
}

static bool parse_sort(const char *text)
{
    static const char *const names[] = { "out", "inflight", "idle", "age", "id" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(text, names[i]) == 0) {
            sort_by = (enum sort_key)i;
            return true;
        }
    }
    return false;
}

int cli_cmd_connections(const struct cli_command *self, int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"sort", required_argument, NULL, 's'},
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    int exit_code = CLI_EXIT_OK;
    int opt;
    sort_by = SORT_OUT;
    while ((opt = cli_next_option(self, argc, argv, ":hjs:", options, &exit_code)) > 0) {
        if (opt == 'j')
            json = true;
        else if (opt == 's' && !parse_sort(optarg))
            return cli_usage_error(self, "--sort takes out, inflight, idle, age or id, not '%s'",
                                   optarg);
    }
    if (opt == CLI_OPT_STOP)
        return exit_code;
    if (optind < argc)
        return cli_usage_error(self, "unexpected argument '%s'", argv[optind]);

    ferry_conn *conn;
    struct ferry_connections *list;
    exit_code = cli_connect(self, &conn);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    int status = ferry_connections(conn, &list);
    ferry_close(conn);
    if (status != FERRY_OK)
        return cli_fail(status, self->name);
    qsort(list->conns, list->count, sizeof list->conns[0], compare);
    if (json)
        print_json(list);
    else
        print_table(list);
    ferry_connections_free(list); /* ours since ferry_connections() returned it */
    return CLI_EXIT_OK;
}

int cli_cmd_kill(const struct cli_command *self, int argc, char **argv)
{
    static const struct option options[] = {
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int exit_code = CLI_EXIT_OK;
    int opt;
    while ((opt = cli_next_option(self, argc, argv, ":h", options, &exit_code)) > 0)
        continue;
    if (opt == CLI_OPT_STOP)
        return exit_code;
    uint64_t id;
    if (optind != argc - 1)
        return cli_usage_error(self, "expected one connection ID");
    if (!cli_parse_uint(argv[optind], 1, UINT64_MAX, &id))
        return cli_usage_error(self, "bad connection ID '%s'", argv[optind]);
    ferry_conn *conn;
    exit_code = cli_connect(self, &conn);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    int status = ferry_kill(conn, id);
    ferry_close(conn);
    return status == FERRY_OK ? CLI_EXIT_OK : cli_fail(status, self->name);
}
