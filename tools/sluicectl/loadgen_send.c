/* loadgen_send — `sluicectl send`, a test-load tool: reads NDJSON and POSTs it to the filter in
 * batches, from a few worker threads with one keep-alive libcurl handle each.
 * A batch is retried with the very same bytes until it is acknowledged, so
 * a retry after a lost ack carries the same event ids and downstream
 * de-duplication catches any double delivery. The reader blocks on a bounded
 * queue, so memory stays near (2 x concurrency + concurrency) batches. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "libpipe/backoff.h"
#include "libpipe/clock.h"
#include "libpipe/buf.h"
#include "libpipe/codec.h"
#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/url.h"
#include "tools/sluicectl/ctl.h"

#define SEND_MAX_WORKERS        256
#define SEND_RESP_MAX           (64 * 1024) /* a reply is a small JSON object */
#define SEND_BACKOFF_BASE_MS    100
#define SEND_BACKOFF_CAP_MS     10000
#define SEND_RETRY_AFTER_CAP_MS PIPE_MIN_MS
#define SEND_READ_CHUNK         (64 * 1024)
#define SEND_FAILURES_SHOWN     10

struct send_cfg {
    char *url;
    int64_t batch;
    uint64_t max_body;
    int64_t concurrency;
    char *api_key;
    bool zstd;
    int64_t retries;
    int64_t timeout_ms;
    char *stats;
    char *acked;
    bool verbose;
    int64_t rate;
};

