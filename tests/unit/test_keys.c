/* Unit tests for keys: builders, parser and the event-name guard. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"

/* 2026-03-01T07:59:59.999Z and the next millisecond. */
#define T_END_OF_HOUR (pipe_clock_from_civil(2026, 3, 1, 7, 59, 59, 999))
#define T_NEXT_HOUR   (pipe_clock_from_civil(2026, 3, 1, 8, 0, 0, 0))

static void test_keys_builders_follow_spec_layout(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 1024);
    assert_int_equal(pipe_keys_filtered(&b, T_END_OF_HOUR, "g1-web-1-00000001"), 0);
    assert_string_equal(b.data, "filtered/dt=2026-03-01/hr=07/g1-web-1-00000001.ndjson.zst");
    assert_int_equal(pipe_keys_rejected(&b, T_NEXT_HOUR, "n"), 0);
    assert_string_equal(b.data, "rejected/dt=2026-03-01/hr=08/n.ndjson.zst");
    assert_int_equal(pipe_keys_combined(&b, T_NEXT_HOUR, "job-7"), 0);
    assert_string_equal(b.data, "combined/dt=2026-03-01/hr=08/job-7.ndjson.zst");
    assert_int_equal(pipe_keys_split(&b, "page.view", T_NEXT_HOUR, "job-7"), 0);
    assert_string_equal(b.data, "split/page.view/dt=2026-03-01/hr=08/job-7.ndjson.zst");
    assert_int_equal(pipe_keys_job(&b, "job-7"), 0);
    assert_string_equal(b.data, "jobs/combine/job-7.json");
    assert_int_equal(pipe_keys_manifest(&b, "combined", "job-7"), 0);
    assert_string_equal(b.data, "manifests/combined/job-7.json");
    assert_int_equal(pipe_keys_manifest(&b, "split", "job-7"), 0);
    assert_string_equal(b.data, "manifests/split/job-7.json");
    assert_int_equal(pipe_keys_hour_prefix(&b, "filtered", T_END_OF_HOUR), 0);
    assert_string_equal(b.data, "filtered/dt=2026-03-01/hr=07/");
    assert_int_equal(pipe_keys_hour_prefix(&b, "split/signup", T_NEXT_HOUR), 0);
    assert_string_equal(b.data, "split/signup/dt=2026-03-01/hr=08/");
    pipe_buf_cleanup(&b);
}

static void test_keys_hour_boundaries_fall_in_the_right_partition(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 1024);
    /* New Year and a leap day, at the edges of the hour. */
    assert_int_equal(
        pipe_keys_filtered(&b, pipe_clock_from_civil(2024, 12, 31, 23, 59, 59, 999), "a"), 0);
    assert_string_equal(b.data, "filtered/dt=2024-12-31/hr=23/a.ndjson.zst");
    assert_int_equal(pipe_keys_filtered(&b, pipe_clock_from_civil(2025, 1, 1, 0, 0, 0, 0), "a"), 0);
    assert_string_equal(b.data, "filtered/dt=2025-01-01/hr=00/a.ndjson.zst");
    assert_int_equal(pipe_keys_filtered(&b, pipe_clock_from_civil(2024, 2, 29, 12, 30, 0, 0), "a"),
                     0);
    assert_string_equal(b.data, "filtered/dt=2024-02-29/hr=12/a.ndjson.zst");
    assert_int_equal(pipe_keys_filtered(&b, 0, "a"), 0);
    assert_string_equal(b.data, "filtered/dt=1970-01-01/hr=00/a.ndjson.zst");
    /* Outside 1970..9999 there is no four-digit dt=. */
    assert_int_equal(pipe_keys_filtered(&b, -1, "x"), PIPE_EINVAL);
    assert_int_equal(pipe_keys_filtered(&b, pipe_clock_from_civil(10000, 1, 1, 0, 0, 0, 0), "x"),
                     PIPE_EINVAL);
    assert_string_equal(b.data, "filtered/dt=1970-01-01/hr=00/a.ndjson.zst"); /* unchanged */
    pipe_buf_cleanup(&b);
}

