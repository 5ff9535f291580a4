/*
 * test_store.c - the durable log (daemon/store.h) on its own, in temporary
 * directories: what comes back after a restart, torn tails at every byte,
 * damage detection, reclaiming and compaction, disk limits and write
 * errors, and the syncs of each policy. Each test pins down one promise
 * of docs/STORAGE.md.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "record.h"
#include "store.h"

/* ---- what recovery hands back ---- */

struct seen_message {
    char queue[32];
    uint64_t id;
    uint32_t attempts;
    char meta[32];
    char headers[32];
    char payload[64];       /* the first bytes, NUL-terminated */
    size_t payload_len;
    uint32_t payload_crc;
};

struct seen {
    struct seen_message *messages;
    size_t count, cap;
    char queues[8][32];
    char settings[8][32];
    size_t queue_count;
    char ended[8][32];
    size_t ended_count;
    int phase;              /* 0 queues, 1 messages, 2 ends: never goes back */
    bool out_of_order;
    uint64_t abort_at_id;   /* nonzero: on_message of this id returns false */
};

static void copy_text(char *dst, size_t cap, struct ferry_bytes src)
{
    size_t n = src.len < cap - 1 ? src.len : cap - 1;
    if (n > 0)
        memcpy(dst, src.ptr, n);
    dst[n] = '\0';
}

static void enter_phase(struct seen *s, int phase)
{
    if (phase < s->phase)
        s->out_of_order = true;
    s->phase = phase;
}

static bool on_queue(void *arg, struct ferry_bytes name, struct ferry_bytes settings)
{
    struct seen *s = arg;
    enter_phase(s, 0);
    ck_assert_uint_lt(s->queue_count, 8);
    copy_text(s->queues[s->queue_count], 32, name);
    copy_text(s->settings[s->queue_count], 32, settings);
    s->queue_count++;
    return true;
}

static bool on_message(void *arg, struct ferry_bytes queue, uint64_t id, uint32_t attempts,
                       struct ferry_bytes meta, struct ferry_bytes headers, struct ferry_bytes payload)
{
    struct seen *s = arg;
    enter_phase(s, 1);
    if (s->abort_at_id == id)
        return false;
    if (s->count == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->messages = realloc(s->messages, s->cap * sizeof *s->messages);
        ck_assert_ptr_nonnull(s->messages);
    }
    struct seen_message *m = &s->messages[s->count++];
    copy_text(m->queue, sizeof m->queue, queue);
    m->id = id;
    m->attempts = attempts;
    copy_text(m->meta, sizeof m->meta, meta);
    copy_text(m->headers, sizeof m->headers, headers);
    copy_text(m->payload, sizeof m->payload, payload);
    m->payload_len = payload.len;
    m->payload_crc = crc32c(0, payload.ptr, payload.len);
    return true;
}

static bool on_end(void *arg, struct ferry_bytes queue)
{
    struct seen *s = arg;
    enter_phase(s, 2);
    ck_assert_uint_lt(s->ended_count, 8);
    copy_text(s->ended[s->ended_count++], 32, queue);
    return true;
}

static void seen_reset(struct seen *s)
{
    free(s->messages);
    memset(s, 0, sizeof *s);
}

/* ---- directories and files ---- */

static char *make_dir(void)
{
    char *dir = strdup("/tmp/ferry-store-test-XXXXXX");
    ck_assert_ptr_nonnull(dir);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

static void empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    char path[512];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
}

static void remove_dir(char *dir)
{
    empty_dir(dir);
    rmdir(dir);
    free(dir);
}

static size_t count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".log") == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* The number of the highest segment file: the active one. */
static uint64_t highest_segment(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    uint64_t highest = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len == 20 && strcmp(de->d_name + 16, ".log") == 0) {
            uint64_t seq = strtoull(de->d_name, NULL, 16);
            highest = seq > highest ? seq : highest;
        }
    }
    closedir(d);
    return highest;
}

static void segment_path(char *out, size_t cap, const char *dir, uint64_t seq)
{
    snprintf(out, cap, "%s/%016llx.log", dir, (unsigned long long)seq);
}

/* The whole file in a malloc'd buffer. */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *len = (size_t)size;
    return data;
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    return (uint64_t)sb.st_size;
}

/* Offsets of the records of a segment file, by the framing of STORAGE.md. */
static size_t record_offsets(const uint8_t *data, size_t len, uint64_t *out, size_t max)
{
    size_t n = 0;
    uint64_t off = SEGMENT_HEADER_SIZE;
    while (off + RECORD_HEADER_SIZE <= len && n < max) {
        out[n++] = off;
        off += RECORD_HEADER_SIZE + get_u32(data + off);
    }
    return n;
}

/* ---- opening and appending ---- */

static struct store_config config(const char *dir)
{
    return (struct store_config){
        .dir = dir,
        .sync = STORE_SYNC_NEVER,
        .segment_bytes = 64u << 10,
    };
}

static struct store_recovery recovery_of(struct seen *s)
{
    return (struct store_recovery){ .arg = s, .on_queue = on_queue, .on_message = on_message,
                                    .on_end = on_end };
}

static struct store *open_with(const struct store_config *cfg, struct seen *s,
                               struct store_report *report)
{
    struct store *st;
    char err[256] = "";
    struct store_recovery cb = recovery_of(s);
    if (s != NULL)
        seen_reset(s);
    enum store_status status = store_open(cfg, s ? &cb : NULL, &st, report, err, sizeof err);
    ck_assert_msg(status == STORE_OK, "store_open: %s: %s", store_strerror(status), err);
    ck_assert(s == NULL || !s->out_of_order);
    return st;
}

static struct ferry_bytes text(const char *s)
{
    return (struct ferry_bytes){ (const uint8_t *)s, strlen(s) };
}

static const struct ferry_bytes no_meta = { NULL, 0 };

static void declare(struct store *st, const char *queue, const char *settings)
{
    ck_assert_int_eq(store_declare(st, text(queue), text(settings), NULL), STORE_OK);
}

static uint64_t publish(struct store *st, const char *queue, const char *payload)
{
    uint64_t id = 0;
    ck_assert_int_eq(store_publish(st, text(queue), 0, no_meta, text(""), text(payload), &id, NULL), STORE_OK);
    return id;
}

static void flush_ok(struct store *st)
{
    enum store_status status = store_flush(st, NULL);
    ck_assert_msg(status == STORE_OK, "store_flush: %s", store_last_error(st));
}

static void close_ok(struct store *st)
{
    ck_assert_int_eq(store_close(st), STORE_OK);
}

static struct store_stats stats_of(const struct store *st)
{
    struct store_stats s;
    store_stats(st, &s);
    return s;
}

/* ---- CRC-32C ---- */

