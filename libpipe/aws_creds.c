/* aws_creds — the AWS credential chain (see aws_creds.h for the order).
 * The source that answered first is kept for the life of the handle, as
 * the SDKs do; temporary credentials from it are fetched again before they
 * expire, under the handle's mutex, so one thread refreshes while the
 * others wait for the result instead of all asking at once. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/aws_creds.h"
#include "libpipe/aws_sigv4.h"
#include "libpipe/aws_xml.h"
#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"

#define CREDS_BODY_MAX        (64 * 1024)
#define CREDS_FILE_MAX        (1024 * 1024)
#define CREDS_HTTP_TIMEOUT_MS 5000
#define CREDS_IMDS_TIMEOUT_MS 1000 /* off EC2 nobody answers: do not wait long */
#define CREDS_MARGIN_MS       (5 * 60 * 1000)
#define CREDS_ECS_HOST        "http://169.254.170.2"
#define CREDS_IMDS_HOST       "http://169.254.169.254"

struct pipe_awscreds {
    pthread_mutex_t mu;
    char *region;
    int source; /* index into sources[] once one answered */
    struct pipe_awscreds_value cur;
    int64_t refresh_at_ms; /* wall clock; 0: never */
};

/* A source: 0 with v filled, 1 when not configured here (try the next),
 * or a PIPE_E* code with err set. */
typedef int (*source_fn)(const struct pipe_awscreds *c, struct pipe_awscreds_value *v, char *err,
                         size_t n);

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int fail(char *err, size_t n, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t n, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return rc;
}

/* Puts "where: " in front of the reason already in err. */
static void prefix_err(char *err, size_t n, const char *where)
{
    char why[PIPE_AWSCREDS_ERR_MAX];
    snprintf(why, sizeof why, "%s", err);
    snprintf(err, n, "%s: %s", where, why);
}

/* Whether s holds a control character (CR, LF, TAB, DEL, ...). */
static bool has_control(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Copies the three strings into v, refusing ones that do not fit. The key
 * id and the token go into request headers, where a CR or LF would end the
 * header and start another: no credential holds a control character. */
static int fill(struct pipe_awscreds_value *v, const char *id, const char *secret,
                const char *token, char *err, size_t n)
{
    if (id == NULL || secret == NULL || !*id || !*secret)
        return fail(err, n, PIPE_ECONFIG, "no access key id or secret access key in the answer");
    if (strlen(id) >= sizeof v->key_id || strlen(secret) >= sizeof v->secret ||
        (token && strlen(token) >= sizeof v->token))
        return fail(err, n, PIPE_ECONFIG, "a credential is longer than sluice accepts");
    if (has_control(id) || has_control(secret) || has_control(token))
        return fail(err, n, PIPE_ECONFIG, "a credential holds a control character");
    snprintf(v->key_id, sizeof v->key_id, "%s", id);
    snprintf(v->secret, sizeof v->secret, "%s", secret);
    snprintf(v->token, sizeof v->token, "%s", token ? token : "");
    return 0;
}

/* The answer's expiration into *ms. Credentials that have already expired
 * are refused, as the SDKs do: S3 would refuse them, and handing them out
 * would make every request fetch again (an expiry of 1970-01-01T00:00:00Z
 * would even read as "never", 0). PIPE_EUNAVAIL: the endpoint may have
 * fresh ones later. */
static int parse_expiry(const char *s, int64_t *ms, char *err, size_t n)
{
    int64_t at, now = pipe_clock_now_ms();
    if (s == NULL || pipe_clock_parse_rfc3339(s, strlen(s), &at) < 0)
        return fail(err, n, PIPE_ECONFIG, "expiration \"%.40s\" is not an RFC 3339 time",
                    s ? s : "");
    if (at <= now) {
        char clock[PIPE_CLOCK_RFC3339_LEN + 1];
        pipe_clock_format_rfc3339(now, clock);
        return fail(err, n, PIPE_EUNAVAIL, "the credentials expired at %.40s (the clock says %s)",
                    s, clock);
    }
    *ms = at;
    return 0;
}

/* ---- HTTP for the endpoints ------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    return pipe_buf_append(arg, p, size * nmemb) < 0 ? 0 : size * nmemb;
}

/* One request; fills out with the body and *status. PIPE_EUNAVAIL when
 * nothing answered. */
static int http_call(const char *method, const char *url, struct curl_slist *hdrs, const char *body,
                     long timeout_ms, struct pipe_buf *out, long *status, char *err, size_t n)
{
    int rc = 0;
    char cerr[CURL_ERROR_SIZE] = "";
    CURL *h = curl_easy_init();
    if (h == NULL)
        return fail(err, n, PIPE_EUNAVAIL, "curl_easy_init failed");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    else if (strcmp(method, "PUT") == 0)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK)
        rc = fail(err, n, PIPE_EUNAVAIL, "%s %s: %s", method, url,
                  cerr[0] ? cerr : curl_easy_strerror(cc));
    else
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    return rc;
}

