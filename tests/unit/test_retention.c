/* Unit tests for the retention sweep: objects built in a file:// store and
 * aged with utimensat() on their files, then swept; what is deleted, what is
 * kept, in which order, and how the retention JSON is checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/mem.h"
#include "libpipe/retention.h"
#include "libpipe/store.h"
#include "tests/support/testutil.h"

#define DAY_MS  INT64_C(86400000)
#define HOUR_MS INT64_C(3600000)
#define MAX_LOG 64

struct fixture {
    char *dir, *root;
    struct pipe_store *s;
    int64_t now_ms;
    struct pipe_retention_config c;
    /* what the callbacks saw, in order */
    char *log[MAX_LOG];
    bool companion[MAX_LOG];
    size_t n_log, n_errors, n_progress;
    int stop_after; /* progress calls before returning 7; 0: never */
};

static int setup(void **state)
{
    struct fixture *f = pipe_calloc(1, sizeof *f);
    f->dir = tu_tmpdir("retention");
    if (f->dir == NULL)
        return -1;
    f->root = pipe_asprintf("%s/root", f->dir);
    char *url = pipe_asprintf("file://%s", f->root);
    int rc = pipe_store_open(url, &f->s);
    pipe_free(url);
    /* Mid-hour, so that "an hour ago" is another partition. */
    f->now_ms = pipe_clock_now_ms() / HOUR_MS * HOUR_MS + HOUR_MS / 2;
    pipe_retention_config_init(&f->c, 1, DAY_MS);
    /* state/dedup/ by the window alone (1 d), as {"dedup":"1d"} would: the
     * sweep's rules are tested here, not the start-up check. */
    f->c.ttl_ms[PIPE_RET_DEDUP] = DAY_MS;
    f->c.dedup_set = true;
    *state = f;
    return rc;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < f->n_log; i++)
        free(f->log[i]);
    pipe_store_free(f->s);
    tu_rmrf(f->dir);
    free(f->dir);
    pipe_free(f->root);
    pipe_free(f);
    return 0;
}

/* put — an object under key whose mtime is age_ms before f->now_ms. */
static void put(struct fixture *f, const char *key, int64_t age_ms)
{
    assert_int_equal(pipe_store_put(f->s, key, "x", 1), 0);
    int64_t t = f->now_ms - age_ms;
    struct timespec ts[2] = {{t / 1000, (t % 1000) * 1000000}, {t / 1000, (t % 1000) * 1000000}};
    char *path = pipe_asprintf("%s/%s", f->root, key);
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    pipe_free(path);
}

static bool exists(struct fixture *f, const char *key)
{
    struct pipe_store_obj o;
    return pipe_store_stat(f->s, key, &o) == 0;
}

/* Builders that return a static key (one call per statement). */
static const char *key_of(int (*fn)(struct pipe_buf *, int64_t, const char *), int64_t t,
                          const char *name)
{
    static char k[4][PIPE_STORE_KEY_MAX + 1];
    static int slot;
    struct pipe_buf b;
    pipe_buf_init(&b, PIPE_STORE_KEY_MAX);
    assert_int_equal(fn(&b, t, name), 0);
    char *out = k[slot++ % 4];
    snprintf(out, PIPE_STORE_KEY_MAX + 1, "%s", b.data);
    pipe_buf_cleanup(&b);
    return out;
}

static int manifest_split(struct pipe_buf *b, int64_t t, const char *n)
{
    (void)t;
    return pipe_keys_manifest(b, "split", n);
}

static int manifest_combined(struct pipe_buf *b, int64_t t, const char *n)
{
    (void)t;
    return pipe_keys_manifest(b, "combined", n);
}

static void on_deleted(void *arg, size_t rule, const char *key, bool companion)
{
    struct fixture *f = arg;
    assert_true(rule < PIPE_RETENTION_NRULES);
    assert_true(f->n_log < MAX_LOG);
    f->companion[f->n_log] = companion;
    f->log[f->n_log++] = strdup(key);
}

static void on_error(void *arg, const char *what, const char *key, int rc, const char *detail)
{
    struct fixture *f = arg;
    assert_non_null(what);
    assert_non_null(key);
    assert_non_null(detail);
    assert_true(rc < 0);
    f->n_errors++;
}

