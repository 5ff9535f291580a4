/*
 * test_topic.c - topics and binding patterns: the syntax (proto/topic.c),
 * the reference matcher, and the daemon's trie (daemon/bindings.c), which
 * must agree with the reference on every pattern and topic, stay bounded
 * on hostile patterns, and give back every node it made.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bindings.h"
#include "core_alloc.h"
#include "ferry_proto.h"

static struct ferry_bytes B(const char *s)
{
    return (struct ferry_bytes){ (const uint8_t *)s, strlen(s) };
}

static bool match(const char *pattern, const char *topic)
{
    return ferry_topic_match(B(pattern), B(topic));
}

/* ---- syntax ---- */

START_TEST(test_a_topic_is_dot_separated_words_of_name_characters)
{
    ck_assert(ferry_topic_valid(B("orders")));
    ck_assert(ferry_topic_valid(B("orders.eu.created")));
    ck_assert(ferry_topic_valid(B("a-b_c:D9.x")));
    ck_assert(!ferry_topic_valid(B("")));
    ck_assert(!ferry_topic_valid(B("orders.*")));
    ck_assert(!ferry_topic_valid(B("orders.#")));
    ck_assert(!ferry_topic_valid(B("or ders")));
    ck_assert(!ferry_topic_valid(B("orders/eu")));
}
END_TEST

START_TEST(test_empty_words_are_invalid_in_topics_and_patterns)
{
    const char *bad[] = { ".", "a.", ".a", "a..b", "..", "#.", ".*", "a.#..b" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(!ferry_topic_valid(B(bad[i])), "%s", bad[i]);
        ck_assert_msg(!ferry_pattern_valid(B(bad[i])), "%s", bad[i]);
    }
}
END_TEST

START_TEST(test_a_wildcard_is_a_whole_word)
{
    ck_assert(ferry_pattern_valid(B("*")));
    ck_assert(ferry_pattern_valid(B("#")));
    ck_assert(ferry_pattern_valid(B("#.*.#")));
    ck_assert(ferry_pattern_valid(B("orders.*.created")));
    ck_assert(!ferry_pattern_valid(B("orders*")));
    ck_assert(!ferry_pattern_valid(B("a.b#")));
    ck_assert(!ferry_pattern_valid(B("**")));
    ck_assert(!ferry_pattern_valid(B("##")));
    ck_assert(!ferry_pattern_valid(B("*#")));
}
END_TEST

START_TEST(test_length_and_word_count_are_bounded)
{
    char s[FERRY_TOPIC_MAX + 2];
    memset(s, 'a', FERRY_TOPIC_MAX);
    s[FERRY_TOPIC_MAX] = '\0';
    ck_assert(ferry_topic_valid(B(s)));
    ck_assert(ferry_pattern_valid(B(s)));
    s[FERRY_TOPIC_MAX] = 'a';
    s[FERRY_TOPIC_MAX + 1] = '\0';
    ck_assert(!ferry_topic_valid(B(s)));
    ck_assert(!ferry_pattern_valid(B(s)));

    /* 32 words are fine, 33 are not. */
    char w[2 * 33];
    for (size_t i = 0; i < 33; i++) {
        w[2 * i] = 'x';
        w[2 * i + 1] = '.';
    }
    w[2 * 32 - 1] = '\0';
    ck_assert(ferry_topic_valid(B(w)));
    w[2 * 32 - 1] = '.';
    w[2 * 33 - 1] = '\0';
    ck_assert(!ferry_topic_valid(B(w)));
    for (size_t i = 0; i < 33; i++)
        w[2 * i] = '#';
    ck_assert(!ferry_pattern_valid(B(w)));
}
END_TEST

/* ---- the reference matcher ---- */

START_TEST(test_a_plain_pattern_matches_only_the_same_topic)
{
    ck_assert(match("orders.eu", "orders.eu"));
    ck_assert(!match("orders.eu", "orders.us"));
    ck_assert(!match("orders.eu", "orders"));
    ck_assert(!match("orders.eu", "orders.eu.x"));
    ck_assert(!match("orders", "Orders"));
}
END_TEST

