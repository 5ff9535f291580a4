/*
 * store.h - the durable message log of ferryd: an append-only log, in
 * segment files of one directory, of durable queues, their messages and
 * what became of them, with group commit, crash recovery and compaction.
 * Format and guarantees: docs/STORAGE.md.
 *
 * File I/O only: no sockets, no libevent, no broker structures. It speaks
 * in queue names, store-wide message ids and byte spans; the broker
 * decides which queues are durable and calls it. Single-threaded, like
 * the broker; no call blocks on anything but the local disk.
 *
 * Appends only fill a memory buffer; store_flush writes the whole buffer
 * with one write and (policy ALWAYS) one fdatasync. Every append that
 * logs something returns an LSN (a count of appends); a publish may be
 * confirmed to its producer once store_flush reports a confirmed LSN at
 * or above its own.
 */
#ifndef FERRY_STORE_H
#define FERRY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_proto.h"

struct store;

enum store_status {
    STORE_OK = 0,
    STORE_ERR_INVALID,      /* bad argument: name not 1..255 bytes, settings or message too large */
    STORE_ERR_NOT_FOUND,    /* no durable queue of that name in the store */
    STORE_ERR_FULL,         /* max_bytes reached, or the disk said ENOSPC, EDQUOT or EFBIG */
    STORE_ERR_IO,           /* a read, write or sync failed otherwise */
    STORE_ERR_NO_MEMORY,
    STORE_ERR_LOCKED,       /* another process has the directory open */
    STORE_ERR_FORMAT,       /* a segment of a format version this code does not know */
    STORE_ERR_ABORTED,      /* a recovery callback returned false */
};

/* A short English phrase for a status ("disk limit reached", ...). */
const char *store_strerror(enum store_status status);

/* When a confirmed publish is safe (docs/STORAGE.md, "What a confirm promises"). */
enum store_sync {
    STORE_SYNC_ALWAYS,      /* fdatasync'd: survives a power loss */
    STORE_SYNC_INTERVAL,    /* written to the OS: survives a crash of ferryd;
                             * fdatasync at most every sync_interval_ms */
    STORE_SYNC_NEVER,       /* written to the OS: survives a crash of ferryd; never synced */
};

struct store_config {
    const char *dir;            /* created (one level) if missing */
    enum store_sync sync;       /* store_flush's policy; and unless NEVER, segments,
                                 * compaction's copies, a cut tail and the log at
                                 * open and close are synced. A caller that mixes
                                 * policies (store_commit) gives the strongest. */
    uint32_t sync_interval_ms;  /* STORE_SYNC_INTERVAL; 0 means 100 */
    uint64_t segment_bytes;     /* a segment is closed once it reaches this; 0 means
                                 * 64 MiB; 4 KiB .. 1 GiB */
    uint64_t max_bytes;         /* total size of the segments; 0 means no limit */
    uint64_t reserve_bytes;     /* of max_bytes, kept for acks and queue changes
                                 * (publishes are refused past max_bytes - reserve);
                                 * 0 means max_bytes / 16 */
};

/* Called by store_open for what the log holds, in this order: every
 * durable queue (on_queue), then every message not acked or dropped in
 * publish (id) order (on_message), then every ended queue (on_end). The
 * spans are valid only during the call. A callback that returns false
 * makes store_open fail with STORE_ERR_ABORTED. NULL callbacks are skipped. */
struct store_recovery {
    void *arg;
    bool (*on_queue)(void *arg, struct ferry_bytes name, struct ferry_bytes settings);
    bool (*on_message)(void *arg, struct ferry_bytes queue, uint64_t id, uint32_t attempts,
                       struct ferry_bytes meta, struct ferry_bytes headers,
                       struct ferry_bytes payload);
    bool (*on_end)(void *arg, struct ferry_bytes queue);
};

/* Damage found by recovery: which file, where, what was done about it. */
#define STORE_REPORT_PROBLEMS 8
struct store_problem {
    char file[32];
    uint64_t offset;
    char what[96];
};

