/* Unit tests for aws_sigv4: the percent-encoding and canonical query, and
 * signatures checked against values computed independently with botocore
 * (AWS's Python signer) for a path and query full of characters that need
 * encoding, with and without a session token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/aws_sigv4.h"
#include "libpipe/err.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static char *encoded(const char *s, bool keep_slash, struct pipe_buf *b)
{
    pipe_buf_reset(b);
    assert_int_equal(pipe_sigv4_encode(b, s, strlen(s), keep_slash), 0);
    assert_int_equal(pipe_buf_append(b, "", 1), 0);
    return b->data;
}

static void test_aws_sigv4_encode_keeps_only_unreserved_bytes(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 4096);
    assert_string_equal(encoded("AZaz09-._~", false, &b), "AZaz09-._~");
    assert_string_equal(encoded("a b+c%d=e&f/g", false, &b), "a%20b%2Bc%25d%3De%26f%2Fg");
    assert_string_equal(encoded("dir/a b/c+", true, &b), "dir/a%20b/c%2B");
    assert_string_equal(encoded("\xc3\xa9\xe2\x82\xac*", true, &b), "%C3%A9%E2%82%AC%2A");
    pipe_buf_cleanup(&b);
}

static void test_aws_sigv4_query_is_encoded_and_sorted_by_encoded_name(void **state)
{
    (void)state;
    struct pipe_buf b;
    pipe_buf_init(&b, 4096);
    const struct pipe_sigv4_param p[] = {
        {"prefix", "p+ q"}, {"marker", "x=y"}, {"max-keys", "10"}, {"empty", ""}};
    assert_int_equal(pipe_sigv4_query(&b, p, 4), 0);
    assert_string_equal(b.data, "empty=&marker=x%3Dy&max-keys=10&prefix=p%2B%20q");
    pipe_buf_cleanup(&b);
}

static void test_aws_sigv4_sha256_of_nothing_is_the_known_constant(void **state)
{
    (void)state;
    char h[PIPE_SIGV4_HASH_HEX];
    pipe_sigv4_sha256_hex("", 0, h);
    assert_string_equal(h, EMPTY_SHA256);
    pipe_sigv4_sha256_hex("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void sign_case(const char *token, const char *want_sig, const char *want_headers)
{
    struct pipe_buf q;
    pipe_buf_init(&q, 4096);
    const struct pipe_sigv4_param p[] = {{"prefix", "p+ q"}, {"marker", "x=y"}, {"max-keys", "10"}};
    assert_int_equal(pipe_sigv4_query(&q, p, 3), 0);
    const struct pipe_sigv4_req r = {
        .method = "GET",
        .host = "127.0.0.1:9000",
        .path = "/bucket/a%20b%2Bc%25%3D%C3%A9",
        .query = q.data,
        .payload_hash = EMPTY_SHA256,
        .region = "eu-west-1",
        .service = "s3",
        .key_id = "AKIDEXAMPLE",
        .secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        .token = token,
        .now_ms = 1704164645000, /* 2024-01-02T03:04:05Z */
    };
    char date[PIPE_SIGV4_DATE_LEN], auth[PIPE_SIGV4_AUTH_MAX];
    assert_int_equal(pipe_sigv4_sign(&r, date, auth, sizeof auth), 0);
    assert_string_equal(date, "20240102T030405Z");
    char want[PIPE_SIGV4_AUTH_MAX];
    snprintf(want, sizeof want,
             "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/eu-west-1/s3/aws4_request, "
             "SignedHeaders=%s, Signature=%s",
             want_headers, want_sig);
    assert_string_equal(auth, want);
    pipe_buf_cleanup(&q);
}

static void test_aws_sigv4_signature_matches_botocore(void **state)
{
    (void)state;
    sign_case(NULL, "9a82c12398a0482625474a104dcd2b6a545ac6777d78fba14c13a831f8139030",
              "host;x-amz-content-sha256;x-amz-date");
}

static void test_aws_sigv4_session_token_is_signed_as_botocore_does(void **state)
{
    (void)state;
    sign_case("tok/en+=", "c34d760f0deb5063308a28a91a91b9c34308391101471b90457413369cb86953",
              "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
}

static void test_aws_sigv4_too_small_output_is_refused(void **state)
{
    (void)state;
    const struct pipe_sigv4_req r = {.method = "GET",
                                     .host = "h",
                                     .path = "/",
                                     .query = "",
                                     .payload_hash = EMPTY_SHA256,
                                     .region = "us-east-1",
                                     .service = "s3",
                                     .key_id = "K",
                                     .secret = "S",
                                     .now_ms = 0};
    char date[PIPE_SIGV4_DATE_LEN], auth[32];
    assert_int_equal(pipe_sigv4_sign(&r, date, auth, sizeof auth), PIPE_EINVAL);
    struct pipe_sigv4_req missing = r;
    missing.secret = NULL;
    char big[PIPE_SIGV4_AUTH_MAX];
    assert_int_equal(pipe_sigv4_sign(&missing, date, big, sizeof big), PIPE_EINVAL);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_sigv4_encode_keeps_only_unreserved_bytes),
        cmocka_unit_test(test_aws_sigv4_query_is_encoded_and_sorted_by_encoded_name),
        cmocka_unit_test(test_aws_sigv4_sha256_of_nothing_is_the_known_constant),
        cmocka_unit_test(test_aws_sigv4_signature_matches_botocore),
        cmocka_unit_test(test_aws_sigv4_session_token_is_signed_as_botocore_does),
        cmocka_unit_test(test_aws_sigv4_too_small_output_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
