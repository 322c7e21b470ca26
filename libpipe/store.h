/* store — the object store every stage reads and writes through.
 *
 * A store is opened from a URL (`file:///root`, `file://./rel`,
 * `s3://bucket/prefix`, and `fault:OPTIONS:INNER_URL` for tests) and offers
 * the S3 object model: atomic whole-object put, get, stat, delete, and a
 * paginated list by prefix in byte-wise key order. A handle may be used from
 * several threads at once. Callers ask capabilities (pipe_store_has), never
 * the backend's name. Failure detail (a path, an errno text, an S3 error
 * code) is kept per thread: pipe_store_last_error(). */
#ifndef PIPE_STORE_H
#define PIPE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libpipe/buf.h"

#define PIPE_STORE_KEY_MAX 1024 /* bytes in a key, excluding the NUL */

struct pipe_store; /* opaque handle: pipe_store_open / pipe_store_free */

/* What stat and list know about an object. The etag changes whenever the
 * object is rewritten; it is opaque (not a content hash) and only comparable
 * with etags from the same store. */
struct pipe_store_obj {
    char *key;        /* owned by the list; NULL from pipe_store_stat */
    uint64_t size;    /* bytes */
    int64_t mtime_ms; /* last write, Unix ms; 0 without PIPE_STORE_CAP_MTIME */
    char etag[72];    /* NUL-terminated */
};

/* One page of a listing; fill with pipe_store_list, release with
 * pipe_store_list_cleanup (safe on a zeroed struct). */
struct pipe_store_list {
    struct pipe_store_obj *items; /* count objects in byte-wise key order */
    size_t count;
    bool truncated;    /* more keys follow: list again from next_marker */
    char *next_marker; /* last key returned (NULL when count is 0) */
};

enum {
    PIPE_STORE_CAP_ATOMIC_PUT = 1u << 0, /* readers never see a partial put */
    PIPE_STORE_CAP_MTIME = 1u << 1,      /* mtime_ms is meaningful */
    PIPE_STORE_CAP_FSYNC = 1u << 2,      /* put is on disk when it returns */
};

enum pipe_store_op {
    PIPE_STORE_OP_PUT,
    PIPE_STORE_OP_GET,
    PIPE_STORE_OP_STAT,
    PIPE_STORE_OP_DELETE,
    PIPE_STORE_OP_LIST,
    PIPE_STORE_OP__COUNT
};

/* pipe_store_open — opens the store named by url and stores a new handle in
 * *out (free with pipe_store_free). `file://` creates its root directory if
 * missing. Returns 0, PIPE_ECONFIG for a malformed URL or an unknown scheme,
 * or another negative code; the reason is then pipe_store_last_error(NULL). */
int pipe_store_open(const char *url, struct pipe_store **out);

/* pipe_store_free — closes the handle. NULL is a no-op. No other thread may
 * be using it. */
void pipe_store_free(struct pipe_store *s);

/* pipe_store_tidy — removes what puts killed before they finished left
 * behind: on file://, temp files older than tmp_max_age anywhere under the
 * root (listings also clear those of each directory they read). It reads
 * the whole tree, so it runs at a daemon's start and with each retention
 * sweep, never in each --once run. A no-op on backends whose puts leave
 * nothing (S3). Best effort:
 * what cannot be read or removed is left for the next call; returns 0. */
int pipe_store_tidy(struct pipe_store *s);

/* pipe_store_put — stores len bytes under key, replacing any object there.
 * Atomic (a concurrent get sees the old or the new object, never a mix) and,
 * with PIPE_STORE_CAP_FSYNC, durable when it returns 0. PIPE_EINVAL for an
 * invalid key. */
int pipe_store_put(struct pipe_store *s, const char *key, const void *data, size_t len);

/* One piece of an object put from parts (pipe_store_put_parts): len bytes
 * at data (data may be NULL when len is 0). */
struct pipe_store_part {
    const void *data;
    size_t len;
};

/* pipe_store_put_parts — stores the concatenation of parts[0..n) under key,
 * as pipe_store_put would store it joined in one buffer: one put (one
 * request), atomic, durable with PIPE_STORE_CAP_FSYNC; n may be 0 (an
 * empty object), parts may be empty. A backend that can writes the parts
 * as they are (file:// writes them to its temp file with writev; S3
 * streams them as one PUT body); any other joins them into one buffer
 * first. On failure the object under key
 * is as it was. PIPE_EINVAL for an invalid key or a NULL part with bytes. */
int pipe_store_put_parts(struct pipe_store *s, const char *key, const struct pipe_store_part *parts,
                         size_t n);

/* pipe_store_get — appends the object's bytes to out. PIPE_ENOTFOUND if there
 * is no such object, PIPE_ETOOBIG if it does not fit under out->max; on any
 * failure out->len is unchanged. */
int pipe_store_get(struct pipe_store *s, const char *key, struct pipe_buf *out);

