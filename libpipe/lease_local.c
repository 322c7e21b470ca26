/* lease_local — the `local` lease backend: leases shared by the processes of
 * one host through one small file per lease name in a directory, each
 * operation done under an exclusive flock() of that file. The holder's pid
 * is recorded, so the lease of a process that died (kill -9) is free at once
 * rather than at the end of its TTL.
 *
 * Nothing is fsync'ed: leases coordinate live processes, and a host crash
 * kills every holder along with the page cache. After one, a lease file may
 * come back older or empty, and its fence may start lower; nobody who held
 * the old fence is alive to be confused by it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "libpipe/url.h"
#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/lease_int.h"
#include "libpipe/log.h"
#include "libpipe/mem.h"

/* Every record is written whole at this size, padded with spaces, in one
 * pwrite(): a shorter new record never leaves the tail of an older one
 * behind, so no truncate (and no torn pair of calls) is needed. */
#define REC_SIZE 1024

struct local {
    int dirfd;
    char *dir;                 /* for messages */
    uint64_t pidns;            /* inode of our pid namespace; 0 if unknown */
    _Atomic int64_t pruned_ms; /* when free lease files were last pruned */
};

/* A lease file free for this long goes: longer than the longest TTL, so no
 * holder can still believe it holds the name (see pipe__lease_local_prune). */
#define PRUNE_FREE_MS  (PIPE_LEASE_TTL_MAX_MS + PIPE_HOUR_MS)
#define PRUNE_EVERY_MS PIPE_HOUR_MS

/* One lease file, decoded. An all-zero rec is a lease never taken. */
struct rec {
    uint64_t fence;
    char token[PIPE__LEASE_TOKEN_LEN + 1]; /* "" when released */
    pid_t pid;                             /* holder's process */
    uint64_t start;                        /* its start time (clock ticks); 0 unknown */
    uint64_t pidns;                        /* its pid namespace; 0 unknown */
    int64_t expires;                       /* wall ms */
    char name[PIPE_LEASE_NAME_MAX + 1];    /* the full name, against hash collisions */
};

/* Reads state and start time of pid from /proc/<pid>/stat. 0, -ENOENT when
 * no such process exists, or another -errno when /proc cannot tell. */
static int proc_stat(pid_t pid, char *state, uint64_t *start)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int err = errno;
    close(fd);
    if (n <= 0)
        return n < 0 ? -err : -EIO;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields start after
     * the last ')'. Then state is field 3 and starttime field 22. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -EIO;
    p += 2;
    *state = *p;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -EIO;
        p++;
    }
    *start = strtoull(p, NULL, 10);
    return 0;
}

/* Whether the process that took r may still be running. A pid in another
 * pid namespace means nothing here, so such a holder is trusted until its
 * TTL; a zombie (killed, not yet reaped) or a pid reused by a younger
 * process counts as dead. */
static bool holder_alive(const struct local *lc, const struct rec *r)
{
    if (r->pid <= 0)
        return false;
    if (r->pidns && lc->pidns && r->pidns != lc->pidns)
        return true;
    char state;
    uint64_t start;
    int rc = proc_stat(r->pid, &state, &start);
    if (rc == 0)
        return state != 'Z' && state != 'X' && (r->start == 0 || start == r->start);
    if (rc == -ENOENT)
        return false;
    return !(kill(r->pid, 0) < 0 && errno == ESRCH); /* no /proc: ask the kernel */
}

static void rec_format(const struct rec *r, char out[REC_SIZE])
{
    int n = snprintf(out, REC_SIZE,
                     "sluice-lease 1\nfence %" PRIu64 "\nowner %s\npid %d\nstart %" PRIu64
                     "\npidns %" PRIu64 "\nexpires %" PRId64 "\nname %zu:%s\n",
                     r->fence, r->token[0] ? r->token : "-", (int)r->pid, r->start, r->pidns,
                     r->expires, strlen(r->name), r->name);
    /* A 512-byte name leaves the record well under REC_SIZE. */
    memset(out + n, ' ', (size_t)(REC_SIZE - n - 1));
    out[REC_SIZE - 1] = '\n';
}

