/* dedup_int — the contract between the de-duplication front end (dedup.c)
 * and its backends (dedup_local.c, dedup_redis.c), plus the index
 * object codec they share. For backends and tests only, not for stages.
 *
 * Each backend is one `const struct pipe_dedup_ops`, the only non-static
 * symbol of its file, listed in dedup.c's table. The front end checks
 * arguments and keeps the counters; a backend only decides verdicts and
 * keeps its view of the store's index objects. */
#ifndef PIPE_DEDUP_INT_H
#define PIPE_DEDUP_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libpipe/buf.h"
#include "libpipe/dedup.h"
#include "libpipe/lease.h"

#define PIPE__DEDUP_HOUR_MS     3600000LL
#define PIPE__DEDUP_LEASE       "dedup"     /* the lease that serialises claims */
#define PIPE__DEDUP_MAX_KEYS    (16u << 20) /* keys in one index object (256 MiB) */
#define PIPE__DEDUP_INDEX_MAGIC "SLDX"
#define PIPE__DEDUP_INDEX_VER   1
#define PIPE__DEDUP_HEADER_LEN  16 /* magic, version, 0, id length, count */

/* The semantics every backend implements:
 *   claim  under the lease PIPE__DEDUP_LEASE (or an equivalent atomic step),
 *          learn every index object in the partitions of [now_ms - window,
 *          now_ms + 1 h] and of hour_ms; a key in the job's own previous
 *          index is MINE, a key claimed by another job is DUP, any other
 *          is NEW; write the job's index object (its previous keys plus the
 *          NEW and MINE ones, sorted) and only then report success. On
 *          failure nothing must be left claimed that was not claimed before.
 * Arguments arrive checked: job_id is a valid name, n >= 1, keys distinct,
 * times inside the years keys.h accepts. */
struct pipe_dedup_ops {
    const char *name;           /* "local", "redis" */
    const char *const *schemes; /* URL schemes, NULL-terminated: {"local", NULL} */

    /* open — parses url (scheme included) and sets d->impl. d->store,
     * d->leases and d->cfg are already set. 0 or PIPE_ECONFIG (logged). */
    int (*open)(struct pipe_dedup *d, const char *url);
    /* close — frees d->impl (NULL after a failed open is fine). */
    void (*close)(struct pipe_dedup *d);
    /* claim — as pipe_dedup_claim; verdicts written only on success. */
    int (*claim)(struct pipe_dedup *d, const char *job_id, int64_t hour_ms, int64_t now_ms,
                 const struct pipe_dedup_key *keys, size_t n, uint8_t *verdicts);
};

struct pipe_dedup {
    const struct pipe_dedup_ops *ops;
    void *impl;                 /* the backend's state */
    struct pipe_store *store;   /* borrowed */
    struct pipe_leases *leases; /* borrowed */
    struct pipe_dedup_config cfg;
    /* Relaxed atomics: /metrics reads them from another thread. */
    _Atomic uint64_t n_fresh, n_mine, n_dups;
    _Atomic uint64_t mem_keys, mem_bytes; /* set by the backend */
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

/* pipe__dedup_lease_wait — takes the claim lease PIPE__DEDUP_LEASE into *l,
 * waiting up to d->cfg.wait_ms (with growing pauses) while others hold it.
 * 0, PIPE_EBUSY after the wait, or a lease backend error. */
int pipe__dedup_lease_wait(struct pipe_dedup *d, struct pipe_lease *l);

/* pipe__dedup_index_build — encodes into enc the job's new index: the keys
 * of its previous index prev plus every one of keys[0..n) whose verdict is
 * not PIPE_DEDUP_DUP, sorted and distinct. 0 or as pipe__dedup_index_encode. */
int pipe__dedup_index_build(const char *job_id, const struct pipe__dedup_index *prev,
                            const struct pipe_dedup_key *keys, size_t n, const uint8_t *verdicts,
                            struct pipe_buf *enc);

/* pipe__dedup_index_commit — the last step of every claim, under the
 * lease: writes enc as the job's index object at key unless it equals
 * before (the stored bytes; existed says whether there were any), then
 * checks that the lease held throughout and, if it did not, puts back what
 * was there, so that nothing stays claimed that the caller is told was not.
 * *wrote says whether a new object was written and kept. 0, a store error,
 * or the lease check's PIPE_ELOST / PIPE_EUNAVAIL. */
int pipe__dedup_index_commit(struct pipe_dedup *d, const struct pipe_lease *lease,
                             const char *job_id, const char *key, bool existed,
                             const struct pipe_buf *before, const struct pipe_buf *enc,
                             bool *wrote);

/* pipe__dedup_job_of_key — if key is ".../<job-id>.idx" with a valid job id,
 * copies the id into job (256 bytes) and returns true. */
bool pipe__dedup_job_of_key(const char *key, char job[256]);

/* pipe__dedup_key_cmp — qsort/bsearch order of keys: hi, then lo. */
int pipe__dedup_key_cmp(const void *a, const void *b);

/* pipe__dedup_hour — the hour number (ms / 1 h) of a non-negative time. */
static inline int64_t pipe__dedup_hour(int64_t ms)
{
    return ms / PIPE__DEDUP_HOUR_MS;
}

extern const struct pipe_dedup_ops pipe__dedup_local_ops;
extern const struct pipe_dedup_ops pipe__dedup_redis_ops;

#endif
