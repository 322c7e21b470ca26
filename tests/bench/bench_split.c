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


static const char *const names[] = {
    "page_view", "screen_view", "button_click", "add_to_cart", "order_completed", "search",
    "signup", "login", "app_open", "video_play", "share", "ad_impression"};
static const char *const words[] = {
    "shoes", "running", "summer", "wallet", "chair", "mug", "lamp", "desk", "pro", "mini",
    "classic", "sport", "linen", "wool", "leather", "travel", "kids", "garden", "blue", "black"};

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* make_event — one filtered event of ~650 bytes with about the entropy of
 * `sluicectl gen` output (zstd -1 ratio ~5); every 20th repeats an earlier
 * id (a client retry the filter let through). hour_ms is its received_at
 * hour, t its offset in it. */
static size_t make_event(char *buf, size_t cap, unsigned i, int64_t hour_ms, unsigned t)
{
    unsigned id = i % 20 == 19 && i >= 100 ? i - 100 + (i % 7) : i;
    uint64_t a = next_rand(), b = next_rand(), c = next_rand();
    unsigned r = id * 2654435761u >> 20; /* a retry keeps its type */
    const char *name = names[r % 12 < 4 ? 0 : r % 12]; /* page_view a third of them */
    char recv[PIPE_CLOCK_RFC3339_LEN + 1];
    pipe_clock_format_rfc3339(hour_ms + t, recv);
    return (size_t)snprintf(
        buf, cap,
        "{\"event\":\"%s\",\"id\":\"%08x-%04x-4%03x-a%03x-%012x\",\"ts\":\"%.14s%02u:%02u.%03uZ\","
        "\"anonymous_id\":\"%016llx%016llx\",\"user_id\":\"usr_%012llx\","
        "\"context\":{\"page\":{\"url\":\"https://shop.example.com/products/%s-%s-%u\",\"referrer\":"
        "\"https://www.example.com/search?q=%s+%s&page=%u\"},\"user_agent\":\"Mozilla/5.0 "
        "(Macintosh; Intel Mac OS X 10_15_%u) AppleWebKit/605.1.%u (KHTML, like Gecko) "
        "Version/17.%u Safari/605.1.15\",\"library\":{\"name\":\"analytics.js\",\"version\":"
        "\"4.1.%u\"},\"locale\":\"en-US\",\"ip\":\"203.0.%u.%u\"},\"properties\":{\"price\":%u.%02u,"
        "\"currency\":\"EUR\",\"quantity\":%u,\"sku\":\"%010llx\",\"title\":\"%s %s %s, size %u\","
        "\"note\":\"%s %s %s %s\"},\"received_at\":\"%s\",\"channel\":\"web\"}\n",
        name, id, id & 0xffff, id & 0xfff, (id >> 3) & 0xfff, id * 7919u, recv,
        (unsigned)(b % 60), (unsigned)(b >> 8) % 60, (unsigned)(b >> 16) % 1000,
        (unsigned long long)a, (unsigned long long)b, (unsigned long long)(c & 0xffffffffffffULL),
        words[a % 20], words[b % 20], (unsigned)(c >> 20) % 5000, words[c % 20],
        words[(a >> 8) % 20], (unsigned)(b >> 30) % 20, (unsigned)(a >> 50) % 8,
        (unsigned)(c >> 40) % 40, (unsigned)(b >> 40) % 5, (unsigned)(c >> 10) % 10,
        (unsigned)(a >> 20) % 256, (unsigned)(b >> 20) % 256, 10 + (unsigned)(c >> 30) % 200,
        (unsigned)(a >> 33) % 100, 1 + (unsigned)(b >> 50) % 5,
        (unsigned long long)((a ^ c) & 0xffffffffffULL), words[(c >> 5) % 20],
        words[(b >> 5) % 20], words[(a >> 5) % 20], 36 + (unsigned)(c >> 50) % 12,
        words[(a >> 12) % 20], words[(b >> 12) % 20], words[(c >> 12) % 20],
        words[(a >> 17) % 20], recv);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One generated combined object and its job. */
struct bench_job {
    char id[64];
    int64_t hour_ms;
    unsigned events;
    struct pipe_buf z;
};

/* setup_store — a fresh file:// store holding the combined objects of
 * jobs[0..n) and their split job descriptors. */
static int setup_store(const char *dir, const struct bench_job *jobs, size_t n)
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
    int rc = pipe_store_open(url, &s);
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct pipe_store_obj info;
        struct pipe_manifest_job job;
        pipe_manifest_job_init(&job);
        rc = pipe_keys_combined(&key, jobs[i].hour_ms, jobs[i].id);
        if (rc == 0)
            rc = pipe_store_put(s, key.data, jobs[i].z.data, jobs[i].z.len);
        if (rc == 0)
            rc = pipe_store_stat(s, key.data, &info);
        if (rc == 0) {
            job.job_id = strdup(jobs[i].id);
            job.generation = 1;
            job.output_key = strdup(key.data);
            pipe_manifest_job_add_input(&job, key.data, info.size, info.etag);
            rc = pipe_manifest_job_to_json(&job, &doc);
        }
        if (rc == 0)
            rc = pipe_keys_split_job(&key, jobs[i].id);
        if (rc == 0)
            rc = pipe_store_put(s, key.data, doc.data, doc.len);
        pipe_manifest_job_cleanup(&job);
    }
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

