/* store_s3 — the `s3://` store backend: objects in an S3 bucket (AWS, MinIO,
 * Ceph RGW, GCS interop, s3rver), through libs3, optionally under a key
 * prefix that listings strip again. The handle holds only read-only
 * configuration; each thread drives its own libs3 request context, so a
 * handle is safe to share between threads.
 *
 * URL: s3://BUCKET[/PREFIX][?endpoint=HOST[:PORT]&region=R&style=path|virtual
 *      &tls=0|1&retries=N&timeout=MS]
 * Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and, with
 * libs3 4.x only, AWS_SESSION_TOKEN), read once at open; never from the URL.
 *
 * libs3 versions. Debian's libs3 2.0 signs with Signature V2 and has no
 * region, session token or per-request timeout. Upstream 4.x (Signature V4;
 * detected by the Makefile, which then defines PIPE_HAVE_LIBS3_4) adds
 * authRegion and securityToken to S3BucketContext and a timeoutMs argument to
 * every request. The differences live in the s3w_* wrappers only.
 *
 * Bounding a request. Each thread keeps one S3RequestContext (a curl multi
 * handle, so connections are reused between requests) and runs its request
 * with its own select() loop: a request that shows no sign of life (no
 * header, body chunk, upload chunk or listing batch) for `timeout` ms is
 * abandoned by destroying the context. libs3 itself (2.0 and 4.x) aborts a
 * transfer slower than 1 KiB/s for 15 s, so a request that keeps progressing
 * ends too: every object and listing page is finite. The 4.x timeoutMs
 * argument is passed as 0 (none) so that both builds behave the same.
 *
 * Retries. Transient failures (connection refused/reset, DNS, timeouts,
 * HTTP 5xx, SlowDown, truncated bodies) are retried `retries` times with
 * capped exponential backoff and full jitter, then reported as
 * PIPE_EUNAVAIL. Put, get, stat, delete and one listing page are each
 * idempotent, so a retry cannot do harm.
 *
 * Differences from file://: the etag is S3's (the MD5 of a single-part
 * object), so rewriting identical bytes keeps it; mtime has one-second
 * resolution; there is no PIPE_STORE_CAP_FSYNC, because the durability of an
 * acknowledged put is the server's business (AWS: durable, s3rver: not
 * fsynced). Keys the front end would reject (folder markers such as "raw/",
 * "a//b") are left out of listings. S3 limits a key to 1024 bytes including
 * the prefix, so with a prefix the longest store key is shorter. libs3 takes
 * a response body cut short for a complete one: get checks the length
 * against Content-Length and retries, but a listing page cut short cannot be
 * told from a shorter one (the next listing sees the rest). */
#include <errno.h>
#include <libs3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "libpipe/backoff.h"
#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/store_int.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

#define S3_DEFAULT_RETRIES    5
#define S3_MAX_RETRIES        20
#define S3_DEFAULT_TIMEOUT_MS 30000
#define S3_MIN_TIMEOUT_MS     10
#define S3_MAX_TIMEOUT_MS     3600000
#define S3_BACKOFF_BASE_MS    50
#define S3_BACKOFF_CAP_MS     2000
#define S3_PAGE_MAX           1000 /* S3 never returns more keys per request */
#define S3_POLL_MS            10   /* wait when curl has no socket to select on yet */
#define S3_PREFIX_MAX         512
#define S3_ERRMSG_MAX         300

struct s3_store {
    S3BucketContext bucket; /* read-only after open: shared by all threads */
    char *bucket_name;
    char *host;
    char *region; /* NULL: libs3's default (4.x); unused by 2.0 */
    char *prefix; /* "" or "some/prefix/" */
    size_t prefix_len;
    char *key_id, *secret, *token;
    int retries;
    int timeout_ms;
};

/* ---- libs3 version wrappers ------------------------------------------ */

static S3Status s3w_initialize(void)
{
    const char *ua = "sluice/" SLUICE_VERSION;
#if defined(PIPE_HAVE_LIBS3_4) && defined(S3_INIT_VERIFY_PEER)
    /* 4.x skips certificate checks unless asked; 2.0 cannot be asked. */
    return S3_initialize(ua, S3_INIT_ALL | S3_INIT_VERIFY_PEER, S3_DEFAULT_HOSTNAME);
#else
    return S3_initialize(ua, S3_INIT_ALL, S3_DEFAULT_HOSTNAME);
#endif
}

static void s3w_bucket_init(struct s3_store *st, bool tls, bool path_style)
{
    memset(&st->bucket, 0, sizeof st->bucket);
    st->bucket.hostName = st->host;
    st->bucket.bucketName = st->bucket_name;
    st->bucket.protocol = tls ? S3ProtocolHTTPS : S3ProtocolHTTP;
    st->bucket.uriStyle = path_style ? S3UriStylePath : S3UriStyleVirtualHost;
    st->bucket.accessKeyId = st->key_id;
    st->bucket.secretAccessKey = st->secret;
#ifdef PIPE_HAVE_LIBS3_4
    st->bucket.securityToken = st->token;
    st->bucket.authRegion = st->region;
#endif
}

static void s3w_context_setup(S3RequestContext *ctx)
{
#if defined(PIPE_HAVE_LIBS3_4) && defined(S3_INIT_VERIFY_PEER)
    S3_set_request_context_verify_peer(ctx, 1);
#else
    (void)ctx;
#endif
}

