/* Unit tests for dedup and its `local` backend: key hashing, the index
 * object format (round trip, byte layout, hostile inputs), window expiry of
 * the in-memory claims, the lost-lease undo and argument checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/dedup.h"
#include "libpipe/dedup_int.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/lease.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/store.h"
#include "tests/support/testutil.h"

#define HOUR_MS (3600LL * 1000)

/* ---- key hashing ---------------------------------------------------------- */

static void test_dedup_key_is_xxh3_128_of_event_nul_id(void **state)
{
    (void)state;
    struct pipe_dedup_key a, b;
    pipe_dedup_key_of("signup", 6, "u-1", 3, &a);
    pipe_dedup_key_of("signup", 6, "u-1", 3, &b);
    assert_memory_equal(&a, &b, sizeof a);
    XXH128_hash_t h = XXH3_128bits("signup\0u-1", 10);
    assert_true(a.hi == h.high64);
    assert_true(a.lo == h.low64);
    pipe_dedup_key_of("signup", 6, "u-2", 3, &b);
    assert_memory_not_equal(&a, &b, sizeof a);
}

static void test_dedup_key_keeps_event_id_boundary(void **state)
{
    (void)state;
    struct pipe_dedup_key a, b;
    pipe_dedup_key_of("ab", 2, "c", 1, &a);
    pipe_dedup_key_of("a", 1, "bc", 2, &b);
    assert_memory_not_equal(&a, &b, sizeof a);
    pipe_dedup_key_of("abc", 3, "", 0, &b);
    assert_memory_not_equal(&a, &b, sizeof a);
}

static void test_dedup_key_of_long_id_matches_one_shot_hash(void **state)
{
    (void)state;
    /* Past the stack copy: the streaming path must give the same hash. */
    size_t idlen = 3000;
    char *buf = pipe_malloc(4 + 1 + idlen);
    memcpy(buf, "ev.x", 4);
    buf[4] = '\0';
    for (size_t i = 0; i < idlen; i++)
        buf[5 + i] = (char)('a' + i % 26);
    struct pipe_dedup_key k;
    pipe_dedup_key_of(buf, 4, buf + 5, idlen, &k);
    XXH128_hash_t h = XXH3_128bits(buf, 5 + idlen);
    assert_true(k.hi == h.high64 && k.lo == h.low64);
    pipe_free(buf);
}

/* ---- index objects ---------------------------------------------------------- */

static struct pipe_dedup_key sorted_key(uint64_t i)
{
    return (struct pipe_dedup_key){.hi = i >> 1, .lo = i * 0x9e3779b97f4a7c15ULL};
}

static void test_dedup_index_round_trips(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct pipe_dedup_key *k = pipe_malloc(N * sizeof *k);
    for (uint64_t i = 0; i < N; i++)
        k[i] = sorted_key(i);
    qsort(k, N, sizeof *k, pipe__dedup_key_cmp);
    struct pipe_buf enc, enc2;
    pipe_buf_init(&enc, 1 << 20);
    pipe_buf_init(&enc2, 1 << 20);
    assert_int_equal(pipe__dedup_index_encode("g1-2026112217-00ff", k, N, &enc), 0);
    assert_true(pipe_codec_is_zstd(enc.data, enc.len));
    /* Deterministic: same claims, same bytes. */
    assert_int_equal(pipe__dedup_index_encode("g1-2026112217-00ff", k, N, &enc2), 0);
    assert_int_equal(enc.len, enc2.len);
    assert_memory_equal(enc.data, enc2.data, enc.len);
    struct pipe__dedup_index ix = {0};
    assert_int_equal(pipe__dedup_index_decode(enc.data, enc.len, "g1-2026112217-00ff", &ix), 0);
    assert_string_equal(ix.job_id, "g1-2026112217-00ff");
    assert_int_equal(ix.count, N);
    assert_memory_equal(ix.keys, k, N * sizeof *k);
    pipe__dedup_index_cleanup(&ix);
    /* An empty index is valid too. */
    assert_int_equal(pipe__dedup_index_encode("j", NULL, 0, &enc), 0);
    assert_int_equal(pipe__dedup_index_decode(enc.data, enc.len, NULL, &ix), 0);
    assert_int_equal(ix.count, 0);
    assert_null(ix.keys);
    pipe__dedup_index_cleanup(&ix);
    pipe_buf_cleanup(&enc);
    pipe_buf_cleanup(&enc2);
    pipe_free(k);
}

