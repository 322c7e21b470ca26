/* Contract tests for lease backends: every backend must give these results.
 * Runs against local:///<tmpdir> always, and against each URL in
 * SLUICE_TEST_LEASE_URLS (space-separated, e.g. "redis://127.0.0.1:6379").
 * Lease names carry a random per-run prefix, so runs may share a Redis. */
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
#include <sys/random.h>
#include <time.h>

#include "libpipe/err.h"
#include "libpipe/lease.h"
#include "libpipe/mem.h"
#include "tests/support/testutil.h"

#define SHORT_TTL      150 /* ms */
#define PAST_SHORT_TTL 220
#define LONG_TTL       30000

static const char *g_url; /* backend under test */
static char g_prefix[32]; /* random per run */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A name unique to this run and test, e.g. "ct-1a2b3c4d/jobs/renew". */
static char *lname(const char *what)
{
    return pipe_asprintf("%s/%s", g_prefix, what);
}

static struct pipe_leases *open_leases(void)
{
    struct pipe_leases *ls = NULL;
    int rc = pipe_leases_open(g_url, NULL, &ls);
    if (rc != 0)
        fail_msg("open %s: %s", g_url, pipe_strerror(rc));
    return ls;
}

static void test_lease_second_acquire_is_busy_from_any_handle(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases(), *b = open_leases();
    char *name = lname("busy");
    struct pipe_lease l1, l2;
    memset(&l2, 0x5a, sizeof l2);
    assert_int_equal(pipe_lease_acquire(a, name, LONG_TTL, &l1), 0);
    assert_string_equal(l1.name, name);
    assert_int_equal(strlen(l1.token), 32);
    assert_true(l1.fence > 0);
    assert_int_equal(pipe_lease_acquire(a, name, LONG_TTL, &l2), PIPE_EBUSY);
    assert_int_equal(pipe_lease_acquire(b, name, LONG_TTL, &l2), PIPE_EBUSY);
    assert_int_equal(((unsigned char *)&l2)[0], 0x5a); /* untouched on failure */
    assert_int_equal(pipe_lease_check(a, &l1), 0);
    assert_int_equal(pipe_lease_release(a, &l1), 0);
    pipe_free(name);
    pipe_leases_free(a);
    pipe_leases_free(b);
}

static void test_lease_release_then_acquire_succeeds_with_larger_fence(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases(), *b = open_leases();
    char *name = lname("release");
    struct pipe_lease l1, l2;
    assert_int_equal(pipe_lease_acquire(a, name, LONG_TTL, &l1), 0);
    uint64_t f1 = l1.fence;
    char tok1[33];
    memcpy(tok1, l1.token, sizeof tok1);
    assert_int_equal(pipe_lease_release(a, &l1), 0);
    assert_null(l1.name);
    assert_int_equal(pipe_lease_acquire(b, name, LONG_TTL, &l2), 0);
    assert_true(l2.fence > f1);
    assert_string_not_equal(l2.token, tok1);
    assert_int_equal(pipe_lease_release(b, &l2), 0);
    pipe_free(name);
    pipe_leases_free(a);
    pipe_leases_free(b);
}

static void test_lease_renew_by_owner_extends_past_first_ttl(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases(), *b = open_leases();
    char *name = lname("renew");
    struct pipe_lease l, other;
    assert_int_equal(pipe_lease_acquire(a, name, 400, &l), 0);
    int64_t first = l.expires_ms;
    sleep_ms(150);
    assert_int_equal(pipe_lease_renew(a, &l, 2000), 0);
    assert_true(l.expires_ms >= first + 1500);
    sleep_ms(350); /* past the first TTL, well within the renewed one */
    assert_int_equal(pipe_lease_check(a, &l), 0);
    assert_int_equal(pipe_lease_acquire(b, name, LONG_TTL, &other), PIPE_EBUSY);
    assert_int_equal(pipe_lease_release(a, &l), 0);
    pipe_free(name);
    pipe_leases_free(a);
    pipe_leases_free(b);
}

