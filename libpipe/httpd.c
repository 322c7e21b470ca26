/* httpd — HTTP/1.1 server on libuv with asynchronous responses.
 *
 * The server owns its listener and its connections; a connection owns the
 * request it is receiving. Once handed to the handler, a request owns its
 * own memory and outlives its connection until it is answered. Parsing is
 * http_parser's; this file adds framing policy (caps, timeouts, one request
 * at a time per connection) and the libuv plumbing. */
#include "libpipe/httpd.h"

#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libpipe/buf.h"
#include "libpipe/err.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"

#define HTTPD_READ_CHUNK (64 * 1024)
#define HTTPD_MAX_HEADERS 256
#define HTTPD_LINGER_MS 2000
#define HTTPD_BACKLOG 511
#define HTTPD_PEER_LEN 64

#define HTTPD_CONTAINER(ptr, type, field) ((type *)(void *)((char *)(ptr) - offsetof(type, field)))

/* Where the header callbacks are: what the last piece stored was. */
enum httpd_hstate { HS_NONE, HS_URL, HS_FIELD, HS_VALUE };

struct httpd_conn;

/* A request: the public head, then what httpd needs to build and answer it.
 * Strings live in head ("url\0name\0value\0...") and are pointed to only
 * once the headers are complete, when head stops growing. */
struct httpd_req {
    struct pipe_http_request pub; /* first: the handler's pointer is cast back */
    struct httpd_conn *conn;      /* NULL once the connection is gone */
    struct pipe_buf head;         /* capped at max_header_bytes */
    struct pipe_buf body;         /* capped at max_body_bytes */
    size_t *offs;                 /* name and value offsets into head, 2 per header */
    size_t nhdr;
    size_t offs_cap;
    struct pipe_http_header *hdrs;
    enum httpd_hstate hstate;
    bool headers_done;
    size_t trailer_bytes;
    bool keep_alive;
    bool is_head;
    char peer[HTTPD_PEER_LEN];
};

struct httpd_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    struct pipe_httpd *srv;
    struct httpd_conn *prev, *next;
    http_parser parser;
    struct pipe_buf in;         /* read, not yet parsed: [in_pos, in.len) */
    size_t in_pos;
    struct httpd_req *cur;      /* being received */
    struct httpd_req *inflight; /* with the handler, not answered yet */
    uint64_t deadline;          /* loop time at which the current state times out */
    int err_status;             /* set by a parser callback that stopped the parser */
    int open_handles;
    bool counted;   /* counted in connections_open */
    bool reading;   /* uv_read_start is in effect */
    bool writing;   /* a response is being written */
    bool last;      /* close once the current request is answered */
    bool lingering; /* response sent, write side shut: discarding input until EOF */
    bool peer_eof;
    bool closing;
    char peer[HTTPD_PEER_LEN];
};

/* One uv_write: a response (final) or an interim "100 Continue". */
struct httpd_write {
    uv_write_t req;
    struct httpd_conn *conn;
    char *data; /* owned, or NULL for the static interim response */
    bool final;
};

struct pipe_httpd {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t gate; /* closed by _close, so that done always runs from a callback */
    struct pipe_httpd_config cfg;
    char *listen;
    pipe_httpd_handler handler;
    void *arg;
    struct httpd_conn *conns;
    int port;
    int open_handles; /* listener, gate, and one per connection */
    bool listening;   /* the listener handle is open */
    bool draining;    /* no new requests */
    bool closing;
    void (*done)(void *arg);
    void *done_arg;
    struct pipe_httpd_counters n;
};

static char httpd_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void conn_advance(struct httpd_conn *c);
static void conn_close(struct httpd_conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);

/* ---- requests ---------------------------------------------------------- */

static struct httpd_req *req_new(struct httpd_conn *c)
{
    struct httpd_req *rq = pipe_calloc(1, sizeof *rq);
    pipe_buf_init(&rq->head, c->srv->cfg.max_header_bytes);
    pipe_buf_init(&rq->body, c->srv->cfg.max_body_bytes);
    memcpy(rq->peer, c->peer, sizeof rq->peer);
    rq->pub.peer = rq->peer;
    rq->pub.query = "";
    rq->pub.body = "";
    return rq;
}

