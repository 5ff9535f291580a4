/*
 * durable.c - durable queues in ferryd: the broker's journal (broker.h)
 * on the store (store.h), the queue settings kept in the log, the replay
 * of the log into the broker at start-up, and the group commit's flush.
 * Also the operator's view of the log: the recovery report, and store
 * errors said once per burst, not once per message.
 *
 * Knows the broker and the store; nothing of sockets, frames or libevent.
 */
#include "durable.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"

/* While publishes are refused, the log says so again at most this often. */
#define REFUSING_REMINDER_MS 10000u
/* Settings as the log keeps them: "fsync=always" and the like. */
#define SETTINGS_BLOB_MAX 64

struct durable {
    struct store *store;
    struct broker *broker;
    struct broker_journal journal;  /* installed in the broker; its arg is this */
    /* The strongest policy of the queues that appended since the last
     * successful flush: it decides that flush's fdatasync. */
    enum store_sync batch;
    uint64_t publishes_since_flush;
    /* Refusals, said once per burst. */
    bool refusing;
    uint64_t refused_before;    /* the store's count of refused publishes when it began */
    uint64_t said_at_ms;
    bool tick_failed;           /* an interval sync failed; said once until one works */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- settings in the log ---- */

static const char *fsync_name(enum queue_fsync f)
{
    switch (f) {
    case QUEUE_FSYNC_ALWAYS: return "always";
    case QUEUE_FSYNC_INTERVAL: return "interval";
    case QUEUE_FSYNC_NEVER: return "never";
    }
    return "always";
}

static enum store_sync store_sync_of(enum queue_fsync f)
{
    switch (f) {
    case QUEUE_FSYNC_ALWAYS: return STORE_SYNC_ALWAYS;
    case QUEUE_FSYNC_INTERVAL: return STORE_SYNC_INTERVAL;
    case QUEUE_FSYNC_NEVER: return STORE_SYNC_NEVER;
    }
    return STORE_SYNC_ALWAYS;
}

/* The blob is text, so that a dump of the log reads; later settings
 * append "; key=value" pairs. */
static struct ferry_bytes settings_encode(const struct queue_settings *s, char *buf, size_t size)
{
    int n = snprintf(buf, size, "fsync=%s", fsync_name(s->fsync));
    size_t len = n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
    return (struct ferry_bytes){ (const uint8_t *)buf, len };
}

/* What a recovered queue was: durable, with the policy it was logged with
 * (the strongest if the blob is not understood). */
static struct queue_settings settings_decode(struct ferry_bytes blob)
{
    struct queue_settings s = { .durable = true, .fsync = QUEUE_FSYNC_ALWAYS };
    static const enum queue_fsync all[] = { QUEUE_FSYNC_ALWAYS, QUEUE_FSYNC_INTERVAL,
                                            QUEUE_FSYNC_NEVER };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        char want[SETTINGS_BLOB_MAX];
        struct queue_settings candidate = { .durable = true, .fsync = all[i] };
        struct ferry_bytes enc = settings_encode(&candidate, want, sizeof want);
        if (blob.len >= enc.len && memcmp(blob.ptr, enc.ptr, enc.len) == 0 &&
            (blob.len == enc.len || blob.ptr[enc.len] == ';'))
            s.fsync = all[i];
    }
    return s;
}

/* ---- refusals, said once per burst ---- */

static uint64_t refused_publishes(const struct durable *d)
{
    struct store_stats st;
    store_stats(d->store, &st);
    return st.refused_publishes;
}

/* The first refusal of a burst is logged, then a reminder at most every
 * REFUSING_REMINDER_MS, never one line per message. */
static void note_refusal(struct durable *d, const char *what, enum store_status status)
{
    uint64_t now = now_ms();
    if (!d->refusing) {
        d->refusing = true;
        d->refused_before = refused_publishes(d);
        d->said_at_ms = now;
        log_error("durable storage: refusing %s: %s: %s", what, store_strerror(status),
                  store_last_error(d->store));
        return;
    }
    if (now - d->said_at_ms >= REFUSING_REMINDER_MS) {
        d->said_at_ms = now;
        log_error("durable storage: still refusing: %" PRIu64 " publishes refused so far (%s)",
                  refused_publishes(d) - d->refused_before, store_last_error(d->store));
    }
}

