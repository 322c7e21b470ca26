/* libFuzzer target: the schema compiler and checker. A schema file is
 * stored bytes (any JSON an operator or a bad merge put in the schema
 * directory); the event checked against it is a client's. Input: the
 * schema document, a NUL, then the event. The event is first made what the
 * filter hands the checker, a compact JSON object in valid UTF-8 (jansson
 * does that here; pipe_event_process in the filter). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pipe_schema_checker *ck;

/* check_event — runs the compact form of ev[0..n) through s, if it is an
 * object. A rewritten event must be a JSON object again. */
static void check_event(const struct pipe_schema *s, const char *ev, size_t n)
{
    json_t *obj = json_loadb(ev, n, JSON_DECODE_ANY, NULL);
    char *compact =
        json_is_object(obj) ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(obj);
    if (!compact)
        return;
    struct pipe_buf out;
    pipe_buf_init(&out, 1u << 20);
    struct pipe_schema_result res;
    int rc = pipe_schema_apply(s, ck, compact, strlen(compact), &out, &res);
    if (rc == 0 && res.changed) {
        json_t *again = json_loadb(out.data, out.len, 0, NULL);
        if (!json_is_object(again))
            abort();
        json_decref(again);
    }
    pipe_buf_cleanup(&out);
    free(compact);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ck)
        ck = pipe_schema_checker_new();
    const char *in = (const char *)data;
    const char *nul = memchr(in, '\0', size);
    size_t doc_len = nul ? (size_t)(nul - in) : size;
    json_t *doc = json_loadb(in, doc_len, JSON_DECODE_ANY, NULL);
    if (!doc)
        return 0;
    struct pipe_schema *s = NULL;
    char err[256];
    if (pipe_schema_new(doc, "fuzz", 1, "fuzz/1.json", NULL, &s, err, sizeof err) == 0 && nul)
        check_event(s, nul + 1, size - doc_len - 1);
    pipe_schema_free(s);
    json_decref(doc);
    return 0;
}
