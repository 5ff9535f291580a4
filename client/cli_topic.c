/*
 * cli_topic.c - the topic commands of `ferry`: bind, unbind and list a
 * queue's patterns, and the check of topics and patterns on the command line.
 * Publishing to a topic is `ferry publish --topic` (cli_publish.c),
 * subscribing `ferry subscribe` (cli_consume.c).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ferry_proto.h"

bool cli_topic_valid(const struct cli_command *cmd, const char *text, bool pattern)
{
    struct ferry_bytes b = {(const uint8_t *)text, strlen(text)};

    if (pattern ? ferry_pattern_valid(b) : ferry_topic_valid(b))
        return true;
    cli_usage_error(cmd, "bad %s '%.300s' (words of A-Z a-z 0-9 _ - : separated by '.'%s; "
                    "at most %u bytes, %u words)",
                    pattern ? "pattern" : "topic", text, pattern ? ", or * or #" : "",
                    FERRY_TOPIC_MAX, FERRY_TOPIC_WORDS_MAX);
    return false;
}

/* `ferry bind|unbind QUEUE PATTERN...`: one call per pattern. */
static int run_binding(const struct cli_command *self, int argc, char **argv,
                       int (*call)(ferry_conn *c, const char *queue, const char *pattern))
{
    static const struct option options[] = {
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int exit_code = CLI_EXIT_OK;
    if (cli_next_option(self, argc, argv, ":h", options, &exit_code) == CLI_OPT_STOP)
        return exit_code;
    if (argc - optind < 2)
        return cli_usage_error(self, "expected QUEUE PATTERN...");
    const char *queue = argv[optind];
    if (!cli_queue_valid(self, queue))
        return CLI_EXIT_USAGE;
    for (int i = optind + 1; i < argc; i++) {
        if (!cli_topic_valid(self, argv[i], true))
            return CLI_EXIT_USAGE;
    }
    ferry_conn *conn;
    exit_code = cli_connect(self, &conn);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    int status = FERRY_OK;
    for (int i = optind + 1; i < argc && status == FERRY_OK; i++)
        status = call(conn, queue, argv[i]);
    ferry_close(conn);
    return status == FERRY_OK ? CLI_EXIT_OK : cli_fail(status, self->name);
}

int cli_cmd_bind(const struct cli_command *self, int argc, char **argv)
{
    return run_binding(self, argc, argv, ferry_bind);
}

int cli_cmd_unbind(const struct cli_command *self, int argc, char **argv)
{
    return run_binding(self, argc, argv, ferry_unbind);
}

int cli_cmd_bindings(const struct cli_command *self, int argc, char **argv)
{
    static const struct option options[] = {
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int exit_code = CLI_EXIT_OK;
    if (cli_next_option(self, argc, argv, ":h", options, &exit_code) == CLI_OPT_STOP)
        return exit_code;
    const char *queue;
    exit_code = cli_one_queue(self, argc, argv, &queue);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    ferry_conn *conn;
    exit_code = cli_connect(self, &conn);
    if (exit_code != CLI_EXIT_OK)
        return exit_code;
    char **patterns = NULL;
    size_t count = 0;
    int status = ferry_bindings(conn, queue, &patterns, &count);
    ferry_close(conn);
    if (status != FERRY_OK)
        return cli_fail(status, self->name);
    for (size_t i = 0; i < count; i++) {
        /* From the network: only what a broker may send reaches the terminal. */
        struct ferry_bytes p = {(const uint8_t *)patterns[i], strlen(patterns[i])};
        if (ferry_pattern_valid(p))
            puts(patterns[i]);
        else
            cli_error("%s: the broker sent a pattern that is not one; left out", self->name);
    }
    ferry_bindings_free(patterns);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_BROKEN;
}
