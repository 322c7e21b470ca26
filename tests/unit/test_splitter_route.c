/* Unit tests for the splitter's routing pass (stages/splitter/
 * splitter_route.c, splitter_reject.c), called directly through
 * libsplitter.a: which output each line of a combined object goes to,
 * in-batch and cross-job duplicates, rejected lines and their reasons, and
 * the bytes of each output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/dedup.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "stages/splitter/splitter.h"

#define MAX_LINE   (64u << 10)
#define MAX_OUTPUT (64u << 20)

#define L_PAGE_A  "{\"event\":\"page\",\"id\":\"a\",\"received_at\":\"2026-01-01T00:10:00.000Z\"}"
#define L_PAGE_B  "{\"event\":\"page\",\"id\":\"b\",\"received_at\":\"2026-01-01T01:59:59.999Z\"}"
#define L_PAGE_C  "{\"event\":\"page\",\"id\":\"c\",\"received_at\":\"2026-01-01T00:20:00.000Z\"}"
#define L_SIGNUP  "{\"event\":\"signup\",\"id\":\"a\",\"received_at\":\"2026-01-01T00:30:00.000Z\"}"
#define L_PAGE_A2 "{\"event\":\"page\",\"id\":\"a\",\"received_at\":\"2026-01-01T00:11:00.000Z\"}"

/* One pass over text with every claim verdict NEW. */
static void route(struct split_route *r, bool use_ts, const char *text)
{
    assert_int_equal(split_route_init(r, use_ts, 3, MAX_LINE, MAX_OUTPUT), 0);
    split_route_reset(r, "g1-job-0001", "combined/dt=2026-01-01/hr=00/g1-job-0001.ndjson.zst");
    assert_int_equal(split_route_pass(r, text, strlen(text), NULL, NULL), 0);
}

/* Asserts that output o decompresses to exactly want. */
static void expect_output(struct split_route *r, const struct split_output *o, const char *want)
{
    const char *z;
    size_t zn;
    assert_int_equal(split_route_output_data(r, o, &z, &zn), 0);
    struct pipe_buf plain;
    pipe_buf_init(&plain, SIZE_MAX);
    assert_int_equal(pipe_codec_decompress(z, zn, &plain), 0);
    assert_int_equal(plain.len, strlen(want));
    assert_memory_equal(plain.data, want, plain.len);
    pipe_buf_cleanup(&plain);
}

/* The non-empty outputs in (event, hour) order, asserting there are n. */
static struct split_output **sorted(const struct split_route *r, size_t n)
{
    size_t got;
    struct split_output **v = split_route_sorted(r, &got);
    assert_int_equal(got, n);
    return v;
}

/* The index in r->keys of (event, id), or -1. */
static long key_index(const struct split_route *r, const char *event, const char *id)
{
    struct pipe_dedup_key k;
    pipe_dedup_key_of(event, strlen(event), id, strlen(id), &k);
    for (size_t i = 0; i < r->n_keys; i++)
        if (r->keys[i].hi == k.hi && r->keys[i].lo == k.lo)
            return (long)i;
    return -1;
}

static void test_split_route_groups_lines_by_event_and_hour(void **state)
{
    (void)state;
    struct split_route r;
    route(&r, false, L_PAGE_A "\n" L_SIGNUP "\n" L_PAGE_B "\n" L_PAGE_C "\n");
    assert_int_equal(split_route_settle(&r, NULL, NULL), 0);
    assert_int_equal(r.c.in, 4);
    assert_int_equal(r.c.out, 4);
    assert_int_equal(r.c.rejected, 0);
    struct split_output **v = sorted(&r, 3); /* page@00, page@01, signup@00: by event, then hour */
    assert_string_equal(v[0]->event, "page");
    assert_int_equal(v[0]->hour_ms, pipe_clock_from_civil(2026, 1, 1, 0, 0, 0, 0));
    assert_int_equal(v[0]->rows, 2);
    assert_string_equal(v[1]->event, "page");
    assert_int_equal(v[1]->hour_ms, pipe_clock_from_civil(2026, 1, 1, 1, 0, 0, 0));
    assert_int_equal(v[1]->rows, 1);
    assert_string_equal(v[2]->event, "signup");
    /* Each output holds its lines unchanged, in input order. */
    expect_output(&r, v[0], L_PAGE_A "\n" L_PAGE_C "\n");
    expect_output(&r, v[1], L_PAGE_B "\n");
    expect_output(&r, v[2], L_SIGNUP "\n");
    pipe_free(v);
    split_route_cleanup(&r);
}

