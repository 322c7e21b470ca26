/* reject — one rejected/ line, written field by field (see reject.h). */
#include <sodium.h>
#include <stdbool.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/err.h"
#include "libpipe/ndjson.h"
#include "libpipe/reject.h"

/* put_name — `"name":`, preceded by a comma unless it is the first. */
static int put_name(struct pipe_buf *out, const char *name, bool *first)
{
    int rc = *first ? 0 : pipe_buf_append_char(out, ',');
    *first = false;
    return rc == 0 ? pipe_buf_printf(out, "\"%s\":", name) : rc;
}

/* put_string — `"name":"value"`; a value that is not UTF-8 (a message
 * quoting client bytes) becomes "". NULL: nothing. */
static int put_string(struct pipe_buf *out, const char *name, const char *v, bool *first)
{
    if (v == NULL)
        return 0;
    int rc = put_name(out, name, first);
    if (rc == 0 && pipe_json_append_string(out, v, strlen(v)) == PIPE_EINVAL)
        rc = pipe_buf_append(out, "\"\"", 2);
    return rc;
}

static int put_uint(struct pipe_buf *out, const char *name, uint64_t v, bool *first)
{
    int rc = put_name(out, name, first);
    return rc == 0 ? pipe_buf_printf(out, "%llu", (unsigned long long)v) : rc;
}

/* put_rec — the record as "raw" (a JSON string) when it is UTF-8, else as
 * "raw_base64". */
static int put_rec(struct pipe_buf *out, const char *rec, size_t len, bool *first)
{
    size_t at = out->len;
    bool was_first = *first;
    int rc = put_name(out, "raw", first);
    if (rc == 0)
        rc = pipe_json_append_string(out, rec, len);
    if (rc != PIPE_EINVAL)
        return rc;
    out->len = at;
    *first = was_first;
    rc = put_name(out, "raw_base64", first);
    size_t b64 = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    if (rc == 0)
        rc = pipe_buf_reserve(out, b64 + 2);
    if (rc < 0)
        return rc;
    out->data[out->len++] = '"';
    sodium_bin2base64(out->data + out->len, b64, (const unsigned char *)rec, len,
                      sodium_base64_VARIANT_ORIGINAL);
    out->len += b64 - 1; /* without its NUL */
    return pipe_buf_append_char(out, '"');
}

int pipe_reject_append(struct pipe_buf *out, const struct pipe_reject *r)
{
    size_t at = out->len;
    bool first = true;
    /* keys in sorted order, as every earlier rejected/ line has them */
    int rc = pipe_buf_append_char(out, '{');
    if (rc == 0)
        rc = put_string(out, "channel", r->channel, &first);
    if (rc == 0 && r->line > 0)
        rc = put_uint(out, "line", r->line, &first);
    if (rc == 0)
        rc = put_string(out, "message", r->message ? r->message : "", &first);
    if (rc == 0)
        rc = put_string(out, "quarantine", r->quarantine, &first);
    if (rc == 0 && r->rec != NULL)
        rc = put_rec(out, r->rec, r->rec_len, &first);
    if (rc == 0 && r->quarantine != NULL) {
        rc = put_string(out, "raw_etag", r->raw_etag ? r->raw_etag : "", &first);
        if (rc == 0)
            rc = put_string(out, "raw_key", r->raw_key ? r->raw_key : "", &first);
        if (rc == 0)
            rc = put_uint(out, "raw_size", r->raw_size, &first);
    }
    if (rc == 0)
        rc = put_string(out, "reason", r->reason ? r->reason : "", &first);
    if (rc == 0)
        rc = put_string(out, "received_at", r->received_at, &first);
    if (rc == 0)
        rc = put_string(out, "source", r->source ? r->source : "", &first);
    if (rc == 0)
        rc = pipe_buf_append(out, "}\n", 2);
    if (rc < 0) {
        out->len = at;
        if (out->data)
            out->data[at] = '\0';
    }
    return rc;
}
