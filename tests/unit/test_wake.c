/* Unit tests for libpipe/wake: a watch lists first, then only after a
 * producer's bump or once idle_list has passed; a failing backend means
 * "list"; a generation the backend lost (a flushed Redis, a deleted file)
 * makes the watch list and never comes back to an old value. Runs against
 * local:///<tmpdir> always and each URL in SLUICE_TEST_LEASE_URLS (the real
 * redis-server tests/run.sh starts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "libpipe/err.h"
#include "libpipe/lease.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/redis.h"
#include "libpipe/wake.h"
#include "tests/support/testutil.h"

#define HOUR_MS 3600000

static const char *g_url; /* backend under test */
static const char *g_dir; /* its directory when local */
static char g_prefix[32]; /* random per run */
static char *g_tmp;       /* scratch directory */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A consumer and a producer, as two processes would have them: the
 * consumer on its stage's lease handle, the producer (a filter) on a
 * handle opened from the URL at its first bump. */
struct fix {
    struct pipe_leases *ls;
    struct pipe_metrics *reg;
    struct pipe_wake *consumer, *producer;
    char *name;
    const char *names[1];
};

static void fix_open(struct fix *f, const char *url, const char *what, int64_t idle_list_ms)
{
    memset(f, 0, sizeof *f);
    int rc = pipe_leases_open(url, NULL, &f->ls);
    if (rc != 0)
        fail_msg("open %s: %s", url, pipe_strerror(rc));
    f->reg = pipe_metrics_new();
    f->consumer = pipe_wake_new(f->ls, url, idle_list_ms, f->reg);
    f->producer = pipe_wake_new(NULL, url, idle_list_ms, f->reg);
    /* Names of their own per backend: two URLs may reach one server. */
    f->name = pipe_asprintf("%s/%s/%s/", g_prefix, g_url, what);
    f->names[0] = f->name;
}

/* fix_watch — fix_open, then a watch labelled what that has listed once. */
static struct pipe_wake_watch *fix_watch(struct fix *f, const char *url, const char *what,
                                         int64_t idle_list_ms)
{
    fix_open(f, url, what, idle_list_ms);
    struct pipe_wake_watch *ww = pipe_wake_watch_new(f->consumer, what, f->names, 1);
    pipe_wake_watch_read(ww);
    pipe_wake_watch_listed(ww, 0);
    return ww;
}

static void fix_close(struct fix *f)
{
    pipe_wake_free(f->producer);
    pipe_wake_free(f->consumer);
    pipe_leases_free(f->ls);
    pipe_metrics_free(f->reg);
    pipe_free(f->name);
}

static uint64_t counter(struct pipe_metrics *reg, const char *name, const char *labels)
{
    return pipe_counter_value(pipe_metrics_counter(reg, name, "x", labels));
}

/* due_now — reads, then says whether mark is due. */
static bool due_now(struct pipe_wake_watch *ww, int mark)
{
    pipe_wake_watch_read(ww);
    return pipe_wake_watch_due(ww, mark);
}

/* Bumps are sent by a thread: these wait for what they expect, bounded. */
static bool wait_due(struct pipe_wake_watch *ww, int mark)
{
    for (int i = 0; i < 1500; i++) {
        if (due_now(ww, mark))
            return true;
        sleep_ms(10);
    }
    return false;
}

static bool wait_counter(struct pipe_metrics *reg, const char *labels, uint64_t at_least)
{
    for (int i = 0; i < 1500; i++) {
        if (counter(reg, "sluice_wake_bumps_total", labels) >= at_least)
            return true;
        sleep_ms(10);
    }
    return false;
}

