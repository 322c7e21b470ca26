/* Unit tests for event: every reason code, the enrichment, derived ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/event.h"
#include "libpipe/keys.h"

#define RECEIVED 1700000000123LL /* 2023-11-14T22:13:20.123Z */

static const struct pipe_event_ctx ctx = {"web", RECEIVED, 0, 0};

/* Processes s under c; on success copies the line (without '\n') to line. */
static enum pipe_reason run_ctx(const char *s, size_t n, const struct pipe_event_ctx *c, char *line,
                                size_t cap, struct pipe_event_result *res)
{
    struct pipe_buf b;
    struct pipe_event_result r;
    pipe_buf_init(&b, 1 << 20);
    pipe_buf_append_str(&b, "old\n");
    assert_int_equal(pipe_event_process(s, n, c, &b, res ? res : &r), 0);
    struct pipe_event_result *x = res ? res : &r;
    if (x->reason == PIPE_REASON_OK) {
        assert_int_equal(b.data[b.len - 1], '\n');
        assert_null(memchr(b.data + 4, '\n', b.len - 5));
        assert_string_equal(x->message, "");
        if (line)
            snprintf(line, cap, "%.*s", (int)(b.len - 5), b.data + 4);
    } else {
        assert_int_equal(b.len, 4); /* rejected: output untouched */
        assert_string_equal(b.data, "old\n");
        assert_true(strlen(x->message) > 0);
    }
    pipe_buf_cleanup(&b);
    return x->reason;
}

static enum pipe_reason run(const char *s)
{
    return run_ctx(s, strlen(s), &ctx, NULL, 0, NULL);
}

static void test_event_reason_codes_are_stable(void **state)
{
    (void)state;
    static const char *const want[] = {"ok",
                                       "not_json",
                                       "not_object",
                                       "missing_event",
                                       "bad_event_type",
                                       "bad_id",
                                       "bad_ts",
                                       "too_large",
                                       "invalid_utf8",
                                       "too_deep",
                                       "bad_number",
                                       "bad_string",
                                       "duplicate_field",
                                       "schema_violation",
                                       "unknown_schema_version",
                                       "unknown_event_type"};
    for (int i = 0; i < PIPE_REASON__COUNT; i++)
        assert_string_equal(pipe_reason_code((enum pipe_reason)i), want[i]);
    assert_string_equal(pipe_reason_code(PIPE_REASON__COUNT), "unknown");
}

static void test_event_enriches_valid_event_in_one_line(void **state)
{
    (void)state;
    char line[512];
    struct pipe_event_result r;
    const char *in = "{ \"event\" : \"page.view\",\n \"id\": \"abc\", \"ts\": 1700000000000,"
                     " \"properties\": { \"path\": \"/a b\" } }";
    assert_int_equal(run_ctx(in, strlen(in), &ctx, line, sizeof line, &r), PIPE_REASON_OK);
    assert_string_equal(line, "{\"event\":\"page.view\",\"id\":\"abc\",\"ts\":1700000000000,"
                              "\"properties\":{\"path\":\"/a b\"},"
                              "\"received_at\":\"2023-11-14T22:13:20.123Z\",\"channel\":\"web\"}");
    assert_int_equal(r.time_ms, 1700000000000LL);
}

static void test_event_result_points_at_event_and_id_in_output(void **state)
{
    (void)state;
    struct pipe_buf b;
    struct pipe_event_result r;
    const char *in = "{\"id\":\"x\\\"1\",\"event\":\"signup\"}";
    pipe_buf_init(&b, 4096);
    assert_int_equal(pipe_event_process(in, strlen(in), &ctx, &b, &r), 0);
    assert_int_equal(r.reason, PIPE_REASON_OK);
    assert_int_equal(r.event_len, 6);
    assert_memory_equal(r.event, "signup", 6);
    assert_int_equal(r.id_len, 4);
    assert_memory_equal(r.id, "x\\\"1", 4);
    assert_true(r.event > b.data && r.event < b.data + b.len);
    assert_int_equal(r.time_ms, RECEIVED);
    pipe_buf_cleanup(&b);
}

