/*
 * state_cache.h - the entry table behind the store's write-back cache.
 * Internal to host/state; the store (state_store.c) decides what the
 * entries mean.
 *
 * A fixed pool of `max` entries, each holding one RocksDB key of one state
 * (state id + key bytes) and its value, stamp and flags, indexed by an
 * open-addressing hash table (linear probing, backward-shift deletion; the
 * caller supplies the 64-bit hashes). Entries whose key starts with a
 * "group" prefix (map state: the record key, plen bytes) are also linked
 * into a list per (state id, prefix), so that one key's cached map entries
 * can be found without a scan. Eviction candidates come from a clock hand
 * over the pool with one reference bit per entry.
 *
 * Laid out for the lookup: a table slot holds the entry index and 32 bits
 * of the hash, so a probe touches no entry whose hash differs; an entry is
 * one 64-byte cache line, and its key and value are kept inside it when
 * they fit in STATE_CACHE_INLINE bytes (otherwise in a heap buffer, which is
 * kept when the entry is freed and reused by the next one that needs it).
 * The group links live in a separate array, touched by map state only.
 *
 * Entry indexes are stable while the entry lives; the key and value bytes
 * may move when the value changes size. Not thread-safe.
 */
#ifndef WEIR_HOST_STATE_CACHE_H
#define WEIR_HOST_STATE_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define STATE_CACHE_NONE UINT32_MAX

/* Key + value bytes an entry holds without a heap buffer. */
#define STATE_CACHE_INLINE 31

/* Entry flags. */
#define SC_USED         0x01u /* the pool slot holds an entry */
#define SC_DIRTY        0x02u /* differs from RocksDB */
#define SC_ABSENT       0x04u /* a tombstone or a cached miss */
#define SC_REF          0x08u /* referenced since the clock hand passed */
#define SC_DISK_KNOWN   0x10u /* whether RocksDB has the key is known */
#define SC_DISK_PRESENT 0x20u /* ... and RocksDB has it */
/* 0x40 and 0x80 are the cache's own (state_cache.c). */

/* One entry: 64 bytes, one cache line when the pool is aligned. */
typedef struct state_cache_ent {
    int64_t stamp;  /* expiry stamp of the value */
    int64_t idx_lo; /* an index entry exists at a time <= idx_lo */
    uint32_t hlo;   /* low 32 bits of the hash of (sid, key) */
    uint32_t klen, vlen;
    uint16_t sid, plen;
    uint8_t flags;
    /* The key and value bytes when they fit; otherwise (flag SC_HEAP in
     * state_cache.c) bytes 7..14 hold the heap buffer's address and bytes
     * 15..18 its capacity. Reach them through state_cache_key(). */
    char inl[STATE_CACHE_INLINE];
} state_cache_ent;

/* An entry's links in its group list, and its group hash's low 32 bits. */
typedef struct state_cache_link {
    uint32_t glo;          /* 0 when plen == 0 */
    uint32_t gnext, gprev; /* STATE_CACHE_NONE-terminated; gnext is also
                            * the free list */
} state_cache_link;

typedef struct state_cache {
    state_cache_ent *ents;   /* max entries, 64-byte aligned */
    state_cache_link *links; /* max entries */
    uint32_t max, used;
    uint64_t *slots;  /* hash low 32 bits << 32 | entry index + 1; 0 = empty */
    uint64_t *gslots; /* group heads, same encoding with the group hash */
    uint32_t mask;    /* table size - 1 (both tables) */
    uint32_t free_head; /* free list through links[].gnext */
    uint32_t hand;      /* clock hand */
    uint64_t bytes;     /* key + value bytes held */
} state_cache;

#define SC_HEAP_FLAG 0x80u /* the bytes are in a heap buffer */

