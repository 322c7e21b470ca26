/* splitter — the stage that turns each combined object into one file per
 * event type and hour under split/, exactly once (docs/compaction.md).
 *
 * For every descriptor in jobs/split/ the job runner (libpipe/job.h) leases
 * for it, it reads the combined object, routes its events
 * (splitter_route.c), claims their keys through the de-duplication
 * backend, and commits: the split files, then the
 * manifest, then the descriptor's deletion. Every write is deterministic, so
 * a holder that dies anywhere leaves work the next holder redoes with the
 * same bytes.
 *
 * Memory for one job (the cap): the combined object as stored (compressed,
 * at most max_input; on file:// a read-only mapping of the file, whose
 * pages are the page cache's: neither copied nor zeroed); every split file
 * of the job compressed, back to back (about as large as the object in; at
 * most 2 x max_input, each file at most max_input) and one of them joined
 * for its put (at most max_input); at most 64 MiB of lines staged for
 * compression, in stage buffers held to about that much; about 50 bytes per
 * event (its output and key index, the distinct keys, their verdicts and
 * the hash set over them); one zstd context each way; and the
 * de-duplication backend's own state. The object is decoded once,
 * streaming (a frame holding a cross-batch duplicate is decoded again to
 * drop it), so the decoded object is never held. The object (unmapped, or
 * its buffer freed) and the stage buffers are released when the pass ends,
 * before the claim and the commit, which reuse the freed heap pages; the
 * heap is never trimmed (main.c), so a daemon holds the peak of its
 * largest job and faults in no fresh memory for the next. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/dedup.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/job.h"
#include "libpipe/log.h"
#include "libpipe/manifest.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/retention.h"
#include "libpipe/store.h"
#include "stages/splitter/splitter.h"

#define OPT(field) offsetof(struct splitter_cfg, field)
#define DOC_MAX    (16u << 20) /* a descriptor or manifest */

