/* clock — wall and monotonic time, RFC 3339 formatting and parsing, and the
 * dt=/hr= partition of a timestamp. All times are UTC milliseconds since the
 * Unix epoch. */
#ifndef PIPE_CLOCK_H
#define PIPE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define PIPE_CLOCK_RFC3339_LEN 24 /* "2026-11-22T17:05:49.123Z" */

/* Durations in milliseconds, the unit of every time in sluice: the one
 * definition each stage and module uses (int64_t, so products stay exact). */
#define PIPE_SEC_MS  INT64_C(1000)
#define PIPE_MIN_MS  (60 * PIPE_SEC_MS)
#define PIPE_HOUR_MS (60 * PIPE_MIN_MS)
#define PIPE_DAY_MS  (24 * PIPE_HOUR_MS)

/* pipe_clock_now_ms — wall-clock time. */
int64_t pipe_clock_now_ms(void);
/* pipe_clock_mono_ms — monotonic time, for timeouts and durations. */
int64_t pipe_clock_mono_ms(void);
/* pipe_clock_mono_deadline — the CLOCK_MONOTONIC time ms from now, for
 * pthread_cond_timedwait on a condition variable on that clock. */
struct timespec;
void pipe_clock_mono_deadline(int64_t ms, struct timespec *out);
/* pipe_clock_now_us — wall-clock time in microseconds. */
int64_t pipe_clock_now_us(void);
/* pipe_clock_format_rfc3339 — writes "YYYY-MM-DDTHH:MM:SS.mmmZ" and a NUL
 * into out (PIPE_CLOCK_RFC3339_LEN + 1 bytes); returns the length. */
size_t pipe_clock_format_rfc3339(int64_t ms, char *out);
/* pipe_clock_parse_rfc3339 — parses an RFC 3339 date-time (fractional
 * seconds and a Z or ±HH:MM offset; a space or 't' for T accepted) of
 * exactly n bytes. Years 1970..9999. 0 or PIPE_EINVAL. */
int pipe_clock_parse_rfc3339(const char *s, size_t n, int64_t *ms);
/* pipe_clock_parse_time — for command lines: RFC 3339, "YYYY-MM-DD",
 * "YYYY-MM-DDTHH", epoch milliseconds, or "now", "-2h", "-30m", "-7d"
 * relative to now. 0 or PIPE_EINVAL. */
int pipe_clock_parse_time(const char *s, int64_t now_ms, int64_t *ms);
/* pipe_clock_partition — "YYYY-MM-DD" into dt (11 bytes) and "HH" into hr
 * (3 bytes) for the hour containing ms. */
void pipe_clock_partition(int64_t ms, char *dt, char *hr);
/* pipe_clock_hour_floor — the start of the UTC hour containing ms (also
 * before 1970: rounds toward minus infinity). */
int64_t pipe_clock_hour_floor(int64_t ms);
/* pipe_clock_from_civil — epoch ms of a UTC civil time (no range checks). */
int64_t pipe_clock_from_civil(int y, int mon, int d, int h, int mi, int s, int msec);

#endif
