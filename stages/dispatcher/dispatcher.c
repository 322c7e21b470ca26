/* dispatcher — cuts the filtered/ objects that no job holds yet into combine
 * jobs (docs/compaction.md). One dispatcher is active at a time, under the
 * lease "dispatcher"; each pass lists pending descriptors, then per hour
 * partition filtered/ objects and done markers (pending before done, so an
 * input being committed is always seen in one of the two), and writes a
 * descriptor per job. Which partitions a pass lists is tiered (hot ones
 * every pass, the lookback every lookback_every, all every full_scan) and
 * done markers are only listed when there may be something to do: both cut
 * LIST requests, the costliest on S3. The same inputs always give the same
 * job id and the same descriptor bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "libpipe/clock.h"
#include "libpipe/dedup.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/lease.h"
#include "libpipe/log.h"
#include "libpipe/manifest.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/store.h"
#include "libpipe/wake.h"
#include "stages/dispatcher/dispatcher.h"

#define OPT(field) offsetof(struct dispatcher_cfg, field)

static const struct pipe_conf_opt dispatcher_opts[] = {
    {"lookback", PIPE_CONF_DURATION, "3h", OPT(lookback_ms),
     "hour partitions this far back are listed every lookback_every (the current hour, and the "
     "previous one in the first 5 minutes of an hour, on every pass)",
     0, 30 * PIPE_DAY_MS, NULL},
    {"lookback_every", PIPE_CONF_DURATION, "30s", OPT(lookback_every_ms),
     "how often the whole lookback is listed (bounds how late a late object in it is found); 0 "
     "every pass",
     0, PIPE_DAY_MS, NULL},
    {"full_scan", PIPE_CONF_DURATION, "10m", OPT(full_scan_ms),
     "how often every partition under filtered/ is listed (bounds how late a late object "
     "outside the lookback is found)",
     1000, 7 * PIPE_DAY_MS, NULL},
    {"job_bytes", PIPE_CONF_SIZE, "128MiB", OPT(job_bytes),
     "most compressed input bytes in one combine job", 1024, 1LL << 40, NULL},
    {"job_objects", PIPE_CONF_INT, "1000", OPT(job_objects),
     "most input objects in one combine job", 1, 100000, "N"},
    {"max_wait", PIPE_CONF_DURATION, "2s", OPT(max_wait_ms),
     "a job smaller than the limits is written once its oldest input is this old", 0, PIPE_DAY_MS,
     NULL},
    {"lease_ttl", PIPE_CONF_DURATION, PIPE_KEYS_DISPATCHER_LEASE_TTL, OPT(lease_ttl_ms),
     "TTL of the dispatcher lease (a dead dispatcher is replaced within it)", 100, PIPE_HOUR_MS,
     NULL},
    {"sweep_every", PIPE_CONF_DURATION, "1h", OPT(sweep_every_ms),
     "how often the active dispatcher runs the retention sweep (as `sluicectl sweep`); 0 never. "
     "--once never sweeps",
     0, 30 * PIPE_DAY_MS, NULL},
    {"retention", PIPE_CONF_JSON, NULL, OPT(retention),
     "retention per prefix for the sweep, a JSON object of durations overriding the defaults "
     "{\"raw\":\"7d\",\"filtered\":\"7d\",\"rejected\":\"30d\",\"combined\":\"30d\","
     "\"split\":\"90d\"}; filtered and combined at least 1h; \"dedup\" (state/dedup/) defaults "
     "to the longest of dedup_window, filtered and combined, and may not be shorter",
     0, 0, "JSON"},
    {"dedup_window", PIPE_CONF_DURATION, PIPE_DEDUP_WINDOW_DEFAULT, OPT(dedup_window_ms),
     "the splitters' de-duplication window (set it at the top level of the config file, which "
     "every program reads): the sweep keeps state/dedup/ index objects at least this long",
     PIPE_DEDUP_WINDOW_MIN_MS, PIPE_DEDUP_WINDOW_MAX_MS, NULL},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

/* What one pass saw, for the gauges. */
struct pass {
    int64_t now_ms;
    bool once;
    bool fresh;            /* full scan: list every done set, cached or not */
    int64_t lookback_from; /* first hour of the lookback: done sets from it on are cached */
    uint64_t backlog_objects, backlog_bytes; /* eligible when listed */
    int64_t oldest_unassigned_ms;            /* mtime; 0 = none left */
    int64_t wake_at_ms;                      /* when the first waiting job is due; 0 = none */
    uint64_t jobs_written;
};

