/* Unit tests for manifest: job descriptors, combined and split manifests,
 * the conservation ledger. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/err.h"
#include "libpipe/manifest.h"
#include "libpipe/mem.h"

static const char GOLDEN_JOB[] =
    "{\"version\":1,\"job_id\":\"g1-job-0001\",\"generation\":1,"
    "\"created_ms\":1767225600000,"
    "\"output_key\":\"combined/dt=2026-01-01/hr=00/g1-job-0001.ndjson.zst\","
    "\"inputs\":[{\"key\":\"filtered/dt=2026-01-01/hr=00/a.ndjson.zst\",\"size\":1200,"
    "\"etag\":\"\\\"e1\\\"\"},"
    "{\"key\":\"filtered/dt=2026-01-01/hr=00/b.ndjson.zst\",\"size\":34,\"etag\":\"e2\"}]}\n";

static const char GOLDEN_COMBINED[] =
    "{\"version\":1,\"job_id\":\"g1-job-0001\",\"generation\":1,"
    "\"output_key\":\"combined/dt=2026-01-01/hr=00/g1-job-0001.ndjson.zst\","
    "\"events\":9,\"bytes\":700,\"uncompressed_bytes\":2400,"
    "\"checksum\":\"0123456789abcdef\","
    "\"inputs\":[{\"key\":\"filtered/dt=2026-01-01/hr=00/a.ndjson.zst\",\"size\":1200,"
    "\"etag\":\"e1\",\"events\":7},"
    "{\"key\":\"filtered/dt=2026-01-01/hr=00/b.ndjson.zst\",\"size\":34,\"etag\":\"e2\","
    "\"events\":3}],"
    "\"ledger\":{\"in\":10,\"out\":9,\"rejected\":1,\"duplicates\":0}}\n";

static const char GOLDEN_SPLIT[] =
    "{\"version\":1,\"job_id\":\"g1-job-0001\",\"generation\":1,"
    "\"input_key\":\"combined/dt=2026-01-01/hr=00/g1-job-0001.ndjson.zst\","
    "\"duplicates_dropped\":2,"
    "\"outputs\":[{\"key\":\"split/page/dt=2026-01-01/hr=00/g1-job-0001.ndjson.zst\","
    "\"event\":\"page\",\"dt\":\"2026-01-01\",\"hr\":\"00\",\"rows\":5,\"bytes\":300},"
    "{\"key\":\"split/signup/dt=2025-12-31/hr=23/g1-job-0001.ndjson.zst\","
    "\"event\":\"signup\",\"dt\":\"2025-12-31\",\"hr\":\"23\",\"rows\":2,\"bytes\":120}],"
    "\"ledger\":{\"in\":9,\"out\":7,\"rejected\":0,\"duplicates\":2},"
    "\"url_prefix\":\"s3://bucket/root/\","
    "\"entries\":[{\"url\":\"s3://bucket/root/split/page/dt=2026-01-01/hr=00/"
    "g1-job-0001.ndjson.zst\",\"mandatory\":true,\"meta\":{\"content_length\":300}},"
    "{\"url\":\"s3://bucket/root/split/signup/dt=2025-12-31/hr=23/g1-job-0001.ndjson.zst\","
    "\"mandatory\":true,\"meta\":{\"content_length\":120}}]}\n";

static void make_job(struct pipe_manifest_job *m)
{
    pipe_manifest_job_init(m);
    m->job_id = pipe_strdup("g1-job-0001");
    m->generation = 1;
    m->created_ms = 1767225600000;
    m->output_key = pipe_strdup("combined/dt=2026-01-01/hr=00/g1-job-0001.ndjson.zst");
    pipe_manifest_job_add_input(m, "filtered/dt=2026-01-01/hr=00/a.ndjson.zst", 1200, "\"e1\"");
    pipe_manifest_job_add_input(m, "filtered/dt=2026-01-01/hr=00/b.ndjson.zst", 34, "e2");
}

static void make_combined(struct pipe_manifest_combined *m)
{
    pipe_manifest_combined_init(m);
    m->job_id = pipe_strdup("g1-job-0001");
    m->generation = 1;
    m->output_key = pipe_strdup("combined/dt=2026-01-01/hr=00/g1-job-0001.ndjson.zst");
    m->events = 9;
    m->bytes = 700;
    m->uncompressed_bytes = 2400;
    memcpy(m->checksum, "0123456789abcdef", 17);
    pipe_manifest_combined_add_input(m, "filtered/dt=2026-01-01/hr=00/a.ndjson.zst", 1200, "e1", 7);
    pipe_manifest_combined_add_input(m, "filtered/dt=2026-01-01/hr=00/b.ndjson.zst", 34, "e2", 3);
    m->ledger = (struct pipe_ledger){.in = 10, .out = 9, .rejected = 1, .duplicates = 0};
}

static void make_split(struct pipe_manifest_split *m)
{
    pipe_manifest_split_init(m);
    m->job_id = pipe_strdup("g1-job-0001");
    m->generation = 1;
    m->input_key = pipe_strdup("combined/dt=2026-01-01/hr=00/g1-job-0001.ndjson.zst");
    m->url_prefix = pipe_strdup("s3://bucket/root/");
    m->duplicates_dropped = 2;
    pipe_manifest_split_add_output(m, "split/page/dt=2026-01-01/hr=00/g1-job-0001.ndjson.zst",
                                   "page", "2026-01-01", "00", 5, 300);
    pipe_manifest_split_add_output(m, "split/signup/dt=2025-12-31/hr=23/g1-job-0001.ndjson.zst",
                                   "signup", "2025-12-31", "23", 2, 120);
    m->ledger = (struct pipe_ledger){.in = 9, .out = 7, .rejected = 0, .duplicates = 2};
}

static void test_manifest_job_matches_golden_and_round_trips(void **state)
{
    (void)state;
    struct pipe_manifest_job m, back;
    struct pipe_buf js, js2;
    pipe_buf_init(&js, 1 << 20);
    pipe_buf_init(&js2, 1 << 20);
    make_job(&m);
    assert_int_equal(pipe_manifest_job_to_json(&m, &js), 0);
    assert_string_equal(js.data, GOLDEN_JOB);
    assert_int_equal(pipe_manifest_job_from_json(js.data, js.len, &back), 0);
    assert_string_equal(back.job_id, "g1-job-0001");
    assert_int_equal(back.generation, 1);
    assert_int_equal(back.created_ms, 1767225600000);
    assert_int_equal(back.n_inputs, 2);
    assert_string_equal(back.inputs[0].etag, "\"e1\"");
    assert_int_equal(back.inputs[1].size, 34);
    assert_int_equal(pipe_manifest_job_to_json(&back, &js2), 0);
    assert_string_equal(js.data, js2.data); /* byte-identical */
    pipe_manifest_job_cleanup(&m);
    pipe_manifest_job_cleanup(&back);
    pipe_buf_cleanup(&js);
    pipe_buf_cleanup(&js2);
}

