/* filter_batch — turns bodies into validated events and writes them as one
 * filtered/ object and one rejected/ object per batch (group commit).
 *
 * A batch is filled on the loop thread and written on a worker thread; the
 * caller hands it over whole, so no field is shared while a write runs. */
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/ndjson.h"
#include "libpipe/reject.h"
#include "libpipe/schema.h"
#include "libpipe/store.h"
#include "libpipe/wake.h"
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

/* put_compressed — compresses data as one zstd frame, in one call straight
 * into the batch's kept buffer (no staging copies), and stores it. rec, if
 * not NULL, says what data holds and goes first (libpipe/codec.h). */
static int put_compressed(struct filter *f, struct filter_batch *b, const char *key,
                          const struct pipe_buf *data, const struct pipe_codec_record *rec)
{
    pipe_buf_reset(&b->z);
    int rc = b->zw ? 0 : pipe_zwriter_new((int)f->cfg->zstd_level, &b->z, &b->zw);
    if (rc == 0 && rec)
        rc = pipe_codec_record_write(&b->z, rec);
    if (rc == 0)
        rc = pipe_zwriter_frame(b->zw, data->data ? data->data : "", data->len, &b->z);
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
            rc = put_compressed(f, b, key.data, &b->rejected, NULL);
    }
    if (rc == 0) {
        /* Every accepted event is one non-empty line: the combiner takes
         * its counts from this record instead of decoding the object. */
        const struct pipe_codec_record rec = {b->n_accepted, b->accepted.len};
        pipe_buf_reset(&key);
        rc = pipe_keys_filtered(&key, b->time_ms, b->name);
        if (rc == 0)
            rc = put_compressed(f, b, key.data, &b->accepted, &rec);
        if (rc == 0)
            pipe_wake_bump(pipe_stage_wake(f->st), PIPE_WAKE_FILTERED);
    }
    pipe_buf_cleanup(&key);
    return rc;
}

int filter_reject(struct pipe_buf *out, const char *rec, size_t len, enum pipe_reason reason,
                  const char *message, const char *channel, const char *received_at,
                  const char *source)
{
    /* rec NULL: the record is the source object itself (too large to copy) */
    const struct pipe_reject r = {.channel = channel,
                                  .message = message,
                                  .rec = rec,
                                  .rec_len = len,
                                  .reason = pipe_reason_code(reason),
                                  .received_at = received_at,
                                  .source = source};
    return pipe_reject_append(out, &r);
}

int filter_quarantine_line(struct pipe_buf *out, const struct pipe_store_obj *o,
                           enum pipe_reason reason, const char *why, const char *message,
                           const char *channel, const char *received_at, const char *source)
{
    const struct pipe_reject r = {.channel = channel,
                                  .message = message,
                                  .quarantine = why,
                                  .raw_key = o->key,
                                  .raw_etag = o->etag,
                                  .raw_size = o->size,
                                  .reason = pipe_reason_code(reason),
                                  .received_at = received_at,
                                  .source = source};
    return pipe_reject_append(out, &r);
}

/* schema_step — the schema of the event just appended to b->accepted at
 * offset at: rewrites it in place when defaults or redaction changed it;
 * on a rejection removes it and sets res->reason, with the message in sr. */
static int schema_step(const struct filter_cfg *cfg, struct filter_batch *b,
                       const struct pipe_schema_set *schemas, size_t at,
                       struct pipe_event_result *res, struct pipe_schema_result *sr_out,
                       struct filter_tally *t)
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

/* batch_truncate — drops what was appended to b since acc_len/rej_len. */
static void batch_truncate(struct filter_batch *b, size_t acc_len, size_t rej_len)
{
    b->accepted.len = acc_len;
    b->rejected.len = rej_len;
    if (b->accepted.data)
        b->accepted.data[acc_len] = '\0';
    if (b->rejected.data)
        b->rejected.data[rej_len] = '\0';
}

/* over_limit — a request limit the records so far have passed: PIPE_ETOOBIG
 * with msg saying which, else 0. */
