/* Unit tests for the s3:// store backend. Without a server: URL and
 * credential errors, retries against a port that refuses, the timeout
 * against a server that never answers, concurrent first use, and what goes
 * on the wire (encoded keys, signed session token, the shared credentials
 * file's profile) as a one-answer fake server records it. With
 * SLUICE_TEST_S3_URL (an s3:// URL of a scratch bucket, AWS_* set): the cap
 * on get, etags, prefixes and listings longer than one S3 page; without it
 * those tests are skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"

/* ---- helpers --------------------------------------------------------- */

/* A TCP port on 127.0.0.1. With listening, the socket listens (the kernel
 * completes handshakes, nobody ever answers) and its fd is in *fd;
 * otherwise it is closed again, so connecting is refused. */
static int local_port(bool listening, int *fd)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    if (listening) {
        assert_int_equal(listen(s, 16), 0);
        *fd = s;
    } else {
        close(s);
    }
    return ntohs(a.sin_port);
}

static struct pipe_store *open_ok(const char *url)
{
    struct pipe_store *s = NULL;
    int rc = pipe_store_open(url, &s);
    if (rc < 0)
        fail_msg("open %s: %s", url, pipe_store_last_error(NULL));
    return s;
}

/* Sets name to value (NULL: unsets) and returns the old value (caller
 * frees; NULL if it was unset). */
static char *swap_env(const char *name, const char *value)
{
    const char *old = getenv(name);
    char *saved = old ? pipe_strdup(old) : NULL;
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
    return saved;
}

static void restore_env(const char *name, char *saved)
{
    if (saved)
        setenv(name, saved, 1);
    else
        unsetenv(name);
    pipe_free(saved);
}

static int group_setup(void **state)
{
    (void)state;
    /* Offline tests need some credentials; live ones bring their own. */
    setenv("AWS_ACCESS_KEY_ID", "TESTKEY", 0);
    setenv("AWS_SECRET_ACCESS_KEY", "TESTSECRET", 0);
    if (getenv("SLUICE_TEST_S3_URL") == NULL)
        unsetenv("AWS_SESSION_TOKEN");
    /* Nothing here may reach for a real metadata service or role. */
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
    unsetenv("AWS_ROLE_ARN");
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    return 0;
}

/* ---- without a server ------------------------------------------------ */

struct open_arg {
    char url[128];
    int open_rc, get_rc;
};

static void *open_and_get(void *p)
{
    struct open_arg *a = p;
    struct pipe_store *s = NULL;
    a->open_rc = pipe_store_open(a->url, &s);
    if (a->open_rc == 0) {
        struct pipe_buf b;
        pipe_buf_init(&b, 100);
        a->get_rc = pipe_store_get(s, "k", &b);
        pipe_buf_cleanup(&b);
    }
    pipe_store_free(s);
    return NULL;
}

/* First in the list, so that these threads race through curl's and
 * libsodium's one-time initialisation. */
static void test_store_s3_many_threads_open_and_use_stores_at_once(void **state)
{
    (void)state;
    enum { N = 8 };
    int port = local_port(false, NULL);
    pthread_t th[N];
    struct open_arg args[N];
    for (int i = 0; i < N; i++) {
        snprintf(args[i].url, sizeof args[i].url,
                 "s3://bucket-%d?endpoint=127.0.0.1:%d&tls=0&retries=0", i, port);
        pthread_create(&th[i], NULL, open_and_get, &args[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].open_rc, 0);
        assert_int_equal(args[i].get_rc, PIPE_EUNAVAIL);
    }
}

