/* store_s3_http — one S3 request over libcurl, signed with Signature V4
 * (aws_sigv4.c), with the progress deadline and the retry policy of the
 * s3:// store. Each thread keeps one curl multi handle and one easy handle
 * (pthread key), so connections and TLS sessions are reused between the
 * requests a thread makes; the handle is reset, not replaced, between
 * requests, and dropped only when a transfer was abandoned mid-way.
 *
 * Bounding a request. The thread runs the transfer with its own
 * curl_multi_poll loop: a request that shows no sign of life (header, body
 * or upload bytes) for `timeout` ms is abandoned. A request that keeps
 * progressing ends too, because every object and listing page is finite.
 *
 * Retries. Transient failures (connection refused/reset, DNS, timeouts,
 * HTTP 5xx and 429, SlowDown, RequestTimeout, a body cut short) are retried
 * `retries` times with capped exponential backoff and full jitter, then
 * reported as PIPE_EUNAVAIL. Put, get, stat, delete and one listing page
 * are each idempotent, so a retry cannot do harm. A certificate that does
 * not verify is a configuration error, not retried. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "libpipe/aws_sigv4.h"
#include "libpipe/aws_xml.h"
#include "libpipe/backoff.h"
#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/store_s3_int.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

#define S3_BACKOFF_BASE_MS 50
#define S3_BACKOFF_CAP_MS  2000
#define S3_POLL_MAX_MS     1000

/* ---- once per process, once per thread ------------------------------- */

static pthread_once_t s3_once = PTHREAD_ONCE_INIT;
static int s3_init_rc = PIPE_EIO;
static pthread_key_t s3_conn_key;

struct s3_conn {
    CURLM *multi;
    CURL *easy;
};

static void conn_destroy(void *p)
{
    struct s3_conn *c = p;
    if (c == NULL)
        return;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    pipe_free(c);
}

static void s3_init(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK && sodium_init() >= 0 &&
        pthread_key_create(&s3_conn_key, conn_destroy) == 0)
        s3_init_rc = 0;
}

int pipe__s3_global_init(void)
{
    pthread_once(&s3_once, s3_init);
    return s3_init_rc;
}

static struct s3_conn *conn_get(void)
{
    struct s3_conn *c = pthread_getspecific(s3_conn_key);
    if (c)
        return c;
    c = pipe_calloc(1, sizeof *c);
    c->multi = curl_multi_init();
    c->easy = curl_easy_init();
    if (c->multi == NULL || c->easy == NULL) {
        conn_destroy(c);
        return NULL;
    }
    pthread_setspecific(s3_conn_key, c);
    return c;
}

/* A transfer abandoned mid-way leaves curl's state in doubt: start afresh. */
static void conn_drop(struct s3_conn *c)
{
    pthread_setspecific(s3_conn_key, NULL);
    conn_destroy(c);
}

/* ---- curl callbacks ---------------------------------------------------- */

static long status_of(struct s3_req *r, CURL *h)
{
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    r->http = code;
    return code;
}

struct s3_xfer {
    struct s3_req *r;
    CURL *h;
};

