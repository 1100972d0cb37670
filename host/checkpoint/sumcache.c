/*
 * sumcache.c - the checksum cache of immutable checkpoint files.
 *
 * An entry is keyed by (st_dev, st_ino, size, mtime in ns, hash of the base
 * name). RocksDB never rewrites an SST, and a checkpoint hard-links it, so
 * the same inode shows up in checkpoint after checkpoint with the same
 * content. The base name (RocksDB's file number) is part of the key so that
 * a reused inode number alone cannot alias an old entry: that would also
 * take the same file number, size and mtime.
 *
 * Storage: a dense array of entries plus an open-addressing index (linear
 * probing) of array positions. Pruning compacts the array and rebuilds the
 * index, O(entries), once per checkpoint.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "checkpoint/fsutil.h"
#include "checkpoint/manifest.h"

#include "weir/weir.h"

typedef struct ckpt_sum_key {
    uint64_t dev, ino, size;
    int64_t mtime_ns;
    uint64_t name_hash;
} ckpt_sum_key;

typedef struct ckpt_sum_entry {
    ckpt_sum_key key;
    uint64_t xxh3;
    uint64_t seen; /* pass that last looked it up */
} ckpt_sum_entry;

struct ckpt_sum_cache {
    ckpt_sum_entry *v;
    size_t n, cap;
    uint32_t *slots; /* position + 1 in v; 0 = empty */
    size_t n_slots;  /* a power of two, >= 2 n */
    uint64_t pass;
    uint64_t hits, misses;
};

ckpt_sum_cache *ckpt_sum_cache_new(void)
{
    return calloc(1, sizeof(ckpt_sum_cache));
}

void ckpt_sum_cache_free(ckpt_sum_cache *c)
{
    if (!c)
        return;
    free(c->v);
    free(c->slots);
    free(c);
}

void ckpt_sum_cache_stats_get(const ckpt_sum_cache *c,
                              ckpt_sum_cache_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    out->hits = c->hits;
    out->misses = c->misses;
    out->entries = c->n;
}

uint64_t ckpt_sum_cache_misses(const ckpt_sum_cache *c)
{
    return c ? c->misses : 0;
}

static void key_of(ckpt_sum_key *k, const struct stat *st, const char *name)
{
    memset(k, 0, sizeof *k);
    k->dev = (uint64_t)st->st_dev;
    k->ino = (uint64_t)st->st_ino;
    k->size = (uint64_t)st->st_size;
    k->mtime_ns =
        (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    k->name_hash = XXH3_64bits(base, strlen(base));
}

static size_t key_slot(const ckpt_sum_cache *c, const ckpt_sum_key *k)
{
    return (size_t)XXH3_64bits(k, sizeof *k) & (c->n_slots - 1);
}

static int key_eq(const ckpt_sum_key *a, const ckpt_sum_key *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->name_hash == b->name_hash;
}

/* Index of the entry with key k, or (size_t)-1. */
static size_t find(const ckpt_sum_cache *c, const ckpt_sum_key *k)
{
    if (!c->n_slots)
        return (size_t)-1;
    for (size_t s = key_slot(c, k);; s = (s + 1) & (c->n_slots - 1)) {
        uint32_t p = c->slots[s];
        if (!p)
            return (size_t)-1;
        if (key_eq(&c->v[p - 1].key, k))
            return p - 1;
    }
}

static void index_insert(ckpt_sum_cache *c, size_t pos)
{
    size_t s = key_slot(c, &c->v[pos].key);
    while (c->slots[s])
        s = (s + 1) & (c->n_slots - 1);
    c->slots[s] = (uint32_t)(pos + 1);
}

/* Rebuilds the index with room for `want` entries. */
static int reindex(ckpt_sum_cache *c, size_t want)
{
    size_t n_slots = 64;
    while (n_slots < 2 * want)
        n_slots *= 2;
    uint32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots)
        return WEIR_ENOMEM;
    free(c->slots);
    c->slots = slots;
    c->n_slots = n_slots;
    for (size_t i = 0; i < c->n; i++)
        index_insert(c, i);
    return 0;
}

void ckpt_sum_cache_begin(ckpt_sum_cache *c)
{
    c->pass++;
}

int ckpt_sum_cache_lookup(ckpt_sum_cache *c, const struct stat *st,
                          const char *name, uint64_t *xxh3)
{
    ckpt_sum_key k;
    key_of(&k, st, name);
    size_t i = find(c, &k);
    if (i == (size_t)-1) {
        c->misses++;
        return 0;
    }
    c->hits++;
    c->v[i].seen = c->pass;
    *xxh3 = c->v[i].xxh3;
    return 1;
}

int ckpt_sum_cache_put(ckpt_sum_cache *c, const struct stat *st,
                       const char *name, uint64_t xxh3)
{
    ckpt_sum_key k;
    key_of(&k, st, name);
    size_t i = find(c, &k);
    if (i != (size_t)-1) {
        c->v[i].xxh3 = xxh3;
        c->v[i].seen = c->pass;
        return 0;
    }
    if (c->n >= UINT32_MAX - 1)
        return WEIR_ENOMEM;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        ckpt_sum_entry *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return WEIR_ENOMEM;
        c->v = v;
        c->cap = cap;
    }
    if (2 * (c->n + 1) > c->n_slots && reindex(c, c->n + 1))
        return WEIR_ENOMEM;
    c->v[c->n] = (ckpt_sum_entry){k, xxh3, c->pass};
    index_insert(c, c->n);
    c->n++;
    return 0;
}

void ckpt_sum_cache_end(ckpt_sum_cache *c)
{
    size_t w = 0;
    for (size_t r = 0; r < c->n; r++)
        if (c->v[r].seen == c->pass)
            c->v[w++] = c->v[r];
    if (w == c->n)
        return;
    c->n = w;
    if (c->cap > 64 && c->cap > 4 * w) {
        size_t cap = w > 32 ? 2 * w : 64;
        ckpt_sum_entry *v = realloc(c->v, cap * sizeof *v);
        if (v) {
            c->v = v;
            c->cap = cap;
        }
    }
    if (reindex(c, w)) {
        /* Out of memory for the smaller index: forget everything, which is
         * always correct (the next pass reads the files again). */
        c->n = 0;
        memset(c->slots, 0, c->n_slots * sizeof *c->slots);
    }
}
