/* conf — loads a program's configuration table from defaults, a JSON file,
 * SLUICE_* variables and argv, in rising precedence.
 *
 * Each source is applied in turn over the previous one through apply_text()
 * or apply_json(), so every source goes through the same parser, range check
 * and error message; later values replace (and free) earlier ones. */
#include "libpipe/conf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "libpipe/clock.h"
#include "libpipe/err.h"
#include "libpipe/mem.h"

#define CONF_MAX_FILE (1u << 20) /* a config file bigger than this is a mistake */
#define CONF_MAX_KEY  64
#define ENV_PREFIX    "SLUICE_"

/* One load in progress: where messages go and what the program is. */
struct loader {
    const struct pipe_conf_program *p;
    void *cfg;
    FILE *err;
};

static void fail(struct loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* fail — prints the message as one line: a key or value quoted from a file
 * or a flag may hold control characters (a newline, a terminal escape),
 * which are shown as \xNN so that they can neither split the line nor
 * forge another log line. */
static void fail(struct loader *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0) { /* out of memory: msg is undefined */
        msg = NULL;
        n = 0;
    }
    fprintf(l->err, "%s: ", l->p->name);
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (c < 0x20 || c == 0x7f)
            fprintf(l->err, "\\x%02x", c);
        else
            fputc(c, l->err);
    }
    fputc('\n', l->err);
    free(msg);
    fflush(l->err);
}

/* ---- sizes and durations ------------------------------------------------ */

/* digits — parses a run of decimal digits at *s into *v, advancing *s.
 * PIPE_EINVAL if there is none, PIPE_ETOOBIG past UINT64_MAX. */
static int digits(const char **s, uint64_t *v)
{
    const char *q = *s;
    uint64_t n = 0;
    if (!isdigit((unsigned char)*q))
        return PIPE_EINVAL;
    for (; isdigit((unsigned char)*q); q++) {
        unsigned d = (unsigned)(*q - '0');
        if (n > (UINT64_MAX - d) / 10)
            return PIPE_ETOOBIG;
        n = n * 10 + d;
    }
    *s = q;
    *v = n;
    return PIPE_OK;
}

int pipe_conf_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        int shift;
    } units[] = {
        {"", 0},    {"b", 0},    {"k", 10}, {"kb", 10}, {"kib", 10}, {"m", 20},
        {"mb", 20}, {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40},
        {"tb", 40}, {"tib", 40}, {"p", 50}, {"pb", 50}, {"pib", 50},
    };
    uint64_t n;
    int rc = digits(&s, &n);
    if (rc < 0)
        return rc;
    if (*s == ' ' && s[1] != '\0')
        s++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(s, units[i].unit) != 0)
            continue;
        if (units[i].shift && n > (UINT64_MAX >> units[i].shift))
            return PIPE_ETOOBIG;
        *out = n << units[i].shift;
        return PIPE_OK;
    }
    return PIPE_EINVAL;
}

/* duration_unit — the unit at the head of s: its length in *len and its
 * size in ms, or 0 if there is none. */
static int64_t duration_unit(const char *s, size_t *len)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {
        /* "ms" before "m", so the longer unit wins */
        {"ms", 1}, {"s", PIPE_SEC_MS}, {"m", PIPE_MIN_MS}, {"h", PIPE_HOUR_MS}, {"d", PIPE_DAY_MS},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t ul = strlen(units[i].unit);
        if (strncmp(s, units[i].unit, ul) == 0 && !isalpha((unsigned char)s[ul])) {
            *len = ul;
            return units[i].ms;
        }
    }
    return 0;
}

int pipe_conf_parse_duration(const char *s, int64_t *out_ms)
{
    if (strcmp(s, "0") == 0) {
        *out_ms = 0;
        return PIPE_OK;
    }
    int64_t total = 0;
    do {
        uint64_t n;
        size_t ul = 0;
        int rc = digits(&s, &n);
        if (rc < 0)
            return rc;
        int64_t unit = duration_unit(s, &ul);
        if (unit == 0)
            return PIPE_EINVAL;
        if (n > (uint64_t)(INT64_MAX / unit))
            return PIPE_ETOOBIG;
        int64_t part = (int64_t)n * unit;
        if (part > INT64_MAX - total)
            return PIPE_ETOOBIG;
        total += part;
        s += ul;
    } while (*s);
    *out_ms = total;
    return PIPE_OK;
}

