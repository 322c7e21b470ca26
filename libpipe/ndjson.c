/* ndjson — the validating, compacting JSON scanner behind the filter's and
 * the splitter's hot paths. One pass over the input, no recursion, no
 * allocation: nesting is a bit stack (1 = object), strings are checked
 * sixteen (SSE2) or eight bytes at a time when they hold nothing special.
 * The body splitter, which cuts request bodies into records, is in
 * ndjson_body.c. */
#include "libpipe/ndjson.h"

#include <stdint.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/ndjson_int.h"

/* The smallest decimal magnitude that rounds to infinity as a double:
 * 2^1024 - 2^970 (half an ulp above DBL_MAX; a tie rounds up to 2^1024,
 * because DBL_MAX's mantissa is odd). 309 digits. */
static const char dbl_overflow_digits[] =
    "17976931348623158079372897140530341507993413271003782693617377898044496829276"
    "47509466490179775872070963302864166928879109465555478519404026306574886715058"
    "20681908902000708383676273854845817711531764475730270069855571366959622842914"
    "819860834936475292719074168444365510704342711559699508093042880177904174497792";

struct scan {
    const unsigned char *start, *end;
    char *obase;
    unsigned flags;
    int max_depth;
    size_t kept;
    pipe_json_member_fn cb;
    void *arg;
    enum pipe_json_type top_type;
    /* The top-level child being scanned. */
    char *mstart;
    const char *key;
    size_t key_len;
    bool key_esc;
    const unsigned char *vin;
    char *vout;
    enum pipe_json_type vtype;
    bool vesc;
    /* The first error. */
    enum pipe_json_error err;
    const unsigned char *at;
    const char *what;
    uint64_t stack[PIPE_JSON_DEPTH_LIMIT / 64];
};

static size_t utf8_seq(const unsigned char *p, const unsigned char *end);

/* Records the first error. A syntax error on a byte that is not UTF-8 is
 * reported as bad UTF-8: the more useful message, and what jansson says. */
static int fail(struct scan *s, enum pipe_json_error e, const unsigned char *at, const char *what)
{
    if (e == PIPE_JSON_ESYNTAX && at < s->end && *at >= 0x80 && utf8_seq(at, s->end) == 0) {
        e = PIPE_JSON_EUTF8;
        what = "invalid UTF-8";
    }
    s->err = e;
    s->at = at;
    s->what = what;
    return -1;
}

static ALWAYS_INLINE bool is_digit(unsigned c)
{
    return c - '0' < 10u;
}

/* A mask with the high bit set in (at least) the first byte of x that is a
 * quote, a backslash, a control character or non-ASCII: the bytes the
 * plain-string loop must look at. Bits above the first such byte may be
 * spurious (borrows), so only the lowest set bit is meaningful. */
static ALWAYS_INLINE uint64_t swar_special(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
    uint64_t lt20 = (x - ones * 0x20) & ~x;
    return (lt20 | ((q - ones) & ~q) | ((b - ones) & ~b) | x) & high;
}

#ifdef NDJSON_SSE2
/* As swar_special for sixteen bytes, exact: bit i set when byte i is a
 * quote, a backslash, a control character or non-ASCII. A signed compare
 * with 0x20 catches both of the last two (bytes >= 0x80 are negative). */
static ALWAYS_INLINE unsigned sse2_special(__m128i x)
{
    __m128i q = _mm_cmpeq_epi8(x, _mm_set1_epi8('"'));
    __m128i b = _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'));
    __m128i c = _mm_cmplt_epi8(x, _mm_set1_epi8(0x20));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(q, b), c));
}
#endif

/* Length of the valid UTF-8 sequence at p (first byte >= 0x80), or 0 for an
 * overlong form, an encoded surrogate, a code point past U+10FFFF or a
 * sequence cut short. */
static ALWAYS_INLINE size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t avail = (size_t)(end - p);
    if (c >= 0xC2 && c <= 0xDF)
        return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return avail >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return avail >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 &&
                       (p[3] & 0xC0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

static int hex4(const unsigned char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c - '0' < 10u)
            d = c - '0';
        else if ((c | 0x20) - 'a' < 6u)
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = v << 4 | (int)d;
    }
    return v;
}