static void s3w_put(const struct s3_store *st, const char *key, uint64_t len, S3RequestContext *ctx,
                    const S3PutObjectHandler *h, void *arg)
{
#ifdef PIPE_HAVE_LIBS3_4
    S3_put_object(&st->bucket, key, len, NULL, ctx, 0, h, arg);
#else
    S3_put_object(&st->bucket, key, len, NULL, ctx, h, arg);
#endif
}

static void s3w_get(const struct s3_store *st, const char *key, S3RequestContext *ctx,
                    const S3GetObjectHandler *h, void *arg)
{
#ifdef PIPE_HAVE_LIBS3_4
    S3_get_object(&st->bucket, key, NULL, 0, 0, ctx, 0, h, arg);
#else
    S3_get_object(&st->bucket, key, NULL, 0, 0, ctx, h, arg);
#endif
}

static void s3w_head(const struct s3_store *st, const char *key, S3RequestContext *ctx,
                     const S3ResponseHandler *h, void *arg)
{
#ifdef PIPE_HAVE_LIBS3_4
    S3_head_object(&st->bucket, key, ctx, 0, h, arg);
#else
    S3_head_object(&st->bucket, key, ctx, h, arg);
#endif
}

static void s3w_delete(const struct s3_store *st, const char *key, S3RequestContext *ctx,
                       const S3ResponseHandler *h, void *arg)
{
#ifdef PIPE_HAVE_LIBS3_4
    S3_delete_object(&st->bucket, key, ctx, 0, h, arg);
#else
    S3_delete_object(&st->bucket, key, ctx, h, arg);
#endif
}

static void s3w_list(const struct s3_store *st, const char *prefix, const char *marker,
                     int max_keys, S3RequestContext *ctx, const S3ListBucketHandler *h, void *arg)
{
#ifdef PIPE_HAVE_LIBS3_4
    S3_list_bucket(&st->bucket, prefix, marker, NULL, max_keys, ctx, 0, h, arg);
#else
    S3_list_bucket(&st->bucket, prefix, marker, NULL, max_keys, ctx, h, arg);
#endif
}

/* Transient statuses only one of the versions knows. */
static bool s3w_status_transient(S3Status st)
{
#ifdef PIPE_HAVE_LIBS3_4
    return st == S3StatusErrorServiceUnavailable;
#else
    (void)st;
    return false;
#endif
}

/* ---- global init and per-thread request contexts --------------------- */

static pthread_once_t s3_once = PTHREAD_ONCE_INIT;
static S3Status s3_init_status = S3StatusInternalError;
static pthread_key_t s3_ctx_key; /* this thread's S3RequestContext */

static void ctx_destroy(void *ctx)
{
    S3_destroy_request_context(ctx);
}

/* libs3 must be initialised exactly once, before any request, and
 * S3_initialize is not thread-safe: pthread_once serialises the first opens.
 * S3_deinitialize is never called, as other handles may still be in use. */
static void s3_init(void)
{
    s3_init_status = s3w_initialize();
    if (s3_init_status == S3StatusOK && pthread_key_create(&s3_ctx_key, ctx_destroy) != 0)
        s3_init_status = S3StatusInternalError;
}

static S3RequestContext *ctx_get(void)
{
    S3RequestContext *ctx = pthread_getspecific(s3_ctx_key);
    if (ctx == NULL && S3_create_request_context(&ctx) == S3StatusOK) {
        s3w_context_setup(ctx);
        pthread_setspecific(s3_ctx_key, ctx);
    }
    return ctx;
}

/* Destroying a context interrupts its pending request (libs3 completes it
 * with S3StatusInterrupted); the thread makes a new one next time. */
static void ctx_drop(S3RequestContext *ctx)
{
    pthread_setspecific(s3_ctx_key, NULL);
    S3_destroy_request_context(ctx);
}

/* ---- one request ------------------------------------------------------ */

struct s3_list_state;

/* What one request (one attempt) needs and returns. */
struct s3_req {
    struct s3_store *st;
    const char *key; /* the full S3 key (prefix included); NULL for a listing */
    S3Status status;
    bool done, timed_out;
    bool bad_response;   /* libs3 said OK but a check failed: message says why */
    int64_t progress_ms; /* monotonic time of the latest sign of life */
    char message[S3_ERRMSG_MAX];
    /* response properties (successful responses only) */
    bool have_props;
    uint64_t content_length;
    int64_t last_modified;
    char etag[sizeof((struct pipe_store_obj *)0)->etag];
    /* put */
    const char *data;
    size_t len, off;
    /* get */
    struct pipe_buf *out;
    size_t len0;
    bool too_big;
    /* list */
    struct s3_list_state *list;
};

typedef void (*s3_start_fn)(struct s3_req *r, S3RequestContext *ctx);

/* S3 etags are quoted ("\"abc\""); store etags are opaque tokens. */
static void copy_etag(char *dst, size_t size, const char *src)
{
    src = src ? src : "";
    size_t n = strlen(src);
    if (n >= 2 && src[0] == '"' && src[n - 1] == '"') {
        src++;
        n -= 2;
    }
    snprintf(dst, size, "%.*s", (int)n, src);
}

static S3Status on_props(const S3ResponseProperties *p, void *arg)
{
    struct s3_req *r = arg;
    r->progress_ms = pipe_clock_mono_ms();
    r->have_props = true;
    r->content_length = p->contentLength;
    r->last_modified = p->lastModified;
    copy_etag(r->etag, sizeof r->etag, p->eTag);
    return S3StatusOK;
}