static const struct pipe_conf_opt send_opts[] = {
    {"url", PIPE_CONF_STR, "http://127.0.0.1:8080", offsetof(struct send_cfg, url),
     "filter base URL (/v1/events is appended unless already there)", 0, 0, "URL"},
    {"batch", PIPE_CONF_INT, "500", offsetof(struct send_cfg, batch), "events per request", 1,
     1000000, "N"},
    {"max_body", PIPE_CONF_SIZE, "4MiB", offsetof(struct send_cfg, max_body),
     "a batch is cut early rather than pass this many bytes; a longer line is skipped and "
     "counted as a failure",
     1024, INT64_C(1) << 32, "BYTES"},
    {"concurrency", PIPE_CONF_INT, "4", offsetof(struct send_cfg, concurrency),
     "requests in flight (one worker thread and connection each)", 1, SEND_MAX_WORKERS, "N"},
    {"api_key", PIPE_CONF_STR, NULL, offsetof(struct send_cfg, api_key), "sent as X-Api-Key", 0, 0,
     "KEY"},
    {"zstd", PIPE_CONF_BOOL, "false", offsetof(struct send_cfg, zstd),
     "compress bodies (Content-Encoding: zstd)", 0, 0, NULL},
    {"retries", PIPE_CONF_INT, "20", offsetof(struct send_cfg, retries),
     "retries per batch after 5xx, 408, 429 or a connection error", 0, 1000000, "N"},
    {"timeout", PIPE_CONF_DURATION, "30s", offsetof(struct send_cfg, timeout_ms),
     "timeout of one request", 1, PIPE_DAY_MS, "DURATION"},
    {"stats", PIPE_CONF_STR, NULL, offsetof(struct send_cfg, stats),
     "write the final summary as JSON to FILE", 0, 0, "FILE"},
    {"acked", PIPE_CONF_STR, NULL, offsetof(struct send_cfg, acked),
     "append \"first_line<TAB>last_line\" for every acknowledged batch to FILE", 0, 0, "FILE"},
    {"verbose", PIPE_CONF_BOOL, "false", offsetof(struct send_cfg, verbose),
     "print every retry and its cause", 0, 0, NULL},
    {"rate", PIPE_CONF_INT, "0", offsetof(struct send_cfg, rate),
     "offer at most this many events per second, batches released on a fixed schedule from the "
     "start (a late batch does not move the ones after it); 0 as fast as acknowledgements allow",
     0, 100000000, "EVENTS/S"},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program send_program = {
    .name = "sluicectl send",
    .summary = "POSTs NDJSON events (from FILE, or stdin when FILE is - or absent) to the "
               "filter's /v1/events in batches, over keep-alive connections. A batch that "
               "gets 5xx, 408, 429 or a connection error is resent, byte for byte, with capped "
               "exponential backoff and jitter (Retry-After is honoured); 400, 401, 413 and "
               "other 4xx fail the batch. Exits 0 only if every batch was acknowledged.",
    .usage_args = "[FILE|-]",
    .version = SLUICE_VERSION,
    .tables = {send_opts, NULL},
};

/* One request's worth of input lines. */
struct batch {
    struct batch *next;
    struct pipe_buf body; /* NDJSON, "\n" after every line */
    uint64_t first_line, last_line, events;
};

struct send_stats {
    uint64_t batches, events, accepted, rejected, retries, failures, failed_events, bytes;
    uint64_t *lat_us; /* per acknowledged batch */
    size_t nlat, caplat;
};

struct sender {
    struct send_cfg cfg;
    char *endpoint;
    FILE *acked;
    /* The queue between the reader and the workers. */
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full, done_cv;
    struct batch *head, *tail;
    size_t queued, queue_cap;
    bool closed, done;
    /* Under mu as well. */
    struct send_stats st;
    bool bad_reply_seen;
    int64_t start_us;
};

struct worker {
    struct sender *s;
    pthread_t thread;
    CURL *curl;
    struct curl_slist *headers;
    struct pipe_buf resp;
    struct pipe_buf zbody;
    struct pipe_zwriter *zw;
    int64_t retry_after_ms;
    struct pipe_backoff backoff;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void batch_free(struct batch *b)
{
    if (b == NULL)
        return;
    pipe_buf_cleanup(&b->body);
    pipe_free(b);
}

/* ---- the queue ------------------------------------------------------- */

static void queue_push(struct sender *s, struct batch *b)
{
    pthread_mutex_lock(&s->mu);
    while (s->queued >= s->queue_cap)
        pthread_cond_wait(&s->not_full, &s->mu);
    if (s->tail)
        s->tail->next = b;
    else
        s->head = b;
    s->tail = b;
    s->queued++;
    pthread_cond_signal(&s->not_empty);
    pthread_mutex_unlock(&s->mu);
}

/* queue_pop — the next batch, or NULL once the reader is done and the
 * queue is empty. */
static struct batch *queue_pop(struct sender *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->head == NULL && !s->closed)
        pthread_cond_wait(&s->not_empty, &s->mu);
    struct batch *b = s->head;
    if (b) {
        s->head = b->next;
        if (s->head == NULL)
            s->tail = NULL;
        s->queued--;
        pthread_cond_signal(&s->not_full);
    }
    pthread_mutex_unlock(&s->mu);
    return b;
}

static void queue_close(struct sender *s)
{
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    pthread_cond_broadcast(&s->not_empty);
    pthread_mutex_unlock(&s->mu);
}

/* ---- one HTTP request ------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct worker *w = arg;
    /* Past the cap the rest is dropped: the reply is only read for counts. */
    pipe_buf_append(&w->resp, p, size * n);
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct worker *w = arg;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
        /* Only the delay-seconds form; an HTTP date falls back to backoff. */
        char tmp[32];
        size_t vlen = len - (sizeof name - 1);
        if (vlen >= sizeof tmp)
            vlen = sizeof tmp - 1;
        memcpy(tmp, p + sizeof name - 1, vlen);
        tmp[vlen] = '\0';
        char *end;
        long secs = strtol(tmp, &end, 10);
        if (end != tmp && secs >= 0)
            w->retry_after_ms =
                secs > SEND_RETRY_AFTER_CAP_MS / 1000 ? SEND_RETRY_AFTER_CAP_MS : secs * 1000;
    }
    return len;
}

