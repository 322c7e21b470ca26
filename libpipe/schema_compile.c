/* schema_compile — compiles one schema document into the tree of sch_node
 * that schema_check.c walks: patterns precompiled (JIT), members sorted for
 * binary search, enum values and defaults in the form the checker compares
 * and copies (every default is checked against its own schema with the
 * checker). Anything outside the documented subset is an error naming the
 * file and the path in it: a constraint silently ignored is worse than a
 * filter that does not start. Reading directories is schema_load.c's. */
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/schema_int.h"

/* Where a schema sits decides which keywords make sense there. */
enum where { AT_ROOT, AT_PROPERTY, AT_ITEMS, AT_ADDITIONAL };

struct cctx {
    const char *file;
    char *err;
    size_t errlen;
    struct pipe_schema *s;
    char path[SCH_PATH_MAX + 8]; /* event path of the node being compiled */
    size_t plen;
};

static const char *const type_names[] = {"object",  "array",   "string", "number",
                                         "integer", "boolean", "null"};

static const char *const envelope_names[] = {"event",       "id",      "ts",
                                             "received_at", "channel", "schema_version"};

static bool is_envelope(const char *k, size_t n)
{
    for (size_t i = 0; i < sizeof envelope_names / sizeof *envelope_names; i++)
        if (strlen(envelope_names[i]) == n && memcmp(envelope_names[i], k, n) == 0)
            return true;
    return false;
}

__attribute__((format(printf, 2, 3))) static int fail(struct cctx *c, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s: %s", c->file, c->plen ? c->path : "(root)", what);
    return PIPE_EINVAL;
}

/* path_push — appends ".name" (or "name" at the root), "[]" or ".*";
 * returns the old length for path_pop. Long paths end in "...". */
static size_t path_push(struct cctx *c, const char *sep, const char *name)
{
    size_t old = c->plen;
    int n = snprintf(c->path + c->plen, sizeof c->path - c->plen, "%s%s", c->plen ? sep : "", name);
    if (n < 0 || c->plen + (size_t)n >= SCH_PATH_MAX) {
        memcpy(c->path + SCH_PATH_MAX, "...", 4);
        c->plen = SCH_PATH_MAX + 3;
    } else {
        c->plen += (size_t)n;
    }
    return old;
}

static void path_pop(struct cctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

/* ---- small helpers ---- */

/* fmt_number — a number as a person would write it: integers plainly,
 * reals in the shorter of plain and shortest-exponent form ("1e9", "0.5"). */
static void fmt_number(const json_t *j, char *out, size_t cap)
{
    if (json_is_integer(j)) {
        snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        return;
    }
    double d = json_real_value(j);
    char e[40] = "", plain[40] = "";
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*g", p, d);
        if (strtod(e, NULL) == d)
            break;
    }
    /* "1e+09" -> "1e9", "1e-05" -> "1e-5" */
    char *x = strchr(e, 'e');
    if (x) {
        char *src = x + 1, *dst = x + 1;
        if (*src == '+')
            src++;
        else if (*src == '-')
            *dst++ = *src++;
        while (*src == '0' && src[1])
            src++;
        memmove(dst, src, strlen(src) + 1);
    }
    if (d == floor(d) && fabs(d) < 1e17)
        snprintf(plain, sizeof plain, "%.0f", d);
    snprintf(out, cap, "%s", plain[0] && strlen(plain) <= strlen(e) ? plain : e);
}

/* dump_value — compact JSON of j; reals in their shortest exact form (jansson
 * prints 17 digits: 0.1 would become 0.10000000000000001). */
static void dump_value(const json_t *j, struct pipe_buf *b)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        bool first = true;
        pipe_buf_append_char(b, '{');
        json_object_foreach ((json_t *)j, k, v) {
            json_t *ks = json_string(k);
            if (!first)
                pipe_buf_append_char(b, ',');
            first = false;
            dump_value(ks, b);
            json_decref(ks);
            pipe_buf_append_char(b, ':');
            dump_value(v, b);
        }
        pipe_buf_append_char(b, '}');
        break;
    }
    case JSON_ARRAY:
        pipe_buf_append_char(b, '[');
        for (size_t i = 0; i < json_array_size(j); i++) {
            if (i)
                pipe_buf_append_char(b, ',');
            dump_value(json_array_get(j, i), b);
        }
        pipe_buf_append_char(b, ']');
        break;
    case JSON_REAL: {
        char t[40];
        fmt_number(j, t, sizeof t);
        pipe_buf_append_str(b, t);
        if (strpbrk(t, ".e") == NULL)
            pipe_buf_append_str(b, ".0"); /* stays a real for readers that care */
        break;
    }
    default: {
        char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        pipe_buf_append_str(b, s ? s : "null");
        free(s);
    }
    }
}

