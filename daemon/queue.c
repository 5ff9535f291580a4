/*
 * queue.c - one queue's lists: the FIFOs of ready messages (one per
 * priority level, and a bitmap of the non-empty ones), the ring of
 * consumers with room and the list of the others, the list of all its
 * consumers, the JOIN waiters.
 * Pure list keeping: which consumer may get what is dispatch.c's call.
 */
#include "queue.h"

#include <stdlib.h>
#include <string.h>

#include "core_alloc.h"

struct queue *queue_new(struct ferry_bytes name)
{
    struct queue *q = core_calloc(1, sizeof *q + name.len);
    if (q == NULL)
        return NULL;
    memcpy(q->name, name.ptr, name.len);
    q->name_len = name.len;
    q->next_seq = 1;
    return q;
}

void queue_free(struct queue *q)
{
    free(q);
}

struct ferry_bytes queue_name(const struct queue *q)
{
    return (struct ferry_bytes){ q->name, q->name_len };
}

bool queue_drained(const struct queue *q)
{
    return q->stats.depth == 0 && q->stats.inflight == 0 && q->stats.delayed == 0;
}

/* The highest level whose bit is set in a nonzero bitmap: one instruction. */
static unsigned top_level(uint32_t levels)
{
    return 31u - (unsigned)__builtin_clz(levels);
}

static void count_in(struct queue *q, const struct message *m)
{
    q->stats.depth++;
    q->stats.depth_by_priority[m->priority]++;
}

void queue_push_back(struct queue *q, struct message *m)
{
    m->state = MESSAGE_READY;
    struct ready_list *l = &q->ready[m->priority];
    m->next = NULL;
    m->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = m;
    else
        l->head = m;
    l->tail = m;
    q->ready_levels |= 1u << m->priority;
    count_in(q, m);
}

void queue_push_front(struct queue *q, struct message *m)
{
    m->state = MESSAGE_READY;
    struct ready_list *l = &q->ready[m->priority];
    m->prev = NULL;
    m->next = l->head;
    if (l->head != NULL)
        l->head->prev = m;
    else
        l->tail = m;
    l->head = m;
    q->ready_levels |= 1u << m->priority;
    count_in(q, m);
}

/* Takes the head of non-empty level `level` out of the lists. */
static struct message *pop_level(struct queue *q, unsigned level)
{
    struct ready_list *l = &q->ready[level];
    struct message *m = l->head;
    l->head = m->next;
    if (l->head != NULL) {
        l->head->prev = NULL;
    } else {
        l->tail = NULL;
        q->ready_levels &= ~(1u << level);
    }
    m->next = NULL;
    m->prev = NULL;
    q->stats.depth--;
    q->stats.depth_by_priority[level]--;
    if (q->sweep == m)
        q->sweep = NULL;
    return m;
}

struct message *queue_pop_front(struct queue *q)
{
    if (q->ready_levels == 0)
        return NULL;
    return pop_level(q, top_level(q->ready_levels));
}

/* The head of the lowest non-empty level above `level` (all: levels). */
static struct message *first_above(const struct queue *q, unsigned level)
{
    uint32_t above = level >= FERRY_PRIORITY_LEVELS ? q->ready_levels
                                                    : q->ready_levels & ~((2u << level) - 1u);
    return above != 0 ? q->ready[__builtin_ctz(above)].head : NULL;
}

struct message *queue_first_to_drop(const struct queue *q)
{
    return first_above(q, FERRY_PRIORITY_LEVELS);
}

struct message *queue_next_to_drop(const struct queue *q, const struct message *m)
{
    return m->next != NULL ? m->next : first_above(q, m->priority);
}

struct message *queue_pop_to_drop(struct queue *q)
{
    if (q->ready_levels == 0)
        return NULL;
    return pop_level(q, (unsigned)__builtin_ctz(q->ready_levels));
}

void queue_remove_ready(struct queue *q, struct message *m)
{
    struct ready_list *l = &q->ready[m->priority];
    if (q->sweep == m)
        q->sweep = queue_next_ready(q, m);
    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        l->head = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    else
        l->tail = m->prev;
    if (l->head == NULL)
        q->ready_levels &= ~(1u << m->priority);
    m->next = NULL;
    m->prev = NULL;
    q->stats.depth--;
    q->stats.depth_by_priority[m->priority]--;
}

