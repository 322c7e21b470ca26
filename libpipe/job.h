/* job — "a job under a lease", owned by the runtime for every stage.
 *
 * Two layers. A held lease (struct pipe_job_lease) is a lease taken from the
 * backend and renewed by a thread of its own every third of its TTL until it
 * is released, so no step of the holder (one long put) can outlast it; the
 * holder asks pipe_job_lease_lost() between steps and pipe_job_lease_check()
 * right before it commits. The dispatcher's single active lease, replay's
 * re-issues and every job below use it.
 *
 * A job runner (struct pipe_job_runner) works through a queue of job
 * descriptors "<dir><job-id>.json": it lists the queue, takes each job's
 * lease (named by pipe_keys_job_lease; a job whose lease another holder has
 * is passed over), holds it while the stage's run callback does that one
 * job, then releases it, and turns what the callback returned into what the
 * stage loop does next:
 *   0                          done: the round worked
 *   PIPE_ENOTFOUND             the job is gone (done by another): next job
 *   PIPE_ELOST, PIPE_ESHUTDOWN abandoned before its commit: retry later
 *   pipe_err_is_transient(), PIPE_EBUSY (a resource the job needs is held
 *                              elsewhere)  retry the round after a back-off
 *   anything else              permanent: counted and logged, and the job is
 *                              left for an operator; with --once the run
 *                              ends with FAIL, never with success over it.
 * A stage supplies only its run callback (what it does with one job). */
#ifndef PIPE_JOB_H
#define PIPE_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libpipe/stage.h"
#include "libpipe/wake.h"

struct pipe_leases;
struct pipe_lease;
struct pipe_job_lease;
struct pipe_job_runner;

/* pipe_job_lease_take — acquires the lease name for ttl_ms and starts
 * renewing it. Returns 0 and the held lease in *out (end it with
 * pipe_job_lease_release), or what pipe_lease_acquire said (PIPE_EBUSY when
 * a live holder has it), or -errno when the renewal thread cannot start (the
 * lease is released again). */
int pipe_job_lease_take(struct pipe_leases *ls, const char *name, int64_t ttl_ms,
                        struct pipe_job_lease **out);

/* pipe_job_lease_lost — true once a renewal found the lease taken by
 * another holder (any thread): the work in hand must not be committed. */
bool pipe_job_lease_lost(const struct pipe_job_lease *jl);

/* pipe_job_lease_check — call right before a commit: 0 while the lease is
 * ours and unexpired at the backend, else PIPE_ELOST (lost) or a backend
 * error (cannot tell: do not commit either). */
int pipe_job_lease_check(struct pipe_job_lease *jl);

/* pipe_job_lease_get — the lease itself (name, fence), borrowed; valid
 * until pipe_job_lease_release. */
const struct pipe_lease *pipe_job_lease_get(const struct pipe_job_lease *jl);

/* pipe_job_lease_release — stops renewing, releases the lease at the
 * backend and frees jl. Returns 0, PIPE_ELOST when it was no longer ours
 * (nothing to undo; worth a log line), or a backend error (it then expires
 * by itself). NULL is a no-op returning 0. */
int pipe_job_lease_release(struct pipe_job_lease *jl);

/* What the runner does with a job that failed for good. */
enum pipe_job_failed_policy {
    PIPE_JOB_RETRY_LATER, /* left in place, tried again at the next listing */
    PIPE_JOB_SKIP,        /* left in place, skipped until the process restarts */
};

/* pipe_job_run_fn — does the job id (its descriptor is "<dir><id>.json")
 * while lease is held. Returns 0 once the job is committed and its
 * descriptor deleted (a descriptor still queued is run again), or an error
 * classified as in the file comment. Called on the stage's worker thread. */
typedef int (*pipe_job_run_fn)(void *state, const char *id, struct pipe_job_lease *lease);

struct pipe_job_kind {
    const char *what; /* "combine job": for log lines */
    const char *dir;  /* PIPE_KEYS_JOBS_COMBINE or PIPE_KEYS_JOBS_SPLIT */
    enum pipe_job_failed_policy on_failure;
    pipe_job_run_fn run;
    /* listed — after each listing: pending descriptors and the oldest one's
     * mtime (0 for none), for the stage's gauges. May be NULL. */
    void (*listed)(void *state, size_t pending, int64_t oldest_mtime_ms);
    /* failed — a job failed for good (rc); may be NULL. */
    void (*failed)(void *state, const char *id, int rc);
    /* abandoned — a job was given up before its commit: its lease was lost
     * (PIPE_ELOST) or a stop was asked for (PIPE_ESHUTDOWN); may be NULL. */
    void (*abandoned)(void *state, const char *id, int rc);
    /* done_bumps — generations (libpipe/wake.h) bumped after each job done,
     * NULL-terminated: what the job wrote for other stages. May be NULL. */
    const char *const *done_bumps;
};

/* pipe_job_runner_new — a runner for jobs of kind k (borrowed, must outlive
 * it) on stage st, whose leases last lease_ttl_ms; state goes to the
 * callbacks. Free with pipe_job_runner_free. */
struct pipe_job_runner *pipe_job_runner_new(struct pipe_stage *st, const struct pipe_job_kind *k,
                                            int64_t lease_ttl_ms, void *state);

/* pipe_job_runner_start — from a stage's init: a runner as
 * pipe_job_runner_new makes, which the runtime then runs as the stage's
 * process (pipe_stage_set_work; leave the descriptor's process NULL) and
 * frees before the stage's exit. */
void pipe_job_runner_start(struct pipe_stage *st, const struct pipe_job_kind *k,
                           int64_t lease_ttl_ms, void *state);

/* pipe_job_runner_round — a stage's process(): runs the next job it can
 * lease, listing the queue again when the last listing is used up — a
 * daemon only when the queue's generation (bumped by its producers, see
 * libpipe/wake.h) moved since the last listing, idle_list passed, or that
 * listing left jobs this runner could not finish (held by another holder,
 * failed for now): those may free up without any bump. WORKED
 * after a job is done, IDLE when nothing could be done (or a stop was
 * asked for), RETRY after a transient failure or while permanently failed
 * jobs wait (daemon), FAIL when --once ends with such jobs. */
enum pipe_stage_status pipe_job_runner_round(struct pipe_job_runner *r);

/* pipe_job_runner_free — NULL is a no-op. */
void pipe_job_runner_free(struct pipe_job_runner *r);

#endif
