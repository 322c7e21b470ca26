/* store_s3_int — what the two halves of the s3:// backend share: the
 * handle's configuration (store_s3.c parses it) and one signed HTTP request
 * with retries (store_s3_http.c runs it). Not for anything else. */
#ifndef PIPE_STORE_S3_INT_H
#define PIPE_STORE_S3_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "libpipe/aws_creds.h"
#include "libpipe/buf.h"
#include "libpipe/store_int.h"

#define S3_KEY_MAX    1024 /* S3's limit on a key, prefix included */
#define S3_ERRMSG_MAX 512
#define S3_RESP_MAX   (16 * 1024 * 1024) /* a listing page of 1000 long keys fits */

/* Read-only after open: shared by every thread. */
struct s3_store {
    char *bucket_name;
    char *endpoint;   /* HOST[:PORT] of the service, for messages */
    char *host;       /* the Host header: endpoint, or BUCKET.endpoint (virtual) */
    char *base_url;   /* scheme://host */
    char *path_start; /* "" (virtual) or "/BUCKET" (path style) */
    char *region;
    char *prefix; /* "" or "some/prefix/" */
    size_t prefix_len;
    char *ca; /* NULL: the system CA store only */
    bool tls, verify;
    int retries;
    int timeout_ms;
    struct pipe_awscreds *creds;
};

/* One S3 request, the same for every attempt. */
struct s3_req {
    const char *method;                  /* GET HEAD PUT DELETE */
    const char *key;                     /* full S3 key (prefix included); NULL: the bucket */
    const char *query;                   /* canonical query string, "" for none */
    const struct pipe_store_part *parts; /* PUT body: their bytes in order, */
    size_t n_parts;                      /* len in all (streamed, not joined) */
    size_t len;
    struct pipe_buf *out; /* GET: where a 2xx body goes (appended) */
    /* results of the last attempt */
    long http;     /* status; 0 if none arrived */
    int curl_code; /* CURLcode */
    int creds_rc;  /* with CURLE_LOGIN_DENIED: why no credentials */
    bool timed_out, too_big, cut_short;
    uint64_t content_length;
    int64_t last_modified; /* seconds since the epoch; -1 if unknown */
    char etag[sizeof((struct pipe_store_obj *)0)->etag];
    struct pipe_buf resp; /* a non-GET or error body */
    char code[64];        /* S3 error code from the body, "" if none */
    char message[S3_ERRMSG_MAX];
    /* private to store_s3_http.c */
    size_t part, off, len0; /* PUT: the part being sent and the offset in it */
    int64_t progress_ms;
};

/* pipe__s3_call — runs r (op and key name it in error messages) until it
 * succeeds, fails for good or has used its retries: transient failures
 * (connection errors, timeouts, 5xx, SlowDown, a body cut short) are
 * retried with capped full-jitter backoff. 0 on a 2xx answer, else a
 * PIPE_E* code with pipe_store_last_error set. r->resp holds a 2xx body of
 * a request without out; the caller cleans it up (pipe_buf_cleanup). */
int pipe__s3_call(struct pipe_store *s, const char *op, const char *key, struct s3_req *r);

/* pipe__s3_global_init — curl and libsodium, once per process; 0 or
 * PIPE_EIO. */
int pipe__s3_global_init(void);

#endif