/* Decodes buf (n bytes, NUL-terminated at n). false if it is not a record. */
static bool rec_parse(const char *buf, size_t n, struct rec *r)
{
    char owner[PIPE__LEASE_TOKEN_LEN + 2] = "";
    int pid = 0, pos = -1;
    size_t len = 0;
    memset(r, 0, sizeof *r);
    if (n != REC_SIZE)
        return false;
    int got = sscanf(buf,
                     "sluice-lease 1\nfence %" SCNu64 "\nowner %33s\npid %d\nstart %" SCNu64
                     "\npidns %" SCNu64 "\nexpires %" SCNd64 "\nname %zu:%n",
                     &r->fence, owner, &pid, &r->start, &r->pidns, &r->expires, &len, &pos);
    if (got != 7 || pos < 0 || len == 0 || len > PIPE_LEASE_NAME_MAX || (size_t)pos + len >= n ||
        buf[pos + len] != '\n')
        return false;
    memcpy(r->name, buf + pos, len);
    r->name[len] = '\0';
    r->pid = pid;
    if (strcmp(owner, "-") == 0)
        return true;
    if (strlen(owner) != PIPE__LEASE_TOKEN_LEN)
        return false;
    memcpy(r->token, owner, sizeof r->token);
    return true;
}

/* Opens and locks (flock `how`) the file of name, then reads its record
 * into *r. On success the caller owns *fd_out: closing it unlocks. */
static int rec_open(struct pipe_leases *ls, const char *name, int how, int *fd_out, struct rec *r)
{
    struct local *lc = ls->impl;
    char fname[48], buf[REC_SIZE + 1];
    int rc = 0, fd = -1;
    XXH128_hash_t h = XXH3_128bits(name, strlen(name));
    snprintf(fname, sizeof fname, "%016" PRIx64 "%016" PRIx64 ".lease", (uint64_t)h.high64,
             (uint64_t)h.low64);
    /* A file unlinked between our open and our lock (by an operator or a
     * /tmp cleaner) would be a lock nobody else can see: lock, then make
     * sure the name still leads to the same inode. */
    for (int tries = 0;; tries++) {
        struct stat locked, named;
        fd = openat(lc->dirfd, fname, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            rc = -errno;
            goto fail;
        }
        while ((rc = flock(fd, how)) < 0 && errno == EINTR)
            ;
        if (rc < 0 || fstat(fd, &locked) < 0) {
            rc = -errno;
            goto fail;
        }
        if (fstatat(lc->dirfd, fname, &named, AT_SYMLINK_NOFOLLOW) == 0 &&
            named.st_ino == locked.st_ino && named.st_dev == locked.st_dev)
            break;
        close(fd);
        fd = -1;
        if (tries == 3) {
            rc = -ESTALE;
            goto fail;
        }
    }
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n < 0) {
        rc = -errno;
        goto fail;
    }
    buf[n] = '\0';
    if (n > 0 && !rec_parse(buf, (size_t)n, r)) {
        /* Only a crash or a hand edit makes one; refusing forever would
         * block the name, so start it afresh. */
        pipe_log_warn("corrupt lease file reset", "dir=\"%s\" file=%s", lc->dir, fname);
        memset(r, 0, sizeof *r);
    } else if (n == 0) {
        memset(r, 0, sizeof *r);
    }
    if (r->name[0] && strcmp(r->name, name) != 0) {
        pipe__leases_set_error(ls, "lease names \"%s\" and \"%s\" hash to the same file %s/%s",
                               r->name, name, lc->dir, fname);
        close(fd);
        return PIPE_ECORRUPT;
    }
    *fd_out = fd;
    return 0;
fail:
    pipe__leases_set_error(ls, "lease file %s/%s: %s", lc->dir, fname, pipe_strerror(rc));
    if (fd >= 0)
        close(fd);
    return PIPE_EIO;
}

static int rec_write(struct pipe_leases *ls, int fd, const struct rec *r)
{
    char buf[REC_SIZE];
    rec_format(r, buf);
    ssize_t n = pwrite(fd, buf, sizeof buf, 0);
    if (n == (ssize_t)sizeof buf)
        return 0;
    const struct local *lc = ls->impl;
    pipe__leases_set_error(ls, "writing a lease file in %s: %s", lc->dir,
                           n < 0 ? pipe_strerror(-errno) : "short write");
    return PIPE_EIO;
}

