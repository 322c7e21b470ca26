/* Unit tests for the filter's rejected/ lines (stages/filter/
 * filter_batch.c), called directly through libfilter.a: the fields of a
 * line (SPEC §2: the original text, the reason code, a message, the source)
 * with keys sorted, text that is not UTF-8 kept as base64, the quarantine line of a raw/ object,
 * and a full buffer left as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/err.h"
#include "libpipe/event.h"
#include "libpipe/store.h"
#include "stages/filter/filter.h"

#define AT "2026-03-01T05:00:00.000Z"

/* One rejected/ line for rec[0..len) from channel web. */
static void reject(struct pipe_buf *b, const char *rec, size_t len, enum pipe_reason reason,
                   const char *message, const char *source)
{
    pipe_buf_reset(b);
    assert_int_equal(filter_reject(b, rec, len, reason, message, "web", AT, source), 0);
}

static void test_filter_reject_line_keeps_the_text_as_a_json_string(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 1u << 20);
    reject(&b, "{\"event\":\"x\"}", 13, PIPE_REASON_BAD_ID, "no id", "http");
    assert_string_equal(b.data,
                        "{\"channel\":\"web\",\"message\":\"no id\",\"raw\":\"{\\\"event\\\":"
                        "\\\"x\\\"}\",\"reason\":\"bad_id\",\"received_at\":\"" AT
                        "\",\"source\":\"http\"}\n");
    /* Control characters are escaped: one line per rejection, always. */
    reject(&b, "a\nb\tc", 5, PIPE_REASON_NOT_JSON, "not JSON", "http");
    assert_non_null(strstr(b.data, "\"raw\":\"a\\u000ab\\u0009c\""));
    assert_ptr_equal(strchr(b.data, '\n'), b.data + b.len - 1);
    pipe_buf_cleanup(&b);
}

static void test_filter_reject_line_keeps_bytes_that_are_not_utf8_as_base64(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 1u << 20);
    reject(&b,
           "\xff\xfe"
           "ab",
           4, PIPE_REASON_INVALID_UTF8, "bad utf8", "raw:raw/a.ndjson");
    assert_string_equal(b.data, "{\"channel\":\"web\",\"message\":\"bad utf8\",\"raw_base64\":"
                                "\"//5hYg==\",\"reason\":\"invalid_utf8\",\"received_at\":\"" AT
                                "\",\"source\":\"raw:raw/a.ndjson\"}\n");
    /* Standard alphabet with padding, whatever the length. */
    reject(&b, "\xff", 1, PIPE_REASON_INVALID_UTF8, "m", "http");
    assert_non_null(strstr(b.data, "\"raw_base64\":\"/w==\""));
    reject(&b, "\xc3\x28\xfb", 3, PIPE_REASON_INVALID_UTF8, "m", "http");
    assert_non_null(strstr(b.data, "\"raw_base64\":\"wyj7\""));
    reject(&b, "\x80\x80\x80\x80\x80", 5, PIPE_REASON_INVALID_UTF8, "m", "http");
    assert_non_null(strstr(b.data, "\"raw_base64\":\"gICAgIA=\""));
    pipe_buf_cleanup(&b);
}

static void test_filter_reject_line_without_text_names_only_the_source(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 1u << 20);
    reject(&b, NULL, 0, PIPE_REASON_TOO_LARGE, "too big", "raw:raw/b");
    assert_string_equal(b.data,
                        "{\"channel\":\"web\",\"message\":\"too big\",\"reason\":"
                        "\"too_large\",\"received_at\":\"" AT "\",\"source\":\"raw:raw/b\"}\n");
    pipe_buf_cleanup(&b);
}

static void test_filter_quarantine_line_records_the_raw_object(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 1u << 20);
    struct pipe_store_obj o = {.key = "raw/c.ndjson", .size = 42};
    snprintf(o.etag, sizeof o.etag, "\"abc\"");
    assert_int_equal(filter_quarantine_line(&b, &o, PIPE_REASON_TOO_LARGE, "too_large", "over max",
                                            "web", AT, "raw:raw/c.ndjson"),
                     0);
    assert_string_equal(b.data, "{\"channel\":\"web\",\"message\":\"over max\",\"quarantine\":"
                                "\"too_large\",\"raw_etag\":\"\\\"abc\\\"\",\"raw_key\":"
                                "\"raw/c.ndjson\",\"raw_size\":42,\"reason\":\"too_large\","
                                "\"received_at\":\"" AT "\",\"source\":\"raw:raw/c.ndjson\"}\n");
    pipe_buf_cleanup(&b);
}

static void test_filter_reject_past_the_cap_leaves_the_buffer_as_it_was(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 200);
    assert_int_equal(filter_reject(&b, "x", 1, PIPE_REASON_NOT_JSON, "m", "web", AT, "http"), 0);
    size_t len = b.len;
    char before[256];
    memcpy(before, b.data, len);
    char big[300];
    memset(big, 'y', sizeof big);
    assert_int_equal(
        filter_reject(&b, big, sizeof big, PIPE_REASON_NOT_JSON, "m", "web", AT, "http"),
        PIPE_ETOOBIG);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, before, len);
    pipe_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_reject_line_keeps_the_text_as_a_json_string),
        cmocka_unit_test(test_filter_reject_line_keeps_bytes_that_are_not_utf8_as_base64),
        cmocka_unit_test(test_filter_reject_line_without_text_names_only_the_source),
        cmocka_unit_test(test_filter_quarantine_line_records_the_raw_object),
        cmocka_unit_test(test_filter_reject_past_the_cap_leaves_the_buffer_as_it_was),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
