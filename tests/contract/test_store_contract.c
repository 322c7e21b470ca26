/* Contract tests for the object store: the same behaviour checked against
 * every backend. Always run on a file:// store in a temp dir and on a fault:
 * store (no faults) wrapping one; plus, for each URL in the space-separated
 * SLUICE_TEST_STORE_URLS, against that store. Every test works under its own
 * unique key prefix and deletes what it wrote, so runs can share a bucket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"
#include "tests/support/testutil.h"

static const char *g_url; /* the store the current group runs against */
static unsigned g_seq;

struct ctx {
    struct pipe_store *s;
    char prefix[128]; /* unique per test, ends in '/' */
};

static int group_setup(void **state)
{
    struct pipe_store *s = NULL;
    int rc = pipe_store_open(g_url, &s);
    if (rc < 0) {
        fprintf(stderr, "open %s: %s\n", g_url, pipe_store_last_error(NULL));
        return -1;
    }
    *state = s;
    return 0;
}

static int group_teardown(void **state)
{
    pipe_store_free(*state);
    return 0;
}

/* Per-test state: the shared handle plus a fresh prefix. cmocka hands the
 * group state to each test, so tests wrap it in a ctx. */
static struct ctx ctx_new(void **state, const char *name)
{
    struct ctx c = {.s = *state};
    snprintf(c.prefix, sizeof c.prefix, "contract-%ld-%lld-%u/%s/", (long)getpid(),
             (long long)pipe_clock_now_ms(), ++g_seq, name);
    return c;
}

static char *key_at(const struct ctx *c, const char *k)
{
    return pipe_asprintf("%s%s", c->prefix, k);
}

static void put_str(const struct ctx *c, const char *k, const char *v)
{
    char *key = key_at(c, k);
    int rc = pipe_store_put(c->s, key, v, strlen(v));
    if (rc < 0)
        fail_msg("put %s: %s", key, pipe_store_last_error(c->s));
    pipe_free(key);
}

/* Deletes every key under the test's prefix. */
static void wipe(const struct ctx *c)
{
    for (int round = 0; round < 1000; round++) {
        struct pipe_store_list l = {0};
        assert_int_equal(pipe_store_list(c->s, c->prefix, NULL, 1000, &l), 0);
        for (size_t i = 0; i < l.count; i++)
            assert_int_equal(pipe_store_delete(c->s, l.items[i].key), 0);
        size_t n = l.count;
        pipe_store_list_cleanup(&l);
        if (n == 0)
            return;
    }
}

/* All keys under prefix (relative to the test prefix), via pages of
 * page_size; checks that pages are ordered, and returns them joined by
 * '\n' (caller frees). */
static char *list_all(const struct ctx *c, const char *sub, size_t page_size, int *pages)
{
    char *prefix = key_at(c, sub);
    struct pipe_buf b;
    pipe_buf_init(&b, SIZE_MAX);
    char *marker = NULL;
    *pages = 0;
    for (;;) {
        struct pipe_store_list l = {0};
        int rc = pipe_store_list(c->s, prefix, marker, page_size, &l);
        if (rc < 0)
            fail_msg("list %s: %s", prefix, pipe_store_last_error(c->s));
        (*pages)++;
        assert_true(l.count <= page_size);
        for (size_t i = 0; i < l.count; i++) {
            assert_true(strncmp(l.items[i].key, prefix, strlen(prefix)) == 0);
            if (marker)
                assert_true(strcmp(l.items[i].key, marker) > 0);
            pipe_free(marker);
            marker = pipe_strdup(l.items[i].key);
            pipe_buf_printf(&b, "%s\n", l.items[i].key + strlen(c->prefix));
        }
        if (l.count > 0)
            assert_string_equal(l.next_marker, marker);
        bool more = l.truncated;
        pipe_store_list_cleanup(&l);
        if (!more)
            break;
        assert_true(*pages < 10000);
    }
    pipe_free(marker);
    pipe_free(prefix);
    return b.data ? pipe_buf_steal(&b, NULL) : pipe_strdup("");
}

static void check_get(const struct ctx *c, const char *k, const void *want, size_t len)
{
    char *key = key_at(c, k);
    struct pipe_buf b;
    pipe_buf_init(&b, len);
    int rc = pipe_store_get(c->s, key, &b);
    if (rc < 0)
        fail_msg("get %s: %s", key, pipe_store_last_error(c->s));
    assert_int_equal(b.len, len);
    if (len)
        assert_memory_equal(b.data, want, len);
    pipe_buf_cleanup(&b);
    pipe_free(key);
}

