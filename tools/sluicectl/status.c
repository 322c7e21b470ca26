/* status — `sluicectl status`: per top-level prefix of the key layout
 * (SPEC §2), how many objects and bytes it holds and how old its oldest and
 * newest objects are, as an aligned table or as JSON. Rows are gathered by
 * paging through one listing per prefix; what is printed comes from one
 * column table, so a new figure (backlog, freshness per stage) is a field in
 * struct status_row, the code that fills it, and one line in status_cols.
 * The BACKLOG columns show what waits for the next stage and how old the
 * oldest of it is: filtered objects not yet combined, pending combine jobs,
 * and (on combined/) pending split jobs. */
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "libpipe/clock.h"
#include "libpipe/conf.h"
#include "libpipe/err.h"
#include "libpipe/keys.h"
#include "libpipe/mem.h"
#include "libpipe/store.h"
#include "tools/sluicectl/ctl.h"

#define STATUS_PAGE           1000  /* keys asked for per list call */
#define STATUS_PROGRESS_EVERY 10000 /* keys between progress lines on a terminal */
#define STATUS_CELL           64    /* bytes of one table cell */

/* The prefixes of SPEC §2, in pipeline order. */
static const char *const status_prefixes[] = {
    "raw/",      "filtered/",           "rejected/", "jobs/combine/",
    "combined/", "manifests/combined/", "split/",    "manifests/split/",
};
#define STATUS_NPREFIX (sizeof status_prefixes / sizeof status_prefixes[0])

struct status_cfg {
    char *store;
    bool json;
};

static const struct pipe_conf_opt status_opts[] = {
    {"store", PIPE_CONF_STR, "file://./sluice-data", offsetof(struct status_cfg, store),
     "object store URL: file:///path or s3://bucket[/prefix]?endpoint=..", 0, 0, "URL"},
    {"json", PIPE_CONF_BOOL, "false", offsetof(struct status_cfg, json),
     "print one JSON object (for machines) instead of the table", 0, 0, NULL},
    {NULL, 0, NULL, 0, NULL, 0, 0, NULL},
};

static const struct pipe_conf_program status_program = {
    .name = "sluicectl status",
    .summary = "For each prefix of the key layout (raw/, filtered/, rejected/, "
               "jobs/combine/, combined/, manifests/combined/, split/, manifests/split/): "
               "the number of objects, their bytes, and the age of the oldest and of the "
               "newest object (from the store's mtimes; \"-\" when empty or when the store "
               "keeps none). Lists every key, so it takes a while on a large store; on a "
               "terminal it shows progress on stderr.",
    .usage_args = NULL,
    .version = SLUICE_VERSION,
    .tables = {status_opts, NULL},
};

/* What is known about one prefix (or, with prefix NULL, the total). */
struct status_row {
    const char *prefix;
    uint64_t objects, bytes;
    int64_t oldest_ms, newest_ms; /* mtimes; meaningful when objects > 0 */
    bool has_backlog;             /* the prefix feeds a stage */
    uint64_t backlog;             /* objects or jobs waiting for it */
    int64_t backlog_oldest_ms;    /* mtime; meaningful when backlog > 0 */
};

/* The state/combine/ markers of one hour partition, sorted: which filtered
 * objects of that hour are combined. Loaded as the filtered/ listing
 * enters the partition, so memory is one partition's names. */
struct status_marks {
    bool loaded;
    int64_t hour_ms;
    char **names;
    size_t n, cap;
};

/* What every column may need besides its row. */
struct status_ctx {
    int64_t now_ms;
    bool have_mtime; /* the store keeps mtimes */
    bool progress;   /* stderr is a terminal */
    bool progress_shown;
    uint64_t listed; /* keys listed so far, over all prefixes */
    struct pipe_store *store;
    struct status_marks marks;
};

/* ---- columns -------------------------------------------------------------- */

/* One output column: text fills a table cell (NULL: JSON only), json
 * returns a new reference (NULL: table only). */
struct status_col {
    const char *title;
    const char *json_key;
    bool right; /* right-aligned in the table */
    void (*text)(const struct status_row *r, const struct status_ctx *c, char *buf, size_t n);
    json_t *(*json)(const struct status_row *r, const struct status_ctx *c);
};

static bool status_has_times(const struct status_row *r, const struct status_ctx *c)
{
    return r->objects > 0 && c->have_mtime;
}

