/*
 * queue_map.c - queues by name (see queue_map.h). At most half the slots
 * are used, so every probe ends at an empty slot; removal shifts the
 * following entries back instead of leaving tombstones.
 */
#include "queue_map.h"

#include <stdlib.h>
#include <string.h>

#include "core_alloc.h"
#include "hash.h"
#include "queue.h"

#define QUEUE_MAP_MIN_SLOTS 16u

void queue_map_init(struct queue_map *m, uint64_t seed)
{
    *m = (struct queue_map){ .seed = seed };
}

void queue_map_free(struct queue_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->mask = 0;
    m->count = 0;
}

size_t queue_map_count(const struct queue_map *m)
{
    return m->count;
}

size_t queue_map_slot_count(const struct queue_map *m)
{
    return m->slots == NULL ? 0 : m->mask + 1;
}

struct queue *queue_map_slot(const struct queue_map *m, size_t i)
{
    return m->slots[i].queue;
}

static bool same_name(const struct queue *q, struct ferry_bytes name)
{
    return q->name_len == name.len && memcmp(q->name, name.ptr, name.len) == 0;
}

/* The slot holding `name`, or the empty slot where it would go. */
static size_t find_slot(const struct queue_map *m, struct ferry_bytes name, uint64_t hash)
{
    size_t i = (size_t)hash & m->mask;
    for (;;) {
        const struct queue_slot *s = &m->slots[i];
        if (s->queue == NULL || (s->hash == hash && same_name(s->queue, name)))
            return i;
        i = (i + 1) & m->mask;
    }
}

/* The empty slot where an entry of this hash goes (names are unique). */
static size_t free_slot(const struct queue_map *m, uint64_t hash)
{
    size_t i = (size_t)hash & m->mask;
    while (m->slots[i].queue != NULL)
        i = (i + 1) & m->mask;
    return i;
}

static int resize(struct queue_map *m, size_t new_count)
{
    struct queue_slot *old = m->slots;
    size_t old_count = queue_map_slot_count(m);
    struct queue_slot *fresh = core_calloc(new_count, sizeof *fresh);
    if (fresh == NULL)
        return -1;
    m->slots = fresh;
    m->mask = new_count - 1;
    for (size_t i = 0; i < old_count; i++) {
        if (old[i].queue != NULL)
            m->slots[free_slot(m, old[i].hash)] = old[i];
    }
    free(old);
    return 0;
}

struct queue *queue_map_find(const struct queue_map *m, struct ferry_bytes name)
{
    if (m->count == 0)
        return NULL;
    return m->slots[find_slot(m, name, hash_bytes(name, m->seed))].queue;
}

int queue_map_reserve(struct queue_map *m)
{
    size_t slots = queue_map_slot_count(m);
    if ((m->count + 1) * 2 <= slots)
        return 0;
    return resize(m, slots == 0 ? QUEUE_MAP_MIN_SLOTS : slots * 2);
}

void queue_map_insert(struct queue_map *m, struct queue *q)
{
    uint64_t hash = hash_bytes(queue_name(q), m->seed);
    m->slots[free_slot(m, hash)] = (struct queue_slot){ hash, q };
    m->count++;
}

/* Empties slot `hole`, moving back each following entry of the probe run
 * whose home slot is not between the hole and itself. */
static void remove_at(struct queue_map *m, size_t hole)
{
    size_t j = hole;
    for (;;) {
        j = (j + 1) & m->mask;
        if (m->slots[j].queue == NULL)
            break;
        size_t home = (size_t)m->slots[j].hash & m->mask;
        if (((j - home) & m->mask) >= ((j - hole) & m->mask)) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole] = (struct queue_slot){ 0, NULL };
}

void queue_map_remove(struct queue_map *m, struct queue *q)
{
    if (m->count == 0)
        return;
    struct ferry_bytes name = queue_name(q);
    size_t i = find_slot(m, name, hash_bytes(name, m->seed));
    if (m->slots[i].queue != q)
        return;
    remove_at(m, i);
    m->count--;
    size_t slots = queue_map_slot_count(m);
    if (slots > QUEUE_MAP_MIN_SLOTS && m->count * 8 < slots)
        (void)resize(m, slots / 2); /* if this fails the larger table serves as well */
}
