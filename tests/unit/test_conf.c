/* Unit tests for conf: precedence of the four sources for every type, flag
 * spellings, positional arguments, every error message, --help, and the
 * size and duration parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"
#include "tests/support/testutil.h"

struct tcfg {
    char *store;
    bool once;
    int64_t workers;
    uint64_t flush_bytes;
    int64_t flush_after;
    json_t *keys;
    json_t *retention;
    char *listen;
    int64_t dedup_window;
    int64_t replay_horizon;
};

static const struct pipe_conf_opt common_opts[] = {
    {"store", PIPE_CONF_STR, "file://./sluice-data", offsetof(struct tcfg, store),
     "object store URL", 0, 0, "URL"},
    {"once", PIPE_CONF_BOOL, NULL, offsetof(struct tcfg, once), "process pending work, exit", 0, 0,
     NULL},
    {"workers", PIPE_CONF_INT, "4", offsetof(struct tcfg, workers), "worker threads", 1, 64, NULL},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_opt prog_opts[] = {
    {"flush_bytes", PIPE_CONF_SIZE, "8MiB", offsetof(struct tcfg, flush_bytes),
     "flush a buffer at this size", 1024, 1 << 30, NULL},
    {"flush_after", PIPE_CONF_DURATION, "30s", offsetof(struct tcfg, flush_after),
     "flush a buffer this old", 1000, 3600000, NULL},
    {"keys", PIPE_CONF_JSON, NULL, offsetof(struct tcfg, keys), "API key to channel map", 0, 0,
     NULL},
    {"retention", PIPE_CONF_JSON, "{\"raw\":\"7d\"}", offsetof(struct tcfg, retention),
     "TTL per prefix", 0, 0, NULL},
    {"listen", PIPE_CONF_STR, "127.0.0.1:8080", offsetof(struct tcfg, listen), "ingest endpoint", 0,
     0, "ADDR"},
    {"dedup_window", PIPE_CONF_DURATION, "24h", offsetof(struct tcfg, dedup_window),
     "de-duplication window", 0, 0, NULL},
    {"replay_horizon", PIPE_CONF_DURATION, "12h", offsetof(struct tcfg, replay_horizon),
     "how far back a replay may reach", 0, 0, NULL},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static int validate_tcfg(void *cfg, char *err, size_t errlen)
{
    const struct tcfg *c = cfg;
    if (c->dedup_window < c->replay_horizon) {
        snprintf(err, errlen,
                 "dedup_window is shorter than replay_horizon: replays would "
                 "duplicate events");
        return -1;
    }
    return 0;
}

static const struct pipe_conf_program prog = {
    .name = "tprog",
    .summary = "A test program.",
    .usage_args = "[FILE...]",
    .version = "1.2.3",
    .tables = {common_opts, prog_opts, NULL},
    .validate = validate_tcfg,
};

static const char *env_names[] = {
    "SLUICE_STORE",        "SLUICE_ONCE",           "SLUICE_WORKERS",   "SLUICE_FLUSH_BYTES",
    "SLUICE_FLUSH_AFTER",  "SLUICE_KEYS",           "SLUICE_RETENTION", "SLUICE_LISTEN",
    "SLUICE_DEDUP_WINDOW", "SLUICE_REPLAY_HORIZON", "SLUICE_CONFIG",
};

/* A load's results: rc, what went to stdout and stderr, argv afterwards. */
struct run {
    int rc;
    int first;
    char *out;
    char *err;
    char *argv[32];
    int argc;
    struct tcfg cfg;
};

static char *tmpdir;

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
        unsetenv(env_names[i]);
    tmpdir = tu_tmpdir("test_conf");
    return tmpdir ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tu_rmrf(tmpdir);
    free(tmpdir);
    return 0;
}

/* load — runs pipe_conf_load_to over "tprog" + the NULL-terminated args. */
static void load_p(struct run *r, const struct pipe_conf_program *p, const char *const *args)
{
    size_t outlen, errlen;
    memset(r, 0, sizeof *r);
    r->argv[r->argc++] = (char *)"tprog";
    for (; *args; args++)
        r->argv[r->argc++] = (char *)*args;
    FILE *out = open_memstream(&r->out, &outlen);
    FILE *err = open_memstream(&r->err, &errlen);
    r->first = -1;
    r->rc = pipe_conf_load_to(p, &r->cfg, r->argc, r->argv, &r->first, out, err);
    fclose(out);
    fclose(err);
}

static void load(struct run *r, const char *const *args)
{
    load_p(r, &prog, args);
}

