/* libFuzzer target: pipe_event_ts_parse, the one reading of "ts" and
 * "received_at" every stage shares (client bytes in the filter, stored
 * bytes after it). A time it accepts is in 0..PIPE_EVENT_TS_MAX, and the
 * same token always gives the same time. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so that ASan sees any read past it. */
    char *v = malloc(size ? size : 1);
    if (!v)
        return 0;
    memcpy(v, data, size);
    bool escaped = memchr(v, '\\', size) != NULL;
    int64_t ms = -1, again = -1;
    if (pipe_event_ts_parse(v, size, escaped, &ms)) {
        if (ms < 0 || ms > PIPE_EVENT_TS_MAX)
            abort();
        if (!pipe_event_ts_parse(v, size, escaped, &again) || again != ms)
            abort();
    } else if (ms != -1) {
        abort(); /* *ms is left untouched on failure */
    }
    free(v);
    return 0;
}
