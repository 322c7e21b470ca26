/* dedup — the generic front end of the de-duplication backends: URL
 * dispatch, configuration defaults, argument checks, key hashing and the
 * counters, plus the index object codec that every backend shares (the
 * index objects in the store are the durable record, whatever the backend). */
#include "libpipe/dedup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/dedup_int.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/lease.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"

#define DEFAULT_WINDOW_MS (24LL * 3600 * 1000)
#define DEFAULT_TTL_MS    (30LL * 1000)
#define DEFAULT_WAIT_MS   (60LL * 1000)
#define WINDOW_MAX_MS     (400LL * 24 * 3600 * 1000) /* a year and then some */
#define WAIT_MAX_MS       (3600LL * 1000)
#define PAUSE_MIN_MS      2 /* between tries for the claim lease */
#define PAUSE_MAX_MS      50

/* Every backend built into the library. dedup_redis.c adds its entry here. */
static const struct pipe_dedup_ops *const backends[] = {
    &pipe__dedup_local_ops,
    &pipe__dedup_redis_ops,
};

static const struct pipe_dedup_ops *find_backend(const char *url)
{
    size_t n = strcspn(url, ":");
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        for (const char *const *s = backends[i]->schemes; *s; s++)
            if (strlen(*s) == n && memcmp(*s, url, n) == 0)
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
    if (c.window_ms < 0 || c.window_ms > WINDOW_MAX_MS) {
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
    pipe_free(d);
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
    if (!d || !job_id || !pipe_keys_name_valid(job_id) || (n && (!keys || !verdicts)) ||
        !time_ok(hour_ms) || !time_ok(now_ms))
        return PIPE_EINVAL;
    if (n == 0)
        return 0; /* nothing to claim, nothing to write */
    if (n > PIPE__DEDUP_MAX_KEYS)
        return PIPE_ETOOBIG;
    rc = d->ops->claim(d, job_id, hour_ms, now_ms, keys, n, verdicts);
    if (rc < 0)
        goto out;
    uint64_t c[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++)
        c[verdicts[i] <= PIPE_DEDUP_DUP ? verdicts[i] : PIPE_DEDUP_DUP]++;
    atomic_fetch_add_explicit(&d->n_fresh, c[PIPE_DEDUP_NEW], memory_order_relaxed);
    atomic_fetch_add_explicit(&d->n_mine, c[PIPE_DEDUP_MINE], memory_order_relaxed);
    atomic_fetch_add_explicit(&d->n_dups, c[PIPE_DEDUP_DUP], memory_order_relaxed);
out:
    return rc;
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

/* ---- index objects ------------------------------------------------------ */

int pipe__dedup_key_cmp(const void *a, const void *b)
{
    const struct pipe_dedup_key *x = a, *y = b;
    if (x->hi != y->hi)
        return x->hi < y->hi ? -1 : 1;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return 0;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int pipe__dedup_index_encode(const char *job_id, const struct pipe_dedup_key *keys, size_t n,
                             struct pipe_buf *out)
{
    int rc;
    struct pipe_zwriter *w = NULL;
    struct pipe_buf tmp;
    pipe_buf_init(&tmp, out->max);
    size_t idlen = job_id ? strlen(job_id) : 0;
    if (!job_id || !pipe_keys_name_valid(job_id) || (n && !keys)) {
        rc = PIPE_EINVAL;
        goto out;
    }
    if (n > PIPE__DEDUP_MAX_KEYS) {
        rc = PIPE_ETOOBIG;
        goto out;
    }
    unsigned char hdr[PIPE__DEDUP_HEADER_LEN];
    memcpy(hdr, PIPE__DEDUP_INDEX_MAGIC, 4);
    hdr[4] = PIPE__DEDUP_INDEX_VER;
    hdr[5] = 0;
    hdr[6] = (unsigned char)(idlen >> 8);
    hdr[7] = (unsigned char)idlen;
    put_be64(hdr + 8, n);
    rc = pipe_zwriter_new(PIPE_CODEC_LEVEL_DEFAULT, &tmp, &w);
    if (rc < 0)
        goto out;
    rc = pipe_zwriter_write(w, hdr, sizeof hdr);
    if (rc == 0)
        rc = pipe_zwriter_write(w, job_id, idlen);
    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char k[16];
        put_be64(k, keys[i].hi);
        put_be64(k + 8, keys[i].lo);
        rc = pipe_zwriter_write(w, k, sizeof k);
    }
    if (rc == 0)
        rc = pipe_zwriter_finish(w);
    if (rc < 0)
        goto out;
    pipe_buf_reset(out);
    rc = pipe_buf_append(out, tmp.data, tmp.len);
out:
    pipe_zwriter_free(w);
    pipe_buf_cleanup(&tmp);
    return rc;
}

/* Parses the decompressed bytes. Every size comes from the input, so each
 * is checked against the bytes actually present before it is used. */
static int index_parse(const unsigned char *p, size_t len, const char *expect_job,
                       struct pipe__dedup_index *out)
{
    if (len < PIPE__DEDUP_HEADER_LEN || memcmp(p, PIPE__DEDUP_INDEX_MAGIC, 4) != 0 ||
        p[4] != PIPE__DEDUP_INDEX_VER || p[5] != 0)
        return PIPE_ECORRUPT;
    size_t idlen = (size_t)p[6] << 8 | p[7];
    uint64_t count = get_be64(p + 8);
    size_t body = len - PIPE__DEDUP_HEADER_LEN;
    if (idlen == 0 || idlen >= sizeof out->job_id || idlen > body || (body - idlen) % 16 != 0 ||
        count != (body - idlen) / 16 || count > PIPE__DEDUP_MAX_KEYS)
        return PIPE_ECORRUPT;
    char job[sizeof out->job_id];
    memcpy(job, p + PIPE__DEDUP_HEADER_LEN, idlen);
    job[idlen] = '\0';
    if (!pipe_keys_name_valid(job) || (expect_job && strcmp(job, expect_job) != 0))
        return PIPE_ECORRUPT;
    const unsigned char *k = p + PIPE__DEDUP_HEADER_LEN + idlen;
    struct pipe_dedup_key *keys = count ? pipe_malloc((size_t)count * sizeof *keys) : NULL;
    for (size_t i = 0; i < count; i++, k += 16) {
        keys[i].hi = get_be64(k);
        keys[i].lo = get_be64(k + 8);
        /* Sorted and distinct is part of the format: readers bsearch it. */
        if (i && pipe__dedup_key_cmp(&keys[i - 1], &keys[i]) >= 0) {
            pipe_free(keys);
            return PIPE_ECORRUPT;
        }
    }
    memcpy(out->job_id, job, idlen + 1);
    out->keys = keys;
    out->count = (size_t)count;
    return 0;
}

int pipe__dedup_index_decode(const void *data, size_t len, const char *expect_job,
                             struct pipe__dedup_index *out)
{
    int rc;
    struct pipe_buf plain;
    /* The cap bounds memory whatever the frame declares. */
    pipe_buf_init(&plain, PIPE__DEDUP_HEADER_LEN + 256 + (size_t)PIPE__DEDUP_MAX_KEYS * 16);
    if (!pipe_codec_is_zstd(data, len)) {
        rc = PIPE_ECORRUPT;
        goto out;
    }
    rc = pipe_codec_decompress(data, len, &plain);
    if (rc < 0) {
        rc = PIPE_ECORRUPT; /* too big is as wrong as undecodable here */
        goto out;
    }
    rc = index_parse((const unsigned char *)plain.data, plain.len, expect_job, out);
out:
    pipe_buf_cleanup(&plain);
    return rc;
}

void pipe__dedup_index_cleanup(struct pipe__dedup_index *ix)
{
    if (!ix)
        return;
    pipe_free(ix->keys);
    ix->keys = NULL;
    ix->count = 0;
}

int pipe__dedup_index_get(struct pipe_store *s, const char *key, const char *expect_job,
                          struct pipe__dedup_index *out, struct pipe_buf *raw)
{
    int rc;
    struct pipe_buf b;
    /* zstd adds little to incompressible data; 1 MiB of slack is plenty. */
    pipe_buf_init(&b,
                  PIPE__DEDUP_HEADER_LEN + 256 + (size_t)PIPE__DEDUP_MAX_KEYS * 16 + (1u << 20));
    rc = pipe_store_get(s, key, &b);
    if (rc == PIPE_ETOOBIG)
        rc = PIPE_ECORRUPT;
    if (rc < 0)
        goto out;
    rc = pipe__dedup_index_decode(b.data, b.len, expect_job, out);
    if (rc < 0)
        goto out;
    if (raw) {
        pipe_buf_reset(raw);
        rc = pipe_buf_append(raw, b.data, b.len);
        if (rc < 0)
            pipe__dedup_index_cleanup(out);
    }
out:
    if (rc == PIPE_ECORRUPT)
        pipe_log_error("corrupt dedup index object", "key=\"%s\"", key);
    pipe_buf_cleanup(&b);
    return rc;
}

bool pipe__dedup_job_of_key(const char *key, char job[256])
{
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    size_t n = strlen(base);
    if (n <= 4 || n - 4 >= 256 || strcmp(base + n - 4, ".idx") != 0)
        return false;
    char tmp[256];
    memcpy(tmp, base, n - 4);
    tmp[n - 4] = '\0';
    if (!pipe_keys_name_valid(tmp))
        return false;
    memcpy(job, tmp, n - 3);
    return true;
}

/* ---- what every backend's claim does ------------------------------------ */

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int pipe__dedup_lease_wait(struct pipe_dedup *d, struct pipe_lease *l)
{
    int64_t deadline = pipe_clock_mono_ms() + d->cfg.wait_ms;
    int64_t pause = PAUSE_MIN_MS;
    for (;;) {
        int rc = pipe_lease_acquire(d->leases, PIPE__DEDUP_LEASE, d->cfg.lease_ttl_ms, l);
        if (rc != PIPE_EBUSY)
            return rc;
        int64_t left = deadline - pipe_clock_mono_ms();
        if (left <= 0)
            return PIPE_EBUSY;
        sleep_ms(pause < left ? pause : left);
        pause = pause * 2 < PAUSE_MAX_MS ? pause * 2 : PAUSE_MAX_MS;
    }
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

int pipe__dedup_index_commit(struct pipe_dedup *d, const struct pipe_lease *lease,
                             const char *job_id, const char *key, bool existed,
                             const struct pipe_buf *before, const struct pipe_buf *enc, bool *wrote)
{
    bool write =
        !existed || before->len != enc->len || memcmp(before->data, enc->data, enc->len) != 0;
    *wrote = false;
    if (write) {
        int rc = pipe_store_put(d->store, key, enc->data, enc->len);
        if (rc < 0)
            return rc;
    }
    int rc = pipe_lease_check(d->leases, lease);
    if (rc < 0) {
        pipe_log_warn("dedup lease lost before claim was committed", "job=%s err=\"%s\"", job_id,
                      pipe_strerror(rc));
        if (write)
            index_undo(d, key, existed, before);
        return rc;
    }
    *wrote = write;
    return 0;
}

int pipe__dedup_index_build(const char *job_id, const struct pipe__dedup_index *prev,
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
        qsort(all, k, sizeof *all, pipe__dedup_key_cmp);
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
