/* splitter_route — the splitter's hot path: one streaming pass over a
 * combined object that finds each line's event type, id and partition hour
 * without building a DOM, drops repeats of a key within the object, and
 * appends every other line to the output of its (event, hour).
 *
 * Lines are staged per output and compressed into an independent zstd
 * frame whenever the stage holds SPLIT_FRAME_BYTES, so one compression
 * context serves every output and memory does not grow with the number of
 * outputs (a streaming context per output would cost ~1.4 MB each). The
 * stages together are held under SPLIT_STAGE_BUDGET by framing the largest
 * one early. The claim's verdicts come after the pass: the few frames that
 * hold a line another job claimed are decoded and compressed again without
 * it (split_route_settle), which costs far less than decoding the whole
 * object a second time. Every decision depends on the sequence of lines and
 * the verdicts alone, so the same input gives byte-identical outputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
#include "libpipe/event.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/ndjson.h"
#include "libpipe/store.h"
#include "stages/splitter/splitter.h"

#define SPLIT_FRAME_BYTES  (1u << 20)  /* uncompressed bytes per zstd frame */
#define SPLIT_STAGE_BUDGET (64u << 20) /* all outputs' stages together */
#define SPLIT_MAX_OUTPUTS  65536       /* (event, hour) pairs in one job */
#define SPLIT_MAX_DEPTH    512         /* the deepest nesting the filter accepts */
#define SPLIT_TICK_LINES   4096        /* lines between two tick calls */
#define SPLIT_TICK_FRAMES  16          /* frames re-compressed between two */
#define SPLIT_NO_FRAME     UINT32_MAX

/* line_out marks for lines that go to no output */
#define SPLIT_LINE_SKIP UINT32_MAX       /* a blank line: not an event */
#define SPLIT_LINE_DROP (UINT32_MAX - 1) /* rejected, or an in-batch repeat */
#define SPLIT_LINES_MAX (UINT32_MAX - 2)

/* ---- the members of one line ---- */

struct span {
    const char *p; /* the value's bytes (a string with its quotes) */
    size_t n;
    enum pipe_json_type type;
    bool esc;
    bool seen;
};

struct envelope {
    struct span event, id, received_at, ts;
    bool dup; /* one of them appears twice */
};

static void take(struct envelope *e, struct span *s, const struct pipe_json_member *m)
{
    if (s->seen)
        e->dup = true;
    *s = (struct span){m->value, m->value_len, m->type, m->value_escaped, true};
}

static bool on_member(void *arg, const struct pipe_json_member *m)
{
    struct envelope *e = arg;
    if (m->key_escaped)
        return false;
    switch (m->key_len) {
    case 2:
        if (memcmp(m->key, "id", 2) == 0)
            take(e, &e->id, m);
        else if (memcmp(m->key, "ts", 2) == 0)
            take(e, &e->ts, m);
        break;
    case 5:
        if (memcmp(m->key, "event", 5) == 0)
            take(e, &e->event, m);
        break;
    case 11:
        if (memcmp(m->key, "received_at", 11) == 0)
            take(e, &e->received_at, m);
        break;
    default:
        break;
    }
    return false; /* keep every member: nothing is written anyway */
}

/* ---- partition hours ---- */

static bool digits(const char *s, const int *at, int n)
{
    for (int i = 0; i < n; i++)
        if (s[at[i]] < '0' || s[at[i]] > '9')
            return false;
    return true;
}

/* hour_of — the hour of a time member, read as the filter reads it
 * (pipe_event_ts_parse). The filter writes received_at as
 * "YYYY-MM-DDTHH:MM:SS.mmmZ", and consecutive events mostly share its first
 * 13 bytes, so an unescaped UTC string of that shape whose prefix matches
 * the last one parsed reuses its hour instead of parsing again. */
