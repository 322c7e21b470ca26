/* reject — the one writer of rejected/ lines (SPEC §2): the events the
 * filter rejects, the records of raw/ objects it quarantines, and the lines
 * of a combined object a splitter cannot route. Every line is one JSON
 * object with its keys in sorted order, written field by field straight
 * into the caller's buffer: a body of a million bad records costs one pass
 * over its bytes and no document tree. */
#ifndef PIPE_REJECT_H
#define PIPE_REJECT_H

#include <stddef.h>
#include <stdint.h>

struct pipe_buf;

/* One rejected/ line. Members that are NULL (or 0 for line) are left out
 * of the line; message, reason and source are always written. */
struct pipe_reject {
    const char *channel;     /* the channel the record came in on */
    uint64_t line;           /* 1-based line in the source object */
    const char *message;     /* human text; bytes that are not UTF-8 become "" */
    const char *quarantine;  /* why a whole raw/ object was quarantined; then: */
    const char *raw_key;     /*   its key, */
    const char *raw_etag;    /*   its etag */
    uint64_t raw_size;       /*   and its size */
    const char *rec;         /* the original text, as "raw" when it is UTF-8, */
    size_t rec_len;          /*   else as "raw_base64" */
    const char *reason;      /* the machine-readable reason code */
    const char *received_at; /* RFC 3339, when the filter received it */
    const char *source;      /* "http", a raw/ key, a combined/ key, ... */
};

/* pipe_reject_append — appends r as one line ("...}\n") to out. Returns 0,
 * or PIPE_ETOOBIG when out's cap is reached (or another pipe_buf error); on
 * an error out is left exactly as it was. */
int pipe_reject_append(struct pipe_buf *out, const struct pipe_reject *r);

#endif
