/* filter — internal declarations shared by the filter stage's files:
 * filter.c (descriptor, configuration, HTTP ingest), filter_batch.c (group
 * commit of accepted and rejected events), filter_raw.c (the raw/ source
 * and --input backfills), filter_schema.c (schemas: loading, SIGHUP
 * reload, sharing the current set with the raw/ worker), filter_segment.c
 * and filter_snowplow.c (the SDKs' wire protocols, translated into native
 * events), filter_compat.c (what those share: query strings, write keys,
 * CORS). */
#ifndef SLUICE_FILTER_H
#define SLUICE_FILTER_H

#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "libpipe/buf.h"
#include "libpipe/event.h"
#include "libpipe/stage.h"

struct pipe_counter;
struct pipe_histogram;
struct pipe_http_request;
struct pipe_schema_checker;
struct pipe_schema_set;
struct pipe_httpd;
struct pipe_zwriter;
struct pipe_body_iter;
struct pipe_store_obj;

struct filter_cfg {
    struct pipe_stage_common common; /* must come first */
    char *listen;
    char *input;
    char *input_channel;
    uint64_t flush_bytes;
    int64_t flush_age_ms;
    uint64_t max_pending;
    uint64_t max_body;
    uint64_t max_decoded;
    uint64_t max_event;
    int64_t max_depth;
    int64_t zstd_level;
    json_t *api_keys;
    char *default_channel;
    bool open;
    bool raw;
    int64_t raw_poll_ms;
    uint64_t max_raw;
    int64_t idle_timeout_ms;
    int64_t request_timeout_ms;
    char *schemas;         /* schema directory, NULL: none */
    char *unknown_types;   /* "accept" or "reject" */
    char *redact_key_file; /* key of redact "hash" */
    bool admin_on_ingest;  /* also serve /healthz, /readyz, /metrics on listen */
    int64_t max_conns;
    int64_t max_conns_per_ip;
    int64_t max_records;    /* per request */
    uint64_t max_rejected;  /* rejection bytes per request */
    char *cors_origins;     /* comma-separated origins allowed by CORS; "*": any */
    char *snowplow_channel; /* channel of Snowplow events when api_keys are set */
    uint64_t max_batch;     /* largest SDK batch body, decoded (413 beyond) */
};

/* Why a raw/ object was quarantined instead of filtered. */
enum filter_quarantine { FILTER_Q_TOO_LARGE, FILTER_Q_UNDECODABLE, FILTER_Q_OVERFLOW };

/* One event's fate, counted per reason for /metrics. */
struct filter_metrics {
    struct pipe_counter *accepted;
    struct pipe_counter *rejected[PIPE_REASON__COUNT];
    struct pipe_counter *requests[6]; /* by status class: 0 other, 2xx .. 5xx */
    struct pipe_counter *bytes_in;
    struct pipe_counter *flushes;
    struct pipe_counter *flush_errors;
    struct pipe_counter *raw_objects;
    struct pipe_counter *raw_quarantined[3]; /* by enum filter_quarantine */
    struct pipe_counter *unknown_types;      /* events of a type without schema */
    struct pipe_counter *rewritten;          /* events changed by defaults or redaction */
    struct pipe_counter *schema_reloads[2];  /* ok, error */
    struct pipe_histogram *ack_latency;
    struct pipe_histogram *flush_latency;
};

/* A client request waiting for the batch that holds its events to be
 * durable; answered 200 or 503 when the flush ends. */
struct filter_waiter {
    struct pipe_http_request *req;
    uint32_t accepted, rejected;
    int64_t start_mono_ms;
    bool gif; /* answer with the 1x1 GIF (pixel paths) instead of JSON counts */
    struct filter_waiter *next;
};

/* A group-commit batch: what one filtered/ object and one rejected/ object
 * will hold. Built on the loop thread, written on a worker thread. */
struct filter_batch {
    struct filter *f;
    struct pipe_buf accepted; /* NDJSON, uncompressed */
    struct pipe_buf rejected;
    uint64_t n_accepted, n_rejected;
    int64_t time_ms; /* names the dt=/hr= partition */
    char *name;      /* object name inside the partition */
    struct filter_waiter *waiters, **tail;
    int64_t opened_mono_ms;
    int64_t write_mono_ms; /* when the write was handed to a worker */
    uv_work_t work;
    int rc; /* result of the write */
    /* Kept with the batch so a recycled batch reuses them: fresh multi-MB
     * buffers and compression contexts per flush cost more in page faults
     * than validating the events. */
    struct pipe_buf z;
    struct pipe_zwriter *zw;
    /* Schema checking scratch: a batch is filled by one thread at a time. */
    struct pipe_schema_checker *ck;
    struct pipe_buf scratch;
};