/* The first byte of p[0..4) that is not a hex digit (or the end). */
static const unsigned char *bad_hex(const unsigned char *p, const unsigned char *end)
{
    for (int i = 0; i < 4 && p < end; i++, p++)
        if (!is_digit(*p) && (unsigned)((*p | 0x20) - 'a') >= 6u)
            return p;
    return p;
}

/* A backslash escape at *pp; copied to the output unchanged. */
static int scan_escape(struct scan *s, const unsigned char **pp, char **op, bool emit)
{
    const unsigned char *p = *pp;
    size_t n = 2;
    if (s->end - p < 2)
        return fail(s, PIPE_JSON_ESYNTAX, p, "unterminated string");
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        break;
    case 'u': {
        bool strict = !(s->flags & PIPE_JSON_LENIENT);
        int cp = s->end - p >= 6 ? hex4(p + 2) : -1;
        n = 6;
        if (cp < 0)
            return fail(s, PIPE_JSON_ESYNTAX, bad_hex(p + 2, s->end), "invalid \\u escape");
        if (cp == 0 && strict)
            return fail(s, PIPE_JSON_ESTRING, p, "\\u0000 in string");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            bool esc_u = s->end - p >= 8 && p[6] == '\\' && p[7] == 'u';
            int lo = esc_u && s->end - p >= 12 ? hex4(p + 8) : -1;
            if (lo >= 0xDC00 && lo <= 0xDFFF)
                n = 12;
            else if (esc_u && lo < 0) /* what follows is broken in itself */
                return fail(s, PIPE_JSON_ESYNTAX, bad_hex(p + 8, s->end), "invalid \\u escape");
            else if (s->end - p <= 6)
                return fail(s, PIPE_JSON_ESYNTAX, s->end, "unterminated string");
            else if (strict)
                return fail(s, PIPE_JSON_ESTRING, p, "unpaired surrogate escape");
        } else if (cp >= 0xDC00 && cp <= 0xDFFF && strict) {
            return fail(s, PIPE_JSON_ESTRING, p, "unpaired surrogate escape");
        }
        break;
    }
    default:
        return fail(s, PIPE_JSON_ESYNTAX, p + 1, "invalid escape");
    }
    if (emit) {
        memcpy(*op, p, n);
        *op += n;
    }
    *pp = p + n;
    return 0;
}

/* Past the run of plain string bytes at p (none of them a quote, a
 * backslash, a control character or non-ASCII), copied to *op when emit:
 * the first byte that needs a look, or end. Each step stores all its bytes
 * (output never runs ahead of input, and the caller reserved 16 bytes of
 * slack) and then advances both pointers only to the first special byte. */
static ALWAYS_INLINE const unsigned char *skip_plain(const unsigned char *p,
                                                     const unsigned char *end, char **op, bool emit)
{
    char *o = *op;
    size_t k;
#ifdef NDJSON_SSE2
    /* Sixteen bytes a step: most keys and short values end in the first
     * load, and a UUID or URL takes half the steps of the eight-byte test
     * below (which still does the last 8..15 bytes). */
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned m = sse2_special(x);
        if (emit)
            _mm_storeu_si128((__m128i *)(void *)o, x);
        k = m ? (size_t)__builtin_ctz(m) : 16;
        p += k;
        o += emit ? k : 0;
        if (k < 16)
            goto out;
    }
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
        uint64_t x, m;
        memcpy(&x, p, 8);
        m = swar_special(x);
        if (emit)
            memcpy(o, &x, 8);
        k = m ? (size_t)__builtin_ctzll(m) >> 3 : 8;
        p += k;
        o += emit ? k : 0;
        if (k < 8)
            goto out;
    }
#endif
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
        if (emit)
            *o++ = (char)*p;
        p++;
    }
out:
    *op = o;
    return p;
}

/* A string starting at the quote *pp; on success *pp is past the closing
 * quote and *esc tells whether it held an escape. */