const char *pipe_conf_format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (u < 5 && bytes && bytes % 1024 == 0) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, len, "%" PRIu64 "%s", bytes, units[u]);
    return buf;
}

const char *pipe_conf_format_duration(int64_t ms, char *buf, size_t len)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {
        {"d", PIPE_DAY_MS},
        {"h", PIPE_HOUR_MS},
        {"m", PIPE_MIN_MS},
        {"s", PIPE_SEC_MS},
    };
    const char *unit = "ms";
    int64_t n = ms;
    for (size_t i = 0; ms != 0 && i < sizeof units / sizeof units[0]; i++) {
        if (ms % units[i].ms == 0) {
            n = ms / units[i].ms;
            unit = units[i].unit;
            break;
        }
    }
    snprintf(buf, len, "%" PRId64 "%s", n, unit);
    return buf;
}

/* ---- tables -------------------------------------------------------------- */

/* Every option of every table is visited with two nested loops:
 *   for (const struct pipe_conf_opt *const *t = p->tables; *t; t++)
 *       for (const struct pipe_conf_opt *o = *t; o->key; o++) */

static void *field(void *cfg, const struct pipe_conf_opt *o)
{
    return (char *)cfg + o->offset;
}

/* find_opt — the option whose key is key[0..n), with
 * dashes treated as underscores when dashes is set (flag spelling). */
static const struct pipe_conf_opt *find_opt(const struct pipe_conf_program *p, const char *key,
                                            size_t n, bool dashes)
{
    for (const struct pipe_conf_opt *const *t = p->tables; *t; t++) {
        for (const struct pipe_conf_opt *o = *t; o->key; o++) {
            if (strlen(o->key) != n)
                continue;
            size_t i;
            for (i = 0; i < n; i++) {
                char c = key[i];
                if (dashes && c == '-')
                    c = '_';
                else if (dashes && c == '_')
                    break; /* --flush_bytes is not a flag spelling */
                if (c != o->key[i])
                    break;
            }
            if (i == n)
                return o;
        }
    }
    return NULL;
}

/* check_tables — catches programming errors in the tables before any user
 * input is looked at: malformed keys, a key defined twice, reserved names. */
static int check_tables(struct loader *l)
{
    for (const struct pipe_conf_opt *const *t = l->p->tables; *t; t++) {
        for (const struct pipe_conf_opt *o = *t; o->key; o++) {
            size_t n = strlen(o->key);
            bool ok = n > 0 && n < CONF_MAX_KEY && o->type <= PIPE_CONF_JSON;
            for (size_t i = 0; ok && i < n; i++)
                ok = islower((unsigned char)o->key[i]) || isdigit((unsigned char)o->key[i]) ||
                     o->key[i] == '_';
            if (!ok || strcmp(o->key, "config") == 0 || strcmp(o->key, "help") == 0 ||
                strcmp(o->key, "version") == 0) {
                fail(l, "internal error: bad option key '%s'", o->key);
                return PIPE_ECONFIG;
            }
            if (find_opt(l->p, o->key, n, false) != o) {
                fail(l, "internal error: option '%s' is defined twice", o->key);
                return PIPE_ECONFIG;
            }
        }
    }
    return PIPE_OK;
}

/* ---- applying one value ---------------------------------------------------- */

static int parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return PIPE_OK;
        }
    }
    return PIPE_EINVAL;
}

static int parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || isspace((unsigned char)*s))
        return PIPE_EINVAL;
    if (errno == ERANGE)
        return PIPE_ETOOBIG;
    *out = v;
    return PIPE_OK;
}

/* format_range — the option's bounds in its own units, into 32-byte lo/hi. */
static void format_range(const struct pipe_conf_opt *o, char *lo, char *hi)
{
    if (o->type == PIPE_CONF_SIZE) {
        pipe_conf_format_size((uint64_t)o->min, lo, 32);
        pipe_conf_format_size((uint64_t)o->max, hi, 32);
    } else if (o->type == PIPE_CONF_DURATION) {
        pipe_conf_format_duration(o->min, lo, 32);
        pipe_conf_format_duration(o->max, hi, 32);
    } else {
        snprintf(lo, 32, "%" PRId64, o->min);
        snprintf(hi, 32, "%" PRId64, o->max);
    }
}

/* range_check — refuses v outside [min, max] when the option has a range;
 * prints the bounds in the option's own units. */
