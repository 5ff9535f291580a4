/*
 * config.c - reads ferryd's conf file into a struct config: the tables of
 * sections and keys, the value syntax (sizes, durations, modes...), and
 * one error line per problem, "FILE:LINE: key 'K': reason".
 *
 * inih splits lines into sections, keys and values; this file says what
 * they mean. Pure: no sockets, no libevent, no user database.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

/* ---- value syntax ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4)))
static int fail_why(char *why, size_t why_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_size, fmt, ap);
    va_end(ap);
    return -1;
}

struct unit {
    const char *suffix;
    uint64_t factor;
};

static const struct unit size_units[] = {
    { "B", 1 },
    { "KiB", 1024ull },
    { "MiB", 1024ull * 1024 },
    { "GiB", 1024ull * 1024 * 1024 },
    { "TiB", 1024ull * 1024 * 1024 * 1024 },
};

static const struct unit duration_units[] = {
    { "ms", 1 },
    { "s", 1000 },
    { "min", 60 * 1000 },
    { "h", 3600 * 1000 },
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Leading decimal digits of text into *out (no sign, no space, no
 * overflow); *rest points past them. */
static int parse_digits(const char *text, uint64_t *out, const char **rest)
{
    if (text[0] < '0' || text[0] > '9')
        return -1;
    uint64_t v = 0;
    const char *p = text;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t digit = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *out = v;
    *rest = p;
    return 0;
}

/* A number followed by one of `units` (or by nothing if `bare_factor`
 * is not 0). */
static int parse_with_unit(const char *text, const struct unit *units, size_t unit_count,
                           uint64_t bare_factor, uint64_t *out)
{
    uint64_t v;
    const char *suffix;
    if (parse_digits(text, &v, &suffix) != 0)
        return -1;
    uint64_t factor = 0;
    if (suffix[0] == '\0')
        factor = bare_factor;
    for (size_t i = 0; i < unit_count && factor == 0; i++) {
        if (strcmp(suffix, units[i].suffix) == 0)
            factor = units[i].factor;
    }
    if (factor == 0 || v > UINT64_MAX / factor)
        return -1;
    *out = v * factor;
    return 0;
}

int config_parse_size(const char *text, uint64_t *out, char *why, size_t why_size)
{
    if (parse_with_unit(text, size_units, COUNT_OF(size_units), 1, out) != 0)
        return fail_why(why, why_size,
                        "bad size '%s': expected bytes or a number with B, KiB, MiB, GiB or TiB, "
                        "as in 64KiB", text);
    return 0;
}

int config_parse_duration_ms(const char *text, uint64_t *out, char *why, size_t why_size)
{
    if (parse_with_unit(text, duration_units, COUNT_OF(duration_units), 0, out) != 0)
        return fail_why(why, why_size,
                        "bad duration '%s': expected a number with ms, s, min or h, as in 30s",
                        text);
    return 0;
}

/* The value in the largest unit that divides it exactly: "64KiB", "30s". */
static void format_with_unit(uint64_t v, const struct unit *units, size_t unit_count,
                             char *out, size_t size)
{
    size_t best = 0;
    for (size_t i = 1; i < unit_count; i++) {
        if (v != 0 && v % units[i].factor == 0)
            best = i;
    }
    snprintf(out, size, "%llu%s", (unsigned long long)(v / units[best].factor),
             units[best].suffix);
}