static ALWAYS_INLINE int scan_string(struct scan *s, const unsigned char **pp, char **op, bool emit,
                                     bool *esc)
{
    const unsigned char *p = *pp + 1, *end = s->end;
    char *o = *op;
    if (emit)
        *o++ = '"';
    for (;;) {
        p = skip_plain(p, end, &o, emit);
        if (p >= end)
            return fail(s, PIPE_JSON_ESYNTAX, p, "unterminated string");
        unsigned c = *p;
        if (c == '"')
            break;
        if (c == '\\') {
            *esc = true;
            if (scan_escape(s, &p, &o, emit) < 0)
                return -1;
        } else if (c < 0x20) {
            return fail(s, (s->flags & PIPE_JSON_LENIENT) ? PIPE_JSON_ESYNTAX : PIPE_JSON_ESTRING,
                        p, "control character in string");
        } else {
            size_t n = utf8_seq(p, end);
            if (n == 0)
                return fail(s, PIPE_JSON_EUTF8, p, "invalid UTF-8");
            if (emit) {
                memcpy(o, p, n);
                o += n;
            }
            p += n;
        }
    }
    if (emit)
        *o++ = '"';
    *pp = p + 1;
    *op = o;
    return 0;
}

/* True when the number with integer digits [ib, ie), fraction digits
 * [fb, fe) and decimal exponent exp is too large for a double. Exact: the
 * digits are compared with the overflow threshold when the order of
 * magnitude alone cannot tell. */
static bool number_overflows(const unsigned char *ib, const unsigned char *ie,
                             const unsigned char *fb, const unsigned char *fe, long exp)
{
    const size_t tlen = sizeof dbl_overflow_digits - 1;
    const unsigned char *seg[2][2] = {{ib, ie}, {fb, fe}};
    long k = ie - ib; /* the value is in [10^(k-1), 10^k) */
    if (*ib == '0') {
        const unsigned char *d = fb;
        while (d && d < fe && *d == '0')
            d++;
        if (!d || d == fe)
            return false; /* zero */
        k = -(long)(d - fb);
        seg[0][0] = d;
        seg[0][1] = fe;
        seg[1][0] = seg[1][1] = NULL;
    }
    long mag = k + exp;
    if (mag <= 308)
        return false;
    if (mag >= 310)
        return true;
    /* Same order of magnitude as the threshold: compare digit by digit. */
    size_t i = 0;
    for (int j = 0; j < 2; j++) {
        for (const unsigned char *d = seg[j][0]; d && d < seg[j][1]; d++, i++) {
            int t = i < tlen ? dbl_overflow_digits[i] : '0';
            if (*d != t)
                return *d > t;
        }
    }
    /* Digits ran out: equal to the threshold (a tie rounds up) or below it. */
    return i >= tlen;
}

/* A number at *pp. Inlined like the strings: out of line, the call took
 * the compacting scan's p and o by address at every number, which cost an
 * event ~10% of its scan (bench_scan, filter mode). */
static ALWAYS_INLINE int scan_number(struct scan *s, const unsigned char **pp, char **op, bool emit)
{
    const unsigned char *b = *pp, *p = b, *end = s->end;
    if (*p == '-')
        p++;
    const unsigned char *ib = p;
    if (p < end && *p == '0')
        p++;
    else if (p < end && is_digit(*p))
        while (p < end && is_digit(*p))
            p++;
    else
        return fail(s, PIPE_JSON_ESYNTAX, p, "invalid number");
    const unsigned char *ie = p, *fb = NULL, *fe = NULL;
    if (p < end && *p == '.') {
        fb = ++p;
        while (p < end && is_digit(*p))
            p++;
        if (p == fb)
            return fail(s, PIPE_JSON_ESYNTAX, p, "invalid number");
        fe = p;
    }
    long exp = 0;
    bool has_exp = false;
    if (p < end && (*p | 0x20) == 'e') {
        bool neg = false;
        has_exp = true;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            neg = *p++ == '-';
        const unsigned char *eb = p;
        while (p < end && is_digit(*p)) {
            if (exp < 1000000) /* far past any double; keeps the sum from overflowing */
                exp = exp * 10 + (*p - '0');
            p++;
        }
        if (p == eb)
            return fail(s, PIPE_JSON_ESYNTAX, p, "invalid number");
        exp = neg ? -exp : exp;
    }
    if (!(s->flags & PIPE_JSON_LENIENT) && (has_exp || ie - ib > 308) &&
        number_overflows(ib, ie, fb, fe, exp))
        return fail(s, PIPE_JSON_ENUMBER, b, "number overflows a double");
    if (emit) {
        memcpy(*op, b, (size_t)(p - b));
        *op += p - b;
    }
    *pp = p;
    return 0;
}

