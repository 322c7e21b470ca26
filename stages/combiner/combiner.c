/* combiner — merges the inputs of each combine job into one combined/
 * object (docs/compaction.md). Each round lists jobs/combine/, takes the
 * first job whose lease `combine/<job-id>` is free and runs it; many
 * combiners share the work through those leases. */
#include <stdio.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/store.h"
#include "stages/combiner/combiner.h"

#define OPT(field)  offsetof(struct combiner_cfg, field)
#define JOBS_PREFIX "jobs/combine/"
#define LIST_PAGE   1000

static const struct pipe_conf_opt combiner_opts[] = {
    {"lease_ttl", PIPE_CONF_DURATION, "60s", OPT(lease_ttl_ms),
     "TTL of a job's lease (renewed while the job runs)", 1000, 3600000, NULL},
    {"zstd_level", PIPE_CONF_INT, "1", OPT(zstd_level),
     "compression level of combined objects (recompress mode)", -5, 19, "N"},
    {"max_input", PIPE_CONF_SIZE, "256MiB", OPT(max_input),
     "largest input object, stored and decoded", 1024, 1LL << 36, NULL},
    {"max_output", PIPE_CONF_SIZE, "1GiB", OPT(max_output), "largest combined object (compressed)",
     1 << 20, 1LL << 38, NULL},
    {"mode", PIPE_CONF_STR, "auto", OPT(mode),
     "recompress (inputs into one new zstd frame), concat (inputs' frames copied as they are) "
     "or auto (copy inputs of concat_min or more, recompress smaller ones)",
     0, 0, "MODE"},
    {"concat_min", PIPE_CONF_SIZE, "1MiB", OPT(concat_min),
     "in auto mode, inputs at least this big (stored) are copied, not recompressed", 0, 1LL << 40,
     NULL},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static int combiner_validate(void *cfgp, char *err, size_t errlen)
{
    const struct combiner_cfg *c = cfgp;
    if (strcmp(c->mode, "recompress") != 0 && strcmp(c->mode, "concat") != 0 &&
        strcmp(c->mode, "auto") != 0) {
        snprintf(err, errlen, "mode must be recompress, concat or auto, not '%s'", c->mode);
        return -1;
    }
    return 0;
}

static int collect(void *arg, const struct pipe_store_obj *o)
{
    struct pipe_store_list *all = arg;
    /* Grow by doubling: count is a power of two exactly when full. */
    if ((all->count & (all->count - 1)) == 0)
        all->items =
            pipe_realloc(all->items, (all->count ? all->count * 2 : 1) * sizeof *all->items);
    all->items[all->count] = *o;
    all->items[all->count++].key = pipe_strdup(o->key);
    return 0;
}

/* Pending descriptors, oldest first by key page; also sets the freshness
 * gauge from the oldest mtime. */
static int list_jobs(struct combiner *c, struct pipe_store_list *all)
{
    int rc = pipe_store_walk(pipe_stage_store(c->st), JOBS_PREFIX, NULL, LIST_PAGE, collect, all);
    int64_t oldest = 0;
    for (size_t i = 0; i < all->count; i++)
        if (oldest == 0 || all->items[i].mtime_ms < oldest)
            oldest = all->items[i].mtime_ms;
    pipe_gauge_set(c->m.pending_jobs, (double)all->count);
    pipe_gauge_set(c->m.freshness, oldest ? (double)(pipe_clock_now_ms() - oldest) / 1000.0 : 0.0);
    return rc;
}

/* try_job — takes the job's lease and runs it. PIPE_EBUSY when another
 * combiner has it; otherwise what comb_run_job said. */
static int try_job(struct combiner *c, const char *id)
{
    struct pipe_leases *ls = pipe_stage_leases(c->st);
    struct pipe_lease lease = {0};
    char name[PIPE_KEYS_NAME_MAX + 16];
    snprintf(name, sizeof name, "combine/%s", id);
    int rc = pipe_lease_acquire(ls, name, c->cfg->lease_ttl_ms, &lease);
    if (rc < 0)
        return rc;
    rc = comb_run_job(c, id, &lease);
    if (rc == PIPE_ELOST) {
        pipe_counter_inc(c->m.lease_lost);
        pipe_log_warn("job lease lost; abandoned without committing", "job=%s", id);
    } else if (rc == PIPE_ESHUTDOWN) {
        pipe_counter_inc(c->m.abandoned);
        pipe_log_info("stopping: job abandoned before its commit", "job=%s", id);
    } else if (rc == PIPE_ECORRUPT) {
        pipe_counter_inc(c->m.invalid);
    } else if (rc < 0 && rc != PIPE_ENOTFOUND) {
        pipe_log_warn("job failed; will retry", "job=%s err=\"%s\" detail=\"%s\"", id,
                      pipe_strerror(rc), pipe_store_last_error(pipe_stage_store(c->st)));
    }
    int rrc = pipe_lease_release(ls, &lease);
    if (rrc < 0 && rrc != PIPE_ELOST)
        pipe_log_warn("cannot release a job lease", "job=%s err=\"%s\"", id, pipe_strerror(rrc));
    return rc;
}

/* One round: the first job this combiner can lease is run. Jobs that are
 * invalid are skipped (they stay for an operator), so one bad descriptor
 * does not hold up the others; once only they are left, the round says
 * RETRY (or, with --once, FAIL: they cannot be done). */
static enum pipe_stage_status combiner_process(struct pipe_stage *st, void *state)
{
    struct combiner *c = state;
    struct pipe_store_list jobs = {0};
    enum pipe_stage_status status = PIPE_STAGE_IDLE;
    size_t invalid = 0;
    int rc = list_jobs(c, &jobs);
    if (rc < 0) {
        pipe_log_error("cannot list jobs", "err=\"%s\" detail=\"%s\"", pipe_strerror(rc),
                       pipe_store_last_error(pipe_stage_store(st)));
        status = PIPE_STAGE_RETRY;
        goto out;
    }
    for (size_t i = 0; i < jobs.count; i++) {
        char id[PIPE_KEYS_NAME_MAX + 1];
        if (pipe_stage_stopping(st))
            break;
        if (!pipe_keys_job_of(jobs.items[i].key, JOBS_PREFIX, id))
            continue;
        rc = try_job(c, id);
        if (rc == 0) {
            status = PIPE_STAGE_WORKED;
            break;
        }
        if (rc == PIPE_EBUSY || rc == PIPE_ENOTFOUND)
            continue;
        if (rc == PIPE_ECORRUPT) {
            invalid++;
            continue;
        }
        status = PIPE_STAGE_RETRY; /* lease lost, stopping, or the store failed */
        break;
    }
    if (status == PIPE_STAGE_IDLE && invalid > 0)
        status = pipe_stage_common(st)->once ? PIPE_STAGE_FAIL : PIPE_STAGE_RETRY;
out:
    pipe_store_list_cleanup(&jobs);
    return status;
}

/* ---- the stage --------------------------------------------------------- */

static void register_metrics(struct combiner *c)
{
    struct pipe_metrics *reg = pipe_stage_metrics(c->st);
    struct comb_metrics *m = &c->m;
    m->jobs = pipe_metrics_counter(reg, "sluice_combiner_jobs_total",
                                   "Combine jobs finished (committed and cleaned up).", NULL);
    m->recovered = pipe_metrics_counter(
        reg, "sluice_combiner_jobs_recovered_total",
        "Jobs found committed by an earlier holder; only their cleanup was redone.", NULL);
    m->events_in = pipe_metrics_counter(reg, "sluice_combiner_events_in_total",
                                        "Events read from filtered/ inputs.", NULL);
    m->events_out = pipe_metrics_counter(reg, "sluice_combiner_events_out_total",
                                         "Events written to combined/ objects.", NULL);
    m->bytes_in = pipe_metrics_counter(reg, "sluice_combiner_bytes_in_total",
                                       "Stored (compressed) bytes of inputs read.", NULL);
    m->bytes_out = pipe_metrics_counter(reg, "sluice_combiner_bytes_out_total",
                                        "Stored (compressed) bytes of combined objects.", NULL);
    m->invalid = pipe_metrics_counter(
        reg, "sluice_combiner_invalid_jobs_total",
        "Job runs refused: an input is undecodable or over max_input, or the descriptor is bad.",
        NULL);
    m->lease_lost = pipe_metrics_counter(reg, "sluice_combiner_lease_lost_total",
                                         "Jobs abandoned because their lease was lost.", NULL);
    m->abandoned = pipe_metrics_counter(reg, "sluice_combiner_jobs_abandoned_total",
                                        "Jobs abandoned before commit on a stop signal.", NULL);
    m->superseded = pipe_metrics_counter(
        reg, "sluice_combiner_jobs_superseded_total",
        "Jobs dropped because another job had already combined one of their inputs.", NULL);
    m->replanned = pipe_metrics_counter(
        reg, "sluice_combiner_jobs_replanned_total",
        "Jobs dropped because an input changed or vanished since the dispatcher wrote them; "
        "the dispatcher plans their inputs again.",
        NULL);
    m->duration = pipe_metrics_histogram(reg, "sluice_combiner_job_seconds",
                                         "Time to run one job, lease to cleanup.", NULL,
                                         pipe_metrics_seconds_bounds, pipe_metrics_seconds_nbounds);
    m->pending_jobs =
        pipe_metrics_gauge(reg, "sluice_combiner_pending_jobs",
                           "Descriptors under jobs/combine/ at the last round.", NULL);
    m->freshness = pipe_metrics_gauge(
        reg, "sluice_combiner_freshness_seconds",
        "Age of the oldest pending combine job descriptor at the last round (0: none).", NULL);
}

static int combiner_init(struct pipe_stage *st, void *cfgp, void **state)
{
    const struct combiner_cfg *cfg = cfgp;
    struct combiner *c = pipe_calloc(1, sizeof *c);
    c->st = st;
    c->cfg = cfg;
    c->mode = strcmp(cfg->mode, "concat") == 0       ? COMB_CONCAT
              : strcmp(cfg->mode, "recompress") == 0 ? COMB_RECOMPRESS
                                                     : COMB_AUTO;
    pipe_buf_init(&c->in, cfg->max_input);
    pipe_buf_init(&c->dec, cfg->max_input);
    pipe_buf_init(&c->out, cfg->max_output);
    c->xx = XXH3_createState();
    int rc = pipe_zwriter_new((int)cfg->zstd_level, &c->out, &c->zw);
    if (rc < 0 || c->xx == NULL) {
        pipe_log_error("cannot set up compression", "err=\"%s\"", pipe_strerror(rc));
        XXH3_freeState(c->xx);
        pipe_buf_cleanup(&c->out);
        pipe_buf_cleanup(&c->dec);
        pipe_buf_cleanup(&c->in);
        pipe_free(c);
        return rc < 0 ? rc : PIPE_EIO;
    }
    register_metrics(c);
    *state = c;
    return 0;
}

static void combiner_exit(struct pipe_stage *st, void *state)
{
    struct combiner *c = state;
    (void)st;
    pipe_zwriter_free(c->zw);
    XXH3_freeState(c->xx);
    pipe_buf_cleanup(&c->out);
    pipe_buf_cleanup(&c->dec);
    pipe_buf_cleanup(&c->in);
    pipe_free(c);
}

const struct pipe_stage_desc combiner_stage = {
    .name = "combiner",
    .summary = "Takes combine jobs from jobs/combine/ under lease, merges each job's filtered/ "
               "inputs into one combined/ object with a manifest, hands the object to the "
               "splitter (jobs/split/) and marks the inputs done. Run as many as you like.",
    .opts = combiner_opts,
    .cfg_size = sizeof(struct combiner_cfg),
    .validate = combiner_validate,
    .needs_leases = true,
    .init = combiner_init,
    .process = combiner_process,
    .exit = combiner_exit,
};
