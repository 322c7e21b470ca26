/* warehouse — `sluicectl warehouse sql`: the SQL that loads split files
 * into Snowflake (file format, stage, tables, a Snowpipe or a batch COPY per
 * event type) or Redshift (tables, load history, a per-job load script that
 * COPYs with the splitter's manifest). Tables come from ctl_ddl_plan, so the
 * columns are those of `sluicectl schema ddl`; docs/warehouse.md explains
 * the statements and how to run them. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/mem.h"
#include "libpipe/schema.h"
#include "libpipe/url.h"
#include "tools/sluicectl/ctl.h"

#define WSQL_VERSIONS_MAX    256 /* schema versions of one type read for columns */
#define WSQL_JOB_PLACEHOLDER "${JOB_ID}"

struct wsql_cfg {
    char *dialect, *dir, *url, *event, *ns, *part;
    char *load, *integration, *stage, *file_format; /* snowflake */
    char *iam_role, *region, *job;                  /* redshift */
};

#define OPT(f) offsetof(struct wsql_cfg, f)
static const struct pipe_conf_opt wsql_opts[] = {
    {"dialect", PIPE_CONF_STR, NULL, OPT(dialect), "snowflake or redshift (required)", 0, 0,
     "NAME"},
    {"dir", PIPE_CONF_STR, NULL, OPT(dir), "the schema directory (required)", 0, 0, "DIR"},
    {"url", PIPE_CONF_STR, NULL, OPT(url),
     "the store's root: s3://bucket[/prefix] (required; a ?query is ignored)", 0, 0, "URL"},
    {"event", PIPE_CONF_STR, NULL, OPT(event), "only this event type (default: every type in DIR)",
     0, 0, "TYPE"},
    {"namespace", PIPE_CONF_STR, NULL, OPT(ns),
     "schema that qualifies every object (Redshift: folded to lower case)", 0, 0, "NAME"},
    {"part", PIPE_CONF_STR, "all", OPT(part),
     "setup (format, stage, tables, history), load (pipes, COPY, job script) or all", 0, 0, "PART"},
    {"load", PIPE_CONF_STR, "snowpipe", OPT(load),
     "snowflake: snowpipe (an auto-ingest pipe per type) or copy (batch COPY INTO per type)", 0, 0,
     "MODE"},
    {"integration", PIPE_CONF_STR, "SLUICE_S3_INTEGRATION", OPT(integration),
     "snowflake: the storage integration that may read the bucket", 0, 0, "NAME"},
    {"stage", PIPE_CONF_STR, "SLUICE_SPLIT", OPT(stage),
     "snowflake: the external stage on <url>/split/", 0, 0, "NAME"},
    {"file_format", PIPE_CONF_STR, "SLUICE_JSON_ZSTD", OPT(file_format),
     "snowflake: the file format of split files", 0, 0, "NAME"},
    {"iam_role", PIPE_CONF_STR, "default", OPT(iam_role),
     "redshift: IAM_ROLE of the COPY, an ARN or default (the cluster's default role)", 0, 0, "ARN"},
    {"region", PIPE_CONF_STR, NULL, OPT(region),
     "redshift: REGION of the bucket when it differs from the cluster's", 0, 0, "REGION"},
    {"job", PIPE_CONF_STR, NULL, OPT(job),
     "redshift: the job id to load (default: the placeholder " WSQL_JOB_PLACEHOLDER ")", 0, 0,
     "JOB_ID"},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};
#undef OPT

static const struct pipe_conf_program wsql_program = {
    .name = "sluicectl warehouse sql",
    .summary =
        "Prints the SQL that loads the split files under URL into a warehouse, with one table per "
        "event type of the schema directory (the columns of `sluicectl schema ddl`). Snowflake: a "
        "JSON/ZSTD file format, an external stage on URL/split/, the tables, and per type an "
        "auto-ingest pipe on the stage's <event>/ path (--load snowpipe) or a batch COPY INTO "
        "(--load copy). Redshift: the tables, a load-history table, and the load script of one "
        "job: COPY of manifests/split/<job>.json (FORMAT JSON 'noshred' ZSTD MANIFEST) into a "
        "staging table, then one INSERT per type that skips loaded ids, in one transaction that "
        "records the job, so that a job loads once. See docs/warehouse.md.",
    .usage_args = NULL,
    .version = SLUICE_VERSION,
    .tables = {wsql_opts, NULL},
};