static void test_manifest_combined_matches_golden_and_round_trips(void **state)
{
    (void)state;
    struct pipe_manifest_combined m, back;
    struct pipe_buf js, js2;
    pipe_buf_init(&js, 1 << 20);
    pipe_buf_init(&js2, 1 << 20);
    make_combined(&m);
    assert_int_equal(pipe_manifest_combined_to_json(&m, &js), 0);
    assert_string_equal(js.data, GOLDEN_COMBINED);
    assert_int_equal(pipe_manifest_combined_from_json(js.data, js.len, &back), 0);
    assert_string_equal(back.checksum, "0123456789abcdef");
    assert_int_equal(back.inputs[0].events, 7);
    assert_int_equal(back.ledger.in, 10);
    assert_int_equal(back.ledger.rejected, 1);
    assert_true(pipe_ledger_balanced(&back.ledger));
    assert_int_equal(pipe_manifest_combined_to_json(&back, &js2), 0);
    assert_string_equal(js.data, js2.data);
    pipe_manifest_combined_cleanup(&m);
    pipe_manifest_combined_cleanup(&back);
    pipe_buf_cleanup(&js);
    pipe_buf_cleanup(&js2);
}

static void test_manifest_split_matches_golden_and_round_trips(void **state)
{
    (void)state;
    struct pipe_manifest_split m, back;
    struct pipe_buf js, js2;
    pipe_buf_init(&js, 1 << 20);
    pipe_buf_init(&js2, 1 << 20);
    make_split(&m);
    assert_int_equal(pipe_manifest_split_to_json(&m, &js), 0);
    assert_string_equal(js.data, GOLDEN_SPLIT);
    assert_int_equal(pipe_manifest_split_from_json(js.data, js.len, &back), 0);
    assert_int_equal(back.n_outputs, 2);
    assert_string_equal(back.outputs[1].event, "signup");
    assert_string_equal(back.outputs[1].dt, "2025-12-31");
    assert_string_equal(back.outputs[1].hr, "23");
    assert_int_equal(back.outputs[0].rows, 5);
    assert_int_equal(back.duplicates_dropped, 2);
    assert_string_equal(back.url_prefix, "s3://bucket/root/");
    assert_true(pipe_ledger_balanced(&back.ledger));
    assert_int_equal(pipe_manifest_split_to_json(&back, &js2), 0);
    assert_string_equal(js.data, js2.data);
    pipe_manifest_split_cleanup(&m);
    pipe_manifest_split_cleanup(&back);
    pipe_buf_cleanup(&js);
    pipe_buf_cleanup(&js2);
}