static void req_free(struct httpd_req *rq)
{
    if (!rq)
        return;
    pipe_buf_cleanup(&rq->head);
    pipe_buf_cleanup(&rq->body);
    pipe_free(rq->offs);
    pipe_free(rq->hdrs);
    pipe_free(rq);
}

/* req_add_header — starts a new header at the current end of head. */
static int req_add_header(struct httpd_req *rq)
{
    if (rq->nhdr == HTTPD_MAX_HEADERS)
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
    if (http_parser_parse_url(url, strlen(url), is_connect, &u) != 0)
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
    req_free(c->cur);
    c->cur = req_new(c);
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

static void conn_write(struct httpd_conn *c, char *data, size_t len, bool final);

/* on_headers_complete — the body cap (decided before any body byte is read)
 * and Expect. A nonzero return other than 1 or 2 is an error to
 * http_parser; 1 would mean "no body", which is for responses. */
static int on_headers_complete(http_parser *p)
{
    struct httpd_conn *c = p->data;
    struct httpd_req *rq = c->cur;
    int status = req_publish_headers(rq, p);
    if (status)
        return cb_fail(c, status);
    bool has_length = (p->flags & F_CONTENTLENGTH) != 0;
    if (has_length && p->content_length > c->srv->cfg.max_body_bytes)
        return cb_fail(c, 413);
    const char *expect = pipe_http_request_header(&rq->pub, "Expect");
    bool http11 = p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1);
    if (expect && http11) {
        if (strcasecmp(expect, "100-continue") != 0)
            return cb_fail(c, 417);
        bool body_follows = (p->flags & F_CHUNKED) || (has_length && p->content_length > 0);
        if (body_follows)
            conn_write(c, NULL, 0, false);
    }
    /* A Content-Length within the cap is reserved at once: one allocation
     * instead of a doubling series, and untouched pages cost no memory. */
    if (has_length && p->content_length > 0)
        (void)pipe_buf_reserve(&rq->body, (size_t)p->content_length);
    return c->closing ? -1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct httpd_conn *c = p->data;
    if (pipe_buf_append(&c->cur->body, at, len) < 0)
        return cb_fail(c, 413);
    return 0;
}

/* on_message_complete — pauses the parser so that execute returns right
 * after this message: the next one is parsed only after this is answered. */
static int on_message_complete(http_parser *p)
{
    struct httpd_conn *c = p->data;
    c->cur->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings httpd_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- connections: writing ---------------------------------------------- */

static const char *httpd_reason(int status)
{
    const char *s = http_status_str((enum http_status)status);
    return strcmp(s, "<unknown>") == 0 ? "Unknown" : s;
}

static void conn_update(struct httpd_conn *c);
static void conn_linger(struct httpd_conn *c);

static void on_write(uv_write_t *req, int status)
{
    struct httpd_write *w = HTTPD_CONTAINER(req, struct httpd_write, req);
    struct httpd_conn *c = w->conn;
    bool final = w->final;
    pipe_free(w->data);
    pipe_free(w);
    if (final)
        c->writing = false;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (!final)
        return;
    if (c->last) {
        if (c->peer_eof)
            conn_close(c);
        else
            conn_linger(c);
        return;
    }
    c->deadline = uv_now(c->srv->loop) + (uint64_t)c->srv->cfg.idle_timeout_ms;
    conn_advance(c);
}

/* conn_write — queues data (owned; NULL with final false means the interim
 * 100 Continue). A final response blocks parsing until it is written. */
static void conn_write(struct httpd_conn *c, char *data, size_t len, bool final)
{
    struct httpd_write *w = pipe_calloc(1, sizeof *w);
    w->conn = c;
    w->data = data;
    w->final = final;
    uv_buf_t b = data ? uv_buf_init(data, (unsigned)len)
                      : uv_buf_init(httpd_continue, sizeof httpd_continue - 1);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0) {
        pipe_free(w->data);
        pipe_free(w);
        conn_close(c);
        return;
    }
    c->srv->n.bytes_out += b.len;
    if (final) {
        c->writing = true;
        /* a client that does not read its response is cut off like an idle one */
        c->deadline = uv_now(c->srv->loop) + (uint64_t)c->srv->cfg.idle_timeout_ms;
    }
}

