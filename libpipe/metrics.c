/* metrics — the registry (families of label sets under one mutex) and its
 * Prometheus text rendering; the values themselves are relaxed atomics that
 * hot paths update without the mutex.
 *
 * A family is one metric name with its HELP and TYPE; each label set is a
 * series whose handle (pipe_counter, ...) starts with a struct series, so
 * the registry can walk them all and the render can cast back by type. */
#include "libpipe/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/err.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"

const double pipe_metrics_seconds_bounds[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};
const size_t pipe_metrics_seconds_nbounds =
    sizeof pipe_metrics_seconds_bounds / sizeof pipe_metrics_seconds_bounds[0];

enum family_type { FAM_COUNTER, FAM_GAUGE, FAM_HISTOGRAM };

struct series {
    struct series *next;
    char *labels;             /* "" when there are none */
    pipe_metrics_value_fn fn; /* set for values computed at scrape time */
    void *arg;
};

struct pipe_counter {
    struct series s;
    _Atomic uint64_t value;
};

/* Doubles live in a uint64_t as their bit pattern: C11 has no portable
 * lock-free atomic double, and the CAS loop on bits is what C++ does too. */
struct pipe_gauge {
    struct series s;
    _Atomic uint64_t bits;
};

struct pipe_histogram {
    struct series s;
    const double *bounds; /* the family's */
    size_t nbounds;
    _Atomic uint64_t sum_bits;
    _Atomic uint64_t counts[]; /* per bucket, not cumulative; [nbounds] is +Inf */
};

struct family {
    struct family *next;
    char *name;
    char *help;
    enum family_type type;
    double *bounds; /* histograms */
    size_t nbounds;
    struct series *head, **tail;
    size_t nseries;
    bool warned_full;
};

struct pipe_metrics {
    pthread_mutex_t lock;
    struct family *head, **tail;
};

static _Noreturn void misuse(const char *what, const char *name, const char *detail)
{
    fprintf(stderr, "pipe_metrics: %s '%s'%s%s\n", what, name, detail ? ": " : "",
            detail ? detail : "");
    abort();
}

static uint64_t to_bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static void atomic_add_double(_Atomic uint64_t *a, double d)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, to_bits(from_bits(old) + d),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* ---- names -------------------------------------------------------------------- */

static bool is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool valid_metric_name(const char *s)
{
    if (!is_alpha_(*s) && *s != ':')
        return false;
    for (s++; *s; s++)
        if (!is_alpha_(*s) && !is_digit(*s) && *s != ':')
            return false;
    return true;
}

/* check_labels — aborts unless labels is a well-formed `a="x",b="y"` list
 * (the same escaping as pipe_metrics_label_append produces). */
static void check_labels(const char *name, const char *labels, bool histogram)
{
    const char *s = labels;
    while (*s) {
        const char *start = s;
        if (!is_alpha_(*s))
            misuse("bad label list for", name, labels);
        while (is_alpha_(*s) || is_digit(*s))
            s++;
        size_t n = (size_t)(s - start);
        if ((n >= 2 && start[0] == '_' && start[1] == '_') ||
            (histogram && n == 2 && strncmp(start, "le", 2) == 0))
            misuse("reserved label name in", name, labels);
        if (s[0] != '=' || s[1] != '"')
            misuse("bad label list for", name, labels);
        for (s += 2; *s != '"'; s++) {
            if (*s == '\0' || *s == '\n')
                misuse("unterminated label value in", name, labels);
            if (*s == '\\' && s[1] != '\\' && s[1] != '"' && s[1] != 'n')
                misuse("bad escape in label value of", name, labels);
            if (*s == '\\')
                s++;
        }
        s++;
        if (*s == ',' && s[1] != '\0')
            s++;
        else if (*s != '\0')
            misuse("bad label list for", name, labels);
    }
}

/* ---- registry ------------------------------------------------------------------- */

struct pipe_metrics *pipe_metrics_new(void)
{
    struct pipe_metrics *m = pipe_calloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    m->tail = &m->head;
    return m;
}

