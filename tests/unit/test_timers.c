/*
 * test_timers.c - the core's timer heap (daemon/timers.h): timers come out
 * in due order however they were armed, moved and disarmed, and every
 * operation keeps each timer's slot true.
 */
#include <check.h>
#include <stdlib.h>

#include "timers.h"

/* Takes every timer out in heap order, checking the order. */
static size_t drain_in_order(struct timer_heap *h)
{
    size_t n = 0;
    uint64_t last = 0;
    struct timer *t;
    while ((t = timer_heap_top(h)) != NULL) {
        ck_assert_uint_ge(t->due, last);
        last = t->due;
        timer_disarm(h, t);
        ck_assert(!timer_armed(t));
        n++;
    }
    return n;
}

START_TEST(test_timers_come_out_in_due_order)
{
    struct timer_heap h;
    timer_heap_init(&h);
    ck_assert_ptr_null(timer_heap_top(&h));
    struct timer t[1000] = { 0 };
    srand(7);
    for (size_t i = 0; i < 1000; i++) {
        ck_assert_int_eq(timer_heap_reserve(&h), 0);
        timer_arm(&h, &t[i], (uint64_t)(rand() % 500));
    }
    ck_assert_uint_eq(drain_in_order(&h), 1000);
    timer_heap_free(&h);
}
END_TEST

START_TEST(test_moved_and_disarmed_timers_keep_the_heap_in_order)
{
    struct timer_heap h;
    timer_heap_init(&h);
    struct timer t[500] = { 0 };
    srand(11);
    for (size_t i = 0; i < 500; i++) {
        ck_assert_int_eq(timer_heap_reserve(&h), 0);
        timer_arm(&h, &t[i], (uint64_t)(rand() % 10000));
    }
    size_t armed = 500;
    for (size_t round = 0; round < 2000; round++) {
        struct timer *x = &t[rand() % 500];
        if (rand() % 3 == 0) {
            armed -= timer_armed(x);
            timer_disarm(&h, x);
        } else {
            if (!timer_armed(x)) {
                ck_assert_int_eq(timer_heap_reserve(&h), 0);
                armed++;
            }
            timer_arm(&h, x, (uint64_t)(rand() % 10000));
        }
        /* Every armed timer is where its slot says, after every round.
         * A plain comparison, not a ck_assert: each passing ck_assert
         * writes a mark to Check's message file, and a million of them
         * took longer than Check's timeout under ASan on a loaded machine. */
        for (size_t i = 0; i < h.count; i++) {
            if (h.items[i]->slot != i + 1)
                ck_abort_msg("round %zu: timer at %zu says slot %u", round, i, h.items[i]->slot);
        }
    }
    ck_assert_uint_eq(h.count, armed);
    ck_assert_uint_eq(drain_in_order(&h), armed);
    timer_heap_free(&h);
}
END_TEST

START_TEST(test_disarming_a_disarmed_timer_does_nothing)
{
    struct timer_heap h;
    timer_heap_init(&h);
    struct timer a = { 0 }, b = { 0 };
    timer_disarm(&h, &a);
    ck_assert_int_eq(timer_heap_reserve(&h), 0);
    timer_arm(&h, &a, 5);
    ck_assert_int_eq(timer_heap_reserve(&h), 0);
    timer_arm(&h, &b, 3);
    ck_assert_ptr_eq(timer_heap_top(&h), &b);
    timer_arm(&h, &a, 1); /* moved earlier */
    ck_assert_ptr_eq(timer_heap_top(&h), &a);
    timer_disarm(&h, &a);
    timer_disarm(&h, &a);
    ck_assert_uint_eq(h.count, 1);
    ck_assert_ptr_eq(timer_heap_top(&h), &b);
    timer_heap_free(&h);
}
END_TEST

START_TEST(test_timers_of_the_same_due_time_come_out_in_arming_order)
{
    struct timer_heap h;
    timer_heap_init(&h);
    h.next_order = UINT32_MAX - 50; /* the counter wraps on the way */
    struct timer t[200] = { 0 };
    for (size_t i = 0; i < 200; i++) {
        ck_assert_int_eq(timer_heap_reserve(&h), 0);
        timer_arm(&h, &t[i], i % 2 == 0 ? 10 : 20);
    }
    for (size_t i = 0; i < 200; i++) {
        struct timer *top = timer_heap_top(&h);
        size_t want = i < 100 ? 2 * i : 2 * (i - 100) + 1;
        ck_assert_ptr_eq(top, &t[want]);
        timer_disarm(&h, top);
    }
    timer_heap_free(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("timers");
    TCase *tc = tcase_create("heap");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_timers_come_out_in_due_order);
    tcase_add_test(tc, test_moved_and_disarmed_timers_keep_the_heap_in_order);
    tcase_add_test(tc, test_disarming_a_disarmed_timer_does_nothing);
    tcase_add_test(tc, test_timers_of_the_same_due_time_come_out_in_arming_order);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
