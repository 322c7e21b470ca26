/* loader_pg — the loader's PostgreSQL side: loading split files exactly
 * once (see loader.h). A file is staged with COPY into a temporary table and moved
 * into its event table by one INSERT ... ON CONFLICT (id) DO NOTHING, in the
 * same transaction as its load-history row: the history and the table can
 * never disagree, whatever moment the loader dies at. */
#include "stages/loader/loader.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/err.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/schema.h"
#include "tools/sluicectl/ctl.h"

#define WH_SQL_MAX      (1u << 20)
#define WH_COPY_STEP    (1u << 20) /* bytes per PQputCopyData call */
#define WH_VERSIONS_MAX 256        /* schema versions of one type used for columns */

static const char history_ddl[] =
    "CREATE TABLE IF NOT EXISTS sluice_load_history ("
    " file text PRIMARY KEY, job_id text NOT NULL, event text NOT NULL,"
    " table_name text NOT NULL, rows bigint NOT NULL, inserted bigint NOT NULL,"
    " newest_received_at timestamptz, loaded_at timestamptz NOT NULL DEFAULT now())";

struct wh_table {
    char name[CTL_DDL_NAME_MAX];
};

struct loader_pg {
    PGconn *conn;
    struct pipe_schema_set *schemas; /* NULL without a schema directory */
    struct wh_table *ensured;        /* tables created/extended by this connection */
    size_t n_ensured, cap_ensured;
    struct pipe_buf sql;
    char err[1024];
};

static _Thread_local char open_err[1024];

