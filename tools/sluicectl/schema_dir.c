/* schema_dir — how sluicectl reads schemas: through libpipe's loader
 * (libpipe/schema.h), so that a file these commands accept is a file the
 * filter loads, with the same limits and messages. Strict: what the filter
 * would skip with a warning (01.json, a directory that is not an event type)
 * fails the command. */
#include <string.h>

#include "libpipe/event.h"
#include "libpipe/schema.h"
#include "tools/sluicectl/ctl.h"

/* A stand-in key: sluicectl only compiles schemas, it never hashes, but a
 * schema with redact "hash" does not compile without one. */
static const unsigned char stand_in_key[32] = "sluicectl-schema-compile-only!!";

static const struct pipe_schema_opts ctl_opts = {stand_in_key, sizeof stand_in_key, true};

int ctl_schema_dir_load(const char *dir, struct pipe_schema_set **out, char *err, size_t errlen)
{
    return pipe_schema_set_load(dir, &ctl_opts, out, err, errlen);
}

int ctl_schema_file_load(const char *path, struct pipe_schema **out, char *err, size_t errlen)
{
    char event[PIPE_EVENT_TYPE_MAX + 1] = "event";
    const char *slash = strrchr(path, '/');
    int version = pipe_schema_file_version(slash ? slash + 1 : path);
    if (slash != NULL) {
        /* the event directory's name, when it is one */
        const char *start = slash;
        while (start > path && start[-1] != '/')
            start--;
        size_t n = (size_t)(slash - start);
        if (pipe_event_type_valid(start, n)) {
            memcpy(event, start, n);
            event[n] = '\0';
        }
    }
    return pipe_schema_load_file(path, event, version ? version : 1, &ctl_opts, out, err, errlen);
}

size_t ctl_schema_docs_newest(const struct pipe_schema *const *v, size_t n, const json_t **docs,
                              size_t max)
{
    size_t k = 0;
    while (n-- > 0 && k < max)
        docs[k++] = pipe_schema_doc(v[n]);
    return k;
}
