/*
 * cli.c - `ferry`, the command-line client of the ferry broker: the table
 * of commands with their help texts, the global options, and main().
 * Each command lives in its own cli_*.c; this file knows none of their
 * internals, only their entry points (cli.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ferry_proto.h"

#define EXIT_STATUS_HELP \
    "Exit status:\n" \
    "  0  success\n" \
    "  1  the broker refused the request (\"ferry: CODE: text\" on stderr)\n" \
    "  2  usage error\n" \
    "  3  cannot connect to the broker\n" \
    "  4  timeout\n" \
    "  5  connection lost, protocol error, or local failure\n" \
    "  130, 143  consume stopped by SIGINT, SIGTERM\n"

#define COMMON_OPTIONS_HELP \
    "      --url URL          broker address (default: $FERRY_URL)\n" \
    "  -h, --help             show this help\n"

static const struct cli_command commands[] = {
    {"publish", cli_cmd_publish, "publish messages (arguments, or one per line of stdin)",
     "Usage: ferry publish [-H KEY=VALUE]... [-p N] [--delay DURATION] [--at TIME]\n"
     "                     [--ttl DURATION] [--topic] QUEUE|TOPIC [MESSAGE...]\n"
     "\n"
     "Publishes each MESSAGE to QUEUE (created if missing), or with --topic to\n"
     "TOPIC: a copy goes to every queue bound to it by a matching pattern\n"
     "(`ferry bind`). Without MESSAGE, publishes one message per line of\n"
     "standard input, the newline removed. Exits 0 only once the broker has\n"
     "confirmed every message.\n"
     "\n"
     "Options:\n"
     "  -H, --header KEY=VALUE\n"
     "                         add a header to every message (repeatable, at most 64)\n"
     "  -p, --priority N       send every message at priority N, 0 (lowest) to 9\n"
     "                         (highest; default: the queue's, 0 unless configured)\n"
     "      --delay DURATION   deliver no sooner than DURATION from now\n"
     "                         (250ms, 5s, 2m, 1h, 1d; a bare number is seconds)\n"
     "      --at TIME          deliver no sooner than TIME, in Unix seconds\n"
     "                         (e.g. $(date -d 10:00 +%s)); with --delay, the later\n"
     "                         wins. A delayed message is published on its own,\n"
     "                         not in a batch, and counts in `ferry stats` DELAYED\n"
     "      --ttl DURATION     a message not delivered within DURATION never is\n"
     "                         (default: the queue's ttl, none unless configured)\n"
     "  -T, --topic            the first operand is a topic (words separated by '.')\n"
     COMMON_OPTIONS_HELP},
    {"consume", cli_cmd_consume, "print and acknowledge messages as they arrive",
     "Usage: ferry consume [-n COUNT] [--timeout SECONDS] [--credit N] [--no-ack] QUEUE\n"
     "\n"
     "Subscribes to QUEUE and prints each message's payload on its own line,\n"
     "acknowledging it once it is written. Stops after COUNT messages, when\n"
     "no message came for SECONDS, or at end of stream (the queue was ended\n"
     "and drained). An idle timeout is an error (exit 4) only with -n, when\n"
     "fewer than COUNT messages came.\n"
     "\n"
     "Options:\n"
     "  -n, --count COUNT      stop after COUNT messages\n"
     "  -t, --timeout SECONDS  stop when no message came for SECONDS (e.g. 0.5)\n"
     "  -c, --credit N         unacknowledged messages in flight, 1..65536 (default 256)\n"
     "      --no-ack           print without acknowledging: the messages go back\n"
     "                         to the queue when ferry exits (at most N are seen)\n"
     COMMON_OPTIONS_HELP
     "\n"
     "SIGINT and SIGTERM stop it cleanly (exit 130 and 143): what was printed\n"
     "is acknowledged, the rest goes back to the queue.\n"},
    {"subscribe", cli_cmd_subscribe, "print messages published to topics matching PATTERNs",
     "Usage: ferry subscribe [-n COUNT] [--timeout SECONDS] [--credit N] [--no-ack]\n"
     "                       PATTERN...\n"
     "\n"
     "Declares a temporary queue (named by the broker, deleted when ferry\n"
     "exits), binds it to each PATTERN and prints each message's payload on\n"
     "its own line, as `ferry consume` does. A pattern is words separated by\n"
     "'.', where * stands for exactly one word and # for zero or more:\n"
     "'orders.*', 'orders.#', '#.created'.\n"
     "\n"
     "Options:\n"
     "  -n, --count COUNT      stop after COUNT messages\n"
     "  -t, --timeout SECONDS  stop when no message came for SECONDS (e.g. 0.5)\n"
     "  -c, --credit N         unacknowledged messages in flight, 1..65536 (default 256)\n"
     "      --no-ack           print without acknowledging (at most N are seen)\n"
     COMMON_OPTIONS_HELP},
    {"bind", cli_cmd_bind, "bind a queue to topic patterns",
     "Usage: ferry bind QUEUE PATTERN...\n"
     "\n"
     "Binds QUEUE (created if missing) to each PATTERN: a publish to a\n"
     "matching topic puts a copy into QUEUE. Words separated by '.'; * is\n"
     "exactly one word, # zero or more. Bindings last as long as the queue;\n"
     "list them in ferryd.conf (bind = PATTERN) to have them at start.\n"
     "\n"
     "Options:\n"
     COMMON_OPTIONS_HELP},
    {"unbind", cli_cmd_unbind, "remove topic patterns of a queue",
     "Usage: ferry unbind QUEUE PATTERN...\n"
     "\n"
     "Removes each binding of QUEUE to PATTERN; exits 1 (NOT_FOUND) at the\n"
     "first that does not exist.\n"
     "\n"
     "Options:\n"
     COMMON_OPTIONS_HELP},
    {"bindings", cli_cmd_bindings, "list the topic patterns of a queue",
     "Usage: ferry bindings QUEUE\n"
     "\n"
     "Prints each pattern QUEUE is bound by, one per line, newest first (a\n"
     "run of # is shown as one #). Exits 1 (NOT_FOUND) if there is no such\n"
     "queue.\n"
     "\n"
     "Options:\n"
     COMMON_OPTIONS_HELP},
    {"request", cli_cmd_request, "send a request and print its reply",
     "Usage: ferry request [--timeout SECONDS] QUEUE MESSAGE\n"
     "\n"
     "Publishes MESSAGE to QUEUE as a request (headers reply_to, a private\n"
     "temporary queue, and correlation_id) and prints the reply's payload.\n"
     "Exits 4 if no reply came within SECONDS (default 30).\n"
     "\n"
     "Options:\n"
     "  -t, --timeout SECONDS  wait at most SECONDS for the reply\n"
     COMMON_OPTIONS_HELP},
    {"reply", cli_cmd_reply, "serve requests from a queue: echo, or run a command",
     "Usage: ferry reply [--exec CMD] [-n COUNT] [--timeout SECONDS] QUEUE\n"
     "\n"
     "Takes requests from QUEUE one at a time and answers each: with its own\n"
     "payload, or with --exec with what `sh -c CMD` prints when fed the\n"
     "request on its standard input (a command that fails leaves the request\n"
     "unacked and stops, exit 5). Then acks the request (also when the\n"
     "requester is gone: its reply is refused NOT_FOUND). Stops after COUNT\n"
     "requests (exit 4 if the queue stayed idle for SECONDS before), or when\n"
     "it stayed idle for SECONDS (exit 0).\n"
     "\n"
     "Options:\n"
     "  -e, --exec CMD         answer with the output of CMD (at most 16 MiB)\n"
     "  -n, --count COUNT      stop after COUNT requests\n"
     "  -t, --timeout SECONDS  stop when no request came for SECONDS\n"
     COMMON_OPTIONS_HELP},
    {"get", cli_cmd_get, "print and acknowledge one message",
     "Usage: ferry get [--timeout SECONDS] QUEUE\n"
     "\n"
     "Takes one message from QUEUE, prints its payload and a newline, and\n"
     "acknowledges it. Waits for one without limit unless --timeout is given\n"
     "(then exits 4 if none came). Exits 1 (ENDED) if the queue is ended and\n"
     "drained.\n"
     "\n"
     "Options:\n"
     "  -t, --timeout SECONDS  wait at most SECONDS (0: do not wait)\n"
     COMMON_OPTIONS_HELP},
    {"end", cli_cmd_end, "mark a queue ended: refuse further publishes",
     "Usage: ferry end QUEUE\n"
     "\n"
     "Marks QUEUE ended: further publishes are refused (ENDED) until\n"
     "`ferry reopen`; consumers get end of stream once every message published\n"
     "before is acknowledged.\n"
     "\n"
     "Options:\n"
     COMMON_OPTIONS_HELP},
    {"reopen", cli_cmd_reopen, "accept publishes to an ended queue again",
     "Usage: ferry reopen QUEUE\n"
     "\n"
     "Lifts the end mark of QUEUE: publishes are accepted again.\n"
     "\n"
     "Options:\n"
     COMMON_OPTIONS_HELP},
    {"join", cli_cmd_join, "wait until everything published so far is acknowledged",
     "Usage: ferry join [--timeout SECONDS] QUEUE\n"
     "\n"
     "Waits until every message published to QUEUE before the call has been\n"
     "acknowledged or dropped. Exits 4 if SECONDS pass first, 1 (NOT_FOUND)\n"
     "if the queue is deleted meanwhile.\n"
     "\n"
     "Options:\n"
     "  -t, --timeout SECONDS  wait at most SECONDS (default: without limit)\n"
     COMMON_OPTIONS_HELP},
    {"declare", cli_cmd_declare, "create a queue if it does not exist",
     "Usage: ferry declare QUEUE\n"
     "\n"
     "Creates QUEUE if it does not exist yet.\n"
     "\n"
     "Options:\n"
     COMMON_OPTIONS_HELP},
    {"delete", cli_cmd_delete, "delete a queue and its ready messages",
     "Usage: ferry delete QUEUE\n"
     "\n"
     "Deletes QUEUE: its ready messages are dropped and its consumers get end\n"
     "of stream.\n"
     "\n"
     "Options:\n"
     COMMON_OPTIONS_HELP},
    {"purge", cli_cmd_purge, "drop the ready messages of a queue, print how many",
     "Usage: ferry purge QUEUE\n"
     "\n"
     "Drops the ready and delayed messages of QUEUE (not those in flight) and\n"
     "prints how many were dropped.\n"
     "\n"
     "Options:\n"
     COMMON_OPTIONS_HELP},
    {"peek", cli_cmd_peek, "print a queue's first ready messages without consuming them",
     "Usage: ferry peek [-n COUNT] [-H] QUEUE\n"
     "\n"
     "Prints the payloads of the first COUNT (default 10, at most 100) ready\n"
     "messages of QUEUE, one per line, in the order they would be delivered,\n"
     "and leaves them there: the way to look at a dead-letter queue.\n"
     "\n"
     "Options:\n"
     "  -n, --count COUNT      how many (1..100; fewer if they would not fit a frame)\n"
     "  -H, --headers          print each message's headers first, as KEY=VALUE\n"
     "                         pairs and a tab (dlq-queue, dlq-attempts, dlq-reason\n"
     "                         say where a dead letter came from and why)\n"
     COMMON_OPTIONS_HELP},
    {"move", cli_cmd_move, "move a queue's ready messages (dead letters back)",
     "Usage: ferry move [--to QUEUE] [-n COUNT] QUEUE\n"
     "\n"
     "Moves the ready messages of QUEUE, front first, back to the queue each\n"
     "one's dlq-queue header names (stopping at a message without one), or to\n"
     "--to QUEUE; prints how many moved. Moved messages lose their dlq-*\n"
     "headers and their attempts count from 1 again.\n"
     "\n"
     "Options:\n"
     "  -t, --to QUEUE         move them all to QUEUE\n"
     "  -n, --count COUNT      move at most COUNT (default: all)\n"
     COMMON_OPTIONS_HELP},
    {"stats", cli_cmd_stats, "show queue and server statistics",
     "Usage: ferry stats [--json] [QUEUE]\n"
     "\n"
     "Prints a table of every queue (or of QUEUE only) and a line about the\n"
     "server. With --json, prints one JSON object instead:\n"
     "  {\"server\": {\"connections\", \"queues\", \"messages\", \"bytes\", \"uptime_ms\",\n"
     "              \"topic_publishes\", \"unroutable\", \"copies\", \"skipped\", \"bindings\"},\n"
     "   \"queues\": [{\"name\", \"depth\", \"inflight\", \"consumers\", \"published\",\n"
     "               \"delivered\", \"acked\", \"redelivered\", \"dropped\", \"expired\",\n"
     "               \"bytes\", \"ended\", \"depth_by_priority\": [level 0, ..., level 9],\n"
     "               \"delayed\", \"bindings\", \"dead_lettered\", \"timeouts\"}, ...]}\n"
     "DELAYED counts messages waiting for their time (not in DEPTH); EXPIRED those\n"
     "past their time to live, dropped without being delivered; DEAD those that\n"
     "used up max_attempts; TIMEOUTS deliveries past their ack deadline.\n"
     "\n"
     "Options:\n"
     "  -j, --json             print JSON\n"
     COMMON_OPTIONS_HELP},
    {"connections", cli_cmd_connections, "show every connection: output waiting, messages in flight",
     "Usage: ferry connections [--json] [--sort KEY]\n"
     "\n"
     "Prints one line per connection of the broker: the bytes the broker holds\n"
     "for it unsent (OUT: a slow consumer has many), its subscriptions, the\n"
     "messages it has not acked, its age and how long since the broker heard\n"
     "from it (ms), its id (for ferry kill), whether it is throttled, its peer\n"
     "(tcp:ADDR:PORT, or unix:pid=PID,uid=UID) and the name it gave. Sorted\n"
     "by KEY, largest first. With --json, prints one JSON object instead:\n"
     "  {\"connections\": [{\"id\", \"peer\", \"name\", \"out_bytes\", \"throttled\",\n"
     "                    \"subscriptions\", \"inflight\", \"age_ms\", \"idle_ms\"}, ...]}\n"
     "\n"
     "Options:\n"
     "  -s, --sort KEY         out (default), inflight, idle, age or id\n"
     "  -j, --json             print JSON\n"
     COMMON_OPTIONS_HELP},
    {"kill", cli_cmd_kill, "close one connection of the broker",
     "Usage: ferry kill ID\n"
     "\n"
     "Closes the broker's connection ID (see ferry connections): it gets a\n"
     "fatal KILLED error, and the messages it has not acked go back to their\n"
     "queues for other consumers.\n"
     "\n"
     "Options:\n"
     COMMON_OPTIONS_HELP},
};

#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

static void print_main_help(void)
{
    printf("Usage: ferry [--url URL] [--reconnect] COMMAND [ARGUMENTS...]\n"
           "       ferry COMMAND --help\n"
           "       ferry --help | --version\n"
           "\n"
           "The command-line client of the ferry message broker.\n"
           "\n"
           "Commands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        printf("  %-8s  %s\n", commands[i].name, commands[i].summary);
    printf("\n"
           "Options:\n"
           "      --url URL   broker address: unix:PATH or tcp://HOST:PORT\n"
           "                  (default: $FERRY_URL, else %s)\n"
           "      --reconnect when the connection breaks, connect again (with\n"
           "                  backoff): publish sends its unconfirmed messages\n"
           "                  again, each queued once; consume subscribes again\n"
           "  -h, --help      show this help\n"
           "  -V, --version   show the version\n"
           "\n"
           "Environment:\n"
           "  FERRY_URL       broker address when --url is not given\n"
           "\n" EXIT_STATUS_HELP
           "\n"
           "See ferry(1) for details and examples.\n",
           "unix:" FERRY_DEFAULT_SOCKET);
}

static const struct cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Writes out stdout: a success is one only if the output arrived (a full
 * disk...). A failure exit code was reported already and stays. */
