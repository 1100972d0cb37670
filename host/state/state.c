#include "state/state.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "state/codec.h"
#include "state/state_admin.h"
#include "state/state_cache.h"
#include "state/timers.h"

#define NAME_MAX_LEN 64
#define ID_MAX       65534
#define FLUSH_CHUNK  4096

/* Full disks (state.h). The MANIFEST is preallocated in steps of
 * STATE_MANIFEST_PREALLOC (4 MiB by default). STATE_OPEN_BYTES covers what
 * an open writes besides the WAL's preallocation (open_bytes()): MANIFEST,
 * OPTIONS, the LOG's header; STATE_CKPT_META_BYTES what a RocksDB checkpoint
 * writes besides the SSTs. The free space is checked at most every
 * STATE_SPACE_CHECK_MS of processing time between records. */
#define STATE_MANIFEST_PREALLOC (64u << 10)
#define STATE_OPEN_BYTES        (2u << 20)
#define STATE_CKPT_META_BYTES   (1u << 20)
#define STATE_SPACE_CHECK_MS    500
#define STATE_LOG_HEADER_ONLY   5 /* rocksdb::InfoLogLevel::HEADER_LEVEL */

/* Compaction filter modes. */
enum { FILTER_KEEP = 0, FILTER_PROC = 1, FILTER_EVENT = 2 };

/* Results of expire_entry(). */
enum { EXP_GONE = 0, EXP_REFRESHED = 1, EXP_LEFT = 2 };

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static int sbuf_reserve(sbuf *b, size_t need)
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

static int sbuf_add(sbuf *b, const void *p, size_t n)
{
    if (sbuf_reserve(b, b->len + n) < 0)
        return -1;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static void sbuf_free(sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - 1 - b)
        return INT64_MAX - 1;
    return a + b;
}

static int64_t realtime_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *kind_name(weir_state_kind k)
{
    switch (k) {
    case WEIR_STATE_VALUE: return "value";
    case WEIR_STATE_MAP: return "map";
    case WEIR_STATE_LIST: return "list";
    default: return "unknown";
    }
}

/* ------------------------------------------------------------------------ */
/* Types                                                                     */
/* ------------------------------------------------------------------------ */

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

/* ------------------------------------------------------------------------ */
/* Environment                                                               */
/* ------------------------------------------------------------------------ */

void state_env_config_init(state_env_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->block_cache_bytes = UINT64_C(256) << 20;
    cfg->write_buffer_bytes = UINT64_C(256) << 20;
    cfg->expected_stores = 8;
    cfg->background_threads = 2;
}

int state_env_new(const state_env_config *cfg, state_env **out, char **errptr)
{
    *out = NULL;
    state_env *env = calloc(1, sizeof *env);
    if (!env)
        return err_set(errptr, WEIR_ENOMEM, "state env: out of memory");
    if (cfg)
        env->cfg = *cfg;
    else
        state_env_config_init(&env->cfg);
    if (env->cfg.expected_stores == 0)
        env->cfg.expected_stores = 1;
    if (env->cfg.background_threads <= 0)
        env->cfg.background_threads = 1;
    if (env->cfg.write_buffer_bytes < (UINT64_C(1) << 20))
        env->cfg.write_buffer_bytes = UINT64_C(1) << 20;
    pthread_mutex_init(&env->mu, NULL);
    pthread_cond_init(&env->cv, NULL);
    env->cache = rocksdb_cache_create_lru((size_t)env->cfg.block_cache_bytes);
    env->renv = rocksdb_create_default_env();
    if (!env->cache || !env->renv) {
        state_env_free(env);
        return err_set(errptr, WEIR_ENOMEM, "state env: out of memory");
    }
    /* The default Env's thread pools are process-wide: every store's
     * flushes (high priority) and compactions (low) share them. */
    rocksdb_env_set_background_threads(env->renv, env->cfg.background_threads);
    rocksdb_env_set_high_priority_background_threads(env->renv, 1);
    *out = env;
    return 0;
}

void state_env_free(state_env *env)
{
    if (!env)
        return;
    pthread_mutex_lock(&env->mu);
    env->stop = 1;
    pthread_cond_broadcast(&env->cv);
    pthread_mutex_unlock(&env->mu);
    if (env->started)
        pthread_join(env->thread, NULL);
    if (env->cache)
        rocksdb_cache_destroy(env->cache);
    if (env->renv)
        rocksdb_env_destroy(env->renv);
    pthread_cond_destroy(&env->cv);
    pthread_mutex_destroy(&env->mu);
    free(env);
}

/* Bytes of memtable one store may use. */
static uint64_t env_share(state_env *env)
{
    uint64_t share = env->cfg.write_buffer_bytes / env->cfg.expected_stores;
    return share < (UINT64_C(1) << 20) ? UINT64_C(1) << 20 : share;
}

/* ------------------------------------------------------------------------ */
/* Compaction filter (runs on RocksDB's threads)                             */
/* ------------------------------------------------------------------------ */

static unsigned char filter_fn(void *arg, int level, const char *key,
                               size_t klen, const char *val, size_t vlen,
                               char **nv, size_t *nvlen, unsigned char *changed)
{
    (void)level, (void)key, (void)klen, (void)nv, (void)nvlen;
    state_filter *f = arg;
    *changed = 0;
    int mode = atomic_load_explicit(&f->mode, memory_order_relaxed);
    if (mode == FILTER_KEEP || vlen < STAMP_LEN)
        return 0;
    int64_t stamp = stamp_get(val);
    if (stamp == STAMP_NONE)
        return 0;
    int64_t t = atomic_load_explicit(mode == FILTER_EVENT ? f->wm : f->now,
                                     memory_order_relaxed);
    if (stamp > t)
        return 0;
    atomic_fetch_add_explicit(&f->dropped, 1, memory_order_relaxed);
    return 1;
}

static const char *filter_name(void *arg)
{
    (void)arg;
    return "weir.ttl";
}

static void filter_noop(void *arg)
{
    (void)arg;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* Whether a RocksDB error reports a full disk: its IOError text carries
 * strerror(ENOSPC) or strerror(EDQUOT). */
static int rdb_nospace(const char *rerr)
{
    return rerr && (strstr(rerr, "No space left on device") ||
                    strstr(rerr, "Disk quota exceeded"));
}

/* Turns a RocksDB error into a message and a code; frees `rerr`. A full
 * disk is reported first, naming `dir` (where RocksDB was writing) and its
 * free space, with code `nospace`; any other error is WEIR_EIO. */
static int rdb_error(state_store *s, const weir_state *st, const char *what,
                     char *rerr, const char *dir, int nospace, char **errptr)
{
    char *full = NULL;
    int code = WEIR_EIO;
    if (rdb_nospace(rerr)) {
        code = nospace;
        fs_nospace(&full, dir, 0);
    }
    err_set(errptr, code, "state store %s%s%s: rocksdb %s: %s%s%s%s", s->name,
            st ? ", state " : "", st ? st->name : "", what, full ? full : "",
            full ? " (" : "", rerr ? rerr : "failed", full ? ")" : "");
    free(full);
    free(rerr);
    return code;
}

/* A RocksDB error of an access function: WEIR_EIO, the code a plugin may
 * see, also for a full disk. */
static int rdb_fail(state_store *s, const weir_state *st, const char *what,
                    char *rerr, char **errptr)
{
    return rdb_error(s, st, what, rerr, s->path, WEIR_EIO, errptr);
}

/* A RocksDB error of the host's own calls (open, flush, checkpoint): a full
 * disk under `dir` is FS_ENOSPC. */
static int rdb_fail_host(state_store *s, const char *what, char *rerr,
                         const char *dir, char **errptr)
{
    return rdb_error(s, NULL, what, rerr, dir, FS_ENOSPC, errptr);
}

/*
 * Fails with FS_ENOSPC, before RocksDB is asked to write about `need` bytes
 * under `path`, when its file system has less than that plus
 * min_free_bytes available. RocksDB 7.8 does not survive every write that
 * fails for want of space (a failed LOG line makes the next one abort the
 * process), so the store stops short of a full disk rather than on it.
 */
static int space_check(state_store *s, const char *path, uint64_t need,
                       const char *what, char **errptr)
{
    uint64_t avail, total, want = need + s->cfg.min_free_bytes;
    if (fs_space(path, &avail, &total) < 0 || avail >= want)
        return 0;
    char *full = NULL;
    fs_nospace(&full, path, 0);
    err_set(errptr, FS_ENOSPC,
            "state store %s: %s: %s; that needs about %llu bytes plus "
            "state.min_free_space (%llu)",
            s->name, what, full ? full : "no space left on device",
            (unsigned long long)need,
            (unsigned long long)s->cfg.min_free_bytes);
    free(full);
    return FS_ENOSPC;
}

static uint64_t prop(state_store *s, rocksdb_column_family_handle_t *cf,
                     const char *name);

/* The sum of a size property over the store's column families. */
static uint64_t prop_sum(state_store *s, const char *name)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < s->n_cfs; i++)
        sum += prop(s, s->cfs[i].h, name);
    return sum;
}

/*
 * Bytes an open may claim: RocksDB preallocates its WAL (fallocate) by 1.1
 * times the column families' write buffer, capped by the store's share, and
 * the stores of a job open together. While a preallocation runs it holds
 * the space, so a disk with less room than all of them together could fail
 * another store's LOG line, which RocksDB 7.8 does not survive.
 */
static uint64_t open_bytes(state_store *s)
{
    uint64_t share = env_share(s->env), wal = share / 2 + share / 20;
    if (wal > share)
        wal = share;
    return (uint64_t)s->env->cfg.expected_stores * wal + STATE_OPEN_BYTES;
}

/* Bytes the next flush of every memtable writes, at most. */
static uint64_t memtable_bytes(state_store *s)
{
    return prop_sum(s, "rocksdb.cur-size-all-mem-tables");
}

static int oom(state_store *s, char **errptr)
{
    return err_set(errptr, WEIR_ENOMEM, "state store %s: out of memory",
                   s->name);
}

/* ------------------------------------------------------------------------ */
/* Keys, stamps, expiry                                                      */
/* ------------------------------------------------------------------------ */

static uint64_t key_hash(uint16_t sid, const char *k, size_t klen)
{
    return XXH3_64bits_withSeed(k, klen, sid);
}

static uint64_t group_hash(uint16_t sid, const char *k, size_t plen)
{
    return XXH3_64bits_withSeed(k, plen, UINT64_C(0x9E3779B97F4A7C15) ^ sid);
}

static int is_expired(const state_store *s, const weir_state *st, int64_t stamp)
{
    if (!st->has_ttl || stamp == STAMP_NONE)
        return 0;
    return stamp <= (st->domain == WEIR_TIME_EVENT ? s->wm : s->now);
}

static int64_t new_stamp(const state_store *s, const weir_state *st)
{
    if (!st->has_ttl)
        return STAMP_NONE;
    int64_t base = s->now;
    if (st->domain == WEIR_TIME_EVENT)
        base = s->ts != WEIR_TS_NONE ? s->ts : s->wm;
    return sat_add(base, st->ttl_ms);
}

static int hook_on(const state_store *s, const weir_state *st)
{
    return st->has_ttl && st->hook_wanted && s->cfg.on_expired;
}

static void pin_release(state_store *s)
{
    if (s->pin) {
        rocksdb_pinnableslice_destroy(s->pin);
        s->pin = NULL;
    }
}

