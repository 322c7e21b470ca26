/* event — envelope checks and enrichment on top of one ndjson scan. The
 * scanner compacts the event straight into the caller's buffer and reports
 * each top-level member; the envelope fields are judged from those spans,
 * so no event is parsed twice. */
#include "libpipe/event.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/ndjson.h"

enum field { F_EVENT, F_ID, F_TS, F__ENVELOPE, F_RECEIVED_AT = F__ENVELOPE, F_CHANNEL, F_OTHER };

static const char *const field_names[] = {"event", "id", "ts", "received_at", "channel"};

struct span {
    size_t off; /* of the value within out->data */
    size_t len;
    size_t in_off;
    bool esc;
    enum pipe_json_type type;
    int count;
};

/* What the member callback learns about the envelope. */
struct envelope {
    const char *data; /* out->data during the scan (it does not move) */
    struct span f[F__ENVELOPE];
    int dup; /* the first envelope field seen twice, or -1 */
};

const char *pipe_reason_code(enum pipe_reason r)
{
    static const char *const codes[PIPE_REASON__COUNT] = {
        [PIPE_REASON_OK] = "ok",
        [PIPE_REASON_NOT_JSON] = "not_json",
        [PIPE_REASON_NOT_OBJECT] = "not_object",
        [PIPE_REASON_MISSING_EVENT] = "missing_event",
        [PIPE_REASON_BAD_EVENT_TYPE] = "bad_event_type",
        [PIPE_REASON_BAD_ID] = "bad_id",
        [PIPE_REASON_BAD_TS] = "bad_ts",
        [PIPE_REASON_TOO_LARGE] = "too_large",
        [PIPE_REASON_INVALID_UTF8] = "invalid_utf8",
        [PIPE_REASON_TOO_DEEP] = "too_deep",
        [PIPE_REASON_BAD_NUMBER] = "bad_number",
        [PIPE_REASON_BAD_STRING] = "bad_string",
        [PIPE_REASON_DUPLICATE_FIELD] = "duplicate_field",
        [PIPE_REASON_SCHEMA_VIOLATION] = "schema_violation",
        [PIPE_REASON_UNKNOWN_SCHEMA_VERSION] = "unknown_schema_version",
        [PIPE_REASON_UNKNOWN_EVENT_TYPE] = "unknown_event_type",
    };
    return (unsigned)r < PIPE_REASON__COUNT ? codes[r] : "unknown";
}

static enum field classify(const char *k, size_t n, bool escaped)
{
    char tmp[16];
    if (escaped) {
        /* Only names up to 11 bytes matter; each decoded byte costs at most
         * six raw ones. */
        if (n > 6 * 11 || pipe_json_unescape(k, n, NULL) > sizeof tmp)
            return F_OTHER;
        n = pipe_json_unescape(k, n, tmp);
        k = tmp;
    }
    enum field f;
    switch (n) {
    case 2:
        f = k[0] == 'i' ? F_ID : F_TS;
        break;
    case 5:
        f = F_EVENT;
        break;
    case 7:
        f = F_CHANNEL;
        break;
    case 11:
        f = F_RECEIVED_AT;
        break;
    default:
        return F_OTHER;
    }
    return memcmp(field_names[f], k, n) == 0 ? f : F_OTHER;
}

static bool on_member(void *arg, const struct pipe_json_member *m)
{
    struct envelope *env = arg;
    /* Cheap filter first: every envelope name starts with one of these. */
    if (!m->key_escaped && m->key_len != 2 && m->key_len != 5 && m->key_len != 7 &&
        m->key_len != 11)
        return false;
    enum field f = classify(m->key, m->key_len, m->key_escaped);
    if (f == F_RECEIVED_AT || f == F_CHANNEL)
        return true;
    if (f == F_OTHER)
        return false;
    struct span *s = &env->f[f];
    if (++s->count == 2 && env->dup < 0)
        env->dup = (int)f;
    if (s->count == 1) {
        s->off = (size_t)(m->value - env->data);
        s->len = m->value_len;
        s->in_off = m->in_offset;
        s->esc = m->value_escaped;
        s->type = m->type;
    }
    return false;
}

static enum pipe_reason reason_of(enum pipe_json_error e)
{
    switch (e) {
    case PIPE_JSON_EUTF8:
        return PIPE_REASON_INVALID_UTF8;
    case PIPE_JSON_EDEPTH:
        return PIPE_REASON_TOO_DEEP;
    case PIPE_JSON_ENUMBER:
        return PIPE_REASON_BAD_NUMBER;
    case PIPE_JSON_ESTRING:
        return PIPE_REASON_BAD_STRING;
    case PIPE_JSON_ETOOLARGE:
        return PIPE_REASON_TOO_LARGE;
    default:
        return PIPE_REASON_NOT_JSON;
    }
}

