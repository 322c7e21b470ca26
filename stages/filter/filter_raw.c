/* filter_raw — the filter's batch sources: objects landed under raw/ by
 * anything outside sluice, and local files given with --input.
 *
 * Each raw/ object is filtered once, into objects whose names and contents
 * are functions of the raw object alone (its key, etag and mtime), so that a
 * crash half way through simply redoes the same writes. A large object is
 * filtered in pieces (<name>-pNNNN after the first), each written when
 * full; the first piece's filtered/ object is written last and is the
 * durable record that the raw object is done. An object that cannot be
 * filtered (over max_raw, not decodable, a piece over its cap) is
 * quarantined: one rejected/ line with its key, etag, size and reason, and
 * the empty filtered/ marker; the walk goes on. A bounded in-memory set
 * only saves the stat on later passes. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/hset.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/ndjson.h"
#include "libpipe/store.h"
#include "stages/filter/filter.h"

/* A raw object is filtered in pieces: a new piece starts once this much of
 * its input, or this many records, went into the current one. Constants,
 * not settings: the pieces of an object must be the same on every run, so
 * that a run cut short redoes exactly the same writes. */
#define RAW_PIECE_BYTES   (8u << 20)
#define RAW_PIECE_RECORDS 100000u
/* The done-set is emptied when it holds this many objects (the filtered/
 * marker stays the record; the set only saves a stat per object). */
#define RAW_DONE_MAX (1u << 16)

static const char *const quarantine_names[] = {"too_large", "undecodable", "overflow"};

/* A pass stops early after this many objects in a row failed (the store is
 * likely down: the runtime's back-off, not a request per object, is the
 * way to wait for it). */
#define RAW_FAILS_IN_ROW 3

/* A member of the done-set: the bytes of key '\0' etag. */
struct done_item {
    size_t len;
    char id[];
};

/* The raw/ source's state. One pass runs at a time (the poller's worker
 * thread, or --once on the loop thread), so nothing here is shared. The
 * buffers, batches and decoding context are kept from one object to the
 * next (fresh multi-MB buffers per object cost more in page faults than
 * filtering the events), and released after a pass that found nothing to
 * do, so an idle filter does not hold them. */
struct filter_raw {
    struct pipe_hset done; /* of struct done_item: objects already filtered */
    struct pipe_buf id;    /* the done-set key of the object in hand */
    struct pipe_zdecoder *dec;
    struct pipe_buf data, decoded;  /* the object as stored, and decoded */
    struct filter_batch *b0, *b;    /* piece 0 (written last), the pieces after it */
    struct pipe_buf name, piece;    /* of the object's outputs: piece 0, a later piece */
    struct pipe_buf key, piece_key; /* their filtered/ keys */
    uint64_t filtered;              /* objects filtered in this pass */
    int err;                        /* first error of an object in this pass, 0 if none */
    int fails_in_row;
};

static bool done_eq(const void *item, const void *key, size_t len)
{
    const struct done_item *d = item;
    return d->len == len && memcmp(d->id, key, len) == 0;
}

static void done_clear(struct filter_raw *raw)
{
    for (size_t i = 0; i < raw->done.cap; i++)
        pipe_free(raw->done.slots[i].item);
    pipe_hset_cleanup(&raw->done);
    pipe_hset_init(&raw->done);
}

/* done_key — the done-set key of o (key '\0' etag) into raw->id. */
static void done_key(struct filter_raw *raw, const struct pipe_store_obj *o)
{
    pipe_buf_reset(&raw->id);
    /* key and etag are bounded by the store (PIPE_STORE_KEY_MAX and an
     * etag); an unbounded buffer keeps this infallible. */
    pipe_buf_append(&raw->id, o->key, strlen(o->key) + 1);
    pipe_buf_append_str(&raw->id, o->etag);
}

static void done_add(struct filter_raw *raw, uint64_t h)
{
    if (pipe_hset_count(&raw->done) >= RAW_DONE_MAX)
        done_clear(raw); /* bounded: later passes stat those objects */
    struct done_item *d = pipe_malloc(sizeof *d + raw->id.len);
    d->len = raw->id.len;
    memcpy(d->id, raw->id.data, raw->id.len);
    if (pipe_hset_add(&raw->done, h, d) < 0)
        pipe_free(d); /* not remembered: the marker's stat says it next time */
}