static void test_event_drops_client_received_at_and_channel(void **state)
{
    (void)state;
    char line[512];
    const char *tail = "\"received_at\":\"2023-11-14T22:13:20.123Z\",\"channel\":\"web\"}";
    char want[512];
    const char *in1 =
        "{\"received_at\":\"1999\",\"event\":\"a\",\"id\":\"1\",\"channel\":\"evil\"}";
    assert_int_equal(run_ctx(in1, strlen(in1), &ctx, line, sizeof line, NULL), PIPE_REASON_OK);
    snprintf(want, sizeof want, "{\"event\":\"a\",\"id\":\"1\",%s", tail);
    assert_string_equal(line, want);
    /* Escaped spellings are the same key. */
    const char *in2 =
        "{\"event\":\"a\",\"id\":\"1\",\"chann\\u0065l\":1,\"received_at\":{\"x\":[]}}";
    assert_int_equal(run_ctx(in2, strlen(in2), &ctx, line, sizeof line, NULL), PIPE_REASON_OK);
    assert_string_equal(line, want);
    /* Nested ones are the event's own data. */
    const char *in3 = "{\"event\":\"a\",\"id\":\"1\",\"p\":{\"channel\":\"c\"}}";
    assert_int_equal(run_ctx(in3, strlen(in3), &ctx, line, sizeof line, NULL), PIPE_REASON_OK);
    snprintf(want, sizeof want, "{\"event\":\"a\",\"id\":\"1\",\"p\":{\"channel\":\"c\"},%s", tail);
    assert_string_equal(line, want);
}

static void test_event_channel_is_escaped_and_null_channel_is_empty(void **state)
{
    (void)state;
    char line[512];
    struct pipe_event_ctx c = {"we\"b\\\n", RECEIVED, 0, 0};
    assert_int_equal(run_ctx("{\"event\":\"a\",\"id\":\"1\"}", 22, &c, line, sizeof line, NULL), 0);
    assert_non_null(strstr(line, "\"channel\":\"we\\\"b\\\\\\u000a\"}"));
    c.channel = NULL;
    assert_int_equal(run_ctx("{\"event\":\"a\",\"id\":\"1\"}", 22, &c, line, sizeof line, NULL), 0);
    assert_non_null(strstr(line, "\"channel\":\"\"}"));
}

static void get_id(const char *in, const struct pipe_event_ctx *c, char id[64])
{
    struct pipe_event_result r;
    char line[1024];
    assert_int_equal(run_ctx(in, strlen(in), c, line, sizeof line, &r), PIPE_REASON_OK);
    snprintf(id, 64, "%.*s", (int)r.id_len, r.id);
    char want[80];
    snprintf(want, sizeof want, "\"id\":\"%s\"", id);
    assert_non_null(strstr(line, want));
}

static void test_event_derives_deterministic_id_when_absent(void **state)
{
    (void)state;
    char a[64], b[64], c[64], d[64], e[64], f[64];
    struct pipe_event_ctx later = ctx, ios = ctx;
    later.received_ms += 5000;
    ios.channel = "ios";
    get_id("{\"event\":\"a\",\"x\":1}", &ctx, a);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    get_id(" {\"event\" : \"a\",\n\"x\":1 }", &later, b);               /* retry, reformatted */
    get_id("{\"event\":\"a\",\"x\":1,\"received_at\":\"z\"}", &ctx, c); /* overwritten field */
    get_id("{\"event\":\"a\",\"x\":2}", &ctx, d);                       /* other data */
    get_id("{\"event\":\"a\",\"x\":1}", &ios, e);                       /* other channel */
    get_id("{\"x\":1,\"event\":\"a\"}", &ctx, f);                       /* other order */
    assert_string_equal(a, b);
    assert_string_equal(a, c);
    assert_string_not_equal(a, d);
    assert_string_not_equal(a, e);
    assert_string_not_equal(a, f);
}

static void test_event_empty_object_and_all_members_removed_are_missing_event(void **state)
{
    (void)state;
    assert_int_equal(run("{}"), PIPE_REASON_MISSING_EVENT);
    assert_int_equal(run(" { } "), PIPE_REASON_MISSING_EVENT);
    assert_int_equal(run("{\"channel\":1,\"received_at\":2}"), PIPE_REASON_MISSING_EVENT);
    assert_int_equal(run("{\"Event\":\"a\"}"), PIPE_REASON_MISSING_EVENT);
    char line[512];
    const char *in = "{\"channel\":1,\"event\":\"a\",\"received_at\":2}";
    assert_int_equal(run_ctx(in, strlen(in), &ctx, line, sizeof line, NULL), PIPE_REASON_OK);
    assert_memory_equal(line, "{\"event\":\"a\",\"id\":\"", 19);
}

