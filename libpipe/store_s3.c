/* store_s3 — the `s3://` store backend: objects in an S3 bucket (AWS, MinIO,
 * Ceph RGW, GCS interop, s3rver), optionally under a key prefix that
 * listings strip again. This file parses the URL, finds the credentials and
 * maps the store operations onto S3 requests; store_s3_http.c sends them
 * (libcurl, Signature V4, retries, deadline). The handle holds read-only
 * configuration and a thread-safe credentials cache, so it is safe to
 * share between threads.
 *
 * URL (SPEC §2): s3://BUCKET[/PREFIX][?endpoint=HOST[:PORT]&region=R
 *      &style=path|virtual&tls=0|1&ca=PATH&tls_verify=0|1&retries=N&timeout=MS]
 * Without endpoint= the service is AWS (s3.REGION.amazonaws.com,
 * virtual-host style); with one, path style unless style=virtual. The region
 * is region=, else AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1.
 * Credentials follow the AWS SDKs' chain (aws_creds.h), never the URL.
 *
 * Differences from file://: the etag is S3's (the MD5 of a single-part
 * object), so rewriting identical bytes keeps it; mtime has one-second
 * resolution; there is no PIPE_STORE_CAP_FSYNC, because the durability of an
 * acknowledged put is the server's business. Keys the front end would
 * reject (folder markers such as "raw/", "a//b") are left out of listings.
 * S3 limits a key to 1024 bytes including the prefix. Every object goes up
 * in one PUT: S3 takes up to 5 GiB that way and the combiner's largest
 * output (max_output) defaults to 1 GiB, so multipart upload would add
 * requests and state for no object sluice writes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/aws_sigv4.h"
#include "libpipe/aws_xml.h"
#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/url.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/store_s3_int.h"

#define S3_DEFAULT_RETRIES    5
#define S3_MAX_RETRIES        20
#define S3_DEFAULT_TIMEOUT_MS 30000
#define S3_MIN_TIMEOUT_MS     10
#define S3_MAX_TIMEOUT_MS     PIPE_HOUR_MS
#define S3_PAGE_MAX           1000 /* S3 never returns more keys per request */
#define S3_PREFIX_MAX         512
#define S3_HOST_MAX           255
#define S3_BUCKET_MAX         255
#define S3_PUT_MAX            (5ULL << 30) /* S3's limit on one PUT */

/* The S3 key of a store key; PIPE_EINVAL past S3's 1024-byte limit. */
static int full_key(struct pipe_store *s, const char *op, const char *key, char *out)
{
    struct s3_store *st = s->priv;
    size_t n = st->prefix_len + strlen(key);
    if (n > S3_KEY_MAX) {
        pipe__store_set_error(
            s, "%s %.200s...: S3 key \"%s%.20s...\" would be %zu bytes (S3 allows %d)", op, key,
            st->prefix, key, n, S3_KEY_MAX);
        return PIPE_EINVAL;
    }
    memcpy(out, st->prefix, st->prefix_len);
    memcpy(out + st->prefix_len, key, n - st->prefix_len + 1);
    return 0;
}

/* ---- put / get / stat / delete --------------------------------------- */

/* Runs r (method and body filled in) on key's S3 key; op names it in
 * errors. The results stay in r, its error body is released. */
static int object_call(struct pipe_store *s, const char *op, const char *key, struct s3_req *r)
{
    char fk[S3_KEY_MAX + 1];
    int rc = full_key(s, op, key, fk);
    if (rc < 0)
        return rc;
    r->key = fk;
    r->query = "";
    rc = pipe__s3_call(s, op, key, r);
    r->key = NULL; /* fk ends here */
    pipe_buf_cleanup(&r->resp);
    return rc;
}

/* One PUT whose body is the parts, streamed from where they lie (a
 * combined object's inputs are not joined into one more buffer). */
static int s3_put_parts(struct pipe_store *s, const char *key, const struct pipe_store_part *parts,
                        size_t n, size_t total)
{
    if ((unsigned long long)total > S3_PUT_MAX) {
        pipe__store_set_error(s, "put %s: %zu bytes is over S3's 5 GiB limit for one PUT", key,
                              total);
        return PIPE_ETOOBIG;
    }
    struct s3_req r = {.method = "PUT", .parts = parts, .n_parts = n, .len = total};
    return object_call(s, "put", key, &r);
}

