/* bench_event — events per second per core for pipe_event_process against
 * the jansson reference, on a generated corpus of ~600-byte events. Prints
 * figures; asserts nothing (make bench). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/event.h"
#include "tests/support/event_ref.h"

#define NEVENTS 20000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A typical analytics event of about 600 bytes. */
static size_t make_event(char *buf, size_t cap, unsigned i, int with_id)
{
    static const char *const names[] = {"page_view", "signup", "order.completed", "app_open"};
    char idbuf[64] = "";
    if (with_id)
        snprintf(idbuf, sizeof idbuf, "\"id\":\"%08x-%04x-4%03x-a%03x-%012x\",", i, i & 0xffff,
                 i & 0xfff, (i >> 3) & 0xfff, i * 7919u);
    return (size_t)snprintf(
        buf, cap,
        "{\"event\":\"%s\",%s\"ts\":\"2024-05-0%uT12:%02u:%02u.%03uZ\","
        "\"user_id\":\"u_%u\",\"anonymous_id\":\"0b0e5a8c-%04x-4c1e-9d5b-7f1d2c3b4a59\","
        "\"properties\":{\"path\":\"/products/%u\",\"referrer\":\"https://www.example.com/search?q=shoes&page=%u\","
        "\"title\":\"Caf\\u00e9 \xe2\x80\x94 Running shoes, size %u\",\"price\":%u.%02u,\"currency\":\"EUR\","
        "\"quantity\":%u,\"in_stock\":true,\"tags\":[\"sale\",\"summer\",\"new\"],\"discount\":null},"
        "\"context\":{\"ip\":\"203.0.113.%u\",\"locale\":\"en-US\",\"library\":{\"name\":\"analytics.js\","
        "\"version\":\"4.1.%u\"},\"userAgent\":\"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
        "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15\","
        "\"screen\":{\"width\":1440,\"height\":900,\"density\":2}}}",
        names[i % 4], idbuf, 1 + i % 9, i % 60, (i / 7) % 60, i % 1000, i % 100000, i & 0xffff,
        i % 5000, i % 20, 36 + i % 12, 10 + i % 200, i % 100, 1 + i % 5, i % 254, i % 10);
}

int main(void)
{
    static const struct event_ref_clock clk = {pipe_clock_parse_rfc3339, pipe_clock_format_rfc3339};
    char **ev = malloc(NEVENTS * sizeof *ev);
    size_t *len = malloc(NEVENTS * sizeof *len), total = 0;
    for (unsigned i = 0; i < NEVENTS; i++) {
        char buf[2048];
        len[i] = make_event(buf, sizeof buf, i, i % 2);
        ev[i] = malloc(len[i]);
        memcpy(ev[i], buf, len[i]);
        total += len[i];
    }
    struct pipe_event_ctx ctx = {"web", 1714564800000LL, 0, 0};
    struct pipe_buf out;
    pipe_buf_init(&out, SIZE_MAX);

    long accepted = 0, rounds = 50;
    double t0 = now_s();
    for (long r = 0; r < rounds; r++) {
        for (unsigned i = 0; i < NEVENTS; i++) {
            struct pipe_event_result res;
            pipe_buf_reset(&out);
            if (pipe_event_process(ev[i], len[i], &ctx, &out, &res) == 0 && res.reason == 0)
                accepted++;
        }
    }
    double fast = (double)(rounds * NEVENTS) / (now_s() - t0);

    long ref_ok = 0;
    t0 = now_s();
    for (unsigned i = 0; i < NEVENTS; i++) {
        struct event_ref_result res;
        event_ref_process(ev[i], len[i], &ctx, &clk, &res);
        ref_ok += res.reason == 0;
        json_decref(res.expected);
    }
    double ref = NEVENTS / (now_s() - t0);

    t0 = now_s();
    for (unsigned i = 0; i < NEVENTS; i++) {
        json_error_t e;
        json_decref(json_loadb(ev[i], len[i], JSON_DECODE_ANY, &e));
    }
    double dom = NEVENTS / (now_s() - t0);

    printf("bench_event: %u events, mean %zu bytes\n", NEVENTS, total / NEVENTS);
    printf("  pipe_event_process   %10.0f events/s/core  %7.1f MB/s  (%ld accepted)\n", fast,
           fast * (double)total / NEVENTS / 1e6, accepted);
    printf("  jansson reference    %10.0f events/s/core  (%ld accepted)\n", ref, ref_ok);
    printf("  jansson parse only   %10.0f events/s/core\n", dom);
    printf("  speed-up over jansson parse: %.1fx\n", fast / dom);
    for (unsigned i = 0; i < NEVENTS; i++)
        free(ev[i]);
    free(ev);
    free(len);
    pipe_buf_cleanup(&out);
    return accepted == rounds * NEVENTS ? 0 : 1;
}
