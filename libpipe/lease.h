/* lease — at most one process works on a given job or object at a time.
 *
 * A lease is a named, time-limited claim with an owner token and a fencing
 * number that grows on every successful acquire of that name, so a holder
 * that paused past its expiry can be told apart and refuses to commit. The
 * backend is chosen by URL: `local` (one host, dead holders free their
 * leases at once), `redis://` / `unix://` (a fleet), or `fault:` (tests).
 * The caller owns struct pipe_lease (acquire fills it, release or cleanup
 * empties it); a struct pipe_leases handle may be shared between threads. */
#ifndef PIPE_LEASE_H
#define PIPE_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "libpipe/clock.h"

#define PIPE_LEASE_NAME_MAX   512         /* bytes, printable ASCII */
#define PIPE_LEASE_TTL_MAX_MS PIPE_DAY_MS /* renew, don't hold for days */

struct pipe_leases; /* opaque backend handle */

struct pipe_lease {
    char *name;         /* owned copy of the lease name; NULL once released */
    char token[33];     /* owner token: 32 hex digits, random per acquire */
    uint64_t fence;     /* grows on every successful acquire of name */
    int64_t expires_ms; /* wall clock, as the holder believes it */
};

/* pipe_leases_open — connects to the lease backend named by url:
 *   `local`              state in local_dir, or in /tmp/sluice-leases-<uid>
 *                        when local_dir is NULL (created 0700, must be ours)
 *   `local:///abs/dir`   state in /abs/dir (created if missing)
 *   `fault:down_file=PATH:INNER_URL`  INNER_URL, except that every operation
 *                        fails with PIPE_EUNAVAIL while PATH exists (tests)
 *   `redis://host:port[/db]`, `unix:///path`  when lease_redis.c is built in
 * Returns 0 and a handle in *out (free with pipe_leases_free), PIPE_ECONFIG
 * for a bad or unsupported URL or an unusable directory, PIPE_EINVAL for NULL
 * arguments, PIPE_EUNAVAIL when a remote backend cannot be reached. */
int pipe_leases_open(const char *url, const char *local_dir, struct pipe_leases **out);

/* pipe_leases_free — closes the handle; leases still held stay held until
 * their TTL runs out (or, for `local`, until this process exits). NULL is a
 * no-op. Release or clean up every struct pipe_lease first. */
void pipe_leases_free(struct pipe_leases *ls);

/* pipe_lease_acquire — takes the lease `name` for ttl_ms (1 ..
 * PIPE_LEASE_TTL_MAX_MS) if it is free, expired, or (local) its holder died.
 * Names are 1..PIPE_LEASE_NAME_MAX bytes of printable ASCII (0x20..0x7e; '/'
 * is fine, names are often store keys). Not re-entrant: a second acquire of a
 * name this process already holds is PIPE_EBUSY too.
 * Returns 0 and fills *out (caller ends it with pipe_lease_release or
 * pipe_lease_cleanup), PIPE_EBUSY if a live owner holds it, PIPE_EINVAL for a
 * bad name or TTL, PIPE_EUNAVAIL / PIPE_EIO when the backend failed (retry),
 * PIPE_ECORRUPT when the record where the name's lease lives belongs to
 * another name (local: two names whose files collide, or a file copied or
 * edited by hand; pipe_leases_last_error names both). */
int pipe_lease_acquire(struct pipe_leases *ls, const char *name, int64_t ttl_ms,
                       struct pipe_lease *out);

/* pipe_lease_renew — extends l to now + ttl_ms if it is still ours and not
 * expired at the backend; updates l->expires_ms. Returns 0, PIPE_ELOST if it
 * is no longer ours (stop working on it; l must still be released or cleaned
 * up), PIPE_EINVAL for a bad TTL, PIPE_EUNAVAIL / PIPE_EIO on backend failure
 * (retry until l->expires_ms). */
int pipe_lease_renew(struct pipe_leases *ls, struct pipe_lease *l, int64_t ttl_ms);

/* pipe_lease_check — call right before committing. Returns 0 if l is still
 * ours and unexpired, both by the holder's clock and at the backend. Any
 * other value means "do not commit": PIPE_ELOST (expired or taken),
 * PIPE_EUNAVAIL / PIPE_EIO (backend unreachable: cannot tell). */
int pipe_lease_check(struct pipe_leases *ls, const struct pipe_lease *l);

/* pipe_lease_release — frees the lease at the backend if it is still ours,
 * then always cleans up l (frees l->name). Idempotent: a released or
 * cleaned-up l returns 0. Returns 0, PIPE_ELOST if it was no longer ours
 * (nothing released; worth a log line, nothing to undo), PIPE_EUNAVAIL /
 * PIPE_EIO if the backend failed (the lease then frees itself at expiry). */
int pipe_lease_release(struct pipe_leases *ls, struct pipe_lease *l);

/* pipe_lease_cleanup — frees l's memory without touching the backend (the
 * lease stays held until it expires). NULL and a cleaned-up l are no-ops. */
void pipe_lease_cleanup(struct pipe_lease *l);

/* pipe_leases_last_error — a human description of the latest backend failure
 * on ls from any thread ("" if none). Returned text is a per-thread copy,
 * valid until this thread calls pipe_leases_last_error again. */
const char *pipe_leases_last_error(const struct pipe_leases *ls);

/* pipe_leases_counters — totals since open, for /metrics: successful
 * acquires, acquires refused with PIPE_EBUSY, PIPE_ELOST results (renew,
 * check, release), and every other failure. Any pointer may be NULL. */
void pipe_leases_counters(const struct pipe_leases *ls, uint64_t *acquired, uint64_t *busy,
                          uint64_t *lost, uint64_t *errors);

/* Generations: a number per name that a producer of work raises after it
 * wrote work for others, and that a consumer reads on every poll to list
 * the store only when it moved (libpipe/wake.h). They live in the lease
 * backend because the processes that share leases are the ones that hand
 * each other work, and reading one is not a store request (a Redis GET, a
 * small file read). Nothing may depend on them to be correct: they only say
 * when a listing is worth making. Names follow the rules of lease names. */
#define PIPE_LEASE_GENERATIONS_MAX 8 /* names per pipe_leases_generations */

/* pipe_leases_bump — raises the generation of name to a value it never had:
 * max(last + 1, the backend's clock in microseconds), so that a name whose
 * value the backend lost (a flushed Redis, a deleted file) never comes back
 * to a value a reader still holds. Returns 0, PIPE_EINVAL for a bad name,
 * PIPE_EUNAVAIL / PIPE_EIO when the backend failed. */
int pipe_leases_bump(struct pipe_leases *ls, const char *name);

/* pipe_leases_generations — the generations of names[0..n) (n at most
 * PIPE_LEASE_GENERATIONS_MAX) into values[0..n), one request for all; 0
 * for a name never bumped or lost by the backend. values is written only on
 * success. Returns 0, PIPE_EINVAL, PIPE_EUNAVAIL / PIPE_EIO. */
int pipe_leases_generations(struct pipe_leases *ls, const char *const *names, size_t n,
                            uint64_t *values);

#endif