struct filter {
    struct pipe_stage *st;
    const struct filter_cfg *cfg;
    struct filter_metrics m;
    struct pipe_httpd *httpd;
    uv_timer_t age_timer;
    struct filter_batch *cur;      /* open for new events */
    struct filter_batch *inflight; /* being written */
    struct filter_batch *spare;    /* written, kept for reuse */
    uint64_t pending_bytes;        /* bodies and batches not yet answered */
    uint64_t seq;
    int64_t start_ms;
    int64_t store_down_until_mono; /* answer 503 at once until then */
    bool stopping;
    /* raw/ source */
    struct pipe_stage_poller *raw_poller; /* the runtime's, until it has ended */
    struct filter_raw *raw;               /* the raw/ source's state (filter_raw.c) */
    /* schemas: swapped on the loop thread (SIGHUP); the raw/ worker takes
     * a reference under the lock, the loop thread reads the pointer. */
    struct pipe_schema_set *schemas;
    pthread_mutex_t schemas_lock;
    unsigned char redact_key[64];
    size_t redact_key_len;
    uv_signal_t *sighup;
    struct pipe_buf sdk_text; /* an SDK request's events, kept for the next (no fresh pages) */
};

/* ---- filter_batch.c ---- */

/* filter_batch_new — an empty batch for the dt=/hr= partition of time_ms,
 * whose objects will be called name; each buffer may grow to cap bytes. */
struct filter_batch *filter_batch_new(struct filter *f, int64_t time_ms, const char *name,
                                      size_t cap);
void filter_batch_free(struct filter_batch *b);
/* filter_batch_recycle — empties b for reuse (keeping its allocations) as
 * a batch for time_ms and name. */
void filter_batch_recycle(struct filter_batch *b, int64_t time_ms, const char *name);
/* filter_batch_write — compresses and stores the batch (rejected/ first,
 * then filtered/, whose presence marks the batch done); any thread. */
int filter_batch_write(struct filter *f, struct filter_batch *b);

/* filter_reject — appends one line of rejected/: the original text (as a
 * JSON string, or base64 when it is not UTF-8; NULL rec for none), the
 * reason code, a human message, where it came from and when. */
int filter_reject(struct pipe_buf *out, const char *rec, size_t len, enum pipe_reason reason,
                  const char *message, const char *channel, const char *received_at,
                  const char *source);

/* filter_quarantine_line — the rejected/ line that records a raw/ object
 * not filtered: its key, etag and size, the reason code, why it was
 * quarantined ("too_large", "undecodable", "overflow") and a message. */
int filter_quarantine_line(struct pipe_buf *out, const struct pipe_store_obj *o,
                           enum pipe_reason reason, const char *why, const char *message,
                           const char *channel, const char *received_at, const char *source);

/* What one body may cost; 0 is no limit. max_* are a request's limits
 * (over one: PIPE_ETOOBIG, permanent); piece_* cut a long body into pieces
 * (filter_ingest_piece returns 1 when one is full). */
struct filter_limits {
    uint64_t max_records;  /* records in the body */
    uint64_t max_rejected; /* bytes of rejection lines it produces */
    uint64_t max_out;      /* bytes it adds to the batch in all */
    uint64_t piece_records;
    uint64_t piece_bytes; /* of input */
};

/* Where a body's events come from. */
struct filter_origin {
    const char *channel;
    int64_t received_ms;
    const char *source; /* "http", "raw:<key>", "input" */
};

/* filter_ingest — validates every record of body (envelope, then the
 * schema of its type when schemas is not NULL) and appends accepted events
 * and rejection lines to b. *n_acc and *n_rej count them. Returns 0, or
 * with b left as it was: PIPE_EPARSE when the body is not JSON at all,
 * PIPE_ETOOBIG when it passes a limit of lim (both permanent; msg says
 * why), PIPE_EFULL when the batch is full (transient). */