/* ---- keywords ---- */

static const char *const known_keywords[] = {
    "type",      "required",    "properties", "additionalProperties",
    "enum",      "minimum",     "maximum",    "minLength",
    "maxLength", "pattern",     "items",      "default",
    "redact",    "description", "title",      "$schema",
    "$id",       NULL,
};

static int check_keywords(struct cctx *c, const json_t *j)
{
    const char *k;
    json_t *v;
    json_object_foreach ((json_t *)j, k, v) {
        int i = 0;
        while (known_keywords[i] && strcmp(known_keywords[i], k) != 0)
            i++;
        if (known_keywords[i] == NULL)
            return fail(c, "unknown keyword \"%.60s\" (see docs/schemas.md for the subset)", k);
        if ((strcmp(k, "description") == 0 || strcmp(k, "title") == 0 ||
             strcmp(k, "$schema") == 0 || strcmp(k, "$id") == 0) &&
            !json_is_string(v))
            return fail(c, "\"%s\" must be a string", k);
    }
    return 0;
}

static int type_bit(const json_t *v)
{
    for (int i = 0; json_is_string(v) && i < 7; i++)
        if (strcmp(json_string_value(v), type_names[i]) == 0)
            return 1 << i;
    return 0;
}

static int compile_type(struct cctx *c, const json_t *t, struct sch_node *n)
{
    if (t == NULL)
        return 0;
    if (json_is_string(t)) {
        n->types = (unsigned)type_bit(t);
    } else if (json_is_array(t) && json_array_size(t) > 0) {
        for (size_t i = 0; i < json_array_size(t); i++) {
            unsigned bit = (unsigned)type_bit(json_array_get(t, i));
            if (bit == 0 || (n->types & bit))
                return fail(c, "\"type\" lists an unknown or repeated type");
            n->types |= bit;
        }
    }
    if (n->types == 0)
        return fail(c, "\"type\" must be one of object, array, string, number, integer, "
                       "boolean, null, or a non-empty array of them");
    return 0;
}

static int compile_bounds(struct cctx *c, const json_t *j, struct sch_node *n)
{
    const json_t *v;
    if ((v = json_object_get(j, "minimum"))) {
        if (!json_is_number(v))
            return fail(c, "\"minimum\" must be a number");
        n->has |= SCH_HAS_MIN;
        n->min = json_number_value(v);
        fmt_number(v, n->min_text, sizeof n->min_text);
    }
    if ((v = json_object_get(j, "maximum"))) {
        if (!json_is_number(v))
            return fail(c, "\"maximum\" must be a number");
        n->has |= SCH_HAS_MAX;
        n->max = json_number_value(v);
        fmt_number(v, n->max_text, sizeof n->max_text);
    }
    if ((n->has & SCH_HAS_MIN) && (n->has & SCH_HAS_MAX) && n->min > n->max)
        return fail(c, "\"minimum\" is above \"maximum\": no value can pass");
    static const char *const lens[] = {"minLength", "maxLength"};
    for (int i = 0; i < 2; i++) {
        if ((v = json_object_get(j, lens[i])) == NULL)
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return fail(c, "\"%s\" must be a non-negative integer", lens[i]);
        n->has |= i ? SCH_HAS_MAXLEN : SCH_HAS_MINLEN;
        *(i ? &n->max_len : &n->min_len) = (size_t)json_integer_value(v);
    }
    if ((n->has & SCH_HAS_MINLEN) && (n->has & SCH_HAS_MAXLEN) && n->min_len > n->max_len)
        return fail(c, "\"minLength\" is above \"maxLength\": no value can pass");
    return 0;
}

static int compile_pattern(struct cctx *c, const json_t *v, struct sch_node *n)
{
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return fail(c, "\"pattern\" must be a string");
    int code;
    PCRE2_SIZE off;
    n->re = pcre2_compile((PCRE2_SPTR)json_string_value(v), json_string_length(v), PCRE2_UTF, &code,
                          &off, NULL);
    if (n->re == NULL) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(code, msg, sizeof msg);
        return fail(c, "\"pattern\" does not compile: %s at offset %zu", (char *)msg, (size_t)off);
    }
    /* Without JIT (some platforms) pcre2_match interprets: slower, same result. */
    n->jit = pcre2_jit_compile(n->re, PCRE2_JIT_COMPLETE) == 0;
    n->pattern = pipe_strdup(json_string_value(v));
    return 0;
}

