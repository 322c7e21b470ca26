/* httpd_int — what the httpd files share: the server, connection and
 * request structs and the functions that cross between httpd.c (the server),
 * httpd_req.c (requests and the parser callbacks that build them) and
 * httpd_conn.c (connection I/O, timers and responses). Not for callers. */
#ifndef PIPE_HTTPD_INT_H
#define PIPE_HTTPD_INT_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "libpipe/buf.h"
#include "libpipe/httpd.h"

#define PIPE__HTTPD_READ_CHUNK  (64 * 1024)
#define PIPE__HTTPD_MAX_HEADERS 256
#define PIPE__HTTPD_LINGER_MS   2000
#define PIPE__HTTPD_BACKLOG     511
#define PIPE__HTTPD_PEER_LEN    64
/* connections answered 503 at once and still closing; beyond it, the next
 * one is closed without an answer (a flood must not pile up descriptors) */
#define PIPE__HTTPD_MAX_REFUSING 64
#define PIPE__HTTPD_EARLY_MAX    (64 * 1024)

#define PIPE__HTTPD_CONTAINER(ptr, type, field)                                                    \
    ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

/* Where the header callbacks are: what the last piece stored was. */
enum httpd_hstate { HS_NONE, HS_URL, HS_FIELD, HS_VALUE };

struct httpd_conn;

/* A request: the public head, then what httpd needs to build and answer it.
 * Strings live in head ("url\0name\0value\0...") and are pointed to only
 * once the headers are complete, when head stops growing. */
struct httpd_req {
    struct pipe_http_request pub; /* first: the handler's pointer is cast back */
    struct pipe_httpd *srv;
    struct httpd_conn *conn; /* NULL once the connection is gone */
    struct pipe_buf head;    /* capped at max_header_bytes */
    struct pipe_buf body;    /* capped at max_body_bytes */
    size_t *offs;            /* name and value offsets into head, 2 per header */
    size_t nhdr;
    size_t offs_cap;
    struct pipe_http_header *hdrs;
    enum httpd_hstate hstate;
    bool headers_done;
    size_t trailer_bytes;
    bool keep_alive;
    bool is_head;
    bool receiving;  /* counted in bodies_receiving */
    size_t declared; /* counted in body_bytes_declared */
    bool early;      /* answered by on_headers: early holds the answer */
    struct pipe_http_early ans;
    char peer[PIPE__HTTPD_PEER_LEN];
};

/* A client address without its port, for the per-address connection cap. */
struct httpd_ip {
    int family;
    unsigned char addr[16];
};

struct httpd_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    struct pipe_httpd *srv;
    struct httpd_conn *prev, *next;
    http_parser parser;
    struct pipe_buf in; /* read, not yet parsed: [in_pos, in.len) */
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
    bool refusing; /* answered 503 at accept, closing: counted in srv->refusing */
    struct httpd_ip ip;
    char peer[PIPE__HTTPD_PEER_LEN];
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
    size_t refusing;  /* connections answered 503 at accept, still closing */
    bool listening;   /* the listener handle is open */
    bool draining;    /* no new requests */
    bool closing;
    void (*done)(void *arg);
    void *done_arg;
    struct pipe_httpd_counters n;
};
/* httpd_req.c */
struct httpd_req *pipe__httpd_req_new(struct httpd_conn *c);
void pipe__httpd_req_free(struct httpd_req *rq); /* NULL is a no-op */
/* the body has arrived whole (or will not): no longer counted as receiving */
void pipe__httpd_req_received(struct httpd_req *rq);
extern const http_parser_settings pipe__httpd_settings;

/* httpd_conn.c */
void pipe__httpd_on_connection(uv_stream_t *listener, int status);
/* data is owned; NULL with final false writes the interim 100 Continue */
void pipe__httpd_conn_write(struct httpd_conn *c, char *data, size_t len, bool final);
void pipe__httpd_conn_close(struct httpd_conn *c);
void pipe__httpd_conn_linger(struct httpd_conn *c);

/* httpd.c — one of the server's handles (or a connection) has closed */
void pipe__httpd_handle_closed(struct pipe_httpd *srv);

#endif