int filter_ingest(const struct filter_cfg *cfg, struct filter_metrics *m, struct filter_batch *b,
                  const struct pipe_schema_set *schemas, const char *body, size_t len, bool ndjson,
                  const struct filter_limits *lim, const struct filter_origin *o, uint32_t *n_acc,
                  uint32_t *n_rej, char *msg, size_t msglen);
/* What ingesting bodies counted for /metrics (accepted events are counted
 * by whoever makes them durable). */
struct filter_tally {
    uint32_t acc, rej, not_json, unknown, rewritten;
    uint32_t by_reason[PIPE_REASON__COUNT];
};
/* filter_tally_add — adds t to sum. */
void filter_tally_add(struct filter_tally *sum, const struct filter_tally *t);
/* filter_tally_commit — adds t's rejections by reason, unknown types and
 * rewritten events to the metrics m. */
void filter_tally_commit(struct filter_metrics *m, const struct filter_tally *t);

/* filter_ingest_piece — as filter_ingest, from it onwards, stopping after
 * a piece (lim->piece_*): 1 when records remain, 0 at the end. What it
 * counted is added to *sum, not to the metrics: the raw/ source commits an
 * object's tallies once, when the whole object is done (a piece redone
 * after a failure is not counted twice). */
int filter_ingest_piece(const struct filter_cfg *cfg, struct filter_tally *sum,
                        struct filter_batch *b, const struct pipe_schema_set *schemas,
                        struct pipe_body_iter *it, const struct filter_limits *lim,
                        const struct filter_origin *o, uint32_t *n_acc, uint32_t *n_rej, char *msg,
                        size_t msglen);

/* ---- filter.c: the HTTP side ---- */

/* filter_flush — hands the open batch to a worker if none is in flight. */
void filter_flush(struct filter *f);
/* filter_maybe_done — once stopping and nothing is left in hand, tells the
 * runtime the stage is done. */
void filter_maybe_done(struct filter *f);

/* ---- filter_schema.c ---- */

/* filter_schemas_start — reads the redaction key and loads the schema
 * directory (if configured); a failure is printed and stops the start. */
int filter_schemas_start(struct filter *f);
/* filter_schemas_watch — reloads on SIGHUP from now on (daemon mode). */
void filter_schemas_watch(struct filter *f);
/* filter_schemas_reload — loads the directory again and swaps the new set
 * in; a broken directory keeps the old set (logged, counted). Loop thread. */
int filter_schemas_reload(struct filter *f);
/* filter_schemas_get / _put — a reference to the current set for a thread
 * other than the loop (NULL when no schemas are configured). */
struct pipe_schema_set *filter_schemas_get(struct filter *f);
void filter_schemas_put(struct pipe_schema_set *set);
/* filter_schemas_stop — stops watching and drops the set (exit). */
void filter_schemas_stop(struct filter *f);

/* ---- filter_segment.c, filter_snowplow.c: the SDKs' protocols ---- */

/* The Segment / RudderStack call a path stands for. */
enum filter_call {
    FILTER_CALL_BATCH = 0, /* {"batch": [...]}, each message says its type */
    FILTER_CALL_TRACK,
    FILTER_CALL_IDENTIFY,
    FILTER_CALL_PAGE,
    FILTER_CALL_SCREEN,
    FILTER_CALL_GROUP,
    FILTER_CALL_ALIAS,
};

/* One translation of a request into native NDJSON events. */
struct filter_xlate {
    int64_t received_ms; /* the skew correction's reference */
    int max_depth;       /* deepest nesting inside one message */
    char write_key[256]; /* out: a "writeKey" found in the body, or "" */
    size_t n_messages;   /* out: messages (events) in the request */
    char msg[200];       /* out: why a body was refused (PIPE_EPARSE) */
    const char *sent_at; /* the batch's sentAt while its messages are read */
};

/* filter_segment_route — 1 if path is a Segment / RudderStack ingest path
 * (*call says which call; *pixel for the GET pixel paths), else 0. */
int filter_segment_route(const char *path, enum filter_call *call, bool *pixel);

/* filter_segment_translate — appends to out one native event per message
 * of body (a batch for FILTER_CALL_BATCH, else one message of that call),
 * each on its own line. A message that cannot become an event is passed on
 * so the envelope check rejects it with its reason. 0; PIPE_EPARSE when the
 * body is not a JSON object (x->msg says why); PIPE_ETOOBIG past out->max. */