static int on_progress(void *arg, size_t rule, uint64_t listed)
{
    struct fixture *f = arg;
    (void)rule;
    (void)listed;
    f->n_progress++;
    return f->stop_after && (int)f->n_progress >= f->stop_after ? 7 : 0;
}

static int sweep(struct fixture *f, bool dry_run, struct pipe_retention_counts *n)
{
    const struct pipe_retention_callbacks cb = {on_deleted, on_error, on_progress, f};
    return pipe_retention_sweep(f->s, &f->c, f->now_ms, dry_run, &cb, n);
}

static ssize_t logged(const struct fixture *f, const char *key)
{
    for (size_t i = 0; i < f->n_log; i++)
        if (strcmp(f->log[i], key) == 0)
            return (ssize_t)i;
    return -1;
}

/* The scene: every rule with an old consumed, an old unconsumed and a new
 * object. Returns the number of keys a sweep with the defaults deletes. */
struct scene {
    char raw_done[64], raw_open[64], raw_filtered[PIPE_STORE_KEY_MAX + 1];
    char f_done[PIPE_STORE_KEY_MAX + 1], f_done_mark[PIPE_STORE_KEY_MAX + 1];
    char f_open[PIPE_STORE_KEY_MAX + 1], f_new[PIPE_STORE_KEY_MAX + 1];
    char f_new_mark[PIPE_STORE_KEY_MAX + 1];
    char c_split[PIPE_STORE_KEY_MAX + 1], c_split_man[PIPE_STORE_KEY_MAX + 1];
    char c_split_sman[PIPE_STORE_KEY_MAX + 1];
    char c_open[PIPE_STORE_KEY_MAX + 1], c_open_man[PIPE_STORE_KEY_MAX + 1];
    char rj_old[PIPE_STORE_KEY_MAX + 1], rj_new[PIPE_STORE_KEY_MAX + 1];
    char sp_old[PIPE_STORE_KEY_MAX + 1], sp_new[PIPE_STORE_KEY_MAX + 1];
    char dd_old[PIPE_STORE_KEY_MAX + 1], dd_new[PIPE_STORE_KEY_MAX + 1];
};

#define CP(dst, src) snprintf((dst), sizeof(dst), "%s", (src))

