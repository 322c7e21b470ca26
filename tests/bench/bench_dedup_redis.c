/* bench_dedup_redis — memory and speed of the `redis` de-duplication
 * backend: claims KEYS fresh keys in claims of BATCH keys (as splitter jobs
 * do), then claims them all again under other jobs (every verdict DUP),
 * and reports keys per second and Redis's used_memory growth per key, for
 * several bucket counts and, for comparison, for one plain string per key
 * (SET NX with a TTL, 1000 to a round trip: Redis alone, no store and no
 * script, so its keys/s is that layout's ceiling). The claims' keys/s
 * include the whole claim (store GETs, the index object's encoding and
 * fsync'd PUT). Prints figures; asserts nothing. The server is FLUSHALLed
 * between runs: give it a scratch Redis.
 *
 * usage: bench_dedup_redis [REDIS_URL [KEYS [BATCH]]]
 *        (URL default: $SLUICE_TEST_REDIS_URL; KEYS 1000000; BATCH 20000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/dedup.h"
#include "libpipe/err.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/redis.h"
#include "tests/support/testutil.h"

static long long info_field(struct pipe_redis *r, const char *section, const char *name)
{
    redisReply *rep = NULL;
    long long v = -1;
    if (pipe_redis_command(r, &rep, "INFO %s", section) != 0)
        return -1;
    if (rep->type == REDIS_REPLY_STRING) {
        char pat[64];
        snprintf(pat, sizeof pat, "\n%s:", name);
        const char *p = strstr(rep->str, pat);
        if (p)
            v = strtoll(p + strlen(pat), NULL, 10);
    }
    freeReplyObject(rep);
    return v;
}

static void command(struct pipe_redis *r, const char *cmd)
{
    redisReply *rep = NULL;
    if (pipe_redis_command(r, &rep, cmd) == 0)
        freeReplyObject(rep);
}

/* Counts the hashes of the view by encoding, from a sample of SCAN. */
static void encodings(struct pipe_redis *r, long long *listpack, long long *other)
{
    redisReply *rep = NULL;
    *listpack = *other = 0;
    if (pipe_redis_command(r, &rep, "SCAN 0 MATCH bench:dedup:v:* COUNT 2000") != 0)
        return;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        const redisReply *ks = rep->element[1];
        for (size_t i = 0; i < ks->elements; i++) {
            redisReply *e = NULL;
            if (pipe_redis_command(r, &e, "OBJECT ENCODING %b", ks->element[i]->str,
                                   ks->element[i]->len) != 0)
                continue;
            if (e->type == REDIS_REPLY_STRING && strcmp(e->str, "listpack") == 0)
                (*listpack)++;
            else if (e->type == REDIS_REPLY_STRING && strcmp(e->str, "hashtable") == 0)
                (*other)++;
            freeReplyObject(e);
        }
    }
    freeReplyObject(rep);
}

static struct pipe_dedup_key *make_keys(size_t n)
{
    struct pipe_dedup_key *k = pipe_malloc(n * sizeof *k);
    for (size_t i = 0; i < n; i++) {
        char id[40];
        int len = snprintf(id, sizeof id, "0f8e%012zx-bench-id", i);
        pipe_dedup_key_of("page_view", 9, id, (size_t)len, &k[i]);
    }
    return k;
}

/* Claims keys in batches under jobs "<tag>-<n>"; returns seconds or -1. */
static double claim_all(struct pipe_dedup *d, const char *tag, const struct pipe_dedup_key *keys,
                        size_t n, size_t batch, int want)
{
    uint8_t *v = pipe_malloc(batch);
    int64_t now = pipe_clock_now_ms(), t0 = pipe_clock_mono_ms();
    double secs = -1;
    for (size_t off = 0; off < n; off += batch) {
        size_t m = n - off < batch ? n - off : batch;
        char job[64];
        snprintf(job, sizeof job, "%s-%zu", tag, off / batch);
        int rc = pipe_dedup_claim(d, job, now, now, keys + off, m, v);
        if (rc != 0) {
            fprintf(stderr, "claim %s: %s\n", job, pipe_strerror(rc));
            goto out;
        }
        for (size_t i = 0; i < m; i++)
            if (v[i] != want) {
                fprintf(stderr, "claim %s: verdict %d, want %d\n", job, v[i], want);
                goto out;
            }
    }
    secs = (double)(pipe_clock_mono_ms() - t0) / 1000;
out:
    pipe_free(v);
    return secs;
}

