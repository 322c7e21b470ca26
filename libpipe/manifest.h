/* manifest — the JSON documents stages leave behind: combine job descriptors
 * (jobs/combine/), combiner manifests (manifests/combined/) and splitter
 * manifests (manifests/split/, which double as Redshift COPY manifests), each
 * with a conservation ledger. Output is deterministic (fixed key order,
 * compact, one trailing newline, no clock reads) so that a re-run stage writes
 * byte-identical documents. Parsing treats input as hostile: anything missing
 * or mistyped is PIPE_EPARSE, never a crash.
 *
 * Ownership: every string and array in these structs belongs to the struct
 * and is freed by its _cleanup; fill them with pipe_strdup or the _add_
 * helpers. to_json only reads the struct. */
#ifndef PIPE_MANIFEST_H
#define PIPE_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libpipe/buf.h"

#define PIPE_MANIFEST_VERSION 1
#define PIPE_MANIFEST_KEY_MAX 1024 /* longest key, etag or url accepted */

/* events in = events out + rejected + duplicates dropped */
struct pipe_ledger {
    uint64_t in, out, rejected, duplicates;
};

/* pipe_ledger_balanced — true if in == out + rejected + duplicates (a sum
 * that overflows is unbalanced). */
bool pipe_ledger_balanced(const struct pipe_ledger *l);

/* An input object: key, size in bytes, etag; events is used by the combined
 * manifest only (job descriptors do not know it yet). */
struct pipe_manifest_object {
    char *key;
    uint64_t size;
    char *etag;
    uint64_t events;
};

/* jobs/combine/<job-id>.json */
struct pipe_manifest_job {
    char *job_id;
    unsigned generation;
    int64_t created_ms;
    char *output_key; /* target combined/ key */
    struct pipe_manifest_object *inputs;
    size_t n_inputs;
};

/* manifests/combined/<job-id>.json */
struct pipe_manifest_combined {
    char *job_id;
    unsigned generation;
    char *output_key;
    uint64_t events;             /* lines written to output_key */
    uint64_t bytes;              /* size of the stored (compressed) object */
    uint64_t uncompressed_bytes; /* NDJSON bytes before compression */
    char checksum[17];           /* XXH3-64 of the stored object, 16 lowercase hex */
    struct pipe_manifest_object *inputs;
    size_t n_inputs;
    struct pipe_ledger ledger;
};

struct pipe_manifest_split_output {
    char *key;
    char *event;
    char dt[11]; /* YYYY-MM-DD */
    char hr[3];  /* HH */
    uint64_t rows;
    uint64_t bytes; /* stored (compressed) size, = COPY content_length */
};

/* manifests/split/<job-id>.json. The JSON also carries "entries" in Redshift
 * COPY manifest form, one per output: url = url_prefix + key (url_prefix is
 * e.g. "s3://bucket/root/"), mandatory, meta.content_length = bytes. They are
 * derived from outputs on writing and checked against them on parsing. */
struct pipe_manifest_split {
    char *job_id;
    unsigned generation;
    char *input_key;  /* the combined/ object */
    char *url_prefix; /* required; "" gives entries with bare keys */
    uint64_t duplicates_dropped;
    struct pipe_manifest_split_output *outputs;
    size_t n_outputs;
    struct pipe_ledger ledger;
};

/* _init zeroes; _cleanup frees everything the struct owns and zeroes it. */
void pipe_manifest_job_init(struct pipe_manifest_job *m);
void pipe_manifest_job_cleanup(struct pipe_manifest_job *m);
void pipe_manifest_combined_init(struct pipe_manifest_combined *m);
void pipe_manifest_combined_cleanup(struct pipe_manifest_combined *m);
void pipe_manifest_split_init(struct pipe_manifest_split *m);
void pipe_manifest_split_cleanup(struct pipe_manifest_split *m);

/* _add_ helpers append an entry holding copies of the strings (etag may be
 * NULL for ""). */
void pipe_manifest_job_add_input(struct pipe_manifest_job *m, const char *key, uint64_t size,
                                 const char *etag);
void pipe_manifest_combined_add_input(struct pipe_manifest_combined *m, const char *key,
                                      uint64_t size, const char *etag, uint64_t events);
void pipe_manifest_split_add_output(struct pipe_manifest_split *m, const char *key,
                                    const char *event, const char *dt, const char *hr,
                                    uint64_t rows, uint64_t bytes);

/* _to_json — replaces out's contents with the document. PIPE_EINVAL (out
 * unchanged) if a string is NULL or not UTF-8, job_id is not a valid name
 * (pipe_keys_name_valid), created_ms is negative or a number does not fit
 * JSON's signed 64-bit range; PIPE_ETOOBIG past out->max. */
int pipe_manifest_job_to_json(const struct pipe_manifest_job *m, struct pipe_buf *out);
int pipe_manifest_combined_to_json(const struct pipe_manifest_combined *m, struct pipe_buf *out);
int pipe_manifest_split_to_json(const struct pipe_manifest_split *m, struct pipe_buf *out);

/* _from_json — parses n bytes of untrusted JSON into *m (which the caller
 * then owns and releases with _cleanup). Unknown fields are ignored.
 * PIPE_EPARSE (m untouched) for invalid JSON, a wrong "version", a missing or
 * mistyped field, a negative count, an over-long string or one holding NUL,
 * a bad checksum/dt/hr/event, or entries that disagree with outputs. */
int pipe_manifest_job_from_json(const char *json, size_t n, struct pipe_manifest_job *m);
int pipe_manifest_combined_from_json(const char *json, size_t n, struct pipe_manifest_combined *m);
int pipe_manifest_split_from_json(const char *json, size_t n, struct pipe_manifest_split *m);

#endif
