/*
 * idmap.c - open-addressing map of nonzero ids to pointers (see idmap.h).
 * At most half the slots are used, so every probe ends at an empty slot;
 * removal shifts the following entries back instead of leaving tombstones.
 */
#include "idmap.h"

#include <stdlib.h>

#include "core_alloc.h"
#include "hash.h"

#define ID_MAP_MIN_SLOTS 8u

void id_map_init(struct id_map *m, uint64_t seed)
{
    *m = (struct id_map){ .seed = seed };
}

void id_map_free(struct id_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->mask = 0;
    m->count = 0;
}

static size_t slot_count(const struct id_map *m)
{
    return m->slots == NULL ? 0 : m->mask + 1;
}

static size_t home_slot(const struct id_map *m, uint64_t id)
{
    return (size_t)hash_u64(id, m->seed) & m->mask;
}

/* The slot holding `id`, or the empty slot where it would go. */
static size_t find_slot(const struct id_map *m, uint64_t id)
{
    size_t i = home_slot(m, id);
    while (m->slots[i].id != 0 && m->slots[i].id != id)
        i = (i + 1) & m->mask;
    return i;
}

static int resize(struct id_map *m, size_t new_count)
{
    struct id_slot *old = m->slots;
    size_t old_count = slot_count(m);
    struct id_slot *fresh = core_calloc(new_count, sizeof *fresh);
    if (fresh == NULL)
        return -1;
    m->slots = fresh;
    m->mask = new_count - 1;
    for (size_t i = 0; i < old_count; i++) {
        if (old[i].id != 0)
            m->slots[find_slot(m, old[i].id)] = old[i];
    }
    free(old);
    return 0;
}

void *id_map_get(const struct id_map *m, uint64_t id)
{
    if (m->count == 0 || id == 0)
        return NULL;
    return m->slots[find_slot(m, id)].value;
}

int id_map_reserve(struct id_map *m)
{
    size_t slots = slot_count(m);
    if ((m->count + 1) * 2 <= slots)
        return 0;
    return resize(m, slots == 0 ? ID_MAP_MIN_SLOTS : slots * 2);
}

void id_map_put(struct id_map *m, uint64_t id, void *value)
{
    size_t i = find_slot(m, id);
    m->slots[i] = (struct id_slot){ id, value };
    m->count++;
}

/* Empties slot i, moving back each following entry of the probe run whose
 * home slot is not between the hole and itself, so lookups still find it. */
static void remove_at(struct id_map *m, size_t hole)
{
    size_t j = hole;
    for (;;) {
        j = (j + 1) & m->mask;
        if (m->slots[j].id == 0)
            break;
        size_t home = home_slot(m, m->slots[j].id);
        if (((j - home) & m->mask) >= ((j - hole) & m->mask)) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole] = (struct id_slot){ 0, NULL };
}

void *id_map_remove(struct id_map *m, uint64_t id)
{
    if (m->count == 0 || id == 0)
        return NULL;
    size_t i = find_slot(m, id);
    if (m->slots[i].id == 0)
        return NULL;
    void *value = m->slots[i].value;
    remove_at(m, i);
    m->count--;
    size_t slots = slot_count(m);
    if (slots > ID_MAP_MIN_SLOTS && m->count * 8 < slots)
        (void)resize(m, slots / 2); /* if this fails the larger table serves as well */
    return value;
}
