#include "state/state_cache.h"

#include <stdlib.h>
#include <string.h>

/* Set on entries that state_cache_victims() returned, so that a second lap
 * of the hand does not return them twice. Cleared on removal. */
#define SC_VICTIM 0x40u

state_cache *state_cache_new(uint32_t max)
{
    if (max == 0 || max > (UINT32_MAX >> 3))
        return NULL;
    state_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    uint32_t size = 16;
    while (size < 2 * max)
        size <<= 1;
    c->ents = calloc(max, sizeof *c->ents);
    c->slots = calloc(size, sizeof *c->slots);
    c->gslots = calloc(size, sizeof *c->gslots);
    if (!c->ents || !c->slots || !c->gslots) {
        state_cache_free(c);
        return NULL;
    }
    c->max = max;
    c->mask = size - 1;
    for (uint32_t i = 0; i < max; i++)
        c->ents[i].gnext = i + 1 < max ? i + 1 : STATE_CACHE_NONE;
    c->free_head = 0;
    return c;
}

void state_cache_free(state_cache *c)
{
    if (!c)
        return;
    if (c->ents)
        for (uint32_t i = 0; i < c->max; i++)
            free(c->ents[i].buf);
    free(c->ents);
    free(c->slots);
    free(c->gslots);
    free(c);
}

static int ent_matches(const state_cache_ent *e, uint16_t sid, const void *key,
                       uint32_t klen, uint64_t h)
{
    return e->hash == h && e->sid == sid && e->klen == klen &&
           memcmp(e->buf, key, klen) == 0;
}

uint32_t state_cache_find(const state_cache *c, uint16_t sid, const void *key,
                          uint32_t klen, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & c->mask; c->slots[i];
         i = (i + 1) & c->mask) {
        uint32_t e = c->slots[i] - 1;
        if (ent_matches(&c->ents[e], sid, key, klen, h))
            return e;
    }
    return STATE_CACHE_NONE;
}

static int group_matches(const state_cache_ent *e, uint16_t sid,
                         const void *prefix, uint16_t plen, uint64_t gh)
{
    return e->ghash == gh && e->sid == sid && e->plen == plen &&
           memcmp(e->buf, prefix, plen) == 0;
}

/* The slot of the group table holding the group of (sid, prefix), or the
 * empty slot where it would go. */
static uint32_t group_slot(const state_cache *c, uint16_t sid,
                           const void *prefix, uint16_t plen, uint64_t gh)
{
    uint32_t i = (uint32_t)gh & c->mask;
    for (; c->gslots[i]; i = (i + 1) & c->mask)
        if (group_matches(&c->ents[c->gslots[i] - 1], sid, prefix, plen, gh))
            break;
    return i;
}

uint32_t state_cache_group(const state_cache *c, uint16_t sid,
                           const void *prefix, uint16_t plen, uint64_t gh)
{
    uint32_t i = group_slot(c, sid, prefix, plen, gh);
    return c->gslots[i] ? c->gslots[i] - 1 : STATE_CACHE_NONE;
}

static int buf_reserve(state_cache_ent *e, size_t need, int grow)
{
    if (need <= e->cap)
        return 0;
    if (need > UINT32_MAX)
        return -1;
    size_t cap = (need + 15) & ~(size_t)15;
    if (grow && cap < (size_t)e->cap * 2)
        cap = (size_t)e->cap * 2;
    if (cap > UINT32_MAX)
        cap = need;
    char *b = realloc(e->buf, cap);
    if (!b)
        return -1;
    e->buf = b;
    e->cap = (uint32_t)cap;
    return 0;
}

uint32_t state_cache_insert(state_cache *c, uint16_t sid, const void *key,
                            uint32_t klen, uint64_t h, uint16_t plen,
                            uint64_t gh)
{
    if (c->free_head == STATE_CACHE_NONE)
        return STATE_CACHE_NONE;
    uint32_t idx = c->free_head;
    state_cache_ent *e = &c->ents[idx];
    if (buf_reserve(e, klen, 0) < 0)
        return STATE_CACHE_NONE;
    c->free_head = e->gnext;
    memcpy(e->buf, key, klen);
    e->hash = h;
    e->ghash = plen ? gh : 0;
    e->stamp = INT64_MAX;
    e->idx_lo = INT64_MAX;
    e->klen = klen;
    e->vlen = 0;
    e->sid = sid;
    e->plen = plen;
    e->flags = SC_USED;
    e->gnext = e->gprev = STATE_CACHE_NONE;

    uint32_t i = (uint32_t)h & c->mask;
    while (c->slots[i])
        i = (i + 1) & c->mask;
    c->slots[i] = idx + 1;

    if (plen) {
        uint32_t g = group_slot(c, sid, key, plen, gh);
        if (c->gslots[g]) {
            /* Insert after the head, so that the slot stays valid. */
            uint32_t head = c->gslots[g] - 1;
            state_cache_ent *he = &c->ents[head];
            e->gprev = head;
            e->gnext = he->gnext;
            if (he->gnext != STATE_CACHE_NONE)
                c->ents[he->gnext].gprev = idx;
            he->gnext = idx;
        } else {
            c->gslots[g] = idx + 1;
        }
    }
    c->used++;
    c->bytes += klen;
    return idx;
}

