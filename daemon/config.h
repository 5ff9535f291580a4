/*
 * config.h - ferryd's configuration: every setting the daemon has, its
 * default, and the conf file (INI, see ferryd.conf(5)) that fills it.
 *
 * Pure: a file or a string in, a struct config and error lines out. Knows
 * no sockets, no libevent and no user database; server.c acts on the values.
 */
#ifndef FERRYD_CONFIG_H
#define FERRYD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_proto.h"
#include "log.h"

/* Listening addresses one configuration holds at most. */
#define CONFIG_LISTEN_MAX 16
/* [queue "NAME"] sections one file holds at most. */
#define CONFIG_QUEUES_MAX 4096
/* Longest path (data_dir, pid_file, the conf file itself), NUL excluded. */
#define CONFIG_PATH_MAX 1023
/* Longest user or group name of a socket's owner. */
#define CONFIG_ACCOUNT_MAX 32

/* Defaults and bounds of the settings with a range (ferryd.conf(5)). */
#define CONFIG_MAX_CONNECTIONS_DEFAULT 10000u
#define CONFIG_MAX_CONNECTIONS_CEILING 1000000u
#define CONFIG_MAX_OUTPUT_DEFAULT (64ull * 1024 * 1024)
#define CONFIG_MAX_OUTPUT_FLOOR (64ull * 1024)
#define CONFIG_MAX_OUTPUT_CEILING (4096ull * 1024 * 1024)
#define CONFIG_HANDSHAKE_TIMEOUT_MS_DEFAULT 10000u
#define CONFIG_HANDSHAKE_TIMEOUT_MS_FLOOR 100u
#define CONFIG_HANDSHAKE_TIMEOUT_MS_CEILING (3600u * 1000u)
/* A connection silent this long is closed; 0 turns heartbeats off. */
#define CONFIG_HEARTBEAT_MS_DEFAULT 30000u
#define CONFIG_HEARTBEAT_MS_FLOOR 100u
#define CONFIG_HEARTBEAT_MS_CEILING (3600u * 1000u)
/* Duplicate publishes of reconnecting producers: how long and how many
 * (producer, id) pairs are remembered. A window of 0 turns it off. */
#define CONFIG_DEDUP_WINDOW_MS_DEFAULT 60000u
#define CONFIG_DEDUP_WINDOW_MS_FLOOR 100u
#define CONFIG_DEDUP_WINDOW_MS_CEILING (24u * 3600u * 1000u)
#define CONFIG_DEDUP_ENTRIES_DEFAULT 100000u
#define CONFIG_DEDUP_ENTRIES_CEILING 100000000u
#define CONFIG_MAX_QUEUES_DEFAULT 10000u
#define CONFIG_MAX_QUEUES_CEILING 10000000u
#define CONFIG_MAX_CONSUMERS_DEFAULT 10000u
#define CONFIG_MAX_CONSUMERS_CEILING 1000000u
/* Flow control: all queued messages together (their bytes and about 72
 * bytes each of bookkeeping), and a queue's own bounds (0: none). */
#define CONFIG_MAX_QUEUED_MEMORY_DEFAULT (1024ull * 1024 * 1024)
#define CONFIG_MAX_QUEUED_MEMORY_FLOOR (64ull * 1024)
#define CONFIG_MAX_QUEUED_MEMORY_CEILING (1ull << 50)
#define CONFIG_QUEUE_MAX_LENGTH_CEILING (1ull << 40)
#define CONFIG_QUEUE_MAX_BYTES_CEILING (1ull << 50)
#define CONFIG_SHUTDOWN_TIMEOUT_MS_DEFAULT 5000u
#define CONFIG_SHUTDOWN_TIMEOUT_MS_CEILING (3600u * 1000u)
/* The log of durable queues: where, how large its segments, how often an
 * interval sync, at most how large in all (0: no limit). */
#define CONFIG_DATA_DIR_DEFAULT "/var/lib/ferry"
#define CONFIG_FSYNC_INTERVAL_MS_DEFAULT 100u
#define CONFIG_FSYNC_INTERVAL_MS_FLOOR 1u
#define CONFIG_FSYNC_INTERVAL_MS_CEILING (60u * 1000u)
#define CONFIG_SEGMENT_SIZE_DEFAULT (64ull * 1024 * 1024)
#define CONFIG_SEGMENT_SIZE_FLOOR (4ull * 1024)
#define CONFIG_SEGMENT_SIZE_CEILING (1024ull * 1024 * 1024)
#define CONFIG_MAX_BYTES_CEILING (1ull << 60)

