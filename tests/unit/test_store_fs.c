/* Unit tests for the store front end and its file:// and fault: backends:
 * what the contract suite cannot see from outside (files on disk, URL
 * parsing, counters, injected faults). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"
#include "tests/support/testutil.h"

struct fixture {
    char *dir; /* temp dir; the store root is dir/root */
    char *root;
    struct pipe_store *s;
};

static int setup(void **state)
{
    struct fixture *f = pipe_calloc(1, sizeof *f);
    f->dir = tu_tmpdir("store-fs");
    if (f->dir == NULL)
        return -1;
    f->root = pipe_asprintf("%s/root", f->dir);
    char *url = pipe_asprintf("file://%s", f->root);
    int rc = pipe_store_open(url, &f->s);
    pipe_free(url);
    *state = f;
    return rc;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    pipe_store_free(f->s);
    tu_rmrf(f->dir);
    free(f->dir);
    pipe_free(f->root);
    pipe_free(f);
    return 0;
}

static bool exists(const char *dir, const char *rel)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return stat(path, &st) == 0;
}

static int dot_files;
static int count_dot_file(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    dot_files += path[ftw->base] == '.';
    return 0;
}

/* The file of key rel under the root holds want, and no temp file is left
 * anywhere under the root. */
static void assert_file_and_no_temp(const struct fixture *f, const char *rel, const char *want)
{
    char *path = pipe_asprintf("%s/%s", f->root, rel);
    size_t len = 0;
    char *data = tu_read_file(path, &len);
    assert_non_null(data);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(data, want, len);
    free(data);
    pipe_free(path);
    dot_files = 0;
    nftw(f->root, count_dot_file, 16, FTW_PHYS);
    assert_int_equal(dot_files, 0);
}

static void test_store_fs_put_writes_key_path_and_leaves_no_temp_files(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pipe_store_put(f->s, "a/b/c.ndjson", "hello", 5), 0);
    assert_int_equal(pipe_store_put(f->s, "a/b/c.ndjson", "again", 5), 0);
    assert_int_equal(pipe_store_put(f->s, "top", "", 0), 0);
    assert_file_and_no_temp(f, "a/b/c.ndjson", "again");
}

static void test_store_fs_delete_removes_empty_parent_dirs_but_not_root(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pipe_store_put(f->s, "a/b/c/d", "1", 1), 0);
    assert_int_equal(pipe_store_put(f->s, "a/x", "2", 1), 0);
    assert_int_equal(pipe_store_delete(f->s, "a/b/c/d"), 0);
    assert_false(exists(f->root, "a/b"));
    assert_true(exists(f->root, "a/x"));
    assert_int_equal(pipe_store_delete(f->s, "a/x"), 0);
    assert_false(exists(f->root, "a"));
    assert_true(exists(f->root, "."));
    /* the store still works with everything pruned */
    assert_int_equal(pipe_store_put(f->s, "a/b/again", "3", 1), 0);
    assert_true(exists(f->root, "a/b/again"));
}

static void test_store_fs_directory_is_not_an_object(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pipe_store_put(f->s, "dir/k", "v", 1), 0);
    struct pipe_buf b;
    pipe_buf_init(&b, 100);
    struct pipe_store_obj o;
    assert_int_equal(pipe_store_get(f->s, "dir", &b), PIPE_ENOTFOUND);
    assert_int_equal(pipe_store_stat(f->s, "dir", &o), PIPE_ENOTFOUND);
    assert_int_equal(pipe_store_delete(f->s, "dir"), 0);
    assert_int_equal(pipe_store_get(f->s, "dir/k", &b), 0);
    assert_string_equal(b.data, "v");
    pipe_buf_cleanup(&b);
}

static void test_store_fs_list_skips_temp_and_foreign_files(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pipe_store_put(f->s, "p/k1", "1", 1), 0);
    char *p1 = pipe_asprintf("%s/p/.tmp.123.abc", f->root);
    char *d2 = pipe_asprintf("%s/p/.hidden", f->root);
    char *p2 = pipe_asprintf("%s/p/.hidden/k", f->root);
    char *p3 = pipe_asprintf("%s/p/back\\slash", f->root);
    assert_int_equal(tu_write_file(p1, "x", 1), 0);
    assert_int_equal(mkdir(d2, 0777), 0);
    assert_int_equal(tu_write_file(p2, "x", 1), 0);
    assert_int_equal(tu_write_file(p3, "x", 1), 0);
    struct pipe_store_list l = {0};
    assert_int_equal(pipe_store_list(f->s, "", NULL, 100, &l), 0);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].key, "p/k1");
    assert_false(l.truncated);
    pipe_store_list_cleanup(&l);
    pipe_free(p1);
    pipe_free(d2);
    pipe_free(p2);
    pipe_free(p3);
}

