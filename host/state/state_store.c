/*
 * state_store.c - the store's RocksDB side: env, open/close, column
 * families, cache write-back, entries, flush, checkpoints (state_store.h).
 */
#include "state/state_store.h"

#include <errno.h>
#include <inttypes.h>
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
#include "state/state.h"
#include "state/state_admin.h"
#include "state/state_cache.h"
#include "state/state_meta.h"
#include "state/state_ttl.h"
#include "state/timers.h"

/* The default processing-time clock of TTLs. It is read once per record
 * (state_set_key), so it is the coarse clock: a few ms of resolution, at a
 * fraction of the cost of CLOCK_REALTIME. */
static int64_t realtime_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

int sstore_rdb_fail(state_store *s, const weir_state *st, const char *what,
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

int sstore_space_check(state_store *s, const char *path, uint64_t need,
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

uint64_t sstore_prop_sum(state_store *s, const char *name)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < s->n_cfs; i++)
        sum += sstore_prop(s, s->cfs[i].h, name);
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

uint64_t sstore_memtable_bytes(state_store *s)
{
    return sstore_prop_sum(s, "rocksdb.cur-size-all-mem-tables");
}

int sstore_oom(state_store *s, char **errptr)
{
    return err_set(errptr, WEIR_ENOMEM, "state store %s: out of memory",
                   s->name);
}

static uint64_t key_hash(uint16_t sid, const char *k, size_t klen)
{
    return XXH3_64bits_withSeed(k, klen, sid);
}

static uint64_t group_hash(uint16_t sid, const char *k, size_t plen)
{
    return XXH3_64bits_withSeed(k, plen, UINT64_C(0x9E3779B97F4A7C15) ^ sid);
}

void state_prefetch_slots(state_store *s, uint16_t kg, const void *key,
                          size_t key_len, state_hint *hint)
{
    hint->n = 0;
    if (!s->cache || key_len > STATE_PREFETCH_KEY)
        return;
    char k[2 + 10 + STATE_PREFETCH_KEY];
    put_be16(k, kg);
    size_t n = 2 + varint_put(k + 2, key_len);
    memcpy(k + n, key, key_len);
    n += key_len;
    for (size_t i = 0; i < s->n_states && hint->n < STATE_PREFETCH_STATES;
         i++) {
        const weir_state *st = s->states[i];
        if (st->kind == WEIR_STATE_MAP)
            continue; /* its cache keys carry the map key as well */
        uint64_t h = key_hash(st->id, k, n);
        hint->h[hint->n++] = h;
        state_cache_prefetch_slot(s->cache, h);
    }
}

void state_prefetch_entries(state_store *s, const state_hint *hint)
{
    if (!s->cache)
        return;
    for (uint32_t i = 0; i < hint->n; i++)
        state_cache_prefetch_ent(s->cache, hint->h[i]);
}

void sstore_pin_release(state_store *s)
{
    if (s->pin) {
        rocksdb_pinnableslice_destroy(s->pin);
        s->pin = NULL;
    }
}

state_memo *sstore_memo_find(state_store *s, const weir_state *st)
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
            rocksdb_writebatch_delete_cf(s->batch, st->cf, state_cache_key(ce),
                                         ce->klen);
        } else {
            char stamp[STAMP_LEN];
            stamp_put(stamp, ce->stamp);
            const char *keys[1] = {state_cache_key(ce)};
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
        return sstore_rdb_fail(s, NULL, "write batch", rerr, errptr);
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

static state_cfh *cfh_find(state_store *s, const char *name)
{
    for (size_t i = 0; i < s->n_cfs; i++)
        if (strcmp(s->cfs[i].name, name) == 0)
            return &s->cfs[i];
    return NULL;
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
        return sstore_oom(s, errptr);
    *out = ci;
    return 0;
}

int sstore_group_flush(state_store *s, const weir_state *st, char **errptr)
{
    if (!s->cache)
        return 0;
    uint64_t gh = group_hash(st->id, s->kbuf.p, s->plen);
    s->idxs.len = 0;
    for (uint32_t i = state_cache_group(s->cache, st->id, s->kbuf.p,
                                        (uint16_t)s->plen, gh);
         i != STATE_CACHE_NONE; i = state_cache_next(s->cache, i)) {
        if (!(state_cache_at(s->cache, i)->flags & SC_DIRTY))
            continue;
        if (sbuf_add(&s->idxs, &i, sizeof i) < 0)
            return sstore_oom(s, errptr);
    }
    return cache_write(s, (const uint32_t *)(void *)s->idxs.p,
                       s->idxs.len / sizeof(uint32_t), errptr);
}

void sstore_group_drop(state_store *s, const weir_state *st)
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
            return sstore_oom(s, errptr);
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

int sstore_ent_load(state_store *s, const weir_state *st, ent *e, char **errptr)
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
    sstore_pin_release(s);
    char *rerr = NULL;
    s->pin = rocksdb_get_pinned_cf(s->db, s->ro, st->cf, s->kbuf.p, s->kbuf.len,
                                   &rerr);
    if (rerr)
        return sstore_rdb_fail(s, st, "get", rerr, errptr);
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
        return sstore_oom(s, errptr);
    }
    ce->flags |= SC_DISK_PRESENT;
    ce->stamp = e->stamp;
    ce->idx_lo = e->stamp;
    e->val = state_cache_val(ce);
    sstore_pin_release(s);
    return 0;
}