static int s3_put(struct pipe_store *s, const char *key, const void *data, size_t len)
{
    struct pipe_store_part one = {data, len};
    return s3_put_parts(s, key, &one, 1, len);
}

static int s3_get(struct pipe_store *s, const char *key, struct pipe_buf *out)
{
    struct s3_req r = {.method = "GET", .out = out};
    size_t room = out->max - out->len;
    int rc = object_call(s, "get", key, &r);
    if (rc == PIPE_ETOOBIG)
        pipe__store_set_error(s, "get %s: object is larger than the buffer's cap (%zu bytes free)",
                              key, room);
    return rc;
}

static int s3_stat(struct pipe_store *s, const char *key, struct pipe_store_obj *info)
{
    struct s3_req r = {.method = "HEAD"};
    int rc = object_call(s, "stat", key, &r);
    if (rc < 0)
        return rc;
    info->size = r.content_length;
    info->mtime_ms = r.last_modified >= 0 ? r.last_modified * 1000 : 0;
    memcpy(info->etag, r.etag, sizeof info->etag);
    return 0;
}

static int s3_del(struct pipe_store *s, const char *key)
{
    struct s3_req r = {.method = "DELETE"};
    int rc = object_call(s, "delete", key, &r);
    return rc == PIPE_ENOTFOUND ? 0 : rc; /* S3 answers 204 anyway; some servers 404 */
}

/* ---- list ------------------------------------------------------------ */

/* A listing fetches S3 pages (ListObjects, at most 1000 keys each) until it
 * has max_keys items or S3 has no more. Without a delimiter S3 sends no
 * NextMarker, so the next page starts after the last key of this one,
 * counted whether or not it was kept. */
struct s3_list_state {
    struct pipe_store_list *out;
    size_t want; /* items wanted in out */
    size_t items_cap;
    bool truncated;            /* S3 has more after this page */
    bool overflow;             /* server sent more than asked: stop at want */
    bool saw_key;              /* this page had at least one key */
    bool bad;                  /* a malformed entry */
    char last[S3_KEY_MAX + 1]; /* last S3 key of this page */
    const char *prefix;        /* the store's prefix, stripped from keys */
    size_t prefix_len;
    /* the <Contents> being read */
    char key[S3_KEY_MAX + 1];
    bool key_ok;
    uint64_t size;
    int64_t mtime_ms;
    char etag[sizeof((struct pipe_store_obj *)0)->etag];
};

static void list_add(struct s3_list_state *l, const char *rel)
{
    struct pipe_store_obj *o = pipe__store_list_push(l->out, &l->items_cap, l->want);
    o->key = pipe_strdup(rel);
    o->size = l->size;
    o->mtime_ms = l->mtime_ms;
    memcpy(o->etag, l->etag, sizeof o->etag);
}

/* The end of one <Contents>: keep the object if it belongs to the store. */
static void list_contents_end(struct s3_list_state *l)
{
    const char *k = l->key;
    if (!l->key_ok || l->overflow)
        return;
    if (l->out->count == l->want) {
        l->overflow = true;
        return;
    }
    l->saw_key = true;
    snprintf(l->last, sizeof l->last, "%s", k);
    /* Keys outside the prefix cannot come back from S3; keys the front end
     * would refuse (folder markers "x/", "a//b") are not objects of this
     * store and are skipped, as file:// skips its temp files. */
    if (strncmp(k, l->prefix, l->prefix_len) == 0 && pipe_store_key_valid(k + l->prefix_len))
        list_add(l, k + l->prefix_len);
}