static void on_complete(S3Status status, const S3ErrorDetails *d, void *arg)
{
    struct s3_req *r = arg;
    r->status = status;
    r->done = true;
    if (d && d->message)
        snprintf(r->message, sizeof r->message, "%s", d->message);
}

/* Runs the request that start issues on this thread's context until it
 * completes or has shown no sign of life for timeout_ms. */
static void run_request(struct s3_req *r, s3_start_fn start)
{
    S3RequestContext *ctx = ctx_get();
    if (ctx == NULL) { /* curl could not make a multi handle: try again later */
        r->status = S3StatusInternalError;
        r->done = true;
        return;
    }
    r->progress_ms = pipe_clock_mono_ms();
    start(r, ctx); /* may complete at once, e.g. on a key libs3 rejects */
    bool broken = false;
    while (!r->done) {
        int remaining = 0;
        if (S3_runonce_request_context(ctx, &remaining) != S3StatusOK ||
            (remaining == 0 && !r->done)) {
            broken = true;
            break;
        }
        if (r->done)
            break;
        int64_t left = r->progress_ms + r->st->timeout_ms - pipe_clock_mono_ms();
        if (left <= 0) {
            r->timed_out = true;
            break;
        }
        int64_t wait = S3_get_request_context_timeout(ctx);
        if (wait < 0 || wait > left)
            wait = left;
        fd_set rd, wr, ex;
        FD_ZERO(&rd);
        FD_ZERO(&wr);
        FD_ZERO(&ex);
        int maxfd = -1;
        if (S3_get_request_context_fdsets(ctx, &rd, &wr, &ex, &maxfd) != S3StatusOK) {
            broken = true;
            break;
        }
        /* No socket yet (resolving, or fds past FD_SETSIZE that curl leaves
         * out of the sets): poll briefly instead. */
        if (maxfd < 0 && wait > S3_POLL_MS)
            wait = S3_POLL_MS;
        struct timeval tv = {.tv_sec = wait / 1000, .tv_usec = (wait % 1000) * 1000};
        select(maxfd + 1, &rd, &wr, &ex, &tv); /* EINTR or not, run again */
    }
    /* A context in doubt is not reused. Dropping it completes a pending
     * request with S3StatusInterrupted, which is retried. */
    if (broken || !r->done)
        ctx_drop(ctx);
    if (!r->done) { /* libs3 completed it on drop; belt and braces */
        r->status = S3StatusInterrupted;
        r->done = true;
    }
}

/* ---- errors and retries ---------------------------------------------- */

/* Whether retrying can help. libs3's own list misses throttling, bare 5xx
 * (HttpErrorUnknown covers 502 and 504) and curl errors such as a reset
 * connection, which libs3 reports as S3StatusInternalError. */
static bool status_transient(S3Status st)
{
    switch (st) {
    case S3StatusInternalError:
    case S3StatusInterrupted:
    case S3StatusErrorSlowDown:
    case S3StatusErrorIncompleteBody:
    case S3StatusHttpErrorUnknown:
        return true;
    default:
        return S3_status_is_retryable(st) || s3w_status_transient(st);
    }
}

/* How each S3 failure that is not transient maps to a PIPE_E* code (any
 * other: PIPE_EIO), and the HTTP status S3 documents for it. libs3 does not
 * report the status it received, but derives the S3Status from the error
 * body or, without one, from the status itself, so the inverse is exact
 * for these. ECONFIG: fixed by configuration (credentials, policy, endpoint,
 * bucket), not by waiting. */
static const struct {
    S3Status st;
    int rc;
    int http;
} s3_errors[] = {
    {S3StatusErrorNoSuchKey, PIPE_ENOTFOUND, 404},
    {S3StatusHttpErrorNotFound, PIPE_ENOTFOUND, 404},
    {S3StatusErrorNoSuchBucket, PIPE_ECONFIG, 404},
    {S3StatusErrorInvalidBucketName, PIPE_ECONFIG, 400},
    {S3StatusErrorPermanentRedirect, PIPE_ECONFIG, 301},
    {S3StatusHttpErrorMovedTemporarily, PIPE_ECONFIG, 301},
    {S3StatusErrorTemporaryRedirect, PIPE_ECONFIG, 307},
    {S3StatusErrorRedirect, PIPE_ECONFIG, 307},
    {S3StatusErrorAccessDenied, PIPE_ECONFIG, 403},
    {S3StatusHttpErrorForbidden, PIPE_ECONFIG, 403},
    {S3StatusErrorInvalidAccessKeyId, PIPE_ECONFIG, 403},
    {S3StatusErrorSignatureDoesNotMatch, PIPE_ECONFIG, 403},
    {S3StatusErrorRequestTimeTooSkewed, PIPE_ECONFIG, 403},
    {S3StatusErrorAccountProblem, PIPE_ECONFIG, 403},
    {S3StatusErrorNotSignedUp, PIPE_ECONFIG, 403},
    {S3StatusErrorInvalidSecurity, PIPE_ECONFIG, 403},
    {S3StatusErrorExpiredToken, PIPE_ECONFIG, 400},
    {S3StatusErrorInvalidToken, PIPE_ECONFIG, 400},
    {S3StatusErrorTokenRefreshRequired, PIPE_ECONFIG, 400},
    {S3StatusErrorCredentialsNotSupported, PIPE_ECONFIG, 400},
    {S3StatusErrorMissingSecurityHeader, PIPE_ECONFIG, 400},
    {S3StatusServerFailedVerification, PIPE_ECONFIG, 0},
    {S3StatusKeyTooLong, PIPE_EINVAL, 0},
    {S3StatusUriTooLong, PIPE_EINVAL, 0},
    {S3StatusErrorKeyTooLong, PIPE_EINVAL, 400},
    {S3StatusErrorInvalidURI, PIPE_EINVAL, 400},
    {S3StatusErrorInvalidArgument, PIPE_EINVAL, 400},
    {S3StatusErrorEntityTooLarge, PIPE_ETOOBIG, 400},
    {S3StatusHttpErrorBadRequest, PIPE_EIO, 400},
    {S3StatusErrorMethodNotAllowed, PIPE_EIO, 405},
    {S3StatusHttpErrorConflict, PIPE_EIO, 409},
    {S3StatusErrorMissingContentLength, PIPE_EIO, 411},
    {S3StatusErrorPreconditionFailed, PIPE_EIO, 412},
    {S3StatusErrorInvalidRange, PIPE_EIO, 416},
    {S3StatusErrorNotImplemented, PIPE_EIO, 501},
    /* transient ones, for the message */
    {S3StatusErrorRequestTimeout, PIPE_EUNAVAIL, 400},
    {S3StatusErrorIncompleteBody, PIPE_EUNAVAIL, 400},
    {S3StatusErrorOperationAborted, PIPE_EUNAVAIL, 409},
    {S3StatusErrorInternalError, PIPE_EUNAVAIL, 500},
    {S3StatusErrorSlowDown, PIPE_EUNAVAIL, 503},
};

