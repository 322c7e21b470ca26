/* schema_compat — the compatibility rules of `sluicectl schema check`.
 *
 * Every check asks one question: is every document that a WRITER schema
 * accepts also accepted by a READER schema? BACKWARD puts OLD in the writer's
 * seat and NEW in the reader's, FORWARD the reverse, FULL asks both. Changes
 * are always described from OLD to NEW. The one deliberate departure from
 * set semantics: a property the reader declares but the writer does not is
 * assumed absent from the writer's data (see docs/schema-tools.md). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/mem.h"
#include "tools/sluicectl/ctl.h"

enum {
    T_OBJECT = 1 << 0,
    T_ARRAY = 1 << 1,
    T_STRING = 1 << 2,
    T_NUMBER = 1 << 3,
    T_INTEGER = 1 << 4,
    T_BOOLEAN = 1 << 5,
    T_NULL = 1 << 6,
    T_ANY = (1 << 7) - 1,
};

static const char *const type_names[] = {"object",  "array",   "string", "number",
                                         "integer", "boolean", "null"};

struct cmp {
    bool backward; /* writer = OLD, reader = NEW; else the reverse */
    const char *consequence;
    ctl_compat_fn fn, note_fn;
    void *arg;
    size_t breaking;
};

/* Schemas in the writer's and reader's seats, plus which one is OLD. */
struct pair {
    const json_t *w, *r;
};

static const json_t *pair_old(const struct cmp *c, const struct pair *p)
{
    return c->backward ? p->w : p->r;
}

static const json_t *pair_new(const struct cmp *c, const struct pair *p)
{
    return c->backward ? p->r : p->w;
}

static void report(struct cmp *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report(struct cmp *c, const char *path, const char *fmt, ...)
{
    char change[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(change, sizeof change, fmt, ap);
    va_end(ap);
    c->breaking++;
    c->fn(c->arg, path[0] ? path : "(root)", change, c->consequence);
}

/* A JSON value as compact text, for messages (cut to fit out). */
static void value_text(const json_t *v, char *out, size_t len)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    snprintf(out, len, "%s", s ? s : "?");
    free(s);
}

static unsigned type_bit(const char *name)
{
    for (unsigned i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (strcmp(name, type_names[i]) == 0)
            return 1u << i;
    return 0;
}

static unsigned value_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return T_OBJECT;
    case JSON_ARRAY:
        return T_ARRAY;
    case JSON_STRING:
        return T_STRING;
    case JSON_INTEGER:
        return T_INTEGER;
    case JSON_REAL:
        /* 2.0 is an integer to JSON Schema */
        return json_real_value(v) == floor(json_real_value(v)) ? T_INTEGER : T_NUMBER;
    case JSON_TRUE:
    case JSON_FALSE:
        return T_BOOLEAN;
    default:
        return T_NULL;
    }
}

/* The kinds of value s admits: its "type" (any without one), narrowed to
 * the kinds of its enum values. */
static unsigned types_of(const json_t *s)
{
    if (json_is_false(s))
        return 0;
    const json_t *t = json_object_get(s, "type");
    unsigned bits = 0;
    if (json_is_string(t)) {
        bits = type_bit(json_string_value(t));
    } else if (json_is_array(t)) {
        for (size_t i = 0; i < json_array_size(t); i++)
            bits |= type_bit(json_string_value(json_array_get(t, i)));
    } else {
        bits = T_ANY;
    }
    if (bits & T_NUMBER)
        bits |= T_INTEGER; /* every integer is a number */
    const json_t *e = json_object_get(s, "enum");
    if (json_is_array(e)) {
        unsigned in_enum = 0;
        for (size_t i = 0; i < json_array_size(e); i++) {
            unsigned vt = value_type(json_array_get(e, i));
            in_enum |= vt == T_INTEGER ? T_INTEGER | T_NUMBER : vt;
        }
        bits &= in_enum;
    }
    return bits;
}

/* "integer", "[string, null]", "any" — a type keyword as written. */
static void types_text(const json_t *s, char *out, size_t len)
{
    const json_t *t = json_object_get(s, "type");
    if (t == NULL)
        snprintf(out, len, "any");
    else if (json_is_string(t))
        snprintf(out, len, "%s", json_string_value(t));
    else
        value_text(t, out, len);
}

