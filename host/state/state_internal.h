/*
 * state_internal.h - private to host/state: the types the keyed-state
 * subsystems share.
 *
 * The keyed state of state.h is split into subsystems, one file each:
 *   state_store.c   (state_store.h)  the env, RocksDB open/close, column
 *                   families, the write-back cache's traffic with RocksDB,
 *                   entries (load/store/remove), flush, checkpoints and
 *                   deltas, errors and free-space checks;
 *   state_ttl.c     (state_ttl.h)    stamps, the expiry index, expiry and
 *                   the hook, the sweep, the compaction filter and the
 *                   periodic compaction, TTL changes;
 *   state_access.c                   the current key and the value, map and
 *                   list get/put/iterate paths (faces: state.h);
 *   state_meta.c    (state_meta.h)   declared states and the persisted
 *                   per-state metadata ("weir.state.<name>"), handle
 *                   ownership;
 *   state_stats.c                    statistics and the leak detector
 *                   (face: state.h).
 * state_admin.c (state_admin.h) owns the "weir.ttl.<name>" records.
 *
 * Every struct here is owned by the store it belongs to (state_store_open()
 * allocates, state_store_close() frees) and used on the store's thread,
 * except the fields marked otherwise (the published times and the filter
 * counters, read on RocksDB's threads; the env's queue, under env->mu).
 * Functions shared between the files carry their file's prefix (sstore_,
 * sttl_, smeta_) and are declared in that file's header; everything else
 * stays static. Errors follow state.h: 0 or a negative WEIR_E* code with a
 * message in *errptr.
 */
#ifndef WEIR_HOST_STATE_INTERNAL_H
#define WEIR_HOST_STATE_INTERNAL_H

#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state/state.h"
#include "state/state_cache.h"
#include "state/timers.h"

#define NAME_MAX_LEN 64    /* state names */
#define ID_MAX       65534 /* persistent state ids */
#define FLUSH_CHUNK  4096  /* cache entries per write batch */

/* Full disks (state.h). The MANIFEST is preallocated in steps of
 * STATE_MANIFEST_PREALLOC (4 MiB by default). STATE_OPEN_BYTES covers what
 * an open writes besides the WAL's preallocation (open_bytes() in
 * state_store.c): MANIFEST, OPTIONS, the LOG's header; STATE_CKPT_META_BYTES
 * what a RocksDB checkpoint writes besides the SSTs. The free space is checked
 * at most every STATE_SPACE_CHECK_MS of processing time between records. */
#define STATE_MANIFEST_PREALLOC (64u << 10)
#define STATE_OPEN_BYTES        (2u << 20)
#define STATE_CKPT_META_BYTES   (1u << 20)
#define STATE_SPACE_CHECK_MS    500
#define STATE_LOG_HEADER_ONLY   5 /* rocksdb::InfoLogLevel::HEADER_LEVEL */

/* Compaction filter modes. */
enum { FILTER_KEEP = 0, FILTER_PROC = 1, FILTER_EVENT = 2 };