static bool hour_of(struct split_route *r, const struct span *v, int64_t *hour)
{
    static const int tail_digits[] = {14, 15, 17, 18, 20, 21, 22};
    if (v->type != PIPE_JSON_STRING && v->type != PIPE_JSON_NUMBER)
        return false;
    const char *s = v->p + 1;
    bool canonical = v->type == PIPE_JSON_STRING && !v->esc && v->n == 26 && s[23] == 'Z' &&
                     s[13] == ':' && s[16] == ':' && s[19] == '.' && digits(s, tail_digits, 7);
    if (canonical && r->hour_valid && memcmp(s, r->hour_prefix, 13) == 0) {
        *hour = r->hour_ms_cached;
        return true;
    }
    int64_t ms;
    if (!pipe_event_ts_parse(v->p, v->n, v->esc, &ms))
        return false;
    *hour = pipe_clock_hour_floor(ms);
    if (canonical) {
        memcpy(r->hour_prefix, s, 13);
        r->hour_ms_cached = *hour;
        r->hour_valid = true;
    }
    return true;
}

/* event_hour — ts when configured and present (and readable), else
 * received_at. */
static bool event_hour(struct split_route *r, const struct envelope *e, int64_t *hour)
{
    if (r->use_ts && e->ts.seen && hour_of(r, &e->ts, hour))
        return true;
    return e->received_at.seen && hour_of(r, &e->received_at, hour);
}

/* ---- outputs ---- */

/* route_hash — the route table's key: seeded, as event types come from
 * clients. */
static uint64_t route_hash(const struct split_route *r, const char *event, size_t n, int64_t hour)
{
    return XXH3_64bits_withSeed(event, n, r->seed ^ (uint64_t)hour);
}

static void otab_grow(struct split_route *r)
{
    size_t size = r->otab_size ? r->otab_size * 2 : 256;
    uint32_t *t = pipe_calloc(size, sizeof *t);
    for (size_t i = 0; i < r->n_outs; i++) {
        size_t j = r->outs[i].hash & (size - 1);
        while (t[j])
            j = (j + 1) & (size - 1);
        t[j] = (uint32_t)i + 1;
    }
    pipe_free(r->otab);
    r->otab = t;
    r->otab_size = size;
}

/* take_buffers — a new output's stage starts empty: its buffer grows by
 * doubling up to one frame. The heap is never trimmed (main.c), so those
 * pages are the ones earlier jobs' stages and the claim freed: no fresh
 * memory per job. */
static void take_buffers(struct split_route *r, struct split_output *o)
{
    pipe_buf_init(&o->stage, SPLIT_FRAME_BYTES + r->max_line + 1);
    o->first_frame = o->last_frame = SPLIT_NO_FRAME;
}

/* drop_stage — frees o's (empty) stage buffer. */
static void drop_stage(struct split_route *r, struct split_output *o)
{
    size_t max = o->stage.max;
    r->stage_alloc -= o->stage.cap;
    pipe_buf_cleanup(&o->stage);
    pipe_buf_init(&o->stage, max);
}

/* release_stages — frees every output's stage buffer (empty or not). */
static void release_stages(struct split_route *r)
{
    for (size_t i = 0; i < r->n_outs; i++)
        if (r->outs[i].stage.data)
            drop_stage(r, &r->outs[i]);
    r->staged = 0;
}

/* route_get — the output of (event, hour), created on first use. *out is
 * NULL (the line is rejected) for an event type or hour that cannot name a
 * key; PIPE_ETOOBIG past SPLIT_MAX_OUTPUTS. */
static int route_get(struct split_route *r, const char *event, size_t n, int64_t hour,
                     struct split_output **out)
{
    uint64_t h = route_hash(r, event, n, hour);
    size_t mask = r->otab_size - 1;
    for (size_t j = h & mask;; j = (j + 1) & mask) {
        uint32_t slot = r->otab[j];
        if (slot == 0)
            break;
        struct split_output *o = &r->outs[slot - 1];
        if (o->hash == h && o->hour_ms == hour && o->event_len == n &&
            memcmp(o->event, event, n) == 0) {
            *out = o;
            return 0;
        }
    }
    *out = NULL;
    if (n > PIPE_KEYS_EVENT_MAX || !pipe_keys_event_valid(event, n))
        return 0;
    char name[PIPE_KEYS_EVENT_MAX + 1];
    memcpy(name, event, n);
    name[n] = '\0';
    if (pipe_keys_split(&r->scratch, name, hour, r->job_id) < 0)
        return 0; /* an hour outside 1970..9999 */
    if (r->n_outs >= SPLIT_MAX_OUTPUTS)
        return PIPE_ETOOBIG;
    if (r->n_outs == r->cap_outs) {
        r->cap_outs = r->cap_outs ? r->cap_outs * 2 : 64;
        r->outs = pipe_realloc(r->outs, r->cap_outs * sizeof *r->outs);
    }
    struct split_output *o = &r->outs[r->n_outs++];
    memset(o, 0, sizeof *o);
    memcpy(o->event, name, n + 1);
    o->event_len = n;
    o->hour_ms = hour;
    o->hash = h;
    take_buffers(r, o);
    if (r->n_outs * 2 > r->otab_size) {
        otab_grow(r);
    } else {
        size_t j = h & mask;
        while (r->otab[j])
            j = (j + 1) & mask;
        r->otab[j] = (uint32_t)r->n_outs;
    }
    *out = o;
    return 0;
}

