/*
 * Per-key timers in the state store (state/timers.h): firing order,
 * coalescing, delete, callbacks that register, delete and use state,
 * budgets, next(), reopen and checkpoint restore, the two domains, 100k
 * timers with bounded memory and no walk over tombstones, callback errors,
 * misuse and damaged keys. Tests whose callbacks use state run with the
 * cache off and on.
 */
#include <dirent.h>
#include <fcntl.h>
#include <rocksdb/c.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "state/timers.h"
#include "th_state.h"

#define PROC  WEIR_TIME_PROCESSING
#define EVENT WEIR_TIME_EVENT

/* ------------------------------------------------------------------------ */
/* Recording callback                                                        */
/* ------------------------------------------------------------------------ */

typedef struct fired {
    int d;
    int64_t ts;
    uint16_t kg; /* from the store's current key during the call */
    char key[64];
    size_t key_len;
} fired;

typedef struct rec rec;
/* Runs after the call was recorded; its result is the callback's. */
typedef int (*rec_action)(rec *r, const fired *f);

struct rec {
    th_fx *fx;
    fired *v;
    size_t n, cap;
    rec_action action;
    weir_state *st; /* for actions that use state */
    size_t fail_at; /* return fail_rc at this call (1-based); 0: never */
    int fail_rc;
    int calls; /* for actions: how often they did their thing */
};

static int rec_fn(void *arg, weir_time_domain d, int64_t ts, const void *key,
                  size_t key_len)
{
    rec *r = arg;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
        assert_non_null(r->v);
    }
    fired *f = &r->v[r->n++];
    memset(f, 0, sizeof *f);
    f->d = (int)d;
    f->ts = ts;
    assert_true(key_len < sizeof f->key);
    memcpy(f->key, key, key_len);
    f->key_len = key_len;
    /* The timer's key is the current key: key group | varint | key. */
    size_t plen = 0;
    const char *p = state_key_bytes(r->fx->s, &plen);
    assert_non_null(p);
    assert_int_equal(plen, 2 + 1 + key_len);
    assert_int_equal((unsigned char)p[2], key_len);
    assert_memory_equal(p + 3, key, key_len);
    f->kg = (uint16_t)(((unsigned char)p[0] << 8) | (unsigned char)p[1]);
    if (r->fail_at && r->n == r->fail_at)
        return r->fail_rc;
    return r->action ? r->action(r, f) : 0;
}

static void rec_init(rec *r, th_fx *fx)
{
    memset(r, 0, sizeof *r);
    r->fx = fx;
}

/* rec_init() for a record used before. */
static void rec_reset(rec *r, th_fx *fx)
{
    free(r->v);
    rec_init(r, fx);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void key_kg(th_fx *fx, uint16_t kg, const char *key)
{
    assert_int_equal(state_set_key(fx->s, kg, key, strlen(key), WEIR_TS_NONE),
                     0);
}

static void reg(th_fx *fx, uint16_t kg, const char *key, int d, int64_t ts)
{
    key_kg(fx, kg, key);
    char *err = NULL;
    int rc = state_timer_register(fx->s, (weir_time_domain)d, ts, &err);
    if (rc)
        fail_msg("register: %d %s", rc, err);
    state_clear_key(fx->s);
}

static void del(th_fx *fx, uint16_t kg, const char *key, int d, int64_t ts)
{
    key_kg(fx, kg, key);
    char *err = NULL;
    int rc = state_timer_delete(fx->s, (weir_time_domain)d, ts, &err);
    if (rc)
        fail_msg("delete: %d %s", rc, err);
    state_clear_key(fx->s);
}

static int fire(th_fx *fx, rec *r, int d, int64_t limit, size_t budget)
{
    char *err = NULL;
    int n = state_timer_fire(fx->s, (weir_time_domain)d, limit, budget, rec_fn,
                             r, &err);
    if (n < 0)
        fail_msg("fire: %d %s", n, err);
    assert_true((size_t)n <= budget);
    /* No current key afterwards. */
    size_t plen;
    assert_null(state_key_bytes(fx->s, &plen));
    return n;
}

/* Fires until a call fires less than the budget; returns the total. */
static size_t fire_all(th_fx *fx, rec *r, int d, int64_t limit, size_t budget)
{
    size_t total = 0;
    for (;;) {
        int n = fire(fx, r, d, limit, budget);
        total += (size_t)n;
        if ((size_t)n < budget)
            return total;
    }
}

static uint64_t count(th_fx *fx)
{
    uint64_t n = 0;
    char *err = NULL;
    if (state_timer_count(fx->s, &n, &err))
        fail_msg("count: %s", err);
    return n;
}

static int is_key(const fired *f, const char *key)
{
    return f->key_len == strlen(key) && memcmp(f->key, key, f->key_len) == 0;
}

/* Copies the flat directory src (a RocksDB checkpoint) to dst. */
static void copy_dir(const char *src, const char *dst)
{
    assert_int_equal(mkdir(dst, 0777), 0);
    DIR *dir = opendir(src);
    assert_non_null(dir);
    struct dirent *e;
    char buf[65536];
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        int in = open(a, O_RDONLY), out = open(b, O_WRONLY | O_CREAT, 0666);
        assert_true(in >= 0 && out >= 0);
        ssize_t n;
        while ((n = read(in, buf, sizeof buf)) > 0)
            assert_int_equal(write(out, buf, (size_t)n), n);
        assert_int_equal(n, 0);
        close(in);
        close(out);
    }
    closedir(dir);
}

