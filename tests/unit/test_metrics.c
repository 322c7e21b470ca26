/* Unit tests for metrics: exact exposition output, concurrency of updates,
 * histogram buckets and quantiles, scrape-time values, label escaping and
 * the programming errors that abort. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libpipe/buf.h"
#include "libpipe/err.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/metrics.h"

static double value_of(void *arg)
{
    return *(double *)arg;
}

static double count_calls(void *arg)
{
    return (double)++*(int *)arg;
}

static char *render(struct pipe_metrics *m)
{
    struct pipe_buf b;
    pipe_buf_init(&b, 1 << 20);
    assert_int_equal(pipe_metrics_render(m, &b), 0);
    return pipe_buf_steal(&b, NULL);
}

static void test_metrics_render_matches_exposition_format(void **state)
{
    (void)state;
    struct pipe_metrics *m = pipe_metrics_new();
    static const double bounds[] = {0.1, 0.5, 1};
    double age = 12.25, requests = 7;
    struct pipe_counter *in_f =
        pipe_metrics_counter(m, "sluice_events_in_total", "Events received.", "stage=\"filter\"");
    struct pipe_counter *in_c =
        pipe_metrics_counter(m, "sluice_events_in_total", "ignored", "stage=\"combiner\"");
    struct pipe_gauge *g = pipe_metrics_gauge(m, "sluice_inflight", "In flight.", NULL);
    struct pipe_histogram *h =
        pipe_metrics_histogram(m, "sluice_put_seconds", "Put latency.", "op=\"put\"", bounds, 3);
    pipe_metrics_gauge_fn(m, "sluice_oldest_age_seconds", "Age of the oldest input.", NULL,
                          value_of, &age);
    pipe_metrics_counter_fn(m, "sluice_store_requests_total", "Store requests.", "op=\"get\"",
                            value_of, &requests);
    pipe_counter_add(in_f, 2);
    pipe_counter_inc(in_f);
    pipe_counter_add(in_c, 1);
    pipe_gauge_set(g, 2.5);
    pipe_gauge_add(g, -1);
    pipe_histogram_observe(h, 0.25);
    pipe_histogram_observe(h, 0.5); /* le: a value on a bound counts in that bucket */
    pipe_histogram_observe(h, 0.75);
    pipe_histogram_observe(h, 3);

    char *text = render(m);
    assert_string_equal(text, "# HELP sluice_events_in_total Events received.\n"
                              "# TYPE sluice_events_in_total counter\n"
                              "sluice_events_in_total{stage=\"filter\"} 3\n"
                              "sluice_events_in_total{stage=\"combiner\"} 1\n"
                              "# HELP sluice_inflight In flight.\n"
                              "# TYPE sluice_inflight gauge\n"
                              "sluice_inflight 1.5\n"
                              "# HELP sluice_put_seconds Put latency.\n"
                              "# TYPE sluice_put_seconds histogram\n"
                              "sluice_put_seconds_bucket{op=\"put\",le=\"0.1\"} 0\n"
                              "sluice_put_seconds_bucket{op=\"put\",le=\"0.5\"} 2\n"
                              "sluice_put_seconds_bucket{op=\"put\",le=\"1\"} 3\n"
                              "sluice_put_seconds_bucket{op=\"put\",le=\"+Inf\"} 4\n"
                              "sluice_put_seconds_sum{op=\"put\"} 4.5\n"
                              "sluice_put_seconds_count{op=\"put\"} 4\n"
                              "# HELP sluice_oldest_age_seconds Age of the oldest input.\n"
                              "# TYPE sluice_oldest_age_seconds gauge\n"
                              "sluice_oldest_age_seconds 12.25\n"
                              "# HELP sluice_store_requests_total Store requests.\n"
                              "# TYPE sluice_store_requests_total counter\n"
                              "sluice_store_requests_total{op=\"get\"} 7\n");
    pipe_free(text);
    pipe_metrics_free(m);
}

static void test_metrics_same_name_and_labels_return_the_same_handle(void **state)
{
    (void)state;
    struct pipe_metrics *m = pipe_metrics_new();
    struct pipe_counter *a = pipe_metrics_counter(m, "x_total", "X.", "k=\"1\"");
    struct pipe_counter *b = pipe_metrics_counter(m, "x_total", "X.", "k=\"1\"");
    struct pipe_counter *c = pipe_metrics_counter(m, "x_total", "X.", "k=\"2\"");
    struct pipe_counter *d = pipe_metrics_counter(m, "x_total", "X.", NULL);
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_ptr_not_equal(a, d);
    pipe_counter_add(b, 5);
    assert_int_equal(pipe_counter_value(a), 5);
    assert_int_equal(pipe_counter_value(c), 0);
    pipe_metrics_free(m);
    pipe_metrics_free(NULL);
}

