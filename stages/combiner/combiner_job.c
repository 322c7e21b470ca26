/* combiner_job — runs one combine job (docs/compaction.md): read the inputs
 * the descriptor names (refusing any whose etag changed), merge their lines
 * into one object (a thread renews the lease meanwhile), check the lease,
 * then commit in an order that a crash anywhere can redo: combined object
 * (renewed again while it is put), manifest, split job, done markers, and
 * last the deletion of the descriptor. Every write is a pure function
 * of the descriptor, so a redo writes the same bytes. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/manifest.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/stage.h"
#include "libpipe/store.h"
#include "stages/combiner/combiner.h"

#define DESCRIPTOR_MAX (64u << 20)

/* The state of one run. */
struct run {
    struct combiner *c;
    const char *id;
    struct pipe_lease *lease;
    struct pipe_stage_keeper *keeper; /* renews lease during the merge and the object's put */
    struct pipe_manifest_job job;
    int64_t hour_ms; /* the partition of every input and of the output */
    bool frame_open; /* a recompressed zstd frame is in progress in c->out */
    struct pipe_manifest_combined man;
    uint64_t bytes_in;
    const char *stale; /* an input that changed or vanished (then rc PIPE_ENOTFOUND) */
};

/* Counts the lines of an input that hold something: the events. */
static uint64_t count_events(const char *p, size_t n)
{
    uint64_t events = 0;
    const char *end = p + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        if (stop > p && !(stop - p == 1 && *p == '\r'))
            events++;
        p = nl ? nl + 1 : end;
    }
    return events;
}

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

