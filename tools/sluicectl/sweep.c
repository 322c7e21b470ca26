/* sweep — `sluicectl sweep`: applies the per-prefix retention of SPEC §2 by
 * object mtime, and never deletes what the next stage has not consumed
 * (SPEC §5.5; the rules are in docs/compaction.md, "Operations"). One rule
 * per prefix, run in pipeline order, each a listing plus a "consumed?"
 * check and the companion object that goes after the object itself. */
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/store.h"
#include "tools/sluicectl/ctl.h"

#define SWEEP_PAGE           1000
#define SWEEP_DAY_MS         INT64_C(86400000)
#define SWEEP_PROGRESS_EVERY 10000

struct sweep_cfg {
    char *store;
    json_t *retention;
    bool dry_run;
    int64_t generation;
    int64_t dedup_window_ms;
};

static const struct pipe_conf_opt sweep_opts[] = {
    {"store", PIPE_CONF_STR, "file://./sluice-data", offsetof(struct sweep_cfg, store),
     "object store URL: file:///path or s3://bucket[/prefix]?endpoint=..", 0, 0, "URL"},
    {"retention", PIPE_CONF_JSON, NULL, offsetof(struct sweep_cfg, retention),
     "retention per prefix, a JSON object of durations overriding the defaults "
     "{\"raw\":\"7d\",\"filtered\":\"7d\",\"rejected\":\"30d\",\"combined\":\"30d\","
     "\"split\":\"90d\"}",
     0, 0, "JSON"},
    {"dry_run", PIPE_CONF_BOOL, "false", offsetof(struct sweep_cfg, dry_run),
     "print what would be deleted and delete nothing", 0, 0, NULL},
    {"generation", PIPE_CONF_INT, "1", offsetof(struct sweep_cfg, generation),
     "generation the filter runs with (names the filtered/ object of a raw/ object)", 1, 999999,
     "N"},
    {"dedup_window", PIPE_CONF_DURATION, "24h", offsetof(struct sweep_cfg, dedup_window_ms),
     "de-duplication window: state/dedup/ index objects older than this go", 1, INT64_MAX, NULL},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program sweep_program = {
    .name = "sluicectl sweep",
    .summary = "Deletes objects older than their prefix's retention (by mtime), never one the "
               "next stage has not consumed: raw/ once its filtered/ object exists; filtered/ "
               "once it is combined (its state/combine/ marker goes after it); combined/ once "
               "split (its combined manifest goes with it); split/, manifests/split/ and "
               "rejected/ by age alone; state/dedup/ index objects past the de-duplication "
               "window. Prints each key it deletes (with --dry-run, each it would delete) on "
               "stdout and a summary per prefix on stderr. Exit 1 if a delete failed.",
    .usage_args = NULL,
    .version = SLUICE_VERSION,
    .tables = {sweep_opts, NULL},
};

/* Retention per prefix; index order is ret_names'. */
enum { RET_RAW, RET_FILTERED, RET_REJECTED, RET_COMBINED, RET_SPLIT, RET_DEDUP, RET__COUNT };
static const char *const ret_names[RET__COUNT] = {"raw",      "filtered", "rejected",
                                                  "combined", "split",    "dedup_window"};
static const int64_t ret_defaults[RET__COUNT] = {
    7 * SWEEP_DAY_MS,  7 * SWEEP_DAY_MS,  30 * SWEEP_DAY_MS,
    30 * SWEEP_DAY_MS, 90 * SWEEP_DAY_MS, SWEEP_DAY_MS,
};

struct sweep {
    const struct sweep_cfg *cfg;
    struct pipe_store *s;
    int64_t now_ms;
    int64_t ttl[RET__COUNT];
    bool progress, progress_shown;
    uint64_t listed;
    struct pipe_buf a, b; /* scratch keys for the consumed checks */
};

/* The consumed check of a rule: 1 consumed (companion, if not empty, is
 * deleted after the object), 0 not yet, < 0 an error. */
typedef int (*sweep_check_fn)(struct sweep *w, const struct pipe_store_obj *o,
                              struct pipe_buf *companion);

struct sweep_rule {
    const char *prefix;
    int ttl;              /* index into w->ttl */
    sweep_check_fn check; /* NULL: by age alone */
};

struct sweep_count {
    uint64_t old, deleted, bytes, companions, kept, errors;
};

/* ---- consumed checks ---------------------------------------------------- */

static int sweep_exists(struct sweep *w, const char *key)
{
    struct pipe_store_obj st;
    int rc = pipe_store_stat(w->s, key, &st);
    return rc == 0 ? 1 : rc == PIPE_ENOTFOUND ? 0 : rc;
}

/* raw/X: its filtered/ object (named from the raw object's version) exists,
 * or, should the filtered object be swept already, its done marker. */
static int sweep_raw_check(struct sweep *w, const struct pipe_store_obj *o,
                           struct pipe_buf *companion)
{
    (void)companion;
    int rc = pipe_keys_raw_name(&w->a, (unsigned)w->cfg->generation, o->key, o->etag);
    if (rc == 0)
        rc = pipe_keys_filtered(&w->b, o->mtime_ms, w->a.data);
    if (rc == 0)
        rc = sweep_exists(w, w->b.data);
    if (rc == 0 && pipe_keys_combine_done(&w->b, o->mtime_ms, w->a.data) == 0)
        rc = sweep_exists(w, w->b.data);
    return rc;
}

/* filtered/P/N: state/combine/P/N exists; the marker goes after the object
 * (an object without its marker would be combined again). */
static int sweep_filtered_check(struct sweep *w, const struct pipe_store_obj *o,
                                struct pipe_buf *companion)
{
    struct pipe_key_parts p;
    if (pipe_keys_parse(o->key, &p) < 0)
        return 0; /* not a key the pipeline wrote: not ours to delete */
    int rc = pipe_keys_combine_done(companion, p.hour_ms, p.name);
    return rc < 0 ? rc : sweep_exists(w, companion->data);
}

/* combined/P/J: manifests/split/J.json exists; manifests/combined/J.json
 * goes with the object. */
static int sweep_combined_check(struct sweep *w, const struct pipe_store_obj *o,
                                struct pipe_buf *companion)
{
    struct pipe_key_parts p;
    if (pipe_keys_parse(o->key, &p) < 0)
        return 0;
    int rc = pipe_keys_manifest(&w->a, "split", p.name);
    if (rc == 0)
        rc = pipe_keys_manifest(companion, "combined", p.name);
    return rc < 0 ? rc : sweep_exists(w, w->a.data);
}

/* In pipeline order, so that an object's consumer record is still there
 * when the object is looked at (raw/ before filtered/, combined/ before
 * manifests/split/), and a split manifest goes before its outputs. */
static const struct sweep_rule sweep_rules[] = {
    {"raw/", RET_RAW, sweep_raw_check},    {"filtered/", RET_FILTERED, sweep_filtered_check},
    {"rejected/", RET_REJECTED, NULL},     {"combined/", RET_COMBINED, sweep_combined_check},
    {"manifests/split/", RET_SPLIT, NULL}, {"split/", RET_SPLIT, NULL},
    {"state/dedup/", RET_DEDUP, NULL},
};
#define SWEEP_NRULES (sizeof sweep_rules / sizeof sweep_rules[0])

/* ---- the walk ------------------------------------------------------------- */

static void sweep_clear_progress(struct sweep *w)
{
    if (w->progress_shown) {
        fprintf(stderr, "\r\033[K");
        w->progress_shown = false;
    }
}

static void sweep_fail(struct sweep *w, const char *what, const char *key, int rc)
{
    const char *why = pipe_store_last_error(w->s);
    sweep_clear_progress(w);
    fprintf(stderr, "sluicectl sweep: %s %s: %s\n", what, key, why[0] ? why : pipe_strerror(rc));
}

static int sweep_delete(struct sweep *w, const char *key)
{
    int rc = w->cfg->dry_run ? 0 : pipe_store_delete(w->s, key);
    if (rc < 0)
        sweep_fail(w, "cannot delete", key, rc);
    else
        printf("%s%s\n", w->cfg->dry_run ? "would delete " : "deleted ", key);
    return rc;
}

static void sweep_one(struct sweep *w, const struct sweep_rule *rule,
                      const struct pipe_store_obj *o, struct pipe_buf *companion,
                      struct sweep_count *n)
{
    if (o->mtime_ms > w->now_ms - w->ttl[rule->ttl])
        return;
    n->old++;
    pipe_buf_reset(companion);
    if (rule->check != NULL) {
        int rc = rule->check(w, o, companion);
        if (rc < 0) {
            sweep_fail(w, "cannot tell whether it is consumed:", o->key, rc);
            n->errors++;
            return;
        }
        if (rc == 0) {
            n->kept++;
            return;
        }
    }
    if (sweep_delete(w, o->key) < 0) {
        n->errors++;
        return;
    }
    n->deleted++;
    n->bytes += o->size;
    if (companion->len > 0 && sweep_exists(w, companion->data) == 1) {
        if (sweep_delete(w, companion->data) < 0)
            n->errors++;
        else
            n->companions++;
    }
}

static void sweep_progress(struct sweep *w, const char *prefix, size_t n)
{
    uint64_t before = w->listed;
    w->listed += n;
    if (!w->progress || before / SWEEP_PROGRESS_EVERY == w->listed / SWEEP_PROGRESS_EVERY)
        return;
    fprintf(stderr, "\rsluicectl sweep: %" PRIu64 " keys listed (now in %s)\033[K", w->listed,
            prefix);
    w->progress_shown = true;
}

/* Pages through one rule's prefix. Deleting keys at or before the marker
 * does not disturb the listing. */
static int sweep_rule_run(struct sweep *w, const struct sweep_rule *rule, struct sweep_count *n)
{
    struct pipe_store_list page = {0};
    struct pipe_buf companion;
    pipe_buf_init(&companion, PIPE_STORE_KEY_MAX);
    int rc = 0;
    for (bool first = true; first || page.truncated; first = false) {
        struct pipe_store_list next = {0};
        rc = pipe_store_list(w->s, rule->prefix, page.next_marker, SWEEP_PAGE, &next);
        if (rc < 0) {
            sweep_fail(w, "cannot list", rule->prefix, rc);
            n->errors++;
            goto out;
        }
        pipe_store_list_cleanup(&page);
        page = next;
        for (size_t i = 0; i < page.count; i++)
            sweep_one(w, rule, &page.items[i], &companion, n);
        if (page.count == 0)
            break;
        sweep_progress(w, rule->prefix, page.count);
    }
out:
    pipe_buf_cleanup(&companion);
    pipe_store_list_cleanup(&page);
    return rc;
}

/* ---- options ---------------------------------------------------------------- */

/* Reads --retention over the defaults. PIPE_ECONFIG after a message. */
static int sweep_retention(struct sweep *w)
{
    memcpy(w->ttl, ret_defaults, sizeof w->ttl);
    w->ttl[RET_DEDUP] = w->cfg->dedup_window_ms;
    json_t *r = w->cfg->retention;
    if (r == NULL)
        return 0;
    if (!json_is_object(r)) {
        fprintf(stderr, "sluicectl sweep: --retention must be a JSON object such as "
                        "{\"filtered\":\"3d\"}\n");
        return PIPE_ECONFIG;
    }
    const char *k;
    json_t *v;
    json_object_foreach (r, k, v) {
        int i = 0;
        while (i < RET_DEDUP && strcmp(ret_names[i], k) != 0)
            i++;
        if (i == RET_DEDUP) {
            fprintf(stderr,
                    "sluicectl sweep: --retention: unknown prefix \"%s\" (raw, "
                    "filtered, rejected, combined, split)\n",
                    k);
            return PIPE_ECONFIG;
        }
        int64_t ms;
        if (!json_is_string(v) || pipe_conf_parse_duration(json_string_value(v), &ms) < 0 ||
            ms <= 0) {
            fprintf(stderr,
                    "sluicectl sweep: --retention: \"%s\" needs a positive duration "
                    "such as \"7d\" or \"36h\"\n",
                    k);
            return PIPE_ECONFIG;
        }
        w->ttl[i] = ms;
    }
    /* Consumption is proved by the next prefix's objects: when those go
     * first, the earlier objects can never be proved consumed. */
    if (w->ttl[RET_RAW] > w->ttl[RET_FILTERED])
        fprintf(stderr, "sluicectl sweep: warning: raw/ outlives filtered/: raw objects whose "
                        "filtered output is swept are kept\n");
    if (w->ttl[RET_COMBINED] > w->ttl[RET_SPLIT])
        fprintf(stderr, "sluicectl sweep: warning: combined/ outlives split/: combined objects "
                        "whose split manifest is swept are kept\n");
    return 0;
}

static void sweep_summary(const struct sweep *w, const struct sweep_count *n)
{
    char d[32];
    fprintf(stderr, "%-18s %9s %9s %12s %9s %9s %7s%s\n", "PREFIX", "RETENTION", "OLD",
            w->cfg->dry_run ? "TO_DELETE" : "DELETED", "BYTES", "KEPT", "ERRORS",
            w->cfg->dry_run ? "  (dry run)" : "");
    for (size_t i = 0; i < SWEEP_NRULES; i++)
        fprintf(stderr,
                "%-18s %9s %9" PRIu64 " %12" PRIu64 " %9" PRIu64 " %9" PRIu64 " %7" PRIu64 "\n",
                sweep_rules[i].prefix,
                pipe_conf_format_duration(w->ttl[sweep_rules[i].ttl], d, sizeof d), n[i].old,
                n[i].deleted + n[i].companions, n[i].bytes, n[i].kept, n[i].errors);
}

int ctl_sweep_main(int argc, char **argv)
{
    struct sweep_cfg cfg = {0};
    struct sweep w = {.cfg = &cfg};
    struct sweep_count counts[SWEEP_NRULES] = {{0}};
    pipe_buf_init(&w.a, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&w.b, PIPE_STORE_KEY_MAX);
    int first_arg, exit_code = CTL_EXIT_USAGE;
    int rc = pipe_conf_load(&sweep_program, &cfg, argc, argv, &first_arg);
    if (rc < 0) {
        exit_code = ctl_exit_from_conf(rc);
        goto out;
    }
    if (first_arg < argc) {
        fprintf(stderr, "sluicectl sweep: unexpected argument \"%s\"\n", argv[first_arg]);
        goto out;
    }
    if (sweep_retention(&w) < 0)
        goto out;
    exit_code = CTL_EXIT_FAIL;
    rc = pipe_store_open(cfg.store, &w.s);
    if (rc < 0) {
        const char *why = pipe_store_last_error(NULL);
        fprintf(stderr, "sluicectl sweep: cannot open the store: %s\n",
                why[0] ? why : pipe_strerror(rc));
        goto out;
    }
    if (!pipe_store_has(w.s, PIPE_STORE_CAP_MTIME)) {
        fprintf(stderr, "sluicectl sweep: the store keeps no mtimes; nothing can be aged\n");
        goto out;
    }
    w.now_ms = pipe_clock_now_ms();
    w.progress = isatty(STDERR_FILENO) == 1;
    bool failed = false;
    for (size_t i = 0; i < SWEEP_NRULES; i++) {
        sweep_rule_run(&w, &sweep_rules[i], &counts[i]);
        failed |= counts[i].errors > 0;
    }
    sweep_clear_progress(&w);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("sluicectl sweep: stdout");
        goto out;
    }
    sweep_summary(&w, counts);
    if (!failed)
        exit_code = CTL_EXIT_OK;
out:
    pipe_store_free(w.s);
    pipe_buf_cleanup(&w.b);
    pipe_buf_cleanup(&w.a);
    pipe_conf_cleanup(&sweep_program, &cfg);
    return exit_code;
}
