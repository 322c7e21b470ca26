/* aws_creds — AWS credentials found the way the AWS SDKs find them, cached
 * and refreshed before they expire. One pipe_awscreds per store handle,
 * safe to share between threads.
 *
 * The chain, first match wins (the order of the AWS SDKs' default chain,
 * e.g. botocore and the Java SDK v2):
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   2. web identity (Kubernetes IRSA): AWS_WEB_IDENTITY_TOKEN_FILE and
 *      AWS_ROLE_ARN (AWS_ROLE_SESSION_NAME optional) through STS
 *      AssumeRoleWithWebIdentity at AWS_ENDPOINT_URL_STS or
 *      https://sts.REGION.amazonaws.com
 *   3. the shared credentials file: AWS_SHARED_CREDENTIALS_FILE or
 *      ~/.aws/credentials, profile AWS_PROFILE or "default"
 *   4. the container credentials endpoint (ECS, EKS Pod Identity):
 *      AWS_CONTAINER_CREDENTIALS_FULL_URI or http://169.254.170.2 +
 *      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, with the Authorization token
 *      from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN
 *   5. EC2 instance metadata, IMDSv2 (session token first), at
 *      AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254; skipped
 *      when AWS_EC2_METADATA_DISABLED=true. */
#ifndef PIPE_AWS_CREDS_H
#define PIPE_AWS_CREDS_H

#include <stddef.h>
#include <stdint.h>

#define PIPE_AWSCREDS_ERR_MAX 400

/* A snapshot of credentials; token is "" for long-term keys. */
struct pipe_awscreds_value {
    char key_id[129];
    char secret[129];
    char token[4097];
    int64_t expires_ms; /* wall clock; 0: never */
    const char *source; /* "environment", "web identity", ... (static) */
};

struct pipe_awscreds;

/* pipe_awscreds_new — walks the chain once; region names the STS endpoint.
 * On failure writes why into err (every source tried) and returns
 * PIPE_ECONFIG (nothing found, or a source that is configured but broken)
 * or PIPE_EUNAVAIL (a configured endpoint did not answer, or answered with
 * credentials that have already expired). Free with pipe_awscreds_free. */
int pipe_awscreds_new(const char *region, struct pipe_awscreds **out, char *err, size_t err_size);

/* pipe_awscreds_get — copies the current credentials into out, first
 * fetching new ones if they expire within their refresh margin (5 minutes,
 * or half the lifetime of short-lived ones). If that fetch fails while the
 * old ones are still valid, the old ones are used. 0, or the fetch's code
 * with err set. Wipe out (sodium_memzero) when done. */
int pipe_awscreds_get(struct pipe_awscreds *c, struct pipe_awscreds_value *out, char *err,
                      size_t err_size);

/* pipe_awscreds_free — wipes and frees; NULL is a no-op. */
void pipe_awscreds_free(struct pipe_awscreds *c);

#endif
