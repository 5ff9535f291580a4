/*
 * bindings.c - the trie of binding patterns (see bindings.h). A node is
 * one word of a pattern; its word children are found through one hash
 * table of edges keyed by (parent, word), its `*` and `#` children hang
 * off it directly. Nodes that end no pattern and lead nowhere are pruned.
 */
#include "bindings.h"

#include <stdlib.h>
#include <string.h>

#include "core_alloc.h"
#include "hash.h"

#define EDGES_MIN_SLOTS 16u

/* Owned by the trie: every node but the root is on the root's all_next
 * list, which is how they are freed; the links below only find them. */
struct topic_node {
    struct topic_node *parent;     /* NULL for the root */
    struct topic_node *all_next;   /* every node but the root, for freeing */
    struct topic_node *all_prev;
    struct topic_node *star;       /* the children for `*` and `#` */
    struct topic_node *hash;
    struct binding *bindings;      /* patterns that end here */
    size_t word_children;          /* children in the edge table */
    uint64_t memo_epoch;           /* match_node's memo: word positions */
    uint64_t memo_seen;            /* already visited in this epoch */
    uint64_t edge_hash;            /* of (parent, word) */
    uint32_t word_len;
    uint8_t word[];
};

static struct topic_node *node_new(struct topic_node *parent, struct ferry_bytes word)
{
    struct topic_node *n = core_calloc(1, sizeof *n + word.len);
    if (n == NULL)
        return NULL;
    n->parent = parent;
    n->word_len = (uint32_t)word.len;
    if (word.len > 0)
        memcpy(n->word, word.ptr, word.len);
    return n;
}

int bindings_init(struct bindings *t, uint64_t seed)
{
    *t = (struct bindings){ .seed = seed };
    t->root = node_new(NULL, (struct ferry_bytes){ NULL, 0 });
    return t->root == NULL ? -1 : 0;
}

static void free_bindings_of(struct topic_node *n)
{
    struct binding *b = n->bindings;
    while (b != NULL) {
        struct binding *next = b->node_next;
        free(b);
        b = next;
    }
}

void bindings_free(struct bindings *t)
{
    if (t->root == NULL)
        return;
    struct topic_node *n = t->root->all_next;
    while (n != NULL) {
        struct topic_node *next = n->all_next;
        free_bindings_of(n);
        free(n);
        n = next;
    }
    free_bindings_of(t->root);
    free(t->root);
    free(t->edges);
    *t = (struct bindings){ 0 };
}

/* ---- the edge table: (parent, word) -> child ---- */

static uint64_t edge_hash(const struct bindings *t, const struct topic_node *parent,
                          struct ferry_bytes word)
{
    return hash_u64(hash_bytes(word, t->seed) ^ (uint64_t)(uintptr_t)parent, t->seed);
}

static bool edge_is(const struct topic_node *n, const struct topic_node *parent,
                    struct ferry_bytes word, uint64_t h)
{
    return n->edge_hash == h && n->parent == parent && n->word_len == word.len
        && memcmp(n->word, word.ptr, word.len) == 0;
}

/* The slot of (parent, word), or the empty slot where it would go. */
static size_t edge_slot(const struct bindings *t, const struct topic_node *parent,
                        struct ferry_bytes word, uint64_t h)
{
    size_t i = (size_t)h & t->edge_mask;
    while (t->edges[i] != NULL && !edge_is(t->edges[i], parent, word, h))
        i = (i + 1) & t->edge_mask;
    return i;
}

static struct topic_node *edge_find(const struct bindings *t, const struct topic_node *parent,
                                    struct ferry_bytes word)
{
    if (t->edges == NULL)
        return NULL;
    return t->edges[edge_slot(t, parent, word, edge_hash(t, parent, word))];
}

/* Room for one more edge: at most half the slots are used. 0 or -1. */
static int edge_reserve(struct bindings *t)
{
    size_t slots = t->edges == NULL ? 0 : t->edge_mask + 1;
    if ((t->edge_count + 1) * 2 <= slots)
        return 0;
    size_t grown = slots == 0 ? EDGES_MIN_SLOTS : slots * 2;
    struct topic_node **edges = core_calloc(grown, sizeof *edges);
    if (edges == NULL)
        return -1;
    for (size_t i = 0; i < slots; i++) {
        struct topic_node *n = t->edges[i];
        if (n == NULL)
            continue;
        size_t k = (size_t)n->edge_hash & (grown - 1);
        while (edges[k] != NULL)
            k = (k + 1) & (grown - 1);
        edges[k] = n;
    }
    free(t->edges);
    t->edges = edges;
    t->edge_mask = grown - 1;
    return 0;
}

