/*
 * tags.c - the table of deliveries in flight on one session (see tags.h).
 * At most half the slots are used, so every probe ends at an empty slot;
 * removal shifts the following entries back instead of leaving tombstones.
 * Tags are chosen by the server (counting up), so no secret seed is needed.
 * They are still hashed: with the tag itself as home slot, the window of
 * tags in flight forms one long probe run, and every removal would walk
 * it (measured: half of ferryd's CPU at 1,024 in flight).
 */
#include "tags.h"

#include <stdlib.h>

#include "core_alloc.h"
#include "hash.h"

#define TAGS_MIN_SLOTS 16u

void tags_init(struct tag_table *t)
{
    *t = (struct tag_table){ 0 };
}

void tags_free(struct tag_table *t)
{
    free(t->slots);
    *t = (struct tag_table){ 0 };
}

static size_t slot_count(const struct tag_table *t)
{
    return t->slots == NULL ? 0 : t->mask + 1;
}

static size_t home_slot(const struct tag_table *t, uint64_t tag)
{
    return (size_t)hash_u64(tag, 0) & t->mask;
}

/* The slot holding `tag`, or the empty slot where it would go. */
static size_t find_slot(const struct tag_table *t, uint64_t tag)
{
    size_t i = home_slot(t, tag);
    while (t->slots[i].tag != 0 && t->slots[i].tag != tag)
        i = (i + 1) & t->mask;
    return i;
}

static int resize(struct tag_table *t, size_t new_count)
{
    struct tag_entry *old = t->slots;
    size_t old_count = slot_count(t);
    struct tag_entry *fresh = core_calloc(new_count, sizeof *fresh);
    if (fresh == NULL)
        return -1;
    t->slots = fresh;
    t->mask = new_count - 1;
    for (size_t i = 0; i < old_count; i++) {
        if (old[i].tag != 0)
            t->slots[find_slot(t, old[i].tag)] = old[i];
    }
    free(old);
    return 0;
}

int tags_reserve(struct tag_table *t)
{
    size_t slots = slot_count(t);
    if ((t->count + 1) * 2 <= slots)
        return 0;
    return resize(t, slots == 0 ? TAGS_MIN_SLOTS : slots * 2);
}

void tags_insert(struct tag_table *t, uint64_t tag, struct message *m, struct consumer *c)
{
    size_t i = find_slot(t, tag);
    t->slots[i] = (struct tag_entry){ tag, m, c };
    t->count++;
}

/* Empties slot `hole`, moving back each following entry of the probe run
 * whose home slot is not between the hole and itself. */
static void remove_at(struct tag_table *t, size_t hole)
{
    size_t j = hole;
    for (;;) {
        j = (j + 1) & t->mask;
        if (t->slots[j].tag == 0)
            break;
        size_t home = home_slot(t, t->slots[j].tag);
        if (((j - home) & t->mask) >= ((j - hole) & t->mask)) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole] = (struct tag_entry){ 0 };
}

struct tag_entry *tags_find(struct tag_table *t, uint64_t tag)
{
    if (t->count == 0 || tag == 0)
        return NULL;
    size_t i = find_slot(t, tag);
    return t->slots[i].tag != 0 ? &t->slots[i] : NULL;
}

bool tags_take(struct tag_table *t, uint64_t tag, struct tag_entry *out)
{
    if (t->count == 0 || tag == 0)
        return false;
    size_t i = find_slot(t, tag);
    if (t->slots[i].tag == 0)
        return false;
    *out = t->slots[i];
    remove_at(t, i);
    t->count--;
    size_t slots = slot_count(t);
    if (slots > TAGS_MIN_SLOTS && t->count * 8 < slots)
        (void)resize(t, slots / 2); /* if this fails the larger table serves as well */
    return true;
}

size_t tags_drain(struct tag_table *t, struct tag_entry **entries)
{
    size_t kept = 0;
    size_t slots = slot_count(t);
    for (size_t i = 0; i < slots; i++) {
        if (t->slots[i].tag != 0)
            t->slots[kept++] = t->slots[i];
    }
    *entries = t->slots;
    return kept;
}
