/* libFuzzer target: the AWS credential chain's readers of bytes it did not
 * write, through the public API (pipe_awscreds_new + pipe_awscreds_get).
 * The first byte picks the source and the profile; the rest is either the
 * shared credentials file (AWS_SHARED_CREDENTIALS_FILE, an INI text) or the
 * body the container credentials endpoint answers with (a canned HTTP
 * server on loopback, tests/support/http_canned.c, at
 * AWS_CONTAINER_CREDENTIALS_FULL_URI). Every other AWS_*
 * variable is cleared, HOME is an empty directory and IMDS is disabled, so
 * no other source and no real endpoint is ever asked.
 * Invariants: no crash, no leak; a failure is PIPE_ECONFIG or PIPE_EUNAVAIL
 * (aws_creds.h) with a reason; credentials returned hold no control
 * character (they go into request headers) and were in the input (the
 * file's bytes, or the values jansson reads from the body) and their expiry
 * is the answer's Expiration (0 without one); credentials that had already
 * expired are never handed out. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libpipe/aws_creds.h"
#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "tests/support/http_canned.h"
#include "tests/support/testutil.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/fuzz-awscreds-XXXXXX";
static char file_path[64], missing_path[64], url[64];
static struct tu_canned *endpoint; /* the container credentials endpoint */

static void remove_dir(void)
{
    tu_rmrf(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    tu_unsetenv_prefix("AWS_"); /* only the source under test */
    if (mkdtemp(dir) == NULL)
        abort();
    atexit(remove_dir);
    snprintf(file_path, sizeof file_path, "%s/credentials", dir);
    snprintf(missing_path, sizeof missing_path, "%s/none", dir);
    setenv("HOME", dir, 1); /* no ~/.aws/credentials of this machine */
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    if ((endpoint = tu_canned_start()) == NULL)
        abort();
    tu_canned_url(endpoint, "/v2/credentials", url, sizeof url);
    return 0;
}

/* The expiry of a strict "YYYY-MM-DDTHH:MM:SSZ", computed apart from the
 * code under test: 1 and *ms, 0 when s has another form, -1 for a date
 * that does not exist (Feb 30, hour 25). */
static int strict_expiry(const char *s, int64_t *ms)
{
    static const char form[] = "dddd-dd-ddTdd:dd:ddZ";
    if (strlen(s) != sizeof form - 1)
        return 0;
    for (size_t i = 0; form[i]; i++)
        if (form[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != form[i])
            return 0;
    struct tm tm = {0};
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    const struct tm want = tm;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (tm.tm_year + 1900 != want.tm_year || tm.tm_mon + 1 != want.tm_mon ||
        tm.tm_mday != want.tm_mday || tm.tm_hour != want.tm_hour || tm.tm_min != want.tm_min ||
        tm.tm_sec != want.tm_sec)
        return -1;
    *ms = (int64_t)t * 1000;
    return 1;
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static void check_file(const struct pipe_awscreds_value *v, const uint8_t *in, size_t n)
{
    if (memmem(in, n, v->key_id, strlen(v->key_id)) == NULL ||
        memmem(in, n, v->secret, strlen(v->secret)) == NULL ||
        memmem(in, n, v->token, strlen(v->token)) == NULL)
        abort(); /* a credential that is not in the file */
    if (v->expires_ms != 0)
        abort();
}

static void check_container(const struct pipe_awscreds_value *v, const uint8_t *in, size_t n,
                            int64_t t0)
{
    char *text = strndup((const char *)in, n);
    json_t *j = json_loads(text, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "AccessKeyId"));
    const char *secret = json_string_value(json_object_get(j, "SecretAccessKey"));
    const char *token = json_string_value(json_object_get(j, "Token"));
    const char *exp = json_string_value(json_object_get(j, "Expiration"));
    if (id == NULL || secret == NULL || strcmp(v->key_id, id) != 0 ||
        strcmp(v->secret, secret) != 0 || strcmp(v->token, token ? token : "") != 0)
        abort(); /* not the answer's credentials */
    if (exp == NULL && v->expires_ms != 0)
        abort(); /* an expiry the answer did not give */
    int64_t want = 0;
    int strict = exp ? strict_expiry(exp, &want) : 0;
    if (strict < 0 || (strict == 1 && want != v->expires_ms))
        abort(); /* not the answer's expiry, or an impossible date taken */
    if (exp && v->expires_ms <= t0)
        abort(); /* credentials that had expired before we asked */
    json_decref(j);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const profiles[] = {NULL, "default", "dev", "prod west"};
    if (size < 1)
        return 0;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    int container = data[0] & 1;
    const char *profile = profiles[(data[0] >> 1) % 4];
    if (profile)
        setenv("AWS_PROFILE", profile, 1);
    else
        unsetenv("AWS_PROFILE");
    if (container) {
        setenv("AWS_SHARED_CREDENTIALS_FILE", missing_path, 1);
        setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
        tu_canned_set(endpoint, 200, in, n);
    } else {
        FILE *f = fopen(file_path, "wb");
        if (f == NULL || fwrite(in, 1, n, f) != n || fclose(f) != 0)
            abort();
        setenv("AWS_SHARED_CREDENTIALS_FILE", file_path, 1);
        unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    }
    char err[PIPE_AWSCREDS_ERR_MAX] = "";
    struct pipe_awscreds *c = NULL;
    struct pipe_awscreds_value v;
    int64_t t0 = pipe_clock_now_ms();
    int rc = pipe_awscreds_new("us-east-1", &c, err, sizeof err);
    if (rc == 0) {
        err[0] = '\0';
        rc = pipe_awscreds_get(c, &v, err, sizeof err);
    }
    if (rc < 0 && ((rc != PIPE_ECONFIG && rc != PIPE_EUNAVAIL) || err[0] == '\0'))
        abort(); /* aws_creds.h promises these two codes, with a reason */
    if (rc == 0 && (v.key_id[0] == '\0' || v.secret[0] == '\0' || has_control(v.key_id) ||
                    has_control(v.secret) || has_control(v.token)))
        abort(); /* empty, or would end a request header early */
    if (rc == 0 && !container)
        check_file(&v, in, n);
    if (rc == 0 && container)
        check_container(&v, in, n, t0);
    pipe_awscreds_free(c);
    return 0;
}