static bool account_char_valid(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

/* A user or group: a name (no leading digit or '-') or a numeric id. */
static int parse_account(const char *text, char *out, char *why, size_t why_size)
{
    size_t len = strlen(text);
    bool numeric = len > 0 && strspn(text, "0123456789") == len;
    bool name_ok = len > 0 && text[0] != '-' && !(text[0] >= '0' && text[0] <= '9');
    for (size_t i = 0; i < len && name_ok; i++)
        name_ok = account_char_valid(text[i]);
    if (len > CONFIG_ACCOUNT_MAX || (!numeric && !name_ok))
        return fail_why(why, why_size, "bad name '%s': expected a user or group name "
                        "(at most %d characters) or a numeric id", text, CONFIG_ACCOUNT_MAX);
    memcpy(out, text, len + 1);
    return 0;
}

/* Octal permission bits of a socket file, "0660" or "660". */
static int parse_mode(const char *text, unsigned *out, char *why, size_t why_size)
{
    size_t len = strlen(text);
    unsigned v = 0;
    bool ok = len >= 3 && len <= 4 && strspn(text, "01234567") == len;
    for (size_t i = 0; ok && i < len; i++)
        v = v * 8 + (unsigned)(text[i] - '0');
    if (!ok || v > 0777)
        return fail_why(why, why_size, "bad mode '%s': expected octal permissions "
                        "0000..0777, as in 0660", text);
    *out = v;
    return 0;
}

/* yes or no (true and false too). */
static int parse_bool(const char *text, bool *out, char *why, size_t why_size)
{
    if (strcmp(text, "yes") == 0 || strcmp(text, "true") == 0)
        *out = true;
    else if (strcmp(text, "no") == 0 || strcmp(text, "false") == 0)
        *out = false;
    else
        return fail_why(why, why_size, "bad value '%s': expected yes or no", text);
    return 0;
}

static const char *const fsync_names[] = {
    [CONFIG_FSYNC_ALWAYS] = "always",
    [CONFIG_FSYNC_INTERVAL] = "interval",
    [CONFIG_FSYNC_NEVER] = "never",
};

static int parse_fsync(const char *text, enum config_fsync *out, char *why, size_t why_size)
{
    for (int f = CONFIG_FSYNC_ALWAYS; f <= CONFIG_FSYNC_NEVER; f++) {
        if (strcmp(text, fsync_names[f]) == 0) {
            *out = (enum config_fsync)f;
            return 0;
        }
    }
    return fail_why(why, why_size, "bad policy '%s': expected always, interval or never", text);
}

static const char *const overflow_names[] = {
    [CONFIG_OVERFLOW_BLOCK] = "block",
    [CONFIG_OVERFLOW_REJECT] = "reject",
    [CONFIG_OVERFLOW_DROP_OLDEST] = "drop-oldest",
};

static int parse_overflow(const char *text, enum config_overflow *out, char *why, size_t why_size)
{
    for (size_t i = 0; i < COUNT_OF(overflow_names); i++) {
        if (strcmp(text, overflow_names[i]) == 0) {
            *out = (enum config_overflow)i;
            return 0;
        }
    }
    return fail_why(why, why_size, "bad policy '%s': expected block, reject or drop-oldest",
                    text);
}

static int parse_path(const char *text, char *out, char *why, size_t why_size)
{
    size_t len = strlen(text);
    if (text[0] != '/')
        return fail_why(why, why_size, "bad path '%s': expected an absolute path", text);
    if (len > CONFIG_PATH_MAX)
        return fail_why(why, why_size, "path too long (at most %d bytes)", CONFIG_PATH_MAX);
    memcpy(out, text, len + 1);
    return 0;
}

/* ---- the tables: every section and key ----------------------------------------- */

enum value_kind {
    VALUE_SIZE,      /* size_t field, with unit */
    VALUE_COUNT,     /* size_t field, plain number */
    VALUE_DURATION,  /* uint64_t field in milliseconds */
    VALUE_LOG_LEVEL, /* enum log_level field */
    VALUE_PATH,      /* char[CONFIG_PATH_MAX + 1] field, absolute */
    VALUE_ADDRESS,   /* struct ferry_addr field */
    VALUE_MODE,      /* bool has_mode + unsigned mode, listener only */
    VALUE_ACCOUNT,   /* char[CONFIG_ACCOUNT_MAX + 1] field */
    VALUE_DIR,       /* like VALUE_PATH, or empty for "none" */
    VALUE_BOOL,      /* bool field: yes or no */
    VALUE_FSYNC,     /* enum config_fsync field */
    VALUE_OVERFLOW,  /* enum config_overflow field */
    VALUE_QUEUE,     /* char[FERRY_NAME_MAX + 1] field: a queue name, or empty for none */
};

/* One key: its name in the file, and where its value goes relative to
 * the struct of its section. */
struct key_spec {
    const char *name;
    enum value_kind kind;
    size_t offset;
    size_t size;
    uint64_t min, max; /* sizes, counts and durations */
    bool zero_is_off;  /* 0 is allowed too, below min: "off" */
};

#define KEY(name, type, field, kind, min, max) \
    { name, kind, offsetof(type, field), sizeof(((type *)0)->field), min, max, false }
/* A duration whose 0 turns its feature off. */
#define KEY_OR_OFF(name, type, field, kind, min, max) \
    { name, kind, offsetof(type, field), sizeof(((type *)0)->field), min, max, true }
#define END_OF_KEYS { NULL, 0, 0, 0, 0, 0, false }

static const struct key_spec server_keys[] = {
    KEY("data_dir", struct config, data_dir, VALUE_DIR, 0, 0),
    KEY("pid_file", struct config, pid_file, VALUE_PATH, 0, 0),
    KEY("shutdown_timeout", struct config, shutdown_timeout_ms, VALUE_DURATION, 0,
        CONFIG_SHUTDOWN_TIMEOUT_MS_CEILING),
    END_OF_KEYS,
};

static const struct key_spec log_keys[] = {
    KEY("level", struct config, log_level, VALUE_LOG_LEVEL, 0, 0),
    END_OF_KEYS,
};

static const struct key_spec limits_keys[] = {
    KEY("max_connections", struct config, max_connections, VALUE_COUNT, 1,
        CONFIG_MAX_CONNECTIONS_CEILING),
    KEY("max_frame", struct config, max_frame, VALUE_SIZE, FERRY_FRAME_MAX_FLOOR,
        FERRY_FRAME_MAX_CEILING),
    KEY("max_output", struct config, max_output, VALUE_SIZE, CONFIG_MAX_OUTPUT_FLOOR,
        CONFIG_MAX_OUTPUT_CEILING),
    KEY("handshake_timeout", struct config, handshake_timeout_ms, VALUE_DURATION,
        CONFIG_HANDSHAKE_TIMEOUT_MS_FLOOR, CONFIG_HANDSHAKE_TIMEOUT_MS_CEILING),
    KEY_OR_OFF("heartbeat_timeout", struct config, heartbeat_ms, VALUE_DURATION,
               CONFIG_HEARTBEAT_MS_FLOOR, CONFIG_HEARTBEAT_MS_CEILING),
    KEY_OR_OFF("dedup_window", struct config, dedup_window_ms, VALUE_DURATION,
               CONFIG_DEDUP_WINDOW_MS_FLOOR, CONFIG_DEDUP_WINDOW_MS_CEILING),
    KEY("dedup_entries", struct config, dedup_entries, VALUE_COUNT, 1,
        CONFIG_DEDUP_ENTRIES_CEILING),
    KEY("max_queues", struct config, max_queues, VALUE_COUNT, 1, CONFIG_MAX_QUEUES_CEILING),
    KEY("max_consumers_per_queue", struct config, max_consumers_per_queue, VALUE_COUNT, 1,
        CONFIG_MAX_CONSUMERS_CEILING),
    KEY_OR_OFF("max_queued_memory", struct config, max_queued_memory, VALUE_SIZE,
               CONFIG_MAX_QUEUED_MEMORY_FLOOR, CONFIG_MAX_QUEUED_MEMORY_CEILING),
    END_OF_KEYS,
};

/* In the order of listen_keys[]: close_listen looks them up by index. */
enum { LISTEN_KEY_ADDRESS, LISTEN_KEY_MODE, LISTEN_KEY_OWNER, LISTEN_KEY_GROUP };
static const struct key_spec listen_keys[] = {
    KEY("address", struct config_listener, addr, VALUE_ADDRESS, 0, 0),
    KEY("mode", struct config_listener, mode, VALUE_MODE, 0, 0),
    KEY("owner", struct config_listener, owner, VALUE_ACCOUNT, 0, 0),
    KEY("group", struct config_listener, group, VALUE_ACCOUNT, 0, 0),
    END_OF_KEYS,
};

/* In the order of storage_keys[]: close_storage looks them up by index. */
enum { STORAGE_KEY_FSYNC, STORAGE_KEY_INTERVAL, STORAGE_KEY_SEGMENT, STORAGE_KEY_MAX_BYTES };
static const struct key_spec storage_keys[] = {
    KEY("fsync", struct config, fsync, VALUE_FSYNC, 0, 0),
    KEY("fsync_interval", struct config, fsync_interval_ms, VALUE_DURATION,
        CONFIG_FSYNC_INTERVAL_MS_FLOOR, CONFIG_FSYNC_INTERVAL_MS_CEILING),
    KEY("segment_size", struct config, segment_size, VALUE_SIZE, CONFIG_SEGMENT_SIZE_FLOOR,
        CONFIG_SEGMENT_SIZE_CEILING),
    KEY("max_bytes", struct config, max_bytes, VALUE_SIZE, 0, CONFIG_MAX_BYTES_CEILING),
    END_OF_KEYS,
};

/* The keys of [queues] (the defaults) and of [queue "NAME"], both into a
 * struct config_queue_settings: a later issue adds its line here and its
 * field there, and both sections take the key. */
static const struct key_spec queue_keys[] = {
    KEY("durable", struct config_queue_settings, durable, VALUE_BOOL, 0, 0),
    KEY("fsync", struct config_queue_settings, fsync, VALUE_FSYNC, 0, 0),
    KEY("priority", struct config_queue_settings, priority, VALUE_COUNT, 0, FERRY_PRIORITY_MAX),
    KEY("ttl", struct config_queue_settings, ttl_ms, VALUE_DURATION, 0, FERRY_TTL_MAX_MS),
    KEY("max_length", struct config_queue_settings, max_length, VALUE_COUNT, 0,
        CONFIG_QUEUE_MAX_LENGTH_CEILING),
    KEY("max_bytes", struct config_queue_settings, max_bytes, VALUE_SIZE, 0,
        CONFIG_QUEUE_MAX_BYTES_CEILING),
    KEY("overflow", struct config_queue_settings, overflow, VALUE_OVERFLOW, 0, 0),
    KEY_OR_OFF("ack_deadline", struct config_queue_settings, ack_deadline_ms, VALUE_DURATION, 1,
               CONFIG_RETRY_MS_CEILING),
    KEY_OR_OFF("retry_backoff", struct config_queue_settings, retry_backoff_ms, VALUE_DURATION, 1,
               CONFIG_RETRY_MS_CEILING),
    KEY("retry_backoff_max", struct config_queue_settings, retry_backoff_max_ms, VALUE_DURATION, 1,
        CONFIG_RETRY_MS_CEILING),
    KEY_OR_OFF("max_attempts", struct config_queue_settings, max_attempts, VALUE_COUNT, 1,
               CONFIG_MAX_ATTEMPTS_CEILING),
    KEY("dead_letter_queue", struct config_queue_settings, dead_letter_queue, VALUE_QUEUE, 0, 0),
    END_OF_KEYS,
};

/* The keys of a section, at most this many (for duplicate detection). */
#define SECTION_KEYS_MAX 16

struct parser;

struct section_spec {
    const char *kind;         /* what the header says: [kind] or [kind "NAME"] */
    bool named;
    const struct key_spec *keys;
    /* The struct the keys of a new section go into; NULL after reporting
     * why there is none. */
    void *(*open)(struct parser *p, const char *name);
    /* Checks the section once all its keys are read (may be NULL). */
    void (*close)(struct parser *p);
};

/* ---- the parser's state ---------------------------------------------------------- */

struct parser {
    struct config *cfg;
    const char *file;
    config_error_fn *on_error;
    void *error_arg;
    int errors;

    /* Input, one line per reader() call. */
    FILE *in;             /* from a file, or */
    const char *text;     /* from memory (the rest of it) */
    int line;             /* of the line last read, from 1 */

    /* Whether the line last read must produce a handler call (a key), and
     * whether it did: inih reports only the first line it cannot split. */
    bool line_wants_key;
    bool line_got_key;

    /* The current section; spec NULL before the first or after a bad one. */
    const struct section_spec *spec;
    void *base;              /* the struct its keys go into */
    int section_line;
    bool section_reported;   /* its header was bad: skip its keys quietly */
    int key_lines[SECTION_KEYS_MAX]; /* where each key was set, 0 if not */

    /* Where each kind of section was seen (a slot per sections[] entry),
     * for duplicates of the unnamed ones. */
    int seen_line[8];
};

__attribute__((format(printf, 3, 4)))
static void report(struct parser *p, int line, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    char text[CONFIG_PATH_MAX + 600];
    snprintf(text, sizeof text, "%s:%d: %s", p->file, line, reason);
    p->errors++;
    p->on_error(p->error_arg, text);
}

/* ---- sections ---------------------------------------------------------------------- */

static void *open_config_section(struct parser *p, const char *name)
{
    return p->cfg;
}

/* A [queue "NAME"] starts from the defaults as they are at its header,
 * so the defaults come first. */
static void *open_queue_defaults(struct parser *p, const char *name)
{
    if (p->cfg->queue_count > 0) {
        report(p, p->line, "section [queues]: must come before the [queue \"NAME\"] sections");
        return NULL;
    }
    return &p->cfg->queue_defaults;
}

static bool listen_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof((struct config_listener *)0)->name)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!account_char_valid(name[i]))
            return false;
    }
    return true;
}

