/* Unit tests for the Redis connection module: URL parsing (no server
 * needed), then pipelines, binary arguments, reconnects and timeouts against
 * the scratch server in SLUICE_TEST_REDIS_URL (skipped when it is unset).
 * Server tests use database TEST_DB and a random per-run key prefix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/redis.h"

#define TEST_DB 12

static char g_prefix[32]; /* random per run: runs may share a server */

/* base with its database replaced by db: the path of redis://, the db=
 * option of unix:// (a later db= wins). extra ("?timeout=200" style, '?'
 * included) is appended as options. The caller frees. */
static char *url_with(const char *base, int db, const char *extra)
{
    const char *opts = extra ? extra + 1 : "";
    if (strncmp(base, "unix://", 7) == 0)
        return pipe_asprintf("%s%cdb=%d%s%s", base, strchr(base, '?') ? '&' : '?', db,
                             *opts ? "&" : "", opts);
    size_t auth = 8 + strcspn(base + 8, "/?");
    const char *q = strchr(base + auth, '?');
    return pipe_asprintf("%.*s/%d%s%s%s%s", (int)auth, base, db, q || *opts ? "?" : "",
                         q ? q + 1 : "", q && *opts ? "&" : "", opts);
}

/* Opens the scratch server's TEST_DB (with extra options), or skips. */
static struct pipe_redis *open_test(const char *extra)
{
    const char *base = getenv("SLUICE_TEST_REDIS_URL");
    if (!base || !*base)
        skip();
    char *url = url_with(base, TEST_DB, extra);
    struct pipe_redis *r = NULL;
    int rc = pipe_redis_open(url, &r);
    if (rc != 0)
        fail_msg("open %s: %s (%s)", url, pipe_strerror(rc), pipe_redis_last_error());
    pipe_free(url);
    return r;
}

/* A TCP port nobody listens on (bound, then closed). */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_redis_malformed_urls_are_econfig(void **state)
{
    (void)state;
    char long_path[160], long_prefix[100];
    snprintf(long_path, sizeof long_path, "unix:///%0120d", 0);
    snprintf(long_prefix, sizeof long_prefix, "redis://h?prefix=%070d", 0);
    const char *bad[] = {
        "",
        "http://127.0.0.1:6379",
        "redis://",
        "redis://:6379",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:port",
        "redis://h:",
        "redis://h/abc",
        "redis://h/-1",
        "redis://h?timeout=0",
        "redis://h?timeout=600001",
        "redis://h?timeout=abc",
        "redis://h?bogus=1",
        "redis://h?timeout",
        "redis://h?db=1", /* redis:// takes the db in the path */
        "redis://[::1",
        "redis://[::1]x",
        "redis://::1",
        "redis://user@h",
        "redis://:p%zz@h",
        "redis://:p%00@h",
        "redis://:p%4@h",
        "redis://h#frag",
        "redis://h?prefix=a#b",
        "redis://h x",
        "unix://",
        "unix:///",
        "unix://relative/path",
        "unix:///x?db=-1",
        "unix:///x?db=x",
        long_path,
        long_prefix,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pipe_redis *r = (struct pipe_redis *)&r; /* must stay untouched */
        int rc = pipe_redis_open(bad[i], &r);
        if (rc != PIPE_ECONFIG)
            fail_msg("\"%s\": %s, want PIPE_ECONFIG", bad[i], pipe_strerror(rc));
        assert_ptr_equal(r, (struct pipe_redis *)&r);
        assert_true(strlen(pipe_redis_last_error()) > 0);
    }
    struct pipe_redis *r = NULL;
    assert_int_equal(pipe_redis_open(NULL, &r), PIPE_EINVAL);
    assert_int_equal(pipe_redis_open("redis://h", NULL), PIPE_EINVAL);
    pipe_redis_free(NULL);
}

