/* schema_gen — definitions generated from the schemas: the OpenAPI 3.0
 * document of the ingest API and per-event-type warehouse tables in four SQL
 * dialects. The table planner (ctl_ddl_plan) is the part other commands
 * reuse: it says which column holds which top-level member, typed how. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/schema.h"
#include "tools/sluicectl/ctl.h"

/* ---- OpenAPI ----------------------------------------------------------------- */

static json_t *oas_schema(const json_t *s);

/* "type" of the subset -> OpenAPI 3.0, which has no type arrays and no
 * "null" type: null becomes nullable, several types an anyOf. */
static void oas_type(json_t *out, const json_t *t)
{
    if (json_is_string(t) && strcmp(json_string_value(t), "null") != 0) {
        json_object_set(out, "type", (json_t *)t);
        return;
    }
    json_t *types = json_array();
    bool null = json_is_string(t);
    for (size_t i = 0; i < json_array_size(t); i++) {
        const json_t *x = json_array_get(t, i);
        if (strcmp(json_string_value(x), "null") == 0)
            null = true;
        else
            json_array_append(types, (json_t *)x);
    }
    if (json_array_size(types) == 1) {
        json_object_set(out, "type", json_array_get(types, 0));
    } else if (json_array_size(types) > 1) {
        json_t *any = json_array();
        for (size_t i = 0; i < json_array_size(types); i++)
            json_array_append_new(any, json_pack("{s:O}", "type", json_array_get(types, i)));
        json_object_set_new(out, "anyOf", any);
    } else {
        json_object_set_new(out, "enum", json_pack("[n]"));
    }
    if (null)
        json_object_set_new(out, "nullable", json_true());
    json_decref(types);
}

static json_t *oas_schema(const json_t *s)
{
    if (json_is_true(s))
        return json_object();
    if (!json_is_object(s))
        return json_pack("{s:{}}", "not");
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach ((json_t *)s, k, v) {
        if (strcmp(k, "$schema") == 0 || strcmp(k, "$id") == 0) {
            continue;
        } else if (strcmp(k, "type") == 0) {
            oas_type(out, v);
        } else if (strcmp(k, "redact") == 0) {
            json_object_set(out, "x-sluice-redact", v);
        } else if (strcmp(k, "properties") == 0) {
            json_t *props = json_object();
            const char *name;
            json_t *p;
            json_object_foreach (v, name, p) {
                json_object_set_new(props, name, oas_schema(p));
            }
            json_object_set_new(out, k, props);
        } else if (strcmp(k, "items") == 0 ||
                   (strcmp(k, "additionalProperties") == 0 && json_is_object(v))) {
            json_object_set_new(out, k, oas_schema(v));
        } else if (strcmp(k, "enum") == 0 && json_object_get(out, "enum") != NULL) {
            json_object_set(out, k, v); /* a declared enum beats the null-only one */
        } else {
            json_object_set(out, k, v);
        }
    }
    return out;
}

/* The envelope members of SPEC section 3 as OpenAPI properties. */
static json_t *oas_envelope_properties(void)
{
    json_t *p =
        json_pack("{s:{s:s, s:s}, s:{s:s, s:i, s:i}, s:{s:[{s:s, s:s},{s:s, s:i}]}, "
                  "s:{s:s, s:i}}",
                  "event", "type", "string", "pattern", "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", "id",
                  "type", "string", "minLength", 1, "maxLength", 128, "ts", "anyOf", "type",
                  "string", "format", "date-time", "type", "integer", "minimum", 0,
                  "schema_version", "type", "integer", "minimum", 1);
    json_object_set_new(
        p, "received_at",
        json_pack("{s:s, s:s, s:b}", "type", "string", "format", "date-time", "readOnly", 1));
    json_object_set_new(p, "channel", json_pack("{s:s, s:b}", "type", "string", "readOnly", 1));
    return p;
}

