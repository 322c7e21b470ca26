/* Unit tests for what is particular to the Redis lease backend: its keys,
 * expiry by the server's clock, a server that lost its data, a flushed
 * script cache, prefixes. What every backend must do is in
 * tests/contract/test_lease_contract.c. Server tests use the scratch server
 * in SLUICE_TEST_REDIS_URL (skipped when unset), database TEST_DB, which
 * they may FLUSHDB, and a random per-run name prefix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/lease.h"
#include "libpipe/lease_int.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/redis.h"

#define TEST_DB  13
#define LONG_TTL 30000

static char g_names[32]; /* random per run: runs may share a server */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The scratch server's TEST_DB with extra options ("?prefix=x:" style, '?'
 * included), or a skip. The caller frees. */
static char *test_url(const char *extra)
{
    const char *base = getenv("SLUICE_TEST_REDIS_URL");
    if (!base || !*base)
        skip();
    const char *opts = extra ? extra + 1 : "";
    if (strncmp(base, "unix://", 7) == 0)
        return pipe_asprintf("%s%cdb=%d%s%s", base, strchr(base, '?') ? '&' : '?', TEST_DB,
                             *opts ? "&" : "", opts);
    size_t auth = 8 + strcspn(base + 8, "/?");
    const char *q = strchr(base + auth, '?');
    return pipe_asprintf("%.*s/%d%s%s%s%s", (int)auth, base, TEST_DB, q || *opts ? "?" : "",
                         q ? q + 1 : "", q && *opts ? "&" : "", opts);
}

static struct pipe_leases *open_leases(const char *extra)
{
    char *url = test_url(extra);
    struct pipe_leases *ls = NULL;
    int rc = pipe_leases_open(url, NULL, &ls);
    if (rc != 0)
        fail_msg("open %s: %s", url, pipe_strerror(rc));
    pipe_free(url);
    return ls;
}

/* A plain connection to the same database, to look at the keys. */
static struct pipe_redis *open_redis(void)
{
    char *url = test_url(NULL);
    struct pipe_redis *r = NULL;
    assert_int_equal(pipe_redis_open(url, &r), 0);
    pipe_free(url);
    return r;
}

/* Runs a command that must answer without an error; returns the reply. */
static redisReply *cmd(struct pipe_redis *r, const char *fmt, const char *arg)
{
    redisReply *rep = NULL;
    assert_int_equal(pipe_redis_command(r, &rep, fmt, arg), 0);
    assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
    return rep;
}

static long long cmd_int(struct pipe_redis *r, const char *fmt, const char *arg)
{
    redisReply *rep = cmd(r, fmt, arg);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    long long v = rep->integer;
    freeReplyObject(rep);
    return v;
}

static void test_lease_redis_bad_url_is_econfig_and_dead_server_eunavail(void **state)
{
    (void)state;
    struct pipe_leases *ls = NULL;
    assert_int_equal(pipe_leases_open("redis://127.0.0.1:6379?bogus=1", NULL, &ls), PIPE_ECONFIG);
    assert_int_equal(pipe_leases_open("unix://relative", NULL, &ls), PIPE_ECONFIG);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    char *url = pipe_asprintf("redis://127.0.0.1:%d?timeout=300", ntohs(a.sin_port));
    assert_int_equal(pipe_leases_open(url, NULL, &ls), PIPE_EUNAVAIL);
    assert_null(ls);
    pipe_free(url);
}

static void test_lease_redis_keys_hold_fence_token_and_server_ttls(void **state)
{
    (void)state;
    struct pipe_leases *ls = open_leases(NULL);
    struct pipe_redis *r = open_redis();
    char *name = pipe_asprintf("%s/layout", g_names);
    char *lkey = pipe_asprintf("sluice:lease:%s", name);
    char *fkey = pipe_asprintf("sluice:fence:%s", name);
    struct pipe_lease l;
    assert_int_equal(pipe_lease_acquire(ls, name, 5000, &l), 0);

    redisReply *rep = cmd(r, "GET %s", lkey);
    char *want = pipe_asprintf("%" PRIu64 ":%s", l.fence, l.token);
    assert_string_equal(rep->str, want);
    freeReplyObject(rep);
    rep = cmd(r, "GET %s", fkey);
    assert_int_equal(strtoull(rep->str, NULL, 10), l.fence);
    freeReplyObject(rep);
    long long pttl = cmd_int(r, "PTTL %s", lkey);
    assert_true(pttl > 4000 && pttl <= 5000);
    assert_true(cmd_int(r, "PTTL %s", fkey) > PIPE_LEASE_TTL_MAX_MS);

    assert_int_equal(pipe_lease_renew(ls, &l, 20000), 0);
    pttl = cmd_int(r, "PTTL %s", lkey);
    assert_true(pttl > 19000 && pttl <= 20000);

    /* Release drops the lease key and keeps the fence. */
    assert_int_equal(pipe_lease_release(ls, &l), 0);
    assert_int_equal(cmd_int(r, "EXISTS %s", lkey), 0);
    assert_int_equal(cmd_int(r, "EXISTS %s", fkey), 1);
    pipe_free(want);
    pipe_free(fkey);
    pipe_free(lkey);
    pipe_free(name);
    pipe_redis_free(r);
    pipe_leases_free(ls);
}