/* "3m12s": the largest non-zero unit of d/h/m/s and the one below it
 * when that is not zero ("2d", "1h5m"); "0s" under a second. An mtime in
 * the future (clock skew) also shows as "0s". */
static void status_format_age(int64_t ms, char *buf, size_t n)
{
    static const struct {
        char unit;
        int64_t secs;
    } units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
    enum { NUNITS = sizeof units / sizeof units[0] };
    int64_t secs = ms > 0 ? ms / 1000 : 0;
    size_t i = 0;
    while (i + 1 < NUNITS && secs < units[i].secs)
        i++;
    int64_t major = secs / units[i].secs;
    int64_t minor = i + 1 < NUNITS ? secs % units[i].secs / units[i + 1].secs : 0;
    if (minor > 0)
        snprintf(buf, n, "%" PRId64 "%c%" PRId64 "%c", major, units[i].unit, minor,
                 units[i + 1].unit);
    else
        snprintf(buf, n, "%" PRId64 "%c", major, units[i].unit);
}

static void text_prefix(const struct status_row *r, const struct status_ctx *c, char *buf, size_t n)
{
    (void)c;
    snprintf(buf, n, "%s", r->prefix ? r->prefix : "total");
}

static json_t *json_prefix(const struct status_row *r, const struct status_ctx *c)
{
    (void)c;
    return r->prefix ? json_string(r->prefix) : json_null();
}

static void text_objects(const struct status_row *r, const struct status_ctx *c, char *buf,
                         size_t n)
{
    (void)c;
    snprintf(buf, n, "%" PRIu64, r->objects);
}

static json_t *json_objects(const struct status_row *r, const struct status_ctx *c)
{
    (void)c;
    return json_integer((json_int_t)r->objects);
}

static void text_bytes(const struct status_row *r, const struct status_ctx *c, char *buf, size_t n)
{
    (void)c;
    snprintf(buf, n, "%" PRIu64, r->bytes);
}

static json_t *json_bytes(const struct status_row *r, const struct status_ctx *c)
{
    (void)c;
    return json_integer((json_int_t)r->bytes);
}

static void text_oldest(const struct status_row *r, const struct status_ctx *c, char *buf, size_t n)
{
    if (status_has_times(r, c))
        status_format_age(c->now_ms - r->oldest_ms, buf, n);
    else
        snprintf(buf, n, "-");
}

static void text_newest(const struct status_row *r, const struct status_ctx *c, char *buf, size_t n)
{
    if (status_has_times(r, c))
        status_format_age(c->now_ms - r->newest_ms, buf, n);
    else
        snprintf(buf, n, "-");
}

static json_t *json_age(const struct status_row *r, const struct status_ctx *c, int64_t t)
{
    if (!status_has_times(r, c))
        return json_null();
    return json_integer(c->now_ms > t ? c->now_ms - t : 0);
}

static json_t *json_time(const struct status_row *r, const struct status_ctx *c, int64_t t)
{
    if (!status_has_times(r, c))
        return json_null();
    char when[PIPE_CLOCK_RFC3339_LEN + 1];
    pipe_clock_format_rfc3339(t, when);
    return json_string(when);
}

static json_t *json_oldest_age(const struct status_row *r, const struct status_ctx *c)
{
    return json_age(r, c, r->oldest_ms);
}

static json_t *json_newest_age(const struct status_row *r, const struct status_ctx *c)
{
    return json_age(r, c, r->newest_ms);
}

static json_t *json_oldest_mtime(const struct status_row *r, const struct status_ctx *c)
{
    return json_time(r, c, r->oldest_ms);
}

static json_t *json_newest_mtime(const struct status_row *r, const struct status_ctx *c)
{
    return json_time(r, c, r->newest_ms);
}

static void text_backlog(const struct status_row *r, const struct status_ctx *c, char *buf,
                         size_t n)
{
    (void)c;
    if (r->has_backlog)
        snprintf(buf, n, "%" PRIu64, r->backlog);
    else
        snprintf(buf, n, "-");
}

static json_t *json_backlog(const struct status_row *r, const struct status_ctx *c)
{
    (void)c;
    return r->has_backlog ? json_integer((json_int_t)r->backlog) : json_null();
}

static bool status_has_backlog_age(const struct status_row *r, const struct status_ctx *c)
{
    return r->has_backlog && r->backlog > 0 && c->have_mtime;
}