/* The component of one version of event: its schema with "event" pinned to
 * the type's name, which the discriminator needs. */
static json_t *oas_event_component(const char *event, const json_t *doc, const char *title)
{
    json_t *c = oas_schema(doc);
    if (json_object_get(c, "type") == NULL && json_object_get(c, "anyOf") == NULL)
        json_object_set_new(c, "type", json_string("object"));
    if (title)
        json_object_set_new(c, "title", json_string(title));
    json_t *props = json_object_get(c, "properties");
    if (props == NULL) {
        props = json_object();
        json_object_set_new(c, "properties", props);
    }
    json_object_set_new(props, "event", json_pack("{s:s, s:[s]}", "type", "string", "enum", event));
    /* the envelope fields a client may send, unless the schema says more */
    json_t *env = oas_envelope_properties();
    const char *k;
    json_t *v;
    json_object_foreach (env, k, v) {
        if (json_object_get(props, k) == NULL)
            json_object_set(props, k, v);
    }
    json_decref(env);
    json_t *req = json_object_get(c, "required");
    bool has = false;
    for (size_t i = 0; i < json_array_size(req); i++)
        has = has || strcmp(json_string_value(json_array_get(req, i)), "event") == 0;
    if (req == NULL) {
        req = json_array();
        json_object_set_new(c, "required", req);
    }
    if (!has)
        json_array_insert_new(req, 0, json_string("event"));
    return c;
}

static json_t *oas_error(const char *desc, const char *codes)
{
    return json_pack("{s:s, s:{s:{s:{s:s}}}, s:s}", "description", desc, "content",
                     "application/json", "schema", "$ref", "#/components/schemas/SluiceError",
                     "x-sluice-error-codes", codes);
}

static json_t *oas_paths(void)
{
    json_t *resp = json_object();
    json_object_set_new(
        resp, "200",
        json_pack("{s:s, s:{s:{s:{s:s}}}}", "description",
                  "Every event of the batch was judged and durably written: accepted ones to "
                  "filtered/, rejected ones (with a reason) to rejected/.",
                  "content", "application/json", "schema", "$ref",
                  "#/components/schemas/SluiceIngestResult"));
    json_object_set_new(resp, "400",
                        oas_error("The body is not JSON at all, or its zstd encoding is broken.",
                                  "not_json, bad_encoding"));
    json_object_set_new(resp, "401", oas_error("X-Api-Key is missing or unknown.", "bad_api_key"));
    json_t *r413 = oas_error("The body (as sent, or after zstd decoding) is over the limit. "
                             "Split the batch.",
                             "too_large");
    json_object_set_new(json_object_get(r413, "content"), "text/plain",
                        json_pack("{s:{s:s}}", "schema", "type", "string"));
    json_object_set_new(resp, "413", r413);
    json_object_set_new(
        resp, "415", oas_error("Content-Encoding is neither zstd nor identity.", "bad_encoding"));
    json_t *r503 = oas_error("The store is unavailable, buffers are full or the filter is "
                             "stopping. Nothing of the batch is acknowledged: retry with the "
                             "same event ids.",
                             "store_unavailable, busy, stopping");
    json_object_set_new(r503, "headers",
                        json_pack("{s:{s:s, s:{s:s}}}", "Retry-After", "description",
                                  "seconds to wait before retrying", "schema", "type", "integer"));
    json_object_set_new(resp, "503", r503);

    json_t *post = json_pack(
        "{s:s, s:s, s:s, s:[{s:[]}], s:[{s:s, s:s, s:b, s:s, s:{s:s, s:[s,s]}}],"
        " s:{s:b, s:{s:{s:{s:[{s:s},{s:s}]}}, s:{s:{s:s, s:s}}}}}",
        "operationId", "postEvents", "summary", "Send a batch of events", "description",
        "The events are validated against their type's schema and acknowledged only once "
        "durably stored. A client that gets no answer, or 503, retries the same batch with the "
        "same event ids; duplicates are dropped downstream.",
        "security", "ApiKey", "parameters", "name", "Content-Encoding", "in", "header", "required",
        0, "description", "zstd to send the body compressed", "schema", "type", "string", "enum",
        "zstd", "identity", "requestBody", "required", 1, "content", "application/json", "schema",
        "oneOf", "$ref", "#/components/schemas/SluiceEventArray", "$ref",
        "#/components/schemas/SluiceEventBatch", "application/x-ndjson", "schema", "type", "string",
        "description", "NDJSON: one event object (a SluiceEvent) per line");
    json_object_set_new(post, "responses", resp);

    json_t *paths = json_object();
    json_object_set_new(paths, "/v1/events", json_pack("{s:o}", "post", post));
    static const struct {
        const char *path, *id, *summary, *body;
        bool can_503;
    } admin[] = {
        {"/healthz", "getHealthz", "Liveness: the process runs", "ok", false},
        {"/readyz", "getReadyz", "Readiness: the filter accepts events", "ready", true},
        {"/metrics", "getMetrics", "Prometheus metrics (text format 0.0.4)", NULL, false},
    };
    for (size_t i = 0; i < sizeof admin / sizeof admin[0]; i++) {
        json_t *r = json_object();
        json_object_set_new(r, "200",
                            json_pack("{s:s, s:{s:{s:{s:s}}}}", "description",
                                      admin[i].body ? admin[i].body : "the metrics", "content",
                                      "text/plain", "schema", "type", "string"));
        if (admin[i].can_503)
            json_object_set_new(r, "503",
                                json_pack("{s:s, s:{s:{s:{s:s}}}}", "description",
                                          "not ready (starting or stopping)", "content",
                                          "text/plain", "schema", "type", "string"));
        json_object_set_new(paths, admin[i].path,
                            json_pack("{s:{s:s, s:s, s:[], s:o}}", "get", "operationId",
                                      admin[i].id, "summary", admin[i].summary, "security",
                                      "responses", r));
    }
    return paths;
}

