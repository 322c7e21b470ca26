/* store_fs — the `file://` store backend: a key is a path under a root
 * directory. Put writes a dot-named temp file in the target's directory,
 * fsyncs it, renames it over the target and fsyncs the directory, so readers
 * see whole objects and a returned put survives a crash. The only state is
 * the root's directory fd, so a handle is safe to share between threads.
 *
 * Known differences from S3: an object and a "directory" cannot share a name
 * (with "a" stored, put "a/b" fails with -ENOTDIR, and the reverse with
 * -EISDIR), and delete is not fsynced (a delete lost in a crash is redone by
 * the next sweep). Temp files of a crashed writer stay as ".tmp.*" files,
 * which list never shows; one older than tmp_max_age (URL parameter,
 * seconds, default an hour: far longer than any live put takes to rename
 * its file) is removed by tidy, which walks the whole tree (a daemon's
 * start: pipe_store_tidy), and whenever a listing reads its directory, so
 * the sweeps clear them as they go; opening the store reads nothing, so a
 * --once run or a sluicectl command costs no walk of a large tree. The etag
 * is "<mtime ns>-<size>-<inode>" in hex: each put renames a new inode into
 * place, so it changes on every rewrite. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "libpipe/url.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/store_int.h"

/* A put retries this often when a concurrent delete removes the directory
 * it has just created (delete prunes empty directories). */
#define FS_PUT_ATTEMPTS 16

#define FS_TMP_PREFIX    ".tmp."
#define FS_TMP_MAX_AGE_S 3600 /* default age past which a temp file is a dead put's */
#define FS_TMP_MAX_DEPTH 128  /* directories deep, for tidy's walk */
#define FS_TMP_URL_PARAM "tmp_max_age"

struct fs_store {
    int rootfd;
    char *root; /* as given in the URL, for messages */
    int64_t tmp_max_age_s;
};

static atomic_uint_least64_t tmp_counter;

/* ---- open / close ---------------------------------------------------- */

/* fsync the directory containing path (relative to dirfd), so that an entry
 * just created in it survives a crash. */