bool pipe_event_type_valid(const char *s, size_t n)
{
    if (s == NULL || n < 1 || n > PIPE_EVENT_TYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (unsigned)((c | 0x20) - 'a') < 26u || (unsigned)(c - '0') < 10u;
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return false;
    }
    return true;
}

/* ts given as a number: an integer token in [0, PIPE_EVENT_TS_MAX]. */
static bool ts_from_number(const char *s, size_t n, int64_t *ms)
{
    size_t i = s[0] == '-';
    int64_t v = 0;
    if (i == n)
        return false;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false; /* a fraction or exponent: not an integer */
        if (v > PIPE_EVENT_TS_MAX)
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > PIPE_EVENT_TS_MAX || (s[0] == '-' && v != 0))
        return false;
    *ms = v;
    return true;
}

static bool ts_from_string(const char *raw, size_t n, bool esc, int64_t *ms)
{
    char tmp[64]; /* a valid RFC 3339 time is at most 35 bytes */
    if (esc) {
        if (n > 6 * sizeof tmp || pipe_json_unescape(raw, n, NULL) > sizeof tmp)
            return false;
        n = pipe_json_unescape(raw, n, tmp);
        raw = tmp;
    }
    int64_t v;
    if (pipe_clock_parse_rfc3339(raw, n, &v) < 0 || v < 0 || v > PIPE_EVENT_TS_MAX)
        return false;
    *ms = v;
    return true;
}

bool pipe_event_ts_parse(const char *value, size_t n, bool escaped, int64_t *ms)
{
    if (n >= 2 && value[0] == '"' && value[n - 1] == '"')
        return ts_from_string(value + 1, n - 2, escaped, ms);
    return n > 0 && ts_from_number(value, n, ms);
}

/* The envelope rules after a successful scan; fills res->message on
 * failure. data is the compacted event. */
static enum pipe_reason check_envelope(const struct envelope *env, const char *data,
                                       const struct pipe_event_ctx *ctx,
                                       struct pipe_event_result *res)
{
    const struct span *ev = &env->f[F_EVENT], *id = &env->f[F_ID], *ts = &env->f[F_TS];
    char *msg = res->message;
    size_t cap = sizeof res->message;
    if (env->dup >= 0) {
        snprintf(msg, cap, "duplicate top-level \"%s\" member", field_names[env->dup]);
        return PIPE_REASON_DUPLICATE_FIELD;
    }
    if (ev->count == 0) {
        snprintf(msg, cap, "no \"event\" member");
        return PIPE_REASON_MISSING_EVENT;
    }
    if (ev->type != PIPE_JSON_STRING || ev->esc ||
        !pipe_event_type_valid(data + ev->off + 1, ev->len - 2)) {
        snprintf(msg, cap, "\"event\" must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$ (at byte %zu)",
                 ev->in_off);
        return PIPE_REASON_BAD_EVENT_TYPE;
    }
    if (id->count) {
        size_t n = id->type == PIPE_JSON_STRING ? id->len - 2 : 0;
        if (n && id->esc)
            n = n > 6 * PIPE_EVENT_ID_MAX ? n : pipe_json_unescape(data + id->off + 1, n, NULL);
        if (n < 1 || n > PIPE_EVENT_ID_MAX) {
            snprintf(msg, cap, "\"id\" must be a string of 1 to %d bytes (at byte %zu)",
                     PIPE_EVENT_ID_MAX, id->in_off);
            return PIPE_REASON_BAD_ID;
        }
    }
    res->time_ms = ctx->received_ms;
    if (ts->count) {
        bool ok = (ts->type == PIPE_JSON_NUMBER || ts->type == PIPE_JSON_STRING) &&
                  pipe_event_ts_parse(data + ts->off, ts->len, ts->esc, &res->time_ms);
        if (!ok) {
            snprintf(msg, cap,
                     "\"ts\" must be an RFC 3339 time or epoch milliseconds "
                     "in 1970..9999 (at byte %zu)",
                     ts->in_off);
            return PIPE_REASON_BAD_TS;
        }
    }
    return PIPE_REASON_OK;
}

static char *put_json_string(char *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    *o++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    return o;
}

/* The hex id: XXH3-128 of channel, NUL, compacted object (big-endian hex). */
static void derive_id(const char *channel, const char *obj, size_t n, char hexid[33])
{
    static const char hex[] = "0123456789abcdef";
    XXH3_state_t st;
    XXH128_canonical_t c;
    XXH3_128bits_reset(&st);
    XXH3_128bits_update(&st, channel, strlen(channel) + 1);
    XXH3_128bits_update(&st, obj, n);
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&st));
    for (int i = 0; i < 16; i++) {
        hexid[2 * i] = hex[c.digest[i] >> 4];
        hexid[2 * i + 1] = hex[c.digest[i] & 15];
    }
    hexid[32] = '\0';
}

