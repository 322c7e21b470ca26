/* lease — the generic front end of the lease backends: URL dispatch, name
 * and TTL validation, owner tokens, the holder-side expiry check and the
 * counters. Backends (lease_local.c, lease_fault.c, lease_redis.c) only store
 * and compare; see lease_int.h for the semantics they share. */
#include "libpipe/lease.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/lease_int.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/url.h"

/* Every backend built into the library. lease_redis.c adds its entry here. */
static const struct pipe_lease_ops *const backends[] = {
    &pipe__lease_local_ops,
    &pipe__lease_fault_ops,
    &pipe__lease_redis_ops,
};

static const struct pipe_lease_ops *find_backend(const char *url)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        for (const char *const *s = backends[i]->schemes; *s; s++)
            if (pipe_url_scheme_is(url, *s))
                return backends[i];
    return NULL;
}

void pipe__leases_set_error(struct pipe_leases *ls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&ls->err_mu);
    vsnprintf(ls->err, sizeof ls->err, fmt, ap);
    pthread_mutex_unlock(&ls->err_mu);
    va_end(ap);
}

const char *pipe_leases_last_error(const struct pipe_leases *ls)
{
    /* A per-thread copy, so another thread's failure cannot rewrite the text
     * while the caller is still formatting it into a log line. */
    static _Thread_local char copy[sizeof((struct pipe_leases *)NULL)->err];
    if (!ls)
        return "";
    struct pipe_leases *mut = (struct pipe_leases *)ls; /* the mutex only */
    pthread_mutex_lock(&mut->err_mu);
    memcpy(copy, ls->err, sizeof copy);
    pthread_mutex_unlock(&mut->err_mu);
    return copy;
}

int pipe_leases_open(const char *url, const char *local_dir, struct pipe_leases **out)
{
    int rc;
    if (!url || !out)
        return PIPE_EINVAL;
    const struct pipe_lease_ops *ops = find_backend(url);
    if (!ops) {
        /* Only the scheme: the rest of a URL may hold a password. */
        size_t n = strcspn(url, ":");
        pipe_log_error("unknown lease backend", "scheme=\"%.*s\"", (int)(n < 32 ? n : 32), url);
        return PIPE_ECONFIG;
    }
    struct pipe_leases *ls = pipe_calloc(1, sizeof *ls);
    ls->ops = ops;
    pthread_mutex_init(&ls->err_mu, NULL);
    rc = ops->open(ls, url, local_dir);
    if (rc < 0) {
        /* The detail would die with the handle: say it once here. */
        pipe_log_warn("lease backend open failed", "backend=%s err=\"%s\"", ops->name, ls->err);
        pipe_leases_free(ls);
        goto out;
    }
    *out = ls;
out:
    return rc;
}

void pipe_leases_free(struct pipe_leases *ls)
{
    if (!ls)
        return;
    ls->ops->close(ls);
    pthread_mutex_destroy(&ls->err_mu);
    pipe_free(ls);
}

/* Names become Redis keys and, for some callers, store keys and log fields:
 * printable ASCII only, so none of them needs escaping. */
static bool name_valid(const char *name)
{
    if (!name)
        return false;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++, n++)
        if (*p < 0x20 || *p > 0x7e || n >= PIPE_LEASE_NAME_MAX)
            return false;
    return n > 0;
}

static bool ttl_valid(int64_t ttl_ms)
{
    return ttl_ms > 0 && ttl_ms <= PIPE_LEASE_TTL_MAX_MS;
}

/* 128 random bits as hex: unguessable and, in practice, never repeated, so
 * a token names one acquisition by one holder. */
static int make_token(char token[PIPE__LEASE_TOKEN_LEN + 1])
{
    unsigned char raw[PIPE__LEASE_TOKEN_LEN / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof raw) {
        /* Kernels without getrandom(2): the same pool through the device. */
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        ssize_t n = read(fd, raw, sizeof raw);
        close(fd);
        if (n != (ssize_t)sizeof raw)
            return PIPE_EIO;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        token[2 * i] = hex[raw[i] >> 4];
        token[2 * i + 1] = hex[raw[i] & 15];
    }
    token[PIPE__LEASE_TOKEN_LEN] = '\0';
    return 0;
}

/* Every result goes through here so that the counters see all of them. */
static int count(struct pipe_leases *ls, int rc)
{
    if (rc == PIPE_EBUSY)
        atomic_fetch_add_explicit(&ls->n_busy, 1, memory_order_relaxed);
    else if (rc == PIPE_ELOST)
        atomic_fetch_add_explicit(&ls->n_lost, 1, memory_order_relaxed);
    else if (rc < 0)
        atomic_fetch_add_explicit(&ls->n_errors, 1, memory_order_relaxed);
    return rc;
}

