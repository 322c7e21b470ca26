/* filter — the ingest stage: HTTP endpoint with durable acknowledgement.
 *
 * Requests that arrive within one flush window join one batch; the batch is
 * written to the store on a worker thread and only then is every request in
 * it answered (200 after the write, 503 if the store failed). One batch is in
 * flight at a time while the next one fills, which is what makes the commit
 * a group commit. Memory is bounded by max_pending: past it, 503. Besides
 * the native POST /v1/events it routes the SDKs' protocols (filter_segment.c,
 * filter_snowplow.c) and answers browsers' CORS (filter_compat.c). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/httpd.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/ndjson.h"
#include "stages/filter/filter.h"

#define OPT(field) offsetof(struct filter_cfg, field)

static const struct pipe_conf_opt filter_opts[] = {
    {"listen", PIPE_CONF_STR, "127.0.0.1:8080", OPT(listen), "ingest endpoint address", 0, 0,
     "ADDR"},
    {"input", PIPE_CONF_STR, NULL, OPT(input),
     "filter one local NDJSON or JSON-array file (- for stdin), then exit", 0, 0, "FILE"},
    {"input_channel", PIPE_CONF_STR, "batch", OPT(input_channel),
     "channel recorded for --input and raw/ events", 0, 0, "NAME"},
    {"flush_bytes", PIPE_CONF_SIZE, "8MiB", OPT(flush_bytes),
     "write a batch once it holds this many uncompressed bytes", 4096, 1LL << 32, NULL},
    {"flush_age", PIPE_CONF_DURATION, "1s", OPT(flush_age_ms),
     "write a batch at the latest this long after its first event", 1, PIPE_MIN_MS, NULL},
    {"max_pending", PIPE_CONF_SIZE, "256MiB", OPT(max_pending),
     "unacknowledged data held at most; past it requests get 503", 1 << 20, 1LL << 40, NULL},
    {"max_body", PIPE_CONF_SIZE, "16MiB", OPT(max_body), "largest request body (413 beyond)", 1024,
     1LL << 32, NULL},
    {"max_decoded", PIPE_CONF_SIZE, "64MiB", OPT(max_decoded),
     "largest body after zstd decoding (413 beyond)", 1024, 1LL << 32, NULL},
    {"max_event", PIPE_CONF_SIZE, "64KiB", OPT(max_event),
     "largest single event (rejected as too_large beyond)", 256, 16 << 20, NULL},
    {"max_depth", PIPE_CONF_INT, "32", OPT(max_depth), "deepest nesting inside an event", 2, 512,
     "N"},
    {"zstd_level", PIPE_CONF_INT, "1", OPT(zstd_level), "compression level of written objects", -5,
     19, "N"},
    {"api_keys", PIPE_CONF_JSON, NULL, OPT(api_keys),
     "object mapping X-Api-Key values to channels, e.g. {\"k1\":\"web\"}", 0, 0, "JSON"},
    {"default_channel", PIPE_CONF_STR, "server", OPT(default_channel),
     "channel of events on an open endpoint (no api_keys)", 0, 0, "NAME"},
    {"open", PIPE_CONF_BOOL, "false", OPT(open),
     "allow an endpoint without api_keys on a non-loopback address", 0, 0, NULL},
    {"raw", PIPE_CONF_BOOL, "true", OPT(raw), "also filter objects landed under raw/", 0, 0, NULL},
    {"raw_poll", PIPE_CONF_DURATION, "10s", OPT(raw_poll_ms), "how often raw/ is listed", 100,
     PIPE_DAY_MS, NULL},
    {"max_raw", PIPE_CONF_SIZE, "256MiB", OPT(max_raw),
     "largest raw/ object or --input file, decoded", 1024, 1LL << 36, NULL},
    {"idle_timeout", PIPE_CONF_DURATION, "60s", OPT(idle_timeout_ms),
     "close keep-alive connections idle this long", 100, PIPE_HOUR_MS, NULL},
    {"request_timeout", PIPE_CONF_DURATION, "30s", OPT(request_timeout_ms),
     "a request must arrive whole within this (slow clients get 408)", 100, PIPE_HOUR_MS, NULL},
    {"schemas", PIPE_CONF_STR, NULL, OPT(schemas),
     "schema directory (<event>/<N>.json, docs/schemas.md); reloaded on SIGHUP", 0, 0, "DIR"},
    {"unknown_types", PIPE_CONF_STR, "accept", OPT(unknown_types),
     "events of a type without schema: accept (envelope checks only) or reject", 0, 0,
     "accept|reject"},
    {"redact_key_file", PIPE_CONF_STR, NULL, OPT(redact_key_file),
     "file holding the key (16-64 bytes) of redact \"hash\"", 0, 0, "FILE"},
    {"admin_on_ingest", PIPE_CONF_BOOL, "false", OPT(admin_on_ingest),
     "also serve /healthz, /readyz and /metrics on the ingest port (else: --admin only)", 0, 0,
     NULL},
    {"max_conns", PIPE_CONF_INT, "1024", OPT(max_conns),
     "open ingest connections at most; past it 503 + Retry-After", 1, 1000000, "N"},
    {"max_conns_per_ip", PIPE_CONF_INT, "256", OPT(max_conns_per_ip),
     "open ingest connections from one client address at most; past it 503", 1, 1000000, "N"},
    {"max_records", PIPE_CONF_INT, "10000", OPT(max_records),
     "records in one request at most (413 beyond)", 1, 100000000, "N"},
    {"max_rejected", PIPE_CONF_SIZE, "4MiB", OPT(max_rejected),
     "rejection lines one request may produce, in bytes (413 beyond)", 4096, 1LL << 32, NULL},
    {"cors_origins", PIPE_CONF_STR, NULL, OPT(cors_origins),
     "origins browsers may send from (CORS), comma-separated, e.g. https://shop.example; * "
     "allows any",
     0, 0, "LIST"},
    {"snowplow_channel", PIPE_CONF_STR, NULL, OPT(snowplow_channel),
     "channel of Snowplow tracker events (the protocol carries no key) when api_keys are set; "
     "unset: Snowplow paths need X-Api-Key",
     0, 0, "NAME"},
    {"max_batch", PIPE_CONF_SIZE, "500KiB", OPT(max_batch),
     "largest Segment/RudderStack/Snowplow request body, decoded (413 beyond)", 1024, 1LL << 32,
     NULL},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static bool is_loopback(const char *addr)
{
    return strncmp(addr, "127.", 4) == 0 || strncmp(addr, "[::1]", 5) == 0 ||
           strncmp(addr, "localhost:", 10) == 0;
}

/* How the size limits must relate, each rule read as "need may be at most
 * have / factor"; -1 with the first rule broken in err. */
