/* libFuzzer target, differential: pipe_json_scan and the body splitter as
 * built (SSE2 on x86-64) against their portable C paths
 * (tests/support/json_diff.h); aborts on any difference in results, output
 * bytes or member callbacks. Build:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *     tests/fuzz/fuzz_json_simd.c tests/support/json_diff.c \
 *     libpipe/{err,mem,buf,log,clock,ndjson,ndjson_body,event}.c -lxxhash -o fuzz_json_simd */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/json_diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks the flags, the depth cap, compacting or not and
     * the body form; the rest is copied to a block of its exact size, so
     * ASan sees any read past its end. */
    unsigned pick = size ? data[0] : 0;
    size_t n = size ? size - 1 : 0;
    char *in = malloc(n ? n : 1);
    memcpy(in, data + (size ? 1 : 0), n);
    if (json_diff_scan(in, n, pick & 3, 1 + (int)(pick >> 2) % 40, (pick >> 7) & 1, NULL) ||
        json_diff_body(in, n, (enum pipe_body_form)(pick % 5), 64, NULL))
        abort();
    free(in);
    return 0;
}
