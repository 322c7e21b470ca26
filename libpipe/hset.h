/* hset — the one open-addressing hash set of sluice: items (caller-owned
 * pointers) found by a 64-bit hash of their key, linear probing over a
 * power-of-two table kept at most half full, grown by doubling. Keys are
 * hashed with XXH3 seeded per process (pipe_mem_hash_seed), so clients
 * cannot craft keys that share a probe sequence; a probe run longer than
 * PIPE_HSET_MAX_PROBE grows the table, so a lookup visits a bounded number
 * of slots. The set never owns its items; iteration order means nothing. */
#ifndef PIPE_HSET_H
#define PIPE_HSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>

#include "libpipe/mem.h"

/* Slots past its home an item may sit. At most half full, linear probing
 * with a good hash still makes a few runs of 33-48 slots in a table of a
 * million: at 32, 6 of 20 seeds doubled a 494,913-key set to 32 MiB for
 * one long run; at 64 none of 20 did (500k, 1M and 4M keys), and a lookup
 * still reads at most ~1 KiB. */
#define PIPE_HSET_MAX_PROBE 64
#define PIPE_HSET_MAX_CAP   ((size_t)1 << 30) /* slots; past it an add fails */

/* pipe_hset_eq_fn — does item have the key (key, len)? */
typedef bool (*pipe_hset_eq_fn)(const void *item, const void *key, size_t len);

struct pipe_hset_slot {
    uint64_t hash;
    void *item; /* NULL: empty */
};

/* Caller-provided; pipe_hset_init before use, pipe_hset_cleanup after. */
struct pipe_hset {
    struct pipe_hset_slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t count;
};

/* pipe_hset_init — an empty set (allocates nothing). */
void pipe_hset_init(struct pipe_hset *h);

/* pipe_hset_cleanup — frees the table (not the items); h is empty after. */
void pipe_hset_cleanup(struct pipe_hset *h);

/* pipe_hset_hash — the seeded XXH3-64 of len bytes at key: the hash to pass
 * with that key to every other call. Inline, as pipe_hset_find. */
static inline uint64_t pipe_hset_hash(const void *key, size_t len)
{
    return XXH3_64bits_withSeed(key, len, pipe_mem_hash_seed());
}

/* pipe_hset_add — adds item (not NULL) under hash; the caller makes sure
 * no item with an equal key is in the set (pipe_hset_find first). Returns 0,
 * or PIPE_ETOOBIG when no table up to PIPE_HSET_MAX_CAP slots and 1/64
 * full keeps every item within PIPE_HSET_MAX_PROBE of home (keys whose
 * hashes agree: the set is unchanged). */
int pipe_hset_add(struct pipe_hset *h, uint64_t hash, void *item);

/* pipe_hset_count — how many items h holds. */
size_t pipe_hset_count(const struct pipe_hset *h);

/* pipe_hset_find — the item whose key is (key, len) and hash is hash
 * (pipe_hset_hash of the key), compared by eq; NULL when there is none.
 * Inline, so that the compiler inlines eq too: this is the per-event path
 * (a call through a pointer cost a third of a lookup in bench_hset). */
static inline void *pipe_hset_find(const struct pipe_hset *h, uint64_t hash, const void *key,
                                   size_t len, pipe_hset_eq_fn eq)
{
    if (h->count == 0)
        return NULL;
    size_t mask = h->cap - 1;
    for (size_t d = 0, i = hash & mask; d <= PIPE_HSET_MAX_PROBE; d++, i = (i + 1) & mask) {
        const struct pipe_hset_slot *s = &h->slots[i];
        if (s->item == NULL)
            return NULL;
        if (s->hash == hash && eq(s->item, key, len))
            return s->item;
    }
    return NULL;
}

#endif