static void run_done(struct run *r)
{
    pipe_conf_cleanup(&prog, &r->cfg);
    free(r->out);
    free(r->err);
}

static char *write_conf(const char *name, const char *text)
{
    char *path = pipe_asprintf("%s/%s", tmpdir, name);
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
    return path;
}

static void assert_json(json_t *j, const char *expect)
{
    assert_non_null(j);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    assert_string_equal(s, expect);
    free(s);
}

static void test_conf_defaults_fill_every_type(void **state)
{
    (void)state;
    struct run r;
    load(&r, (const char *[]){NULL});
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.err, "");
    assert_string_equal(r.cfg.store, "file://./sluice-data");
    assert_false(r.cfg.once);
    assert_int_equal(r.cfg.workers, 4);
    assert_int_equal(r.cfg.flush_bytes, 8 << 20);
    assert_int_equal(r.cfg.flush_after, 30000);
    assert_null(r.cfg.keys);
    assert_json(r.cfg.retention, "{\"raw\":\"7d\"}");
    assert_int_equal(r.first, 1);
    run_done(&r);
}

/* Each key is set in the file, the environment and on the command line with
 * different values; dropping the flags, then the environment, must let the
 * next source through. */
static void test_conf_flag_beats_env_beats_file_beats_default(void **state)
{
    (void)state;
    char *path = write_conf("p.json", "{\"store\":\"file:///f\",\"once\":false,\"workers\":5,"
                                      "\"flush_bytes\":2048,\"flush_after\":\"2s\","
                                      "\"keys\":{\"k\":\"file\"},\"listen\":\"f:1\"}");
    const char *flags[] = {"-c",
                           path,
                           "--store",
                           "file:///flag",
                           "--once",
                           "--workers=7",
                           "--flush-bytes",
                           "4KiB",
                           "--flush-after",
                           "4s",
                           "--keys",
                           "{\"k\":\"flag\"}",
                           NULL};
    setenv("SLUICE_STORE", "file:///env", 1);
    setenv("SLUICE_ONCE", "no", 1);
    setenv("SLUICE_WORKERS", "6", 1);
    setenv("SLUICE_FLUSH_BYTES", "3k", 1);
    setenv("SLUICE_FLUSH_AFTER", "3s", 1);
    setenv("SLUICE_KEYS", "{\"k\":\"env\"}", 1);
    struct run r;

    load(&r, flags);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.cfg.store, "file:///flag");
    assert_true(r.cfg.once);
    assert_int_equal(r.cfg.workers, 7);
    assert_int_equal(r.cfg.flush_bytes, 4096);
    assert_int_equal(r.cfg.flush_after, 4000);
    assert_json(r.cfg.keys, "{\"k\":\"flag\"}");
    assert_string_equal(r.cfg.listen, "f:1"); /* only the file set it */
    run_done(&r);

    load(&r, (const char *[]){"-c", path, NULL});
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.cfg.store, "file:///env");
    assert_false(r.cfg.once);
    assert_int_equal(r.cfg.workers, 6);
    assert_int_equal(r.cfg.flush_bytes, 3072);
    assert_int_equal(r.cfg.flush_after, 3000);
    assert_json(r.cfg.keys, "{\"k\":\"env\"}");
    run_done(&r);

    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
        unsetenv(env_names[i]);
    setenv("SLUICE_ONCE", "", 1); /* empty counts as unset */
    load(&r, (const char *[]){"--config", path, NULL});
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.cfg.store, "file:///f");
    assert_false(r.cfg.once);
    assert_int_equal(r.cfg.workers, 5);
    assert_int_equal(r.cfg.flush_bytes, 2048);
    assert_int_equal(r.cfg.flush_after, 2000);
    assert_json(r.cfg.keys, "{\"k\":\"file\"}");
    run_done(&r);
    pipe_free(path);
}

static void test_conf_file_named_by_env_when_no_flag(void **state)
{
    (void)state;
    char *path = write_conf("e.json", "{\"workers\": 9}");
    setenv("SLUICE_CONFIG", path, 1);
    struct run r;
    load(&r, (const char *[]){NULL});
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.cfg.workers, 9);
    run_done(&r);
    pipe_free(path);
}

