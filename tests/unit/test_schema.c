/* Unit tests for schema: every keyword of the subset passing and failing,
 * defaults and redaction as rewrites, every load error, directory loading
 * and versions, redaction of rejected records, and the corpus under
 * tests/data/schemas driven by its table (cases.ndjson). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libpipe/err.h"
#include "libpipe/event.h"
#include "libpipe/log.h"
#include "libpipe/schema.h"
#include "tests/support/testutil.h"

#define CORPUS "tests/data/schemas"

static const struct pipe_schema_opts key_a = {(const unsigned char *)"0123456789abcdef", 16, false};
static const struct pipe_schema_opts key_b = {(const unsigned char *)"fedcba9876543210", 16, false};

/* compile — doc (JSON text) as event type "t" version 1; NULL on failure
 * with the message in err. */
static struct pipe_schema *compile_with(const char *doc, const struct pipe_schema_opts *o,
                                        char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loads(doc, 0, &je);
    if (j == NULL)
        fail_msg("test schema is not JSON: %s: %s", je.text, doc);
    struct pipe_schema *s = NULL;
    char e[512];
    int rc = pipe_schema_new(j, "t", 1, "t/1.json", o, &s, err ? err : e, err ? errlen : sizeof e);
    json_decref(j);
    if (rc == 0)
        assert_non_null(s);
    else
        assert_int_equal(rc, PIPE_EINVAL);
    return s;
}

static struct pipe_schema *compile(const char *doc)
{
    char err[512];
    struct pipe_schema *s = compile_with(doc, &key_a, err, sizeof err);
    if (s == NULL)
        fail_msg("schema did not compile: %s", err);
    return s;
}

struct outcome {
    enum pipe_reason reason;
    char message[256];
    bool changed;
    char out[8192]; /* the event as it would be written */
};

static struct pipe_schema_checker *ck;

static enum pipe_reason apply(const struct pipe_schema *s, const char *ev, struct outcome *o)
{
    struct pipe_buf out;
    struct pipe_schema_result r;
    pipe_buf_init(&out, 1 << 20);
    pipe_buf_append_str(&out, "keep");
    assert_int_equal(pipe_schema_apply(s, ck, ev, strlen(ev), &out, &r), 0);
    o->reason = r.reason;
    o->changed = r.changed;
    snprintf(o->message, sizeof o->message, "%s", r.message);
    if (r.changed) {
        assert_int_equal(r.reason, PIPE_REASON_OK);
        snprintf(o->out, sizeof o->out, "%s", out.data + 4);
        /* whatever was rewritten is still one valid JSON object */
        json_t *j = json_loads(o->out, 0, NULL);
        if (j == NULL)
            fail_msg("rewrite is not JSON: %s", o->out);
        json_decref(j);
    } else {
        assert_int_equal(out.len, 4);
        snprintf(o->out, sizeof o->out, "%s", ev);
    }
    if (r.reason != PIPE_REASON_OK)
        assert_true(strlen(r.message) > 0);
    pipe_buf_cleanup(&out);
    return r.reason;
}

/* ok / bad — one schema, one event, expected outcome. */
static void ok(const struct pipe_schema *s, const char *ev)
{
    struct outcome o;
    if (apply(s, ev, &o) != PIPE_REASON_OK)
        fail_msg("expected %s to pass, got \"%s\"", ev, o.message);
}

static void bad(const struct pipe_schema *s, const char *ev, const char *message)
{
    struct outcome o;
    if (apply(s, ev, &o) != PIPE_REASON_SCHEMA_VIOLATION)
        fail_msg("expected %s to fail with \"%s\"", ev, message);
    assert_string_equal(o.message, message);
}

static int setup(void **state)
{
    (void)state;
    pipe_log_init("test", PIPE_LOG_ERROR);
    ck = pipe_schema_checker_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pipe_schema_checker_free(ck);
    ck = NULL;
    return 0;
}

/* ---- keywords ---- */

static void test_schema_type_checks_each_json_type(void **state)
{
    (void)state;
    static const struct {
        const char *type, *good, *bad, *got;
    } t[] = {
        {"object", "{}", "[]", "array"},     {"array", "[1]", "{}", "object"},
        {"string", "\"s\"", "1", "number"},  {"number", "1.5", "\"1\"", "string"},
        {"integer", "-3", "1.5", "number"},  {"boolean", "false", "null", "null"},
        {"null", "null", "true", "boolean"},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        char doc[200], ev[200], msg[200];
        snprintf(doc, sizeof doc, "{\"properties\":{\"v\":{\"type\":\"%s\"}}}", t[i].type);
        struct pipe_schema *s = compile(doc);
        snprintf(ev, sizeof ev, "{\"event\":\"t\",\"v\":%s}", t[i].good);
        ok(s, ev);
        snprintf(ev, sizeof ev, "{\"event\":\"t\",\"v\":%s}", t[i].bad);
        snprintf(msg, sizeof msg, "v: expected %s, got %s", t[i].type, t[i].got);
        bad(s, ev, msg);
        pipe_schema_free(s);
    }
}

static void test_schema_integer_means_no_fraction(void **state)
{
    (void)state;
    struct pipe_schema *s = compile("{\"properties\":{\"n\":{\"type\":\"integer\"}}}");
    ok(s, "{\"event\":\"t\",\"n\":1.0}");
    ok(s, "{\"event\":\"t\",\"n\":1e2}");
    ok(s, "{\"event\":\"t\",\"n\":123456789012345678901234567890}");
    bad(s, "{\"event\":\"t\",\"n\":1.25e1}", "n: expected integer, got number");
    pipe_schema_free(s);
    s = compile("{\"properties\":{\"n\":{\"type\":\"number\"}}}");
    ok(s, "{\"event\":\"t\",\"n\":7}");
    pipe_schema_free(s);
}

static void test_schema_type_list_accepts_any_listed(void **state)
{
    (void)state;
    struct pipe_schema *s = compile("{\"properties\":{\"v\":{\"type\":[\"string\",\"null\"]}}}");
    ok(s, "{\"event\":\"t\",\"v\":null}");
    ok(s, "{\"event\":\"t\",\"v\":\"x\"}");
    bad(s, "{\"event\":\"t\",\"v\":[]}", "v: expected string or null, got array");
    pipe_schema_free(s);
}

