/* schema_set — the index of a schema set: its schemas ordered by event type
 * and version, grouped by type, and a hash table over the type names so that
 * the filter's per-event lookup costs one hash. Building a set from files is
 * schema_load.c's; this file only indexes and answers lookups, and calls no
 * other schema module. */
#include <stdlib.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/schema_int.h"

static int cmp_schema(const void *a, const void *b)
{
    const struct pipe_schema *x = *(struct pipe_schema *const *)a;
    const struct pipe_schema *y = *(struct pipe_schema *const *)b;
    int c = strcmp(x->event, y->event);
    return c ? c : (x->version > y->version) - (x->version < y->version);
}

static bool type_eq(const void *item, const void *key, size_t len)
{
    const struct sch_type *t = item;
    return t->len == len && memcmp(t->name, key, len) == 0;
}

/* index_set — groups the sorted schemas by type and builds the hash table. */
static void index_set(struct pipe_schema_set *s)
{
    for (size_t i = 0; i < s->n_all; i++) {
        struct pipe_schema *x = s->all[i];
        if (s->n_types == 0 || strcmp(s->types[s->n_types - 1].name, x->event) != 0) {
            s->types = pipe_realloc(s->types, (s->n_types + 1) * sizeof *s->types);
            s->types[s->n_types++] = (struct sch_type){x->event, strlen(x->event), &s->all[i], 0};
        }
        s->types[s->n_types - 1].n++;
    }
    /* Seeded hashes: lookups are by the event type a client sent. Names are
     * distinct (grouped above), and their hashes differ, so the add cannot
     * fail short of memory. */
    pipe_hset_init(&s->table);
    for (size_t i = 0; i < s->n_types; i++)
        (void)pipe_hset_add(&s->table, pipe_hset_hash(s->types[i].name, s->types[i].len),
                            &s->types[i]);
}

struct pipe_schema_set *pipe__schema_set_new(struct pipe_schema **all, size_t n)
{
    struct pipe_schema_set *s = pipe_calloc(1, sizeof *s);
    atomic_init(&s->refs, 1);
    s->all = all;
    s->n_all = n;
    if (n)
        qsort(s->all, n, sizeof *s->all, cmp_schema);
    index_set(s);
    return s;
}

void pipe__schema_set_index_free(struct pipe_schema_set *s)
{
    pipe_free(s->all);
    pipe_free(s->types);
    pipe_hset_cleanup(&s->table);
    pipe_free(s);
}

struct pipe_schema_set *pipe_schema_set_ref(struct pipe_schema_set *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

size_t pipe_schema_set_count(const struct pipe_schema_set *s)
{
    return s ? s->n_all : 0;
}

const struct pipe_schema *pipe_schema_set_at(const struct pipe_schema_set *s, size_t i)
{
    return s && i < s->n_all ? s->all[i] : NULL;
}

size_t pipe_schema_set_types(const struct pipe_schema_set *s)
{
    return s ? s->n_types : 0;
}

const struct pipe_schema *const *pipe_schema_set_type(const struct pipe_schema_set *s, size_t i,
                                                      size_t *n)
{
    bool ok = s && i < s->n_types;
    *n = ok ? s->types[i].n : 0;
    return ok ? (const struct pipe_schema *const *)s->types[i].v : NULL;
}

static const struct sch_type *find_type(const struct pipe_schema_set *s, const char *event,
                                        size_t len)
{
    if (s == NULL || s->n_types == 0)
        return NULL;
    return pipe_hset_find(&s->table, pipe_hset_hash(event, len), event, len, type_eq);
}

int pipe_schema_lookup(const struct pipe_schema_set *s, const char *event, size_t len, int version,
                       const struct pipe_schema **out)
{
    const struct sch_type *t = find_type(s, event, len);
    if (t == NULL)
        return PIPE_ENOTFOUND;
    for (size_t i = t->n; i-- > 0;) {
        if (version == 0 || t->v[i]->version == version) {
            *out = t->v[i];
            return 0;
        }
    }
    return PIPE_EINVAL;
}

const struct pipe_schema *const *pipe_schema_versions(const struct pipe_schema_set *s,
                                                      const char *event, size_t len, size_t *n)
{
    const struct sch_type *t = find_type(s, event, len);
    *n = t ? t->n : 0;
    return t ? (const struct pipe_schema *const *)t->v : NULL;
}