static void check_types(struct cmp *c, const struct pair *p, const char *path)
{
    unsigned w = types_of(p->w), r = types_of(p->r);
    if ((w & ~r) == 0)
        return;
    unsigned o = types_of(pair_old(c, p)), n = types_of(pair_new(c, p));
    char ot[120], nt[120];
    types_text(pair_old(c, p), ot, sizeof ot);
    types_text(pair_new(c, p), nt, sizeof nt);
    const char *how = (n & ~o) == 0 ? "narrowed" : (o & ~n) == 0 ? "widened" : "changed";
    report(c, path, "type %s from %s to %s", how, ot, nt);
}

static bool enum_has(const json_t *e, const json_t *v)
{
    for (size_t i = 0; i < json_array_size(e); i++)
        if (json_equal(json_array_get(e, i), (json_t *)v))
            return true;
    return false;
}

static void check_enum(struct cmp *c, const struct pair *p, const char *path)
{
    const json_t *we = json_object_get(p->w, "enum"), *re = json_object_get(p->r, "enum");
    if (re == NULL)
        return;
    char v[240];
    if (we == NULL) {
        value_text(re, v, sizeof v);
        report(c, path, c->backward ? "enum added (%s)" : "enum removed (was %s)", v);
        return;
    }
    for (size_t i = 0; i < json_array_size(we); i++) {
        const json_t *x = json_array_get(we, i);
        if (enum_has(re, x))
            continue;
        /* a value of a kind the reader rejects anyway is the type's story */
        if ((value_type(x) & types_of(p->r)) == 0)
            continue;
        value_text(x, v, sizeof v);
        report(c, path, "enum value %s %s", v, c->backward ? "removed" : "added");
    }
}

/* Code points of a UTF-8 string (JSON Schema lengths count characters). */
static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool pattern_matches(const char *pattern, const char *s)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
    if (re == NULL)
        return false;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    bool ok = pcre2_match(re, (PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, 0, 0, md, NULL) >= 0;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return ok;
}

/* With an enum on the writer's side, the writer's values are known: check
 * each against the reader's value rules instead of comparing the rules. */
static void check_enum_values(struct cmp *c, const struct pair *p, const char *path)
{
    const json_t *we = json_object_get(p->w, "enum");
    const json_t *min = json_object_get(p->r, "minimum"), *max = json_object_get(p->r, "maximum");
    const json_t *minl = json_object_get(p->r, "minLength");
    const json_t *maxl = json_object_get(p->r, "maxLength");
    const char *pat = json_string_value(json_object_get(p->r, "pattern"));
    for (size_t i = 0; i < json_array_size(we); i++) {
        const json_t *x = json_array_get(we, i);
        const char *why = NULL;
        if (json_is_number(x) && min && json_number_value(x) < json_number_value(min))
            why = "below the minimum";
        else if (json_is_number(x) && max && json_number_value(x) > json_number_value(max))
            why = "above the maximum";
        else if (json_is_string(x) && minl &&
                 utf8_length(json_string_value(x)) < (size_t)json_integer_value(minl))
            why = "shorter than minLength";
        else if (json_is_string(x) && maxl &&
                 utf8_length(json_string_value(x)) > (size_t)json_integer_value(maxl))
            why = "longer than maxLength";
        else if (json_is_string(x) && pat && !pattern_matches(pat, json_string_value(x)))
            why = "not matching the pattern";
        if (why) {
            char v[240];
            value_text(x, v, sizeof v);
            report(c, path, "enum value %s is %s of the %s schema", v, why,
                   c->backward ? "new" : "old");
        }
    }
}

/* One bound keyword. lower: the reader rejects values below its bound. */
static void check_bound(struct cmp *c, const struct pair *p, const char *path, const char *kw,
                        bool lower)
{
    const json_t *wb = json_object_get(p->w, kw), *rb = json_object_get(p->r, kw);
    if (rb == NULL)
        return;
    if (wb != NULL) {
        double w = json_number_value(wb), r = json_number_value(rb);
        if (lower ? w >= r : w <= r)
            return;
    }
    const json_t *ob = json_object_get(pair_old(c, p), kw);
    const json_t *nb = json_object_get(pair_new(c, p), kw);
    char ov[64], nv[64];
    value_text(ob, ov, sizeof ov);
    value_text(nb, nv, sizeof nv);
    if (ob == NULL)
        report(c, path, "%s added (%s)", kw, nv);
    else if (nb == NULL)
        report(c, path, "%s removed (was %s)", kw, ov);
    else
        report(c, path, "%s %s from %s to %s", kw,
               json_number_value(nb) > json_number_value(ob) ? "raised" : "lowered", ov, nv);
}