static ALWAYS_INLINE bool top_is_object(const struct scan *s, int depth)
{
    return (s->stack[(depth - 1) >> 6] >> ((depth - 1) & 63)) & 1;
}

static ALWAYS_INLINE int push(struct scan *s, int *depth, bool object, const unsigned char *p)
{
    if (*depth >= s->max_depth)
        return fail(s, PIPE_JSON_EDEPTH, p, "nested too deep");
    uint64_t bit = 1ull << (*depth & 63);
    uint64_t *w = &s->stack[*depth >> 6];
    *w = object ? (*w | bit) : (*w & ~bit);
    (*depth)++;
    return 0;
}

/* A child of the top-level container is complete: tell the callback and
 * drop the member from the output if it asks. */
static ALWAYS_INLINE void child_done(struct scan *s, const unsigned char *p, char **op, bool emit)
{
    if (s->cb) {
        struct pipe_json_member m;
        m.key = s->key;
        m.key_len = s->key_len;
        m.key_escaped = s->key_esc;
        m.value = emit ? s->vout : (const char *)s->vin;
        m.value_len = emit ? (size_t)(*op - s->vout) : (size_t)(p - s->vin);
        m.type = s->vtype;
        m.value_escaped = s->vesc;
        m.in_offset = (size_t)(s->vin - s->start);
        if (s->cb(s->arg, &m) && s->key && emit) {
            *op = s->mstart;
            return;
        }
    }
    s->kept++;
}

/* The whole grammar as one state machine over labels, so the hot loop keeps
 * p and o in registers; it is longer than the usual function because the
 * states share those locals. emit is a compile-time constant at both call
 * sites, giving a compacting and a validate-only copy. */
