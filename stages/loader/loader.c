/* loader — the loader stage, run as `sluicectl load --warehouse
 * postgres://...` (loader.h says why it has no program of its own): loads
 * the split files listed in manifests/split/ into one PostgreSQL table per
 * event type, each file exactly once.
 *
 * Each file loads in one transaction that also records it in the
 * load-history table, so a loader killed mid-file leaves nothing behind and
 * loads the file again, whole, on restart; a file already in the history is
 * skipped. Rows are de-duplicated on `id` (ON CONFLICT DO NOTHING) as the
 * last line of defence. It runs on the stage runtime: by default it loads
 * what is pending and exits with a summary; with --follow it keeps polling
 * and serves /metrics (files waiting, age of the newest loaded event). */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/manifest.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/stage.h"
#include "libpipe/store.h"
#include "stages/loader/loader.h"

#define LOAD_PAGE     1000
#define LOAD_DOC_MAX  (64u << 20)   /* largest manifest read */
#define LOAD_FILE_MAX (1024u << 20) /* largest split file, uncompressed */

struct load_cfg {
    struct pipe_stage_common common; /* first: the runtime reads it */
    char *warehouse;
    char *schemas;
    char *from;
    char *to;
};

#define OPT(f) offsetof(struct load_cfg, f)
static const struct pipe_conf_opt load_opts[] = {
    {"warehouse", PIPE_CONF_STR, NULL, OPT(warehouse),
     "PostgreSQL connection URL (required): postgres://user@host:port/db", 0, 0, "URL"},
    {"schemas", PIPE_CONF_STR, NULL, OPT(schemas),
     "schema directory: declared top-level fields become typed columns", 0, 0, "DIR"},
    {"from", PIPE_CONF_STR, NULL, OPT(from), "load only jobs of hours at or after TIME", 0, 0,
     "TIME"},
    {"to", PIPE_CONF_STR, NULL, OPT(to), "load only jobs of hours before TIME", 0, 0, "TIME"},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

struct load_totals {
    uint64_t manifests, files, skipped, rows, inserted, failed;
};

struct load {
    struct load_cfg *cfg;
    struct pipe_store *store;
    struct loader_pg *wh;
    int64_t from_ms, to_ms; /* job hours in [from, to) */
    bool progress;          /* a terminal: show progress on stderr */
    struct load_totals t;
    struct pipe_buf doc, raw, lines;
    /* Metrics (the last two read at scrape time). */
    struct pipe_counter *m_files, *m_rows, *m_dups, *m_errors;
    _Atomic int64_t newest_ms; /* received_at of the newest loaded event */
    _Atomic uint64_t waiting;  /* split files this pass found not loaded, less those loaded since */
};

static double newest_age_s(void *arg)
{
    struct load *l = arg;
    int64_t n = l->newest_ms;
    return n > 0 ? (double)(pipe_clock_now_ms() - n) / 1000.0 : 0.0;
}

static double files_waiting(void *arg)
{
    struct load *l = arg;
    return (double)l->waiting;
}

#define LOAD_METRIC(kind, field, name, help) PIPE_METRIC(kind, struct load, field, name, help)

static const struct pipe_metric_def load_metric_defs[] = {
    LOAD_METRIC(COUNTER, m_files, "sluice_loader_files_loaded_total",
                "split files loaded into the warehouse"),
    LOAD_METRIC(COUNTER, m_rows, "sluice_loader_rows_loaded_total",
                "rows inserted into event tables"),
    LOAD_METRIC(COUNTER, m_dups, "sluice_loader_rows_duplicate_total",
                "rows skipped because their id was already loaded"),
    LOAD_METRIC(COUNTER, m_errors, "sluice_loader_file_errors_total",
                "split files whose load failed (retried next pass)"),
    PIPE_METRIC_FN("sluice_loader_newest_event_age_seconds", newest_age_s,
                   "age of the newest event loaded (received_at), 0 before the first"),
    PIPE_METRIC_FN("sluice_loader_files_waiting", files_waiting,
                   "split files listed in manifests but not yet loaded"),
    {0},
};

/* ---- one manifest --------------------------------------------------------- */

/* Reads and decompresses one split file into l->lines. */
static int read_file(struct load *l, const char *key)
{
    pipe_buf_reset(&l->raw);
    pipe_buf_reset(&l->lines);
    int rc = pipe_store_get(l->store, key, &l->raw);
    if (rc == 0)
        rc = pipe_codec_decompress(l->raw.data, l->raw.len, &l->lines);
    if (rc < 0)
        pipe_log_error("split file unreadable", "key=%s err=\"%s\" detail=\"%s\"", key,
                       pipe_strerror(rc), pipe_store_last_error(l->store));
    return rc;
}

static void show_progress(const struct load *l)
{
    if (l->progress)
        fprintf(stderr, "\rloaded %" PRIu64 " files, %" PRIu64 " rows (%" PRIu64 " already there)",
                l->t.files, l->t.inserted, l->t.skipped);
}

/* ---- a pass over manifests/split/ ---------------------------------------- */

/* A split file that the history does not list yet, from its manifest. */
struct pending {
    char *key, *job_id, *event;
    uint64_t rows;
};

/* A pass first gathers what waits (for /metrics and the progress line),
 * reading each manifest once, then loads it. */
struct pass {
    struct load *l;
    struct pending *v;
    size_t n, cap;
};

static int gather_one(void *arg, const struct pipe_store_obj *o)
{
    struct pass *p = arg;
    struct load *l = p->l;
    char id[256];
    int64_t hour_ms;
    if (!pipe_keys_job_of(o->key, "manifests/split/", id) || !pipe_keys_job_hour(id, &hour_ms))
        return 0;
    if (hour_ms < l->from_ms || hour_ms >= l->to_ms)
        return 0;
    pipe_buf_reset(&l->doc);
    int rc = pipe_store_get(l->store, o->key, &l->doc);
    if (rc == PIPE_ENOTFOUND)
        return 0; /* swept since the listing */
    if (rc < 0)
        return rc;
    struct pipe_manifest_split m;
    pipe_manifest_split_init(&m);
    if (pipe_manifest_split_from_json(l->doc.data, l->doc.len, &m) < 0) {
        pipe_log_warn("split manifest unreadable, skipped", "key=%s", o->key);
        return 0;
    }
    l->t.manifests++;
    for (size_t i = 0; i < m.n_outputs && rc == 0; i++) {
        bool loaded;
        rc = loader_pg_is_loaded(l->wh, m.outputs[i].key, &loaded);
        if (rc < 0 || loaded) {
            l->t.skipped += rc == 0;
            continue;
        }
        if (p->n == p->cap) {
            p->cap = p->cap ? 2 * p->cap : 64;
            p->v = pipe_realloc(p->v, p->cap * sizeof *p->v);
        }
        p->v[p->n++] = (struct pending){pipe_strdup(m.outputs[i].key), pipe_strdup(m.job_id),
                                        pipe_strdup(m.outputs[i].event), m.outputs[i].rows};
    }
    pipe_manifest_split_cleanup(&m);
    return rc;
}

/* Loads one waiting file. A warehouse that went away is returned (retry the
 * pass); a file that fails on its own is logged, counted and left for the
 * next pass. */
static int load_one(struct load *l, const struct pending *w)
{
    if (read_file(l, w->key) < 0) {
        l->t.failed++;
        pipe_counter_inc(l->m_errors);
        return 0;
    }
    struct loader_pg_file f = {
        .key = w->key,
        .job_id = w->job_id,
        .event = w->event,
        .rows = w->rows,
        .data = l->lines.data,
        .len = l->lines.len,
    };
    struct loader_pg_result res;
    int rc = loader_pg_load_file(l->wh, &f, &res);
    if (rc == PIPE_EUNAVAIL)
        return rc;
    if (rc < 0) {
        l->t.failed++;
        pipe_counter_inc(l->m_errors);
        return 0;
    }
    if (res.already) { /* another loader was quicker */
        l->t.skipped++;
    } else {
        l->t.files++;
        l->t.rows += w->rows;
        l->t.inserted += res.inserted;
        pipe_counter_inc(l->m_files);
        pipe_counter_add(l->m_rows, res.inserted);
        pipe_counter_add(l->m_dups, w->rows - res.inserted);
        if (res.newest_ms > l->newest_ms)
            l->newest_ms = res.newest_ms;
    }
    l->waiting--;
    show_progress(l);
    return 0;
}

/* One pass loads everything listed, so the next is due at the next poll;
 * with --once, files that failed make the run fail. */
static enum pipe_stage_status load_process(struct pipe_stage *st, void *state)
{
    struct load *l = state;
    struct pass p = {.l = l};
    int rc = pipe_store_walk(l->store, "manifests/split/", NULL, LOAD_PAGE, gather_one, &p);
    if (rc == 0)
        l->waiting = p.n;
    for (size_t i = 0; i < p.n && rc == 0 && !pipe_stage_stopping(st); i++)
        rc = load_one(l, &p.v[i]);
    for (size_t i = 0; i < p.n; i++) {
        pipe_free(p.v[i].key);
        pipe_free(p.v[i].job_id);
        pipe_free(p.v[i].event);
    }
    pipe_free(p.v);
    if (l->progress && l->t.files + l->t.skipped > 0)
        fputc('\n', stderr);
    if (rc < 0) {
        pipe_log_warn("load pass failed, will retry", "err=\"%s\" detail=\"%s\"", pipe_strerror(rc),
                      rc == PIPE_EUNAVAIL ? loader_pg_last_error(l->wh) : "");
        return PIPE_STAGE_RETRY;
    }
    if (pipe_stage_common(st)->once && l->t.failed > 0)
        return PIPE_STAGE_FAIL;
    return PIPE_STAGE_IDLE;
}

/* ---- lifecycle -------------------------------------------------------------- */

static int load_validate(void *cfg, char *err, size_t errlen)
{
    struct load_cfg *c = cfg;
    if (!c->warehouse || !*c->warehouse) {
        snprintf(err, errlen, "--warehouse is required (postgres://user@host:port/db)");
        return PIPE_ECONFIG;
    }
    int64_t ms;
    if (c->from && pipe_clock_parse_time(c->from, pipe_clock_now_ms(), &ms) < 0) {
        snprintf(err, errlen, "--from: not a time: %s", c->from);
        return PIPE_ECONFIG;
    }
    if (c->to && pipe_clock_parse_time(c->to, pipe_clock_now_ms(), &ms) < 0) {
        snprintf(err, errlen, "--to: not a time: %s", c->to);
        return PIPE_ECONFIG;
    }
    return 0;
}

/* Releases what load_init set up; for a failed start as well as at exit. */
static void load_free(struct load *l)
{
    loader_pg_free(l->wh);
    pipe_buf_cleanup(&l->doc);
    pipe_buf_cleanup(&l->raw);
    pipe_buf_cleanup(&l->lines);
    pipe_free(l);
}

static int load_init(struct pipe_stage *st, void *cfg, void **state)
{
    struct load_cfg *c = cfg;
    struct load *l = pipe_calloc(1, sizeof *l);
    l->cfg = c;
    l->store = pipe_stage_store(st);
    l->from_ms = INT64_MIN;
    l->to_ms = INT64_MAX;
    int64_t now = pipe_clock_now_ms();
    if (c->from) {
        pipe_clock_parse_time(c->from, now, &l->from_ms);
        l->from_ms = pipe_clock_hour_floor(l->from_ms);
    }
    if (c->to)
        pipe_clock_parse_time(c->to, now, &l->to_ms);
    l->progress = pipe_stage_common(st)->once && isatty(STDERR_FILENO) == 1;
    pipe_buf_init(&l->doc, LOAD_DOC_MAX);
    pipe_buf_init(&l->raw, LOAD_FILE_MAX);
    pipe_buf_init(&l->lines, LOAD_FILE_MAX);
    int rc = loader_pg_open(c->warehouse, c->schemas, &l->wh);
    if (rc < 0) {
        pipe_log_error("warehouse unusable", "err=\"%s\"", loader_pg_last_error(NULL));
        fprintf(stderr, "sluicectl load: %s\n", loader_pg_last_error(NULL));
        load_free(l);
        return rc;
    }
    int64_t newest = 0;
    if (loader_pg_newest(l->wh, &newest) == 0) /* freshness survives restarts */
        l->newest_ms = newest;
    pipe_metrics_register_table(pipe_stage_metrics(st), load_metric_defs, l, l);
    *state = l;
    return 0;
}

static void load_exit(struct pipe_stage *st, void *state)
{
    struct load *l = state;
    if (pipe_stage_common(st)->once)
        printf("loaded %" PRIu64 " files (%" PRIu64 " rows, %" PRIu64 " inserted, %" PRIu64
               " skipped as duplicates) from %" PRIu64 " manifests; %" PRIu64
               " files were already loaded; %" PRIu64 " failed\n",
               l->t.files, l->t.rows, l->t.inserted, l->t.rows - l->t.inserted, l->t.manifests,
               l->t.skipped, l->t.failed);
    load_free(l);
}

static const struct pipe_stage_desc load_stage = {
    .name = "loader",
    .program = "sluicectl load", /* its section in a config file, too */
    .summary = "Loads the split files listed in manifests/split/ into PostgreSQL, one table per "
               "event type (created or extended from the schemas when given), each file exactly "
               "once: a file and its load-history row commit in one transaction, and rows are "
               "de-duplicated on id. Loads what is pending and exits with a summary; with "
               "--follow it keeps polling and serves /metrics on --admin.",
    .opts = load_opts,
    .cfg_size = sizeof(struct load_cfg),
    .validate = load_validate,
    .init = load_init,
    .process = load_process,
    .exit = load_exit,
};

int loader_main(int argc, char **argv)
{
    /* One-shot unless --follow: the runtime's --once, without an admin port. */
    char **args = pipe_calloc((size_t)argc + 3, sizeof *args);
    int n = 0;
    bool follow = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--follow") == 0)
            follow = true;
        else
            args[n++] = argv[i];
    }
    if (!follow) {
        args[n++] = "--once";
        args[n++] = "--admin=off";
    }
    int rc = pipe_stage_main(&load_stage, n, args);
    pipe_free(args);
    return rc;
}
