/*
 * cli_util.c - the helpers every `ferry` command shares: option parsing,
 * number parsing, connecting, and turning a libferry status into one line
 * on stderr and an exit code. Knows no command in particular.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ferry_proto.h"

const char *cli_url;
bool cli_reconnect;

void cli_error(const char *fmt, ...)
{
    va_list ap;

    fputs("ferry: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_usage_error(const struct cli_command *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "ferry: %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; see 'ferry %s --help'\n", cmd->name);
    return CLI_EXIT_USAGE;
}

int cli_option_error(const struct cli_command *cmd, int opt, char **argv, int optind_before)
{
    char option[64];
    const char *problem = opt == ':' ? "needs a value" : "is unknown";

    /* A long option is the whole argument getopt just stepped over; a short
     * one may sit inside a cluster ("-xn"), and only optopt names it. */
    const char *arg = optind > optind_before ? argv[optind - 1] : "";
    if (strncmp(arg, "--", 2) == 0) {
        snprintf(option, sizeof option, "%.*s", (int)strcspn(arg, "="), arg);
        if (opt == '?' && optopt != 0) /* a known option given a value */
            problem = "takes no value";
    } else {
        snprintf(option, sizeof option, "-%c", optopt);
    }
    if (cmd == NULL) {
        cli_error("option '%s' %s; see 'ferry --help'", option, problem);
        return CLI_EXIT_USAGE;
    }
    return cli_usage_error(cmd, "option '%s' %s", option, problem);
}

int cli_exit_code(int status)
{
    switch (status) {
    case FERRY_OK:
        return CLI_EXIT_OK;
    case FERRY_ESERVER:
    case FERRY_EENDED:
        return CLI_EXIT_REFUSED;
    case FERRY_EINVAL:
        return CLI_EXIT_USAGE;
    case FERRY_ECONNECT:
        return CLI_EXIT_CONNECT;
    case FERRY_ETIMEDOUT:
        return CLI_EXIT_TIMEOUT;
    default: /* EIO, EPROTO, ECLOSED, ENOMEM and what should not happen here */
        return CLI_EXIT_BROKEN;
    }
}

/* Prints broker-supplied text with control and non-ASCII bytes replaced:
 * it comes from the network and must not break the one-line error format
 * or send escape sequences to a terminal. */
static void print_untrusted(FILE *out, const char *text)
{
    for (size_t i = 0; text[i] != '\0' && i < FERRY_ERROR_TEXT_MAX; i++) {
        unsigned char ch = (unsigned char)text[i];
        fputc(ch >= 0x20 && ch < 0x7f ? ch : '?', out);
    }
}

void cli_report_broker_error(int code, const char *text)
{
    fprintf(stderr, "ferry: %s: ", ferry_code_name((uint32_t)code));
    print_untrusted(stderr, text != NULL ? text : "");
    fputc('\n', stderr);
}

int cli_fail(int status, const char *what)
{
    if (status == FERRY_ESERVER) {
        const char *text = NULL;
        int code = ferry_server_error(&text);
        if (code > 0)
            cli_report_broker_error(code, text);
        else
            cli_error("%s: refused by the broker", what);
        return CLI_EXIT_REFUSED;
    }
    if (status == FERRY_EENDED) {
        cli_report_broker_error(FERRY_CODE_ENDED, "the queue is ended and drained");
        return CLI_EXIT_REFUSED;
    }
    cli_error("%s: %s", what, ferry_strerror(status));
    return cli_exit_code(status);
}

int cli_connect(const struct cli_command *cmd, ferry_conn **out)
{
    char name[64]; /* the client name the broker may log */
    snprintf(name, sizeof name, "ferry %s", cmd->name);
    struct ferry_options opts = {
        .url = cli_url, /* NULL: $FERRY_URL or the default socket */
        .name = name,
        .reconnect = cli_reconnect,
    };
    const char *url = cli_url != NULL ? cli_url : ferry_default_url();

    int status = ferry_connect_opts(&opts, out);
    if (status == FERRY_OK)
        return CLI_EXIT_OK;
    if (status == FERRY_EINVAL) {
        cli_error("bad broker address '%s' (expected unix:PATH or tcp://HOST:PORT)", url);
        return CLI_EXIT_USAGE;
    }
    if (status == FERRY_ECONNECT) {
        cli_error("cannot connect to %s", url);
        return CLI_EXIT_CONNECT;
    }
    return cli_fail(status, "connect");
}