static ALWAYS_INLINE int scan_tree(struct scan *s, const unsigned char **pp, char **op, bool emit)
{
    const unsigned char *p = *pp, *end = s->end;
    char *o = *op;
    int depth = 0;
    bool esc;
    /* The innermost open container is an object: kept in a register so
     * the test after every value needs no load from the bit stack. */
    bool in_obj = false;

value:
    while (p < end && pipe__json_is_ws(*p))
        p++;
    if (p >= end)
        return fail(s, PIPE_JSON_ESYNTAX, p, "unexpected end of input");
    if (depth == 1) {
        s->vin = p;
        s->vout = o;
        s->vesc = false;
    }
    switch (*p) {
    case '{':
        if (push(s, &depth, true, p) < 0)
            return -1;
        in_obj = true;
        if (depth == 1)
            s->top_type = PIPE_JSON_OBJECT;
        else if (depth == 2)
            s->vtype = PIPE_JSON_OBJECT;
        if (emit)
            *o++ = '{';
        p++;
        while (p < end && pipe__json_is_ws(*p))
            p++;
        if (p < end && *p == '}') {
            p++;
            goto close;
        }
        goto key;
    case '[':
        if (push(s, &depth, false, p) < 0)
            return -1;
        in_obj = false;
        if (depth == 1)
            s->top_type = PIPE_JSON_ARRAY;
        else if (depth == 2)
            s->vtype = PIPE_JSON_ARRAY;
        if (emit)
            *o++ = '[';
        p++;
        while (p < end && pipe__json_is_ws(*p))
            p++;
        if (p < end && *p == ']') {
            p++;
            goto close;
        }
        goto value;
    case '"':
        esc = false;
        if (scan_string(s, &p, &o, emit, &esc) < 0)
            return -1;
        if (depth == 1) {
            s->vtype = PIPE_JSON_STRING;
            s->vesc = esc;
        } else if (depth == 0) {
            s->top_type = PIPE_JSON_STRING;
        }
        goto after;
    case 't':
    case 'f':
    case 'n': {
        static const char *const lit[3] = {"true", "false", "null"};
        static const enum pipe_json_type lt[3] = {PIPE_JSON_TRUE, PIPE_JSON_FALSE, PIPE_JSON_NULL};
        int i = *p == 't' ? 0 : *p == 'f' ? 1 : 2;
        size_t n = i == 1 ? 5 : 4;
        if ((size_t)(end - p) < n || memcmp(p, lit[i], n) != 0)
            return fail(s, PIPE_JSON_ESYNTAX, p, "invalid literal");
        if (emit) {
            memcpy(o, lit[i], n);
            o += n;
        }
        p += n;
        if (depth == 1)
            s->vtype = lt[i];
        else if (depth == 0)
            s->top_type = lt[i];
        goto after;
    }
    default:
        if (*p != '-' && !is_digit(*p))
            return fail(s, *p >= 0x80 && !utf8_seq(p, end) ? PIPE_JSON_EUTF8 : PIPE_JSON_ESYNTAX, p,
                        "unexpected character");
        if (scan_number(s, &p, &o, emit) < 0)
            return -1;
        if (depth == 1)
            s->vtype = PIPE_JSON_NUMBER;
        else if (depth == 0)
            s->top_type = PIPE_JSON_NUMBER;
        goto after;
    }

key:
    if (depth == 1) {
        s->mstart = o;
        if (emit && s->kept > 0)
            *o++ = ',';
    }
    if (p >= end || *p != '"')
        return fail(s, PIPE_JSON_ESYNTAX, p, "expected a string key");
    esc = false;
    {
        char *kq = o;
        const unsigned char *kp = p;
        if (scan_string(s, &p, &o, emit, &esc) < 0)
            return -1;
        if (depth == 1) {
            s->key = emit ? kq + 1 : (const char *)kp + 1;
            s->key_len = (size_t)(p - kp) - 2;
            s->key_esc = esc;
        }
    }
    while (p < end && pipe__json_is_ws(*p))
        p++;
    if (p >= end || *p != ':')
        return fail(s, PIPE_JSON_ESYNTAX, p, "expected ':'");
    if (emit)
        *o++ = ':';
    p++;
    goto value;

close:
    if (emit)
        *o++ = in_obj ? '}' : ']';
    depth--;
    if (depth > 0)
        in_obj = top_is_object(s, depth);

after:
    if (depth == 1)
        child_done(s, p, &o, emit);
    if (depth == 0) {
        *pp = p;
        *op = o;
        return 0;
    }
    while (p < end && pipe__json_is_ws(*p))
        p++;
    if (p >= end)
        return fail(s, PIPE_JSON_ESYNTAX, p, "unexpected end of input");
    if (*p == ',') {
        p++;
        while (p < end && pipe__json_is_ws(*p))
            p++;
        if (in_obj) {
            if (emit && depth > 1)
                *o++ = ',';
            goto key;
        }
        if (emit)
            *o++ = ',';
        goto value;
    }
    if (*p == (in_obj ? '}' : ']')) {
        p++;
        goto close;
    }
    return fail(s, PIPE_JSON_ESYNTAX, p, in_obj ? "expected ',' or '}'" : "expected ',' or ']'");
}

static int scan_emit(struct scan *s, const unsigned char **pp, char **op)
{
    return scan_tree(s, pp, op, true);
}

static int scan_check(struct scan *s, const unsigned char **pp, char **op)
{
    return scan_tree(s, pp, op, false);
}

int pipe_json_scan(const char *in, size_t len, const struct pipe_json_opts *opts,
                   struct pipe_buf *out, struct pipe_json_result *res)
{
    /* Every field but the bit stack is set below: zeroing the stack's
     * 512 bytes cost more than a short event's member callbacks, and a
     * bit is always pushed before it is read. */
    struct scan s;
    int rc = 0;
    if (out && (rc = pipe_buf_reserve(out, len + 16)) < 0)
        return rc;
    s.start = (const unsigned char *)(in ? in : ""); /* NULL + 0 is undefined */
    s.end = s.start + len;
    s.obase = out ? out->data + out->len : NULL;
    s.flags = opts ? opts->flags : 0;
    s.max_depth = opts && opts->max_depth > 0 ? opts->max_depth : 32;
    if (s.max_depth > PIPE_JSON_DEPTH_LIMIT)
        s.max_depth = PIPE_JSON_DEPTH_LIMIT;
    s.cb = opts ? opts->on_member : NULL;
    s.arg = opts ? opts->arg : NULL;
    s.kept = 0;
    s.top_type = PIPE_JSON_NONE;
    s.key = NULL;
    s.key_len = 0;
    s.key_esc = false;
    s.mstart = NULL;
    s.vin = NULL;
    s.vout = NULL;
    s.vtype = PIPE_JSON_NONE;
    s.vesc = false;
    s.err = PIPE_JSON_OK;
    s.what = "";
    s.at = s.start;

