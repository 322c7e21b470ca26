/* schema_cmd — `sluicectl schema check|openapi|ddl` and the reading of schema
 * directories they share. The rules of compatibility live in
 * schema_compat.c, the generators in schema_gen.c; this file parses flags,
 * loads and checks documents, and prints. docs/schema-tools.md is the
 * user's description of all three. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/mem.h"
#include "libpipe/schema.h"
#include "tools/sluicectl/ctl.h"

/* ---- loading one document ------------------------------------------------------ */

static unsigned schema_version_of(const char *name);

/* Compiles doc with the filter's own compiler (libpipe/schema.h), so that
 * what these tools accept is exactly what the filter loads. The hash key is
 * a stand-in: only compiling, never hashing, happens here. */
static int schema_compile_check(const json_t *doc, const char *path, char *err, size_t errlen)
{
    static const unsigned char key[32] = "sluicectl-schema-compile-only!!";
    const struct pipe_schema_opts opts = {key, sizeof key};
    char event[PIPE_KEYS_EVENT_MAX + 1] = "event";
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    unsigned version = schema_version_of(base);
    if (slash != NULL) {
        /* the event directory's name, when it is one */
        const char *start = slash;
        while (start > path && start[-1] != '/')
            start--;
        size_t n = (size_t)(slash - start);
        if (n > 0 && n <= PIPE_KEYS_EVENT_MAX && pipe_keys_event_valid(start, n)) {
            memcpy(event, start, n);
            event[n] = '\0';
        }
    }
    struct pipe_schema *s = NULL;
    int rc = pipe_schema_new(doc, event, version ? (int)version : 1, path, &opts, &s, err, errlen);
    pipe_schema_free(s);
    return rc < 0 ? PIPE_EPARSE : 0;
}

int ctl_schema_load_file(const char *path, json_t **out, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        int rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > CTL_SCHEMA_FILE_MAX) {
        snprintf(err, errlen, "%s: not a regular file of at most %u bytes", path,
                 CTL_SCHEMA_FILE_MAX);
        return PIPE_EPARSE;
    }
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        return PIPE_EPARSE;
    }
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "%s: the document must be a JSON object", path);
        json_decref(doc);
        return PIPE_EPARSE;
    }
    if (schema_compile_check(doc, path, err, errlen) < 0) {
        json_decref(doc);
        return PIPE_EPARSE;
    }
    *out = doc;
    return 0;
}

/* ---- directories ------------------------------------------------------------ */

static int schema_cmp_version(const void *a, const void *b)
{
    unsigned x = ((const struct ctl_schema_version *)a)->version;
    unsigned y = ((const struct ctl_schema_version *)b)->version;
    return (x > y) - (x < y);
}

static int schema_cmp_type(const void *a, const void *b)
{
    return strcmp(((const struct ctl_schema_type *)a)->event,
                  ((const struct ctl_schema_type *)b)->event);
}

/* "12.json" -> 12; 0 for anything else ("012.json", "0.json", "x.json"). */
static unsigned schema_version_of(const char *name)
{
    size_t n = strlen(name);
    if (n < 6 || n > 14 || strcmp(name + n - 5, ".json") != 0 || name[0] < '1' || name[0] > '9')
        return 0;
    unsigned long v = 0;
    for (size_t i = 0; i < n - 5; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (unsigned long)(name[i] - '0');
    }
    return v <= 1000000000UL ? (unsigned)v : 0;
}

static void schema_type_cleanup(struct ctl_schema_type *t)
{
    for (size_t i = 0; i < t->n; i++) {
        pipe_free(t->versions[i].path);
        json_decref(t->versions[i].doc);
    }
    pipe_free(t->versions);
    pipe_free(t->event);
    memset(t, 0, sizeof *t);
}

