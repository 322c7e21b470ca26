/* splitter_reject — the lines of rejected/ that the splitter writes for the
 * lines of a combined object it cannot route (no event type or id, a time
 * it cannot read, a line over max_line), so that no event the filter
 * acknowledged disappears with only a counter to show for it. One object
 * per job, named after the job, written before the job's manifest. */
#include <stdio.h>

#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/reject.h"
#include "stages/splitter/splitter.h"

int split_reject_line(struct pipe_buf *out, const char *line, size_t len, uint64_t line_no,
                      const char *reason, const char *message, const char *source)
{
    const struct pipe_reject r = {.line = line_no,
                                  .message = message,
                                  .rec = line,
                                  .rec_len = len,
                                  .reason = reason,
                                  .source = source};
    return pipe_reject_append(out, &r);
}

int split_reject_key(struct pipe_buf *key, const char *job_id, int64_t hour_ms)
{
    char name[PIPE_KEYS_NAME_MAX + 8];
    snprintf(name, sizeof name, "%s.split", job_id);
    return pipe_keys_rejected(key, hour_ms, name);
}