START_TEST(test_crc32c_matches_the_standard_check_value)
{
    ck_assert_uint_eq(crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(crc32c_portable(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(crc32c(0, "", 0), 0);
}
END_TEST

START_TEST(test_crc32c_instruction_and_software_agree_and_continue)
{
    uint8_t data[4099];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 131 + 7);
    for (size_t start = 0; start < 9; start++) {
        for (size_t len = 0; len + start <= sizeof data; len += 37) {
            uint32_t whole = crc32c_portable(0, data + start, len);
            ck_assert_uint_eq(crc32c(0, data + start, len), whole);
            size_t half = len / 3;
            ck_assert_uint_eq(crc32c(crc32c(0, data + start, half), data + start + half, len - half),
                              whole);
        }
    }
}
END_TEST

/* ---- what comes back ---- */

START_TEST(test_unacked_messages_come_back_in_order_with_attempts)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    struct seen seen = { 0 };
    struct store *st = open_with(&cfg, &seen, NULL);
    declare(st, "jobs", "durable=1");
    declare(st, "mail", "");

    uint64_t ids[12];
    char payload[32];
    for (int i = 0; i < 12; i++) {
        snprintf(payload, sizeof payload, "msg-%d", i);
        ck_assert_int_eq(store_publish(st, text(i % 3 == 2 ? "mail" : "jobs"), 0, no_meta,
                                       text("\x81\xa1k\xa1v"), text(payload), &ids[i], NULL),
                         STORE_OK);
        ck_assert(i == 0 || ids[i] > ids[i - 1]);
    }
    flush_ok(st);
    ck_assert_int_eq(store_ack(st, ids[0]), STORE_OK);
    ck_assert_int_eq(store_ack(st, ids[4]), STORE_OK);
    ck_assert_int_eq(store_ack(st, ids[5]), STORE_OK);
    ck_assert_int_eq(store_set_attempts(st, ids[1], 2), STORE_OK);
    ck_assert_int_eq(store_set_attempts(st, ids[1], 3), STORE_OK);
    ck_assert_int_eq(store_set_attempts(st, ids[8], 1), STORE_OK);
    flush_ok(st);
    close_ok(st);

    struct store_report report;
    st = open_with(&cfg, &seen, &report);
    ck_assert_uint_eq(seen.queue_count, 2);
    ck_assert_str_eq(seen.queues[0], "jobs");
    ck_assert_str_eq(seen.settings[0], "durable=1");
    ck_assert_str_eq(seen.queues[1], "mail");
    ck_assert_uint_eq(seen.count, 9);
    int expect[] = { 1, 2, 3, 6, 7, 8, 9, 10, 11 };
    for (size_t i = 0; i < 9; i++) {
        int n = expect[i];
        snprintf(payload, sizeof payload, "msg-%d", n);
        ck_assert_uint_eq(seen.messages[i].id, ids[n]);
        ck_assert_str_eq(seen.messages[i].payload, payload);
        ck_assert_str_eq(seen.messages[i].queue, n % 3 == 2 ? "mail" : "jobs");
        ck_assert_str_eq(seen.messages[i].headers, "\x81\xa1k\xa1v");
        ck_assert_uint_eq(seen.messages[i].attempts, n == 1 ? 3u : n == 8 ? 1u : 0u);
    }
    ck_assert_uint_eq(report.messages, 9);
    ck_assert_uint_eq(report.queues, 2);
    ck_assert_uint_eq(report.problem_count, 0);
    ck_assert_uint_eq(report.truncated_bytes, 0);

    /* Ids go on after the highest one. */
    ck_assert_uint_gt(publish(st, "jobs", "later"), ids[11]);
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_appends_reach_the_file_only_at_flush_and_close_flushes)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    struct store *st = open_with(&cfg, NULL, NULL);
    char path[512];
    segment_path(path, sizeof path, dir, 1);
    declare(st, "q", "");
    publish(st, "q", "one");
    ck_assert_uint_eq(file_size(path), SEGMENT_HEADER_SIZE);
    ck_assert_uint_gt(stats_of(st).buffered_bytes, 0);
    flush_ok(st);
    uint64_t after_flush = file_size(path);
    ck_assert_uint_gt(after_flush, SEGMENT_HEADER_SIZE);
    publish(st, "q", "two");
    close_ok(st);
    ck_assert_uint_gt(file_size(path), after_flush);

    struct seen seen = { 0 };
    st = open_with(&cfg, &seen, NULL);
    ck_assert_uint_eq(seen.count, 2);
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_ids_are_never_reused_after_the_log_is_emptied)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    cfg.segment_bytes = 4096;
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    uint64_t last = 0;
    char payload[256];
    memset(payload, 'x', sizeof payload - 1);
    payload[sizeof payload - 1] = '\0';
    for (int i = 0; i < 100; i++) {
        last = publish(st, "q", payload);
        flush_ok(st);
        ck_assert_int_eq(store_ack(st, last), STORE_OK);
    }
    flush_ok(st);
    struct store_stats s = stats_of(st);
    ck_assert_uint_gt(s.segments_deleted + s.segments_compacted, 0);
    ck_assert_uint_eq(s.messages, 0);
    close_ok(st);

    struct seen seen = { 0 };
    st = open_with(&cfg, &seen, NULL);
    ck_assert_uint_eq(seen.count, 0);
    ck_assert_uint_gt(publish(st, "q", "new"), last);
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_deleted_queue_loses_its_messages_and_its_name_starts_afresh)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "old");
    declare(st, "other", "");
    uint64_t a = publish(st, "q", "a");
    publish(st, "q", "b");
    publish(st, "other", "keep");
    flush_ok(st);
    ck_assert_int_eq(store_delete(st, text("q"), NULL), STORE_OK);
    ck_assert_int_eq(store_ack(st, a), STORE_OK); /* an in-flight message of the deleted queue */
    ck_assert_int_eq(store_publish(st, text("q"), 0, no_meta, text(""), text("c"), NULL, NULL),
                     STORE_ERR_NOT_FOUND);
    declare(st, "q", "new");
    publish(st, "q", "c");
    ck_assert_uint_eq(stats_of(st).messages, 2);
    close_ok(st);

    struct seen seen = { 0 };
    st = open_with(&cfg, &seen, NULL);
    ck_assert_uint_eq(seen.queue_count, 2);
    ck_assert_str_eq(seen.queues[0], "other");
    ck_assert_str_eq(seen.queues[1], "q");
    ck_assert_str_eq(seen.settings[1], "new");
    ck_assert_uint_eq(seen.count, 2);
    ck_assert_str_eq(seen.messages[0].payload, "keep");
    ck_assert_str_eq(seen.messages[1].payload, "c");
    ck_assert_str_eq(seen.messages[1].queue, "q");
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_ended_queues_come_back_ended_after_their_messages)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "a", "");
    declare(st, "b", "");
    publish(st, "a", "last words");
    uint64_t lsn = 0;
    ck_assert_int_eq(store_end(st, text("a"), &lsn), STORE_OK);
    ck_assert_uint_gt(lsn, 0);
    ck_assert_int_eq(store_end(st, text("a"), &lsn), STORE_OK);
    ck_assert_uint_eq(lsn, 0); /* already ended: nothing logged */
    ck_assert_int_eq(store_end(st, text("b"), NULL), STORE_OK);
    ck_assert_int_eq(store_reopen(st, text("b"), NULL), STORE_OK);
    ck_assert_int_eq(store_end(st, text("nope"), NULL), STORE_ERR_NOT_FOUND);
    close_ok(st);

    struct seen seen = { 0 };
    st = open_with(&cfg, &seen, NULL);
    ck_assert_uint_eq(seen.count, 1);
    ck_assert_uint_eq(seen.ended_count, 1);
    ck_assert_str_eq(seen.ended[0], "a");
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_redeclaring_with_new_settings_logs_them_and_same_settings_log_nothing)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    struct store *st = open_with(&cfg, NULL, NULL);
    uint64_t lsn = 0;
    ck_assert_int_eq(store_declare(st, text("q"), text("v1"), &lsn), STORE_OK);
    ck_assert_uint_gt(lsn, 0);
    ck_assert_int_eq(store_declare(st, text("q"), text("v1"), &lsn), STORE_OK);
    ck_assert_uint_eq(lsn, 0);
    ck_assert_int_eq(store_declare(st, text("q"), text("v2"), &lsn), STORE_OK);
    ck_assert_uint_gt(lsn, 0);
    close_ok(st);

    struct seen seen = { 0 };
    st = open_with(&cfg, &seen, NULL);
    ck_assert_uint_eq(seen.queue_count, 1);
    ck_assert_str_eq(seen.settings[0], "v2");
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_bad_arguments_are_refused)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    struct store *st = open_with(&cfg, NULL, NULL);
    char long_name[300];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    ck_assert_int_eq(store_declare(st, text(""), text(""), NULL), STORE_ERR_INVALID);
    ck_assert_int_eq(store_declare(st, text(long_name), text(""), NULL), STORE_ERR_INVALID);
    ck_assert_int_eq(store_publish(st, text("undeclared"), 0, no_meta, text(""), text("x"), NULL, NULL),
                     STORE_ERR_NOT_FOUND);
    ck_assert_str_ne(store_last_error(st), "");
    ck_assert_int_eq(store_ack(st, 12345), STORE_OK);
    ck_assert_int_eq(store_set_attempts(st, 12345, 4), STORE_OK);
    ck_assert_uint_eq(stats_of(st).buffered_bytes, 0); /* unknown ids log nothing */
    close_ok(st);

    struct store *other;
    cfg.segment_bytes = 100;
    ck_assert_int_eq(store_open(&cfg, NULL, &other, NULL, NULL, 0), STORE_ERR_INVALID);
    ck_assert_ptr_null(other);
    remove_dir(dir);
}
END_TEST

