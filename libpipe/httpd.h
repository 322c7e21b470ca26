/* httpd — a small HTTP/1.1 server on a libuv loop, for the filter's ingest
 * endpoint and every stage's admin endpoints.
 *
 * Responses are asynchronous: the handler receives a request and answers it
 * with pipe_httpd_respond() whenever it likes (from the loop thread), which
 * frees the request. Requests on one connection are handled strictly one at
 * a time, in order; while one awaits its answer, further bytes stay buffered
 * (up to a cap, then the socket is no longer read). Every buffer is capped:
 * headers, body, pipelined bytes, connections. Everything runs on the loop
 * thread; nothing here is thread safe. */
#ifndef PIPE_HTTPD_H
#define PIPE_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "libpipe/buf.h"

struct pipe_httpd;

struct pipe_http_header {
    const char *name;  /* as the client spelled it */
    const char *value; /* leading/trailing whitespace removed by the parser */
};

/* A complete request, body included. All strings are NUL-terminated and owned
 * by the request: valid until pipe_httpd_respond(). Only httpd creates these
 * (the struct is the public head of a larger private one). */
struct pipe_http_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* raw (not percent-decoded), without the query */
    const char *query;  /* after '?', "" if none */
    const struct pipe_http_header *headers;
    size_t header_count;
    const char *body; /* NUL-terminated for convenience; may hold NULs */
    size_t body_len;
    const char *peer;       /* "1.2.3.4:5678" or "[::1]:5678" */
    int64_t content_length; /* declared Content-Length; -1 for chunked, 0 for none */
    void *ctx;              /* set by the head callback for the handler (a route, a key's
                               channel, ...); httpd never reads or frees it, so it must
                               outlive the request (static or owned by the caller) */
};

/* pipe_httpd_handler — called once per request, on the loop thread. The
 * handler must eventually call pipe_httpd_respond(req, ...) exactly once,
 * either before it returns or later. */
typedef void (*pipe_httpd_handler)(struct pipe_http_request *req, void *arg);

/* An answer decided from the request line and headers alone. httpd
 * initialises both buffers empty (capped at 64 KiB each) and frees them. */
struct pipe_http_early {
    int status;               /* 0: go on (read the body, call the handler) */
    const char *content_type; /* NULL for none; must outlive the callback (static) */
    struct pipe_buf body;     /* the response body */
    struct pipe_buf headers;  /* extra header lines, each ending in "\r\n" */
};

/* pipe_httpd_head_fn — called on the loop thread once a request's line and
 * headers are complete, BEFORE any body byte is read or any body memory is
 * reserved: method, path, query, headers, content_length and peer are set
 * (body is ""). Leave ans->status 0 to go on: the body is read and the
 * handler called (req->ctx, if set here, travels with the request). Set
 * ans->status (and optionally the rest of *ans) to answer at once: the
 * handler is not called and the body is never read. A request without a
 * body keeps its connection (keep-alive as usual); one with a body is
 * answered with Connection: close and its body is discarded unread while
 * the connection closes. arg is the handler's arg. */
typedef void (*pipe_httpd_head_fn)(struct pipe_http_request *req, void *arg,
                                   struct pipe_http_early *ans);

struct pipe_httpd_config {
    const char *listen;            /* "127.0.0.1:8080", "0.0.0.0:0", "[::1]:0"; copied */
    size_t max_header_bytes;       /* URL + header names and values as stored, default
                                      16 KiB; 431 (414 for the URL alone). http_parser
                                      also refuses more than 80 KiB of raw header
                                      bytes, whatever this says */
    size_t max_body_bytes;         /* default 16 MiB; 413, decided from Content-Length
                                      before the body is read, or while chunks arrive.
                                      Memory grows as body bytes arrive, never
                                      reserved from the declared length */
    size_t max_pipeline_bytes;     /* bytes buffered behind a request awaiting its
                                      answer before the socket is no longer read;
                                      default 64 KiB */
    int64_t idle_timeout_ms;       /* keep-alive idle (and stalled response write);
                                      default 60 s */
    int64_t request_timeout_ms;    /* a request must arrive in full within this after
                                      its first byte, default 30 s; 408 */
    size_t max_connections;        /* default 1024; beyond it, a new connection is
                                      answered 503 with Retry-After and closed */
    size_t max_connections_per_ip; /* connections from one client address at
                                      most; 0 (the default): no limit below
                                      max_connections. Beyond it: 503 as above */
    pipe_httpd_head_fn on_headers; /* optional: a decision before the body */
};

