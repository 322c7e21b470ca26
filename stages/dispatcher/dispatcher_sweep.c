/* dispatcher_sweep — the periodic retention sweep. The active dispatcher
 * (the holder of the lease "dispatcher", so one process at a time) runs the
 * sweep of libpipe/retention.h every sweep_every, after a pass, on the
 * pass's thread: dispatching waits while it runs. The sweep is idempotent
 * and checks consumption itself, so a sweep cut short by a lost lease or a
 * stop is simply run again by the next holder. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>

#include "libpipe/clock.h"
#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/log.h"
#include "libpipe/metrics.h"
#include "libpipe/store.h"
#include "stages/dispatcher/dispatcher.h"

int disp_sweep_validate(const struct dispatcher_cfg *c, char *err, size_t errlen)
{
    struct pipe_retention_config r;
    pipe_retention_config_init(&r, (unsigned)c->common.generation, c->dedup_window_ms);
    if (pipe_retention_config_parse(&r, c->retention, err, errlen) < 0)
        return -1;
    return pipe_retention_config_check(&r, err, errlen) < 0 ? -1 : 0;
}

void disp_sweep_init(struct dispatcher *d)
{
    const struct dispatcher_cfg *c = d->cfg;
    char err[256];
    pipe_retention_config_init(&d->ret, (unsigned)c->common.generation, c->dedup_window_ms);
    /* Validated already; parsing again cannot fail. */
    (void)pipe_retention_config_parse(&d->ret, c->retention, err, sizeof err);
    const char *warn[4];
    size_t n = pipe_retention_config_warnings(&d->ret, warn, 4);
    for (size_t i = 0; i < n && i < 4; i++)
        pipe_log_warn("retention keeps objects forever", "why=\"%s\"", warn[i]);

    struct pipe_metrics *reg = pipe_stage_metrics(d->st);
    struct disp_metrics *m = &d->m;
    const char *help = "Objects deleted by the retention sweep, by prefix.";
    char labels[64];
    for (size_t i = 0; i < PIPE_RETENTION_NRULES; i++) {
        snprintf(labels, sizeof labels, "prefix=\"%s\"", pipe_retention_rule_prefix(i));
        m->sweep_deleted[i] = pipe_metrics_counter(reg, "sluice_sweep_deleted_total", help, labels);
        const char *comp = pipe_retention_rule_companion(i);
        if (comp == NULL)
            continue;
        snprintf(labels, sizeof labels, "prefix=\"%s\"", comp);
        m->sweep_companions[i] =
            pipe_metrics_counter(reg, "sluice_sweep_deleted_total", help, labels);
    }
    m->sweep_runs = pipe_metrics_counter(reg, "sluice_sweep_runs_total",
                                         "Retention sweeps run to the end.", NULL);
    m->sweep_errors = pipe_metrics_counter(
        reg, "sluice_sweep_errors_total",
        "Listings, consumed checks and deletes of the sweep that failed.", NULL);
}

static void on_error(void *arg, const char *what, const char *key, int rc, const char *detail)
{
    (void)arg;
    pipe_log_error("sweep", "what=\"%s\" key=\"%s\" err=\"%s\" detail=\"%s\"", what, key,
                   pipe_strerror(rc), detail);
}

struct sweep_run {
    struct dispatcher *d;
    int stopped; /* why on_progress stopped the sweep; 0: it did not */
};

/* Between objects: stop when asked to, and keep the lease (a large sweep
 * outlasts its TTL; without the lease it could run beside the next
 * holder's). */
static int on_progress(void *arg, size_t rule, uint64_t listed)
{
    struct sweep_run *r = arg;
    (void)rule;
    (void)listed;
    if (pipe_stage_stopping(r->d->st))
        r->stopped = 1;
    else
        r->stopped = disp_keep_lease(r->d);
    return r->stopped;
}

static void sweep_account(struct dispatcher *d, const struct pipe_retention_counts *n,
                          int64_t took_ms)
{
    uint64_t v[PIPE_RETENTION_NRULES], kept = 0, errors = 0, companions = 0;
    for (size_t i = 0; i < PIPE_RETENTION_NRULES; i++) {
        const struct pipe_retention_count *c = &n->rule[i];
        v[i] = c->deleted;
        pipe_counter_add(d->m.sweep_deleted[i], c->deleted);
        if (d->m.sweep_companions[i])
            pipe_counter_add(d->m.sweep_companions[i], c->companions);
        kept += c->kept;
        errors += c->errors;
        companions += c->companions;
    }
    pipe_counter_add(d->m.sweep_errors, errors);
    pipe_log_info("sweep done",
                  "raw=%" PRIu64 " filtered=%" PRIu64 " rejected=%" PRIu64 " combined=%" PRIu64
                  " split_manifests=%" PRIu64 " split=%" PRIu64 " dedup=%" PRIu64
                  " markers_manifests=%" PRIu64 " kept=%" PRIu64 " errors=%" PRIu64
                  " took_ms=%" PRId64,
                  v[0], v[1], v[2], v[3], v[4], v[5], v[6], companions, kept, errors, took_ms);
}

int disp_sweep_maybe(struct dispatcher *d)
{
    int64_t every = d->cfg->sweep_every_ms;
    if (every <= 0 || !d->held)
        return 0;
    int64_t start = pipe_clock_mono_ms();
    if (d->last_sweep_mono != 0 && start - d->last_sweep_mono < every)
        return 0;
    struct pipe_retention_counts n;
    struct sweep_run run = {.d = d};
    const struct pipe_retention_callbacks cb = {
        .error = on_error, .progress = on_progress, .arg = &run};
    int rc =
        pipe_retention_sweep(pipe_stage_store(d->st), &d->ret, pipe_clock_now_ms(), false, &cb, &n);
    int64_t end = pipe_clock_mono_ms();
    sweep_account(d, &n, end - start);
    if (run.stopped != 0) {
        /* Not a run: the next holder, or this one later, sweeps again. */
        pipe_log_info("sweep stopped before its end", "why=\"%s\"",
                      run.stopped == 1 ? "stopping" : pipe_strerror(run.stopped));
        return run.stopped == PIPE_ELOST ? PIPE_ELOST : 0;
    }
    if (rc < 0)
        pipe_log_warn("sweep finished with errors", "err=\"%s\"", pipe_strerror(rc));
    pipe_counter_inc(d->m.sweep_runs);
    /* Also after errors: they are counted and logged, and the sweep went
     * on with the rest; retrying at once would only repeat them. */
    d->last_sweep_mono = end;
    return 0;
}
