/* wake — generations bumped by producers and read by consumers' watches,
 * so that an idle consumer skips its listings (see wake.h). The process's
 * struct pipe_wake owns the thread that sends bumps, and a lease handle
 * only when the stage has none; a watch owns its marks and its reading. */
#include "libpipe/wake.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/lease.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"

/* A bump that failed is tried again after this, doubling up to the cap. */
#define WAKE_RETRY_MS     200
#define WAKE_RETRY_CAP_MS 10000
/* A failing read or bump is logged at most this often. */
#define WAKE_LOG_EVERY_MS 60000
/* Distinct names one process bumps (there are four in all). */
#define WAKE_NAMES 8

struct pipe_wake {
    struct pipe_leases *ls;  /* the stage's, or owned once opened */
    char *url;               /* to open one; NULL when ls is the stage's */
    pthread_mutex_t open_mu; /* the lazy open */
    int64_t idle_list_ms;
    struct pipe_metrics *reg;
    struct pipe_counter *bumped, *failed;
    _Atomic int64_t logged_mono; /* last failure logged */
    /* The sender: names asked for, sent by a thread of its own. */
    pthread_mutex_t mu; /* all below */
    pthread_cond_t cv;
    pthread_t thread;
    bool started, stop;
    char *names[WAKE_NAMES];
    bool dirty[WAKE_NAMES];
    size_t n_names;
};

struct pipe_wake_watch {
    struct pipe_wake *w;
    const char *const *names;
    size_t n;
    uint64_t now[PIPE_LEASE_GENERATIONS_MAX]; /* the last read */
    bool read_ok;
    struct {
        bool set;
        int64_t at_mono; /* when its listing was made */
        uint64_t seen[PIPE_LEASE_GENERATIONS_MAX];
    } mark[PIPE_WAKE_MARKS];
    struct pipe_counter *skipped;
};

struct pipe_wake *pipe_wake_new(struct pipe_leases *ls, const char *url, int64_t idle_list_ms,
                                struct pipe_metrics *reg)
{
    struct pipe_wake *w = pipe_calloc(1, sizeof *w);
    w->ls = ls;
    w->url = ls == NULL && url ? pipe_strdup(url) : NULL;
    pthread_mutex_init(&w->open_mu, NULL);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->idle_list_ms = idle_list_ms;
    w->reg = reg;
    const char *help = "Generation bumps sent after writing work for another stage, by result "
                       "(failed ones are tried again; bumps asked for meanwhile are sent as one).";
    w->bumped = pipe_metrics_counter(reg, "sluice_wake_bumps_total", help, "result=\"ok\"");
    w->failed = pipe_metrics_counter(reg, "sluice_wake_bumps_total", help, "result=\"failed\"");
    return w;
}

/* Logs a failure at most once a WAKE_LOG_EVERY_MS per process. */
static void log_failure(struct pipe_wake *w, const char *msg, const char *name, int rc)
{
    int64_t now = pipe_clock_mono_ms(), last = atomic_load(&w->logged_mono);
    if (last && now - last < WAKE_LOG_EVERY_MS)
        return;
    if (!atomic_compare_exchange_strong(&w->logged_mono, &last, now))
        return;
    pipe_log_warn(msg, "name=%s err=\"%s\" detail=\"%s\"", name, pipe_strerror(rc),
                  pipe_leases_last_error(w->ls));
}

/* The lease handle, opened on first use for a stage that has none. NULL
 * while it cannot be opened (the caller tries again later). */
static struct pipe_leases *leases(struct pipe_wake *w)
{
    if (w->url == NULL)
        return w->ls;
    pthread_mutex_lock(&w->open_mu);
    struct pipe_leases *ls = w->ls;
    if (ls == NULL) {
        int rc = pipe_leases_open(w->url, NULL, &ls);
        if (rc < 0) {
            ls = NULL;
            log_failure(w, "cannot open the lease backend for work signals", "-", rc);
        }
        w->ls = ls;
    }
    pthread_mutex_unlock(&w->open_mu);
    return ls;
}

/* send_dirty — sends every name asked for since the last call (mu held,
 * released around the requests); a name that fails is asked for again.
 * true when all went through. */
static bool send_dirty(struct pipe_wake *w)
{
    size_t owed[WAKE_NAMES]; /* indexes into w->names */
    size_t n = 0;
    for (size_t i = 0; i < w->n_names; i++)
        if (w->dirty[i]) {
            w->dirty[i] = false;
            owed[n++] = i;
        }
    pthread_mutex_unlock(&w->mu);
    bool all = true;
    for (size_t i = 0; i < n; i++) {
        const char *name = w->names[owed[i]]; /* names live until pipe_wake_free */
        struct pipe_leases *ls = leases(w);
        int rc = ls ? pipe_leases_bump(ls, name) : PIPE_EUNAVAIL;
        if (rc == 0) {
            pipe_counter_inc(w->bumped);
            continue;
        }
        pipe_counter_inc(w->failed);
        if (ls)
            log_failure(w, "cannot bump a generation; trying again", name, rc);
        pthread_mutex_lock(&w->mu);
        w->dirty[owed[i]] = true;
        pthread_mutex_unlock(&w->mu);
        all = false;
    }
    pthread_mutex_lock(&w->mu);
    return all;
}