/* Counters for /metrics. Gauges are "now"; the rest count since _new. */
struct pipe_httpd_counters {
    uint64_t connections_open; /* gauge */
    uint64_t connections_accepted;
    uint64_t connections_rejected; /* over max_connections or
                                      max_connections_per_ip: answered 503 and
                                      closed (or just closed when even the
                                      answers would pile up) */
    uint64_t bodies_receiving;     /* gauge: requests whose body is arriving */
    uint64_t body_bytes_receiving; /* gauge: body bytes held by those requests */
    uint64_t body_bytes_declared;  /* gauge: what those requests will hold: their
                                      Content-Length (chunked: bytes so far) — what
                                      a caller counts against its memory cap */
    uint64_t early_answers;        /* answered by on_headers, body unread */
    uint64_t requests;             /* complete requests handed to the handler */
    uint64_t requests_pending;     /* gauge: handed to the handler, not yet answered,
                                      client still connected */
    uint64_t responses[6];         /* by class: [2] = 2xx ... [5] = 5xx; [1] and [0]
                                      unused. Includes the server's own errors
                                      (400, 408, 413, 431, ...) */
    uint64_t responses_dropped;    /* the client went away while the handler held
                                      its request: the answer goes nowhere */
    uint64_t timeouts;             /* idle, request (408) and write timeouts */
    uint64_t bytes_in;
    uint64_t bytes_out;
};

/* pipe_httpd_config_defaults — fills c with the defaults above; listen is
 * "127.0.0.1:8080". */
void pipe_httpd_config_defaults(struct pipe_httpd_config *c);

/* pipe_httpd_new — binds and listens on c->listen (a numeric IPv4 address,
 * or IPv6 in brackets, then ":port"; an empty host means 0.0.0.0) and serves
 * on loop, calling h(req, arg) for every request. Zero fields of c take
 * their defaults. Returns 0 and *out, PIPE_ECONFIG for a bad address or
 * setting, or -errno when the socket cannot be bound (e.g. -EADDRINUSE).
 * Free with pipe_httpd_close(). */
int pipe_httpd_new(uv_loop_t *loop, const struct pipe_httpd_config *c, pipe_httpd_handler h,
                   void *arg, struct pipe_httpd **out);

/* pipe_httpd_port — the bound port (useful after listening on ":0"). */
int pipe_httpd_port(const struct pipe_httpd *h);

/* pipe_http_request_header — the value of the first header called name
 * (case-insensitive), or NULL if there is none. */
const char *pipe_http_request_header(const struct pipe_http_request *r, const char *name);

/* pipe_httpd_respond — answers r and frees it. Loop thread only; exactly once
 * per request. The response is written as one buffer: status line,
 * Content-Type (if content_type is not NULL), Content-Length, Connection:
 * keep-alive or close, extra_headers verbatim (each line ending in "\r\n",
 * trusted, or NULL), then body (copied; omitted for HEAD, 204 and 304). A
 * status outside 200..599 is sent as 500. If the client is gone or the
 * server closed, the request is just freed. */
void pipe_httpd_respond(struct pipe_http_request *r, int status, const char *content_type,
                        const void *body, size_t len, const char *extra_headers);

/* pipe_httpd_stop_accepting — closes the listener. Idle connections close
 * now; a connection receiving or holding a request finishes it (the answer
 * says Connection: close) and then closes; no further requests are read. */
void pipe_httpd_stop_accepting(struct pipe_httpd *h);

/* pipe_httpd_close — closes the listener and every connection at once and
 * frees h; done(arg) (may be NULL) runs from the loop once every handle is
 * closed. Requests not answered yet stay valid: answering them later just
 * frees them. h must not be used after this call. */
void pipe_httpd_close(struct pipe_httpd *h, void (*done)(void *arg), void *arg);

/* pipe_httpd_counters — a snapshot of the counters into *out. */
void pipe_httpd_counters(const struct pipe_httpd *h, struct pipe_httpd_counters *out);

#endif