static void test_split_route_drops_repeats_within_the_object(void **state)
{
    (void)state;
    struct split_route r;
    /* Same (event, id) again: dropped, the first one kept. The same id
     * under another event type is another event. Blank lines are skipped. */
    route(&r, false, L_PAGE_A "\n\n" L_PAGE_A2 "\n" L_SIGNUP "\n" L_PAGE_A "\n");
    assert_int_equal(r.c.in, 4);
    assert_int_equal(r.c.dup_batch, 2);
    assert_int_equal(r.n_keys, 2);
    assert_true(key_index(&r, "page", "a") >= 0);
    assert_true(key_index(&r, "signup", "a") >= 0);
    assert_int_equal(split_route_settle(&r, NULL, NULL), 0);
    assert_int_equal(r.c.out, 2);
    struct split_output **v = sorted(&r, 2);
    expect_output(&r, v[0], L_PAGE_A "\n");
    pipe_free(v);
    split_route_cleanup(&r);
}

static void test_split_route_settle_removes_keys_claimed_by_another_job(void **state)
{
    (void)state;
    struct split_route r;
    route(&r, false, L_PAGE_A "\n" L_PAGE_C "\n" L_SIGNUP "\n");
    long c = key_index(&r, "page", "c"), s = key_index(&r, "signup", "a");
    assert_true(c >= 0 && s >= 0);
    r.verdicts[c] = PIPE_DEDUP_DUP;
    r.verdicts[s] = PIPE_DEDUP_DUP;
    assert_int_equal(split_route_settle(&r, NULL, NULL), 0);
    assert_int_equal(r.c.dup_cross, 2);
    assert_int_equal(r.c.out, 1);
    struct split_output **v = sorted(&r, 1); /* signup lost its only line: no output */
    assert_string_equal(v[0]->event, "page");
    assert_int_equal(v[0]->rows, 1);
    expect_output(&r, v[0], L_PAGE_A "\n");
    pipe_free(v);
    split_route_cleanup(&r);
}

static void test_split_route_rejects_lines_it_cannot_route(void **state)
{
    (void)state;
    struct split_route r;
    route(&r, false,
          "not json\n"
          "{\"event\":\"page\",\"received_at\":\"2026-01-01T00:00:00Z\"}\n"
          "{\"event\":\"page\",\"id\":\"x\",\"received_at\":\"yesterday\"}\n"
          "{\"event\":\"a/b\",\"id\":\"x\",\"received_at\":\"2026-01-01T00:00:00Z\"}\n"
          "{\"event\":\"page\",\"id\":\"x\",\"id\":\"y\",\"received_at\":\"2026-01-01T00:00:00Z\"}"
          "\n" L_PAGE_A "\n");
    assert_int_equal(split_route_settle(&r, NULL, NULL), 0);
    assert_int_equal(r.c.in, 6);
    assert_int_equal(r.c.rejected, 5);
    assert_int_equal(r.c.out, 1);
    /* One line of rejected/ per rejected line, with its reason and source. */
    const char *rej = r.rejects.data;
    assert_non_null(rej);
    size_t lines = 0;
    for (size_t i = 0; i < r.rejects.len; i++)
        lines += rej[i] == '\n';
    assert_int_equal(lines, 5);
    assert_non_null(strstr(rej, "\"reason\":\"not_json\""));
    assert_non_null(strstr(rej, "\"reason\":\"bad_id\""));
    assert_non_null(strstr(rej, "\"reason\":\"bad_ts\""));
    assert_non_null(strstr(rej, "\"reason\":\"bad_event_type\""));
    assert_non_null(strstr(rej, "\"reason\":\"duplicate_field\""));
    assert_non_null(
        strstr(rej, "\"source\":\"combined/dt=2026-01-01/hr=00/g1-job-0001.ndjson.zst\""));
    split_route_cleanup(&r);
}

