/* conf — one table per program, from which flags, SLUICE_* environment
 * variables, the JSON config file, defaults, range checks and --help all come.
 *
 * Precedence: flags > environment > config file > defaults (SPEC §1). The
 * caller owns the cfg struct; strings and JSON values in it belong to it and
 * are released by pipe_conf_cleanup(). */
#ifndef PIPE_CONF_H
#define PIPE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum pipe_conf_type {
    PIPE_CONF_STR,      /* char * (NULL when unset), freed by cleanup */
    PIPE_CONF_INT,      /* int64_t, decimal */
    PIPE_CONF_BOOL,     /* bool: true/false, yes/no, on/off, 1/0 */
    PIPE_CONF_SIZE,     /* uint64_t bytes: "8MiB", "512k", "1048576" */
    PIPE_CONF_DURATION, /* int64_t milliseconds: "250ms", "1s", "5m", "1h30m", "7d" */
    PIPE_CONF_JSON,     /* json_t * (NULL when unset), any JSON value, decref'd by cleanup */
};

/* One configuration key. key "flush_bytes" gives the flag --flush-bytes, the
 * environment variable SLUICE_FLUSH_BYTES and the file key "flush_bytes". */
struct pipe_conf_opt {
    const char *key; /* [a-z0-9_]; NULL ends a table */
    enum pipe_conf_type type;
    const char *def;     /* default, as text parsed like any source; NULL = unset/0/false */
    size_t offset;       /* offsetof(struct my_cfg, field) */
    const char *help;    /* one line for --help */
    int64_t min, max;    /* inclusive range for INT/SIZE/DURATION, used when max > min */
    const char *metavar; /* shown in --help ("ADDR"); NULL = from the type */
};

struct pipe_conf_program {
    const char *name;       /* "sluice-filter": messages, --help, config file section */
    const char *summary;    /* one paragraph for --help */
    const char *usage_args; /* positional part of the usage line, or NULL */
    const char *version;    /* printed by --version */
    /* NULL-terminated list of option tables (e.g. the common one and the
     * program's own); each table ends with an entry whose key is NULL. */
    const struct pipe_conf_opt *tables[4];
    /* Cross-field checks run after everything is loaded: return non-zero and
     * write a message to err for a contradiction that would lose or
     * duplicate data. May be NULL. */
    int (*validate)(void *cfg, char *err, size_t errlen);
};

/* pipe_conf_load — fills cfg (zeroed by the caller) from defaults, the config
 * file (-c FILE / --config FILE, else $SLUICE_CONFIG), SLUICE_* variables
 * and argv, then runs range checks and p->validate.
 *
 * Config file: top-level keys apply to every program that takes them; an
 * object named after the program ("sluice-splitter") holds its own keys and
 * wins over the top level. Keys several programs must agree on
 * (dedup_window, retention) are only accepted at the top level, so that one
 * file gives every program the same value; a program skips those it does
 * not take.
 *
 * Flags: `--key VALUE`, `--key=VALUE`; booleans `--once`, `--once=false`,
 * `--no-once`; `-h`/`--help`, `--version`; "--" ends the flags. Positional
 * arguments may be mixed with flags: argv is permuted (pointers only) so
 * that they come last, in their original order, starting at *first_arg.
 *
 * Returns 0; PIPE_EHELP after printing help or the version to stdout (the
 * program should exit 0); PIPE_ECONFIG after printing one clear line to
 * stderr. On failure cfg is left cleaned up (no need to call cleanup, though
 * doing so is harmless) and *first_arg is not written. */
int pipe_conf_load(const struct pipe_conf_program *p, void *cfg, int argc, char **argv,
                   int *first_arg);

/* pipe_conf_load_to — pipe_conf_load writing help to out and errors to err
 * instead of stdout and stderr (e.g. an open_memstream for tests, or a
 * tool that embeds a program's option parsing). */
int pipe_conf_load_to(const struct pipe_conf_program *p, void *cfg, int argc, char **argv,
                      int *first_arg, FILE *out, FILE *err);

/* pipe_conf_cleanup — frees every string and JSON value the tables point at
 * in cfg and sets those fields to NULL. Scalars are left alone. */
void pipe_conf_cleanup(const struct pipe_conf_program *p, void *cfg);

/* pipe_conf_print_help — usage line, summary, then every option: flag,
 * metavar, help, default, range and environment variable name. */
void pipe_conf_print_help(const struct pipe_conf_program *p, FILE *f);

/* pipe_conf_parse_size — "1048576", "512k", "8MiB", "2 GB" -> bytes. Units
 * are case-insensitive and all powers of 1024 (k = kb = kib = 1024); no
 * fractions, no sign. PIPE_EINVAL if malformed, PIPE_ETOOBIG on overflow.
 * *out is written only on success. */
int pipe_conf_parse_size(const char *s, uint64_t *out);

/* pipe_conf_parse_duration — "250ms", "30s", "5m", "2h", "7d", "1h30m" ->
 * milliseconds. A bare number is refused (seconds or milliseconds? the
 * reader cannot tell), except "0". PIPE_EINVAL if malformed, PIPE_ETOOBIG on
 * int64 overflow. *out_ms is written only on success. */
int pipe_conf_parse_duration(const char *s, int64_t *out_ms);

/* pipe_conf_format_size / pipe_conf_format_duration — the shortest exact
 * text ("8MiB", "90s", "1500ms") for messages and --help; returns buf. */
const char *pipe_conf_format_size(uint64_t bytes, char *buf, size_t len);
const char *pipe_conf_format_duration(int64_t ms, char *buf, size_t len);

#endif