static void check_pattern(struct cmp *c, const struct pair *p, const char *path)
{
    const char *wp = json_string_value(json_object_get(p->w, "pattern"));
    const char *rp = json_string_value(json_object_get(p->r, "pattern"));
    if (rp == NULL || (wp && strcmp(wp, rp) == 0))
        return;
    const char *op = c->backward ? wp : rp, *np = c->backward ? rp : wp;
    /* Pattern inclusion is undecidable in general: any new or different
     * pattern on the reader's side may reject what the writer wrote. */
    if (op == NULL)
        report(c, path, "pattern added (\"%s\")", np);
    else if (np == NULL)
        report(c, path, "pattern removed (was \"%s\")", op);
    else
        report(c, path, "pattern changed from \"%s\" to \"%s\"", op, np);
}

static void compare(struct cmp *c, const json_t *w, const json_t *r, const char *path);

static void join(char *out, size_t len, const char *path, const char *name)
{
    snprintf(out, len, "%s%s%s", path, path[0] ? "." : "", name);
}

/* additionalProperties as one of: true (absent), false, or a schema. */
static const json_t *addl(const json_t *s)
{
    const json_t *a = json_object_get(s, "additionalProperties");
    return a ? a : json_true();
}

static void check_required(struct cmp *c, const struct pair *p, const char *path)
{
    const json_t *rr = json_object_get(p->r, "required");
    const json_t *wr = json_object_get(p->w, "required");
    const json_t *rprops = json_object_get(p->r, "properties");
    const json_t *wprops = json_object_get(p->w, "properties");
    char sub[1024];
    for (size_t i = 0; i < json_array_size(rr); i++) {
        const json_t *name = json_array_get(rr, i);
        if (enum_has(wr, name))
            continue;
        /* the filter fills a missing field from the reader's default
         * before it checks required */
        const json_t *rdef = json_object_get(rprops, json_string_value(name));
        if (json_object_get(rdef, "default") != NULL)
            continue;
        bool declared = json_object_get(wprops, json_string_value(name)) != NULL;
        join(sub, sizeof sub, path, json_string_value(name));
        if (c->backward)
            report(c, sub,
                   declared ? "field made required (without a default)"
                            : "required field added (without a default)");
        else
            report(c, sub, declared ? "field made optional" : "required field removed");
    }
}

static void check_properties(struct cmp *c, const struct pair *p, const char *path)
{
    const json_t *wprops = json_object_get(p->w, "properties");
    const json_t *rprops = json_object_get(p->r, "properties");
    const json_t *wa = addl(p->w), *ra = addl(p->r);
    const char *name;
    const json_t *ws;
    char sub[1024];
    json_object_foreach ((json_t *)wprops, name, ws) {
        join(sub, sizeof sub, path, name);
        const json_t *rs = json_object_get(rprops, name);
        if (rs != NULL)
            compare(c, ws, rs, sub);
        else if (json_is_false(ra))
            report(c, sub,
                   c->backward ? "field removed while additionalProperties is false"
                               : "field added while the old schema's additionalProperties "
                                 "is false");
        else if (json_is_object(ra))
            compare(c, ws, ra, sub);
    }
    /* A field only the reader declares: the writer's producers did not
     * know it, so their data is assumed not to carry it, unless the writer
     * typed its extra fields explicitly. */
    const json_t *rs;
    json_object_foreach ((json_t *)rprops, name, rs) {
        if (json_object_get(wprops, name) == NULL && json_is_object(wa)) {
            join(sub, sizeof sub, path, name);
            compare(c, wa, rs, sub);
        }
    }
    snprintf(sub, sizeof sub, "%s%s*", path, path[0] ? "." : "");
    if (json_is_true(ra) || json_is_false(wa))
        return;
    if (json_is_object(wa) && json_is_object(ra)) {
        compare(c, wa, ra, sub);
        return;
    }
    const json_t *oa = addl(pair_old(c, p)), *na = addl(pair_new(c, p));
    char ov[80], nv[80];
    snprintf(ov, sizeof ov, "%s",
             json_is_boolean(oa) ? (json_is_true(oa) ? "true" : "false") : "a schema");
    snprintf(nv, sizeof nv, "%s",
             json_is_boolean(na) ? (json_is_true(na) ? "true" : "false") : "a schema");
    report(c, path, "additionalProperties changed from %s to %s", ov, nv);
}

