/* Differential test: pipe_event_process against the jansson reference in
 * tests/support/event_ref.c over a seeded corpus of generated events and
 * hostile mutations of them. Both must accept and reject the same inputs
 * for the same reason, and every accepted line must parse to the object the
 * reference built. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/event.h"
#include "tests/support/event_ref.h"

#define CORPUS 200000
#define MAXLEN 4096

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static uint32_t below(uint32_t n)
{
    return n ? rnd() % n : 0;
}

struct gen {
    char b[MAXLEN];
    size_t n;
};

static void put(struct gen *g, const char *s, size_t n)
{
    if (g->n + n < MAXLEN) {
        memcpy(g->b + g->n, s, n);
        g->n += n;
    }
}

static void puts_(struct gen *g, const char *s)
{
    put(g, s, strlen(s));
}

static void ws(struct gen *g)
{
    static const char *const w[] = {"", "", "", "", " ", "\n", "\t ", "\r\n  "};
    puts_(g, w[below(8)]);
}

static void gen_string(struct gen *g)
{
    static const char *const parts[] = {
        "a", "hello", " ", "\\n", "\\\"", "\\\\", "\\/", "\\u00e9", "\xc3\xa9", "\xe2\x82\xac",
        "\xf0\x9f\x98\x80", "\\ud83d\\ude00", "\\u0041", "\x7f", "/", "{", "}", "[", "]", ",", ":",
        "0123456789abcdef0123456789abcdef", "\\t", "\\b\\f\\r"};
    put(g, "\"", 1);
    for (uint32_t i = below(6); i > 0; i--)
        puts_(g, parts[below(sizeof parts / sizeof *parts)]);
    put(g, "\"", 1);
}

static void gen_number(struct gen *g)
{
    static const char *const nums[] = {"0", "-0", "1", "-17", "3.25", "1e10", "-2.5E-3", "1e308",
                                       "12345678901234567890", "0.000001", "1E+2", "1e-400",
                                       "9007199254740993", "1.7976931348623157e308"};
    puts_(g, nums[below(sizeof nums / sizeof *nums)]);
}

static void gen_value(struct gen *g, int depth)
{
    uint32_t k = below(depth > 4 ? 5 : 8);
    switch (k) {
    case 0: case 1: gen_string(g); break;
    case 2: gen_number(g); break;
    case 3: puts_(g, below(2) ? "true" : "false"); break;
    case 4: puts_(g, "null"); break;
    case 5: case 6: {
        put(g, "{", 1);
        for (uint32_t i = below(4), j = 0; j < i; j++) {
            if (j) put(g, ",", 1);
            ws(g);
            gen_string(g);
            ws(g);
            put(g, ":", 1);
            ws(g);
            gen_value(g, depth + 1);
        }
        ws(g);
        put(g, "}", 1);
        break;
    }
    default:
        put(g, "[", 1);
        for (uint32_t i = below(4), j = 0; j < i; j++) {
            if (j) put(g, ",", 1);
            ws(g);
            gen_value(g, depth + 1);
        }
        put(g, "]", 1);
    }
}

static void gen_event_name(struct gen *g)
{
    static const char *const names[] = {"page_view", "signup", "a", "Order.Completed-v2", "9lives",
                                        "a/b", "..", "_x", "", "a b", "caf\xc3\xa9", "\\u0061",
                                        "a\\u0000", "x.y..z", "A-"};
    put(g, "\"", 1);
    uint32_t k = below(40);
    if (k < 15) {
        puts_(g, names[k]);
    } else if (k < 30) {
        puts_(g, names[below(5)]);
    } else {
        uint32_t len = 120 + below(12);
        for (uint32_t i = 0; i < len; i++)
            put(g, "abcXYZ019_.-" + (i == 0 ? below(6) : below(12)), 1);
    }
    put(g, "\"", 1);
}

static void gen_id(struct gen *g)
{
    switch (below(16)) {
    case 0: puts_(g, "42"); return;
    case 1: puts_(g, "null"); return;
    case 2: puts_(g, "\"\""); return;
    case 3: {
        uint32_t len = 126 + below(5);
        put(g, "\"", 1);
        for (uint32_t i = 0; i < len; i++)
            puts_(g, below(8) ? "i" : "\\u0041");
        put(g, "\"", 1);
        return;
    }
    default: {
        char buf[64];
        snprintf(buf, sizeof buf, "\"%08x-%04x\"", rnd(), rnd() & 0xffff);
        puts_(g, buf);
    }
    }
}

static void gen_ts(struct gen *g)
{
    static const char *const ts[] = {
        "1700000000000", "0", "-0", "-1", "253402300799999", "253402300800000", "1.7e12", "1e3",
        "99999999999999999999", "\"2024-01-31T23:59:59.999Z\"", "\"2024-02-30T00:00:00Z\"",
        "\"2024-01-01 12:00:00+05:30\"", "\"1969-12-31T23:59:59Z\"", "\"1970-01-01T00:00:00+01:00\"",
        "\"2024-01-01T00:00:00\"", "\"2024-01-01T00:00:60Z\"", "null", "true", "\"\"",
        "\"2024-01-01T00:00:00\\u002e123Z\"", "\"9999-12-31T23:59:59.999-01:00\""};
    puts_(g, ts[below(3) ? below(2) * 9 : below(sizeof ts / sizeof *ts)]);
}

/* A plausible event: envelope fields in random order, sometimes repeated or
 * missing, plus the event's own data. */
