/* schema_check — validates one compact event against a compiled schema by
 * walking its bytes beside the schema tree: no DOM, no allocation on the
 * common path, and parts of the event the schema says nothing about are
 * skipped with memchr. Defaults and redactions are recorded as edits (byte
 * ranges to delete, text to insert) in document order and applied in one
 * copy at the end, only when there are any (schema_apply.c, which also picks
 * the schema an event is checked against). */
#include <math.h>
#include <sodium.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/ndjson.h"
#include "libpipe/schema_int.h"

/* One step of the path to the value being checked: a member name (raw, as
 * in the event) or an array index. Rendered only for a message. */
struct frame {
    const char *key; /* NULL: index */
    size_t len;
    size_t index;
};

#define MAX_FRAMES (SCH_MAX_DEPTH * 2 + 8)

struct walk {
    const struct pipe_schema *s; /* NULL when checking a default at load */
    struct pipe_schema_checker *ck;
    const char *base, *end;
    bool redact_only; /* no checks, no defaults: redaction alone */
    int error;        /* PIPE_EPARSE (malformed input) or PIPE_ETOOBIG */
    bool failed;      /* a violation is in msg */
    char *msg;
    size_t msglen;
    struct frame frames[MAX_FRAMES];
    int depth;
    /* top-level "schema_version" members met on the way */
    const char *ver, *ver_end;
    int n_ver;
};

/* Like pipe_malloc: running out of memory aborts. */
static void *must(void *p)
{
    if (p == NULL)
        abort();
    return p;
}

struct pipe_schema_checker *pipe_schema_checker_new(void)
{
    struct pipe_schema_checker *ck = pipe_calloc(1, sizeof *ck);
    ck->md = must(pcre2_match_data_create(1, NULL));
    ck->mctx = must(pcre2_match_context_create(NULL));
    /* A pattern that backtracks catastrophically on hostile input must not
     * stall ingest: past the budget the value fails its pattern. */
    pcre2_set_match_limit(ck->mctx, SCH_MATCH_LIMIT);
    pcre2_set_depth_limit(ck->mctx, SCH_MATCH_LIMIT);
    pipe_buf_init(&ck->ins, SIZE_MAX);
    pipe_buf_init(&ck->tmp, SIZE_MAX);
    pipe_buf_init(&ck->compact, 16 << 20);
    pipe_buf_init(&ck->redo, 16 << 20);
    return ck;
}

void pipe_schema_checker_free(struct pipe_schema_checker *ck)
{
    if (ck == NULL)
        return;
    pcre2_match_data_free(ck->md);
    pcre2_match_context_free(ck->mctx);
    pipe_free(ck->edits);
    pipe_buf_cleanup(&ck->ins);
    pipe_buf_cleanup(&ck->tmp);
    pipe_buf_cleanup(&ck->compact);
    pipe_buf_cleanup(&ck->redo);
    pipe_free(ck);
}

/* ---- tokens of compact JSON (bounds-checked: bad input is an error) ---- */

/* first_special — offset of the first '"' or '\\' in the 8 bytes at p, or
 * 8: the classic has-zero-byte trick on the bytes xor'ed with each. */
static unsigned first_special(const char *p)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t x, q, b;
    memcpy(&x, p, 8);
    q = x ^ (ones * '"');
    b = x ^ (ones * '\\');
    uint64_t m = ((q - ones) & ~q & highs) | ((b - ones) & ~b & highs);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return m ? (unsigned)__builtin_ctzll(m) / 8 : 8;
#else
    if (m == 0)
        return 8;
    unsigned i = 0;
    while (p[i] != '"' && p[i] != '\\')
        i++;
    return i;
#endif
}

/* skip_string — p at an opening quote; past the closing one, or NULL.
 * *esc tells whether the contents hold a backslash. Eight bytes a step:
 * user agents and URLs are the long strings of an event. */