int state_cache_set_value(state_cache *c, uint32_t i, const void *v, size_t len)
{
    state_cache_ent *e = &c->ents[i];
    if (buf_reserve(e, (size_t)e->klen + len, 0) < 0)
        return -1;
    if (len)
        memcpy(e->buf + e->klen, v, len);
    c->bytes = c->bytes - e->vlen + len;
    e->vlen = (uint32_t)len;
    return 0;
}

int state_cache_append(state_cache *c, uint32_t i, const void *v, size_t len)
{
    state_cache_ent *e = &c->ents[i];
    if (buf_reserve(e, (size_t)e->klen + e->vlen + len, 1) < 0)
        return -1;
    if (len)
        memcpy(e->buf + e->klen + e->vlen, v, len);
    e->vlen += (uint32_t)len;
    c->bytes += len;
    return 0;
}

/* Backward-shift deletion of slot i in `slots`; `group` selects which hash
 * gives an occupant's home slot. */
static void table_delete(state_cache *c, uint32_t *slots, uint32_t i, int group)
{
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & c->mask;
        if (!slots[j])
            break;
        const state_cache_ent *o = &c->ents[slots[j] - 1];
        uint32_t k = (uint32_t)(group ? o->ghash : o->hash) & c->mask;
        /* Leave the occupant of j when its home k lies cyclically in
         * (i, j]: it is still reachable without slot i. */
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        slots[i] = slots[j];
        i = j;
    }
    slots[i] = 0;
}

static void group_unlink(state_cache *c, uint32_t idx)
{
    state_cache_ent *e = &c->ents[idx];
    if (e->gprev != STATE_CACHE_NONE) {
        c->ents[e->gprev].gnext = e->gnext;
        if (e->gnext != STATE_CACHE_NONE)
            c->ents[e->gnext].gprev = e->gprev;
        return;
    }
    /* The head: find its slot. */
    uint32_t g = (uint32_t)e->ghash & c->mask;
    while (c->gslots[g] != idx + 1)
        g = (g + 1) & c->mask;
    if (e->gnext != STATE_CACHE_NONE) {
        c->gslots[g] = e->gnext + 1;
        c->ents[e->gnext].gprev = STATE_CACHE_NONE;
    } else {
        table_delete(c, c->gslots, g, 1);
    }
}

void state_cache_remove(state_cache *c, uint32_t idx)
{
    state_cache_ent *e = &c->ents[idx];
    uint32_t i = (uint32_t)e->hash & c->mask;
    while (c->slots[i] != idx + 1)
        i = (i + 1) & c->mask;
    table_delete(c, c->slots, i, 0);
    if (e->plen)
        group_unlink(c, idx);
    c->bytes -= (uint64_t)e->klen + e->vlen;
    e->flags = 0;
    e->klen = e->vlen = 0;
    e->plen = 0;
    e->gprev = STATE_CACHE_NONE;
    e->gnext = c->free_head;
    c->free_head = idx;
    c->used--;
}

size_t state_cache_victims(state_cache *c, uint32_t *out, size_t n)
{
    size_t got = 0;
    uint64_t steps = 0, limit = 2 * (uint64_t)c->max + 1;
    while (got < n && got < c->used && steps < limit) {
        state_cache_ent *e = &c->ents[c->hand];
        uint32_t at = c->hand;
        c->hand = c->hand + 1 < c->max ? c->hand + 1 : 0;
        steps++;
        if (!(e->flags & SC_USED) || (e->flags & SC_VICTIM))
            continue;
        if (e->flags & SC_REF) {
            e->flags &= (uint8_t)~SC_REF;
            continue;
        }
        e->flags |= SC_VICTIM;
        out[got++] = at;
    }
    return got;
}

/* One entry to sort: its key and sid copied out of the pool, so that the
 * comparison needs no context. */
typedef struct sort_item {
    const char *key;
    uint32_t klen;
    uint16_t sid;
    uint32_t idx;
} sort_item;

static int sort_cmp(const void *a, const void *b)
{
    const sort_item *x = a, *y = b;
    if (x->sid != y->sid)
        return x->sid < y->sid ? -1 : 1;
    uint32_t n = x->klen < y->klen ? x->klen : y->klen;
    int r = n ? memcmp(x->key, y->key, n) : 0;
    if (r)
        return r;
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

void state_cache_sort(const state_cache *c, uint32_t *idx, size_t n)
{
    if (n < 2)
        return;
    sort_item *it = malloc(n * sizeof *it);
    if (!it)
        return;
    for (size_t i = 0; i < n; i++) {
        const state_cache_ent *e = &c->ents[idx[i]];
        it[i] = (sort_item){e->buf, e->klen, e->sid, idx[i]};
    }
    qsort(it, n, sizeof *it, sort_cmp);
    for (size_t i = 0; i < n; i++)
        idx[i] = it[i].idx;
    free(it);
}
