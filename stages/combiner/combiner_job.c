/* combiner_job — runs one combine job (docs/compaction.md): read the inputs
 * the descriptor names (refusing any whose etag changed), merge their lines
 * into one object (the job runner renews the lease all along) made of
 * parts, the copied inputs' views and what the combiner writes itself, put
 * without joining them in fresh memory; check the lease, then commit in an
 * order that a crash anywhere can redo: combined object, manifest, split
 * job, done markers, and last the deletion of the descriptor. Every write
 * is a pure function of the descriptor, so a redo writes the same bytes. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/job.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/manifest.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/stage.h"
#include "libpipe/store.h"
#include "stages/combiner/combiner.h"

#define DESCRIPTOR_MAX (64u << 20)

/* What one pass over an input's decoded bytes learns: its events (lines
 * that hold something: not empty, not a lone "\r"), its size and whether
 * it ends with "\n". A line can span chunks, so its start is carried. */
struct scan {
    uint64_t events;
    uint64_t bytes;
    uint64_t line_len; /* bytes of the current line so far */
    bool line_cr;      /* the current line starts with '\r' */
    char last;         /* the last byte decoded */
};

/* One piece of the combined object: bytes of an input's view (the frames
 * it copies as stored) or of c->out (what the combiner writes itself).
 * Offsets, not pointers: c->out moves when it grows. */
struct out_part {
    size_t view; /* index into run.views, or OWN_BYTES: c->out */
    size_t off, len;
};

#define OWN_BYTES SIZE_MAX

/* The state of one run. */
struct run {
    struct combiner *c;
    const char *id;
    struct pipe_job_lease *lease; /* held and renewed by the job runner */
    struct pipe_manifest_job job;
    int64_t hour_ms; /* the partition of every input and of the output */
    bool frame_open; /* a recompressed zstd frame is in progress in c->out */
    struct scan sc;  /* what decoding the input in hand has learnt so far */
    struct pipe_manifest_combined man;
    uint64_t bytes_in;
    /* The output is parts[0..n_parts) in order, put without joining them:
     * views[i] holds input i while the job runs when its frames are copied
     * (empty otherwise); c->out[0..own_mark) is in parts already. */
    struct pipe_store_view *views;
    struct out_part *parts;
    size_t n_parts, cap_parts, own_mark;
    const char *stale; /* an input that changed or vanished (then rc PIPE_ENOTFOUND) */
};

/* ---- reading the descriptor ------------------------------------------- */

/* Reads and checks the descriptor: its id, an output key that is this
 * job's combined/ key, and inputs that are filtered/ objects of that same
 * hour. A descriptor that fails is PIPE_ECORRUPT. */
static int load_job(struct run *r, const char *key)
{
    struct pipe_store *s = pipe_stage_store(r->c->st);
    struct pipe_buf b;
    pipe_buf_init(&b, DESCRIPTOR_MAX);
    int rc = pipe_store_get(s, key, &b);
    if (rc < 0)
        goto out;
    const char *why = NULL;
    struct pipe_key_parts out_parts = {0}, in_parts;
    if (pipe_manifest_job_from_json(b.data, b.len, &r->job) < 0)
        why = "does not parse";
    else if (strcmp(r->job.job_id, r->id) != 0)
        why = "names another job id";
    else if (pipe_keys_parse(r->job.output_key, &out_parts) < 0 ||
             strcmp(out_parts.prefix, "combined") != 0 || strcmp(out_parts.name, r->id) != 0)
        why = "has an output key that is not this job's combined/ object";
    else if (r->job.n_inputs == 0)
        why = "has no inputs";
    for (size_t i = 0; why == NULL && i < r->job.n_inputs; i++)
        if (pipe_keys_parse(r->job.inputs[i].key, &in_parts) < 0 ||
            strcmp(in_parts.prefix, "filtered") != 0 || in_parts.hour_ms != out_parts.hour_ms)
            why = "has an input that is not a filtered/ object of the job's hour";
    if (why) {
        pipe_log_error("invalid job descriptor; left in place", "key=%s why=\"%s\"", key, why);
        rc = PIPE_ECORRUPT;
        goto out;
    }
    r->hour_ms = out_parts.hour_ms;
out:
    pipe_buf_cleanup(&b);
    return rc;
}

