/* backoff — capped exponential backoff with full jitter from a per-handle
 * seeded generator (see backoff.h). */
#include "libpipe/backoff.h"

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "libpipe/clock.h"

/* Ceilings double at most this many times: base << 30 passes any cap. */
#define BACKOFF_MAX_SHIFT 30

static uint64_t seed(const struct pipe_backoff *b)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s)
        s = ((uint64_t)pipe_clock_mono_ms() << 20) ^ ((uint64_t)getpid() << 40) ^
            (uint64_t)(uintptr_t)b;
    /* splitmix64's finaliser spreads a weak seed over every bit. */
    s += 0x9e3779b97f4a7c15u;
    s = (s ^ (s >> 30)) * 0xbf58476d1ce4e5b9u;
    s = (s ^ (s >> 27)) * 0x94d049bb133111ebu;
    s ^= s >> 31;
    return s ? s : 0x9e3779b97f4a7c15u;
}

void pipe_backoff_init(struct pipe_backoff *b, int64_t base_ms, int64_t cap_ms)
{
    b->base_ms = base_ms > 0 ? base_ms : 1;
    b->cap_ms = cap_ms > b->base_ms ? cap_ms : b->base_ms;
    b->attempt = 0;
    b->rng = seed(b);
}

static uint64_t draw(struct pipe_backoff *b)
{
    uint64_t x = b->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b->rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

int64_t pipe_backoff_next(struct pipe_backoff *b)
{
    int shift = b->attempt < BACKOFF_MAX_SHIFT ? b->attempt : BACKOFF_MAX_SHIFT;
    int64_t ceiling = b->cap_ms >> shift >= b->base_ms ? b->base_ms << shift : b->cap_ms;
    if (b->attempt < BACKOFF_MAX_SHIFT)
        b->attempt++;
    return (int64_t)(draw(b) % (uint64_t)(ceiling + 1));
}

void pipe_backoff_reset(struct pipe_backoff *b)
{
    b->attempt = 0;
}

void pipe_backoff_sleep(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}
