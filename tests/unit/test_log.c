/* Unit tests for log: logfmt layout, levels, per-call-site rate limiting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/log.h"
#include "tests/support/testutil.h"

/* capture — runs fn with the log going to a temp file; returns its text. */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/sluice-test-log.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    pipe_log_set_fd(fd);
    fn();
    pipe_log_set_fd(2);
    close(fd);
    char *text = tu_read_file(path, NULL);
    unlink(path);
    assert_non_null(text);
    return text;
}

static int count_lines(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void log_one(void)
{
    pipe_log_init("tester", PIPE_LOG_INFO);
    pipe_log_warn("disk \"full\"", "path=%s free=%d", "/x", 0);
}

static void test_log_writes_one_logfmt_line_with_quoted_message(void **state)
{
    (void)state;
    char *text = capture(log_one);
    assert_non_null(strstr(text, " level=warn comp=tester msg=\"disk \\\"full\\\"\" path=/x free=0\n"));
    assert_int_equal(strncmp(text, "ts=", 3), 0);
    assert_int_equal(count_lines(text, "\n"), 1);
    free(text);
}

static void log_below_level(void)
{
    pipe_log_init("tester", PIPE_LOG_WARN);
    pipe_log_info("hidden", NULL);
    pipe_log_debug("hidden too", NULL);
    pipe_log_error("shown", NULL);
}

static void test_log_drops_records_below_the_level(void **state)
{
    (void)state;
    char *text = capture(log_below_level);
    assert_null(strstr(text, "hidden"));
    assert_non_null(strstr(text, "msg=\"shown\""));
    assert_int_equal(pipe_log_level_parse("warn"), PIPE_LOG_WARN);
    assert_int_equal(pipe_log_level_parse("loud"), -1);
    free(text);
}

/* One call site, used for the whole flood. */
static void same_site(int i)
{
    pipe_log_error("same error again", "i=%d", i);
}

static void log_flood(void)
{
    pipe_log_init("tester", PIPE_LOG_INFO);
    for (int i = 0; i < 10000; i++)
        same_site(i);
    pipe_log_error("another site", NULL);
    usleep(450 * 1000); /* a couple of tokens come back */
    same_site(-1);
}

static void test_log_rate_limits_a_flood_from_one_call_site(void **state)
{
    (void)state;
    char *text = capture(log_flood);
    int flood = count_lines(text, "msg=\"same error again\"");
    /* A burst, then the refill while looping; never thousands. */
    assert_true(flood >= 10);
    assert_true(flood <= 40);
    /* Another call site is not starved by the flood. */
    assert_non_null(strstr(text, "msg=\"another site\""));
    /* The first line after the pause reports how many were suppressed. */
    assert_non_null(strstr(text, "i=-1 suppressed="));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_writes_one_logfmt_line_with_quoted_message),
        cmocka_unit_test(test_log_drops_records_below_the_level),
        cmocka_unit_test(test_log_rate_limits_a_flood_from_one_call_site),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
