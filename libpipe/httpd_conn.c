/* httpd_conn — one client connection: reads into a capped buffer, feeds the
 * parser one request at a time, hands each finished request to the handler,
 * writes the answer, and enforces the idle, request and write timeouts. A
 * request with the handler is detached, not freed, when its connection goes. */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "libpipe/err.h"
#include "libpipe/httpd_int.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"

static char httpd_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void conn_advance(struct httpd_conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);

/* ---- connections: writing ---------------------------------------------- */

static const char *httpd_reason(int status)
{
    const char *s = http_status_str((enum http_status)status);
    return strcmp(s, "<unknown>") == 0 ? "Unknown" : s;
}

static void conn_update(struct httpd_conn *c);

static void on_write(uv_write_t *req, int status)
{
    struct httpd_write *w = PIPE__HTTPD_CONTAINER(req, struct httpd_write, req);
    struct httpd_conn *c = w->conn;
    bool final = w->final;
    pipe_free(w->data);
    pipe_free(w);
    if (final)
        c->writing = false;
    if (c->closing)
        return;
    if (status < 0) {
        pipe__httpd_conn_close(c);
        return;
    }
    if (!final)
        return;
    if (c->last) {
        if (c->peer_eof)
            pipe__httpd_conn_close(c);
        else
            pipe__httpd_conn_linger(c);
        return;
    }
    c->deadline = uv_now(c->srv->loop) + (uint64_t)c->srv->cfg.idle_timeout_ms;
    conn_advance(c);
}

/* conn_write — queues data (owned; NULL with final false means the interim
 * 100 Continue). A final response blocks parsing until it is written. */
void pipe__httpd_conn_write(struct httpd_conn *c, char *data, size_t len, bool final)
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
        pipe__httpd_conn_close(c);
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
    pipe__httpd_conn_write(c, data, n, true);
    conn_update(c);
}

/* conn_fail — answers a request the server refuses, then closes. The
 * answer to a HEAD request has no body, like any other answer to HEAD. */
static void conn_fail(struct httpd_conn *c, int status)
{
    bool head = c->cur && c->cur->is_head;
    pipe__httpd_req_free(c->cur);
    c->cur = NULL;
    c->last = true;
    const char *reason = httpd_reason(status);
    char body[64];
    int n = snprintf(body, sizeof body, "%s\n", reason);
    conn_respond(c, status, "text/plain", body, (size_t)n, NULL, head);
}

/* conn_answer_early — answers the request being received with what the
 * on_headers callback decided. complete: the request had no body, so the
 * connection may be kept; otherwise the body is left unread and the
 * connection closes after the answer. */
static void conn_answer_early(struct httpd_conn *c, bool complete)
{
    struct httpd_req *rq = c->cur;
    c->cur = NULL;
    if (!complete || !rq->keep_alive || c->srv->draining)
        c->last = true;
    c->srv->n.early_answers++;
    struct pipe_http_early *a = &rq->ans;
    conn_respond(c, a->status, a->content_type, a->body.data, a->body.len, a->headers.data,
                 rq->is_head);
    pipe__httpd_req_free(rq);
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
    pipe__httpd_req_free(rq);
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
            pipe__httpd_conn_close(c);
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
    if (pipe_buf_reserve(&c->in, PIPE__HTTPD_READ_CHUNK) < 0) {
        *buf = uv_buf_init(NULL, 0); /* read_cb sees UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init(c->in.data + c->in.len, PIPE__HTTPD_READ_CHUNK);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct httpd_conn *c = s->data;
    (void)buf;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF || c->lingering) {
            pipe__httpd_conn_close(c);
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
    while (!c->closing && !c->lingering && !c->inflight && !c->writing && !c->last &&
           c->in_pos < c->in.len && !(c->srv->draining && !c->cur)) {
        size_t avail = c->in.len - c->in_pos;
        size_t n =
            http_parser_execute(&c->parser, &pipe__httpd_settings, c->in.data + c->in_pos, avail);
        c->in_pos += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            if (c->cur->early)
                conn_answer_early(c, true);
            else
                conn_dispatch(c);
        } else if (e != HPE_OK || n < avail) {
            if (c->closing)
                return false;
            if (c->cur && c->cur->early) {
                conn_answer_early(c, false);
                return false;
            }
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
        pipe__httpd_conn_close(c); /* nothing more can arrive, nothing left to send */
        return;
    }
    if (idle && (c->srv->draining || c->last)) {
        pipe__httpd_conn_linger(c);
        return;
    }
    conn_update(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct httpd_conn *c = req->data;
    if (status < 0 && !c->closing)
        pipe__httpd_conn_close(c);
}

/* conn_linger — closes gently: shuts the write side and discards input until
 * the client closes too (or briefly times out), so that bytes the client
 * sent after its last request do not turn into a reset that could destroy
 * the response before the client has read it. */
void pipe__httpd_conn_linger(struct httpd_conn *c)
{
    int64_t ms = c->srv->cfg.idle_timeout_ms < PIPE__HTTPD_LINGER_MS ? c->srv->cfg.idle_timeout_ms
                                                                     : PIPE__HTTPD_LINGER_MS;
    c->lingering = true;
    c->deadline = uv_now(c->srv->loop) + (uint64_t)ms;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        pipe__httpd_conn_close(c);
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
        pipe__httpd_conn_close(c);
        return;
    }
    c->srv->n.timeouts++;
    if (c->cur && !c->writing && !c->inflight)
        conn_fail(c, 408);
    else
        pipe__httpd_conn_close(c); /* idle, or a response the client does not read */
}

