/* manifest — JSON encoding and decoding of job descriptors and the combiner's
 * and splitter's manifests, with jansson. Writers emit keys in a fixed order;
 * readers check every field they use and build into a scratch struct that is
 * handed to the caller only when everything parsed. */
#include "libpipe/manifest.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/mem.h"

bool pipe_ledger_balanced(const struct pipe_ledger *l)
{
    uint64_t sum = l->out;
    if (l->rejected > UINT64_MAX - sum)
        return false;
    sum += l->rejected;
    if (l->duplicates > UINT64_MAX - sum)
        return false;
    return l->in == sum + l->duplicates;
}

/* ---- init / cleanup / add ---------------------------------------------- */

static void objects_free(struct pipe_manifest_object *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pipe_free(v[i].key);
        pipe_free(v[i].etag);
    }
    pipe_free(v);
}

void pipe_manifest_job_init(struct pipe_manifest_job *m)
{
    memset(m, 0, sizeof *m);
}

/* What a job descriptor and a combined manifest both own. */
static void job_parts_free(char *job_id, char *output_key, struct pipe_manifest_object *inputs,
                           size_t n_inputs)
{
    pipe_free(job_id);
    pipe_free(output_key);
    objects_free(inputs, n_inputs);
}

void pipe_manifest_job_cleanup(struct pipe_manifest_job *m)
{
    job_parts_free(m->job_id, m->output_key, m->inputs, m->n_inputs);
    memset(m, 0, sizeof *m);
}

void pipe_manifest_combined_init(struct pipe_manifest_combined *m)
{
    memset(m, 0, sizeof *m);
}

void pipe_manifest_combined_cleanup(struct pipe_manifest_combined *m)
{
    job_parts_free(m->job_id, m->output_key, m->inputs, m->n_inputs);
    memset(m, 0, sizeof *m);
}

void pipe_manifest_split_init(struct pipe_manifest_split *m)
{
    memset(m, 0, sizeof *m);
}

void pipe_manifest_split_cleanup(struct pipe_manifest_split *m)
{
    pipe_free(m->job_id);
    pipe_free(m->input_key);
    pipe_free(m->url_prefix);
    for (size_t i = 0; i < m->n_outputs; i++) {
        pipe_free(m->outputs[i].key);
        pipe_free(m->outputs[i].event);
    }
    pipe_free(m->outputs);
    memset(m, 0, sizeof *m);
}

static struct pipe_manifest_object *objects_push(struct pipe_manifest_object **v, size_t *n)
{
    *v = pipe_realloc(*v, (*n + 1) * sizeof **v);
    struct pipe_manifest_object *o = &(*v)[(*n)++];
    memset(o, 0, sizeof *o);
    return o;
}

static struct pipe_manifest_object *objects_add(struct pipe_manifest_object **v, size_t *n,
                                                const char *key, uint64_t size, const char *etag)
{
    struct pipe_manifest_object *o = objects_push(v, n);
    o->key = pipe_strdup(key);
    o->size = size;
    o->etag = pipe_strdup(etag ? etag : "");
    return o;
}

void pipe_manifest_job_add_input(struct pipe_manifest_job *m, const char *key, uint64_t size,
                                 const char *etag)
{
    objects_add(&m->inputs, &m->n_inputs, key, size, etag);
}

void pipe_manifest_combined_add_input(struct pipe_manifest_combined *m, const char *key,
                                      uint64_t size, const char *etag, uint64_t events)
{
    objects_add(&m->inputs, &m->n_inputs, key, size, etag)->events = events;
}

static struct pipe_manifest_split_output *outputs_push(struct pipe_manifest_split *m)
{
    m->outputs = pipe_realloc(m->outputs, (m->n_outputs + 1) * sizeof *m->outputs);
    struct pipe_manifest_split_output *o = &m->outputs[m->n_outputs++];
    memset(o, 0, sizeof *o);
    return o;
}

void pipe_manifest_split_add_output(struct pipe_manifest_split *m, const char *key,
                                    const char *event, const char *dt, const char *hr,
                                    uint64_t rows, uint64_t bytes)
{
    struct pipe_manifest_split_output *o = outputs_push(m);
    o->key = pipe_strdup(key);
    o->event = pipe_strdup(event);
    snprintf(o->dt, sizeof o->dt, "%s", dt);
    snprintf(o->hr, sizeof o->hr, "%s", hr);
    o->rows = rows;
    o->bytes = bytes;
}

