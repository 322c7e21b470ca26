/* httpd_fx — the fixture of the httpd unit tests: a real server on
 * 127.0.0.1:0 whose loop runs in a thread, and a blocking client. Work that
 * must happen on the loop thread (answering a held request, stopping) goes
 * through fx_call(). The server's handler answers by path: /hold requests
 * are held until do_answer_held, /slow ones answered after delay_ms, others
 * echoed. Used by test_httpd.c and test_httpd_limits.c. */
#ifndef SLUICE_TESTS_HTTPD_FX_H
#define SLUICE_TESTS_HTTPD_FX_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "libpipe/httpd.h"

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

/* The server: started on 127.0.0.1:0 (cfg NULL: the defaults), stopped and
 * freed by fx_stop; fx_call runs fn on the loop thread and waits for it;
 * fx_log_has looks for "what:/path" in the order the loop saw requests. */
void fx_call(struct fx *f, void (*fn)(struct fx *f));
struct fx *fx_start(const struct pipe_httpd_config *cfg_in);
void fx_stop(struct fx *f);
bool fx_log_has(struct fx *f, const char *s);
/* Loop-thread work for fx_call. */
void do_close(struct fx *f);
void do_snapshot(struct fx *f);
void do_stop_accepting(struct fx *f);
void do_answer_held(struct fx *f);
/* Time and sockets. */
void fx_sleep_ms(int ms);
int64_t fx_now_ms(void);
int fx_tcp_connect(int port);
/* A blocking client on one connection; cl_read reads one response
 * (cl_read_ex: of a HEAD request when head): 0, or -1 when none came. */
struct client *cl_new(int port);
void cl_free(struct client *c);
void cl_send_n(struct client *c, const void *p, size_t n);
void cl_send(struct client *c, const char *s);
bool cl_fill(struct client *c);
int cl_read_ex(struct client *c, struct resp *r, bool head);
int cl_read(struct client *c, struct resp *r);
bool cl_closed(struct client *c);
bool fx_has_header(const struct resp *r, const char *line);

/* fx_handler — the server's request handler (by path); arg is the fx. */
void fx_handler(struct pipe_http_request *r, void *arg);
/* fx_start_head — a server whose on_headers callback answers early (by path). */
struct fx *fx_start_head(void);

#endif