/* ---- merging ----------------------------------------------------------- */

/* Fetches input i, exactly the version the descriptor names: appended to
 * c->in, or as the view r->views[i] when its frames are copied (copy:
 * file:// maps it, nothing is copied). */
static int fetch_input(struct run *r, size_t i, bool copy)
{
    struct combiner *c = r->c;
    const struct pipe_manifest_object *in = &r->job.inputs[i];
    struct pipe_buf *dst = &c->in;
    struct pipe_store_view *v = &r->views[i];
    struct pipe_store *s = pipe_stage_store(c->st);
    struct pipe_store_obj info;
    const char *why = NULL;
    size_t start = dst->len;
    int rc = pipe_store_stat(s, in->key, &info);
    if (rc == 0 && (strcmp(info.etag, in->etag) != 0 || info.size != in->size))
        why = "changed since the job was written (etag or size differ)";
    else if (rc == 0 && info.size > c->cfg->max_input)
        rc = PIPE_ETOOBIG;
    if (rc == 0 && !why) {
        rc = copy ? pipe_store_view_get(s, in->key, c->cfg->max_input, v)
                  : pipe_store_get(s, in->key, dst);
        /* A rewrite between stat and get shows as another size at least. */
        if (rc == 0 && (copy ? v->len : dst->len - start) != in->size) {
            why = "changed while it was read";
            if (copy) {
                pipe_store_view_release(v);
            } else {
                dst->len = start;
                if (dst->data)
                    dst->data[start] = '\0';
            }
        }
    }
    if (rc == PIPE_ENOTFOUND)
        why = "is missing";
    else if (rc == PIPE_ETOOBIG)
        why = "is larger than max_input";
    if (why && rc != PIPE_ETOOBIG) {
        /* A replay or a rewrite: the job cannot be done as written, and
         * waiting would freeze its other inputs too. It is planned again. */
        pipe_log_warn("job input changed or vanished", "job=%s key=%s why=\"%s\"", r->id, in->key,
                      why);
        r->stale = in->key;
        return PIPE_ENOTFOUND;
    }
    if (why) {
        pipe_log_error("job input cannot be combined; job left in place",
                       "job=%s key=%s why=\"%s\"", r->id, in->key, why);
        return PIPE_ECORRUPT;
    }
    return rc;
}

/* Ends the zstd frame in progress, if any. */
static int close_frame(struct run *r)
{
    if (!r->frame_open)
        return 0;
    r->frame_open = false;
    return pipe_zwriter_finish(r->c->zw);
}

/* Starts a recompressed frame in c->out unless one is in progress. */
static int open_frame(struct run *r)
{
    int rc = 0;
    if (!r->frame_open) {
        rc = pipe_zwriter_reset(r->c->zw, &r->c->out);
        r->frame_open = rc == 0;
    }
    return rc;
}

/* Whether an input of this stored size goes to the output as it is stored
 * (its zstd frames copied) rather than recompressed: in concat mode, and in
 * auto mode for inputs of concat_min bytes or more, where recompressing
 * gains little and costs most of the combiner's CPU (docs/benchmarks.md).
 * An input that turns out not to be zstd is compressed all the same. */
static bool copy_frames(const struct combiner *c, uint64_t size)
{
    return c->mode == COMB_CONCAT || (c->mode == COMB_AUTO && size >= c->cfg->concat_min);
}

/* Whether the line the scan is in holds something: not empty, not "\r". */
static bool line_is_event(const struct scan *sc)
{
    return sc->line_len > 1 || (sc->line_len == 1 && !sc->line_cr);
}

/* Counts the events of one decoded chunk; a line may go on in the next. */
static void scan_chunk(struct scan *sc, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        if (stop > p && sc->line_len == 0)
            sc->line_cr = *p == '\r';
        sc->line_len += (uint64_t)(stop - p);
        if (nl) {
            sc->events += line_is_event(sc);
            sc->line_len = 0;
        }
        p = nl ? nl + 1 : end;
    }
}