static void test_event_rejects_malformed_json_with_reason_and_offset(void **state)
{
    (void)state;
    struct pipe_event_result r;
    const char *in = "{\"event\":\"a\",}";
    assert_int_equal(run_ctx(in, strlen(in), &ctx, NULL, 0, &r), PIPE_REASON_NOT_JSON);
    assert_non_null(strstr(r.message, "at byte 13"));
    assert_int_equal(run(""), PIPE_REASON_NOT_JSON);
    assert_int_equal(run("{\"event\":\"a\"} {}"), PIPE_REASON_NOT_JSON);
    assert_int_equal(run("{\"event\":\"a\""), PIPE_REASON_NOT_JSON);
    assert_int_equal(run("{\"event\":\"a\",\"x\":\"\xc0\xaf\"}"), PIPE_REASON_INVALID_UTF8);
    assert_int_equal(run("{\"event\":\"a\",\"x\":\"\\ud800\"}"), PIPE_REASON_BAD_STRING);
    assert_int_equal(run("{\"event\":\"a\",\"x\":\"\\u0000\"}"), PIPE_REASON_BAD_STRING);
    assert_int_equal(run("{\"event\":\"a\",\"x\":\"a\x01\"}"), PIPE_REASON_BAD_STRING);
    assert_int_equal(run("{\"event\":\"a\",\"x\":-1e309}"), PIPE_REASON_BAD_NUMBER);
    assert_int_equal(run("{\"event\":\"a\",\"x\":123456789012345678901234567890}"), PIPE_REASON_OK);
}

static void test_event_rejects_non_objects(void **state)
{
    (void)state;
    assert_int_equal(run("[{\"event\":\"a\"}]"), PIPE_REASON_NOT_OBJECT);
    assert_int_equal(run("\"event\""), PIPE_REASON_NOT_OBJECT);
    assert_int_equal(run("42"), PIPE_REASON_NOT_OBJECT);
    assert_int_equal(run("null"), PIPE_REASON_NOT_OBJECT);
}

static void test_event_checks_depth_against_ctx(void **state)
{
    (void)state;
    struct pipe_event_ctx c = ctx;
    c.max_depth = 3;
    const char *ok = "{\"event\":\"a\",\"id\":\"1\",\"p\":{\"q\":[1]}}";
    const char *deep = "{\"event\":\"a\",\"id\":\"1\",\"p\":{\"q\":[[1]]}}";
    assert_int_equal(run_ctx(ok, strlen(ok), &c, NULL, 0, NULL), PIPE_REASON_OK);
    assert_int_equal(run_ctx(deep, strlen(deep), &c, NULL, 0, NULL), PIPE_REASON_TOO_DEEP);
    /* Default 32: the object plus 31 levels. */
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"event\":\"a\",\"p\":");
    for (int i = 0; i < 31; i++)
        buf[n++] = '[';
    for (int i = 0; i < 31; i++)
        buf[n++] = ']';
    buf[n++] = '}';
    buf[n] = '\0';
    assert_int_equal(run(buf), PIPE_REASON_OK);
    memmove(buf + 18, buf + 17, (size_t)n - 16);
    buf[17] = '[';
    memmove(buf + n - 30, buf + n - 31, 32);
    buf[n - 31] = ']';
    assert_int_equal(run(buf), PIPE_REASON_TOO_DEEP);
}

static void test_event_too_large_uses_ctx_cap(void **state)
{
    (void)state;
    struct pipe_event_ctx c = ctx;
    struct pipe_event_result r;
    const char *in = "{\"event\":\"a\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}";
    c.max_bytes = strlen(in);
    assert_int_equal(run_ctx(in, strlen(in), &c, NULL, 0, NULL), PIPE_REASON_OK);
    c.max_bytes = strlen(in) - 1;
    assert_int_equal(run_ctx(in, strlen(in), &c, NULL, 0, &r), PIPE_REASON_TOO_LARGE);
    assert_non_null(strstr(r.message, "bytes"));
    /* The default is 64 KiB. */
    size_t n = 65537;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"event\":\"a\"}", 13);
    assert_int_equal(run_ctx(big, n, &ctx, NULL, 0, NULL), PIPE_REASON_TOO_LARGE);
    assert_int_equal(run_ctx(big, n - 1, &ctx, NULL, 0, NULL), PIPE_REASON_OK);
    free(big);
}

