/* store — the generic front end of the object store: picks the backend by
 * URL scheme, validates keys and arguments, counts requests and errors per
 * operation, and keeps each thread's last failure detail. It is the only
 * caller of a backend's ops (see store_int.h). */
#include "libpipe/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/store_int.h"
#include "libpipe/url.h"

/* Backends by scheme. A new backend adds one line here. */
static const struct pipe_store_ops *const backends[] = {
    &pipe__store_fs_ops,
    &pipe__store_fault_ops,
    &pipe__store_s3_ops,
};

/* One failure slot per thread: a handle's detail survives until the same
 * thread fails again on any handle. Handles are told apart by id rather
 * than address so that a freed handle's address, reused, does not inherit a
 * stale message. Id 0 is the slot of a failed pipe_store_open. */
static _Thread_local struct {
    uint64_t store_id;
    uint64_t seq; /* bumped on every set, so the front end sees whether the backend set one */
    char msg[1024];
} last_err;

static atomic_uint_least64_t next_store_id = 1;

static const char *const op_names[PIPE_STORE_OP__COUNT] = {
    [PIPE_STORE_OP_PUT] = "put",       [PIPE_STORE_OP_GET] = "get",   [PIPE_STORE_OP_STAT] = "stat",
    [PIPE_STORE_OP_DELETE] = "delete", [PIPE_STORE_OP_LIST] = "list",
};

static void set_error_id(uint64_t id, const char *fmt, va_list ap)
{
    /* Format first: the arguments may point into last_err.msg itself (a
     * wrapping backend copying its inner store's message). */
    char tmp[sizeof last_err.msg];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    memcpy(last_err.msg, tmp, sizeof tmp);
    last_err.store_id = id;
    last_err.seq++;
}

void pipe__store_set_error(struct pipe_store *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error_id(s ? s->id : 0, fmt, ap);
    va_end(ap);
}

static void set_open_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_open_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error_id(0, fmt, ap);
    va_end(ap);
}

const char *pipe_store_last_error(const struct pipe_store *s)
{
    uint64_t id = s ? s->id : 0;
    return last_err.store_id == id ? last_err.msg : "";
}

bool pipe_store_key_valid(const char *key)
{
    if (key == NULL)
        return false;
    size_t n = strnlen(key, PIPE_STORE_KEY_MAX + 1);
    if (n == 0 || n > PIPE_STORE_KEY_MAX)
        return false;
    const unsigned char *p = (const unsigned char *)key;
    for (size_t seg = 0; seg <= n;) {
        /* p[seg] starts a segment: it must not be empty or start with '.'
         * (which also rules out "." and ".."). */
        if (p[seg] == '/' || p[seg] == '\0' || p[seg] == '.')
            return false;
        size_t i = seg;
        for (; i < n && p[i] != '/'; i++)
            if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\')
                return false;
        seg = i + 1;
    }
    return true;
}

/* Copies url with credentials replaced: the userinfo of an authority
 * ("//user:pw@host") and the values of query parameters whose name looks
 * secret. Only for display; it need not be a perfect URL parser. */
static char *redact_url(const char *url)
{
    static const char *const secret_words[] = {"secret", "token",     "password",
                                               "passwd", "signature", "credential"};
    struct pipe_buf b;
    pipe_buf_init(&b, SIZE_MAX);
    const char *p = url;
    const char *auth = strstr(p, "://");
    if (auth) {
        auth += 3;
        size_t host_end = strcspn(auth, "/?#");
        const char *at = memchr(auth, '@', host_end);
        pipe_buf_append(&b, p, (size_t)(auth - p));
        if (at) {
            pipe_buf_append_str(&b, "REDACTED@");
            p = at + 1;
        } else {
            p = auth;
        }
    }
    const char *q = strchr(p, '?');
    if (q == NULL) {
        pipe_buf_append_str(&b, p);
        return pipe_buf_steal(&b, NULL);
    }
    pipe_buf_append(&b, p, (size_t)(q - p) + 1);
    for (q++; *q;) {
        size_t plen = strcspn(q, "&");
        size_t nlen = strcspn(q, "=&");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)nlen, q);
        bool secret = false;
        for (size_t i = 0; i < sizeof secret_words / sizeof *secret_words; i++)
            secret = secret || strcasestr(name, secret_words[i]) != NULL;
        if (secret && nlen < plen)
            pipe_buf_printf(&b, "%.*s=REDACTED", (int)nlen, q);
        else
            pipe_buf_append(&b, q, plen);
        q += plen;
        if (*q == '&')
            pipe_buf_append_char(&b, *q++);
    }
    return pipe_buf_steal(&b, NULL);
}

