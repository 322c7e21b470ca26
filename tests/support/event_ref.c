/* event_ref — jansson reference implementation of the event envelope rules
 * (see event_ref.h). Written for obviousness, not speed. */
#include "tests/support/event_ref.h"

#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define REF_TS_MAX 253402300799999LL

struct member {
    const char *key; /* decoded, owned by kjson */
    json_t *kjson;
    const char *raw_key; /* with quotes */
    size_t raw_key_len;
    const char *raw_val;
    size_t raw_val_len;
    json_t *val;
};

int event_ref_is_parse_reason(enum pipe_reason r)
{
    return r == PIPE_REASON_NOT_JSON || r == PIPE_REASON_INVALID_UTF8 ||
           r == PIPE_REASON_BAD_STRING || r == PIPE_REASON_BAD_NUMBER ||
           r == PIPE_REASON_TOO_DEEP;
}

size_t event_ref_strip_ws(const char *in, size_t len, char *out)
{
    size_t n = 0;
    bool str = false;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (str) {
            out[n++] = c;
            if (c == '\\' && i + 1 < len)
                out[n++] = in[++i];
            else if (c == '"')
                str = false;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            out[n++] = c;
            str = c == '"';
        }
    }
    return n;
}

/* Nesting depth counted on the text: jansson's DOM keeps only the last of
 * duplicate keys, so a deep value under a repeated key would not show. The
 * text is valid JSON here, so brackets outside strings are structure. */
static int text_depth(const char *in, size_t len)
{
    int d = 0, max = 0;
    bool str = false;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                str = false;
        } else if (c == '"') {
            str = true;
        } else if (c == '{' || c == '[') {
            max = ++d > max ? d : max;
        } else if (c == '}' || c == ']') {
            d--;
        }
    }
    return max;
}

static enum pipe_reason parse_reason(const json_error_t *e)
{
    switch (json_error_code(e)) {
    case json_error_invalid_utf8: return PIPE_REASON_INVALID_UTF8;
    case json_error_null_character: return PIPE_REASON_BAD_STRING;
    case json_error_null_byte_in_key: return PIPE_REASON_BAD_STRING;
    case json_error_numeric_overflow: return PIPE_REASON_BAD_NUMBER;
    case json_error_stack_overflow: return PIPE_REASON_TOO_DEEP;
    default:
        /* jansson says "unexpected newline" for a raw \n inside a string. */
        if (strncmp(e->text, "control character", 17) == 0 ||
            strncmp(e->text, "unexpected newline", 18) == 0 ||
            strncmp(e->text, "invalid Unicode", 15) == 0)
            return PIPE_REASON_BAD_STRING;
        return PIPE_REASON_NOT_JSON;
    }
}

static const char *skip(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Walks the members of the (already validated) top-level object, letting
 * jansson parse each key and value and say how many bytes it took. */
static size_t walk_members(const char *in, size_t len, struct member **out)
{
    const char *p = skip(in, in + len), *end = in + len;
    size_t n = 0, cap = 8;
    struct member *m = calloc(cap, sizeof *m);
    json_error_t e;
    p = skip(p + 1, end); /* '{' */
    while (p < end && *p != '}') {
        if (n == cap)
            m = realloc(m, (cap *= 2) * sizeof *m);
        struct member *x = &m[n++];
        x->kjson = json_loadb(p, (size_t)(end - p), JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &e);
        x->key = json_string_value(x->kjson);
        if (!x->key) { /* cannot happen on text jansson accepted; stop rather than crash */
            n--;
            break;
        }
        x->raw_key = p;
        x->raw_key_len = (size_t)e.position;
        p = skip(skip(p + e.position, end) + 1, end); /* ':' */
        x->val = json_loadb(p, (size_t)(end - p),
                            JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_DECODE_INT_AS_REAL, &e);
        x->raw_val = p;
        x->raw_val_len = (size_t)e.position;
        p = skip(p + e.position, end);
        if (p < end && *p == ',')
            p = skip(p + 1, end);
    }
    *out = m;
    return n;
}

static bool event_name_ok(const json_t *v, const struct member *m)
{
    static regex_t re;
    static bool compiled;
    if (!compiled) {
        regcomp(&re, "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", REG_EXTENDED | REG_NOSUB);
        compiled = true;
    }
    /* The decoded name is ASCII when it matches, so raw == decoded + quotes
     * exactly when the client wrote no escapes. */
    return json_is_string(v) && regexec(&re, json_string_value(v), 0, NULL, 0) == 0 &&
           m->raw_val_len == json_string_length(v) + 2;
}

static bool ts_ok(const struct member *m, const struct event_ref_clock *clk, int64_t *ms)
{
    if (json_is_string(m->val)) {
        int64_t v;
        if (clk->parse_rfc3339(json_string_value(m->val), json_string_length(m->val), &v) != 0)
            return false;
        *ms = v;
        return v >= 0 && v <= REF_TS_MAX;
    }
    if (!json_is_number(m->val))
        return false;
    json_error_t e;
    json_t *i = json_loadb(m->raw_val, m->raw_val_len, JSON_DECODE_ANY, &e);
    bool ok = json_is_integer(i) && json_integer_value(i) >= 0 && json_integer_value(i) <= REF_TS_MAX;
    if (ok)
        *ms = json_integer_value(i);
    json_decref(i);
    return ok;
}

static char *derive_id(const char *channel, const struct member *m, size_t n)
{
    size_t cap = strlen(channel) + 3, len = 0;
    for (size_t i = 0; i < n; i++)
        cap += m[i].raw_key_len + m[i].raw_val_len + 2;
    char *buf = malloc(cap);
    memcpy(buf, channel, strlen(channel) + 1);
    len = strlen(channel) + 1;
    buf[len++] = '{';
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(m[i].key, "received_at") || !strcmp(m[i].key, "channel"))
            continue;
        if (kept++)
            buf[len++] = ',';
        memcpy(buf + len, m[i].raw_key, m[i].raw_key_len);
        len += m[i].raw_key_len;
        buf[len++] = ':';
        len += event_ref_strip_ws(m[i].raw_val, m[i].raw_val_len, buf + len);
    }
    buf[len++] = '}';
    XXH128_hash_t h = XXH3_128bits(buf, len);
    free(buf);
    char *hex = malloc(33);
    snprintf(hex, 33, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
    return hex;
}