static void *open_listen(struct parser *p, const char *name)
{
    struct config *cfg = p->cfg;
    if (!listen_name_valid(name)) {
        report(p, p->line, "section [listen \"%s\"]: bad name: expected letters, digits, "
               "'_', '-' or '.', at most 63", name);
        return NULL;
    }
    for (size_t i = 0; i < cfg->listen_count; i++) {
        if (strcmp(cfg->listen[i].name, name) == 0) {
            report(p, p->line, "section [listen \"%s\"]: duplicate section", name);
            return NULL;
        }
    }
    if (cfg->listen_count == CONFIG_LISTEN_MAX) {
        report(p, p->line, "section [listen \"%s\"]: too many listeners (at most %d)", name,
               CONFIG_LISTEN_MAX);
        return NULL;
    }
    struct config_listener *l = &cfg->listen[cfg->listen_count++];
    *l = (struct config_listener){ 0 };
    snprintf(l->name, sizeof l->name, "%s", name);
    return l;
}

/* A listener needs an address; mode, owner and group are for Unix
 * sockets; two listeners on one address would fail at bind time. */
static void close_listen(struct parser *p)
{
    struct config *cfg = p->cfg;
    struct config_listener *l = p->base;
    const char *label = l->name;
    if (p->key_lines[LISTEN_KEY_ADDRESS] == 0) {
        report(p, p->section_line, "section [listen \"%s\"]: key 'address' is missing", label);
        cfg->listen_count--; /* it is the last one */
        return;
    }
    for (int k = LISTEN_KEY_MODE; k <= LISTEN_KEY_GROUP; k++) {
        if (p->key_lines[k] != 0 && l->addr.kind != FERRY_ADDR_UNIX)
            report(p, p->key_lines[k], "key '%s': only for unix: addresses",
                   listen_keys[k].name);
    }
    for (size_t i = 0; i + 1 < cfg->listen_count; i++) {
        const struct ferry_addr *other = &cfg->listen[i].addr;
        if (other->kind == l->addr.kind && strcmp(other->path, l->addr.path) == 0 &&
            strcmp(other->host, l->addr.host) == 0 && other->port == l->addr.port)
            report(p, p->key_lines[LISTEN_KEY_ADDRESS],
                   "key 'address': same address as [listen \"%s\"]", cfg->listen[i].name);
    }
}