/* Whether the RocksDB directory `path` has column family `cf`. */
static int has_cf(const char *path, const char *cf)
{
    rocksdb_options_t *o = rocksdb_options_create();
    char *err = NULL;
    size_t n = 0;
    char **names = rocksdb_list_column_families(o, path, &n, &err);
    assert_null(err);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        found |= strcmp(names[i], cf) == 0;
    rocksdb_list_column_families_destroy(names, n);
    rocksdb_options_destroy(o);
    return found;
}

/* Puts k -> v into column family `cf` of the closed store's directory,
 * creating the directory and the column family when missing. */
static void raw_put(const char *path, const char *cf, const char *k,
                    size_t klen, const char *v)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    char *err = NULL;
    size_t n = 0;
    char **names = rocksdb_list_column_families(o, path, &n, &err);
    free(err);
    err = NULL;
    const char *all[16];
    size_t n_all = 0;
    int found = 0;
    for (size_t i = 0; i < n && n_all < 15; i++) {
        all[n_all++] = names[i];
        found |= strcmp(names[i], cf) == 0;
    }
    if (n_all == 0)
        all[n_all++] = "default";
    if (!found && strcmp(cf, "default") != 0)
        all[n_all++] = cf;
    const rocksdb_options_t *opts[16];
    rocksdb_column_family_handle_t *hs[16];
    for (size_t i = 0; i < n_all; i++)
        opts[i] = o;
    rocksdb_t *db =
        rocksdb_open_column_families(o, path, (int)n_all, all, opts, hs, &err);
    if (err)
        fail_msg("raw open: %s", err);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    for (size_t i = 0; i < n_all; i++)
        if (strcmp(all[i], cf) == 0) {
            rocksdb_put_cf(db, wo, hs[i], k, klen, v, strlen(v), &err);
            assert_null(err);
        }
    for (size_t i = 0; i < n_all; i++)
        rocksdb_column_family_handle_destroy(hs[i]);
    rocksdb_close(db);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);
    if (names)
        rocksdb_list_column_families_destroy(names, n);
}

/* ------------------------------------------------------------------------ */
/* Order, coalescing, delete, budget, next                                   */
/* ------------------------------------------------------------------------ */

typedef struct tk {
    uint16_t kg;
    const char *key;
    int64_t ts;
} tk;

/* (ts, key group, key length, key bytes): the documented firing order. */
static int tk_cmp(const void *a, const void *b)
{
    const tk *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->kg != y->kg)
        return x->kg < y->kg ? -1 : 1;
    size_t lx = strlen(x->key), ly = strlen(y->key);
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return memcmp(x->key, y->key, lx);
}

/* Timers fire in (ts, key group, key) order, only up to the limit, and
 * negative and extreme times order numerically. */
static void test_order(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    tk t[] = {
        {7, "b", 30},        {7, "a", 30},   {3, "zz", 30},
        {7, "aa", 30},       {9, "a", 10},   {7, "b", 20},
        {1, "c", -5},        {1, "c", 0},    {2, "x", INT64_MIN},
        {2, "y", INT64_MAX}, {0, "", 25},    {300, "m", 20},
        {7, "a", -1000000},  {7, "a", 1000}, {7, "\xff", 30},
    };
    size_t n = sizeof t / sizeof *t;
    for (size_t i = 0; i < n; i++)
        reg(fx, t[i].kg, t[i].key, EVENT, t[i].ts);
    assert_int_equal(count(fx), n);
    assert_int_equal(state_timer_next(fx->s, EVENT), INT64_MIN);
    assert_int_equal(state_timer_next(fx->s, PROC), INT64_MAX);
    qsort(t, n, sizeof *t, tk_cmp);

    /* Up to 25: the timers at or before it, in order. */
    rec r;
    rec_init(&r, fx);
    size_t due = 0;
    while (due < n && t[due].ts <= 25)
        due++;
    assert_int_equal(fire_all(fx, &r, EVENT, 25, 100), due);
    assert_int_equal(state_timer_next(fx->s, EVENT), t[due].ts);
    assert_int_equal(state_timer_next(fx->s, EVENT), 30);
    /* The rest, up to the very end of time. */
    assert_int_equal(fire_all(fx, &r, EVENT, INT64_MAX, 100), n - due);
    assert_int_equal(r.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r.v[i].d, EVENT);
        assert_int_equal(r.v[i].ts, t[i].ts);
        assert_int_equal(r.v[i].kg, t[i].kg);
        assert_true(is_key(&r.v[i], t[i].key));
    }
    assert_int_equal(count(fx), 0);
    assert_int_equal(state_timer_next(fx->s, EVENT), INT64_MAX);
    free(r.v);
    th_fx_free(fx);
}

/* The same (key, domain, ts) twice is one timer; any difference makes
 * another. */
static void test_coalesce(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    reg(fx, 7, "k", EVENT, 10);
    reg(fx, 7, "k", EVENT, 10);
    assert_int_equal(count(fx), 1);
    reg(fx, 7, "k", EVENT, 11);  /* another time */
    reg(fx, 7, "k", PROC, 10);   /* another domain */
    reg(fx, 8, "k", EVENT, 10);  /* another key group */
    reg(fx, 7, "kk", EVENT, 10); /* another key */
    reg(fx, 7, "kk", EVENT, 10);
    assert_int_equal(count(fx), 5);
    rec r;
    rec_init(&r, fx);
    assert_int_equal(fire_all(fx, &r, EVENT, 100, 10), 4);
    assert_int_equal(fire_all(fx, &r, PROC, 100, 10), 1);
    assert_int_equal(r.n, 5);
    assert_int_equal(count(fx), 0);
    /* Registered again after it fired: it fires again. */
    reg(fx, 7, "k", EVENT, 10);
    assert_int_equal(fire_all(fx, &r, EVENT, 100, 10), 1);
    free(r.v);
    th_fx_free(fx);
}