static const char *skip_string(const char *p, const char *end, bool *esc)
{
    bool e = false;
    for (p++;;) {
        unsigned k;
        while (end - p >= 8 && (k = first_special(p)) == 8)
            p += 8;
        while (p < end && *p != '"' && *p != '\\')
            p++;
        if (p >= end)
            return NULL;
        if (*p == '"') {
            *esc = e;
            return p + 1;
        }
        e = true;
        p += 2; /* the backslash and the byte it escapes */
    }
}

static const char *skip_number(const char *p, const char *end)
{
    const char *s = p;
    while (p < end && ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' ||
                       *p == 'e' || *p == 'E'))
        p++;
    return p > s ? p : NULL;
}

static const char *skip_literal(const char *p, const char *end, const char *lit, size_t n)
{
    return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0 ? p + n : NULL;
}

/* skip_value — past the value at p, or NULL. */
static const char *skip_value(const char *p, const char *end)
{
    bool esc;
    if (p >= end)
        return NULL;
    switch (*p) {
    case '"':
        return skip_string(p, end, &esc);
    case 't':
        return skip_literal(p, end, "true", 4);
    case 'f':
        return skip_literal(p, end, "false", 5);
    case 'n':
        return skip_literal(p, end, "null", 4);
    case '{':
    case '[': {
        int depth = 0;
        while (p < end) {
            char c = *p;
            if (c == '"') {
                if ((p = skip_string(p, end, &esc)) == NULL)
                    return NULL;
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    default:
        return skip_number(p, end);
    }
}

static enum pipe_json_type type_at(char c)
{
    switch (c) {
    case '{':
        return PIPE_JSON_OBJECT;
    case '[':
        return PIPE_JSON_ARRAY;
    case '"':
        return PIPE_JSON_STRING;
    case 't':
        return PIPE_JSON_TRUE;
    case 'f':
        return PIPE_JSON_FALSE;
    case 'n':
        return PIPE_JSON_NULL;
    default:
        return PIPE_JSON_NUMBER;
    }
}

/* decoded — the contents of the string token [p, e) unescaped: raw bytes
 * when it has no escape, else a copy in ck->tmp. */
static const char *decoded(struct pipe_schema_checker *ck, const char *p, const char *e, bool esc,
                           size_t *len)
{
    const char *raw = p + 1;
    size_t n = (size_t)(e - p) - 2;
    if (!esc) {
        *len = n;
        return raw;
    }
    pipe_buf_reset(&ck->tmp);
    if (pipe_buf_reserve(&ck->tmp, n + 1) < 0)
        return NULL;
    *len = pipe_json_unescape(raw, n, ck->tmp.data);
    return ck->tmp.data;
}

/* ---- messages ---- */

static void render_path(const struct walk *w, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < w->depth && n + 8 < cap; i++) {
        const struct frame *f = &w->frames[i];
        int k = f->key ? snprintf(out + n, cap - n, "%s%.*s", n ? "." : "", (int)f->len, f->key)
                       : snprintf(out + n, cap - n, "[%zu]", f->index);
        n = k < 0 ? n : n + (size_t)k >= cap ? cap - 1 : n + (size_t)k;
    }
    if (n >= SCH_PATH_MAX)
        memcpy(out + SCH_PATH_MAX, "...", 4);
    if (n == 0)
        snprintf(out, cap, "(root)");
}

__attribute__((format(printf, 2, 3))) static const char *violation(struct walk *w, const char *fmt,
                                                                   ...)
{
    char path[SCH_PATH_MAX + 64], rule[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rule, sizeof rule, fmt, ap);
    va_end(ap);
    render_path(w, path, sizeof path);
    snprintf(w->msg, w->msglen, "%s: %s", path, rule);
    w->failed = true;
    return NULL;
}

static const char *parse_error(struct walk *w)
{
    w->error = PIPE_EPARSE;
    return NULL;
}

static bool push(struct walk *w, const char *key, size_t len, size_t index)
{
    if (w->depth == MAX_FRAMES)
        return false;
    w->frames[w->depth++] = (struct frame){key, len, index};
    return true;
}

static void type_names(unsigned types, char *out, size_t cap)
{
    static const char *const names[] = {"object",  "array",   "string", "number",
                                        "integer", "boolean", "null"};
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < 7; i++)
        if (types & (1u << i)) {
            int k = snprintf(out + n, cap - n, "%s%s", n ? " or " : "", names[i]);
            n = k > 0 && n + (size_t)k < cap ? n + (size_t)k : n;
        }
}

/* ---- scalar rules ---- */

/* number_of — the token [p, e) as a double (tokens are short; a long one
 * is copied to ck->tmp). */
static double number_of(struct pipe_schema_checker *ck, const char *p, const char *e)
{
    /* Most numbers are small integers: exact as doubles, no strtod. */
    if (e - p <= 15) {
        const char *q = p + (*p == '-');
        int64_t v = 0;
        while (q < e && *q >= '0' && *q <= '9')
            v = v * 10 + (*q++ - '0');
        if (q == e && e > p + (*p == '-'))
            return *p == '-' ? -(double)v : (double)v;
    }
    char small[64];
    size_t n = (size_t)(e - p);
    char *t = small;
    if (n >= sizeof small) {
        pipe_buf_reset(&ck->tmp);
        if (pipe_buf_reserve(&ck->tmp, n + 1) < 0)
            return NAN;
        t = ck->tmp.data;
    }
    memcpy(t, p, n);
    t[n] = '\0';
    return strtod(t, NULL);
}

static bool is_integral(const char *p, const char *e, double d)
{
    for (const char *q = p; q < e; q++)
        if (*q == '.' || *q == 'e' || *q == 'E')
            return isfinite(d) && d == floor(d);
    return true;
}

static size_t code_points(const char *raw, size_t n, bool esc)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (esc && c == '\\' && i + 1 < n) {
            /* \uD8xx\uDCxx is one code point; any other escape is one */
            bool high = raw[i + 1] == 'u' && i + 5 < n && (raw[i + 2] | 0x20) == 'd' &&
                        strchr("89abAB", raw[i + 3]) != NULL;
            i += raw[i + 1] == 'u' ? (high ? 11 : 5) : 1;
            count++;
        } else if ((c & 0xC0) != 0x80) {
            count++;
        }
    }
    return count;
}

