/* Unit tests for what is particular to the `local` lease backend (dead
 * holders, its URLs, its files) and for the `fault` backend. What every
 * backend must do is in tests/contract/test_lease_contract.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/lease.h"
#include "libpipe/lease_int.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "tests/support/testutil.h"

#define LONG_TTL 60000

struct fixture {
    char *dir;
    char *url; /* local:///dir */
};

static int setup(void **state)
{
    struct fixture *fx = pipe_calloc(1, sizeof *fx);
    char *tmp = tu_tmpdir("lease-local");
    if (!tmp)
        return -1;
    fx->dir = realpath(tmp, NULL);
    free(tmp);
    fx->url = pipe_asprintf("local://%s", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    tu_rmrf(fx->dir);
    free(fx->dir);
    pipe_free(fx->url);
    pipe_free(fx);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Forks a child that acquires `name` for ttl_ms and then sleeps until
 * killed. Returns its pid once the lease is held (the child's fence in
 * *fence). */
static pid_t spawn_holder(const char *url, const char *name, int64_t ttl_ms, uint64_t *fence)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        struct pipe_leases *ls;
        struct pipe_lease l;
        uint64_t f = 0;
        close(p[0]);
        if (pipe_leases_open(url, NULL, &ls) == 0 && pipe_lease_acquire(ls, name, ttl_ms, &l) == 0)
            f = l.fence;
        if (write(p[1], &f, sizeof f) != (ssize_t)sizeof f)
            _exit(1);
        for (;;)
            pause();
    }
    close(p[1]);
    uint64_t f = 0;
    ssize_t n = read(p[0], &f, sizeof f);
    close(p[0]);
    if (pid < 0 || n != (ssize_t)sizeof f || f == 0) {
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        return -1;
    }
    *fence = f;
    return pid;
}

static void test_lease_local_killed_holder_frees_lease_at_once(void **state)
{
    struct fixture *fx = *state;
    struct pipe_leases *ls;
    struct pipe_lease l;
    uint64_t child_fence;
    assert_int_equal(pipe_leases_open(fx->url, NULL, &ls), 0);
    pid_t pid = spawn_holder(fx->url, "job/killed", LONG_TTL, &child_fence);
    assert_true(pid > 0);
    assert_int_equal(pipe_lease_acquire(ls, "job/killed", LONG_TTL, &l), PIPE_EBUSY);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_int_equal(pipe_lease_acquire(ls, "job/killed", LONG_TTL, &l), 0);
    assert_true(l.fence > child_fence);
    assert_int_equal(pipe_lease_release(ls, &l), 0);
    pipe_leases_free(ls);
}

/* Killed but not yet reaped: the pid still exists, as a zombie. */
static void test_lease_local_zombie_holder_frees_lease(void **state)
{
    struct fixture *fx = *state;
    struct pipe_leases *ls;
    struct pipe_lease l;
    uint64_t child_fence;
    assert_int_equal(pipe_leases_open(fx->url, NULL, &ls), 0);
    pid_t pid = spawn_holder(fx->url, "job/zombie", LONG_TTL, &child_fence);
    assert_true(pid > 0);
    kill(pid, SIGKILL);
    int rc = PIPE_EBUSY;
    int64_t deadline = pipe_clock_mono_ms() + 2000; /* far below the TTL */
    while (rc == PIPE_EBUSY && pipe_clock_mono_ms() < deadline) {
        rc = pipe_lease_acquire(ls, "job/zombie", LONG_TTL, &l);
        if (rc == PIPE_EBUSY)
            sleep_ms(5);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(kill(pid, 0), 0); /* still unreaped: the zombie case was tested */
    waitpid(pid, NULL, 0);
    assert_int_equal(pipe_lease_release(ls, &l), 0);
    pipe_leases_free(ls);
}

/* A holder that is alive but hung loses its lease when the TTL runs out. */
static void test_lease_local_hung_holder_loses_lease_at_ttl(void **state)
{
    struct fixture *fx = *state;
    struct pipe_leases *ls;
    struct pipe_lease l;
    uint64_t child_fence;
    assert_int_equal(pipe_leases_open(fx->url, NULL, &ls), 0);
    pid_t pid = spawn_holder(fx->url, "job/hung", 400, &child_fence);
    assert_true(pid > 0);
    assert_int_equal(pipe_lease_acquire(ls, "job/hung", LONG_TTL, &l), PIPE_EBUSY);
    sleep_ms(450);
    int rc = pipe_lease_acquire(ls, "job/hung", LONG_TTL, &l);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_int_equal(rc, 0);
    assert_true(l.fence > child_fence);
    assert_int_equal(pipe_lease_release(ls, &l), 0);
    pipe_leases_free(ls);
}

static int count_lease_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".lease") != NULL;
    closedir(d);
    return n;
}

