/* wake — a consumer lists the store only when the listing can find
 * something: the cheap signal that keeps an idle pipeline from paying for
 * LIST requests (the costliest request on S3) every poll.
 *
 * A producer that wrote work under a prefix bumps that prefix's generation
 * in the lease backend (pipe_wake_bump: a Redis script, or a small file in
 * the local lease directory). A consumer reads the generations of what it
 * lists on every poll (one Redis MGET or a few file reads, never a store
 * request) through a watch, and lists only when one moved since its last
 * listing, or when idle_list has passed since (objects written by something
 * outside sluice, a producer killed between its put and its bump, a lease
 * backend that lost its state). Listing stays the truth: a read that fails
 * means "list", and nothing is ever decided from a generation alone.
 *
 * The stage runtime owns one struct pipe_wake per process (pipe_stage_wake);
 * a consumer owns its watches. A watch has a few marks, one per kind of
 * listing it decides on (the dispatcher lists its hot partitions, its
 * lookback and everything at different times), each remembering what was
 * read before its last listing. */
#ifndef PIPE_WAKE_H
#define PIPE_WAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pipe_leases;
struct pipe_metrics;
struct pipe_wake;
struct pipe_wake_watch;

/* The generations, named after the prefixes whose work they signal (the
 * job queues use PIPE_KEYS_JOBS_COMBINE and PIPE_KEYS_JOBS_SPLIT). */
#define PIPE_WAKE_FILTERED     "filtered/"      /* the filter wrote objects */
#define PIPE_WAKE_COMBINE_DONE "state/combine/" /* a combine job went: markers, or a drop */

#define PIPE_WAKE_MARKS 3 /* marks per watch */

/* pipe_wake_new — the process's signals on the lease backend ls (borrowed;
 * the stage's handle), or, when ls is NULL (a stage that takes no leases,
 * such as the filter), on a handle opened from url at the first bump and
 * owned by the result. idle_list_ms: the longest a watch goes without
 * listing; 0 makes every watch list on every poll. reg (borrowed) gets
 * sluice_wake_bumps_total. Free with pipe_wake_free. */
struct pipe_wake *pipe_wake_new(struct pipe_leases *ls, const char *url, int64_t idle_list_ms,
                                struct pipe_metrics *reg);

/* pipe_wake_free — sends what is owed (one try), stops the sender. NULL
 * is a no-op. Free every watch first. */
void pipe_wake_free(struct pipe_wake *w);

/* pipe_wake_bump — call after writing work under name (any thread). It
 * does not wait for the backend: a thread of w's sends the bump at once,
 * one for any number asked for meanwhile, and tries again after a failure
 * (counted, logged) until it goes through, so a slow or unreachable
 * backend never delays a write, and a signal is only lost with the process
 * (then the consumers find the work at their next idle listing).
 * pipe_wake_free tries once more to send what is still owed. NULL w is a
 * no-op. */
void pipe_wake_bump(struct pipe_wake *w, const char *name);

/* pipe_wake_watch_new — a watch over the generations names[0..n) (n at
 * most PIPE_LEASE_GENERATIONS_MAX; the strings are borrowed and must outlive
 * it); what labels its sluice_lists_skipped_total. Every mark starts due.
 * Free with pipe_wake_watch_free. */
struct pipe_wake_watch *pipe_wake_watch_new(struct pipe_wake *w, const char *what,
                                            const char *const *names, size_t n);

/* pipe_wake_watch_free — NULL is a no-op. */
void pipe_wake_watch_free(struct pipe_wake_watch *ww);

/* pipe_wake_watch_read — reads the generations now. Call it once per poll,
 * before the listings it decides on. */
void pipe_wake_watch_read(struct pipe_wake_watch *ww);

/* pipe_wake_watch_due — whether a listing for mark is worth making: yes
 * when idle_list is 0, the last read failed, mark was never set, a
 * generation differs from what was read before mark's last listing, or
 * idle_list has passed since that listing. */
bool pipe_wake_watch_due(const struct pipe_wake_watch *ww, int mark);

/* pipe_wake_watch_listed — the listing for mark, made after the last read,
 * succeeded: what that read saw is now known to be listed. */
void pipe_wake_watch_listed(struct pipe_wake_watch *ww, int mark);

/* pipe_wake_watch_forget — mark is due again (the consumer knows of work a
 * generation would not show, or dropped what it had listed). */
void pipe_wake_watch_forget(struct pipe_wake_watch *ww, int mark);

/* pipe_wake_watch_skipped — counts a poll that made no listing. */
void pipe_wake_watch_skipped(struct pipe_wake_watch *ww);

#endif