/* make_tmp — a temp file as a killed put leaves it, its mtime age_s ago. */
static char *make_tmp(const char *root, const char *rel, time_t age_s)
{
    char *p = pipe_asprintf("%s/%s", root, rel);
    assert_int_equal(tu_write_file(p, "x", 1), 0);
    struct timespec t[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
    assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
    return p;
}

/* Temp files older than tmp_max_age are a killed put's: tidy (a daemon's
 * start) removes them anywhere in the tree; younger ones may be a live
 * put's and stay; other hidden files are not the store's to touch. Opening
 * the store walks nothing, so every --once run stays cheap. */
static void test_store_fs_tidy_removes_only_old_temp_files_and_open_walks_nothing(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pipe_store_put(f->s, "a/b/k", "1", 1), 0);
    char *old1 = make_tmp(f->root, ".tmp.1.a.b", 7200);
    char *old2 = make_tmp(f->root, "a/b/.tmp.2.c.d", 3601);
    char *young = make_tmp(f->root, "a/b/.tmp.3.e.f", 60);
    char *other = make_tmp(f->root, "a/.hidden", 7200);
    char *url = pipe_asprintf("file://%s", f->root);
    struct pipe_store *s2 = NULL;
    assert_int_equal(pipe_store_open(url, &s2), 0);
    assert_true(exists(f->root, ".tmp.1.a.b"));
    assert_true(exists(f->root, "a/b/.tmp.2.c.d"));
    assert_int_equal(pipe_store_tidy(s2), 0);
    assert_false(exists(f->root, ".tmp.1.a.b"));
    assert_false(exists(f->root, "a/b/.tmp.2.c.d"));
    assert_true(exists(f->root, "a/b/.tmp.3.e.f"));
    assert_true(exists(f->root, "a/.hidden"));
    assert_true(exists(f->root, "a/b/k"));
    pipe_store_free(s2);
    pipe_free(url);
    pipe_free(old1);
    pipe_free(old2);
    pipe_free(young);
    pipe_free(other);
}

/* A long-running process (the sweeps) clears them as its listings read
 * their directories; the bound comes from the URL. */
static void test_store_fs_list_removes_temp_files_past_the_url_bound(void **state)
{
    struct fixture *f = *state;
    char *url = pipe_asprintf("file://%s?tmp_max_age=100", f->root);
    struct pipe_store *s2 = NULL;
    assert_int_equal(pipe_store_open(url, &s2), 0);
    assert_int_equal(pipe_store_put(s2, "p/k", "1", 1), 0);
    char *dead = make_tmp(f->root, "p/.tmp.9.a.b", 200);
    char *live = make_tmp(f->root, "p/.tmp.9.c.d", 10);
    struct pipe_store_list l = {0};
    assert_int_equal(pipe_store_list(s2, "p/", NULL, 100, &l), 0);
    assert_int_equal(l.count, 1);
    assert_false(exists(f->root, "p/.tmp.9.a.b"));
    assert_true(exists(f->root, "p/.tmp.9.c.d"));
    pipe_store_list_cleanup(&l);
    pipe_store_free(s2);
    pipe_free(url);
    pipe_free(dead);
    pipe_free(live);
    char *bad = pipe_asprintf("file://%s?tmp_max_age=0", f->root);
    assert_int_equal(pipe_store_open(bad, &s2), PIPE_ECONFIG);
    pipe_free(bad);
}

/* A directory far larger than a page, written behind the store's back for
 * speed: pages come back complete, in order, and resume exactly. */
