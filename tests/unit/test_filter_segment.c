/* Unit tests for the Segment / RudderStack translation (stages/filter/
 * filter_segment.c), called directly through libfilter.a: a batch body
 * becomes one native event line per message whatever the order of its
 * members (the SDKs send sentAt after the batch), the last of a repeated
 * member wins as in JSON parsers, a pretty-printed body gives the same
 * events, a message too deep is passed on alone for the envelope check, and
 * a body that is not JSON is refused with the byte where it breaks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/err.h"
#include "stages/filter/filter.h"

#define RECEIVED 1764000000000LL /* 2025-11-24T16:00:00.000Z */
#define SENT     "2026-12-01T10:00:05.000Z"

/* Two messages: a track 5 s before sentAt, and a page without a time. */
#define M1                                                                                         \
    "{\"type\":\"track\",\"event\":\"Order Completed\",\"messageId\":\"m1\","                      \
    "\"timestamp\":\"2026-12-01T10:00:00.000Z\",\"properties\":{\"total\":1.50}}"
#define M2 "{\"type\":\"page\",\"messageId\":\"m2\",\"name\":\"Home\"}"
#define E1                                                                                         \
    "{\"event\":\"order_completed\",\"ts\":\"2025-11-24T15:59:55.000Z\",\"original_event\":"       \
    "\"Order Completed\",\"id\":\"m1\",\"type\":\"track\",\"messageId\":\"m1\",\"timestamp\":"     \
    "\"2026-12-01T10:00:00.000Z\",\"properties\":{\"total\":1.50}}\n"
#define E2                                                                                         \
    "{\"event\":\"page\",\"id\":\"m2\",\"type\":\"page\",\"messageId\":\"m2\",\"name\":\"Home\"}"  \
    "\n"

struct result {
    int rc;
    struct filter_xlate x;
    struct pipe_buf out;
};

static void translate(struct result *r, const char *body, int max_depth)
{
    memset(&r->x, 0, sizeof r->x);
    r->x.received_ms = RECEIVED;
    r->x.max_depth = max_depth;
    pipe_buf_init(&r->out, 1u << 20);
    r->rc = filter_segment_translate(&r->x, FILTER_CALL_BATCH, body, strlen(body), &r->out);
}

/* The body's events, write key and message count are exactly these. */
static void expect(const char *body, const char *events, const char *write_key, size_t n)
{
    struct result r;
    translate(&r, body, 32);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.out.data ? r.out.data : "", events);
    assert_string_equal(r.x.write_key, write_key);
    assert_int_equal(r.x.n_messages, n);
    pipe_buf_cleanup(&r.out);
}

/* The body is refused (PIPE_EPARSE) with this reason. */
static void refused(const char *body, const char *why)
{
    struct result r;
    translate(&r, body, 32);
    assert_int_equal(r.rc, PIPE_EPARSE);
    assert_string_equal(r.x.msg, why);
    pipe_buf_cleanup(&r.out);
}

static void test_filter_segment_batch_as_the_sdks_send_it(void **state)
{
    (void)state;
    /* analytics-node's order: the batch, then writeKey and sentAt */
    expect("{\"batch\":[" M1 "," M2 "],\"writeKey\":\"wk\",\"sentAt\":\"" SENT "\"}", E1 E2, "wk",
           2);
}

static void test_filter_segment_sent_at_anywhere_in_the_body(void **state)
{
    (void)state;
    expect("{\"sentAt\":\"" SENT "\",\"batch\":[" M1 "," M2 "]}", E1 E2, "", 2);
    /* after the batch and before a member that is not a string */
    expect("{\"batch\":[" M1 "," M2 "],\"sentAt\":\"" SENT "\",\"context\":{\"a\":[1]}}", E1 E2, "",
           2);
    /* repeated: the last one counts, wherever the first one was */
    expect("{\"sentAt\":\"2026-12-01T09:00:00.000Z\",\"batch\":[" M1 "," M2 "],\"sentAt\":\"" SENT
           "\"}",
           E1 E2, "", 2);
    expect("{\"batch\":[" M1 "," M2 "],\"sentAt\":\"2026-12-01T09:00:00.000Z\",\"n\":1,\"sentAt\":"
           "\"" SENT "\"}",
           E1 E2, "", 2);
    /* a later sentAt that is not a string does not replace a string one */
    expect("{\"batch\":[" M1 "," M2 "],\"sentAt\":\"" SENT "\",\"sentAt\":5}", E1 E2, "", 2);
    /* a trailing string member whose text holds an escaped quote */
    expect("{\"batch\":[" M1 "," M2 "],\"sentAt\":\"" SENT "\",\"k\":\"a\\\"\\\\\"}", E1 E2, "", 2);
}