static int range_check(struct loader *l, const struct pipe_conf_opt *o, const char *src,
                       const char *text, int64_t v, bool unsigned_big)
{
    if (o->max <= o->min || (!unsigned_big && v >= o->min && v <= o->max))
        return PIPE_OK;
    char lo[32], hi[32];
    format_range(o, lo, hi);
    fail(l, "%s: '%s' is out of range (%s to %s)", src, text, lo, hi);
    return PIPE_ECONFIG;
}

static const char *type_example(enum pipe_conf_type t)
{
    switch (t) {
    case PIPE_CONF_INT:
        return "an integer";
    case PIPE_CONF_BOOL:
        return "a boolean (true or false)";
    case PIPE_CONF_SIZE:
        return "a size (e.g. 8MiB)";
    case PIPE_CONF_DURATION:
        return "a duration (e.g. 250ms, 30s, 5m)";
    case PIPE_CONF_JSON:
        return "JSON";
    case PIPE_CONF_STR:
        break;
    }
    return "a string";
}

/* apply_text — parses text for option o and stores it in cfg; src names the
 * source for messages ("--flush-bytes", "SLUICE_FLUSH_BYTES", "f.json: x"). */
static int apply_text(struct loader *l, const struct pipe_conf_opt *o, const char *src,
                      const char *text)
{
    void *f = field(l->cfg, o);
    int rc = PIPE_OK;
    switch (o->type) {
    case PIPE_CONF_STR:
        pipe_free(*(char **)f);
        *(char **)f = pipe_strdup(text);
        return PIPE_OK;
    case PIPE_CONF_BOOL:
        rc = parse_bool(text, (bool *)f);
        break;
    case PIPE_CONF_INT:
    case PIPE_CONF_DURATION: {
        int64_t v;
        rc = o->type == PIPE_CONF_INT ? parse_int(text, &v) : pipe_conf_parse_duration(text, &v);
        if (rc == PIPE_OK) {
            if (range_check(l, o, src, text, v, false) < 0)
                return PIPE_ECONFIG;
            *(int64_t *)f = v;
        }
        break;
    }
    case PIPE_CONF_SIZE: {
        uint64_t v;
        if ((rc = pipe_conf_parse_size(text, &v)) == PIPE_OK) {
            if (range_check(l, o, src, text, (int64_t)v, v > INT64_MAX) < 0)
                return PIPE_ECONFIG;
            *(uint64_t *)f = v;
        }
        break;
    }
    case PIPE_CONF_JSON: {
        json_error_t je;
        json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
        if (j == NULL) {
            /* Neither the value nor jansson's message (which quotes the
             * text near the error): a JSON option may hold secrets, such as
             * the filter's api_keys. */
            fail(l, "%s: not valid JSON (error at line %d, column %d; the value is not shown)", src,
                 je.line, je.column);
            return PIPE_ECONFIG;
        }
        json_decref(*(json_t **)f);
        *(json_t **)f = j;
        return PIPE_OK;
    }
    }
    if (rc == PIPE_ETOOBIG)
        fail(l, "%s: '%s' is too large", src, text);
    else if (rc < 0)
        fail(l, "%s: '%s' is not %s", src, text, type_example(o->type));
    return rc < 0 ? PIPE_ECONFIG : PIPE_OK;
}

/* apply_json — a config file value: JSON options take it as is, strings
 * must be strings, and other scalars go through the text parser so that
 * "8MiB" and 8388608 mean the same in a file as on the command line. */
static int apply_json(struct loader *l, const struct pipe_conf_opt *o, const char *src, json_t *v)
{
    char num[64];
    if (o->type == PIPE_CONF_JSON) {
        json_decref(*(json_t **)field(l->cfg, o));
        *(json_t **)field(l->cfg, o) = json_incref(v);
        return PIPE_OK;
    }
    if (o->type == PIPE_CONF_STR && json_is_null(v)) {
        pipe_free(*(char **)field(l->cfg, o));
        *(char **)field(l->cfg, o) = NULL;
        return PIPE_OK;
    }
    if (json_is_string(v))
        return apply_text(l, o, src, json_string_value(v));
    if (o->type != PIPE_CONF_STR) {
        if (json_is_integer(v)) {
            snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            return apply_text(l, o, src, num);
        }
        if (json_is_real(v)) {
            snprintf(num, sizeof num, "%.17g", json_real_value(v));
            return apply_text(l, o, src, num);
        }
        if (json_is_boolean(v))
            return apply_text(l, o, src, json_is_true(v) ? "true" : "false");
    }
    fail(l, "%s: expected %s", src, type_example(o->type));
    return PIPE_ECONFIG;
}

