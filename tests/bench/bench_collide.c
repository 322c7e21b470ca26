/* bench_collide — what ids crafted to collide cost the splitter, against
 * random ids: the splitter's routing pass (split_route_pass, linked from
 * stages/splitter) over N events whose de-duplication keys share their low
 * 12 bits (the slot of an unseeded table indexed by the key's bits, as the
 * splitter's key set was), and over N events with ordinary ids of the same
 * length. Also prints the probes per key each set would cost in such an
 * unseeded table, for scale. Prints figures; asserts nothing (make bench).
 *
 * usage: bench_collide [EVENTS [RUNS]]   (default 16384 events, 5 runs) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libpipe/dedup.h"
#include "libpipe/mem.h"
#include "stages/splitter/splitter.h"

#define CRAFT_MASK 0xfffULL /* bits of the key the crafted ids share */
#define OLD_TABLE  (1u << 16)

/* make_id — "u" and 15 hex digits of v: every id has the same length. */
static void make_id(uint64_t v, char id[17])
{
    static const char hex[] = "0123456789abcdef";
    id[0] = 'u';
    for (int i = 15; i >= 1; i--, v >>= 4)
        id[i] = hex[v & 15];
    id[16] = '\0';
}

/* corpus — N lines of one event type and hour; crafted ids are searched
 * for (about 4096 tries each), random ones taken as they come. */
static void corpus(struct pipe_buf *out, size_t n, bool crafted, struct pipe_dedup_key *keys)
{
    uint64_t v = crafted ? 1 : 0x8000000000000ULL;
    for (size_t i = 0; i < n; i++) {
        char id[17];
        struct pipe_dedup_key k;
        for (;; v++) {
            make_id(v, id);
            pipe_dedup_key_of("page_view", 9, id, 16, &k);
            if (!crafted || (k.lo & CRAFT_MASK) == 0)
                break;
        }
        v++;
        keys[i] = k;
        char line[160];
        int len = snprintf(line, sizeof line,
                           "{\"event\":\"page_view\",\"id\":\"%s\",\"received_at\":"
                           "\"2026-11-01T10:00:00.000Z\",\"channel\":\"web\"}\n",
                           id);
        (void)pipe_buf_append(out, line, (size_t)len);
    }
}

/* old_probes — slots looked at per insert in a linear-probing table of
 * OLD_TABLE slots indexed by the key's low bits (no seed). */
static double old_probes(const struct pipe_dedup_key *keys, size_t n)
{
    uint8_t *used = pipe_calloc(OLD_TABLE, 1);
    unsigned long long probes = 0;
    for (size_t i = 0; i < n && i < OLD_TABLE / 2; i++) {
        size_t j = keys[i].lo & (OLD_TABLE - 1);
        for (probes++; used[j]; j = (j + 1) & (OLD_TABLE - 1))
            probes++;
        used[j] = 1;
    }
    pipe_free(used);
    return (double)probes / (double)n;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* pass_s — the fastest of runs routing passes over data, in seconds. */
static double pass_s(struct split_route *r, const struct pipe_buf *data, int runs)
{
    double best = 1e9;
    for (int i = 0; i < runs; i++) {
        split_route_reset(r, "bench", "bench");
        double t0 = cpu_s();
        int rc = split_route_pass(r, data->data, data->len, NULL, NULL);
        if (rc == 0)
            rc = split_route_settle(r, NULL, NULL); /* no claim: every key new */
        double t = cpu_s() - t0;
        if (rc != 0 || r->c.out + r->c.rejected + r->c.dup_batch != r->c.in) {
            fprintf(stderr, "bench_collide: the pass failed (%d)\n", rc);
            exit(1);
        }
        best = t < best ? t : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 16384;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (n == 0 || n > OLD_TABLE / 2 || runs < 1) {
        fprintf(stderr, "usage: bench_collide [EVENTS (1..%u) [RUNS]]\n", OLD_TABLE / 2);
        return 2;
    }
    struct pipe_buf crafted, random;
    pipe_buf_init(&crafted, SIZE_MAX);
    pipe_buf_init(&random, SIZE_MAX);
    struct pipe_dedup_key *ck = pipe_malloc(n * sizeof *ck), *rk = pipe_malloc(n * sizeof *rk);
    double t0 = cpu_s();
    corpus(&crafted, n, true, ck);
    double craft_s = cpu_s() - t0;
    corpus(&random, n, false, rk);
    struct split_route r;
    if (split_route_init(&r, false, 1, 1u << 20, 1u << 30) != 0)
        return 1;
    double tc = pass_s(&r, &crafted, runs), tr = pass_s(&r, &random, runs);
    printf("bench_collide: %zu events of one type and hour, ids of 16 bytes; crafted ids share\n"
           "  the low 12 bits of their key (%.1f s of CPU to find them)\n",
           n, craft_s);
    printf("  unseeded table indexed by key bits:  crafted %8.1f probes/key   random %5.2f "
           "probes/key\n",
           old_probes(ck, n), old_probes(rk, n));
    printf("  splitter routing pass (seeded):      crafted %8.0f events/s     random %8.0f "
           "events/s\n",
           (double)n / tc, (double)n / tr);
    printf("  crafted / random cost: %.2fx (fastest of %d runs each)\n", tc / tr, runs);
    split_route_cleanup(&r);
    pipe_free(ck);
    pipe_free(rk);
    pipe_buf_cleanup(&crafted);
    pipe_buf_cleanup(&random);
    return 0;
}