static int status_rc(S3Status st, int *http)
{
    for (size_t i = 0; i < sizeof s3_errors / sizeof *s3_errors; i++)
        if (s3_errors[i].st == st) {
            *http = s3_errors[i].http;
            return s3_errors[i].rc;
        }
    *http = 0;
    return PIPE_EIO;
}

/* Records "OP KEY: S3 error CODE (HTTP n): message" or, for failures below
 * HTTP, "OP KEY: FailedToConnect to HOST" for the final failed attempt. */
static void set_s3_error(struct pipe_store *s, const char *op, const char *key,
                         const struct s3_req *r, int rc, int attempts)
{
    struct s3_store *st = s->priv;
    const char *name = S3_get_status_name(r->status);
    char what[512], tail[128] = "", hs[16] = "";
    int http = 0;
    status_rc(r->status, &http);
    if (http)
        snprintf(hs, sizeof hs, " (HTTP %d)", http);
    if (r->timed_out)
        snprintf(what, sizeof what, "no response from %s for %d ms", st->host, st->timeout_ms);
    else if (r->bad_response)
        snprintf(what, sizeof what, "bad response from %s: %s", st->host, r->message);
    else if (r->status < S3StatusErrorAccessDenied)
        snprintf(what, sizeof what, "%s (%s %s)", name, "talking to", st->host);
    else if (r->status >= S3StatusHttpErrorMovedTemporarily)
        snprintf(what, sizeof what, "HTTP %d without an S3 error body (%s)", http, name);
    else
        snprintf(what, sizeof what, "S3 error %s%s: %s",
                 strncmp(name, "Error", 5) == 0 ? name + 5 : name, hs,
                 r->message[0] ? r->message : "(no message)");
    if (rc == PIPE_ECONFIG)
        snprintf(tail, sizeof tail, " [bucket \"%s\" at %s]", st->bucket_name, st->host);
    else if (attempts > 1)
        snprintf(tail, sizeof tail, " (after %d attempts)", attempts);
    pipe__store_set_error(s, "%s %s: %s%s", op, key, what, tail);
}

/* Resets what one attempt of r produced, before the next one. */
typedef void (*s3_reset_fn)(struct s3_req *r);

/* Runs r until it succeeds, fails for good, or has used up its retries.
 * Returns 0 or the PIPE_E* code; the caller's checks of the response
 * (check, may be NULL) can turn a success into a transient failure. */
static int call(struct pipe_store *s, const char *op, const char *key, struct s3_req *r,
                s3_start_fn start, s3_reset_fn reset, int (*check)(struct s3_req *r))
{
    struct s3_store *st = s->priv;
    int rc = 0, http = 0, attempt = 0;
    bool transient = false;
    struct pipe_backoff wait = {0};
    for (;; attempt++) {
        if (reset)
            reset(r);
        r->done = r->timed_out = r->have_props = r->bad_response = false;
        r->status = S3StatusOK;
        r->message[0] = '\0';
        run_request(r, start);
        if (r->too_big) {
            rc = PIPE_ETOOBIG; /* the caller words this one */
            goto out;
        }
        if (r->status == S3StatusOK && check && check(r) < 0) {
            r->status = S3StatusInternalError;
            r->bad_response = true;
        }
        if (r->status == S3StatusOK)
            goto out;
        transient = r->timed_out || status_transient(r->status);
        if (!transient || attempt >= st->retries)
            break;
        if (attempt == 0) /* seeded on the first retry only: most calls need none */
            pipe_backoff_init(&wait, S3_BACKOFF_BASE_MS, S3_BACKOFF_CAP_MS);
        pipe_backoff_sleep(pipe_backoff_next(&wait));
    }
    rc = transient ? PIPE_EUNAVAIL : status_rc(r->status, &http);
    if (rc != PIPE_ENOTFOUND || strcmp(op, "delete") != 0)
        set_s3_error(s, op, key, r, rc, attempt + 1);
out:
    return rc;
}