/* Replaces the closing brace of the compacted object at out->data + base
 * (olen bytes, kept members) with the filter's members and "}\n". */
static int enrich(struct pipe_buf *out, size_t base, size_t olen, size_t kept, bool derive,
                  const struct pipe_event_ctx *ctx, const char *channel,
                  struct pipe_event_result *res)
{
    char hexid[33], ts[PIPE_CLOCK_RFC3339_LEN + 1];
    size_t need = 64 + 32 + PIPE_CLOCK_RFC3339_LEN + 6 * strlen(channel);
    int rc = pipe_buf_reserve(out, need);
    if (rc < 0)
        return rc;
    char *obj = out->data + base, *o = obj + olen - 1;
    if (derive)
        derive_id(channel, obj, olen, hexid);
    if (kept)
        *o++ = ',';
    if (derive) {
        memcpy(o, "\"id\":\"", 6);
        memcpy(o + 6, hexid, 32);
        res->id = o + 6;
        res->id_len = 32;
        o[38] = '"';
        o += 39;
        *o++ = ',';
    }
    /* A batch shares one receive time: format it once per thread. */
    static _Thread_local int64_t cached_ms = INT64_MIN;
    static _Thread_local char cached[PIPE_CLOCK_RFC3339_LEN + 1];
    if (cached_ms != ctx->received_ms) {
        pipe_clock_format_rfc3339(ctx->received_ms, cached);
        cached_ms = ctx->received_ms;
    }
    memcpy(ts, cached, sizeof ts);
    memcpy(o, "\"received_at\":\"", 15);
    memcpy(o + 15, ts, PIPE_CLOCK_RFC3339_LEN);
    o += 15 + PIPE_CLOCK_RFC3339_LEN;
    memcpy(o, "\",\"channel\":", 12);
    o = put_json_string(o + 12, channel);
    *o++ = '}';
    *o++ = '\n';
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
    return 0;
}

int pipe_event_process(const char *in, size_t len, const struct pipe_event_ctx *ctx,
                       struct pipe_buf *out, struct pipe_event_result *res)
{
    const char *channel = ctx->channel ? ctx->channel : "";
    size_t max_bytes = ctx->max_bytes ? ctx->max_bytes : PIPE_EVENT_MAX_BYTES_DEFAULT;
    struct pipe_event_result r = {.reason = PIPE_REASON_OK};
    struct envelope env = {.dup = -1};
    struct pipe_json_result jr;
    size_t base = out->len;
    int rc = 0;

    if (len > max_bytes) {
        r.reason = PIPE_REASON_TOO_LARGE;
        snprintf(r.message, sizeof r.message, "event is %zu bytes, over the %zu-byte limit", len,
                 max_bytes);
        goto out;
    }
    /* Room for the scan and the enrichment at once, so the spans the
     * callback records stay put. */
    if ((rc = pipe_buf_reserve(out, len + 16 + 96 + 6 * strlen(channel))) < 0)
        return rc;
    env.data = out->data;
    struct pipe_json_opts opts = {
        ctx->max_depth > 0 ? ctx->max_depth : PIPE_EVENT_MAX_DEPTH_DEFAULT, 0, on_member, &env};
    rc = pipe_json_scan(in, len, &opts, out, &jr);
    if (rc == PIPE_EPARSE) {
        r.reason = reason_of(jr.err);
        snprintf(r.message, sizeof r.message, "%s at byte %zu", jr.what, jr.offset);
        rc = 0;
        goto out;
    }
    if (rc < 0)
        return rc;
    if (jr.type != PIPE_JSON_OBJECT) {
        r.reason = PIPE_REASON_NOT_OBJECT;
        snprintf(r.message, sizeof r.message, "the event is not a JSON object");
        goto out;
    }
    r.reason = check_envelope(&env, out->data, ctx, &r);
    if (r.reason != PIPE_REASON_OK)
        goto out;
    rc = enrich(out, base, jr.out_len, jr.kept, env.f[F_ID].count == 0, ctx, channel, &r);
    if (rc < 0)
        goto out;
    r.event = out->data + env.f[F_EVENT].off + 1;
    r.event_len = env.f[F_EVENT].len - 2;
    if (env.f[F_ID].count) {
        r.id = out->data + env.f[F_ID].off + 1;
        r.id_len = env.f[F_ID].len - 2;
    }
out:
    if (rc < 0 || r.reason != PIPE_REASON_OK) {
        out->len = base;
        if (out->data)
            out->data[base] = '\0';
    }
    if (rc == 0)
        *res = r;
    return rc;
}
