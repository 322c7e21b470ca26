/* fuzz_sdk — the check the SDK-protocol fuzz targets share: a translation
 * that succeeded produced exactly one NDJSON line per message, and every
 * line goes through the envelope check without a crash. */
#ifndef FUZZ_SDK_H
#define FUZZ_SDK_H

#include <stdlib.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/event.h"
#include "stages/filter/filter.h"

static void fuzz_sdk_check_lines(const struct pipe_buf *out, size_t messages)
{
    struct pipe_event_ctx ctx = {"web", 1700000000000LL, 1 << 16, 8};
    struct pipe_buf ev;
    size_t lines = 0;
    pipe_buf_init(&ev, 1 << 22);
    for (size_t at = 0; at < out->len;) {
        const char *nl = memchr(out->data + at, '\n', out->len - at);
        if (nl == NULL || nl == out->data + at)
            abort(); /* every line ends in '\n' and is not empty */
        struct pipe_event_result r;
        pipe_buf_reset(&ev);
        if (pipe_event_process(out->data + at, (size_t)(nl - out->data - at), &ctx, &ev, &r) != 0)
            abort();
        lines++;
        at = (size_t)(nl - out->data) + 1;
    }
    if (lines != messages)
        abort();
    pipe_buf_cleanup(&ev);
}

/* fuzz_sdk_finish — the outcome of one translation checked, buffers freed. */
static void fuzz_sdk_finish(int rc, struct pipe_buf *out, struct pipe_buf *q, size_t messages)
{
    if (rc == 0)
        fuzz_sdk_check_lines(out, messages);
    else if (rc != PIPE_EPARSE && rc != PIPE_ETOOBIG)
        abort();
    pipe_buf_cleanup(q);
    pipe_buf_cleanup(out);
}

#endif
