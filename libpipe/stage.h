/* stage — the one runtime every sluice program runs on.
 *
 * A stage is a descriptor (name, option table, init/process/stop/exit); the
 * runtime owns everything around it: option parsing with the common flags of
 * SPEC §1, logging, the store and lease handles, the admin server
 * (/healthz, /readyz, /metrics), signals, the poll loop with retries and
 * `--once`. A stage either polls (it has `process`, run on a worker thread
 * while the loop keeps serving the admin port) or is event driven on the
 * loop (the filter: no `process`; it calls pipe_stage_done() when finished).
 * A stage that works through a queue of jobs under leases hands its
 * `process` to a job runner (job.h), which owns listing, leases, renewal,
 * error classes and --once for it. */
#ifndef PIPE_STAGE_H
#define PIPE_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "libpipe/conf.h"

struct pipe_stage;
struct pipe_store;
struct pipe_leases;
struct pipe_metrics;
struct pipe_wake;
struct pipe_http_request;

/* The flags every program takes; the first member of each program's config
 * struct, so the runtime can read it through a cast. */
struct pipe_stage_common {
    char *store;        /* store URL */
    char *leases;       /* lease URL */
    char *admin;        /* admin listen address, "" or "off" for none */
    bool once;          /* process what is pending, then exit 0 */
    char *log_level;    /* debug|info|warn|error */
    int64_t generation; /* part of every output name */
    char *instance;     /* this process's name among its peers */
    int64_t poll_ms;    /* how often a polling stage looks for work */

    /* the longest an idle consumer goes without listing (wake.h); 0: every poll */
    int64_t idle_list_ms;
};

extern const struct pipe_conf_opt pipe_stage_common_opts[];

/* What process() tells the runtime. */
enum pipe_stage_status {
    PIPE_STAGE_WORKED, /* did some work: call again at once */
    PIPE_STAGE_IDLE,   /* nothing to do: wait poll_ms (or, with --once, exit 0) */
    PIPE_STAGE_RETRY,  /* a transient failure: back off, then call again */
    PIPE_STAGE_FAIL,   /* a permanent failure: stop and exit 1 */
};

struct pipe_stage_desc {
    const char *name;    /* "filter": the program is "sluice-<name>" */
    const char *program; /* the program's name when it is not that, or NULL */
    const char *summary; /* for --help */
    const char *usage_args;
    const struct pipe_conf_opt *opts; /* the stage's own table, or NULL */
    size_t cfg_size;                  /* sizeof its config; starts with pipe_stage_common */
    int (*validate)(void *cfg, char *err, size_t errlen);
    bool needs_leases;
    /* init — called once after the runtime is up; returns the stage's state
     * in *state. A negative return stops the program with exit status 1;
     * exit still runs if *state was set, so init may set it first and
     * leave the undoing of a half-made state to exit. */
    int (*init)(struct pipe_stage *st, void *cfg, void **state);
    /* process — one round of work, on a worker thread. NULL for stages
     * driven by the loop. Must return promptly once pipe_stage_stopping(). */
    enum pipe_stage_status (*process)(struct pipe_stage *st, void *state);
    /* stop — SIGTERM/SIGINT arrived (loop thread). Loop-driven stages begin
     * their graceful stop here and call pipe_stage_done() when finished;
     * for polling stages it may be NULL. */
    void (*stop)(struct pipe_stage *st, void *state);
    /* exit — release the state (loop thread, after the loop ended). */
    void (*exit)(struct pipe_stage *st, void *state);
};

/* pipe_stage_main — parses argv, runs the stage until it is done or told
 * to stop, and returns the process exit status (0 ok, 1 failure, 2 usage). */
int pipe_stage_main(const struct pipe_stage_desc *d, int argc, char **argv);

/* Accessors for a stage's init/process/stop/exit. All borrowed. */
uv_loop_t *pipe_stage_loop(struct pipe_stage *st);
struct pipe_store *pipe_stage_store(struct pipe_stage *st);
struct pipe_leases *pipe_stage_leases(struct pipe_stage *st);
struct pipe_metrics *pipe_stage_metrics(struct pipe_stage *st);
/* pipe_stage_wake — the process's work signals (libpipe/wake.h): bump
 * after writing work for another stage, watch before listing. */
struct pipe_wake *pipe_stage_wake(struct pipe_stage *st);
const struct pipe_stage_common *pipe_stage_common(const struct pipe_stage *st);
/* pipe_stage_stopping — true once a stop was asked for (any thread). */
bool pipe_stage_stopping(const struct pipe_stage *st);
/* pipe_stage_set_ready — what /readyz answers (any thread). */
void pipe_stage_set_ready(struct pipe_stage *st, bool ready);
/* pipe_stage_done — a loop-driven stage has finished (loop thread); rc 0
 * exits 0, anything else exits 1. */
void pipe_stage_done(struct pipe_stage *st, int rc);
/* pipe_stage_serve_admin — answers /healthz, /readyz and /metrics; returns
 * false for any other path. The filter uses it on its ingest port too. */
bool pipe_stage_serve_admin(struct pipe_stage *st, struct pipe_http_request *req);

/* A poller runs a round of work on a worker thread again and again while
 * the loop goes on: at once after PIPE_STAGE_WORKED, every_ms after IDLE,
 * after a seeded, capped backoff (libpipe/backoff.h) after RETRY. It ends
 * on FAIL, on IDLE when once is set, or when stopped; ended is then called
 * once, on the loop thread (last: FAIL, or IDLE otherwise), and the poller
 * frees itself. A polling stage's process runs on one; a loop-driven stage
 * starts its own for background work (the filter's raw/ poll). */
struct pipe_stage_poller;
typedef enum pipe_stage_status (*pipe_stage_round_fn)(struct pipe_stage *st, void *arg);
typedef void (*pipe_stage_ended_fn)(struct pipe_stage *st, void *arg, enum pipe_stage_status last);

/* pipe_stage_set_work — called from init by a polling stage whose process
 * is an object of its own (a job runner, libpipe/job.h): the runtime runs
 * round(st, arg) as the stage's process (the descriptor's process is then
 * NULL) and calls release(arg), when not NULL, right before the stage's
 * exit, also when init failed after this call. */
void pipe_stage_set_work(struct pipe_stage *st, pipe_stage_round_fn round, void *arg,
                         void (*release)(void *arg));

/* pipe_stage_poller_start — starts the first round at once (loop thread).
 * The poller is valid until ended runs. */
struct pipe_stage_poller *pipe_stage_poller_start(struct pipe_stage *st, pipe_stage_round_fn round,
                                                  pipe_stage_ended_fn ended, void *arg,
                                                  int64_t every_ms, bool once);
/* pipe_stage_poller_stop — starts no more rounds; ended runs now, or when
 * the round in hand returns (loop thread). NULL or an ended poller: no-op. */
void pipe_stage_poller_stop(struct pipe_stage_poller *p);
/* pipe_stage_poller_busy — a round is running (loop thread). */
bool pipe_stage_poller_busy(const struct pipe_stage_poller *p);

#endif