/* Delete removes one timer; an absent one is no error; deleting the
 * earliest moves next() to the following one. */
static void test_delete(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    reg(fx, 7, "a", EVENT, 10);
    reg(fx, 7, "b", EVENT, 10);
    reg(fx, 7, "a", EVENT, 20);
    reg(fx, 7, "a", EVENT, 30);
    del(fx, 7, "a", EVENT, 20);
    del(fx, 7, "a", EVENT, 20);  /* again */
    del(fx, 7, "zz", EVENT, 20); /* never registered */
    del(fx, 7, "a", PROC, 10);   /* other domain */
    state_timer_stats st0, st1;
    state_timer_stats_get(fx->s, &st0);
    del(fx, 7, "a", EVENT, 5); /* before every timer: known absent */
    state_timer_stats_get(fx->s, &st1);
    assert_int_equal(st1.deleted, st0.deleted); /* nothing written */
    del(fx, 7, "a", EVENT, 1000);               /* after every timer */
    assert_int_equal(count(fx), 3);
    assert_int_equal(state_timer_next(fx->s, EVENT), 10);
    del(fx, 7, "a", EVENT, 10);
    assert_int_equal(state_timer_next(fx->s, EVENT), 10); /* "b" is left */
    del(fx, 7, "b", EVENT, 10);
    assert_int_equal(state_timer_next(fx->s, EVENT), 30);
    rec r;
    rec_init(&r, fx);
    assert_int_equal(fire_all(fx, &r, EVENT, 100, 10), 1);
    assert_int_equal(r.v[0].ts, 30);
    del(fx, 7, "a", EVENT, 30); /* fired already */
    assert_int_equal(count(fx), 0);
    assert_int_equal(state_timer_next(fx->s, EVENT), INT64_MAX);
    free(r.v);
    th_fx_free(fx);
}

/* A budget bounds each call; a call that fires less than its budget leaves
 * nothing due; next() is right after every step. */
static void test_budget_next(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    assert_int_equal(state_timer_next(fx->s, PROC), INT64_MAX);
    assert_int_equal(state_timer_next(fx->s, EVENT), INT64_MAX);
    assert_int_equal(state_timer_next(fx->s, (weir_time_domain)5), INT64_MAX);
    char k[16];
    for (int i = 9; i >= 0; i--) {
        snprintf(k, sizeof k, "k%d", i);
        reg(fx, 7, k, PROC, 100 + i);
        assert_int_equal(state_timer_next(fx->s, PROC), 100 + i);
    }
    reg(fx, 7, "late", PROC, 500);
    rec r;
    rec_init(&r, fx);
    assert_int_equal(fire(fx, &r, PROC, 99, 3), 0);
    assert_int_equal(state_timer_next(fx->s, PROC), 100);
    int want[] = {3, 3, 3, 1, 0};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fire(fx, &r, PROC, 200, 3), want[i]);
        int64_t nx = r.n < 10 ? 100 + (int64_t)r.n : 500;
        assert_int_equal(state_timer_next(fx->s, PROC), nx);
    }
    assert_int_equal(r.n, 10);
    for (size_t i = 0; i < r.n; i++)
        assert_int_equal(r.v[i].ts, 100 + (int64_t)i);
    assert_int_equal(fire(fx, &r, PROC, 200, 0), 0);
    assert_int_equal(fire(fx, &r, PROC, 1000, 1), 1);
    assert_int_equal(state_timer_next(fx->s, PROC), INT64_MAX);
    free(r.v);
    th_fx_free(fx);
}

/* Processing and event time are separate queues. */
static void test_domains(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    reg(fx, 7, "k", PROC, 10);
    reg(fx, 7, "k", EVENT, 10);
    reg(fx, 7, "k", EVENT, 5);
    assert_int_equal(state_timer_next(fx->s, PROC), 10);
    assert_int_equal(state_timer_next(fx->s, EVENT), 5);
    rec r;
    rec_init(&r, fx);
    assert_int_equal(fire_all(fx, &r, EVENT, 100, 10), 2);
    assert_int_equal(state_timer_next(fx->s, EVENT), INT64_MAX);
    assert_int_equal(state_timer_next(fx->s, PROC), 10);
    assert_int_equal(count(fx), 1);
    del(fx, 7, "k", EVENT, 10); /* gone in EVENT, still there in PROC */
    assert_int_equal(count(fx), 1);
    assert_int_equal(fire_all(fx, &r, PROC, 100, 10), 1);
    assert_int_equal(r.v[0].d, EVENT);
    assert_int_equal(r.v[2].d, PROC);
    free(r.v);
    th_fx_free(fx);
}

/* ------------------------------------------------------------------------ */
/* Callbacks that register and delete                                        */
/* ------------------------------------------------------------------------ */

static void cb_reg(rec *r, weir_time_domain d, int64_t ts)
{
    char *err = NULL;
    int rc = state_timer_register(r->fx->s, d, ts, &err);
    if (rc)
        fail_msg("register in callback: %d %s", rc, err);
}

