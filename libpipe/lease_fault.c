/* lease_fault — a lease backend for tests that wraps another one and fails
 * on demand: `fault:down_file=PATH:INNER_URL` behaves as INNER_URL, except
 * that every operation returns PIPE_EUNAVAIL while the file PATH exists (a
 * test, or a shell script, creates and removes it to take the "backend"
 * down and up). PATH cannot contain ':'. */
#include <string.h>
#include <unistd.h>

#include "libpipe/err.h"
#include "libpipe/lease_int.h"
#include "libpipe/mem.h"

struct fault {
    char *down_file;
    struct pipe_leases *inner;
};

static int fault_open(struct pipe_leases *ls, const char *url, const char *local_dir)
{
    static const char prefix[] = "fault:down_file=";
    if (strncmp(url, prefix, sizeof prefix - 1) != 0) {
        pipe__leases_set_error(ls, "fault lease URL must be fault:down_file=PATH:INNER_URL");
        return PIPE_ECONFIG;
    }
    const char *path = url + sizeof prefix - 1;
    const char *colon = strchr(path, ':');
    if (!colon || colon == path || !colon[1]) {
        pipe__leases_set_error(ls, "fault lease URL must be fault:down_file=PATH:INNER_URL");
        return PIPE_ECONFIG;
    }
    struct fault *f = pipe_calloc(1, sizeof *f);
    ls->impl = f;
    f->down_file = pipe_strndup(path, (size_t)(colon - path));
    int rc = pipe_leases_open(colon + 1, local_dir, &f->inner);
    if (rc < 0)
        pipe__leases_set_error(ls, "inner lease backend of fault: %s", pipe_strerror(rc));
    return rc;
}

static void fault_close(struct pipe_leases *ls)
{
    struct fault *f = ls->impl;
    if (!f)
        return;
    pipe_leases_free(f->inner);
    pipe_free(f->down_file);
    pipe_free(f);
    ls->impl = NULL;
}

/* 0 to go on to the inner backend, PIPE_EUNAVAIL while the down file exists. */
static int gate(struct pipe_leases *ls)
{
    const struct fault *f = ls->impl;
    if (access(f->down_file, F_OK) != 0)
        return 0;
    pipe__leases_set_error(ls, "lease backend down (fault injected: %s exists)", f->down_file);
    return PIPE_EUNAVAIL;
}

/* The inner handle's detail would be out of the caller's sight: copy it. */
static int pass(struct pipe_leases *ls, int rc)
{
    const struct fault *f = ls->impl;
    if (rc < 0 && rc != PIPE_EBUSY && rc != PIPE_ELOST)
        pipe__leases_set_error(ls, "%s", pipe_leases_last_error(f->inner));
    return rc;
}

static int fault_acquire(struct pipe_leases *ls, const char *name, const char *token,
                         int64_t now_ms, int64_t ttl_ms, uint64_t *fence)
{
    struct pipe_leases *in = ((struct fault *)ls->impl)->inner;
    int rc = gate(ls);
    return rc < 0 ? rc : pass(ls, in->ops->acquire(in, name, token, now_ms, ttl_ms, fence));
}

static int fault_renew(struct pipe_leases *ls, const char *name, const char *token, uint64_t fence,
                       int64_t now_ms, int64_t ttl_ms)
{
    struct pipe_leases *in = ((struct fault *)ls->impl)->inner;
    int rc = gate(ls);
    return rc < 0 ? rc : pass(ls, in->ops->renew(in, name, token, fence, now_ms, ttl_ms));
}

static int fault_check(struct pipe_leases *ls, const char *name, const char *token, uint64_t fence,
                       int64_t now_ms)
{
    struct pipe_leases *in = ((struct fault *)ls->impl)->inner;
    int rc = gate(ls);
    return rc < 0 ? rc : pass(ls, in->ops->check(in, name, token, fence, now_ms));
}

static int fault_release(struct pipe_leases *ls, const char *name, const char *token,
                         uint64_t fence, int64_t now_ms)
{
    struct pipe_leases *in = ((struct fault *)ls->impl)->inner;
    int rc = gate(ls);
    return rc < 0 ? rc : pass(ls, in->ops->release(in, name, token, fence, now_ms));
}

static int fault_bump(struct pipe_leases *ls, const char *name, int64_t now_us)
{
    struct pipe_leases *in = ((struct fault *)ls->impl)->inner;
    int rc = gate(ls);
    return rc < 0 ? rc : pass(ls, in->ops->bump(in, name, now_us));
}

static int fault_generations(struct pipe_leases *ls, const char *const *names, size_t n,
                             uint64_t *values)
{
    struct pipe_leases *in = ((struct fault *)ls->impl)->inner;
    int rc = gate(ls);
    return rc < 0 ? rc : pass(ls, in->ops->generations(in, names, n, values));
}

static const char *const fault_schemes[] = {"fault", NULL};

const struct pipe_lease_ops pipe__lease_fault_ops = {
    .name = "fault",
    .schemes = fault_schemes,
    .open = fault_open,
    .close = fault_close,
    .acquire = fault_acquire,
    .renew = fault_renew,
    .check = fault_check,
    .release = fault_release,
    .bump = fault_bump,
    .generations = fault_generations,
};
