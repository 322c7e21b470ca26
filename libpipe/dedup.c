/* dedup — the generic front end of the de-duplication backends: URL
 * dispatch, configuration defaults, argument checks, key hashing, the
 * counters and /metrics, and the whole claim protocol: the claim lease,
 * reading and writing the job's index object (the durable record, whatever
 * the backend; codec in dedup_index.c), verdicts, undo after a lost lease
 * and rebuilding a backend's view. A backend only keeps that view. */
#include "libpipe/dedup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "libpipe/backoff.h"
#include "libpipe/clock.h"
#include "libpipe/dedup_int.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/lease.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"
#include "libpipe/store.h"
#include "libpipe/url.h"

#define DEFAULT_WINDOW_MS PIPE_DAY_MS /* PIPE_DEDUP_WINDOW_DEFAULT */
#define DEFAULT_TTL_MS    (30 * PIPE_SEC_MS)
#define DEFAULT_WAIT_MS   PIPE_MIN_MS
#define WAIT_MAX_MS       PIPE_HOUR_MS
#define PAUSE_MIN_MS      2 /* between tries for the claim lease */
#define PAUSE_MAX_MS      50
#define REBUILD_TRIES     3 /* a view lost again and again: give up, unavailable */
/* An index object's bytes: zstd adds little to incompressible data. */
#define INDEX_CAP (PIPE__DEDUP_HEADER_LEN + 256 + (size_t)PIPE__DEDUP_MAX_KEYS * 16 + (1u << 20))

/* Every backend built into the library. dedup_redis.c adds its entry here. */
static const struct pipe_dedup_ops *const backends[] = {
    &pipe__dedup_local_ops,
    &pipe__dedup_redis_ops,
};

static const struct pipe_dedup_ops *find_backend(const char *url)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        for (const char *const *s = backends[i]->schemes; *s; s++)
            if (pipe_url_scheme_is(url, *s))
                return backends[i];
    return NULL;
}

void pipe_dedup_key_of(const char *event, size_t event_len, const char *id, size_t id_len,
                       struct pipe_dedup_key *out)
{
    /* The NUL keeps ("ab","c") apart from ("a","bc"): event types cannot
     * hold a NUL. Short pairs (nearly all) hash in one call from a stack
     * copy; the streaming state gives the same hash for the rest. */
    char cat[512];
    XXH128_hash_t h;
    if (event_len < sizeof cat && id_len < sizeof cat - event_len) {
        memcpy(cat, event, event_len);
        cat[event_len] = '\0';
        if (id_len)
            memcpy(cat + event_len + 1, id, id_len);
        h = XXH3_128bits(cat, event_len + 1 + id_len);
    } else {
        XXH3_state_t st;
        XXH3_128bits_reset(&st);
        XXH3_128bits_update(&st, event, event_len);
        XXH3_128bits_update(&st, "", 1);
        XXH3_128bits_update(&st, id, id_len);
        h = XXH3_128bits_digest(&st);
    }
    out->hi = h.high64;
    out->lo = h.low64;
}

uint64_t pipe_dedup_key_hash(const struct pipe_dedup_key *k, uint64_t seed)
{
    uint64_t v[2] = {k->hi, k->lo}; /* no padding hashed */
    return XXH3_64bits_withSeed(v, sizeof v, seed);
}

/* Zero fields take the defaults; anything out of range is a configuration
 * error rather than something to clamp silently. */
static int config_resolve(const struct pipe_dedup_config *in, struct pipe_dedup_config *out)
{
    struct pipe_dedup_config c = {0};
    if (in)
        c = *in;
    if (c.window_ms == 0)
        c.window_ms = DEFAULT_WINDOW_MS;
    if (c.lease_ttl_ms == 0)
        c.lease_ttl_ms = DEFAULT_TTL_MS;
    if (c.wait_ms == 0)
        c.wait_ms = DEFAULT_WAIT_MS;
    if (c.window_ms < 0 || c.window_ms > PIPE_DEDUP_WINDOW_MAX_MS) {
        pipe_log_error("dedup window out of range", "window_ms=%lld", (long long)c.window_ms);
        return PIPE_ECONFIG;
    }
    if (c.lease_ttl_ms < 0 || c.lease_ttl_ms > PIPE_LEASE_TTL_MAX_MS || c.wait_ms < 0 ||
        c.wait_ms > WAIT_MAX_MS) {
        pipe_log_error("dedup lease timing out of range", "lease_ttl_ms=%lld wait_ms=%lld",
                       (long long)c.lease_ttl_ms, (long long)c.wait_ms);
        return PIPE_ECONFIG;
    }
    *out = c;
    return 0;
}

