/*
 * compact.c - keeping the log's disk use bounded: starting a new segment
 * when the active one is full, deleting the oldest segments once nothing
 * in them is live, and compacting the oldest one (re-appending its live
 * messages and queue records at the head, then deleting it) when the log
 * holds much more than its live data. Segments go only from the oldest
 * end, so an ack or delete record is never deleted before the record it
 * cancels (docs/STORAGE.md, "Reclaiming space"). Knows nothing of the
 * broker.
 */
#include "store_internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* After a read error, compaction waits this long before trying again. */
#define COMPACT_PAUSE_MS 10000u

void store_compaction_free(struct store *st)
{
    segment_reader_free(&st->compaction.reader);
}

/* The oldest segment is worth emptying when only queue records live in
 * it (re-appended from memory, without reading it), when more than half
 * the log is garbage beyond two segments of slack (so that disk use stays
 * within about twice the live data), or when the log nears its size limit
 * and the segment is half garbage. */
static bool compaction_wanted(const struct store *st)
{
    const struct segment *oldest = &st->segs[0];
    if (oldest->live == oldest->queue_live)
        return true;
    uint64_t log_bytes = st->disk_bytes - st->unsound_bytes;
    if (log_bytes > 2 * st->live_bytes + 2 * st->segment_bytes)
        return true;
    return st->max_bytes != 0 &&
           st->disk_bytes + st->segment_bytes > st->max_bytes - st->reserve_bytes &&
           oldest->live < oldest->size / 2;
}

/* Copies take room before the old segment gives it back. */
static bool compaction_fits(const struct store *st)
{
    return st->max_bytes == 0 || st->disk_bytes + st->buf_len + st->segs[0].live <= st->max_bytes;
}

/* Deletes segs[0]. Every record appended so far is written (and synced
 * unless NEVER) first: one of them may be what now stands for a record of
 * the segment (a copy, a new QUEUE record), or cancel one of it. */
static enum store_status delete_oldest(struct store *st)
{
    enum store_status status = store_write_buffer(st);
    if (status == STORE_OK && st->sync != STORE_SYNC_NEVER)
        status = store_sync_active(st);
    if (status != STORE_OK)
        return status;
    struct segment *oldest = &st->segs[0];
    char name[SEGMENT_NAME_SIZE];
    segment_name(name, oldest->seq);
    if (unlinkat(st->dir_fd, name, 0) != 0 && errno != ENOENT)
        return store_fail(st, STORE_ERR_IO, "cannot delete %s: %s", name, strerror(errno));
    st->disk_bytes -= oldest->size;
    st->live_bytes -= oldest->live;
    memmove(&st->segs[0], &st->segs[1], (st->seg_count - 1) * sizeof st->segs[0]);
    st->seg_count--;
    return STORE_OK;
}

static void pause_compaction(struct store *st, const char *what)
{
    struct compaction *c = &st->compaction;
    char name[SEGMENT_NAME_SIZE];
    segment_name(name, c->seq);
    store_fail(st, STORE_ERR_IO, "compaction of %s: %s: %s", name, what, strerror(errno));
    segment_reader_close(&c->reader);
    c->running = false;
    c->paused_until_ms = store_now_ms() + COMPACT_PAUSE_MS;
}

static bool compact_start(struct store *st)
{
    struct compaction *c = &st->compaction;
    c->seq = st->segs[0].seq;
    c->off = SEGMENT_HEADER_SIZE;
    /* Only queue records live in it: they are re-appended from memory,
     * and nothing needs reading. */
    c->scanned = st->segs[0].live == st->segs[0].queue_live;
    if (segment_reader_open(&c->reader, st->dir_fd, c->seq) != 0) {
        pause_compaction(st, "open");
        return false;
    }
    c->running = true;
    return true;
}

/* Re-appends the PUBLISH record at `off` of the segment being compacted
 * if it is still the one standing for a live message, with the message's
 * present attempt count. */
