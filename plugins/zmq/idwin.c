/*
 * idwin.c - see idwin.h.
 */
#include "idwin.h"

#include <stdlib.h>
#include <string.h>

#include "weir/weir.h"

/* FNV-1a, 64 bits. */
static uint64_t zidw_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

int zidw_init(zidwin *w, uint32_t cap)
{
    memset(w, 0, sizeof *w);
    if (cap == 0 || cap > (1u << 28))
        return WEIR_EINVAL;
    uint32_t buckets = 2;
    while (buckets < 2 * cap)
        buckets *= 2;
    w->ring = calloc(cap, sizeof *w->ring);
    w->tab = calloc(buckets, sizeof *w->tab);
    if (!w->ring || !w->tab) {
        zidw_free(w);
        return WEIR_ENOMEM;
    }
    w->cap = cap;
    w->mask = buckets - 1;
    return WEIR_OK;
}

void zidw_clear(zidwin *w)
{
    for (uint32_t i = 0; i < w->n; i++) {
        zidw_ent *e = &w->ring[(w->head + i) % w->cap];
        free(e->p);
        e->p = NULL;
    }
    if (w->tab)
        memset(w->tab, 0, ((size_t)w->mask + 1) * sizeof *w->tab);
    w->n = 0;
    w->head = 0;
}

void zidw_free(zidwin *w)
{
    if (w->ring)
        zidw_clear(w);
    free(w->ring);
    free(w->tab);
    memset(w, 0, sizeof *w);
}

/* The bucket that holds id (hash h), or the empty bucket where it would
 * go. */
static uint32_t zidw_probe(const zidwin *w, uint64_t h, const void *id,
                           size_t len)
{
    uint32_t i = (uint32_t)h & w->mask;
    while (w->tab[i]) {
        const zidw_ent *e = &w->ring[w->tab[i] - 1];
        if (e->h == h && e->len == len && memcmp(e->p, id, len) == 0)
            return i;
        i = (i + 1) & w->mask;
    }
    return i;
}

int zidw_has(const zidwin *w, const void *id, size_t len)
{
    if (!w->cap)
        return 0;
    uint64_t h = zidw_hash(id, len);
    return w->tab[zidw_probe(w, h, id, len)] != 0;
}

/* Removes bucket i, moving later entries of its cluster back so that every
 * entry stays reachable from its home bucket. */
static void zidw_unlink(zidwin *w, uint32_t i)
{
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & w->mask;
        if (!w->tab[j])
            break;
        uint32_t k = (uint32_t)w->ring[w->tab[j] - 1].h & w->mask;
        /* The entry at j may move to i unless its home k lies cyclically
         * in (i, j]. */
        int stays = i <= j ? (k > i && k <= j) : (k > i || k <= j);
        if (!stays) {
            w->tab[i] = w->tab[j];
            i = j;
        }
    }
    w->tab[i] = 0;
}

static void zidw_evict(zidwin *w)
{
    zidw_ent *e = &w->ring[w->head];
    zidw_unlink(w, zidw_probe(w, e->h, e->p, e->len));
    free(e->p);
    e->p = NULL;
    w->head = (w->head + 1) % w->cap;
    w->n--;
}

int zidw_add(zidwin *w, const void *id, size_t len)
{
    if (!w->cap || len > ZIDW_MAX_ID)
        return WEIR_EINVAL;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return WEIR_ENOMEM;
    memcpy(copy, id, len);
    if (w->n == w->cap)
        zidw_evict(w);
    uint32_t slot = (w->head + w->n) % w->cap;
    uint64_t h = zidw_hash(id, len);
    w->ring[slot] = (zidw_ent){.p = copy, .len = len, .h = h};
    w->tab[zidw_probe(w, h, id, len)] = slot + 1;
    w->n++;
    return WEIR_OK;
}

const zidw_ent *zidw_at(const zidwin *w, uint32_t i)
{
    return &w->ring[(w->head + i) % w->cap];
}