int pipe_store_open(const char *url, struct pipe_store **out)
{
    int rc = PIPE_ECONFIG;
    struct pipe_store *s = NULL;
    if (url == NULL || *url == '\0') {
        set_open_error("store URL is empty");
        goto out;
    }
    const struct pipe_store_ops *ops = NULL;
    for (size_t i = 0; i < sizeof backends / sizeof *backends && !ops; i++)
        if (pipe_url_scheme_is(url, backends[i]->scheme))
            ops = backends[i];
    if (ops == NULL) {
        set_open_error("store URL \"%.200s\": unknown scheme (known: file://, fault:)", url);
        goto out;
    }
    s = pipe_calloc(1, sizeof *s);
    s->ops = ops;
    s->caps = ops->caps;
    s->id = atomic_fetch_add(&next_store_id, 1);
    s->url = redact_url(url);
    uint64_t seq = last_err.seq;
    rc = ops->open(s, url);
    if (rc < 0) {
        if (last_err.seq == seq)
            set_open_error("store %s: %s", s->url, pipe_strerror(rc));
        last_err.store_id = 0;
        pipe_free(s->url);
        pipe_free(s);
        s = NULL;
        goto out;
    }
    *out = s;
out:
    return rc;
}

void pipe_store_free(struct pipe_store *s)
{
    if (s == NULL)
        return;
    s->ops->close(s);
    pipe_free(s->url);
    pipe_free(s);
}

int pipe_store_tidy(struct pipe_store *s)
{
    return s->ops->tidy ? s->ops->tidy(s) : 0;
}

/* Accounting shared by every operation: counts the request and, on failure,
 * the error, and makes sure the thread's detail names this handle. */
static int finish(struct pipe_store *s, enum pipe_store_op op, const char *key, uint64_t seq,
                  int rc)
{
    atomic_fetch_add_explicit(&s->requests[op], 1, memory_order_relaxed);
    if (rc < 0 && rc != PIPE_ENOTFOUND)
        atomic_fetch_add_explicit(&s->errors[op], 1, memory_order_relaxed);
    if (rc < 0 && (last_err.seq == seq || last_err.store_id != s->id))
        pipe__store_set_error(s, "%s %.*s: %s", op_names[op], PIPE_STORE_KEY_MAX, key ? key : "",
                              pipe_strerror(rc));
    return rc;
}

static int check_key(struct pipe_store *s, enum pipe_store_op op, const char *key)
{
    if (pipe_store_key_valid(key))
        return 0;
    pipe__store_set_error(s, "%s: invalid key \"%.200s\"", op_names[op], key ? key : "(null)");
    return PIPE_EINVAL;
}

int pipe_store_put(struct pipe_store *s, const char *key, const void *data, size_t len)
{
    uint64_t seq = last_err.seq;
    int rc = check_key(s, PIPE_STORE_OP_PUT, key);
    if (rc == 0 && data == NULL && len > 0)
        rc = PIPE_EINVAL;
    if (rc == 0)
        rc = s->ops->put(s, key, data ? data : "", len);
    return finish(s, PIPE_STORE_OP_PUT, key, seq, rc);
}

/* The parts of a put joined in one buffer, for a backend without put_parts. */
static int put_joined(struct pipe_store *s, const char *key, const struct pipe_store_part *parts,
                      size_t n, size_t total)
{
    if (n == 1)
        return s->ops->put(s, key, parts[0].data ? parts[0].data : "", total);
    char *joined = pipe_malloc(total ? total : 1);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].len)
            memcpy(joined + off, parts[i].data, parts[i].len);
        off += parts[i].len;
    }
    int rc = s->ops->put(s, key, joined, total);
    pipe_free(joined);
    return rc;
}

int pipe_store_put_parts(struct pipe_store *s, const char *key, const struct pipe_store_part *parts,
                         size_t n)
{
    uint64_t seq = last_err.seq;
    int rc = check_key(s, PIPE_STORE_OP_PUT, key);
    size_t total = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if ((parts[i].data == NULL && parts[i].len > 0) || parts[i].len > SIZE_MAX - total) {
            pipe__store_set_error(s, "put %.200s: part %zu is NULL or the parts overflow", key, i);
            rc = PIPE_EINVAL;
        }
        total += rc == 0 ? parts[i].len : 0;
    }
    if (rc == 0 && n == 0)
        rc = s->ops->put(s, key, "", 0);
    else if (rc == 0 && s->ops->put_parts)
        rc = s->ops->put_parts(s, key, parts, n, total);
    else if (rc == 0)
        rc = put_joined(s, key, parts, n, total);
    return finish(s, PIPE_STORE_OP_PUT, key, seq, rc);
}

int pipe_store_get(struct pipe_store *s, const char *key, struct pipe_buf *out)
{
    uint64_t seq = last_err.seq;
    int rc = check_key(s, PIPE_STORE_OP_GET, key);
    if (rc == 0) {
        size_t len0 = out->len;
        rc = s->ops->get(s, key, out);
        if (rc < 0 && out->len != len0) {
            out->len = len0; /* the backend promises this; make it so regardless */
            out->data[len0] = '\0';
        }
    }
    return finish(s, PIPE_STORE_OP_GET, key, seq, rc);
}

