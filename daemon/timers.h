/*
 * timers.h - the broker core's timers: a binary min-heap of `struct timer`
 * by due time (O(log n) to arm, move or disarm one, O(1) to see the next).
 * A timer is embedded in what it times (a message); the heap points at it
 * and owns nothing but its array. Knows no clock and no libevent: due
 * times are plain milliseconds of whatever clock the caller uses.
 */
#ifndef FERRY_TIMERS_H
#define FERRY_TIMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A zeroed timer is disarmed. */
struct timer {
    uint64_t due;       /* ms; meaningful while armed */
    uint32_t slot;      /* index in the heap + 1; 0: not armed */
    uint32_t order;     /* when it was armed, among timers of the same due time */
};

/* Timers of the same due time come out in the order they were armed (as
 * long as fewer than 2^31 arms happen in between). */
struct timer_heap {
    struct timer **items;   /* items[0] is due first; NULL until first use */
    size_t count;
    size_t cap;
    uint32_t next_order;
};

/* An empty heap; allocates nothing. */
void timer_heap_init(struct timer_heap *h);
/* Frees the array; the timers in it are left as they are. */
void timer_heap_free(struct timer_heap *h);
/* Makes room for one more timer so that the next timer_arm of a disarmed
 * timer cannot fail. 0, or -1 on ENOMEM (the heap is unchanged). */
int timer_heap_reserve(struct timer_heap *h);

static inline bool timer_armed(const struct timer *t)
{
    return t->slot != 0;
}

/* Arms t to fire at `due`, or moves it there if it is armed already. A
 * disarmed t needs room (timer_heap_reserve). */
void timer_arm(struct timer_heap *h, struct timer *t, uint64_t due);
/* Takes t out of the heap; nothing if it is not armed. */
void timer_disarm(struct timer_heap *h, struct timer *t);
/* The timer due first, or NULL if none is armed. */
static inline struct timer *timer_heap_top(const struct timer_heap *h)
{
    return h->count > 0 ? h->items[0] : NULL;
}

#endif