static enum store_status copy_if_live(struct store *st, uint64_t off, const struct record_view *v)
{
    struct record_publish p;
    if (!record_publish_decode(v->body, v->body_len, &p))
        return STORE_OK;
    struct msg_entry *e = msg_index_find(&st->index, p.id);
    if (e == NULL || e->seq != st->compaction.seq || e->off != off)
        return STORE_OK;
    if (store_active(st)->size + st->buf_len + v->size > UINT32_MAX)
        return STORE_ERR_FULL; /* the next flush makes room */
    enum store_status status = store_buffer_reserve(st, v->size);
    if (status != STORE_OK)
        return status;
    uint32_t new_off = store_next_offset(st);
    uint8_t *rec = st->buf + st->buf_len;
    memcpy(rec, v->rec, v->size);
    record_publish_patch(rec + RECORD_OVERHEAD, e->attempts, p.flags | PUBLISH_FLAG_COPY);
    record_seal(rec, RECORD_PUBLISH, v->body_len);
    st->buf_len += v->size;
    st->open_ack = NO_OPEN_ACK;
    st->appended_lsn++;

    store_live_sub(st, e->seq, e->size);
    e->seq = store_active(st)->seq;
    e->off = new_off;
    store_live_add(st, e->seq, e->size);
    st->counters.bytes_copied += v->size;
    return STORE_OK;
}

/* Looks at the records of the segment being compacted, about `budget`
 * bytes of them. true once the whole segment has been looked at. */
static bool compact_scan(struct store *st, uint64_t *budget)
{
    struct compaction *c = &st->compaction;
    uint64_t end = c->reader.file_size;
    while (c->off < end) {
        if (*budget == 0)
            return false;
        struct record_view v;
        enum record_read r = segment_read_record(&c->reader, c->off, &v);
        if (r == READ_IO_ERROR) {
            pause_compaction(st, "read");
            return false;
        }
        if (r != READ_OK && r != READ_BAD_CRC)
            break; /* the rest cannot be framed: its live records are lost */
        if (r == READ_OK && v.type == RECORD_PUBLISH && copy_if_live(st, c->off, &v) != STORE_OK)
            return false; /* no room now: go on at the next flush */
        c->off += v.size;
        *budget -= v.size < *budget ? v.size : *budget;
    }
    c->scanned = true;
    return true;
}

/* Live messages of the segment that could not be read back are dropped
 * from the log (the broker still has them in memory). */
static void drop_unreadable(struct store *st, uint64_t seq)
{
    uint64_t dropped = 0;
    size_t slots = msg_index_slot_count(&st->index);
    for (size_t i = 0; i < slots; i++) {
        struct msg_entry *e = &st->index.slots[i];
        while (e->id != 0 && e->seq == seq) {
            store_forget_message(st, e);
            dropped++;
        }
    }
    char name[SEGMENT_NAME_SIZE];
    segment_name(name, seq);
    store_fail(st, STORE_ERR_IO, "compaction of %s: %llu live messages could not be read back",
               name, (unsigned long long)dropped);
}

/* The segment has been looked at: its queue records are re-appended, the
 * copies written and synced, then it goes. false to try again later. */
static bool compact_finish(struct store *st)
{
    struct compaction *c = &st->compaction;
    size_t slots = queue_table_slot_count(&st->queues);
    for (size_t i = 0; i < slots; i++) {
        struct store_queue *q = queue_table_slot(&st->queues, i);
        if (q != NULL && q->decl_seq == c->seq && store_append_queue_state(st, q) != STORE_OK)
            return false;
    }
    if (store_write_buffer(st) != STORE_OK)
        return false;
    if (st->sync != STORE_SYNC_NEVER && store_sync_active(st) != STORE_OK)
        return false;
    if (st->segs[0].live != 0)
        drop_unreadable(st, c->seq);
    segment_reader_close(&c->reader);
    c->running = false;
    /* Should the deletion fail, the dead segment is deleted by a later call. */
    if (delete_oldest(st) != STORE_OK)
        return false;
    st->counters.segments_compacted++;
    return true;
}

void store_maintain(struct store *st, uint64_t budget)
{
    if (st->buf_len != 0)
        return;
    if (store_active(st)->size >= st->segment_bytes)
        (void)store_roll_segment(st); /* on failure the active segment grows on */
    while (st->seg_count > 1) {
        struct compaction *c = &st->compaction;
        if (c->running) {
            if (!c->scanned && !compact_scan(st, &budget))
                return;
            if (!compact_finish(st))
                return;
            continue;
        }
        if (st->segs[0].live == 0) {
            if (delete_oldest(st) != STORE_OK)
                return;
            st->counters.segments_deleted++;
            continue;
        }
        if (budget == 0 || !compaction_wanted(st) || !compaction_fits(st) ||
            store_now_ms() < c->paused_until_ms || !compact_start(st))
            return;
    }
}
