/* test_url — the one URL parser: every form sluice's configuration uses
 * (file://./rel, file:///abs, s3://bucket/prefix?endpoint=..,
 * redis://user:pw@host:port/db, unix:///path, local:///dir,
 * postgres://user@host:port/db) split into its parts, and malformed URLs
 * refused with the part that is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "libpipe/err.h"
#include "libpipe/url.h"

struct want {
    const char *text, *scheme, *user, *password, *host;
    int port;
    const char *path, *query;
    bool ipv6, relative;
};

static void check(const struct want *w)
{
    struct pipe_url u;
    enum pipe_url_part bad;
    const char *why = NULL;
    int rc = pipe_url_parse(w->text, &u, &bad, &why);
    if (rc != 0)
        fail_msg("%s: %s", w->text, why);
    assert_string_equal(u.scheme, w->scheme);
#define OPT_STR(field)                                                                             \
    do {                                                                                           \
        if (w->field == NULL)                                                                      \
            assert_null(u.field);                                                                  \
        else if (u.field == NULL || strcmp(u.field, w->field) != 0)                                \
            fail_msg("%s: " #field " \"%s\", want \"%s\"", w->text, u.field ? u.field : "(null)",  \
                     w->field);                                                                    \
    } while (0)
    OPT_STR(user);
    OPT_STR(password);
    OPT_STR(query);
#undef OPT_STR
    assert_string_equal(u.host, w->host);
    assert_int_equal(u.port, w->port);
    assert_string_equal(u.path, w->path);
    assert_int_equal(u.ipv6, w->ipv6);
    assert_int_equal(u.relative, w->relative);
    assert_null(u.fragment);
    pipe_url_cleanup(&u);
    assert_null(u.scheme);
}

static void test_url_splits_every_form_sluice_configures(void **state)
{
    (void)state;
    static const struct want good[] = {
        {"file://./rel/data", "file", NULL, NULL, "", -1, "./rel/data", NULL, false, true},
        {"file://.", "file", NULL, NULL, "", -1, ".", NULL, false, true},
        {"file://../up?tmp_max_age=9", "file", NULL, NULL, "", -1, "../up", "tmp_max_age=9", false,
         true},
        {"file://", "file", NULL, NULL, "", -1, "", NULL, false, false},
        {"s3://bucket/", "s3", NULL, NULL, "bucket", -1, "/", NULL, false, false},
        {"file:///abs/dir", "file", NULL, NULL, "", -1, "/abs/dir", NULL, false, false},
        {"file://localhost/abs", "file", NULL, NULL, "", -1, "/abs", NULL, false, false},
        {"file:///my dir/x%41", "file", NULL, NULL, "", -1, "/my dir/x%41", NULL, false, false},
        {"s3://bucket", "s3", NULL, NULL, "bucket", -1, "", NULL, false, false},
        {"s3://my.bucket-1/some/prefix/?endpoint=minio.local:9000&region=eu-west-1", "s3", NULL,
         NULL, "my.bucket-1", -1, "/some/prefix/", "endpoint=minio.local:9000&region=eu-west-1",
         false, false},
        {"s3://b?endpoint=[::1]:9000", "s3", NULL, NULL, "b", -1, "", "endpoint=[::1]:9000", false,
         false},
        {"redis://127.0.0.1:6379/3?timeout=500&prefix=p:", "redis", NULL, NULL, "127.0.0.1", 6379,
         "/3", "timeout=500&prefix=p:", false, false},
        {"redis://:s3cr%40t@host", "redis", "", "s3cr@t", "host", -1, "", NULL, false, false},
        {"redis://al%69ce:pw@[::1]:7000/0", "redis", "alice", "pw", "::1", 7000, "/0", NULL, true,
         false},
        {"unix:///run/redis.sock?db=2", "unix", NULL, NULL, "", -1, "/run/redis.sock", "db=2",
         false, false},
        {"unix://:pw@/run/redis.sock", "unix", "", "pw", "", -1, "/run/redis.sock", NULL, false,
         false},
        {"local:///var/lib/sluice/leases", "local", NULL, NULL, "", -1, "/var/lib/sluice/leases",
         NULL, false, false},
        {"postgres://loader@db.internal:5432/warehouse", "postgres", "loader", NULL, "db.internal",
         5432, "/warehouse", NULL, false, false},
        {"redis://[fe80::1%25eth0]:1/", "redis", NULL, NULL, "fe80::1%eth0", 1, "/", NULL, true,
         false},
        {"REDIS://Host", "redis", NULL, NULL, "Host", -1, "", NULL, false, false},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        check(&good[i]);
}

static void test_url_refuses_malformed_urls_naming_the_part(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum pipe_url_part part;
    } bad[] = {
        {"", PIPE_URL_WHOLE},
        {"local", PIPE_URL_WHOLE},
        {"s3:bucket", PIPE_URL_WHOLE},
        {"://host", PIPE_URL_WHOLE},
        {"1x://host", PIPE_URL_WHOLE},
        {"redis://host:99999", PIPE_URL_PORT},
        {"redis://host:http", PIPE_URL_PORT},
        {"redis://host:", PIPE_URL_PORT},
        {"redis://[::1]:/0", PIPE_URL_PORT},
        {"s3://Not_A_Bucket!", PIPE_URL_HOST},
        {"redis://ho st", PIPE_URL_HOST},
        {"redis://a%zz:pw@host", PIPE_URL_USER},
        {"redis://:p%4@host", PIPE_URL_PASSWORD},
        {"redis://:p%00@host", PIPE_URL_PASSWORD},
        {"redis://[::1/", PIPE_URL_HOST},
        {"r://[::f%[::f%f]/", PIPE_URL_HOST}, /* found by fuzz_url */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct pipe_url u;
        enum pipe_url_part part = (enum pipe_url_part)99;
        const char *why = NULL;
        int rc = pipe_url_parse(bad[i].text, &u, &part, &why);
        if (rc != PIPE_EPARSE || part != bad[i].part || why == NULL || *why == '\0')
            fail_msg("\"%s\": rc %d part %d (want %d), why %s", bad[i].text, rc, (int)part,
                     (int)bad[i].part, why ? why : "(null)");
    }
}