static void test_store_put_get_round_trips_binary_empty_and_large_objects(void **state)
{
    struct ctx c = ctx_new(state, "roundtrip");
    unsigned char bin[1000];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(i * 7); /* includes NUL bytes */
    size_t big_len = 5u << 20;
    unsigned char *big = pipe_malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (unsigned char)((i * 2654435761u) >> 13);

    char *k_bin = key_at(&c, "bin"), *k_empty = key_at(&c, "empty"), *k_big = key_at(&c, "big");
    assert_int_equal(pipe_store_put(c.s, k_bin, bin, sizeof bin), 0);
    assert_int_equal(pipe_store_put(c.s, k_empty, NULL, 0), 0);
    assert_int_equal(pipe_store_put(c.s, k_big, big, big_len), 0);
    check_get(&c, "bin", bin, sizeof bin);
    check_get(&c, "empty", "", 0);
    check_get(&c, "big", big, big_len);

    /* get appends to what the buffer holds */
    struct pipe_buf b;
    pipe_buf_init(&b, 4096);
    pipe_buf_append_str(&b, "xy");
    assert_int_equal(pipe_store_get(c.s, k_bin, &b), 0);
    assert_int_equal(b.len, 2 + sizeof bin);
    assert_memory_equal(b.data, "xy", 2);
    assert_memory_equal(b.data + 2, bin, sizeof bin);
    pipe_buf_cleanup(&b);

    struct pipe_store_obj o;
    assert_int_equal(pipe_store_stat(c.s, k_empty, &o), 0);
    assert_int_equal(o.size, 0);
    pipe_free(k_bin);
    pipe_free(k_empty);
    pipe_free(k_big);
    pipe_free(big);
    wipe(&c);
}

static void test_store_put_overwrites_existing_object(void **state)
{
    struct ctx c = ctx_new(state, "overwrite");
    put_str(&c, "k", "first version, longer");
    put_str(&c, "k", "second");
    check_get(&c, "k", "second", 6);
    wipe(&c);
}

static void test_store_get_missing_key_is_not_found_and_leaves_buffer(void **state)
{
    struct ctx c = ctx_new(state, "missing");
    char *key = key_at(&c, "nope");
    struct pipe_buf b;
    pipe_buf_init(&b, 100);
    pipe_buf_append_str(&b, "keep");
    assert_int_equal(pipe_store_get(c.s, key, &b), PIPE_ENOTFOUND);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    assert_true(strlen(pipe_store_last_error(c.s)) > 0);
    struct pipe_store_obj o;
    assert_int_equal(pipe_store_stat(c.s, key, &o), PIPE_ENOTFOUND);
    pipe_buf_cleanup(&b);
    pipe_free(key);
}

static void test_store_get_over_cap_is_too_big_and_leaves_buffer(void **state)
{
    struct ctx c = ctx_new(state, "cap");
    char data[100];
    memset(data, 'z', sizeof data);
    char *key = key_at(&c, "k");
    assert_int_equal(pipe_store_put(c.s, key, data, sizeof data), 0);
    struct pipe_buf b;
    pipe_buf_init(&b, 99);
    assert_int_equal(pipe_store_get(c.s, key, &b), PIPE_ETOOBIG);
    assert_int_equal(b.len, 0);
    pipe_buf_cleanup(&b);

    pipe_buf_init(&b, 102);
    pipe_buf_append_str(&b, "abc");
    assert_int_equal(pipe_store_get(c.s, key, &b), PIPE_ETOOBIG);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    b.max = 103; /* exactly enough */
    assert_int_equal(pipe_store_get(c.s, key, &b), 0);
    assert_int_equal(b.len, 103);
    pipe_buf_cleanup(&b);
    pipe_free(key);
    wipe(&c);
}

/* A view holds the object's bytes as they were when it was taken: a put
 * or delete of the key meanwhile changes nothing in it. */