static void test_event_checks_event_type_pattern(void **state)
{
    (void)state;
    char buf[400];
    assert_int_equal(run("{\"event\":\"a\"}"), PIPE_REASON_OK);
    assert_int_equal(run("{\"event\":\"Page_View.v2-x\"}"), PIPE_REASON_OK);
    assert_int_equal(run("{\"event\":\"9a..b\"}"), PIPE_REASON_OK);
    assert_int_equal(run("{\"event\":\"\"}"), PIPE_REASON_BAD_EVENT_TYPE);
    assert_int_equal(run("{\"event\":\"_a\"}"), PIPE_REASON_BAD_EVENT_TYPE);
    assert_int_equal(run("{\"event\":\".a\"}"), PIPE_REASON_BAD_EVENT_TYPE);
    assert_int_equal(run("{\"event\":\"..\"}"), PIPE_REASON_BAD_EVENT_TYPE);
    assert_int_equal(run("{\"event\":\"a/b\"}"), PIPE_REASON_BAD_EVENT_TYPE);
    assert_int_equal(run("{\"event\":\"a b\"}"), PIPE_REASON_BAD_EVENT_TYPE);
    assert_int_equal(run("{\"event\":\"caf\xc3\xa9\"}"), PIPE_REASON_BAD_EVENT_TYPE);
    assert_int_equal(run("{\"event\":\"a\\u002fb\"}"), PIPE_REASON_BAD_EVENT_TYPE);
    assert_int_equal(run("{\"event\":\"\\u0061\"}"),
                     PIPE_REASON_BAD_EVENT_TYPE); /* raw must match */
    assert_int_equal(run("{\"event\":\"a\\n\"}"), PIPE_REASON_BAD_EVENT_TYPE);
    assert_int_equal(run("{\"event\":1}"), PIPE_REASON_BAD_EVENT_TYPE);
    assert_int_equal(run("{\"event\":null}"), PIPE_REASON_BAD_EVENT_TYPE);
    assert_int_equal(run("{\"event\":[\"a\"]}"), PIPE_REASON_BAD_EVENT_TYPE);
    memset(buf, 0, sizeof buf);
    strcpy(buf, "{\"event\":\"");
    memset(buf + 10, 'e', 128);
    strcat(buf, "\"}");
    assert_int_equal(run(buf), PIPE_REASON_OK);
    buf[10 + 128] = 'e';
    strcpy(buf + 10 + 129, "\"}");
    assert_int_equal(run(buf), PIPE_REASON_BAD_EVENT_TYPE);
}

/* pipe_event_type_valid is the one rule: every byte at the first and at a
 * later position, the length bounds, and the key layout's guard agreeing. */
static void test_event_type_valid_is_the_one_rule(void **state)
{
    (void)state;
    for (int b = 0; b < 256; b++) {
        bool alnum = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9');
        bool inner = alnum || b == '_' || b == '.' || b == '-';
        char first[2] = {(char)b, 'a'}, later[2] = {'a', (char)b};
        assert_int_equal(pipe_event_type_valid(first, 2), alnum);
        assert_int_equal(pipe_event_type_valid(later, 2), inner);
        assert_int_equal(pipe_keys_event_valid(first, 2), alnum);
        assert_int_equal(pipe_keys_event_valid(later, 2), inner);
    }
    char name[PIPE_EVENT_TYPE_MAX + 1];
    memset(name, 'x', sizeof name);
    assert_true(pipe_event_type_valid(name, PIPE_EVENT_TYPE_MAX));
    assert_false(pipe_event_type_valid(name, PIPE_EVENT_TYPE_MAX + 1));
    assert_false(pipe_event_type_valid(name, 0));
    assert_false(pipe_event_type_valid(NULL, 0));
    assert_int_equal(PIPE_KEYS_EVENT_MAX, PIPE_EVENT_TYPE_MAX);
}