/* A size limit below two segments would refuse publishes at once: the
 * active segment and one being reclaimed must fit. */
static void close_storage(struct parser *p)
{
    struct config *cfg = p->cfg;
    if (cfg->max_bytes != 0 && cfg->max_bytes < 2 * cfg->segment_size) {
        char max[32], seg[32];
        format_with_unit(cfg->max_bytes, size_units, COUNT_OF(size_units), max, sizeof max);
        format_with_unit(cfg->segment_size, size_units, COUNT_OF(size_units), seg, sizeof seg);
        int line = p->key_lines[STORAGE_KEY_MAX_BYTES];
        report(p, line ? line : p->section_line,
               "key 'max_bytes': %s is below twice segment_size (%s); 0 means no limit", max,
               seg);
    }
}

static void *open_queue(struct parser *p, const char *name)
{
    struct config *cfg = p->cfg;
    size_t len = strlen(name);
    if (!ferry_name_valid((struct ferry_bytes){ (const uint8_t *)name, len })) {
        report(p, p->line, "section [queue \"%s\"]: bad queue name: expected 1..%u letters, "
               "digits, '.', '_', '-' or ':'", name, FERRY_NAME_MAX);
        return NULL;
    }
    for (size_t i = 0; i < cfg->queue_count; i++) {
        if (strcmp(cfg->queues[i].name, name) == 0) {
            report(p, p->line, "section [queue \"%s\"]: duplicate section (first at line %d)",
                   name, cfg->queues[i].line);
            return NULL;
        }
    }
    if (cfg->queue_count == CONFIG_QUEUES_MAX) {
        report(p, p->line, "section [queue \"%s\"]: too many queue sections (at most %d)",
               name, CONFIG_QUEUES_MAX);
        return NULL;
    }
    /* Grows by doubling; cfg owns the array. */
    size_t count = cfg->queue_count;
    if ((count & (count - 1)) == 0) {
        size_t cap = count == 0 ? 8 : count * 2;
        struct config_queue *grown = realloc(cfg->queues, cap * sizeof *grown);
        if (!grown) {
            report(p, p->line, "section [queue \"%s\"]: out of memory", name);
            return NULL;
        }
        cfg->queues = grown;
    }
    struct config_queue *q = &cfg->queues[cfg->queue_count++];
    *q = (struct config_queue){ .line = p->line, .settings = cfg->queue_defaults };
    memcpy(q->name, name, len + 1);
    return &q->settings;
}