static void test_dedup_index_layout_is_big_endian(void **state)
{
    (void)state;
    struct pipe_dedup_key k[2] = {
        {.hi = 0x0102030405060708ULL, .lo = 0x1112131415161718ULL},
        {.hi = 0xf1f2f3f4f5f6f7f8ULL, .lo = 0x0000000000000001ULL},
    };
    struct pipe_buf enc, plain;
    pipe_buf_init(&enc, 4096);
    pipe_buf_init(&plain, 4096);
    assert_int_equal(pipe__dedup_index_encode("job-7", k, 2, &enc), 0);
    assert_int_equal(pipe_codec_decompress(enc.data, enc.len, &plain), 0);
    /* clang-format off */
    static const unsigned char want[] = {
        'S', 'L', 'D', 'X', 1, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 2, 'j', 'o', 'b', '-', '7',
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
        0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0, 0, 0, 0, 0, 0, 0, 1,
    };
    /* clang-format on */
    assert_int_equal(plain.len, sizeof want);
    assert_memory_equal(plain.data, want, sizeof want);
    pipe_buf_cleanup(&enc);
    pipe_buf_cleanup(&plain);
}

/* Compresses raw (already laid out) bytes and expects the decoder to refuse. */
static void expect_corrupt(const void *raw, size_t len, const char *expect_job)
{
    struct pipe_buf z;
    struct pipe_zwriter *w = NULL;
    pipe_buf_init(&z, 1 << 20);
    assert_int_equal(pipe_zwriter_new(1, &z, &w), 0);
    assert_int_equal(pipe_zwriter_write(w, raw, len), 0);
    assert_int_equal(pipe_zwriter_finish(w), 0);
    struct pipe__dedup_index ix;
    memset(&ix, 0x5a, sizeof ix);
    assert_int_equal(pipe__dedup_index_decode(z.data, z.len, expect_job, &ix), PIPE_ECORRUPT);
    assert_int_equal(((unsigned char *)&ix)[0], 0x5a); /* untouched */
    pipe_zwriter_free(w);
    pipe_buf_cleanup(&z);
}

static void test_dedup_index_decode_refuses_hostile_objects(void **state)
{
    (void)state;
    /* A valid object of one key, to be damaged in one place at a time. */
    unsigned char ok[16 + 3 + 32] = {'S', 'L', 'D', 'X', 1, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 2};
    memcpy(ok + 16, "job", 3);
    ok[19 + 15] = 1;
    ok[19 + 31] = 2;
    unsigned char b[sizeof ok];
    struct pipe__dedup_index ix = {0};
    struct pipe_buf z;
    pipe_buf_init(&z, 4096);
    struct pipe_zwriter *w = NULL;
    assert_int_equal(pipe_zwriter_new(1, &z, &w), 0);
    assert_int_equal(pipe_zwriter_write(w, ok, sizeof ok), 0);
    assert_int_equal(pipe_zwriter_finish(w), 0);
    assert_int_equal(pipe__dedup_index_decode(z.data, z.len, "job", &ix), 0);
    assert_int_equal(ix.count, 2);
    pipe__dedup_index_cleanup(&ix);
    /* Not zstd at all, even if the plain bytes would parse. */
    assert_int_equal(pipe__dedup_index_decode(ok, sizeof ok, "job", &ix), PIPE_ECORRUPT);
    /* A truncated frame. */
    assert_int_equal(pipe__dedup_index_decode(z.data, z.len - 3, "job", &ix), PIPE_ECORRUPT);

    expect_corrupt(ok, sizeof ok, "other-job"); /* names another job */
    expect_corrupt(ok, 10, NULL);               /* shorter than a header */
    expect_corrupt(ok, sizeof ok - 1, NULL);    /* a partial key */
    memcpy(b, ok, sizeof b);
    b[0] = 'X'; /* magic */
    expect_corrupt(b, sizeof b, NULL);
    memcpy(b, ok, sizeof b);
    b[4] = 2; /* version */
    expect_corrupt(b, sizeof b, NULL);
    memcpy(b, ok, sizeof b);
    b[15] = 3; /* count larger than the keys present */
    expect_corrupt(b, sizeof b, NULL);
    memcpy(b, ok, sizeof b);
    b[8] = 0x7f; /* a count no memory could hold: must not be allocated */
    expect_corrupt(b, sizeof b, NULL);
    memcpy(b, ok, sizeof b);
    b[7] = 200; /* job id longer than the object */
    expect_corrupt(b, sizeof b, NULL);
    memcpy(b, ok, sizeof b);
    b[7] = 0; /* empty job id */
    expect_corrupt(b, sizeof b, NULL);
    memcpy(b, ok, sizeof b);
    b[16] = '/'; /* job id that is not a name */
    expect_corrupt(b, sizeof b, NULL);
    memcpy(b, ok, sizeof b);
    b[19 + 31] = 1; /* two equal keys */
    expect_corrupt(b, sizeof b, NULL);
    memcpy(b, ok, sizeof b);
    b[19 + 31] = 0; /* keys out of order */
    expect_corrupt(b, sizeof b, NULL);
    pipe_zwriter_free(w);
    pipe_buf_cleanup(&z);
}