static void test_lease_stale_holder_is_lost_and_leaves_new_owner_alone(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases(), *b = open_leases();
    char *name = lname("stale");
    struct pipe_lease old, cur, third;
    assert_int_equal(pipe_lease_acquire(a, name, SHORT_TTL, &old), 0);
    sleep_ms(PAST_SHORT_TTL);
    assert_int_equal(pipe_lease_acquire(b, name, LONG_TTL, &cur), 0);
    assert_true(cur.fence > old.fence);

    assert_int_equal(pipe_lease_check(a, &old), PIPE_ELOST);
    /* A holder whose clock lags still hears it from the backend. */
    struct pipe_lease skewed = old;
    skewed.expires_ms = cur.expires_ms;
    assert_int_equal(pipe_lease_check(a, &skewed), PIPE_ELOST);
    assert_int_equal(pipe_lease_renew(a, &old, LONG_TTL), PIPE_ELOST);
    assert_int_equal(pipe_lease_release(a, &old), PIPE_ELOST);
    assert_null(old.name);

    assert_int_equal(pipe_lease_check(b, &cur), 0);
    assert_int_equal(pipe_lease_renew(b, &cur, LONG_TTL), 0);
    assert_int_equal(pipe_lease_acquire(a, name, LONG_TTL, &third), PIPE_EBUSY);
    assert_int_equal(pipe_lease_release(b, &cur), 0);
    pipe_free(name);
    pipe_leases_free(a);
    pipe_leases_free(b);
}

static void test_lease_forged_token_is_lost(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases();
    char *name = lname("forged");
    struct pipe_lease l;
    assert_int_equal(pipe_lease_acquire(a, name, LONG_TTL, &l), 0);
    struct pipe_lease forged = l;
    forged.name = pipe_strdup(name);
    forged.token[0] = forged.token[0] == 'a' ? 'b' : 'a';
    assert_int_equal(pipe_lease_check(a, &forged), PIPE_ELOST);
    assert_int_equal(pipe_lease_renew(a, &forged, LONG_TTL), PIPE_ELOST);
    assert_int_equal(pipe_lease_release(a, &forged), PIPE_ELOST);
    /* A right token with a wrong fence is not the owner either. */
    struct pipe_lease wrong_fence = l;
    wrong_fence.name = pipe_strdup(name);
    wrong_fence.fence++;
    assert_int_equal(pipe_lease_check(a, &wrong_fence), PIPE_ELOST);
    pipe_lease_cleanup(&wrong_fence);
    assert_int_equal(pipe_lease_check(a, &l), 0);
    assert_int_equal(pipe_lease_release(a, &l), 0);
    pipe_free(name);
    pipe_leases_free(a);
}

static void test_lease_expiry_after_short_ttl_lets_another_acquire(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases(), *b = open_leases();
    char *name = lname("expiry");
    struct pipe_lease l1, l2;
    assert_int_equal(pipe_lease_acquire(a, name, SHORT_TTL, &l1), 0);
    assert_int_equal(pipe_lease_acquire(b, name, LONG_TTL, &l2), PIPE_EBUSY);
    sleep_ms(PAST_SHORT_TTL);
    assert_int_equal(pipe_lease_acquire(b, name, LONG_TTL, &l2), 0);
    assert_true(l2.fence > l1.fence);
    pipe_lease_cleanup(&l1);
    assert_int_equal(pipe_lease_release(b, &l2), 0);
    pipe_free(name);
    pipe_leases_free(a);
    pipe_leases_free(b);
}

static void test_lease_check_is_lost_after_expiry(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases();
    char *name = lname("check-expiry");
    struct pipe_lease l;
    assert_int_equal(pipe_lease_acquire(a, name, SHORT_TTL, &l), 0);
    assert_int_equal(pipe_lease_check(a, &l), 0);
    sleep_ms(PAST_SHORT_TTL);
    assert_int_equal(pipe_lease_check(a, &l), PIPE_ELOST);
    assert_int_equal(pipe_lease_renew(a, &l, LONG_TTL), PIPE_ELOST);
    pipe_lease_cleanup(&l);
    pipe_free(name);
    pipe_leases_free(a);
}

#define RACERS 8
#define ROUNDS 25

struct race {
    pthread_barrier_t bar;
    struct pipe_leases *shared;
    const char *name;
    _Atomic int wins[ROUNDS];
    _Atomic uint64_t fence[ROUNDS];
    _Atomic int errors;
};

