/*
 * msg_index.c - the live-message table: id -> entry, linear probing.
 * Ids are handed out in sequence by the store, never by a client, so a
 * multiplicative (Fibonacci) hash spreads them without a secret seed.
 */
#include "msg_index.h"

#include <stdbool.h>
#include <stdlib.h>

#define MIN_SLOTS 64u

static size_t home_slot(const struct msg_index *ix, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 17) & ix->mask;
}

void msg_index_init(struct msg_index *ix)
{
    *ix = (struct msg_index){ 0 };
}

void msg_index_free(struct msg_index *ix)
{
    free(ix->slots);
    msg_index_init(ix);
}

/* Moves every entry into a new array of `slots` entries. */
static int rehash(struct msg_index *ix, size_t slots)
{
    struct msg_entry *fresh = calloc(slots, sizeof *fresh);
    if (fresh == NULL)
        return -1;
    struct msg_index next = { .slots = fresh, .mask = slots - 1, .count = ix->count };
    size_t old_slots = msg_index_slot_count(ix);
    for (size_t i = 0; i < old_slots; i++) {
        if (ix->slots[i].id == 0)
            continue;
        size_t at = home_slot(&next, ix->slots[i].id);
        while (fresh[at].id != 0)
            at = (at + 1) & next.mask;
        fresh[at] = ix->slots[i];
    }
    free(ix->slots);
    *ix = next;
    return 0;
}

int msg_index_reserve(struct msg_index *ix)
{
    size_t slots = msg_index_slot_count(ix);
    /* At most 3/4 full: probe runs stay short. */
    if ((ix->count + 1) * 4 <= slots * 3)
        return 0;
    return rehash(ix, slots == 0 ? MIN_SLOTS : slots * 2);
}

struct msg_entry *msg_index_insert(struct msg_index *ix, uint64_t id)
{
    size_t at = home_slot(ix, id);
    while (ix->slots[at].id != 0)
        at = (at + 1) & ix->mask;
    ix->slots[at] = (struct msg_entry){ .id = id };
    ix->count++;
    return &ix->slots[at];
}

struct msg_entry *msg_index_find(const struct msg_index *ix, uint64_t id)
{
    if (ix->slots == NULL || id == 0)
        return NULL;
    for (size_t at = home_slot(ix, id);; at = (at + 1) & ix->mask) {
        if (ix->slots[at].id == id)
            return &ix->slots[at];
        if (ix->slots[at].id == 0)
            return NULL;
    }
}

/* Whether `home` lies cyclically in (hole, at]: then the entry at `at`
 * may not move back into the hole, which would put it before its home. */
static bool home_between(size_t hole, size_t at, size_t home)
{
    if (hole <= at)
        return hole < home && home <= at;
    return hole < home || home <= at;
}

void msg_index_remove(struct msg_index *ix, struct msg_entry *e)
{
    size_t hole = (size_t)(e - ix->slots);
    size_t at = hole;
    for (;;) {
        at = (at + 1) & ix->mask;
        if (ix->slots[at].id == 0)
            break;
        if (home_between(hole, at, home_slot(ix, ix->slots[at].id)))
            continue;
        ix->slots[hole] = ix->slots[at];
        hole = at;
    }
    ix->slots[hole].id = 0;
    ix->count--;
}

void msg_index_shrink(struct msg_index *ix)
{
    size_t slots = msg_index_slot_count(ix);
    if (slots <= MIN_SLOTS || ix->count * 8 > slots)
        return;
    size_t target = slots;
    while (target > MIN_SLOTS && ix->count * 4 < target)
        target /= 2;
    (void)rehash(ix, target); /* on ENOMEM it simply stays larger */
}