static const struct pipe_conf_opt splitter_opts[] = {
    {"lease_ttl", PIPE_CONF_DURATION, PIPE_KEYS_JOB_LEASE_TTL, OPT(lease_ttl_ms),
     "lease on a split job; renewed while the job runs", 1000, PIPE_HOUR_MS, NULL},
    {"time_field", PIPE_CONF_STR, "received_at", OPT(time_field),
     "field that picks an event's hour: received_at, or ts (client time; received_at when "
     "absent)",
     0, 0, "FIELD"},
    {"dedup", PIPE_CONF_STR, "local", OPT(dedup), "de-duplication backend", 0, 0, "URL"},
    {"dedup_window", PIPE_CONF_DURATION, PIPE_DEDUP_WINDOW_DEFAULT, OPT(dedup_window_ms),
     "an event repeated within this window of partitions is dropped (set it at the top level of "
     "the config file, which the dispatcher's sweep reads too)",
     PIPE_DEDUP_WINDOW_MIN_MS, PIPE_DEDUP_WINDOW_MAX_MS, NULL},
    {"retention", PIPE_CONF_JSON, NULL, OPT(retention),
     "the sweeps' retention per prefix (top level of the config file): checked at start against "
     "dedup_window, so that no index object a splitter needs is swept",
     0, 0, "JSON"},
    {"zstd_level", PIPE_CONF_INT, "1", OPT(zstd_level), "compression level of split files", -5, 19,
     "N"},
    {"url_prefix", PIPE_CONF_STR, "", OPT(url_prefix),
     "prefix of the Redshift manifest URLs, e.g. s3://bucket/root/ (\"\": bare keys)", 0, 0, "URL"},
    {"max_line", PIPE_CONF_SIZE, "1MiB", OPT(max_line),
     "longest event line read (keep it at least the filter's max_event)", 1024, 64 << 20, NULL},
    {"max_input", PIPE_CONF_SIZE, "1GiB", OPT(max_input),
     "largest combined object read (compressed); also caps each split file", 1 << 20, 1LL << 40,
     NULL},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

struct splitter_metrics {
    struct pipe_counter *events_in, *events_out, *rejected, *dup_batch, *dup_cross;
    struct pipe_counter *outputs, *bytes_in, *bytes_out, *jobs_done, *jobs_failed;
    struct pipe_histogram *job_seconds;
};

struct splitter {
    struct pipe_stage *st;
    const struct splitter_cfg *cfg;
    struct pipe_dedup *dedup;
    struct split_route route;
    struct pipe_store_view input; /* the combined object of the job in hand */
    struct pipe_buf doc;          /* a descriptor or manifest */
    struct pipe_buf key;
    int stale_tries;           /* consecutive stale-etag retries (see load) */
    _Atomic int64_t oldest_ms; /* mtime of the oldest pending job, 0 for none */
    _Atomic uint64_t pending;
    struct splitter_metrics m;
};

/* One job in hand. */
struct job {
    struct splitter *s;
    const char *id;
    struct pipe_job_lease *lease; /* held and renewed by the job runner */
    struct pipe_manifest_job desc;
    int64_t hour_ms; /* the job's partition: where its dedup index lives */
    int64_t start_mono;
    int64_t t_read, t_route, t_claim, t_write; /* mono ms at the end of each phase */
};

static int splitter_validate(void *cfgp, char *err, size_t errlen)
{
    const struct splitter_cfg *c = cfgp;
    if (strcmp(c->time_field, "received_at") != 0 && strcmp(c->time_field, "ts") != 0) {
        snprintf(err, errlen, "time_field must be received_at or ts, not '%s'", c->time_field);
        return -1;
    }
    size_t n = strlen(c->url_prefix);
    if (n && c->url_prefix[n - 1] != '/') {
        snprintf(err, errlen, "url_prefix must end with '/' (e.g. s3://bucket/root/)");
        return -1;
    }
    /* The sweeps keep state/dedup/ by these same settings: refuse here too
     * what would have them delete index objects this splitter checks. */
    struct pipe_retention_config r;
    pipe_retention_config_init(&r, (unsigned)c->common.generation, c->dedup_window_ms);
    if (pipe_retention_config_parse(&r, c->retention, err, errlen) < 0 ||
        pipe_retention_config_check(&r, err, errlen) < 0)
        return -1;
    return 0;
}

/* ---- the lease on a job ---- */

/* job_tick — between steps of a pass: a stop request abandons the job, and
 * so does a lease the runner's renewals lost. */
static int job_tick(void *arg)
{
    struct job *j = arg;
    if (pipe_stage_stopping(j->s->st))
        return PIPE_ESHUTDOWN;
    return pipe_job_lease_lost(j->lease) ? PIPE_ELOST : 0;
}

/* ---- reading a job ---- */

/* job_hour — the partition of the job's combined object, from its key, or
 * else from the job id ("g<gen>-YYYYMMDDHH-<hash>"). */
static int job_hour(const struct job *j, int64_t *hour_ms)
{
    struct pipe_key_parts kp;
    if (pipe_keys_parse(j->desc.inputs[0].key, &kp) == 0 && strcmp(kp.prefix, "combined") == 0) {
        *hour_ms = kp.hour_ms;
        return 0;
    }
    int y, mo, d, h;
    const char *dash = strchr(j->id, '-');
    if (dash && sscanf(dash + 1, "%4d%2d%2d%2d", &y, &mo, &d, &h) == 4 && y >= 1970 && mo >= 1 &&
        mo <= 12 && d >= 1 && d <= 31 && h >= 0 && h <= 23) {
        *hour_ms = pipe_clock_from_civil(y, mo, d, h, 0, 0, 0);
        return 0;
    }
    return PIPE_EPARSE;
}

/* load — reads the descriptor and the combined object it names into
 * s->input, checking the object is the version the descriptor describes.
 * PIPE_ENOTFOUND when the descriptor is gone; PIPE_ECORRUPT when it cannot
 * be done as described. */
static int load(struct job *j)
{
    struct splitter *s = j->s;
    struct pipe_store *store = pipe_stage_store(s->st);
    pipe_keys_split_job(&s->key, j->id);
    pipe_buf_reset(&s->doc);
    int rc = pipe_store_get(store, s->key.data, &s->doc);
    if (rc == PIPE_ENOTFOUND)
        return rc; /* finished by another holder since the listing */
    if (rc == 0)
        rc = pipe_manifest_job_from_json(s->doc.data, s->doc.len, &j->desc);
    if (rc < 0) {
        pipe_log_error("cannot read split job", "job=%s err=\"%s\" detail=\"%s\"", j->id,
                       pipe_strerror(rc), pipe_store_last_error(store));
        return rc;
    }
    if (strcmp(j->desc.job_id, j->id) != 0 || j->desc.n_inputs != 1 || job_hour(j, &j->hour_ms)) {
        pipe_log_error("split job descriptor is inconsistent", "job=%s inputs=%zu", j->id,
                       j->desc.n_inputs);
        return PIPE_ECORRUPT;
    }
    const struct pipe_manifest_object *in = &j->desc.inputs[0];
    struct pipe_store_obj info;
    rc = pipe_store_stat(store, in->key, &info);
    if (rc == 0 && strcmp(info.etag, in->etag) != 0) {
        /* A combiner that redid its commit rewrote the object; it rewrites
         * the descriptor next. A daemon waits for that; --once gives up. */
        pipe_log_warn("combined object changed since its split job was written; retrying",
                      "job=%s key=%s", j->id, in->key);
        bool give_up = pipe_stage_common(s->st)->once && ++s->stale_tries >= 5;
        return give_up ? PIPE_ECORRUPT : -EAGAIN;
    }
    s->stale_tries = 0;
    /* A view: on file:// the page cache's own pages, neither copied nor
     * zeroed into the heap. */
    pipe_store_view_release(&s->input);
    if (rc == 0)
        rc = pipe_store_view_get(store, in->key, s->cfg->max_input, &s->input);
    if (rc < 0) {
        pipe_log_error("cannot read combined object", "job=%s key=%s err=\"%s\" detail=\"%s\"",
                       j->id, in->key, pipe_strerror(rc), pipe_store_last_error(store));
        /* Missing, the object the descriptor names cannot be split. */
        return rc == PIPE_ENOTFOUND ? PIPE_ECORRUPT : rc;
    }
    pipe_counter_add(s->m.bytes_in, s->input.len);
    j->t_read = pipe_clock_mono_ms();
    return 0;
}

/* ---- routing and claiming ---- */

static int route(struct job *j)
{
    struct splitter *s = j->s;
    struct split_route *r = &s->route;
    split_route_reset(r, j->id, j->desc.inputs[0].key);
    int rc = split_route_pass(r, s->input.data, s->input.len, job_tick, j);
    /* The object is not read again (settle works on the frames): its view
     * is released (a buffer, with a backend that cannot map, goes back to
     * the heap, whose pages the claim reuses). */
    pipe_store_view_release(&s->input);
    if (rc == 0)
        rc = job_tick(j);
    j->t_route = pipe_clock_mono_ms();
    if (rc == 0 && r->n_keys)
        rc = pipe_dedup_claim(s->dedup, j->id, j->hour_ms, pipe_clock_now_ms(), r->keys, r->n_keys,
                              r->verdicts);
    j->t_claim = pipe_clock_mono_ms();
    if (rc == 0)
        rc = split_route_settle(r, job_tick, j);
    j->t_write = pipe_clock_mono_ms();
    if (rc == 0 || rc == PIPE_ESHUTDOWN || rc == PIPE_ELOST)
        return rc;
    pipe_log_error("cannot split job", "job=%s key=%s err=\"%s\"", j->id, j->desc.inputs[0].key,
                   pipe_strerror(rc));
    if (rc == PIPE_ETOOBIG)
        pipe_log_error("a split file or the number of outputs is over its cap; raise max_input",
                       "job=%s outputs=%zu", j->id, r->n_outs);
    return rc;
}

/* ---- committing ---- */

static int build_manifest(struct job *j, struct split_output **outs, size_t n,
                          struct pipe_manifest_split *m)
{
    struct splitter *s = j->s;
    const struct split_counts *c = &s->route.c;
    m->job_id = pipe_strdup(j->id);
    m->generation = j->desc.generation;
    m->input_key = pipe_strdup(j->desc.inputs[0].key);
    m->url_prefix = pipe_strdup(s->cfg->url_prefix);
    m->duplicates_dropped = c->dup_batch + c->dup_cross;
    m->ledger = (struct pipe_ledger){c->in, c->out, c->rejected, c->dup_batch + c->dup_cross};
    for (size_t i = 0; i < n; i++) {
        char dt[11], hr[3];
        int rc = pipe_keys_split(&s->key, outs[i]->event, outs[i]->hour_ms, j->id);
        if (rc < 0)
            return rc;
        pipe_clock_partition(outs[i]->hour_ms, dt, hr);
        pipe_manifest_split_add_output(m, s->key.data, outs[i]->event, dt, hr, outs[i]->rows,
                                       outs[i]->zbytes);
    }
    if (!pipe_ledger_balanced(&m->ledger))
        return PIPE_EINVAL; /* a bug: never commit a ledger that does not add up */
    return pipe_manifest_split_to_json(m, &s->doc);
}

/* put_rejects — the job's rejected lines, compressed, under a key named
 * after the job (so a re-run rewrites it), before the manifest that counts
 * them: nothing the ledger calls rejected is missing from rejected/. */
static int put_rejects(struct job *j)
{
    struct splitter *s = j->s;
    struct split_route *r = &s->route;
    if (r->rejects.len == 0)
        return 0;
    int rc = split_reject_key(&s->key, j->id, j->hour_ms);
    pipe_buf_reset(&r->gather);
    if (rc == 0)
        rc = pipe_zwriter_frame(r->zw, r->rejects.data, r->rejects.len, &r->gather);
    if (rc == 0)
        rc = pipe_store_put(pipe_stage_store(s->st), s->key.data, r->gather.data, r->gather.len);
    return rc;
}

/* commit — puts every split file (the runner renews the lease meanwhile),
 * the rejected lines, then the manifest (the job's durable "done"), then
 * deletes the descriptor. */
static int commit(struct job *j)
{
    struct splitter *s = j->s;
    struct pipe_store *store = pipe_stage_store(s->st);
    size_t n = 0;
    struct split_output **outs = split_route_sorted(&s->route, &n);
    struct pipe_manifest_split m;
    pipe_manifest_split_init(&m);
    uint64_t bytes = 0;
    int rc = build_manifest(j, outs, n, &m);
    if (rc < 0) {
        pipe_log_error("cannot build split manifest", "job=%s err=\"%s\"", j->id,
                       pipe_strerror(rc));
        goto out;
    }
    rc = pipe_job_lease_check(j->lease);
    if (rc < 0) {
        pipe_log_warn("lost the lease on a split job before commit", "job=%s err=\"%s\"", j->id,
                      pipe_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *data = NULL;
        size_t len = 0;
        rc = pipe_job_lease_lost(j->lease) ? PIPE_ELOST : 0;
        if (rc == 0)
            rc = split_route_output_data(&s->route, outs[i], &data, &len);
        if (rc == 0)
            rc = pipe_store_put(store, m.outputs[i].key, data, len);
        bytes += len;
    }
    if (rc == 0)
        rc = put_rejects(j);
    /* The manifest is the commit: only while the lease is still ours. */
    if (rc == 0)
        rc = pipe_job_lease_check(j->lease);
    pipe_keys_manifest(&s->key, "split", j->id);
    if (rc == 0)
        rc = pipe_store_put(store, s->key.data, s->doc.data, s->doc.len);
    pipe_keys_split_job(&s->key, j->id);
    if (rc == 0)
        rc = pipe_store_delete(store, s->key.data);
    if (rc < 0)
        pipe_log_error("cannot commit split job", "job=%s err=\"%s\" detail=\"%s\"", j->id,
                       pipe_strerror(rc), pipe_store_last_error(store));
out:
    if (rc == 0) {
        pipe_counter_add(s->m.outputs, n);
        pipe_counter_add(s->m.bytes_out, bytes);
    }
    pipe_manifest_split_cleanup(&m);
    pipe_free(outs);
    return rc;
}

static void count_job(struct job *j)
{
    struct splitter *s = j->s;
    const struct split_counts *c = &s->route.c;
    int64_t now = pipe_clock_mono_ms();
    double secs = (double)(now - j->start_mono) / 1000.0;
    pipe_counter_add(s->m.events_in, c->in);
    pipe_counter_add(s->m.events_out, c->out);
    pipe_counter_add(s->m.rejected, c->rejected);
    pipe_counter_add(s->m.dup_batch, c->dup_batch);
    pipe_counter_add(s->m.dup_cross, c->dup_cross);
    pipe_counter_inc(s->m.jobs_done);
    pipe_histogram_observe(s->m.job_seconds, secs);
    pipe_log_info("split job done",
                  "job=%s in=%llu out=%llu rejected=%llu dup_batch=%llu dup_cross=%llu "
                  "outputs=%zu seconds=%.3f read_ms=%lld route_ms=%lld claim_ms=%lld "
                  "write_ms=%lld commit_ms=%lld",
                  j->id, (unsigned long long)c->in, (unsigned long long)c->out,
                  (unsigned long long)c->rejected, (unsigned long long)c->dup_batch,
                  (unsigned long long)c->dup_cross, s->route.n_outs, secs,
                  (long long)(j->t_read - j->start_mono), (long long)(j->t_route - j->t_read),
                  (long long)(j->t_claim - j->t_route), (long long)(j->t_write - j->t_claim),
                  (long long)(now - j->t_write));
}

/* split_run — one job under its lease, which the job runner holds. */
static int split_run(void *state, const char *id, struct pipe_job_lease *lease)
{
    struct splitter *s = state;
    struct pipe_store *store = pipe_stage_store(s->st);
    struct job j = {.s = s, .id = id, .lease = lease, .start_mono = pipe_clock_mono_ms()};
    pipe_keys_manifest(&s->key, "split", id);
    struct pipe_store_obj info;
    int rc = pipe_store_stat(store, s->key.data, &info);
    if (rc == 0) {
        /* Committed by a holder that died before deleting the descriptor. */
        pipe_keys_split_job(&s->key, id);
        return pipe_store_delete(store, s->key.data);
    }
    if (rc != PIPE_ENOTFOUND)
        return rc;
    pipe_manifest_job_init(&j.desc);
    rc = load(&j);
    if (rc == 0)
        rc = route(&j);
    if (rc == 0)
        rc = commit(&j);
    if (rc == 0)
        count_job(&j);
    pipe_manifest_job_cleanup(&j.desc);
    return rc;
}

static void split_listed(void *state, size_t pending, int64_t oldest_ms)
{
    struct splitter *s = state;
    atomic_store(&s->oldest_ms, oldest_ms);
    atomic_store(&s->pending, pending);
}

static void split_failed(void *state, const char *id, int rc)
{
    struct splitter *s = state;
    (void)id;
    (void)rc;
    pipe_counter_inc(s->m.jobs_failed);
}

/* A job that cannot succeed is skipped until restart; --once then fails. */
static const struct pipe_job_kind split_jobs = {
    .what = "split job",
    .dir = PIPE_KEYS_JOBS_SPLIT,
    .on_failure = PIPE_JOB_SKIP,
    .run = split_run,
    .listed = split_listed,
    .failed = split_failed,
};

/* ---- the stage ---- */

static double freshness(void *arg)
{
    int64_t oldest = atomic_load(&((struct splitter *)arg)->oldest_ms);
    int64_t age = oldest ? pipe_clock_now_ms() - oldest : 0;
    return age > 0 ? (double)age / 1000.0 : 0.0;
}

static double pending_jobs(void *arg)
{
    return (double)atomic_load(&((struct splitter *)arg)->pending);
}

#define SPLIT_METRIC(kind, field, name, help)                                                      \
    PIPE_METRIC(kind, struct splitter_metrics, field, name, help)
#define SPLIT_DUPS(field, scope)                                                                   \
    PIPE_METRIC_LABELED(COUNTER, struct splitter_metrics, field,                                   \
                        "sluice_splitter_duplicates_dropped_total", "scope=\"" scope "\"",         \
                        "Duplicate events dropped.")

static const struct pipe_metric_def split_metric_defs[] = {
    SPLIT_METRIC(COUNTER, events_in, "sluice_splitter_events_in_total",
                 "Lines read from combined objects."),
    SPLIT_METRIC(COUNTER, events_out, "sluice_splitter_events_out_total",
                 "Events written to split files."),
    SPLIT_METRIC(COUNTER, rejected, "sluice_splitter_events_rejected_total",
                 "Lines that were not events (unparseable)."),
    SPLIT_DUPS(dup_batch, "in_batch"),
    SPLIT_DUPS(dup_cross, "cross_batch"),
    SPLIT_METRIC(COUNTER, outputs, "sluice_splitter_outputs_written_total", "Split files written."),
    SPLIT_METRIC(COUNTER, bytes_in, "sluice_splitter_bytes_in_total",
                 "Compressed bytes of combined objects read."),
    SPLIT_METRIC(COUNTER, bytes_out, "sluice_splitter_bytes_out_total",
                 "Compressed bytes of split files written."),
    SPLIT_METRIC(COUNTER, jobs_done, "sluice_splitter_jobs_done_total", "Split jobs committed."),
    SPLIT_METRIC(COUNTER, jobs_failed, "sluice_splitter_jobs_failed_total",
                 "Split jobs that cannot succeed (left in place)."),
    SPLIT_METRIC(SECONDS, job_seconds, "sluice_splitter_job_seconds",
                 "Time to split and commit one job."),
    PIPE_METRIC_FN("sluice_splitter_freshness_seconds", freshness,
                   "Age of the oldest pending split job."),
    PIPE_METRIC_FN("sluice_splitter_pending_jobs", pending_jobs,
                   "Split jobs pending at the last listing."),
    {0},
};

static int splitter_init(struct pipe_stage *st, void *cfgp, void **state)
{
    const struct splitter_cfg *cfg = cfgp;
    struct splitter *s = pipe_calloc(1, sizeof *s);
    s->st = st;
    s->cfg = cfg;
    pipe_buf_init(&s->doc, DOC_MAX);
    pipe_buf_init(&s->key, PIPE_STORE_KEY_MAX);
    pipe_metrics_register_table(pipe_stage_metrics(st), split_metric_defs, &s->m, s);
    pipe_job_runner_start(st, &split_jobs, cfg->lease_ttl_ms, s);
    *state = s;
    struct pipe_dedup_config dc = {
        .window_ms = cfg->dedup_window_ms,
        .lease_ttl_ms = 30000,
        /* A claim must not outwait the job's own lease. */
        .wait_ms = cfg->lease_ttl_ms / 3,
    };
    int rc =
        pipe_dedup_open(cfg->dedup, pipe_stage_store(st), pipe_stage_leases(st), &dc, &s->dedup);
    if (rc < 0) {
        pipe_log_error("cannot open the de-duplication backend", "url=\"%s\" err=\"%s\"",
                       cfg->dedup, pipe_strerror(rc));
        return rc;
    }
    pipe_dedup_metrics_register(s->dedup, pipe_stage_metrics(st));
    rc = split_route_init(&s->route, strcmp(cfg->time_field, "ts") == 0, (int)cfg->zstd_level,
                          cfg->max_line, cfg->max_input);
    if (rc < 0)
        pipe_log_error("cannot set up compression", "level=%lld err=\"%s\"",
                       (long long)cfg->zstd_level, pipe_strerror(rc));
    return rc;
}

static void splitter_exit(struct pipe_stage *st, void *state)
{
    struct splitter *s = state;
    (void)st;
    split_route_cleanup(&s->route);
    pipe_dedup_free(s->dedup);
    pipe_store_view_release(&s->input);
    pipe_buf_cleanup(&s->doc);
    pipe_buf_cleanup(&s->key);
    pipe_free(s);
}

const struct pipe_stage_desc splitter_stage = {
    .name = "splitter",
    .summary = "Splits each combined object (jobs/split/) into one file per event type and "
               "hour under split/<event>/dt=/hr=/, drops duplicate events (within the object "
               "and, through the de-duplication backend, across objects within a window), and "
               "writes a manifest that doubles as a Redshift COPY manifest.",
    .opts = splitter_opts,
    .cfg_size = sizeof(struct splitter_cfg),
    .validate = splitter_validate,
    .needs_leases = true,
    .init = splitter_init,
    .exit = splitter_exit,
};
