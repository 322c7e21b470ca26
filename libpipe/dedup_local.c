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
#include "libpipe/log.h"
#include "libpipe/mem.h"

#define TABLE_MIN 1024 /* slots */

/* One slot of an open-addressing table, 32 bytes. In the claims table the
 * key is a dedup key and val the XXH3-64 of the claiming job id; in the
 * table of loaded index objects the key is XXH3-128 of the object's store
 * key and val the XXH3-64 of its etag. hour1 is the hour of the index
 * object's partition plus one; 0 marks an empty slot. */
struct slot {
    uint64_t hi, lo;
    uint64_t val;
    uint32_t hour1;
    uint32_t pad;
};

/* Linear probing, at most 3/4 full, grows by doubling. */
struct table {
    struct slot *slots;
    size_t cap; /* a power of two, or 0 before the first insert */
    size_t used;
    uint64_t seed; /* mixed into the slot index: ids come from clients */
};

struct local {
    struct table claims; /* dedup key -> job, hour */
    struct table loaded; /* index objects already read -> etag, hour */
    int64_t purged_lo;   /* hours below this were dropped by the last purge */
};

/* ---- the table ----------------------------------------------------------- */

static size_t slot_of(const struct table *t, uint64_t hi, uint64_t lo)
{
    struct pipe_dedup_key k = {hi, lo};
    return (size_t)pipe_dedup_key_hash(&k, t->seed) & (t->cap - 1);
}

static struct slot *table_find(const struct table *t, uint64_t hi, uint64_t lo)
{
    if (t->cap == 0)
        return NULL;
    for (size_t i = slot_of(t, hi, lo);; i = (i + 1) & (t->cap - 1)) {
        struct slot *s = &t->slots[i];
        if (s->hour1 == 0)
            return NULL;
        if (s->hi == hi && s->lo == lo)
            return s;
    }
}

/* Places a slot known to be absent; the table has room. */
static void table_place(struct table *t, const struct slot *src)
{
    size_t i = slot_of(t, src->hi, src->lo);
    while (t->slots[i].hour1 != 0)
        i = (i + 1) & (t->cap - 1);
    t->slots[i] = *src;
}

/* Room for extra more keys without passing 3/4 full. */
static void table_reserve(struct table *t, size_t extra)
{
    size_t cap = t->cap ? t->cap : TABLE_MIN;
    while ((t->used + extra) > cap / 4 * 3)
        cap *= 2;
    if (cap == t->cap)
        return;
    struct slot *old = t->slots;
    size_t old_cap = t->cap;
    t->slots = pipe_calloc(cap, sizeof *t->slots);
    t->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].hour1 != 0)
            table_place(t, &old[i]);
    pipe_free(old);
}

/* The slot of key, claimed empty (hour1 == 0) when the key is new: the
 * caller fills it. Grows the table first when a new key would pass 3/4. */
static struct slot *table_insert(struct table *t, uint64_t hi, uint64_t lo)
{
    table_reserve(t, 1);
    size_t i = slot_of(t, hi, lo);
    for (;; i = (i + 1) & (t->cap - 1)) {
        struct slot *s = &t->slots[i];
        if (s->hour1 == 0) {
            s->hi = hi;
            s->lo = lo;
            t->used++;
            return s;
        }
        if (s->hi == hi && s->lo == lo)
            return s;
    }
}

/* Drops every slot whose hour is below lo_hour, except those of keep_hour,
 * by rebuilding the table (sized for what is left): emptied slots would cut
 * probe chains, and this runs about once an hour. Returns how many went. */
static size_t table_purge(struct table *t, int64_t lo_hour, int64_t keep_hour)
{
    size_t keep = 0;
    for (size_t i = 0; i < t->cap; i++) {
        int64_t h = (int64_t)t->slots[i].hour1 - 1;
        if (t->slots[i].hour1 != 0 && (h >= lo_hour || h == keep_hour))
            keep++;
    }
    size_t dropped = t->used - keep;
    if (dropped == 0)
        return 0;
    struct table fresh = {.seed = t->seed};
    table_reserve(&fresh, keep);
    for (size_t i = 0; i < t->cap; i++) {
        int64_t h = (int64_t)t->slots[i].hour1 - 1;
        if (t->slots[i].hour1 != 0 && (h >= lo_hour || h == keep_hour))
            table_place(&fresh, &t->slots[i]);
    }
    fresh.used = keep;
    pipe_free(t->slots);
    *t = fresh;
    return dropped;
}

static void table_cleanup(struct table *t)
{
    pipe_free(t->slots);
    memset(t, 0, sizeof *t);
}

/* ---- open / close ----------------------------------------------------------- */

static int local_open(struct pipe_dedup *d, const char *url)
{
    (void)url; /* `local` and `local:///dir` alike: the state is the store's */
    struct local *L = pipe_calloc(1, sizeof *L);
    uint64_t seed = pipe_mem_hash_seed();
    L->claims.seed = seed;
    L->loaded.seed = seed ^ 0x5bd1e995u;
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
static bool relevant(const struct slot *s, const struct pipe__dedup_claim *c)
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
    struct slot *s = table_insert(&L->claims, key->hi, key->lo);
    if (force || s->hour1 < hour1) {
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
    struct slot *s = table_insert(&L->loaded, k.high64, k.low64);
    s->val = hash64(etag);
    s->hour1 = (uint32_t)(hour + 1);
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
        pipe_log_info("dedup keys expired", "keys=%zu left=%zu", dropped, L->claims.used);
}

static bool local_seen(struct pipe_dedup *d, const char *key, const char *etag)
{
    struct local *L = d->impl;
    XXH128_hash_t k = XXH3_128bits(key, strlen(key));
    const struct slot *seen = table_find(&L->loaded, k.high64, k.low64);
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
        const struct slot *s = table_find(&L->claims, keys[i].hi, keys[i].lo);
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
    *keys = L->claims.used;
    *bytes = (L->claims.cap + L->loaded.cap) * sizeof(struct slot);
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