static void gen_event(struct gen *g)
{
    int order[8] = {0, 1, 2, 3, 4, 5, 6, 7}, n = 0;
    for (int i = 7; i > 0; i--) {
        int j = (int)below((uint32_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    g->n = 0;
    ws(g);
    put(g, "{", 1);
    for (int i = 0; i < 8; i++) {
        int f = order[i];
        bool present = f == 0 ? below(20) != 0 : f <= 2 ? below(2) : f <= 4 ? below(6) == 0 : true;
        for (int rep = present ? 1 + (below(25) == 0) : 0; rep > 0; rep--) {
            if (n++)
                put(g, ",", 1);
            ws(g);
            static const char *const keys[] = {"\"event\"", "\"id\"", "\"ts\"", "\"received_at\"",
                                               "\"channel\"", "\"properties\"", "\"user_id\"",
                                               "\"context\""};
            puts_(g, f == 0 && below(30) == 0 ? "\"\\u0065vent\"" : keys[f]);
            ws(g);
            put(g, ":", 1);
            ws(g);
            if (f == 0)
                gen_event_name(g);
            else if (f == 1)
                gen_id(g);
            else if (f == 2)
                gen_ts(g);
            else
                gen_value(g, 1);
        }
    }
    ws(g);
    put(g, "}", 1);
    ws(g);
}

static void insert(struct gen *g, size_t at, const char *s, size_t n)
{
    if (g->n + n >= MAXLEN || at > g->n)
        return;
    memmove(g->b + at + n, g->b + at, g->n - at);
    memcpy(g->b + at, s, n);
    g->n += n;
}

static void mutate(struct gen *g)
{
    static const char *const bad[] = {"\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82",
                                      "\xff", "\x80", "\xf0\x9f\x98", "\\ud800", "\\udc00\\ud800",
                                      "\\u0000", "\\ud83d\\ude00", "\x01", "\x1f", "\\x", "\\u12",
                                      "1e400", "-1e309", "1.7976931348623159e308", "1e-400",
                                      ",\"event\":\"dup\"", ",\"id\":\"dup\"", ",\"ts\":1",
                                      ",\"channel\":\"c\"", ",\"x\":1", "\"", "{", "}", "[", "]", ",",
                                      ":", "\\", " ", "\n", "0", "-", "e", "."};
    size_t at = g->n ? below((uint32_t)g->n + 1) : 0;
    switch (below(8)) {
    case 6: /* not an object at the top */
        insert(g, 0, "[", 1);
        insert(g, g->n, "]", 1);
        break;
    case 0:
        if (g->n)
            g->b[below((uint32_t)g->n)] = (char)rnd();
        break;
    case 1:
        if (g->n)
            g->b[below((uint32_t)g->n)] ^= (char)(1u << below(8));
        break;
    case 2:
        g->n = at;
        break;
    case 3: {
        const char *s = bad[below(sizeof bad / sizeof *bad)];
        insert(g, at, s, strlen(s));
        break;
    }
    case 4:
        if (at < g->n) {
            memmove(g->b + at, g->b + at + 1, g->n - at - 1);
            g->n--;
        }
        break;
    case 5: { /* bury a value in nesting near the depth cap */
        const char *v = strstr(g->b, "\"properties\"");
        if (!v || (size_t)(v - g->b) + 13 > g->n)
            break;
        size_t pos = (size_t)(v - g->b) + 12;
        while (pos < g->n && g->b[pos] != ':')
            pos++;
        int d = 28 + (int)below(8);
        char open[64], close[64];
        memset(open, '[', (size_t)d);
        memset(close, ']', (size_t)d);
        pos++;
        insert(g, pos, open, (size_t)d);
        /* Close right after the first scalar-ish character run. */
        size_t end = pos + (size_t)d;
        while (end < g->n && !strchr(",}", g->b[end]))
            end++;
        insert(g, end, close, (size_t)d);
        break;
    }
    default: { /* duplicate a slice */
        size_t from = g->n ? below((uint32_t)g->n) : 0, len = below(16);
        if (from + len <= g->n) {
            char tmp[16];
            memcpy(tmp, g->b + from, len);
            insert(g, at, tmp, len);
        }
    }
    }
}

static struct {
    long cases, accepted, reasons_exact, parse_reason_differs;
    long by_reason[PIPE_REASON__COUNT];
    long pairs[PIPE_REASON__COUNT][PIPE_REASON__COUNT];
} stats;

static const struct event_ref_clock clk = {pipe_clock_parse_rfc3339, pipe_clock_format_rfc3339};

static void dump(const char *why, const struct gen *g, enum pipe_reason fast, enum pipe_reason ref,
                 const char *msg)
{
    fprintf(stderr, "MISMATCH (%s): fast=%s (%s) ref=%s input(%zu)=", why, pipe_reason_code(fast),
            msg, pipe_reason_code(ref), g->n);
    for (size_t i = 0; i < g->n; i++) {
        unsigned char c = (unsigned char)g->b[i];
        fprintf(stderr, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
    }
    fprintf(stderr, "\n");
}

static void check_accepted(const struct gen *g, const struct pipe_buf *b, size_t base,
                           const struct pipe_event_result *r, const struct event_ref_result *ref)
{
    const char *line = b->data + base;
    size_t n = b->len - base;
    assert_true(n > 1 && line[n - 1] == '\n');
    assert_null(memchr(line, '\n', n - 1));
    char *stripped = malloc(n);
    assert_int_equal(event_ref_strip_ws(line, n - 1, stripped), n - 1); /* compact */
    free(stripped);
    json_error_t e;
    json_t *got = json_loadb(line, n - 1, JSON_DECODE_INT_AS_REAL, &e);
    if (!got || !json_equal(got, ref->expected)) {
        char *want = json_dumps(ref->expected, JSON_COMPACT | JSON_SORT_KEYS);
        dump("output differs", g, r->reason, ref->reason, "");
        fprintf(stderr, "got:  %.*s\nwant: %s\n", (int)n, line, want);
        free(want);
        fail();
    }
    assert_int_equal(r->time_ms, ref->time_ms);
    const char *ev = json_string_value(json_object_get(ref->expected, "event"));
    assert_int_equal(r->event_len, strlen(ev));
    assert_memory_equal(r->event, ev, r->event_len);
    const char *id = json_string_value(json_object_get(ref->expected, "id"));
    if (!memchr(r->id, '\\', r->id_len)) {
        assert_int_equal(r->id_len, json_string_length(json_object_get(ref->expected, "id")));
        assert_memory_equal(r->id, id, r->id_len);
    }
    json_decref(got);
}

static void check_one(const struct gen *g, const struct pipe_event_ctx *ctx, struct pipe_buf *b)
{
    struct pipe_event_result r;
    struct event_ref_result ref;
    size_t base = b->len;
    assert_int_equal(pipe_event_process(g->b, g->n, ctx, b, &r), 0);
    event_ref_process(g->b, g->n, ctx, &clk, &ref);
    stats.cases++;
    stats.by_reason[r.reason]++;
    if ((r.reason == PIPE_REASON_OK) != (ref.reason == PIPE_REASON_OK)) {
        dump("accept/reject", g, r.reason, ref.reason, r.message);
        fail();
    }
    if (r.reason == PIPE_REASON_OK) {
        stats.accepted++;
        check_accepted(g, b, base, &r, &ref);
    } else {
        assert_int_equal(b->len, base);
    }
    if (r.reason == ref.reason) {
        stats.reasons_exact++;
    } else if (!ref.json_ok && event_ref_is_parse_reason(r.reason) &&
               event_ref_is_parse_reason(ref.reason)) {
        /* Two faults in one text: each parser may name a different one. */
        stats.parse_reason_differs++;
        stats.pairs[r.reason][ref.reason]++;
        if (getenv("DIFF_SHOW") && stats.pairs[r.reason][ref.reason] <= 3)
            dump("parse reason (info)", g, r.reason, ref.reason, r.message);
    } else {
        dump("reason", g, r.reason, ref.reason, r.message);
        fail();
    }
    json_decref(ref.expected);
    if (b->len > (1 << 19))
        pipe_buf_reset(b);
}

static void test_event_fast_path_agrees_with_jansson_reference(void **state)
{
    (void)state;
    struct gen g;
    struct pipe_buf b;
    pipe_buf_init(&b, 1 << 20);
    for (long i = 0; i < CORPUS; i++) {
        struct pipe_event_ctx ctx = {"web", 1700000000000LL + i, 0, 0};
        if (i % 7 == 0)
            ctx.max_depth = 2 + (int)below(4);
        if (i % 11 == 0)
            ctx.max_bytes = 40 + below(200);
        if (i % 13 == 0)
            ctx.channel = below(2) ? "i\"os" : NULL;
        gen_event(&g);
        for (uint32_t m = below(5) < 2 ? 0 : 1 + below(3); m > 0; m--)
            mutate(&g);
        check_one(&g, &ctx, &b);
    }
    pipe_buf_cleanup(&b);
    printf("diff: %ld cases, %ld accepted, %ld same reason, %ld different parse-error reason\n",
           stats.cases, stats.accepted, stats.reasons_exact, stats.parse_reason_differs);
    for (int i = 0; i < PIPE_REASON__COUNT; i++)
        printf("  %-16s %ld\n", pipe_reason_code((enum pipe_reason)i), stats.by_reason[i]);
    for (int i = 0; i < PIPE_REASON__COUNT; i++)
        for (int j = 0; j < PIPE_REASON__COUNT; j++)
            if (stats.pairs[i][j])
                printf("  fast %s / ref %s: %ld\n", pipe_reason_code((enum pipe_reason)i),
                       pipe_reason_code((enum pipe_reason)j), stats.pairs[i][j]);
    /* The corpus must exercise every reason of the envelope step, or it
     * proves little (the schema reasons come from libpipe/schema.h). */
    for (int i = 0; i < PIPE_REASON_SCHEMA_VIOLATION; i++)
        assert_true(stats.by_reason[i] > 0);
    assert_true(stats.accepted > CORPUS / 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_fast_path_agrees_with_jansson_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