static void test_schema_required_names_the_missing_member(void **state)
{
    (void)state;
    struct pipe_schema *s =
        compile("{\"required\":[\"user_id\",\"properties\"],"
                "\"properties\":{\"properties\":{\"required\":[\"b\",\"a\"]}}}");
    ok(s, "{\"event\":\"t\",\"user_id\":1,\"properties\":{\"a\":1,\"b\":2}}");
    bad(s, "{\"event\":\"t\",\"properties\":{\"a\":1,\"b\":2}}",
        "user_id: required property missing");
    /* document order: the inner object ends first */
    bad(s, "{\"event\":\"t\",\"properties\":{}}", "properties.b: required property missing");
    /* reported in the order "required" lists them */
    bad(s, "{\"event\":\"t\",\"user_id\":1,\"properties\":{}}",
        "properties.b: required property missing");
    bad(s, "{\"event\":\"t\",\"user_id\":1,\"properties\":{\"b\":null}}",
        "properties.a: required property missing");
    pipe_schema_free(s);
}

static void test_schema_properties_check_nested_members(void **state)
{
    (void)state;
    struct pipe_schema *s = compile("{\"properties\":{\"a\":{\"properties\":{\"b\":{\"properties\":"
                                    "{\"c\":{\"maximum\":1}}}}}}}");
    ok(s, "{\"event\":\"t\",\"a\":{\"b\":{\"c\":1,\"d\":99}}}");
    ok(s, "{\"event\":\"t\",\"a\":{\"x\":{\"c\":5}}}");
    bad(s, "{\"event\":\"t\",\"a\":{\"b\":{\"c\":2}}}", "a.b.c: above maximum 1");
    /* a member named with escapes is the same member */
    bad(s, "{\"event\":\"t\",\"a\":{\"\\u0062\":{\"c\":2}}}", "a.\\u0062.c: above maximum 1");
    pipe_schema_free(s);
}

static void test_schema_duplicate_members_are_each_checked(void **state)
{
    (void)state;
    struct pipe_schema *s =
        compile("{\"properties\":{\"p\":{\"properties\":{\"n\":{\"maximum\":5}}}}}");
    bad(s, "{\"event\":\"t\",\"p\":{\"n\":9,\"n\":1}}", "p.n: above maximum 5");
    bad(s, "{\"event\":\"t\",\"p\":{\"n\":1,\"n\":9}}", "p.n: above maximum 5");
    pipe_schema_free(s);
}

static void test_schema_additional_properties_false_allows_only_envelope(void **state)
{
    (void)state;
    struct pipe_schema *s = compile("{\"additionalProperties\":false,\"properties\":{\"p\":"
                                    "{\"additionalProperties\":false,\"properties\":{\"a\":{}}}}}");
    ok(s, "{\"event\":\"t\",\"id\":\"1\",\"ts\":1,\"received_at\":\"x\",\"channel\":\"web\","
          "\"schema_version\":1,\"p\":{\"a\":1}}");
    bad(s, "{\"event\":\"t\",\"q\":1}", "q: property not allowed (additionalProperties is false)");
    /* envelope names are only special at the top */
    bad(s, "{\"event\":\"t\",\"p\":{\"a\":1,\"id\":2}}",
        "p.id: property not allowed (additionalProperties is false)");
    pipe_schema_free(s);
}

static void test_schema_additional_properties_schema_checks_undeclared(void **state)
{
    (void)state;
    struct pipe_schema *s = compile("{\"properties\":{\"tags\":{\"properties\":{\"n\":"
                                    "{\"type\":\"integer\"}},\"additionalProperties\":"
                                    "{\"type\":\"string\"}}}}");
    ok(s, "{\"event\":\"t\",\"tags\":{\"n\":1,\"a\":\"x\",\"b\":\"y\"}}");
    bad(s, "{\"event\":\"t\",\"tags\":{\"n\":1,\"a\":2}}", "tags.a: expected string, got number");
    pipe_schema_free(s);
    s = compile("{\"additionalProperties\":true,\"properties\":{\"a\":{}}}");
    ok(s, "{\"event\":\"t\",\"zzz\":1}");
    pipe_schema_free(s);
}

static void test_schema_enum_compares_values(void **state)
{
    (void)state;
    struct pipe_schema *s = compile("{\"properties\":{\"v\":{\"enum\":[\"café\",2,true,null,"
                                    "{\"k\":[1]},[1,2]]}}}");
    ok(s, "{\"event\":\"t\",\"v\":\"café\"}");
    ok(s, "{\"event\":\"t\",\"v\":\"caf\\u00e9\"}");
    ok(s, "{\"event\":\"t\",\"v\":2.0}");
    ok(s, "{\"event\":\"t\",\"v\":true}");
    ok(s, "{\"event\":\"t\",\"v\":null}");
    ok(s, "{\"event\":\"t\",\"v\":{\"k\":[1]}}");
    ok(s, "{\"event\":\"t\",\"v\":[1,2]}");
    const char *no[] = {"\"cafe\"", "3", "false", "{\"k\":[2]}", "[2,1]", "\"2\""};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        char ev[100];
        snprintf(ev, sizeof ev, "{\"event\":\"t\",\"v\":%s}", no[i]);
        bad(s, ev, "v: not one of the allowed values");
    }
    pipe_schema_free(s);
}

static void test_schema_minimum_maximum_are_inclusive(void **state)
{
    (void)state;
    struct pipe_schema *s =
        compile("{\"properties\":{\"a\":{\"minimum\":0,\"maximum\":1e9},\"b\":{\"minimum\":0.5,"
                "\"maximum\":100.0}}}");
    ok(s, "{\"event\":\"t\",\"a\":0,\"b\":0.5}");
    ok(s, "{\"event\":\"t\",\"a\":1000000000,\"b\":100}");
    bad(s, "{\"event\":\"t\",\"a\":-0.001}", "a: below minimum 0");
    bad(s, "{\"event\":\"t\",\"a\":1000000001}", "a: above maximum 1e9");
    bad(s, "{\"event\":\"t\",\"b\":0.49}", "b: below minimum 0.5");
    bad(s, "{\"event\":\"t\",\"b\":1e3}", "b: above maximum 100");
    /* bounds apply to numbers only */
    ok(s, "{\"event\":\"t\",\"a\":\"-5\"}");
    pipe_schema_free(s);
}