static void test_conf_boolean_flag_spellings(void **state)
{
    (void)state;
    struct run r;
    load(&r, (const char *[]){"--once", NULL});
    assert_true(r.cfg.once);
    run_done(&r);
    load(&r, (const char *[]){"--once", "--once=false", NULL});
    assert_int_equal(r.rc, 0);
    assert_false(r.cfg.once);
    run_done(&r);
    setenv("SLUICE_ONCE", "on", 1);
    load(&r, (const char *[]){"--no-once", NULL});
    assert_int_equal(r.rc, 0);
    assert_false(r.cfg.once);
    run_done(&r);
    load(&r, (const char *[]){NULL});
    assert_true(r.cfg.once);
    run_done(&r);
    load(&r, (const char *[]){"--once=maybe", NULL});
    assert_int_equal(r.rc, PIPE_ECONFIG);
    assert_string_equal(r.err, "tprog: --once: 'maybe' is not a boolean (true or false)\n");
    run_done(&r);
}

static void test_conf_positional_args_mixed_with_flags_move_to_the_end(void **state)
{
    (void)state;
    struct run r;
    load(&r, (const char *[]){"a.json", "--workers", "3", "-", "--once", "b", "--", "--x", NULL});
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.cfg.workers, 3);
    assert_true(r.cfg.once);
    assert_int_equal(r.argc - r.first, 4);
    assert_string_equal(r.argv[r.first], "a.json");
    assert_string_equal(r.argv[r.first + 1], "-");
    assert_string_equal(r.argv[r.first + 2], "b");
    assert_string_equal(r.argv[r.first + 3], "--x");
    assert_string_equal(r.argv[0], "tprog");
    run_done(&r);
}

static void test_conf_json_option_from_flag_and_file(void **state)
{
    (void)state;
    char *path = write_conf("j.json", "{\"$schema\":\"x\",\"comment\":\"ignored\","
                                      "\"retention\":{\"raw\":\"1d\",\"split\":\"90d\"}}");
    struct run r;
    load(&r, (const char *[]){"-c", path, "--keys=[1,2]", NULL});
    assert_int_equal(r.rc, 0);
    assert_json(r.cfg.retention, "{\"raw\":\"1d\",\"split\":\"90d\"}");
    assert_json(r.cfg.keys, "[1,2]");
    run_done(&r);
    load(&r, (const char *[]){"--keys", "{nope", NULL});
    assert_int_equal(r.rc, PIPE_ECONFIG);
    assert_non_null(strstr(r.err, "tprog: --keys: not valid JSON (error at line 1"));
    assert_null(strstr(r.err, "nope")); /* a JSON value may be a secret: never echoed */
    assert_null(r.cfg.keys);
    assert_null(r.cfg.retention); /* cleaned up on failure */
    run_done(&r);
    pipe_free(path);
}

static void test_conf_program_section_overrides_and_other_sections_are_skipped(void **state)
{
    (void)state;
    char *path = write_conf("s.json", "{\"workers\":2,\"tprog\":{\"workers\":3},"
                                      "\"sluice-other\":{\"whatever\":1}}");
    struct run r;
    load(&r, (const char *[]){"-c", path, NULL});
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.cfg.workers, 3);
    run_done(&r);
    pipe_free(path);
    path = write_conf("s2.json", "{\"tprog\":{\"tprog\":{}}}");
    load(&r, (const char *[]){"-c", path, NULL});
    assert_int_equal(r.rc, PIPE_ECONFIG);
    assert_non_null(strstr(r.err, "unknown key 'tprog'"));
    run_done(&r);
    pipe_free(path);
}

/* ---- errors ---- */

static void expect_error(const char *const *args, const char *message)
{
    struct run r;
    load(&r, args);
    assert_int_equal(r.rc, PIPE_ECONFIG);
    assert_string_equal(r.err, message);
    assert_string_equal(r.out, "");
    assert_int_equal(r.first, -1);
    assert_null(r.cfg.store);
    run_done(&r);
}

static void test_conf_bad_values_name_the_flag_and_an_example(void **state)
{
    (void)state;
    expect_error((const char *[]){"--flush-bytes", "8XB", NULL},
                 "tprog: --flush-bytes: '8XB' is not a size (e.g. 8MiB)\n");
    expect_error((const char *[]){"--flush-after=30", NULL},
                 "tprog: --flush-after: '30' is not a duration (e.g. 250ms, 30s, 5m)\n");
    expect_error((const char *[]){"--workers", "three", NULL},
                 "tprog: --workers: 'three' is not an integer\n");
    expect_error((const char *[]){"--workers", "99999999999999999999", NULL},
                 "tprog: --workers: '99999999999999999999' is too large\n");
    expect_error((const char *[]){"--store", NULL}, "tprog: --store: needs a value\n");
}

