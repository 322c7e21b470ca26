/* url — the URL parser declared in url.h, over libcurl's curl_url. curl
 * does the grammar (RFC 3986 as browsers and curl read it); this file adds
 * the two forms sluice's URLs have that curl reads otherwise, checks the
 * %-escapes of the credentials, and hands out plain strings. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/url.h"

/* A host put where the URL has none, so that curl (which would read the
 * path's first segment as the host) parses the rest; taken out after. */
#define URL_NO_HOST "localhost"

/* The text after "SCHEME://": where the authority ends and whether its
 * host is empty ("unix:///p", "unix://:pw@/p") or is "." or ".." (a
 * relative path: "file://./rel"). */
struct url_shape {
    size_t scheme_len; /* up to the ':' */
    size_t auth_len;   /* bytes of the authority */
    size_t host_at;    /* offset of the host inside the authority */
    bool no_host, relative;
    bool has_path;   /* a '/' follows the authority (curl would add one) */
    bool empty_port; /* "host:" */
};

static bool shape_of(const char *text, struct url_shape *sh)
{
    size_t n = strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    if (n == 0 || strncmp(text + n, "://", 3) != 0 || strchr("+.-0123456789", text[0]))
        return false;
    const char *a = text + n + 3;
    size_t alen = strcspn(a, "/?#");
    const char *at = memrchr(a, '@', alen);
    size_t host_at = at ? (size_t)(at - a) + 1 : 0;
    const char *h = a + host_at;
    size_t hlen = alen - host_at;
    *sh = (struct url_shape){n, alen, host_at, hlen == 0, false, a[alen] == '/', false};
    /* curl reads "host:" as no port; sluice has always refused it */
    sh->empty_port = hlen > 0 && h[hlen - 1] == ':';
    if (!at && ((hlen == 1 && h[0] == '.') || (hlen == 2 && h[0] == '.' && h[1] == '.'))) {
        sh->relative = true;
        sh->no_host = true;
        sh->has_path = true;
    }
    return true;
}

/* The text curl is given: the URL with URL_NO_HOST where it has no host;
 * a relative path becomes "/./rel" after it (the '/' dropped later). */
static char *curl_text(const char *text, const struct url_shape *sh)
{
    if (!sh->no_host)
        return pipe_strdup(text);
    const char *a = text + sh->scheme_len + 3;
    if (sh->relative)
        return pipe_asprintf("%.*s" URL_NO_HOST "/%s", (int)sh->scheme_len + 3, text, a);
    return pipe_asprintf("%.*s" URL_NO_HOST "%s%s", (int)(sh->scheme_len + 3 + sh->host_at), text,
                         sh->has_path ? "" : "/", a + sh->host_at);
}

/* Every '%' starts two hex digits, and none encodes a NUL. */
static bool escapes_ok(const char *s)
{
    for (const char *p = strchr(s, '%'); p; p = strchr(p + 1, '%')) {
        if (!strchr("0123456789abcdefABCDEF", p[1]) || p[1] == '\0' ||
            !strchr("0123456789abcdefABCDEF", p[2]) || p[2] == '\0' || (p[1] == '0' && p[2] == '0'))
            return false;
    }
    return true;
}

/* part of h as a heap string (pipe_free): NULL when the URL has none (or
 * curl fails on it), %-decoded when decode is set and the escapes are
 * sound; *bad_escape when they are not. */
static char *get_part(CURLU *h, CURLUPart part, bool decode, bool *bad_escape)
{
    char *v = NULL, *out = NULL;
    if (curl_url_get(h, part, &v, 0) != CURLUE_OK)
        return NULL;
    if (decode && !escapes_ok(v)) {
        *bad_escape = true;
    } else if (decode) {
        char *d = NULL;
        if (curl_url_get(h, part, &d, CURLU_URLDECODE) == CURLUE_OK)
            out = pipe_strdup(d);
        else
            *bad_escape = true;
        curl_free(d);
    } else {
        out = pipe_strdup(v);
    }
    curl_free(v);
    return out;
}

/* The host as sluice uses it: "" for the placeholder, brackets off an IPv6
 * address (its zone, if any, after a '%'); NULL for a malformed zone. */
static char *host_of(CURLU *h, const struct url_shape *sh, bool *ipv6)
{
    bool unused = false;
    char *host = get_part(h, CURLUPART_HOST, false, &unused);
    *ipv6 = false;
    if (sh->no_host || host == NULL) {
        pipe_free(host);
        return pipe_strdup("");
    }
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        char *zone = get_part(h, CURLUPART_ZONEID, false, &unused);
        /* curl takes any bytes as a zone; RFC 6874 allows unreserved ones */
        bool zone_ok = !zone || (*zone && strspn(zone, "abcdefghijklmnopqrstuvwxyz"
                                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                       "0123456789-._~") == strlen(zone));
        char *bare = !zone_ok ? NULL
                     : zone   ? pipe_asprintf("%.*s%%%s", (int)n - 2, host + 1, zone)
                              : pipe_strndup(host + 1, n - 2);
        pipe_free(zone);
        pipe_free(host);
        *ipv6 = true;
        return bare;
    }
    return host;
}