/* S3 etags are quoted ("\"abc\""); store etags are opaque tokens. */
static void copy_etag(char *dst, size_t size, const char *src, size_t n)
{
    if (n >= 2 && src[0] == '"' && src[n - 1] == '"') {
        src++;
        n -= 2;
    }
    snprintf(dst, size, "%.*s", (int)n, src);
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    struct s3_xfer *x = arg;
    struct s3_req *r = x->r;
    size_t n = size * nmemb, len = n;
    r->progress_ms = pipe_clock_mono_ms();
    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a new response (after 100) */
        r->etag[0] = '\0';
    } else if (len > 5 && strncasecmp(p, "etag:", 5) == 0) {
        const char *v = p + 5;
        while (*v == ' ' || *v == '\t')
            v++;
        copy_etag(r->etag, sizeof r->etag, v, (size_t)(p + len - v));
    } else if (len == 0 && r->out && status_of(r, x->h) / 100 == 2) {
        /* End of a GET's headers: refuse an object over the cap before its
         * body arrives; reserving the room up front spares the doublings. */
        curl_off_t cl = -1;
        curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if (cl > 0 && ((uint64_t)cl > r->out->max - r->out->len ||
                       pipe_buf_reserve(r->out, (size_t)cl) < 0)) {
            r->too_big = true;
            return 0;
        }
    }
    return n;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
    struct s3_xfer *x = arg;
    struct s3_req *r = x->r;
    size_t n = size * nmemb;
    r->progress_ms = pipe_clock_mono_ms();
    bool to_out = r->out && status_of(r, x->h) / 100 == 2;
    if (pipe_buf_append(to_out ? r->out : &r->resp, p, n) < 0) {
        r->too_big = to_out;
        return 0;
    }
    return n;
}

/* The next bytes of the PUT body, across its parts. */
static size_t on_read(char *buf, size_t size, size_t nmemb, void *arg)
{
    struct s3_req *r = arg;
    size_t room = size * nmemb, n = 0;
    while (n < room && r->part < r->n_parts) {
        const struct pipe_store_part *p = &r->parts[r->part];
        size_t k = p->len - r->off;
        if (k > room - n)
            k = room - n;
        if (k)
            memcpy(buf + n, (const char *)p->data + r->off, k);
        n += k;
        r->off += k;
        if (r->off == p->len) {
            r->part++;
            r->off = 0;
        }
    }
    r->progress_ms = pipe_clock_mono_ms();
    return n;
}

/* ---- one attempt -------------------------------------------------------- */

/* The signed headers of r for the current credentials into *hdrs. */
static int sign(struct pipe_store *s, struct s3_req *r, const char *path, const char *hash,
                struct curl_slist **hdrs)
{
    struct s3_store *st = s->priv;
    struct pipe_awscreds_value cv;
    char err[PIPE_AWSCREDS_ERR_MAX];
    int rc = pipe_awscreds_get(st->creds, &cv, err, sizeof err);
    if (rc < 0) {
        snprintf(r->message, sizeof r->message, "%s", err);
        return rc;
    }
    char date[PIPE_SIGV4_DATE_LEN], auth[PIPE_SIGV4_AUTH_MAX];
    const struct pipe_sigv4_req sr = {
        .method = r->method,
        .host = st->host,
        .path = path,
        .query = r->query,
        .payload_hash = hash,
        .region = st->region,
        .service = "s3",
        .key_id = cv.key_id,
        .secret = cv.secret,
        .token = cv.token,
        .now_ms = pipe_clock_now_ms(),
    };
    rc = pipe_sigv4_sign(&sr, date, auth, sizeof auth);
    if (rc == 0) {
        char *h[] = {
            pipe_asprintf("Host: %s", st->host),
            pipe_asprintf("x-amz-content-sha256: %s", hash),
            pipe_asprintf("x-amz-date: %s", date),
            pipe_asprintf("Authorization: %s", auth),
            cv.token[0] ? pipe_asprintf("x-amz-security-token: %s", cv.token) : NULL,
        };
        for (size_t i = 0; i < sizeof h / sizeof *h; i++) {
            if (h[i])
                *hdrs = curl_slist_append(*hdrs, h[i]);
            pipe_free(h[i]);
        }
        *hdrs = curl_slist_append(*hdrs, "Expect:"); /* no 100-continue round trip */
    } else {
        snprintf(r->message, sizeof r->message, "cannot sign: credentials too long");
    }
    sodium_memzero(&cv, sizeof cv);
    return rc;
}

static void set_options(const struct s3_store *st, struct s3_req *r, CURL *h, const char *url,
                        struct s3_xfer *x, char *errbuf)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "sluice/" SLUICE_VERSION);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)st->timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_FILETIME, 1L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    if (st->ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, st->ca);
    if (!st->verify) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (strcmp(r->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, r);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->len);
    } else if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