static void conn_respond(struct httpd_conn *c, int status, const char *content_type,
                         const void *body, size_t len, const char *extra, bool head)
{
    if (status < 200 || status > 599)
        status = 500;
    bool bodiless = status == 204 || status == 304;
    struct pipe_buf b;
    pipe_buf_init(&b, SIZE_MAX);
    pipe_buf_printf(&b, "HTTP/1.1 %d %s\r\n", status, httpd_reason(status));
    if (content_type)
        pipe_buf_printf(&b, "Content-Type: %s\r\n", content_type);
    if (!bodiless)
        pipe_buf_printf(&b, "Content-Length: %zu\r\n", len);
    pipe_buf_printf(&b, "Connection: %s\r\n%s\r\n", c->last ? "close" : "keep-alive",
                    extra ? extra : "");
    if (!bodiless && !head && len)
        pipe_buf_append(&b, body, len);
    size_t n;
    char *data = pipe_buf_steal(&b, &n);
    c->srv->n.responses[status / 100]++;
    conn_write(c, data, n, true);
    conn_update(c);
}

/* conn_fail — answers a request the server refuses, then closes. */
static void conn_fail(struct httpd_conn *c, int status)
{
    req_free(c->cur);
    c->cur = NULL;
    c->last = true;
    const char *reason = httpd_reason(status);
    char body[64];
    int n = snprintf(body, sizeof body, "%s\n", reason);
    conn_respond(c, status, "text/plain", body, (size_t)n, NULL, false);
}

void pipe_httpd_respond(struct pipe_http_request *r, int status, const char *content_type,
                        const void *body, size_t len, const char *extra_headers)
{
    struct httpd_req *rq = (struct httpd_req *)r;
    struct httpd_conn *c = rq->conn;
    if (c) {
        rq->conn = NULL;
        c->inflight = NULL;
        c->srv->n.requests_pending--;
        if (!rq->keep_alive || c->srv->draining)
            c->last = true;
        conn_respond(c, status, content_type, body, len, extra_headers, rq->is_head);
    }
    req_free(rq);
}

/* ---- connections: reading and state ------------------------------------ */

/* conn_update — reads while there is room for pipelined bytes (or while
 * lingering) and arms the timer for the current state: none while the
 * handler holds a request, else the deadline set when the state began. */
static void conn_update(struct httpd_conn *c)
{
    if (c->closing)
        return;
    size_t pending = c->in.len - c->in_pos;
    bool want = !c->peer_eof && (c->lingering || pending < c->srv->cfg.max_pipeline_bytes);
    if (want != c->reading) {
        int rc = 0;
        if (want)
            rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        else
            uv_read_stop((uv_stream_t *)&c->tcp);
        if (rc < 0) {
            conn_close(c);
            return;
        }
        c->reading = want;
    }
    if (c->inflight && !c->writing) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = uv_now(c->srv->loop);
    uv_timer_start(&c->timer, on_timer, c->deadline > now ? c->deadline - now : 0, 0);
}

/* The read buffer is the connection's own pipe_buf: libuv reads straight
 * into its tail, so there is no copy between the socket and the parser. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct httpd_conn *c = h->data;
    (void)suggested;
    if (c->lingering) {
        pipe_buf_reset(&c->in);
        c->in_pos = 0;
    }
    if (c->in_pos > 0) {
        pipe_buf_consume(&c->in, c->in_pos);
        c->in_pos = 0;
    }
    if (pipe_buf_reserve(&c->in, HTTPD_READ_CHUNK) < 0) {
        *buf = uv_buf_init(NULL, 0); /* read_cb sees UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init(c->in.data + c->in.len, HTTPD_READ_CHUNK);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct httpd_conn *c = s->data;
    (void)buf;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF || c->lingering) {
            conn_close(c);
            return;
        }
        /* A half-closed client may still want its answers. */
        c->peer_eof = true;
        conn_advance(c);
        return;
    }
    c->srv->n.bytes_in += (uint64_t)nread;
    if (c->lingering)
        return;
    c->in.len += (size_t)nread;
    c->in.data[c->in.len] = '\0';
    conn_advance(c);
}