/* A selected event type: its name and versions (ascending), from the set. */
struct wsql_type {
    const char *event;
    const struct pipe_schema *const *v;
    size_t n;
};

/* What the printers need: the options, checked, and the base URL. */
struct wsql {
    const struct wsql_cfg *cfg;
    const char *d; /* dialect */
    char *base;    /* "s3://bucket/prefix/" */
    char *ns;      /* as quoted (Redshift: lower case), or NULL */
    const char *job;
    struct ctl_ddl_table *plans; /* one per selected type */
    struct wsql_type *types;
    size_t n;
};

/* ---- checking the options ------------------------------------------------------ */

/* A value that goes into a string literal or an identifier: no quote, no
 * backslash (an escape in both dialects' literals), no control character. */
static bool wsql_text_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '\'' || *p == '\\')
            return false;
    return *s != '\0';
}

/* "s3://bucket[/prefix][?query]" -> "s3://bucket/prefix/", or NULL. */
static char *wsql_base_url(const char *url)
{
    struct pipe_url u;
    enum pipe_url_part bad;
    const char *why;
    char *base = NULL;
    if (pipe_url_parse(url, &u, &bad, &why) < 0)
        return NULL;
    if (strcmp(u.scheme, "s3") == 0 && u.host[0] != '\0' && !u.user && u.port < 0 && !u.fragment) {
        size_t n = strlen(u.path);
        while (n > 0 && u.path[n - 1] == '/')
            n--;
        base = pipe_asprintf("s3://%s%.*s/", u.host, (int)n, u.path);
    }
    if (base && (!wsql_text_ok(base) || strchr(base, '"') != NULL)) {
        pipe_free(base);
        base = NULL;
    }
    pipe_url_cleanup(&u);
    return base;
}

__attribute__((format(printf, 1, 2))) static int wsql_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sluicectl warehouse sql: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return PIPE_ECONFIG;
}

/* Flags of the other dialect are refused rather than silently ignored. */
static int wsql_check_dialect_flags(const struct wsql_cfg *c, bool snowflake)
{
    static const char *const sf_only[] = {"--load", "--integration", "--stage", "--file-format"};
    static const char *const rs_only[] = {"--iam-role", "--region", "--job"};
    const char *sf_vals[] = {strcmp(c->load, "snowpipe") ? c->load : NULL,
                             strcmp(c->integration, "SLUICE_S3_INTEGRATION") ? c->integration
                                                                             : NULL,
                             strcmp(c->stage, "SLUICE_SPLIT") ? c->stage : NULL,
                             strcmp(c->file_format, "SLUICE_JSON_ZSTD") ? c->file_format : NULL};
    const char *rs_vals[] = {strcmp(c->iam_role, "default") ? c->iam_role : NULL, c->region,
                             c->job};
    for (size_t i = 0; snowflake && i < sizeof rs_only / sizeof *rs_only; i++)
        if (rs_vals[i])
            return wsql_usage("%s is for --dialect redshift", rs_only[i]);
    for (size_t i = 0; !snowflake && i < sizeof sf_only / sizeof *sf_only; i++)
        if (sf_vals[i])
            return wsql_usage("%s is for --dialect snowflake", sf_only[i]);
    return 0;
}

/* Every check that can fail before anything is read. */
static int wsql_check(const struct wsql_cfg *c)
{
    if (c->dialect == NULL || c->dir == NULL || c->url == NULL)
        return wsql_usage("--dialect, --dir and --url are required (see --help)");
    bool snowflake = strcmp(c->dialect, "snowflake") == 0;
    if (strcmp(c->dialect, "postgres") == 0)
        return wsql_usage("--dialect: PostgreSQL is loaded by `sluicectl load --warehouse URL`");
    if (!snowflake && strcmp(c->dialect, "redshift") != 0)
        return wsql_usage("--dialect: snowflake or redshift, not \"%s\"", c->dialect);
    if (strcmp(c->part, "all") != 0 && strcmp(c->part, "setup") != 0 &&
        strcmp(c->part, "load") != 0)
        return wsql_usage("--part: all, setup or load, not \"%s\"", c->part);
    if (strcmp(c->load, "snowpipe") != 0 && strcmp(c->load, "copy") != 0)
        return wsql_usage("--load: snowpipe or copy, not \"%s\"", c->load);
    const char *names[] = {c->ns, c->integration, c->stage, c->file_format, c->iam_role, c->region};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i] && !wsql_text_ok(names[i]))
            return wsql_usage("\"%s\": a name or ARN may not be empty or hold a quote, a "
                              "backslash or a control character",
                              names[i]);
    if (c->job && !pipe_keys_name_valid(c->job))
        return wsql_usage("--job: \"%s\" is not a job id", c->job);
    if (c->event && !pipe_keys_event_valid(c->event, strlen(c->event)))
        return wsql_usage("--event: \"%s\" is not an event type", c->event);
    return wsql_check_dialect_flags(c, snowflake);
}

