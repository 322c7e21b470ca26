/* filter_batch — turns bodies into validated events and writes them as one
 * filtered/ object and one rejected/ object per batch (group commit).
 *
 * A batch is filled on the loop thread and written on a worker thread; the
 * caller hands it over whole, so no field is shared while a write runs. */
#include <jansson.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/ndjson.h"
#include "libpipe/schema.h"
#include "libpipe/store.h"
#include "stages/filter/filter.h"

struct filter_batch *filter_batch_new(struct filter *f, int64_t time_ms, const char *name,
                                      size_t cap)
{
    struct filter_batch *b = pipe_calloc(1, sizeof *b);
    b->f = f;
    pipe_buf_init(&b->accepted, cap);
    pipe_buf_init(&b->rejected, cap);
    b->time_ms = time_ms;
    b->name = pipe_strdup(name);
    b->tail = &b->waiters;
    b->opened_mono_ms = pipe_clock_mono_ms();
    pipe_buf_init(&b->z, SIZE_MAX);
    pipe_buf_init(&b->scratch, cap);
    return b;
}

void filter_batch_recycle(struct filter_batch *b, int64_t time_ms, const char *name)
{
    pipe_buf_reset(&b->accepted);
    pipe_buf_reset(&b->rejected);
    pipe_buf_reset(&b->z);
    b->n_accepted = b->n_rejected = 0;
    b->time_ms = time_ms;
    pipe_free(b->name);
    b->name = pipe_strdup(name);
    b->waiters = NULL;
    b->tail = &b->waiters;
    b->opened_mono_ms = pipe_clock_mono_ms();
    b->rc = 0;
}

void filter_batch_free(struct filter_batch *b)
{
    if (b == NULL)
        return;
    pipe_buf_cleanup(&b->accepted);
    pipe_buf_cleanup(&b->rejected);
    pipe_buf_cleanup(&b->z);
    pipe_buf_cleanup(&b->scratch);
    pipe_schema_checker_free(b->ck);
    pipe_zwriter_free(b->zw);
    pipe_free(b->name);
    pipe_free(b);
}

/* put_compressed — compresses data into one zstd frame and stores it. */
static int put_compressed(struct filter *f, struct filter_batch *b, const char *key,
                          const struct pipe_buf *data)
{
    pipe_buf_reset(&b->z);
    int rc = b->zw ? pipe_zwriter_reset(b->zw, &b->z)
                   : pipe_zwriter_new((int)f->cfg->zstd_level, &b->z, &b->zw);
    if (rc == 0 && data->len)
        rc = pipe_zwriter_write(b->zw, data->data, data->len);
    if (rc == 0)
        rc = pipe_zwriter_finish(b->zw);
    if (rc == 0)
        rc = pipe_store_put(pipe_stage_store(f->st), key, b->z.data, b->z.len);
    if (rc < 0)
        pipe_log_warn("store put failed", "key=%s err=\"%s\" detail=\"%s\"", key, pipe_strerror(rc),
                      pipe_store_last_error(pipe_stage_store(f->st)));
    return rc;
}

int filter_batch_write(struct filter *f, struct filter_batch *b)
{
    struct pipe_buf key;
    pipe_buf_init(&key, 4096);
    int rc = 0;
    /* rejected/ first: the filtered/ object is written last, so that its
     * presence alone says the whole batch is stored (the raw/ source relies
     * on that to skip objects it already filtered). */
    if (b->rejected.len) {
        rc = pipe_keys_rejected(&key, b->time_ms, b->name);
        if (rc == 0)
            rc = put_compressed(f, b, key.data, &b->rejected);
    }
    if (rc == 0) {
        pipe_buf_reset(&key);
        rc = pipe_keys_filtered(&key, b->time_ms, b->name);
        if (rc == 0)
            rc = put_compressed(f, b, key.data, &b->accepted);
    }
    pipe_buf_cleanup(&key);
    return rc;
}

