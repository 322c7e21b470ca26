/* store_int — the contract between the store front end (store.c) and its
 * backends (store_fs.c, store_fault.c, store_s3.c). Not for stages.
 *
 * Each backend is one `const struct pipe_store_ops` filled with designated
 * initialisers. Only store.c calls these functions, and it has already
 * validated keys and arguments and counts requests and errors, so a backend
 * only does the I/O. A backend reports detail with pipe__store_set_error();
 * if it fails without doing so the front end writes a generic message. */
#ifndef PIPE_STORE_INT_H
#define PIPE_STORE_INT_H

#include <stdatomic.h>

#include "libpipe/store.h"

struct pipe_store_ops {
    const char *scheme; /* URL scheme without ':' ("file", "s3", "fault") */
    unsigned caps;      /* PIPE_STORE_CAP_* copied to s->caps before open */
    /* open — parses url (the whole URL, scheme included), sets s->priv and
     * may adjust s->caps. On failure close is not called, so open releases
     * what it allocated. PIPE_ECONFIG for a malformed URL. */
    int (*open)(struct pipe_store *s, const char *url);
    void (*close)(struct pipe_store *s);
    int (*put)(struct pipe_store *s, const char *key, const void *data, size_t len);
    /* put_parts — optional (NULL: the front end joins the parts and calls
     * put): writes the concatenation of parts[0..n), total bytes in all,
     * as put writes one buffer. No part is NULL with bytes. */
    int (*put_parts)(struct pipe_store *s, const char *key, const struct pipe_store_part *parts,
                     size_t n, size_t total);
    /* get — appends to out; restores out->len on failure. */
    int (*get)(struct pipe_store *s, const char *key, struct pipe_buf *out);
    /* map — optional (NULL: the front end reads the object with get):
     * maps the object read-only into the empty view v (v->map and v->data
     * the mapping, v->len its length; an empty object may map nothing).
     * PIPE_ETOOBIG over max; on failure v is left empty.
     * pipe_store_view_release unmaps it. */
    int (*map)(struct pipe_store *s, const char *key, size_t max, struct pipe_store_view *v);
    /* stat — info->key is left to the front end. */
    int (*stat)(struct pipe_store *s, const char *key, struct pipe_store_obj *info);
    /* del — 0 when the key does not exist. */
    int (*del)(struct pipe_store *s, const char *key);
    /* list — prefix and start_after are never NULL (maybe ""), max_keys >= 1.
     * Fills a zeroed *out; on failure releases what it put there. */
    int (*list)(struct pipe_store *s, const char *prefix, const char *start_after, size_t max_keys,
                struct pipe_store_list *out);
    /* tidy — optional (NULL: nothing to do): removes what killed puts left. */
    int (*tidy)(struct pipe_store *s);
};

struct pipe_store {
    const struct pipe_store_ops *ops;
    void *priv;    /* backend state; must be safe for concurrent use */
    char *url;     /* redacted copy, for logs */
    unsigned caps; /* PIPE_STORE_CAP_* */
    uint64_t id;   /* unique per process; keys the thread-local last error */
    atomic_uint_least64_t requests[PIPE_STORE_OP__COUNT];
    atomic_uint_least64_t errors[PIPE_STORE_OP__COUNT];
};

/* pipe__store_set_error — records the calling thread's failure detail for s
 * (printf format; arguments may point into the current message). */
void pipe__store_set_error(struct pipe_store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* pipe__store_list_push — a backend's list adds one object: returns a zeroed
 * item appended to out, growing out->items by doubling up to max_keys
 * (*cap holds the allocated count; the caller never adds past max_keys). */
struct pipe_store_obj *pipe__store_list_push(struct pipe_store_list *out, size_t *cap,
                                             size_t max_keys);

extern const struct pipe_store_ops pipe__store_fs_ops;
extern const struct pipe_store_ops pipe__store_fault_ops;
extern const struct pipe_store_ops pipe__store_s3_ops;

#endif