static const struct section_spec sections[] = {
    { "server", false, server_keys, open_config_section, NULL },
    { "log", false, log_keys, open_config_section, NULL },
    { "limits", false, limits_keys, open_config_section, NULL },
    { "storage", false, storage_keys, open_config_section, close_storage },
    { "listen", true, listen_keys, open_listen, close_listen },
    { "queues", false, queue_keys, open_queue_defaults, NULL },
    { "queue", true, queue_keys, open_queue, NULL },
};
_Static_assert(COUNT_OF(sections) <= COUNT_OF(((struct parser *)0)->seen_line),
               "parser.seen_line has a slot per section kind");
_Static_assert(COUNT_OF(server_keys) <= SECTION_KEYS_MAX && COUNT_OF(log_keys) <= SECTION_KEYS_MAX &&
               COUNT_OF(limits_keys) <= SECTION_KEYS_MAX && COUNT_OF(listen_keys) <= SECTION_KEYS_MAX &&
               COUNT_OF(storage_keys) <= SECTION_KEYS_MAX && COUNT_OF(queue_keys) <= SECTION_KEYS_MAX,
               "parser.key_lines has a slot per key of a section");

static const struct section_spec *find_section(const char *kind)
{
    for (size_t i = 0; i < COUNT_OF(sections); i++) {
        if (strcmp(sections[i].kind, kind) == 0)
            return &sections[i];
    }
    return NULL;
}

/* Ends the current section: its own checks. */
static void close_section(struct parser *p)
{
    if (p->spec && p->spec->close)
        p->spec->close(p);
    p->spec = NULL;
    p->base = NULL;
    p->section_reported = false;
}

/* Splits the inside of "[kind]" or "[kind "name"]" (brackets removed). */
static int split_header(char *inside, char **kind, char **name)
{
    *kind = inside;
    *name = NULL;
    char *space = strchr(inside, ' ');
    if (!space)
        return strchr(inside, '"') ? -1 : 0;
    *space = '\0';
    char *quoted = space + 1;
    quoted += strspn(quoted, " \t");
    size_t len = strlen(quoted);
    if (len < 2 || quoted[0] != '"' || quoted[len - 1] != '"')
        return -1;
    quoted[len - 1] = '\0';
    *name = quoted + 1;
    return strchr(*name, '"') ? -1 : 0;
}

/* A header line as the reader saw it, leading blanks skipped. inih
 * parses it too, but calls us only for keys: an empty section, like a
 * reserved [queue "jobs"], would otherwise go unchecked. */
static void on_section_header(struct parser *p, const char *line)
{
    close_section(p);
    p->section_line = p->line;
    memset(p->key_lines, 0, sizeof p->key_lines);
    p->section_reported = true; /* until it proves good */

    char inside[256];
    const char *end = strchr(line, ']');
    size_t len = end ? (size_t)(end - line - 1) : 0;
    const char *after = end ? end + 1 + strspn(end + 1, " \t\r\n") : "";
    if (!end || len >= sizeof inside || (*after != '\0' && *after != ';' && *after != '#')) {
        report(p, p->line, "bad section header: expected [name] or [name \"label\"]");
        return;
    }
    memcpy(inside, line + 1, len);
    inside[len] = '\0';
    char *kind, *name;
    if (split_header(inside, &kind, &name) != 0) {
        report(p, p->line, "bad section header: expected [name] or [name \"label\"]");
        return;
    }
    const struct section_spec *spec = find_section(kind);
    if (!spec) {
        report(p, p->line, "section [%s]: unknown section", kind);
        return;
    }
    if (spec->named != (name != NULL)) {
        report(p, p->line, spec->named ? "section [%s]: needs a name, as in [%s \"NAME\"]"
                                       : "section [%s]: takes no name%s", kind,
               spec->named ? kind : "");
        return;
    }
    size_t index = (size_t)(spec - sections);
    if (!spec->named && p->seen_line[index] != 0) {
        report(p, p->line, "section [%s]: duplicate section (first at line %d)", kind,
               p->seen_line[index]);
        return;
    }
    p->seen_line[index] = p->line;
    void *base = spec->open(p, name ? name : "");
    if (!base)
        return;
    p->spec = spec;
    p->base = base;
    p->section_reported = false;
}

/* ---- keys ---------------------------------------------------------------------------- */

