/*
 * cli.h - what the files of the `ferry` command-line tool share: exit
 * codes, the command table entry, and helpers for options, connecting and
 * reporting errors. Private to the tool: libferry never includes it.
 */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

/* Exit codes: documented in `ferry --help` and ferry(1); scripts rely on them. */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_REFUSED = 1,  /* the broker refused (an ERROR frame) */
    CLI_EXIT_USAGE = 2,    /* bad command line */
    CLI_EXIT_CONNECT = 3,  /* cannot connect */
    CLI_EXIT_TIMEOUT = 4,  /* a timeout passed first */
    CLI_EXIT_BROKEN = 5,   /* connection lost, protocol error, or local failure */
};

/* One sub-command: `ferry NAME ...`. run() gets argv[0] = NAME and
 * returns an exit code. */
struct cli_command {
    const char *name;
    int (*run)(const struct cli_command *self, int argc, char **argv);
    const char *summary; /* one line for `ferry --help` */
    const char *help;    /* the whole text of `ferry NAME --help` */
};

/* The --url given on the command line, or NULL for ferry_default_url(). */
extern const char *cli_url;
/* --reconnect: connections are made with ferry_options.reconnect. */
extern bool cli_reconnect;

/* Prints "ferry: <formatted text>\n" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reports a usage error of `cmd` and returns CLI_EXIT_USAGE. */
int cli_usage_error(const struct cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reports a failed libferry call (what = the action, e.g. "publish") and
 * returns the matching exit code. For FERRY_ESERVER the line is
 * "ferry: <CODE_NAME>: <broker text>". */
int cli_fail(int status, const char *what);

/* Prints "ferry: <CODE_NAME>: <text>" for a broker error, the text made
 * safe for a terminal (it comes from the network). */
void cli_report_broker_error(int code, const char *text);

/* Exit code matching a libferry status (FERRY_OK gives CLI_EXIT_OK). */
int cli_exit_code(int status);

/* Connects to cli_url (or the default) as client "ferry CMD".
 * Returns CLI_EXIT_OK with *out set (the caller closes it), or the exit
 * code after reporting the failure. */
int cli_connect(const struct cli_command *cmd, ferry_conn **out);

/* Reports the getopt error `opt` (':' a missing value, '?' an unknown
 * option) of command `cmd` (NULL: the global options); `optind_before` is
 * optind before the getopt_long() call. Returns CLI_EXIT_USAGE. */
int cli_option_error(const struct cli_command *cmd, int opt, char **argv, int optind_before);

/* Result of cli_next_option() besides an option character. */
#define CLI_OPT_END (-1)   /* no more options: operands start at optind */
#define CLI_OPT_STOP (-2)  /* --help was shown or an error reported: return *exit_code */

/* getopt_long() for a command, also handling what every command accepts:
 * --help/-h (prints cmd->help), --url URL, and unknown or incomplete
 * options (reported as usage errors). `longopts` must contain
 * {"help", no_argument, NULL, 'h'} and {"url", required_argument, NULL, 'U'};
 * `shortopts` must start with ':'. Reset optind to 0 before the first call. */
int cli_next_option(const struct cli_command *cmd, int argc, char **argv,
                    const char *shortopts, const struct option *longopts, int *exit_code);

/* Takes the command's operands (argv[optind..argc)), which must be exactly
 * one valid queue name. Returns CLI_EXIT_OK with *queue set, or reports
 * the usage error and returns CLI_EXIT_USAGE. */
int cli_one_queue(const struct cli_command *cmd, int argc, char **argv, const char **queue);

/* Parses "QUEUE [--timeout SECONDS]" (and --url, --help), as get and join
 * take. true with *queue and *timeout_ms (-1: no --timeout) set; false
 * when the command must return *exit_code (help shown, or a usage error). */
bool cli_queue_and_timeout(const struct cli_command *cmd, int argc, char **argv,
                           const char **queue, int *timeout_ms, int *exit_code);

/* true if `queue` is a valid queue name; otherwise reports a usage error. */
bool cli_queue_valid(const struct cli_command *cmd, const char *queue);

/* Parses SECONDS ("3", "0.5") into milliseconds (at most ~24 days).
 * Returns false on anything else. */
bool cli_parse_seconds(const char *text, int *ms);

/* Parses a DURATION: a number with a unit, "250ms", "5s", "2m", "1h",
 * "1d" (a bare number is seconds), into milliseconds. false otherwise. */
bool cli_parse_duration(const char *text, uint64_t *ms);

/* Parses a decimal unsigned integer in [min, max]. false otherwise. */
bool cli_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* Writes a payload and '\n' to stdout (buffered). false on a write error. */
bool cli_print_payload(const void *data, size_t len);

/* Digits of v in decimal. */
int cli_decimal_width(uint64_t v);
/* A name as the terminal may show it (printable ASCII, '?' for the rest),
 * padded with spaces to `width`. */
void cli_print_name(const char *name, int width);
/* A JSON string; bytes that are not printable ASCII are escaped or replaced. */
void cli_print_json_string(const char *text);

/* The commands, one function each (cli_publish.c, cli_consume.c,
 * cli_get.c, cli_admin.c, cli_stats.c, cli_connections.c). */
int cli_cmd_publish(const struct cli_command *self, int argc, char **argv);
int cli_cmd_consume(const struct cli_command *self, int argc, char **argv);
int cli_cmd_get(const struct cli_command *self, int argc, char **argv);
int cli_cmd_end(const struct cli_command *self, int argc, char **argv);
int cli_cmd_reopen(const struct cli_command *self, int argc, char **argv);
int cli_cmd_join(const struct cli_command *self, int argc, char **argv);
int cli_cmd_declare(const struct cli_command *self, int argc, char **argv);
int cli_cmd_delete(const struct cli_command *self, int argc, char **argv);
int cli_cmd_purge(const struct cli_command *self, int argc, char **argv);
int cli_cmd_stats(const struct cli_command *self, int argc, char **argv);
int cli_cmd_connections(const struct cli_command *self, int argc, char **argv);
int cli_cmd_kill(const struct cli_command *self, int argc, char **argv);
int cli_cmd_subscribe(const struct cli_command *self, int argc, char **argv);
int cli_cmd_bind(const struct cli_command *self, int argc, char **argv);
int cli_cmd_unbind(const struct cli_command *self, int argc, char **argv);
int cli_cmd_bindings(const struct cli_command *self, int argc, char **argv);
int cli_cmd_request(const struct cli_command *self, int argc, char **argv);
int cli_cmd_reply(const struct cli_command *self, int argc, char **argv);

/* true if `text` is a valid topic (pattern false) or binding pattern;
 * otherwise reports a usage error (cli_topic.c). */
bool cli_topic_valid(const struct cli_command *cmd, const char *text, bool pattern);
int cli_cmd_peek(const struct cli_command *self, int argc, char **argv);
int cli_cmd_move(const struct cli_command *self, int argc, char **argv);

#endif
