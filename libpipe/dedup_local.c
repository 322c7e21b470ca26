/* dedup_local — the `local` de-duplication backend: a cache, in this
 * process's memory, of the index objects in the store (state/dedup/...),
 * which stay the only durable record. Claims are serialised across every
 * process sharing the store by the lease "dedup": under it a claim loads the
 * index objects it has not seen, classifies its keys and writes its own
 * index object before it answers. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "libpipe/clock.h"
#include "libpipe/dedup_int.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/lease.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"

#define TABLE_MIN   1024 /* slots */
#define LIST_PAGE   1000
#define SLEEP_MIN_MS 2
#define SLEEP_MAX_MS 50

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
    uint8_t *verdicts;   /* scratch, so out-params are written only on success */
    size_t verdicts_cap;
};

/* ---- the table ----------------------------------------------------------- */

static size_t slot_of(const struct table *t, uint64_t hi, uint64_t lo)
{
    uint64_t h = (lo ^ t->seed) * 0x9e3779b97f4a7c15ULL;
    h ^= (hi + t->seed) >> 29;
    h ^= h >> 32;
    return (size_t)h & (t->cap - 1);
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
 * caller fills it. Needs room reserved beforehand. */
static struct slot *table_insert(struct table *t, uint64_t hi, uint64_t lo)
{
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

static void publish_memory(struct pipe_dedup *d, const struct local *L)
{
    atomic_store_explicit(&d->mem_keys, L->claims.used, memory_order_relaxed);
    atomic_store_explicit(&d->mem_bytes,
                          (L->claims.cap + L->loaded.cap) * sizeof(struct slot) +
                              L->verdicts_cap,
                          memory_order_relaxed);
}

/* ---- open / close ----------------------------------------------------------- */

static int local_open(struct pipe_dedup *d, const char *url)
{
    (void)url; /* `local` and `local:///dir` alike: the state is the store's */
    struct local *L = pipe_calloc(1, sizeof *L);
    uint64_t seed = XXH3_64bits_withSeed(&L, sizeof L, (uint64_t)pipe_clock_mono_ms());
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
    pipe_free(L->verdicts);
    pipe_free(L);
    d->impl = NULL;
}