static int compile_enum(struct cctx *c, const json_t *v, struct sch_node *n)
{
    if (v == NULL)
        return 0;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(c, "\"enum\" must be a non-empty array");
    n->n_enums = json_array_size(v);
    n->enums = pipe_calloc(n->n_enums, sizeof *n->enums);
    for (size_t i = 0; i < n->n_enums; i++) {
        const json_t *e = json_array_get(v, i);
        struct sch_enum *x = &n->enums[i];
        switch (json_typeof(e)) {
        case JSON_STRING:
            x->type = PIPE_JSON_STRING;
            x->len = json_string_length(e);
            x->str = pipe_malloc(x->len + 1);
            memcpy(x->str, json_string_value(e), x->len + 1);
            break;
        case JSON_INTEGER:
        case JSON_REAL:
            x->type = PIPE_JSON_NUMBER;
            x->num = json_number_value(e);
            break;
        case JSON_TRUE:
            x->type = PIPE_JSON_TRUE;
            break;
        case JSON_FALSE:
            x->type = PIPE_JSON_FALSE;
            break;
        case JSON_NULL:
            x->type = PIPE_JSON_NULL;
            break;
        default:
            x->type = json_is_object(e) ? PIPE_JSON_OBJECT : PIPE_JSON_ARRAY;
            x->json = json_incref((json_t *)e);
        }
    }
    return 0;
}

static int compile_node(struct cctx *c, const json_t *j, int depth, enum where where,
                        struct sch_node **out);

static int cmp_prop(const void *a, const void *b)
{
    const struct sch_prop *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->name, y->name, x->len);
}

static struct sch_prop *find_prop(struct sch_node *n, const char *k, size_t len)
{
    for (size_t i = 0; i < n->n_props; i++)
        if (n->props[i].len == len && memcmp(n->props[i].name, k, len) == 0)
            return &n->props[i];
    return NULL;
}

static struct sch_prop *add_prop(struct sch_node *n, const char *k, size_t len)
{
    n->props = pipe_realloc(n->props, (n->n_props + 1) * sizeof *n->props);
    struct sch_prop *p = &n->props[n->n_props++];
    *p = (struct sch_prop){pipe_malloc(len + 1), len, NULL, false};
    memcpy(p->name, k, len + 1);
    return p;
}

static int compile_properties(struct cctx *c, const json_t *props, int depth, struct sch_node *n)
{
    if (!json_is_object(props))
        return fail(c, "\"properties\" must be an object");
    const char *k;
    json_t *v;
    json_object_foreach ((json_t *)props, k, v) {
        size_t klen = strlen(k);
        size_t old = path_push(c, ".", k);
        int rc = 0;
        if (klen > SCH_MAX_NAME || n->n_props >= SCH_MAX_PROPS)
            rc = fail(c, "property names are limited to %d bytes and %d per object", SCH_MAX_NAME,
                      SCH_MAX_PROPS);
        struct sch_prop *p = rc == 0 ? add_prop(n, k, klen) : NULL;
        if (rc == 0)
            rc = compile_node(c, v, depth + 1, AT_PROPERTY, &p->node);
        if (rc == 0 && n->root && p->node->redact && is_envelope(k, klen))
            rc = fail(c, "an envelope field cannot be redacted");
        if (rc < 0)
            return rc;
        path_pop(c, old);
        n->has_defaults |= p->node->def != NULL;
        n->redact_below |= p->node->redact_below;
    }
    return 0;
}

static int compile_required(struct cctx *c, const json_t *req, struct sch_node *n)
{
    if (!json_is_array(req))
        return fail(c, "\"required\" must be an array of property names");
    for (size_t i = 0; i < json_array_size(req); i++) {
        const json_t *r = json_array_get(req, i);
        if (!json_is_string(r))
            return fail(c, "\"required\" must be an array of property names");
        const char *k = json_string_value(r);
        size_t klen = json_string_length(r);
        struct sch_prop *p = find_prop(n, k, klen);
        if (p && p->required)
            return fail(c, "\"required\" names \"%.60s\" twice", k);
        if (p == NULL && (klen > SCH_MAX_NAME || n->n_props >= SCH_MAX_PROPS))
            return fail(c, "property names are limited to %d bytes and %d per object", SCH_MAX_NAME,
                        SCH_MAX_PROPS);
        if (p == NULL)
            p = add_prop(n, k, klen);
        p->required = true;
        n->has_required = true;
    }
    return 0;
}