void pipe_metrics_free(struct pipe_metrics *m)
{
    if (m == NULL)
        return;
    struct family *f = m->head;
    while (f) {
        struct family *fnext = f->next;
        struct series *s = f->head;
        while (s) {
            struct series *snext = s->next;
            pipe_free(s->labels);
            pipe_free(s);
            s = snext;
        }
        pipe_free(f->name);
        pipe_free(f->help);
        pipe_free(f->bounds);
        pipe_free(f);
        f = fnext;
    }
    pthread_mutex_destroy(&m->lock);
    pipe_free(m);
}

static const char *type_name(enum family_type t)
{
    return t == FAM_COUNTER ? "counter" : t == FAM_GAUGE ? "gauge" : "histogram";
}

/* family_get — the family called name, created if new; aborts if it exists
 * with another type or other bounds. Called with the lock held. */
static struct family *family_get(struct pipe_metrics *m, const char *name, const char *help,
                                 enum family_type type, const double *bounds, size_t nbounds)
{
    struct family *f;
    for (f = m->head; f; f = f->next) {
        if (strcmp(f->name, name) != 0)
            continue;
        if (f->type != type)
            misuse("metric registered with two types:", name, type_name(f->type));
        if (type == FAM_HISTOGRAM &&
            (f->nbounds != nbounds || memcmp(f->bounds, bounds, nbounds * sizeof *bounds) != 0))
            misuse("histogram registered with two sets of bounds:", name, NULL);
        return f;
    }
    f = pipe_calloc(1, sizeof *f);
    f->name = pipe_strdup(name);
    f->help = pipe_strdup(help ? help : "");
    f->type = type;
    if (type == FAM_HISTOGRAM) {
        f->bounds = pipe_calloc(nbounds ? nbounds : 1, sizeof *bounds);
        if (nbounds)
            memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
        f->nbounds = nbounds;
    }
    f->tail = &f->head;
    *m->tail = f;
    m->tail = &f->next;
    return f;
}

/* What a registration asks for. */
struct spec {
    const char *name, *help, *labels;
    enum family_type type;
    const double *bounds; /* histograms */
    size_t nbounds;
    size_t size;              /* bytes of the handle to allocate */
    pipe_metrics_value_fn fn; /* scrape-time series */
    void *arg;
};

static void check_spec(const struct spec *sp)
{
    if (!valid_metric_name(sp->name))
        misuse("invalid metric name", sp->name, NULL);
    check_labels(sp->name, sp->labels, sp->type == FAM_HISTOGRAM);
    if (sp->nbounds > PIPE_METRICS_MAX_BOUNDS)
        misuse("histogram has too many bounds:", sp->name, NULL);
    for (size_t i = 0; i < sp->nbounds; i++)
        if (!isfinite(sp->bounds[i]) || (i > 0 && sp->bounds[i] <= sp->bounds[i - 1]))
            misuse("histogram bounds must be finite and increasing:", sp->name, NULL);
}

/* series_get — the series for sp, created if new; a new series is complete
 * (fn, bounds) before the lock is released, so no render sees it half made.
 * Aborts when sp->fn and the series already existed, or the existing one is
 * a function and sp is not. NULL if the family is full. */