/* frame — compresses o's staged lines into one frame appended to the
 * arena and linked to o's frames. */
static int frame(struct split_route *r, struct split_output *o)
{
    if (o->stage.len == 0)
        return 0;
    size_t off = r->zarena.len;
    int rc = pipe_zwriter_frame(r->zw, o->stage.data, o->stage.len, &r->zarena);
    r->staged -= o->stage.len;
    pipe_buf_reset(&o->stage);
    /* Each stage keeps its buffer for the next lines, unless the stages
     * together hold more than the budget (many outputs). */
    if (r->stage_alloc > SPLIT_STAGE_BUDGET)
        drop_stage(r, o);
    if (rc < 0)
        return rc;
    size_t len = r->zarena.len - off;
    if (len > r->max_output - o->zbytes || r->n_frames >= SPLIT_NO_FRAME)
        return PIPE_ETOOBIG;
    if (r->n_frames == r->cap_frames) {
        r->cap_frames = r->cap_frames ? r->cap_frames * 2 : 256;
        r->frames = pipe_realloc(r->frames, r->cap_frames * sizeof *r->frames);
    }
    uint32_t f = (uint32_t)r->n_frames++;
    r->frames[f] = (struct split_frame){
        off, len, SPLIT_NO_FRAME, (uint32_t)(o - r->outs), o->stage_first, false};
    if (o->last_frame == SPLIT_NO_FRAME)
        o->first_frame = f;
    else
        r->frames[o->last_frame].next = f;
    o->last_frame = f;
    o->zbytes += len;
    return 0;
}

int split_route_output_data(struct split_route *r, const struct split_output *o, const char **data,
                            size_t *len)
{
    uint32_t one = SPLIT_NO_FRAME;
    size_t n = 0;
    for (uint32_t f = o->first_frame; f != SPLIT_NO_FRAME; f = r->frames[f].next)
        if (r->frames[f].len && n++ == 0)
            one = f;
    if (n <= 1) {
        /* One frame (the common case): straight from the arena. */
        *data = n ? r->zarena.data + r->frames[one].off : "";
        *len = n ? r->frames[one].len : 0;
        return 0;
    }
    pipe_buf_reset(&r->gather);
    for (uint32_t f = o->first_frame; f != SPLIT_NO_FRAME; f = r->frames[f].next) {
        int rc = pipe_buf_append(&r->gather, r->zarena.data + r->frames[f].off, r->frames[f].len);
        if (rc < 0)
            return rc;
    }
    *data = r->gather.data;
    *len = r->gather.len;
    return 0;
}

/* evict — frames the output with the most staged bytes and frees its
 * stage, bringing the total back under the budget. The budget counts
 * staged bytes, not allocations, so where frames end depends on the lines
 * alone, whatever buffers earlier jobs left behind. */
static int evict(struct split_route *r)
{
    struct split_output *big = &r->outs[0];
    for (size_t i = 1; i < r->n_outs; i++)
        if (r->outs[i].stage.len > big->stage.len)
            big = &r->outs[i];
    int rc = frame(r, big);
    if (big->stage.data)
        drop_stage(r, big);
    return rc;
}