static void test_store_view_holds_the_bytes_through_rewrite_and_delete(void **state)
{
    struct ctx c = ctx_new(state, "view");
    size_t len = (1u << 20) + 123; /* not a multiple of a page */
    unsigned char *big = pipe_malloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = (unsigned char)((i * 2654435761u) >> 11);
    char *key = key_at(&c, "big"), *k_empty = key_at(&c, "empty");
    assert_int_equal(pipe_store_put(c.s, key, big, len), 0);
    assert_int_equal(pipe_store_put(c.s, k_empty, NULL, 0), 0);
    uint64_t gets0 = 0, gets1 = 0;
    pipe_store_counters(c.s, PIPE_STORE_OP_GET, &gets0, NULL);

    struct pipe_store_view v;
    int rc = pipe_store_view_get(c.s, key, len, &v);
    if (rc < 0)
        fail_msg("view %s: %s", key, pipe_store_last_error(c.s));
    pipe_store_counters(c.s, PIPE_STORE_OP_GET, &gets1, NULL);
    assert_int_equal(gets1, gets0 + 1); /* a get, as far as requests go */
    assert_int_equal(v.len, len);
    assert_memory_equal(v.data, big, len);
    put_str(&c, "big", "rewritten");
    assert_int_equal(v.len, len);
    assert_memory_equal(v.data, big, len);
    assert_int_equal(pipe_store_delete(c.s, key), 0);
    assert_memory_equal(v.data, big, len);
    pipe_store_view_release(&v);
    assert_int_equal(v.len, 0);
    pipe_store_view_release(&v); /* twice is harmless */

    struct pipe_store_view e;
    assert_int_equal(pipe_store_view_get(c.s, k_empty, 10, &e), 0);
    assert_int_equal(e.len, 0);
    assert_non_null(e.data);
    pipe_store_view_release(&e);
    pipe_free(big);
    pipe_free(key);
    pipe_free(k_empty);
    wipe(&c);
}

/* A view fails as a get does: missing, over its cap (exactly the cap is
 * fine), an invalid key; the view it leaves is empty. */
static void test_store_view_missing_over_cap_and_bad_key_leave_it_empty(void **state)
{
    struct ctx c = ctx_new(state, "viewfail");
    char data[100];
    memset(data, 'z', sizeof data);
    char *key = key_at(&c, "k"), *missing = key_at(&c, "nope");
    assert_int_equal(pipe_store_put(c.s, key, data, sizeof data), 0);
    struct pipe_store_view v;
    assert_int_equal(pipe_store_view_get(c.s, missing, 1000, &v), PIPE_ENOTFOUND);
    assert_int_equal(v.len, 0);
    assert_true(strlen(pipe_store_last_error(c.s)) > 0);
    pipe_store_view_release(&v);
    assert_int_equal(pipe_store_view_get(c.s, key, sizeof data - 1, &v), PIPE_ETOOBIG);
    assert_int_equal(v.len, 0);
    pipe_store_view_release(&v);
    assert_int_equal(pipe_store_view_get(c.s, "../k", 1000, &v), PIPE_EINVAL);
    assert_int_equal(v.len, 0);
    pipe_store_view_release(&v);
    assert_int_equal(pipe_store_view_get(c.s, key, sizeof data, &v), 0);
    assert_int_equal(v.len, sizeof data);
    assert_memory_equal(v.data, data, sizeof data);
    pipe_store_view_release(&v);
    pipe_free(key);
    pipe_free(missing);
    wipe(&c);
}

/* A put from parts stores their concatenation, whatever their number
 * (none, one, more than one writev takes) and sizes (empty ones, a NULL
 * empty one, one over a MiB), as one put. */
