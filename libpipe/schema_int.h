/* schema_int — the compiled form of a schema and the layout of a set,
 * shared by the schema modules and by nothing else. The modules form layers,
 * each calling only those below it:
 *   schema_load.c     directories and files -> sets (the one loader)
 *   schema_compile.c  one document -> compiled tree (defaults checked)
 *   schema_check.c    events checked beside a compiled tree; set lookups
 *   schema_set.c      a set's index: lookup by event type and version */
#ifndef PIPE_SCHEMA_INT_H
#define PIPE_SCHEMA_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "libpipe/buf.h"
#include "libpipe/hset.h"
#include "libpipe/ndjson.h"
#include "libpipe/schema.h"

/* JSON types a node accepts (its "type"); 0 means any. */
enum {
    SCH_T_OBJECT = 1u << 0,
    SCH_T_ARRAY = 1u << 1,
    SCH_T_STRING = 1u << 2,
    SCH_T_NUMBER = 1u << 3,
    SCH_T_INTEGER = 1u << 4,
    SCH_T_BOOLEAN = 1u << 5,
    SCH_T_NULL = 1u << 6,
};

/* Which bounds a node has. */
enum {
    SCH_HAS_MIN = 1u << 0,
    SCH_HAS_MAX = 1u << 1,
    SCH_HAS_MINLEN = 1u << 2,
    SCH_HAS_MAXLEN = 1u << 3,
};

enum sch_redact { SCH_REDACT_NONE = 0, SCH_REDACT_REMOVE, SCH_REDACT_HASH };

#define SCH_MAX_PROPS   1024    /* members declared (or required) per object */
#define SCH_MAX_NAME    256     /* bytes in a declared property name */
#define SCH_MAX_DEPTH   64      /* nesting of schemas inside a document */
#define SCH_MATCH_LIMIT 100000u /* pcre2 backtracking budget per match */
#define SCH_PATH_MAX    200     /* bytes of a path in a message */

/* One value of an "enum", kept in the form the checker compares. */
struct sch_enum {
    int type;   /* enum pipe_json_type; TRUE/FALSE/NULL carry nothing else */
    double num; /* NUMBER */
    char *str;  /* STRING, decoded (may hold no NUL: the scanner refuses \u0000) */
    size_t len;
    json_t *json; /* OBJECT and ARRAY: compared with json_equal */
};

/* A member an object schema knows: declared in "properties", named in
 * "required", or both. */
struct sch_prop {
    char *name; /* decoded */
    size_t len;
    struct sch_node *node; /* NULL: any value (required but not declared) */
    bool required;
};

struct sch_node {
    unsigned types; /* SCH_T_*; 0 = any */
    unsigned has;   /* SCH_HAS_* */
    double min, max;
    char min_text[32], max_text[32]; /* as messages print them */
    size_t min_len, max_len;         /* in code points */
    pcre2_code *re;
    bool jit; /* re was JIT-compiled */
    char *pattern;
    struct sch_enum *enums;
    size_t n_enums;         /* 0: no enum */
    struct sch_prop *props; /* sorted by (len, bytes) for bsearch */
    size_t n_props;
    bool has_required, has_defaults;
    /* Indices into props: members with a default in the order of
     * "properties", required members in the order of "required". */
    size_t *def_idx, n_def;
    size_t *req_idx, n_req;
    bool closed;                 /* additionalProperties: false */
    struct sch_node *additional; /* additionalProperties as a schema */
    struct sch_node *items;
    char *def; /* "default", compact JSON, or NULL */
    size_t def_len;
    enum sch_redact redact;
    bool redact_below; /* this node or one under it redacts */
    bool walk_object;  /* object members need looking at */
    bool root;         /* the event object: envelope members always allowed */
};

struct pipe_schema {
    char *event;
    int version;
    char *file;
    json_t *doc;
    struct sch_node *root;
    unsigned char key[64]; /* hash key, when the schema hashes */
    size_t key_len;
    bool redacts, hashes;
};

/* All versions of one event type, ascending. */
struct sch_type {
    const char *name; /* the first schema's event */
    size_t len;
    struct pipe_schema **v;
    size_t n;
};

struct pipe_schema_set {
    atomic_int refs;
    struct pipe_schema **all; /* by type, then version */
    size_t n_all;
    struct sch_type *types;
    size_t n_types;
    struct pipe_hset table; /* sch_type by name */
};

/* A checker's state (schema_check.c walks and records edits; schema_apply.c
 * applies them and owns the entry points). */
struct sch_edit {
    size_t off, del;         /* bytes of the input replaced */
    size_t ins_off, ins_len; /* by these bytes of ck->ins */
};

struct pipe_schema_checker {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    struct sch_edit *edits;
    size_t n_edits, cap_edits;
    struct pipe_buf ins;     /* text the edits insert */
    struct pipe_buf tmp;     /* decoded strings */
    struct pipe_buf compact; /* redact_record: the record compacted */
    struct pipe_buf redo;    /* redact_record: between versions */
};

/* The top-level members the schema step needs before it can pick a schema. */
struct sch_top {
    const char *ev, *ev_end; /* the "event" value token */
    int n_ev;
    const char *ver, *ver_end; /* the "schema_version" value token */
    int n_ver;
};

/* pipe__schema_run — one walk of the compact JSON object obj against the
 * node root of s (s NULL when checking a default at load time); the edits
 * are left in ck. redact_only skips checks and defaults. Sets *failed when
 * a rule is broken (the rule in msg); when seen is non-NULL, records the
 * top-level "schema_version" members met. Returns 0, PIPE_EPARSE for
 * malformed input or PIPE_ETOOBIG. */
int pipe__schema_run(const struct pipe_schema *s, const struct sch_node *root,
                     struct pipe_schema_checker *ck, const char *obj, size_t len, bool redact_only,
                     char *msg, size_t msglen, bool *failed, struct sch_top *seen);

/* pipe__schema_scan_top — the "event" and "schema_version" members of the
 * compact object obj into *t. Returns 0 or PIPE_EPARSE. */
int pipe__schema_scan_top(const char *obj, size_t len, struct sch_top *t);

/* pipe__schema_top_event — the decoded "event" string of t into buf
 * (NUL-terminated, its length in *len); false when it is missing, repeated,
 * not a string or does not fit in cap. */
bool pipe__schema_top_event(const struct sch_top *t, char *buf, size_t cap, size_t *len);

/* pipe__schema_set_new — a set (reference count 1) of the n schemas in all
 * (taken over, all may be NULL when n is 0), sorted and indexed. Freed by
 * pipe_schema_set_free (schema_load.c), which frees the schemas too. */
struct pipe_schema_set *pipe__schema_set_new(struct pipe_schema **all, size_t n);

/* pipe__schema_set_index_free — frees the index of s (not its schemas). */
void pipe__schema_set_index_free(struct pipe_schema_set *s);

/* pipe__schema_value_ok — checks the compact JSON value v[0..n) against
 * node n (used at load time on every "default"). Returns true if it passes;
 * else false with the rule broken in msg. */
bool pipe__schema_value_ok(const struct sch_node *node, const char *v, size_t n, char *msg,
                           size_t msglen);

#endif
