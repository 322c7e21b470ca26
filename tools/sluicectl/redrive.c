/* redrive — `sluicectl redrive --from T --to T [--reason R]`: sends rejected
 * events back through the filter's validation after a fix (usually a
 * schema), by writing their original text into raw/ objects that the
 * filter's raw/ source filters like any landed batch.
 *
 * Idempotence: each rejected object gives at most one raw object per channel,
 * named by a hash of the rejected key and the reasons selected, and written
 * only when neither it nor its marker under state/redrive/ exists; the
 * filter takes a raw object once per version, so an object is never
 * rewritten. Events keep their ids, so anything that slips through twice
 * (concurrent redrives) is dropped by the splitter's de-duplication. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "libpipe/buf.h"
#include "libpipe/clock.h"
#include "libpipe/codec.h"
#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/mem.h"
#include "libpipe/ndjson.h"
#include "libpipe/store.h"
#include "tools/sluicectl/ctl.h"

#define REDRIVE_OBJECT_MAX      (256u << 20) /* largest rejected object read (compressed) */
#define REDRIVE_LINE_MAX        (16u << 20)  /* one rejected line: the event, escaped */
#define REDRIVE_RAW_MAX         (512u << 20) /* one raw object written, uncompressed */
#define REDRIVE_MAX_REASONS     64
#define REDRIVE_MAX_CHANNELS    64
#define REDRIVE_DEFAULT_REASONS "schema_violation,unknown_event_type,unknown_schema_version"

struct redrive_cfg {
    char *store;
    char *from;
    char *to;
    char *reason;
    bool dry_run;
};

static const struct pipe_conf_opt redrive_opts[] = {
    {"store", PIPE_CONF_STR, "file://./sluice-data", offsetof(struct redrive_cfg, store),
     "object store URL: file:///path or s3://bucket[/prefix]?endpoint=..", 0, 0, "URL"},
    {"from", PIPE_CONF_STR, NULL, offsetof(struct redrive_cfg, from),
     "start of the range (required): RFC 3339, YYYY-MM-DD, YYYY-MM-DDTHH, epoch ms, -2h", 0, 0,
     "TIME"},
    {"to", PIPE_CONF_STR, "now", offsetof(struct redrive_cfg, to), "end of the range (exclusive)",
     0, 0, "TIME"},
    {"reason", PIPE_CONF_STR, REDRIVE_DEFAULT_REASONS, offsetof(struct redrive_cfg, reason),
     "comma-separated reason codes to redrive, or \"any\"", 0, 0, "LIST"},
    {"dry_run", PIPE_CONF_BOOL, "false", offsetof(struct redrive_cfg, dry_run),
     "print what would be written and change nothing", 0, 0, NULL},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program redrive_program = {
    .name = "sluicectl redrive",
    .summary =
        "Re-submits rejected events whose rejected/ hour partition lies in [--from, --to) and "
        "whose reason is selected (default: the reasons a schema fix can cure) through the "
        "filter: their original text goes into raw/redrive/<channel>/<hash>.ndjson.zst, which "
        "a running filter (raw source on) or `sluice-filter --once` validates again with the "
        "schemas it has now. Running it twice writes nothing new; events keep their ids, so "
        "split/ holds each once. A summary goes to stderr; exit 1 if anything failed.",
    .usage_args = NULL,
    .version = SLUICE_VERSION,
    .tables = {redrive_opts, NULL},
};

/* The lines of one rejected object bound for one channel's raw object:
 * records that parse as JSON, then those that do not (see redrive_settle). */
struct redrive_group {
    char channel[72];
    struct pipe_buf lines;
    struct pipe_buf unparsed;
    uint64_t events, unparsed_events;
};

struct redrive {
    const struct redrive_cfg *cfg;
    struct pipe_store *s;
    char *reasons[REDRIVE_MAX_REASONS]; /* sorted; none = any */
    size_t n_reasons;
    char *reason_key; /* the sorted list joined, hashed into the object names */
    struct redrive_group groups[REDRIVE_MAX_CHANNELS];
    size_t n_groups;
    /* what the summary reports */
    char *seen_reasons[REDRIVE_MAX_REASONS];
    uint64_t seen_counts[REDRIVE_MAX_REASONS];
    size_t n_seen;
    uint64_t objects, lines, selected, unfit, written_events, written_objects, already, failed;
    bool progress, progress_shown;
};

static void redrive_fail(struct redrive *r, const char *what, const char *key, int rc)
{
    const char *why = pipe_store_last_error(r->s);
    ctl_progress_clear(&r->progress_shown);
    fprintf(stderr, "sluicectl redrive: %s %s: %s\n", what, key, why[0] ? why : pipe_strerror(rc));
    r->failed++;
}

static int redrive_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Parses --reason into r->reasons (sorted, distinct). */
static int redrive_parse_reasons(struct redrive *r, const char *list)
{
    if (strcmp(list, "any") == 0) {
        r->reason_key = pipe_strdup("any");
        return 0;
    }
    char *copy = pipe_strdup(list), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
        bool ok = t[0] != '\0' && strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(t);
        if (!ok || r->n_reasons == REDRIVE_MAX_REASONS) {
            fprintf(stderr, "sluicectl redrive: --reason: \"%s\" is not a reason code\n", t);
            rc = PIPE_ECONFIG;
            break;
        }
        r->reasons[r->n_reasons++] = pipe_strdup(t);
    }
    pipe_free(copy);
    if (rc == 0 && r->n_reasons == 0) {
        fprintf(stderr, "sluicectl redrive: --reason: give reason codes or \"any\"\n");
        rc = PIPE_ECONFIG;
    }
    if (rc < 0)
        return rc;
    qsort(r->reasons, r->n_reasons, sizeof r->reasons[0], redrive_cmp_str);
    struct pipe_buf key;
    pipe_buf_init(&key, SIZE_MAX);
    for (size_t i = 0; i < r->n_reasons; i++)
        if (i == 0 || strcmp(r->reasons[i], r->reasons[i - 1]) != 0)
            pipe_buf_printf(&key, "%s%s", key.len ? "," : "", r->reasons[i]);
    r->reason_key = pipe_strdup(key.data);
    pipe_buf_cleanup(&key);
    return 0;
}

