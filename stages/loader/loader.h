/* loader — the PostgreSQL loader stage (`sluicectl load`): loader.c runs it
 * on the stage runtime; loader_pg.c is its PostgreSQL side: the event
 * tables, the load history, and loading one split file exactly once (libpq).
 *
 * The loader has no program of its own: its code is built into
 * build/stages/libloader.a and linked into sluicectl, whose `load` command
 * is loader_main, and whose `reconcile` reads the load history through
 * loader_pg_file_rows. It uses sluicectl's schema directory and DDL planner
 * (tools/sluicectl/ctl.h) for typed columns.
 *
 * Tables: one per event type (ctl_ddl_table_name in ctl.h), with typed envelope
 * columns, one typed column per top-level field the schemas declare, the
 * whole event as jsonb `data`, and the split file each row came from.
 * sluice_load_history has one row per loaded split file. */
#ifndef SLUICE_LOADER_H
#define SLUICE_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loader_pg; /* a connection: loader_pg_open / loader_pg_free */

/* A split file to load: its key, job, event type, row count from the
 * manifest, and its decompressed NDJSON bytes. */
struct loader_pg_file {
    const char *key;
    const char *job_id;
    const char *event;
    uint64_t rows;
    const char *data;
    size_t len;
};

struct loader_pg_result {
    bool already;      /* the history already had the file: nothing done */
    uint64_t inserted; /* rows inserted (the others were duplicates on id) */
    int64_t newest_ms; /* newest received_at among the inserted rows, or 0 */
};

/* loader_pg_open — connects to url (a libpq connection URI or key=value
 * string) and creates the load-history table if missing. schemas_dir, if not
 * NULL, is read for typed columns. 0, PIPE_EUNAVAIL (cannot connect),
 * PIPE_ECONFIG (a schema unreadable); the reason in loader_pg_last_error(NULL). */
int loader_pg_open(const char *url, const char *schemas_dir, struct loader_pg **out);

/* loader_pg_free — disconnects. NULL is a no-op. */
void loader_pg_free(struct loader_pg *wh);

/* loader_pg_is_loaded — whether the history lists the split file key. 0 or
 * PIPE_EUNAVAIL. */
int loader_pg_is_loaded(struct loader_pg *wh, const char *key, bool *loaded);

/* loader_pg_load_file — loads f into its event's table (created or extended
 * first) and records it in the history, in one transaction serialised per
 * file across loaders. 0 (res filled), PIPE_EUNAVAIL (the connection is gone:
 * retry later), PIPE_EIO (this file failed: bad data or SQL error, logged). */
int loader_pg_load_file(struct loader_pg *wh, const struct loader_pg_file *f,
                        struct loader_pg_result *res);

/* loader_pg_newest — received_at (Unix ms) of the newest event loaded so far,
 * by any loader; 0 before the first. 0 or PIPE_EUNAVAIL / PIPE_EIO. */
int loader_pg_newest(struct loader_pg *wh, int64_t *ms);

/* loader_pg_file_rows — for reconciliation: the rows the history recorded for
 * key (manifest count and inserted) and the rows of the event table that
 * came from it. *found is false when the file was never loaded. 0 or
 * PIPE_EUNAVAIL / PIPE_EIO. */
int loader_pg_file_rows(struct loader_pg *wh, const char *key, const char *event, bool *found,
                        uint64_t *history_rows, uint64_t *table_rows);

/* loader_main — `sluicectl load [--follow] ...`: argv[0] is the command
 * name. Loads what is pending and exits (the runtime's --once, no admin
 * port) unless --follow is given. Returns the process exit code. */
int loader_main(int argc, char **argv);

/* loader_pg_last_error — the latest failure on wh (or, with NULL, of the
 * calling thread's last loader_pg_open). */
const char *loader_pg_last_error(const struct loader_pg *wh);

#endif