static void base64_append(struct pipe_buf *out, const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {tbl[v >> 18 & 63], tbl[v >> 12 & 63], i + 1 < n ? tbl[v >> 6 & 63] : '=',
                     i + 2 < n ? tbl[v & 63] : '='};
        pipe_buf_append(out, q, 4);
    }
}

/* Not a hot path: jansson does the escaping. */
int filter_reject(struct pipe_buf *out, const char *rec, size_t len, enum pipe_reason reason,
                  const char *message, const char *channel, const char *received_at,
                  const char *source)
{
    json_t *o = json_object();
    json_object_set_new(o, "reason", json_string(pipe_reason_code(reason)));
    json_object_set_new(o, "message", json_string(message));
    json_object_set_new(o, "source", json_string(source));
    json_object_set_new(o, "channel", json_string(channel));
    json_object_set_new(o, "received_at", json_string(received_at));
    json_t *raw = rec ? json_stringn(rec, len) : NULL;
    if (rec == NULL) {
        /* the record is the source object itself (too large to copy) */
    } else if (raw != NULL) {
        json_object_set_new(o, "raw", raw);
    } else {
        struct pipe_buf b64;
        pipe_buf_init(&b64, SIZE_MAX);
        base64_append(&b64, (const unsigned char *)rec, len);
        json_object_set_new(o, "raw_base64", json_stringn(b64.data ? b64.data : "", b64.len));
        pipe_buf_cleanup(&b64);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    int rc = s ? pipe_buf_append_str(out, s) : PIPE_EINVAL;
    if (rc == 0)
        rc = pipe_buf_append_char(out, '\n');
    free(s);
    return rc;
}

/* Per-body tallies, added to the metrics only if the body is kept. */
struct tally {
    uint32_t acc, rej, not_json, unknown, rewritten;
    uint32_t by_reason[PIPE_REASON__COUNT];
};

/* schema_step — the schema of the event just appended to b->accepted at
 * offset at: rewrites it in place when defaults or redaction changed it;
 * on a rejection removes it and sets res->reason, with the message in sr. */
static int schema_step(const struct filter_cfg *cfg, struct filter_batch *b,
                       const struct pipe_schema_set *schemas, size_t at,
                       struct pipe_event_result *res, struct pipe_schema_result *sr_out,
                       struct tally *t)
{
    struct pipe_schema_result sr;
    if (b->ck == NULL)
        b->ck = pipe_schema_checker_new();
    pipe_buf_reset(&b->scratch);
    int rc = pipe_schema_check(schemas, b->ck, b->accepted.data + at, b->accepted.len - at - 1,
                               res->event, res->event_len, &b->scratch, &sr);
    if (rc < 0)
        return rc == PIPE_EPARSE ? PIPE_EINVAL : rc; /* the envelope step wrote it: cannot be */
    if (sr.reason == PIPE_REASON_UNKNOWN_EVENT_TYPE) {
        t->unknown++;
        if (cfg->unknown_types == NULL || strcmp(cfg->unknown_types, "reject") != 0)
            return 0;
    }
    if (sr.reason != PIPE_REASON_OK) {
        b->accepted.len = at;
        b->accepted.data[at] = '\0';
        res->reason = sr.reason;
        *sr_out = sr;
        return 0;
    }
    if (sr.changed) {
        t->rewritten++;
        b->accepted.len = at;
        rc = pipe_buf_append(&b->accepted, b->scratch.data, b->scratch.len);
        if (rc == 0)
            rc = pipe_buf_append_char(&b->accepted, '\n');
    }
    return rc;
}

/* reject_one — the rejection line, with the fields the event's schema
 * redacts taken out of the raw text first (personal data stays out of
 * rejected/ too). */
static int reject_one(struct filter_batch *b, const struct pipe_schema_set *schemas,
                      const struct pipe_body_record *rec, enum pipe_reason reason,
                      const char *message, const char *channel, const char *received_at,
                      const char *source)
{
    const char *raw = rec->data;
    size_t len = rec->len;
    if (pipe_schema_set_count(schemas) > 0) {
        if (b->ck == NULL)
            b->ck = pipe_schema_checker_new();
        pipe_buf_reset(&b->scratch);
        int rc = pipe_schema_redact_record(schemas, b->ck, rec->data, rec->len, &b->scratch);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            raw = b->scratch.data;
            len = b->scratch.len;
        }
    }
    return filter_reject(&b->rejected, raw, len, reason, message, channel, received_at, source);
}

