/* libFuzzer target: the XML reader for S3 and STS answers (listings, error
 * bodies, credentials), which come from the network. The callback does what
 * the listing parser does with each element: copies and measures its text.
 * Build:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *     tests/fuzz/fuzz_aws_xml.c libpipe/{err,mem,aws_xml}.c -lexpat -o fuzz_aws_xml */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/aws_xml.h"
#include "libpipe/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_element(void *arg, const char *parent, const char *name, const char *text)
{
    size_t *total = arg;
    char *copy = pipe_strdup(text);
    *total += strlen(parent) + strlen(name) + strlen(copy);
    pipe_free(copy);
    /* Stopping early must be clean too. */
    return strcmp(name, "Stop") == 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t total = 0;
    pipe_awsxml_parse((const char *)data, size, on_element, &total);
    return 0;
}