/* ---- writing ----------------------------------------------------------- */

/* Setters record the first failure in *rc so that a document is built in a
 * straight line and checked once. jansson keeps insertion order, which is
 * what makes the output stable. */
static void put(int *rc, json_t *o, const char *k, json_t *v)
{
    if (!v) {
        if (*rc == 0)
            *rc = PIPE_EINVAL;
        return;
    }
    json_object_set_new(o, k, v);
}

static void put_u64(int *rc, json_t *o, const char *k, uint64_t v)
{
    put(rc, o, k, v > (uint64_t)INT64_MAX ? NULL : json_integer((json_int_t)v));
}

/* json_string returns NULL for NULL or invalid UTF-8: both are EINVAL. */
static void put_str(int *rc, json_t *o, const char *k, const char *v)
{
    put(rc, o, k, v ? json_string(v) : NULL);
}

/* A job id becomes part of keys, so a writer refuses one a reader would. */
static void put_job_id(int *rc, json_t *o, const char *id)
{
    put(rc, o, "job_id", pipe_keys_name_valid(id) ? json_string(id) : NULL);
}

static json_t *ledger_json(int *rc, const struct pipe_ledger *l)
{
    json_t *o = json_object();
    put_u64(rc, o, "in", l->in);
    put_u64(rc, o, "out", l->out);
    put_u64(rc, o, "rejected", l->rejected);
    put_u64(rc, o, "duplicates", l->duplicates);
    return o;
}

static json_t *objects_json(int *rc, const struct pipe_manifest_object *v, size_t n,
                            bool with_events)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        put_str(rc, o, "key", v[i].key);
        put_u64(rc, o, "size", v[i].size);
        put_str(rc, o, "etag", v[i].etag);
        if (with_events)
            put_u64(rc, o, "events", v[i].events);
        json_array_append_new(a, o);
    }
    return a;
}

/* A new document with the fields every manifest starts with. */
static json_t *header_json(int *rc, const char *job_id, unsigned generation)
{
    json_t *root = json_object();
    put_u64(rc, root, "version", PIPE_MANIFEST_VERSION);
    put_job_id(rc, root, job_id);
    put_u64(rc, root, "generation", generation);
    return root;
}

/* Serialises root (taking it) into out, compact, with a trailing newline. */
static int dump(int rc, json_t *root, struct pipe_buf *out)
{
    char *s = NULL;
    if (rc < 0)
        goto out;
    s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s) {
        rc = PIPE_EINVAL;
        goto out;
    }
    size_t n = strlen(s);
    if (n >= out->max) {
        rc = PIPE_ETOOBIG;
        goto out;
    }
    pipe_buf_reset(out);
    rc = pipe_buf_append(out, s, n);
    if (rc == 0)
        rc = pipe_buf_append_char(out, '\n');
out:
    free(s);
    json_decref(root);
    return rc;
}

int pipe_manifest_job_to_json(const struct pipe_manifest_job *m, struct pipe_buf *out)
{
    int rc = 0;
    json_t *root = header_json(&rc, m->job_id, m->generation);
    put_u64(&rc, root, "created_ms", m->created_ms < 0 ? UINT64_MAX : (uint64_t)m->created_ms);
    put_str(&rc, root, "output_key", m->output_key);
    put(&rc, root, "inputs", objects_json(&rc, m->inputs, m->n_inputs, false));
    return dump(rc, root, out);
}

int pipe_manifest_combined_to_json(const struct pipe_manifest_combined *m, struct pipe_buf *out)
{
    int rc = 0;
    json_t *root = header_json(&rc, m->job_id, m->generation);
    put_str(&rc, root, "output_key", m->output_key);
    put_u64(&rc, root, "events", m->events);
    put_u64(&rc, root, "bytes", m->bytes);
    put_u64(&rc, root, "uncompressed_bytes", m->uncompressed_bytes);
    /* XXH3-64 of the combined object as stored (not of its decoded
     * content, which the combiner no longer decodes): docs/compaction.md. */
    put_str(&rc, root, "checksum", m->checksum);
    put(&rc, root, "inputs", objects_json(&rc, m->inputs, m->n_inputs, true));
    put(&rc, root, "ledger", ledger_json(&rc, &m->ledger));
    return dump(rc, root, out);
}