static void test_store_fs_list_pages_through_large_directory(void **state)
{
    struct fixture *f = *state;
    enum { N = 5000, PAGE = 1000 };
    assert_int_equal(pipe_store_put(f->s, "big/k00000", "x", 1), 0);
    for (int i = 1; i < N; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/big/k%05d", f->root, (i * 7919) % N);
        assert_int_equal(tu_write_file(path, "x", 1), 0);
    }
    char *marker = NULL;
    int seen = 0, pages = 0;
    for (bool more = true; more; pages++) {
        struct pipe_store_list l = {0};
        assert_int_equal(pipe_store_list(f->s, "big/", marker, PAGE, &l), 0);
        for (size_t i = 0; i < l.count; i++) {
            char want[32];
            snprintf(want, sizeof want, "big/k%05d", seen++);
            assert_string_equal(l.items[i].key, want);
        }
        more = l.truncated;
        pipe_free(marker);
        marker = l.next_marker ? pipe_strdup(l.next_marker) : NULL;
        pipe_store_list_cleanup(&l);
    }
    pipe_free(marker);
    assert_int_equal(seen, N);
    assert_int_equal(pages, N / PAGE);
}

static void test_store_fs_relative_root_url_resolves_against_cwd_at_open(void **state)
{
    struct fixture *f = *state;
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(f->dir), 0);
    struct pipe_store *s = NULL;
    int rc = pipe_store_open("file://./rel/data", &s);
    assert_int_equal(chdir(cwd), 0); /* before asserting: never leave the cwd changed */
    assert_int_equal(rc, 0);
    assert_string_equal(pipe_store_url(s), "file://./rel/data");
    /* the cwd has changed back since open: the store must still point at f->dir */
    assert_int_equal(pipe_store_put(s, "k", "v", 1), 0);
    assert_true(exists(f->dir, "rel/data/k"));
    pipe_store_free(s);
}

static void test_store_open_rejects_bad_urls_with_config_error(void **state)
{
    struct fixture *f = *state;
    char *inner_bad = pipe_asprintf("fault:nope=1:file://%s", f->root);
    char *prob_bad = pipe_asprintf("fault:put_fail=2:file://%s", f->root);
    char *seed_bad = pipe_asprintf("fault:seed=x:file://%s", f->root);
    const char *bad[] = {"file://",
                         "ftp://x",
                         "",
                         "file:relative",
                         "file://host/x",
                         "nonsense",
                         "fault:seed=1:ftp://x",
                         "fault:nocolon",
                         inner_bad,
                         prob_bad,
                         seed_bad};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct pipe_store *s = (struct pipe_store *)0x1;
        assert_int_equal(pipe_store_open(bad[i], &s), PIPE_ECONFIG);
        assert_ptr_equal(s, (struct pipe_store *)0x1); /* out untouched on failure */
        assert_true(strlen(pipe_store_last_error(NULL)) > 0);
    }
    assert_int_equal(pipe_store_open(NULL, &f->s), PIPE_ECONFIG);
    pipe_free(inner_bad);
    pipe_free(prob_bad);
    pipe_free(seed_bad);
}

static void test_store_fs_open_fails_when_root_cannot_be_created(void **state)
{
    struct fixture *f = *state;
    char *file = pipe_asprintf("%s/plain", f->dir);
    assert_int_equal(tu_write_file(file, "x", 1), 0);
    char *url = pipe_asprintf("file://%s/sub", file);
    struct pipe_store *s = NULL;
    assert_int_equal(pipe_store_open(url, &s), -ENOTDIR);
    assert_null(s);
    assert_non_null(strstr(pipe_store_last_error(NULL), "plain/sub"));
    pipe_free(url);
    pipe_free(file);
}