static bool owned(const struct rec *r, const char *token, uint64_t fence, int64_t now_ms)
{
    return r->token[0] && strcmp(r->token, token) == 0 && r->fence == fence && r->expires > now_ms;
}

/* This process's start time, so that a later reuse of our pid is told
 * apart from us. 0 (trust the pid alone) if /proc cannot say. */
static uint64_t self_start(void)
{
    char state;
    uint64_t start = 0;
    if (proc_stat(getpid(), &state, &start) < 0)
        return 0;
    return start;
}

static void maybe_prune(struct pipe_leases *ls, int64_t now_ms);

static int local_acquire(struct pipe_leases *ls, const char *name, const char *token,
                         int64_t now_ms, int64_t ttl_ms, uint64_t *fence)
{
    struct local *lc = ls->impl;
    struct rec r;
    int fd;
    maybe_prune(ls, now_ms);
    int rc = rec_open(ls, name, LOCK_EX, &fd, &r);
    if (rc < 0)
        return rc;
    if (r.token[0] && r.expires > now_ms) {
        if (holder_alive(lc, &r)) {
            rc = PIPE_EBUSY;
            goto out;
        }
        pipe_log_info("lease taken from a dead holder", "lease=\"%s\" pid=%d fence=%" PRIu64, name,
                      (int)r.pid, r.fence);
    }
    r.fence++;
    memcpy(r.token, token, sizeof r.token);
    r.pid = getpid();
    r.start = self_start();
    r.pidns = lc->pidns;
    r.expires = now_ms + ttl_ms;
    snprintf(r.name, sizeof r.name, "%s", name);
    rc = rec_write(ls, fd, &r);
    if (rc == 0)
        *fence = r.fence;
out:
    close(fd);
    return rc;
}

/* Opens name's record under lock and checks that token and fence still hold
 * it: 0 with the file open in *fd (the caller closes it), PIPE_ELOST (file
 * closed) when another holder has it or it expired, or rec_open's error. */
static int rec_open_owned(struct pipe_leases *ls, const char *name, const char *token,
                          uint64_t fence, int64_t now_ms, int lock, int *fd, struct rec *r)
{
    int rc = rec_open(ls, name, lock, fd, r);
    if (rc < 0)
        return rc;
    if (!owned(r, token, fence, now_ms)) {
        close(*fd);
        return PIPE_ELOST;
    }
    return 0;
}

/* renew and release: rewrite the record of a lease that is still ours with
 * a new expiry; release also clears the holder. */
static int owned_rewrite(struct pipe_leases *ls, const char *name, const char *token,
                         uint64_t fence, int64_t now_ms, int64_t expires, bool release)
{
    struct rec r;
    int fd;
    int rc = rec_open_owned(ls, name, token, fence, now_ms, LOCK_EX, &fd, &r);
    if (rc < 0)
        return rc;
    if (release) {
        /* Keep the file and its fence: the next holder must get a larger
         * one. expires then records when the name became free, for pruning. */
        r.token[0] = '\0';
        r.pid = 0;
        r.start = 0;
    }
    r.expires = expires;
    rc = rec_write(ls, fd, &r);
    close(fd);
    return rc;
}

static int local_renew(struct pipe_leases *ls, const char *name, const char *token, uint64_t fence,
                       int64_t now_ms, int64_t ttl_ms)
{
    return owned_rewrite(ls, name, token, fence, now_ms, now_ms + ttl_ms, false);
}

static int local_check(struct pipe_leases *ls, const char *name, const char *token, uint64_t fence,
                       int64_t now_ms)
{
    struct rec r;
    int fd;
    int rc = rec_open_owned(ls, name, token, fence, now_ms, LOCK_SH, &fd, &r);
    if (rc == 0)
        close(fd);
    return rc;
}

static int local_release(struct pipe_leases *ls, const char *name, const char *token,
                         uint64_t fence, int64_t now_ms)
{
    return owned_rewrite(ls, name, token, fence, now_ms, now_ms, true);
}

/* prune_one — removes the lease file fname if it has been free (released
 * or expired) for free_for_ms; a file someone holds locked is skipped. */