static void test_store_s3_open_rejects_malformed_urls_with_a_reason(void **state)
{
    (void)state;
    static const struct {
        const char *url, *why;
    } bad[] = {
        {"s3:bucket", "s3://BUCKET"},
        {"s3://", "no bucket"},
        {"s3:///prefix", "no bucket"},
        {"s3://user:pw@bucket", "AWS_ACCESS_KEY_ID"},
        {"s3://bucket:9000/p", "endpoint="},
        {"s3://bucket/a//b", "prefix"},
        {"s3://bucket/.hidden", "prefix"},
        {"s3://bucket#frag", "s3://BUCKET"},
        {"s3://bucket?colour=blue", "unknown parameter \"colour\""},
        {"s3://bucket?style=sideways", "style=sideways"},
        {"s3://bucket?tls=2", "tls=2"},
        {"s3://bucket?tls=", "empty"},
        {"s3://bucket?retries=-1", "retries=-1"},
        {"s3://bucket?retries=many", "retries=many"},
        {"s3://bucket?retries=1000", "retries=1000"},
        {"s3://bucket?timeout=0", "timeout=0"},
        {"s3://bucket?endpoint=a/b", "endpoint=a/b"},
        {"s3://bucket?endpoint=host:", "endpoint=host:"},
        {"s3://bucket?endpoint=host:99999", "endpoint=host:99999"},
        {"s3://bucket?endpoint=:9000", "endpoint=:9000"},
        {"s3://bucket?region=EU%20West", "region="},
        {"s3://bucket?tls=0&tls=1", "given twice"},
        {"s3://Not_A_Bucket!", "bucket name"},
        {"s3://bucket?ca=/nonexistent/ca.pem", "ca=/nonexistent/ca.pem: cannot read"},
        {"s3://bucket?tls=0&ca=/etc/hostname", "ca= needs tls=1"},
        {"s3://bucket?tls=0&tls_verify=0", "tls_verify= needs tls=1"},
        {"s3://bucket?tls_verify=2", "tls_verify=2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct pipe_store *s = NULL;
        int rc = pipe_store_open(bad[i].url, &s);
        if (rc != PIPE_ECONFIG || strstr(pipe_store_last_error(NULL), bad[i].why) == NULL)
            fail_msg("%s: rc %d, \"%s\" (want ECONFIG mentioning \"%s\")", bad[i].url, rc,
                     pipe_store_last_error(NULL), bad[i].why);
        assert_null(s);
    }
}

static void test_store_s3_open_accepts_options_and_reports_caps(void **state)
{
    (void)state;
    static const char *const good[] = {
        "s3://bucket",
        "s3://bucket/",
        "s3://bucket/some/prefix/",
        "s3://my.bucket-1/p?endpoint=minio.local:9000&region=eu-west-1&style=virtual&tls=1"
        "&retries=0&timeout=250",
        "s3://Path_Style_OK?endpoint=127.0.0.1:9000&style=path",
        "s3://bucket?endpoint=[::1]:9000",
        "s3://bucket?endpoint=[::1]",
        "s3://bucket?ca=/etc/hostname&tls_verify=1",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        struct pipe_store *s = open_ok(good[i]);
        assert_true(pipe_store_has(s, PIPE_STORE_CAP_ATOMIC_PUT | PIPE_STORE_CAP_MTIME));
        assert_false(pipe_store_has(s, PIPE_STORE_CAP_FSYNC));
        /* nothing secret is in an s3 URL, so it is shown as given */
        assert_string_equal(pipe_store_url(s), good[i]);
        pipe_store_free(s);
    }
}

static void test_store_s3_open_names_the_missing_credential_variable(void **state)
{
    (void)state;
    static const char *const vars[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"};
    for (size_t i = 0; i < 2; i++) {
        for (int empty = 0; empty < 2; empty++) {
            char *saved = swap_env(vars[i], empty ? "" : NULL);
            struct pipe_store *s = NULL;
            int rc = pipe_store_open("s3://bucket", &s);
            const char *msg = pipe_store_last_error(NULL);
            restore_env(vars[i], saved);
            assert_int_equal(rc, PIPE_ECONFIG);
            assert_non_null(strstr(msg, vars[i]));
            assert_non_null(strstr(msg, "not set"));
        }
    }
}

static void test_store_s3_open_without_any_credentials_says_what_was_tried(void **state)
{
    (void)state;
    char *id = swap_env("AWS_ACCESS_KEY_ID", NULL);
    char *secret = swap_env("AWS_SECRET_ACCESS_KEY", NULL);
    char *file = swap_env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/sluice-credentials");
    struct pipe_store *s = NULL;
    int rc = pipe_store_open("s3://bucket", &s);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", pipe_store_last_error(NULL));
    restore_env("AWS_SHARED_CREDENTIALS_FILE", file);
    restore_env("AWS_SECRET_ACCESS_KEY", secret);
    restore_env("AWS_ACCESS_KEY_ID", id);
    assert_int_equal(rc, PIPE_ECONFIG);
    assert_null(s);
    assert_non_null(strstr(msg, "no AWS credentials found"));
    assert_non_null(strstr(msg, "AWS_WEB_IDENTITY_TOKEN_FILE"));
    assert_non_null(strstr(msg, "instance metadata"));
}

static void test_store_s3_refused_endpoint_is_unavailable_after_retries(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "s3://bucket/p?endpoint=127.0.0.1:%d&tls=0&retries=1",
             local_port(false, NULL));
    struct pipe_store *s = open_ok(url);
    int64_t t0 = pipe_clock_mono_ms();
    struct pipe_buf b;
    pipe_buf_init(&b, 100);
    pipe_buf_append_str(&b, "keep");
    struct pipe_store_obj o;
    struct pipe_store_list l = {0};
    int rcs[] = {
        pipe_store_put(s, "k", "x", 1),       pipe_store_get(s, "k", &b),
        pipe_store_stat(s, "k", &o),          pipe_store_delete(s, "k"),
        pipe_store_list(s, "", NULL, 10, &l),
    };
    for (size_t i = 0; i < sizeof rcs / sizeof *rcs; i++) {
        assert_int_equal(rcs[i], PIPE_EUNAVAIL);
        assert_true(pipe_err_is_transient(rcs[i]));
    }
    const char *msg = pipe_store_last_error(s); /* the list's */
    assert_non_null(strstr(msg, "after 2 attempts"));
    assert_non_null(strstr(msg, "127.0.0.1"));
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    assert_null(l.items);
    /* 5 operations, each one backoff of at most 50 ms */
    assert_true(pipe_clock_mono_ms() - t0 < 1500);
    uint64_t req, err;
    pipe_store_counters(s, PIPE_STORE_OP_GET, &req, &err);
    assert_int_equal(req, 1);
    assert_int_equal(err, 1);
    pipe_buf_cleanup(&b);
    pipe_store_free(s);
}

/* Full jitter draws each wait from [0, min(2 s, 50 ms * 2^attempt)]: with
 * retries=2 that is [0, 50] + [0, 100] ms per call. */
static void test_store_s3_retry_waits_follow_capped_jittered_backoff(void **state)
{
    (void)state;
    enum { CALLS = 8 };
    int port = local_port(false, NULL);
    int64_t took[2];
    for (int retries = 0; retries <= 2; retries += 2) {
        char url[128];
        snprintf(url, sizeof url, "s3://bucket?endpoint=127.0.0.1:%d&tls=0&retries=%d", port,
                 retries);
        struct pipe_store *s = open_ok(url);
        struct pipe_store_obj o;
        int64_t t0 = pipe_clock_mono_ms();
        for (int i = 0; i < CALLS; i++)
            assert_int_equal(pipe_store_stat(s, "k", &o), PIPE_EUNAVAIL);
        took[retries / 2] = pipe_clock_mono_ms() - t0;
        pipe_store_free(s);
    }
    /* No retries: no waits. With two: 8 * 75 ms expected; at least 60 ms
     * unless sixteen uniform draws all come out tiny, at most 8 * 150 ms
     * plus the refused connects. */
    assert_true(took[0] < 200);
    assert_true(took[1] >= 60);
    assert_true(took[1] < CALLS * 150 + 400);
}

static void test_store_s3_silent_server_times_out_instead_of_hanging(void **state)
{
    (void)state;
    int fd = -1;
    char url[128];
    snprintf(url, sizeof url, "s3://bucket?endpoint=127.0.0.1:%d&tls=0&retries=1&timeout=150",
             local_port(true, &fd));
    struct pipe_store *s = open_ok(url);
    struct pipe_buf b;
    pipe_buf_init(&b, 100);
    int64_t t0 = pipe_clock_mono_ms();
    assert_int_equal(pipe_store_get(s, "k", &b), PIPE_EUNAVAIL);
    int64_t took = pipe_clock_mono_ms() - t0;
    assert_true(took >= 2 * 150);
    assert_true(took < 10000); /* it does not hang */
    assert_non_null(strstr(pipe_store_last_error(s), "no response"));
    assert_int_equal(b.len, 0);
    /* the thread's connection state was reset: the next request works the same */
    assert_int_equal(pipe_store_delete(s, "k"), PIPE_EUNAVAIL);
    pipe_buf_cleanup(&b);
    pipe_store_free(s);
    close(fd);
}

static void test_store_s3_key_too_long_with_prefix_fails_before_any_request(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "s3://bucket/prefix?endpoint=127.0.0.1:%d&tls=0&retries=0",
             local_port(false, NULL));
    struct pipe_store *s = open_ok(url);
    char key[PIPE_STORE_KEY_MAX + 1];
    memset(key, 'k', PIPE_STORE_KEY_MAX - 3);
    key[PIPE_STORE_KEY_MAX - 3] = '\0'; /* valid as a store key, too long with "prefix/" */
    assert_int_equal(pipe_store_put(s, key, "x", 1), PIPE_EINVAL);
    assert_non_null(strstr(pipe_store_last_error(s), "S3 allows 1024"));
    key[1024 - strlen("prefix/")] = '\0'; /* exactly 1024 with the prefix: goes out */
    assert_int_equal(pipe_store_put(s, key, "x", 1), PIPE_EUNAVAIL);
    pipe_store_free(s);
}