START_TEST(test_star_takes_exactly_one_word)
{
    ck_assert(match("orders.*", "orders.eu"));
    ck_assert(!match("orders.*", "orders"));
    ck_assert(!match("orders.*", "orders.eu.created"));
    ck_assert(match("*.eu.*", "orders.eu.created"));
    ck_assert(match("*", "x"));
    ck_assert(!match("*", "x.y"));
    ck_assert(match("*.*", "x.y"));
}
END_TEST

START_TEST(test_hash_takes_zero_or_more_words_at_the_end)
{
    ck_assert(match("orders.#", "orders"));
    ck_assert(match("orders.#", "orders.eu"));
    ck_assert(match("orders.#", "orders.eu.created.v2"));
    ck_assert(!match("orders.#", "invoices.eu"));
    ck_assert(match("#", "anything.at.all"));
    ck_assert(match("#", "x"));
}
END_TEST

START_TEST(test_hash_at_the_start_and_in_the_middle)
{
    ck_assert(match("#.created", "created"));
    ck_assert(match("#.created", "orders.eu.created"));
    ck_assert(!match("#.created", "orders.created.eu"));
    ck_assert(match("orders.#.created", "orders.created"));
    ck_assert(match("orders.#.created", "orders.eu.fr.created"));
    ck_assert(!match("orders.#.created", "orders.eu.deleted"));
    ck_assert(match("a.#.b.#.c", "a.b.c"));
    ck_assert(match("a.#.b.#.c", "a.x.b.y.z.c"));
    ck_assert(!match("a.#.b.#.c", "a.c.b"));
}
END_TEST

START_TEST(test_star_and_hash_together)
{
    ck_assert(match("#.*", "x"));
    ck_assert(!match("*.#.*", "x"));
    ck_assert(match("*.#.*", "x.y"));
    ck_assert(match("*.#.*", "x.y.z.w"));
    ck_assert(match("#.#", "x"));
    ck_assert(match("a.#.#.b", "a.b"));
    ck_assert(match("a.#.#.b", "a.x.y.b"));
    ck_assert(match("*.*.#", "a.b"));
    ck_assert(!match("*.*.#", "a"));
}
END_TEST

/* ---- the trie ---- */

struct hits {
    void *targets[64];
    size_t count;
};

static void collect(void *arg, void *target)
{
    struct hits *h = arg;
    ck_assert_uint_lt(h->count, 64);
    h->targets[h->count++] = target;
}

static bool hit(const struct hits *h, void *target)
{
    for (size_t i = 0; i < h->count; i++) {
        if (h->targets[i] == target)
            return true;
    }
    return false;
}

static struct bindings trie;

static void trie_setup(void)
{
    ck_assert_int_eq(bindings_init(&trie, 42), 0);
}

static void trie_teardown(void)
{
    bindings_free(&trie);
}

static void bind(const char *pattern, void *target, struct binding **list)
{
    bool added;
    ck_assert_int_eq(bindings_add(&trie, B(pattern), target, list, &added), FERRY_CODE_OK);
}

START_TEST(test_the_trie_finds_every_queue_bound_by_a_matching_pattern)
{
    int qa, qb, qc;
    struct binding *la = NULL, *lb = NULL, *lc = NULL;
    bind("orders.*", &qa, &la);
    bind("orders.#", &qb, &lb);
    bind("invoices.eu", &qc, &lc);
    bind("#.eu", &qc, &lc);
    struct hits h = { 0 };
    bindings_match(&trie, B("orders.eu"), collect, &h);
    ck_assert(hit(&h, &qa) && hit(&h, &qb) && hit(&h, &qc));
    ck_assert_uint_eq(h.count, 3);
    h.count = 0;
    bindings_match(&trie, B("orders"), collect, &h);
    ck_assert_uint_eq(h.count, 1);
    ck_assert(hit(&h, &qb));
    h.count = 0;
    bindings_match(&trie, B("invoices.eu"), collect, &h);
    /* qc is bound twice: the trie reports each matching pattern. */
    ck_assert_uint_eq(h.count, 2);
    h.count = 0;
    bindings_match(&trie, B("shipping.us"), collect, &h);
    ck_assert_uint_eq(h.count, 0);
    ck_assert_uint_eq(bindings_count(&trie), 4);
}
END_TEST

