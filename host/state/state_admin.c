#include "state/state_admin.h"

#include <inttypes.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "state/codec.h"

#define SA_STAMP_NONE   INT64_MAX
#define SA_STAMP_LEN    8
#define SA_META_PREFIX  META_TTL_PREFIX /* the record's layout: codec.h */
#define SA_META_VERSION 1
#define SA_META_HDR     META_TTL_HDR
#define SA_IDX_HDR      (1 + 8 + 2)

/* What state_admin keeps per declared state. */
typedef struct sa_state {
    weir_state *st;
    int64_t declared_ttl_ms;
    weir_time_domain declared_domain;
    int override;
    int64_t ttl_ms;
    weir_time_domain domain;
    int64_t set_ms;
    int pending, reset;
    int cache_done; /* the pass over the cache is over */
    uint32_t slot;  /* next cache slot of that pass */
    char *cursor;   /* last entry key rewritten; NULL: from the start */
    size_t cursor_len;
    uint64_t rewritten;
} sa_state;

/* The store's slot (state_admin_slot). */
typedef struct sa_store {
    sa_state *v;
    size_t n;
} sa_store;

static int64_t sa_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t sa_sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - 1 - b)
        return INT64_MAX - 1;
    return a + b;
}

static const char *sa_domain_name(weir_time_domain d)
{
    return d == WEIR_TIME_EVENT ? "event time" : "processing time";
}

static sa_state *sa_find(weir_state *st)
{
    sa_store *a = *state_admin_slot(state_store_of(st));
    for (size_t i = 0; a && i < a->n; i++)
        if (a->v[i].st == st)
            return &a->v[i];
    return NULL;
}

static sa_state *sa_add(weir_state *st)
{
    void **slot = state_admin_slot(state_store_of(st));
    sa_store *a = *slot;
    if (!a && !(a = *slot = calloc(1, sizeof *a)))
        return NULL;
    sa_state *v = realloc(a->v, (a->n + 1) * sizeof *v);
    if (!v)
        return NULL;
    a->v = v;
    memset(&v[a->n], 0, sizeof v[a->n]);
    v[a->n].st = st;
    return &v[a->n++];
}

void state_admin_free(state_store *s)
{
    void **slot = state_admin_slot(s);
    sa_store *a = *slot;
    for (size_t i = 0; a && i < a->n; i++)
        free(a->v[i].cursor);
    if (a)
        free(a->v);
    free(a);
    *slot = NULL;
}

/* ------------------------------------------------------------------------ */
/* The stored override                                                       */
/* ------------------------------------------------------------------------ */

static void sa_meta_key(const weir_state *st, char *out, size_t cap)
{
    snprintf(out, cap, SA_META_PREFIX "%s", state_name(st));
}

/* Adds the override record of `a` (with its progress) to batch `b`. */
static int sa_meta_put(sa_state *a, const state_raw *r, rocksdb_writebatch_t *b)
{
    char key[128];
    sa_meta_key(a->st, key, sizeof key);
    size_t len = SA_META_HDR + (a->pending ? a->cursor_len : 0);
    char *v = malloc(len);
    if (!v)
        return -1;
    v[0] = SA_META_VERSION;
    put_be64(v + 1, (uint64_t)a->ttl_ms);
    v[9] = (char)a->domain;
    put_be64(v + 10, (uint64_t)a->set_ms);
    v[18] = (char)(a->pending != 0);
    if (a->pending && a->cursor_len)
        memcpy(v + SA_META_HDR, a->cursor, a->cursor_len);
    rocksdb_writebatch_put_cf(b, r->meta_cf, key, strlen(key), v, len);
    free(v);
    return 0;
}

/* Reads the override record of `a` into it; 0 (a->override tells whether
 * there was one) or a negative code. */
