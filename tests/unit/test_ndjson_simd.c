/* Differential test: the scanner and body splitter as built (SSE2 on
 * x86-64) against the portable C paths of the same sources (ndjson.c,
 * ndjson_body.c), compiled into this file with PIPE_NDJSON_PORTABLE and
 * their public names renamed. Every input of a seeded, mutated corpus is
 * scanned at every alignment in every mode; results, output bytes and
 * member callbacks must be identical. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Before cmocka.h, whose fail() macro would rewrite the scanner's own. */
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

#include <cmocka.h>

/* The library's own, from libpipe.a (ndjson.h was read under the names
 * above, so these are declared again here). */
int pipe_json_scan(const char *in, size_t len, const struct pipe_json_opts *opts,
                   struct pipe_buf *out, struct pipe_json_result *res);
int pipe_body_iter_init(struct pipe_body_iter *it, const char *body, size_t len,
                        enum pipe_body_form hint, size_t max_record, struct pipe_json_result *res);
bool pipe_body_iter_next(struct pipe_body_iter *it, struct pipe_body_record *rec);

#define DOCS        2500
#define MUTATIONS   8
#define MAXLEN      4096
#define ALIGNS      16
#define MAX_MEMBERS 64

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint32_t below(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return n ? (uint32_t)(rng >> 16) % n : 0;
}

struct doc {
    char b[MAXLEN];
    size_t n;
};

static void put(struct doc *d, const char *s, size_t n)
{
    if (d->n + n < MAXLEN) {
        memcpy(d->b + d->n, s, n);
        d->n += n;
    }
}

static void puts_(struct doc *d, const char *s)
{
    put(d, s, strlen(s));
}

static void ws(struct doc *d)
{
    static const char *const w[] = {"", "", "", "", "", " ", "\n", "\t ", "\r\n    "};
    puts_(d, w[below(9)]);
}

/* A string whose special bytes fall at every distance from the 8- and
 * 16-byte steps: runs of plain bytes of random length between pieces. */
static void gen_string(struct doc *d)
{
    static const char *const parts[] = {"\\n",
                                        "\\\"",
                                        "\\\\",
                                        "\\/",
                                        "\\u00e9",
                                        "\xc3\xa9",
                                        "\xe2\x82\xac",
                                        "\xf0\x9f\x98\x80",
                                        "\\ud83d\\ude00",
                                        "\\u0041",
                                        "\x7f",
                                        "{",
                                        "]",
                                        ",",
                                        ":",
                                        "\\t",
                                        "\\b\\f\\r",
                                        "~"};
    static const char plain[] = "abcdefghijklmnopqrstuvwxyz0123456789 -_./ABCXYZ";
    put(d, "\"", 1);
    for (uint32_t i = below(5); i > 0; i--) {
        for (uint32_t j = below(4) ? below(20) : below(70); j > 0; j--)
            put(d, &plain[below(sizeof plain - 1)], 1);
        if (below(3) == 0)
            puts_(d, parts[below(sizeof parts / sizeof *parts)]);
    }
    put(d, "\"", 1);
}

static void gen_number(struct doc *d)
{
    static const char *const nums[] = {"0",
                                       "-0",
                                       "7",
                                       "-17",
                                       "3.25",
                                       "1e10",
                                       "-2.5E-3",
                                       "1e308",
                                       "12345678901234567890",
                                       "0.000001",
                                       "1E+2",
                                       "1e-400",
                                       "1.7976931348623157e308",
                                       "1.7976931348623159e308",
                                       "101.23"};
    puts_(d, nums[below(sizeof nums / sizeof *nums)]);
}

static void gen_value(struct doc *d, int depth)
{
    uint32_t k = below(depth > 3 ? 5 : 8);
    if (k <= 1) {
        gen_string(d);
    } else if (k == 2) {
        gen_number(d);
    } else if (k == 3) {
        puts_(d, below(2) ? "true" : "false");
    } else if (k == 4) {
        puts_(d, "null");
    } else if (k <= 6) {
        put(d, "{", 1);
        for (uint32_t i = below(6), j = 0; j < i; j++) {
            if (j)
                put(d, ",", 1);
            ws(d);
            gen_string(d);
            ws(d);
            put(d, ":", 1);
            ws(d);
            gen_value(d, depth + 1);
        }
        ws(d);
        put(d, "}", 1);
    } else {
        put(d, "[", 1);
        for (uint32_t i = below(5), j = 0; j < i; j++) {
            if (j)
                put(d, ",", 1);
            ws(d);
            gen_value(d, depth + 1);
        }
        ws(d);
        put(d, "]", 1);
    }
}