/* The S3 key of a store key; PIPE_EINVAL past S3's 1024-byte limit. */
static int full_key(struct pipe_store *s, const char *op, const char *key, char *out)
{
    struct s3_store *st = s->priv;
    size_t n = st->prefix_len + strlen(key);
    if (n > S3_MAX_KEY_SIZE) {
        pipe__store_set_error(
            s, "%s %.200s...: S3 key \"%s%.20s...\" would be %zu bytes (S3 allows %d)", op, key,
            st->prefix, key, n, S3_MAX_KEY_SIZE);
        return PIPE_EINVAL;
    }
    memcpy(out, st->prefix, st->prefix_len);
    memcpy(out + st->prefix_len, key, n - st->prefix_len + 1);
    return 0;
}

/* ---- put / get / stat / delete --------------------------------------- */

static int on_put_data(int size, char *buf, void *arg)
{
    struct s3_req *r = arg;
    r->progress_ms = pipe_clock_mono_ms();
    size_t n = r->len - r->off;
    if (n > (size_t)size)
        n = (size_t)size;
    memcpy(buf, r->data + r->off, n);
    r->off += n;
    return (int)n;
}

static void start_put(struct s3_req *r, S3RequestContext *ctx)
{
    static const S3PutObjectHandler h = {{on_props, on_complete}, on_put_data};
    s3w_put(r->st, r->key, r->len, ctx, &h, r);
}

static void reset_put(struct s3_req *r)
{
    r->off = 0;
}

static int s3_put(struct pipe_store *s, const char *key, const void *data, size_t len)
{
    char fk[S3_MAX_KEY_SIZE + 1];
    int rc = full_key(s, "put", key, fk);
    if (rc < 0)
        return rc;
    struct s3_req r = {.st = s->priv, .key = fk, .data = data, .len = len};
    return call(s, "put", key, &r, start_put, reset_put, NULL);
}

static S3Status on_get_props(const S3ResponseProperties *p, void *arg)
{
    struct s3_req *r = arg;
    on_props(p, arg);
    /* Refuse an object over the cap before its body arrives; reserving the
     * room up front spares the buffer its doublings. */
    if (p->contentLength > r->out->max - r->out->len ||
        pipe_buf_reserve(r->out, (size_t)p->contentLength) < 0) {
        r->too_big = true;
        return S3StatusAbortedByCallback;
    }
    return S3StatusOK;
}

static S3Status on_get_data(int size, const char *buf, void *arg)
{
    struct s3_req *r = arg;
    r->progress_ms = pipe_clock_mono_ms();
    if (pipe_buf_append(r->out, buf, (size_t)size) < 0) {
        r->too_big = true;
        return S3StatusAbortedByCallback;
    }
    return S3StatusOK;
}

static void start_get(struct s3_req *r, S3RequestContext *ctx)
{
    static const S3GetObjectHandler h = {{on_get_props, on_complete}, on_get_data};
    s3w_get(r->st, r->key, ctx, &h, r);
}

static void reset_get(struct s3_req *r)
{
    r->out->len = r->len0;
    if (r->out->data)
        r->out->data[r->len0] = '\0';
}

/* libs3 treats a body cut short (CURLE_PARTIAL_FILE) as success, so the
 * length is checked here. A Content-Length of 0 may also mean "not sent"
 * (chunked), which cannot be checked. */
static int check_get(struct s3_req *r)
{
    size_t got = r->out->len - r->len0;
    if (r->content_length > 0 && got != r->content_length) {
        snprintf(r->message, sizeof r->message, "body cut short: %zu of %llu bytes", got,
                 (unsigned long long)r->content_length);
        return PIPE_EIO;
    }
    return 0;
}

static int s3_get(struct pipe_store *s, const char *key, struct pipe_buf *out)
{
    char fk[S3_MAX_KEY_SIZE + 1];
    int rc = full_key(s, "get", key, fk);
    if (rc < 0)
        return rc;
    struct s3_req r = {.st = s->priv, .key = fk, .out = out, .len0 = out->len};
    rc = call(s, "get", key, &r, start_get, reset_get, check_get);
    if (rc < 0)
        reset_get(&r);
    if (rc == PIPE_ETOOBIG)
        pipe__store_set_error(s, "get %s: object is larger than the buffer's cap (%zu bytes free)",
                              key, out->max - out->len);
    return rc;
}

static void start_head(struct s3_req *r, S3RequestContext *ctx)
{
    static const S3ResponseHandler h = {on_props, on_complete};
    s3w_head(r->st, r->key, ctx, &h, r);
}

static int check_props(struct s3_req *r)
{
    if (!r->have_props)
        snprintf(r->message, sizeof r->message, "response without headers");
    return r->have_props ? 0 : PIPE_EIO;
}

static int s3_stat(struct pipe_store *s, const char *key, struct pipe_store_obj *info)
{
    char fk[S3_MAX_KEY_SIZE + 1];
    int rc = full_key(s, "stat", key, fk);
    if (rc < 0)
        return rc;
    struct s3_req r = {.st = s->priv, .key = fk};
    rc = call(s, "stat", key, &r, start_head, NULL, check_props);
    if (rc < 0)
        return rc;
    info->size = r.content_length;
    info->mtime_ms = r.last_modified >= 0 ? r.last_modified * 1000 : 0;
    memcpy(info->etag, r.etag, sizeof info->etag);
    return 0;
}