/* The fixed components: batch forms, answers, the generic envelope. */
static void oas_fixed_components(json_t *schemas)
{
    json_object_set_new(schemas, "SluiceEventArray",
                        json_pack("{s:s, s:{s:s}}", "type", "array", "items", "$ref",
                                  "#/components/schemas/SluiceEvent"));
    json_object_set_new(schemas, "SluiceEventBatch",
                        json_pack("{s:s, s:[s], s:{s:{s:s}}}", "type", "object", "required",
                                  "events", "properties", "events", "$ref",
                                  "#/components/schemas/SluiceEventArray"));
    json_object_set_new(schemas, "SluiceIngestResult",
                        json_pack("{s:s, s:[s,s], s:{s:{s:s, s:i}, s:{s:s, s:i}}}", "type",
                                  "object", "required", "accepted", "rejected", "properties",
                                  "accepted", "type", "integer", "minimum", 0, "rejected", "type",
                                  "integer", "minimum", 0));
    json_object_set_new(schemas, "SluiceError",
                        json_pack("{s:s, s:[s,s], s:{s:{s:s}, s:{s:s}}}", "type", "object",
                                  "required", "error", "message", "properties", "error", "type",
                                  "string", "message", "type", "string"));
    json_object_set_new(schemas, "SluiceEnvelope",
                        json_pack("{s:s, s:s, s:[s], s:o}", "description",
                                  "Fields every event has (SPEC section 3); received_at and "
                                  "channel are set by the filter, whatever the client sends.",
                                  "type", "object", "required", "event", "properties",
                                  oas_envelope_properties()));
}

/* Adds schemas[name] = c unless the name is taken (then fails). */
static int oas_add(json_t *schemas, const char *name, json_t *c, char *err, size_t errlen)
{
    if (json_object_get(schemas, name) != NULL) {
        snprintf(err, errlen, "two components would be called \"%s\"; rename an event type", name);
        json_decref(c);
        return PIPE_EINVAL;
    }
    json_object_set_new(schemas, name, c);
    return 0;
}