int pipe_lease_acquire(struct pipe_leases *ls, const char *name, int64_t ttl_ms,
                       struct pipe_lease *out)
{
    int rc;
    char token[PIPE__LEASE_TOKEN_LEN + 1];
    uint64_t fence = 0;
    if (!ls || !out)
        return PIPE_EINVAL;
    if (!name_valid(name) || !ttl_valid(ttl_ms)) {
        rc = PIPE_EINVAL;
        goto out;
    }
    rc = make_token(token);
    if (rc < 0) {
        pipe__leases_set_error(ls, "cannot read random bytes for a lease token: %s",
                               pipe_strerror(rc));
        goto out;
    }
    /* Read the clock before the backend call: the holder's expiry must never
     * be later than the backend's, whatever the call's latency. */
    int64_t now = pipe_clock_now_ms();
    rc = ls->ops->acquire(ls, name, token, now, ttl_ms, &fence);
    if (rc < 0)
        goto out;
    out->name = pipe_strdup(name);
    memcpy(out->token, token, sizeof out->token);
    out->fence = fence;
    out->expires_ms = now + ttl_ms;
    atomic_fetch_add_explicit(&ls->n_acquired, 1, memory_order_relaxed);
out:
    return count(ls, rc);
}

int pipe_lease_renew(struct pipe_leases *ls, struct pipe_lease *l, int64_t ttl_ms)
{
    int rc;
    if (!ls || !l)
        return PIPE_EINVAL;
    if (!l->name) {
        rc = PIPE_ELOST; /* released already: certainly not ours */
        goto out;
    }
    if (!ttl_valid(ttl_ms)) {
        rc = PIPE_EINVAL;
        goto out;
    }
    int64_t now = pipe_clock_now_ms();
    rc = ls->ops->renew(ls, l->name, l->token, l->fence, now, ttl_ms);
    if (rc < 0)
        goto out;
    l->expires_ms = now + ttl_ms;
out:
    return count(ls, rc);
}

int pipe_lease_check(struct pipe_leases *ls, const struct pipe_lease *l)
{
    int rc;
    if (!ls || !l)
        return PIPE_EINVAL;
    int64_t now = pipe_clock_now_ms();
    /* The holder's own clock first: past its belief of expiry someone else
     * may already hold the lease, whatever a slow backend would answer. */
    if (!l->name || now >= l->expires_ms) {
        rc = PIPE_ELOST;
        goto out;
    }
    rc = ls->ops->check(ls, l->name, l->token, l->fence, now);
out:
    return count(ls, rc);
}

int pipe_lease_release(struct pipe_leases *ls, struct pipe_lease *l)
{
    int rc = 0;
    if (!ls || !l)
        return PIPE_EINVAL;
    if (!l->name)
        return 0;
    rc = ls->ops->release(ls, l->name, l->token, l->fence, pipe_clock_now_ms());
    pipe_lease_cleanup(l);
    return count(ls, rc);
}

void pipe_lease_cleanup(struct pipe_lease *l)
{
    if (!l)
        return;
    pipe_free(l->name);
    memset(l, 0, sizeof *l);
}

void pipe_leases_counters(const struct pipe_leases *ls, uint64_t *acquired, uint64_t *busy,
                          uint64_t *lost, uint64_t *errors)
{
    if (acquired)
        *acquired = ls ? atomic_load(&ls->n_acquired) : 0;
    if (busy)
        *busy = ls ? atomic_load(&ls->n_busy) : 0;
    if (lost)
        *lost = ls ? atomic_load(&ls->n_lost) : 0;
    if (errors)
        *errors = ls ? atomic_load(&ls->n_errors) : 0;
}

int pipe_leases_bump(struct pipe_leases *ls, const char *name)
{
    if (!ls || !name_valid(name))
        return PIPE_EINVAL;
    /* Microseconds, not milliseconds: a generation lost and bumped again
     * within the millisecond of its last value must still come out larger. */
    return ls->ops->bump(ls, name, pipe_clock_now_us());
}

int pipe_leases_generations(struct pipe_leases *ls, const char *const *names, size_t n,
                            uint64_t *values)
{
    uint64_t v[PIPE_LEASE_GENERATIONS_MAX];
    if (!ls || !names || !values || n == 0 || n > PIPE_LEASE_GENERATIONS_MAX)
        return PIPE_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!name_valid(names[i]))
            return PIPE_EINVAL;
    int rc = ls->ops->generations(ls, names, n, v);
    if (rc == 0)
        memcpy(values, v, n * sizeof *v);
    return rc;
}
