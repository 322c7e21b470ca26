/* redis — one connection to a Redis server, shared by the threads of a
 * process, for the Redis lease and de-duplication backends.
 *
 * The connection is made lazily and remade after any failure: a command that
 * finds the connection broken reconnects once before it is sent, so a Redis
 * restart costs the caller one PIPE_EUNAVAIL at most (for the command whose
 * reply was lost; it is never resent behind the caller's back, since it may
 * not be idempotent). Commands are serialised by a mutex; a pipeline sends
 * all its commands before reading any reply, so it costs one round trip. */
#ifndef PIPE_REDIS_H
#define PIPE_REDIS_H

#include <hiredis/hiredis.h>
#include <stddef.h>

struct pipe_redis; /* opaque: pipe_redis_open / pipe_redis_free */

/* One command in argv form; argvlen gives each argument's length, so
 * arguments may be binary. */
struct pipe_redis_cmd {
    int argc;
    const char **argv;
    const size_t *argvlen;
};

/* pipe_redis_open — parses url and returns a handle in *out (free with
 * pipe_redis_free). Accepted forms:
 *   redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?OPTIONS]
 *   unix:///PATH/TO/SOCKET[?db=DB&OPTIONS]
 * HOST may be an IPv6 address in brackets; PORT defaults to 6379, DB to 0;
 * USER and PASSWORD may be %-encoded (AUTH is sent after each connect, then
 * SELECT DB). OPTIONS, joined by '&':
 *   timeout=MS   bounds connecting and every reply (1..600000, default 5000)
 *   prefix=P     key prefix for the caller's keys (printable ASCII without
 *                space, '&', '#', '?', at most 64 bytes; default "sluice:")
 * Any other option is an error. The first connection is tried at once so
 * that a wrong address is reported at start: returns 0, PIPE_ECONFIG for a
 * malformed URL or when the server refuses AUTH or SELECT, PIPE_EUNAVAIL
 * when it cannot be reached (no handle then), PIPE_EINVAL for NULL. */
int pipe_redis_open(const char *url, struct pipe_redis **out);

/* pipe_redis_free — closes the connection. NULL is a no-op. */
void pipe_redis_free(struct pipe_redis *r);

/* pipe_redis_run — sends cmds[0..n) as one pipeline and stores their replies
 * in replies[0..n) (the caller frees each with freeReplyObject). A reply of
 * type REDIS_REPLY_ERROR is a reply, not a failure: the caller inspects it.
 * Thread-safe; callers on one handle take turns. Returns 0, PIPE_EINVAL for
 * NULL arguments or n == 0, PIPE_EUNAVAIL when the connection failed or a
 * reply took longer than the timeout (replies[] is then left untouched;
 * whether the commands ran is unknown; the connection is dropped and the
 * next call makes a new one), with detail in pipe_redis_last_error(). */
int pipe_redis_run(struct pipe_redis *r, const struct pipe_redis_cmd *cmds, size_t n,
                   redisReply **replies);

/* pipe_redis_command — one command, printf-style as redisCommand takes it
 * ("SET %b %s", ptr, len, str). *reply as for pipe_redis_run. */
int pipe_redis_command(struct pipe_redis *r, redisReply **reply, const char *fmt, ...);

/* pipe_redis_prefix — the key prefix from the URL (default "sluice:"),
 * to put in front of every key the caller makes. Owned by r. */
const char *pipe_redis_prefix(const struct pipe_redis *r);

/* pipe_redis_url — the URL it was opened with, for logs (a password in it,
 * if any, replaced by REDACTED). Owned by r. */
const char *pipe_redis_url(const struct pipe_redis *r);

/* pipe_redis_last_error — the calling thread's latest failure on any handle
 * ("redis 127.0.0.1:6379: connect: Connection refused"); "" if none. */
const char *pipe_redis_last_error(void);

#endif
