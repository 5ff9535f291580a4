/*
 * cli_dead.c - `ferry peek` and `ferry move`: looking at a queue's ready
 * messages without consuming them (a dead-letter queue, typically, with
 * the headers that say where each came from), and moving them back.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ferry_proto.h"

/* Prints the headers as KEY=VALUE pairs, non-printable bytes as '?'. */
static void print_headers(const ferry_message *m)
{
    struct ferry_iter it;
    struct ferry_kv h;
    const char *sep = "";
    ferry_headers_iter_init(&it, (struct ferry_bytes){ m->headers, m->headers_len });
    while (ferry_headers_next(&it, &h)) {
        fputs(sep, stdout);
        for (size_t i = 0; i < h.key.len; i++)
            putchar(h.key.ptr[i] >= 0x20 && h.key.ptr[i] < 0x7f ? h.key.ptr[i] : '?');
        putchar('=');
        for (size_t i = 0; i < h.value.len; i++)
            putchar(h.value.ptr[i] >= 0x20 && h.value.ptr[i] < 0x7f ? h.value.ptr[i] : '?');
        sep = " ";
    }
    putchar('\t');
}

int cli_cmd_peek(const struct cli_command *self, int argc, char **argv)
{
    static const struct option options[] = {
        {"count", required_argument, NULL, 'n'},
        {"headers", no_argument, NULL, 'H'},
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t count = FERRY_PEEK_DEFAULT;
    bool headers = false;
    int exit_code = CLI_EXIT_OK;
    int opt;
    while ((opt = cli_next_option(self, argc, argv, ":hn:H", options, &exit_code)) > 0) {
        if (opt == 'n' && !cli_parse_uint(optarg, 1, FERRY_PEEK_MAX, &count))
            return cli_usage_error(self, "bad count '%s' (expected 1..%u)", optarg, FERRY_PEEK_MAX);
        if (opt == 'H')
            headers = true;
    }
    if (opt == CLI_OPT_STOP)
        return exit_code;
    const char *queue;
    exit_code = cli_one_queue(self, argc, argv, &queue);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;

    ferry_conn *conn;
    exit_code = cli_connect(self, &conn);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    ferry_message **msgs;
    size_t n;
    int status = ferry_peek(conn, queue, (size_t)count, &msgs, &n);
    ferry_close(conn);
    if (status != FERRY_OK)
        return cli_fail(status, self->name);
    bool written = true;
    for (size_t i = 0; i < n && written; i++) {
        if (headers)
            print_headers(msgs[i]);
        written = cli_print_payload(msgs[i]->data, msgs[i]->len);
    }
    ferry_peek_free(msgs, n);
    if (fflush(stdout) != 0 || !written) {
        cli_error("%s: cannot write standard output", self->name);
        return CLI_EXIT_BROKEN;
    }
    return CLI_EXIT_OK;
}

int cli_cmd_move(const struct cli_command *self, int argc, char **argv)
{
    static const struct option options[] = {
        {"to", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *to = NULL;
    uint64_t count = 0;
    int exit_code = CLI_EXIT_OK;
    int opt;
    while ((opt = cli_next_option(self, argc, argv, ":hn:t:", options, &exit_code)) > 0) {
        if (opt == 'n' && !cli_parse_uint(optarg, 1, UINT64_MAX, &count))
            return cli_usage_error(self, "bad count '%s'", optarg);
        if (opt == 't') {
            if (!cli_queue_valid(self, optarg))
                return CLI_EXIT_USAGE;
            to = optarg;
        }
    }
    if (opt == CLI_OPT_STOP)
        return exit_code;
    const char *queue;
    exit_code = cli_one_queue(self, argc, argv, &queue);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;

    ferry_conn *conn;
    exit_code = cli_connect(self, &conn);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    uint64_t moved = 0;
    int status = ferry_move(conn, queue, to, count, &moved);
    ferry_close(conn);
    if (status != FERRY_OK)
        return cli_fail(status, self->name);
    printf("%" PRIu64 "\n", moved);
    return CLI_EXIT_OK;
}