/* A one-answer HTTP server on a thread: every connection gets the same
 * canned response, then is closed; it counts the connections it served. */
struct fake {
    int fd;
    const char *response;
    atomic_int served;
    pthread_t th;
    char first[8192]; /* the head of the first request, once served > 0 */
};

static void *fake_loop(void *p)
{
    struct fake *f = p;
    for (;;) {
        int c = accept(f->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char req[8192];
        size_t got = 0;
        while (got < sizeof req - 1) { /* up to the end of the headers */
            ssize_t n = recv(c, req + got, sizeof req - 1 - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
            req[got] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        if (atomic_load(&f->served) == 0)
            memcpy(f->first, req, got + 1);
        atomic_fetch_add(&f->served, 1); /* before the client can see the answer */
        send(c, f->response, strlen(f->response), MSG_NOSIGNAL);
        close(c);
    }
}

static char *fake_start(struct fake *f, const char *response, const char *opts)
{
    f->response = response;
    atomic_init(&f->served, 0);
    int port = local_port(true, &f->fd);
    pthread_create(&f->th, NULL, fake_loop, f);
    return pipe_asprintf("s3://bucket/p?endpoint=127.0.0.1:%d&tls=0&%s", port, opts);
}

static void fake_stop(struct fake *f, char *url)
{
    shutdown(f->fd, SHUT_RDWR); /* wakes accept */
    pthread_join(f->th, NULL);
    close(f->fd);
    pipe_free(url);
}

/* An S3 error response with an XML body (caller frees). */
static char *xml_error(const char *status, const char *code, const char *msg)
{
    char *body = pipe_asprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
                               "<Message>%s</Message></Error>",
                               code, msg);
    char *r = pipe_asprintf("HTTP/1.1 %s\r\nContent-Type: application/xml\r\nConnection: close\r\n"
                            "Content-Length: %zu\r\n\r\n%s",
                            status, strlen(body), body);
    pipe_free(body);
    return r;
}

static void test_store_s3_body_cut_short_is_retried_then_unavailable(void **state)
{
    (void)state;
    struct fake f;
    char *url = fake_start(&f,
                           "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n"
                           "ETag: \"e\"\r\n\r\n0123456789",
                           "retries=2");
    struct pipe_store *s = open_ok(url);
    struct pipe_buf b;
    pipe_buf_init(&b, 1000);
    pipe_buf_append_str(&b, "keep");
    assert_int_equal(pipe_store_get(s, "k", &b), PIPE_EUNAVAIL);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    assert_non_null(strstr(pipe_store_last_error(s), "cut short: 10 of 100 bytes"));
    assert_int_equal(atomic_load(&f.served), 3);
    pipe_buf_cleanup(&b);
    pipe_store_free(s);
    fake_stop(&f, url);
}

static void test_store_s3_throttling_is_retried_then_unavailable(void **state)
{
    (void)state;
    struct fake f;
    char *resp = xml_error("503 Slow Down", "SlowDown", "Please reduce your request rate.");
    char *url = fake_start(&f, resp, "retries=2");
    struct pipe_store *s = open_ok(url);
    assert_int_equal(pipe_store_put(s, "k", "v", 1), PIPE_EUNAVAIL);
    const char *msg = pipe_store_last_error(s);
    assert_non_null(strstr(msg, "put k: S3 error SlowDown (HTTP 503): Please reduce"));
    assert_non_null(strstr(msg, "after 3 attempts"));
    assert_int_equal(atomic_load(&f.served), 3);
    pipe_store_free(s);
    fake_stop(&f, url);
    pipe_free(resp);
}

static void test_store_s3_permanent_errors_map_to_codes_without_retry(void **state)
{
    (void)state;
    static const struct {
        const char *status, *code, *msg;
        int rc;
        const char *want;
    } cases[] = {
        {"403 Forbidden", "AccessDenied", "Access Denied", PIPE_ECONFIG,
         "get k: S3 error AccessDenied (HTTP 403): Access Denied [bucket \"bucket\""},
        {"403 Forbidden", "InvalidAccessKeyId", "No such key id", PIPE_ECONFIG,
         "S3 error InvalidAccessKeyId (HTTP 403)"},
        {"403 Forbidden", "SignatureDoesNotMatch", "Bad signature", PIPE_ECONFIG,
         "S3 error SignatureDoesNotMatch (HTTP 403)"},
        {"404 Not Found", "NoSuchBucket", "The specified bucket does not exist", PIPE_ECONFIG,
         "S3 error NoSuchBucket (HTTP 404): The specified bucket does not exist [bucket"},
        {"404 Not Found", "NoSuchKey", "The specified key does not exist.", PIPE_ENOTFOUND,
         "get k: S3 error NoSuchKey (HTTP 404)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct fake f;
        char *resp = xml_error(cases[i].status, cases[i].code, cases[i].msg);
        char *url = fake_start(&f, resp, "retries=3");
        struct pipe_store *s = open_ok(url);
        struct pipe_buf b;
        pipe_buf_init(&b, 100);
        assert_int_equal(pipe_store_get(s, "k", &b), cases[i].rc);
        if (strstr(pipe_store_last_error(s), cases[i].want) == NULL)
            fail_msg("%s: got \"%s\"", cases[i].code, pipe_store_last_error(s));
        assert_int_equal(atomic_load(&f.served), 1); /* not retried */
        if (cases[i].rc == PIPE_ENOTFOUND)
            assert_int_equal(pipe_store_delete(s, "k"), 0);
        pipe_buf_cleanup(&b);
        pipe_store_free(s);
        fake_stop(&f, url);
        pipe_free(resp);
    }
}

/* The value of header name (lower case) in the fake's first request. */
static char *first_header(const struct fake *f, const char *name)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\r\n%s: ", name);
    const char *p = strcasestr(f->first, pat);
    if (p == NULL)
        return NULL;
    p += strlen(pat);
    return pipe_strndup(p, strcspn(p, "\r\n"));
}

static const char *const ok_204 = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";

static void test_store_s3_keys_are_percent_encoded_on_the_wire(void **state)
{
    (void)state;
    struct fake f;
    char *url = fake_start(&f, ok_204, "retries=0");
    struct pipe_store *s = open_ok(url);
    assert_int_equal(pipe_store_delete(s, "dir/a b+c%d=e\xc3\xa9~_.-"), 0);
    assert_non_null(strstr(f.first, "DELETE /bucket/p/dir/a%20b%2Bc%25d%3De%C3%A9~_.- HTTP/1.1"));
    char *sha = first_header(&f, "x-amz-content-sha256");
    assert_non_null(sha);
    assert_string_equal(sha, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    pipe_free(sha);
    pipe_store_free(s);
    fake_stop(&f, url);
}

static void test_store_s3_session_token_is_sent_and_signed(void **state)
{
    (void)state;
    char *saved = swap_env("AWS_SESSION_TOKEN", "FwoGZXIvYXdzE/x+y=");
    struct fake f;
    char *url = fake_start(&f, ok_204, "retries=0");
    struct pipe_store *s = open_ok(url);
    int rc = pipe_store_delete(s, "k");
    restore_env("AWS_SESSION_TOKEN", saved);
    assert_int_equal(rc, 0);
    char *tok = first_header(&f, "x-amz-security-token");
    char *auth = first_header(&f, "authorization");
    assert_non_null(tok);
    assert_string_equal(tok, "FwoGZXIvYXdzE/x+y=");
    assert_non_null(auth);
    assert_non_null(strstr(auth, "SignedHeaders=host;x-amz-content-sha256;x-amz-date;"
                                 "x-amz-security-token, Signature="));
    pipe_free(tok);
    pipe_free(auth);
    pipe_store_free(s);
    fake_stop(&f, url);
}

static void test_store_s3_shared_credentials_file_profile_is_used(void **state)
{
    (void)state;
    char path[] = "/tmp/sluice-creds-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = d\n"
                       "\n# a comment\n[ other ]\naws_access_key_id=OTHERKEY\n"
                       "aws_secret_access_key=o/t+h=er\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char *id = swap_env("AWS_ACCESS_KEY_ID", NULL);
    char *secret = swap_env("AWS_SECRET_ACCESS_KEY", NULL);
    char *file = swap_env("AWS_SHARED_CREDENTIALS_FILE", path);
    char *profile = swap_env("AWS_PROFILE", "other");
    struct fake f;
    char *url = fake_start(&f, ok_204, "retries=0");
    struct pipe_store *s = NULL;
    int rc = pipe_store_open(url, &s);
    if (rc == 0)
        rc = pipe_store_delete(s, "k");
    restore_env("AWS_PROFILE", profile);
    restore_env("AWS_SHARED_CREDENTIALS_FILE", file);
    restore_env("AWS_SECRET_ACCESS_KEY", secret);
    restore_env("AWS_ACCESS_KEY_ID", id);
    unlink(path);
    assert_int_equal(rc, 0);
    char *auth = first_header(&f, "authorization");
    assert_non_null(auth);
    assert_non_null(strstr(auth, "Credential=OTHERKEY/"));
    pipe_free(auth);
    pipe_store_free(s);
    fake_stop(&f, url);
}

/* ---- against a server (SLUICE_TEST_S3_URL) --------------------------- */

/* The test URL with "/SUB" appended to its path (before any query). */
static char *live_url(const char *sub)
{
    const char *base = getenv("SLUICE_TEST_S3_URL");
    if (base == NULL || *base == '\0')
        return NULL;
    size_t path = strcspn(base, "?");
    size_t end = path;
    while (end > 5 && base[end - 1] == '/')
        end--;
    return pipe_asprintf("%.*s/%s%s", (int)end, base, sub, base + path);
}

static struct pipe_store *live_open(const char *name, char **prefix_url)
{
    char *sub =
        pipe_asprintf("unit-%ld-%lld-%s", (long)getpid(), (long long)pipe_clock_now_ms(), name);
    char *url = live_url(sub);
    pipe_free(sub);
    if (url == NULL)
        return NULL;
    struct pipe_store *s = open_ok(url);
    if (prefix_url)
        *prefix_url = url;
    else
        pipe_free(url);
    return s;
}

static void wipe(struct pipe_store *s)
{
    for (;;) {
        struct pipe_store_list l = {0};
        assert_int_equal(pipe_store_list(s, "", NULL, 1000, &l), 0);
        for (size_t i = 0; i < l.count; i++)
            assert_int_equal(pipe_store_delete(s, l.items[i].key), 0);
        size_t n = l.count;
        pipe_store_list_cleanup(&l);
        if (n == 0)
            return;
    }
}

static void test_store_s3_get_over_cap_aborts_and_restores_len(void **state)
{
    (void)state;
    struct pipe_store *s = live_open("cap", NULL);
    if (s == NULL)
        skip();
    size_t n = 256 * 1024;
    char *data = pipe_malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 31);
    assert_int_equal(pipe_store_put(s, "big", data, n), 0);
    struct pipe_buf b;
    pipe_buf_init(&b, 3 + n - 1);
    pipe_buf_append_str(&b, "abc");
    assert_int_equal(pipe_store_get(s, "big", &b), PIPE_ETOOBIG);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "abc");
    assert_non_null(strstr(pipe_store_last_error(s), "cap"));
    b.max = 3 + n;
    assert_int_equal(pipe_store_get(s, "big", &b), 0);
    assert_int_equal(b.len, 3 + n);
    assert_memory_equal(b.data + 3, data, n);
    pipe_buf_cleanup(&b);
    pipe_free(data);
    wipe(s);
    pipe_store_free(s);
}

static void test_store_s3_etag_changes_on_rewrite_and_matches_listing(void **state)
{
    (void)state;
    struct pipe_store *s = live_open("etag", NULL);
    if (s == NULL)
        skip();
    struct pipe_store_obj o1, o2, o3;
    assert_int_equal(pipe_store_put(s, "k", "one", 3), 0);
    assert_int_equal(pipe_store_stat(s, "k", &o1), 0);
    assert_int_equal(pipe_store_put(s, "k", "two!", 4), 0);
    assert_int_equal(pipe_store_stat(s, "k", &o2), 0);
    assert_string_not_equal(o1.etag, o2.etag);
    assert_int_equal(o2.size, 4);
    assert_null(strchr(o2.etag, '"')); /* S3's quotes are stripped */
    /* S3's etag is the content's MD5: identical bytes, identical etag */
    assert_int_equal(pipe_store_put(s, "k", "one", 3), 0);
    assert_int_equal(pipe_store_stat(s, "k", &o3), 0);
    assert_string_equal(o1.etag, o3.etag);

    struct pipe_store_list l = {0};
    assert_int_equal(pipe_store_list(s, "", NULL, 10, &l), 0);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].key, "k");
    assert_string_equal(l.items[0].etag, o3.etag);
    assert_int_equal(l.items[0].size, 3);
    assert_int_equal(l.items[0].mtime_ms, o3.mtime_ms);
    assert_int_equal(o3.mtime_ms % 1000, 0); /* S3 times have second resolution */
    assert_true(o3.mtime_ms > pipe_clock_now_ms() - 600000);
    pipe_store_list_cleanup(&l);
    wipe(s);
    pipe_store_free(s);
}

