/* mem — aborting allocation wrappers (see mem.h for why they abort). */
#include "libpipe/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static void oom(size_t n)
{
    fprintf(stderr, "level=fatal msg=\"out of memory\" bytes=%zu\n", n);
    abort();
}

void *pipe_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *pipe_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        oom(count * size);
    return p;
}

void *pipe_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *pipe_strdup(const char *s)
{
    return pipe_strndup(s, strlen(s));
}

char *pipe_strndup(const char *s, size_t n)
{
    char *d = pipe_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *pipe_asprintf(const char *fmt, ...)
{
    /* vasprintf allocates with malloc, which pipe_free releases. */
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(strlen(fmt));
    return s;
}

void pipe_free(void *p)
{
    free(p);
}

static uint64_t hash_seed;
static pthread_once_t hash_seed_once = PTHREAD_ONCE_INIT;

static void hash_seed_draw(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
        /* Kernels without getrandom(2): less secret, still per process. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        v = ((uint64_t)ts.tv_nsec << 32 ^ (uint64_t)ts.tv_sec) * 0x9e3779b97f4a7c15ULL ^
            (uint64_t)(uintptr_t)&v;
    }
    hash_seed = v;
}

uint64_t pipe_mem_hash_seed(void)
{
    pthread_once(&hash_seed_once, hash_seed_draw);
    return hash_seed;
}
