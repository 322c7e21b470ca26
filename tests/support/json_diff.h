/* json_diff — the JSON scanner's and body splitter's portable C paths
 * (libpipe/ndjson.c and ndjson_body.c built with PIPE_NDJSON_PORTABLE)
 * beside the library as built (SSE2 on x86-64), and a comparison of the
 * two on one input, for test_ndjson_simd and fuzz_json_simd. Test code
 * only. */
#ifndef SLUICE_JSON_DIFF_H
#define SLUICE_JSON_DIFF_H

#include <stdbool.h>
#include <stddef.h>

#include "libpipe/ndjson.h"

/* json_diff_scan — scans in[0..n) with pipe_json_scan and with the portable
 * copy, flags and max depth as given, compacting into a buffer when emit
 * (after a prefix of n % 8 bytes, so stores land at every alignment), with
 * a member callback that records every call and drops members whose key
 * starts with 'd'. Returns NULL when the return codes, results, output
 * bytes and callbacks are identical, else which of them differed; *accepted
 * (may be NULL) tells whether the library's scan returned 0. */
const char *json_diff_scan(const char *in, size_t n, unsigned flags, int depth, bool emit,
                           bool *accepted);

/* json_diff_body — walks body[0..n) with pipe_body_iter (hint, max_record)
 * and with the portable copy. Returns NULL when init and every record are
 * identical (same pointers, lengths, indexes and errors), else which part
 * differed; *records (may be NULL) gets the library's record count. */
const char *json_diff_body(const char *body, size_t n, enum pipe_body_form hint, size_t max_record,
                           size_t *records);

#endif