static int check_sizes(const struct filter_cfg *c, char *err, size_t errlen)
{
    const struct {
        uint64_t need, have, factor;
        const char *why;
    } rules[] = {
        {c->flush_bytes, c->max_pending, 2,
         "max_pending must be at least twice flush_bytes (one batch fills while the previous "
         "one is written)"},
        {c->max_body, c->max_decoded, 1,
         "max_body must not exceed max_decoded (a plain body is decoded)"},
        {c->max_decoded + c->max_rejected, c->max_pending, 2,
         "max_pending must be at least twice max_decoded + max_rejected (the most one request "
         "can add), so that a request over the limits gets 413 and one within them always fits "
         "once the pending data is written"},
        {c->max_event, c->flush_bytes, 1, "max_event must not exceed flush_bytes"},
        {c->max_batch, c->max_decoded, 1, "max_batch must not exceed max_decoded"},
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        if (rules[i].need > rules[i].have / rules[i].factor) {
            snprintf(err, errlen, "%s", rules[i].why);
            return -1;
        }
    }
    return 0;
}

static int filter_validate(void *cfgp, char *err, size_t errlen)
{
    const struct filter_cfg *c = cfgp;
    if (c->api_keys != NULL) {
        const char *k;
        json_t *v;
        if (!json_is_object(c->api_keys)) {
            snprintf(err, errlen, "api_keys must be a JSON object {\"key\": \"channel\"}");
            return -1;
        }
        json_object_foreach (c->api_keys, k, v) {
            if (!json_is_string(v) || !pipe_keys_instance_valid(json_string_value(v))) {
                /* never the key itself, nor a part of it: it is a secret */
                (void)k;
                snprintf(err, errlen,
                         "api_keys: every channel must be a name like \"web\" "
                         "([A-Za-z0-9_.-]); this one is not: %.64s",
                         json_is_string(v) ? json_string_value(v) : "(not a string)");
                return -1;
            }
        }
    }
    bool keys = c->api_keys && json_object_size(c->api_keys) > 0;
    if (!keys && !c->open && c->input == NULL && !is_loopback(c->listen)) {
        snprintf(err, errlen,
                 "listening on %s without api_keys would accept events from "
                 "anyone: configure api_keys, listen on loopback, or set --open",
                 c->listen);
        return -1;
    }
    if (check_sizes(c, err, errlen) < 0)
        return -1;
    if (c->snowplow_channel && !pipe_keys_instance_valid(c->snowplow_channel)) {
        snprintf(err, errlen, "snowplow_channel must be a name like \"web\" ([A-Za-z0-9_.-])");
        return -1;
    }
    const char *unknown = c->unknown_types ? c->unknown_types : "accept";
    if (strcmp(unknown, "accept") != 0 && strcmp(unknown, "reject") != 0) {
        snprintf(err, errlen, "unknown_types must be accept or reject");
        return -1;
    }
    if (strcmp(unknown, "reject") == 0 && c->schemas == NULL) {
        snprintf(err, errlen,
                 "unknown_types=reject without schemas would reject every event: set schemas");
        return -1;
    }
    return 0;
}

/* labeled_counters — one counter of name per value of label. */
static void labeled_counters(struct pipe_metrics *reg, const char *name, const char *help,
                             const char *label, const char *const *values, int n,
                             struct pipe_counter **out)
{
    for (int i = 0; i < n; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "%s=\"%s\"", label, values[i]);
        out[i] = pipe_metrics_counter(reg, name, help, labels);
    }
}

#define FILTER_METRIC(kind, field, name, help)                                                     \
    PIPE_METRIC(kind, struct filter_metrics, field, name, help)
