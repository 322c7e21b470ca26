/* lease_redis — the `redis://` / `unix://` lease backend: leases a fleet of
 * hosts shares through one Redis server, each operation one Lua script, so
 * it is atomic at the server. Expiry is the server's (keys with a PX TTL),
 * so the holders' clocks need not agree with each other or with Redis.
 *
 * Keys, under the URL's prefix (default "sluice:"):
 *   <prefix>lease:<name>  "<fence>:<token>", TTL = the lease's TTL; absent
 *                         when the name is free (released or expired)
 *   <prefix>fence:<name>  the last fence handed out for name, kept for
 *                         FENCE_KEEP_MS after the name's last acquire, renew
 *                         or release
 *   <prefix>gen:<name>    a generation (lease.h): max(last + 1, the
 *                         server's clock in microseconds) at each bump, for
 *                         the same reason as the fence floor below
 * A new fence is max(last + 1, the server's clock in microseconds). The
 * counter makes fences grow however fast a name is taken; the clock floor
 * keeps them growing when the counter is gone — its key expired, or Redis
 * restarted empty or failed over to a replica that missed the last writes —
 * so they never go back to a value an earlier holder may have used. The
 * floor is in microseconds, not milliseconds: a flush and a new acquire
 * can land in the same millisecond as the last fence handed out (seen on
 * an idle machine), and an equal fence would let two holders look alike.
 * Microseconds since 1970 (~1.8e15) stay exact in Lua's doubles (2^53). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/lease_int.h"
#include "libpipe/mem.h"
#include "libpipe/redis.h"

/* Longer than any lease can live after its last renew, plus an hour: the
 * same span after which the `local` backend prunes a free name. Past it the
 * name costs nothing in Redis, and the clock floor takes over. */
#define FENCE_KEEP_MS (PIPE_LEASE_TTL_MAX_MS + PIPE_HOUR_MS)

enum script { S_ACQUIRE, S_RENEW, S_CHECK, S_RELEASE, S_BUMP, S_COUNT };

/* Each script answers an integer: acquire the new fence or 0 when busy,
 * the others 1 when the lease was ours or 0 when it was not. A missing or
 * expired key reads as false from GET, which never equals ARGV[1].
 * KEYS[1] is the lease key, KEYS[2] the fence key; ARGV[1] the token
 * (acquire) or "<fence>:<token>" (the others), ARGV[2] the TTL in ms,
 * ARGV[3] FENCE_KEEP_MS. */
static const char *const scripts[S_COUNT] = {
    [S_ACQUIRE] = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
                  "local t = redis.call('TIME')\n"
                  "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
                  "local f = math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, now)\n"
                  "redis.call('SET', KEYS[2], string.format('%d', f), 'PX', ARGV[3])\n"
                  "redis.call('SET', KEYS[1], string.format('%d:%s', f, ARGV[1]), 'PX', ARGV[2])\n"
                  "return f\n",
    [S_RENEW] = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                "redis.call('PEXPIRE', KEYS[2], ARGV[3])\n"
                "return 1\n",
    [S_CHECK] = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                "return 1\n",
    [S_RELEASE] = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                  "redis.call('DEL', KEYS[1])\n"
                  "redis.call('PEXPIRE', KEYS[2], ARGV[3])\n"
                  "return 1\n",
    /* KEYS[1] the generation key alone; answers the new generation. */
    [S_BUMP] = "local t = redis.call('TIME')\n"
               "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
               "local g = math.max((tonumber(redis.call('GET', KEYS[1])) or 0) + 1, now)\n"
               "redis.call('SET', KEYS[1], string.format('%d', g))\n"
               "return g\n",
};

struct rlease {
    struct pipe_redis *r;
    char sha[S_COUNT][41]; /* SHA1 of each script, as the server computed it */
};

/* Runs script s with keys[0..nkeys) (1 or 2) and args[0..nargs), by EVALSHA,
 * or by EVAL when the server does not know the script (a restarted or
 * flushed script cache): NOSCRIPT means it did not run, so sending it again
 * cannot apply it twice. 0 and the integer answer in *result, PIPE_EUNAVAIL
 * or PIPE_EIO with detail set. */
