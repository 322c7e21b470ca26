/* Unit tests for ndjson: the validating compacting scanner and the body
 * splitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/ndjson.h"

/* Scans s strictly (depth 32 unless given) and returns the error. */
static enum pipe_json_error scan_err(const char *s, size_t n, unsigned flags, int depth)
{
    struct pipe_json_opts o = {depth, flags, NULL, NULL};
    struct pipe_json_result r;
    int rc = pipe_json_scan(s, n, &o, NULL, &r);
    assert_int_equal(rc == 0, r.err == PIPE_JSON_OK);
    return r.err;
}

#define ERR(s) scan_err(s, sizeof(s) - 1, 0, 0)
#define LENIENT_ERR(s) scan_err(s, sizeof(s) - 1, PIPE_JSON_LENIENT, 0)

static void assert_compacts_to(const char *in, const char *want)
{
    struct pipe_buf b;
    struct pipe_json_result r;
    pipe_buf_init(&b, 1 << 20);
    pipe_buf_append_str(&b, "prefix|");
    assert_int_equal(pipe_json_scan(in, strlen(in), NULL, &b, &r), 0);
    assert_int_equal(r.out_len, strlen(want));
    assert_string_equal(b.data + 7, want);
    assert_memory_equal(b.data, "prefix|", 7);
    pipe_buf_cleanup(&b);
}

static void test_json_scan_compacts_whitespace_outside_strings(void **state)
{
    (void)state;
    assert_compacts_to(" { \"a\" :\t[ 1 , 2.5e3 ,\r\n true,false , null ] ,\n\"b c\" : \" x  y \" } \n",
                       "{\"a\":[1,2.5e3,true,false,null],\"b c\":\" x  y \"}");
    assert_compacts_to("{}", "{}");
    assert_compacts_to("[ ]", "[]");
    assert_compacts_to(" \"s\\n\\u00e9\\\"\" ", "\"s\\n\\u00e9\\\"\"");
    assert_compacts_to("-0.5E-3", "-0.5E-3");
    assert_compacts_to("{\"k\":{\"n\":[{},[],{\"z\":\"long string spanning several words\"}]}}",
                       "{\"k\":{\"n\":[{},[],{\"z\":\"long string spanning several words\"}]}}");
}