/* ---- suggestions ------------------------------------------------------------ */

/* distance — edit distance counting a swap of two neighbours as one edit
 * (optimal string alignment), for "did you mean"; long strings are "far". */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la >= CONF_MAX_KEY || lb >= CONF_MAX_KEY)
        return SIZE_MAX;
    size_t rows[3][CONF_MAX_KEY + 1]; /* rows i-2, i-1, i, used round-robin */
    for (size_t j = 0; j <= lb; j++)
        rows[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t *cur = rows[i % 3], *prev = rows[(i - 1) % 3], *prev2 = rows[(i + 1) % 3];
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
    }
    return rows[la % 3][lb];
}

/* nearest — the known key closest to key (compared in underscore spelling),
 * or NULL when nothing is close enough to be a plausible typo. */
static const char *nearest(const struct pipe_conf_program *p, const char *key)
{
    char k[CONF_MAX_KEY];
    size_t n = strlen(key);
    if (n >= sizeof k)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        k[i] = key[i] == '-' ? '_' : key[i];
    /* a typo is a letter or two: accept 1 edit in short keys, up to 3 in long */
    size_t bestd = n <= 4 ? 2 : n <= 8 ? 3 : 4; /* exclusive bound */
    const char *best = NULL;
    for (const struct pipe_conf_opt *const *t = p->tables; *t; t++) {
        for (const struct pipe_conf_opt *o = *t; o->key; o++) {
            size_t d = distance(k, o->key);
            if (d < bestd) {
                bestd = d;
                best = o->key;
            }
        }
    }
    return best;
}

/* ---- sources ------------------------------------------------------------------ */

static int read_capped(struct loader *l, const char *path, char **data, size_t *len)
{
    int rc = PIPE_OK;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fail(l, "config file %s: %s", path, strerror(errno));
        return PIPE_ECONFIG;
    }
    buf = pipe_malloc(CONF_MAX_FILE + 1);
    size_t n = fread(buf, 1, CONF_MAX_FILE + 1, f);
    if (ferror(f)) {
        fail(l, "config file %s: %s", path, strerror(errno));
        rc = PIPE_ECONFIG;
        goto out;
    }
    if (n > CONF_MAX_FILE) {
        fail(l, "config file %s: larger than %u bytes", path, CONF_MAX_FILE);
        rc = PIPE_ECONFIG;
        goto out;
    }
    *data = buf;
    *len = n;
    buf = NULL;
out:
    pipe_free(buf);
    fclose(f);
    return rc;
}

/* Keys that several programs read and that must hold the same value in all
 * of them (SPEC §5.7): the de-duplication window the splitters check and the
 * dispatcher's sweep keeps index objects for, and the retentions the sweeps
 * apply. A config file sets them at its top level only, so one file cannot
 * give two programs two values; a program that does not take one skips it. */
static const char *const shared_keys[] = {"dedup_window", "retention", NULL};

static bool is_shared(const char *key)
{
    for (size_t i = 0; shared_keys[i]; i++)
        if (strcmp(shared_keys[i], key) == 0)
            return true;
    return false;
}

/* is_annotation — keys a config file may carry for its readers, ignored. */
static bool is_annotation(const char *key)
{
    return strcmp(key, "$schema") == 0 || strcmp(key, "comment") == 0;
}

/* apply_object — applies every key of one level of the config file. At the
 * top level, an object named after the program is its own section (applied
 * afterwards, so it wins) and other "sluice..." objects are other programs'
 * sections, skipped: one file can serve every stage. */