/* An input the combiner cannot decode: PIPE_ECORRUPT, and why in the log. */
static int undecodable(struct run *r, const char *key, const char *why)
{
    pipe_log_error("job input cannot be decoded; job left in place", "job=%s key=%s why=\"%s\"",
                   r->id, key, why);
    return PIPE_ECORRUPT;
}

/* One chunk of an input's decoded bytes, while it is in cache: counted
 * and, when recompressing (feed), fed to the frame in progress. */
static int take_chunk(struct run *r, const char *key, const char *p, size_t n, bool feed)
{
    struct combiner *c = r->c;
    struct scan *sc = &r->sc;
    if (n == 0)
        return 0;
    /* The cap bounds what a small input that decodes to a lot can cost. */
    if (n > c->cfg->max_input - sc->bytes)
        return undecodable(r, key, "decodes to more than max_input bytes");
    sc->bytes += n;
    sc->last = p[n - 1];
    scan_chunk(sc, p, n);
    return feed ? pipe_zwriter_write(c->zw, p, n) : 0;
}

struct chunk_ctx {
    struct run *r;
    const char *key;
    bool feed;
    bool refused; /* take_chunk refused a chunk (and said why) */
};

static int on_chunk(void *arg, const char *p, size_t n)
{
    struct chunk_ctx *x = arg;
    int rc = take_chunk(x->r, x->key, p, n, x->feed);
    x->refused = rc < 0;
    return rc;
}

/* Decodes the input p[0..n) (one or more zstd frames, or plain) chunk by
 * chunk through take_chunk: one pass, in a buffer that stays in cache,
 * instead of the whole input decoded to memory and then read twice more. */
static int decode_input(struct run *r, const char *key, const char *p, size_t n, bool feed)
{
    memset(&r->sc, 0, sizeof r->sc);
    if (!pipe_codec_is_zstd(p, n))
        return take_chunk(r, key, p, n, feed);
    struct chunk_ctx x = {r, key, feed, false};
    int rc = pipe_zdecoder_each(r->c->zd, p, n, on_chunk, &x);
    if (rc == PIPE_ECORRUPT && !x.refused)
        return undecodable(r, key, "a bad or cut-short zstd frame");
    return rc;
}

/* read_record — the sluice record (libpipe/codec.h) the input p[0..n)
 * starts with, if any, into *rec: 1, 0 without one, PIPE_ECORRUPT for a
 * garbled one or one over max_input. */
static int read_record(struct run *r, const char *key, const char *p, size_t n,
                       struct pipe_codec_record *rec)
{
    int rc = pipe_codec_record_read(p, n, rec);
    if (rc == PIPE_ENOTFOUND)
        return 0;
    if (rc < 0)
        return undecodable(r, key, "a garbled sluice record");
    if (rec->bytes > r->c->cfg->max_input)
        return undecodable(r, key, "decodes to more than max_input bytes");
    return 1;
}

/* vouched — for an input copied as stored whose record rec is followed
 * by p[0..n): walks those frames without decoding them. True when they
 * are whole, checksummed frames declaring rec->bytes in all: r->sc takes
 * its counts from the record, and the input is not decoded. */
static bool vouched(struct run *r, const char *key, const char *p, size_t n,
                    const struct pipe_codec_record *rec)
{
    uint64_t bytes = 0;
    if (pipe_codec_frames_size(p, n, &bytes) < 0 || bytes != rec->bytes) {
        pipe_log_warn("input's frames do not bear out its sluice record; decoding it",
                      "job=%s key=%s", r->id, key);
        return false;
    }
    memset(&r->sc, 0, sizeof r->sc);
    r->sc.events = rec->events;
    r->sc.bytes = rec->bytes;
    r->sc.last = '\n';
    return true;
}

