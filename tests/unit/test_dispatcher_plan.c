/* Unit tests for the dispatcher's planning (stages/dispatcher/
 * dispatcher_scan.c), called directly through libdispatcher.a: which hour
 * partitions a pass looks at, the cache of done sets, and the listing a
 * plan is made from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"
#include "stages/dispatcher/dispatcher.h"
#include "tests/support/testutil.h"

#define HOUR(h, m) pipe_clock_from_civil(2026, 3, 1, (h), (m), 0, 0)

/* A dispatcher with only what planning reads: its options. */
static void disp_with_lookback(struct dispatcher *d, struct dispatcher_cfg *c, int64_t lookback_ms)
{
    memset(d, 0, sizeof *d);
    memset(c, 0, sizeof *c);
    c->lookback_ms = lookback_ms;
    d->cfg = c;
}

static void test_disp_lookback_starts_on_an_hour_and_never_before_zero(void **state)
{
    (void)state;
    struct dispatcher d;
    struct dispatcher_cfg c;
    disp_with_lookback(&d, &c, 3 * PIPE_HOUR_MS);
    assert_int_equal(disp_lookback_from(&d, HOUR(5, 30)), HOUR(2, 0));
    assert_int_equal(disp_lookback_from(&d, HOUR(5, 0)), HOUR(2, 0));
    assert_int_equal(disp_lookback_from(&d, PIPE_HOUR_MS), 0);
}

/* The partitions of one scan at now, as a count and a copy in out. */
static size_t partitions(struct dispatcher *d, int64_t now, enum disp_scan scan, int64_t out[8])
{
    int64_t *v = NULL;
    size_t n = 0;
    assert_int_equal(disp_partitions(d, now, scan, &v, &n), 0);
    assert_true(n <= 8);
    memcpy(out, v, n * sizeof *v);
    pipe_free(v);
    return n;
}

static void test_disp_hot_scan_keeps_the_previous_hour_early_in_an_hour(void **state)
{
    (void)state;
    struct dispatcher d;
    struct dispatcher_cfg c;
    int64_t h[8];
    disp_with_lookback(&d, &c, 3 * PIPE_HOUR_MS);
    /* Inside DISP_HOT_PREV_MS of a new hour: that hour and the one before. */
    assert_int_equal(partitions(&d, HOUR(5, 0) + DISP_HOT_PREV_MS - 1, DISP_SCAN_HOT, h), 2);
    assert_int_equal(h[0], HOUR(4, 0));
    assert_int_equal(h[1], HOUR(5, 0));
    /* Past it: the current hour alone. */
    assert_int_equal(partitions(&d, HOUR(5, 0) + DISP_HOT_PREV_MS, DISP_SCAN_HOT, h), 1);
    assert_int_equal(h[0], HOUR(5, 0));
    /* A lookback shorter than an hour never reaches the previous hour. */
    disp_with_lookback(&d, &c, 60000);
    assert_int_equal(partitions(&d, HOUR(5, 1), DISP_SCAN_HOT, h), 1);
    assert_int_equal(h[0], HOUR(5, 0));
}

static void test_disp_lookback_scan_lists_every_hour_of_the_window(void **state)
{
    (void)state;
    struct dispatcher d;
    struct dispatcher_cfg c;
    int64_t h[8];
    disp_with_lookback(&d, &c, 3 * PIPE_HOUR_MS);
    assert_int_equal(partitions(&d, HOUR(5, 30), DISP_SCAN_LOOKBACK, h), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(h[i], HOUR(2 + i, 0));
}

/* A done set of one listed marker key. */
static struct disp_objs one_obj(const char *key)
{
    struct disp_objs o = {0};
    o.v = pipe_calloc(1, sizeof *o.v);
    o.v[0].key = pipe_strdup(key);
    o.n = o.cap = 1;
    return o;
}

static void test_disp_done_cache_keeps_replaces_and_prunes(void **state)
{
    (void)state;
    struct dispatcher d;
    struct dispatcher_cfg c;
    disp_with_lookback(&d, &c, 3 * PIPE_HOUR_MS);
    assert_null(disp_done_find(&d, HOUR(2, 0)));
    struct disp_objs a = one_obj("state/combine/a"), b = one_obj("state/combine/b");
    disp_done_keep(&d, HOUR(2, 0), &a);
    disp_done_keep(&d, HOUR(3, 0), &b);
    assert_null(a.v); /* taken */
    assert_string_equal(disp_done_find(&d, HOUR(2, 0))->v[0].key, "state/combine/a");
    /* A newer listing of the same hour replaces the older one. */
    struct disp_objs a2 = one_obj("state/combine/a2");
    disp_done_keep(&d, HOUR(2, 0), &a2);
    assert_int_equal(d.n_done, 2);
    assert_string_equal(disp_done_find(&d, HOUR(2, 0))->v[0].key, "state/combine/a2");
    /* Hours that left the window are dropped; INT64_MAX drops all. */
    disp_done_prune(&d, HOUR(3, 0));
    assert_null(disp_done_find(&d, HOUR(2, 0)));
    assert_non_null(disp_done_find(&d, HOUR(3, 0)));
    disp_done_prune(&d, INT64_MAX);
    assert_int_equal(d.n_done, 0);
    assert_null(d.done);
}

static void test_disp_list_returns_every_object_under_a_prefix_in_key_order(void **state)
{
    (void)state;
    struct tu_env *e = tu_env_new("disp-plan");
    assert_non_null(e);
    const char *keys[] = {
        "filtered/dt=2026-03-01/hr=05/c.ndjson.zst",
        "filtered/dt=2026-03-01/hr=05/a.ndjson.zst",
        "filtered/dt=2026-03-01/hr=06/b.ndjson.zst",
        "filtered/dt=2026-03-01/hr=05/b.ndjson.zst",
    };
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(pipe_store_put(e->store, keys[i], "xyz", i + 1), 0);
    struct disp_objs o = {0};
    assert_int_equal(disp_list(e->store, "filtered/dt=2026-03-01/hr=05/", &o), 0);
    assert_int_equal(o.n, 3);
    assert_string_equal(o.v[0].key, "filtered/dt=2026-03-01/hr=05/a.ndjson.zst");
    assert_int_equal(o.v[0].size, 2);
    assert_string_equal(o.v[1].key, "filtered/dt=2026-03-01/hr=05/b.ndjson.zst");
    assert_int_equal(o.v[1].size, 4);
    assert_string_equal(o.v[2].key, "filtered/dt=2026-03-01/hr=05/c.ndjson.zst");
    assert_int_equal(o.v[2].size, 1);
    /* Appends: a second listing adds to what is there. */
    assert_int_equal(disp_list(e->store, "filtered/dt=2026-03-01/hr=06/", &o), 0);
    assert_int_equal(o.n, 4);
    disp_objs_cleanup(&o);
    tu_env_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disp_lookback_starts_on_an_hour_and_never_before_zero),
        cmocka_unit_test(test_disp_hot_scan_keeps_the_previous_hour_early_in_an_hour),
        cmocka_unit_test(test_disp_lookback_scan_lists_every_hour_of_the_window),
        cmocka_unit_test(test_disp_done_cache_keeps_replaces_and_prunes),
        cmocka_unit_test(test_disp_list_returns_every_object_under_a_prefix_in_key_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