json_t *ctl_openapi_build(const struct pipe_schema_set *set, const char *title, const char *server,
                          char *err, size_t errlen)
{
    json_t *schemas = json_object();
    oas_fixed_components(schemas);
    json_t *one_of = json_array(), *mapping = json_object();
    int rc = 0;
    size_t n_types = pipe_schema_set_types(set);
    for (size_t i = 0; i < n_types && rc == 0; i++) {
        size_t n;
        const struct pipe_schema *const *t = pipe_schema_set_type(set, i, &n);
        const char *ev = pipe_schema_event(t[0]);
        char ref[300], name[200], vtitle[200];
        rc = oas_add(schemas, ev, oas_event_component(ev, pipe_schema_doc(t[n - 1]), NULL), err,
                     errlen);
        for (size_t v = 0; v < n && rc == 0; v++) {
            snprintf(name, sizeof name, "%s.v%d", ev, pipe_schema_version(t[v]));
            snprintf(vtitle, sizeof vtitle, "%s (schema version %d)", ev,
                     pipe_schema_version(t[v]));
            rc = oas_add(schemas, name, oas_event_component(ev, pipe_schema_doc(t[v]), vtitle), err,
                         errlen);
        }
        snprintf(ref, sizeof ref, "#/components/schemas/%s", ev);
        json_array_append_new(one_of, json_pack("{s:s}", "$ref", ref));
        json_object_set_new(mapping, ev, json_string(ref));
    }
    json_t *event;
    if (n_types > 0) {
        event = json_pack("{s:s, s:o, s:{s:s, s:o}}", "description",
                          "An event of one of the declared types (its highest schema version).",
                          "oneOf", one_of, "discriminator", "propertyName", "event", "mapping",
                          mapping);
    } else {
        json_decref(one_of);
        json_decref(mapping);
        event = json_pack("{s:s}", "$ref", "#/components/schemas/SluiceEnvelope");
    }
    if (rc == 0)
        rc = oas_add(schemas, "SluiceEvent", event, err, errlen);
    else
        json_decref(event);
    if (rc < 0) {
        json_decref(schemas);
        return NULL;
    }
    json_t *doc =
        json_pack("{s:s, s:{s:s, s:s, s:s}}", "openapi", "3.0.3", "info", "title",
                  title ? title : "sluice ingest API", "version", SLUICE_VERSION, "description",
                  "Generated by `sluicectl schema openapi` from the event schemas; do not edit.");
    if (server)
        json_object_set_new(doc, "servers", json_pack("[{s:s}]", "url", server));
    json_t *paths = oas_paths();
    json_t *security = json_pack("{s:{s:s, s:s, s:s}}", "ApiKey", "type", "apiKey", "in", "header",
                                 "name", "X-Api-Key");
    ctl_openapi_sdk(paths, schemas, security);
    json_object_set_new(doc, "paths", paths);
    json_object_set_new(doc, "components",
                        json_pack("{s:o, s:o}", "securitySchemes", security, "schemas", schemas));
    return doc;
}

/* ---- DDL ------------------------------------------------------------------------ */

enum dialect { D_SNOWFLAKE, D_REDSHIFT, D_POSTGRES, D_BIGQUERY, D__COUNT };

