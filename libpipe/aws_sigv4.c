/* aws_sigv4 — Signature Version 4 as S3 specifies it (see aws_sigv4.h).
 * sluice signs every S3 request here rather than through libcurl's
 * CURLOPT_AWS_SIGV4: curl 7.88 (Debian 12) sends no x-amz-content-sha256,
 * and its canonical query string is built from the URL as given, with known
 * mistakes on '=' inside values, empty values and sorting; S3's canonical
 * URI and query are simple enough to build once, correctly, and then send
 * exactly what was signed. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libpipe/aws_sigv4.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int pipe_sigv4_encode(struct pipe_buf *b, const char *s, size_t n, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            rc = pipe_buf_append_char(b, (char)c);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = pipe_buf_append(b, esc, 3);
        }
    }
    return rc;
}

struct enc_param {
    char *name, *value;
};

static int enc_param_cmp(const void *a, const void *b)
{
    const struct enc_param *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static char *encode_dup(const char *s)
{
    struct pipe_buf b;
    pipe_buf_init(&b, 4 * 3 * 1024 + 1); /* a key or marker of 1024 bytes, encoded */
    if (pipe_sigv4_encode(&b, s, strlen(s), false) < 0) {
        pipe_buf_cleanup(&b);
        return NULL;
    }
    char *e = pipe_buf_steal(&b, NULL);
    return e ? e : pipe_strdup("");
}

int pipe_sigv4_query(struct pipe_buf *b, const struct pipe_sigv4_param *params, size_t n)
{
    int rc = 0;
    struct enc_param *e = pipe_calloc(n ? n : 1, sizeof *e);
    for (size_t i = 0; i < n; i++) {
        e[i].name = encode_dup(params[i].name);
        e[i].value = encode_dup(params[i].value ? params[i].value : "");
        if (e[i].name == NULL || e[i].value == NULL)
            rc = PIPE_ETOOBIG;
    }
    if (rc == 0) {
        qsort(e, n, sizeof *e, enc_param_cmp);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = pipe_buf_printf(b, "%s%s=%s", i ? "&" : "", e[i].name, e[i].value);
    }
    for (size_t i = 0; i < n; i++) {
        pipe_free(e[i].name);
        pipe_free(e[i].value);
    }
    pipe_free(e);
    return rc;
}

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void pipe_sigv4_sha256_hex(const void *p, size_t n, char out[PIPE_SIGV4_HASH_HEX])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, p, n);
    to_hex(h, sizeof h, out);
}

static void hmac(unsigned char out[crypto_auth_hmacsha256_BYTES], const unsigned char *key,
                 size_t key_len, const char *msg)
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, key_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, strlen(msg));
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof st);
}

/* The signing key: HMAC chain over "AWS4" + secret, date, region, service
 * and "aws4_request". */
static void signing_key(const struct pipe_sigv4_req *r, const char *day,
                        unsigned char out[crypto_auth_hmacsha256_BYTES])
{
    char *k0 = pipe_asprintf("AWS4%s", r->secret);
    unsigned char a[crypto_auth_hmacsha256_BYTES], b[crypto_auth_hmacsha256_BYTES];
    hmac(a, (const unsigned char *)k0, strlen(k0), day);
    hmac(b, a, sizeof a, r->region);
    hmac(a, b, sizeof b, r->service);
    hmac(out, a, sizeof a, "aws4_request");
    sodium_memzero(k0, strlen(k0));
    sodium_memzero(a, sizeof a);
    sodium_memzero(b, sizeof b);
    pipe_free(k0);
}

int pipe_sigv4_sign(const struct pipe_sigv4_req *r, char amz_date[PIPE_SIGV4_DATE_LEN], char *auth,
                    size_t auth_size)
{
    if (!r->method || !r->host || !r->path || !r->query || !r->payload_hash || !r->region ||
        !r->service || !r->key_id || !r->secret)
        return PIPE_EINVAL;
    bool tok = r->token && r->token[0];
    time_t t = (time_t)(r->now_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[PIPE_SIGV4_DATE_LEN], day[9];
    strftime(date, sizeof date, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(day, sizeof day, "%.8s", date);
    const char *signed_headers = tok ? "host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
                                     : "host;x-amz-content-sha256;x-amz-date";
    char *canon = pipe_asprintf("%s\n%s\n%s\nhost:%s\nx-amz-content-sha256:%s\nx-amz-date:%s\n"
                                "%s%s%s\n%s\n%s",
                                r->method, r->path, r->query, r->host, r->payload_hash, date,
                                tok ? "x-amz-security-token:" : "", tok ? r->token : "",
                                tok ? "\n" : "", signed_headers, r->payload_hash);
    char canon_hash[PIPE_SIGV4_HASH_HEX];
    pipe_sigv4_sha256_hex(canon, strlen(canon), canon_hash);
    pipe_free(canon);
    char *scope = pipe_asprintf("%s/%s/%s/aws4_request", day, r->region, r->service);
    char *sts = pipe_asprintf("AWS4-HMAC-SHA256\n%s\n%s\n%s", date, scope, canon_hash);
    unsigned char key[crypto_auth_hmacsha256_BYTES], sig[crypto_auth_hmacsha256_BYTES];
    signing_key(r, day, key);
    hmac(sig, key, sizeof key, sts);
    sodium_memzero(key, sizeof key);
    char sig_hex[2 * sizeof sig + 1];
    to_hex(sig, sizeof sig, sig_hex);
    int n = snprintf(auth, auth_size,
                     "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s", r->key_id,
                     scope, signed_headers, sig_hex);
    pipe_free(scope);
    pipe_free(sts);
    if (n < 0 || (size_t)n >= auth_size)
        return PIPE_EINVAL;
    memcpy(amz_date, date, sizeof date);
    return 0;
}
