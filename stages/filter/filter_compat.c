/* filter_compat — what the SDK protocols (filter_segment.c,
 * filter_snowplow.c) and the filter's HTTP side share: splicing translated
 * events, query strings, HTTP Basic write keys, CORS headers and the
 * pixel GIF. Pure functions over caller-owned buffers. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/ndjson.h"
#include "libpipe/url.h"
#include "stages/filter/filter.h"

bool filter_json_key_is(const struct pipe_json_member *m, const char *k)
{
    size_t n = strlen(k);
    return m->key && !m->key_escaped && m->key_len == n && memcmp(m->key, k, n) == 0;
}

bool filter_json_string_copy(const struct pipe_json_member *m, char *dst, size_t cap)
{
    if (m->type != PIPE_JSON_STRING || m->value_len - 2 >= cap)
        return false;
    /* unescaping never lengthens: value_len - 2 bytes are enough */
    size_t n = pipe_json_unescape(m->value + 1, m->value_len - 2, dst);
    dst[n] = '\0';
    return true;
}

int filter_xlate_tail(struct pipe_buf *out, bool first, const struct pipe_buf *moved,
                      const struct pipe_buf *obj, size_t kept)
{
    int rc = 0;
    if (moved->len) {
        /* each moved member starts with its comma */
        rc = pipe_buf_append(out, moved->data + first, moved->len - first);
        first = false;
    }
    if (rc == 0 && kept > 0) {
        if (!first)
            rc = pipe_buf_append_char(out, ',');
        /* the original members, after the object's '{' (its '}' included) */
        if (rc == 0)
            rc = pipe_buf_append(out, obj->data + 1, obj->len - 1);
    } else if (rc == 0) {
        rc = pipe_buf_append_char(out, '}');
    }
    return rc;
}

bool filter_json_note_array(const struct pipe_json_member *m, const char *key,
                            struct filter_json_span *span)
{
    if (!filter_json_key_is(m, key))
        return false;
    span->found = true;
    span->is_array = m->type == PIPE_JSON_ARRAY;
    span->value = m->value;
    span->len = m->value_len;
    return true;
}

int filter_xlate_verbatim(struct pipe_buf *out, const char *msg, size_t len)
{
    size_t at = out->len;
    int rc = pipe_buf_append(out, msg, len);
    /* Raw line breaks in JSON text can only be whitespace between tokens
     * (inside strings they are invalid, and such text fails anyway): made
     * spaces, the message stays one NDJSON record. */
    for (size_t i = at; rc == 0 && i < out->len; i++)
        if (out->data[i] == '\n' || out->data[i] == '\r')
            out->data[i] = ' ';
    return rc;
}

/* Query strings: items split by libpipe/url, names and values decoded as
 * forms encode them. */

int filter_query_json(const char *query, struct pipe_buf *out)
{
    char *tmp = pipe_malloc(strlen(query) + 1); /* any item decodes into it */
    struct pipe_url_param p;
    const char *q = query;
    int rc = pipe_buf_append_char(out, '{');
    for (bool first = true; rc == 0 && pipe_url_query_next(&q, &p); first = false) {
        if (!first)
            rc = pipe_buf_append_char(out, ',');
        if (rc == 0)
            rc = pipe_json_append_string(out, tmp, pipe_url_form_decode(p.name, p.name_len, tmp));
        if (rc == 0)
            rc = pipe_buf_append_char(out, ':');
        if (rc == 0)
            rc = pipe_json_append_string(out, tmp, pipe_url_form_decode(p.value, p.value_len, tmp));
    }
    if (rc == 0)
        rc = pipe_buf_append_char(out, '}');
    pipe_free(tmp);
    return rc;
}

bool filter_query_get(const char *query, const char *name, char *dst, size_t cap)
{
    struct pipe_url_param p;
    const char *q = query;
    while (q && pipe_url_query_next(&q, &p)) {
        if (pipe_url_param_is(&p, name) && p.value_len < cap) {
            dst[pipe_url_form_decode(p.value, p.value_len, dst)] = '\0';
            return true;
        }
    }
    return false;
}

bool filter_basic_user(const char *auth, char *dst, size_t cap)
{
    if (auth == NULL || strncasecmp(auth, "Basic ", 6) != 0)
        return false;
    const char *b64 = auth + 6;
    size_t n = strlen(b64);
    unsigned char *bin = pipe_malloc(n + 1);
    size_t len = 0;
    bool ok = sodium_base642bin(bin, n + 1, b64, n, NULL, &len, NULL,
                                sodium_base64_VARIANT_ORIGINAL) == 0;
    if (ok) {
        /* user:password; the write key is the user, the password empty */
        unsigned char *colon = memchr(bin, ':', len);
        size_t un = colon ? (size_t)(colon - bin) : len;
        ok = un > 0 && un < cap && memchr(bin, '\0', un) == NULL;
        if (ok) {
            memcpy(dst, bin, un);
            dst[un] = '\0';
        }
    }
    pipe_free(bin);
    return ok;
}

/* origin_allowed — origin is one of the comma-separated allowed entries
 * (exactly, spaces around commas ignored), or the list holds "*". */
static bool origin_allowed(const char *allowed, const char *origin)
{
    size_t on = strlen(origin);
    const char *p = allowed;
    while (p && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if ((n == 1 && *p == '*') || (n == on && n > 0 && memcmp(p, origin, n) == 0))
            return true;
        p += n;
    }
    return false;
}

void filter_cors(const char *allowed, const char *origin, bool preflight, char *dst, size_t cap)
{
    dst[0] = '\0';
    /* The origin is echoed into a header: refuse anything that could break
     * out of the line. */
    if (allowed == NULL || origin == NULL || origin[0] == '\0' || strpbrk(origin, "\r\n") ||
        strlen(origin) > 256 || !origin_allowed(allowed, origin))
        return;
    /* Echoed, never "*": browsers refuse "*" with credentials. */
    int n = snprintf(dst, cap,
                     "Access-Control-Allow-Origin: %s\r\n"
                     "Access-Control-Allow-Credentials: true\r\n"
                     "Vary: Origin\r\n",
                     origin);
    if (preflight && n > 0 && (size_t)n < cap)
        snprintf(dst + n, cap - (size_t)n,
                 "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
                 "Access-Control-Allow-Headers: Content-Type, Content-Encoding, Authorization, "
                 "X-Api-Key, X-Retry-Count, AnonymousId, SentAt, SP-Anonymous, X-Requested-With\r\n"
                 "Access-Control-Max-Age: 86400\r\n");
}

/* GIF89a, 1x1, one transparent pixel. */
const unsigned char filter_pixel_gif[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};
const size_t filter_pixel_gif_len = sizeof filter_pixel_gif;
