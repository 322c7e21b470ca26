/* Unit tests for the stage runtime: --once, retries, failure, usage errors,
 * SIGTERM, run in-process with a small polling stage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/err.h"
#include "libpipe/lease.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/stage.h"
#include "libpipe/store.h"
#include "tests/support/testutil.h"

struct fake_cfg {
    struct pipe_stage_common common;
    int64_t rounds;
};

static const struct pipe_conf_opt fake_opts[] = {
    {"rounds", PIPE_CONF_INT, "3", offsetof(struct fake_cfg, rounds), "rounds of work", 0, 1000,
     "N"},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

struct fake_state {
    int64_t rounds;
    int calls, worked, retries_left;
    bool fail, saw_store;
};

static struct fake_state last;

static int fake_init(struct pipe_stage *st, void *cfgp, void **state)
{
    struct fake_cfg *cfg = cfgp;
    struct fake_state *s = calloc(1, sizeof *s);
    *s = last;
    s->rounds = cfg->rounds;
    s->saw_store = pipe_stage_store(st) != NULL;
    *state = s;
    return 0;
}

static enum pipe_stage_status fake_process(struct pipe_stage *st, void *state)
{
    (void)st;
    struct fake_state *s = state;
    s->calls++;
    if (s->fail)
        return PIPE_STAGE_FAIL;
    if (s->retries_left > 0) {
        s->retries_left--;
        return PIPE_STAGE_RETRY;
    }
    if (s->worked >= s->rounds)
        return PIPE_STAGE_IDLE;
    s->worked++;
    return PIPE_STAGE_WORKED;
}

static void fake_exit(struct pipe_stage *st, void *state)
{
    (void)st;
    last = *(struct fake_state *)state;
    free(state);
}

static const struct pipe_stage_desc fake = {
    .name = "fake",
    .summary = "a stage for tests",
    .opts = fake_opts,
    .cfg_size = sizeof(struct fake_cfg),
    .init = fake_init,
    .process = fake_process,
    .exit = fake_exit,
};

static char *dir;

static int run(int extra_argc, const char **extra)
{
    char store[4200];
    snprintf(store, sizeof store, "--store=file://%s/store", dir);
    const char *argv[16] = {"sluice-fake", store, "--admin", "off", "--log-level", "error"};
    int argc = 6;
    for (int i = 0; i < extra_argc; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    return pipe_stage_main(&fake, argc, (char **)argv);
}

static int setup(void **state)
{
    (void)state;
    dir = tu_tmpdir("stage");
    memset(&last, 0, sizeof last);
    return dir ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmrf(dir);
    free(dir);
    pipe_log_init("test", PIPE_LOG_ERROR);
    return 0;
}

static void test_stage_once_works_until_idle_then_exits_0(void **state)
{
    (void)state;
    const char *args[] = {"--once", "--rounds", "4"};
    assert_int_equal(run(3, args), 0);
    assert_int_equal(last.calls, 5); /* four rounds of work, one idle */
    assert_true(last.saw_store);
}

static void test_stage_retries_with_backoff_then_goes_on(void **state)
{
    (void)state;
    last.retries_left = 2;
    const char *args[] = {"--once", "--rounds", "1"};
    assert_int_equal(run(3, args), 0);
    assert_int_equal(last.calls, 4);
}

static void test_stage_failure_exits_1(void **state)
{
    (void)state;
    last.fail = true;
    const char *args[] = {"--once"};
    assert_int_equal(run(1, args), 1);
    assert_int_equal(last.calls, 1);
}

static void test_stage_usage_errors_exit_2_and_help_exits_0(void **state)
{
    (void)state;
    const char *bad[] = {"--rounds", "many"};
    assert_int_equal(run(2, bad), 2);
    const char *unknown[] = {"--no-such-flag"};
    assert_int_equal(run(1, unknown), 2);
    const char *stray[] = {"--once", "stray-argument"};
    assert_int_equal(run(2, stray), 2);
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    const char *help[] = {"--help"};
    int rc = run(1, help);
    fclose(stdout);
    stdout = saved;
    assert_int_equal(rc, 0);
}

static void test_stage_bad_store_url_fails_to_start(void **state)
{
    (void)state;
    const char *argv[] = {"sluice-fake", "--store", "nope://x", "--admin", "off",
                          "--log-level", "off",     "--once",   NULL};
    assert_int_equal(pipe_stage_main(&fake, 8, (char **)argv), 1);
}

static void *send_term(void *arg)
{
    (void)arg;
    usleep(300 * 1000);
    kill(getpid(), SIGTERM);
    return NULL;
}

static void test_stage_daemon_stops_cleanly_on_sigterm(void **state)
{
    (void)state;
    pthread_t t;
    pthread_create(&t, NULL, send_term, NULL);
    const char *args[] = {"--poll", "20ms", "--rounds", "0"};
    assert_int_equal(run(4, args), 0);
    pthread_join(t, NULL);
    assert_true(last.calls >= 3); /* it kept polling until told to stop */
}

/* A lease kept by the keeper outlives its TTL many times over while the
 * holder is busy in one long call; the same wait without a keeper loses it
 * (the control that shows the wait is long enough). */
static void test_stage_keeper_renews_a_lease_through_a_long_call(void **state)
{
    (void)state;
    char *url = pipe_asprintf("local://%s/leases", dir);
    struct pipe_leases *ls = NULL;
    assert_int_equal(pipe_leases_open(url, NULL, &ls), 0);
    struct pipe_lease kept = {0}, bare = {0};
    assert_int_equal(pipe_lease_acquire(ls, "job/kept", 300, &kept), 0);
    assert_int_equal(pipe_lease_acquire(ls, "job/bare", 300, &bare), 0);
    struct pipe_stage_keeper *k = NULL;
    assert_int_equal(pipe_stage_keeper_start(ls, &kept, 300, &k), 0);
    usleep(1200 * 1000); /* four TTLs: a put of a large object */
    assert_false(pipe_stage_keeper_lost(k));
    assert_int_equal(pipe_stage_keeper_stop(k), 0);
    assert_int_equal(pipe_lease_check(ls, &kept), 0);
    assert_int_equal(pipe_lease_check(ls, &bare), PIPE_ELOST);
    assert_int_equal(pipe_stage_keeper_stop(NULL), 0);
    pipe_lease_release(ls, &kept);
    pipe_lease_release(ls, &bare);
    pipe_leases_free(ls);
    pipe_free(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stage_once_works_until_idle_then_exits_0, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stage_retries_with_backoff_then_goes_on, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stage_failure_exits_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stage_usage_errors_exit_2_and_help_exits_0, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stage_bad_store_url_fails_to_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stage_daemon_stops_cleanly_on_sigterm, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stage_keeper_renews_a_lease_through_a_long_call, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