static void test_metrics_values_are_formatted_so_prometheus_parses_them(void **state)
{
    (void)state;
    struct pipe_metrics *m = pipe_metrics_new();
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.1, "0.1"}, {-2, "-2"},         {1e21, "1e+21"},     {1.0 / 3, "0.33333333333333331"},
        {NAN, "NaN"}, {INFINITY, "+Inf"}, {-INFINITY, "-Inf"}, {0, "0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "i=\"%zu\"", i);
        pipe_gauge_set(pipe_metrics_gauge(m, "v", "Values.", labels), cases[i].v);
    }
    char *text = render(m);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line[96];
        snprintf(line, sizeof line, "v{i=\"%zu\"} %s\n", i, cases[i].text);
        assert_non_null(strstr(text, line));
    }
    pipe_free(text);
    pipe_metrics_free(m);
}

#define THREADS    4
#define PER_THREAD 100000

struct hot {
    struct pipe_counter *c;
    struct pipe_gauge *g;
    struct pipe_histogram *h;
};

static void *hammer(void *arg)
{
    struct hot *hp = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        pipe_counter_inc(hp->c);
        pipe_gauge_add(hp->g, 1.0);
        pipe_histogram_observe(hp->h, (double)(i % 4));
    }
    return NULL;
}

static void test_metrics_concurrent_updates_sum_exactly(void **state)
{
    (void)state;
    struct pipe_metrics *m = pipe_metrics_new();
    static const double bounds[] = {0, 1, 2};
    struct hot hp = {
        .c = pipe_metrics_counter(m, "n_total", "N.", NULL),
        .g = pipe_metrics_gauge(m, "g", "G.", NULL),
        .h = pipe_metrics_histogram(m, "h", "H.", NULL, bounds, 3),
    };
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &hp), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(pipe_counter_value(hp.c), THREADS * PER_THREAD);
    assert_true(pipe_gauge_value(hp.g) == (double)(THREADS * PER_THREAD));
    assert_int_equal(pipe_histogram_count(hp.h), THREADS * PER_THREAD);
    char *text = render(m);
    char want[128];
    snprintf(want, sizeof want, "h_bucket{le=\"1\"} %d\n", THREADS * PER_THREAD / 2);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof want, "h_sum %d\n", THREADS * PER_THREAD / 4 * 6);
    assert_non_null(strstr(text, want));
    pipe_free(text);
    pipe_metrics_free(m);
}

static void test_metrics_histogram_buckets_are_cumulative_and_quantiles_interpolate(void **state)
{
    (void)state;
    struct pipe_metrics *m = pipe_metrics_new();
    static const double bounds[] = {1, 2, 4, 8};
    struct pipe_histogram *h = pipe_metrics_histogram(m, "lat", "L.", NULL, bounds, 4);
    assert_true(isnan(pipe_histogram_quantile(h, 0.5)));
    for (int i = 0; i < 50; i++)
        pipe_histogram_observe(h, 0.5);
    for (int i = 0; i < 50; i++)
        pipe_histogram_observe(h, 1.5);
    pipe_histogram_observe(h, NAN); /* ignored */
    assert_int_equal(pipe_histogram_count(h), 100);
    assert_true(fabs(pipe_histogram_quantile(h, 0.5) - 1.0) < 1e-9);
    assert_true(fabs(pipe_histogram_quantile(h, 0.25) - 0.5) < 1e-9);
    assert_true(fabs(pipe_histogram_quantile(h, 0.75) - 1.5) < 1e-9);
    assert_true(fabs(pipe_histogram_quantile(h, 1.0) - 2.0) < 1e-9);
    assert_true(isnan(pipe_histogram_quantile(h, 1.5)));
    assert_true(isnan(pipe_histogram_quantile(h, -0.1)));
    pipe_histogram_observe(h, 100);
    assert_true(pipe_histogram_quantile(h, 1.0) == 8.0); /* +Inf bucket: highest bound */

    char *text = render(m);
    assert_non_null(strstr(text, "lat_bucket{le=\"1\"} 50\n"
                                 "lat_bucket{le=\"2\"} 100\n"
                                 "lat_bucket{le=\"4\"} 100\n"
                                 "lat_bucket{le=\"8\"} 100\n"
                                 "lat_bucket{le=\"+Inf\"} 101\n"
                                 "lat_sum 200\n"
                                 "lat_count 101\n"));
    pipe_free(text);
    pipe_metrics_free(m);
}

