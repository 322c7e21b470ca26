/* redis — one blocking hiredis connection per handle, shared by threads
 * under a mutex, made lazily and remade after any failure (see redis.h).
 * Every wait is bounded by the handle's timeout; a command is never resent
 * after a failure, since only the caller knows whether it is idempotent. */
#include "libpipe/redis.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "libpipe/url.h"

#define DEFAULT_PORT       6379
#define DEFAULT_TIMEOUT_MS 5000
#define MAX_TIMEOUT_MS     600000
#define DEFAULT_PREFIX     "sluice:"
#define PREFIX_MAX         64
#define HOST_MAX           255
#define SOCK_PATH_MAX      107 /* sun_path less its NUL */
#define CRED_MAX           256

struct pipe_redis {
    pthread_mutex_t mu; /* serialises every use of c */
    redisContext *c;    /* NULL while disconnected */
    bool is_unix;
    char *host; /* host name or address, or the socket path */
    int port;
    int db;
    char *user, *password; /* NULL when the URL has none */
    int timeout_ms;
    char *prefix;
    char *url;   /* as given, password redacted */
    char *where; /* "host:port" or the socket path, for messages */
};

static _Thread_local char t_err[256];

static void set_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_err, sizeof t_err, fmt, ap);
    va_end(ap);
}

const char *pipe_redis_last_error(void)
{
    return t_err;
}

/* ---- URL parsing ------------------------------------------------------- */

/* Parses s[0..n) as a decimal in [min, max]; false otherwise. */
static bool parse_num(const char *s, size_t n, long min, long max, long *out)
{
    long v = 0;
    if (n == 0 || n > 9)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool prefix_valid(const char *s, size_t n)
{
    if (n > PREFIX_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= 0x20 || s[i] > 0x7e || s[i] == '&' || s[i] == '#' || s[i] == '?')
            return false;
    return true;
}

/* Parses the query q ("k=v&k=v"): timeout, prefix and, for unix://, db. */
static int parse_options(struct pipe_redis *r, const char *q)
{
    struct pipe_url_param p;
    while (pipe_url_query_next(&q, &p)) {
        long v;
        const char *val = p.value;
        size_t vlen = p.value_len;
        if (val && pipe_url_param_is(&p, "timeout") &&
            parse_num(val, vlen, 1, MAX_TIMEOUT_MS, &v)) {
            r->timeout_ms = (int)v;
        } else if (val && pipe_url_param_is(&p, "prefix") && prefix_valid(val, vlen)) {
            pipe_free(r->prefix);
            r->prefix = pipe_strndup(val, vlen);
        } else if (val && r->is_unix && pipe_url_param_is(&p, "db") &&
                   parse_num(val, vlen, 0, 999999999, &v)) {
            r->db = (int)v;
        } else {
            size_t len = (size_t)(q - p.name);
            set_err("redis URL: bad or unknown option \"%.*s\"", (int)(len < 80 ? len : 80),
                    p.name);
            return PIPE_ECONFIG;
        }
    }
    return 0;
}

/* The credentials: USER:PASSWORD or :PASSWORD, already %-decoded. */
static int parse_userinfo(struct pipe_redis *r, const struct pipe_url *u, size_t raw_len)
{
    if (!u->user)
        return 0;
    if (!u->password || raw_len > CRED_MAX) {
        set_err("redis URL: credentials must read USER:PASSWORD@ or :PASSWORD@");
        return PIPE_ECONFIG;
    }
    r->user = *u->user ? pipe_strdup(u->user) : NULL;
    r->password = pipe_strdup(u->password);
    return 0;
}

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?OPTIONS]. */
static int parse_tcp(struct pipe_redis *r, const struct pipe_url *u)
{
    long v = 0;
    size_t hlen = strlen(u->host);
    if (hlen == 0 || hlen > HOST_MAX || u->port == 0)
        goto bad;
    r->host = pipe_strdup(u->host);
    if (u->port > 0)
        r->port = u->port;
    /* "" and "/" are db 0; "/N" is db N */
    const char *db = u->path[0] == '/' ? u->path + 1 : u->path;
    if (*db && !parse_num(db, strlen(db), 0, 999999999, &v))
        goto bad;
    r->db = (int)v;
    r->where = pipe_asprintf(u->ipv6 ? "[%s]:%d" : "%s:%d", r->host, r->port);
    return u->query ? parse_options(r, u->query) : 0;
bad:
    set_err("redis URL must read redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?OPTIONS]");
    return PIPE_ECONFIG;
}

/* unix://[[USER]:PASSWORD@]/ABSOLUTE/PATH[?OPTIONS]. */
static int parse_unix(struct pipe_redis *r, const struct pipe_url *u)
{
    size_t plen = strlen(u->path);
    if (*u->host || u->port >= 0 || u->path[0] != '/' || plen < 2 || plen > SOCK_PATH_MAX) {
        set_err("redis URL must read unix://[[USER]:PASSWORD@]/ABSOLUTE/PATH[?OPTIONS] "
                "(path at most %d bytes)",
                SOCK_PATH_MAX);
        return PIPE_ECONFIG;
    }
    r->host = pipe_strdup(u->path);
    r->where = pipe_strdup(r->host);
    return u->query ? parse_options(r, u->query) : 0;
}

