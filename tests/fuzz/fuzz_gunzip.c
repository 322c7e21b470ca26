/* libFuzzer target: pipe_codec_gunzip, the Content-Encoding: gzip decoder,
 * under a small cap: it never writes past the cap (a bomb stops there), and
 * on failure leaves the output as it was. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/codec.h"
#include "libpipe/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pipe_buf out;
    pipe_buf_init(&out, 1 << 16);
    pipe_buf_append(&out, "x", 1);
    int rc = pipe_codec_gunzip(data, size, &out);
    if (out.len > out.max || (rc < 0 && out.len != 1) || out.data[0] != 'x')
        abort();
    if (rc != 0 && rc != PIPE_ETOOBIG && rc != PIPE_ECORRUPT)
        abort();
    pipe_buf_cleanup(&out);
    return 0;
}