    const unsigned char *p = s.start;
    char *o = s.obase;
    rc = out ? scan_emit(&s, &p, &o) : scan_check(&s, &p, &o);
    if (rc == 0) {
        while (p < s.end && pipe__json_is_ws(*p))
            p++;
        if (p != s.end && !(s.flags & PIPE_JSON_PREFIX))
            rc = fail(&s, PIPE_JSON_ESYNTAX, p, "unexpected bytes after the value");
    }
    res->err = s.err;
    res->offset = (size_t)(s.at - s.start);
    res->what = s.what;
    res->type = s.top_type;
    res->kept = s.kept;
    res->end = rc == 0 ? (size_t)(p - s.start) : res->offset;
    res->out_len = rc == 0 && out ? (size_t)(o - s.obase) : 0;
    if (out) {
        /* The scan wrote past len; keep the buffer's NUL promise either way. */
        out->len += res->out_len;
        out->data[out->len] = '\0';
    }
    return rc < 0 ? PIPE_EPARSE : 0;
}

static void put_utf8(char **dst, unsigned cp)
{
    char *d = *dst;
    if (cp < 0x80) {
        *d++ = (char)cp;
    } else if (cp < 0x800) {
        *d++ = (char)(0xC0 | cp >> 6);
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *d++ = (char)(0xE0 | cp >> 12);
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *d++ = (char)(0xF0 | cp >> 18);
        *d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *d++ = (char)(0x80 | (cp & 0x3F));
    }
    *dst = d;
}

size_t pipe_json_unescape(const char *raw, size_t n, char *dst)
{
    const unsigned char *p = (const unsigned char *)raw, *end = p + n;
    char tmp[4] = {0}, *d = dst;
    size_t len = 0;
    while (p < end) {
        char *w = dst ? d : tmp;
        char *w0 = w;
        if (*p != '\\' || end - p < 2) {
            *w++ = (char)*p++;
        } else if (p[1] != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *f = memchr(from, p[1], sizeof from - 1);
            *w++ = f ? to[f - from] : (char)p[1];
            p += 2;
        } else {
            int cp = end - p >= 6 ? hex4(p + 2) : -1;
            if (cp < 0) { /* not from a scan that accepted it; keep the byte */
                *w++ = (char)*p++;
                goto next;
            }
            p += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                int lo = hex4(p + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            put_utf8(&w, (unsigned)cp);
        }
    next:
        len += (size_t)(w - w0);
        if (dst)
            d = w;
    }
    return len;
}

int pipe_json_append_string(struct pipe_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
    size_t at = b->len;
    int rc = pipe_buf_append_char(b, '"');
    while (rc == 0 && p < end) {
        unsigned c = *p;
        size_t seq = c < 0x80 ? 1 : utf8_seq(p, end);
        if (seq == 0) {
            rc = PIPE_EINVAL;
            break;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            p += seq;
            continue;
        }
        rc = pipe_buf_append(b, run, (size_t)(p - run));
        char q[6] = {'\\', (char)c, 0, 0, 0, 0};
        size_t qn = 2;
        if (c < 0x20) {
            memcpy(q + 1, "u00", 3);
            q[4] = hex[c >> 4];
            q[5] = hex[c & 15];
            qn = 6;
        }
        if (rc == 0)
            rc = pipe_buf_append(b, q, qn);
        run = ++p;
    }
    if (rc == 0)
        rc = pipe_buf_append(b, run, (size_t)(p - run));
    if (rc == 0)
        rc = pipe_buf_append_char(b, '"');
    if (rc < 0) {
        b->len = at;
        if (b->data)
            b->data[at] = '\0';
    }
    return rc;
}

const char *pipe_json_error_name(enum pipe_json_error e)
{
    switch (e) {
    case PIPE_JSON_OK:
        return "ok";
    case PIPE_JSON_ESYNTAX:
        return "syntax";
    case PIPE_JSON_EUTF8:
        return "utf8";
    case PIPE_JSON_EDEPTH:
        return "depth";
    case PIPE_JSON_ENUMBER:
        return "number";
    case PIPE_JSON_ESTRING:
        return "string";
    case PIPE_JSON_ETOOLARGE:
        return "too_large";
    }
    return "unknown";
}