static size_t prop_index(const struct sch_node *n, const char *k, size_t len)
{
    struct sch_prop key = {(char *)k, len, NULL, false};
    const struct sch_prop *p = bsearch(&key, n->props, n->n_props, sizeof *n->props, cmp_prop);
    return (size_t)(p - n->props);
}

/* index_members — the order defaults are inserted and missing required
 * members reported in: as the document lists them. */
static void index_members(const json_t *j, struct sch_node *n)
{
    const json_t *props = json_object_get(j, "properties"), *req = json_object_get(j, "required");
    const char *k;
    json_t *v;
    if (n->has_defaults) {
        n->def_idx = pipe_calloc(n->n_props, sizeof *n->def_idx);
        json_object_foreach ((json_t *)props, k, v)
            if (json_object_get(v, "default"))
                n->def_idx[n->n_def++] = prop_index(n, k, strlen(k));
    }
    if (n->has_required) {
        n->req_idx = pipe_calloc(n->n_props, sizeof *n->req_idx);
        for (size_t i = 0; i < json_array_size(req); i++) {
            const json_t *r = json_array_get(req, i);
            n->req_idx[n->n_req++] = prop_index(n, json_string_value(r), json_string_length(r));
        }
    }
}

/* compile_object — properties, required, additionalProperties, items. */
static int compile_object(struct cctx *c, const json_t *j, int depth, struct sch_node *n)
{
    const json_t *v;
    int rc = 0;
    if ((v = json_object_get(j, "properties")) && (rc = compile_properties(c, v, depth, n)) < 0)
        return rc;
    if ((v = json_object_get(j, "required")) && (rc = compile_required(c, v, n)) < 0)
        return rc;
    if (n->n_props)
        qsort(n->props, n->n_props, sizeof *n->props, cmp_prop);
    index_members(j, n);
    if ((v = json_object_get(j, "additionalProperties"))) {
        if (json_is_false(v)) {
            n->closed = true;
        } else if (json_is_object(v)) {
            size_t old = path_push(c, ".", "*");
            if ((rc = compile_node(c, v, depth + 1, AT_ADDITIONAL, &n->additional)) < 0)
                return rc;
            path_pop(c, old);
        } else if (!json_is_true(v)) {
            return fail(c, "\"additionalProperties\" must be a boolean or a schema");
        }
    }
    if ((v = json_object_get(j, "items"))) {
        if (!json_is_object(v))
            return fail(c, "\"items\" must be one schema (an object) for every element");
        size_t old = path_push(c, "", "[]");
        if ((rc = compile_node(c, v, depth + 1, AT_ITEMS, &n->items)) < 0)
            return rc;
        path_pop(c, old);
        n->redact_below |= n->items->redact_below;
    }
    n->walk_object = n->n_props > 0 || n->closed || n->additional != NULL;
    return 0;
}

/* compile_annotations — redact and default, which only a property has. */
static int compile_annotations(struct cctx *c, const json_t *j, enum where where,
                               struct sch_node *n)
{
    const json_t *red = json_object_get(j, "redact"), *def = json_object_get(j, "default");
    if ((red || def) && where != AT_PROPERTY)
        return fail(c, "\"%s\" applies only to a member listed in \"properties\"",
                    red ? "redact" : "default");
    if (red && def)
        return fail(c, "a field with a \"default\" cannot also be redacted");
    if (red) {
        const char *r = json_string_value(red);
        if (r && strcmp(r, "remove") == 0) {
            n->redact = SCH_REDACT_REMOVE;
        } else if (r && strcmp(r, "hash") == 0) {
            if (c->s->key_len == 0)
                return fail(c, "redact \"hash\" needs a key: configure redact_key_file");
            n->redact = SCH_REDACT_HASH;
            c->s->hashes = true;
        } else {
            return fail(c, "\"redact\" must be \"remove\" or \"hash\"");
        }
        n->redact_below = true;
        c->s->redacts = true;
    }
    if (def) {
        struct pipe_buf b;
        pipe_buf_init(&b, SIZE_MAX);
        dump_value(def, &b);
        n->def_len = b.len;
        n->def = pipe_buf_steal(&b, NULL);
        char why[200];
        if (!pipe__schema_value_ok(n, n->def, n->def_len, why, sizeof why))
            return fail(c, "the \"default\" does not pass its own schema: %s", why);
    }
    return 0;
}