/* Drives the transfer on c until it ends or shows no progress for the
 * store's timeout. Returns false if the connection must be dropped. */
static bool drive(const struct s3_store *st, struct s3_req *r, struct s3_conn *c)
{
    bool ok = curl_multi_add_handle(c->multi, c->easy) == CURLM_OK;
    int running = ok;
    while (ok && running) {
        if (curl_multi_perform(c->multi, &running) != CURLM_OK) {
            ok = false;
            break;
        }
        if (!running)
            break;
        int64_t left = r->progress_ms + st->timeout_ms - pipe_clock_mono_ms();
        if (left <= 0) {
            r->timed_out = true;
            ok = false;
            break;
        }
        curl_multi_poll(c->multi, NULL, 0, (int)(left < S3_POLL_MAX_MS ? left : S3_POLL_MAX_MS),
                        NULL);
    }
    int q;
    CURLMsg *m;
    r->curl_code = ok ? CURLE_RECV_ERROR : CURLE_OPERATION_TIMEDOUT;
    while ((m = curl_multi_info_read(c->multi, &q)) != NULL)
        if (m->msg == CURLMSG_DONE)
            r->curl_code = m->data.result;
    curl_multi_remove_handle(c->multi, c->easy);
    return ok;
}

/* Pulls an S3 error body's Code and Message. */
static int on_error_xml(void *arg, const char *parent, const char *name, const char *text)
{
    struct s3_req *r = arg;
    if (strcmp(parent, "Error") == 0 && strcmp(name, "Code") == 0)
        snprintf(r->code, sizeof r->code, "%s", text);
    else if (strcmp(parent, "Error") == 0 && strcmp(name, "Message") == 0)
        snprintf(r->message, sizeof r->message, "%s", text);
    return 0;
}

/* One attempt of r; fills r's results. */
static void attempt(struct pipe_store *s, struct s3_req *r, const char *path, const char *hash)
{
    struct s3_store *st = s->priv;
    r->http = 0;
    r->curl_code = CURLE_OK;
    r->timed_out = r->too_big = r->cut_short = false;
    r->content_length = 0;
    r->last_modified = -1;
    r->etag[0] = r->code[0] = r->message[0] = '\0';
    r->part = r->off = 0;
    pipe_buf_reset(&r->resp);
    if (r->out) {
        r->out->len = r->len0;
        if (r->out->data)
            r->out->data[r->len0] = '\0';
    }
    struct curl_slist *hdrs = NULL;
    int rc = sign(s, r, path, hash, &hdrs);
    if (rc < 0) {
        r->curl_code = CURLE_LOGIN_DENIED; /* stands for "no credentials" */
        r->creds_rc = rc == PIPE_EUNAVAIL ? rc : PIPE_ECONFIG;
        return;
    }
    struct s3_conn *c = conn_get();
    if (c == NULL) {
        r->curl_code = CURLE_OUT_OF_MEMORY;
        curl_slist_free_all(hdrs);
        return;
    }
    char *url = pipe_asprintf("%s%s%s%s", st->base_url, path, r->query[0] ? "?" : "", r->query);
    char errbuf[CURL_ERROR_SIZE] = "";
    struct s3_xfer x = {r, c->easy};
    curl_easy_reset(c->easy);
    set_options(st, r, c->easy, url, &x, errbuf);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, hdrs);
    r->progress_ms = pipe_clock_mono_ms();
    bool keep = drive(st, r, c);
    if (r->curl_code == CURLE_OK || r->curl_code == CURLE_PARTIAL_FILE) {
        curl_off_t cl = -1, ft = -1;
        curl_easy_getinfo(c->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        curl_easy_getinfo(c->easy, CURLINFO_FILETIME_T, &ft);
        r->content_length = cl > 0 ? (uint64_t)cl : 0;
        r->last_modified = ft;
        status_of(r, c->easy);
    }
    if (r->curl_code == CURLE_PARTIAL_FILE) {
        size_t got = r->out ? r->out->len - r->len0 : r->resp.len;
        r->cut_short = true;
        snprintf(r->message, sizeof r->message, "body cut short: %zu of %llu bytes", got,
                 (unsigned long long)r->content_length);
    } else if (r->curl_code != CURLE_OK && !r->timed_out) {
        snprintf(r->message, sizeof r->message, "%s",
                 errbuf[0] ? errbuf : curl_easy_strerror((CURLcode)r->curl_code));
    } else if (r->http / 100 != 2 && r->resp.len > 0) {
        pipe_awsxml_parse(r->resp.data, r->resp.len, on_error_xml, r);
    }
    if (!keep)
        conn_drop(c);
    pipe_free(url);
    curl_slist_free_all(hdrs);
}

