/* bench_scan — lines per CPU-second of pipe_json_scan alone on a corpus of
 * NDJSON events, the two ways the pipeline calls it: the filter's
 * (strict, compacting into a buffer, a member callback) and the
 * splitter's (lenient, validate only, a member callback). Prints the
 * median of RUNS passes; asserts nothing (make bench).
 *
 * usage: bench_scan CORPUS [LINES [RUNS]]
 *   CORPUS: NDJSON, e.g. `sluicectl gen --count 200000 --seed 7`
 *   LINES:  read at most this many lines (default 200000)
 *   RUNS:   passes per mode (default 5) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libpipe/buf.h"
#include "libpipe/ndjson.h"

#define RUNS_MAX 64

struct corpus {
    char *data;
    size_t len;
    size_t *off; /* line i is data[off[i] .. off[i + 1] - 1) */
    size_t n;
};

/* Reads up to max_lines lines of path into memory. */
static int corpus_load(struct corpus *c, const char *path, size_t max_lines)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 1 << 20, cap_off = 1024;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    if (!f) {
        perror(path);
        return -1;
    }
    c->data = malloc(cap);
    c->off = malloc(cap_off * sizeof *c->off);
    c->len = c->n = 0;
    c->off[0] = 0;
    while (c->n < max_lines && (n = getline(&line, &lcap, f)) > 0) {
        while (c->len + (size_t)n > cap)
            c->data = realloc(c->data, cap *= 2);
        if (c->n + 2 > cap_off)
            c->off = realloc(c->off, (cap_off *= 2) * sizeof *c->off);
        memcpy(c->data + c->len, line, (size_t)n);
        c->len += (size_t)n;
        c->off[++c->n] = c->len;
    }
    free(line);
    fclose(f);
    return 0;
}

/* Counts the members, as a caller's callback at least looks at each. */
static bool count_member(void *arg, const struct pipe_json_member *m)
{
    size_t *count = arg;
    *count += m->key_len > 0;
    return false;
}

/* One pass over the corpus; CPU seconds, or -1 when a line fails. */
static double one_pass(const struct corpus *c, bool emit, size_t *members)
{
    struct pipe_json_opts o = {64, emit ? 0 : PIPE_JSON_LENIENT, count_member, members};
    struct pipe_buf out;
    struct pipe_json_result res;
    struct timespec t0, t1; /* CPU time of the process, not wall time */
    pipe_buf_init(&out, 1 << 20);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (size_t i = 0; i < c->n; i++) {
        const char *line = c->data + c->off[i];
        size_t len = c->off[i + 1] - c->off[i] - 1; /* without its newline */
        out.len = 0;
        if (pipe_json_scan(line, len, &o, emit ? &out : NULL, &res) < 0) {
            fprintf(stderr, "line %zu: %s at byte %zu\n", i + 1, res.what, res.offset);
            pipe_buf_cleanup(&out);
            return -1;
        }
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    pipe_buf_cleanup(&out);
    return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    struct corpus c;
    size_t max_lines = argc > 2 ? strtoul(argv[2], NULL, 10) : 200000;
    int runs = argc > 3 ? atoi(argv[3]) : 5;
    if (argc < 2 || runs < 1 || runs > RUNS_MAX) {
        fprintf(stderr, "usage: bench_scan CORPUS [LINES [RUNS<=%d]]\n", RUNS_MAX);
        return 2;
    }
    if (corpus_load(&c, argv[1], max_lines) < 0 || c.n == 0)
        return 1;
    printf("bench_scan: %zu lines, mean %zu bytes, median of %d passes\n", c.n, c.len / c.n, runs);
    printf("| mode | lines/CPU-s | MB/CPU-s | ns/line |\n|---|---|---|---|\n");
    for (int mode = 0; mode < 2; mode++) {
        double t[RUNS_MAX];
        size_t members = 0;
        for (int r = 0; r < runs; r++)
            if ((t[r] = one_pass(&c, mode == 0, &members)) < 0)
                return 1;
        qsort(t, (size_t)runs, sizeof *t, cmp_double);
        double med = t[runs / 2];
        printf("| %s | %.0f | %.0f | %.0f |\n",
               mode == 0 ? "filter: strict, compacting" : "splitter: lenient, validate only",
               (double)c.n / med, (double)c.len / med / 1e6, med * 1e9 / (double)c.n);
    }
    free(c.data);
    free(c.off);
    return 0;
}