/* parse_fields — r's fields from the parsed URL; s is the text after
 * "SCHEME://", of which used bytes are credentials and their '@'. */
static int parse_fields(struct pipe_redis *r, const struct pipe_url *u, size_t used)
{
    int rc = parse_userinfo(r, u, used ? used - 1 : 0);
    if (rc == 0)
        rc = r->is_unix ? parse_unix(r, u) : parse_tcp(r, u);
    return rc;
}

static int parse_url(struct pipe_redis *r, const char *url)
{
    if (strchr(url, '#') || strcspn(url, " \t\r\n") != strlen(url)) {
        set_err("redis URL must not contain '#' or white space");
        return PIPE_ECONFIG;
    }
    size_t skip;
    if (strncmp(url, "redis://", 8) == 0) {
        skip = 8;
    } else if (strncmp(url, "unix://", 7) == 0) {
        skip = 7;
        r->is_unix = true;
    } else {
        set_err("redis URL must start with redis:// or unix://");
        return PIPE_ECONFIG;
    }
    struct pipe_url u;
    enum pipe_url_part bad;
    const char *why;
    if (pipe_url_parse(url, &u, &bad, &why) < 0) {
        if (bad == PIPE_URL_USER || bad == PIPE_URL_PASSWORD)
            set_err("redis URL: %s", why);
        else if (r->is_unix)
            set_err("redis URL must read unix://[[USER]:PASSWORD@]/ABSOLUTE/PATH[?OPTIONS] (%s)",
                    why);
        else
            set_err("redis URL must read redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?OPTIONS] (%s)",
                    why);
        return PIPE_ECONFIG;
    }
    const char *s = url + skip;
    size_t alen = strcspn(s, r->is_unix ? "/" : "/?");
    const char *at = memrchr(s, '@', alen);
    size_t used = at ? (size_t)(at - s) + 1 : 0;
    int rc = parse_fields(r, &u, used);
    pipe_url_cleanup(&u);
    if (rc < 0)
        return rc;
    /* Keep the user name for logs, never the password. */
    if (r->password)
        r->url = pipe_asprintf("%.*s%.*s:REDACTED@%s", (int)skip, url, (int)strcspn(s, ":"), s,
                               s + used);
    else
        r->url = pipe_strdup(url);
    return 0;
}

/* ---- connection -------------------------------------------------------- */

/* A write to a socket the server has closed raises SIGPIPE, which would
 * kill a process that has not ignored it; hiredis 0.14 cannot ask for
 * MSG_NOSIGNAL. So SIGPIPE is blocked around our I/O and one raised there
 * is swallowed (the way libpq does it); the failed write reports EPIPE. */
struct sigpipe_guard {
    sigset_t old;
    bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE) == 1;
}