/* ---- SQL pieces ---------------------------------------------------------------- */

/* [ns.]name, quoted. */
static void wsql_name(FILE *f, const struct wsql *w, const char *name)
{
    if (w->ns) {
        ctl_ddl_quote(f, w->d, w->ns);
        fputc('.', f);
    }
    ctl_ddl_quote(f, w->d, name);
}

/* The column list of a plan: ("A", "B", ...). */
static void wsql_columns(FILE *f, const struct wsql *w, const struct ctl_ddl_table *t)
{
    fputs(" (", f);
    for (size_t i = 0; i < t->n; i++) {
        if (i)
            fputs(", ", f);
        ctl_ddl_quote(f, w->d, t->cols[i].name);
    }
    fputs(")\n", f);
}

/* The value of column c from the event $1 (Snowflake). ts may be an RFC 3339
 * string or epoch milliseconds: through VARCHAR, an integer string is read as
 * seconds, milliseconds, ... by its magnitude, so both forms convert. */
static void sf_expr(FILE *f, const struct ctl_ddl_column *c)
{
    if (c->key == NULL) {
        fputs("$1", f);
        return;
    }
    fputs("$1:", f);
    ctl_ddl_quote(f, "snowflake", c->key);
    if (strcmp(c->key, "ts") == 0)
        fputs("::VARCHAR::TIMESTAMP_TZ", f);
    else if (strcmp(c->type, "VARIANT") != 0)
        fprintf(f, "::%s", c->type);
}

/* The value of column c from the staged event s."doc" (Redshift). */
static void rs_expr(FILE *f, const struct ctl_ddl_column *c)
{
    if (c->key == NULL) {
        fputs("s.\"doc\"", f);
    } else if (strcmp(c->key, "ts") == 0) {
        fputs("CASE WHEN IS_VARCHAR(s.\"doc\".\"ts\") THEN s.\"doc\".\"ts\"::VARCHAR::TIMESTAMPTZ"
              " ELSE TIMESTAMPTZ 'epoch' + s.\"doc\".\"ts\"::BIGINT / 1000.0 * INTERVAL '1 second'"
              " END",
              f);
    } else {
        fputs("s.\"doc\".", f);
        ctl_ddl_quote(f, "redshift", c->key);
        if (strcmp(c->type, "SUPER") != 0)
            fprintf(f, "::%s", c->type);
    }
}

/* The schema comment and CREATE TABLE of type i. */
static int wsql_table(FILE *f, const struct wsql *w, size_t i)
{
    const struct wsql_type *t = &w->types[i];
    const json_t *docs[WSQL_VERSIONS_MAX];
    size_t n = ctl_schema_docs_newest(t->v, t->n, docs, WSQL_VERSIONS_MAX);
    if (t->n == 1)
        fprintf(f, "\n-- %s: schema version %d\n", t->event, pipe_schema_version(t->v[0]));
    else
        fprintf(f, "\n-- %s: schema version %d (columns from all %zu versions)\n", t->event,
                pipe_schema_version(t->v[t->n - 1]), t->n);
    char err[400];
    int rc = ctl_ddl_table(f, w->d, w->ns, t->event, docs, n, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "sluicectl warehouse sql: %s: %s\n", t->event, err);
    return rc;
}

/* ---- Snowflake --------------------------------------------------------------------- */

/* FILE_FORMAT = (FORMAT_NAME = '"NS"."NAME"'): the name as a string literal
 * holding the quoted identifier, so that its case is kept. */
static void sf_format_ref(FILE *f, const struct wsql *w)
{
    fputs("FILE_FORMAT = (FORMAT_NAME = '", f);
    wsql_name(f, w, w->cfg->file_format);
    fputs("')", f);
}