START_TEST(test_large_message_is_recovered_whole)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "big", "");
    size_t len = 3u << 20; /* above the reader's read-ahead and the segment size */
    uint8_t *payload = malloc(len);
    ck_assert_ptr_nonnull(payload);
    for (size_t i = 0; i < len; i++)
        payload[i] = (uint8_t)(i * 7 + (i >> 12));
    ck_assert_int_eq(store_publish(st, text("big"), 0, no_meta, text(""),
                                   (struct ferry_bytes){ payload, len }, NULL, NULL), STORE_OK);
    publish(st, "big", "small one after");
    close_ok(st);

    struct seen seen = { 0 };
    st = open_with(&cfg, &seen, NULL);
    ck_assert_uint_eq(seen.count, 2);
    ck_assert_uint_eq(seen.messages[0].payload_len, len);
    ck_assert_uint_eq(seen.messages[0].payload_crc, crc32c(0, payload, len));
    ck_assert_str_eq(seen.messages[1].payload, "small one after");
    close_ok(st);
    free(payload);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_second_open_of_a_directory_is_refused_as_locked)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    struct store *st = open_with(&cfg, NULL, NULL);
    struct store *other;
    char err[256] = "";
    ck_assert_int_eq(store_open(&cfg, NULL, &other, NULL, err, sizeof err), STORE_ERR_LOCKED);
    ck_assert_ptr_null(other);
    ck_assert_ptr_nonnull(strstr(err, "in use"));
    close_ok(st);
    st = open_with(&cfg, NULL, NULL);
    close_ok(st);
    remove_dir(dir);
}
END_TEST

START_TEST(test_a_callback_can_stop_recovery_and_the_log_opens_again)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    publish(st, "q", "a");
    uint64_t b = publish(st, "q", "b");
    close_ok(st);

    struct seen seen = { .abort_at_id = b };
    struct store_recovery cb = recovery_of(&seen);
    char err[256] = "";
    ck_assert_int_eq(store_open(&cfg, &cb, &st, NULL, err, sizeof err), STORE_ERR_ABORTED);
    ck_assert_ptr_null(st);
    st = open_with(&cfg, &seen, NULL);
    ck_assert_uint_eq(seen.count, 2);
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

/* ---- torn tails and damage ---- */

/* The tail of the log, record by record, and what the log holds once each
 * of them is in: the live ids and the attempts of message 3. */
struct tail_step {
    uint64_t end;           /* file size once this record is written */
    uint64_t live[8];
    size_t live_count;
    uint32_t attempts_of_3;
};