/* fill — the parts of h into u; false (u partly filled) on a bad escape. */
static bool fill(CURLU *h, const struct url_shape *sh, struct pipe_url *u, enum pipe_url_part *bad,
                 const char **why)
{
    bool esc = false, unused = false;
    u->scheme = get_part(h, CURLUPART_SCHEME, false, &unused);
    u->user = get_part(h, CURLUPART_USER, true, &esc);
    if (esc) {
        *bad = PIPE_URL_USER, *why = "bad %-escape in the user name";
        return false;
    }
    u->password = get_part(h, CURLUPART_PASSWORD, true, &esc);
    if (esc) {
        *bad = PIPE_URL_PASSWORD, *why = "bad %-escape in the password";
        return false;
    }
    u->host = host_of(h, sh, &u->ipv6);
    if (u->host == NULL) {
        *bad = PIPE_URL_HOST, *why = "bad IPv6 zone id";
        return false;
    }
    char *port = get_part(h, CURLUPART_PORT, false, &unused);
    u->port = port ? atoi(port) : -1;
    pipe_free(port);
    char *path = sh->has_path ? get_part(h, CURLUPART_PATH, false, &unused) : NULL;
    u->relative = sh->relative;
    u->path = pipe_strdup(path == NULL ? "" : sh->relative ? path + 1 : path);
    pipe_free(path);
    u->query = get_part(h, CURLUPART_QUERY, false, &unused);
    u->fragment = get_part(h, CURLUPART_FRAGMENT, false, &unused);
    return true;
}

static enum pipe_url_part part_of(CURLUcode c)
{
    switch (c) {
    case CURLUE_BAD_HOSTNAME:
    case CURLUE_NO_HOST:
    case CURLUE_BAD_IPV6:
    case CURLUE_BAD_FILE_URL:
        return PIPE_URL_HOST;
    case CURLUE_BAD_PORT_NUMBER:
        return PIPE_URL_PORT;
    case CURLUE_BAD_USER:
        return PIPE_URL_USER;
    case CURLUE_BAD_PASSWORD:
        return PIPE_URL_PASSWORD;
    case CURLUE_BAD_PATH:
        return PIPE_URL_PATH;
    case CURLUE_BAD_QUERY:
        return PIPE_URL_QUERY;
    default:
        return PIPE_URL_WHOLE;
    }
}

int pipe_url_parse(const char *text, struct pipe_url *u, enum pipe_url_part *bad, const char **why)
{
    int rc = PIPE_EPARSE;
    struct url_shape sh;
    struct pipe_url v = {0};
    CURLU *h = NULL;
    char *ct = NULL;
    if (!shape_of(text, &sh)) {
        *bad = PIPE_URL_WHOLE, *why = "not SCHEME://...";
        goto out;
    }
    if (sh.empty_port) {
        *bad = PIPE_URL_PORT, *why = "empty port number";
        goto out;
    }
    ct = curl_text(text, &sh);
    h = curl_url();
    if (h == NULL) {
        *bad = PIPE_URL_WHOLE, *why = "out of memory";
        goto out;
    }
    CURLUcode c = curl_url_set(h, CURLUPART_URL, ct,
                               CURLU_NON_SUPPORT_SCHEME | CURLU_PATH_AS_IS | CURLU_ALLOW_SPACE);
    if (c != CURLUE_OK) {
        *bad = part_of(c), *why = curl_url_strerror(c);
        goto out;
    }
    if (!fill(h, &sh, &v, bad, why)) {
        pipe_url_cleanup(&v);
        goto out;
    }
    *u = v;
    rc = 0;
out:
    curl_url_cleanup(h);
    pipe_free(ct);
    return rc;
}

bool pipe_url_scheme_is(const char *text, const char *scheme)
{
    size_t n = strlen(scheme);
    return strncmp(text, scheme, n) == 0 && (text[n] == ':' || text[n] == '\0');
}

void pipe_url_cleanup(struct pipe_url *u)
{
    pipe_free(u->scheme);
    pipe_free(u->user);
    pipe_free(u->password);
    pipe_free(u->host);
    pipe_free(u->path);
    pipe_free(u->query);
    pipe_free(u->fragment);
    *u = (struct pipe_url){.port = -1};
}

bool pipe_url_query_next(const char **cursor, struct pipe_url_param *p)
{
    const char *q = *cursor;
    while (*q == '&')
        q++;
    if (*q == '\0') {
        *cursor = q;
        return false;
    }
    size_t len = strcspn(q, "&");
    const char *eq = memchr(q, '=', len);
    p->name = q;
    p->name_len = eq ? (size_t)(eq - q) : len;
    p->value = eq ? eq + 1 : NULL;
    p->value_len = eq ? (size_t)(q + len - eq - 1) : 0;
    *cursor = q + len;
    return true;
}

bool pipe_url_param_is(const struct pipe_url_param *p, const char *name)
{
    return strlen(name) == p->name_len && memcmp(p->name, name, p->name_len) == 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* curl_easy_unescape reads no '+' and allocates its result; a query item
 * is decoded here, in place of the caller's choosing, once per item. */
size_t pipe_url_form_decode(const char *s, size_t n, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '+') {
            dst[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && (hi = hex_digit(s[i + 1])) >= 0 &&
                   (lo = hex_digit(s[i + 2])) >= 0) {
            dst[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            dst[o++] = s[i];
        }
    }
    return o;
}
