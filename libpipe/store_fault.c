/* store_fault — a store backend that wraps another store and injects
 * failures, so tests (including end-to-end tests of real binaries) can make
 * the store fail without any test hook in production code.
 *
 * URL: fault:OPTIONS:INNER_URL, OPTIONS a comma-separated list (which cannot
 * contain ':'), e.g. fault:down_file=/tmp/x/down,put_fail=0.3,seed=7:file:///tmp/x
 *   down_file=PATH  while PATH exists every operation fails with PIPE_EUNAVAIL
 *   <op>_fail=P     put/get/stat/delete/list fails with PIPE_EIO with
 *                   probability P (0..1), before the inner store is touched
 *   seed=N          seed of the pseudo-random failures (default 1)
 *   put_delay_ms=MS a put of at least put_delay_bytes=N bytes (default 0:
 *                   every put) waits MS milliseconds first: a slow upload
 * Everything else passes through; capabilities are the inner store's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/store_int.h"

struct fault_store {
    struct pipe_store *inner;
    char *down_file; /* NULL when not set */
    double fail[PIPE_STORE_OP__COUNT];
    long long put_delay_ms, put_delay_bytes;
    /* splitmix64 state: one atomic add per draw keeps draws thread-safe
     * and, from one thread, reproducible for a given seed. */
    atomic_uint_least64_t rng;
};

