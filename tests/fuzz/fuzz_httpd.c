/* libFuzzer target: the HTTP server (libpipe/httpd*.c) over the bytes a
 * client sends, the most untrusted input sluice reads. One real server
 * (127.0.0.1:0, small caps) lives for the whole run on a libuv loop; each
 * input opens one TCP connection, writes the request bytes in pieces (so
 * the parser sees split reads), half-closes, and runs the loop until the
 * client has read EOF and the server has closed the connection.
 *
 * Input: byte 0 chooses how the handler answers (bits 0-1: at once, from
 * a 0 ms timer, from an idle callback or from a 1 ms timer; bits 2-7:
 * which of every six requests are answered later), byte 1 the write
 * pieces (bits 0-2: the largest piece, 1 .. 8192 bytes; bits 3-5: the
 * seed of their sizes) and how the client ends (bits 6-7: 3 resets the
 * connection once all is sent, without reading the answers; any other
 * value half-closes and reads to EOF); the rest is what the client sends.
 * Paths choose the answer: "/early[/NNN]" is answered by the head callback
 * before the body (status NNN, default 403), "/s/NNN" by the handler with
 * NNN, any other with 200 and the body's length. The handler stops the server from
 * accepting on "/drain" (pipe_httpd_stop_accepting) and closes it on
 * "/close" (pipe_httpd_close) before it answers; either way the next input
 * gets a new server.
 *
 * Invariants (abort): no hang (when the loop would wait on the server's
 * own long timeouts or for ever, something must happen within 1 s until
 * the client has read EOF and the server closed); the client reads a
 * sequence of well-formed HTTP/1.1 responses (status line, Connection,
 * Content-Length and that many body bytes; none after "Connection: close";
 * a HEAD request's answer has no body) and then EOF, never a reset; every
 * final response the server counted reaches the client, none is dropped;
 * each request the head callback and the handler see matches an
 * independent parse of the same bytes (method, declared length, body
 * length equal to Content-Length or the chunks' sum); the server's gauges
 * return to zero once the connection is gone. A client that resets is
 * only checked for what it read and for the server's counters and gauges:
 * its answers may be dropped, and one the handler answers later must
 * still be freed. Once drained, the server still answers what it holds,
 * with "Connection: close"; once closed, the client may see a reset, every
 * handle must close and the done callback run. ASan, UBSan and LSan come
 * from libFuzzer.
 * Build: make fuzz (FUZZ_PIPE_TARGETS). */
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "libpipe/httpd.h"
#include "libpipe/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RECS  2048
#define HANG_MS   1000 /* the server's own timeouts are longer: 2 s to linger, 30 s, 60 s */
#define MAX_ITERS 200000
#define HDR_TEXT  128

/* What an independent parse of the input says about request i. */
struct rec {
    enum http_method method;
    bool headers_done, complete, chunked, has_length;
    uint64_t content_length;
    uint64_t body_len;
};

/* The client's view of the responses it reads. */
struct reader {
    http_parser p;
    bool in_msg, final, has_length, close_seen, after_close, skip_body;
    int connection; /* 0 none, 1 keep-alive, 2 close */
    bool in_value;
    char field[HDR_TEXT], value[HDR_TEXT];
    size_t field_len, value_len;
    size_t finals;
};

static struct {
    uv_loop_t loop;
    struct pipe_httpd *srv;
    int port;
    size_t base_handles;
    /* this input */
    struct rec recs[MAX_RECS];
    size_t nrecs;
    uint8_t mode;
    size_t heads, handled, early, pending_async;
    int fd;
    uv_poll_t poll;
    bool polling, eof, reset;
    bool drained, closing, closed; /* the server: stop_accepting, close, done */
    uv_timer_t watchdog;           /* not counted in handles() */
    bool barked;
    uint64_t client_bytes;
    struct reader rd;
} fz;

/* ---- the reference parse of the request bytes ------------------------- */

static struct rec *ref_cur(void)
{
    return fz.nrecs ? &fz.recs[fz.nrecs - 1] : NULL;
}

/* A request's method is known from its first byte (only HEAD starts with
 * 'H'), so even a refusal before its headers end must omit its body. */
static int ref_begin(http_parser *p)
{
    if (fz.nrecs == MAX_RECS)
        return -1;
    memset(&fz.recs[fz.nrecs++], 0, sizeof fz.recs[0]);
    ref_cur()->method = (enum http_method)p->method;
    return 0;
}