static void test_schema_lengths_count_code_points(void **state)
{
    (void)state;
    struct pipe_schema *s = compile("{\"properties\":{\"s\":{\"minLength\":2,\"maxLength\":3}}}");
    ok(s, "{\"event\":\"t\",\"s\":\"ab\"}");
    ok(s, "{\"event\":\"t\",\"s\":\"東京都\"}");            /* 9 bytes, 3 code points */
    ok(s, "{\"event\":\"t\",\"s\":\"\\u00e9\\n\"}");        /* escapes count once */
    ok(s, "{\"event\":\"t\",\"s\":\"\\ud83d\\ude00!\"}");   /* a surrogate pair is one */
    ok(s, "{\"event\":\"t\",\"s\":\"\xf0\x9f\x98\x80!\"}"); /* 4-byte UTF-8 is one */
    bad(s, "{\"event\":\"t\",\"s\":\"a\"}", "s: shorter than minLength 2");
    bad(s, "{\"event\":\"t\",\"s\":\"\\ud83d\\ude00\"}", "s: shorter than minLength 2");
    bad(s, "{\"event\":\"t\",\"s\":\"abcd\"}", "s: longer than maxLength 3");
    bad(s, "{\"event\":\"t\",\"s\":\"東京都府\"}", "s: longer than maxLength 3");
    ok(s, "{\"event\":\"t\",\"s\":12345}"); /* lengths apply to strings only */
    pipe_schema_free(s);
}

static void test_schema_pattern_is_unanchored_pcre2_on_decoded_text(void **state)
{
    (void)state;
    struct pipe_schema *s = compile("{\"properties\":{\"a\":{\"pattern\":\"b+\"},"
                                    "\"z\":{\"pattern\":\"^\\\\p{L}{2}$\"}}}");
    ok(s, "{\"event\":\"t\",\"a\":\"abbc\"}");
    ok(s, "{\"event\":\"t\",\"a\":\"\\u0062\"}");
    ok(s, "{\"event\":\"t\",\"z\":\"東京\"}");
    bad(s, "{\"event\":\"t\",\"a\":\"ac\"}", "a: does not match pattern b+");
    bad(s, "{\"event\":\"t\",\"z\":\"東京都\"}", "z: does not match pattern ^\\p{L}{2}$");
    ok(s, "{\"event\":\"t\",\"a\":5}"); /* patterns apply to strings only */
    pipe_schema_free(s);
}