/* conn_dispatch — hands the request just completed to the handler. */
static void conn_dispatch(struct httpd_conn *c)
{
    struct httpd_req *rq = c->cur;
    c->cur = NULL;
    rq->pub.body = rq->body.data ? rq->body.data : "";
    rq->pub.body_len = rq->body.len;
    if (!rq->keep_alive)
        c->last = true;
    rq->conn = c;
    c->inflight = rq;
    c->srv->n.requests++;
    c->srv->n.requests_pending++;
    c->srv->handler(&rq->pub, c->srv->arg);
}

/* conn_parse — feeds buffered bytes to the parser while nothing else is
 * pending: no request with the handler, no response being written, and not
 * past the last request. Returns false if the connection was failed. */
static bool conn_parse(struct httpd_conn *c)
{
    while (!c->closing && !c->lingering && !c->inflight && !c->writing && !c->last
           && c->in_pos < c->in.len && !(c->srv->draining && !c->cur)) {
        size_t avail = c->in.len - c->in_pos;
        size_t n = http_parser_execute(&c->parser, &httpd_settings, c->in.data + c->in_pos, avail);
        c->in_pos += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            conn_dispatch(c);
        } else if (e != HPE_OK || n < avail) {
            if (c->closing)
                return false;
            int status = c->err_status ? c->err_status : e == HPE_HEADER_OVERFLOW ? 431 : 400;
            conn_fail(c, status);
            return false;
        }
    }
    return true;
}

/* conn_advance — makes all the progress possible now, then decides whether
 * the connection ends and otherwise what it waits for. */
static void conn_advance(struct httpd_conn *c)
{
    if (!conn_parse(c) || c->closing || c->lingering)
        return;
    bool idle = !c->cur && !c->inflight && !c->writing;
    if (c->in_pos == c->in.len) {
        c->in_pos = 0;
        if (idle)
            pipe_buf_cleanup(&c->in); /* idle keep-alive connections hold no buffer */
        else
            pipe_buf_reset(&c->in);
    }
    if (c->peer_eof && !c->inflight && !c->writing) {
        conn_close(c); /* nothing more can arrive, nothing left to send */
        return;
    }
    if (idle && (c->srv->draining || c->last)) {
        conn_linger(c);
        return;
    }
    conn_update(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct httpd_conn *c = req->data;
    if (status < 0 && !c->closing)
        conn_close(c);
}

/* conn_linger — closes gently: shuts the write side and discards input until
 * the client closes too (or briefly times out), so that bytes the client
 * sent after its last request do not turn into a reset that could destroy
 * the response before the client has read it. */
static void conn_linger(struct httpd_conn *c)
{
    int64_t ms = c->srv->cfg.idle_timeout_ms < HTTPD_LINGER_MS ? c->srv->cfg.idle_timeout_ms
                                                                : HTTPD_LINGER_MS;
    c->lingering = true;
    c->deadline = uv_now(c->srv->loop) + (uint64_t)ms;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        conn_close(c);
        return;
    }
    conn_update(c);
}

static void on_timer(uv_timer_t *t)
{
    struct httpd_conn *c = t->data;
    if (c->closing)
        return;
    if (c->lingering) {
        conn_close(c);
        return;
    }
    c->srv->n.timeouts++;
    if (c->cur && !c->writing && !c->inflight)
        conn_fail(c, 408);
    else
        conn_close(c); /* idle, or a response the client does not read */
}

/* ---- connections: life cycle ------------------------------------------- */