START_TEST(test_torn_tail_at_every_byte_recovers_exactly_the_whole_records)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    char path[512];
    segment_path(path, sizeof path, dir, 1);
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    for (int i = 1; i <= 5; i++)
        publish(st, "q", "early");
    flush_ok(st);

    /* Five more records, one flush each, so that each one's end is known. */
    struct tail_step steps[6] = { { .end = file_size(path), .live = { 1, 2, 3, 4, 5 }, .live_count = 5 } };
    ck_assert_uint_eq(publish(st, "q", "six"), 6);
    flush_ok(st);
    steps[1] = (struct tail_step){ file_size(path), { 1, 2, 3, 4, 5, 6 }, 6, 0 };
    ck_assert_int_eq(store_ack(st, 2), STORE_OK);
    flush_ok(st);
    steps[2] = (struct tail_step){ file_size(path), { 1, 3, 4, 5, 6 }, 5, 0 };
    ck_assert_int_eq(store_set_attempts(st, 3, 7), STORE_OK);
    flush_ok(st);
    steps[3] = (struct tail_step){ file_size(path), { 1, 3, 4, 5, 6 }, 5, 7 };
    ck_assert_uint_eq(publish(st, "q", "seven"), 7);
    flush_ok(st);
    steps[4] = (struct tail_step){ file_size(path), { 1, 3, 4, 5, 6, 7 }, 6, 7 };
    ck_assert_int_eq(store_ack(st, 6), STORE_OK);
    flush_ok(st);
    steps[5] = (struct tail_step){ file_size(path), { 1, 3, 4, 5, 7 }, 5, 7 };
    close_ok(st);

    size_t len;
    uint8_t *whole = read_file(path, &len);
    ck_assert_uint_eq(len, steps[5].end);
    struct seen seen = { 0 };
    for (uint64_t cut = steps[0].end; cut <= steps[5].end; cut++) {
        empty_dir(dir);
        write_file(path, whole, cut);
        size_t k = 0;
        while (k < 5 && steps[k + 1].end <= cut)
            k++;
        const struct tail_step *want = &steps[k];

        struct store_report report;
        st = open_with(&cfg, &seen, &report);
        ck_assert_uint_eq(seen.count, want->live_count);
        for (size_t i = 0; i < want->live_count; i++) {
            ck_assert_uint_eq(seen.messages[i].id, want->live[i]);
            if (want->live[i] == 3)
                ck_assert_uint_eq(seen.messages[i].attempts, want->attempts_of_3);
        }
        ck_assert_uint_eq(report.truncated_bytes, cut - want->end);
        if (cut != want->end) {
            ck_assert_uint_eq(report.truncated_offset, want->end);
            ck_assert_str_eq(report.truncated_file, "0000000000000001.log");
        }
        ck_assert_uint_eq(report.problem_count, 0);
        ck_assert_uint_eq(file_size(path), want->end);

        /* The log goes on from there. */
        uint64_t id = publish(st, "q", "after the crash");
        ck_assert_uint_gt(id, want->live[want->live_count - 1]);
        close_ok(st);
        st = open_with(&cfg, &seen, &report);
        ck_assert_uint_eq(seen.count, want->live_count + 1);
        ck_assert_uint_eq(seen.messages[want->live_count].id, id);
        ck_assert_uint_eq(report.problem_count, 0);
        close_ok(st);
    }
    free(whole);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_flipped_byte_is_reported_with_file_and_offset_and_the_rest_recovered)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    char path[512];
    segment_path(path, sizeof path, dir, 1);
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    char payload[32];
    for (int i = 1; i <= 10; i++) {
        snprintf(payload, sizeof payload, "payload number %d", i);
        publish(st, "q", payload);
    }
    close_ok(st);

    size_t len;
    uint8_t *data = read_file(path, &len);
    uint64_t offs[16];
    ck_assert_uint_eq(record_offsets(data, len, offs, 16), 11); /* QUEUE + 10 PUBLISH */
    uint64_t victim = offs[5];                                   /* message 5 */
    data[victim + RECORD_HEADER_SIZE + 30] ^= 0x20;              /* inside its payload */
    write_file(path, data, len);

    struct seen seen = { 0 };
    struct store_report report;
    st = open_with(&cfg, &seen, &report);
    ck_assert_uint_eq(report.problem_count, 1);
    ck_assert_str_eq(report.problems[0].file, "0000000000000001.log");
    ck_assert_uint_eq(report.problems[0].offset, victim);
    ck_assert_ptr_nonnull(strstr(report.problems[0].what, "checksum"));
    ck_assert_uint_eq(report.damaged, 1);
    ck_assert_uint_eq(report.truncated_bytes, 0);
    ck_assert_uint_eq(seen.count, 9);
    for (size_t i = 0; i < seen.count; i++)
        ck_assert_uint_ne(seen.messages[i].id, 5);
    ck_assert_uint_eq(file_size(path), len); /* nothing cut */
    close_ok(st);
    free(data);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_implausible_length_stops_only_that_segment)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    cfg.segment_bytes = 4096;
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    char payload[200];
    memset(payload, 'p', sizeof payload - 1);
    payload[sizeof payload - 1] = '\0';
    for (int i = 0; i < 60; i++) {
        publish(st, "q", payload);
        flush_ok(st);
    }
    ck_assert_uint_ge(stats_of(st).segments, 3);
    close_ok(st);

    char path[512];
    segment_path(path, sizeof path, dir, 1);
    size_t len;
    uint8_t *data = read_file(path, &len);
    uint64_t offs[64];
    size_t n = record_offsets(data, len, offs, 64);
    ck_assert_uint_ge(n, 5);
    put_u32(data + offs[3], 0x7ffffff0u); /* the 3rd message's length */
    write_file(path, data, len);

    struct seen seen = { 0 };
    struct store_report report;
    st = open_with(&cfg, &seen, &report);
    ck_assert_uint_eq(report.problem_count, 1);
    ck_assert_str_eq(report.problems[0].file, "0000000000000001.log");
    ck_assert_uint_eq(report.problems[0].offset, offs[3]);
    /* Messages 1 and 2 and every message of the later segments. */
    ck_assert_uint_eq(seen.count, 60 - (n - 3));
    ck_assert_uint_eq(seen.messages[0].id, 1);
    ck_assert_uint_eq(seen.messages[1].id, 2);
    ck_assert_uint_eq(seen.messages[2].id, n);
    close_ok(st);
    free(data);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_zeroed_tail_left_by_a_power_loss_is_cut)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    char path[512];
    segment_path(path, sizeof path, dir, 1);
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    publish(st, "q", "one");
    publish(st, "q", "two");
    close_ok(st);
    size_t len;
    uint8_t *data = read_file(path, &len);
    uint8_t *longer = calloc(1, len + 8192); /* blocks allocated, never written */
    ck_assert_ptr_nonnull(longer);
    memcpy(longer, data, len);
    write_file(path, longer, len + 8192);

    struct seen seen = { 0 };
    struct store_report report;
    st = open_with(&cfg, &seen, &report);
    ck_assert_uint_eq(seen.count, 2);
    ck_assert_uint_eq(report.truncated_bytes, 8192);
    ck_assert_uint_eq(report.truncated_offset, len);
    ck_assert_uint_eq(report.problem_count, 0);
    close_ok(st);
    free(longer);
    free(data);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_damage_in_the_last_segment_is_kept_and_appends_go_to_a_new_one)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    char path[512];
    segment_path(path, sizeof path, dir, 1);
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    for (int i = 0; i < 6; i++)
        publish(st, "q", "message");
    close_ok(st);
    size_t len;
    uint8_t *data = read_file(path, &len);
    uint64_t offs[8];
    ck_assert_uint_eq(record_offsets(data, len, offs, 8), 7);
    put_u32(data + offs[3], 0); /* message 3: a length of 0, sound records after it */
    write_file(path, data, len);

    struct seen seen = { 0 };
    struct store_report report;
    st = open_with(&cfg, &seen, &report);
    ck_assert_uint_eq(report.problem_count, 1);
    ck_assert_uint_eq(report.problems[0].offset, offs[3]);
    ck_assert_uint_eq(report.truncated_bytes, 0);
    ck_assert_uint_eq(file_size(path), len); /* nothing that might be read is cut */
    ck_assert_uint_eq(seen.count, 2);
    publish(st, "q", "after");
    close_ok(st);
    segment_path(path, sizeof path, dir, 2);
    ck_assert_uint_gt(file_size(path), SEGMENT_HEADER_SIZE);
    st = open_with(&cfg, &seen, &report);
    ck_assert_uint_eq(seen.count, 3);
    ck_assert_str_eq(seen.messages[2].payload, "after");
    close_ok(st);
    free(data);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_unsound_segment_file_is_reported_and_ignored)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    publish(st, "q", "kept");
    close_ok(st);
    char path[512];
    segment_path(path, sizeof path, dir, 5);
    write_file(path, (const uint8_t *)"this is not a segment header, not at all....", 44);
    snprintf(path, sizeof path, "%s/0000000000000007.log.tmp", dir);
    write_file(path, (const uint8_t *)"half-made", 9);

    struct seen seen = { 0 };
    struct store_report report;
    st = open_with(&cfg, &seen, &report);
    ck_assert_uint_eq(report.problem_count, 1);
    ck_assert_str_eq(report.problems[0].file, "0000000000000005.log");
    ck_assert_uint_eq(seen.count, 1);
    ck_assert_int_eq(access(path, F_OK), -1); /* the creation cut short is gone */
    publish(st, "q", "new");
    close_ok(st);
    segment_path(path, sizeof path, dir, 6); /* appends went past the bad file */
    ck_assert_uint_gt(file_size(path), SEGMENT_HEADER_SIZE);
    st = open_with(&cfg, &seen, NULL);
    ck_assert_uint_eq(seen.count, 2);
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_segment_of_a_newer_format_refuses_to_open)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    close_ok(open_with(&cfg, NULL, NULL));
    uint8_t header[SEGMENT_HEADER_SIZE];
    struct segment_header h = { .version = SEGMENT_VERSION + 1, .seq = 2, .next_id = 1,
                                .next_queue_id = 1 };
    segment_header_encode(header, &h);
    char path[512];
    segment_path(path, sizeof path, dir, 2);
    write_file(path, header, sizeof header);

    struct store *st;
    char err[256] = "";
    ck_assert_int_eq(store_open(&cfg, NULL, &st, NULL, err, sizeof err), STORE_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(err, "version"));
    remove_dir(dir);
}
END_TEST