static int apply_number(const struct key_spec *key, const char *value, void *field,
                        char *why, size_t why_size)
{
    uint64_t v;
    const struct unit *units = key->kind == VALUE_SIZE ? size_units : duration_units;
    size_t unit_count = key->kind == VALUE_SIZE ? COUNT_OF(size_units) : COUNT_OF(duration_units);
    if (key->kind == VALUE_SIZE && config_parse_size(value, &v, why, why_size) != 0)
        return -1;
    if (key->kind == VALUE_DURATION && config_parse_duration_ms(value, &v, why, why_size) != 0)
        return -1;
    if (key->kind == VALUE_COUNT) {
        const char *rest;
        if (parse_digits(value, &v, &rest) != 0 || *rest != '\0')
            return fail_why(why, why_size, "bad number '%s'", value);
    }
    if ((v < key->min && !(v == 0 && key->zero_is_off)) || v > key->max) {
        char min[32], max[32];
        if (key->kind == VALUE_COUNT) {
            snprintf(min, sizeof min, "%llu", (unsigned long long)key->min);
            snprintf(max, sizeof max, "%llu", (unsigned long long)key->max);
        } else {
            format_with_unit(key->min, units, unit_count, min, sizeof min);
            format_with_unit(key->max, units, unit_count, max, sizeof max);
        }
        return fail_why(why, why_size, "'%s' is out of range (%s%s..%s)", value,
                        key->zero_is_off ? "0 or " : "", min, max);
    }
    if (key->kind == VALUE_DURATION)
        *(uint64_t *)field = v;
    else
        *(size_t *)field = (size_t)v;
    return 0;
}

/* Parses `value` into the field `key` names in `base`. */
static int apply_key(const struct key_spec *key, void *base, const char *value,
                     char *why, size_t why_size)
{
    void *field = (char *)base + key->offset;
    const char *addr_why = "bad address";
    switch (key->kind) {
    case VALUE_SIZE:
    case VALUE_COUNT:
    case VALUE_DURATION:
        return apply_number(key, value, field, why, why_size);
    case VALUE_LOG_LEVEL:
        if (log_level_parse(value, field) != 0)
            return fail_why(why, why_size, "bad level '%s': expected error, warn, info or debug",
                            value);
        return 0;
    case VALUE_PATH:
        return parse_path(value, field, why, why_size);
    case VALUE_DIR:
        if (value[0] == '\0') {
            *(char *)field = '\0';
            return 0;
        }
        return parse_path(value, field, why, why_size);
    case VALUE_BOOL:
        return parse_bool(value, field, why, why_size);
    case VALUE_OVERFLOW:
        return parse_overflow(value, field, why, why_size);
    case VALUE_FSYNC:
        return parse_fsync(value, field, why, why_size);
    case VALUE_ADDRESS:
        if (ferry_addr_parse(value, field, &addr_why) != 0)
            return fail_why(why, why_size, "bad address '%s': %s", value, addr_why);
        return 0;
    case VALUE_MODE: {
        struct config_listener *l = base;
        if (parse_mode(value, &l->mode, why, why_size) != 0)
            return -1;
        l->has_mode = true;
        return 0;
    }
    case VALUE_ACCOUNT:
        return parse_account(value, field, why, why_size);
    case VALUE_QUEUE: {
        struct ferry_bytes name = { (const uint8_t *)value, strlen(value) };
        if (name.len > 0 && !ferry_name_valid(name))
            return fail_why(why, why_size, "bad queue name '%.64s': 1..255 bytes of "
                            "A-Z a-z 0-9 . _ - :", value);
        /* Such a queue is never made for it: its messages would wait for
         * ever for a dead-letter queue that cannot exist. */
        if (strncmp(value, FERRY_TEMP_PREFIX, strlen(FERRY_TEMP_PREFIX)) == 0)
            return fail_why(why, why_size, "queue name '%.64s': names beginning with "
                            FERRY_TEMP_PREFIX " are for temporary queues", value);
        memcpy(field, value, name.len + 1);
        return 0;
    }
    }
    return fail_why(why, why_size, "internal error: unknown value kind");
}

/* "bind = PATTERN..." in a [queue "NAME"] section: one or more patterns
 * separated by spaces or commas, appended to the section's (the key may
 * come again). */
static void add_binds(struct parser *p, const char *value)
{
    struct config_queue *q = &p->cfg->queues[p->cfg->queue_count - 1];
    if (strncmp(q->name, FERRY_TEMP_PREFIX, strlen(FERRY_TEMP_PREFIX)) == 0) {
        /* Only DECLARE_TEMP makes such a queue: the binding could never be made. */
        report(p, p->line, "key 'bind': queue '%s' is a temporary queue's name (" FERRY_TEMP_PREFIX
               "): its connection binds it", q->name);
        return;
    }
    const char *seps = " \t,";
    size_t added = 0;
    for (const char *s = value + strspn(value, seps); *s != '\0'; s += strspn(s, seps)) {
        size_t len = strcspn(s, seps);
        struct ferry_bytes pattern = { (const uint8_t *)s, len };
        if (!ferry_pattern_valid(pattern)) {
            report(p, p->line, "key 'bind': bad pattern '%.*s': expected words of A-Z a-z 0-9 "
                   "_ - : separated by '.', a word may be * or #; at most %u bytes, %u words",
                   (int)(len < 300 ? len : 300), s, FERRY_TOPIC_MAX, FERRY_TOPIC_WORDS_MAX);
            return;
        }
        if (q->bind_count == CONFIG_BINDS_PER_QUEUE_MAX) {
            report(p, p->line, "key 'bind': more than %d patterns for one queue",
                   CONFIG_BINDS_PER_QUEUE_MAX);
            return;
        }
        size_t old = q->binds ? strlen(q->binds) : 0;
        char *grown = realloc(q->binds, old + 1 + len + 1); /* q owns it */
        if (!grown) {
            report(p, p->line, "key 'bind': out of memory");
            return;
        }
        if (old > 0)
            grown[old++] = ' ';
        memcpy(grown + old, s, len);
        grown[old + len] = '\0';
        q->binds = grown;
        q->bind_count++;
        added++;
        s += len;
    }
    if (added == 0)
        report(p, p->line, "key 'bind': expected one or more patterns");
}