/* Replaces the first occurrence of from in golden with to. */
static char *mutate(const char *golden, const char *from, const char *to)
{
    const char *at = strstr(golden, from);
    assert_non_null(at);
    return pipe_asprintf("%.*s%s%s", (int)(at - golden), golden, to, at + strlen(from));
}

static void test_manifest_rejects_malformed_documents(void **state)
{
    (void)state;
    struct pipe_manifest_job job;
    struct pipe_manifest_combined comb;
    struct pipe_manifest_split split;
    memset(&job, 0x5a, sizeof job);
    const char *junk[] = {
        "", "null", "[]", "{", "{}", "\"x\"", "{\"version\":2}", "{\"version\":1}"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        assert_int_equal(pipe_manifest_job_from_json(junk[i], strlen(junk[i]), &job), PIPE_EPARSE);
        assert_int_equal(pipe_manifest_combined_from_json(junk[i], strlen(junk[i]), &comb),
                         PIPE_EPARSE);
        assert_int_equal(pipe_manifest_split_from_json(junk[i], strlen(junk[i]), &split),
                         PIPE_EPARSE);
    }
    assert_int_equal(pipe_manifest_job_from_json(NULL, 0, &job), PIPE_EPARSE);
    assert_int_equal((unsigned char)job.generation, 0x5a); /* untouched */

    /* One defect at a time in an otherwise good document. */
    const char *job_bad[][2] = {
        {"\"generation\":1", "\"generation\":\"1\""},
        {"\"generation\":1", "\"generation\":-1"},
        {"\"generation\":1", "\"generation\":99999999999"},
        {"\"size\":1200", "\"size\":1.5"},
        {"\"size\":1200", "\"size\":99999999999999999999"},
        {"\"job_id\":\"g1-job-0001\"", "\"job_id\":\"../x\""},
        {"\"job_id\":\"g1-job-0001\"", "\"job_id\":null"},
        {"\"output_key\"", "\"outputkey\""},
        {"\"inputs\":[", "\"inputs\":[7,"},
        {"\"etag\":\"e2\"", "\"etag\":\"e\\u00002\""},
        {"\"key\":\"filtered/dt=2026-01-01/hr=00/b.ndjson.zst\"", "\"key\":\"\""},
        {"\"version\":1", "\"version\":1,\"version\":1"},
    };
    for (size_t i = 0; i < sizeof job_bad / sizeof job_bad[0]; i++) {
        char *doc = mutate(GOLDEN_JOB, job_bad[i][0], job_bad[i][1]);
        assert_int_equal(pipe_manifest_job_from_json(doc, strlen(doc), &job), PIPE_EPARSE);
        pipe_free(doc);
    }
    const char *comb_bad[][2] = {
        {"0123456789abcdef", "0123456789ABCDEF"}, {"0123456789abcdef", "0123456789abcde"},
        {"\"events\":7", "\"events\":true"},      {"\"duplicates\":0", "\"dupes\":0"},
        {"\"ledger\":{", "\"ledger\":[{"},
    };
    for (size_t i = 0; i < sizeof comb_bad / sizeof comb_bad[0]; i++) {
        char *doc = mutate(GOLDEN_COMBINED, comb_bad[i][0], comb_bad[i][1]);
        assert_int_equal(pipe_manifest_combined_from_json(doc, strlen(doc), &comb), PIPE_EPARSE);
        pipe_free(doc);
    }
    const char *split_bad[][2] = {
        {"\"event\":\"page\"", "\"event\":\"../page\""},
        {"\"dt\":\"2026-01-01\"", "\"dt\":\"2026/01/01\""},
        {"\"hr\":\"00\"", "\"hr\":\"0\""},
        {"\"content_length\":300", "\"content_length\":301"},
        {"\"mandatory\":true", "\"mandatory\":false"},
        {"s3://bucket/root/split/page", "s3://other/root/split/page"},
        {"\"entries\":[", "\"entries\":[{\"url\":\"s3://x\",\"mandatory\":true,"
                          "\"meta\":{\"content_length\":1}},"},
        {"\"url_prefix\":\"s3://bucket/root/\",", ""},
    };
    for (size_t i = 0; i < sizeof split_bad / sizeof split_bad[0]; i++) {
        char *doc = mutate(GOLDEN_SPLIT, split_bad[i][0], split_bad[i][1]);
        assert_int_equal(pipe_manifest_split_from_json(doc, strlen(doc), &split), PIPE_EPARSE);
        pipe_free(doc);
    }
    /* Unknown fields are ignored (forward compatibility). */
    char *doc = mutate(GOLDEN_JOB, "\"version\":1", "\"version\":1,\"future\":{\"x\":[1]}");
    assert_int_equal(pipe_manifest_job_from_json(doc, strlen(doc), &job), 0);
    pipe_manifest_job_cleanup(&job);
    pipe_free(doc);
}

