/* schema — `sluicectl schema check|openapi|ddl`. Schemas are read by
 * schema_dir.c (libpipe's loader), the rules of compatibility live in
 * schema_compat.c, the generators in schema_gen.c; this file parses flags,
 * picks the versions to compare and prints. docs/schema-tools.md is the
 * user's description of all three. */
#include <stdlib.h>
#include <string.h>

#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/schema.h"
#include "tools/sluicectl/ctl.h"

/* ---- check ------------------------------------------------------------------ */

struct check_cfg {
    char *dir;
    char *mode;
};

static const struct pipe_conf_opt check_opts[] = {
    {"dir", PIPE_CONF_STR, NULL, offsetof(struct check_cfg, dir),
     "check every event type's highest version against its previous one (the _all modes: "
     "against every earlier one)",
     0, 0, "DIR"},
    {"mode", PIPE_CONF_STR, "full", offsetof(struct check_cfg, mode),
     "backward (NEW reads OLD data), forward (OLD reads NEW data), full (both), or "
     "backward_all, forward_all, full_all (with --dir: against every earlier version)",
     0, 0, "MODE"},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program check_program = {
    .name = "sluicectl schema check",
    .summary = "Tells whether two versions of an event schema are compatible, naming every "
               "breaking change as \"PATH: CHANGE: CONSEQUENCE\", one per line on stdout. With "
               "--dir, compares each event type's highest version with the one before it, or "
               "with the modes backward_all, forward_all and full_all with every earlier "
               "version (late events carry old versions); lines are prefixed "
               "\"EVENT vOLD->vNEW: \". Exit 0 compatible, 1 breaking changes, 2 "
               "usage or parse error. FULL is the default: late events from old app versions "
               "must stay readable, and old readers must cope with new events. The rules are in "
               "docs/schema-tools.md.",
    .usage_args = "[OLD.json NEW.json]",
    .version = SLUICE_VERSION,
    .tables = {check_opts, NULL},
};

struct check_print {
    const char *prefix;
    size_t notes;
};

static void check_print_breaking(void *arg, const char *path, const char *change,
                                 const char *consequence)
{
    const struct check_print *p = arg;
    printf("%s%s: %s: %s\n", p->prefix, path, change, consequence);
}

static void check_print_note(void *arg, const char *path, const char *change,
                             const char *consequence)
{
    struct check_print *p = arg;
    fprintf(stderr, "note: %s%s: %s: %s\n", p->prefix, path, change, consequence);
    p->notes++;
}

/* A --mode: the direction, and whether the highest version is checked
 * against every earlier one (transitive) or only the one before it. */
struct check_mode {
    enum ctl_compat_mode dir;
    bool all;
};

static int check_mode_parse(const char *s, struct check_mode *out)
{
    static const struct {
        const char *name;
        enum ctl_compat_mode dir;
    } modes[] = {
        {"backward", CTL_COMPAT_BACKWARD},
        {"forward", CTL_COMPAT_FORWARD},
        {"full", CTL_COMPAT_FULL},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        size_t n = strlen(modes[i].name);
        if (strncmp(s, modes[i].name, n) == 0 && (s[n] == '\0' || strcmp(s + n, "_all") == 0)) {
            *out = (struct check_mode){modes[i].dir, s[n] != '\0'};
            return 0;
        }
    }
    return PIPE_ECONFIG;
}

static int check_files(const char *old_path, const char *new_path, enum ctl_compat_mode mode)
{
    struct pipe_schema *o = NULL, *n = NULL;
    char err[1400];
    int code = CTL_EXIT_USAGE;
    if (ctl_schema_file_load(old_path, &o, err, sizeof err) < 0 ||
        ctl_schema_file_load(new_path, &n, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl schema check: %s\n", err);
        goto out;
    }
    struct check_print p = {"", 0};
    size_t breaking = ctl_schema_compat(pipe_schema_doc(o), pipe_schema_doc(n), mode,
                                        check_print_breaking, check_print_note, &p);
    fprintf(stderr, "sluicectl schema check: %zu breaking change%s\n", breaking,
            breaking == 1 ? "" : "s");
    code = breaking ? CTL_EXIT_FAIL : CTL_EXIT_OK;
out:
    pipe_schema_free(o);
    pipe_schema_free(n);
    return code;
}

/* check_pair — the breaking changes from version a to version b of one
 * type, each line prefixed "EVENT vA->vB: ". */
static size_t check_pair(const struct pipe_schema *a, const struct pipe_schema *b,
                         enum ctl_compat_mode mode)
{
    char prefix[200];
    snprintf(prefix, sizeof prefix, "%s v%d->v%d: ", pipe_schema_event(b), pipe_schema_version(a),
             pipe_schema_version(b));
    struct check_print p = {prefix, 0};
    return ctl_schema_compat(pipe_schema_doc(a), pipe_schema_doc(b), mode, check_print_breaking,
                             check_print_note, &p);
}

static int check_dir(const char *dir, struct check_mode mode)
{
    struct pipe_schema_set *set = NULL;
    char err[1400];
    if (ctl_schema_dir_load(dir, &set, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl schema check: %s\n", err);
        return CTL_EXIT_USAGE;
    }
    size_t breaking = 0, compared = 0, pairs = 0, types = pipe_schema_set_types(set);
    for (size_t i = 0; i < types; i++) {
        size_t n;
        const struct pipe_schema *const *v = pipe_schema_set_type(set, i, &n);
        if (n < 2)
            continue;
        /* oldest first: a line names the version it breaks against */
        for (size_t old = mode.all ? 0 : n - 2; old < n - 1; old++, pairs++)
            breaking += check_pair(v[old], v[n - 1], mode.dir);
        compared++;
    }
    char all[64] = "";
    if (mode.all)
        snprintf(all, sizeof all, " against every earlier version (%zu pair%s)", pairs,
                 pairs == 1 ? "" : "s");
    fprintf(stderr,
            "sluicectl schema check: %zu event types, %zu with a previous version compared%s, "
            "%zu breaking change%s\n",
            types, compared, all, breaking, breaking == 1 ? "" : "s");
    pipe_schema_set_free(set);
    return breaking ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

static int schema_check_main(int argc, char **argv)
{
    struct check_cfg cfg = {0};
    int first, code = CTL_EXIT_USAGE;
    int rc = pipe_conf_load(&check_program, &cfg, argc, argv, &first);
    if (rc < 0)
        return ctl_exit_from_conf(rc);
    struct check_mode mode;
    int nargs = argc - first;
    if (check_mode_parse(cfg.mode, &mode) < 0) {
        fprintf(stderr,
                "sluicectl schema check: --mode: backward, forward, full, backward_all, "
                "forward_all or full_all, not \"%s\"\n",
                cfg.mode);
    } else if (cfg.dir != NULL && nargs == 0) {
        code = check_dir(cfg.dir, mode);
    } else if (cfg.dir == NULL && nargs == 2) {
        /* two files: one earlier version, so an _all mode is its plain mode */
        code = check_files(argv[first], argv[first + 1], mode.dir);
    } else {
        fprintf(stderr, "sluicectl schema check: give OLD.json NEW.json, or --dir DIR "
                        "(see --help)\n");
    }
    pipe_conf_cleanup(&check_program, &cfg);
    return code;
}

/* ---- openapi ------------------------------------------------------------------ */

struct openapi_cfg {
    char *dir;
    char *title;
    char *server;
};

static const struct pipe_conf_opt openapi_opts[] = {
    {"dir", PIPE_CONF_STR, NULL, offsetof(struct openapi_cfg, dir),
     "the schema directory (required)", 0, 0, "DIR"},
    {"title", PIPE_CONF_STR, "sluice ingest API", offsetof(struct openapi_cfg, title),
     "info.title of the document", 0, 0, "TEXT"},
    {"server", PIPE_CONF_STR, NULL, offsetof(struct openapi_cfg, server),
     "servers[0].url, e.g. https://events.example.com", 0, 0, "URL"},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program openapi_program = {
    .name = "sluicectl schema openapi",
    .summary = "Prints an OpenAPI 3.0 document (JSON) of the filter's ingest API (POST "
               "/v1/events and the admin endpoints) with every event type's schema: the highest "
               "version as components/schemas/EVENT, each version as EVENT.vN, and a oneOf "
               "discriminated on \"event\", so that client SDKs come from the same source as "
               "validation. The redact annotation becomes x-sluice-redact.",
    .usage_args = NULL,
    .version = SLUICE_VERSION,
    .tables = {openapi_opts, NULL},
};

static int schema_openapi_main(int argc, char **argv)
{
    struct openapi_cfg cfg = {0};
    struct pipe_schema_set *set = NULL;
    int first, code = CTL_EXIT_USAGE;
    char err[1400];
    int rc = pipe_conf_load(&openapi_program, &cfg, argc, argv, &first);
    if (rc < 0)
        return ctl_exit_from_conf(rc);
    if (cfg.dir == NULL || argc != first) {
        fprintf(stderr, "sluicectl schema openapi: --dir DIR is required, and nothing else\n");
        goto out;
    }
    if (ctl_schema_dir_load(cfg.dir, &set, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl schema openapi: %s\n", err);
        goto out;
    }
    json_t *doc = ctl_openapi_build(set, cfg.title, cfg.server, err, sizeof err);
    if (doc == NULL) {
        fprintf(stderr, "sluicectl schema openapi: %s\n", err);
        code = CTL_EXIT_FAIL;
        goto out;
    }
    code = json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) == 0 &&
                   fputc('\n', stdout) != EOF && fflush(stdout) == 0
               ? CTL_EXIT_OK
               : CTL_EXIT_FAIL;
    json_decref(doc);
out:
    pipe_schema_set_free(set);
    pipe_conf_cleanup(&openapi_program, &cfg);
    return code;
}

/* ---- ddl -------------------------------------------------------------------- */

struct ddl_cfg {
    char *dir;
    char *dialect;
    char *event;
    char *ns;
};

static const struct pipe_conf_opt ddl_opts[] = {
    {"dir", PIPE_CONF_STR, NULL, offsetof(struct ddl_cfg, dir), "the schema directory (required)",
     0, 0, "DIR"},
    {"dialect", PIPE_CONF_STR, NULL, offsetof(struct ddl_cfg, dialect),
     "snowflake, redshift, postgres or bigquery (required)", 0, 0, "NAME"},
    {"event", PIPE_CONF_STR, NULL, offsetof(struct ddl_cfg, event),
     "only this event type (default: every type in DIR)", 0, 0, "TYPE"},
    {"namespace", PIPE_CONF_STR, NULL, offsetof(struct ddl_cfg, ns),
     "schema (BigQuery: dataset) that qualifies every table name", 0, 0, "NAME"},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program ddl_program = {
    .name = "sluicectl schema ddl",
    .summary = "Prints one CREATE TABLE IF NOT EXISTS per event type: typed envelope columns "
               "(event, id, ts, received_at, channel), a column per top-level property declared "
               "by any version of the type's schema (objects, arrays and unions in the "
               "dialect's semi-structured type; redact \"remove\" fields have none) and the "
               "whole event in \"data\". Table and column names are described in "
               "docs/schema-tools.md.",
    .usage_args = NULL,
    .version = SLUICE_VERSION,
    .tables = {ddl_opts, NULL},
};

/* Writes the statement of one event type (its n versions v, ascending),
 * the versions newest first. */
static int ddl_one(const struct ddl_cfg *cfg, const struct pipe_schema *const *v, size_t n,
                   bool first)
{
    const char *event = pipe_schema_event(v[0]);
    const json_t **docs = pipe_calloc(n, sizeof *docs);
    ctl_schema_docs_newest(v, n, docs, n);
    char err[400];
    if (!first)
        putchar('\n');
    if (n == 1)
        printf("-- %s: schema version %d\n", event, pipe_schema_version(v[0]));
    else
        printf("-- %s: schema version %d (columns from all %zu versions)\n", event,
               pipe_schema_version(v[n - 1]), n);
    int rc = ctl_ddl_table(stdout, cfg->dialect, cfg->ns, event, docs, n, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "sluicectl schema ddl: %s: %s\n", event, err);
    pipe_free(docs);
    return rc;
}

static int schema_ddl_main(int argc, char **argv)
{
    struct ddl_cfg cfg = {0};
    struct pipe_schema_set *set = NULL;
    int first, code = CTL_EXIT_USAGE;
    char err[1400];
    int rc = pipe_conf_load(&ddl_program, &cfg, argc, argv, &first);
    if (rc < 0)
        return ctl_exit_from_conf(rc);
    if (cfg.dir == NULL || cfg.dialect == NULL || argc != first) {
        fprintf(stderr, "sluicectl schema ddl: --dir DIR and --dialect NAME are required\n");
        goto out;
    }
    if (!ctl_ddl_dialect_valid(cfg.dialect)) {
        fprintf(stderr,
                "sluicectl schema ddl: --dialect: snowflake, redshift, postgres or bigquery, "
                "not \"%s\"\n",
                cfg.dialect);
        goto out;
    }
    if (ctl_schema_dir_load(cfg.dir, &set, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl schema ddl: %s\n", err);
        goto out;
    }
    code = CTL_EXIT_OK;
    size_t written = 0;
    for (size_t i = 0; i < pipe_schema_set_types(set); i++) {
        size_t n;
        const struct pipe_schema *const *v = pipe_schema_set_type(set, i, &n);
        if (cfg.event && strcmp(cfg.event, pipe_schema_event(v[0])) != 0)
            continue;
        if (ddl_one(&cfg, v, n, written == 0) < 0)
            code = CTL_EXIT_FAIL;
        written++;
    }
    if (cfg.event && written == 0) {
        fprintf(stderr, "sluicectl schema ddl: no schema for event type \"%s\" in %s\n", cfg.event,
                cfg.dir);
        code = CTL_EXIT_FAIL;
    }
    if (fflush(stdout) != 0)
        code = CTL_EXIT_FAIL;
out:
    pipe_schema_set_free(set);
    pipe_conf_cleanup(&ddl_program, &cfg);
    return code;
}

/* ---- dispatch ------------------------------------------------------------------ */

int ctl_schema_main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } subs[] = {
        {"check", schema_check_main},
        {"openapi", schema_openapi_main},
        {"ddl", schema_ddl_main},
    };
    const char *sub = argc > 1 ? argv[1] : NULL;
    for (size_t i = 0; sub && i < sizeof subs / sizeof subs[0]; i++)
        if (strcmp(sub, subs[i].name) == 0)
            return subs[i].run(argc - 1, argv + 1);
    FILE *f = sub && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) ? stdout : stderr;
    fprintf(f, "usage: sluicectl schema check OLD.json NEW.json [--mode backward|forward|full]\n"
               "       sluicectl schema check --dir DIR [--mode ...|backward_all|forward_all|"
               "full_all]\n"
               "       sluicectl schema openapi --dir DIR [--title T] [--server URL]\n"
               "       sluicectl schema ddl --dir DIR --dialect "
               "snowflake|redshift|postgres|bigquery [--event E]\n"
               "       sluicectl schema SUBCOMMAND --help\n");
    return f == stdout ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}
