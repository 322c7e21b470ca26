/* stage — the shared runtime: options, logging, store/lease handles, admin
 * server, signals and the poll loop. The runtime owns every handle it
 * creates; a stage owns only its state. */
#include "libpipe/stage.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/backoff.h"
#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/httpd.h"
#include "libpipe/lease.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/store.h"
#include "libpipe/wake.h"

#define CFG(field) offsetof(struct pipe_stage_common, field)

/* Waits between rounds that said RETRY: 100 ms at first, at most 30 s. */
#define STAGE_BACKOFF_BASE_MS 100
#define STAGE_BACKOFF_CAP_MS  30000

const struct pipe_conf_opt pipe_stage_common_opts[] = {
    {"store", PIPE_CONF_STR, "file://./sluice-data", CFG(store),
     "object store URL: file:///path or s3://bucket[/prefix]?endpoint=..", 0, 0, "URL"},
    {"leases", PIPE_CONF_STR, "local", CFG(leases),
     "lease and de-duplication backend: local, local:///dir or redis://host:port", 0, 0, "URL"},
    {"admin", PIPE_CONF_STR, "127.0.0.1:0", CFG(admin),
     "where /healthz, /readyz and /metrics are served (port 0 picks one; off for none)", 0, 0,
     "ADDR"},
    {"once", PIPE_CONF_BOOL, "false", CFG(once), "process everything pending, then exit 0", 0, 0,
     NULL},
    {"log_level", PIPE_CONF_STR, "info", CFG(log_level), "debug, info, warn or error", 0, 0,
     "LEVEL"},
    {"generation", PIPE_CONF_INT, "1", CFG(generation),
     "generation number written into every output name (raise it to re-process)", 1, 999999, "N"},
    {"instance", PIPE_CONF_STR, NULL, CFG(instance),
     "this process's name among its peers (default: the host name)", 0, 0, "NAME"},
    {"poll", PIPE_CONF_DURATION, "1s", CFG(poll_ms), "how often an idle stage looks for work", 10,
     PIPE_HOUR_MS, NULL},
    {"idle_list", PIPE_CONF_DURATION, "60s", CFG(idle_list_ms),
     "the longest an idle stage goes without listing what it consumes: between those listings "
     "it lists only after a producer signalled new work through the lease backend (this bounds "
     "how late work written by anything else is found); 0 lists on every poll",
     0, PIPE_DAY_MS, NULL},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

struct store_stat_ref {
    struct pipe_stage *st;
    enum pipe_store_op op;
    bool errors;
};

/* One series of sluice_lease_events_total: which counter of the backend. */
enum lease_event { LEASE_ACQUIRED, LEASE_BUSY, LEASE_LOST, LEASE_ERROR, LEASE__COUNT };

struct lease_stat_ref {
    struct pipe_stage *st;
    enum lease_event ev;
};

struct pipe_stage {
    const struct pipe_stage_desc *desc;
    void *cfg;
    void *state;
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    struct pipe_stage_poller *poller; /* runs process; NULL for loop-driven stages */
    pipe_stage_round_fn work;         /* pipe_stage_set_work: the process, or NULL */
    void *work_arg;
    void (*work_release)(void *arg);
    struct pipe_store *store;
    struct pipe_leases *leases;
    struct pipe_metrics *metrics;
    struct pipe_wake *wake;
    struct pipe_httpd *admin;
    struct store_stat_ref store_refs[PIPE_STORE_OP__COUNT * 2];
    struct lease_stat_ref lease_refs[LEASE__COUNT];
    bool finishing;
    int exit_rc;
    atomic_bool stopping;
    atomic_bool ready;
};

uv_loop_t *pipe_stage_loop(struct pipe_stage *st)
{
    return &st->loop;
}
struct pipe_store *pipe_stage_store(struct pipe_stage *st)
{
    return st->store;
}
struct pipe_leases *pipe_stage_leases(struct pipe_stage *st)
{
    return st->leases;
}
struct pipe_metrics *pipe_stage_metrics(struct pipe_stage *st)
{
    return st->metrics;
}
struct pipe_wake *pipe_stage_wake(struct pipe_stage *st)
{
    return st->wake;
}

const struct pipe_stage_common *pipe_stage_common(const struct pipe_stage *st)
{
    return st->cfg;
}

bool pipe_stage_stopping(const struct pipe_stage *st)
{
    return atomic_load(&st->stopping);
}

void pipe_stage_set_ready(struct pipe_stage *st, bool ready)
{
    atomic_store(&st->ready, ready);
}

static double store_stat_value(void *arg)
{
    const struct store_stat_ref *r = arg;
    uint64_t requests = 0, errors = 0;
    pipe_store_counters(r->st->store, r->op, &requests, &errors);
    return (double)(r->errors ? errors : requests);
}

static void register_store_metrics(struct pipe_stage *st)
{
    for (int op = 0; op < PIPE_STORE_OP__COUNT; op++) {
        char labels[64];
        snprintf(labels, sizeof labels, "op=\"%s\"", pipe_store_op_name(op));
        for (int e = 0; e < 2; e++) {
            struct store_stat_ref *r = &st->store_refs[op * 2 + e];
            *r = (struct store_stat_ref){st, (enum pipe_store_op)op, e == 1};
            pipe_metrics_counter_fn(
                st->metrics, e ? "sluice_store_errors_total" : "sluice_store_requests_total",
                e ? "Store requests that failed, by operation." : "Store requests, by operation.",
                labels, store_stat_value, r);
        }
    }
}

static double lease_stat_value(void *arg)
{
    const struct lease_stat_ref *r = arg;
    uint64_t v[LEASE__COUNT] = {0};
    pipe_leases_counters(r->st->leases, &v[LEASE_ACQUIRED], &v[LEASE_BUSY], &v[LEASE_LOST],
                         &v[LEASE_ERROR]);
    return (double)v[r->ev];
}

/* Lease events of every stage that holds leases, one family for all, so
 * that one alert covers "a holder lost its lease" whatever the stage. */
static void register_lease_metrics(struct pipe_stage *st)
{
    static const char *const names[LEASE__COUNT] = {"acquired", "busy", "lost", "error"};
    if (!st->leases)
        return;
    for (int ev = 0; ev < LEASE__COUNT; ev++) {
        char labels[32];
        snprintf(labels, sizeof labels, "result=\"%s\"", names[ev]);
        st->lease_refs[ev] = (struct lease_stat_ref){st, (enum lease_event)ev};
        pipe_metrics_counter_fn(st->metrics, "sluice_lease_events_total",
                                "Lease operations by result: acquired, busy (held by another), "
                                "lost (no longer ours at renew, check or release), error.",
                                labels, lease_stat_value, &st->lease_refs[ev]);
    }
}

bool pipe_stage_serve_admin(struct pipe_stage *st, struct pipe_http_request *req)
{
    if (strcmp(req->path, "/healthz") == 0) {
        pipe_httpd_respond(req, 200, "text/plain", "ok\n", 3, NULL);
    } else if (strcmp(req->path, "/readyz") == 0) {
        bool ready = atomic_load(&st->ready) && !atomic_load(&st->stopping);
        pipe_httpd_respond(req, ready ? 200 : 503, "text/plain", ready ? "ready\n" : "not ready\n",
                           ready ? 6 : 10, NULL);
    } else if (strcmp(req->path, "/metrics") == 0) {
        struct pipe_buf b;
        pipe_buf_init(&b, 64u << 20);
        pipe_metrics_render(st->metrics, &b);
        pipe_httpd_respond(req, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len,
                           NULL);
        pipe_buf_cleanup(&b);
    } else {
        return false;
    }
    return true;
}

static void admin_handler(struct pipe_http_request *req, void *arg)
{
    if (!pipe_stage_serve_admin(arg, req))
        pipe_httpd_respond(req, 404, "text/plain", "not found\n", 10, NULL);
}

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* finish — ends the loop: stops the admin server and closes our handles;
 * the loop returns once everything the stage opened is closed too. */
static void finish(struct pipe_stage *st, int rc)
{
    if (st->finishing)
        return;
    st->finishing = true;
    st->exit_rc = rc;
    atomic_store(&st->stopping, true);
    if (st->admin)
        pipe_httpd_stop_accepting(st->admin);
    uv_close((uv_handle_t *)&st->sigterm, NULL);
    uv_close((uv_handle_t *)&st->sigint, NULL);
    if (st->poller)
        pipe_stage_poller_stop(st->poller);
    if (st->admin) {
        pipe_httpd_close(st->admin, NULL, NULL);
        st->admin = NULL;
    }
}

void pipe_stage_done(struct pipe_stage *st, int rc)
{
    finish(st, rc);
}

/* ---- pollers ---------------------------------------------------------- */

struct pipe_stage_poller {
    struct pipe_stage *st;
    pipe_stage_round_fn round;
    pipe_stage_ended_fn ended;
    void *arg;
    int64_t every_ms;
    bool once;
    uv_timer_t timer;
    uv_work_t work;
    struct pipe_backoff backoff; /* between rounds that said RETRY */
    enum pipe_stage_status last;
    bool busy;    /* a round is on a worker thread */
    bool stopped; /* no round starts any more */
};

static void poller_closed(uv_handle_t *h)
{
    pipe_free(h->data);
}

/* poller_end — once: tells the owner, then frees p when its timer closes. */
static void poller_end(struct pipe_stage_poller *p, enum pipe_stage_status last)
{
    p->stopped = true;
    p->ended(p->st, p->arg, last);
    uv_close((uv_handle_t *)&p->timer, poller_closed);
}

static void poller_work(uv_work_t *w)
{
    struct pipe_stage_poller *p = w->data;
    p->last = p->round(p->st, p->arg);
}

static void poller_schedule(struct pipe_stage_poller *p, int64_t delay_ms);

static void poller_after(uv_work_t *w, int status)
{
    struct pipe_stage_poller *p = w->data;
    p->busy = false;
    if (status != 0 || p->stopped) {
        poller_end(p, PIPE_STAGE_IDLE);
        return;
    }
    switch (p->last) {
    case PIPE_STAGE_WORKED:
        pipe_backoff_reset(&p->backoff);
        poller_schedule(p, 0);
        break;
    case PIPE_STAGE_IDLE:
        pipe_backoff_reset(&p->backoff);
        if (p->once)
            poller_end(p, PIPE_STAGE_IDLE);
        else
            poller_schedule(p, p->every_ms);
        break;
    case PIPE_STAGE_RETRY:
        /* Seeded full jitter, so a fleet of stages does not hammer a store
         * that is coming back all at the same moments. */
        poller_schedule(p, pipe_backoff_next(&p->backoff));
        break;
    case PIPE_STAGE_FAIL:
        poller_end(p, PIPE_STAGE_FAIL);
        break;
    }
}

static void poller_timer_cb(uv_timer_t *t)
{
    struct pipe_stage_poller *p = t->data;
    if (p->busy || p->stopped)
        return;
    p->busy = true;
    uv_queue_work(&p->st->loop, &p->work, poller_work, poller_after);
}

static void poller_schedule(struct pipe_stage_poller *p, int64_t delay_ms)
{
    uv_timer_start(&p->timer, poller_timer_cb, (uint64_t)(delay_ms < 0 ? 0 : delay_ms), 0);
}

struct pipe_stage_poller *pipe_stage_poller_start(struct pipe_stage *st, pipe_stage_round_fn round,
                                                  pipe_stage_ended_fn ended, void *arg,
                                                  int64_t every_ms, bool once)
{
    struct pipe_stage_poller *p = pipe_calloc(1, sizeof *p);
    *p = (struct pipe_stage_poller){
        .st = st, .round = round, .ended = ended, .arg = arg, .every_ms = every_ms, .once = once};
    pipe_backoff_init(&p->backoff, STAGE_BACKOFF_BASE_MS, STAGE_BACKOFF_CAP_MS);
    uv_timer_init(&st->loop, &p->timer);
    p->timer.data = p->work.data = p;
    poller_schedule(p, 0);
    return p;
}

void pipe_stage_poller_stop(struct pipe_stage_poller *p)
{
    if (p == NULL || p->stopped)
        return;
    p->stopped = true;
    uv_timer_stop(&p->timer);
    if (!p->busy)
        poller_end(p, PIPE_STAGE_IDLE);
    /* else poller_after ends it once the round in hand returns */
}

bool pipe_stage_poller_busy(const struct pipe_stage_poller *p)
{
    return p != NULL && p->busy;
}

/* The stage's own poller runs process; when it ends, so does the stage. */
static enum pipe_stage_status process_round(struct pipe_stage *st, void *arg)
{
    (void)arg;
    if (st->work)
        return st->work(st, st->work_arg);
    return st->desc->process(st, st->state);
}

void pipe_stage_set_work(struct pipe_stage *st, pipe_stage_round_fn round, void *arg,
                         void (*release)(void *arg))
{
    st->work = round;
    st->work_arg = arg;
    st->work_release = release;
}

static void process_ended(struct pipe_stage *st, void *arg, enum pipe_stage_status last)
{
    (void)arg;
    st->poller = NULL;
    if (last == PIPE_STAGE_FAIL)
        pipe_log_error("stage failed; stopping", NULL);
    finish(st, last == PIPE_STAGE_FAIL ? 1 : 0);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    struct pipe_stage *st = s->data;
    pipe_log_info("stopping on signal", "signal=%d", signum);
    if (atomic_exchange(&st->stopping, true)) {
        /* A second signal while stopping: the operator insists. */
        if (signum == SIGINT)
            _exit(130);
        return;
    }
    if (st->desc->stop)
        st->desc->stop(st, st->state);
    else if (st->poller)
        pipe_stage_poller_stop(st->poller); /* finishes once the round in hand is done */
    else
        finish(st, 0);
}

static int start_admin(struct pipe_stage *st)
{
    const struct pipe_stage_common *c = st->cfg;
    if (c->admin == NULL || c->admin[0] == '\0' || strcmp(c->admin, "off") == 0)
        return 0;
    struct pipe_httpd_config hc;
    pipe_httpd_config_defaults(&hc);
    hc.listen = c->admin;
    int rc = pipe_httpd_new(&st->loop, &hc, admin_handler, st, &st->admin);
    if (rc < 0) {
        pipe_log_error("cannot serve the admin port", "addr=%s err=\"%s\"", c->admin,
                       pipe_strerror(rc));
        return rc;
    }
    pipe_log_info("admin listening", "addr=%s port=%d", c->admin, pipe_httpd_port(st->admin));
    return 0;
}

static void default_instance(struct pipe_stage_common *c)
{
    if (c->instance && c->instance[0])
        return;
    char host[256] = "sluice";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    /* Instance names end up in object names: keep [A-Za-z0-9_.-]. */
    for (char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-'))
            *p = '-';
    host[64] = '\0';
    pipe_free(c->instance);
    c->instance = pipe_strdup(host[0] ? host : "sluice");
}

static int open_backends(struct pipe_stage *st)
{
    struct pipe_stage_common *c = st->cfg;
    int rc = pipe_store_open(c->store, &st->store);
    if (rc < 0) {
        pipe_log_error("cannot open the store", "url=\"%s\" err=\"%s\" detail=\"%s\"", c->store,
                       pipe_strerror(rc), pipe_store_last_error(NULL));
        return rc;
    }
    if (st->desc->needs_leases) {
        rc = pipe_leases_open(c->leases, NULL, &st->leases);
        if (rc < 0) {
            pipe_log_error("cannot open the lease backend", "url=\"%s\" err=\"%s\" detail=\"%s\"",
                           c->leases, pipe_strerror(rc), pipe_leases_last_error(NULL));
            return rc;
        }
    }
    return 0;
}

static void teardown(struct pipe_stage *st, const struct pipe_conf_program *prog)
{
    if (st->work_release)
        st->work_release(st->work_arg);
    if (st->state && st->desc->exit)
        st->desc->exit(st, st->state);
    /* Anything a stage left open is closed so the loop can be freed. */
    uv_walk(&st->loop, close_handle, NULL);
    uv_run(&st->loop, UV_RUN_DEFAULT);
    uv_loop_close(&st->loop);
    pipe_wake_free(st->wake);
    pipe_leases_free(st->leases);
    pipe_store_free(st->store);
    pipe_metrics_free(st->metrics);
    pipe_conf_cleanup(prog, st->cfg);
    pipe_free(st->cfg);
}

int pipe_stage_main(const struct pipe_stage_desc *d, int argc, char **argv)
{
    char name[64];
    if (d->program)
        snprintf(name, sizeof name, "%s", d->program);
    else
        snprintf(name, sizeof name, "sluice-%s", d->name);
    const struct pipe_conf_program prog = {
        .name = name,
        .summary = d->summary,
        .usage_args = d->usage_args,
        .version = SLUICE_VERSION,
        .tables = {pipe_stage_common_opts, d->opts, NULL},
        .validate = d->validate,
    };
    struct pipe_stage st_mem = {.desc = d};
    struct pipe_stage *st = &st_mem;
    int first_arg = 0;
    st->cfg = pipe_calloc(1, d->cfg_size);
    int rc = pipe_conf_load(&prog, st->cfg, argc, argv, &first_arg);
    if (rc < 0) {
        pipe_free(st->cfg);
        return rc == PIPE_EHELP ? 0 : 2;
    }
    if (first_arg < argc && d->usage_args == NULL) {
        fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", name, argv[first_arg]);
        pipe_conf_cleanup(&prog, st->cfg);
        pipe_free(st->cfg);
        return 2;
    }
    struct pipe_stage_common *c = st->cfg;
    int level = pipe_log_level_parse(c->log_level);
    pipe_log_init(d->name, level < 0 ? PIPE_LOG_INFO : (enum pipe_log_level)level);
    default_instance(c);
    signal(SIGPIPE, SIG_IGN);

    uv_loop_init(&st->loop);
    uv_signal_init(&st->loop, &st->sigterm);
    uv_signal_init(&st->loop, &st->sigint);
    st->sigterm.data = st->sigint.data = st;
    st->metrics = pipe_metrics_new();
    st->exit_rc = 1;

    rc = open_backends(st);
    /* A daemon clears what killed puts left, once; its listings keep the
     * directories they read clear afterwards. --once runs skip the walk. */
    if (rc == 0 && !c->once)
        pipe_store_tidy(st->store);
    if (rc == 0)
        rc = start_admin(st);
    if (rc == 0) {
        register_store_metrics(st);
        register_lease_metrics(st);
        st->wake = pipe_wake_new(st->leases, c->leases, c->idle_list_ms, st->metrics);
        uv_signal_start(&st->sigterm, signal_cb, SIGTERM);
        uv_signal_start(&st->sigint, signal_cb, SIGINT);
        rc = d->init(st, st->cfg, &st->state);
        if (rc < 0)
            pipe_log_error("stage failed to start", "err=\"%s\"", pipe_strerror(rc));
    }
    if (rc < 0) {
        finish(st, 1);
    } else {
        pipe_log_info("started", "store=\"%s\" instance=%s once=%s", pipe_store_url(st->store),
                      c->instance, c->once ? "true" : "false");
        if (d->process || st->work) {
            atomic_store(&st->ready, true);
            st->poller = pipe_stage_poller_start(st, process_round, process_ended, NULL, c->poll_ms,
                                                 c->once);
        }
    }
    uv_run(&st->loop, UV_RUN_DEFAULT);
    int exit_rc = st->exit_rc;
    teardown(st, &prog);
    pipe_log_info("stopped", "exit=%d", exit_rc);
    return exit_rc;
}
