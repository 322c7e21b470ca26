/* httpd_req — one HTTP request as it arrives: the http_parser callbacks that
 * store its URL, headers and body under their caps, and decide the error
 * status when the input is refused. The connection (httpd_conn.c) decides
 * when to feed the parser and what to do with a finished request. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "libpipe/err.h"
#include "libpipe/httpd_int.h"
#include "libpipe/mem.h"

/* ---- requests ---------------------------------------------------------- */

struct httpd_req *pipe__httpd_req_new(struct httpd_conn *c)
{
    struct httpd_req *rq = pipe_calloc(1, sizeof *rq);
    pipe_buf_init(&rq->head, c->srv->cfg.max_header_bytes);
    pipe_buf_init(&rq->body, c->srv->cfg.max_body_bytes);
    pipe_buf_init(&rq->ans.body, PIPE__HTTPD_EARLY_MAX);
    pipe_buf_init(&rq->ans.headers, PIPE__HTTPD_EARLY_MAX);
    rq->srv = c->srv;
    memcpy(rq->peer, c->peer, sizeof rq->peer);
    rq->pub.peer = rq->peer;
    rq->pub.query = "";
    rq->pub.body = "";
    return rq;
}

void pipe__httpd_req_free(struct httpd_req *rq)
{
    if (!rq)
        return;
    pipe__httpd_req_received(rq);
    pipe_buf_cleanup(&rq->ans.body);
    pipe_buf_cleanup(&rq->ans.headers);
    pipe_buf_cleanup(&rq->head);
    pipe_buf_cleanup(&rq->body);
    pipe_free(rq->offs);
    pipe_free(rq->hdrs);
    pipe_free(rq);
}

void pipe__httpd_req_received(struct httpd_req *rq)
{
    if (!rq->receiving)
        return;
    rq->receiving = false;
    rq->srv->n.bodies_receiving--;
    rq->srv->n.body_bytes_receiving -= rq->body.len;
    rq->srv->n.body_bytes_declared -= rq->declared;
    rq->declared = 0;
}

/* req_add_header — starts a new header at the current end of head. */
static int req_add_header(struct httpd_req *rq)
{
    if (rq->nhdr == PIPE__HTTPD_MAX_HEADERS)
        return PIPE_ETOOBIG;
    if (rq->nhdr * 2 + 2 > rq->offs_cap) {
        rq->offs_cap = rq->offs_cap ? rq->offs_cap * 2 : 32;
        rq->offs = pipe_realloc(rq->offs, rq->offs_cap * sizeof *rq->offs);
    }
    rq->offs[rq->nhdr * 2] = rq->head.len;
    rq->offs[rq->nhdr * 2 + 1] = rq->head.len;
    rq->nhdr++;
    return 0;
}

/* req_split_url — points path and query into the stored URL, cutting it with
 * NULs. Origin-form ("/p?q") is split by hand; absolute-form and CONNECT's
 * authority-form go through http_parser_parse_url. */