static int run_script_keys(struct pipe_leases *ls, enum script s, const char *name,
                           const char *const *keys, int nkeys, const char *const *args, int nargs,
                           long long *result)
{
    struct rlease *rl = ls->impl;
    const char *argv[8] = {"EVALSHA", rl->sha[s], nkeys == 1 ? "1" : "2"};
    size_t argvlen[8];
    redisReply *rep = NULL;
    int rc, argc = 3;
    for (int i = 0; i < nkeys; i++)
        argv[argc++] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[argc++] = args[i];
    for (int i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    struct pipe_redis_cmd cmd = {argc, argv, argvlen};
    rc = pipe_redis_run(rl->r, &cmd, 1, &rep);
    if (rc == 0 && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(rep);
        rep = NULL;
        argv[0] = "EVAL";
        argv[1] = scripts[s];
        argvlen[0] = 4;
        argvlen[1] = strlen(scripts[s]);
        rc = pipe_redis_run(rl->r, &cmd, 1, &rep);
    }
    if (rc < 0) {
        pipe__leases_set_error(ls, "%s", pipe_redis_last_error());
        rc = PIPE_EUNAVAIL;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        pipe__leases_set_error(ls, "redis %s: lease \"%s\": %.*s", pipe_redis_url(rl->r), name,
                               (int)(rep->len < 160 ? rep->len : 160), rep->str);
        rc = PIPE_EIO;
    } else if (rep->type != REDIS_REPLY_INTEGER) {
        pipe__leases_set_error(ls, "redis %s: lease \"%s\": unexpected reply type %d",
                               pipe_redis_url(rl->r), name, rep->type);
        rc = PIPE_EIO;
    } else {
        *result = rep->integer;
    }
    freeReplyObject(rep);
    return rc;
}

/* run_script — a lease script: the lease and fence keys of name. */
static int run_script(struct pipe_leases *ls, enum script s, const char *name,
                      const char *const *args, int nargs, long long *result)
{
    struct rlease *rl = ls->impl;
    const char *prefix = pipe_redis_prefix(rl->r);
    char *lease_key = pipe_asprintf("%slease:%s", prefix, name);
    char *fence_key = pipe_asprintf("%sfence:%s", prefix, name);
    const char *keys[] = {lease_key, fence_key};
    int rc = run_script_keys(ls, s, name, keys, 2, args, nargs, result);
    pipe_free(fence_key);
    pipe_free(lease_key);
    return rc;
}

/* Loads the scripts once at open, which also proves that the server runs
 * Lua for us (an ACL may forbid it): better found at start than per call. */
static int load_scripts(struct pipe_leases *ls, struct rlease *rl)
{
    struct pipe_redis_cmd cmds[S_COUNT];
    const char *argv[S_COUNT][3];
    size_t argvlen[S_COUNT][3];
    redisReply *reps[S_COUNT];
    for (int i = 0; i < S_COUNT; i++) {
        argv[i][0] = "SCRIPT";
        argv[i][1] = "LOAD";
        argv[i][2] = scripts[i];
        argvlen[i][0] = 6;
        argvlen[i][1] = 4;
        argvlen[i][2] = strlen(scripts[i]);
        cmds[i] = (struct pipe_redis_cmd){3, argv[i], argvlen[i]};
    }
    int rc = pipe_redis_run(rl->r, cmds, S_COUNT, reps);
    if (rc < 0) {
        pipe__leases_set_error(ls, "%s", pipe_redis_last_error());
        return PIPE_EUNAVAIL;
    }
    for (int i = 0; i < S_COUNT; i++) {
        if (rc == 0 && (reps[i]->type != REDIS_REPLY_STRING || reps[i]->len != 40)) {
            pipe__leases_set_error(ls, "redis %s: SCRIPT LOAD failed: %.*s", pipe_redis_url(rl->r),
                                   reps[i]->type == REDIS_REPLY_ERROR ? (int)reps[i]->len : 0,
                                   reps[i]->type == REDIS_REPLY_ERROR ? reps[i]->str : "");
            rc = PIPE_ECONFIG;
        } else if (rc == 0) {
            memcpy(rl->sha[i], reps[i]->str, 40);
            rl->sha[i][40] = '\0';
        }
        freeReplyObject(reps[i]);
    }
    return rc;
}

static int redis_open(struct pipe_leases *ls, const char *url, const char *local_dir)
{
    (void)local_dir;
    struct rlease *rl = pipe_calloc(1, sizeof *rl);
    ls->impl = rl;
    int rc = pipe_redis_open(url, &rl->r);
    if (rc < 0) {
        pipe__leases_set_error(ls, "%s", pipe_redis_last_error());
        return rc;
    }
    return load_scripts(ls, rl);
}

static void redis_close(struct pipe_leases *ls)
{
    struct rlease *rl = ls->impl;
    if (!rl)
        return;
    pipe_redis_free(rl->r);
    pipe_free(rl);
    ls->impl = NULL;
}

#define FENCE_KEEP_STR_LEN 24

/* Runs script s on name with its three arguments: first (the token, or
 * "<fence>:<token>"), the TTL (0 where the script does not use it) and how
 * long the fence outlives the lease; *result is the script's integer. */
static int run_lease_script(struct pipe_leases *ls, enum script s, const char *name,
                            const char *first, int64_t ttl_ms, long long *result)
{
    char ttl[24], keep[FENCE_KEEP_STR_LEN];
    snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
    snprintf(keep, sizeof keep, "%lld", (long long)FENCE_KEEP_MS);
    const char *args[] = {first, ttl, keep};
    return run_script(ls, s, name, args, 3, result);
}

static int redis_acquire(struct pipe_leases *ls, const char *name, const char *token,
                         int64_t now_ms, int64_t ttl_ms, uint64_t *fence)
{
    (void)now_ms; /* the server's clock decides expiry */
    long long f = 0;
    int rc = run_lease_script(ls, S_ACQUIRE, name, token, ttl_ms, &f);
    if (rc < 0)
        return rc;
    if (f < 0) {
        pipe__leases_set_error(ls, "redis: lease \"%s\": negative fence %lld", name, f);
        return PIPE_EIO;
    }
    if (f == 0)
        return PIPE_EBUSY;
    *fence = (uint64_t)f;
    return 0;
}

/* renew, check and release: the same test with different effects. ttl_ms
 * is 0 for check and release, which do not pass it. */
static int owned_op(struct pipe_leases *ls, enum script s, const char *name, const char *token,
                    uint64_t fence, int64_t ttl_ms)
{
    char value[64];
    long long ok = 0;
    snprintf(value, sizeof value, "%" PRIu64 ":%s", fence, token);
    int rc = run_lease_script(ls, s, name, value, ttl_ms, &ok);
    if (rc < 0)
        return rc;
    return ok == 1 ? 0 : PIPE_ELOST;
}

static int redis_renew(struct pipe_leases *ls, const char *name, const char *token, uint64_t fence,
                       int64_t now_ms, int64_t ttl_ms)
{
    (void)now_ms;
    return owned_op(ls, S_RENEW, name, token, fence, ttl_ms);
}

static int redis_check(struct pipe_leases *ls, const char *name, const char *token, uint64_t fence,
                       int64_t now_ms)
{
    (void)now_ms;
    return owned_op(ls, S_CHECK, name, token, fence, 0);
}

static int redis_release(struct pipe_leases *ls, const char *name, const char *token,
                         uint64_t fence, int64_t now_ms)
{
    (void)now_ms;
    return owned_op(ls, S_RELEASE, name, token, fence, 0);
}

static int redis_bump(struct pipe_leases *ls, const char *name, int64_t now_us)
{
    (void)now_us; /* the server's clock: the holders' may disagree */
    struct rlease *rl = ls->impl;
    char *key = pipe_asprintf("%sgen:%s", pipe_redis_prefix(rl->r), name);
    const char *keys[] = {key};
    long long g = 0;
    int rc = run_script_keys(ls, S_BUMP, name, keys, 1, NULL, 0, &g);
    pipe_free(key);
    return rc;
}

/* One MGET for every name: a poll costs one round trip. */
static int redis_generations(struct pipe_leases *ls, const char *const *names, size_t n,
                             uint64_t *values)
{
    struct rlease *rl = ls->impl;
    const char *argv[PIPE_LEASE_GENERATIONS_MAX + 1] = {"MGET"};
    size_t argvlen[PIPE_LEASE_GENERATIONS_MAX + 1] = {4};
    char *keys[PIPE_LEASE_GENERATIONS_MAX];
    redisReply *rep = NULL;
    for (size_t i = 0; i < n; i++) {
        keys[i] = pipe_asprintf("%sgen:%s", pipe_redis_prefix(rl->r), names[i]);
        argv[i + 1] = keys[i];
        argvlen[i + 1] = strlen(keys[i]);
    }
    struct pipe_redis_cmd cmd = {(int)n + 1, argv, argvlen};
    int rc = pipe_redis_run(rl->r, &cmd, 1, &rep);
    if (rc < 0) {
        pipe__leases_set_error(ls, "%s", pipe_redis_last_error());
        rc = PIPE_EUNAVAIL;
    } else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
        pipe__leases_set_error(ls, "redis %s: MGET of generations: unexpected reply type %d",
                               pipe_redis_url(rl->r), rep->type);
        rc = PIPE_EIO;
    } else {
        for (size_t i = 0; i < n; i++) {
            const redisReply *e = rep->element[i];
            values[i] = e->type == REDIS_REPLY_STRING ? strtoull(e->str, NULL, 10) : 0;
        }
    }
    freeReplyObject(rep);
    for (size_t i = 0; i < n; i++)
        pipe_free(keys[i]);
    return rc;
}

static const char *const redis_schemes[] = {"redis", "unix", NULL};

const struct pipe_lease_ops pipe__lease_redis_ops = {
    .name = "redis",
    .schemes = redis_schemes,
    .open = redis_open,
    .close = redis_close,
    .acquire = redis_acquire,
    .renew = redis_renew,
    .check = redis_check,
    .release = redis_release,
    .bump = redis_bump,
    .generations = redis_generations,
};
