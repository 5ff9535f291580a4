/*
 * tags.h - a session's deliveries in flight: tag -> {message, subscription}
 * (open addressing, grows and shrinks, O(1) per delivery and per ack).
 * Points at messages and consumers but owns neither; knows nothing of
 * queues or dispatch.
 */
#ifndef FERRY_TAGS_H
#define FERRY_TAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct message;
struct consumer;

struct tag_entry {
    uint64_t tag;               /* 0: the slot is empty */
    struct message *message;
    struct consumer *consumer;  /* the subscription it went to; NULL for a GET */
};

struct tag_table {
    struct tag_entry *slots;    /* power-of-two array, NULL until first use */
    size_t mask;                /* slot count - 1 */
    size_t count;
};

/* An empty table; allocates nothing. */
void tags_init(struct tag_table *t);
/* Frees the slots. */
void tags_free(struct tag_table *t);
/* Makes room for one more entry so that the next tags_insert cannot fail.
 * 0, or -1 on ENOMEM (the table is unchanged). */
int tags_reserve(struct tag_table *t);
/* Adds a delivery (tag nonzero, not present) after tags_reserve. */
void tags_insert(struct tag_table *t, uint64_t tag, struct message *m, struct consumer *c);
/* The delivery `tag`, left in place (valid until the table changes), or
 * NULL if it is not in flight. */
struct tag_entry *tags_find(struct tag_table *t, uint64_t tag);
/* Removes the delivery `tag` into *out. false if it is not in flight. */
bool tags_take(struct tag_table *t, uint64_t tag, struct tag_entry *out);
/* Moves every entry to the front of the slot array and returns how many
 * there are; *entries points at them. The table is left usable only for
 * tags_free. */
size_t tags_drain(struct tag_table *t, struct tag_entry **entries);

#endif