START_TEST(test_meta_comes_back_with_its_message_and_survives_compaction)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    cfg.segment_bytes = 4096;
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    uint64_t id = 0;
    ck_assert_int_eq(store_publish(st, text("q"), 0, text("meta!"), text("\x81\xa1k\xa1v"),
                                   text("with"), &id, NULL), STORE_OK);
    publish(st, "q", "plain");
    ck_assert_int_eq(store_set_attempts(st, id, 3), STORE_OK);
    flush_ok(st);
    char payload[100];
    memset(payload, 'c', sizeof payload - 1);
    payload[sizeof payload - 1] = '\0';
    for (int i = 0; i < 2000 && stats_of(st).segments_compacted == 0; i++) {
        uint64_t other = publish(st, "q", payload);
        flush_ok(st);
        ck_assert_int_eq(store_ack(st, other), STORE_OK);
    }
    ck_assert_uint_ge(stats_of(st).segments_compacted, 1);
    close_ok(st);

    struct seen seen = { 0 };
    struct store_report report;
    st = open_with(&cfg, &seen, &report);
    ck_assert_uint_eq(report.problem_count, 0);
    ck_assert_uint_eq(seen.count, 2);
    ck_assert_uint_eq(seen.messages[0].id, id);
    ck_assert_str_eq(seen.messages[0].meta, "meta!");
    ck_assert_str_eq(seen.messages[0].headers, "\x81\xa1k\xa1v");
    ck_assert_str_eq(seen.messages[0].payload, "with");
    ck_assert_uint_eq(seen.messages[0].attempts, 3);
    ck_assert_str_eq(seen.messages[1].meta, "");
    ck_assert_str_eq(seen.messages[1].payload, "plain");
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_a_rewritten_message_comes_back_once_with_its_new_meta_and_attempts)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    uint64_t first = publish(st, "q", "first");
    uint64_t id = publish(st, "q", "waits");
    publish(st, "q", "last");
    flush_ok(st);
    uint64_t live = stats_of(st).live_bytes;
    ck_assert_int_eq(store_rewrite(st, id, 4, text("wait!"), text(""), text("waits"), NULL),
                     STORE_OK);
    ck_assert_int_eq(store_rewrite(st, 999, 1, text("x"), text(""), text("x"), NULL), STORE_OK);
    flush_ok(st);
    /* The new record stands for the message; the old one is dead. */
    ck_assert_uint_eq(stats_of(st).live_bytes, live + 6);
    close_ok(st);

    struct seen seen = { 0 };
    struct store_report report;
    st = open_with(&cfg, &seen, &report);
    ck_assert_uint_eq(report.problem_count, 0);
    ck_assert_uint_eq(seen.count, 3);
    ck_assert_uint_eq(seen.messages[0].id, first);
    ck_assert_uint_eq(seen.messages[1].id, id); /* still in publish order */
    ck_assert_str_eq(seen.messages[1].meta, "wait!");
    ck_assert_str_eq(seen.messages[1].payload, "waits");
    ck_assert_uint_eq(seen.messages[1].attempts, 4);
    ck_assert_str_eq(seen.messages[2].payload, "last");
    /* An ack settles it, whichever record stood. */
    ck_assert_int_eq(store_ack(st, id), STORE_OK);
    close_ok(st);
    seen_reset(&seen);
    st = open_with(&cfg, &seen, NULL);
    ck_assert_uint_eq(seen.count, 2);
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

/* Rewrites segment `seq`'s header as format version 1 (whose records are
 * those of version 2 without PUBLISH meta). */
static void make_version_1(const char *dir, uint64_t seq)
{
    char path[512];
    segment_path(path, sizeof path, dir, seq);
    size_t len;
    uint8_t *data = read_file(path, &len);
    put_u32(data + 8, 1);
    put_u32(data + 36, crc32c(0, data, 36));
    write_file(path, data, len);
    free(data);
}

START_TEST(test_a_version_1_log_is_read_and_appends_go_to_a_new_version_2_segment)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "s=1");
    publish(st, "q", "old");
    close_ok(st);
    make_version_1(dir, 1);

    struct seen seen = { 0 };
    struct store_report report;
    st = open_with(&cfg, &seen, &report);
    ck_assert_uint_eq(report.problem_count, 0);
    ck_assert_uint_eq(seen.count, 1);
    ck_assert_str_eq(seen.messages[0].payload, "old");
    ck_assert_uint_eq(highest_segment(dir), 2); /* not appended to the old file */
    ck_assert_int_eq(store_publish(st, text("q"), 0, text("m"), text(""), text("new"), NULL, NULL),
                     STORE_OK);
    close_ok(st);
    char path[512];
    segment_path(path, sizeof path, dir, 2);
    size_t len;
    uint8_t *data = read_file(path, &len);
    ck_assert_uint_eq(get_u32(data + 8), SEGMENT_VERSION);
    free(data);

    seen_reset(&seen);
    st = open_with(&cfg, &seen, &report);
    ck_assert_uint_eq(seen.count, 2);
    ck_assert_str_eq(seen.messages[1].meta, "m");
    ck_assert_str_eq(seen.messages[1].payload, "new");
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

/* ---- reclaiming space ---- */

START_TEST(test_segments_roll_over_and_dead_ones_are_deleted)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    cfg.segment_bytes = 4096;
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    char payload[300];
    memset(payload, 'r', sizeof payload - 1);
    payload[sizeof payload - 1] = '\0';
    uint64_t ids[100];
    for (int i = 0; i < 100; i++) {
        ids[i] = publish(st, "q", payload);
        flush_ok(st);
    }
    size_t before = count_segments(dir);
    ck_assert_uint_ge(before, 7);
    ck_assert_uint_eq(stats_of(st).segments, before);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(store_ack(st, ids[i]), STORE_OK);
    flush_ok(st);
    /* The queue's record lives on: its segment is compacted, not kept. */
    ck_assert_uint_le(count_segments(dir), 2);
    struct store_stats s = stats_of(st);
    ck_assert_uint_ge(s.segments_deleted + s.segments_compacted, before - 2);
    ck_assert_uint_eq(s.messages, 0);
    close_ok(st);

    struct seen seen = { 0 };
    st = open_with(&cfg, &seen, NULL);
    ck_assert_uint_eq(seen.queue_count, 1);
    ck_assert_uint_eq(seen.count, 0);
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

START_TEST(test_live_bytes_count_what_is_still_needed)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    uint64_t queue_only = stats_of(st).live_bytes;
    uint64_t a = publish(st, "q", "0123456789");
    uint64_t one = stats_of(st).live_bytes - queue_only;
    ck_assert_uint_eq(one, RECORD_OVERHEAD + 21 + 10);
    publish(st, "q", "0123456789");
    ck_assert_uint_eq(stats_of(st).live_bytes, queue_only + 2 * one);
    ck_assert_int_eq(store_ack(st, a), STORE_OK);
    ck_assert_uint_eq(stats_of(st).live_bytes, queue_only + one);
    flush_ok(st);
    close_ok(st);
    st = open_with(&cfg, NULL, NULL);
    ck_assert_uint_eq(stats_of(st).live_bytes, queue_only + one);
    ck_assert_uint_eq(stats_of(st).messages, 1);
    close_ok(st);
    remove_dir(dir);
}
END_TEST