/* count_input — counts and checks the input p[0..n): copied as stored
 * (copy), or in c->in to be fed to the frame in progress. A copied input
 * leaves its record out (combined/ objects carry none: *skip is its
 * length) and, when its frames bear the record out, is counted from it;
 * any other is decoded once, which counts and checks it, and must then
 * hold what its record (if any) says. */
static int count_input(struct run *r, const char *key, const char *p, size_t n, bool copy,
                       size_t *skip)
{
    struct pipe_codec_record rec;
    int has = read_record(r, key, p, n, &rec);
    *skip = 0;
    if (has < 0)
        return has;
    if (has && copy) {
        *skip = PIPE_CODEC_RECORD_LEN;
        p += PIPE_CODEC_RECORD_LEN;
        n -= PIPE_CODEC_RECORD_LEN;
        if (vouched(r, key, p, n, &rec))
            return 0;
    }
    /* Copied as they are, bytes that are not zstd would spoil the object. */
    if (has && copy && n > 0 && !pipe_codec_is_zstd(p, n))
        return undecodable(r, key, "a sluice record followed by other than zstd frames");
    int rc = decode_input(r, key, p, n, !copy);
    if (rc == 0 && has && (r->sc.bytes != rec.bytes || r->sc.events != rec.events)) {
        char why[200];
        snprintf(why, sizeof why,
                 "its sluice record says %llu events in %llu bytes, its frames hold %llu in "
                 "%llu: cut short, or a wrong record",
                 (unsigned long long)rec.events, (unsigned long long)rec.bytes,
                 (unsigned long long)r->sc.events, (unsigned long long)r->sc.bytes);
        rc = undecodable(r, key, why);
    }
    return rc;
}

/* ---- the output's parts ------------------------------------------------ */

/* Appends a part, or lengthens the last one when it goes on from it. */
static void push_part(struct run *r, size_t view, size_t off, size_t len)
{
    struct out_part *last = r->n_parts ? &r->parts[r->n_parts - 1] : NULL;
    if (len == 0)
        return;
    if (last && last->view == view && last->off + last->len == off) {
        last->len += len;
        return;
    }
    if (r->n_parts == r->cap_parts) {
        r->cap_parts = r->cap_parts ? 2 * r->cap_parts : 16;
        r->parts = pipe_realloc(r->parts, r->cap_parts * sizeof *r->parts);
    }
    r->parts[r->n_parts++] = (struct out_part){view, off, len};
}

/* Makes what the combiner wrote to c->out since the last part a part. */
static void flush_own(struct run *r)
{
    push_part(r, OWN_BYTES, r->own_mark, r->c->out.len - r->own_mark);
    r->own_mark = r->c->out.len;
}

/* Adds input i's view from off on as the next part. c->out's cap shrinks
 * by as much, so that it bounds the whole output: PIPE_ETOOBIG when the
 * output would pass max_output. */
static int add_view_part(struct run *r, size_t i, size_t off)
{
    struct pipe_buf *out = &r->c->out;
    size_t len = r->views[i].len - off;
    if (len > out->max - out->len)
        return PIPE_ETOOBIG;
    flush_own(r);
    push_part(r, i, off, len);
    out->max -= len;
    return 0;
}

/* The bytes of part p, resolved now (c->out may have moved meanwhile). */
static const char *part_data(const struct run *r, const struct out_part *p)
{
    return p->view == OWN_BYTES ? r->c->out.data + p->off : r->views[p->view].data + p->off;
}

/* Releases every input's view (safe when there are none, and twice). */
static void release_views(struct run *r)
{
    for (size_t i = 0; r->views && i < r->job.n_inputs; i++)
        pipe_store_view_release(&r->views[i]);
}

/* Appends input i to the output: its frames copied as stored (held in
 * its view, a part of the output), or decoded into the frame in progress.
 * Either way it is counted and checked (count_input). A final line
 * without "\n" gets one, so that inputs never run into each other. */