static void test_event_checks_id(void **state)
{
    (void)state;
    char buf[1200];
    assert_int_equal(run("{\"event\":\"a\",\"id\":\"x\"}"), PIPE_REASON_OK);
    assert_int_equal(run("{\"event\":\"a\",\"id\":\"\"}"), PIPE_REASON_BAD_ID);
    assert_int_equal(run("{\"event\":\"a\",\"id\":42}"), PIPE_REASON_BAD_ID);
    assert_int_equal(run("{\"event\":\"a\",\"id\":null}"), PIPE_REASON_BAD_ID);
    assert_int_equal(run("{\"event\":\"a\",\"id\":{}}"), PIPE_REASON_BAD_ID);
    int n = snprintf(buf, sizeof buf, "{\"event\":\"a\",\"id\":\"");
    memset(buf + n, 'i', 128);
    strcpy(buf + n + 128, "\"}");
    assert_int_equal(run(buf), PIPE_REASON_OK);
    strcpy(buf + n + 127, "\xc3\xa9\"}"); /* 129 bytes */
    assert_int_equal(run(buf), PIPE_REASON_BAD_ID);
    /* Length counts decoded bytes: 128 escapes of 6 bytes each are fine. */
    for (int i = 0; i < 128; i++)
        memcpy(buf + n + 6 * i, "\\u0041", 6);
    strcpy(buf + n + 6 * 128, "\"}");
    assert_int_equal(run(buf), PIPE_REASON_OK);
    strcpy(buf + n + 6 * 128, "A\"}");
    assert_int_equal(run(buf), PIPE_REASON_BAD_ID);
}

static void test_event_checks_ts_forms_and_range(void **state)
{
    (void)state;
    struct pipe_event_result r;
    char line[512];
    const char *iso = "{\"event\":\"a\",\"ts\":\"2024-02-29T10:00:00.5+02:00\"}";
    assert_int_equal(run_ctx(iso, strlen(iso), &ctx, line, sizeof line, &r), PIPE_REASON_OK);
    assert_int_equal(r.time_ms, 1709193600500LL);
    const char *esc = "{\"event\":\"a\",\"ts\":\"2024-02-29T10:00:00\\u002e5+02:00\"}";
    assert_int_equal(run_ctx(esc, strlen(esc), &ctx, line, sizeof line, &r), PIPE_REASON_OK);
    assert_int_equal(r.time_ms, 1709193600500LL);
    const char *num = "{\"event\":\"a\",\"ts\":1709193600500}";
    assert_int_equal(run_ctx(num, strlen(num), &ctx, line, sizeof line, &r), PIPE_REASON_OK);
    assert_int_equal(r.time_ms, 1709193600500LL);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":0}"), PIPE_REASON_OK);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":-0}"), PIPE_REASON_OK);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":253402300799999}"), PIPE_REASON_OK);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":253402300800000}"), PIPE_REASON_BAD_TS);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":99999999999999999999999}"), PIPE_REASON_BAD_TS);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":-1}"), PIPE_REASON_BAD_TS);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":1.5}"), PIPE_REASON_BAD_TS);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":1e3}"), PIPE_REASON_BAD_TS);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":null}"), PIPE_REASON_BAD_TS);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":true}"), PIPE_REASON_BAD_TS);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":\"\"}"), PIPE_REASON_BAD_TS);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":\"2024-02-30T00:00:00Z\"}"), PIPE_REASON_BAD_TS);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":\"1700000000000\"}"), PIPE_REASON_BAD_TS);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":\"1970-01-01T00:00:00+01:00\"}"),
                     PIPE_REASON_BAD_TS);
}

