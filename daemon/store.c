/*
 * store.c - the durable log's public calls: opening and closing, appends
 * into the write buffer, and group commit (one write, at most one
 * fdatasync per flush), with what a failed write leaves behind. Replay is
 * in recover.c, reclaiming segments in compact.c. Knows nothing of the
 * broker, sockets or the event loop.
 */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"

#define DEFAULT_SEGMENT_BYTES (64ull << 20)
#define MIN_SEGMENT_BYTES (4ull << 10)
#define MAX_SEGMENT_BYTES (1ull << 30)
#define DEFAULT_SYNC_INTERVAL_MS 100u
/* A flush scans at least this much of a segment being compacted, and at
 * least twice what it wrote, so that compaction outpaces the garbage. */
#define COMPACT_MIN_STEP (1ull << 20)
#define LOCK_FILE "LOCK"
/* A write buffer grown past this by a burst is freed once written. */
#define BUFFER_KEEP_BYTES (4u << 20)

const char *store_strerror(enum store_status status)
{
    switch (status) {
    case STORE_OK: return "ok";
    case STORE_ERR_INVALID: return "invalid argument";
    case STORE_ERR_NOT_FOUND: return "no such durable queue";
    case STORE_ERR_FULL: return "disk limit reached";
    case STORE_ERR_IO: return "I/O error";
    case STORE_ERR_NO_MEMORY: return "out of memory";
    case STORE_ERR_LOCKED: return "data directory in use by another process";
    case STORE_ERR_FORMAT: return "unknown log format version";
    case STORE_ERR_ABORTED: return "recovery aborted by the caller";
    }
    return "unknown error";
}

enum store_status store_fail(struct store *st, enum store_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
    return status;
}

enum store_status store_status_of_errno(int err)
{
    switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return STORE_ERR_FULL;
    case ENOMEM:
        return STORE_ERR_NO_MEMORY;
    default:
        return STORE_ERR_IO;
    }
}

uint64_t store_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

const char *store_last_error(const struct store *st)
{
    return st->err;
}

uint64_t store_last_lsn(const struct store *st)
{
    return st->appended_lsn;
}

/* ---- segments and live bytes ---- */

struct segment *store_active(struct store *st)
{
    return &st->segs[st->seg_count - 1];
}