/* Loads the versions of one event type from its directory into t. */
static int schema_load_type(const char *dir, const char *event, struct ctl_schema_type *t,
                            char *err, size_t errlen)
{
    char *path = pipe_asprintf("%s/%s", dir, event);
    DIR *d = opendir(path);
    int rc = 0;
    t->event = pipe_strdup(event);
    if (d == NULL) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    size_t cap = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        unsigned v = schema_version_of(e->d_name);
        if (v == 0) {
            snprintf(err, errlen, "%s/%s: a schema file is named <version>.json, 1, 2, ...", path,
                     e->d_name);
            rc = PIPE_EPARSE;
            break;
        }
        if (t->n == cap) {
            cap = cap ? cap * 2 : 4;
            t->versions = pipe_realloc(t->versions, cap * sizeof *t->versions);
        }
        struct ctl_schema_version *sv = &t->versions[t->n];
        sv->version = v;
        sv->path = pipe_asprintf("%s/%s", path, e->d_name);
        sv->doc = NULL;
        rc = ctl_schema_load_file(sv->path, &sv->doc, err, errlen);
        if (rc < 0)
            pipe_free(sv->path);
        else
            t->n++;
    }
    closedir(d);
    if (rc == 0 && t->n > 1)
        qsort(t->versions, t->n, sizeof *t->versions, schema_cmp_version);
out:
    pipe_free(path);
    return rc;
}

int ctl_schema_dir_load(const char *dir, struct ctl_schema_set *out, char *err, size_t errlen)
{
    struct ctl_schema_set set = {0};
    size_t cap = 0;
    int rc = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return rc;
    }
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char *path = pipe_asprintf("%s/%s", dir, e->d_name);
        struct stat st;
        bool is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
        pipe_free(path);
        if (!is_dir)
            continue; /* a README or the like next to the event directories */
        if (!pipe_keys_event_valid(e->d_name, strlen(e->d_name))) {
            snprintf(err, errlen, "%s/%s: not a valid event type name", dir, e->d_name);
            rc = PIPE_EPARSE;
            break;
        }
        if (set.n == cap) {
            cap = cap ? cap * 2 : 16;
            set.types = pipe_realloc(set.types, cap * sizeof *set.types);
        }
        memset(&set.types[set.n], 0, sizeof set.types[set.n]);
        rc = schema_load_type(dir, e->d_name, &set.types[set.n], err, errlen);
        if (rc == 0 && set.types[set.n].n == 0) {
            schema_type_cleanup(&set.types[set.n]); /* an empty directory: no schema yet */
            continue;
        }
        set.n++; /* counted even on failure, so that cleanup frees it */
    }
    closedir(d);
    if (rc < 0) {
        ctl_schema_set_cleanup(&set);
        return rc;
    }
    if (set.n > 1) /* qsort's array may not be NULL, even for 0 elements */
        qsort(set.types, set.n, sizeof *set.types, schema_cmp_type);
    *out = set;
    return 0;
}

void ctl_schema_set_cleanup(struct ctl_schema_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        schema_type_cleanup(&s->types[i]);
    pipe_free(s->types);
    memset(s, 0, sizeof *s);
}

/* ---- check ------------------------------------------------------------------ */

struct check_cfg {
    char *dir;
    char *mode;
};