int pipe_dedup_open(const char *url, struct pipe_store *store, struct pipe_leases *leases,
                    const struct pipe_dedup_config *cfg, struct pipe_dedup **out)
{
    int rc;
    struct pipe_dedup_config c;
    if (!store || !leases || !out)
        return PIPE_EINVAL;
    if (!url)
        url = "local";
    const struct pipe_dedup_ops *ops = find_backend(url);
    if (!ops) {
        /* Only the scheme: the rest of a URL may hold a password. */
        size_t n = strcspn(url, ":");
        pipe_log_error("unknown dedup backend", "scheme=\"%.*s\"", (int)(n < 32 ? n : 32), url);
        return PIPE_ECONFIG;
    }
    rc = config_resolve(cfg, &c);
    if (rc < 0)
        goto out;
    struct pipe_dedup *d = pipe_calloc(1, sizeof *d);
    d->ops = ops;
    d->store = store;
    d->leases = leases;
    d->cfg = c;
    rc = ops->open(d, url);
    if (rc < 0) {
        pipe_dedup_free(d);
        goto out;
    }
    *out = d;
out:
    return rc;
}

void pipe_dedup_free(struct pipe_dedup *d)
{
    if (!d)
        return;
    d->ops->close(d);
    pipe_free(d->verdicts);
    pipe_free(d);
}

void pipe_dedup_counters(const struct pipe_dedup *d, uint64_t *fresh, uint64_t *mine,
                         uint64_t *dups)
{
    struct pipe_dedup *m = (struct pipe_dedup *)d; /* atomic loads only */
    if (fresh)
        *fresh = d ? atomic_load_explicit(&m->n_fresh, memory_order_relaxed) : 0;
    if (mine)
        *mine = d ? atomic_load_explicit(&m->n_mine, memory_order_relaxed) : 0;
    if (dups)
        *dups = d ? atomic_load_explicit(&m->n_dups, memory_order_relaxed) : 0;
}

void pipe_dedup_memory(const struct pipe_dedup *d, uint64_t *keys, uint64_t *bytes)
{
    struct pipe_dedup *m = (struct pipe_dedup *)d;
    if (keys)
        *keys = d ? atomic_load_explicit(&m->mem_keys, memory_order_relaxed) : 0;
    if (bytes)
        *bytes = d ? atomic_load_explicit(&m->mem_bytes, memory_order_relaxed) : 0;
}

void pipe_dedup_metrics_register(struct pipe_dedup *d, struct pipe_metrics *m)
{
    static const char *const labels[3] = {"verdict=\"new\"", "verdict=\"mine\"", "verdict=\"dup\""};
    if (!d || !m)
        return;
    uint64_t now[3], keys, bytes;
    pipe_dedup_counters(d, &now[PIPE_DEDUP_NEW], &now[PIPE_DEDUP_MINE], &now[PIPE_DEDUP_DUP]);
    pipe_dedup_memory(d, &keys, &bytes);
    for (int i = 0; i < 3; i++) {
        d->m_claims[i] = pipe_metrics_counter(
            m, "sluice_dedup_claims_total",
            "Keys claimed for de-duplication, by verdict: new (first claim), mine (claimed "
            "before by the same job), dup (claimed by another job: the event is dropped).",
            labels[i]);
        pipe_counter_add(d->m_claims[i], now[i]);
    }
    d->m_keys = pipe_metrics_gauge(m, "sluice_dedup_keys",
                                   "Keys the de-duplication backend holds in this process.", NULL);
    d->m_bytes =
        pipe_metrics_gauge(m, "sluice_dedup_memory_bytes",
                           "Bytes of the de-duplication backend's tables in this process.", NULL);
    pipe_gauge_set(d->m_keys, (double)keys);
    pipe_gauge_set(d->m_bytes, (double)bytes);
}

/* After each claim, done or not: the counters of what it decided and the
 * backend's memory, for pipe_dedup_counters and /metrics. */