static void text_backlog_age(const struct status_row *r, const struct status_ctx *c, char *buf,
                             size_t n)
{
    if (status_has_backlog_age(r, c))
        status_format_age(c->now_ms - r->backlog_oldest_ms, buf, n);
    else
        snprintf(buf, n, "-");
}

static json_t *json_backlog_age(const struct status_row *r, const struct status_ctx *c)
{
    if (!status_has_backlog_age(r, c))
        return json_null();
    return json_integer(c->now_ms > r->backlog_oldest_ms ? c->now_ms - r->backlog_oldest_ms : 0);
}

static const struct status_col status_cols[] = {
    {"PREFIX", "prefix", false, text_prefix, json_prefix},
    {"OBJECTS", "objects", true, text_objects, json_objects},
    {"BYTES", "bytes", true, text_bytes, json_bytes},
    {"OLDEST", "oldest_age_ms", true, text_oldest, json_oldest_age},
    {"NEWEST", "newest_age_ms", true, text_newest, json_newest_age},
    {"BACKLOG", "backlog", true, text_backlog, json_backlog},
    {"BACKLOG_AGE", "backlog_oldest_age_ms", true, text_backlog_age, json_backlog_age},
    {NULL, "oldest_mtime", false, NULL, json_oldest_mtime},
    {NULL, "newest_mtime", false, NULL, json_newest_mtime},
};
#define STATUS_NCOL (sizeof status_cols / sizeof status_cols[0])

/* ---- gathering -------------------------------------------------------------- */

static void status_add(struct status_row *r, const struct pipe_store_obj *o)
{
    if (r->objects == 0 || o->mtime_ms < r->oldest_ms)
        r->oldest_ms = o->mtime_ms;
    if (r->objects == 0 || o->mtime_ms > r->newest_ms)
        r->newest_ms = o->mtime_ms;
    r->objects++;
    r->bytes += o->size;
}

static void status_backlog_add(struct status_row *r, int64_t mtime_ms)
{
    if (r->backlog == 0 || mtime_ms < r->backlog_oldest_ms)
        r->backlog_oldest_ms = mtime_ms;
    r->backlog++;
}

static void status_marks_clear(struct status_marks *m)
{
    for (size_t i = 0; i < m->n; i++)
        pipe_free(m->names[i]);
    m->n = 0;
    m->loaded = false;
}

static void status_marks_cleanup(struct status_marks *m)
{
    status_marks_clear(m);
    pipe_free(m->names);
    m->names = NULL;
    m->cap = 0;
}

/* Lists state/combine/<hour>/ into m (names after the prefix, in the
 * listing's byte-wise order, which is what bsearch with strcmp needs). */
static int status_marks_load(struct status_ctx *c, int64_t hour_ms)
{
    struct status_marks *m = &c->marks;
    struct pipe_buf prefix;
    struct pipe_store_list page = {0};
    pipe_buf_init(&prefix, PIPE_STORE_KEY_MAX);
    status_marks_clear(m);
    int rc = pipe_keys_hour_prefix(&prefix, "state/combine", hour_ms);
    for (bool first = true; rc == 0 && (first || page.truncated); first = false) {
        struct pipe_store_list next = {0};
        rc = pipe_store_list(c->store, prefix.data, page.next_marker, STATUS_PAGE, &next);
        if (rc < 0) {
            const char *why = pipe_store_last_error(c->store);
            fprintf(stderr, "sluicectl status: cannot list \"%s\": %s\n", prefix.data,
                    why[0] ? why : pipe_strerror(rc));
            break;
        }
        pipe_store_list_cleanup(&page);
        page = next;
        for (size_t i = 0; i < page.count; i++) {
            if (m->n == m->cap) {
                m->cap = m->cap ? 2 * m->cap : 256;
                m->names = pipe_realloc(m->names, m->cap * sizeof *m->names);
            }
            m->names[m->n++] = pipe_strdup(page.items[i].key + prefix.len);
        }
        if (page.count == 0)
            break;
    }
    if (rc == 0) {
        m->loaded = true;
        m->hour_ms = hour_ms;
    }
    pipe_store_list_cleanup(&page);
    pipe_buf_cleanup(&prefix);
    return rc;
}

static int status_name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Counts o into r's backlog when it is a filtered object without its
 * done marker. Keys the pipeline did not write are not its backlog. */