static void test_store_counters_count_requests_and_only_real_errors(void **state)
{
    struct fixture *f = *state;
    struct pipe_buf b;
    pipe_buf_init(&b, 100);
    struct pipe_store_obj o;
    struct pipe_store_list l = {0};
    assert_int_equal(pipe_store_put(f->s, "k", "v", 1), 0);
    assert_int_equal(pipe_store_put(f->s, "k", "w", 1), 0);
    assert_int_equal(pipe_store_put(f->s, "../bad", "w", 1), PIPE_EINVAL);
    assert_int_equal(pipe_store_get(f->s, "k", &b), 0);
    assert_int_equal(pipe_store_get(f->s, "missing", &b), PIPE_ENOTFOUND);
    assert_int_equal(pipe_store_stat(f->s, "k", &o), 0);
    assert_int_equal(pipe_store_delete(f->s, "k"), 0);
    assert_int_equal(pipe_store_list(f->s, "", NULL, 10, &l), 0);
    pipe_store_list_cleanup(&l);
    assert_int_equal(pipe_store_list(f->s, "", NULL, 0, &l), PIPE_EINVAL);
    const uint64_t want[PIPE_STORE_OP__COUNT][2] = {
        [PIPE_STORE_OP_PUT] = {3, 1},  [PIPE_STORE_OP_GET] = {2, 0},
        [PIPE_STORE_OP_STAT] = {1, 0}, [PIPE_STORE_OP_DELETE] = {1, 0},
        [PIPE_STORE_OP_LIST] = {2, 1},
    };
    for (int op = 0; op < PIPE_STORE_OP__COUNT; op++) {
        uint64_t req = 99, err = 99;
        pipe_store_counters(f->s, op, &req, &err);
        assert_int_equal(req, want[op][0]);
        assert_int_equal(err, want[op][1]);
    }
    assert_string_equal(pipe_store_op_name(PIPE_STORE_OP_DELETE), "delete");
    assert_string_equal(pipe_store_op_name(PIPE_STORE_OP__COUNT), "unknown");
    assert_true(pipe_store_has(f->s, PIPE_STORE_CAP_ATOMIC_PUT | PIPE_STORE_CAP_FSYNC));
    pipe_buf_cleanup(&b);
}

static void *read_last_error(void *p)
{
    return (void *)pipe_store_last_error(p);
}

static void test_store_last_error_is_per_thread_and_per_handle(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pipe_store_put(f->s, "a//b", "x", 1), PIPE_EINVAL);
    assert_non_null(strstr(pipe_store_last_error(f->s), "a//b"));
    pthread_t th;
    void *other = NULL;
    pthread_create(&th, NULL, read_last_error, f->s);
    pthread_join(th, &other);
    assert_string_equal(other, "");
    /* a failure on another handle replaces this thread's detail */
    char *url = pipe_asprintf("file://%s", f->root);
    struct pipe_store *s2 = NULL;
    assert_int_equal(pipe_store_open(url, &s2), 0);
    struct pipe_buf b;
    pipe_buf_init(&b, 10);
    assert_int_equal(pipe_store_get(s2, "nope", &b), PIPE_ENOTFOUND);
    assert_string_equal(pipe_store_last_error(f->s), "");
    assert_non_null(strstr(pipe_store_last_error(s2), "nope"));
    pipe_buf_cleanup(&b);
    pipe_store_free(s2);
    pipe_free(url);
}

struct race_arg {
    struct pipe_store *s;
    const char *key;
    int failures;
    char why[256]; /* the last failure, for the assertion message */
};

static void *put_delete_loop(void *p)
{
    struct race_arg *a = p;
    for (int i = 0; i < 150; i++) {
        if (pipe_store_put(a->s, a->key, "v", 1) < 0 || pipe_store_delete(a->s, a->key) < 0) {
            a->failures++;
            snprintf(a->why, sizeof a->why, "%s", pipe_store_last_error(a->s));
        }
    }
    return NULL;
}

/* Delete prunes directories that a concurrent put may just have created;
 * the put must recreate them rather than fail. */
static void test_store_fs_put_survives_concurrent_delete_pruning_its_dir(void **state)
{
    struct fixture *f = *state;
    struct race_arg a[2] = {{.s = f->s, .key = "d/e/x"}, {.s = f->s, .key = "d/e/y"}};
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        pthread_create(&th[t], NULL, put_delete_loop, &a[t]);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 2; t++)
        if (a[t].failures)
            fail_msg("%d failures, last: %s", a[t].failures, a[t].why);
    assert_false(exists(f->root, "d"));
}

static struct pipe_store *open_fault(const struct fixture *f, const char *opts)
{
    char *url = pipe_asprintf("fault:%s:file://%s", opts, f->root);
    struct pipe_store *s = NULL;
    int rc = pipe_store_open(url, &s);
    if (rc < 0)
        fail_msg("open %s: %s", url, pipe_store_last_error(NULL));
    pipe_free(url);
    return s;
}