/* The backend ignores the caller's clock: a holder whose clock runs days
 * ahead or behind gets the same answers, and expiry happens at the server. */
static void test_lease_redis_expiry_follows_server_clock_not_callers(void **state)
{
    (void)state;
    struct pipe_leases *ls = open_leases(NULL);
    char *name = pipe_asprintf("%s/clock", g_names);
    const char *token = "0123456789abcdef0123456789abcdef";
    const char *other = "fedcba9876543210fedcba9876543210";
    int64_t ahead = pipe_clock_now_ms() + 7 * 24 * 3600 * 1000LL, behind = 0;
    uint64_t fence = 0, fence2 = 0;
    assert_int_equal(ls->ops->acquire(ls, name, token, behind, 150, &fence), 0);
    assert_int_equal(ls->ops->acquire(ls, name, other, ahead, LONG_TTL, &fence2), PIPE_EBUSY);
    assert_int_equal(ls->ops->check(ls, name, token, fence, ahead), 0);
    assert_int_equal(ls->ops->renew(ls, name, token, fence, ahead, 150), 0);
    sleep_ms(250);
    assert_int_equal(ls->ops->check(ls, name, token, fence, behind), PIPE_ELOST);
    assert_int_equal(ls->ops->acquire(ls, name, other, behind, LONG_TTL, &fence2), 0);
    assert_true(fence2 > fence);
    assert_int_equal(ls->ops->release(ls, name, other, fence2, ahead), 0);
    pipe_free(name);
    pipe_leases_free(ls);
}

static void test_lease_redis_flushed_server_makes_lease_lost_and_new_acquire_works(void **state)
{
    (void)state;
    struct pipe_leases *ls = open_leases(NULL);
    struct pipe_redis *r = open_redis();
    char *name = pipe_asprintf("%s/flush", g_names);
    struct pipe_lease old, cur, again;
    assert_int_equal(pipe_lease_acquire(ls, name, LONG_TTL, &old), 0);
    /* A restart without persistence looks the same: no keys, no scripts. */
    freeReplyObject(cmd(r, "FLUSHDB", NULL));
    freeReplyObject(cmd(r, "SCRIPT FLUSH", NULL));
    assert_int_equal(pipe_lease_check(ls, &old), PIPE_ELOST);
    assert_int_equal(pipe_lease_renew(ls, &old, LONG_TTL), PIPE_ELOST);
    assert_int_equal(pipe_lease_acquire(ls, name, LONG_TTL, &cur), 0);
    /* The fence counter went with the data; the clock floor still puts
     * the new fence above the one handed out before. */
    assert_true(cur.fence > old.fence);
    assert_int_equal(pipe_lease_acquire(ls, name, LONG_TTL, &again), PIPE_EBUSY);
    assert_int_equal(pipe_lease_release(ls, &old), PIPE_ELOST);
    assert_int_equal(pipe_lease_check(ls, &cur), 0);
    assert_int_equal(pipe_lease_release(ls, &cur), 0);
    pipe_free(name);
    pipe_redis_free(r);
    pipe_leases_free(ls);
}

static void test_lease_redis_prefixes_keep_pipelines_apart(void **state)
{
    (void)state;
    struct pipe_leases *a = open_leases("?prefix=pa:"), *b = open_leases("?prefix=pb:");
    struct pipe_redis *r = open_redis();
    char *name = pipe_asprintf("%s/shared-name", g_names);
    char *akey = pipe_asprintf("pa:lease:%s", name);
    struct pipe_lease la, lb;
    assert_int_equal(pipe_lease_acquire(a, name, LONG_TTL, &la), 0);
    assert_int_equal(pipe_lease_acquire(b, name, LONG_TTL, &lb), 0);
    assert_int_equal(cmd_int(r, "EXISTS %s", akey), 1);
    assert_int_equal(pipe_lease_release(a, &la), 0);
    assert_int_equal(pipe_lease_check(b, &lb), 0);
    assert_int_equal(pipe_lease_release(b, &lb), 0);
    pipe_free(akey);
    pipe_free(name);
    pipe_redis_free(r);
    pipe_leases_free(a);
    pipe_leases_free(b);
}