/* The key bytes of entry e (klen of them), followed by its value. */
static inline char *state_cache_key(state_cache_ent *e)
{
    if (e->flags & SC_HEAP_FLAG) {
        char *p;
        memcpy(&p, e->inl + 7, sizeof p);
        return p;
    }
    return e->inl;
}

/* Creates a cache of `max` (> 0) entries; NULL when out of memory. */
state_cache *state_cache_new(uint32_t max);
void state_cache_free(state_cache *c);

static inline state_cache_ent *state_cache_at(state_cache *c, uint32_t i)
{
    return &c->ents[i];
}
static inline char *state_cache_val(state_cache_ent *e)
{
    return state_cache_key(e) + e->klen;
}
/* The next entry of i's group, or STATE_CACHE_NONE. */
static inline uint32_t state_cache_next(const state_cache *c, uint32_t i)
{
    return c->links[i].gnext;
}
static inline int state_cache_full(const state_cache *c)
{
    return c->used >= c->max;
}

/* Prefetch hints for a lookup with hash h to come: the first brings its
 * home slot towards the CPU; the second, once that slot is near, the entry
 * it names (when its tag matches). Neither changes anything. */
static inline void state_cache_prefetch(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
    /* GCC 12 drops __builtin_prefetch() of an address loaded from a table
     * reached through a struct (state_cache_prefetch_ent); a volatile asm
     * stays. The operand is an address only: nothing is dereferenced. */
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p);
#endif
}
static inline void state_cache_prefetch_slot(const state_cache *c, uint64_t h)
{
    state_cache_prefetch(&c->slots[(uint32_t)h & c->mask]);
}
static inline void state_cache_prefetch_ent(const state_cache *c, uint64_t h)
{
    uint64_t slot = c->slots[(uint32_t)h & c->mask];
    if (slot && (uint32_t)(slot >> 32) == (uint32_t)h)
        state_cache_prefetch(&c->ents[(uint32_t)slot - 1]);
}

/* The entry for (sid, key) with hash h, or STATE_CACHE_NONE. */
uint32_t state_cache_find(const state_cache *c, uint16_t sid, const void *key,
                          uint32_t klen, uint64_t h);

/*
 * Adds an entry for (sid, key), which must not be present, with an empty
 * value, flags SC_USED, stamp and idx_lo INT64_MAX. When plen > 0 the entry
 * joins the group (sid, key[0..plen)) whose hash is gh. The cache must not
 * be full. Returns the index, or STATE_CACHE_NONE when out of memory.
 */
uint32_t state_cache_insert(state_cache *c, uint16_t sid, const void *key,
                            uint32_t klen, uint64_t h, uint16_t plen,
                            uint64_t gh);

/* Replaces the value of entry i; -1 when out of memory (value unchanged). */
int state_cache_set_value(state_cache *c, uint32_t i, const void *v,
                          size_t len);
/* Appends to the value of entry i; -1 when out of memory. */
int state_cache_append(state_cache *c, uint32_t i, const void *v, size_t len);

/* Removes entry i (whatever its flags). */
void state_cache_remove(state_cache *c, uint32_t i);

/* Picks up to n eviction candidates with the clock (entries whose reference
 * bit is clear; the hand clears the bits it passes). Returns how many. */
size_t state_cache_victims(state_cache *c, uint32_t *out, size_t n);

/*
 * Orders the entry indexes idx[0..n) by state id, then by key bytes
 * (memcmp order, a shorter key before its extensions), the order of
 * RocksDB's default comparator within a column family: written in this
 * order, each memtable insert lands next to the previous one. Only
 * performance depends on it: when the scratch memory cannot be had the
 * order is left as it is.
 */
void state_cache_sort(state_cache *c, uint32_t *idx, size_t n);

/* The first entry of group (sid, prefix) with hash gh, or STATE_CACHE_NONE;
 * follow state_cache_next() for the others. */
uint32_t state_cache_group(const state_cache *c, uint16_t sid,
                           const void *prefix, uint16_t plen, uint64_t gh);

#endif