static void test_split_route_time_field_ts_prefers_the_client_time(void **state)
{
    (void)state;
    struct split_route r;
    const char *line =
        "{\"event\":\"page\",\"id\":\"a\",\"ts\":\"2025-12-31T23:59:00Z\",\"received_at\":"
        "\"2026-01-01T00:01:00Z\"}\n";
    route(&r, true, line);
    assert_int_equal(split_route_settle(&r, NULL, NULL), 0);
    struct split_output **v = sorted(&r, 1);
    assert_int_equal(v[0]->hour_ms, pipe_clock_from_civil(2025, 12, 31, 23, 0, 0, 0));
    pipe_free(v);
    /* The same line routed on received_at goes to the next hour. */
    split_route_cleanup(&r);
    route(&r, false, line);
    assert_int_equal(split_route_settle(&r, NULL, NULL), 0);
    v = sorted(&r, 1);
    assert_int_equal(v[0]->hour_ms, pipe_clock_from_civil(2026, 1, 1, 0, 0, 0, 0));
    pipe_free(v);
    split_route_cleanup(&r);
}

static void test_split_route_reset_forgets_the_previous_job(void **state)
{
    (void)state;
    struct split_route r;
    route(&r, false, L_PAGE_A "\n" L_SIGNUP "\n");
    assert_int_equal(split_route_settle(&r, NULL, NULL), 0);
    split_route_reset(&r, "g1-job-0002", "combined/dt=2026-01-01/hr=01/g1-job-0002.ndjson.zst");
    assert_int_equal(split_route_pass(&r, L_PAGE_B "\n", strlen(L_PAGE_B) + 1, NULL, NULL), 0);
    assert_int_equal(split_route_settle(&r, NULL, NULL), 0);
    assert_int_equal(r.c.in, 1);
    assert_int_equal(r.n_keys, 1);
    struct split_output **v = sorted(&r, 1);
    expect_output(&r, v[0], L_PAGE_B "\n");
    pipe_free(v);
    split_route_cleanup(&r);
}

/* ---- the streaming read of a combined object ---- */

/* make_line — appends one event line of exactly len bytes (>= 80) and
 * "\n" to b: event type ev, id "<n>", padded with a string member. */
static void make_line(struct pipe_buf *b, const char *ev, unsigned n, size_t len)
{
    char head[160];
    int h = snprintf(head, sizeof head,
                     "{\"event\":\"%s\",\"id\":\"%u\",\"received_at\":\"2026-01-01T00:10:00.000Z\","
                     "\"pad\":\"",
                     ev, n);
    assert_true(h > 0 && (size_t)h + 2 <= len);
    assert_int_equal(pipe_buf_append(b, head, (size_t)h), 0);
    assert_int_equal(pipe_buf_reserve(b, len - (size_t)h + 1), 0);
    memset(b->data + b->len, 'x', len - (size_t)h - 2);
    b->len += len - (size_t)h - 2;
    assert_int_equal(pipe_buf_append(b, "\"}\n", 3), 0);
}

/* zstd_of — plain[0..n) as zstd frames cut at the given offsets (which may
 * fall inside a line, as a frame boundary may), appended to z. */
static void zstd_of(const char *plain, size_t n, const size_t *cuts, size_t n_cuts,
                    struct pipe_buf *z)
{
    struct pipe_buf unused;
    struct pipe_zwriter *zw = NULL;
    pipe_buf_init(&unused, 0);
    assert_int_equal(pipe_zwriter_new(1, &unused, &zw), 0);
    size_t from = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t to = i < n_cuts ? cuts[i] : n;
        assert_int_equal(pipe_zwriter_frame(zw, plain + from, to - from, z), 0);
        from = to;
    }
    pipe_zwriter_free(zw);
    pipe_buf_cleanup(&unused);
}

/* pass_of — one pass (verdicts NEW) over data[0..n) with the given max_line. */
static void pass_of(struct split_route *r, size_t max_line, const void *data, size_t n)
{
    assert_int_equal(split_route_init(r, false, 3, max_line, MAX_OUTPUT), 0);
    split_route_reset(r, "g1-job-0001", "combined/dt=2026-01-01/hr=00/g1-job-0001.ndjson.zst");
    assert_int_equal(split_route_pass(r, data, n, NULL, NULL), 0);
    assert_int_equal(split_route_settle(r, NULL, NULL), 0);
}

