/* loadgen_gen.h — what `sluicectl gen`'s two halves share: loadgen_gen.c
 * writes good events and runs the generator, loadgen_bad.c writes the
 * malformed lines, most of them a good event with one member overridden. */
#ifndef CTL_LOADGEN_GEN_H
#define CTL_LOADGEN_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gen; /* the generator (loadgen_gen.c) */

/* The outcome of one line, for the manifest. */
struct gen_row {
    bool accepted;
    const char *event; /* NULL = unknown */
    char id[40];       /* "" = none */
    const char *reason;
};

/* Deviations from a good event that make the malformed kinds. Raw values
 * are JSON text written as-is. */
struct gen_over {
    bool omit_event, omit_id;
    const char *event_raw;
    const char *id_raw;
    const char *ts_raw;
    const char *extra; /* one more "key":value member of properties */
    size_t extra_len;
};

/* The malformed values built once, and how many malformed lines so far. */
struct gen_bad {
    uint64_t n;
    char *large;
    char *long_event;
    char *long_id;
    char *deep[2];
};

/* ctl_gen_write_event — event seq as one NDJSON line (with "\n") at p,
 * which has room for GEN_EVENT_ROOM bytes; returns the end. Everything but
 * ov and target (the length to pad to, 0 for none) is a function of the
 * seed and seq; no_id leaves the id out. The outcome goes to *row. */
char *ctl_gen_write_event(const struct gen *g, char *p, uint64_t seq, uint32_t target, bool no_id,
                          const struct gen_over *ov, struct gen_row *row);

/* ctl_gen_make_id — the id of event seq into out (NUL-terminated). */
void ctl_gen_make_id(const struct gen *g, uint64_t seq, char out[37]);

/* ctl_gen_bad_init / ctl_gen_bad_cleanup — build and free bad's values. */
void ctl_gen_bad_init(struct gen_bad *bad);
void ctl_gen_bad_cleanup(struct gen_bad *bad);

/* ctl_gen_write_bad — the next malformed line at p (room as for
 * ctl_gen_write_event); returns the end. Its expected outcome goes to *row. */
char *ctl_gen_write_bad(struct gen_bad *bad, const struct gen *g, char *p, uint64_t seq,
                        struct gen_row *row);

#endif