/* ---- classification ----------------------------------------------------- */

/* S3 error codes that are not transient and do not map to PIPE_EIO.
 * ECONFIG: fixed by configuration (credentials, policy, endpoint, bucket),
 * not by waiting. */
static const struct {
    const char *code;
    int rc;
} s3_codes[] = {
    {"NoSuchKey", PIPE_ENOTFOUND},
    {"NoSuchBucket", PIPE_ECONFIG},
    {"InvalidBucketName", PIPE_ECONFIG},
    {"PermanentRedirect", PIPE_ECONFIG},
    {"TemporaryRedirect", PIPE_ECONFIG},
    {"AuthorizationHeaderMalformed", PIPE_ECONFIG},
    {"ExpiredToken", PIPE_ECONFIG},
    {"InvalidToken", PIPE_ECONFIG},
    {"TokenRefreshRequired", PIPE_ECONFIG},
    {"MissingSecurityHeader", PIPE_ECONFIG},
    {"KeyTooLongError", PIPE_EINVAL},
    {"InvalidURI", PIPE_EINVAL},
    {"InvalidArgument", PIPE_EINVAL},
    {"EntityTooLarge", PIPE_ETOOBIG},
    {"RequestTimeout", PIPE_EUNAVAIL},
    {"IncompleteBody", PIPE_EUNAVAIL},
    {"OperationAborted", PIPE_EUNAVAIL},
    {"SlowDown", PIPE_EUNAVAIL},
    {"InternalError", PIPE_EUNAVAIL},
    {"ServiceUnavailable", PIPE_EUNAVAIL},
    {"XAmzContentSHA256Mismatch", PIPE_EUNAVAIL}, /* bytes changed on the way */
};

static bool tls_failure(int cc)
{
    return cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
           cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_ISSUER_ERROR ||
           cc == CURLE_SSL_PINNEDPUBKEYNOTMATCH;
}

/* The PIPE_E* code of the attempt's outcome (0 for a 2xx answer). */
static int classify(const struct s3_req *r)
{
    if (r->timed_out || r->cut_short)
        return PIPE_EUNAVAIL;
    if (r->curl_code == CURLE_LOGIN_DENIED)
        return r->creds_rc; /* a credentials endpoint that did not answer is transient */
    if (r->curl_code != CURLE_OK)
        return tls_failure(r->curl_code) ? PIPE_ECONFIG : PIPE_EUNAVAIL;
    if (r->http / 100 == 2)
        return 0;
    for (size_t i = 0; r->code[0] && i < sizeof s3_codes / sizeof *s3_codes; i++)
        if (strcmp(r->code, s3_codes[i].code) == 0)
            return s3_codes[i].rc;
    if (r->http >= 500 || r->http == 429)
        return PIPE_EUNAVAIL;
    if (r->http == 404 && r->code[0] == '\0')
        return PIPE_ENOTFOUND; /* HEAD has no body to say NoSuchKey */
    if (r->http == 403 || r->http == 301 || r->http == 307 || r->http == 401)
        return PIPE_ECONFIG;
    return PIPE_EIO;
}

