/*
 * expiry.c - messages past their time to live: the check made when one
 * would be delivered, where an expired message goes, and the bounded sweep
 * that takes expired messages out of the ready lists so that depth and
 * bytes say what can still be delivered. Knows no sockets and no files.
 */
#include "core.h"

bool expiry_passed(const struct broker *b, const struct message *m, uint64_t *now)
{
    if (*now == 0)
        *now = broker_now(b);
    return m->expires_at <= *now;
}

void expiry_expire(struct broker *b, struct message *m)
{
    m->queue->stats.expired++;
    /* To the queue's dead-letter queue when it has one; settled in the
     * journal and freed either way. */
    retry_dead_letter_expired(b, m);
}

/* Expires ready message m of q, found by the sweep. */
static void sweep_one(struct broker *b, struct queue *q, struct message *m)
{
    queue_remove_ready(q, m);
    expiry_expire(b, m);
}

/* Sweeps q, looking at no more than `budget` messages: first the heads of
 * its levels (with a queue's ttl alone, messages expire in publish order,
 * so the expired ones are there), then on from where the last sweep of q
 * stopped, round the whole queue over successive sweeps. Returns how many
 * it looked at. */
static size_t sweep_queue(struct broker *b, struct queue *q, uint64_t now, size_t budget)
{
    size_t looked = 0;
    bool expired = false;
    for (unsigned i = 0; i < FERRY_PRIORITY_LEVELS && looked < budget; i++) {
        struct ready_list *l = &q->ready[FERRY_PRIORITY_MAX - i];
        while (looked < budget && l->head != NULL && l->head->expires_at != 0 &&
               l->head->expires_at <= now) {
            sweep_one(b, q, l->head);
            looked++;
            expired = true;
        }
    }
    struct message *m = q->sweep != NULL ? q->sweep : queue_first_ready(q);
    while (m != NULL && looked < budget) {
        struct message *next = queue_next_ready(q, m);
        if (m->expires_at != 0 && m->expires_at <= now) {
            sweep_one(b, q, m);
            expired = true;
        }
        looked++;
        m = next;
    }
    q->sweep = m; /* NULL: the next sweep starts from the first again */
    /* Publishes are refused once ended, so this may be the moment it drains. */
    if (expired && q->stats.ended && queue_drained(q))
        dispatch_end_of_stream(q);
    return looked;
}

void expiry_sweep(struct broker *b, uint64_t now)
{
    size_t slots = queue_map_slot_count(&b->queues);
    size_t budget = EXPIRY_SWEEP_BUDGET;
    /* The walk of the queue map is bounded too: with a million queues,
     * most without an expiring message, a sweep must not look at every
     * slot each time. */
    size_t visits = EXPIRY_SWEEP_BUDGET;
    /* From where the last sweep stopped, so that every queue has its turn
     * however many there are. Expiring frees no queue (it may create the
     * dead-letter queue, which grows the map: the old slot count still
     * walks it). */
    size_t n = 0;
    while (n < slots && budget > 0 && visits > 0) {
        size_t slot = (b->sweep_slot + n) % slots;
        n++;
        visits--;
        struct queue *q = queue_map_slot(&b->queues, slot);
        if (q == NULL || q->expiring == 0 || !queue_has_ready(q))
            continue;
        size_t looked = sweep_queue(b, q, now, budget);
        budget -= looked;
        if (budget == 0) {
            b->sweep_slot = slot; /* q may have more: it starts the next sweep */
            return;
        }
    }
    if (slots > 0)
        b->sweep_slot = (b->sweep_slot + n) % slots; /* the first slot not looked at */
}
