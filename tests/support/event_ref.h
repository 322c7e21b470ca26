/* event_ref — a deliberately simple reference for pipe_event_process built
 * on jansson, for the differential test and the fuzz targets. It makes the
 * same accept/reject decisions from a DOM (plus jansson-driven walking of the
 * top-level members, to see duplicates and raw bytes) and returns the object
 * the fast path's output line must parse to. Test code only. */
#ifndef SLUICE_EVENT_REF_H
#define SLUICE_EVENT_REF_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "libpipe/event.h"

/* The clock functions are passed in, not called, so that this file (linked
 * into every test binary) does not depend on libpipe's clock module. */
struct event_ref_clock {
    int (*parse_rfc3339)(const char *s, size_t n, int64_t *ms);
    size_t (*format_rfc3339)(int64_t ms, char *out);
};

struct event_ref_result {
    enum pipe_reason reason;
    json_t *expected; /* on OK: the enriched object; caller json_decref()s */
    int64_t time_ms;  /* on OK */
    int json_ok;      /* jansson accepted the text (the reason, if any, is
                         then about depth, shape or envelope) */
};

/* event_ref_process — judges in[0..len) under ctx. */
void event_ref_process(const char *in, size_t len, const struct pipe_event_ctx *ctx,
                       const struct event_ref_clock *clk, struct event_ref_result *res);

/* event_ref_is_parse_reason — true for the reasons that come from the JSON
 * text itself (not_json, invalid_utf8, bad_string, bad_number, too_deep):
 * when a document has several such faults, the two implementations may name
 * different ones. */
int event_ref_is_parse_reason(enum pipe_reason r);

/* event_ref_strip_ws — copies the JSON text in[0..len) to out without
 * whitespace outside strings; returns the new length. out holds len bytes. */
size_t event_ref_strip_ws(const char *in, size_t len, char *out);

#endif