static bool prune_one(struct local *lc, const char *fname, int64_t now_ms, int64_t free_for_ms)
{
    char buf[REC_SIZE + 1];
    struct rec r;
    struct stat locked, named;
    bool removed = false;
    int fd = openat(lc->dirfd, fname, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &locked) < 0 ||
        fstatat(lc->dirfd, fname, &named, AT_SYMLINK_NOFOLLOW) < 0 ||
        named.st_ino != locked.st_ino || named.st_dev != locked.st_dev)
        goto out;
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        goto out;
    buf[n] = '\0';
    /* Unlinking under the lock is safe: rec_open re-checks the inode after
     * locking, so a process that opened the old file starts a new one. */
    if (rec_parse(buf, (size_t)n, &r) && (r.token[0] == '\0' || r.expires <= now_ms) &&
        now_ms - r.expires >= free_for_ms)
        removed = unlinkat(lc->dirfd, fname, 0) == 0;
out:
    close(fd);
    return removed;
}

int pipe__lease_local_prune(struct pipe_leases *ls, int64_t now_ms, int64_t free_for_ms,
                            size_t *removed)
{
    struct local *lc = ls->impl;
    size_t count = 0;
    int dfd = dup(lc->dirfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        if (dfd >= 0)
            close(dfd);
        return -errno;
    }
    rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len == 38 && strcmp(e->d_name + 32, ".lease") == 0 &&
            prune_one(lc, e->d_name, now_ms, free_for_ms))
            count++;
    }
    closedir(d);
    atomic_store(&lc->pruned_ms, now_ms);
    if (removed)
        *removed = count;
    return 0;
}

/* Prunes at most once an hour per handle, from whichever thread acquires
 * first after the hour is up. */
static void maybe_prune(struct pipe_leases *ls, int64_t now_ms)
{
    struct local *lc = ls->impl;
    int64_t last = atomic_load(&lc->pruned_ms);
    if (now_ms - last < PRUNE_EVERY_MS ||
        !atomic_compare_exchange_strong(&lc->pruned_ms, &last, now_ms))
        return;
    size_t n = 0;
    if (pipe__lease_local_prune(ls, now_ms, PRUNE_FREE_MS, &n) == 0 && n > 0)
        pipe_log_info("pruned free lease files", "dir=\"%s\" removed=%zu", lc->dir, n);
}

/* mkdir -p: parents that cannot be made are left for the final open to
 * report, with a clearer message. */
static int make_dirs(const char *path)
{
    char *p = pipe_strdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        mkdir(p, 0700);
        *s = '/';
    }
    int rc = mkdir(p, 0700) < 0 && errno != EEXIST ? -errno : 0;
    pipe_free(p);
    return rc;
}

/* Picks the directory a URL names: `local` → local_dir or a per-user one
 * under /tmp; `local:///abs/dir` → /abs/dir. NULL for any other form. */
static char *dir_from_url(const char *url, const char *local_dir, bool *is_default)
{
    *is_default = false;
    if (strcmp(url, "local") == 0) {
        if (local_dir && *local_dir)
            return pipe_strdup(local_dir);
        *is_default = true;
        return pipe_asprintf("/tmp/sluice-leases-%u", (unsigned)geteuid());
    }
    struct pipe_url u;
    enum pipe_url_part bad;
    const char *why;
    char *dir = NULL;
    if (pipe_url_parse(url, &u, &bad, &why) < 0)
        return NULL;
    if (strcmp(u.scheme, "local") == 0 && *u.host == '\0' && !u.user && u.port < 0 &&
        u.path[0] == '/' && !u.query && !u.fragment)
        dir = pipe_strdup(u.path);
    pipe_url_cleanup(&u);
    return dir;
}

