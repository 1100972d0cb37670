/*
 * idwin.h - a bounded window of recent message ids for zmq_source's
 * deduplication: the last `cap` ids added, oldest evicted first, with a
 * constant-time membership test (FIFO ring + open-addressing hash table of
 * ring slots, backward-shift deletion). Internal to the zmq plugin.
 *
 * Ownership: the window copies the ids it holds and frees them in
 * zidw_free(). Thread: one owner, no locking. Errors: zidw_init() and
 * zidw_add() return WEIR_ENOMEM when memory runs out (the window is then
 * unchanged).
 */
#ifndef WEIR_PLUGINS_ZMQ_IDWIN_H
#define WEIR_PLUGINS_ZMQ_IDWIN_H

#include <stddef.h>
#include <stdint.h>

#define ZIDW_MAX_ID 255 /* longest id in bytes */

typedef struct zidw_ent {
    char *p;
    size_t len;
    uint64_t h;
} zidw_ent;

typedef struct zidwin {
    uint32_t cap;   /* ids kept at most (> 0) */
    uint32_t n;     /* ids held */
    uint32_t head;  /* ring slot of the oldest */
    zidw_ent *ring; /* cap slots */
    uint32_t *tab;  /* ring slot + 1 per bucket, 0 = empty */
    uint32_t mask;  /* buckets - 1 (a power of two >= 2 cap) */
} zidwin;

/* An empty window of `cap` ids (1 <= cap <= 2^28). */
int zidw_init(zidwin *w, uint32_t cap);
void zidw_free(zidwin *w);
/* Drops every id. */
void zidw_clear(zidwin *w);
/* Whether id[0..len) is in the window. */
int zidw_has(const zidwin *w, const void *id, size_t len);
/* Adds an id (len <= ZIDW_MAX_ID) that is not in the window, evicting the
 * oldest when the window is full. */
int zidw_add(zidwin *w, const void *id, size_t len);
/* The i-th oldest id, 0 <= i < w->n. */
const zidw_ent *zidw_at(const zidwin *w, uint32_t i);

#endif