static const char *check_string(struct walk *w, const struct sch_node *n, const char *p,
                                const char *e, bool esc)
{
    if (n->has & (SCH_HAS_MINLEN | SCH_HAS_MAXLEN)) {
        size_t cp = code_points(p + 1, (size_t)(e - p) - 2, esc);
        if ((n->has & SCH_HAS_MINLEN) && cp < n->min_len)
            return violation(w, "shorter than minLength %zu", n->min_len);
        if ((n->has & SCH_HAS_MAXLEN) && cp > n->max_len)
            return violation(w, "longer than maxLength %zu", n->max_len);
    }
    if (n->re) {
        size_t len;
        const char *s = decoded(w->ck, p, e, esc, &len);
        if (s == NULL)
            return (w->error = PIPE_ETOOBIG, NULL);
        /* The JIT entry skips the UTF check: the scanner already refused
         * anything that is not UTF-8. */
        int rc = n->jit ? pcre2_jit_match(n->re, (PCRE2_SPTR)s, len, 0, 0, w->ck->md, w->ck->mctx)
                        : pcre2_match(n->re, (PCRE2_SPTR)s, len, 0, 0, w->ck->md, w->ck->mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            return violation(w, "does not match pattern %.100s", n->pattern);
        if (rc < 0)
            return violation(w, "pattern %.100s could not be evaluated (too complex)", n->pattern);
    }
    return e;
}

static bool enum_match(struct walk *w, const struct sch_node *n, enum pipe_json_type t,
                       const char *p, const char *e, bool esc)
{
    size_t len = 0;
    const char *s = t == PIPE_JSON_STRING ? decoded(w->ck, p, e, esc, &len) : NULL;
    double d = t == PIPE_JSON_NUMBER ? number_of(w->ck, p, e) : 0;
    json_t *j = NULL;
    bool hit = false;
    if (t == PIPE_JSON_OBJECT || t == PIPE_JSON_ARRAY)
        j = json_loadb(p, (size_t)(e - p), 0, NULL);
    for (size_t i = 0; i < n->n_enums && !hit; i++) {
        const struct sch_enum *x = &n->enums[i];
        if ((int)t != x->type)
            continue;
        if (t == PIPE_JSON_STRING)
            hit = s && x->len == len && memcmp(x->str, s, len) == 0;
        else if (t == PIPE_JSON_NUMBER)
            hit = x->num == d;
        else if (t == PIPE_JSON_OBJECT || t == PIPE_JSON_ARRAY)
            hit = j && json_equal(j, x->json);
        else
            hit = true;
    }
    json_decref(j);
    return hit;
}

/* ---- edits ---- */

/* record_edit — an edit whose inserted text is ck->ins[ins_off..+ins_len). */
static bool record_edit(struct walk *w, size_t off, size_t del, size_t ins_off, size_t ins_len)
{
    struct pipe_schema_checker *ck = w->ck;
    if (ck->n_edits == ck->cap_edits) {
        ck->cap_edits = ck->cap_edits ? ck->cap_edits * 2 : 16;
        ck->edits = pipe_realloc(ck->edits, ck->cap_edits * sizeof *ck->edits);
    }
    ck->edits[ck->n_edits++] = (struct sch_edit){off, del, ins_off, ins_len};
    return true;
}

static bool add_edit(struct walk *w, size_t off, size_t del, const char *ins, size_t ins_len)
{
    size_t at = w->ck->ins.len;
    if (ins_len && pipe_buf_append(&w->ck->ins, ins, ins_len) < 0) {
        w->error = PIPE_ETOOBIG;
        return false;
    }
    return record_edit(w, off, del, at, ins_len);
}

static void append_json_string(struct pipe_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    pipe_buf_append_char(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char q[2] = {'\\', (char)c};
            pipe_buf_append(b, q, 2);
        } else if (c < 0x20) {
            char q[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            pipe_buf_append(b, q, 6);
        } else {
            pipe_buf_append_char(b, (char)c);
        }
    }
    pipe_buf_append_char(b, '"');
}

/* hash_edit — replaces the value [p, e) with the keyed BLAKE2b of its
 * contents (decoded for a string, so escaping does not change the hash). */
static bool hash_edit(struct walk *w, const char *p, const char *e, bool esc)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char h[PIPE_SCHEMA_HASH_HEX / 2];
    size_t len = (size_t)(e - p);
    const char *in = *p == '"' ? decoded(w->ck, p, e, esc, &len) : p;
    if (in == NULL)
        return (w->error = PIPE_ETOOBIG, false);
    crypto_generichash(h, sizeof h, (const unsigned char *)in, len, w->s->key, w->s->key_len);
    char q[PIPE_SCHEMA_HASH_HEX + 2];
    q[0] = q[PIPE_SCHEMA_HASH_HEX + 1] = '"';
    for (size_t i = 0; i < sizeof h; i++) {
        q[1 + 2 * i] = hex[h[i] >> 4];
        q[2 + 2 * i] = hex[h[i] & 15];
    }
    return add_edit(w, (size_t)(p - w->base), (size_t)(e - p), q, sizeof q);
}