static void test_filter_segment_without_sent_at_keeps_the_client_time(void **state)
{
    (void)state;
    expect("{\"batch\":[" M1 "]}",
           "{\"event\":\"order_completed\",\"ts\":\"2026-12-01T10:00:00.000Z\",\"original_event\":"
           "\"Order Completed\",\"id\":\"m1\",\"type\":\"track\",\"messageId\":\"m1\","
           "\"timestamp\":\"2026-12-01T10:00:00.000Z\",\"properties\":{\"total\":1.50}}\n",
           "", 1);
}

static void test_filter_segment_repeated_batch_the_last_counts(void **state)
{
    (void)state;
    expect("{\"batch\":[" M2 "],\"sentAt\":\"" SENT "\",\"batch\":[" M1 "," M2 "]}", E1 E2, "", 2);
    expect("{\"batch\":5,\"batch\":[" M1 "," M2 "],\"sentAt\":\"" SENT "\"}", E1 E2, "", 2);
    refused("{\"batch\":[" M1 "],\"batch\":5}", "\"batch\" must be an array of messages");
    expect("{\"batch\":[],\"sentAt\":\"" SENT "\"}", "", "", 0);
}

static void test_filter_segment_pretty_printed_body_gives_one_line_per_message(void **state)
{
    (void)state;
    struct result r;
    translate(&r,
              "{\n  \"batch\" : [\n    {\"type\": \"page\",\n     \"messageId\": \"m2\"}\n  ,\n"
              "    {\"type\":\"identify\",\"userId\":\"u\"}\n  ],\n  \"sentAt\": \"" SENT "\"\n}\n",
              32);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.x.n_messages, 2);
    /* line breaks inside a message are whitespace and never split it */
    const char *nl = strchr(r.out.data, '\n');
    assert_non_null(nl);
    assert_ptr_equal(strchr(nl + 1, '\n'), r.out.data + r.out.len - 1);
    assert_non_null(strstr(r.out.data, "{\"event\":\"page\",\"id\":\"m2\","));
    assert_non_null(strstr(nl, "{\"event\":\"identify\","));
    pipe_buf_cleanup(&r.out);
}

static void test_filter_segment_message_too_deep_is_passed_on_alone(void **state)
{
    (void)state;
    struct result r;
    translate(&r, "{\"batch\":[" M2 ",{\"a\":[[[[1]]]]}],\"sentAt\":\"" SENT "\"}", 3);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.x.n_messages, 2);
    /* translated, then as sent: the envelope check rejects it as too deep */
    assert_string_equal(r.out.data, E2 "{\"a\":[[[[1]]]]}\n");
    pipe_buf_cleanup(&r.out);
}

static void test_filter_segment_body_that_is_not_json_is_refused(void **state)
{
    (void)state;
    refused("{\"batch\":[1,]}", "the body is not JSON: unexpected character at byte 12");
    refused("{\"batch\":[" M2 "],}", "the body is not JSON: expected a string key at byte 58");
    refused("{\"batch\":[]} x",
            "the body is not JSON: unexpected bytes after the value at byte 13");
    refused("{\"batch\":[{\"s\":\"\\ud800\"}]}",
            "the body is not JSON: unpaired surrogate escape at byte 16");
    refused("[1]", "the body must be a JSON object");
    refused("", "the body is not JSON: unexpected end of input at byte 0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_segment_batch_as_the_sdks_send_it),
        cmocka_unit_test(test_filter_segment_sent_at_anywhere_in_the_body),
        cmocka_unit_test(test_filter_segment_without_sent_at_keeps_the_client_time),
        cmocka_unit_test(test_filter_segment_repeated_batch_the_last_counts),
        cmocka_unit_test(test_filter_segment_pretty_printed_body_gives_one_line_per_message),
        cmocka_unit_test(test_filter_segment_message_too_deep_is_passed_on_alone),
        cmocka_unit_test(test_filter_segment_body_that_is_not_json_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