static int append_input(struct run *r, size_t i)
{
    struct combiner *c = r->c;
    const struct pipe_manifest_object *in = &r->job.inputs[i];
    struct pipe_store_view *v = &r->views[i];
    bool copy = copy_frames(c, in->size);
    int rc = copy ? close_frame(r) : 0;
    size_t skip = 0;
    pipe_buf_reset(&c->in);
    if (rc == 0)
        rc = fetch_input(r, i, copy);
    if (rc < 0)
        return rc;
    if (copy && !pipe_codec_is_zstd(v->data, v->len)) {
        rc = pipe_buf_append(&c->in, v->data, v->len);
        pipe_store_view_release(v);
        copy = false;
    }
    if (rc == 0 && !copy)
        rc = open_frame(r);
    if (rc == 0)
        rc = copy ? count_input(r, in->key, v->data, v->len, true, &skip)
                  : count_input(r, in->key, c->in.data ? c->in.data : "", c->in.len, false, &skip);
    if (rc == 0 && copy)
        rc = add_view_part(r, i, skip);
    bool need_nl = r->sc.bytes > 0 && r->sc.last != '\n';
    if (rc == 0 && need_nl) {
        /* A frame of its own after copied frames: still one zstd stream. */
        rc =
            copy ? pipe_zwriter_frame(c->zw, "\n", 1, &c->out) : pipe_zwriter_write(c->zw, "\n", 1);
        r->sc.events += line_is_event(&r->sc);
        r->sc.bytes++;
    }
    /* concat keeps one frame per input even when it had to recompress. */
    if (rc == 0 && c->mode == COMB_CONCAT)
        rc = close_frame(r);
    return rc;
}

static int add_input(struct run *r, size_t i)
{
    const struct pipe_manifest_object *in = &r->job.inputs[i];
    int rc = append_input(r, i);
    if (rc == PIPE_ETOOBIG) {
        pipe_log_error("combined object would pass max_output; job left in place", "job=%s", r->id);
        return PIPE_ECORRUPT;
    }
    if (rc < 0)
        return rc;
    r->man.uncompressed_bytes += r->sc.bytes;
    r->man.events += r->sc.events;
    r->bytes_in += in->size;
    pipe_manifest_combined_add_input(&r->man, in->key, in->size, in->etag, r->sc.events);
    return 0;
}

/* Reads every input into the output's parts. */
static int merge_inputs(struct run *r)
{
    struct combiner *c = r->c;
    int rc = 0;
    for (size_t i = 0; i < r->job.n_inputs && rc == 0; i++) {
        if (pipe_stage_stopping(c->st))
            return PIPE_ESHUTDOWN; /* abandon: nothing was written */
        rc = pipe_job_lease_lost(r->lease) ? PIPE_ELOST : 0;
        if (rc == 0)
            rc = add_input(r, i);
    }
    if (rc == 0) {
        rc = close_frame(r);
        if (rc == PIPE_ETOOBIG) {
            pipe_log_error("combined object would pass max_output; job left in place", "job=%s",
                           r->id);
            rc = PIPE_ECORRUPT;
        }
    }
    return rc;
}

/* The XXH3-64 of the output's parts in order, as hex into hex[17]. */
static int checksum_parts(const struct run *r, char *hex, size_t hex_len)
{
    XXH3_state_t *st = XXH3_createState();
    if (st == NULL)
        return -ENOMEM;
    XXH3_64bits_reset(st);
    for (size_t i = 0; i < r->n_parts; i++)
        XXH3_64bits_update(st, part_data(r, &r->parts[i]), r->parts[i].len);
    snprintf(hex, hex_len, "%016" PRIx64, (uint64_t)XXH3_64bits_digest(st));
    XXH3_freeState(st);
    return 0;
}