START_TEST(test_binding_twice_is_one_binding_and_unbind_removes_it)
{
    int q;
    struct binding *l = NULL;
    bool added;
    ck_assert_int_eq(bindings_add(&trie, B("a.*"), &q, &l, &added), FERRY_CODE_OK);
    ck_assert(added);
    ck_assert_int_eq(bindings_add(&trie, B("a.*"), &q, &l, &added), FERRY_CODE_OK);
    ck_assert(!added);
    ck_assert_uint_eq(bindings_count(&trie), 1);
    ck_assert_int_eq(bindings_remove(&trie, B("a.#"), &l), FERRY_CODE_NOT_FOUND);
    ck_assert_int_eq(bindings_remove(&trie, B("a.*"), &l), FERRY_CODE_OK);
    ck_assert_int_eq(bindings_remove(&trie, B("a.*"), &l), FERRY_CODE_NOT_FOUND);
    ck_assert_ptr_null(l);
    struct hits h = { 0 };
    bindings_match(&trie, B("a.b"), collect, &h);
    ck_assert_uint_eq(h.count, 0);
    /* Pruned back to the bare root: no edge left behind. */
    ck_assert_uint_eq(trie.edge_count, 0);
    ck_assert_uint_eq(trie.nodes, 0);
}
END_TEST

START_TEST(test_runs_of_hash_are_one_hash)
{
    int q;
    struct binding *l = NULL;
    bool added;
    ck_assert_int_eq(bindings_add(&trie, B("a.#.#.#.b"), &q, &l, &added), FERRY_CODE_OK);
    ck_assert(added);
    ck_assert_int_eq(bindings_add(&trie, B("a.#.b"), &q, &l, &added), FERRY_CODE_OK);
    ck_assert(!added);
    uint8_t buf[FERRY_TOPIC_MAX];
    size_t n = bindings_pattern(l, buf);
    ck_assert(n == 5 && memcmp(buf, "a.#.b", 5) == 0);
    struct hits h = { 0 };
    bindings_match(&trie, B("a.b"), collect, &h);
    bindings_match(&trie, B("a.x.y.b"), collect, &h);
    ck_assert_uint_eq(h.count, 2);
    ck_assert_int_eq(bindings_remove(&trie, B("a.#.#.b"), &l), FERRY_CODE_OK);
    ck_assert_uint_eq(trie.nodes, 0);
}
END_TEST

START_TEST(test_the_same_pattern_of_two_queues_is_two_bindings)
{
    int q1, q2;
    struct binding *l1 = NULL, *l2 = NULL;
    bind("x.y", &q1, &l1);
    bind("x.y", &q2, &l2);
    ck_assert_int_eq(bindings_remove(&trie, B("x.y"), &l1), FERRY_CODE_OK);
    struct hits h = { 0 };
    bindings_match(&trie, B("x.y"), collect, &h);
    ck_assert_uint_eq(h.count, 1);
    ck_assert(hit(&h, &q2));
}
END_TEST

START_TEST(test_removing_every_binding_of_a_queue_prunes_the_trie)
{
    int q1, q2;
    struct binding *l1 = NULL, *l2 = NULL;
    bind("a.b.c", &q1, &l1);
    bind("a.*.#", &q1, &l1);
    bind("#", &q1, &l1);
    bind("a.b", &q2, &l2);
    bindings_remove_all(&trie, &l1);
    ck_assert_ptr_null(l1);
    ck_assert_uint_eq(bindings_count(&trie), 1);
    ck_assert_uint_eq(trie.edge_count, 2); /* a, a.b */
    bindings_remove_all(&trie, &l2);
    ck_assert_uint_eq(trie.edge_count, 0);
    ck_assert_uint_eq(trie.nodes, 0);
}
END_TEST

START_TEST(test_a_binding_gives_back_its_pattern)
{
    int q;
    struct binding *l = NULL;
    uint8_t buf[FERRY_TOPIC_MAX];
    bind("orders.*.#.created", &q, &l);
    size_t n = bindings_pattern(l, buf);
    ck_assert_uint_eq(n, strlen("orders.*.#.created"));
    ck_assert(memcmp(buf, "orders.*.#.created", n) == 0);
}
END_TEST

/* Random patterns and topics over a small alphabet, so that they meet. */
static void random_words(char *out, unsigned *seed, bool pattern)
{
    static const char *words[] = { "a", "b", "c", "ab" };
    size_t n = 1 + (size_t)(rand_r(seed) % 6);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(out, ".");
        int r = rand_r(seed) % 7;
        if (pattern && r == 5)
            strcat(out, "*");
        else if (pattern && r == 6)
            strcat(out, "#");
        else
            strcat(out, words[r % 4]);
    }
}