/* measure — the median events/s per core (and wall) of RUNS runs of one
 * splitter over jobs[0..n). */
static int measure(const char *bin, const char *dir, const struct bench_job *jobs, size_t n,
                   int runs, double *per_core, double *wall_rate)
{
    double rate[50], wrate[50];
    unsigned events = 0;
    for (size_t i = 0; i < n; i++)
        events += jobs[i].events;
    for (int i = 0; i < runs; i++) {
        double wall = 0, cpu;
        if (setup_store(dir, jobs, n) < 0 || (cpu = run_splitter(bin, dir, &wall)) <= 0)
            return -1;
        rate[i] = events / cpu;
        wrate[i] = events / wall;
    }
    qsort(rate, (size_t)runs, sizeof *rate, cmp_double);
    qsort(wrate, (size_t)runs, sizeof *wrate, cmp_double);
    *per_core = rate[runs / 2];
    *wall_rate = wrate[runs / 2];
    return 0;
}

int main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000000;
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    size_t n_jobs = 4;
    const char *bin = getenv("BIN") ? getenv("BIN") : "bin";
    char abs_bin[4096];
    if (!realpath(bin, abs_bin)) {
        fprintf(stderr, "bench_split: no directory %s (set BIN)\n", bin);
        return 1;
    }
    char dir[] = "/tmp/bench_split.XXXXXX";
    if (n < n_jobs || !mkdtemp(dir) || runs < 1 || runs > 50)
        return 1;

    /* n events in 4 jobs of consecutive hours; retries repeat an event
     * up to 100 lines back, so a few cross a job boundary. */
    struct bench_job jobs[4];
    /* Recent hours: claims only count inside the de-duplication window. */
    int64_t hour0 = pipe_clock_now_ms() / 3600000 * 3600000 - 6 * 3600000LL;
    struct pipe_buf plain;
    pipe_buf_init(&plain, SIZE_MAX);
    for (size_t k = 0; k < n_jobs; k++) {
        struct bench_job *j = &jobs[k];
        struct pipe_buf id;
        pipe_buf_init(&id, sizeof j->id - 1);
        j->hour_ms = hour0 + (int64_t)k * 3600000;
        pipe_keys_job_id(&id, 1, j->hour_ms, 0xbe9c4000u + k);
        snprintf(j->id, sizeof j->id, "%s", id.data);
        pipe_buf_cleanup(&id);
        j->events = n / n_jobs;
        size_t start = plain.len;
        for (unsigned i = 0; i < j->events; i++) {
            char buf[2048];
            unsigned seq = (unsigned)k * j->events + i;
            unsigned t = (unsigned)((uint64_t)i * 3599999u / j->events);
            pipe_buf_append(&plain, buf, make_event(buf, sizeof buf, seq, j->hour_ms, t));
        }
        pipe_buf_init(&j->z, SIZE_MAX);
        struct pipe_zwriter *zw = NULL;
        if (pipe_zwriter_new(1, &j->z, &zw) < 0 ||
            pipe_zwriter_write(zw, plain.data + start, plain.len - start) < 0 ||
            pipe_zwriter_finish(zw) < 0)
            return 1;
        pipe_zwriter_free(zw);
    }
    size_t zlen = 0;
    for (size_t k = 0; k < n_jobs; k++)
        zlen += jobs[k].z.len;
    printf("bench_split: %zu events in %zu jobs, mean %zu bytes, %.1f MB zstd-1 (x%.1f)\n",
           n_jobs * jobs[0].events, n_jobs, plain.len / (n ? n : 1), (double)zlen / 1e6,
           (double)plain.len / (double)zlen);

    double core = 0, wall = 0;
    int rc = measure(abs_bin, dir, jobs, 1, runs, &core, &wall);
    if (rc == 0)
        printf("  sluice-splitter, 1 job      %10.0f events/s/core  %7.1f MB/s/core  (%.0f "
               "events/s wall; a fresh process per job)\n",
               core, core * (double)plain.len / n / 1e6, wall);
    if (rc == 0)
        rc = measure(abs_bin, dir, jobs, n_jobs, runs, &core, &wall);
    if (rc == 0)
        printf("  sluice-splitter, %zu jobs     %10.0f events/s/core  %7.1f MB/s/core  (%.0f "
               "events/s wall; one process, buffers reused)\n",
               n_jobs, core, core * (double)plain.len / n / 1e6, wall);
    python_peer_run(dir, &plain);

    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (getenv("BENCH_KEEP")) /* for profiling: the store of the last run stays */
        printf("  kept %s\n", dir);
    else if (system(cmd) != 0)
        fprintf(stderr, "bench_split: could not remove %s\n", dir);
    pipe_buf_cleanup(&plain);
    for (size_t k = 0; k < n_jobs; k++)
        pipe_buf_cleanup(&jobs[k].z);
    return rc == 0 ? 0 : 1;
}
