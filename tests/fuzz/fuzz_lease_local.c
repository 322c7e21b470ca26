/* libFuzzer target: the lease files of the `local` lease backend, which a
 * crash, a full disk or an operator can leave holding any bytes. Through
 * the public lease API only: the input becomes the file of one lease name
 * in a private lease directory, then two handles acquire, check, renew and
 * release that lease. Whatever the file held: nothing crashes, at most one
 * holder owns the lease at a time, a holder's operations succeed while it
 * holds it, a stranger's token never checks, renews or releases it, and
 * the fence of the next holder is the previous one plus one (so what the
 * backend wrote reads back).
 *
 * The first input byte picks the form: odd writes the rest padded with
 * spaces to the size of a record the backend writes (so the fuzzer can
 * vary the fields of a well-formed record); even writes the rest as is. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libpipe/err.h"
#include "libpipe/lease.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "split/g1-2026112217-0123456789abcdef"
#define TTL  60000

static char dir[32];        /* the private lease directory */
static char url[512];       /* local:///tmp/... */
static char path[600];      /* the lease file of NAME */
static size_t rec_size;     /* the size of a record the backend writes */
static uint8_t *shaped_buf; /* rec_size bytes */

static void check(int ok, const char *what, int rc)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz_lease_local: %s (rc %d: %s)\n", what, rc, pipe_strerror(rc));
    abort();
}

static struct pipe_leases *open_leases(void)
{
    struct pipe_leases *ls = NULL;
    int rc = pipe_leases_open(url, NULL, &ls);
    check(rc == 0, "cannot open the lease directory", rc);
    return ls;
}

/* At exit: the lease directory and what the backend left in it. */
static void remove_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char p[sizeof dir + 256];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* Takes NAME once so that the backend makes its file, then finds that
 * file (the only one in a fresh directory) and the size of its record. */
static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/fuzz-lease-XXXXXX");
    check(mkdtemp(dir) != NULL, "mkdtemp", 0);
    atexit(remove_dir);
    snprintf(url, sizeof url, "local://%s", dir);
    pipe_log_init("fuzz_lease_local", PIPE_LOG_OFF);
    struct pipe_leases *ls = open_leases();
    struct pipe_lease l;
    int rc = pipe_lease_acquire(ls, NAME, TTL, &l);
    check(rc == 0, "first acquire", rc);
    check(pipe_lease_release(ls, &l) == 0, "first release", 0);
    pipe_leases_free(ls);
    DIR *d = opendir(dir);
    check(d != NULL, "opendir", 0);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 6 && strcmp(e->d_name + n - 6, ".lease") == 0)
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    struct stat st;
    check(path[0] && stat(path, &st) == 0 && st.st_size > 0, "no lease file", 0);
    rec_size = (size_t)st.st_size;
    shaped_buf = malloc(rec_size);
}

static void write_file(const uint8_t *data, size_t size)
{
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    if (data[0] & 1) {
        size_t keep = n < rec_size ? n : rec_size;
        memcpy(shaped_buf, body, keep);
        memset(shaped_buf + keep, ' ', rec_size - keep);
        shaped_buf[rec_size - 1] = '\n';
        body = shaped_buf;
        n = rec_size;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    check(fd >= 0, "open the lease file", 0);
    check(write(fd, body, n) == (ssize_t)n, "write the lease file", 0);
    close(fd);
}

/* A lease struct with the name and fence of a real one but a token no
 * lease file can hold (the backend reads tokens up to whitespace). */
static void stranger_fails(struct pipe_leases *ls, uint64_t fence)
{
    struct pipe_lease f = {.name = pipe_strdup(NAME), .fence = fence};
    memset(f.token, ' ', sizeof f.token - 1);
    f.expires_ms = INT64_MAX;
    int rc = pipe_lease_check(ls, &f);
    check(rc == PIPE_ELOST, "a stranger's token checks", rc);
    rc = pipe_lease_renew(ls, &f, TTL);
    check(rc == PIPE_ELOST, "a stranger's token renews", rc);
    rc = pipe_lease_release(ls, &f);
    check(rc == PIPE_ELOST, "a stranger's token releases", rc);
}

/* a holds the lease: it keeps it against b and strangers, then hands it
 * over to b with the next fence. */
static void held(struct pipe_leases *a, struct pipe_leases *b, struct pipe_lease *la)
{
    struct pipe_lease lb;
    int rc = pipe_lease_check(a, la);
    check(rc == 0, "holder's check", rc);
    rc = pipe_lease_renew(a, la, TTL);
    check(rc == 0, "holder's renew", rc);
    check(pipe_lease_check(a, la) == 0, "holder's check after renew", rc);
    rc = pipe_lease_acquire(b, NAME, TTL, &lb);
    check(rc == PIPE_EBUSY, "two holders: the second handle took a held lease", rc);
    rc = pipe_lease_acquire(a, NAME, TTL, &lb);
    check(rc == PIPE_EBUSY, "two holders: the holder's handle took it again", rc);
    stranger_fails(b, la->fence);
    uint64_t fence = la->fence;
    rc = pipe_lease_release(a, la);
    check(rc == 0, "holder's release", rc);
    check(pipe_lease_check(a, la) == PIPE_ELOST, "released lease still checks", 0);
    rc = pipe_lease_acquire(b, NAME, TTL, &lb);
    check(rc == 0, "a released lease cannot be taken", rc);
    check(lb.fence == fence + 1, "the next holder's fence is not the previous one plus one", 0);
    rc = pipe_lease_release(b, &lb);
    check(rc == 0, "second holder's release", rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (rec_size == 0)
        setup();
    write_file(data, size);
    /* Fresh handles, as a starting stage opens one: the first acquire of a
     * handle also prunes the directory, which reads the file too. */
    struct pipe_leases *a = open_leases(), *b = open_leases();
    struct pipe_lease la;
    int rc = pipe_lease_acquire(a, NAME, TTL, &la);
    if (rc == 0) {
        held(a, b, &la);
    } else if (rc == PIPE_EBUSY) {
        /* A live holder per the file (this process, pid 1, another pid
         * namespace): nobody else gets in, and a stranger cannot act. */
        stranger_fails(b, 1);
    } else {
        /* The file names another lease (a hash collision, or a copied
         * file): both handles refuse the same way. */
        check(rc == PIPE_ECORRUPT, "acquire failed", rc);
        struct pipe_lease lb;
        check(pipe_lease_acquire(b, NAME, TTL, &lb) == PIPE_ECORRUPT, "second refusal differs", 0);
    }
    pipe_leases_free(b);
    pipe_leases_free(a);
    return 0;
}