/* Process exit status of a bad configuration (EX_CONFIG). */
#define CONFIG_EXIT_BAD 78

/* One listening address: a [listen "NAME"] section or a -l option. */
struct config_listener {
    struct ferry_addr addr;
    char name[64];   /* the section's name; "" for -l and the default */
    /* Unix sockets only; unset values leave what bind() gives. */
    bool has_mode;
    unsigned mode;   /* permission bits of the socket file, <= 0777 */
    char owner[CONFIG_ACCOUNT_MAX + 1]; /* user name or numeric id, "" unset */
    char group[CONFIG_ACCOUNT_MAX + 1]; /* group name or numeric id, "" unset */
};

/* When a confirmed publish to a durable queue is safe (ferryd.conf(5)). */
enum config_fsync {
    CONFIG_FSYNC_UNSET = 0,  /* a queue's own: the [storage] fsync applies */
    CONFIG_FSYNC_ALWAYS,     /* fdatasync'd before the confirm */
    CONFIG_FSYNC_INTERVAL,   /* written before the confirm, synced every fsync_interval */
    CONFIG_FSYNC_NEVER,      /* written before the confirm, synced by the OS */
};

/* What a publish to a full queue meets (ferryd.conf(5), "overflow"). */
enum config_overflow {
    CONFIG_OVERFLOW_BLOCK = 0, /* the producer's connection is not read until there is room */
    CONFIG_OVERFLOW_REJECT,    /* ERROR QUEUE_FULL for that publish */
    CONFIG_OVERFLOW_DROP_OLDEST, /* the oldest ready messages make room */
};
/* Bounds of the retry settings of a queue (ferryd.conf(5)). */
#define CONFIG_RETRY_MS_CEILING (24u * 3600u * 1000u)
#define CONFIG_RETRY_BACKOFF_MAX_MS_DEFAULT 60000u
#define CONFIG_MAX_ATTEMPTS_CEILING 1000000u

/* The settings of one queue. Later issues add fields here, their keys to
 * queue_keys[] in config.c, and the same key then works in [queues] (the
 * defaults) and in [queue "NAME"]. */
struct config_queue_settings {
    bool durable;            /* durable = yes|no: logged in data_dir; default no */
    enum config_fsync fsync; /* UNSET: [storage] fsync */
    size_t priority;         /* of a message published without one: 0..9, default 0 */
    uint64_t ttl_ms;         /* time to live of its messages; 0 (default): none */
    size_t max_length;       /* messages ready, delayed and in flight; 0: no bound */
    size_t max_bytes;        /* their payload + header bytes; 0: no bound */
    enum config_overflow overflow; /* at a bound or at max_queued_memory; default block */
    uint64_t ack_deadline_ms;      /* a delivery not acked in time is redelivered; 0: none */
    uint64_t retry_backoff_ms;     /* first wait before a redelivery after a deadline or a
                                    * lost consumer, doubling each attempt; 0: none */
    uint64_t retry_backoff_max_ms; /* the cap of that wait; default 1 min */
    size_t max_attempts;           /* deliveries before dead-lettering; 0: no limit */
    char dead_letter_queue[FERRY_NAME_MAX + 1]; /* "": drop after max_attempts */
};

/* Binding patterns of one [queue "NAME"] section ("bind = PATTERN...",
 * repeatable), at most this many. */
#define CONFIG_BINDS_PER_QUEUE_MAX 1024

/* A [queue "NAME"] section. */
struct config_queue {
    char name[FERRY_NAME_MAX + 1];
    int line; /* of its section header, for messages */
    struct config_queue_settings settings;
    /* Its bind patterns, each valid, separated by one space; NULL if none.
     * Owned (config_free frees it). */
    char *binds;
    size_t bind_count;
};

struct config {
    /* [listen "NAME"] sections, or -l options (which replace them all). */
    struct config_listener listen[CONFIG_LISTEN_MAX];
    size_t listen_count;
    /* Set when the listeners are the built-in default: the socket's parent
     * directory is then created if missing. */
    bool listen_is_default;

