/* retention — the sweep core: one rule per prefix, run in pipeline order,
 * each a walk of its prefix plus a "consumed?" check and the companion
 * object that goes after the object itself. Output is the caller's business
 * (callbacks); see retention.h and docs/compaction.md, "Operations". */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/retention.h"
#include "libpipe/store.h"

#define RET_PROGRESS_EVERY 100 /* objects between progress calls */

static const char *const class_names[PIPE_RET__COUNT] = {
    "raw", "filtered", "rejected", "combined", "split", "dedup",
};

#define RET_MIN_GUARDED_MS PIPE_HOUR_MS /* filtered/ and combined/: a stage may lag */

struct sweep;

/* The consumed check of a rule: 1 consumed (companion, if not empty, is
 * deleted after the object), 0 not yet, < 0 an error. */
typedef int (*sweep_check_fn)(struct sweep *w, const struct pipe_store_obj *o,
                              struct pipe_buf *companion);

struct sweep_rule {
    const char *prefix;
    enum pipe_retention_class ttl;
    sweep_check_fn check; /* NULL: by age alone */
    const char *companion;
};

struct sweep {
    struct pipe_store *s;
    const struct pipe_retention_config *c;
    const struct pipe_retention_callbacks *cb;
    int64_t now_ms;
    bool dry_run;
    size_t rule;                    /* index of the rule being run */
    struct pipe_retention_count *n; /* its counts */
    uint64_t listed, since_progress;
    int first_error;
    struct pipe_buf a, b, companion; /* scratch keys */
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
static int check_raw(struct sweep *w, const struct pipe_store_obj *o, struct pipe_buf *companion)
{
    (void)companion;
    int rc = pipe_keys_raw_name(&w->a, w->c->generation, o->key, o->etag);
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
static int check_filtered(struct sweep *w, const struct pipe_store_obj *o,
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
static int check_combined(struct sweep *w, const struct pipe_store_obj *o,
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

/* state/dedup/dt=D/hr=H/J.idx: old by mtime is not enough, its hour must be
 * out of the window too. The splitter counts claims by their hour, and an
 * index written early for a late hour (events partitioned by `ts`) still
 * guards that hour. A key of another form goes by age alone. */
static int check_dedup(struct sweep *w, const struct pipe_store_obj *o, struct pipe_buf *companion)
{
    (void)companion;
    int y, mon, d, h, used = 0;
    const char *rest = o->key + strlen("state/dedup/");
    if (sscanf(rest, "dt=%4d-%2d-%2d/hr=%2d/%n", &y, &mon, &d, &h, &used) != 4 || used == 0)
        return 1;
    int64_t hour_ms = pipe_clock_from_civil(y, mon, d, h, 0, 0, 0);
    return hour_ms + PIPE_HOUR_MS <= w->now_ms - w->c->ttl_ms[PIPE_RET_DEDUP];
}

/* In pipeline order, so that an object's consumer record is still there
 * when the object is looked at (raw/ before filtered/, combined/ before
 * manifests/split/), and a split manifest goes before its outputs. */
static const struct sweep_rule rules[PIPE_RETENTION_NRULES] = {
    {"raw/", PIPE_RET_RAW, check_raw, NULL},
    {"filtered/", PIPE_RET_FILTERED, check_filtered, "state/combine/"},
    {"rejected/", PIPE_RET_REJECTED, NULL, NULL},
    {"combined/", PIPE_RET_COMBINED, check_combined, "manifests/combined/"},
    {"manifests/split/", PIPE_RET_SPLIT, NULL, NULL},
    {"split/", PIPE_RET_SPLIT, NULL, NULL},
    {"state/dedup/", PIPE_RET_DEDUP, check_dedup, NULL},
};

/* ---- the walk ------------------------------------------------------------- */

static void sweep_fail(struct sweep *w, const char *what, const char *key, int rc)
{
    w->n->errors++;
    if (w->first_error == 0)
        w->first_error = rc;
    if (w->cb && w->cb->error)
        w->cb->error(w->cb->arg, what, key, rc, pipe_store_last_error(w->s));
}

static int sweep_delete(struct sweep *w, const char *key, bool companion)
{
    int rc = w->dry_run ? 0 : pipe_store_delete(w->s, key);
    if (rc < 0)
        sweep_fail(w, "cannot delete", key, rc);
    else if (w->cb && w->cb->deleted)
        w->cb->deleted(w->cb->arg, w->rule, key, companion);
    return rc;
}

static void sweep_one(struct sweep *w, const struct pipe_store_obj *o)
{
    const struct sweep_rule *rule = &rules[w->rule];
    if (o->mtime_ms > w->now_ms - w->c->ttl_ms[rule->ttl])
        return;
    w->n->old++;
    pipe_buf_reset(&w->companion);
    if (rule->check != NULL) {
        int rc = rule->check(w, o, &w->companion);
        if (rc < 0) {
            sweep_fail(w, "cannot tell whether it is consumed:", o->key, rc);
            return;
        }
        if (rc == 0) {
            w->n->kept++;
            return;
        }
    }
    if (sweep_delete(w, o->key, false) < 0)
        return;
    w->n->deleted++;
    w->n->bytes += o->size;
    /* Only now: a companion deleted first would leave a consumed object
     * looking unconsumed (a filtered object without its marker is combined
     * again). */
    if (w->companion.len > 0) {
        int rc = sweep_exists(w, w->companion.data);
        if (rc < 0)
            sweep_fail(w, "cannot stat", w->companion.data, rc);
        else if (rc == 1 && sweep_delete(w, w->companion.data, true) == 0)
            w->n->companions++;
    }
}

static int sweep_progress(struct sweep *w)
{
    w->since_progress = 0;
    if (w->cb && w->cb->progress)
        return w->cb->progress(w->cb->arg, w->rule, w->listed);
    return 0;
}

/* The walk callback. Deleting keys at or before the walk's marker does not
 * disturb the listing. */
static int sweep_visit(void *arg, const struct pipe_store_obj *o)
{
    struct sweep *w = arg;
    w->listed++;
    sweep_one(w, o);
    if (++w->since_progress >= RET_PROGRESS_EVERY)
        return sweep_progress(w);
    return 0;
}

/* Runs rule i; non-zero only when the progress callback stopped it. */
static int sweep_rule_run(struct sweep *w, size_t i, struct pipe_retention_count *n)
{
    w->rule = i;
    w->n = n;
    int rc = pipe_store_walk(w->s, rules[i].prefix, NULL, w->c->page_keys, sweep_visit, w);
    if (rc < 0) {
        sweep_fail(w, "cannot list", rules[i].prefix, rc);
        rc = 0;
    }
    if (rc == 0)
        rc = sweep_progress(w);
    return rc;
}

int pipe_retention_sweep(struct pipe_store *s, const struct pipe_retention_config *c,
                         int64_t now_ms, bool dry_run, const struct pipe_retention_callbacks *cb,
                         struct pipe_retention_counts *out)
{
    struct pipe_retention_counts counts;
    memset(&counts, 0, sizeof counts);
    if (!pipe_store_has(s, PIPE_STORE_CAP_MTIME)) {
        if (out)
            *out = counts;
        return PIPE_EINVAL;
    }
    struct sweep w = {.s = s, .c = c, .cb = cb, .now_ms = now_ms, .dry_run = dry_run};
    pipe_buf_init(&w.a, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&w.b, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&w.companion, PIPE_STORE_KEY_MAX);
    int rc = 0;
    if (!dry_run) /* a sweep reads the tree anyway: clear what killed puts left */
        pipe_store_tidy(s);
    for (size_t i = 0; i < PIPE_RETENTION_NRULES && rc == 0; i++)
        rc = sweep_rule_run(&w, i, &counts.rule[i]);
    if (rc == 0)
        rc = w.first_error;
    pipe_buf_cleanup(&w.companion);
    pipe_buf_cleanup(&w.b);
    pipe_buf_cleanup(&w.a);
    if (out)
        *out = counts;
    return rc;
}

/* ---- configuration -------------------------------------------------------- */

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* The replay horizon: how old an input a replay can still find. */
static int64_t replay_horizon(const struct pipe_retention_config *c, const char **which)
{
    bool comb = c->ttl_ms[PIPE_RET_COMBINED] >= c->ttl_ms[PIPE_RET_FILTERED];
    *which = comb ? "combined" : "filtered";
    return c->ttl_ms[comb ? PIPE_RET_COMBINED : PIPE_RET_FILTERED];
}

/* derive_dedup — state/dedup/ kept for the window and the replay horizon,
 * unless "dedup" was given. */
static void derive_dedup(struct pipe_retention_config *c)
{
    const char *which;
    if (!c->dedup_set)
        c->ttl_ms[PIPE_RET_DEDUP] = max64(c->dedup_window_ms, replay_horizon(c, &which));
}

void pipe_retention_config_init(struct pipe_retention_config *c, unsigned generation,
                                int64_t dedup_window_ms)
{
    memset(c, 0, sizeof *c);
    c->ttl_ms[PIPE_RET_RAW] = 7 * PIPE_DAY_MS;
    c->ttl_ms[PIPE_RET_FILTERED] = 7 * PIPE_DAY_MS;
    c->ttl_ms[PIPE_RET_REJECTED] = 30 * PIPE_DAY_MS;
    c->ttl_ms[PIPE_RET_COMBINED] = 30 * PIPE_DAY_MS;
    c->ttl_ms[PIPE_RET_SPLIT] = 90 * PIPE_DAY_MS;
    c->dedup_window_ms = dedup_window_ms;
    c->generation = generation;
    derive_dedup(c);
}

int pipe_retention_config_parse(struct pipe_retention_config *c, const struct json_t *j, char *err,
                                size_t errlen)
{
    if (j == NULL)
        return 0;
    if (!json_is_object(j)) {
        snprintf(err, errlen, "retention must be a JSON object such as {\"filtered\":\"3d\"}");
        return PIPE_ECONFIG;
    }
    int64_t ttl[PIPE_RET__COUNT];
    bool dedup_set = c->dedup_set;
    memcpy(ttl, c->ttl_ms, sizeof ttl);
    const char *k;
    json_t *v;
    /* json_object_foreach takes a non-const object; it does not modify it. */
    json_object_foreach ((json_t *)j, k, v) {
        int i = 0;
        while (i < PIPE_RET__COUNT && strcmp(class_names[i], k) != 0)
            i++;
        if (i == PIPE_RET__COUNT) {
            snprintf(err, errlen,
                     "retention: unknown prefix \"%s\" (raw, filtered, rejected, combined, "
                     "split, dedup)",
                     k);
            return PIPE_ECONFIG;
        }
        dedup_set = dedup_set || i == PIPE_RET_DEDUP;
        int64_t ms;
        if (!json_is_string(v) || pipe_conf_parse_duration(json_string_value(v), &ms) < 0 ||
            ms <= 0) {
            snprintf(err, errlen,
                     "retention: \"%s\" needs a positive duration such as \"7d\" or \"36h\"", k);
            return PIPE_ECONFIG;
        }
        ttl[i] = ms;
    }
    memcpy(c->ttl_ms, ttl, sizeof ttl);
    c->dedup_set = dedup_set;
    derive_dedup(c);
    return 0;
}

int pipe_retention_config_check(const struct pipe_retention_config *c, char *err, size_t errlen)
{
    char a[32], b[32];
    static const enum pipe_retention_class guarded[] = {PIPE_RET_FILTERED, PIPE_RET_COMBINED};
    for (size_t i = 0; i < 2; i++) {
        if (c->ttl_ms[guarded[i]] < RET_MIN_GUARDED_MS) {
            snprintf(err, errlen,
                     "retention for %s/ is %s: at least 1h is required, a shorter one could "
                     "sweep objects while a stage lags",
                     class_names[guarded[i]],
                     pipe_conf_format_duration(c->ttl_ms[guarded[i]], a, sizeof a));
            return PIPE_ECONFIG;
        }
    }
    int64_t dedup = c->ttl_ms[PIPE_RET_DEDUP];
    if (dedup < c->dedup_window_ms) {
        snprintf(err, errlen,
                 "retention.dedup (%s) is shorter than dedup_window (%s): the sweep would delete "
                 "state/dedup/ index objects the splitters still check, letting duplicates "
                 "through",
                 pipe_conf_format_duration(dedup, a, sizeof a),
                 pipe_conf_format_duration(c->dedup_window_ms, b, sizeof b));
        return PIPE_ECONFIG;
    }
    const char *which;
    int64_t horizon = replay_horizon(c, &which);
    if (dedup < horizon) {
        snprintf(err, errlen,
                 "retention.dedup (%s) is shorter than the replay horizon, retention.%s (%s): a "
                 "replay of an hour whose state/dedup/ index objects were swept would put its "
                 "events in split/ twice",
                 pipe_conf_format_duration(dedup, a, sizeof a), which,
                 pipe_conf_format_duration(horizon, b, sizeof b));
        return PIPE_ECONFIG;
    }
    return 0;
}

size_t pipe_retention_config_warnings(const struct pipe_retention_config *c, const char **msgs,
                                      size_t max)
{
    /* Consumption is proved by the next prefix's objects: when those go
     * first, the earlier objects can never be proved consumed. */
    size_t n = 0;
    if (c->ttl_ms[PIPE_RET_RAW] > c->ttl_ms[PIPE_RET_FILTERED]) {
        if (n < max)
            msgs[n] =
                "raw/ outlives filtered/: raw objects whose filtered output is swept are kept";
        n++;
    }
    if (c->ttl_ms[PIPE_RET_COMBINED] > c->ttl_ms[PIPE_RET_SPLIT]) {
        if (n < max)
            msgs[n] = "combined/ outlives split/: combined objects whose split manifest is swept "
                      "are kept";
        n++;
    }
    return n;
}

const char *pipe_retention_rule_prefix(size_t i)
{
    return i < PIPE_RETENTION_NRULES ? rules[i].prefix : NULL;
}

const char *pipe_retention_rule_companion(size_t i)
{
    return i < PIPE_RETENTION_NRULES ? rules[i].companion : NULL;
}

int64_t pipe_retention_rule_ttl(const struct pipe_retention_config *c, size_t i)
{
    return i < PIPE_RETENTION_NRULES ? c->ttl_ms[rules[i].ttl] : 0;
}
