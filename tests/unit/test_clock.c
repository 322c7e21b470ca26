/* Unit tests for clock: RFC 3339 round trips, partitions, command-line times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"

static int parse(const char *s, int64_t *ms)
{
    return pipe_clock_parse_rfc3339(s, strlen(s), ms);
}

static void test_clock_format_and_parse_round_trip(void **state)
{
    (void)state;
    char out[PIPE_CLOCK_RFC3339_LEN + 1];
    int64_t ms;
    pipe_clock_format_rfc3339(1795367149123LL, out);
    assert_string_equal(out, "2026-11-22T17:05:49.123Z");
    assert_int_equal(parse(out, &ms), 0);
    assert_int_equal(ms, 1795367149123LL);
    pipe_clock_format_rfc3339(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
}

static void test_clock_parse_accepts_offsets_and_fractions(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(parse("2026-11-22T18:05:49+01:00", &ms), 0);
    assert_int_equal(ms, 1795367149000LL);
    assert_int_equal(parse("2026-11-22t17:05:49.5z", &ms), 0);
    assert_int_equal(ms, 1795367149500LL);
    assert_int_equal(parse("2024-02-29T00:00:00.123456789Z", &ms), 0);
}

static void test_clock_parse_rejects_malformed_times(void **state)
{
    (void)state;
    int64_t ms = 42;
    const char *bad[] = {"",
                         "2026-11-22",
                         "2026-13-01T00:00:00Z",
                         "2025-02-29T00:00:00Z",
                         "2026-11-22T24:00:00Z",
                         "2026-11-22T17:05:49",
                         "2026-11-22T17:05:49.Z",
                         "2026-11-22T17:05:49Zjunk",
                         "1969-12-31T23:59:59Z",
                         "abcd-ef-ghT00:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse(bad[i], &ms), PIPE_EINVAL);
    assert_int_equal(ms, 42);
}

static void test_clock_partition_names_the_hour(void **state)
{
    (void)state;
    char dt[11], hr[3];
    pipe_clock_partition(1795367149123LL, dt, hr);
    assert_string_equal(dt, "2026-11-22");
    assert_string_equal(hr, "17");
}

static void test_clock_parse_time_understands_relative_and_short_forms(void **state)
{
    (void)state;
    int64_t ms, now = 1795367149123LL;
    assert_int_equal(pipe_clock_parse_time("-2h", now, &ms), 0);
    assert_int_equal(ms, now - 7200000);
    assert_int_equal(pipe_clock_parse_time("2026-11-22", now, &ms), 0);
    assert_int_equal(ms, 1795305600000LL);
    assert_int_equal(pipe_clock_parse_time("2026-11-22T17", now, &ms), 0);
    assert_int_equal(ms, 1795366800000LL);
    assert_int_equal(pipe_clock_parse_time("now", now, &ms), 0);
    assert_int_equal(ms, now);
    assert_int_equal(pipe_clock_parse_time("-2x", now, &ms), PIPE_EINVAL);
}

static void test_clock_hour_floor_rounds_down_also_before_1970(void **state)
{
    (void)state;
    assert_int_equal(PIPE_DAY_MS, 86400000);
    assert_int_equal(PIPE_HOUR_MS, 3600000);
    assert_int_equal(pipe_clock_hour_floor(1795367149123LL), 1795366800000LL);
    assert_int_equal(pipe_clock_hour_floor(1795366800000LL), 1795366800000LL);
    assert_int_equal(pipe_clock_hour_floor(0), 0);
    assert_int_equal(pipe_clock_hour_floor(-1), -3600000);
    assert_int_equal(pipe_clock_hour_floor(-3600000), -3600000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_format_and_parse_round_trip),
        cmocka_unit_test(test_clock_parse_accepts_offsets_and_fractions),
        cmocka_unit_test(test_clock_parse_rejects_malformed_times),
        cmocka_unit_test(test_clock_partition_names_the_hour),
        cmocka_unit_test(test_clock_parse_time_understands_relative_and_short_forms),
        cmocka_unit_test(test_clock_hour_floor_rounds_down_also_before_1970),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