struct segment *store_segment(struct store *st, uint64_t seq)
{
    /* Most records are in the active segment; the rest by bisection. */
    size_t lo = 0, hi = st->seg_count - 1;
    if (st->segs[hi].seq == seq)
        return &st->segs[hi];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->segs[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return &st->segs[lo];
}

void store_live_add(struct store *st, uint64_t seq, uint64_t n)
{
    store_segment(st, seq)->live += n;
    st->live_bytes += n;
}

void store_live_sub(struct store *st, uint64_t seq, uint64_t n)
{
    store_segment(st, seq)->live -= n;
    st->live_bytes -= n;
}

void store_queue_live_add(struct store *st, uint64_t seq, uint64_t n)
{
    store_segment(st, seq)->queue_live += n;
    store_live_add(st, seq, n);
}

void store_queue_live_sub(struct store *st, uint64_t seq, uint64_t n)
{
    store_segment(st, seq)->queue_live -= n;
    store_live_sub(st, seq, n);
}

/* Room for one more segment in the list. */
static enum store_status reserve_segment_slot(struct store *st)
{
    if (st->seg_count < st->seg_cap)
        return STORE_OK;
    size_t cap = st->seg_cap ? st->seg_cap * 2 : 8;
    struct segment *grown = realloc(st->segs, cap * sizeof *grown);
    if (grown == NULL)
        return store_fail(st, STORE_ERR_NO_MEMORY, "out of memory for the segment list");
    st->segs = grown;
    st->seg_cap = cap;
    return STORE_OK;
}

enum store_status store_push_segment(struct store *st, uint64_t seq, uint64_t size)
{
    enum store_status status = reserve_segment_slot(st);
    if (status != STORE_OK)
        return status;
    st->segs[st->seg_count++] = (struct segment){ .seq = seq, .size = size };
    st->disk_bytes += size;
    return STORE_OK;
}

void store_forget_message(struct store *st, struct msg_entry *e)
{
    store_live_sub(st, e->seq, e->size);
    msg_index_remove(&st->index, e);
}

/* ---- the write buffer ---- */

enum store_status store_buffer_reserve(struct store *st, size_t more)
{
    if (st->buf_cap - st->buf_len >= more)
        return STORE_OK;
    size_t cap = st->buf_cap ? st->buf_cap : 64u << 10;
    while (cap - st->buf_len < more) {
        if (cap > SIZE_MAX / 2)
            return store_fail(st, STORE_ERR_NO_MEMORY, "write buffer too large");
        cap *= 2;
    }
    uint8_t *grown = realloc(st->buf, cap);
    if (grown == NULL)
        return store_fail(st, STORE_ERR_NO_MEMORY, "out of memory for the write buffer");
    st->buf = grown;
    st->buf_cap = cap;
    return STORE_OK;
}

uint32_t store_next_offset(struct store *st)
{
    return (uint32_t)(store_active(st)->size + st->buf_len);
}

/* Seals the record being built at the end of the buffer and takes it in. */
static uint64_t commit_record(struct store *st, uint8_t type, size_t body_len)
{
    record_seal(st->buf + st->buf_len, type, body_len);
    st->buf_len += record_size(body_len);
    st->open_ack = NO_OPEN_ACK;
    return ++st->appended_lsn;
}

static uint8_t *next_body(struct store *st)
{
    return st->buf + st->buf_len + RECORD_OVERHEAD;
}

/* Which limit an append is held to: publishes stop short of the reserve,
 * queue changes may use it, acks and deletes (which free space) never
 * stop. Every record must still fit the 32-bit offsets of a segment. */
enum room { ROOM_PUBLISH, ROOM_CHANGE, ROOM_ALWAYS };

static enum store_status check_room(struct store *st, size_t size, enum room room)
{
    if (store_active(st)->size + st->buf_len + size > UINT32_MAX)
        return store_fail(st, STORE_ERR_FULL, "write buffer too large for one segment: flush first");
    if (st->max_bytes == 0 || room == ROOM_ALWAYS)
        return STORE_OK;
    uint64_t limit = room == ROOM_PUBLISH ? st->max_bytes - st->reserve_bytes : st->max_bytes;
    if (st->disk_bytes + st->buf_len + size > limit)
        return store_fail(st, STORE_ERR_FULL, "log at its limit (%llu of %llu bytes)",
                          (unsigned long long)(st->disk_bytes + st->buf_len),
                          (unsigned long long)st->max_bytes);
    return STORE_OK;
}

static bool name_ok(struct ferry_bytes name)
{
    return name.len >= 1 && name.len <= FERRY_NAME_MAX;
}

static enum store_status unknown_queue(struct store *st, struct ferry_bytes name)
{
    return store_fail(st, STORE_ERR_NOT_FOUND, "no durable queue \"%.*s\"",
                      (int)(name.len < 64 ? name.len : 64), (const char *)name.ptr);
}

static void set_lsn(uint64_t *out, uint64_t lsn)
{
    if (out != NULL)
        *out = lsn;
}

/* ---- queues ---- */

enum store_status store_append_queue_state(struct store *st, struct store_queue *q)
{
    struct record_queue body = {
        .queue_id = q->id,
        .ended = q->ended,
        .name = store_queue_name(q),
        .settings = store_queue_settings(q),
    };
    size_t body_len = record_queue_body_size(&body);
    enum store_status status = store_buffer_reserve(st, record_size(body_len));
    if (status != STORE_OK)
        return status;
    record_queue_encode(next_body(st), &body);
    commit_record(st, RECORD_QUEUE, body_len);
    /* The new record stands for q from here; the previous one is dead. */
    if (q->decl_size != 0)
        store_queue_live_sub(st, q->decl_seq, q->decl_size);
    q->decl_seq = store_active(st)->seq;
    q->decl_size = (uint32_t)record_size(body_len);
    store_queue_live_add(st, q->decl_seq, q->decl_size);
    return STORE_OK;
}

enum store_status store_declare(struct store *st, struct ferry_bytes queue,
                                struct ferry_bytes settings, uint64_t *lsn)
{
    set_lsn(lsn, 0);
    if (!name_ok(queue) || settings.len > QUEUE_SETTINGS_MAX)
        return store_fail(st, STORE_ERR_INVALID, "queue name or settings of a bad size");
    struct store_queue *q = queue_table_find_name(&st->queues, queue);
    if (q != NULL && store_queue_settings_equal(q, settings))
        return STORE_OK;
    size_t size = record_size(QUEUE_FIXED_SIZE + queue.len + settings.len);
    enum store_status status = check_room(st, size, ROOM_CHANGE);
    if (status != STORE_OK)
        return status;
    /* Everything that can fail first, so that a failure changes nothing. */
    if (store_buffer_reserve(st, size) != STORE_OK)
        return STORE_ERR_NO_MEMORY;
    if (q != NULL) {
        if (store_queue_set_settings(q, settings) != 0)
            return store_fail(st, STORE_ERR_NO_MEMORY, "out of memory for queue settings");
    } else {
        if (st->next_queue_id == UINT32_MAX)
            return store_fail(st, STORE_ERR_FULL, "queue ids exhausted");
        if (queue_table_reserve(&st->queues) != 0 ||
            (q = store_queue_new(st->next_queue_id, queue, settings)) == NULL)
            return store_fail(st, STORE_ERR_NO_MEMORY, "out of memory for a queue");
        st->next_queue_id++;
        queue_table_insert(&st->queues, q); /* the table owns q from here */
    }
    store_append_queue_state(st, q); /* cannot fail: the buffer is reserved */
    set_lsn(lsn, st->appended_lsn);
    return STORE_OK;
}

/* Appends an END, REOPEN or DELETE record for q. */
static enum store_status append_queue_ref(struct store *st, struct store_queue *q, uint8_t type,
                                          enum room room)
{
    size_t size = record_size(QUEUE_REF_BODY_SIZE);
    enum store_status status = check_room(st, size, room);
    if (status == STORE_OK)
        status = store_buffer_reserve(st, size);
    if (status != STORE_OK)
        return status;
    record_queue_ref_encode(next_body(st), q->id);
    commit_record(st, type, QUEUE_REF_BODY_SIZE);
    return STORE_OK;
}

/* END and REOPEN records are dead once written: the QUEUE record that
 * compaction re-appends carries the ended flag. */
static enum store_status set_ended(struct store *st, struct ferry_bytes queue, bool ended,
                                   uint64_t *lsn)
{
    set_lsn(lsn, 0);
    struct store_queue *q = queue_table_find_name(&st->queues, queue);
    if (q == NULL)
        return unknown_queue(st, queue);
    if (q->ended == ended)
        return STORE_OK;
    enum store_status status =
        append_queue_ref(st, q, ended ? RECORD_END : RECORD_REOPEN, ROOM_CHANGE);
    if (status != STORE_OK)
        return status;
    q->ended = ended;
    set_lsn(lsn, st->appended_lsn);
    return STORE_OK;
}

enum store_status store_end(struct store *st, struct ferry_bytes queue, uint64_t *lsn)
{
    return set_ended(st, queue, true, lsn);
}

enum store_status store_reopen(struct store *st, struct ferry_bytes queue, uint64_t *lsn)
{
    return set_ended(st, queue, false, lsn);
}

enum store_status store_delete(struct store *st, struct ferry_bytes queue, uint64_t *lsn)
{
    set_lsn(lsn, 0);
    struct store_queue *q = queue_table_find_name(&st->queues, queue);
    if (q == NULL)
        return unknown_queue(st, queue);
    enum store_status status = append_queue_ref(st, q, RECORD_DELETE, ROOM_ALWAYS);
    if (status != STORE_OK)
        return status;
    set_lsn(lsn, st->appended_lsn);

