#include "state/timers.h"

#include <inttypes.h>
#include <limits.h>
#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "state/codec.h"

#define TK_HDR      (1 + 8)      /* domain, ts */
#define TK_MIN      (TK_HDR + 3) /* + key group + varint of an empty key */
#define CHUNK_KEYS  256          /* timers read per seek at most */
#define CHUNK_BYTES (64 * 1024)  /* key bytes read per seek at most */
/* compact-on-deletion: an SST file with DEL_TRIGGER deletions within any
 * DEL_WINDOW consecutive entries is marked for compaction. */
#define DEL_WINDOW  16384
#define DEL_TRIGGER 8192

typedef struct tbuf {
    char *p;
    size_t len, cap;
} tbuf;

/* Per domain. */
typedef struct tdom {
    int64_t next; /* earliest pending ts; INT64_MAX: none */
    tbuf lo;      /* no timer is pending below this key (empty: the
                     domain's start); just past the last one fired */
} tdom;

struct state_timers {
    char *name;
    rocksdb_t *db;
    rocksdb_column_family_handle_t *cf;
    rocksdb_writeoptions_t *wo;
    rocksdb_readoptions_t *ro;
    rocksdb_writebatch_t *dels; /* removals of fired timers, not written */
    tdom dom[2];
    tbuf key; /* scratch: the key of a register or delete */

    /* A fire in progress (firing): its domain, the chunk of keys read
     * (varint(len) | key, in order), its last key, and `after`, the ts of
     * the first pending timer after the chunk (INT64_MAX: none), kept up
     * to date by registers in the callbacks; after_stale when a callback
     * deleted a timer after the chunk. invalid: a callback registered or
     * deleted a timer within the chunk's range, so the rest of the chunk
     * must be read again. */
    int firing, fire_d, invalid, after_stale;
    tbuf chunk, last;
    int64_t after;

    state_timer_stats stats;
};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static int tbuf_set(tbuf *b, const void *p, size_t n)
{
    if (n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p, p, n);
    b->len = n;
    return 0;
}

static int tbuf_add(tbuf *b, const void *p, size_t n)
{
    size_t len = b->len;
    if (len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < len + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + len, p, n);
    b->len = len + n;
    return 0;
}