static void test_schema_pattern_backtracking_is_bounded(void **state)
{
    (void)state;
    struct pipe_schema *s = compile("{\"properties\":{\"a\":{\"pattern\":\"^(a|a)+$\"}}}");
    char ev[200];
    snprintf(ev, sizeof ev, "{\"event\":\"t\",\"a\":\"%s!\"}",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    time_t t0 = time(NULL);
    struct outcome o;
    assert_int_equal(apply(s, ev, &o), PIPE_REASON_SCHEMA_VIOLATION);
    assert_true(time(NULL) - t0 < 3);
    assert_non_null(strstr(o.message, "a: "));
    pipe_schema_free(s);
}

static void test_schema_items_checks_every_element(void **state)
{
    (void)state;
    struct pipe_schema *s =
        compile("{\"properties\":{\"l\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
                "\"required\":[\"k\"],\"properties\":{\"k\":{\"type\":\"string\"}}}}}}");
    ok(s, "{\"event\":\"t\",\"l\":[]}");
    ok(s, "{\"event\":\"t\",\"l\":[{\"k\":\"a\"},{\"k\":\"b\",\"x\":1}]}");
    bad(s, "{\"event\":\"t\",\"l\":[{\"k\":\"a\"},{\"k\":1}]}",
        "l[1].k: expected string, got number");
    bad(s, "{\"event\":\"t\",\"l\":[{\"k\":\"a\"},{},{}]}", "l[1].k: required property missing");
    bad(s, "{\"event\":\"t\",\"l\":[{\"k\":\"a\"},5]}", "l[1]: expected object, got number");
    pipe_schema_free(s);
}

static void test_schema_default_fills_missing_member_of_present_object(void **state)
{
    (void)state;
    struct pipe_schema *s =
        compile("{\"properties\":{\"p\":{\"properties\":{\"a\":{\"default\":1},\"b\":{},"
                "\"c\":{\"default\":{\"x\":[0.1,\"q\\\"\"]}},\"\\\"odd\":{\"default\":true}}},"
                "\"n\":{\"type\":\"integer\",\"default\":0}}}");
    struct outcome o;
    apply(s, "{\"event\":\"t\",\"p\":{\"b\":2}}", &o);
    assert_true(o.changed);
    assert_string_equal(o.out,
                        "{\"event\":\"t\",\"p\":{\"b\":2,\"a\":1,\"c\":{\"x\":[0.1,\"q\\\"\"]},"
                        "\"\\\"odd\":true},\"n\":0}");
    apply(s, "{\"event\":\"t\",\"p\":{}}", &o);
    assert_string_equal(o.out, "{\"event\":\"t\",\"p\":{\"a\":1,\"c\":{\"x\":[0.1,\"q\\\"\"]},"
                               "\"\\\"odd\":true},\"n\":0}");
    /* present members keep their values; no object, no defaults inside it */
    apply(s, "{\"event\":\"t\",\"n\":5}", &o);
    assert_false(o.changed);
    apply(s, "{\"event\":\"t\",\"p\":{\"a\":null,\"c\":1,\"\\\"odd\":0},\"n\":5}", &o);
    assert_false(o.changed);
    pipe_schema_free(s);
}

static void test_schema_default_satisfies_required(void **state)
{
    (void)state;
    struct pipe_schema *s =
        compile("{\"required\":[\"plan\"],\"properties\":{\"plan\":{\"default\":\"free\"}}}");
    struct outcome o;
    assert_int_equal(apply(s, "{\"event\":\"t\"}", &o), PIPE_REASON_OK);
    assert_string_equal(o.out, "{\"event\":\"t\",\"plan\":\"free\"}");
    pipe_schema_free(s);
}

static void test_schema_redact_remove_keeps_commas_right(void **state)
{
    (void)state;
    struct pipe_schema *s = compile("{\"properties\":{\"p\":{\"properties\":{"
                                    "\"a\":{\"redact\":\"remove\"},\"b\":{\"redact\":\"remove\"},"
                                    "\"c\":{\"redact\":\"remove\"}}}}}");
    static const char *const cases[][2] = {
        {"{\"a\":1}", "{}"},
        {"{\"a\":1,\"x\":2}", "{\"x\":2}"},
        {"{\"x\":2,\"a\":1}", "{\"x\":2}"},
        {"{\"x\":2,\"a\":1,\"y\":3}", "{\"x\":2,\"y\":3}"},
        {"{\"a\":1,\"b\":{\"q\":1},\"c\":[1,2]}", "{}"},
        {"{\"a\":1,\"b\":2,\"x\":3,\"c\":4,\"y\":5}", "{\"x\":3,\"y\":5}"},
        {"{\"x\":1,\"a\":1,\"b\":2,\"y\":5,\"c\":4}", "{\"x\":1,\"y\":5}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char ev[200], want[200];
        struct outcome o;
        snprintf(ev, sizeof ev, "{\"event\":\"t\",\"p\":%s,\"z\":0}", cases[i][0]);
        snprintf(want, sizeof want, "{\"event\":\"t\",\"p\":%s,\"z\":0}", cases[i][1]);
        assert_int_equal(apply(s, ev, &o), PIPE_REASON_OK);
        assert_true(o.changed);
        assert_string_equal(o.out, want);
    }
    struct outcome o;
    apply(s, "{\"event\":\"t\",\"p\":{\"x\":1}}", &o);
    assert_false(o.changed); /* nothing to redact: the bytes stay as they were */
    pipe_schema_free(s);
}

static void test_schema_redact_in_array_elements_and_with_defaults(void **state)
{
    (void)state;
    struct pipe_schema *s = compile(
        "{\"properties\":{\"l\":{\"items\":{\"properties\":{\"pii\":{\"redact\":\"remove\"},"
        "\"d\":{\"default\":0}}}}}}");
    struct outcome o;
    apply(s, "{\"event\":\"t\",\"l\":[{\"pii\":\"x\"},{\"k\":1,\"pii\":\"y\",\"d\":3}]}", &o);
    assert_string_equal(o.out, "{\"event\":\"t\",\"l\":[{\"d\":0},{\"k\":1,\"d\":3}]}");
    pipe_schema_free(s);
}

static void test_schema_redact_hash_is_keyed_blake2b_hex(void **state)
{
    (void)state;
    const char *doc = "{\"properties\":{\"e\":{\"redact\":\"hash\"},\"o\":{\"redact\":\"hash\","
                      "\"properties\":{\"inner\":{\"redact\":\"remove\"}}}}}";
    char err[300];
    struct pipe_schema *a = compile(doc), *b = compile_with(doc, &key_b, err, sizeof err);
    assert_non_null(b);
    struct outcome o1, o2, o3, o4;
    apply(a, "{\"event\":\"t\",\"e\":\"ann@example.com\"}", &o1);
    apply(a, "{\"event\":\"t\",\"e\":\"ann\\u0040example.com\"}", &o2);
    apply(b, "{\"event\":\"t\",\"e\":\"ann@example.com\"}", &o3);
    apply(a, "{\"event\":\"t\",\"e\":\"bob@example.com\"}", &o4);
    json_t *j = json_loads(o1.out, 0, NULL);
    const char *h = json_string_value(json_object_get(j, "e"));
    assert_non_null(h);
    assert_int_equal(strlen(h), PIPE_SCHEMA_HASH_HEX);
    assert_int_equal(strspn(h, "0123456789abcdef"), PIPE_SCHEMA_HASH_HEX);
    json_decref(j);
    assert_string_equal(o1.out, o2.out);     /* escaping does not change it */
    assert_string_not_equal(o1.out, o3.out); /* another key, another hash */
    assert_string_not_equal(o1.out, o4.out); /* another value, another hash */
    /* non-strings are hashed from their compact text; the whole value goes */
    apply(a, "{\"event\":\"t\",\"o\":{\"inner\":1,\"x\":2}}", &o1);
    assert_null(strstr(o1.out, "inner"));
    assert_int_equal(strlen(o1.out), strlen("{\"event\":\"t\",\"o\":\"\"}") + 32);
    pipe_schema_free(a);
    pipe_schema_free(b);
}

static void test_schema_violation_message_never_holds_the_value(void **state)
{
    (void)state;
    struct pipe_schema *s =
        compile("{\"properties\":{\"email\":{\"pattern\":\"^x$\",\"maxLength\":3,"
                "\"enum\":[\"x\"]},\"n\":{\"maximum\":1}}}");
    struct outcome o;
    apply(s, "{\"event\":\"t\",\"email\":\"secret@example.com\"}", &o);
    assert_null(strstr(o.message, "secret"));
    apply(s, "{\"event\":\"t\",\"email\":\"sec\"}", &o);
    assert_null(strstr(o.message, "sec\""));
    apply(s, "{\"event\":\"t\",\"n\":12345}", &o);
    assert_null(strstr(o.message, "12345"));
    pipe_schema_free(s);
}

static void test_schema_annotations_are_ignored(void **state)
{
    (void)state;
    struct pipe_schema *s = compile("{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\","
                                    "\"$id\":\"x\",\"title\":\"T\",\"description\":\"D\","
                                    "\"properties\":{\"a\":{\"description\":\"d\"}}}");
    ok(s, "{\"event\":\"t\",\"a\":1}");
    assert_string_equal(pipe_schema_event(s), "t");
    assert_int_equal(pipe_schema_version(s), 1);
    assert_string_equal(pipe_schema_file(s), "t/1.json");
    assert_non_null(json_object_get(pipe_schema_doc(s), "title"));
    assert_false(pipe_schema_redacts(s));
    pipe_schema_free(s);
}

static void test_schema_malformed_input_is_a_parse_error(void **state)
{
    (void)state;
    struct pipe_schema *s = compile("{\"properties\":{\"a\":{\"properties\":{\"b\":{}}}}}");
    struct pipe_buf out;
    struct pipe_schema_result r;
    pipe_buf_init(&out, 1 << 20);
    const char *bad_inputs[] = {
        "", "[]", "{\"a\":{\"b\":1}", "{\"a\":{\"b\"", "{\"a\":\"x}", "{\"a\":{1:2}}"};
    for (size_t i = 0; i < sizeof bad_inputs / sizeof *bad_inputs; i++)
        assert_int_equal(pipe_schema_apply(s, ck, bad_inputs[i], strlen(bad_inputs[i]), &out, &r),
                         PIPE_EPARSE);
    assert_int_equal(out.len, 0);
    pipe_buf_cleanup(&out);
    pipe_schema_free(s);
}

/* ---- load errors ---- */

static void expect_load_error(const char *doc, const char *opts_key, const char *want)
{
    char err[512];
    const struct pipe_schema_opts *o = opts_key ? &key_a : NULL;
    struct pipe_schema *s = compile_with(doc, o, err, sizeof err);
    if (s != NULL)
        fail_msg("expected %s to fail to load", doc);
    if (strstr(err, want) == NULL)
        fail_msg("load error \"%s\" does not contain \"%s\"", err, want);
    assert_true(strncmp(err, "t/1.json: ", 10) == 0);
}

static void test_schema_every_load_error_names_file_and_path(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"{\"properties\":{\"amount\":{\"maxValue\":5}}}",
         "t/1.json: amount: unknown keyword \"maxValue\""},
        {"{\"format\":\"email\"}", "(root): unknown keyword \"format\""},
        {"[]", "(root): a schema must be a JSON object"},
        {"{\"properties\":{\"a\":true}}", "a: a schema must be a JSON object"},
        {"{\"type\":\"string\"}", "its \"type\" must be object"},
        {"{\"properties\":{\"a\":{\"type\":\"text\"}}}", "a: \"type\" must be one of"},
        {"{\"properties\":{\"a\":{\"type\":[]}}}", "\"type\" must be one of"},
        {"{\"properties\":{\"a\":{\"type\":[\"string\",\"string\"]}}}", "unknown or repeated"},
        {"{\"properties\":{\"a\":{\"type\":5}}}", "\"type\" must be one of"},
        {"{\"required\":\"a\"}", "\"required\" must be an array"},
        {"{\"required\":[1]}", "\"required\" must be an array"},
        {"{\"required\":[\"a\",\"a\"]}", "names \"a\" twice"},
        {"{\"properties\":[]}", "\"properties\" must be an object"},
        {"{\"additionalProperties\":1}", "must be a boolean or a schema"},
        {"{\"properties\":{\"a\":{\"enum\":[]}}}", "\"enum\" must be a non-empty array"},
        {"{\"properties\":{\"a\":{\"enum\":\"x\"}}}", "\"enum\" must be a non-empty array"},
        {"{\"properties\":{\"a\":{\"minimum\":\"1\"}}}", "\"minimum\" must be a number"},
        {"{\"properties\":{\"a\":{\"maximum\":null}}}", "\"maximum\" must be a number"},
        {"{\"properties\":{\"a\":{\"minimum\":2,\"maximum\":1}}}", "\"minimum\" is above"},
        {"{\"properties\":{\"a\":{\"minLength\":-1}}}", "\"minLength\" must be a non-negative"},
        {"{\"properties\":{\"a\":{\"maxLength\":1.5}}}", "\"maxLength\" must be a non-negative"},
        {"{\"properties\":{\"a\":{\"minLength\":3,\"maxLength\":2}}}", "\"minLength\" is above"},
        {"{\"properties\":{\"a\":{\"pattern\":\"(\"}}}", "a: \"pattern\" does not compile"},
        {"{\"properties\":{\"a\":{\"pattern\":1}}}", "\"pattern\" must be a string"},
        {"{\"properties\":{\"a\":{\"items\":[{}]}}}", "\"items\" must be one schema"},
        {"{\"properties\":{\"a\":{\"items\":{\"bogus\":1}}}}", "a[]: unknown keyword \"bogus\""},
        {"{\"additionalProperties\":{\"bogus\":1}}", "*: unknown keyword \"bogus\""},
        {"{\"default\":{}}", "\"default\" applies only to a member"},
        {"{\"properties\":{\"a\":{\"items\":{\"default\":1}}}}",
         "\"default\" applies only to a member"},
        {"{\"properties\":{\"a\":{\"type\":\"integer\",\"default\":\"x\"}}}",
         "a: the \"default\" does not pass its own schema: expected integer, got string"},
        {"{\"properties\":{\"a\":{\"maximum\":3,\"default\":4}}}", "above maximum 3"},
        {"{\"redact\":\"remove\"}", "\"redact\" applies only to a member"},
        {"{\"additionalProperties\":{\"redact\":\"remove\"}}", "\"redact\" applies only"},
        {"{\"properties\":{\"a\":{\"redact\":\"mask\"}}}", "\"redact\" must be \"remove\" or"},
        {"{\"properties\":{\"a\":{\"redact\":\"remove\",\"default\":1}}}", "cannot also be"},
        {"{\"properties\":{\"ts\":{\"redact\":\"remove\"}}}", "ts: an envelope field cannot"},
        {"{\"properties\":{\"a\":{\"description\":5}}}", "\"description\" must be a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_load_error(cases[i][0], "key", cases[i][1]);
    expect_load_error("{\"properties\":{\"a\":{\"redact\":\"hash\"}}}", NULL,
                      "a: redact \"hash\" needs a key: configure redact_key_file");
}

static void test_schema_load_rejects_deep_nesting_and_bad_keys(void **state)
{
    (void)state;
    char doc[4096] = "";
    for (int i = 0; i < 70; i++)
        strcat(doc, "{\"properties\":{\"a\":");
    strcat(doc, "{}");
    for (int i = 0; i < 70; i++)
        strcat(doc, "}}");
    expect_load_error(doc, "key", "nest deeper than");
    json_t *j = json_loads("{}", 0, NULL);
    struct pipe_schema *s = NULL;
    char err[300];
    struct pipe_schema_opts short_key = {(const unsigned char *)"short", 5, false};
    assert_int_equal(pipe_schema_new(j, "t", 1, "x.json", &short_key, &s, err, sizeof err),
                     PIPE_EINVAL);
    assert_non_null(strstr(err, "16 to 64 bytes"));
    assert_int_equal(pipe_schema_new(j, "t", 0, "x.json", NULL, &s, err, sizeof err), PIPE_EINVAL);
    assert_int_equal(pipe_schema_new(j, "", 1, "x.json", NULL, &s, err, sizeof err), PIPE_EINVAL);
    assert_null(s);
    json_decref(j);
}

/* ---- sets ---- */

static void put(const char *dir, const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0755);
    *slash = '/';
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
}

static void test_schema_set_loads_layout_and_orders_versions(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("schema-set");
    put(dir, "b/2.json", "{\"title\":\"b2\"}");
    put(dir, "b/10.json", "{\"title\":\"b10\"}");
    put(dir, "a/1.json", "{}");
    put(dir, "README.md", "ignored");
    put(dir, "a/notes.txt", "ignored");
    put(dir, "a/01.json", "{\"bogus\":1}"); /* not <N>.json: ignored, not an error */
    put(dir, "a/0.json", "{\"bogus\":1}");
    put(dir, "bad name/1.json", "{\"bogus\":1}");
    put(dir, ".hidden/1.json", "{\"bogus\":1}");
    struct pipe_schema_set *set = NULL;
    char err[512];
    assert_int_equal(pipe_schema_set_load(dir, NULL, &set, err, sizeof err), 0);
    assert_int_equal(pipe_schema_set_count(set), 3);
    const char *want[] = {"a", "b", "b"};
    int want_v[] = {1, 2, 10};
    for (size_t i = 0; i < 3; i++) {
        const struct pipe_schema *s = pipe_schema_set_at(set, i);
        assert_string_equal(pipe_schema_event(s), want[i]);
        assert_int_equal(pipe_schema_version(s), want_v[i]);
    }
    assert_null(pipe_schema_set_at(set, 3));
    const struct pipe_schema *s;
    assert_int_equal(pipe_schema_lookup(set, "b", 1, 0, &s), 0);
    assert_int_equal(pipe_schema_version(s), 10);
    assert_int_equal(pipe_schema_lookup(set, "b", 1, 2, &s), 0);
    assert_int_equal(pipe_schema_version(s), 2);
    assert_int_equal(pipe_schema_lookup(set, "b", 1, 3, &s), PIPE_EINVAL);
    assert_int_equal(pipe_schema_lookup(set, "c", 1, 0, &s), PIPE_ENOTFOUND);
    assert_int_equal(pipe_schema_lookup(set, "ab", 1, 0, &s), 0); /* length-delimited */
    /* references: the set lives until the last one goes */
    assert_ptr_equal(pipe_schema_set_ref(set), set);
    pipe_schema_set_free(set);
    assert_int_equal(pipe_schema_set_count(set), 3);
    pipe_schema_set_free(set);
    pipe_schema_set_free(NULL);
    tu_rmrf(dir);
    free(dir);
}

static void test_schema_set_load_fails_whole_on_one_bad_file(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("schema-bad");
    struct pipe_schema_set *set = NULL;
    char err[512];
    put(dir, "a/1.json", "{}");
    put(dir, "z/1.json", "{\"properties\":{\"p\":{\"properties\":{\"amount\":{\"maxValue\":1}}}}}");
    assert_int_equal(pipe_schema_set_load(dir, NULL, &set, err, sizeof err), PIPE_EINVAL);
    assert_null(set);
    assert_non_null(strstr(err, "z/1.json: p.amount: unknown keyword \"maxValue\""));
    put(dir, "z/1.json", "{\"properties\": {\n  \"a\": }");
    assert_int_equal(pipe_schema_set_load(dir, NULL, &set, err, sizeof err), PIPE_EINVAL);
    assert_non_null(strstr(err, "z/1.json:2:"));
    put(dir, "z/1.json", "{\"title\":\"a\",\"title\":\"b\"}");
    assert_int_equal(pipe_schema_set_load(dir, NULL, &set, err, sizeof err), PIPE_EINVAL);
    assert_non_null(strstr(err, "duplicate"));
    put(dir, "z/1.json", "{\"properties\":{\"e\":{\"redact\":\"hash\"}}}");
    assert_int_equal(pipe_schema_set_load(dir, NULL, &set, err, sizeof err), PIPE_EINVAL);
    assert_non_null(strstr(err, "redact_key_file"));
    assert_int_equal(pipe_schema_set_load(dir, &key_a, &set, err, sizeof err), 0);
    pipe_schema_set_free(set);
    char missing[1024];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    set = NULL;
    assert_true(pipe_schema_set_load(missing, NULL, &set, err, sizeof err) < 0);
    assert_null(set);
    assert_non_null(strstr(err, "nope"));
    tu_rmrf(dir);
    free(dir);
}

/* The one loader's rules: strict (sluicectl) refuses what the filter
 * skips, both refuse a file over PIPE_SCHEMA_FILE_MAX, and a version above
 * PIPE_SCHEMA_MAX_VERSION is not a version. */
static void test_schema_set_load_strict_and_limits(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("schema-strict");
    struct pipe_schema_set *set = NULL;
    const struct pipe_schema_opts strict = {NULL, 0, true};
    char err[512];
    put(dir, "a/1.json", "{}");
    put(dir, "a/notes.txt", "not a schema, skipped in both modes");
    put(dir, "README.md", "skipped in both modes");
    assert_int_equal(pipe_schema_set_load(dir, &strict, &set, err, sizeof err), 0);
    assert_int_equal(pipe_schema_set_count(set), 1);
    pipe_schema_set_free(set);
    put(dir, "a/01.json", "{}");
    assert_int_equal(pipe_schema_set_load(dir, NULL, &set, err, sizeof err), 0);
    pipe_schema_set_free(set);
    set = NULL;
    assert_int_equal(pipe_schema_set_load(dir, &strict, &set, err, sizeof err), PIPE_EINVAL);
    assert_null(set);
    assert_non_null(strstr(err, "a/01.json: a schema file is named <N>.json"));
    char path[1024];
    snprintf(path, sizeof path, "%s/a/01.json", dir);
    unlink(path);
    put(dir, "bad name/1.json", "{}");
    assert_int_equal(pipe_schema_set_load(dir, &strict, &set, err, sizeof err), PIPE_EINVAL);
    assert_non_null(strstr(err, "bad name: not an event type"));
    snprintf(path, sizeof path, "%s/bad name", dir);
    tu_rmrf(path);
    /* 999999999 is the highest version; 1000000000.json is no version */
    assert_int_equal(pipe_schema_file_version("999999999.json"), PIPE_SCHEMA_MAX_VERSION);
    assert_int_equal(pipe_schema_file_version("1000000000.json"), 0);
    assert_int_equal(pipe_schema_file_version("0.json"), 0);
    assert_int_equal(pipe_schema_file_version("12.json.bak"), 0);
    put(dir, "a/1000000000.json", "{}");
    assert_int_equal(pipe_schema_set_load(dir, &strict, &set, err, sizeof err), PIPE_EINVAL);
    assert_non_null(strstr(err, "a/1000000000.json"));
    snprintf(path, sizeof path, "%s/a/1000000000.json", dir);
    unlink(path);
    /* one byte over the limit fails both modes, with one message */
    char *big = malloc(PIPE_SCHEMA_FILE_MAX + 2);
    assert_non_null(big);
    memset(big, ' ', PIPE_SCHEMA_FILE_MAX + 1);
    memcpy(big, "{}", 2);
    big[PIPE_SCHEMA_FILE_MAX + 1] = '\0';
    put(dir, "a/2.json", big);
    assert_int_equal(pipe_schema_set_load(dir, NULL, &set, err, sizeof err), PIPE_ETOOBIG);
    assert_non_null(strstr(err, "a/2.json: over 1 MiB"));
    big[PIPE_SCHEMA_FILE_MAX] = '\0'; /* exactly the limit loads */
    put(dir, "a/2.json", big);
    assert_int_equal(pipe_schema_set_load(dir, &strict, &set, err, sizeof err), 0);
    const struct pipe_schema *const *v;
    size_t n;
    assert_int_equal(pipe_schema_set_types(set), 1);
    v = pipe_schema_set_type(set, 0, &n);
    assert_int_equal(n, 2);
    assert_int_equal(pipe_schema_version(v[1]), 2);
    assert_null(pipe_schema_set_type(set, 1, &n));
    assert_int_equal(n, 0);
    assert_ptr_equal(pipe_schema_versions(set, "a", 1, &n), v);
    pipe_schema_set_free(set);
    free(big);
    tu_rmrf(dir);
    free(dir);
}

static void test_schema_empty_dir_is_an_empty_set(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("schema-empty");
    struct pipe_schema_set *set = NULL;
    char err[256];
    assert_int_equal(pipe_schema_set_load(dir, NULL, &set, err, sizeof err), 0);
    assert_int_equal(pipe_schema_set_count(set), 0);
    struct pipe_schema_result r;
    struct pipe_buf out;
    pipe_buf_init(&out, 1024);
    const char *ev = "{\"event\":\"a\"}";
    assert_int_equal(pipe_schema_check(set, ck, ev, strlen(ev), NULL, 0, &out, &r), 0);
    assert_int_equal(r.reason, PIPE_REASON_UNKNOWN_EVENT_TYPE);
    assert_int_equal(pipe_schema_check(NULL, ck, ev, strlen(ev), "a", 1, &out, &r), 0);
    assert_string_equal(r.message, "no schema for event type \"a\"");
    assert_int_equal(r.reason, PIPE_REASON_UNKNOWN_EVENT_TYPE);
    pipe_buf_cleanup(&out);
    pipe_schema_set_free(set);
    tu_rmrf(dir);
    free(dir);
}

/* ---- the corpus ---- */

static struct pipe_schema_set *corpus_set(void)
{
    struct pipe_schema_set *set = NULL;
    char err[512];
    if (pipe_schema_set_load(CORPUS "/set", &key_a, &set, err, sizeof err) < 0)
        fail_msg("corpus does not load: %s", err);
    return set;
}

static json_t *at_path(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save, *part = strtok_r(buf, ".", &save); part && j;
         part = strtok_r(NULL, ".", &save))
        j = json_object_get(j, part);
    return j;
}