static void sf_setup(FILE *f, const struct wsql *w)
{
    fputs("\n-- The format of split files: NDJSON (one event per line), zstd-compressed.\n"
          "CREATE FILE FORMAT IF NOT EXISTS ",
          f);
    wsql_name(f, w, w->cfg->file_format);
    fputs("\n    TYPE = JSON\n    COMPRESSION = ZSTD\n    STRIP_OUTER_ARRAY = FALSE;\n", f);
    fputs("\n-- The split/ prefix; the storage integration must exist and may read it.\n"
          "CREATE STAGE IF NOT EXISTS ",
          f);
    wsql_name(f, w, w->cfg->stage);
    fprintf(f, "\n    URL = '%ssplit/'\n    STORAGE_INTEGRATION = ", w->base);
    ctl_ddl_quote(f, w->d, w->cfg->integration);
    fputs("\n    ", f);
    sf_format_ref(f, w);
    fputs(";\n", f);
}

/* COPY INTO the table of type i from the stage's <event>/ path. */
static void sf_copy(FILE *f, const struct wsql *w, size_t i)
{
    const struct ctl_ddl_table *t = &w->plans[i];
    fputs("COPY INTO ", f);
    wsql_name(f, w, t->name);
    wsql_columns(f, w, t);
    fputs("FROM (\n    SELECT\n", f);
    for (size_t c = 0; c < t->n; c++) {
        fputs("        ", f);
        sf_expr(f, &t->cols[c]);
        fputs(c + 1 < t->n ? ",\n" : "\n", f);
    }
    fputs("    FROM @", f);
    wsql_name(f, w, w->cfg->stage);
    fprintf(f, "/%s/\n)\n", w->types[i].event);
    sf_format_ref(f, w);
    fputs(";\n", f);
}

static void sf_load(FILE *f, const struct wsql *w)
{
    bool pipes = strcmp(w->cfg->load, "snowpipe") == 0;
    for (size_t i = 0; i < w->n; i++) {
        if (pipes) {
            char *pipe = pipe_asprintf("%s_PIPE", w->plans[i].name);
            fprintf(f, "\n-- %s: Snowpipe auto-ingest of split/%s/\n", w->types[i].event,
                    w->types[i].event);
            fputs("CREATE PIPE IF NOT EXISTS ", f);
            wsql_name(f, w, pipe);
            fputs("\n    AUTO_INGEST = TRUE\n    AS\n", f);
            pipe_free(pipe);
        } else {
            fprintf(f,
                    "\n-- %s: batch load of split/%s/ (load metadata skips files already "
                    "loaded)\n",
                    w->types[i].event, w->types[i].event);
        }
        sf_copy(f, w, i);
    }
}

/* ---- Redshift ---------------------------------------------------------------------- */

static void rs_history(FILE *f, const struct wsql *w)
{
    fputs("\n-- One row per job and event type loaded: such a pair never loads again.\n"
          "CREATE TABLE IF NOT EXISTS ",
          f);
    wsql_name(f, w, "sluice_load_history");
    fputs(" (\n"
          "    \"job_id\" VARCHAR(256) NOT NULL,\n"
          "    \"event\" VARCHAR(128) NOT NULL,\n"
          "    \"manifest\" VARCHAR(2048) NOT NULL,\n"
          "    \"events\" BIGINT NOT NULL,\n"
          "    \"loaded_at\" TIMESTAMPTZ NOT NULL DEFAULT GETDATE(),\n"
          "    PRIMARY KEY (\"job_id\", \"event\")\n"
          ");\n",
          f);
}

/* NOT EXISTS (the history row of this job and type i). */
static void rs_not_loaded(FILE *f, const struct wsql *w, size_t i)
{
    fputs("NOT EXISTS (SELECT 1 FROM ", f);
    wsql_name(f, w, "sluice_load_history");
    fprintf(f, " h WHERE h.\"job_id\" = '%s' AND h.\"event\" = '%s')", w->job, w->types[i].event);
}

/* INSERT the staged events of type i whose id the table does not hold, then
 * the history row (when the job has events of the type); both only while the
 * history lacks the job and type. COUNT(*) sits in a subquery because an
 * aggregate without GROUP BY yields a row even when WHERE rejects them all. */