static int worker_init(struct worker *w, struct sender *s, unsigned idx)
{
    int rc = 0;
    w->s = s;
    (void)idx;
    pipe_backoff_init(&w->backoff, SEND_BACKOFF_BASE_MS, SEND_BACKOFF_CAP_MS);
    pipe_buf_init(&w->resp, SEND_RESP_MAX);
    pipe_buf_init(&w->zbody, (size_t)s->cfg.max_body + 65536);
    if (s->cfg.zstd && (rc = pipe_zwriter_new(0, &w->zbody, &w->zw)) < 0)
        goto out;
    w->curl = curl_easy_init();
    if (w->curl == NULL) {
        rc = PIPE_EIO;
        goto out;
    }
    w->headers = curl_slist_append(w->headers, "Content-Type: application/x-ndjson");
    w->headers = curl_slist_append(w->headers, "Expect:"); /* no 100-continue round trip */
    if (s->cfg.zstd)
        w->headers = curl_slist_append(w->headers, "Content-Encoding: zstd");
    if (s->cfg.api_key) {
        char *h = pipe_asprintf("X-Api-Key: %s", s->cfg.api_key);
        w->headers = curl_slist_append(w->headers, h);
        pipe_free(h);
    }
    curl_easy_setopt(w->curl, CURLOPT_URL, s->endpoint);
    curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, w->headers);
    curl_easy_setopt(w->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(w->curl, CURLOPT_TIMEOUT_MS, (long)s->cfg.timeout_ms);
    curl_easy_setopt(w->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(s->cfg.timeout_ms < 10000 ? s->cfg.timeout_ms : 10000));
    curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(w->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(w->curl, CURLOPT_HEADERDATA, w);
out:
    return rc;
}

static void worker_cleanup(struct worker *w)
{
    if (w->curl)
        curl_easy_cleanup(w->curl);
    curl_slist_free_all(w->headers);
    pipe_zwriter_free(w->zw);
    pipe_buf_cleanup(&w->zbody);
    pipe_buf_cleanup(&w->resp);
}

/* post — one attempt. Returns the HTTP status, or 0 after a transport error
 * (described in err). */
static long post(struct worker *w, const char *body, size_t len, char *err, size_t errlen)
{
    long status = 0;
    pipe_buf_reset(&w->resp);
    w->retry_after_ms = -1;
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    CURLcode cc = curl_easy_perform(w->curl);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(cc));
        return 0;
    }
    curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

static bool status_is_transient(long status)
{
    return status == 0 || status == 408 || status == 429 || status >= 500;
}

/* backoff_ms — the server's Retry-After when it gave one, else the next
 * wait of the worker's backoff (libpipe/backoff.h). */
static int64_t backoff_ms(struct worker *w)
{
    if (w->retry_after_ms >= 0)
        return w->retry_after_ms;
    return pipe_backoff_next(&w->backoff);
}

/* ---- a batch from first try to its outcome --------------------------- */

/* record_ack — counts an acknowledged batch from its {"accepted":N,
 * "rejected":M} reply and notes its lines in --acked. */
static void record_ack(struct worker *w, const struct batch *b, size_t sent, int64_t lat_us)
{
    struct sender *s = w->s;
    json_t *j = json_loadb(w->resp.data ? w->resp.data : "", w->resp.len, 0, NULL);
    json_t *acc = json_object_get(j, "accepted"), *rej = json_object_get(j, "rejected");
    pthread_mutex_lock(&s->mu);
    struct send_stats *st = &s->st;
    st->batches++;
    st->events += b->events;
    st->bytes += sent;
    if (json_is_integer(acc) && json_is_integer(rej)) {
        st->accepted += (uint64_t)json_integer_value(acc);
        st->rejected += (uint64_t)json_integer_value(rej);
    } else if (!s->bad_reply_seen) {
        s->bad_reply_seen = true;
        fprintf(stderr, "sluicectl send: 200 reply without accepted/rejected counts: %.200s\n",
                w->resp.data ? w->resp.data : "");
    }
    if (st->nlat == st->caplat) {
        st->caplat = st->caplat ? st->caplat * 2 : 1024;
        st->lat_us = pipe_realloc(st->lat_us, st->caplat * sizeof *st->lat_us);
    }
    st->lat_us[st->nlat++] = (uint64_t)lat_us;
    if (s->acked) {
        /* Flushed per batch: whoever reads it after a crash sees every ack. */
        fprintf(s->acked, "%" PRIu64 "\t%" PRIu64 "\n", b->first_line, b->last_line);
        fflush(s->acked);
    }
    pthread_mutex_unlock(&s->mu);
    json_decref(j);
}