/* Redshift COPY manifest entries, one per output. */
static json_t *entries_json(int *rc, const struct pipe_manifest_split *m)
{
    json_t *a = json_array();
    for (size_t i = 0; i < m->n_outputs; i++) {
        const struct pipe_manifest_split_output *o = &m->outputs[i];
        char *url = NULL;
        if (m->url_prefix && o->key)
            url = pipe_asprintf("%s%s", m->url_prefix, o->key);
        json_t *e = json_object();
        put_str(rc, e, "url", url);
        put(rc, e, "mandatory", json_true());
        json_t *meta = json_object();
        put_u64(rc, meta, "content_length", o->bytes);
        put(rc, e, "meta", meta);
        json_array_append_new(a, e);
        pipe_free(url);
    }
    return a;
}

int pipe_manifest_split_to_json(const struct pipe_manifest_split *m, struct pipe_buf *out)
{
    int rc = 0;
    json_t *root = header_json(&rc, m->job_id, m->generation);
    put_str(&rc, root, "input_key", m->input_key);
    put_u64(&rc, root, "duplicates_dropped", m->duplicates_dropped);
    json_t *outs = json_array();
    for (size_t i = 0; i < m->n_outputs; i++) {
        const struct pipe_manifest_split_output *o = &m->outputs[i];
        json_t *j = json_object();
        put_str(&rc, j, "key", o->key);
        put_str(&rc, j, "event", o->event);
        put_str(&rc, j, "dt", o->dt);
        put_str(&rc, j, "hr", o->hr);
        put_u64(&rc, j, "rows", o->rows);
        put_u64(&rc, j, "bytes", o->bytes);
        json_array_append_new(outs, j);
    }
    put(&rc, root, "outputs", outs);
    put(&rc, root, "ledger", ledger_json(&rc, &m->ledger));
    put_str(&rc, root, "url_prefix", m->url_prefix);
    put(&rc, root, "entries", entries_json(&rc, m));
    return dump(rc, root, out);
}

/* ---- reading ----------------------------------------------------------- */

/* Getters, like the setters, record the first failure in *rc and return a
 * harmless value, so a document is read in a straight line. */
static json_t *get(int *rc, const json_t *o, const char *k, bool (*is)(const json_t *))
{
    json_t *v = json_is_object(o) ? json_object_get(o, k) : NULL;
    if (!v || !is(v)) {
        *rc = PIPE_EPARSE;
        return NULL;
    }
    return v;
}

static bool is_integer(const json_t *v)
{
    return json_is_integer(v);
}
static bool is_string(const json_t *v)
{
    return json_is_string(v);
}
static bool is_array(const json_t *v)
{
    return json_is_array(v);
}
static bool is_object(const json_t *v)
{
    return json_is_object(v);
}

static uint64_t get_u64(int *rc, const json_t *o, const char *k)
{
    json_t *v = get(rc, o, k, is_integer);
    if (!v)
        return 0;
    if (json_integer_value(v) < 0) {
        *rc = PIPE_EPARSE;
        return 0;
    }
    return (uint64_t)json_integer_value(v);
}

/* A copy of a string field of at most max bytes without NULs, or NULL. */
static char *get_str(int *rc, const json_t *o, const char *k, size_t max)
{
    json_t *v = get(rc, o, k, is_string);
    if (!v)
        return NULL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > max || strlen(s) != n) {
        *rc = PIPE_EPARSE;
        return NULL;
    }
    return pipe_strndup(s, n);
}

/* Copies a string field into a fixed array of exactly want bytes + NUL. */
static void get_fixed(int *rc, const json_t *o, const char *k, char *dst, size_t want)
{
    json_t *v = get(rc, o, k, is_string);
    if (v && json_string_length(v) == want && strlen(json_string_value(v)) == want)
        memcpy(dst, json_string_value(v), want + 1);
    else
        *rc = PIPE_EPARSE;
}