static int sa_meta_load(sa_state *a, const state_raw *r, char **errptr)
{
    char key[128], *rerr = NULL;
    sa_meta_key(a->st, key, sizeof key);
    size_t len = 0;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *v =
        rocksdb_get_cf(r->db, ro, r->meta_cf, key, strlen(key), &len, &rerr);
    rocksdb_readoptions_destroy(ro);
    if (rerr) {
        err_set(errptr, WEIR_EIO,
                "state store %s, state %s: rocksdb metadata get: %s",
                r->store_name, state_name(a->st), rerr);
        free(rerr);
        return WEIR_EIO;
    }
    if (!v)
        return 0;
    int rc = 0;
    int64_t ttl = len >= SA_META_HDR ? (int64_t)get_be64(v + 1) : 0;
    if (len < SA_META_HDR || v[0] != SA_META_VERSION || ttl <= 0 ||
        (v[9] != WEIR_TIME_PROCESSING && v[9] != WEIR_TIME_EVENT)) {
        rc = err_set(errptr, WEIR_EIO,
                     "state store %s, state %s: damaged TTL override record "
                     "(%zu bytes, version %d)",
                     r->store_name, state_name(a->st), len,
                     len ? (int)v[0] : -1);
        goto out;
    }
    a->override = 1;
    a->ttl_ms = ttl;
    a->domain = (weir_time_domain)v[9];
    a->set_ms = (int64_t)get_be64(v + 10);
    a->pending = v[18] != 0;
    a->cache_done = 1; /* a restored store's cache is new */
    free(a->cursor);
    a->cursor = NULL;
    a->cursor_len = len - SA_META_HDR;
    if (a->pending && a->cursor_len && !(a->cursor = malloc(a->cursor_len)))
        rc = err_set(errptr, WEIR_ENOMEM, "state store %s: out of memory",
                     r->store_name);
    else if (a->cursor)
        memcpy(a->cursor, v + SA_META_HDR, a->cursor_len);
    if (!a->cursor)
        a->cursor_len = 0;
out:
    rocksdb_free(v);
    return rc;
}

static void sa_ttl_text(int64_t ttl_ms, weir_time_domain d, char *out,
                        size_t cap)
{
    if (ttl_ms <= 0)
        snprintf(out, cap, "no TTL");
    else
        snprintf(out, cap, "TTL %" PRId64 " ms (%s)", ttl_ms,
                 sa_domain_name(d));
}

