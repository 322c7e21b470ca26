/* lease_int — what a lease backend implements, for backends and contract
 * tests only. The generic front end (lease.c) validates names and TTLs,
 * makes tokens, keeps counters and reads the clock; a backend only stores
 * and compares. Each backend is one `const struct pipe_lease_ops`, the only
 * non-static symbol of its file, listed in lease.c's table. */
#ifndef PIPE_LEASE_INT_H
#define PIPE_LEASE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "libpipe/lease.h"

#define PIPE__LEASE_TOKEN_LEN 32

/* The semantics every backend implements exactly (Redis does it with one
 * Lua script per operation):
 *   acquire  if the record is absent, released, expired at now_ms, or (local
 *            only) its holder process is dead: fence = fence + 1 (the fence
 *            survives release and expiry), owner = token, expiry = now_ms +
 *            ttl_ms; write the new fence to *fence. Else PIPE_EBUSY.
 *   renew    if owner == token && fence matches && expiry > now_ms:
 *            expiry = now_ms + ttl_ms. Else PIPE_ELOST.
 *   check    the same condition, read-only: 0 or PIPE_ELOST.
 *   release  if the same condition holds: mark released (keep the fence).
 *            Else PIPE_ELOST.
 * Backend failures are PIPE_EUNAVAIL (unreachable) or PIPE_EIO, with detail
 * set through pipe__leases_set_error. All calls may come from many threads
 * at once. Names and tokens arrive validated; now_ms is the caller's wall
 * clock (a remote backend may use its own clock for expiry instead). */
struct pipe_lease_ops {
    const char *name;           /* "local", "redis", "fault" */
    const char *const *schemes; /* URL schemes, NULL-terminated: {"redis", "unix", NULL} */

    /* open — parses url (the whole string, scheme included) and sets ls->impl.
     * 0, PIPE_ECONFIG (with pipe__leases_set_error), PIPE_EUNAVAIL. */
    int (*open)(struct pipe_leases *ls, const char *url, const char *local_dir);
    /* close — frees ls->impl (which may be NULL after a failed open). */
    void (*close)(struct pipe_leases *ls);

    int (*acquire)(struct pipe_leases *ls, const char *name, const char *token, int64_t now_ms,
                   int64_t ttl_ms, uint64_t *fence);
    int (*renew)(struct pipe_leases *ls, const char *name, const char *token, uint64_t fence,
                 int64_t now_ms, int64_t ttl_ms);
    int (*check)(struct pipe_leases *ls, const char *name, const char *token, uint64_t fence,
                 int64_t now_ms);
    int (*release)(struct pipe_leases *ls, const char *name, const char *token, uint64_t fence,
                   int64_t now_ms);

    /* Generations (lease.h), atomic per name at the backend:
     *   bump         generation = max(generation + 1, now_us) (a remote
     *                backend may use its own clock)
     *   generations  values[i] = the generation of names[i], 0 if none */
    int (*bump)(struct pipe_leases *ls, const char *name, int64_t now_us);
    int (*generations)(struct pipe_leases *ls, const char *const *names, size_t n,
                       uint64_t *values);
};

struct pipe_leases {
    const struct pipe_lease_ops *ops;
    void *impl; /* the backend's state */
    _Atomic uint64_t n_acquired, n_busy, n_lost, n_errors;
    pthread_mutex_t err_mu; /* guards err: threads share a handle */
    char err[256];
};

/* pipe__leases_set_error — records a printf-formatted failure description
 * for pipe_leases_last_error. Thread-safe. */
void pipe__leases_set_error(struct pipe_leases *ls, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

extern const struct pipe_lease_ops pipe__lease_local_ops;

/* pipe__lease_local_prune — removes the files of `local` leases that have
 * been free (released or expired) for at least free_for_ms; files in use are
 * left. A pruned name starts again at fence 1, which is safe once
 * free_for_ms exceeds the longest TTL (no holder can remain). The backend
 * does this by itself hourly with a margin past PIPE_LEASE_TTL_MAX_MS;
 * tests call it directly. 0 or -errno. */
int pipe__lease_local_prune(struct pipe_leases *ls, int64_t now_ms, int64_t free_for_ms,
                            size_t *removed);
extern const struct pipe_lease_ops pipe__lease_fault_ops;
extern const struct pipe_lease_ops pipe__lease_redis_ops;

#endif