static int emit(struct split_route *r, struct split_output *o, size_t idx, const char *line,
                size_t len)
{
    int rc = 0;
    if (o->stage.len && o->stage.len + len + 1 > SPLIT_FRAME_BYTES)
        rc = frame(r, o);
    size_t cap = o->stage.cap;
    if (rc == 0)
        rc = pipe_buf_reserve(&o->stage, len + 1);
    r->stage_alloc += o->stage.cap - cap;
    if (rc < 0)
        return rc;
    if (o->stage.len == 0)
        o->stage_first = (uint32_t)idx;
    memcpy(o->stage.data + o->stage.len, line, len);
    o->stage.len += len;
    o->stage.data[o->stage.len++] = '\n';
    o->rows++;
    r->staged += len + 1;
    if (r->staged > SPLIT_STAGE_BUDGET)
        rc = evict(r);
    return rc;
}

/* ---- keys ---- */

/* The key set's slots hold (index + 1) in the low 32 bits and 32 bits of
 * the key above them, so probing rarely has to look at r->keys: inserting
 * a new key costs one cache miss. Not libpipe/hset, on purpose: its 16-byte
 * slots double the table (16 MiB for 500k keys), which made a 500k-event
 * pass 5-7% slower, and emptying it between jobs means regrowing it from 16
 * slots (the routing pass in bench_collide 25-30% slower). The output
 * table stays alike for the same reason. */
static uint64_t kslot(const struct pipe_dedup_key *k, size_t idx)
{
    return (k->hi & 0xffffffff00000000ULL) | ((uint64_t)idx + 1);
}

static void ktab_grow(struct split_route *r)
{
    size_t size = r->ktab_size ? r->ktab_size * 2 : 1u << 16;
    uint64_t *t = pipe_calloc(size, sizeof *t);
    for (size_t i = 0; i < r->n_keys; i++) {
        size_t j = pipe_dedup_key_hash(&r->keys[i], r->seed) & (size - 1);
        while (t[j])
            j = (j + 1) & (size - 1);
        t[j] = kslot(&r->keys[i], i);
    }
    pipe_free(r->ktab);
    r->ktab = t;
    r->ktab_size = size;
}

/* key_insert — adds k unless present; *idx is its index in r->keys.
 * Returns true if it was new. */
static bool key_insert(struct split_route *r, const struct pipe_dedup_key *k, uint32_t *idx)
{
    size_t mask = r->ktab_size - 1;
    size_t j = pipe_dedup_key_hash(k, r->seed) & mask;
    uint64_t tag = k->hi & 0xffffffff00000000ULL;
    for (uint64_t slot; (slot = r->ktab[j]) != 0; j = (j + 1) & mask) {
        if ((slot & 0xffffffff00000000ULL) != tag)
            continue;
        uint32_t i = (uint32_t)slot - 1;
        if (r->keys[i].lo == k->lo && r->keys[i].hi == k->hi) {
            *idx = i;
            return false;
        }
    }
    if (r->n_keys == r->cap_keys) {
        r->cap_keys = r->cap_keys ? r->cap_keys * 2 : 1u << 15;
        r->keys = pipe_realloc(r->keys, r->cap_keys * sizeof *r->keys);
    }
    *idx = (uint32_t)r->n_keys;
    r->keys[r->n_keys++] = *k;
    r->ktab[j] = kslot(k, *idx);
    if (r->n_keys * 2 > r->ktab_size)
        ktab_grow(r);
    return true;
}

/* ---- lines ---- */

static int push_line(struct split_route *r, size_t *idx)
{
    if (r->n_lines >= SPLIT_LINES_MAX)
        return PIPE_ETOOBIG;
    if (r->n_lines == r->cap_lines) {
        r->cap_lines = r->cap_lines ? r->cap_lines * 2 : 1u << 16;
        r->line_out = pipe_realloc(r->line_out, r->cap_lines * sizeof *r->line_out);
        r->line_key = pipe_realloc(r->line_key, r->cap_lines * sizeof *r->line_key);
    }
    *idx = r->n_lines++;
    r->line_out[*idx] = SPLIT_LINE_DROP;
    r->line_key[*idx] = 0;
    return 0;
}

/* reject — counts a line that names no output and keeps it, with its
 * reason, for the job's rejected/ object. line is NULL for a line over
 * max_line (never read). */