static void test_dedup_job_of_key_takes_name_before_idx(void **state)
{
    (void)state;
    char job[256];
    assert_true(pipe__dedup_job_of_key("state/dedup/dt=2026-01-01/hr=00/g1-x.idx", job));
    assert_string_equal(job, "g1-x");
    assert_false(pipe__dedup_job_of_key("state/dedup/dt=2026-01-01/hr=00/g1-x.json", job));
    assert_false(pipe__dedup_job_of_key("state/dedup/dt=2026-01-01/hr=00/.idx", job));
    assert_false(pipe__dedup_job_of_key("state/dedup/dt=2026-01-01/hr=00/-x.idx", job));
}

/* ---- the local backend ---------------------------------------------------- */

static int setup(void **state)
{
    struct tu_env *f = tu_env_new("dedup-local");
    *state = f;
    return f ? 0 : -1;
}

static int teardown(void **state)
{
    tu_env_free(*state);
    return 0;
}

/* Key number j is the same whatever range it is made in. */
static struct pipe_dedup_key *make_keys(int first, size_t n)
{
    struct pipe_dedup_key *k = pipe_malloc(n * sizeof *k);
    for (size_t i = 0; i < n; i++) {
        uint64_t j = (uint64_t)first + i;
        k[i] = (struct pipe_dedup_key){.hi = XXH3_64bits(&j, sizeof j), .lo = j};
    }
    return k;
}

/* Claims keys [first, first + n) for job at the hour of t (also "now"),
 * expecting verdict want for every key. */
static void claim_at(struct pipe_dedup *d, const char *job, int64_t t, int first, size_t n,
                     int want)
{
    struct pipe_dedup_key *k = make_keys(first, n);
    uint8_t *v = pipe_malloc(n);
    int rc = pipe_dedup_claim(d, job, t, t, k, n, v);
    if (rc != 0)
        fail_msg("claim %s: %s", job, pipe_strerror(rc));
    for (size_t i = 0; i < n; i++)
        if (v[i] != want)
            fail_msg("claim %s key %zu: verdict %d, want %d", job, i, v[i], want);
    pipe_free(v);
    pipe_free(k);
}