static int ref_headers(http_parser *p)
{
    struct rec *r = ref_cur();
    r->headers_done = true;
    r->method = (enum http_method)p->method;
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->has_length = (p->flags & F_CONTENTLENGTH) != 0;
    r->content_length = r->has_length ? p->content_length : 0;
    return 0;
}

static int ref_body(http_parser *p, const char *at, size_t len)
{
    (void)p;
    (void)at;
    ref_cur()->body_len += len;
    return 0;
}

static int ref_complete(http_parser *p)
{
    (void)p;
    ref_cur()->complete = true;
    return 0;
}

static const http_parser_settings ref_settings = {
    .on_message_begin = ref_begin,
    .on_headers_complete = ref_headers,
    .on_body = ref_body,
    .on_message_complete = ref_complete,
};

static void ref_parse(const uint8_t *req, size_t len)
{
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    fz.nrecs = 0;
    http_parser_execute(&p, &ref_settings, (const char *)req, len);
}

/* ---- the server's callbacks -------------------------------------------- */

/* parse_status — NNN after prefix in path, or dflt. */
static int parse_status(const char *path, const char *prefix, int dflt)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0 || path[n] != '/')
        return dflt;
    return atoi(path + n + 1);
}

static void on_head(struct pipe_http_request *r, void *arg, struct pipe_http_early *ans)
{
    (void)arg;
    size_t i = fz.heads++;
    if (i >= fz.nrecs || !fz.recs[i].headers_done)
        abort(); /* the server saw a request the reference parse did not */
    const struct rec *ref = &fz.recs[i];
    int64_t declared = ref->chunked ? -1 : (int64_t)ref->content_length;
    if (strcmp(r->method, http_method_str(ref->method)) != 0 || r->content_length != declared ||
        r->body_len != 0 || r->ctx != NULL)
        abort();
    r->ctx = &fz.recs[i];
    if (strncmp(r->path, "/early", 6) != 0)
        return;
    ans->status = parse_status(r->path, "/early", 403);
    if (ans->status == 0)
        return;
    ans->content_type = (fz.mode & 1) ? "text/plain" : NULL;
    pipe_buf_append(&ans->body, "early\n", 6);
    pipe_buf_append(&ans->headers, "X-Early: 1\r\n", 12);
    fz.early++;
}

static void answer(struct pipe_http_request *r)
{
    char body[64];
    int n = snprintf(body, sizeof body, "len=%zu\n", r->body_len);
    pipe_httpd_respond(r, parse_status(r->path, "/s", 200), "text/plain", body, (size_t)n,
                       "X-Fuzz: 1\r\n");
}

/* A request answered later, from a timer or an idle callback. */
struct later {
    union {
        uv_timer_t timer;
        uv_idle_t idle;
        uv_handle_t handle;
    } u;
    struct pipe_http_request *req;
};

static void on_later_closed(uv_handle_t *h)
{
    pipe_free(h->data);
    fz.pending_async--;
}

static void later_fire(uv_handle_t *h)
{
    struct later *l = h->data;
    answer(l->req);
    uv_close(h, on_later_closed);
}

static void on_later_timer(uv_timer_t *t)
{
    later_fire((uv_handle_t *)t);
}

static void on_later_idle(uv_idle_t *i)
{
    later_fire((uv_handle_t *)i);
}

static void on_server_closed(void *arg)
{
    (void)arg;
    fz.closed = true;
}

static void on_request(struct pipe_http_request *r, void *arg)
{
    (void)arg;
    const struct rec *ref = r->ctx;
    size_t i = fz.handled++;
    if (!ref || !ref->complete || r->body_len != ref->body_len ||
        (r->content_length >= 0 && r->body_len != (size_t)r->content_length) ||
        strcmp(r->method, http_method_str(ref->method)) != 0 || strlen(r->body) > r->body_len)
        abort();
    if (strcmp(r->path, "/drain") == 0 && !fz.closing) {
        fz.drained = true;
        pipe_httpd_stop_accepting(fz.srv);
    } else if (strcmp(r->path, "/close") == 0 && !fz.closing) {
        fz.closing = true;
        pipe_httpd_close(fz.srv, on_server_closed, NULL);
    }
    int kind = fz.mode & 3;
    if (kind == 0 || !((fz.mode >> (2 + i % 6)) & 1)) {
        answer(r);
        return;
    }
    struct later *l = pipe_calloc(1, sizeof *l);
    l->req = r;
    l->u.handle.data = l;
    fz.pending_async++;
    if (kind == 2) {
        uv_idle_init(&fz.loop, &l->u.idle);
        uv_idle_start(&l->u.idle, on_later_idle);
    } else {
        uv_timer_init(&fz.loop, &l->u.timer);
        uv_timer_start(&l->u.timer, on_later_timer, kind == 3 ? 1 : 0, 0);
    }
}

