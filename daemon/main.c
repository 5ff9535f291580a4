/*
 * main.c - ferryd's command line: turns the options into a struct
 * server_config and runs the server. Knows getopt and the option names;
 * knows nothing of what the server does with the values.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry_proto.h"
#include "log.h"
#include "server.h"

#ifndef FERRYD_VERSION
#define FERRYD_VERSION "unknown"
#endif

/* Long options without a short letter. */
enum {
    OPT_LOG_LEVEL = 256,
    OPT_MAX_FRAME,
    OPT_MAX_CONNECTIONS,
    OPT_MAX_OUTPUT,
};

static const struct option long_options[] = {
    { "listen", required_argument, NULL, 'l' },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "max-frame", required_argument, NULL, OPT_MAX_FRAME },
    { "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
    { "max-output", required_argument, NULL, OPT_MAX_OUTPUT },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

static void print_help(void)
{
    printf("usage: ferryd [options]\n"
           "\n"
           "The ferry message broker daemon. Stops on SIGINT or SIGTERM.\n"
           "\n"
           "  -l, --listen URL         listen on URL: unix:/path or tcp://host:port\n"
           "                           (repeatable; default unix:%s)\n"
           "      --log-level LEVEL    error, warn, info (default) or debug\n"
           "      --max-frame SIZE     largest frame accepted (default 16MiB,\n"
           "                           4KiB..256MiB)\n"
           "      --max-connections N  more are refused (default %u)\n"
           "      --max-output SIZE    output queued per connection before it is\n"
           "                           throttled (default 64MiB, 64KiB..4096MiB)\n"
           "  -h, --help               show this help\n"
           "  -V, --version            show the version\n"
           "\n"
           "SIZE is a number of bytes, optionally followed by KiB, MiB or GiB.\n"
           "See ferryd(8).\n",
           FERRY_DEFAULT_SOCKET, SERVER_MAX_CONNECTIONS_DEFAULT);
}

/* The single line a bad command line gets; returns exit status 64. */
__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ferryd: %s (see ferryd --help)\n", text);
    return SERVER_EXIT_USAGE;
}

/* Decimal digits only: strtoull alone would take "-1" and " 5". */
static int parse_uint(const char *text, const char **rest, uint64_t *out)
{
    if (text[0] < '0' || text[0] > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0)
        return -1;
    *out = v;
    *rest = end;
    return 0;
}

/* "4096", "64KiB", "16MiB", "1GiB", within [min, max]. */
static int parse_size(const char *text, uint64_t min, uint64_t max, size_t *out)
{
    const char *suffix;
    uint64_t v;
    if (parse_uint(text, &suffix, &v) != 0)
        return -1;
    uint64_t unit = 1;
    if (strcmp(suffix, "KiB") == 0)
        unit = 1024u;
    else if (strcmp(suffix, "MiB") == 0)
        unit = 1024u * 1024u;
    else if (strcmp(suffix, "GiB") == 0)
        unit = 1024u * 1024u * 1024u;
    else if (suffix[0] != '\0')
        return -1;
    if (v > max / unit || v * unit < min)
        return -1;
    *out = (size_t)(v * unit);
    return 0;
}

static int parse_count(const char *text, uint64_t min, uint64_t max, size_t *out)
{
    const char *rest;
    uint64_t v;
    if (parse_uint(text, &rest, &v) != 0 || rest[0] != '\0' || v < min || v > max)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int add_listen(struct server_config *cfg, const char *url)
{
    if (cfg->listen_count == SERVER_LISTEN_MAX)
        return usage_error("at most %d --listen addresses", SERVER_LISTEN_MAX);
    const char *why = "bad address";
    if (ferry_addr_parse(url, &cfg->listen[cfg->listen_count], &why) != 0)
        return usage_error("bad --listen '%s': %s", url, why);
    cfg->listen_count++;
    return 0;
}

/* Applies one option to cfg. 0, or the exit status of a bad value. */
static int apply_option(struct server_config *cfg, int opt, const char *value)
{
    switch (opt) {
    case 'l':
        return add_listen(cfg, value);
    case OPT_LOG_LEVEL:
        if (log_level_parse(value, &cfg->log_level) != 0)
            return usage_error("bad --log-level '%s': expected error, warn, info or debug", value);
        return 0;
    case OPT_MAX_FRAME:
        if (parse_size(value, FERRY_FRAME_MAX_FLOOR, FERRY_FRAME_MAX_CEILING, &cfg->max_frame) != 0)
            return usage_error("bad --max-frame '%s': expected 4KiB..256MiB", value);
        return 0;
    case OPT_MAX_CONNECTIONS:
        if (parse_count(value, 1, SERVER_MAX_CONNECTIONS_CEILING, &cfg->max_connections) != 0)
            return usage_error("bad --max-connections '%s': expected 1..1000000", value);
        return 0;
    case OPT_MAX_OUTPUT:
        if (parse_size(value, SERVER_MAX_OUTPUT_FLOOR, SERVER_MAX_OUTPUT_CEILING,
                       &cfg->max_output) != 0)
            return usage_error("bad --max-output '%s': expected 64KiB..4096MiB", value);
        return 0;
    default:
        return usage_error("internal error: unhandled option %d", opt);
    }
}

/* What getopt refused: `arg` is the argument it stopped at; a short
 * option may sit in a group ("-Vx"), so `optopt` names that one. */
static int unknown_option(const char *arg, int short_opt)
{
    if (strncmp(arg, "--", 2) != 0)
        return usage_error("unknown option '-%c'", short_opt);
    size_t name_len = strcspn(arg + 2, "=");
    for (const struct option *o = long_options; o->name; o++) {
        if (strlen(o->name) == name_len && strncmp(o->name, arg + 2, name_len) == 0)
            return usage_error("option '--%s' takes no value", o->name);
    }
    return usage_error("unknown option '%.*s'", (int)name_len + 2, arg);
}

/* Fills cfg from argv. -1 if the program should exit 0 now (--help,
 * --version), 0 to run, or the usage exit status. */
static int parse_command_line(int argc, char **argv, struct server_config *cfg)
{
    opterr = 0; /* our own one-line messages */
    int opt;
    while ((opt = getopt_long(argc, argv, ":l:hV", long_options, NULL)) != -1) {
        switch (opt) {
        case 'h':
            print_help();
            return -1;
        case 'V':
            printf("ferryd %s\n", FERRYD_VERSION);
            return -1;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        case '?':
            return unknown_option(argv[optind - 1], optopt);
        default: {
            int rc = apply_option(cfg, opt, optarg);
            if (rc != 0)
                return rc;
        }
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (cfg->listen_count == 0)
        server_config_use_default_listen(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    struct server_config cfg;
    server_config_init(&cfg);
    int rc = parse_command_line(argc, argv, &cfg);
    if (rc < 0)
        return SERVER_EXIT_OK;
    if (rc > 0)
        return rc;
    log_set_level(cfg.log_level);
    return server_run(&cfg);
}