static int dispatcher_validate(void *cfgp, char *err, size_t errlen)
{
    const struct dispatcher_cfg *c = cfgp;
    if (c->lease_ttl_ms < 4 * c->common.poll_ms) {
        snprintf(err, errlen,
                 "lease_ttl must be at least 4 x poll: the lease is checked once per pass, and "
                 "a shorter TTL lets a pass that is late by a poll or two find it expired");
        return -1;
    }
    return disp_sweep_validate(c, err, errlen);
}

/* ---- the lease --------------------------------------------------------- */

static void lease_lost(struct dispatcher *d, int rc)
{
    pipe_counter_inc(d->m.lease_lost);
    pipe_log_warn("dispatcher lease lost; writing stops", "err=\"%s\"", pipe_strerror(rc));
    pipe_job_lease_release(d->lease);
    d->lease = NULL;
}

/* hold_lease — checks the lease held, or takes it if nobody holds it.
 * 0, PIPE_EBUSY (another dispatcher is active) or a backend error. */
static int hold_lease(struct dispatcher *d)
{
    int rc;
    if (d->lease) {
        rc = pipe_job_lease_check(d->lease);
        if (rc != PIPE_ELOST)
            return rc;
        lease_lost(d, rc);
    }
    rc = pipe_job_lease_take(pipe_stage_leases(d->st), PIPE_KEYS_LEASE_DISPATCHER,
                             d->cfg->lease_ttl_ms, &d->lease);
    if (rc < 0)
        return rc;
    /* A new holder does not know what its predecessor scanned or swept:
     * it starts with a full scan and lists every done set afresh. */
    d->last_full_scan_mono = 0;
    d->last_lookback_mono = 0;
    disp_done_prune(d, INT64_MAX);
    d->last_sweep_mono = 0;
    pipe_counter_inc(d->m.lease_acquired);
    pipe_log_info("dispatcher lease acquired", "fence=%llu",
                  (unsigned long long)pipe_job_lease_get(d->lease)->fence);
    return 0;
}

/* disp_keep_lease — before each partition, right before each write and
 * during a sweep: the lease must still be ours (the runtime's thread
 * renews it, so a long pass does not let it lapse). */
int disp_keep_lease(struct dispatcher *d)
{
    if (d->lease == NULL)
        return PIPE_ELOST;
    int rc = pipe_job_lease_check(d->lease);
    if (rc == PIPE_ELOST)
        lease_lost(d, rc);
    return rc;
}

/* ---- jobs -------------------------------------------------------------- */

/* write_job — writes the descriptor of one job: the inputs objs[0..n) of
 * the partition hour, in key order. */
static int write_job(struct dispatcher *d, int64_t hour, const struct disp_obj *const *objs,
                     size_t n)
{
    struct pipe_buf h, id, out_key, key, json;
    struct pipe_manifest_job job;
    pipe_buf_init(&h, n * (PIPE_STORE_KEY_MAX + 80));
    pipe_buf_init(&id, PIPE_KEYS_NAME_MAX);
    pipe_buf_init(&out_key, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&json, 64u << 20);
    pipe_manifest_job_init(&job);
    int rc = 0;
    /* The id hashes "key NUL etag NUL" for each input in key order: the same
     * object versions always make the same job. */
    int64_t newest = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = pipe_buf_append(&h, objs[i]->key, strlen(objs[i]->key) + 1);
        if (rc == 0)
            rc = pipe_buf_append(&h, objs[i]->etag, strlen(objs[i]->etag) + 1);
        if (objs[i]->mtime_ms > newest)
            newest = objs[i]->mtime_ms;
    }
    if (rc == 0)
        rc = pipe_keys_job_id(&id, (unsigned)d->cfg->common.generation, hour,
                              XXH3_64bits(h.data, h.len));
    if (rc == 0)
        rc = pipe_keys_combined(&out_key, hour, id.data);
    if (rc == 0)
        rc = pipe_keys_job(&key, id.data);
    if (rc < 0)
        goto out;
    job.job_id = pipe_strdup(id.data);
    job.generation = (unsigned)d->cfg->common.generation;
    job.created_ms = newest; /* not the clock: a re-run writes the same bytes */
    job.output_key = pipe_strdup(out_key.data);
    for (size_t i = 0; i < n; i++)
        pipe_manifest_job_add_input(&job, objs[i]->key, objs[i]->size, objs[i]->etag);
    rc = pipe_manifest_job_to_json(&job, &json);
    if (rc == 0)
        rc = disp_keep_lease(d);
    if (rc == 0)
        rc = pipe_store_put(pipe_stage_store(d->st), key.data, json.data, json.len);
    if (rc < 0)
        goto out;
    pipe_wake_bump(pipe_stage_wake(d->st), PIPE_KEYS_JOBS_COMBINE);
    disp_cache_add(d, id.data, objs, n);
    pipe_counter_inc(d->m.jobs);
    pipe_counter_add(d->m.inputs, n);
    pipe_log_info("job written", "job=%s inputs=%zu", id.data, n);
