/* bench_schema — what schema checking costs per event, per core: the
 * envelope step alone, then with a realistic schema for every type
 * (validation only, nothing rewritten), with a redaction that rewrites
 * every event, and for types without a schema. Same ~600-byte events as
 * bench_event. Prints figures; asserts nothing (make bench). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "libpipe/buf.h"
#include "libpipe/event.h"
#include "libpipe/log.h"
#include "libpipe/schema.h"
#include "tests/support/testutil.h"

#define NEVENTS 20000
#define ROUNDS  20

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* per core: CPU, not wall, time */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const names[] = {"page_view", "signup", "order.completed", "app_open"};

/* The event of bench_event: a typical analytics event of about 600 bytes. */
static size_t make_event(char *buf, size_t cap, unsigned i, const char *prefix)
{
    return (size_t)snprintf(
        buf, cap,
        "{\"event\":\"%s%s\",\"id\":\"%08x-%04x-4%03x-a%03x-%012x\",\"ts\":\"2024-05-0%uT12:%02u:%"
        "02u.%03uZ\","
        "\"user_id\":\"u_%u\",\"anonymous_id\":\"0b0e5a8c-%04x-4c1e-9d5b-7f1d2c3b4a59\","
        "\"properties\":{\"path\":\"/products/%u\",\"referrer\":\"https://www.example.com/"
        "search?q=shoes&page=%u\","
        "\"title\":\"Caf\\u00e9 \xe2\x80\x94 Running shoes, size %u\",\"price\":%u.%02u,"
        "\"currency\":\"EUR\","
        "\"quantity\":%u,\"in_stock\":true,\"tags\":[\"sale\",\"summer\",\"new\"],\"discount\":"
        "null},"
        "\"context\":{\"ip\":\"203.0.113.%u\",\"locale\":\"en-US\",\"library\":{\"name\":"
        "\"analytics.js\","
        "\"version\":\"4.1.%u\"},\"userAgent\":\"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
        "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15\","
        "\"screen\":{\"width\":1440,\"height\":900,\"density\":2}}}",
        prefix, names[i % 4], i, i & 0xffff, i & 0xfff, (i >> 3) & 0xfff, i * 7919u, 1 + i % 9,
        i % 60, (i / 7) % 60, i % 1000, i % 100000, i & 0xffff, i % 5000, i % 20, 36 + i % 12,
        10 + i % 200, i % 100, 1 + i % 5, i % 254, i % 10);
}

/* A schema that checks most of the event: patterns, enums, ranges,
 * lengths, nested objects, an array; ip_redact is "" or a redact clause. */
static void write_schema(const char *dir, const char *ip_redact)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"type\":\"object\",\"required\":[\"user_id\",\"properties\",\"context\"],"
             "\"properties\":{"
             "\"user_id\":{\"type\":\"string\",\"pattern\":\"^u_[0-9]+$\",\"maxLength\":64},"
             "\"anonymous_id\":{\"type\":\"string\",\"pattern\":\"^[0-9a-f-]{36}$\"},"
             "\"properties\":{\"type\":\"object\",\"required\":[\"path\",\"price\",\"currency\"],"
             "\"properties\":{"
             "\"path\":{\"type\":\"string\",\"pattern\":\"^/\",\"maxLength\":2048},"
             "\"referrer\":{\"type\":\"string\",\"maxLength\":2048},"
             "\"title\":{\"type\":\"string\",\"maxLength\":200},"
             "\"price\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1e6},"
             "\"currency\":{\"enum\":[\"EUR\",\"USD\",\"GBP\"]},"
             "\"quantity\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100},"
             "\"in_stock\":{\"type\":\"boolean\"},"
             "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":20}},"
             "\"discount\":{\"type\":[\"number\",\"null\"],\"minimum\":0}}},"
             "\"context\":{\"type\":\"object\",\"properties\":{"
             "\"ip\":{\"type\":\"string\",\"maxLength\":45%s},"
             "\"locale\":{\"type\":\"string\",\"pattern\":\"^[a-z]{2}-[A-Z]{2}$\"},"
             "\"library\":{\"type\":\"object\",\"required\":[\"name\",\"version\"]},"
             "\"userAgent\":{\"type\":\"string\",\"maxLength\":512},"
             "\"screen\":{\"type\":\"object\",\"properties\":{\"width\":{\"type\":\"integer\"},"
             "\"height\":{\"type\":\"integer\"}}}}}}}",
             ip_redact);
    for (int i = 0; i < 4; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/%s/1.json", dir, names[i]);
        tu_write_file(path, text, strlen(text));
    }
}