static void node_free(struct sch_node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n_props; i++) {
        pipe_free(n->props[i].name);
        node_free(n->props[i].node);
    }
    pipe_free(n->props);
    pipe_free(n->def_idx);
    pipe_free(n->req_idx);
    for (size_t i = 0; i < n->n_enums; i++) {
        pipe_free(n->enums[i].str);
        json_decref(n->enums[i].json);
    }
    pipe_free(n->enums);
    pcre2_code_free(n->re);
    pipe_free(n->pattern);
    node_free(n->additional);
    node_free(n->items);
    pipe_free(n->def);
    pipe_free(n);
}

static int compile_node(struct cctx *c, const json_t *j, int depth, enum where where,
                        struct sch_node **out)
{
    if (!json_is_object(j))
        return fail(c, "a schema must be a JSON object");
    if (depth > SCH_MAX_DEPTH)
        return fail(c, "schemas nest deeper than %d levels", SCH_MAX_DEPTH);
    struct sch_node *n = pipe_calloc(1, sizeof *n);
    n->root = where == AT_ROOT;
    int rc = check_keywords(c, j);
    if (rc == 0)
        rc = compile_type(c, json_object_get(j, "type"), n);
    if (rc == 0 && n->root && n->types && !(n->types & SCH_T_OBJECT))
        rc = fail(c, "the document describes the whole event: its \"type\" must be object");
    if (rc == 0)
        rc = compile_bounds(c, j, n);
    if (rc == 0)
        rc = compile_pattern(c, json_object_get(j, "pattern"), n);
    if (rc == 0)
        rc = compile_enum(c, json_object_get(j, "enum"), n);
    if (rc == 0)
        rc = compile_object(c, j, depth, n);
    /* Last: a default is checked against everything above. */
    if (rc == 0)
        rc = compile_annotations(c, j, where, n);
    if (rc < 0) {
        node_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* ---- one schema ---- */

int pipe_schema_new(const json_t *doc, const char *event, int version, const char *file,
                    const struct pipe_schema_opts *opts, struct pipe_schema **out, char *err,
                    size_t errlen)
{
    struct pipe_schema *s = pipe_calloc(1, sizeof *s);
    struct cctx c = {.file = file ? file : "<schema>", .err = err, .errlen = errlen, .s = s};
    int rc = 0;
    if (event == NULL || event[0] == '\0' || version < 1 || version > PIPE_SCHEMA_MAX_VERSION) {
        rc = fail(&c, "a schema needs an event type and a version from 1 to %d",
                  PIPE_SCHEMA_MAX_VERSION);
        goto out;
    }
    if (opts && opts->hash_key_len) {
        if (opts->hash_key_len < crypto_generichash_KEYBYTES_MIN ||
            opts->hash_key_len > crypto_generichash_KEYBYTES_MAX) {
            rc = fail(&c, "the redaction key must be %d to %d bytes long",
                      crypto_generichash_KEYBYTES_MIN, crypto_generichash_KEYBYTES_MAX);
            goto out;
        }
        memcpy(s->key, opts->hash_key, opts->hash_key_len);
        s->key_len = opts->hash_key_len;
    }
    s->event = pipe_strdup(event);
    s->version = version;
    s->file = pipe_strdup(c.file);
    s->doc = json_incref((json_t *)doc);
    rc = compile_node(&c, doc, 0, AT_ROOT, &s->root);
    if (rc == 0 && s->hashes && sodium_init() < 0)
        rc = fail(&c, "libsodium failed to initialise");
out:
    if (rc < 0) {
        pipe_schema_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void pipe_schema_free(struct pipe_schema *s)
{
    if (s == NULL)
        return;
    node_free(s->root);
    json_decref(s->doc);
    sodium_memzero(s->key, sizeof s->key);
    pipe_free(s->event);
    pipe_free(s->file);
    pipe_free(s);
}

const char *pipe_schema_event(const struct pipe_schema *s)
{
    return s->event;
}

int pipe_schema_version(const struct pipe_schema *s)
{
    return s->version;
}

const char *pipe_schema_file(const struct pipe_schema *s)
{
    return s->file;
}

const json_t *pipe_schema_doc(const struct pipe_schema *s)
{
    return s->doc;
}

bool pipe_schema_redacts(const struct pipe_schema *s)
{
    return s->redacts;
}
