/* schema — per-event-type schemas: a JSON Schema subset loaded from a
 * directory, compiled once, and applied by the filter to every event of a
 * type that has one (validation, defaults, redaction). docs/schemas.md is
 * the format.
 *
 * A directory holds <dir>/<event>/<N>.json, one file per event type and
 * version. pipe_schema_set_load (the one loader: the filter and every
 * sluicectl command read schemas through it) parses and compiles all of them into an
 * immutable, reference-counted set that any number of threads may read at
 * once; a reload builds a new set and swaps the pointer. Checking works on
 * the compacted bytes the envelope checks produced (no DOM per event): a
 * checker (one per thread, it holds scratch space only) walks the event
 * beside the compiled schema and, only when a default or a redaction changes
 * something, writes a rewritten copy. */
#ifndef PIPE_SCHEMA_H
#define PIPE_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "libpipe/buf.h"
#include "libpipe/event.h"

struct pipe_schema;         /* one compiled schema: an event type at one version */
struct pipe_schema_set;     /* every schema of a directory */
struct pipe_schema_checker; /* per-thread scratch for checking */

#define PIPE_SCHEMA_MAX_VERSION 999999999  /* versions are 1..this */
#define PIPE_SCHEMA_FILE_MAX    (1u << 20) /* bytes in one schema file */
#define PIPE_SCHEMA_HASH_HEX    32         /* hex digits of a "hash" redaction */

/* What compiling needs besides the documents. */
struct pipe_schema_opts {
    /* Key of the "hash" redaction (BLAKE2b, keyed); 16..64 bytes. A schema
     * using redact "hash" fails to load without one. Copied. */
    const unsigned char *hash_key;
    size_t hash_key_len;
    /* How pipe_schema_set_load treats an entry that does not fit the
     * layout. false (the filter): it is skipped with a warning in the log.
     * true (sluicectl, a check run in CI): a .json file not named <N>.json,
     * an <N>.json that is not a regular file or a directory whose name is
     * not an event type fails the load; other files are skipped silently. */
    bool strict;
};

/* ---- compiling and loading ---- */

/* pipe_schema_new — compiles one schema document for event type `event`
 * (any non-empty name) at `version` (1..PIPE_SCHEMA_MAX_VERSION). `file`
 * only names the source in messages (NULL: "<schema>"). opts may be NULL (no
 * hash key). On failure writes "<file>: <path>: <problem>" to err (e.g.
 * "checkout/2.json: properties.amount: unknown keyword \"maxValue\"") and
 * returns PIPE_EINVAL; on success returns 0 and *out, freed with
 * pipe_schema_free. doc is borrowed (the schema keeps its own reference). */
int pipe_schema_new(const json_t *doc, const char *event, int version, const char *file,
                    const struct pipe_schema_opts *opts, struct pipe_schema **out, char *err,
                    size_t errlen);

/* pipe_schema_free — frees a schema from pipe_schema_new; NULL is a no-op.
 * Never call it on a schema that belongs to a set. */
void pipe_schema_free(struct pipe_schema *s);

/* pipe_schema_set_load — loads every <dir>/<event>/<N>.json into a new set
 * (reference count 1): <event> passes pipe_event_type_valid, N is 1..
 * PIPE_SCHEMA_MAX_VERSION without leading zeros, a file is at most
 * PIPE_SCHEMA_FILE_MAX bytes. Names starting with a dot are skipped
 * silently, other entries that do not fit the layout as opts->strict says;
 * an empty directory gives an empty set. Any unreadable file, JSON error or
 * schema error fails the whole load: err gets one line naming the file and,
 * for a schema error, the path inside it ("DIR/page_view/1.json:7:3: ..."
 * for JSON). Returns 0, PIPE_EINVAL (a bad schema), PIPE_ETOOBIG (a file
 * over the limit) or -errno (unreadable); *out only on success. opts may be
 * NULL. */
int pipe_schema_set_load(const char *dir, const struct pipe_schema_opts *opts,
                         struct pipe_schema_set **out, char *err, size_t errlen);

/* pipe_schema_load_file — reads, parses and compiles the one file path as
 * event type event at version (what pipe_schema_set_load does for each
 * file, same limits and messages). 0 and *out (pipe_schema_free), or
 * PIPE_EINVAL / PIPE_ETOOBIG / -errno with err set. */
int pipe_schema_load_file(const char *path, const char *event, int version,
                          const struct pipe_schema_opts *opts, struct pipe_schema **out, char *err,
                          size_t errlen);

/* pipe_schema_file_version — N for a file name "<N>.json" (N in
 * 1..PIPE_SCHEMA_MAX_VERSION, no sign, no leading zero), else 0. */
int pipe_schema_file_version(const char *name);

/* pipe_schema_set_ref — takes one more reference (any thread); returns s. */
struct pipe_schema_set *pipe_schema_set_ref(struct pipe_schema_set *s);

/* pipe_schema_set_free — drops one reference; the last one frees the set
 * and every schema in it. NULL is a no-op. */
void pipe_schema_set_free(struct pipe_schema_set *s);

/* ---- looking schemas up ---- */

/* pipe_schema_set_count — how many schemas (files) the set holds. */
size_t pipe_schema_set_count(const struct pipe_schema_set *s);

/* pipe_schema_set_at — the i-th schema, ordered by event type (bytewise)
 * then version (ascending); NULL past the end. Borrowed from the set. */
