/* libFuzzer target: configuration files (libpipe/conf.h), the JSON file a
 * program reads with --config, and the size and duration parsers. The input
 * is written as the config file of a program whose table has every option
 * type (the common stage options, then strings, JSON, sizes, durations,
 * booleans and integers with and without ranges, and the shared keys
 * dedup_window and retention, checked by the retention rules as the
 * dispatcher does). Assertions: a load succeeds or fails with PIPE_ECONFIG;
 * a failed load leaves the strings and JSON values freed and NULL and
 * prints one line without control bytes; a loaded value lies in its
 * declared range; loading the same file twice gives the same values; no
 * leak (LeakSanitizer). The input, as text, also goes to
 * pipe_conf_parse_size and pipe_conf_parse_duration: a refusal leaves the
 * output alone, a value formats to text that parses back to it. */
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/clock.h"
#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/retention.h"
#include "libpipe/stage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_cfg {
    struct pipe_stage_common common;
    char *listen;
    char *schemas;
    json_t *api_keys;
    uint64_t flush_bytes, max_pending, max_body, max_event, max_batch;
    int64_t flush_age_ms, raw_poll_ms, idle_timeout_ms, dedup_window_ms;
    int64_t zstd_level, max_conns;
    bool raw, open;
    json_t *retention;
};

#define OPT(f) offsetof(struct fuzz_cfg, f)

