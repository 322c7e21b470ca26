/* httpd_fx — the httpd unit tests' server and client (httpd_fx.h). */
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

#include "tests/support/httpd_fx.h"
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

void fx_handler(struct pipe_http_request *r, void *arg)
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
void fx_call(struct fx *f, void (*fn)(struct fx *f))
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

struct fx *fx_start(const struct pipe_httpd_config *cfg_in)
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
    assert_int_equal(pipe_httpd_new(&f->loop, &cfg, fx_handler, f, &f->h), 0);
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

void do_close(struct fx *f)
{
    pipe_httpd_counters(f->h, &f->counters);
    pipe_httpd_close(f->h, on_closed, f);
    f->h = NULL;
    uv_close((uv_handle_t *)&f->async, NULL);
}

void do_snapshot(struct fx *f)
{
    pipe_httpd_counters(f->h, &f->counters);
}

void do_stop_accepting(struct fx *f)
{
    pipe_httpd_stop_accepting(f->h);
}

void do_answer_held(struct fx *f)
{
    for (int i = 0; i < f->nheld; i++)
        echo(f, f->held[i]);
    f->nheld = 0;
}

/* fx_stop — closes the server, waits for the loop to run out of handles
 * and checks that nothing was left open. */
void fx_stop(struct fx *f)
{
    fx_call(f, do_close);
    pthread_join(f->thread, NULL);
    assert_true(f->closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    pipe_free(f);
}

bool fx_log_has(struct fx *f, const char *s)
{
    pthread_mutex_lock(&f->mu);
    bool has = strstr(f->log, s) != NULL;
    pthread_mutex_unlock(&f->mu);
    return has;
}

void fx_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int64_t fx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a blocking client ------------------------------------------------- */

int fx_tcp_connect(int port)
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

struct client *cl_new(int port)
{
    struct client *c = pipe_calloc(1, sizeof *c);
    c->fd = fx_tcp_connect(port);
    assert_true(c->fd >= 0);
    return c;
}

void cl_free(struct client *c)
{
    close(c->fd);
    pipe_free(c);
}

void cl_send_n(struct client *c, const void *p, size_t n)
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

void cl_send(struct client *c, const char *s)
{
    cl_send_n(c, s, strlen(s));
}

/* cl_fill — reads more bytes; false on EOF, error or timeout. */
bool cl_fill(struct client *c)
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
int cl_read_ex(struct client *c, struct resp *r, bool head)
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

int cl_read(struct client *c, struct resp *r)
{
    return cl_read_ex(c, r, false);
}

/* cl_closed — true when the server closed (EOF or reset) within the receive
 * timeout, with nothing else to read. */
bool cl_closed(struct client *c)
{
    char b[256];
    ssize_t n = recv(c->fd, b, sizeof b, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

bool fx_has_header(const struct resp *r, const char *line)
{
    return strcasestr(r->head, line) != NULL;
}

/* ---- tests ------------------------------------------------------------- */

/* fx_start_head — a server whose on_headers callback answers early (by path). */
struct fx *fx_start_head(void)
{
    struct pipe_httpd_config cfg;
    pipe_httpd_config_defaults(&cfg);
    cfg.on_headers = on_head;
    return fx_start(&cfg);
}
