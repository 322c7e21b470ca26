/* dedup_index — the index objects of de-duplication: one per split job in
 * the store (state/dedup/dt=YYYY-MM-DD/hr=HH/<job-id>.idx), the durable
 * record of its claims whatever the backend. Their codec and their reading
 * from the store; the claim protocol that writes them is in dedup.c. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/codec.h"
#include "libpipe/dedup_int.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"

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
