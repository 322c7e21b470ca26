/* Unit tests for aws_creds: what the chain makes of the answers of the
 * container credentials endpoint (a canned HTTP server on loopback) and of
 * the shared credentials file. Every other source is switched off: the
 * AWS_* variables are cleared, HOME is an empty directory and IMDS is
 * disabled. (The chain's order and refreshing against live fakes are in
 * tests/e2e/test_s3_creds.sh.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/aws_creds.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "tests/support/http_canned.h"
#include "tests/support/testutil.h"

static struct tu_canned *endpoint;
static char *home;

static int group_setup(void **state)
{
    (void)state;
    tu_unsetenv_prefix("AWS_");
    home = tu_tmpdir("aws-creds");
    setenv("HOME", home, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    endpoint = tu_canned_start();
    return endpoint && home ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    tu_canned_stop(endpoint);
    tu_rmrf(home);
    free(home);
    return 0;
}

/* Points the chain at the canned endpoint, answering status and body. */
static void container_answers(int status, const char *body)
{
    char url[96];
    tu_canned_url(endpoint, "/v2/credentials/role", url, sizeof url);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    tu_canned_set(endpoint, status, body, strlen(body));
}

static void test_aws_creds_container_answer_is_read(void **state)
{
    (void)state;
    container_answers(200, "{\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":\"s/e+c\","
                           "\"Token\":\"tok\",\"Expiration\":\"2030-01-02T03:04:05Z\"}");
    char err[PIPE_AWSCREDS_ERR_MAX] = "";
    struct pipe_awscreds *c = NULL;
    assert_int_equal(pipe_awscreds_new("us-east-1", &c, err, sizeof err), 0);
    struct pipe_awscreds_value v;
    assert_int_equal(pipe_awscreds_get(c, &v, err, sizeof err), 0);
    assert_string_equal(v.key_id, "ASIAEXAMPLE");
    assert_string_equal(v.secret, "s/e+c");
    assert_string_equal(v.token, "tok");
    assert_int_equal(v.expires_ms, 1893553445000LL); /* date -d 2030-01-02T03:04:05Z +%s */
    assert_string_equal(v.source, "container credentials endpoint");
    assert_int_equal(tu_canned_served(endpoint), 1);
    pipe_awscreds_free(c);
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
}

/* aws_creds.h promises PIPE_ECONFIG or PIPE_EUNAVAIL: a body that is not
 * JSON (a proxy's HTML page) is a broken source, not a parse error of the
 * data being stored (callers classify the code). */
static void test_aws_creds_container_answer_not_json_is_a_config_error(void **state)
{
    (void)state;
    static const char *const bodies[] = {"<html>proxy error</html>", "",
                                         "{\"Message\":\"n\xb0o role\"}", "[1,2]"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        container_answers(200, bodies[i]);
        char err[PIPE_AWSCREDS_ERR_MAX] = "";
        struct pipe_awscreds *c = NULL;
        assert_int_equal(pipe_awscreds_new("us-east-1", &c, err, sizeof err), PIPE_ECONFIG);
        assert_null(c);
        assert_non_null(strstr(err, "container credentials endpoint"));
        assert_non_null(strstr(err, "not a JSON object"));
    }
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
}

/* The key id and token go into request headers: a CR or LF in them would
 * end a header and start another, so such an answer is refused. */
static void test_aws_creds_container_control_characters_are_refused(void **state)
{
    (void)state;
    container_answers(200, "{\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":\"s\","
                           "\"Token\":\"tok\\r\\nX-Injected: 1\"}");
    char err[PIPE_AWSCREDS_ERR_MAX] = "";
    struct pipe_awscreds *c = NULL;
    assert_int_equal(pipe_awscreds_new("us-east-1", &c, err, sizeof err), PIPE_ECONFIG);
    assert_null(c);
    assert_non_null(strstr(err, "control character"));
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
}

/* An answer whose credentials have already expired is refused (S3 would
 * refuse them; the epoch itself would read as "never expires"). */
static void test_aws_creds_container_expired_answer_is_refused(void **state)
{
    (void)state;
    static const char *const at[] = {"2020-01-01T00:00:00Z", "1970-01-01T00:00:00Z"};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        char body[200];
        snprintf(body, sizeof body,
                 "{\"AccessKeyId\":\"ASIAOLD\",\"SecretAccessKey\":\"s\",\"Expiration\":\"%s\"}",
                 at[i]);
        container_answers(200, body);
        char err[PIPE_AWSCREDS_ERR_MAX] = "";
        struct pipe_awscreds *c = NULL;
        assert_int_equal(pipe_awscreds_new("us-east-1", &c, err, sizeof err), PIPE_EUNAVAIL);
        assert_null(c);
        assert_non_null(strstr(err, "expired at"));
    }
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
}

/* Writes text as the shared credentials file, selects profile (NULL: the
 * default) and walks the chain: its result, with c and err filled. */
static int from_file(const char *text, const char *profile, struct pipe_awscreds **c, char *err,
                     size_t n)
{
    char *path = pipe_asprintf("%s/credentials", home);
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
    setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
    if (profile)
        setenv("AWS_PROFILE", profile, 1);
    else
        unsetenv("AWS_PROFILE");
    int rc = pipe_awscreds_new("us-east-1", c, err, n);
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_SHARED_CREDENTIALS_FILE");
    pipe_free(path);
    return rc;
}

static void test_aws_creds_file_profile_read_with_crlf_spaces_and_comments(void **state)
{
    (void)state;
    const char *text = "# aws configure\r\n[default]\r\naws_access_key_id = DEFAULTKEY\r\n"
                       "aws_secret_access_key = d\r\n\r\n; other account\r\n[ dev ]\r\n"
                       "\taws_access_key_id\t=\tDEVKEY \r\naws_secret_access_key=d/e+v==\r\n"
                       "aws_session_token =DEVTOKEN\r\n";
    char err[PIPE_AWSCREDS_ERR_MAX] = "";
    struct pipe_awscreds *c = NULL;
    assert_int_equal(from_file(text, "dev", &c, err, sizeof err), 0);
    struct pipe_awscreds_value v;
    assert_int_equal(pipe_awscreds_get(c, &v, err, sizeof err), 0);
    assert_string_equal(v.key_id, "DEVKEY");
    assert_string_equal(v.secret, "d/e+v==");
    assert_string_equal(v.token, "DEVTOKEN");
    assert_int_equal(v.expires_ms, 0);
    assert_string_equal(v.source, "shared credentials file");
    pipe_awscreds_free(c);
}

/* A lone CR inside a value (not a line end) stays in the value: refused. */
static void test_aws_creds_file_control_characters_are_refused(void **state)
{
    (void)state;
    const char *text = "[default]\naws_access_key_id = AKIA\rX-Injected: 1\n"
                       "aws_secret_access_key = s\n";
    char err[PIPE_AWSCREDS_ERR_MAX] = "";
    struct pipe_awscreds *c = NULL;
    assert_int_equal(from_file(text, NULL, &c, err, sizeof err), PIPE_ECONFIG);
    assert_null(c);
    assert_non_null(strstr(err, "profile \"default\""));
    assert_non_null(strstr(err, "control character"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_creds_container_answer_is_read),
        cmocka_unit_test(test_aws_creds_container_answer_not_json_is_a_config_error),
        cmocka_unit_test(test_aws_creds_container_control_characters_are_refused),
        cmocka_unit_test(test_aws_creds_container_expired_answer_is_refused),
        cmocka_unit_test(test_aws_creds_file_profile_read_with_crlf_spaces_and_comments),
        cmocka_unit_test(test_aws_creds_file_control_characters_are_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
