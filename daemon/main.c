/*
 * main.c - ferryd's command line and the place of its conf file: reads
 * the file, puts the options over it, then checks the result
 * (--check-config) or runs the server, which calls back here to read both
 * again at each SIGHUP. Knows getopt and the option names; knows nothing
 * of what the server does with the values.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "service.h"

#ifndef FERRYD_VERSION
#define FERRYD_VERSION "unknown"
#endif
/* Set by the build from its sysconfdir: /etc/ferry/ferryd.conf for a
 * package installed under /usr. */
#ifndef FERRYD_CONF_DEFAULT
#define FERRYD_CONF_DEFAULT "/etc/ferry/ferryd.conf"
#endif

/* Options that override the conf file, kept to be applied again at each
 * reload; at most this many. */
#define OVERRIDES_MAX 64

/* Long options without a short letter. */
enum {
    OPT_LOG_LEVEL = 256,
    OPT_MAX_FRAME,
    OPT_MAX_CONNECTIONS,
    OPT_MAX_OUTPUT,
    OPT_PID_FILE,
    OPT_DATA_DIR,
    OPT_CHECK_CONFIG,
};

static const struct option long_options[] = {
    { "config", required_argument, NULL, 'c' },
    { "check-config", no_argument, NULL, OPT_CHECK_CONFIG },
    { "listen", required_argument, NULL, 'l' },
    { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
    { "max-frame", required_argument, NULL, OPT_MAX_FRAME },
    { "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
    { "max-output", required_argument, NULL, OPT_MAX_OUTPUT },
    { "pid-file", required_argument, NULL, OPT_PID_FILE },
    { "data-dir", required_argument, NULL, OPT_DATA_DIR },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

/* Which conf file key each overriding option sets (-l aside). */
static const struct {
    int opt;
    const char *section;
    const char *key;
} option_keys[] = {
    { OPT_LOG_LEVEL, "log", "level" },
    { OPT_MAX_FRAME, "limits", "max_frame" },
    { OPT_MAX_CONNECTIONS, "limits", "max_connections" },
    { OPT_MAX_OUTPUT, "limits", "max_output" },
    { OPT_PID_FILE, "server", "pid_file" },
    { OPT_DATA_DIR, "server", "data_dir" },
};

/* One option that overrides the conf file; value points into argv. */
struct override {
    int opt;
    const char *value;
};

struct command_line {
    const char *conf_path; /* -c, or NULL for FERRYD_CONF_DEFAULT if it exists */
    bool check_only;       /* --check-config */
    struct override overrides[OVERRIDES_MAX];
    size_t override_count;
    size_t listen_count;   /* -l options: they replace the file's listeners */
};

static void print_help(void)
{
    printf("usage: ferryd [options]\n"
           "\n"
           "The ferry message broker daemon. Stops on SIGINT or SIGTERM; SIGHUP\n"
           "reloads the configuration. Options override the conf file.\n"
           "\n"
           "  -c, --config FILE        conf file (default %s,\n"
           "                           if it exists; see ferryd.conf(5))\n"
           "      --check-config       check the configuration and exit: 0 valid,\n"
           "                           78 not\n"
           "  -l, --listen URL         listen on URL: unix:/path or tcp://host:port\n"
           "                           (repeatable; replaces the file's [listen]\n"
           "                           sections; default unix:%s)\n"
           "      --log-level LEVEL    error, warn, info (default) or debug\n"
           "      --max-frame SIZE     largest frame accepted (default 16MiB,\n"
           "                           4KiB..256MiB)\n"
           "      --max-connections N  more are refused (default %u)\n"
           "      --max-output SIZE    output queued per connection before it is\n"
           "                           throttled (default 64MiB, 64KiB..4096MiB)\n"
           "      --pid-file FILE      write the process id to FILE (removed at exit)\n"
           "      --data-dir DIR       the log of durable queues (default %s;\n"
           "                           '' for none)\n"
           "  -h, --help               show this help\n"
           "  -V, --version            show the version\n"
           "\n"
           "SIZE is a number of bytes, optionally followed by KiB, MiB or GiB.\n"
           "See ferryd(8).\n",
           FERRYD_CONF_DEFAULT, FERRY_DEFAULT_SOCKET, CONFIG_MAX_CONNECTIONS_DEFAULT,
           CONFIG_DATA_DIR_DEFAULT);
}

/* The single line a bad command line gets; returns exit status 64. */
__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ferryd: %s (see ferryd --help)\n", text);
    return SERVER_EXIT_USAGE;
}

static const char *option_name(int opt)
{
    for (const struct option *o = long_options; o->name; o++) {
        if (o->val == opt)
            return o->name;
    }
    return "?";
}

/* ---- options over the conf file ---------------------------------------------------- */

static int apply_override(struct config *cfg, const struct override *o, char *why,
                          size_t why_size)
{
    if (o->opt == 'l')
        return config_add_listen_url(cfg, o->value, why, why_size);
    for (size_t i = 0; i < sizeof option_keys / sizeof option_keys[0]; i++) {
        if (option_keys[i].opt == o->opt)
            return config_set(cfg, option_keys[i].section, option_keys[i].key, o->value, why,
                              why_size);
    }
    snprintf(why, why_size, "internal error: unhandled option %d", o->opt);
    return -1;
}

/* Puts every option over *cfg. They were all checked when parsed. */
static void apply_overrides(const struct command_line *cl, struct config *cfg)
{
    if (cl->listen_count > 0)
        cfg->listen_count = 0;
    char why[512];
    for (size_t i = 0; i < cl->override_count; i++) {
        if (apply_override(cfg, &cl->overrides[i], why, sizeof why) != 0)
            log_error("--%s: %s", option_name(cl->overrides[i].opt), why);
    }
}

/* Keeps an overriding option once it has been checked on its own. */
static int add_override(struct command_line *cl, int opt, const char *value)
{
    if (cl->override_count == OVERRIDES_MAX)
        return usage_error("too many options (at most %d)", OVERRIDES_MAX);
    if (opt == 'l' && cl->listen_count == CONFIG_LISTEN_MAX)
        return usage_error("at most %d --listen addresses", CONFIG_LISTEN_MAX);
    struct override o = { .opt = opt, .value = value };
    struct config scratch;
    config_init(&scratch);
    char why[512];
    int rc = apply_override(&scratch, &o, why, sizeof why);
    config_free(&scratch);
    if (rc != 0)
        return usage_error("bad --%s: %s", option_name(opt), why);
    cl->overrides[cl->override_count++] = o;
    if (opt == 'l')
        cl->listen_count++;
    return 0;
}

/* ---- reading the configuration ------------------------------------------------------- */

/* Where conf file errors go: before the loop runs, to stderr as they are;
 * at a reload, to the log. Counts them. */
struct error_sink {
    bool to_log;
    int count;
};

static void on_config_error(void *arg, const char *line)
{
    struct error_sink *sink = arg;
    sink->count++;
    if (sink->to_log)
        log_error("%s", line);
    else
        fprintf(stderr, "%s\n", line);
}

/* The conf file, then the options over it, into *out (config_init'ed
 * here). *file is the file read, or NULL if there was none. 0 or -1. */
static int read_config(const struct command_line *cl, struct config *out,
                       struct error_sink *sink, const char **file)
{
    config_init(out);
    *file = cl->conf_path ? cl->conf_path : FERRYD_CONF_DEFAULT;
    /* Only the default may be missing: ferryd then runs on its defaults. */
    if (!cl->conf_path && access(*file, F_OK) != 0 && errno == ENOENT)
        *file = NULL;
    if (*file && config_load(out, *file, on_config_error, sink) != 0)
        return -1;
    apply_overrides(cl, out);
    return config_check(out, *file, on_config_error, sink);
}

/* server_reload_fn: the same reading at SIGHUP, errors to the log. */
static int reload_config(void *arg, struct config *out)
{
    const struct command_line *cl = arg;
    struct error_sink sink = { .to_log = true };
    const char *file;
    if (read_config(cl, out, &sink, &file) != 0) {
        log_error("%d error%s in %s", sink.count, sink.count == 1 ? "" : "s", file);
        return -1;
    }
    log_info("read %s", file ? file : "no conf file (defaults)");
    return 0;
}

/* ---- the command line ------------------------------------------------------------------- */

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

static void print_version(void)
{
    printf("ferryd %s (%s)\n", FERRYD_VERSION,
           service_supported() ? "+systemd" : "-systemd");
}

/* Fills *cl from argv. -1 if the program should exit 0 now (--help,
 * --version), 0 to go on, or the usage exit status. */
static int parse_command_line(int argc, char **argv, struct command_line *cl)
{
    opterr = 0; /* our own one-line messages */
    int opt;
    while ((opt = getopt_long(argc, argv, ":c:l:hV", long_options, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case 'h':
            print_help();
            return -1;
        case 'V':
            print_version();
            return -1;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        case '?':
            return unknown_option(argv[optind - 1], optopt);
        case 'c':
            cl->conf_path = optarg;
            break;
        case OPT_CHECK_CONFIG:
            cl->check_only = true;
            break;
        default:
            rc = add_override(cl, opt, optarg);
        }
        if (rc != 0)
            return rc;
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    return 0;
}

/* --check-config: like `nginx -t`, says whether the configuration is good. */
static int check_config(const char *file, int rc, int errors)
{
    if (rc != 0) {
        fprintf(stderr, "ferryd: %s: %d error%s\n", file, errors, errors == 1 ? "" : "s");
        return CONFIG_EXIT_BAD;
    }
    if (file)
        printf("ferryd: %s: ok\n", file);
    else
        printf("ferryd: no conf file at %s; the defaults are used\n", FERRYD_CONF_DEFAULT);
    return SERVER_EXIT_OK;
}

int main(int argc, char **argv)
{
    static struct command_line cl; /* the reload reads it for the whole run */
    int rc = parse_command_line(argc, argv, &cl);
    if (rc < 0)
        return SERVER_EXIT_OK;
    if (rc > 0)
        return rc;

    struct config cfg;
    struct error_sink sink = { .to_log = false };
    const char *file;
    rc = read_config(&cl, &cfg, &sink, &file);
    if (cl.check_only) {
        config_free(&cfg);
        return check_config(file, rc, sink.count);
    }
    if (rc != 0) {
        fprintf(stderr, "ferryd: %d error%s in %s; not starting\n", sink.count,
                sink.count == 1 ? "" : "s", file);
        config_free(&cfg);
        return SERVER_EXIT_CONFIG;
    }
    log_set_level(cfg.log_level);
    log_info("configuration: %s", file ? file : "no conf file, built-in defaults");
    return server_run(&cfg, reload_config, &cl); /* it takes over cfg */
}