static void srv_handle_closed(struct pipe_httpd *srv)
{
    if (--srv->open_handles > 0 || !srv->closing)
        return;
    void (*done)(void *) = srv->done;
    void *arg = srv->done_arg;
    pipe_free(srv->listen);
    pipe_free(srv);
    if (done)
        done(arg);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct httpd_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    struct pipe_httpd *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pipe_buf_cleanup(&c->in);
    pipe_free(c);
    srv_handle_closed(srv);
}

/* conn_close — closes at once. A request with the handler is detached: it
 * stays valid and answering it just frees it. */
static void conn_close(struct httpd_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    struct pipe_httpd *srv = c->srv;
    if (c->inflight) {
        c->inflight->conn = NULL;
        c->inflight = NULL;
        srv->n.requests_pending--;
        srv->n.responses_dropped++;
    }
    req_free(c->cur);
    c->cur = NULL;
    if (c->counted)
        srv->n.connections_open--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void conn_set_peer(struct httpd_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    snprintf(c->peer, sizeof c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, port);
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct pipe_httpd *srv = listener->data;
    if (status < 0) {
        pipe_log_warn("http accept failed", "err=\"%s\"", uv_strerror(status));
        return;
    }
    struct httpd_conn *c = pipe_calloc(1, sizeof *c);
    c->srv = srv;
    pipe_buf_init(&c->in, srv->cfg.max_pipeline_bytes + HTTPD_READ_CHUNK);
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->open_handles++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    if (srv->n.connections_open >= srv->cfg.max_connections) {
        srv->n.connections_rejected++;
        conn_close(c);
        return;
    }
    c->counted = true;
    srv->n.connections_open++;
    srv->n.connections_accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    conn_set_peer(c);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->deadline = uv_now(srv->loop) + (uint64_t)srv->cfg.idle_timeout_ms;
    conn_update(c);
}

/* ---- the server -------------------------------------------------------- */

void pipe_httpd_config_defaults(struct pipe_httpd_config *c)
{
    memset(c, 0, sizeof *c);
    c->listen = "127.0.0.1:8080";
    c->max_header_bytes = 16 * 1024;
    c->max_body_bytes = 16 * 1024 * 1024;
    c->max_pipeline_bytes = 64 * 1024;
    c->idle_timeout_ms = 60 * 1000;
    c->request_timeout_ms = 30 * 1000;
    c->max_connections = 1024;
}

/* config_resolve — zero fields take defaults; negative timeouts are errors. */
static int config_resolve(const struct pipe_httpd_config *in, struct pipe_httpd_config *out)
{
    struct pipe_httpd_config d;
    pipe_httpd_config_defaults(&d);
    *out = *in;
    if (!out->listen)
        out->listen = d.listen;
    if (!out->max_header_bytes)
        out->max_header_bytes = d.max_header_bytes;
    if (!out->max_body_bytes)
        out->max_body_bytes = d.max_body_bytes;
    if (!out->max_pipeline_bytes)
        out->max_pipeline_bytes = d.max_pipeline_bytes;
    if (!out->idle_timeout_ms)
        out->idle_timeout_ms = d.idle_timeout_ms;
    if (!out->request_timeout_ms)
        out->request_timeout_ms = d.request_timeout_ms;
    if (!out->max_connections)
        out->max_connections = d.max_connections;
    if (out->idle_timeout_ms < 0 || out->request_timeout_ms < 0)
        return PIPE_ECONFIG;
    return 0;
}

/* parse_listen — "a.b.c.d:port", "[v6]:port" or ":port" into ss. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN];
    const char *port;
    size_t hlen;
    bool v6 = s[0] == '[';
    if (v6) {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return PIPE_ECONFIG;
        hlen = (size_t)(end - s - 1);
        s++;
        port = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return PIPE_ECONFIG;
        hlen = (size_t)(colon - s);
        port = colon + 1;
    }
    size_t plen = strlen(port);
    if (hlen >= sizeof host || plen == 0 || plen > 5 || strspn(port, "0123456789") != plen)
        return PIPE_ECONFIG;
    int p = atoi(port);
    if (p > 65535)
        return PIPE_ECONFIG;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    memset(ss, 0, sizeof *ss);
    if (v6) {
        *len = sizeof(struct sockaddr_in6);
        return uv_ip6_addr(host, p, (struct sockaddr_in6 *)ss) == 0 ? 0 : PIPE_ECONFIG;
    }
    *len = sizeof(struct sockaddr_in);
    return uv_ip4_addr(hlen ? host : "0.0.0.0", p, (struct sockaddr_in *)ss) == 0 ? 0 : PIPE_ECONFIG;
}

/* listen_socket — bound and listening, made here rather than by libuv so that
 * a bind failure is reported at once and leaves no handle to close
 * asynchronously. Returns the fd and its port. */
static int listen_socket(const struct sockaddr_storage *ss, socklen_t len, int *fd_out, int *port)
{
    int rc = 0;
    int one = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, HTTPD_BACKLOG) < 0) {
        rc = -errno;
        goto out;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) < 0) {
        rc = -errno;
        goto out;
    }
    *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
    *fd_out = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int pipe_httpd_new(uv_loop_t *loop, const struct pipe_httpd_config *c, pipe_httpd_handler h,
                   void *arg, struct pipe_httpd **out)
{
    struct pipe_httpd_config cfg;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    int fd = -1, port = 0;
    int rc = PIPE_EINVAL;
    if (!loop || !c || !h || !out)
        goto out;
    rc = config_resolve(c, &cfg);
    if (rc == 0)
        rc = parse_listen(cfg.listen, &ss, &sslen);
    if (rc == 0)
        rc = listen_socket(&ss, sslen, &fd, &port);
    if (rc < 0)
        goto out;
    struct pipe_httpd *srv = pipe_calloc(1, sizeof *srv);
    srv->loop = loop;
    srv->listen = pipe_strdup(cfg.listen);
    srv->cfg = cfg;
    srv->cfg.listen = srv->listen;
    srv->handler = h;
    srv->arg = arg;
    srv->port = port;
    uv_tcp_init(loop, &srv->listener);
    uv_timer_init(loop, &srv->gate);
    srv->listener.data = srv;
    srv->open_handles = 2;
    srv->listening = true;
    rc = uv_tcp_open(&srv->listener, fd);
    if (rc == 0) {
        fd = -1; /* the handle owns it now */
        rc = uv_listen((uv_stream_t *)&srv->listener, HTTPD_BACKLOG, on_connection);
    }
    if (rc < 0) {
        pipe_httpd_close(srv, NULL, NULL); /* freed once the loop runs */
        goto out;
    }
    *out = srv;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int pipe_httpd_port(const struct pipe_httpd *h)
{
    return h->port;
}

static void on_srv_handle_closed(uv_handle_t *h)
{
    srv_handle_closed(h->data);
}

static void srv_close_listener(struct pipe_httpd *srv)
{
    if (!srv->listening)
        return;
    srv->listening = false;
    uv_close((uv_handle_t *)&srv->listener, on_srv_handle_closed);
}

void pipe_httpd_stop_accepting(struct pipe_httpd *h)
{
    if (h->closing)
        return;
    srv_close_listener(h);
    h->draining = true;
    for (struct httpd_conn *c = h->conns; c; c = c->next) {
        if (!c->closing && !c->lingering && !c->cur && !c->inflight && !c->writing)
            conn_linger(c);
    }
}

void pipe_httpd_close(struct pipe_httpd *h, void (*done)(void *arg), void *arg)
{
    if (!h || h->closing)
        return;
    h->closing = true;
    h->draining = true;
    h->done = done;
    h->done_arg = arg;
    srv_close_listener(h);
    for (struct httpd_conn *c = h->conns; c; c = c->next)
        conn_close(c);
    h->gate.data = h;
    uv_close((uv_handle_t *)&h->gate, on_srv_handle_closed);
}

void pipe_httpd_counters(const struct pipe_httpd *h, struct pipe_httpd_counters *out)
{
    *out = h->n;
}