/* The path of the only lease file in dir (malloc'd), or NULL. */
static char *only_lease_file(const char *dir)
{
    DIR *d = opendir(dir);
    char *path = NULL;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strstr(e->d_name, ".lease")) {
            pipe_free(path);
            path = pipe_asprintf("%s/%s", dir, e->d_name);
        }
    if (d)
        closedir(d);
    return path;
}

static void test_lease_local_bare_url_uses_local_dir(void **state)
{
    struct fixture *fx = *state;
    struct pipe_leases *ls;
    struct pipe_lease l;
    char *sub = pipe_asprintf("%s/made/on/demand", fx->dir);
    assert_int_equal(pipe_leases_open("local", sub, &ls), 0);
    assert_int_equal(pipe_lease_acquire(ls, "x", LONG_TTL, &l), 0);
    assert_int_equal(count_lease_files(sub), 1);
    assert_int_equal(pipe_lease_release(ls, &l), 0);
    assert_int_equal(count_lease_files(sub), 1); /* kept: it holds the fence */
    pipe_leases_free(ls);
    pipe_free(sub);
}

static void test_lease_local_null_dir_uses_private_tmp_dir(void **state)
{
    (void)state;
    struct pipe_leases *ls;
    struct pipe_lease l;
    struct stat st;
    char *name = pipe_asprintf("unit-test/%d/%lld", (int)getpid(), (long long)pipe_clock_now_ms());
    assert_int_equal(pipe_leases_open("local", NULL, &ls), 0);
    assert_int_equal(pipe_lease_acquire(ls, name, LONG_TTL, &l), 0);
    char *dir = pipe_asprintf("/tmp/sluice-leases-%u", (unsigned)geteuid());
    assert_int_equal(lstat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal(st.st_mode & 077, 0);
    assert_true(count_lease_files(dir) >= 1);
    assert_int_equal(pipe_lease_release(ls, &l), 0);
    pipe_leases_free(ls);
    pipe_free(dir);
    pipe_free(name);
}

static void test_lease_local_bad_urls_are_econfig(void **state)
{
    struct fixture *fx = *state;
    struct pipe_leases *ls = NULL;
    char *not_dir = pipe_asprintf("local://%s/plain-file", fx->dir);
    char *file = pipe_asprintf("%s/plain-file", fx->dir);
    assert_int_equal(tu_write_file(file, "x", 1), 0);
    const char *bad[] = {
        "",
        "locals",
        "local:",
        "local:/tmp/x",
        "local://relative/dir",
        "local://host/dir",
        "local:///tmp/x?opt=1",
        "ftp://host/x",
        "fault:",
        "fault:down_file=:local",
        "fault:down_file=/tmp/x",
        "fault:down_file=/tmp/x:nonsense",
        not_dir,
        "local:///proc/sluice-cannot-be-made-here",
    };
    pipe_log_set_fd(-1); /* the failures log a warning each */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = pipe_leases_open(bad[i], fx->dir, &ls);
        if (rc != PIPE_ECONFIG)
            fail_msg("url \"%s\": got %d, want PIPE_ECONFIG", bad[i], rc);
        assert_null(ls);
    }
    pipe_log_set_fd(2);
    assert_int_equal(pipe_leases_open(NULL, NULL, &ls), PIPE_EINVAL);
    pipe_leases_free(NULL);
    pipe_free(not_dir);
    pipe_free(file);
}

