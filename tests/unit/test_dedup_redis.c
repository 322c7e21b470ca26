/* Tests of the `redis` de-duplication backend beyond the contract suite:
 * losing Redis's state at any moment, re-runs after a crash, expiry of old
 * generations, and the store requests a warm claim costs. Needs a scratch
 * Redis that may be flushed: SLUICE_TEST_REDIS_URL (skipped when unset).
 * The tests use database TEST_DB; the FLUSHALL tests empty every one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/dedup.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/lease.h"
#include "libpipe/mem.h"
#include "libpipe/redis.h"
#include "libpipe/store.h"
#include "tests/support/testutil.h"

#define HOUR_MS (3600LL * 1000)
#define TEST_DB 14

/* Runs a command (words split at spaces) and returns its integer reply,
 * the length of a string reply, 0 for a status, -1 for nil; fails the test
 * on an error. */
static long long rcmd(struct pipe_redis *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static long long rcmd(struct pipe_redis *r, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    const char *argv[8];
    size_t lens[8];
    int argc = 0;
    for (char *save = NULL, *w = strtok_r(line, " ", &save); w && argc < 8;
         w = strtok_r(NULL, " ", &save))
        argv[argc] = w, lens[argc++] = strlen(w);
    struct pipe_redis_cmd cmd = {argc, argv, lens};
    redisReply *rep = NULL;
    if (pipe_redis_run(r, &cmd, 1, &rep) != 0)
        fail_msg("%s: %s", argv[0], pipe_redis_last_error());
    if (rep->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", argv[0], rep->str);
    long long v = rep->type == REDIS_REPLY_INTEGER  ? rep->integer
                  : rep->type == REDIS_REPLY_STRING ? (long long)rep->len
                  : rep->type == REDIS_REPLY_STATUS ? 0
                                                    : -1;
    freeReplyObject(rep);
    return v;
}

struct fx {
    struct tu_env *env;
    struct pipe_redis *r; /* for FLUSHALL and looking inside */
    char *url;            /* the scratch server's TEST_DB */
};

/* base with its database replaced by TEST_DB (options kept). */
static char *db_url(const char *base)
{
    if (strncmp(base, "unix://", 7) == 0)
        return pipe_asprintf("%s%cdb=%d", base, strchr(base, '?') ? '&' : '?', TEST_DB);
    size_t auth = 8 + strcspn(base + 8, "/?");
    const char *q = strchr(base + auth, '?');
    return pipe_asprintf("%.*s/%d%s", (int)auth, base, TEST_DB, q ? q : "");
}

/* Without a server the fixture is NULL and each test skips itself. */
static int setup(void **state)
{
    const char *base = getenv("SLUICE_TEST_REDIS_URL");
    *state = NULL;
    if (!base || !*base)
        return 0;
    struct fx *f = pipe_calloc(1, sizeof *f);
    f->url = db_url(base);
    f->env = tu_env_new("dedup-redis");
    if (!f->env || pipe_redis_open(f->url, &f->r) != 0) {
        tu_env_free(f->env);
        pipe_free(f->url);
        pipe_free(f);
        return -1;
    }
    rcmd(f->r, "FLUSHDB");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (!f)
        return 0;
    pipe_redis_free(f->r);
    tu_env_free(f->env);
    pipe_free(f->url);
    pipe_free(f);
    return 0;
}

static struct fx *fixture(void **state)
{
    if (!*state) {
        print_message("SLUICE_TEST_REDIS_URL not set: skipped\n");
        skip();
    }
    return *state;
}

static char *url_with(const struct fx *f, const char *opts)
{
    return pipe_asprintf("%s%s%s", f->url, strchr(f->url, '?') ? "&" : "?", opts);
}

static struct pipe_dedup *open_with(struct fx *f, const char *opts,
                                    const struct pipe_dedup_config *cfg)
{
    struct pipe_dedup *d = NULL;
    char *url = url_with(f, opts);
    int rc = pipe_dedup_open(url, f->env->store, f->env->leases, cfg, &d);
    if (rc != 0)
        fail_msg("open %s: %s", url, pipe_strerror(rc));
    pipe_free(url);
    return d;
}

static struct pipe_dedup *open_dedup(struct fx *f)
{
    return open_with(f, "prefix=tdr:&buckets=256", NULL);
}

static struct pipe_dedup_key *make_keys(int first, size_t n)
{
    struct pipe_dedup_key *k = pipe_malloc(n * sizeof *k);
    for (size_t i = 0; i < n; i++) {
        char id[32];
        int len = snprintf(id, sizeof id, "id-%d", first + (int)i);
        pipe_dedup_key_of("page_view", 9, id, (size_t)len, &k[i]);
    }
    return k;
}

/* Claims ids [first, first + n) and checks each verdict against want, or,
 * with want < 0, against split: ids below it DUP, the rest NEW. */
static void claim_at(struct pipe_dedup *d, const char *job, int64_t hour_ms, int64_t now_ms,
                     int first, size_t n, int want, int split)
{
    struct pipe_dedup_key *k = make_keys(first, n);
    uint8_t *v = pipe_malloc(n);
    int rc = pipe_dedup_claim(d, job, hour_ms, now_ms, k, n, v);
    if (rc != 0)
        fail_msg("claim %s: %s", job, pipe_strerror(rc));
    for (size_t i = 0; i < n; i++) {
        int w = want >= 0 ? want : first + (int)i < split ? PIPE_DEDUP_DUP : PIPE_DEDUP_NEW;
        if (v[i] != w)
            fail_msg("claim %s: id-%d verdict %d, want %d", job, first + (int)i, v[i], w);
    }
    pipe_free(v);
    pipe_free(k);
}

static void claim(struct pipe_dedup *d, const char *job, int first, size_t n, int want)
{
    int64_t now = pipe_clock_now_ms();
    claim_at(d, job, now, now, first, n, want, 0);
}

static uint64_t store_reqs(const struct fx *f, enum pipe_store_op op)
{
    uint64_t n = 0;
    pipe_store_counters(f->env->store, op, &n, NULL);
    return n;
}

static void test_dedup_redis_flushall_between_claims_rebuilds_from_store(void **state)
{
    struct fx *f = fixture(state);
    struct pipe_dedup *d = open_dedup(f);
    claim(d, "job-a", 0, 100, PIPE_DEDUP_NEW);
    rcmd(f->r, "FLUSHALL");
    int64_t now = pipe_clock_now_ms();
    claim_at(d, "job-b", now, now, 50, 100, -1, 100);
    assert_true(rcmd(f->r, "GET tdr:dedup:epoch") > 0); /* a view again */
    claim(d, "job-a", 0, 100, PIPE_DEDUP_MINE);
    claim(d, "job-c", 0, 150, PIPE_DEDUP_DUP);
    pipe_dedup_free(d);
}

struct flusher {
    struct pipe_redis *r;
    long long baseline;
    atomic_bool claim_done;
    bool flushed_during;
};

/* Waits until the claim has written some buckets, then flushes once. */
static void *flush_mid_claim(void *arg)
{
    struct flusher *fl = arg;
    struct timespec ms = {0, 200000};
    while (!atomic_load(&fl->claim_done)) {
        if (rcmd(fl->r, "DBSIZE") > fl->baseline + 50) {
            rcmd(fl->r, "FLUSHALL");
            fl->flushed_during = !atomic_load(&fl->claim_done);
            return NULL;
        }
        nanosleep(&ms, NULL);
    }
    return NULL;
}

static void test_dedup_redis_flushall_during_claim_keeps_every_key_once(void **state)
{
    struct fx *f = fixture(state);
    enum { N = 60000 };
    struct pipe_dedup *d = open_with(f, "prefix=tdr:&buckets=4096", NULL);
    bool seen_mid = false;
    /* The flush races the claim: retry with fresh keys until it lands
     * while the claim runs (the first try nearly always does). */
    for (int round = 0; round < 5 && !seen_mid; round++) {
        claim(d, "job-warm", -1 - round, 1, PIPE_DEDUP_NEW);
        struct flusher fl = {.baseline = rcmd(f->r, "DBSIZE")};
        assert_int_equal(pipe_redis_open(f->url, &fl.r), 0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, flush_mid_claim, &fl), 0);
        char job[32];
        snprintf(job, sizeof job, "job-big-%d", round);
        claim(d, job, round * N, N, PIPE_DEDUP_NEW);
        atomic_store(&fl.claim_done, true);
        assert_int_equal(pthread_join(th, NULL), 0);
        pipe_redis_free(fl.r);
        seen_mid = fl.flushed_during;
        /* Whatever the moment, the claim stands: nobody else gets its keys. */
        claim(d, "job-other", round * N, N, PIPE_DEDUP_DUP);
        claim(d, job, round * N, N, PIPE_DEDUP_MINE);
    }
    assert_true(seen_mid);
    pipe_dedup_free(d);
}

static void test_dedup_redis_rerun_after_crash_before_index_is_mine(void **state)
{
    struct fx *f = fixture(state);
    struct pipe_dedup *d = open_dedup(f);
    int64_t now = pipe_clock_now_ms();
    claim(d, "job-a", 0, 50, PIPE_DEDUP_NEW);
    /* The crash: claims made in Redis, the index object never written. */
    struct pipe_buf key;
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    assert_int_equal(pipe_keys_dedup_index(&key, now, "job-a"), 0);
    assert_int_equal(pipe_store_delete(f->env->store, key.data), 0);
    claim(d, "job-b", 0, 50, PIPE_DEDUP_DUP); /* job-a will keep them */
    claim(d, "job-a", 0, 50, PIPE_DEDUP_MINE);
    struct pipe_store_obj info;
    assert_int_equal(pipe_store_stat(f->env->store, key.data, &info), 0);
    /* Durable now: a view rebuilt from the store agrees. */
    rcmd(f->r, "FLUSHALL");
    claim(d, "job-c", 0, 50, PIPE_DEDUP_DUP);
    claim(d, "job-a", 0, 50, PIPE_DEDUP_MINE);
    pipe_buf_cleanup(&key);
    pipe_dedup_free(d);
}

static void test_dedup_redis_old_generation_is_forgotten_and_expires(void **state)
{
    struct fx *f = fixture(state);
    struct pipe_dedup_config cfg = {.window_ms = HOUR_MS}; /* generations of an hour */
    struct pipe_dedup *d = open_with(f, "prefix=tdr:&buckets=16", &cfg);
    int64_t now = pipe_clock_now_ms();
    int64_t old = now - 5 * HOUR_MS;
    claim_at(d, "job-old", old, old, 0, 40, PIPE_DEDUP_NEW, 0);
    claim_at(d, "job-now", now, now, 0, 40, PIPE_DEDUP_NEW, 0);
    claim_at(d, "job-again", now, now, 0, 40, PIPE_DEDUP_DUP, 0);
    /* Redis dropped the old generation's buckets by their expiry already;
     * the current one's live for two generations and an hour at most. */
    long long g = (long long)(now / HOUR_MS), go = (long long)(old / HOUR_MS);
    redisReply *rep = NULL;
    assert_int_equal(pipe_redis_command(f->r, &rep, "KEYS tdr:dedup:v:*:%lld:*", go), 0);
    assert_int_equal(rep->elements, 0);
    freeReplyObject(rep);
    assert_int_equal(pipe_redis_command(f->r, &rep, "KEYS tdr:dedup:v:*:%lld:*", g), 0);
    assert_true(rep->elements > 1); /* buckets and the job table */
    for (size_t i = 0; i < rep->elements; i++) {
        long long ttl = rcmd(f->r, "PTTL %s", rep->element[i]->str);
        assert_true(ttl > 0 && ttl <= 4 * HOUR_MS);
    }
    freeReplyObject(rep);
    pipe_dedup_free(d);
}

static void test_dedup_redis_warm_claim_never_lists_the_store(void **state)
{
    struct fx *f = fixture(state);
    struct pipe_dedup *d = open_dedup(f);
    claim(d, "job-a", 0, 100, PIPE_DEDUP_NEW); /* builds the view: lists */
    uint64_t lists = store_reqs(f, PIPE_STORE_OP_LIST);
    uint64_t gets = store_reqs(f, PIPE_STORE_OP_GET);
    uint64_t puts = store_reqs(f, PIPE_STORE_OP_PUT);
    int64_t now = pipe_clock_now_ms();
    claim_at(d, "job-b", now, now, 50, 100, -1, 100);
    claim(d, "job-c", 1000, 100, PIPE_DEDUP_NEW);
    claim(d, "job-b", 100, 50, PIPE_DEDUP_MINE); /* unchanged index: no put */
    assert_int_equal(store_reqs(f, PIPE_STORE_OP_LIST), lists);
    assert_int_equal(store_reqs(f, PIPE_STORE_OP_GET), gets + 3 * 2); /* epoch, own index */
    assert_int_equal(store_reqs(f, PIPE_STORE_OP_PUT), puts + 2);
    pipe_dedup_free(d);
}

static void test_dedup_redis_replay_of_old_partition_lists_that_hour_only(void **state)
{
    struct fx *f = fixture(state);
    struct pipe_dedup_config cfg = {.window_ms = 24 * HOUR_MS};
    struct pipe_dedup *d = open_with(f, "prefix=tdr:&buckets=256", &cfg);
    int64_t now = pipe_clock_now_ms();
    int64_t old = now - 72 * HOUR_MS;
    claim(d, "job-warm", 500, 1, PIPE_DEDUP_NEW);
    claim_at(d, "job-old", old, old, 0, 30, PIPE_DEDUP_NEW, 0);
    uint64_t lists = store_reqs(f, PIPE_STORE_OP_LIST);
    /* A replay today of that hour: checked against the hour's index objects. */
    claim_at(d, "job-replay", old, now, 20, 20, -1, 30);
    assert_int_equal(store_reqs(f, PIPE_STORE_OP_LIST), lists + 1);
    /* Its claims stay in that hour: today they are new. */
    claim(d, "job-today", 20, 20, PIPE_DEDUP_NEW);
    pipe_dedup_free(d);
}

static void test_dedup_redis_view_of_other_server_process_is_rebuilt(void **state)
{
    struct fx *f = fixture(state);
    struct pipe_dedup *d = open_dedup(f);
    claim(d, "job-a", 0, 40, PIPE_DEDUP_NEW);
    /* As after a restart from an old snapshot: the marker survived but the
     * claims did not, and the server is another process. */
    redisReply *rep = NULL;
    assert_int_equal(pipe_redis_command(f->r, &rep, "GET tdr:dedup:epoch"), 0);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    char *colon = strrchr(rep->str, ':');
    assert_non_null(colon);
    char *forged = pipe_asprintf("%.*s:0123456789abcdef", (int)(colon - rep->str), rep->str);
    freeReplyObject(rep);
    assert_int_equal(pipe_redis_command(f->r, &rep, "EVAL %s 0",
                                        "for _, k in ipairs(redis.call('KEYS', 'tdr:dedup:v:*')) "
                                        "do redis.call('DEL', k) end return 0"),
                     0);
    freeReplyObject(rep);
    rcmd(f->r, "SET tdr:dedup:epoch %s", forged);
    claim(d, "job-b", 0, 40, PIPE_DEDUP_DUP);
    pipe_free(forged);
    pipe_dedup_free(d);
}

static void test_dedup_redis_handles_with_other_layouts_do_not_share_a_view(void **state)
{
    struct fx *f = fixture(state);
    struct pipe_dedup *a = open_with(f, "prefix=tdr:&buckets=256", NULL);
    struct pipe_dedup *b = open_with(f, "prefix=tdr:&buckets=1000", NULL);
    claim(a, "job-a", 0, 60, PIPE_DEDUP_NEW);
    claim(b, "job-b", 0, 60, PIPE_DEDUP_DUP); /* rebuilt with its own buckets */
    int64_t now = pipe_clock_now_ms();
    claim_at(a, "job-c", now, now, 30, 60, -1, 60); /* and back */
    pipe_dedup_free(a);
    pipe_dedup_free(b);
}

static void test_dedup_redis_bad_url_options_are_config_errors(void **state)
{
    struct fx *f = fixture(state);
    const char *bad[] = {"buckets=0", "buckets=12x", "buckets=99999999999", "buckets=",
                         "buckets",   "prefix=a*b",  "prefix=:x",           "nosuch=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pipe_dedup *d = NULL;
        char *url = url_with(f, bad[i]);
        assert_int_equal(pipe_dedup_open(url, f->env->store, f->env->leases, NULL, &d),
                         PIPE_ECONFIG);
        assert_null(d);
        pipe_free(url);
    }
}

static void test_dedup_redis_holds_nothing_in_process_memory(void **state)
{
    struct fx *f = fixture(state);
    struct pipe_dedup *d = open_dedup(f);
    claim(d, "job-a", 0, 100, PIPE_DEDUP_NEW);
    uint64_t keys = 1, bytes = 1;
    pipe_dedup_memory(d, &keys, &bytes);
    assert_int_equal(keys, 0);
    assert_int_equal(bytes, 0);
    pipe_dedup_free(d);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_dedup_redis_flushall_between_claims_rebuilds_from_store),
        T(test_dedup_redis_flushall_during_claim_keeps_every_key_once),
        T(test_dedup_redis_rerun_after_crash_before_index_is_mine),
        T(test_dedup_redis_old_generation_is_forgotten_and_expires),
        T(test_dedup_redis_warm_claim_never_lists_the_store),
        T(test_dedup_redis_replay_of_old_partition_lists_that_hour_only),
        T(test_dedup_redis_view_of_other_server_process_is_rebuilt),
        T(test_dedup_redis_handles_with_other_layouts_do_not_share_a_view),
        T(test_dedup_redis_bad_url_options_are_config_errors),
        T(test_dedup_redis_holds_nothing_in_process_memory),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