const struct pipe_schema *pipe_schema_set_at(const struct pipe_schema_set *s, size_t i);

/* pipe_schema_lookup — the schema of event type event[0..len) at version
 * (0: the highest version). Returns 0 and *out (borrowed from the set);
 * PIPE_ENOTFOUND when the type has no schema at all; PIPE_EINVAL when it
 * has schemas but not that version. */
int pipe_schema_lookup(const struct pipe_schema_set *s, const char *event, size_t len, int version,
                       const struct pipe_schema **out);

/* pipe_schema_set_types — how many event types the set has schemas for. */
size_t pipe_schema_set_types(const struct pipe_schema_set *s);

/* pipe_schema_set_type — the versions (ascending, *n of them) of the i-th
 * event type, types ordered bytewise; NULL and *n = 0 past the end.
 * Borrowed from the set. */
const struct pipe_schema *const *pipe_schema_set_type(const struct pipe_schema_set *s, size_t i,
                                                      size_t *n);

/* pipe_schema_versions — the versions (ascending, *n of them) of event type
 * event[0..len); NULL and *n = 0 for a type the set does not have. */
const struct pipe_schema *const *pipe_schema_versions(const struct pipe_schema_set *s,
                                                      const char *event, size_t len, size_t *n);

/* Accessors, all borrowed from the schema. */
const char *pipe_schema_event(const struct pipe_schema *s);
int pipe_schema_version(const struct pipe_schema *s);
const char *pipe_schema_file(const struct pipe_schema *s);  /* as given at load, for messages */
const json_t *pipe_schema_doc(const struct pipe_schema *s); /* the document as loaded */
/* pipe_schema_redacts — whether any field has a redact annotation. */
bool pipe_schema_redacts(const struct pipe_schema *s);

/* ---- checking events ---- */

/* pipe_schema_checker_new — scratch space for checking on one thread
 * (reusable across sets and schemas). Freed with pipe_schema_checker_free
 * (NULL is a no-op). */
struct pipe_schema_checker *pipe_schema_checker_new(void);
void pipe_schema_checker_free(struct pipe_schema_checker *ck);

/* The outcome of a check. */
struct pipe_schema_result {
    /* PIPE_REASON_OK, PIPE_REASON_SCHEMA_VIOLATION,
     * PIPE_REASON_UNKNOWN_SCHEMA_VERSION or PIPE_REASON_UNKNOWN_EVENT_TYPE
     * (the set has no schema for the type: the caller decides whether that
     * is a rejection). */
    enum pipe_reason reason;
    /* "" when OK; else "<path>: <rule>" for a violation, e.g.
     * "properties.amount: above maximum 1e9". Never holds a field's value
     * (values may be personal data); it may hold field names. */
    char message[256];
    bool changed; /* defaults or redaction rewrote the event: out holds it */
};

/* pipe_schema_apply — checks the compact JSON object obj[0..len) (as
 * pipe_event_process writes it, without the newline) against schema s. The
 * first violation in document order wins (members left to right; at the end
 * of each object, missing required members). Defaults fill missing members
 * of objects that are present, then redaction removes or hashes annotated
 * fields. When that changed anything, the rewritten object (compact,
 * members in their original order, defaults at the end of their object)
 * is appended to out and res->changed is set; otherwise out is untouched.
 * obj must be valid UTF-8 (patterns are matched without a second check).
 * Returns 0 (res says what happened), PIPE_EPARSE when obj is not a compact
 * JSON object, PIPE_ETOOBIG when out cannot take the result. */
int pipe_schema_apply(const struct pipe_schema *s, struct pipe_schema_checker *ck, const char *obj,
                      size_t len, struct pipe_buf *out, struct pipe_schema_result *res);

/* pipe_schema_check — the filter's step: looks up the schema of the
 * event's type and version ("schema_version": a positive integer, else the
 * highest) in set and runs pipe_schema_apply on the compact object
 * obj[0..len). event[0..event_len) is the event's type when the caller
 * knows it (pipe_event_result.event), which makes events of types without
 * a schema cost one hash lookup; NULL to have it read from obj. A type
 * without schemas gives UNKNOWN_EVENT_TYPE; a schema_version that is not a
 * positive integer, appears twice, or that the type lacks gives
 * UNKNOWN_SCHEMA_VERSION. set may be NULL (every type is unknown). obj must
 * be valid UTF-8 (as the envelope step guarantees). Returns as
 * pipe_schema_apply. */
int pipe_schema_check(const struct pipe_schema_set *set, struct pipe_schema_checker *ck,
                      const char *obj, size_t len, const char *event, size_t event_len,
                      struct pipe_buf *out, struct pipe_schema_result *res);

/* pipe_schema_redact_record — for rejected events: if rec[0..len) (any
 * JSON text; it need not pass the envelope checks) is an object whose
 * "event" names a type with schemas, appends to out the object compacted
 * with the redactions of its schema applied — of the version it names, or
 * of every version of the type when it names none that exists — and returns
 * 1. Returns 0 (out untouched) when nothing had to be removed or hashed or
 * the record cannot be parsed, PIPE_ETOOBIG when out is full. Nothing is
 * validated. */
int pipe_schema_redact_record(const struct pipe_schema_set *set, struct pipe_schema_checker *ck,
                              const char *rec, size_t len, struct pipe_buf *out);

#endif