static struct series *series_get(struct pipe_metrics *m, struct spec *sp)
{
    sp->labels = sp->labels ? sp->labels : "";
    check_spec(sp);
    pthread_mutex_lock(&m->lock);
    struct family *f = family_get(m, sp->name, sp->help, sp->type, sp->bounds, sp->nbounds);
    struct series *s;
    for (s = f->head; s; s = s->next)
        if (strcmp(s->labels, sp->labels) == 0)
            break;
    if (s && (sp->fn || s->fn))
        misuse("metric registered twice, once as a function:", sp->name, sp->labels);
    if (s == NULL && f->nseries >= PIPE_METRICS_MAX_SERIES) {
        if (!f->warned_full)
            pipe_log_warn("metric has too many label sets; new ones are dropped",
                          "metric=%s max=%d", sp->name, PIPE_METRICS_MAX_SERIES);
        f->warned_full = true;
    } else if (s == NULL) {
        s = pipe_calloc(1, sp->size);
        s->labels = pipe_strdup(sp->labels);
        s->fn = sp->fn;
        s->arg = sp->arg;
        if (sp->type == FAM_HISTOGRAM) {
            ((struct pipe_histogram *)s)->bounds = f->bounds;
            ((struct pipe_histogram *)s)->nbounds = f->nbounds;
        }
        *f->tail = s;
        f->tail = &s->next;
        f->nseries++;
    }
    pthread_mutex_unlock(&m->lock);
    return s;
}

/* The part of a series' spec every kind has. */
static struct spec spec_of(enum family_type type, size_t size, const char *name, const char *help,
                           const char *labels)
{
    return (struct spec){.name = name, .help = help, .labels = labels, .type = type, .size = size};
}

/* plain — a counter or gauge series: a handle of size bytes, or one whose
 * value fn(arg) computes at scrape time (fn NULL for none). */
static struct series *plain(struct pipe_metrics *m, enum family_type type, size_t size,
                            const char *name, const char *help, const char *labels,
                            pipe_metrics_value_fn fn, void *arg)
{
    struct spec sp = spec_of(type, size, name, help, labels);
    sp.fn = fn;
    sp.arg = arg;
    return series_get(m, &sp);
}

struct pipe_counter *pipe_metrics_counter(struct pipe_metrics *m, const char *name,
                                          const char *help, const char *labels)
{
    return (struct pipe_counter *)plain(m, FAM_COUNTER, sizeof(struct pipe_counter), name, help,
                                        labels, NULL, NULL);
}

struct pipe_gauge *pipe_metrics_gauge(struct pipe_metrics *m, const char *name, const char *help,
                                      const char *labels)
{
    return (struct pipe_gauge *)plain(m, FAM_GAUGE, sizeof(struct pipe_gauge), name, help, labels,
                                      NULL, NULL);
}

struct pipe_histogram *pipe_metrics_histogram(struct pipe_metrics *m, const char *name,
                                              const char *help, const char *labels,
                                              const double *bounds, size_t nbounds)
{
    struct spec sp = spec_of(
        FAM_HISTOGRAM, sizeof(struct pipe_histogram) + (nbounds + 1) * sizeof(_Atomic uint64_t),
        name, help, labels);
    sp.bounds = bounds;
    sp.nbounds = nbounds;
    return (struct pipe_histogram *)series_get(m, &sp);
}

void pipe_metrics_gauge_fn(struct pipe_metrics *m, const char *name, const char *help,
                           const char *labels, pipe_metrics_value_fn fn, void *arg)
{
    plain(m, FAM_GAUGE, sizeof(struct series), name, help, labels, fn, arg);
}

void pipe_metrics_counter_fn(struct pipe_metrics *m, const char *name, const char *help,
                             const char *labels, pipe_metrics_value_fn fn, void *arg)
{
    plain(m, FAM_COUNTER, sizeof(struct series), name, help, labels, fn, arg);
}

void pipe_metrics_register_table(struct pipe_metrics *m, const struct pipe_metric_def *defs,
                                 void *base, void *fn_arg)
{
    for (const struct pipe_metric_def *d = defs; d->name; d++) {
        void *h = NULL;
        switch (d->kind) {
        case PIPE_METRIC_COUNTER:
            h = pipe_metrics_counter(m, d->name, d->help, d->labels);
            break;
        case PIPE_METRIC_GAUGE:
            h = pipe_metrics_gauge(m, d->name, d->help, d->labels);
            break;
        case PIPE_METRIC_SECONDS:
            h = pipe_metrics_histogram(m, d->name, d->help, d->labels, pipe_metrics_seconds_bounds,
                                       pipe_metrics_seconds_nbounds);
            break;
        case PIPE_METRIC_GAUGE_FN:
            pipe_metrics_gauge_fn(m, d->name, d->help, d->labels, d->fn, fn_arg);
            continue;
        }
        memcpy((char *)base + d->offset, &h, sizeof h);
    }
}