/* An event-like object: a few top-level members, some of them objects. */
static void gen_doc(struct doc *d)
{
    d->n = 0;
    ws(d);
    put(d, "{", 1);
    for (uint32_t i = 1 + below(10), j = 0; j < i; j++) {
        if (j)
            put(d, ",", 1);
        ws(d);
        if (below(6) == 0)
            puts_(d, "\"drop\"");
        else
            gen_string(d);
        put(d, ":", 1);
        ws(d);
        gen_value(d, 1);
    }
    put(d, "}", 1);
    ws(d);
}

/* One hostile edit: a byte replaced, inserted or removed, or a cut. */
static void mutate(struct doc *d)
{
    static const unsigned char bytes[] = {'"',  '\\', 0x00, 0x01, 0x1f, 0x7f, 0x80, 0xbf, 0xc0,
                                          0xc3, 0xe0, 0xed, 0xf0, 0xf4, 0xf5, 0xff, ' ',  '{',
                                          '}',  '[',  ']',  ',',  ':',  'u',  'e',  '-',  '0'};
    if (d->n == 0)
        return;
    uint32_t at = below((uint32_t)d->n), k = below(8);
    unsigned char c = bytes[below(sizeof bytes)];
    if (k < 5) {
        d->b[at] = (char)c;
    } else if (k == 5 && d->n + 1 < MAXLEN) {
        memmove(d->b + at + 1, d->b + at, d->n - at);
        d->b[at] = (char)c;
        d->n++;
    } else if (k == 6) {
        memmove(d->b + at, d->b + at + 1, d->n - at - 1);
        d->n--;
    } else {
        d->n = at;
    }
}

/* What one scan told its member callback, offsets relative to the buffer
 * the pointers point into. */
struct seen {
    const char *in, *out; /* the scan's input and output bases */
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
    const char *base = s->out ? s->out : s->in;
    if (s->n < MAX_MEMBERS) {
        s->m[s->n].key = m->key ? m->key - base : -1;
        s->m[s->n].value = m->value - base;
        s->m[s->n].key_len = m->key_len;
        s->m[s->n].value_len = m->value_len;
        s->m[s->n].in_offset = m->in_offset;
        s->m[s->n].type = m->type;
        s->m[s->n].key_escaped = m->key_escaped;
        s->m[s->n].value_escaped = m->value_escaped;
    }
    s->n++;
    /* Drop members named "drop", so the rewinding path is compared too. */
    return m->key && m->key_len == 4 && memcmp(m->key, "drop", 4) == 0;
}

typedef int (*scan_fn)(const char *, size_t, const struct pipe_json_opts *, struct pipe_buf *,
                       struct pipe_json_result *);

struct outcome {
    int rc;
    struct pipe_json_result res;
    struct seen seen;
    struct pipe_buf out;
};

static void run_scan(scan_fn fn, const char *in, size_t n, unsigned flags, int depth, bool emit,
                     struct outcome *o)
{
    struct pipe_json_opts opts = {depth, flags, record_member, &o->seen};
    o->out.len = 0;
    memset(&o->seen, 0, sizeof o->seen);
    o->seen.in = in;
    /* The output begins after a prefix of varying length, so the stores
     * land at every alignment too. */
    if (emit) {
        pipe_buf_append(&o->out, "........", n % 8);
        pipe_buf_reserve(&o->out, n + 16);
        o->seen.out = o->out.data + o->out.len;
    }
    o->rc = fn(in, n, &opts, emit ? &o->out : NULL, &o->res);
}

static void assert_same(const struct outcome *a, const struct outcome *b, const char *in, size_t n)
{
    if (a->rc != b->rc || a->res.err != b->res.err || a->res.offset != b->res.offset ||
        strcmp(a->res.what, b->res.what) != 0 || a->res.type != b->res.type ||
        a->res.end != b->res.end || a->res.out_len != b->res.out_len ||
        a->res.kept != b->res.kept || a->out.len != b->out.len ||
        (a->out.len && memcmp(a->out.data, b->out.data, a->out.len) != 0) ||
        a->seen.n != b->seen.n || memcmp(a->seen.m, b->seen.m, sizeof a->seen.m) != 0) {
        print_error("input (%zu bytes): %.*s\nbuilt: rc %d err %d at %zu (%s) end %zu out %zu\n"
                    "portable: rc %d err %d at %zu (%s) end %zu out %zu\n",
                    n, (int)n, in, a->rc, a->res.err, a->res.offset, a->res.what, a->res.end,
                    a->res.out_len, b->rc, b->res.err, b->res.offset, b->res.what, b->res.end,
                    b->res.out_len);
        fail();
    }
}