struct store_report {
    uint64_t segments;          /* segment files read */
    uint64_t bytes;             /* their size */
    uint64_t records;           /* sound records applied */
    uint64_t queues;            /* handed to on_queue */
    uint64_t messages;          /* handed to on_message */
    uint64_t settled;           /* publishes found acked, dropped or of a deleted queue */
    uint64_t damaged;           /* records or segments skipped as damaged */
    uint64_t truncated_bytes;   /* torn tail cut off the last segment (0: none) */
    char truncated_file[32];
    uint64_t truncated_offset;  /* where the cut was made */
    uint64_t duration_us;       /* the whole store_open */
    size_t problem_count;       /* all problems; the first STORE_REPORT_PROBLEMS are below */
    struct store_problem problems[STORE_REPORT_PROBLEMS];
};

/* Opens (or creates) the log in cfg->dir, takes its lock, replays it
 * through `recovery` (may be NULL), cuts a torn tail, and gets ready to
 * append. `report` (may be NULL) says what was found and how long it took.
 * Damaged records never make it fail; it fails only when the directory
 * cannot be used (LOCKED, IO), on NO_MEMORY, FORMAT or ABORTED, with a
 * sentence in err (err_len bytes, may be 0). *out is the store, or NULL. */
enum store_status store_open(const struct store_config *cfg, const struct store_recovery *recovery,
                             struct store **out, struct store_report *report,
                             char *err, size_t err_len);

/* Flushes (and, unless NEVER, syncs) what is buffered, closes the files
 * and frees the store, even when that flush fails (whose status it returns).
 * NULL is a no-op. */
enum store_status store_close(struct store *st);

/* The sentence describing the last error of any call on st ("" if none). */
const char *store_last_error(const struct store *st);

/* ---- appends: memory only, until store_flush ---- */

/* Declares a durable queue, or changes its settings (an opaque blob of at
 * most 64 KiB that recovery hands back). Nothing is logged, and *lsn is 0,
 * if the queue exists with the same settings. *lsn may be NULL.
 * OK, INVALID, FULL, NO_MEMORY. */
enum store_status store_declare(struct store *st, struct ferry_bytes queue,
                                struct ferry_bytes settings, uint64_t *lsn);

/* Logs a message for a declared queue with a new store-wide id (never
 * reused, increasing in publish order). meta (0..255 bytes, opaque: the
 * broker's, handed back by recovery) says more of the message than its
 * bytes; it is empty for a plain message. Copies meta, headers and payload
 * once, into the write buffer. Refused with FULL once the log would pass
 * max_bytes - reserve_bytes. *id and *lsn may be NULL.
 * OK, NOT_FOUND, INVALID, FULL, NO_MEMORY. */
enum store_status store_publish(struct store *st, struct ferry_bytes queue, uint32_t attempts,
                                struct ferry_bytes meta, struct ferry_bytes headers,
                                struct ferry_bytes payload, uint64_t *id, uint64_t *lsn);

/* Logs message `id` again, whole, with a new meta and attempt count: a
 * PUBLISH record with its id (flag COPY), which recovery takes instead of
 * the earlier one, as it takes a compaction copy. So a message whose meta
 * changes after its publish (one that starts to wait: its deliver-at)
 * comes back with the new one. Unknown ids are a no-op. May use the
 * reserve (like other changes); on FULL the earlier record stands.
 * OK, INVALID, FULL, NO_MEMORY. *lsn may be NULL. */
enum store_status store_rewrite(struct store *st, uint64_t id, uint32_t attempts,
                                struct ferry_bytes meta, struct ferry_bytes headers,
                                struct ferry_bytes payload, uint64_t *lsn);

/* The message was acked or dropped: it will not come back. An unknown id
 * (already settled, of a deleted queue, or of a refused publish) is a
 * no-op. Never refused for space. The store forgets the message even when
 * it returns NO_MEMORY; then only the record is missing, and a crash
 * before the message's segment is reclaimed would bring it back. */