static void tbuf_free(tbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Byte order of keys, as RocksDB's default comparator. */
static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

/* Splits a timer key into its ts, key group and record key. Returns 0, or
 * -1 when it is malformed. */
static int tk_parse(const char *k, size_t klen, int64_t *ts, uint16_t *kg,
                    const char **key, size_t *key_len)
{
    if (klen < TK_MIN || (unsigned char)k[0] > 1)
        return -1;
    uint64_t n = 0;
    size_t used = varint_get(k + TK_HDR + 2, klen - TK_HDR - 2, &n);
    if (!used || n != klen - TK_HDR - 2 - used)
        return -1;
    *ts = istamp_get(k + 1);
    *kg = (uint16_t)(((unsigned char)k[TK_HDR] << 8) |
                     (unsigned char)k[TK_HDR + 1]);
    *key = k + TK_HDR + 2 + used;
    *key_len = (size_t)n;
    return 0;
}

static const char *domain_name(int d)
{
    return d == WEIR_TIME_EVENT ? "event time" : "processing time";
}

static int rdb_fail(const state_timers *t, const char *what, char *rerr,
                    char **errptr)
{
    err_set(errptr, WEIR_EIO, "state store %s, timers: rocksdb %s: %s", t->name,
            what, rerr ? rerr : "failed");
    free(rerr);
    return WEIR_EIO;
}

static int oom(const state_timers *t, char **errptr)
{
    return err_set(errptr, WEIR_ENOMEM, "state store %s, timers: out of memory",
                   t->name);
}

/* Writes the removals of fired timers. */
static int flush_dels(state_timers *t, char **errptr)
{
    if (!rocksdb_writebatch_count(t->dels))
        return 0;
    char *rerr = NULL;
    rocksdb_write(t->db, t->wo, t->dels, &rerr);
    rocksdb_writebatch_clear(t->dels);
    return rerr ? rdb_fail(t, "write", rerr, errptr) : 0;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Seeks to the first pending timer of domain d (at or after the domain's
 * lower bound) and reads up to max_n of them with ts <= limit, together at
 * most CHUNK_BYTES of keys (but at least one), into `out` as varint(len) |
 * key, when out is not NULL. *after gets the ts of the first timer not read
 * (INT64_MAX when none). Malformed keys are removed (in t->dels) and
 * skipped.
 */
static int scan(state_timers *t, int d, int64_t limit, size_t max_n, tbuf *out,
                size_t *n, int64_t *after, char **errptr)
{
    int rc = flush_dels(t, errptr);
    if (rc < 0)
        return rc;
    char lo[1] = {(char)d}, hi[1] = {(char)(d + 1)};
    const tbuf *bound = &t->dom[d].lo;
    if (bound->len)
        rocksdb_readoptions_set_iterate_lower_bound(t->ro, bound->p,
                                                    bound->len);
    else
        rocksdb_readoptions_set_iterate_lower_bound(t->ro, lo, 1);
    rocksdb_readoptions_set_iterate_upper_bound(t->ro, hi, 1);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(t->db, t->ro, t->cf);
    if (bound->len)
        rocksdb_iter_seek(it, bound->p, bound->len);
    else
        rocksdb_iter_seek(it, lo, 1);
    t->stats.seeks++;
    *n = 0;
    *after = INT64_MAX;
    if (out)
        out->len = 0;
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        int64_t ts;
        uint16_t kg;
        const char *key;
        size_t key_len;
        if (tk_parse(k, klen, &ts, &kg, &key, &key_len) < 0) {
            rocksdb_writebatch_delete_cf(t->dels, t->cf, k, klen);
            if (!t->stats.dropped++)
                log_msg(WEIR_LOG_WARN, t->name,
                        "timers: removing a malformed timer key of %zu "
                        "bytes (more are counted, not logged)",
                        klen);
            continue;
        }
        if (!out || ts > limit || *n == max_n ||
            (*n && out->len + klen > CHUNK_BYTES)) {
            *after = ts;
            break;
        }
        char vb[10];
        size_t vn = varint_put(vb, klen);
        if (tbuf_add(out, vb, vn) < 0 || tbuf_add(out, k, klen) < 0) {
            rc = oom(t, errptr);
            break;
        }
        if (tbuf_set(&t->last, k, klen) < 0) {
            rc = oom(t, errptr);
            break;
        }
        (*n)++;
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    if (rerr)
        return rdb_fail(t, "iterate", rerr, errptr);
    if (out && out->len > t->stats.buffer_peak)
        t->stats.buffer_peak = out->len;
    return rc;
}

/* Recomputes the earliest pending ts of domain d. */
static int recompute_next(state_timers *t, int d, char **errptr)
{
    size_t n;
    int64_t after;
    int rc = scan(t, d, 0, 0, NULL, &n, &after, errptr);
    if (rc == 0)
        t->dom[d].next = after;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Register and delete                                                       */
/* ------------------------------------------------------------------------ */

/* Builds the timer key of the current key at (d, ts) in t->key. */
static int make_key(state_store *s, state_timers *t, const char *what,
                    weir_time_domain d, int64_t ts, char **errptr)
{
    if ((unsigned)d > WEIR_TIME_EVENT)
        return err_set(errptr, WEIR_EINVAL,
                       "state store %s: timer %s: unknown time domain %d",
                       t->name, what, (int)d);
    size_t plen;
    const char *p = state_key_bytes(s, &plen);
    if (!p)
        return err_set(errptr, WEIR_ESTATE,
                       "state store %s: timer %s without a current key "
                       "(timers are only available while a record, timer "
                       "or expiry is processed)",
                       t->name, what);
    char hdr[TK_HDR];
    hdr[0] = (char)d;
    istamp_put(hdr + 1, ts);
    if (tbuf_set(&t->key, hdr, TK_HDR) < 0 || tbuf_add(&t->key, p, plen) < 0)
        return oom(t, errptr);
    return 0;
}

/* Whether the key in t->key sorts below the domain's bound, where no
 * timer is pending. */
static int below_lo(const state_timers *t, const tdom *dm)
{
    return dm->lo.len &&
           key_cmp(t->key.p, t->key.len, dm->lo.p, dm->lo.len) < 0;
}

/* Whether the key in t->key falls within the chunk of the fire in
 * progress (at or below its last key). */
static int in_chunk(const state_timers *t, int d)
{
    return t->firing && t->fire_d == d &&
           key_cmp(t->key.p, t->key.len, t->last.p, t->last.len) <= 0;
}

int state_timer_register(state_store *s, weir_time_domain d, int64_t ts,
                         char **errptr)
{
    state_timers *t = state_timers_of(s);
    int rc = make_key(s, t, "register", d, ts, errptr);
    if (rc < 0)
        return rc;
    /* A fired timer's removal must come before its registration again. */
    if ((rc = flush_dels(t, errptr)) < 0)
        return rc;
    char *rerr = NULL;
    rocksdb_put_cf(t->db, t->wo, t->cf, t->key.p, t->key.len, "", 0, &rerr);
    if (rerr)
        return rdb_fail(t, "put", rerr, errptr);
    t->stats.registered++;
    tdom *dm = &t->dom[d];
    if (ts < dm->next)
        dm->next = ts;
    /* Below the bound: it becomes the bound (or, without memory, the
     * domain's start, which is always a valid bound). */
    if (below_lo(t, dm) && tbuf_set(&dm->lo, t->key.p, t->key.len) < 0)
        dm->lo.len = 0;
    if (in_chunk(t, d))
        t->invalid = 1;
    else if (t->firing && t->fire_d == (int)d && ts < t->after)
        t->after = ts;
    return 0;
}

int state_timer_delete(state_store *s, weir_time_domain d, int64_t ts,
                       char **errptr)
{
    state_timers *t = state_timers_of(s);
    int rc = make_key(s, t, "delete", d, ts, errptr);
    if (rc < 0)
        return rc;
    tdom *dm = &t->dom[d];
    /* Nothing is pending below the bound: known absent, nothing to write. */
    if (ts < dm->next || below_lo(t, dm))
        return 0;
    char *rerr = NULL;
    rocksdb_delete_cf(t->db, t->wo, t->cf, t->key.p, t->key.len, &rerr);
    if (rerr)
        return rdb_fail(t, "delete", rerr, errptr);
    t->stats.deleted++;
    if (in_chunk(t, d))
        t->invalid = 1;
    else if (t->firing && t->fire_d == (int)d && ts == t->after)
        t->after_stale = 1;
    if (ts == dm->next)
        return recompute_next(t, d, errptr);
    return 0;
}

int64_t state_timer_next(const state_store *s, weir_time_domain d)
{
    const state_timers *t = state_timers_of(s);
    return (unsigned)d <= WEIR_TIME_EVENT ? t->dom[d].next : INT64_MAX;
}

/* ------------------------------------------------------------------------ */
/* Firing                                                                    */
/* ------------------------------------------------------------------------ */

/* Fires the n timers of t->chunk in order, until a callback invalidates
 * the rest of the chunk. */
static int fire_chunk(state_store *s, state_timers *t, int d, size_t n,
                      state_timer_fn fn, void *arg, size_t *fired,
                      char **errptr)
{
    tdom *dm = &t->dom[d];
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t klen = 0;
        size_t used = varint_get(t->chunk.p + off, t->chunk.len - off, &klen);
        const char *k = t->chunk.p + off + used;
        off += used + (size_t)klen;
        int64_t ts;
        uint16_t kg;
        const char *key;
        size_t key_len;
        tk_parse(k, (size_t)klen, &ts, &kg, &key, &key_len); /* scan checked */
        /* First what can fail, so that a failure keeps the timer. */
        int rc = state_set_key(s, kg, key, key_len,
                               d == WEIR_TIME_EVENT ? ts : WEIR_TS_NONE);
        if (rc < 0)
            return err_set(errptr, rc,
                           "state store %s: cannot make a timer's key "
                           "current: %s",
                           t->name, weir_strerror(rc));
        if (tbuf_set(&dm->lo, k, (size_t)klen) < 0 ||
            tbuf_add(&dm->lo, "", 1) < 0) {
            dm->lo.len = 0; /* the domain's start: always a valid bound */
            return oom(t, errptr);
        }
        /* Remove it; nothing is pending below it any more (lo). */
        rocksdb_writebatch_delete_cf(t->dels, t->cf, k, (size_t)klen);
        if (i + 1 < n) {
            uint64_t nlen = 0;
            size_t nu = varint_get(t->chunk.p + off, t->chunk.len - off, &nlen);
            dm->next = istamp_get(t->chunk.p + off + nu + 1);
        } else if (t->after_stale) {
            if ((rc = recompute_next(t, d, errptr)) < 0)
                return rc;
        } else {
            dm->next = t->after;
        }
        (*fired)++;
        t->stats.fired++;
        rc = fn(arg, (weir_time_domain)d, ts, key, key_len);
        if (rc < 0)
            return err_set(errptr, rc,
                           "state store %s: the %s timer at %" PRId64
                           " failed: %s",
                           t->name, domain_name(d), ts, weir_strerror(rc));
        if (t->invalid)
            return 0;
    }
    return 0;
}

int state_timer_fire(state_store *s, weir_time_domain d, int64_t limit,
                     size_t budget, state_timer_fn fn, void *arg, char **errptr)
{
    state_timers *t = state_timers_of(s);
    if ((unsigned)d > WEIR_TIME_EVENT || !fn)
        return err_set(errptr, WEIR_EINVAL,
                       "state store %s: timer fire: unknown time domain %d "
                       "or no callback",
                       t->name, (int)d);
    if (t->firing || state_in_hook(s))
        return err_set(errptr, WEIR_ESTATE,
                       "state store %s: timers fired from a timer callback "
                       "or an expiry hook",
                       t->name);
    if (budget > INT_MAX)
        budget = INT_MAX;
    size_t fired = 0;
    int rc = 0;
    t->firing = 1;
    t->fire_d = d;
    while (fired < budget && t->dom[d].next <= limit) {
        size_t want = budget - fired < CHUNK_KEYS ? budget - fired : CHUNK_KEYS;
        size_t n = 0;
        t->invalid = 0;
        t->after_stale = 0;
        t->last.len = 0;
        rc = scan(t, d, limit, want, &t->chunk, &n, &t->after, errptr);
        if (rc < 0)
            break;
        if (n == 0) {
            t->dom[d].next = t->after;
            break;
        }
        rc = fire_chunk(s, t, d, n, fn, arg, &fired, errptr);
        if (rc < 0)
            break;
    }
    t->firing = 0;
    t->last.len = 0;
    t->chunk.len = 0;
    int wrc = flush_dels(t, rc < 0 ? NULL : errptr);
    if (rc == 0)
        rc = wrc;
    state_clear_key(s);
    return rc < 0 ? rc : (int)fired;
}

/* ------------------------------------------------------------------------ */
/* Counting, statistics                                                      */
/* ------------------------------------------------------------------------ */

int state_timer_count(state_store *s, uint64_t *out, char **errptr)
{
    state_timers *t = state_timers_of(s);
    *out = 0;
    int rc = flush_dels(t, errptr);
    if (rc < 0)
        return rc;
    rocksdb_readoptions_set_iterate_lower_bound(t->ro, NULL, 0);
    rocksdb_readoptions_set_iterate_upper_bound(t->ro, NULL, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(t->db, t->ro, t->cf);
    uint64_t n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
         rocksdb_iter_next(it))
        n++;
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    if (rerr)
        return rdb_fail(t, "iterate", rerr, errptr);
    *out = n;
    return 0;
}

void state_timer_stats_get(const state_store *s, state_timer_stats *out)
{
    const state_timers *t = state_timers_of(s);
    *out = t->stats;
    out->next[0] = t->dom[0].next;
    out->next[1] = t->dom[1].next;
}

/* ------------------------------------------------------------------------ */
/* Attach, detach                                                            */
/* ------------------------------------------------------------------------ */

void state_timer_cf_options(rocksdb_options_t *o)
{
    rocksdb_options_add_compact_on_deletion_collector_factory(o, DEL_WINDOW,
                                                              DEL_TRIGGER);
}

int state_timer_attach(rocksdb_t *db, rocksdb_column_family_handle_t *cf,
                       const char *name, state_timers **out, char **errptr)
{
    *out = NULL;
    state_timers *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strdup(name))) {
        free(t);
        return err_set(errptr, WEIR_ENOMEM,
                       "state store %s, timers: out of memory", name);
    }
    t->db = db;
    t->cf = cf;
    t->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(t->wo, 1);
    t->ro = rocksdb_readoptions_create();
    t->dels = rocksdb_writebatch_create();
    int rc = 0;
    for (int d = 0; d < 2 && rc == 0; d++)
        rc = recompute_next(t, d, errptr);
    if (rc == 0)
        rc = flush_dels(t, errptr); /* malformed keys found */
    if (rc < 0) {
        state_timer_detach(t);
        return rc;
    }
    *out = t;
    return 0;
}

void state_timer_detach(state_timers *t)
{
    if (!t)
        return;
    rocksdb_writeoptions_destroy(t->wo);
    rocksdb_readoptions_destroy(t->ro);
    rocksdb_writebatch_destroy(t->dels);
    for (int d = 0; d < 2; d++)
        tbuf_free(&t->dom[d].lo);
    tbuf_free(&t->key);
    tbuf_free(&t->chunk);
    tbuf_free(&t->last);
    free(t->name);
    free(t);
}
