/*
 * state_access.c - the current key and the value, map and list access
 * paths of state.h.
 */
#include <rocksdb/c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "state/codec.h"
#include "state/state.h"
#include "state/state_cache.h"
#include "state/state_meta.h"
#include "state/state_store.h"
#include "state/state_ttl.h"

/* Points kbuf at the current key plus `ukey` (map state). */
static int key_with_ukey(state_store *s, const void *ukey, size_t ulen)
{
    s->kbuf.len = s->plen;
    if (ulen && sbuf_add(&s->kbuf, ukey, ulen) < 0)
        return -1;
    return 0;
}

static int op_begin(weir_state *st, weir_state_kind kind, char **errptr)
{
    if (!st)
        return err_set(errptr, WEIR_EINVAL, "state: NULL state handle");
    state_store *s = st->s;
    if (st->kind != kind)
        return err_set(errptr, WEIR_EINVAL,
                       "state %s is a %s state, not a %s state", st->name,
                       smeta_kind_name(st->kind), smeta_kind_name(kind));
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
        return sstore_oom(st->s, errptr);
    return 0;
}

/* get for value and map state, at kbuf. */
static int get_entry(weir_state *st, const void **value, size_t *len,
                     char **errptr)
{
    state_store *s = st->s;
    ent e;
    int rc = sttl_ent_read(s, st, &e, errptr);
    if (rc < 0)
        return rc;
    if (!e.found)
        return WEIR_ENOTFOUND;
    if (st->has_ttl && st->update == WEIR_TTL_ON_READ_AND_WRITE) {
        rc = sttl_ent_touch(s, st, &e, errptr);
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
        return sstore_oom(s, errptr);
    int rc = sttl_pre_write(s, st, errptr);
    if (rc < 0)
        return rc;
    return sstore_ent_store(s, st, sttl_new_stamp(s, st), value, len, errptr);
}

static int delete_entry(weir_state *st, char **errptr)
{
    int rc = sttl_pre_write(st->s, st, errptr);
    if (rc < 0)
        return rc;
    return sstore_ent_remove(st->s, st, errptr);
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
        int expired = sttl_is_expired(s, st, stamp_get(v));
        int visible =
            !expired || st->vis == WEIR_TTL_RETURN_EXPIRED_IF_NOT_CLEANED;
        if ((collect & (expired ? 2 : 1))) {
            char vb[10];
            size_t n = varint_put(vb, klen - s->plen);
            if (sbuf_add(want, vb, n) < 0 ||
                sbuf_add(want, k + s->plen, klen - s->plen) < 0) {
                rc = sstore_oom(s, errptr);
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
            rc = sstore_rdb_fail(s, st, "iterate", rerr, errptr);
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
            return sstore_oom(s, errptr);
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
    int rc = sstore_ent_load(s, st, &e, errptr);
    if (rc < 0 || !e.found)
        return rc;
    /* Expired entries were not visible, unless under return-expired. */
    if (sttl_is_expired(s, st, e.stamp) &&
        st->vis == WEIR_TTL_NEVER_RETURN_EXPIRED)
        return 0;
    return sttl_ent_touch(s, st, &e, errptr);
}

static int each_expire(state_store *s, weir_state *st, char **errptr)
{
    ent e;
    int rc = sstore_ent_load(s, st, &e, errptr);
    if (rc < 0 || !e.found || !sttl_is_expired(s, st, e.stamp))
        return rc;
    rc = sttl_expire_entry(s, st, &e, &st->exp_read, errptr);
    return rc < 0 ? rc : 0;
}

int state_map_iter(weir_state *st, weir_map_iter_fn fn, void *arg,
                   char **errptr)
{
    int rc = op_begin(st, WEIR_STATE_MAP, errptr);
    if (rc < 0)
        return rc;
    state_store *s = st->s;
    rc = sstore_group_flush(s, st, errptr);
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
    if (sttl_hook_on(s, st) && !s->in_hook) {
        /* Expired entries see the hook before they go. */
        rc = sstore_group_flush(s, st, errptr);
        if (rc == 0)
            rc = map_scan(s, st, NULL, NULL, 2, &keys, &fn_rc, errptr);
        if (rc == 0)
            rc = for_each_ukey(s, st, &keys, each_expire, errptr);
        keys.len = 0;
        if (rc < 0)
            goto out;
    }
    rc = sstore_group_flush(s, st, errptr);
    if (rc == 0)
        rc = map_scan(s, st, NULL, NULL, 3, &keys, &fn_rc, errptr);
    if (rc < 0)
        goto out;
    sstore_group_drop(s, st);
    rocksdb_writebatch_clear(s->batch);
    for (size_t off = 0; off < keys.len;) {
        uint64_t n = 0;
        size_t used = varint_get(keys.p + off, keys.len - off, &n);
        if (key_with_ukey(s, keys.p + off + used, (size_t)n) < 0) {
            rc = sstore_oom(s, errptr);
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
        rc = sstore_rdb_fail(s, st, "write batch", rerr, errptr);
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
        return sstore_oom(s, errptr);
    ent e;
    rc = sttl_ent_read(s, st, &e, errptr);
    if (rc < 0)
        return rc;
    /* Inside a hook, an expired list left for the sweep is replaced. */
    if (e.found && sttl_is_expired(s, st, e.stamp) &&
        st->vis == WEIR_TTL_NEVER_RETURN_EXPIRED)
        e.found = 0;
    char hdr[10];
    size_t hn = varint_put(hdr, len);
    int64_t ns = sttl_new_stamp(s, st);
    size_t total = (e.found ? e.vlen : 0) + hn + len;
    if (e.found && e.ci != STATE_CACHE_NONE &&
        total <= s->cfg.cache_max_value_bytes) {
        /* Append in place. */
        state_cache_ent *ce = state_cache_at(s->cache, e.ci);
        if (st->has_ttl && ns < ce->idx_lo) {
            rc = sttl_idx_put(s, st, ns, errptr);
            if (rc < 0)
                return rc;
            ce->idx_lo = ns;
        }
        if (state_cache_append(s->cache, e.ci, hdr, hn) < 0 ||
            state_cache_append(s->cache, e.ci, value, len) < 0)
            return sstore_oom(s, errptr);
        ce->stamp = ns;
        ce->flags |= SC_DIRTY;
        return 0;
    }
    s->tbuf.len = 0;
    if ((e.found && sbuf_add(&s->tbuf, e.val, e.vlen) < 0) ||
        sbuf_add(&s->tbuf, hdr, hn) < 0 || sbuf_add(&s->tbuf, value, len) < 0)
        return sstore_oom(s, errptr);
    return sstore_ent_store(s, st, ns, s->tbuf.p, s->tbuf.len, errptr);
}

int state_list_iter(weir_state *st, weir_map_iter_fn fn, void *arg,
                    char **errptr)
{
    int rc = op_begin(st, WEIR_STATE_LIST, errptr);
    if (rc < 0)
        return rc;
    state_store *s = st->s;
    ent e;
    rc = sttl_ent_read(s, st, &e, errptr);
    if (rc < 0 || !e.found)
        return rc;
    if (sttl_is_expired(s, st, e.stamp) &&
        st->vis == WEIR_TTL_NEVER_RETURN_EXPIRED)
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
        return sttl_ent_touch(s, st, &e, errptr);
    return 0;
}

int state_list_clear(weir_state *st, char **errptr)
{
    int rc = op_begin(st, WEIR_STATE_LIST, errptr);
    return rc < 0 ? rc : delete_entry(st, errptr);
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
    sstore_pin_release(s);
    sttl_publish_now(s);
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

/* Private hooks for timers.c (state.h). */
const char *state_key_bytes(const state_store *s, size_t *len)
{
    *len = s->has_key ? s->plen : 0;
    return s->has_key ? s->kbuf.p : NULL;
}