static int on_list_xml(void *arg, const char *parent, const char *name, const char *text)
{
    struct s3_list_state *l = arg;
    if (strcmp(parent, "ListBucketResult") == 0) {
        if (strcmp(name, "IsTruncated") == 0)
            l->truncated = strcmp(text, "true") == 0;
        else if (strcmp(name, "Contents") == 0)
            list_contents_end(l);
        return 0;
    }
    if (strcmp(parent, "Contents") != 0)
        return 0;
    if (strcmp(name, "Key") == 0) {
        l->key_ok = strlen(text) <= S3_KEY_MAX;
        snprintf(l->key, sizeof l->key, "%s", l->key_ok ? text : "");
        l->size = 0;
        l->mtime_ms = 0;
        l->etag[0] = '\0';
    } else if (strcmp(name, "Size") == 0) {
        l->size = strtoull(text, NULL, 10);
    } else if (strcmp(name, "LastModified") == 0) {
        int64_t ms = 0;
        if (pipe_clock_parse_rfc3339(text, strlen(text), &ms) == 0)
            l->mtime_ms = ms / 1000 * 1000; /* whole seconds, as stat sees it */
    } else if (strcmp(name, "ETag") == 0) {
        size_t n = strlen(text);
        if (n >= 2 && text[0] == '"' && text[n - 1] == '"')
            snprintf(l->etag, sizeof l->etag, "%.*s", (int)(n - 2), text + 1);
        else
            snprintf(l->etag, sizeof l->etag, "%s", text);
    }
    return 0;
}

/* One ListObjects page after marker (NULL: from the start). */
static int list_page(struct pipe_store *s, const char *prefix, const char *s3_prefix,
                     const char *marker, struct s3_list_state *l)
{
    size_t n = l->want - l->out->count;
    char max[24];
    snprintf(max, sizeof max, "%zu", n < S3_PAGE_MAX ? n : (size_t)S3_PAGE_MAX);
    struct pipe_sigv4_param p[3] = {{"max-keys", max}};
    size_t np = 1;
    if (s3_prefix[0])
        p[np++] = (struct pipe_sigv4_param){"prefix", s3_prefix};
    if (marker)
        p[np++] = (struct pipe_sigv4_param){"marker", marker};
    struct pipe_buf q;
    pipe_buf_init(&q, SIZE_MAX);
    pipe_sigv4_query(&q, p, np);
    struct s3_req r = {.method = "GET", .key = NULL, .query = q.data};
    int rc = pipe__s3_call(s, "list", prefix, &r);
    if (rc == 0) {
        l->truncated = l->overflow = l->saw_key = false;
        l->last[0] = '\0';
        size_t count0 = l->out->count;
        if (pipe_awsxml_parse(r.resp.data ? r.resp.data : "", r.resp.len, on_list_xml, l) < 0) {
            while (l->out->count > count0)
                pipe_free(l->out->items[--l->out->count].key);
            rc = PIPE_EIO;
            pipe__store_set_error(s, "list %s: the listing from %s is not valid XML", prefix,
                                  ((struct s3_store *)s->priv)->endpoint);
        }
    }
    pipe_buf_cleanup(&r.resp);
    pipe_buf_cleanup(&q);
    return rc;
}

static int s3_list(struct pipe_store *s, const char *prefix, const char *start_after,
                   size_t max_keys, struct pipe_store_list *out)
{
    struct s3_store *st = s->priv;
    char *s3_prefix = pipe_asprintf("%s%s", st->prefix, prefix);
    char *marker = start_after[0] ? pipe_asprintf("%s%s", st->prefix, start_after) : NULL;
    struct s3_list_state *l = pipe_calloc(1, sizeof *l);
    *l = (struct s3_list_state){
        .out = out, .want = max_keys, .prefix = st->prefix, .prefix_len = st->prefix_len};
    int rc = 0;
    bool more = true;
    while (more && out->count < max_keys) {
        if ((rc = list_page(s, prefix, s3_prefix, marker, l)) < 0)
            break;
        more = l->truncated || l->overflow;
        if (more && !l->saw_key) { /* "truncated" with no key to go on from */
            rc = PIPE_EIO;
            pipe__store_set_error(s, "list %s: S3 said truncated but sent no keys", prefix);
            break;
        }
        pipe_free(marker);
        marker = pipe_strdup(l->last);
    }
    if (rc < 0) {
        pipe_store_list_cleanup(out);
    } else {
        out->truncated = more;
        if (out->count > 0)
            out->next_marker = pipe_strdup(out->items[out->count - 1].key);
    }
    pipe_free(l);
    pipe_free(marker);
    pipe_free(s3_prefix);
    return rc;
}

/* ---- open / close ---------------------------------------------------- */

struct s3_url {
    char *endpoint, *region, *style, *tls, *ca, *tls_verify, *retries, *timeout;
};