/* ---- the client's response reader -------------------------------------- */

/* rd_header_done — judges one complete response header line. */
static void rd_header_done(struct reader *rd)
{
    if (!rd->in_value)
        return;
    rd->in_value = false;
    rd->field[rd->field_len] = rd->value[rd->value_len] = '\0';
    if (strcasecmp(rd->field, "Content-Length") == 0) {
        if (rd->has_length)
            abort(); /* twice */
        rd->has_length = true;
    } else if (strcasecmp(rd->field, "Connection") == 0) {
        if (rd->connection)
            abort();
        rd->connection = strcmp(rd->value, "close") == 0        ? 2
                         : strcmp(rd->value, "keep-alive") == 0 ? 1
                                                                : (abort(), 0);
    }
    rd->field_len = rd->value_len = 0;
}

static void rd_append(char *dst, size_t *len, const char *at, size_t n)
{
    size_t room = HDR_TEXT - 1 - *len;
    n = n < room ? n : room;
    memcpy(dst + *len, at, n);
    *len += n;
}

static int rd_begin(http_parser *p)
{
    struct reader *rd = p->data;
    if (rd->close_seen)
        rd->after_close = true; /* a response after "Connection: close" */
    rd->in_msg = true;
    rd->final = rd->has_length = rd->in_value = false;
    rd->connection = 0;
    rd->field_len = rd->value_len = 0;
    return rd->after_close ? -1 : 0;
}

static int rd_field(http_parser *p, const char *at, size_t len)
{
    struct reader *rd = p->data;
    rd_header_done(rd);
    rd_append(rd->field, &rd->field_len, at, len);
    return 0;
}

static int rd_value(http_parser *p, const char *at, size_t len)
{
    struct reader *rd = p->data;
    rd->in_value = true;
    rd_append(rd->value, &rd->value_len, at, len);
    return 0;
}

/* rd_headers — a status line and headers: 100 Continue, or a final answer
 * with Connection and (but for 204 and 304) Content-Length. A final answer
 * to a request that began with HEAD carries no body. */
static int rd_headers(http_parser *p)
{
    struct reader *rd = p->data;
    rd_header_done(rd);
    if (p->http_major != 1 || p->http_minor != 1)
        abort();
    if (p->status_code < 200) {
        if (p->status_code != 100)
            abort();
        return 0;
    }
    bool bodiless = p->status_code == 204 || p->status_code == 304;
    if (p->status_code > 599 || !rd->connection || rd->has_length == bodiless)
        abort();
    size_t k = rd->finals++;
    rd->final = true;
    rd->skip_body = k < fz.nrecs && fz.recs[k].method == HTTP_HEAD;
    return rd->skip_body ? 1 : 0;
}

static int rd_complete(http_parser *p)
{
    struct reader *rd = p->data;
    rd->in_msg = false;
    if (rd->final && rd->connection == 2)
        rd->close_seen = true;
    return 0;
}

static const http_parser_settings rd_settings = {
    .on_message_begin = rd_begin,
    .on_header_field = rd_field,
    .on_header_value = rd_value,
    .on_headers_complete = rd_headers,
    .on_message_complete = rd_complete,
};

static void rd_feed(const char *buf, size_t n)
{
    size_t used = http_parser_execute(&fz.rd.p, &rd_settings, buf, n);
    if (used != n || HTTP_PARSER_ERRNO(&fz.rd.p) != HPE_OK)
        abort(); /* not a well-formed response stream */
}

/* ---- the client -------------------------------------------------------- */

/* The client closes with a reset, also once it has read EOF: thousands of
 * connections a second would otherwise fill the port range with TIME_WAIT. */
static void on_poll_closed(uv_handle_t *h)
{
    (void)h;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fz.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fz.fd);
    fz.fd = -1;
}

static void client_stop(void)
{
    if (!fz.polling)
        return;
    fz.polling = false;
    uv_close((uv_handle_t *)&fz.poll, on_poll_closed);
}

/* on_readable — reads what the server sent; EOF ends the client: its
 * response stream must end between two responses. */