static void test_redis_unreachable_server_is_eunavail_with_detail(void **state)
{
    (void)state;
    struct pipe_redis *r = NULL;
    char *url = pipe_asprintf("redis://127.0.0.1:%d/0?timeout=500", dead_port());
    int64_t t0 = pipe_clock_mono_ms();
    assert_int_equal(pipe_redis_open(url, &r), PIPE_EUNAVAIL);
    assert_true(pipe_clock_mono_ms() - t0 < 10000); /* it does not hang */
    assert_null(r);
    assert_non_null(strstr(pipe_redis_last_error(), "127.0.0.1"));
    /* Valid forms that parse, so fail only at connect. */
    char *v6 = pipe_asprintf("redis://u:p@[::1]:%d/3?timeout=300&prefix=x:", dead_port());
    assert_int_equal(pipe_redis_open(v6, &r), PIPE_EUNAVAIL);
    assert_non_null(strstr(pipe_redis_last_error(), "[::1]:"));
    pipe_free(v6);
    assert_int_equal(pipe_redis_open("unix:///nonexistent-dir/redis.sock", &r), PIPE_EUNAVAIL);
    assert_non_null(strstr(pipe_redis_last_error(), "/nonexistent-dir/redis.sock"));
    pipe_free(url);
}

static void test_redis_pipeline_of_2000_commands_answers_in_order(void **state)
{
    (void)state;
    enum { N = 2000 };
    struct pipe_redis *r = open_test(NULL);
    static struct pipe_redis_cmd cmds[N];
    static redisReply *reps[N];
    static char keys[N][64], vals[N][32];
    static const char *argv[N][3];
    static size_t argvlen[N][3];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "%spipe:%d", g_prefix, i);
        snprintf(vals[i], sizeof vals[i], "value-%d", i * 7);
        argv[i][0] = "SET";
        argv[i][1] = keys[i];
        argv[i][2] = vals[i];
        for (int j = 0; j < 3; j++)
            argvlen[i][j] = strlen(argv[i][j]);
        cmds[i] = (struct pipe_redis_cmd){3, argv[i], argvlen[i]};
    }
    assert_int_equal(pipe_redis_run(r, cmds, N, reps), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(reps[i]->type, REDIS_REPLY_STATUS);
        freeReplyObject(reps[i]);
        argv[i][0] = "GET";
        argvlen[i][0] = 3;
        cmds[i].argc = 2;
    }
    assert_int_equal(pipe_redis_run(r, cmds, N, reps), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(reps[i]->type, REDIS_REPLY_STRING);
        assert_string_equal(reps[i]->str, vals[i]);
        freeReplyObject(reps[i]);
        argv[i][0] = "DEL";
        argvlen[i][0] = 3;
    }
    assert_int_equal(pipe_redis_run(r, cmds, N, reps), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(reps[i]->integer, 1);
        freeReplyObject(reps[i]);
    }
    assert_int_equal(pipe_redis_run(r, cmds, 0, reps), PIPE_EINVAL);
    pipe_redis_free(r);
}

static void test_redis_binary_arguments_round_trip(void **state)
{
    (void)state;
    struct pipe_redis *r = open_test(NULL);
    char key[64], val[256];
    size_t klen = (size_t)snprintf(key, sizeof key, "%sbin:", g_prefix);
    memcpy(key + klen, "a\0b\r\n", 5);
    klen += 5;
    for (int i = 0; i < 256; i++)
        val[i] = (char)i;
    const char *argv[] = {"SET", key, val};
    size_t argvlen[] = {3, klen, sizeof val};
    struct pipe_redis_cmd cmd = {3, argv, argvlen};
    redisReply *rep = NULL;
    assert_int_equal(pipe_redis_run(r, &cmd, 1, &rep), 0);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    assert_int_equal(pipe_redis_command(r, &rep, "GET %b", key, klen), 0);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_int_equal(rep->len, sizeof val);
    assert_memory_equal(rep->str, val, sizeof val);
    freeReplyObject(rep);
    /* The key without its tail is another key. */
    assert_int_equal(pipe_redis_command(r, &rep, "EXISTS %b", key, klen - 3), 0);
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    assert_int_equal(pipe_redis_command(r, &rep, "DEL %b", key, klen), 0);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    pipe_redis_free(r);
}

