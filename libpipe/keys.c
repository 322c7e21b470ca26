/* keys — builders and the parser for SPEC section 2's key layout. Every
 * builder formats into a bounded stack buffer first, so a failure leaves the
 * caller's buffer as it was. */
#include "libpipe/keys.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/event.h"
#include "libpipe/mem.h"

#define KEY_MAX 512 /* longer than any key the builders can produce */
/* 10000-01-01T00:00:00Z: dt= has room for four-digit years only. */
#define TIME_END_MS INT64_C(253402300800000)

static bool is_alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* ^[A-Za-z0-9][A-Za-z0-9_.-]{0,max-1}$ over exactly len bytes. */
static bool component_valid(const char *s, size_t len, size_t max)
{
    if (!s || len == 0 || len > max || !is_alnum(s[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

bool pipe_keys_event_valid(const char *event, size_t len)
{
    return pipe_event_type_valid(event, len);
}

bool pipe_keys_name_valid(const char *name)
{
    return name && component_valid(name, strnlen(name, PIPE_KEYS_NAME_MAX + 1), PIPE_KEYS_NAME_MAX);
}

bool pipe_keys_instance_valid(const char *s)
{
    if (!s)
        return false;
    size_t len = strnlen(s, PIPE_KEYS_INSTANCE_MAX + 1);
    if (len == 0 || len > PIPE_KEYS_INSTANCE_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

/* Replaces out's contents with the formatted key, or leaves out alone. */
static int key_set(struct pipe_buf *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int key_set(struct pipe_buf *out, const char *fmt, ...)
{
    char tmp[KEY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return PIPE_EINVAL;
    if ((size_t)n > out->max)
        return PIPE_ETOOBIG;
    pipe_buf_reset(out);
    return pipe_buf_append(out, tmp, (size_t)n);
}

static bool time_valid(int64_t ms)
{
    return ms >= 0 && ms < TIME_END_MS;
}

/* "<prefix>/dt=YYYY-MM-DD/hr=HH/<name>.ndjson.zst" */
static int data_key(struct pipe_buf *out, const char *prefix, const char *event, int64_t time_ms,
                    const char *name)
{
    if (!time_valid(time_ms) || !pipe_keys_name_valid(name))
        return PIPE_EINVAL;
    char dt[11], hr[3];
    pipe_clock_partition(time_ms, dt, hr);
    if (event)
        return key_set(out, "%s/%s/dt=%s/hr=%s/%s" PIPE_KEYS_SUFFIX, prefix, event, dt, hr, name);
    return key_set(out, "%s/dt=%s/hr=%s/%s" PIPE_KEYS_SUFFIX, prefix, dt, hr, name);
}

int pipe_keys_filtered(struct pipe_buf *out, int64_t time_ms, const char *name)
{
    return data_key(out, "filtered", NULL, time_ms, name);
}

int pipe_keys_rejected(struct pipe_buf *out, int64_t time_ms, const char *name)
{
    return data_key(out, "rejected", NULL, time_ms, name);
}

int pipe_keys_combined(struct pipe_buf *out, int64_t time_ms, const char *job_id)
{
    return data_key(out, "combined", NULL, time_ms, job_id);
}

int pipe_keys_split(struct pipe_buf *out, const char *event, int64_t time_ms, const char *job_id)
{
    if (!event || !pipe_keys_event_valid(event, strnlen(event, PIPE_KEYS_EVENT_MAX + 1)))
        return PIPE_EINVAL;
    return data_key(out, "split", event, time_ms, job_id);
}

int pipe_keys_job(struct pipe_buf *out, const char *job_id)
{
    if (!pipe_keys_name_valid(job_id))
        return PIPE_EINVAL;
    return key_set(out, PIPE_KEYS_JOBS_COMBINE "%s.json", job_id);
}

int pipe_keys_split_job(struct pipe_buf *out, const char *job_id)
{
    if (!pipe_keys_name_valid(job_id))
        return PIPE_EINVAL;
    return key_set(out, PIPE_KEYS_JOBS_SPLIT "%s.json", job_id);
}

int pipe_keys_job_lease(struct pipe_buf *out, const char *dir, const char *job_id)
{
    const char *kind = NULL;
    if (strcmp(dir, PIPE_KEYS_JOBS_COMBINE) == 0)
        kind = "combine";
    else if (strcmp(dir, PIPE_KEYS_JOBS_SPLIT) == 0)
        kind = "split";
    if (kind == NULL || !pipe_keys_name_valid(job_id))
        return PIPE_EINVAL;
    return key_set(out, "%s/%s", kind, job_id);
}

/* A state/<kind>/dt=/hr=/<name><suffix> key. */
static int state_key(struct pipe_buf *out, const char *kind, int64_t hour_ms, const char *name,
                     const char *suffix)
{
    if (!time_valid(hour_ms) || !pipe_keys_name_valid(name))
        return PIPE_EINVAL;
    char dt[11], hr[3];
    pipe_clock_partition(hour_ms, dt, hr);
    return key_set(out, "state/%s/dt=%s/hr=%s/%s%s", kind, dt, hr, name, suffix);
}

int pipe_keys_combine_done(struct pipe_buf *out, int64_t hour_ms, const char *name)
{
    return state_key(out, "combine", hour_ms, name, "");
}

int pipe_keys_dedup_index(struct pipe_buf *out, int64_t hour_ms, const char *job_id)
{
    return state_key(out, "dedup", hour_ms, job_id, ".idx");
}

int pipe_keys_job_id(struct pipe_buf *out, unsigned generation, int64_t hour_ms, uint64_t hash)
{
    if (!time_valid(hour_ms))
        return PIPE_EINVAL;
    char dt[11], hr[3];
    pipe_clock_partition(hour_ms, dt, hr);
    /* g1-2026112217-<16 hex>: sortable by hour, unique by the inputs' hash. */
    return key_set(out, "g%u-%.4s%.2s%.2s%s-%016" PRIx64, generation, dt, dt + 5, dt + 8, hr, hash);
}

/* Reads count digits at *p, advancing it; -1 if one is not a digit. */
static int take_digits(const char **p, int count)
{
    int v = 0;
    for (int i = 0; i < count; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

/* civil_hour — the start of hour h of y-mo-d into *ms; false unless that is
 * a real calendar hour from 1970 on (Feb 30 and friends are refused by a
 * round trip through the calendar, not normalised into another day). */
static bool civil_hour(int y, int mo, int d, int h, int64_t *ms)
{
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23)
        return false;
    int64_t t = pipe_clock_from_civil(y, mo, d, h, 0, 0, 0);
    char dt[11], hr[3], want[40];
    pipe_clock_partition(t, dt, hr);
    snprintf(want, sizeof want, "%04d-%02d-%02d", y, mo, d);
    if (strcmp(dt, want) != 0)
        return false;
    *ms = t;
    return true;
}

bool pipe_keys_job_hour(const char *id, int64_t *hour_ms)
{
    const char *p = id;
    if (p == NULL || *p++ != 'g')
        return false;
    /* The generation as pipe_keys_job_id prints it: no leading zeros. */
    if (p[0] == '0' && p[1] >= '0' && p[1] <= '9')
        return false;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 7) {
        p++;
        digits++;
    }
    if (digits == 0 || digits > 6 || *p++ != '-')
        return false;
    int y = take_digits(&p, 4), mo = take_digits(&p, 2), d = take_digits(&p, 2);
    int h = take_digits(&p, 2);
    int64_t ms;
    if (*p++ != '-' || !civil_hour(y, mo, d, h, &ms))
        return false;
    for (int j = 0; j < 16; j++, p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    if (*p != '\0')
        return false;
    *hour_ms = ms;
    return true;
}

bool pipe_keys_job_of(const char *key, const char *dir, char *id)
{
    size_t dl = strlen(dir), kl = strlen(key);
    if (kl <= dl + 5 || strncmp(key, dir, dl) != 0 || strcmp(key + kl - 5, ".json") != 0 ||
        kl - dl - 5 > PIPE_KEYS_NAME_MAX)
        return false;
    memcpy(id, key + dl, kl - dl - 5);
    id[kl - dl - 5] = '\0';
    return pipe_keys_name_valid(id);
}

int pipe_keys_manifest(struct pipe_buf *out, const char *kind, const char *job_id)
{
    if (!kind || (strcmp(kind, "combined") != 0 && strcmp(kind, "split") != 0) ||
        !pipe_keys_name_valid(job_id))
        return PIPE_EINVAL;
    return key_set(out, "manifests/%s/%s.json", kind, job_id);
}

/* True for "filtered", "rejected", "combined" and "split/<valid event>". */
static bool data_prefix_valid(const char *prefix)
{
    if (!prefix)
        return false;
    if (!strcmp(prefix, "filtered") || !strcmp(prefix, "rejected") || !strcmp(prefix, "combined") ||
        !strcmp(prefix, "state/combine") || !strcmp(prefix, "state/dedup"))
        return true;
    if (strncmp(prefix, "split/", 6) != 0)
        return false;
    const char *ev = prefix + 6;
    return pipe_keys_event_valid(ev, strnlen(ev, PIPE_KEYS_EVENT_MAX + 1));
}

int pipe_keys_hour_prefix(struct pipe_buf *out, const char *prefix, int64_t hour_ms)
{
    if (!data_prefix_valid(prefix) || !time_valid(hour_ms))
        return PIPE_EINVAL;
    char dt[11], hr[3];
    pipe_clock_partition(hour_ms, dt, hr);
    return key_set(out, "%s/dt=%s/hr=%s/", prefix, dt, hr);
}

int pipe_keys_http_name(struct pipe_buf *out, unsigned generation, const char *instance,
                        int64_t start_ms, uint64_t seq)
{
    if (!pipe_keys_instance_valid(instance) || start_ms < 0)
        return PIPE_EINVAL;
    return key_set(out, "g%u-%s-%013" PRId64 "-%08" PRIu64, generation, instance, start_ms, seq);
}

int pipe_keys_raw_name(struct pipe_buf *out, unsigned generation, const char *raw_key,
                       const char *etag)
{
    if (!raw_key || !etag)
        return PIPE_EINVAL;
    /* Hashes key, NUL, etag: the NUL keeps ("ab", "c") and ("a", "bc")
     * apart. (XXH3's streaming state is opaque without static linking.) */
    size_t klen = strlen(raw_key), elen = strlen(etag);
    char *cat = pipe_malloc(klen + 1 + elen);
    memcpy(cat, raw_key, klen + 1);
    memcpy(cat + klen + 1, etag, elen);
    uint64_t h = XXH3_64bits(cat, klen + 1 + elen);
    pipe_free(cat);
    return key_set(out, "g%u-raw-%016" PRIx64, generation, h);
}

/* Reads count decimal digits at s; -1 if any is not a digit. */
static int read_digits(const char *s, size_t count)
{
    int v = 0;
    for (size_t i = 0; i < count; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Parses "dt=YYYY-MM-DD/hr=HH/" at s (at least 19 bytes available) into
 * the hour's start; false unless it is a real calendar hour. */
static bool parse_partition(const char *s, int64_t *hour_ms)
{
    if (memcmp(s, "dt=", 3) != 0 || s[7] != '-' || s[10] != '-' || memcmp(s + 13, "/hr=", 4) != 0 ||
        s[19] != '/')
        return false;
    int y = read_digits(s + 3, 4), mo = read_digits(s + 8, 2), d = read_digits(s + 11, 2);
    int h = read_digits(s + 17, 2);
    return civil_hour(y, mo, d, h, hour_ms);
}

int pipe_keys_parse(const char *key, struct pipe_key_parts *out)
{
    struct pipe_key_parts p;
    memset(&p, 0, sizeof p);
    if (!key)
        return PIPE_EINVAL;
    const char *slash = strchr(key, '/');
    if (!slash || (size_t)(slash - key) >= sizeof p.prefix)
        return PIPE_EINVAL;
    memcpy(p.prefix, key, (size_t)(slash - key));
    const char *rest = slash + 1;
    if (!strcmp(p.prefix, "split")) {
        const char *e = strchr(rest, '/');
        if (!e || !pipe_keys_event_valid(rest, (size_t)(e - rest)))
            return PIPE_EINVAL;
        memcpy(p.event, rest, (size_t)(e - rest));
        rest = e + 1;
    } else if (strcmp(p.prefix, "filtered") && strcmp(p.prefix, "rejected") &&
               strcmp(p.prefix, "combined")) {
        return PIPE_EINVAL;
    }
    /* "dt=YYYY-MM-DD/hr=HH/" is 20 bytes; strnlen keeps us inside the key. */
    if (strnlen(rest, 20) < 20 || !parse_partition(rest, &p.hour_ms))
        return PIPE_EINVAL;
    memcpy(p.dt, rest + 3, 10);
    memcpy(p.hr, rest + 17, 2);
    const char *name = rest + 20;
    size_t nlen = strlen(name), slen = strlen(PIPE_KEYS_SUFFIX);
    if (nlen <= slen || strcmp(name + nlen - slen, PIPE_KEYS_SUFFIX) != 0)
        return PIPE_EINVAL;
    nlen -= slen;
    if (!component_valid(name, nlen, PIPE_KEYS_NAME_MAX))
        return PIPE_EINVAL;
    memcpy(p.name, name, nlen);
    *out = p;
    return 0;
}
