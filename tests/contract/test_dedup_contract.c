/* Contract tests for de-duplication backends: every backend must give these
 * verdicts. Runs against "local" always, and against each URL in
 * SLUICE_TEST_DEDUP_URLS (space-separated, e.g. "redis://127.0.0.1:6379").
 * Each test has its own store (file://<tmp>/store) and lease directory
 * (local:///<tmp>/leases), so tests never see each other's claims. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/dedup.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/lease.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"
#include "tests/support/testutil.h"

#define HOUR_MS (3600LL * 1000)

static const char *g_url; /* backend under test */

struct fx {
    struct tu_env *env;
    char *down_file; /* <dir>/down: the fault store fails while it exists */
};

static int setup(void **state)
{
    struct fx *f = pipe_calloc(1, sizeof *f);
    f->env = tu_env_new("dedup-contract");
    if (f->env == NULL) {
        pipe_free(f);
        return -1;
    }
    f->down_file = pipe_asprintf("%s/down", f->env->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_env_free(f->env);
    pipe_free(f->down_file);
    pipe_free(f);
    return 0;
}

static struct pipe_dedup *open_dedup(struct pipe_store *s, struct pipe_leases *ls,
                                     const struct pipe_dedup_config *cfg)
{
    struct pipe_dedup *d = NULL;
    int rc = pipe_dedup_open(g_url, s, ls, cfg, &d);
    if (rc != 0)
        fail_msg("open %s: %s", g_url, pipe_strerror(rc));
    return d;
}

/* keys[i] = key of ("page_view", "id-<first + i>"). */
static struct pipe_dedup_key *make_keys(int first, size_t n)
{
    struct pipe_dedup_key *k = pipe_malloc(n * sizeof *k);
    for (size_t i = 0; i < n; i++) {
        char id[32];
        int len = snprintf(id, sizeof id, "id-%d", first + (int)i);
        pipe_dedup_key_of("page_view", 9, id, (size_t)len, &k[i]);
    }
    return k;
}

/* Claims ids [first, first + n) for job and checks every verdict is want
 * (want < 0: no check). Returns the verdicts (caller frees). */
static uint8_t *claim_range(struct pipe_dedup *d, const char *job, int64_t hour_ms, int64_t now_ms,
                            int first, size_t n, int want)
{
    struct pipe_dedup_key *k = make_keys(first, n);
    uint8_t *v = pipe_malloc(n);
    memset(v, 0xee, n);
    int rc = pipe_dedup_claim(d, job, hour_ms, now_ms, k, n, v);
    if (rc != 0)
        fail_msg("claim %s: %s", job, pipe_strerror(rc));
    for (size_t i = 0; want >= 0 && i < n; i++)
        if (v[i] != want)
            fail_msg("claim %s: id-%d verdict %d, want %d", job, first + (int)i, v[i], want);
    pipe_free(k);
    return v;
}

static void claim_expect(struct pipe_dedup *d, const char *job, int64_t hour_ms, int first,
                         size_t n, int want)
{
    pipe_free(claim_range(d, job, hour_ms, pipe_clock_now_ms(), first, n, want));
}

static void test_dedup_first_claim_is_new_and_same_job_again_is_mine(void **state)
{
    struct fx *f = *state;
    struct pipe_dedup *d = open_dedup(f->env->store, f->env->leases, NULL);
    int64_t now = pipe_clock_now_ms();
    claim_expect(d, "g1-2026-aaaa", now, 0, 50, PIPE_DEDUP_NEW);
    claim_expect(d, "g1-2026-aaaa", now, 0, 50, PIPE_DEDUP_MINE);
    /* A re-run that also brings new keys: old ones MINE, new ones NEW. */
    uint8_t *v = claim_range(d, "g1-2026-aaaa", now, now, 40, 20, -1);
    for (int i = 0; i < 20; i++)
        assert_int_equal(v[i], i < 10 ? PIPE_DEDUP_MINE : PIPE_DEDUP_NEW);
    pipe_free(v);
    uint64_t fresh, mine, dups;
    pipe_dedup_counters(d, &fresh, &mine, &dups);
    assert_int_equal(fresh, 60);
    assert_int_equal(mine, 60);
    assert_int_equal(dups, 0);
    pipe_dedup_free(d);
}

static void test_dedup_other_job_gets_dup_for_overlap_and_new_for_rest(void **state)
{
    struct fx *f = *state;
    struct pipe_dedup *d = open_dedup(f->env->store, f->env->leases, NULL);
    int64_t now = pipe_clock_now_ms();
    claim_expect(d, "job-a", now, 0, 100, PIPE_DEDUP_NEW);
    uint8_t *v = claim_range(d, "job-b", now, now, 50, 100, -1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(v[i], i < 50 ? PIPE_DEDUP_DUP : PIPE_DEDUP_NEW);
    pipe_free(v);
    /* The first job still owns its keys; the second owns the rest. */
    claim_expect(d, "job-a", now, 0, 100, PIPE_DEDUP_MINE);
    claim_expect(d, "job-b", now, 100, 50, PIPE_DEDUP_MINE);
    uint64_t dups;
    pipe_dedup_counters(d, NULL, NULL, &dups);
    assert_int_equal(dups, 50);
    pipe_dedup_free(d);
}

static void test_dedup_new_handle_sees_earlier_claims_from_store(void **state)
{
    struct fx *f = *state;
    int64_t now = pipe_clock_now_ms();
    struct pipe_dedup *d = open_dedup(f->env->store, f->env->leases, NULL);
    claim_expect(d, "job-a", now, 0, 30, PIPE_DEDUP_NEW);
    claim_expect(d, "job-b", now - HOUR_MS, 30, 30, PIPE_DEDUP_NEW);
    pipe_dedup_free(d);

    /* A restart: empty memory, fresh store and lease handles too. */
    struct pipe_store *s2 = NULL;
    struct pipe_leases *l2 = NULL;
    assert_int_equal(pipe_store_open(f->env->store_url, &s2), 0);
    assert_int_equal(pipe_leases_open(f->env->lease_url, NULL, &l2), 0);
    struct pipe_dedup *e = open_dedup(s2, l2, NULL);
    claim_expect(e, "job-a", now, 0, 30, PIPE_DEDUP_MINE);
    claim_expect(e, "job-c", now, 0, 60, PIPE_DEDUP_DUP);
    claim_expect(e, "job-b", now - HOUR_MS, 30, 30, PIPE_DEDUP_MINE);
    pipe_dedup_free(e);
    pipe_leases_free(l2);
    pipe_store_free(s2);
}

static void test_dedup_two_handles_see_each_others_claims(void **state)
{
    struct fx *f = *state;
    int64_t now = pipe_clock_now_ms();
    struct pipe_leases *l2 = NULL;
    assert_int_equal(pipe_leases_open(f->env->lease_url, NULL, &l2), 0);
    struct pipe_dedup *a = open_dedup(f->env->store, f->env->leases, NULL);
    struct pipe_dedup *b = open_dedup(f->env->store, l2, NULL);

    claim_expect(a, "job-1", now, 0, 10, PIPE_DEDUP_NEW);
    uint8_t *v = claim_range(b, "job-2", now, now, 5, 10, -1); /* ids 5..14 */
    for (int i = 0; i < 10; i++)
        assert_int_equal(v[i], i < 5 ? PIPE_DEDUP_DUP : PIPE_DEDUP_NEW);
    pipe_free(v);
    v = claim_range(a, "job-3", now, now, 12, 8, -1); /* ids 12..19: 12..14 are job-2's */
    for (int i = 0; i < 8; i++)
        assert_int_equal(v[i], i < 3 ? PIPE_DEDUP_DUP : PIPE_DEDUP_NEW);
    pipe_free(v);
    claim_expect(b, "job-1", now, 0, 5, PIPE_DEDUP_MINE); /* written by a */
    claim_expect(b, "job-4", now, 15, 5, PIPE_DEDUP_DUP); /* job-3's, via a */
    pipe_dedup_free(a);
    pipe_dedup_free(b);
    pipe_leases_free(l2);
}

static void test_dedup_claims_older_than_window_do_not_count(void **state)
{
    struct fx *f = *state;
    struct pipe_dedup_config cfg = {.window_ms = 24 * HOUR_MS};
    int64_t now = pipe_clock_now_ms();
    int64_t old = now - 48 * HOUR_MS;
    struct pipe_dedup *d = open_dedup(f->env->store, f->env->leases, &cfg);
    /* Claimed two days ago, as it was then. */
    pipe_free(claim_range(d, "job-old", old, old, 0, 20, PIPE_DEDUP_NEW));
    /* Today those claims are out of the window: new for another job. */
    claim_expect(d, "job-new", now, 0, 20, PIPE_DEDUP_NEW);
    /* A restarted process agrees. */
    pipe_dedup_free(d);
    d = open_dedup(f->env->store, f->env->leases, &cfg);
    claim_expect(d, "job-new", now, 0, 20, PIPE_DEDUP_MINE);
    claim_expect(d, "job-third", now, 0, 20, PIPE_DEDUP_DUP);
    /* A replay into an hour outside the window claims there, not today. */
    pipe_free(claim_range(d, "job-replay", old, now, 100, 20, PIPE_DEDUP_NEW));
    claim_expect(d, "job-today", now, 100, 20, PIPE_DEDUP_NEW);
    pipe_dedup_free(d);
}

static void test_dedup_replay_of_old_hour_keeps_its_own_claims(void **state)
{
    struct fx *f = *state;
    struct pipe_dedup_config cfg = {.window_ms = 24 * HOUR_MS};
    int64_t now = pipe_clock_now_ms();
    int64_t old = now - 30 * HOUR_MS;
    struct pipe_dedup *d = open_dedup(f->env->store, f->env->leases, &cfg);
    pipe_free(claim_range(d, "job-old", old, old, 0, 20, PIPE_DEDUP_NEW));
    pipe_dedup_free(d);
    d = open_dedup(f->env->store, f->env->leases, &cfg);
    /* Replayed now: its index lies outside the window, but it is its own. */
    claim_expect(d, "job-old", old, 0, 20, PIPE_DEDUP_MINE);
    pipe_dedup_free(d);
}

struct racer {
    struct fx *f;
    int t;
    int first;
    size_t n;
    uint8_t *verdicts;
    int rc;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct pipe_store *s = NULL;
    struct pipe_leases *ls = NULL;
    struct pipe_dedup *d = NULL;
    r->rc = pipe_store_open(r->f->env->store_url, &s);
    if (r->rc == 0)
        r->rc = pipe_leases_open(r->f->env->lease_url, NULL, &ls);
    if (r->rc == 0)
        r->rc = pipe_dedup_open(g_url, s, ls, NULL, &d);
    char job[32];
    snprintf(job, sizeof job, "job-race-%d", r->t);
    struct pipe_dedup_key *k = make_keys(r->first, r->n);
    r->verdicts = pipe_malloc(r->n);
    /* Several smaller claims per job, so the threads interleave. */
    size_t step = r->n / 4;
    for (size_t i = 0; i < r->n && r->rc == 0; i += step)
        r->rc = pipe_dedup_claim(d, job, pipe_clock_now_ms(), pipe_clock_now_ms(), k + i,
                                 r->n - i < step ? r->n - i : step, r->verdicts + i);
    pipe_free(k);
    pipe_dedup_free(d);
    pipe_leases_free(ls);
    pipe_store_free(s);
    return NULL;
}

static void test_dedup_racing_handles_claim_each_key_for_exactly_one_job(void **state)
{
    struct fx *f = *state;
    enum { THREADS = 4, N = 2000, STRIDE = 1000 };
    struct racer r[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        r[t] = (struct racer){.f = f, .t = t, .first = t * STRIDE, .n = N};
        assert_int_equal(pthread_create(&th[t], NULL, race, &r[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(r[t].rc, 0);
    for (int id = 0; id < (THREADS - 1) * STRIDE + N; id++) {
        int fresh = 0, seen = 0;
        for (int t = 0; t < THREADS; t++) {
            if (id < r[t].first || id >= r[t].first + N)
                continue;
            uint8_t v = r[t].verdicts[id - r[t].first];
            seen++;
            fresh += v == PIPE_DEDUP_NEW;
            if (v != PIPE_DEDUP_NEW && v != PIPE_DEDUP_DUP)
                fail_msg("id-%d: verdict %d for job %d", id, v, t);
        }
        if (seen && fresh != 1)
            fail_msg("id-%d: NEW for %d jobs out of %d", id, fresh, seen);
    }
    for (int t = 0; t < THREADS; t++)
        pipe_free(r[t].verdicts);
}

static void test_dedup_store_down_fails_claim_and_later_claim_succeeds(void **state)
{
    struct fx *f = *state;
    char *url = pipe_asprintf("fault:down_file=%s:%s", f->down_file, f->env->store_url);
    struct pipe_store *s = NULL;
    assert_int_equal(pipe_store_open(url, &s), 0);
    struct pipe_dedup_config cfg = {.wait_ms = 2000};
    struct pipe_dedup *d = open_dedup(s, f->env->leases, &cfg);
    int64_t now = pipe_clock_now_ms();
    claim_expect(d, "job-a", now, 0, 10, PIPE_DEDUP_NEW);

    assert_int_equal(tu_write_file(f->down_file, "", 0), 0);
    struct pipe_dedup_key *k = make_keys(5, 10);
    uint8_t v[10];
    memset(v, 0xee, sizeof v);
    int rc = pipe_dedup_claim(d, "job-b", now, now, k, 10, v);
    assert_true(rc < 0);
    assert_true(pipe_err_is_transient(rc));
    for (int i = 0; i < 10; i++)
        assert_int_equal(v[i], 0xee); /* untouched on failure */

    assert_int_equal(unlink(f->down_file), 0);
    assert_int_equal(pipe_dedup_claim(d, "job-b", now, now, k, 10, v), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(v[i], i < 5 ? PIPE_DEDUP_DUP : PIPE_DEDUP_NEW);
    pipe_free(k);
    pipe_dedup_free(d);
    pipe_store_free(s);
    pipe_free(url);
}

static void test_dedup_corrupt_index_object_fails_claim(void **state)
{
    struct fx *f = *state;
    int64_t now = pipe_clock_now_ms();
    struct pipe_buf key;
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    assert_int_equal(pipe_keys_dedup_index(&key, now, "job-broken"), 0);
    assert_int_equal(pipe_store_put(f->env->store, key.data, "not an index", 12), 0);
    struct pipe_dedup *d = open_dedup(f->env->store, f->env->leases, NULL);
    struct pipe_dedup_key *k = make_keys(0, 5);
    uint8_t v[5];
    assert_int_equal(pipe_dedup_claim(d, "job-a", now, now, k, 5, v), PIPE_ECORRUPT);
    /* Not cached as failed or ignored: it fails until someone repairs it. */
    assert_int_equal(pipe_dedup_claim(d, "job-a", now, now, k, 5, v), PIPE_ECORRUPT);
    assert_int_equal(pipe_store_delete(f->env->store, key.data), 0);
    assert_int_equal(pipe_dedup_claim(d, "job-a", now, now, k, 5, v), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(v[i], PIPE_DEDUP_NEW);
    pipe_free(k);
    pipe_dedup_free(d);
    pipe_buf_cleanup(&key);
}

static void test_dedup_claim_of_100k_keys_takes_under_a_second(void **state)
{
    struct fx *f = *state;
    enum { N = 100000 };
    struct pipe_dedup *d = open_dedup(f->env->store, f->env->leases, NULL);
    struct pipe_dedup_key *k = make_keys(0, N);
    uint8_t *v = pipe_malloc(N);
    int64_t now = pipe_clock_now_ms();
    int64_t t0 = pipe_clock_mono_ms();
    assert_int_equal(pipe_dedup_claim(d, "job-big", now, now, k, N, v), 0);
    int64_t t1 = pipe_clock_mono_ms();
    assert_int_equal(pipe_dedup_claim(d, "job-other", now, now, k, N, v), 0);
    int64_t t2 = pipe_clock_mono_ms();
    for (int i = 0; i < N; i++)
        assert_int_equal(v[i], PIPE_DEDUP_DUP);
    print_message("100k keys: new %lld ms, dup %lld ms\n", (long long)(t1 - t0),
                  (long long)(t2 - t1));
    assert_true(t1 - t0 < 1000);
    assert_true(t2 - t1 < 1000);
    pipe_free(v);
    pipe_free(k);
    pipe_dedup_free(d);
}

static int run_for(const char *url)
{
    g_url = url;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dedup_first_claim_is_new_and_same_job_again_is_mine,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_other_job_gets_dup_for_overlap_and_new_for_rest,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_new_handle_sees_earlier_claims_from_store, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dedup_two_handles_see_each_others_claims, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dedup_claims_older_than_window_do_not_count, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dedup_replay_of_old_hour_keeps_its_own_claims, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_dedup_racing_handles_claim_each_key_for_exactly_one_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_store_down_fails_claim_and_later_claim_succeeds,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_corrupt_index_object_fails_claim, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dedup_claim_of_100k_keys_takes_under_a_second, setup,
                                        teardown),
    };
    char name[128];
    snprintf(name, sizeof name, "dedup contract (%s)", url);
    return cmocka_run_group_tests_name(name, tests, NULL, NULL);
}

int main(void)
{
    int failed = run_for("local");
    const char *extra = getenv("SLUICE_TEST_DEDUP_URLS");
    char *urls = pipe_strdup(extra ? extra : "");
    char *save = NULL;
    for (char *u = strtok_r(urls, " ", &save); u; u = strtok_r(NULL, " ", &save))
        failed += run_for(u);
    pipe_free(urls);
    return failed;
}