static struct pipe_schema_set *load(const char *ip_redact)
{
    static const struct pipe_schema_opts key = {(const unsigned char *)"bench-key-0123456789", 20,
                                                false};
    char *dir = tu_tmpdir("bench-schema");
    write_schema(dir, ip_redact);
    struct pipe_schema_set *set = NULL;
    char err[512];
    if (pipe_schema_set_load(dir, &key, &set, err, sizeof err) < 0) {
        fprintf(stderr, "bench_schema: %s\n", err);
        exit(1);
    }
    tu_rmrf(dir);
    free(dir);
    return set;
}

/* run — events/s/core of the envelope step plus, with set, the schema
 * step as the filter runs it. */
static double run(char **ev, const size_t *len, struct pipe_schema_set *set, long *accepted,
                  long *rewritten)
{
    struct pipe_event_ctx ctx = {"web", 1714564800000LL, 0, 0};
    struct pipe_buf out, scratch;
    struct pipe_schema_checker *ck = pipe_schema_checker_new();
    pipe_buf_init(&out, SIZE_MAX);
    pipe_buf_init(&scratch, SIZE_MAX);
    *accepted = *rewritten = 0;
    double t0 = now_s();
    for (int r = 0; r < ROUNDS; r++) {
        for (unsigned i = 0; i < NEVENTS; i++) {
            struct pipe_event_result res;
            struct pipe_schema_result sr = {.reason = PIPE_REASON_OK};
            pipe_buf_reset(&out);
            if (pipe_event_process(ev[i], len[i], &ctx, &out, &res) < 0 || res.reason)
                continue;
            if (set) {
                pipe_buf_reset(&scratch);
                pipe_schema_check(set, ck, out.data, out.len - 1, res.event, res.event_len,
                                  &scratch, &sr);
            }
            *accepted += sr.reason == PIPE_REASON_OK || sr.reason == PIPE_REASON_UNKNOWN_EVENT_TYPE;
            *rewritten += sr.changed;
        }
    }
    double rate = (double)ROUNDS * NEVENTS / (now_s() - t0);
    pipe_schema_checker_free(ck);
    pipe_buf_cleanup(&scratch);
    pipe_buf_cleanup(&out);
    return rate;
}

static char **corpus(const char *prefix, size_t *len, size_t *total)
{
    char **ev = malloc(NEVENTS * sizeof *ev);
    *total = 0;
    for (unsigned i = 0; i < NEVENTS; i++) {
        char buf[2048];
        len[i] = make_event(buf, sizeof buf, i, prefix);
        ev[i] = malloc(len[i]);
        memcpy(ev[i], buf, len[i]);
        *total += len[i];
    }
    return ev;
}

int main(void)
{
    pipe_log_init("bench", PIPE_LOG_ERROR);
    size_t *len = malloc(NEVENTS * sizeof *len), *len2 = malloc(NEVENTS * sizeof *len2), total;
    char **ev = corpus("", len, &total), **other = corpus("x_", len2, &total);
    struct pipe_schema_set *plain = load(""), *redacting = load(",\"redact\":\"hash\"");
    long acc[4], rew[4];
    double base = run(ev, len, NULL, &acc[0], &rew[0]);
    double checked = run(ev, len, plain, &acc[1], &rew[1]);
    double redacted = run(ev, len, redacting, &acc[2], &rew[2]);
    double unknown = run(other, len2, plain, &acc[3], &rew[3]);
    long n = (long)ROUNDS * NEVENTS;
    printf("bench_schema: %u events x %d rounds, mean %zu bytes, 4 types, one schema each\n",
           NEVENTS, ROUNDS, total / NEVENTS);
    printf("  envelope only                 %10.0f events/s/core  (%ld/%ld accepted)\n", base,
           acc[0], n);
    printf("  + schema, validation only     %10.0f events/s/core  (%ld accepted, %ld rewritten)  "
           "%.2f us/event for the schema\n",
           checked, acc[1], rew[1], 1e6 / checked - 1e6 / base);
    printf("  + schema hashing context.ip   %10.0f events/s/core  (%ld accepted, %ld rewritten)  "
           "%.2f us/event for the schema\n",
           redacted, acc[2], rew[2], 1e6 / redacted - 1e6 / base);
    printf("  type without schema           %10.0f events/s/core  (%ld accepted)  %.2f us/event "
           "for the lookup\n",
           unknown, acc[3], 1e6 / unknown - 1e6 / base);
    pipe_schema_set_free(plain);
    pipe_schema_set_free(redacting);
    for (unsigned i = 0; i < NEVENTS; i++) {
        free(ev[i]);
        free(other[i]);
    }
    free(ev);
    free(other);
    free(len);
    free(len2);
    return 0;
}
