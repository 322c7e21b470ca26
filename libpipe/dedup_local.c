/* dedup_local — the `local` de-duplication backend: a cache, in this
 * process's memory, of the index objects in the store (state/dedup/...),
 * which stay the only durable record. Before every claim the front end
 * (dedup.c) lists the window's partitions and hands this view the index
 * objects it has not seen in their current version; it looks keys up in a
 * table and remembers what a claim made durable. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "libpipe/dedup_int.h"
#include "libpipe/hset.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"

#define CHUNK_CLAIMS 4096 /* claims per chunk of a table's storage */

/* One remembered key, 32 bytes. In the claims table the key is a dedup key
 * and val the XXH3-64 of the claiming job id; in the table of loaded index
 * objects the key is XXH3-128 of the object's store key and val the XXH3-64
 * of its etag. hour1 is the hour of the index object's partition plus one
 * (0 until the caller of table_insert fills it). */
struct claim {
    uint64_t hi, lo;
    uint64_t val;
    uint32_t hour1;
};

/* Claims in chunks that never move (the set points into them), found
 * through the shared hash set (libpipe/hset: seeded, bounded probes). */
struct table {
    struct pipe_hset index;
    struct claim **chunks;
    size_t n, n_chunks; /* claims stored; chunks allocated */
};

struct local {
    struct table claims; /* dedup key -> job, hour */
    struct table loaded; /* index objects already read -> etag, hour */
    int64_t purged_lo;   /* hours below this were dropped by the last purge */
};

/* ---- the table ----------------------------------------------------------- */

static bool claim_eq(const void *item, const void *key, size_t len)
{
    (void)len;
    const struct claim *c = item;
    const uint64_t *k = key;
    return c->hi == k[0] && c->lo == k[1];
}

static struct claim *table_find(const struct table *t, uint64_t hi, uint64_t lo)
{
    const uint64_t k[2] = {hi, lo};
    return pipe_hset_find(&t->index, pipe_hset_hash(k, sizeof k), k, sizeof k, claim_eq);
}

/* The claim of key, new (hour1 == 0) when the key was not there: the
 * caller fills it. NULL only when the set cannot grow (PIPE_HSET_MAX_CAP):
 * the key is then not remembered, and a claim reports it new. */
static struct claim *table_insert(struct table *t, uint64_t hi, uint64_t lo)
{
    const uint64_t k[2] = {hi, lo};
    uint64_t h = pipe_hset_hash(k, sizeof k);
    struct claim *c = pipe_hset_find(&t->index, h, k, sizeof k, claim_eq);
    if (c)
        return c;
    if (t->n == t->n_chunks * CHUNK_CLAIMS) {
        t->chunks = pipe_realloc(t->chunks, (t->n_chunks + 1) * sizeof *t->chunks);
        t->chunks[t->n_chunks++] = pipe_malloc(CHUNK_CLAIMS * sizeof(struct claim));
    }
    c = &t->chunks[t->n / CHUNK_CLAIMS][t->n % CHUNK_CLAIMS];
    *c = (struct claim){.hi = hi, .lo = lo};
    if (pipe_hset_add(&t->index, h, c) < 0) {
        pipe_log_error("dedup table full; a key is not remembered", "keys=%zu", t->n);
        return NULL;
    }
    t->n++;
    return c;
}

static void table_cleanup(struct table *t)
{
    for (size_t i = 0; i < t->n_chunks; i++)
        pipe_free(t->chunks[i]);
    pipe_free(t->chunks);
    pipe_hset_cleanup(&t->index);
    memset(t, 0, sizeof *t);
}

/* Drops every claim whose hour is below lo_hour, except those of keep_hour,
 * by copying the rest into a fresh table: this runs about once an hour.
 * Returns how many went. */
static size_t table_purge(struct table *t, int64_t lo_hour, int64_t keep_hour)
{
    struct table fresh = {0};
    pipe_hset_init(&fresh.index);
    for (size_t i = 0; i < t->n; i++) {
        const struct claim *c = &t->chunks[i / CHUNK_CLAIMS][i % CHUNK_CLAIMS];
        int64_t h = (int64_t)c->hour1 - 1;
        struct claim *to;
        if (c->hour1 != 0 && (h >= lo_hour || h == keep_hour) &&
            (to = table_insert(&fresh, c->hi, c->lo)) != NULL)
            *to = *c;
    }
    size_t dropped = t->n - fresh.n;
    table_cleanup(t);
    *t = fresh;
    return dropped;
}

static size_t table_bytes(const struct table *t)
{
    return t->index.cap * sizeof(struct pipe_hset_slot) +
           t->n_chunks * CHUNK_CLAIMS * sizeof(struct claim);
}

/* ---- open / close ----------------------------------------------------------- */

static int local_open(struct pipe_dedup *d, const char *url)
{
    (void)url; /* `local` and `local:///dir` alike: the state is the store's */
    struct local *L = pipe_calloc(1, sizeof *L);
    pipe_hset_init(&L->claims.index);
    pipe_hset_init(&L->loaded.index);
    L->purged_lo = -1;
    d->impl = L;
    return 0;
}