static void run_layout(const char *url, struct pipe_redis *r, const struct pipe_dedup_key *keys,
                       size_t n, size_t batch, unsigned buckets)
{
    struct tu_env *env = tu_env_new("bench-dedup-redis");
    struct pipe_dedup *d = NULL;
    char *u =
        pipe_asprintf("%s%sprefix=bench:&buckets=%u", url, strchr(url, '?') ? "&" : "?", buckets);
    if (!env || pipe_dedup_open(u, env->store, env->leases, NULL, &d) != 0) {
        fprintf(stderr, "cannot open %s\n", u);
        goto out;
    }
    command(r, "FLUSHALL");
    /* The first claim builds the (empty) view; keep it out of the figure. */
    claim_all(d, "warm", keys + n, 1, 1, PIPE_DEDUP_NEW);
    long long m0 = info_field(r, "memory", "used_memory");
    double t_new = claim_all(d, "job", keys, n, batch, PIPE_DEDUP_NEW);
    long long m1 = info_field(r, "memory", "used_memory");
    double t_dup = claim_all(d, "again", keys, n, batch, PIPE_DEDUP_DUP);
    long long lp, ht;
    encodings(r, &lp, &ht);
    /* Losing Redis: the next claim reloads every index object. */
    command(r, "FLUSHALL");
    double t_rebuild = claim_all(d, "after", keys + n, 1, 1, PIPE_DEDUP_DUP);
    printf("hash buckets=%-8u %5.1f keys/bucket  %6.1f bytes/key  new %8.0f keys/s  dup %8.0f "
           "keys/s  rebuild %8.0f keys/s  (sampled buckets: %lld listpack, %lld hashtable)\n",
           buckets, (double)n / buckets, (double)(m1 - m0) / (double)n, n / t_new, n / t_dup,
           n / t_rebuild, lp, ht);
out:
    pipe_dedup_free(d);
    tu_env_free(env);
    pipe_free(u);
}

/* The simple layout for comparison: SET prefix<16-byte key> <job> NX PX ttl,
 * one command per key, 1000 to a round trip. */
static void run_strings(struct pipe_redis *r, const struct pipe_dedup_key *keys, size_t n)
{
    enum { DEPTH = 1000 };
    command(r, "FLUSHALL");
    long long m0 = info_field(r, "memory", "used_memory");
    int64_t t0 = pipe_clock_mono_ms();
    struct pipe_redis_cmd cmds[DEPTH];
    redisReply *reps[DEPTH];
    static char kbuf[DEPTH][24];
    static const char *argv[DEPTH][6];
    static size_t lens[DEPTH][6];
    for (size_t off = 0; off < n; off += DEPTH) {
        size_t m = n - off < DEPTH ? n - off : DEPTH;
        for (size_t i = 0; i < m; i++) {
            memcpy(kbuf[i], "sl:d:", 5);
            memcpy(kbuf[i] + 5, &keys[off + i], 16);
            const char *a[6] = {"SET", kbuf[i], "123", "NX", "PX", "172800000"};
            size_t l[6] = {3, 21, 3, 2, 2, 9};
            memcpy(argv[i], a, sizeof a);
            memcpy(lens[i], l, sizeof l);
            cmds[i] = (struct pipe_redis_cmd){6, argv[i], lens[i]};
        }
        if (pipe_redis_run(r, cmds, m, reps) != 0) {
            fprintf(stderr, "SET pipeline failed: %s\n", pipe_redis_last_error());
            return;
        }
        for (size_t i = 0; i < m; i++)
            freeReplyObject(reps[i]);
    }
    double secs = (double)(pipe_clock_mono_ms() - t0) / 1000;
    long long m1 = info_field(r, "memory", "used_memory");
    printf("string per key (SET NX PX)           %6.1f bytes/key  new %8.0f keys/s\n",
           (double)(m1 - m0) / (double)n, n / secs);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("SLUICE_TEST_REDIS_URL");
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
    size_t batch = argc > 3 ? strtoul(argv[3], NULL, 10) : 20000;
    if (!url || n == 0 || batch == 0) {
        fprintf(stderr, "usage: bench_dedup_redis REDIS_URL [KEYS [BATCH]] (a scratch server: it "
                        "is flushed)\n");
        return 2;
    }
    pipe_log_init("bench", PIPE_LOG_WARN);
    struct pipe_redis *r = NULL;
    if (pipe_redis_open(url, &r) != 0) {
        fprintf(stderr, "cannot reach %s: %s\n", url, pipe_redis_last_error());
        return 1;
    }
    long long lpmax = -1;
    redisReply *rep = NULL;
    if (pipe_redis_command(r, &rep, "CONFIG GET hash-max-listpack-entries") == 0) {
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2)
            lpmax = strtoll(rep->element[1]->str, NULL, 10);
        freeReplyObject(rep);
    }
    printf("%zu keys in claims of %zu; hash-max-listpack-entries %lld\n", n, batch, lpmax);
    struct pipe_dedup_key *keys = make_keys(n + 1);
    unsigned per[] = {128, 96, 64, 16};
    for (size_t i = 0; i < sizeof per / sizeof per[0]; i++) {
        unsigned b = (unsigned)(n / per[i]);
        run_layout(url, r, keys, n, batch, b ? b : 1);
    }
    run_strings(r, keys, n);
    command(r, "FLUSHALL");
    pipe_free(keys);
    pipe_redis_free(r);
    return 0;
}