static void start_delete(struct s3_req *r, S3RequestContext *ctx)
{
    static const S3ResponseHandler h = {on_props, on_complete};
    s3w_delete(r->st, r->key, ctx, &h, r);
}

static int s3_del(struct pipe_store *s, const char *key)
{
    char fk[S3_MAX_KEY_SIZE + 1];
    int rc = full_key(s, "delete", key, fk);
    if (rc < 0)
        return rc;
    struct s3_req r = {.st = s->priv, .key = fk};
    rc = call(s, "delete", key, &r, start_delete, NULL, NULL);
    return rc == PIPE_ENOTFOUND ? 0 : rc; /* S3 answers 204 anyway; some servers 404 */
}

/* ---- list ------------------------------------------------------------ */

/* A listing fetches S3 pages (at most 1000 keys each) until it has
 * max_keys items or S3 has no more. Without a delimiter S3 sends no
 * NextMarker, so the next page starts after the last key of this one,
 * counted whether or not it was kept. */
struct s3_list_state {
    struct pipe_store_list *out;
    size_t want; /* items wanted in out */
    size_t items_cap;
    size_t count0;                  /* out->count when this page started (for a retry) */
    bool truncated;                 /* S3 has more after this page */
    bool overflow;                  /* server sent more than asked: stop at want */
    bool saw_key;                   /* this page had at least one key */
    const char *marker;             /* S3 marker of this page, NULL for none */
    char last[S3_MAX_KEY_SIZE + 1]; /* last S3 key of this page */
    const char *s3_prefix;          /* NULL for none */
    const char *prefix;             /* the store's prefix, stripped from keys */
    size_t prefix_len;
};

static void list_add(struct s3_list_state *l, const S3ListBucketContent *c, const char *rel)
{
    struct pipe_store_list *out = l->out;
    if (out->count == l->items_cap) {
        l->items_cap = l->items_cap ? 2 * l->items_cap : 64;
        if (l->items_cap > l->want)
            l->items_cap = l->want;
        out->items = pipe_realloc(out->items, l->items_cap * sizeof *out->items);
    }
    struct pipe_store_obj *o = &out->items[out->count++];
    memset(o, 0, sizeof *o);
    o->key = pipe_strdup(rel);
    o->size = c->size;
    o->mtime_ms = c->lastModified >= 0 ? c->lastModified * 1000 : 0;
    copy_etag(o->etag, sizeof o->etag, c->eTag);
}

static S3Status on_list(int truncated, const char *next_marker, int n,
                        const S3ListBucketContent *contents, int n_prefixes, const char **prefixes,
                        void *arg)
{
    (void)next_marker; /* only sent with a delimiter, which we do not use */
    (void)n_prefixes;
    (void)prefixes;
    struct s3_req *r = arg;
    struct s3_list_state *l = r->list;
    r->progress_ms = pipe_clock_mono_ms();
    l->truncated = truncated != 0;
    for (int i = 0; i < n && !l->overflow; i++) {
        const char *k = contents[i].key;
        if (k == NULL || strlen(k) > S3_MAX_KEY_SIZE)
            continue;
        if (l->out->count == l->want) {
            l->overflow = true;
            break;
        }
        l->saw_key = true;
        snprintf(l->last, sizeof l->last, "%s", k);
        /* Keys outside the prefix cannot come back from S3; keys the front
         * end would refuse (folder markers "x/", "a//b") are not objects of
         * this store and are skipped, as file:// skips its temp files. */
        if (strncmp(k, l->prefix, l->prefix_len) == 0 && pipe_store_key_valid(k + l->prefix_len))
            list_add(l, &contents[i], k + l->prefix_len);
    }
    return S3StatusOK;
}

static void start_list(struct s3_req *r, S3RequestContext *ctx)
{
    static const S3ListBucketHandler h = {{on_props, on_complete}, on_list};
    struct s3_list_state *l = r->list;
    size_t n = l->want - l->out->count;
    s3w_list(r->st, l->s3_prefix, l->marker, (int)(n < S3_PAGE_MAX ? n : S3_PAGE_MAX), ctx, &h, r);
}

static void reset_list(struct s3_req *r)
{
    struct s3_list_state *l = r->list;
    while (l->out->count > l->count0)
        pipe_free(l->out->items[--l->out->count].key);
    l->truncated = l->overflow = l->saw_key = false;
    l->last[0] = '\0';
}

static int s3_list(struct pipe_store *s, const char *prefix, const char *start_after,
                   size_t max_keys, struct pipe_store_list *out)
{
    struct s3_store *st = s->priv;
    char *s3_prefix = pipe_asprintf("%s%s", st->prefix, prefix);
    char *marker = start_after[0] ? pipe_asprintf("%s%s", st->prefix, start_after) : NULL;
    struct s3_list_state l = {
        .out = out,
        .want = max_keys,
        .s3_prefix = s3_prefix[0] ? s3_prefix : NULL,
        .prefix = st->prefix,
        .prefix_len = st->prefix_len,
    };
    struct s3_req r = {.st = st, .list = &l};
    int rc = 0;
    bool more = true;
    while (more && out->count < max_keys) {
        l.count0 = out->count;
        l.marker = marker;
        rc = call(s, "list", prefix, &r, start_list, reset_list, NULL);
        if (rc < 0)
            break;
        more = l.truncated || l.overflow;
        if (more && !l.saw_key) { /* "truncated" with no key to go on from */
            rc = PIPE_EIO;
            pipe__store_set_error(s, "list %s: S3 said truncated but sent no keys", prefix);
            break;
        }
        pipe_free(marker);
        marker = pipe_strdup(l.last);
    }
    if (rc < 0) {
        pipe_store_list_cleanup(out);
    } else {
        out->truncated = more;
        if (out->count > 0)
            out->next_marker = pipe_strdup(out->items[out->count - 1].key);
    }
    pipe_free(marker);
    pipe_free(s3_prefix);
    return rc;
}

