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
#include <xxhash.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
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

/* A set of 64-bit hashes of (key, etag) already known to be filtered. */
struct done_set {
    uint64_t *slots; /* 0 = empty */
    size_t cap, count;
};

static bool done_has(const struct done_set *d, uint64_t h)
{
    if (d->cap == 0)
        return false;
    for (size_t i = h & (d->cap - 1);; i = (i + 1) & (d->cap - 1)) {
        if (d->slots[i] == h)
            return true;
        if (d->slots[i] == 0)
            return false;
    }
}

static void done_add(struct done_set *d, uint64_t h)
{
    if (d->count >= RAW_DONE_MAX) {
        /* bounded: forget everything; later passes stat those objects */
        memset(d->slots, 0, d->cap * sizeof *d->slots);
        d->count = 0;
    }
    if ((d->count + 1) * 2 > d->cap) {
        struct done_set n = {pipe_calloc(d->cap ? d->cap * 2 : 1024, sizeof(uint64_t)),
                             d->cap ? d->cap * 2 : 1024, 0};
        for (size_t i = 0; i < d->cap; i++)
            if (d->slots[i])
                done_add(&n, d->slots[i]);
        pipe_free(d->slots);
        *d = n;
    }
    size_t i = h & (d->cap - 1);
    while (d->slots[i] != 0 && d->slots[i] != h)
        i = (i + 1) & (d->cap - 1);
    if (d->slots[i] == 0) {
        d->slots[i] = h;
        d->count++;
    }
}

static uint64_t obj_hash(const struct pipe_store_obj *o)
{
    XXH3_state_t *s = XXH3_createState();
    XXH3_64bits_reset(s);
    XXH3_64bits_update(s, o->key, strlen(o->key) + 1);
    XXH3_64bits_update(s, o->etag, strlen(o->etag));
    uint64_t h = XXH3_64bits_digest(s);
    XXH3_freeState(s);
    return h ? h : 1;
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
    const struct pipe_store_obj *o;
    const char *name; /* of its outputs; piece 0 and the quarantine record */
    char source[1100];
    char chan[PIPE_KEYS_NAME_MAX + 1];
    struct filter_origin origin;
    uint64_t accepted, rejected;
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
    struct pipe_buf key;
    struct pipe_store_obj st;
    pipe_buf_init(&key, 4096);
    int rc = pipe_keys_filtered(&key, b->time_ms, b->name);
    if (rc == 0 && pipe_store_stat(pipe_stage_store(r->f->st), key.data, &st) != 0)
        rc = filter_batch_write(r->f, b);
    pipe_buf_cleanup(&key);
    r->accepted += b->n_accepted;
    r->rejected += b->n_rejected;
    return rc;
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
    if (rc < 0) {
        char at[PIPE_CLOCK_RFC3339_LEN + 1];
        pipe_clock_format_rfc3339(r->origin.received_ms, at);
        snprintf(msg, sizeof msg, "the body is not JSON: %s at byte %zu", jr.what, jr.offset);
        pipe_counter_inc(f->m.rejected[PIPE_REASON_NOT_JSON]);
        b0->n_rejected++;
        rc = filter_reject(&b0->rejected, body, len, PIPE_REASON_NOT_JSON, msg, r->origin.channel,
                           at, r->source);
        return rc == PIPE_ETOOBIG ? PIPE_EFULL : rc;
    }
    struct pipe_schema_set *set = filter_schemas_get(f);
    struct filter_batch *b = NULL;
    struct pipe_buf name;
    pipe_buf_init(&name, 512);
    rc = filter_ingest_piece(f->cfg, &f->m, b0, set, &it, &lim, &r->origin, &acc, &rej, msg,
                             sizeof msg);
    for (unsigned piece = 1; rc == 1; piece++) {
        pipe_buf_reset(&name);
        pipe_buf_printf(&name, "%s-p%04u", r->name, piece);
        if (b == NULL)
            b = filter_batch_new(f, r->o->mtime_ms, name.data, piece_cap(f->cfg));
        else
            filter_batch_recycle(b, r->o->mtime_ms, name.data);
        rc = filter_ingest_piece(f->cfg, &f->m, b, set, &it, &lim, &r->origin, &acc, &rej, msg,
                                 sizeof msg);
        if (rc >= 0) {
            int wrc = piece_write(r, b);
            rc = wrc < 0 ? wrc : rc;
        }
    }
    filter_schemas_put(set);
    filter_batch_free(b);
    pipe_buf_cleanup(&name);
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
    struct filter_batch *b = filter_batch_new(f, r->o->mtime_ms, r->name, 1 << 20);
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
    filter_batch_free(b);
    return rc;
}

/* raw_get — the object, decoded, into decoded: 0, or the quarantine reason
 * (as 1 + enum filter_quarantine) with detail, or a transient error. */
