/* bench_split — events per second per core of the real sluice-splitter
 * (zstd in, zstd out, de-duplication claim, file:// store with fsync) on a
 * generated combined object, against a same-run peer: a plain Python
 * json.loads routing loop over the same lines (no compression, no store:
 * a lower bound on the cost of a scripted splitter). Prints figures;
 * asserts nothing (make bench).
 *
 * usage: bench_split [EVENTS [RUNS]]   (env BIN: where sluice-splitter is,
 * default bin; PYTHON3: the interpreter, default /usr/bin/python3) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/keys.h"
#include "libpipe/manifest.h"
#include "libpipe/store.h"

#define HOUR_MS 1793522400000LL /* 2026-11-01T10:00:00Z */
#define JOB_ID  "g1-2026110110-00000000bench001"

static const char *const names[] = {
    "page_view", "screen_view", "button_click", "add_to_cart", "order_completed", "search",
    "signup", "login", "app_open", "video_play", "share", "ad_impression"};

/* make_event — one filtered event of ~650 bytes; every 20th repeats an
 * earlier id (a client retry the filter let through). */
static size_t make_event(char *buf, size_t cap, unsigned i)
{
    unsigned id = i % 20 == 19 ? i / 2 : i;
    unsigned t = (unsigned)((uint64_t)i * 3600000u / 4000000u) % 3600000u;
    unsigned r = (id * 2654435761u) >> 20;
    const char *name = names[r % 12 < 4 ? 0 : r % 12]; /* page_view a third of them */
    return (size_t)snprintf(
        buf, cap,
        "{\"event\":\"%s\",\"id\":\"%08x-%04x-4%03x-a%03x-%012x\",\"ts\":\"2026-11-01T09:%02u:%02u.%03uZ\","
        "\"anonymous_id\":\"0b0e5a8c%08x4c1e9d5b7f1d2c3b\",\"user_id\":\"usr_%u\","
        "\"context\":{\"page\":{\"url\":\"https://shop.example.com/products/%u\",\"referrer\":"
        "\"https://www.example.com/search?q=shoes&page=%u\"},\"user_agent\":\"Mozilla/5.0 "
        "(Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15\",\"library\":{\"name\":\"analytics.js\",\"version\":"
        "\"4.1.%u\"},\"locale\":\"en-US\",\"ip\":\"203.0.113.%u\"},\"properties\":{\"price\":%u.%02u,"
        "\"currency\":\"EUR\",\"quantity\":%u,\"tags\":[\"sale\",\"summer\"],\"title\":\"Running "
        "shoes, size %u\"},\"received_at\":\"2026-11-01T10:%02u:%02u.%03uZ\",\"channel\":\"web\"}\n",
        name, id, id & 0xffff, id & 0xfff, (id >> 3) & 0xfff, id * 7919u, id % 60, (id / 7) % 60,
        id % 1000, id * 2246822519u, id % 100000, id % 5000, id % 20, id % 10, id % 254,
        10 + id % 200, id % 100, 1 + id % 5, 36 + id % 12, t / 60000, t / 1000 % 60, t % 1000);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* setup_store — a fresh file:// store holding the combined object and its
 * split job descriptor. */
static int setup_store(const char *dir, const struct pipe_buf *z)
{
    char cmd[4200], url[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/store' '%s/leases'", dir, dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(url, sizeof url, "file://%s/store", dir);
    struct pipe_store *s = NULL;
    struct pipe_buf key, doc;
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&doc, 1 << 20);
    struct pipe_store_obj info;
    struct pipe_manifest_job job;
    pipe_manifest_job_init(&job);
    int rc = pipe_store_open(url, &s);
    if (rc == 0)
        rc = pipe_keys_combined(&key, HOUR_MS, JOB_ID);
    if (rc == 0)
        rc = pipe_store_put(s, key.data, z->data, z->len);
    if (rc == 0)
        rc = pipe_store_stat(s, key.data, &info);
    if (rc == 0) {
        job.job_id = strdup(JOB_ID);
        job.generation = 1;
        job.output_key = strdup(key.data);
        pipe_manifest_job_add_input(&job, key.data, info.size, info.etag);
        rc = pipe_manifest_job_to_json(&job, &doc);
    }
    if (rc == 0)
        rc = pipe_keys_split_job(&key, JOB_ID);
    if (rc == 0)
        rc = pipe_store_put(s, key.data, doc.data, doc.len);
    pipe_manifest_job_cleanup(&job);
    pipe_buf_cleanup(&key);
    pipe_buf_cleanup(&doc);
    pipe_store_free(s);
    return rc;
}

/* run_splitter — one `sluice-splitter --once` over the store; returns its
 * CPU seconds (user + system) and wall seconds, or -1. */
static double run_splitter(const char *bin, const char *dir, double *wall)
{
    char exe[4200], store[4200], leases[4200], log[4200];
    snprintf(exe, sizeof exe, "%s/sluice-splitter", bin);
    snprintf(store, sizeof store, "file://%s/store", dir);
    snprintf(leases, sizeof leases, "local://%s/leases", dir);
    snprintf(log, sizeof log, "%s/splitter.log", dir);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(log, "w", stderr))
            _exit(127);
        execl(exe, exe, "--once", "--admin", "off", "--store", store, "--leases", leases,
              (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_split: %s failed (see %s)\n", exe, log);
        return -1;
    }
    *wall = now_s() - t0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static const char python_peer[] =
    "import json, sys, time\n"
    "lines = open(sys.argv[1], 'rb').read().split(b'\\n')\n"
    "t = time.process_time()\n"
    "outs, seen, n = {}, set(), 0\n"
    "for line in lines:\n"
    "    if not line:\n"
    "        continue\n"
    "    n += 1\n"
    "    e = json.loads(line)\n"
    "    k = (e['event'], e['id'])\n"
    "    if k in seen:\n"
    "        continue\n"
    "    seen.add(k)\n"
    "    outs.setdefault((e['event'], e['received_at'][:13]), []).append(line)\n"
    "print(int(n / (time.process_time() - t)))\n";

static void python_peer_run(const char *dir, const struct pipe_buf *plain)
{
    char path[4200], script[4200], cmd[9000];
    const char *py = getenv("PYTHON3") ? getenv("PYTHON3") : "/usr/bin/python3";
    snprintf(path, sizeof path, "%s/plain.ndjson", dir);
    snprintf(script, sizeof script, "%s/peer.py", dir);
    FILE *f = fopen(path, "wb"), *g = fopen(script, "w");
    if (!f || !g || fwrite(plain->data, 1, plain->len, f) != plain->len ||
        fputs(python_peer, g) < 0) {
        if (f)
            fclose(f);
        if (g)
            fclose(g);
        return;
    }
    fclose(f);
    fclose(g);
    snprintf(cmd, sizeof cmd, "%s '%s' '%s'", py, script, path);
    FILE *p = popen(cmd, "r");
    char line[64] = "";
    if (p && fgets(line, sizeof line, p))
        printf("  python json.loads routing  %10ld events/s/core  (no compression, no store)\n",
               strtol(line, NULL, 10));
    if (p)
        pclose(p);
    printf("  peer command: %s %s %s\n", py, "peer.py", "plain.ndjson (peer.py: see bench_split.c)");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000000;
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    const char *bin = getenv("BIN") ? getenv("BIN") : "bin";
    char abs_bin[4096];
    if (!realpath(bin, abs_bin)) {
        fprintf(stderr, "bench_split: no directory %s (set BIN)\n", bin);
        return 1;
    }
    char dir[] = "/tmp/bench_split.XXXXXX";
    if (!mkdtemp(dir) || runs < 1 || runs > 50)
        return 1;

    struct pipe_buf plain, z;
    pipe_buf_init(&plain, SIZE_MAX);
    pipe_buf_init(&z, SIZE_MAX);
    for (unsigned i = 0; i < n; i++) {
        char buf[2048];
        pipe_buf_append(&plain, buf, make_event(buf, sizeof buf, i));
    }
    struct pipe_zwriter *zw = NULL;
    if (pipe_zwriter_new(1, &z, &zw) < 0 || pipe_zwriter_write(zw, plain.data, plain.len) < 0 ||
        pipe_zwriter_finish(zw) < 0)
        return 1;
    pipe_zwriter_free(zw);
    printf("bench_split: %u events, mean %zu bytes, combined object %.1f MB zstd-1 (%.1f MB plain)\n",
           n, plain.len / (n ? n : 1), (double)z.len / 1e6, (double)plain.len / 1e6);

    double rate[50], wall_rate[50];
    int ok = 0;
    for (int i = 0; i < runs; i++) {
        double wall = 0, cpu;
        if (setup_store(dir, &z) < 0 || (cpu = run_splitter(abs_bin, dir, &wall)) <= 0)
            break;
        rate[ok] = n / cpu;
        wall_rate[ok++] = n / wall;
    }
    if (ok) {
        qsort(rate, (size_t)ok, sizeof *rate, cmp_double);
        qsort(wall_rate, (size_t)ok, sizeof *wall_rate, cmp_double);
        printf("  sluice-splitter --once     %10.0f events/s/core  %7.1f MB/s/core  "
               "(%.0f events/s wall; median of %d)\n",
               rate[ok / 2], rate[ok / 2] * (double)plain.len / n / 1e6, wall_rate[ok / 2], ok);
    }
    python_peer_run(dir, &plain);

    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_split: could not remove %s\n", dir);
    pipe_buf_cleanup(&plain);
    pipe_buf_cleanup(&z);
    return ok == runs ? 0 : 1;
}