/* Fetches one input into c->in, exactly the version the descriptor names. */
static int fetch_input(struct run *r, const struct pipe_manifest_object *in)
{
    struct combiner *c = r->c;
    struct pipe_store *s = pipe_stage_store(c->st);
    struct pipe_store_obj info;
    const char *why = NULL;
    int rc = pipe_store_stat(s, in->key, &info);
    if (rc == 0 && (strcmp(info.etag, in->etag) != 0 || info.size != in->size))
        why = "changed since the job was written (etag or size differ)";
    if (rc == 0 && !why) {
        pipe_buf_reset(&c->in);
        rc = pipe_store_get(s, in->key, &c->in);
        /* A rewrite between stat and get shows as another size at least. */
        if (rc == 0 && c->in.len != in->size)
            why = "changed while it was read";
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

/* Whether the input in c->in goes to the output as it is stored (its zstd
 * frames copied) rather than recompressed: in concat mode, and in auto mode
 * for inputs of concat_min bytes or more, where recompressing at a fast
 * level gains nothing (docs/benchmarks.md). */
static bool copy_frames(const struct combiner *c, bool need_nl)
{
    if (need_nl || !pipe_codec_is_zstd(c->in.data ? c->in.data : "", c->in.len))
        return false;
    return c->mode == COMB_CONCAT || (c->mode == COMB_AUTO && c->in.len >= c->cfg->concat_min);
}

/* Appends the input in c->in / c->dec to the output. A final line without
 * "\n" gets one, so that inputs never run into each other. */
static int append_input(struct run *r, bool need_nl)
{
    struct combiner *c = r->c;
    int rc = 0;
    if (copy_frames(c, need_nl)) {
        rc = close_frame(r);
        if (rc == 0)
            rc = pipe_buf_append(&c->out, c->in.data, c->in.len);
        return rc;
    }
    if (!r->frame_open) {
        rc = pipe_zwriter_reset(c->zw, &c->out);
        r->frame_open = rc == 0;
    }
    if (rc == 0)
        rc = pipe_zwriter_write(c->zw, c->dec.data ? c->dec.data : "", c->dec.len);
    if (rc == 0 && need_nl)
        rc = pipe_zwriter_write(c->zw, "\n", 1);
    /* concat keeps one frame per input even when it had to recompress. */
    if (rc == 0 && c->mode == COMB_CONCAT)
        rc = close_frame(r);
    return rc;
}

static int add_input(struct run *r, const struct pipe_manifest_object *in)
{
    struct combiner *c = r->c;
    int rc = fetch_input(r, in);
    if (rc < 0)
        return rc;
    pipe_buf_reset(&c->dec);
    rc = pipe_codec_decompress(c->in.data ? c->in.data : "", c->in.len, &c->dec);
    if (rc < 0) {
        pipe_log_error("job input cannot be decoded; job left in place", "job=%s key=%s err=\"%s\"",
                       r->id, in->key, pipe_strerror(rc));
        return PIPE_ECORRUPT;
    }
    bool need_nl = c->dec.len > 0 && c->dec.data[c->dec.len - 1] != '\n';
    uint64_t events = count_events(c->dec.data ? c->dec.data : "", c->dec.len);
    rc = append_input(r, need_nl);
    if (rc == PIPE_ETOOBIG) {
        pipe_log_error("combined object would pass max_output; job left in place", "job=%s", r->id);
        return PIPE_ECORRUPT;
    }
    if (rc < 0)
        return rc;
    XXH3_64bits_update(c->xx, c->dec.data ? c->dec.data : "", c->dec.len);
    if (need_nl)
        XXH3_64bits_update(c->xx, "\n", 1);
    r->man.uncompressed_bytes += c->dec.len + (need_nl ? 1 : 0);
    r->man.events += events;
    r->bytes_in += in->size;
    pipe_manifest_combined_add_input(&r->man, in->key, in->size, in->etag, events);
    return 0;
}

/* Reads every input into c->out and fills the manifest. */
static int merge(struct run *r)
{
    struct combiner *c = r->c;
    pipe_buf_reset(&c->out);
    XXH3_64bits_reset(c->xx);
    r->frame_open = false;
    int rc = 0;
    for (size_t i = 0; i < r->job.n_inputs && rc == 0; i++) {
        if (pipe_stage_stopping(c->st))
            return PIPE_ESHUTDOWN; /* abandon: nothing was written */
        rc = pipe_stage_keeper_lost(r->keeper) ? PIPE_ELOST : 0;
        if (rc == 0)
            rc = add_input(r, &r->job.inputs[i]);
    }
    if (rc == 0) {
        rc = close_frame(r);
        if (rc == PIPE_ETOOBIG) {
            pipe_log_error("combined object would pass max_output; job left in place", "job=%s",
                           r->id);
            rc = PIPE_ECORRUPT;
        }
    }
    if (rc < 0)
        return rc;
    struct pipe_manifest_combined *m = &r->man;
    m->job_id = pipe_strdup(r->id);
    m->generation = r->job.generation;
    m->output_key = pipe_strdup(r->job.output_key);
    m->bytes = c->out.len;
    snprintf(m->checksum, sizeof m->checksum, "%016" PRIx64, (uint64_t)XXH3_64bits_digest(c->xx));
    m->ledger.in = m->events;
    m->ledger.out = m->events;
    return 0;
}

/* ---- committing -------------------------------------------------------- */

/* Puts the combined object: the long write, made while the keeper renews
 * the lease. Nothing counts as committed before the manifest. */
static int put_object(struct run *r)
{
    struct combiner *c = r->c;
    return pipe_store_put(pipe_stage_store(c->st), r->job.output_key,
                          c->out.data ? c->out.data : "", c->out.len);
}

/* write_object — checks the lease, then puts the combined object while a
 * thread renews the lease. The check is the last point where stopping costs
 * nothing. Once the object is put, a holder that lost the lease meanwhile
 * (paused past its TTL, so its renewals stopped too) finishes its commit
 * all the same: every write is the same bytes under the same keys, and
 * stopping could leave the split job of whoever committed first naming an
 * etag that this put replaced (file:// etags change on every put). */
static int write_object(struct run *r)
{
    struct pipe_leases *ls = pipe_stage_leases(r->c->st);
    int rc = pipe_lease_check(ls, r->lease);
    if (rc == 0)
        rc = pipe_stage_keeper_start(ls, r->lease, r->c->cfg->lease_ttl_ms, &r->keeper);
    if (rc == 0)
        rc = put_object(r);
    if (pipe_stage_keeper_stop(r->keeper) == PIPE_ELOST && rc == 0)
        pipe_log_warn("lease lost while the object was put; finishing the commit, whose writes "
                      "are idempotent",
                      "job=%s", r->id);
    r->keeper = NULL;
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
    int rc = pipe_lease_check(pipe_stage_leases(r->c->st), r->lease);
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

int comb_run_job(struct combiner *c, const char *id, struct pipe_lease *lease)
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
    /* While the inputs are read a thread renews the lease: one get of a
     * large object can take longer than the TTL. */
    rc = pipe_stage_keeper_start(pipe_stage_leases(c->st), lease, c->cfg->lease_ttl_ms, &r.keeper);
    if (rc == 0)
        rc = merge(&r);
    char other[PIPE_KEYS_NAME_MAX + 1] = "";
    if (rc == 0)
        rc = claimed_elsewhere(&r, other, sizeof other);
    int krc = pipe_stage_keeper_stop(r.keeper);
    r.keeper = NULL;
    if (rc == 0)
        rc = krc;
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
    if (rc == 0)
        rc = put_manifest(&r, &info);
commit:
    if (rc == 0)
        rc = finish(&r, &info);
    if (rc == 0)
        count_done(&r, start, recovered);
out:
    pipe_buf_cleanup(&key);
    pipe_manifest_combined_cleanup(&r.man);
    pipe_manifest_job_cleanup(&r.job);
    return rc;
}
