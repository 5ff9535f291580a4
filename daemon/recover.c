/*
 * recover.c - store_open's replay of the log: reads every segment in
 * order, applies each sound record to the in-memory state (queues, the
 * index of live messages, ids), cuts a torn tail off the last segment,
 * reports damage elsewhere, then hands the surviving queues and messages
 * to the caller in publish order. Knows the meaning of records, not the
 * broker.
 *
 * Cost: one sequential read of the whole log, holding one index entry
 * (32 bytes, in a table at most 3/4 full) per message not yet acked at
 * that point of the scan; then a sorted copy of the live entries (32
 * bytes each) and a second read of the live records only.
 */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Telling a torn tail from damage in the middle checksums what follows
 * the bad record, up to this many bytes. */
#define TORN_CHECK_BUDGET (64u << 20)

struct replay {
    struct store *st;
    struct store_report *report;
    struct segment_reader reader;
    uint64_t max_seq;           /* highest segment number in the directory, sound or not */
    uint64_t max_id;            /* highest message id seen */
    uint32_t max_queue_id;
    bool need_new_segment;      /* the last segment cannot take appends */
};

static void problem(struct replay *rp, uint64_t seq, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(struct replay *rp, uint64_t seq, uint64_t off, const char *fmt, ...)
{
    struct store_report *rep = rp->report;
    if (rep->problem_count < STORE_REPORT_PROBLEMS) {
        struct store_problem *p = &rep->problems[rep->problem_count];
        segment_name(p->file, seq);
        p->offset = off;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->what, sizeof p->what, fmt, ap);
        va_end(ap);
    }
    rep->problem_count++;
}

/* ---- applying one record ---- */

static enum store_status no_memory(struct replay *rp)
{
    return store_fail(rp->st, STORE_ERR_NO_MEMORY, "out of memory while replaying the log");
}

static void forget_queue(struct store *st, struct store_queue *q)
{
    queue_table_remove(&st->queues, q);
    store_queue_free(q);
}

static enum store_status apply_queue(struct replay *rp, uint64_t seq, const struct record_view *v,
                                     const struct record_queue *rec)
{
    struct store *st = rp->st;
    struct store_queue *q = queue_table_find_id(&st->queues, rec->queue_id);
    if (q == NULL) {
        /* Only if a DELETE was lost to damage can the name still be taken. */
        struct store_queue *older = queue_table_find_name(&st->queues, rec->name);
        if (older != NULL)
            forget_queue(st, older);
        if (queue_table_reserve(&st->queues) != 0 ||
            (q = store_queue_new(rec->queue_id, rec->name, rec->settings)) == NULL)
            return no_memory(rp);
        queue_table_insert(&st->queues, q); /* the table owns q from here */
    } else if (store_queue_set_settings(q, rec->settings) != 0) {
        return no_memory(rp);
    }
    q->ended = rec->ended;
    q->decl_seq = seq;
    q->decl_size = v->size;
    if (rec->queue_id > rp->max_queue_id)
        rp->max_queue_id = rec->queue_id;
    return STORE_OK;
}

static enum store_status apply_publish(struct replay *rp, uint64_t seq, uint64_t off,
                                       const struct record_view *v, const struct record_publish *rec)
{
    struct store *st = rp->st;
    /* Found twice when a crash came between compaction's copy and the
     * deletion of the original: the later record stands. */
    struct msg_entry *e = msg_index_find(&st->index, rec->id);
    if (e == NULL) {
        if (msg_index_reserve(&st->index) != 0)
            return no_memory(rp);
        e = msg_index_insert(&st->index, rec->id);
    }
    e->seq = seq;
    e->off = (uint32_t)off;
    e->size = v->size;
    e->attempts = rec->attempts;
    e->queue_id = rec->queue_id;
    if (rec->id > rp->max_id)
        rp->max_id = rec->id;
    return STORE_OK;
}

static void apply_ack(struct replay *rp, const struct record_view *v)
{
    size_t count = v->body_len / ACK_ID_SIZE;
    for (size_t i = 0; i < count; i++) {
        struct msg_entry *e = msg_index_find(&rp->st->index, record_ack_id(v->body, i));
        if (e != NULL) {
            msg_index_remove(&rp->st->index, e);
            rp->report->settled++;
        }
    }
}

static void apply_queue_ref(struct replay *rp, uint8_t type, uint32_t queue_id)
{
    struct store_queue *q = queue_table_find_id(&rp->st->queues, queue_id);
    if (q == NULL)
        return;
    if (type == RECORD_DELETE)
        forget_queue(rp->st, q); /* its messages are dropped once the scan is over */
    else
        q->ended = type == RECORD_END;
}