/* Lines that straddle the decoder's output chunks (128 KiB) and the
 * object's frame boundaries are read whole: a zstd object gives the
 * same outputs, byte for byte, as the same lines plain. */
static void test_split_route_lines_straddling_decoded_windows_are_read_whole(void **state)
{
    (void)state;
    struct pipe_buf plain, z, page, signup;
    pipe_buf_init(&plain, SIZE_MAX);
    pipe_buf_init(&z, SIZE_MAX);
    pipe_buf_init(&page, SIZE_MAX);
    pipe_buf_init(&signup, SIZE_MAX);
    uint32_t x = 12345;
    for (unsigned i = 0; plain.len < (3u << 20); i++) {
        x = x * 1103515245u + 12345u;
        size_t len = 100 + (x >> 8) % 9000;
        bool is_page = (x >> 4) % 3 != 0;
        size_t at = plain.len;
        make_line(&plain, is_page ? "page" : "signup", i, len);
        assert_int_equal(
            pipe_buf_append(is_page ? &page : &signup, plain.data + at, plain.len - at), 0);
    }
    /* the first cut inside a line, the second on a line's "\n" */
    size_t cuts[] = {plain.len / 3 + 7,
                     (size_t)(strchr(plain.data + plain.len / 2, '\n') - plain.data)};
    zstd_of(plain.data, plain.len, cuts, 2, &z);

    struct split_route rp, rz;
    pass_of(&rp, MAX_LINE, plain.data, plain.len);
    pass_of(&rz, MAX_LINE, z.data, z.len);
    assert_int_equal(rz.c.in, rp.c.in);
    assert_int_equal(rz.c.rejected, 0);
    assert_int_equal(rz.c.out, rp.c.in);
    struct split_output **vp = sorted(&rp, 2), **vz = sorted(&rz, 2);
    expect_output(&rz, vz[0], page.data);
    expect_output(&rz, vz[1], signup.data);
    for (size_t i = 0; i < 2; i++) {
        const char *a, *b;
        size_t an, bn;
        assert_int_equal(split_route_output_data(&rp, vp[i], &a, &an), 0);
        assert_int_equal(split_route_output_data(&rz, vz[i], &b, &bn), 0);
        assert_int_equal(an, bn);
        assert_memory_equal(a, b, an);
    }
    pipe_free(vp);
    pipe_free(vz);
    split_route_cleanup(&rp);
    split_route_cleanup(&rz);
    pipe_buf_cleanup(&plain);
    pipe_buf_cleanup(&z);
    pipe_buf_cleanup(&page);
    pipe_buf_cleanup(&signup);
}

/* A line of exactly max_line bytes is an event, in a plain or zstd object,
 * even when it is longer than a decoded chunk; one byte more is rejected
 * as too large and the next line is read as usual. */
static void test_split_route_line_at_max_line_is_routed_one_over_is_rejected(void **state)
{
    (void)state;
    const size_t max_line = 300u << 10;
    struct pipe_buf plain, z;
    pipe_buf_init(&plain, SIZE_MAX);
    pipe_buf_init(&z, SIZE_MAX);
    make_line(&plain, "page", 1, max_line);
    size_t first = plain.len;
    make_line(&plain, "page", 2, max_line + 1);
    make_line(&plain, "signup", 3, 200);
    zstd_of(plain.data, plain.len, NULL, 0, &z);
    for (int zstd = 0; zstd < 2; zstd++) {
        struct split_route r;
        pass_of(&r, max_line, zstd ? z.data : plain.data, zstd ? z.len : plain.len);
        assert_int_equal(r.c.in, 3);
        assert_int_equal(r.c.rejected, 1);
        assert_int_equal(r.c.out, 2);
        assert_non_null(strstr(r.rejects.data, "\"reason\":\"too_large\""));
        assert_non_null(strstr(r.rejects.data, "\"line\":2"));
        struct split_output **v = sorted(&r, 2);
        assert_int_equal(v[0]->rows, 1);
        char *want = pipe_strndup(plain.data, first);
        expect_output(&r, v[0], want);
        pipe_free(want);
        assert_string_equal(v[1]->event, "signup");
        pipe_free(v);
        split_route_cleanup(&r);
    }
    pipe_buf_cleanup(&plain);
    pipe_buf_cleanup(&z);
}