/* A read-only view of one object's bytes (pipe_store_view_get). data and
 * len are the caller's to read; the rest belongs to the library. */
struct pipe_store_view {
    const char *data; /* len bytes, valid until pipe_store_view_release */
    size_t len;
    void *map; /* the file mapping behind data (len bytes), or NULL: data is in buf */
    struct pipe_buf buf;
};

/* pipe_store_view_get — the bytes of key, at most max of them, as a
 * read-only view in *v (release with pipe_store_view_release). A backend
 * that can maps the object instead of copying it: file:// maps the file, so
 * the bytes are the page cache's pages, neither copied nor zeroed (a file
 * must then not be truncated while mapped, which the store's own puts never
 * do: they rename a new file into place). Any other backend reads it as
 * pipe_store_get would, into a buffer the view owns. Counted as a get.
 * Returns 0, PIPE_ENOTFOUND, PIPE_ETOOBIG (over max) or another error; on
 * failure *v is an empty view (release is still safe). */
int pipe_store_view_get(struct pipe_store *s, const char *key, size_t max,
                        struct pipe_store_view *v);

/* pipe_store_view_release — unmaps or frees what v holds and leaves it
 * empty. Safe on a zeroed, empty or released view. */
void pipe_store_view_release(struct pipe_store_view *v);

/* pipe_store_stat — size, mtime and etag of key into *info (info->key is set
 * to NULL). PIPE_ENOTFOUND if there is no such object. */
int pipe_store_stat(struct pipe_store *s, const char *key, struct pipe_store_obj *info);

/* pipe_store_delete — removes key. Deleting a missing key returns 0. */
int pipe_store_delete(struct pipe_store *s, const char *key);

/* pipe_store_list — up to max_keys (>= 1) objects whose key starts with
 * prefix (NULL or "" for all) and is byte-wise greater than start_after (NULL
 * for from the start), in byte-wise order. A backend may return fewer than
 * max_keys with truncated set (S3 pages hold at most 1000): loop while
 * out->truncated, passing out->next_marker as start_after. On success *out is
 * overwritten (the caller releases it with pipe_store_list_cleanup); on
 * failure it is not touched. */
int pipe_store_list(struct pipe_store *s, const char *prefix, const char *start_after,
                    size_t max_keys, struct pipe_store_list *out);

/* pipe_store_list_cleanup — frees the items, keys and marker; zeroes *l. */
void pipe_store_list_cleanup(struct pipe_store_list *l);

/* pipe_store_walk_fn — called for each object of a walk; return 0 to go on,
 * a positive value to stop the walk early (walk returns it), or a negative
 * error to stop it (walk returns the error). o is valid during the call. */
typedef int (*pipe_store_walk_fn)(void *arg, const struct pipe_store_obj *o);

/* pipe_store_walk — every object under prefix after start_after (may be
 * NULL), in key order, page by page (page_keys per listing; 0 = 1000), so
 * that a listing of any size needs memory for one page only. Returns 0
 * after the last object, fn's non-zero result, or a listing error. */
int pipe_store_walk(struct pipe_store *s, const char *prefix, const char *start_after,
                    size_t page_keys, pipe_store_walk_fn fn, void *arg);

/* pipe_store_has — true if the store has every capability bit in cap. */
bool pipe_store_has(const struct pipe_store *s, unsigned cap);

/* pipe_store_last_error — detail of the calling thread's most recent failure
 * on s ("put a/b: rename /root/a/.tmp...: No space left on device"), or ""
 * if this thread's latest failure was on another handle. With s NULL: why
 * the calling thread's last pipe_store_open failed. The string is owned by
 * the library and valid until this thread's next store call. */
const char *pipe_store_last_error(const struct pipe_store *s);

/* pipe_store_url — the URL the store was opened with, credentials (userinfo,
 * secret-looking query values) replaced by "REDACTED"; for logs. Owned by s. */
const char *pipe_store_url(const struct pipe_store *s);

/* pipe_store_counters — calls of op on s so far, and how many of them failed.
 * PIPE_ENOTFOUND is an answer, not a failure, so it is not counted as an
 * error. Either out pointer may be NULL. */
void pipe_store_counters(const struct pipe_store *s, enum pipe_store_op op, uint64_t *requests,
                         uint64_t *errors);

/* pipe_store_op_name — "put", "get", "stat", "delete", "list" (for metric
 * labels); "unknown" out of range. */
const char *pipe_store_op_name(enum pipe_store_op op);

/* pipe_store_key_valid — keys are relative, '/'-separated, 1..1024 bytes,
 * with no empty, "." or ".." segments, no leading or trailing '/', no control
 * characters or backslash, and no segment starting with '.' (reserved for a
 * backend's temporary files). Bytes >= 0x80 are allowed as they are. */
bool pipe_store_key_valid(const char *key);

#endif