static void build_scene(struct fixture *f, struct scene *sc)
{
    int64_t old = f->now_ms - 10 * DAY_MS;
    /* raw/: one filtered (its filtered object and marker exist), one not. */
    CP(sc->raw_done, "raw/in/done.ndjson");
    CP(sc->raw_open, "raw/in/open.ndjson");
    put(f, sc->raw_done, 10 * DAY_MS);
    put(f, sc->raw_open, 10 * DAY_MS);
    struct pipe_store_obj o;
    assert_int_equal(pipe_store_stat(f->s, sc->raw_done, &o), 0);
    struct pipe_buf name;
    pipe_buf_init(&name, PIPE_KEYS_NAME_MAX + 1);
    assert_int_equal(pipe_keys_raw_name(&name, 1, sc->raw_done, o.etag), 0);
    CP(sc->raw_filtered, key_of(pipe_keys_filtered, o.mtime_ms, name.data));
    put(f, sc->raw_filtered, 10 * DAY_MS);
    put(f, key_of(pipe_keys_combine_done, o.mtime_ms, name.data), 10 * DAY_MS);
    pipe_buf_cleanup(&name);
    /* filtered/: old combined, old not combined, new combined. */
    CP(sc->f_done, key_of(pipe_keys_filtered, old, "f-done"));
    CP(sc->f_done_mark, key_of(pipe_keys_combine_done, old, "f-done"));
    CP(sc->f_open, key_of(pipe_keys_filtered, old, "f-open"));
    CP(sc->f_new, key_of(pipe_keys_filtered, f->now_ms, "f-new"));
    CP(sc->f_new_mark, key_of(pipe_keys_combine_done, f->now_ms, "f-new"));
    put(f, sc->f_done, 10 * DAY_MS);
    put(f, sc->f_done_mark, 10 * DAY_MS);
    put(f, sc->f_open, 10 * DAY_MS);
    put(f, sc->f_new, 60000);
    put(f, sc->f_new_mark, 60000);
    /* combined/ (retention 30 d): one split, one not, both 40 days old. */
    const char *js = "g1-2020010100-00000000000000a1", *jo = "g1-2020010100-00000000000000a2";
    CP(sc->c_split, key_of(pipe_keys_combined, f->now_ms - 40 * DAY_MS, js));
    CP(sc->c_split_man, key_of(manifest_combined, 0, js));
    CP(sc->c_split_sman, key_of(manifest_split, 0, js));
    CP(sc->c_open, key_of(pipe_keys_combined, f->now_ms - 40 * DAY_MS, jo));
    CP(sc->c_open_man, key_of(manifest_combined, 0, jo));
    put(f, sc->c_split, 40 * DAY_MS);
    put(f, sc->c_split_man, 40 * DAY_MS);
    put(f, sc->c_split_sman, 40 * DAY_MS); /* split: 90 d, stays */
    put(f, sc->c_open, 40 * DAY_MS);
    put(f, sc->c_open_man, 40 * DAY_MS);
    /* rejected/ (30 d) and split/ (90 d): by age alone. */
    CP(sc->rj_old, key_of(pipe_keys_rejected, old, "rj-31d"));
    CP(sc->rj_new, key_of(pipe_keys_rejected, old, "rj-10d"));
    put(f, sc->rj_old, 31 * DAY_MS);
    put(f, sc->rj_new, 10 * DAY_MS);
    CP(sc->sp_old, "split/page_view/dt=2020-01-01/hr=00/g1-old.ndjson.zst");
    CP(sc->sp_new, "split/page_view/dt=2020-01-01/hr=00/g1-new.ndjson.zst");
    put(f, sc->sp_old, 91 * DAY_MS);
    put(f, sc->sp_new, 10 * DAY_MS);
    /* state/dedup/ (window 1 d). */
    CP(sc->dd_old, key_of(pipe_keys_dedup_index, old, js));
    CP(sc->dd_new, key_of(pipe_keys_dedup_index, f->now_ms, js));
    put(f, sc->dd_old, 2 * DAY_MS);
    put(f, sc->dd_new, 60000);
}

static void test_retention_sweep_deletes_exactly_the_old_consumed_objects(void **state)
{
    struct fixture *f = *state;
    struct scene sc;
    build_scene(f, &sc);
    struct pipe_retention_counts n;
    assert_int_equal(sweep(f, false, &n), 0);
    const char *gone[] = {sc.raw_done,    sc.raw_filtered, sc.f_done, sc.f_done_mark, sc.c_split,
                          sc.c_split_man, sc.rj_old,       sc.sp_old, sc.dd_old};
    const char *kept[] = {sc.raw_open,   sc.f_open, sc.f_new,  sc.f_new_mark, sc.c_open,
                          sc.c_open_man, sc.rj_new, sc.sp_new, sc.dd_new,     sc.c_split_sman};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
        assert_false(exists(f, gone[i]));
        assert_true(logged(f, gone[i]) >= 0);
    }
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        assert_true(exists(f, kept[i]));
        assert_true(logged(f, kept[i]) < 0);
    }
    /* One more: the marker of the raw object's filtered object. */
    assert_int_equal(f->n_log, sizeof gone / sizeof gone[0] + 1);
    assert_int_equal(f->n_errors, 0);
    /* Counters: raw 2 old (1 kept), filtered 3 old (f-open kept), combined
     * 2 old (1 kept, 1 companion). */
    assert_int_equal(n.rule[0].old, 2);
    assert_int_equal(n.rule[0].deleted, 1);
    assert_int_equal(n.rule[0].kept, 1);
    assert_int_equal(n.rule[1].old, 3);
    assert_int_equal(n.rule[1].deleted, 2);
    assert_int_equal(n.rule[1].companions, 2);
    assert_int_equal(n.rule[1].kept, 1);
    assert_int_equal(n.rule[3].deleted, 1);
    assert_int_equal(n.rule[3].companions, 1);
    assert_int_equal(n.rule[3].kept, 1);
    assert_int_equal(n.rule[2].deleted, 1);
    assert_int_equal(n.rule[5].deleted, 1);
    assert_int_equal(n.rule[6].deleted, 1);
    assert_int_equal(n.rule[1].bytes, 2);
    assert_true(f->n_progress >= PIPE_RETENTION_NRULES);
}