#define FILTER_RELOADS(i, result)                                                                  \
    PIPE_METRIC_LABELED(COUNTER, struct filter_metrics, schema_reloads[i],                         \
                        "sluice_filter_schema_reloads_total", "result=\"" result "\"",             \
                        "Schema reloads (SIGHUP), by result.")

static double pending_bytes_value(void *arg);
static double receiving_bytes_value(void *arg);

/* The filter's metrics but those labelled by a list (register_metrics). */
static const struct pipe_metric_def filter_metric_defs[] = {
    FILTER_METRIC(COUNTER, accepted, "sluice_filter_events_accepted_total",
                  "Events accepted and durably written."),
    FILTER_METRIC(COUNTER, bytes_in, "sluice_filter_bytes_in_total",
                  "Request body bytes received (as sent)."),
    FILTER_METRIC(COUNTER, flushes, "sluice_filter_flushes_total", "Batches written to the store."),
    FILTER_METRIC(COUNTER, flush_errors, "sluice_filter_flush_errors_total",
                  "Batches whose write failed (answered 503)."),
    FILTER_METRIC(COUNTER, raw_objects, "sluice_filter_raw_objects_total",
                  "raw/ objects filtered."),
    FILTER_METRIC(COUNTER, unknown_types, "sluice_filter_unknown_type_events_total",
                  "Events of a type without schema (accepted or rejected)."),
    FILTER_METRIC(COUNTER, rewritten, "sluice_filter_events_rewritten_total",
                  "Events changed by schema defaults or redaction."),
    FILTER_RELOADS(0, "ok"),
    FILTER_RELOADS(1, "error"),
    FILTER_METRIC(SECONDS, ack_latency, "sluice_filter_ack_seconds",
                  "Time from a request's arrival to its answer."),
    FILTER_METRIC(SECONDS, flush_latency, "sluice_filter_flush_seconds",
                  "Time to compress and store one batch."),
    PIPE_METRIC_FN("sluice_filter_pending_bytes", pending_bytes_value,
                   "Bytes received but not yet acknowledged."),
    PIPE_METRIC_FN(
        "sluice_filter_receiving_bytes", receiving_bytes_value,
        "Declared length of request bodies still arriving (counted against max_pending)."),
    {0},
};