static int req_split_url(struct httpd_req *rq, bool is_connect)
{
    char *url = rq->head.data;
    if (url[0] == '/' || url[0] == '*') {
        char *hash = strchr(url, '#');
        if (hash)
            *hash = '\0';
        char *q = strchr(url, '?');
        if (q) {
            *q = '\0';
            rq->pub.query = q + 1;
        }
        rq->pub.path = url;
        return 0;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    size_t len = strlen(url);
    /* its offsets are 16-bit */
    if (len > UINT16_MAX || http_parser_parse_url(url, len, is_connect, &u) != 0)
        return PIPE_EPARSE;
    size_t pend = 0, qend = 0;
    if (u.field_set & (1 << UF_PATH))
        pend = (size_t)u.field_data[UF_PATH].off + u.field_data[UF_PATH].len;
    if (u.field_set & (1 << UF_QUERY))
        qend = (size_t)u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len;
    rq->pub.path = pend ? url + u.field_data[UF_PATH].off : "/";
    if (qend)
        rq->pub.query = url + u.field_data[UF_QUERY].off;
    if (pend)
        url[pend] = '\0';
    if (qend)
        url[qend] = '\0';
    return 0;
}

/* req_publish_headers — terminates the last stored piece and fills the
 * public view: method, path, query, headers. 0 or the status to answer. */
static int req_publish_headers(struct httpd_req *rq, const http_parser *p)
{
    int rc = pipe_buf_append_char(&rq->head, '\0');
    if (rc == 0 && rq->hstate == HS_FIELD) {
        /* a header with no value at all: give it "" */
        rq->offs[rq->nhdr * 2 - 1] = rq->head.len;
        rc = pipe_buf_append_char(&rq->head, '\0');
    }
    if (rc < 0)
        return 431;
    rq->headers_done = true;
    rq->hdrs = pipe_calloc(rq->nhdr ? rq->nhdr : 1, sizeof *rq->hdrs);
    for (size_t i = 0; i < rq->nhdr; i++) {
        char *value = rq->head.data + rq->offs[i * 2 + 1];
        /* http_parser drops leading whitespace but keeps trailing */
        size_t n = strlen(value);
        while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
            value[--n] = '\0';
        rq->hdrs[i].name = rq->head.data + rq->offs[i * 2];
        rq->hdrs[i].value = value;
    }
    rq->pub.headers = rq->hdrs;
    rq->pub.header_count = rq->nhdr;
    rq->pub.method = http_method_str((enum http_method)p->method);
    rq->is_head = p->method == HTTP_HEAD;
    if (req_split_url(rq, p->method == HTTP_CONNECT) < 0)
        return 400;
    return 0;
}

const char *pipe_http_request_header(const struct pipe_http_request *r, const char *name)
{
    for (size_t i = 0; i < r->header_count; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/* ---- parser callbacks -------------------------------------------------- */

/* Each callback that refuses the input records the status to answer in
 * c->err_status and returns nonzero, which stops http_parser_execute. */

static int cb_fail(struct httpd_conn *c, int status)
{
    c->err_status = status;
    return -1;
}

static int on_message_begin(http_parser *p)
{
    struct httpd_conn *c = p->data;
    pipe__httpd_req_free(c->cur);
    c->cur = pipe__httpd_req_new(c);
    /* http_parser has read the method's first byte, and only HEAD starts
     * with 'H': even a refusal before the headers end knows it sends no body */
    c->cur->is_head = p->method == HTTP_HEAD;
    c->deadline = uv_now(c->srv->loop) + (uint64_t)c->srv->cfg.request_timeout_ms;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct httpd_conn *c = p->data;
    c->cur->hstate = HS_URL;
    if (pipe_buf_append(&c->cur->head, at, len) < 0)
        return cb_fail(c, 414);
    return 0;
}

/* Trailers after a chunked body are counted against the header cap and
 * otherwise ignored. */
static int on_trailer(struct httpd_conn *c, size_t len)
{
    c->cur->trailer_bytes += len;
    if (c->cur->trailer_bytes > c->srv->cfg.max_header_bytes)
        return cb_fail(c, 431);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct httpd_conn *c = p->data;
    struct httpd_req *rq = c->cur;
    if (rq->headers_done)
        return on_trailer(c, len);
    int rc = 0;
    if (rq->hstate != HS_FIELD) {
        /* a new header: NUL-terminate the URL or the previous value */
        rc = pipe_buf_append_char(&rq->head, '\0');
        if (rc == 0)
            rc = req_add_header(rq);
        rq->hstate = HS_FIELD;
    }
    if (rc == 0)
        rc = pipe_buf_append(&rq->head, at, len);
    return rc < 0 ? cb_fail(c, 431) : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct httpd_conn *c = p->data;
    struct httpd_req *rq = c->cur;
    if (rq->headers_done)
        return on_trailer(c, len);
    int rc = 0;
    if (rq->hstate == HS_FIELD) {
        rc = pipe_buf_append_char(&rq->head, '\0');
        rq->offs[rq->nhdr * 2 - 1] = rq->head.len;
        rq->hstate = HS_VALUE;
    }
    if (rc == 0 && rq->hstate == HS_VALUE)
        rc = pipe_buf_append(&rq->head, at, len);
    return rc < 0 ? cb_fail(c, 431) : 0;
}

/* req_ask_early — the caller's decision from the headers, if it has one;
 * true when the request is answered without its body. */
static bool req_ask_early(struct httpd_conn *c, struct httpd_req *rq)
{
    if (!c->srv->cfg.on_headers)
        return false;
    c->srv->cfg.on_headers(&rq->pub, c->srv->arg, &rq->ans);
    rq->early = rq->ans.status != 0;
    return rq->early;
}

/* on_headers_complete — the early decision, the body cap and Expect, all
 * before any body byte is read. A request answered early without a body
 * completes normally (and is answered instead of dispatched); one with a
 * body stops the parser: the connection answers and closes. A nonzero
 * return other than 1 or 2 is an error to http_parser; 1 would mean "no
 * body", which is for responses. */
static int on_headers_complete(http_parser *p)
{
    struct httpd_conn *c = p->data;
    struct httpd_req *rq = c->cur;
    int status = req_publish_headers(rq, p);
    if (status)
        return cb_fail(c, status);
    bool has_length = (p->flags & F_CONTENTLENGTH) != 0;
    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool body_follows = chunked || (has_length && p->content_length > 0);
    rq->pub.content_length = chunked ? -1 : has_length ? (int64_t)p->content_length : 0;
    if (req_ask_early(c, rq))
        return body_follows ? cb_fail(c, -1) : 0;
    if (has_length && p->content_length > c->srv->cfg.max_body_bytes)
        return cb_fail(c, 413);
    const char *expect = pipe_http_request_header(&rq->pub, "Expect");
    bool http11 = p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1);
    if (expect && http11) {
        if (strcasecmp(expect, "100-continue") != 0)
            return cb_fail(c, 417);
        if (body_follows)
            pipe__httpd_conn_write(c, NULL, 0, false);
    }
    /* The body's memory grows as its bytes arrive (capped): a declared
     * length reserves nothing, so a client that announces 16 MiB and sends
     * ten bytes holds ten bytes. */
    if (body_follows) {
        rq->receiving = true;
        rq->declared = chunked ? 0 : (size_t)p->content_length;
        c->srv->n.bodies_receiving++;
        c->srv->n.body_bytes_declared += rq->declared;
    }
    return c->closing ? -1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct httpd_conn *c = p->data;
    if (pipe_buf_append(&c->cur->body, at, len) < 0)
        return cb_fail(c, 413);
    struct httpd_req *rq = c->cur;
    if (rq->receiving) {
        c->srv->n.body_bytes_receiving += len;
        if (rq->pub.content_length < 0) {
            rq->declared += len;
            c->srv->n.body_bytes_declared += len;
        }
    }
    return 0;
}

/* on_message_complete — pauses the parser so that execute returns right
 * after this message: the next one is parsed only after this is answered. */
static int on_message_complete(http_parser *p)
{
    struct httpd_conn *c = p->data;
    c->cur->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    pipe__httpd_req_received(c->cur);
    http_parser_pause(p, 1);
    return 0;
}

const http_parser_settings pipe__httpd_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};