int filter_segment_translate(struct filter_xlate *x, enum filter_call call, const char *body,
                             size_t len, struct pipe_buf *out);

/* filter_snake_case — name (n bytes) as Segment's warehouses name tables
 * (segmentio/go-snakecase: "Order Completed" and "OrderCompleted" both
 * become order_completed) into out (cap bytes, not NUL-terminated);
 * returns the length. */
size_t filter_snake_case(const char *s, size_t n, char *out, size_t cap);

/* filter_snowplow_translate — appends one native event per payload of a
 * tp2 payload_data body to out. Same returns as filter_segment_translate. */
int filter_snowplow_translate(struct filter_xlate *x, const char *body, size_t len,
                              struct pipe_buf *out);
/* filter_snowplow_payload — one payload (a JSON object of parameters) as
 * one native event line appended to out. 0 or PIPE_ETOOBIG. */
int filter_snowplow_payload(const struct filter_xlate *x, const char *p, size_t len,
                            struct pipe_buf *out);

/* ---- filter_compat.c ---- */

struct pipe_json_member;

/* filter_json_key_is — the member's key is exactly k (unescaped keys only). */
bool filter_json_key_is(const struct pipe_json_member *m, const char *k);
/* filter_json_string_copy — a string member's unescaped contents into dst
 * (cap bytes with the NUL); false if not a string or too long. */
bool filter_json_string_copy(const struct pipe_json_member *m, char *dst, size_t cap);
/* A top-level member's value found by a scan that writes no output (so it
 * points into the scanned text). */
struct filter_json_span {
    const char *value;
    size_t len;
    bool found, is_array;
};
/* filter_json_note_array — if m is the member called key, notes its value
 * in *span and returns true. */
bool filter_json_note_array(const struct pipe_json_member *m, const char *key,
                            struct filter_json_span *span);
/* filter_xlate_tail — ends a translated event: the moved members (each
 * ",\"key\":value"), then the original members scanned into obj (a
 * compacted object with kept members), then '}'. first says
 * nothing was written after the event's '{' yet. */
int filter_xlate_tail(struct pipe_buf *out, bool first, const struct pipe_buf *moved,
                      const struct pipe_buf *obj, size_t kept);
/* filter_xlate_verbatim — a message that cannot be translated, appended as
 * it was sent (line breaks made spaces) for the envelope check to judge. */
int filter_xlate_verbatim(struct pipe_buf *out, const char *msg, size_t len);
/* filter_query_json — the query string's parameters, percent-decoded, as
 * one JSON object of strings appended to out. 0, PIPE_EINVAL when a
 * parameter is not UTF-8, or PIPE_ETOOBIG. */
int filter_query_json(const char *query, struct pipe_buf *out);
/* filter_query_get — the percent-decoded value of parameter name into dst
 * (cap bytes with the NUL); false when absent or too long. */
bool filter_query_get(const char *query, const char *name, char *dst, size_t cap);
/* filter_basic_user — the user name of an "Authorization: Basic" value
 * into dst; false when it is not Basic or does not decode. */
bool filter_basic_user(const char *auth, char *dst, size_t cap);
/* filter_cors — the CORS response headers for a request from origin under
 * the allowed list (comma-separated, "*" for any) into dst, or "" when
 * there is no Origin or it is not allowed. preflight adds the methods,
 * headers and max-age lines. */
void filter_cors(const char *allowed, const char *origin, bool preflight, char *dst, size_t cap);
/* The transparent 1x1 GIF the pixel paths answer with. */
extern const unsigned char filter_pixel_gif[];
extern const size_t filter_pixel_gif_len;

/* ---- filter_raw.c ---- */

/* filter_raw_start — polls raw/ on the runtime's poller (a worker
 * thread): every raw_poll as a daemon; with --once, until a pass leaves
 * nothing pending, which ends the program as every stage's --once does. A
 * pass in which an object failed is retried after the poller's back-off;
 * with --once, an error that no retry can fix ends the run with exit 1. */
int filter_raw_start(struct filter *f);
/* filter_raw_stop — stops polling; the poller's end frees the raw/ state. */
void filter_raw_stop(struct filter *f);
/* filter_input_file — --input: filters one local file or stdin (blocking). */
int filter_input_file(struct filter *f, const char *path);

#endif