static struct filter_raw *raw_new(const struct filter_cfg *cfg)
{
    struct filter_raw *raw = pipe_calloc(1, sizeof *raw);
    pipe_hset_init(&raw->done);
    pipe_buf_init(&raw->data, cfg->max_raw);
    pipe_buf_init(&raw->decoded, cfg->max_raw);
    pipe_buf_init(&raw->id, SIZE_MAX);
    pipe_buf_init(&raw->name, 512);
    pipe_buf_init(&raw->key, 4096);
    pipe_buf_init(&raw->piece, 512);
    pipe_buf_init(&raw->piece_key, 4096);
    return raw;
}

/* raw_release — frees what is kept from one object to the next (not the
 * done-set). */
static void raw_release(struct filter_raw *raw)
{
    pipe_zdecoder_free(raw->dec);
    raw->dec = NULL;
    pipe_buf_cleanup(&raw->data);
    pipe_buf_cleanup(&raw->decoded);
    filter_batch_free(raw->b0);
    filter_batch_free(raw->b);
    raw->b0 = raw->b = NULL;
}

static void raw_free(struct filter_raw *raw)
{
    if (raw == NULL)
        return;
    raw_release(raw);
    done_clear(raw);
    pipe_buf_cleanup(&raw->id);
    pipe_buf_cleanup(&raw->name);
    pipe_buf_cleanup(&raw->key);
    pipe_buf_cleanup(&raw->piece);
    pipe_buf_cleanup(&raw->piece_key);
    pipe_free(raw);
}

/* raw_batch — *slot recycled (or made) as an empty batch for time_ms and
 * name, with room for one piece. */
static struct filter_batch *raw_batch(struct filter *f, struct filter_batch **slot, int64_t time_ms,
                                      const char *name, size_t cap)
{
    if (*slot == NULL)
        *slot = filter_batch_new(f, time_ms, name, cap);
    else
        filter_batch_recycle(*slot, time_ms, name);
    return *slot;
}

/* filter_body_as_batch — filters one whole body (a --input file) into b;
 * a body that is not JSON at all becomes one rejection. */
static int filter_body_as_batch(struct filter *f, struct filter_batch *b, const char *body,
                                size_t len, const struct filter_origin *origin)
{
    uint32_t acc = 0, rej = 0;
    char msg[200];
    const struct filter_limits none = {0};
    /* A reference: a SIGHUP reload may swap the set while this runs on a
     * worker thread. */
    struct pipe_schema_set *set = filter_schemas_get(f);
    int rc = filter_ingest(f->cfg, &f->m, b, set, body, len, false, &none, origin, &acc, &rej, msg,
                           sizeof msg);
    filter_schemas_put(set);
    if (rc == PIPE_EPARSE) {
        char at[PIPE_CLOCK_RFC3339_LEN + 1];
        pipe_clock_format_rfc3339(origin->received_ms, at);
        rc = filter_reject(&b->rejected, body, len, PIPE_REASON_NOT_JSON, msg, origin->channel, at,
                           origin->source);
        pipe_counter_inc(f->m.rejected[PIPE_REASON_NOT_JSON]);
        b->n_rejected++;
    }
    return rc;
}

/* The channel of a raw object: events that `sluicectl redrive` re-submits
 * under raw/redrive/<channel>/ keep the channel they first came in on (and
 * so, without an id, the id derived from it); the rest take input_channel. */
static const char *raw_channel(const struct filter_cfg *cfg, const char *key, char *buf, size_t len)
{
    static const char redrive[] = "raw/redrive/";
    if (strncmp(key, redrive, sizeof redrive - 1) == 0) {
        const char *c = key + sizeof redrive - 1;
        size_t n = strcspn(c, "/");
        if (c[n] == '/' && n > 0 && n < len) {
            memcpy(buf, c, n);
            buf[n] = '\0';
            if (pipe_keys_instance_valid(buf))
                return buf;
        }
    }
    return cfg->input_channel;
}