enum store_status store_ack(struct store *st, uint64_t id);

/* The message's delivery count changed (it is redelivered with this many
 * attempts after a restart). Unknown ids are a no-op. OK, FULL, NO_MEMORY;
 * on FULL the new count is kept in memory (and by compaction) but a crash
 * may bring back the previous one. */
enum store_status store_set_attempts(struct store *st, uint64_t id, uint32_t attempts);

/* Marks the queue ended or reopened (a no-op, *lsn 0, if it already is).
 * OK, NOT_FOUND, FULL, NO_MEMORY. */
enum store_status store_end(struct store *st, struct ferry_bytes queue, uint64_t *lsn);
enum store_status store_reopen(struct store *st, struct ferry_bytes queue, uint64_t *lsn);

/* Deletes the queue and every message of it (acks of those ids become
 * no-ops). Never refused for space. OK, NOT_FOUND, NO_MEMORY. */
enum store_status store_delete(struct store *st, struct ferry_bytes queue, uint64_t *lsn);

/* ---- group commit ---- */

/* Writes everything buffered with one write, then under ALWAYS one
 * fdatasync for the whole batch (INTERVAL: one if the interval is up),
 * then reclaims and compacts a bounded amount. *confirmed_lsn (may be
 * NULL) is the highest LSN as safe as the policy promises: every publish
 * at or below it may be confirmed.
 * On FULL or IO, every publish not yet confirmed is refused: it is not in
 * the log (and its id is forgotten), except after a failed fdatasync,
 * when its record was written and may still come back after a restart.
 * Other records of the failed batch stay buffered and are written by a
 * later flush, so the store goes on working once the disk has room. */
enum store_status store_flush(struct store *st, uint64_t *confirmed_lsn);

/* store_flush with the policy chosen per batch, for a caller whose queues
 * have policies of their own: `batch` is the strongest policy among the
 * queues that appended since the last commit. ALWAYS: one fdatasync after
 * the write; INTERVAL: the write is synced by store_tick (or a later
 * commit) once sync_interval_ms have passed since the last sync; NEVER: no
 * sync. *written_lsn: every append at or below it is written to the OS;
 * *synced_lsn: and fdatasync'd (either may be NULL). A publish of an
 * ALWAYS queue may be confirmed once at or below *synced_lsn, of the
 * others once at or below *written_lsn. Failures as store_flush. */
enum store_status store_commit(struct store *st, enum store_sync batch, uint64_t *written_lsn,
                               uint64_t *synced_lsn);

/* Milliseconds until store_tick has a sync to do (0: now), or -1 if no
 * INTERVAL batch written is waiting for one. */
int store_next_sync_ms(const struct store *st);
/* Syncs what was written if the interval is up. OK or IO (a failed sync
 * is also counted in the stats; under INTERVAL the publishes it covered
 * were confirmed already). */
enum store_status store_tick(struct store *st);

/* The highest LSN handed out so far. */
uint64_t store_last_lsn(const struct store *st);

struct store_stats {
    uint64_t segments;          /* segment files in use */
    uint64_t disk_bytes;        /* their total size (what max_bytes limits) */
    uint64_t live_bytes;        /* of which still needed: live messages and queues */
    uint64_t buffered_bytes;    /* appended, not yet written */
    uint64_t queues;            /* durable queues */
    uint64_t messages;          /* live messages */
    uint64_t appended_lsn, written_lsn, synced_lsn;
    uint64_t writes;            /* write calls of flushes */
    uint64_t syncs;             /* fdatasync calls, all causes */
    uint64_t write_errors, sync_errors;
    uint64_t refused_publishes; /* by max_bytes at append, or by a failed flush */
    uint64_t segments_deleted;  /* reclaimed: every record dead */
    uint64_t segments_compacted;/* reclaimed after copying their live records */
    uint64_t bytes_copied;      /* by compaction */
};
void store_stats(const struct store *st, struct store_stats *out);

#endif