static void record_failure(struct worker *w, const struct batch *b, long status, const char *err)
{
    struct sender *s = w->s;
    pthread_mutex_lock(&s->mu);
    uint64_t n = ++s->st.failures;
    s->st.failed_events += b->events;
    /* When the filter is down every batch fails the same way: say it a few
     * times; the summary has the count. */
    if (n <= SEND_FAILURES_SHOWN && status)
        fprintf(stderr, "sluicectl send: lines %" PRIu64 "-%" PRIu64 " failed: HTTP %ld: %.300s\n",
                b->first_line, b->last_line, status, w->resp.data ? w->resp.data : "");
    else if (n <= SEND_FAILURES_SHOWN)
        fprintf(stderr, "sluicectl send: lines %" PRIu64 "-%" PRIu64 " failed: %s\n", b->first_line,
                b->last_line, err);
    if (n == SEND_FAILURES_SHOWN)
        fprintf(stderr, "sluicectl send: (further failures are only counted)\n");
    pthread_mutex_unlock(&s->mu);
}

/* send_batch — posts b until it is acknowledged, fails for good, or runs
 * out of retries. The body is built (and compressed) once, so every attempt
 * sends the same bytes. */
static void send_batch(struct worker *w, const struct batch *b)
{
    struct sender *s = w->s;
    const char *body = b->body.data;
    size_t len = b->body.len;
    char err[CURL_ERROR_SIZE] = "";
    if (w->zw) {
        pipe_buf_reset(&w->zbody);
        int rc = pipe_zwriter_reset(w->zw, &w->zbody);
        if (rc == 0)
            rc = pipe_zwriter_write(w->zw, body, len);
        if (rc == 0)
            rc = pipe_zwriter_finish(w->zw);
        if (rc < 0) {
            snprintf(err, sizeof err, "zstd: %s", pipe_strerror(rc));
            record_failure(w, b, 0, err);
            return;
        }
        body = w->zbody.data;
        len = w->zbody.len;
    }
    pipe_backoff_reset(&w->backoff);
    for (int64_t attempt = 0;; attempt++) {
        int64_t t0 = now_us();
        long status = post(w, body, len, err, sizeof err);
        if (status >= 200 && status < 300) {
            record_ack(w, b, len, now_us() - t0);
            return;
        }
        if (!status_is_transient(status) || attempt >= s->cfg.retries) {
            record_failure(w, b, status, err);
            return;
        }
        pthread_mutex_lock(&s->mu);
        s->st.retries++;
        if (s->cfg.verbose && status)
            fprintf(stderr, "sluicectl send: lines %" PRIu64 "-%" PRIu64 ": HTTP %ld; retrying\n",
                    b->first_line, b->last_line, status);
        else if (s->cfg.verbose)
            fprintf(stderr, "sluicectl send: lines %" PRIu64 "-%" PRIu64 ": %s; retrying\n",
                    b->first_line, b->last_line, err);
        pthread_mutex_unlock(&s->mu);
        pipe_backoff_sleep(backoff_ms(w));
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct batch *b;
    while ((b = queue_pop(w->s)) != NULL) {
        send_batch(w, b);
        batch_free(b);
    }
    return NULL;
}

/* ---- reading input --------------------------------------------------- */

struct reader {
    FILE *f;
    char *chunk;
    size_t pos, len;
    uint64_t line_no;
};

/* read_line — the next line (without "\n") into line, whose cap bounds it.
 * 1 = a line, 0 = end of input, PIPE_ETOOBIG = the line was over the cap
 * (skipped to its end), -errno on a read error. */
static int read_line(struct reader *r, struct pipe_buf *line)
{
    bool any = false, too_big = false;
    pipe_buf_reset(line);
    for (;;) {
        if (r->pos == r->len) {
            r->len = fread(r->chunk, 1, SEND_READ_CHUNK, r->f);
            r->pos = 0;
            if (r->len == 0) {
                if (ferror(r->f))
                    return -EIO;
                break;
            }
        }
        any = true;
        char *nl = memchr(r->chunk + r->pos, '\n', r->len - r->pos);
        size_t n = nl ? (size_t)(nl - (r->chunk + r->pos)) : r->len - r->pos;
        if (!too_big && pipe_buf_append(line, r->chunk + r->pos, n) < 0)
            too_big = true;
        r->pos += n + (nl != NULL);
        if (nl)
            break;
    }
    if (!any)
        return 0;
    r->line_no++;
    return too_big ? PIPE_ETOOBIG : 1;
}

static struct batch *batch_new(const struct sender *s)
{
    struct batch *b = pipe_calloc(1, sizeof *b);
    pipe_buf_init(&b->body, (size_t)s->cfg.max_body);
    return b;
}

/* pace — with --rate, waits until the batch that starts after `offered`
 * events is due: offered / rate seconds after the start. The schedule is
 * absolute, so a batch held up by a full queue is followed by the next one
 * at once and the offered rate stays the configured one on average. */
static void pace(const struct sender *s, uint64_t offered)
{
    if (s->cfg.rate <= 0)
        return;
    int64_t due_us = s->start_us + (int64_t)((double)offered * 1e6 / (double)s->cfg.rate);
    int64_t wait_us = due_us - now_us();
    if (wait_us > 0)
        pipe_backoff_sleep((wait_us + 999) / 1000);
}

/* read_all — splits the input into batches and queues them. Returns 0, or
 * the first error (a read error, or a line over --max-body, which is skipped
 * and counted as a failed event). */
static int read_all(struct sender *s, FILE *f)
{
    int rc = 0, first_err = 0;
    uint64_t offered = 0;
    struct reader r = {.f = f, .chunk = pipe_malloc(SEND_READ_CHUNK)};
    struct pipe_buf line;
    pipe_buf_init(&line, (size_t)s->cfg.max_body - 1);
    struct batch *b = batch_new(s);
    while ((rc = read_line(&r, &line)) != 0) {
        if (rc == PIPE_ETOOBIG) {
            fprintf(stderr, "sluicectl send: line %" PRIu64 " is longer than --max-body; skipped\n",
                    r.line_no);
            pthread_mutex_lock(&s->mu);
            s->st.failures++;
            s->st.failed_events++;
            pthread_mutex_unlock(&s->mu);
            first_err = first_err ? first_err : rc;
            continue;
        }
        if (rc < 0) {
            fprintf(stderr, "sluicectl send: reading input: %s\n", pipe_strerror(rc));
            first_err = first_err ? first_err : rc;
            break;
        }
        if (line.len == 0 || (line.len == 1 && line.data[0] == '\r'))
            continue;
        if (b->events > 0 && (b->events == (uint64_t)s->cfg.batch ||
                              b->body.len + line.len + 1 > (size_t)s->cfg.max_body)) {
            pace(s, offered);
            offered += b->events;
            queue_push(s, b);
            b = batch_new(s);
        }
        /* Fits: line.len < max_body and the batch was checked above. */
        pipe_buf_append(&b->body, line.data, line.len);
        pipe_buf_append_char(&b->body, '\n');
        if (b->events++ == 0)
            b->first_line = r.line_no;
        b->last_line = r.line_no;
    }
    if (b->events > 0) {
        pace(s, offered);
        queue_push(s, b);
    } else
        batch_free(b);
    pipe_buf_cleanup(&line);
    pipe_free(r.chunk);
    return first_err;
}

/* ---- progress and the summary ---------------------------------------- */

static void *progress_main(void *arg)
{
    struct sender *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->done) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 500 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->done_cv, &s->mu, &until);
        double secs = (double)(now_us() - s->start_us) / 1e6;
        fprintf(stderr,
                "\r\033[Ksent %" PRIu64 " batches, %" PRIu64 " events, %.0f events/s, %" PRIu64
                " retries, %" PRIu64 " failures",
                s->st.batches, s->st.events, secs > 0 ? (double)s->st.events / secs : 0.0,
                s->st.retries, s->st.failures);
    }
    fprintf(stderr, "\n");
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile_ms(const struct send_stats *st, int pct)
{
    if (st->nlat == 0)
        return 0;
    return (double)st->lat_us[(st->nlat - 1) * (size_t)pct / 100] / 1000.0;
}

