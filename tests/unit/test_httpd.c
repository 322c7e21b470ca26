/* Unit tests for httpd: a real server on 127.0.0.1:0 whose loop runs in a
 * thread, driven by raw blocking client sockets. Work that must happen on
 * the loop thread (answering a held request, stopping) goes through
 * fx_call(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "libpipe/err.h"
#include "libpipe/httpd.h"
#include "libpipe/mem.h"

#define FX_MAX_HELD 8

struct fx {
    uv_loop_t loop;
    uv_async_t async;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*call)(struct fx *f);
    bool call_done;
    struct pipe_httpd *h;
    int port;
    int delay_ms;                                /* for /slow */
    struct pipe_http_request *held[FX_MAX_HELD]; /* /hold requests */
    int nheld;
    char log[2048];                      /* "begin:/a;resp:/a;..." in the order the loop saw them */
    struct pipe_httpd_counters counters; /* snapshot taken when stopping */
    bool closed;                         /* pipe_httpd_close's done ran */
    int heads;                           /* on_headers calls */
    uint64_t body_bytes_seen;            /* body_bytes_receiving seen by on_headers */
};

/* A response answered later from a timer. */
struct delayed {
    uv_timer_t timer;
    struct pipe_http_request *req;
    struct fx *f;
};

static void fx_log(struct fx *f, const char *what, const char *path)
{
    pthread_mutex_lock(&f->mu);
    size_t n = strlen(f->log);
    snprintf(f->log + n, sizeof f->log - n, "%s:%s;", what, path);
    pthread_mutex_unlock(&f->mu);
}

static void echo(struct fx *f, struct pipe_http_request *r)
{
    const char *x = pipe_http_request_header(r, "x-test");
    char *body = r->body_len < 1000
                     ? pipe_asprintf("%s %s q=%s x=%s len=%zu peer=%s body=%s", r->method, r->path,
                                     r->query, x ? x : "-", r->body_len, r->peer, r->body)
                     : pipe_asprintf("%s %s len=%zu", r->method, r->path, r->body_len);
    fx_log(f, "resp", r->path);
    pipe_httpd_respond(r, 200, "text/plain", body, strlen(body), "X-Served: 1\r\n");
    pipe_free(body);
}

static const char ctx_mark[] = "from-head"; /* req->ctx set by on_head */

static void on_delayed_closed(uv_handle_t *h)
{
    pipe_free(h->data);
}

static void on_delay(uv_timer_t *t)
{
    struct delayed *d = t->data;
    echo(d->f, d->req);
    uv_close((uv_handle_t *)&d->timer, on_delayed_closed);
}

static void handler(struct pipe_http_request *r, void *arg)
{
    struct fx *f = arg;
    fx_log(f, "begin", r->path);
    if (r->ctx == ctx_mark) {
        fx_log(f, "ctx", r->path);
        echo(f, r);
    } else if (strcmp(r->path, "/slow") == 0) {
        struct delayed *d = pipe_calloc(1, sizeof *d);
        d->req = r;
        d->f = f;
        uv_timer_init(&f->loop, &d->timer);
        d->timer.data = d;
        uv_timer_start(&d->timer, on_delay, (uint64_t)f->delay_ms, 0);
    } else if (strcmp(r->path, "/hold") == 0) {
        pthread_mutex_lock(&f->mu);
        f->held[f->nheld++] = r;
        pthread_mutex_unlock(&f->mu);
    } else {
        echo(f, r);
    }
}

/* on_head — the early decision used by the tests: /deny is refused with
 * 401 (an extra header and a body built here), /ctx gets a context the
 * handler echoes, anything else goes on. */
static void on_head(struct pipe_http_request *r, void *arg, struct pipe_http_early *ans)
{
    struct fx *f = arg;
    struct pipe_httpd_counters n;
    f->heads++;
    pipe_httpd_counters(f->h, &n);
    f->body_bytes_seen = n.body_bytes_receiving;
    assert_string_equal(r->body, "");
    if (strcmp(r->path, "/deny") == 0) {
        const char *k = pipe_http_request_header(r, "X-Key");
        ans->status = 401;
        ans->content_type = "text/plain";
        pipe_buf_printf(&ans->body, "denied %s len=%lld\n", k ? k : "-",
                        (long long)r->content_length);
        pipe_buf_append_str(&ans->headers, "WWW-Authenticate: Basic realm=\"t\"\r\n");
    } else if (strcmp(r->path, "/ctx") == 0) {
        r->ctx = (void *)ctx_mark;
    }
}

