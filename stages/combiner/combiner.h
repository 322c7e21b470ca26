/* combiner — internal declarations shared by the combiner's files:
 * combiner.c (descriptor, options, the job runner's callbacks) and
 * combiner_job.c (running one job: read, merge, commit, clean up). */
#ifndef SLUICE_COMBINER_H
#define SLUICE_COMBINER_H

#include <stdbool.h>
#include <stdint.h>

#include "libpipe/buf.h"
#include "libpipe/stage.h"

struct pipe_counter;
struct pipe_gauge;
struct pipe_histogram;
struct pipe_job_lease;
struct pipe_zwriter;

struct combiner_cfg {
    struct pipe_stage_common common; /* must come first */
    int64_t lease_ttl_ms;
    int64_t zstd_level;
    uint64_t max_input;
    uint64_t max_output;
    char *mode;
    uint64_t concat_min;
};

/* How inputs become the output object. */
enum comb_mode {
    COMB_RECOMPRESS, /* decode every input, write one new zstd frame */
    COMB_CONCAT,     /* copy the inputs' zstd frames as they are */
    COMB_AUTO,       /* copy inputs of concat_min bytes or more, recompress the rest */
};

struct comb_metrics {
    struct pipe_counter *jobs;
    struct pipe_counter *recovered; /* committed before; only cleanup was left */
    struct pipe_counter *events_in;
    struct pipe_counter *events_out;
    struct pipe_counter *bytes_in;
    struct pipe_counter *bytes_out;
    struct pipe_counter *invalid;
    struct pipe_counter *lease_lost;
    struct pipe_counter *abandoned;
    struct pipe_counter *superseded; /* inputs already combined by another job */
    struct pipe_counter *replanned;  /* an input changed or vanished: job dropped */
    struct pipe_histogram *duration;
    struct pipe_gauge *pending_jobs;
    struct pipe_gauge *freshness;
};

struct combiner {
    struct pipe_stage *st;
    const struct combiner_cfg *cfg;
    enum comb_mode mode;
    struct pipe_zwriter *zw;
    struct pipe_zdecoder *zd; /* decodes inputs (those not counted on their record) */
    /* Recycled between jobs: an input to recompress, and the bytes the
     * combiner writes itself (its frames; copied inputs stay in views). */
    struct pipe_buf in, out;
    struct comb_metrics m;
};

/* comb_run_job — runs the combine job id under lease, which the job
 * runner holds and renews while the job runs. Returns 0 when the job is committed and its
 * descriptor deleted; PIPE_ENOTFOUND when the descriptor is gone (another combiner finished it);
 * PIPE_ECORRUPT when the job cannot be run as described (an input changed or
 * is missing or undecodable, the descriptor is malformed, the output is over
 * max_output: nothing is written, the descriptor stays); PIPE_ELOST when the
 * lease was lost (nothing committed); PIPE_ESHUTDOWN when a stop was asked
 * for between inputs; or a transient store error. */
int comb_run_job(struct combiner *c, const char *id, struct pipe_job_lease *lease);

#endif
