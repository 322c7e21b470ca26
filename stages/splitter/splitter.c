/* splitter — the stage that turns each combined object into one file per
 * event type and hour under split/, exactly once (docs/compaction.md).
 *
 * For every descriptor in jobs/split/ it can lease, it reads the combined
 * object, routes its events (splitter_route.c), claims their keys through
 * the de-duplication backend, and commits: the split files, then the
 * manifest, then the descriptor's deletion. Every write is deterministic, so
 * a holder that dies anywhere leaves work the next holder redoes with the
 * same bytes.
 *
 * Memory for one job (the cap): the combined object as stored (compressed,
 * at most max_input); every split file of the job compressed, back to back
 * (about as large as the object in; at most 2 x max_input, each file at
 * most max_input) and one of them joined for its put (at most max_input);
 * at most 64 MiB of lines staged for compression, in stage buffers held
 * to about that much; about 50 bytes per event (its output and key index,
 * the distinct keys, their verdicts and the hash set over them); one zstd
 * context each way; and the de-duplication backend's own state. The object
 * is decoded once, streaming (a frame holding a cross-batch duplicate is
 * decoded again to drop it), so the decoded object is never held. Buffers
 * are kept for the next job, so a daemon holds the peak of its largest
 * job. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/lease.h"
#include "libpipe/log.h"
#include "libpipe/manifest.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/retention.h"
#include "libpipe/store.h"
#include "stages/splitter/splitter.h"

#define OPT(field)  offsetof(struct splitter_cfg, field)
#define JOBS_PREFIX "jobs/split/"
#define DOC_MAX     (16u << 20) /* a descriptor or manifest */
#define LIST_PAGE   1000

static const struct pipe_conf_opt splitter_opts[] = {
    {"lease_ttl", PIPE_CONF_DURATION, "60s", OPT(lease_ttl_ms),
     "lease on a split job; renewed while the job runs", 1000, 3600000, NULL},
    {"time_field", PIPE_CONF_STR, "received_at", OPT(time_field),
     "field that picks an event's hour: received_at, or ts (client time; received_at when "
     "absent)",
     0, 0, "FIELD"},
    {"dedup", PIPE_CONF_STR, "local", OPT(dedup), "de-duplication backend", 0, 0, "URL"},
    {"dedup_window", PIPE_CONF_DURATION, "24h", OPT(dedup_window_ms),
     "an event repeated within this window of partitions is dropped (set it at the top level of "
     "the config file, which the dispatcher's sweep reads too)",
     60000, 90LL * 86400000, NULL},
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
    struct pipe_buf input; /* the combined object of the job in hand */
    struct pipe_buf doc;   /* a descriptor or manifest */
    struct pipe_buf key;
    char **jobs; /* job ids of the last listing, in key order */
    size_t n_jobs, cursor;
    char **failed; /* jobs that cannot succeed; skipped until restart */
    size_t n_failed;
    int stale_tries;           /* consecutive stale-etag retries (see load) */
    _Atomic int64_t oldest_ms; /* mtime of the oldest pending job, 0 for none */
    _Atomic uint64_t pending;
    struct splitter_metrics m;
};

enum job_result { JOB_DONE, JOB_NONE, JOB_RETRY, JOB_FAILED };

