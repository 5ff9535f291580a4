/*
 * test_dedup.c - the duplicate-publish window (daemon/dedup.c) on its own:
 * found within the window, gone after it, bounded in entries with the
 * oldest forgotten first, forgotten on request, and its index intact
 * through many inserts and removals.
 */
#include <check.h>
#include <stdlib.h>

#include "dedup.h"

START_TEST(test_a_pair_is_found_within_the_window_and_not_after)
{
    struct dedup *d = dedup_new(16, 1000);
    ck_assert_ptr_nonnull(d);
    uint64_t lsn = 0;
    ck_assert(!dedup_find(d, 7, 1, 100, &lsn));
    dedup_add(d, 7, 1, 42, 100);
    ck_assert(dedup_find(d, 7, 1, 500, &lsn));
    ck_assert_uint_eq(lsn, 42);
    ck_assert(!dedup_find(d, 8, 1, 500, &lsn)); /* another producer's id 1 */
    ck_assert(!dedup_find(d, 7, 2, 500, &lsn));
    ck_assert(!dedup_find(d, 7, 1, 1100, &lsn)); /* the window is over */
    struct dedup_stats st;
    dedup_stats(d, &st);
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_eq(st.duplicates, 1);
    dedup_free(d);
}
END_TEST

START_TEST(test_at_the_bound_the_oldest_pair_is_forgotten_first)
{
    struct dedup *d = dedup_new(3, 60000);
    uint64_t lsn;
    for (uint64_t id = 1; id <= 4; id++)
        dedup_add(d, 1, id, 0, 10);
    ck_assert(!dedup_find(d, 1, 1, 20, &lsn));
    for (uint64_t id = 2; id <= 4; id++)
        ck_assert(dedup_find(d, 1, id, 20, &lsn));
    struct dedup_stats st;
    dedup_stats(d, &st);
    ck_assert_uint_eq(st.entries, 3);
    ck_assert_uint_eq(st.evicted_early, 1);
    dedup_free(d);
}
END_TEST

START_TEST(test_a_forgotten_pair_is_not_found_and_its_neighbours_are)
{
    struct dedup *d = dedup_new(8, 60000);
    uint64_t lsn;
    for (uint64_t id = 1; id <= 5; id++)
        dedup_add(d, 9, id, id, 0);
    dedup_forget(d, 9, 3);
    ck_assert(!dedup_find(d, 9, 3, 1, &lsn));
    for (uint64_t id = 1; id <= 5; id++)
        if (id != 3)
            ck_assert(dedup_find(d, 9, id, 1, &lsn) && lsn == id);
    dedup_add(d, 9, 3, 33, 2); /* back again, as a new acceptance */
    ck_assert(dedup_find(d, 9, 3, 3, &lsn) && lsn == 33);
    dedup_free(d);
}
END_TEST

/* Against a plain model: a sliding window over ids 1..n of a few producers,
 * with forgets mixed in, through many wraps of the ring. */
START_TEST(test_the_index_agrees_with_a_model_through_many_wraps)
{
    enum { CAP = 63, N = 20000, PRODUCERS = 3 }; /* CAP: 21 ids of each */
    struct dedup *d = dedup_new(CAP, UINT64_MAX / 2);
    static bool forgotten[PRODUCERS][N + 1];
    uint64_t lsn;
    srand(7);
    for (uint64_t id = 1; id <= N; id++) {
        for (uint64_t p = 1; p <= PRODUCERS; p++) {
            dedup_add(d, p, id, 0, id);
            if (rand() % 5 == 0) {
                dedup_forget(d, p, id);
                forgotten[p - 1][id] = true;
            }
        }
        /* The newest CAP entries are there unless forgotten; older ones are not. */
        uint64_t oldest = id > CAP / PRODUCERS ? id - CAP / PRODUCERS + 1 : 1;
        for (uint64_t p = 1; p <= PRODUCERS; p++) {
            uint64_t probe_id = oldest + (uint64_t)rand() % (id - oldest + 1);
            ck_assert_int_eq(dedup_find(d, p, probe_id, id, &lsn), !forgotten[p - 1][probe_id]);
            if (oldest > 1)
                ck_assert(!dedup_find(d, p, oldest - 1, id, &lsn));
        }
    }
    dedup_free(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dedup");
    TCase *tc = tcase_create("window");
    tcase_add_test(tc, test_a_pair_is_found_within_the_window_and_not_after);
    tcase_add_test(tc, test_at_the_bound_the_oldest_pair_is_forgotten_first);
    tcase_add_test(tc, test_a_forgotten_pair_is_not_found_and_its_neighbours_are);
    tcase_add_test(tc, test_the_index_agrees_with_a_model_through_many_wraps);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