static void test_redis_error_reply_is_a_reply_and_connection_stays(void **state)
{
    (void)state;
    struct pipe_redis *r = open_test(NULL);
    redisReply *rep = NULL;
    assert_int_equal(pipe_redis_command(r, &rep, "NOSUCHCOMMAND %s", "x"), 0);
    assert_int_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    assert_int_equal(pipe_redis_command(r, &rep, "PING"), 0);
    assert_string_equal(rep->str, "PONG");
    freeReplyObject(rep);
    pipe_redis_free(r);
}

static long long client_id(struct pipe_redis *r)
{
    redisReply *rep = NULL;
    assert_int_equal(pipe_redis_command(r, &rep, "CLIENT ID"), 0);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    long long id = rep->integer;
    freeReplyObject(rep);
    return id;
}

static void test_redis_reconnects_after_server_drops_connection(void **state)
{
    (void)state;
    struct pipe_redis *r = open_test(NULL), *killer = open_test(NULL);
    long long id1 = client_id(r);
    redisReply *rep = NULL;
    assert_int_equal(pipe_redis_command(killer, &rep, "CLIENT KILL ID %lld", id1), 0);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    /* The first call may see the closed connection (PIPE_EUNAVAIL, command
     * not resent); the next one must work on a new connection. */
    int rc = pipe_redis_command(r, &rep, "PING");
    assert_true(rc == 0 || rc == PIPE_EUNAVAIL);
    if (rc == 0)
        freeReplyObject(rep);
    else
        assert_true(strlen(pipe_redis_last_error()) > 0);
    long long id2 = client_id(r);
    assert_true(id2 != id1);
    /* The new connection is in the same database again. */
    assert_int_equal(pipe_redis_command(r, &rep, "CLIENT INFO"), 0);
    char want[32];
    snprintf(want, sizeof want, " db=%d ", TEST_DB);
    assert_non_null(strstr(rep->str, want));
    freeReplyObject(rep);
    pipe_redis_free(killer);
    pipe_redis_free(r);
}

static void test_redis_reply_timeout_fails_once_then_reconnects(void **state)
{
    (void)state;
    struct pipe_redis *r = open_test("?timeout=200");
    long long id1 = client_id(r);
    redisReply *rep = NULL;
    char key[64];
    snprintf(key, sizeof key, "%snever", g_prefix);
    int64_t t0 = pipe_clock_mono_ms();
    assert_int_equal(pipe_redis_command(r, &rep, "BLPOP %s 3", key), PIPE_EUNAVAIL);
    int64_t took = pipe_clock_mono_ms() - t0;
    assert_true(took >= 150 && took < 10000); /* not early; the bound: no hang */
    assert_non_null(strstr(pipe_redis_last_error(), "no reply within 200 ms"));
    assert_int_equal(pipe_redis_command(r, &rep, "PING"), 0);
    assert_string_equal(rep->str, "PONG");
    freeReplyObject(rep);
    assert_true(client_id(r) != id1);
    pipe_redis_free(r);
}

struct incr_arg {
    struct pipe_redis *r;
    const char *key;
    int errors;
};

static void *incr_main(void *p)
{
    struct incr_arg *a = p;
    for (int i = 0; i < 200; i++) {
        redisReply *rep = NULL;
        if (pipe_redis_command(a->r, &rep, "INCR %s", a->key) != 0) {
            a->errors++;
            continue;
        }
        if (rep->type != REDIS_REPLY_INTEGER)
            a->errors++;
        freeReplyObject(rep);
    }
    return NULL;
}

static void test_redis_threads_share_one_handle(void **state)
{
    (void)state;
    enum { THREADS = 8 };
    struct pipe_redis *r = open_test(NULL);
    char key[64];
    snprintf(key, sizeof key, "%scounter", g_prefix);
    pthread_t th[THREADS];
    struct incr_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct incr_arg){r, key, 0};
        assert_int_equal(pthread_create(&th[i], NULL, incr_main, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].errors, 0);
    }
    redisReply *rep = NULL;
    assert_int_equal(pipe_redis_command(r, &rep, "GETDEL %s", key), 0);
    assert_string_equal(rep->str, "1600");
    freeReplyObject(rep);
    pipe_redis_free(r);
}

