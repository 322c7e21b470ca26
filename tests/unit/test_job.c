/* Unit tests for the job runner and held leases (libpipe/job.h): a small
 * stage whose jobs follow a script, run in-process on a file store and the
 * embedded lease backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/buf.h"
#include "libpipe/err.h"
#include "libpipe/job.h"
#include "libpipe/keys.h"
#include "libpipe/lease.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/stage.h"
#include "libpipe/store.h"
#include "tests/support/testutil.h"

#define MAX_JOBS 4

/* What the run callback answers for job i: script[i][n] on its n-th run
 * (the last entry repeats); 0 also deletes the descriptor. */
struct script {
    int script[MAX_JOBS][4];
    int n_script[MAX_JOBS];
    int runs[MAX_JOBS];
    int failed, abandoned;
    atomic_int listed;   /* read by the test while a daemon runs */
    bool lease_was_held; /* a second acquire of the job's lease was refused */
    struct pipe_stage *st;
    struct pipe_leases *other; /* a second handle, as another process */
};

static struct script sc;
static char *root; /* the group's directory */
static char *dir;  /* this test's, under root */
static enum pipe_job_failed_policy policy;

static int job_index(const char *id)
{
    return id[strlen(id) - 1] - '0';
}

static int script_run(void *state, const char *id, struct pipe_job_lease *lease)
{
    struct script *s = state;
    int i = job_index(id);
    int n = s->runs[i]++;
    int rc = s->script[i][n < s->n_script[i] ? n : s->n_script[i] - 1];
    struct pipe_lease probe = {0};
    char name[64];
    snprintf(name, sizeof name, "combine/%s", id);
    if (pipe_lease_acquire(s->other, name, 1000, &probe) == PIPE_EBUSY)
        s->lease_was_held = true;
    pipe_lease_release(s->other, &probe);
    if (rc == 0) {
        char key[128];
        snprintf(key, sizeof key, PIPE_KEYS_JOBS_COMBINE "%s.json", id);
        assert_int_equal(pipe_job_lease_check(lease), 0);
        assert_int_equal(pipe_store_delete(pipe_stage_store(s->st), key), 0);
    }
    return rc;
}

static void script_failed(void *state, const char *id, int rc)
{
    (void)id;
    (void)rc;
    ((struct script *)state)->failed++;
}

static void script_abandoned(void *state, const char *id, int rc)
{
    (void)id;
    (void)rc;
    ((struct script *)state)->abandoned++;
}

static void script_listed(void *state, size_t pending, int64_t oldest)
{
    (void)pending;
    (void)oldest;
    ((struct script *)state)->listed++;
}

static struct pipe_job_kind kind = {
    .what = "test job",
    .dir = PIPE_KEYS_JOBS_COMBINE,
    .run = script_run,
    .listed = script_listed,
    .failed = script_failed,
    .abandoned = script_abandoned,
};

static int runner_init(struct pipe_stage *st, void *cfg, void **state)
{
    (void)cfg;
    sc.st = st;
    kind.on_failure = policy;
    /* The runtime runs the runner as the stage's process and frees it. */
    pipe_job_runner_start(st, &kind, 2000, &sc);
    *state = &sc;
    return 0;
}

static const struct pipe_stage_desc runner_stage = {
    .name = "jobs",
    .summary = "a stage made of a job runner, for tests",
    .cfg_size = sizeof(struct pipe_stage_common),
    .needs_leases = true,
    .init = runner_init,
};

/* Queues jobs j0..j(n-1) and runs the stage with --once. */
static int run_once(int n)
{
    char path[4200], key[64];
    struct pipe_store *s = NULL;
    snprintf(path, sizeof path, "file://%s/store", dir);
    assert_int_equal(pipe_store_open(path, &s), 0);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, PIPE_KEYS_JOBS_COMBINE "j%d.json", i);
        assert_int_equal(pipe_store_put(s, key, "{}", 2), 0);
    }
    pipe_store_free(s);
    char store[4200], leases[4200];
    snprintf(store, sizeof store, "--store=file://%s/store", dir);
    snprintf(leases, sizeof leases, "--leases=local://%s/leases", dir);
    const char *argv[] = {"sluice-jobs", store, leases,   "--admin", "off",
                          "--log-level", "off", "--once", NULL};
    snprintf(path, sizeof path, "local://%s/leases", dir);
    assert_int_equal(pipe_leases_open(path, NULL, &sc.other), 0);
    int rc = pipe_stage_main(&runner_stage, 8, (char **)argv);
    pipe_leases_free(sc.other);
    sc.other = NULL;
    return rc;
}

static bool queued(int i)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/store/jobs/combine/j%d.json", dir, i);
    return access(path, F_OK) == 0;
}

static void script_set(int i, int n, const int *rcs)
{
    for (int k = 0; k < n; k++)
        sc.script[i][k] = rcs[k];
    sc.n_script[i] = n;
}