static void test_store_put_parts_stores_the_concatenation_as_one_put(void **state)
{
    struct ctx c = ctx_new(state, "parts");
    enum { N = 150 };
    size_t big = (1u << 20) + 77, total = 0;
    unsigned char *src = pipe_malloc(big + 64 * N);
    for (size_t i = 0; i < big + 64 * N; i++)
        src[i] = (unsigned char)((i * 2654435761u) >> 13);
    struct pipe_store_part parts[N];
    for (size_t i = 0; i < N; i++) {
        /* every third part empty (one of them NULL), one big, the rest 1..63 bytes */
        size_t len = i == 70 ? big : i % 3 == 1 ? 0 : i % 64;
        parts[i] = (struct pipe_store_part){i == 4 ? NULL : src + total, len};
        total += len;
    }
    char *k_many = key_at(&c, "many"), *k_one = key_at(&c, "one"), *k_none = key_at(&c, "none");
    uint64_t puts0 = 0, puts1 = 0;
    pipe_store_counters(c.s, PIPE_STORE_OP_PUT, &puts0, NULL);
    assert_int_equal(pipe_store_put_parts(c.s, k_many, parts, N), 0);
    assert_int_equal(pipe_store_put_parts(c.s, k_one, &parts[70], 1), 0);
    assert_int_equal(pipe_store_put_parts(c.s, k_none, NULL, 0), 0);
    pipe_store_counters(c.s, PIPE_STORE_OP_PUT, &puts1, NULL);
    assert_int_equal(puts1, puts0 + 3);
    check_get(&c, "many", src, total);
    check_get(&c, "one", parts[70].data, big);
    check_get(&c, "none", "", 0);
    struct pipe_store_obj info;
    assert_int_equal(pipe_store_stat(c.s, k_many, &info), 0);
    assert_int_equal(info.size, total);
    /* Parts of empty bytes only make an empty object, replacing the old. */
    struct pipe_store_part empties[3] = {{NULL, 0}, {"x", 0}, {NULL, 0}};
    assert_int_equal(pipe_store_put_parts(c.s, k_one, empties, 3), 0);
    check_get(&c, "one", "", 0);
    pipe_free(src);
    pipe_free(k_many);
    pipe_free(k_one);
    pipe_free(k_none);
    wipe(&c);
}

/* A put from parts that fails leaves the key as it was: the old object
 * stays, a new key stays missing. */
static void test_store_put_parts_that_fails_leaves_no_object(void **state)
{
    struct ctx c = ctx_new(state, "partsfail");
    put_str(&c, "old", "old bytes");
    char *k_old = key_at(&c, "old"), *k_new = key_at(&c, "new");
    struct pipe_store_part bad[2] = {{"new bytes", 9}, {NULL, 5}};
    assert_int_equal(pipe_store_put_parts(c.s, k_old, bad, 2), PIPE_EINVAL);
    assert_true(strlen(pipe_store_last_error(c.s)) > 0);
    assert_int_equal(pipe_store_put_parts(c.s, k_new, bad, 2), PIPE_EINVAL);
    assert_int_equal(pipe_store_put_parts(c.s, "../x", bad, 1), PIPE_EINVAL);
    check_get(&c, "old", "old bytes", 9);
    struct pipe_store_obj info;
    assert_int_equal(pipe_store_stat(c.s, k_new, &info), PIPE_ENOTFOUND);
    int pages = 0;
    char *all = list_all(&c, "", 100, &pages);
    assert_string_equal(all, "old\n");
    pipe_free(all);
    pipe_free(k_old);
    pipe_free(k_new);
    wipe(&c);
}

static void test_store_stat_reports_size_mtime_and_changing_etag(void **state)
{
    struct ctx c = ctx_new(state, "stat");
    char *key = key_at(&c, "k");
    int64_t before = pipe_clock_now_ms();
    put_str(&c, "k", "12345");
    struct pipe_store_obj o1, o2;
    memset(&o1, 0xff, sizeof o1);
    assert_int_equal(pipe_store_stat(c.s, key, &o1), 0);
    assert_null(o1.key);
    assert_int_equal(o1.size, 5);
    assert_true(strlen(o1.etag) > 0);
    if (pipe_store_has(c.s, PIPE_STORE_CAP_MTIME)) {
        /* generous: a remote store's clock may be off a little */
        assert_true(o1.mtime_ms > before - 600000);
        assert_true(o1.mtime_ms < pipe_clock_now_ms() + 600000);
    }
    put_str(&c, "k", "1234567");
    assert_int_equal(pipe_store_stat(c.s, key, &o2), 0);
    assert_int_equal(o2.size, 7);
    assert_string_not_equal(o1.etag, o2.etag);
    pipe_free(key);
    wipe(&c);
}

static void test_store_delete_removes_object_and_missing_is_ok(void **state)
{
    struct ctx c = ctx_new(state, "delete");
    char *key = key_at(&c, "d/k");
    put_str(&c, "d/k", "x");
    put_str(&c, "d/other", "y");
    assert_int_equal(pipe_store_delete(c.s, key), 0);
    struct pipe_store_obj o;
    assert_int_equal(pipe_store_stat(c.s, key, &o), PIPE_ENOTFOUND);
    assert_int_equal(pipe_store_delete(c.s, key), 0);
    check_get(&c, "d/other", "y", 1);
    pipe_free(key);
    wipe(&c);
}

