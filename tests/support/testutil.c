/* testutil — temporary directories and whole-file helpers for tests. */
#include "tests/support/testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/lease.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"

char *tu_tmpdir(const char *tag)
{
    const char *root = getenv("SLUICE_TEST_ROOT");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/%s.XXXXXX", root && *root ? root : "/tmp", tag);
    if (mkdtemp(tmpl) == NULL)
        return NULL;
    return strdup(tmpl);
}

void tu_unsetenv_prefix(const char *prefix)
{
    extern char **environ;
    size_t n = strlen(prefix);
    for (char **e = environ; *e;) {
        if (strncmp(*e, prefix, n) != 0) {
            e++;
            continue;
        }
        char *name = pipe_strndup(*e, strcspn(*e, "="));
        unsetenv(name); /* environ shifts down: look at *e again */
        pipe_free(name);
    }
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void tu_rmrf(const char *path)
{
    if (path)
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) {
        p[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return p;
}

struct tu_env *tu_env_new(const char *tag)
{
    struct tu_env *e = pipe_calloc(1, sizeof *e);
    char *tmp = tu_tmpdir(tag);
    e->dir = tmp ? realpath(tmp, NULL) : NULL;
    free(tmp);
    if (e->dir == NULL) {
        pipe_free(e);
        return NULL;
    }
    e->store_url = pipe_asprintf("file://%s/store", e->dir);
    e->lease_url = pipe_asprintf("local://%s/leases", e->dir);
    if (pipe_store_open(e->store_url, &e->store) != 0 ||
        pipe_leases_open(e->lease_url, NULL, &e->leases) != 0) {
        tu_env_free(e);
        return NULL;
    }
    return e;
}

void tu_env_free(struct tu_env *e)
{
    if (e == NULL)
        return;
    pipe_leases_free(e->leases);
    pipe_store_free(e->store);
    tu_rmrf(e->dir);
    free(e->dir);
    pipe_free(e->store_url);
    pipe_free(e->lease_url);
    pipe_free(e);
}
