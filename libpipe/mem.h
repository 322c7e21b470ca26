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
#include <stdint.h>

void *pipe_malloc(size_t n);
void *pipe_calloc(size_t count, size_t size);
void *pipe_realloc(void *p, size_t n);
char *pipe_strdup(const char *s);
char *pipe_strndup(const char *s, size_t n);
/* pipe_asprintf — a newly allocated formatted string; caller frees. */
char *pipe_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pipe_free(void *p);
/* pipe_mem_hash_seed — 64 random bits drawn once per process (getrandom),
 * the seed of every hash table keyed by bytes a client chose, so that
 * nobody can craft keys that share a probe sequence. Output must never
 * depend on it: tables only find things, order comes from elsewhere. */
uint64_t pipe_mem_hash_seed(void);

#endif