int state_admin_declared(weir_state *st, char **errptr)
{
    state_raw r;
    state_raw_get(st, &r);
    sa_state *a = sa_add(st);
    if (!a)
        return err_set(errptr, WEIR_ENOMEM, "state store %s: out of memory",
                       r.store_name);
    a->declared_ttl_ms = r.ttl_ms;
    a->declared_domain = r.domain;
    int rc = sa_meta_load(a, &r, errptr);
    if (rc < 0 || !a->override)
        return rc;
    state_set_ttl(st, a->ttl_ms, a->domain);
    state_filter_enable(st, 1);
    char now[64], was[64], when[32];
    sa_ttl_text(a->ttl_ms, a->domain, now, sizeof now);
    sa_ttl_text(r.ttl_ms, r.domain, was, sizeof was);
    time_t secs = (time_t)(a->set_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    log_msg(WEIR_LOG_INFO, r.store_name,
            "state '%s': TTL override in force: %s, set by `weir ctl state "
            "ttl` at %s (the operator declares %s)%s",
            state_name(st), now, when, was,
            a->pending ? "; the rewrite of existing entries goes on" : "");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Rewriting stamps                                                          */
/* ------------------------------------------------------------------------ */

typedef struct sa_rule {
    int64_t cap;
    int reset;
} sa_rule;

static int64_t sa_restamp(void *arg, int64_t stamp)
{
    const sa_rule *rule = arg;
    if (rule->reset || stamp > rule->cap)
        return rule->cap;
    return stamp;
}

static sa_rule sa_rule_now(const sa_state *a, const state_raw *r)
{
    int64_t base = a->domain == WEIR_TIME_EVENT ? r->wm : r->now;
    return (sa_rule){.cap = sa_sat_add(base, a->ttl_ms), .reset = a->reset};
}

static int sa_rdb_fail(const state_raw *r, const weir_state *st,
                       const char *what, char *rerr, char **errptr)
{
    err_set(errptr, WEIR_EIO, "state store %s, state %s: rocksdb %s: %s",
            r->store_name, state_name(st), what, rerr ? rerr : "failed");
    free(rerr);
    return WEIR_EIO;
}

/* Adds entry (k, stamp | value bytes) and its index entry to `b`. */
static int sa_put_restamped(const state_raw *r, weir_time_domain d,
                            rocksdb_writebatch_t *b, const char *k, size_t klen,
                            int64_t stamp, const char *v, size_t vlen,
                            int write_entry)
{
    char sb[SA_STAMP_LEN];
    stamp_put(sb, stamp);
    if (write_entry) {
        const char *vals[2] = {sb, v + SA_STAMP_LEN};
        size_t vlens[2] = {SA_STAMP_LEN, vlen - SA_STAMP_LEN};
        rocksdb_writebatch_putv_cf(b, r->cf, 1, &k, &klen, 2, vals, vlens);
    }
    char hdr[SA_IDX_HDR];
    hdr[0] = d == WEIR_TIME_EVENT ? 1 : 0;
    istamp_put(hdr + 1, stamp);
    put_be16(hdr + 9, r->id);
    const char *parts[2] = {hdr, k};
    size_t lens[2] = {SA_IDX_HDR, klen};
    const char *empty = "";
    size_t zero = 0;
    rocksdb_writebatch_putv_cf(b, r->idx_cf, 2, parts, lens, 1, &empty, &zero);
    return 0;
}

static int sa_set_cursor(sa_state *a, const char *k, size_t klen)
{
    char *c = realloc(a->cursor, klen ? klen : 1);
    if (!c)
        return -1;
    memcpy(c, k, klen);
    a->cursor = c;
    a->cursor_len = klen;
    return 0;
}

/* Positions `it` after the cursor of `a` (at the first entry without). */
static void sa_seek(const sa_state *a, rocksdb_iterator_t *it)
{
    if (!a->cursor) {
        rocksdb_iter_seek_to_first(it);
        return;
    }
    rocksdb_iter_seek(it, a->cursor, a->cursor_len);
    if (rocksdb_iter_valid(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen == a->cursor_len && memcmp(k, a->cursor, klen) == 0)
            rocksdb_iter_next(it);
    }
}

/*
 * Rewrites up to n entries of a's state after its cursor, and stores the
 * progress in the same write batch. Returns the entries read; a->pending
 * is cleared when the state's end was reached.
 */
static int sa_batch(sa_state *a, size_t n, uint64_t *rewritten, char **errptr)
{
    state_raw r;
    state_raw_get(a->st, &r);
    sa_rule rule = sa_rule_now(a, &r);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r.db, ro, r.cf);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(wo, 1);
    int rc = 0;
    size_t got = 0;
    uint64_t changed = 0;
    for (sa_seek(a, it); got < n && rocksdb_iter_valid(it);
         rocksdb_iter_next(it), got++) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (vlen < SA_STAMP_LEN) {
            rc = err_set(errptr, WEIR_EIO,
                         "state store %s, state %s: corrupt value of %zu "
                         "bytes",
                         r.store_name, state_name(a->st), vlen);
            break;
        }
        int64_t old = stamp_get(v), ns = sa_restamp(&rule, old);
        if (ns != old) {
            int cached = state_cache_restamp_key(a->st, k, klen, ns);
            if (!cached) {
                sa_put_restamped(&r, a->domain, b, k, klen, ns, v, vlen, 1);
                changed++;
            }
        }
        if (sa_set_cursor(a, k, klen) < 0) {
            rc = err_set(errptr, WEIR_ENOMEM, "state store %s: out of memory",
                         r.store_name);
            break;
        }
    }
    char *rerr = NULL;
    if (rc == 0) {
        int more = rocksdb_iter_valid(it);
        rocksdb_iter_get_error(it, &rerr);
        if (rerr)
            rc = sa_rdb_fail(&r, a->st, "iterate", rerr, errptr);
        else if (!more)
            a->pending = 0;
    }
    rocksdb_iter_destroy(it);
    if (rc == 0 && sa_meta_put(a, &r, b) < 0)
        rc = err_set(errptr, WEIR_ENOMEM, "state store %s: out of memory",
                     r.store_name);
    if (rc == 0) {
        rocksdb_write(r.db, wo, b, &rerr);
        if (rerr)
            rc = sa_rdb_fail(&r, a->st, "write batch", rerr, errptr);
    }
    rocksdb_writebatch_destroy(b);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_readoptions_destroy(ro);
    state_raw_written(state_store_of(a->st));
    if (rc < 0) {
        a->pending = 1; /* the batch is redone from the stored cursor */
        return rc;
    }
    a->rewritten += changed;
    if (rewritten)
        *rewritten += changed;
    return got > INT32_MAX ? INT32_MAX : (int)got;
}