static void test_metrics_gauge_fn_is_called_at_every_render(void **state)
{
    (void)state;
    struct pipe_metrics *m = pipe_metrics_new();
    int calls = 0;
    pipe_metrics_gauge_fn(m, "calls", "Renders.", NULL, count_calls, &calls);
    assert_int_equal(calls, 0);
    char *a = render(m), *b = render(m);
    assert_int_equal(calls, 2);
    assert_non_null(strstr(a, "\ncalls 1\n"));
    assert_non_null(strstr(b, "\ncalls 2\n"));
    pipe_free(a);
    pipe_free(b);
    pipe_metrics_free(m);
}

struct table_handles {
    struct pipe_counter *jobs, *dups;
    struct pipe_gauge *pending;
    struct pipe_histogram *took;
};

static void test_metrics_table_registers_every_row_and_stores_its_handle(void **state)
{
    (void)state;
#define ROW(kind, field, name, help) PIPE_METRIC(kind, struct table_handles, field, name, help)
    static const struct pipe_metric_def defs[] = {
        ROW(COUNTER, jobs, "t_jobs_total", "Jobs."),
        PIPE_METRIC_LABELED(COUNTER, struct table_handles, dups, "t_dups_total", "scope=\"batch\"",
                            "Duplicates."),
        ROW(GAUGE, pending, "t_pending", "Pending."),
        ROW(SECONDS, took, "t_seconds", "Time."),
        PIPE_METRIC_FN("t_calls", count_calls, "Renders."),
        {0},
    };
#undef ROW
    struct pipe_metrics *m = pipe_metrics_new();
    struct table_handles h = {0};
    int calls = 0;
    pipe_metrics_register_table(m, defs, &h, &calls);
    /* each handle is the one a direct registration returns */
    assert_ptr_equal(h.jobs, pipe_metrics_counter(m, "t_jobs_total", "Jobs.", NULL));
    assert_ptr_equal(h.dups, pipe_metrics_counter(m, "t_dups_total", "", "scope=\"batch\""));
    assert_ptr_equal(h.pending, pipe_metrics_gauge(m, "t_pending", "Pending.", NULL));
    assert_ptr_equal(h.took, pipe_metrics_histogram(m, "t_seconds", "Time.", NULL,
                                                    pipe_metrics_seconds_bounds,
                                                    pipe_metrics_seconds_nbounds));
    pipe_counter_add(h.jobs, 3);
    pipe_gauge_set(h.pending, 2);
    pipe_histogram_observe(h.took, 0.25);
    char *text = render(m);
    assert_non_null(strstr(text, "# HELP t_jobs_total Jobs.\n# TYPE t_jobs_total counter\n"));
    assert_non_null(strstr(text, "\nt_jobs_total 3\n"));
    assert_non_null(strstr(text, "\nt_dups_total{scope=\"batch\"} 0\n"));
    assert_non_null(strstr(text, "\nt_pending 2\n"));
    assert_non_null(strstr(text, "\nt_seconds_count 1\n"));
    assert_non_null(strstr(text, "# TYPE t_calls gauge\nt_calls 1\n"));
    assert_int_equal(calls, 1);
    pipe_free(text);
    pipe_metrics_free(m);
}

static void test_metrics_label_append_escapes_values(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 256);
    assert_int_equal(pipe_metrics_label_append(&b, "event", "a\"b\\c\nd\xff\xc3\xa9"), 0);
    assert_int_equal(pipe_metrics_label_append(&b, "stage", "split"), 0);
    assert_string_equal(b.data, "event=\"a\\\"b\\\\c\\nd?\xc3\xa9\",stage=\"split\"");
    size_t len = b.len;
    assert_int_equal(pipe_metrics_label_append(&b, "__x", "v"), PIPE_EINVAL);
    assert_int_equal(pipe_metrics_label_append(&b, "a-b", "v"), PIPE_EINVAL);
    assert_int_equal(b.len, len);

    struct pipe_metrics *m = pipe_metrics_new();
    pipe_counter_inc(pipe_metrics_counter(m, "ev_total", "Help with \\ and\nnewline.", b.data));
    char *text = render(m);
    assert_string_equal(text, "# HELP ev_total Help with \\\\ and\\nnewline.\n"
                              "# TYPE ev_total counter\n"
                              "ev_total{event=\"a\\\"b\\\\c\\nd?\xc3\xa9\",stage=\"split\"} 1\n");
    pipe_free(text);
    pipe_metrics_free(m);

    struct pipe_buf small;
    pipe_buf_init(&small, 8);
    assert_int_equal(pipe_metrics_label_append(&small, "event", "long value"), PIPE_ETOOBIG);
    assert_int_equal(small.len, 0);
    pipe_buf_cleanup(&small);
    pipe_buf_cleanup(&b);
}