static int apply_object(struct loader *l, const char *path, json_t *obj, bool top)
{
    char src[512];
    for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
        const char *key = json_object_iter_key(it);
        json_t *v = json_object_iter_value(it);
        if (is_annotation(key))
            continue;
        const struct pipe_conf_opt *o = find_opt(l->p, key, strlen(key), false);
        if (o == NULL && top && strcmp(key, l->p->name) == 0) {
            if (!json_is_object(v)) {
                fail(l, "%s: section '%s' must be an object", path, key);
                return PIPE_ECONFIG;
            }
            continue;
        }
        if (o == NULL && top && strncmp(key, "sluice", 6) == 0 && json_is_object(v))
            continue;
        if (!top && is_shared(key)) {
            fail(l,
                 "%s: '%s' in section '%s': several programs read it and must agree, so it is "
                 "set once, at the top level of the file",
                 path, key, l->p->name);
            return PIPE_ECONFIG;
        }
        if (o == NULL && top && is_shared(key))
            continue; /* another program's */
        if (o == NULL) {
            const char *near = nearest(l->p, key);
            fail(l, "%s: unknown key '%s'%s%s%s", path, key, near ? " (did you mean '" : "",
                 near ? near : "", near ? "'?)" : "");
            return PIPE_ECONFIG;
        }
        snprintf(src, sizeof src, "%s: %s", path, key);
        if (apply_json(l, o, src, v) < 0)
            return PIPE_ECONFIG;
    }
    json_t *section = top ? json_object_get(obj, l->p->name) : NULL;
    return section ? apply_object(l, path, section, false) : PIPE_OK;
}

static int apply_file(struct loader *l, const char *path)
{
    int rc;
    char *data = NULL;
    size_t len = 0;
    json_t *root = NULL;
    json_error_t je;
    if ((rc = read_capped(l, path, &data, &len)) < 0)
        goto out;
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        /* jansson ends its message with the text near the error ("near
         * '...'"), which may be part of a secret such as an API key */
        char *near = strstr(je.text, " near ");
        if (near)
            *near = '\0';
        fail(l, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        rc = PIPE_ECONFIG;
        goto out;
    }
    if (!json_is_object(root)) {
        fail(l, "%s: the top level must be a JSON object", path);
        rc = PIPE_ECONFIG;
        goto out;
    }
    rc = apply_object(l, path, root, true);
out:
    json_decref(root);
    pipe_free(data);
    return rc;
}

/* apply_env — SLUICE_<KEY> for every option. An empty variable counts as
 * unset: container tooling often defines variables it has no value for. */
static int apply_env(struct loader *l)
{
    char name[sizeof ENV_PREFIX + CONF_MAX_KEY];
    for (const struct pipe_conf_opt *const *t = l->p->tables; *t; t++) {
        for (const struct pipe_conf_opt *o = *t; o->key; o++) {
            size_t n = strlen(ENV_PREFIX);
            memcpy(name, ENV_PREFIX, n);
            for (const char *k = o->key; *k; k++)
                name[n++] = (char)toupper((unsigned char)*k);
            name[n] = '\0';
            const char *v = getenv(name);
            if (v && *v && apply_text(l, o, name, v) < 0)
                return PIPE_ECONFIG;
        }
    }
    return PIPE_OK;
}

/* One flag from argv, applied after the file and the environment. */
struct flag_value {
    const struct pipe_conf_opt *o;
    const char *value;
    char flag[CONF_MAX_KEY + 8]; /* as typed, without "=value": for messages */
};

/* wants_help — true if argv asks for --help or --version, which win over
 * any error elsewhere on the line. Prints what was asked for. */
static bool wants_help(const struct pipe_conf_program *p, int argc, char **argv, FILE *out)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            pipe_conf_print_help(p, out);
            return true;
        }
        if (strcmp(argv[i], "--version") == 0) {
            fprintf(out, "%s %s\n", p->name, p->version ? p->version : "");
            fflush(out);
            return true;
        }
    }
    return false;
}

/* parse_flag — one "--name[=value]" at argv[*i] (advancing *i past a
 * separate value). Fills fv, or sets *config for -c/--config. */