static void test_lease_local_two_handles_in_one_process_exclude_each_other(void **state)
{
    struct fixture *fx = *state;
    struct pipe_leases *a, *b;
    struct pipe_lease la, lb;
    assert_int_equal(pipe_leases_open(fx->url, NULL, &a), 0);
    assert_int_equal(pipe_leases_open("local", fx->dir, &b), 0); /* same dir, other form */
    assert_int_equal(pipe_lease_acquire(a, "shared", LONG_TTL, &la), 0);
    assert_int_equal(pipe_lease_acquire(b, "shared", LONG_TTL, &lb), PIPE_EBUSY);
    assert_int_equal(pipe_lease_release(b, &la), 0); /* any handle on the dir may release */
    assert_int_equal(pipe_lease_acquire(b, "shared", LONG_TTL, &lb), 0);
    assert_int_equal(pipe_lease_check(a, &lb), 0);
    assert_int_equal(pipe_lease_release(b, &lb), 0);
    pipe_leases_free(a);
    pipe_leases_free(b);
}

static void test_lease_local_corrupt_file_is_reset_not_stuck(void **state)
{
    struct fixture *fx = *state;
    struct pipe_leases *ls;
    struct pipe_lease l;
    assert_int_equal(pipe_leases_open(fx->url, NULL, &ls), 0);
    assert_int_equal(pipe_lease_acquire(ls, "corrupt", LONG_TTL, &l), 0);
    char *path = only_lease_file(fx->dir);
    assert_non_null(path);
    assert_int_equal(tu_write_file(path, "garbage\n", 8), 0);
    pipe_log_set_fd(-1);
    assert_int_equal(pipe_lease_check(ls, &l), PIPE_ELOST);
    struct pipe_lease again;
    assert_int_equal(pipe_lease_acquire(ls, "corrupt", LONG_TTL, &again), 0);
    pipe_log_set_fd(2);
    assert_int_equal(pipe_lease_check(ls, &again), 0);
    pipe_lease_cleanup(&l);
    assert_int_equal(pipe_lease_release(ls, &again), 0);
    pipe_free(path);
    pipe_leases_free(ls);
}

/* Two names whose files collide must not share a lease: simulated by
 * copying one name's file over to where the other's will be. */
static void test_lease_local_file_of_another_name_is_ecorrupt(void **state)
{
    struct fixture *fx = *state;
    struct pipe_leases *ls;
    struct pipe_lease l;
    assert_int_equal(pipe_leases_open(fx->url, NULL, &ls), 0);
    assert_int_equal(pipe_lease_acquire(ls, "name-b", LONG_TTL, &l), 0);
    char *path_b = only_lease_file(fx->dir);
    assert_int_equal(pipe_lease_release(ls, &l), 0);
    size_t len;
    char *rec_b = tu_read_file(path_b, &len);
    assert_non_null(rec_b);
    assert_int_equal(unlink(path_b), 0);
    assert_int_equal(pipe_lease_acquire(ls, "name-a", LONG_TTL, &l), 0);
    char *path_a = only_lease_file(fx->dir);
    assert_int_equal(pipe_lease_release(ls, &l), 0);
    assert_int_equal(tu_write_file(path_a, rec_b, len), 0);
    assert_int_equal(pipe_lease_acquire(ls, "name-a", LONG_TTL, &l), PIPE_ECORRUPT);
    assert_non_null(strstr(pipe_leases_last_error(ls), "name-b"));
    uint64_t errors;
    pipe_leases_counters(ls, NULL, NULL, NULL, &errors);
    assert_int_equal(errors, 1);
    free(rec_b);
    pipe_free(path_a);
    pipe_free(path_b);
    pipe_leases_free(ls);
}

