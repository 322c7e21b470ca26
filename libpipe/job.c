/* job — a lease held and renewed by a thread of its own, and the runner
 * that takes the jobs of a queue one by one under such leases (see job.h).
 * The runner owns its listing and lease names; the stage owns what a job
 * does. */
#include "libpipe/job.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/lease.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"
#include "libpipe/wake.h"

#define LIST_PAGE 1000

/* ---- a held lease ------------------------------------------------------ */

struct pipe_job_lease {
    struct pipe_leases *ls;
    struct pipe_lease l; /* under lease_mu: the keeper renews it, check reads it */
    int64_t ttl_ms;
    pthread_t thread;
    pthread_mutex_t mu; /* stop and cv */
    pthread_cond_t cv;  /* on CLOCK_MONOTONIC */
    pthread_mutex_t lease_mu;
    bool stop;
    atomic_bool lost;
    _Atomic int64_t expires_ms; /* l.expires_ms, readable without lease_mu */
};

/* Sleeps until ms from now or a stop; true when stopped. Called with mu. */
static bool keeper_wait(struct pipe_job_lease *jl, int64_t ms)
{
    struct timespec until;
    pipe_clock_mono_deadline(ms, &until);
    int w = 0;
    while (!jl->stop && w != ETIMEDOUT)
        w = pthread_cond_timedwait(&jl->cv, &jl->mu, &until);
    return jl->stop;
}

/* keeper_main — renews every ttl/3 (a failed renewal is tried again at the
 * next tick, while the lease may still be valid), until stopped or lost. */
static void *keeper_main(void *arg)
{
    struct pipe_job_lease *jl = arg;
    int64_t every = jl->ttl_ms / 3 > 0 ? jl->ttl_ms / 3 : 1;
    pthread_mutex_lock(&jl->mu);
    while (!keeper_wait(jl, every)) {
        pthread_mutex_unlock(&jl->mu);
        pthread_mutex_lock(&jl->lease_mu);
        int rc = pipe_lease_renew(jl->ls, &jl->l, jl->ttl_ms);
        atomic_store(&jl->expires_ms, jl->l.expires_ms);
        pthread_mutex_unlock(&jl->lease_mu);
        pthread_mutex_lock(&jl->mu);
        if (rc == PIPE_ELOST) {
            atomic_store(&jl->lost, true);
            pipe_log_warn("lease lost while renewing it", "lease=%s", jl->l.name);
            break;
        }
        if (rc < 0)
            pipe_log_warn("cannot renew a lease; trying again", "lease=%s err=\"%s\"", jl->l.name,
                          pipe_strerror(rc));
    }
    pthread_mutex_unlock(&jl->mu);
    return NULL;
}

int pipe_job_lease_take(struct pipe_leases *ls, const char *name, int64_t ttl_ms,
                        struct pipe_job_lease **out)
{
    struct pipe_job_lease *jl = pipe_calloc(1, sizeof *jl);
    int rc = pipe_lease_acquire(ls, name, ttl_ms, &jl->l);
    if (rc < 0) {
        pipe_free(jl);
        return rc;
    }
    jl->ls = ls;
    jl->ttl_ms = ttl_ms;
    atomic_init(&jl->lost, false);
    atomic_init(&jl->expires_ms, jl->l.expires_ms);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&jl->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&jl->mu, NULL);
    pthread_mutex_init(&jl->lease_mu, NULL);
    rc = -pthread_create(&jl->thread, NULL, keeper_main, jl);
    if (rc < 0) {
        pipe_lease_release(ls, &jl->l);
        pthread_mutex_destroy(&jl->lease_mu);
        pthread_mutex_destroy(&jl->mu);
        pthread_cond_destroy(&jl->cv);
        pipe_free(jl);
        return rc;
    }
    *out = jl;
    return 0;
}

bool pipe_job_lease_lost(const struct pipe_job_lease *jl)
{
    /* Renewals that keep failing leave the lease to expire: by our clock it
     * is then as good as lost. */
    return atomic_load(&jl->lost) || pipe_clock_now_ms() >= atomic_load(&jl->expires_ms);
}

int pipe_job_lease_check(struct pipe_job_lease *jl)
{
    if (atomic_load(&jl->lost))
        return PIPE_ELOST;
    pthread_mutex_lock(&jl->lease_mu);
    int rc = pipe_lease_check(jl->ls, &jl->l);
    pthread_mutex_unlock(&jl->lease_mu);
    if (rc == PIPE_ELOST)
        atomic_store(&jl->lost, true);
    return rc;
}

const struct pipe_lease *pipe_job_lease_get(const struct pipe_job_lease *jl)
{
    return &jl->l;
}

