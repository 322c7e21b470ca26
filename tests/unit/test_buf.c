/* Unit tests for buf, err and mem. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"

static void test_buf_append_grows_and_keeps_nul(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 1 << 20);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(pipe_buf_append_str(&b, "abc"), 0);
    assert_int_equal(b.len, 3000);
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data + 2997, "abc", 3);
    pipe_buf_cleanup(&b);
}

static void test_buf_append_past_cap_fails_and_leaves_buffer_unchanged(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 10);
    assert_int_equal(pipe_buf_append(&b, "12345678", 8), 0);
    assert_int_equal(pipe_buf_append(&b, "abc", 3), PIPE_ETOOBIG);
    assert_int_equal(b.len, 8);
    assert_string_equal(b.data, "12345678");
    assert_int_equal(pipe_buf_append(&b, "ab", 2), 0);
    assert_int_equal(pipe_buf_printf(&b, "%d", 7), PIPE_ETOOBIG);
    assert_int_equal(pipe_buf_reserve(&b, SIZE_MAX), PIPE_ETOOBIG);
    pipe_buf_cleanup(&b);
}

static void test_buf_consume_and_steal(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 100);
    pipe_buf_printf(&b, "hello %s", "world");
    pipe_buf_consume(&b, 6);
    assert_string_equal(b.data, "world");
    size_t n;
    char *p = pipe_buf_steal(&b, &n);
    assert_int_equal(n, 5);
    assert_string_equal(p, "world");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    pipe_free(p);
    pipe_buf_cleanup(&b);
}

static void test_err_classifies_transient_codes(void **state)
{
    (void)state;
    assert_true(pipe_err_is_transient(PIPE_EIO));
    assert_true(pipe_err_is_transient(PIPE_EUNAVAIL));
    assert_false(pipe_err_is_transient(PIPE_EINVAL));
    assert_false(pipe_err_is_transient(PIPE_ELOST));
    assert_string_equal(pipe_strerror(PIPE_ENOTFOUND), "not found");
    assert_non_null(pipe_strerror(-2));
    assert_non_null(pipe_strerror(-99999));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_grows_and_keeps_nul),
        cmocka_unit_test(test_buf_append_past_cap_fails_and_leaves_buffer_unchanged),
        cmocka_unit_test(test_buf_consume_and_steal),
        cmocka_unit_test(test_err_classifies_transient_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