static void sigpipe_restore(struct sigpipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pending);
    if (!g->was_pending && sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static void drop(struct pipe_redis *r)
{
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
}

/* A reply to a handshake command: 0, PIPE_ECONFIG when the server refused
 * it (wrong password, no such db), PIPE_EUNAVAIL when none came. */
static int handshake_reply(struct pipe_redis *r, redisReply *rep, const char *what)
{
    int rc = 0;
    if (!rep) {
        set_err("redis %s: %s: %s", r->where, what, r->c->errstr);
        rc = PIPE_EUNAVAIL;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        set_err("redis %s: %s refused: %.*s", r->where, what,
                (int)(rep->len < 120 ? rep->len : 120), rep->str);
        rc = PIPE_ECONFIG;
    }
    freeReplyObject(rep);
    return rc;
}

/* Connects r->c, with keepalive, timeouts, AUTH and SELECT. 0,
 * PIPE_EUNAVAIL, or PIPE_ECONFIG when the server refuses AUTH or SELECT. */
static int connect_locked(struct pipe_redis *r)
{
    int rc = 0;
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    r->c = r->is_unix ? redisConnectUnixWithTimeout(r->host, tv)
                      : redisConnectWithTimeout(r->host, r->port, tv);
    if (!r->c) {
        set_err("redis %s: cannot allocate a connection", r->where);
        return PIPE_EUNAVAIL;
    }
    /* The connect timeout does not cover replies: set that separately.
     * Keepalive finds a peer that vanished (a host gone, a NAT forgotten)
     * on an idle connection; a unix socket has no such peer. */
    if (r->c->err == 0)
        redisSetTimeout(r->c, tv);
    if (r->c->err == 0 && !r->is_unix)
        redisEnableKeepAlive(r->c);
    if (r->c->err) {
        set_err("redis %s: connect: %s", r->where, r->c->errstr);
        rc = PIPE_EUNAVAIL;
        goto out;
    }
    /* hiredis 0.14 does not set close-on-exec; a child must not inherit us. */
    fcntl(r->c->fd, F_SETFD, fcntl(r->c->fd, F_GETFD) | FD_CLOEXEC);
    if (r->password && r->user)
        rc = handshake_reply(r, redisCommand(r->c, "AUTH %s %s", r->user, r->password), "AUTH");
    else if (r->password)
        rc = handshake_reply(r, redisCommand(r->c, "AUTH %s", r->password), "AUTH");
    if (rc == 0 && r->db != 0)
        rc = handshake_reply(r, redisCommand(r->c, "SELECT %d", r->db), "SELECT");
out:
    if (rc < 0)
        drop(r);
    return rc;
}

/* Whether an idle connection has been closed by the server (a restart, a
 * timeout, CLIENT KILL). With no command outstanding, Redis never sends
 * anything, so a readable socket means EOF or an error. Finding it before
 * sending lets us reconnect without losing the caller's command. */
static bool stale(const redisContext *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

/* Sends cmds[0..n) (or, when fmt is set, the one command fmt/ap) and reads
 * n replies into out[]. On failure out[] holds nothing. */
static int exchange(struct pipe_redis *r, const struct pipe_redis_cmd *cmds, size_t n,
                    const char *fmt, va_list *ap, redisReply **out)
{
    int rc = 0;
    size_t got = 0;
    struct sigpipe_guard g;
    pthread_mutex_lock(&r->mu);
    sigpipe_block(&g);
    if (r->c && stale(r->c))
        drop(r);
    if (!r->c && connect_locked(r) < 0) {
        rc = PIPE_EUNAVAIL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        int ok = fmt ? redisvAppendCommand(r->c, fmt, *ap)
                     : redisAppendCommandArgv(r->c, cmds[i].argc, cmds[i].argv, cmds[i].argvlen);
        if (ok != REDIS_OK) {
            /* Nothing was sent yet: only a bad format or no memory fails here. */
            set_err("redis %s: cannot format a command: %s", r->where, r->c->errstr);
            drop(r);
            rc = PIPE_EINVAL;
            goto out;
        }
    }
    for (; got < n; got++) {
        void *rep = NULL;
        if (redisGetReply(r->c, &rep) != REDIS_OK) {
            /* hiredis reports a reply timeout as EAGAIN: say what it means. */
            if (r->c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
                set_err("redis %s: no reply within %d ms", r->where, r->timeout_ms);
            else
                set_err("redis %s: %s", r->where,
                        r->c->errstr[0] ? r->c->errstr : "connection lost");
            drop(r);
            rc = PIPE_EUNAVAIL;
            goto out;
        }
        out[got] = rep;
    }
out:
    if (rc < 0)
        for (size_t i = 0; i < got; i++)
            freeReplyObject(out[i]);
    sigpipe_restore(&g);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* ---- public ------------------------------------------------------------ */

int pipe_redis_open(const char *url, struct pipe_redis **out)
{
    if (!url || !out)
        return PIPE_EINVAL;
    struct pipe_redis *r = pipe_calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->port = DEFAULT_PORT;
    r->timeout_ms = DEFAULT_TIMEOUT_MS;
    r->prefix = pipe_strdup(DEFAULT_PREFIX);
    int rc = parse_url(r, url);
    if (rc == 0) {
        struct sigpipe_guard g;
        sigpipe_block(&g);
        rc = connect_locked(r);
        sigpipe_restore(&g);
    }
    if (rc < 0) {
        pipe_redis_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void pipe_redis_free(struct pipe_redis *r)
{
    if (!r)
        return;
    drop(r);
    pthread_mutex_destroy(&r->mu);
    pipe_free(r->host);
    pipe_free(r->user);
    if (r->password) {
        /* Not a secret store, but no reason to leave it lying in the heap. */
        memset(r->password, 0, strlen(r->password));
        pipe_free(r->password);
    }
    pipe_free(r->prefix);
    pipe_free(r->url);
    pipe_free(r->where);
    pipe_free(r);
}

int pipe_redis_run(struct pipe_redis *r, const struct pipe_redis_cmd *cmds, size_t n,
                   redisReply **replies)
{
    if (!r || !cmds || !replies || n == 0)
        return PIPE_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (cmds[i].argc <= 0 || !cmds[i].argv || !cmds[i].argvlen)
            return PIPE_EINVAL;
    redisReply **tmp = pipe_malloc(n * sizeof *tmp);
    int rc = exchange(r, cmds, n, NULL, NULL, tmp);
    if (rc == 0)
        memcpy(replies, tmp, n * sizeof *tmp);
    pipe_free(tmp);
    return rc;
}

int pipe_redis_command(struct pipe_redis *r, redisReply **reply, const char *fmt, ...)
{
    if (!r || !reply || !fmt)
        return PIPE_EINVAL;
    va_list ap;
    redisReply *one = NULL;
    va_start(ap, fmt);
    int rc = exchange(r, NULL, 1, fmt, &ap, &one);
    va_end(ap);
    if (rc == 0)
        *reply = one;
    return rc;
}

const char *pipe_redis_prefix(const struct pipe_redis *r)
{
    return r ? r->prefix : "";
}

const char *pipe_redis_url(const struct pipe_redis *r)
{
    return r ? r->url : "";
}