void queue_add_waiting(struct queue *q, struct message *m)
{
    m->state = MESSAGE_WAITING;
    m->prev = NULL;
    m->next = q->waiting;
    if (q->waiting != NULL)
        q->waiting->prev = m;
    q->waiting = m;
    q->stats.delayed++;
}

void queue_remove_waiting(struct queue *q, struct message *m)
{
    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        q->waiting = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    m->next = NULL;
    m->prev = NULL;
    q->stats.delayed--;
}

/* The head of the highest non-empty level below `level` (all: levels). */
static struct message *first_below(const struct queue *q, unsigned level)
{
    uint32_t below = q->ready_levels & ((1u << level) - 1u);
    return below != 0 ? q->ready[top_level(below)].head : NULL;
}

struct message *queue_first_ready(const struct queue *q)
{
    return first_below(q, FERRY_PRIORITY_LEVELS);
}

struct message *queue_next_ready(const struct queue *q, const struct message *m)
{
    return m->next != NULL ? m->next : first_below(q, m->priority);
}

/* Circular lists of consumers, reached through a pointer to their first
 * element. A new element goes last, so a new consumer waits its turn. */
static void ring_insert(struct consumer **first, struct consumer *c)
{
    struct consumer *head = *first;
    if (head == NULL) {
        c->next = c;
        c->prev = c;
        *first = c;
        return;
    }
    c->next = head;
    c->prev = head->prev;
    head->prev->next = c;
    head->prev = c;
}

static void ring_remove(struct consumer **first, struct consumer *c)
{
    if (c->next == c) {
        *first = NULL;
    } else {
        c->prev->next = c->next;
        c->next->prev = c->prev;
        if (*first == c)
            *first = c->next;
    }
    c->next = NULL;
    c->prev = NULL;
}

static struct consumer **list_of(struct queue *q, bool ready)
{
    return ready ? &q->cursor : &q->idle;
}

void queue_add_consumer(struct queue *q, struct consumer *c, bool ready)
{
    c->queue = q;
    c->in_ring = ready;
    ring_insert(list_of(q, ready), c);
    c->member_prev = NULL;
    c->member_next = q->members;
    if (q->members != NULL)
        q->members->member_prev = c;
    q->members = c;
    if (c->sub != 0)
        q->stats.consumers++;
}

void queue_remove_consumer(struct queue *q, struct consumer *c)
{
    ring_remove(list_of(q, c->in_ring), c);
    if (c->member_prev != NULL)
        c->member_prev->member_next = c->member_next;
    else
        q->members = c->member_next;
    if (c->member_next != NULL)
        c->member_next->member_prev = c->member_prev;
    c->member_next = NULL;
    c->member_prev = NULL;
    if (c->sub != 0)
        q->stats.consumers--;
    c->queue = NULL;
    c->in_ring = false;
}

void queue_set_consumer_ready(struct queue *q, struct consumer *c, bool ready)
{
    if (c->in_ring == ready)
        return;
    ring_remove(list_of(q, c->in_ring), c);
    ring_insert(list_of(q, ready), c);
    c->in_ring = ready;
}

struct consumer *queue_next_consumer(struct queue *q)
{
    struct consumer *c = q->cursor;
    if (c != NULL)
        q->cursor = c->next;
    return c;
}

void queue_each_consumer(struct queue *q, void (*fn)(struct consumer *c, void *arg), void *arg)
{
    /* The members list, not the ring: fn may move consumers between ring
     * and idle, which would make a walk of those skip or repeat some. */
    struct consumer *c = q->members;
    while (c != NULL) {
        struct consumer *next = c->member_next;
        fn(c, arg);
        c = next;
    }
}

void queue_add_join(struct queue *q, struct join_waiter *w)
{
    w->queue = q;
    w->prev = NULL;
    w->next = q->joins;
    if (q->joins != NULL)
        q->joins->prev = w;
    q->joins = w;
}

void queue_remove_join(struct queue *q, struct join_waiter *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        q->joins = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->next = NULL;
    w->prev = NULL;
    w->queue = NULL;
}