static void cb_del(rec *r, uint16_t kg, const char *key, weir_time_domain d,
                   int64_t ts)
{
    /* The store's current key is the timer's; deleting another key's
     * timer needs that key current, as the runtime never does: go via a
     * fresh set_key and back. */
    size_t plen;
    const char *p = state_key_bytes(r->fx->s, &plen);
    char saved[80];
    assert_true(plen <= sizeof saved);
    memcpy(saved, p, plen);
    key_kg(r->fx, kg, key);
    char *err = NULL;
    int rc = state_timer_delete(r->fx->s, d, ts, &err);
    if (rc)
        fail_msg("delete in callback: %d %s", rc, err);
    assert_int_equal(state_set_key(r->fx->s,
                                   (uint16_t)(((unsigned char)saved[0] << 8) |
                                              (unsigned char)saved[1]),
                                   saved + 3, (size_t)(unsigned char)saved[2],
                                   WEIR_TS_NONE),
                     0);
}

/* "a"@10 registers itself at 20 (later than the limit), at 12 (due: this
 * call) and, once, at 10 again (due: this call); "b"@11 registers "a"@5
 * (before the current position: still this call). */
static int act_reregister(rec *r, const fired *f)
{
    if (is_key(f, "a") && f->ts == 10) {
        cb_reg(r, EVENT, 20);
        cb_reg(r, EVENT, 12);
        if (!r->calls++)
            cb_reg(r, EVENT, 10);
    }
    if (is_key(f, "b") && f->ts == 11) {
        key_kg(r->fx, 7, "a");
        cb_reg(r, EVENT, 5);
    }
    return 0;
}

static void test_fn_registers(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    reg(fx, 7, "a", EVENT, 10);
    reg(fx, 7, "b", EVENT, 11);
    reg(fx, 7, "c", EVENT, 15);
    reg(fx, 7, "d", EVENT, 16);
    rec r;
    rec_init(&r, fx);
    r.action = act_reregister;
    assert_int_equal(fire(fx, &r, EVENT, 15, 100), 6);
    /* a@10, a@10 again, b@11, a@5 (registered behind), a@12, c@15. */
    int64_t ts[] = {10, 10, 11, 5, 12, 15};
    const char *keys[] = {"a", "a", "b", "a", "a", "c"};
    assert_int_equal(r.n, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r.v[i].ts, ts[i]);
        assert_true(is_key(&r.v[i], keys[i]));
    }
    /* Left: d@16, a@20. */
    assert_int_equal(state_timer_next(fx->s, EVENT), 16);
    assert_int_equal(count(fx), 2);
    free(r.v);
    th_fx_free(fx);
}

/* A budget of one: a timer the callback registers at its own time fires in
 * the next call. */
static int act_same_ts(rec *r, const fired *f)
{
    if (r->calls++ < 3)
        cb_reg(r, EVENT, f->ts);
    return 0;
}

static void test_fn_registers_budget(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    reg(fx, 7, "a", EVENT, 10);
    rec r;
    rec_init(&r, fx);
    r.action = act_same_ts;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fire(fx, &r, EVENT, 10, 1), 1);
        assert_int_equal(state_timer_next(fx->s, EVENT),
                         i < 3 ? 10 : INT64_MAX);
    }
    assert_int_equal(fire(fx, &r, EVENT, 10, 1), 0);
    assert_int_equal(r.n, 4);
    /* With a budget, the same happens in one call. */
    r.calls = 0;
    reg(fx, 7, "a", EVENT, 10);
    assert_int_equal(fire(fx, &r, EVENT, 10, 100), 4);
    free(r.v);
    th_fx_free(fx);
}

/* Callbacks delete timers: within the chunk being fired (they do not fire),
 * the first one after the limit (next() follows), and one in the other
 * domain. */
static int act_delete(rec *r, const fired *f)
{
    if (is_key(f, "k1")) {
        cb_del(r, 7, "k3", EVENT, 3);    /* due, later in this chunk */
        cb_del(r, 7, "k9", EVENT, 50);   /* the first one after the limit */
        cb_del(r, 7, "k0", EVENT, 0);    /* fired already */
        cb_del(r, 7, "p", PROC, 1);      /* other domain */
        cb_del(r, 7, "none", EVENT, 60); /* absent */
    }
    return 0;
}

static void test_fn_deletes(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    char k[16];
    for (int i = 0; i < 6; i++) {
        snprintf(k, sizeof k, "k%d", i);
        reg(fx, 7, k, EVENT, i);
    }
    reg(fx, 7, "k9", EVENT, 50);
    reg(fx, 7, "k8", EVENT, 70);
    reg(fx, 7, "p", PROC, 1);
    rec r;
    rec_init(&r, fx);
    r.action = act_delete;
    assert_int_equal(fire(fx, &r, EVENT, 10, 100), 5);
    int64_t want[] = {0, 1, 2, 4, 5};
    for (int i = 0; i < 5; i++)
        assert_int_equal(r.v[i].ts, want[i]);
    assert_int_equal(state_timer_next(fx->s, EVENT), 70);
    assert_int_equal(state_timer_next(fx->s, PROC), INT64_MAX);
    assert_int_equal(count(fx), 1);
    free(r.v);
    th_fx_free(fx);
}

/* What a callback does to the timers after its chunk keeps next() exact:
 * "a" deletes "b", the first one after the chunk [a, a2]; "x" registers
 * one after the chunk [x, y]; "c", alone in its chunk, registers one before
 * the next one. */
static int act_after(rec *r, const fired *f)
{
    if (is_key(f, "a"))
        cb_del(r, 7, "b", EVENT, 20);
    if (is_key(f, "x") && f->ts == 1)
        cb_reg(r, PROC, 40);
    if (is_key(f, "c") && f->ts == 21)
        cb_reg(r, EVENT, 25);
    return 0;
}