int pipe_job_lease_release(struct pipe_job_lease *jl)
{
    if (jl == NULL)
        return 0;
    pthread_mutex_lock(&jl->mu);
    jl->stop = true;
    pthread_cond_signal(&jl->cv);
    pthread_mutex_unlock(&jl->mu);
    pthread_join(jl->thread, NULL);
    int rc = PIPE_ELOST;
    /* Known lost: the backend has nothing of ours to free. */
    if (atomic_load(&jl->lost))
        pipe_lease_cleanup(&jl->l);
    else
        rc = pipe_lease_release(jl->ls, &jl->l);
    pthread_mutex_destroy(&jl->lease_mu);
    pthread_mutex_destroy(&jl->mu);
    pthread_cond_destroy(&jl->cv);
    pipe_free(jl);
    return rc;
}

/* ---- the runner -------------------------------------------------------- */

struct pipe_job_runner {
    struct pipe_stage *st;
    const struct pipe_job_kind *k;
    int64_t ttl_ms;
    void *state;
    char **ids; /* the last listing, worked through from cursor */
    size_t n_ids, cap_ids, cursor;
    int64_t oldest_ms;
    size_t failed_listing; /* permanent failures since the last listing */
    char **skipped;        /* PIPE_JOB_SKIP: failed for good, until restart */
    size_t n_skipped;
    struct pipe_wake_watch *watch; /* the queue's generation */
    bool left;                     /* the last listing left jobs that may free up */
};

struct pipe_job_runner *pipe_job_runner_new(struct pipe_stage *st, const struct pipe_job_kind *k,
                                            int64_t lease_ttl_ms, void *state)
{
    struct pipe_job_runner *r = pipe_calloc(1, sizeof *r);
    r->st = st;
    r->k = k;
    r->ttl_ms = lease_ttl_ms;
    r->state = state;
    r->watch = pipe_wake_watch_new(pipe_stage_wake(st), k->dir, &k->dir, 1);
    return r;
}

static void free_ids(struct pipe_job_runner *r)
{
    for (size_t i = 0; i < r->n_ids; i++)
        pipe_free(r->ids[i]);
    r->n_ids = r->cursor = 0;
}

void pipe_job_runner_free(struct pipe_job_runner *r)
{
    if (r == NULL)
        return;
    free_ids(r);
    pipe_free(r->ids);
    for (size_t i = 0; i < r->n_skipped; i++)
        pipe_free(r->skipped[i]);
    pipe_free(r->skipped);
    pipe_wake_watch_free(r->watch);
    pipe_free(r);
}

static int add_id(void *arg, const struct pipe_store_obj *o)
{
    struct pipe_job_runner *r = arg;
    char id[PIPE_KEYS_NAME_MAX + 1];
    if (!pipe_keys_job_of(o->key, r->k->dir, id))
        return 0;
    if (r->n_ids == r->cap_ids) {
        r->cap_ids = r->cap_ids ? r->cap_ids * 2 : 64;
        r->ids = pipe_realloc(r->ids, r->cap_ids * sizeof *r->ids);
    }
    r->ids[r->n_ids++] = pipe_strdup(id);
    if (r->oldest_ms == 0 || (o->mtime_ms && o->mtime_ms < r->oldest_ms))
        r->oldest_ms = o->mtime_ms;
    return 0;
}

/* list — replaces the listing with the descriptors pending now, in key
 * order; the failures counted against the last one are forgotten. */
static int list(struct pipe_job_runner *r)
{
    struct pipe_store *s = pipe_stage_store(r->st);
    free_ids(r);
    r->oldest_ms = 0;
    r->failed_listing = 0;
    int rc = pipe_store_walk(s, r->k->dir, NULL, LIST_PAGE, add_id, r);
    if (rc < 0) {
        pipe_log_warn("cannot list jobs", "dir=%s err=\"%s\" detail=\"%s\"", r->k->dir,
                      pipe_strerror(rc), pipe_store_last_error(s));
        free_ids(r);
        return rc;
    }
    if (r->k->listed)
        r->k->listed(r->state, r->n_ids, r->oldest_ms);
    return 0;
}

static bool is_skipped(const struct pipe_job_runner *r, const char *id)
{
    for (size_t i = 0; i < r->n_skipped; i++)
        if (strcmp(r->skipped[i], id) == 0)
            return true;
    return false;
}

/* failed — a permanent failure: counted, logged, and the job is left. */
static void failed(struct pipe_job_runner *r, const char *id, int rc)
{
    bool skip = r->k->on_failure == PIPE_JOB_SKIP;
    pipe_log_error(skip ? "job failed; skipped until restart" : "job failed; left for an operator",
                   "what=\"%s\" job=%s err=\"%s\"", r->k->what, id, pipe_strerror(rc));
    r->failed_listing++;
    if (skip) {
        r->skipped = pipe_realloc(r->skipped, (r->n_skipped + 1) * sizeof *r->skipped);
        r->skipped[r->n_skipped++] = pipe_strdup(id);
    }
    if (r->k->failed)
        r->k->failed(r->state, id, rc);
}

