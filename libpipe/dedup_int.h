/* dedup_int — the contract between the de-duplication front end (dedup.c,
 * with the index object codec in dedup_index.c) and its backends
 * (dedup_local.c, dedup_redis.c). For backends and tests only, not for
 * stages.
 *
 * Each backend is one `const struct pipe_dedup_ops`, the only non-static
 * symbol of its file, listed in dedup.c's table. The front end runs the
 * whole claim protocol — lease, reading and writing index objects,
 * verdicts, undo, rebuilds — and keeps the counters; a backend is a narrow
 * view of the store's index objects that loads, looks up, remembers and
 * forgets keys, and never calls the front end. */
#ifndef PIPE_DEDUP_INT_H
#define PIPE_DEDUP_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/dedup.h"

#define PIPE__DEDUP_LEASE       "dedup"     /* the lease that serialises claims */
#define PIPE__DEDUP_MAX_KEYS    (16u << 20) /* keys in one index object (256 MiB) */
#define PIPE__DEDUP_INDEX_MAGIC "SLDX"
#define PIPE__DEDUP_INDEX_VER   1
#define PIPE__DEDUP_HEADER_LEN  16 /* magic, version, 0, id length, count */

/* Returned (positive) by a backend's check, lookup or load, and by the
 * rebuild's publish: its view is not the store's and must be rebuilt. */
#define PIPE__DEDUP_STALE 1

/* One claim as the front end sees it; arguments arrive checked: job_id is
 * a valid name, keys distinct, times inside the years keys.h accepts. */
struct pipe__dedup_claim {
    const char *job_id;
    const char *own_key; /* the job's index object */
    int64_t claim_hour;  /* partition of the job's index (hour_ms / 1 h) */
    int64_t lo_hour;     /* oldest partition inside the window */
    int64_t hi_hour;     /* newest partition looked at: now + 1 h */
};

/* Partitions the front end lists and loads into a view: the hours
 * [lo, hi), and the claim's own partition too when own is set and it lies
 * outside them. lo == hi and !own: none. */
struct pipe__dedup_hours {
    int64_t lo, hi;
    bool own;
};

/* One index object the front end read from the store: job's claims of
 * keys[0..n) (distinct; the receiver may reorder them) in the partition of
 * hour. Valid during the call it is passed to. */
struct pipe__dedup_obj {
    const char *key, *etag, *job;
    int64_t hour;
    struct pipe_dedup_key *keys;
    size_t n;
};

/* The claim protocol lives in dedup.c and calls these; a backend never
 * calls back into the front end. Under the lease PIPE__DEDUP_LEASE the
 * front end loads the partitions plan names (through seen and load), asks
 * check, reads the job's previous index object (its keys are MINE), asks
 * lookup for every other key (a key another job's index object holds in a
 * partition the view does not cover is DUP), writes the job's new index
 * object (previous keys plus NEW and MINE, sorted), checks the lease and
 * then calls remember; on a failure after lookup it calls forget, and on
 * PIPE__DEDUP_STALE it rebuilds (rebuild_begin, load, rebuild_publish)
 * and starts over. Optional ops are NULL. */
struct pipe_dedup_ops {
    const char *name;           /* "local", "redis" */
    const char *const *schemes; /* URL schemes, NULL-terminated: {"local", NULL} */

    /* open — parses url (scheme included) and sets d->impl. d->store,
     * d->leases and d->cfg are already set. 0 or PIPE_ECONFIG (logged). */
    int (*open)(struct pipe_dedup *d, const char *url);
    /* close — frees d->impl (NULL after a failed open is fine). */
    void (*close)(struct pipe_dedup *d);
    /* plan — optional; before the lease: readies the view for c (it may
     * forget what left the window) and names in *h the partitions the
     * front end loads before every claim, outside the lease for the bulk
     * and again under it for what changed. NULL: none while warm. */
    void (*plan)(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                 struct pipe__dedup_hours *h);
    /* seen — optional: true when the view holds the index object key in
     * its version etag already; the front end then does not read it. */
    bool (*seen)(struct pipe_dedup *d, const char *key, const char *etag);
    /* load — adds one index object's claims to the view. 0,
     * PIPE__DEDUP_STALE (during a rebuild: the view went), or an error. */
    int (*load)(struct pipe_dedup *d, const struct pipe__dedup_obj *o);
    /* check — optional; under the lease, before anything is read: 0,
     * PIPE__DEDUP_STALE, or an error. */
    int (*check)(struct pipe_dedup *d, const struct pipe__dedup_claim *c);
    /* covers — optional: whether the view holds c's own partition (NULL:
     * always). When not, the front end reads that partition itself. */
    bool (*covers)(struct pipe_dedup *d, const struct pipe__dedup_claim *c);
    /* lookup — verdicts[i] for keys[0..n) (none in the job's previous
     * index): MINE if the view has the key as c's job's, DUP if another
     * job's, NEW otherwise. It may record the NEW ones as the job's at once
     * (an atomic look-up-and-claim); forget takes them back. 0,
     * PIPE__DEDUP_STALE, or an error (some keys may be recorded then). */
    int (*lookup)(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                  const struct pipe_dedup_key *keys, size_t n, uint8_t *verdicts);
    /* remember — optional; after the claim is durable: the job holds
     * prev[0..nprev) and the keys[i] whose verdicts[i] is NEW. etag is its
     * index object's new version when one was written, else NULL. */
    void (*remember)(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                     const struct pipe_dedup_key *prev, size_t nprev,
                     const struct pipe_dedup_key *keys, size_t n, const uint8_t *verdicts,
                     const char *etag);
    /* forget — optional; after a claim failed past lookup: takes back
     * what lookup recorded (keys whose verdict was NEW). Best effort. */
    void (*forget)(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                   const struct pipe_dedup_key *keys, size_t n, const uint8_t *verdicts);
    /* rebuild_begin — optional (needed when check or lookup can answer
     * PIPE__DEDUP_STALE); under the lease: voids the view and names in *h
     * the partitions to load into a fresh one. */
    int (*rebuild_begin)(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                         struct pipe__dedup_hours *h);
    /* rebuild_publish — after the loads and a lease check: makes the
     * fresh view the one check accepts. 0, PIPE__DEDUP_STALE (it went
     * meanwhile: start over), or an error. */
    int (*rebuild_publish)(struct pipe_dedup *d);
    /* memory — optional: keys the view holds in this process and the
     * bytes of its tables. Called after each claim, on the claiming thread. */
    void (*memory)(const struct pipe_dedup *d, uint64_t *keys, uint64_t *bytes);
};

