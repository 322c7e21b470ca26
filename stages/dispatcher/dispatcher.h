/* dispatcher — internal declarations shared by the dispatcher's files:
 * dispatcher.c (descriptor, options, the lease and one pass),
 * dispatcher_scan.c (listings: pending descriptors, partitions, objects) and
 * dispatcher_sweep.c (the periodic retention sweep). */
#ifndef SLUICE_DISPATCHER_H
#define SLUICE_DISPATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libpipe/clock.h"
#include "libpipe/job.h"
#include "libpipe/retention.h"
#include "libpipe/stage.h"

/* The previous hour stays "hot" (listed every pass) this long into a new
 * hour: objects of its last seconds are still being flushed. Later
 * arrivals in it are found by the lookback pass. */
#define DISP_HOT_PREV_MS (5 * PIPE_MIN_MS)

struct pipe_counter;
struct pipe_gauge;
struct pipe_wake_watch;
struct json_t;

struct dispatcher_cfg {
    struct pipe_stage_common common; /* must come first */
    int64_t lookback_ms;
    int64_t lookback_every_ms; /* 0: the whole lookback every pass */
    int64_t full_scan_ms;
    uint64_t job_bytes;
    int64_t job_objects;
    int64_t max_wait_ms;
    int64_t lease_ttl_ms;
    int64_t sweep_every_ms; /* 0: no sweep */
    struct json_t *retention;
    int64_t dedup_window_ms;
};

/* An object as listed: what a job descriptor records about an input. */
struct disp_obj {
    char *key;
    uint64_t size;
    int64_t mtime_ms;
    char etag[72];
};

/* A growable array of listed objects, in the store's key order. */
struct disp_objs {
    struct disp_obj *v;
    size_t n, cap;
};

/* A pending combine job, cached by id: descriptors never change, so each
 * is read once however many passes see it. */
struct disp_job {
    char *id;
    char **keys; /* its inputs */
    size_t n_keys;
};

/* The done markers (state/combine/<hour>/) of one lookback partition as
 * this process last listed them. Markers of existing filtered/ objects are
 * never deleted (the sweep deletes the object first), so for the objects a
 * filtered/ listing shows, an older done set is a subset of the current
 * one: see dispatch_partition for why that lets a pass skip the listing. */
struct disp_done {
    int64_t hour;
    struct disp_objs done;
};

/* Which partitions a pass looks at (docs/compaction.md, Dispatcher). */
enum disp_scan {
    DISP_SCAN_HOT,      /* the current hour, and the previous one early in an hour */
    DISP_SCAN_LOOKBACK, /* every hour partition of the lookback window */
    DISP_SCAN_FULL,     /* and every partition that has an object under filtered/ */
};

struct disp_metrics {
    struct pipe_counter *jobs;
    struct pipe_counter *inputs;
    struct pipe_counter *lease_acquired;
    struct pipe_counter *lease_lost;
    struct pipe_counter *bad_descriptors;
    struct pipe_gauge *backlog_objects;
    struct pipe_gauge *backlog_bytes;
    struct pipe_gauge *pending_jobs;
    struct pipe_gauge *freshness;
    struct pipe_gauge *active;
    /* The sweep: deleted by prefix, in rule order, then the companions. */
    struct pipe_counter *sweep_deleted[PIPE_RETENTION_NRULES];
    struct pipe_counter *sweep_companions[PIPE_RETENTION_NRULES]; /* NULL: none */
    struct pipe_counter *sweep_runs;
    struct pipe_counter *sweep_errors;
};

struct dispatcher {
    struct pipe_stage *st;
    const struct dispatcher_cfg *cfg;
    struct pipe_job_lease *lease; /* the active dispatcher's, renewed by the runtime; NULL: none */
    int64_t last_full_scan_mono;  /* 0: never */
    int64_t last_lookback_mono;   /* 0: never */
    struct disp_done *done;       /* cached done sets of lookback partitions */
    size_t n_done;
    struct disp_job *cache; /* sorted by id at the start of each pass */
    size_t n_cache;
    struct pipe_retention_config ret;
    int64_t last_sweep_mono; /* end of the last sweep; 0: none since the lease was taken */
    struct disp_metrics m;
    struct pipe_wake_watch *watch; /* generations of filtered/ and state/combine/ */
    int64_t wake_at_ms;            /* a waiting job is due then (max_wait, hour end); 0: none */
    int64_t oldest_unassigned_ms;  /* as the last pass left it, for the freshness gauge */
};

/* The marks of d->watch: what each tier of listing last saw. */
enum disp_mark { DISP_MARK_HOT, DISP_MARK_LOOKBACK, DISP_MARK_FULL };

/* disp_keep_lease — checks the lease (the runtime renews it). Anything but
 * 0 means "do not write". */
int disp_keep_lease(struct dispatcher *d);

/* disp_sweep_validate — the sweep options: the retention object parses, and
 * filtered/ and combined/ are kept at least an hour. Non-zero with a
 * message in err otherwise. */
int disp_sweep_validate(const struct dispatcher_cfg *c, char *err, size_t errlen);

/* disp_sweep_init — parses the retention into d->ret, logs the settings
 * that keep objects forever, registers the sweep metrics. */
void disp_sweep_init(struct dispatcher *d);

/* disp_sweep_maybe — runs a sweep when sweep_every has passed since the
 * last one (or none ran since the lease was taken). Only while the lease
 * is held; the sweep stops if it is lost (PIPE_ELOST) or the stage stops.
 * Store errors are counted and logged, not returned: 0 otherwise. */
int disp_sweep_maybe(struct dispatcher *d);

/* disp_list — every object under prefix (all pages), appended to out.
 * 0 or a store error (out then holds what was appended before it). */
int disp_list(struct pipe_store *s, const char *prefix, struct disp_objs *out);
void disp_objs_cleanup(struct disp_objs *o);

/* disp_load_pending — lists jobs/combine/, refreshes d's descriptor cache
 * (reading descriptors not seen before, dropping those that are gone) and
 * returns in *keys a sorted array of every pending input key (borrowed from
 * the cache, valid until the next call; free the array with pipe_free).
 * 0 or a store error. */
int disp_load_pending(struct dispatcher *d, const char ***keys, size_t *n);

/* disp_lookback_from — the first hour partition of the lookback window
 * ending at now_ms. */
int64_t disp_lookback_from(const struct dispatcher *d, int64_t now_ms);

/* disp_partitions — the hour partitions a pass of the given scan looks at,
 * sorted and unique: the hot ones (the current hour, and the previous one
 * during the first DISP_HOT_PREV_MS of an hour), the whole lookback window
 * ending now, or that and every partition that has an object under
 * filtered/. *hours is freed with pipe_free. 0 or a store error. */
int disp_partitions(struct dispatcher *d, int64_t now_ms, enum disp_scan scan, int64_t **hours,
                    size_t *n);

/* disp_done_find — the cached done set of hour, or NULL. */
struct disp_objs *disp_done_find(struct dispatcher *d, int64_t hour);

/* disp_done_keep — caches *done (taken: *done is emptied) as the done set
 * of hour, replacing an older one. */
void disp_done_keep(struct dispatcher *d, int64_t hour, struct disp_objs *done);

/* disp_done_prune — drops the cached done sets of hours before from (all
 * with INT64_MAX). */
void disp_done_prune(struct dispatcher *d, int64_t from);

/* disp_cache_add — records a descriptor this process has just written. */
void disp_cache_add(struct dispatcher *d, const char *id, const struct disp_obj *const *objs,
                    size_t n);
void disp_cache_free(struct dispatcher *d);

#endif
