/*
 * dedup.h - the window of recent (producer, publish id) pairs that lets
 * ferryd drop a publish a reconnecting producer sends again. Bounded in
 * time and in entries; O(1) per lookup and per insert, no allocation after
 * creation. Pure: no sockets, no clock of its own (callers pass now).
 */
#ifndef FERRYD_DEDUP_H
#define FERRYD_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dedup;

/* A table of at most max_entries pairs, each kept window_ms. NULL on
 * ENOMEM. max_entries >= 1. */
struct dedup *dedup_new(size_t max_entries, uint64_t window_ms);
void dedup_free(struct dedup *d);
/* A reload: entries older than the new window go at the next lookup. */
void dedup_set_window(struct dedup *d, uint64_t window_ms);

/* true if (producer, id) was added within the window before now_ms; *lsn
 * then tells the journal position its publish waited for (0: none). */
bool dedup_find(struct dedup *d, uint64_t producer, uint64_t id, uint64_t now_ms, uint64_t *lsn);
/* Remembers (producer, id), accepted at now_ms (lsn: as for dedup_find).
 * At max_entries the oldest entry is forgotten first, before its window
 * ends (counted in evicted_early). Adding a pair already there refreshes
 * nothing: the first acceptance is what counts. */
void dedup_add(struct dedup *d, uint64_t producer, uint64_t id, uint64_t lsn, uint64_t now_ms);
/* Forgets (producer, id): its publish was refused after all. */
void dedup_forget(struct dedup *d, uint64_t producer, uint64_t id);

struct dedup_stats {
    uint64_t entries;       /* pairs held now */
    uint64_t duplicates;    /* lookups that found one */
    uint64_t evicted_early; /* pairs forgotten at the bound, inside their window */
};
void dedup_stats(const struct dedup *d, struct dedup_stats *out);

#endif
