/*
 * store_bench.c - the durable log (daemon/store.h) alone, without ferryd:
 * append throughput under each sync policy (publishes in batches, one
 * store_flush per batch, as the daemon does once per loop iteration), the
 * time to recover a log of N unacked messages, disk bytes per message,
 * and acking them all. A benchmark, not a test: it never fails on a timing.
 *
 *   store-bench [-n messages] [-s payload bytes] [-b batch] [-d parent dir]
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include "store.h"

struct options {
    uint64_t messages;
    size_t payload;
    size_t batch;
    const char *parent;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, enum store_status status, const char *detail)
{
    fprintf(stderr, "store-bench: %s: %s (%s)\n", what, store_strerror(status), detail);
    exit(1);
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    char path[1024];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static struct store *open_store(const char *dir, enum store_sync sync,
                                const struct store_recovery *cb, struct store_report *report)
{
    struct store_config cfg = { .dir = dir, .sync = sync, .sync_interval_ms = 100 };
    struct store *st;
    char err[256] = "";
    enum store_status status = store_open(&cfg, cb, &st, report, err, sizeof err);
    if (status != STORE_OK)
        die("open", status, err);
    return st;
}

static const struct ferry_bytes queue = { (const uint8_t *)"bench", 5 };

/* Publishes every message, one flush per batch; prints the rate. */
static void append_run(struct store *st, const char *label, const struct options *o,
                       const uint8_t *payload)
{
    struct store_stats before, after;
    store_stats(st, &before);
    double t0 = now_s();
    uint64_t confirmed = 0;
    for (uint64_t i = 0; i < o->messages; i++) {
        enum store_status status = store_publish(st, queue, 0, (struct ferry_bytes){ NULL, 0 }, (struct ferry_bytes){ NULL, 0 },
                                                 (struct ferry_bytes){ payload, o->payload },
                                                 NULL, NULL);
        if (status != STORE_OK)
            die("publish", status, store_last_error(st));
        if ((i + 1) % o->batch == 0 || i + 1 == o->messages) {
            status = store_flush(st, &confirmed);
            if (status != STORE_OK)
                die("flush", status, store_last_error(st));
        }
    }
    double secs = now_s() - t0;
    store_stats(st, &after);
    printf("append %-8s %8" PRIu64 " msgs %7.3f s %9.0f msg/s %7.1f MB/s  writes %" PRIu64
           " syncs %" PRIu64 "%s\n",
           label, o->messages, secs, (double)o->messages / secs,
           (double)(after.disk_bytes - before.disk_bytes) / secs / 1e6,
           after.writes - before.writes, after.syncs - before.syncs,
           confirmed == store_last_lsn(st) ? "" : "  (NOT ALL CONFIRMED)");
}

static bool count_message(void *arg, struct ferry_bytes q, uint64_t id, uint32_t attempts,
                          struct ferry_bytes meta, struct ferry_bytes headers,
                          struct ferry_bytes payload)
{
    (void)q, (void)id, (void)attempts, (void)meta, (void)headers, (void)payload;
    (*(uint64_t *)arg)++;
    return true;
}

int main(int argc, char **argv)
{
    struct options o = { .messages = 1000000, .payload = 100, .batch = 1000, .parent = "/tmp" };
    int opt;
    while ((opt = getopt(argc, argv, "n:s:b:d:")) != -1) {
        switch (opt) {
        case 'n': o.messages = strtoull(optarg, NULL, 10); break;
        case 's': o.payload = strtoul(optarg, NULL, 10); break;
        case 'b': o.batch = strtoul(optarg, NULL, 10); break;
        case 'd': o.parent = optarg; break;
        default:
            fprintf(stderr, "usage: store-bench [-n messages] [-s payload] [-b batch] [-d dir]\n");
            return 2;
        }
    }
    if (o.messages == 0 || o.batch == 0) {
        fprintf(stderr, "store-bench: -n and -b must be positive\n");
        return 2;
    }
    uint8_t *payload = malloc(o.payload + 1);
    if (payload == NULL)
        return 1;
    for (size_t i = 0; i < o.payload; i++)
        payload[i] = (uint8_t)('a' + i % 26);
    printf("store-bench: %" PRIu64 " messages of %zu bytes, one flush per %zu, under %s\n",
           o.messages, o.payload, o.batch, o.parent);

    static const struct { const char *name; enum store_sync sync; } policies[] = {
        { "never", STORE_SYNC_NEVER },
        { "interval", STORE_SYNC_INTERVAL },
        { "always", STORE_SYNC_ALWAYS },
    };
    char dir[1024];
    for (size_t p = 0; p < sizeof policies / sizeof policies[0]; p++) {
        snprintf(dir, sizeof dir, "%s/store-bench-XXXXXX", o.parent);
        if (mkdtemp(dir) == NULL) {
            perror("store-bench: mkdtemp");
            return 1;
        }
        struct store *st = open_store(dir, policies[p].sync, NULL, NULL);
        if (store_declare(st, queue, (struct ferry_bytes){ NULL, 0 }, NULL) != STORE_OK)
            die("declare", STORE_ERR_IO, store_last_error(st));
        append_run(st, policies[p].name, &o, payload);
        store_close(st);
        if (policies[p].sync != STORE_SYNC_NEVER) {
            remove_tree(dir);
            continue;
        }

        /* Recovery of everything just published (pages likely cached). */
        uint64_t seen = 0;
        struct store_recovery cb = { .arg = &seen, .on_message = count_message };
        struct store_report report;
        double t0 = now_s();
        st = open_store(dir, STORE_SYNC_NEVER, &cb, &report);
        double secs = now_s() - t0;
        struct store_stats s;
        store_stats(st, &s);
        printf("recover %" PRIu64 " msgs %7.3f s %9.0f msg/s  (%" PRIu64 " segments, %.1f MB read)\n",
               seen, secs, (double)seen / secs, report.segments, (double)report.bytes / 1e6);
        printf("disk    %.1f bytes per message of %zu payload bytes (%" PRIu64 " bytes live of %" PRIu64 ")\n",
               (double)s.disk_bytes / (double)o.messages, o.payload, s.live_bytes, s.disk_bytes);

        /* Acking everything, one flush per batch: segments are reclaimed. */
        t0 = now_s();
        for (uint64_t id = 1; id <= o.messages; id++) {
            store_ack(st, id);
            if (id % o.batch == 0)
                store_flush(st, NULL);
        }
        store_flush(st, NULL);
        secs = now_s() - t0;
        store_stats(st, &s);
        printf("ack     %8" PRIu64 " msgs %7.3f s %9.0f msg/s  (then %" PRIu64 " segments, %" PRIu64
               " bytes on disk)\n",
               o.messages, secs, (double)o.messages / secs, s.segments, s.disk_bytes);
        store_close(st);
        remove_tree(dir);
    }
    free(payload);
    return 0;
}