START_TEST(test_compaction_keeps_disk_bounded_with_one_old_unacked_message)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    cfg.segment_bytes = 4096;
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "old", "settings of old");
    declare(st, "idle", "settings of idle");
    declare(st, "busy", "");
    ck_assert_int_eq(store_end(st, text("idle"), NULL), STORE_OK);
    uint64_t old = publish(st, "old", "the one that stays");
    ck_assert_int_eq(store_set_attempts(st, old, 3), STORE_OK);
    flush_ok(st);

    char payload[100];
    memset(payload, 'b', sizeof payload - 1);
    payload[sizeof payload - 1] = '\0';
    size_t most = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t id = publish(st, "busy", payload);
        flush_ok(st);
        ck_assert_int_eq(store_ack(st, id), STORE_OK);
        if (i == 10000)
            ck_assert_int_eq(store_set_attempts(st, old, 4), STORE_OK);
        if (i % 50 == 0) {
            size_t n = count_segments(dir);
            most = n > most ? n : most;
            ck_assert_uint_le(stats_of(st).disk_bytes, 5 * 4096);
        }
    }
    flush_ok(st);
    /* 20000 records of 130 bytes went through about 600 segments. */
    ck_assert_uint_le(most, 4);
    struct store_stats s = stats_of(st);
    ck_assert_uint_gt(s.segments_compacted, 10);
    ck_assert_uint_gt(s.segments_deleted, 100);
    ck_assert_uint_eq(s.messages, 1);
    close_ok(st);

    struct seen seen = { 0 };
    st = open_with(&cfg, &seen, NULL);
    ck_assert_uint_eq(seen.queue_count, 3);
    ck_assert_str_eq(seen.queues[0], "old");
    ck_assert_str_eq(seen.settings[0], "settings of old");
    ck_assert_str_eq(seen.queues[1], "idle");
    ck_assert_str_eq(seen.settings[1], "settings of idle");
    ck_assert_uint_eq(seen.ended_count, 1);
    ck_assert_str_eq(seen.ended[0], "idle");
    ck_assert_uint_eq(seen.count, 1);
    ck_assert_uint_eq(seen.messages[0].id, old);
    ck_assert_uint_eq(seen.messages[0].attempts, 4);
    ck_assert_str_eq(seen.messages[0].payload, "the one that stays");
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

/* Copies every segment file of `from` that `to` lacks (all of them into
 * an empty `to`), except the one numbered `skip`. */
static void copy_missing_segments(const char *from, const char *to, uint64_t skip)
{
    char skipped[64];
    snprintf(skipped, sizeof skipped, "%016llx.log", (unsigned long long)skip);
    DIR *d = opendir(from);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    char src[512], dst[512];
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len <= 4 || strcmp(de->d_name + len - 4, ".log") != 0 ||
            strcmp(de->d_name, skipped) == 0)
            continue;
        snprintf(src, sizeof src, "%s/%s", from, de->d_name);
        snprintf(dst, sizeof dst, "%s/%s", to, de->d_name);
        if (access(dst, F_OK) == 0)
            continue;
        size_t size;
        uint8_t *data = read_file(src, &size);
        write_file(dst, data, size);
        free(data);
    }
    closedir(d);
}

START_TEST(test_message_copied_by_compaction_and_still_in_its_old_segment_comes_back_once)
{
    char *dir = make_dir();
    char *before = make_dir();
    struct store_config cfg = config(dir);
    cfg.segment_bytes = 4096;
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    uint64_t keep = publish(st, "q", "copied");
    flush_ok(st);

    char payload[100];
    memset(payload, 'c', sizeof payload - 1);
    payload[sizeof payload - 1] = '\0';
    for (int i = 0; i < 2000 && stats_of(st).segments_compacted == 0; i++) {
        /* The closed segments as they are before this flush; the active
         * one may change in it, so a copy of it would be no crash state. */
        empty_dir(before);
        copy_missing_segments(dir, before, highest_segment(dir));
        uint64_t id = publish(st, "q", payload);
        flush_ok(st);
        ck_assert_int_eq(store_ack(st, id), STORE_OK);
    }
    ck_assert_uint_eq(stats_of(st).segments_compacted, 1);
    close_ok(st);
    /* A crash after the copies were written, before any segment was
     * deleted: every file that flush deleted is still there. */
    char first[512];
    segment_path(first, sizeof first, dir, 1);
    ck_assert_int_eq(access(first, F_OK), -1);
    copy_missing_segments(before, dir, 0);
    ck_assert_int_eq(access(first, F_OK), 0);

    struct seen seen = { 0 };
    struct store_report report;
    st = open_with(&cfg, &seen, &report);
    ck_assert_uint_eq(report.problem_count, 0);
    ck_assert_uint_eq(seen.queue_count, 1);
    ck_assert_uint_eq(seen.count, 1);
    ck_assert_uint_eq(seen.messages[0].id, keep);
    ck_assert_str_eq(seen.messages[0].payload, "copied");
    close_ok(st);
    seen_reset(&seen);
    remove_dir(before);
    remove_dir(dir);
}
END_TEST

/* ---- disk limits and write errors ---- */

START_TEST(test_disk_limit_refuses_publishes_but_takes_acks_and_resumes)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    cfg.segment_bytes = 4096;
    cfg.max_bytes = 32u << 10;
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    char payload[200];
    memset(payload, 'f', sizeof payload - 1);
    payload[sizeof payload - 1] = '\0';
    uint64_t ids[400];
    size_t n = 0;
    enum store_status status = STORE_OK;
    while (n < 400) {
        status = store_publish(st, text("q"), 0, no_meta, text(""), text(payload), &ids[n], NULL);
        if (status != STORE_OK)
            break;
        n++;
        if (n % 10 == 0)
            flush_ok(st);
    }
    ck_assert_int_eq(status, STORE_ERR_FULL);
    ck_assert_ptr_nonnull(strstr(store_last_error(st), "limit"));
    ck_assert_uint_gt(n, 100);
    flush_ok(st);
    struct store_stats s = stats_of(st);
    ck_assert_uint_le(s.disk_bytes, cfg.max_bytes);
    ck_assert_uint_eq(s.refused_publishes, 1);

    /* Acks and attempts still go in, from the reserve. */
    ck_assert_int_eq(store_set_attempts(st, ids[n - 1], 2), STORE_OK);
    for (size_t i = 0; i + 1 < n; i++)
        ck_assert_int_eq(store_ack(st, ids[i]), STORE_OK);
    flush_ok(st);
    ck_assert_uint_lt(stats_of(st).disk_bytes, cfg.max_bytes / 2);
    uint64_t more = publish(st, "q", payload);
    flush_ok(st);
    close_ok(st);

    struct seen seen = { 0 };
    st = open_with(&cfg, &seen, NULL);
    ck_assert_uint_eq(seen.count, 2);
    ck_assert_uint_eq(seen.messages[0].id, ids[n - 1]);
    ck_assert_uint_eq(seen.messages[0].attempts, 2);
    ck_assert_uint_eq(seen.messages[1].id, more);
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