static void test_store_fault_down_file_makes_every_op_unavailable(void **state)
{
    struct fixture *f = *state;
    char *down = pipe_asprintf("%s/down", f->dir);
    char *opts = pipe_asprintf("down_file=%s", down);
    struct pipe_store *s = open_fault(f, opts);
    assert_true(pipe_store_has(s, PIPE_STORE_CAP_ATOMIC_PUT)); /* the inner store's caps */
    assert_int_equal(pipe_store_put(s, "k", "v", 1), 0);

    assert_int_equal(tu_write_file(down, "", 0), 0);
    struct pipe_buf b;
    pipe_buf_init(&b, 10);
    struct pipe_store_obj o;
    struct pipe_store_list l = {0};
    assert_int_equal(pipe_store_put(s, "k", "w", 1), PIPE_EUNAVAIL);
    assert_non_null(strstr(pipe_store_last_error(s), "down"));
    assert_int_equal(pipe_store_get(s, "k", &b), PIPE_EUNAVAIL);
    assert_int_equal(pipe_store_stat(s, "k", &o), PIPE_EUNAVAIL);
    assert_int_equal(pipe_store_delete(s, "k"), PIPE_EUNAVAIL);
    assert_int_equal(pipe_store_list(s, "", NULL, 10, &l), PIPE_EUNAVAIL);
    assert_true(pipe_err_is_transient(PIPE_EUNAVAIL));

    unlink(down);
    assert_int_equal(pipe_store_get(s, "k", &b), 0);
    assert_string_equal(b.data, "v"); /* the failed put never reached the inner store */
    assert_int_equal(pipe_store_list(s, "", NULL, 10, &l), 0);
    assert_int_equal(l.count, 1);
    pipe_store_list_cleanup(&l);
    pipe_buf_cleanup(&b);
    pipe_store_free(s);
    pipe_free(opts);
    pipe_free(down);
}

static void test_store_fault_put_fail_one_fails_with_eio_and_counts_errors(void **state)
{
    struct fixture *f = *state;
    struct pipe_store *s = open_fault(f, "put_fail=1,seed=9");
    for (int i = 0; i < 3; i++)
        assert_int_equal(pipe_store_put(s, "k", "v", 1), PIPE_EIO);
    assert_non_null(strstr(pipe_store_last_error(s), "injected"));
    struct pipe_buf b;
    pipe_buf_init(&b, 10);
    assert_int_equal(pipe_store_get(s, "k", &b), PIPE_ENOTFOUND); /* inner error passes through */
    assert_non_null(strstr(pipe_store_last_error(s), f->root));
    uint64_t req, err;
    pipe_store_counters(s, PIPE_STORE_OP_PUT, &req, &err);
    assert_int_equal(req, 3);
    assert_int_equal(err, 3);
    pipe_store_counters(s, PIPE_STORE_OP_GET, &req, &err);
    assert_int_equal(req, 1);
    assert_int_equal(err, 0);
    assert_false(exists(f->root, "k"));
    pipe_buf_cleanup(&b);
    pipe_store_free(s);
}

/* A file:// put from parts that fails (here "f" is a file, so "f/x"
 * cannot be made) leaves no object and no temp file; one that succeeds
 * leaves no temp file either. Through a fault: store a put from parts is
 * the wrapper's put: one request, failed by put_fail like any put. */
static void test_store_put_parts_failure_leaves_nothing_on_fs_and_fault(void **state)
{
    struct fixture *f = *state;
    struct pipe_store_part parts[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
    assert_int_equal(pipe_store_put(f->s, "f", "file", 4), 0);
    assert_true(pipe_store_put_parts(f->s, "f/x", parts, 3) < 0);
    assert_non_null(strstr(pipe_store_last_error(f->s), "f/x"));
    assert_false(exists(f->root, "f/x"));
    assert_int_equal(pipe_store_put_parts(f->s, "d/k", parts, 3), 0);
    assert_file_and_no_temp(f, "d/k", "abcde");

    struct pipe_store *s = open_fault(f, "put_fail=1,seed=9");
    uint64_t req, err;
    assert_int_equal(pipe_store_put_parts(s, "k", parts, 3), PIPE_EIO);
    pipe_store_counters(s, PIPE_STORE_OP_PUT, &req, &err);
    assert_int_equal(req, 1);
    assert_int_equal(err, 1);
    assert_false(exists(f->root, "k"));
    pipe_store_free(s);
}

/* file:// hands out a mapping of the file (no copy into the heap); a
 * directory is not an object. Through a fault: store the view is read with
 * the wrapper's get, so injected get failures reach it. */
static void test_store_fs_view_maps_the_file_and_fault_view_goes_through_get(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pipe_store_put(f->s, "d/k", "mapped bytes", 12), 0);
    struct pipe_store_view v;
    assert_int_equal(pipe_store_view_get(f->s, "d/k", 100, &v), 0);
    assert_non_null(v.map);
    assert_int_equal(v.len, 12);
    assert_memory_equal(v.data, "mapped bytes", 12);
    pipe_store_view_release(&v);
    assert_null(v.map);
    assert_int_equal(pipe_store_view_get(f->s, "d", 100, &v), PIPE_ENOTFOUND);
    assert_non_null(strstr(pipe_store_last_error(f->s), "map"));

    struct pipe_store *s = open_fault(f, "get_fail=1,seed=9");
    assert_int_equal(pipe_store_view_get(s, "d/k", 100, &v), PIPE_EIO);
    assert_non_null(strstr(pipe_store_last_error(s), "injected"));
    assert_int_equal(v.len, 0);
    pipe_store_free(s);
    s = open_fault(f, "seed=9");
    assert_int_equal(pipe_store_view_get(s, "d/k", 100, &v), 0);
    assert_null(v.map);
    assert_memory_equal(v.data, "mapped bytes", 12);
    pipe_store_view_release(&v);
    pipe_store_free(s);
}