static void wh_fail(struct loader_pg *wh, const char *what, const PGresult *res)
{
    const char *msg = res ? PQresultErrorMessage(res) : "";
    if (!*msg)
        msg = PQerrorMessage(wh->conn);
    snprintf(wh->err, sizeof wh->err, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

/* The code for a failed statement: the connection gone, or this statement. */
static int wh_rc(const struct loader_pg *wh)
{
    return PQstatus(wh->conn) == CONNECTION_OK ? PIPE_EIO : PIPE_EUNAVAIL;
}

static int wh_exec(struct loader_pg *wh, const char *sql, int n, const char *const *params);

/* What each session needs: quiet notices and the staging table (temporary,
 * so it is private to the session and goes with it). */
static int session_setup(struct loader_pg *wh)
{
    PQclear(PQexec(wh->conn, "SET client_min_messages = warning"));
    return wh_exec(wh, "CREATE TEMP TABLE IF NOT EXISTS sluice_stage (line text)", 0, NULL);
}

/* Reconnects a broken connection (a restarted server); forgets the tables
 * it had ensured, to look again. */
static int wh_alive(struct loader_pg *wh)
{
    if (PQstatus(wh->conn) == CONNECTION_OK)
        return 0;
    PQreset(wh->conn);
    wh->n_ensured = 0;
    if (PQstatus(wh->conn) != CONNECTION_OK) {
        wh_fail(wh, "reconnect", NULL);
        return PIPE_EUNAVAIL;
    }
    return session_setup(wh);
}

/* Runs a statement without results; params may be NULL. */
static int wh_exec(struct loader_pg *wh, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(wh->conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        wh_fail(wh, sql, res);
        rc = wh_rc(wh);
    }
    PQclear(res);
    return rc;
}

/* Runs a query that returns rows; params may be NULL. 0 with *out its
 * result, which the caller PQclears; on failure the reason is recorded
 * under what and the code of a failed statement returned (*out untouched). */
static int wh_query(struct loader_pg *wh, const char *what, const char *sql, int n,
                    const char *const *params, PGresult **out)
{
    PGresult *res = PQexecParams(wh->conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        wh_fail(wh, what, res);
        PQclear(res);
        return wh_rc(wh);
    }
    *out = res;
    return 0;
}

/* Whether the load history lists the split file key. */
static int history_has(struct loader_pg *wh, const char *key, bool *listed)
{
    PGresult *r;
    int rc = wh_query(wh, "history lookup", "SELECT 1 FROM sluice_load_history WHERE file = $1", 1,
                      &key, &r);
    if (rc == 0) {
        *listed = PQntuples(r) > 0;
        PQclear(r);
    }
    return rc;
}

/* ---- tables from the schemas ------------------------------------------ */

/* The postgres table plan of event: envelope columns, the columns of the
 * fields its schemas declare (none without schemas), data, _file. */
static int table_plan(struct loader_pg *wh, const char *event, struct ctl_ddl_table *plan,
                      const json_t **docs, size_t *n_docs)
{
    size_t n;
    const struct pipe_schema *const *v =
        pipe_schema_versions(wh->schemas, event, strlen(event), &n);
    *n_docs = ctl_schema_docs_newest(v, n, docs, WH_VERSIONS_MAX);
    char err[256];
    int rc = ctl_ddl_plan("postgres", event, docs, *n_docs, plan, err, sizeof err);
    if (rc < 0)
        snprintf(wh->err, sizeof wh->err, "table of %s: %s", event, err);
    return rc;
}

/* Appends a quoted identifier. */
static void sql_ident(struct loader_pg *wh, const char *name)
{
    char *q = PQescapeIdentifier(wh->conn, name, strlen(name));
    pipe_buf_append_str(&wh->sql, q ? q : "\"\"");
    PQfreemem(q);
}

static int ensure_table_tx(struct loader_pg *wh, const char *event, const char *table)
{
    const json_t *docs[WH_VERSIONS_MAX];
    size_t n_docs;
    struct ctl_ddl_table plan = {0};
    int rc = table_plan(wh, event, &plan, docs, &n_docs);
    if (rc < 0)
        return PIPE_EIO;
    /* CREATE TABLE as `sluicectl schema ddl --dialect postgres` prints it. */
    char *ddl = NULL, err[256];
    size_t ddl_len = 0;
    FILE *f = open_memstream(&ddl, &ddl_len);
    rc = f ? ctl_ddl_table(f, "postgres", NULL, event, docs, n_docs, err, sizeof err) : -errno;
    if (f && fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0)
        rc = wh_exec(wh, ddl, 0, NULL);
    else
        snprintf(wh->err, sizeof wh->err, "table of %s: %s", event, f ? err : strerror(-rc));
    free(ddl);
    /* A newer schema version may declare fields the table lacks. */
    struct pipe_buf *b = &wh->sql;
    for (size_t i = 0; i < plan.n && rc == 0; i++) {
        pipe_buf_reset(b);
        pipe_buf_append_str(b, "ALTER TABLE ");
        sql_ident(wh, table);
        pipe_buf_append_str(b, " ADD COLUMN IF NOT EXISTS ");
        sql_ident(wh, plan.cols[i].name);
        pipe_buf_printf(b, " %s", plan.cols[i].type);
        pipe_buf_append_char(b, '\0');
        if (!plan.cols[i].not_null) /* the NOT NULL ones are the fixed columns */
            rc = wh_exec(wh, b->data, 0, NULL);
    }
    ctl_ddl_table_cleanup(&plan);
    return rc;
}

/* Creates the event table if missing and adds the declared columns it lacks;
 * once per table per connection. CREATE TABLE IF NOT EXISTS is not safe
 * against a concurrent one (both may try to insert the row type), so the
 * DDL of all loaders is serialised by an advisory lock. */
static int ensure_table(struct loader_pg *wh, const char *event, const char *table)
{
    for (size_t i = 0; i < wh->n_ensured; i++)
        if (strcmp(wh->ensured[i].name, table) == 0)
            return 0;
    int rc = wh_exec(wh, "BEGIN", 0, NULL);
    if (rc == 0)
        rc =
            wh_exec(wh, "SELECT pg_advisory_xact_lock(hashtextextended('sluice ddl', 0))", 0, NULL);
    if (rc == 0)
        rc = ensure_table_tx(wh, event, table);
    if (rc == 0)
        rc = wh_exec(wh, "COMMIT", 0, NULL);
    else if (PQstatus(wh->conn) == CONNECTION_OK)
        PQclear(PQexec(wh->conn, "ROLLBACK"));
    if (rc == 0) {
        if (wh->n_ensured == wh->cap_ensured) {
            wh->cap_ensured = wh->cap_ensured ? wh->cap_ensured * 2 : 16;
            wh->ensured = pipe_realloc(wh->ensured, wh->cap_ensured * sizeof *wh->ensured);
        }
        memcpy(wh->ensured[wh->n_ensured++].name, table, CTL_DDL_NAME_MAX);
    }
    return rc;
}

/* ---- loading ---------------------------------------------------------------- */

/* jsonb refuses the escape \u0000 that JSON allows; it becomes U+FFFD (same
 * length, so it is rewritten in place in a copy of the line). */
static void copy_line(struct pipe_buf *out, const char *p, size_t n)
{
    size_t start = out->len;
    pipe_buf_append(out, p, n);
    char *s = out->data + start;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0)
            memcpy(s + i + 2, "fffd", 4);
        i++; /* skip the escaped character */
    }
    pipe_buf_append_char(out, '\n');
}

