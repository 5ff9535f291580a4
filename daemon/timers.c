/*
 * timers.c - the binary min-heap behind timers.h. Each timer knows its
 * slot, so moving or removing one is a sift from there, never a search.
 * Equal due times come out in the order they were armed.
 */
#include "timers.h"

#include <stdlib.h>
#include <string.h>

#include "core_alloc.h"

#define TIMERS_MIN_CAP 16u

void timer_heap_init(struct timer_heap *h)
{
    *h = (struct timer_heap){ 0 };
}

void timer_heap_free(struct timer_heap *h)
{
    free(h->items);
    *h = (struct timer_heap){ 0 };
}

int timer_heap_reserve(struct timer_heap *h)
{
    if (h->count < h->cap)
        return 0;
    size_t cap = h->cap == 0 ? TIMERS_MIN_CAP : h->cap * 2;
    if (cap > UINT32_MAX - 1)
        return -1; /* slots are 32-bit */
    struct timer **items = core_malloc(cap * sizeof *items);
    if (items == NULL)
        return -1;
    if (h->count > 0)
        memcpy(items, h->items, h->count * sizeof *items);
    free(h->items);
    h->items = items;
    h->cap = cap;
    return 0;
}

static void place(struct timer_heap *h, size_t i, struct timer *t)
{
    h->items[i] = t;
    t->slot = (uint32_t)(i + 1);
}

/* Whether a comes out before b: due first, then armed first (the order
 * counter may wrap: compared as a difference). */
static bool before(const struct timer *a, const struct timer *b)
{
    if (a->due != b->due)
        return a->due < b->due;
    return (int32_t)(a->order - b->order) < 0;
}

/* Moves the timer at i towards the root while it is due before its parent. */
static void sift_up(struct timer_heap *h, size_t i)
{
    struct timer *t = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(t, h->items[parent]))
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, t);
}

/* Moves the timer at i towards the leaves while a child is due before it. */
static void sift_down(struct timer_heap *h, size_t i)
{
    struct timer *t = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->count)
            break;
        if (child + 1 < h->count && before(h->items[child + 1], h->items[child]))
            child++;
        if (!before(h->items[child], t))
            break;
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, t);
}

void timer_arm(struct timer_heap *h, struct timer *t, uint64_t due)
{
    if (timer_armed(t)) {
        /* A move counts as a new arm: it goes after those of its new time. */
        t->due = due;
        t->order = h->next_order++;
        sift_up(h, t->slot - 1);
        sift_down(h, t->slot - 1);
        return;
    }
    t->due = due;
    t->order = h->next_order++;
    size_t i = h->count++; /* room was reserved */
    place(h, i, t);
    sift_up(h, i);
}

void timer_disarm(struct timer_heap *h, struct timer *t)
{
    if (!timer_armed(t))
        return;
    size_t i = t->slot - 1;
    t->slot = 0;
    struct timer *last = h->items[--h->count];
    if (i == h->count)
        return; /* it was the last one */
    h->items[i] = last;
    last->slot = (uint32_t)(i + 1);
    if (i > 0 && before(last, h->items[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}
