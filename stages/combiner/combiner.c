/* combiner — merges the inputs of each combine job into one combined/
 * object (docs/compaction.md). The runtime's job runner (libpipe/job.h)
 * lists jobs/combine/ and takes each job under its lease; many combiners
 * share the work through those leases. This file is the descriptor, the
 * options and what a job's outcome counts in /metrics. */
#include <stdio.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/job.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/store.h"
#include "stages/combiner/combiner.h"

#define OPT(field) offsetof(struct combiner_cfg, field)

static const struct pipe_conf_opt combiner_opts[] = {
    {"lease_ttl", PIPE_CONF_DURATION, PIPE_KEYS_JOB_LEASE_TTL, OPT(lease_ttl_ms),
     "TTL of a job's lease (renewed while the job runs)", 1000, PIPE_HOUR_MS, NULL},
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
    {"concat_min", PIPE_CONF_SIZE, "64KiB", OPT(concat_min),
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

/* ---- the job runner's callbacks ---------------------------------------- */

static int combiner_run(void *state, const char *id, struct pipe_job_lease *lease)
{
    return comb_run_job(state, id, lease);
}

static void combiner_listed(void *state, size_t pending, int64_t oldest_ms)
{
    struct combiner *c = state;
    pipe_gauge_set(c->m.pending_jobs, (double)pending);
    pipe_gauge_set(c->m.freshness,
                   oldest_ms ? (double)(pipe_clock_now_ms() - oldest_ms) / 1000.0 : 0.0);
}

static void combiner_failed(void *state, const char *id, int rc)
{
    struct combiner *c = state;
    (void)id;
    (void)rc;
    pipe_counter_inc(c->m.invalid);
}

static void combiner_abandoned(void *state, const char *id, int rc)
{
    struct combiner *c = state;
    (void)id;
    pipe_counter_inc(rc == PIPE_ELOST ? c->m.lease_lost : c->m.abandoned);
}

/* A job that cannot be run as described (an invalid one) stays for an
 * operator and does not hold up the others; while only such jobs are left
 * the runner retries after a back-off (or, with --once, fails). */
static const struct pipe_job_kind combine_jobs = {
    .what = "combine job",
    .dir = PIPE_KEYS_JOBS_COMBINE,
    .on_failure = PIPE_JOB_RETRY_LATER,
    .run = combiner_run,
    .listed = combiner_listed,
    .failed = combiner_failed,
    .abandoned = combiner_abandoned,
    .done_bumps = (const char *const[]){PIPE_KEYS_JOBS_SPLIT, PIPE_WAKE_COMBINE_DONE, NULL},
};

/* ---- the stage --------------------------------------------------------- */

#define COMB_METRIC(kind, field, name, help)                                                       \
    PIPE_METRIC(kind, struct comb_metrics, field, name, help)

static const struct pipe_metric_def comb_metric_defs[] = {
    COMB_METRIC(COUNTER, jobs, "sluice_combiner_jobs_total",
                "Combine jobs finished (committed and cleaned up)."),
    COMB_METRIC(COUNTER, recovered, "sluice_combiner_jobs_recovered_total",
                "Jobs found committed by an earlier holder; only their cleanup was redone."),
    COMB_METRIC(COUNTER, events_in, "sluice_combiner_events_in_total",
                "Events read from filtered/ inputs."),
    COMB_METRIC(COUNTER, events_out, "sluice_combiner_events_out_total",
                "Events written to combined/ objects."),
    COMB_METRIC(COUNTER, bytes_in, "sluice_combiner_bytes_in_total",
                "Stored (compressed) bytes of inputs read."),
    COMB_METRIC(COUNTER, bytes_out, "sluice_combiner_bytes_out_total",
                "Stored (compressed) bytes of combined objects."),
    COMB_METRIC(COUNTER, invalid, "sluice_combiner_invalid_jobs_total",
                "Job runs refused: an input is undecodable or over max_input, or the descriptor "
                "is bad."),
    COMB_METRIC(COUNTER, lease_lost, "sluice_combiner_lease_lost_total",
                "Jobs abandoned because their lease was lost."),
    COMB_METRIC(COUNTER, abandoned, "sluice_combiner_jobs_abandoned_total",
                "Jobs abandoned before commit on a stop signal."),
    COMB_METRIC(COUNTER, superseded, "sluice_combiner_jobs_superseded_total",
                "Jobs dropped because another job had already combined one of their inputs."),
    COMB_METRIC(COUNTER, replanned, "sluice_combiner_jobs_replanned_total",
                "Jobs dropped because an input changed or vanished since the dispatcher wrote "
                "them; the dispatcher plans their inputs again."),
    COMB_METRIC(SECONDS, duration, "sluice_combiner_job_seconds",
                "Time to run one job, lease to cleanup."),
    COMB_METRIC(GAUGE, pending_jobs, "sluice_combiner_pending_jobs",
                "Descriptors under jobs/combine/ at the last round."),
    COMB_METRIC(GAUGE, freshness, "sluice_combiner_freshness_seconds",
                "Age of the oldest pending combine job descriptor at the last round (0: none)."),
    {0},
};

static int combiner_init(struct pipe_stage *st, void *cfgp, void **state)
{
    const struct combiner_cfg *cfg = cfgp;
    struct combiner *c = pipe_calloc(1, sizeof *c);
    c->st = st;
    c->cfg = cfg;
    *state = c; /* combiner_exit frees it when a step below fails */
    c->mode = strcmp(cfg->mode, "concat") == 0       ? COMB_CONCAT
              : strcmp(cfg->mode, "recompress") == 0 ? COMB_RECOMPRESS
                                                     : COMB_AUTO;
    pipe_buf_init(&c->in, cfg->max_input);
    pipe_buf_init(&c->out, cfg->max_output);
    int rc = pipe_zwriter_new((int)cfg->zstd_level, &c->out, &c->zw);
    if (rc == 0)
        rc = pipe_zdecoder_new(&c->zd);
    if (rc < 0) {
        pipe_log_error("cannot set up compression", "err=\"%s\"", pipe_strerror(rc));
        return rc;
    }
    pipe_metrics_register_table(pipe_stage_metrics(st), comb_metric_defs, &c->m, c);
    pipe_job_runner_start(st, &combine_jobs, cfg->lease_ttl_ms, c);
    return 0;
}

static void combiner_exit(struct pipe_stage *st, void *state)
{
    struct combiner *c = state;
    (void)st;
    pipe_zwriter_free(c->zw);
    pipe_zdecoder_free(c->zd);
    pipe_buf_cleanup(&c->out);
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
    .exit = combiner_exit,
};