/* One job in hand. */
struct job {
    struct splitter *s;
    const char *id;
    struct pipe_lease lease;
    int64_t renewed_mono;
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

/* keep_lease — renews the job's lease once half its TTL has passed. A
 * backend that cannot be reached is tolerated while the lease is ours by
 * our own clock. With stop set, a stop request abandons the job. */
static int keep_lease(struct job *j, bool stop)
{
    struct splitter *s = j->s;
    if (stop && pipe_stage_stopping(s->st))
        return PIPE_ESHUTDOWN;
    int64_t now = pipe_clock_mono_ms();
    if (now - j->renewed_mono < s->cfg->lease_ttl_ms / 2)
        return 0;
    int rc = pipe_lease_renew(pipe_stage_leases(s->st), &j->lease, s->cfg->lease_ttl_ms);
    if (rc == 0) {
        j->renewed_mono = now;
        return 0;
    }
    if (rc == PIPE_ELOST)
        return rc;
    return pipe_clock_now_ms() < j->lease.expires_ms ? 0 : PIPE_ELOST;
}

static int job_tick(void *arg)
{
    return keep_lease(arg, true);
}

/* classify — what an error means for the job: worth retrying or not. */
static enum job_result classify(int rc)
{
    if (rc == PIPE_ECORRUPT || rc == PIPE_EPARSE || rc == PIPE_ETOOBIG || rc == PIPE_EINVAL)
        return JOB_FAILED;
    return JOB_RETRY;
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
 * s->input, checking the object is the version the descriptor describes. */
static enum job_result load(struct job *j)
{
    struct splitter *s = j->s;
    struct pipe_store *store = pipe_stage_store(s->st);
    pipe_keys_split_job(&s->key, j->id);
    pipe_buf_reset(&s->doc);
    int rc = pipe_store_get(store, s->key.data, &s->doc);
    if (rc == PIPE_ENOTFOUND)
        return JOB_NONE; /* finished by another holder since the listing */
    if (rc == 0)
        rc = pipe_manifest_job_from_json(s->doc.data, s->doc.len, &j->desc);
    if (rc < 0) {
        pipe_log_error("cannot read split job", "job=%s err=\"%s\" detail=\"%s\"", j->id,
                       pipe_strerror(rc), pipe_store_last_error(store));
        return classify(rc);
    }
    if (strcmp(j->desc.job_id, j->id) != 0 || j->desc.n_inputs != 1 || job_hour(j, &j->hour_ms)) {
        pipe_log_error("split job descriptor is inconsistent", "job=%s inputs=%zu", j->id,
                       j->desc.n_inputs);
        return JOB_FAILED;
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
        return give_up ? JOB_FAILED : JOB_RETRY;
    }
    s->stale_tries = 0;
    pipe_buf_reset(&s->input);
    /* Sized once: growing by doubling would touch twice the memory. An
     * object over the cap fails in the get below. */
    if (rc == 0 && info.size <= s->input.max)
        (void)pipe_buf_reserve(&s->input, info.size);
    if (rc == 0)
        rc = pipe_store_get(store, in->key, &s->input);
    if (rc < 0) {
        pipe_log_error("cannot read combined object", "job=%s key=%s err=\"%s\" detail=\"%s\"",
                       j->id, in->key, pipe_strerror(rc), pipe_store_last_error(store));
        return rc == PIPE_ENOTFOUND ? JOB_FAILED : classify(rc);
    }
    pipe_counter_add(s->m.bytes_in, s->input.len);
    j->t_read = pipe_clock_mono_ms();
    return JOB_DONE;
}

/* ---- routing and claiming ---- */

static enum job_result route(struct job *j)
{
    struct splitter *s = j->s;
    struct split_route *r = &s->route;
    split_route_reset(r, j->id, j->desc.inputs[0].key);
    int rc = split_route_pass(r, s->input.data, s->input.len, job_tick, j);
    if (rc == 0)
        rc = keep_lease(j, true);
    j->t_route = pipe_clock_mono_ms();
    if (rc == 0 && r->n_keys)
        rc = pipe_dedup_claim(s->dedup, j->id, j->hour_ms, pipe_clock_now_ms(), r->keys, r->n_keys,
                              r->verdicts);
    j->t_claim = pipe_clock_mono_ms();
    if (rc == 0)
        rc = split_route_settle(r, job_tick, j);
    j->t_write = pipe_clock_mono_ms();
    if (rc == 0)
        return JOB_DONE;
    if (rc == PIPE_ESHUTDOWN)
        return JOB_RETRY;
    pipe_log_error("cannot split job", "job=%s err=\"%s\"", j->id, pipe_strerror(rc));
    if (rc == PIPE_ETOOBIG)
        pipe_log_error("a split file or the number of outputs is over its cap; raise max_input",
                       "job=%s outputs=%zu", j->id, r->n_outs);
    return classify(rc);
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

/* commit — puts every split file (a thread renews the lease meanwhile), the
 * rejected lines, then the manifest (the job's durable
 * "done"), then deletes the descriptor. */
static enum job_result commit(struct job *j)
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
    rc = pipe_lease_check(pipe_stage_leases(s->st), &j->lease);
    if (rc < 0) {
        pipe_log_warn("lost the lease on a split job before commit", "job=%s err=\"%s\"", j->id,
                      pipe_strerror(rc));
        goto out;
    }
    /* A thread renews the lease while the outputs go out: one put of a
     * large split file can outlast the TTL. */
    struct pipe_stage_keeper *keeper = NULL;
    rc =
        pipe_stage_keeper_start(pipe_stage_leases(s->st), &j->lease, s->cfg->lease_ttl_ms, &keeper);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *data = NULL;
        size_t len = 0;
        rc = pipe_stage_keeper_lost(keeper) ? PIPE_ELOST : 0;
        if (rc == 0)
            rc = split_route_output_data(&s->route, outs[i], &data, &len);
        if (rc == 0)
            rc = pipe_store_put(store, m.outputs[i].key, data, len);
        bytes += len;
    }
    if (rc == 0)
        rc = put_rejects(j);
    int krc = pipe_stage_keeper_stop(keeper);
    if (rc == 0)
        rc = krc;
    /* The manifest is the commit: only while the lease is still ours. */
    if (rc == 0)
        rc = pipe_lease_check(pipe_stage_leases(s->st), &j->lease);
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
    return rc == 0 ? JOB_DONE : rc == PIPE_EINVAL ? JOB_FAILED : JOB_RETRY;
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

/* run_job — one job under its lease (held by the caller). */
static enum job_result run_job(struct job *j)
{
    struct splitter *s = j->s;
    struct pipe_store *store = pipe_stage_store(s->st);
    pipe_keys_manifest(&s->key, "split", j->id);
    struct pipe_store_obj info;
    int rc = pipe_store_stat(store, s->key.data, &info);
    if (rc == 0) {
        /* Committed by a holder that died before deleting the descriptor. */
        pipe_keys_split_job(&s->key, j->id);
        rc = pipe_store_delete(store, s->key.data);
        return rc == 0 ? JOB_DONE : JOB_RETRY;
    }
    if (rc != PIPE_ENOTFOUND)
        return JOB_RETRY;
    enum job_result res = load(j);
    if (res == JOB_DONE)
        res = route(j);
    if (res == JOB_DONE)
        res = commit(j);
    if (res == JOB_DONE)
        count_job(j);
    return res;
}

/* ---- finding jobs ---- */

static void free_jobs(struct splitter *s)
{
    for (size_t i = 0; i < s->n_jobs; i++)
        pipe_free(s->jobs[i]);
    pipe_free(s->jobs);
    s->jobs = NULL;
    s->n_jobs = s->cursor = 0;
}

struct job_list {
    struct splitter *s;
    size_t cap;
    int64_t oldest;
};

static int add_job(void *arg, const struct pipe_store_obj *o)
{
    struct job_list *l = arg;
    struct splitter *s = l->s;
    char id[PIPE_KEYS_NAME_MAX + 1];
    if (!pipe_keys_job_of(o->key, JOBS_PREFIX, id))
        return 0;
    if (s->n_jobs == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        s->jobs = pipe_realloc(s->jobs, l->cap * sizeof *s->jobs);
    }
    s->jobs[s->n_jobs++] = pipe_strdup(id);
    if (l->oldest == 0 || (o->mtime_ms && o->mtime_ms < l->oldest))
        l->oldest = o->mtime_ms;
    return 0;
}

/* list_jobs — replaces the cached list with the descriptors now pending. */
static int list_jobs(struct splitter *s)
{
    struct pipe_store *store = pipe_stage_store(s->st);
    free_jobs(s);
    struct job_list l = {.s = s};
    int rc = pipe_store_walk(store, JOBS_PREFIX, NULL, LIST_PAGE, add_job, &l);
    if (rc < 0) {
        pipe_log_warn("cannot list split jobs", "err=\"%s\" detail=\"%s\"", pipe_strerror(rc),
                      pipe_store_last_error(store));
        return rc;
    }
    atomic_store(&s->oldest_ms, l.oldest);
    atomic_store(&s->pending, s->n_jobs);
    return 0;
}

static bool has_failed(const struct splitter *s, const char *id)
{
    for (size_t i = 0; i < s->n_failed; i++)
        if (strcmp(s->failed[i], id) == 0)
            return true;
    return false;
}

/* try_job — leases and runs one job. */
static enum job_result try_job(struct splitter *s, const char *id)
{
    struct job j = {.s = s, .id = id};
    char name[PIPE_KEYS_NAME_MAX + 8];
    snprintf(name, sizeof name, "split/%s", id);
    int rc = pipe_lease_acquire(pipe_stage_leases(s->st), name, s->cfg->lease_ttl_ms, &j.lease);
    if (rc == PIPE_EBUSY)
        return JOB_NONE;
    if (rc < 0) {
        pipe_log_warn("cannot take a split job's lease", "job=%s err=\"%s\"", id,
                      pipe_strerror(rc));
        return JOB_RETRY;
    }
    j.renewed_mono = j.start_mono = pipe_clock_mono_ms();
    pipe_manifest_job_init(&j.desc);
    enum job_result res = run_job(&j);
    pipe_manifest_job_cleanup(&j.desc);
    pipe_lease_release(pipe_stage_leases(s->st), &j.lease);
    if (res == JOB_FAILED) {
        pipe_log_error("split job failed; skipped until restart", "job=%s", id);
        pipe_counter_inc(s->m.jobs_failed);
        s->failed = pipe_realloc(s->failed, (s->n_failed + 1) * sizeof *s->failed);
        s->failed[s->n_failed++] = pipe_strdup(id);
    }
    return res;
}

/* splitter_process — works through the cached listing; when it is used up
 * (or nothing in it could be done), lists again. One job per call, so the
 * runtime sees stop requests between jobs. */
static enum pipe_stage_status splitter_process(struct pipe_stage *st, void *state)
{
    struct splitter *s = state;
    bool listed = false;
    for (;;) {
        if (s->cursor >= s->n_jobs) {
            if (listed)
                break;
            if (list_jobs(s) < 0)
                return PIPE_STAGE_RETRY;
            listed = true;
        }
        while (s->cursor < s->n_jobs && !pipe_stage_stopping(st)) {
            const char *id = s->jobs[s->cursor++];
            if (has_failed(s, id))
                continue;
            enum job_result res = try_job(s, id);
            if (res == JOB_DONE)
                return PIPE_STAGE_WORKED;
            if (res == JOB_RETRY)
                return PIPE_STAGE_RETRY;
        }
        if (pipe_stage_stopping(st))
            return PIPE_STAGE_IDLE;
    }
    /* --once must not report success over a job it could not split. */
    if (pipe_stage_common(st)->once && s->n_failed)
        return PIPE_STAGE_FAIL;
    return PIPE_STAGE_IDLE;
}

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

static void register_metrics(struct splitter *s)
{
    struct pipe_metrics *reg = pipe_stage_metrics(s->st);
    struct splitter_metrics *m = &s->m;
    m->events_in = pipe_metrics_counter(reg, "sluice_splitter_events_in_total",
                                        "Lines read from combined objects.", NULL);
    m->events_out = pipe_metrics_counter(reg, "sluice_splitter_events_out_total",
                                         "Events written to split files.", NULL);
    m->rejected = pipe_metrics_counter(reg, "sluice_splitter_events_rejected_total",
                                       "Lines that were not events (unparseable).", NULL);
    m->dup_batch = pipe_metrics_counter(reg, "sluice_splitter_duplicates_dropped_total",
                                        "Duplicate events dropped.", "scope=\"in_batch\"");
    m->dup_cross = pipe_metrics_counter(reg, "sluice_splitter_duplicates_dropped_total",
                                        "Duplicate events dropped.", "scope=\"cross_batch\"");
    m->outputs = pipe_metrics_counter(reg, "sluice_splitter_outputs_written_total",
                                      "Split files written.", NULL);
    m->bytes_in = pipe_metrics_counter(reg, "sluice_splitter_bytes_in_total",
                                       "Compressed bytes of combined objects read.", NULL);
    m->bytes_out = pipe_metrics_counter(reg, "sluice_splitter_bytes_out_total",
                                        "Compressed bytes of split files written.", NULL);
    m->jobs_done =
        pipe_metrics_counter(reg, "sluice_splitter_jobs_done_total", "Split jobs committed.", NULL);
    m->jobs_failed = pipe_metrics_counter(reg, "sluice_splitter_jobs_failed_total",
                                          "Split jobs that cannot succeed (left in place).", NULL);
    m->job_seconds = pipe_metrics_histogram(
        reg, "sluice_splitter_job_seconds", "Time to split and commit one job.", NULL,
        pipe_metrics_seconds_bounds, pipe_metrics_seconds_nbounds);
    pipe_metrics_gauge_fn(reg, "sluice_splitter_freshness_seconds",
                          "Age of the oldest pending split job.", NULL, freshness, s);
    pipe_metrics_gauge_fn(reg, "sluice_splitter_pending_jobs",
                          "Split jobs pending at the last listing.", NULL, pending_jobs, s);
}

static int splitter_init(struct pipe_stage *st, void *cfgp, void **state)
{
    const struct splitter_cfg *cfg = cfgp;
    struct splitter *s = pipe_calloc(1, sizeof *s);
    s->st = st;
    s->cfg = cfg;
    pipe_buf_init(&s->input, cfg->max_input);
    pipe_buf_init(&s->doc, DOC_MAX);
    pipe_buf_init(&s->key, PIPE_STORE_KEY_MAX);
    register_metrics(s);
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
    free_jobs(s);
    for (size_t i = 0; i < s->n_failed; i++)
        pipe_free(s->failed[i]);
    pipe_free(s->failed);
    pipe_buf_cleanup(&s->input);
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
    .process = splitter_process,
    .exit = splitter_exit,
};