/* One raw object being filtered. */
struct raw_obj {
    struct filter *f;
    struct filter_raw *raw;
    const struct pipe_store_obj *o;
    const char *name; /* of its outputs; piece 0 and the quarantine record */
    char source[1100];
    char chan[PIPE_KEYS_NAME_MAX + 1];
    struct filter_origin origin;
    uint64_t accepted, rejected;
    struct filter_tally tally; /* committed to the metrics once the object is done */
};

static size_t piece_cap(const struct filter_cfg *cfg)
{
    /* what a piece can produce: escaping at most 6x its input, a line's
     * fixed fields per record, and one record over max_event */
    return 6 * (size_t)RAW_PIECE_BYTES + (size_t)RAW_PIECE_RECORDS * 512 + 6 * cfg->max_event;
}

/* piece_write — writes piece b unless a run cut short wrote it already (a
 * piece's name and contents are functions of the object alone). */
static int piece_write(struct raw_obj *r, struct filter_batch *b)
{
    struct pipe_buf *key = &r->raw->piece_key;
    struct pipe_store_obj st;
    pipe_buf_reset(key);
    int rc = pipe_keys_filtered(key, b->time_ms, b->name);
    if (rc == 0 && pipe_store_stat(pipe_stage_store(r->f->st), key->data, &st) != 0)
        rc = filter_batch_write(r->f, b);
    r->accepted += b->n_accepted;
    r->rejected += b->n_rejected;
    return rc;
}

/* raw_not_json — the whole object is one rejection: it is an array or
 * wrapper that is not JSON (what and where in jr). */
static int raw_not_json(struct raw_obj *r, struct filter_batch *b0, const char *body, size_t len,
                        const struct pipe_json_result *jr)
{
    char at[PIPE_CLOCK_RFC3339_LEN + 1], msg[200];
    pipe_clock_format_rfc3339(r->origin.received_ms, at);
    snprintf(msg, sizeof msg, "the body is not JSON: %s at byte %zu", jr->what, jr->offset);
    r->tally.by_reason[PIPE_REASON_NOT_JSON]++;
    b0->n_rejected++;
    int rc = filter_reject(&b0->rejected, body, len, PIPE_REASON_NOT_JSON, msg, r->origin.channel,
                           at, r->source);
    return rc == PIPE_ETOOBIG ? PIPE_EFULL : rc;
}

/* raw_pieces — filters body into b0 (piece 0, written last: its filtered/
 * object marks the whole raw object done) and further pieces, each written
 * as soon as it is full. */
static int raw_pieces(struct raw_obj *r, struct filter_batch *b0, const char *body, size_t len)
{
    struct filter *f = r->f;
    const struct filter_limits lim = {.piece_records = RAW_PIECE_RECORDS,
                                      .piece_bytes = RAW_PIECE_BYTES};
    struct pipe_body_iter it;
    struct pipe_json_result jr;
    char msg[200];
    uint32_t acc, rej;
    int rc = pipe_body_iter_init(&it, body, len, PIPE_BODY_AUTO, f->cfg->max_event, &jr);
    if (rc < 0)
        return raw_not_json(r, b0, body, len, &jr);
    struct pipe_schema_set *set = filter_schemas_get(f);
    struct pipe_buf *name = &r->raw->piece;
    rc = filter_ingest_piece(f->cfg, &r->tally, b0, set, &it, &lim, &r->origin, &acc, &rej, msg,
                             sizeof msg);
    for (unsigned piece = 1; rc == 1; piece++) {
        pipe_buf_reset(name);
        pipe_buf_printf(name, "%s-p%04u", r->name, piece);
        struct filter_batch *b =
            raw_batch(f, &r->raw->b, r->o->mtime_ms, name->data, piece_cap(f->cfg));
        rc = filter_ingest_piece(f->cfg, &r->tally, b, set, &it, &lim, &r->origin, &acc, &rej, msg,
                                 sizeof msg);
        if (rc >= 0) {
            int wrc = piece_write(r, b);
            rc = wrc < 0 ? wrc : rc;
        }
    }
    filter_schemas_put(set);
    return rc;
}

