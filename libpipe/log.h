/* log — one machine-parseable line per record, on stderr.
 *
 * Lines are logfmt: `ts=... level=warn comp=filter msg="..." key=value ...`.
 * Each call site is rate limited (a burst, then a steady rate per second);
 * what was suppressed is counted and reported as `suppressed=N` on the next
 * line that site emits, so a flood of identical errors costs one line per
 * second instead of one per event. */
#ifndef PIPE_LOG_H
#define PIPE_LOG_H

enum pipe_log_level {
    PIPE_LOG_DEBUG = 0,
    PIPE_LOG_INFO = 1,
    PIPE_LOG_WARN = 2,
    PIPE_LOG_ERROR = 3,
    PIPE_LOG_OFF = 4,
};

/* pipe_log_init — sets the component name (copied; e.g. "filter") and the
 * lowest level that is written. Safe to call again. */
void pipe_log_init(const char *component, enum pipe_log_level min);
/* pipe_log_level_parse — "debug", "info", "warn", "error", "off"; -1 if unknown. */
int pipe_log_level_parse(const char *name);
/* pipe_log_set_fd — where lines go (default 2). For tests. */
void pipe_log_set_fd(int fd);

/* pipe__log — use the macros. msg is a constant human message (quoted for
 * you); kv, if not NULL, is a printf format of extra `key=value` pairs whose
 * values the caller quotes when they may hold spaces. */
void pipe__log(enum pipe_log_level level, const char *file, int line, const char *msg,
               const char *kv, ...) __attribute__((format(printf, 5, 6)));

#define pipe_log_debug(msg, ...) pipe__log(PIPE_LOG_DEBUG, __FILE__, __LINE__, msg, __VA_ARGS__)
#define pipe_log_info(msg, ...)  pipe__log(PIPE_LOG_INFO, __FILE__, __LINE__, msg, __VA_ARGS__)
#define pipe_log_warn(msg, ...)  pipe__log(PIPE_LOG_WARN, __FILE__, __LINE__, msg, __VA_ARGS__)
#define pipe_log_error(msg, ...) pipe__log(PIPE_LOG_ERROR, __FILE__, __LINE__, msg, __VA_ARGS__)

#endif