static int setup(void **state)
{
    (void)state;
    static int n;
    /* A fresh store and lease directory per test, under the group's. */
    pipe_free(dir);
    dir = pipe_asprintf("%s/t%d", root, n++);
    memset(&sc, 0, sizeof sc);
    for (int i = 0; i < MAX_JOBS; i++)
        script_set(i, 1, (const int[]){0});
    policy = PIPE_JOB_RETRY_LATER;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pipe_log_init("test", PIPE_LOG_ERROR); /* the stage set its own level */
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    root = tu_tmpdir("job");
    return root ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    tu_rmrf(root);
    free(root);
    pipe_free(dir);
    return 0;
}

static void test_job_runner_runs_every_job_once_under_its_lease(void **state)
{
    (void)state;
    assert_int_equal(run_once(3), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sc.runs[i], 1);
        assert_false(queued(i));
    }
    assert_true(sc.lease_was_held);
    assert_true(sc.listed >= 2); /* the jobs, then an empty queue */
}

static void test_job_runner_passes_over_a_job_another_holder_leases(void **state)
{
    (void)state;
    char url[4200];
    snprintf(url, sizeof url, "local://%s/leases", dir);
    struct pipe_leases *ls = NULL;
    struct pipe_lease held = {0};
    assert_int_equal(pipe_leases_open(url, NULL, &ls), 0);
    assert_int_equal(pipe_lease_acquire(ls, "combine/j1", 60000, &held), 0);
    assert_int_equal(run_once(3), 0);
    assert_int_equal(sc.runs[0], 1);
    assert_int_equal(sc.runs[1], 0);
    assert_int_equal(sc.runs[2], 1);
    assert_true(queued(1));
    pipe_lease_release(ls, &held);
    pipe_leases_free(ls);
}

static void test_job_runner_retries_a_transient_failure(void **state)
{
    (void)state;
    script_set(1, 3, (const int[]){PIPE_EUNAVAIL, PIPE_EBUSY, 0});
    assert_int_equal(run_once(2), 0);
    assert_int_equal(sc.runs[1], 3);
    assert_false(queued(1));
    assert_int_equal(sc.failed, 0);
}

static void test_job_runner_counts_an_abandoned_job_and_redoes_it(void **state)
{
    (void)state;
    script_set(0, 3, (const int[]){PIPE_ELOST, PIPE_ESHUTDOWN, 0});
    assert_int_equal(run_once(1), 0);
    assert_int_equal(sc.runs[0], 3);
    assert_int_equal(sc.abandoned, 2);
    assert_false(queued(0));
}

static void test_job_runner_once_fails_over_a_permanent_failure_retried_per_listing(void **state)
{
    (void)state;
    script_set(0, 1, (const int[]){PIPE_ECORRUPT});
    assert_int_equal(run_once(2), 1);
    assert_true(queued(0));          /* left for an operator */
    assert_false(queued(1));         /* the others are not held up */
    assert_int_equal(sc.runs[0], 2); /* once per listing */
    assert_int_equal(sc.failed, 2);
}

static void test_job_runner_once_fails_over_a_job_it_skips(void **state)
{
    (void)state;
    policy = PIPE_JOB_SKIP;
    script_set(1, 1, (const int[]){PIPE_EPARSE});
    assert_int_equal(run_once(3), 1);
    assert_int_equal(sc.runs[1], 1); /* skipped until restart */
    assert_int_equal(sc.failed, 1);
    assert_true(queued(1));
    assert_false(queued(0));
    assert_false(queued(2));
}

static void test_job_runner_gone_job_is_not_a_failure(void **state)
{
    (void)state;
    script_set(0, 1, (const int[]){PIPE_ENOTFOUND});
    assert_int_equal(run_once(1), 0);
    assert_int_equal(sc.runs[0], 1);
    assert_int_equal(sc.failed, 0);
}

/* A held lease outlives its TTL many times over while the holder is busy
 * in one long call; the same wait on a bare lease loses it (the control
 * that shows the wait is long enough). */
static void test_job_lease_is_renewed_through_a_long_call(void **state)
{
    (void)state;
    char *url = pipe_asprintf("local://%s/leases", dir);
    struct pipe_leases *ls = NULL;
    assert_int_equal(pipe_leases_open(url, NULL, &ls), 0);
    struct pipe_job_lease *kept = NULL;
    struct pipe_lease bare = {0};
    assert_int_equal(pipe_job_lease_take(ls, "job/kept", 300, &kept), 0);
    assert_int_equal(pipe_lease_acquire(ls, "job/bare", 300, &bare), 0);
    assert_int_equal(pipe_job_lease_take(ls, "job/kept", 300, &(struct pipe_job_lease *){NULL}),
                     PIPE_EBUSY);
    usleep(1200 * 1000); /* four TTLs: a put of a large object */
    assert_false(pipe_job_lease_lost(kept));
    assert_int_equal(pipe_job_lease_check(kept), 0);
    assert_string_equal(pipe_job_lease_get(kept)->name, "job/kept");
    assert_int_equal(pipe_lease_check(ls, &bare), PIPE_ELOST);
    assert_int_equal(pipe_job_lease_release(kept), 0);
    assert_int_equal(pipe_job_lease_release(NULL), 0);
    pipe_lease_release(ls, &bare);
    pipe_leases_free(ls);
    pipe_free(url);
}