/* In a child, where a file size limit makes writes fail with EFBIG: exits
 * with the line of the first check that fails, 0 if all hold. */
#define CHILD_CHECK(cond) \
    do { \
        if (!(cond)) \
            _exit(__LINE__ & 0xff ? __LINE__ & 0xff : 1); \
    } while (0)

static void child_writes_past_a_file_size_limit(const char *dir)
{
    signal(SIGXFSZ, SIG_IGN);
    struct store_config cfg = config(dir);
    cfg.segment_bytes = 1u << 20;
    struct store *st;
    CHILD_CHECK(store_open(&cfg, NULL, &st, NULL, NULL, 0) == STORE_OK);
    CHILD_CHECK(store_declare(st, text("q"), text(""), NULL) == STORE_OK);
    for (int i = 0; i < 10; i++)
        CHILD_CHECK(store_publish(st, text("q"), 0, no_meta, text(""), text("before"), NULL, NULL) == STORE_OK);
    uint64_t confirmed = 0;
    CHILD_CHECK(store_flush(st, &confirmed) == STORE_OK);
    CHILD_CHECK(confirmed == store_last_lsn(st));

    char path[512];
    segment_path(path, sizeof path, dir, 1);
    struct stat sb;
    CHILD_CHECK(stat(path, &sb) == 0);
    struct rlimit lim;
    CHILD_CHECK(getrlimit(RLIMIT_FSIZE, &lim) == 0);
    rlim_t hard = lim.rlim_max;
    lim.rlim_cur = (rlim_t)sb.st_size + 1000;
    CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);

    char payload[200];
    memset(payload, 'z', sizeof payload - 1);
    payload[sizeof payload - 1] = '\0';
    for (int i = 0; i < 20; i++)
        CHILD_CHECK(store_publish(st, text("q"), 0, no_meta, text(""), text(payload), NULL, NULL) == STORE_OK);
    CHILD_CHECK(store_ack(st, 1) == STORE_OK);
    uint64_t before = confirmed;
    CHILD_CHECK(store_flush(st, &confirmed) == STORE_ERR_FULL);
    CHILD_CHECK(confirmed == before);
    CHILD_CHECK(strstr(store_last_error(st), "File too large") != NULL);
    struct store_stats s;
    store_stats(st, &s);
    CHILD_CHECK(s.write_errors == 1);
    CHILD_CHECK(s.refused_publishes == 20);
    CHILD_CHECK(s.messages == 9);
    CHILD_CHECK(stat(path, &sb) == 0 && (uint64_t)sb.st_size == s.disk_bytes); /* cut back */

    /* What fits still goes: the ack kept from the failed batch, and another. */
    CHILD_CHECK(store_ack(st, 2) == STORE_OK);
    CHILD_CHECK(store_flush(st, &confirmed) == STORE_OK);
    CHILD_CHECK(confirmed == store_last_lsn(st));

    /* Room again: publishes are back. */
    lim.rlim_cur = hard;
    CHILD_CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    for (int i = 0; i < 3; i++)
        CHILD_CHECK(store_publish(st, text("q"), 0, no_meta, text(""), text("after"), NULL, NULL) == STORE_OK);
    CHILD_CHECK(store_flush(st, &confirmed) == STORE_OK);
    CHILD_CHECK(store_close(st) == STORE_OK);
    _exit(0);
}

START_TEST(test_write_error_refuses_the_batch_keeps_the_log_sound_and_recovers)
{
    char *dir = make_dir();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        child_writes_past_a_file_size_limit(dir);
    int wstatus;
    ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
    ck_assert_msg(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0,
                  "child check failed at line %d (mod 256)", WEXITSTATUS(wstatus));

    struct store_config cfg = config(dir);
    cfg.segment_bytes = 1u << 20;
    struct seen seen = { 0 };
    struct store_report report;
    struct store *st = open_with(&cfg, &seen, &report);
    ck_assert_uint_eq(report.problem_count, 0);
    ck_assert_uint_eq(report.truncated_bytes, 0);
    ck_assert_uint_eq(seen.count, 8 + 3);
    for (size_t i = 0; i < 8; i++) {
        ck_assert_uint_eq(seen.messages[i].id, i + 3);
        ck_assert_str_eq(seen.messages[i].payload, "before");
    }
    for (size_t i = 8; i < 11; i++)
        ck_assert_str_eq(seen.messages[i].payload, "after");
    close_ok(st);
    seen_reset(&seen);
    remove_dir(dir);
}
END_TEST

/* ---- group commit and sync policies ---- */

START_TEST(test_group_commit_makes_one_write_and_one_sync_per_flush)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    cfg.sync = STORE_SYNC_ALWAYS;
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    struct store_stats before = stats_of(st);
    uint64_t lsn = 0;
    for (int i = 0; i < 500; i++)
        ck_assert_int_eq(store_publish(st, text("q"), 0, no_meta, text(""), text("batched"), NULL, &lsn),
                         STORE_OK);
    for (uint64_t id = 1; id <= 200; id++)
        ck_assert_int_eq(store_ack(st, id), STORE_OK);
    uint64_t confirmed = 0;
    ck_assert_int_eq(store_flush(st, &confirmed), STORE_OK);
    ck_assert_uint_ge(confirmed, lsn);
    struct store_stats after = stats_of(st);
    ck_assert_uint_eq(after.syncs - before.syncs, 1);
    ck_assert_uint_eq(after.writes - before.writes, 1);
    ck_assert_uint_eq(after.synced_lsn, store_last_lsn(st));

    /* Nothing new: no write, no sync. */
    ck_assert_int_eq(store_flush(st, &confirmed), STORE_OK);
    ck_assert_uint_eq(stats_of(st).syncs, after.syncs);
    ck_assert_uint_eq(stats_of(st).writes, after.writes);
    ck_assert_int_eq(store_next_sync_ms(st), -1);
    close_ok(st);
    remove_dir(dir);
}
END_TEST

START_TEST(test_interval_policy_confirms_at_write_and_syncs_when_the_interval_is_up)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    cfg.sync = STORE_SYNC_INTERVAL;
    cfg.sync_interval_ms = 200;
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    uint64_t lsn = 0, confirmed = 0;
    ck_assert_int_eq(store_publish(st, text("q"), 0, no_meta, text(""), text("x"), NULL, &lsn), STORE_OK);
    uint64_t syncs = stats_of(st).syncs;
    ck_assert_int_eq(store_flush(st, &confirmed), STORE_OK);
    ck_assert_uint_eq(confirmed, lsn);
    ck_assert_uint_eq(stats_of(st).syncs, syncs);
    int wait = store_next_sync_ms(st);
    ck_assert_int_gt(wait, 0);
    ck_assert_int_le(wait, 200);
    ck_assert_int_eq(store_tick(st), STORE_OK);
    ck_assert_uint_eq(stats_of(st).syncs, syncs);

    struct timespec pause = { 0, (long)(wait + 10) * 1000000L };
    nanosleep(&pause, NULL);
    ck_assert_int_eq(store_next_sync_ms(st), 0);
    ck_assert_int_eq(store_tick(st), STORE_OK);
    ck_assert_uint_eq(stats_of(st).syncs, syncs + 1);
    ck_assert_uint_eq(stats_of(st).synced_lsn, lsn);
    ck_assert_int_eq(store_next_sync_ms(st), -1);
    close_ok(st);
    remove_dir(dir);
}
END_TEST

