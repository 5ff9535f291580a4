/*
 * duplicates.c - the connection side of the duplicate-publish window: a
 * producer that names itself in HELLO ("producer") and sends a publish id
 * again (after a reconnect) gets that publish confirmed without it being
 * queued a second time. The window itself is dedup.c; this file decides
 * when to look, when to remember and how to confirm. Connections without
 * a producer identity never reach it: the hot path pays one branch.
 */
#include "conn_internal.h"

#include <inttypes.h>

#include "dedup.h"
#include "log.h"

void duplicates_on_hello(struct conn *c, uint64_t producer)
{
    struct conn_set *set = c->set;
    if (producer == 0 || set->limits.dedup_window_ms == 0)
        return;
    if (!set->dedup) {
        /* Made at the first producer that asks, so that a ferryd nobody
         * reconnects to holds none of it. */
        set->dedup = dedup_new(set->limits.dedup_entries, set->limits.dedup_window_ms);
        if (!set->dedup) {
            log_warn("no memory for the duplicate window (%zu entries); producers' "
                     "duplicates are queued again", set->limits.dedup_entries);
            return;
        }
    }
    c->producer = producer;
}

bool duplicates_confirm_again(struct conn *c, const struct ferry_frame *f)
{
    uint64_t lsn = 0;
    if (!f->has_id || !dedup_find(c->set->dedup, c->producer, f->id, c->heard_ms, &lsn))
        return false;
    log_debug("conn %" PRIu64 ": publish %" PRIu64 " of producer %" PRIx64
              " seen before: confirmed, not queued again", c->id, f->id, c->producer);
    /* Confirmed as the first one was: at once, or once the journal holds it. */
    if (lsn != 0)
        commit_wait(c, true, f->id, lsn);
    else
        conn_confirm_add(c, f->id);
    return true;
}

void duplicates_remember(struct conn *c, const struct ferry_frame *f, uint64_t wait_lsn)
{
    if (f->has_id)
        dedup_add(c->set->dedup, c->producer, f->id, wait_lsn, c->heard_ms);
}

void duplicates_forget(struct conn_set *set, uint64_t producer, uint64_t id)
{
    if (set->dedup && producer != 0)
        dedup_forget(set->dedup, producer, id);
}

void duplicates_free(struct conn_set *set)
{
    dedup_free(set->dedup);
    set->dedup = NULL;
}

uint64_t duplicates_dropped(const struct conn_set *set)
{
    struct dedup_stats st = { 0 };
    if (set->dedup)
        dedup_stats(set->dedup, &st);
    return st.duplicates;
}

uint64_t duplicates_evicted(const struct conn_set *set)
{
    struct dedup_stats st = { 0 };
    if (set->dedup)
        dedup_stats(set->dedup, &st);
    return st.evicted_early;
}

void duplicates_apply(struct conn_set *set)
{
    if (set->dedup)
        dedup_set_window(set->dedup, set->limits.dedup_window_ms);
}