static bool redrive_selected(const struct redrive *r, const char *reason)
{
    if (r->n_reasons == 0)
        return true;
    return bsearch(&reason, r->reasons, r->n_reasons, sizeof r->reasons[0], redrive_cmp_str) !=
           NULL;
}

static void redrive_count_reason(struct redrive *r, const char *reason)
{
    for (size_t i = 0; i < r->n_seen; i++)
        if (strcmp(r->seen_reasons[i], reason) == 0) {
            r->seen_counts[i]++;
            return;
        }
    if (r->n_seen == REDRIVE_MAX_REASONS)
        return;
    r->seen_reasons[r->n_seen] = pipe_strdup(reason);
    r->seen_counts[r->n_seen++] = 1;
}

/* The channel's directory name: the channel when it is a safe key segment,
 * else "other" (the filter ignores it either way; it records the origin). */
static void redrive_channel_dir(const char *channel, char out[72])
{
    bool ok = channel && pipe_keys_instance_valid(channel) && channel[0] != '.';
    snprintf(out, 72, "%s", ok ? channel : "other");
}

static struct redrive_group *redrive_group_for(struct redrive *r, const char *channel)
{
    char dir[72];
    redrive_channel_dir(channel, dir);
    for (size_t i = 0; i < r->n_groups; i++)
        if (strcmp(r->groups[i].channel, dir) == 0)
            return &r->groups[i];
    if (r->n_groups == REDRIVE_MAX_CHANNELS)
        return NULL;
    struct redrive_group *g = &r->groups[r->n_groups++];
    memcpy(g->channel, dir, sizeof dir);
    pipe_buf_init(&g->lines, REDRIVE_RAW_MAX);
    pipe_buf_init(&g->unparsed, REDRIVE_RAW_MAX);
    g->events = g->unparsed_events = 0;
    return g;
}