static void test_conf_out_of_range_reports_bounds_in_units(void **state)
{
    (void)state;
    expect_error((const char *[]){"--workers", "0", NULL},
                 "tprog: --workers: '0' is out of range (1 to 64)\n");
    expect_error((const char *[]){"--flush-bytes=2GiB", NULL},
                 "tprog: --flush-bytes: '2GiB' is out of range (1KiB to 1GiB)\n");
    expect_error((const char *[]){"--flush-after=2h", NULL},
                 "tprog: --flush-after: '2h' is out of range (1s to 1h)\n");
    expect_error((const char *[]){"--flush-bytes=16EiB", NULL},
                 "tprog: --flush-bytes: '16EiB' is not a size (e.g. 8MiB)\n");
    expect_error((const char *[]){"--flush-bytes=15PiB", NULL},
                 "tprog: --flush-bytes: '15PiB' is out of range (1KiB to 1GiB)\n");
}

static void test_conf_unknown_flag_suggests_nearest(void **state)
{
    (void)state;
    expect_error((const char *[]){"--flush-byte", "1", NULL},
                 "tprog: unknown option --flush-byte (did you mean --flush-bytes?)\n");
    expect_error((const char *[]){"--wrokers=1", NULL},
                 "tprog: unknown option --wrokers (did you mean --workers?)\n");
    expect_error((const char *[]){"--onec", NULL},
                 "tprog: unknown option --onec (did you mean --once?)\n");
    expect_error((const char *[]){"--completely-different", NULL},
                 "tprog: unknown option --completely-different\n");
    expect_error((const char *[]){"-x", NULL}, "tprog: unknown option -x\n");
    expect_error((const char *[]){"--no-store", NULL},
                 "tprog: --no-store: only boolean options can be negated\n");
    expect_error((const char *[]){"--no-once=true", NULL}, "tprog: --no-once: takes no value\n");
}

static void test_conf_env_errors_name_the_variable(void **state)
{
    (void)state;
    setenv("SLUICE_FLUSH_AFTER", "soon", 1);
    expect_error((const char *[]){NULL},
                 "tprog: SLUICE_FLUSH_AFTER: 'soon' is not a duration (e.g. 250ms, 30s, 5m)\n");
}

static void test_conf_file_errors_are_clear(void **state)
{
    (void)state;
    struct run r;
    char *missing = pipe_asprintf("%s/missing.json", tmpdir);
    char *msg = pipe_asprintf("tprog: config file %s: No such file or directory\n", missing);
    expect_error((const char *[]){"-c", missing, NULL}, msg);
    pipe_free(msg);
    pipe_free(missing);

    char *path = write_conf("typo.json", "{\"flush_byte\": 1024}");
    msg =
        pipe_asprintf("tprog: %s: unknown key 'flush_byte' (did you mean 'flush_bytes'?)\n", path);
    expect_error((const char *[]){"-c", path, NULL}, msg);
    pipe_free(msg);
    pipe_free(path);

    path = write_conf("bad.json", "{\n  \"workers\": 1,\n  oops\n}");
    load(&r, (const char *[]){"-c", path, NULL});
    assert_int_equal(r.rc, PIPE_ECONFIG);
    msg = pipe_asprintf("tprog: %s:3:", path);
    assert_memory_equal(r.err, msg, strlen(msg));
    pipe_free(msg);
    run_done(&r);
    pipe_free(path);

    path = write_conf("types.json", "{\"store\": 5}");
    msg = pipe_asprintf("tprog: %s: store: expected a string\n", path);
    expect_error((const char *[]){"-c", path, NULL}, msg);
    pipe_free(msg);
    pipe_free(path);

    path = write_conf("types2.json", "{\"once\": \"maybe\"}");
    msg = pipe_asprintf("tprog: %s: once: 'maybe' is not a boolean (true or false)\n", path);
    expect_error((const char *[]){"-c", path, NULL}, msg);
    pipe_free(msg);
    pipe_free(path);

    path = write_conf("dup.json", "{\"workers\": 1, \"workers\": 2}");
    load(&r, (const char *[]){"-c", path, NULL});
    assert_int_equal(r.rc, PIPE_ECONFIG);
    assert_non_null(strstr(r.err, "duplicate"));
    run_done(&r);
    pipe_free(path);

    path = write_conf("arr.json", "[1]");
    msg = pipe_asprintf("tprog: %s: the top level must be a JSON object\n", path);
    expect_error((const char *[]){"-c", path, NULL}, msg);
    pipe_free(msg);
    pipe_free(path);
}