static void test_redis_prefix_and_url_come_from_the_url(void **state)
{
    (void)state;
    struct pipe_redis *r = open_test(NULL);
    assert_string_equal(pipe_redis_prefix(r), "sluice:");
    pipe_redis_free(r);
    r = open_test("?prefix=pipeline-b:");
    assert_string_equal(pipe_redis_prefix(r), "pipeline-b:");
    assert_non_null(strstr(pipe_redis_url(r), "prefix=pipeline-b:"));
    pipe_redis_free(r);
}

/* Credentials: Redis 7's default user has no password, so "AUTH default
 * anything" succeeds while the one-argument form is refused. Only for a
 * redis:// base URL without credentials of its own. */
static void test_redis_password_is_redacted_and_auth_refusal_is_econfig(void **state)
{
    (void)state;
    const char *base = getenv("SLUICE_TEST_REDIS_URL");
    if (!base || strncmp(base, "redis://", 8) != 0 || strchr(base, '@'))
        skip();
    char *plain = url_with(base, TEST_DB, NULL);
    char *with = pipe_asprintf("redis://default:s3cr%%40t@%s", plain + 8);
    char *want = pipe_asprintf("redis://default:REDACTED@%s", plain + 8);
    struct pipe_redis *r = NULL;
    int rc = pipe_redis_open(with, &r);
    if (rc == PIPE_ECONFIG) /* the scratch server has a password after all */
        skip();
    assert_int_equal(rc, 0);
    assert_string_equal(pipe_redis_url(r), want);
    assert_null(strstr(pipe_redis_url(r), "s3cr"));
    pipe_redis_free(r);
    char *wrong = pipe_asprintf("redis://:nope@%s", plain + 8);
    assert_int_equal(pipe_redis_open(wrong, &r), PIPE_ECONFIG);
    assert_non_null(strstr(pipe_redis_last_error(), "AUTH"));
    assert_null(strstr(pipe_redis_last_error(), "nope"));
    pipe_free(wrong);
    pipe_free(want);
    pipe_free(with);
    pipe_free(plain);
}

static void test_redis_select_out_of_range_db_is_econfig(void **state)
{
    (void)state;
    const char *base = getenv("SLUICE_TEST_REDIS_URL");
    if (!base || !*base)
        skip();
    char *url = url_with(base, 99999, NULL);
    struct pipe_redis *r = NULL;
    assert_int_equal(pipe_redis_open(url, &r), PIPE_ECONFIG);
    assert_non_null(strstr(pipe_redis_last_error(), "SELECT"));
    pipe_free(url);
}

int main(void)
{
    unsigned char rnd[4];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return 1;
    snprintf(g_prefix, sizeof g_prefix, "tr-%02x%02x%02x%02x:", rnd[0], rnd[1], rnd[2], rnd[3]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_malformed_urls_are_econfig),
        cmocka_unit_test(test_redis_unreachable_server_is_eunavail_with_detail),
        cmocka_unit_test(test_redis_pipeline_of_2000_commands_answers_in_order),
        cmocka_unit_test(test_redis_binary_arguments_round_trip),
        cmocka_unit_test(test_redis_error_reply_is_a_reply_and_connection_stays),
        cmocka_unit_test(test_redis_reconnects_after_server_drops_connection),
        cmocka_unit_test(test_redis_reply_timeout_fails_once_then_reconnects),
        cmocka_unit_test(test_redis_threads_share_one_handle),
        cmocka_unit_test(test_redis_prefix_and_url_come_from_the_url),
        cmocka_unit_test(test_redis_password_is_redacted_and_auth_refusal_is_econfig),
        cmocka_unit_test(test_redis_select_out_of_range_db_is_econfig),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