static int status_filtered_backlog(struct status_ctx *c, struct status_row *r,
                                   const struct pipe_store_obj *o)
{
    struct pipe_key_parts p;
    if (pipe_keys_parse(o->key, &p) < 0)
        return 0;
    if (!c->marks.loaded || c->marks.hour_ms != p.hour_ms) {
        int rc = status_marks_load(c, p.hour_ms);
        if (rc < 0)
            return rc;
    }
    const char *name = p.name;
    /* bsearch wants a real array even when it is empty. */
    if (c->marks.n == 0 ||
        bsearch(&name, c->marks.names, c->marks.n, sizeof *c->marks.names, status_name_cmp) == NULL)
        status_backlog_add(r, o->mtime_ms);
    return 0;
}

/* Folds row into total (whose prefix is NULL). */
static void status_merge(struct status_row *total, const struct status_row *r)
{
    if (r->objects == 0)
        return;
    if (total->objects == 0 || r->oldest_ms < total->oldest_ms)
        total->oldest_ms = r->oldest_ms;
    if (total->objects == 0 || r->newest_ms > total->newest_ms)
        total->newest_ms = r->newest_ms;
    total->objects += r->objects;
    total->bytes += r->bytes;
}

static void status_progress(struct status_ctx *c, const char *prefix, size_t page_count)
{
    uint64_t before = c->listed;
    c->listed += page_count;
    if (!c->progress || before / STATUS_PROGRESS_EVERY == c->listed / STATUS_PROGRESS_EVERY)
        return;
    fprintf(stderr, "\rsluicectl status: %" PRIu64 " keys listed (now in %s)\033[K", c->listed,
            prefix);
    c->progress_shown = true;
}

/* Pages through one prefix's listing into r. The marker for the next call
 * is owned by the previous page, which is released only after the call. */
static int status_gather(struct pipe_store *s, struct status_ctx *c, struct status_row *r)
{
    struct pipe_store_list page = {0};
    int rc = 0;
    for (bool first = true; first || page.truncated; first = false) {
        struct pipe_store_list next = {0};
        rc = pipe_store_list(s, r->prefix, page.next_marker, STATUS_PAGE, &next);
        if (rc < 0) {
            const char *why = pipe_store_last_error(s);
            if (c->progress_shown)
                fputc('\n', stderr);
            fprintf(stderr, "sluicectl status: cannot list \"%s\": %s\n", r->prefix,
                    why[0] ? why : pipe_strerror(rc));
            goto out;
        }
        pipe_store_list_cleanup(&page);
        page = next;
        for (size_t i = 0; i < page.count && rc == 0; i++) {
            status_add(r, &page.items[i]);
            if (strcmp(r->prefix, "filtered/") == 0)
                rc = status_filtered_backlog(c, r, &page.items[i]);
        }
        if (rc < 0)
            goto out;
        status_progress(c, r->prefix, page.count);
        if (page.count == 0)
            break;
    }
out:
    pipe_store_list_cleanup(&page);
    return rc;
}

/* ---- printing --------------------------------------------------------------- */

static void status_print_table(const struct status_row *rows, size_t nrows,
                               const struct status_ctx *c)
{
    /* Every cell is formatted first: the widths depend on all of them. */
    char cells[STATUS_NPREFIX + 2][STATUS_NCOL][STATUS_CELL];
    size_t width[STATUS_NCOL] = {0};
    for (size_t j = 0; j < STATUS_NCOL; j++) {
        if (status_cols[j].text == NULL)
            continue;
        snprintf(cells[0][j], STATUS_CELL, "%s", status_cols[j].title);
        for (size_t i = 0; i < nrows; i++)
            status_cols[j].text(&rows[i], c, cells[i + 1][j], STATUS_CELL);
        for (size_t i = 0; i <= nrows; i++) {
            size_t w = strlen(cells[i][j]);
            width[j] = w > width[j] ? w : width[j];
        }
    }
    for (size_t i = 0; i <= nrows; i++) {
        const char *sep = "";
        for (size_t j = 0; j < STATUS_NCOL; j++) {
            if (status_cols[j].text == NULL)
                continue;
            int w = (int)width[j];
            printf(status_cols[j].right ? "%s%*s" : "%s%-*s", sep, w, cells[i][j]);
            sep = "  ";
        }
        printf("\n");
    }
}