out:
    if (rc < 0 && rc != PIPE_ELOST)
        pipe_log_error("cannot write a job descriptor", "job=%s err=\"%s\" detail=\"%s\"",
                       id.data ? id.data : "-", pipe_strerror(rc),
                       pipe_store_last_error(pipe_stage_store(d->st)));
    pipe_manifest_job_cleanup(&job);
    pipe_buf_cleanup(&json);
    pipe_buf_cleanup(&key);
    pipe_buf_cleanup(&out_key);
    pipe_buf_cleanup(&id);
    pipe_buf_cleanup(&h);
    return rc;
}

/* cut_jobs — the eligible objects of one partition, in key order, into jobs
 * of at most job_bytes and job_objects. The last group, when it is not
 * full, waits for max_wait after its oldest object (or the end of the hour)
 * so that jobs are big at high volume and latency stays low at low volume. */
static int cut_jobs(struct dispatcher *d, int64_t hour, const struct disp_obj *const *elig,
                    size_t n, struct pass *p)
{
    const struct dispatcher_cfg *c = d->cfg;
    size_t start = 0;
    while (start < n) {
        size_t end = start;
        uint64_t bytes = 0;
        int64_t oldest = INT64_MAX;
        while (end < n && end - start < (size_t)c->job_objects &&
               (end == start || bytes + elig[end]->size <= c->job_bytes)) {
            bytes += elig[end]->size;
            if (elig[end]->mtime_ms < oldest)
                oldest = elig[end]->mtime_ms;
            end++;
        }
        bool full = end < n || end - start >= (size_t)c->job_objects || bytes >= c->job_bytes;
        bool ready = full || p->once || oldest <= p->now_ms - c->max_wait_ms ||
                     hour + PIPE_HOUR_MS <= p->now_ms;
        if (!ready) {
            if (p->oldest_unassigned_ms == 0 || oldest < p->oldest_unassigned_ms)
                p->oldest_unassigned_ms = oldest;
            /* Nothing may be written meanwhile: the next pass must still
             * come when this group is ready. */
            int64_t due = oldest + c->max_wait_ms < hour + PIPE_HOUR_MS ? oldest + c->max_wait_ms
                                                                        : hour + PIPE_HOUR_MS;
            if (p->wake_at_ms == 0 || due < p->wake_at_ms)
                p->wake_at_ms = due;
            break;
        }
        int rc = write_job(d, hour, elig + start, end - start);
        if (rc < 0)
            return rc;
        p->jobs_written++;
        start = end;
    }
    return 0;
}

static int key_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* done_has — whether done (keys "<plen bytes of prefix><name>", sorted)
 * holds name. */
