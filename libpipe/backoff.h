/* backoff — the one retry wait of sluice: capped exponential backoff with
 * full jitter (a uniform wait in [0, min(cap, base * 2^attempt)]), drawn
 * from a generator seeded per process and per handle, so that a fleet of
 * processes that failed together does not retry together. The caller owns
 * struct pipe_backoff (init, then next/reset); one handle per thread. */
#ifndef PIPE_BACKOFF_H
#define PIPE_BACKOFF_H

#include <stdint.h>

struct pipe_backoff {
    int64_t base_ms; /* ceiling of the first wait */
    int64_t cap_ms;  /* largest ceiling */
    int attempt;     /* waits drawn since the last reset */
    uint64_t rng;    /* xorshift64* state, never 0 */
};

/* pipe_backoff_init — a backoff whose ceilings run base_ms, 2 x base_ms, ...
 * up to cap_ms (both at least 1), seeded from the kernel's random source
 * (or, failing that, the clock, the pid and the handle's address). */
void pipe_backoff_init(struct pipe_backoff *b, int64_t base_ms, int64_t cap_ms);

/* pipe_backoff_next — the next wait in ms, uniform in [0, ceiling], and
 * doubles the ceiling for the wait after it (up to cap_ms). */
int64_t pipe_backoff_next(struct pipe_backoff *b);

/* pipe_backoff_reset — after a success: the next wait is drawn from base_ms
 * again. */
void pipe_backoff_reset(struct pipe_backoff *b);

/* pipe_backoff_sleep — sleeps ms milliseconds on this thread, the whole of
 * them even when signals interrupt the sleep. */
void pipe_backoff_sleep(int64_t ms);

#endif