/* Per dialect: the types, the name rules and the table's extras. */
static const struct dialect_desc {
    const char *name;
    const char *string, *integer, *number, *boolean, *semi, *timestamp;
    const char *event_type, *id_type, *channel_type;
    size_t ident_max;   /* longest column name in bytes */
    char fold;          /* 'U' upper, 'L' lower, 0 as written */
    bool plain_columns; /* only [A-Za-z0-9_] in column names */
} dialects[D__COUNT] = {
    [D_SNOWFLAKE] = {"snowflake", "VARCHAR", "NUMBER(38,0)", "FLOAT", "BOOLEAN", "VARIANT",
                     "TIMESTAMP_TZ", "VARCHAR(128)", "VARCHAR(128)", "VARCHAR(64)", 255, 'U',
                     false},
    [D_REDSHIFT] = {"redshift", "VARCHAR(65535)", "BIGINT", "DOUBLE PRECISION", "BOOLEAN", "SUPER",
                    "TIMESTAMPTZ", "VARCHAR(128)", "VARCHAR(512)", "VARCHAR(64)", 127, 'L', false},
    [D_POSTGRES] = {"postgres", "text", "bigint", "double precision", "boolean", "jsonb",
                    "timestamptz", "text", "text", "text", 63, 0, false},
    [D_BIGQUERY] = {"bigquery", "STRING", "INT64", "FLOAT64", "BOOL", "JSON", "TIMESTAMP", "STRING",
                    "STRING", "STRING", 300, 0, true},
};

static const struct dialect_desc *dialect_find(const char *name)
{
    for (int i = 0; i < D__COUNT; i++)
        if (name && strcmp(name, dialects[i].name) == 0)
            return &dialects[i];
    return NULL;
}

bool ctl_ddl_dialect_valid(const char *dialect)
{
    return dialect_find(dialect) != NULL;
}

/* Top-level members that never get a column of their own: the envelope
 * (fixed columns), the raw column and the PostgreSQL loader's bookkeeping. */
static bool ddl_reserved(const char *key)
{
    static const char *const names[] = {"event", "id",    "ts",         "received_at", "channel",
                                        "data",  "_file", "_loaded_at", NULL};
    for (size_t i = 0; names[i]; i++)
        if (strcmp(key, names[i]) == 0)
            return true;
    return false;
}

/* The column type of a property: one non-null kind gives a typed column;
 * several kinds, objects, arrays or no type give the semi-structured one. */
static char *ddl_type(const struct dialect_desc *d, const json_t *prop)
{
    const char *redact = json_string_value(json_object_get(prop, "redact"));
    if (redact && strcmp(redact, "hash") == 0)
        return pipe_strdup(d->string); /* a keyed hash, as hex */
    const json_t *t = json_object_get(prop, "type");
    const char *kind = NULL;
    size_t kinds = 0;
    bool has_integer = false, has_number = false;
    for (size_t i = 0; i < (json_is_array(t) ? json_array_size(t) : 1); i++) {
        const char *k = json_string_value(json_is_array(t) ? json_array_get(t, i) : t);
        if (k == NULL || strcmp(k, "null") == 0)
            continue;
        has_integer = has_integer || strcmp(k, "integer") == 0;
        has_number = has_number || strcmp(k, "number") == 0;
        kind = k;
        kinds++;
    }
    if (kinds == 2 && has_integer && has_number) {
        kind = "number";
        kinds = 1;
    }
    if (kinds != 1)
        return pipe_strdup(d->semi);
    if (strcmp(kind, "string") == 0) {
        const json_t *maxl = json_object_get(prop, "maxLength");
        if (d == &dialects[D_SNOWFLAKE] && json_is_integer(maxl) && json_integer_value(maxl) > 0 &&
            json_integer_value(maxl) <= 16777216)
            return pipe_asprintf("VARCHAR(%lld)", (long long)json_integer_value(maxl));
        if (d == &dialects[D_REDSHIFT] && json_is_integer(maxl) && json_integer_value(maxl) > 0 &&
            json_integer_value(maxl) <= 65535 / 4)
            /* Redshift counts bytes: four per character at worst */
            return pipe_asprintf("VARCHAR(%lld)", (long long)json_integer_value(maxl) * 4);
        return pipe_strdup(d->string);
    }
    if (strcmp(kind, "integer") == 0)
        return pipe_strdup(d->integer);
    if (strcmp(kind, "number") == 0)
        return pipe_strdup(d->number);
    if (strcmp(kind, "boolean") == 0)
        return pipe_strdup(d->boolean);
    return pipe_strdup(d->semi);
}