/* Records why the final attempt failed: "OP KEY: WHAT[ TAIL]". */
static void set_error(struct pipe_store *s, const char *op, const char *key, const struct s3_req *r,
                      int rc, int attempts)
{
    struct s3_store *st = s->priv;
    char what[S3_ERRMSG_MAX + 256], tail[160] = "";
    if (r->timed_out)
        snprintf(what, sizeof what, "no response from %s for %d ms", st->endpoint, st->timeout_ms);
    else if (r->cut_short)
        snprintf(what, sizeof what, "bad response from %s: %s", st->endpoint, r->message);
    else if (r->curl_code == CURLE_LOGIN_DENIED)
        snprintf(what, sizeof what, "%s", r->message);
    else if (r->curl_code != CURLE_OK)
        snprintf(what, sizeof what, "%s talking to %s: %s",
                 tls_failure(r->curl_code) ? "TLS certificate not accepted" : "failed",
                 st->endpoint, r->message);
    else if (r->code[0])
        snprintf(what, sizeof what, "S3 error %s (HTTP %ld): %s", r->code, r->http,
                 r->message[0] ? r->message : "(no message)");
    else
        snprintf(what, sizeof what, "HTTP %ld without an S3 error body", r->http);
    if (rc == PIPE_ECONFIG)
        snprintf(tail, sizeof tail, " [bucket \"%s\" at %s]", st->bucket_name, st->endpoint);
    else if (attempts > 1)
        snprintf(tail, sizeof tail, " (after %d attempts)", attempts);
    pipe__store_set_error(s, "%s %s: %s%s", op, key, what, tail);
}

/* The encoded request path: [/BUCKET]/KEY. */
static char *request_path(const struct s3_store *st, const char *key)
{
    struct pipe_buf b;
    pipe_buf_init(&b, SIZE_MAX);
    pipe_buf_append_str(&b, st->path_start);
    pipe_buf_append_char(&b, '/');
    if (key)
        pipe_sigv4_encode(&b, key, strlen(key), true);
    return pipe_buf_steal(&b, NULL);
}

/* The hex SHA-256 of r's body, its parts in order: the payload hash that
 * SigV4 signs (x-amz-content-sha256). */
static void body_hash(const struct s3_req *r, char hash[PIPE_SIGV4_HASH_HEX])
{
    crypto_hash_sha256_state st;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    for (size_t i = 0; i < r->n_parts; i++)
        if (r->parts[i].len)
            crypto_hash_sha256_update(&st, r->parts[i].data, r->parts[i].len);
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hash, PIPE_SIGV4_HASH_HEX, h, sizeof h);
}

int pipe__s3_call(struct pipe_store *s, const char *op, const char *key, struct s3_req *r)
{
    struct s3_store *st = s->priv;
    char hash[PIPE_SIGV4_HASH_HEX];
    body_hash(r, hash);
    char *path = request_path(st, r->key);
    if (r->resp.max == 0)
        pipe_buf_init(&r->resp, S3_RESP_MAX);
    r->len0 = r->out ? r->out->len : 0;
    int rc = 0, n = 0;
    struct pipe_backoff wait = {0};
    for (;; n++) {
        attempt(s, r, path, hash);
        if (r->too_big) {
            rc = PIPE_ETOOBIG; /* the caller words this one */
            goto out;
        }
        rc = classify(r);
        if (rc != PIPE_EUNAVAIL || n >= st->retries)
            break;
        if (n == 0) /* seeded on the first retry only: most calls need none */
            pipe_backoff_init(&wait, S3_BACKOFF_BASE_MS, S3_BACKOFF_CAP_MS);
        pipe_backoff_sleep(pipe_backoff_next(&wait));
    }
    if (rc < 0 && (rc != PIPE_ENOTFOUND || strcmp(op, "delete") != 0))
        set_error(s, op, key, r, rc, n + 1);
out:
    if (rc < 0 && r->out) {
        r->out->len = r->len0;
        if (r->out->data)
            r->out->data[r->len0] = '\0';
    }
    pipe_free(path);
    return rc;
}
