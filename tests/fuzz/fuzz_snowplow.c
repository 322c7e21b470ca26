/* libFuzzer target: the Snowplow tracker protocol (filter_snowplow.c): a
 * tp2 payload_data body, or (first byte odd) a GET /i query string; every
 * payload must become exactly one native event line. */
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
    struct filter_xlate x = {.received_ms = 1700000000000LL, .max_depth = 8};
    struct pipe_buf out, q;
    pipe_buf_init(&out, 1 << 22);
    pipe_buf_init(&q, 1 << 22);
    int rc;
    if (data[0] & 1) {
        char *query = pipe_malloc(size);
        memcpy(query, data + 1, size - 1);
        query[size - 1] = '\0';
        rc = PIPE_EPARSE;
        if (strlen(query) == size - 1 && filter_query_json(query, &q) == 0) {
            rc = filter_snowplow_payload(&x, q.data, q.len, &out);
            x.n_messages = 1;
        }
        pipe_free(query);
    } else {
        rc = filter_snowplow_translate(&x, (const char *)data + 1, size - 1, &out);
    }
    fuzz_sdk_finish(rc, &out, &q, x.n_messages);
    return 0;
}
