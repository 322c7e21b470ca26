/* log — logfmt records with per-call-site rate limiting.
 *
 * The limiter is a token bucket per call site (file, line), kept in a small
 * fixed table guarded by one mutex: cheap, bounded, and shared by threads. */
#include "libpipe/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/clock.h"

#define SITES   256
#define BURST   20 /* lines a site may write at once */
#define PER_SEC 5  /* then this many per second */

struct site {
    const char *file;
    int line;
    double tokens;
    int64_t last_ms;
    unsigned long suppressed;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct site sites[SITES];
static char component[32] = "sluice";
static enum pipe_log_level min_level = PIPE_LOG_INFO;
static int out_fd = 2;

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

void pipe_log_init(const char *comp, enum pipe_log_level min)
{
    pthread_mutex_lock(&lock);
    snprintf(component, sizeof component, "%s", comp ? comp : "sluice");
    min_level = min;
    pthread_mutex_unlock(&lock);
}

int pipe_log_level_parse(const char *name)
{
    for (int i = 0; i <= PIPE_LOG_OFF; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void pipe_log_set_fd(int fd)
{
    out_fd = fd;
}

/* admit — takes a token for this site; returns how many lines were
 * suppressed before it (to report), or -1 if this line is suppressed. */
static long admit(const char *file, int line, int64_t now)
{
    uintptr_t h = ((uintptr_t)file >> 3) * 31u + (unsigned)line;
    struct site *s = NULL;
    for (int i = 0; i < 8; i++) {
        struct site *c = &sites[(h + (unsigned)i) % SITES];
        if (c->file == NULL || (c->file == file && c->line == line)) {
            s = c;
            break;
        }
    }
    if (s == NULL)
        return 0; /* table crowded: do not limit rather than lose the line */
    if (s->file == NULL) {
        s->file = file;
        s->line = line;
        s->tokens = BURST;
        s->last_ms = now;
    }
    s->tokens += (double)(now - s->last_ms) * PER_SEC / 1000.0;
    if (s->tokens > BURST)
        s->tokens = BURST;
    s->last_ms = now;
    if (s->tokens < 1.0) {
        s->suppressed++;
        return -1;
    }
    s->tokens -= 1.0;
    long n = (long)s->suppressed;
    s->suppressed = 0;
    return n;
}

static void append_quoted(char *out, size_t cap, size_t *len, const char *s)
{
    size_t n = *len;
    if (n < cap)
        out[n++] = '"';
    for (; *s && n + 2 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            out[n++] = ' ';
        } else {
            out[n++] = (char)c;
        }
    }
    if (n < cap)
        out[n++] = '"';
    *len = n;
}

void pipe__log(enum pipe_log_level level, const char *file, int line, const char *msg,
               const char *kv, ...)
{
    if (level < min_level || level >= PIPE_LOG_OFF)
        return;
    int64_t now = pipe_clock_now_ms();
    pthread_mutex_lock(&lock);
    long suppressed = admit(file, line, now);
    pthread_mutex_unlock(&lock);
    if (suppressed < 0)
        return;

    char out[2048];
    char ts[PIPE_CLOCK_RFC3339_LEN + 1];
    pipe_clock_format_rfc3339(now, ts);
    int w =
        snprintf(out, sizeof out, "ts=%s level=%s comp=%s msg=", ts, level_names[level], component);
    size_t len = w > 0 ? (size_t)w : 0;
    append_quoted(out, sizeof out - 2, &len, msg);
    if (kv && *kv && len + 2 < sizeof out) {
        out[len++] = ' ';
        va_list ap;
        va_start(ap, kv);
        w = vsnprintf(out + len, sizeof out - 2 - len, kv, ap);
        va_end(ap);
        if (w > 0)
            len += (size_t)w < sizeof out - 2 - len ? (size_t)w : sizeof out - 3 - len;
    }
    if (suppressed > 0 && len + 32 < sizeof out)
        len += (size_t)snprintf(out + len, sizeof out - len, " suppressed=%ld", suppressed);
    out[len++] = '\n';
    /* One write per line keeps lines whole when threads log at once. */
    ssize_t rc = write(out_fd, out, len);
    (void)rc;
}