static int parse_flag(struct loader *l, int argc, char **argv, int *i, struct flag_value *fv,
                      const char **config)
{
    const char *arg = argv[*i];
    const char *name = arg[1] == '-' ? arg + 2 : arg + 1;
    const char *eq = strchr(name, '=');
    size_t n = eq ? (size_t)(eq - name) : strlen(name);
    const struct pipe_conf_opt *o = NULL;
    bool negated = false, is_config = false;
    if (arg[1] != '-') {
        is_config = strcmp(arg, "-c") == 0;
    } else if (n == 6 && strncmp(name, "config", 6) == 0) {
        is_config = true;
    } else {
        o = find_opt(l->p, name, n, true);
        if (o == NULL && n > 3 && strncmp(name, "no-", 3) == 0) {
            o = find_opt(l->p, name + 3, n - 3, true);
            negated = o != NULL;
        }
    }
    if (negated && (o->type != PIPE_CONF_BOOL || eq)) {
        fail(l, "%.*s: %s", (int)(name - arg + n), arg,
             eq ? "takes no value" : "only boolean options can be negated");
        return PIPE_ECONFIG;
    }
    if (!is_config && o == NULL) {
        char nb[CONF_MAX_KEY];
        snprintf(nb, sizeof nb, "%.*s", (int)n, name);
        const char *near = arg[1] == '-' ? nearest(l->p, nb) : NULL;
        snprintf(nb, sizeof nb, "%s", near ? near : "");
        for (char *c = nb; *c; c++)
            *c = *c == '_' ? '-' : *c;
        fail(l, "unknown option %.*s%s%s%s", (int)(name - arg + n), arg,
             near ? " (did you mean --" : "", nb, near ? "?)" : "");
        return PIPE_ECONFIG;
    }
    snprintf(fv->flag, sizeof fv->flag, "%.*s", (int)(name - arg + n), arg);
    fv->o = o;
    if (eq) {
        fv->value = eq + 1;
    } else if (o && o->type == PIPE_CONF_BOOL) {
        fv->value = negated ? "false" : "true";
    } else if (*i + 1 < argc) {
        fv->value = argv[++*i];
    } else {
        fail(l, "%s: needs a value", fv->flag);
        return PIPE_ECONFIG;
    }
    if (is_config)
        *config = fv->value;
    return PIPE_OK;
}

/* parse_argv — collects flags into fv (*nfv of them) and moves positional
 * arguments to the end of argv; *first_arg is where they start. */
static int parse_argv(struct loader *l, int argc, char **argv, struct flag_value *fv, int *nfv,
                      const char **config, int *first_arg)
{
    char **pos = pipe_calloc((size_t)argc + 1, sizeof *pos);
    char **flags = pipe_calloc((size_t)argc + 1, sizeof *flags);
    int npos = 0, nflags = 0, rc = PIPE_OK;
    bool ended = false;
    *nfv = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (ended || a[0] != '-' || a[1] == '\0') {
            pos[npos++] = argv[i];
            continue;
        }
        flags[nflags++] = argv[i];
        if (strcmp(a, "--") == 0) {
            ended = true;
            continue;
        }
        int start = i;
        if ((rc = parse_flag(l, argc, argv, &i, &fv[*nfv], config)) < 0)
            goto out;
        if (fv[*nfv].o)
            ++*nfv;
        if (i > start)
            flags[nflags++] = argv[i];
    }
    memcpy(argv + 1, flags, (size_t)nflags * sizeof *argv);
    memcpy(argv + 1 + nflags, pos, (size_t)npos * sizeof *argv);
    *first_arg = 1 + nflags;
out:
    pipe_free(flags);
    pipe_free(pos);
    return rc;
}

/* ---- load ---------------------------------------------------------------------- */

static int apply_defaults(struct loader *l)
{
    char src[CONF_MAX_KEY + 32];
    for (const struct pipe_conf_opt *const *t = l->p->tables; *t; t++) {
        for (const struct pipe_conf_opt *o = *t; o->key; o++) {
            if (o->def == NULL)
                continue;
            snprintf(src, sizeof src, "internal error: default of %s", o->key);
            if (apply_text(l, o, src, o->def) < 0)
                return PIPE_ECONFIG;
        }
    }
    return PIPE_OK;
}

int pipe_conf_load_to(const struct pipe_conf_program *p, void *cfg, int argc, char **argv,
                      int *first_arg, FILE *out, FILE *err)
{
    struct loader l = {.p = p, .cfg = cfg, .err = err};
    struct flag_value *fv = pipe_calloc((size_t)argc + 1, sizeof *fv);
    const char *config = NULL;
    int nfv = 0, first = argc, rc;
    char msg[512];

    if ((rc = check_tables(&l)) < 0)
        goto out;
    if (wants_help(p, argc, argv, out)) {
        rc = PIPE_EHELP;
        goto out;
    }
    if ((rc = parse_argv(&l, argc, argv, fv, &nfv, &config, &first)) < 0)
        goto out;
    if (config == NULL && getenv(ENV_PREFIX "CONFIG") && *getenv(ENV_PREFIX "CONFIG"))
        config = getenv(ENV_PREFIX "CONFIG");
    if ((rc = apply_defaults(&l)) < 0)
        goto out;
    if (config && (rc = apply_file(&l, config)) < 0)
        goto out;
    if ((rc = apply_env(&l)) < 0)
        goto out;
    for (int i = 0; i < nfv; i++)
        if ((rc = apply_text(&l, fv[i].o, fv[i].flag, fv[i].value)) < 0)
            goto out;
    msg[0] = '\0';
    if (p->validate && p->validate(cfg, msg, sizeof msg) != 0) {
        fail(&l, "%s", msg[0] ? msg : "invalid configuration");
        rc = PIPE_ECONFIG;
        goto out;
    }
    *first_arg = first;
out:
    if (rc < 0)
        pipe_conf_cleanup(p, cfg);
    pipe_free(fv);
    return rc;
}

