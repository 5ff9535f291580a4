/*
 * msg_index.h - the durable log's live messages by id: where each one's
 * PUBLISH record lies, its attempt count and its queue. Open addressing
 * with linear probing and backward-shift deletion (no tombstones), grown
 * and shrunk by powers of two. Knows nothing of files or queues.
 */
#ifndef FERRY_MSG_INDEX_H
#define FERRY_MSG_INDEX_H

#include <stddef.h>
#include <stdint.h>

/* One live message: 32 bytes. */
struct msg_entry {
    uint64_t id;            /* 0: the slot is empty */
    uint64_t seq;           /* segment holding the PUBLISH record that stands for it */
    uint32_t off;           /* that record's offset in the segment */
    uint32_t size;          /* and its size, framing included */
    uint32_t attempts;
    uint32_t queue_id;
};

struct msg_index {
    struct msg_entry *slots;    /* power-of-two array, NULL until first use */
    size_t mask;                /* slot count - 1 */
    size_t count;
};

void msg_index_init(struct msg_index *ix);
void msg_index_free(struct msg_index *ix);
/* Makes room for one more entry so that msg_index_insert cannot fail.
 * 0, or -1 on ENOMEM (the index is unchanged). */
int msg_index_reserve(struct msg_index *ix);
/* Adds id (nonzero, absent) after msg_index_reserve; returns its entry,
 * zeroed but for the id. Entry pointers last until the next insert or
 * removal. */
struct msg_entry *msg_index_insert(struct msg_index *ix, uint64_t id);
/* The entry of id, NULL if absent. */
struct msg_entry *msg_index_find(const struct msg_index *ix, uint64_t id);
/* Removes the entry e points at. Later entries of its probe run move back
 * one slot, possibly into e's slot: a walk over the slots that removes
 * must look at the same slot again. Never reallocates. */
void msg_index_remove(struct msg_index *ix, struct msg_entry *e);
/* Gives memory back when the index is mostly empty (never fails: it stays
 * as it is if the smaller array cannot be had). Not during a walk. */
void msg_index_shrink(struct msg_index *ix);

/* For walking every entry: slot i is in use iff its id is nonzero. */
static inline size_t msg_index_slot_count(const struct msg_index *ix)
{
    return ix->slots == NULL ? 0 : ix->mask + 1;
}

#endif