static int reject(struct split_route *r, const char *line, size_t len, uint64_t line_no,
                  enum pipe_reason reason, const char *message)
{
    r->c.rejected++;
    pipe_log_warn("line rejected", "job=%s line=%llu reason=%s", r->job_id,
                  (unsigned long long)line_no, pipe_reason_code(reason));
    return split_reject_line(&r->rejects, line, len, line_no, pipe_reason_code(reason), message,
                             r->source);
}

/* route_line — the fate of one non-blank line: its output (where it is
 * written) and key, or a drop. Returns 0 or a fatal error; a bad line is counted and
 * logged, never fatal. */
static int route_line(struct split_route *r, size_t idx, const char *line, size_t len,
                      uint64_t line_no)
{
    struct envelope e;
    memset(&e, 0, sizeof e);
    struct pipe_json_opts opts = {SPLIT_MAX_DEPTH, PIPE_JSON_LENIENT, on_member, &e};
    struct pipe_json_result res;
    if (pipe_json_scan(line, len, &opts, NULL, &res) < 0 || res.type != PIPE_JSON_OBJECT) {
        return reject(r, line, len, line_no, PIPE_REASON_NOT_JSON, "not a JSON object");
    }
    if (e.dup) {
        return reject(r, line, len, line_no, PIPE_REASON_DUPLICATE_FIELD,
                      "\"event\", \"id\", \"ts\" or \"received_at\" appears twice");
    }
    if (!e.event.seen || e.event.type != PIPE_JSON_STRING || e.event.esc)
        return reject(r, line, len, line_no, PIPE_REASON_BAD_EVENT_TYPE,
                      "no \"event\" string without escapes");
    if (!e.id.seen || e.id.type != PIPE_JSON_STRING || e.id.n < 3)
        return reject(r, line, len, line_no, PIPE_REASON_BAD_ID, "no non-empty \"id\" string");
    int64_t hour;
    if (!event_hour(r, &e, &hour))
        return reject(r, line, len, line_no, PIPE_REASON_BAD_TS,
                      r->use_ts ? "neither \"ts\" nor \"received_at\" is a time in 1970..9999"
                                : "\"received_at\" is not a time in 1970..9999");
    struct split_output *o;
    int rc = route_get(r, e.event.p + 1, e.event.n - 2, hour, &o);
    if (rc < 0)
        return rc;
    if (o == NULL)
        return reject(r, line, len, line_no, PIPE_REASON_BAD_EVENT_TYPE,
                      "\"event\" cannot name a split/ key (^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$)");
    struct pipe_dedup_key k;
    pipe_dedup_key_of(e.event.p + 1, e.event.n - 2, e.id.p + 1, e.id.n - 2, &k);
    uint32_t kidx;
    if (!key_insert(r, &k, &kidx)) {
        r->c.dup_batch++;
        return 0;
    }
    r->line_out[idx] = (uint32_t)(o - r->outs);
    r->line_key[idx] = kidx;
    return emit(r, o, idx, line, len);
}

/* ---- the pass ---- */

static int pass_line(struct split_route *r, size_t idx, const char *line, size_t len,
                     uint64_t line_no, int rc_next)
{
    if (rc_next == PIPE_ETOOBIG) {
        r->c.in++;
        return reject(r, NULL, 0, line_no, PIPE_REASON_TOO_LARGE,
                      "line over max_line (the combined object holds it)");
    }
    if (len == 0) {
        r->line_out[idx] = SPLIT_LINE_SKIP;
        return 0;
    }
    r->c.in++;
    return route_line(r, idx, line, len, line_no);
}

static int run_pass(struct split_route *r, const void *data, size_t n, split_tick_fn tick,
                    void *arg)
{
    int rc = r->lr ? pipe_line_reader_reset(r->lr, data, n)
                   : pipe_line_reader_new(data, n, r->max_line, &r->lr);
    struct pipe_line_reader *lr = r->lr;
    for (size_t seen = 0; rc == 0; seen++) {
        const char *line = NULL;
        size_t len = 0;
        int next = pipe_line_reader_next(lr, &line, &len);
        if (next == 0)
            break;
        if (next != 1 && next != PIPE_ETOOBIG) {
            rc = next;
            break;
        }
        if (tick && seen % SPLIT_TICK_LINES == SPLIT_TICK_LINES - 1) {
            rc = tick(arg);
            if (rc != 0)
                break;
        }
        size_t idx;
        rc = push_line(r, &idx);
        if (rc == 0)
            rc = pass_line(r, idx, line, len, pipe_line_reader_line_no(lr), next);
    }
    if (rc == PIPE_EIO) {
        pipe_line_reader_free(r->lr); /* unusable after a failed reset */
        r->lr = NULL;
    }
    return rc;
}

