/* filter — the ingest stage: HTTP endpoint with durable acknowledgement.
 *
 * Requests that arrive within one flush window join one batch; the batch is
 * written to the store on a worker thread and only then is every request in
 * it answered (200 after the write, 503 if the store failed). One batch is in
 * flight at a time while the next one fills, which is what makes the commit
 * a group commit. Memory is bounded by max_pending: past it, 503. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/httpd.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
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
     "write a batch at the latest this long after its first event", 1, 60000, NULL},
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
     86400000, NULL},
    {"max_raw", PIPE_CONF_SIZE, "256MiB", OPT(max_raw),
     "largest raw/ object or --input file, decoded", 1024, 1LL << 36, NULL},
    {"idle_timeout", PIPE_CONF_DURATION, "60s", OPT(idle_timeout_ms),
     "close keep-alive connections idle this long", 100, 3600000, NULL},
    {"request_timeout", PIPE_CONF_DURATION, "30s", OPT(request_timeout_ms),
     "a request must arrive whole within this (slow clients get 408)", 100, 3600000, NULL},
    {"schemas", PIPE_CONF_STR, NULL, OPT(schemas),
     "schema directory (<event>/<N>.json, docs/schemas.md); reloaded on SIGHUP", 0, 0, "DIR"},
    {"unknown_types", PIPE_CONF_STR, "accept", OPT(unknown_types),
     "events of a type without schema: accept (envelope checks only) or reject", 0, 0,
     "accept|reject"},
    {"redact_key_file", PIPE_CONF_STR, NULL, OPT(redact_key_file),
     "file holding the key (16-64 bytes) of redact \"hash\"", 0, 0, "FILE"},
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
                snprintf(err, errlen,
                         "api_keys: the channel of key '%.8s...' must be a name "
                         "like \"web\" ([A-Za-z0-9_.-])",
                         k);
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
    if (c->flush_bytes > c->max_pending / 2) {
        snprintf(err, errlen,
                 "max_pending must be at least twice flush_bytes (one batch "
                 "fills while the previous one is written)");
        return -1;
    }
    if (c->max_event > c->flush_bytes) {
        snprintf(err, errlen, "max_event must not exceed flush_bytes");
        return -1;
    }
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

static void register_metrics(struct filter *f)
{
    struct pipe_metrics *reg = pipe_stage_metrics(f->st);
    f->m.accepted = pipe_metrics_counter(reg, "sluice_filter_events_accepted_total",
                                         "Events accepted and durably written.", NULL);
    for (int r = 1; r < PIPE_REASON__COUNT; r++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", pipe_reason_code((enum pipe_reason)r));
        f->m.rejected[r] = pipe_metrics_counter(reg, "sluice_filter_events_rejected_total",
                                                "Events rejected, by reason.", labels);
    }
    static const char *classes[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 0; i < 6; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "code=\"%s\"", classes[i]);
        f->m.requests[i] =
            pipe_metrics_counter(reg, "sluice_filter_requests_total",
                                 "Ingest requests answered, by status class.", labels);
    }
    f->m.bytes_in = pipe_metrics_counter(reg, "sluice_filter_bytes_in_total",
                                         "Request body bytes received (as sent).", NULL);
    f->m.flushes = pipe_metrics_counter(reg, "sluice_filter_flushes_total",
                                        "Batches written to the store.", NULL);
    f->m.flush_errors = pipe_metrics_counter(reg, "sluice_filter_flush_errors_total",
                                             "Batches whose write failed (answered 503).", NULL);
    f->m.raw_objects = pipe_metrics_counter(reg, "sluice_filter_raw_objects_total",
                                            "raw/ objects filtered.", NULL);
    f->m.unknown_types =
        pipe_metrics_counter(reg, "sluice_filter_unknown_type_events_total",
                             "Events of a type without schema (accepted or rejected).", NULL);
    f->m.rewritten = pipe_metrics_counter(reg, "sluice_filter_events_rewritten_total",
                                          "Events changed by schema defaults or redaction.", NULL);
    f->m.schema_reloads[0] =
        pipe_metrics_counter(reg, "sluice_filter_schema_reloads_total",
                             "Schema reloads (SIGHUP), by result.", "result=\"ok\"");
    f->m.schema_reloads[1] =
        pipe_metrics_counter(reg, "sluice_filter_schema_reloads_total",
                             "Schema reloads (SIGHUP), by result.", "result=\"error\"");
    f->m.ack_latency = pipe_metrics_histogram(
        reg, "sluice_filter_ack_seconds", "Time from a request's arrival to its answer.", NULL,
        pipe_metrics_seconds_bounds, pipe_metrics_seconds_nbounds);
    f->m.flush_latency = pipe_metrics_histogram(
        reg, "sluice_filter_flush_seconds", "Time to compress and store one batch.", NULL,
        pipe_metrics_seconds_bounds, pipe_metrics_seconds_nbounds);
}

/* respond_as — every ingest answer: counted, with the CORS headers of an
 * allowed Origin so a browser may read it. */
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