/* Streams the file's lines into the session's staging table. COPY's CSV
 * mode with \x02 as delimiter and \x01 as quote reads each JSON line as one
 * verbatim field: neither byte can appear raw in JSON text. */
static int copy_in(struct loader_pg *wh, const struct loader_pg_file *f)
{
    PGresult *res = PQexec(wh->conn, "COPY sluice_stage (line) FROM STDIN WITH (FORMAT csv, "
                                     "DELIMITER E'\\x02', QUOTE E'\\x01')");
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        wh_fail(wh, "COPY", res);
        PQclear(res);
        return wh_rc(wh);
    }
    PQclear(res);
    struct pipe_buf chunk;
    pipe_buf_init(&chunk, SIZE_MAX);
    const char *p = f->data, *end = f->data + f->len;
    int ok = 1;
    while (p < end && ok == 1) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n > 0)
            copy_line(&chunk, p, n);
        p += n + 1;
        if (chunk.len >= WH_COPY_STEP || p >= end) {
            ok = PQputCopyData(wh->conn, chunk.data, (int)chunk.len);
            pipe_buf_reset(&chunk);
        }
    }
    pipe_buf_cleanup(&chunk);
    if (ok == 1)
        ok = PQputCopyEnd(wh->conn, NULL);
    res = PQgetResult(wh->conn);
    int rc = 0;
    if (ok != 1 || PQresultStatus(res) != PGRES_COMMAND_OK) {
        wh_fail(wh, "COPY data", res);
        rc = wh_rc(wh);
    }
    PQclear(res);
    while ((res = PQgetResult(wh->conn)))
        PQclear(res);
    return rc;
}