/* The column name of key in dialect d. */
static char *ddl_column_name(const struct dialect_desc *d, const char *key)
{
    size_t n = strlen(key);
    char *out = pipe_malloc(n + 2), *o = out;
    if (d->plain_columns && key[0] >= '0' && key[0] <= '9')
        *o++ = '_';
    for (const char *k = key; *k; k++) {
        char c = *k;
        if (d->plain_columns && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                  (c >= '0' && c <= '9') || c == '_'))
            c = '_';
        if (d->fold == 'U' && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (d->fold == 'L' && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        *o++ = c;
    }
    *o = '\0';
    return out;
}

static void ddl_add(struct ctl_ddl_table *t, size_t *cap, char *name, const char *key, char *type,
                    bool not_null)
{
    if (t->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        t->cols = pipe_realloc(t->cols, *cap * sizeof *t->cols);
    }
    t->cols[t->n++] = (struct ctl_ddl_column){name, key ? pipe_strdup(key) : NULL, type, not_null};
}

/* Two names that the warehouse would take for one: compared after case
 * folding where the dialect folds or ignores case. */
static bool ddl_same_name(const struct dialect_desc *d, const char *a, const char *b)
{
    return d == &dialects[D_POSTGRES] ? strcmp(a, b) == 0 : strcasecmp(a, b) == 0;
}

static int ddl_add_declared(const struct dialect_desc *d, struct ctl_ddl_table *t, size_t *cap,
                            const json_t *schema, char *err, size_t errlen)
{
    const char *key;
    const json_t *prop;
    json_object_foreach ((json_t *)json_object_get(schema, "properties"), key, prop) {
        const char *redact = json_string_value(json_object_get(prop, "redact"));
        if (ddl_reserved(key) || (redact && strcmp(redact, "remove") == 0) ||
            strlen(key) > d->ident_max)
            continue;
        char *name = ddl_column_name(d, key);
        bool dup = false;
        for (size_t i = 0; i < t->n && !dup; i++) {
            if (!ddl_same_name(d, t->cols[i].name, name))
                continue;
            if (t->cols[i].key && strcmp(t->cols[i].key, key) == 0) {
                dup = true; /* declared by a newer version: its type stands */
                continue;
            }
            snprintf(err, errlen, "properties \"%s\" and \"%s\" both map to column %s in %s",
                     t->cols[i].key ? t->cols[i].key : t->cols[i].name, key, name, d->name);
            pipe_free(name);
            return PIPE_EINVAL;
        }
        if (dup)
            pipe_free(name);
        else
            ddl_add(t, cap, name, key, ddl_type(d, prop), false);
    }
    return 0;
}

void ctl_ddl_table_name(const char *event, char out[CTL_DDL_NAME_MAX])
{
    size_t n = strlen(event), i;
    size_t keep = n < CTL_DDL_NAME_MAX ? n : 54;
    for (i = 0; i < keep; i++) {
        char c = event[i];
        out[i] = (c == '.' || c == '-') ? '_' : (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    if (keep < n)
        i += (size_t)snprintf(out + i, CTL_DDL_NAME_MAX - i, "_%08" PRIx32,
                              (uint32_t)XXH3_64bits(event, n));
    out[i] = '\0';
}

int ctl_ddl_plan(const char *dialect, const char *event, const json_t *const *schemas, size_t n,
                 struct ctl_ddl_table *out, char *err, size_t errlen)
{
    const struct dialect_desc *d = dialect_find(dialect);
    if (d == NULL) {
        snprintf(err, errlen, "unknown dialect \"%s\"", dialect ? dialect : "(null)");
        return PIPE_EINVAL;
    }
    struct ctl_ddl_table t = {0};
    size_t cap = 0;
    char name[CTL_DDL_NAME_MAX];
    ctl_ddl_table_name(event, name);
    t.name = ddl_column_name(d, name);
    ddl_add(&t, &cap, ddl_column_name(d, "id"), "id", pipe_strdup(d->id_type), true);
    ddl_add(&t, &cap, ddl_column_name(d, "event"), "event", pipe_strdup(d->event_type), true);
    ddl_add(&t, &cap, ddl_column_name(d, "ts"), "ts", pipe_strdup(d->timestamp), false);
    ddl_add(&t, &cap, ddl_column_name(d, "received_at"), "received_at", pipe_strdup(d->timestamp),
            true);
    ddl_add(&t, &cap, ddl_column_name(d, "channel"), "channel", pipe_strdup(d->channel_type),
            false);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = ddl_add_declared(d, &t, &cap, schemas[i], err, errlen);
    if (rc < 0) {
        ctl_ddl_table_cleanup(&t);
        return rc;
    }
    ddl_add(&t, &cap, ddl_column_name(d, "data"), NULL, pipe_strdup(d->semi), true);
    *out = t;
    return 0;
}

void ctl_ddl_table_cleanup(struct ctl_ddl_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        pipe_free(t->cols[i].name);
        pipe_free(t->cols[i].key);
        pipe_free(t->cols[i].type);
    }
    pipe_free(t->cols);
    pipe_free(t->name);
    memset(t, 0, sizeof *t);
}

void ctl_ddl_quote(FILE *out, const char *dialect, const char *ident)
{
    char q = strcmp(dialect, "bigquery") == 0 ? '`' : '"';
    fputc(q, out);
    for (const char *p = ident; *p; p++) {
        if (*p == q && q == '"')
            fputc('"', out); /* "" inside double quotes */
        else if (*p == q || *p == '\\')
            fputc('\\', out); /* \` and \\ inside backquotes */
        fputc(*p, out);
    }
    fputc(q, out);
}

int ctl_ddl_table(FILE *out, const char *dialect, const char *ns, const char *event,
                  const json_t *const *schemas, size_t n, char *err, size_t errlen)
{
    struct ctl_ddl_table t;
    int rc = ctl_ddl_plan(dialect, event, schemas, n, &t, err, errlen);
    if (rc < 0)
        return rc;
    const struct dialect_desc *d = dialect_find(dialect);
    fputs("CREATE TABLE IF NOT EXISTS ", out);
    if (ns) {
        ctl_ddl_quote(out, dialect, ns);
        fputc('.', out);
    }
    ctl_ddl_quote(out, dialect, t.name);
    fputs(" (\n", out);
    for (size_t i = 0; i < t.n; i++) {
        fputs("    ", out);
        ctl_ddl_quote(out, dialect, t.cols[i].name);
        fprintf(out, " %s%s,\n", t.cols[i].type, t.cols[i].not_null ? " NOT NULL" : "");
    }
    if (d == &dialects[D_POSTGRES])
        fputs("    \"_file\" text NOT NULL,\n"
              "    \"_loaded_at\" timestamptz NOT NULL DEFAULT now(),\n",
              out);
    fputs("    PRIMARY KEY (", out);
    ctl_ddl_quote(out, dialect, t.cols[0].name);
    fputs(d == &dialects[D_BIGQUERY] ? ") NOT ENFORCED\n)" : ")\n)", out);
    if (d == &dialects[D_REDSHIFT]) {
        fputs("\nSORTKEY (", out);
        ctl_ddl_quote(out, dialect, t.cols[3].name);
        fputc(')', out);
    } else if (d == &dialects[D_BIGQUERY]) {
        fputs("\nPARTITION BY DATE(", out);
        ctl_ddl_quote(out, dialect, t.cols[3].name);
        fputc(')', out);
    }
    fputs(";\n", out);
    ctl_ddl_table_cleanup(&t);
    return 0;
}
