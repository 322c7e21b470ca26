/* Unit tests for the de-duplication key sort behind a job's index object:
 * the radix sort must put keys in exactly the order qsort with
 * pipe__dedup_key_cmp gives (the index format is that order, byte for
 * byte), on random keys, on keys built to defeat a radix sort, and with
 * equal keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/dedup.h"
#include "libpipe/dedup_int.h"

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Keeps the first of each run of equal keys in sorted k; the new count. */
static size_t distinct(struct pipe_dedup_key *k, size_t n)
{
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || pipe__dedup_key_cmp(&k[u - 1], &k[i]) != 0)
            k[u++] = k[i];
    return u;
}

/* Sorts a copy of keys both ways and checks they agree, and that the
 * index objects written from them (distinct keys) are the same bytes. */
static void check_sorts_agree(const struct pipe_dedup_key *keys, size_t n)
{
    struct pipe_dedup_key *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b);
    if (n) {
        memcpy(a, keys, n * sizeof *a);
        memcpy(b, keys, n * sizeof *b);
    }
    qsort(a, n, sizeof *a, pipe__dedup_key_cmp);
    pipe__dedup_keys_sort(b, n);
    if (n)
        assert_memory_equal(a, b, n * sizeof *a);

    size_t ua = distinct(a, n), u = distinct(b, n);
    struct pipe_buf ea, eb;
    pipe_buf_init(&ea, SIZE_MAX);
    pipe_buf_init(&eb, SIZE_MAX);
    assert_int_equal(ua, u);
    assert_int_equal(pipe__dedup_index_encode("job-1", a, ua, &ea), 0);
    assert_int_equal(pipe__dedup_index_encode("job-1", b, u, &eb), 0);
    assert_int_equal(ea.len, eb.len);
    assert_memory_equal(ea.data, eb.data, ea.len);
    pipe_buf_cleanup(&ea);
    pipe_buf_cleanup(&eb);
    free(a);
    free(b);
}

static void test_dedup_keys_sort_matches_qsort_on_random_keys(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 31, 32, 33, 257, 5000, 200000};
    uint64_t seed = 7;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        struct pipe_dedup_key *k = malloc((n + 1) * sizeof *k);
        for (size_t i = 0; i < n; i++) {
            k[i].hi = splitmix(&seed);
            k[i].lo = splitmix(&seed);
        }
        check_sorts_agree(k, n);
        free(k);
    }
}

/* Keys that share most of their bytes, differ only low in lo, come sorted
 * or reversed, or differ in a single bit: every digit of the radix sort
 * is the same for all keys but one, or the buckets are all uneven. */
static void test_dedup_keys_sort_matches_qsort_on_adversarial_keys(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct pipe_dedup_key *k = malloc(N * sizeof *k);
    uint64_t seed = 11;
    for (int shape = 0; shape < 7; shape++) {
        for (size_t i = 0; i < N; i++) {
            uint64_t r = splitmix(&seed);
            switch (shape) {
            case 0: /* one hi, lo differs in its last byte only (many equal) */
                k[i] = (struct pipe_dedup_key){0xABCDEF0123456789ull, r & 0xFF};
                break;
            case 1: /* ascending */
                k[i] = (struct pipe_dedup_key){i >> 3, i};
                break;
            case 2: /* descending */
                k[i] = (struct pipe_dedup_key){(N - i) >> 5, ~(uint64_t)i};
                break;
            case 3: /* one bit set anywhere in 128 */
                k[i] = r & 64 ? (struct pipe_dedup_key){1ull << (r & 63), 0}
                              : (struct pipe_dedup_key){0, 1ull << (r & 63)};
                break;
            case 4: /* hi's top byte only, the rest all ones */
                k[i] = (struct pipe_dedup_key){(r << 56) | 0x00FFFFFFFFFFFFFFull, UINT64_MAX};
                break;
            case 5: /* extremes */
                k[i] = (struct pipe_dedup_key){r & 1 ? UINT64_MAX : 0, r & 2 ? UINT64_MAX : 0};
                break;
            default: /* random keys, each repeated a few times */
                k[i] = i % 4 ? k[i - 1] : (struct pipe_dedup_key){r, splitmix(&seed)};
                break;
            }
        }
        check_sorts_agree(k, N);
    }
    free(k);
}

static void test_dedup_keys_sort_keeps_equal_keys(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct pipe_dedup_key *k = malloc(N * sizeof *k);
    for (size_t i = 0; i < N; i++)
        k[i] = (struct pipe_dedup_key){42, 7};
    pipe__dedup_keys_sort(k, N);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(k[i].hi, 42);
        assert_int_equal(k[i].lo, 7);
    }
    check_sorts_agree(k, N);
    free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedup_keys_sort_matches_qsort_on_random_keys),
        cmocka_unit_test(test_dedup_keys_sort_matches_qsort_on_adversarial_keys),
        cmocka_unit_test(test_dedup_keys_sort_keeps_equal_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