static void test_store_list_orders_full_keys_bytewise(void **state)
{
    struct ctx c = ctx_new(state, "order");
    static const char *const keys[] = {"p/ab", "p/a/b", "p/a.d", "p/a-c", "p/a/c/d",
                                       "p/a0", "q/x",   "pz",    "p/A"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        put_str(&c, keys[i], keys[i]);
    int pages;
    char *all = list_all(&c, "p/", 100, &pages);
    assert_string_equal(all, "p/A\np/a-c\np/a.d\np/a/b\np/a/c/d\np/a0\np/ab\n");
    assert_int_equal(pages, 1);
    pipe_free(all);
    all = list_all(&c, "p/a", 2, &pages); /* a prefix ending inside a segment */
    assert_string_equal(all, "p/a-c\np/a.d\np/a/b\np/a/c/d\np/a0\np/ab\n");
    assert_int_equal(pages, 3);
    pipe_free(all);
    all = list_all(&c, "p/a/", 1000, &pages);
    assert_string_equal(all, "p/a/b\np/a/c/d\n");
    pipe_free(all);
    all = list_all(&c, "", 1000, &pages);
    assert_string_equal(all, "p/A\np/a-c\np/a.d\np/a/b\np/a/c/d\np/a0\np/ab\npz\nq/x\n");
    pipe_free(all);

    struct pipe_store_list l = {0};
    char *none = key_at(&c, "nothing-here/");
    assert_int_equal(pipe_store_list(c.s, none, NULL, 10, &l), 0);
    assert_int_equal(l.count, 0);
    assert_false(l.truncated);
    assert_null(l.next_marker);
    pipe_store_list_cleanup(&l);
    pipe_free(none);
    wipe(&c);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Characters a URL or a signature must encode (space, '+', '%', '=', '&',
 * '?', '#', ...), and UTF-8: each key round-trips, lists in byte order,
 * also from prefixes and markers that hold them. */
static void test_store_keys_with_reserved_and_unicode_bytes_round_trip(void **state)
{
    struct ctx c = ctx_new(state, "chars");
    const char *keys[] = {"s p/a+b",
                          "s p/a b",
                          "s p/pct%41%",
                          "s p/eq=x&y?z#w",
                          "s p/\xc3\xa9t\xc3\xa9",
                          "s p/\xe2\x82\xac",
                          "s p/\xf0\x9f\x98\x80",
                          "s p/t~*'()!$,;:@[]",
                          "s p/a+b=/c d"};
    enum { N = sizeof keys / sizeof *keys };
    for (size_t i = 0; i < N; i++)
        put_str(&c, keys[i], keys[i]);
    for (size_t i = 0; i < N; i++) {
        check_get(&c, keys[i], keys[i], strlen(keys[i]));
        char *k = key_at(&c, keys[i]);
        struct pipe_store_obj o;
        assert_int_equal(pipe_store_stat(c.s, k, &o), 0);
        assert_int_equal(o.size, strlen(keys[i]));
        pipe_free(k);
    }
    const char *sorted[N];
    memcpy(sorted, keys, sizeof sorted);
    qsort(sorted, N, sizeof *sorted, cmp_str);
    struct pipe_buf want;
    pipe_buf_init(&want, SIZE_MAX);
    for (size_t i = 0; i < N; i++)
        pipe_buf_printf(&want, "%s\n", sorted[i]);
    int pages;
    char *all = list_all(&c, "s p/", 2, &pages); /* markers with these bytes */
    assert_string_equal(all, want.data);
    assert_int_equal(pages, (N + 1) / 2);
    pipe_free(all);
    all = list_all(&c, "s p/a+b", 1000, &pages); /* a prefix with '+' */
    assert_string_equal(all, "s p/a+b\ns p/a+b=/c d\n");
    pipe_free(all);
    all = list_all(&c, "s p/\xc3\xa9", 1000, &pages); /* a prefix in UTF-8 */
    assert_string_equal(all, "s p/\xc3\xa9t\xc3\xa9\n");
    pipe_free(all);
    char *k = key_at(&c, "s p/eq=x&y?z#w");
    assert_int_equal(pipe_store_delete(c.s, k), 0);
    struct pipe_buf b;
    pipe_buf_init(&b, 100);
    assert_int_equal(pipe_store_get(c.s, k, &b), PIPE_ENOTFOUND);
    pipe_buf_cleanup(&b);
    pipe_free(k);
    pipe_buf_cleanup(&want);
    wipe(&c);
}

struct walk_seen {
    struct pipe_buf keys;
    int stop_after; /* stop the walk with 7 after this many objects; 0 = never */
    int n;
};

static int walk_collect(void *arg, const struct pipe_store_obj *o)
{
    struct walk_seen *w = arg;
    pipe_buf_printf(&w->keys, "%s\n", o->key);
    return ++w->n == w->stop_after ? 7 : 0;
}

static void test_store_walk_visits_every_key_in_order_and_stops_on_request(void **state)
{
    struct ctx c = ctx_new(state, "walk");
    for (int i = 0; i < 23; i++) {
        char k[32];
        snprintf(k, sizeof k, "w/%02d", i);
        put_str(&c, k, "x");
    }
    char *prefix = key_at(&c, "w/");
    struct walk_seen w = {.stop_after = 0};
    pipe_buf_init(&w.keys, SIZE_MAX);
    assert_int_equal(pipe_store_walk(c.s, prefix, NULL, 4, walk_collect, &w), 0);
    assert_int_equal(w.n, 23);
    char *first = key_at(&c, "w/00\n");
    assert_int_equal(strncmp(w.keys.data, first, strlen(first)), 0);
    pipe_buf_reset(&w.keys);
    w.n = 0;
    w.stop_after = 10;
    assert_int_equal(pipe_store_walk(c.s, prefix, NULL, 3, walk_collect, &w), 7);
    assert_int_equal(w.n, 10);
    char *after = key_at(&c, "w/19");
    w.n = 0;
    w.stop_after = 0;
    assert_int_equal(pipe_store_walk(c.s, prefix, after, 0, walk_collect, &w), 0);
    assert_int_equal(w.n, 3); /* 20, 21, 22 */
    pipe_free(after);
    pipe_free(first);
    pipe_buf_cleanup(&w.keys);
    pipe_free(prefix);
    wipe(&c);
}

static void test_store_list_pagination_resumes_exactly_after_marker(void **state)
{
    struct ctx c = ctx_new(state, "pages");
    enum { N = 250 };
    char *names[N];
    for (int i = 0; i < N; i++) {
        /* a mix of depths and of '-', '.' and '/' right after a shared stem */
        switch (i % 5) {
        case 0:
            names[i] = pipe_asprintf("k%03d", i);
            break;
        case 1:
            names[i] = pipe_asprintf("k%03d/x", i - 1);
            break;
        case 2:
            names[i] = pipe_asprintf("k%03d-y", i - 2);
            break;
        case 3:
            names[i] = pipe_asprintf("d%d/e%d/k%03d", i % 3, i % 7, i);
            break;
        default:
            names[i] = pipe_asprintf("k%03d.z", i - 4);
            break;
        }
    }
    /* "k000" and "k000/x" cannot both exist in a directory tree store, so
     * objects that would be "directories" get their own stem. */
    for (int i = 0; i < N; i += 5)
        names[i][0] = 'm';
    for (int i = 0; i < N; i++)
        put_str(&c, names[i], names[i]);
    qsort(names, N, sizeof *names, cmp_str);
    struct pipe_buf want;
    pipe_buf_init(&want, SIZE_MAX);
    for (int i = 0; i < N; i++)
        pipe_buf_printf(&want, "%s\n", names[i]);

    static const size_t page_sizes[] = {7, 1, 249, 250, 1000};
    for (size_t p = 0; p < sizeof page_sizes / sizeof *page_sizes; p++) {
        int pages;
        char *got = list_all(&c, "", page_sizes[p], &pages);
        assert_string_equal(got, want.data);
        size_t full = (N + page_sizes[p] - 1) / page_sizes[p];
        /* A backend may cut pages short, never make them longer; with exactly
         * max_keys left it may report truncated and return an empty page. */
        assert_true((size_t)pages >= full);
        pipe_free(got);
    }

    /* Resume from a marker that is not a key. */
    char *after = pipe_asprintf("%s%s~", c.prefix, names[100]);
    struct pipe_store_list l = {0};
    assert_int_equal(pipe_store_list(c.s, c.prefix, after, 3, &l), 0);
    assert_int_equal(l.count, 3);
    assert_true(l.truncated);
    assert_string_equal(l.items[0].key + strlen(c.prefix), names[101]);
    assert_string_equal(l.items[2].key + strlen(c.prefix), names[103]);
    assert_int_equal(l.items[0].size, strlen(names[101]));
    pipe_store_list_cleanup(&l);
    pipe_free(after);

    for (int i = 0; i < N; i++)
        pipe_free(names[i]);
    pipe_buf_cleanup(&want);
    wipe(&c);
}

static void test_store_rejects_invalid_keys(void **state)
{
    struct ctx c = ctx_new(state, "invalid");
    char long_key[PIPE_STORE_KEY_MAX + 2];
    memset(long_key, 'a', sizeof long_key);
    long_key[PIPE_STORE_KEY_MAX + 1] = '\0';
    const char *bad[] = {"../x",    "/x",         "a//b",        "a/./b", "a/../b",
                         "",        ".hidden",    "a/.tmp",      "a/",    "tab\tkey",
                         "nl\nkey", "del\x7fkey", "back\\slash", ".",     long_key};
    struct pipe_buf b;
    pipe_buf_init(&b, 100);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct pipe_store_obj o;
        assert_false(pipe_store_key_valid(bad[i]));
        assert_int_equal(pipe_store_put(c.s, bad[i], "x", 1), PIPE_EINVAL);
        assert_int_equal(pipe_store_get(c.s, bad[i], &b), PIPE_EINVAL);
        assert_int_equal(pipe_store_stat(c.s, bad[i], &o), PIPE_EINVAL);
        assert_int_equal(pipe_store_delete(c.s, bad[i]), PIPE_EINVAL);
    }
    assert_int_equal(pipe_store_put(c.s, NULL, "x", 1), PIPE_EINVAL);
    pipe_buf_cleanup(&b);

    /* The longest valid key works end to end (segments stay under NAME_MAX). */
    char *key = pipe_malloc(PIPE_STORE_KEY_MAX + 1);
    size_t plen = strlen(c.prefix);
    memcpy(key, c.prefix, plen);
    for (size_t i = plen; i < PIPE_STORE_KEY_MAX; i++)
        key[i] = (i - plen) % 100 == 99 ? '/' : 'k';
    key[PIPE_STORE_KEY_MAX] = '\0';
    assert_true(pipe_store_key_valid(key));
    assert_int_equal(pipe_store_put(c.s, key, "long", 4), 0);
    struct pipe_store_obj o;
    assert_int_equal(pipe_store_stat(c.s, key, &o), 0);
    assert_int_equal(o.size, 4);
    pipe_free(key);
    wipe(&c);
}

struct thread_arg {
    const struct ctx *c;
    int id;
    int failures;
    int gets;
    atomic_bool *stop;
};

static void *put_many(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 25; i++) {
        char k[256], v[64];
        snprintf(k, sizeof k, "%st%d/k%02d", a->c->prefix, a->id, i);
        snprintf(v, sizeof v, "value %d %d", a->id, i);
        if (pipe_store_put(a->c->s, k, v, strlen(v)) < 0)
            a->failures++;
    }
    return NULL;
}