static int over_limit(const struct filter_limits *lim, const struct filter_tally *t, size_t out,
                      size_t rejected, char *msg, size_t msglen)
{
    if (lim->max_records && (uint64_t)t->acc + t->rej > lim->max_records)
        snprintf(msg, msglen, "more than %llu records in one request",
                 (unsigned long long)lim->max_records);
    else if (lim->max_rejected && rejected > lim->max_rejected)
        snprintf(msg, msglen, "the rejected records would take more than %llu bytes",
                 (unsigned long long)lim->max_rejected);
    else if (lim->max_out && out > lim->max_out)
        snprintf(msg, msglen, "the events would take more than %llu bytes",
                 (unsigned long long)lim->max_out);
    else
        return 0;
    return PIPE_ETOOBIG;
}

/* One body (or piece of one) being filtered into a batch. */
struct ingest {
    const struct filter_cfg *cfg;
    struct filter_batch *b;
    const struct pipe_schema_set *schemas;
    const struct filter_limits *lim;
    const struct pipe_event_ctx *ctx;
    const char *channel, *received_at, *source;
    char *msg;
    size_t msglen;
    struct filter_tally t;
};

/* ingest_one — validates one record into the batch (accepted, or its
 * rejection line) and counts it in g->t. */
static int ingest_one(struct ingest *g, const struct pipe_body_record *rec)
{
    struct filter_batch *b = g->b;
    struct pipe_event_result res;
    struct pipe_schema_result sr = {.reason = PIPE_REASON_OK};
    size_t at = b->accepted.len;
    int rc = 0;
    if (rec->err == PIPE_JSON_ETOOLARGE) {
        res.reason = PIPE_REASON_TOO_LARGE;
        snprintf(res.message, sizeof res.message, "record of %zu bytes is over the %llu-byte limit",
                 rec->len, (unsigned long long)g->cfg->max_event);
    } else {
        rc = pipe_event_process(rec->data, rec->len, g->ctx, &b->accepted, &res);
        if (rc == 0 && res.reason == PIPE_REASON_OK && g->schemas)
            rc = schema_step(g->cfg, b, g->schemas, at, &res, &sr, &g->t);
        if (rc < 0)
            return rc;
    }
    if (res.reason == PIPE_REASON_OK) {
        g->t.acc++;
        return 0;
    }
    g->t.rej++;
    g->t.by_reason[res.reason]++;
    g->t.not_json += res.reason == PIPE_REASON_NOT_JSON;
    /* A schema's message can be longer than the envelope's. */
    return reject_one(b, g->schemas, rec, res.reason,
                      sr.reason != PIPE_REASON_OK ? sr.message : res.message, g->channel,
                      g->received_at, g->source);
}

/* ingest_run — records of it into g->b until the body ends (0) or the
 * piece limits are reached (1). On an error the batch is as it was and
 * the error is returned: PIPE_ETOOBIG for a request limit (msg says
 * which), PIPE_EFULL when the batch cannot hold the records. */
static int ingest_run(struct ingest *g, struct pipe_body_iter *it)
{
    struct filter_batch *b = g->b;
    const struct filter_limits *lim = g->lim;
    size_t acc_len = b->accepted.len, rej_len = b->rejected.len;
    size_t start = it->pos;
    struct pipe_body_record rec;
    int rc = 0;
    while (rc == 0) {
        if ((lim->piece_records && (uint64_t)g->t.acc + g->t.rej >= lim->piece_records) ||
            (lim->piece_bytes && it->pos - start >= lim->piece_bytes)) {
            rc = 1;
            break;
        }
        if (!pipe_body_iter_next(it, &rec))
            break;
        rc = ingest_one(g, &rec);
        if (rc == 0)
            rc = over_limit(lim, &g->t, b->accepted.len - acc_len + b->rejected.len - rej_len,
                            b->rejected.len - rej_len, g->msg, g->msglen);
    }
    if (rc < 0)
        batch_truncate(b, acc_len, rej_len);
    if (rc == PIPE_ETOOBIG && !g->msg[0])
        rc = PIPE_EFULL; /* the batch's cap, not a request limit */
    return rc;
}

