/* Differential test: the scanner and body splitter as built (SSE2 on
 * x86-64) against their portable C paths (tests/support/json_diff.h). Every
 * input of a seeded, mutated corpus is scanned at every alignment in every
 * mode; results, output bytes and member callbacks must be identical. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/ndjson.h"
#include "tests/support/json_diff.h"

#define DOCS      2500
#define MUTATIONS 8
#define MAXLEN    4096
#define ALIGNS    16

static uint32_t below(uint32_t n)
{
    return n ? (uint32_t)random() % n : 0;
}

static void pick(struct pipe_buf *d, const char *const *from, size_t n)
{
    pipe_buf_append_str(d, from[below((uint32_t)n)]);
}

static void ws(struct pipe_buf *d)
{
    static const char *const w[] = {"", "", "", "", "", " ", "\n", "\t ", "\r\n    "};
    pick(d, w, sizeof w / sizeof *w);
}

/* A string whose special bytes fall at every distance from the 8- and
 * 16-byte steps: runs of plain bytes of random length between pieces. */
static void gen_string(struct pipe_buf *d)
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
    pipe_buf_append_char(d, '"');
    for (uint32_t i = below(5); i > 0; i--) {
        for (uint32_t j = below(4) ? below(20) : below(70); j > 0; j--)
            pipe_buf_append_char(d, plain[below(sizeof plain - 1)]);
        if (below(3) == 0)
            pick(d, parts, sizeof parts / sizeof *parts);
    }
    pipe_buf_append_char(d, '"');
}

static void gen_scalar(struct pipe_buf *d)
{
    static const char *const lits[] = {"0",
                                       "-0",
                                       "7",
                                       "-17",
                                       "3.25",
                                       "1e10",
                                       "-2.5E-3",
                                       "1e308",
                                       "12345678901234567890",
                                       "0.0001",
                                       "1E+2",
                                       "1e-400",
                                       "1.7976931348623157e308",
                                       "1.7976931348623159e308",
                                       "101.23",
                                       "true",
                                       "false",
                                       "null"};
    pick(d, lits, sizeof lits / sizeof *lits);
}

/* A container's members or elements, each after optional whitespace. */
static void gen_value(struct pipe_buf *d, int depth);

static void gen_members(struct pipe_buf *d, int depth, bool object, uint32_t count)
{
    pipe_buf_append_char(d, object ? '{' : '[');
    for (uint32_t j = 0; j < count; j++) {
        if (j)
            pipe_buf_append_char(d, ',');
        ws(d);
        if (object) {
            if (depth == 0 && below(6) == 0)
                pipe_buf_append_str(d, "\"drop\""); /* the callback drops it */
            else
                gen_string(d);
            pipe_buf_append_char(d, ':');
            ws(d);
        }
        gen_value(d, depth + 1);
    }
    ws(d);
    pipe_buf_append_char(d, object ? '}' : ']');
}

static void gen_value(struct pipe_buf *d, int depth)
{
    uint32_t k = below(depth > 3 ? 4 : 7);
    if (k <= 1)
        gen_string(d);
    else if (k <= 3)
        gen_scalar(d);
    else
        gen_members(d, depth, k <= 5, below(6));
}

/* An event-like object: a few top-level members, some of them objects. */
static void gen_doc(struct pipe_buf *d)
{
    pipe_buf_reset(d);
    ws(d);
    gen_members(d, 0, true, 1 + below(10));
    ws(d);
}

/* One hostile edit: a byte replaced, inserted or removed, or a cut. */
static void mutate(struct pipe_buf *d)
{
    static const unsigned char bytes[] = {'"',  '\\', 0x00, 0x01, 0x1f, 0x7f, 0x80, 0xbf, 0xc0,
                                          0xc3, 0xe0, 0xed, 0xf0, 0xf4, 0xf5, 0xff, ' ',  '{',
                                          '}',  '[',  ']',  ',',  ':',  'u',  'e',  '-',  '0'};
    if (d->len == 0)
        return;
    uint32_t at = below((uint32_t)d->len), k = below(8);
    char c = (char)bytes[below(sizeof bytes)];
    if (k < 5) {
        d->data[at] = c;
    } else if (k == 5) {
        pipe_buf_append_char(d, c);
        memmove(d->data + at + 1, d->data + at, d->len - at - 1);
        d->data[at] = c;
    } else if (k == 6) {
        memmove(d->data + at, d->data + at + 1, d->len - at - 1);
        d->len--;
    } else {
        d->len = at;
    }
}

