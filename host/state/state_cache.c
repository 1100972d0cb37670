#include "state/state_cache.h"

#include <stdlib.h>
#include <string.h>

/* Set on entries that state_cache_victims() returned, so that a second lap
 * of the hand does not return them twice. Cleared on removal. */
#define SC_VICTIM 0x40u
#define SC_HEAP   SC_HEAP_FLAG

_Static_assert(sizeof(state_cache_ent) == 64, "a cache entry is one line");

/* Where the heap buffer's address and capacity sit inside inl[]. */
#define HEAP_PTR_AT 7
#define HEAP_CAP_AT 15

static char *heap_ptr(const state_cache_ent *e)
{
    char *p;
    memcpy(&p, e->inl + HEAP_PTR_AT, sizeof p);
    return p;
}

static uint32_t heap_cap(const state_cache_ent *e)
{
    uint32_t cap;
    memcpy(&cap, e->inl + HEAP_CAP_AT, sizeof cap);
    return cap;
}

static void heap_set(state_cache_ent *e, char *p, uint32_t cap)
{
    memcpy(e->inl + HEAP_PTR_AT, &p, sizeof p);
    memcpy(e->inl + HEAP_CAP_AT, &cap, sizeof cap);
}

/* A slot's entry index, or STATE_CACHE_NONE when it is empty. */
static uint32_t slot_ent(uint64_t slot)
{
    return (uint32_t)slot - 1;
}

static uint32_t slot_tag(uint64_t slot)
{
    return (uint32_t)(slot >> 32);
}

static uint64_t slot_make(uint32_t tag, uint32_t idx)
{
    return (uint64_t)tag << 32 | (uint64_t)(idx + 1);
}

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
    c->ents = aligned_alloc(64, (size_t)max * sizeof *c->ents);
    c->links = malloc((size_t)max * sizeof *c->links);
    c->slots = calloc(size, sizeof *c->slots);
    c->gslots = calloc(size, sizeof *c->gslots);
    if (!c->ents || !c->links || !c->slots || !c->gslots) {
        state_cache_free(c);
        return NULL;
    }
    memset(c->ents, 0, (size_t)max * sizeof *c->ents);
    c->max = max;
    c->mask = size - 1;
    for (uint32_t i = 0; i < max; i++)
        c->links[i] = (state_cache_link){
            0, i + 1 < max ? i + 1 : STATE_CACHE_NONE, STATE_CACHE_NONE};
    c->free_head = 0;
    return c;
}

void state_cache_free(state_cache *c)
{
    if (!c)
        return;
    if (c->ents)
        for (uint32_t i = 0; i < c->max; i++)
            if (c->ents[i].flags & SC_HEAP)
                free(heap_ptr(&c->ents[i]));
    free(c->ents);
    free(c->links);
    free(c->slots);
    free(c->gslots);
    free(c);
}

uint32_t state_cache_find(const state_cache *c, uint16_t sid, const void *key,
                          uint32_t klen, uint64_t h)
{
    uint32_t tag = (uint32_t)h;
    for (uint32_t i = tag & c->mask; c->slots[i]; i = (i + 1) & c->mask) {
        if (slot_tag(c->slots[i]) != tag)
            continue;
        uint32_t e = slot_ent(c->slots[i]);
        state_cache_ent *ce = &c->ents[e];
        if (ce->sid == sid && ce->klen == klen &&
            memcmp(state_cache_key(ce), key, klen) == 0)
            return e;
    }
    return STATE_CACHE_NONE;
}

/* The slot of the group table holding the group of (sid, prefix), or the
 * empty slot where it would go. */
static uint32_t group_slot(const state_cache *c, uint16_t sid,
                           const void *prefix, uint16_t plen, uint64_t gh)
{
    uint32_t tag = (uint32_t)gh;
    uint32_t i = tag & c->mask;
    for (; c->gslots[i]; i = (i + 1) & c->mask) {
        if (slot_tag(c->gslots[i]) != tag)
            continue;
        state_cache_ent *e = &c->ents[slot_ent(c->gslots[i])];
        if (e->sid == sid && e->plen == plen &&
            memcmp(state_cache_key(e), prefix, plen) == 0)
            break;
    }
    return i;
}

uint32_t state_cache_group(const state_cache *c, uint16_t sid,
                           const void *prefix, uint16_t plen, uint64_t gh)
{
    uint32_t i = group_slot(c, sid, prefix, plen, gh);
    return c->gslots[i] ? slot_ent(c->gslots[i]) : STATE_CACHE_NONE;
}

/*
 * Makes room for `need` key + value bytes in e, keeping the `keep` bytes it
 * holds. Bytes that fit stay inline unless e already has a heap buffer
 * (which is then reused); `grow` doubles a heap buffer, for appends.
 * Returns 0, or -1 when out of memory (e unchanged).
 */
static int buf_reserve(state_cache_ent *e, size_t need, size_t keep, int grow)
{
    int heap = (e->flags & SC_HEAP) != 0;
    uint32_t have = heap ? heap_cap(e) : STATE_CACHE_INLINE;
    if (need <= have)
        return 0;
    if (need > UINT32_MAX)
        return -1;
    size_t cap = (need + 15) & ~(size_t)15;
    if (grow && cap < (size_t)have * 2)
        cap = (size_t)have * 2;
    if (cap > UINT32_MAX)
        cap = need;
    char *b;
    if (heap) {
        b = realloc(heap_ptr(e), cap);
        if (!b)
            return -1;
    } else {
        b = malloc(cap);
        if (!b)
            return -1;
        memcpy(b, e->inl, keep);
        e->flags |= SC_HEAP;
    }
    heap_set(e, b, (uint32_t)cap);
    return 0;
}