/* Applies a record whose checksum is good. A body that does not decode is
 * damage (reported, skipped); only running out of memory fails. */
static enum store_status apply(struct replay *rp, uint64_t seq, uint64_t off,
                               const struct record_view *v)
{
    struct record_queue queue;
    struct record_publish publish;
    uint64_t id;
    uint32_t count, queue_id;
    bool sound = true;
    enum store_status status = STORE_OK;

    switch (v->type) {
    case RECORD_QUEUE:
        sound = record_queue_decode(v->body, v->body_len, &queue);
        if (sound)
            status = apply_queue(rp, seq, v, &queue);
        break;
    case RECORD_PUBLISH:
        sound = record_publish_decode(v->body, v->body_len, &publish);
        if (sound)
            status = apply_publish(rp, seq, off, v, &publish);
        break;
    case RECORD_ACK:
        sound = record_ack_valid(v->body_len);
        if (sound)
            apply_ack(rp, v);
        break;
    case RECORD_ATTEMPTS:
        sound = record_attempts_decode(v->body, v->body_len, &id, &count);
        if (sound) {
            struct msg_entry *e = msg_index_find(&rp->st->index, id);
            if (e != NULL)
                e->attempts = count;
        }
        break;
    case RECORD_END:
    case RECORD_REOPEN:
    case RECORD_DELETE:
        sound = record_queue_ref_decode(v->body, v->body_len, &queue_id);
        if (sound)
            apply_queue_ref(rp, v->type, queue_id);
        break;
    default:
        sound = false;
    }
    if (!sound) {
        rp->report->damaged++;
        problem(rp, seq, off, "malformed record of type %u: skipped", v->type);
    } else {
        rp->report->records++;
    }
    return status;
}

/* ---- one segment ---- */

/* Cuts the last segment at `off`: what follows is a write the crash tore. */
static void cut_torn_tail(struct replay *rp, struct segment *seg, uint64_t off)
{
    struct store *st = rp->st;
    char name[SEGMENT_NAME_SIZE];
    segment_name(name, seg->seq);
    int fd = openat(st->dir_fd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)off) != 0 ||
        (st->sync != STORE_SYNC_NEVER && fdatasync(fd) != 0)) {
        problem(rp, seg->seq, off, "torn tail could not be cut: %s", strerror(errno));
        rp->need_new_segment = true;
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    struct store_report *rep = rp->report;
    rep->truncated_bytes = seg->size - off;
    rep->truncated_offset = off;
    memcpy(rep->truncated_file, name, sizeof rep->truncated_file);
    st->disk_bytes -= seg->size - off;
    seg->size = off;
}

/* Reads and checks the header; pushes the segment if it is sound. */
static enum store_status open_segment(struct replay *rp, uint64_t seq, bool last, bool *usable)
{
    struct store *st = rp->st;
    *usable = false;
    if (segment_reader_open(&rp->reader, st->dir_fd, seq) != 0) {
        problem(rp, seq, 0, "cannot open: %s; ignored", strerror(errno));
        rp->need_new_segment |= last;
        return STORE_OK;
    }
    uint64_t size = rp->reader.file_size;
    rp->report->segments++;
    rp->report->bytes += size;

    struct segment_header h;
    const uint8_t *raw = segment_reader_get(&rp->reader, 0, SEGMENT_HEADER_SIZE);
    enum header_check check = raw == NULL ? HEADER_BAD : segment_header_decode(raw, &h);
    if (check == HEADER_NEWER) {
        char name[SEGMENT_NAME_SIZE];
        segment_name(name, seq);
        return store_fail(st, STORE_ERR_FORMAT, "%s is of format version %u; this ferryd knows %u",
                          name, h.version, SEGMENT_VERSION);
    }
    if (check == HEADER_BAD || h.seq != seq) {
        /* Left in place for inspection; it still takes room on the disk. */
        problem(rp, seq, 0, "not a sound segment header: file ignored");
        rp->report->damaged++;
        rp->need_new_segment |= last;
        st->disk_bytes += size;
        st->unsound_bytes += size;
        return STORE_OK;
    }
    /* Appends never go on in an older version's segment: it would then
     * hold records that version cannot read. */
    rp->need_new_segment |= last && h.version < SEGMENT_VERSION;
    if (h.next_id > st->next_id)
        st->next_id = h.next_id;
    if (h.next_queue_id > st->next_queue_id)
        st->next_queue_id = h.next_queue_id;
    *usable = true;
    return store_push_segment(st, seq, size);
}

