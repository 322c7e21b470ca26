/* libFuzzer target: the object-store URL parser (s3://BUCKET/PREFIX?...
 * from configuration and the command line), through pipe_store_open. The
 * S3 backend opens without any request (credentials come from the
 * environment set here), so a URL that parses gives a handle that closes
 * cleanly; one that does not gives a reason, never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/mem.h"
#include "libpipe/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("AWS_ACCESS_KEY_ID", "AKIAFUZZ", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "fuzz-secret", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memchr(data, '\0', size))
        return 0;
    char *url = pipe_malloc(size + 6);
    memcpy(url, "s3://", 5);
    memcpy(url + 5, data, size);
    url[size + 5] = '\0';
    struct pipe_store *s = NULL;
    if (pipe_store_open(url, &s) == 0) {
        if (!s || !pipe_store_url(s))
            abort();
        pipe_store_free(s);
    } else if (s) {
        abort();
    }
    pipe_free(url);
    return 0;
}