static void test_fn_after_chunk(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    reg(fx, 7, "a", EVENT, 10);
    reg(fx, 7, "a2", EVENT, 11);
    reg(fx, 7, "b", EVENT, 20);
    reg(fx, 7, "c", EVENT, 21);
    reg(fx, 7, "d", EVENT, 30);
    rec r;
    rec_init(&r, fx);
    r.action = act_after;
    assert_int_equal(fire(fx, &r, EVENT, 15, 100), 2);
    assert_int_equal(state_timer_next(fx->s, EVENT), 21);
    assert_int_equal(fire(fx, &r, EVENT, 100, 1), 1); /* c, registers 25 */
    assert_int_equal(state_timer_next(fx->s, EVENT), 25);
    assert_int_equal(fire(fx, &r, EVENT, 100, 10), 2);
    assert_true(is_key(&r.v[3], "c") && r.v[3].ts == 25);
    assert_true(is_key(&r.v[4], "d"));
    assert_int_equal(state_timer_next(fx->s, PROC), INT64_MAX);

    reg(fx, 7, "x", PROC, 1);
    reg(fx, 7, "y", PROC, 2);
    reg(fx, 7, "z", PROC, 50);
    assert_int_equal(state_timer_next(fx->s, PROC), 1);
    assert_int_equal(fire(fx, &r, PROC, 10, 100), 2);
    assert_int_equal(state_timer_next(fx->s, PROC), 40);
    assert_int_equal(state_timer_next(fx->s, EVENT), INT64_MAX);
    assert_int_equal(fire(fx, &r, PROC, 100, 100), 2);
    assert_true(is_key(&r.v[7], "x") && r.v[7].ts == 40);
    free(r.v);
    th_fx_free(fx);
}

/* ------------------------------------------------------------------------ */
/* Callbacks that use state                                                  */
/* ------------------------------------------------------------------------ */

/* Reads the key's value (written by "process") and writes it back with
 * the timer's time appended. */
static int act_state(rec *r, const fired *f)
{
    const void *v;
    size_t len;
    char *err = NULL;
    int rc = state_value_get(r->st, &v, &len, &err);
    if (rc)
        fail_msg("value_get in callback: %d %s", rc, err);
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%.*s@%lld", (int)len, (const char *)v,
                     (long long)f->ts);
    rc = state_value_put(r->st, buf, (size_t)n, &err);
    if (rc)
        fail_msg("value_put in callback: %d %s", rc, err);
    return 0;
}

static void test_fn_uses_state(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = th_declare(fx, "v", WEIR_STATE_VALUE, WEIR_TTL_NONE,
                               WEIR_TTL_ON_CREATE_AND_WRITE,
                               WEIR_TTL_NEVER_RETURN_EXPIRED, PROC);
    char k[16], val[32];
    /* 200 keys: more than the small cache holds. */
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "key%03d", i);
        th_key(fx, k, WEIR_TS_NONE);
        snprintf(val, sizeof val, "v%d", i);
        th_value_put(v, val);
        assert_int_equal(state_timer_register(fx->s, PROC, 1000 + i, NULL), 0);
        if (i % 2 == 0)
            assert_int_equal(state_timer_register(fx->s, PROC, 5000, NULL), 0);
    }
    state_clear_key(fx->s);
    rec r;
    rec_init(&r, fx);
    r.action = act_state;
    r.st = v;
    assert_int_equal(fire_all(fx, &r, PROC, 10000, 37), 300);
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "key%03d", i);
        th_key(fx, k, WEIR_TS_NONE);
        if (i % 2 == 0)
            snprintf(val, sizeof val, "v%d@%d@5000", i, 1000 + i);
        else
            snprintf(val, sizeof val, "v%d@%d", i, 1000 + i);
        assert_int_equal(th_value_is(v, val), 1);
    }
    free(r.v);
    th_fx_free(fx);
}

static int act_ttl_put(rec *r, const fired *f)
{
    (void)f;
    char *err = NULL;
    if (state_value_put(r->st, "x", 1, &err))
        fail_msg("value_put: %s", err);
    return 0;
}

/* During an event-time timer the event time is the timer's time, so an
 * event-time TTL counts from it; a processing-time timer has no event
 * time, so the TTL counts from the watermark. */
static void test_fn_event_time(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = th_declare(fx, "v", WEIR_STATE_VALUE, 1000,
                               WEIR_TTL_ON_CREATE_AND_WRITE,
                               WEIR_TTL_NEVER_RETURN_EXPIRED, EVENT);
    reg(fx, 7, "e", EVENT, 10000);
    reg(fx, 7, "p", PROC, 10000);
    state_set_watermark(fx->s, 10500);
    rec r;
    rec_init(&r, fx);
    r.action = act_ttl_put;
    r.st = v;
    assert_int_equal(fire_all(fx, &r, EVENT, 10500, 10), 1);
    assert_int_equal(fire_all(fx, &r, PROC, 10500, 10), 1);
    /* "e" expires at 10000 + 1000, "p" at 10500 + 1000. */
    state_set_watermark(fx->s, 11000);
    th_key(fx, "e", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, NULL), 0);
    th_key(fx, "p", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, "x"), 1);
    state_set_watermark(fx->s, 11500);
    assert_int_equal(th_value_is(v, NULL), 0);
    free(r.v);
    th_fx_free(fx);
}

/* ------------------------------------------------------------------------ */
/* Errors and misuse                                                         */
/* ------------------------------------------------------------------------ */