/* raw_quarantine — records why o is not filtered (one rejected/ line with
 * its key, etag, size and reason, and the empty filtered/ marker, so it is
 * not tried again), counts and logs it. The object stays in raw/ for an
 * operator. */
static int raw_quarantine(struct raw_obj *r, enum filter_quarantine q, const char *detail)
{
    struct filter *f = r->f;
    char at[PIPE_CLOCK_RFC3339_LEN + 1], msg[300];
    pipe_clock_format_rfc3339(r->o->mtime_ms, at);
    snprintf(msg, sizeof msg, "raw object quarantined (%s): %s", quarantine_names[q], detail);
    enum pipe_reason reason =
        q == FILTER_Q_UNDECODABLE ? PIPE_REASON_NOT_JSON : PIPE_REASON_TOO_LARGE;
    struct filter_batch *b = raw_batch(f, &r->raw->b0, r->o->mtime_ms, r->name, piece_cap(f->cfg));
    int rc = filter_quarantine_line(&b->rejected, r->o, reason, quarantine_names[q], msg,
                                    r->origin.channel, at, r->source);
    if (rc == 0)
        rc = filter_batch_write(f, b);
    if (rc == 0) {
        pipe_counter_inc(f->m.raw_quarantined[q]);
        pipe_counter_inc(f->m.rejected[reason]);
        pipe_log_warn("raw object quarantined", "key=%s size=%llu reason=%s detail=\"%s\"",
                      r->o->key, (unsigned long long)r->o->size, quarantine_names[q], detail);
    }
    return rc;
}

/* raw_get — the object, decoded, in *body (raw->decoded, or raw->data
 * itself when it is not compressed): 0, or the quarantine reason (as 1 +
 * enum filter_quarantine) with detail, or a transient error. */
static int raw_get(struct raw_obj *r, const struct pipe_buf **body, char *detail, size_t dlen)
{
    const struct filter_cfg *cfg = r->f->cfg;
    struct filter_raw *raw = r->raw;
    if (r->o->size > cfg->max_raw) {
        snprintf(detail, dlen, "%llu bytes is over max_raw (%llu)", (unsigned long long)r->o->size,
                 (unsigned long long)cfg->max_raw);
        return 1 + FILTER_Q_TOO_LARGE;
    }
    int rc = raw->dec ? 0 : pipe_zdecoder_new(&raw->dec);
    pipe_buf_reset(&raw->data);
    pipe_buf_reset(&raw->decoded);
    if (rc == 0)
        rc = pipe_store_get(pipe_stage_store(r->f->st), r->o->key, &raw->data);
    *body = &raw->data; /* plain text is filtered where it lies */
    if (rc == 0 && pipe_codec_is_zstd(raw->data.data, raw->data.len)) {
        *body = &raw->decoded;
        rc = pipe_zdecoder_decompress(raw->dec, raw->data.data, raw->data.len, &raw->decoded);
    }
    if (rc == PIPE_ETOOBIG) {
        snprintf(detail, dlen, "over max_raw (%llu bytes) once decoded",
                 (unsigned long long)cfg->max_raw);
        return 1 + FILTER_Q_TOO_LARGE;
    }
    if (rc == PIPE_ECORRUPT) {
        snprintf(detail, dlen, "not decodable: %s", pipe_strerror(rc));
        return 1 + FILTER_Q_UNDECODABLE;
    }
    return rc;
}

/* raw_filter — filters the object r (its name set, not filtered before):
 * its pieces, then piece 0; 0, the quarantine reason (1 + enum
 * filter_quarantine) with detail, or an error. */
static int raw_filter(struct raw_obj *r, char *detail, size_t dlen)
{
    const struct filter_cfg *cfg = r->f->cfg;
    const struct pipe_buf *d;
    int rc = raw_get(r, &d, detail, dlen);
    if (rc != 0)
        return rc;
    struct filter_batch *b0 = raw_batch(r->f, &r->raw->b0, r->o->mtime_ms, r->name, piece_cap(cfg));
    rc = raw_pieces(r, b0, d->data ? d->data : "", d->len);
    if (rc == PIPE_EFULL || rc == PIPE_ETOOBIG) {
        snprintf(detail, dlen, "a piece's output is over its cap (%zu bytes)", piece_cap(cfg));
        return 1 + FILTER_Q_OVERFLOW;
    }
    return rc == 0 ? piece_write(r, b0) : rc;
}