    /* A walk that removes looks at a slot again after emptying it (see
     * msg_index_remove); deleting a queue is rare enough to walk them all. */
    size_t slots = msg_index_slot_count(&st->index);
    for (size_t i = 0; i < slots; i++) {
        struct msg_entry *e = &st->index.slots[i];
        while (e->id != 0 && e->queue_id == q->id)
            store_forget_message(st, e);
    }
    msg_index_shrink(&st->index);
    store_queue_live_sub(st, q->decl_seq, q->decl_size);
    queue_table_remove(&st->queues, q);
    store_queue_free(q);
    return STORE_OK;
}

/* ---- messages ---- */

/* The size of the PUBLISH record of head (meta and headers set) and
 * payload, in *size; INVALID if it does not fit one record. */
static enum store_status publish_record_size(struct store *st, const struct record_publish *head,
                                             struct ferry_bytes payload, size_t *size)
{
    if (head->meta.len > PUBLISH_META_MAX)
        return store_fail(st, STORE_ERR_INVALID, "message meta longer than 255 bytes");
    size_t head_size = record_publish_head_size(head);
    size_t room_for_data = RECORD_MAX_LENGTH - 1 - head_size;
    if (head->headers.len > room_for_data || payload.len > room_for_data - head->headers.len)
        return store_fail(st, STORE_ERR_INVALID, "message too large for one record");
    *size = record_size(head_size + head->headers.len + payload.len);
    return STORE_OK;
}

/* Appends the PUBLISH record (room reserved: store_buffer_reserve of its
 * size) and returns its offset in the active segment. */
static uint32_t append_publish(struct store *st, const struct record_publish *head,
                               struct ferry_bytes payload, uint64_t *lsn)
{
    size_t head_size = record_publish_head_size(head);
    uint32_t off = store_next_offset(st);
    uint8_t *body = next_body(st);
    record_publish_encode_head(body, head);
    /* The one copy of the message on its way to disk. */
    if (head->headers.len > 0)
        memcpy(body + head_size, head->headers.ptr, head->headers.len);
    if (payload.len > 0)
        memcpy(body + head_size + head->headers.len, payload.ptr, payload.len);
    set_lsn(lsn, commit_record(st, RECORD_PUBLISH, head_size + head->headers.len + payload.len));
    return off;
}

enum store_status store_publish(struct store *st, struct ferry_bytes queue, uint32_t attempts,
                                struct ferry_bytes meta, struct ferry_bytes headers,
                                struct ferry_bytes payload, uint64_t *id, uint64_t *lsn)
{
    struct store_queue *q = queue_table_find_name(&st->queues, queue);
    if (q == NULL)
        return unknown_queue(st, queue);
    struct record_publish head = { .id = st->next_id, .queue_id = q->id, .attempts = attempts,
                                   .meta = meta, .headers = headers };
    size_t size;
    enum store_status status = publish_record_size(st, &head, payload, &size);
    if (status != STORE_OK)
        return status;
    status = check_room(st, size, ROOM_PUBLISH);
    if (status != STORE_OK) {
        st->counters.refused_publishes++;
        return status;
    }
    if (msg_index_reserve(&st->index) != 0)
        return store_fail(st, STORE_ERR_NO_MEMORY, "out of memory for the message index");
    if (store_buffer_reserve(st, size) != STORE_OK)
        return STORE_ERR_NO_MEMORY;