int pipe_conf_load(const struct pipe_conf_program *p, void *cfg, int argc, char **argv,
                   int *first_arg)
{
    return pipe_conf_load_to(p, cfg, argc, argv, first_arg, stdout, stderr);
}

void pipe_conf_cleanup(const struct pipe_conf_program *p, void *cfg)
{
    for (const struct pipe_conf_opt *const *t = p->tables; *t; t++) {
        for (const struct pipe_conf_opt *o = *t; o->key; o++) {
            if (o->type == PIPE_CONF_STR) {
                pipe_free(*(char **)field(cfg, o));
                *(char **)field(cfg, o) = NULL;
            } else if (o->type == PIPE_CONF_JSON) {
                json_decref(*(json_t **)field(cfg, o));
                *(json_t **)field(cfg, o) = NULL;
            }
        }
    }
}

/* ---- help ------------------------------------------------------------------------ */

static const char *metavar(const struct pipe_conf_opt *o)
{
    static const char *names[] = {
        [PIPE_CONF_STR] = "TEXT",
        [PIPE_CONF_INT] = "N",
        [PIPE_CONF_BOOL] = "",
        [PIPE_CONF_SIZE] = "SIZE",
        [PIPE_CONF_DURATION] = "DURATION",
        [PIPE_CONF_JSON] = "JSON",
    };
    return o->metavar ? o->metavar : names[o->type];
}

static void print_opt(FILE *f, const struct pipe_conf_opt *o)
{
    char flag[CONF_MAX_KEY], env[CONF_MAX_KEY], lo[32], hi[32];
    size_t i;
    for (i = 0; o->key[i] && i + 1 < sizeof flag; i++) {
        flag[i] = o->key[i] == '_' ? '-' : o->key[i];
        env[i] = (char)toupper((unsigned char)o->key[i]);
    }
    flag[i] = env[i] = '\0';
    if (o->type == PIPE_CONF_BOOL)
        fprintf(f, "  --[no-]%s\n", flag);
    else
        fprintf(f, "  --%s %s\n", flag, metavar(o));
    fprintf(f, "        %s\n        ", o->help ? o->help : "");
    if (o->def)
        fprintf(f, "default: %s; ", o->def);
    if (o->max > o->min && o->type != PIPE_CONF_BOOL && o->type != PIPE_CONF_STR &&
        o->type != PIPE_CONF_JSON) {
        format_range(o, lo, hi);
        fprintf(f, "range: %s to %s; ", lo, hi);
    }
    fprintf(f, "env: " ENV_PREFIX "%s; file: \"%s\"\n", env, o->key);
}

void pipe_conf_print_help(const struct pipe_conf_program *p, FILE *f)
{
    fprintf(f, "usage: %s [options]%s%s\n\n", p->name, p->usage_args ? " " : "",
            p->usage_args ? p->usage_args : "");
    if (p->summary)
        fprintf(f, "%s\n\n", p->summary);
    fprintf(f, "Flags override " ENV_PREFIX "* environment variables, which override the "
               "config file,\nwhich overrides the defaults.\n\noptions:\n");
    fprintf(f, "  -c, --config FILE\n        configuration file (JSON)\n"
               "        env: " ENV_PREFIX "CONFIG\n");
    for (const struct pipe_conf_opt *const *t = p->tables; *t; t++)
        for (const struct pipe_conf_opt *o = *t; o->key; o++)
            print_opt(f, o);
    fprintf(f, "  -h, --help\n        print this help and exit\n"
               "  --version\n        print the version and exit\n");
    fflush(f);
}
