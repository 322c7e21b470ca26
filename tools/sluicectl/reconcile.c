/* reconcile — `sluicectl reconcile --from T --to T`: checks the conservation
 * ledgers of every combined and split manifest of the jobs of an hour range,
 * that the combined manifests' inputs are exactly the filtered/ objects of
 * those hours, and that each job's split rows + duplicates + rejected equal
 * its combined events; prints the events split per event type and hour and
 * every difference found. With --warehouse it also compares every split file
 * with what the PostgreSQL load history and event tables hold, and names the
 * files that differ. The manifests of the range are held in memory. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/manifest.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"
#include "tools/sluicectl/ctl.h"
#include "stages/loader/loader.h"

#define REC_PAGE    1000
#define REC_DOC_MAX (64u << 20) /* largest manifest read */

struct rec_cfg {
    char *store;
    char *from;
    char *to;
    char *warehouse;
};

static const struct pipe_conf_opt rec_opts[] = {
    {"store", PIPE_CONF_STR, "file://./sluice-data", offsetof(struct rec_cfg, store),
     "object store URL: file:///path or s3://bucket[/prefix]?endpoint=..", 0, 0, "URL"},
    {"from", PIPE_CONF_STR, NULL, offsetof(struct rec_cfg, from),
     "start of the range (required): RFC 3339, YYYY-MM-DD, YYYY-MM-DDTHH, epoch ms, -2h", 0, 0,
     "TIME"},
    {"to", PIPE_CONF_STR, "now", offsetof(struct rec_cfg, to), "end of the range (exclusive)", 0, 0,
     "TIME"},
    {"warehouse", PIPE_CONF_STR, NULL, offsetof(struct rec_cfg, warehouse),
     "also compare every split file with the rows `sluicectl load` put in this PostgreSQL", 0, 0,
     "URL"},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program rec_program = {
    .name = "sluicectl reconcile",
    .summary =
        "Checks the jobs of the hours in [--from, --to) (an hour is in range when it starts at "
        "or after the hour holding --from and before --to): every combined and split manifest's "
        "ledger balances; the inputs of the combined manifests are exactly the filtered/ "
        "objects of those hours (inputs already swept are not differences); each combined "
        "object and split output exists with the recorded size; each job's split rows + "
        "duplicates + rejected equal its combined events. With --warehouse, each split file "
        "is loaded with its manifest's row count and its table holds that many rows from it. "
        "Prints the rows split (and loaded) per event type and hour, then every difference; "
        "exit 1 if there is any.",
    .usage_args = NULL,
    .version = SLUICE_VERSION,
    .tables = {rec_opts, NULL},
};

/* A combine job of the range, from its manifest. */
struct rec_job {
    char *id;
    uint64_t events;
    bool split; /* a split manifest was seen */
};

/* An input of a combined manifest. */
struct rec_input {
    char *key;
    uint64_t size;
    size_t job;    /* index into jobs */
    unsigned seen; /* times it was listed under filtered/ (0 or 1) */
};

/* Rows of one split output, folded per (event, dt, hr) for the report. */
struct rec_rows {
    char *event;
    char dt[11], hr[3];
    uint64_t rows;
    uint64_t loaded; /* rows of the warehouse table from this file */
};

struct rec {
    struct pipe_store *s;
    int64_t from_ms, to_ms;
    struct rec_job *jobs;
    struct rec_job **by_id; /* jobs sorted by id */
    size_t n_jobs, cap_jobs;
    struct rec_input *inputs;
    size_t n_inputs, cap_inputs;
    struct rec_rows *rows;
    size_t n_rows, cap_rows;
    uint64_t diffs, filtered_seen, split_jobs;
    struct pipe_buf doc, key;
    struct loader_pg *wh; /* with --warehouse */
    int wh_rc;            /* the first warehouse failure: the report is incomplete */
};

typedef int (*rec_fn)(struct rec *r, const struct pipe_store_obj *o);

static void rec_diff(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rec_diff(struct rec *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("difference: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    r->diffs++;
}

static bool rec_in_range(const struct rec *r, int64_t hour_ms)
{
    return hour_ms >= r->from_ms && hour_ms < r->to_ms;
}

struct rec_walk {
    struct rec *r;
    rec_fn fn;
};

static int rec_walk_one(void *arg, const struct pipe_store_obj *o)
{
    struct rec_walk *w = arg;
    return w->fn(w->r, o);
}

static int rec_walk(struct rec *r, const char *prefix, rec_fn fn)
{
    struct rec_walk w = {r, fn};
    int rc = pipe_store_walk(r->s, prefix, NULL, REC_PAGE, rec_walk_one, &w);
    if (rc < 0) {
        const char *why = pipe_store_last_error(r->s);
        fprintf(stderr, "sluicectl reconcile: %s: %s\n", prefix, why[0] ? why : pipe_strerror(rc));
    }
    return rc;
}

/* Reads key into r->doc; a failure is a difference (the manifest was
 * listed a moment ago). */
static bool rec_read(struct rec *r, const char *key)
{
    pipe_buf_reset(&r->doc);
    int rc = pipe_store_get(r->s, key, &r->doc);
    if (rc < 0) {
        const char *why = pipe_store_last_error(r->s);
        rec_diff(r, "%s cannot be read: %s", key, why[0] ? why : pipe_strerror(rc));
        return false;
    }
    return true;
}

/* The object at key exists with size bytes; else a difference. */
static void rec_check_object(struct rec *r, const char *job, const char *key, uint64_t size)
{
    struct pipe_store_obj st;
    int rc = pipe_store_stat(r->s, key, &st);
    if (rc == PIPE_ENOTFOUND)
        rec_diff(r, "job %s: %s is missing", job, key);
    else if (rc < 0)
        rec_diff(r, "job %s: cannot stat %s: %s", job, key, pipe_strerror(rc));
    else if (st.size != size)
        rec_diff(r, "job %s: %s has %" PRIu64 " bytes, the manifest says %" PRIu64, job, key,
                 st.size, size);
}

static void rec_ledger(struct rec *r, const char *kind, const char *job,
                       const struct pipe_ledger *l)
{
    if (!pipe_ledger_balanced(l))
        rec_diff(r,
                 "job %s: %s ledger does not balance: in %" PRIu64 " != out %" PRIu64
                 " + rejected %" PRIu64 " + duplicates %" PRIu64,
                 job, kind, l->in, l->out, l->rejected, l->duplicates);
}

/* ---- combined manifests --------------------------------------------------- */

static void rec_combined_checks(struct rec *r, const struct pipe_manifest_combined *m, int64_t hour)
{
    rec_ledger(r, "combined", m->job_id, &m->ledger);
    uint64_t sum = 0;
    for (size_t i = 0; i < m->n_inputs; i++) {
        struct pipe_key_parts p;
        sum += m->inputs[i].events;
        if (pipe_keys_parse(m->inputs[i].key, &p) < 0 || strcmp(p.prefix, "filtered") != 0 ||
            p.hour_ms != hour)
            rec_diff(r, "job %s: input %s is not a filtered/ object of the job's hour", m->job_id,
                     m->inputs[i].key);
    }
    if (sum != m->ledger.in)
        rec_diff(r, "job %s: inputs hold %" PRIu64 " events, the ledger says %" PRIu64 " in",
                 m->job_id, sum, m->ledger.in);
    if (m->events != m->ledger.out)
        rec_diff(r, "job %s: %" PRIu64 " events written, the ledger says %" PRIu64 " out",
                 m->job_id, m->events, m->ledger.out);
    rec_check_object(r, m->job_id, m->output_key, m->bytes);
}

static int rec_combined_one(struct rec *r, const struct pipe_store_obj *o)
{
    char id[PIPE_KEYS_NAME_MAX + 1];
    int64_t hour;
    if (!pipe_keys_job_of(o->key, "manifests/combined/", id) || !pipe_keys_job_hour(id, &hour) ||
        !rec_in_range(r, hour) || !rec_read(r, o->key))
        return 0;
    struct pipe_manifest_combined m;
    pipe_manifest_combined_init(&m);
    if (pipe_manifest_combined_from_json(r->doc.data, r->doc.len, &m) < 0 ||
        strcmp(m.job_id, id) != 0) {
        rec_diff(r, "%s is not a valid combined manifest of job %s", o->key, id);
        goto out;
    }
    rec_combined_checks(r, &m, hour);
    if (r->n_jobs == r->cap_jobs) {
        r->cap_jobs = r->cap_jobs ? 2 * r->cap_jobs : 64;
        r->jobs = pipe_realloc(r->jobs, r->cap_jobs * sizeof *r->jobs);
    }
    r->jobs[r->n_jobs] = (struct rec_job){.id = pipe_strdup(id), .events = m.events};
    for (size_t i = 0; i < m.n_inputs; i++) {
        if (r->n_inputs == r->cap_inputs) {
            r->cap_inputs = r->cap_inputs ? 2 * r->cap_inputs : 256;
            r->inputs = pipe_realloc(r->inputs, r->cap_inputs * sizeof *r->inputs);
        }
        r->inputs[r->n_inputs++] = (struct rec_input){
            .key = pipe_strdup(m.inputs[i].key), .size = m.inputs[i].size, .job = r->n_jobs};
    }
    r->n_jobs++;
out:
    pipe_manifest_combined_cleanup(&m);
    return 0;
}

/* ---- filtered objects ------------------------------------------------------ */

static int rec_input_cmp(const void *a, const void *b)
{
    return strcmp(((const struct rec_input *)a)->key, ((const struct rec_input *)b)->key);
}

static int rec_filtered_one(struct rec *r, const struct pipe_store_obj *o)
{
    struct pipe_key_parts p;
    if (pipe_keys_parse(o->key, &p) < 0 || !rec_in_range(r, p.hour_ms))
        return 0;
    r->filtered_seen++;
    struct rec_input probe = {.key = o->key};
    struct rec_input *in =
        r->n_inputs ? bsearch(&probe, r->inputs, r->n_inputs, sizeof *r->inputs, rec_input_cmp)
                    : NULL;
    if (in == NULL) {
        rec_diff(r, "%s is in no combined manifest (not combined yet?)", o->key);
        return 0;
    }
    /* Equal keys are adjacent: an object in two manifests is combined twice. */
    struct rec_input *first = in, *last = in;
    while (first > r->inputs && strcmp(first[-1].key, o->key) == 0)
        first--;
    while (last + 1 < r->inputs + r->n_inputs && strcmp(last[1].key, o->key) == 0)
        last++;
    if (first != last)
        rec_diff(r, "%s is an input of %zu jobs (%s, %s...)", o->key, (size_t)(last - first + 1),
                 r->jobs[first->job].id, r->jobs[first[1].job].id);
    if (in->size != o->size)
        rec_diff(r, "job %s: input %s has %" PRIu64 " bytes, the manifest says %" PRIu64,
                 r->jobs[in->job].id, o->key, o->size, in->size);
    return 0;
}

/* ---- split manifests --------------------------------------------------------- */

static void rec_add_rows(struct rec *r, const struct pipe_manifest_split_output *o)
{
    if (r->n_rows == r->cap_rows) {
        r->cap_rows = r->cap_rows ? 2 * r->cap_rows : 64;
        r->rows = pipe_realloc(r->rows, r->cap_rows * sizeof *r->rows);
    }
    struct rec_rows *x = &r->rows[r->n_rows++];
    x->event = pipe_strdup(o->event);
    memcpy(x->dt, o->dt, sizeof x->dt);
    memcpy(x->hr, o->hr, sizeof x->hr);
    x->rows = o->rows;
    x->loaded = 0;
    if (!r->wh || r->wh_rc < 0)
        return;
    bool found;
    uint64_t history, table;
    r->wh_rc = loader_pg_file_rows(r->wh, o->key, o->event, &found, &history, &table);
    if (r->wh_rc < 0)
        return;
    x->loaded = table;
    if (!found)
        rec_diff(r, "split file %s (%" PRIu64 " rows) is not loaded", o->key, o->rows);
    else if (history != o->rows || table != o->rows)
        rec_diff(r,
                 "split file %s: %" PRIu64 " rows split, the load history says %" PRIu64
                 ", the table holds %" PRIu64 " from it",
                 o->key, o->rows, history, table);
}

static int rec_job_cmp(const void *a, const void *b)
{
    return strcmp((*(struct rec_job *const *)a)->id, (*(struct rec_job *const *)b)->id);
}

/* The job of the range named id (r->by_id is sorted before the split
 * manifests are read), or NULL. */
static struct rec_job *rec_find_job(struct rec *r, const char *id)
{
    struct rec_job probe = {.id = (char *)id}, *pp = &probe;
    struct rec_job **j = bsearch(&pp, r->by_id, r->n_jobs, sizeof *r->by_id, rec_job_cmp);
    return j ? *j : NULL;
}

static void rec_split_checks(struct rec *r, const struct pipe_manifest_split *m, int64_t hour)
{
    rec_ledger(r, "split", m->job_id, &m->ledger);
    uint64_t rows = 0;
    for (size_t i = 0; i < m->n_outputs; i++) {
        rows += m->outputs[i].rows;
        rec_check_object(r, m->job_id, m->outputs[i].key, m->outputs[i].bytes);
        rec_add_rows(r, &m->outputs[i]);
    }
    if (rows != m->ledger.out)
        rec_diff(r, "job %s: split outputs hold %" PRIu64 " rows, the ledger says %" PRIu64 " out",
                 m->job_id, rows, m->ledger.out);
    if (m->duplicates_dropped != m->ledger.duplicates)
        rec_diff(r, "job %s: %" PRIu64 " duplicates dropped, the ledger says %" PRIu64, m->job_id,
                 m->duplicates_dropped, m->ledger.duplicates);
    pipe_keys_combined(&r->key, hour, m->job_id);
    if (strcmp(m->input_key, r->key.data) != 0)
        rec_diff(r, "job %s: split input %s is not the job's combined object %s", m->job_id,
                 m->input_key, r->key.data);
    struct rec_job *j = rec_find_job(r, m->job_id);
    if (j == NULL)
        return; /* combined manifest swept with its object: nothing to compare */
    j->split = true;
    if (m->ledger.in != j->events)
        rec_diff(r,
                 "job %s: split %" PRIu64 " events (rows %" PRIu64 " + duplicates %" PRIu64
                 " + rejected %" PRIu64 "), the combined object holds %" PRIu64,
                 m->job_id, m->ledger.in, m->ledger.out, m->ledger.duplicates, m->ledger.rejected,
                 j->events);
}

static int rec_split_one(struct rec *r, const struct pipe_store_obj *o)
{
    char id[PIPE_KEYS_NAME_MAX + 1];
    int64_t hour;
    if (!pipe_keys_job_of(o->key, "manifests/split/", id) || !pipe_keys_job_hour(id, &hour) ||
        !rec_in_range(r, hour) || !rec_read(r, o->key))
        return 0;
    struct pipe_manifest_split m;
    pipe_manifest_split_init(&m);
    if (pipe_manifest_split_from_json(r->doc.data, r->doc.len, &m) < 0 || strcmp(m.job_id, id) != 0)
        rec_diff(r, "%s is not a valid split manifest of job %s", o->key, id);
    else
        rec_split_checks(r, &m, hour);
    r->split_jobs++;
    pipe_manifest_split_cleanup(&m);
    return 0;
}

/* ---- report ------------------------------------------------------------------ */

static int rec_rows_cmp(const void *a, const void *b)
{
    const struct rec_rows *x = a, *y = b;
    int c = strcmp(x->event, y->event);
    if (c == 0)
        c = strcmp(x->dt, y->dt);
    return c != 0 ? c : strcmp(x->hr, y->hr);
}

static void rec_print_rows(struct rec *r)
{
    if (r->n_rows)
        qsort(r->rows, r->n_rows, sizeof *r->rows, rec_rows_cmp);
    printf("%-32s %-10s %2s %12s%s\n", "EVENT", "DT", "HR", "ROWS", r->wh ? "       LOADED" : "");
    uint64_t total = 0, total_loaded = 0;
    for (size_t i = 0; i < r->n_rows;) {
        size_t j = i;
        uint64_t rows = 0, loaded = 0;
        for (; j < r->n_rows && rec_rows_cmp(&r->rows[i], &r->rows[j]) == 0; j++) {
            rows += r->rows[j].rows;
            loaded += r->rows[j].loaded;
        }
        printf("%-32s %-10s %2s %12" PRIu64, r->rows[i].event, r->rows[i].dt, r->rows[i].hr, rows);
        if (r->wh)
            printf(" %12" PRIu64, loaded);
        putchar('\n');
        total += rows;
        total_loaded += loaded;
        i = j;
    }
    printf("%-32s %-10s %2s %12" PRIu64, "total", "", "", total);
    if (r->wh)
        printf(" %12" PRIu64, total_loaded);
    putchar('\n');
}

static int rec_run(struct rec *r)
{
    int rc = rec_walk(r, "manifests/combined/", rec_combined_one);
    if (rc == 0) {
        if (r->n_inputs)
            qsort(r->inputs, r->n_inputs, sizeof *r->inputs, rec_input_cmp);
        rc = rec_walk(r, "filtered/", rec_filtered_one);
    }
    if (rc == 0) {
        r->by_id = pipe_calloc(r->n_jobs + 1, sizeof *r->by_id);
        for (size_t i = 0; i < r->n_jobs; i++)
            r->by_id[i] = &r->jobs[i];
        qsort(r->by_id, r->n_jobs, sizeof *r->by_id, rec_job_cmp);
        rc = rec_walk(r, "manifests/split/", rec_split_one);
    }
    if (rc == 0 && r->wh_rc < 0) {
        fprintf(stderr, "sluicectl reconcile: warehouse: %s\n", loader_pg_last_error(r->wh));
        rc = r->wh_rc;
    }
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < r->n_jobs; i++) {
        if (!r->jobs[i].split)
            rec_diff(r, "job %s: combined but not split yet", r->jobs[i].id);
    }
    rec_print_rows(r);
    return 0;
}

static void rec_cleanup(struct rec *r)
{
    for (size_t i = 0; i < r->n_jobs; i++)
        pipe_free(r->jobs[i].id);
    for (size_t i = 0; i < r->n_inputs; i++)
        pipe_free(r->inputs[i].key);
    for (size_t i = 0; i < r->n_rows; i++)
        pipe_free(r->rows[i].event);
    pipe_free(r->by_id);
    pipe_free(r->jobs);
    pipe_free(r->inputs);
    pipe_free(r->rows);
    pipe_buf_cleanup(&r->doc);
    pipe_buf_cleanup(&r->key);
    pipe_store_free(r->s);
    loader_pg_free(r->wh);
}

static int rec_range(struct rec *r, const struct rec_cfg *cfg)
{
    int64_t now = pipe_clock_now_ms(), from, to;
    if (cfg->from == NULL) {
        fprintf(stderr, "sluicectl reconcile: --from is required\n");
        return PIPE_ECONFIG;
    }
    if (pipe_clock_parse_time(cfg->from, now, &from) < 0 ||
        pipe_clock_parse_time(cfg->to, now, &to) < 0) {
        fprintf(stderr, "sluicectl reconcile: cannot read \"%s\" as a time\n",
                pipe_clock_parse_time(cfg->from, now, &from) < 0 ? cfg->from : cfg->to);
        return PIPE_ECONFIG;
    }
    if (to <= from) {
        fprintf(stderr, "sluicectl reconcile: --to must be after --from\n");
        return PIPE_ECONFIG;
    }
    r->from_ms = pipe_clock_hour_floor(from);
    r->to_ms = to;
    return 0;
}

int ctl_reconcile_main(int argc, char **argv)
{
    struct rec_cfg cfg = {0};
    struct rec r = {0};
    pipe_buf_init(&r.doc, REC_DOC_MAX);
    pipe_buf_init(&r.key, PIPE_STORE_KEY_MAX);
    int first_arg, exit_code = CTL_EXIT_USAGE;
    int rc = pipe_conf_load(&rec_program, &cfg, argc, argv, &first_arg);
    if (rc < 0) {
        exit_code = ctl_exit_from_conf(rc);
        goto out;
    }
    if (first_arg < argc) {
        fprintf(stderr, "sluicectl reconcile: unexpected argument \"%s\"\n", argv[first_arg]);
        goto out;
    }
    if (rec_range(&r, &cfg) < 0)
        goto out;
    exit_code = CTL_EXIT_FAIL;
    rc = ctl_store_open("reconcile", cfg.store, &r.s);
    if (rc < 0)
        goto out;
    if (cfg.warehouse && loader_pg_open(cfg.warehouse, NULL, &r.wh) < 0) {
        fprintf(stderr, "sluicectl reconcile: warehouse: %s\n", loader_pg_last_error(NULL));
        goto out;
    }
    rc = rec_run(&r);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("sluicectl reconcile: stdout");
        goto out;
    }
    if (rc < 0)
        goto out;
    fprintf(stderr,
            "sluicectl reconcile: %zu combine jobs, %" PRIu64 " split jobs, %" PRIu64
            " filtered objects checked: %" PRIu64 " difference%s\n",
            r.n_jobs, r.split_jobs, r.filtered_seen, r.diffs, r.diffs == 1 ? "" : "s");
    if (r.diffs == 0)
        exit_code = CTL_EXIT_OK;
out:
    rec_cleanup(&r);
    pipe_conf_cleanup(&rec_program, &cfg);
    return exit_code;
}