/* inih's callback, for each "key = value" line. */
static int on_key(void *user, const char *inih_section, const char *name, const char *value)
{
    struct parser *p = user;
    p->line_got_key = true;
    if (p->section_reported)
        return 1; /* the header said what is wrong */
    if (!p->spec) {
        report(p, p->line, "key '%s': outside any section", name);
        return 1;
    }
    if (strcmp(name, "bind") == 0 && p->spec->keys == queue_keys) {
        if (strcmp(p->spec->kind, "queue") == 0)
            add_binds(p, value);
        else
            report(p, p->line, "key 'bind': only in a [queue \"NAME\"] section");
        return 1;
    }
    size_t k = 0;
    while (p->spec->keys[k].name && strcmp(p->spec->keys[k].name, name) != 0)
        k++;
    if (!p->spec->keys[k].name) {
        report(p, p->line, "key '%s': unknown key in [%s]", name, p->spec->kind);
        return 1;
    }
    if (p->key_lines[k] != 0) {
        report(p, p->line, "key '%s': duplicate key (first at line %d)", name, p->key_lines[k]);
        return 1;
    }
    p->key_lines[k] = p->line;
    char why[400];
    if (apply_key(&p->spec->keys[k], p->base, value, why, sizeof why) != 0) {
        report(p, p->line, "key '%s': %s", name, why);
        return 1;
    }
    /* Where durable queues were asked for, for config_check's message. */
    if (p->spec->keys == queue_keys && strcmp(name, "durable") == 0 &&
        ((struct config_queue_settings *)p->base)->durable && p->cfg->durable_line == 0)
        p->cfg->durable_line = p->line;
    return 1;
}

/* ---- reading lines ------------------------------------------------------------------- */

/* Called before each new line and at the end: a key line that inih did
 * not hand to on_key had no '=' (inih itself reports only the first). */
static void check_line_done(struct parser *p)
{
    if (p->line_wants_key && !p->line_got_key)
        report(p, p->line, "expected 'key = value' or a [section] header");
    p->line_wants_key = false;
    p->line_got_key = false;
}

/* One line into buf (at most size - 1 bytes, newline included). 0, 1 if
 * the line was longer (the rest is skipped), -1 at the end. */
static int read_line(struct parser *p, char *buf, size_t size)
{
    if (p->in) {
        if (!fgets(buf, (int)size, p->in))
            return -1;
        size_t len = strlen(buf);
        if (len == 0 || buf[len - 1] == '\n' || feof(p->in))
            return 0;
        int c;
        while ((c = fgetc(p->in)) != EOF && c != '\n')
            ;
        return 1;
    }
    if (*p->text == '\0')
        return -1;
    size_t len = strcspn(p->text, "\n");
    bool too_long = len + 2 > size;
    if (!too_long) {
        memcpy(buf, p->text, len);
        buf[len] = '\n';
        buf[len + 1] = '\0';
    }
    p->text += len + (p->text[len] == '\n');
    return too_long ? 1 : 0;
}

/* inih's line source. Besides reading, it sees every line, which is how
 * section headers, lines inih cannot split and line numbers are known. */
static char *reader(char *buf, int size, void *stream)
{
    struct parser *p = stream;
    check_line_done(p);
    int rc = read_line(p, buf, (size_t)size);
    if (rc < 0)
        return NULL;
    p->line++;
    if (rc == 1) {
        report(p, p->line, "line too long (at most %d characters)", size - 3);
        snprintf(buf, (size_t)size, "\n");
        return buf;
    }
    char *start = buf;
    if (p->line == 1 && strncmp(start, "\xEF\xBB\xBF", 3) == 0)
        start += 3; /* a UTF-8 byte order mark */
    /* Indentation means nothing here; to inih it would continue the value
     * of the line above, which this format does not have. */
    start += strspn(start, " \t");
    memmove(buf, start, strlen(start) + 1);
    if (buf[0] == '[')
        on_section_header(p, buf);
    else if (buf[0] != '\0' && !strchr("\r\n;#", buf[0]))
        p->line_wants_key = true;
    return buf;
}

static int parse(struct parser *p)
{
    int rc = ini_parse_stream(reader, p, on_key, p);
    check_line_done(p);
    close_section(p);
    if (rc == -2)
        report(p, p->line, "out of memory");
    return p->errors == 0 ? 0 : -1;
}

int config_load(struct config *cfg, const char *path, config_error_fn *on_error, void *arg)
{
    struct parser p = { .cfg = cfg, .file = path, .on_error = on_error, .error_arg = arg };
    p.in = fopen(path, "re");
    if (!p.in) {
        char text[CONFIG_PATH_MAX + 100];
        snprintf(text, sizeof text, "%s: cannot open: %s", path, strerror(errno));
        on_error(arg, text);
        return -1;
    }
    int rc = parse(&p);
    if (ferror(p.in)) {
        report(&p, p.line, "read error: %s", strerror(errno));
        rc = -1;
    }
    fclose(p.in);
    return rc;
}

int config_load_string(struct config *cfg, const char *name, const char *text,
                       config_error_fn *on_error, void *arg)
{
    struct parser p = { .cfg = cfg, .file = name, .on_error = on_error, .error_arg = arg,
                        .text = text };
    return parse(&p);
}

/* ---- the rest of the API ----------------------------------------------------------- */

