/* Unit tests for libpipe/reject: the one writer of rejected/ lines. The
 * filter's lines are pinned byte for byte in test_filter_reject; these
 * cover what only other writers use (a line number, no channel and no
 * received_at, as the splitter writes them) and that every line, whatever
 * it holds, parses back as one JSON object. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/err.h"
#include "libpipe/reject.h"

static void test_reject_splitter_line_has_line_number_and_no_channel(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 1u << 20);
    const struct pipe_reject r = {.line = 42,
                                  .message = "ts unreadable",
                                  .rec = "{\"ts\":-0}",
                                  .rec_len = 9,
                                  .reason = "bad_ts",
                                  .source = "combined/dt=2026-03-01/hr=05/j.ndjson.zst"};
    assert_int_equal(pipe_reject_append(&b, &r), 0);
    assert_string_equal(b.data, "{\"line\":42,\"message\":\"ts unreadable\",\"raw\":"
                                "\"{\\\"ts\\\":-0}\",\"reason\":\"bad_ts\",\"source\":"
                                "\"combined/dt=2026-03-01/hr=05/j.ndjson.zst\"}\n");
    pipe_buf_cleanup(&b);
}

static void test_reject_line_without_text_or_message_is_still_an_object(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 1u << 20);
    const struct pipe_reject r = {.reason = "too_large", .source = "s"};
    assert_int_equal(pipe_reject_append(&b, &r), 0);
    assert_string_equal(b.data, "{\"message\":\"\",\"reason\":\"too_large\",\"source\":\"s\"}\n");
    pipe_buf_cleanup(&b);
}

/* Any bytes at all — control characters, quotes, invalid UTF-8 in the
 * text and in the message — give exactly one line that jansson reads back,
 * with the text restored exactly (from "raw" or "raw_base64"). */
static void test_reject_any_bytes_give_one_parseable_line(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 1u << 20);
    unsigned char rec[64];
    uint32_t x = 2463534242u;
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(round % 64);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            rec[i] = (unsigned char)(round % 3 == 0 ? x : 0x20 + x % 0x5f);
        }
        const struct pipe_reject r = {.channel = "web",
                                      .line = (uint64_t)round,
                                      .message = round % 2 ? "m\xff" : "m\n\"",
                                      .rec = (const char *)rec,
                                      .rec_len = len,
                                      .reason = "not_json",
                                      .source = "http"};
        pipe_buf_reset(&b);
        assert_int_equal(pipe_reject_append(&b, &r), 0);
        assert_ptr_equal(memchr(b.data, '\n', b.len), b.data + b.len - 1);
        json_error_t e;
        json_t *o = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &e);
        assert_non_null(o);
        const char *raw = json_string_value(json_object_get(o, "raw"));
        if (raw != NULL) {
            assert_int_equal(json_string_length(json_object_get(o, "raw")), len);
            assert_memory_equal(raw, rec, len);
        } else {
            assert_non_null(json_object_get(o, "raw_base64"));
        }
        json_decref(o);
    }
    pipe_buf_cleanup(&b);
}

static void test_reject_past_the_cap_leaves_the_buffer_as_it_was(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 64);
    const struct pipe_reject small = {.message = "m", .reason = "r", .source = "s"};
    assert_int_equal(pipe_reject_append(&b, &small), 0);
    size_t len = b.len;
    char big[100];
    memset(big, '\xff', sizeof big);
    const struct pipe_reject r = {
        .message = "m", .rec = big, .rec_len = sizeof big, .reason = "r", .source = "s"};
    assert_int_equal(pipe_reject_append(&b, &r), PIPE_ETOOBIG);
    assert_int_equal(b.len, len);
    assert_int_equal(strlen(b.data), len);
    pipe_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reject_splitter_line_has_line_number_and_no_channel),
        cmocka_unit_test(test_reject_line_without_text_or_message_is_still_an_object),
        cmocka_unit_test(test_reject_any_bytes_give_one_parseable_line),
        cmocka_unit_test(test_reject_past_the_cap_leaves_the_buffer_as_it_was),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