static int raw_get(struct raw_obj *r, struct pipe_buf *decoded, char *detail, size_t dlen)
{
    const struct filter_cfg *cfg = r->f->cfg;
    if (r->o->size > cfg->max_raw) {
        snprintf(detail, dlen, "%llu bytes is over max_raw (%llu)", (unsigned long long)r->o->size,
                 (unsigned long long)cfg->max_raw);
        return 1 + FILTER_Q_TOO_LARGE;
    }
    struct pipe_buf data;
    pipe_buf_init(&data, cfg->max_raw);
    int rc = pipe_store_get(pipe_stage_store(r->f->st), r->o->key, &data);
    if (rc == 0)
        rc = pipe_codec_decompress(data.data ? data.data : "", data.len, decoded);
    pipe_buf_cleanup(&data);
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

/* raw_one — filters one raw/ object unless its filtered/ object exists; an
 * object that cannot be filtered is quarantined, so the walk goes on. */
static int raw_one(struct filter *f, const struct pipe_store_obj *o)
{
    const struct filter_cfg *cfg = f->cfg;
    struct pipe_buf name, key, decoded;
    struct filter_batch *b = NULL;
    struct raw_obj r = {.f = f, .o = o};
    char detail[200];
    pipe_buf_init(&name, 512);
    pipe_buf_init(&key, 4096);
    pipe_buf_init(&decoded, cfg->max_raw);
    snprintf(r.source, sizeof r.source, "raw:%s", o->key);
    r.origin = (struct filter_origin){raw_channel(cfg, o->key, r.chan, sizeof r.chan), o->mtime_ms,
                                      r.source};

    int rc = pipe_keys_raw_name(&name, (unsigned)cfg->common.generation, o->key, o->etag);
    if (rc == 0)
        rc = pipe_keys_filtered(&key, o->mtime_ms, name.data);
    struct pipe_store_obj st;
    if (rc < 0 || pipe_store_stat(pipe_stage_store(f->st), key.data, &st) == 0)
        goto out; /* filtered before */
    r.name = name.data;
    rc = raw_get(&r, &decoded, detail, sizeof detail);
    if (rc == 0) {
        b = filter_batch_new(f, o->mtime_ms, name.data, piece_cap(cfg));
        rc = raw_pieces(&r, b, decoded.data ? decoded.data : "", decoded.len);
        pipe_buf_cleanup(&decoded);
        if (rc == PIPE_EFULL || rc == PIPE_ETOOBIG) {
            snprintf(detail, sizeof detail, "a piece's output is over its cap (%zu bytes)",
                     piece_cap(cfg));
            rc = 1 + FILTER_Q_OVERFLOW;
        } else if (rc == 0) {
            rc = piece_write(&r, b);
        }
    }
    if (rc > 0) {
        rc = raw_quarantine(&r, (enum filter_quarantine)(rc - 1), detail);
    } else if (rc == 0) {
        pipe_counter_inc(f->m.raw_objects);
        pipe_counter_add(f->m.accepted, r.accepted);
        pipe_log_info("raw object filtered", "key=%s accepted=%llu rejected=%llu", o->key,
                      (unsigned long long)r.accepted, (unsigned long long)r.rejected);
    } else if (rc == PIPE_ENOTFOUND) {
        rc = 0; /* swept or replaced meanwhile: a later listing will tell */
    }
out:
    filter_batch_free(b);
    pipe_buf_cleanup(&decoded);
    pipe_buf_cleanup(&key);
    pipe_buf_cleanup(&name);
    return rc;
}

static int raw_visit(void *arg, const struct pipe_store_obj *o)
{
    struct filter *f = arg;
    struct done_set *done = f->raw_done;
    if (f->stopping)
        return 1;
    uint64_t h = obj_hash(o);
    if (done_has(done, h))
        return 0;
    int rc = raw_one(f, o);
    if (rc == 0)
        done_add(done, h);
    return rc;
}

/* raw_pass — one walk over raw/, filtering what is new. Returns 0 or the
 * first error (after which the pass stops, to be retried next time). */
static int raw_pass(struct filter *f)
{
    struct pipe_store *store = pipe_stage_store(f->st);
    int rc = pipe_store_walk(store, "raw/", NULL, 1000, raw_visit, f);
    if (rc < 0)
        pipe_log_warn("raw pass failed; will retry", "err=\"%s\" detail=\"%s\"", pipe_strerror(rc),
                      pipe_store_last_error(store));
    return rc < 0 ? rc : 0;
}

static void raw_work(uv_work_t *w)
{
    struct filter *f = w->data;
    raw_pass(f);
}

static void raw_after(uv_work_t *w, int status)
{
    struct filter *f = w->data;
    (void)status;
    f->raw_busy = false;
    filter_maybe_done(f);
}

static void raw_timer_cb(uv_timer_t *t)
{
    struct filter *f = t->data;
    if (f->raw_busy || f->stopping)
        return;
    f->raw_busy = true;
    f->raw_work.data = f;
    uv_queue_work(pipe_stage_loop(f->st), &f->raw_work, raw_work, raw_after);
}

int filter_raw_start(struct filter *f)
{
    if (f->raw_done == NULL)
        f->raw_done = pipe_calloc(1, sizeof(struct done_set));
    uv_timer_init(pipe_stage_loop(f->st), &f->raw_timer);
    f->raw_timer.data = f;
    uv_timer_start(&f->raw_timer, raw_timer_cb, 0, (uint64_t)f->cfg->raw_poll_ms);
    return 0;
}

void filter_raw_stop(struct filter *f)
{
    if (f->raw_timer.data && !uv_is_closing((uv_handle_t *)&f->raw_timer))
        uv_close((uv_handle_t *)&f->raw_timer, NULL);
    if (f->raw_done && !f->raw_busy && f->stopping) {
        struct done_set *d = f->raw_done;
        pipe_free(d->slots);
        pipe_free(d);
        f->raw_done = NULL;
    }
}

int filter_raw_run_once(struct filter *f)
{
    f->raw_done = pipe_calloc(1, sizeof(struct done_set));
    int rc = raw_pass(f);
    struct done_set *d = f->raw_done;
    pipe_free(d->slots);
    pipe_free(d);
    f->raw_done = NULL;
    return rc < 0 ? 1 : 0;
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