/* Every mode the pipeline uses and a few it might: strict or lenient,
 * compacting or not, whole or prefix, a small and the default depth.
 * Whether the strict scan at the default depth accepted the input. */
static bool assert_same_in_all_modes(const char *in, size_t n)
{
    static const unsigned flags[] = {0, PIPE_JSON_LENIENT, PIPE_JSON_PREFIX};
    bool strict_ok = false;
    for (size_t f = 0; f < sizeof flags / sizeof *flags; f++) {
        for (int emit = 0; emit < 2; emit++) {
            bool ok;
            const char *what = json_diff_scan(in, n, flags[f], f > 0 && (n & 1) ? 3 : 0, emit, &ok);
            if (what) {
                print_error("SSE2 and portable scans differ (%s), flags %u, emit %d, on %zu "
                            "bytes: %.*s\n",
                            what, flags[f], emit, n, (int)n, in);
                fail();
            }
            if (f == 0)
                strict_ok = ok;
        }
    }
    return strict_ok;
}

static void test_json_scan_simd_and_portable_agree_on_mutated_corpus(void **state)
{
    /* The input sits at each offset from a 16-byte boundary, then in a
     * heap block of its exact size (an over-read shows under ASan). */
    static _Alignas(16) char slab[MAXLEN + ALIGNS];
    struct pipe_buf d;
    size_t ok = 0, failed = 0;
    (void)state;
    srandom(15);
    pipe_buf_init(&d, MAXLEN);
    for (int i = 0; i < DOCS; i++) {
        gen_doc(&d);
        for (int m = 0; m <= MUTATIONS; m++) {
            if (m > 0)
                mutate(&d);
            bool accepted = false;
            for (size_t a = 0; a < ALIGNS; a++) {
                memcpy(slab + a, d.data, d.len);
                accepted = assert_same_in_all_modes(slab + a, d.len);
            }
            char *heap = malloc(d.len ? d.len : 1);
            memcpy(heap, d.data, d.len);
            assert_same_in_all_modes(heap, d.len);
            free(heap);
            ok += accepted;
            failed += !accepted;
        }
    }
    /* The corpus must reach both outcomes often, or it tests too little. */
    assert_true(ok > DOCS);
    assert_true(failed > DOCS);
    pipe_buf_cleanup(&d);
}

/* The body splitter's element skimmer (64-byte masks when built with
 * SSE2) must cut array and wrapper bodies where the byte walk does. */
static void test_body_iter_simd_and_portable_agree_on_arrays(void **state)
{
    struct pipe_buf body, d;
    size_t records = 0;
    (void)state;
    srandom(16);
    pipe_buf_init(&body, MAXLEN);
    pipe_buf_init(&d, MAXLEN);
    for (int i = 0; i < DOCS; i++) {
        bool wrap = i % 3 == 0;
        pipe_buf_reset(&body);
        pipe_buf_append_str(&body, wrap ? "{\"events\": [" : " [");
        for (uint32_t k = below(12), j = 0; j < k; j++) {
            gen_doc(&d);
            if (body.len + d.len + 8 > MAXLEN)
                break;
            if (j)
                pipe_buf_append_char(&body, ',');
            pipe_buf_append(&body, d.data, d.len);
        }
        pipe_buf_append_str(&body, wrap ? "]}" : "]");
        if (i % 2)
            mutate(&body);
        size_t n = 0;
        const char *what = json_diff_body(body.data, body.len, PIPE_BODY_AUTO, 1 << 20, &n);
        if (what) {
            print_error("SSE2 and portable body walks differ (%s) on: %.*s\n", what, (int)body.len,
                        body.data);
            fail();
        }
        records += n;
    }
    assert_true(records > (size_t)DOCS);
    pipe_buf_cleanup(&body);
    pipe_buf_cleanup(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_scan_simd_and_portable_agree_on_mutated_corpus),
        cmocka_unit_test(test_body_iter_simd_and_portable_agree_on_arrays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
