/* seeds_main — a libFuzzer target without libFuzzer: `make test` builds
 * every tests/fuzz/fuzz_<name>.c with this main as the unit test
 * test_seeds_<name> and feeds its LLVMFuzzerTestOneInput each file of
 * tests/fuzz/seeds/<name>/ (the inputs a fix was made for among them), one
 * cmocka case per file. A target aborts on a broken invariant and the
 * sanitizers of `make asan` report the rest, so a bug once fixed stays
 * fixed and every target keeps building between `make fuzz` runs.
 *
 * The seed directory comes from the program's own name; run from the
 * repository's root, as tests/run.sh does. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "libpipe/mem.h"
#include "tests/support/testutil.h"

#define SEEDS_PREFIX "test_seeds_"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target, as in libFuzzer. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* run_seed — one seed file through the target. */
static void run_seed(void **state)
{
    size_t n = 0;
    char *text = tu_read_file(*state, &n);
    assert_non_null(text);
    /* As libFuzzer does: the input alone in an allocation of its size, so
     * that ASan sees a read past its end. */
    uint8_t *input = pipe_malloc(n ? n : 1);
    memcpy(input, text, n);
    free(text);
    assert_int_equal(LLVMFuzzerTestOneInput(input, n), 0);
    pipe_free(input);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct CMUnitTest *)a)->name, ((const struct CMUnitTest *)b)->name);
}

int main(int argc, char **argv)
{
    const char *self = strrchr(argv[0], '/');
    self = self ? self + 1 : argv[0];
    if (strncmp(self, SEEDS_PREFIX, strlen(SEEDS_PREFIX)) != 0) {
        fprintf(stderr, "%s: the program's name must be %s<target>\n", self, SEEDS_PREFIX);
        return 2;
    }
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/seeds/%s", self + strlen(SEEDS_PREFIX));
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "%s: no seeds: cannot open %s\n", self, dir);
        return 1;
    }
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    struct CMUnitTest *cases = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, e->d_name) < 0)
            abort();
        cases = pipe_realloc(cases, (n + 1) * sizeof *cases);
        cases[n++] = (struct CMUnitTest){.name = path + strlen(dir) + 1,
                                         .test_func = run_seed,
                                         .initial_state = path};
    }
    closedir(d);
    qsort(cases, n, sizeof *cases, by_name);
    /* No seed is a failure: the case count would be 0 and the run says so. */
    int rc = _cmocka_run_group_tests(self, cases, n, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(cases[i].initial_state);
    pipe_free(cases);
    return rc;
}