static void test_store_s3_prefix_is_added_and_stripped(void **state)
{
    (void)state;
    char *url = NULL;
    struct pipe_store *parent = live_open("prefix", &url);
    if (parent == NULL)
        skip();
    size_t q = strcspn(url, "?");
    char *sub_url = pipe_asprintf("%.*s/sub/%s", (int)q, url, url + q);
    struct pipe_store *sub = open_ok(sub_url);
    assert_int_equal(pipe_store_put(sub, "a/b", "in", 2), 0);
    assert_int_equal(pipe_store_put(parent, "outside", "out", 3), 0);
    assert_int_equal(pipe_store_put(parent, "sub-not", "out", 3), 0);

    struct pipe_store_list l = {0};
    assert_int_equal(pipe_store_list(sub, "", NULL, 10, &l), 0);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].key, "a/b");
    assert_string_equal(l.next_marker, "a/b");
    pipe_store_list_cleanup(&l);
    struct pipe_store_obj o;
    assert_int_equal(pipe_store_stat(parent, "sub/a/b", &o), 0);
    assert_int_equal(o.size, 2);
    assert_int_equal(pipe_store_stat(sub, "outside", &o), PIPE_ENOTFOUND);
    wipe(sub);
    wipe(parent);
    pipe_store_free(sub);
    pipe_store_free(parent);
    pipe_free(sub_url);
    pipe_free(url);
}