/* run_case — one line of cases.ndjson through the filter's two steps. */
static void run_case(struct pipe_schema_set *set, json_t *c)
{
    const char *rule = json_string_value(json_object_get(c, "rule"));
    char *ev = json_dumps(json_object_get(c, "event"), JSON_COMPACT);
    struct pipe_event_ctx ctx = {"web", 1700000000000LL, 0, 0};
    struct pipe_event_result er;
    struct pipe_buf line, out;
    struct pipe_schema_result r;
    pipe_buf_init(&line, 1 << 20);
    pipe_buf_init(&out, 1 << 20);
    assert_int_equal(pipe_event_process(ev, strlen(ev), &ctx, &line, &er), 0);
    if (er.reason != PIPE_REASON_OK)
        fail_msg("%s: the envelope checks reject the case: %s", rule, er.message);
    /* both ways of naming the type must agree */
    struct pipe_schema_result r2;
    struct pipe_buf out2;
    pipe_buf_init(&out2, 1 << 20);
    assert_int_equal(pipe_schema_check(set, ck, line.data, line.len - 1, NULL, 0, &out2, &r2), 0);
    assert_int_equal(
        pipe_schema_check(set, ck, line.data, line.len - 1, er.event, er.event_len, &out, &r), 0);
    assert_int_equal(r.reason, r2.reason);
    assert_string_equal(r.message, r2.message);
    assert_int_equal(out.len, out2.len);
    pipe_buf_cleanup(&out2);
    if (strcmp(pipe_reason_code(r.reason), json_string_value(json_object_get(c, "reason"))) ||
        strcmp(r.message, json_string_value(json_object_get(c, "message"))))
        fail_msg("%s: got %s \"%s\"", rule, pipe_reason_code(r.reason), r.message);
    json_t *got = json_loadb(r.changed ? out.data : line.data, r.changed ? out.len : line.len - 1,
                             0, NULL),
           *in = json_object_get(c, "event");
    assert_non_null(got);
    if (json_is_true(json_object_get(c, "unchanged")) && r.changed)
        fail_msg("%s: rewritten though nothing should change: %s", rule, out.data);
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(c, "removed"), i, v)
        if (at_path(got, json_string_value(v)) != NULL)
            fail_msg("%s: %s is still there", rule, json_string_value(v));
    json_array_foreach (json_object_get(c, "hashed"), i, v) {
        const char *h = json_string_value(at_path(got, json_string_value(v)));
        if (h == NULL || strlen(h) != PIPE_SCHEMA_HASH_HEX ||
            json_equal(at_path(got, json_string_value(v)), at_path(in, json_string_value(v))))
            fail_msg("%s: %s is not hashed", rule, json_string_value(v));
    }
    const char *k;
    json_object_foreach (json_object_get(c, "set"), k, v)
        if (!json_equal(at_path(got, k), v))
            fail_msg("%s: %s is not as expected", rule, k);
    json_decref(got);
    pipe_buf_cleanup(&out);
    pipe_buf_cleanup(&line);
    free(ev);
}

