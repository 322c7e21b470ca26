/* splitter_reject — the lines of rejected/ that the splitter writes for the
 * lines of a combined object it cannot route (no event type or id, a time
 * it cannot read, a line over max_line), so that no event the filter
 * acknowledged disappears with only a counter to show for it. One object
 * per job, named after the job, written before the job's manifest. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/mem.h"
#include "stages/splitter/splitter.h"

/* raw_member — the line's text as "raw", or as "raw_base64" when it is not
 * UTF-8 (a JSON string cannot hold it). */
static int raw_member(json_t *o, const char *line, size_t len)
{
    json_t *raw = json_stringn(line, len);
    if (raw)
        return json_object_set_new(o, "raw", raw) == 0 ? 0 : PIPE_EINVAL;
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = pipe_malloc(cap);
    sodium_bin2base64(b64, cap, (const unsigned char *)line, len, sodium_base64_VARIANT_ORIGINAL);
    int rc = json_object_set_new(o, "raw_base64", json_string(b64)) == 0 ? 0 : PIPE_EINVAL;
    pipe_free(b64);
    return rc;
}

int split_reject_line(struct pipe_buf *out, const char *line, size_t len, uint64_t line_no,
                      const char *reason, const char *message, const char *source)
{
    int rc = PIPE_EINVAL;
    char *text = NULL;
    json_t *o = json_pack("{s:I, s:s, s:s, s:s}", "line", (json_int_t)line_no, "message", message,
                          "reason", reason, "source", source);
    if (o == NULL)
        goto out;
    rc = line ? raw_member(o, line, len) : 0;
    if (rc < 0)
        goto out;
    text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    rc = text ? pipe_buf_append_str(out, text) : PIPE_EINVAL;
    if (rc == 0)
        rc = pipe_buf_append_char(out, '\n');
out:
    free(text);
    json_decref(o);
    return rc;
}

int split_reject_key(struct pipe_buf *key, const char *job_id, int64_t hour_ms)
{
    char name[PIPE_KEYS_NAME_MAX + 8];
    snprintf(name, sizeof name, "%s.split", job_id);
    return pipe_keys_rejected(key, hour_ms, name);
}