static void publish(struct pipe_dedup *d, const uint8_t *verdicts, size_t n)
{
    uint64_t c[3] = {0, 0, 0}, keys = 0, bytes = 0;
    for (size_t i = 0; i < n; i++)
        c[verdicts[i] <= PIPE_DEDUP_DUP ? verdicts[i] : PIPE_DEDUP_DUP]++;
    atomic_fetch_add_explicit(&d->n_fresh, c[PIPE_DEDUP_NEW], memory_order_relaxed);
    atomic_fetch_add_explicit(&d->n_mine, c[PIPE_DEDUP_MINE], memory_order_relaxed);
    atomic_fetch_add_explicit(&d->n_dups, c[PIPE_DEDUP_DUP], memory_order_relaxed);
    for (int i = 0; i < 3; i++)
        if (c[i])
            pipe_counter_add(d->m_claims[i], c[i]);
    if (d->ops->memory)
        d->ops->memory(d, &keys, &bytes);
    atomic_store_explicit(&d->mem_keys, keys, memory_order_relaxed);
    atomic_store_explicit(&d->mem_bytes, bytes, memory_order_relaxed);
    pipe_gauge_set(d->m_keys, (double)keys);
    pipe_gauge_set(d->m_bytes, (double)bytes);
}

/* ---- the claim lease ------------------------------------------------------ */

/* Takes the claim lease into *l, waiting up to wait_ms (with growing,
 * jittered pauses: libpipe/backoff.h) while others hold it. 0, PIPE_EBUSY,
 * or a lease error. */
static int lease_wait(struct pipe_dedup *d, struct pipe_lease *l)
{
    int64_t deadline = pipe_clock_mono_ms() + d->cfg.wait_ms;
    struct pipe_backoff wait;
    pipe_backoff_init(&wait, PAUSE_MIN_MS, PAUSE_MAX_MS);
    for (;;) {
        int rc = pipe_lease_acquire(d->leases, PIPE__DEDUP_LEASE, d->cfg.lease_ttl_ms, l);
        if (rc != PIPE_EBUSY)
            return rc;
        int64_t left = deadline - pipe_clock_mono_ms();
        if (left <= 0)
            return PIPE_EBUSY;
        int64_t pause = pipe_backoff_next(&wait);
        pipe_backoff_sleep(pause < left ? pause : left);
    }
}

/* ---- reading the store's index objects ------------------------------------ */

/* Keys of other jobs' index objects in one partition, sorted: what a claim
 * into a partition its backend's view does not cover is checked against. */
struct partition {
    struct pipe_dedup_key *keys;
    size_t n, cap;
};

/* One walk over index partitions: each object read goes to the backend's
 * load, or into part when that is set. */
struct walk {
    struct pipe_dedup *d;
    const char *skip;         /* the claiming job's own object (read apart), or NULL */
    struct pipe_lease *lease; /* renewed through a long walk, or NULL */
    struct partition *part;
    int64_t renewed_ms;
    int64_t hour;
};

/* Keeps the lease alive through a long walk (a rebuild): at a third of its TTL. */
static int keep_lease(struct walk *w)
{
    int64_t now = pipe_clock_mono_ms();
    if (!w->lease || now - w->renewed_ms < w->d->cfg.lease_ttl_ms / 3)
        return 0;
    w->renewed_ms = now;
    return pipe_lease_renew(w->d->leases, w->lease, w->d->cfg.lease_ttl_ms);
}

static void partition_add(struct partition *p, const struct pipe__dedup_obj *o)
{
    if (p->n + o->n > p->cap) {
        p->cap = (p->n + o->n) * 2;
        p->keys = pipe_realloc(p->keys, p->cap * sizeof *p->keys);
    }
    memcpy(p->keys + p->n, o->keys, o->n * sizeof *o->keys);
    p->n += o->n;
}