static enum store_status replay_segment(struct replay *rp, uint64_t seq, bool last)
{
    bool usable;
    enum store_status status = open_segment(rp, seq, last, &usable);
    if (status != STORE_OK || !usable)
        return status;
    struct segment *seg = store_active(rp->st);
    uint64_t off = SEGMENT_HEADER_SIZE;
    while (off < seg->size) {
        struct record_view v;
        enum record_read r = segment_read_record(&rp->reader, off, &v);
        if (r == READ_OK) {
            status = apply(rp, seq, off, &v);
            if (status != STORE_OK)
                return status;
            off += v.size;
            continue;
        }
        if (r == READ_IO_ERROR) {
            problem(rp, seq, off, "read error (%s): rest of the segment ignored", strerror(errno));
            rp->report->damaged++;
            rp->need_new_segment |= last;
            return STORE_OK;
        }
        if (last && !segment_sound_record_after(&rp->reader, off, TORN_CHECK_BUDGET)) {
            cut_torn_tail(rp, seg, off);
            return STORE_OK;
        }
        rp->report->damaged++;
        if (r == READ_BAD_CRC) {
            problem(rp, seq, off, "checksum mismatch: record of %u bytes skipped", v.size);
            off += v.size;
            continue;
        }
        problem(rp, seq, off, "record length not plausible: rest of the segment ignored");
        rp->need_new_segment |= last;
        return STORE_OK;
    }
    return STORE_OK;
}

/* ---- after the scan ---- */

static int by_id(const void *a, const void *b)
{
    uint64_t x = ((const struct msg_entry *)a)->id, y = ((const struct msg_entry *)b)->id;
    return (x > y) - (x < y);
}

static int queue_by_id(const void *a, const void *b)
{
    uint32_t x = (*(struct store_queue *const *)a)->id, y = (*(struct store_queue *const *)b)->id;
    return (x > y) - (x < y);
}

/* Drops the messages of queues that were deleted (or never seen). */
static void drop_orphans(struct replay *rp)
{
    struct store *st = rp->st;
    size_t slots = msg_index_slot_count(&st->index);
    for (size_t i = 0; i < slots; i++) {
        struct msg_entry *e = &st->index.slots[i];
        /* Removing moves a later entry into this slot: look again. */
        while (e->id != 0 && queue_table_find_id(&st->queues, e->queue_id) == NULL) {
            msg_index_remove(&st->index, e);
            rp->report->settled++;
        }
    }
}

/* The queues, sorted by id (creation order), in a malloc'd array. */
static struct store_queue **sorted_queues(struct store *st)
{
    struct store_queue **list = malloc((st->queues.count + 1) * sizeof *list);
    if (list == NULL)
        return NULL;
    size_t n = 0, slots = queue_table_slot_count(&st->queues);
    for (size_t i = 0; i < slots; i++)
        if (queue_table_slot(&st->queues, i) != NULL)
            list[n++] = queue_table_slot(&st->queues, i);
    qsort(list, n, sizeof *list, queue_by_id);
    return list;
}

/* Re-reads one live message and hands it over. false if the callback
 * refused it; a record that no longer reads back is reported and dropped. */
static bool deliver_message(struct replay *rp, const struct msg_entry *e,
                            const struct store_recovery *cb)
{
    struct store *st = rp->st;
    struct record_view v;
    struct record_publish rec;
    if (rp->reader.fd < 0 || rp->reader.seq != e->seq)
        (void)segment_reader_open(&rp->reader, st->dir_fd, e->seq); /* fd -1 on failure */
    if (rp->reader.fd < 0 || segment_read_record(&rp->reader, e->off, &v) != READ_OK ||
        !record_publish_decode(v.body, v.body_len, &rec) || rec.id != e->id) {
        problem(rp, e->seq, e->off, "message %llu no longer reads back: dropped",
                (unsigned long long)e->id);
        rp->report->damaged++;
        msg_index_remove(&st->index, msg_index_find(&st->index, e->id));
        return true;
    }
    rp->report->messages++;
    if (cb == NULL || cb->on_message == NULL)
        return true;
    struct store_queue *q = queue_table_find_id(&st->queues, e->queue_id);
    return cb->on_message(cb->arg, store_queue_name(q), e->id, e->attempts, rec.meta, rec.headers,
                          rec.payload);
}