static void get_ledger(int *rc, const json_t *o, struct pipe_ledger *l)
{
    json_t *j = get(rc, o, "ledger", is_object);
    l->in = get_u64(rc, j, "in");
    l->out = get_u64(rc, j, "out");
    l->rejected = get_u64(rc, j, "rejected");
    l->duplicates = get_u64(rc, j, "duplicates");
}

/* The fields every manifest starts with (header_json): returns a copy of
 * the job id and sets *generation. */
static char *get_header(int *rc, const json_t *o, unsigned *generation)
{
    char *id = get_str(rc, o, "job_id", PIPE_KEYS_NAME_MAX);
    if (id && !pipe_keys_name_valid(id))
        *rc = PIPE_EPARSE;
    uint64_t g = get_u64(rc, o, "generation");
    if (g > UINT_MAX)
        *rc = PIPE_EPARSE;
    *generation = (unsigned)g;
    return id;
}

static void get_objects(int *rc, const json_t *o, bool with_events, struct pipe_manifest_object **v,
                        size_t *n)
{
    json_t *a = get(rc, o, "inputs", is_array);
    size_t i;
    json_t *e;
    json_array_foreach (a, i, e) {
        if (*rc < 0)
            return;
        struct pipe_manifest_object *obj = objects_push(v, n);
        obj->key = get_str(rc, e, "key", PIPE_MANIFEST_KEY_MAX);
        obj->size = get_u64(rc, e, "size");
        obj->etag = get_str(rc, e, "etag", PIPE_MANIFEST_KEY_MAX);
        if (with_events)
            obj->events = get_u64(rc, e, "events");
        if (obj->key && !obj->key[0])
            *rc = PIPE_EPARSE;
    }
}

/* Parses the document and checks its version; NULL (rc set) on failure. */
static json_t *load(int *rc, const char *json, size_t n)
{
    json_error_t jerr;
    json_t *root = json ? json_loadb(json, n, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!root || !json_is_object(root) || get_u64(rc, root, "version") != PIPE_MANIFEST_VERSION) {
        *rc = PIPE_EPARSE;
        json_decref(root);
        return NULL;
    }
    return root;
}

/* read_fn — reads the fields of root into the scratch struct t, recording
 * the first failure in *rc, and cleans t up when anything failed. */
typedef void (*read_fn)(int *rc, const json_t *root, void *t);

/* Parses n bytes of json into the scratch t (initialised, size bytes) with
 * read, and copies t to m only when everything parsed. */
static int read_doc(const char *json, size_t n, read_fn read, void *t, void *m, size_t size)
{
    int rc = 0;
    json_t *root = load(&rc, json, n);
    if (root)
        read(&rc, root, t);
    json_decref(root);
    if (rc == 0)
        memcpy(m, t, size);
    return rc;
}

static void read_job(int *rc, const json_t *root, void *tp)
{
    struct pipe_manifest_job *t = tp;
    t->job_id = get_header(rc, root, &t->generation);
    uint64_t created = get_u64(rc, root, "created_ms");
    t->created_ms = created > (uint64_t)INT64_MAX ? 0 : (int64_t)created;
    t->output_key = get_str(rc, root, "output_key", PIPE_MANIFEST_KEY_MAX);
    get_objects(rc, root, false, &t->inputs, &t->n_inputs);
    if (*rc < 0)
        pipe_manifest_job_cleanup(t);
}

int pipe_manifest_job_from_json(const char *json, size_t n, struct pipe_manifest_job *m)
{
    struct pipe_manifest_job t;
    pipe_manifest_job_init(&t);
    return read_doc(json, n, read_job, &t, m, sizeof t);
}

