/* libFuzzer target: the sluice record and the frame walk the combiner
 * trusts instead of decoding (libpipe/codec.h). A record read must state
 * possible counts; frames the walk accepts must decode to exactly the
 * bytes it summed, or fail as corrupt (a flipped block byte), never to
 * another size; nothing is read past the input. */
#include <stdint.h>
#include <stdlib.h>

#include "libpipe/codec.h"
#include "libpipe/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pipe_codec_record rec;
    int rc = pipe_codec_record_read(data, size, &rec);
    if (rc != 0 && rc != PIPE_ENOTFOUND && rc != PIPE_ECORRUPT)
        abort();
    if (rc == 0 && (rec.events > rec.bytes / 2 || (rec.events == 0 && rec.bytes > 0)))
        abort();
    size_t skip = rc == 0 ? PIPE_CODEC_RECORD_LEN : 0;
    uint64_t bytes = 0;
    if (pipe_codec_frames_size(data + skip, size - skip, &bytes) != 0 || bytes > (1u << 20))
        return 0;
    struct pipe_buf out;
    pipe_buf_init(&out, 1u << 20);
    rc = pipe_codec_decompress(data + skip, size - skip, &out);
    if ((rc == 0 && out.len != bytes) || (rc != 0 && rc != PIPE_ECORRUPT))
        abort();
    pipe_buf_cleanup(&out);
    return 0;
}
