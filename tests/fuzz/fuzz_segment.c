/* libFuzzer target: the Segment / RudderStack translation (filter_segment.c)
 * of a request body, for a batch or a single call picked by the first
 * byte, and of a pixel query string; each message must become exactly one
 * native event line that the envelope check can judge. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "tests/fuzz/fuzz_sdk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    enum filter_call call = (enum filter_call)(data[0] % 7);
    bool pixel = data[0] & 0x80;
    struct filter_xlate x = {.received_ms = 1700000000000LL, .max_depth = 8};
    struct pipe_buf out, q;
    pipe_buf_init(&out, 1 << 22);
    pipe_buf_init(&q, 1 << 22);
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    if (pixel) {
        /* the query as the httpd hands it over: NUL-terminated, no NULs */
        char *query = pipe_malloc(len + 1);
        memcpy(query, body, len);
        query[len] = '\0';
        if (strlen(query) == len && filter_query_json(query, &q) == 0) {
            body = q.data;
            len = q.len;
        } else {
            len = 0;
        }
        pipe_free(query);
    }
    int rc = filter_segment_translate(&x, call, body, len, &out);
    fuzz_sdk_finish(rc, &out, &q, x.n_messages);
    return 0;
}