/* Whether the original text can go back through the filter as one NDJSON
 * line, and the line itself (newlines, which valid JSON has only as
 * whitespace, become spaces) appended to g's lines, or to its unparsed
 * lines when it is not JSON. Records that no configuration can accept
 * (not an object, no "event") are left out: alone in an object, a
 * {"events": [...]} record would even be read as a wrapper of events. */
static bool redrive_fit(const char *raw, size_t len, struct redrive_group *g)
{
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", raw[i]) != NULL)
        i++;
    if (i == len || raw[i] != '{')
        return false;
    json_error_t je;
    json_t *v = json_loadb(raw, len, JSON_ALLOW_NUL, &je);
    bool parsed = v != NULL;
    bool has_event = json_object_get(v, "event") != NULL;
    json_decref(v);
    bool multiline = memchr(raw, '\n', len) != NULL || memchr(raw, '\r', len) != NULL;
    if ((parsed && !has_event) || (!parsed && multiline))
        return false;
    struct pipe_buf *out = parsed ? &g->lines : &g->unparsed;
    size_t start = out->len;
    if (pipe_buf_append(out, raw, len) < 0 || pipe_buf_append_char(out, '\n') < 0) {
        out->len = start;
        return false;
    }
    for (size_t k = start; k < out->len - 1; k++)
        if (out->data[k] == '\n' || out->data[k] == '\r')
            out->data[k] = ' ';
    if (parsed)
        g->events++;
    else
        g->unparsed_events++;
    return true;
}

/* Joins g's lines into the object's text, parsed records first. The filter
 * reads a raw object by its form (ndjson.h): one that starts with '{' and
 * holds a single JSON value is one record, however many lines it spans, so
 * records that are not JSON (a truncated "{\"event\":\"a\",\"x\":" and a
 * "{...}}" after it) could join into an event no client sent. A first line
 * that is JSON ends the first value; when there is none, or the filter
 * would still not see one record per line, the records that are not JSON
 * are left out (they count as not redrivable). */
static void redrive_settle(struct redrive *r, struct redrive_group *g)
{
    size_t parsed_len = g->lines.len;
    struct pipe_body_iter it;
    struct pipe_body_record rec;
    struct pipe_json_result jr;
    uint64_t records = 0;
    bool ok = g->unparsed_events == 0;
    if (!ok && pipe_buf_append(&g->lines, g->unparsed.data, g->unparsed.len) == 0 &&
        pipe_body_iter_init(&it, g->lines.data, g->lines.len, PIPE_BODY_AUTO, SIZE_MAX, &jr) == 0) {
        while (pipe_body_iter_next(&it, &rec))
            records++;
        ok = records == g->events + g->unparsed_events;
    }
    if (ok) {
        g->events += g->unparsed_events;
    } else {
        g->lines.len = parsed_len;
        r->unfit += g->unparsed_events;
    }
    g->unparsed_events = 0;
}

/* One line of a rejected object: selected, fit, grouped by channel. */
static void redrive_line(struct redrive *r, const char *line, size_t len)
{
    r->lines++;
    json_error_t je;
    json_t *o = json_loadb(line, len, 0, &je);
    const char *reason = json_string_value(json_object_get(o, "reason"));
    if (reason == NULL || !redrive_selected(r, reason))
        goto out;
    r->selected++;
    redrive_count_reason(r, reason);
    const json_t *raw = json_object_get(o, "raw");
    struct redrive_group *g =
        redrive_group_for(r, json_string_value(json_object_get(o, "channel")));
    if (!json_is_string(raw) || g == NULL ||
        !redrive_fit(json_string_value(raw), json_string_length(raw), g))
        r->unfit++;
out:
    json_decref(o);
}