static int fsync_parent(int dirfd, const char *path)
{
    char parent[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(parent, sizeof parent, ".");
    else if (slash == path)
        snprintf(parent, sizeof parent, "/");
    else
        snprintf(parent, sizeof parent, "%.*s", (int)(slash - path), path);
    int fd = openat(dirfd, parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Creates directory dir (relative to dirfd) and any missing parents,
 * fsyncing the parent of each one created. dir is modified while it runs and
 * restored. An existing directory is success. */
static int make_dirs(int dirfd, char *dir)
{
    if (mkdirat(dirfd, dir, 0777) == 0)
        return fsync_parent(dirfd, dir);
    if (errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return -errno;
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return -ENOENT;
    *slash = '\0';
    int rc = make_dirs(dirfd, dir);
    *slash = '/';
    if (rc < 0)
        return rc;
    if (mkdirat(dirfd, dir, 0777) == 0)
        return fsync_parent(dirfd, dir);
    return errno == EEXIST ? 0 : -errno;
}

/* fs_parse_url — the root directory and temp-file bound of file:///abs/path,
 * file://localhost/abs/path or file://./rel (file://../rel), relative to
 * the working directory at open time, optionally with ?tmp_max_age=SECONDS.
 * No percent-decoding: the path is used as written. *dir is the caller's. */
static int fs_parse_url(const char *url, char **dir, int64_t *max_age_s)
{
    struct pipe_url u;
    enum pipe_url_part bad;
    const char *why;
    if (pipe_url_parse(url, &u, &bad, &why) < 0)
        return PIPE_ECONFIG;
    int rc = PIPE_ECONFIG;
    int64_t age = FS_TMP_MAX_AGE_S;
    const char *q = u.query ? u.query : "";
    struct pipe_url_param p;
    while (pipe_url_query_next(&q, &p)) {
        char *end = NULL;
        errno = 0;
        long long v = p.value ? strtoll(p.value, &end, 10) : 0;
        if (!pipe_url_param_is(&p, FS_TMP_URL_PARAM) || !p.value || errno ||
            end != p.value + p.value_len || p.value_len == 0 || v < 1)
            goto out;
        age = v;
    }
    if (strcmp(u.scheme, "file") != 0 || *u.host || u.user || u.port >= 0 || u.fragment ||
        (u.path[0] != '/' && !u.relative) || strlen(u.path) >= PATH_MAX - 1)
        goto out;
    *dir = pipe_strdup(u.path);
    *max_age_s = age;
    rc = 0;
out:
    pipe_url_cleanup(&u);
    return rc;
}

/* reap_tmp — removes name, in directory dirfd, if it is a temp file older
 * than max_age_s: what a put killed before its rename left. A put in
 * progress writes, fsyncs and renames its file within seconds; if one ever
 * took longer than the bound, its rename fails and the put reports an
 * error, so nothing acknowledged is lost. */
static void reap_tmp(int dirfd, const char *name, int64_t max_age_s)
{
    struct stat st;
    if (strncmp(name, FS_TMP_PREFIX, strlen(FS_TMP_PREFIX)) != 0 ||
        fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
        return;
    if ((int64_t)time(NULL) - (int64_t)st.st_mtime >= max_age_s)
        (void)unlinkat(dirfd, name, 0);
}

/* reap_tree — reap_tmp over every directory below dirfd (which it closes). */
static void reap_tree(int fd, int64_t max_age_s, int depth)
{
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return;
    }
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) {
            int sub =
                depth < FS_TMP_MAX_DEPTH
                    ? openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    : -1;
            if (sub >= 0) {
                reap_tree(sub, max_age_s, depth + 1);
                continue;
            }
        }
        reap_tmp(dirfd(d), de->d_name, max_age_s);
    }
    closedir(d);
}

static int fs_open(struct pipe_store *s, const char *url)
{
    char *dir = NULL;
    int64_t tmp_max_age_s = 0;
    int rc = fs_parse_url(url, &dir, &tmp_max_age_s);
    const char *path = dir;
    if (rc < 0) {
        pipe__store_set_error(s,
                              "store URL \"%.200s\": want file:///abs/path or "
                              "file://./rel/path, optionally with ?tmp_max_age=SECONDS (>= 1)",
                              url);
        goto out;
    }
    rc = make_dirs(AT_FDCWD, dir);
    if (rc < 0) {
        pipe__store_set_error(s, "store root %s: mkdir: %s", path, pipe_strerror(rc));
        goto out;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        pipe__store_set_error(s, "store root %s: open: %s", path, pipe_strerror(rc));
        goto out;
    }
    struct fs_store *fs = pipe_malloc(sizeof *fs);
    fs->rootfd = fd;
    fs->root = dir;
    fs->tmp_max_age_s = tmp_max_age_s;
    dir = NULL;
    s->priv = fs;
out:
    pipe_free(dir);
    return rc;
}

/* Removes old temp files anywhere under the root (pipe_store_tidy). */
static int fs_tidy(struct pipe_store *s)
{
    struct fs_store *fs = s->priv;
    int walk = openat(fs->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (walk >= 0)
        reap_tree(walk, fs->tmp_max_age_s, 0);
    return 0;
}

static void fs_close(struct pipe_store *s)
{
    struct fs_store *fs = s->priv;
    close(fs->rootfd);
    pipe_free(fs->root);
    pipe_free(fs);
}

/* ---- put / get / stat / delete --------------------------------------- */

#define FS_IOV_BATCH 64 /* parts handed to one writev */

/* Writes parts[0..n) to fd in order, as many parts a call as writev takes,
 * resuming after short writes. */
static int write_parts(int fd, const struct pipe_store_part *parts, size_t n)
{
    size_t i = 0, done = 0; /* part i, of which done bytes are written */
    while (i < n) {
        struct iovec iov[FS_IOV_BATCH];
        int cnt = 0;
        for (size_t j = i; j < n && cnt < FS_IOV_BATCH; j++) {
            size_t skip = j == i ? done : 0;
            if (parts[j].len > skip)
                iov[cnt++] = (struct iovec){(char *)parts[j].data + skip, parts[j].len - skip};
        }
        if (cnt == 0)
            break; /* only empty parts are left */
        ssize_t w = writev(fd, iov, cnt);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        /* Advance past what was written (empty parts on the way too). */
        for (size_t left = (size_t)w; left > 0;) {
            size_t rest = parts[i].len - done;
            if (left < rest) {
                done += left;
                break;
            }
            left -= rest;
            i++;
            done = 0;
        }
    }
    return 0;
}

/* Creates a new temp file next to key (creating its directory if needed)
 * and returns its fd; the name goes to tmp (PATH_MAX bytes). */
static int fs_create_tmp(struct pipe_store *s, const char *key, char *tmp)
{
    struct fs_store *fs = s->priv;
    const char *slash = strrchr(key, '/');
    int dlen = slash ? (int)(slash - key) : 0;
    char dir[PIPE_STORE_KEY_MAX + 1];
    snprintf(dir, sizeof dir, "%.*s", dlen, key);
    int rc = 0;
    int attempt = 0;
    for (; attempt < FS_PUT_ATTEMPTS; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned long long n = atomic_fetch_add(&tmp_counter, 1);
        snprintf(tmp, PATH_MAX, "%s%s.tmp.%ld.%llx.%lx", dir, dlen ? "/" : "", (long)getpid(), n,
                 (unsigned long)ts.tv_nsec);
        int fd = openat(fs->rootfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0)
            return fd;
        rc = -errno;
        if (rc == -EEXIST)
            continue;
        if (rc != -ENOENT || dlen == 0)
            break;
        /* The directory is missing, or a concurrent delete pruned it after
         * we created it: (re)create and try again. */
        rc = make_dirs(fs->rootfd, dir);
        if (rc < 0 && rc != -ENOENT) /* ENOENT: pruned again while we made it */
            break;
    }
    if (attempt == FS_PUT_ATTEMPTS) /* directories pruned under us every time */
        rc = PIPE_EIO;
    pipe__store_set_error(s, "put %s: create temp in %s/%s: %s", key, fs->root, dir,
                          pipe_strerror(rc));
    return rc;
}

/* fs_put_parts — writes the parts to a new temp file next to key, fsyncs
 * it, renames it over key and fsyncs the directory: readers see the old
 * file or the whole new one, never a part. */
static int fs_put_parts(struct pipe_store *s, const char *key, const struct pipe_store_part *parts,
                        size_t n, size_t total)
{
    (void)total;
    struct fs_store *fs = s->priv;
    char tmp[PATH_MAX];
    const char *what = "write";
    int fd = fs_create_tmp(s, key, tmp);
    if (fd < 0)
        return fd;
    int rc = write_parts(fd, parts, n);
    if (rc == 0 && fsync(fd) < 0) {
        rc = -errno;
        what = "fsync";
    }
    if (close(fd) < 0 && rc == 0) {
        rc = -errno;
        what = "close";
    }
    if (rc == 0 && renameat(fs->rootfd, tmp, fs->rootfd, key) < 0) {
        rc = -errno;
        what = "rename";
    }
    if (rc < 0) {
        unlinkat(fs->rootfd, tmp, 0);
        goto out;
    }
    what = "fsync dir";
    rc = fsync_parent(fs->rootfd, key);
    if (rc == -ENOENT) /* a concurrent delete of key pruned the directory: it ran after us */
        rc = 0;
out:
    if (rc < 0)
        pipe__store_set_error(s, "put %s: %s %s/%s: %s", key, what, fs->root, tmp,
                              pipe_strerror(rc));
    return rc;
}

static int fs_put(struct pipe_store *s, const char *key, const void *data, size_t len)
{
    struct pipe_store_part part = {data, len};
    return fs_put_parts(s, key, &part, 1, len);
}

static void fill_obj(const struct stat *st, struct pipe_store_obj *info)
{
    int64_t ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    info->size = (uint64_t)st->st_size;
    info->mtime_ms = ns / 1000000;
    /* Every put renames a new inode into place, so inode + mtime + size
     * changes on each rewrite even within one mtime tick. */
    snprintf(info->etag, sizeof info->etag, "%llx-%llx-%llx", (unsigned long long)ns,
             (unsigned long long)st->st_size, (unsigned long long)st->st_ino);
}

/* open_object — opens key's file for reading into *fd (the caller closes
 * it, also on failure when *fd >= 0) and stats it: PIPE_ENOTFOUND when it
 * is missing or not a regular file (a directory is not an object). */
static int open_object(const struct fs_store *fs, const char *key, int *fd, struct stat *st)
{
    *fd = openat(fs->rootfd, key, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return (errno == ENOENT || errno == ENOTDIR) ? PIPE_ENOTFOUND : -errno;
    if (fstat(*fd, st) < 0)
        return -errno;
    return S_ISREG(st->st_mode) ? 0 : PIPE_ENOTFOUND;
}

static int fs_get(struct pipe_store *s, const char *key, struct pipe_buf *out)
{
    struct fs_store *fs = s->priv;
    size_t len0 = out->len;
    struct stat st;
    int fd;
    int rc = open_object(fs, key, &fd, &st);
    if (rc == 0)
        rc = pipe_buf_reserve(out, (size_t)st.st_size);
    /* Read to EOF rather than st_size bytes: it costs nothing and copes
     * with a file that a process outside sluice is still appending to. */
    while (rc == 0) {
        /* With the buffer full (an object exactly at the cap), probe into
         * a side buffer: only bytes that are really there are over the cap. */
        char probe[4096];
        bool full = out->len == out->cap;
        ssize_t n = full ? read(fd, probe, sizeof probe)
                         : read(fd, out->data + out->len, out->cap - out->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -errno;
        if (n <= 0)
            break;
        if (full)
            rc = pipe_buf_append(out, probe, (size_t)n);
        else
            out->len += (size_t)n;
    }
    if (fd >= 0)
        close(fd);
    if (rc < 0) {
        out->len = len0;
        pipe__store_set_error(s, "get %s: %s/%s: %s", key, fs->root, key, pipe_strerror(rc));
    }
    if (out->data)
        out->data[out->len] = '\0';
    return rc;
}

/* fs_map — maps the object's file. The mapping holds the inode, so a put
 * or delete of key meanwhile (a rename or unlink) leaves the view as it
 * was. Only the size read at open is mapped: bytes a writer outside sluice
 * appends later are not in the view. */
static int fs_map(struct pipe_store *s, const char *key, size_t max, struct pipe_store_view *v)
{
    struct fs_store *fs = s->priv;
    struct stat st;
    int fd;
    int rc = open_object(fs, key, &fd, &st);
    if (rc == 0 && (uint64_t)st.st_size > max)
        rc = PIPE_ETOOBIG;
    if (rc < 0 || st.st_size == 0)
        goto out;
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        rc = -errno;
        goto out;
    }
    /* Read once, front to back: more read-ahead, and pages already read are
     * the first the kernel reclaims. */
    (void)madvise(p, (size_t)st.st_size, MADV_SEQUENTIAL);
    v->map = p;
    v->data = p;
    v->len = (size_t)st.st_size;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        pipe__store_set_error(s, "get %s: map %s/%s: %s", key, fs->root, key, pipe_strerror(rc));
    return rc;
}

static int fs_stat(struct pipe_store *s, const char *key, struct pipe_store_obj *info)
{
    struct fs_store *fs = s->priv;
    struct stat st;
    int rc = 0;
    if (fstatat(fs->rootfd, key, &st, 0) < 0)
        rc = (errno == ENOENT || errno == ENOTDIR) ? PIPE_ENOTFOUND : -errno;
    else if (!S_ISREG(st.st_mode))
        rc = PIPE_ENOTFOUND;
    if (rc < 0) {
        pipe__store_set_error(s, "stat %s: %s/%s: %s", key, fs->root, key, pipe_strerror(rc));
        return rc;
    }
    fill_obj(&st, info);
    return 0;
}

static int fs_del(struct pipe_store *s, const char *key)
{
    struct fs_store *fs = s->priv;
    if (unlinkat(fs->rootfd, key, 0) < 0) {
        /* A directory is not an object, so there is nothing to delete. */
        if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR)
            return 0;
        int rc = -errno;
        pipe__store_set_error(s, "delete %s: unlink %s/%s: %s", key, fs->root, key,
                              pipe_strerror(rc));
        return rc;
    }
    /* Prune directories the delete left empty, deepest first. rmdir fails
     * on a non-empty directory, which is where we stop; a put racing with
     * us recreates what it needs (see fs_create_tmp). The root is never a
     * candidate: dir is always a non-empty relative path. */
    char dir[PIPE_STORE_KEY_MAX + 1];
    snprintf(dir, sizeof dir, "%s", key);
    for (char *slash; (slash = strrchr(dir, '/')) != NULL;) {
        *slash = '\0';
        if (unlinkat(fs->rootfd, dir, AT_REMOVEDIR) < 0)
            break;
    }
    return 0;
}

/* ---- list ------------------------------------------------------------ */

/* Listing walks the tree depth first, visiting each directory's entries in
 * the order of their names with '/' appended to directories. That order is
 * the byte-wise order of the full keys ("a-c" < "a.d" < "a/..." < "ab"),
 * because a name never contains '/'. So no global sort is needed, the walk
 * stops as soon as the page is full, and subtrees that cannot hold a key
 * after start_after, or with the prefix, are never opened. */

struct fs_ent {
    size_t off; /* name's offset in the walk's arena */
    size_t len;
    bool dir;
};

struct fs_walk {
    struct pipe_store *s;
    int rootfd;
    const char *prefix, *after;
    size_t plen, alen, max_keys;
    int64_t tmp_max_age_s;
    struct pipe_store_list *out;
    size_t items_cap;
    char path[PIPE_STORE_KEY_MAX + 2]; /* key prefix of the directory walked: "" or "a/b/" */
    size_t path_len;
};

/* Compares name+('/' if dir) of two entries. */
static int ent_cmp(const char *arena, const struct fs_ent *a, const struct fs_ent *b)
{
    const unsigned char *na = (const unsigned char *)arena + a->off;
    const unsigned char *nb = (const unsigned char *)arena + b->off;
    size_t la = a->len + a->dir, lb = b->len + b->dir;
    for (size_t i = 0; i < la && i < lb; i++) {
        int ca = i < a->len ? na[i] : '/';
        int cb = i < b->len ? nb[i] : '/';
        if (ca != cb)
            return ca - cb;
    }
    return (la > lb) - (la < lb);
}

/* Min-heap by ent_cmp: heapify is O(n) and only the entries a page needs
 * are ever ordered, which matters in a directory of 100k objects. */
static void heap_down(const char *arena, struct fs_ent *h, size_t n, size_t i)
{
    for (;;) {
        size_t m = i, l = 2 * i + 1, r = l + 1;
        if (l < n && ent_cmp(arena, &h[l], &h[m]) < 0)
            m = l;
        if (r < n && ent_cmp(arena, &h[r], &h[m]) < 0)
            m = r;
        if (m == i)
            return;
        struct fs_ent t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static bool starts_with(const char *s, size_t slen, const char *p, size_t plen)
{
    return slen >= plen && memcmp(s, p, plen) == 0;
}

/* Byte-wise comparison of key (klen bytes) with the walk's start_after. */
static int cmp_after(const struct fs_walk *w, const char *key, size_t klen)
{
    int c = memcmp(key, w->after, klen < w->alen ? klen : w->alen);
    return c ? c : (klen > w->alen) - (klen < w->alen);
}

/* Whether the entry name (a directory if dir) under w->path can hold keys
 * of this listing. Uses w->path's spare room as scratch. */
static bool ent_wanted(struct fs_walk *w, const char *name, size_t len, bool dir)
{
    size_t klen = w->path_len + len + dir;
    if (klen > (size_t)PIPE_STORE_KEY_MAX - dir) /* a directory needs room for one more byte */
        return false;
    char *key = w->path;
    memcpy(key + w->path_len, name, len);
    if (dir)
        key[w->path_len + len] = '/';
    if (!dir)
        return starts_with(key, klen, w->prefix, w->plen) && cmp_after(w, key, klen) > 0;
    /* Keys below start with key: the prefix must extend it or be extended
     * by it, and start_after must not be past all of them. */
    if (!starts_with(key, klen, w->prefix, w->plen) && !starts_with(w->prefix, w->plen, key, klen))
        return false;
    return cmp_after(w, key, klen) > 0 || starts_with(w->after, w->alen, key, klen);
}

static bool name_ok(const char *name)
{
    if (name[0] == '.') /* temp files, and anything else reserved */
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            return false;
    return true;
}

/* Reads the wanted entries of the directory w->path into ents/arena. A
 * directory that vanished (a concurrent delete) is empty. */
static int read_dir(struct fs_walk *w, struct fs_ent **ents, size_t *n, struct pipe_buf *arena)
{
    size_t cap = 0;
    w->path[w->path_len] = '\0';
    int fd = openat(w->rootfd, w->path_len ? w->path : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return (errno == ENOENT || errno == ENOTDIR) ? 0 : -errno;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -errno;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            rc = errno ? -errno : 0;
            break;
        }
        if (!name_ok(de->d_name)) {
            reap_tmp(dirfd(d), de->d_name, w->tmp_max_age_s);
            continue;
        }
        bool dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN || de->d_type == DT_LNK) {
            struct stat st;
            if (fstatat(dirfd(d), de->d_name, &st, 0) < 0)
                continue;
            if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
                continue;
            dir = S_ISDIR(st.st_mode);
        } else if (de->d_type != DT_REG && de->d_type != DT_DIR) {
            continue;
        }
        size_t len = strlen(de->d_name);
        if (!ent_wanted(w, de->d_name, len, dir))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            *ents = pipe_realloc(*ents, cap * sizeof **ents);
        }
        (*ents)[(*n)++] = (struct fs_ent){.off = arena->len, .len = len, .dir = dir};
        pipe_buf_append(arena, de->d_name, len + 1); /* keep the NUL: names are C strings */
    }
    closedir(d);
    return rc;
}

static int add_item(struct fs_walk *w, const char *key, size_t klen)
{
    struct stat st;
    if (fstatat(w->rootfd, key, &st, 0) < 0)
        return errno == ENOENT ? 0 : -errno; /* deleted since readdir: not listed */
    if (!S_ISREG(st.st_mode))
        return 0;
    struct pipe_store_obj *o = pipe__store_list_push(w->out, &w->items_cap, w->max_keys);
    fill_obj(&st, o);
    o->key = pipe_strndup(key, klen);
    return 0;
}

/* Walks w->path; returns 1 once the page is full and a further key exists. */
static int walk_dir(struct fs_walk *w)
{
    struct fs_ent *ents = NULL;
    size_t n = 0;
    struct pipe_buf arena;
    pipe_buf_init(&arena, SIZE_MAX);
    int rc = read_dir(w, &ents, &n, &arena);
    if (rc < 0) {
        pipe__store_set_error(w->s, "list %s: readdir %.*s: %s", w->prefix, (int)w->path_len,
                              w->path, pipe_strerror(rc));
        goto out;
    }
    for (size_t i = n / 2; i-- > 0;)
        heap_down(arena.data, ents, n, i);
    size_t base = w->path_len;
    while (n > 0 && rc == 0) {
        struct fs_ent e = ents[0];
        ents[0] = ents[--n];
        heap_down(arena.data, ents, n, 0);
        memcpy(w->path + base, arena.data + e.off, e.len);
        w->path_len = base + e.len;
        if (e.dir) {
            w->path[w->path_len++] = '/';
            rc = walk_dir(w);
        } else if (w->out->count == w->max_keys) {
            w->path[w->path_len] = '\0';
            struct stat st; /* only a key that still exists makes the page truncated */
            rc = fstatat(w->rootfd, w->path, &st, 0) == 0 && S_ISREG(st.st_mode);
        } else {
            w->path[w->path_len] = '\0';
            rc = add_item(w, w->path, w->path_len);
            if (rc < 0)
                pipe__store_set_error(w->s, "list %s: stat %s: %s", w->prefix, w->path,
                                      pipe_strerror(rc));
        }
        w->path_len = base;
    }
out:
    pipe_free(ents);
    pipe_buf_cleanup(&arena);
    return rc;
}

static int fs_list(struct pipe_store *s, const char *prefix, const char *start_after,
                   size_t max_keys, struct pipe_store_list *out)
{
    struct fs_store *fs = s->priv;
    struct fs_walk w = {
        .s = s,
        .rootfd = fs->rootfd,
        .prefix = prefix,
        .after = start_after,
        .plen = strlen(prefix),
        .alen = strlen(start_after),
        .max_keys = max_keys,
        .tmp_max_age_s = fs->tmp_max_age_s,
        .out = out,
    };
    /* Start in the deepest directory the prefix names. If that part of the
     * prefix is not a valid key, no valid key can start with it. */
    const char *slash = strrchr(prefix, '/');
    if (slash) {
        w.path_len = (size_t)(slash - prefix) + 1;
        memcpy(w.path, prefix, w.path_len - 1);
        w.path[w.path_len - 1] = '\0';
        if (!pipe_store_key_valid(w.path))
            return 0;
        w.path[w.path_len - 1] = '/';
    }
    int rc = walk_dir(&w);
    if (rc < 0) {
        pipe_store_list_cleanup(out);
        return rc;
    }
    out->truncated = rc == 1;
    if (out->count > 0)
        out->next_marker = pipe_strdup(out->items[out->count - 1].key);
    return 0;
}

const struct pipe_store_ops pipe__store_fs_ops = {
    .scheme = "file",
    .caps = PIPE_STORE_CAP_ATOMIC_PUT | PIPE_STORE_CAP_MTIME | PIPE_STORE_CAP_FSYNC,
    .open = fs_open,
    .close = fs_close,
    .put = fs_put,
    .put_parts = fs_put_parts,
    .get = fs_get,
    .map = fs_map,
    .stat = fs_stat,
    .del = fs_del,
    .list = fs_list,
    .tidy = fs_tidy,
};