static void test_dedup_local_memory_drops_claims_past_window(void **state)
{
    struct tu_env *f = *state;
    struct pipe_dedup_config cfg = {.window_ms = 24 * HOUR_MS};
    int64_t t0 = pipe_clock_from_civil(2026, 3, 1, 10, 0, 0, 0);
    struct pipe_dedup *d = NULL;
    assert_int_equal(pipe_dedup_open("local", f->store, f->leases, &cfg, &d), 0);
    claim_at(d, "job-a", t0 + 5 * 60000, 0, 100, PIPE_DEDUP_NEW);
    uint64_t keys, bytes;
    pipe_dedup_memory(d, &keys, &bytes);
    assert_int_equal(keys, 100);
    assert_true(bytes >= 100 * 32);
    /* 24 h 30 min later the hour of job-a is still the window's first. */
    claim_at(d, "job-b", t0 + 24 * HOUR_MS + 30 * 60000, 0, 100, PIPE_DEDUP_DUP);
    /* One hour more and it has left: memory forgets it, as the store does. */
    claim_at(d, "job-c", t0 + 25 * HOUR_MS + 30 * 60000, 1000, 10, PIPE_DEDUP_NEW);
    pipe_dedup_memory(d, &keys, &bytes);
    assert_int_equal(keys, 10);
    claim_at(d, "job-c", t0 + 25 * HOUR_MS + 30 * 60000, 0, 100, PIPE_DEDUP_NEW);
    pipe_dedup_free(d);
}

static void test_dedup_local_grows_table_and_keeps_every_key(void **state)
{
    struct tu_env *f = *state;
    struct pipe_dedup *d = NULL;
    int64_t now = pipe_clock_now_ms();
    assert_int_equal(pipe_dedup_open(NULL, f->store, f->leases, NULL, &d), 0);
    for (int round = 0; round < 5; round++)
        claim_at(d, "job-grow", now, round * 10000, 10000, PIPE_DEDUP_NEW);
    claim_at(d, "job-other", now, 0, 50000, PIPE_DEDUP_DUP);
    uint64_t keys, bytes;
    pipe_dedup_memory(d, &keys, &bytes);
    assert_int_equal(keys, 50000);
    assert_true(bytes < 50000 * 96); /* 32-byte slots, at least 3/8 full */
    pipe_dedup_free(d);
}

static void test_dedup_local_lost_lease_restores_previous_index(void **state)
{
    struct tu_env *f = *state;
    enum { N = 100000 };
    int64_t now = pipe_clock_now_ms();
    struct pipe_dedup *d = NULL, *slow = NULL;
    assert_int_equal(pipe_dedup_open("local", f->store, f->leases, NULL, &d), 0);
    claim_at(d, "job-a", now, 0, 10, PIPE_DEDUP_NEW);
    struct pipe_buf key;
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    assert_int_equal(pipe_keys_dedup_index(&key, now, "job-a"), 0);
    size_t len0;
    char *path = pipe_asprintf("%s/store/%s", f->dir, key.data);
    char *before = tu_read_file(path, &len0);
    assert_non_null(before);

    /* A 1 ms lease runs out long before 100k keys are sorted and written. */
    struct pipe_dedup_config cfg = {.lease_ttl_ms = 1};
    assert_int_equal(pipe_dedup_open("local", f->store, f->leases, &cfg, &slow), 0);
    struct pipe_dedup_key *k = make_keys(0, N);
    uint8_t *v = pipe_malloc(N);
    assert_int_equal(pipe_dedup_claim(slow, "job-a", now, now, k, N, v), PIPE_ELOST);
    size_t len1;
    char *after = tu_read_file(path, &len1);
    assert_non_null(after);
    assert_int_equal(len1, len0);
    assert_memory_equal(after, before, len0);
    /* And a job that never existed leaves nothing behind. */
    assert_int_equal(pipe_dedup_claim(slow, "job-z", now, now, k, N, v), PIPE_ELOST);
    assert_int_equal(pipe_keys_dedup_index(&key, now, "job-z"), 0);
    struct pipe_store_obj info;
    assert_int_equal(pipe_store_stat(f->store, key.data, &info), PIPE_ENOTFOUND);
    /* Nothing the failed claims saw was kept as claimed. */
    claim_at(d, "job-b", now, 10, N - 10, PIPE_DEDUP_NEW);
    uint64_t fresh;
    pipe_dedup_counters(slow, &fresh, NULL, NULL);
    assert_int_equal(fresh, 0);
    pipe_free(v);
    pipe_free(k);
    free(before);
    free(after);
    pipe_free(path);
    pipe_buf_cleanup(&key);
    pipe_dedup_free(slow);
    pipe_dedup_free(d);
}