/* While the backend is down no renewal succeeds: once the TTL has passed
 * the holder counts the lease as lost and must not commit. */
static void test_job_lease_counts_as_lost_once_renewals_fail_past_its_ttl(void **state)
{
    (void)state;
    char *down = pipe_asprintf("%s/down", dir);
    char *url = pipe_asprintf("fault:down_file=%s:local://%s/leases", down, dir);
    struct pipe_leases *ls = NULL;
    assert_int_equal(pipe_leases_open(url, NULL, &ls), 0);
    struct pipe_job_lease *jl = NULL;
    assert_int_equal(pipe_job_lease_take(ls, "job/down", 300, &jl), 0);
    assert_false(pipe_job_lease_lost(jl));
    assert_int_equal(tu_write_file(down, "", 0), 0);
    usleep(600 * 1000);
    assert_true(pipe_job_lease_lost(jl));
    assert_int_not_equal(pipe_job_lease_check(jl), 0);
    unlink(down);
    pipe_job_lease_release(jl);
    pipe_leases_free(ls);
    pipe_free(url);
    pipe_free(down);
}

/* ---- the runner as a daemon: listing only when it can find something ---- */

static int daemon_rc;

static void *daemon_main(void *arg)
{
    (void)arg;
    char store[4200], leases[4200];
    snprintf(store, sizeof store, "--store=file://%s/store", dir);
    snprintf(leases, sizeof leases, "--leases=local://%s/leases", dir);
    const char *argv[] = {"sluice-jobs", store,    leases, "--admin",     "off", "--log-level",
                          "off",         "--poll", "20ms", "--idle-list", "1h",  NULL};
    daemon_rc = pipe_stage_main(&runner_stage, 11, (char **)argv);
    return NULL;
}

static void queue(struct pipe_store *s, int i)
{
    char key[64];
    snprintf(key, sizeof key, PIPE_KEYS_JOBS_COMBINE "j%d.json", i);
    assert_int_equal(pipe_store_put(s, key, "{}", 2), 0);
}

/* Waits (bounded: a wait, not a measure) until job i is done. */
static bool done_within_5s(int i)
{
    for (int k = 0; k < 500 && queued(i); k++)
        usleep(10 * 1000);
    return !queued(i);
}

/* A daemon lists at start, keeps listing while a job it passed over is
 * held by another holder (who may die without a bump), then stops listing;
 * a job queued without a bump waits (idle_list is an hour), one whose
 * producer bumped the queue is run. */
static void test_job_runner_daemon_lists_after_a_bump_or_while_a_job_is_held(void **state)
{
    (void)state;
    char path[4200];
    struct pipe_store *s = NULL;
    struct pipe_lease held = {0};
    pthread_t t;
    snprintf(path, sizeof path, "file://%s/store", dir);
    assert_int_equal(pipe_store_open(path, &s), 0);
    snprintf(path, sizeof path, "local://%s/leases", dir);
    assert_int_equal(pipe_leases_open(path, NULL, &sc.other), 0);
    queue(s, 0);
    queue(s, 1);
    assert_int_equal(pipe_lease_acquire(sc.other, "combine/j1", 60000, &held), 0);
    assert_int_equal(pthread_create(&t, NULL, daemon_main, NULL), 0);
    assert_true(done_within_5s(0));
    int a = atomic_load(&sc.listed);
    usleep(200 * 1000);                       /* ten polls */
    assert_true(atomic_load(&sc.listed) > a); /* j1 is held: listed again and again */
    assert_int_equal(pipe_lease_release(sc.other, &held), 0);
    assert_true(done_within_5s(1)); /* no bump needed */
    usleep(500 * 1000);             /* the listing after the last job */
    a = atomic_load(&sc.listed);
    usleep(200 * 1000);
    assert_int_equal(atomic_load(&sc.listed), a); /* idle: no listing */
    queue(s, 2);
    usleep(200 * 1000);
    assert_true(queued(2)); /* no bump: waits for idle_list */
    assert_int_equal(atomic_load(&sc.listed), a);
    assert_int_equal(pipe_leases_bump(sc.other, PIPE_KEYS_JOBS_COMBINE), 0);
    assert_true(done_within_5s(2));
    raise(SIGTERM);
    pthread_join(t, NULL);
    assert_int_equal(daemon_rc, 0);
    assert_int_equal(sc.runs[0] + sc.runs[1] + sc.runs[2], 3);
    pipe_leases_free(sc.other);
    sc.other = NULL;
    pipe_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_job_runner_runs_every_job_once_under_its_lease, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_job_runner_passes_over_a_job_another_holder_leases,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_runner_retries_a_transient_failure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_job_runner_counts_an_abandoned_job_and_redoes_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_job_runner_once_fails_over_a_permanent_failure_retried_per_listing, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_job_runner_once_fails_over_a_job_it_skips, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_job_runner_gone_job_is_not_a_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_lease_is_renewed_through_a_long_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_job_lease_counts_as_lost_once_renewals_fail_past_its_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_job_runner_daemon_lists_after_a_bump_or_while_a_job_is_held, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
