/* testutil — helpers shared by the cmocka unit and contract tests. */
#ifndef SLUICE_TESTUTIL_H
#define SLUICE_TESTUTIL_H

#include <stddef.h>

/* tu_tmpdir — a new empty directory under $SLUICE_TEST_ROOT (or /tmp);
 * returns a malloc'd path the caller frees after tu_rmrf. */
char *tu_tmpdir(const char *tag);
/* tu_rmrf — removes a directory tree (ignores errors). */
void tu_rmrf(const char *path);
/* tu_write_file / tu_read_file — whole-file helpers; read returns a
 * malloc'd NUL-terminated buffer (or NULL) and its length. */
int tu_write_file(const char *path, const void *data, size_t len);
char *tu_read_file(const char *path, size_t *len);

/* tu_unsetenv_prefix — unsets every environment variable whose name
 * starts with prefix ("AWS_", "SLUICE_"), so a test sees only what it sets. */
void tu_unsetenv_prefix(const char *prefix);

struct pipe_store;
struct pipe_leases;

/* A file:// store and a local lease directory in a fresh temporary
 * directory: the environment most backend tests start from. */
struct tu_env {
    char *dir;       /* absolute temp dir */
    char *store_url; /* file://<dir>/store */
    char *lease_url; /* local://<dir>/leases */
    struct pipe_store *store;
    struct pipe_leases *leases;
};

/* tu_env_new — makes and opens one (tag names the temp dir); NULL if
 * anything fails. tu_env_free closes it and removes the directory. */
struct tu_env *tu_env_new(const char *tag);
void tu_env_free(struct tu_env *e);

#endif