/* Every mode the pipeline uses and a few it might: strict or lenient,
 * compacting or not, whole or prefix, a small and the default depth.
 * Whether the strict scan at the default depth accepted the input. */
static bool compare_all_modes(const char *in, size_t n, struct outcome o[2])
{
    static const unsigned flags[] = {0, PIPE_JSON_LENIENT, PIPE_JSON_PREFIX};
    bool strict_ok = false;
    for (size_t f = 0; f < sizeof flags / sizeof *flags; f++) {
        for (int emit = 0; emit < 2; emit++) {
            int depth = f > 0 && (n & 1) ? 3 : 0;
            run_scan(pipe_json_scan, in, n, flags[f], depth, emit, &o[0]);
            run_scan(portable_json_scan, in, n, flags[f], depth, emit, &o[1]);
            assert_same(&o[0], &o[1], in, n);
            if (f == 0)
                strict_ok = o[0].rc == 0;
        }
    }
    return strict_ok;
}

static void test_json_scan_simd_and_portable_agree_on_mutated_corpus(void **state)
{
    static struct doc d;
    /* The input sits at each offset from a 16-byte boundary, then in a
     * heap block of its exact size (an over-read shows under ASan). */
    static _Alignas(16) char slab[MAXLEN + ALIGNS];
    struct outcome o[2];
    size_t ok = 0, failed = 0;
    (void)state;
    pipe_buf_init(&o[0].out, 1 << 20);
    pipe_buf_init(&o[1].out, 1 << 20);
    for (int i = 0; i < DOCS; i++) {
        gen_doc(&d);
        for (int m = 0; m <= MUTATIONS; m++) {
            if (m > 0)
                mutate(&d);
            bool accepted = false;
            for (size_t a = 0; a < ALIGNS; a++) {
                memcpy(slab + a, d.b, d.n);
                accepted = compare_all_modes(slab + a, d.n, o);
            }
            char *heap = malloc(d.n ? d.n : 1);
            memcpy(heap, d.b, d.n);
            compare_all_modes(heap, d.n, o);
            free(heap);
            ok += accepted;
            failed += !accepted;
        }
    }
    /* The corpus must reach both outcomes often, or it tests too little. */
    assert_true(ok > DOCS);
    assert_true(failed > DOCS);
    pipe_buf_cleanup(&o[0].out);
    pipe_buf_cleanup(&o[1].out);
}

/* The body splitter's element skimmer (64-byte masks when built with
 * SSE2) must cut array and wrapper bodies where the byte walk does. */
static void test_body_iter_simd_and_portable_agree_on_arrays(void **state)
{
    static struct doc body, d;
    size_t records = 0;
    (void)state;
    for (int i = 0; i < DOCS; i++) {
        bool wrap = i % 3 == 0;
        body.n = 0;
        puts_(&body, wrap ? "{\"events\": [" : " [");
        for (uint32_t k = below(12), j = 0; j < k; j++) {
            gen_doc(&d);
            if (body.n + d.n + 8 > MAXLEN)
                break;
            if (j)
                put(&body, ",", 1);
            put(&body, d.b, d.n);
        }
        puts_(&body, wrap ? "]}" : "]");
        if (i % 2)
            mutate(&body);
        struct pipe_body_iter ia, ib;
        struct pipe_json_result ra, rb;
        struct pipe_body_record ea, eb;
        int rca = pipe_body_iter_init(&ia, body.b, body.n, PIPE_BODY_AUTO, 1 << 20, &ra);
        int rcb = portable_body_iter_init(&ib, body.b, body.n, PIPE_BODY_AUTO, 1 << 20, &rb);
        assert_int_equal(rca, rcb);
        assert_int_equal(ra.err, rb.err);
        assert_int_equal(ra.offset, rb.offset);
        assert_int_equal(ia.form, ib.form);
        for (;;) {
            bool ga = pipe_body_iter_next(&ia, &ea), gb = portable_body_iter_next(&ib, &eb);
            assert_int_equal(ga, gb);
            if (!ga)
                break;
            assert_ptr_equal(ea.data, eb.data);
            assert_int_equal(ea.len, eb.len);
            assert_int_equal(ea.index, eb.index);
            assert_int_equal(ea.err, eb.err);
            records++;
        }
    }
    assert_true(records > (size_t)DOCS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_scan_simd_and_portable_agree_on_mutated_corpus),
        cmocka_unit_test(test_body_iter_simd_and_portable_agree_on_arrays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