struct pipe_counter;
struct pipe_gauge;

struct pipe_dedup {
    const struct pipe_dedup_ops *ops;
    void *impl;                 /* the backend's state */
    struct pipe_store *store;   /* borrowed */
    struct pipe_leases *leases; /* borrowed */
    struct pipe_dedup_config cfg;
    uint8_t *verdicts; /* scratch, so out-params are written only on success */
    size_t verdicts_cap;
    /* Relaxed atomics: pipe_dedup_counters may read them from another thread. */
    _Atomic uint64_t n_fresh, n_mine, n_dups;
    _Atomic uint64_t mem_keys, mem_bytes;
    /* /metrics, once registered (owned by the registry). */
    struct pipe_counter *m_claims[3]; /* by verdict */
    struct pipe_gauge *m_keys, *m_bytes;
};

/* ---- index objects ------------------------------------------------------
 * A zstd frame holding, big-endian:
 *   "SLDX"  u8 version (1)  u8 0  u16 job id length  u64 count
 *   job id bytes  count x (u64 hi, u64 lo), strictly ascending. */

/* A decoded index: its job id and its keys (sorted, distinct). */
struct pipe__dedup_index {
    char job_id[256];
    struct pipe_dedup_key *keys; /* pipe_malloc'd; NULL when count is 0 */
    size_t count;
};

/* pipe__dedup_index_encode — replaces out's contents with the index object
 * of job_id holding keys[0..n), which must be sorted and distinct. The bytes
 * are a pure function of the arguments. 0, PIPE_EINVAL, PIPE_ETOOBIG. */
int pipe__dedup_index_encode(const char *job_id, const struct pipe_dedup_key *keys, size_t n,
                             struct pipe_buf *out);

/* pipe__dedup_index_decode — parses an index object (untrusted bytes) into
 * *out (release with pipe__dedup_index_cleanup). expect_job, if not NULL, is
 * the job id the object's key names; a different one inside is corruption.
 * 0 or PIPE_ECORRUPT (out untouched). */
int pipe__dedup_index_decode(const void *data, size_t len, const char *expect_job,
                             struct pipe__dedup_index *out);

/* pipe__dedup_index_cleanup — frees the keys; safe on a zeroed index. */
void pipe__dedup_index_cleanup(struct pipe__dedup_index *ix);

/* pipe__dedup_index_get — reads and decodes the index object at key (whose
 * name is expect_job.idx). raw, if not NULL, receives the stored bytes.
 * 0, PIPE_ENOTFOUND, PIPE_ECORRUPT (logged), or a store error. */
int pipe__dedup_index_get(struct pipe_store *s, const char *key, const char *expect_job,
                          struct pipe__dedup_index *out, struct pipe_buf *raw);

/* pipe__dedup_job_of_key — if key is ".../<job-id>.idx" with a valid job id,
 * copies the id into job (256 bytes) and returns true. */
bool pipe__dedup_job_of_key(const char *key, char job[256]);

/* pipe__dedup_key_cmp — qsort/bsearch order of keys: hi, then lo. */
int pipe__dedup_key_cmp(const void *a, const void *b);

/* pipe__dedup_keys_sort — sorts keys[0..n) into pipe__dedup_key_cmp's
 * order (equal keys kept, adjacent) by radix, in at most 16 passes over
 * the keys whatever they are. Allocates n keys of scratch (dedup.c). */
void pipe__dedup_keys_sort(struct pipe_dedup_key *keys, size_t n);

/* pipe__dedup_hour — the hour number (ms / 1 h) of a non-negative time. */
static inline int64_t pipe__dedup_hour(int64_t ms)
{
    return ms / PIPE_HOUR_MS;
}

extern const struct pipe_dedup_ops pipe__dedup_local_ops;
extern const struct pipe_dedup_ops pipe__dedup_redis_ops;

#endif