static void test_retention_sweep_deletes_a_marker_after_its_object(void **state)
{
    struct fixture *f = *state;
    struct scene sc;
    build_scene(f, &sc);
    assert_int_equal(sweep(f, false, NULL), 0);
    ssize_t obj = logged(f, sc.f_done), mark = logged(f, sc.f_done_mark);
    assert_true(obj >= 0 && mark >= 0);
    assert_true(obj < mark);
    assert_false(f->companion[obj]);
    assert_true(f->companion[mark]);
    ssize_t c = logged(f, sc.c_split), cm = logged(f, sc.c_split_man);
    assert_true(c >= 0 && c < cm);
    /* raw/ goes before its filtered/ object is looked at. */
    assert_true(logged(f, sc.raw_done) < logged(f, sc.raw_filtered));
}

static void test_retention_sweep_dry_run_deletes_nothing_and_reports_the_same(void **state)
{
    struct fixture *f = *state;
    struct scene sc;
    build_scene(f, &sc);
    struct pipe_retention_counts dry, wet;
    assert_int_equal(sweep(f, true, &dry), 0);
    size_t would = f->n_log;
    assert_true(would > 0);
    for (size_t i = 0; i < would; i++)
        assert_true(exists(f, f->log[i]));
    assert_int_equal(sweep(f, false, &wet), 0);
    assert_int_equal(f->n_log, 2 * would);
    for (size_t i = 0; i < would; i++)
        assert_string_equal(f->log[i], f->log[would + i]);
    assert_memory_equal(&dry, &wet, sizeof dry);
}

static void test_retention_second_sweep_finds_nothing(void **state)
{
    struct fixture *f = *state;
    struct scene sc;
    build_scene(f, &sc);
    assert_int_equal(sweep(f, false, NULL), 0);
    size_t first = f->n_log;
    struct pipe_retention_counts n;
    assert_int_equal(sweep(f, false, &n), 0);
    assert_int_equal(f->n_log, first);
    for (size_t i = 0; i < PIPE_RETENTION_NRULES; i++)
        assert_int_equal(n.rule[i].deleted, 0);
}

static void test_retention_override_sweeps_younger_consumed_objects_only(void **state)
{
    struct fixture *f = *state;
    struct scene sc;
    build_scene(f, &sc);
    /* f-new is a minute old and combined; f-open stays whatever the age. */
    json_t *j = json_pack("{s:s}", "filtered", "30s");
    char err[256];
    assert_int_equal(pipe_retention_config_parse(&f->c, j, err, sizeof err), 0);
    json_decref(j);
    assert_int_equal(sweep(f, false, NULL), 0);
    assert_false(exists(f, sc.f_new));
    assert_false(exists(f, sc.f_new_mark));
    assert_true(exists(f, sc.f_open));
}

static void test_retention_dedup_index_of_an_hour_in_the_window_is_kept(void **state)
{
    struct fixture *f = *state;
    /* Written two days ago, but for the current hour (events partitioned
     * by a client time): the splitter still counts its claims. */
    const char *k = key_of(pipe_keys_dedup_index, f->now_ms, "g1-2020010100-00000000000000a1");
    put(f, k, 2 * DAY_MS);
    struct pipe_retention_counts n;
    assert_int_equal(sweep(f, false, &n), 0);
    assert_true(exists(f, k));
    assert_int_equal(n.rule[6].old, 1);
    assert_int_equal(n.rule[6].kept, 1);
}

static void test_retention_progress_stops_the_sweep(void **state)
{
    struct fixture *f = *state;
    struct scene sc;
    build_scene(f, &sc);
    f->stop_after = 1; /* after raw/ */
    struct pipe_retention_counts n;
    assert_int_equal(sweep(f, false, &n), 7);
    assert_false(exists(f, sc.raw_done));
    assert_true(exists(f, sc.f_done)); /* filtered/ never ran */
    assert_int_equal(n.rule[0].deleted, 1);
    assert_int_equal(n.rule[1].old, 0);
}