START_TEST(test_the_trie_agrees_with_the_reference_on_random_patterns)
{
    enum { QUEUES = 40, TOPICS = 3000 };
    unsigned seed = 12345;
    char patterns[QUEUES][64];
    struct binding *lists[QUEUES] = { 0 };
    for (size_t q = 0; q < QUEUES; q++) {
        random_words(patterns[q], &seed, true);
        bind(patterns[q], &lists[q], &lists[q]); /* target: the list's own address */
    }
    for (size_t i = 0; i < TOPICS; i++) {
        char topic[64];
        random_words(topic, &seed, false);
        struct hits h = { 0 };
        bindings_match(&trie, B(topic), collect, &h);
        for (size_t q = 0; q < QUEUES; q++) {
            bool want = match(patterns[q], topic);
            ck_assert_msg(hit(&h, &lists[q]) == want, "pattern %s, topic %s: trie %d, reference %d",
                          patterns[q], topic, !want, want);
        }
        /* Each binding is reported at most once per publish. */
        size_t expected = 0;
        for (size_t q = 0; q < QUEUES; q++)
            expected += match(patterns[q], topic);
        ck_assert_uint_eq(h.count, expected);
    }
    for (size_t q = 0; q < QUEUES; q++)
        bindings_remove_all(&trie, &lists[q]);
    ck_assert_uint_eq(trie.edge_count, 0);
    ck_assert_uint_eq(trie.nodes, 0);
}
END_TEST

