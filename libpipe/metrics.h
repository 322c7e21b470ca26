/* metrics — a registry of counters, gauges and histograms rendered in the
 * Prometheus text exposition format 0.0.4.
 *
 * Registration takes the registry's mutex and returns a handle that lives as
 * long as the registry; updates through a handle are relaxed C11 atomics,
 * cheap enough for one call per event. Register once at start-up and keep
 * the handle: lookup by name is a linear scan. */
#ifndef PIPE_METRICS_H
#define PIPE_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct pipe_buf;
struct pipe_metrics;
struct pipe_counter;
struct pipe_gauge;
struct pipe_histogram;

/* A family holds at most this many label sets; registering one more returns
 * NULL (and logs a warning once), so a label fed by input (an event type)
 * cannot grow the registry without bound. Updates on NULL are no-ops. */
#define PIPE_METRICS_MAX_SERIES 1000
/* Most bounds a histogram may have (the +Inf bucket is implicit). */
#define PIPE_METRICS_MAX_BOUNDS 64

/* Latency buckets in seconds, 0.5 ms to 60 s, for request and batch timings. */
extern const double pipe_metrics_seconds_bounds[];
extern const size_t pipe_metrics_seconds_nbounds;

typedef double (*pipe_metrics_value_fn)(void *arg);

/* pipe_metrics_new / pipe_metrics_free — an empty registry; free releases it
 * and every handle it gave out. free(NULL) is a no-op. */
struct pipe_metrics *pipe_metrics_new(void);
void pipe_metrics_free(struct pipe_metrics *m);

/* Registration. name must match [a-zA-Z_:][a-zA-Z0-9_:]*; labels is NULL or
 * a preformatted list `op="put",stage="filter"` (names [a-zA-Z_][a-zA-Z0-9_]*
 * not starting with "__", values escaped as pipe_metrics_label_append does).
 * help is copied from the first registration of the name.
 *
 * Invalid names or labels, and reusing a name with another type (or a
 * histogram name with other bounds), are programming errors: they abort()
 * with a message on stderr. The same name and labels return the same handle.
 * NULL is returned only when the family is full (PIPE_METRICS_MAX_SERIES). */
struct pipe_counter *pipe_metrics_counter(struct pipe_metrics *m, const char *name,
                                          const char *help, const char *labels);
struct pipe_gauge *pipe_metrics_gauge(struct pipe_metrics *m, const char *name, const char *help,
                                      const char *labels);
/* bounds: nbounds finite upper bounds, strictly increasing, at most
 * PIPE_METRICS_MAX_BOUNDS; copied. The label name "le" is reserved. */
struct pipe_histogram *pipe_metrics_histogram(struct pipe_metrics *m, const char *name,
                                              const char *help, const char *labels,
                                              const double *bounds, size_t nbounds);

/* Values computed at scrape time: fn(arg) is called by pipe_metrics_render
 * with the registry's mutex held, so it must not register metrics; it may
 * run on any thread. Registering the same name and labels twice aborts. */
void pipe_metrics_gauge_fn(struct pipe_metrics *m, const char *name, const char *help,
                           const char *labels, pipe_metrics_value_fn fn, void *arg);
void pipe_metrics_counter_fn(struct pipe_metrics *m, const char *name, const char *help,
                             const char *labels, pipe_metrics_value_fn fn, void *arg);

/* A program's metrics declared as one table, registered by one call
 * (pipe_metrics_register_table) instead of a call per metric. */
enum pipe_metric_kind {
    PIPE_METRIC_COUNTER,  /* a struct pipe_counter * stored at offset */
    PIPE_METRIC_GAUGE,    /* a struct pipe_gauge * stored at offset */
    PIPE_METRIC_SECONDS,  /* a struct pipe_histogram * over pipe_metrics_seconds_bounds */
    PIPE_METRIC_GAUGE_FN, /* no handle: fn(fn_arg) computed at scrape time */
};

struct pipe_metric_def {
    enum pipe_metric_kind kind;
    const char *name;
    const char *labels;       /* NULL for none */
    size_t offset;            /* of the handle in the caller's struct */
    pipe_metrics_value_fn fn; /* PIPE_METRIC_GAUGE_FN only */
    const char *help;
};

/* The rows of a table. PIPE_METRIC: kind without its prefix (COUNTER,
 * GAUGE, SECONDS), the handle's field in struct type, name and help.
 * PIPE_METRIC_LABELED: the same for one label set of a family, labels as
 * for pipe_metrics_counter. PIPE_METRIC_FN: a gauge computed at scrape time
 * by fn (called with register_table's fn_arg); it has no handle. */
#define PIPE_METRIC(kind, type, field, name, help)                                                 \
    PIPE_METRIC_LABELED(kind, type, field, name, NULL, help)
#define PIPE_METRIC_LABELED(kind, type, field, name, labels, help)                                 \
    {                                                                                              \
        PIPE_METRIC_##kind, (name), (labels), offsetof(type, field), NULL, (help)                  \
    }
#define PIPE_METRIC_FN(name, fn, help)                                                             \
    {                                                                                              \
        PIPE_METRIC_GAUGE_FN, (name), NULL, 0, (fn), (help)                                        \
    }

/* pipe_metrics_register_table — registers every row of defs, up to one
 * whose name is NULL, as the calls above would, and stores each handle at
 * base + offset; gauges computed at scrape time get fn_arg. */
void pipe_metrics_register_table(struct pipe_metrics *m, const struct pipe_metric_def *defs,
                                 void *base, void *fn_arg);

/* Updates: lock-free, any thread; a NULL handle is ignored. */
void pipe_counter_add(struct pipe_counter *c, uint64_t n);
void pipe_counter_inc(struct pipe_counter *c);
uint64_t pipe_counter_value(const struct pipe_counter *c);
void pipe_gauge_set(struct pipe_gauge *g, double v);
void pipe_gauge_add(struct pipe_gauge *g, double d);
double pipe_gauge_value(const struct pipe_gauge *g);
/* pipe_histogram_observe — counts v in the first bucket whose bound is >= v
 * (or +Inf) and adds it to the sum. NaN is ignored. */
void pipe_histogram_observe(struct pipe_histogram *h, double v);

/* pipe_histogram_count — observations so far. */
uint64_t pipe_histogram_count(const struct pipe_histogram *h);
/* pipe_histogram_quantile — estimate of the q-quantile (0 <= q <= 1) by
 * linear interpolation within the bucket holding it, the lowest bucket
 * starting at 0 (or at its bound if that is negative). Values in the +Inf
 * bucket report the highest finite bound. NaN when empty or q is out of
 * range. For benchmarks and logs; Prometheus computes its own. */
double pipe_histogram_quantile(const struct pipe_histogram *h, double q);

/* pipe_metrics_render — appends every family, in registration order, to out:
 * `# HELP` and `# TYPE` once per name, then one line per label set (for a
 * histogram: cumulative `_bucket{le=...}` lines ending with +Inf, `_sum`,
 * `_count`). Returns 0, or PIPE_ETOOBIG if out's cap was reached (out then
 * holds a truncated rendering). */
int pipe_metrics_render(struct pipe_metrics *m, struct pipe_buf *out);

/* pipe_metrics_label_append — appends `name="value"` to a label list in b,
 * preceded by a comma when b is not empty, escaping \ " and newline in value
 * and replacing bytes that are not valid UTF-8 with '?'. For label values
 * known only at run time. Returns 0, PIPE_EINVAL for an invalid label name,
 * or PIPE_ETOOBIG (b's cap); b is unchanged on error. */
int pipe_metrics_label_append(struct pipe_buf *b, const char *name, const char *value);

#endif