static int local_open(struct pipe_leases *ls, const char *url, const char *local_dir)
{
    struct stat st;
    bool is_default;
    struct local *lc = pipe_calloc(1, sizeof *lc);
    lc->dirfd = -1;
    ls->impl = lc;
    lc->dir = dir_from_url(url, local_dir, &is_default);
    if (!lc->dir) {
        pipe__leases_set_error(ls, "lease URL must be `local` or `local:///absolute/dir`");
        return PIPE_ECONFIG;
    }
    int rc = make_dirs(lc->dir);
    if (rc == 0) {
        /* The shared default lives in /tmp: never follow a symlink there. */
        int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (is_default ? O_NOFOLLOW : 0);
        lc->dirfd = open(lc->dir, flags);
        rc = lc->dirfd < 0 || fstat(lc->dirfd, &st) < 0 ? -errno : 0;
    }
    if (rc == 0 && faccessat(lc->dirfd, ".", W_OK | X_OK, AT_EACCESS) < 0)
        rc = -errno;
    if (rc < 0) {
        pipe__leases_set_error(ls, "lease directory %s: %s", lc->dir, pipe_strerror(rc));
        return PIPE_ECONFIG;
    }
    /* Someone else's directory in /tmp could hand them our leases. */
    if (is_default && (st.st_uid != geteuid() || (st.st_mode & 022))) {
        pipe__leases_set_error(ls, "lease directory %s is not ours alone", lc->dir);
        return PIPE_ECONFIG;
    }
    if (stat("/proc/self/ns/pid", &st) == 0)
        lc->pidns = (uint64_t)st.st_ino;
    return 0;
}

static void local_close(struct pipe_leases *ls)
{
    struct local *lc = ls->impl;
    if (!lc)
        return;
    if (lc->dirfd >= 0)
        close(lc->dirfd);
    pipe_free(lc->dir);
    pipe_free(lc);
    ls->impl = NULL;
}

/* ---- generations ------------------------------------------------------- */

/* A generation is a file "<hash of name>.gen" beside the lease files (the
 * pruning above only looks at ".lease" files), holding the number in
 * decimal, rewritten whole in one pwrite under an exclusive flock. */
#define GEN_SIZE 21 /* 20 digits and a newline */

static void gen_fname(const char *name, char out[48])
{
    XXH128_hash_t h = XXH3_128bits(name, strlen(name));
    snprintf(out, 48, "%016" PRIx64 "%016" PRIx64 ".gen", (uint64_t)h.high64, (uint64_t)h.low64);
}

/* Reads the number in fd; 0 for an empty or unreadable file (a torn or
 * hand-edited one only costs a listing). */
static uint64_t gen_read_fd(int fd)
{
    char buf[GEN_SIZE + 1];
    ssize_t n = pread(fd, buf, GEN_SIZE, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtoull(buf, NULL, 10);
}

static int local_bump(struct pipe_leases *ls, const char *name, int64_t now_us)
{
    struct local *lc = ls->impl;
    char fname[48], buf[GEN_SIZE + 1];
    int rc = 0;
    gen_fname(name, fname);
    int fd = openat(lc->dirfd, fname, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) < 0) {
        rc = -errno;
        goto out;
    }
    uint64_t v = gen_read_fd(fd) + 1;
    if (now_us > 0 && (uint64_t)now_us > v)
        v = (uint64_t)now_us;
    snprintf(buf, sizeof buf, "%020" PRIu64 "\n", v);
    ssize_t w = pwrite(fd, buf, GEN_SIZE, 0);
    if (w != GEN_SIZE)
        rc = w < 0 ? -errno : PIPE_EIO;
out:
    if (rc < 0)
        pipe__leases_set_error(ls, "generation file %s/%s: %s", lc->dir, fname, pipe_strerror(rc));
    if (fd >= 0)
        close(fd);
    return rc < 0 ? PIPE_EIO : 0;
}

static int local_generations(struct pipe_leases *ls, const char *const *names, size_t n,
                             uint64_t *values)
{
    struct local *lc = ls->impl;
    for (size_t i = 0; i < n; i++) {
        char fname[48];
        gen_fname(names[i], fname);
        int fd = openat(lc->dirfd, fname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno == ENOENT) {
            values[i] = 0;
            continue;
        }
        if (fd < 0 || flock(fd, LOCK_SH) < 0) {
            int rc = -errno;
            pipe__leases_set_error(ls, "generation file %s/%s: %s", lc->dir, fname,
                                   pipe_strerror(rc));
            if (fd >= 0)
                close(fd);
            return PIPE_EIO;
        }
        values[i] = gen_read_fd(fd);
        close(fd);
    }
    return 0;
}

static const char *const local_schemes[] = {"local", NULL};

const struct pipe_lease_ops pipe__lease_local_ops = {
    .name = "local",
    .schemes = local_schemes,
    .open = local_open,
    .close = local_close,
    .acquire = local_acquire,
    .renew = local_renew,
    .check = local_check,
    .release = local_release,
    .bump = local_bump,
    .generations = local_generations,
};