/* ---- updates ------------------------------------------------------------------------ */

void pipe_counter_add(struct pipe_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void pipe_counter_inc(struct pipe_counter *c)
{
    pipe_counter_add(c, 1);
}

uint64_t pipe_counter_value(const struct pipe_counter *c)
{
    return c ? atomic_load_explicit(&c->value, memory_order_relaxed) : 0;
}

void pipe_gauge_set(struct pipe_gauge *g, double v)
{
    if (g)
        atomic_store_explicit(&g->bits, to_bits(v), memory_order_relaxed);
}

void pipe_gauge_add(struct pipe_gauge *g, double d)
{
    if (g)
        atomic_add_double(&g->bits, d);
}

double pipe_gauge_value(const struct pipe_gauge *g)
{
    return g ? from_bits(atomic_load_explicit(&g->bits, memory_order_relaxed)) : 0.0;
}

void pipe_histogram_observe(struct pipe_histogram *h, double v)
{
    if (h == NULL || isnan(v))
        return;
    /* first bound >= v: buckets are "le", less than or equal */
    size_t lo = 0, hi = h->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->bounds[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    atomic_fetch_add_explicit(&h->counts[lo], 1, memory_order_relaxed);
    atomic_add_double(&h->sum_bits, v);
}

/* snapshot — per-bucket counts into out[nbounds + 1]; returns the total. */
static uint64_t snapshot(const struct pipe_histogram *h, uint64_t *out)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= h->nbounds; i++) {
        out[i] = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        total += out[i];
    }
    return total;
}

uint64_t pipe_histogram_count(const struct pipe_histogram *h)
{
    uint64_t counts[PIPE_METRICS_MAX_BOUNDS + 1];
    return h ? snapshot(h, counts) : 0;
}

double pipe_histogram_quantile(const struct pipe_histogram *h, double q)
{
    uint64_t counts[PIPE_METRICS_MAX_BOUNDS + 1];
    if (h == NULL || !(q >= 0.0 && q <= 1.0))
        return NAN;
    uint64_t total = snapshot(h, counts);
    if (total == 0)
        return NAN;
    double rank = q * (double)total;
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->nbounds; i++) {
        if (counts[i] == 0 || (double)(cum + counts[i]) < rank) {
            cum += counts[i];
            continue;
        }
        if (i == h->nbounds) /* +Inf bucket: the best we can say */
            return h->nbounds ? h->bounds[h->nbounds - 1] : NAN;
        double upper = h->bounds[i];
        double lower = i > 0 ? h->bounds[i - 1] : (upper > 0 ? 0.0 : upper);
        return lower + (upper - lower) * (rank - (double)cum) / (double)counts[i];
    }
    return h->nbounds ? h->bounds[h->nbounds - 1] : NAN; /* not reached */
}

/* ---- rendering ------------------------------------------------------------------------ */

/* fmt_double — Prometheus's spelling of specials, else the shortest of
 * %.15g / %.17g that reads back as the same double. */
static const char *fmt_double(double v, char *buf, size_t len)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    snprintf(buf, len, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, len, "%.17g", v);
    return buf;
}

static int render_help(struct pipe_buf *out, const struct family *f)
{
    int rc = pipe_buf_printf(out, "# HELP %s ", f->name);
    for (const char *c = f->help; rc == 0 && *c; c++) {
        if (*c == '\\')
            rc = pipe_buf_append_str(out, "\\\\");
        else if (*c == '\n')
            rc = pipe_buf_append_str(out, "\\n");
        else
            rc = pipe_buf_append_char(out, *c);
    }
    if (rc == 0)
        rc = pipe_buf_printf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
    return rc;
}

