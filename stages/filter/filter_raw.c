/* filter_raw — the filter's batch sources: objects landed under raw/ by
 * anything outside sluice, and local files given with --input.
 *
 * Each raw/ object is filtered once, into objects whose names and contents
 * are functions of the raw object alone (its key, etag and mtime), so that a
 * crash half way through simply redoes the same writes. The filtered/ object
 * is written last and is the durable record that the raw object is done;
 * an in-memory set only saves the stat on later passes. */
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
#include "libpipe/store.h"
#include "stages/filter/filter.h"

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

/* filter_body_as_batch — filters one whole body (a raw object or a file)
 * of channel into b; a body that is not JSON at all becomes one rejection. */
static int filter_body_as_batch(struct filter *f, struct filter_batch *b, const char *body,
                                size_t len, const char *channel, int64_t received_ms,
                                const char *source)
{
    uint32_t acc = 0, rej = 0;
    char msg[200];
    const struct filter_cfg *cfg = f->cfg;
    /* A reference: a SIGHUP reload may swap the set while this runs on a
     * worker thread. */
    struct pipe_schema_set *set = filter_schemas_get(f);
    int rc = filter_ingest(cfg, &f->m, b, set, body, len, false, channel, received_ms, source, &acc,
                           &rej, msg, sizeof msg);
    filter_schemas_put(set);
    if (rc == PIPE_EPARSE) {
        char at[PIPE_CLOCK_RFC3339_LEN + 1];
        pipe_clock_format_rfc3339(received_ms, at);
        rc = filter_reject(&b->rejected, body, len, PIPE_REASON_NOT_JSON, msg, channel, at, source);
        pipe_counter_inc(f->m.rejected[PIPE_REASON_NOT_JSON]);
        b->n_rejected++;
    }
    (void)cfg;
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

/* raw_one — filters one raw/ object unless its filtered/ object exists. */
static int raw_one(struct filter *f, const struct pipe_store_obj *o)
{
    const struct filter_cfg *cfg = f->cfg;
    struct pipe_store *store = pipe_stage_store(f->st);
    struct pipe_buf name, key, data, decoded;
    struct filter_batch *b = NULL;
    pipe_buf_init(&name, 512);
    pipe_buf_init(&key, 4096);
    pipe_buf_init(&data, cfg->max_raw);
    pipe_buf_init(&decoded, cfg->max_raw);
    char source[1100];
    snprintf(source, sizeof source, "raw:%s", o->key);

    int rc = pipe_keys_raw_name(&name, (unsigned)cfg->common.generation, o->key, o->etag);
    if (rc == 0)
        rc = pipe_keys_filtered(&key, o->mtime_ms, name.data);
    struct pipe_store_obj st;
    if (rc == 0 && pipe_store_stat(store, key.data, &st) == 0)
        goto out; /* filtered before */
    b = filter_batch_new(f, o->mtime_ms, name.data, cfg->max_raw * 2 + (1 << 20));
    if (rc == 0)
        rc = pipe_store_get(store, o->key, &data);
    if (rc == 0)
        rc = pipe_codec_decompress(data.data ? data.data : "", data.len, &decoded);
    if (rc == PIPE_ETOOBIG || rc == PIPE_ECORRUPT) {
        /* The object itself stays in raw/ for an operator; record why it
         * was not filtered instead of retrying it for ever. */
        char at[PIPE_CLOCK_RFC3339_LEN + 1], msg[160];
        pipe_clock_format_rfc3339(o->mtime_ms, at);
        snprintf(msg, sizeof msg, "raw object %s: %s", o->key, pipe_strerror(rc));
        enum pipe_reason why = rc == PIPE_ETOOBIG ? PIPE_REASON_TOO_LARGE : PIPE_REASON_NOT_JSON;
        rc = filter_reject(&b->rejected, NULL, 0, why, msg, cfg->input_channel, at, source);
        pipe_counter_inc(f->m.rejected[why]);
    } else if (rc == 0) {
        char chan[PIPE_KEYS_NAME_MAX + 1];
        rc = filter_body_as_batch(f, b, decoded.data ? decoded.data : "", decoded.len,
                                  raw_channel(cfg, o->key, chan, sizeof chan), o->mtime_ms, source);
    }
    if (rc == 0)
        rc = filter_batch_write(f, b);
    if (rc == 0) {
        pipe_counter_inc(f->m.raw_objects);
        pipe_counter_add(f->m.accepted, b->n_accepted);
        pipe_log_info("raw object filtered", "key=%s accepted=%llu rejected=%llu", o->key,
                      (unsigned long long)b->n_accepted, (unsigned long long)b->n_rejected);
    } else if (rc == PIPE_ENOTFOUND) {
        rc = 0; /* swept or replaced meanwhile: a later listing will tell */
    }
out:
    filter_batch_free(b);
    pipe_buf_cleanup(&decoded);
    pipe_buf_cleanup(&data);
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
    if (rc == 0)
        rc = filter_body_as_batch(f, b, decoded.data ? decoded.data : "", decoded.len,
                                  cfg->input_channel, now, "input");
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