static const struct pipe_conf_opt check_opts[] = {
    {"dir", PIPE_CONF_STR, NULL, offsetof(struct check_cfg, dir),
     "check every event type's highest version against its previous one", 0, 0, "DIR"},
    {"mode", PIPE_CONF_STR, "full", offsetof(struct check_cfg, mode),
     "backward (NEW reads OLD data), forward (OLD reads NEW data) or full (both)", 0, 0, "MODE"},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program check_program = {
    .name = "sluicectl schema check",
    .summary = "Tells whether two versions of an event schema are compatible, naming every "
               "breaking change as \"PATH: CHANGE: CONSEQUENCE\", one per line on stdout. With "
               "--dir, compares each event type's highest version with the one before it "
               "(lines prefixed \"EVENT vOLD->vNEW: \"). Exit 0 compatible, 1 breaking changes, 2 "
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

static int check_mode_parse(const char *s, enum ctl_compat_mode *out)
{
    if (strcmp(s, "backward") == 0)
        *out = CTL_COMPAT_BACKWARD;
    else if (strcmp(s, "forward") == 0)
        *out = CTL_COMPAT_FORWARD;
    else if (strcmp(s, "full") == 0)
        *out = CTL_COMPAT_FULL;
    else
        return PIPE_ECONFIG;
    return 0;
}

static int check_files(const char *old_path, const char *new_path, enum ctl_compat_mode mode)
{
    json_t *o = NULL, *n = NULL;
    char err[1400];
    int code = CTL_EXIT_USAGE;
    if (ctl_schema_load_file(old_path, &o, err, sizeof err) < 0 ||
        ctl_schema_load_file(new_path, &n, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl schema check: %s\n", err);
        goto out;
    }
    struct check_print p = {"", 0};
    size_t breaking = ctl_schema_compat(o, n, mode, check_print_breaking, check_print_note, &p);
    fprintf(stderr, "sluicectl schema check: %zu breaking change%s\n", breaking,
            breaking == 1 ? "" : "s");
    code = breaking ? CTL_EXIT_FAIL : CTL_EXIT_OK;
out:
    json_decref(o);
    json_decref(n);
    return code;
}

static int check_dir(const char *dir, enum ctl_compat_mode mode)
{
    struct ctl_schema_set set;
    char err[1400];
    if (ctl_schema_dir_load(dir, &set, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl schema check: %s\n", err);
        return CTL_EXIT_USAGE;
    }
    size_t breaking = 0, compared = 0;
    for (size_t i = 0; i < set.n; i++) {
        const struct ctl_schema_type *t = &set.types[i];
        if (t->n < 2)
            continue;
        const struct ctl_schema_version *a = &t->versions[t->n - 2], *b = &t->versions[t->n - 1];
        char prefix[200];
        snprintf(prefix, sizeof prefix, "%s v%u->v%u: ", t->event, a->version, b->version);
        struct check_print p = {prefix, 0};
        breaking +=
            ctl_schema_compat(a->doc, b->doc, mode, check_print_breaking, check_print_note, &p);
        compared++;
    }
    fprintf(stderr,
            "sluicectl schema check: %zu event types, %zu with a previous version compared, "
            "%zu breaking change%s\n",
            set.n, compared, breaking, breaking == 1 ? "" : "s");
    ctl_schema_set_cleanup(&set);
    return breaking ? CTL_EXIT_FAIL : CTL_EXIT_OK;
}

static int schema_check_main(int argc, char **argv)
{
    struct check_cfg cfg = {0};
    int first, code = CTL_EXIT_USAGE;
    int rc = pipe_conf_load(&check_program, &cfg, argc, argv, &first);
    if (rc < 0)
        return ctl_exit_from_conf(rc);
    enum ctl_compat_mode mode;
    int nargs = argc - first;
    if (check_mode_parse(cfg.mode, &mode) < 0) {
        fprintf(stderr, "sluicectl schema check: --mode: backward, forward or full, not \"%s\"\n",
                cfg.mode);
    } else if (cfg.dir != NULL && nargs == 0) {
        code = check_dir(cfg.dir, mode);
    } else if (cfg.dir == NULL && nargs == 2) {
        code = check_files(argv[first], argv[first + 1], mode);
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
    struct ctl_schema_set set = {0};
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
    json_t *doc = ctl_openapi_build(&set, cfg.title, cfg.server, err, sizeof err);
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
    ctl_schema_set_cleanup(&set);
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

/* Writes the statement of one event type, its versions newest first. */
static int ddl_one(const struct ddl_cfg *cfg, const struct ctl_schema_type *t, bool first)
{
    const json_t **docs = pipe_calloc(t->n, sizeof *docs);
    for (size_t i = 0; i < t->n; i++)
        docs[i] = t->versions[t->n - 1 - i].doc;
    char err[400];
    if (!first)
        putchar('\n');
    if (t->n == 1)
        printf("-- %s: schema version %u\n", t->event, t->versions[0].version);
    else
        printf("-- %s: schema version %u (columns from all %zu versions)\n", t->event,
               t->versions[t->n - 1].version, t->n);
    int rc = ctl_ddl_table(stdout, cfg->dialect, cfg->ns, t->event, docs, t->n, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "sluicectl schema ddl: %s: %s\n", t->event, err);
    pipe_free(docs);
    return rc;
}

static int schema_ddl_main(int argc, char **argv)
{
    struct ddl_cfg cfg = {0};
    struct ctl_schema_set set = {0};
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
    for (size_t i = 0; i < set.n; i++) {
        if (cfg.event && strcmp(cfg.event, set.types[i].event) != 0)
            continue;
        if (ddl_one(&cfg, &set.types[i], written == 0) < 0)
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
    ctl_schema_set_cleanup(&set);
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
               "       sluicectl schema check --dir DIR [--mode ...]\n"
               "       sluicectl schema openapi --dir DIR [--title T] [--server URL]\n"
               "       sluicectl schema ddl --dir DIR --dialect "
               "snowflake|redshift|postgres|bigquery [--event E]\n"
               "       sluicectl schema SUBCOMMAND --help\n");
    return f == stdout ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}