int split_route_pass(struct split_route *r, const void *data, size_t n, split_tick_fn tick,
                     void *arg)
{
    /* Split files come out about as large as the object in (same data,
     * same codec): room for that up front, rather than growing by doubling
     * and touching twice the memory. Only a hint: past the cap it stays. */
    if (pipe_codec_is_zstd(data, n) && n + n / 8 <= r->zarena.max)
        (void)pipe_buf_reserve(&r->zarena, n + n / 8);
    int rc = run_pass(r, data, n, tick, arg);
    /* Ends the last frame of every output, and gives its stage buffer back
     * to the heap: the claim and the commit that follow reuse those pages
     * instead of faulting in fresh ones (one stage per output, up to a
     * frame each: tens of megabytes). */
    for (size_t i = 0; i < r->n_outs && rc == 0; i++)
        rc = frame(r, &r->outs[i]);
    release_stages(r);
    /* Every key starts as new; the claim overwrites the verdicts. */
    r->verdicts = pipe_realloc(r->verdicts, r->n_keys ? r->n_keys : 1);
    memset(r->verdicts, PIPE_DEDUP_NEW, r->n_keys);
    return rc;
}

/* ---- after the claim ---- */

/* mark_dirty — marks the frames holding a line whose key another job
 * claimed, and takes those lines out of their outputs' row counts. Lines
 * come in input order, and each output's frames in the order of their
 * first lines, so one cursor per output finds every line's frame. */
static void mark_dirty(struct split_route *r)
{
    for (size_t o = 0; o < r->n_outs; o++)
        r->outs[o].stage_first = r->outs[o].first_frame; /* reused as the cursor */
    for (size_t i = 0; i < r->n_lines; i++) {
        uint32_t o = r->line_out[i];
        if (o >= r->n_outs || r->verdicts[r->line_key[i]] != PIPE_DEDUP_DUP)
            continue;
        struct split_output *out = &r->outs[o];
        uint32_t f = out->stage_first;
        while (r->frames[f].next != SPLIT_NO_FRAME && r->frames[r->frames[f].next].first_line <= i)
            f = r->frames[f].next;
        out->stage_first = f;
        r->frames[f].dirty = true;
        out->rows--;
    }
}

/* refit — decodes frame f, drops its duplicate lines and compresses what
 * is left into a new frame at the end of the arena (nothing if no line is
 * left: the frame becomes empty). */
static int refit(struct split_route *r, struct split_frame *fr)
{
    struct split_output *o = &r->outs[fr->out];
    pipe_buf_reset(&r->plain);
    int rc = pipe_codec_decompress(r->zarena.data + fr->off, fr->len, &r->plain);
    if (rc < 0)
        return rc;
    char *p = r->plain.data, *end = p + r->plain.len, *w = p;
    size_t i = fr->first_line;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        while (i < r->n_lines && r->line_out[i] != fr->out)
            i++;
        if (i == r->n_lines)
            return PIPE_EINVAL; /* a bug: the frame holds lines the pass did not write */
        if (r->verdicts[r->line_key[i]] != PIPE_DEDUP_DUP) {
            memmove(w, p, n);
            w += n;
        }
        i++;
        p += n;
    }
    size_t keep = (size_t)(w - r->plain.data), off = r->zarena.len;
    o->zbytes -= fr->len;
    fr->len = 0;
    if (keep) {
        rc = pipe_zwriter_frame(r->zw, r->plain.data, keep, &r->zarena);
        if (rc < 0)
            return rc;
        fr->off = off;
        fr->len = r->zarena.len - off;
        o->zbytes += fr->len;
    }
    fr->dirty = false;
    return 0;
}