enum { MANY = 1010, WORKERS = 16 };

struct many_arg {
    struct pipe_store *s;
    int id;
    bool del;
    int failures;
};

static void *many_worker(void *p)
{
    struct many_arg *a = p;
    for (int i = a->id; i < MANY; i += WORKERS) {
        char k[32];
        snprintf(k, sizeof k, "m/k%04d", i);
        int rc = a->del ? pipe_store_delete(a->s, k) : pipe_store_put(a->s, k, k, strlen(k));
        a->failures += rc < 0;
    }
    return NULL;
}

static void run_many(struct pipe_store *s, bool del)
{
    pthread_t th[WORKERS];
    struct many_arg args[WORKERS];
    for (int t = 0; t < WORKERS; t++) {
        args[t] = (struct many_arg){.s = s, .id = t, .del = del};
        pthread_create(&th[t], NULL, many_worker, &args[t]);
    }
    for (int t = 0; t < WORKERS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].failures, 0);
    }
}

static void check_run(const struct pipe_store_list *l, int first, size_t n)
{
    assert_int_equal(l->count, n);
    for (size_t i = 0; i < n; i++) {
        char k[32];
        snprintf(k, sizeof k, "m/k%04d", first + (int)i);
        assert_string_equal(l->items[i].key, k);
        assert_int_equal(l->items[i].size, strlen(k));
    }
}

