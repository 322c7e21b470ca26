/* sweep — `sluicectl sweep`: a command line over the retention sweep of
 * libpipe/retention.h (SPEC §2 and §5.5; the rules are in
 * docs/compaction.md, "Operations"). Prints each key deleted on stdout, a
 * progress line on a terminal, and a summary per prefix on stderr. */
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "libpipe/clock.h"
#include "libpipe/dedup.h"
#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/retention.h"
#include "libpipe/store.h"
#include "tools/sluicectl/ctl.h"

#define SWEEP_PROGRESS_EVERY 10000

struct sweep_cfg {
    char *store;
    json_t *retention;
    bool dry_run;
    int64_t generation;
    int64_t dedup_window_ms;
};

static const struct pipe_conf_opt sweep_opts[] = {
    {"store", PIPE_CONF_STR, "file://./sluice-data", offsetof(struct sweep_cfg, store),
     "object store URL: file:///path or s3://bucket[/prefix]?endpoint=..", 0, 0, "URL"},
    {"retention", PIPE_CONF_JSON, NULL, offsetof(struct sweep_cfg, retention),
     "retention per prefix, a JSON object of durations overriding the defaults "
     "{\"raw\":\"7d\",\"filtered\":\"7d\",\"rejected\":\"30d\",\"combined\":\"30d\","
     "\"split\":\"90d\"}; \"dedup\" (state/dedup/) defaults to the longest of dedup_window, "
     "filtered and combined",
     0, 0, "JSON"},
    {"dry_run", PIPE_CONF_BOOL, "false", offsetof(struct sweep_cfg, dry_run),
     "print what would be deleted and delete nothing", 0, 0, NULL},
    {"generation", PIPE_CONF_INT, "1", offsetof(struct sweep_cfg, generation),
     "generation the filter runs with (names the filtered/ object of a raw/ object)", 1, 999999,
     "N"},
    {"dedup_window", PIPE_CONF_DURATION, PIPE_DEDUP_WINDOW_DEFAULT,
     offsetof(struct sweep_cfg, dedup_window_ms),
     "the splitters' de-duplication window: state/dedup/ index objects are kept at least this long",
     PIPE_DEDUP_WINDOW_MIN_MS, PIPE_DEDUP_WINDOW_MAX_MS, NULL},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program sweep_program = {
    .name = "sluicectl sweep",
    .summary = "Deletes objects older than their prefix's retention (by mtime), never one the "
               "next stage has not consumed: raw/ once its filtered/ object exists; filtered/ "
               "once it is combined (its state/combine/ marker goes after it); combined/ once "
               "split (its combined manifest goes with it); split/, manifests/split/ and "
               "rejected/ by age alone; state/dedup/ index objects past the de-duplication "
               "window. Prints each key it deletes (with --dry-run, each it would delete) on "
               "stdout and a summary per prefix on stderr. Exit 1 if a delete failed. "
               "sluice-dispatcher runs the same sweep every --sweep-every.",
    .usage_args = NULL,
    .version = SLUICE_VERSION,
    .tables = {sweep_opts, NULL},
};

/* What the callbacks need. */
struct sweep_out {
    bool dry_run;
    bool progress, progress_shown;
    uint64_t shown; /* listed count at the last progress line */
};

static void on_deleted(void *arg, size_t rule, const char *key, bool companion)
{
    struct sweep_out *o = arg;
    (void)rule;
    (void)companion;
    printf("%s%s\n", o->dry_run ? "would delete " : "deleted ", key);
}

static void on_error(void *arg, const char *what, const char *key, int rc, const char *detail)
{
    struct sweep_out *o = arg;
    ctl_progress_clear(&o->progress_shown);
    fprintf(stderr, "sluicectl sweep: %s %s: %s\n", what, key,
            detail[0] ? detail : pipe_strerror(rc));
}

static int on_progress(void *arg, size_t rule, uint64_t listed)
{
    struct sweep_out *o = arg;
    if (!o->progress || o->shown / SWEEP_PROGRESS_EVERY == listed / SWEEP_PROGRESS_EVERY)
        return 0;
    o->shown = listed;
    fprintf(stderr, "\rsluicectl sweep: %" PRIu64 " keys listed (now in %s)\033[K", listed,
            pipe_retention_rule_prefix(rule));
    o->progress_shown = true;
    return 0;
}

static void sweep_summary(const struct pipe_retention_config *c, bool dry_run,
                          const struct pipe_retention_counts *counts)
{
    char d[32];
    fprintf(stderr, "%-18s %9s %9s %12s %9s %9s %7s%s\n", "PREFIX", "RETENTION", "OLD",
            dry_run ? "TO_DELETE" : "DELETED", "BYTES", "KEPT", "ERRORS",
            dry_run ? "  (dry run)" : "");
    for (size_t i = 0; i < PIPE_RETENTION_NRULES; i++) {
        const struct pipe_retention_count *n = &counts->rule[i];
        fprintf(stderr,
                "%-18s %9s %9" PRIu64 " %12" PRIu64 " %9" PRIu64 " %9" PRIu64 " %7" PRIu64 "\n",
                pipe_retention_rule_prefix(i),
                pipe_conf_format_duration(pipe_retention_rule_ttl(c, i), d, sizeof d), n->old,
                n->deleted + n->companions, n->bytes, n->kept, n->errors);
    }
}

/* Reads the flags and the retention into *rc_out. Returns -1 to go on,
 * else the exit code (0 after --help). */
static int sweep_setup(struct sweep_cfg *cfg, struct pipe_retention_config *rc_out, int argc,
                       char **argv)
{
    int first_arg;
    int rc = pipe_conf_load(&sweep_program, cfg, argc, argv, &first_arg);
    if (rc < 0)
        return ctl_exit_from_conf(rc);
    if (first_arg < argc) {
        fprintf(stderr, "sluicectl sweep: unexpected argument \"%s\"\n", argv[first_arg]);
        return CTL_EXIT_USAGE;
    }
    char err[256];
    pipe_retention_config_init(rc_out, (unsigned)cfg->generation, cfg->dedup_window_ms);
    if (pipe_retention_config_parse(rc_out, cfg->retention, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl sweep: --%s\n", err);
        return CTL_EXIT_USAGE;
    }
    if (pipe_retention_config_check(rc_out, err, sizeof err) < 0) {
        fprintf(stderr, "sluicectl sweep: %s\n", err);
        return CTL_EXIT_USAGE;
    }
    const char *warn[4];
    size_t n = pipe_retention_config_warnings(rc_out, warn, 4);
    for (size_t i = 0; i < n && i < 4; i++)
        fprintf(stderr, "sluicectl sweep: warning: %s\n", warn[i]);
    return -1;
}

int ctl_sweep_main(int argc, char **argv)
{
    struct sweep_cfg cfg = {0};
    struct pipe_retention_config rcfg;
    struct pipe_retention_counts counts;
    struct pipe_store *s = NULL;
    int exit_code = sweep_setup(&cfg, &rcfg, argc, argv);
    if (exit_code >= 0)
        goto out;
    exit_code = CTL_EXIT_FAIL;
    int rc = ctl_store_open("sweep", cfg.store, &s);
    if (rc < 0)
        goto out;
    if (!pipe_store_has(s, PIPE_STORE_CAP_MTIME)) {
        fprintf(stderr, "sluicectl sweep: the store keeps no mtimes; nothing can be aged\n");
        goto out;
    }
    struct sweep_out o = {.dry_run = cfg.dry_run, .progress = isatty(STDERR_FILENO) == 1};
    const struct pipe_retention_callbacks cb = {
        .deleted = on_deleted, .error = on_error, .progress = on_progress, .arg = &o};
    rc = pipe_retention_sweep(s, &rcfg, pipe_clock_now_ms(), cfg.dry_run, &cb, &counts);
    ctl_progress_clear(&o.progress_shown);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("sluicectl sweep: stdout");
        goto out;
    }
    sweep_summary(&rcfg, cfg.dry_run, &counts);
    if (rc == 0)
        exit_code = CTL_EXIT_OK;
out:
    pipe_store_free(s);
    pipe_conf_cleanup(&sweep_program, &cfg);
    return exit_code;
}
