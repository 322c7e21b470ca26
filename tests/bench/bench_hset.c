/* bench_hset — what a lookup in the shared hash set costs against the
 * table schema_set.c had before it (the same linear probing, written
 * inline over an array of pointers), for the filter's per-event question
 * "is there a schema for this type": hits and misses, 4 to 4,096 names.
 * Prints ns per lookup; asserts nothing (make bench). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "libpipe/hset.h"
#include "libpipe/mem.h"

#define LOOKUPS 4000000

struct name {
    char s[32];
    size_t len;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool name_eq(const void *item, const void *key, size_t len)
{
    const struct name *n = item;
    return n->len == len && memcmp(n->s, key, len) == 0;
}

/* The old table: pointers, a power-of-two capacity at least twice the
 * count, probed until an empty slot. */
struct old_table {
    struct name **t;
    size_t cap;
};

static uint64_t old_hash(const char *s, size_t n)
{
    return XXH3_64bits_withSeed(s, n, pipe_mem_hash_seed());
}

static void old_build(struct old_table *o, struct name *v, size_t n)
{
    o->cap = 16;
    while (o->cap < n * 2)
        o->cap *= 2;
    o->t = pipe_calloc(o->cap, sizeof *o->t);
    for (size_t i = 0; i < n; i++) {
        size_t h = old_hash(v[i].s, v[i].len) & (o->cap - 1);
        while (o->t[h])
            h = (h + 1) & (o->cap - 1);
        o->t[h] = &v[i];
    }
}

static const struct name *old_find(const struct old_table *o, const char *s, size_t len)
{
    for (size_t h = old_hash(s, len) & (o->cap - 1); o->t[h]; h = (h + 1) & (o->cap - 1))
        if (o->t[h]->len == len && memcmp(o->t[h]->s, s, len) == 0)
            return o->t[h];
    return NULL;
}

static void run(size_t n)
{
    struct name *v = pipe_calloc(n, sizeof *v), *q = pipe_calloc(n, sizeof *q);
    for (size_t i = 0; i < n; i++) {
        v[i].len = (size_t)snprintf(v[i].s, sizeof v[i].s, "app.event_%zu", i);
        q[i].len = (size_t)snprintf(q[i].s, sizeof q[i].s, "app.other_%zu", i);
    }
    struct old_table o;
    old_build(&o, v, n);
    struct pipe_hset h;
    pipe_hset_init(&h);
    for (size_t i = 0; i < n; i++)
        (void)pipe_hset_add(&h, pipe_hset_hash(v[i].s, v[i].len), &v[i]);
    for (int miss = 0; miss < 2; miss++) {
        const struct name *keys = miss ? q : v;
        size_t found_old = 0, found_new = 0;
        double t0 = now_s();
        for (size_t i = 0; i < LOOKUPS; i++)
            found_old += old_find(&o, keys[i % n].s, keys[i % n].len) != NULL;
        double t1 = now_s();
        for (size_t i = 0; i < LOOKUPS; i++) {
            const struct name *k = &keys[i % n];
            found_new +=
                pipe_hset_find(&h, pipe_hset_hash(k->s, k->len), k->s, k->len, name_eq) != NULL;
        }
        double t2 = now_s();
        printf("  %5zu names, %-6s old table %6.1f ns/lookup   hset %6.1f ns/lookup  (%zu/%zu "
               "found)\n",
               n, miss ? "misses" : "hits", (t1 - t0) * 1e9 / LOOKUPS, (t2 - t1) * 1e9 / LOOKUPS,
               found_new, found_old);
    }
    pipe_hset_cleanup(&h);
    pipe_free(o.t);
    pipe_free(v);
    pipe_free(q);
}

int main(void)
{
    printf("bench_hset: %d lookups per figure, per core\n", LOOKUPS);
    static const size_t sizes[] = {4, 64, 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        run(sizes[i]);
    return 0;
}
