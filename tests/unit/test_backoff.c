/* Unit tests for the backoff (libpipe/backoff.h): full jitter under a
 * doubling, capped ceiling, and a generator seeded per handle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "libpipe/backoff.h"

static void test_backoff_waits_stay_under_a_doubling_capped_ceiling(void **state)
{
    (void)state;
    struct pipe_backoff b;
    pipe_backoff_init(&b, 100, 1000);
    const int64_t ceiling[] = {100, 200, 400, 800, 1000, 1000, 1000};
    for (int round = 0; round < 200; round++) {
        pipe_backoff_reset(&b);
        for (size_t i = 0; i < sizeof ceiling / sizeof *ceiling; i++) {
            int64_t w = pipe_backoff_next(&b);
            assert_true(w >= 0);
            assert_true(w <= ceiling[i]);
        }
    }
}

/* Full jitter: over many draws the waits of one ceiling spread over all of
 * [0, ceiling], not only its upper half. */
static void test_backoff_full_jitter_spreads_over_the_whole_range(void **state)
{
    (void)state;
    struct pipe_backoff b;
    pipe_backoff_init(&b, 1000, 1000);
    int64_t lo = 1000, hi = 0;
    for (int i = 0; i < 1000; i++) {
        int64_t w = pipe_backoff_next(&b);
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
    }
    assert_true(lo < 100);
    assert_true(hi > 900);
}

/* Two handles (as two processes) draw different waits: a seeded generator,
 * not rand() that every process starts at the same place. */
static void test_backoff_handles_are_seeded_apart(void **state)
{
    (void)state;
    struct pipe_backoff a, b;
    pipe_backoff_init(&a, 30000, 30000);
    pipe_backoff_init(&b, 30000, 30000);
    int same = 0;
    for (int i = 0; i < 16; i++)
        same += pipe_backoff_next(&a) == pipe_backoff_next(&b);
    assert_true(same < 4);
}

static void test_backoff_huge_attempts_do_not_overflow(void **state)
{
    (void)state;
    struct pipe_backoff b;
    pipe_backoff_init(&b, 1, INT64_C(1) << 40);
    for (int i = 0; i < 200; i++) {
        int64_t w = pipe_backoff_next(&b);
        assert_true(w >= 0 && w <= INT64_C(1) << 40);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_waits_stay_under_a_doubling_capped_ceiling),
        cmocka_unit_test(test_backoff_full_jitter_spreads_over_the_whole_range),
        cmocka_unit_test(test_backoff_handles_are_seeded_apart),
        cmocka_unit_test(test_backoff_huge_attempts_do_not_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
