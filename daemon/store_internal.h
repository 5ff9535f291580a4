/*
 * store_internal.h - what the files of the durable log share: the store
 * structure and the functions that store.c (appends, flush), recover.c
 * (store_open's replay) and compact.c (reclaiming segments) call in each
 * other. Internal: the broker sees only store.h.
 */
#ifndef FERRY_STORE_INTERNAL_H
#define FERRY_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg_index.h"
#include "record.h"
#include "segment.h"
#include "store.h"
#include "store_queue.h"

/* One segment file in use. */
struct segment {
    uint64_t seq;
    uint64_t size;      /* bytes of the file; for the active segment, where the next write goes */
    uint64_t live;      /* bytes of its records still needed (live messages' and queues' records) */
    uint64_t queue_live;/* of which QUEUE records */
};

/* Copying the live records of the oldest segment to the head so that the
 * segment can be deleted (compact.c). */
struct compaction {
    bool running;
    bool scanned;               /* every record looked at; the copies wait to be written */
    uint64_t seq;               /* the segment being emptied: always segs[0] */
    uint64_t off;               /* next record to look at */
    struct segment_reader reader;
    uint64_t paused_until_ms;   /* after a read error, do not start again before */
};

struct store {
    int dir_fd;
    int lock_fd;
    int active_fd;              /* the last segment, open for writing */
    enum store_sync sync;       /* store_flush's policy, and whether housekeeping
                                 * (segments, compaction, close) syncs: not under NEVER */
    uint32_t sync_interval_ms;
    uint64_t segment_bytes;
    uint64_t max_bytes;         /* 0: none */
    uint64_t reserve_bytes;

    struct segment *segs;       /* oldest first; the last is the active one */
    size_t seg_count, seg_cap;
    uint64_t disk_bytes;        /* sum of segs[].size, plus unsound_bytes */
    uint64_t unsound_bytes;     /* segment files left in place because unreadable */
    uint64_t live_bytes;        /* sum of segs[].live */
    bool tail_dirty;            /* the active file is longer than its size (a failed write
                                 * could not be cut back) */

    uint8_t *buf;               /* records appended, not yet written: they go to the
                                 * active segment at offset segs[last].size */
    size_t buf_len, buf_cap;
    size_t open_ack;            /* offset in buf of an ACK record that more ids may
                                 * join, or NO_OPEN_ACK */

    uint64_t appended_lsn;      /* LSN of the last append */
    uint64_t written_lsn;       /* every append up to it is written (or refused) */
    uint64_t synced_lsn;        /* and up to it, synced */
    uint64_t last_sync_ms;
    bool interval_waiting;      /* an INTERVAL batch was written and not synced since */

    uint64_t next_id;           /* next message id */
    uint32_t next_queue_id;
    struct msg_index index;     /* live messages */
    struct queue_table queues;  /* durable queues; owns them */
    struct compaction compaction;
    struct store_stats counters;/* the cumulative counters of store_stats */
    char err[256];
};

#define NO_OPEN_ACK SIZE_MAX

/* ---- store.c ---- */

/* Formats the last-error sentence and returns `status`. */
enum store_status store_fail(struct store *st, enum store_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The status for a failed system call's errno: FULL for ENOSPC, EDQUOT and
 * EFBIG, NO_MEMORY for ENOMEM, IO otherwise. */
enum store_status store_status_of_errno(int err);
uint64_t store_now_ms(void);

struct segment *store_active(struct store *st);
/* The segment numbered seq (it must be in use). */
struct segment *store_segment(struct store *st, uint64_t seq);
/* Counts n bytes of segment seq as live, or no longer live; the _queue
 * forms for QUEUE records. */
void store_live_add(struct store *st, uint64_t seq, uint64_t n);
void store_live_sub(struct store *st, uint64_t seq, uint64_t n);
void store_queue_live_add(struct store *st, uint64_t seq, uint64_t n);
void store_queue_live_sub(struct store *st, uint64_t seq, uint64_t n);

/* Room for `more` bytes at the end of the write buffer. OK or NO_MEMORY. */
enum store_status store_buffer_reserve(struct store *st, size_t more);
/* Where the next record appended will lie in the active segment. */
uint32_t store_next_offset(struct store *st);

/* Appends a QUEUE record with q's present state, which from now on
 * stands for q (the previous one is no longer live). */
enum store_status store_append_queue_state(struct store *st, struct store_queue *q);
/* Writes the buffer to the active segment (no sync). On failure the file
 * is cut back, refused publishes are dropped and the rest stays buffered. */
enum store_status store_write_buffer(struct store *st);
/* fdatasync of the active segment if something written is not yet synced.
 * Every other segment is synced when it stops being the active one. */
enum store_status store_sync_active(struct store *st);
/* Opens a new active segment after the current one (synced first unless
 * NEVER). The buffer must be empty. */
enum store_status store_roll_segment(struct store *st);
/* Removes a message from the index and its bytes from its segment's live count. */
void store_forget_message(struct store *st, struct msg_entry *e);
/* Adds a segment at the end of segs (reserved there). OK or NO_MEMORY. */
enum store_status store_push_segment(struct store *st, uint64_t seq, uint64_t size);

/* ---- recover.c ---- */

/* Replays the directory into st (segments, queues, index, ids), calls the
 * callbacks, cuts a torn tail and opens the active segment. */
enum store_status store_recover(struct store *st, const struct store_recovery *cb,
                                struct store_report *report);

/* ---- compact.c ---- */

/* After a successful write: starts a new segment if the active one is
 * full, deletes the oldest segments while they are dead, and compacts the
 * oldest one when the log holds much more than its live data, scanning at
 * most about `budget` bytes of it. Failures only set the last error. */
void store_maintain(struct store *st, uint64_t budget);
/* Frees the compaction's reader. */
void store_compaction_free(struct store *st);

#endif
