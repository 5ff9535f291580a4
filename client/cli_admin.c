/*
 * cli_admin.c - the queue administration commands of `ferry`: end, reopen,
 * join, declare, delete, purge. Each is one blocking libferry round trip;
 * connecting and error reporting are cli_util.c's.
 */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"

/* Options of the commands that take nothing but QUEUE. */
static const struct option queue_only_options[] = {
    {"url", required_argument, NULL, 'U'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses `ferry CMD QUEUE` (no command-specific options). Returns true
 * with *queue set to go on; false when the command is over (help shown,
 * or a usage error reported) with *exit_code set. */
static bool parse_queue_only(const struct cli_command *self, int argc, char **argv,
                             const char **queue, int *exit_code)
{
    if (cli_next_option(self, argc, argv, ":h", queue_only_options, exit_code) == CLI_OPT_STOP)
        return false;
    *exit_code = cli_one_queue(self, argc, argv, queue);
    return *exit_code == CLI_EXIT_OK;
}

/* Runs a command that is `ferry CMD QUEUE` over one libferry call. */
static int run_queue_call(const struct cli_command *self, int argc, char **argv,
                          int (*call)(ferry_conn *c, const char *queue))
{
    const char *queue;
    ferry_conn *conn;
    int exit_code;

    if (!parse_queue_only(self, argc, argv, &queue, &exit_code))
        return exit_code;
    exit_code = cli_connect(self, &conn);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    int status = call(conn, queue);
    ferry_close(conn);
    return status == FERRY_OK ? CLI_EXIT_OK : cli_fail(status, self->name);
}

int cli_cmd_end(const struct cli_command *self, int argc, char **argv)
{
    return run_queue_call(self, argc, argv, ferry_end);
}

int cli_cmd_reopen(const struct cli_command *self, int argc, char **argv)
{
    return run_queue_call(self, argc, argv, ferry_reopen);
}

int cli_cmd_declare(const struct cli_command *self, int argc, char **argv)
{
    return run_queue_call(self, argc, argv, ferry_declare);
}

int cli_cmd_delete(const struct cli_command *self, int argc, char **argv)
{
    return run_queue_call(self, argc, argv, ferry_delete);
}

int cli_cmd_purge(const struct cli_command *self, int argc, char **argv)
{
    const char *queue;
    ferry_conn *conn;
    uint64_t purged = 0;
    int exit_code;

    if (!parse_queue_only(self, argc, argv, &queue, &exit_code))
        return exit_code;
    exit_code = cli_connect(self, &conn);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    int status = ferry_purge(conn, queue, &purged);
    ferry_close(conn);
    if (status != FERRY_OK)
        return cli_fail(status, self->name);
    printf("%" PRIu64 "\n", purged);
    return CLI_EXIT_OK;
}

int cli_cmd_join(const struct cli_command *self, int argc, char **argv)
{
    const char *queue;
    int timeout_ms;
    int exit_code;
    if (!cli_queue_and_timeout(self, argc, argv, &queue, &timeout_ms, &exit_code))
        return exit_code;

    ferry_conn *conn;
    exit_code = cli_connect(self, &conn);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    int status = ferry_join(conn, queue, timeout_ms);
    ferry_close(conn);
    if (status == FERRY_ETIMEDOUT) {
        cli_error("join: timed out: messages of '%s' are still unacknowledged", queue);
        return CLI_EXIT_TIMEOUT;
    }
    return status == FERRY_OK ? CLI_EXIT_OK : cli_fail(status, self->name);
}