int cli_next_option(const struct cli_command *cmd, int argc, char **argv,
                    const char *shortopts, const struct option *longopts, int *exit_code)
{
    for (;;) {
        int optind_before = optind;
        optopt = 0;
        int opt = getopt_long(argc, argv, shortopts, longopts, NULL);
        switch (opt) {
        case -1:
            return CLI_OPT_END;
        case 'U':
            cli_url = optarg;
            continue;
        case 'h':
            fputs(cmd->help, stdout);
            *exit_code = CLI_EXIT_OK;
            return CLI_OPT_STOP;
        case ':':
        case '?':
            *exit_code = cli_option_error(cmd, opt, argv, optind_before);
            return CLI_OPT_STOP;
        default:
            return opt;
        }
    }
}

bool cli_queue_valid(const struct cli_command *cmd, const char *queue)
{
    struct ferry_bytes name = {(const uint8_t *)queue, strlen(queue)};

    if (ferry_name_valid(name))
        return true;
    cli_usage_error(cmd, "bad queue name '%s' (1 to %u of A-Z a-z 0-9 . _ - :)", queue,
                    FERRY_NAME_MAX);
    return false;
}

int cli_one_queue(const struct cli_command *cmd, int argc, char **argv, const char **queue)
{
    if (optind >= argc)
        return cli_usage_error(cmd, "missing QUEUE");
    if (optind + 1 < argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
    if (!cli_queue_valid(cmd, argv[optind]))
        return CLI_EXIT_USAGE;
    *queue = argv[optind];
    return CLI_EXIT_OK;
}

bool cli_queue_and_timeout(const struct cli_command *cmd, int argc, char **argv,
                           const char **queue, int *timeout_ms, int *exit_code)
{
    static const struct option options[] = {
        {"timeout", required_argument, NULL, 't'},
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *timeout_ms = -1; /* without limit */
    *exit_code = CLI_EXIT_OK;
    int opt;
    while ((opt = cli_next_option(cmd, argc, argv, ":ht:", options, exit_code)) > 0) {
        if (opt == 't' && !cli_parse_seconds(optarg, timeout_ms)) {
            *exit_code = cli_usage_error(cmd, "bad --timeout '%s' (expected seconds)", optarg);
            return false;
        }
    }
    if (opt == CLI_OPT_STOP)
        return false;
    *exit_code = cli_one_queue(cmd, argc, argv, queue);
    return *exit_code == CLI_EXIT_OK;
}

bool cli_parse_seconds(const char *text, int *ms)
{
    /* strtod would also take blanks, signs, "inf" and "nan": insist on a number. */
    if (!isdigit((unsigned char)text[0]) && text[0] != '.')
        return false;
    char *end;
    errno = 0;
    double seconds = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite(seconds) || seconds > INT_MAX / 1000)
        return false;
    *ms = (int)(seconds * 1000.0 + 0.5);
    return true;
}

bool cli_parse_duration(const char *text, uint64_t *ms)
{
    if (!isdigit((unsigned char)text[0]) && text[0] != '.')
        return false;
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || !isfinite(value))
        return false;
    static const struct { const char *unit; double ms; } units[] = {
        { "ms", 1 }, { "s", 1000 }, { "", 1000 }, { "m", 60000 }, { "h", 3600000 },
        { "d", 86400000 },
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) != 0)
            continue;
        double total = value * units[i].ms + 0.5;
        if (total >= 18446744073709551615.0)
            return false;
        *ms = (uint64_t)total;
        return true;
    }
    return false;
}

bool cli_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    /* strtoull would accept "-1" (as a huge number) and leading blanks. */
    if (!isdigit((unsigned char)text[0]))
        return false;
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max)
        return false;
    *out = value;
    return true;
}

bool cli_print_payload(const void *data, size_t len)
{
    if (len > 0 && fwrite(data, 1, len, stdout) != len)
        return false;
    return putchar('\n') != EOF;
}

/* Digits of v in decimal. */
int cli_decimal_width(uint64_t v)
{
    int width = 1;
    while (v >= 10) {
        v /= 10;
        width++;
    }
    return width;
}

/* A name as the terminal may show it: printable ASCII, '?' for the rest. */
void cli_print_name(const char *name, int width)
{
    int len = 0;
    for (; name[len] != '\0'; len++) {
        unsigned char ch = (unsigned char)name[len];
        putchar(ch >= 0x20 && ch < 0x7f ? ch : '?');
    }
    printf("%*s", width > len ? width - len : 0, "");
}

/* A JSON string. Valid queue names are ASCII: any other byte is replaced,
 * so that the output stays valid UTF-8 whatever the broker sends. */
void cli_print_json_string(const char *text)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else if (*p >= 0x80)
            printf("\\ufffd");
        else
            putchar(*p);
    }
    putchar('"');
}