int filter_ingest(const struct filter_cfg *cfg, struct filter_metrics *m, struct filter_batch *b,
                  const struct pipe_schema_set *schemas, const char *body, size_t len, bool ndjson,
                  const char *channel, int64_t received_ms, const char *source, uint32_t *n_acc,
                  uint32_t *n_rej, char *msg, size_t msglen)
{
    struct pipe_body_iter it;
    struct pipe_json_result jr;
    int rc = pipe_body_iter_init(&it, body, len, ndjson ? PIPE_BODY_NDJSON : PIPE_BODY_AUTO,
                                 cfg->max_event, &jr);
    if (rc < 0) {
        snprintf(msg, msglen, "the body is not JSON: %s at byte %zu", jr.what, jr.offset);
        return PIPE_EPARSE;
    }
    const struct pipe_event_ctx ctx = {
        .channel = channel,
        .received_ms = received_ms,
        .max_bytes = cfg->max_event,
        .max_depth = (int)cfg->max_depth,
    };
    char received_at[PIPE_CLOCK_RFC3339_LEN + 1];
    pipe_clock_format_rfc3339(received_ms, received_at);
    size_t acc_len = b->accepted.len, rej_len = b->rejected.len;
    struct tally t = {0};
    struct pipe_body_record rec;
    rc = 0;
    while (rc == 0 && pipe_body_iter_next(&it, &rec)) {
        struct pipe_event_result res;
        struct pipe_schema_result sr = {.reason = PIPE_REASON_OK};
        size_t at = b->accepted.len;
        if (rec.err == PIPE_JSON_ETOOLARGE) {
            res.reason = PIPE_REASON_TOO_LARGE;
            snprintf(res.message, sizeof res.message,
                     "record of %zu bytes is over the %llu-byte "
                     "limit",
                     rec.len, (unsigned long long)cfg->max_event);
        } else {
            rc = pipe_event_process(rec.data, rec.len, &ctx, &b->accepted, &res);
            if (rc == 0 && res.reason == PIPE_REASON_OK && schemas)
                rc = schema_step(cfg, b, schemas, at, &res, &sr, &t);
            if (rc < 0)
                break;
        }
        if (res.reason == PIPE_REASON_OK) {
            t.acc++;
            continue;
        }
        t.rej++;
        t.by_reason[res.reason]++;
        t.not_json += res.reason == PIPE_REASON_NOT_JSON;
        /* A schema's message can be longer than the envelope's. */
        rc = reject_one(b, schemas, &rec, res.reason,
                        sr.reason != PIPE_REASON_OK ? sr.message : res.message, channel,
                        received_at, source);
    }
    if (rc == 0 && t.acc + t.rej > 0 && t.not_json == t.acc + t.rej) {
        /* Nothing in the body was JSON: the client sent something else
         * entirely, and deserves a 400 rather than a pile of rejections. */
        snprintf(msg, msglen, "the body is not JSON (no record parsed)");
        rc = PIPE_EPARSE;
    }
    if (rc < 0) {
        b->accepted.len = acc_len;
        b->rejected.len = rej_len;
        if (b->accepted.data)
            b->accepted.data[acc_len] = '\0';
        if (b->rejected.data)
            b->rejected.data[rej_len] = '\0';
        return rc == PIPE_EPARSE ? rc : PIPE_ETOOBIG;
    }
    b->n_accepted += t.acc;
    b->n_rejected += t.rej;
    for (int r = 1; r < PIPE_REASON__COUNT; r++)
        if (t.by_reason[r])
            pipe_counter_add(m->rejected[r], t.by_reason[r]);
    pipe_counter_add(m->unknown_types, t.unknown);
    pipe_counter_add(m->rewritten, t.rewritten);
    *n_acc = t.acc;
    *n_rej = t.rej;
    return 0;
}