/* Removes the edge in slot i, shifting the following entries back. */
static void edge_remove_slot(struct bindings *t, size_t i)
{
    t->edges[i] = NULL;
    t->edge_count--;
    size_t j = i;
    for (;;) {
        j = (j + 1) & t->edge_mask;
        struct topic_node *n = t->edges[j];
        if (n == NULL)
            return;
        size_t home = (size_t)n->edge_hash & t->edge_mask;
        /* n may move to the hole at i if its home is not in (i, j]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        t->edges[i] = n;
        t->edges[j] = NULL;
        i = j;
    }
}

/* ---- nodes ---- */

static bool is_word(struct ferry_bytes w, char c)
{
    return w.len == 1 && w.ptr[0] == (uint8_t)c;
}

/* A pattern's words, each run of '#' folded into one (they match the
 * same topics, and one costs less to match): the count, or more than
 * FERRY_TOPIC_WORDS_MAX if the pattern has too many words. */
static size_t pattern_words(struct ferry_bytes pattern, struct ferry_bytes *words)
{
    size_t n = ferry_topic_split(pattern, words, FERRY_TOPIC_WORDS_MAX);
    if (n > FERRY_TOPIC_WORDS_MAX)
        return n;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (kept > 0 && is_word(words[i], '#') && is_word(words[kept - 1], '#'))
            continue;
        words[kept++] = words[i];
    }
    return kept;
}

static void node_link_all(struct bindings *t, struct topic_node *n)
{
    n->all_prev = t->root;
    n->all_next = t->root->all_next;
    if (n->all_next != NULL)
        n->all_next->all_prev = n;
    t->root->all_next = n;
}

/* The child of `parent` for `word`, created if missing. NULL on ENOMEM. */
static struct topic_node *child_get(struct bindings *t, struct topic_node *parent,
                                    struct ferry_bytes word)
{
    struct topic_node **wild = is_word(word, '*') ? &parent->star
                             : is_word(word, '#') ? &parent->hash : NULL;
    if (wild != NULL && *wild != NULL)
        return *wild;
    uint64_t h = 0;
    if (wild == NULL) {
        struct topic_node *found = edge_find(t, parent, word);
        if (found != NULL)
            return found;
        if (edge_reserve(t) != 0)
            return NULL;
        h = edge_hash(t, parent, word);
    }
    struct topic_node *n = node_new(parent, word);
    if (n == NULL)
        return NULL;
    node_link_all(t, n);
    t->nodes++;
    if (wild != NULL) {
        *wild = n;
        return n;
    }
    n->edge_hash = h;
    t->edges[edge_slot(t, parent, word, h)] = n;
    t->edge_count++;
    parent->word_children++;
    return n;
}

/* The node a pattern ends at, or NULL if no binding made it. */
static struct topic_node *node_find(const struct bindings *t, struct ferry_bytes pattern)
{
    struct ferry_bytes words[FERRY_TOPIC_WORDS_MAX];
    size_t nw = pattern_words(pattern, words);
    if (nw > FERRY_TOPIC_WORDS_MAX)
        return NULL;
    struct topic_node *n = t->root;
    for (size_t i = 0; i < nw && n != NULL; i++) {
        if (is_word(words[i], '*'))
            n = n->star;
        else if (is_word(words[i], '#'))
            n = n->hash;
        else
            n = edge_find(t, n, words[i]);
    }
    return n;
}

/* Frees n and its ancestors while they end no pattern and lead nowhere. */
static void prune(struct bindings *t, struct topic_node *n)
{
    while (n != t->root && n->bindings == NULL && n->star == NULL && n->hash == NULL
           && n->word_children == 0) {
        struct topic_node *parent = n->parent;
        struct ferry_bytes word = { n->word, n->word_len };
        if (parent->star == n) {
            parent->star = NULL;
        } else if (parent->hash == n) {
            parent->hash = NULL;
        } else {
            edge_remove_slot(t, edge_slot(t, parent, word, n->edge_hash));
            parent->word_children--;
        }
        n->all_prev->all_next = n->all_next;
        if (n->all_next != NULL)
            n->all_next->all_prev = n->all_prev;
        free(n);
        t->nodes--;
        n = parent;
    }
}

/* ---- bindings ---- */

bool bindings_contains(const struct bindings *t, struct ferry_bytes pattern,
                       const struct binding *list)
{
    const struct topic_node *end = node_find(t, pattern);
    for (const struct binding *b = list; b != NULL && end != NULL; b = b->target_next) {
        if (b->node == end)
            return true;
    }
    return false;
}

enum ferry_code bindings_add(struct bindings *t, struct ferry_bytes pattern, void *target,
                             struct binding **list, bool *added)
{
    *added = false;
    if (bindings_contains(t, pattern, *list))
        return FERRY_CODE_OK;
    struct binding *b = core_calloc(1, sizeof *b);
    if (b == NULL)
        return FERRY_CODE_NO_MEMORY;
    struct ferry_bytes words[FERRY_TOPIC_WORDS_MAX];
    size_t nw = pattern_words(pattern, words);
    struct topic_node *n = t->root;
    for (size_t i = 0; i < nw; i++) {
        struct topic_node *child = child_get(t, n, words[i]);
        if (child == NULL) {
            prune(t, n); /* what this call created and nothing uses */
            free(b);
            return FERRY_CODE_NO_MEMORY;
        }
        n = child;
    }
    b->node = n;
    b->target = target;
    b->node_next = n->bindings;
    if (n->bindings != NULL)
        n->bindings->node_prev = b;
    n->bindings = b;
    b->target_next = *list; /* the target's list links it; the trie owns it */
    *list = b;
    t->count++;
    *added = true;
    return FERRY_CODE_OK;
}

/* Unlinks b from its node, frees it, prunes. Not from the target's list. */
static void binding_drop(struct bindings *t, struct binding *b)
{
    struct topic_node *n = b->node;
    if (b->node_prev != NULL)
        b->node_prev->node_next = b->node_next;
    else
        n->bindings = b->node_next;
    if (b->node_next != NULL)
        b->node_next->node_prev = b->node_prev;
    free(b);
    t->count--;
    prune(t, n);
}

enum ferry_code bindings_remove(struct bindings *t, struct ferry_bytes pattern,
                                struct binding **list)
{
    struct topic_node *end = node_find(t, pattern);
    if (end == NULL)
        return FERRY_CODE_NOT_FOUND;
    for (struct binding **link = list; *link != NULL; link = &(*link)->target_next) {
        struct binding *b = *link;
        if (b->node == end) {
            *link = b->target_next;
            binding_drop(t, b);
            return FERRY_CODE_OK;
        }
    }
    return FERRY_CODE_NOT_FOUND;
}

void bindings_remove_all(struct bindings *t, struct binding **list)
{
    while (*list != NULL) {
        struct binding *b = *list;
        *list = b->target_next;
        binding_drop(t, b);
    }
}

/* ---- matching ---- */

struct match {
    struct bindings *t;
    const struct ferry_bytes *words;
    size_t count;
    void (*fn)(void *arg, void *target);
    void *arg;
};

/* Visits n with the topic's words from i on. Each (node, i) is visited at
 * most once per match, which bounds the cost of patterns like "#.#.#". */
static void match_node(struct match *m, struct topic_node *n, size_t i)
{
    uint64_t bit = UINT64_C(1) << i;
    if (n->memo_epoch != m->t->epoch) {
        n->memo_epoch = m->t->epoch;
        n->memo_seen = 0;
    }
    if (n->memo_seen & bit)
        return;
    n->memo_seen |= bit;
    if (n->hash != NULL) {
        for (size_t j = i; j <= m->count; j++) /* '#' takes words i..j-1 */
            match_node(m, n->hash, j);
    }
    if (i == m->count) {
        for (struct binding *b = n->bindings; b != NULL; b = b->node_next)
            m->fn(m->arg, b->target);
        return;
    }
    struct topic_node *child = edge_find(m->t, n, m->words[i]);
    if (child != NULL)
        match_node(m, child, i + 1);
    if (n->star != NULL)
        match_node(m, n->star, i + 1);
}

void bindings_match(struct bindings *t, struct ferry_bytes topic,
                    void (*fn)(void *arg, void *target), void *arg)
{
    if (t->count == 0)
        return;
    struct ferry_bytes words[FERRY_TOPIC_WORDS_MAX];
    size_t nw = ferry_topic_split(topic, words, FERRY_TOPIC_WORDS_MAX);
    if (nw > FERRY_TOPIC_WORDS_MAX)
        return;
    t->epoch++;
    struct match m = { .t = t, .words = words, .count = nw, .fn = fn, .arg = arg };
    match_node(&m, t->root, 0);
}

size_t bindings_pattern(const struct binding *b, uint8_t *buf)
{
    /* Words from the end node up to the root, written back to front. */
    size_t len = 0;
    for (const struct topic_node *n = b->node; n->parent != NULL; n = n->parent)
        len += n->word_len + (len > 0 ? 1 : 0);
    size_t pos = len;
    bool last = true;
    for (const struct topic_node *n = b->node; n->parent != NULL; n = n->parent) {
        if (!last)
            buf[--pos] = '.';
        pos -= n->word_len;
        memcpy(buf + pos, n->word, n->word_len);
        last = false;
    }
    return len;
}
