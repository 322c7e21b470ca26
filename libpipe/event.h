/* event — envelope validation and enrichment of one event (SPEC section 3).
 *
 * pipe_event_process takes the raw bytes of one record, checks them with
 * the ndjson scanner in a single pass, checks the envelope fields (event,
 * id, ts), and appends the event compacted to one line with the filter's
 * own fields (id if derived, received_at, channel) in place of anything the
 * client sent for them. A rejected event leaves the output untouched and
 * says why in a machine-readable reason code plus a human message. */
#ifndef PIPE_EVENT_H
#define PIPE_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libpipe/buf.h"

enum pipe_reason {
    PIPE_REASON_OK = 0,
    PIPE_REASON_NOT_JSON,
    PIPE_REASON_NOT_OBJECT,
    PIPE_REASON_MISSING_EVENT,
    PIPE_REASON_BAD_EVENT_TYPE,
    PIPE_REASON_BAD_ID,
    PIPE_REASON_BAD_TS,
    PIPE_REASON_TOO_LARGE,
    PIPE_REASON_INVALID_UTF8,
    PIPE_REASON_TOO_DEEP,
    PIPE_REASON_BAD_NUMBER,
    PIPE_REASON_BAD_STRING, /* \u0000, a raw control char, an unpaired surrogate escape */
    PIPE_REASON_DUPLICATE_FIELD,
    /* Set by the filter's schema step (libpipe/schema.h), never by
     * pipe_event_process: */
    PIPE_REASON_SCHEMA_VIOLATION,       /* the event breaks its type's schema */
    PIPE_REASON_UNKNOWN_SCHEMA_VERSION, /* schema_version names no schema of the type */
    PIPE_REASON_UNKNOWN_EVENT_TYPE,     /* no schema for the type (unknown_types=reject) */
    PIPE_REASON__COUNT
};

#define PIPE_EVENT_MAX_BYTES_DEFAULT 65536
#define PIPE_EVENT_MAX_DEPTH_DEFAULT 32
#define PIPE_EVENT_TYPE_MAX          128                      /* bytes in an event type */
#define PIPE_EVENT_ID_MAX            128                      /* bytes in an id (decoded) */
#define PIPE_EVENT_TS_MAX            INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */

/* pipe_event_type_valid — the one event-type rule,
 * ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$ over exactly len bytes of s: never
 * empty, never a path separator, never "." or "..". The envelope check, the
 * key layout (libpipe/keys.h) and the schema directory's event directories
 * all use it. NULL s is invalid. */
bool pipe_event_type_valid(const char *s, size_t len);

/* pipe_reason_code — the stable snake_case code ("not_json", "too_deep",
 * ...; "ok" for PIPE_REASON_OK, "unknown" out of range). Never NULL. */
const char *pipe_reason_code(enum pipe_reason r);

/* pipe_event_ts_parse — the one reading of a time member ("ts",
 * "received_at") that every stage shares, so that an event the filter
 * accepted is never refused later: value is the member's JSON token (a
 * string with its quotes, or a number), n its length, escaped whether the
 * string holds a backslash escape. A string is an RFC 3339 time, a number
 * an integer of epoch milliseconds ("-0" is 0); both in
 * 0..PIPE_EVENT_TS_MAX. true and *ms set, or false (*ms untouched). */
bool pipe_event_ts_parse(const char *value, size_t n, bool escaped, int64_t *ms);

struct pipe_event_ctx {
    const char *channel; /* written as the "channel" member; NULL means "" */
    int64_t received_ms; /* written as "received_at"; ts when the event has none */
    size_t max_bytes;    /* record size cap (raw bytes); 0 means 65536 */
    int max_depth;       /* nesting cap (the event object is depth 1); 0 means 32 */
};

struct pipe_event_result {
    enum pipe_reason reason;
    char message[160]; /* human text with the byte offset; "" on success */
    /* On success only (else NULL/0), pointing into out->data, valid until
     * out next grows: */
    const char *event; /* the event type, raw (it never holds escapes) */
    size_t event_len;
    const char *id; /* the id string's contents as written (JSON-escaped
                       form if the client escaped it; 32 hex digits if derived) */
    size_t id_len;
    int64_t time_ms; /* ts if given, else ctx->received_ms */
};

/* pipe_event_process — validates the event in in[0..len) and on success
 * appends `{...compacted members..., "id":..., "received_at":...,
 * "channel":...}\n` to out. Rules, in the order they are checked (the first
 * failing one is the reason):
 *   too_large      len > max_bytes
 *   not_json, invalid_utf8, bad_string, bad_number, too_deep
 *                  the first scanner error, left to right
 *   not_object     the value is not an object
 *   duplicate_field  "event", "id" or "ts" appears twice at the top level
 *                  (compared after unescaping; nested duplicates are fine)
 *   missing_event, bad_event_type  "event" must be a string whose raw bytes
 *                  match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$
 *   bad_id         "id", if present, must be a string of 1..128 bytes decoded
 *   bad_ts         "ts", if present: an RFC 3339 string or an integer of epoch
 *                  milliseconds, in [0, PIPE_EVENT_TS_MAX] either way
 * Top-level "received_at" and "channel" members are dropped. Without an id
 * one is derived: the lowercase hex of XXH3-128 over channel, a NUL byte and
 * the compacted object after those drops, so retried bytes get the same id.
 * Returns 0 when the event was judged (res->reason says how; out unchanged
 * unless OK); PIPE_ETOOBIG when out cannot take the result (res untouched,
 * out unchanged: flush it and call again). */
int pipe_event_process(const char *in, size_t len, const struct pipe_event_ctx *ctx,
                       struct pipe_buf *out, struct pipe_event_result *res);

#endif