static void test_store_concurrent_puts_to_different_keys_all_land(void **state)
{
    struct ctx c = ctx_new(state, "conc");
    pthread_t th[4];
    struct thread_arg args[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (struct thread_arg){.c = &c, .id = t};
        pthread_create(&th[t], NULL, put_many, &args[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].failures, 0);
    }
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 25; i++) {
            char k[32], v[64];
            snprintf(k, sizeof k, "t%d/k%02d", t, i);
            snprintf(v, sizeof v, "value %d %d", t, i);
            check_get(&c, k, v, strlen(v));
        }
    int pages;
    char *all = list_all(&c, "", 1000, &pages);
    size_t lines = 0;
    for (char *p = all; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 100);
    pipe_free(all);
    wipe(&c);
}

enum { TORN_A = 48 * 1024, TORN_B = 96 * 1024 };

/* Reads the key until told to stop; every read must be all 'a' of length
 * TORN_A or all 'b' of length TORN_B. */
static void *get_loop(void *p)
{
    struct thread_arg *a = p;
    char *key = key_at(a->c, "same");
    struct pipe_buf b;
    pipe_buf_init(&b, 1 << 20);
    while (!atomic_load(a->stop) || a->gets < 5) {
        pipe_buf_reset(&b);
        a->gets++;
        if (pipe_store_get(a->c->s, key, &b) < 0) {
            a->failures++;
            continue;
        }
        char want = b.len == TORN_A ? 'a' : b.len == TORN_B ? 'b' : '?';
        for (size_t i = 0; i < b.len; i++)
            if (b.data[i] != want) {
                a->failures++;
                break;
            }
    }
    pipe_buf_cleanup(&b);
    pipe_free(key);
    return NULL;
}