static void test_lease_local_prunes_files_free_long_enough_and_keeps_held_ones(void **state)
{
    struct fixture *fx = *state;
    struct pipe_leases *ls;
    struct pipe_lease a, b, held;
    assert_int_equal(pipe_leases_open(fx->url, NULL, &ls), 0);
    assert_int_equal(pipe_lease_acquire(ls, "job/a", LONG_TTL, &a), 0);
    assert_int_equal(pipe_lease_release(ls, &a), 0);
    assert_int_equal(pipe_lease_acquire(ls, "job/b", 20, &b), 0); /* left to expire */
    assert_int_equal(pipe_lease_acquire(ls, "job/held", LONG_TTL, &held), 0);
    sleep_ms(60);
    assert_int_equal(count_lease_files(fx->dir), 3);
    size_t removed = 99;
    /* Not free for long enough yet: nothing goes. */
    assert_int_equal(pipe__lease_local_prune(ls, pipe_clock_now_ms(), 3600000, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(count_lease_files(fx->dir), 3);
    /* Free for 10 ms or more: the released and the expired go, the held stays. */
    assert_int_equal(pipe__lease_local_prune(ls, pipe_clock_now_ms(), 10, &removed), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(count_lease_files(fx->dir), 1);
    assert_int_equal(pipe_lease_check(ls, &held), 0);
    /* A pruned name can be taken again (its fence starts afresh). */
    assert_int_equal(pipe_lease_acquire(ls, "job/a", LONG_TTL, &a), 0);
    assert_int_equal(a.fence, 1);
    pipe_lease_release(ls, &a);
    pipe_lease_cleanup(&b);
    pipe_lease_release(ls, &held);
    pipe_leases_free(ls);
}

static void test_lease_fault_down_file_makes_every_op_unavailable(void **state)
{
    struct fixture *fx = *state;
    struct pipe_leases *ls;
    struct pipe_lease l, l2;
    char *down = pipe_asprintf("%s/down", fx->dir);
    char *url = pipe_asprintf("fault:down_file=%s:%s", down, fx->url);
    assert_int_equal(pipe_leases_open(url, NULL, &ls), 0);
    assert_int_equal(pipe_lease_acquire(ls, "f", LONG_TTL, &l), 0);
    assert_int_equal(pipe_lease_check(ls, &l), 0);

    assert_int_equal(tu_write_file(down, "", 0), 0);
    assert_int_equal(pipe_lease_acquire(ls, "g", LONG_TTL, &l2), PIPE_EUNAVAIL);
    assert_non_null(strstr(pipe_leases_last_error(ls), "down"));
    assert_int_equal(pipe_lease_renew(ls, &l, LONG_TTL), PIPE_EUNAVAIL);
    assert_int_equal(pipe_lease_check(ls, &l), PIPE_EUNAVAIL);
    assert_true(pipe_err_is_transient(PIPE_EUNAVAIL));

    assert_int_equal(unlink(down), 0);
    assert_int_equal(pipe_lease_renew(ls, &l, LONG_TTL), 0);
    assert_int_equal(pipe_lease_acquire(ls, "f", LONG_TTL, &l2), PIPE_EBUSY);

    assert_int_equal(tu_write_file(down, "", 0), 0);
    assert_int_equal(pipe_lease_release(ls, &l), PIPE_EUNAVAIL);
    assert_null(l.name); /* cleaned up all the same */
    assert_int_equal(unlink(down), 0);
    /* The failed release left "f" held until its TTL, as a real outage would. */
    assert_int_equal(pipe_lease_acquire(ls, "f", LONG_TTL, &l2), PIPE_EBUSY);

    uint64_t acquired, busy, lost, errors;
    pipe_leases_counters(ls, &acquired, &busy, &lost, &errors);
    assert_int_equal(acquired, 1);
    assert_int_equal(busy, 2);
    assert_int_equal(lost, 0);
    assert_int_equal(errors, 4);
    pipe_leases_free(ls);
    pipe_free(url);
    pipe_free(down);
}

static void test_lease_fault_passes_inner_failure_detail(void **state)
{
    struct fixture *fx = *state;
    struct pipe_leases *ls;
    struct pipe_lease l;
    char *inner = pipe_asprintf("%s/inner", fx->dir);
    char *url = pipe_asprintf("fault:down_file=%s/down:local://%s", fx->dir, inner);
    assert_int_equal(pipe_leases_open(url, NULL, &ls), 0);
    tu_rmrf(inner); /* the inner backend's directory vanishes under it */
    assert_int_equal(pipe_lease_acquire(ls, "x", LONG_TTL, &l), PIPE_EIO);
    assert_non_null(strstr(pipe_leases_last_error(ls), inner));
    pipe_leases_free(ls);
    pipe_free(url);
    pipe_free(inner);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lease_local_killed_holder_frees_lease_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lease_local_zombie_holder_frees_lease, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lease_local_hung_holder_loses_lease_at_ttl, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lease_local_bare_url_uses_local_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_local_null_dir_uses_private_tmp_dir, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lease_local_bad_urls_are_econfig, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_lease_local_two_handles_in_one_process_exclude_each_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_local_corrupt_file_is_reset_not_stuck, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lease_local_file_of_another_name_is_ecorrupt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_lease_local_prunes_files_free_long_enough_and_keeps_held_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_fault_down_file_makes_every_op_unavailable,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_fault_passes_inner_failure_detail, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
