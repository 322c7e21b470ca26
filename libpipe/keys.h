/* keys — the object key layout of SPEC section 2 in one place. Every module
 * that names or lists objects goes through these builders and the parser, so
 * hostile event names and odd times are checked once, here. All times are UTC
 * milliseconds; builders replace the contents of their output buffer. */
#ifndef PIPE_KEYS_H
#define PIPE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libpipe/buf.h"
#include "libpipe/event.h"

#define PIPE_KEYS_SUFFIX       ".ndjson.zst"
#define PIPE_KEYS_NAME_MAX     200                 /* longest <name> / <job-id> component */
#define PIPE_KEYS_EVENT_MAX    PIPE_EVENT_TYPE_MAX /* longest event type */
#define PIPE_KEYS_INSTANCE_MAX 64                  /* longest filter instance id */

/* Builders. Each replaces out's contents with the key and returns 0;
 * PIPE_EINVAL (out unchanged) for a time outside years 1970..9999, an invalid
 * name/job id (pipe_keys_name_valid) or event type; PIPE_ETOOBIG if the key
 * does not fit under out->max. */

/* pipe_keys_filtered — "filtered/dt=YYYY-MM-DD/hr=HH/<name>.ndjson.zst" for
 * the hour containing time_ms. */
int pipe_keys_filtered(struct pipe_buf *out, int64_t time_ms, const char *name);
/* pipe_keys_rejected — "rejected/dt=YYYY-MM-DD/hr=HH/<name>.ndjson.zst". */
int pipe_keys_rejected(struct pipe_buf *out, int64_t time_ms, const char *name);
/* pipe_keys_combined — "combined/dt=YYYY-MM-DD/hr=HH/<job-id>.ndjson.zst". */
int pipe_keys_combined(struct pipe_buf *out, int64_t time_ms, const char *job_id);
/* pipe_keys_split — "split/<event>/dt=YYYY-MM-DD/hr=HH/<job-id>.ndjson.zst". */
int pipe_keys_split(struct pipe_buf *out, const char *event, int64_t time_ms, const char *job_id);
/* pipe_keys_job — "jobs/combine/<job-id>.json". */
int pipe_keys_job(struct pipe_buf *out, const char *job_id);
/* pipe_keys_manifest — "manifests/<kind>/<job-id>.json"; kind is "combined"
 * or "split" (anything else: PIPE_EINVAL). */
int pipe_keys_manifest(struct pipe_buf *out, const char *kind, const char *job_id);

/* pipe_keys_split_job — "jobs/split/<job-id>.json": a combined object that
 * waits to be split (written by the combiner when it commits). */
int pipe_keys_split_job(struct pipe_buf *out, const char *job_id);

/* pipe_keys_combine_done — "state/combine/dt=YYYY-MM-DD/hr=HH/<name>": the
 * durable record that filtered/dt=.../hr=.../<name>.ndjson.zst is combined
 * (content: the job id). name is the filtered object's name without suffix. */
int pipe_keys_combine_done(struct pipe_buf *out, int64_t hour_ms, const char *name);

/* pipe_keys_dedup_index — "state/dedup/dt=YYYY-MM-DD/hr=HH/<job-id>.idx": the
 * de-duplication keys one split job claimed, for the hour of hour_ms. */
int pipe_keys_dedup_index(struct pipe_buf *out, int64_t hour_ms, const char *job_id);

/* The job queues and the leases that guard them: names and default TTLs
 * live here, once. A combine or split job is run under the lease
 * "<kind>/<job-id>"; one dispatcher is active, under PIPE_KEYS_LEASE_DISPATCHER. */
#define PIPE_KEYS_JOBS_COMBINE         "jobs/combine/"
#define PIPE_KEYS_JOBS_SPLIT           "jobs/split/"
#define PIPE_KEYS_LEASE_DISPATCHER     "dispatcher"
#define PIPE_KEYS_JOB_LEASE_TTL        "60s" /* a job's lease, option default */
#define PIPE_KEYS_JOB_LEASE_TTL_MS     60000 /* the same, for tools without the option */
#define PIPE_KEYS_DISPATCHER_LEASE_TTL "10s"