struct racer {
    struct race *race;
    int idx;
};

/* Odd racers use a handle of their own, even ones share one: both must
 * exclude each other the same way. */
static void *racer_main(void *arg)
{
    struct racer *me = arg;
    struct race *r = me->race;
    struct pipe_leases *own = NULL;
    if (me->idx % 2 && pipe_leases_open(g_url, NULL, &own) != 0)
        atomic_fetch_add(&r->errors, 1);
    struct pipe_leases *ls = own ? own : r->shared;
    for (int round = 0; round < ROUNDS; round++) {
        struct pipe_lease l;
        pthread_barrier_wait(&r->bar);
        int rc = pipe_lease_acquire(ls, r->name, LONG_TTL, &l);
        if (rc == 0) {
            atomic_fetch_add(&r->wins[round], 1);
            atomic_store(&r->fence[round], l.fence);
        } else if (rc != PIPE_EBUSY) {
            atomic_fetch_add(&r->errors, 1);
        }
        pthread_barrier_wait(&r->bar); /* everyone has tried before anyone releases */
        if (rc == 0 && pipe_lease_release(ls, &l) != 0)
            atomic_fetch_add(&r->errors, 1);
        pthread_barrier_wait(&r->bar);
    }
    pipe_leases_free(own);
    return NULL;
}

