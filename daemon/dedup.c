/*
 * dedup.c - the duplicate-publish window (dedup.h): a ring of entries in
 * the order they were added, which is also the order they expire, and an
 * open-addressing index (linear probing, backward-shift deletion) from
 * (producer, id) to a ring position. Both are allocated once, at creation.
 */
#include "dedup.h"

#include <stdlib.h>

#include "hash.h"

struct dedup_entry {
    uint64_t producer; /* 0: forgotten (dedup_forget), only waits to leave the ring */
    uint64_t id;
    uint64_t lsn;
    uint64_t added_ms;
};

struct dedup {
    struct dedup_entry *ring; /* owned, cap entries */
    size_t cap, head, count;
    uint32_t *slots;          /* owned; 0 empty, else ring position + 1 */
    size_t mask;              /* slot count - 1; at least twice cap */
    uint64_t window_ms;
    uint64_t seed;
    uint64_t duplicates, evicted_early;
};

struct dedup *dedup_new(size_t max_entries, uint64_t window_ms)
{
    if (max_entries == 0 || max_entries > UINT32_MAX / 4)
        return NULL;
    size_t slots = 1;
    while (slots < 2 * max_entries)
        slots *= 2;
    struct dedup *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->ring = malloc(max_entries * sizeof *d->ring);
    d->slots = calloc(slots, sizeof *d->slots);
    if (!d->ring || !d->slots) {
        dedup_free(d);
        return NULL;
    }
    d->cap = max_entries;
    d->mask = slots - 1;
    d->window_ms = window_ms;
    d->seed = hash_random_seed();
    return d;
}

void dedup_free(struct dedup *d)
{
    if (!d)
        return;
    free(d->ring);
    free(d->slots);
    free(d);
}

void dedup_set_window(struct dedup *d, uint64_t window_ms)
{
    d->window_ms = window_ms;
}

static size_t home_of(const struct dedup *d, uint64_t producer, uint64_t id)
{
    return (size_t)hash_u64(producer ^ hash_u64(id, d->seed), d->seed) & d->mask;
}

/* The slot holding (producer, id), or the empty slot where it would go. */
static size_t probe(const struct dedup *d, uint64_t producer, uint64_t id)
{
    size_t i = home_of(d, producer, id);
    for (;;) {
        uint32_t s = d->slots[i];
        if (s == 0)
            return i;
        const struct dedup_entry *e = &d->ring[s - 1];
        if (e->producer == producer && e->id == id)
            return i;
        i = (i + 1) & d->mask;
    }
}

/* Empties slot i and shifts back the entries of its probe run, so that
 * every entry stays reachable from its home slot. */
static void slot_remove(struct dedup *d, size_t i)
{
    d->slots[i] = 0;
    size_t j = i;
    for (;;) {
        j = (j + 1) & d->mask;
        uint32_t s = d->slots[j];
        if (s == 0)
            return;
        const struct dedup_entry *e = &d->ring[s - 1];
        size_t k = home_of(d, e->producer, e->id);
        /* Moves to i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            d->slots[i] = s;
            d->slots[j] = 0;
            i = j;
        }
    }
}

/* Drops the oldest entry of the ring. */
static void pop_oldest(struct dedup *d)
{
    struct dedup_entry *e = &d->ring[d->head];
    if (e->producer != 0)
        slot_remove(d, probe(d, e->producer, e->id));
    d->head = (d->head + 1) % d->cap;
    d->count--;
}

static void expire(struct dedup *d, uint64_t now_ms)
{
    while (d->count > 0) {
        const struct dedup_entry *e = &d->ring[d->head];
        /* (now before added: a batch stamped at its read, handled late) */
        if (e->producer != 0 && (now_ms < e->added_ms || now_ms - e->added_ms < d->window_ms))
            return;
        pop_oldest(d);
    }
}

bool dedup_find(struct dedup *d, uint64_t producer, uint64_t id, uint64_t now_ms, uint64_t *lsn)
{
    expire(d, now_ms);
    uint32_t s = d->slots[probe(d, producer, id)];
    if (s == 0)
        return false;
    *lsn = d->ring[s - 1].lsn;
    d->duplicates++;
    return true;
}

void dedup_add(struct dedup *d, uint64_t producer, uint64_t id, uint64_t lsn, uint64_t now_ms)
{
    if (producer == 0)
        return;
    expire(d, now_ms);
    if (d->slots[probe(d, producer, id)] != 0)
        return;
    if (d->count == d->cap) {
        if (d->ring[d->head].producer != 0)
            d->evicted_early++;
        pop_oldest(d);
    }
    size_t pos = (d->head + d->count) % d->cap;
    d->ring[pos] = (struct dedup_entry){ producer, id, lsn, now_ms };
    d->count++;
    d->slots[probe(d, producer, id)] = (uint32_t)pos + 1;
}

void dedup_forget(struct dedup *d, uint64_t producer, uint64_t id)
{
    size_t i = probe(d, producer, id);
    uint32_t s = d->slots[i];
    if (s == 0)
        return;
    d->ring[s - 1].producer = 0; /* leaves the ring with its turn */
    slot_remove(d, i);
}

void dedup_stats(const struct dedup *d, struct dedup_stats *out)
{
    *out = (struct dedup_stats){
        .entries = d->count, .duplicates = d->duplicates, .evicted_early = d->evicted_early,
    };
}