void filter_tally_add(struct filter_tally *sum, const struct filter_tally *t)
{
    sum->acc += t->acc;
    sum->rej += t->rej;
    sum->not_json += t->not_json;
    sum->unknown += t->unknown;
    sum->rewritten += t->rewritten;
    for (int r = 0; r < PIPE_REASON__COUNT; r++)
        sum->by_reason[r] += t->by_reason[r];
}

void filter_tally_commit(struct filter_metrics *m, const struct filter_tally *t)
{
    for (int r = 1; r < PIPE_REASON__COUNT; r++)
        if (t->by_reason[r])
            pipe_counter_add(m->rejected[r], t->by_reason[r]);
    pipe_counter_add(m->unknown_types, t->unknown);
    pipe_counter_add(m->rewritten, t->rewritten);
}

/* ingest_commit — adds g's tallies to the batch and to *sum. */
static void ingest_commit(struct ingest *g, struct filter_tally *sum, uint32_t *n_acc,
                          uint32_t *n_rej)
{
    g->b->n_accepted += g->t.acc;
    g->b->n_rejected += g->t.rej;
    filter_tally_add(sum, &g->t);
    *n_acc = g->t.acc;
    *n_rej = g->t.rej;
}

/* ingest_body — the records of it into b, their tallies added to *sum
 * unless an error rolls b back. whole: it is a whole request body, which
 * is refused (PIPE_EPARSE) when none of its records is JSON at all. */
static int ingest_body(const struct filter_cfg *cfg, struct filter_tally *sum,
                       struct filter_batch *b, const struct pipe_schema_set *schemas,
                       struct pipe_body_iter *it, const struct filter_limits *lim, bool whole,
                       const struct filter_origin *o, uint32_t *n_acc, uint32_t *n_rej, char *msg,
                       size_t msglen)
{
    const struct pipe_event_ctx ctx = {
        .channel = o->channel,
        .received_ms = o->received_ms,
        .max_bytes = cfg->max_event,
        .max_depth = (int)cfg->max_depth,
    };
    char received_at[PIPE_CLOCK_RFC3339_LEN + 1];
    pipe_clock_format_rfc3339(o->received_ms, received_at);
    msg[0] = '\0';
    size_t acc_len = b->accepted.len, rej_len = b->rejected.len;
    struct ingest g = {cfg,         b,         schemas, lim,    &ctx, o->channel,
                       received_at, o->source, msg,     msglen, {0}};
    int rc = ingest_run(&g, it);
    if (rc == 0 && whole && g.t.acc + g.t.rej > 0 && g.t.not_json == g.t.acc + g.t.rej) {
        /* Nothing in the body was JSON: the client sent something else
         * entirely, and deserves a 400 rather than a pile of rejections. */
        batch_truncate(b, acc_len, rej_len);
        snprintf(msg, msglen, "the body is not JSON (no record parsed)");
        return PIPE_EPARSE;
    }
    if (rc >= 0)
        ingest_commit(&g, sum, n_acc, n_rej);
    return rc;
}

int filter_ingest_piece(const struct filter_cfg *cfg, struct filter_tally *sum,
                        struct filter_batch *b, const struct pipe_schema_set *schemas,
                        struct pipe_body_iter *it, const struct filter_limits *lim,
                        const struct filter_origin *o, uint32_t *n_acc, uint32_t *n_rej, char *msg,
                        size_t msglen)
{
    return ingest_body(cfg, sum, b, schemas, it, lim, false, o, n_acc, n_rej, msg, msglen);
}

int filter_ingest(const struct filter_cfg *cfg, struct filter_metrics *m, struct filter_batch *b,
                  const struct pipe_schema_set *schemas, const char *body, size_t len, bool ndjson,
                  const struct filter_limits *lim, const struct filter_origin *o, uint32_t *n_acc,
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
    struct filter_tally t = {0};
    rc = ingest_body(cfg, &t, b, schemas, &it, lim, true, o, n_acc, n_rej, msg, msglen);
    if (rc >= 0)
        filter_tally_commit(m, &t);
    return rc;
}