static bool any_dirty(const struct pipe_wake *w)
{
    for (size_t i = 0; i < w->n_names; i++)
        if (w->dirty[i])
            return true;
    return false;
}

/* Waits until ms from now or a stop (mu held): new bumps asked for
 * meanwhile wait too, so an outage costs one request per pause. */
static void sender_wait(struct pipe_wake *w, int64_t ms)
{
    struct timespec until;
    pipe_clock_mono_deadline(ms, &until);
    while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &until) != ETIMEDOUT)
        ;
}

/* sender_main — sends bumps as they are asked for; bursts are coalesced
 * (a name asked for ten times while a request is out is sent once more),
 * failures retried with a growing pause. Stopping, it tries once more. */
static void *sender_main(void *arg)
{
    struct pipe_wake *w = arg;
    int64_t retry = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && !any_dirty(w))
            pthread_cond_wait(&w->cv, &w->mu);
        bool stopping = w->stop;
        if (send_dirty(w)) {
            retry = 0;
        } else if (!stopping) {
            retry = retry ? (retry * 2 < WAKE_RETRY_CAP_MS ? retry * 2 : WAKE_RETRY_CAP_MS)
                          : WAKE_RETRY_MS;
            sender_wait(w, retry);
        }
        if (stopping)
            break;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

void pipe_wake_bump(struct pipe_wake *w, const char *name)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    size_t i = 0;
    while (i < w->n_names && strcmp(w->names[i], name) != 0)
        i++;
    if (i == w->n_names && i < WAKE_NAMES)
        w->names[w->n_names++] = pipe_strdup(name);
    if (i < w->n_names) {
        w->dirty[i] = true;
        if (!w->started)
            w->started = pthread_create(&w->thread, NULL, sender_main, w) == 0;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

void pipe_wake_free(struct pipe_wake *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started)
        pthread_join(w->thread, NULL);
    for (size_t i = 0; i < w->n_names; i++)
        pipe_free(w->names[i]);
    if (w->url)
        pipe_leases_free(w->ls);
    pipe_free(w->url);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->open_mu);
    pipe_free(w);
}

struct pipe_wake_watch *pipe_wake_watch_new(struct pipe_wake *w, const char *what,
                                            const char *const *names, size_t n)
{
    struct pipe_wake_watch *ww = pipe_calloc(1, sizeof *ww);
    char labels[128];
    ww->w = w;
    ww->names = names;
    ww->n = n < PIPE_LEASE_GENERATIONS_MAX ? n : PIPE_LEASE_GENERATIONS_MAX;
    snprintf(labels, sizeof labels, "watch=\"%s\"", what);
    ww->skipped = pipe_metrics_counter(
        w->reg, "sluice_lists_skipped_total",
        "Polls that made no LIST request: no generation of what they list moved and idle_list "
        "had not passed.",
        labels);
    return ww;
}

void pipe_wake_watch_free(struct pipe_wake_watch *ww)
{
    pipe_free(ww);
}

void pipe_wake_watch_read(struct pipe_wake_watch *ww)
{
    ww->read_ok = false;
    if (ww->w->idle_list_ms == 0 || ww->n == 0)
        return;
    struct pipe_leases *ls = leases(ww->w);
    int rc = ls ? pipe_leases_generations(ls, ww->names, ww->n, ww->now) : PIPE_EUNAVAIL;
    ww->read_ok = rc == 0;
    if (rc < 0 && ls)
        log_failure(ww->w, "cannot read generations; listing every poll", ww->names[0], rc);
}

bool pipe_wake_watch_due(const struct pipe_wake_watch *ww, int mark)
{
    if (mark < 0 || mark >= PIPE_WAKE_MARKS || !ww->read_ok || !ww->mark[mark].set)
        return true;
    if (pipe_clock_mono_ms() - ww->mark[mark].at_mono >= ww->w->idle_list_ms)
        return true;
    return memcmp(ww->now, ww->mark[mark].seen, ww->n * sizeof ww->now[0]) != 0;
}

void pipe_wake_watch_listed(struct pipe_wake_watch *ww, int mark)
{
    if (mark < 0 || mark >= PIPE_WAKE_MARKS)
        return;
    /* A failed read leaves the mark unset: the next poll lists again. */
    ww->mark[mark].set = ww->read_ok;
    ww->mark[mark].at_mono = pipe_clock_mono_ms();
    memcpy(ww->mark[mark].seen, ww->now, ww->n * sizeof ww->now[0]);
}

void pipe_wake_watch_forget(struct pipe_wake_watch *ww, int mark)
{
    if (mark >= 0 && mark < PIPE_WAKE_MARKS)
        ww->mark[mark].set = false;
}

void pipe_wake_watch_skipped(struct pipe_wake_watch *ww)
{
    pipe_counter_inc(ww->skipped);
}
