/* ndjson_int — what the scanner (ndjson.c) and the body splitter
 * (ndjson_body.c) share: the choice of SIMD path and the JSON whitespace
 * test. Not for other modules. */
#ifndef PIPE_NDJSON_INT_H
#define PIPE_NDJSON_INT_H

#include <stdbool.h>

/* SSE2 is baseline on x86-64: the scanner checks strings 16 bytes at a time
 * and the body splitter's skimmer works on 64-byte masks. Defining
 * PIPE_NDJSON_PORTABLE builds the plain C paths instead, what other CPUs
 * run; both give the same results, which tests/unit/test_ndjson_simd.c
 * checks. */
#if defined(__SSE2__) && !defined(PIPE_NDJSON_PORTABLE)
#define NDJSON_SSE2 1
#include <emmintrin.h>
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE bool pipe__json_is_ws(unsigned c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

#endif
