/* splitter — internal declarations shared by the splitter stage's files:
 * splitter.c (descriptor, options, one job: read, route, commit) and
 * splitter_route.c (one pass over a combined object: parse, in-batch
 * de-duplication, routing of events into per-(event, hour) outputs). */
#ifndef SLUICE_SPLITTER_H
#define SLUICE_SPLITTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libpipe/buf.h"
#include "libpipe/dedup.h"
#include "libpipe/stage.h"

struct pipe_zwriter;
struct json_t;

struct splitter_cfg {
    struct pipe_stage_common common; /* must come first */
    int64_t lease_ttl_ms;
    char *time_field; /* "received_at" or "ts" */
    char *dedup;      /* de-duplication backend URL */
    int64_t dedup_window_ms;
    struct json_t *retention; /* shared with the sweeps: checked, not used */
    int64_t zstd_level;
    char *url_prefix;
    uint64_t max_line;
    uint64_t max_input;
};

/* One output of a job: the events of one type in one hour, compressed as a
 * sequence of zstd frames (each frame ends on a line boundary). The frames
 * live in the router's arena, linked in order from first_frame. */
struct split_output {
    char event[129]; /* NUL-terminated event type */
    size_t event_len;
    int64_t hour_ms;
    uint64_t hash;                    /* of (event, hour): the route table's key */
    uint64_t rows;                    /* lines in the output (staged or compressed) */
    struct pipe_buf stage;            /* uncompressed lines not yet in a frame */
    uint32_t stage_first;             /* input line index of the first staged line */
    size_t zbytes;                    /* compressed bytes of its frames so far */
    uint32_t first_frame, last_frame; /* indexes into frames; UINT32_MAX: none */
};

/* One compressed frame in the arena (len 0: every line of it was dropped).
 * Its lines are those of output out from input line first_line on, in
 * order; next is the output's next frame. */
struct split_frame {
    size_t off, len;
    uint32_t next, out, first_line;
    bool dirty; /* holds a line that the claim found to be a duplicate */
};

/* What one pass over a combined object found. */
struct split_counts {
    uint64_t in;        /* lines read (blank lines are not events: skipped) */
    uint64_t rejected;  /* lines that are not an event with event and id */
    uint64_t dup_batch; /* repeats of a key seen earlier in the same object */
    uint64_t dup_cross; /* keys claimed by another job (set after the claim) */
    uint64_t out;       /* rows in the outputs */
};

/* The routing state of one job. Reused between jobs (split_route_reset)
 * so that its arrays and buffers are not allocated again for each. */
struct split_route {
    /* configuration */
    bool use_ts;
    int zstd_level;
    size_t max_line;
    size_t max_output;  /* cap on one output's compressed bytes */
    const char *job_id; /* borrowed, for log lines */
    const char *source; /* borrowed: the combined object's key */

    /* outputs, and an open-addressing index over them (u32 slots) */
    struct split_output *outs;
    size_t n_outs, cap_outs;
    uint32_t *otab;
    size_t otab_size;   /* power of two */
    size_t staged;      /* bytes staged in every output, not yet in a frame */
    size_t stage_alloc; /* bytes allocated by those stages (kept under the budget) */
    /* every output's frames, back to back in the order they were made
     * (capped at twice max_output), and a buffer to join one output's */
    struct pipe_buf zarena;
    struct split_frame *frames;
    size_t n_frames, cap_frames;
    struct pipe_buf gather;
    struct pipe_buf plain; /* a frame decoded again to drop duplicates */

    /* distinct de-duplication keys in first-seen order, their verdicts,
     * and a hash set of indexes into keys */
    struct pipe_dedup_key *keys;
    uint8_t *verdicts;
    size_t n_keys, cap_keys;
    uint64_t *ktab;   /* slots: 32 bits of the key, index + 1 */
    size_t ktab_size; /* power of two */

    /* per input line: its output (or a SPLIT_LINE_* mark) and key index */
    uint32_t *line_out;
    uint32_t *line_key;
    size_t n_lines, cap_lines;

    /* the hour of the last time string parsed, keyed by its first 13
     * bytes ("YYYY-MM-DDTHH"): most events of a batch share it */
    char hour_prefix[13];
    int64_t hour_ms_cached;
    bool hour_valid;

    /* rejected lines in the format of rejected/ (split_reject_line) */
    struct pipe_buf rejects;
    /* per-process seed of the tables keyed by client bytes (otab, ktab) */
    uint64_t seed;

    struct pipe_zwriter *zw;
    struct pipe_line_reader *lr; /* kept across passes and jobs */
    struct pipe_buf scratch;
    struct split_counts c;
};

/* Called by split_route_pass every few thousand lines; a non-zero return
 * aborts the pass with that code (used to renew the lease and to notice a
 * stop request). */
typedef int (*split_tick_fn)(void *arg);

/* ---- splitter_route.c ---- */

/* split_route_init — an empty router; level is the zstd level of outputs,
 * max_line the longest line accepted, max_output the cap on one output's
 * compressed size. 0 or a codec error. Release with split_route_cleanup. */
int split_route_init(struct split_route *r, bool use_ts, int level, size_t max_line,
                     size_t max_output);
void split_route_cleanup(struct split_route *r);

/* split_route_reset — forgets the previous job, keeping allocations.
 * job_id and source (the combined object's key) are borrowed. */
void split_route_reset(struct split_route *r, const char *job_id, const char *source);

/* split_route_pass — the one pass over a combined object (plain or zstd,
 * data[0..n)): parses every line, drops in-batch duplicates, and writes
 * every other line to its output, compressed; r->keys then holds the
 * distinct keys in order of first appearance and r->verdicts is sized for
 * them (all NEW). Returns 0, PIPE_ECORRUPT (the object cannot be decoded),
 * PIPE_ETOOBIG (too many lines or outputs, or an output over its cap), or
 * what tick returned. */
int split_route_pass(struct split_route *r, const void *data, size_t n, split_tick_fn tick,
                     void *arg);

/* split_route_settle — after the claim (r->verdicts filled in): takes the
 * lines whose key another job claimed out of the outputs (re-compressing
 * only the frames that hold one) and completes r->c. Return codes as
 * split_route_pass. */
int split_route_settle(struct split_route *r, split_tick_fn tick, void *arg);

/* split_route_output_data — the whole compressed object of output o (after
 * split_route_settle): *data points into the router's memory and stays valid
 * until the next call or reset. 0 or PIPE_ETOOBIG. */
int split_route_output_data(struct split_route *r, const struct split_output *o, const char **data,
                            size_t *len);

/* split_route_sorted — the non-empty outputs, ordered by
 * (event, hour); the caller frees the array. *n receives the count. */
struct split_output **split_route_sorted(const struct split_route *r, size_t *n);

/* ---- splitter_reject.c ---- */

/* split_reject_line — appends to out one line of rejected/ for a line of a
 * combined object that the splitter cannot route: {"line", "message",
 * "raw" (or "raw_base64" when the text is not UTF-8; neither for a line
 * over max_line, which was never read), "reason", "source"}, keys sorted as
 * every rejected/ line has them (libpipe/reject.h). 0 or PIPE_ETOOBIG past
 * out's cap (out unchanged). */
int split_reject_line(struct pipe_buf *out, const char *line, size_t len, uint64_t line_no,
                      const char *reason, const char *message, const char *source);

/* split_reject_key — the deterministic key of a job's rejected/ object
 * ("<job-id>.split"), so that a re-run rewrites the same key. */
int split_reject_key(struct pipe_buf *key, const char *job_id, int64_t hour_ms);

#endif