/* ---- the walk ---- */

static const char *walk_value(struct walk *w, const struct sch_node *n, const char *p);

static bool is_envelope_key(const char *k, size_t n)
{
    switch (n) {
    case 2:
        return memcmp(k, "id", 2) == 0 || memcmp(k, "ts", 2) == 0;
    case 5:
        return memcmp(k, "event", 5) == 0;
    case 7:
        return memcmp(k, "channel", 7) == 0;
    case 11:
        return memcmp(k, "received_at", 11) == 0;
    case 14:
        return memcmp(k, "schema_version", 14) == 0;
    default:
        return false;
    }
}

/* find_prop — the member named by the key token's contents raw[0..n). */
static const struct sch_prop *find_prop(const struct sch_node *n, const char *raw, size_t len,
                                        bool esc, bool *envelope, bool *version)
{
    char tmp[SCH_MAX_NAME];
    if (esc) {
        if (len > 6 * SCH_MAX_NAME || pipe_json_unescape(raw, len, NULL) > sizeof tmp) {
            *envelope = *version = false;
            return NULL;
        }
        len = pipe_json_unescape(raw, len, tmp);
        raw = tmp;
    }
    *envelope = n->root && is_envelope_key(raw, len);
    *version = *envelope && len == 14;
    size_t lo = 0, hi = n->n_props;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct sch_prop *p = &n->props[mid];
        int c = p->len != len ? (p->len < len ? -1 : 1) : memcmp(p->name, raw, len);
        if (c == 0)
            return p;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* end_object — at the closing brace p of an object whose members in seen
 * were present and kept of which stay: defaults, then required. */
static const char *end_object(struct walk *w, const struct sch_node *n, const char *p,
                              const uint64_t *seen, size_t kept)
{
    for (size_t d = 0; d < n->n_def; d++) {
        size_t i = n->def_idx[d];
        const struct sch_prop *pr = &n->props[i];
        if (seen[i / 64] >> (i % 64) & 1)
            continue;
        struct pipe_buf *ins = &w->ck->ins;
        size_t start = ins->len;
        if (kept++)
            pipe_buf_append_char(ins, ',');
        append_json_string(ins, pr->name, pr->len);
        pipe_buf_append_char(ins, ':');
        pipe_buf_append(ins, pr->node->def, pr->node->def_len);
        if (!record_edit(w, (size_t)(p - w->base), 0, start, ins->len - start))
            return NULL;
    }
    for (size_t r = 0; r < n->n_req; r++) {
        size_t i = n->req_idx[r];
        const struct sch_prop *pr = &n->props[i];
        bool defaulted = pr->node && pr->node->def;
        if (!defaulted && !(seen[i / 64] >> (i % 64) & 1)) {
            push(w, pr->name, pr->len, 0);
            return violation(w, "required property missing");
        }
    }
    return p + 1;
}

/* redact_member — records the removal or hash of the member [m, ve) whose
 * value starts at v; edits made inside the value (from edits_before on)
 * are dropped, the whole value goes. Returns false on error. */
static bool redact_member(struct walk *w, enum sch_redact r, const char *m, const char *v,
                          const char *ve, size_t edits_before, size_t kept)
{
    w->ck->n_edits = edits_before;
    if (r == SCH_REDACT_HASH) {
        bool esc = false;
        if (*v == '"')
            skip_string(v, ve, &esc);
        return hash_edit(w, v, ve, esc);
    }
    /* Remove the member with one comma: the one after it while nothing
     * before it in the object stays, else the one before it. */
    if (kept == 0) {
        const char *to = ve < w->end && *ve == ',' ? ve + 1 : ve;
        return add_edit(w, (size_t)(m - w->base), (size_t)(to - m), NULL, 0);
    }
    return add_edit(w, (size_t)(m - 1 - w->base), (size_t)(ve - m + 1), NULL, 0);
}

static const char *walk_object(struct walk *w, const struct sch_node *n, const char *p)
{
    uint64_t seen[SCH_MAX_PROPS / 64];
    memset(seen, 0, ((n->n_props + 63) / 64) * sizeof *seen);
    size_t kept = 0;
    const char *end = w->end;
    for (p++; p < end && *p != '}';) {
        const char *m = p, *ke, *ve;
        bool kesc, envelope, version;
        if (*p != '"' || (ke = skip_string(p, end, &kesc)) == NULL || ke >= end || *ke != ':')
            return parse_error(w);
        const struct sch_prop *pr =
            find_prop(n, p + 1, (size_t)(ke - p) - 2, kesc, &envelope, &version);
        const struct sch_node *child = n->additional;
        if (!push(w, p + 1, (size_t)(ke - p) - 2, 0))
            return violation(w, "nested too deeply");
        if (pr) {
            size_t i = (size_t)(pr - n->props);
            seen[i / 64] |= UINT64_C(1) << (i % 64);
            child = pr->node;
        } else if (n->closed && !envelope && !w->redact_only) {
            return violation(w, "property not allowed (additionalProperties is false)");
        }
        size_t edits_before = w->ck->n_edits;
        if ((ve = walk_value(w, child, ke + 1)) == NULL)
            return NULL;
        w->depth--;
        if (version) {
            w->ver = ke + 1;
            w->ver_end = ve;
            w->n_ver++;
        }
        enum sch_redact r = child ? child->redact : SCH_REDACT_NONE;
        if (r != SCH_REDACT_NONE && !redact_member(w, r, m, ke + 1, ve, edits_before, kept))
            return NULL;
        kept += r != SCH_REDACT_REMOVE;
        p = ve < end && *ve == ',' ? ve + 1 : ve;
    }
    if (p >= end)
        return parse_error(w);
    if (w->redact_only)
        return p + 1;
    return end_object(w, n, p, seen, kept);
}

static const char *walk_array(struct walk *w, const struct sch_node *items, const char *p)
{
    const char *end = w->end;
    size_t i = 0;
    for (p++; p < end && *p != ']'; i++) {
        if (!push(w, NULL, 0, i))
            return violation(w, "nested too deeply");
        if ((p = walk_value(w, items, p)) == NULL)
            return NULL;
        w->depth--;
        if (p < end && *p == ',')
            p++;
    }
    return p < end ? p + 1 : parse_error(w);
}

/* check_type — the "type" rule for the value [p, e) of type t. */
static bool check_type(struct walk *w, const struct sch_node *n, enum pipe_json_type t,
                       const char *p, const char *e, double *num)
{
    unsigned bits;
    switch (t) {
    case PIPE_JSON_OBJECT:
        bits = SCH_T_OBJECT;
        break;
    case PIPE_JSON_ARRAY:
        bits = SCH_T_ARRAY;
        break;
    case PIPE_JSON_STRING:
        bits = SCH_T_STRING;
        break;
    case PIPE_JSON_NUMBER:
        *num = number_of(w->ck, p, e);
        bits = SCH_T_NUMBER | (is_integral(p, e, *num) ? SCH_T_INTEGER : 0);
        break;
    case PIPE_JSON_NULL:
        bits = SCH_T_NULL;
        break;
    default:
        bits = SCH_T_BOOLEAN;
    }
    if (n->types == 0 || (n->types & bits))
        return true;
    char want[80], got[80];
    type_names(n->types, want, sizeof want);
    type_names(bits & ~(unsigned)SCH_T_INTEGER ? bits & ~(unsigned)SCH_T_INTEGER : bits, got,
               sizeof got);
    violation(w, "expected %s, got %s", want, got);
    return false;
}

static const char *walk_value(struct walk *w, const struct sch_node *n, const char *p)
{
    const char *e;
    bool esc = false;
    if (p >= w->end)
        return parse_error(w);
    if (n == NULL || (w->redact_only && !n->redact_below))
        return (e = skip_value(p, w->end)) ? e : parse_error(w);
    enum pipe_json_type t = type_at(*p);
    if (t == PIPE_JSON_OBJECT && n->walk_object) {
        if (!w->redact_only && !check_type(w, n, t, p, p, NULL))
            return NULL;
        e = walk_object(w, n, p);
    } else if (t == PIPE_JSON_ARRAY && n->items && (!w->redact_only || n->items->redact_below)) {
        if (!w->redact_only && !check_type(w, n, t, p, p, NULL))
            return NULL;
        e = walk_array(w, n->items, p);
    } else {
        e = t == PIPE_JSON_STRING ? skip_string(p, w->end, &esc) : skip_value(p, w->end);
        if (e == NULL)
            return parse_error(w);
        if (w->redact_only)
            return e;
        double num = 0;
        if (!check_type(w, n, t, p, e, &num))
            return NULL;
        if (t == PIPE_JSON_STRING && !check_string(w, n, p, e, esc))
            return NULL;
        if (t == PIPE_JSON_NUMBER && (n->has & SCH_HAS_MIN) && num < n->min)
            return violation(w, "below minimum %s", n->min_text);
        if (t == PIPE_JSON_NUMBER && (n->has & SCH_HAS_MAX) && num > n->max)
            return violation(w, "above maximum %s", n->max_text);
    }
    if (e && !w->redact_only && n->n_enums && !enum_match(w, n, t, p, e, esc))
        return violation(w, "not one of the allowed values");
    return e;
}

/* ---- the top level and one walk, for schema_apply.c ---- */

/* pipe__schema_run — one walk of obj against s; the edits are left in ck. */
int pipe__schema_run(const struct pipe_schema *s, const struct sch_node *root,
                     struct pipe_schema_checker *ck, const char *obj, size_t len, bool redact_only,
                     char *msg, size_t msglen, bool *failed, struct sch_top *seen)
{
    struct walk w = {.s = s,
                     .ck = ck,
                     .base = obj,
                     .end = obj + len,
                     .redact_only = redact_only,
                     .msg = msg,
                     .msglen = msglen};
    ck->n_edits = 0;
    pipe_buf_reset(&ck->ins);
    const char *e = walk_value(&w, root, obj);
    *failed = w.failed;
    if (seen) {
        seen->ver = w.ver;
        seen->ver_end = w.ver_end;
        seen->n_ver = w.n_ver;
    }
    if (w.error < 0)
        return w.error;
    if (e != NULL && e != obj + len)
        return PIPE_EPARSE;
    return 0;
}

static bool key_is(const char *raw, size_t n, bool esc, const char *name)
{
    size_t want = strlen(name);
    char tmp[16];
    if (esc) {
        if (n > 6 * want || pipe_json_unescape(raw, n, NULL) != want)
            return false;
        n = pipe_json_unescape(raw, n, tmp);
        raw = tmp;
    }
    return n == want && memcmp(raw, name, n) == 0;
}

int pipe__schema_scan_top(const char *obj, size_t len, struct sch_top *t)
{
    const char *p = obj + 1, *end = obj + len, *ke, *ve;
    bool esc;
    *t = (struct sch_top){0};
    if (len < 2 || obj[0] != '{')
        return PIPE_EPARSE;
    while (p < end && *p != '}') {
        if (*p != '"' || (ke = skip_string(p, end, &esc)) == NULL || ke >= end || *ke != ':' ||
            (ve = skip_value(ke + 1, end)) == NULL)
            return PIPE_EPARSE;
        size_t klen = (size_t)(ke - p) - 2;
        if ((klen == 5 || esc) && key_is(p + 1, klen, esc, "event")) {
            t->ev = ke + 1;
            t->ev_end = ve;
            t->n_ev++;
        } else if ((klen == 14 || esc) && key_is(p + 1, klen, esc, "schema_version")) {
            t->ver = ke + 1;
            t->ver_end = ve;
            t->n_ver++;
        }
        p = ve < end && *ve == ',' ? ve + 1 : ve;
    }
    return p < end ? 0 : PIPE_EPARSE;
}

/* pipe__schema_top_event — the decoded "event" string into buf (NUL-terminated), or
 * false when it is missing, repeated, not a string or too long. */
bool pipe__schema_top_event(const struct sch_top *t, char *buf, size_t cap, size_t *len)
{
    bool esc = false;
    if (t->n_ev != 1 || *t->ev != '"' || skip_string(t->ev, t->ev_end, &esc) != t->ev_end)
        return false;
    size_t n = (size_t)(t->ev_end - t->ev) - 2;
    if (n > 6 * cap || (esc ? pipe_json_unescape(t->ev + 1, n, NULL) : n) >= cap)
        return false;
    *len = esc ? pipe_json_unescape(t->ev + 1, n, buf) : n;
    if (!esc)
        memcpy(buf, t->ev + 1, n);
    buf[*len] = '\0';
    return true;
}