static void test_wake_watch_lists_first_then_only_after_a_bump(void **state)
{
    (void)state;
    struct fix f;
    fix_open(&f, g_url, "after-bump", HOUR_MS);
    struct pipe_wake_watch *ww = pipe_wake_watch_new(f.consumer, "test", f.names, 1);
    assert_true(due_now(ww, 0)); /* never listed */
    pipe_wake_watch_listed(ww, 0);
    assert_false(due_now(ww, 0));
    pipe_wake_watch_skipped(ww);
    assert_false(due_now(ww, 0));
    pipe_wake_bump(f.producer, f.name);
    assert_true(wait_due(ww, 0));
    assert_true(due_now(ww, 0)); /* until a listing is made */
    pipe_wake_watch_listed(ww, 0);
    assert_false(due_now(ww, 0));
    /* A bump between the read and the listing shows at a later read. */
    pipe_wake_watch_read(ww);
    pipe_wake_bump(f.producer, f.name);
    assert_true(wait_counter(f.reg, "result=\"ok\"", 2));
    pipe_wake_watch_listed(ww, 0);
    assert_true(due_now(ww, 0));
    assert_int_equal(counter(f.reg, "sluice_lists_skipped_total", "watch=\"test\""), 1);
    assert_int_equal(counter(f.reg, "sluice_wake_bumps_total", "result=\"failed\""), 0);
    pipe_wake_watch_free(ww);
    fix_close(&f);
}

static void test_wake_marks_are_independent_and_forget_makes_due(void **state)
{
    (void)state;
    struct fix f;
    struct pipe_wake_watch *ww = fix_watch(&f, g_url, "marks", HOUR_MS);
    assert_false(due_now(ww, 0));
    assert_true(pipe_wake_watch_due(ww, 1));
    pipe_wake_watch_listed(ww, 1);
    assert_false(pipe_wake_watch_due(ww, 1));
    pipe_wake_watch_forget(ww, 0);
    assert_true(pipe_wake_watch_due(ww, 0));
    assert_false(pipe_wake_watch_due(ww, 1));
    assert_true(pipe_wake_watch_due(ww, PIPE_WAKE_MARKS)); /* out of range: list */
    pipe_wake_watch_free(ww);
    fix_close(&f);
}

static void test_wake_idle_list_bounds_the_time_without_listing(void **state)
{
    (void)state;
    struct fix f;
    struct pipe_wake_watch *ww = fix_watch(&f, g_url, "idle", 200);
    assert_false(due_now(ww, 0));
    sleep_ms(300);
    assert_true(due_now(ww, 0));
    pipe_wake_watch_listed(ww, 0);
    assert_false(due_now(ww, 0));
    pipe_wake_watch_free(ww);
    fix_close(&f);

    ww = fix_watch(&f, g_url, "idle0", 0); /* 0: every poll lists */
    assert_true(due_now(ww, 0));
    pipe_wake_watch_free(ww);
    fix_close(&f);
}

/* A backend that fails: reads say "list", bumps are counted as failed and
 * never fail the caller, and a failed bump goes through once the backend
 * is back. */
static void test_wake_failing_backend_lists_and_counts_failed_bumps(void **state)
{
    (void)state;
    char *down = pipe_asprintf("%s/down", g_tmp);
    char *url = pipe_asprintf("fault:down_file=%s:%s", down, g_url);
    struct fix f;
    struct pipe_wake_watch *ww = fix_watch(&f, url, "down", HOUR_MS);
    assert_false(due_now(ww, 0));
    assert_int_equal(tu_write_file(down, "", 0), 0);
    assert_true(due_now(ww, 0));
    pipe_wake_watch_listed(ww, 0); /* listed after a failed read: still due */
    assert_true(due_now(ww, 0));
    pipe_wake_bump(f.producer, f.name);
    pipe_wake_bump(f.producer, f.name);
    assert_true(wait_counter(f.reg, "result=\"failed\"", 2)); /* tried again */
    assert_int_equal(counter(f.reg, "sluice_wake_bumps_total", "result=\"ok\""), 0);
    assert_true(due_now(ww, 0));
    unlink(down);
    assert_true(due_now(ww, 0)); /* the failed read left the mark unset */
    pipe_wake_watch_listed(ww, 0);
    assert_true(wait_counter(f.reg, "result=\"ok\"", 1)); /* the owed bump went out */
    assert_true(wait_due(ww, 0));
    pipe_wake_watch_listed(ww, 0);
    assert_false(due_now(ww, 0));
    pipe_wake_watch_free(ww);
    fix_close(&f);
    pipe_free(url);
    pipe_free(down);
}