/* HOST, HOST:PORT, [IPv6] or [IPv6]:PORT. */
static bool host_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > S3_HOST_MAX ||
        strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") != n)
        return false;
    const char *colon = strrchr(h, ':');
    const char *bracket = strrchr(h, ']');
    if (h[0] == '[' && (bracket == NULL || (colon && colon < bracket)))
        return bracket && bracket[1] == '\0';
    if (colon == NULL)
        return true;
    size_t digits = strspn(colon + 1, "0123456789");
    return colon > h && digits >= 1 && digits <= 5 && colon[1 + digits] == '\0' &&
           atoi(colon + 1) > 0 && atoi(colon + 1) < 65536;
}

/* Parses an integer option in [lo, hi]; a missing one is dflt. */
static int int_opt(struct pipe_store *s, const char *name, const char *v, long lo, long hi,
                   int dflt, int *out)
{
    if (v == NULL) {
        *out = dflt;
        return 0;
    }
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < lo || n > hi) {
        pipe__store_set_error(s, "s3 store URL: %s=%s: want an integer from %ld to %ld", name, v,
                              lo, hi);
        return PIPE_ECONFIG;
    }
    *out = (int)n;
    return 0;
}

/* Splits the query into u (strings u owns: s3_url_cleanup). Values are
 * used as written. */
static int parse_query(struct pipe_store *s, const char *q, struct s3_url *u)
{
    static const char *const names[] = {"endpoint", "region",     "style",   "tls",
                                        "ca",       "tls_verify", "retries", "timeout"};
    char **slots[] = {&u->endpoint, &u->region,     &u->style,   &u->tls,
                      &u->ca,       &u->tls_verify, &u->retries, &u->timeout};
    struct pipe_url_param p;
    while (pipe_url_query_next(&q, &p)) {
        size_t i = 0;
        while (i < sizeof names / sizeof *names && !pipe_url_param_is(&p, names[i]))
            i++;
        if (i == sizeof names / sizeof *names) {
            pipe__store_set_error(s,
                                  "s3 store URL: unknown parameter \"%.*s\" (known: endpoint, "
                                  "region, style, tls, ca, tls_verify, retries, timeout)",
                                  (int)(p.name_len < 64 ? p.name_len : 64), p.name);
            return PIPE_ECONFIG;
        }
        if (p.value == NULL || p.value_len == 0 || *slots[i] != NULL) {
            pipe__store_set_error(s, "s3 store URL: parameter %s is %s", names[i],
                                  *slots[i] ? "given twice" : "empty");
            return PIPE_ECONFIG;
        }
        *slots[i] = pipe_strndup(p.value, p.value_len);
    }
    return 0;
}

static void s3_url_cleanup(struct s3_url *u)
{
    char *all[] = {u->endpoint, u->region,     u->style,   u->tls,
                   u->ca,       u->tls_verify, u->retries, u->timeout};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        pipe_free(all[i]);
}

static const char *default_region(const char *url_region)
{
    static const char *const vars[] = {"AWS_REGION", "AWS_DEFAULT_REGION"};
    if (url_region)
        return url_region;
    for (size_t i = 0; i < 2; i++)
        if (getenv(vars[i]) && *getenv(vars[i]))
            return getenv(vars[i]);
    return "us-east-1";
}