/* Points kbuf at the current key plus `ukey` (map state). */
static int key_with_ukey(state_store *s, const void *ukey, size_t ulen)
{
    s->kbuf.len = s->plen;
    if (ulen && sbuf_add(&s->kbuf, ukey, ulen) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Memo (cache off)                                                          */
/* ------------------------------------------------------------------------ */

static state_memo *memo_find(state_store *s, const weir_state *st)
{
    state_memo *m = &s->memo;
    if (!m->valid || m->st != st || m->key.len != s->kbuf.len ||
        memcmp(m->key.p, s->kbuf.p, s->kbuf.len) != 0)
        return NULL;
    return m;
}

static void memo_set(state_store *s, const weir_state *st, int found,
                     int64_t stamp, int64_t idx_lo)
{
    state_memo *m = &s->memo;
    m->key.len = 0;
    if (sbuf_add(&m->key, s->kbuf.p, s->kbuf.len) < 0) {
        m->valid = 0;
        return;
    }
    m->valid = 1;
    m->st = st;
    m->found = found;
    m->stamp = stamp;
    m->idx_lo = idx_lo;
}

/* ------------------------------------------------------------------------ */
/* Expiry index                                                              */
/* ------------------------------------------------------------------------ */

static int idx_key(state_store *s, const weir_state *st, int64_t stamp,
                   const char *k, size_t klen)
{
    s->ibuf.len = 0;
    if (sbuf_reserve(&s->ibuf, IDX_HDR + klen) < 0)
        return -1;
    s->ibuf.p[0] = st->domain == WEIR_TIME_EVENT ? 1 : 0;
    istamp_put(s->ibuf.p + 1, stamp);
    put_be16(s->ibuf.p + 9, st->id);
    memcpy(s->ibuf.p + IDX_HDR, k, klen);
    s->ibuf.len = IDX_HDR + klen;
    return 0;
}

/* Adds an index entry at `stamp` for the entry at kbuf. */
static int idx_put(state_store *s, const weir_state *st, int64_t stamp,
                   char **errptr)
{
    if (idx_key(s, st, stamp, s->kbuf.p, s->kbuf.len) < 0)
        return oom(s, errptr);
    char *rerr = NULL;
    rocksdb_put_cf(s->db, s->wo, s->idx_cf, s->ibuf.p, s->ibuf.len, "", 0,
                   &rerr);
    if (rerr)
        return rdb_fail(s, st, "index put", rerr, errptr);
    s->stats.index_puts++;
    /* An entry behind the sweep's cursor: restart from the front. */
    int d = st->domain == WEIR_TIME_EVENT;
    if (s->cursor[d].len && stamp <= s->cursor_stamp[d])
        s->cursor[d].len = 0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Cache <-> RocksDB                                                         */
/* ------------------------------------------------------------------------ */

/* Writes the dirty ones of cache entries idx[0..n) in one batch and marks
 * them clean. */
static int cache_write(state_store *s, const uint32_t *idx, size_t n,
                       char **errptr)
{
    rocksdb_writebatch_clear(s->batch);
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        state_cache_ent *ce = state_cache_at(s->cache, idx[i]);
        if (!(ce->flags & SC_DIRTY))
            continue;
        weir_state *st = s->by_id[ce->sid];
        if (ce->flags & SC_ABSENT) {
            rocksdb_writebatch_delete_cf(s->batch, st->cf, ce->buf, ce->klen);
        } else {
            char stamp[STAMP_LEN];
            stamp_put(stamp, ce->stamp);
            const char *keys[1] = {ce->buf};
            size_t klens[1] = {ce->klen};
            const char *vals[2] = {stamp, state_cache_val(ce)};
            size_t vlens[2] = {STAMP_LEN, ce->vlen};
            rocksdb_writebatch_putv_cf(s->batch, st->cf, 1, keys, klens, 2,
                                       vals, vlens);
        }
        count++;
    }
    if (!count)
        return 0;
    char *rerr = NULL;
    rocksdb_write(s->db, s->wo, s->batch, &rerr);
    rocksdb_writebatch_clear(s->batch);
    if (rerr)
        return rdb_fail(s, NULL, "write batch", rerr, errptr);
    for (size_t i = 0; i < n; i++) {
        state_cache_ent *ce = state_cache_at(s->cache, idx[i]);
        if (!(ce->flags & SC_DIRTY))
            continue;
        ce->flags &= (uint8_t) ~(SC_DIRTY | SC_DISK_PRESENT);
        ce->flags |= SC_DISK_KNOWN;
        if (!(ce->flags & SC_ABSENT))
            ce->flags |= SC_DISK_PRESENT;
    }
    s->stats.cache_writes += count;
    return 0;
}

/* Evicts one batch of entries, writing the dirty ones first. */
static int cache_evict(state_store *s, char **errptr)
{
    size_t got = state_cache_victims(s->cache, s->victims, s->evict_batch);
    state_cache_sort(s->cache, s->victims, got);
    int rc = cache_write(s, s->victims, got, errptr);
    for (size_t i = 0; i < got; i++)
        state_cache_remove(s->cache, s->victims[i]);
    s->stats.cache_evictions += got;
    return rc;
}

/* Adds a cache entry for kbuf (hash h), evicting first when full. */
static int cache_add(state_store *s, const weir_state *st, uint64_t h,
                     uint32_t *out, char **errptr)
{
    if (state_cache_full(s->cache)) {
        int rc = cache_evict(s, errptr);
        if (rc < 0)
            return rc;
    }
    uint16_t plen = 0;
    uint64_t gh = 0;
    if (st->kind == WEIR_STATE_MAP) {
        plen = (uint16_t)s->plen;
        gh = group_hash(st->id, s->kbuf.p, s->plen);
    }
    uint32_t ci = state_cache_insert(s->cache, st->id, s->kbuf.p,
                                     (uint32_t)s->kbuf.len, h, plen, gh);
    if (ci == STATE_CACHE_NONE)
        return oom(s, errptr);
    *out = ci;
    return 0;
}

/* Writes the dirty cached map entries of the current key of `st`. */
static int group_flush(state_store *s, const weir_state *st, char **errptr)
{
    if (!s->cache)
        return 0;
    uint64_t gh = group_hash(st->id, s->kbuf.p, s->plen);
    s->idxs.len = 0;
    for (uint32_t i = state_cache_group(s->cache, st->id, s->kbuf.p,
                                        (uint16_t)s->plen, gh);
         i != STATE_CACHE_NONE; i = state_cache_at(s->cache, i)->gnext) {
        if (!(state_cache_at(s->cache, i)->flags & SC_DIRTY))
            continue;
        if (sbuf_add(&s->idxs, &i, sizeof i) < 0)
            return oom(s, errptr);
    }
    return cache_write(s, (const uint32_t *)(void *)s->idxs.p,
                       s->idxs.len / sizeof(uint32_t), errptr);
}

/* Removes the current key's cached map entries of `st` (they must be
 * clean). */
static void group_drop(state_store *s, const weir_state *st)
{
    if (!s->cache)
        return;
    uint64_t gh = group_hash(st->id, s->kbuf.p, s->plen);
    uint32_t i;
    while ((i = state_cache_group(s->cache, st->id, s->kbuf.p,
                                  (uint16_t)s->plen, gh)) != STATE_CACHE_NONE)
        state_cache_remove(s->cache, i);
}

/* Writes every dirty cache entry. */
static int cache_flush(state_store *s, char **errptr)
{
    if (!s->cache)
        return 0;
    s->idxs.len = 0;
    for (uint32_t i = 0; i < s->cache->max; i++) {
        if (!(s->cache->ents[i].flags & SC_DIRTY))
            continue;
        if (sbuf_add(&s->idxs, &i, sizeof i) < 0)
            return oom(s, errptr);
    }
    uint32_t *idx = (uint32_t *)(void *)s->idxs.p;
    size_t n = s->idxs.len / sizeof(uint32_t);
    state_cache_sort(s->cache, idx, n);
    for (size_t off = 0; off < n; off += FLUSH_CHUNK) {
        size_t k = n - off < FLUSH_CHUNK ? n - off : FLUSH_CHUNK;
        int rc = cache_write(s, idx + off, k, errptr);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Entries: the one place that knows about the cache                         */
/* ------------------------------------------------------------------------ */

/* An entry as loaded: `val` stays valid until the next entry operation. */
typedef struct ent {
    int found; /* exists (it may be expired) */
    int64_t stamp;
    const char *val;
    size_t vlen;
    uint32_t ci; /* cache entry, or STATE_CACHE_NONE */
} ent;

/* Loads the entry at kbuf of `st`. Expired entries are returned as found;
 * the caller decides. */
static int ent_load(state_store *s, const weir_state *st, ent *e, char **errptr)
{
    memset(e, 0, sizeof *e);
    e->ci = STATE_CACHE_NONE;
    uint64_t h = 0;
    if (s->cache) {
        h = key_hash(st->id, s->kbuf.p, s->kbuf.len);
        uint32_t ci = state_cache_find(s->cache, st->id, s->kbuf.p,
                                       (uint32_t)s->kbuf.len, h);
        if (ci != STATE_CACHE_NONE) {
            state_cache_ent *ce = state_cache_at(s->cache, ci);
            ce->flags |= SC_REF;
            s->stats.cache_hits++;
            e->ci = ci;
            if (!(ce->flags & SC_ABSENT)) {
                e->found = 1;
                e->stamp = ce->stamp;
                e->val = state_cache_val(ce);
                e->vlen = ce->vlen;
            }
            return 0;
        }
        s->stats.cache_misses++;
    }
    pin_release(s);
    char *rerr = NULL;
    s->pin = rocksdb_get_pinned_cf(s->db, s->ro, st->cf, s->kbuf.p, s->kbuf.len,
                                   &rerr);
    if (rerr)
        return rdb_fail(s, st, "get", rerr, errptr);
    if (s->pin) {
        size_t vlen = 0;
        const char *v = rocksdb_pinnableslice_value(s->pin, &vlen);
        if (vlen < STAMP_LEN)
            return err_set(errptr, WEIR_EIO,
                           "state store %s, state %s: corrupt value of %zu "
                           "bytes",
                           s->name, st->name, vlen);
        e->found = 1;
        e->stamp = stamp_get(v);
        e->val = v + STAMP_LEN;
        e->vlen = vlen - STAMP_LEN;
    }
    if (!s->cache) {
        memo_set(s, st, e->found, e->stamp, e->found ? e->stamp : STAMP_NONE);
        return 0;
    }
    if (e->found && e->vlen > s->cfg.cache_max_value_bytes)
        return 0;
    uint32_t ci;
    int rc = cache_add(s, st, h, &ci, errptr);
    if (rc < 0)
        return rc;
    state_cache_ent *ce = state_cache_at(s->cache, ci);
    ce->flags |= SC_DISK_KNOWN | SC_REF;
    e->ci = ci;
    if (!e->found) {
        ce->flags |= SC_ABSENT;
        return 0;
    }
    if (state_cache_set_value(s->cache, ci, e->val, e->vlen) < 0) {
        state_cache_remove(s->cache, ci);
        return oom(s, errptr);
    }
    ce->flags |= SC_DISK_PRESENT;
    ce->stamp = e->stamp;
    ce->idx_lo = e->stamp;
    e->val = state_cache_val(ce);
    pin_release(s);
    return 0;
}

/* Writes (stamp, val) at kbuf of `st`, keeping the index invariant. `val`
 * must not point into the cache entry of that key. */
static int ent_store(state_store *s, const weir_state *st, int64_t stamp,
                     const void *val, size_t vlen, char **errptr)
{
    uint32_t ci = STATE_CACHE_NONE;
    uint64_t h = 0;
    int64_t idx_lo = STAMP_NONE;
    if (s->cache) {
        h = key_hash(st->id, s->kbuf.p, s->kbuf.len);
        ci = state_cache_find(s->cache, st->id, s->kbuf.p,
                              (uint32_t)s->kbuf.len, h);
        if (ci != STATE_CACHE_NONE)
            idx_lo = state_cache_at(s->cache, ci)->idx_lo;
    } else {
        state_memo *m = memo_find(s, st);
        if (m)
            idx_lo = m->idx_lo;
    }
    if (st->has_ttl && stamp < idx_lo) {
        int rc = idx_put(s, st, stamp, errptr);
        if (rc < 0)
            return rc;
        idx_lo = stamp;
    }
    if (s->cache && vlen <= s->cfg.cache_max_value_bytes) {
        if (ci == STATE_CACHE_NONE) {
            int rc = cache_add(s, st, h, &ci, errptr);
            if (rc < 0)
                return rc;
        }
        if (state_cache_set_value(s->cache, ci, val, vlen) < 0)
            return oom(s, errptr);
        state_cache_ent *ce = state_cache_at(s->cache, ci);
        ce->stamp = stamp;
        ce->idx_lo = idx_lo;
        ce->flags = (uint8_t)((ce->flags & ~SC_ABSENT) | SC_DIRTY | SC_REF);
        return 0;
    }
    /* Write through: no cache, or a value too large for it. */
    if (ci != STATE_CACHE_NONE)
        state_cache_remove(s->cache, ci);
    s->wbuf.len = 0;
    if (sbuf_reserve(&s->wbuf, STAMP_LEN + vlen) < 0)
        return oom(s, errptr);
    stamp_put(s->wbuf.p, stamp);
    if (vlen)
        memcpy(s->wbuf.p + STAMP_LEN, val, vlen);
    char *rerr = NULL;
    rocksdb_put_cf(s->db, s->wo, st->cf, s->kbuf.p, s->kbuf.len, s->wbuf.p,
                   STAMP_LEN + vlen, &rerr);
    if (rerr)
        return rdb_fail(s, st, "put", rerr, errptr);
    if (!s->cache)
        memo_set(s, st, 1, stamp, idx_lo);
    return 0;
}

/* Deletes the entry at kbuf of `st` (a tombstone in the cache). */
static int ent_remove(state_store *s, const weir_state *st, char **errptr)
{
    if (!s->cache) {
        char *rerr = NULL;
        rocksdb_delete_cf(s->db, s->wo, st->cf, s->kbuf.p, s->kbuf.len, &rerr);
        if (rerr)
            return rdb_fail(s, st, "delete", rerr, errptr);
        memo_set(s, st, 0, 0, STAMP_NONE);
        return 0;
    }
    uint64_t h = key_hash(st->id, s->kbuf.p, s->kbuf.len);
    uint32_t ci =
        state_cache_find(s->cache, st->id, s->kbuf.p, (uint32_t)s->kbuf.len, h);
    if (ci == STATE_CACHE_NONE) {
        int rc = cache_add(s, st, h, &ci, errptr);
        if (rc < 0)
            return rc;
    }
    state_cache_ent *ce = state_cache_at(s->cache, ci);
    state_cache_set_value(s->cache, ci, NULL, 0);
    ce->stamp = STAMP_NONE;
    ce->idx_lo = STAMP_NONE;
    ce->flags |= SC_ABSENT | SC_REF;
    /* A key RocksDB is known not to have needs no delete. */
    if ((ce->flags & SC_DISK_KNOWN) && !(ce->flags & SC_DISK_PRESENT))
        ce->flags &= (uint8_t)~SC_DIRTY;
    else
        ce->flags |= SC_DIRTY;
    return 0;
}

/* Gives the loaded entry e a new stamp (read-and-write refresh). */
static int ent_touch(state_store *s, const weir_state *st, ent *e,
                     char **errptr)
{
    int64_t ns = new_stamp(s, st);
    if (ns == e->stamp)
        return 0;
    if (e->ci == STATE_CACHE_NONE) {
        int rc = ent_store(s, st, ns, e->val, e->vlen, errptr);
        if (rc == 0)
            e->stamp = ns;
        return rc;
    }
    state_cache_ent *ce = state_cache_at(s->cache, e->ci);
    if (ns < ce->idx_lo) {
        int rc = idx_put(s, st, ns, errptr);
        if (rc < 0)
            return rc;
        ce->idx_lo = ns;
    }
    ce->stamp = ns;
    ce->flags |= SC_DIRTY;
    e->stamp = ns;
    return 0;
}

/* Points the index entry of the live entry e at its current stamp. */
static int ent_reindex(state_store *s, const weir_state *st, const ent *e,
                       char **errptr)
{
    if (e->stamp == STAMP_NONE)
        return 0;
    int rc = idx_put(s, st, e->stamp, errptr);
    if (rc < 0)
        return rc;
    if (e->ci != STATE_CACHE_NONE)
        state_cache_at(s->cache, e->ci)->idx_lo = e->stamp;
    s->memo.valid = 0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Expiry and the hook                                                       */
/* ------------------------------------------------------------------------ */

/* Calls the hook for the entry e at kbuf (for list state, per element).
 * The hook gets copies, and its own key buffer, so that its state calls
 * cannot disturb the caller's. */
static int fire_hook(state_store *s, weir_state *st, const ent *e,
                     char **errptr)
{
    s->hbuf.len = 0;
    if (sbuf_add(&s->hbuf, s->kbuf.p, s->kbuf.len) < 0 ||
        sbuf_add(&s->hbuf, e->val, e->vlen) < 0)
        return oom(s, errptr);
    const char *k = s->hbuf.p;
    size_t klen = s->kbuf.len;
    uint64_t ulen = 0;
    size_t vn = varint_get(k + 2, s->plen - 2, &ulen);
    const char *key = k + 2 + vn;
    const char *ukey = st->kind == WEIR_STATE_MAP ? k + s->plen : NULL;
    size_t ukey_len = st->kind == WEIR_STATE_MAP ? klen - s->plen : 0;
    const char *val = s->hbuf.p + klen;
    size_t vlen = e->vlen;

    sbuf saved = s->kbuf;
    s->kbuf = s->kbuf_hook;
    s->kbuf.len = 0;
    if (sbuf_add(&s->kbuf, saved.p, s->plen) < 0) {
        s->kbuf_hook = s->kbuf;
        s->kbuf = saved;
        return oom(s, errptr);
    }
    s->in_hook = 1;
    int rc = 0;
    if (st->kind == WEIR_STATE_LIST) {
        size_t off = 0;
        while (off < vlen && rc >= 0) {
            uint64_t n = 0;
            size_t used = varint_get(val + off, vlen - off, &n);
            if (!used || n > vlen - off - used) {
                rc = WEIR_EIO;
                break;
            }
            st->hook_calls++;
            rc = s->cfg.on_expired(s->cfg.on_expired_arg, st, key, (size_t)ulen,
                                   NULL, 0, val + off + used, (size_t)n);
            off += used + (size_t)n;
        }
    } else {
        st->hook_calls++;
        rc = s->cfg.on_expired(s->cfg.on_expired_arg, st, key, (size_t)ulen,
                               ukey, ukey_len, val, vlen);
    }
    s->in_hook = 0;
    s->kbuf_hook = s->kbuf;
    s->kbuf = saved;
    s->memo.valid = 0;
    if (rc == WEIR_EIO && st->kind == WEIR_STATE_LIST)
        return err_set(errptr, WEIR_EIO,
                       "state store %s, state %s: corrupt list value", s->name,
                       st->name);
    if (rc < 0)
        return err_set(errptr, rc,
                       "state store %s, state %s: the expiry hook failed: %s",
                       s->name, st->name, weir_strerror(rc));
    return 0;
}

/*
 * The loaded entry e at kbuf is expired. Hands it to the hook when the state
 * wants one (not from inside a hook: then it is left for the sweep), then
 * deletes it unless the hook gave it a fresh stamp. Counts a removal in
 * *counter. Returns EXP_GONE, EXP_REFRESHED, EXP_LEFT or a negative code.
 */
static int expire_entry(state_store *s, weir_state *st, const ent *e,
                        uint64_t *counter, char **errptr)
{
    if (hook_on(s, st)) {
        if (s->in_hook)
            return EXP_LEFT;
        int rc = fire_hook(s, st, e, errptr);
        if (rc < 0)
            return rc;
        ent e2;
        rc = ent_load(s, st, &e2, errptr);
        if (rc < 0)
            return rc;
        if (!e2.found) {
            (*counter)++;
            return EXP_GONE;
        }
        if (!is_expired(s, st, e2.stamp))
            return EXP_REFRESHED;
    }
    int rc = ent_remove(s, st, errptr);
    if (rc < 0)
        return rc;
    (*counter)++;
    return EXP_GONE;
}

/*
 * Loads the entry at kbuf for reading. An expired entry under
 * never-return-expired is expired on the spot (hook, delete): *e then shows
 * what is left, usually nothing. `visible` tells whether e may be returned.
 */
static int ent_read(state_store *s, weir_state *st, ent *e, char **errptr)
{
    int rc = ent_load(s, st, e, errptr);
    if (rc < 0 || !e->found || !is_expired(s, st, e->stamp) ||
        st->vis == WEIR_TTL_RETURN_EXPIRED_IF_NOT_CLEANED)
        return rc;
    rc = expire_entry(s, st, e, &st->exp_read, errptr);
    if (rc < 0)
        return rc;
    if (rc != EXP_REFRESHED) {
        e->found = 0;
        return 0;
    }
    return ent_load(s, st, e, errptr);
}

/* Before a write or delete of a hooked state: an expired entry about to be
 * replaced goes through the hook first. */
static int pre_write(state_store *s, weir_state *st, char **errptr)
{
    if (!hook_on(s, st) || s->in_hook)
        return 0;
    if (!s->cache) {
        state_memo *m = memo_find(s, st);
        if (m && (!m->found || !is_expired(s, st, m->stamp)))
            return 0;
    }
    ent e;
    int rc = ent_load(s, st, &e, errptr);
    if (rc < 0 || !e.found || !is_expired(s, st, e.stamp))
        return rc;
    rc = expire_entry(s, st, &e, &st->exp_read, errptr);
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------------------ */
/* Access                                                                    */
/* ------------------------------------------------------------------------ */

static int op_begin(weir_state *st, weir_state_kind kind, char **errptr)
{
    if (!st)
        return err_set(errptr, WEIR_EINVAL, "state: NULL state handle");
    state_store *s = st->s;
    if (st->kind != kind)
        return err_set(errptr, WEIR_EINVAL,
                       "state %s is a %s state, not a %s state", st->name,
                       kind_name(st->kind), kind_name(kind));
    if (!s->has_key)
        return err_set(errptr, WEIR_ESTATE,
                       "state %s: no current key (keyed state is only "
                       "available while a record, timer or expiry is "
                       "processed)",
                       st->name);
    s->kbuf.len = s->plen;
    return 0;
}

static int op_begin_map(weir_state *st, const void *ukey, size_t ulen,
                        char **errptr)
{
    int rc = op_begin(st, WEIR_STATE_MAP, errptr);
    if (rc < 0)
        return rc;
    if (ulen > KEY_MAX)
        return err_set(errptr, WEIR_EINVAL,
                       "state %s: map key of %zu bytes (at most %d)", st->name,
                       ulen, KEY_MAX);
    if (key_with_ukey(st->s, ukey, ulen) < 0)
        return oom(st->s, errptr);
    return 0;
}

/* get for value and map state, at kbuf. */
static int get_entry(weir_state *st, const void **value, size_t *len,
                     char **errptr)
{
    state_store *s = st->s;
    ent e;
    int rc = ent_read(s, st, &e, errptr);
    if (rc < 0)
        return rc;
    if (!e.found)
        return WEIR_ENOTFOUND;
    if (st->has_ttl && st->update == WEIR_TTL_ON_READ_AND_WRITE) {
        rc = ent_touch(s, st, &e, errptr);
        if (rc < 0)
            return rc;
    }
    *value = e.val;
    *len = e.vlen;
    s->ret_p = e.val;
    s->ret_len = e.vlen;
    return 0;
}

/* Input bytes that alias what the last get returned (the store may move or
 * release those while it works) are copied to abuf first. NULL when out of
 * memory. */
static const void *own_input(state_store *s, const void *v, size_t len)
{
    const char *p = v;
    if (!len || !s->ret_p || p >= s->ret_p + s->ret_len || p + len <= s->ret_p)
        return v;
    s->abuf.len = 0;
    if (sbuf_add(&s->abuf, v, len) < 0)
        return NULL;
    return s->abuf.p;
}

static int put_entry(weir_state *st, const void *value, size_t len,
                     char **errptr)
{
    state_store *s = st->s;
    if (len > UINT32_MAX - STAMP_LEN)
        return err_set(errptr, WEIR_EINVAL, "state %s: value of %zu bytes",
                       st->name, len);
    if (!(value = own_input(s, value, len)))
        return oom(s, errptr);
    int rc = pre_write(s, st, errptr);
    if (rc < 0)
        return rc;
    return ent_store(s, st, new_stamp(s, st), value, len, errptr);
}

static int delete_entry(weir_state *st, char **errptr)
{
    int rc = pre_write(st->s, st, errptr);
    if (rc < 0)
        return rc;
    return ent_remove(st->s, st, errptr);
}

int state_value_get(weir_state *st, const void **value, size_t *len,
                    char **errptr)
{
    int rc = op_begin(st, WEIR_STATE_VALUE, errptr);
    return rc < 0 ? rc : get_entry(st, value, len, errptr);
}

int state_value_put(weir_state *st, const void *value, size_t len,
                    char **errptr)
{
    int rc = op_begin(st, WEIR_STATE_VALUE, errptr);
    return rc < 0 ? rc : put_entry(st, value, len, errptr);
}

int state_value_delete(weir_state *st, char **errptr)
{
    int rc = op_begin(st, WEIR_STATE_VALUE, errptr);
    return rc < 0 ? rc : delete_entry(st, errptr);
}

int state_map_get(weir_state *st, const void *ukey, size_t ukey_len,
                  const void **value, size_t *len, char **errptr)
{
    int rc = op_begin_map(st, ukey, ukey_len, errptr);
    return rc < 0 ? rc : get_entry(st, value, len, errptr);
}

int state_map_put(weir_state *st, const void *ukey, size_t ukey_len,
                  const void *value, size_t len, char **errptr)
{
    int rc = op_begin_map(st, ukey, ukey_len, errptr);
    return rc < 0 ? rc : put_entry(st, value, len, errptr);
}

int state_map_delete(weir_state *st, const void *ukey, size_t ukey_len,
                     char **errptr)
{
    int rc = op_begin_map(st, ukey, ukey_len, errptr);
    return rc < 0 ? rc : delete_entry(st, errptr);
}

/* Sets ro_it's bounds to the keys that start with kbuf[0..plen). */
static void prefix_bounds(state_store *s)
{
    s->bound_lo.len = 0;
    s->bound_hi.len = 0;
    if (sbuf_add(&s->bound_lo, s->kbuf.p, s->plen) < 0 ||
        sbuf_add(&s->bound_hi, s->kbuf.p, s->plen) < 0) {
        rocksdb_readoptions_set_iterate_upper_bound(s->ro_it, NULL, 0);
        return;
    }
    /* The successor of the prefix: strip trailing 0xff, increment. */
    while (s->bound_hi.len &&
           (unsigned char)s->bound_hi.p[s->bound_hi.len - 1] == 0xff)
        s->bound_hi.len--;
    if (s->bound_hi.len) {
        s->bound_hi.p[s->bound_hi.len - 1]++;
        rocksdb_readoptions_set_iterate_upper_bound(s->ro_it, s->bound_hi.p,
                                                    s->bound_hi.len);
    } else {
        rocksdb_readoptions_set_iterate_upper_bound(s->ro_it, NULL, 0);
    }
}

/*
 * Iterates RocksDB over the current key's map entries of `st` (the caller
 * flushed the group). For each: `fn` when visible (fn may be NULL), its user
 * key appended to `want` as varint|bytes when `collect` says so
 * (1 = unexpired ones, 2 = expired ones, 3 = all; by stamp, whatever the
 * visibility).
 */
static int map_scan(state_store *s, weir_state *st, weir_map_iter_fn fn,
                    void *arg, int collect, sbuf *want, int *fn_rc,
                    char **errptr)
{
    prefix_bounds(s);
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(s->db, s->ro_it, st->cf);
    int rc = 0;
    *fn_rc = 0;
    rocksdb_iter_seek(it, s->kbuf.p, s->plen);
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen < s->plen || memcmp(k, s->kbuf.p, s->plen) != 0)
            break;
        if (vlen < STAMP_LEN) {
            rc = err_set(errptr, WEIR_EIO,
                         "state store %s, state %s: corrupt map value", s->name,
                         st->name);
            break;
        }
        int expired = is_expired(s, st, stamp_get(v));
        int visible =
            !expired || st->vis == WEIR_TTL_RETURN_EXPIRED_IF_NOT_CLEANED;
        if ((collect & (expired ? 2 : 1))) {
            char vb[10];
            size_t n = varint_put(vb, klen - s->plen);
            if (sbuf_add(want, vb, n) < 0 ||
                sbuf_add(want, k + s->plen, klen - s->plen) < 0) {
                rc = oom(s, errptr);
                break;
            }
        }
        if (!visible || !fn)
            continue;
        *fn_rc = fn(arg, k + s->plen, klen - s->plen, v + STAMP_LEN,
                    vlen - STAMP_LEN);
        if (*fn_rc != 0)
            break;
    }
    if (rc == 0) {
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        if (rerr)
            rc = rdb_fail(s, st, "iterate", rerr, errptr);
    }
    rocksdb_iter_destroy(it);
    return rc;
}

/* Calls `each` for every user key in `list` (varint|bytes entries) with
 * kbuf pointing at that map entry. */
static int for_each_ukey(state_store *s, weir_state *st, const sbuf *list,
                         int (*each)(state_store *, weir_state *, char **),
                         char **errptr)
{
    size_t off = 0;
    while (off < list->len) {
        uint64_t n = 0;
        size_t used = varint_get(list->p + off, list->len - off, &n);
        if (key_with_ukey(s, list->p + off + used, (size_t)n) < 0)
            return oom(s, errptr);
        off += used + (size_t)n;
        int rc = each(s, st, errptr);
        if (rc < 0)
            return rc;
    }
    s->kbuf.len = s->plen;
    return 0;
}

static int each_touch(state_store *s, weir_state *st, char **errptr)
{
    ent e;
    int rc = ent_load(s, st, &e, errptr);
    if (rc < 0 || !e.found)
        return rc;
    /* Expired entries were not visible, unless under return-expired. */
    if (is_expired(s, st, e.stamp) && st->vis == WEIR_TTL_NEVER_RETURN_EXPIRED)
        return 0;
    return ent_touch(s, st, &e, errptr);
}

static int each_expire(state_store *s, weir_state *st, char **errptr)
{
    ent e;
    int rc = ent_load(s, st, &e, errptr);
    if (rc < 0 || !e.found || !is_expired(s, st, e.stamp))
        return rc;
    rc = expire_entry(s, st, &e, &st->exp_read, errptr);
    return rc < 0 ? rc : 0;
}

int state_map_iter(weir_state *st, weir_map_iter_fn fn, void *arg,
                   char **errptr)
{
    int rc = op_begin(st, WEIR_STATE_MAP, errptr);
    if (rc < 0)
        return rc;
    state_store *s = st->s;
    rc = group_flush(s, st, errptr);
    if (rc < 0)
        return rc;
    int touch = st->has_ttl && st->update == WEIR_TTL_ON_READ_AND_WRITE;
    int nre = st->vis == WEIR_TTL_NEVER_RETURN_EXPIRED;
    /* Touch what was visible (each_touch skips the expired ones under
     * never-return-expired); expire what was expired under it. */
    int collect = (touch ? 3 : 0) | (nre ? 2 : 0);
    sbuf want = {0};
    int fn_rc = 0;
    rc = map_scan(s, st, fn, arg, collect, &want, &fn_rc, errptr);
    if (rc == 0 && fn_rc < 0)
        rc = fn_rc;
    /* Afterwards: refresh what was read, expire what was met expired. The
     * per-key helpers sort out which is which from the current stamps. */
    if (rc == 0 && touch)
        rc = for_each_ukey(s, st, &want, each_touch, errptr);
    if (rc == 0 && nre)
        rc = for_each_ukey(s, st, &want, each_expire, errptr);
    sbuf_free(&want);
    return rc;
}

int state_map_clear(weir_state *st, char **errptr)
{
    int rc = op_begin(st, WEIR_STATE_MAP, errptr);
    if (rc < 0)
        return rc;
    state_store *s = st->s;
    sbuf keys = {0};
    int fn_rc;
    if (hook_on(s, st) && !s->in_hook) {
        /* Expired entries see the hook before they go. */
        rc = group_flush(s, st, errptr);
        if (rc == 0)
            rc = map_scan(s, st, NULL, NULL, 2, &keys, &fn_rc, errptr);
        if (rc == 0)
            rc = for_each_ukey(s, st, &keys, each_expire, errptr);
        keys.len = 0;
        if (rc < 0)
            goto out;
    }
    rc = group_flush(s, st, errptr);
    if (rc == 0)
        rc = map_scan(s, st, NULL, NULL, 3, &keys, &fn_rc, errptr);
    if (rc < 0)
        goto out;
    group_drop(s, st);
    rocksdb_writebatch_clear(s->batch);
    for (size_t off = 0; off < keys.len;) {
        uint64_t n = 0;
        size_t used = varint_get(keys.p + off, keys.len - off, &n);
        if (key_with_ukey(s, keys.p + off + used, (size_t)n) < 0) {
            rc = oom(s, errptr);
            goto out;
        }
        off += used + (size_t)n;
        rocksdb_writebatch_delete_cf(s->batch, st->cf, s->kbuf.p, s->kbuf.len);
    }
    s->kbuf.len = s->plen;
    char *rerr = NULL;
    rocksdb_write(s->db, s->wo, s->batch, &rerr);
    rocksdb_writebatch_clear(s->batch);
    s->memo.valid = 0;
    if (rerr)
        rc = rdb_fail(s, st, "write batch", rerr, errptr);
out:
    sbuf_free(&keys);
    return rc;
}

int state_list_add(weir_state *st, const void *value, size_t len, char **errptr)
{
    int rc = op_begin(st, WEIR_STATE_LIST, errptr);
    if (rc < 0)
        return rc;
    state_store *s = st->s;
    if (len > UINT32_MAX / 2)
        return err_set(errptr, WEIR_EINVAL,
                       "state %s: list element of %zu bytes", st->name, len);
    if (!(value = own_input(s, value, len)))
        return oom(s, errptr);
    ent e;
    rc = ent_read(s, st, &e, errptr);
    if (rc < 0)
        return rc;
    /* Inside a hook, an expired list left for the sweep is replaced. */
    if (e.found && is_expired(s, st, e.stamp) &&
        st->vis == WEIR_TTL_NEVER_RETURN_EXPIRED)
        e.found = 0;
    char hdr[10];
    size_t hn = varint_put(hdr, len);
    int64_t ns = new_stamp(s, st);
    size_t total = (e.found ? e.vlen : 0) + hn + len;
    if (e.found && e.ci != STATE_CACHE_NONE &&
        total <= s->cfg.cache_max_value_bytes) {
        /* Append in place. */
        state_cache_ent *ce = state_cache_at(s->cache, e.ci);
        if (st->has_ttl && ns < ce->idx_lo) {
            rc = idx_put(s, st, ns, errptr);
            if (rc < 0)
                return rc;
            ce->idx_lo = ns;
        }
        if (state_cache_append(s->cache, e.ci, hdr, hn) < 0 ||
            state_cache_append(s->cache, e.ci, value, len) < 0)
            return oom(s, errptr);
        ce->stamp = ns;
        ce->flags |= SC_DIRTY;
        return 0;
    }
    s->tbuf.len = 0;
    if ((e.found && sbuf_add(&s->tbuf, e.val, e.vlen) < 0) ||
        sbuf_add(&s->tbuf, hdr, hn) < 0 || sbuf_add(&s->tbuf, value, len) < 0)
        return oom(s, errptr);
    return ent_store(s, st, ns, s->tbuf.p, s->tbuf.len, errptr);
}

int state_list_iter(weir_state *st, weir_map_iter_fn fn, void *arg,
                    char **errptr)
{
    int rc = op_begin(st, WEIR_STATE_LIST, errptr);
    if (rc < 0)
        return rc;
    state_store *s = st->s;
    ent e;
    rc = ent_read(s, st, &e, errptr);
    if (rc < 0 || !e.found)
        return rc;
    if (is_expired(s, st, e.stamp) && st->vis == WEIR_TTL_NEVER_RETURN_EXPIRED)
        return 0; /* inside a hook: left for the sweep */
    size_t off = 0;
    while (off < e.vlen) {
        uint64_t n = 0;
        size_t used = varint_get(e.val + off, e.vlen - off, &n);
        if (!used || n > e.vlen - off - used)
            return err_set(errptr, WEIR_EIO,
                           "state store %s, state %s: corrupt list value",
                           s->name, st->name);
        int frc = fn(arg, NULL, 0, e.val + off + used, (size_t)n);
        if (frc < 0)
            return frc;
        if (frc > 0)
            break;
        off += used + (size_t)n;
    }
    if (st->has_ttl && st->update == WEIR_TTL_ON_READ_AND_WRITE)
        return ent_touch(s, st, &e, errptr);
    return 0;
}

int state_list_clear(weir_state *st, char **errptr)
{
    int rc = op_begin(st, WEIR_STATE_LIST, errptr);
    return rc < 0 ? rc : delete_entry(st, errptr);
}

/* ------------------------------------------------------------------------ */
/* Current key and time                                                      */
/* ------------------------------------------------------------------------ */

static void publish_now(state_store *s)
{
    s->now = s->cfg.clock(s->cfg.clock_arg);
    atomic_store_explicit(&s->pub_now, s->now, memory_order_relaxed);
}

int state_set_key(state_store *s, uint16_t kg, const void *key, size_t key_len,
                  int64_t ts)
{
    if (s->in_hook)
        return WEIR_ESTATE;
    if (key_len > KEY_MAX)
        return WEIR_EINVAL;
    if (sbuf_reserve(&s->kbuf, 2 + 10 + key_len) < 0)
        return WEIR_ENOMEM;
    put_be16(s->kbuf.p, kg);
    size_t n = 2 + varint_put(s->kbuf.p + 2, key_len);
    if (key_len)
        memcpy(s->kbuf.p + n, key, key_len);
    s->plen = s->kbuf.len = n + key_len;
    s->has_key = 1;
    s->ts = ts;
    s->memo.valid = 0;
    pin_release(s);
    publish_now(s);
    return 0;
}

void state_clear_key(state_store *s)
{
    s->has_key = 0;
    s->plen = s->kbuf.len = 0;
    s->memo.valid = 0;
}

void state_set_watermark(state_store *s, int64_t watermark)
{
    if (watermark <= s->wm)
        return;
    s->wm = watermark;
    atomic_store_explicit(&s->pub_wm, watermark, memory_order_relaxed);
}

int64_t state_now(const state_store *s)
{
    return s->now;
}

/* ------------------------------------------------------------------------ */
/* Sweep                                                                     */
/* ------------------------------------------------------------------------ */

/* Makes the entry key ek the current key; 0, or -1 when malformed. */
static int key_from_entry(state_store *s, const weir_state *st, const char *ek,
                          size_t eklen)
{
    uint64_t klen = 0;
    size_t used = eklen > 2 ? varint_get(ek + 2, eklen - 2, &klen) : 0;
    if (!used || klen > eklen - 2 - used)
        return -1;
    size_t plen = 2 + used + (size_t)klen;
    if (st->kind != WEIR_STATE_MAP && plen != eklen)
        return -1;
    s->kbuf.len = 0;
    if (sbuf_add(&s->kbuf, ek, eklen) < 0)
        return -1;
    s->plen = plen;
    s->has_key = 1;
    s->ts = WEIR_TS_NONE;
    s->memo.valid = 0;
    return 0;
}

/*
 * Processes one due index entry. Returns 1 when its entry expired, 0 when it
 * was stale, or a negative code (the index entry is then kept). Adds the
 * index key's deletion to s->batch.
 */
static int sweep_one(state_store *s, const char *ik, size_t iklen,
                     char **errptr)
{
    uint16_t sid = get_be16(ik + 9);
    weir_state *st = sid < s->n_by_id ? s->by_id[sid] : NULL;
    int rc = 0, expired = 0;
    if (!st || !st->has_ttl ||
        key_from_entry(s, st, ik + IDX_HDR, iklen - IDX_HDR) < 0)
        goto done;
    ent e;
    rc = ent_load(s, st, &e, errptr);
    if (rc < 0 || !e.found)
        goto done;
    if (!is_expired(s, st, e.stamp)) {
        rc = ent_reindex(s, st, &e, errptr);
        goto done;
    }
    rc = expire_entry(s, st, &e, &st->exp_sweep, errptr);
    if (rc == EXP_GONE) {
        expired = 1;
    } else if (rc == EXP_REFRESHED) {
        rc = ent_load(s, st, &e, errptr);
        if (rc == 0 && e.found)
            rc = ent_reindex(s, st, &e, errptr);
    }
done:
    if (rc < 0)
        return rc;
    rocksdb_writebatch_delete_cf(s->ibatch, s->idx_cf, ik, iklen);
    if (!expired)
        s->stats.sweep_stale++;
    return expired;
}

/* Sweeps domain d up to `bound`, at most n entries. */
static int sweep_domain(state_store *s, int d, int64_t bound, size_t n,
                        size_t *done, size_t *n_exp, char **errptr)
{
    char lo[1] = {(char)d};
    char hi[9];
    size_t hilen = 9;
    if (bound == INT64_MAX) {
        hi[0] = (char)(d + 1);
        hilen = 1;
    } else {
        hi[0] = (char)d;
        istamp_put(hi + 1, bound + 1);
    }
    rocksdb_readoptions_set_iterate_upper_bound(s->ro_it, hi, hilen);
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(s->db, s->ro_it, s->idx_cf);
    if (s->cursor[d].len)
        rocksdb_iter_seek(it, s->cursor[d].p, s->cursor[d].len);
    else
        rocksdb_iter_seek(it, lo, 1);
    /* Copy the keys out first: hooks write while we work. */
    s->lbuf.len = 0;
    size_t got = 0;
    int rc = 0;
    for (; got < n && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        char vb[10];
        size_t vn = varint_put(vb, klen);
        if (sbuf_add(&s->lbuf, vb, vn) < 0 || sbuf_add(&s->lbuf, k, klen) < 0) {
            rc = oom(s, errptr);
            break;
        }
        got++;
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    if (rerr)
        return rdb_fail(s, NULL, "index iterate", rerr, errptr);
    if (rc < 0)
        return rc;

    rocksdb_writebatch_clear(s->ibatch);
    size_t off = 0;
    while (off < s->lbuf.len) {
        uint64_t klen = 0;
        size_t used = varint_get(s->lbuf.p + off, s->lbuf.len - off, &klen);
        const char *k = s->lbuf.p + off + used;
        off += used + (size_t)klen;
        if (klen >= IDX_HDR) {
            rc = sweep_one(s, k, (size_t)klen, errptr);
            if (rc < 0)
                break;
            *n_exp += (size_t)rc;
        } else {
            rocksdb_writebatch_delete_cf(s->ibatch, s->idx_cf, k, klen);
        }
        rc = 0;
        (*done)++;
        s->stats.sweep_visited++;
        s->cursor[d].len = 0;
        sbuf_add(&s->cursor[d], k, (size_t)klen);
        s->cursor_stamp[d] = klen >= 9 ? istamp_get(k + 1) : INT64_MIN;
    }
    /* ibatch holds the index deletions only (cache evictions during the
     * sweep use s->batch). */
    rerr = NULL;
    if (rocksdb_writebatch_count(s->ibatch))
        rocksdb_write(s->db, s->wo, s->ibatch, &rerr);
    rocksdb_writebatch_clear(s->ibatch);
    if (rerr && rc == 0)
        rc = rdb_fail(s, NULL, "index write", rerr, errptr);
    else
        free(rerr);
    return rc;
}

/* Full, non-exclusive compaction of the request's column families, with
 * the bottommost level included so that the filter sees every file. */
static void compact_run(const compact_req *r)
{
    rocksdb_compactoptions_t *co = rocksdb_compactoptions_create();
    rocksdb_compactoptions_set_exclusive_manual_compaction(co, 0);
    rocksdb_compactoptions_set_bottommost_level_compaction(co, 2 /*force*/);
    for (size_t i = 0; i < r->n; i++)
        rocksdb_compact_range_cf_opt(r->s->db, r->cfs[i], co, NULL, 0, NULL, 0);
    rocksdb_compactoptions_destroy(co);
}

static void *compactor_main(void *arg)
{
    state_env *env = arg;
    pthread_mutex_lock(&env->mu);
    for (;;) {
        while (!env->head && !env->stop)
            pthread_cond_wait(&env->cv, &env->mu);
        if (env->stop)
            break;
        compact_req *r = env->head;
        env->head = r->next;
        if (!env->head)
            env->tail = NULL;
        env->busy = r->s;
        pthread_mutex_unlock(&env->mu);
        compact_run(r);
        atomic_fetch_add(&r->s->compactions_done, 1);
        pthread_mutex_lock(&env->mu);
        env->busy = NULL;
        pthread_cond_broadcast(&env->cv);
        free(r->cfs);
        free(r);
    }
    pthread_mutex_unlock(&env->mu);
    return NULL;
}

/* Queues a periodic compaction of every column family of s (the handles
 * are copied: state_declare may add column families meanwhile). */
static int compact_request(state_store *s)
{
    state_env *env = s->env;
    compact_req *r = calloc(1, sizeof *r);
    if (r)
        r->cfs = calloc(s->n_cfs, sizeof *r->cfs);
    if (!r || !r->cfs) {
        free(r);
        return -1;
    }
    r->s = s;
    r->n = s->n_cfs;
    for (size_t i = 0; i < s->n_cfs; i++)
        r->cfs[i] = s->cfs[i].h;
    pthread_mutex_lock(&env->mu);
    int rc = 0;
    if (!env->started) {
        if (pthread_create(&env->thread, NULL, compactor_main, env) == 0)
            env->started = 1;
        else
            rc = -1;
    }
    if (rc == 0) {
        if (env->tail)
            env->tail->next = r;
        else
            env->head = r;
        env->tail = r;
        pthread_cond_broadcast(&env->cv);
    }
    pthread_mutex_unlock(&env->mu);
    if (rc < 0) {
        free(r->cfs);
        free(r);
    }
    return rc;
}

/* Before closing s: drops its queued compactions and stops a running one. */
static void compact_cancel(state_store *s)
{
    state_env *env = s->env;
    pthread_mutex_lock(&env->mu);
    compact_req **pp = &env->head, *last = NULL;
    while (*pp) {
        compact_req *r = *pp;
        if (r->s == s) {
            *pp = r->next;
            free(r->cfs);
            free(r);
        } else {
            last = r;
            pp = &r->next;
        }
    }
    env->tail = last;
    if (env->busy == s) {
        pthread_mutex_unlock(&env->mu);
        rocksdb_disable_manual_compaction(s->db);
        pthread_mutex_lock(&env->mu);
        while (env->busy == s)
            pthread_cond_wait(&env->cv, &env->mu);
    }
    pthread_mutex_unlock(&env->mu);
}

static void maybe_compact(state_store *s)
{
    if (s->cfg.compact_interval_ms <= 0 ||
        s->now - s->last_compact < s->cfg.compact_interval_ms)
        return;
    s->last_compact = s->now;
    char *err = NULL;
    if (space_check(s, s->path, prop_sum(s, "rocksdb.live-sst-files-size"),
                    "periodic compaction", &err) < 0) {
        log_msg(WEIR_LOG_WARN, s->name, "%s; skipped", err);
        free(err);
        return;
    }
    if (compact_request(s) < 0) {
        log_msg(WEIR_LOG_WARN, s->name,
                "state: periodic compaction not scheduled (out of memory or "
                "threads)");
        return;
    }
    s->stats.compactions_scheduled++;
}

int state_sweep(state_store *s, size_t budget, size_t *n_expired, char **errptr)
{
    if (n_expired)
        *n_expired = 0;
    if (s->in_hook)
        return err_set(errptr, WEIR_ESTATE,
                       "state store %s: sweep called from an expiry hook",
                       s->name);
    publish_now(s);
    pin_release(s);
    size_t done = 0, exp = 0;
    int rc = 0;
    for (int d = 0; d < 2 && done < budget && rc == 0; d++) {
        int64_t bound = d == 0 ? s->now : s->wm;
        if (bound == INT64_MIN)
            continue;
        rc = sweep_domain(s, d, bound, budget - done, &done, &exp, errptr);
    }
    state_clear_key(s);
    if (rc == 0)
        maybe_compact(s);
    if (rc == 0 && s->now - s->last_space_check >= STATE_SPACE_CHECK_MS) {
        s->last_space_check = s->now;
        rc = space_check(s, s->path, memtable_bytes(s),
                         "room for the next memtable flush", errptr);
    }
    if (n_expired)
        *n_expired = exp;
    if (rc < 0)
        return rc;
    return done > INT_MAX ? INT_MAX : (int)done;
}

/* ------------------------------------------------------------------------ */
/* Flush, checkpoint, compaction, counting                                   */
/* ------------------------------------------------------------------------ */

/* Flushes every column family's memtable, waiting for it. */
static int memtables_flush(state_store *s, char **errptr)
{
    int rc = space_check(s, s->path, memtable_bytes(s),
                         "flushing the memtables", errptr);
    for (size_t i = 0; i < s->n_cfs && rc == 0; i++) {
        char *rerr = NULL;
        rocksdb_flush_cf(s->db, s->fo, s->cfs[i].h, &rerr);
        if (rerr)
            rc = rdb_fail_host(s, "flush", rerr, s->path, errptr);
    }
    return rc;
}

int state_flush(state_store *s, char **errptr)
{
    if (s->in_hook)
        return err_set(errptr, WEIR_ESTATE,
                       "state store %s: flush called from an expiry hook",
                       s->name);
    int rc = cache_flush(s, errptr);
    return rc < 0 ? rc : memtables_flush(s, errptr);
}

/* Whether `dir` (or its nearest existing ancestor) is on the file system
 * of the store, so that a checkpoint hard-links the SSTs there. */
static int same_fs(const state_store *s, const char *dir)
{
    char *d = strdup(dir);
    struct stat a, b;
    int same = 0;
    while (d && stat(d, &a) != 0) {
        char *slash = strrchr(d, '/');
        if (!slash || slash == d)
            break;
        *slash = '\0';
    }
    if (d && stat(d, &a) == 0 && stat(s->path, &b) == 0)
        same = a.st_dev == b.st_dev;
    free(d);
    return same;
}

/* rocksdb_checkpoint_create() of the store into `dir` (after a flush). */
static int rdb_checkpoint(state_store *s, const char *dir, char **errptr)
{
    char *rerr = NULL;
    uint64_t need = STATE_CKPT_META_BYTES;
    if (!same_fs(s, dir))
        need += prop_sum(s, "rocksdb.live-sst-files-size");
    int rc = space_check(s, dir, need, "checkpoint", errptr);
    if (rc < 0) {
        err_prefix(errptr, "checkpoint to %s", dir);
        return rc;
    }
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(s->db, &rerr);
    if (rerr)
        return rdb_fail(s, NULL, "checkpoint", rerr, errptr);
    rocksdb_checkpoint_create(cp, dir, 0, &rerr);
    rocksdb_checkpoint_object_destroy(cp);
    if (rerr) {
        rc = rdb_fail_host(s, "checkpoint", rerr, dir, errptr);
        err_prefix(errptr, "checkpoint to %s", dir);
        return rc;
    }
    return 0;
}

int state_checkpoint(state_store *s, const char *dir, char **errptr)
{
    int rc = state_flush(s, errptr);
    return rc < 0 ? rc : rdb_checkpoint(s, dir, errptr);
}

static int delta_put(FILE *f, const void *p, size_t n)
{
    return fwrite(p, 1, n, f) == n ? 0 : -1;
}

/* Writes the cache's dirty entries to `path`; returns how many (0: no file
 * was written) or a negative code (FS_ENOSPC for want of space), after
 * which no file is left. */
static int delta_write(state_store *s, const char *path, char **errptr)
{
    if (!s->cache)
        return 0;
    FILE *f = NULL;
    int n = 0, bad = 0, e = 0;
    for (uint32_t i = 0; i < s->cache->max && !bad; i++) {
        state_cache_ent *ce = &s->cache->ents[i];
        if ((ce->flags & (SC_USED | SC_DIRTY)) != (SC_USED | SC_DIRTY))
            continue;
        if (!f && (!(f = fopen(path, "wb")) || delta_put(f, DELTA_MAGIC, 4))) {
            bad = 1;
            break;
        }
        char hd[7 + 8 + 4];
        int del = (ce->flags & SC_ABSENT) != 0;
        put_be16(hd, ce->sid);
        hd[2] = (char)del;
        put_be32(hd + 3, ce->klen);
        bad = delta_put(f, hd, 7) || delta_put(f, ce->buf, ce->klen);
        if (!del && !bad) {
            stamp_put(hd + 7, ce->stamp);
            put_be32(hd + 15, ce->vlen);
            bad = delta_put(f, hd + 7, 12) ||
                  delta_put(f, state_cache_val(ce), ce->vlen);
        }
        n++;
    }
    if (f && !bad)
        bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    if (bad)
        e = errno;
    if (f && fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad)
        return n;
    if (f)
        unlink(path);
    return fs_write_error(errptr, e ? e : EIO, path, "state store %s: delta %s",
                          s->name, path);
}

int state_checkpoint_delta(state_store *s, const char *dir, const char *delta,
                           int *wrote_delta, char **errptr)
{
    *wrote_delta = 0;
    if (s->in_hook)
        return err_set(errptr, WEIR_ESTATE,
                       "state store %s: checkpoint called from an expiry hook",
                       s->name);
    int rc = memtables_flush(s, errptr);
    if (rc < 0 || (rc = rdb_checkpoint(s, dir, errptr)) < 0)
        return rc;
    int n = delta_write(s, delta, errptr);
    if (n < 0)
        return n;
    *wrote_delta = n > 0;
    return 0;
}

static state_cfh *cfh_find(state_store *s, const char *name);

/* The column family of stored state id `sid`, or NULL. */
static rocksdb_column_family_handle_t *delta_cf(state_store *s, uint16_t sid)
{
    for (size_t i = 0; i < s->n_meta; i++) {
        if (s->meta[i].id != sid)
            continue;
        char cfname[NAME_MAX_LEN + 8];
        snprintf(cfname, sizeof cfname, STATE_CF_PREFIX "%s", s->meta[i].name);
        state_cfh *c = cfh_find(s, cfname);
        return c ? c->h : NULL;
    }
    return NULL;
}

/* Applies the delta file `path` (see state_checkpoint_delta) to RocksDB. */
static int delta_apply(state_store *s, const char *path, char **errptr)
{
    char *data = NULL;
    size_t len = 0;
    int rc = fs_read_file(path, &data, &len, errptr);
    if (rc < 0)
        return rc;
    const char *p = data, *end = data + len;
    rc = len < 4 || memcmp(p, DELTA_MAGIC, 4) != 0 ? -1 : 0;
    p += 4;
    rocksdb_writebatch_clear(s->batch);
    while (rc == 0 && p < end) {
        rocksdb_column_family_handle_t *cf =
            end - p >= 7 ? delta_cf(s, get_be16(p)) : NULL;
        uint32_t klen = cf ? get_be32(p + 3) : 0;
        if (!cf || (size_t)(end - p - 7) < klen) {
            rc = -1;
            break;
        }
        int del = p[2] != 0;
        const char *k = p + 7;
        p = k + klen;
        if (del) {
            rocksdb_writebatch_delete_cf(s->batch, cf, k, klen);
            continue;
        }
        uint32_t vlen = end - p >= 12 ? get_be32(p + 8) : 0;
        if (end - p < 12 || (size_t)(end - p - 12) < vlen) {
            rc = -1;
            break;
        }
        const char *keys[1] = {k};
        size_t klens[1] = {klen};
        const char *vals[2] = {p, p + 12};
        size_t vlens[2] = {STAMP_LEN, vlen};
        rocksdb_writebatch_putv_cf(s->batch, cf, 1, keys, klens, 2, vals,
                                   vlens);
        p += 12 + vlen;
    }
    size_t at = (size_t)(p - data);
    free(data);
    if (rc < 0) {
        rocksdb_writebatch_clear(s->batch);
        return err_set(errptr, WEIR_EIO,
                       "state store %s: delta %s is damaged (at byte %zu)",
                       s->name, path, at);
    }
    char *rerr = NULL;
    rocksdb_write(s->db, s->wo, s->batch, &rerr);
    rocksdb_writebatch_clear(s->batch);
    return rerr ? rdb_fail_host(s, "applying the delta", rerr, s->path, errptr)
                : 0;
}

int state_compact(state_store *s, char **errptr)
{
    int rc = state_flush(s, errptr);
    if (rc < 0)
        return rc;
    rocksdb_compactoptions_t *co = rocksdb_compactoptions_create();
    rocksdb_compactoptions_set_bottommost_level_compaction(co, 2 /*force*/);
    for (size_t i = 0; i < s->n_cfs; i++)
        rocksdb_compact_range_cf_opt(s->db, s->cfs[i].h, co, NULL, 0, NULL, 0);
    rocksdb_compactoptions_destroy(co);
    return 0;
}

int state_scan_count(state_store *s, weir_state *st, uint64_t *out,
                     char **errptr)
{
    *out = 0;
    int rc = cache_flush(s, errptr);
    if (rc < 0)
        return rc;
    rocksdb_readoptions_set_iterate_upper_bound(s->ro_it, NULL, 0);
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(s->db, s->ro_it, st ? st->cf : s->idx_cf);
    uint64_t n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
         rocksdb_iter_next(it))
        n++;
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    if (rerr)
        return rdb_fail(s, st, "iterate", rerr, errptr);
    *out = n;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */
/* ------------------------------------------------------------------------ */

static uint64_t prop(state_store *s, rocksdb_column_family_handle_t *cf,
                     const char *name)
{
    uint64_t v = 0;
    if (rocksdb_property_int_cf(s->db, cf, name, &v) != 0)
        return 0;
    return v;
}

static void leak_check(state_store *s, weir_state *st)
{
    uint64_t keys = st->est_keys;
    if (st->has_ttl || !st->sampled) {
        st->streak = 0;
        st->leak = 0;
    } else if (keys > st->prev_keys) {
        if (st->streak == 0)
            st->streak_base = st->prev_keys;
        st->streak++;
    } else {
        st->streak = 0;
        st->leak = 0;
    }
    uint32_t n = s->cfg.leak_samples ? s->cfg.leak_samples : 5;
    if (!st->has_ttl && st->streak >= n && !st->leak) {
        st->leak = 1;
        log_msg(WEIR_LOG_WARN, s->name,
                "state '%s' (%s state, no TTL) grew at %u consecutive "
                "samples, %" PRIu64 " -> %" PRIu64
                " keys: probable state leak; declare it with a TTL or "
                "delete the keys it no longer needs",
                st->name, kind_name(st->kind), st->streak, st->streak_base,
                keys);
    }
    st->prev_keys = keys;
    st->sampled = 1;
}

int state_stats_sample(state_store *s, char **errptr)
{
    int64_t *delta = NULL;
    if (s->cache && s->cache->used) {
        delta = calloc(s->n_by_id, sizeof *delta);
        if (!delta)
            return oom(s, errptr);
        for (uint32_t i = 0; i < s->cache->max; i++) {
            const state_cache_ent *ce = &s->cache->ents[i];
            if (!(ce->flags & SC_DIRTY))
                continue;
            int known = ce->flags & SC_DISK_KNOWN;
            int present = ce->flags & SC_DISK_PRESENT;
            if (ce->flags & SC_ABSENT) {
                if (known && present)
                    delta[ce->sid]--;
            } else if (!known || !present) {
                delta[ce->sid]++;
            }
        }
    }
    for (size_t i = 0; i < s->n_states; i++) {
        weir_state *st = s->states[i];
        int64_t keys = (int64_t)prop(s, st->cf, "rocksdb.estimate-num-keys") +
                       (delta ? delta[st->id] : 0);
        st->est_keys = keys > 0 ? (uint64_t)keys : 0;
        st->live_bytes = prop(s, st->cf, "rocksdb.estimate-live-data-size") +
                         prop(s, st->cf, "rocksdb.cur-size-all-mem-tables");
        leak_check(s, st);
    }
    free(delta);
    return 0;
}

size_t state_count(const state_store *s)
{
    return s->n_states;
}

weir_state *state_at(const state_store *s, size_t i)
{
    return i < s->n_states ? s->states[i] : NULL;
}

void state_stats_get(const weir_state *st, state_stats *out)
{
    memset(out, 0, sizeof *out);
    out->name = st->name;
    out->kind = st->kind;
    out->has_ttl = st->has_ttl;
    out->ttl_ms = st->has_ttl ? st->ttl_ms : WEIR_TTL_NONE;
    out->hook = hook_on(st->s, st);
    out->est_keys = st->est_keys;
    out->live_bytes = st->live_bytes;
    out->expired_read = st->exp_read;
    out->expired_sweep = st->exp_sweep;
    out->expired_compaction =
        atomic_load_explicit(&st->filter->dropped, memory_order_relaxed);
    out->hook_calls = st->hook_calls;
    out->growth_streak = st->streak;
    out->leak_suspected = st->leak;
}

void state_store_stats_get(const state_store *s, state_store_stats *out)
{
    *out = s->stats;
    out->cache_used = s->cache ? s->cache->used : 0;
    out->compactions_done = atomic_load(&s->compactions_done);
}

/* ------------------------------------------------------------------------ */
/* Declaring                                                                 */
/* ------------------------------------------------------------------------ */

const char *state_name(const weir_state *st)
{
    return st->name;
}

weir_state_kind state_kind(const weir_state *st)
{
    return st->kind;
}

state_store *state_store_of(const weir_state *st)
{
    return st->s;
}

/* Every open store, so that a state handle can be traced to the store that
 * declared it without dereferencing the handle (state_owner_name). The lock
 * also guards every change of a store's `states` array, which its own
 * thread reads without it. */
static pthread_mutex_t owners_lock = PTHREAD_MUTEX_INITIALIZER;
static state_store *owners_head;

static void owners_link(state_store *s)
{
    pthread_mutex_lock(&owners_lock);
    s->owners_next = owners_head;
    owners_head = s;
    pthread_mutex_unlock(&owners_lock);
}

static void owners_unlink(state_store *s)
{
    pthread_mutex_lock(&owners_lock);
    for (state_store **p = &owners_head; *p; p = &(*p)->owners_next)
        if (*p == s) {
            *p = s->owners_next;
            break;
        }
    pthread_mutex_unlock(&owners_lock);
}

int state_owned(const state_store *s, const weir_state *st)
{
    for (size_t i = 0; s && i < s->n_states; i++)
        if (s->states[i] == st)
            return 1;
    return 0;
}

int state_owner_name(const weir_state *st, char *buf, size_t cap)
{
    int rc = WEIR_ENOTFOUND;
    pthread_mutex_lock(&owners_lock);
    for (state_store *s = owners_head; s && rc; s = s->owners_next)
        if (state_owned(s, st)) {
            snprintf(buf, cap, "%s", s->name);
            rc = 0;
        }
    pthread_mutex_unlock(&owners_lock);
    return rc;
}

static int valid_name(const char *name)
{
    size_t n = 0;
    for (; name[n]; n++) {
        char c = name[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return n >= 1 && n <= NAME_MAX_LEN;
}

/* Checks and normalises a plugin's descriptor into *d. */
static int desc_check(state_store *s, const weir_state_desc *in,
                      weir_state_desc *d, char **errptr)
{
    memset(d, 0, sizeof *d);
    if (!in || in->size < offsetof(weir_state_desc, ttl_ms) + sizeof(int64_t))
        return err_set(errptr, WEIR_EINVAL,
                       "state declaration: descriptor missing or too small "
                       "(size %u)",
                       in ? in->size : 0);
    memcpy(d, in, in->size < sizeof *d ? in->size : sizeof *d);
    d->size = sizeof *d;
    const char *name = d->name ? d->name : "(null)";
    if (!d->name || !valid_name(d->name))
        return err_set(errptr, WEIR_EINVAL,
                       "state '%s': a state name is 1 to %d characters out "
                       "of a-z, 0-9 and _",
                       name, NAME_MAX_LEN);
    for (size_t i = 0; i < s->n_states; i++)
        if (strcmp(s->states[i]->name, d->name) == 0)
            return err_set(errptr, WEIR_EINVAL, "state '%s' is declared twice",
                           name);
    if (d->kind != WEIR_STATE_VALUE && d->kind != WEIR_STATE_MAP &&
        d->kind != WEIR_STATE_LIST)
        return err_set(errptr, WEIR_EINVAL, "state '%s': unknown kind %d", name,
                       (int)d->kind);
    if (d->ttl_ms == 0)
        return err_set(errptr, WEIR_EINVAL,
                       "state '%s': ttl_ms is 0; give entries a lifetime "
                       "(ttl_ms > 0) or declare explicitly that they never "
                       "expire with ttl_ms = WEIR_TTL_NONE (such a state is "
                       "reported as a leak risk)",
                       name);
    if (d->ttl_ms < 0 && d->ttl_ms != WEIR_TTL_NONE)
        return err_set(errptr, WEIR_EINVAL,
                       "state '%s': ttl_ms %" PRId64
                       " is negative; use a positive duration or "
                       "WEIR_TTL_NONE",
                       name, d->ttl_ms);
    if ((unsigned)d->ttl_update > WEIR_TTL_ON_READ_AND_WRITE ||
        (unsigned)d->ttl_visibility > WEIR_TTL_RETURN_EXPIRED_IF_NOT_CLEANED ||
        (unsigned)d->ttl_domain > WEIR_TIME_EVENT)
        return err_set(errptr, WEIR_EINVAL,
                       "state '%s': unknown TTL update, visibility or time "
                       "domain (%d, %d, %d)",
                       name, (int)d->ttl_update, (int)d->ttl_visibility,
                       (int)d->ttl_domain);
    return 0;
}

static state_cfh *cfh_find(state_store *s, const char *name)
{
    for (size_t i = 0; i < s->n_cfs; i++)
        if (strcmp(s->cfs[i].name, name) == 0)
            return &s->cfs[i];
    return NULL;
}

static state_meta *meta_find(state_store *s, const char *name)
{
    for (size_t i = 0; i < s->n_meta; i++)
        if (strcmp(s->meta[i].name, name) == 0)
            return &s->meta[i];
    return NULL;
}

/* Creates the filter of a state column family and sets it in `opts`. */
static int filter_new(state_store *s, rocksdb_options_t *opts, state_cfh *cfh)
{
    cfh->filter = calloc(1, sizeof *cfh->filter);
    if (!cfh->filter)
        return -1;
    cfh->filter->now = &s->pub_now;
    cfh->filter->wm = &s->pub_wm;
    atomic_init(&cfh->filter->mode, FILTER_KEEP);
    atomic_init(&cfh->filter->dropped, 0);
    cfh->cfilter = rocksdb_compactionfilter_create(cfh->filter, filter_noop,
                                                   filter_fn, filter_name);
    rocksdb_options_set_compaction_filter(opts, cfh->cfilter);
    return 0;
}

static int add_cfh(state_store *s, const char *name, state_cfh **out)
{
    state_cfh *cfs = realloc(s->cfs, (s->n_cfs + 1) * sizeof *cfs);
    if (!cfs)
        return -1;
    s->cfs = cfs;
    state_cfh *c = &cfs[s->n_cfs];
    memset(c, 0, sizeof *c);
    c->name = strdup(name);
    if (!c->name)
        return -1;
    s->n_cfs++;
    *out = c;
    return 0;
}

/* The column family of state `name`, created when missing. */
static int state_cf(state_store *s, const char *name, state_cfh **out,
                    char **errptr)
{
    char cfname[NAME_MAX_LEN + 8];
    snprintf(cfname, sizeof cfname, STATE_CF_PREFIX "%s", name);
    state_cfh *c = cfh_find(s, cfname);
    if (c) {
        *out = c;
        return 0;
    }
    if (add_cfh(s, cfname, &c) < 0)
        return oom(s, errptr);
    /* Same settings as the template, plus this CF's own filter. */
    rocksdb_options_t *o = rocksdb_options_create_copy(s->state_opts);
    if (filter_new(s, o, c) < 0) {
        rocksdb_options_destroy(o);
        return oom(s, errptr);
    }
    char *rerr = NULL;
    c->h = rocksdb_create_column_family(s->db, o, cfname, &rerr);
    rocksdb_options_destroy(o);
    if (rerr)
        return rdb_fail(s, NULL, "create column family", rerr, errptr);
    *out = c;
    return 0;
}

int state_declare(state_store *s, const weir_state_desc *desc, int hook_wanted,
                  weir_state **out, char **errptr)
{
    *out = NULL;
    if (s->in_hook)
        return err_set(errptr, WEIR_ESTATE,
                       "state declaration from an expiry hook");
    weir_state_desc d;
    int rc = desc_check(s, desc, &d, errptr);
    if (rc < 0)
        return rc;
    state_meta *m = meta_find(s, d.name);
    if (m && m->kind != (uint8_t)d.kind)
        return err_set(errptr, WEIR_EINVAL,
                       "state '%s' is stored in %s as a %s state and "
                       "cannot be declared as a %s state",
                       d.name, s->path, kind_name((weir_state_kind)m->kind),
                       kind_name(d.kind));
    if (!m) {
        if (s->next_id > ID_MAX)
            return err_set(errptr, WEIR_EINVAL,
                           "state store %s: too many states", s->name);
        state_meta *meta = realloc(s->meta, (s->n_meta + 1) * sizeof *meta);
        if (!meta)
            return oom(s, errptr);
        s->meta = meta;
        m = &meta[s->n_meta];
        m->name = strdup(d.name);
        if (!m->name)
            return oom(s, errptr);
        m->id = (uint16_t)s->next_id++;
        m->kind = (uint8_t)d.kind;
        s->n_meta++;
        char key[sizeof META_STATE_PREFIX + NAME_MAX_LEN];
        snprintf(key, sizeof key, META_STATE_PREFIX "%s", d.name);
        char val[3];
        put_be16(val, m->id);
        val[2] = (char)m->kind;
        char *rerr = NULL;
        rocksdb_put_cf(s->db, s->wo_meta, s->meta_cf, key, strlen(key), val, 3,
                       &rerr);
        if (rerr)
            return rdb_fail(s, NULL, "metadata put", rerr, errptr);
    }
    state_cfh *c = NULL;
    rc = state_cf(s, d.name, &c, errptr);
    if (rc < 0)
        return rc;

    pthread_mutex_lock(&owners_lock);
    weir_state **states =
        realloc(s->states, (s->n_states + 1) * sizeof *states);
    if (states)
        s->states = states;
    pthread_mutex_unlock(&owners_lock);
    if (!states)
        return oom(s, errptr);
    weir_state *st = calloc(1, sizeof *st);
    if (!st || !(st->name = strdup(d.name))) {
        free(st);
        return oom(s, errptr);
    }
    st->s = s;
    st->id = m->id;
    st->kind = d.kind;
    st->has_ttl = d.ttl_ms > 0;
    st->ttl_ms = d.ttl_ms;
    st->update = d.ttl_update;
    st->vis = d.ttl_visibility;
    st->domain = d.ttl_domain;
    st->hook_wanted = hook_wanted != 0;
    st->cf = c->h;
    st->filter = c->filter;
    int mode = FILTER_KEEP;
    if (st->has_ttl && !hook_on(s, st))
        mode = st->domain == WEIR_TIME_EVENT ? FILTER_EVENT : FILTER_PROC;
    atomic_store(&c->filter->mode, mode);
    if (st->id >= s->n_by_id) {
        size_t n = (size_t)st->id + 1;
        weir_state **by_id = realloc(s->by_id, n * sizeof *by_id);
        if (!by_id) {
            free(st->name);
            free(st);
            return oom(s, errptr);
        }
        memset(by_id + s->n_by_id, 0, (n - s->n_by_id) * sizeof *by_id);
        s->by_id = by_id;
        s->n_by_id = n;
    }
    pthread_mutex_lock(&owners_lock);
    s->states[s->n_states++] = st;
    pthread_mutex_unlock(&owners_lock);
    s->by_id[st->id] = st;
    if ((rc = state_admin_declared(st, errptr)) < 0) /* TTL overrides */
        return rc;
    if (!st->has_ttl)
        log_msg(WEIR_LOG_WARN, s->name,
                "state '%s' is declared without a TTL: its keys never "
                "expire, so it is watched as a leak risk",
                st->name);
    *out = st;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                            */
/* ------------------------------------------------------------------------ */

void state_store_config_init(state_store_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->cache_entries = 100000;
    cfg->cache_max_value_bytes = 64 * 1024;
    cfg->leak_samples = 5;
    cfg->compact_interval_ms = INT64_C(24) * 3600 * 1000;
    cfg->min_free_bytes = UINT64_C(64) << 20;
}

static int bad_component(const char *c)
{
    return !c || !*c || strcmp(c, ".") == 0 || strcmp(c, "..") == 0 ||
           strchr(c, '/') != NULL;
}

int state_store_path(const char *state_dir, const char *job, const char *op_id,
                     uint32_t subtask, char **out, char **errptr)
{
    *out = NULL;
    if (!state_dir || !*state_dir)
        return err_set(errptr, WEIR_EINVAL, "state: empty state directory");
    if (bad_component(job) || bad_component(op_id))
        return err_set(errptr, WEIR_EINVAL,
                       "state: job '%s' and operator id '%s' must be "
                       "non-empty names without '/'",
                       job ? job : "", op_id ? op_id : "");
    if (asprintf(out, "%s/%s/%s/%" PRIu32, state_dir, job, op_id, subtask) <
        0) {
        *out = NULL;
        return err_set(errptr, WEIR_ENOMEM, "state: out of memory");
    }
    return 0;
}

/* Options shared by every column family: the env's block cache, bloom
 * filters, this store's share of the memtable budget. */
static rocksdb_options_t *cf_options(state_store *s)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_block_based_table_options_t *t =
        rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(t, s->env->cache);
    rocksdb_block_based_options_set_filter_policy(
        t, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_options_set_block_based_table_factory(o, t);
    rocksdb_block_based_options_destroy(t);
    uint64_t share = env_share(s->env);
    rocksdb_options_set_write_buffer_size(o, (size_t)(share / 2));
    rocksdb_options_set_max_write_buffer_number(o, 2);
    return o;
}

static rocksdb_options_t *db_options(state_store *s)
{
    rocksdb_options_t *o = cf_options(s);
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    rocksdb_options_set_env(o, s->env->renv);
    rocksdb_options_set_db_write_buffer_size(o, (size_t)env_share(s->env));
    rocksdb_options_set_max_background_jobs(o,
                                            s->env->cfg.background_threads + 1);
    /* The LOG keeps its header only: a LOG line that RocksDB 7.8 fails to
     * write on a full disk makes the next one abort the process, and the
     * errors it would log reach the caller as statuses anyway. */
    rocksdb_options_set_info_log_level(o, STATE_LOG_HEADER_ONLY);
    rocksdb_options_set_keep_log_file_num(o, 2);
    rocksdb_options_set_max_log_file_size(o, 1 << 20);
    rocksdb_options_set_manifest_preallocation_size(o, STATE_MANIFEST_PREALLOC);
    return o;
}

static int is_lock_error(const char *msg)
{
    return strstr(msg, "LOCK") || strstr(msg, "lock hold") ||
           strstr(msg, "Resource temporarily unavailable");
}

/* Opens RocksDB with every column family the directory has, plus the
 * index. */
static int open_db(state_store *s, char **errptr)
{
    int rc = 0;
    rocksdb_options_t *dbo = db_options(s);
    rocksdb_options_t *plain = cf_options(s);
    char *rerr = NULL;
    size_t n_listed = 0;
    char **listed =
        rocksdb_list_column_families(dbo, s->path, &n_listed, &rerr);
    if (rerr) { /* a new directory (the C API still allocates a list) */
        free(rerr);
        rerr = NULL;
        n_listed = 0;
    }
    const char *must[3] = {"default", INDEX_CF, STATE_TIMER_CF};
    for (size_t i = 0; i < n_listed; i++) {
        state_cfh *c;
        if (add_cfh(s, listed[i], &c) < 0)
            goto nomem;
    }
    for (int i = 0; i < 3; i++) {
        state_cfh *c;
        if (!cfh_find(s, must[i]) && add_cfh(s, must[i], &c) < 0)
            goto nomem;
    }
    size_t n = s->n_cfs;
    const char **names = calloc(n, sizeof *names);
    rocksdb_options_t **opts = calloc(n, sizeof *opts);
    rocksdb_column_family_handle_t **hs = calloc(n, sizeof *hs);
    if (!names || !opts || !hs) {
        free(names), free(opts), free(hs);
        goto nomem;
    }
    for (size_t i = 0; i < n; i++) {
        state_cfh *c = &s->cfs[i];
        names[i] = c->name;
        opts[i] = plain;
        if (strncmp(c->name, STATE_CF_PREFIX, strlen(STATE_CF_PREFIX)) == 0) {
            opts[i] = rocksdb_options_create_copy(s->state_opts);
            if (filter_new(s, opts[i], c) < 0) {
                rocksdb_options_destroy(opts[i]);
                opts[i] = plain;
                rc = oom(s, errptr);
            }
        } else if (strcmp(c->name, STATE_TIMER_CF) == 0) {
            opts[i] = rocksdb_options_create_copy(plain);
            state_timer_cf_options(opts[i]);
        }
    }
    if (rc == 0) {
        s->db = rocksdb_open_column_families(
            dbo, s->path, (int)n, names, (const rocksdb_options_t *const *)opts,
            hs, &rerr);
    }
    for (size_t i = 0; i < n; i++) {
        if (opts[i] != plain)
            rocksdb_options_destroy(opts[i]);
        s->cfs[i].h = s->db ? hs[i] : NULL;
    }
    free(names), free(opts), free(hs);
    if (rc == 0 && rerr && rdb_nospace(rerr)) {
        rc = rdb_fail_host(s, "open", rerr, s->path, errptr);
    } else if (rc == 0 && rerr) {
        if (is_lock_error(rerr))
            rc = err_set(errptr, WEIR_EIO,
                         "state directory %s is in use: its lock file "
                         "%s/LOCK is held by another process (another host "
                         "or worker running this subtask) or by another "
                         "store of this process (%s)",
                         s->path, s->path, rerr);
        else
            rc = err_set(errptr, WEIR_EIO, "cannot open state directory %s: %s",
                         s->path, rerr);
        free(rerr);
    }
    goto out;
nomem:
    rc = oom(s, errptr);
out:
    if (listed)
        rocksdb_list_column_families_destroy(listed, n_listed);
    rocksdb_options_destroy(dbo);
    rocksdb_options_destroy(plain);
    if (rc == 0) {
        s->meta_cf = cfh_find(s, "default")->h;
        s->idx_cf = cfh_find(s, INDEX_CF)->h;
        s->timer_cf = cfh_find(s, STATE_TIMER_CF)->h;
    }
    return rc;
}

/* Reads the format and the known states from the metadata. */
static int load_meta(state_store *s, char **errptr)
{
    char *rerr = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(s->db, s->ro, s->meta_cf, META_FORMAT_KEY,
                             strlen(META_FORMAT_KEY), &vlen, &rerr);
    if (rerr)
        return rdb_fail(s, NULL, "metadata get", rerr, errptr);
    if (v &&
        (vlen != strlen(META_FORMAT) || memcmp(v, META_FORMAT, vlen) != 0)) {
        int rc = err_set(errptr, WEIR_EINVAL,
                         "state directory %s has format '%.*s'; this host "
                         "reads format " META_FORMAT,
                         s->path, (int)vlen, v);
        rocksdb_free(v);
        return rc;
    }
    if (!v) {
        rocksdb_put_cf(s->db, s->wo_meta, s->meta_cf, META_FORMAT_KEY,
                       strlen(META_FORMAT_KEY), META_FORMAT,
                       strlen(META_FORMAT), &rerr);
        if (rerr)
            return rdb_fail(s, NULL, "metadata put", rerr, errptr);
    }
    rocksdb_free(v);

    size_t plen = strlen(META_STATE_PREFIX);
    rocksdb_readoptions_set_iterate_upper_bound(s->ro_it, NULL, 0);
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(s->db, s->ro_it, s->meta_cf);
    int rc = 0;
    for (rocksdb_iter_seek(it, META_STATE_PREFIX, plen); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, mlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *mv = rocksdb_iter_value(it, &mlen);
        if (klen < plen || memcmp(k, META_STATE_PREFIX, plen) != 0)
            break;
        if (mlen < 3 || klen - plen > NAME_MAX_LEN)
            continue;
        state_meta *meta = realloc(s->meta, (s->n_meta + 1) * sizeof *meta);
        if (!meta) {
            rc = oom(s, errptr);
            break;
        }
        s->meta = meta;
        state_meta *m = &meta[s->n_meta];
        m->name = strndup(k + plen, klen - plen);
        if (!m->name) {
            rc = oom(s, errptr);
            break;
        }
        m->id = get_be16(mv);
        m->kind = (uint8_t)mv[2];
        s->n_meta++;
        if ((uint32_t)m->id + 1 > s->next_id)
            s->next_id = (uint32_t)m->id + 1;
    }
    rocksdb_iter_destroy(it);
    return rc;
}

static void store_free(state_store *s)
{
    owners_unlink(s);
    state_admin_free(s);
    pin_release(s);
    state_timer_detach(s->timers);
    if (s->db && s->env)
        compact_cancel(s);
    for (size_t i = 0; i < s->n_cfs; i++)
        if (s->cfs[i].h)
            rocksdb_column_family_handle_destroy(s->cfs[i].h);
    if (s->db)
        rocksdb_close(s->db);
    for (size_t i = 0; i < s->n_cfs; i++) {
        if (s->cfs[i].cfilter)
            rocksdb_compactionfilter_destroy(s->cfs[i].cfilter);
        free(s->cfs[i].filter);
        free(s->cfs[i].name);
    }
    free(s->cfs);
    for (size_t i = 0; i < s->n_meta; i++)
        free(s->meta[i].name);
    free(s->meta);
    for (size_t i = 0; i < s->n_states; i++) {
        free(s->states[i]->name);
        free(s->states[i]);
    }
    free(s->states);
    free(s->by_id);
    if (s->state_opts)
        rocksdb_options_destroy(s->state_opts);
    if (s->wo)
        rocksdb_writeoptions_destroy(s->wo);
    if (s->wo_meta)
        rocksdb_writeoptions_destroy(s->wo_meta);
    if (s->ro)
        rocksdb_readoptions_destroy(s->ro);
    if (s->ro_it)
        rocksdb_readoptions_destroy(s->ro_it);
    if (s->fo)
        rocksdb_flushoptions_destroy(s->fo);
    if (s->batch)
        rocksdb_writebatch_destroy(s->batch);
    if (s->ibatch)
        rocksdb_writebatch_destroy(s->ibatch);
    state_cache_free(s->cache);
    free(s->victims);
    sbuf *bufs[] = {&s->kbuf,      &s->kbuf_hook, &s->idxs,     &s->wbuf,
                    &s->tbuf,      &s->ibuf,      &s->hbuf,     &s->lbuf,
                    &s->abuf,      &s->bound_lo,  &s->bound_hi, &s->memo.key,
                    &s->cursor[0], &s->cursor[1]};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        sbuf_free(bufs[i]);
    if (s->env) {
        pthread_mutex_lock(&s->env->mu);
        s->env->n_open--;
        pthread_mutex_unlock(&s->env->mu);
    }
    free(s->path);
    free(s->name);
    free(s);
}

int state_store_open(state_env *env, const state_store_config *cfg,
                     state_store **out, char **errptr)
{
    *out = NULL;
    if (!env || !cfg || !cfg->path || !*cfg->path)
        return err_set(errptr, WEIR_EINVAL,
                       "state store: no environment or path");
    if (cfg->cache_entries > (UINT32_MAX >> 4))
        return err_set(errptr, WEIR_EINVAL,
                       "state store %s: cache of %zu entries is too large",
                       cfg->path, cfg->cache_entries);
    state_store *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(errptr, WEIR_ENOMEM, "state store: out of memory");
    s->cfg = *cfg;
    s->path = strdup(cfg->path);
    s->name = strdup(cfg->name ? cfg->name : cfg->path);
    s->cfg.path = s->path;
    s->cfg.name = s->name;
    if (!s->cfg.clock)
        s->cfg.clock = realtime_ms;
    s->wm = WEIR_WATERMARK_MIN;
    s->ts = WEIR_TS_NONE;
    atomic_init(&s->pub_wm, WEIR_WATERMARK_MIN);
    atomic_init(&s->pub_now, 0);
    pthread_mutex_lock(&env->mu);
    s->env = env;
    env->n_open++;
    int warn = env->n_open > env->cfg.expected_stores && !env->warned;
    if (warn)
        env->warned = 1;
    pthread_mutex_unlock(&env->mu);
    if (warn)
        log_msg(WEIR_LOG_WARN, "state",
                "more state stores open (%u) than the write-buffer budget "
                "was divided for (%u): memtables may exceed the budget",
                env->n_open, env->cfg.expected_stores);

    int rc = 0;
    if (!s->path || !s->name) {
        rc = err_set(errptr, WEIR_ENOMEM, "state store: out of memory");
        goto fail;
    }
    if ((rc = fs_mkdirs(s->path, errptr)) < 0 ||
        (rc = space_check(s, s->path, open_bytes(s), "opening", errptr)) < 0)
        goto fail;
    s->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(s->wo, 1);
    s->wo_meta = rocksdb_writeoptions_create();
    s->ro = rocksdb_readoptions_create();
    s->ro_it = rocksdb_readoptions_create();
    s->fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(s->fo, 1);
    s->batch = rocksdb_writebatch_create();
    s->ibatch = rocksdb_writebatch_create();
    s->state_opts = cf_options(s);
    if (s->cfg.cache_entries) {
        s->cache = state_cache_new((uint32_t)s->cfg.cache_entries);
        s->evict_batch = s->cfg.cache_entries / 16;
        if (s->evict_batch < 1)
            s->evict_batch = 1;
        if (s->evict_batch > 16384)
            s->evict_batch = 16384;
        s->victims = calloc(s->evict_batch, sizeof *s->victims);
        if (!s->cache || !s->victims) {
            rc = oom(s, errptr);
            goto fail;
        }
    }
    rc = open_db(s, errptr);
    if (rc == 0)
        rc = load_meta(s, errptr);
    if (rc == 0 && s->cfg.restore_delta)
        rc = delta_apply(s, s->cfg.restore_delta, errptr);
    if (rc == 0)
        rc =
            state_timer_attach(s->db, s->timer_cf, s->name, &s->timers, errptr);
    if (rc < 0)
        goto fail;
    publish_now(s);
    s->last_compact = s->last_space_check = s->now;
    owners_link(s);
    *out = s;
    return 0;
fail:
    store_free(s);
    return rc;
}

/* Private hooks for timers.c (state.h). */
const char *state_key_bytes(const state_store *s, size_t *len)
{
    *len = s->has_key ? s->plen : 0;
    return s->has_key ? s->kbuf.p : NULL;
}

int state_in_hook(const state_store *s)
{
    return s->in_hook;
}

struct state_timers *state_timers_of(const state_store *s)
{
    return s->timers;
}

int state_store_close(state_store *s, char **errptr)
{
    if (!s)
        return 0;
    int rc = 0;
    if (s->db) {
        s->in_hook = 0;
        rc = state_flush(s, errptr);
        if (rc < 0)
            err_prefix(errptr, "closing state store %s", s->name);
    }
    store_free(s);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Private hooks for state_admin.c (state.h)                                 */
/* ------------------------------------------------------------------------ */

void state_raw_get(weir_state *st, state_raw *out)
{
    state_store *s = st->s;
    publish_now(s);
    *out = (state_raw){.db = s->db,
                       .cf = st->cf,
                       .idx_cf = s->idx_cf,
                       .meta_cf = s->meta_cf,
                       .store_name = s->name,
                       .id = st->id,
                       .kind = st->kind,
                       .has_ttl = st->has_ttl,
                       .ttl_ms = st->has_ttl ? st->ttl_ms : WEIR_TTL_NONE,
                       .domain = st->domain,
                       .now = s->now,
                       .wm = s->wm,
                       .in_hook = s->in_hook};
}

void state_raw_written(state_store *s)
{
    s->memo.valid = 0;
    s->cursor[0].len = 0;
    s->cursor[1].len = 0;
}

void state_set_ttl(weir_state *st, int64_t ttl_ms, weir_time_domain domain)
{
    st->has_ttl = ttl_ms > 0;
    st->ttl_ms = ttl_ms;
    st->domain = domain;
    st->streak = 0;
    st->leak = 0;
}

void state_filter_enable(weir_state *st, int on)
{
    int mode = FILTER_KEEP;
    if (on && st->has_ttl && !hook_on(st->s, st))
        mode = st->domain == WEIR_TIME_EVENT ? FILTER_EVENT : FILTER_PROC;
    atomic_store(&st->filter->mode, mode);
}

int state_cache_restamp(weir_state *st, uint32_t *slot, uint32_t n,
                        state_restamp_fn fn, void *arg, int reindex,
                        uint64_t *changed, char **errptr)
{
    state_store *s = st->s;
    if (!s->cache || *slot >= s->cache->max)
        return 1;
    uint32_t end = n < s->cache->max - *slot ? *slot + n : s->cache->max;
    rocksdb_writebatch_clear(s->ibatch);
    for (uint32_t i = *slot; i < end; i++) {
        state_cache_ent *ce = &s->cache->ents[i];
        if (!(ce->flags & SC_USED) || (ce->flags & SC_ABSENT) ||
            ce->sid != st->id)
            continue;
        int64_t ns = fn(arg, ce->stamp);
        if (ns == ce->stamp)
            continue;
        if (st->has_ttl && (reindex || ns < ce->idx_lo)) {
            if (idx_key(s, st, ns, ce->buf, ce->klen) < 0) {
                rocksdb_writebatch_clear(s->ibatch);
                return oom(s, errptr);
            }
            rocksdb_writebatch_put_cf(s->ibatch, s->idx_cf, s->ibuf.p,
                                      s->ibuf.len, "", 0);
            s->stats.index_puts++;
            if (ns < ce->idx_lo)
                ce->idx_lo = ns;
        }
        ce->stamp = ns;
        ce->flags |= SC_DIRTY;
        (*changed)++;
    }
    char *rerr = NULL;
    if (rocksdb_writebatch_count(s->ibatch))
        rocksdb_write(s->db, s->wo, s->ibatch, &rerr);
    rocksdb_writebatch_clear(s->ibatch);
    state_raw_written(s);
    if (rerr)
        return rdb_fail(s, st, "index write", rerr, errptr);
    *slot = end;
    return end >= s->cache->max;
}

int state_cache_restamp_key(weir_state *st, const char *ek, size_t eklen,
                            int64_t stamp)
{
    state_store *s = st->s;
    if (!s->cache)
        return 0;
    uint32_t ci = state_cache_find(s->cache, st->id, ek, (uint32_t)eklen,
                                   key_hash(st->id, ek, eklen));
    if (ci == STATE_CACHE_NONE)
        return 0;
    state_cache_ent *ce = state_cache_at(s->cache, ci);
    if (ce->flags & (SC_DIRTY | SC_ABSENT))
        return 1;
    ce->stamp = stamp;
    if (stamp < ce->idx_lo)
        ce->idx_lo = stamp;
    return 0;
}

int state_cache_detach(weir_state *st, char **errptr)
{
    state_store *s = st->s;
    s->memo.valid = 0;
    if (!s->cache)
        return 0;
    s->idxs.len = 0;
    for (uint32_t i = 0; i < s->cache->max; i++) {
        const state_cache_ent *ce = &s->cache->ents[i];
        if ((ce->flags & SC_USED) && ce->sid == st->id &&
            sbuf_add(&s->idxs, &i, sizeof i) < 0)
            return oom(s, errptr);
    }
    uint32_t *idx = (uint32_t *)(void *)s->idxs.p;
    size_t n = s->idxs.len / sizeof(uint32_t);
    state_cache_sort(s->cache, idx, n);
    for (size_t off = 0; off < n; off += FLUSH_CHUNK) {
        size_t k = n - off < FLUSH_CHUNK ? n - off : FLUSH_CHUNK;
        int rc = cache_write(s, idx + off, k, errptr);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < n; i++)
        state_cache_remove(s->cache, idx[i]);
    return 0;
}

int state_space_check(state_store *s, uint64_t need, const char *what,
                      char **errptr)
{
    return space_check(s, s->path, need, what, errptr);
}

void **state_admin_slot(state_store *s)
{
    return &s->admin;
}
