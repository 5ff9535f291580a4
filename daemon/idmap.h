/*
 * idmap.h - nonzero 64-bit ids -> pointers (open addressing, grows and
 * shrinks): a session's subscriptions by `sub`, its waiting GETs by `rid`.
 * The ids come from clients, so they are hashed with a secret seed. Does
 * not own the values.
 */
#ifndef FERRY_IDMAP_H
#define FERRY_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct id_slot {
    uint64_t id;    /* 0: the slot is empty */
    void *value;
};

struct id_map {
    struct id_slot *slots;  /* power-of-two array, NULL until first use */
    size_t mask;            /* slot count - 1 */
    size_t count;
    uint64_t seed;
};

/* An empty map; allocates nothing. */
void id_map_init(struct id_map *m, uint64_t seed);
/* Frees the slots (not the values). */
void id_map_free(struct id_map *m);
/* The value of `id`, NULL if absent. */
void *id_map_get(const struct id_map *m, uint64_t id);
/* Makes room for one more id so that the next id_map_put cannot fail.
 * 0, or -1 on ENOMEM (the map is unchanged). */
int id_map_reserve(struct id_map *m);
/* Adds an id (nonzero, not present) after id_map_reserve. */
void id_map_put(struct id_map *m, uint64_t id, void *value);
/* Removes `id`; returns its value, NULL if it was absent. */
void *id_map_remove(struct id_map *m, uint64_t id);

#endif