/* A flush wrote publishes again after a burst of refusals. */
static void note_recovered(struct durable *d)
{
    if (!d->refusing || d->publishes_since_flush == 0)
        return;
    d->refusing = false;
    log_info("durable storage: accepting publishes again (%" PRIu64 " refused in the burst)",
             refused_publishes(d) - d->refused_before);
}

static enum ferry_code code_of(enum store_status status)
{
    switch (status) {
    case STORE_OK: return FERRY_CODE_OK;
    case STORE_ERR_NO_MEMORY: return FERRY_CODE_NO_MEMORY;
    case STORE_ERR_INVALID: return FERRY_CODE_LIMIT; /* a message too large for one record */
    default: return FERRY_CODE_STORAGE;
    }
}

/* The store's answer to a change the broker asked for, as a ferry code. */
static enum ferry_code answer(struct durable *d, const char *what, enum store_status status)
{
    if (status != STORE_OK)
        note_refusal(d, what, status);
    return code_of(status);
}

/* Records of a queue of policy `fsync` are in the next flush. */
static void note_policy(struct durable *d, const struct queue_settings *s)
{
    enum store_sync sync = store_sync_of(s->fsync);
    if (sync < d->batch) /* ALWAYS < INTERVAL < NEVER: the lowest is the strongest */
        d->batch = sync;
}

/* ---- a message's meta in the log ----
 * The PUBLISH record's meta block (docs/STORAGE.md, "Message meta"): a
 * list of (u8 key, u8 length, value) entries, integers little-endian, only
 * for the fields that are set, so a plain message has none. A reader
 * ignores keys it does not know; a known key of the wrong length is
 * damage, said in the log, and that field is left unset. */

enum meta_key {
    META_DELIVER_AT = 1,    /* u64: broker clock (Unix) ms, not delivered before */
    META_PRIORITY = 2,      /* u8: 1..9 (absent: 0) */
    META_EXPIRES_AT = 3,    /* u64: broker clock (Unix) ms, never delivered from then */
};
#define META_MAX 255u

static size_t meta_put_u64(uint8_t *out, size_t at, uint8_t key, uint64_t v)
{
    out[at] = key;
    out[at + 1] = 8;
    for (int i = 0; i < 8; i++)
        out[at + 2 + i] = (uint8_t)(v >> (8 * i));
    return at + 10;
}

static struct ferry_bytes meta_encode(const struct message_meta *m, uint8_t out[META_MAX])
{
    size_t len = 0;
    if (m != NULL && m->deliver_at != 0)
        len = meta_put_u64(out, len, META_DELIVER_AT, m->deliver_at);
    if (m != NULL && m->priority != 0) {
        out[len] = META_PRIORITY;
        out[len + 1] = 1;
        out[len + 2] = m->priority;
        len += 3;
    }
    if (m != NULL && m->expires_at != 0)
        len = meta_put_u64(out, len, META_EXPIRES_AT, m->expires_at);
    return (struct ferry_bytes){ out, len };
}