/* lose — the backend loses every generation: a Redis flush of the key, or
 * the generation files deleted from the lease directory. */
static void lose(const char *name)
{
    if (g_dir) {
        DIR *d = opendir(g_dir);
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            size_t n = strlen(e->d_name);
            if (n > 4 && strcmp(e->d_name + n - 4, ".gen") == 0) {
                char *p = pipe_asprintf("%s/%s", g_dir, e->d_name);
                assert_int_equal(unlink(p), 0);
                pipe_free(p);
            }
        }
        closedir(d);
        return;
    }
    struct pipe_redis *r = NULL;
    redisReply *rep = NULL;
    assert_int_equal(pipe_redis_open(g_url, &r), 0);
    char *key = pipe_asprintf("%sgen:%s", pipe_redis_prefix(r), name);
    assert_int_equal(pipe_redis_command(r, &rep, "DEL %s", key), 0);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    pipe_free(key);
    pipe_redis_free(r);
}

static void test_wake_lost_generation_lists_and_never_returns_to_an_old_value(void **state)
{
    (void)state;
    struct fix f;
    fix_open(&f, g_url, "lost", HOUR_MS);
    struct pipe_wake_watch *ww = pipe_wake_watch_new(f.consumer, "lost", f.names, 1);
    uint64_t before = 0, after = 0;
    pipe_wake_bump(f.producer, f.name);
    assert_true(wait_counter(f.reg, "result=\"ok\"", 1));
    assert_int_equal(pipe_leases_generations(f.ls, f.names, 1, &before), 0);
    assert_true(before > 0);
    pipe_wake_watch_read(ww);
    pipe_wake_watch_listed(ww, 0);
    assert_false(due_now(ww, 0));
    lose(f.name);
    assert_true(due_now(ww, 0));
    pipe_wake_watch_listed(ww, 0);
    assert_false(due_now(ww, 0));
    pipe_wake_bump(f.producer, f.name);
    assert_true(wait_due(ww, 0));
    assert_int_equal(pipe_leases_generations(f.ls, f.names, 1, &after), 0);
    assert_true(after > before);
    pipe_wake_watch_free(ww);
    fix_close(&f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_wake_watch_lists_first_then_only_after_a_bump),
    cmocka_unit_test(test_wake_marks_are_independent_and_forget_makes_due),
    cmocka_unit_test(test_wake_idle_list_bounds_the_time_without_listing),
    cmocka_unit_test(test_wake_failing_backend_lists_and_counts_failed_bumps),
    cmocka_unit_test(test_wake_lost_generation_lists_and_never_returns_to_an_old_value),
};

static int run_for(const char *url, const char *dir)
{
    char group[256];
    g_url = url;
    g_dir = dir;
    snprintf(group, sizeof group, "wake: %s", url);
    return _cmocka_run_group_tests(group, tests, sizeof tests / sizeof tests[0], NULL, NULL);
}

int main(void)
{
    unsigned char rnd[4];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return 1;
    snprintf(g_prefix, sizeof g_prefix, "wk-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    g_tmp = tu_tmpdir("wake");
    char *abs = g_tmp ? realpath(g_tmp, NULL) : NULL;
    if (!abs)
        return 1;
    char *dir = pipe_asprintf("%s/leases", abs);
    char *local = pipe_asprintf("local://%s", dir);
    int failed = run_for(local, dir);

    const char *extra = getenv("SLUICE_TEST_LEASE_URLS");
    char *urls = pipe_strdup(extra ? extra : "");
    char *save = NULL;
    for (char *u = strtok_r(urls, " ", &save); u; u = strtok_r(NULL, " ", &save))
        failed += run_for(u, NULL);

    pipe_free(urls);
    pipe_free(local);
    pipe_free(dir);
    tu_rmrf(g_tmp);
    free(abs);
    free(g_tmp);
    return failed;
}