static void test_url_query_items_in_order_skipping_empty_ones(void **state)
{
    (void)state;
    const char *q = "&endpoint=h:1&&flag&empty=&tls=0&";
    static const char *const names[] = {"endpoint", "flag", "empty", "tls"};
    static const char *const values[] = {"h:1", NULL, "", "0"};
    struct pipe_url_param p;
    size_t n = 0;
    while (pipe_url_query_next(&q, &p)) {
        assert_true(n < 4);
        assert_true(pipe_url_param_is(&p, names[n]));
        assert_false(pipe_url_param_is(&p, "tl"));
        if (values[n] == NULL) {
            assert_null(p.value);
        } else {
            assert_int_equal(p.value_len, strlen(values[n]));
            assert_memory_equal(p.value, values[n], p.value_len);
        }
        n++;
    }
    assert_int_equal(n, 4);
    assert_false(pipe_url_query_next(&q, &p));
}

static void test_url_form_decode_reads_plus_and_escapes_keeps_malformed_ones(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
        size_t out_len;
    } cases[] = {
        {"a+b%20c", "a b c", 5},
        {"%2B%2b+", "++ ", 3},           /* an escaped '+' stays a '+' */
        {"caf%C3%A9", "caf\xc3\xa9", 5}, /* bytes, not characters */
        {"%41%4a%4F", "AJO", 3},         /* either case of hex digit */
        {"%zz%4%", "%zz%4%", 6},         /* malformed escapes stay as written */
        {"a%00b", "a\0b", 3},            /* a NUL is decoded; the caller judges it */
        {"100%", "100%", 4},
        {"", "", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32];
        size_t n = pipe_url_form_decode(cases[i].in, strlen(cases[i].in), out);
        if (n != cases[i].out_len || memcmp(out, cases[i].out, n) != 0)
            fail_msg("\"%s\": %zu bytes \"%.*s\"", cases[i].in, n, (int)n, out);
    }
    /* only n bytes are read: an escape cut short by n is not decoded */
    char out[8];
    assert_int_equal(pipe_url_form_decode("%41", 2, out), 2);
    assert_memory_equal(out, "%4", 2);
}

static void test_url_scheme_is_compares_what_precedes_the_first_colon(void **state)
{
    (void)state;
    assert_true(pipe_url_scheme_is("redis://h:1", "redis"));
    assert_true(pipe_url_scheme_is("fault:file:///x", "fault"));
    assert_true(pipe_url_scheme_is("local", "local")); /* a URL that is a scheme alone */
    assert_false(pipe_url_scheme_is("localhost:1", "local"));
    assert_false(pipe_url_scheme_is("rediss://h", "redis"));
    assert_false(pipe_url_scheme_is("redi://h", "redis"));
    assert_false(pipe_url_scheme_is("", "s3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_splits_every_form_sluice_configures),
        cmocka_unit_test(test_url_refuses_malformed_urls_naming_the_part),
        cmocka_unit_test(test_url_query_items_in_order_skipping_empty_ones),
        cmocka_unit_test(test_url_form_decode_reads_plus_and_escapes_keeps_malformed_ones),
        cmocka_unit_test(test_url_scheme_is_compares_what_precedes_the_first_colon),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