/* Gives a free entry the key's bytes: inline when they fit, dropping a
 * heap buffer a previous entry left; in that buffer otherwise. */
static int key_place(state_cache_ent *e, const void *key, uint32_t klen)
{
    if (klen <= STATE_CACHE_INLINE && (e->flags & SC_HEAP)) {
        free(heap_ptr(e));
        e->flags &= (uint8_t)~SC_HEAP;
    }
    if (buf_reserve(e, klen, 0, 0) < 0)
        return -1;
    memcpy(state_cache_key(e), key, klen);
    return 0;
}

static void group_join(state_cache *c, uint32_t idx, const void *key,
                       uint16_t plen, uint64_t gh)
{
    state_cache_ent *e = &c->ents[idx];
    state_cache_link *l = &c->links[idx];
    uint32_t g = group_slot(c, e->sid, key, plen, gh);
    if (c->gslots[g]) {
        /* Insert after the head, so that the slot stays valid. */
        uint32_t head = slot_ent(c->gslots[g]);
        state_cache_link *hl = &c->links[head];
        l->gprev = head;
        l->gnext = hl->gnext;
        if (hl->gnext != STATE_CACHE_NONE)
            c->links[hl->gnext].gprev = idx;
        hl->gnext = idx;
    } else {
        c->gslots[g] = slot_make((uint32_t)gh, idx);
    }
}

uint32_t state_cache_insert(state_cache *c, uint16_t sid, const void *key,
                            uint32_t klen, uint64_t h, uint16_t plen,
                            uint64_t gh)
{
    if (c->free_head == STATE_CACHE_NONE)
        return STATE_CACHE_NONE;
    uint32_t idx = c->free_head;
    state_cache_ent *e = &c->ents[idx];
    state_cache_link *l = &c->links[idx];
    if (key_place(e, key, klen) < 0)
        return STATE_CACHE_NONE;
    c->free_head = l->gnext;
    e->hlo = (uint32_t)h;
    e->stamp = INT64_MAX;
    e->idx_lo = INT64_MAX;
    e->klen = klen;
    e->vlen = 0;
    e->sid = sid;
    e->plen = plen;
    e->flags = (uint8_t)(SC_USED | (e->flags & SC_HEAP));
    l->glo = plen ? (uint32_t)gh : 0;
    l->gnext = l->gprev = STATE_CACHE_NONE;

    uint32_t i = (uint32_t)h & c->mask;
    while (c->slots[i])
        i = (i + 1) & c->mask;
    c->slots[i] = slot_make((uint32_t)h, idx);
    if (plen)
        group_join(c, idx, key, plen, gh);
    c->used++;
    c->bytes += klen;
    return idx;
}

int state_cache_set_value(state_cache *c, uint32_t i, const void *v, size_t len)
{
    state_cache_ent *e = &c->ents[i];
    if (buf_reserve(e, (size_t)e->klen + len, e->klen, 0) < 0)
        return -1;
    if (len)
        memcpy(state_cache_val(e), v, len);
    c->bytes = c->bytes - e->vlen + len;
    e->vlen = (uint32_t)len;
    return 0;
}

int state_cache_append(state_cache *c, uint32_t i, const void *v, size_t len)
{
    state_cache_ent *e = &c->ents[i];
    size_t have = (size_t)e->klen + e->vlen;
    if (buf_reserve(e, have + len, have, 1) < 0)
        return -1;
    if (len)
        memcpy(state_cache_val(e) + e->vlen, v, len);
    e->vlen += (uint32_t)len;
    c->bytes += len;
    return 0;
}

/* Backward-shift deletion of slot i in `slots`; an occupant's home slot is
 * its tag's low bits. */
static void table_delete(state_cache *c, uint64_t *slots, uint32_t i)
{
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & c->mask;
        if (!slots[j])
            break;
        uint32_t k = slot_tag(slots[j]) & c->mask;
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
    state_cache_link *l = &c->links[idx];
    if (l->gprev != STATE_CACHE_NONE) {
        c->links[l->gprev].gnext = l->gnext;
        if (l->gnext != STATE_CACHE_NONE)
            c->links[l->gnext].gprev = l->gprev;
        return;
    }
    /* The head: find its slot. */
    uint32_t g = l->glo & c->mask;
    while (slot_ent(c->gslots[g]) != idx)
        g = (g + 1) & c->mask;
    if (l->gnext != STATE_CACHE_NONE) {
        c->gslots[g] = slot_make(l->glo, l->gnext);
        c->links[l->gnext].gprev = STATE_CACHE_NONE;
    } else {
        table_delete(c, c->gslots, g);
    }
}

void state_cache_remove(state_cache *c, uint32_t idx)
{
    state_cache_ent *e = &c->ents[idx];
    uint32_t i = e->hlo & c->mask;
    while (slot_ent(c->slots[i]) != idx)
        i = (i + 1) & c->mask;
    table_delete(c, c->slots, i);
    if (e->plen)
        group_unlink(c, idx);
    c->bytes -= (uint64_t)e->klen + e->vlen;
    e->flags &= SC_HEAP;
    e->klen = e->vlen = 0;
    e->plen = 0;
    c->links[idx].gprev = STATE_CACHE_NONE;
    c->links[idx].gnext = c->free_head;
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

void state_cache_sort(state_cache *c, uint32_t *idx, size_t n)
{
    if (n < 2)
        return;
    sort_item *it = malloc(n * sizeof *it);
    if (!it)
        return;
    for (size_t i = 0; i < n; i++) {
        state_cache_ent *e = &c->ents[idx[i]];
        it[i] = (sort_item){state_cache_key(e), e->klen, e->sid, idx[i]};
    }
    qsort(it, n, sizeof *it, sort_cmp);
    for (size_t i = 0; i < n; i++)
        idx[i] = it[i].idx;
    free(it);
}
