/* ctl — what the sluicectl command files share: each command is one
 * `int ctl_<name>_main(int argc, char **argv)` listed in main.c's table
 * (`load` is the loader stage's loader_main, stages/loader/loader.h).
 * argv[0] is the command name; the return value is the process exit code. */
#ifndef SLUICE_CTL_H
#define SLUICE_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"
#endif

/* Exit codes common to every command. */
enum {
    CTL_EXIT_OK = 0,
    CTL_EXIT_FAIL = 1,  /* the command ran and failed */
    CTL_EXIT_USAGE = 2, /* bad flags or arguments; nothing was done */
};

/* ctl_exit_from_conf — the exit code for a pipe_conf_load result that is not
 * 0: PIPE_EHELP (help or version printed) -> 0, anything else -> 2. */
int ctl_exit_from_conf(int rc);

/* ctl_parse_rate — parses a fraction "0.05" in [0, 1] into *out (written
 * only on success); prints "sluicectl NAME: --FLAG ..." to stderr and
 * returns PIPE_ECONFIG when s is not one. NULL s leaves *out unchanged. */
int ctl_parse_rate(const char *cmd, const char *flag, const char *s, double *out);

/* ctl_store_open — pipe_store_open(url) for command cmd; on failure prints
 * "sluicectl CMD: cannot open the store: WHY" to stderr and returns the
 * error (*out untouched). */
struct pipe_store;
int ctl_store_open(const char *cmd, const char *url, struct pipe_store **out);

/* ctl_progress_clear — erases the progress line a command keeps on a
 * terminal's stderr, if one is shown (*shown, then false), so that the next
 * message starts on a clean line. */
void ctl_progress_clear(bool *shown);

/* The commands. */
int ctl_gen_main(int argc, char **argv);
int ctl_send_main(int argc, char **argv);
int ctl_ls_main(int argc, char **argv);
int ctl_cat_main(int argc, char **argv);
int ctl_status_main(int argc, char **argv);
int ctl_replay_main(int argc, char **argv);
int ctl_sweep_main(int argc, char **argv);
int ctl_reconcile_main(int argc, char **argv);
int ctl_schema_main(int argc, char **argv);
int ctl_redrive_main(int argc, char **argv);
int ctl_warehouse_main(int argc, char **argv);

/* ---- schema directories (schema_dir.c) ----------------------------------------
 * The schema directory holds <dir>/<event>/<N>.json, one JSON Schema subset
 * document per event type and version (docs/schema-tools.md). Every command
 * reads it with libpipe's loader (pipe_schema_set_load), strictly: what the
 * filter would skip with a warning is an error here (schema_dir.c). */

struct pipe_schema_set;

/* ctl_schema_dir_load — pipe_schema_set_load of dir in strict mode with a
 * stand-in redaction key (sluicectl compiles, it never hashes). 0 and *out
 * (pipe_schema_set_free), or PIPE_EINVAL / -errno with err "PATH: why". */
int ctl_schema_dir_load(const char *dir, struct pipe_schema_set **out, char *err, size_t errlen);

struct pipe_schema;

/* ctl_schema_file_load — pipe_schema_load_file of one file given on the
 * command line, as the event type of its directory when that is one
 * ("event" otherwise) at the version its name gives (1 otherwise). 0 and
 * *out (pipe_schema_free), or PIPE_EINVAL / -errno with err "PATH: why". */
int ctl_schema_file_load(const char *path, struct pipe_schema **out, char *err, size_t errlen);

/* ctl_schema_docs_newest — the documents of the n versions v (ascending)
 * into docs, newest first, at most max of them (what the DDL planner takes);
 * returns how many. */
size_t ctl_schema_docs_newest(const struct pipe_schema *const *v, size_t n, const json_t **docs,
                              size_t max);

/* ---- compatibility (schema_compat.c) ---- */

enum ctl_compat_mode {
    CTL_COMPAT_BACKWARD = 1, /* readers using NEW read data written with OLD */
    CTL_COMPAT_FORWARD = 2,  /* readers using OLD read data written with NEW */
    CTL_COMPAT_FULL = 3,     /* both */
};

