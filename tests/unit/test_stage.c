/* Unit tests for the stage runtime: --once, retries, failure, usage errors,
 * SIGTERM, the store tidied at a daemon's start, run in-process with a
 * small polling stage. */
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
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libpipe/err.h"
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

/* A temp file as a put killed two hours ago leaves it, under the store. */
static char *old_temp_file(void)
{
    char *path = pipe_asprintf("%s/store/p/.tmp.1.a.b", dir);
    char *parent = pipe_asprintf("%s/store/p", dir);
    char *root = pipe_asprintf("%s/store", dir);
    assert_int_equal(mkdir(root, 0777), 0);
    assert_int_equal(mkdir(parent, 0777), 0);
    assert_int_equal(tu_write_file(path, "x", 1), 0);
    struct timespec t[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
    pipe_free(parent);
    pipe_free(root);
    return path;
}

/* A daemon clears what killed puts left once, at start (pipe_store_tidy);
 * a --once run does not walk the store. */
static void test_stage_daemon_start_tidies_the_store_and_once_does_not(void **state)
{
    (void)state;
    char *tmp = old_temp_file();
    const char *once[] = {"--once", "--rounds", "0"};
    assert_int_equal(run(3, once), 0);
    assert_int_equal(access(tmp, F_OK), 0);
    pthread_t t;
    pthread_create(&t, NULL, send_term, NULL);
    const char *daemon[] = {"--poll", "20ms", "--rounds", "0"};
    assert_int_equal(run(4, daemon), 0);
    pthread_join(t, NULL);
    assert_int_equal(access(tmp, F_OK), -1);
    pipe_free(tmp);
}

/* ---- a loop-driven stage with a poller of its own --------------------- */

struct bg {
    struct pipe_stage_poller *poller;
    int rounds, fail_at, ended;
    enum pipe_stage_status last;
};

static struct bg bg;

static enum pipe_stage_status bg_round(struct pipe_stage *st, void *arg)
{
    struct bg *b = arg;
    (void)st;
    b->rounds++;
    if (b->fail_at && b->rounds == b->fail_at)
        return PIPE_STAGE_FAIL;
    return b->rounds % 2 ? PIPE_STAGE_RETRY : PIPE_STAGE_IDLE;
}

static void bg_ended(struct pipe_stage *st, void *arg, enum pipe_stage_status how)
{
    struct bg *b = arg;
    b->poller = NULL;
    b->ended++;
    b->last = how;
    pipe_stage_done(st, how == PIPE_STAGE_FAIL ? 1 : 0);
}

static int bg_init(struct pipe_stage *st, void *cfgp, void **state)
{
    (void)cfgp;
    bg.poller = pipe_stage_poller_start(st, bg_round, bg_ended, &bg, 20, false);
    *state = &bg;
    return 0;
}

static void bg_stop(struct pipe_stage *st, void *state)
{
    (void)st;
    pipe_stage_poller_stop(((struct bg *)state)->poller);
}

static const struct pipe_stage_desc bg_stage = {
    .name = "bg",
    .summary = "a loop-driven stage with a background poller, for tests",
    .cfg_size = sizeof(struct pipe_stage_common),
    .init = bg_init,
    .stop = bg_stop,
};

/* Runs the stage; its rounds fail at round fail_at (0: never). */
static int run_bg(int fail_at)
{
    char store[4200];
    snprintf(store, sizeof store, "--store=file://%s/store", dir);
    const char *argv[] = {"sluice-bg", store, "--admin", "off", "--log-level", "off", NULL};
    memset(&bg, 0, sizeof bg);
    bg.fail_at = fail_at;
    return pipe_stage_main(&bg_stage, 6, (char **)argv);
}

static void test_stage_poller_runs_rounds_through_retries_until_fail(void **state)
{
    (void)state;
    assert_int_equal(run_bg(5), 1);
    assert_int_equal(bg.rounds, 5); /* RETRY and IDLE rounds went on */
    assert_int_equal(bg.ended, 1);
    assert_int_equal(bg.last, PIPE_STAGE_FAIL);
}

static void test_stage_poller_stops_on_sigterm_and_ends_once(void **state)
{
    (void)state;
    pthread_t t;
    pthread_create(&t, NULL, send_term, NULL);
    assert_int_equal(run_bg(0), 0);
    pthread_join(t, NULL);
    assert_true(bg.rounds >= 2);
    assert_int_equal(bg.ended, 1);
    assert_int_equal(bg.last, PIPE_STAGE_IDLE);
    assert_null(bg.poller);
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
        cmocka_unit_test_setup_teardown(test_stage_daemon_start_tidies_the_store_and_once_does_not,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stage_poller_runs_rounds_through_retries_until_fail,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stage_poller_stops_on_sigterm_and_ends_once, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