static bool done_has(const struct disp_objs *done, size_t plen, const char *name)
{
    size_t lo = 0, hi = done->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(done->v[mid].key + plen, name);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* select_eligible — filtered − done − pending, in key order, into elig;
 * its count. quiet: do not log stray keys (a first try with an older done
 * set; the real one logs them). */
static size_t select_eligible(int64_t hour, const struct disp_objs *filtered,
                              const struct disp_objs *done, size_t plen, const char **pending,
                              size_t n_pending, const struct disp_obj **elig, bool quiet)
{
    size_t n = 0;
    for (size_t i = 0; i < filtered->n; i++) {
        const struct disp_obj *o = &filtered->v[i];
        struct pipe_key_parts parts;
        if (pipe_keys_parse(o->key, &parts) < 0 || parts.hour_ms != hour) {
            if (!quiet)
                pipe_log_warn("ignoring a key under filtered/ that is not a data object", "key=%s",
                              o->key);
            continue;
        }
        if (done_has(done, plen, parts.name))
            continue;
        const char *k = o->key;
        if (n_pending && bsearch(&k, pending, n_pending, sizeof *pending, key_ptr_cmp))
            continue;
        elig[n++] = o;
    }
    return n;
}

/* dispatch_partition — filtered/ objects, then done markers of one hour;
 * eligible = filtered − done − pending, cut into jobs.
 *
 * The done markers are listed only when they could matter. With a done set
 * listed earlier by this process (cached), eligible is computed first
 * against it: a marker is never deleted while its filtered/ object exists
 * (the sweep deletes the object first), so for the objects listed now the
 * cached set is a subset of the current one, and what is eligible against
 * the current set is a subset of what is eligible against the cached one.
 * If that is empty, so is the real answer, whoever wrote jobs or markers
 * meanwhile: nothing to write, no LIST. Otherwise the markers are listed
 * afresh, after pending (see the file comment), and eligible recomputed —
 * the same answer as without the cache. (The one exception: an object
 * swept and then written again under its old key — a filter replay with a
 * filtered/ retention shorter than the lookback — while its old marker is
 * still cached; it waits for the next full scan, which lists every done set
 * afresh.) */
static int dispatch_partition(struct dispatcher *d, int64_t hour, const char **pending,
                              size_t n_pending, struct pass *p)
{
    struct pipe_store *s = pipe_stage_store(d->st);
    struct disp_objs done = {0}, filtered = {0};
    const struct disp_obj **elig = NULL;
    size_t n_elig = 0, plen = 0;
    struct pipe_buf prefix;
    pipe_buf_init(&prefix, PIPE_STORE_KEY_MAX);
    int rc = pipe_keys_hour_prefix(&prefix, "state/combine", hour);
    if (rc == 0) {
        plen = prefix.len;
        rc = pipe_keys_hour_prefix(&prefix, "filtered", hour);
    }
    if (rc == 0)
        rc = disp_list(s, prefix.data, &filtered);
    if (rc < 0)
        goto out;
    elig = pipe_malloc((filtered.n ? filtered.n : 1) * sizeof *elig);
    const struct disp_objs *cached = p->fresh ? NULL : disp_done_find(d, hour);
    if (cached &&
        select_eligible(hour, &filtered, cached, plen, pending, n_pending, elig, true) == 0)
        goto out;
    rc = pipe_keys_hour_prefix(&prefix, "state/combine", hour);
    if (rc == 0)
        rc = disp_list(s, prefix.data, &done);
    if (rc < 0)
        goto out;
    n_elig = select_eligible(hour, &filtered, &done, plen, pending, n_pending, elig, false);
    for (size_t i = 0; i < n_elig; i++) {
        p->backlog_objects++;
        p->backlog_bytes += elig[i]->size;
    }
    if (hour >= p->lookback_from)
        disp_done_keep(d, hour, &done);
    rc = cut_jobs(d, hour, elig, n_elig, p);
out:
    if (rc < 0 && rc != PIPE_ELOST)
        pipe_log_error("cannot list a partition", "prefix=%s err=\"%s\" detail=\"%s\"",
                       prefix.data ? prefix.data : "-", pipe_strerror(rc),
                       pipe_store_last_error(s));
    pipe_free(elig);
    disp_objs_cleanup(&filtered);
    disp_objs_cleanup(&done);
    pipe_buf_cleanup(&prefix);
    return rc;
}

/* ---- the pass ---------------------------------------------------------- */

/* What can give a pass something to do: new filtered/ objects, and a
 * combine job gone (done markers, or inputs handed back by a drop). */
static const char *const disp_watched[] = {PIPE_WAKE_FILTERED, PIPE_WAKE_COMBINE_DONE};

static bool full_scan_due(struct dispatcher *d, const struct pass *p)
{
    return p->once || d->last_full_scan_mono == 0 ||
           pipe_clock_mono_ms() - d->last_full_scan_mono >= d->cfg->full_scan_ms;
}

static bool lookback_due(struct dispatcher *d)
{
    return d->last_lookback_mono == 0 ||
           pipe_clock_mono_ms() - d->last_lookback_mono >= d->cfg->lookback_every_ms;
}

/* pass_scan — which partitions this pass lists, or false in *run when a
 * pass can find nothing the last ones did not (d->watch, read before):
 * a tier whose timer is due is listed only when a generation moved since
 * its last listing or idle_list passed (late objects come from a filter,
 * which bumps filtered/), and the hot partitions when one moved, idle_list
 * passed, or a waiting job falls due (what the last pass knew suffices for
 * that). A new lease holder and --once always list everything. */
static enum disp_scan pass_scan(struct dispatcher *d, const struct pass *p, bool *run)
{
    *run = true;
    if (p->once || d->last_full_scan_mono == 0)
        return DISP_SCAN_FULL;
    if (full_scan_due(d, p) && pipe_wake_watch_due(d->watch, DISP_MARK_FULL))
        return DISP_SCAN_FULL;
    if (lookback_due(d) && pipe_wake_watch_due(d->watch, DISP_MARK_LOOKBACK))
        return DISP_SCAN_LOOKBACK;
    *run = pipe_wake_watch_due(d->watch, DISP_MARK_HOT) ||
           (d->wake_at_ms && p->now_ms >= d->wake_at_ms);
    return DISP_SCAN_HOT;
}

/* passed — a pass went through: what the watch read before it is listed. */
static void passed(struct dispatcher *d, enum disp_scan scan, const struct pass *p)
{
    pipe_wake_watch_listed(d->watch, DISP_MARK_HOT);
    if (scan != DISP_SCAN_HOT)
        pipe_wake_watch_listed(d->watch, DISP_MARK_LOOKBACK);
    if (scan == DISP_SCAN_FULL)
        pipe_wake_watch_listed(d->watch, DISP_MARK_FULL);
    d->wake_at_ms = p->wake_at_ms;
    d->oldest_unassigned_ms = p->oldest_unassigned_ms;
}

static int run_pass(struct dispatcher *d, struct pass *p, enum disp_scan scan)
{
    const char **pending = NULL;
    size_t n_pending = 0, n_hours = 0;
    int64_t *hours = NULL;
    bool full = scan == DISP_SCAN_FULL;
    p->fresh = full;
    p->lookback_from = disp_lookback_from(d, p->now_ms);
    disp_done_prune(d, p->lookback_from);
    /* Pending before done before filtered: see the file comment. */
    int rc = disp_load_pending(d, &pending, &n_pending);
    if (rc < 0) {
        pipe_log_error("cannot read pending jobs", "err=\"%s\" detail=\"%s\"", pipe_strerror(rc),
                       pipe_store_last_error(pipe_stage_store(d->st)));
        goto out;
    }
    rc = disp_partitions(d, p->now_ms, scan, &hours, &n_hours);
    if (rc < 0) {
        pipe_log_error("cannot list filtered/ partitions", "err=\"%s\"", pipe_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < n_hours && rc == 0; i++) {
        if (pipe_stage_stopping(d->st))
            break;
        rc = disp_keep_lease(d);
        if (rc == 0)
            rc = dispatch_partition(d, hours[i], pending, n_pending, p);
    }
    if (rc == 0 && full)
        d->last_full_scan_mono = pipe_clock_mono_ms();
    if (rc == 0 && scan != DISP_SCAN_HOT)
        d->last_lookback_mono = pipe_clock_mono_ms();
    if (rc == 0 && !pipe_stage_stopping(d->st))
        passed(d, scan, p);
out:
    pipe_free(hours);
    pipe_free(pending);
    return rc;
}

static enum pipe_stage_status dispatcher_process(struct pipe_stage *st, void *state)
{
    struct dispatcher *d = state;
    int rc = hold_lease(d);
    pipe_gauge_set(d->m.active, rc == 0 ? 1.0 : 0.0);
    if (rc == PIPE_EBUSY) {
        /* Standby: the active dispatcher reports the backlog. */
        pipe_gauge_set(d->m.backlog_objects, 0);
        pipe_gauge_set(d->m.backlog_bytes, 0);
        pipe_gauge_set(d->m.freshness, 0);
        if (pipe_stage_common(st)->once)
            pipe_log_info("another dispatcher is active; nothing to do", NULL);
        return PIPE_STAGE_IDLE;
    }
    if (rc < 0) {
        pipe_log_warn("cannot reach the lease backend", "err=\"%s\" detail=\"%s\"",
                      pipe_strerror(rc), pipe_leases_last_error(pipe_stage_leases(st)));
        return PIPE_STAGE_RETRY;
    }
    struct pass p = {
        .now_ms = pipe_clock_now_ms(),
        .once = pipe_stage_common(st)->once,
    };
    bool run;
    pipe_wake_watch_read(d->watch); /* before any listing of the pass */
    enum disp_scan scan = pass_scan(d, &p, &run);
    if (run) {
        rc = run_pass(d, &p, scan);
        pipe_gauge_set(d->m.backlog_objects, (double)p.backlog_objects);
        pipe_gauge_set(d->m.backlog_bytes, (double)p.backlog_bytes);
    } else {
        pipe_wake_watch_skipped(d->watch);
    }
    pipe_gauge_set(d->m.freshness, d->oldest_unassigned_ms
                                       ? (double)(p.now_ms - d->oldest_unassigned_ms) / 1000.0
                                       : 0.0);
    if (rc == 0 && !p.once && !pipe_stage_stopping(st))
        rc = disp_sweep_maybe(d);
    if (rc < 0 && rc != PIPE_ELOST)
        return PIPE_STAGE_RETRY;
    /* After a lost lease, the next round finds out who is active now. */
    return p.jobs_written ? PIPE_STAGE_WORKED : PIPE_STAGE_IDLE;
}

/* ---- the stage --------------------------------------------------------- */

#define DISP_METRIC(kind, field, name, help)                                                       \
    PIPE_METRIC(kind, struct disp_metrics, field, name, help)

static const struct pipe_metric_def disp_metric_defs[] = {
    DISP_METRIC(COUNTER, jobs, "sluice_dispatcher_jobs_total", "Combine job descriptors written."),
    DISP_METRIC(COUNTER, inputs, "sluice_dispatcher_inputs_total",
                "filtered/ objects assigned to a combine job."),
    DISP_METRIC(COUNTER, lease_acquired, "sluice_dispatcher_lease_acquired_total",
                "Times this process became the active dispatcher."),
    DISP_METRIC(COUNTER, lease_lost, "sluice_dispatcher_lease_lost_total",
                "Times the dispatcher lease was lost while held."),
    DISP_METRIC(COUNTER, bad_descriptors, "sluice_dispatcher_bad_descriptors_total",
                "Job descriptors under jobs/combine/ that did not parse."),
    DISP_METRIC(GAUGE, backlog_objects, "sluice_dispatcher_backlog_objects",
                "filtered/ objects in neither a job nor done, at the last pass."),
    DISP_METRIC(GAUGE, backlog_bytes, "sluice_dispatcher_backlog_bytes",
                "Bytes of those objects (compressed), at the last pass."),
    DISP_METRIC(GAUGE, pending_jobs, "sluice_dispatcher_pending_jobs",
                "Combine job descriptors waiting for a combiner."),
    DISP_METRIC(GAUGE, active, "sluice_dispatcher_active",
                "1 while this process holds the dispatcher lease."),
    DISP_METRIC(
        GAUGE, freshness, "sluice_dispatcher_freshness_seconds",
        "Age of the oldest filtered/ object still in no job after the last pass (0: none)."),
    {0},
};

static int dispatcher_init(struct pipe_stage *st, void *cfgp, void **state)
{
    struct dispatcher *d = pipe_calloc(1, sizeof *d);
    d->st = st;
    d->cfg = cfgp;
    pipe_metrics_register_table(pipe_stage_metrics(st), disp_metric_defs, &d->m, d);
    disp_sweep_init(d);
    d->watch = pipe_wake_watch_new(pipe_stage_wake(st), "dispatcher", disp_watched, 2);
    *state = d;
    return 0;
}

static void dispatcher_exit(struct pipe_stage *st, void *state)
{
    struct dispatcher *d = state;
    (void)st;
    int rc = pipe_job_lease_release(d->lease);
    if (rc < 0)
        pipe_log_warn("cannot release the dispatcher lease", "err=\"%s\"", pipe_strerror(rc));
    disp_cache_free(d);
    disp_done_prune(d, INT64_MAX);
    pipe_wake_watch_free(d->watch);
    pipe_free(d);
}

const struct pipe_stage_desc dispatcher_stage = {
    .name = "dispatcher",
    .summary = "Groups filtered/ objects that are not yet combined into combine jobs sized by "
               "bytes and object count, and writes their descriptors to jobs/combine/. One "
               "dispatcher is active at a time (lease \"dispatcher\"); others stand by. The "
               "active dispatcher also runs the retention sweep every --sweep-every (the rules "
               "of `sluicectl sweep`; never with --once).",
    .opts = dispatcher_opts,
    .cfg_size = sizeof(struct dispatcher_cfg),
    .validate = dispatcher_validate,
    .needs_leases = true,
    .init = dispatcher_init,
    .process = dispatcher_process,
    .exit = dispatcher_exit,
};