/* report — the summary on stderr and, with --stats, as JSON. */
static int report(struct sender *s, double secs)
{
    struct send_stats *st = &s->st;
    if (st->nlat > 0)
        qsort(st->lat_us, st->nlat, sizeof *st->lat_us, cmp_u64);
    double rate = secs > 0 ? (double)st->events / secs : 0;
    double p50 = percentile_ms(st, 50), p99 = percentile_ms(st, 99);
    fprintf(stderr,
            "sluicectl send: %" PRIu64 " batches acknowledged, %" PRIu64 " failed\n"
            "  events sent %" PRIu64 " (accepted %" PRIu64 ", rejected %" PRIu64
            "), failed %" PRIu64 "\n"
            "  retries %" PRIu64 ", elapsed %.3fs, %.0f events/s, ack latency p50 %.1fms p99 "
            "%.1fms\n",
            st->batches, st->failures, st->events, st->accepted, st->rejected, st->failed_events,
            st->retries, secs, rate, p50, p99);
    if (s->cfg.stats == NULL)
        return 0;
    FILE *f = fopen(s->cfg.stats, "w");
    if (f == NULL) {
        fprintf(stderr, "sluicectl send: --stats %s: %s\n", s->cfg.stats, strerror(errno));
        return -errno;
    }
    fprintf(f,
            "{\"batches\":%" PRIu64 ",\"events\":%" PRIu64 ",\"accepted\":%" PRIu64
            ",\"rejected\":%" PRIu64 ",\"retries\":%" PRIu64 ",\"failures\":%" PRIu64
            ",\"failed_events\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"elapsed_s\":%.3f"
            ",\"events_per_s\":%.1f,\"latency_p50_ms\":%.3f,\"latency_p99_ms\":%.3f"
            ",\"offered_rate\":%" PRId64 "}\n",
            st->batches, st->events, st->accepted, st->rejected, st->retries, st->failures,
            st->failed_events, st->bytes, secs, rate, p50, p99, s->cfg.rate);
    return fclose(f) == 0 ? 0 : PIPE_EIO;
}