    st->next_id++;
    uint32_t off = append_publish(st, &head, payload, lsn);
    struct msg_entry *e = msg_index_insert(&st->index, head.id);
    e->seq = store_active(st)->seq;
    e->off = off;
    e->size = (uint32_t)size;
    e->attempts = attempts;
    e->queue_id = q->id;
    store_live_add(st, e->seq, size);
    if (id != NULL)
        *id = head.id;
    return STORE_OK;
}

enum store_status store_rewrite(struct store *st, uint64_t id, uint32_t attempts,
                                struct ferry_bytes meta, struct ferry_bytes headers,
                                struct ferry_bytes payload, uint64_t *lsn)
{
    set_lsn(lsn, 0);
    struct msg_entry *e = msg_index_find(&st->index, id);
    if (e == NULL)
        return STORE_OK;
    struct record_publish head = { .id = id, .queue_id = e->queue_id, .attempts = attempts,
                                   .flags = PUBLISH_FLAG_COPY, .meta = meta, .headers = headers };
    size_t size;
    enum store_status status = publish_record_size(st, &head, payload, &size);
    if (status == STORE_OK)
        status = check_room(st, size, ROOM_CHANGE);
    if (status == STORE_OK)
        status = store_buffer_reserve(st, size);
    if (status != STORE_OK)
        return status;

