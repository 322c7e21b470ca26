/* libFuzzer target: the manifest readers (jobs/, manifests/combine/,
 * manifests/split/ documents), which read stored bytes. The first byte
 * picks the kind. A document that parses must write back, and what it
 * writes must parse and write back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One kind: parse, write, parse the writing, write again, compare. */
#define ROUND_TRIP(kind, json, n)                                                                  \
    do {                                                                                           \
        struct pipe_manifest_##kind a, b;                                                          \
        if (pipe_manifest_##kind##_from_json(json, n, &a) < 0)                                     \
            break;                                                                                 \
        struct pipe_buf w1, w2;                                                                    \
        pipe_buf_init(&w1, SIZE_MAX);                                                              \
        pipe_buf_init(&w2, SIZE_MAX);                                                              \
        if (pipe_manifest_##kind##_to_json(&a, &w1) < 0 ||                                         \
            pipe_manifest_##kind##_from_json(w1.data, w1.len, &b) < 0)                             \
            abort();                                                                               \
        if (pipe_manifest_##kind##_to_json(&b, &w2) < 0 || w1.len != w2.len ||                     \
            memcmp(w1.data, w2.data, w1.len) != 0)                                                 \
            abort();                                                                               \
        pipe_buf_cleanup(&w1);                                                                     \
        pipe_buf_cleanup(&w2);                                                                     \
        pipe_manifest_##kind##_cleanup(&a);                                                        \
        pipe_manifest_##kind##_cleanup(&b);                                                        \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *json = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0:
        ROUND_TRIP(job, json, n);
        break;
    case 1:
        ROUND_TRIP(combined, json, n);
        break;
    default:
        ROUND_TRIP(split, json, n);
        break;
    }
    return 0;
}