/* one_job — takes id's lease, runs it and says what the rc means: 0 done,
 * 1 on to the next job, -1 the round ends with RETRY. */
static int one_job(struct pipe_job_runner *r, const char *id)
{
    struct pipe_leases *ls = pipe_stage_leases(r->st);
    struct pipe_job_lease *jl = NULL;
    struct pipe_buf name;
    pipe_buf_init(&name, PIPE_LEASE_NAME_MAX);
    int rc = pipe_keys_job_lease(&name, r->k->dir, id);
    if (rc == 0)
        rc = pipe_job_lease_take(ls, name.data, r->ttl_ms, &jl);
    pipe_buf_cleanup(&name);
    if (rc == PIPE_EBUSY) {
        r->left = true; /* its holder may die without a bump */
        return 1;
    }
    if (rc < 0) {
        pipe_log_warn("cannot take a job's lease", "what=\"%s\" job=%s err=\"%s\" detail=\"%s\"",
                      r->k->what, id, pipe_strerror(rc), pipe_leases_last_error(ls));
        return -1;
    }
    rc = r->k->run(r->state, id, jl);
    int rrc = pipe_job_lease_release(jl);
    if (rrc < 0 && rrc != PIPE_ELOST)
        pipe_log_warn("cannot release a job's lease", "job=%s err=\"%s\"", id, pipe_strerror(rrc));
    if (rc == 0) {
        for (const char *const *b = r->k->done_bumps; b && *b; b++)
            pipe_wake_bump(pipe_stage_wake(r->st), *b);
        /* One more listing once this one is used up, so that the pending
         * gauges come back to what is left. */
        pipe_wake_watch_forget(r->watch, 0);
        return 0;
    }
    if (rc == PIPE_ENOTFOUND)
        return 1;
    r->left = true; /* failed or abandoned: still queued */
    if (rc == PIPE_ELOST || rc == PIPE_ESHUTDOWN) {
        pipe_log_info(rc == PIPE_ELOST ? "job lease lost; abandoned without committing"
                                       : "stopping: job abandoned before its commit",
                      "what=\"%s\" job=%s", r->k->what, id);
        if (r->k->abandoned)
            r->k->abandoned(r->state, id, rc);
        return -1;
    }
    if (pipe_err_is_transient(rc) || rc == PIPE_EBUSY) {
        pipe_log_warn("job failed; will retry", "what=\"%s\" job=%s err=\"%s\" detail=\"%s\"",
                      r->k->what, id, pipe_strerror(rc),
                      pipe_store_last_error(pipe_stage_store(r->st)));
        return -1;
    }
    failed(r, id, rc);
    return 1;
}

enum pipe_stage_status pipe_job_runner_round(struct pipe_job_runner *r)
{
    bool listed = false;
    bool once = pipe_stage_common(r->st)->once;
    for (;;) {
        if (pipe_stage_stopping(r->st))
            return PIPE_STAGE_IDLE;
        if (r->cursor >= r->n_ids) {
            if (listed)
                break;
            /* Read before the listing: a bump after it shows next time. */
            pipe_wake_watch_read(r->watch);
            if (!once && !r->left && !pipe_wake_watch_due(r->watch, 0)) {
                pipe_wake_watch_skipped(r->watch);
                return PIPE_STAGE_IDLE;
            }
            if (list(r) < 0)
                return PIPE_STAGE_RETRY;
            pipe_wake_watch_listed(r->watch, 0);
            r->left = false;
            listed = true;
            continue;
        }
        const char *id = r->ids[r->cursor++];
        if (is_skipped(r, id))
            continue;
        int what = one_job(r, id);
        if (what == 0)
            return PIPE_STAGE_WORKED;
        if (what < 0)
            return PIPE_STAGE_RETRY;
    }
    /* Nothing more could be done: --once must not report success over a
     * job that failed, and a daemon tries such jobs again after a back-off
     * unless the stage skips them. */
    bool waiting = r->k->on_failure == PIPE_JOB_SKIP ? r->n_skipped > 0 : r->failed_listing > 0;
    if (waiting && once)
        return PIPE_STAGE_FAIL;
    if (waiting && r->k->on_failure == PIPE_JOB_RETRY_LATER)
        return PIPE_STAGE_RETRY;
    return PIPE_STAGE_IDLE;
}

static enum pipe_stage_status runner_work(struct pipe_stage *st, void *arg)
{
    (void)st;
    return pipe_job_runner_round(arg);
}

static void runner_release(void *arg)
{
    pipe_job_runner_free(arg);
}

void pipe_job_runner_start(struct pipe_stage *st, const struct pipe_job_kind *k,
                           int64_t lease_ttl_ms, void *state)
{
    pipe_stage_set_work(st, runner_work, pipe_job_runner_new(st, k, lease_ttl_ms, state),
                        runner_release);
}
