/* ndjson — a single-pass validating JSON scanner and the HTTP-body splitter.
 *
 * pipe_json_scan checks one JSON value against RFC 8259 plus the pipeline's
 * own rules (valid UTF-8, no \u0000, no lone surrogates, bounded depth, no
 * double overflow) and, in the same pass, writes it compacted (insignificant
 * whitespace dropped) so every event becomes one line. It builds no DOM: the
 * caller learns about the top-level members through a callback, which may
 * also drop a member from the output. pipe_body_iter cuts a request body or
 * landed file into records (NDJSON lines, array elements, or the elements of
 * an {"events": [...]} wrapper) without copying. */
#ifndef PIPE_NDJSON_H
#define PIPE_NDJSON_H

#include <stdbool.h>
#include <stddef.h>

#include "libpipe/buf.h"

/* The deepest nesting any scan accepts, whatever max_depth asks for. */
#define PIPE_JSON_DEPTH_LIMIT 4096

enum pipe_json_error {
    PIPE_JSON_OK = 0,
    PIPE_JSON_ESYNTAX,   /* not RFC 8259 JSON (incl. truncation, trailing bytes) */
    PIPE_JSON_EUTF8,     /* bytes that are not UTF-8 (overlong, surrogate, >U+10FFFF, cut) */
    PIPE_JSON_EDEPTH,    /* containers nested deeper than max_depth */
    PIPE_JSON_ENUMBER,   /* a number whose magnitude overflows a double */
    PIPE_JSON_ESTRING,   /* \u0000, a lone or mis-ordered surrogate escape, a raw control char */
    PIPE_JSON_ETOOLARGE, /* a record over its size cap (set by the splitter only) */
};

enum pipe_json_type {
    PIPE_JSON_NONE = 0,
    PIPE_JSON_OBJECT,
    PIPE_JSON_ARRAY,
    PIPE_JSON_STRING,
    PIPE_JSON_NUMBER,
    PIPE_JSON_TRUE,
    PIPE_JSON_FALSE,
    PIPE_JSON_NULL,
};

/* Scan flags. */
#define PIPE_JSON_LENIENT                                                                          \
    0x1u /* grammar + UTF-8 only: allow \u0000, lone                                               \
            surrogate escapes and huge numbers */
#define PIPE_JSON_PREFIX                                                                           \
    0x2u /* stop after the first value (and the                                                    \
            whitespace after it); bytes may follow */

/* One child of the top-level container, as seen by the member callback.
 * Pointers are into the output buffer when the scan writes one, else into
 * the input; they stay valid only until that buffer next grows. */
struct pipe_json_member {
    const char *key; /* raw bytes between the key's quotes; NULL for array elements */
    size_t key_len;
    bool key_escaped;  /* the key holds a backslash escape */
    const char *value; /* the whole value, a string with its quotes */
    size_t value_len;
    enum pipe_json_type type;
    bool value_escaped; /* a string value holds a backslash escape */
    size_t in_offset;   /* input offset of the value, for messages */
};

/* Called once per child of the top-level container, after its value has
 * been scanned. For an object member, returning true removes the member
 * (and its comma) from the output; for array elements the return value is
 * ignored. */
typedef bool (*pipe_json_member_fn)(void *arg, const struct pipe_json_member *m);

struct pipe_json_opts {
    int max_depth;                 /* <= 0: 32; capped at PIPE_JSON_DEPTH_LIMIT */
    unsigned flags;                /* PIPE_JSON_LENIENT, PIPE_JSON_PREFIX */
    pipe_json_member_fn on_member; /* optional */
    void *arg;                     /* passed to on_member */
};

/* What a scan found. Written on success and on failure. */
struct pipe_json_result {
    enum pipe_json_error err;
    size_t offset;            /* input offset of the error */
    const char *what;         /* static English description of the error, or "" */
    enum pipe_json_type type; /* of the top-level value (when known) */
    size_t end;               /* input bytes consumed (all of them unless PREFIX) */
    size_t out_len;           /* bytes appended to out */
    size_t kept;              /* top-level children left in the output */
};