static int finish_output(int code)
{
    bool written = fflush(stdout) == 0 && !ferror(stdout);

    if (written || code != CLI_EXIT_OK)
        return code;
    cli_error("cannot write to standard output");
    return CLI_EXIT_BROKEN;
}

int main(int argc, char **argv)
{
    static const struct option global_options[] = {
        {"url", required_argument, NULL, 'U'},
        {"reconnect", no_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int optind_before = optind;
    int opt;

    opterr = 0; /* errors are reported by cli_option_error(), on one line */
    /* "+": stop at the command name; the command parses the rest itself. */
    while ((opt = getopt_long(argc, argv, "+:hV", global_options, NULL)) != -1) {
        switch (opt) {
        case 'U':
            cli_url = optarg;
            break;
        case 'R':
            cli_reconnect = true;
            break;
        case 'h':
            print_main_help();
            return finish_output(CLI_EXIT_OK);
        case 'V':
            printf("ferry %s\n", FERRY_VERSION_STRING);
            return finish_output(CLI_EXIT_OK);
        default:
            return cli_option_error(NULL, opt, argv, optind_before);
        }
        optind_before = optind;
    }
    if (optind >= argc) {
        cli_error("missing command; see 'ferry --help'");
        return CLI_EXIT_USAGE;
    }
    const struct cli_command *cmd = find_command(argv[optind]);
    if (cmd == NULL) {
        cli_error("unknown command '%s'; see 'ferry --help'", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    int cmd_argc = argc - optind;
    char **cmd_argv = argv + optind;
    optind = 0; /* glibc: a full re-initialisation for the command's own options */
    return finish_output(cmd->run(cmd, cmd_argc, cmd_argv));
}