/* Reads every input into the output's parts and fills the manifest. */
static int merge(struct run *r)
{
    struct combiner *c = r->c;
    pipe_buf_reset(&c->out);
    c->out.max = c->cfg->max_output; /* add_view_part shrinks it */
    r->frame_open = false;
    r->views = pipe_calloc(r->job.n_inputs, sizeof *r->views);
    int rc = merge_inputs(r);
    if (rc < 0)
        return rc;
    flush_own(r);
    struct pipe_manifest_combined *m = &r->man;
    m->job_id = pipe_strdup(r->id);
    m->generation = r->job.generation;
    m->output_key = pipe_strdup(r->job.output_key);
    m->bytes = 0;
    for (size_t i = 0; i < r->n_parts; i++)
        m->bytes += r->parts[i].len;
    m->ledger.in = m->events;
    m->ledger.out = m->events;
    /* Of the object as stored: what is checked is what is kept, and no
     * input had to be decoded for it (docs/compaction.md). */
    return checksum_parts(r, m->checksum, sizeof m->checksum);
}

/* ---- committing -------------------------------------------------------- */

/* Puts the combined object: the long write, made while the runner renews
 * the lease. Nothing counts as committed before the manifest. */
static int put_object(struct run *r)
{
    struct pipe_store_part *parts = pipe_calloc(r->n_parts ? r->n_parts : 1, sizeof *parts);
    for (size_t i = 0; i < r->n_parts; i++)
        parts[i] = (struct pipe_store_part){part_data(r, &r->parts[i]), r->parts[i].len};
    int rc = pipe_store_put_parts(pipe_stage_store(r->c->st), r->job.output_key, parts, r->n_parts);
    pipe_free(parts);
    return rc;
}

/* write_object — checks the lease, then puts the combined object (the
 * runner's thread renews the lease meanwhile). The check is the last point where stopping costs
 * nothing. Once the object is put, a holder that lost the lease meanwhile
 * (paused past its TTL, so its renewals stopped too) finishes its commit
 * all the same: every write is the same bytes under the same keys, and
 * stopping could leave the split job of whoever committed first naming an
 * etag that this put replaced (file:// etags change on every put). */
static int write_object(struct run *r)
{
    int rc = pipe_job_lease_check(r->lease);
    if (rc == 0)
        rc = put_object(r);
    if (rc == 0 && pipe_job_lease_lost(r->lease))
        pipe_log_warn("lease lost while the object was put; finishing the commit, whose writes "
                      "are idempotent",
                      "job=%s", r->id);
    return rc;
}

/* Puts the manifest (the commit: committed_before looks for it); then
 * *info describes the stored object. */
static int put_manifest(struct run *r, struct pipe_store_obj *info)
{
    struct pipe_store *s = pipe_stage_store(r->c->st);
    struct pipe_buf key, json;
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&json, DESCRIPTOR_MAX);
    int rc = pipe_manifest_combined_to_json(&r->man, &json);
    if (rc == 0)
        rc = pipe_keys_manifest(&key, "combined", r->id);
    if (rc == 0)
        rc = pipe_store_put(s, key.data, json.data, json.len);
    if (rc == 0)
        rc = pipe_store_stat(s, r->job.output_key, info);
    pipe_buf_cleanup(&json);
    pipe_buf_cleanup(&key);
    return rc;
}

/* The split job: a pipe_manifest_job whose one input is the combined object
 * and whose output_key is the split manifest, the key whose existence
 * means the split is done. */
static int put_split_job(struct run *r, const struct pipe_store_obj *info)
{
    struct pipe_manifest_job sj;
    struct pipe_buf key, out_key, json;
    pipe_manifest_job_init(&sj);
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&out_key, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&json, 1u << 20);
    int rc = pipe_keys_split_job(&key, r->id);
    if (rc == 0)
        rc = pipe_keys_manifest(&out_key, "split", r->id);
    if (rc == 0) {
        sj.job_id = pipe_strdup(r->id);
        sj.generation = r->job.generation;
        sj.created_ms = r->job.created_ms;
        sj.output_key = pipe_strdup(out_key.data);
        pipe_manifest_job_add_input(&sj, r->job.output_key, info->size, info->etag);
        rc = pipe_manifest_job_to_json(&sj, &json);
    }
    if (rc == 0)
        rc = pipe_store_put(pipe_stage_store(r->c->st), key.data, json.data, json.len);
    pipe_buf_cleanup(&json);
    pipe_buf_cleanup(&out_key);
    pipe_buf_cleanup(&key);
    pipe_manifest_job_cleanup(&sj);
    return rc;
}