/* pipe_json_scan — validates the one JSON value in in[0..len) (surrounding
 * whitespace allowed) and, if out is not NULL, appends it compacted. opts
 * may be NULL (strict, depth 32, no callback). res is always filled in.
 * Returns 0; PIPE_EPARSE when the input breaks a rule (res->err says which,
 * out unchanged); PIPE_ETOOBIG when out cannot hold len + 16 more bytes
 * (res untouched, out unchanged). */
int pipe_json_scan(const char *in, size_t len, const struct pipe_json_opts *opts,
                   struct pipe_buf *out, struct pipe_json_result *res);

/* pipe_json_unescape — decodes the raw contents of a string that a scan
 * accepted (the bytes between its quotes) into dst, which must hold n bytes,
 * or only measures it when dst is NULL. Returns the decoded length. */
size_t pipe_json_unescape(const char *raw, size_t n, char *dst);

/* pipe_json_append_string — appends s[0..n) to b as a JSON string, quotes
 * included: '"' and '\\' escaped, control bytes (NUL too) as \u00XX, the
 * rest (valid UTF-8) as is. Returns 0, PIPE_EINVAL when s is not valid UTF-8
 * or PIPE_ETOOBIG at b's cap (b unchanged on error). For writing JSON text
 * without a document tree. */
int pipe_json_append_string(struct pipe_buf *b, const char *s, size_t n);

/* pipe_json_error_name — "syntax", "utf8", "depth", "number", "string",
 * "too_large" or "ok". Never NULL. */
const char *pipe_json_error_name(enum pipe_json_error e);

/* ---- body splitting ---- */

enum pipe_body_form {
    PIPE_BODY_AUTO = 0, /* decide from the first non-whitespace byte (below) */
    PIPE_BODY_NDJSON,   /* one record per line */
    PIPE_BODY_ARRAY,    /* [ value, value, ... ] */
    PIPE_BODY_WRAPPER,  /* {"events": [ value, ... ], ...other keys ignored} */
    PIPE_BODY_SINGLE,   /* one JSON value, possibly spread over several lines */
};

/* One record handed out by pipe_body_iter_next. data points into the body. */
struct pipe_body_record {
    const char *data;
    size_t len;
    size_t offset;            /* of data within the body */
    size_t index;             /* 0-based record number within the body */
    enum pipe_json_error err; /* PIPE_JSON_ETOOLARGE for a line over the cap, else OK */
};

/* Iterator state; the caller owns it, it holds no heap memory. */
struct pipe_body_iter {
    const char *body;
    size_t len;
    size_t pos;
    size_t end;
    size_t max_record;
    size_t index;
    enum pipe_body_form form;
    bool done;
};

/* pipe_body_iter_init — prepares to walk body[0..len) (already
 * decompressed; a leading UTF-8 BOM is skipped). hint NDJSON (the client
 * said application/x-ndjson), ARRAY or WRAPPER forces that form; AUTO picks:
 *   - empty or whitespace only: no records;
 *   - '[': an array;
 *   - '{' followed by one complete JSON object and nothing but whitespace:
 *     the wrapper if it has an "events" member holding an array (the last
 *     such member wins, as in common JSON parsers), else a single record
 *     (so a pretty-printed single event works);
 *   - anything else: NDJSON (a malformed first line is then one rejected
 *     record, and the lines after it go on).
 * An array or wrapper body must be valid JSON as a whole (grammar and
 * UTF-8; elements' own envelope rules are checked per record later):
 * otherwise PIPE_EPARSE with the error and its offset in *res. NDJSON lines
 * longer than max_record bytes come out as records with err ETOOLARGE.
 * Returns 0 or PIPE_EPARSE; res is filled in either case. */
int pipe_body_iter_init(struct pipe_body_iter *it, const char *body, size_t len,
                        enum pipe_body_form hint, size_t max_record, struct pipe_json_result *res);

/* pipe_body_iter_next — the next record into *rec; false when there are no
 * more (rec untouched). */
bool pipe_body_iter_next(struct pipe_body_iter *it, struct pipe_body_record *rec);

#endif
