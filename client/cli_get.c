/*
 * cli_get.c - `ferry get`: one blocking ferry_get(), the payload printed,
 * then acked once it is written. The simple, synchronous counterpart of
 * cli_consume.c.
 */
#include <stdio.h>

#include "cli.h"

/* Prints the message and acks it only once stdout took it. */
static int print_and_ack(const struct cli_command *self, ferry_conn *conn,
                         const ferry_message *m)
{
    if (!cli_print_payload(m->data, m->len) || fflush(stdout) != 0) {
        cli_error("%s: cannot write to standard output", self->name);
        return CLI_EXIT_BROKEN; /* unacked: it goes back to the queue */
    }
    int status = ferry_ack(conn, m->tag);
    if (status == FERRY_OK)
        status = ferry_flush(conn, -1); /* the ack leaves before the close */
    return status == FERRY_OK ? CLI_EXIT_OK : cli_fail(status, "ack");
}

int cli_cmd_get(const struct cli_command *self, int argc, char **argv)
{
    const char *queue;
    int timeout_ms;
    int exit_code;
    if (!cli_queue_and_timeout(self, argc, argv, &queue, &timeout_ms, &exit_code))
        return exit_code;

    ferry_conn *conn;
    ferry_message *m = NULL;
    exit_code = cli_connect(self, &conn);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    int status = ferry_get(conn, queue, timeout_ms, &m);
    if (status == FERRY_OK) {
        exit_code = print_and_ack(self, conn, m);
        ferry_message_free(m); /* ours since ferry_get() returned it */
    } else if (status == FERRY_ETIMEDOUT) {
        cli_error("%s: no message in '%s' in time", self->name, queue);
        exit_code = CLI_EXIT_TIMEOUT;
    } else {
        exit_code = cli_fail(status, self->name);
    }
    ferry_close(conn);
    return exit_code;
}
