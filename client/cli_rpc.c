/*
 * cli_rpc.c - `ferry request` (send one request, print its reply) and
 * `ferry reply` (serve requests from a queue: echo them, or answer with
 * the output of a command fed the request on its standard input). Both
 * are blocking loops over libferry's ferry_request / ferry_get.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "ferry_proto.h"

/* What one --exec run may print: a reply is one message. */
#define EXEC_OUTPUT_MAX (16u * 1024u * 1024u)

int cli_cmd_request(const struct cli_command *self, int argc, char **argv)
{
    static const struct option options[] = {
        {"timeout", required_argument, NULL, 't'},
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int timeout_ms = 30000;
    int exit_code = CLI_EXIT_OK;
    int opt;
    while ((opt = cli_next_option(self, argc, argv, ":ht:", options, &exit_code)) > 0) {
        if (opt == 't' && !cli_parse_seconds(optarg, &timeout_ms))
            return cli_usage_error(self, "bad --timeout '%s' (expected seconds)", optarg);
    }
    if (opt == CLI_OPT_STOP)
        return exit_code;
    if (argc - optind != 2)
        return cli_usage_error(self, "expected QUEUE MESSAGE");
    const char *queue = argv[optind];
    const char *message = argv[optind + 1];
    if (!cli_queue_valid(self, queue))
        return CLI_EXIT_USAGE;

    ferry_conn *conn;
    exit_code = cli_connect(self, &conn);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    ferry_message *reply = NULL;
    int status = ferry_request(conn, queue, message, strlen(message), NULL, timeout_ms, &reply);
    if (status == FERRY_OK) {
        exit_code = cli_print_payload(reply->data, reply->len) && fflush(stdout) == 0
                        ? CLI_EXIT_OK
                        : CLI_EXIT_BROKEN;
        ferry_message_free(reply);
    } else if (status == FERRY_ETIMEDOUT) {
        cli_error("%s: no reply from '%s' in time", self->name, queue);
        exit_code = CLI_EXIT_TIMEOUT;
    } else {
        exit_code = cli_fail(status, self->name);
    }
    ferry_close(conn);
    return exit_code;
}

/* Runs `sh -c cmd` with the request on its standard input; *out (malloc'd,
 * the caller frees it) gets what it printed. false if it could not run,
 * printed too much, or did not exit 0. */
static bool run_exec(const char *cmd, const ferry_message *m, char **out, size_t *out_len)
{
    char path[] = "/tmp/ferry-reply-XXXXXX";
    int in = mkstemp(path);
    if (in < 0)
        return false;
    unlink(path);
    bool ok = write(in, m->data, m->len) == (ssize_t)m->len && lseek(in, 0, SEEK_SET) == 0;
    int fds[2];
    if (!ok || pipe(fds) != 0) {
        close(in);
        return false;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in, 0);
        dup2(fds[1], 1);
        close(in);
        close(fds[0]);
        close(fds[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(in);
    close(fds[1]);
    size_t len = 0, cap = 4096;
    char *buf = pid > 0 ? malloc(cap) : NULL;
    ssize_t got = 0;
    while (buf != NULL && (got = read(fds[0], buf + len, cap - len)) > 0) {
        len += (size_t)got;
        if (len == cap && cap < EXEC_OUTPUT_MAX) {
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL)
                break;
            buf = grown;
            cap *= 2;
        } else if (len == cap) {
            break; /* too much for one reply */
        }
    }
    close(fds[0]);
    int status = -1;
    if (pid > 0)
        waitpid(pid, &status, 0);
    ok = buf != NULL && got == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) {
        free(buf);
        return false;
    }
    *out = buf; /* ownership passes to the caller */
    *out_len = len;
    return true;
}

/* Answers one request, acks it. */
static int serve_one(const struct cli_command *self, ferry_conn *conn, const ferry_message *m,
                     const char *exec)
{
    char *out = NULL;
    size_t out_len = 0;
    if (exec != NULL && !run_exec(exec, m, &out, &out_len)) {
        cli_error("%s: '%s' failed on a request; it goes back to the queue", self->name, exec);
        return CLI_EXIT_BROKEN;
    }
    /* Confirmed one by one: a requester that is gone is told apart. */
    const struct ferry_publish_options confirm = { .flags = FERRY_PUBLISH_CONFIRM };
    int status = exec != NULL ? ferry_reply(conn, m, out, out_len, &confirm)
                              : ferry_reply(conn, m, m->data, m->len, &confirm);
    free(out);
    if (status == FERRY_EINVAL)
        cli_error("%s: a message without reply_to and correlation_id is acked unanswered",
                  self->name);
    else if (status == FERRY_ESERVER && ferry_server_error(NULL) == FERRY_CODE_NOT_FOUND)
        cli_error("%s: the requester is gone (its reply queue does not exist); acked",
                  self->name);
    else if (status != FERRY_OK)
        return cli_fail(status, self->name);
    status = ferry_ack(conn, m->tag);
    return status == FERRY_OK ? CLI_EXIT_OK : cli_fail(status, "ack");
}

int cli_cmd_reply(const struct cli_command *self, int argc, char **argv)
{
    static const struct option options[] = {
        {"exec", required_argument, NULL, 'e'},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *exec = NULL;
    uint64_t limit = 0;
    int idle_ms = -1;
    int exit_code = CLI_EXIT_OK;
    int opt;
    while ((opt = cli_next_option(self, argc, argv, ":he:n:t:", options, &exit_code)) > 0) {
        if (opt == 'e')
            exec = optarg;
        if (opt == 'n' && !cli_parse_uint(optarg, 1, UINT64_MAX, &limit))
            return cli_usage_error(self, "bad --count '%s' (expected a positive number)", optarg);
        if (opt == 't' && !cli_parse_seconds(optarg, &idle_ms))
            return cli_usage_error(self, "bad --timeout '%s' (expected seconds)", optarg);
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
    for (uint64_t served = 0; exit_code == CLI_EXIT_OK && (limit == 0 || served < limit); served++) {
        ferry_message *m = NULL;
        int status = ferry_get(conn, queue, idle_ms, &m);
        if (status == FERRY_ETIMEDOUT || status == FERRY_EENDED) {
            /* Idle (or the queue ended): done; short of --count is a timeout. */
            exit_code = limit != 0 ? CLI_EXIT_TIMEOUT : CLI_EXIT_OK;
            break;
        }
        if (status != FERRY_OK) {
            exit_code = cli_fail(status, self->name);
            break;
        }
        exit_code = serve_one(self, conn, m, exec);
        ferry_message_free(m); /* ours since ferry_get() returned it */
    }
    if (exit_code == CLI_EXIT_OK) {
        int status = ferry_flush(conn, -1); /* replies and acks leave before the close */
        if (status != FERRY_OK)
            exit_code = cli_fail(status, self->name);
    }
    ferry_close(conn);
    return exit_code;
}