static void test_manifest_to_json_rejects_unrepresentable_structs(void **state)
{
    (void)state;
    struct pipe_buf js;
    pipe_buf_init(&js, 1 << 20);
    assert_int_equal(pipe_buf_append_str(&js, "keep"), 0);
    struct pipe_manifest_job m;
    make_job(&m);
    m.inputs[0].size = UINT64_MAX;
    assert_int_equal(pipe_manifest_job_to_json(&m, &js), PIPE_EINVAL);
    m.inputs[0].size = 1;
    m.created_ms = -5;
    assert_int_equal(pipe_manifest_job_to_json(&m, &js), PIPE_EINVAL);
    m.created_ms = 0;
    pipe_free(m.job_id);
    m.job_id = pipe_strdup("a/b");
    assert_int_equal(pipe_manifest_job_to_json(&m, &js), PIPE_EINVAL);
    pipe_free(m.output_key);
    m.output_key = NULL;
    assert_int_equal(pipe_manifest_job_to_json(&m, &js), PIPE_EINVAL);
    assert_string_equal(js.data, "keep");
    pipe_manifest_job_cleanup(&m);

    struct pipe_manifest_split s;
    make_split(&s);
    pipe_free(s.outputs[0].event);
    s.outputs[0].event = pipe_strdup("bad\xff");
    assert_int_equal(pipe_manifest_split_to_json(&s, &js), PIPE_EINVAL);
    pipe_manifest_split_cleanup(&s);

    struct pipe_buf tiny;
    pipe_buf_init(&tiny, 32);
    make_split(&s);
    assert_int_equal(pipe_manifest_split_to_json(&s, &tiny), PIPE_ETOOBIG);
    assert_int_equal(tiny.len, 0);
    pipe_manifest_split_cleanup(&s);
    pipe_buf_cleanup(&tiny);
    pipe_buf_cleanup(&js);
}

static void test_manifest_empty_lists_round_trip(void **state)
{
    (void)state;
    struct pipe_manifest_split s, back;
    struct pipe_buf js;
    pipe_buf_init(&js, 1 << 20);
    pipe_manifest_split_init(&s);
    s.job_id = pipe_strdup("j");
    s.input_key = pipe_strdup("combined/dt=2026-01-01/hr=00/j.ndjson.zst");
    s.url_prefix = pipe_strdup("");
    assert_int_equal(pipe_manifest_split_to_json(&s, &js), 0);
    assert_non_null(strstr(js.data, "\"outputs\":[]"));
    assert_non_null(strstr(js.data, "\"entries\":[]"));
    assert_int_equal(pipe_manifest_split_from_json(js.data, js.len, &back), 0);
    assert_int_equal(back.n_outputs, 0);
    pipe_manifest_split_cleanup(&back);
    pipe_manifest_split_cleanup(&s);
    pipe_manifest_split_cleanup(&s); /* cleanup twice is harmless */
    pipe_buf_cleanup(&js);
}

static void test_ledger_balance(void **state)
{
    (void)state;
    struct pipe_ledger l = {.in = 10, .out = 7, .rejected = 2, .duplicates = 1};
    assert_true(pipe_ledger_balanced(&l));
    l.duplicates = 2;
    assert_false(pipe_ledger_balanced(&l));
    l = (struct pipe_ledger){0};
    assert_true(pipe_ledger_balanced(&l));
    /* A sum that wraps around is not a balance. */
    l = (struct pipe_ledger){.in = 1, .out = UINT64_MAX, .rejected = 2, .duplicates = 0};
    assert_false(pipe_ledger_balanced(&l));
    l = (struct pipe_ledger){.in = 0, .out = 1, .rejected = 0, .duplicates = UINT64_MAX};
    assert_false(pipe_ledger_balanced(&l));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_job_matches_golden_and_round_trips),
        cmocka_unit_test(test_manifest_combined_matches_golden_and_round_trips),
        cmocka_unit_test(test_manifest_split_matches_golden_and_round_trips),
        cmocka_unit_test(test_manifest_rejects_malformed_documents),
        cmocka_unit_test(test_manifest_to_json_rejects_unrepresentable_structs),
        cmocka_unit_test(test_manifest_empty_lists_round_trip),
        cmocka_unit_test(test_ledger_balance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