static void test_schema_corpus_cases_pass_the_table(void **state)
{
    (void)state;
    struct pipe_schema_set *set = corpus_set();
    size_t len;
    char *text = tu_read_file(CORPUS "/cases.ndjson", &len);
    assert_non_null(text);
    int n = 0;
    for (char *save, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save), n++) {
        json_error_t je;
        json_t *c = json_loads(l, 0, &je);
        if (c == NULL)
            fail_msg("cases.ndjson line %d: %s", n + 1, je.text);
        run_case(set, c);
        json_decref(c);
    }
    assert_true(n >= 40);
    free(text);
    pipe_schema_set_free(set);
}

/* ---- redacting rejected records ---- */

static int redact(struct pipe_schema_set *set, const char *rec, char *out, size_t cap)
{
    struct pipe_buf b;
    pipe_buf_init(&b, 1 << 20);
    int rc = pipe_schema_redact_record(set, ck, rec, strlen(rec), &b);
    snprintf(out, cap, "%s", b.data ? b.data : "");
    if (rc == 0)
        assert_int_equal(b.len, 0);
    pipe_buf_cleanup(&b);
    return rc;
}

static void test_schema_redact_record_cleans_rejected_events(void **state)
{
    (void)state;
    struct pipe_schema_set *set = corpus_set();
    char out[2048];
    /* pretty-printed, with a ts the envelope rejects: still redacted */
    assert_int_equal(redact(set,
                            "{ \"event\": \"signup\", \"ts\": \"yesterday\",\n"
                            "  \"properties\": {\"phone\": \"+33\", \"email\": \"a@b.c\"} }",
                            out, sizeof out),
                     1);
    assert_null(strstr(out, "+33"));
    assert_null(strstr(out, "a@b.c"));
    assert_non_null(strstr(out, "\"ts\":\"yesterday\""));
    /* an unknown version gets the redactions of every version; the hash is
     * BLAKE2b-128 keyed (python: blake2b(b"x", key=..., digest_size=16)) */
    assert_int_equal(redact(set,
                            "{\"event\":\"checkout_completed\",\"schema_version\":7,"
                            "\"properties\":{\"card_last4\":\"4242\",\"email\":\"x\"}}",
                            out, sizeof out),
                     1);
    assert_string_equal(out, "{\"event\":\"checkout_completed\",\"schema_version\":7,"
                             "\"properties\":{\"email\":\"85dad5934f9b88fe914a7c88492497bd\"}}");
    /* version 1 has no redaction: named explicitly, nothing changes */
    assert_int_equal(redact(set,
                            "{\"event\":\"checkout_completed\",\"schema_version\":1,"
                            "\"properties\":{\"card_last4\":\"4242\"}}",
                            out, sizeof out),
                     0);
    /* a record that does not parse, a type without schema, a non-object */
    assert_int_equal(redact(set, "{\"event\":\"signup\",\"properties\":{\"phone\":", out, 256), 0);
    assert_int_equal(redact(set, "{\"event\":\"other\",\"phone\":\"1\"}", out, 256), 0);
    assert_int_equal(redact(set, "[1,2]", out, 256), 0);
    assert_int_equal(redact(NULL, "{\"event\":\"signup\"}", out, 256), 0);
    /* lenient: \u0000 and huge numbers are rejected at ingest, still redacted */
    assert_int_equal(redact(set,
                            "{\"event\":\"signup\",\"n\":1e999,\"properties\":"
                            "{\"phone\":\"0\\u0000\"}}",
                            out, sizeof out),
                     1);
    assert_null(strstr(out, "phone"));
    pipe_schema_set_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_type_checks_each_json_type),
        cmocka_unit_test(test_schema_integer_means_no_fraction),
        cmocka_unit_test(test_schema_type_list_accepts_any_listed),
        cmocka_unit_test(test_schema_required_names_the_missing_member),
        cmocka_unit_test(test_schema_properties_check_nested_members),
        cmocka_unit_test(test_schema_duplicate_members_are_each_checked),
        cmocka_unit_test(test_schema_additional_properties_false_allows_only_envelope),
        cmocka_unit_test(test_schema_additional_properties_schema_checks_undeclared),
        cmocka_unit_test(test_schema_enum_compares_values),
        cmocka_unit_test(test_schema_minimum_maximum_are_inclusive),
        cmocka_unit_test(test_schema_lengths_count_code_points),
        cmocka_unit_test(test_schema_pattern_is_unanchored_pcre2_on_decoded_text),
        cmocka_unit_test(test_schema_pattern_backtracking_is_bounded),
        cmocka_unit_test(test_schema_items_checks_every_element),
        cmocka_unit_test(test_schema_default_fills_missing_member_of_present_object),
        cmocka_unit_test(test_schema_default_satisfies_required),
        cmocka_unit_test(test_schema_redact_remove_keeps_commas_right),
        cmocka_unit_test(test_schema_redact_in_array_elements_and_with_defaults),
        cmocka_unit_test(test_schema_redact_hash_is_keyed_blake2b_hex),
        cmocka_unit_test(test_schema_violation_message_never_holds_the_value),
        cmocka_unit_test(test_schema_annotations_are_ignored),
        cmocka_unit_test(test_schema_malformed_input_is_a_parse_error),
        cmocka_unit_test(test_schema_every_load_error_names_file_and_path),
        cmocka_unit_test(test_schema_load_rejects_deep_nesting_and_bad_keys),
        cmocka_unit_test(test_schema_set_loads_layout_and_orders_versions),
        cmocka_unit_test(test_schema_set_load_fails_whole_on_one_bad_file),
        cmocka_unit_test(test_schema_set_load_strict_and_limits),
        cmocka_unit_test(test_schema_empty_dir_is_an_empty_set),
        cmocka_unit_test(test_schema_corpus_cases_pass_the_table),
        cmocka_unit_test(test_schema_redact_record_cleans_rejected_events),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
