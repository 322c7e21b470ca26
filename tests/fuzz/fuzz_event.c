/* libFuzzer target: pipe_event_process on arbitrary bytes, checked against
 * the jansson reference (tests/support/event_ref.c). Build:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *     tests/fuzz/fuzz_event.c tests/support/event_ref.c libpipe/{err,mem,buf,log,clock,ndjson,event}.c \
 *     -ljansson -lxxhash -o fuzz_event */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/clock.h"
#include "libpipe/event.h"
#include "tests/support/event_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct event_ref_clock clk = {pipe_clock_parse_rfc3339, pipe_clock_format_rfc3339};
    /* The first byte picks a depth cap, so deep-nesting paths get exercised. */
    int depth = size ? 1 + data[0] % 40 : 32;
    const char *in = size ? (const char *)data + 1 : "";
    size_t n = size ? size - 1 : 0;
    struct pipe_event_ctx ctx = {"web", 1700000000000LL, 4096, depth};
    struct pipe_buf out;
    struct pipe_event_result r;
    struct event_ref_result ref;

    pipe_buf_init(&out, 1 << 20);
    if (pipe_event_process(in, n, &ctx, &out, &r) != 0)
        abort();
    event_ref_process(in, n, &ctx, &clk, &ref);
    if ((r.reason == PIPE_REASON_OK) != (ref.reason == PIPE_REASON_OK))
        abort();
    if (r.reason != ref.reason &&
        (ref.json_ok || !event_ref_is_parse_reason(r.reason) || !event_ref_is_parse_reason(ref.reason)))
        abort();
    if (r.reason == PIPE_REASON_OK) {
        json_error_t e;
        json_t *got = json_loadb(out.data, out.len - 1, JSON_DECODE_INT_AS_REAL, &e);
        if (!got || !json_equal(got, ref.expected) || out.data[out.len - 1] != '\n' ||
            memchr(out.data, '\n', out.len - 1))
            abort();
        json_decref(got);
    } else if (out.len != 0) {
        abort();
    }
    json_decref(ref.expected);
    pipe_buf_cleanup(&out);
    return 0;
}