/* A callback's error comes back as is; its timer is gone, the others
 * stay; a restore from a checkpoint taken before has it again. */
static void test_fn_error(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = th_declare(fx, "v", WEIR_STATE_VALUE, WEIR_TTL_NONE,
                               WEIR_TTL_ON_CREATE_AND_WRITE,
                               WEIR_TTL_NEVER_RETURN_EXPIRED, PROC);
    char k[16], val[32];
    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof k, "k%d", i);
        th_key(fx, k, WEIR_TS_NONE);
        snprintf(val, sizeof val, "v%d", i);
        th_value_put(v, val);
        reg(fx, 7, k, EVENT, 10 + i);
    }
    char cp[400], copy[400];
    snprintf(cp, sizeof cp, "%s/cp", fx->dir);
    snprintf(copy, sizeof copy, "%s/copy", fx->dir);
    assert_int_equal(state_checkpoint(fx->s, cp, NULL), 0);
    rec r;
    rec_init(&r, fx);
    r.action = act_state;
    r.st = v;
    r.fail_at = 3;
    r.fail_rc = WEIR_EFAIL;
    char *err = NULL;
    assert_int_equal(state_timer_fire(fx->s, EVENT, 100, 100, rec_fn, &r, &err),
                     WEIR_EFAIL);
    assert_non_null(err);
    assert_non_null(strstr(err, "12"));
    free(err);
    size_t plen;
    assert_null(state_key_bytes(fx->s, &plen));
    assert_int_equal(r.n, 3);
    assert_int_equal(count(fx), 2);
    assert_int_equal(state_timer_next(fx->s, EVENT), 13);
    r.fail_at = 0;
    assert_int_equal(fire_all(fx, &r, EVENT, 100, 100), 2);
    assert_int_equal(r.v[3].ts, 13);

    /* The "failure": restore the checkpoint. All five are back. */
    th_fx_close_store(fx);
    copy_dir(cp, copy);
    snprintf(fx->path, sizeof fx->path, "%s", copy);
    th_fx_open_store(fx);
    v = th_declare(fx, "v", WEIR_STATE_VALUE, WEIR_TTL_NONE,
                   WEIR_TTL_ON_CREATE_AND_WRITE, WEIR_TTL_NEVER_RETURN_EXPIRED,
                   PROC);
    assert_int_equal(count(fx), 5);
    assert_int_equal(state_timer_next(fx->s, EVENT), 10);
    rec_reset(&r, fx);
    r.action = act_state;
    r.st = v;
    assert_int_equal(fire_all(fx, &r, EVENT, 100, 2), 5);
    th_key(fx, "k2", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, "v2@12"), 1); /* the state of then */
    free(r.v);
    th_fx_free(fx);
}

static int act_nested_fire(rec *r, const fired *f)
{
    (void)f;
    char *err = NULL;
    rec inner;
    rec_init(&inner, r->fx);
    int rc = state_timer_fire(r->fx->s, PROC, 100, 10, rec_fn, &inner, &err);
    assert_int_equal(rc, WEIR_ESTATE);
    assert_non_null(err);
    free(err);
    r->calls++;
    return 0;
}

/* From an expiry hook: register and delete work on the hook's key, fire
 * is refused. */
static int hook_timers(th_fx *fx, weir_state *st, const void *key,
                       size_t key_len, const void *ukey, size_t ukey_len,
                       const void *value, size_t value_len)
{
    (void)st, (void)key, (void)key_len, (void)ukey, (void)ukey_len;
    (void)value, (void)value_len;
    rec r;
    rec_init(&r, fx);
    char *err = NULL;
    assert_int_equal(state_timer_fire(fx->s, PROC, 100, 10, rec_fn, &r, &err),
                     WEIR_ESTATE);
    free(err);
    assert_int_equal(state_timer_register(fx->s, EVENT, 77, NULL), 0);
    assert_int_equal(state_timer_register(fx->s, EVENT, 78, NULL), 0);
    assert_int_equal(state_timer_delete(fx->s, EVENT, 78, NULL), 0);
    return 0;
}

static void test_misuse(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    char *err = NULL;
    /* Without a current key. */
    assert_int_equal(state_timer_register(fx->s, EVENT, 1, &err), WEIR_ESTATE);
    assert_non_null(strstr(err, "current key"));
    assert_int_equal(state_timer_delete(fx->s, EVENT, 1, &err), WEIR_ESTATE);
    /* Unknown domain. */
    th_key(fx, "k", WEIR_TS_NONE);
    assert_int_equal(state_timer_register(fx->s, (weir_time_domain)2, 1, &err),
                     WEIR_EINVAL);
    assert_int_equal(state_timer_delete(fx->s, (weir_time_domain)-1, 1, &err),
                     WEIR_EINVAL);
    rec r;
    rec_init(&r, fx);
    assert_int_equal(
        state_timer_fire(fx->s, (weir_time_domain)2, 1, 1, rec_fn, &r, &err),
        WEIR_EINVAL);
    assert_int_equal(state_timer_fire(fx->s, EVENT, 1, 1, NULL, &r, &err),
                     WEIR_EINVAL);
    free(err);
    assert_int_equal(count(fx), 0);

    /* Fire from a timer callback. */
    reg(fx, 7, "a", PROC, 1);
    reg(fx, 7, "b", PROC, 2);
    r.action = act_nested_fire;
    assert_int_equal(fire_all(fx, &r, PROC, 100, 10), 2);
    assert_int_equal(r.calls, 2);

    /* From an expiry hook. */
    weir_state *v =
        th_declare(fx, "v", WEIR_STATE_VALUE, 100, WEIR_TTL_ON_CREATE_AND_WRITE,
                   WEIR_TTL_NEVER_RETURN_EXPIRED, PROC);
    fx->action = hook_timers;
    th_key(fx, "h", WEIR_TS_NONE);
    th_value_put(v, "x");
    fx->now += 100;
    assert_int_equal(th_sweep_all(fx, 10), 1);
    assert_int_equal(fx->n_calls, 1);
    assert_int_equal(count(fx), 1);
    rec_reset(&r, fx);
    assert_int_equal(fire_all(fx, &r, EVENT, 100, 10), 1);
    assert_true(is_key(&r.v[0], "h"));
    assert_int_equal(r.v[0].kg, 7);
    assert_int_equal(r.v[0].ts, 77);

    /* A callback result above zero goes on. */
    reg(fx, 7, "a", PROC, 1);
    reg(fx, 7, "b", PROC, 2);
    rec_reset(&r, fx);
    r.fail_at = 1;
    r.fail_rc = 1;
    assert_int_equal(fire_all(fx, &r, PROC, 100, 10), 2);
    free(r.v);
    th_fx_free(fx);
}