/* ---- open / close ---------------------------------------------------- */

struct s3_url {
    const char *endpoint, *region, *style, *tls, *retries, *timeout;
};

/* HOST, HOST:PORT, [IPv6] or [IPv6]:PORT. */
static bool host_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > S3_MAX_HOSTNAME_SIZE ||
        strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") != n)
        return false;
    const char *colon = strrchr(h, ':');
    const char *bracket = strrchr(h, ']');
    if (h[0] == '[' && (bracket == NULL || (colon && colon < bracket)))
        return bracket && bracket[1] == '\0';
    if (colon == NULL)
        return true;
    size_t digits = strspn(colon + 1, "0123456789");
    return colon > h && digits >= 1 && digits <= 5 && colon[1 + digits] == '\0' &&
           atoi(colon + 1) > 0 && atoi(colon + 1) < 65536;
}

/* Parses an integer option in [lo, hi]; a missing one is dflt. */
static int int_opt(struct pipe_store *s, const char *name, const char *v, long lo, long hi,
                   int dflt, int *out)
{
    if (v == NULL) {
        *out = dflt;
        return 0;
    }
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < lo || n > hi) {
        pipe__store_set_error(s, "s3 store URL: %s=%s: want an integer from %ld to %ld", name, v,
                              lo, hi);
        return PIPE_ECONFIG;
    }
    *out = (int)n;
    return 0;
}

/* Splits the query (modified in place) into u. Values are used as written. */
static int parse_query(struct pipe_store *s, char *q, struct s3_url *u)
{
    static const char *const names[] = {"endpoint", "region", "style", "tls", "retries", "timeout"};
    const char **slots[] = {&u->endpoint, &u->region, &u->style, &u->tls, &u->retries, &u->timeout};
    for (char *save = NULL, *p = strtok_r(q, "&", &save); p; p = strtok_r(NULL, "&", &save)) {
        char *v = strchr(p, '=');
        if (v)
            *v++ = '\0';
        size_t i = 0;
        while (i < sizeof names / sizeof *names && strcmp(p, names[i]) != 0)
            i++;
        if (i == sizeof names / sizeof *names) {
            pipe__store_set_error(s,
                                  "s3 store URL: unknown parameter \"%.64s\" (known: endpoint, "
                                  "region, style, tls, retries, timeout)",
                                  p);
            return PIPE_ECONFIG;
        }
        if (v == NULL || *v == '\0' || *slots[i] != NULL) {
            pipe__store_set_error(s, "s3 store URL: parameter %s is %s", p,
                                  *slots[i] ? "given twice" : "empty");
            return PIPE_ECONFIG;
        }
        *slots[i] = v;
    }
    return 0;
}

