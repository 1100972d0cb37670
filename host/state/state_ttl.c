/*
 * state_ttl.c - stamps, expiry index, expiry hook, sweep, compaction filter
 * and periodic compaction (state_ttl.h).
 */
#include "state/state_ttl.h"

#include <limits.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "state/codec.h"
#include "state/state.h"
#include "state/state_cache.h"
#include "state/state_store.h"

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - 1 - b)
        return INT64_MAX - 1;
    return a + b;
}

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

int sttl_is_expired(const state_store *s, const weir_state *st, int64_t stamp)
{
    if (!st->has_ttl || stamp == STAMP_NONE)
        return 0;
    return stamp <= (st->domain == WEIR_TIME_EVENT ? s->wm : s->now);
}

int64_t sttl_new_stamp(const state_store *s, const weir_state *st)
{
    if (!st->has_ttl)
        return STAMP_NONE;
    int64_t base = s->now;
    if (st->domain == WEIR_TIME_EVENT)
        base = s->ts != WEIR_TS_NONE ? s->ts : s->wm;
    return sat_add(base, st->ttl_ms);
}

int sttl_hook_on(const state_store *s, const weir_state *st)
{
    return st->has_ttl && st->hook_wanted && s->cfg.on_expired;
}

int sttl_idx_key(state_store *s, const weir_state *st, int64_t stamp,
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

int sttl_idx_put(state_store *s, const weir_state *st, int64_t stamp,
                 char **errptr)
{
    if (sttl_idx_key(s, st, stamp, s->kbuf.p, s->kbuf.len) < 0)
        return sstore_oom(s, errptr);
    char *rerr = NULL;
    rocksdb_put_cf(s->db, s->wo, s->idx_cf, s->ibuf.p, s->ibuf.len, "", 0,
                   &rerr);
    if (rerr)
        return sstore_rdb_fail(s, st, "index put", rerr, errptr);
    s->stats.index_puts++;
    /* An entry behind the sweep's cursor: restart from the front. */
    int d = st->domain == WEIR_TIME_EVENT;
    if (s->cursor[d].len && stamp <= s->cursor_stamp[d])
        s->cursor[d].len = 0;
    return 0;
}

int sttl_ent_touch(state_store *s, const weir_state *st, ent *e, char **errptr)
{
    int64_t ns = sttl_new_stamp(s, st);
    if (ns == e->stamp)
        return 0;
    if (e->ci == STATE_CACHE_NONE) {
        int rc = sstore_ent_store(s, st, ns, e->val, e->vlen, errptr);
        if (rc == 0)
            e->stamp = ns;
        return rc;
    }
    state_cache_ent *ce = state_cache_at(s->cache, e->ci);
    if (ns < ce->idx_lo) {
        int rc = sttl_idx_put(s, st, ns, errptr);
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
    int rc = sttl_idx_put(s, st, e->stamp, errptr);
    if (rc < 0)
        return rc;
    if (e->ci != STATE_CACHE_NONE)
        state_cache_at(s->cache, e->ci)->idx_lo = e->stamp;
    s->memo.valid = 0;
    return 0;
}

/* Calls the hook for the entry e at kbuf (for list state, per element).
 * The hook gets copies, and its own key buffer, so that its state calls
 * cannot disturb the caller's. */
static int fire_hook(state_store *s, weir_state *st, const ent *e,
                     char **errptr)
{
    s->hbuf.len = 0;
    if (sbuf_add(&s->hbuf, s->kbuf.p, s->kbuf.len) < 0 ||
        sbuf_add(&s->hbuf, e->val, e->vlen) < 0)
        return sstore_oom(s, errptr);
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
        return sstore_oom(s, errptr);
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

int sttl_expire_entry(state_store *s, weir_state *st, const ent *e,
                      uint64_t *counter, char **errptr)
{
    if (sttl_hook_on(s, st)) {
        if (s->in_hook)
            return EXP_LEFT;
        int rc = fire_hook(s, st, e, errptr);
        if (rc < 0)
            return rc;
        ent e2;
        rc = sstore_ent_load(s, st, &e2, errptr);
        if (rc < 0)
            return rc;
        if (!e2.found) {
            (*counter)++;
            return EXP_GONE;
        }
        if (!sttl_is_expired(s, st, e2.stamp))
            return EXP_REFRESHED;
    }
    int rc = sstore_ent_remove(s, st, errptr);
    if (rc < 0)
        return rc;
    (*counter)++;
    return EXP_GONE;
}

int sttl_ent_read(state_store *s, weir_state *st, ent *e, char **errptr)
{
    int rc = sstore_ent_load(s, st, e, errptr);
    if (rc < 0 || !e->found || !sttl_is_expired(s, st, e->stamp) ||
        st->vis == WEIR_TTL_RETURN_EXPIRED_IF_NOT_CLEANED)
        return rc;
    rc = sttl_expire_entry(s, st, e, &st->exp_read, errptr);
    if (rc < 0)
        return rc;
    if (rc != EXP_REFRESHED) {
        e->found = 0;
        return 0;
    }
    return sstore_ent_load(s, st, e, errptr);
}

int sttl_pre_write(state_store *s, weir_state *st, char **errptr)
{
    if (!sttl_hook_on(s, st) || s->in_hook)
        return 0;
    if (!s->cache) {
        state_memo *m = sstore_memo_find(s, st);
        if (m && (!m->found || !sttl_is_expired(s, st, m->stamp)))
            return 0;
    }
    ent e;
    int rc = sstore_ent_load(s, st, &e, errptr);
    if (rc < 0 || !e.found || !sttl_is_expired(s, st, e.stamp))
        return rc;
    rc = sttl_expire_entry(s, st, &e, &st->exp_read, errptr);
    return rc < 0 ? rc : 0;
}

void sttl_publish_now(state_store *s)
{
    s->now = s->cfg.clock(s->cfg.clock_arg);
    atomic_store_explicit(&s->pub_now, s->now, memory_order_relaxed);
}

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
    rc = sstore_ent_load(s, st, &e, errptr);
    if (rc < 0 || !e.found)
        goto done;
    if (!sttl_is_expired(s, st, e.stamp)) {
        rc = ent_reindex(s, st, &e, errptr);
        goto done;
    }
    rc = sttl_expire_entry(s, st, &e, &st->exp_sweep, errptr);
    if (rc == EXP_GONE) {
        expired = 1;
    } else if (rc == EXP_REFRESHED) {
        rc = sstore_ent_load(s, st, &e, errptr);
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
            rc = sstore_oom(s, errptr);
            break;
        }
        got++;
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    if (rerr)
        return sstore_rdb_fail(s, NULL, "index iterate", rerr, errptr);
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
        rc = sstore_rdb_fail(s, NULL, "index write", rerr, errptr);
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

void sttl_compact_cancel(state_store *s)
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
    if (sstore_space_check(s, s->path,
                           sstore_prop_sum(s, "rocksdb.live-sst-files-size"),
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
    sttl_publish_now(s);
    sstore_pin_release(s);
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
        rc = sstore_space_check(s, s->path, sstore_memtable_bytes(s),
                                "room for the next memtable flush", errptr);
    }
    if (n_expired)
        *n_expired = exp;
    if (rc < 0)
        return rc;
    return done > INT_MAX ? INT_MAX : (int)done;
}

int sttl_filter_new(state_store *s, rocksdb_options_t *opts, state_cfh *cfh)
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

int state_in_hook(const state_store *s)
{
    return s->in_hook;
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
    if (on && st->has_ttl && !sttl_hook_on(st->s, st))
        mode = st->domain == WEIR_TIME_EVENT ? FILTER_EVENT : FILTER_PROC;
    atomic_store(&st->filter->mode, mode);
}