static int walk_object(void *arg, const struct pipe_store_obj *o)
{
    struct walk *w = arg;
    struct pipe_dedup *d = w->d;
    char job[256];
    struct pipe__dedup_index ix = {0};
    int rc = 0;
    if (w->skip && strcmp(o->key, w->skip) == 0)
        goto out;
    rc = keep_lease(w);
    if (rc < 0)
        goto out;
    if (!pipe__dedup_job_of_key(o->key, job)) {
        pipe_log_warn("unexpected object among dedup indexes", "key=\"%s\"", o->key);
        goto out;
    }
    /* Index objects only grow (a re-run adds to its job's): a view that
     * holds this version of one holds all of it. */
    if (!w->part && d->ops->seen && d->ops->seen(d, o->key, o->etag))
        goto out;
    rc = pipe__dedup_index_get(d->store, o->key, job, &ix, NULL);
    if (rc == PIPE_ENOTFOUND) {
        rc = 0; /* deleted since the listing: a claim that was undone */
        goto out;
    }
    if (rc < 0)
        goto out;
    struct pipe__dedup_obj ob = {o->key, o->etag, job, w->hour, ix.keys, ix.count};
    if (w->part)
        partition_add(w->part, &ob);
    else
        rc = d->ops->load(d, &ob);
out:
    pipe__dedup_index_cleanup(&ix);
    return rc;
}

static int walk_hour(struct walk *w, int64_t hour)
{
    struct pipe_buf prefix;
    int rc = 0;
    pipe_buf_init(&prefix, PIPE_STORE_KEY_MAX);
    w->hour = hour;
    /* Past year 9999 nothing can be there. */
    if (pipe_keys_hour_prefix(&prefix, "state/dedup", hour * PIPE_HOUR_MS) == 0)
        rc = pipe_store_walk(w->d->store, prefix.data, NULL, 0, walk_object, w);
    pipe_buf_cleanup(&prefix);
    return rc;
}

/* Loads the partitions h names into the backend's view, but skip. */
static int load_hours(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                      const struct pipe__dedup_hours *h, const char *skip, struct pipe_lease *lease)
{
    int rc = 0;
    struct walk w = {.d = d, .skip = skip, .lease = lease, .renewed_ms = pipe_clock_mono_ms()};
    for (int64_t hr = h->lo; hr < h->hi && rc == 0; hr++)
        rc = walk_hour(&w, hr);
    if (rc == 0 && h->own && (c->claim_hour < h->lo || c->claim_hour >= h->hi))
        rc = walk_hour(&w, c->claim_hour);
    return rc;
}

/* The other jobs' keys in the claim's own partition, sorted. */
static int partition_load(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                          struct partition *p)
{
    struct walk w = {.d = d, .skip = c->own_key, .part = p};
    int rc = walk_hour(&w, c->claim_hour);
    if (rc == 0 && p->n)
        pipe__dedup_keys_sort(p->keys, p->n);
    return rc;
}

/* Builds a fresh view from the store under the lease. A view that went on
 * the way (its backend lost it) is not published: the rebuild starts over. */
static int rebuild(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                   struct pipe_lease *lease)
{
    int rc = PIPE__DEDUP_STALE;
    for (int attempt = 0; attempt < REBUILD_TRIES && rc == PIPE__DEDUP_STALE; attempt++) {
        struct pipe__dedup_hours h = {0};
        rc = d->ops->rebuild_begin(d, c, &h);
        if (rc == 0)
            rc = load_hours(d, c, &h, NULL, lease);
        if (rc == 0)
            rc = pipe_lease_check(d->leases, lease);
        if (rc == 0)
            rc = d->ops->rebuild_publish(d);
        if (rc == PIPE__DEDUP_STALE)
            pipe_log_warn("dedup view lost during rebuild; starting over", "backend=%s",
                          d->ops->name);
    }
    return rc == PIPE__DEDUP_STALE ? PIPE_EUNAVAIL : rc;
}

/* ---- the claim ------------------------------------------------------------ */

/* The keys a claim asks its backend about: those not in the job's previous
 * index. Without a previous index they are the caller's arrays. */
struct asked {
    const struct pipe_dedup_key *keys;
    uint8_t *verdicts;
    size_t n;
    struct pipe_dedup_key *copy; /* owned, with pos, when a subset */
    size_t *pos;                 /* where asked key j sits in the claim */
    uint8_t *vcopy;
};

static void asked_cleanup(struct asked *a)
{
    pipe_free(a->copy);
    pipe_free(a->pos);
    pipe_free(a->vcopy);
}

/* Writes verdicts[0..n): a key of the job's previous index is MINE
 * (whoever claimed it since), the backend decides the others, and a key
 * another job's index holds in a partition its view does not cover is DUP.
 * 0, PIPE__DEDUP_STALE, or an error. */