/* ---- connections: life cycle ------------------------------------------- */

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
    pipe__httpd_handle_closed(srv);
}

/* conn_close — closes at once. A request with the handler is detached: it
 * stays valid and answering it just frees it. */
void pipe__httpd_conn_close(struct httpd_conn *c)
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
    pipe__httpd_req_free(c->cur);
    c->cur = NULL;
    if (c->counted)
        srv->n.connections_open--;
    if (c->refusing)
        srv->refusing--;
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
    c->ip.family = ss.ss_family;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        memcpy(c->ip.addr, &a->sin_addr, sizeof a->sin_addr);
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        memcpy(c->ip.addr, &a->sin6_addr, sizeof a->sin6_addr);
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(c->peer, sizeof c->peer, "[%s]:%d", ip, port);
    }
}

/* conn_over_cap — true when c would exceed max_connections or, from its
 * address, max_connections_per_ip. A linear walk: the list is capped at
 * max_connections, and a hash table keyed by client addresses would be
 * one more table an attacker can aim at. */
static bool conn_over_cap(struct pipe_httpd *srv, const struct httpd_conn *c)
{
    if (srv->n.connections_open >= srv->cfg.max_connections)
        return true;
    if (!srv->cfg.max_connections_per_ip)
        return false;
    size_t same = 0;
    for (const struct httpd_conn *o = srv->conns; o; o = o->next)
        if (o != c && o->counted && !o->closing && o->ip.family == c->ip.family &&
            memcmp(o->ip.addr, c->ip.addr, sizeof o->ip.addr) == 0)
            same++;
    return same >= srv->cfg.max_connections_per_ip;
}

/* conn_refuse — answers 503 with Retry-After at once and closes (gently,
 * so the client reads the answer); a connection is not read for a
 * request. Past PIPE__HTTPD_MAX_REFUSING such answers in progress, the
 * connection is just closed. */
static void conn_refuse(struct pipe_httpd *srv, struct httpd_conn *c)
{
    static const char body[] = "{\"error\":\"busy\",\"message\":\"too many connections; retry\"}";
    srv->n.connections_rejected++;
    if (srv->refusing >= PIPE__HTTPD_MAX_REFUSING) {
        pipe__httpd_conn_close(c);
        return;
    }
    srv->refusing++;
    c->refusing = true;
    c->last = true;
    c->deadline = uv_now(srv->loop) + (uint64_t)srv->cfg.idle_timeout_ms;
    conn_respond(c, 503, "application/json", body, sizeof body - 1, "Retry-After: 1\r\n", false);
}

void pipe__httpd_on_connection(uv_stream_t *listener, int status)
{
    struct pipe_httpd *srv = listener->data;
    if (status < 0) {
        pipe_log_warn("http accept failed", "err=\"%s\"", uv_strerror(status));
        return;
    }
    struct httpd_conn *c = pipe_calloc(1, sizeof *c);
    c->srv = srv;
    pipe_buf_init(&c->in, srv->cfg.max_pipeline_bytes + PIPE__HTTPD_READ_CHUNK);
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
        pipe__httpd_conn_close(c);
        return;
    }
    conn_set_peer(c);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (conn_over_cap(srv, c)) {
        conn_refuse(srv, c);
        return;
    }
    c->counted = true;
    srv->n.connections_open++;
    srv->n.connections_accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    c->deadline = uv_now(srv->loop) + (uint64_t)srv->cfg.idle_timeout_ms;
    conn_update(c);
}