/* Results of sttl_expire_entry(). */
enum { EXP_GONE = 0, EXP_REFRESHED = 1, EXP_LEFT = 2 };

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static inline int sbuf_reserve(sbuf *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int sbuf_add(sbuf *b, const void *p, size_t n)
{
    if (sbuf_reserve(b, b->len + n) < 0)
        return -1;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static inline void sbuf_free(sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* A periodic compaction of one store, queued for the env's thread. */
typedef struct compact_req {
    struct compact_req *next;
    state_store *s;
    size_t n;
    rocksdb_column_family_handle_t **cfs;
} compact_req;

struct state_env {
    state_env_config cfg;
    rocksdb_cache_t *cache;
    rocksdb_env_t *renv;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    uint32_t n_open;
    int warned;
    /* The compaction thread, started on the first request. */
    pthread_t thread;
    int started, stop;
    compact_req *head, *tail;
    state_store *busy; /* the store being compacted */
};

/* What a state column family's compaction filter reads, on RocksDB's
 * background threads. */
typedef struct state_filter {
    const _Atomic int64_t *now, *wm; /* the store's published times */
    atomic_int mode;                 /* FILTER_* */
    atomic_uint_fast64_t dropped;
} state_filter;

/* A column family open in the store. */
typedef struct state_cfh {
    char *name;
    rocksdb_column_family_handle_t *h;
    state_filter *filter;                /* state column families only */
    rocksdb_compactionfilter_t *cfilter; /* idem */
} state_cfh;

/* A state known from the metadata. */
typedef struct state_meta {
    char *name;
    uint16_t id;
    uint8_t kind;
    uint32_t format; /* format version of its entries; 0 in old records */
} state_meta;

struct weir_state {
    state_store *s;
    char *name;
    uint16_t id;
    weir_state_kind kind;
    int has_ttl;
    int64_t ttl_ms;
    weir_ttl_update update;
    weir_ttl_visibility vis;
    weir_time_domain domain;
    int hook_wanted;
    uint32_t fmt_declared; /* weir_state_desc.format_version */
    uint32_t fmt_stored;   /* the version its stored entries have */
    rocksdb_column_family_handle_t *cf;
    state_filter *filter;
    uint64_t exp_read, exp_sweep, hook_calls;
    /* As of the last sample. */
    uint64_t est_keys, live_bytes;
    uint64_t prev_keys, streak_base;
    uint32_t streak;
    int sampled, leak;
};

/* The last entry read from RocksDB or written without the cache: lets a
 * put that follows a get on the same entry skip the index write and the
 * expiry check. Used only when the cache is off. */
typedef struct state_memo {
    int valid;
    const weir_state *st;
    sbuf key;
    int found;
    int64_t stamp;
    int64_t idx_lo;
} state_memo;

struct state_store {
    state_env *env;
    state_store_config cfg;
    char *path, *name;

    rocksdb_t *db;
    rocksdb_writeoptions_t *wo, *wo_meta;
    rocksdb_readoptions_t *ro, *ro_it;
    rocksdb_flushoptions_t *fo;
    rocksdb_writebatch_t *batch;   /* cache writes, map_clear */
    rocksdb_writebatch_t *ibatch;  /* the sweep's index deletions */
    rocksdb_options_t *state_opts; /* template for new state CFs */
    rocksdb_column_family_handle_t *meta_cf, *idx_cf, *timer_cf;
    state_timers *timers; /* timers.c */
    state_cfh *cfs;
    size_t n_cfs;
    state_meta *meta;
    size_t n_meta;
    uint32_t next_id;

    weir_state **states; /* declared, in order; changed under owners_lock */
    size_t n_states;

    state_store *owners_next; /* the list of open stores (owners_lock) */

    weir_state **by_id; /* indexed by state id, n_by_id long */
    size_t n_by_id;

    /* Current key: kbuf = key group | varint | key (plen bytes), then the
     * map user key of the operation in progress. */
    sbuf kbuf, kbuf_hook;
    size_t plen;
    int has_key;
    int64_t ts, now, wm;
    _Atomic int64_t pub_now, pub_wm;

    state_cache *cache;
    uint32_t *victims;
    size_t evict_batch;
    sbuf idxs; /* uint32_t scratch for cache writes */

    rocksdb_pinnableslice_t *pin;
    /* The bytes the last get returned, so that a put of those very bytes
     * can be detected and copied first (abuf). */
    const char *ret_p;
    size_t ret_len;
    sbuf wbuf, tbuf, ibuf, hbuf, lbuf, abuf, bound_lo, bound_hi;
    state_memo memo;
    int in_hook;

    sbuf cursor[2];
    int64_t cursor_stamp[2];
    int64_t last_compact;
    int64_t last_space_check;
    _Atomic uint64_t compactions_done; /* by the env's thread */

    state_store_stats stats;
    void *admin; /* state_admin.c's (state_admin_slot) */
};

/* An entry as loaded: `val` stays valid until the next entry operation. */
typedef struct ent {
    int found; /* exists (it may be expired) */
    int64_t stamp;
    const char *val;
    size_t vlen;
    uint32_t ci; /* cache entry, or STATE_CACHE_NONE */
} ent;

#endif
