/* dedup — cross-batch de-duplication of events on (event, id).
 *
 * A split job claims the keys of the events it is about to write. A key
 * already claimed by another job within the window is a duplicate; a key
 * claimed earlier by the same job (a re-run after a crash) stays the job's
 * own, so re-running a job keeps its events. The durable record of every
 * claim is an index object per job in the store
 * (state/dedup/dt=YYYY-MM-DD/hr=HH/<job-id>.idx, see keys.h); a backend
 * keeps a fast view of it (memory for `local`, hash buckets for `redis`) and can always
 * be rebuilt from the store, so losing the backend's state loses nothing. */
#ifndef PIPE_DEDUP_H
#define PIPE_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "libpipe/clock.h"

/* The window (`dedup_window`): the splitters drop an event repeated within
 * it, and the sweeps keep state/dedup/ index objects at least that long.
 * Every program that reads it takes it from the top level of one config
 * file, so they share one default and one range. */
#define PIPE_DEDUP_WINDOW_DEFAULT "24h"
#define PIPE_DEDUP_WINDOW_MIN_MS  PIPE_MIN_MS
#define PIPE_DEDUP_WINDOW_MAX_MS  (90 * PIPE_DAY_MS)

struct pipe_dedup;
struct pipe_store;
struct pipe_leases;
struct pipe_metrics;

/* A de-duplication key: XXH3-128 of the event type, a NUL byte and the id
 * (the id's bytes as stored, i.e. JSON-escaped form). */
struct pipe_dedup_key {
    uint64_t hi, lo;
};

enum pipe_dedup_verdict {
    PIPE_DEDUP_NEW = 0,  /* first claim: the job keeps the event */
    PIPE_DEDUP_MINE = 1, /* claimed before by this same job: keep */
    PIPE_DEDUP_DUP = 2,  /* claimed by another job within the window: drop */
};

struct pipe_dedup_config {
    int64_t window_ms;    /* how far back claims count; default 24 h */
    int64_t lease_ttl_ms; /* TTL of the lease that serialises claims; default 30 s */
    int64_t wait_ms;      /* how long a claim waits for that lease; default 60 s */
};

/* pipe_dedup_key_of — the key of one event. */
void pipe_dedup_key_of(const char *event, size_t event_len, const char *id, size_t id_len,
                       struct pipe_dedup_key *out);

/* pipe_dedup_key_hash — where a key goes in a hash table: XXH3-64 of the
 * whole key under seed (pipe_mem_hash_seed). The key itself is a fixed
 * function of client bytes (it is stored), so a table that indexed by its
 * bits would let a client pick the slots. */
uint64_t pipe_dedup_key_hash(const struct pipe_dedup_key *k, uint64_t seed);

/* pipe_dedup_open — a de-duplication backend by URL: "local" (NULL means
 * "local"), or `redis://host:port[/db][?prefix=P&buckets=N]` /
 * `unix:///path[?db=N&...]` (docs/backends.md). store and leases are
 * borrowed and must outlive the handle; cfg may be NULL for the defaults.
 * 0, PIPE_ECONFIG, or PIPE_EUNAVAIL (Redis unreachable). */
int pipe_dedup_open(const char *url, struct pipe_store *store, struct pipe_leases *leases,
                    const struct pipe_dedup_config *cfg, struct pipe_dedup **out);
void pipe_dedup_free(struct pipe_dedup *d);

/* pipe_dedup_claim — classifies keys[0..n) for job_id, whose index lives in
 * the partition of hour_ms, and writes verdicts[i]. keys must be distinct
 * (drop in-batch duplicates first). On return 0 the claims are durable: any
 * later claim, by any process, sees them. Not safe to call concurrently on
 * one handle. 0, PIPE_EBUSY (the claim lease could not be had within
 * wait_ms), PIPE_ELOST (the lease was lost before the claims were durable:
 * nothing was claimed; retry), or a store error. */
int pipe_dedup_claim(struct pipe_dedup *d, const char *job_id, int64_t hour_ms, int64_t now_ms,
                     const struct pipe_dedup_key *keys, size_t n, uint8_t *verdicts);

/* pipe_dedup_counters — for /metrics: keys claimed new, re-claimed by the
 * same job, and refused as duplicates since open. */
void pipe_dedup_counters(const struct pipe_dedup *d, uint64_t *fresh, uint64_t *mine,
                         uint64_t *dups);

/* pipe_dedup_memory — for /metrics: keys the backend holds in this process
 * and the bytes of its tables (both 0 for a backend that keeps none). Either
 * pointer may be NULL. May be called while another thread claims. */
void pipe_dedup_memory(const struct pipe_dedup *d, uint64_t *keys, uint64_t *bytes);

/* pipe_dedup_metrics_register — exports the handle's figures in m:
 * sluice_dedup_claims_total{verdict="new"|"mine"|"dup"} (counting from the
 * handle's open), sluice_dedup_keys and sluice_dedup_memory_bytes (as
 * pipe_dedup_memory), updated after each claim. Call once, before claims
 * run on another thread; m must outlive the handle. NULL d or m: no-op. */
void pipe_dedup_metrics_register(struct pipe_dedup *d, struct pipe_metrics *m);

#endif