    /* [limits] */
    size_t max_connections;
    size_t max_frame;
    size_t max_output;
    uint64_t handshake_timeout_ms;
    uint64_t heartbeat_ms;       /* heartbeat_timeout; 0: off */
    uint64_t dedup_window_ms;    /* 0: no duplicate is dropped */
    size_t dedup_entries;
    size_t max_queues;
    size_t max_consumers_per_queue;
    size_t max_queued_memory;    /* 0: no limit */

    /* [log] */
    enum log_level log_level;

    /* [server] */
    char data_dir[CONFIG_PATH_MAX + 1];  /* "" unset: no durable queue may exist */
    char pid_file[CONFIG_PATH_MAX + 1];  /* "" unset: no pid file */
    uint64_t shutdown_timeout_ms;

    /* [storage] */
    enum config_fsync fsync;     /* the default policy of durable queues; never UNSET */
    uint64_t fsync_interval_ms;
    size_t segment_size;
    size_t max_bytes;            /* 0: no limit */

    /* [queues] and [queue "NAME"] */
    struct config_queue_settings queue_defaults;
    struct config_queue *queues; /* owned array of queue_count */
    size_t queue_count;
    int durable_line;            /* of the file's first "durable = yes"; 0: none */
};

/* Fills *cfg with the built-in defaults (no listener yet, no queue). */
void config_init(struct config *cfg);
/* Frees what *cfg owns; *cfg may be reused after config_init. */
void config_free(struct config *cfg);
/* Moves src into *dst (freeing dst's old contents); src is left empty. */
void config_move(struct config *dst, struct config *src);

/* Where config_load and config_set report each error: one line without
 * the trailing newline, "FILE:LINE: key 'K': reason". */
typedef void config_error_fn(void *arg, const char *line);

/* Reads the conf file at `path` on top of *cfg (normally fresh from
 * config_init). Every error is reported, not just the first. 0 if the
 * file is valid; else -1, and *cfg holds a partial result to be freed. */
int config_load(struct config *cfg, const char *path, config_error_fn *on_error, void *arg);
/* The same on text in memory; `name` stands for the file in messages. */
int config_load_string(struct config *cfg, const char *name, const char *text,
                       config_error_fn *on_error, void *arg);

/* The checks that need the whole configuration, the command line's
 * options included: durable queues need a data_dir. Reports each problem
 * as config_load does (`file` names the conf file in messages). 0 or -1. */
int config_check(const struct config *cfg, const char *file, config_error_fn *on_error,
                 void *arg);

/* Sets one key of a section ("limits", "max_frame", "16MiB") as the file
 * would, for command-line options. 0, or -1 with the reason in why[]. */
int config_set(struct config *cfg, const char *section, const char *key, const char *value,
               char *why, size_t why_size);
/* Adds a listener given as a URL (a -l option). 0, or -1 with why[]. */
int config_add_listen_url(struct config *cfg, const char *url, char *why, size_t why_size);
/* Adds the built-in listener, unix:FERRY_DEFAULT_SOCKET, if there is none. */
void config_use_default_listen(struct config *cfg);

/* The settings that apply to queue `name`: its section's, else the
 * [queues] defaults. */
const struct config_queue_settings *config_queue_settings(const struct config *cfg,
                                                          const char *name);
/* A queue's fsync policy, its UNSET resolved to the [storage] default. */
enum config_fsync config_queue_fsync(const struct config *cfg,
                                     const struct config_queue_settings *s);
/* Whether any queue may be durable (the defaults or a section say so). */
bool config_any_durable(const struct config *cfg);
/* The strongest fsync policy of the queues that may be durable (ALWAYS
 * before INTERVAL before NEVER); the [storage] default if there is none. */
enum config_fsync config_strongest_fsync(const struct config *cfg);

/* Value syntax, shared with the command line. Each returns 0, or -1 with
 * a reason in why[].
 * A size is bytes, or a number with B, KiB, MiB, GiB or TiB: "64KiB". */
int config_parse_size(const char *text, uint64_t *out, char *why, size_t why_size);
/* A duration is a number with ms, s, min or h: "250ms", "30s". */
int config_parse_duration_ms(const char *text, uint64_t *out, char *why, size_t why_size);

#endif
