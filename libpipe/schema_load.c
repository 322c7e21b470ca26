/* schema_load — the one reader of schema files: the directory walk
 * (<dir>/<event>/<N>.json), the limits (PIPE_SCHEMA_FILE_MAX bytes per file,
 * versions 1..PIPE_SCHEMA_MAX_VERSION, event types by pipe_event_type_valid)
 * and the error format ("PATH: problem", "PATH:LINE:COLUMN: problem" for
 * JSON) for the filter and every sluicectl command. docs/schemas.md
 * describes the layout and the limits. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libpipe/err.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"
#include "libpipe/schema_int.h"

static int cmp_dirent(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int pipe_schema_file_version(const char *name)
{
    long v = 0;
    const char *p = name;
    if (*p < '1' || *p > '9')
        return 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v > PIPE_SCHEMA_MAX_VERSION)
            return 0;
    }
    return strcmp(p, ".json") == 0 ? (int)v : 0;
}

static int read_capped(const char *path, struct pipe_buf *b)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    char chunk[8192];
    ssize_t n;
    while (rc == 0 && (n = read(fd, chunk, sizeof chunk)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        rc = n < 0 ? -errno : pipe_buf_append(b, chunk, (size_t)n);
    }
    close(fd);
    return rc;
}

int pipe_schema_load_file(const char *path, const char *event, int version,
                          const struct pipe_schema_opts *opts, struct pipe_schema **out, char *err,
                          size_t errlen)
{
    struct pipe_buf b;
    pipe_buf_init(&b, PIPE_SCHEMA_FILE_MAX);
    json_t *doc = NULL;
    int rc = read_capped(path, &b);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path,
                 rc == PIPE_ETOOBIG ? "over 1 MiB: not a schema" : pipe_strerror(rc));
        goto out;
    }
    json_error_t je;
    doc = json_loadb(b.data ? b.data : "", b.len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        rc = PIPE_EINVAL;
        goto out;
    }
    rc = pipe_schema_new(doc, event, version, path, opts, out, err, errlen);
out:
    json_decref(doc);
    pipe_buf_cleanup(&b);
    return rc;
}

struct loading {
    const struct pipe_schema_opts *opts;
    bool strict;
    struct pipe_schema **all;
    size_t n, cap;
    char *err;
    size_t errlen;
};

/* misfit — an entry that does not fit the layout. Skipped with a warning,
 * or, when strict and it looks like a schema (looks_like), an error. */
static int misfit(struct loading *l, const char *path, bool looks_like, const char *why)
{
    if (l->strict && looks_like) {
        snprintf(l->err, l->errlen, "%s: %s", path, why);
        return PIPE_EINVAL;
    }
    if (!l->strict)
        pipe_log_warn("schema path ignored", "path=\"%s\" why=\"%s\"", path, why);
    return 0;
}

static bool is_json_name(const char *name)
{
    size_t n = strlen(name);
    return n >= 5 && strcmp(name + n - 5, ".json") == 0;
}

/* load_type_dir — every <N>.json of dir/event. */
static int load_type_dir(struct loading *l, const char *dir, const char *event)
{
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/%s", dir, event);
    struct dirent **ents = NULL;
    int n = scandir(sub, &ents, NULL, cmp_dirent), rc = 0;
    if (n < 0) {
        rc = -errno;
        snprintf(l->err, l->errlen, "%s: %s", sub, pipe_strerror(rc));
        return rc;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        const char *name = ents[i]->d_name;
        char path[4096 + 300];
        snprintf(path, sizeof path, "%s/%s", sub, name);
        int version = pipe_schema_file_version(name);
        struct stat st;
        if (name[0] == '.')
            continue;
        if (version == 0) {
            rc = misfit(l, path, is_json_name(name),
                        "a schema file is named <N>.json: 1, 2, ... without leading zeros");
            continue;
        }
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            rc = misfit(l, path, true, "not a regular file");
            continue;
        }
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 16;
            l->all = pipe_realloc(l->all, l->cap * sizeof *l->all);
        }
        rc = pipe_schema_load_file(path, event, version, l->opts, &l->all[l->n], l->err, l->errlen);
        if (rc == 0)
            l->n++;
    }
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
    return rc;
}

/* load_entry — one entry of the top directory: an event type's directory
 * is loaded, anything else skipped (or refused, see misfit). */
static int load_entry(struct loading *l, const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (name[0] == '.')
        return 0;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return misfit(l, path, false, "not <event>/<N>.json");
    if (!pipe_event_type_valid(name, strlen(name)))
        return misfit(l, path, true,
                      "not an event type (^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$): not a schema "
                      "directory");
    return load_type_dir(l, dir, name);
}

int pipe_schema_set_load(const char *dir, const struct pipe_schema_opts *opts,
                         struct pipe_schema_set **out, char *err, size_t errlen)
{
    struct loading l = {.opts = opts, .strict = opts && opts->strict, .err = err, .errlen = errlen};
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, cmp_dirent), rc = 0;
    if (n < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", dir, pipe_strerror(rc));
        return rc;
    }
    for (int i = 0; i < n && rc == 0; i++)
        rc = load_entry(&l, dir, ents[i]->d_name);
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
    if (rc < 0) {
        for (size_t i = 0; i < l.n; i++)
            pipe_schema_free(l.all[i]);
        pipe_free(l.all);
        return rc;
    }
    *out = pipe__schema_set_new(l.all, l.n);
    return 0;
}

void pipe_schema_set_free(struct pipe_schema_set *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->n_all; i++)
        pipe_schema_free(s->all[i]);
    pipe__schema_set_index_free(s);
}