static void on_readable(uv_poll_t *h, int status, int events)
{
    (void)h;
    (void)events;
    char buf[4096];
    if (status < 0 && !fz.closing)
        abort(); /* libuv reports a socket error (a reset) as UV_EBADF */
    if (status < 0) {
        client_stop(); /* the server closed the connection at once */
        return;
    }
    for (;;) {
        ssize_t n = recv(fz.fd, buf, sizeof buf, 0);
        if (n > 0) {
            fz.client_bytes += (uint64_t)n;
            rd_feed(buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n < 0 && fz.closing) {
            client_stop(); /* the server closed the connection at once */
            return;
        }
        if (n < 0) {
            /* a reset: answers the server wrote may be lost */
            fprintf(stderr, "fuzz_httpd: recv: %s\n", strerror(errno));
            abort();
        }
        rd_feed(NULL, 0);
        if (fz.rd.in_msg && !fz.closing)
            abort(); /* a response cut short */
        fz.eof = true;
        client_stop();
        return;
    }
}

static void client_open(void)
{
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", fz.port, &sa);
    /* non-blocking, so that libFuzzer's SIGALRM cannot interrupt it */
    fz.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int err = fz.fd < 0 ? errno : 0;
    if (!err && connect(fz.fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        err = errno;
    if (err == EINPROGRESS) {
        struct pollfd pfd = {.fd = fz.fd, .events = POLLOUT};
        socklen_t len = sizeof err;
        while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
            ;
        getsockopt(fz.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err) {
        fprintf(stderr, "fuzz_httpd: connect: %s\n", strerror(err));
        abort();
    }
    uv_poll_init(&fz.loop, &fz.poll, fz.fd);
    uv_poll_start(&fz.poll, UV_READABLE, on_readable);
    fz.polling = true;
    fz.eof = false;
    memset(&fz.rd, 0, sizeof fz.rd);
    http_parser_init(&fz.rd.p, HTTP_RESPONSE);
    fz.rd.p.data = &fz.rd;
}

/* ---- running the loop -------------------------------------------------- */

static void count_handle(uv_handle_t *h, void *arg)
{
    if (h != (uv_handle_t *)&fz.watchdog)
        (*(size_t *)arg)++;
}

static size_t handles(void)
{
    size_t n = 0;
    uv_walk(&fz.loop, count_handle, &n);
    return n;
}

/* counters — the server's, zero once it is closing (h must not be used). */
static void counters(struct pipe_httpd_counters *n)
{
    if (fz.closing)
        memset(n, 0, sizeof *n);
    else
        pipe_httpd_counters(fz.srv, n);
}

/* progress — changes whenever the server or the client did something. */
static uint64_t progress(void)
{
    struct pipe_httpd_counters n;
    counters(&n);
    return n.bytes_in + n.bytes_out * 3 + n.connections_accepted * 5 + n.requests * 7 +
           n.connections_open * 11 + fz.client_bytes * 13 + handles() * 17 + fz.pending_async * 19 +
           fz.handled * 23 + fz.eof + fz.polling * 2u + fz.closed * 4u;
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    fz.barked = true;
}

/* step — one loop iteration while the client waits for the end. When the
 * loop would wait long (on the server's own timeouts, or for ever),
 * something must happen within HANG_MS or the server hangs. Not at once:
 * on a loaded machine the kernel may deliver a loopback packet late. */
static void step(void)
{
    int t = uv_backend_timeout(&fz.loop);
    if (t >= 0 && t <= HANG_MS) {
        uv_run(&fz.loop, UV_RUN_ONCE);
        return;
    }
    fz.barked = false;
    uv_timer_start(&fz.watchdog, on_watchdog, HANG_MS, 0);
    uv_run(&fz.loop, UV_RUN_ONCE);
    uv_timer_stop(&fz.watchdog);
    if (fz.barked) {
        fprintf(stderr,
                "fuzz_httpd: the server hangs (handles %zu, eof %d, polling %d, "
                "drained %d, closing %d)\n",
                handles(), fz.eof, fz.polling, fz.drained, fz.closing);
        abort();
    }
}

/* step_nowait — one iteration that does not block; true if it did something. */
static bool step_nowait(void)
{
    uint64_t before = progress();
    uv_run(&fz.loop, UV_RUN_NOWAIT);
    return progress() != before;
}

/* finished — the client is done and every handle but the server's own
 * (the listener's too once it stopped accepting; all once closed) closed. */
static bool finished(void)
{
    size_t want = fz.closing ? 0 : fz.drained ? fz.base_handles - 1 : fz.base_handles;
    return !fz.polling && fz.pending_async == 0 && handles() == want && (!fz.closing || fz.closed);
}

static void run_until_finished(void)
{
    for (int i = 0; !finished(); i++) {
        if (i == MAX_ITERS)
            abort();
        step();
    }
}

/* send_all — writes req in pieces, letting the server read each one. */
static void send_all(const uint8_t *req, size_t len, uint8_t cut)
{
    struct pipe_httpd_counters c;
    counters(&c);
    uint64_t in0 = c.bytes_in;
    static const size_t max_piece[8] = {1, 2, 3, 7, 16, 64, 512, 8192};
    size_t most = max_piece[cut & 7];
    uint32_t seed = (uint32_t)((cut >> 3) & 7) * 2654435761u + 1;
    size_t off = 0;
    while (off < len && fz.polling) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 8) % most;
        n = n < len - off ? n : len - off;
        ssize_t w = send(fz.fd, req + off, n, MSG_NOSIGNAL);
        if (w < 0 && fz.closing) {
            client_stop(); /* the server closed the connection at once */
            break;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            /* the server reset a connection whose answer is unread */
            fprintf(stderr, "fuzz_httpd: send: %s after %zu bytes\n", strerror(errno), off);
            abort();
        }
        off += w > 0 ? (size_t)w : 0;
        /* until the server has read it all, or reads no more for now */
        for (int i = 0; i < 64; i++) {
            counters(&c);
            if (fz.closing || c.bytes_in - in0 >= off || fz.eof || !step_nowait())
                break;
        }
    }
}

static void server_start(void)
{
    static bool loop_ready;
    if (!loop_ready) {
        signal(SIGPIPE, SIG_IGN);
        uv_loop_init(&fz.loop);
        uv_timer_init(&fz.loop, &fz.watchdog);
        loop_ready = true;
    }
    fz.drained = fz.closing = fz.closed = false;
    struct pipe_httpd_config cfg;
    pipe_httpd_config_defaults(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.max_header_bytes = 2048;
    cfg.max_body_bytes = 4096;
    cfg.max_pipeline_bytes = 1024;
    cfg.on_headers = on_head;
    if (pipe_httpd_new(&fz.loop, &cfg, on_request, NULL, &fz.srv) < 0)
        abort();
    fz.port = pipe_httpd_port(fz.srv);
    fz.base_handles = handles();
    fz.fd = -1;
}

/* check_counters — what the server counted for this connection agrees with
 * what the callbacks and the client saw, and its gauges are back to zero.
 * A client that read to EOF got every answer: the handler's, the early
 * ones, and at most one refusal. */
static void check_counters(const struct pipe_httpd_counters *a, const struct pipe_httpd_counters *b)
{
    uint64_t finals = 0;
    for (int i = 0; i < 6; i++)
        finals += b->responses[i] - a->responses[i];
    if (b->requests - a->requests != fz.handled ||
        b->early_answers - a->early_answers != fz.early || finals < fz.rd.finals ||
        b->connections_open || b->bodies_receiving || b->body_bytes_receiving ||
        b->body_bytes_declared || b->requests_pending)
        abort();
    if (fz.reset)
        return;
    size_t errors = fz.rd.finals - fz.handled - fz.early;
    if (finals != fz.rd.finals || fz.rd.finals < fz.handled + fz.early || errors > 1 ||
        b->responses_dropped != a->responses_dropped)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (!fz.srv)
        server_start();
    fz.mode = data[0];
    fz.heads = fz.handled = fz.early = 0;
    ref_parse(data + 2, size - 2);
    struct pipe_httpd_counters before, after;
    counters(&before);
    client_open();
    fz.reset = data[1] >> 6 == 3;
    send_all(data + 2, size - 2, data[1]);
    if (fz.reset)
        client_stop();
    else if (fz.polling)
        shutdown(fz.fd, SHUT_WR);
    run_until_finished();
    if (!fz.closing) {
        counters(&after);
        check_counters(&before, &after);
    }
    if (fz.drained && !fz.closing) {
        fz.closing = true;
        pipe_httpd_close(fz.srv, on_server_closed, NULL);
        run_until_finished();
    }
    if (fz.closing)
        fz.srv = NULL; /* freed: the next input starts another */
    return 0;
}