/* ------------------------------------------------------------------------ */
/* Persistence                                                               */
/* ------------------------------------------------------------------------ */

/* Timers survive close and reopen; next() is known at open. */
static void test_reopen(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    reg(fx, 7, "a", EVENT, 30);
    reg(fx, 7, "b", EVENT, 20);
    reg(fx, 7, "c", PROC, 40);
    reg(fx, 7, "d", EVENT, 10);
    rec r;
    rec_init(&r, fx);
    assert_int_equal(fire(fx, &r, EVENT, 10, 10), 1);
    th_fx_close_store(fx);
    th_fx_open_store(fx);
    assert_int_equal(count(fx), 3);
    assert_int_equal(state_timer_next(fx->s, EVENT), 20);
    assert_int_equal(state_timer_next(fx->s, PROC), 40);
    assert_int_equal(fire_all(fx, &r, EVENT, 100, 10), 2);
    assert_int_equal(fire_all(fx, &r, PROC, 100, 10), 1);
    assert_true(is_key(&r.v[1], "b") && is_key(&r.v[2], "a") &&
                is_key(&r.v[3], "c"));
    th_fx_close_store(fx);
    th_fx_open_store(fx);
    assert_int_equal(count(fx), 0);
    assert_int_equal(state_timer_next(fx->s, EVENT), INT64_MAX);
    free(r.v);
    th_fx_free(fx);
}

/* A checkpoint holds the timers pending when it was taken (its copy, opened
 * as a store, has exactly those), whatever happens after it. */
static void test_checkpoint(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    reg(fx, 7, "a", EVENT, 10);
    reg(fx, 7, "b", EVENT, 20);
    reg(fx, 7, "c", PROC, 5);
    rec r;
    rec_init(&r, fx);
    assert_int_equal(fire(fx, &r, PROC, 5, 10), 1);
    char cp[400], copy[400];
    snprintf(cp, sizeof cp, "%s/cp", fx->dir);
    snprintf(copy, sizeof copy, "%s/copy", fx->dir);
    assert_int_equal(state_checkpoint(fx->s, cp, NULL), 0);
    assert_true(has_cf(cp, STATE_TIMER_CF));
    assert_int_equal(fire(fx, &r, EVENT, 10, 10), 1);
    reg(fx, 7, "d", EVENT, 1);
    th_fx_close_store(fx);
    copy_dir(cp, copy);
    snprintf(fx->path, sizeof fx->path, "%s", copy);
    th_fx_open_store(fx);
    assert_int_equal(count(fx), 2);
    assert_int_equal(state_timer_next(fx->s, EVENT), 10);
    assert_int_equal(state_timer_next(fx->s, PROC), INT64_MAX);
    rec_reset(&r, fx);
    assert_int_equal(fire_all(fx, &r, EVENT, 100, 10), 2);
    assert_true(is_key(&r.v[0], "a") && is_key(&r.v[1], "b"));
    free(r.v);
    th_fx_free(fx);
}

/* A directory from before timers (no "__timers" column family) opens and
 * gets one; damaged timer keys are removed, not fired. */
static void test_old_dir_and_damage(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    th_fx_close_store(fx);
    snprintf(fx->path, sizeof fx->path, "%s/old", fx->dir);
    raw_put(fx->path, "default", "weir.format", 11, "1");
    assert_false(has_cf(fx->path, STATE_TIMER_CF));
    th_fx_open_store(fx);
    assert_true(has_cf(fx->path, STATE_TIMER_CF));
    reg(fx, 7, "good", EVENT, 10);
    reg(fx, 7, "good", PROC, 10);
    th_fx_close_store(fx);
    /* domain 1, ts, key group 7, length 9 but 1 byte; a short key; a key
     * of domain 5. */
    char bad1[] = {1, (char)0x80, 0, 0, 0, 0, 0, 0, 5, 0, 7, 9, 'x'};
    char bad2[] = {1, (char)0x80, 0};
    char bad3[] = {5, (char)0x80, 0, 0, 0, 0, 0, 0, 5, 0, 7, 1, 'x'};
    char bad4[] = {0, (char)0x80, 0, 0, 0, 0, 0, 0, 1, 0, 7, 2, 'x'};
    raw_put(fx->path, STATE_TIMER_CF, bad1, sizeof bad1, "");
    raw_put(fx->path, STATE_TIMER_CF, bad2, sizeof bad2, "");
    raw_put(fx->path, STATE_TIMER_CF, bad3, sizeof bad3, "");
    raw_put(fx->path, STATE_TIMER_CF, bad4, sizeof bad4, "");
    th_fx_open_store(fx);
    state_timer_stats ts;
    state_timer_stats_get(fx->s, &ts);
    assert_int_equal(ts.dropped, 3); /* bad1, bad2 (event), bad4 (proc) */
    assert_int_equal(state_timer_next(fx->s, EVENT), 10);
    assert_int_equal(state_timer_next(fx->s, PROC), 10);
    rec r;
    rec_init(&r, fx);
    assert_int_equal(fire_all(fx, &r, EVENT, 100, 10), 1);
    assert_int_equal(fire_all(fx, &r, PROC, 100, 10), 1);
    assert_true(is_key(&r.v[0], "good") && is_key(&r.v[1], "good"));
    assert_int_equal(count(fx), 1); /* bad3: outside both domains */
    free(r.v);
    th_fx_free(fx);
}