/* A rewrite writes about the state's size again (entries and index
 * entries), a purge less; the store's space check with that. */
static int sa_space(weir_state *st, const char *what, char **errptr)
{
    state_stats ss;
    state_stats_get(st, &ss);
    return state_space_check(state_store_of(st), ss.live_bytes, what, errptr);
}

/* Stores the override record of `a` on its own. */
static int sa_meta_write(sa_state *a, const state_raw *r, char **errptr)
{
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(wo, 1);
    char *rerr = NULL;
    int rc = sa_meta_put(a, r, b);
    if (rc == 0)
        rocksdb_write(r->db, wo, b, &rerr);
    rocksdb_writebatch_destroy(b);
    rocksdb_writeoptions_destroy(wo);
    if (rc < 0)
        return err_set(errptr, WEIR_ENOMEM, "state store %s: out of memory",
                       r->store_name);
    return rerr ? sa_rdb_fail(r, a->st, "metadata write", rerr, errptr) : 0;
}

/* One step of a's rewrite: n cache slots while the pass over the cache
 * lasts, then a batch of n RocksDB entries. Returns what it went through
 * (> 0 while a->pending). */
static int sa_step(sa_state *a, size_t n, uint64_t *rewritten,
                   uint64_t *scanned, char **errptr)
{
    if (!a->cache_done) {
        state_raw r;
        state_raw_get(a->st, &r);
        sa_rule rule = sa_rule_now(a, &r);
        uint64_t changed = 0;
        int rc = state_cache_restamp(a->st, &a->slot, (uint32_t)n, sa_restamp,
                                     &rule, a->reset, &changed, errptr);
        if (rc < 0)
            return rc;
        a->rewritten += changed;
        if (rewritten)
            *rewritten += changed;
        a->cache_done = rc == 1;
        if (!a->cache_done)
            return (int)n;
    }
    int got = sa_batch(a, n, rewritten, errptr);
    if (got > 0 && scanned)
        *scanned += (uint64_t)got;
    return got;
}