/* ---- the command ----------------------------------------------------- */

/* send_endpoint — the ingest URL for --url: an http(s) URL with a host and
 * no query, "/v1/events" appended unless its path already ends so. NULL,
 * with the reason on stderr, for any other. */
static char *send_endpoint(const char *url)
{
    struct pipe_url u;
    enum pipe_url_part bad;
    const char *why;
    char *ep = NULL;
    if (pipe_url_parse(url, &u, &bad, &why) < 0) {
        fprintf(stderr, "sluicectl send: --url \"%s\": %s\n", url, why);
        return NULL;
    }
    if ((strcmp(u.scheme, "http") != 0 && strcmp(u.scheme, "https") != 0) || u.host[0] == '\0' ||
        u.query || u.fragment) {
        fprintf(stderr, "sluicectl send: --url \"%s\": want http[s]://HOST[:PORT][/PATH]\n", url);
        goto out;
    }
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    bool has_path = n >= 10 && strncmp(url + n - 10, "/v1/events", 10) == 0;
    ep = pipe_asprintf("%.*s%s", (int)n, url, has_path ? "" : "/v1/events");
out:
    pipe_url_cleanup(&u);
    return ep;
}

static int sender_init(struct sender *s, int nworkers)
{
    if ((s->endpoint = send_endpoint(s->cfg.url)) == NULL)
        return PIPE_ECONFIG;
    s->queue_cap = (size_t)nworkers * 2;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->not_empty, NULL);
    pthread_cond_init(&s->not_full, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    if (s->cfg.acked && (s->acked = fopen(s->cfg.acked, "a")) == NULL) {
        fprintf(stderr, "sluicectl send: --acked %s: %s\n", s->cfg.acked, strerror(errno));
        return -errno;
    }
    return 0;
}