/* Steps after the commit: split job, done markers, then the descriptor
 * goes (the dispatcher relies on markers existing before that). */
static int finish(struct run *r, const struct pipe_store_obj *info)
{
    struct pipe_store *s = pipe_stage_store(r->c->st);
    struct pipe_buf key;
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    int rc = put_split_job(r, info);
    for (size_t i = 0; i < r->job.n_inputs && rc == 0; i++) {
        struct pipe_key_parts p;
        rc = pipe_keys_parse(r->job.inputs[i].key, &p);
        if (rc == 0)
            rc = pipe_keys_combine_done(&key, p.hour_ms, p.name);
        if (rc == 0)
            rc = pipe_store_put(s, key.data, r->id, strlen(r->id));
    }
    if (rc == 0)
        rc = pipe_keys_job(&key, r->id);
    if (rc == 0)
        rc = pipe_store_delete(s, key.data);
    pipe_buf_cleanup(&key);
    return rc;
}

/* Whether an earlier holder committed (manifest and object both there);
 * then *info describes the object. */
static int committed_before(struct run *r, bool *yes, struct pipe_store_obj *info)
{
    struct pipe_store *s = pipe_stage_store(r->c->st);
    struct pipe_buf key;
    struct pipe_store_obj tmp;
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    int rc = pipe_keys_manifest(&key, "combined", r->id);
    if (rc == 0)
        rc = pipe_store_stat(s, key.data, &tmp);
    if (rc == 0)
        rc = pipe_store_stat(s, r->job.output_key, info);
    *yes = rc == 0;
    if (rc == PIPE_ENOTFOUND)
        rc = 0;
    pipe_buf_cleanup(&key);
    return rc;
}

/* Another job's done marker on one of our inputs means a second dispatcher
 * (a paused one, or one that ran while the lease table was empty) grouped
 * those inputs again. The first commit wins: *other names that job. */
static int claimed_elsewhere(struct run *r, char *other, size_t other_len)
{
    struct pipe_store *s = pipe_stage_store(r->c->st);
    struct pipe_buf key, mark;
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&mark, PIPE_KEYS_NAME_MAX);
    int rc = 0;
    other[0] = '\0';
    for (size_t i = 0; i < r->job.n_inputs && rc == 0 && !other[0]; i++) {
        struct pipe_key_parts p;
        rc = pipe_keys_parse(r->job.inputs[i].key, &p);
        if (rc == 0)
            rc = pipe_keys_combine_done(&key, p.hour_ms, p.name);
        pipe_buf_reset(&mark);
        if (rc == 0)
            rc = pipe_store_get(s, key.data, &mark);
        if (rc == 0 && (mark.len != strlen(r->id) || memcmp(mark.data, r->id, mark.len) != 0))
            snprintf(other, other_len, "%.*s", (int)mark.len, mark.data);
        if (rc == PIPE_ENOTFOUND)
            rc = 0;
    }
    pipe_buf_cleanup(&mark);
    pipe_buf_cleanup(&key);
    return rc;
}

/* Drops a superseded job: its descriptor goes, so that the dispatcher hands
 * out again whichever of its inputs no job has combined. */
static int drop_superseded(struct run *r, const char *other)
{
    struct pipe_buf key;
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    pipe_log_error("inputs already combined by another job; dropping this one", "job=%s other=%s",
                   r->id, other);
    pipe_counter_inc(r->c->m.superseded);
    int rc = pipe_keys_job(&key, r->id);
    if (rc == 0)
        rc = pipe_store_delete(pipe_stage_store(r->c->st), key.data);
    pipe_buf_cleanup(&key);
    return rc;
}

/* replan — drops a job with an input that changed or vanished (r->stale):
 * its descriptor goes, so the dispatcher's next pass finds its inputs
 * neither pending nor done and groups them again as they now are (a new
 * job, named from the new versions). Nothing was committed (no manifest):
 * a combined object an earlier holder put goes first, then the
 * descriptor; a crash between the two leaves the descriptor, and the next
 * holder drops the job again. Done under the lease, checked first. */