int state_admin_set_ttl(weir_state *st, int64_t ttl_ms, weir_time_domain domain,
                        int64_t budget_ns, state_admin_result *res,
                        char **errptr)
{
    int64_t t0 = sa_mono_ns();
    memset(res, 0, sizeof *res);
    state_raw r;
    state_raw_get(st, &r);
    if (r.in_hook)
        return err_set(errptr, WEIR_ESTATE,
                       "state %s: TTL change from an expiry hook",
                       state_name(st));
    if (ttl_ms <= 0 ||
        (domain != WEIR_TIME_PROCESSING && domain != WEIR_TIME_EVENT))
        return err_set(errptr, WEIR_EINVAL,
                       "state %s: a TTL override needs ttl_ms > 0 and a time "
                       "domain (got %" PRId64 " ms, domain %d)",
                       state_name(st), ttl_ms, (int)domain);
    sa_state *a = sa_find(st);
    if (!a)
        return err_set(errptr, WEIR_ESTATE, "state %s is not declared",
                       state_name(st));
    int rc = sa_space(st, "a TTL change", errptr);
    if (rc < 0)
        return rc;
    a->reset = r.has_ttl && r.domain != domain;
    int whole = a->reset || domain == WEIR_TIME_EVENT;
    if (a->reset)
        state_filter_enable(st, 0); /* old stamps mean nothing now */
    state_set_ttl(st, ttl_ms, domain);
    a->override = 1;
    a->ttl_ms = ttl_ms;
    a->domain = domain;
    a->set_ms = r.now;
    a->pending = 1;
    a->cache_done = 0;
    a->slot = 0;
    free(a->cursor);
    a->cursor = NULL;
    a->cursor_len = 0;
    a->rewritten = 0;
    rc = sa_meta_write(a, &r, errptr);
    while (rc >= 0) {
        rc = sa_step(a, STATE_ADMIN_BATCH, &res->rewritten, &res->scanned,
                     errptr);
        if (!a->pending ||
            (!whole && budget_ns > 0 && sa_mono_ns() - t0 >= budget_ns))
            break;
    }
    if (a->reset && !a->pending)
        a->reset = 0;
    state_filter_enable(st, 1);
    res->pending = a->pending;
    res->pause_ns = sa_mono_ns() - t0;
    if (rc < 0)
        return rc;
    char now[64], was[64];
    sa_ttl_text(ttl_ms, domain, now, sizeof now);
    sa_ttl_text(r.ttl_ms, r.domain, was, sizeof was);
    log_msg(WEIR_LOG_INFO, r.store_name,
            "state '%s': TTL override set: %s (was %s); %" PRIu64
            " entries read, %" PRIu64 " rewritten in %.1f ms%s",
            state_name(st), now, was, res->scanned, res->rewritten,
            (double)res->pause_ns / 1e6,
            res->pending ? "; the rest is rewritten between records" : "");
    return 0;
}

int state_admin_step(state_store *s, size_t budget, char **errptr)
{
    sa_store *st = *state_admin_slot(s);
    for (size_t i = 0; st && i < st->n; i++) {
        sa_state *a = &st->v[i];
        if (!a->pending)
            continue;
        int rc =
            sa_step(a, budget ? budget : STATE_ADMIN_BATCH, NULL, NULL, errptr);
        if (rc >= 0 && !a->pending) {
            state_raw r;
            state_raw_get(a->st, &r);
            log_msg(WEIR_LOG_INFO, r.store_name,
                    "state '%s': the TTL override rewrote the existing "
                    "entries (%" PRIu64 " in this run)",
                    state_name(a->st), a->rewritten);
        }
        return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Purge                                                                     */
/* ------------------------------------------------------------------------ */

/* Whether the record key of entry key k starts with prefix p. */
static int sa_key_has_prefix(const char *k, size_t klen, const void *p,
                             size_t plen)
{
    uint64_t len = 0;
    size_t used = klen > 2 ? varint_get(k + 2, klen - 2, &len) : 0;
    if (!used || len > klen - 2 - used || len < plen)
        return 0;
    return plen == 0 || memcmp(k + 2 + used, p, plen) == 0;
}

typedef struct sa_purge {
    state_purge_mode mode;
    const void *prefix;
    size_t prefix_len;
    int64_t older_bound; /* STATE_PURGE_OLDER: stamps below it go */
    int64_t expired_at;  /* stamps <= it are expired; INT64_MIN: none */
} sa_purge;

static int sa_matches(const sa_purge *p, const char *k, size_t klen,
                      int64_t stamp)
{
    switch (p->mode) {
    case STATE_PURGE_ALL: return 1;
    case STATE_PURGE_PREFIX:
        return sa_key_has_prefix(k, klen, p->prefix, p->prefix_len);
    case STATE_PURGE_OLDER:
        return stamp != SA_STAMP_NONE && stamp < p->older_bound;
    }
    return 0;
}

/* Deletes the matching entries of the state, in batches: point deletions,
 * also for STATE_PURGE_ALL, because RocksDB's key estimate (the state's
 * statistics) ignores range deletions until they are compacted. */
static int sa_purge_scan(weir_state *st, const state_raw *r, const sa_purge *p,
                         state_admin_result *res, char **errptr)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->db, ro, r->cf);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(wo, 1);
    char *rerr = NULL;
    int rc = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        res->scanned++;
        int64_t stamp = vlen >= SA_STAMP_LEN ? stamp_get(v) : SA_STAMP_NONE;
        if (!sa_matches(p, k, klen, stamp))
            continue;
        res->purged++;
        if (stamp != SA_STAMP_NONE && stamp <= p->expired_at)
            res->purged_expired++;
        rocksdb_writebatch_delete_cf(b, r->cf, k, klen);
        if (rocksdb_writebatch_count(b) >= STATE_ADMIN_BATCH) {
            rocksdb_write(r->db, wo, b, &rerr);
            rocksdb_writebatch_clear(b);
            if (rerr)
                break;
        }
    }
    if (!rerr)
        rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    if (!rerr && rocksdb_writebatch_count(b))
        rocksdb_write(r->db, wo, b, &rerr);
    if (rerr)
        rc = sa_rdb_fail(r, st, "purge", rerr, errptr);
    rocksdb_writebatch_destroy(b);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

