/*
 * store_queue.c - the durable log's queues and their table: two linear-
 * probing arrays of pointers, one keyed by name, one by id, kept the same
 * size. Knows nothing of messages or files.
 */
#include "store_queue.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define MIN_SLOTS 16u

/* ---- one queue ---- */

static uint8_t *copy_bytes(struct ferry_bytes b)
{
    if (b.len == 0)
        return NULL;
    uint8_t *copy = malloc(b.len);
    if (copy != NULL)
        memcpy(copy, b.ptr, b.len);
    return copy;
}

struct store_queue *store_queue_new(uint32_t id, struct ferry_bytes name, struct ferry_bytes settings)
{
    struct store_queue *q = calloc(1, sizeof *q + name.len);
    if (q == NULL)
        return NULL;
    q->settings = copy_bytes(settings);
    if (settings.len > 0 && q->settings == NULL) {
        free(q);
        return NULL;
    }
    q->id = id;
    q->settings_len = (uint32_t)settings.len;
    q->name_len = (uint8_t)name.len;
    memcpy(q->name, name.ptr, name.len);
    return q;
}

void store_queue_free(struct store_queue *q)
{
    if (q == NULL)
        return;
    free(q->settings);
    free(q);
}

int store_queue_set_settings(struct store_queue *q, struct ferry_bytes settings)
{
    uint8_t *copy = copy_bytes(settings);
    if (settings.len > 0 && copy == NULL)
        return -1;
    free(q->settings);
    q->settings = copy; /* the queue owns the copy from here */
    q->settings_len = (uint32_t)settings.len;
    return 0;
}

bool store_queue_settings_equal(const struct store_queue *q, struct ferry_bytes settings)
{
    return settings.len == q->settings_len &&
           (settings.len == 0 || memcmp(settings.ptr, q->settings, settings.len) == 0);
}

struct ferry_bytes store_queue_name(const struct store_queue *q)
{
    return (struct ferry_bytes){ q->name, q->name_len };
}

struct ferry_bytes store_queue_settings(const struct store_queue *q)
{
    return (struct ferry_bytes){ q->settings, q->settings_len };
}

/* ---- the table ---- */

static size_t name_home(const struct queue_table *t, struct ferry_bytes name)
{
    return (size_t)hash_bytes(name, t->seed) & t->mask;
}

static size_t id_home(const struct queue_table *t, uint32_t id)
{
    return (size_t)hash_u64(id, t->seed) & t->mask;
}

static bool same_name(const struct store_queue *q, struct ferry_bytes name)
{
    return q->name_len == name.len && memcmp(q->name, name.ptr, name.len) == 0;
}

void queue_table_init(struct queue_table *t, uint64_t seed)
{
    *t = (struct queue_table){ .seed = seed };
}

void queue_table_free(struct queue_table *t)
{
    size_t slots = queue_table_slot_count(t);
    for (size_t i = 0; i < slots; i++)
        store_queue_free(t->by_id[i]);
    free(t->by_name);
    free(t->by_id);
    queue_table_init(t, t->seed);
}

static void place(struct queue_table *t, struct store_queue *q)
{
    size_t at = name_home(t, store_queue_name(q));
    while (t->by_name[at] != NULL)
        at = (at + 1) & t->mask;
    t->by_name[at] = q;
    at = id_home(t, q->id);
    while (t->by_id[at] != NULL)
        at = (at + 1) & t->mask;
    t->by_id[at] = q;
}

int queue_table_reserve(struct queue_table *t)
{
    size_t slots = queue_table_slot_count(t);
    if ((t->count + 1) * 2 <= slots)
        return 0;
    size_t grown = slots == 0 ? MIN_SLOTS : slots * 2;
    struct store_queue **by_name = calloc(grown, sizeof *by_name);
    struct store_queue **by_id = calloc(grown, sizeof *by_id);
    if (by_name == NULL || by_id == NULL) {
        free(by_name);
        free(by_id);
        return -1;
    }
    struct store_queue **old = t->by_id;
    free(t->by_name);
    t->by_name = by_name;
    t->by_id = by_id;
    t->mask = grown - 1;
    for (size_t i = 0; i < slots; i++)
        if (old[i] != NULL)
            place(t, old[i]);
    free(old);
    return 0;
}

void queue_table_insert(struct queue_table *t, struct store_queue *q)
{
    place(t, q);
    t->count++;
}

/* Empties slot `hole` of one array and moves back the entries of its
 * probe run that may move (linear probing's deletion without tombstones). */
static void remove_slot(struct queue_table *t, struct store_queue **slots, size_t hole,
                        bool by_name)
{
    size_t at = hole;
    for (;;) {
        at = (at + 1) & t->mask;
        struct store_queue *q = slots[at];
        if (q == NULL)
            break;
        size_t home = by_name ? name_home(t, store_queue_name(q)) : id_home(t, q->id);
        bool stays = hole <= at ? (hole < home && home <= at) : (hole < home || home <= at);
        if (stays)
            continue;
        slots[hole] = q;
        hole = at;
    }
    slots[hole] = NULL;
}

void queue_table_remove(struct queue_table *t, struct store_queue *q)
{
    size_t at = name_home(t, store_queue_name(q));
    while (t->by_name[at] != q)
        at = (at + 1) & t->mask;
    remove_slot(t, t->by_name, at, true);
    at = id_home(t, q->id);
    while (t->by_id[at] != q)
        at = (at + 1) & t->mask;
    remove_slot(t, t->by_id, at, false);
    t->count--;
}

struct store_queue *queue_table_find_name(const struct queue_table *t, struct ferry_bytes name)
{
    if (t->by_name == NULL)
        return NULL;
    for (size_t at = name_home(t, name); t->by_name[at] != NULL; at = (at + 1) & t->mask)
        if (same_name(t->by_name[at], name))
            return t->by_name[at];
    return NULL;
}

struct store_queue *queue_table_find_id(const struct queue_table *t, uint32_t id)
{
    if (t->by_id == NULL)
        return NULL;
    for (size_t at = id_home(t, id); t->by_id[at] != NULL; at = (at + 1) & t->mask)
        if (t->by_id[at]->id == id)
            return t->by_id[at];
    return NULL;
}
