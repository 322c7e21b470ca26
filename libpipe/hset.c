/* hset — the open-addressing hash set declared in hset.h: linear probing,
 * at most half full, every item within PIPE_HSET_MAX_PROBE slots of its
 * home so that a lookup's cost is bounded whatever the keys. */
#include "libpipe/err.h"
#include "libpipe/hset.h"
#include "libpipe/mem.h"

#define HSET_MIN_CAP 16
#define HSET_SPARSE  64 /* load (1/64) past which growing is given up */

void pipe_hset_init(struct pipe_hset *h)
{
    *h = (struct pipe_hset){NULL, 0, 0};
}

void pipe_hset_cleanup(struct pipe_hset *h)
{
    pipe_free(h->slots);
    pipe_hset_init(h);
}

size_t pipe_hset_count(const struct pipe_hset *h)
{
    return h->count;
}

/* place — puts (hash, item) in the first free slot of its run; false when
 * that slot is more than PIPE_HSET_MAX_PROBE past home (nothing written). */
static bool place(struct pipe_hset_slot *slots, size_t cap, uint64_t hash, void *item)
{
    size_t mask = cap - 1;
    for (size_t d = 0, i = hash & mask; d <= PIPE_HSET_MAX_PROBE; d++, i = (i + 1) & mask) {
        if (slots[i].item == NULL) {
            slots[i] = (struct pipe_hset_slot){hash, item};
            return true;
        }
    }
    return false;
}

/* rehash — h's items in a new table of cap slots; false (h unchanged) when
 * one of them would sit too far from home there. */
static bool rehash(struct pipe_hset *h, size_t cap)
{
    struct pipe_hset_slot *slots = pipe_calloc(cap, sizeof *slots);
    for (size_t i = 0; i < h->cap; i++) {
        if (h->slots[i].item && !place(slots, cap, h->slots[i].hash, h->slots[i].item)) {
            pipe_free(slots);
            return false;
        }
    }
    pipe_free(h->slots);
    h->slots = slots;
    h->cap = cap;
    return true;
}

int pipe_hset_add(struct pipe_hset *h, uint64_t hash, void *item)
{
    /* Grow by doubling: to stay at most half full, and while the probe run
     * of the new item (or of one rehashed) would be too long. */
    size_t cap = h->cap ? h->cap : HSET_MIN_CAP;
    while (cap < 2 * (h->count + 1))
        cap *= 2;
    for (;;) {
        if (cap != h->cap && !rehash(h, cap)) {
            /* keeps the old table: an item did not fit within its bound */
        } else if (place(h->slots, h->cap, hash, item)) {
            h->count++;
            return 0;
        }
        /* At 1/64 full a run past the bound means hashes that agree in
         * every bit doubling can reach: growing further cannot help. */
        if (cap >= PIPE_HSET_MAX_CAP || cap / HSET_SPARSE > h->count + 1)
            return PIPE_ETOOBIG;
        cap = (h->cap > cap ? h->cap : cap) * 2;
    }
}
