/* loadgen_bad — the malformed lines of `sluicectl gen`: one defect per line,
 * kinds in turn and variants within a kind in turn, each with the reason
 * code the filter is expected to give it (SPEC §5.4). Most are a good event
 * (loadgen_gen.c) with one member overridden. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/mem.h"
#include "tools/sluicectl/loadgen_gen.h"

#define GEN_LARGE_BYTES 70000 /* the oversized event: past the 64 KiB event cap */

enum bad_kind {
    BAD_NOT_JSON,
    BAD_NOT_OBJECT,
    BAD_MISSING_EVENT,
    BAD_EVENT_TYPE,
    BAD_ID,
    BAD_TS,
    BAD_UTF8,
    BAD_DEEP,
    BAD_NUMBER,
    BAD_STRING,
    BAD_DUP_FIELD,
    BAD_TOO_LARGE,
    BAD_KINDS
};

/* The reason code the filter is expected to give each kind (SPEC §5.4). */
static const char *const bad_reasons[BAD_KINDS] = {
    "not_json",     "not_object", "missing_event", "bad_event_type", "bad_id",          "bad_ts",
    "invalid_utf8", "too_deep",   "bad_number",    "bad_string",     "duplicate_field", "too_large",
};

#define V(list) ((list)[v % (sizeof(list) / sizeof((list)[0]))])

/* Each variant has exactly one defect, so the expected reason is unambiguous. */
static const char *const not_json[] = {
    NULL, /* a good event cut in half */
    "this is not json",
    "{\"event\":\"page_view\",\"id\":\"trailing-comma\",}",
    "{'event': 'page_view', 'id': 'single-quotes'}",
};
static const char *const not_object[] = {"\"page_view\"", "42", "null", "true"};
static const char *const bad_types[] = {
    "\"../../etc/passwd\"",
    "\"page/view\"",
    "\"ctl\\u0007char\"",
    "\"..hidden\"",
    NULL, /* 200 characters */
    "\"has space\"",
    "\"-dash-first\"",
};
static const char *const bad_ids[] = {NULL /* 200 chars */, "12345", "\"\"", "{\"v\":1}"};
static const char *const bad_ts[] = {"\"yesterday\"", "\"2024-13-45T25:61:00Z\"", "true",
                                     "\"12:00\"", "[2024]"};
static const char *const bad_utf8[] = {
    "\"comment\":\"caf\xc3\"",
    "\"comment\":\"\xff\xfe\"",
    "\"comment\":\"\xed\xa0\x80\"",
    "\"comment\":\"\xc0\xaf\"",
};
static const char *const bad_numbers[] = {"\"amount\":1e400", "\"amount\":-1e400",
                                          "\"amounts\":[1.5e9999]"};
static const char *const bad_strings[] = {"\"comment\":\"a\\u0000b\"",
                                          "\"name\":{\"first\":\"\\u0000\"}"};

static char *put_line(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    p[n] = '\n';
    return p + n + 1;
}

/* ctl_gen_write_bad — the next malformed line (kinds in turn, variants within a
 * kind in turn) at p; returns the end. */
char *ctl_gen_write_bad(struct gen_bad *bad, const struct gen *g, char *p, uint64_t seq,
                        struct gen_row *row)
{
    enum bad_kind kind = (enum bad_kind)(bad->n % BAD_KINDS);
    uint64_t v = bad->n / BAD_KINDS;
    bad->n++;
    struct gen_over ov = {0};
    const char *s;
    char dup[96];

    switch (kind) {
    case BAD_NOT_JSON:
        if ((s = V(not_json)) != NULL) {
            p = put_line(p, s);
            goto out_unknown;
        }
        char *end = ctl_gen_write_event(g, p, seq, 0, false, &ov, row);
        size_t cut = (size_t)(end - p) / 2;
        while ((p[cut] & 0xc0) == 0x80) /* cut on a character boundary */
            cut--;
        p += cut;
        *p++ = '\n';
        goto out_unknown;
    case BAD_NOT_OBJECT:
        p = put_line(p, V(not_object));
        goto out_unknown;
    case BAD_MISSING_EVENT:
        ov.omit_event = true;
        break;
    case BAD_EVENT_TYPE:
        ov.event_raw = V(bad_types) ? V(bad_types) : bad->long_event;
        break;
    case BAD_ID:
        ov.id_raw = V(bad_ids) ? V(bad_ids) : bad->long_id;
        break;
    case BAD_TS:
        ov.ts_raw = V(bad_ts);
        break;
    case BAD_UTF8:
        ov.extra = V(bad_utf8);
        break;
    case BAD_DEEP:
        ov.extra = bad->deep[v % 2];
        break;
    case BAD_NUMBER:
        ov.extra = V(bad_numbers);
        break;
    case BAD_STRING:
        ov.extra = V(bad_strings);
        break;
    case BAD_DUP_FIELD: {
        char a[37], b[37];
        ctl_gen_make_id(g, seq, a);
        ctl_gen_make_id(g, seq ^ (1ULL << 62), b);
        snprintf(dup, sizeof dup, "\"%s\",\"id\":\"%s\"", a, v % 2 ? a : b);
        ov.id_raw = dup;
        break;
    }
    case BAD_TOO_LARGE:
        ov.extra = bad->large;
        break;
    default:
        break;
    }
    ov.extra_len = ov.extra ? strlen(ov.extra) : 0;
    p = ctl_gen_write_event(g, p, seq, 0, false, &ov, row);
    if (kind == BAD_MISSING_EVENT || kind == BAD_EVENT_TYPE)
        row->event = NULL;
    row->accepted = false;
    row->reason = bad_reasons[kind];
    return p;

out_unknown:
    row->accepted = false;
    row->event = NULL;
    row->id[0] = '\0';
    row->reason = bad_reasons[kind];
    return p;
}

static char *repeat(const char *head, char c, size_t n, const char *tail)
{
    size_t hl = strlen(head), tl = strlen(tail);
    char *s = pipe_malloc(hl + n + tl + 1);
    memcpy(s, head, hl);
    memset(s + hl, c, n);
    memcpy(s + hl + n, tail, tl + 1);
    return s;
}

static char *nest(const char *open, const char *leaf, const char *close, int depth)
{
    struct pipe_buf b;
    pipe_buf_init(&b, SIZE_MAX);
    pipe_buf_append_str(&b, "\"nested\":");
    for (int i = 0; i < depth; i++)
        pipe_buf_append_str(&b, open);
    pipe_buf_append_str(&b, leaf);
    for (int i = 0; i < depth; i++)
        pipe_buf_append_str(&b, close);
    size_t len;
    return pipe_buf_steal(&b, &len);
}

void ctl_gen_bad_init(struct gen_bad *bad)
{
    *bad = (struct gen_bad){0};
    bad->large = repeat("\"blob\":\"", 'x', GEN_LARGE_BYTES, "\"");
    bad->long_event = repeat("\"", 'e', 200, "\"");
    bad->long_id = repeat("\"", '7', 200, "\"");
    bad->deep[0] = nest("{\"a\":", "1", "}", 100);
    bad->deep[1] = nest("[", "1", "]", 100);
}

void ctl_gen_bad_cleanup(struct gen_bad *bad)
{
    pipe_free(bad->large);
    pipe_free(bad->long_event);
    pipe_free(bad->long_id);
    pipe_free(bad->deep[0]);
    pipe_free(bad->deep[1]);
}