static bool is_hex16(const char *s)
{
    for (size_t i = 0; i < 16; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[16] == '\0';
}

static void read_combined(int *rc, const json_t *root, void *tp)
{
    struct pipe_manifest_combined *t = tp;
    t->job_id = get_header(rc, root, &t->generation);
    t->output_key = get_str(rc, root, "output_key", PIPE_MANIFEST_KEY_MAX);
    t->events = get_u64(rc, root, "events");
    t->bytes = get_u64(rc, root, "bytes");
    t->uncompressed_bytes = get_u64(rc, root, "uncompressed_bytes");
    get_fixed(rc, root, "checksum", t->checksum, 16);
    if (*rc == 0 && !is_hex16(t->checksum))
        *rc = PIPE_EPARSE;
    get_objects(rc, root, true, &t->inputs, &t->n_inputs);
    get_ledger(rc, root, &t->ledger);
    if (*rc < 0)
        pipe_manifest_combined_cleanup(t);
}

int pipe_manifest_combined_from_json(const char *json, size_t n, struct pipe_manifest_combined *m)
{
    struct pipe_manifest_combined t;
    pipe_manifest_combined_init(&t);
    return read_doc(json, n, read_combined, &t, m, sizeof t);
}

static bool digits_only(const char *s, size_t n, size_t dash_at)
{
    for (size_t i = 0; i < n; i++) {
        bool ok = (i == dash_at || i == dash_at + 3) ? s[i] == '-' : s[i] >= '0' && s[i] <= '9';
        if (!ok)
            return false;
    }
    return true;
}

static void get_outputs(int *rc, const json_t *root, struct pipe_manifest_split *t)
{
    json_t *a = get(rc, root, "outputs", is_array);
    size_t i;
    json_t *e;
    json_array_foreach (a, i, e) {
        if (*rc < 0)
            return;
        struct pipe_manifest_split_output *o = outputs_push(t);
        o->key = get_str(rc, e, "key", PIPE_MANIFEST_KEY_MAX);
        o->event = get_str(rc, e, "event", PIPE_KEYS_EVENT_MAX);
        get_fixed(rc, e, "dt", o->dt, 10);
        get_fixed(rc, e, "hr", o->hr, 2);
        o->rows = get_u64(rc, e, "rows");
        o->bytes = get_u64(rc, e, "bytes");
        if (*rc == 0 && (!o->key[0] || !pipe_keys_event_valid(o->event, strlen(o->event)) ||
                         !digits_only(o->dt, 10, 4) || !digits_only(o->hr, 2, 99)))
            *rc = PIPE_EPARSE;
    }
}

/* The COPY entries must say exactly what outputs say: a loader reads one,
 * reconcile the other. */
static void check_entries(int *rc, const json_t *root, const struct pipe_manifest_split *t)
{
    json_t *a = get(rc, root, "entries", is_array);
    if (*rc < 0 || json_array_size(a) != t->n_outputs) {
        *rc = PIPE_EPARSE;
        return;
    }
    size_t plen = strlen(t->url_prefix);
    for (size_t i = 0; i < t->n_outputs && *rc == 0; i++) {
        json_t *e = json_array_get(a, i);
        json_t *url = get(rc, e, "url", is_string);
        json_t *mand = json_is_object(e) ? json_object_get(e, "mandatory") : NULL;
        json_t *meta = get(rc, e, "meta", is_object);
        uint64_t clen = get_u64(rc, meta, "content_length");
        if (*rc < 0)
            return;
        const char *u = json_string_value(url);
        if (!json_is_true(mand) || clen != t->outputs[i].bytes ||
            json_string_length(url) != plen + strlen(t->outputs[i].key) ||
            strncmp(u, t->url_prefix, plen) != 0 || strcmp(u + plen, t->outputs[i].key) != 0)
            *rc = PIPE_EPARSE;
    }
}

static void read_split(int *rc, const json_t *root, void *tp)
{
    struct pipe_manifest_split *t = tp;
    t->job_id = get_header(rc, root, &t->generation);
    t->input_key = get_str(rc, root, "input_key", PIPE_MANIFEST_KEY_MAX);
    t->duplicates_dropped = get_u64(rc, root, "duplicates_dropped");
    t->url_prefix = get_str(rc, root, "url_prefix", PIPE_MANIFEST_KEY_MAX);
    get_outputs(rc, root, t);
    get_ledger(rc, root, &t->ledger);
    if (*rc == 0)
        check_entries(rc, root, t);
    if (*rc < 0)
        pipe_manifest_split_cleanup(t);
}

int pipe_manifest_split_from_json(const char *json, size_t n, struct pipe_manifest_split *m)
{
    struct pipe_manifest_split t;
    pipe_manifest_split_init(&t);
    return read_doc(json, n, read_split, &t, m, sizeof t);
}