static double next_unit(struct fault_store *f)
{
    uint64_t z = atomic_fetch_add(&f->rng, 0x9e3779b97f4a7c15ULL) + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Parses one name=value option into f. */
static int parse_option(struct fault_store *f, const char *opt, size_t len)
{
    char buf[1024];
    if (len >= sizeof buf)
        return PIPE_ECONFIG;
    memcpy(buf, opt, len);
    buf[len] = '\0';
    char *val = strchr(buf, '=');
    if (val == NULL || val[1] == '\0')
        return PIPE_ECONFIG;
    *val++ = '\0';
    char *end = NULL;
    if (strcmp(buf, "down_file") == 0) {
        pipe_free(f->down_file);
        f->down_file = pipe_strdup(val);
        return 0;
    }
    if (strcmp(buf, "seed") == 0) {
        errno = 0;
        unsigned long long seed = strtoull(val, &end, 10);
        if (errno || *end)
            return PIPE_ECONFIG;
        atomic_store(&f->rng, seed);
        return 0;
    }
    if (strcmp(buf, "put_delay_ms") == 0 || strcmp(buf, "put_delay_bytes") == 0) {
        errno = 0;
        long long v = strtoll(val, &end, 10);
        if (errno || *end || v < 0)
            return PIPE_ECONFIG;
        if (strcmp(buf, "put_delay_ms") == 0)
            f->put_delay_ms = v;
        else
            f->put_delay_bytes = v;
        return 0;
    }
    for (int op = 0; op < PIPE_STORE_OP__COUNT; op++) {
        char name[32];
        snprintf(name, sizeof name, "%s_fail", pipe_store_op_name(op));
        if (strcmp(buf, name) != 0)
            continue;
        double p = strtod(val, &end);
        if (*end || !(p >= 0.0 && p <= 1.0))
            return PIPE_ECONFIG;
        f->fail[op] = p;
        return 0;
    }
    return PIPE_ECONFIG;
}

static void fault_free(struct fault_store *f)
{
    pipe_store_free(f->inner);
    pipe_free(f->down_file);
    pipe_free(f);
}

static int fault_open(struct pipe_store *s, const char *url)
{
    struct fault_store *f = pipe_calloc(1, sizeof *f);
    atomic_store(&f->rng, 1);
    const char *opts = url + strlen("fault:");
    const char *inner = strchr(opts, ':');
    int rc = PIPE_ECONFIG;
    if (inner == NULL) {
        pipe__store_set_error(s, "store URL \"%.200s\": want fault:OPTIONS:INNER_URL", url);
        goto out;
    }
    for (const char *p = opts; p < inner;) {
        size_t len = strcspn(p, ",:");
        if (len > 0 && parse_option(f, p, len) < 0) {
            pipe__store_set_error(s, "store URL \"%.200s\": bad fault option \"%.*s\"", url,
                                  (int)len, p);
            goto out;
        }
        p += len + (p[len] == ',');
    }
    rc = pipe_store_open(inner + 1, &f->inner);
    if (rc < 0) {
        pipe__store_set_error(s, "fault store inner: %s", pipe_store_last_error(NULL));
        goto out;
    }
    s->caps = f->inner->caps;
    s->priv = f;
    f = NULL;
out:
    if (f)
        fault_free(f);
    return rc;
}

static void fault_close(struct pipe_store *s)
{
    fault_free(s->priv);
}

/* Decides whether op fails now; if so, records why and returns the code. */
static int inject(struct pipe_store *s, enum pipe_store_op op, const char *key)
{
    struct fault_store *f = s->priv;
    struct stat st;
    if (f->down_file && stat(f->down_file, &st) == 0) {
        pipe__store_set_error(s, "%s %s: store down (fault down_file %s exists)",
                              pipe_store_op_name(op), key, f->down_file);
        return PIPE_EUNAVAIL;
    }
    if (f->fail[op] > 0.0 && next_unit(f) < f->fail[op]) {
        pipe__store_set_error(s, "%s %s: injected fault", pipe_store_op_name(op), key);
        return PIPE_EIO;
    }
    return 0;
}

/* Carries the inner store's failure detail over to s. */
static int pass(struct pipe_store *s, int rc)
{
    struct fault_store *f = s->priv;
    if (rc < 0)
        pipe__store_set_error(s, "%s", pipe_store_last_error(f->inner));
    return rc;
}

static int fault_put(struct pipe_store *s, const char *key, const void *data, size_t len)
{
    struct fault_store *f = s->priv;
    if (f->put_delay_ms > 0 && (long long)len >= f->put_delay_bytes) {
        struct timespec ts = {f->put_delay_ms / 1000, (f->put_delay_ms % 1000) * 1000000};
        int slept;
        do /* a signal cuts the sleep short: sleep the rest */
            slept = nanosleep(&ts, &ts);
        while (slept < 0 && errno == EINTR);
    }
    int rc = inject(s, PIPE_STORE_OP_PUT, key);
    return rc < 0 ? rc : pass(s, pipe_store_put(f->inner, key, data, len));
}

static int fault_get(struct pipe_store *s, const char *key, struct pipe_buf *out)
{
    struct fault_store *f = s->priv;
    int rc = inject(s, PIPE_STORE_OP_GET, key);
    return rc < 0 ? rc : pass(s, pipe_store_get(f->inner, key, out));
}

static int fault_stat(struct pipe_store *s, const char *key, struct pipe_store_obj *info)
{
    struct fault_store *f = s->priv;
    int rc = inject(s, PIPE_STORE_OP_STAT, key);
    return rc < 0 ? rc : pass(s, pipe_store_stat(f->inner, key, info));
}

static int fault_del(struct pipe_store *s, const char *key)
{
    struct fault_store *f = s->priv;
    int rc = inject(s, PIPE_STORE_OP_DELETE, key);
    return rc < 0 ? rc : pass(s, pipe_store_delete(f->inner, key));
}

static int fault_list(struct pipe_store *s, const char *prefix, const char *start_after,
                      size_t max_keys, struct pipe_store_list *out)
{
    struct fault_store *f = s->priv;
    int rc = inject(s, PIPE_STORE_OP_LIST, prefix);
    return rc < 0 ? rc : pass(s, pipe_store_list(f->inner, prefix, start_after, max_keys, out));
}

static int fault_tidy(struct pipe_store *s)
{
    struct fault_store *f = s->priv;
    return pipe_store_tidy(f->inner);
}

const struct pipe_store_ops pipe__store_fault_ops = {
    .scheme = "fault",
    .caps = 0, /* replaced by the inner store's in fault_open */
    .open = fault_open,
    .close = fault_close,
    .put = fault_put,
    .get = fault_get,
    .stat = fault_stat,
    .del = fault_del,
    .list = fault_list,
    .tidy = fault_tidy,
};