static int classify(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                    const struct pipe__dedup_index *prev, const struct pipe_dedup_key *keys,
                    size_t n, uint8_t *verdicts, struct asked *a)
{
    int rc = 0;
    struct partition part = {0};
    *a = (struct asked){.keys = keys, .verdicts = verdicts, .n = n};
    if (prev->count) {
        a->copy = pipe_malloc(n * sizeof *a->copy);
        a->pos = pipe_malloc(n * sizeof *a->pos);
        a->vcopy = pipe_malloc(n);
        a->n = 0;
        for (size_t i = 0; i < n; i++) {
            if (bsearch(&keys[i], prev->keys, prev->count, sizeof *keys, pipe__dedup_key_cmp)) {
                verdicts[i] = PIPE_DEDUP_MINE;
                continue;
            }
            a->pos[a->n] = i;
            a->copy[a->n++] = keys[i];
        }
        a->keys = a->copy;
        a->verdicts = a->vcopy;
    }
    if (d->ops->covers && !d->ops->covers(d, c))
        rc = partition_load(d, c, &part);
    if (rc == 0 && a->n)
        rc = d->ops->lookup(d, c, a->keys, a->n, a->verdicts);
    for (size_t j = 0; j < a->n && rc == 0; j++) {
        uint8_t x = a->verdicts[j];
        if (part.n && bsearch(&a->keys[j], part.keys, part.n, sizeof *keys, pipe__dedup_key_cmp))
            x = PIPE_DEDUP_DUP;
        verdicts[a->pos ? a->pos[j] : j] = x;
    }
    pipe_free(part.keys);
    return rc;
}

/* Byte d (0 = the most significant) of a key read as one 128-bit number,
 * hi above lo: the digits of pipe__dedup_key_cmp's order. */
static inline unsigned key_digit(const struct pipe_dedup_key *k, unsigned d)
{
    uint64_t w = d < 8 ? k->hi : k->lo;
    return (unsigned)(w >> (56 - 8 * (d & 7))) & 0xFFu;
}

static void keys_insertion_sort(struct pipe_dedup_key *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct pipe_dedup_key k = a[i];
        size_t j = i;
        for (; j > 0 && pipe__dedup_key_cmp(&k, &a[j - 1]) < 0; j--)
            a[j] = a[j - 1];
        a[j] = k;
    }
}

#define RADIX_SMALL 32 /* a bucket this small is done by insertion */

/* Sorts a[0..n), whose keys agree on the digits before d, through tmp[0..n)
 * one digit at a time from the top. A digit every key shares costs a count
 * only; recursion is at most 16 deep (one level per digit), so hostile
 * keys cost at most 16 passes. */
