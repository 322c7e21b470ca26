/* http_canned — a loopback HTTP server on a thread, for unit tests and fuzz
 * targets that need an endpoint to answer: every request (its head is read
 * and dropped) gets the status and body set last, then the connection is
 * closed. It counts the requests it answered. */
#ifndef SLUICE_HTTP_CANNED_H
#define SLUICE_HTTP_CANNED_H

#include <stddef.h>

struct tu_canned;

/* tu_canned_start — listens on 127.0.0.1 (an ephemeral port) and serves
 * "200" with an empty body until told otherwise; NULL if that fails. */
struct tu_canned *tu_canned_start(void);

/* tu_canned_url — "http://127.0.0.1:PORT" + path into out (size n). */
void tu_canned_url(const struct tu_canned *c, const char *path, char *out, size_t n);

/* tu_canned_set — what the next requests get (body copied) and resets the
 * count of requests answered. */
void tu_canned_set(struct tu_canned *c, int status, const void *body, size_t len);

/* tu_canned_served — requests answered since the last tu_canned_set. */
unsigned tu_canned_served(struct tu_canned *c);

/* tu_canned_stop — stops the thread and frees c; NULL is a no-op. */
void tu_canned_stop(struct tu_canned *c);

#endif