static void test_metrics_family_full_returns_null_and_updates_ignore_it(void **state)
{
    (void)state;
    int devnull = open("/dev/null", O_WRONLY);
    pipe_log_set_fd(devnull);
    struct pipe_metrics *m = pipe_metrics_new();
    char labels[32];
    for (int i = 0; i < PIPE_METRICS_MAX_SERIES; i++) {
        snprintf(labels, sizeof labels, "i=\"%d\"", i);
        assert_non_null(pipe_metrics_counter(m, "many_total", "Many.", labels));
    }
    struct pipe_counter *extra = pipe_metrics_counter(m, "many_total", "Many.", "i=\"x\"");
    assert_null(extra);
    pipe_counter_inc(extra);
    assert_int_equal(pipe_counter_value(extra), 0);
    assert_non_null(pipe_metrics_counter(m, "many_total", "Many.", "i=\"7\"")); /* existing */
    pipe_metrics_free(m);
    pipe_log_set_fd(2);
    close(devnull);
}

static void test_metrics_render_past_buffer_cap_fails(void **state)
{
    (void)state;
    struct pipe_metrics *m = pipe_metrics_new();
    pipe_counter_inc(pipe_metrics_counter(m, "a_total", "A counter with a long help.", NULL));
    struct pipe_buf b;
    pipe_buf_init(&b, 16);
    assert_int_equal(pipe_metrics_render(m, &b), PIPE_ETOOBIG);
    pipe_buf_cleanup(&b);
    pipe_metrics_free(m);
}

/* ---- programming errors abort ---- */

enum misuse_case {
    BAD_NAME,
    BAD_LABELS,
    UNTERMINATED,
    RESERVED_LABEL,
    LE_LABEL,
    TYPE_CLASH,
    BOUNDS_CLASH,
    BAD_BOUNDS,
    FN_TWICE,
    FN_THEN_HANDLE,
    TRAILING_COMMA,
    NCASES
};

static void misuse(struct pipe_metrics *m, enum misuse_case c)
{
    static const double b1[] = {1, 2}, b2[] = {1, 3}, bad[] = {2, 1};
    switch (c) {
    case BAD_NAME:
        pipe_metrics_counter(m, "1bad", "", NULL);
        break;
    case BAD_LABELS:
        pipe_metrics_counter(m, "ok", "", "a=b");
        break;
    case UNTERMINATED:
        pipe_metrics_counter(m, "ok", "", "a=\"b");
        break;
    case RESERVED_LABEL:
        pipe_metrics_counter(m, "ok", "", "__name__=\"x\"");
        break;
    case LE_LABEL:
        pipe_metrics_histogram(m, "h", "", "le=\"1\"", b1, 2);
        break;
    case TYPE_CLASH:
        pipe_metrics_counter(m, "x", "", NULL);
        pipe_metrics_gauge(m, "x", "", "a=\"1\"");
        break;
    case BOUNDS_CLASH:
        pipe_metrics_histogram(m, "h", "", NULL, b1, 2);
        pipe_metrics_histogram(m, "h", "", "a=\"1\"", b2, 2);
        break;
    case BAD_BOUNDS:
        pipe_metrics_histogram(m, "h", "", NULL, bad, 2);
        break;
    case FN_TWICE:
        pipe_metrics_gauge_fn(m, "f", "", NULL, value_of, NULL);
        pipe_metrics_gauge_fn(m, "f", "", NULL, value_of, NULL);
        break;
    case FN_THEN_HANDLE:
        pipe_metrics_counter_fn(m, "f_total", "", "a=\"1\"", value_of, NULL);
        pipe_metrics_counter(m, "f_total", "", "a=\"1\"");
        break;
    case TRAILING_COMMA:
        pipe_metrics_counter(m, "ok", "", "a=\"1\",");
        break;
    case NCASES:
        break;
    }
}

static void test_metrics_programming_errors_abort(void **state)
{
    (void)state;
    for (int c = 0; c < NCASES; c++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, 2);
            misuse(pipe_metrics_new(), (enum misuse_case)c);
            _exit(0); /* reached only if nothing aborted */
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
            fail_msg("misuse case %d did not abort", c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_render_matches_exposition_format),
        cmocka_unit_test(test_metrics_same_name_and_labels_return_the_same_handle),
        cmocka_unit_test(test_metrics_values_are_formatted_so_prometheus_parses_them),
        cmocka_unit_test(test_metrics_concurrent_updates_sum_exactly),
        cmocka_unit_test(test_metrics_histogram_buckets_are_cumulative_and_quantiles_interpolate),
        cmocka_unit_test(test_metrics_gauge_fn_is_called_at_every_render),
        cmocka_unit_test(test_metrics_table_registers_every_row_and_stores_its_handle),
        cmocka_unit_test(test_metrics_label_append_escapes_values),
        cmocka_unit_test(test_metrics_family_full_returns_null_and_updates_ignore_it),
        cmocka_unit_test(test_metrics_render_past_buffer_cap_fails),
        cmocka_unit_test(test_metrics_programming_errors_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