static void on_async(uv_async_t *a)
{
    struct fx *f = a->data;
    pthread_mutex_lock(&f->mu);
    void (*fn)(struct fx *) = f->call;
    pthread_mutex_unlock(&f->mu);
    if (fn)
        fn(f);
    pthread_mutex_lock(&f->mu);
    f->call = NULL;
    f->call_done = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* fx_call — runs fn(f) on the loop thread and waits for it. */
static void fx_call(struct fx *f, void (*fn)(struct fx *f))
{
    pthread_mutex_lock(&f->mu);
    f->call = fn;
    f->call_done = false;
    pthread_mutex_unlock(&f->mu);
    uv_async_send(&f->async);
    pthread_mutex_lock(&f->mu);
    while (!f->call_done)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

static void *loop_thread(void *arg)
{
    struct fx *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static struct fx *fx_start(const struct pipe_httpd_config *cfg_in)
{
    struct fx *f = pipe_calloc(1, sizeof *f);
    struct pipe_httpd_config cfg;
    if (cfg_in)
        cfg = *cfg_in;
    else
        pipe_httpd_config_defaults(&cfg);
    cfg.listen = "127.0.0.1:0";
    f->delay_ms = 100;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(pipe_httpd_new(&f->loop, &cfg, handler, f, &f->h), 0);
    f->port = pipe_httpd_port(f->h);
    assert_true(f->port > 0);
    uv_async_init(&f->loop, &f->async, on_async);
    f->async.data = f;
    assert_int_equal(pthread_create(&f->thread, NULL, loop_thread, f), 0);
    return f;
}

static void on_closed(void *arg)
{
    struct fx *f = arg;
    f->closed = true;
}

static void do_close(struct fx *f)
{
    pipe_httpd_counters(f->h, &f->counters);
    pipe_httpd_close(f->h, on_closed, f);
    f->h = NULL;
    uv_close((uv_handle_t *)&f->async, NULL);
}

static void do_snapshot(struct fx *f)
{
    pipe_httpd_counters(f->h, &f->counters);
}

static void do_stop_accepting(struct fx *f)
{
    pipe_httpd_stop_accepting(f->h);
}

static void do_answer_held(struct fx *f)
{
    for (int i = 0; i < f->nheld; i++)
        echo(f, f->held[i]);
    f->nheld = 0;
}

/* fx_stop — closes the server, waits for the loop to run out of handles
 * and checks that nothing was left open. */
static void fx_stop(struct fx *f)
{
    fx_call(f, do_close);
    pthread_join(f->thread, NULL);
    assert_true(f->closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    pipe_free(f);
}

static bool fx_log_has(struct fx *f, const char *s)
{
    pthread_mutex_lock(&f->mu);
    bool has = strstr(f->log, s) != NULL;
    pthread_mutex_unlock(&f->mu);
    return has;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a blocking client ------------------------------------------------- */

struct client {
    int fd;
    char buf[1 << 16];
    size_t len;
};

struct resp {
    int status;
    char head[4096];
    char body[4096];
    size_t body_len;
};

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -errno;
    }
    return fd;
}

static struct client *cl_new(int port)
{
    struct client *c = pipe_calloc(1, sizeof *c);
    c->fd = tcp_connect(port);
    assert_true(c->fd >= 0);
    return c;
}

static void cl_free(struct client *c)
{
    close(c->fd);
    pipe_free(c);
}

static void cl_send_n(struct client *c, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server may close early: the response tells */
        s += w;
        n -= (size_t)w;
    }
}

static void cl_send(struct client *c, const char *s)
{
    cl_send_n(c, s, strlen(s));
}

/* cl_fill — reads more bytes; false on EOF, error or timeout. */
static bool cl_fill(struct client *c)
{
    if (c->len == sizeof c->buf)
        return false;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

/* cl_read_ex — one response: status line, headers, and a Content-Length
 * body unless it answers a HEAD. */
static int cl_read_ex(struct client *c, struct resp *r, bool head)
{
    char *end;
    memset(r, 0, sizeof *r);
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (!cl_fill(c))
            return -1;
    size_t hlen = (size_t)(end - c->buf) + 4;
    assert_true(hlen < sizeof r->head);
    memcpy(r->head, c->buf, hlen);
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
    size_t blen = cl ? strtoul(cl + 18, NULL, 10) : 0;
    if (r->status == 100 || head)
        blen = 0;
    while (c->len < hlen + blen)
        if (!cl_fill(c))
            return -1;
    r->body_len = blen < sizeof r->body - 1 ? blen : sizeof r->body - 1;
    memcpy(r->body, c->buf + hlen, r->body_len);
    memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
    c->len -= hlen + blen;
    return 0;
}

static int cl_read(struct client *c, struct resp *r)
{
    return cl_read_ex(c, r, false);
}

/* cl_closed — true when the server closed (EOF or reset) within the receive
 * timeout, with nothing else to read. */
static bool cl_closed(struct client *c)
{
    char b[256];
    ssize_t n = recv(c->fd, b, sizeof b, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static bool has_header(const struct resp *r, const char *line)
{
    return strcasestr(r->head, line) != NULL;
}

/* ---- tests ------------------------------------------------------------- */

static void test_httpd_get_and_post_round_trip(void **state)
{
    (void)state;
    struct fx *f = fx_start(NULL);
    struct client *c = cl_new(f->port);
    struct resp r;

    cl_send(c, "GET /hello?x=1&y=2 HTTP/1.1\r\nHost: a\r\nX-Test:  abc \r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "\r\nContent-Type: text/plain\r\n"));
    assert_true(has_header(&r, "\r\nConnection: keep-alive\r\n"));
    assert_true(has_header(&r, "\r\nX-Served: 1\r\n"));
    assert_non_null(strstr(r.body, "GET /hello q=x=1&y=2 x=abc len=0 peer=127.0.0.1:"));

    cl_send(c, "POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n[1,2,3]");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "POST /v1/events q= x=- len=7 "));
    assert_non_null(strstr(r.body, "body=[1,2,3]"));

    /* HEAD: the length of the body that GET would send, but no body */
    cl_send(c, "HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_read_ex(c, &r, true), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Content-Length: "));
    assert_null(strstr(r.head, "Content-Length: 0\r\n"));
    assert_int_equal(cl_read(c, &r), 0); /* must not have eaten the HEAD's "body" */
    assert_non_null(strstr(r.body, "GET /after "));

    /* absolute-form, as sent to proxies */
    cl_send(c, "GET http://example.com:80/abs/p?k=v#frag HTTP/1.1\r\nX-Test:\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_non_null(strstr(r.body, "GET /abs/p q=k=v x= len=0 "));
    cl_free(c);
    fx_stop(f);
}

static void test_httpd_request_trickled_byte_by_byte_is_reassembled(void **state)
{
    (void)state;
    struct fx *f = fx_start(NULL);
    struct client *c = cl_new(f->port);
    struct resp r;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const char *req = "POST /trickle?a=b HTTP/1.1\r\nX-Test: split value\r\n"
                      "Content-Length: 5\r\n\r\nbytes";
    for (const char *p = req; *p; p++) {
        cl_send_n(c, p, 1);
        sleep_ms(1);
    }
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "POST /trickle q=a=b x=split value len=5 "));
    assert_non_null(strstr(r.body, "body=bytes"));
    cl_free(c);
    fx_stop(f);
}

static void test_httpd_large_body_arrives_whole(void **state)
{
    (void)state;
    struct fx *f = fx_start(NULL);
    struct client *c = cl_new(f->port);
    struct resp r;
    size_t n = 3 * 1024 * 1024 + 7;
    char *body = pipe_malloc(n);
    memset(body, 'z', n);
    char head[128];
    snprintf(head, sizeof head, "POST /big HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", n);
    cl_send(c, head);
    cl_send_n(c, body, n);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    snprintf(head, sizeof head, "POST /big len=%zu", n);
    assert_string_equal(r.body, head);
    pipe_free(body);
    cl_free(c);
    fx_stop(f);
}

static void test_httpd_keep_alive_serves_three_requests_on_one_connection(void **state)
{
    (void)state;
    struct fx *f = fx_start(NULL);
    struct client *c = cl_new(f->port);
    struct resp r;
    for (int i = 0; i < 3; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET /n%d HTTP/1.1\r\nHost: a\r\n\r\n", i);
        cl_send(c, req);
        assert_int_equal(cl_read(c, &r), 0);
        assert_int_equal(r.status, 200);
        char want[32];
        snprintf(want, sizeof want, "GET /n%d ", i);
        assert_non_null(strstr(r.body, want));
    }
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.connections_accepted, 1);
    assert_int_equal(f->counters.connections_open, 1);
    assert_int_equal(f->counters.requests, 3);
    assert_int_equal(f->counters.responses[2], 3);
    cl_free(c);
    fx_stop(f);
}

static void test_httpd_pipelined_requests_are_answered_in_order_one_at_a_time(void **state)
{
    (void)state;
    struct fx *f = fx_start(NULL);
    f->delay_ms = 150;
    struct client *c = cl_new(f->port);
    struct resp r;
    cl_send(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /fast HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_non_null(strstr(r.body, "GET /slow "));
    assert_int_equal(cl_read(c, &r), 0);
    assert_non_null(strstr(r.body, "GET /fast "));
    /* the second request reached the handler only after the first was answered */
    assert_true(fx_log_has(f, "begin:/slow;resp:/slow;begin:/fast;resp:/fast;"));
    cl_free(c);
    fx_stop(f);
}

static void test_httpd_pipelined_bytes_beyond_cap_stop_reading_then_resume(void **state)
{
    (void)state;
    struct pipe_httpd_config cfg;
    pipe_httpd_config_defaults(&cfg);
    cfg.max_pipeline_bytes = 1024;
    struct fx *f = fx_start(&cfg);
    struct client *c = cl_new(f->port);
    struct resp r;
    /* one held request, then 2.6 MB of pipelined requests behind it */
    cl_send(c, "GET /hold HTTP/1.1\r\n\r\n");
    const char *one = "GET /p HTTP/1.1\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    size_t n = 40000, len = strlen(one);
    char *many = pipe_malloc(n * len);
    for (size_t i = 0; i < n; i++)
        memcpy(many + i * len, one, len);
    /* the server stops reading, so this cannot all be sent yet: send until
     * the kernel buffers on both sides are full */
    struct timeval tv = {0, 200000};
    int sndbuf = 32 * 1024; /* no autotuning into megabytes */
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    size_t sent = 0;
    while (sent < n * len) {
        ssize_t w = send(c->fd, many + sent, n * len - sent, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    assert_true(sent < n * len); /* backpressure reached the client */
    fx_call(f, do_answer_held);
    assert_int_equal(cl_read(c, &r), 0);
    assert_non_null(strstr(r.body, "GET /hold "));
    /* now everything flows: finish sending while reading answers */
    size_t answered = 0;
    while (sent < n * len || answered < n) {
        if (sent < n * len) {
            ssize_t w = send(c->fd, many + sent, n * len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                sent += (size_t)w;
        }
        if (answered < sent / len) {
            assert_int_equal(cl_read(c, &r), 0);
            assert_int_equal(r.status, 200);
            answered++;
        }
    }
    pipe_free(many);
    cl_free(c);
    fx_stop(f);
}

static void test_httpd_async_response_after_client_left_is_dropped(void **state)
{
    (void)state;
    struct fx *f = fx_start(NULL);
    f->delay_ms = 200;
    /* a reset: the server notices at once and detaches the request */
    struct client *c = cl_new(f->port);
    cl_send(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    while (!fx_log_has(f, "begin:/slow"))
        sleep_ms(5);
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    cl_free(c);
    /* a plain close: the server sees EOF, answers into the void */
    c = cl_new(f->port);
    cl_send(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    sleep_ms(50);
    cl_free(c);
    sleep_ms(450);
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.requests, 2);
    assert_int_equal(f->counters.responses_dropped + f->counters.responses[2], 2);
    assert_true(f->counters.responses_dropped >= 1);
    assert_int_equal(f->counters.requests_pending, 0);
    fx_stop(f);
}

static void test_httpd_rejects_oversized_content_length_with_413_before_body(void **state)
{
    (void)state;
    struct pipe_httpd_config cfg;
    pipe_httpd_config_defaults(&cfg);
    cfg.max_body_bytes = 1024;
    struct fx *f = fx_start(&cfg);
    struct client *c = cl_new(f->port);
    struct resp r;
    cl_send(c, "POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 413);
    assert_true(has_header(&r, "\r\nConnection: close\r\n"));
    assert_true(cl_closed(c));
    cl_free(c);
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.requests, 0);
    assert_int_equal(f->counters.responses[4], 1);
    fx_stop(f);
}

static void check_431(int port, size_t value_len)
{
    struct client *c = cl_new(port);
    struct resp r;
    char *big = pipe_malloc(value_len + 1);
    memset(big, 'a', value_len);
    big[value_len] = '\0';
    cl_send(c, "GET / HTTP/1.1\r\nX-Big: ");
    cl_send(c, big);
    cl_send(c, "\r\n\r\n");
    shutdown(c->fd, SHUT_WR);
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 431);
    assert_true(cl_closed(c));
    pipe_free(big);
    cl_free(c);
}

static void test_httpd_rejects_huge_headers_with_431(void **state)
{
    (void)state;
    struct fx *f = fx_start(NULL);
    check_431(f->port, 20 * 1024);  /* over our 16 KiB cap */
    check_431(f->port, 200 * 1024); /* over http_parser's own limit too */
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.requests, 0);
    fx_stop(f);
}

static void test_httpd_answers_garbage_with_400_and_closes(void **state)
{
    (void)state;
    struct fx *f = fx_start(NULL);
    struct client *c = cl_new(f->port);
    struct resp r;
    cl_send(c, "\x01\x02 what is this\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 400);
    assert_true(cl_closed(c));
    cl_free(c);
    /* smuggling shape: both Content-Length and chunked */
    c = cl_new(f->port);
    cl_send(c, "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 400);
    cl_free(c);
    fx_stop(f);
}

static void test_httpd_slow_request_gets_408(void **state)
{
    (void)state;
    struct pipe_httpd_config cfg;
    pipe_httpd_config_defaults(&cfg);
    cfg.request_timeout_ms = 200;
    struct fx *f = fx_start(&cfg);
    struct client *c = cl_new(f->port);
    struct resp r;
    int64_t t0 = now_ms();
    cl_send(c, "POST / HTTP/1.1\r\nHost: a\r\n");
    sleep_ms(100);
    cl_send(c, "Content-Length: 10\r\n\r\nabc"); /* trickling does not extend it */
    assert_int_equal(cl_read(c, &r), 0);
    int64_t took = now_ms() - t0;
    assert_int_equal(r.status, 408);
    /* Not before the timeout; the upper bound only says it did not hang. */
    assert_true(took >= 180 && took < 10000);
    assert_true(cl_closed(c));
    cl_free(c);
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.timeouts, 1);
    fx_stop(f);
}

static void test_httpd_idle_keep_alive_connection_is_closed(void **state)
{
    (void)state;
    struct pipe_httpd_config cfg;
    pipe_httpd_config_defaults(&cfg);
    cfg.idle_timeout_ms = 200;
    struct fx *f = fx_start(&cfg);
    struct client *c = cl_new(f->port);
    struct resp r;
    cl_send(c, "GET / HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    int64_t t0 = now_ms();
    assert_true(cl_closed(c));
    int64_t took = now_ms() - t0;
    assert_true(took >= 150 && took < 10000); /* not early; the bound: no hang */
    cl_free(c);
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.connections_open, 0);
    fx_stop(f);
}

static void test_httpd_chunked_body_is_reassembled_and_capped(void **state)
{
    (void)state;
    struct pipe_httpd_config cfg;
    pipe_httpd_config_defaults(&cfg);
    cfg.max_body_bytes = 16;
    struct fx *f = fx_start(&cfg);
    struct client *c = cl_new(f->port);
    struct resp r;
    cl_send(c, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "len=11 "));
    assert_non_null(strstr(r.body, "body=hello world"));
    /* over the cap in chunks: 413, then close */
    cl_send(c, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
               "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 413);
    assert_true(cl_closed(c));
    cl_free(c);
    fx_stop(f);
}

static void test_httpd_expect_100_continue_gets_interim_response(void **state)
{
    (void)state;
    struct fx *f = fx_start(NULL);
    struct client *c = cl_new(f->port);
    struct resp r;
    cl_send(c, "POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 100);
    cl_send(c, "data");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "body=data"));
    /* an expectation we cannot meet */
    cl_send(c, "POST /e HTTP/1.1\r\nExpect: teapot\r\nContent-Length: 4\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 417);
    cl_free(c);
    fx_stop(f);
}

static void test_httpd_http10_closes_unless_keep_alive_requested(void **state)
{
    (void)state;
    struct fx *f = fx_start(NULL);
    struct client *c = cl_new(f->port);
    struct resp r;
    cl_send(c, "GET /a HTTP/1.0\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_true(has_header(&r, "\r\nConnection: close\r\n"));
    assert_true(cl_closed(c));
    cl_free(c);
    c = cl_new(f->port);
    cl_send(c, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_true(has_header(&r, "\r\nConnection: keep-alive\r\n"));
    cl_send(c, "GET /b HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_non_null(strstr(r.body, "GET /b "));
    assert_true(has_header(&r, "\r\nConnection: close\r\n"));
    assert_true(cl_closed(c));
    cl_free(c);
    fx_stop(f);
}

static void test_httpd_stop_accepting_finishes_in_flight_request_then_closes(void **state)
{
    (void)state;
    struct fx *f = fx_start(NULL);
    struct client *idle = cl_new(f->port);
    struct client *busy = cl_new(f->port);
    struct resp r;
    cl_send(idle, "GET /warm HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_read(idle, &r), 0);
    cl_send(busy, "GET /hold HTTP/1.1\r\n\r\nGET /never HTTP/1.1\r\n\r\n");
    while (!fx_log_has(f, "begin:/hold"))
        sleep_ms(5);
    fx_call(f, do_stop_accepting);
    assert_true(cl_closed(idle));
    assert_int_equal(tcp_connect(f->port), -ECONNREFUSED);
    fx_call(f, do_answer_held);
    assert_int_equal(cl_read(busy, &r), 0);
    assert_non_null(strstr(r.body, "GET /hold "));
    assert_true(has_header(&r, "\r\nConnection: close\r\n"));
    assert_true(cl_closed(busy));
    assert_false(fx_log_has(f, "/never"));
    cl_free(idle);
    cl_free(busy);
    fx_stop(f);
}

static void test_httpd_close_with_unanswered_request_frees_it_when_answered(void **state)
{
    (void)state;
    struct fx *f = fx_start(NULL);
    f->delay_ms = 300;
    struct client *c = cl_new(f->port);
    cl_send(c, "GET /slow HTTP/1.1\r\n\r\n");
    while (!fx_log_has(f, "begin:/slow"))
        sleep_ms(5);
    /* the server is freed first; the timer answers later into nothing and
     * the loop only ends once it has (ASan checks the request was freed) */
    fx_stop(f);
    assert_true(cl_closed(c));
    cl_free(c);
}

static void test_httpd_serves_200_concurrent_connections(void **state)
{
    (void)state;
    enum { N = 200 };
    struct fx *f = fx_start(NULL);
    struct client **cs = pipe_calloc(N, sizeof *cs);
    struct resp r;
    for (int i = 0; i < N; i++)
        cs[i] = cl_new(f->port);
    for (int i = 0; i < N; i++) {
        char req[128];
        snprintf(req, sizeof req, "POST /c%d HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", i);
        cl_send(cs[i], req);
    }
    for (int i = N - 1; i >= 0; i--) {
        assert_int_equal(cl_read(cs[i], &r), 0);
        char want[32];
        snprintf(want, sizeof want, "POST /c%d ", i);
        assert_non_null(strstr(r.body, want));
    }
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.connections_open, N);
    assert_int_equal(f->counters.responses[2], N);
    for (int i = 0; i < N; i++)
        cl_free(cs[i]);
    pipe_free(cs);
    fx_stop(f);
}

/* two_held_then_third — a and b are served and stay open; a third
 * connection is then opened, sends a request and must get 503 +
 * Retry-After and be closed. Returns a and b. */
static void two_held_then_third(struct fx *f, struct client **a, struct client **b)
{
    struct resp r;
    *a = cl_new(f->port);
    *b = cl_new(f->port);
    cl_send(*a, "GET / HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_read(*a, &r), 0);
    cl_send(*b, "GET / HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_read(*b, &r), 0);
    struct client *c = cl_new(f->port);
    cl_send(c, "GET / HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 503);
    assert_true(has_header(&r, "\r\nRetry-After: 1\r\n"));
    assert_true(has_header(&r, "\r\nConnection: close\r\n"));
    assert_true(cl_closed(c));
    cl_free(c);
}

static void test_httpd_answers_503_beyond_max_connections(void **state)
{
    (void)state;
    struct pipe_httpd_config cfg;
    pipe_httpd_config_defaults(&cfg);
    cfg.max_connections = 2;
    struct fx *f = fx_start(&cfg);
    struct client *a, *b;
    two_held_then_third(f, &a, &b);
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.connections_rejected, 1);
    assert_int_equal(f->counters.connections_open, 2);
    cl_free(a);
    cl_free(b);
    fx_stop(f);
}

/* ---- decisions from the headers ---------------------------------------- */

static struct fx *fx_start_head(void)
{
    struct pipe_httpd_config cfg;
    pipe_httpd_config_defaults(&cfg);
    cfg.on_headers = on_head;
    return fx_start(&cfg);
}

static void test_httpd_early_answer_with_body_is_sent_before_the_body_then_closes(void **state)
{
    (void)state;
    struct fx *f = fx_start_head();
    struct client *c = cl_new(f->port);
    struct resp r;
    /* 16 MiB declared, a few bytes sent: the answer must come anyway */
    cl_send(c, "POST /deny HTTP/1.1\r\nHost: a\r\nX-Key: k1\r\n"
               "Content-Length: 16777216\r\n\r\nabc");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.body, "denied k1 len=16777216\n");
    assert_true(has_header(&r, "\r\nWWW-Authenticate: Basic realm=\"t\"\r\n"));
    assert_true(has_header(&r, "\r\nConnection: close\r\n"));
    assert_true(cl_closed(c));
    cl_free(c);
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.requests, 0); /* the handler never saw it */
    assert_int_equal(f->counters.early_answers, 1);
    assert_int_equal(f->counters.bodies_receiving, 0);
    assert_int_equal(f->counters.body_bytes_receiving, 0);
    assert_false(fx_log_has(f, "begin:/deny"));
    fx_stop(f);
}

static void test_httpd_early_answer_with_expect_sends_no_100_continue(void **state)
{
    (void)state;
    struct fx *f = fx_start_head();
    struct client *c = cl_new(f->port);
    struct resp r;
    cl_send(c, "POST /deny HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
               "Content-Length: 1000\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 401); /* not 100 first */
    assert_true(cl_closed(c));
    cl_free(c);
    fx_stop(f);
}

static void test_httpd_early_answer_without_body_keeps_the_connection(void **state)
{
    (void)state;
    struct fx *f = fx_start_head();
    struct client *c = cl_new(f->port);
    struct resp r;
    cl_send(c, "GET /deny HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.body, "denied - len=0\n");
    assert_true(has_header(&r, "\r\nConnection: keep-alive\r\n"));
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "GET /ok"));
    cl_free(c);
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.requests, 1);
    assert_int_equal(f->counters.early_answers, 1);
    assert_int_equal(f->heads, 2);
    fx_stop(f);
}

static void test_httpd_head_callback_context_reaches_the_handler(void **state)
{
    (void)state;
    struct fx *f = fx_start_head();
    struct client *c = cl_new(f->port);
    struct resp r;
    cl_send(c, "POST /ctx?a=b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "q=a=b"));
    assert_non_null(strstr(r.body, "body=hello"));
    assert_true(fx_log_has(f, "ctx:/ctx"));
    cl_free(c);
    fx_stop(f);
}

/* A body still arriving is counted (requests and bytes) while it arrives,
 * and no longer once it is complete. */
static void test_httpd_counts_bodies_while_they_arrive(void **state)
{
    (void)state;
    struct fx *f = fx_start_head();
    struct client *c = cl_new(f->port);
    struct resp r;
    cl_send(c, "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345");
    for (int i = 0; i < 300; i++) {
        fx_call(f, do_snapshot);
        if (f->counters.body_bytes_receiving == 5)
            break;
        sleep_ms(10);
    }
    assert_int_equal(f->counters.bodies_receiving, 1);
    assert_int_equal(f->counters.body_bytes_receiving, 5);
    assert_int_equal(f->counters.body_bytes_declared, 10);
    /* a second client's headers see the first one's body bytes */
    struct client *d = cl_new(f->port);
    cl_send(d, "GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(cl_read(d, &r), 0);
    assert_int_equal(f->body_bytes_seen, 5);
    cl_send(c, "67890");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.bodies_receiving, 0);
    assert_int_equal(f->counters.body_bytes_receiving, 0);
    assert_int_equal(f->counters.body_bytes_declared, 0);
    cl_free(d);
    /* a client that leaves halfway is no longer counted */
    cl_send(c, "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n123");
    cl_free(c);
    for (int i = 0; i < 300; i++) {
        fx_call(f, do_snapshot);
        if (f->counters.connections_open == 0)
            break;
        sleep_ms(10);
    }
    assert_int_equal(f->counters.connections_open, 0);
    assert_int_equal(f->counters.bodies_receiving, 0);
    assert_int_equal(f->counters.body_bytes_receiving, 0);
    assert_int_equal(f->counters.body_bytes_declared, 0);
    fx_stop(f);
}

/* A chunked body has no declared length: what has arrived counts as
 * declared, and nothing once it is complete. */
static void test_httpd_counts_chunked_bodies_by_bytes_so_far(void **state)
{
    (void)state;
    struct fx *f = fx_start_head();
    struct client *c = cl_new(f->port);
    struct resp r;
    cl_send(c, "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               "6\r\nabcdef\r\n");
    for (int i = 0; i < 300; i++) {
        fx_call(f, do_snapshot);
        if (f->counters.body_bytes_declared == 6)
            break;
        sleep_ms(10);
    }
    assert_int_equal(f->counters.bodies_receiving, 1);
    assert_int_equal(f->counters.body_bytes_declared, 6);
    assert_int_equal(f->counters.body_bytes_receiving, 6);
    cl_send(c, "3\r\nghi\r\n0\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "len=9"));
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.bodies_receiving, 0);
    assert_int_equal(f->counters.body_bytes_declared, 0);
    cl_free(c);
    fx_stop(f);
}

/* Over the per-address cap, a new connection gets 503 + Retry-After and is
 * closed; once one closes, a new one is served again. */
static void test_httpd_answers_503_over_the_per_address_cap(void **state)
{
    (void)state;
    struct pipe_httpd_config cfg;
    pipe_httpd_config_defaults(&cfg);
    cfg.max_connections_per_ip = 2;
    struct fx *f = fx_start(&cfg);
    struct client *a, *b;
    struct resp r;
    two_held_then_third(f, &a, &b);
    cl_free(a);
    for (int i = 0; i < 300; i++) {
        fx_call(f, do_snapshot);
        if (f->counters.connections_open == 1)
            break;
        sleep_ms(10);
    }
    struct client *d = cl_new(f->port);
    cl_send(d, "GET /again HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_read(d, &r), 0);
    assert_int_equal(r.status, 200);
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.connections_rejected, 1);
    assert_int_equal(f->counters.connections_open, 2);
    cl_free(d);
    cl_free(b);
    fx_stop(f);
}

/* Random bytes, and valid requests with random damage, over real sockets:
 * each connection must end (answer or close), and the server must still
 * serve a good request afterwards. */
static void test_httpd_survives_random_bytes(void **state)
{
    (void)state;
    struct pipe_httpd_config cfg;
    pipe_httpd_config_defaults(&cfg);
    cfg.max_header_bytes = 2048;
    cfg.max_body_bytes = 4096;
    struct fx *f = fx_start(&cfg);
    static const char *seeds[] = {
        "GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-Test: 1\r\n\r\n",
        "POST /v1/events HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n",
    };
    unsigned seed = 12345;
    char buf[3000];
    for (int i = 0; i < 300; i++) {
        size_t n;
        if (i % 3 == 0) {
            n = (size_t)(rand_r(&seed) % (int)sizeof buf);
            for (size_t k = 0; k < n; k++)
                buf[k] = (char)rand_r(&seed);
        } else {
            const char *s = seeds[rand_r(&seed) % 4];
            n = strlen(s);
            memcpy(buf, s, n);
            for (int k = rand_r(&seed) % 4; k >= 0; k--)
                buf[rand_r(&seed) % (int)n] = (char)rand_r(&seed);
            if (i % 5 == 0) { /* and some repetition: pipelined damage */
                memcpy(buf + n, buf, n);
                n *= 2;
            }
        }
        struct client *c = cl_new(f->port);
        cl_send_n(c, buf, n);
        shutdown(c->fd, SHUT_WR);
        while (cl_fill(c))
            c->len = 0;
        assert_true(cl_closed(c));
        cl_free(c);
    }
    struct client *c = cl_new(f->port);
    struct resp r;
    cl_send(c, "GET /ok HTTP/1.1\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    cl_free(c);
    fx_call(f, do_snapshot);
    assert_int_equal(f->counters.requests_pending, 0);
    fx_stop(f);
}

static void test_httpd_new_rejects_bad_addresses_and_busy_ports(void **state)
{
    (void)state;
    static const char *bad[] = {"nonsense",     "1.2.3.4",   "[::1",          "[::1]80",
                                "1.2.3.4:",     "1.2.3.4:x", "1.2.3.4:99999", "localhost:80",
                                "999.1.1.1:80", "[zz]:80"};
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct pipe_httpd_config cfg;
    pipe_httpd_config_defaults(&cfg);
    struct pipe_httpd *h = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg.listen = bad[i];
        assert_int_equal(pipe_httpd_new(&loop, &cfg, handler, NULL, &h), PIPE_ECONFIG);
        assert_null(h);
    }
    cfg.listen = "127.0.0.1:0";
    assert_int_equal(pipe_httpd_new(&loop, &cfg, handler, NULL, &h), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", pipe_httpd_port(h));
    cfg.listen = addr;
    struct pipe_httpd *h2 = NULL;
    assert_int_equal(pipe_httpd_new(&loop, &cfg, handler, NULL, &h2), -EADDRINUSE);
    assert_null(h2);
    cfg.listen = "[::1]:0";
    if (pipe_httpd_new(&loop, &cfg, handler, NULL, &h2) == 0) { /* IPv6 may be off */
        assert_true(pipe_httpd_port(h2) > 0);
        pipe_httpd_close(h2, NULL, NULL);
    }
    pipe_httpd_close(h, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_httpd_get_and_post_round_trip),
        cmocka_unit_test(test_httpd_request_trickled_byte_by_byte_is_reassembled),
        cmocka_unit_test(test_httpd_large_body_arrives_whole),
        cmocka_unit_test(test_httpd_keep_alive_serves_three_requests_on_one_connection),
        cmocka_unit_test(test_httpd_pipelined_requests_are_answered_in_order_one_at_a_time),
        cmocka_unit_test(test_httpd_pipelined_bytes_beyond_cap_stop_reading_then_resume),
        cmocka_unit_test(test_httpd_async_response_after_client_left_is_dropped),
        cmocka_unit_test(test_httpd_rejects_oversized_content_length_with_413_before_body),
        cmocka_unit_test(test_httpd_rejects_huge_headers_with_431),
        cmocka_unit_test(test_httpd_answers_garbage_with_400_and_closes),
        cmocka_unit_test(test_httpd_slow_request_gets_408),
        cmocka_unit_test(test_httpd_idle_keep_alive_connection_is_closed),
        cmocka_unit_test(test_httpd_chunked_body_is_reassembled_and_capped),
        cmocka_unit_test(test_httpd_expect_100_continue_gets_interim_response),
        cmocka_unit_test(test_httpd_http10_closes_unless_keep_alive_requested),
        cmocka_unit_test(test_httpd_stop_accepting_finishes_in_flight_request_then_closes),
        cmocka_unit_test(test_httpd_close_with_unanswered_request_frees_it_when_answered),
        cmocka_unit_test(test_httpd_serves_200_concurrent_connections),
        cmocka_unit_test(test_httpd_answers_503_beyond_max_connections),
        cmocka_unit_test(test_httpd_early_answer_with_body_is_sent_before_the_body_then_closes),
        cmocka_unit_test(test_httpd_early_answer_with_expect_sends_no_100_continue),
        cmocka_unit_test(test_httpd_early_answer_without_body_keeps_the_connection),
        cmocka_unit_test(test_httpd_head_callback_context_reaches_the_handler),
        cmocka_unit_test(test_httpd_counts_bodies_while_they_arrive),
        cmocka_unit_test(test_httpd_counts_chunked_bodies_by_bytes_so_far),
        cmocka_unit_test(test_httpd_answers_503_over_the_per_address_cap),
        cmocka_unit_test(test_httpd_survives_random_bytes),
        cmocka_unit_test(test_httpd_new_rejects_bad_addresses_and_busy_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
