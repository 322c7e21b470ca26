/* dispatcher_scan — what the dispatcher reads from the store each pass: the
 * pending job descriptors (cached by id, since a descriptor never changes
 * while it exists), the hour partitions to look at, paginated listings, and
 * the cached done sets of the lookback partitions. */
#include <stdlib.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/manifest.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/store.h"
#include "stages/dispatcher/dispatcher.h"

#define JOBS_PREFIX    "jobs/combine/"
#define DESCRIPTOR_MAX (64u << 20) /* a 1000-input descriptor is ~200 KiB */
#define LIST_PAGE      1000

void disp_objs_cleanup(struct disp_objs *o)
{
    for (size_t i = 0; i < o->n; i++)
        pipe_free(o->v[i].key);
    pipe_free(o->v);
    memset(o, 0, sizeof *o);
}

static int disp_collect(void *arg, const struct pipe_store_obj *l)
{
    struct disp_objs *out = arg;
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 64;
        out->v = pipe_realloc(out->v, out->cap * sizeof *out->v);
    }
    struct disp_obj *o = &out->v[out->n++];
    o->key = pipe_strdup(l->key);
    o->size = l->size;
    o->mtime_ms = l->mtime_ms;
    memcpy(o->etag, l->etag, sizeof o->etag);
    return 0;
}

int disp_list(struct pipe_store *s, const char *prefix, struct disp_objs *out)
{
    return pipe_store_walk(s, prefix, NULL, LIST_PAGE, disp_collect, out);
}

/* ---- the descriptor cache ---------------------------------------------- */

static int job_cmp(const void *a, const void *b)
{
    return strcmp(((const struct disp_job *)a)->id, ((const struct disp_job *)b)->id);
}

static int str_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void job_free(struct disp_job *j)
{
    for (size_t i = 0; i < j->n_keys; i++)
        pipe_free(j->keys[i]);
    pipe_free(j->keys);
    pipe_free(j->id);
    memset(j, 0, sizeof *j);
}

void disp_cache_free(struct dispatcher *d)
{
    for (size_t i = 0; i < d->n_cache; i++)
        job_free(&d->cache[i]);
    pipe_free(d->cache);
    d->cache = NULL;
    d->n_cache = 0;
}

void disp_cache_add(struct dispatcher *d, const char *id, const struct disp_obj *const *objs,
                    size_t n)
{
    d->cache = pipe_realloc(d->cache, (d->n_cache + 1) * sizeof *d->cache);
    struct disp_job *j = &d->cache[d->n_cache++];
    j->id = pipe_strdup(id);
    j->keys = pipe_malloc((n ? n : 1) * sizeof *j->keys);
    j->n_keys = n;
    for (size_t i = 0; i < n; i++)
        j->keys[i] = pipe_strdup(objs[i]->key);
}

/* Reads one descriptor into j. PIPE_ENOTFOUND when it was deleted since the
 * listing (its done markers are then visible: the combiner writes them
 * first). A descriptor that does not parse becomes an entry without inputs:
 * no combiner can run it either, so its inputs are not really pending. */
static int read_job(struct dispatcher *d, const char *key, const char *id, struct disp_job *j)
{
    struct pipe_store *s = pipe_stage_store(d->st);
    struct pipe_buf b;
    struct pipe_manifest_job m;
    pipe_buf_init(&b, DESCRIPTOR_MAX);
    pipe_manifest_job_init(&m);
    int rc = pipe_store_get(s, key, &b);
    if (rc < 0)
        goto out;
    memset(j, 0, sizeof *j);
    j->id = pipe_strdup(id);
    if (pipe_manifest_job_from_json(b.data, b.len, &m) < 0 || strcmp(m.job_id, id) != 0) {
        pipe_counter_inc(d->m.bad_descriptors);
        pipe_log_error("job descriptor does not parse; its inputs count as not pending", "key=%s",
                       key);
        goto out;
    }
    j->keys = pipe_malloc((m.n_inputs ? m.n_inputs : 1) * sizeof *j->keys);
    j->n_keys = m.n_inputs;
    for (size_t i = 0; i < m.n_inputs; i++) {
        j->keys[i] = m.inputs[i].key;
        m.inputs[i].key = NULL; /* taken */
    }
out:
    pipe_manifest_job_cleanup(&m);
    pipe_buf_cleanup(&b);
    return rc;
}

/* Builds the new cache from the listing: entries seen before are moved
 * over, new ones read. */
static int refresh_cache(struct dispatcher *d, const struct disp_objs *listed)
{
    if (d->n_cache)
        qsort(d->cache, d->n_cache, sizeof *d->cache, job_cmp);
    struct disp_job *fresh = pipe_calloc(listed->n ? listed->n : 1, sizeof *fresh);
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < listed->n && rc == 0; i++) {
        char id[PIPE_KEYS_NAME_MAX + 1];
        if (!pipe_keys_job_of(listed->v[i].key, JOBS_PREFIX, id)) {
            pipe_log_warn("ignoring a key under jobs/combine/ that is not a descriptor", "key=%s",
                          listed->v[i].key);
            continue;
        }
        struct disp_job probe = {.id = id};
        struct disp_job *old =
            d->n_cache ? bsearch(&probe, d->cache, d->n_cache, sizeof *d->cache, job_cmp) : NULL;
        if (old) {
            /* Listed keys are unique, so each entry moves at most once; the
             * old id stays for bsearch. */
            fresh[n].id = pipe_strdup(old->id);
            fresh[n].keys = old->keys;
            fresh[n++].n_keys = old->n_keys;
            old->keys = NULL;
            old->n_keys = 0;
            continue;
        }
        rc = read_job(d, listed->v[i].key, id, &fresh[n]);
        if (rc == 0)
            n++;
        else if (rc == PIPE_ENOTFOUND)
            rc = 0;
    }
    disp_cache_free(d);
    d->cache = fresh;
    d->n_cache = n;
    return rc;
}