static void rs_insert(FILE *f, const struct wsql *w, size_t i, const char *manifest)
{
    const struct ctl_ddl_table *t = &w->plans[i];
    const char *event = w->types[i].event;
    fprintf(f, "\n-- %s\nINSERT INTO ", event);
    wsql_name(f, w, t->name);
    wsql_columns(f, w, t);
    fputs("SELECT\n", f);
    for (size_t c = 0; c < t->n; c++) {
        fputs("    ", f);
        rs_expr(f, &t->cols[c]);
        fputs(c + 1 < t->n ? ",\n" : "\n", f);
    }
    fprintf(f, "FROM \"sluice_staging\" s\nWHERE s.\"doc\".\"event\"::VARCHAR = '%s'\n  AND ",
            event);
    rs_not_loaded(f, w, i);
    fputs("\n  AND NOT EXISTS (SELECT 1 FROM ", f);
    wsql_name(f, w, t->name);
    fputs(" t WHERE t.", f);
    ctl_ddl_quote(f, w->d, t->cols[0].name);
    fputs(" = s.\"doc\".\"id\"::VARCHAR);\nINSERT INTO ", f);
    wsql_name(f, w, "sluice_load_history");
    fprintf(f,
            " (\"job_id\", \"event\", \"manifest\", \"events\")\n"
            "SELECT '%s', '%s', '%s', c.\"n\"\n"
            "FROM (SELECT COUNT(*) AS \"n\" FROM \"sluice_staging\" s"
            " WHERE s.\"doc\".\"event\"::VARCHAR = '%s') c\n"
            "WHERE c.\"n\" > 0\n  AND ",
            w->job, event, manifest, event);
    rs_not_loaded(f, w, i);
    fputs(";\n", f);
}

/* The staging COPY outside the transaction (the temporary table is the
 * session's own), then the inserts under the history's lock. */
static void rs_load(FILE *f, const struct wsql *w)
{
    char *manifest = pipe_asprintf("%smanifests/split/%s.json", w->base, w->job);
    fprintf(f,
            "\n-- Load job %s: every split file its manifest lists, all event types.\n"
            "-- Quoted JSON keys keep their case only with case-sensitive identifiers.\n"
            "SET enable_case_sensitive_identifier TO true;\n"
            "CREATE TEMP TABLE IF NOT EXISTS \"sluice_staging\" (\"doc\" SUPER);\n"
            "DELETE FROM \"sluice_staging\";\n"
            "COPY \"sluice_staging\"\nFROM '%s'\nIAM_ROLE ",
            w->job, manifest);
    if (strcmp(w->cfg->iam_role, "default") == 0)
        fputs("default", f);
    else
        fprintf(f, "'%s'", w->cfg->iam_role);
    if (w->cfg->region)
        fprintf(f, "\nREGION '%s'", w->cfg->region);
    fputs("\nFORMAT JSON 'noshred'\nZSTD\nMANIFEST;\n\nBEGIN;\nLOCK ", f);
    wsql_name(f, w, "sluice_load_history");
    fputs(";\n", f);
    for (size_t i = 0; i < w->n; i++)
        rs_insert(f, w, i, manifest);
    fputs("\nCOMMIT;\nDROP TABLE \"sluice_staging\";\nRESET enable_case_sensitive_identifier;\n",
          f);
    pipe_free(manifest);
}

/* ---- the command ----------------------------------------------------------------- */

static void wsql_header(FILE *f, const struct wsql *w)
{
    fprintf(f,
            "-- Generated by `sluicectl warehouse sql --dialect %s` from the event schemas; do "
            "not edit.\n"
            "-- Split files: %ssplit/<event>/dt=YYYY-MM-DD/hr=HH/<job-id>.ndjson.zst\n",
            w->d, w->base);
    if (strcmp(w->d, "redshift") == 0)
        fprintf(f,
                "-- Run the setup part once (again after a schema change), the load part once "
                "per\n-- job, i.e. per %smanifests/split/<job-id>.json. See docs/warehouse.md.\n",
                w->base);
    else
        fputs("-- See docs/warehouse.md.\n", f);
}

/* Prints everything; a table whose DDL fails makes the result 1. */
static int wsql_print(FILE *f, const struct wsql *w)
{
    const char *part = w->cfg->part;
    bool setup = strcmp(part, "load") != 0, load = strcmp(part, "setup") != 0;
    bool snowflake = strcmp(w->d, "snowflake") == 0;
    int code = CTL_EXIT_OK;
    wsql_header(f, w);
    if (setup) {
        if (snowflake)
            sf_setup(f, w);
        else
            rs_history(f, w);
        for (size_t i = 0; i < w->n; i++)
            if (wsql_table(f, w, i) < 0)
                code = CTL_EXIT_FAIL;
    }
    if (load && snowflake)
        sf_load(f, w);
    else if (load)
        rs_load(f, w);
    return fflush(f) == 0 && !ferror(f) ? code : CTL_EXIT_FAIL;
}