static uint64_t meta_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* false if the block is damaged (what could be read is in *out; a
 * priority that could not be read is left to the queue's default). */
static bool meta_decode(struct ferry_bytes in, struct message_meta *out)
{
    /* The journal logs the priority a message got: absent is 0. */
    *out = (struct message_meta){ .has_priority = true, .priority = 0 };
    size_t at = 0;
    while (at < in.len) {
        if (in.len - at < 2 || in.ptr[at + 1] > in.len - at - 2)
            return false;
        uint8_t key = in.ptr[at];
        uint8_t len = in.ptr[at + 1];
        const uint8_t *value = in.ptr + at + 2;
        at += 2 + (size_t)len;
        switch (key) {
        case META_DELIVER_AT:
            if (len != 8)
                return false;
            out->deliver_at = meta_get_u64(value);
            break;
        case META_PRIORITY:
            if (len != 1 || value[0] > FERRY_PRIORITY_MAX) {
                out->has_priority = false;
                return false;
            }
            out->priority = value[0];
            break;
        case META_EXPIRES_AT:
            if (len != 8)
                return false;
            out->expires_at = meta_get_u64(value);
            break;
        default:
            break; /* a newer writer's: ignored */
        }
    }
    return true;
}

/* ---- the journal ---- */

static enum ferry_code journal_declare(void *arg, struct ferry_bytes queue,
                                       const struct queue_settings *s)
{
    struct durable *d = arg;
    char buf[SETTINGS_BLOB_MAX];
    note_policy(d, s);
    return answer(d, "a queue declaration",
                  store_declare(d->store, queue, settings_encode(s, buf, sizeof buf), NULL));
}

static enum ferry_code journal_publish(void *arg, struct ferry_bytes queue,
                                       const struct queue_settings *s,
                                       const struct message_meta *meta, struct ferry_bytes headers,
                                       struct ferry_bytes payload, uint64_t *id, uint64_t *lsn)
{
    struct durable *d = arg;
    uint8_t buf[META_MAX];
    enum store_status status =
        store_publish(d->store, queue, 0, meta_encode(meta, buf), headers, payload, id, lsn);
    if (status != STORE_OK)
        return answer(d, "publishes", status);
    note_policy(d, s);
    d->publishes_since_flush++;
    return FERRY_CODE_OK;
}

static void journal_settle(void *arg, const struct queue_settings *s, uint64_t id)
{
    struct durable *d = arg;
    note_policy(d, s);
    enum store_status status = store_ack(d->store, id);
    if (status != STORE_OK) /* only NO_MEMORY: the record is missing, the store forgot the id */
        log_warn("durable storage: an ack could not be logged (%s): the message may come "
                 "back after a crash", store_last_error(d->store));
}

static void journal_rewrite(void *arg, const struct queue_settings *s, uint64_t id,
                            uint32_t attempts, const struct message_meta *meta,
                            struct ferry_bytes headers, struct ferry_bytes payload)
{
    struct durable *d = arg;
    uint8_t buf[META_MAX];
    note_policy(d, s);
    enum store_status status =
        store_rewrite(d->store, id, attempts, meta_encode(meta, buf), headers, payload, NULL);
    if (status != STORE_OK) /* the earlier record stands: it comes back ready after a restart */
        log_warn("durable storage: a message's wait could not be logged (%s): after a "
                 "restart it is ready at once", store_last_error(d->store));
}

static void journal_attempts(void *arg, const struct queue_settings *s, uint64_t id,
                             uint32_t attempts)
{
    struct durable *d = arg;
    note_policy(d, s);
    /* On failure the store keeps the count in memory; only a crash before
     * the next successful record of it would bring back the older count. */
    (void)store_set_attempts(d->store, id, attempts);
}

static enum ferry_code journal_end(void *arg, struct ferry_bytes queue,
                                   const struct queue_settings *s)
{
    struct durable *d = arg;
    note_policy(d, s);
    return answer(d, "an END", store_end(d->store, queue, NULL));
}

static enum ferry_code journal_reopen(void *arg, struct ferry_bytes queue,
                                      const struct queue_settings *s)
{
    struct durable *d = arg;
    note_policy(d, s);
    return answer(d, "a REOPEN", store_reopen(d->store, queue, NULL));
}

static enum ferry_code journal_delete(void *arg, struct ferry_bytes queue,
                                      const struct queue_settings *s)
{
    struct durable *d = arg;
    note_policy(d, s);
    enum store_status status = store_delete(d->store, queue, NULL);
    if (status == STORE_ERR_NOT_FOUND)
        return FERRY_CODE_OK; /* nothing of it in the log */
    return answer(d, "a DELETE", status);
}

/* ---- group commit ---- */

enum ferry_code durable_flush(struct durable *d, uint64_t *safe_lsn)
{
    uint64_t written = 0, synced = 0;
    enum store_status status = store_commit(d->store, d->batch, &written, &synced);
    *safe_lsn = d->batch == STORE_SYNC_ALWAYS ? synced : written;
    if (status != STORE_OK) {
        /* What stays buffered (acks, queue changes) keeps its policy. */
        note_refusal(d, "publishes", status);
        d->publishes_since_flush = 0;
        return FERRY_CODE_STORAGE;
    }
    note_recovered(d);
    d->batch = STORE_SYNC_NEVER;
    d->publishes_since_flush = 0;
    return FERRY_CODE_OK;
}

int durable_next_sync_ms(const struct durable *d)
{
    return store_next_sync_ms(d->store);
}

void durable_tick(struct durable *d)
{
    enum store_status status = store_tick(d->store);
    if (status != STORE_OK && !d->tick_failed)
        log_error("durable storage: interval sync failed: %s", store_last_error(d->store));
    else if (status == STORE_OK && d->tick_failed)
        log_info("durable storage: interval syncs work again");
    d->tick_failed = status != STORE_OK;
}

/* ---- recovery ---- */

struct replay {
    struct durable *d;
    uint64_t skipped;   /* messages of a queue the broker refused */
};

static bool restore_queue(void *arg, struct ferry_bytes name, struct ferry_bytes blob)
{
    struct replay *rp = arg;
    struct queue_settings s = settings_decode(blob);
    enum ferry_code code = broker_restore_queue(rp->d->broker, name, &s);
    if (code != FERRY_CODE_OK && code != FERRY_CODE_NO_MEMORY)
        log_warn("recovery: queue \"%.*s\" skipped: %s", (int)name.len, (const char *)name.ptr,
                 ferry_code_name(code));
    return code != FERRY_CODE_NO_MEMORY;
}

static bool restore_message(void *arg, struct ferry_bytes queue, uint64_t id, uint32_t attempts,
                            struct ferry_bytes meta_block, struct ferry_bytes headers,
                            struct ferry_bytes payload)
{
    struct replay *rp = arg;
    struct message_meta meta;
    if (!meta_decode(meta_block, &meta))
        log_warn("recovery: message %" PRIu64 " of \"%.*s\": damaged meta, partly ignored", id,
                 (int)queue.len, (const char *)queue.ptr);
    enum ferry_code code =
        broker_restore_message(rp->d->broker, queue, id, attempts, &meta, headers, payload);
    if (code != FERRY_CODE_OK && code != FERRY_CODE_NO_MEMORY)
        rp->skipped++;
    return code != FERRY_CODE_NO_MEMORY;
}

static bool restore_end(void *arg, struct ferry_bytes queue)
{
    struct replay *rp = arg;
    (void)broker_restore_end(rp->d->broker, queue); /* NOT_FOUND: a skipped queue */
    return true;
}

static void log_report(const char *dir, const struct store_report *r, uint64_t skipped)
{
    log_info("durable log %s: %" PRIu64 " segments (%" PRIu64 " bytes, %" PRIu64
             " records) replayed in %.3f s: %" PRIu64 " queues and %" PRIu64
             " messages recovered, %" PRIu64 " settled",
             dir, r->segments, r->bytes, r->records, (double)r->duration_us / 1e6, r->queues,
             r->messages, r->settled);
    if (r->truncated_bytes > 0)
        log_warn("durable log: torn tail cut: %" PRIu64 " bytes of %s from offset %" PRIu64
                 " (a write cut short by a crash)",
                 r->truncated_bytes, r->truncated_file, r->truncated_offset);
    size_t listed = r->problem_count < STORE_REPORT_PROBLEMS ? r->problem_count
                                                             : STORE_REPORT_PROBLEMS;
    for (size_t i = 0; i < listed; i++)
        log_warn("durable log: damage in %s at offset %" PRIu64 ": %s", r->problems[i].file,
                 r->problems[i].offset, r->problems[i].what);
    if (r->problem_count > listed)
        log_warn("durable log: %zu more damaged places not listed (%" PRIu64
                 " records or segments skipped in all)",
                 r->problem_count - listed, r->damaged);
    if (skipped > 0)
        log_warn("durable log: %" PRIu64 " messages of unusable queues skipped", skipped);
}

/* ---- bringing recovered queues in line with the configuration ---- */

struct name_list {
    struct ferry_bytes *names; /* owned array; the bytes point into the broker's queues */
    size_t count, cap;
};

static void collect_name(void *arg, struct ferry_bytes name, const struct queue_stats *st)
{
    struct name_list *l = arg;
    if (l->count < l->cap)
        l->names[l->count++] = name;
}

/* A recovered queue stays durable whatever the configuration now says (a
 * slip in the conf file must not drop messages at the next restart; a
 * DELETE does that); its fsync policy and other settings follow the
 * configuration. */
static void reconfigure_one(struct durable *d, const struct durable_config *cfg,
                            struct ferry_bytes name)
{
    struct queue_settings want = { .durable = false, .fsync = QUEUE_FSYNC_ALWAYS };
    cfg->settings_of(cfg->settings_arg, name, &want);
    struct queue_settings was;
    if (broker_queue_settings(d->broker, name, &was) != FERRY_CODE_OK)
        return;
    if (!want.durable)
        log_warn("queue \"%.*s\" is in memory in the configuration but durable in the log: "
                 "it stays durable (delete it to drop it)", (int)name.len, (const char *)name.ptr);
    struct queue_settings now = want;
    now.durable = true;
    if (was.fsync == want.fsync) {
        broker_configure_queue(d->broker, name, &now); /* the rest: no log, cannot fail */
        return;
    }
    enum ferry_code code = broker_configure_queue(d->broker, name, &now);
    if (code != FERRY_CODE_OK)
        log_error("queue \"%.*s\": cannot apply its configured fsync: %s", (int)name.len,
                  (const char *)name.ptr, ferry_code_name(code));
    else
        log_info("queue \"%.*s\": fsync %s -> %s", (int)name.len, (const char *)name.ptr,
                 fsync_name(was.fsync), fsync_name(want.fsync));
}

/* Every queue in the broker came from the log; the configuration may
 * have changed since they were logged. */
static void reconfigure_recovered(struct durable *d, const struct durable_config *cfg)
{
    size_t n = broker_queue_count(d->broker);
    if (n == 0 || cfg->settings_of == NULL)
        return;
    struct name_list l = { .names = calloc(n, sizeof *l.names), .cap = n };
    if (l.names == NULL) {
        log_error("out of memory: recovered queues keep the settings they were logged with");
        return;
    }
    broker_each_queue(d->broker, collect_name, &l);
    for (size_t i = 0; i < l.count; i++)
        reconfigure_one(d, cfg, l.names[i]); /* frees no queue: the names stay valid */
    free(l.names);
}

/* ---- opening and closing ---- */

struct durable *durable_open(const struct durable_config *cfg, struct broker *b,
                             char *err, size_t err_len)
{
    struct durable *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    d->broker = b;
    d->batch = STORE_SYNC_NEVER;
    d->journal = (struct broker_journal){
        .arg = d,
        .declare = journal_declare,
        .publish = journal_publish,
        .settle = journal_settle,
        .attempts = journal_attempts,
        .rewrite = journal_rewrite,
        .end = journal_end,
        .reopen = journal_reopen,
        .delete_queue = journal_delete,
    };
    struct store_config sc = {
        .dir = cfg->dir,
        .sync = store_sync_of(cfg->strongest),
        .sync_interval_ms = cfg->sync_interval_ms,
        .segment_bytes = cfg->segment_bytes,
        .max_bytes = cfg->max_bytes,
    };
    struct replay rp = { .d = d };
    struct store_recovery recovery = {
        .arg = &rp,
        .on_queue = restore_queue,
        .on_message = restore_message,
        .on_end = restore_end,
    };
    struct store_report report;
    char why[256];
    enum store_status status = store_open(&sc, &recovery, &d->store, &report, why, sizeof why);
    if (status != STORE_OK) {
        snprintf(err, err_len, "durable log %s: %s: %s", cfg->dir, store_strerror(status), why);
        free(d);
        return NULL;
    }
    log_report(cfg->dir, &report, rp.skipped);
    broker_set_journal(b, &d->journal); /* d outlives it: durable_close detaches it */
    reconfigure_recovered(d, cfg);
    return d;
}

void durable_close(struct durable *d)
{
    if (d == NULL)
        return;
    broker_set_journal(d->broker, NULL);
    struct store_stats st;
    store_stats(d->store, &st);
    enum store_status status = store_close(d->store);
    if (status != STORE_OK)
        log_error("durable log: the last flush failed: %s", store_strerror(status));
    else
        log_info("durable log closed: %" PRIu64 " messages in %" PRIu64 " segments (%" PRIu64
                 " bytes)", st.messages, st.segments, st.disk_bytes);
    free(d);
}