static void test_lease_eight_racing_threads_have_one_winner_per_round(void **state)
{
    (void)state;
    struct race r;
    memset(&r, 0, sizeof r);
    char *name = lname("race");
    r.name = name;
    r.shared = open_leases();
    pthread_barrier_init(&r.bar, NULL, RACERS);
    pthread_t th[RACERS];
    struct racer args[RACERS];
    for (int i = 0; i < RACERS; i++) {
        args[i] = (struct racer){&r, i};
        assert_int_equal(pthread_create(&th[i], NULL, racer_main, &args[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&r.errors), 0);
    for (int round = 0; round < ROUNDS; round++) {
        assert_int_equal(atomic_load(&r.wins[round]), 1);
        if (round > 0)
            assert_true(atomic_load(&r.fence[round]) > atomic_load(&r.fence[round - 1]));
    }
    uint64_t acquired, busy, lost, errors;
    pipe_leases_counters(r.shared, &acquired, &busy, &lost, &errors);
    assert_true(acquired + busy > 0);
    assert_int_equal(errors, 0);
    pthread_barrier_destroy(&r.bar);
    pipe_leases_free(r.shared);
    pipe_free(name);
}

static void test_lease_fences_strictly_increase_over_100_cycles(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases(), *b = open_leases();
    char *name = lname("fences");
    uint64_t last = 0;
    for (int i = 0; i < 100; i++) {
        struct pipe_lease l;
        struct pipe_leases *ls = i % 3 ? a : b;
        assert_int_equal(pipe_lease_acquire(ls, name, LONG_TTL, &l), 0);
        assert_true(l.fence > last);
        last = l.fence;
        assert_int_equal(pipe_lease_release(ls, &l), 0);
    }
    pipe_free(name);
    pipe_leases_free(a);
    pipe_leases_free(b);
}

static void test_lease_invalid_names_and_ttls_are_einval(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases();
    struct pipe_lease l;
    char longname[PIPE_LEASE_NAME_MAX + 2];
    const char *bad[] = {"",        "new\nline",   "tab\there",
                         "del\x7f", "caf\xc3\xa9", "nul-free-but-\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(pipe_lease_acquire(a, bad[i], LONG_TTL, &l), PIPE_EINVAL);
    assert_int_equal(pipe_lease_acquire(a, NULL, LONG_TTL, &l), PIPE_EINVAL);
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(pipe_lease_acquire(a, longname, LONG_TTL, &l), PIPE_EINVAL);

    char *name = lname("ttl");
    assert_int_equal(pipe_lease_acquire(a, name, 0, &l), PIPE_EINVAL);
    assert_int_equal(pipe_lease_acquire(a, name, -5, &l), PIPE_EINVAL);
    assert_int_equal(pipe_lease_acquire(a, name, PIPE_LEASE_TTL_MAX_MS + 1, &l), PIPE_EINVAL);
    assert_int_equal(pipe_lease_acquire(a, name, LONG_TTL, &l), 0);
    assert_int_equal(pipe_lease_renew(a, &l, 0), PIPE_EINVAL);
    assert_int_equal(pipe_lease_release(a, &l), 0);
    pipe_free(name);
    pipe_leases_free(a);
}

static void test_lease_names_with_slashes_spaces_and_max_length_are_distinct(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases();
    char *n1 = lname("filtered/dt=2026-01-01/hr=00/x.ndjson.zst");
    char *n2 = lname("filtered/dt=2026-01-01/hr=00");
    char *n3 = lname("with space and \"quotes\" ~!@#$%^&*()");
    char *n4 = lname("");
    size_t len = strlen(n4);
    n4 = pipe_realloc(n4, PIPE_LEASE_NAME_MAX + 1);
    memset(n4 + len, 'y', PIPE_LEASE_NAME_MAX - len);
    n4[PIPE_LEASE_NAME_MAX] = '\0';
    struct pipe_lease l1, l2, l3, l4, dup;
    assert_int_equal(pipe_lease_acquire(a, n1, LONG_TTL, &l1), 0);
    assert_int_equal(pipe_lease_acquire(a, n2, LONG_TTL, &l2), 0);
    assert_int_equal(pipe_lease_acquire(a, n3, LONG_TTL, &l3), 0);
    assert_int_equal(pipe_lease_acquire(a, n4, LONG_TTL, &l4), 0);
    assert_int_equal(pipe_lease_acquire(a, n4, LONG_TTL, &dup), PIPE_EBUSY);
    assert_int_equal(pipe_lease_release(a, &l1), 0);
    assert_int_equal(pipe_lease_check(a, &l2), 0); /* l1's release left l2 alone */
    assert_int_equal(pipe_lease_release(a, &l2), 0);
    assert_int_equal(pipe_lease_release(a, &l3), 0);
    assert_int_equal(pipe_lease_release(a, &l4), 0);
    pipe_free(n1);
    pipe_free(n2);
    pipe_free(n3);
    pipe_free(n4);
    pipe_leases_free(a);
}

static void test_lease_release_is_idempotent_and_counters_count(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases();
    char *name = lname("idempotent");
    struct pipe_lease l, again;
    assert_int_equal(pipe_lease_acquire(a, name, LONG_TTL, &l), 0);
    assert_int_equal(pipe_lease_acquire(a, name, LONG_TTL, &again), PIPE_EBUSY);
    assert_int_equal(pipe_lease_release(a, &l), 0);
    assert_null(l.name);
    assert_int_equal(pipe_lease_release(a, &l), 0);
    assert_int_equal(pipe_lease_check(a, &l), PIPE_ELOST);
    assert_int_equal(pipe_lease_renew(a, &l, LONG_TTL), PIPE_ELOST);
    pipe_lease_cleanup(&l);
    pipe_lease_cleanup(NULL);
    uint64_t acquired, busy, lost, errors;
    pipe_leases_counters(a, &acquired, &busy, &lost, &errors);
    assert_int_equal(acquired, 1);
    assert_int_equal(busy, 1);
    assert_int_equal(lost, 2);
    assert_int_equal(errors, 0);
    pipe_leases_counters(a, NULL, NULL, NULL, NULL);
    pipe_free(name);
    pipe_leases_free(a);
}

/* Generations: 0 before any bump, then a new, larger value at each bump,
 * seen by every handle; names are independent. */
static void test_generation_bumps_grow_and_are_seen_by_other_handles(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases(), *b = open_leases();
    /* Names of their own per backend: two URLs may reach one server. */
    char *n1 = pipe_asprintf("%s/%s/gen/one", g_prefix, g_url);
    char *n2 = pipe_asprintf("%s/%s/gen/two", g_prefix, g_url);
    const char *names[] = {n1, n2};
    uint64_t v[2] = {7, 7}, w[2];
    assert_int_equal(pipe_leases_generations(b, names, 2, v), 0);
    assert_true(v[0] == 0 && v[1] == 0);
    assert_int_equal(pipe_leases_bump(a, n1), 0);
    assert_int_equal(pipe_leases_generations(b, names, 2, w), 0);
    assert_true(w[0] > 0);
    assert_true(w[1] == 0);
    for (int i = 0; i < 20; i++) {
        uint64_t before = w[0];
        assert_int_equal(pipe_leases_bump(i % 2 ? a : b, n1), 0);
        assert_int_equal(pipe_leases_generations(a, names, 2, w), 0);
        assert_true(w[0] > before);
    }
    assert_int_equal(w[1], 0);
    pipe_free(n2);
    pipe_free(n1);
    pipe_leases_free(b);
    pipe_leases_free(a);
}

static void test_generation_bad_names_and_counts_are_einval(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases();
    char *n1 = lname("gen/args");
    const char *names[PIPE_LEASE_GENERATIONS_MAX + 1];
    uint64_t v[PIPE_LEASE_GENERATIONS_MAX + 1] = {42};
    for (size_t i = 0; i <= PIPE_LEASE_GENERATIONS_MAX; i++)
        names[i] = n1;
    assert_int_equal(pipe_leases_bump(a, ""), PIPE_EINVAL);
    assert_int_equal(pipe_leases_bump(a, "bad\nname"), PIPE_EINVAL);
    assert_int_equal(pipe_leases_generations(a, names, 0, v), PIPE_EINVAL);
    assert_int_equal(pipe_leases_generations(a, names, PIPE_LEASE_GENERATIONS_MAX + 1, v),
                     PIPE_EINVAL);
    names[0] = "bad\tname";
    assert_int_equal(pipe_leases_generations(a, names, 1, v), PIPE_EINVAL);
    assert_int_equal(v[0], 42); /* untouched on failure */
    names[0] = n1;
    assert_int_equal(pipe_leases_generations(a, names, PIPE_LEASE_GENERATIONS_MAX, v), 0);
    pipe_free(n1);
    pipe_leases_free(a);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_generation_bumps_grow_and_are_seen_by_other_handles),
    cmocka_unit_test(test_generation_bad_names_and_counts_are_einval),
    cmocka_unit_test(test_lease_second_acquire_is_busy_from_any_handle),
    cmocka_unit_test(test_lease_release_then_acquire_succeeds_with_larger_fence),
    cmocka_unit_test(test_lease_renew_by_owner_extends_past_first_ttl),
    cmocka_unit_test(test_lease_stale_holder_is_lost_and_leaves_new_owner_alone),
    cmocka_unit_test(test_lease_forged_token_is_lost),
    cmocka_unit_test(test_lease_expiry_after_short_ttl_lets_another_acquire),
    cmocka_unit_test(test_lease_check_is_lost_after_expiry),
    cmocka_unit_test(test_lease_eight_racing_threads_have_one_winner_per_round),
    cmocka_unit_test(test_lease_fences_strictly_increase_over_100_cycles),
    cmocka_unit_test(test_lease_invalid_names_and_ttls_are_einval),
    cmocka_unit_test(test_lease_names_with_slashes_spaces_and_max_length_are_distinct),
    cmocka_unit_test(test_lease_release_is_idempotent_and_counters_count),
};

static int run_for(const char *url)
{
    char group[256];
    g_url = url;
    snprintf(group, sizeof group, "lease contract: %s", url);
    return _cmocka_run_group_tests(group, tests, sizeof tests / sizeof tests[0], NULL, NULL);
}

int main(void)
{
    unsigned char rnd[4];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return 1;
    snprintf(g_prefix, sizeof g_prefix, "ct-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);

    char *tmp = tu_tmpdir("lease-contract");
    char *abs = tmp ? realpath(tmp, NULL) : NULL;
    if (!abs)
        return 1;
    char *local = pipe_asprintf("local://%s", abs);
    int failed = run_for(local);

    const char *extra = getenv("SLUICE_TEST_LEASE_URLS");
    char *urls = pipe_strdup(extra ? extra : "");
    char *save = NULL;
    for (char *u = strtok_r(urls, " ", &save); u; u = strtok_r(NULL, " ", &save))
        failed += run_for(u);

    pipe_free(urls);
    pipe_free(local);
    tu_rmrf(tmp);
    free(abs);
    free(tmp);
    return failed;
}