/* An error is one line (conf.h), whatever bytes the file or a flag held:
 * control characters in a key or a value are shown escaped, so a config
 * file cannot split or forge log lines. Found by fuzz_conf. */
static void test_conf_errors_escape_control_bytes(void **state)
{
    (void)state;
    char *path = write_conf("ctl.json", "{\"a\\nb\\u001b[31m\": 1}");
    char *msg = pipe_asprintf("tprog: %s: unknown key 'a\\x0ab\\x1b[31m'\n", path);
    expect_error((const char *[]){"-c", path, NULL}, msg);
    pipe_free(msg);
    pipe_free(path);

    path = write_conf("ctl2.json", "{\"once\": \"ye\\rs\\u007f\"}");
    msg =
        pipe_asprintf("tprog: %s: once: 'ye\\x0ds\\x7f' is not a boolean (true or false)\n", path);
    expect_error((const char *[]){"-c", path, NULL}, msg);
    pipe_free(msg);
    pipe_free(path);

    expect_error((const char *[]){"--workers", "1\n2", NULL},
                 "tprog: --workers: '1\\x0a2' is not an integer\n");
}

static void test_conf_validate_refuses_contradictions(void **state)
{
    (void)state;
    expect_error((const char *[]){"--dedup-window", "1h", NULL},
                 "tprog: dedup_window is shorter than replay_horizon: replays would "
                 "duplicate events\n");
    struct run r;
    load(&r, (const char *[]){"--dedup-window", "1h", "--replay-horizon=30m", NULL});
    assert_int_equal(r.rc, 0);
    run_done(&r);
}

static void test_conf_key_defined_in_two_tables_is_refused(void **state)
{
    (void)state;
    static const struct pipe_conf_opt dup[] = {
        {"workers", PIPE_CONF_INT, "1", offsetof(struct tcfg, workers), "again", 0, 0, NULL},
        {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
    };
    const struct pipe_conf_program p = {.name = "tprog", .tables = {common_opts, dup, NULL}};
    struct run r;
    load_p(&r, &p, (const char *[]){NULL});
    assert_int_equal(r.rc, PIPE_ECONFIG);
    assert_string_equal(r.err, "tprog: internal error: option 'workers' is defined twice\n");
    run_done(&r);
}

static void test_conf_help_lists_every_key_default_and_env(void **state)
{
    (void)state;
    struct run r;
    load(&r, (const char *[]){"--workers", "zero", "--help", NULL});
    assert_int_equal(r.rc, PIPE_EHELP);
    assert_string_equal(r.err, "");
    assert_non_null(strstr(r.out, "usage: tprog [options] [FILE...]"));
    assert_non_null(strstr(r.out, "A test program."));
    assert_non_null(strstr(r.out, "-c, --config FILE"));
    assert_non_null(strstr(r.out, "range: 1KiB to 1GiB"));
    const struct pipe_conf_opt *tables[] = {common_opts, prog_opts};
    for (size_t t = 0; t < 2; t++) {
        for (const struct pipe_conf_opt *o = tables[t]; o->key; o++) {
            char flag[64], env[64];
            size_t i;
            for (i = 0; o->key[i]; i++) {
                flag[i] = o->key[i] == '_' ? '-' : o->key[i];
                env[i] = (char)(o->key[i] >= 'a' && o->key[i] <= 'z' ? o->key[i] - 32 : o->key[i]);
            }
            flag[i] = env[i] = '\0';
            char *want = pipe_asprintf("%s%s", o->type == PIPE_CONF_BOOL ? "--[no-]" : "--", flag);
            assert_non_null(strstr(r.out, want));
            pipe_free(want);
            want = pipe_asprintf("env: SLUICE_%s;", env);
            assert_non_null(strstr(r.out, want));
            pipe_free(want);
            assert_non_null(strstr(r.out, o->help));
            if (o->def) {
                want = pipe_asprintf("default: %s;", o->def);
                assert_non_null(strstr(r.out, want));
                pipe_free(want);
            }
        }
    }
    assert_non_null(strstr(r.out, "--[no-]once"));
    assert_non_null(strstr(r.out, "--listen ADDR"));
    run_done(&r);

    load(&r, (const char *[]){"--version", NULL});
    assert_int_equal(r.rc, PIPE_EHELP);
    assert_string_equal(r.out, "tprog 1.2.3\n");
    run_done(&r);

    load(&r, (const char *[]){"--", "--help", NULL}); /* after --, just an argument */
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.argv[r.first], "--help");
    run_done(&r);
}

