/* libFuzzer target: the de-duplication index decoder, which reads index
 * objects from the store (stored bytes another process wrote, or a
 * damaged object). A decoded index must hold sorted, distinct keys, and
 * encoding it again must decode to the same index. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/dedup_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_sorted(const struct pipe__dedup_index *ix)
{
    for (size_t i = 1; i < ix->count; i++)
        if (pipe__dedup_key_cmp(&ix->keys[i - 1], &ix->keys[i]) >= 0)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pipe__dedup_index ix = {0}, again = {0};
    /* With and without the job id the object's key would name. */
    if (pipe__dedup_index_decode(data, size, size & 1 ? "job-1" : NULL, &ix) < 0)
        return 0;
    check_sorted(&ix);
    struct pipe_buf enc;
    pipe_buf_init(&enc, SIZE_MAX);
    if (pipe__dedup_index_encode(ix.job_id, ix.keys, ix.count, &enc) < 0)
        abort();
    if (pipe__dedup_index_decode(enc.data, enc.len, ix.job_id, &again) < 0)
        abort();
    if (again.count != ix.count || strcmp(again.job_id, ix.job_id) != 0 ||
        (ix.count && memcmp(again.keys, ix.keys, ix.count * sizeof *ix.keys) != 0))
        abort();
    pipe_buf_cleanup(&enc);
    pipe__dedup_index_cleanup(&again);
    pipe__dedup_index_cleanup(&ix);
    return 0;
}