/* render_sample — `name{labels} value`, braces only when there are labels. */
static int render_sample(struct pipe_buf *out, const char *name, const char *suffix,
                         const char *labels, const char *extra, const char *value)
{
    bool any = *labels || *extra;
    return pipe_buf_printf(out, "%s%s%s%s%s%s%s %s\n", name, suffix, any ? "{" : "", labels,
                           *labels && *extra ? "," : "", extra, any ? "}" : "", value);
}

static int render_histogram(struct pipe_buf *out, const struct family *f,
                            const struct pipe_histogram *h)
{
    uint64_t counts[PIPE_METRICS_MAX_BOUNDS + 1];
    char le[48], num[32], val[32];
    uint64_t total = snapshot(h, counts), cum = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i <= h->nbounds; i++) {
        cum += counts[i];
        snprintf(le, sizeof le, "le=\"%s\"",
                 i < h->nbounds ? fmt_double(h->bounds[i], num, sizeof num) : "+Inf");
        snprintf(val, sizeof val, "%llu", (unsigned long long)cum);
        rc = render_sample(out, f->name, "_bucket", h->s.labels, le, val);
    }
    double sum = from_bits(atomic_load_explicit(&h->sum_bits, memory_order_relaxed));
    if (rc == 0)
        rc = render_sample(out, f->name, "_sum", h->s.labels, "", fmt_double(sum, num, sizeof num));
    snprintf(val, sizeof val, "%llu", (unsigned long long)total);
    if (rc == 0)
        rc = render_sample(out, f->name, "_count", h->s.labels, "", val);
    return rc;
}

static int render_series(struct pipe_buf *out, const struct family *f, const struct series *s)
{
    char num[32];
    const char *val;
    if (f->type == FAM_HISTOGRAM)
        return render_histogram(out, f, (const struct pipe_histogram *)s);
    if (s->fn)
        val = fmt_double(s->fn(s->arg), num, sizeof num);
    else if (f->type == FAM_COUNTER) {
        snprintf(num, sizeof num, "%llu",
                 (unsigned long long)pipe_counter_value((const struct pipe_counter *)s));
        val = num;
    } else
        val = fmt_double(pipe_gauge_value((const struct pipe_gauge *)s), num, sizeof num);
    return render_sample(out, f->name, "", s->labels, "", val);
}

int pipe_metrics_render(struct pipe_metrics *m, struct pipe_buf *out)
{
    int rc = PIPE_OK;
    pthread_mutex_lock(&m->lock);
    for (const struct family *f = m->head; rc == 0 && f; f = f->next) {
        if (f->head == NULL)
            continue;
        rc = render_help(out, f);
        for (const struct series *s = f->head; rc == 0 && s; s = s->next)
            rc = render_series(out, f, s);
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* utf8_len — length of the valid UTF-8 sequence at s, or 0 if invalid
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

int pipe_metrics_label_append(struct pipe_buf *b, const char *name, const char *value)
{
    size_t mark = b->len;
    if (!is_alpha_(*name) || (name[0] == '_' && name[1] == '_'))
        return PIPE_EINVAL;
    for (const char *c = name; *c; c++)
        if (!is_alpha_(*c) && !is_digit(*c))
            return PIPE_EINVAL;
    int rc = pipe_buf_printf(b, "%s%s=\"", b->len ? "," : "", name);
    const unsigned char *v = (const unsigned char *)value;
    while (rc == 0 && *v) {
        size_t n = utf8_len(v);
        if (*v == '\\' || *v == '"')
            rc = pipe_buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            rc = pipe_buf_append_str(b, "\\n");
        else if (n == 0)
            rc = pipe_buf_append_char(b, '?');
        else
            rc = pipe_buf_append(b, v, n);
        v += n ? n : 1;
    }
    if (rc == 0)
        rc = pipe_buf_append_char(b, '"');
    if (rc < 0 && b->data) {
        b->len = mark;
        b->data[mark] = '\0';
    }
    return rc;
}
