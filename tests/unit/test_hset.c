/* test_hset — the open-addressing hash set: finds what was added, misses
 * what was not, grows past many items, and keeps items with a shared hash
 * apart by their keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "libpipe/err.h"
#include "libpipe/hset.h"
#include "libpipe/mem.h"

struct item {
    char key[32];
    size_t len;
};

static bool item_eq(const void *item, const void *key, size_t len)
{
    const struct item *it = item;
    return it->len == len && memcmp(it->key, key, len) == 0;
}

static void test_hset_finds_every_added_item_across_growth(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct item *items = pipe_calloc(N, sizeof *items);
    struct pipe_hset h;
    pipe_hset_init(&h);
    assert_null(pipe_hset_find(&h, pipe_hset_hash("x", 1), "x", 1, item_eq));
    for (size_t i = 0; i < N; i++) {
        items[i].len = (size_t)snprintf(items[i].key, sizeof items[i].key, "event_%zu", i);
        uint64_t hash = pipe_hset_hash(items[i].key, items[i].len);
        assert_null(pipe_hset_find(&h, hash, items[i].key, items[i].len, item_eq));
        assert_int_equal(pipe_hset_add(&h, hash, &items[i]), 0);
    }
    assert_int_equal(pipe_hset_count(&h), N);
    assert_true(h.cap >= 2 * N);
    for (size_t i = 0; i < N; i++) {
        uint64_t hash = pipe_hset_hash(items[i].key, items[i].len);
        assert_ptr_equal(pipe_hset_find(&h, hash, items[i].key, items[i].len, item_eq), &items[i]);
    }
    assert_null(pipe_hset_find(&h, pipe_hset_hash("event_5000", 10), "event_5000", 10, item_eq));
    assert_null(pipe_hset_find(&h, pipe_hset_hash("event_1", 7), "event_1x", 8, item_eq));
    pipe_hset_cleanup(&h);
    assert_int_equal(pipe_hset_count(&h), 0);
    pipe_free(items);
}

/* Items given one hash share a probe run: the key comparison tells them
 * apart, and once the run would pass the bound the add refuses. */
static void test_hset_shared_hash_is_told_apart_and_bounded(void **state)
{
    (void)state;
    struct item items[PIPE_HSET_MAX_PROBE + 2];
    struct pipe_hset h;
    pipe_hset_init(&h);
    for (size_t i = 0; i <= PIPE_HSET_MAX_PROBE; i++) {
        items[i].len = (size_t)snprintf(items[i].key, sizeof items[i].key, "k%zu", i);
        assert_int_equal(pipe_hset_add(&h, 42, &items[i]), 0);
    }
    for (size_t i = 0; i <= PIPE_HSET_MAX_PROBE; i++)
        assert_ptr_equal(pipe_hset_find(&h, 42, items[i].key, items[i].len, item_eq), &items[i]);
    assert_null(pipe_hset_find(&h, 42, "other", 5, item_eq));
    /* One more in the same run cannot be within the bound at any size. */
    size_t n = PIPE_HSET_MAX_PROBE + 1;
    items[n].len = (size_t)snprintf(items[n].key, sizeof items[n].key, "k%zu", n);
    assert_int_equal(pipe_hset_add(&h, 42, &items[n]), PIPE_ETOOBIG);
    assert_int_equal(pipe_hset_count(&h), PIPE_HSET_MAX_PROBE + 1);
    assert_ptr_equal(pipe_hset_find(&h, 42, "k0", 2, item_eq), &items[0]);
    pipe_hset_cleanup(&h);
}

/* The hash is seeded per process but stable within it. */
static void test_hset_hash_is_stable_and_spreads(void **state)
{
    (void)state;
    assert_int_equal(pipe_hset_hash("page_view", 9), pipe_hset_hash("page_view", 9));
    assert_int_not_equal(pipe_hset_hash("page_view", 9), pipe_hset_hash("page_vieW", 9));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hset_finds_every_added_item_across_growth),
        cmocka_unit_test(test_hset_shared_hash_is_told_apart_and_bounded),
        cmocka_unit_test(test_hset_hash_is_stable_and_spreads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