/* raw_one — filters one raw/ object unless its filtered/ object exists; an
 * object that cannot be filtered is quarantined, so the walk goes on. */
static int raw_one(struct filter *f, struct filter_raw *raw, const struct pipe_store_obj *o)
{
    const struct filter_cfg *cfg = f->cfg;
    struct raw_obj r = {.f = f, .raw = raw, .o = o};
    char detail[200];
    snprintf(r.source, sizeof r.source, "raw:%s", o->key);
    r.origin = (struct filter_origin){raw_channel(cfg, o->key, r.chan, sizeof r.chan), o->mtime_ms,
                                      r.source};
    pipe_buf_reset(&raw->name);
    pipe_buf_reset(&raw->key);
    int rc = pipe_keys_raw_name(&raw->name, (unsigned)cfg->common.generation, o->key, o->etag);
    if (rc == 0)
        rc = pipe_keys_filtered(&raw->key, o->mtime_ms, raw->name.data);
    struct pipe_store_obj st;
    if (rc == 0)
        rc = pipe_store_stat(pipe_stage_store(f->st), raw->key.data, &st);
    if (rc != PIPE_ENOTFOUND)
        return rc; /* 0: filtered before; an error: a later pass asks again */
    r.name = raw->name.data;
    rc = raw_filter(&r, detail, sizeof detail);
    if (rc > 0) {
        rc = raw_quarantine(&r, (enum filter_quarantine)(rc - 1), detail);
    } else if (rc == 0) {
        pipe_counter_inc(f->m.raw_objects);
        pipe_counter_add(f->m.accepted, r.accepted);
        filter_tally_commit(&f->m, &r.tally);
        pipe_log_info("raw object filtered", "key=%s accepted=%llu rejected=%llu", o->key,
                      (unsigned long long)r.accepted, (unsigned long long)r.rejected);
    } else if (rc == PIPE_ENOTFOUND) {
        rc = 0; /* swept or replaced meanwhile: a later listing will tell */
    }
    if (rc == 0)
        raw->filtered++;
    return rc;
}

/* raw_visit — one listed object: skipped when known done, else filtered.
 * An object that fails does not stop the walk (the others go on; it is
 * retried by a later pass, and nothing of it is lost: its filtered/ marker
 * is written last), unless RAW_FAILS_IN_ROW objects failed in a row. */
static int raw_visit(void *arg, const struct pipe_store_obj *o)
{
    struct filter *f = arg;
    struct filter_raw *raw = f->raw;
    if (f->stopping)
        return 1;
    done_key(raw, o);
    uint64_t h = pipe_hset_hash(raw->id.data, raw->id.len);
    if (pipe_hset_find(&raw->done, h, raw->id.data, raw->id.len, done_eq))
        return 0;
    int rc = raw_one(f, raw, o);
    if (rc == 0) {
        done_add(raw, h);
        raw->fails_in_row = 0;
        return 0;
    }
    pipe_log_warn("raw object not filtered; will retry", "key=%s err=\"%s\" detail=\"%s\"", o->key,
                  pipe_strerror(rc), pipe_store_last_error(pipe_stage_store(f->st)));
    if (raw->err == 0)
        raw->err = rc;
    return ++raw->fails_in_row >= RAW_FAILS_IN_ROW ? rc : 0;
}

/* raw_pass — one walk over raw/, filtering what is new. Returns 0, or the
 * first error of an object or of the listing (the objects that failed are
 * retried by the next pass). */
