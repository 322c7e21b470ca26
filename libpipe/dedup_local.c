/* dedup_local — the `local` de-duplication backend: a cache, in this
 * process's memory, of the index objects in the store (state/dedup/...),
 * which stay the only durable record. Claims are serialised across every
 * process sharing the store by the lease "dedup": under it a claim loads the
 * index objects it has not seen, classifies its keys and writes its own
 * index object before it answers. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "libpipe/clock.h"
#include "libpipe/dedup_int.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/lease.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"

#define TABLE_MIN 1024 /* slots */
#define LIST_PAGE 1000

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

static void publish_memory(struct pipe_dedup *d, const struct local *L)
{
    atomic_store_explicit(&d->mem_keys, L->claims.used, memory_order_relaxed);
    atomic_store_explicit(&d->mem_bytes,
                          (L->claims.cap + L->loaded.cap) * sizeof(struct slot) + L->verdicts_cap,
                          memory_order_relaxed);
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
    pipe_free(L->verdicts);
    pipe_free(L);
    d->impl = NULL;
}

/* ---- learning the store's index objects ------------------------------------ */

/* What one claim works with, computed once. */
struct claim_ctx {
    const char *job_id;
    const char *own_key; /* the job's index object */
    uint64_t job_h;
    int64_t claim_hour; /* partition of the job's index */
    int64_t lo_hour;    /* oldest partition inside the window */
    int64_t hi_hour;    /* newest partition looked at: now + 1 h */
};

static uint64_t hash64(const char *s)
{
    return XXH3_64bits(s, strlen(s));
}

/* A claim counts if its partition is inside the window, or is the partition
 * of the claim at hand (a replay of an old hour is checked against it too). */
static bool relevant(const struct slot *s, const struct claim_ctx *c)
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
static void remember(struct local *L, const struct pipe_dedup_key *keys, size_t n, uint64_t job_h,
                     int64_t hour)
{
    for (size_t i = 0; i < n; i++)
        remember_key(L, &keys[i], job_h, (uint32_t)(hour + 1), false);
}

static void remember_index(struct local *L, const char *key, uint64_t etag_h, int64_t hour)
{
    XXH128_hash_t k = XXH3_128bits(key, strlen(key));
    struct slot *s = table_insert(&L->loaded, k.high64, k.low64);
    s->val = etag_h;
    s->hour1 = (uint32_t)(hour + 1);
}

/* Loads one listed index object unless it is the claiming job's own (read
 * separately) or already loaded in this version. */
static int load_index(struct pipe_dedup *d, struct local *L, const struct claim_ctx *c,
                      const struct pipe_store_obj *obj, int64_t hour)
{
    int rc = 0;
    char job[256];
    struct pipe__dedup_index ix = {0};
    if (strcmp(obj->key, c->own_key) == 0)
        goto out;
    if (!pipe__dedup_job_of_key(obj->key, job)) {
        pipe_log_warn("unexpected object among dedup indexes", "key=\"%s\"", obj->key);
        goto out;
    }
    /* Index objects only grow (a re-run adds to its job's), so a new etag
     * means reading it again and adding what is new. */
    uint64_t etag_h = hash64(obj->etag);
    XXH128_hash_t k = XXH3_128bits(obj->key, strlen(obj->key));
    const struct slot *seen = table_find(&L->loaded, k.high64, k.low64);
    if (seen && seen->val == etag_h)
        goto out;
    rc = pipe__dedup_index_get(d->store, obj->key, job, &ix, NULL);
    if (rc == PIPE_ENOTFOUND) {
        rc = 0; /* deleted since the listing: a claim that was undone */
        goto out;
    }
    if (rc < 0)
        goto out;
    remember(L, ix.keys, ix.count, hash64(job), hour);
    remember_index(L, obj->key, etag_h, hour);
out:
    pipe__dedup_index_cleanup(&ix);
    return rc;
}

/* Loads every index object of one hour partition not loaded yet. */
static int refresh_hour(struct pipe_dedup *d, struct local *L, const struct claim_ctx *c,
                        int64_t hour)
{
    int rc;
    struct pipe_buf prefix;
    char *marker = NULL;
    pipe_buf_init(&prefix, PIPE_STORE_KEY_MAX);
    if (pipe_keys_hour_prefix(&prefix, "state/dedup", hour * PIPE__DEDUP_HOUR_MS) < 0) {
        rc = 0; /* past year 9999: nothing can be there */
        goto out;
    }
    for (;;) {
        struct pipe_store_list page = {0};
        rc = pipe_store_list(d->store, prefix.data, marker, LIST_PAGE, &page);
        if (rc < 0)
            goto out;
        for (size_t i = 0; i < page.count && rc == 0; i++)
            rc = load_index(d, L, c, &page.items[i], hour);
        bool more = rc == 0 && page.truncated && page.next_marker;
        pipe_free(marker);
        marker = more ? pipe_strdup(page.next_marker) : NULL;
        pipe_store_list_cleanup(&page);
        if (!more)
            break;
    }
out:
    pipe_free(marker);
    pipe_buf_cleanup(&prefix);
    return rc;
}

/* Every partition of the window, and the claim's own if it is older. */
static int refresh(struct pipe_dedup *d, struct local *L, const struct claim_ctx *c)
{
    int rc = 0;
    for (int64_t h = c->lo_hour; h <= c->hi_hour && rc == 0; h++)
        rc = refresh_hour(d, L, c, h);
    if (rc == 0 && (c->claim_hour < c->lo_hour || c->claim_hour > c->hi_hour))
        rc = refresh_hour(d, L, c, c->claim_hour);
    return rc;
}

/* Once per hour of window movement, forget what fell out of it — claims and
 * the record of having loaded their index objects together, so that a later
 * replay of such an hour loads them again. */
