/*
 * temp_queues.c - temporary queues: declared by a session, in memory
 * only, received from (and bound, purged, deleted) by that session alone,
 * and deleted with their messages when the session goes. Others may
 * publish to them: that is how replies reach a requester.
 */
#include <stdio.h>
#include <string.h>

#include "core.h"

/* Server-given names: "tmp." and a number in hex, never one in use. The
 * prefix is reserved: only DECLARE_TEMP makes a queue of such a name. */
#define TEMP_PREFIX FERRY_TEMP_PREFIX

bool temp_queue_name_reserved(struct ferry_bytes name)
{
    size_t n = sizeof TEMP_PREFIX - 1;
    return name.len >= n && memcmp(name.ptr, TEMP_PREFIX, n) == 0;
}

static void link_temp(struct session *s, struct queue *q)
{
    q->owner = s;
    q->temp_prev = NULL;
    q->temp_next = s->temps;
    if (s->temps != NULL)
        s->temps->temp_prev = q;
    s->temps = q;
    s->temp_count++;
}

void temp_queue_forget(struct queue *q)
{
    struct session *s = q->owner;
    if (s == NULL)
        return;
    if (q->temp_prev != NULL)
        q->temp_prev->temp_next = q->temp_next;
    else
        s->temps = q->temp_next;
    if (q->temp_next != NULL)
        q->temp_next->temp_prev = q->temp_prev;
    q->owner = NULL;
    q->temp_next = q->temp_prev = NULL;
    s->temp_count--;
}

void temp_queues_delete_all(struct broker *b, struct session *s)
{
    /* In memory, so no journal to ask; broker_delete_queue unlinks each. */
    while (s->temps != NULL)
        broker_delete_queue(b, s->temps);
}

/* A name no queue has: tries the next numbers until one is free. */
static struct ferry_bytes fresh_name(struct broker *b, char *buf, size_t cap)
{
    for (;;) {
        int n = snprintf(buf, cap, TEMP_PREFIX "%llx", (unsigned long long)++b->next_temp);
        struct ferry_bytes name = { (const uint8_t *)buf, (size_t)n };
        struct queue *q;
        if (broker_find_queue(b, name, false, &q) == FERRY_CODE_NOT_FOUND)
            return name;
    }
}

enum ferry_code broker_declare_temp(struct broker *b, struct session *s, struct ferry_bytes name,
                                    struct ferry_bytes *out)
{
    char buf[32];
    if (name.len == 0)
        name = fresh_name(b, buf, sizeof buf);
    struct queue *q;
    enum ferry_code code = broker_find_queue(b, name, false, &q);
    if (code == FERRY_CODE_OK) {
        if (q->owner != s)
            return FERRY_CODE_EXCLUSIVE; /* someone's queue, or another's temporary one */
        *out = queue_name(q);
        return FERRY_CODE_OK;
    }
    if (code != FERRY_CODE_NOT_FOUND)
        return code;
    if (s->temp_count >= BROKER_TEMP_QUEUES_PER_SESSION_MAX)
        return FERRY_CODE_LIMIT;
    struct queue_settings settings = broker_settings_for(b, name);
    /* A name the configuration makes durable belongs to a durable queue,
     * even one not made yet: taken by a temporary queue, its confirmed
     * messages would live in memory, and go with the connection. */
    if (settings.durable && !temp_queue_name_reserved(name))
        return FERRY_CODE_EXCLUSIVE;
    settings.durable = false;
    code = broker_new_queue(b, name, &settings, &q);
    if (code != FERRY_CODE_OK)
        return code;
    link_temp(s, q); /* the broker owns q; s only marks it as its own */
    *out = queue_name(q);
    return FERRY_CODE_OK;
}

enum ferry_code broker_check_access(struct broker *b, const struct session *s,
                                    struct ferry_bytes queue)
{
    struct queue *q;
    if (broker_find_queue(b, queue, false, &q) != FERRY_CODE_OK)
        return FERRY_CODE_OK; /* the request itself will say what is wrong */
    return q->owner == NULL || q->owner == s ? FERRY_CODE_OK : FERRY_CODE_EXCLUSIVE;
}