static void test_dedup_open_and_claim_check_arguments(void **state)
{
    struct tu_env *f = *state;
    struct pipe_dedup *d = NULL;
    struct pipe_dedup_config bad = {.window_ms = -1};
    assert_int_equal(pipe_dedup_open("nosuch://x", f->store, f->leases, NULL, &d), PIPE_ECONFIG);
    assert_int_equal(pipe_dedup_open("local", f->store, f->leases, &bad, &d), PIPE_ECONFIG);
    assert_int_equal(pipe_dedup_open("local", NULL, f->leases, NULL, &d), PIPE_EINVAL);
    assert_null(d);
    assert_int_equal(pipe_dedup_open("local:///ignored", f->store, f->leases, NULL, &d), 0);
    struct pipe_dedup_key k = {1, 2};
    uint8_t v = 0xee;
    int64_t now = pipe_clock_now_ms();
    assert_int_equal(pipe_dedup_claim(d, "../x", now, now, &k, 1, &v), PIPE_EINVAL);
    assert_int_equal(pipe_dedup_claim(d, "job", -1, now, &k, 1, &v), PIPE_EINVAL);
    assert_int_equal(pipe_dedup_claim(d, "job", now, now, NULL, 1, &v), PIPE_EINVAL);
    assert_int_equal(v, 0xee);
    assert_int_equal(pipe_dedup_claim(d, "job", now, now, NULL, 0, NULL), 0);
    pipe_dedup_free(d);
    pipe_dedup_free(NULL);
}

/* The figure a rendered registry gives one series, or -1 without it. */
static double series_value(const struct pipe_buf *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text->data; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

static void test_dedup_metrics_count_claims_by_verdict_and_memory(void **state)
{
    struct tu_env *f = *state;
    struct pipe_dedup *d = NULL;
    struct pipe_metrics *m = pipe_metrics_new();
    struct pipe_buf text;
    int64_t now = pipe_clock_now_ms();
    pipe_buf_init(&text, 1 << 20);
    assert_int_equal(pipe_dedup_open("local", f->store, f->leases, NULL, &d), 0);
    /* Claims before registration count too: the totals are since open. */
    claim_at(d, "job-a", now, 0, 30, PIPE_DEDUP_NEW);
    pipe_dedup_metrics_register(d, m);
    claim_at(d, "job-b", now, 0, 20, PIPE_DEDUP_DUP);
    claim_at(d, "job-a", now, 0, 10, PIPE_DEDUP_MINE);
    claim_at(d, "job-b", now, 30, 5, PIPE_DEDUP_NEW);
    assert_int_equal(pipe_metrics_render(m, &text), 0);
    assert_int_equal(pipe_buf_append_char(&text, '\0'), 0);
    assert_true(series_value(&text, "sluice_dedup_claims_total{verdict=\"new\"}") == 35);
    assert_true(series_value(&text, "sluice_dedup_claims_total{verdict=\"mine\"}") == 10);
    assert_true(series_value(&text, "sluice_dedup_claims_total{verdict=\"dup\"}") == 20);
    uint64_t keys, bytes;
    pipe_dedup_memory(d, &keys, &bytes);
    assert_int_equal(keys, 35);
    assert_true(series_value(&text, "sluice_dedup_keys") == 35);
    assert_true(series_value(&text, "sluice_dedup_memory_bytes") == (double)bytes);
    assert_true(bytes >= 35 * 32);
    pipe_buf_cleanup(&text);
    pipe_dedup_free(d);
    pipe_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedup_key_is_xxh3_128_of_event_nul_id),
        cmocka_unit_test(test_dedup_key_keeps_event_id_boundary),
        cmocka_unit_test(test_dedup_key_of_long_id_matches_one_shot_hash),
        cmocka_unit_test(test_dedup_index_round_trips),
        cmocka_unit_test(test_dedup_index_layout_is_big_endian),
        cmocka_unit_test(test_dedup_index_decode_refuses_hostile_objects),
        cmocka_unit_test(test_dedup_job_of_key_takes_name_before_idx),
        cmocka_unit_test_setup_teardown(test_dedup_local_memory_drops_claims_past_window, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dedup_local_grows_table_and_keeps_every_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dedup_local_lost_lease_restores_previous_index, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dedup_open_and_claim_check_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_metrics_count_claims_by_verdict_and_memory,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
