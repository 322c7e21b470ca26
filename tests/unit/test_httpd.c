/* Unit tests for httpd, the protocol: requests in every shape a client
 * sends them (trickled, large, pipelined, chunked, Expect, HTTP/1.0),
 * keep-alive, timeouts, stopping. The caps and early answers are in
 * test_httpd_limits.c; the fixture is tests/support/httpd_fx.c. */
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

static void test_httpd_get_and_post_round_trip(void **state)
{
    (void)state;
    struct fx *f = fx_start(NULL);
    struct client *c = cl_new(f->port);
    struct resp r;

    cl_send(c, "GET /hello?x=1&y=2 HTTP/1.1\r\nHost: a\r\nX-Test:  abc \r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(fx_has_header(&r, "\r\nContent-Type: text/plain\r\n"));
    assert_true(fx_has_header(&r, "\r\nConnection: keep-alive\r\n"));
    assert_true(fx_has_header(&r, "\r\nX-Served: 1\r\n"));
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
        fx_sleep_ms(1);
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
        fx_sleep_ms(5);
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    cl_free(c);
    /* a plain close: the server sees EOF, answers into the void */
    c = cl_new(f->port);
    cl_send(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    fx_sleep_ms(50);
    cl_free(c);
    fx_sleep_ms(450);
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
    assert_true(fx_has_header(&r, "\r\nConnection: close\r\n"));
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

/* A HEAD request's answer carries no body, the server's own refusals too:
 * the client, having sent HEAD, reads none, and a body would be taken for
 * the start of another response. Found by tests/fuzz/fuzz_httpd.c. */
static void test_httpd_refusal_of_head_request_has_no_body(void **state)
{
    (void)state;
    struct pipe_httpd_config cfg;
    pipe_httpd_config_defaults(&cfg);
    cfg.max_body_bytes = 1024;
    struct fx *f = fx_start(&cfg);
    static const char *const bad[] = {
        "HEAD / HTTP/1.1\r\nET /x HTTP/1.1\r\n\r\n",       /* 400: malformed header */
        "HEAD / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", /* 413 */
        "HEAD / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n",       /* 417 */
        "HEAD /a b HTTP/1.1\r\n\r\n",                      /* 400: request line */
    };
    static const int status[] = {400, 413, 417, 400};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct client *c = cl_new(f->port);
        struct resp r;
        cl_send(c, bad[i]);
        assert_int_equal(cl_read_ex(c, &r, true), 0);
        assert_int_equal(r.status, status[i]);
        assert_true(fx_has_header(&r, "\r\nConnection: close\r\n"));
        while (cl_fill(c))
            ;
        assert_int_equal(c->len, 0); /* nothing after the head */
        cl_free(c);
    }
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
    int64_t t0 = fx_now_ms();
    cl_send(c, "POST / HTTP/1.1\r\nHost: a\r\n");
    fx_sleep_ms(100);
    cl_send(c, "Content-Length: 10\r\n\r\nabc"); /* trickling does not extend it */
    assert_int_equal(cl_read(c, &r), 0);
    int64_t took = fx_now_ms() - t0;
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
    int64_t t0 = fx_now_ms();
    assert_true(cl_closed(c));
    int64_t took = fx_now_ms() - t0;
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
    assert_true(fx_has_header(&r, "\r\nConnection: close\r\n"));
    assert_true(cl_closed(c));
    cl_free(c);
    c = cl_new(f->port);
    cl_send(c, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_true(fx_has_header(&r, "\r\nConnection: keep-alive\r\n"));
    cl_send(c, "GET /b HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(cl_read(c, &r), 0);
    assert_non_null(strstr(r.body, "GET /b "));
    assert_true(fx_has_header(&r, "\r\nConnection: close\r\n"));
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
        fx_sleep_ms(5);
    fx_call(f, do_stop_accepting);
    assert_true(cl_closed(idle));
    assert_int_equal(fx_tcp_connect(f->port), -ECONNREFUSED);
    fx_call(f, do_answer_held);
    assert_int_equal(cl_read(busy, &r), 0);
    assert_non_null(strstr(r.body, "GET /hold "));
    assert_true(fx_has_header(&r, "\r\nConnection: close\r\n"));
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
        fx_sleep_ms(5);
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
        cmocka_unit_test(test_httpd_refusal_of_head_request_has_no_body),
        cmocka_unit_test(test_httpd_slow_request_gets_408),
        cmocka_unit_test(test_httpd_idle_keep_alive_connection_is_closed),
        cmocka_unit_test(test_httpd_chunked_body_is_reassembled_and_capped),
        cmocka_unit_test(test_httpd_expect_100_continue_gets_interim_response),
        cmocka_unit_test(test_httpd_http10_closes_unless_keep_alive_requested),
        cmocka_unit_test(test_httpd_stop_accepting_finishes_in_flight_request_then_closes),
        cmocka_unit_test(test_httpd_close_with_unanswered_request_frees_it_when_answered),
        cmocka_unit_test(test_httpd_serves_200_concurrent_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
