/*
 * durable.h - durable queues in ferryd: the broker's journal kept in the
 * store (store.h), the replay of the store into the broker at start-up,
 * and the group commit that ferryd runs once per turn of its loop.
 *
 * Knows the broker (broker.h) and the store; nothing of sockets, frames or
 * libevent: conn.c decides when to flush, server.c when to open and close.
 */
#ifndef FERRYD_DURABLE_H
#define FERRYD_DURABLE_H

#include <stdint.h>

#include "broker.h"

struct durable;

struct durable_config {
    const char *dir;            /* the data directory; created (one level) if missing */
    /* The strongest policy any queue may have: the log's own writes
     * (new segments, compaction's copies, a cut torn tail) are synced
     * unless it is NEVER. */
    enum queue_fsync strongest;
    uint32_t sync_interval_ms;  /* INTERVAL queues; 0: 100 */
    uint64_t segment_bytes;     /* 0: 64 MiB */
    uint64_t max_bytes;         /* the segments' total size; 0: no limit */
    /* The configured settings of a queue, by name: a queue recovered from
     * the log takes their fsync policy (it stays durable: see durable.c). */
    broker_settings_fn *settings_of;
    void *settings_arg;
};

/* Opens the log in cfg->dir, restores its queues and messages into `b`
 * (which has no session yet) in publish order with their attempt counts,
 * logs what recovery found (counts, time, a torn tail cut, damage with
 * file and offset), and makes itself b's journal. NULL on failure, with
 * a sentence in err. */
struct durable *durable_open(const struct durable_config *cfg, struct broker *b,
                             char *err, size_t err_len);

/* Writes and syncs what is left, closes the log, and detaches it from the
 * broker (which logs nothing more). NULL is a no-op. */
void durable_close(struct durable *d);

/* Group commit: writes everything appended since the last call with one
 * write, and one fdatasync if any of it belongs to an ALWAYS queue.
 * *safe_lsn: every publish at or below it is now as safe as its queue's
 * policy promises and may be confirmed. OK, or STORAGE: every publish not
 * yet confirmed was refused (not logged; said once per burst in the log). */
enum ferry_code durable_flush(struct durable *d, uint64_t *safe_lsn);

/* INTERVAL queues: milliseconds until durable_tick has a sync to do, or -1. */
int durable_next_sync_ms(const struct durable *d);
/* Syncs what INTERVAL queues wrote, if their interval is up. */
void durable_tick(struct durable *d);

#endif