/* Whether column c is one the INSERT fills specially (not a declared field). */
static bool fixed_column(const struct ctl_ddl_column *c)
{
    static const char *const fixed[] = {"id",      "event", "ts",    "received_at",
                                        "channel", "data",  "_file", "_loaded_at"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (strcmp(c->name, fixed[i]) == 0)
            return true;
    return c->key == NULL;
}

/* Appends ", <expression>" reading column c's field out of the event j.
 * A value whose JSON type does not fit the column (an event accepted before
 * its schema existed, or under an older version) gives NULL rather than a
 * failed cast, which would fail the whole file again on every pass: the
 * value itself is kept in data. */
static void typed_value(struct loader_pg *wh, const struct ctl_ddl_column *c)
{
    struct pipe_buf *b = &wh->sql;
    char *q = PQescapeLiteral(wh->conn, c->key, strlen(c->key));
    const char *k = q ? q : "''";
    if (strcmp(c->type, "jsonb") == 0)
        pipe_buf_printf(b, ", j->%s", k);
    else if (strcmp(c->type, "bigint") == 0)
        pipe_buf_printf(b, ", CASE WHEN (j->>%s) ~ '^-?[0-9]{1,18}$' THEN (j->>%s)::bigint END", k,
                        k);
    else if (strcmp(c->type, "double precision") == 0)
        pipe_buf_printf(b,
                        ", CASE WHEN jsonb_typeof(j->%s) = 'number' AND abs((j->>%s)::numeric)"
                        " < 1e300 THEN (j->>%s)::double precision END",
                        k, k, k);
    else if (strcmp(c->type, "boolean") == 0)
        pipe_buf_printf(b, ", CASE WHEN jsonb_typeof(j->%s) = 'boolean' THEN (j->>%s)::boolean END",
                        k, k);
    else /* text: any JSON value reads as text */
        pipe_buf_printf(b, ", j->>%s", k);
    PQfreemem(q);
}

/* Builds the INSERT that moves the staged rows into the table, returning
 * the count and the newest received_at (epoch ms) of the inserted ones. */
static int build_insert(struct loader_pg *wh, const char *event, const char *table)
{
    const json_t *docs[WH_VERSIONS_MAX];
    size_t n_docs;
    struct ctl_ddl_table plan = {0};
    if (table_plan(wh, event, &plan, docs, &n_docs) < 0)
        return PIPE_EIO;
    struct pipe_buf *b = &wh->sql;
    pipe_buf_reset(b);
    pipe_buf_append_str(b, "WITH ins AS (INSERT INTO ");
    sql_ident(wh, table);
    pipe_buf_append_str(b, " (id, event, ts, received_at, channel, data, _file");
    for (size_t i = 0; i < plan.n; i++) {
        if (fixed_column(&plan.cols[i]))
            continue;
        pipe_buf_append_str(b, ", ");
        sql_ident(wh, plan.cols[i].name);
    }
    pipe_buf_append_str(b, ") SELECT j->>'id', j->>'event', CASE jsonb_typeof(j->'ts')"
                           " WHEN 'number' THEN to_timestamp((j->>'ts')::float8 / 1000)"
                           " WHEN 'string' THEN (j->>'ts')::timestamptz END,"
                           " (j->>'received_at')::timestamptz, j->>'channel', j, $1");
    for (size_t i = 0; i < plan.n; i++) {
        if (!fixed_column(&plan.cols[i]))
            typed_value(wh, &plan.cols[i]);
    }
    pipe_buf_append_str(b, " FROM (SELECT line::jsonb AS j FROM sluice_stage) s"
                           " ON CONFLICT (id) DO NOTHING RETURNING received_at)"
                           " SELECT count(*), coalesce(floor(extract(epoch FROM max(received_at))"
                           " * 1000), 0)::bigint FROM ins");
    pipe_buf_append_char(b, '\0');
    ctl_ddl_table_cleanup(&plan);
    return 0;
}

/* The body of the transaction; the caller commits or rolls back. */
static int load_in_tx(struct loader_pg *wh, const struct loader_pg_file *f, const char *table,
                      struct loader_pg_result *res)
{
    const char *key[] = {f->key};
    /* Serialise loaders on this file, then look again: another loader may
     * have committed it since the caller asked. */
    int rc = wh_exec(wh, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", 1, key);
    if (rc == 0)
        rc = history_has(wh, f->key, &res->already);
    if (rc < 0 || res->already)
        return rc;
    if ((rc = wh_exec(wh, "TRUNCATE sluice_stage", 0, NULL)) < 0 || (rc = copy_in(wh, f)) < 0)
        return rc;
    PGresult *r;
    if ((rc = build_insert(wh, f->event, table)) < 0 ||
        (rc = wh_query(wh, "insert rows", wh->sql.data, 1, key, &r)) < 0)
        return rc;
    res->inserted = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    res->newest_ms = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    char rows[24], ins[24], newest[24];
    snprintf(rows, sizeof rows, "%" PRIu64, f->rows);
    snprintf(ins, sizeof ins, "%" PRIu64, res->inserted);
    snprintf(newest, sizeof newest, "%" PRId64, res->newest_ms);
    const char *hist[] = {f->key, f->job_id, f->event, table, rows, ins, newest};
    return wh_exec(
        wh,
        "INSERT INTO sluice_load_history (file, job_id, event, table_name, rows,"
        " inserted, newest_received_at) VALUES ($1, $2, $3, $4, $5::bigint,"
        " $6::bigint, CASE WHEN $7::bigint > 0 THEN to_timestamp($7::float8 / 1000) END)",
        7, hist);
}

int loader_pg_load_file(struct loader_pg *wh, const struct loader_pg_file *f,
                        struct loader_pg_result *res)
{
    char table[CTL_DDL_NAME_MAX];
    ctl_ddl_table_name(f->event, table);
    struct loader_pg_result out = {0};
    int rc = wh_alive(wh);
    if (rc == 0)
        rc = ensure_table(wh, f->event, table);
    if (rc == 0)
        rc = wh_exec(wh, "BEGIN", 0, NULL);
    if (rc < 0)
        goto out;
    rc = load_in_tx(wh, f, table, &out);
    if (rc == 0)
        rc = wh_exec(wh, "COMMIT", 0, NULL);
    else if (PQstatus(wh->conn) == CONNECTION_OK)
        PQclear(PQexec(wh->conn, "ROLLBACK"));
out:
    if (rc == PIPE_EIO)
        pipe_log_error("load failed", "file=%s table=%s err=\"%s\"", f->key, table, wh->err);
    if (rc == 0)
        *res = out;
    return rc;
}

int loader_pg_is_loaded(struct loader_pg *wh, const char *key, bool *loaded)
{
    int rc = wh_alive(wh);
    if (rc < 0)
        return rc;
    /* Whatever made the lookup fail, the caller's answer is the same (retry
     * the whole pass later), hence one code, as loader.h says. */
    return history_has(wh, key, loaded) < 0 ? PIPE_EUNAVAIL : 0;
}

int loader_pg_newest(struct loader_pg *wh, int64_t *ms)
{
    PGresult *r;
    int rc = wh_alive(wh);
    if (rc == 0)
        rc = wh_query(wh, "newest loaded event",
                      "SELECT coalesce(floor(extract(epoch FROM max(newest_received_at))"
                      " * 1000), 0)::bigint FROM sluice_load_history",
                      0, NULL, &r);
    if (rc < 0)
        return rc;
    *ms = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

int loader_pg_file_rows(struct loader_pg *wh, const char *key, const char *event, bool *found,
                        uint64_t *history_rows, uint64_t *table_rows)
{
    char table[CTL_DDL_NAME_MAX];
    ctl_ddl_table_name(event, table);
    int rc = wh_alive(wh);
    if (rc < 0)
        return rc;
    struct pipe_buf *b = &wh->sql;
    pipe_buf_reset(b);
    pipe_buf_append_str(b, "SELECT h.rows, (SELECT count(*) FROM ");
    sql_ident(wh, table);
    pipe_buf_append_str(b,
                        " t WHERE t._file = h.file) FROM sluice_load_history h WHERE h.file = $1");
    pipe_buf_append_char(b, '\0');
    PGresult *r;
    rc = wh_query(wh, "file rows", b->data, 1, &key, &r);
    if (rc < 0)
        return rc;
    *found = PQntuples(r) > 0;
    *history_rows = *found ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    *table_rows = *found ? strtoull(PQgetvalue(r, 0, 1), NULL, 10) : 0;
    PQclear(r);
    return 0;
}

int loader_pg_open(const char *url, const char *schemas_dir, struct loader_pg **out)
{
    struct loader_pg *wh = pipe_calloc(1, sizeof *wh);
    pipe_buf_init(&wh->sql, WH_SQL_MAX);
    wh->conn = PQconnectdb(url);
    int rc = 0;
    if (PQstatus(wh->conn) != CONNECTION_OK) {
        wh_fail(wh, "connect", NULL);
        rc = PIPE_EUNAVAIL;
        goto out;
    }
    if ((rc = session_setup(wh)) < 0 || (rc = wh_exec(wh, history_ddl, 0, NULL)) < 0)
        goto out;
    char err[512];
    if (schemas_dir && ctl_schema_dir_load(schemas_dir, &wh->schemas, err, sizeof err) < 0) {
        snprintf(wh->err, sizeof wh->err, "schemas: %s", err);
        rc = PIPE_ECONFIG;
    }
out:
    if (rc < 0) {
        snprintf(open_err, sizeof open_err, "%s", wh->err);
        loader_pg_free(wh);
        return rc;
    }
    *out = wh;
    return 0;
}

void loader_pg_free(struct loader_pg *wh)
{
    if (!wh)
        return;
    PQfinish(wh->conn);
    pipe_schema_set_free(wh->schemas);
    pipe_free(wh->ensured);
    pipe_buf_cleanup(&wh->sql);
    pipe_free(wh);
}

const char *loader_pg_last_error(const struct loader_pg *wh)
{
    return wh ? wh->err : open_err;
}