static void test_event_rejects_duplicate_envelope_fields_only(void **state)
{
    (void)state;
    struct pipe_event_result r;
    const char *in = "{\"event\":\"a\",\"id\":\"1\",\"x\":1,\"id\":\"2\"}";
    assert_int_equal(run_ctx(in, strlen(in), &ctx, NULL, 0, &r), PIPE_REASON_DUPLICATE_FIELD);
    assert_non_null(strstr(r.message, "\"id\""));
    assert_int_equal(run("{\"event\":\"a\",\"event\":\"a\"}"), PIPE_REASON_DUPLICATE_FIELD);
    assert_int_equal(run("{\"event\":\"a\",\"\\u0065vent\":\"b\"}"), PIPE_REASON_DUPLICATE_FIELD);
    assert_int_equal(run("{\"event\":\"a\",\"ts\":1,\"ts\":1}"), PIPE_REASON_DUPLICATE_FIELD);
    /* Duplicates win over later envelope faults. */
    assert_int_equal(run("{\"event\":1,\"event\":\"a\"}"), PIPE_REASON_DUPLICATE_FIELD);
    assert_int_equal(run("{\"event\":\"a\",\"x\":1,\"x\":2}"), PIPE_REASON_OK);
    assert_int_equal(run("{\"event\":\"a\",\"p\":{\"id\":1,\"id\":2}}"), PIPE_REASON_OK);
    assert_int_equal(run("{\"event\":\"a\",\"channel\":1,\"channel\":2}"), PIPE_REASON_OK);
}

static void test_event_full_output_buffer_is_an_error_not_a_rejection(void **state)
{
    (void)state;
    struct pipe_buf b;
    struct pipe_event_result r;
    memset(&r, 0x5a, sizeof r);
    const char *in = "{\"event\":\"a\",\"x\":\"0123456789012345678901234567890123456789\"}";
    pipe_buf_init(&b, 80);
    pipe_buf_append_str(&b, "old");
    assert_int_equal(pipe_event_process(in, strlen(in), &ctx, &b, &r), PIPE_ETOOBIG);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.data, "old");
    assert_int_equal(r.reason, 0x5a5a5a5a);
    pipe_buf_cleanup(&b);
}

/* The one reading of a time member that the filter and the splitter share. */
static void test_event_ts_parse_reads_json_tokens_as_the_filter_does(void **state)
{
    (void)state;
    int64_t ms = 7;
    assert_true(pipe_event_ts_parse("-0", 2, false, &ms));
    assert_int_equal(ms, 0);
    assert_true(pipe_event_ts_parse("1700000000123", 13, false, &ms));
    assert_int_equal(ms, 1700000000123LL);
    assert_true(pipe_event_ts_parse("\"1970-01-01T01:00:00+01:00\"", 27, false, &ms));
    assert_int_equal(ms, 0);
    assert_true(pipe_event_ts_parse("\"1970-01-01T00:00:01\\u005a\"", 27, true, &ms));
    assert_int_equal(ms, 1000);
    ms = 7;
    assert_false(pipe_event_ts_parse("-1", 2, false, &ms));
    assert_false(pipe_event_ts_parse("1.5", 3, false, &ms));
    assert_false(pipe_event_ts_parse("1e3", 3, false, &ms));
    assert_false(pipe_event_ts_parse("253402300800000", 15, false, &ms));
    assert_false(pipe_event_ts_parse("\"yesterday\"", 11, false, &ms));
    assert_false(pipe_event_ts_parse("", 0, false, &ms));
    assert_false(pipe_event_ts_parse("-", 1, false, &ms));
    assert_int_equal(ms, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_reason_codes_are_stable),
        cmocka_unit_test(test_event_enriches_valid_event_in_one_line),
        cmocka_unit_test(test_event_result_points_at_event_and_id_in_output),
        cmocka_unit_test(test_event_drops_client_received_at_and_channel),
        cmocka_unit_test(test_event_channel_is_escaped_and_null_channel_is_empty),
        cmocka_unit_test(test_event_derives_deterministic_id_when_absent),
        cmocka_unit_test(test_event_empty_object_and_all_members_removed_are_missing_event),
        cmocka_unit_test(test_event_rejects_malformed_json_with_reason_and_offset),
        cmocka_unit_test(test_event_rejects_non_objects),
        cmocka_unit_test(test_event_checks_depth_against_ctx),
        cmocka_unit_test(test_event_too_large_uses_ctx_cap),
        cmocka_unit_test(test_event_checks_event_type_pattern),
        cmocka_unit_test(test_event_type_valid_is_the_one_rule),
        cmocka_unit_test(test_event_checks_id),
        cmocka_unit_test(test_event_checks_ts_forms_and_range),
        cmocka_unit_test(test_event_ts_parse_reads_json_tokens_as_the_filter_does),
        cmocka_unit_test(test_event_rejects_duplicate_envelope_fields_only),
        cmocka_unit_test(test_event_full_output_buffer_is_an_error_not_a_rejection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