static void test_keys_builders_reject_bad_names_and_kinds(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 1024);
    assert_int_equal(pipe_keys_filtered(&b, T_NEXT_HOUR, "../etc"), PIPE_EINVAL);
    assert_int_equal(pipe_keys_filtered(&b, T_NEXT_HOUR, "a/b"), PIPE_EINVAL);
    assert_int_equal(pipe_keys_filtered(&b, T_NEXT_HOUR, ""), PIPE_EINVAL);
    assert_int_equal(pipe_keys_filtered(&b, T_NEXT_HOUR, NULL), PIPE_EINVAL);
    assert_int_equal(pipe_keys_job(&b, ".hidden"), PIPE_EINVAL);
    assert_int_equal(pipe_keys_manifest(&b, "combine", "j"), PIPE_EINVAL);
    assert_int_equal(pipe_keys_manifest(&b, "../split", "j"), PIPE_EINVAL);
    assert_int_equal(pipe_keys_hour_prefix(&b, "raw", T_NEXT_HOUR), PIPE_EINVAL);
    assert_int_equal(pipe_keys_hour_prefix(&b, "split/../x", T_NEXT_HOUR), PIPE_EINVAL);
    assert_int_equal(pipe_keys_split(&b, "../x", T_NEXT_HOUR, "j"), PIPE_EINVAL);
    assert_null(b.data);
    /* A cap too small for the key: ETOOBIG, buffer untouched. */
    struct pipe_buf tiny;
    pipe_buf_init(&tiny, 10);
    assert_int_equal(pipe_keys_job(&tiny, "job-7"), PIPE_ETOOBIG);
    assert_int_equal(tiny.len, 0);
    pipe_buf_cleanup(&tiny);
    pipe_buf_cleanup(&b);
}

static void test_keys_event_guard_rejects_hostile_names(void **state)
{
    (void)state;
    char long_ok[129], long_bad[130];
    memset(long_ok, 'a', 128);
    long_ok[128] = '\0';
    memset(long_bad, 'a', 129);
    long_bad[129] = '\0';
    const char *good[] = {"a", "Z", "9", "page_view", "app.open", "sign-up", "a..b", long_ok};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(pipe_keys_event_valid(good[i], strlen(good[i])));
    const char *bad[] = {"../x",         "a/b",        "",       ".x",  "..",   ".",
                         "-a",           "_a",         "a\\b",   "a b", "a\nb", "a\x01",
                         "\xc3\xa9vent", "ev\xc3\xa9", long_bad, "a:b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(pipe_keys_event_valid(bad[i], strlen(bad[i])));
    /* Length is explicit: an embedded NUL is not a terminator. */
    assert_false(pipe_keys_event_valid("ab\0/", 4));
    assert_true(pipe_keys_event_valid("ab\0/", 2));
    assert_false(pipe_keys_event_valid(NULL, 0));
}

static void test_keys_instance_rule(void **state)
{
    (void)state;
    char s65[66];
    memset(s65, 'i', 65);
    s65[65] = '\0';
    assert_true(pipe_keys_instance_valid("filter-0.pod_a"));
    assert_true(pipe_keys_instance_valid(s65 + 1)); /* 64 */
    assert_false(pipe_keys_instance_valid(s65));
    assert_false(pipe_keys_instance_valid(""));
    assert_false(pipe_keys_instance_valid("a/b"));
    assert_false(pipe_keys_instance_valid(NULL));
}

static void test_keys_names_are_deterministic_and_sortable(void **state)
{
    (void)state;
    struct pipe_buf a, b;
    pipe_buf_init(&a, 1024);
    pipe_buf_init(&b, 1024);
    assert_int_equal(pipe_keys_http_name(&a, 1, "f0", 1700000000123, 42), 0);
    assert_string_equal(a.data, "g1-f0-1700000000123-00000042");
    assert_int_equal(pipe_keys_http_name(&b, 1, "f0", 1700000000123, 100), 0);
    assert_true(strcmp(a.data, b.data) < 0);
    assert_int_equal(pipe_keys_http_name(&b, 1, "f0", 999, 1), 0);
    assert_string_equal(b.data, "g1-f0-0000000000999-00000001"); /* padded: sorts */
    assert_int_equal(pipe_keys_http_name(&b, 1, "a/b", 1, 1), PIPE_EINVAL);
    assert_int_equal(pipe_keys_http_name(&b, 1, "f0", -1, 1), PIPE_EINVAL);

    assert_int_equal(pipe_keys_raw_name(&a, 2, "raw/2026/x.json", "\"etag1\""), 0);
    assert_int_equal(pipe_keys_raw_name(&b, 2, "raw/2026/x.json", "\"etag1\""), 0);
    assert_string_equal(a.data, b.data);
    assert_int_equal(a.len, strlen("g2-raw-") + 16);
    assert_memory_equal(a.data, "g2-raw-", 7);
    assert_true(pipe_keys_name_valid(a.data));
    assert_int_equal(pipe_keys_raw_name(&b, 2, "raw/2026/x.json", "\"etag2\""), 0);
    assert_string_not_equal(a.data, b.data);
    assert_int_equal(pipe_keys_raw_name(&b, 3, "raw/2026/x.json", "\"etag1\""), 0);
    assert_string_equal(a.data + 2, b.data + 2); /* same hash, new generation */
    /* The separator keeps key/etag boundaries apart. */
    assert_int_equal(pipe_keys_raw_name(&a, 1, "ab", "c"), 0);
    assert_int_equal(pipe_keys_raw_name(&b, 1, "a", "bc"), 0);
    assert_string_not_equal(a.data, b.data);
    pipe_buf_cleanup(&a);
    pipe_buf_cleanup(&b);
}

static void test_keys_pipeline_state_keys_follow_the_compaction_layout(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 4096);
    assert_int_equal(pipe_keys_split_job(&b, "g1-2026030107-00000000000000ff"), 0);
    assert_string_equal(b.data, "jobs/split/g1-2026030107-00000000000000ff.json");
    assert_int_equal(pipe_keys_combine_done(&b, T_END_OF_HOUR, "g1-web-1-00000001"), 0);
    assert_string_equal(b.data, "state/combine/dt=2026-03-01/hr=07/g1-web-1-00000001");
    assert_int_equal(pipe_keys_dedup_index(&b, T_NEXT_HOUR, "g2-x"), 0);
    assert_string_equal(b.data, "state/dedup/dt=2026-03-01/hr=08/g2-x.idx");
    assert_int_equal(pipe_keys_job_id(&b, 3, T_END_OF_HOUR, 0xabcULL), 0);
    assert_string_equal(b.data, "g3-2026030107-0000000000000abc");
    assert_true(pipe_keys_name_valid(b.data));
    assert_int_equal(pipe_keys_hour_prefix(&b, "state/combine", T_NEXT_HOUR), 0);
    assert_string_equal(b.data, "state/combine/dt=2026-03-01/hr=08/");
    int64_t hour = 0;
    assert_int_equal(pipe_keys_job_id(&b, 3, T_END_OF_HOUR, 0xabcULL), 0);
    assert_true(pipe_keys_job_hour(b.data, &hour));
    assert_int_equal(hour, T_NEXT_HOUR - 3600000);
    assert_false(pipe_keys_job_hour("g1-2026130107-0000000000000abc", &hour));
    assert_false(pipe_keys_job_hour("g1-2026030107-0000000000000abc-x", &hour));
    assert_false(pipe_keys_job_hour("x1-2026030107-0000000000000abc", &hour));
    char id[PIPE_KEYS_NAME_MAX + 1];
    assert_true(pipe_keys_job_of("manifests/combined/g1-x.json", "manifests/combined/", id));
    assert_string_equal(id, "g1-x");
    assert_false(pipe_keys_job_of("manifests/combined/g1-x.txt", "manifests/combined/", id));
    assert_false(pipe_keys_job_of("jobs/split/a/b.json", "jobs/split/", id));
    assert_int_equal(pipe_keys_split_job(&b, "../x"), PIPE_EINVAL);
    assert_int_equal(pipe_keys_combine_done(&b, -1, "x"), PIPE_EINVAL);
    assert_int_equal(pipe_keys_dedup_index(&b, T_NEXT_HOUR, "a/b"), PIPE_EINVAL);
    assert_int_equal(pipe_keys_hour_prefix(&b, "state/other", T_NEXT_HOUR), PIPE_EINVAL);
    pipe_buf_cleanup(&b);
}

