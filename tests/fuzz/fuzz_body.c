/* libFuzzer target: the body splitter plus event processing of every
 * record, as the filter does. Build:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *     tests/fuzz/fuzz_body.c libpipe/{err,mem,buf,log,clock,ndjson,ndjson_body,event}.c -lxxhash -o fuzz_body */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/event.h"
#include "libpipe/ndjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An element of an array or wrapper is exactly one JSON value, without
 * the whitespace around it, as the body's own scan accepted it. */
static int one_value(const struct pipe_body_record *rec)
{
    struct pipe_json_opts o = {PIPE_JSON_DEPTH_LIMIT, PIPE_JSON_LENIENT, NULL, NULL};
    struct pipe_json_result r;
    const char *ws = " \t\r\n";
    return pipe_json_scan(rec->data, rec->len, &o, NULL, &r) == 0 && !memchr(ws, rec->data[0], 4) &&
           !memchr(ws, rec->data[rec->len - 1], 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks the form hint and the record cap. */
    enum pipe_body_form hint = size ? (enum pipe_body_form)(data[0] % 4) : PIPE_BODY_AUTO;
    size_t cap = size ? 16 + (size_t)(data[0] >> 2) * 8 : 0;
    const char *body = size ? (const char *)data + 1 : "";
    size_t len = size ? size - 1 : 0;
    struct pipe_body_iter it;
    struct pipe_body_record rec;
    struct pipe_json_result res;
    struct pipe_event_ctx ctx = {"web", 1700000000000LL, cap, 8};
    struct pipe_buf out;
    size_t last_end = 0, count = 0;

    pipe_buf_init(&out, 1 << 22);
    if (pipe_body_iter_init(&it, body, len, hint, cap, &res) == 0) {
        while (pipe_body_iter_next(&it, &rec)) {
            /* Records are in order, inside the body, never overlapping. */
            if (rec.data != body + rec.offset || rec.offset < last_end || rec.offset + rec.len > len ||
                rec.index != count++ || rec.len == 0)
                abort();
            last_end = rec.offset + rec.len;
            if ((it.form == PIPE_BODY_ARRAY || it.form == PIPE_BODY_WRAPPER) && !one_value(&rec))
                abort();
            struct pipe_event_result r;
            if (rec.err == PIPE_JSON_OK && pipe_event_process(rec.data, rec.len, &ctx, &out, &r) != 0)
                abort();
        }
        /* Every element of an array body came out, no more. */
        if (it.form == PIPE_BODY_ARRAY && count != res.kept)
            abort();
    } else if (res.offset > len || res.err == PIPE_JSON_OK) {
        abort();
    }
    pipe_buf_cleanup(&out);
    return 0;
}