static void check_items(struct cmp *c, const struct pair *p, const char *path)
{
    const json_t *wi = json_object_get(p->w, "items"), *ri = json_object_get(p->r, "items");
    char sub[1024];
    snprintf(sub, sizeof sub, "%s[]", path);
    if (ri == NULL || json_is_true(ri))
        return;
    if (wi == NULL) {
        report(c, path, c->backward ? "items schema added" : "items schema removed");
        return;
    }
    compare(c, wi, ri, sub);
}

static void check_redact(struct cmp *c, const json_t *old_s, const json_t *new_s, const char *path)
{
    if (c->note_fn == NULL)
        return; /* noted once: the forward pass of FULL has none */
    const char *o = json_string_value(json_object_get(old_s, "redact"));
    const char *n = json_string_value(json_object_get(new_s, "redact"));
    if ((o == NULL) == (n == NULL) && (o == NULL || strcmp(o, n) == 0))
        return;
    char change[200];
    snprintf(change, sizeof change, "redact changed from %s to %s", o ? o : "none", n ? n : "none");
    c->note_fn(c->arg, path[0] ? path : "(root)", change,
               "stored values change from this version on (not a reading incompatibility)");
}

/* compare — reports why a document valid under w may be invalid under r. */
static void compare(struct cmp *c, const json_t *w, const json_t *r, const char *path)
{
    /* A `true` writer reads as {}: json_object_get on it finds nothing. */
    if (json_is_false(w) || json_is_true(r))
        return; /* nothing written, or anything read */
    if (json_is_false(r)) {
        report(c, path, c->backward ? "schema became false" : "schema was false");
        return;
    }
    const struct pair p = {w, r};
    const struct pair *pp = &p;
    check_redact(c, pair_old(c, pp), pair_new(c, pp), path);
    check_types(c, pp, path);
    unsigned both = types_of(w) & types_of(r);
    if (both == 0)
        return; /* the type change says it all */
    check_enum(c, pp, path);
    if (json_object_get(w, "enum") != NULL) {
        check_enum_values(c, pp, path);
        return; /* every written value was checked one by one */
    }
    if (both & (T_NUMBER | T_INTEGER)) {
        check_bound(c, pp, path, "minimum", true);
        check_bound(c, pp, path, "maximum", false);
    }
    if (both & T_STRING) {
        check_bound(c, pp, path, "minLength", true);
        check_bound(c, pp, path, "maxLength", false);
        check_pattern(c, pp, path);
    }
    if (both & T_ARRAY)
        check_items(c, pp, path);
    if (both & T_OBJECT) {
        check_required(c, pp, path);
        check_properties(c, pp, path);
    }
}

size_t ctl_schema_compat(const json_t *old_doc, const json_t *new_doc, enum ctl_compat_mode mode,
                         ctl_compat_fn fn, ctl_compat_fn note_fn, void *arg)
{
    size_t n = 0;
    if (mode & CTL_COMPAT_BACKWARD) {
        struct cmp c = {true, "old data may not be readable by new readers", fn, note_fn, arg, 0};
        compare(&c, old_doc, new_doc, "");
        n += c.breaking;
    }
    if (mode & CTL_COMPAT_FORWARD) {
        /* notes come from the backward pass when there is one */
        struct cmp c = {false, "new data may not be readable by old readers",
                        fn,    mode == CTL_COMPAT_FORWARD ? note_fn : NULL,
                        arg,   0};
        compare(&c, new_doc, old_doc, "");
        n += c.breaking;
    }
    return n;
}