static bool region_ok(const char *r)
{
    size_t n = strlen(r);
    return n > 0 && n <= 64 && strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* The TLS options: ca= and tls_verify= need tls=1; ca= must be readable. */
static int tls_options(struct pipe_store *s, struct s3_store *st, const struct s3_url *u)
{
    int itls = 1, iverify = 1, rc;
    if ((rc = int_opt(s, "tls", u->tls, 0, 1, 1, &itls)) < 0 ||
        (rc = int_opt(s, "tls_verify", u->tls_verify, 0, 1, 1, &iverify)) < 0)
        return rc;
    st->tls = itls == 1;
    st->verify = iverify == 1;
    if (!st->tls && (u->ca || u->tls_verify)) {
        pipe__store_set_error(s, "s3 store URL: %s= needs tls=1", u->ca ? "ca" : "tls_verify");
        return PIPE_ECONFIG;
    }
    if (u->ca && access(u->ca, R_OK) != 0) {
        pipe__store_set_error(s, "s3 store URL: ca=%.200s: cannot read it: %s", u->ca,
                              strerror(errno));
        return PIPE_ECONFIG;
    }
    st->ca = u->ca ? pipe_strdup(u->ca) : NULL;
    return 0;
}

/* Fills st from the query parameters. */
static int apply_options(struct pipe_store *s, struct s3_store *st, const struct s3_url *u)
{
    int rc = 0;
    if (u->endpoint && !host_ok(u->endpoint)) {
        pipe__store_set_error(s, "s3 store URL: endpoint=%.100s: want HOST or HOST:PORT",
                              u->endpoint);
        return PIPE_ECONFIG;
    }
    const char *region = default_region(u->region);
    if (!region_ok(region)) {
        pipe__store_set_error(s,
                              "s3 store URL: region=%.100s: want a region name such as "
                              "eu-west-1",
                              region);
        return PIPE_ECONFIG;
    }
    if (u->style && strcmp(u->style, "path") != 0 && strcmp(u->style, "virtual") != 0) {
        pipe__store_set_error(s, "s3 store URL: style=%.100s: want path or virtual", u->style);
        return PIPE_ECONFIG;
    }
    if ((rc = tls_options(s, st, u)) < 0 ||
        (rc = int_opt(s, "retries", u->retries, 0, S3_MAX_RETRIES, S3_DEFAULT_RETRIES,
                      &st->retries)) < 0 ||
        (rc = int_opt(s, "timeout", u->timeout, S3_MIN_TIMEOUT_MS, S3_MAX_TIMEOUT_MS,
                      S3_DEFAULT_TIMEOUT_MS, &st->timeout_ms)) < 0)
        return rc;
    st->region = pipe_strdup(region);
    st->endpoint =
        u->endpoint ? pipe_strdup(u->endpoint) : pipe_asprintf("s3.%s.amazonaws.com", st->region);
    /* A custom endpoint rarely has wildcard DNS for bucket subdomains. */
    bool path_style = u->style ? strcmp(u->style, "path") == 0 : u->endpoint != NULL;
    st->host = path_style ? pipe_strdup(st->endpoint)
                          : pipe_asprintf("%s.%s", st->bucket_name, st->endpoint);
    st->path_start = path_style ? pipe_asprintf("/%s", st->bucket_name) : pipe_strdup("");
    st->base_url = pipe_asprintf("%s://%s", st->tls ? "https" : "http", st->host);
    return 0;
}

/* S3's bucket naming rules: 3..63 of [a-z0-9.-], starting and ending with
 * a letter or digit. Path style also admits the legacy upper case and '_'
 * that old buckets and other servers allow. */
static bool bucket_ok(const char *b, bool path_style)
{
    size_t n = strlen(b);
    const char *set = path_style
                          ? "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_"
                          : "abcdefghijklmnopqrstuvwxyz0123456789.-";
    if (n < 3 || n > (path_style ? S3_BUCKET_MAX : 63) || strspn(b, set) != n)
        return false;
    return b[0] != '.' && b[0] != '-' && b[n - 1] != '.' && b[n - 1] != '-' &&
           strstr(b, "..") == NULL;
}

/* The bucket and prefix of a parsed s3:// URL into st; url for messages. */
static int parse_bucket(struct pipe_store *s, const char *url, const struct pipe_url *pu,
                        struct s3_store *st)
{
    if (pu->user || pu->port >= 0) {
        const char *a = url + strlen("s3://");
        pipe__store_set_error(s,
                              "s3 store URL: no user, password or port in \"%.*s\": "
                              "credentials come from AWS_ACCESS_KEY_ID and "
                              "AWS_SECRET_ACCESS_KEY (or the rest of the AWS chain), the host "
                              "from endpoint=",
                              (int)(strcspn(a, "/?") < 100 ? strcspn(a, "/?") : 100), a);
        return PIPE_ECONFIG;
    }
    if (*pu->host == '\0' || strlen(pu->host) > S3_BUCKET_MAX) {
        pipe__store_set_error(s, "store URL \"%.200s\": no bucket (want s3://BUCKET[/PREFIX])",
                              url);
        return PIPE_ECONFIG;
    }
    st->bucket_name = pipe_strdup(pu->host);
    const char *prefix = pu->path[0] == '/' ? pu->path + 1 : pu->path;
    size_t plen = strlen(prefix);
    while (plen > 0 && prefix[plen - 1] == '/')
        plen--;
    st->prefix = pipe_asprintf("%.*s%s", (int)plen, prefix, plen ? "/" : "");
    st->prefix_len = strlen(st->prefix);
    char bare[S3_PREFIX_MAX + 1];
    snprintf(bare, sizeof bare, "%.*s", (int)plen, prefix);
    if (plen > S3_PREFIX_MAX || (plen > 0 && !pipe_store_key_valid(bare))) {
        pipe__store_set_error(s,
                              "s3 store URL: prefix \"%.100s\" is not a valid key path (or is "
                              "over %d bytes)",
                              prefix, S3_PREFIX_MAX);
        return PIPE_ECONFIG;
    }
    return 0;
}

/* s3://BUCKET[/PREFIX][?QUERY]: bucket, prefix (without its slashes) and
 * options into st. */
static int parse_url(struct pipe_store *s, const char *url, struct s3_store *st)
{
    struct s3_url u = {0};
    struct pipe_url pu;
    enum pipe_url_part bad;
    const char *why;
    int rc = pipe_url_parse(url, &pu, &bad, &why);
    if (rc < 0 && bad == PIPE_URL_HOST) {
        pipe__store_set_error(s, "s3 store URL: \"%.200s\" is not a valid bucket name (%s)", url,
                              why);
        return PIPE_ECONFIG;
    }
    if (rc < 0 || strcmp(pu.scheme, "s3") != 0 || pu.fragment) {
        pipe__store_set_error(s, "store URL \"%.200s\": want s3://BUCKET[/PREFIX][?OPTIONS]", url);
        if (rc == 0)
            pipe_url_cleanup(&pu);
        return PIPE_ECONFIG;
    }
    if ((rc = parse_bucket(s, url, &pu, st)) < 0)
        goto out;
    if (pu.query && (rc = parse_query(s, pu.query, &u)) < 0)
        goto out;
    if ((rc = apply_options(s, st, &u)) < 0)
        goto out;
    if (!bucket_ok(st->bucket_name, st->path_start[0] != '\0')) {
        rc = PIPE_ECONFIG;
        pipe__store_set_error(s, "s3 store URL: \"%s\" is not a valid %s-style bucket name",
                              st->bucket_name, st->path_start[0] ? "path" : "virtual-host");
    }
out:
    s3_url_cleanup(&u);
    pipe_url_cleanup(&pu);
    return rc;
}

static void s3_store_free(struct s3_store *st)
{
    if (st == NULL)
        return;
    pipe_awscreds_free(st->creds);
    pipe_free(st->bucket_name);
    pipe_free(st->endpoint);
    pipe_free(st->host);
    pipe_free(st->base_url);
    pipe_free(st->path_start);
    pipe_free(st->region);
    pipe_free(st->prefix);
    pipe_free(st->ca);
    pipe_free(st);
}

static int s3_open(struct pipe_store *s, const char *url)
{
    struct s3_store *st = pipe_calloc(1, sizeof *st);
    char err[PIPE_AWSCREDS_ERR_MAX];
    int rc = parse_url(s, url, st);
    if (rc < 0)
        goto out;
    if (pipe__s3_global_init() < 0) {
        rc = PIPE_EIO;
        pipe__store_set_error(s, "s3 store: libcurl or libsodium initialisation failed");
        goto out;
    }
    if ((rc = pipe_awscreds_new(st->region, &st->creds, err, sizeof err)) < 0) {
        pipe__store_set_error(s, "s3 store: %s", err);
        goto out;
    }
    if (st->tls && !st->verify)
        pipe_log_warn("s3 store: TLS certificates are NOT verified (tls_verify=0): anyone on "
                      "the path can read and forge objects",
                      "bucket=%s endpoint=%s", st->bucket_name, st->endpoint);
    s->priv = st;
    st = NULL;
out:
    s3_store_free(st);
    return rc;
}

static void s3_close(struct pipe_store *s)
{
    s3_store_free(s->priv);
}

const struct pipe_store_ops pipe__store_s3_ops = {
    .scheme = "s3",
    .caps = PIPE_STORE_CAP_ATOMIC_PUT | PIPE_STORE_CAP_MTIME,
    .open = s3_open,
    .close = s3_close,
    .put = s3_put,
    .put_parts = s3_put_parts,
    .get = s3_get,
    .stat = s3_stat,
    .del = s3_del,
    .list = s3_list,
};
