/* mem — allocation that never returns NULL.
 *
 * An event pipeline that runs out of memory cannot make progress safely, and
 * checking every small allocation would drown the code in error paths that
 * are never tested. So, like Redis's zmalloc, these abort with a message when
 * the allocator fails. Untrusted sizes must be capped *before* they get here
 * (see buf.h): running out of memory because of input is a bug. */
#ifndef PIPE_MEM_H
#define PIPE_MEM_H

#include <stddef.h>

void *pipe_malloc(size_t n);
void *pipe_calloc(size_t count, size_t size);
void *pipe_realloc(void *p, size_t n);
char *pipe_strdup(const char *s);
char *pipe_strndup(const char *s, size_t n);
/* pipe_asprintf — a newly allocated formatted string; caller frees. */
char *pipe_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pipe_free(void *p);

#endif