/* settle works on the compressed frames alone: the splitter frees the
 * object's buffer before the claim, so the input is overwritten here
 * before a claimed key is taken out of a multi-frame output. */
static void test_split_route_settle_does_not_read_the_input_again(void **state)
{
    (void)state;
    struct pipe_buf plain, want;
    pipe_buf_init(&plain, SIZE_MAX);
    pipe_buf_init(&want, SIZE_MAX);
    for (unsigned i = 0; plain.len < (3u << 20); i++) {
        size_t at = plain.len;
        make_line(&plain, "page", i, 1000 + i % 700);
        if (i != 1500)
            assert_int_equal(pipe_buf_append(&want, plain.data + at, plain.len - at), 0);
    }
    struct split_route r;
    assert_int_equal(split_route_init(&r, false, 3, MAX_LINE, MAX_OUTPUT), 0);
    split_route_reset(&r, "g1-job-0001", "combined/dt=2026-01-01/hr=00/g1-job-0001.ndjson.zst");
    assert_int_equal(split_route_pass(&r, plain.data, plain.len, NULL, NULL), 0);
    memset(plain.data, '#', plain.len);
    pipe_buf_cleanup(&plain);
    long k = key_index(&r, "page", "1500");
    assert_true(k >= 0);
    r.verdicts[k] = PIPE_DEDUP_DUP;
    assert_int_equal(split_route_settle(&r, NULL, NULL), 0);
    assert_int_equal(r.c.dup_cross, 1);
    struct split_output **v = sorted(&r, 1);
    assert_int_equal(v[0]->rows, r.c.in - 1);
    expect_output(&r, v[0], want.data);
    pipe_free(v);
    split_route_cleanup(&r);
    pipe_buf_cleanup(&want);
}

/* An empty object, plain or one empty zstd frame, has no lines and no
 * outputs, and is not an error. */
static void test_split_route_empty_object_has_no_outputs(void **state)
{
    (void)state;
    struct pipe_buf z;
    pipe_buf_init(&z, SIZE_MAX);
    zstd_of("", 0, NULL, 0, &z);
    assert_true(z.len > 0);
    for (int zstd = 0; zstd < 2; zstd++) {
        struct split_route r;
        pass_of(&r, MAX_LINE, zstd ? z.data : "", zstd ? z.len : 0);
        assert_int_equal(r.c.in, 0);
        assert_int_equal(r.c.out, 0);
        assert_int_equal(r.n_keys, 0);
        assert_int_equal(r.rejects.len, 0);
        struct split_output **v = sorted(&r, 0);
        pipe_free(v);
        split_route_cleanup(&r);
    }
    pipe_buf_cleanup(&z);
}

static void test_split_reject_key_is_deterministic(void **state)
{
    (void)state;
    struct pipe_buf k;
    pipe_buf_init(&k, 1024);
    int64_t h = pipe_clock_from_civil(2026, 1, 1, 5, 0, 0, 0);
    assert_int_equal(split_reject_key(&k, "g1-job-0001", h), 0);
    assert_string_equal(k.data, "rejected/dt=2026-01-01/hr=05/g1-job-0001.split.ndjson.zst");
    pipe_buf_cleanup(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_route_groups_lines_by_event_and_hour),
        cmocka_unit_test(test_split_route_drops_repeats_within_the_object),
        cmocka_unit_test(test_split_route_settle_removes_keys_claimed_by_another_job),
        cmocka_unit_test(test_split_route_rejects_lines_it_cannot_route),
        cmocka_unit_test(test_split_route_time_field_ts_prefers_the_client_time),
        cmocka_unit_test(test_split_route_reset_forgets_the_previous_job),
        cmocka_unit_test(test_split_route_lines_straddling_decoded_windows_are_read_whole),
        cmocka_unit_test(test_split_route_line_at_max_line_is_routed_one_over_is_rejected),
        cmocka_unit_test(test_split_route_empty_object_has_no_outputs),
        cmocka_unit_test(test_split_route_settle_does_not_read_the_input_again),
        cmocka_unit_test(test_split_reject_key_is_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