static const struct pipe_conf_opt fuzz_opts[] = {
    {"listen", PIPE_CONF_STR, "127.0.0.1:8080", OPT(listen), "address", 0, 0, "ADDR"},
    {"schemas", PIPE_CONF_STR, NULL, OPT(schemas), "directory", 0, 0, "DIR"},
    {"api_keys", PIPE_CONF_JSON, NULL, OPT(api_keys), "keys", 0, 0, NULL},
    {"flush_bytes", PIPE_CONF_SIZE, "8MiB", OPT(flush_bytes), "size", 1024, INT64_C(1) << 32, NULL},
    {"max_pending", PIPE_CONF_SIZE, "256MiB", OPT(max_pending), "size", 1 << 20, INT64_C(1) << 40,
     NULL},
    {"max_body", PIPE_CONF_SIZE, "16MiB", OPT(max_body), "size", 1024, INT64_C(1) << 31, NULL},
    {"max_event", PIPE_CONF_SIZE, "64KiB", OPT(max_event), "size", 256, 16 << 20, NULL},
    {"max_batch", PIPE_CONF_SIZE, NULL, OPT(max_batch), "size without a range", 0, 0, NULL},
    {"flush_age", PIPE_CONF_DURATION, "1s", OPT(flush_age_ms), "duration", 1, 3600000, NULL},
    {"raw_poll", PIPE_CONF_DURATION, "10s", OPT(raw_poll_ms), "duration", 100, 86400000, NULL},
    {"idle_timeout", PIPE_CONF_DURATION, "60s", OPT(idle_timeout_ms), "no range", 0, 0, NULL},
    {"dedup_window", PIPE_CONF_DURATION, "24h", OPT(dedup_window_ms), "shared", 0,
     INT64_C(366) * 86400000, NULL},
    {"zstd_level", PIPE_CONF_INT, "1", OPT(zstd_level), "negative range", -5, 19, NULL},
    {"max_conns", PIPE_CONF_INT, "1024", OPT(max_conns), "no range", 0, 0, NULL},
    {"raw", PIPE_CONF_BOOL, "true", OPT(raw), "bool", 0, 0, NULL},
    {"open", PIPE_CONF_BOOL, NULL, OPT(open), "bool", 0, 0, NULL},
    {"retention", PIPE_CONF_JSON, NULL, OPT(retention), "shared", 0, 0, NULL},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

/* The retention rules, as the dispatcher checks them at startup. */
static int fuzz_validate(void *cfgp, char *err, size_t errlen)
{
    const struct fuzz_cfg *c = cfgp;
    struct pipe_retention_config r;
    pipe_retention_config_init(&r, (unsigned)c->common.generation, c->dedup_window_ms);
    if (pipe_retention_config_parse(&r, c->retention, err, errlen) < 0 ||
        pipe_retention_config_check(&r, err, errlen) < 0)
        return -1;
    for (int i = 0; i < PIPE_RET__COUNT; i++)
        if (r.ttl_ms[i] <= 0)
            abort(); /* parse promises positive retentions */
    return 0;
}

static const struct pipe_conf_program prog = {
    .name = "sluice-filter",
    .summary = "fuzz",
    .version = "0",
    .tables = {pipe_stage_common_opts, fuzz_opts, NULL},
    .validate = fuzz_validate,
};

static char path[64];

static void remove_file(void)
{
    unlink(path);
}

static void check(int ok, const char *what, const char *detail)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz_conf: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* Every string and JSON field of cfg is NULL. */
static bool all_freed(const struct fuzz_cfg *cfg)
{
    for (const struct pipe_conf_opt *const *t = prog.tables; *t; t++)
        for (const struct pipe_conf_opt *o = *t; o->key; o++)
            if ((o->type == PIPE_CONF_STR || o->type == PIPE_CONF_JSON) &&
                *(void *const *)((const char *)cfg + o->offset) != NULL)
                return false;
    return true;
}

/* Every ranged option of a loaded cfg lies in its range. */
static void in_ranges(const struct fuzz_cfg *cfg)
{
    for (const struct pipe_conf_opt *const *t = prog.tables; *t; t++) {
        for (const struct pipe_conf_opt *o = *t; o->key; o++) {
            const char *f = (const char *)cfg + o->offset;
            if (o->max <= o->min)
                continue;
            if (o->type == PIPE_CONF_SIZE) {
                uint64_t v = *(const uint64_t *)f;
                check(v >= (uint64_t)o->min && v <= (uint64_t)o->max, "size out of range", o->key);
            } else if (o->type == PIPE_CONF_INT || o->type == PIPE_CONF_DURATION) {
                int64_t v = *(const int64_t *)f;
                check(v >= o->min && v <= o->max, "value out of range", o->key);
            }
        }
    }
}

/* Two loads of the same file agree, string and JSON values included. */
static void same_values(const struct fuzz_cfg *a, const struct fuzz_cfg *b)
{
    for (const struct pipe_conf_opt *const *t = prog.tables; *t; t++) {
        for (const struct pipe_conf_opt *o = *t; o->key; o++) {
            const char *fa = (const char *)a + o->offset, *fb = (const char *)b + o->offset;
            bool eq;
            if (o->type == PIPE_CONF_STR) {
                const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;
                eq = (!sa && !sb) || (sa && sb && strcmp(sa, sb) == 0);
            } else if (o->type == PIPE_CONF_JSON) {
                eq = json_equal(*(json_t *const *)fa, *(json_t *const *)fb) ||
                     (!*(json_t *const *)fa && !*(json_t *const *)fb);
            } else if (o->type == PIPE_CONF_BOOL) {
                eq = *(const bool *)fa == *(const bool *)fb;
            } else {
                eq = memcmp(fa, fb, 8) == 0;
            }
            check(eq, "two loads of one file differ", o->key);
        }
    }
}

/* One load of the config file: its result, cfg filled or cleaned up, and
 * what it wrote to stderr checked. */
static int load(struct fuzz_cfg *cfg)
{
    char *argv[] = {"sluice-filter", "--config", path, NULL};
    char *msg = NULL, *help = NULL;
    size_t msg_len = 0, help_len = 0;
    FILE *err = open_memstream(&msg, &msg_len), *out = open_memstream(&help, &help_len);
    int first = -1;
    memset(cfg, 0, sizeof *cfg);
    int rc = pipe_conf_load_to(&prog, cfg, 3, argv, &first, out, err);
    fclose(err);
    fclose(out);
    check(help_len == 0, "help printed", help);
    if (rc == 0) {
        check(msg_len == 0, "a load that succeeded printed", msg);
        check(first == 3, "first_arg", NULL);
        in_ranges(cfg);
    } else {
        check(rc == PIPE_ECONFIG, "load failed with another code", pipe_strerror(rc));
        check(first == -1, "a failed load wrote first_arg", NULL);
        check(msg_len > 0 && strncmp(msg, "sluice-filter: ", 15) == 0 && msg[msg_len - 1] == '\n',
              "a failed load printed no message", msg);
        /* One line (conf.h): bytes from the file are shown escaped. */
        for (size_t i = 0; i + 1 < msg_len; i++)
            check((unsigned char)msg[i] >= 0x20 && msg[i] != 0x7f, "message is not one line", msg);
        check(all_freed(cfg), "a failed load left values allocated", NULL);
    }
    free(msg);
    free(help);
    return rc;
}

static void config_file(const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    check(fd >= 0, "open the config file", path);
    check(write(fd, data, size) == (ssize_t)size, "write the config file", path);
    close(fd);
    struct fuzz_cfg a, b;
    int rc = load(&a);
    if (rc == 0) {
        check(load(&b) == 0, "the second load of one file failed", NULL);
        same_values(&a, &b);
        pipe_conf_cleanup(&prog, &b);
        pipe_conf_cleanup(&prog, &a);
        check(all_freed(&a), "cleanup left values allocated", NULL);
    }
}

/* The text parsers: refusals write nothing, values round-trip through the
 * formatters. */
static void text_parsers(const char *s)
{
    char buf[64];
    uint64_t size = 0xfeedfacecafebeefu;
    if (pipe_conf_parse_size(s, &size) == 0) {
        uint64_t again = 0;
        pipe_conf_format_size(size, buf, sizeof buf);
        check(pipe_conf_parse_size(buf, &again) == 0 && again == size, "size round trip", buf);
    } else {
        check(size == 0xfeedfacecafebeefu, "refused size written", s);
    }
    int64_t ms = INT64_MIN;
    if (pipe_conf_parse_duration(s, &ms) == 0) {
        int64_t again = -1;
        check(ms >= 0, "negative duration", s);
        pipe_conf_format_duration(ms, buf, sizeof buf);
        check(pipe_conf_parse_duration(buf, &again) == 0 && again == ms, "duration round trip",
              buf);
    } else {
        check(ms == INT64_MIN, "refused duration written", s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (path[0] == '\0') {
        /* Only the file may configure: no SLUICE_* variable of the caller. */
        clearenv();
        snprintf(path, sizeof path, "/tmp/fuzz-conf-%d.json", (int)getpid());
        atexit(remove_file);
    }
    config_file(data, size);
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    text_parsers(s);
    free(s);
    return 0;
}