/* Writes the raw object and marker of one group unless either exists. */
static int redrive_put(struct redrive *r, const char *source, uint64_t hash,
                       struct redrive_group *g)
{
    char key[PIPE_STORE_KEY_MAX], marker[PIPE_STORE_KEY_MAX];
    snprintf(key, sizeof key, "raw/redrive/%s/%016" PRIx64 ".ndjson.zst", g->channel, hash);
    snprintf(marker, sizeof marker, "state/redrive/%s/%016" PRIx64 ".json", g->channel, hash);
    struct pipe_store_obj st;
    bool have_marker = pipe_store_stat(r->s, marker, &st) == 0;
    bool have_raw = !have_marker && pipe_store_stat(r->s, key, &st) == 0;
    if (r->cfg->dry_run) {
        if (have_marker || have_raw) {
            r->already++;
        } else {
            printf("would write %s (%" PRIu64 " events from %s)\n", key, g->events, source);
            r->written_objects++;
            r->written_events += g->events;
        }
        return 0;
    }
    struct pipe_buf z;
    struct pipe_zwriter *zw = NULL;
    pipe_buf_init(&z, REDRIVE_RAW_MAX);
    int rc = 0;
    if (have_marker || have_raw) {
        r->already++;
    } else {
        rc = pipe_zwriter_new(1, &z, &zw);
        if (rc == 0)
            rc = pipe_zwriter_write(zw, g->lines.data, g->lines.len);
        if (rc == 0)
            rc = pipe_zwriter_finish(zw);
        if (rc == 0)
            rc = pipe_store_put(r->s, key, z.data, z.len);
        if (rc < 0) {
            redrive_fail(r, "cannot write", key, rc);
            goto out;
        }
        ctl_progress_clear(&r->progress_shown);
        printf("wrote %s (%" PRIu64 " events from %s)\n", key, g->events, source);
        r->written_objects++;
        r->written_events += g->events;
    }
    if (!have_marker) {
        /* the marker outlives raw/ retention, so a later run still skips */
        char at[PIPE_CLOCK_RFC3339_LEN + 1];
        pipe_clock_format_rfc3339(pipe_clock_now_ms(), at);
        json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "source", source, "raw", key,
                              "channel", g->channel, "reasons", r->reason_key, "events",
                              (json_int_t)g->events, "at", at);
        char *s = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
        rc = s ? pipe_store_put(r->s, marker, s, strlen(s)) : PIPE_EINVAL;
        free(s);
        json_decref(m);
        if (rc < 0)
            redrive_fail(r, "cannot write", marker, rc);
    }
out:
    pipe_zwriter_free(zw);
    pipe_buf_cleanup(&z);
    return rc;
}

static int redrive_object(void *arg, const struct pipe_store_obj *o)
{
    struct redrive *r = arg;
    r->objects++;
    struct pipe_buf data;
    struct pipe_line_reader *lr = NULL;
    pipe_buf_init(&data, REDRIVE_OBJECT_MAX);
    int rc = pipe_store_get(r->s, o->key, &data);
    if (rc == 0)
        rc = pipe_line_reader_new(data.data ? data.data : "", data.len, REDRIVE_LINE_MAX, &lr);
    const char *line;
    size_t len;
    while (rc == 0 && (rc = pipe_line_reader_next(lr, &line, &len)) != 0) {
        if (rc == 1) {
            redrive_line(r, line, len);
            rc = 0;
        } else if (rc == PIPE_ETOOBIG) {
            r->lines++;
            r->unfit++;
            rc = 0;
        }
    }
    if (rc < 0 && rc != PIPE_ENOTFOUND) {
        redrive_fail(r, "cannot read", o->key, rc);
    } else if (rc == 0) {
        uint64_t h = XXH3_64bits_withSeed(o->key, strlen(o->key) + 1,
                                          XXH3_64bits(r->reason_key, strlen(r->reason_key)));
        for (size_t i = 0; i < r->n_groups; i++) {
            redrive_settle(r, &r->groups[i]);
            if (r->groups[i].events > 0)
                redrive_put(r, o->key, h, &r->groups[i]);
        }
    }
    for (size_t i = 0; i < r->n_groups; i++) {
        pipe_buf_cleanup(&r->groups[i].lines);
        pipe_buf_cleanup(&r->groups[i].unparsed);
    }
    r->n_groups = 0;
    pipe_line_reader_free(lr);
    pipe_buf_cleanup(&data);
    if (r->progress) {
        fprintf(stderr,
                "\rsluicectl redrive: %" PRIu64 " objects, %" PRIu64 " events selected\033[K",
                r->objects, r->selected);
        r->progress_shown = true;
    }
    return 0; /* one object's failure is counted; the walk goes on */
}