/* Reads a whole small file into a NUL-terminated string (caller frees). */
static int read_small_file(const char *path, char **out, char *err, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return fail(err, n, -errno, "cannot read %s: %s", path, strerror(errno));
    struct pipe_buf b;
    pipe_buf_init(&b, CREDS_FILE_MAX);
    char chunk[4096];
    size_t got;
    int rc = 0;
    while (rc == 0 && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = pipe_buf_append(&b, chunk, got);
    fclose(f);
    if (rc < 0) {
        pipe_buf_cleanup(&b);
        return fail(err, n, PIPE_ECONFIG, "%s is larger than %d bytes", path, CREDS_FILE_MAX);
    }
    *out = b.data ? pipe_buf_steal(&b, NULL) : pipe_strdup("");
    return 0;
}

/* Credentials in the JSON the container endpoint and IMDS answer with. A
 * body that is not JSON is a broken source (PIPE_ECONFIG, as aws_creds.h
 * promises), not a parse error of what the caller is storing. */
static int from_json(const char *body, struct pipe_awscreds_value *v, char *err, size_t n)
{
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    int rc = 0;
    if (!json_is_object(j)) {
        rc = fail(err, n, PIPE_ECONFIG, "answer is not a JSON object: %s",
                  j ? "another JSON value" : je.text);
        goto out;
    }
    const char *code = json_string_value(json_object_get(j, "Code"));
    if (code && strcmp(code, "Success") != 0) {
        rc = fail(err, n, PIPE_ECONFIG, "answer says Code %.64s", code);
        goto out;
    }
    rc = fill(v, json_string_value(json_object_get(j, "AccessKeyId")),
              json_string_value(json_object_get(j, "SecretAccessKey")),
              json_string_value(json_object_get(j, "Token")), err, n);
    const char *exp = json_string_value(json_object_get(j, "Expiration"));
    if (rc == 0 && exp)
        rc = parse_expiry(exp, &v->expires_ms, err, n);
out:
    json_decref(j);
    return rc;
}

/* ---- the sources ------------------------------------------------------ */

static int src_env(const struct pipe_awscreds *c, struct pipe_awscreds_value *v, char *err,
                   size_t n)
{
    (void)c;
    const char *id = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
    if (id == NULL && secret == NULL)
        return 1;
    if (id == NULL || secret == NULL)
        return fail(err, n, PIPE_ECONFIG, "%s is not set (but %s is)",
                    id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID",
                    id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY");
    return fill(v, id, secret, env("AWS_SESSION_TOKEN"), err, n);
}

struct sts_answer {
    char *id, *secret, *token, *expiry, *code, *message;
};

static int on_sts(void *arg, const char *parent, const char *name, const char *text)
{
    struct sts_answer *a = arg;
    char **slot = NULL;
    if (strcmp(parent, "Credentials") == 0) {
        if (strcmp(name, "AccessKeyId") == 0)
            slot = &a->id;
        else if (strcmp(name, "SecretAccessKey") == 0)
            slot = &a->secret;
        else if (strcmp(name, "SessionToken") == 0)
            slot = &a->token;
        else if (strcmp(name, "Expiration") == 0)
            slot = &a->expiry;
    } else if (strcmp(parent, "Error") == 0) {
        slot = strcmp(name, "Code") == 0      ? &a->code
               : strcmp(name, "Message") == 0 ? &a->message
                                              : NULL;
    }
    if (slot && *slot == NULL)
        *slot = pipe_strdup(text);
    return 0;
}

/* POSTs AssumeRoleWithWebIdentity (unsigned: the token is the proof) and
 * reads the XML answer. */
static int sts_assume(const struct pipe_awscreds *c, const char *token, const char *role,
                      struct pipe_awscreds_value *v, char *err, size_t n)
{
    char session[64];
    const char *name = env("AWS_ROLE_SESSION_NAME");
    if (name == NULL) {
        snprintf(session, sizeof session, "sluice-%ld-%lld", (long)getpid(),
                 (long long)pipe_clock_now_ms());
        name = session;
    }
    const struct pipe_sigv4_param p[] = {
        {"Action", "AssumeRoleWithWebIdentity"},
        {"Version", "2011-06-15"},
        {"RoleArn", role},
        {"RoleSessionName", name},
        {"WebIdentityToken", token},
    };
    struct pipe_buf form, body;
    pipe_buf_init(&form, SIZE_MAX);
    pipe_buf_init(&body, CREDS_BODY_MAX);
    struct sts_answer a = {0};
    char *url = env("AWS_ENDPOINT_URL_STS")
                    ? pipe_strdup(env("AWS_ENDPOINT_URL_STS"))
                    : pipe_asprintf("https://sts.%s.amazonaws.com", c->region);
    struct curl_slist *h =
        curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
    long status = 0;
    int rc = pipe_sigv4_query(&form, p, sizeof p / sizeof *p);
    if (rc == 0)
        rc = http_call("POST", url, h, form.data, CREDS_HTTP_TIMEOUT_MS, &body, &status, err, n);
    if (rc == 0 && pipe_awsxml_parse(body.data, body.len, on_sts, &a) < 0)
        rc = fail(err, n, status >= 500 ? PIPE_EUNAVAIL : PIPE_ECONFIG,
                  "STS at %s answered HTTP %ld without XML", url, status);
    else if (rc == 0 && status != 200)
        rc = fail(err, n, status >= 500 || status == 429 ? PIPE_EUNAVAIL : PIPE_ECONFIG,
                  "STS at %s: %s (HTTP %ld): %.200s", url, a.code ? a.code : "error", status,
                  a.message ? a.message : "");
    if (rc == 0 && (rc = fill(v, a.id, a.secret, a.token, err, n)) == 0)
        rc = parse_expiry(a.expiry, &v->expires_ms, err, n);
    if (a.secret)
        sodium_memzero(a.secret, strlen(a.secret));
    pipe_free(a.id), pipe_free(a.secret), pipe_free(a.token), pipe_free(a.expiry);
    pipe_free(a.code), pipe_free(a.message);
    curl_slist_free_all(h);
    pipe_free(url);
    pipe_buf_cleanup(&form);
    pipe_buf_cleanup(&body);
    return rc;
}

static int src_web_identity(const struct pipe_awscreds *c, struct pipe_awscreds_value *v, char *err,
                            size_t n)
{
    const char *file = env("AWS_WEB_IDENTITY_TOKEN_FILE"), *role = env("AWS_ROLE_ARN");
    if (file == NULL && role == NULL)
        return 1;
    if (file == NULL || role == NULL)
        return fail(err, n, PIPE_ECONFIG, "web identity: %s is not set (but %s is)",
                    file ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE",
                    file ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN");
    char *token = NULL;
    /* Read every time: the kubelet rotates the projected token file. */
    int rc = read_small_file(file, &token, err, n);
    if (rc < 0)
        return rc == -ENOENT ? PIPE_ECONFIG : rc;
    size_t len = strlen(token);
    while (len > 0 && strchr(" \t\r\n", token[len - 1]))
        token[--len] = '\0';
    rc = sts_assume(c, token, role, v, err, n);
    pipe_free(token);
    return rc;
}

/* The value of key in [profile] of an INI text, or NULL (caller frees). */
static char *ini_value(const char *text, const char *profile, const char *key)
{
    bool in = false;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *l = pipe_strndup(line, len), *s = l;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t sl = strlen(s);
        while (sl > 0 && strchr(" \t\r", s[sl - 1]))
            s[--sl] = '\0';
        char *found = NULL;
        if (s[0] == '[' && sl >= 2 && s[sl - 1] == ']') {
            s[sl - 1] = '\0';
            char *name = s + 1;
            while (*name == ' ')
                name++;
            size_t nl = strlen(name);
            while (nl > 0 && name[nl - 1] == ' ')
                name[--nl] = '\0';
            in = strcmp(name, profile) == 0;
        } else if (in && s[0] != '#' && s[0] != ';') {
            char *eq = strchr(s, '=');
            char *k_end = eq;
            while (k_end && k_end > s && (k_end[-1] == ' ' || k_end[-1] == '\t'))
                k_end--;
            if (eq && (size_t)(k_end - s) == strlen(key) && strncmp(s, key, strlen(key)) == 0) {
                char *val = eq + 1;
                while (*val == ' ' || *val == '\t')
                    val++;
                found = pipe_strdup(val);
            }
        }
        pipe_free(l);
        if (found)
            return found;
        line = end ? end + 1 : NULL;
    }
    return NULL;
}

static int src_shared_file(const struct pipe_awscreds *c, struct pipe_awscreds_value *v, char *err,
                           size_t n)
{
    (void)c;
    char *path = env("AWS_SHARED_CREDENTIALS_FILE")
                     ? pipe_strdup(env("AWS_SHARED_CREDENTIALS_FILE"))
                     : (env("HOME") ? pipe_asprintf("%s/.aws/credentials", env("HOME")) : NULL);
    const char *profile = env("AWS_PROFILE") ? env("AWS_PROFILE") : "default";
    char *text = NULL;
    int rc = 1;
    if (path == NULL || access(path, F_OK) != 0)
        goto out; /* no file: not configured */
    if ((rc = read_small_file(path, &text, err, n)) < 0)
        goto out;
    char *id = ini_value(text, profile, "aws_access_key_id");
    char *secret = ini_value(text, profile, "aws_secret_access_key");
    char *token = ini_value(text, profile, "aws_session_token");
    if (id == NULL && secret == NULL)
        rc = env("AWS_PROFILE")
                 ? fail(err, n, PIPE_ECONFIG, "profile \"%.64s\" has no keys in %s", profile, path)
                 : 1;
    else if ((rc = fill(v, id, secret, token, err, n)) < 0) {
        char where[PIPE_AWSCREDS_ERR_MAX];
        snprintf(where, sizeof where, "profile \"%.64s\" in %s", profile, path);
        prefix_err(err, n, where);
    }
    if (secret)
        sodium_memzero(secret, strlen(secret));
    pipe_free(id), pipe_free(secret), pipe_free(token);
    sodium_memzero(text, strlen(text));
out:
    pipe_free(text);
    pipe_free(path);
    return rc;
}

/* GETs url with an optional header and parses the credentials JSON. */
static int get_json_creds(const char *url, const char *header, long timeout_ms,
                          struct pipe_awscreds_value *v, char *err, size_t n)
{
    struct curl_slist *h = header ? curl_slist_append(NULL, header) : NULL;
    struct pipe_buf body;
    pipe_buf_init(&body, CREDS_BODY_MAX);
    long status = 0;
    int rc = http_call("GET", url, h, NULL, timeout_ms, &body, &status, err, n);
    if (rc == 0 && status != 200)
        rc = fail(err, n, status >= 500 ? PIPE_EUNAVAIL : PIPE_ECONFIG, "GET %s: HTTP %ld", url,
                  status);
    if (rc == 0 && (rc = from_json(body.data ? body.data : "", v, err, n)) < 0) {
        char where[PIPE_AWSCREDS_ERR_MAX];
        snprintf(where, sizeof where, "GET %s", url);
        prefix_err(err, n, where);
    }
    if (body.data)
        sodium_memzero(body.data, body.len);
    pipe_buf_cleanup(&body);
    curl_slist_free_all(h);
    return rc;
}

static int src_container(const struct pipe_awscreds *c, struct pipe_awscreds_value *v, char *err,
                         size_t n)
{
    (void)c;
    const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    if (full == NULL && rel == NULL)
        return 1;
    char *url = rel ? pipe_asprintf("%s%s", CREDS_ECS_HOST, rel) : pipe_strdup(full);
    char *token = NULL, *header = NULL;
    int rc = 0;
    const char *file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (file) {
        rc = read_small_file(file, &token, err, n);
        if (rc == 0)
            token[strcspn(token, "\r\n")] = '\0';
    } else if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
        token = pipe_strdup(env("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
    }
    if (rc == 0) {
        header = token ? pipe_asprintf("Authorization: %s", token) : NULL;
        rc = get_json_creds(url, header, CREDS_HTTP_TIMEOUT_MS, v, err, n);
    }
    pipe_free(header);
    pipe_free(token);
    pipe_free(url);
    return rc;
}

static int src_imds(const struct pipe_awscreds *c, struct pipe_awscreds_value *v, char *err,
                    size_t n)
{
    (void)c;
    const char *off = env("AWS_EC2_METADATA_DISABLED");
    if (off && strcasecmp(off, "true") == 0)
        return 1;
    const char *base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                           ? env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                           : CREDS_IMDS_HOST;
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    char *url = pipe_asprintf("%.*s/latest/api/token", (int)bl, base);
    char *hdr = NULL;
    struct curl_slist *h = curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
    struct pipe_buf body;
    pipe_buf_init(&body, CREDS_BODY_MAX);
    long status = 0;
    int rc = http_call("PUT", url, h, NULL, CREDS_IMDS_TIMEOUT_MS, &body, &status, err, n);
    curl_slist_free_all(h);
    h = NULL;
    if (rc < 0) { /* nothing listens: not on EC2, so not configured */
        rc = 1;
        goto out;
    }
    if (status != 200 || body.len == 0) {
        rc = fail(err, n, PIPE_ECONFIG, "IMDSv2 token at %s: HTTP %ld", url, status);
        goto out;
    }
    hdr =
        pipe_asprintf("X-aws-ec2-metadata-token: %.*s", (int)strcspn(body.data, "\r\n"), body.data);
    pipe_free(url);
    url = pipe_asprintf("%.*s/latest/meta-data/iam/security-credentials/", (int)bl, base);
    pipe_buf_reset(&body);
    h = curl_slist_append(NULL, hdr);
    rc = http_call("GET", url, h, NULL, CREDS_IMDS_TIMEOUT_MS, &body, &status, err, n);
    if (rc == 0 && (status != 200 || body.len == 0))
        rc = fail(err, n, PIPE_ECONFIG, "IMDS %s: HTTP %ld (no instance role?)", url, status);
    if (rc < 0)
        goto out;
    char *role = pipe_strndup(body.data, strcspn(body.data, "\r\n"));
    pipe_free(url);
    url = pipe_asprintf("%.*s/latest/meta-data/iam/security-credentials/%s", (int)bl, base, role);
    pipe_free(role);
    rc = get_json_creds(url, hdr, CREDS_IMDS_TIMEOUT_MS * 5, v, err, n);
out:
    curl_slist_free_all(h);
    pipe_free(hdr);
    pipe_free(url);
    pipe_buf_cleanup(&body);
    return rc;
}

static const struct {
    const char *name;
    source_fn fn;
} sources[] = {
    {"environment", src_env},
    {"web identity", src_web_identity},
    {"shared credentials file", src_shared_file},
    {"container credentials endpoint", src_container},
    {"EC2 instance metadata (IMDSv2)", src_imds},
};

/* ---- cache ------------------------------------------------------------ */

/* Asks source i; on success stores the answer and when to ask again. */
static int fetch(struct pipe_awscreds *c, int i, char *err, size_t n)
{
    struct pipe_awscreds_value v = {.source = sources[i].name};
    char why[PIPE_AWSCREDS_ERR_MAX] = "";
    int rc = sources[i].fn(c, &v, why, sizeof why);
    if (rc < 0)
        snprintf(err, n, "AWS credentials from the %s: %s", sources[i].name, why);
    if (rc == 0) {
        int64_t now = pipe_clock_now_ms();
        c->cur = v;
        c->refresh_at_ms = 0;
        if (v.expires_ms) {
            int64_t life = v.expires_ms - now, margin = CREDS_MARGIN_MS;
            if (life / 2 < margin)
                margin = life / 2;
            c->refresh_at_ms = v.expires_ms - (margin > 0 ? margin : 0);
        }
    }
    sodium_memzero(&v, sizeof v);
    return rc;
}

int pipe_awscreds_new(const char *region, struct pipe_awscreds **out, char *err, size_t err_size)
{
    struct pipe_awscreds *c = pipe_calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->region = pipe_strdup(region);
    int rc = 1;
    for (size_t i = 0; i < sizeof sources / sizeof *sources && rc == 1; i++) {
        rc = fetch(c, (int)i, err, err_size);
        c->source = (int)i;
    }
    if (rc == 1)
        rc = fail(err, err_size, PIPE_ECONFIG,
                  "no AWS credentials found: AWS_ACCESS_KEY_ID is not set, nor "
                  "AWS_WEB_IDENTITY_TOKEN_FILE, no shared credentials file, no container "
                  "credentials endpoint, no EC2 instance metadata");
    if (rc < 0) {
        pipe_awscreds_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int pipe_awscreds_get(struct pipe_awscreds *c, struct pipe_awscreds_value *out, char *err,
                      size_t err_size)
{
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    int64_t now = pipe_clock_now_ms();
    if (c->refresh_at_ms && now >= c->refresh_at_ms) {
        rc = fetch(c, c->source, err, err_size);
        if (rc == 1)
            rc = fail(err, err_size, PIPE_ECONFIG, "AWS credentials from the %s are gone",
                      sources[c->source].name);
        if (rc < 0 && now < c->cur.expires_ms - 10000)
            rc = 0; /* still valid for a while: use them, ask again next time */
    }
    if (rc == 0)
        *out = c->cur;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void pipe_awscreds_free(struct pipe_awscreds *c)
{
    if (c == NULL)
        return;
    sodium_memzero(&c->cur, sizeof c->cur);
    pthread_mutex_destroy(&c->mu);
    pipe_free(c->region);
    pipe_free(c);
}
