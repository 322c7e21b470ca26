/* httpd — HTTP/1.1 server on libuv with asynchronous responses: the
 * configuration, the listening socket and the server's life cycle. The
 * server owns its listener and connections (httpd_conn.c); a request, once
 * with the handler, owns its memory and outlives its connection until it is
 * answered (httpd_req.c). */
#include "libpipe/httpd.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libpipe/err.h"
#include "libpipe/httpd_int.h"
#include "libpipe/mem.h"

void pipe__httpd_handle_closed(struct pipe_httpd *srv)
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
    return uv_ip4_addr(hlen ? host : "0.0.0.0", p, (struct sockaddr_in *)ss) == 0 ? 0
                                                                                  : PIPE_ECONFIG;
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
    if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, PIPE__HTTPD_BACKLOG) < 0) {
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
        rc = uv_listen((uv_stream_t *)&srv->listener, PIPE__HTTPD_BACKLOG,
                       pipe__httpd_on_connection);
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
    pipe__httpd_handle_closed(h->data);
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
            pipe__httpd_conn_linger(c);
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
        pipe__httpd_conn_close(c);
    h->gate.data = h;
    uv_close((uv_handle_t *)&h->gate, on_srv_handle_closed);
}

void pipe_httpd_counters(const struct pipe_httpd *h, struct pipe_httpd_counters *out)
{
    *out = h->n;
}