static json_t *status_row_json(const struct status_row *r, const struct status_ctx *c)
{
    json_t *o = json_object();
    for (size_t j = 0; j < STATUS_NCOL; j++) {
        if (status_cols[j].json != NULL)
            json_object_set_new(o, status_cols[j].json_key, status_cols[j].json(r, c));
    }
    return o;
}

/* {"now": ..., "prefixes": [row...], "total": row}; rows[nrows - 1] is the
 * total. */
static int status_print_json(const struct status_row *rows, size_t nrows,
                             const struct status_ctx *c)
{
    char now[PIPE_CLOCK_RFC3339_LEN + 1];
    pipe_clock_format_rfc3339(c->now_ms, now);
    json_t *list = json_array();
    for (size_t i = 0; i + 1 < nrows; i++)
        json_array_append_new(list, status_row_json(&rows[i], c));
    json_t *root = json_object();
    json_object_set_new(root, "now", json_string(now));
    json_object_set_new(root, "mtimes", json_boolean(c->have_mtime));
    json_object_set_new(root, "prefixes", list);
    json_object_set_new(root, "total", status_row_json(&rows[nrows - 1], c));
    int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc == 0)
        printf("\n");
    return rc == 0 ? 0 : PIPE_EIO;
}

/* The backlog of the stage a prefix feeds: filtered/ (counted while it was
 * gathered: objects without a done marker), jobs/combine/ (every pending
 * job), combined/ (the pending split jobs under jobs/split/). */
static int status_set_backlog(struct pipe_store *s, struct status_ctx *c, struct status_row *r)
{
    if (strcmp(r->prefix, "filtered/") == 0) {
        r->has_backlog = true;
    } else if (strcmp(r->prefix, "jobs/combine/") == 0) {
        r->has_backlog = true;
        r->backlog = r->objects;
        r->backlog_oldest_ms = r->oldest_ms;
    } else if (strcmp(r->prefix, "combined/") == 0) {
        struct status_row jobs = {.prefix = "jobs/split/"};
        int rc = status_gather(s, c, &jobs);
        if (rc < 0)
            return rc;
        r->has_backlog = true;
        r->backlog = jobs.objects;
        r->backlog_oldest_ms = jobs.oldest_ms;
    }
    return 0;
}

int ctl_status_main(int argc, char **argv)
{
    struct status_cfg cfg = {0};
    struct status_ctx c = {0};
    struct pipe_store *s = NULL;
    int first_arg, exit_code = CTL_EXIT_USAGE;
    int rc = pipe_conf_load(&status_program, &cfg, argc, argv, &first_arg);
    if (rc < 0)
        return ctl_exit_from_conf(rc);
    if (first_arg < argc) {
        fprintf(stderr, "sluicectl status: unexpected argument \"%s\"\n", argv[first_arg]);
        goto out;
    }
    exit_code = CTL_EXIT_FAIL;
    rc = ctl_store_open("status", cfg.store, &s);
    if (rc < 0)
        goto out;
    c.now_ms = pipe_clock_now_ms();
    c.have_mtime = pipe_store_has(s, PIPE_STORE_CAP_MTIME);
    c.progress = isatty(STDERR_FILENO) == 1;
    c.store = s;
    struct status_row rows[STATUS_NPREFIX + 1] = {{0}};
    struct status_row *total = &rows[STATUS_NPREFIX];
    for (size_t i = 0; i < STATUS_NPREFIX; i++) {
        rows[i].prefix = status_prefixes[i];
        if (status_gather(s, &c, &rows[i]) < 0)
            goto out;
        status_merge(total, &rows[i]);
        if (status_set_backlog(s, &c, &rows[i]) < 0)
            goto out;
    }
    ctl_progress_clear(&c.progress_shown);
    if (cfg.json)
        rc = status_print_json(rows, STATUS_NPREFIX + 1, &c);
    else
        status_print_table(rows, STATUS_NPREFIX + 1, &c);
    if (rc < 0 || fflush(stdout) != 0 || ferror(stdout)) {
        perror("sluicectl status: stdout");
        goto out;
    }
    exit_code = CTL_EXIT_OK;
out:
    status_marks_cleanup(&c.marks);
    pipe_store_free(s);
    pipe_conf_cleanup(&status_program, &cfg);
    return exit_code;
}
