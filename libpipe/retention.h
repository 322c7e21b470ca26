/* retention — the per-prefix retention sweep of SPEC §2 and §5.5, shared by
 * `sluicectl sweep` and the dispatcher's periodic sweep.
 *
 * Objects older than their prefix's retention (by mtime) are deleted, but
 * never one that the next stage has not consumed: the rules are in
 * docs/compaction.md ("Operations"). The caller owns the store and the
 * config; the sweep reports through callbacks and per-rule counters and
 * prints nothing itself. */
#ifndef PIPE_RETENTION_H
#define PIPE_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pipe_store;
struct json_t; /* jansson's json_t */

/* What a retention applies to; the index into pipe_retention_config.ttl_ms. */
enum pipe_retention_class {
    PIPE_RET_RAW,
    PIPE_RET_FILTERED,
    PIPE_RET_REJECTED,
    PIPE_RET_COMBINED,
    PIPE_RET_SPLIT, /* split/ and manifests/split/ */
    PIPE_RET_DEDUP, /* state/dedup/: the de-duplication window */
    PIPE_RET__COUNT
};

/* The sweep's rules, run in this order (pipeline order, so that an
 * object's consumer record is still there when the object is looked at):
 * raw/, filtered/, rejected/, combined/, manifests/split/, split/,
 * state/dedup/. */
#define PIPE_RETENTION_NRULES 7

struct pipe_retention_config {
    int64_t ttl_ms[PIPE_RET__COUNT]; /* > 0 each */
    int64_t dedup_window_ms;         /* the splitters' de-duplication window */
    bool dedup_set;                  /* ttl_ms[PIPE_RET_DEDUP] came from "dedup" */
    unsigned generation;             /* the filter's: names the filtered/ object of a raw/ object */
    size_t page_keys;                /* keys per listing; 0 = 1000 */
};

/* What one rule did. */
struct pipe_retention_count {
    uint64_t old;        /* objects past the retention */
    uint64_t deleted;    /* of those, deleted (dry run: would be) */
    uint64_t bytes;      /* their bytes */
    uint64_t companions; /* companion objects deleted after them (markers, manifests) */
    uint64_t kept;       /* old but not yet consumed */
    uint64_t errors;     /* listings, checks or deletes that failed */
};

struct pipe_retention_counts {
    struct pipe_retention_count rule[PIPE_RETENTION_NRULES];
};

/* Callbacks of a sweep; any member may be NULL, and so may the struct.
 *
 * deleted — key was deleted (dry run: would be deleted); rule is the index
 *   of the rule, companion tells a marker or manifest that went after its
 *   object. Called in deletion order.
 * error — what failed ("cannot delete", "cannot list", "cannot tell whether
 *   it is consumed:") on key (a key or a prefix), with the store's detail
 *   (may be "") and the code.
 * progress — called after every few objects looked at (and at the end of
 *   each rule) with the rule being swept and the number of keys listed so
 *   far in this sweep. Returning non-zero stops the sweep, which then
 *   returns that value: a daemon stops here when asked to or when it lost
 *   its lease. */
struct pipe_retention_callbacks {
    void (*deleted)(void *arg, size_t rule, const char *key, bool companion);
    void (*error)(void *arg, const char *what, const char *key, int rc, const char *detail);
    int (*progress)(void *arg, size_t rule, uint64_t listed);
    void *arg;
};

/* pipe_retention_config_init — the defaults of SPEC §2: raw 7 d, filtered
 * 7 d, rejected 30 d, combined 30 d, split 90 d; state/dedup/ index objects
 * for the longest of dedup_window_ms (the splitters' window: an index
 * object swept earlier lets a duplicate through) and the replay horizon
 * (the retention of filtered/ and combined/: a replay of an old hour is
 * checked against that hour's index objects, which must still be there). */
void pipe_retention_config_init(struct pipe_retention_config *c, unsigned generation,
                                int64_t dedup_window_ms);

/* pipe_retention_config_parse — overrides c's retentions from a JSON object
 * of positive durations keyed by "raw", "filtered", "rejected", "combined",
 * "split", "dedup" (state/dedup/; unless given it follows the rule of
 * _init) ({"filtered":"3d"}). j NULL changes nothing. Returns 0, or
 * PIPE_ECONFIG with a one-line reason in err (c is then unchanged). */
int pipe_retention_config_parse(struct pipe_retention_config *c, const struct json_t *j, char *err,
                                size_t errlen);

/* pipe_retention_config_check — SPEC §5.7: refuses retentions that would
 * lose or duplicate data, with a message in err naming both settings:
 * filtered/ or combined/ under an hour (swept while a stage lags), and
 * state/dedup/ shorter than the de-duplication window or than the replay
 * horizon. 0 or PIPE_ECONFIG. */
int pipe_retention_config_check(const struct pipe_retention_config *c, char *err, size_t errlen);

/* pipe_retention_config_warnings — settings that are safe but keep objects
 * forever: raw/ outliving filtered/ (or combined/ outliving split/) means
 * the earlier objects can no longer be proved consumed once their
 * consumer's objects are gone. Stores up to max static messages in msgs
 * and returns how many there are. */
size_t pipe_retention_config_warnings(const struct pipe_retention_config *c, const char **msgs,
                                      size_t max);

/* pipe_retention_rule_prefix — "raw/", "filtered/", ... for rule index i
 * (< PIPE_RETENTION_NRULES); NULL out of range. */
const char *pipe_retention_rule_prefix(size_t i);

/* pipe_retention_rule_companion — the prefix of the companion objects rule
 * i deletes after its objects ("state/combine/" for filtered/,
 * "manifests/combined/" for combined/), or NULL. */
const char *pipe_retention_rule_companion(size_t i);

/* pipe_retention_rule_ttl — the retention rule i applies under c. */
int64_t pipe_retention_rule_ttl(const struct pipe_retention_config *c, size_t i);

/* pipe_retention_sweep — runs every rule over s with "now" = now_ms, after
 * pipe_store_tidy (temp files of killed puts); with dry_run nothing is
 * deleted (callbacks and counts are as if it were). The
 * store must keep mtimes (PIPE_STORE_CAP_MTIME; else PIPE_EINVAL, nothing
 * done). A failure on one object or prefix is reported through cb->error
 * and counted, and the sweep goes on with the rest.
 *
 * *out (may be NULL) is zeroed and then always written, also on failure:
 * what was deleted before an error or a stop is deleted all the same.
 * Returns 0 when everything was swept without an error, the non-zero value
 * of cb->progress that stopped it, or else the first error's code. */
int pipe_retention_sweep(struct pipe_store *s, const struct pipe_retention_config *c,
                         int64_t now_ms, bool dry_run, const struct pipe_retention_callbacks *cb,
                         struct pipe_retention_counts *out);

#endif
