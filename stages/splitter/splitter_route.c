/* splitter_route — the splitter's hot path: one streaming pass over a
 * combined object that finds each line's event type, id and partition hour
 * without building a DOM, drops repeats of a key within the object, and
 * appends every other line to the output of its (event, hour).
 *
 * A first pass decides every line's fate; after the claim, a second pass
 * decodes the object again and writes the kept lines. Outputs are kept
 * compressed. Lines are staged per output and compressed
 * into an independent zstd frame whenever the stage holds SPLIT_FRAME_BYTES,
 * so one compression context serves every output and memory does not grow
 * with the number of outputs (a streaming context per output would cost
 * ~1.4 MB each). The stages together are held under SPLIT_STAGE_BUDGET by
 * framing the largest one early. Every decision depends on the sequence of
 * lines alone, so the same input gives byte-identical outputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/err.h"
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
#define HOUR_MS            3600000LL

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

/* hour_of_string — the hour of an RFC 3339 string value. The filter writes
 * received_at as "YYYY-MM-DDTHH:MM:SS.mmmZ", and consecutive events mostly
 * share its first 13 bytes, so a UTC time of that shape whose prefix matches
 * the last one parsed reuses its hour instead of parsing again. */
static bool hour_of_string(struct split_route *r, const struct span *v, int64_t *hour)
{
    static const int tail_digits[] = {14, 15, 17, 18, 20, 21, 22};
    const char *s = v->p + 1;
    size_t n = v->n - 2;
    char tmp[64];
    if (v->esc) {
        if (n > 6 * sizeof tmp || pipe_json_unescape(s, n, NULL) > sizeof tmp)
            return false;
        n = pipe_json_unescape(s, n, tmp);
        s = tmp;
    }
    bool canonical = n == 24 && s[23] == 'Z' && s[13] == ':' && s[16] == ':' && s[19] == '.' &&
                     digits(s, tail_digits, 7);
    if (canonical && r->hour_valid && memcmp(s, r->hour_prefix, 13) == 0) {
        *hour = r->hour_ms_cached;
        return true;
    }
    int64_t ms;
    if (pipe_clock_parse_rfc3339(s, n, &ms) < 0 || ms < 0)
        return false;
    *hour = ms - ms % HOUR_MS;
    if (canonical) {
        memcpy(r->hour_prefix, s, 13);
        r->hour_ms_cached = *hour;
        r->hour_valid = true;
    }
    return true;
}

/* hour_of_number — ts as epoch milliseconds: a non-negative integer. */
static bool hour_of_number(const struct span *v, int64_t *hour)
{
    int64_t ms = 0;
    if (v->n == 0 || v->n > 15) /* past year 9999 anyway */
        return false;
    for (size_t i = 0; i < v->n; i++) {
        if (v->p[i] < '0' || v->p[i] > '9')
            return false;
        ms = ms * 10 + (v->p[i] - '0');
    }
    *hour = ms - ms % HOUR_MS;
    return true;
}

static bool hour_of(struct split_route *r, const struct span *v, int64_t *hour)
{
    if (v->type == PIPE_JSON_STRING)
        return hour_of_string(r, v, hour);
    if (v->type == PIPE_JSON_NUMBER)
        return hour_of_number(v, hour);
    return false;
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

static uint64_t route_hash(const char *event, size_t n, int64_t hour)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: event names are short */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)event[i]) * 1099511628211ULL;
    h ^= (uint64_t)hour * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
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

/* take_buffers — gives a new output the buffers of an output of an earlier
 * job, if there are any: fresh multi-megabyte buffers cost more in page
 * faults than compressing into them. */
static void take_buffers(struct split_route *r, struct split_output *o)
{
    if (r->n_pool) {
        struct split_buffers *b = &r->pool[--r->n_pool];
        o->stage = b->stage;
        o->z = b->z;
    } else {
        pipe_buf_init(&o->stage, 0);
        pipe_buf_init(&o->z, 0);
    }
    pipe_buf_reset(&o->stage);
    pipe_buf_reset(&o->z);
    o->stage.max = SPLIT_FRAME_BYTES + r->max_line + 1;
    o->z.max = r->max_output;
}

/* route_get — the output of (event, hour), created on first use. *out is
 * NULL (the line is rejected) for an event type or hour that cannot name a
 * key; PIPE_ETOOBIG past SPLIT_MAX_OUTPUTS. */