static int replan(struct run *r)
{
    struct pipe_store *s = pipe_stage_store(r->c->st);
    struct pipe_buf key;
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    int rc = pipe_job_lease_check(r->lease);
    if (rc == 0)
        rc = pipe_store_delete(s, r->job.output_key);
    if (rc == 0)
        rc = pipe_keys_job(&key, r->id);
    if (rc == 0)
        rc = pipe_store_delete(s, key.data);
    if (rc == 0) {
        pipe_counter_inc(r->c->m.replanned);
        pipe_log_warn("job dropped; its inputs go back to the dispatcher", "job=%s input=%s", r->id,
                      r->stale);
    }
    pipe_buf_cleanup(&key);
    return rc;
}

static void count_done(struct run *r, int64_t start_mono, bool recovered)
{
    struct comb_metrics *m = &r->c->m;
    pipe_counter_inc(m->jobs);
    if (recovered) {
        pipe_counter_inc(m->recovered);
    } else {
        pipe_counter_add(m->events_in, r->man.ledger.in);
        pipe_counter_add(m->events_out, r->man.ledger.out);
        pipe_counter_add(m->bytes_in, r->bytes_in);
        pipe_counter_add(m->bytes_out, r->man.bytes);
    }
    double secs = (double)(pipe_clock_mono_ms() - start_mono) / 1000.0;
    pipe_histogram_observe(m->duration, secs);
    pipe_log_info(recovered ? "job cleanup finished" : "job combined",
                  "job=%s inputs=%zu events=%llu bytes_in=%llu bytes_out=%llu seconds=%.3f", r->id,
                  r->job.n_inputs, (unsigned long long)r->man.events,
                  (unsigned long long)r->bytes_in, (unsigned long long)r->man.bytes, secs);
}

int comb_run_job(struct combiner *c, const char *id, struct pipe_job_lease *lease)
{
    int64_t start = pipe_clock_mono_ms();
    struct run r = {.c = c, .id = id, .lease = lease};
    struct pipe_buf key;
    struct pipe_store_obj info;
    bool recovered = false;
    pipe_manifest_job_init(&r.job);
    pipe_manifest_combined_init(&r.man);
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    int rc = pipe_keys_job(&key, id);
    if (rc == 0)
        rc = load_job(&r, key.data);
    if (rc == 0)
        rc = committed_before(&r, &recovered, &info);
    if (rc < 0 || recovered)
        goto commit;
    /* The runner's thread renews the lease meanwhile: one get of a large
     * input can take longer than the TTL. */
    rc = merge(&r);
    char other[PIPE_KEYS_NAME_MAX + 1] = "";
    if (rc == 0)
        rc = claimed_elsewhere(&r, other, sizeof other);
    if (rc == 0 && pipe_job_lease_lost(lease))
        rc = PIPE_ELOST;
    if (rc == 0 && other[0]) {
        rc = drop_superseded(&r, other);
        goto out;
    }
    if (rc == PIPE_ENOTFOUND && r.stale) {
        rc = replan(&r);
        goto out;
    }
    /* A stop asked for during the merge abandons the job before its first
     * write: all of it is redone by the next holder. */
    if (rc == 0 && pipe_stage_stopping(c->st))
        rc = PIPE_ESHUTDOWN;
    if (rc == 0)
        rc = write_object(&r);
    release_views(&r); /* the inputs' bytes are in the object now */
    if (rc == 0)
        rc = put_manifest(&r, &info);
commit:
    if (rc == 0)
        rc = finish(&r, &info);
    if (rc == 0)
        count_done(&r, start, recovered);
out:
    release_views(&r);
    pipe_free(r.views);
    pipe_free(r.parts);
    pipe_buf_cleanup(&key);
    pipe_manifest_combined_cleanup(&r.man);
    pipe_manifest_job_cleanup(&r.job);
    return rc;
}