int state_admin_purge(weir_state *st, state_purge_mode mode, const void *prefix,
                      size_t prefix_len, int64_t older_ms,
                      state_admin_result *res, char **errptr)
{
    int64_t t0 = sa_mono_ns();
    memset(res, 0, sizeof *res);
    state_raw r;
    state_raw_get(st, &r);
    if (r.in_hook)
        return err_set(errptr, WEIR_ESTATE,
                       "state %s: purge from an expiry hook", state_name(st));
    if (mode != STATE_PURGE_ALL && mode != STATE_PURGE_PREFIX &&
        mode != STATE_PURGE_OLDER)
        return err_set(errptr, WEIR_EINVAL, "state %s: unknown purge mode %d",
                       state_name(st), (int)mode);
    if (mode == STATE_PURGE_OLDER && !r.has_ttl)
        return err_set(errptr, WEIR_EINVAL,
                       "state '%s' has no TTL: its entries carry no write "
                       "time, so their age is unknown; give it a TTL first "
                       "(state ttl) or purge by --prefix or --all",
                       state_name(st));
    if (mode == STATE_PURGE_OLDER && older_ms < 0)
        return err_set(errptr, WEIR_EINVAL, "state %s: negative age",
                       state_name(st));
    int64_t base = r.domain == WEIR_TIME_EVENT ? r.wm : r.now;
    sa_purge p = {.mode = mode,
                  .prefix = prefix,
                  .prefix_len = prefix ? prefix_len : 0,
                  .expired_at = r.has_ttl ? base : INT64_MIN};
    if (mode == STATE_PURGE_OLDER) /* stamp - ttl < base - older */
        p.older_bound = sa_sat_add(base - older_ms, r.ttl_ms);
    int rc = sa_space(st, "a purge", errptr);
    if (rc == 0)
        rc = state_cache_detach(st, errptr);
    if (rc == 0)
        rc = sa_purge_scan(st, &r, &p, res, errptr);
    state_raw_written(state_store_of(st));
    res->pause_ns = sa_mono_ns() - t0;
    if (rc < 0)
        return rc;
    log_msg(WEIR_LOG_INFO, r.store_name,
            "state '%s': purged %" PRIu64 " of %" PRIu64 " entries (%" PRIu64
            " of them expired) in %.1f ms",
            state_name(st), res->purged, res->scanned, res->purged_expired,
            (double)res->pause_ns / 1e6);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Information                                                               */
/* ------------------------------------------------------------------------ */

void state_admin_info_get(weir_state *st, state_admin_info *out)
{
    memset(out, 0, sizeof *out);
    state_raw r;
    state_raw_get(st, &r);
    out->ttl_ms = r.ttl_ms;
    out->domain = r.domain;
    out->declared_ttl_ms = r.ttl_ms;
    out->declared_domain = r.domain;
    const sa_state *a = sa_find(st);
    if (!a)
        return;
    out->declared_ttl_ms = a->declared_ttl_ms;
    out->declared_domain = a->declared_domain;
    out->override = a->override;
    out->set_ms = a->set_ms;
    out->rewrite_pending = a->pending;
    out->rewritten = a->rewritten;
}