static void test_store_fault_fail_probability_is_roughly_honoured(void **state)
{
    struct fixture *f = *state;
    struct pipe_store *s = open_fault(f, "stat_fail=0.25,seed=7");
    assert_int_equal(pipe_store_put(s, "k", "v", 1), 0);
    int failed = 0;
    for (int i = 0; i < 400; i++) {
        struct pipe_store_obj o;
        int rc = pipe_store_stat(s, "k", &o);
        assert_true(rc == 0 || rc == PIPE_EIO);
        failed += rc == PIPE_EIO;
    }
    assert_in_range(failed, 60, 140);
    pipe_store_free(s);
}

static void test_store_key_valid_boundaries(void **state)
{
    (void)state;
    char key[PIPE_STORE_KEY_MAX + 2];
    memset(key, 'k', sizeof key);
    key[PIPE_STORE_KEY_MAX] = '\0';
    assert_true(pipe_store_key_valid(key));
    key[PIPE_STORE_KEY_MAX] = 'k';
    key[PIPE_STORE_KEY_MAX + 1] = '\0';
    assert_false(pipe_store_key_valid(key));
    assert_true(pipe_store_key_valid("a"));
    assert_true(pipe_store_key_valid("filtered/dt=2026-01-01/hr=00/x.ndjson.zst"));
    assert_true(pipe_store_key_valid("a/b.c/d..e"));
    assert_true(pipe_store_key_valid("caf\xc3\xa9"));
    assert_false(pipe_store_key_valid("a/"));
    assert_false(pipe_store_key_valid("a/.."));
    assert_false(pipe_store_key_valid("a\\b"));
    assert_false(pipe_store_key_valid("a\x01"));
    assert_false(pipe_store_key_valid(NULL));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_store_fs_put_writes_key_path_and_leaves_no_temp_files),
        T(test_store_fs_delete_removes_empty_parent_dirs_but_not_root),
        T(test_store_fs_directory_is_not_an_object),
        T(test_store_fs_list_skips_temp_and_foreign_files),
        T(test_store_fs_tidy_removes_only_old_temp_files_and_open_walks_nothing),
        T(test_store_fs_list_removes_temp_files_past_the_url_bound),
        T(test_store_fs_list_pages_through_large_directory),
        T(test_store_fs_relative_root_url_resolves_against_cwd_at_open),
        T(test_store_open_rejects_bad_urls_with_config_error),
        T(test_store_fs_open_fails_when_root_cannot_be_created),
        T(test_store_counters_count_requests_and_only_real_errors),
        T(test_store_last_error_is_per_thread_and_per_handle),
        T(test_store_fs_put_survives_concurrent_delete_pruning_its_dir),
        T(test_store_fault_down_file_makes_every_op_unavailable),
        T(test_store_fault_put_fail_one_fails_with_eio_and_counts_errors),
        T(test_store_fault_fail_probability_is_roughly_honoured),
        T(test_store_put_parts_failure_leaves_nothing_on_fs_and_fault),
        T(test_store_fs_view_maps_the_file_and_fault_view_goes_through_get),
        cmocka_unit_test(test_store_key_valid_boundaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