static void respond_error(struct filter *f, struct pipe_http_request *req, int status,
                          const char *code, const char *message)
{
    json_t *o = json_pack("{s:s, s:s}", "error", code, "message", message);
    char *s = json_dumps(o, JSON_COMPACT);
    respond(f, req, status, s ? s : "{}", status == 503 ? "Retry-After: 1\r\n" : NULL);
    free(s);
    json_decref(o);
}

static double pending_bytes_value(void *arg)
{
    return (double)((struct filter *)arg)->pending_bytes;
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
    int64_t age = f->cur ? pipe_clock_mono_ms() - f->cur->opened_mono_ms : 0;
    if (f->cur &&
        (f->stopping || f->cur->accepted.len + f->cur->rejected.len >= f->cfg->flush_bytes ||
         age >= f->cfg->flush_age_ms))
        filter_flush(f);
    else if (f->cur && !uv_is_active((uv_handle_t *)&f->age_timer))
        /* The age timer already fired while this write ran (the loop's
         * clock lags the monotonic one, so it can fire a little before
         * flush_age by ours): arm it again for what is left, or the open
         * batch, and every request in it, would wait for more traffic. */
        uv_timer_start(&f->age_timer, age_timer_cb, (uint64_t)(f->cfg->flush_age_ms - age), 0);
    filter_maybe_done(f);
}