/* ---- parsers ---- */

static void test_conf_parse_size_units_and_overflow(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t out;
    } ok[] = {
        {"0", 0},
        {"1048576", 1048576},
        {"512k", 512 << 10},
        {"512K", 512 << 10},
        {"8MiB", 8 << 20},
        {"8 MB", 8 << 20},
        {"8mib", 8 << 20},
        {"1GiB", 1 << 30},
        {"3b", 3},
        {"2TiB", 2ull << 40},
        {"1PiB", 1ull << 50},
        {"18446744073709551615", UINT64_MAX},
        {"16383PiB", 16383ull << 50},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 7;
        assert_int_equal(pipe_conf_parse_size(ok[i].in, &v), 0);
        assert_true(v == ok[i].out);
    }
    static const char *bad[] = {"",   "k",      "-1",    "1.5MiB", "8XB", "8 ",
                                " 8", "8  MiB", "8MiBs", "0x10",   "1e3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        assert_int_equal(pipe_conf_parse_size(bad[i], &v), PIPE_EINVAL);
        assert_int_equal(v, 7);
    }
    uint64_t v = 7;
    assert_int_equal(pipe_conf_parse_size("18446744073709551616", &v), PIPE_ETOOBIG);
    assert_int_equal(pipe_conf_parse_size("16384PiB", &v), PIPE_ETOOBIG);
    assert_int_equal(v, 7);
}

static void test_conf_parse_duration_units_and_overflow(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t out;
    } ok[] = {
        {"0", 0},
        {"250ms", 250},
        {"1s", 1000},
        {"5m", 300000},
        {"2h", 7200000},
        {"7d", 604800000},
        {"1h30m", 5400000},
        {"1m500ms", 60500},
        {"0s", 0},
        {"9223372036854775807ms", INT64_MAX},
        {"106751991167d", 106751991167 * 86400000LL},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = 7;
        assert_int_equal(pipe_conf_parse_duration(ok[i].in, &v), 0);
        assert_true(v == ok[i].out);
    }
    static const char *bad[] = {"",     "30",  "s",    "-1s", "1.5s", "5M",
                                "1sec", "1 s", "1h30", "ms",  "1y"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 7;
        assert_int_equal(pipe_conf_parse_duration(bad[i], &v), PIPE_EINVAL);
        assert_int_equal(v, 7);
    }
    int64_t v = 7;
    assert_int_equal(pipe_conf_parse_duration("9223372036854775808ms", &v), PIPE_ETOOBIG);
    assert_int_equal(pipe_conf_parse_duration("106751991168d", &v), PIPE_ETOOBIG);
    assert_int_equal(pipe_conf_parse_duration("9223372036854775807ms1ms", &v), PIPE_ETOOBIG);
    assert_int_equal(v, 7);
}

static void test_conf_format_size_and_duration_pick_exact_units(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(pipe_conf_format_size(8 << 20, b, sizeof b), "8MiB");
    assert_string_equal(pipe_conf_format_size(1536, b, sizeof b), "1536B");
    assert_string_equal(pipe_conf_format_size(0, b, sizeof b), "0B");
    assert_string_equal(pipe_conf_format_duration(90000, b, sizeof b), "90s");
    assert_string_equal(pipe_conf_format_duration(1500, b, sizeof b), "1500ms");
    assert_string_equal(pipe_conf_format_duration(604800000, b, sizeof b), "7d");
    assert_string_equal(pipe_conf_format_duration(0, b, sizeof b), "0ms");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_conf_defaults_fill_every_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_flag_beats_env_beats_file_beats_default, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conf_file_named_by_env_when_no_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_boolean_flag_spellings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_positional_args_mixed_with_flags_move_to_the_end,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_json_option_from_flag_and_file, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_conf_program_section_overrides_and_other_sections_are_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_bad_values_name_the_flag_and_an_example, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conf_out_of_range_reports_bounds_in_units, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conf_unknown_flag_suggests_nearest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_env_errors_name_the_variable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_file_errors_are_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_errors_escape_control_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_validate_refuses_contradictions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conf_key_defined_in_two_tables_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conf_help_lists_every_key_default_and_env, setup,
                                        teardown),
        cmocka_unit_test(test_conf_parse_size_units_and_overflow),
        cmocka_unit_test(test_conf_parse_duration_units_and_overflow),
        cmocka_unit_test(test_conf_format_size_and_duration_pick_exact_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