/* Plans the table of every selected type; fails (naming it) on the first
 * type whose properties do not map to distinct columns. */
static int wsql_plan(struct wsql *w, const struct pipe_schema_set *set)
{
    size_t types = pipe_schema_set_types(set);
    w->plans = pipe_calloc(types ? types : 1, sizeof *w->plans);
    w->types = pipe_calloc(types ? types : 1, sizeof *w->types);
    for (size_t i = 0; i < types; i++) {
        struct wsql_type t;
        t.v = pipe_schema_set_type(set, i, &t.n);
        t.event = pipe_schema_event(t.v[0]);
        if (w->cfg->event && strcmp(w->cfg->event, t.event) != 0)
            continue;
        const json_t *docs[WSQL_VERSIONS_MAX];
        size_t n = ctl_schema_docs_newest(t.v, t.n, docs, WSQL_VERSIONS_MAX);
        char err[400];
        if (ctl_ddl_plan(w->d, t.event, docs, n, &w->plans[w->n], err, sizeof err) < 0) {
            fprintf(stderr, "sluicectl warehouse sql: %s: %s\n", t.event, err);
            return CTL_EXIT_FAIL;
        }
        w->types[w->n++] = t;
    }
    if (w->cfg->event && w->n == 0) {
        fprintf(stderr, "sluicectl warehouse sql: no schema for event type \"%s\" in %s\n",
                w->cfg->event, w->cfg->dir);
        return CTL_EXIT_FAIL;
    }
    return CTL_EXIT_OK;
}

static int warehouse_sql_main(int argc, char **argv)
{
    struct wsql_cfg cfg = {0};
    struct pipe_schema_set *set = NULL;
    struct wsql w = {.cfg = &cfg};
    int first, code = CTL_EXIT_USAGE;
    char err[1400];
    int rc = pipe_conf_load(&wsql_program, &cfg, argc, argv, &first);
    if (rc < 0)
        return ctl_exit_from_conf(rc);
    if (argc != first) {
        wsql_usage("unexpected argument \"%s\" (see --help)", argv[first]);
        goto out;
    }
    if (wsql_check(&cfg) < 0)
        goto out;
    if ((w.base = wsql_base_url(cfg.url)) == NULL) {
        wsql_usage("--url: \"%s\" is not s3://bucket[/prefix] (no quotes or backslashes)", cfg.url);
        goto out;
    }
    w.d = cfg.dialect;
    w.job = cfg.job ? cfg.job : WSQL_JOB_PLACEHOLDER;
    if (cfg.ns) {
        w.ns = pipe_strdup(cfg.ns);
        for (char *p = w.ns; strcmp(w.d, "redshift") == 0 && *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a'); /* what Redshift folds it to by default */
    }
    if (ctl_schema_dir_load(cfg.dir, &set, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl warehouse sql: %s\n", err);
        goto out;
    }
    code = wsql_plan(&w, set);
    if (code == CTL_EXIT_OK)
        code = wsql_print(stdout, &w);
out:
    for (size_t i = 0; w.plans && i < w.n; i++)
        ctl_ddl_table_cleanup(&w.plans[i]);
    pipe_free(w.plans);
    pipe_free(w.types);
    pipe_free(w.base);
    pipe_free(w.ns);
    pipe_schema_set_free(set);
    pipe_conf_cleanup(&wsql_program, &cfg);
    return code;
}

int ctl_warehouse_main(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (sub && strcmp(sub, "sql") == 0)
        return warehouse_sql_main(argc - 1, argv + 1);
    FILE *f = sub && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) ? stdout : stderr;
    if (sub && f == stderr)
        fprintf(f, "sluicectl warehouse: unknown subcommand \"%s\"\n", sub);
    fprintf(f, "usage: sluicectl warehouse sql --dialect snowflake|redshift --dir DIR "
               "--url s3://bucket[/prefix] [FLAGS]\n"
               "       sluicectl warehouse sql --help\n\n"
               "Generates the SQL that loads split files into Snowflake (stage, file format, "
               "tables,\nSnowpipe or COPY) or Redshift (tables, load history, per-job COPY "
               "script).\nPostgreSQL is loaded directly by `sluicectl load`.\n");
    return f == stdout ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}