void filter_maybe_done(struct filter *f)
{
    if (f->stopping && f->cur == NULL && f->inflight == NULL && !f->raw_busy)
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

static const char *channel_for(struct filter *f, struct pipe_http_request *req)
{
    const json_t *keys = f->cfg->api_keys;
    if (keys == NULL || json_object_size(keys) == 0)
        return f->cfg->default_channel;
    const char *key = pipe_http_request_header(req, "X-Api-Key");
    if (key == NULL)
        return NULL;
    return json_string_value(json_object_get(keys, key));
}

/* ingest_refused — answers 503 when a retry later can help (stopping,
 * store down, memory full); true if it did. */
static bool ingest_refused(struct filter *f, struct pipe_http_request *req)
{
    if (f->stopping) {
        respond_error(f, req, 503, "stopping", "the filter is shutting down; retry");
        return true;
    }
    if (pipe_clock_mono_ms() < f->store_down_until_mono) {
        respond_error(f, req, 503, "store_unavailable", "the store is unavailable; retry");
        return true;
    }
    if (f->pending_bytes + req->body_len > f->cfg->max_pending) {
        respond_error(f, req, 503, "busy", "too much unacknowledged data; retry shortly");
        return true;
    }
    pipe_counter_add(f->m.bytes_in, req->body_len);
    return false;
}

/* decode_body — the body with its Content-Encoding (zstd or gzip) undone,
 * into decoded (whose cap is the decoded-size limit); *body and *len say
 * where it is. On failure answers the request and returns false. */
static bool decode_body(struct filter *f, struct pipe_http_request *req, struct pipe_buf *decoded,
                        const char **body, size_t *len)
{
    *body = req->body;
    *len = req->body_len;
    const char *enc = pipe_http_request_header(req, "Content-Encoding");
    if (enc == NULL || strcasecmp(enc, "identity") == 0)
        return true;
    int rc = PIPE_EUNSUPP;
    if (strcasecmp(enc, "zstd") == 0)
        /* The decoder passes plain bytes through; a client that says
         * zstd must have sent zstd. */
        rc = pipe_codec_is_zstd(*body, *len) ? pipe_codec_decompress(*body, *len, decoded)
                                             : PIPE_ECORRUPT;
    else if (strcasecmp(enc, "gzip") == 0)
        rc = pipe_codec_gunzip(*body, *len, decoded);
    if (rc < 0) {
        if (rc == PIPE_ETOOBIG)
            respond_error(f, req, 413, "too_large", "the decoded body is over the limit");
        else if (rc == PIPE_EUNSUPP)
            respond_error(f, req, 415, "bad_encoding", "Content-Encoding must be zstd or gzip");
        else
            respond_error(f, req, 400, "bad_encoding", "the body could not be decoded");
        return false;
    }
    *body = decoded->data ? decoded->data : "";
    *len = decoded->len;
    return true;
}

/* ingest_text — validates native event text (an array, a wrapper or
 * NDJSON) into the open batch; the request is answered when the batch is
 * durable (gif: with the pixel instead of the counts). */
static void ingest_text(struct filter *f, struct pipe_http_request *req, const char *channel,
                        const char *body, size_t len, bool ndjson, bool gif)
{
    struct filter_batch *b = open_batch(f);
    struct filter_waiter *w = pipe_calloc(1, sizeof *w);
    w->req = req;
    w->gif = gif;
    w->start_mono_ms = pipe_clock_mono_ms();
    char msg[200];
    size_t before = b->accepted.len + b->rejected.len;
    /* The set is swapped on this thread only: no reference needed. */
    int rc =
        filter_ingest(f->cfg, &f->m, b, f->schemas, body, len, ndjson, channel, pipe_clock_now_ms(),
                      "http", &w->accepted, &w->rejected, msg, sizeof msg);
    if (rc < 0) {
        pipe_free(w);
        if (rc == PIPE_EPARSE)
            respond_error(f, req, 400, "not_json", msg);
        else
            respond_error(f, req, 503, "busy", "the batch is full; retry shortly");
        return;
    }
    f->pending_bytes += b->accepted.len + b->rejected.len - before;
    *b->tail = w;
    b->tail = &w->next;
    if (b->accepted.len + b->rejected.len >= f->cfg->flush_bytes)
        filter_flush(f);
}

static void handle_events(struct filter *f, struct pipe_http_request *req)
{
    const char *channel = channel_for(f, req);
    if (channel == NULL) {
        respond_error(f, req, 401, "bad_api_key", "a valid X-Api-Key header is required");
        return;
    }
    if (ingest_refused(f, req))
        return;
    const char *body;
    size_t len;
    struct pipe_buf decoded;
    pipe_buf_init(&decoded, f->cfg->max_decoded);
    if (decode_body(f, req, &decoded, &body, &len)) {
        const char *ctype = pipe_http_request_header(req, "Content-Type");
        bool ndjson = ctype && strstr(ctype, "ndjson") != NULL;
        ingest_text(f, req, channel, body, len, ndjson, false);
    }
    pipe_buf_cleanup(&decoded);
}

/* sdk_channel — the channel of an SDK request: open endpoint → the default;
 * else the first key given (X-Api-Key, HTTP Basic user, the body's
 * writeKey, ?writeKey=) looked up in api_keys, or fallback. NULL: 401. */
static const char *sdk_channel(struct filter *f, struct pipe_http_request *req,
                               const char *body_key, const char *fallback)
{
    const json_t *keys = f->cfg->api_keys;
    if (keys == NULL || json_object_size(keys) == 0)
        return f->cfg->default_channel;
    char key[256];
    const char *k = pipe_http_request_header(req, "X-Api-Key");
    if (k == NULL &&
        filter_basic_user(pipe_http_request_header(req, "Authorization"), key, sizeof key))
        k = key;
    if (k == NULL && body_key && body_key[0])
        k = body_key;
    if (k == NULL && filter_query_get(req->query, "writeKey", key, sizeof key))
        k = key;
    if (k == NULL)
        return fallback;
    return json_string_value(json_object_get(keys, k));
}

/* handle_sdk — a Segment / RudderStack (call, pixel) or Snowplow (snowplow;
 * pixel for GET /i) request: translated into native events, then ingested
 * as a native body is. */
static void handle_sdk(struct filter *f, struct pipe_http_request *req, enum filter_call call,
                       bool pixel, bool snowplow)
{
    if (ingest_refused(f, req))
        return;
    struct pipe_buf decoded, text, query;
    pipe_buf_init(&decoded, f->cfg->max_batch);
    pipe_buf_init(&query, f->cfg->max_batch);
    /* a translated event is its message plus a few envelope members */
    pipe_buf_init(&text, 2 * f->cfg->max_batch + 4096);
    struct filter_xlate x = {.received_ms = pipe_clock_now_ms(),
                             .max_depth = (int)f->cfg->max_depth};
    const char *body;
    size_t len;
    int rc = 0;
    if (pixel) {
        rc = filter_query_json(req->query, &query);
        body = query.data;
        len = query.len;
    } else if (!decode_body(f, req, &decoded, &body, &len)) {
        goto out;
    } else if (len > f->cfg->max_batch) {
        rc = PIPE_ETOOBIG; /* a plain body over the SDK batch limit */
    }
    if (rc == 0 && snowplow)
        rc = pixel ? filter_snowplow_payload(&x, body, len, &text)
                   : filter_snowplow_translate(&x, body, len, &text);
    else if (rc == 0)
        rc = filter_segment_translate(&x, call, body, len, &text);
    if (rc == PIPE_ETOOBIG) {
        respond_error(f, req, 413, "too_large", "the batch is over the limit (max_batch)");
        goto out;
    }
    if (rc < 0) {
        respond_error(f, req, 400, "bad_request", x.msg[0] ? x.msg : "the body cannot be read");
        goto out;
    }
    const char *channel =
        sdk_channel(f, req, x.write_key, snowplow ? f->cfg->snowplow_channel : NULL);
    if (channel == NULL)
        respond_error(f, req, 401, "bad_write_key",
                      "a valid write key is required (HTTP Basic user, writeKey, or X-Api-Key)");
    else
        ingest_text(f, req, channel, text.data ? text.data : "", text.len, true, pixel);
out:
    pipe_buf_cleanup(&text);
    pipe_buf_cleanup(&query);
    pipe_buf_cleanup(&decoded);
}

/* preflight — a browser's CORS OPTIONS: 204 with the allowed headers for
 * an allowed Origin, else 403 without them (the browser then refuses). */
static void preflight(struct filter *f, struct pipe_http_request *req)
{
    char headers[1024];
    filter_cors(f->cfg->cors_origins, pipe_http_request_header(req, "Origin"), true, headers,
                sizeof headers);
    if (headers[0] == '\0') {
        respond_error(f, req, 403, "origin_not_allowed", "this Origin is not in cors_origins");
        return;
    }
    pipe_counter_inc(f->m.requests[2]);
    pipe_httpd_respond(req, 204, NULL, "", 0, headers);
}

static void http_handler(struct pipe_http_request *req, void *arg)
{
    struct filter *f = arg;
    enum filter_call call = FILTER_CALL_BATCH;
    bool pixel = false, snowplow = false, native = strcmp(req->path, "/v1/events") == 0;
    if (strcmp(req->path, "/com.snowplowanalytics.snowplow/tp2") == 0 ||
        strcmp(req->path, "/i") == 0) {
        snowplow = true;
        pixel = req->path[1] == 'i';
    }
    if (native || snowplow || filter_segment_route(req->path, &call, &pixel)) {
        const char *want = pixel ? "GET" : "POST";
        const char *origin = pipe_http_request_header(req, "Origin");
        char cors[1024];
        if (origin)
            filter_cors(f->cfg->cors_origins, origin, false, cors, sizeof cors);
        if (strcmp(req->method, "OPTIONS") == 0)
            preflight(f, req);
        else if (origin && cors[0] == '\0')
            /* A browser's simple request (text/plain, no preflight) from an
             * origin not allowed: refused here too, not only by the browser. */
            respond_error(f, req, 403, "origin_not_allowed", "this Origin is not in cors_origins");
        else if (strcmp(req->method, want) != 0)
            respond_error(f, req, 405, "method_not_allowed", pixel ? "use GET" : "use POST");
        else if (native)
            handle_events(f, req);
        else
            handle_sdk(f, req, call, pixel, snowplow);
    } else if (!pipe_stage_serve_admin(f->st, req)) {
        respond_error(
            f, req, 404, "not_found",
            "no such endpoint; events go to /v1/events (or an SDK path, docs/clients.md)");
    }
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
    pipe_metrics_gauge_fn(pipe_stage_metrics(st), "sluice_filter_pending_bytes",
                          "Bytes received but not yet acknowledged.", NULL, pending_bytes_value, f);
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
    if (cfg->common.once) {
        rc = filter_raw_run_once(f);
        pipe_stage_done(st, rc);
        return 0;
    }
    struct pipe_httpd_config hc;
    pipe_httpd_config_defaults(&hc);
    hc.listen = cfg->listen;
    hc.max_body_bytes = cfg->max_body;
    hc.idle_timeout_ms = cfg->idle_timeout_ms;
    hc.request_timeout_ms = cfg->request_timeout_ms;
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
    (void)st;
    if (f->httpd)
        pipe_httpd_close(f->httpd, NULL, NULL);
    filter_batch_free(f->cur);
    filter_batch_free(f->spare);
    filter_raw_stop(f);
    filter_schemas_stop(f);
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