static void purge_if_due(struct local *L, const struct claim_ctx *c)
{
    if (c->lo_hour <= L->purged_lo)
        return;
    size_t dropped = table_purge(&L->claims, c->lo_hour, c->claim_hour);
    table_purge(&L->loaded, c->lo_hour, c->claim_hour);
    L->purged_lo = c->lo_hour;
    if (dropped)
        pipe_log_info("dedup keys expired", "keys=%zu left=%zu", dropped, L->claims.used);
}

/* ---- claiming --------------------------------------------------------------- */

/* Decides each key's verdict into L->verdicts. */
static void classify(struct local *L, const struct claim_ctx *c,
                     const struct pipe__dedup_index *prev, const struct pipe_dedup_key *keys,
                     size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct slot *s;
        if (prev->count &&
            bsearch(&keys[i], prev->keys, prev->count, sizeof *keys, pipe__dedup_key_cmp)) {
            L->verdicts[i] = PIPE_DEDUP_MINE; /* the job's own, whoever claimed it since */
            continue;
        }
        s = table_find(&L->claims, keys[i].hi, keys[i].lo);
        if (s && relevant(s, c))
            L->verdicts[i] = s->val == c->job_h ? PIPE_DEDUP_MINE : PIPE_DEDUP_DUP;
        else
            L->verdicts[i] = PIPE_DEDUP_NEW;
    }
}

/* Under the lease: classify against memory and the job's previous index,
 * write the new index, make sure the lease held throughout, then remember. */
static int claim_locked(struct pipe_dedup *d, struct local *L, const struct claim_ctx *c,
                        const struct pipe_lease *lease, const struct pipe_dedup_key *keys, size_t n)
{
    int rc;
    struct pipe__dedup_index prev = {0};
    struct pipe_buf before, enc;
    size_t cap = PIPE__DEDUP_HEADER_LEN + 256 + (size_t)PIPE__DEDUP_MAX_KEYS * 16 + (1u << 20);
    pipe_buf_init(&before, cap);
    pipe_buf_init(&enc, cap);
    rc = refresh(d, L, c);
    if (rc < 0)
        goto out;
    rc = pipe__dedup_index_get(d->store, c->own_key, c->job_id, &prev, &before);
    bool existed = rc == 0;
    if (rc == PIPE_ENOTFOUND)
        rc = 0;
    if (rc < 0)
        goto out;
    classify(L, c, &prev, keys, n);
    rc = pipe__dedup_index_build(c->job_id, &prev, keys, n, L->verdicts, &enc);
    if (rc < 0)
        goto out;
    bool wrote;
    rc = pipe__dedup_index_commit(d, lease, c->job_id, c->own_key, existed, &before, &enc, &wrote);
    if (rc < 0)
        goto out;
    remember(L, prev.keys, prev.count, c->job_h, c->claim_hour);
    for (size_t i = 0; i < n; i++)
        if (L->verdicts[i] == PIPE_DEDUP_NEW)
            remember_key(L, &keys[i], c->job_h, (uint32_t)(c->claim_hour + 1), true);
    struct pipe_store_obj info;
    if (wrote && pipe_store_stat(d->store, c->own_key, &info) == 0)
        remember_index(L, c->own_key, hash64(info.etag), c->claim_hour);
out:
    pipe__dedup_index_cleanup(&prev);
    pipe_buf_cleanup(&enc);
    pipe_buf_cleanup(&before);
    return rc;
}

static int local_claim(struct pipe_dedup *d, const char *job_id, int64_t hour_ms, int64_t now_ms,
                       const struct pipe_dedup_key *keys, size_t n, uint8_t *verdicts)
{
    int rc;
    struct local *L = d->impl;
    struct pipe_lease lease = {0};
    bool held = false;
    struct pipe_buf own;
    pipe_buf_init(&own, PIPE_STORE_KEY_MAX);
    rc = pipe_keys_dedup_index(&own, hour_ms, job_id);
    if (rc < 0)
        goto out;
    int64_t lo_ms = now_ms - d->cfg.window_ms;
    struct claim_ctx c = {
        .job_id = job_id,
        .own_key = own.data,
        .job_h = hash64(job_id),
        .claim_hour = pipe__dedup_hour(hour_ms),
        .lo_hour = pipe__dedup_hour(lo_ms > 0 ? lo_ms : 0),
        .hi_hour = pipe__dedup_hour(now_ms + PIPE__DEDUP_HOUR_MS),
    };
    if (n > L->verdicts_cap) {
        pipe_free(L->verdicts);
        L->verdicts = pipe_malloc(n);
        L->verdicts_cap = n;
    }
    purge_if_due(L, &c);
    /* The bulk of the loading (all of the window after a restart) happens
     * before taking the lease, so other processes wait only for the delta. */
    rc = refresh(d, L, &c);
    if (rc < 0)
        goto out;
    rc = pipe__dedup_lease_wait(d, &lease);
    if (rc < 0)
        goto out;
    held = true;
    rc = claim_locked(d, L, &c, &lease, keys, n);
    if (rc == 0)
        memcpy(verdicts, L->verdicts, n);
out:
    if (held) {
        /* The claim is durable once checked; a failed release only makes
         * the next claimant wait for the TTL. */
        int r = pipe_lease_release(d->leases, &lease);
        if (r < 0 && rc == 0)
            pipe_log_warn("dedup lease release failed", "err=\"%s\"", pipe_strerror(r));
    }
    publish_memory(d, L);
    pipe_buf_cleanup(&own);
    return rc;
}

static const char *const local_schemes[] = {"local", NULL};

const struct pipe_dedup_ops pipe__dedup_local_ops = {
    .name = "local",
    .schemes = local_schemes,
    .open = local_open,
    .close = local_close,
    .claim = local_claim,
};
