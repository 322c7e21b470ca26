/* wake — generations bumped by producers and read by consumers' watches,
 * so that an idle consumer skips its listings (see wake.h). The process's
 * struct pipe_wake owns a lease handle only when the stage has none; a
 * watch owns its marks and its reading. */
#include "libpipe/wake.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/lease.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"

/* After a failed bump or open, bumps wait this long: an unreachable Redis
 * must not add its timeout to every write of the filter. */
#define WAKE_PAUSE_MS 10000
/* A failing read or bump is logged at most this often. */
#define WAKE_LOG_EVERY_MS 60000

struct pipe_wake {
    struct pipe_leases *ls; /* the stage's, or owned once opened */
    char *url;              /* to open one; NULL when ls is the stage's */
    pthread_mutex_t mu;     /* the lazy open */
    int64_t idle_list_ms;
    struct pipe_metrics *reg;
    struct pipe_counter *bumped, *failed;
    _Atomic int64_t paused_until; /* monotonic ms */
    _Atomic int64_t logged_mono;  /* last failure logged */
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
    pthread_mutex_init(&w->mu, NULL);
    w->idle_list_ms = idle_list_ms;
    w->reg = reg;
    const char *help = "Generations bumped after writing work for another stage, by result "
                       "(failed: the consumers find the work at their next idle_list listing).";
    w->bumped = pipe_metrics_counter(reg, "sluice_wake_bumps_total", help, "result=\"ok\"");
    w->failed = pipe_metrics_counter(reg, "sluice_wake_bumps_total", help, "result=\"failed\"");
    return w;
}

void pipe_wake_free(struct pipe_wake *w)
{
    if (w == NULL)
        return;
    if (w->url)
        pipe_leases_free(w->ls);
    pipe_free(w->url);
    pthread_mutex_destroy(&w->mu);
    pipe_free(w);
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
 * while it cannot be opened (tried again after a pause). */
static struct pipe_leases *leases(struct pipe_wake *w)
{
    if (w->url == NULL)
        return w->ls;
    pthread_mutex_lock(&w->mu);
    struct pipe_leases *ls = w->ls;
    if (ls == NULL) {
        int rc = pipe_leases_open(w->url, NULL, &ls);
        if (rc < 0) {
            ls = NULL;
            atomic_store(&w->paused_until, pipe_clock_mono_ms() + WAKE_PAUSE_MS);
            log_failure(w, "cannot open the lease backend for work signals", "-", rc);
        }
        w->ls = ls;
    }
    pthread_mutex_unlock(&w->mu);
    return ls;
}

void pipe_wake_bump(struct pipe_wake *w, const char *name)
{
    if (w == NULL || pipe_clock_mono_ms() < atomic_load(&w->paused_until))
        return;
    struct pipe_leases *ls = leases(w);
    int rc = ls ? pipe_leases_bump(ls, name) : PIPE_EUNAVAIL;
    if (rc == 0) {
        pipe_counter_inc(w->bumped);
        return;
    }
    pipe_counter_inc(w->failed);
    atomic_store(&w->paused_until, pipe_clock_mono_ms() + WAKE_PAUSE_MS);
    if (ls)
        log_failure(w, "cannot bump a generation; consumers find the work at their idle listing",
                    name, rc);
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
