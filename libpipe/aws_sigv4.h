/* aws_sigv4 — AWS Signature Version 4 for S3 requests: the canonical
 * percent-encoding of paths and query strings, and the Authorization header
 * over a request's method, path, query, host, date, payload hash and session
 * token. Pure computation over libsodium's SHA-256 and HMAC-SHA256; the
 * caller sends exactly the path and query strings it had signed. */
#ifndef PIPE_AWS_SIGV4_H
#define PIPE_AWS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libpipe/buf.h"

#define PIPE_SIGV4_HASH_HEX 65 /* 64 hex digits and a NUL */
#define PIPE_SIGV4_DATE_LEN 17 /* "YYYYMMDDTHHMMSSZ" and a NUL */
#define PIPE_SIGV4_AUTH_MAX 512

/* One query parameter, unencoded. */
struct pipe_sigv4_param {
    const char *name, *value;
};

/* What is signed. path and query are as pipe_sigv4_path / pipe_sigv4_query
 * made them; host is the Host header exactly as sent. */
struct pipe_sigv4_req {
    const char *method, *host, *path, *query;
    const char *payload_hash; /* hex SHA-256 of the body */
    const char *region, *service;
    const char *key_id, *secret;
    const char *token; /* NULL or "": no x-amz-security-token */
    int64_t now_ms;    /* wall clock, signs x-amz-date */
};

/* pipe_sigv4_encode — appends n bytes of s to b percent-encoded the way
 * SigV4 wants: A-Z a-z 0-9 - . _ ~ kept, '/' kept when keep_slash, every
 * other byte %XX (upper-case hex). 0 or PIPE_ETOOBIG from the buffer. */
int pipe_sigv4_encode(struct pipe_buf *b, const char *s, size_t n, bool keep_slash);

/* pipe_sigv4_query — appends the canonical query string of params (each
 * name and value encoded, sorted by encoded name, then value) to b; it is
 * both what is signed and what goes on the URL. 0 or PIPE_ETOOBIG. */
int pipe_sigv4_query(struct pipe_buf *b, const struct pipe_sigv4_param *params, size_t n);

/* pipe_sigv4_sha256_hex — the hex SHA-256 of n bytes at p into out. */
void pipe_sigv4_sha256_hex(const void *p, size_t n, char out[PIPE_SIGV4_HASH_HEX]);

/* pipe_sigv4_sign — signs r: writes x-amz-date's value into amz_date and
 * the Authorization header's value into auth (auth_size bytes). Signed
 * headers: host, x-amz-content-sha256, x-amz-date and, with a token,
 * x-amz-security-token; the caller sends all of them with these values.
 * 0, or PIPE_EINVAL if auth is too small or an argument is missing. */
int pipe_sigv4_sign(const struct pipe_sigv4_req *r, char amz_date[PIPE_SIGV4_DATE_LEN], char *auth,
                    size_t auth_size);

#endif