/* Fills st from the query parameters. */
static int apply_options(struct pipe_store *s, struct s3_store *st, const struct s3_url *u,
                         bool *tls, bool *path_style)
{
    int rc = 0, itls = 1;
    if (u->endpoint && !host_ok(u->endpoint)) {
        pipe__store_set_error(s, "s3 store URL: endpoint=%.100s: want HOST or HOST:PORT",
                              u->endpoint);
        return PIPE_ECONFIG;
    }
    if (u->region &&
        (strlen(u->region) > 64 ||
         strspn(u->region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(u->region))) {
        pipe__store_set_error(s,
                              "s3 store URL: region=%.100s: want a region name such as "
                              "eu-west-1",
                              u->region);
        return PIPE_ECONFIG;
    }
    if (u->style && strcmp(u->style, "path") != 0 && strcmp(u->style, "virtual") != 0) {
        pipe__store_set_error(s, "s3 store URL: style=%.100s: want path or virtual", u->style);
        return PIPE_ECONFIG;
    }
    if ((rc = int_opt(s, "tls", u->tls, 0, 1, 1, &itls)) < 0 ||
        (rc = int_opt(s, "retries", u->retries, 0, S3_MAX_RETRIES, S3_DEFAULT_RETRIES,
                      &st->retries)) < 0 ||
        (rc = int_opt(s, "timeout", u->timeout, S3_MIN_TIMEOUT_MS, S3_MAX_TIMEOUT_MS,
                      S3_DEFAULT_TIMEOUT_MS, &st->timeout_ms)) < 0)
        return rc;
    st->host = pipe_strdup(u->endpoint ? u->endpoint : S3_DEFAULT_HOSTNAME);
    st->region = u->region ? pipe_strdup(u->region) : NULL;
    *tls = itls == 1;
    /* A custom endpoint rarely has wildcard DNS for bucket subdomains. */
    *path_style = u->style ? strcmp(u->style, "path") == 0 : u->endpoint != NULL;
    return 0;
}

/* s3://BUCKET[/PREFIX][?QUERY]: bucket, prefix (without its slashes) and
 * options into st. */
static int parse_url(struct pipe_store *s, const char *url, struct s3_store *st, bool *tls,
                     bool *path_style)
{
    int rc = PIPE_ECONFIG;
    struct s3_url u = {0};
    char *copy = pipe_strdup(url);
    char *p = copy + strlen("s3:");
    char *q = strchr(p, '?');
    if (q)
        *q++ = '\0';
    if (strncmp(p, "//", 2) != 0 || strchr(url, '#')) {
        pipe__store_set_error(s, "store URL \"%.200s\": want s3://BUCKET[/PREFIX][?OPTIONS]", url);
        goto out;
    }
    p += 2;
    char *slash = strchr(p, '/');
    if (slash)
        *slash = '\0';
    if (strpbrk(p, "@:")) {
        pipe__store_set_error(s,
                              "s3 store URL: no user, password or port in \"%.100s\": "
                              "credentials come from AWS_ACCESS_KEY_ID and "
                              "AWS_SECRET_ACCESS_KEY, the host from endpoint=",
                              p);
        goto out;
    }
    if (*p == '\0' || strlen(p) > S3_MAX_BUCKET_NAME_SIZE) {
        pipe__store_set_error(s, "store URL \"%.200s\": no bucket (want s3://BUCKET[/PREFIX])",
                              url);
        goto out;
    }
    st->bucket_name = pipe_strdup(p);
    const char *prefix = slash ? slash + 1 : "";
    size_t plen = strlen(prefix);
    while (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    st->prefix = pipe_asprintf("%.*s%s", (int)plen, prefix, plen ? "/" : "");
    st->prefix_len = strlen(st->prefix);
    char bare[S3_PREFIX_MAX + 1];
    snprintf(bare, sizeof bare, "%.*s", (int)plen, prefix);
    if (plen > S3_PREFIX_MAX || (plen > 0 && !pipe_store_key_valid(bare))) {
        pipe__store_set_error(s,
                              "s3 store URL: prefix \"%.100s\" is not a valid key path (or is "
                              "over %d bytes)",
                              prefix, S3_PREFIX_MAX);
        goto out;
    }
    if (q && (rc = parse_query(s, q, &u)) < 0)
        goto out;
    rc = apply_options(s, st, &u, tls, path_style);
out:
    pipe_free(copy);
    return rc;
}

static void s3_store_free(struct s3_store *st)
{
    if (st == NULL)
        return;
    pipe_free(st->bucket_name);
    pipe_free(st->host);
    pipe_free(st->region);
    pipe_free(st->prefix);
    pipe_free(st->key_id);
    if (st->secret)
        memset(st->secret, 0, strlen(st->secret));
    pipe_free(st->secret);
    pipe_free(st->token);
    pipe_free(st);
}

/* Copies the credentials from the environment; names the missing one. */
static int read_credentials(struct pipe_store *s, struct s3_store *st)
{
    static const char *const need[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = getenv(need[i]);
        if (v == NULL || *v == '\0') {
            pipe__store_set_error(s,
                                  "s3 store: %s is not set (an s3:// store takes its "
                                  "credentials from AWS_ACCESS_KEY_ID and "
                                  "AWS_SECRET_ACCESS_KEY)",
                                  need[i]);
            return PIPE_ECONFIG;
        }
    }
    st->key_id = pipe_strdup(getenv("AWS_ACCESS_KEY_ID"));
    st->secret = pipe_strdup(getenv("AWS_SECRET_ACCESS_KEY"));
    const char *token = getenv("AWS_SESSION_TOKEN");
    if (token && *token) {
#ifdef PIPE_HAVE_LIBS3_4
        st->token = pipe_strdup(token);
#else
        pipe__store_set_error(s, "s3 store: AWS_SESSION_TOKEN is set, but libs3 2.0 cannot send "
                                 "session tokens (Signature V2): use long-term keys, or build "
                                 "with libs3 4.x");
        return PIPE_ECONFIG;
#endif
    }
    return 0;
}

static int s3_open(struct pipe_store *s, const char *url)
{
    struct s3_store *st = pipe_calloc(1, sizeof *st);
    bool tls = true, path_style = false;
    int rc = parse_url(s, url, st, &tls, &path_style);
    if (rc < 0)
        goto out;
    if ((rc = read_credentials(s, st)) < 0)
        goto out;
    pthread_once(&s3_once, s3_init);
    if (s3_init_status != S3StatusOK) {
        rc = PIPE_EIO;
        pipe__store_set_error(s, "s3 store: libs3 initialisation failed: %s",
                              S3_get_status_name(s3_init_status));
        goto out;
    }
    if (S3_validate_bucket_name(
            st->bucket_name, path_style ? S3UriStylePath : S3UriStyleVirtualHost) != S3StatusOK) {
        rc = PIPE_ECONFIG;
        pipe__store_set_error(s, "s3 store URL: \"%s\" is not a valid %s-style bucket name",
                              st->bucket_name, path_style ? "path" : "virtual-host");
        goto out;
    }
    s3w_bucket_init(st, tls, path_style);
    s->priv = st;
    st = NULL;
out:
    s3_store_free(st);
    return rc;
}

static void s3_close(struct pipe_store *s)
{
    s3_store_free(s->priv);
}

const struct pipe_store_ops pipe__store_s3_ops = {
    .scheme = "s3",
    .caps = PIPE_STORE_CAP_ATOMIC_PUT | PIPE_STORE_CAP_MTIME,
    .open = s3_open,
    .close = s3_close,
    .put = s3_put,
    .get = s3_get,
    .stat = s3_stat,
    .del = s3_del,
    .list = s3_list,
};