int split_route_settle(struct split_route *r, split_tick_fn tick, void *arg)
{
    int rc = 0;
    r->c.dup_cross = 0;
    for (size_t i = 0; i < r->n_keys; i++)
        r->c.dup_cross += r->verdicts[i] == PIPE_DEDUP_DUP;
    if (r->c.dup_cross) {
        mark_dirty(r);
        size_t done = 0;
        for (size_t f = 0; f < r->n_frames && rc == 0; f++) {
            if (!r->frames[f].dirty)
                continue;
            if (tick && ++done % SPLIT_TICK_FRAMES == 0)
                rc = tick(arg);
            if (rc == 0)
                rc = refit(r, &r->frames[f]);
        }
    }
    r->c.out = 0;
    for (size_t i = 0; i < r->n_outs; i++)
        r->c.out += r->outs[i].rows;
    return rc;
}

static int cmp_outputs(const void *a, const void *b)
{
    const struct split_output *x = *(struct split_output *const *)a;
    const struct split_output *y = *(struct split_output *const *)b;
    int c = strcmp(x->event, y->event);
    if (c)
        return c;
    return (x->hour_ms > y->hour_ms) - (x->hour_ms < y->hour_ms);
}

struct split_output **split_route_sorted(const struct split_route *r, size_t *n)
{
    struct split_output **v = pipe_malloc((r->n_outs + 1) * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < r->n_outs; i++)
        if (r->outs[i].rows)
            v[k++] = &r->outs[i];
    qsort(v, k, sizeof *v, cmp_outputs);
    *n = k;
    return v;
}

/* ---- lifecycle ---- */

int split_route_init(struct split_route *r, bool use_ts, int level, size_t max_line,
                     size_t max_output)
{
    memset(r, 0, sizeof *r);
    r->use_ts = use_ts;
    r->zstd_level = level;
    r->max_line = max_line;
    r->max_output = max_output;
    r->seed = pipe_mem_hash_seed();
    /* a rejected line is at most its text escaped (6 bytes per control
     * byte) plus a few hundred bytes: bounded by the object's size */
    pipe_buf_init(&r->rejects, SIZE_MAX);
    pipe_buf_init(&r->scratch, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&r->zarena, max_output > SIZE_MAX / 2 ? SIZE_MAX : max_output * 2);
    pipe_buf_init(&r->gather, max_output);
    pipe_buf_init(&r->plain, SPLIT_FRAME_BYTES + max_line + 1);
    int rc = pipe_zwriter_new(level, &r->scratch, &r->zw);
    if (rc < 0) {
        pipe_buf_cleanup(&r->scratch);
        pipe_buf_cleanup(&r->zarena);
        pipe_buf_cleanup(&r->gather);
        pipe_buf_cleanup(&r->plain);
        pipe_buf_cleanup(&r->rejects);
        return rc;
    }
    split_route_reset(r, "", "");
    return 0;
}

void split_route_reset(struct split_route *r, const char *job_id, const char *source)
{
    release_stages(r); /* a pass that failed half-way leaves them */
    r->n_outs = 0;
    r->stage_alloc = 0;
    r->job_id = job_id;
    r->source = source;
    pipe_buf_reset(&r->rejects);
    if (r->otab_size == 0)
        otab_grow(r);
    memset(r->otab, 0, r->otab_size * sizeof *r->otab);
    if (r->ktab_size == 0)
        ktab_grow(r);
    memset(r->ktab, 0, r->ktab_size * sizeof *r->ktab);
    r->n_keys = 0;
    r->n_lines = 0;
    r->n_frames = 0;
    pipe_buf_reset(&r->zarena);
    r->hour_valid = false;
    memset(&r->c, 0, sizeof r->c);
}

void split_route_cleanup(struct split_route *r)
{
    release_stages(r);
    pipe_free(r->frames);
    pipe_buf_cleanup(&r->zarena);
    pipe_buf_cleanup(&r->gather);
    pipe_buf_cleanup(&r->plain);
    pipe_buf_cleanup(&r->rejects);
    pipe_line_reader_free(r->lr);
    pipe_free(r->outs);
    pipe_free(r->otab);
    pipe_free(r->keys);
    pipe_free(r->verdicts);
    pipe_free(r->ktab);
    pipe_free(r->line_out);
    pipe_free(r->line_key);
    pipe_zwriter_free(r->zw);
    pipe_buf_cleanup(&r->scratch);
    memset(r, 0, sizeof *r);
}