static enum store_status deliver(struct replay *rp, const struct store_recovery *cb)
{
    struct store *st = rp->st;
    enum store_status status = STORE_OK;
    struct store_queue **queues = sorted_queues(st);
    size_t live = st->index.count;
    struct msg_entry *messages = malloc((live + 1) * sizeof *messages);
    if (queues == NULL || messages == NULL) {
        status = no_memory(rp);
        goto done;
    }
    size_t n = 0, slots = msg_index_slot_count(&st->index);
    for (size_t i = 0; i < slots; i++)
        if (st->index.slots[i].id != 0)
            messages[n++] = st->index.slots[i];
    qsort(messages, n, sizeof *messages, by_id);

    size_t queue_count = st->queues.count;
    for (size_t i = 0; i < queue_count; i++) {
        rp->report->queues++;
        if (cb != NULL && cb->on_queue != NULL &&
            !cb->on_queue(cb->arg, store_queue_name(queues[i]), store_queue_settings(queues[i])))
            goto aborted;
    }
    for (size_t i = 0; i < n; i++)
        if (!deliver_message(rp, &messages[i], cb))
            goto aborted;
    for (size_t i = 0; i < queue_count; i++)
        if (queues[i]->ended && cb != NULL && cb->on_end != NULL &&
            !cb->on_end(cb->arg, store_queue_name(queues[i])))
            goto aborted;
    goto done;
aborted:
    status = store_fail(st, STORE_ERR_ABORTED, "recovery stopped by the caller");
done:
    free(queues);
    free(messages);
    return status;
}

/* Live bytes per segment, from what survived. */
static void count_live(struct store *st)
{
    size_t slots = msg_index_slot_count(&st->index);
    for (size_t i = 0; i < slots; i++)
        if (st->index.slots[i].id != 0)
            store_live_add(st, st->index.slots[i].seq, st->index.slots[i].size);
    slots = queue_table_slot_count(&st->queues);
    for (size_t i = 0; i < slots; i++) {
        struct store_queue *q = queue_table_slot(&st->queues, i);
        if (q != NULL)
            store_queue_live_add(st, q->decl_seq, q->decl_size);
    }
}

/* Appends go on in the last segment if it is sound and not full, else in
 * a new one numbered after every file in the directory. */
static enum store_status open_active(struct replay *rp)
{
    struct store *st = rp->st;
    if (st->seg_count > 0 && !rp->need_new_segment && store_active(st)->seq == rp->max_seq &&
        store_active(st)->size < st->segment_bytes) {
        char name[SEGMENT_NAME_SIZE];
        segment_name(name, store_active(st)->seq);
        st->active_fd = openat(st->dir_fd, name, O_WRONLY | O_CLOEXEC);
        if (st->active_fd < 0)
            return store_fail(st, STORE_ERR_IO, "cannot open %s for writing: %s", name, strerror(errno));
        return STORE_OK;
    }
    struct segment_header h = {
        .version = SEGMENT_VERSION,
        .seq = rp->max_seq + 1,
        .next_id = st->next_id,
        .next_queue_id = st->next_queue_id,
    };
    st->active_fd = segment_create(st->dir_fd, &h, st->sync != STORE_SYNC_NEVER);
    if (st->active_fd < 0)
        return store_fail(st, store_status_of_errno(errno), "cannot create segment %llu: %s",
                          (unsigned long long)h.seq, strerror(errno));
    return store_push_segment(st, h.seq, SEGMENT_HEADER_SIZE);
}

enum store_status store_recover(struct store *st, const struct store_recovery *cb,
                                struct store_report *report)
{
    struct replay rp = { .st = st, .report = report };
    segment_reader_init(&rp.reader);
    st->next_id = 1;
    st->next_queue_id = 1;

    uint64_t *seqs = NULL;
    size_t count = 0;
    if (segment_list(st->dir_fd, &seqs, &count) != 0)
        return store_fail(st, STORE_ERR_IO, "cannot list the data directory: %s", strerror(errno));
    enum store_status status = STORE_OK;
    for (size_t i = 0; i < count && status == STORE_OK; i++)
        status = replay_segment(&rp, seqs[i], i == count - 1);
    if (count > 0)
        rp.max_seq = seqs[count - 1];
    free(seqs);

    if (status == STORE_OK) {
        if (rp.max_id >= st->next_id)
            st->next_id = rp.max_id + 1;
        if (rp.max_queue_id >= st->next_queue_id)
            st->next_queue_id = rp.max_queue_id + 1;
        drop_orphans(&rp);
        status = deliver(&rp, cb);
    }
    segment_reader_free(&rp.reader);
    msg_index_shrink(&st->index);
    if (status != STORE_OK)
        return status;
    count_live(st);
    return open_active(&rp);
}