static void keys_radix(struct pipe_dedup_key *a, struct pipe_dedup_key *tmp, size_t n, unsigned d)
{
    size_t at[256];
    for (; n > RADIX_SMALL && d < 16; d++) {
        memset(at, 0, sizeof at);
        for (size_t i = 0; i < n; i++)
            at[key_digit(&a[i], d)]++;
        if (at[key_digit(&a[0], d)] == n)
            continue;
        size_t sum = 0;
        for (unsigned b = 0; b < 256; b++) {
            size_t c = at[b];
            at[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[at[key_digit(&a[i], d)]++] = a[i];
        memcpy(a, tmp, n * sizeof *a);
        /* at[b] is now the end of bucket b. */
        for (unsigned b = 0; b < 256; b++) {
            size_t lo = b ? at[b - 1] : 0;
            if (at[b] - lo > 1)
                keys_radix(a + lo, tmp + lo, at[b] - lo, d + 1);
        }
        return;
    }
    if (d < 16)
        keys_insertion_sort(a, n);
}

void pipe__dedup_keys_sort(struct pipe_dedup_key *keys, size_t n)
{
    if (n <= RADIX_SMALL) {
        keys_insertion_sort(keys, n);
        return;
    }
    struct pipe_dedup_key *tmp = pipe_malloc(n * sizeof *tmp);
    keys_radix(keys, tmp, n, 0);
    pipe_free(tmp);
}

/* The job's new index: its previous keys plus every key not DUP, sorted and
 * distinct. 0 or as pipe__dedup_index_encode. */
static int index_build(const char *job_id, const struct pipe__dedup_index *prev,
                       const struct pipe_dedup_key *keys, size_t n, const uint8_t *verdicts,
                       struct pipe_buf *enc)
{
    struct pipe_dedup_key *all = pipe_malloc((prev->count + n) * sizeof *all);
    size_t k = prev->count;
    if (k)
        memcpy(all, prev->keys, k * sizeof *all);
    for (size_t i = 0; i < n; i++)
        if (verdicts[i] != PIPE_DEDUP_DUP)
            all[k++] = keys[i];
    if (k > prev->count) {
        /* prev is sorted; keys already in it come back as MINE: sort and
         * keep each once, as the format insists. */
        pipe__dedup_keys_sort(all, k);
        size_t u = 1;
        for (size_t i = 1; i < k; i++)
            if (pipe__dedup_key_cmp(&all[u - 1], &all[i]) != 0)
                all[u++] = all[i];
        k = u;
    }
    int rc = pipe__dedup_index_encode(job_id, all, k, enc);
    pipe_free(all);
    return rc;
}

/* After the lease was lost: puts back what the job's index object held
 * before (or removes it), so that nothing stays claimed that the caller was
 * told was not. A failure is logged; the claim fails either way. */
static void index_undo(struct pipe_dedup *d, const char *key, bool existed,
                       const struct pipe_buf *before)
{
    int rc = existed ? pipe_store_put(d->store, key, before->data, before->len)
                     : pipe_store_delete(d->store, key);
    if (rc < 0)
        pipe_log_error("could not undo dedup index after lost lease", "key=\"%s\" err=\"%s\"", key,
                       pipe_strerror(rc));
}

/* The last step of a claim: writes enc as the job's index object unless it
 * equals before (the stored bytes, if existed), then checks that the lease
 * held throughout and, if not, puts back what was there. *wrote says
 * whether a new object was written and kept. */
static int index_commit(struct pipe_dedup *d, const struct pipe_lease *lease,
                        const struct pipe__dedup_claim *c, bool existed,
                        const struct pipe_buf *before, const struct pipe_buf *enc, bool *wrote)
{
    bool write =
        !existed || before->len != enc->len || memcmp(before->data, enc->data, enc->len) != 0;
    *wrote = false;
    if (write) {
        int rc = pipe_store_put(d->store, c->own_key, enc->data, enc->len);
        if (rc < 0)
            return rc;
    }
    int rc = pipe_lease_check(d->leases, lease);
    if (rc < 0) {
        pipe_log_warn("dedup lease lost before claim was committed", "job=%s err=\"%s\"", c->job_id,
                      pipe_strerror(rc));
        if (write)
            index_undo(d, c->own_key, existed, before);
        return rc;
    }
    *wrote = write;
    return 0;
}

/* Tells the backend what the job now holds; the etag of the index object
 * just written only to a backend that tracks versions (seen). */
static void remember(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                     const struct pipe__dedup_index *prev, const struct pipe_dedup_key *keys,
                     size_t n, const uint8_t *verdicts, bool wrote)
{
    struct pipe_store_obj info;
    const char *etag = NULL;
    if (!d->ops->remember)
        return;
    if (wrote && d->ops->seen && pipe_store_stat(d->store, c->own_key, &info) == 0)
        etag = info.etag;
    d->ops->remember(d, c, prev->keys, prev->count, keys, n, verdicts, etag);
}

/* Under the lease: bring the view up to date, read the job's previous
 * index, classify, write the new index and check the lease held. Into
 * d->verdicts. PIPE__DEDUP_STALE when the view must be rebuilt first (the
 * store untouched then). */
static int claim_locked(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                        const struct pipe__dedup_hours *h, const struct pipe_lease *lease,
                        const struct pipe_dedup_key *keys, size_t n)
{
    int rc;
    bool looked = false, wrote = false;
    struct pipe__dedup_index prev = {0};
    struct asked a = {0};
    struct pipe_buf before, enc;
    pipe_buf_init(&before, INDEX_CAP);
    pipe_buf_init(&enc, INDEX_CAP);
    rc = load_hours(d, c, h, c->own_key, NULL);
    if (rc == 0 && d->ops->check)
        rc = d->ops->check(d, c);
    if (rc != 0)
        goto out;
    rc = pipe__dedup_index_get(d->store, c->own_key, c->job_id, &prev, &before);
    bool existed = rc == 0;
    if (rc == PIPE_ENOTFOUND)
        rc = 0;
    if (rc < 0)
        goto out;
    rc = classify(d, c, &prev, keys, n, d->verdicts, &a);
    if (rc != 0)
        goto out;
    looked = true;
    rc = index_build(c->job_id, &prev, keys, n, d->verdicts, &enc);
    if (rc == 0)
        rc = index_commit(d, lease, c, existed, &before, &enc, &wrote);
    if (rc == 0)
        remember(d, c, &prev, keys, n, d->verdicts, wrote);
out:
    if (rc < 0 && looked && d->ops->forget)
        d->ops->forget(d, c, a.keys, a.n, a.verdicts);
    asked_cleanup(&a);
    pipe__dedup_index_cleanup(&prev);
    pipe_buf_cleanup(&enc);
    pipe_buf_cleanup(&before);
    return rc;
}

/* claim_locked, rebuilding the backend's view when it says it must. */
static int claim_rebuilding(struct pipe_dedup *d, const struct pipe__dedup_claim *c,
                            const struct pipe__dedup_hours *h, struct pipe_lease *lease,
                            const struct pipe_dedup_key *keys, size_t n)
{
    for (int tries = 0;; tries++) {
        int rc = claim_locked(d, c, h, lease, keys, n);
        if (rc != PIPE__DEDUP_STALE)
            return rc;
        if (tries == REBUILD_TRIES || !d->ops->rebuild_begin) {
            pipe_log_error("dedup view keeps being lost", "backend=%s job=%s", d->ops->name,
                           c->job_id);
            return PIPE_EUNAVAIL;
        }
        rc = rebuild(d, c, lease);
        if (rc < 0)
            return rc;
    }
}

/* Times keys.h can name: years 1970..9999. */
static bool time_ok(int64_t ms)
{
    return ms >= 0 && ms < 253402300800000LL;
}

int pipe_dedup_claim(struct pipe_dedup *d, const char *job_id, int64_t hour_ms, int64_t now_ms,
                     const struct pipe_dedup_key *keys, size_t n, uint8_t *verdicts)
{
    int rc;
    struct pipe_lease lease = {0};
    bool held = false;
    struct pipe_buf own;
    if (!d || !job_id || !pipe_keys_name_valid(job_id) || (n && (!keys || !verdicts)) ||
        !time_ok(hour_ms) || !time_ok(now_ms))
        return PIPE_EINVAL;
    if (n == 0)
        return 0; /* nothing to claim, nothing to write */
    if (n > PIPE__DEDUP_MAX_KEYS)
        return PIPE_ETOOBIG;
    pipe_buf_init(&own, PIPE_STORE_KEY_MAX);
    rc = pipe_keys_dedup_index(&own, hour_ms, job_id);
    if (rc < 0)
        goto out;
    int64_t lo_ms = now_ms - d->cfg.window_ms;
    struct pipe__dedup_claim c = {
        .job_id = job_id,
        .own_key = own.data,
        .claim_hour = pipe__dedup_hour(hour_ms),
        .lo_hour = pipe__dedup_hour(lo_ms > 0 ? lo_ms : 0),
        .hi_hour = pipe__dedup_hour(now_ms + PIPE_HOUR_MS),
    };
    struct pipe__dedup_hours h = {0};
    if (n > d->verdicts_cap) {
        pipe_free(d->verdicts);
        d->verdicts = pipe_malloc(n);
        d->verdicts_cap = n;
    }
    if (d->ops->plan)
        d->ops->plan(d, &c, &h);
    /* The bulk of the loading (all of the window after a restart) happens
     * before taking the lease, so other processes wait only for the delta. */
    rc = load_hours(d, &c, &h, c.own_key, NULL);
    if (rc < 0)
        goto out;
    rc = lease_wait(d, &lease);
    if (rc < 0)
        goto out;
    held = true;
    rc = claim_rebuilding(d, &c, &h, &lease, keys, n);
    if (rc == 0)
        memcpy(verdicts, d->verdicts, n);
out:
    if (held) {
        /* The claim is durable once checked; a failed release only makes
         * the next claimant wait for the TTL. */
        int r = pipe_lease_release(d->leases, &lease);
        if (r < 0 && rc == 0)
            pipe_log_warn("dedup lease release failed", "err=\"%s\"", pipe_strerror(r));
    }
    publish(d, rc == 0 ? verdicts : NULL, rc == 0 ? n : 0);
    pipe_buf_cleanup(&own);
    return rc;
}