static void sender_cleanup(struct sender *s)
{
    if (s->endpoint == NULL)
        return; /* never initialised */
    if (s->acked)
        fclose(s->acked);
    pthread_cond_destroy(&s->done_cv);
    pthread_cond_destroy(&s->not_full);
    pthread_cond_destroy(&s->not_empty);
    pthread_mutex_destroy(&s->mu);
    pipe_free(s->st.lat_us);
    pipe_free(s->endpoint);
}

/* run — reader on this thread, workers and (on a terminal) a progress line
 * on others. Returns 0 when every batch was acknowledged. */
static int run(struct sender *s, FILE *in)
{
    int nworkers = (int)s->cfg.concurrency, started = 0, rc = 0;
    struct worker *ws = pipe_calloc((size_t)nworkers, sizeof *ws);
    pthread_t progress;
    bool tty = isatty(2);
    s->start_us = now_us();
    for (; started < nworkers; started++) {
        if ((rc = worker_init(&ws[started], s, (unsigned)started)) < 0 ||
            (rc = -pthread_create(&ws[started].thread, NULL, worker_main, &ws[started])) < 0) {
            fprintf(stderr, "sluicectl send: starting worker: %s\n", pipe_strerror(rc));
            worker_cleanup(&ws[started]);
            break;
        }
    }
    if (tty && pthread_create(&progress, NULL, progress_main, s) != 0)
        tty = false;
    /* With no worker running nothing would drain the queue. */
    int read_rc = started > 0 ? read_all(s, in) : rc;
    queue_close(s);
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
        worker_cleanup(&ws[i]);
    }
    pthread_mutex_lock(&s->mu);
    s->done = true;
    pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
    if (tty)
        pthread_join(progress, NULL);
    int rep_rc = report(s, (double)(now_us() - s->start_us) / 1e6);
    pipe_free(ws);
    if (read_rc < 0 || rep_rc < 0 || s->st.failures > 0)
        rc = read_rc < 0 ? read_rc : rep_rc < 0 ? rep_rc : PIPE_EIO;
    return rc;
}

int ctl_send_main(int argc, char **argv)
{
    struct sender *s = pipe_calloc(1, sizeof *s);
    int first_arg, exit_code = CTL_EXIT_USAGE;
    FILE *in = NULL;
    int rc = pipe_conf_load(&send_program, &s->cfg, argc, argv, &first_arg);
    if (rc < 0) {
        exit_code = ctl_exit_from_conf(rc);
        goto out;
    }
    if (argc - first_arg > 1) {
        fprintf(stderr, "sluicectl send: one input file at most (see --help)\n");
        goto out;
    }
    const char *path = first_arg < argc ? argv[first_arg] : "-";
    in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    exit_code = CTL_EXIT_FAIL;
    if (in == NULL) {
        fprintf(stderr, "sluicectl send: %s: %s\n", path, strerror(errno));
        goto out;
    }
    if ((rc = sender_init(s, (int)s->cfg.concurrency)) < 0) {
        exit_code = rc == PIPE_ECONFIG ? CTL_EXIT_USAGE : CTL_EXIT_FAIL;
        goto out;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = run(s, in);
    curl_global_cleanup();
    exit_code = rc == 0 ? CTL_EXIT_OK : CTL_EXIT_FAIL;
out:
    if (in && in != stdin)
        fclose(in);
    sender_cleanup(s);
    pipe_conf_cleanup(&send_program, &s->cfg);
    pipe_free(s);
    return exit_code;
}
