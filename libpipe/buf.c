/* buf — capped growable byte buffers. */
#include "libpipe/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "libpipe/err.h"
#include "libpipe/mem.h"

void pipe_buf_init(struct pipe_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void pipe_buf_cleanup(struct pipe_buf *b)
{
    pipe_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void pipe_buf_reset(struct pipe_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int pipe_buf_reserve(struct pipe_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return PIPE_ETOOBIG;
    size_t need = b->len + extra;
    if (need <= b->cap && b->data)
        return PIPE_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max)
        cap = b->max;
    b->data = pipe_realloc(b->data, cap + 1);
    b->cap = cap;
    return PIPE_OK;
}

int pipe_buf_append(struct pipe_buf *b, const void *p, size_t n)
{
    int rc = pipe_buf_reserve(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return PIPE_OK;
}

int pipe_buf_append_str(struct pipe_buf *b, const char *s)
{
    return pipe_buf_append(b, s, strlen(s));
}

int pipe_buf_append_char(struct pipe_buf *b, char c)
{
    return pipe_buf_append(b, &c, 1);
}

int pipe_buf_vprintf(struct pipe_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return PIPE_EINVAL;
    int rc = pipe_buf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return PIPE_OK;
}

int pipe_buf_printf(struct pipe_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = pipe_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void pipe_buf_consume(struct pipe_buf *b, size_t n)
{
    if (n >= b->len) {
        pipe_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *pipe_buf_steal(struct pipe_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