static void test_store_concurrent_put_and_get_never_show_torn_object(void **state)
{
    struct ctx c = ctx_new(state, "torn");
    char *key = key_at(&c, "same");
    char *va = pipe_malloc(TORN_A), *vb = pipe_malloc(TORN_B);
    memset(va, 'a', TORN_A);
    memset(vb, 'b', TORN_B);
    assert_int_equal(pipe_store_put(c.s, key, va, TORN_A), 0);
    atomic_bool stop = false;
    pthread_t th[2];
    struct thread_arg args[2];
    for (int t = 0; t < 2; t++) {
        args[t] = (struct thread_arg){.c = &c, .id = t, .stop = &stop};
        pthread_create(&th[t], NULL, get_loop, &args[t]);
    }
    int put_failures = 0;
    for (int i = 0; i < 60; i++)
        if (pipe_store_put(c.s, key, i % 2 ? va : vb, i % 2 ? TORN_A : TORN_B) < 0)
            put_failures++;
    atomic_store(&stop, true);
    for (int t = 0; t < 2; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].failures, 0);
        assert_true(args[t].gets >= 5);
    }
    assert_int_equal(put_failures, 0);
    pipe_free(va);
    pipe_free(vb);
    pipe_free(key);
    wipe(&c);
}

static int run_suite(const char *url)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_put_get_round_trips_binary_empty_and_large_objects),
        cmocka_unit_test(test_store_put_overwrites_existing_object),
        cmocka_unit_test(test_store_keys_with_reserved_and_unicode_bytes_round_trip),
        cmocka_unit_test(test_store_get_missing_key_is_not_found_and_leaves_buffer),
        cmocka_unit_test(test_store_get_over_cap_is_too_big_and_leaves_buffer),
        cmocka_unit_test(test_store_view_holds_the_bytes_through_rewrite_and_delete),
        cmocka_unit_test(test_store_view_missing_over_cap_and_bad_key_leave_it_empty),
        cmocka_unit_test(test_store_put_parts_stores_the_concatenation_as_one_put),
        cmocka_unit_test(test_store_put_parts_that_fails_leaves_no_object),
        cmocka_unit_test(test_store_stat_reports_size_mtime_and_changing_etag),
        cmocka_unit_test(test_store_delete_removes_object_and_missing_is_ok),
        cmocka_unit_test(test_store_list_orders_full_keys_bytewise),
        cmocka_unit_test(test_store_list_pagination_resumes_exactly_after_marker),
        cmocka_unit_test(test_store_walk_visits_every_key_in_order_and_stops_on_request),
        cmocka_unit_test(test_store_rejects_invalid_keys),
        cmocka_unit_test(test_store_concurrent_puts_to_different_keys_all_land),
        cmocka_unit_test(test_store_concurrent_put_and_get_never_show_torn_object),
    };
    g_url = url;
    return cmocka_run_group_tests_name(url, tests, group_setup, group_teardown);
}

int main(void)
{
    int failed = 0;
    char *dir = tu_tmpdir("store-contract");
    if (dir == NULL)
        return 1;
    char *file_url = pipe_asprintf("file://%s/fs", dir);
    char *fault_url = pipe_asprintf("fault:seed=3:file://%s/fault", dir);
    failed += run_suite(file_url);
    failed += run_suite(fault_url);
    const char *extra = getenv("SLUICE_TEST_STORE_URLS");
    char *urls = pipe_strdup(extra ? extra : "");
    for (char *save = NULL, *u = strtok_r(urls, " \t\n", &save); u;
         u = strtok_r(NULL, " \t\n", &save))
        failed += run_suite(u);
    pipe_free(urls);
    pipe_free(file_url);
    pipe_free(fault_url);
    tu_rmrf(dir);
    free(dir);
    return failed != 0;
}