    uint32_t off = append_publish(st, &head, payload, lsn);
    /* The new record stands for the message; the old one is dead. */
    store_live_sub(st, e->seq, e->size);
    e->seq = store_active(st)->seq;
    e->off = off;
    e->size = (uint32_t)size;
    e->attempts = attempts;
    store_live_add(st, e->seq, e->size);
    return STORE_OK;
}

enum store_status store_ack(struct store *st, uint64_t id)
{
    struct msg_entry *e = msg_index_find(&st->index, id);
    if (e == NULL)
        return STORE_OK;
    store_forget_message(st, e);

    enum store_status status = check_room(st, record_size(ACK_ID_SIZE), ROOM_ALWAYS);
    if (status == STORE_OK)
        status = store_buffer_reserve(st, record_size(ACK_ID_SIZE));
    if (status != STORE_OK)
        return status;
    /* Acks of one batch share records: 8 bytes each instead of 17. */
    if (st->open_ack != NO_OPEN_ACK &&
        (record_length(st->buf + st->open_ack) - 1) / ACK_ID_SIZE < ACK_MAX_IDS) {
        put_u64(st->buf + st->buf_len, id);
        record_extend_ack(st->buf + st->open_ack);
        st->buf_len += ACK_ID_SIZE;
        st->appended_lsn++;
        return STORE_OK;
    }
    size_t start = st->buf_len;
    put_u64(next_body(st), id);
    commit_record(st, RECORD_ACK, ACK_ID_SIZE);
    st->open_ack = start;
    return STORE_OK;
}

enum store_status store_set_attempts(struct store *st, uint64_t id, uint32_t attempts)
{
    struct msg_entry *e = msg_index_find(&st->index, id);
    if (e == NULL)
        return STORE_OK;
    /* Memory first: compaction copies the count in memory, even if the
     * record below cannot be logged. An ATTEMPTS record is dead once
     * written, for the same reason. */
    e->attempts = attempts;
    size_t size = record_size(ATTEMPTS_BODY_SIZE);
    enum store_status status = check_room(st, size, ROOM_CHANGE);
    if (status == STORE_OK)
        status = store_buffer_reserve(st, size);
    if (status != STORE_OK)
        return status;
    record_attempts_encode(next_body(st), id, attempts);
    commit_record(st, RECORD_ATTEMPTS, ATTEMPTS_BODY_SIZE);
    return STORE_OK;
}

/* ---- writing and syncing ---- */

/* 0, or the errno of the failed pwrite. */
static int write_all_at(int fd, const uint8_t *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* Cuts the active file back to its log: drops what a failed write left. */
static void cut_tail(struct store *st)
{
    st->tail_dirty = ftruncate(st->active_fd, (off_t)store_active(st)->size) != 0;
}

/* After a failed write: the client publishes of the buffer are refused
 * (forgotten); every other record (queue changes, acks, attempts,
 * compaction's copies) stays, moved up in place, for the next flush. The
 * records stay in the active segment, so only the offsets of copies change. */
static void drop_refused_publishes(struct store *st)
{
    uint64_t seq = store_active(st)->seq;
    uint64_t base = store_active(st)->size;
    size_t read = 0, kept = 0;
    while (read < st->buf_len) {
        uint8_t *rec = st->buf + read;
        size_t size = RECORD_HEADER_SIZE + record_length(rec);
        bool keep = true;
        struct record_publish p;
        if (rec[RECORD_HEADER_SIZE] == RECORD_PUBLISH &&
            record_publish_decode(rec + RECORD_OVERHEAD, size - RECORD_OVERHEAD, &p)) {
            struct msg_entry *e = msg_index_find(&st->index, p.id);
            bool current = e != NULL && e->seq == seq && e->off == base + read;
            keep = current && (p.flags & PUBLISH_FLAG_COPY) != 0;
            if ((p.flags & PUBLISH_FLAG_COPY) == 0)
                st->counters.refused_publishes++;
            if (keep)
                e->off = (uint32_t)(base + kept);
            else if (current)
                store_forget_message(st, e);
        }
        if (keep) {
            memmove(st->buf + kept, rec, size);
            kept += size;
        }
        read += size;
    }
    st->buf_len = kept;
    st->open_ack = NO_OPEN_ACK;
}

enum store_status store_write_buffer(struct store *st)
{
    if (st->buf_len == 0) {
        st->written_lsn = st->appended_lsn;
        return STORE_OK;
    }
    struct segment *active = store_active(st);
    st->counters.writes++;
    int err = write_all_at(st->active_fd, st->buf, st->buf_len, active->size);
    if (err == 0) {
        active->size += st->buf_len;
        st->disk_bytes += st->buf_len;
        st->buf_len = 0;
        st->open_ack = NO_OPEN_ACK;
        st->written_lsn = st->appended_lsn;
        if (st->tail_dirty)
            cut_tail(st);
        return STORE_OK;
    }
    st->counters.write_errors++;
    char name[SEGMENT_NAME_SIZE];
    segment_name(name, active->seq);
    enum store_status status = store_fail(st, store_status_of_errno(err),
                                          "write of %zu bytes to %s at %llu: %s", st->buf_len,
                                          name, (unsigned long long)active->size, strerror(err));
    cut_tail(st);
    drop_refused_publishes(st);
    return status;
}

enum store_status store_sync_active(struct store *st)
{
    if (st->synced_lsn >= st->written_lsn)
        return STORE_OK;
    st->counters.syncs++;
    if (fdatasync(st->active_fd) != 0) {
        int err = errno;
        st->counters.sync_errors++;
        char name[SEGMENT_NAME_SIZE];
        segment_name(name, store_active(st)->seq);
        return store_fail(st, store_status_of_errno(err), "fdatasync of %s: %s", name, strerror(err));
    }
    st->synced_lsn = st->written_lsn;
    st->last_sync_ms = store_now_ms();
    st->interval_waiting = false;
    return STORE_OK;
}

enum store_status store_roll_segment(struct store *st)
{
    enum store_status status = st->sync == STORE_SYNC_NEVER ? STORE_OK : store_sync_active(st);
    if (status != STORE_OK)
        return status;
    if (st->tail_dirty)
        cut_tail(st);
    /* Room in the list first: a created file must be in it. */
    status = reserve_segment_slot(st);
    if (status != STORE_OK)
        return status;
    struct segment_header h = {
        .version = SEGMENT_VERSION,
        .seq = store_active(st)->seq + 1,
        .next_id = st->next_id,
        .next_queue_id = st->next_queue_id,
    };
    int fd = segment_create(st->dir_fd, &h, st->sync != STORE_SYNC_NEVER);
    if (fd < 0) {
        int err = errno;
        return store_fail(st, store_status_of_errno(err), "creating segment %llu: %s",
                          (unsigned long long)h.seq, strerror(err));
    }
    close(st->active_fd);
    st->active_fd = fd;
    st->tail_dirty = false;
    return store_push_segment(st, h.seq, SEGMENT_HEADER_SIZE); /* cannot fail: reserved */
}

/* ---- group commit ---- */

static bool interval_sync_due(const struct store *st)
{
    return st->interval_waiting && st->synced_lsn < st->written_lsn &&
           store_now_ms() - st->last_sync_ms >= st->sync_interval_ms;
}

/* After a burst: the index and the write buffer give memory back. */
static void release_memory(struct store *st)
{
    msg_index_shrink(&st->index);
    if (st->buf_len == 0 && st->buf_cap > BUFFER_KEEP_BYTES) {
        free(st->buf);
        st->buf = NULL;
        st->buf_cap = 0;
    }
}

enum store_status store_commit(struct store *st, enum store_sync batch, uint64_t *written_lsn,
                               uint64_t *synced_lsn)
{
    size_t wrote = st->buf_len;
    enum store_status status = store_write_buffer(st);
    if (status == STORE_OK && wrote > 0 && batch == STORE_SYNC_INTERVAL)
        st->interval_waiting = true;
    if (status == STORE_OK && batch == STORE_SYNC_ALWAYS)
        status = store_sync_active(st);
    if (status == STORE_OK && interval_sync_due(st))
        (void)store_sync_active(st); /* counted and in the last error; confirms stand */
    if (status == STORE_OK) {
        store_maintain(st, wrote * 2 > COMPACT_MIN_STEP ? wrote * 2 : COMPACT_MIN_STEP);
        release_memory(st);
    }
    if (written_lsn != NULL)
        *written_lsn = st->written_lsn;
    if (synced_lsn != NULL)
        *synced_lsn = st->synced_lsn;
    return status;
}

enum store_status store_flush(struct store *st, uint64_t *confirmed)
{
    uint64_t written, synced;
    enum store_status status = store_commit(st, st->sync, &written, &synced);
    if (confirmed != NULL)
        *confirmed = st->sync == STORE_SYNC_ALWAYS ? synced : written;
    return status;
}

int store_next_sync_ms(const struct store *st)
{
    if (!st->interval_waiting || st->synced_lsn >= st->written_lsn)
        return -1;
    uint64_t elapsed = store_now_ms() - st->last_sync_ms;
    if (elapsed >= st->sync_interval_ms)
        return 0;
    uint64_t left = st->sync_interval_ms - elapsed;
    return left > INT_MAX ? INT_MAX : (int)left;
}

enum store_status store_tick(struct store *st)
{
    return interval_sync_due(st) ? store_sync_active(st) : STORE_OK;
}

void store_stats(const struct store *st, struct store_stats *out)
{
    *out = st->counters;
    out->segments = st->seg_count;
    out->disk_bytes = st->disk_bytes;
    out->live_bytes = st->live_bytes;
    out->buffered_bytes = st->buf_len;
    out->queues = st->queues.count;
    out->messages = st->index.count;
    out->appended_lsn = st->appended_lsn;
    out->written_lsn = st->written_lsn;
    out->synced_lsn = st->synced_lsn;
}

/* Closes and frees everything, writing nothing. */
static void destroy(struct store *st)
{
    if (st->active_fd >= 0)
        close(st->active_fd);
    if (st->lock_fd >= 0)
        close(st->lock_fd); /* releases the flock */
    if (st->dir_fd >= 0)
        close(st->dir_fd);
    store_compaction_free(st);
    msg_index_free(&st->index);
    queue_table_free(&st->queues);
    free(st->segs);
    free(st->buf);
    free(st);
}

static enum store_status apply_config(struct store *st, const struct store_config *cfg)
{
    st->sync = cfg->sync;
    st->sync_interval_ms = cfg->sync_interval_ms ? cfg->sync_interval_ms : DEFAULT_SYNC_INTERVAL_MS;
    st->segment_bytes = cfg->segment_bytes ? cfg->segment_bytes : DEFAULT_SEGMENT_BYTES;
    st->max_bytes = cfg->max_bytes;
    st->reserve_bytes = cfg->reserve_bytes ? cfg->reserve_bytes : cfg->max_bytes / 16;
    if (cfg->dir == NULL || cfg->dir[0] == '\0')
        return store_fail(st, STORE_ERR_INVALID, "no data directory given");
    if (cfg->sync != STORE_SYNC_ALWAYS && cfg->sync != STORE_SYNC_INTERVAL &&
        cfg->sync != STORE_SYNC_NEVER)
        return store_fail(st, STORE_ERR_INVALID, "unknown sync policy");
    if (st->segment_bytes < MIN_SEGMENT_BYTES || st->segment_bytes > MAX_SEGMENT_BYTES)
        return store_fail(st, STORE_ERR_INVALID, "segment size must be 4 KiB .. 1 GiB");
    if (st->max_bytes != 0 && st->reserve_bytes >= st->max_bytes)
        return store_fail(st, STORE_ERR_INVALID, "reserve must be below the size limit");
    return STORE_OK;
}

/* Creates the directory if needed, opens it and takes its lock. */
static enum store_status open_directory(struct store *st, const char *dir)
{
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return store_fail(st, STORE_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    st->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st->dir_fd < 0)
        return store_fail(st, STORE_ERR_IO, "cannot open %s: %s", dir, strerror(errno));
    st->lock_fd = openat(st->dir_fd, LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (st->lock_fd < 0)
        return store_fail(st, STORE_ERR_IO, "cannot open %s/%s: %s", dir, LOCK_FILE, strerror(errno));
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return store_fail(st, STORE_ERR_LOCKED, "%s is in use by another process", dir);
        return store_fail(st, STORE_ERR_IO, "cannot lock %s: %s", dir, strerror(errno));
    }
    return STORE_OK;
}

enum store_status store_open(const struct store_config *cfg, const struct store_recovery *recovery,
                             struct store **out, struct store_report *report,
                             char *err, size_t err_len)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct store_report unused;
    if (report == NULL)
        report = &unused;
    memset(report, 0, sizeof *report);
    *out = NULL;

    struct store *st = calloc(1, sizeof *st);
    if (st == NULL) {
        if (err_len > 0)
            snprintf(err, err_len, "out of memory");
        return STORE_ERR_NO_MEMORY;
    }
    st->dir_fd = st->lock_fd = st->active_fd = -1;
    st->open_ack = NO_OPEN_ACK;
    st->last_sync_ms = store_now_ms();
    msg_index_init(&st->index);
    queue_table_init(&st->queues, hash_random_seed());
    segment_reader_init(&st->compaction.reader);

    enum store_status status = apply_config(st, cfg);
    if (status == STORE_OK)
        status = open_directory(st, cfg->dir);
    /* Segments that a previous run wrote under NEVER may still be only in
     * the page cache: make them as safe as this run's policy says. */
    if (status == STORE_OK && st->sync != STORE_SYNC_NEVER)
        (void)syncfs(st->dir_fd);
    if (status == STORE_OK)
        status = store_recover(st, recovery, report);
    if (status != STORE_OK) {
        if (err_len > 0)
            snprintf(err, err_len, "%s", st->err);
        destroy(st);
        return status;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t us = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
    report->duration_us = us > 0 ? (uint64_t)us : 0;
    *out = st; /* the caller owns the store from here */
    return STORE_OK;
}

enum store_status store_close(struct store *st)
{
    if (st == NULL)
        return STORE_OK;
    enum store_status status = store_write_buffer(st);
    if (status == STORE_OK && st->sync != STORE_SYNC_NEVER)
        status = store_sync_active(st);
    if (st->tail_dirty)
        cut_tail(st);
    destroy(st);
    return status;
}