int sstore_ent_store(state_store *s, const weir_state *st, int64_t stamp,
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
        state_memo *m = sstore_memo_find(s, st);
        if (m)
            idx_lo = m->idx_lo;
    }
    if (st->has_ttl && stamp < idx_lo) {
        int rc = sttl_idx_put(s, st, stamp, errptr);
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
            return sstore_oom(s, errptr);
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
        return sstore_oom(s, errptr);
    stamp_put(s->wbuf.p, stamp);
    if (vlen)
        memcpy(s->wbuf.p + STAMP_LEN, val, vlen);
    char *rerr = NULL;
    rocksdb_put_cf(s->db, s->wo, st->cf, s->kbuf.p, s->kbuf.len, s->wbuf.p,
                   STAMP_LEN + vlen, &rerr);
    if (rerr)
        return sstore_rdb_fail(s, st, "put", rerr, errptr);
    if (!s->cache)
        memo_set(s, st, 1, stamp, idx_lo);
    return 0;
}

int sstore_ent_remove(state_store *s, const weir_state *st, char **errptr)
{
    if (!s->cache) {
        char *rerr = NULL;
        rocksdb_delete_cf(s->db, s->wo, st->cf, s->kbuf.p, s->kbuf.len, &rerr);
        if (rerr)
            return sstore_rdb_fail(s, st, "delete", rerr, errptr);
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

/* Flushes every column family's memtable, waiting for it. */
static int memtables_flush(state_store *s, char **errptr)
{
    int rc = sstore_space_check(s, s->path, sstore_memtable_bytes(s),
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
        need += sstore_prop_sum(s, "rocksdb.live-sst-files-size");
    int rc = sstore_space_check(s, dir, need, "checkpoint", errptr);
    if (rc < 0) {
        err_prefix(errptr, "checkpoint to %s", dir);
        return rc;
    }
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(s->db, &rerr);
    if (rerr)
        return sstore_rdb_fail(s, NULL, "checkpoint", rerr, errptr);
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
        bad =
            delta_put(f, hd, 7) || delta_put(f, state_cache_key(ce), ce->klen);
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
        return sstore_rdb_fail(s, st, "iterate", rerr, errptr);
    *out = n;
    return 0;
}

uint64_t sstore_prop(state_store *s, rocksdb_column_family_handle_t *cf,
                     const char *name)
{
    uint64_t v = 0;
    if (rocksdb_property_int_cf(s->db, cf, name, &v) != 0)
        return 0;
    return v;
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

int sstore_state_cf(state_store *s, const char *name, state_cfh **out,
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
        return sstore_oom(s, errptr);
    /* Same settings as the template, plus this CF's own filter. */
    rocksdb_options_t *o = rocksdb_options_create_copy(s->state_opts);
    if (sttl_filter_new(s, o, c) < 0) {
        rocksdb_options_destroy(o);
        return sstore_oom(s, errptr);
    }
    char *rerr = NULL;
    c->h = rocksdb_create_column_family(s->db, o, cfname, &rerr);
    rocksdb_options_destroy(o);
    if (rerr)
        return sstore_rdb_fail(s, NULL, "create column family", rerr, errptr);
    *out = c;
    return 0;
}

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
            if (sttl_filter_new(s, opts[i], c) < 0) {
                rocksdb_options_destroy(opts[i]);
                opts[i] = plain;
                rc = sstore_oom(s, errptr);
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
    rc = sstore_oom(s, errptr);
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

static void store_free(state_store *s)
{
    smeta_owners_unlink(s);
    state_admin_free(s);
    sstore_pin_release(s);
    state_timer_detach(s->timers);
    if (s->db && s->env)
        sttl_compact_cancel(s);
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
        (rc = sstore_space_check(s, s->path, open_bytes(s), "opening",
                                 errptr)) < 0)
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
            rc = sstore_oom(s, errptr);
            goto fail;
        }
    }
    rc = open_db(s, errptr);
    if (rc == 0)
        rc = smeta_load(s, errptr);
    if (rc == 0 && s->cfg.restore_delta)
        rc = delta_apply(s, s->cfg.restore_delta, errptr);
    if (rc == 0)
        rc =
            state_timer_attach(s->db, s->timer_cf, s->name, &s->timers, errptr);
    if (rc < 0)
        goto fail;
    sttl_publish_now(s);
    s->last_compact = s->last_space_check = s->now;
    smeta_owners_link(s);
    *out = s;
    return 0;
fail:
    store_free(s);
    return rc;
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
            if (sttl_idx_key(s, st, ns, state_cache_key(ce), ce->klen) < 0) {
                rocksdb_writebatch_clear(s->ibatch);
                return sstore_oom(s, errptr);
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
        return sstore_rdb_fail(s, st, "index write", rerr, errptr);
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
            return sstore_oom(s, errptr);
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
    return sstore_space_check(s, s->path, need, what, errptr);
}

void **state_admin_slot(state_store *s)
{
    return &s->admin;
}