static int route_get(struct split_route *r, const char *event, size_t n, int64_t hour,
                     struct split_output **out)
{
    uint64_t h = route_hash(event, n, hour);
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

/* frame — compresses o's staged lines into one frame appended to o->z. */
static int frame(struct split_route *r, struct split_output *o)
{
    if (o->stage.len == 0)
        return 0;
    int rc = pipe_zwriter_reset(r->zw, &o->z);
    if (rc == 0)
        rc = pipe_zwriter_write(r->zw, o->stage.data, o->stage.len);
    if (rc == 0)
        rc = pipe_zwriter_finish(r->zw);
    r->staged -= o->stage.len;
    pipe_buf_reset(&o->stage);
    return rc;
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
    size_t max = big->stage.max;
    pipe_buf_cleanup(&big->stage);
    pipe_buf_init(&big->stage, max);
    return rc;
}

static int emit(struct split_route *r, struct split_output *o, const char *line, size_t len)
{
    int rc = 0;
    if (o->stage.len && o->stage.len + len + 1 > SPLIT_FRAME_BYTES)
        rc = frame(r, o);
    if (rc == 0)
        rc = pipe_buf_reserve(&o->stage, len + 1);
    if (rc < 0)
        return rc;
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
 * a new key costs one cache miss. */
static uint64_t kslot(const struct pipe_dedup_key *k, size_t idx)
{
    return (k->hi & 0xffffffff00000000ULL) | ((uint64_t)idx + 1);
}

static void ktab_grow(struct split_route *r)
{
    size_t size = r->ktab_size ? r->ktab_size * 2 : 1u << 16;
    uint64_t *t = pipe_calloc(size, sizeof *t);
    for (size_t i = 0; i < r->n_keys; i++) {
        size_t j = r->keys[i].lo & (size - 1);
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
    size_t j = k->lo & mask;
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

static void reject(struct split_route *r, uint64_t line_no, const char *reason)
{
    r->c.rejected++;
    pipe_log_warn("line rejected", "job=%s line=%llu reason=%s", r->job_id,
                  (unsigned long long)line_no, reason);
}

/* route_line — the fate of one non-blank line (pass 1): its output and
 * key, or a drop. Returns 0 or a fatal error; a bad line is counted and
 * logged, never fatal. */
static int route_line(struct split_route *r, size_t idx, const char *line, size_t len,
                      uint64_t line_no)
{
    struct envelope e;
    memset(&e, 0, sizeof e);
    struct pipe_json_opts opts = {SPLIT_MAX_DEPTH, PIPE_JSON_LENIENT, on_member, &e};
    struct pipe_json_result res;
    if (pipe_json_scan(line, len, &opts, NULL, &res) < 0 || res.type != PIPE_JSON_OBJECT) {
        reject(r, line_no, "not_json");
        return 0;
    }
    if (e.dup) {
        reject(r, line_no, "duplicate_field");
        return 0;
    }
    if (!e.event.seen || e.event.type != PIPE_JSON_STRING || e.event.esc) {
        reject(r, line_no, "bad_event_type");
        return 0;
    }
    if (!e.id.seen || e.id.type != PIPE_JSON_STRING || e.id.n < 3) {
        reject(r, line_no, "bad_id");
        return 0;
    }
    int64_t hour;
    if (!event_hour(r, &e, &hour)) {
        reject(r, line_no, "bad_time");
        return 0;
    }
    struct split_output *o;
    int rc = route_get(r, e.event.p + 1, e.event.n - 2, hour, &o);
    if (rc < 0)
        return rc;
    if (o == NULL) {
        reject(r, line_no, "bad_event_type");
        return 0;
    }
    struct pipe_dedup_key k;
    pipe_dedup_key_of(e.event.p + 1, e.event.n - 2, e.id.p + 1, e.id.n - 2, &k);
    uint32_t kidx;
    if (!key_insert(r, &k, &kidx)) {
        r->c.dup_batch++;
        return 0;
    }
    r->line_out[idx] = (uint32_t)(o - r->outs);
    r->line_key[idx] = kidx;
    return 0;
}

/* ---- passes ---- */

/* The handler of one line of a pass: pass 1 parses and decides, pass 2
 * writes what was kept. Two passes (two decodes) rather than writing
 * during the first: the claim's verdicts are only known after it, and a
 * speculative write would have to be redone whenever one cross-batch
 * duplicate turned up, which retried deliveries make common. */
typedef int (*line_fn)(struct split_route *r, size_t idx, const char *line, size_t len,
                       uint64_t line_no, int rc_next);

static int pass1_line(struct split_route *r, size_t idx, const char *line, size_t len,
                      uint64_t line_no, int rc_next)
{
    if (rc_next == PIPE_ETOOBIG) {
        r->c.in++;
        reject(r, line_no, "too_large");
        return 0;
    }
    if (len == 0) {
        r->line_out[idx] = SPLIT_LINE_SKIP;
        return 0;
    }
    r->c.in++;
    return route_line(r, idx, line, len, line_no);
}

static int pass2_line(struct split_route *r, size_t idx, const char *line, size_t len,
                      uint64_t line_no, int rc_next)
{
    (void)line_no;
    if (rc_next != 1 || idx >= r->n_lines)
        return 0;
    uint32_t out = r->line_out[idx];
    if (out >= r->n_outs || r->verdicts[r->line_key[idx]] == PIPE_DEDUP_DUP)
        return 0;
    return emit(r, &r->outs[out], line, len);
}

static int run_pass(struct split_route *r, const void *data, size_t n, bool first, line_fn fn,
                    split_tick_fn tick, void *arg)
{
    struct pipe_line_reader *lr = NULL;
    int rc = pipe_line_reader_new(data, n, r->max_line, &lr);
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
        size_t idx = seen;
        if (first)
            rc = push_line(r, &idx);
        if (rc == 0)
            rc = fn(r, idx, line, len, pipe_line_reader_line_no(lr), next);
    }
    pipe_line_reader_free(lr);
    return rc;
}

int split_route_pass(struct split_route *r, const void *data, size_t n, split_tick_fn tick,
                     void *arg)
{
    int rc = run_pass(r, data, n, true, pass1_line, tick, arg);
    /* Every key starts as new; the claim overwrites the verdicts. */
    r->verdicts = pipe_realloc(r->verdicts, r->n_keys ? r->n_keys : 1);
    memset(r->verdicts, PIPE_DEDUP_NEW, r->n_keys);
    return rc;
}

/* finish — ends the last frame of every output. */
static int split_route_finish(struct split_route *r)
{
    r->c.out = 0;
    for (size_t i = 0; i < r->n_outs; i++) {
        int rc = frame(r, &r->outs[i]);
        if (rc < 0)
            return rc;
        r->c.out += r->outs[i].rows;
    }
    return 0;
}

int split_route_write(struct split_route *r, const void *data, size_t n, split_tick_fn tick,
                      void *arg)
{
    r->c.dup_cross = 0;
    for (size_t i = 0; i < r->n_keys; i++)
        r->c.dup_cross += r->verdicts[i] == PIPE_DEDUP_DUP;
    int rc = run_pass(r, data, n, false, pass2_line, tick, arg);
    if (rc == 0)
        rc = split_route_finish(r);
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
    pipe_buf_init(&r->scratch, PIPE_STORE_KEY_MAX);
    int rc = pipe_zwriter_new(level, &r->scratch, &r->zw);
    if (rc < 0) {
        pipe_buf_cleanup(&r->scratch);
        return rc;
    }
    split_route_reset(r, "");
    return 0;
}

/* pool_outputs — keeps the buffers of every output for the next job. */
static void pool_outputs(struct split_route *r)
{
    if (r->n_pool + r->n_outs > r->cap_pool) {
        r->cap_pool = r->n_pool + r->n_outs;
        r->pool = pipe_realloc(r->pool, r->cap_pool * sizeof *r->pool);
    }
    for (size_t i = 0; i < r->n_outs; i++)
        r->pool[r->n_pool++] = (struct split_buffers){r->outs[i].stage, r->outs[i].z};
    r->n_outs = 0;
    r->staged = 0;
}

void split_route_reset(struct split_route *r, const char *job_id)
{
    pool_outputs(r);
    r->job_id = job_id;
    if (r->otab_size == 0)
        otab_grow(r);
    memset(r->otab, 0, r->otab_size * sizeof *r->otab);
    if (r->ktab_size == 0)
        ktab_grow(r);
    memset(r->ktab, 0, r->ktab_size * sizeof *r->ktab);
    r->n_keys = 0;
    r->n_lines = 0;
    r->hour_valid = false;
    memset(&r->c, 0, sizeof r->c);
}

void split_route_cleanup(struct split_route *r)
{
    pool_outputs(r);
    for (size_t i = 0; i < r->n_pool; i++) {
        pipe_buf_cleanup(&r->pool[i].stage);
        pipe_buf_cleanup(&r->pool[i].z);
    }
    pipe_free(r->pool);
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