int disp_load_pending(struct dispatcher *d, const char ***keys, size_t *n)
{
    struct disp_objs listed = {0};
    int rc = disp_list(pipe_stage_store(d->st), JOBS_PREFIX, &listed);
    if (rc == 0)
        rc = refresh_cache(d, &listed);
    disp_objs_cleanup(&listed);
    if (rc < 0)
        return rc;
    size_t total = 0;
    for (size_t i = 0; i < d->n_cache; i++)
        total += d->cache[i].n_keys;
    const char **v = pipe_malloc((total ? total : 1) * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < d->n_cache; i++)
        for (size_t j = 0; j < d->cache[i].n_keys; j++)
            v[k++] = d->cache[i].keys[j];
    qsort(v, total, sizeof *v, str_ptr_cmp);
    pipe_gauge_set(d->m.pending_jobs, (double)d->n_cache);
    *keys = v;
    *n = total;
    return 0;
}

/* ---- partitions -------------------------------------------------------- */

static int hour_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void hours_push(int64_t **v, size_t *n, size_t *cap, int64_t h)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = pipe_realloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = h;
}

/* Appends the hour of every partition that has an object under filtered/.
 * The store lists keys, not directories, so this asks for one key at a
 * time and then skips past its partition: "~" sorts after every character
 * a valid object name can hold, so one list call per partition. */
static int scan_filtered(struct pipe_store *s, int64_t **v, size_t *n, size_t *cap)
{
    char after[PIPE_STORE_KEY_MAX + 1] = "";
    int rc = 0;
    for (;;) {
        struct pipe_store_list l = {0};
        rc = pipe_store_list(s, "filtered/", after[0] ? after : NULL, 1, &l);
        if (rc < 0 || l.count == 0) {
            pipe_store_list_cleanup(&l);
            break;
        }
        const char *key = l.items[0].key;
        struct pipe_key_parts parts;
        if (pipe_keys_parse(key, &parts) == 0 && strcmp(parts.prefix, "filtered") == 0) {
            hours_push(v, n, cap, parts.hour_ms);
            /* "filtered/dt=YYYY-MM-DD/hr=HH/" is 29 bytes. */
            snprintf(after, sizeof after, "%.29s~", key);
        } else {
            snprintf(after, sizeof after, "%s", key); /* a stray key: step over it */
        }
        pipe_store_list_cleanup(&l);
    }
    return rc;
}

int64_t disp_lookback_from(const struct dispatcher *d, int64_t now_ms)
{
    int64_t from = now_ms - d->cfg->lookback_ms;
    if (from < 0)
        from = 0;
    return from - from % PIPE_HOUR_MS;
}

int disp_partitions(struct dispatcher *d, int64_t now_ms, enum disp_scan scan, int64_t **hours,
                    size_t *n)
{
    int64_t *v = NULL;
    size_t count = 0, cap = 0;
    int64_t from = disp_lookback_from(d, now_ms), cur = now_ms - now_ms % PIPE_HOUR_MS;
    if (scan == DISP_SCAN_HOT) {
        if (cur - PIPE_HOUR_MS >= from && now_ms - cur < DISP_HOT_PREV_MS)
            hours_push(&v, &count, &cap, cur - PIPE_HOUR_MS);
        hours_push(&v, &count, &cap, cur);
    } else {
        for (int64_t h = from; h <= now_ms; h += PIPE_HOUR_MS)
            hours_push(&v, &count, &cap, h);
    }
    int rc = scan == DISP_SCAN_FULL ? scan_filtered(pipe_stage_store(d->st), &v, &count, &cap) : 0;
    if (rc < 0) {
        pipe_free(v);
        return rc;
    }
    qsort(v, count, sizeof *v, hour_cmp);
    size_t u = 0;
    for (size_t i = 0; i < count; i++)
        if (u == 0 || v[u - 1] != v[i])
            v[u++] = v[i];
    *hours = v;
    *n = u;
    return 0;
}

/* ---- the done sets of the lookback partitions --------------------------- */

struct disp_objs *disp_done_find(struct dispatcher *d, int64_t hour)
{
    for (size_t i = 0; i < d->n_done; i++)
        if (d->done[i].hour == hour)
            return &d->done[i].done;
    return NULL;
}

void disp_done_keep(struct dispatcher *d, int64_t hour, struct disp_objs *done)
{
    struct disp_objs *old = disp_done_find(d, hour);
    if (old == NULL) {
        d->done = pipe_realloc(d->done, (d->n_done + 1) * sizeof *d->done);
        d->done[d->n_done].hour = hour;
        old = &d->done[d->n_done++].done;
    } else {
        disp_objs_cleanup(old);
    }
    *old = *done;
    memset(done, 0, sizeof *done);
}

void disp_done_prune(struct dispatcher *d, int64_t from)
{
    size_t u = 0;
    for (size_t i = 0; i < d->n_done; i++) {
        if (d->done[i].hour >= from)
            d->done[u++] = d->done[i];
        else
            disp_objs_cleanup(&d->done[i].done);
    }
    d->n_done = u;
    if (u == 0) {
        pipe_free(d->done);
        d->done = NULL;
    }
}