START_TEST(test_never_policy_confirms_at_write_and_never_syncs)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    cfg.segment_bytes = 4096;
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    for (int i = 0; i < 100; i++) {
        uint64_t lsn = 0, confirmed = 0;
        uint64_t id = 0;
        ck_assert_int_eq(store_publish(st, text("q"), 0, no_meta, text(""), text("n"), &id, &lsn), STORE_OK);
        ck_assert_int_eq(store_flush(st, &confirmed), STORE_OK);
        ck_assert_uint_ge(confirmed, lsn);
        ck_assert_int_eq(store_ack(st, id), STORE_OK);
    }
    ck_assert_int_eq(store_next_sync_ms(st), -1);
    ck_assert_uint_eq(stats_of(st).syncs, 0);
    close_ok(st);
    remove_dir(dir);
}
END_TEST

START_TEST(test_commit_syncs_only_batches_that_ask_and_times_interval_batches)
{
    char *dir = make_dir();
    struct store_config cfg = config(dir);
    cfg.sync = STORE_SYNC_ALWAYS; /* the log's own syncs; each batch says its own */
    cfg.sync_interval_ms = 200;
    struct store *st = open_with(&cfg, NULL, NULL);
    declare(st, "q", "");
    uint64_t lsn = 0, written = 0, synced = 0;
    uint64_t syncs = stats_of(st).syncs;

    /* A NEVER batch: written, not synced, no timer. */
    ck_assert_int_eq(store_publish(st, text("q"), 0, no_meta, text(""), text("n"), NULL, &lsn), STORE_OK);
    ck_assert_int_eq(store_commit(st, STORE_SYNC_NEVER, &written, &synced), STORE_OK);
    ck_assert_uint_eq(written, lsn);
    ck_assert_uint_lt(synced, lsn);
    ck_assert_uint_eq(stats_of(st).syncs, syncs);
    ck_assert_int_eq(store_next_sync_ms(st), -1);

    /* An INTERVAL batch: written now, synced by the tick once the interval is up. */
    ck_assert_int_eq(store_publish(st, text("q"), 0, no_meta, text(""), text("i"), NULL, &lsn), STORE_OK);
    ck_assert_int_eq(store_commit(st, STORE_SYNC_INTERVAL, &written, &synced), STORE_OK);
    ck_assert_uint_eq(written, lsn);
    int wait = store_next_sync_ms(st);
    ck_assert_int_ge(wait, 0);
    ck_assert_int_le(wait, 200);
    struct timespec pause = { 0, (long)(wait + 10) * 1000000L };
    nanosleep(&pause, NULL);
    ck_assert_int_eq(store_tick(st), STORE_OK);
    ck_assert_uint_eq(stats_of(st).syncs, syncs + 1);
    ck_assert_uint_eq(stats_of(st).synced_lsn, lsn);
    ck_assert_int_eq(store_next_sync_ms(st), -1);

    /* An ALWAYS batch: one fdatasync in the commit, for the whole batch. */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(store_publish(st, text("q"), 0, no_meta, text(""), text("a"), NULL, &lsn),
                         STORE_OK);
    ck_assert_int_eq(store_commit(st, STORE_SYNC_ALWAYS, &written, &synced), STORE_OK);
    ck_assert_uint_eq(synced, lsn);
    ck_assert_uint_eq(written, lsn);
    ck_assert_uint_eq(stats_of(st).syncs, syncs + 2);
    close_ok(st);
    remove_dir(dir);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");

    TCase *crc = tcase_create("crc32c");
    tcase_add_test(crc, test_crc32c_matches_the_standard_check_value);
    tcase_add_test(crc, test_crc32c_instruction_and_software_agree_and_continue);
    suite_add_tcase(s, crc);

    TCase *replay = tcase_create("replay");
    tcase_add_test(replay, test_unacked_messages_come_back_in_order_with_attempts);
    tcase_add_test(replay, test_appends_reach_the_file_only_at_flush_and_close_flushes);
    tcase_add_test(replay, test_ids_are_never_reused_after_the_log_is_emptied);
    tcase_add_test(replay, test_deleted_queue_loses_its_messages_and_its_name_starts_afresh);
    tcase_add_test(replay, test_ended_queues_come_back_ended_after_their_messages);
    tcase_add_test(replay, test_redeclaring_with_new_settings_logs_them_and_same_settings_log_nothing);
    tcase_add_test(replay, test_bad_arguments_are_refused);
    tcase_add_test(replay, test_large_message_is_recovered_whole);
    tcase_add_test(replay, test_second_open_of_a_directory_is_refused_as_locked);
    tcase_add_test(replay, test_a_callback_can_stop_recovery_and_the_log_opens_again);
    suite_add_tcase(s, replay);

    TCase *damage = tcase_create("damage");
    tcase_set_timeout(damage, 60);
    tcase_add_test(damage, test_torn_tail_at_every_byte_recovers_exactly_the_whole_records);
    tcase_add_test(damage, test_flipped_byte_is_reported_with_file_and_offset_and_the_rest_recovered);
    tcase_add_test(damage, test_implausible_length_stops_only_that_segment);
    tcase_add_test(damage, test_zeroed_tail_left_by_a_power_loss_is_cut);
    tcase_add_test(damage, test_damage_in_the_last_segment_is_kept_and_appends_go_to_a_new_one);
    tcase_add_test(damage, test_unsound_segment_file_is_reported_and_ignored);
    tcase_add_test(damage, test_segment_of_a_newer_format_refuses_to_open);
    tcase_add_test(damage, test_meta_comes_back_with_its_message_and_survives_compaction);
    tcase_add_test(damage, test_a_rewritten_message_comes_back_once_with_its_new_meta_and_attempts);
    tcase_add_test(damage, test_a_version_1_log_is_read_and_appends_go_to_a_new_version_2_segment);
    suite_add_tcase(s, damage);

    TCase *space = tcase_create("space");
    tcase_set_timeout(space, 60);
    tcase_add_test(space, test_segments_roll_over_and_dead_ones_are_deleted);
    tcase_add_test(space, test_live_bytes_count_what_is_still_needed);
    tcase_add_test(space, test_compaction_keeps_disk_bounded_with_one_old_unacked_message);
    tcase_add_test(space, test_message_copied_by_compaction_and_still_in_its_old_segment_comes_back_once);
    tcase_add_test(space, test_disk_limit_refuses_publishes_but_takes_acks_and_resumes);
    tcase_add_test(space, test_write_error_refuses_the_batch_keeps_the_log_sound_and_recovers);
    suite_add_tcase(s, space);

    TCase *sync = tcase_create("sync");
    tcase_add_test(sync, test_group_commit_makes_one_write_and_one_sync_per_flush);
    tcase_add_test(sync, test_interval_policy_confirms_at_write_and_syncs_when_the_interval_is_up);
    tcase_add_test(sync, test_never_policy_confirms_at_write_and_never_syncs);
    tcase_add_test(sync, test_commit_syncs_only_batches_that_ask_and_times_interval_batches);
    suite_add_tcase(s, sync);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
