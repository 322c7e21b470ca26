/* url — the one URL parser of sluice: splits a configured URL (store,
 * lease, de-duplication, Redis) into its parts with libcurl's URL API
 * (curl_url), for any scheme. Each backend then checks what its scheme
 * allows and words its own errors; nothing here knows a scheme but the
 * two forms curl lacks: an empty host (`unix:///path`, `local:///dir`)
 * and a path relative to the working directory (`file://./rel`). */
#ifndef PIPE_URL_H
#define PIPE_URL_H

#include <stdbool.h>
#include <stddef.h>

/* Which part of a URL was wrong (pipe_url_parse's *bad). */
enum pipe_url_part {
    PIPE_URL_WHOLE, /* no SCHEME://, or curl refused it as a whole */
    PIPE_URL_USER,
    PIPE_URL_PASSWORD,
    PIPE_URL_HOST,
    PIPE_URL_PORT,
    PIPE_URL_PATH,
    PIPE_URL_QUERY,
};

/* A parsed URL; every string is heap-allocated and freed by
 * pipe_url_cleanup. */
struct pipe_url {
    char *scheme;   /* lowercase */
    char *user;     /* %-decoded; NULL when the URL has no user info */
    char *password; /* %-decoded; NULL when there is no ':' in the user info */
    char *host;     /* "" when none; an IPv6 address without its brackets */
    bool ipv6;      /* host was written in brackets */
    int port;       /* -1 when none, else 0..65535 */
    char *path;     /* as written (no decoding): "" when nothing follows the
                     * authority, else starts with '/', or with "./" / "../"
                     * (or is "." / "..") for SCHEME://./rel */
    bool relative;  /* the path is relative (SCHEME://./rel, SCHEME://../rel) */
    char *query;    /* as written, without the '?'; NULL when none */
    char *fragment; /* NULL when none */
};

/* One "name=value" of a query (pointers into the query; not terminated). */
struct pipe_url_param {
    const char *name, *value; /* value NULL when the item has no '=' */
    size_t name_len, value_len;
};

/* pipe_url_parse — parses text, which must read SCHEME://..., into *u
 * (caller-provided; pipe_url_cleanup it after a success). Paths and queries
 * are kept as written; user and password are %-decoded, and an escape that
 * is malformed or decodes to a NUL is an error. Returns 0, or PIPE_EPARSE
 * with *u untouched, *bad naming the part and *why a static reason. */
int pipe_url_parse(const char *text, struct pipe_url *u, enum pipe_url_part *bad, const char **why);

/* pipe_url_scheme_is — is text's scheme (what precedes its first ':', or
 * all of it when it has none: "local") scheme? Compares bytes, parses
 * nothing: for a front end choosing the backend that parses the URL. */
bool pipe_url_scheme_is(const char *text, const char *scheme);

/* pipe_url_cleanup — frees what pipe_url_parse allocated; u is all NULL after. */
void pipe_url_cleanup(struct pipe_url *u);

/* pipe_url_query_next — the next item of the query at *cursor (start with
 * the query, up to its NUL), skipping empty items; advances *cursor. false
 * at the end. Values are as written. */
bool pipe_url_query_next(const char **cursor, struct pipe_url_param *p);

/* pipe_url_param_is — does p's name equal name? */
bool pipe_url_param_is(const struct pipe_url_param *p, const char *name);

/* pipe_url_form_decode — n bytes of a query item's name or value as HTML
 * forms encode it ('+' a space, %XX a byte) decoded into dst, which n bytes
 * suffice for; a malformed escape stays as written. Returns the bytes
 * written (no NUL added). Decoded bytes may be anything, NUL included. */
size_t pipe_url_form_decode(const char *s, size_t n, char *dst);

#endif