static void local_close(struct pipe_dedup *d)
{
    struct local *L = d->impl;
    if (!L)
        return;
    table_cleanup(&L->claims);
    table_cleanup(&L->loaded);
    pipe_free(L);
    d->impl = NULL;
}

/* ---- the view ------------------------------------------------------------- */

static uint64_t hash64(const char *s)
{
    return XXH3_64bits(s, strlen(s));
}

/* A claim counts if its partition is inside the window, or is the partition
 * of the claim at hand (a replay of an old hour is checked against it too). */
static bool relevant(const struct claim *s, const struct pipe__dedup_claim *c)
{
    int64_t h = (int64_t)s->hour1 - 1;
    return h >= c->lo_hour || h == c->claim_hour;
}

/* Records that job_h claimed key in the partition hour1 - 1. With force the
 * job takes the key (a claim just made); otherwise a key keeps the claim of
 * the later partition, which stays in the window longer. */
static void remember_key(struct local *L, const struct pipe_dedup_key *key, uint64_t job_h,
                         uint32_t hour1, bool force)
{
    struct claim *s = table_insert(&L->claims, key->hi, key->lo);
    if (s && (force || s->hour1 < hour1)) {
        s->val = job_h;
        s->hour1 = hour1;
    }
}

/* The keys of one index object: job_h's, in the partition of hour. */
static void remember_keys(struct local *L, const struct pipe_dedup_key *keys, size_t n,
                          uint64_t job_h, int64_t hour)
{
    for (size_t i = 0; i < n; i++)
        remember_key(L, &keys[i], job_h, (uint32_t)(hour + 1), false);
}

static void remember_index(struct local *L, const char *key, const char *etag, int64_t hour)
{
    XXH128_hash_t k = XXH3_128bits(key, strlen(key));
    struct claim *s = table_insert(&L->loaded, k.high64, k.low64);
    if (s) {
        s->val = hash64(etag);
        s->hour1 = (uint32_t)(hour + 1);
    }
}

/* Once per hour of window movement, forget what fell out of it — claims and
 * the record of having loaded their index objects together, so that a later
 * replay of such an hour loads them again. Then: the store's partitions of
 * the window, and the claim's own, are listed before every claim. */
static void local_plan(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                       struct pipe__dedup_hours *h)
{
    struct local *L = d->impl;
    *h = (struct pipe__dedup_hours){.lo = c->lo_hour, .hi = c->hi_hour + 1, .own = true};
    if (c->lo_hour <= L->purged_lo)
        return;
    size_t dropped = table_purge(&L->claims, c->lo_hour, c->claim_hour);
    table_purge(&L->loaded, c->lo_hour, c->claim_hour);
    L->purged_lo = c->lo_hour;
    if (dropped)
        pipe_log_info("dedup keys expired", "keys=%zu left=%zu", dropped, L->claims.n);
}

static bool local_seen(struct pipe_dedup *d, const char *key, const char *etag)
{
    struct local *L = d->impl;
    XXH128_hash_t k = XXH3_128bits(key, strlen(key));
    const struct claim *seen = table_find(&L->loaded, k.high64, k.low64);
    return seen && seen->val == hash64(etag);
}

static int local_load(struct pipe_dedup *d, const struct pipe__dedup_obj *o)
{
    struct local *L = d->impl;
    remember_keys(L, o->keys, o->n, hash64(o->job), o->hour);
    remember_index(L, o->key, o->etag, o->hour);
    return 0;
}

static int local_lookup(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                        const struct pipe_dedup_key *keys, size_t n, uint8_t *verdicts)
{
    const struct local *L = d->impl;
    uint64_t job_h = hash64(c->job_id);
    for (size_t i = 0; i < n; i++) {
        const struct claim *s = table_find(&L->claims, keys[i].hi, keys[i].lo);
        if (s && relevant(s, c))
            verdicts[i] = s->val == job_h ? PIPE_DEDUP_MINE : PIPE_DEDUP_DUP;
        else
            verdicts[i] = PIPE_DEDUP_NEW;
    }
    return 0;
}

static void local_remember(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                           const struct pipe_dedup_key *prev, size_t nprev,
                           const struct pipe_dedup_key *keys, size_t n, const uint8_t *verdicts,
                           const char *etag)
{
    struct local *L = d->impl;
    uint64_t job_h = hash64(c->job_id);
    remember_keys(L, prev, nprev, job_h, c->claim_hour);
    for (size_t i = 0; i < n; i++)
        if (verdicts[i] == PIPE_DEDUP_NEW)
            remember_key(L, &keys[i], job_h, (uint32_t)(c->claim_hour + 1), true);
    if (etag)
        remember_index(L, c->own_key, etag, c->claim_hour);
}

static void local_memory(const struct pipe_dedup *d, uint64_t *keys, uint64_t *bytes)
{
    const struct local *L = d->impl;
    *keys = L->claims.n;
    *bytes = table_bytes(&L->claims) + table_bytes(&L->loaded);
}

static const char *const local_schemes[] = {"local", NULL};

const struct pipe_dedup_ops pipe__dedup_local_ops = {
    .name = "local",
    .schemes = local_schemes,
    .open = local_open,
    .close = local_close,
    .plan = local_plan,
    .seen = local_seen,
    .load = local_load,
    .lookup = local_lookup,
    .remember = local_remember,
    .memory = local_memory,
};