static void register_metrics(struct filter *f)
{
    struct pipe_metrics *reg = pipe_stage_metrics(f->st);
    pipe_metrics_register_table(reg, filter_metric_defs, &f->m, f);
    for (int r = 1; r < PIPE_REASON__COUNT; r++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", pipe_reason_code((enum pipe_reason)r));
        f->m.rejected[r] = pipe_metrics_counter(reg, "sluice_filter_events_rejected_total",
                                                "Events rejected, by reason.", labels);
    }
    static const char *const classes[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    labeled_counters(reg, "sluice_filter_requests_total",
                     "Ingest requests answered, by status class.", "code", classes, 6,
                     f->m.requests);
    static const char *const qreasons[] = {"too_large", "undecodable", "overflow"};
    labeled_counters(reg, "sluice_filter_raw_quarantined_total",
                     "raw/ objects not filtered but quarantined, by reason.", "reason", qreasons, 3,
                     f->m.raw_quarantined);
}

/* respond_as — every answer to a request the handler took: counted, with
 * the CORS headers of an allowed Origin so that a browser may read it. */
static void respond_as(struct filter *f, struct pipe_http_request *req, int status,
                       const char *ctype, const void *body, size_t len, const char *extra)
{
    char headers[1024];
    filter_cors(f->cfg->cors_origins, pipe_http_request_header(req, "Origin"), false, headers,
                sizeof headers);
    if (extra)
        snprintf(headers + strlen(headers), sizeof headers - strlen(headers), "%s", extra);
    pipe_counter_inc(f->m.requests[status / 100 < 6 ? status / 100 : 0]);
    pipe_httpd_respond(req, status, ctype, body, len, headers[0] ? headers : NULL);
}

static void respond(struct filter *f, struct pipe_http_request *req, int status, const char *body,
                    const char *extra)
{
    respond_as(f, req, status, "application/json", body, strlen(body), extra);
}

/* error_body — {"error":code,"message":message} into b. */
static void error_body(struct pipe_buf *b, const char *code, const char *message)
{
    pipe_buf_printf(b, "{\"error\":\"%s\",\"message\":", code);
    if (pipe_json_append_string(b, message, strlen(message)) < 0)
        pipe_buf_append_str(b, "\"\"");
    pipe_buf_append_char(b, '}');
}

/* error_headers — Retry-After on a 503 (transient: retry), Allow on a 405. */
static const char *error_headers(int status)
{
    return status == 503 ? "Retry-After: 1\r\n" : status == 405 ? "Allow: POST\r\n" : NULL;
}

static void respond_error(struct filter *f, struct pipe_http_request *req, int status,
                          const char *code, const char *message)
{
    struct pipe_buf b;
    pipe_buf_init(&b, 4096);
    error_body(&b, code, message);
    respond(f, req, status, b.data ? b.data : "{}", error_headers(status));
    pipe_buf_cleanup(&b);
}

/* early_error — the same answer, given from the headers (body unread). */
static void early_error(struct filter *f, const struct pipe_http_request *req,
                        struct pipe_http_early *ans, int status, const char *code,
                        const char *message)
{
    char cors[1024];
    filter_cors(f->cfg->cors_origins, pipe_http_request_header(req, "Origin"), false, cors,
                sizeof cors);
    pipe_buf_append_str(&ans->headers, cors);
    pipe_counter_inc(f->m.requests[status / 100 < 6 ? status / 100 : 0]);
    ans->status = status;
    ans->content_type = "application/json";
    error_body(&ans->body, code, message);
    const char *h = error_headers(status);
    if (h)
        pipe_buf_append_str(&ans->headers, h);
}

static double pending_bytes_value(void *arg)
{
    return (double)((struct filter *)arg)->pending_bytes;
}

static double receiving_bytes_value(void *arg)
{
    struct filter *f = arg;
    struct pipe_httpd_counters n = {0};
    if (f->httpd)
        pipe_httpd_counters(f->httpd, &n);
    return (double)n.body_bytes_declared;
}

/* ---- flushing ---- */

static void answer_waiters(struct filter *f, struct filter_batch *b)
{
    int64_t now = pipe_clock_mono_ms();
    struct filter_waiter *w = b->waiters;
    while (w) {
        struct filter_waiter *next = w->next;
        if (b->rc == 0 && w->gif) {
            respond_as(f, w->req, 200, "image/gif", filter_pixel_gif, filter_pixel_gif_len, NULL);
        } else if (b->rc == 0) {
            char body[80];
            snprintf(body, sizeof body, "{\"accepted\":%u,\"rejected\":%u}", w->accepted,
                     w->rejected);
            respond(f, w->req, 200, body, NULL);
        } else {
            respond_error(f, w->req, 503, "store_unavailable",
                          "the events could not be stored; retry with the same ids");
        }
        pipe_histogram_observe(f->m.ack_latency, (double)(now - w->start_mono_ms) / 1000.0);
        pipe_free(w);
        w = next;
    }
    b->waiters = NULL;
}

static void flush_work(uv_work_t *w)
{
    struct filter_batch *b = w->data;
    b->rc = filter_batch_write(b->f, b);
}

static void age_timer_cb(uv_timer_t *t);

static void flush_done(uv_work_t *w, int status)
{
    struct filter_batch *b = w->data;
    struct filter *f = b->f;
    if (status != 0)
        b->rc = PIPE_ESHUTDOWN;
    double secs = (double)(pipe_clock_mono_ms() - b->write_mono_ms) / 1000.0;
    pipe_histogram_observe(f->m.flush_latency, secs);
    if (b->rc == 0) {
        pipe_counter_inc(f->m.flushes);
        pipe_counter_add(f->m.accepted, b->n_accepted);
    } else {
        pipe_counter_inc(f->m.flush_errors);
        /* Fail fast for a moment rather than queue more work for a store
         * that is down; the next batch after that probes it again. */
        f->store_down_until_mono = pipe_clock_mono_ms() + 1000;
    }
    answer_waiters(f, b);
    f->inflight = NULL;
    if (f->spare == NULL)
        f->spare = b;
    else
        filter_batch_free(b);
    /* What is pending now is the open batch alone. */
    f->pending_bytes = f->cur ? f->cur->accepted.len + f->cur->rejected.len : 0;
    if (f->cur) {
        int64_t age = pipe_clock_mono_ms() - f->cur->opened_mono_ms;
        if (f->stopping || f->cur->accepted.len + f->cur->rejected.len >= f->cfg->flush_bytes ||
            age >= f->cfg->flush_age_ms) {
            filter_flush(f);
        } else {
            /* The age timer may have fired while this write ran (libuv's
             * cached loop time can be behind when a request took long) and
             * found it in flight: arm it again for what is left. */
            uv_update_time(pipe_stage_loop(f->st));
            uv_timer_start(&f->age_timer, age_timer_cb, (uint64_t)(f->cfg->flush_age_ms - age), 0);
        }
    }
    filter_maybe_done(f);
}

void filter_maybe_done(struct filter *f)
{
    if (f->stopping && f->cur == NULL && f->inflight == NULL && !f->raw_poller)
        pipe_stage_done(f->st, 0);
}

void filter_flush(struct filter *f)
{
    if (f->inflight != NULL || f->cur == NULL)
        return; /* flush_done picks the open batch up when the write ends */
    uv_timer_stop(&f->age_timer);
    struct filter_batch *b = f->cur;
    f->cur = NULL;
    f->inflight = b;
    b->write_mono_ms = pipe_clock_mono_ms();
    b->work.data = b;
    uv_queue_work(pipe_stage_loop(f->st), &b->work, flush_work, flush_done);
}

static void age_timer_cb(uv_timer_t *t)
{
    filter_flush(t->data);
}

/* open_batch — the batch new events join; opens one named by this
 * instance and a sequence number (HTTP objects are not replayable inputs,
 * so their names need only be unique, not deterministic). */
static struct filter_batch *open_batch(struct filter *f)
{
    if (f->cur)
        return f->cur;
    struct pipe_buf name;
    pipe_buf_init(&name, 512);
    pipe_keys_http_name(&name, (unsigned)f->cfg->common.generation, f->cfg->common.instance,
                        f->start_ms, ++f->seq);
    if (f->spare) {
        f->cur = f->spare;
        f->spare = NULL;
        filter_batch_recycle(f->cur, pipe_clock_now_ms(), name.data);
    } else {
        /* The batch may grow past flush_bytes while a write is in flight;
         * the pending-bytes check in front of it keeps the total bounded. */
        f->cur = filter_batch_new(f, pipe_clock_now_ms(), name.data, f->cfg->max_pending);
    }
    pipe_buf_cleanup(&name);
    uv_timer_start(&f->age_timer, age_timer_cb, (uint64_t)f->cfg->flush_age_ms, 0);
    return f->cur;
}

/* ---- requests ---- */

static const char events_path[] = "/v1/events";

/* channel_for — the channel of the request's X-Api-Key, the default one on
 * an open endpoint, NULL for a missing or unknown key. The key is only
 * looked up, never logged or copied. */
static const char *channel_for(struct filter *f, const struct pipe_http_request *req)
{
    const json_t *keys = f->cfg->api_keys;
    if (keys == NULL || json_object_size(keys) == 0)
        return f->cfg->default_channel;
    const char *key = pipe_http_request_header(req, "X-Api-Key");
    if (key == NULL)
        return NULL;
    return json_string_value(json_object_get(keys, key));
}

static bool is_admin_path(const char *path)
{
    return strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
           strcmp(path, "/metrics") == 0;
}

/* unavailable — why no request can be taken now (stopping, the store
 * down), with its error code; NULL when requests can be taken. */
static const char *unavailable(const struct filter *f, const char **code)
{
    if (f->stopping) {
        *code = "stopping";
        return "the filter is shutting down; retry";
    }
    if (pipe_clock_mono_ms() < f->store_down_until_mono) {
        *code = "store_unavailable";
        return "the store is unavailable; retry";
    }
    return NULL;
}

/* What an SDK path is: Segment / RudderStack (call, pixel) or Snowplow. */
struct sdk_route {
    enum filter_call call;
    bool pixel;
    bool snowplow;
};

static bool sdk_route_of(const char *path, struct sdk_route *r)
{
    r->call = FILTER_CALL_BATCH;
    r->pixel = r->snowplow = false;
    if (strcmp(path, "/com.snowplowanalytics.snowplow/tp2") == 0 || strcmp(path, "/i") == 0) {
        r->snowplow = true;
        r->pixel = path[1] == 'i';
        return true;
    }
    return filter_segment_route(path, &r->call, &r->pixel) == 1;
}

/* Set as req->ctx by on_head for an SDK request it let through. */
static const char sdk_admitted = 1;

/* sdk_key — the write key a request presents before its body: X-Api-Key,
 * the user name of HTTP Basic, or ?writeKey= (into buf); NULL for none. */
static const char *sdk_key(const struct pipe_http_request *req, char *buf, size_t cap)
{
    const char *k = pipe_http_request_header(req, "X-Api-Key");
    if (k == NULL && filter_basic_user(pipe_http_request_header(req, "Authorization"), buf, cap))
        k = buf;
    if (k == NULL && filter_query_get(req->query, "writeKey", buf, cap))
        k = buf;
    return k;
}

/* sdk_channel — the channel of an SDK request: the default one on an open
 * endpoint; else its key (sdk_key, else the body's writeKey) looked up in
 * api_keys, or fallback when it has no key. NULL: 401. */
static const char *sdk_channel(struct filter *f, const struct pipe_http_request *req,
                               const char *body_key, const char *fallback)
{
    const json_t *keys = f->cfg->api_keys;
    if (keys == NULL || json_object_size(keys) == 0)
        return f->cfg->default_channel;
    char buf[256];
    const char *k = sdk_key(req, buf, sizeof buf);
    if (k == NULL && body_key && body_key[0])
        k = body_key;
    if (k == NULL)
        return fallback;
    return json_string_value(json_object_get(keys, k));
}

/* preflight — a browser's CORS OPTIONS: 204 with the allowed origin and
 * headers, or 403 without them (the browser then refuses). */
static void preflight(struct filter *f, const struct pipe_http_request *req,
                      struct pipe_http_early *ans)
{
    char headers[1024];
    filter_cors(f->cfg->cors_origins, pipe_http_request_header(req, "Origin"), true, headers,
                sizeof headers);
    if (headers[0] == '\0') {
        early_error(f, req, ans, 403, "origin_not_allowed", "this Origin is not in cors_origins");
        return;
    }
    pipe_counter_inc(f->m.requests[2]);
    ans->status = 204;
    pipe_buf_append_str(&ans->headers, headers);
}

/* head_route — route, CORS, method and key of a request; false when it was
 * answered in ans. */
static bool head_route(struct filter *f, struct pipe_http_request *req, struct pipe_http_early *ans)
{
    struct sdk_route r = {0};
    bool native = strcmp(req->path, events_path) == 0;
    if (!native && !sdk_route_of(req->path, &r)) {
        if (!(f->cfg->admin_on_ingest && is_admin_path(req->path)))
            early_error(f, req, ans, 404, "not_found",
                        "no such endpoint; events go to /v1/events (SDK paths: docs/clients.md)");
        return false;
    }
    const char *origin = pipe_http_request_header(req, "Origin");
    char cors[1024];
    if (strcmp(req->method, "OPTIONS") == 0) {
        preflight(f, req, ans);
        return false;
    }
    if (origin) {
        /* A simple request (text/plain: no preflight) is sent by the browser
         * whatever the answer: an origin not allowed is refused here too. */
        filter_cors(f->cfg->cors_origins, origin, false, cors, sizeof cors);
        if (cors[0] == '\0') {
            early_error(f, req, ans, 403, "origin_not_allowed",
                        "this Origin is not in cors_origins");
            return false;
        }
    }
    if (strcmp(req->method, r.pixel ? "GET" : "POST") != 0) {
        early_error(f, req, ans, 405, "method_not_allowed", r.pixel ? "use GET" : "use POST");
        return false;
    }
    if (native) {
        const char *channel = channel_for(f, req);
        if (channel == NULL) {
            early_error(f, req, ans, 401, "bad_api_key", "a valid X-Api-Key header is required");
            return false;
        }
        req->ctx = (void *)channel; /* owned by the configuration */
        return true;
    }
    /* An SDK request: a key presented and unknown, or none where the body
     * cannot bring one (pixels, Snowplow without snowplow_channel), is 401
     * now; a Segment body may still carry its writeKey. */
    char buf[256];
    const char *key = sdk_key(req, buf, sizeof buf);
    bool keyed = f->cfg->api_keys && json_object_size(f->cfg->api_keys) > 0;
    bool body_key = !r.pixel && !r.snowplow;
    if (keyed && ((key && sdk_channel(f, req, NULL, NULL) == NULL) ||
                  (!key && !body_key && !(r.snowplow && f->cfg->snowplow_channel)))) {
        early_error(f, req, ans, 401, "bad_write_key",
                    "a valid write key is required (HTTP Basic user, writeKey, or X-Api-Key)");
        return false;
    }
    req->ctx = (void *)&sdk_admitted;
    return true;
}

/* on_head — everything decided from the request line and headers, before
 * the body is read or any memory reserved for it: route, CORS, method, API
 * key, and whether the body can be held at all (what is pending plus the
 * bodies still arriving, by their declared length, against max_pending). */
static void on_head(struct pipe_http_request *req, void *arg, struct pipe_http_early *ans)
{
    struct filter *f = arg;
    if (!head_route(f, req, ans) || req->ctx == NULL)
        return;
    const char *code, *why = unavailable(f, &code);
    if (why) {
        early_error(f, req, ans, 503, code, why);
        return;
    }
    struct pipe_httpd_counters n;
    pipe_httpd_counters(f->httpd, &n);
    uint64_t declared = req->content_length > 0 ? (uint64_t)req->content_length : 0;
    /* a body over max_body is httpd's 413 (permanent), not a 503 */
    if (declared <= f->cfg->max_body &&
        f->pending_bytes + n.body_bytes_declared + declared > f->cfg->max_pending)
        early_error(f, req, ans, 503, "busy", "too much unacknowledged data; retry shortly");
}

/* decode_body — the body as sent, or zstd- or gzip-decoded into decoded
 * (capped by decoded's max). 0, or the status to answer (with *code, *message). */
static int decode_body(struct pipe_http_request *req, struct pipe_buf *decoded, const char **body,
                       size_t *len, const char **code, const char **message)
{
    *body = req->body;
    *len = req->body_len;
    const char *enc = pipe_http_request_header(req, "Content-Encoding");
    if (!enc || strcasecmp(enc, "identity") == 0)
        return 0;
    int rc = PIPE_EUNSUPP;
    if (strcasecmp(enc, "zstd") == 0)
        /* The decoder passes plain bytes through; a client that says zstd
         * must have sent zstd. */
        rc = pipe_codec_is_zstd(req->body, req->body_len)
                 ? pipe_codec_decompress(req->body, req->body_len, decoded)
                 : PIPE_ECORRUPT;
    else if (strcasecmp(enc, "gzip") == 0)
        rc = pipe_codec_gunzip(req->body, req->body_len, decoded);
    if (rc == PIPE_ETOOBIG) {
        *code = "too_large";
        *message = "the decoded body is over the limit (max_decoded)";
        return 413;
    }
    if (rc == PIPE_EUNSUPP) {
        *code = "bad_encoding";
        *message = "Content-Encoding must be zstd or gzip";
        return 415;
    }
    if (rc < 0) {
        *code = "bad_encoding";
        *message = "the body could not be decoded (Content-Encoding)";
        return 400;
    }
    *body = decoded->data ? decoded->data : "";
    *len = decoded->len;
    return 0;
}

/* ingest_request — the body's events into the open batch; the request
 * waits for the batch's write. A request over a limit gets 413 (never
 * 503: retrying cannot help); one that does not fit the batch holding
 * other requests' events gets 503 while that batch is written. */
static void ingest_request(struct filter *f, struct pipe_http_request *req, const char *body,
                           size_t len, const char *channel, bool ndjson, bool gif)
{
    const struct filter_cfg *cfg = f->cfg;
    const struct filter_limits lim = {
        .max_records = (uint64_t)cfg->max_records,
        .max_rejected = cfg->max_rejected,
        .max_out = cfg->max_decoded + cfg->max_rejected,
    };
    const struct filter_origin origin = {channel, pipe_clock_now_ms(), "http"};
    struct filter_batch *b = open_batch(f);
    struct filter_waiter *w = pipe_calloc(1, sizeof *w);
    w->req = req;
    w->gif = gif;
    w->start_mono_ms = pipe_clock_mono_ms();
    char msg[200];
    size_t before = b->accepted.len + b->rejected.len;
    /* The set is swapped on this thread only: no reference needed. */
    int rc = filter_ingest(cfg, &f->m, b, f->schemas, body, len, ndjson, &lim, &origin,
                           &w->accepted, &w->rejected, msg, sizeof msg);
    if (rc < 0) {
        pipe_free(w);
        if (rc == PIPE_EPARSE)
            respond_error(f, req, 400, "not_json", msg);
        else if (rc == PIPE_ETOOBIG || before == 0)
            respond_error(f, req, 413, "too_large",
                          rc == PIPE_ETOOBIG ? msg : "the events are over the batch cap");
        else
            respond_error(f, req, 503, "busy", "the batch is full; retry shortly");
        if (rc == PIPE_EFULL)
            filter_flush(f);
        return;
    }
    f->pending_bytes += b->accepted.len + b->rejected.len - before;
    *b->tail = w;
    b->tail = &w->next;
    if (b->accepted.len + b->rejected.len >= cfg->flush_bytes)
        filter_flush(f);
}

/* admitted — checked again, the state may have changed while the body
 * arrived: true when the request can be taken (counted), else answered. */
static bool admitted(struct filter *f, struct pipe_http_request *req)
{
    const char *code, *why = unavailable(f, &code);
    if (why) {
        respond_error(f, req, 503, code, why);
        return false;
    }
    if (f->pending_bytes + req->body_len > f->cfg->max_pending) {
        respond_error(f, req, 503, "busy", "too much unacknowledged data; retry shortly");
        return false;
    }
    pipe_counter_add(f->m.bytes_in, req->body_len);
    return true;
}

static void handle_events(struct filter *f, struct pipe_http_request *req, const char *channel)
{
    if (!admitted(f, req))
        return;
    const char *code;
    struct pipe_buf decoded;
    pipe_buf_init(&decoded, f->cfg->max_decoded);
    const char *body, *message = NULL;
    size_t len;
    int status = decode_body(req, &decoded, &body, &len, &code, &message);
    const char *ctype = pipe_http_request_header(req, "Content-Type");
    if (status)
        respond_error(f, req, status, code, message);
    else
        ingest_request(f, req, body, len, channel, ctype && strstr(ctype, "ndjson"), false);
    pipe_buf_cleanup(&decoded);
}

/* sdk_translate — the request's messages as native NDJSON events in text
 * (x says what the body held). 0, or the status answered. */
static int sdk_translate(struct filter *f, struct pipe_http_request *req, const struct sdk_route *r,
                         struct filter_xlate *x, struct pipe_buf *text)
{
    struct pipe_buf decoded, query;
    pipe_buf_init(&decoded, f->cfg->max_batch);
    pipe_buf_init(&query, f->cfg->max_batch);
    const char *body, *code = "bad_request", *message = NULL;
    size_t len;
    int status = 0, rc = 0;
    if (r->pixel) {
        rc = filter_query_json(req->query, &query);
        body = query.data;
        len = query.len;
    } else if ((status = decode_body(req, &decoded, &body, &len, &code, &message)) == 0 &&
               len > f->cfg->max_batch) {
        rc = PIPE_ETOOBIG; /* a plain body over the SDK batch limit */
    }
    if (status == 0 && rc == 0 && r->snowplow)
        rc = r->pixel ? filter_snowplow_payload(x, body, len, text)
                      : filter_snowplow_translate(x, body, len, text);
    else if (status == 0 && rc == 0)
        rc = filter_segment_translate(x, r->call, body, len, text);
    if (status == 0 && rc == PIPE_ETOOBIG) {
        status = 413;
        code = "too_large";
        message = "the batch is over the limit (max_batch)";
    } else if (status == 0 && rc < 0) {
        status = 400;
        message = x->msg[0] ? x->msg : "the query string is not UTF-8";
    }
    if (status)
        respond_error(f, req, status, code, message);
    pipe_buf_cleanup(&query);
    pipe_buf_cleanup(&decoded);
    return status;
}

/* handle_sdk — a Segment / RudderStack or Snowplow request: translated
 * into native events, then ingested as a native body is. */
static void handle_sdk(struct filter *f, struct pipe_http_request *req, const struct sdk_route *r)
{
    if (!admitted(f, req))
        return;
    /* a translated event is its message plus a few envelope members; the
     * buffer is the filter's, reused: a fresh one faulted in new pages for
     * every batch */
    struct pipe_buf *text = &f->sdk_text;
    pipe_buf_reset(text);
    text->max = 2 * f->cfg->max_batch + 4096;
    struct filter_xlate x = {.received_ms = pipe_clock_now_ms(),
                             .max_depth = (int)f->cfg->max_depth};
    if (sdk_translate(f, req, r, &x, text) == 0) {
        const char *channel =
            sdk_channel(f, req, x.write_key, r->snowplow ? f->cfg->snowplow_channel : NULL);
        if (channel == NULL)
            respond_error(f, req, 401, "bad_write_key",
                          "a valid write key is required (HTTP Basic user, writeKey, or "
                          "X-Api-Key)");
        else
            ingest_request(f, req, text->data ? text->data : "", text->len, channel, true,
                           r->pixel);
    }
}

/* http_handler — a request on_head let through: POST /v1/events with its
 * channel in ctx, an SDK path, or (admin_on_ingest) an admin path. */
static void http_handler(struct pipe_http_request *req, void *arg)
{
    struct filter *f = arg;
    struct sdk_route r;
    if (req->ctx != NULL && strcmp(req->path, events_path) == 0)
        handle_events(f, req, req->ctx);
    else if (req->ctx == &sdk_admitted && sdk_route_of(req->path, &r))
        handle_sdk(f, req, &r);
    else if (!(f->cfg->admin_on_ingest && pipe_stage_serve_admin(f->st, req)))
        respond_error(f, req, 404, "not_found", "no such endpoint; events go to /v1/events");
}

/* ---- the stage ---- */

static int filter_init(struct pipe_stage *st, void *cfgp, void **state)
{
    const struct filter_cfg *cfg = cfgp;
    struct filter *f = pipe_calloc(1, sizeof *f);
    f->st = st;
    f->cfg = cfg;
    f->start_ms = pipe_clock_now_ms();
    register_metrics(f);
    uv_timer_init(pipe_stage_loop(st), &f->age_timer);
    f->age_timer.data = f;
    *state = f;
    int rc = filter_schemas_start(f);
    if (rc < 0)
        return rc;

    if (cfg->input) {
        rc = filter_input_file(f, cfg->input);
        pipe_stage_done(st, rc);
        return 0;
    }
    if (cfg->common.once)
        return filter_raw_start(f); /* raw/ is the whole run */
    struct pipe_httpd_config hc;
    pipe_httpd_config_defaults(&hc);
    hc.listen = cfg->listen;
    hc.max_body_bytes = cfg->max_body;
    hc.idle_timeout_ms = cfg->idle_timeout_ms;
    hc.request_timeout_ms = cfg->request_timeout_ms;
    hc.max_connections = (size_t)cfg->max_conns;
    hc.max_connections_per_ip = (size_t)cfg->max_conns_per_ip;
    hc.on_headers = on_head;
    rc = pipe_httpd_new(pipe_stage_loop(st), &hc, http_handler, f, &f->httpd);
    if (rc < 0) {
        pipe_log_error("cannot listen", "addr=%s err=\"%s\"", cfg->listen, pipe_strerror(rc));
        return rc;
    }
    pipe_log_info("ingest listening", "addr=%s port=%d", cfg->listen, pipe_httpd_port(f->httpd));
    if (cfg->raw) {
        rc = filter_raw_start(f);
        if (rc < 0)
            return rc;
    }
    filter_schemas_watch(f);
    pipe_stage_set_ready(st, true);
    return 0;
}

/* filter_stop — SIGTERM: stop accepting, write what is buffered, answer
 * every pending request, then let the runtime exit. */
static void filter_stop(struct pipe_stage *st, void *state)
{
    struct filter *f = state;
    (void)st;
    f->stopping = true;
    pipe_stage_set_ready(f->st, false);
    if (f->httpd)
        pipe_httpd_stop_accepting(f->httpd);
    filter_raw_stop(f);
    filter_flush(f);
    filter_maybe_done(f);
}

static void filter_exit(struct pipe_stage *st, void *state)
{
    struct filter *f = state;
    if (f->httpd)
        pipe_httpd_close(f->httpd, NULL, NULL);
    filter_batch_free(f->cur);
    filter_batch_free(f->spare);
    filter_raw_stop(f);
    filter_schemas_stop(f);
    pipe_buf_cleanup(&f->sdk_text);
    /* The timer lives inside f: it must be closed, and its close must have
     * run, before f is freed (the runtime walks the loop's handles after
     * exit). One turn of the loop runs the close. */
    uv_close((uv_handle_t *)&f->age_timer, NULL);
    uv_run(pipe_stage_loop(st), UV_RUN_NOWAIT);
    pipe_free(f);
}

const struct pipe_stage_desc filter_stage = {
    .name = "filter",
    .summary = "Ingest endpoint and validator: accepts event batches over HTTP (POST "
               "/v1/events), validates and enriches every event (envelope checks, then the "
               "schema of its type when schemas are configured: defaults, redaction), and "
               "acknowledges a request "
               "only after its events are durably stored under filtered/ (accepted) and "
               "rejected/ (with a reason). Also filters objects landed under raw/.",
    .opts = filter_opts,
    .cfg_size = sizeof(struct filter_cfg),
    .validate = filter_validate,
    .init = filter_init,
    .stop = filter_stop,
    .exit = filter_exit,
};
