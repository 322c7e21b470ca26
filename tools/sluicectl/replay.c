/* replay — `sluicectl replay STAGE --from T --to T`: re-issues recorded work
 * so that a stage runs again over retained inputs and rewrites the same keys
 * with the same bytes (docs/compaction.md, "Operations"). It never invents a
 * grouping: filter work is named by the raw object, combine work by the
 * combined manifest's inputs, split work by the combined object. */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/job.h"
#include "libpipe/keys.h"
#include "libpipe/lease.h"
#include "libpipe/manifest.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"
#include "tools/sluicectl/ctl.h"

#define REPLAY_PAGE           1000
#define REPLAY_DOC_MAX        (64u << 20) /* largest manifest read */
#define REPLAY_PROGRESS_EVERY 1000

struct replay_cfg {
    char *store;
    char *leases;
    char *from;
    char *to;
    bool dry_run;
    int64_t generation;
};

static const struct pipe_conf_opt replay_opts[] = {
    {"store", PIPE_CONF_STR, "file://./sluice-data", offsetof(struct replay_cfg, store),
     "object store URL: file:///path or s3://bucket[/prefix]?endpoint=..", 0, 0, "URL"},
    {"leases", PIPE_CONF_STR, "local", offsetof(struct replay_cfg, leases),
     "lease backend shared with the stages (job leases keep a running combiner or "
     "splitter out while a job is re-issued)",
     0, 0, "URL"},
    {"from", PIPE_CONF_STR, NULL, offsetof(struct replay_cfg, from),
     "start of the range (required): RFC 3339, YYYY-MM-DD, YYYY-MM-DDTHH, epoch ms, -2h", 0, 0,
     "TIME"},
    {"to", PIPE_CONF_STR, "now", offsetof(struct replay_cfg, to), "end of the range (exclusive)", 0,
     0, "TIME"},
    {"dry_run", PIPE_CONF_BOOL, "false", offsetof(struct replay_cfg, dry_run),
     "print what would be re-issued and change nothing", 0, 0, NULL},
    {"generation", PIPE_CONF_INT, "1", offsetof(struct replay_cfg, generation),
     "generation the filter runs with (names its raw/ outputs; replay filter only)", 1, 999999,
     "N"},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program replay_program = {
    .name = "sluicectl replay",
    .summary =
        "Re-runs STAGE over retained inputs whose hour partition lies in [--from, --to): an "
        "hour is in range when it starts at or after the hour holding --from and before --to. "
        "filter: deletes the filtered/ and rejected/ objects of every raw/ object whose mtime "
        "is in range, so that `sluice-filter --once` (or a restarted filter) filters them into "
        "the same keys again. combine (alias dispatch): for every combined manifest of a job "
        "of those hours, writes the job descriptor again from the manifest's inputs and "
        "deletes the manifest, so a combiner redoes the job with the same id and output key. "
        "split: for every combined/ object in range, writes the split job again and deletes "
        "the split manifest. Jobs are re-issued under their stage's job lease; a busy job is "
        "skipped and reported. Exit 1 if any item could not be re-issued.",
    .usage_args = "filter|combine|split",
    .version = SLUICE_VERSION,
    .tables = {replay_opts, NULL},
};

struct replay {
    const struct replay_cfg *cfg;
    const char *stage;
    struct pipe_store *s;
    struct pipe_leases *ls; /* NULL in dry-run */
    int64_t from_ms, to_ms; /* from_ms is the start of its hour */
    bool progress, progress_shown;
    uint64_t listed, items, reissued, deleted, failed;
};

/* Called for each listed object; returns 0 to go on, < 0 to stop the walk
 * (a failure of one item is counted in r->failed and returns 0). */
typedef int (*replay_fn)(struct replay *r, const struct pipe_store_obj *o);

static void replay_fail(struct replay *r, const char *what, const char *key, int rc)
{
    const char *why = pipe_store_last_error(r->s);
    ctl_progress_clear(&r->progress_shown);
    fprintf(stderr, "sluicectl replay %s: %s %s: %s\n", r->stage, what, key,
            why[0] ? why : pipe_strerror(rc));
    r->failed++;
}

static bool replay_hour_in_range(const struct replay *r, int64_t hour_ms)
{
    return hour_ms >= r->from_ms && hour_ms < r->to_ms;
}

static void replay_progress(struct replay *r, size_t n)
{
    uint64_t before = r->listed;
    r->listed += n;
    if (!r->progress || before / REPLAY_PROGRESS_EVERY == r->listed / REPLAY_PROGRESS_EVERY)
        return;
    fprintf(stderr, "\rsluicectl replay %s: %" PRIu64 " keys listed, %" PRIu64 " in range\033[K",
            r->stage, r->listed, r->items);
    r->progress_shown = true;
}

struct replay_walk {
    struct replay *r;
    replay_fn fn;
};

static int replay_walk_one(void *arg, const struct pipe_store_obj *o)
{
    struct replay_walk *w = arg;
    replay_progress(w->r, 1);
    return w->fn(w->r, o);
}

/* Walks prefix, calling fn for each object. */
static int replay_walk(struct replay *r, const char *prefix, replay_fn fn)
{
    struct replay_walk w = {r, fn};
    int rc = pipe_store_walk(r->s, prefix, NULL, REPLAY_PAGE, replay_walk_one, &w);
    if (rc < 0)
        replay_fail(r, "cannot walk", prefix, rc);
    return rc;
}

/* Reads and parses the JSON document at key into a combined manifest. */
static int replay_read_combined(struct replay *r, const char *key, struct pipe_manifest_combined *m)
{
    struct pipe_buf b;
    pipe_buf_init(&b, REPLAY_DOC_MAX);
    int rc = pipe_store_get(r->s, key, &b);
    if (rc == 0)
        rc = pipe_manifest_combined_from_json(b.data, b.len, m);
    pipe_buf_cleanup(&b);
    return rc;
}

/* Writes a job descriptor (job or split job) under key. */
static int replay_put_job(struct replay *r, const char *key, const struct pipe_manifest_job *job)
{
    struct pipe_buf json;
    pipe_buf_init(&json, REPLAY_DOC_MAX);
    int rc = pipe_manifest_job_to_json(job, &json);
    if (rc == 0)
        rc = pipe_store_put(r->s, key, json.data, json.len);
    /* Running combiners and splitters list their queue at their next poll. */
    if (rc == 0 && r->ls)
        pipe_leases_bump(r->ls,
                         strncmp(key, PIPE_KEYS_JOBS_SPLIT, strlen(PIPE_KEYS_JOBS_SPLIT)) == 0
                             ? PIPE_KEYS_JOBS_SPLIT
                             : PIPE_KEYS_JOBS_COMBINE);
    pipe_buf_cleanup(&json);
    return rc;
}

/* Writes the descriptor at desc_key, then deletes the manifest at man_key,
 * both under the stage's job lease: a combiner or splitter that took the
 * descriptor between the two writes would find the manifest, take the job
 * for committed and drop the descriptor without redoing it. */
static int replay_reissue(struct replay *r, const char *lease_name, const char *desc_key,
                          const struct pipe_manifest_job *job, const char *man_key)
{
    if (r->cfg->dry_run) {
        printf("would write %s and delete %s\n", desc_key, man_key);
        r->reissued++;
        return 0;
    }
    struct pipe_job_lease *lease = NULL;
    int rc = pipe_job_lease_take(r->ls, lease_name, PIPE_KEYS_JOB_LEASE_TTL_MS, &lease);
    if (rc < 0) {
        ctl_progress_clear(&r->progress_shown);
        fprintf(stderr, "sluicectl replay %s: %s: %s, skipped\n", r->stage, job->job_id,
                rc == PIPE_EBUSY ? "a worker holds the job's lease" : pipe_strerror(rc));
        r->failed++;
        return 0;
    }
    rc = replay_put_job(r, desc_key, job);
    if (rc < 0) {
        replay_fail(r, "cannot write", desc_key, rc);
        goto out;
    }
    rc = pipe_job_lease_check(lease);
    if (rc == 0)
        rc = pipe_store_delete(r->s, man_key);
    if (rc < 0) {
        replay_fail(r, "cannot delete", man_key, rc);
        goto out;
    }
    printf("reissued %s\n", desc_key);
    r->reissued++;
    r->deleted++;
out:
    pipe_job_lease_release(lease);
    return 0;
}

/* ---- filter ---------------------------------------------------------------- */

static int replay_filter_one(struct replay *r, const struct pipe_store_obj *o)
{
    if (!replay_hour_in_range(r, pipe_clock_hour_floor(o->mtime_ms)))
        return 0;
    r->items++;
    struct pipe_buf name, fkey, rkey;
    pipe_buf_init(&name, PIPE_KEYS_NAME_MAX + 1);
    pipe_buf_init(&fkey, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&rkey, PIPE_STORE_KEY_MAX);
    int rc = pipe_keys_raw_name(&name, (unsigned)r->cfg->generation, o->key, o->etag);
    if (rc == 0)
        rc = pipe_keys_filtered(&fkey, o->mtime_ms, name.data);
    if (rc == 0)
        rc = pipe_keys_rejected(&rkey, o->mtime_ms, name.data);
    if (rc < 0) {
        replay_fail(r, "cannot name the outputs of", o->key, rc);
        goto out;
    }
    /* The filtered/ object goes first: its absence is what makes the
     * filter take the raw object again, and the rejected/ object is
     * rewritten before it. */
    const char *keys[2] = {fkey.data, rkey.data};
    bool any = false;
    for (int i = 0; i < 2; i++) {
        struct pipe_store_obj st;
        rc = pipe_store_stat(r->s, keys[i], &st);
        if (rc == PIPE_ENOTFOUND)
            continue;
        if (rc == 0 && !r->cfg->dry_run)
            rc = pipe_store_delete(r->s, keys[i]);
        if (rc < 0) {
            replay_fail(r, "cannot delete", keys[i], rc);
            goto out;
        }
        printf("%s %s\n", r->cfg->dry_run ? "would delete" : "deleted", keys[i]);
        r->deleted++;
        any = true;
    }
    r->reissued += any;
out:
    pipe_buf_cleanup(&rkey);
    pipe_buf_cleanup(&fkey);
    pipe_buf_cleanup(&name);
    return 0;
}

/* ---- combine --------------------------------------------------------------- */

/* Fills job from manifest m, checking that every input is still there with
 * its recorded size. created_ms is the newest input mtime, as the dispatcher
 * sets it, so the descriptor is the one the dispatcher wrote. */
static int replay_job_from_manifest(struct replay *r, const struct pipe_manifest_combined *m,
                                    struct pipe_manifest_job *job)
{
    int64_t newest = 0;
    for (size_t i = 0; i < m->n_inputs; i++) {
        const struct pipe_manifest_object *in = &m->inputs[i];
        struct pipe_store_obj st;
        int rc = pipe_store_stat(r->s, in->key, &st);
        if (rc < 0 || st.size != in->size) {
            ctl_progress_clear(&r->progress_shown);
            fprintf(stderr, "sluicectl replay combine: %s: input %s %s; job not re-issued\n",
                    m->job_id, in->key,
                    rc == PIPE_ENOTFOUND ? "is gone (swept?)"
                    : rc < 0             ? pipe_strerror(rc)
                                         : "has changed size");
            r->failed++;
            return rc < 0 ? rc : PIPE_ECORRUPT;
        }
        /* A re-filtered raw object has the same bytes under a new etag:
         * the combiner checks the etag, so record the current one. */
        pipe_manifest_job_add_input(job, in->key, st.size, st.etag);
        if (st.mtime_ms > newest)
            newest = st.mtime_ms;
    }
    job->job_id = pipe_strdup(m->job_id);
    job->generation = m->generation;
    job->created_ms = newest;
    job->output_key = pipe_strdup(m->output_key);
    return 0;
}

static int replay_combine_one(struct replay *r, const struct pipe_store_obj *o)
{
    char id[PIPE_KEYS_NAME_MAX + 1];
    int64_t hour;
    if (!pipe_keys_job_of(o->key, "manifests/combined/", id) || !pipe_keys_job_hour(id, &hour) ||
        !replay_hour_in_range(r, hour))
        return 0;
    r->items++;
    struct pipe_manifest_combined m;
    struct pipe_manifest_job job;
    struct pipe_buf desc, lease;
    pipe_manifest_combined_init(&m);
    pipe_manifest_job_init(&job);
    pipe_buf_init(&desc, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&lease, PIPE_LEASE_NAME_MAX);
    int rc = replay_read_combined(r, o->key, &m);
    if (rc == 0 && strcmp(m.job_id, id) != 0)
        rc = PIPE_EPARSE;
    if (rc < 0) {
        replay_fail(r, "cannot read the manifest", o->key, rc);
        goto out;
    }
    if (replay_job_from_manifest(r, &m, &job) < 0)
        goto out;
    rc = pipe_keys_job(&desc, id);
    if (rc == 0)
        rc = pipe_keys_job_lease(&lease, PIPE_KEYS_JOBS_COMBINE, id);
    if (rc < 0) {
        replay_fail(r, "cannot name the descriptor of", id, rc);
        goto out;
    }
    replay_reissue(r, lease.data, desc.data, &job, o->key);
out:
    pipe_buf_cleanup(&lease);
    pipe_buf_cleanup(&desc);
    pipe_manifest_job_cleanup(&job);
    pipe_manifest_combined_cleanup(&m);
    return 0;
}

/* ---- split ----------------------------------------------------------------- */

/* created_ms of a split job is its combine job's (the newest input mtime);
 * the combined manifest lists the inputs. When they are gone the combined
 * object's mtime stands in: the splitter does not read the field. */
static int64_t replay_split_created(struct replay *r, const char *id, int64_t fallback)
{
    struct pipe_buf key;
    struct pipe_manifest_combined m;
    pipe_buf_init(&key, PIPE_STORE_KEY_MAX);
    pipe_manifest_combined_init(&m);
    int64_t newest = 0;
    bool all = false;
    if (pipe_keys_manifest(&key, "combined", id) == 0 &&
        replay_read_combined(r, key.data, &m) == 0) {
        all = m.n_inputs > 0;
        for (size_t i = 0; i < m.n_inputs && all; i++) {
            struct pipe_store_obj st;
            all = pipe_store_stat(r->s, m.inputs[i].key, &st) == 0;
            if (all && st.mtime_ms > newest)
                newest = st.mtime_ms;
        }
    }
    pipe_manifest_combined_cleanup(&m);
    pipe_buf_cleanup(&key);
    return all ? newest : fallback;
}

static int replay_split_one(struct replay *r, const struct pipe_store_obj *o)
{
    struct pipe_key_parts p;
    if (pipe_keys_parse(o->key, &p) < 0 || strcmp(p.prefix, "combined") != 0 ||
        !replay_hour_in_range(r, p.hour_ms))
        return 0;
    r->items++;
    struct pipe_manifest_job job;
    struct pipe_buf desc, man, lease;
    pipe_manifest_job_init(&job);
    pipe_buf_init(&desc, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&man, PIPE_STORE_KEY_MAX);
    pipe_buf_init(&lease, PIPE_LEASE_NAME_MAX);
    unsigned gen = 0;
    int rc = pipe_keys_split_job(&desc, p.name);
    if (rc == 0)
        rc = pipe_keys_manifest(&man, "split", p.name);
    if (rc == 0)
        rc = pipe_keys_job_lease(&lease, PIPE_KEYS_JOBS_SPLIT, p.name);
    if (rc == 0 && sscanf(p.name, "g%u-", &gen) != 1)
        rc = PIPE_EINVAL;
    if (rc < 0) {
        replay_fail(r, "not a combined object of a job:", o->key, rc);
        goto out;
    }
    /* The descriptor the combiner writes: one input, the combined object;
     * output_key the split manifest. */
    job.job_id = pipe_strdup(p.name);
    job.generation = gen;
    job.created_ms = replay_split_created(r, p.name, o->mtime_ms);
    job.output_key = pipe_strdup(man.data);
    pipe_manifest_job_add_input(&job, o->key, o->size, o->etag);
    replay_reissue(r, lease.data, desc.data, &job, man.data);
out:
    pipe_buf_cleanup(&lease);
    pipe_buf_cleanup(&man);
    pipe_buf_cleanup(&desc);
    pipe_manifest_job_cleanup(&job);
    return 0;
}

/* ---- main ------------------------------------------------------------------ */

static int replay_range(struct replay *r)
{
    int64_t now = pipe_clock_now_ms(), from, to;
    if (r->cfg->from == NULL) {
        fprintf(stderr, "sluicectl replay: --from is required\n");
        return PIPE_ECONFIG;
    }
    if (pipe_clock_parse_time(r->cfg->from, now, &from) < 0) {
        fprintf(stderr, "sluicectl replay: --from: cannot read \"%s\" as a time\n", r->cfg->from);
        return PIPE_ECONFIG;
    }
    if (pipe_clock_parse_time(r->cfg->to, now, &to) < 0) {
        fprintf(stderr, "sluicectl replay: --to: cannot read \"%s\" as a time\n", r->cfg->to);
        return PIPE_ECONFIG;
    }
    if (to <= from) {
        fprintf(stderr, "sluicectl replay: --to must be after --from\n");
        return PIPE_ECONFIG;
    }
    r->from_ms = pipe_clock_hour_floor(from);
    r->to_ms = to;
    return 0;
}

static void replay_summary(const struct replay *r)
{
    const char *dry = r->cfg->dry_run ? " (dry run: nothing changed)" : "";
    if (strcmp(r->stage, "filter") == 0)
        fprintf(stderr,
                "sluicectl replay filter: %" PRIu64 " raw objects in range, %" PRIu64
                " outputs %s, %" PRIu64 " failed%s\n",
                r->items, r->deleted, r->cfg->dry_run ? "to delete" : "deleted", r->failed, dry);
    else
        fprintf(stderr,
                "sluicectl replay %s: %" PRIu64 " jobs in range, %" PRIu64 " %s, %" PRIu64
                " failed%s\n",
                r->stage, r->items, r->reissued, r->cfg->dry_run ? "to re-issue" : "re-issued",
                r->failed, dry);
}

int ctl_replay_main(int argc, char **argv)
{
    struct replay_cfg cfg = {0};
    struct replay r = {.cfg = &cfg};
    int first_arg, exit_code = CTL_EXIT_USAGE;
    int rc = pipe_conf_load(&replay_program, &cfg, argc, argv, &first_arg);
    if (rc < 0)
        return ctl_exit_from_conf(rc);
    replay_fn fn = NULL;
    const char *prefix = NULL;
    if (argc - first_arg != 1) {
        fprintf(stderr, "sluicectl replay: give one STAGE: filter, combine or split\n");
        goto out;
    }
    r.stage = argv[first_arg];
    if (strcmp(r.stage, "filter") == 0) {
        fn = replay_filter_one;
        prefix = "raw/";
    } else if (strcmp(r.stage, "combine") == 0 || strcmp(r.stage, "dispatch") == 0) {
        r.stage = "combine";
        fn = replay_combine_one;
        prefix = "manifests/combined/";
    } else if (strcmp(r.stage, "split") == 0) {
        fn = replay_split_one;
        prefix = "combined/";
    } else {
        fprintf(stderr, "sluicectl replay: unknown stage \"%s\" (filter, combine or split)\n",
                r.stage);
        goto out;
    }
    if (replay_range(&r) < 0)
        goto out;
    exit_code = CTL_EXIT_FAIL;
    rc = ctl_store_open("replay", cfg.store, &r.s);
    if (rc < 0)
        goto out;
    if (!cfg.dry_run && fn != replay_filter_one) {
        rc = pipe_leases_open(cfg.leases, NULL, &r.ls);
        if (rc < 0) {
            fprintf(stderr, "sluicectl replay: cannot open the leases \"%s\": %s\n", cfg.leases,
                    pipe_leases_last_error(NULL)[0] ? pipe_leases_last_error(NULL)
                                                    : pipe_strerror(rc));
            goto out;
        }
    }
    r.progress = isatty(STDERR_FILENO) == 1;
    rc = replay_walk(&r, prefix, fn);
    ctl_progress_clear(&r.progress_shown);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror("sluicectl replay: stdout");
        goto out;
    }
    replay_summary(&r);
    if (rc == 0 && r.failed == 0)
        exit_code = CTL_EXIT_OK;
out:
    pipe_leases_free(r.ls);
    pipe_store_free(r.s);
    pipe_conf_cleanup(&replay_program, &cfg);
    return exit_code;
}