static int raw_pass(struct filter *f)
{
    struct filter_raw *raw = f->raw;
    struct pipe_store *store = pipe_stage_store(f->st);
    raw->err = raw->fails_in_row = 0;
    raw->filtered = 0;
    int rc = pipe_store_walk(store, "raw/", NULL, 1000, raw_visit, f);
    if (rc > 0 || (rc == 0 && raw->err == 0))
        rc = 0;
    else
        rc = raw->err ? raw->err : rc;
    if (rc < 0)
        pipe_log_warn("raw pass failed; will retry", "err=\"%s\" filtered=%llu", pipe_strerror(rc),
                      (unsigned long long)raw->filtered);
    if (raw->filtered == 0)
        raw_release(raw); /* nothing new: an idle filter holds no buffers */
    return rc;
}

/* One round of the runtime's poller: a pass that failed is retried after a
 * back-off, one that went through waits raw_poll (--once: ends the run). A
 * daemon retries any error (an operator may fix a permission meanwhile);
 * --once must not report success over an error no retry can fix. */
static enum pipe_stage_status raw_round(struct pipe_stage *st, void *arg)
{
    int rc = raw_pass(arg);
    if (rc == 0)
        return PIPE_STAGE_IDLE;
    if (pipe_stage_common(st)->once && !pipe_err_is_transient(rc))
        return PIPE_STAGE_FAIL;
    return PIPE_STAGE_RETRY;
}

static void raw_ended(struct pipe_stage *st, void *arg, enum pipe_stage_status last)
{
    struct filter *f = arg;
    f->raw_poller = NULL;
    raw_free(f->raw);
    f->raw = NULL;
    if (pipe_stage_common(st)->once && !f->stopping)
        pipe_stage_done(st, last == PIPE_STAGE_FAIL ? 1 : 0); /* raw/ was the whole run */
    else
        filter_maybe_done(f);
}

int filter_raw_start(struct filter *f)
{
    f->raw = raw_new(f->cfg);
    f->raw_poller = pipe_stage_poller_start(f->st, raw_round, raw_ended, f, f->cfg->raw_poll_ms,
                                            f->cfg->common.once);
    return 0;
}

void filter_raw_stop(struct filter *f)
{
    pipe_stage_poller_stop(f->raw_poller);
}

static int read_input(const char *path, struct pipe_buf *out)
{
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (in == NULL)
        return -errno;
    int rc = 0;
    char chunk[1 << 16];
    size_t n;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, in)) > 0)
        rc = pipe_buf_append(out, chunk, n);
    if (rc == 0 && ferror(in))
        rc = PIPE_EIO;
    if (in != stdin)
        fclose(in);
    return rc;
}

int filter_input_file(struct filter *f, const char *path)
{
    const struct filter_cfg *cfg = f->cfg;
    struct pipe_buf data, decoded, name;
    pipe_buf_init(&data, cfg->max_raw);
    pipe_buf_init(&decoded, cfg->max_raw);
    pipe_buf_init(&name, 512);
    int64_t now = pipe_clock_now_ms();
    pipe_keys_http_name(&name, (unsigned)cfg->common.generation, cfg->common.instance, now, 1);
    struct filter_batch *b = filter_batch_new(f, now, name.data, cfg->max_raw * 2 + (1 << 20));
    int rc = read_input(path, &data);
    if (rc == 0)
        rc = pipe_codec_decompress(data.data ? data.data : "", data.len, &decoded);
    const struct filter_origin origin = {cfg->input_channel, now, "input"};
    if (rc == 0)
        rc = filter_body_as_batch(f, b, decoded.data ? decoded.data : "", decoded.len, &origin);
    if (rc == 0)
        rc = filter_batch_write(f, b);
    if (rc == 0) {
        pipe_counter_add(f->m.accepted, b->n_accepted);
        fprintf(stderr, "sluice-filter: %s: %llu accepted, %llu rejected\n", path,
                (unsigned long long)b->n_accepted, (unsigned long long)b->n_rejected);
    } else {
        fprintf(stderr, "sluice-filter: %s: %s\n", path, pipe_strerror(rc));
    }
    filter_batch_free(b);
    pipe_buf_cleanup(&name);
    pipe_buf_cleanup(&decoded);
    pipe_buf_cleanup(&data);
    return rc < 0 ? 1 : 0;
}