static void test_retention_failed_deletes_are_counted_and_returned(void **state)
{
    struct fixture *f = *state;
    struct scene sc;
    build_scene(f, &sc);
    char *url = pipe_asprintf("fault:delete_fail=1:file://%s", f->root);
    struct pipe_store *fs;
    assert_int_equal(pipe_store_open(url, &fs), 0);
    pipe_free(url);
    const struct pipe_retention_callbacks cb = {on_deleted, on_error, NULL, f};
    struct pipe_retention_counts n;
    int rc = pipe_retention_sweep(fs, &f->c, f->now_ms, false, &cb, &n);
    pipe_store_free(fs);
    assert_int_equal(rc, PIPE_EIO);
    assert_int_equal(f->n_log, 0);
    assert_true(f->n_errors > 0);
    assert_int_equal(n.rule[1].errors, 2);
    /* A filtered object whose delete failed keeps its marker. */
    assert_true(exists(f, sc.f_done));
    assert_true(exists(f, sc.f_done_mark));
}

static void test_retention_failed_checks_keep_the_object(void **state)
{
    struct fixture *f = *state;
    struct scene sc;
    build_scene(f, &sc);
    char *url = pipe_asprintf("fault:stat_fail=1:file://%s", f->root);
    struct pipe_store *fs;
    assert_int_equal(pipe_store_open(url, &fs), 0);
    pipe_free(url);
    const struct pipe_retention_callbacks cb = {on_deleted, on_error, NULL, f};
    int rc = pipe_retention_sweep(fs, &f->c, f->now_ms, false, &cb, NULL);
    pipe_store_free(fs);
    assert_int_equal(rc, PIPE_EIO);
    assert_true(exists(f, sc.raw_done));
    assert_true(exists(f, sc.f_done));
    assert_true(exists(f, sc.c_split));
    assert_false(exists(f, sc.rj_old)); /* by age alone: no check */
}

static void test_retention_json_errors_leave_the_config_unchanged(void **state)
{
    struct fixture *f = *state;
    const char *bad[] = {
        "[\"7d\"]",
        "{\"filtred\":\"1d\"}",
        "{\"raw\":\"soon\"}",
        "{\"raw\":7}",
        "{\"raw\":\"0\"}",
        "{\"filtered\":\"1d\",\"x\":\"1d\"}",
        "{\"dedup_window\":\"1d\"}",
        "{\"dedup\":\"-1d\"}",
    };
    struct pipe_retention_config before = f->c;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        assert_non_null(j);
        char err[256] = "";
        assert_int_equal(pipe_retention_config_parse(&f->c, j, err, sizeof err), PIPE_ECONFIG);
        assert_true(strlen(err) > 10);
        assert_memory_equal(&before, &f->c, sizeof before);
        json_decref(j);
    }
    char err[256] = "";
    json_t *j = json_loads("{\"filtred\":\"1d\"}", 0, NULL);
    pipe_retention_config_parse(&f->c, j, err, sizeof err);
    json_decref(j);
    assert_non_null(strstr(err, "filtred"));
    assert_int_equal(pipe_retention_config_parse(&f->c, NULL, err, sizeof err), 0);
    assert_memory_equal(&before, &f->c, sizeof before);
}

static void test_retention_defaults_and_overrides(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pipe_retention_rule_ttl(&f->c, 0), 7 * DAY_MS);
    assert_int_equal(pipe_retention_rule_ttl(&f->c, 3), 30 * DAY_MS);
    assert_int_equal(pipe_retention_rule_ttl(&f->c, 5), 90 * DAY_MS);
    assert_int_equal(pipe_retention_rule_ttl(&f->c, 6), DAY_MS);
    assert_string_equal(pipe_retention_rule_prefix(1), "filtered/");
    assert_string_equal(pipe_retention_rule_companion(1), "state/combine/");
    assert_null(pipe_retention_rule_companion(0));
    assert_null(pipe_retention_rule_prefix(PIPE_RETENTION_NRULES));
    json_t *j = json_loads("{\"raw\":\"36h\",\"split\":\"1d\"}", 0, NULL);
    char err[256];
    assert_int_equal(pipe_retention_config_parse(&f->c, j, err, sizeof err), 0);
    json_decref(j);
    assert_int_equal(f->c.ttl_ms[PIPE_RET_RAW], 36 * HOUR_MS);
    assert_int_equal(f->c.ttl_ms[PIPE_RET_FILTERED], 7 * DAY_MS);
    /* split (1 d) now shorter than combined (30 d): a warning. */
    const char *w[4];
    assert_int_equal(pipe_retention_config_warnings(&f->c, w, 4), 1);
    assert_non_null(strstr(w[0], "combined/"));
    f->c.ttl_ms[PIPE_RET_RAW] = 8 * DAY_MS;
    assert_int_equal(pipe_retention_config_warnings(&f->c, w, 4), 2);
    assert_int_equal(pipe_retention_config_warnings(&f->c, w, 1), 2);
}

