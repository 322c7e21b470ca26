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

#endif
