/* libFuzzer target: object keys (libpipe/keys.h), which stages parse from
 * store listings where anybody can put an object. The input is taken as a
 * key: a data key that parses must be rebuilt by its builder to the same
 * bytes, a job or manifest key to the same key and its job id to the same
 * id; a refused key leaves the output untouched. The input is also given
 * to the builders as a name, event type, instance and prefix: a builder
 * accepts it exactly when the matching validator does, and what it builds
 * parses back to the same parts. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 10000-01-01T00:00:00Z: the builders' time range ends there (keys.h). */
#define TIME_END_MS INT64_C(253402300800000)

static void check(int ok, const char *what, const char *key)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz_keys: %s: \"%s\"\n", what, key);
    abort();
}

/* The bytes of b equal the C string s. */
static int same(const struct pipe_buf *b, const char *s)
{
    return b->len == strlen(s) && memcmp(b->data, s, b->len) == 0;
}

/* A data key that parses is rebuilt to itself, and its hour partition
 * prefix is its beginning. A refused one leaves the parts untouched. */
static void data_key(const char *key, struct pipe_buf *b)
{
    struct pipe_key_parts p, before;
    memset(&p, 0xa5, sizeof p);
    before = p;
    if (pipe_keys_parse(key, &p) < 0) {
        check(memcmp(&p, &before, sizeof p) == 0, "refused key wrote its parts", key);
        return;
    }
    int rc;
    char prefix[sizeof p.prefix + sizeof p.event + 1];
    check(p.hour_ms >= 0 && p.hour_ms < TIME_END_MS && p.hour_ms % PIPE_HOUR_MS == 0,
          "parsed hour is not the start of an hour", key);
    if (strcmp(p.prefix, "split") == 0) {
        rc = pipe_keys_split(b, p.event, p.hour_ms, p.name);
        snprintf(prefix, sizeof prefix, "split/%s", p.event);
    } else {
        check(p.event[0] == '\0', "event set outside split/", key);
        rc = strcmp(p.prefix, "filtered") == 0   ? pipe_keys_filtered(b, p.hour_ms, p.name)
             : strcmp(p.prefix, "rejected") == 0 ? pipe_keys_rejected(b, p.hour_ms, p.name)
             : strcmp(p.prefix, "combined") == 0 ? pipe_keys_combined(b, p.hour_ms, p.name)
                                                 : -1;
        snprintf(prefix, sizeof prefix, "%s", p.prefix);
    }
    check(rc == 0 && same(b, key), "parsed key does not rebuild to itself", key);
    check(pipe_keys_hour_prefix(b, prefix, p.hour_ms) == 0 && b->len <= strlen(key) &&
              memcmp(b->data, key, b->len) == 0,
          "hour prefix is not the key's beginning", key);
    char dt[11], hr[3];
    pipe_clock_partition(p.hour_ms, dt, hr);
    check(strcmp(dt, p.dt) == 0 && strcmp(hr, p.hr) == 0, "dt/hr disagree with hour_ms", key);
}

/* An id that pipe_keys_job_hour accepts is one pipe_keys_job_id makes:
 * rebuilding it from its generation, hour and hash gives the same bytes. */
static void job_id(const char *id, struct pipe_buf *b)
{
    int64_t hour = INT64_MIN;
    if (!pipe_keys_job_hour(id, &hour)) {
        check(hour == INT64_MIN, "refused job id wrote its hour", id);
        return;
    }
    unsigned gen;
    uint64_t hash;
    check(sscanf(id, "g%u-%*10[0-9]-%16" SCNx64, &gen, &hash) == 2, "accepted id unreadable", id);
    check(pipe_keys_job_id(b, gen, hour, hash) == 0 && same(b, id),
          "accepted job id does not rebuild to itself", id);
}

/* "<dir><id>.json" keys: an id taken from one is a valid name, the key
 * rebuilds from it, and a job id in it is checked as above. */
static void job_keys(const char *key, struct pipe_buf *b)
{
    static const char *const dirs[] = {PIPE_KEYS_JOBS_COMBINE, PIPE_KEYS_JOBS_SPLIT,
                                       "manifests/combined/", "manifests/split/"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char id[PIPE_KEYS_NAME_MAX + 1];
        if (!pipe_keys_job_of(key, dirs[i], id))
            continue;
        check(pipe_keys_name_valid(id), "job_of gave an invalid id", key);
        int rc = i == 0   ? pipe_keys_job(b, id)
                 : i == 1 ? pipe_keys_split_job(b, id)
                          : pipe_keys_manifest(b, i == 2 ? "combined" : "split", id);
        check(rc == 0 && same(b, key), "job key does not rebuild to itself", key);
        check(pipe_keys_job_lease(b, dirs[i < 2 ? i : 0], id) == 0, "job lease refused", key);
        job_id(id, b);
    }
}

/* s as a builder argument: accepted exactly when valid, and what is built
 * parses back to the same parts. */
static void builders(const char *s, int64_t t, struct pipe_buf *b)
{
    struct pipe_key_parts p;
    int64_t hour = t - t % PIPE_HOUR_MS;
    bool name_ok = pipe_keys_name_valid(s);
    check((pipe_keys_filtered(b, t, s) == 0) == name_ok, "filtered builder vs name rule", s);
    if (name_ok) {
        check(pipe_keys_parse(b->data, &p) == 0 && strcmp(p.name, s) == 0 && p.hour_ms == hour &&
                  strcmp(p.prefix, "filtered") == 0,
              "built filtered key does not parse back", s);
        check(pipe_keys_combine_done(b, t, s) == 0 && pipe_keys_dedup_index(b, t, s) == 0,
              "state key refused a valid name", s);
    }
    bool event_ok = pipe_keys_event_valid(s, strlen(s));
    check((pipe_keys_split(b, s, t, "j") == 0) == event_ok, "split builder vs event rule", s);
    if (event_ok)
        check(pipe_keys_parse(b->data, &p) == 0 && strcmp(p.event, s) == 0 &&
                  strcmp(p.name, "j") == 0 && p.hour_ms == hour,
              "built split key does not parse back", s);
    bool inst_ok = pipe_keys_instance_valid(s);
    check((pipe_keys_http_name(b, 1, s, t, (uint64_t)t) == 0) == inst_ok,
          "http name vs instance rule", s);
    if (inst_ok)
        check(pipe_keys_name_valid(b->data), "http name is not a valid name", s);
    check(pipe_keys_raw_name(b, 7, s, s) == 0 && pipe_keys_name_valid(b->data),
          "raw name is not a valid name", s);
    if (pipe_keys_hour_prefix(b, s, t) == 0)
        check(b->len > strlen(s) && memcmp(b->data, s, strlen(s)) == 0 && b->data[strlen(s)] == '/',
              "hour prefix does not start with its prefix", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *key = malloc(size + 1);
    memcpy(key, data, size);
    key[size] = '\0';
    struct pipe_buf b;
    pipe_buf_init(&b, 4096);
    data_key(key, &b);
    job_keys(key, &b);
    job_id(key, &b);
    /* A time for the builders from the input's bytes, inside their range. */
    uint64_t t = 1469598103934665603u;
    for (size_t i = 0; i < size; i++)
        t = (t ^ data[i]) * 1099511628211u;
    builders(key, (int64_t)(t % (uint64_t)TIME_END_MS), &b);
    pipe_buf_cleanup(&b);
    free(key);
    return 0;
}
