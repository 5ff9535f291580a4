/*
 * queue_map.h - the broker's queues by name (open addressing, grows and
 * shrinks). Points at the queues, which the broker owns; knows of a queue
 * only its name. Names come from clients, so they are hashed with a seed.
 */
#ifndef FERRY_QUEUE_MAP_H
#define FERRY_QUEUE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "ferry_proto.h"

struct queue;

struct queue_slot {
    uint64_t hash;
    struct queue *queue;    /* NULL: the slot is empty */
};

struct queue_map {
    struct queue_slot *slots;   /* power-of-two array, NULL until first use */
    size_t mask;
    size_t count;
    uint64_t seed;
};

/* An empty map; allocates nothing. */
void queue_map_init(struct queue_map *m, uint64_t seed);
/* Frees the slots (not the queues). */
void queue_map_free(struct queue_map *m);
/* The queue of that name, NULL if none. */
struct queue *queue_map_find(const struct queue_map *m, struct ferry_bytes name);
/* Makes room for one more queue so that the next queue_map_insert cannot
 * fail. 0, or -1 on ENOMEM (the map is unchanged). */
int queue_map_reserve(struct queue_map *m);
/* Adds q, whose name is not in the map yet, after queue_map_reserve. */
void queue_map_insert(struct queue_map *m, struct queue *q);
/* Removes q (which is in the map). */
void queue_map_remove(struct queue_map *m, struct queue *q);
size_t queue_map_count(const struct queue_map *m);
/* For walking every queue: slot i holds a queue or NULL, i < slot count. */
size_t queue_map_slot_count(const struct queue_map *m);
struct queue *queue_map_slot(const struct queue_map *m, size_t i);

#endif
