/* json_diff — see json_diff.h. The portable paths come from compiling the
 * library's own sources here with PIPE_NDJSON_PORTABLE and their public
 * names prefixed with portable_; the library's are linked from libpipe. */
#include <stdint.h>
#include <string.h>

#define PIPE_NDJSON_PORTABLE    1
#define pipe_json_scan          portable_json_scan
#define pipe_json_unescape      portable_json_unescape
#define pipe_json_append_string portable_json_append_string
#define pipe_json_error_name    portable_json_error_name
#define pipe_body_iter_init     portable_body_iter_init
#define pipe_body_iter_next     portable_body_iter_next
#include "libpipe/ndjson.c"
#include "libpipe/ndjson_body.c"
#undef pipe_json_scan
#undef pipe_body_iter_init
#undef pipe_body_iter_next

#include "tests/support/json_diff.h"

/* The library's own: ndjson.h was read above under the portable names. */
int pipe_json_scan(const char *in, size_t len, const struct pipe_json_opts *opts,
                   struct pipe_buf *out, struct pipe_json_result *res);
int pipe_body_iter_init(struct pipe_body_iter *it, const char *body, size_t len,
                        enum pipe_body_form hint, size_t max_record, struct pipe_json_result *res);
bool pipe_body_iter_next(struct pipe_body_iter *it, struct pipe_body_record *rec);

#define MAX_MEMBERS 64

/* What one scan told its member callback, as offsets from the buffer the
 * pointers point into (the input, or the output after its prefix). */
struct seen {
    const char *base;
    size_t n;
    struct {
        ptrdiff_t key, value;
        size_t key_len, value_len, in_offset;
        enum pipe_json_type type;
        bool key_escaped, value_escaped;
    } m[MAX_MEMBERS];
};

struct outcome {
    int rc;
    struct pipe_json_result res;
    struct seen seen;
    struct pipe_buf out;
};

typedef int (*scan_fn)(const char *, size_t, const struct pipe_json_opts *, struct pipe_buf *,
                       struct pipe_json_result *);

static bool record_member(void *arg, const struct pipe_json_member *m)
{
    struct seen *s = arg;
    if (s->n < MAX_MEMBERS) {
        s->m[s->n].key = m->key ? m->key - s->base : -1;
        s->m[s->n].value = m->value - s->base;
        s->m[s->n].key_len = m->key_len;
        s->m[s->n].value_len = m->value_len;
        s->m[s->n].in_offset = m->in_offset;
        s->m[s->n].type = m->type;
        s->m[s->n].key_escaped = m->key_escaped;
        s->m[s->n].value_escaped = m->value_escaped;
    }
    s->n++;
    return m->key && m->key_len > 0 && m->key[0] == 'd';
}

static void run(scan_fn fn, const char *in, size_t n, unsigned flags, int depth, bool emit,
                struct outcome *o)
{
    struct pipe_json_opts opts = {depth, flags, record_member, &o->seen};
    memset(o, 0, sizeof *o);
    pipe_buf_init(&o->out, 1 << 20);
    o->seen.base = in;
    if (emit) {
        pipe_buf_append(&o->out, "........", n % 8);
        pipe_buf_reserve(&o->out, n + 16);
        o->seen.base = o->out.data + o->out.len;
    }
    o->rc = fn(in, n, &opts, emit ? &o->out : NULL, &o->res);
}

static const char *differ(const struct outcome *a, const struct outcome *b)
{
    if (a->rc != b->rc || a->res.err != b->res.err || a->res.offset != b->res.offset ||
        strcmp(a->res.what, b->res.what) != 0)
        return "return code, error or its offset";
    if (a->res.type != b->res.type || a->res.end != b->res.end ||
        a->res.out_len != b->res.out_len || a->res.kept != b->res.kept)
        return "result type, end, output length or members kept";
    if (a->out.len != b->out.len || (a->out.len && memcmp(a->out.data, b->out.data, a->out.len)))
        return "output bytes";
    if (a->seen.n != b->seen.n || memcmp(a->seen.m, b->seen.m, sizeof a->seen.m) != 0)
        return "member callbacks";
    return NULL;
}

const char *json_diff_scan(const char *in, size_t n, unsigned flags, int depth, bool emit,
                           bool *accepted)
{
    static struct outcome a, b; /* ~5 KB each, kept off the stack */
    run(pipe_json_scan, in, n, flags, depth, emit, &a);
    run(portable_json_scan, in, n, flags, depth, emit, &b);
    const char *what = differ(&a, &b);
    if (accepted)
        *accepted = a.rc == 0;
    pipe_buf_cleanup(&a.out);
    pipe_buf_cleanup(&b.out);
    return what;
}

const char *json_diff_body(const char *body, size_t n, enum pipe_body_form hint, size_t max_record,
                           size_t *records)
{
    struct pipe_body_iter ia, ib;
    struct pipe_json_result ra, rb;
    struct pipe_body_record ea, eb;
    size_t count = 0;
    const char *what = NULL;
    int rca = pipe_body_iter_init(&ia, body, n, hint, max_record, &ra);
    int rcb = portable_body_iter_init(&ib, body, n, hint, max_record, &rb);
    if (rca != rcb || ra.err != rb.err || ra.offset != rb.offset || ia.form != ib.form) {
        what = "init: return code, error, its offset or the form";
        goto out;
    }
    for (;;) {
        bool ga = pipe_body_iter_next(&ia, &ea), gb = portable_body_iter_next(&ib, &eb);
        if (ga != gb) {
            what = "number of records";
            goto out;
        }
        if (!ga)
            break;
        if (ea.data != eb.data || ea.len != eb.len || ea.index != eb.index || ea.err != eb.err) {
            what = "a record's span, index or error";
            goto out;
        }
        count++;
    }
out:
    if (records)
        *records = count;
    return what;
}