/* A job id names the hour of its inputs only when pipe_keys_job_id could
 * have made it: an impossible date (Feb 30) would name another hour, and a
 * generation with leading zeros another id, so both are refused, and a
 * refused id leaves the hour alone. Found by fuzz_keys. */
static void test_keys_job_hour_refuses_ids_the_builder_cannot_make(void **state)
{
    (void)state;
    int64_t hour = 42;
    assert_false(pipe_keys_job_hour("g1-2026023017-0123456789abcdef", &hour));
    assert_false(pipe_keys_job_hour("g1-2025022900-0123456789abcdef", &hour));
    assert_false(pipe_keys_job_hour("g1-2026043100-0123456789abcdef", &hour));
    assert_false(pipe_keys_job_hour("g06-2026112217-0123456789abcdef", &hour));
    assert_false(pipe_keys_job_hour("g00-2026112217-0123456789abcdef", &hour));
    assert_int_equal(hour, 42);
    assert_true(pipe_keys_job_hour("g0-2024022923-0123456789abcdef", &hour));
    assert_int_equal(hour, pipe_clock_from_civil(2024, 2, 29, 23, 0, 0, 0));
    assert_true(pipe_keys_job_hour("g10-9999123123-0123456789abcdef", &hour));
    assert_int_equal(hour, pipe_clock_from_civil(9999, 12, 31, 23, 0, 0, 0));
}

/* The lease a job runs under is named from its queue and id, and a job id
 * the builders would refuse names no lease either. */
