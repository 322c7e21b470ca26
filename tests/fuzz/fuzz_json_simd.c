/* libFuzzer target, differential: pipe_json_scan and the body splitter as
 * built (SSE2 on x86-64) against the portable C paths of the same sources,
 * compiled in here with PIPE_NDJSON_PORTABLE and renamed; aborts on any
 * difference in results, output bytes or member callbacks. Build:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *     tests/fuzz/fuzz_json_simd.c libpipe/{err,mem,buf,log,clock,ndjson,ndjson_body,event}.c \
 *     -lxxhash -o fuzz_json_simd */
#include <stdint.h>
#include <stdlib.h>
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

/* The library's own (ndjson.h was read under the names above). */
int pipe_json_scan(const char *in, size_t len, const struct pipe_json_opts *opts,
                   struct pipe_buf *out, struct pipe_json_result *res);
int pipe_body_iter_init(struct pipe_body_iter *it, const char *body, size_t len,
                        enum pipe_body_form hint, size_t max_record, struct pipe_json_result *res);
bool pipe_body_iter_next(struct pipe_body_iter *it, struct pipe_body_record *rec);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MEMBERS 64

/* The callbacks one scan made, offsets relative to the buffer their
 * pointers point into. */
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
    /* Drop the members whose key starts with 'd', so rewinding is compared. */
    return m->key && m->key_len > 0 && m->key[0] == 'd';
}

typedef int (*scan_fn)(const char *, size_t, const struct pipe_json_opts *, struct pipe_buf *,
                       struct pipe_json_result *);

struct outcome {
    int rc;
    struct pipe_json_result res;
    struct seen seen;
    struct pipe_buf out;
};

static void run(scan_fn fn, const char *in, size_t n, unsigned flags, int depth, bool emit,
                struct outcome *o)
{
    struct pipe_json_opts opts = {depth, flags, record_member, &o->seen};
    pipe_buf_init(&o->out, 1 << 20);
    memset(&o->seen, 0, sizeof o->seen);
    if (emit) {
        pipe_buf_reserve(&o->out, n + 16);
        o->seen.base = o->out.data;
    } else {
        o->seen.base = in;
    }
    o->rc = fn(in, n, &opts, emit ? &o->out : NULL, &o->res);
}

static void compare_scan(const char *in, size_t n, unsigned flags, int depth, bool emit)
{
    struct outcome a, b;
    run(pipe_json_scan, in, n, flags, depth, emit, &a);
    run(portable_json_scan, in, n, flags, depth, emit, &b);
    if (a.rc != b.rc || a.res.err != b.res.err || a.res.offset != b.res.offset ||
        strcmp(a.res.what, b.res.what) != 0 || a.res.type != b.res.type || a.res.end != b.res.end ||
        a.res.out_len != b.res.out_len || a.res.kept != b.res.kept || a.out.len != b.out.len ||
        (a.out.len && memcmp(a.out.data, b.out.data, a.out.len)) || a.seen.n != b.seen.n ||
        memcmp(a.seen.m, b.seen.m, sizeof a.seen.m) != 0)
        abort();
    pipe_buf_cleanup(&a.out);
    pipe_buf_cleanup(&b.out);
}

static void compare_body(const char *in, size_t n, enum pipe_body_form hint)
{
    struct pipe_body_iter ia, ib;
    struct pipe_json_result ra, rb;
    struct pipe_body_record ea, eb;
    if (pipe_body_iter_init(&ia, in, n, hint, 64, &ra) !=
            portable_body_iter_init(&ib, in, n, hint, 64, &rb) ||
        ra.err != rb.err || ra.offset != rb.offset || ia.form != ib.form)
        abort();
    for (;;) {
        bool ga = pipe_body_iter_next(&ia, &ea), gb = portable_body_iter_next(&ib, &eb);
        if (ga != gb)
            abort();
        if (!ga)
            break;
        if (ea.data != eb.data || ea.len != eb.len || ea.index != eb.index || ea.err != eb.err)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks the flags, the depth cap and the body form;
     * the input itself is copied to a block of its exact size, so ASan
     * sees any read past its end. */
    unsigned pick = size ? data[0] : 0;
    size_t n = size ? size - 1 : 0;
    char *in = malloc(n ? n : 1);
    memcpy(in, data + (size ? 1 : 0), n);
    compare_scan(in, n, pick & 3, 1 + (int)(pick >> 2) % 40, (pick >> 7) & 1);
    compare_body(in, n, (enum pipe_body_form)(pick % 5));
    free(in);
    return 0;
}