int pipe_store_view_get(struct pipe_store *s, const char *key, size_t max,
                        struct pipe_store_view *v)
{
    uint64_t seq = last_err.seq;
    *v = (struct pipe_store_view){.data = ""};
    pipe_buf_init(&v->buf, max);
    int rc = check_key(s, PIPE_STORE_OP_GET, key);
    if (rc == 0 && s->ops->map)
        rc = s->ops->map(s, key, max, v);
    else if (rc == 0)
        rc = s->ops->get(s, key, &v->buf);
    if (rc == 0 && !v->map && v->buf.data) {
        v->data = v->buf.data;
        v->len = v->buf.len;
    }
    if (rc < 0)
        pipe_store_view_release(v);
    return finish(s, PIPE_STORE_OP_GET, key, seq, rc);
}

void pipe_store_view_release(struct pipe_store_view *v)
{
    if (v->map)
        munmap(v->map, v->len);
    pipe_buf_cleanup(&v->buf);
    v->map = NULL;
    v->data = "";
    v->len = 0;
}

int pipe_store_stat(struct pipe_store *s, const char *key, struct pipe_store_obj *info)
{
    uint64_t seq = last_err.seq;
    struct pipe_store_obj tmp = {0};
    int rc = check_key(s, PIPE_STORE_OP_STAT, key);
    if (rc == 0)
        rc = s->ops->stat(s, key, &tmp);
    if (rc == 0) {
        tmp.key = NULL;
        tmp.etag[sizeof tmp.etag - 1] = '\0';
        *info = tmp;
    }
    return finish(s, PIPE_STORE_OP_STAT, key, seq, rc);
}

int pipe_store_delete(struct pipe_store *s, const char *key)
{
    uint64_t seq = last_err.seq;
    int rc = check_key(s, PIPE_STORE_OP_DELETE, key);
    if (rc == 0)
        rc = s->ops->del(s, key);
    if (rc == PIPE_ENOTFOUND)
        rc = 0;
    return finish(s, PIPE_STORE_OP_DELETE, key, seq, rc);
}

int pipe_store_list(struct pipe_store *s, const char *prefix, const char *start_after,
                    size_t max_keys, struct pipe_store_list *out)
{
    uint64_t seq = last_err.seq;
    int rc = 0;
    struct pipe_store_list tmp = {0};
    prefix = prefix ? prefix : "";
    start_after = start_after ? start_after : "";
    if (max_keys == 0 || strnlen(prefix, PIPE_STORE_KEY_MAX + 1) > PIPE_STORE_KEY_MAX ||
        strnlen(start_after, PIPE_STORE_KEY_MAX + 1) > PIPE_STORE_KEY_MAX) {
        pipe__store_set_error(s, "list %.200s: max_keys is 0 or prefix/marker too long", prefix);
        rc = PIPE_EINVAL;
        goto out;
    }
    rc = s->ops->list(s, prefix, start_after, max_keys, &tmp);
    if (rc < 0)
        goto out;
    *out = tmp;
out:
    return finish(s, PIPE_STORE_OP_LIST, prefix, seq, rc);
}

struct pipe_store_obj *pipe__store_list_push(struct pipe_store_list *out, size_t *cap,
                                             size_t max_keys)
{
    if (out->count == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        if (*cap > max_keys)
            *cap = max_keys;
        out->items = pipe_realloc(out->items, *cap * sizeof *out->items);
    }
    struct pipe_store_obj *o = &out->items[out->count++];
    memset(o, 0, sizeof *o);
    return o;
}

void pipe_store_list_cleanup(struct pipe_store_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++)
        pipe_free(l->items[i].key);
    pipe_free(l->items);
    pipe_free(l->next_marker);
    memset(l, 0, sizeof *l);
}

int pipe_store_walk(struct pipe_store *s, const char *prefix, const char *start_after,
                    size_t page_keys, pipe_store_walk_fn fn, void *arg)
{
    struct pipe_store_list page = {0};
    char *marker = start_after ? pipe_strdup(start_after) : NULL;
    int rc = 0;
    do {
        rc = pipe_store_list(s, prefix, marker, page_keys ? page_keys : 1000, &page);
        for (size_t i = 0; rc == 0 && i < page.count; i++)
            rc = fn(arg, &page.items[i]);
        pipe_free(marker);
        marker =
            rc == 0 && page.truncated && page.next_marker ? pipe_strdup(page.next_marker) : NULL;
        pipe_store_list_cleanup(&page);
    } while (marker);
    return rc;
}

bool pipe_store_has(const struct pipe_store *s, unsigned cap)
{
    return (s->caps & cap) == cap;
}

const char *pipe_store_url(const struct pipe_store *s)
{
    return s->url;
}

void pipe_store_counters(const struct pipe_store *s, enum pipe_store_op op, uint64_t *requests,
                         uint64_t *errors)
{
    bool ok = (unsigned)op < PIPE_STORE_OP__COUNT;
    if (requests)
        *requests = ok ? atomic_load(&s->requests[op]) : 0;
    if (errors)
        *errors = ok ? atomic_load(&s->errors[op]) : 0;
}

const char *pipe_store_op_name(enum pipe_store_op op)
{
    return (unsigned)op < PIPE_STORE_OP__COUNT ? op_names[op] : "unknown";
}