#define RACERS 16

struct race {
    pthread_barrier_t bar;
    const char *name;
    _Atomic int wins, busy, errors;
};

/* Each racer has a handle (a connection) of its own: the exclusion must
 * come from the server, not from a mutex in this process. */
static void *racer_main(void *arg)
{
    struct race *rc = arg;
    struct pipe_leases *ls = NULL;
    char *url = test_url(NULL);
    int orc = pipe_leases_open(url, NULL, &ls);
    pipe_free(url);
    pthread_barrier_wait(&rc->bar);
    struct pipe_lease l;
    int got = orc == 0 ? pipe_lease_acquire(ls, rc->name, LONG_TTL, &l) : orc;
    if (got == 0)
        atomic_fetch_add(&rc->wins, 1);
    else if (got == PIPE_EBUSY)
        atomic_fetch_add(&rc->busy, 1);
    else
        atomic_fetch_add(&rc->errors, 1);
    pthread_barrier_wait(&rc->bar);
    if (got == 0)
        pipe_lease_release(ls, &l);
    pipe_leases_free(ls);
    return NULL;
}

static void test_lease_redis_sixteen_connections_racing_have_one_winner(void **state)
{
    (void)state;
    char *probe = test_url(NULL); /* skips before any thread starts */
    pipe_free(probe);
    struct race race;
    memset(&race, 0, sizeof race);
    char *name = pipe_asprintf("%s/race", g_names);
    race.name = name;
    pthread_barrier_init(&race.bar, NULL, RACERS);
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, racer_main, &race), 0);
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&race.errors), 0);
    assert_int_equal(atomic_load(&race.wins), 1);
    assert_int_equal(atomic_load(&race.busy), RACERS - 1);
    pthread_barrier_destroy(&race.bar);
    pipe_free(name);
}

static void test_lease_redis_dropped_connection_costs_no_lease(void **state)
{
    (void)state;
    struct pipe_leases *ls = open_leases(NULL);
    struct pipe_redis *r = open_redis();
    char *name = pipe_asprintf("%s/killed", g_names);
    struct pipe_lease l;
    assert_int_equal(pipe_lease_acquire(ls, name, LONG_TTL, &l), 0);
    /* Kill every other connection in our database (others use other dbs). */
    char filter[32];
    snprintf(filter, sizeof filter, " db=%d ", TEST_DB);
    redisReply *rep = cmd(r, "CLIENT LIST", NULL);
    char *list = pipe_strdup(rep->str);
    freeReplyObject(rep);
    long long self = cmd_int(r, "CLIENT ID", NULL), killed = 0;
    char *save = NULL;
    for (char *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        long long id = strtoll(line + 3, NULL, 10);
        char idstr[32];
        snprintf(idstr, sizeof idstr, "%lld", id);
        if (id != self && strstr(line, filter))
            killed += cmd_int(r, "CLIENT KILL ID %s", idstr);
    }
    assert_true(killed >= 1);
    int rc = pipe_lease_check(ls, &l);
    assert_true(rc == 0 || rc == PIPE_EUNAVAIL);
    assert_int_equal(pipe_lease_renew(ls, &l, LONG_TTL), 0);
    assert_int_equal(pipe_lease_release(ls, &l), 0);
    pipe_free(list);
    pipe_free(name);
    pipe_redis_free(r);
    pipe_leases_free(ls);
}

int main(void)
{
    unsigned char rnd[4];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return 1;
    snprintf(g_names, sizeof g_names, "tl-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    pipe_log_init("test_lease_redis", PIPE_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lease_redis_bad_url_is_econfig_and_dead_server_eunavail),
        cmocka_unit_test(test_lease_redis_keys_hold_fence_token_and_server_ttls),
        cmocka_unit_test(test_lease_redis_expiry_follows_server_clock_not_callers),
        cmocka_unit_test(test_lease_redis_flushed_server_makes_lease_lost_and_new_acquire_works),
        cmocka_unit_test(test_lease_redis_prefixes_keep_pipelines_apart),
        cmocka_unit_test(test_lease_redis_sixteen_connections_racing_have_one_winner),
        cmocka_unit_test(test_lease_redis_dropped_connection_costs_no_lease),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