/* The envelope decisions over the walked members. */
static enum pipe_reason judge(const struct member *m, size_t n, const struct pipe_event_ctx *ctx,
                              const struct event_ref_clock *clk, int64_t *time_ms)
{
    static const char *const env[] = {"event", "id", "ts"};
    int seen[3] = {0, 0, 0};
    const struct member *f[3] = {NULL, NULL, NULL};
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++)
            if (!strcmp(m[i].key, env[k])) {
                if (seen[k]++)
                    return PIPE_REASON_DUPLICATE_FIELD;
                f[k] = &m[i];
            }
    if (!f[0])
        return PIPE_REASON_MISSING_EVENT;
    if (!event_name_ok(f[0]->val, f[0]))
        return PIPE_REASON_BAD_EVENT_TYPE;
    if (f[1] && (!json_is_string(f[1]->val) || json_string_length(f[1]->val) < 1 ||
                 json_string_length(f[1]->val) > 128))
        return PIPE_REASON_BAD_ID;
    *time_ms = ctx->received_ms;
    if (f[2] && !ts_ok(f[2], clk, time_ms))
        return PIPE_REASON_BAD_TS;
    return PIPE_REASON_OK;
}

void event_ref_process(const char *in, size_t len, const struct pipe_event_ctx *ctx,
                       const struct event_ref_clock *clk, struct event_ref_result *res)
{
    size_t max_bytes = ctx->max_bytes ? ctx->max_bytes : 65536;
    int max_depth = ctx->max_depth > 0 ? ctx->max_depth : 32;
    const char *channel = ctx->channel ? ctx->channel : "";
    json_error_t e;
    json_t *root = NULL;
    struct member *m = NULL;
    size_t n = 0;

    memset(res, 0, sizeof *res);
    if (len > max_bytes) {
        res->reason = PIPE_REASON_TOO_LARGE;
        return;
    }
    /* jansson 2.14 takes a raw NUL byte after a number or literal for the
     * end of the token ({"a":7<NUL> } loads), so NULs are judged here: raw
     * NUL is never valid JSON. */
    if (memchr(in, '\0', len)) {
        res->reason = PIPE_REASON_NOT_JSON;
        return;
    }
    root = json_loadb(in, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &e);
    if (!root) {
        res->reason = parse_reason(&e);
        return;
    }
    res->json_ok = 1;
    if (text_depth(in, len) > max_depth)
        res->reason = PIPE_REASON_TOO_DEEP;
    else if (!json_is_object(root))
        res->reason = PIPE_REASON_NOT_OBJECT;
    if (res->reason != PIPE_REASON_OK)
        goto out;
    n = walk_members(in, len, &m);
    res->reason = judge(m, n, ctx, clk, &res->time_ms);
    if (res->reason != PIPE_REASON_OK)
        goto out;

    json_t *x = json_object();
    for (size_t i = 0; i < n; i++)
        if (strcmp(m[i].key, "received_at") && strcmp(m[i].key, "channel"))
            json_object_set(x, m[i].key, m[i].val);
    if (!json_object_get(x, "id")) {
        char *id = derive_id(channel, m, n);
        json_object_set_new(x, "id", json_string(id));
        free(id);
    }
    char ts[64];
    clk->format_rfc3339(ctx->received_ms, ts);
    json_object_set_new(x, "received_at", json_string(ts));
    json_object_set_new(x, "channel", json_string(channel));
    res->expected = x;
out:
    for (size_t i = 0; i < n; i++) {
        json_decref(m[i].kjson);
        json_decref(m[i].val);
    }
    free(m);
    json_decref(root);
}