/* pipe_keys_job_lease — the lease name of the job job_id queued under dir
 * (PIPE_KEYS_JOBS_COMBINE gives "combine/<job-id>", PIPE_KEYS_JOBS_SPLIT
 * "split/<job-id>"). PIPE_EINVAL for another dir or a bad id. */
int pipe_keys_job_lease(struct pipe_buf *out, const char *dir, const char *job_id);

/* pipe_keys_job_id — "g<generation>-YYYYMMDDHH-<16 hex of hash>": a job id
 * naming the hour of its inputs and a hash of them (so the same inputs give
 * the same id). */
int pipe_keys_job_id(struct pipe_buf *out, unsigned generation, int64_t hour_ms, uint64_t hash);

/* pipe_keys_job_hour — the hour named by a job id made by pipe_keys_job_id;
 * false (hour_ms untouched) when id is not such an id. */
bool pipe_keys_job_hour(const char *id, int64_t *hour_ms);

/* pipe_keys_job_of — the job id of "<dir><id>.json" (e.g. dir
 * "manifests/combined/") into id, which holds PIPE_KEYS_NAME_MAX + 1 bytes;
 * false when key is not of that form or the id is not a valid name. */
bool pipe_keys_job_of(const char *key, const char *dir, char *id);

/* pipe_keys_hour_prefix — "<prefix>/dt=YYYY-MM-DD/hr=HH/" for listing one
 * hour partition. prefix is "filtered", "rejected", "combined", "state/combine", "state/dedup" or
 * "split/<event>". */
int pipe_keys_hour_prefix(struct pipe_buf *out, const char *prefix, int64_t hour_ms);

/* pipe_keys_http_name — "g<generation>-<instance>-<start_ms, 13 digits>-<seq,
 * 8 digits>": the filter's names for objects from live traffic, sortable by
 * time within one instance run (seq past 99,999,999 grows a digit).
 * PIPE_EINVAL for an invalid instance or a negative start_ms. */
int pipe_keys_http_name(struct pipe_buf *out, unsigned generation, const char *instance,
                        int64_t start_ms, uint64_t seq);

/* pipe_keys_raw_name — "g<generation>-raw-<16 hex digits>": XXH3-64 (seed 0)
 * of raw_key, a NUL byte and etag, so the name of a landed object's output is
 * a pure function of which object version it came from. */
int pipe_keys_raw_name(struct pipe_buf *out, unsigned generation, const char *raw_key,
                       const char *etag);

/* The parts of a filtered/, rejected/, combined/ or split/ key. event is ""
 * except for split/; name is without the suffix; hour_ms is the start of the
 * hour. */
struct pipe_key_parts {
    char prefix[16];
    char event[PIPE_KEYS_EVENT_MAX + 1];
    char dt[11];
    char hr[3];
    char name[256];
    int64_t hour_ms;
};

/* pipe_keys_parse — splits a data key into its parts, checking every part
 * (real calendar date, hour 00..23, valid event and name, the suffix).
 * 0 or PIPE_EINVAL (out unchanged). */
int pipe_keys_parse(const char *key, struct pipe_key_parts *out);

/* pipe_keys_event_valid — pipe_event_type_valid (libpipe/event.h), the one
 * event-type rule: never a path separator, never "." or "..", never empty.
 * This is the guard that keeps hostile event names from becoming paths. */
bool pipe_keys_event_valid(const char *event, size_t len);

/* pipe_keys_name_valid — a <name> or <job-id> component:
 * ^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$. */
bool pipe_keys_name_valid(const char *name);

/* pipe_keys_instance_valid — ^[A-Za-z0-9_.-]{1,64}$ (a NULL is invalid). */
bool pipe_keys_instance_valid(const char *s);

#endif