static int redrive_range(struct redrive *r, int64_t *from, int64_t *to)
{
    int64_t now = pipe_clock_now_ms();
    if (r->cfg->from == NULL) {
        fprintf(stderr, "sluicectl redrive: --from is required\n");
        return PIPE_ECONFIG;
    }
    if (pipe_clock_parse_time(r->cfg->from, now, from) < 0) {
        fprintf(stderr, "sluicectl redrive: --from: cannot read \"%s\" as a time\n", r->cfg->from);
        return PIPE_ECONFIG;
    }
    if (pipe_clock_parse_time(r->cfg->to, now, to) < 0) {
        fprintf(stderr, "sluicectl redrive: --to: cannot read \"%s\" as a time\n", r->cfg->to);
        return PIPE_ECONFIG;
    }
    if (*to <= *from) {
        fprintf(stderr, "sluicectl redrive: --to must be after --from\n");
        return PIPE_ECONFIG;
    }
    *from = pipe_clock_hour_floor(*from);
    return 0;
}

static void redrive_summary(const struct redrive *r)
{
    fprintf(stderr,
            "sluicectl redrive: %" PRIu64 " rejected objects scanned, %" PRIu64 " lines; %" PRIu64
            " selected (",
            r->objects, r->lines, r->selected);
    for (size_t i = 0; i < r->n_seen; i++)
        fprintf(stderr, "%s%s=%" PRIu64, i ? " " : "", r->seen_reasons[i], r->seen_counts[i]);
    fprintf(stderr,
            "); %" PRIu64 " events %s %" PRIu64 " raw objects, %" PRIu64
            " objects already redriven, %" PRIu64 " lines not redrivable, %" PRIu64 " failed%s\n",
            r->written_events, r->cfg->dry_run ? "would go to" : "written to", r->written_objects,
            r->already, r->unfit, r->failed, r->cfg->dry_run ? " (dry run: nothing changed)" : "");
}

int ctl_redrive_main(int argc, char **argv)
{
    struct redrive_cfg cfg = {0};
    struct redrive r = {.cfg = &cfg};
    int first, code = CTL_EXIT_USAGE;
    int64_t from, to;
    int rc = pipe_conf_load(&redrive_program, &cfg, argc, argv, &first);
    if (rc < 0)
        return ctl_exit_from_conf(rc);
    if (argc != first) {
        fprintf(stderr, "sluicectl redrive: no arguments expected (see --help)\n");
        goto out;
    }
    if (redrive_parse_reasons(&r, cfg.reason) < 0 || redrive_range(&r, &from, &to) < 0)
        goto out;
    code = CTL_EXIT_FAIL;
    rc = ctl_store_open("redrive", cfg.store, &r.s);
    if (rc < 0)
        goto out;
    r.progress = isatty(STDERR_FILENO) == 1;
    struct pipe_buf prefix;
    pipe_buf_init(&prefix, PIPE_STORE_KEY_MAX);
    for (int64_t h = from; h < to && rc >= 0; h += PIPE_HOUR_MS) {
        rc = pipe_keys_hour_prefix(&prefix, "rejected", h);
        if (rc == 0)
            rc = pipe_store_walk(r.s, prefix.data, NULL, 1000, redrive_object, &r);
        if (rc < 0)
            redrive_fail(&r, "cannot list", prefix.data ? prefix.data : "rejected/", rc);
    }
    pipe_buf_cleanup(&prefix);
    ctl_progress_clear(&r.progress_shown);
    if (fflush(stdout) != 0 || ferror(stdout))
        r.failed++;
    redrive_summary(&r);
    if (rc >= 0 && r.failed == 0)
        code = CTL_EXIT_OK;
out:
    for (size_t i = 0; i < r.n_reasons; i++)
        pipe_free(r.reasons[i]);
    for (size_t i = 0; i < r.n_seen; i++)
        pipe_free(r.seen_reasons[i]);
    pipe_free(r.reason_key);
    pipe_store_free(r.s);
    pipe_conf_cleanup(&redrive_program, &cfg);
    return code;
}