static void test_json_scan_rejects_rfc8259_syntax_errors(void **state)
{
    (void)state;
    assert_int_equal(ERR(""), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("   "), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("{\"a\":1,}"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("[1,]"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("[,1]"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("{\"a\" 1}"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("{'a':1}"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("{a:1}"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("[1 2]"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("[1}"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("{\"a\":1]"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("01"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("1."), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR(".5"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("+1"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("-"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("1e"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("1e+"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("NaN"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("tru"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("truex"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("\"abc"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("\"a\\x\""), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("\"\\u12G4\""), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("\"\\u12\""), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("{} {}"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("{\"a\":1"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("\"a\"\v"), PIPE_JSON_ESYNTAX);
    assert_int_equal(ERR("1 x"), PIPE_JSON_ESYNTAX);
}

static void test_json_scan_reports_error_offset_and_leaves_output_unchanged(void **state)
{
    (void)state;
    struct pipe_buf b;
    struct pipe_json_result r;
    const char *in = "{\"a\":[1,2,}";
    pipe_buf_init(&b, 1 << 10);
    pipe_buf_append_str(&b, "keep");
    assert_int_equal(pipe_json_scan(in, strlen(in), NULL, &b, &r), PIPE_EPARSE);
    assert_int_equal(r.err, PIPE_JSON_ESYNTAX);
    assert_int_equal(r.offset, 10);
    assert_true(strlen(r.what) > 0);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    pipe_buf_cleanup(&b);
}

static void test_json_scan_validates_utf8(void **state)
{
    (void)state;
    assert_int_equal(ERR("\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\""), PIPE_JSON_OK);
    assert_int_equal(ERR("\"\xc0\x80\""), PIPE_JSON_EUTF8);         /* overlong NUL */
    assert_int_equal(ERR("\"\xc1\xbf\""), PIPE_JSON_EUTF8);         /* overlong */
    assert_int_equal(ERR("\"\xe0\x80\xaf\""), PIPE_JSON_EUTF8);     /* overlong 3-byte */
    assert_int_equal(ERR("\"\xf0\x80\x80\xaf\""), PIPE_JSON_EUTF8); /* overlong 4-byte */
    assert_int_equal(ERR("\"\xed\xa0\x80\""), PIPE_JSON_EUTF8);     /* U+D800 encoded */
    assert_int_equal(ERR("\"\xed\xbf\xbf\""), PIPE_JSON_EUTF8);     /* U+DFFF encoded */
    assert_int_equal(ERR("\"\xf4\x90\x80\x80\""), PIPE_JSON_EUTF8); /* > U+10FFFF */
    assert_int_equal(ERR("\"\xf5\x80\x80\x80\""), PIPE_JSON_EUTF8);
    assert_int_equal(ERR("\"\xe2\x82\""), PIPE_JSON_EUTF8);         /* truncated */
    assert_int_equal(ERR("\"\xe2\x82"), PIPE_JSON_EUTF8);           /* truncated at end */
    assert_int_equal(ERR("\"\x80\""), PIPE_JSON_EUTF8);             /* lone continuation */
    assert_int_equal(ERR("\"\xff\""), PIPE_JSON_EUTF8);
    assert_int_equal(ERR("{\"k\xff\":1}"), PIPE_JSON_EUTF8);
    assert_int_equal(ERR("\xff"), PIPE_JSON_EUTF8);
    /* Long plain runs go through the 8-byte path: a bad byte deep inside. */
    assert_int_equal(ERR("\"abcdefghijklmnopqrstuvwxyz0123456789\xfe tail\""), PIPE_JSON_EUTF8);
}

static void test_json_scan_checks_escapes_and_control_characters(void **state)
{
    (void)state;
    assert_int_equal(ERR("\"\\ud83d\\ude00 \\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9\""), PIPE_JSON_OK);
    assert_int_equal(ERR("\"\\u0000\""), PIPE_JSON_ESTRING);
    assert_int_equal(ERR("{\"\\u0000\":1}"), PIPE_JSON_ESTRING);
    assert_int_equal(ERR("\"\\ud83d\""), PIPE_JSON_ESTRING);
    assert_int_equal(ERR("\"\\ud83dx\""), PIPE_JSON_ESTRING);
    assert_int_equal(ERR("\"\\ud83d\\u0041\""), PIPE_JSON_ESTRING);
    assert_int_equal(ERR("\"\\ude00\\ud83d\""), PIPE_JSON_ESTRING);
    assert_int_equal(ERR("\"\\udc00\""), PIPE_JSON_ESTRING);
    assert_int_equal(ERR("\"a\tb\""), PIPE_JSON_ESTRING);
    assert_int_equal(ERR("\"a\nb\""), PIPE_JSON_ESTRING);
    assert_int_equal(scan_err("\"a\0b\"", 5, 0, 0), PIPE_JSON_ESTRING);
    assert_int_equal(ERR("\"a\x7f\""), PIPE_JSON_OK);
    /* Lenient: only grammar and UTF-8. */
    assert_int_equal(LENIENT_ERR("\"\\u0000\""), PIPE_JSON_OK);
    assert_int_equal(LENIENT_ERR("\"\\ud83d\""), PIPE_JSON_OK);
    assert_int_equal(LENIENT_ERR("\"a\tb\""), PIPE_JSON_ESYNTAX);
    assert_int_equal(LENIENT_ERR("\"\xc0\x80\""), PIPE_JSON_EUTF8);
}

static void test_json_scan_caps_depth(void **state)
{
    (void)state;
    assert_int_equal(scan_err("[[[1]]]", 7, 0, 3), PIPE_JSON_OK);
    assert_int_equal(scan_err("[[[[1]]]]", 9, 0, 3), PIPE_JSON_EDEPTH);
    assert_int_equal(scan_err("{\"a\":{\"b\":{}}}", 14, 0, 3), PIPE_JSON_OK);
    assert_int_equal(scan_err("{\"a\":{\"b\":{\"c\":[]}}}", 20, 0, 3), PIPE_JSON_EDEPTH);
    assert_int_equal(scan_err("1", 1, 0, 1), PIPE_JSON_OK);
    /* Deeper than the hard limit, whatever was asked: no stack overflow. */
    size_t n = 3 * PIPE_JSON_DEPTH_LIMIT;
    char *deep = malloc(2 * n);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    assert_int_equal(scan_err(deep, 2 * n, PIPE_JSON_LENIENT, 1 << 30), PIPE_JSON_EDEPTH);
    assert_int_equal(scan_err(deep + n - 100, 200, 0, 100), PIPE_JSON_OK);
    free(deep);
}

static void test_json_scan_rejects_numbers_that_overflow_a_double(void **state)
{
    (void)state;
    assert_int_equal(ERR("1e400"), PIPE_JSON_ENUMBER);
    assert_int_equal(ERR("-1E+309"), PIPE_JSON_ENUMBER);
    assert_int_equal(ERR("1.7976931348623159e308"), PIPE_JSON_ENUMBER);
    assert_int_equal(ERR("0.001e312"), PIPE_JSON_ENUMBER);
    assert_int_equal(ERR("1e99999999999999999999999"), PIPE_JSON_ENUMBER);
    assert_int_equal(ERR("1.7976931348623157e308"), PIPE_JSON_OK); /* DBL_MAX */
    assert_int_equal(ERR("1.7976931348623158e308"), PIPE_JSON_OK); /* rounds to DBL_MAX */
    assert_int_equal(ERR("0.001e311"), PIPE_JSON_OK);
    assert_int_equal(ERR("1e-400"), PIPE_JSON_OK); /* underflow is zero, not an error */
    assert_int_equal(ERR("0e99999"), PIPE_JSON_OK);
    assert_int_equal(ERR("0.0000e400"), PIPE_JSON_OK);
    assert_int_equal(ERR("123456789012345678901234567890"), PIPE_JSON_OK);
    assert_int_equal(ERR("-9223372036854775809"), PIPE_JSON_OK);
    /* A 309-digit integer just under and at the threshold 2^1024 - 2^970. */
    char big[400] = "1797693134862315807937289714053034150799341327100378269361737789804449682927647"
                    "5094664901797758720709633028641669288791094655554785194040263065748867150582068"
                    "1908902000708383676273854845817711531764475730270069855571366959622842914819860"
                    "834936475292719074168444365510704342711559699508093042880177904174497791";
    assert_int_equal(strlen(big), 309);
    assert_int_equal(scan_err(big, strlen(big), 0, 0), PIPE_JSON_OK);
    big[308] = '2';
    assert_int_equal(scan_err(big, strlen(big), 0, 0), PIPE_JSON_ENUMBER);
    assert_int_equal(scan_err(big, strlen(big), PIPE_JSON_LENIENT, 0), PIPE_JSON_OK);
    strcat(big, "0");
    assert_int_equal(scan_err(big, strlen(big), 0, 0), PIPE_JSON_ENUMBER);
}

struct seen {
    int n;
    char keys[8][16];
    char vals[8][32];
    enum pipe_json_type types[8];
    bool esc[8];
    const char *drop; /* key to drop */
};

static bool record_member(void *arg, const struct pipe_json_member *m)
{
    struct seen *s = arg;
    assert_true(s->n < 8);
    snprintf(s->keys[s->n], 16, "%.*s", m->key ? (int)m->key_len : 6, m->key ? m->key : "(none)");
    snprintf(s->vals[s->n], 32, "%.*s", (int)m->value_len, m->value);
    s->types[s->n] = m->type;
    s->esc[s->n] = m->key_escaped;
    s->n++;
    return s->drop && m->key && strlen(s->drop) == m->key_len && !memcmp(s->drop, m->key, m->key_len);
}

static void test_json_scan_reports_top_level_members_with_spans(void **state)
{
    (void)state;
    struct seen s = {0};
    struct pipe_json_opts o = {0, 0, record_member, &s};
    struct pipe_json_result r;
    struct pipe_buf b;
    const char *in = "{ \"a\" : { \"x\" : [1, 2] }, \"b\\u0062\":\"s t\", \"c\": -1.5, \"d\":[], \"e\":null}";
    pipe_buf_init(&b, 1 << 10);
    assert_int_equal(pipe_json_scan(in, strlen(in), &o, &b, &r), 0);
    assert_int_equal(s.n, 5);
    assert_int_equal(r.kept, 5);
    assert_int_equal(r.type, PIPE_JSON_OBJECT);
    assert_string_equal(s.keys[0], "a");
    assert_string_equal(s.vals[0], "{\"x\":[1,2]}");
    assert_int_equal(s.types[0], PIPE_JSON_OBJECT);
    assert_string_equal(s.keys[1], "b\\u0062");
    assert_true(s.esc[1]);
    assert_false(s.esc[0]);
    assert_string_equal(s.vals[1], "\"s t\"");
    assert_int_equal(s.types[1], PIPE_JSON_STRING);
    assert_string_equal(s.vals[2], "-1.5");
    assert_int_equal(s.types[2], PIPE_JSON_NUMBER);
    assert_int_equal(s.types[3], PIPE_JSON_ARRAY);
    assert_int_equal(s.types[4], PIPE_JSON_NULL);
    pipe_buf_cleanup(&b);

    /* Without output the spans point into the input. */
    memset(&s, 0, sizeof s);
    assert_int_equal(pipe_json_scan(in, strlen(in), &o, NULL, &r), 0);
    assert_string_equal(s.vals[0], "{ \"x\" : [1, 2] }");

    /* Array elements come with no key. */
    memset(&s, 0, sizeof s);
    assert_int_equal(pipe_json_scan("[1,{\"a\":2}]", 11, &o, NULL, &r), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.keys[1], "(none)");
    assert_string_equal(s.vals[1], "{\"a\":2}");
}

static void assert_drop(const char *in, const char *drop, const char *want, size_t kept)
{
    struct seen s = {0};
    s.drop = drop;
    struct pipe_json_opts o = {0, 0, record_member, &s};
    struct pipe_json_result r;
    struct pipe_buf b;
    pipe_buf_init(&b, 1 << 10);
    assert_int_equal(pipe_json_scan(in, strlen(in), &o, &b, &r), 0);
    assert_string_equal(b.data, want);
    assert_int_equal(r.kept, kept);
    pipe_buf_cleanup(&b);
}

static void test_json_scan_drops_members_the_callback_rejects(void **state)
{
    (void)state;
    assert_drop("{\"x\":1,\"a\":2,\"b\":3}", "x", "{\"a\":2,\"b\":3}", 2);
    assert_drop("{\"a\":2,\"x\":{\"y\":[1]},\"b\":3}", "x", "{\"a\":2,\"b\":3}", 2);
    assert_drop("{\"a\":2, \"b\":3, \"x\":\"z\"}", "x", "{\"a\":2,\"b\":3}", 2);
    assert_drop("{\"x\":1,\"x\":2}", "x", "{}", 0);
    assert_drop("{\"x\":1}", "x", "{}", 0);
    assert_drop("{\"x\":1,\"a\":[{\"x\":1}],\"x\":2}", "x", "{\"a\":[{\"x\":1}]}", 1);
}

static void test_json_scan_prefix_stops_after_first_value(void **state)
{
    (void)state;
    struct pipe_json_opts o = {0, PIPE_JSON_PREFIX, NULL, NULL};
    struct pipe_json_result r;
    const char *in = "{\"a\":1}  \n{\"b\":2}";
    assert_int_equal(pipe_json_scan(in, strlen(in), &o, NULL, &r), 0);
    assert_int_equal(r.end, 10);
    assert_int_equal(pipe_json_scan(in, strlen(in), NULL, NULL, &r), PIPE_EPARSE);
    assert_int_equal(r.offset, 10);
}

static void test_json_scan_fails_cleanly_when_output_is_full(void **state)
{
    (void)state;
    struct pipe_buf b;
    struct pipe_json_result r;
    pipe_buf_init(&b, 10);
    assert_int_equal(pipe_json_scan("[1, 2]", 6, NULL, &b, &r), PIPE_ETOOBIG);
    assert_int_equal(b.len, 0);
    pipe_buf_cleanup(&b);
}

static void test_json_scan_and_body_accept_null_empty_input(void **state)
{
    (void)state;
    struct pipe_json_result r;
    struct pipe_body_iter it;
    struct pipe_body_record rec;
    assert_int_equal(pipe_json_scan(NULL, 0, NULL, NULL, &r), PIPE_EPARSE);
    assert_int_equal(r.err, PIPE_JSON_ESYNTAX);
    assert_int_equal(pipe_body_iter_init(&it, NULL, 0, PIPE_BODY_AUTO, 0, &r), 0);
    assert_false(pipe_body_iter_next(&it, &rec));
}

static void test_json_unescape_decodes_escapes_and_surrogate_pairs(void **state)
{
    (void)state;
    const char *raw = "a\\n\\\"\\u00e9\\ud83d\\ude00\\/x";
    char out[64];
    size_t n = pipe_json_unescape(raw, strlen(raw), out);
    assert_int_equal(n, pipe_json_unescape(raw, strlen(raw), NULL));
    assert_int_equal(n, 1 + 1 + 1 + 2 + 4 + 1 + 1);
    assert_memory_equal(out, "a\n\"\xc3\xa9\xf0\x9f\x98\x80/x", n);
}

/* ---- body splitting ---- */

struct recs {
    int n;
    char text[16][64];
    enum pipe_json_error err[16];
    size_t offset[16];
};

static int split(const char *body, size_t len, enum pipe_body_form hint, size_t cap,
                 struct recs *out, enum pipe_body_form *form, struct pipe_json_result *res)
{
    struct pipe_body_iter it;
    struct pipe_body_record rec;
    struct pipe_json_result r;
    memset(out, 0, sizeof *out);
    int rc = pipe_body_iter_init(&it, body, len, hint, cap, res ? res : &r);
    if (form)
        *form = it.form;
    while (pipe_body_iter_next(&it, &rec)) {
        assert_true(out->n < 16);
        assert_int_equal(rec.index, out->n);
        assert_ptr_equal(rec.data, body + rec.offset);
        snprintf(out->text[out->n], 64, "%.*s", (int)rec.len, rec.data);
        out->err[out->n] = rec.err;
        out->offset[out->n] = rec.offset;
        out->n++;
    }
    assert_false(pipe_body_iter_next(&it, &rec));
    return rc;
}

#define SPLIT(s, hint, cap, recs, form) split(s, sizeof(s) - 1, hint, cap, recs, form, NULL)

static void test_body_ndjson_splits_lines_with_crlf_and_skips_blank_lines(void **state)
{
    (void)state;
    struct recs r;
    enum pipe_body_form f;
    assert_int_equal(SPLIT("{\"a\":1}\r\n\r\n  \t \n{\"b\":2}\n\n{\"c\":3}", PIPE_BODY_AUTO, 0, &r, &f), 0);
    assert_int_equal(f, PIPE_BODY_NDJSON);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.text[0], "{\"a\":1}");
    assert_string_equal(r.text[1], "{\"b\":2}");
    assert_string_equal(r.text[2], "{\"c\":3}");
    assert_int_equal(r.offset[1], 16);
    /* A malformed line is a record of its own; its neighbours go on. */
    assert_int_equal(SPLIT("{\"a\":\n{\"b\":2}\n", PIPE_BODY_AUTO, 0, &r, &f), 0);
    assert_int_equal(f, PIPE_BODY_NDJSON);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.text[0], "{\"a\":");
}

static void test_body_ndjson_line_over_cap_is_too_large_and_next_line_goes_on(void **state)
{
    (void)state;
    struct recs r;
    assert_int_equal(SPLIT("{\"a\":\"0123456789\"}\n{\"b\":1}\n", PIPE_BODY_NDJSON, 10, &r, NULL), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.err[0], PIPE_JSON_ETOOLARGE);
    assert_int_equal(r.err[1], PIPE_JSON_OK);
    assert_string_equal(r.text[1], "{\"b\":1}");
}

static void test_body_empty_or_whitespace_has_no_records(void **state)
{
    (void)state;
    struct recs r;
    assert_int_equal(split("", 0, PIPE_BODY_AUTO, 0, &r, NULL, NULL), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(SPLIT(" \r\n\t\n", PIPE_BODY_AUTO, 0, &r, NULL), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(SPLIT("[ ]", PIPE_BODY_AUTO, 0, &r, NULL), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(SPLIT("{\"events\":[]}", PIPE_BODY_AUTO, 0, &r, NULL), 0);
    assert_int_equal(r.n, 0);
}

static void test_body_array_yields_elements_including_invalid_events(void **state)
{
    (void)state;
    struct recs r;
    enum pipe_body_form f;
    assert_int_equal(SPLIT(" [ {\"a\":\"],[\\\"}\"} ,\n 12, \"s\",[1,[2]],{\"z\":\"\\u0000\"}, null ] ",
                           PIPE_BODY_AUTO, 0, &r, &f), 0);
    assert_int_equal(f, PIPE_BODY_ARRAY);
    assert_int_equal(r.n, 6);
    assert_string_equal(r.text[0], "{\"a\":\"],[\\\"}\"}");
    assert_string_equal(r.text[1], "12");
    assert_string_equal(r.text[2], "\"s\"");
    assert_string_equal(r.text[3], "[1,[2]]");
    assert_string_equal(r.text[4], "{\"z\":\"\\u0000\"}");
    assert_string_equal(r.text[5], "null");
}

static void test_body_broken_array_is_not_json_as_a_whole(void **state)
{
    (void)state;
    struct recs r;
    struct pipe_json_result res;
    const char b1[] = "[{\"a\":1},{\"b\":2]";
    assert_int_equal(split(b1, sizeof b1 - 1, PIPE_BODY_AUTO, 0, &r, NULL, &res), PIPE_EPARSE);
    assert_int_equal(r.n, 0);
    assert_int_equal(res.err, PIPE_JSON_ESYNTAX);
    assert_int_equal(res.offset, 15);
    const char b2[] = "  [{\"a\":\"\xff\"}]";
    assert_int_equal(split(b2, sizeof b2 - 1, PIPE_BODY_AUTO, 0, &r, NULL, &res), PIPE_EPARSE);
    assert_int_equal(res.err, PIPE_JSON_EUTF8);
    assert_int_equal(res.offset, 9);
    assert_int_equal(SPLIT("[1] [2]", PIPE_BODY_AUTO, 0, &r, NULL), PIPE_EPARSE);
    assert_int_equal(SPLIT("{\"a\":1}", PIPE_BODY_ARRAY, 0, &r, NULL), PIPE_EPARSE);
}

static void test_body_wrapper_yields_events_array_and_ignores_other_keys(void **state)
{
    (void)state;
    struct recs r;
    enum pipe_body_form f;
    assert_int_equal(SPLIT("{\"batch\":{\"events\":[9]},\"events\" : [ {\"event\":\"a\"}, {\"event\":\"b\"} ],"
                           "\"sent_at\":\"x\"}\n", PIPE_BODY_AUTO, 0, &r, &f), 0);
    assert_int_equal(f, PIPE_BODY_WRAPPER);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.text[0], "{\"event\":\"a\"}");
    assert_string_equal(r.text[1], "{\"event\":\"b\"}");
    assert_int_equal(SPLIT("{\"ev\\u0065nts\":[1]}", PIPE_BODY_AUTO, 0, &r, &f), 0);
    assert_int_equal(f, PIPE_BODY_WRAPPER);
    assert_int_equal(r.n, 1);
    assert_int_equal(SPLIT("{\"events\":[1],\"events\":[2,3]}", PIPE_BODY_AUTO, 0, &r, &f), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.text[0], "2");
    /* Forced wrapper form that is not one. */
    assert_int_equal(SPLIT("{\"events\":5}", PIPE_BODY_WRAPPER, 0, &r, NULL), PIPE_EPARSE);
    assert_int_equal(SPLIT("[1]", PIPE_BODY_WRAPPER, 0, &r, NULL), PIPE_EPARSE);
    assert_int_equal(SPLIT("{\"events\":[1,}", PIPE_BODY_WRAPPER, 0, &r, NULL), PIPE_EPARSE);
}

/* Element kind k with the text that varies by shift: quotes, escaped
 * quotes, backslash runs and brackets inside strings, nesting, a string
 * and a scalar, at every offset against the splitter's 64-byte blocks. */
static int long_element(char *dst, size_t cap, int k, int shift)
{
    char pad[160];
    memset(pad, 'x', (size_t)shift);
    pad[shift] = '\0';
    switch (k) {
    case 0:
        return snprintf(dst, cap,
                        "{\"p\":\"%s\",\"q\":\"a]}\\\"[{\\\\\",\"r\":[1,{\"s\":\"}\\\"]\"}],"
                        "\"t\":\"%s]}]}\\\\\\\\\\\"\"}",
                        pad, pad);
    case 1:
        return snprintf(dst, cap, "[\"%s\",[\"]\",{\"k\":\"}\"}],[[[\"%s\\\\\"]]],{}]", pad, pad);
    case 2:
        return snprintf(dst, cap, "{\"u\":\"%s\\\\\\\\\\\\\\\"%s\", \"v\" : [ ] , \"w\":{ }}", pad,
                        pad);
    case 3:
        return snprintf(dst, cap, "\"%s\\\"],\\\\%s\"", pad, pad);
    default:
        return snprintf(dst, cap, "-%d.5e3", shift);
    }
}

static void test_body_array_elements_longer_than_a_block_end_where_they_end(void **state)
{
    (void)state;
    enum { CAP = 1 << 16 };
    char *body = malloc(CAP), elem[5][512];
    int elen[5];
    for (int wrap = 0; wrap < 2; wrap++) {
        for (int shift = 0; shift < 140; shift++) {
            size_t n = (size_t)snprintf(body, CAP, "%s", wrap ? "{\"events\": [" : " [");
            for (int k = 0; k < 5; k++) {
                elen[k] = long_element(elem[k], sizeof elem[k], k, (shift + 37 * k) % 140);
                n += (size_t)snprintf(body + n, CAP - n, "%s%s", k ? " ,\n" : "", elem[k]);
            }
            n += (size_t)snprintf(body + n, CAP - n, "%s", wrap ? " ], \"x\":\"]\"}" : "]\n");
            struct pipe_body_iter it;
            struct pipe_body_record rec;
            struct pipe_json_result res;
            assert_int_equal(pipe_body_iter_init(&it, body, n, PIPE_BODY_AUTO, 0, &res), 0);
            assert_int_equal(it.form, wrap ? PIPE_BODY_WRAPPER : PIPE_BODY_ARRAY);
            for (int k = 0; k < 5; k++) {
                assert_true(pipe_body_iter_next(&it, &rec));
                assert_int_equal(rec.len, elen[k]);
                assert_memory_equal(rec.data, elem[k], rec.len);
                assert_int_equal(pipe_json_scan(rec.data, rec.len, NULL, NULL, &res), 0);
            }
            assert_false(pipe_body_iter_next(&it, &rec));
        }
    }
    free(body);
}

static void test_body_auto_detects_single_object_and_ndjson(void **state)
{
    (void)state;
    struct recs r;
    enum pipe_body_form f;
    /* A pretty-printed single event is one record. */
    assert_int_equal(SPLIT("{\n  \"event\": \"a\",\n  \"x\": 1\n}\n", PIPE_BODY_AUTO, 0, &r, &f), 0);
    assert_int_equal(f, PIPE_BODY_SINGLE);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.text[0], "{\n  \"event\": \"a\",\n  \"x\": 1\n}");
    /* An event that happens to carry an "events" array is not a wrapper. */
    assert_int_equal(SPLIT("{\"event\":\"a\",\"events\":[1,2]}", PIPE_BODY_AUTO, 0, &r, &f), 0);
    assert_int_equal(f, PIPE_BODY_SINGLE);
    assert_int_equal(r.n, 1);
    /* Two objects: NDJSON, even when the first looks like a wrapper. */
    assert_int_equal(SPLIT("{\"events\":[1]}\n{\"events\":[2]}", PIPE_BODY_AUTO, 0, &r, &f), 0);
    assert_int_equal(f, PIPE_BODY_NDJSON);
    assert_int_equal(r.n, 2);
    /* The client said NDJSON: a wrapper-shaped body is one line. */
    assert_int_equal(SPLIT("{\"events\":[1,2]}", PIPE_BODY_NDJSON, 0, &r, &f), 0);
    assert_int_equal(r.n, 1);
    /* Something else first: NDJSON, each line judged later. */
    assert_int_equal(SPLIT("\"x\"\n5\n", PIPE_BODY_AUTO, 0, &r, &f), 0);
    assert_int_equal(f, PIPE_BODY_NDJSON);
    assert_int_equal(r.n, 2);
}

static void test_body_skips_leading_bom(void **state)
{
    (void)state;
    struct recs r;
    enum pipe_body_form f;
    assert_int_equal(SPLIT("\xef\xbb\xbf[{\"a\":1}]", PIPE_BODY_AUTO, 0, &r, &f), 0);
    assert_int_equal(f, PIPE_BODY_ARRAY);
    assert_int_equal(r.n, 1);
    assert_int_equal(SPLIT("\xef\xbb\xbf{\"a\":1}\n{\"b\":1}", PIPE_BODY_AUTO, 0, &r, &f), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.text[0], "{\"a\":1}");
}

/* pipe_json_append_string: quotes, escapes, UTF-8 kept, invalid UTF-8
 * refused with the buffer unchanged, the cap respected. */
static void test_append_string_escapes_and_refuses_invalid_utf8(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 64);
    assert_int_equal(pipe_buf_append_str(&b, "x="), 0);
    static const char in[] = "a\"b\\c\n\x01\0d\xc3\xa9";
    assert_int_equal(pipe_json_append_string(&b, in, sizeof in - 1), 0);
    assert_string_equal(b.data, "x=\"a\\\"b\\\\c\\u000a\\u0001\\u0000d\xc3\xa9\"");
    size_t len = b.len;
    assert_int_equal(pipe_json_append_string(&b, "ok\xff", 3), PIPE_EINVAL);
    assert_int_equal(pipe_json_append_string(&b, "\xc3", 1), PIPE_EINVAL); /* cut short */
    assert_int_equal(pipe_json_append_string(&b, "\xed\xa0\x80", 3), PIPE_EINVAL); /* surrogate */
    assert_int_equal(b.len, len);
    assert_int_equal(pipe_json_append_string(&b, "0123456789012345678901234567890123456789", 40),
                     PIPE_ETOOBIG);
    assert_int_equal(b.len, len);
    assert_int_equal(pipe_json_append_string(&b, "", 0), 0);
    assert_string_equal(b.data + len, "\"\"");
    pipe_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_scan_compacts_whitespace_outside_strings),
        cmocka_unit_test(test_json_scan_rejects_rfc8259_syntax_errors),
        cmocka_unit_test(test_json_scan_reports_error_offset_and_leaves_output_unchanged),
        cmocka_unit_test(test_json_scan_validates_utf8),
        cmocka_unit_test(test_json_scan_checks_escapes_and_control_characters),
        cmocka_unit_test(test_json_scan_caps_depth),
        cmocka_unit_test(test_json_scan_rejects_numbers_that_overflow_a_double),
        cmocka_unit_test(test_json_scan_reports_top_level_members_with_spans),
        cmocka_unit_test(test_json_scan_drops_members_the_callback_rejects),
        cmocka_unit_test(test_json_scan_prefix_stops_after_first_value),
        cmocka_unit_test(test_json_scan_fails_cleanly_when_output_is_full),
        cmocka_unit_test(test_json_scan_and_body_accept_null_empty_input),
        cmocka_unit_test(test_json_unescape_decodes_escapes_and_surrogate_pairs),
        cmocka_unit_test(test_body_ndjson_splits_lines_with_crlf_and_skips_blank_lines),
        cmocka_unit_test(test_body_ndjson_line_over_cap_is_too_large_and_next_line_goes_on),
        cmocka_unit_test(test_body_empty_or_whitespace_has_no_records),
        cmocka_unit_test(test_body_array_yields_elements_including_invalid_events),
        cmocka_unit_test(test_body_broken_array_is_not_json_as_a_whole),
        cmocka_unit_test(test_body_wrapper_yields_events_array_and_ignores_other_keys),
        cmocka_unit_test(test_body_array_elements_longer_than_a_block_end_where_they_end),
        cmocka_unit_test(test_body_auto_detects_single_object_and_ndjson),
        cmocka_unit_test(test_body_skips_leading_bom),
        cmocka_unit_test(test_append_string_escapes_and_refuses_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