static void test_keys_job_lease_names_follow_the_queue(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 1024);
    assert_int_equal(pipe_keys_job_lease(&b, PIPE_KEYS_JOBS_COMBINE, "g1-x"), 0);
    assert_string_equal(b.data, "combine/g1-x");
    assert_int_equal(pipe_keys_job_lease(&b, PIPE_KEYS_JOBS_SPLIT, "g1-x"), 0);
    assert_string_equal(b.data, "split/g1-x");
    assert_int_equal(pipe_keys_job_lease(&b, "jobs/other/", "g1-x"), PIPE_EINVAL);
    assert_int_equal(pipe_keys_job_lease(&b, PIPE_KEYS_JOBS_SPLIT, "../x"), PIPE_EINVAL);
    assert_int_equal(pipe_keys_job(&b, "g1-x"), 0);
    assert_string_equal(b.data, PIPE_KEYS_JOBS_COMBINE "g1-x.json");
    pipe_buf_cleanup(&b);
}

static void test_keys_parse_round_trips_builders(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 1024);
    struct pipe_key_parts p;
    int64_t t = pipe_clock_from_civil(2025, 7, 4, 13, 45, 12, 5);
    int64_t hour = pipe_clock_from_civil(2025, 7, 4, 13, 0, 0, 0);

    assert_int_equal(pipe_keys_split(&b, "app.open", t, "g1-job-3"), 0);
    assert_int_equal(pipe_keys_parse(b.data, &p), 0);
    assert_string_equal(p.prefix, "split");
    assert_string_equal(p.event, "app.open");
    assert_string_equal(p.dt, "2025-07-04");
    assert_string_equal(p.hr, "13");
    assert_string_equal(p.name, "g1-job-3");
    assert_int_equal(p.hour_ms, hour);

    int (*build[])(struct pipe_buf *, int64_t,
                   const char *) = {pipe_keys_filtered, pipe_keys_rejected, pipe_keys_combined};
    const char *prefix[] = {"filtered", "rejected", "combined"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(build[i](&b, t, "n.1"), 0);
        assert_int_equal(pipe_keys_parse(b.data, &p), 0);
        assert_string_equal(p.prefix, prefix[i]);
        assert_string_equal(p.event, "");
        assert_string_equal(p.name, "n.1");
        assert_int_equal(p.hour_ms, hour);
    }
    pipe_buf_cleanup(&b);
}

static void test_keys_parse_rejects_malformed_keys(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "filtered",
        "raw/dt=2025-01-01/hr=00/a.ndjson.zst",
        "jobs/combine/x.json",
        "filtered/dt=2025-01-01/hr=00/a.ndjson",
        "filtered/dt=2025-01-01/hr=00/.ndjson.zst",
        "filtered/dt=2025-01-01/hr=00/../a.ndjson.zst",
        "filtered/dt=2025-01-01/hr=00/a/b.ndjson.zst",
        "filtered/dt=2025-01-01/hr=24/a.ndjson.zst",
        "filtered/dt=2025-02-30/hr=00/a.ndjson.zst",
        "filtered/dt=2025-13-01/hr=00/a.ndjson.zst",
        "filtered/dt=2025-1-01/hr=00/a.ndjson.zst",
        "filtered/dt=2025-01-01/hr=0/a.ndjson.zst",
        "filtered/dt=2025-01-01/hr=00",
        "filtered/dt=2025-01-01/hr=00/",
        "split/dt=2025-01-01/hr=00/a.ndjson.zst",
        "split/../dt=2025-01-01/hr=00/a.ndjson.zst",
        "split/.e/dt=2025-01-01/hr=00/a.ndjson.zst",
        "split/e/f/dt=2025-01-01/hr=00/a.ndjson.zst",
        "combinedX/dt=2025-01-01/hr=00/a.ndjson.zst",
    };
    struct pipe_key_parts p;
    memset(&p, 0x5a, sizeof p);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pipe_keys_parse(bad[i], &p), PIPE_EINVAL);
    assert_int_equal(pipe_keys_parse(NULL, &p), PIPE_EINVAL);
    assert_int_equal((unsigned char)p.prefix[0], 0x5a); /* untouched */
    assert_int_equal(pipe_keys_parse("rejected/dt=2024-02-29/hr=23/a.ndjson.zst", &p), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_builders_follow_spec_layout),
        cmocka_unit_test(test_keys_hour_boundaries_fall_in_the_right_partition),
        cmocka_unit_test(test_keys_builders_reject_bad_names_and_kinds),
        cmocka_unit_test(test_keys_event_guard_rejects_hostile_names),
        cmocka_unit_test(test_keys_instance_rule),
        cmocka_unit_test(test_keys_names_are_deterministic_and_sortable),
        cmocka_unit_test(test_keys_pipeline_state_keys_follow_the_compaction_layout),
        cmocka_unit_test(test_keys_job_lease_names_follow_the_queue),
        cmocka_unit_test(test_keys_job_hour_refuses_ids_the_builder_cannot_make),
        cmocka_unit_test(test_keys_parse_round_trips_builders),
        cmocka_unit_test(test_keys_parse_rejects_malformed_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
