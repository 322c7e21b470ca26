/* Unit tests for httpd, the limits: connections over the caps, answers
 * decided from the headers before the body, bodies counted while they
 * arrive, random bytes, bad addresses. The fixture is
 * tests/support/httpd_fx.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/err.h"
#include "libpipe/httpd.h"
#include "libpipe/mem.h"
#include "tests/support/httpd_fx.h"

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
    assert_true(fx_has_header(&r, "\r\nRetry-After: 1\r\n"));
    assert_true(fx_has_header(&r, "\r\nConnection: close\r\n"));
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
    assert_true(fx_has_header(&r, "\r\nWWW-Authenticate: Basic realm=\"t\"\r\n"));
    assert_true(fx_has_header(&r, "\r\nConnection: close\r\n"));
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
    assert_true(fx_has_header(&r, "\r\nConnection: keep-alive\r\n"));
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
        fx_sleep_ms(10);
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
        fx_sleep_ms(10);
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
        fx_sleep_ms(10);
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
        fx_sleep_ms(10);
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
        assert_int_equal(pipe_httpd_new(&loop, &cfg, fx_handler, NULL, &h), PIPE_ECONFIG);
        assert_null(h);
    }
    cfg.listen = "127.0.0.1:0";
    assert_int_equal(pipe_httpd_new(&loop, &cfg, fx_handler, NULL, &h), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", pipe_httpd_port(h));
    cfg.listen = addr;
    struct pipe_httpd *h2 = NULL;
    assert_int_equal(pipe_httpd_new(&loop, &cfg, fx_handler, NULL, &h2), -EADDRINUSE);
    assert_null(h2);
    cfg.listen = "[::1]:0";
    if (pipe_httpd_new(&loop, &cfg, fx_handler, NULL, &h2) == 0) { /* IPv6 may be off */
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
