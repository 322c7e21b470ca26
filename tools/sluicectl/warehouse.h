/* warehouse — sluicectl's PostgreSQL side: the event tables, the load
 * history, and loading one split file exactly once (libpq).
 *
 * Tables: one per event type (ctl_ddl_table_name in ctl.h), with typed envelope
 * columns, one typed column per top-level field the schemas declare, the
 * whole event as jsonb `data`, and the split file each row came from.
 * sluice_load_history has one row per loaded split file. */
#ifndef SLUICE_CTL_WAREHOUSE_H
#define SLUICE_CTL_WAREHOUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ctl_wh; /* a connection: ctl_wh_open / ctl_wh_free */

/* A split file to load: its key, job, event type, row count from the
 * manifest, and its decompressed NDJSON bytes. */
struct ctl_wh_file {
    const char *key;
    const char *job_id;
    const char *event;
    uint64_t rows;
    const char *data;
    size_t len;
};

struct ctl_wh_result {
    bool already;      /* the history already had the file: nothing done */
    uint64_t inserted; /* rows inserted (the others were duplicates on id) */
    int64_t newest_ms; /* newest received_at among the inserted rows, or 0 */
};

/* ctl_wh_open — connects to url (a libpq connection URI or key=value
 * string) and creates the load-history table if missing. schemas_dir, if not
 * NULL, is read for typed columns. 0, PIPE_EUNAVAIL (cannot connect),
 * PIPE_ECONFIG (a schema unreadable); the reason in ctl_wh_last_error(NULL). */
int ctl_wh_open(const char *url, const char *schemas_dir, struct ctl_wh **out);

/* ctl_wh_free — disconnects. NULL is a no-op. */
void ctl_wh_free(struct ctl_wh *wh);

/* ctl_wh_is_loaded — whether the history lists the split file key. 0 or
 * PIPE_EUNAVAIL. */
int ctl_wh_is_loaded(struct ctl_wh *wh, const char *key, bool *loaded);

/* ctl_wh_load_file — loads f into its event's table (created or extended
 * first) and records it in the history, in one transaction serialised per
 * file across loaders. 0 (res filled), PIPE_EUNAVAIL (the connection is gone:
 * retry later), PIPE_EIO (this file failed: bad data or SQL error, logged). */
int ctl_wh_load_file(struct ctl_wh *wh, const struct ctl_wh_file *f, struct ctl_wh_result *res);

/* ctl_wh_newest — received_at (Unix ms) of the newest event loaded so far,
 * by any loader; 0 before the first. 0 or PIPE_EUNAVAIL / PIPE_EIO. */
int ctl_wh_newest(struct ctl_wh *wh, int64_t *ms);

/* ctl_wh_file_rows — for reconciliation: the rows the history recorded for
 * key (manifest count and inserted) and the rows of the event table that
 * came from it. *found is false when the file was never loaded. 0 or
 * PIPE_EUNAVAIL / PIPE_EIO. */
int ctl_wh_file_rows(struct ctl_wh *wh, const char *key, const char *event, bool *found,
                     uint64_t *history_rows, uint64_t *table_rows);

/* ctl_wh_last_error — the latest failure on wh (or, with NULL, of the
 * calling thread's last ctl_wh_open). */
const char *ctl_wh_last_error(const struct ctl_wh *wh);

#endif