void config_init(struct config *cfg)
{
    *cfg = (struct config){
        .max_connections = CONFIG_MAX_CONNECTIONS_DEFAULT,
        .max_frame = FERRY_FRAME_MAX_DEFAULT,
        .max_output = CONFIG_MAX_OUTPUT_DEFAULT,
        .handshake_timeout_ms = CONFIG_HANDSHAKE_TIMEOUT_MS_DEFAULT,
        .heartbeat_ms = CONFIG_HEARTBEAT_MS_DEFAULT,
        .dedup_window_ms = CONFIG_DEDUP_WINDOW_MS_DEFAULT,
        .dedup_entries = CONFIG_DEDUP_ENTRIES_DEFAULT,
        .max_queues = CONFIG_MAX_QUEUES_DEFAULT,
        .max_consumers_per_queue = CONFIG_MAX_CONSUMERS_DEFAULT,
        .max_queued_memory = CONFIG_MAX_QUEUED_MEMORY_DEFAULT,
        .log_level = LOG_LEVEL_INFO,
        .shutdown_timeout_ms = CONFIG_SHUTDOWN_TIMEOUT_MS_DEFAULT,
        .data_dir = CONFIG_DATA_DIR_DEFAULT,
        .fsync = CONFIG_FSYNC_ALWAYS,
        .fsync_interval_ms = CONFIG_FSYNC_INTERVAL_MS_DEFAULT,
        .segment_size = CONFIG_SEGMENT_SIZE_DEFAULT,
        .queue_defaults = { .retry_backoff_max_ms = CONFIG_RETRY_BACKOFF_MAX_MS_DEFAULT },
    };
}

int config_check(const struct config *cfg, const char *file, config_error_fn *on_error,
                 void *arg)
{
    if (!config_any_durable(cfg) || cfg->data_dir[0] != '\0')
        return 0;
    char text[CONFIG_PATH_MAX + 200];
    snprintf(text, sizeof text,
             "%s:%d: key 'durable': durable queues need a data directory, and data_dir is "
             "empty (set it in [server], or --data-dir)",
             file ? file : "(defaults)", cfg->durable_line);
    on_error(arg, text);
    return -1;
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < cfg->queue_count; i++)
        free(cfg->queues[i].binds);
    free(cfg->queues);
    cfg->queues = NULL;
    cfg->queue_count = 0;
}

void config_move(struct config *dst, struct config *src)
{
    config_free(dst);
    *dst = *src; /* dst owns src's queues from here */
    src->queues = NULL;
    src->queue_count = 0;
}

int config_set(struct config *cfg, const char *section, const char *key, const char *value,
               char *why, size_t why_size)
{
    const struct section_spec *spec = find_section(section);
    if (!spec || spec->named || spec->open != open_config_section)
        return fail_why(why, why_size, "internal error: no section [%s]", section);
    for (const struct key_spec *k = spec->keys; k->name; k++) {
        if (strcmp(k->name, key) == 0)
            return apply_key(k, cfg, value, why, why_size);
    }
    return fail_why(why, why_size, "internal error: no key '%s' in [%s]", key, section);
}

int config_add_listen_url(struct config *cfg, const char *url, char *why, size_t why_size)
{
    if (cfg->listen_count == CONFIG_LISTEN_MAX)
        return fail_why(why, why_size, "at most %d listen addresses", CONFIG_LISTEN_MAX);
    struct config_listener *l = &cfg->listen[cfg->listen_count];
    *l = (struct config_listener){ 0 };
    const char *addr_why = "bad address";
    if (ferry_addr_parse(url, &l->addr, &addr_why) != 0)
        return fail_why(why, why_size, "bad address '%s': %s", url, addr_why);
    cfg->listen_count++;
    return 0;
}

void config_use_default_listen(struct config *cfg)
{
    if (cfg->listen_count > 0)
        return;
    char why[128];
    if (config_add_listen_url(cfg, "unix:" FERRY_DEFAULT_SOCKET, why, sizeof why) == 0)
        cfg->listen_is_default = true;
}

const struct config_queue_settings *config_queue_settings(const struct config *cfg,
                                                          const char *name)
{
    for (size_t i = 0; i < cfg->queue_count; i++) {
        if (strcmp(cfg->queues[i].name, name) == 0)
            return &cfg->queues[i].settings;
    }
    return &cfg->queue_defaults;
}

enum config_fsync config_queue_fsync(const struct config *cfg,
                                     const struct config_queue_settings *s)
{
    return s->fsync != CONFIG_FSYNC_UNSET ? s->fsync : cfg->fsync;
}

bool config_any_durable(const struct config *cfg)
{
    if (cfg->queue_defaults.durable)
        return true;
    for (size_t i = 0; i < cfg->queue_count; i++) {
        if (cfg->queues[i].settings.durable)
            return true;
    }
    return false;
}

/* ALWAYS < INTERVAL < NEVER: the lowest is the strongest. */
static enum config_fsync stronger(enum config_fsync a, enum config_fsync b)
{
    return a < b ? a : b;
}

enum config_fsync config_strongest_fsync(const struct config *cfg)
{
    enum config_fsync strongest = CONFIG_FSYNC_NEVER;
    bool any = false;
    if (cfg->queue_defaults.durable) {
        strongest = config_queue_fsync(cfg, &cfg->queue_defaults);
        any = true;
    }
    for (size_t i = 0; i < cfg->queue_count; i++) {
        const struct config_queue_settings *s = &cfg->queues[i].settings;
        if (s->durable) {
            strongest = stronger(strongest, config_queue_fsync(cfg, s));
            any = true;
        }
    }
    return any ? strongest : cfg->fsync;
}
