/* buf — a growable byte buffer with a hard cap.
 *
 * Every buffer that holds data from outside (a request body, a line, a
 * decompressed object) is a pipe_buf with a cap: growing past it fails with
 * PIPE_ETOOBIG and leaves the buffer unchanged, so a hostile size turns into
 * an error reply, never into an out-of-memory abort. The caller owns the
 * struct (init/cleanup); the bytes are always NUL-terminated for convenience
 * (the NUL is not counted in len). */
#ifndef PIPE_BUF_H
#define PIPE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct pipe_buf {
    char *data; /* NULL until the first write */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated (excluding the NUL slot) */
    size_t max; /* hard cap on len; SIZE_MAX for "trusted, unbounded" */
};

/* pipe_buf_init — an empty buffer that may grow to max bytes. */
void pipe_buf_init(struct pipe_buf *b, size_t max);
/* pipe_buf_cleanup — frees the bytes; the buffer can be init'ed again. */
void pipe_buf_cleanup(struct pipe_buf *b);
/* pipe_buf_reset — len = 0, keeping the allocation for reuse. */
void pipe_buf_reset(struct pipe_buf *b);
/* pipe_buf_reserve — room for extra more bytes; PIPE_ETOOBIG past max. */
int pipe_buf_reserve(struct pipe_buf *b, size_t extra);
/* pipe_buf_append — appends n bytes; PIPE_ETOOBIG (buffer unchanged) past max. */
int pipe_buf_append(struct pipe_buf *b, const void *p, size_t n);
int pipe_buf_append_str(struct pipe_buf *b, const char *s);
int pipe_buf_append_char(struct pipe_buf *b, char c);
int pipe_buf_printf(struct pipe_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pipe_buf_vprintf(struct pipe_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* pipe_buf_consume — drops the first n bytes (n <= len), moving the rest. */
void pipe_buf_consume(struct pipe_buf *b, size_t n);
/* pipe_buf_steal — hands the bytes to the caller (who frees them with
 * pipe_free) and leaves the buffer empty. Returns NULL if nothing was written. */
char *pipe_buf_steal(struct pipe_buf *b, size_t *len);

#endif