/* ------------------------------------------------------------------------ */
/* Many timers                                                               */
/* ------------------------------------------------------------------------ */

static size_t many(void)
{
    const char *e = getenv("WEIR_LONG_TESTS");
    return e && strcmp(e, "1") == 0 ? 1000000 : 100000;
}

/* Counts calls and checks the order, without recording. */
typedef struct counter {
    th_fx *fx;
    size_t n;
    int64_t last_ts;
} counter;

static int count_fn(void *arg, weir_time_domain d, int64_t ts, const void *key,
                    size_t key_len)
{
    (void)d, (void)key, (void)key_len;
    counter *c = arg;
    assert_true(ts >= c->last_ts);
    c->last_ts = ts;
    c->n++;
    return 0;
}

/* 100k timers fire in order in bounded steps, with a bounded buffer, a
 * number of seeks proportional to the chunks, and (the cursor) without
 * walking over the tombstones the earlier fires left. */
static void test_many(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    size_t n = many();
    char k[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(k, sizeof k, "user%07zu", i);
        key_kg(fx, (uint16_t)(i % 128), k);
        int64_t ts = (int64_t)((i * 7919) % n);
        assert_int_equal(state_timer_register(fx->s, EVENT, ts, NULL), 0);
    }
    state_clear_key(fx->s);
    assert_int_equal(count(fx), n);
    assert_int_equal(state_timer_next(fx->s, EVENT), 0);

    rocksdb_set_perf_level(rocksdb_enable_count);
    rocksdb_perfcontext_t *pc = rocksdb_perfcontext_create();
    rocksdb_perfcontext_reset(pc);
    state_timer_stats st0;
    state_timer_stats_get(fx->s, &st0);
    counter c = {fx, 0, INT64_MIN};
    const size_t budget = 1000;
    size_t calls = 0;
    for (int64_t wm = 0;; wm += (int64_t)n / 50) {
        for (;;) {
            char *err = NULL;
            int got =
                state_timer_fire(fx->s, EVENT, wm, budget, count_fn, &c, &err);
            if (got < 0)
                fail_msg("fire: %s", err);
            calls++;
            if ((size_t)got < budget)
                break;
        }
        assert_true(state_timer_next(fx->s, EVENT) > wm);
        if (c.n == n)
            break;
        assert_true(wm < (int64_t)n);
    }
    uint64_t skipped =
        rocksdb_perfcontext_metric(pc, rocksdb_internal_delete_skipped_count);
    rocksdb_perfcontext_destroy(pc);
    rocksdb_set_perf_level(1 /* disable */);
    state_timer_stats st;
    state_timer_stats_get(fx->s, &st);
    assert_int_equal(c.n, n);
    assert_int_equal(st.fired - st0.fired, n);
    assert_int_equal(count(fx), 0);
    /* A chunk is at most 256 keys of 17 bytes here. */
    assert_true(st.buffer_peak <= 256 * (1 + 9 + 2 + 1 + 11));
    /* One seek per chunk of 256 and per call, no more. */
    assert_true(st.seeks - st0.seeks <= n / 256 + 2 * calls);
    /* Seeking past the fired timers, not from the domain's start: walking
     * the tombstones would skip O(n^2 / budget) of them. */
    assert_true(skipped <= 2 * calls);
    th_fx_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_order, (void *)&th_cache_off),
        cmocka_unit_test_prestate(test_coalesce, (void *)&th_cache_off),
        cmocka_unit_test_prestate(test_delete, (void *)&th_cache_off),
        cmocka_unit_test_prestate(test_budget_next, (void *)&th_cache_off),
        cmocka_unit_test_prestate(test_domains, (void *)&th_cache_off),
        cmocka_unit_test_prestate(test_fn_registers, (void *)&th_cache_off),
        cmocka_unit_test_prestate(test_fn_registers_budget,
                                  (void *)&th_cache_off),
        cmocka_unit_test_prestate(test_fn_deletes, (void *)&th_cache_off),
        cmocka_unit_test_prestate(test_fn_after_chunk, (void *)&th_cache_off),
        TH_BOTH(test_fn_uses_state),
        TH_BOTH(test_fn_event_time),
        TH_BOTH(test_fn_error),
        TH_BOTH(test_misuse),
        cmocka_unit_test_prestate(test_reopen, (void *)&th_cache_off),
        cmocka_unit_test_prestate(test_checkpoint, (void *)&th_cache_off),
        cmocka_unit_test_prestate(test_old_dir_and_damage,
                                  (void *)&th_cache_off),
        cmocka_unit_test_prestate(test_many, (void *)&th_cache_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