/* Called once per breaking change: path is the data path ("properties.amount",
 * "items[]", "(root)"), change says what changed from OLD to NEW, consequence
 * which readers may fail. */
typedef void (*ctl_compat_fn)(void *arg, const char *path, const char *change,
                              const char *consequence);

/* ctl_schema_compat — compares two checked schema documents under mode and
 * calls fn for every breaking change (notes that are not breaking, such as a
 * changed redact annotation, go to note_fn when it is not NULL). Returns the
 * number of breaking changes. */
size_t ctl_schema_compat(const json_t *old_doc, const json_t *new_doc, enum ctl_compat_mode mode,
                         ctl_compat_fn fn, ctl_compat_fn note_fn, void *arg);

/* ---- generated definitions (schema_gen.c) ---- */

/* ctl_openapi_build — the OpenAPI 3.0 document of the ingest API with every
 * event type of set (title and server may be NULL). Returns a new reference
 * (caller decrefs), or NULL with err set when two component names collide. */
json_t *ctl_openapi_build(const struct pipe_schema_set *set, const char *title, const char *server,
                          char *err, size_t errlen);

/* ctl_openapi_sdk — adds the SDK drop-in endpoints (Segment / RudderStack,
 * Snowplow) to paths, their body schemas to schemas and the WriteKey scheme
 * to security (all borrowed objects of the document; openapi_sdk.c). */
void ctl_openapi_sdk(json_t *paths, json_t *schemas, json_t *security);

/* One column of an event table. */
struct ctl_ddl_column {
    char *name; /* identifier, unquoted, as the dialect will store it */
    char *key;  /* top-level member of the event it holds; NULL: the whole event */
    char *type; /* the dialect's type */
    bool not_null;
};

struct ctl_ddl_table {
    char *name; /* table identifier, unquoted */
    struct ctl_ddl_column *cols;
    size_t n;
};

#define CTL_DDL_NAME_MAX 64 /* a table name: PostgreSQL's 63 bytes + NUL */

/* ctl_ddl_table_name — the table of an event type: lower case, '.' and '-'
 * become '_', and a name past 63 bytes is cut to 54 and given '_' and 8 hex
 * digits of its hash. out holds CTL_DDL_NAME_MAX bytes. */
void ctl_ddl_table_name(const char *event, char out[CTL_DDL_NAME_MAX]);

/* ctl_ddl_dialect_valid — true for "snowflake", "redshift", "postgres",
 * "bigquery". */
bool ctl_ddl_dialect_valid(const char *dialect);

/* ctl_ddl_plan — the table of event type event in dialect: the envelope
 * columns, one column per top-level property declared by any of the n
 * schemas (newest first: the newest declaration decides a column's type;
 * redact "remove" fields have none) and the whole event as "data". Fills
 * *out (release with ctl_ddl_table_cleanup). PIPE_EINVAL with err set for an
 * unknown dialect or two properties that map to one column name. */
int ctl_ddl_plan(const char *dialect, const char *event, const json_t *const *schemas, size_t n,
                 struct ctl_ddl_table *out, char *err, size_t errlen);

/* ctl_ddl_table_cleanup — frees t's contents and zeroes it. */
void ctl_ddl_table_cleanup(struct ctl_ddl_table *t);

/* ctl_ddl_quote — writes ident quoted for dialect ("x""y" or `x`). */
void ctl_ddl_quote(FILE *out, const char *dialect, const char *ident);

/* ctl_ddl_table — writes the CREATE TABLE IF NOT EXISTS statement of
 * ctl_ddl_plan to out, the table qualified by ns (schema or dataset) when
 * ns is not NULL. 0, or PIPE_EINVAL with err set. */
int ctl_ddl_table(FILE *out, const char *dialect, const char *ns, const char *event,
                  const json_t *const *schemas, size_t n, char *err, size_t errlen);

#endif