static void count_only(void *arg, void *target)
{
    (void)target;
    (*(size_t *)arg)++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(test_a_pattern_of_many_hashes_costs_little_to_match)
{
    /* "#.*.#.*...#.*.z" (31 words, 15 '#'): a naive recursive matcher
     * tries every way of splitting the topic among the '#'s, some 10^9 for
     * 32 words. The memo visits each (node, position) once. */
    int q;
    struct binding *l = NULL;
    /* '#' and '*' alternate, so that no two '#' fold into one. */
    bind("#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.#.*.z", &q, &l);
    char topic[2 * 32];
    for (size_t i = 0; i < 32; i++) {
        topic[2 * i] = 'a';
        topic[2 * i + 1] = '.';
    }
    topic[2 * 32 - 1] = '\0';
    size_t hits = 0;
    double start = now_s();
    for (int i = 0; i < 1000; i++)
        bindings_match(&trie, B(topic), count_only, &hits);
    double took = now_s() - start;
    ck_assert_uint_eq(hits, 0);
    topic[2 * 32 - 2] = 'z';
    bindings_match(&trie, B(topic), count_only, &hits);
    ck_assert_uint_eq(hits, 1);
    fprintf(stderr, "a 15-'#' pattern, 32-word topics: %.1f us per publish\n", took / 1000 * 1e6);
    /* About 1 ms for the 1,000 on an idle machine; 100 x that for ASan and load. */
    ck_assert_msg(took < 5.0, "1000 matches took %.3f s", took);
}
END_TEST

START_TEST(test_many_bindings_are_not_scanned_per_publish)
{
    /* 20,000 queues each bound to "user.<n>.#": a publish touches a few nodes. */
    enum { N = 20000 };
    struct binding **lists = calloc(N, sizeof *lists);
    ck_assert_ptr_nonnull(lists);
    char p[64];
    for (size_t i = 0; i < N; i++) {
        snprintf(p, sizeof p, "user.%zu.#", i);
        bind(p, &lists[i], &lists[i]);
    }
    struct hits h = { 0 };
    bindings_match(&trie, B("user.777.login"), collect, &h);
    ck_assert_uint_eq(h.count, 1);
    ck_assert_ptr_eq(h.targets[0], &lists[777]);
    size_t hits = 0;
    double start = now_s();
    for (int i = 0; i < 100000; i++)
        bindings_match(&trie, B("user.777.login"), count_only, &hits);
    double took = now_s() - start;
    ck_assert_uint_eq(hits, 100000);
    /* What the trie saves: the same publish by a scan of every pattern
     * with the reference matcher, 100 times. */
    char (*patterns)[24] = calloc(N, sizeof *patterns);
    ck_assert_ptr_nonnull(patterns);
    for (size_t i = 0; i < N; i++)
        snprintf(patterns[i], sizeof patterns[i], "user.%zu.#", i);
    size_t scan_hits = 0;
    double scan_start = now_s();
    for (int i = 0; i < 100; i++) {
        for (size_t k = 0; k < N; k++)
            scan_hits += match(patterns[k], "user.777.login");
    }
    double scan_took = now_s() - scan_start;
    free(patterns);
    ck_assert_uint_eq(scan_hits, 100);
    fprintf(stderr, "20,000 bindings: trie %.2f us per publish, scan %.0f us per publish\n",
            took / 100000 * 1e6, scan_took / 100 * 1e6);
    /* A scan would be 20,000 x 100,000 pattern matches (minutes); the trie
     * does it in some 20 ms idle. Generous for ASan and a loaded machine. */
    ck_assert_msg(took < 10.0, "100,000 matches took %.3f s", took);
    for (size_t i = 0; i < N; i++)
        bindings_remove_all(&trie, &lists[i]);
    ck_assert_uint_eq(trie.edge_count, 0);
    free(lists);
}
END_TEST

static int fail_countdown;
static bool fail_nth(void)
{
    return fail_countdown-- == 0;
}

START_TEST(test_an_allocation_failure_while_binding_leaves_the_trie_as_it_was)
{
    int q;
    struct binding *l = NULL;
    bind("keep.me", &q, &l);
    for (int n = 0; n < 10; n++) {
        struct binding *l2 = NULL;
        bool added;
        fail_countdown = n;
        core_alloc_should_fail = fail_nth;
        enum ferry_code code = bindings_add(&trie, B("keep.new.deep.path"), &q, &l2, &added);
        core_alloc_should_fail = NULL;
        if (code == FERRY_CODE_OK) {
            ck_assert(added);
            bindings_remove_all(&trie, &l2);
        } else {
            ck_assert_int_eq(code, FERRY_CODE_NO_MEMORY);
            ck_assert_ptr_null(l2);
        }
        ck_assert_uint_eq(bindings_count(&trie), 1);
        ck_assert_uint_eq(trie.edge_count, 2); /* keep, keep.me */
    }
}
END_TEST

static Suite *topic_suite(void)
{
    Suite *s = suite_create("topic");
    TCase *syntax = tcase_create("syntax");
    tcase_add_test(syntax, test_a_topic_is_dot_separated_words_of_name_characters);
    tcase_add_test(syntax, test_empty_words_are_invalid_in_topics_and_patterns);
    tcase_add_test(syntax, test_a_wildcard_is_a_whole_word);
    tcase_add_test(syntax, test_length_and_word_count_are_bounded);
    suite_add_tcase(s, syntax);

    TCase *ref = tcase_create("reference");
    tcase_add_test(ref, test_a_plain_pattern_matches_only_the_same_topic);
    tcase_add_test(ref, test_star_takes_exactly_one_word);
    tcase_add_test(ref, test_hash_takes_zero_or_more_words_at_the_end);
    tcase_add_test(ref, test_hash_at_the_start_and_in_the_middle);
    tcase_add_test(ref, test_star_and_hash_together);
    suite_add_tcase(s, ref);

    TCase *t = tcase_create("trie");
    tcase_add_checked_fixture(t, trie_setup, trie_teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_the_trie_finds_every_queue_bound_by_a_matching_pattern);
    tcase_add_test(t, test_binding_twice_is_one_binding_and_unbind_removes_it);
    tcase_add_test(t, test_runs_of_hash_are_one_hash);
    tcase_add_test(t, test_the_same_pattern_of_two_queues_is_two_bindings);
    tcase_add_test(t, test_removing_every_binding_of_a_queue_prunes_the_trie);
    tcase_add_test(t, test_a_binding_gives_back_its_pattern);
    tcase_add_test(t, test_the_trie_agrees_with_the_reference_on_random_patterns);
    tcase_add_test(t, test_a_pattern_of_many_hashes_costs_little_to_match);
    tcase_add_test(t, test_many_bindings_are_not_scanned_per_publish);
    tcase_add_test(t, test_an_allocation_failure_while_binding_leaves_the_trie_as_it_was);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(topic_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
