/*
 * bindings.h - the binding patterns of every queue, in one trie of words,
 * and matching a topic against all of them at once. Knows nothing of
 * queues: a binding's target is an opaque pointer, and each target keeps
 * the list of its own bindings (given to each call).
 *
 * Cost: adding or removing a binding walks its pattern's words; matching
 * visits each trie node at most once per word position (a memo per node),
 * so a publish costs O(matching nodes x words^2) at worst, whatever the
 * number of bindings and however many `#` a hostile pattern holds.
 */
#ifndef FERRY_BINDINGS_H
#define FERRY_BINDINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_proto.h"

struct topic_node;

/* One (pattern, target) pair. Owned by the trie; linked into the list of
 * its target (via target_next), which the target's owner holds. */
struct binding {
    struct binding *node_next;   /* the bindings ending at the same node */
    struct binding *node_prev;
    struct binding *target_next; /* the target's list */
    struct topic_node *node;
    void *target;
};

struct bindings {
    struct topic_node *root;     /* owned, with every node under it */
    struct topic_node **edges;   /* (parent, word) -> child, open addressing */
    size_t edge_mask;            /* slots - 1; at most half the slots used */
    size_t edge_count;
    size_t count;                /* bindings in all */
    size_t nodes;                /* trie nodes besides the root */
    uint64_t epoch;              /* of the current match, for the memos */
    uint64_t seed;
};

/* An empty trie. 0, or -1 on ENOMEM. */
int bindings_init(struct bindings *t, uint64_t seed);
/* Frees every node and binding (the targets' lists dangle afterwards). */
void bindings_free(struct bindings *t);

/* Binds target with a valid pattern (the caller checked it) and links the
 * binding into *list. Binding twice with the same pattern is a no-op
 * (*added false); so is binding with one that differs only by runs of
 * '#' ("a.#.#.b" is "a.#.b": the trie keeps one '#' of a run). OK or
 * NO_MEMORY (nothing changed). */
enum ferry_code bindings_add(struct bindings *t, struct ferry_bytes pattern, void *target,
                             struct binding **list, bool *added);
/* true if the target whose list this is is bound with this pattern. */
bool bindings_contains(const struct bindings *t, struct ferry_bytes pattern,
                       const struct binding *list);
/* Removes target's binding with this pattern. OK or NOT_FOUND. */
enum ferry_code bindings_remove(struct bindings *t, struct ferry_bytes pattern,
                                struct binding **list);
/* Removes every binding in *list (a target that goes away). */
void bindings_remove_all(struct bindings *t, struct binding **list);

/* Calls fn for every binding whose pattern matches the valid topic (a
 * target bound by several matching patterns is given once per pattern:
 * the caller folds them). fn must not change the trie. */
void bindings_match(struct bindings *t, struct ferry_bytes topic,
                    void (*fn)(void *arg, void *target), void *arg);

/* Bindings in all. */
static inline size_t bindings_count(const struct bindings *t)
{
    return t->count;
}

/* The pattern of a binding, runs of '#' folded, written into buf (at
 * least FERRY_TOPIC_MAX bytes); returns its length. */
size_t bindings_pattern(const struct binding *b, uint8_t *buf);

#endif
