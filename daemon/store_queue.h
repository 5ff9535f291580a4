/*
 * store_queue.h - what the durable log knows of each durable queue (id,
 * name, settings, ended, where its QUEUE record lies) and the table that
 * finds them by name and by id. The table owns the queues. Knows nothing
 * of messages, files or the broker's queues.
 */
#ifndef FERRY_STORE_QUEUE_H
#define FERRY_STORE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_proto.h"

struct store_queue {
    uint32_t id;            /* store-wide, never reused */
    bool ended;
    uint64_t decl_seq;      /* segment holding the QUEUE record that stands for it */
    uint32_t decl_size;     /* that record's size, counted live in that segment */
    uint8_t *settings;      /* owned; NULL when settings_len is 0 */
    uint32_t settings_len;
    uint8_t name_len;
    uint8_t name[];
};

/* A queue with a copy of name (1..255 bytes) and settings. NULL on ENOMEM. */
struct store_queue *store_queue_new(uint32_t id, struct ferry_bytes name, struct ferry_bytes settings);
void store_queue_free(struct store_queue *q);
/* Replaces the settings by a copy. 0, or -1 on ENOMEM (unchanged). */
int store_queue_set_settings(struct store_queue *q, struct ferry_bytes settings);
bool store_queue_settings_equal(const struct store_queue *q, struct ferry_bytes settings);
struct ferry_bytes store_queue_name(const struct store_queue *q);
struct ferry_bytes store_queue_settings(const struct store_queue *q);

struct queue_table {
    struct store_queue **by_name;   /* two power-of-two arrays of the same size */
    struct store_queue **by_id;
    size_t mask;
    size_t count;
    uint64_t seed;                  /* names come from clients: seeded hash */
};

void queue_table_init(struct queue_table *t, uint64_t seed);
/* Frees every queue and the arrays. */
void queue_table_free(struct queue_table *t);
/* Makes room for one more queue. 0, or -1 on ENOMEM (unchanged). */
int queue_table_reserve(struct queue_table *t);
/* Adds q (name and id not present) after queue_table_reserve; the table
 * owns q from here. */
void queue_table_insert(struct queue_table *t, struct store_queue *q);
/* Takes q out of the table; the caller owns it again. */
void queue_table_remove(struct queue_table *t, struct store_queue *q);
struct store_queue *queue_table_find_name(const struct queue_table *t, struct ferry_bytes name);
struct store_queue *queue_table_find_id(const struct queue_table *t, uint32_t id);

/* For walking every queue: slot i holds a queue or NULL, i < slot count. */
static inline size_t queue_table_slot_count(const struct queue_table *t)
{
    return t->by_id == NULL ? 0 : t->mask + 1;
}
static inline struct store_queue *queue_table_slot(const struct queue_table *t, size_t i)
{
    return t->by_id[i];
}

#endif