static void test_store_s3_list_spans_several_s3_pages(void **state)
{
    (void)state;
    struct pipe_store *s = live_open("many", NULL);
    if (s == NULL)
        skip();
    run_many(s, false);
    struct pipe_store_list l = {0};
    assert_int_equal(pipe_store_list(s, "m/", NULL, 5000, &l), 0);
    check_run(&l, 0, MANY);
    assert_false(l.truncated);
    pipe_store_list_cleanup(&l);

    assert_int_equal(pipe_store_list(s, "m/", NULL, 1005, &l), 0);
    check_run(&l, 0, 1005);
    assert_true(l.truncated);
    assert_string_equal(l.next_marker, "m/k1004");
    char *marker = pipe_strdup(l.next_marker);
    pipe_store_list_cleanup(&l);
    assert_int_equal(pipe_store_list(s, "m/", marker, 1005, &l), 0);
    check_run(&l, 1005, MANY - 1005);
    assert_false(l.truncated);
    pipe_store_list_cleanup(&l);
    pipe_free(marker);

    run_many(s, true);
    assert_int_equal(pipe_store_list(s, "", NULL, 10, &l), 0);
    assert_int_equal(l.count, 0);
    pipe_store_list_cleanup(&l);
    pipe_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_s3_many_threads_open_and_use_stores_at_once),
        cmocka_unit_test(test_store_s3_open_rejects_malformed_urls_with_a_reason),
        cmocka_unit_test(test_store_s3_open_accepts_options_and_reports_caps),
        cmocka_unit_test(test_store_s3_open_names_the_missing_credential_variable),
        cmocka_unit_test(test_store_s3_open_without_any_credentials_says_what_was_tried),
        cmocka_unit_test(test_store_s3_refused_endpoint_is_unavailable_after_retries),
        cmocka_unit_test(test_store_s3_retry_waits_follow_capped_jittered_backoff),
        cmocka_unit_test(test_store_s3_silent_server_times_out_instead_of_hanging),
        cmocka_unit_test(test_store_s3_key_too_long_with_prefix_fails_before_any_request),
        cmocka_unit_test(test_store_s3_body_cut_short_is_retried_then_unavailable),
        cmocka_unit_test(test_store_s3_throttling_is_retried_then_unavailable),
        cmocka_unit_test(test_store_s3_permanent_errors_map_to_codes_without_retry),
        cmocka_unit_test(test_store_s3_keys_are_percent_encoded_on_the_wire),
        cmocka_unit_test(test_store_s3_session_token_is_sent_and_signed),
        cmocka_unit_test(test_store_s3_shared_credentials_file_profile_is_used),
        cmocka_unit_test(test_store_s3_get_over_cap_aborts_and_restores_len),
        cmocka_unit_test(test_store_s3_etag_changes_on_rewrite_and_matches_listing),
        cmocka_unit_test(test_store_s3_prefix_is_added_and_stripped),
        cmocka_unit_test(test_store_s3_list_spans_several_s3_pages),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