/* state/dedup/ follows the window and the replay horizon unless given,
 * and SPEC §5.7 refuses what would lose or duplicate, naming both settings. */
static void test_retention_dedup_covers_window_and_replay_horizon(void **state)
{
    (void)state;
    struct pipe_retention_config c;
    char err[256] = "";
    pipe_retention_config_init(&c, 1, DAY_MS);
    assert_int_equal(c.ttl_ms[PIPE_RET_DEDUP], 30 * DAY_MS); /* combined/ */
    assert_int_equal(pipe_retention_config_check(&c, err, sizeof err), 0);
    json_t *j = json_loads("{\"filtered\":\"2d\",\"combined\":\"3d\"}", 0, NULL);
    assert_int_equal(pipe_retention_config_parse(&c, j, err, sizeof err), 0);
    json_decref(j);
    assert_int_equal(c.ttl_ms[PIPE_RET_DEDUP], 3 * DAY_MS);
    pipe_retention_config_init(&c, 1, 40 * DAY_MS);
    assert_int_equal(c.ttl_ms[PIPE_RET_DEDUP], 40 * DAY_MS); /* the window */

    pipe_retention_config_init(&c, 1, DAY_MS);
    j = json_loads("{\"dedup\":\"2d\"}", 0, NULL);
    assert_int_equal(pipe_retention_config_parse(&c, j, err, sizeof err), 0);
    json_decref(j);
    assert_int_equal(pipe_retention_config_check(&c, err, sizeof err), PIPE_ECONFIG);
    assert_non_null(strstr(err, "retention.dedup (2d)"));
    assert_non_null(strstr(err, "retention.combined (30d)"));

    pipe_retention_config_init(&c, 1, 3 * DAY_MS);
    j = json_loads("{\"dedup\":\"2d\",\"filtered\":\"1d\",\"combined\":\"1d\"}", 0, NULL);
    assert_int_equal(pipe_retention_config_parse(&c, j, err, sizeof err), 0);
    json_decref(j);
    assert_int_equal(pipe_retention_config_check(&c, err, sizeof err), PIPE_ECONFIG);
    assert_non_null(strstr(err, "dedup_window (3d)"));

    pipe_retention_config_init(&c, 1, DAY_MS);
    j = json_loads("{\"filtered\":\"30m\"}", 0, NULL);
    assert_int_equal(pipe_retention_config_parse(&c, j, err, sizeof err), 0);
    json_decref(j);
    assert_int_equal(pipe_retention_config_check(&c, err, sizeof err), PIPE_ECONFIG);
    assert_non_null(strstr(err, "retention for filtered/ is 30m"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_retention_sweep_deletes_exactly_the_old_consumed_objects),
        T(test_retention_dedup_covers_window_and_replay_horizon),
        T(test_retention_sweep_deletes_a_marker_after_its_object),
        T(test_retention_sweep_dry_run_deletes_nothing_and_reports_the_same),
        T(test_retention_second_sweep_finds_nothing),
        T(test_retention_override_sweeps_younger_consumed_objects_only),
        T(test_retention_dedup_index_of_an_hour_in_the_window_is_kept),
        T(test_retention_progress_stops_the_sweep),
        T(test_retention_failed_deletes_are_counted_and_returned),
        T(test_retention_failed_checks_keep_the_object),
        T(test_retention_json_errors_leave_the_config_unchanged),
        T(test_retention_defaults_and_overrides),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
