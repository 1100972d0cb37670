/*
 * Keyed state without expiry: value, map and list semantics, the
 * write-back cache (eviction, tombstones, large values, map iteration over
 * cache + disk), declaration rules, reopen, checkpoints and the directory
 * lock. Every test runs with the cache off and on.
 */
#include <rocksdb/c.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "th_state.h"

#define NOTTL                                                                  \
    WEIR_TTL_NONE, WEIR_TTL_ON_CREATE_AND_WRITE,                               \
        WEIR_TTL_NEVER_RETURN_EXPIRED, WEIR_TIME_PROCESSING

static void test_value(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);

    th_key(fx, "alice", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, NULL), 0);
    th_value_put(v, "1");
    assert_int_equal(th_value_is(v, "1"), 1);
    th_value_put(v, "two");
    assert_int_equal(th_value_is(v, "two"), 1);

    /* Same key bytes in another key group, and another key: separate. */
    assert_int_equal(state_set_key(fx->s, 8, "alice", 5, WEIR_TS_NONE), 0);
    assert_int_equal(th_value_is(v, NULL), 0);
    th_value_put(v, "kg8");
    th_key(fx, "bob", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, NULL), 0);
    th_key(fx, "alice", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, "two"), 1);

    /* Empty and binary values. */
    th_key(fx, "", WEIR_TS_NONE);
    assert_int_equal(state_value_put(v, "", 0, NULL), 0);
    const void *p;
    size_t len = 99;
    assert_int_equal(state_value_get(v, &p, &len, NULL), 0);
    assert_int_equal(len, 0);
    const char bin[] = {0, 1, 0, (char)0xff, 0};
    assert_int_equal(state_value_put(v, bin, sizeof bin, NULL), 0);
    assert_int_equal(state_value_get(v, &p, &len, NULL), 0);
    assert_int_equal(len, sizeof bin);
    assert_memory_equal(p, bin, sizeof bin);

    /* Delete, and delete of an absent value. */
    th_key(fx, "alice", WEIR_TS_NONE);
    assert_int_equal(state_value_delete(v, NULL), 0);
    assert_int_equal(th_value_is(v, NULL), 0);
    assert_int_equal(state_value_delete(v, NULL), 0);
    assert_int_equal(state_set_key(fx->s, 8, "alice", 5, WEIR_TS_NONE), 0);
    assert_int_equal(th_value_is(v, "kg8"), 1);
    th_fx_free(fx);
}

static void test_wrong_use(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
    weir_state *m = th_declare(fx, "m", WEIR_STATE_MAP, NOTTL);
    char *err = NULL;
    const void *p;
    size_t len;
    /* No current key yet. */
    assert_int_equal(state_value_get(v, &p, &len, &err), WEIR_ESTATE);
    assert_non_null(strstr(err, "no current key"));
    th_key(fx, "k", WEIR_TS_NONE);
    assert_int_equal(state_value_get(m, &p, &len, &err), WEIR_EINVAL);
    assert_non_null(strstr(err, "map state"));
    assert_int_equal(state_map_put(v, "a", 1, "b", 1, &err), WEIR_EINVAL);
    assert_int_equal(state_list_add(v, "a", 1, &err), WEIR_EINVAL);
    state_clear_key(fx->s);
    assert_int_equal(state_map_put(m, "a", 1, "b", 1, &err), WEIR_ESTATE);
    free(err);
    /* A key too long for the format. */
    char *big = calloc(1, 70000);
    assert_int_equal(state_set_key(fx->s, 1, big, 70000, 0), WEIR_EINVAL);
    free(big);
    th_fx_free(fx);
}

static void test_map(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *m = th_declare(fx, "m", WEIR_STATE_MAP, NOTTL);
    char buf[512];

    th_key(fx, "k", WEIR_TS_NONE);
    th_map_put(m, "b", "2");
    th_map_put(m, "a", "1");
    th_map_put(m, "c", "3");
    assert_int_equal(th_map_is(m, "a", "1"), 1);
    assert_int_equal(th_map_is(m, "zz", NULL), 0);
    th_map_join(m, buf, sizeof buf);
    assert_string_equal(buf, "a=1,b=2,c=3");

    /* Half on disk, half in the cache: iteration sees the merge. */
    assert_int_equal(state_flush(fx->s, NULL), 0);
    th_map_put(m, "a", "A");
    th_map_put(m, "d", "4");
    assert_int_equal(state_map_delete(m, "b", 1, NULL), 0);
    th_map_join(m, buf, sizeof buf);
    assert_string_equal(buf, "a=A,c=3,d=4");
    assert_int_equal(th_map_is(m, "b", NULL), 0);

    /* Keys are length-prefixed: key "k" + ukey "x" is not key "kx". */
    th_key(fx, "kx", WEIR_TS_NONE);
    th_map_join(m, buf, sizeof buf);
    assert_string_equal(buf, "");
    th_map_put(m, "", "empty-ukey");
    th_key(fx, "k", WEIR_TS_NONE);
    th_map_join(m, buf, sizeof buf);
    assert_string_equal(buf, "a=A,c=3,d=4");
    th_key(fx, "kx", WEIR_TS_NONE);
    th_map_join(m, buf, sizeof buf);
    assert_string_equal(buf, "=empty-ukey");

    /* Clear removes cached and stored entries of this key only. */
    th_key(fx, "k", WEIR_TS_NONE);
    th_map_put(m, "e", "5");
    assert_int_equal(state_map_clear(m, NULL), 0);
    th_map_join(m, buf, sizeof buf);
    assert_string_equal(buf, "");
    assert_int_equal(th_map_is(m, "a", NULL), 0);
    assert_int_equal(th_map_is(m, "e", NULL), 0);
    th_map_put(m, "f", "6");
    th_key(fx, "kx", WEIR_TS_NONE);
    assert_int_equal(th_map_is(m, "", "empty-ukey"), 1);

    th_fx_close_store(fx);
    th_fx_open_store(fx);
    m = th_declare(fx, "m", WEIR_STATE_MAP, NOTTL);
    th_key(fx, "k", WEIR_TS_NONE);
    th_map_join(m, buf, sizeof buf);
    assert_string_equal(buf, "f=6");
    th_fx_free(fx);
}

static int stop_after_two(void *arg, const void *ukey, size_t ukey_len,
                          const void *value, size_t value_len)
{
    int *n = arg;
    return ++*n == 2 ? 1 : 0;
}

static int fail_at_once(void *arg, const void *ukey, size_t ukey_len,
                        const void *value, size_t value_len)
{
    return WEIR_EINVAL;
}

static void test_iter_stop(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *m = th_declare(fx, "m", WEIR_STATE_MAP, NOTTL);
    weir_state *l = th_declare(fx, "l", WEIR_STATE_LIST, NOTTL);
    th_key(fx, "k", WEIR_TS_NONE);
    for (int i = 0; i < 5; i++) {
        char u[8];
        snprintf(u, sizeof u, "u%d", i);
        th_map_put(m, u, "x");
        assert_int_equal(state_list_add(l, u, strlen(u), NULL), 0);
    }
    int n = 0;
    assert_int_equal(state_map_iter(m, stop_after_two, &n, NULL), 0);
    assert_int_equal(n, 2);
    n = 0;
    assert_int_equal(state_list_iter(l, stop_after_two, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(state_map_iter(m, fail_at_once, NULL, NULL), WEIR_EINVAL);
    assert_int_equal(state_list_iter(l, fail_at_once, NULL, NULL), WEIR_EINVAL);
    th_fx_free(fx);
}

static void test_list(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *l = th_declare(fx, "l", WEIR_STATE_LIST, NOTTL);
    char buf[512];
    th_key(fx, "k", WEIR_TS_NONE);
    th_list_join(l, buf, sizeof buf);
    assert_string_equal(buf, "");
    assert_int_equal(state_list_add(l, "x", 1, NULL), 0);
    assert_int_equal(state_list_add(l, "", 0, NULL), 0);
    assert_int_equal(state_list_add(l, "zz", 2, NULL), 0);
    th_list_join(l, buf, sizeof buf);
    assert_string_equal(buf, "x,,zz");
    assert_int_equal(state_flush(fx->s, NULL), 0);
    assert_int_equal(state_list_add(l, "w", 1, NULL), 0);
    th_key(fx, "other", WEIR_TS_NONE);
    assert_int_equal(state_list_add(l, "o", 1, NULL), 0);
    th_key(fx, "k", WEIR_TS_NONE);
    th_list_join(l, buf, sizeof buf);
    assert_string_equal(buf, "x,,zz,w");
    assert_int_equal(state_list_clear(l, NULL), 0);
    th_list_join(l, buf, sizeof buf);
    assert_string_equal(buf, "");
    assert_int_equal(state_list_add(l, "again", 5, NULL), 0);
    th_fx_close_store(fx);
    th_fx_open_store(fx);
    l = th_declare(fx, "l", WEIR_STATE_LIST, NOTTL);
    th_key(fx, "k", WEIR_TS_NONE);
    th_list_join(l, buf, sizeof buf);
    assert_string_equal(buf, "again");
    th_key(fx, "other", WEIR_TS_NONE);
    th_list_join(l, buf, sizeof buf);
    assert_string_equal(buf, "o");
    th_fx_free(fx);
}

/* The bytes a get returned may be handed straight back to a put (also of
 * a growing value, and of a hooked TTL state, whose put looks up the old
 * entry first). */
static void test_put_returned_bytes(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *v =
        th_declare(fx, "v", WEIR_STATE_VALUE, 100, WEIR_TTL_ON_CREATE_AND_WRITE,
                   WEIR_TTL_NEVER_RETURN_EXPIRED, WEIR_TIME_PROCESSING);
    weir_state *m = th_declare(fx, "m", WEIR_STATE_MAP, NOTTL);
    weir_state *l = th_declare(fx, "l", WEIR_STATE_LIST, NOTTL);
    th_key(fx, "k", WEIR_TS_NONE);
    th_value_put(v, "abcdefgh");
    const void *p;
    size_t len;
    for (int i = 0; i < 3; i++) {
        th_key(fx, "k", WEIR_TS_NONE);
        assert_int_equal(state_value_get(v, &p, &len, NULL), 0);
        assert_int_equal(state_value_put(v, p, len, NULL), 0);
        assert_int_equal(state_value_get(v, &p, &len, NULL), 0);
        assert_int_equal(state_map_put(m, "u", 1, p, len, NULL), 0);
        assert_int_equal(state_map_get(m, "u", 1, &p, &len, NULL), 0);
        assert_int_equal(state_list_add(l, p, len, NULL), 0);
    }
    assert_int_equal(th_value_is(v, "abcdefgh"), 1);
    char buf[64];
    th_list_join(l, buf, sizeof buf);
    assert_string_equal(buf, "abcdefgh,abcdefgh,abcdefgh");
    /* Growing through a previous read: put(value[0..n)) + more. */
    th_value_put(v, "x");
    for (int i = 0; i < 12; i++) {
        assert_int_equal(state_value_get(v, &p, &len, NULL), 0);
        char grown[8192];
        memcpy(grown, p, len);
        memcpy(grown + len, p, len);
        assert_int_equal(state_value_put(v, grown, 2 * len, NULL), 0);
        assert_int_equal(state_value_get(v, &p, &len, NULL), 0);
        assert_int_equal(len, (size_t)2 << i);
        assert_int_equal(state_value_put(v, p, len, NULL), 0);
    }
    th_fx_free(fx);
}

/* Values above the cache's per-value limit go around the cache. */
static void test_large_values(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
    weir_state *l = th_declare(fx, "l", WEIR_STATE_LIST, NOTTL);
    size_t big = 200 * 1024;
    char *b = malloc(big);
    for (size_t i = 0; i < big; i++)
        b[i] = (char)(i * 7);
    th_key(fx, "k", WEIR_TS_NONE);
    th_value_put(v, "small");
    assert_int_equal(state_value_put(v, b, big, NULL), 0);
    const void *p;
    size_t len;
    assert_int_equal(state_value_get(v, &p, &len, NULL), 0);
    assert_int_equal(len, big);
    assert_memory_equal(p, b, big);
    th_value_put(v, "small again");
    assert_int_equal(th_value_is(v, "small again"), 1);
    assert_int_equal(state_value_put(v, b, big, NULL), 0);
    assert_int_equal(state_flush(fx->s, NULL), 0);
    assert_int_equal(state_value_get(v, &p, &len, NULL), 0);
    assert_int_equal(len, big);
    assert_memory_equal(p, b, big);

    /* A list that grows past the limit keeps every element. */
    char el[100];
    for (int i = 0; i < 1000; i++) {
        memset(el, 'a' + i % 26, sizeof el);
        assert_int_equal(state_list_add(l, el, sizeof el, NULL), 0);
    }
    char *joined = malloc(1000 * 101 + 1);
    th_list_join(l, joined, 1000 * 101 + 1);
    assert_int_equal(strlen(joined), 1000 * 101 - 1);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(joined[i * 101], 'a' + i % 26);
    free(joined);
    free(b);
    th_fx_free(fx);
}

/* Many keys through a small cache: eviction writes them all. */
static void test_eviction(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
    weir_state *m = th_declare(fx, "m", WEIR_STATE_MAP, NOTTL);
    char k[32], val[32];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 1000; i++) {
            snprintf(k, sizeof k, "key%d", i);
            snprintf(val, sizeof val, "%d-%d", i, round);
            th_key(fx, k, WEIR_TS_NONE);
            th_value_put(v, val);
            th_map_put(m, "r", val);
        }
    }
    for (int i = 0; i < 1000; i += 2) {
        snprintf(k, sizeof k, "key%d", i);
        th_key(fx, k, WEIR_TS_NONE);
        assert_int_equal(state_value_delete(v, NULL), 0);
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 1000; i++) {
            snprintf(k, sizeof k, "key%d", i);
            snprintf(val, sizeof val, "%d-2", i);
            th_key(fx, k, WEIR_TS_NONE);
            assert_int_equal(th_value_is(v, i % 2 ? val : NULL), i % 2);
            assert_int_equal(th_map_is(m, "r", val), 1);
        }
        th_fx_close_store(fx);
        th_fx_open_store(fx);
        v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
        m = th_declare(fx, "m", WEIR_STATE_MAP, NOTTL);
    }
    uint64_t n = 0;
    assert_int_equal(state_scan_count(fx->s, v, &n, NULL), 0);
    assert_int_equal(n, 500);
    if (TH_PARAM(state)) {
        state_store_stats ss;
        state_store_stats_get(fx->s, &ss);
        assert_true(ss.cache_used <= TH_PARAM(state));
    }
    th_fx_free(fx);
}

/* A deletion cached as a tombstone hides the stored value, also after the
 * tombstone is evicted and after reopen. */
static void test_tombstone(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
    th_key(fx, "victim", WEIR_TS_NONE);
    th_value_put(v, "old");
    assert_int_equal(state_flush(fx->s, NULL), 0);
    assert_int_equal(state_value_delete(v, NULL), 0);
    assert_int_equal(th_value_is(v, NULL), 0);
    char k[32];
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof k, "filler%d", i);
        th_key(fx, k, WEIR_TS_NONE);
        th_value_put(v, "x");
    }
    th_key(fx, "victim", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, NULL), 0);
    th_fx_close_store(fx);
    th_fx_open_store(fx);
    v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
    th_key(fx, "victim", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, NULL), 0);
    th_fx_free(fx);
}

static int declare_err(th_fx *fx, weir_state_desc *d, const char *needle)
{
    weir_state *st = (weir_state *)0x1;
    char *err = NULL;
    int rc = state_declare(fx->s, d, 0, &st, &err);
    assert_null(st);
    if (needle) {
        assert_non_null(err);
        if (!strstr(err, needle))
            fail_msg("message '%s' lacks '%s'", err, needle);
    }
    free(err);
    return rc;
}

static void test_declare_rules(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state_desc d = {
        .size = sizeof d, .kind = WEIR_STATE_VALUE, .name = "v", .ttl_ms = 0};
    assert_int_equal(declare_err(fx, &d, "WEIR_TTL_NONE"), WEIR_EINVAL);
    d.ttl_ms = -5;
    assert_int_equal(declare_err(fx, &d, "negative"), WEIR_EINVAL);
    d.ttl_ms = WEIR_TTL_NONE;
    d.name = "Bad-Name";
    assert_int_equal(declare_err(fx, &d, "a-z"), WEIR_EINVAL);
    d.name = "";
    assert_int_equal(declare_err(fx, &d, "a-z"), WEIR_EINVAL);
    d.name = NULL;
    assert_int_equal(declare_err(fx, &d, "a-z"), WEIR_EINVAL);
    d.name = "v";
    d.kind = (weir_state_kind)9;
    assert_int_equal(declare_err(fx, &d, "kind"), WEIR_EINVAL);
    d.kind = WEIR_STATE_VALUE;
    d.ttl_domain = (weir_time_domain)5;
    assert_int_equal(declare_err(fx, &d, "domain"), WEIR_EINVAL);
    d.ttl_domain = WEIR_TIME_PROCESSING;
    d.size = 8;
    assert_int_equal(declare_err(fx, &d, "too small"), WEIR_EINVAL);
    assert_int_equal(declare_err(fx, NULL, "missing"), WEIR_EINVAL);

    /* An older plugin's shorter descriptor: the rest reads as defaults. */
    d.size = offsetof(weir_state_desc, ttl_update);
    d.ttl_ms = 100;
    d.ttl_update = WEIR_TTL_ON_READ_AND_WRITE; /* beyond size: ignored */
    weir_state *st = NULL;
    assert_int_equal(state_declare(fx->s, &d, 0, &st, NULL), 0);
    assert_string_equal(state_name(st), "v");
    state_stats ss;
    state_stats_get(st, &ss);
    assert_int_equal(ss.ttl_ms, 100);
    assert_int_equal(ss.has_ttl, 1);
    /* Read at t+60 must not refresh (the default is create-and-write). */
    th_key(fx, "k", WEIR_TS_NONE);
    th_value_put(st, "x");
    fx->now += 60;
    th_key(fx, "k", WEIR_TS_NONE);
    assert_int_equal(th_value_is(st, "x"), 1);
    fx->now += 60;
    th_key(fx, "k", WEIR_TS_NONE);
    assert_int_equal(th_value_is(st, NULL), 0);

    d.size = sizeof d;
    assert_int_equal(declare_err(fx, &d, "twice"), WEIR_EINVAL);
    th_fx_free(fx);
}

/* States keep their data across reopen whatever the declaration order; a
 * changed kind is refused. */
static void test_reopen(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *a = th_declare(fx, "a", WEIR_STATE_VALUE, NOTTL);
    weir_state *b = th_declare(fx, "b", WEIR_STATE_MAP, NOTTL);
    th_key(fx, "k", WEIR_TS_NONE);
    th_value_put(a, "va");
    th_map_put(b, "u", "vb");
    th_fx_close_store(fx);

    th_fx_open_store(fx);
    weir_state_desc d = {.size = sizeof d,
                         .kind = WEIR_STATE_LIST,
                         .name = "a",
                         .ttl_ms = WEIR_TTL_NONE};
    weir_state *st;
    char *err = NULL;
    assert_int_equal(state_declare(fx->s, &d, 0, &st, &err), WEIR_EINVAL);
    assert_non_null(strstr(err, "value state"));
    free(err);
    weir_state *c = th_declare(fx, "c", WEIR_STATE_VALUE, NOTTL);
    b = th_declare(fx, "b", WEIR_STATE_MAP, NOTTL);
    a = th_declare(fx, "a", WEIR_STATE_VALUE, NOTTL);
    assert_int_equal(state_count(fx->s), 3);
    assert_ptr_equal(state_at(fx->s, 0), c);
    th_key(fx, "k", WEIR_TS_NONE);
    assert_int_equal(th_value_is(a, "va"), 1);
    assert_int_equal(th_map_is(b, "u", "vb"), 1);
    assert_int_equal(th_value_is(c, NULL), 0);
    th_fx_free(fx);
}

/* A checkpoint holds every write made before it (cache and memtable
 * included) and nothing after; it opens as a store. */
static void test_checkpoint(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
    weir_state *l = th_declare(fx, "l", WEIR_STATE_LIST, NOTTL);
    char k[32];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k%d", i);
        th_key(fx, k, WEIR_TS_NONE);
        th_value_put(v, "before");
        assert_int_equal(state_list_add(l, "e1", 2, NULL), 0);
    }
    char cp[400];
    snprintf(cp, sizeof cp, "%s/cp1", fx->dir);
    char *err = NULL;
    assert_int_equal(state_checkpoint(fx->s, cp, &err), 0);
    /* Into an existing directory: refused with the path in the message. */
    assert_int_equal(state_checkpoint(fx->s, cp, &err), WEIR_EIO);
    assert_non_null(strstr(err, "cp1"));
    free(err);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k%d", i);
        th_key(fx, k, WEIR_TS_NONE);
        th_value_put(v, "after");
        assert_int_equal(state_list_add(l, "e2", 2, NULL), 0);
    }
    th_key(fx, "k0", WEIR_TS_NONE);
    assert_int_equal(state_value_delete(v, NULL), 0);
    th_fx_close_store(fx);

    snprintf(fx->path, sizeof fx->path, "%s", cp);
    th_fx_open_store(fx);
    v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
    l = th_declare(fx, "l", WEIR_STATE_LIST, NOTTL);
    char buf[64];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k%d", i);
        th_key(fx, k, WEIR_TS_NONE);
        assert_int_equal(th_value_is(v, "before"), 1);
        th_list_join(l, buf, sizeof buf);
        assert_string_equal(buf, "e1");
    }
    th_fx_free(fx);
}

/* A delta checkpoint leaves the cache's dirty entries out of RocksDB and
 * writes them to the delta file; the checkpoint opened with the delta holds
 * every write and deletion made before it and nothing after. Without a
 * cache there is nothing to put in a delta. A damaged delta is an error. */
static void test_checkpoint_delta(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
    weir_state *m = th_declare(fx, "m", WEIR_STATE_MAP, NOTTL);
    char k[32];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k%d", i);
        th_key(fx, k, WEIR_TS_NONE);
        th_value_put(v, i % 3 ? "before" : "old");
        assert_int_equal(state_map_put(m, "u", 1, "mv", 2, NULL), 0);
    }
    char *err = NULL;
    assert_int_equal(state_flush(fx->s, &err), 0);
    for (int i = 0; i < 100; i += 3) { /* dirty again, after the flush */
        snprintf(k, sizeof k, "k%d", i);
        th_key(fx, k, WEIR_TS_NONE);
        th_value_put(v, "before");
    }
    th_key(fx, "k1", WEIR_TS_NONE);
    assert_int_equal(state_value_delete(v, NULL), 0);
    assert_int_equal(state_map_delete(m, "u", 1, NULL), 0);
    char cp[400], delta[420];
    snprintf(cp, sizeof cp, "%s/cp", fx->dir);
    snprintf(delta, sizeof delta, "%s/cp.delta", fx->dir);
    int wrote = -1;
    assert_int_equal(state_checkpoint_delta(fx->s, cp, delta, &wrote, &err), 0);
    assert_int_equal(wrote, TH_PARAM(state) ? 1 : 0);
    assert_int_equal(access(delta, F_OK) == 0, wrote);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k%d", i);
        th_key(fx, k, WEIR_TS_NONE);
        th_value_put(v, "after");
    }
    th_fx_close_store(fx);

    snprintf(fx->path, sizeof fx->path, "%s", cp);
    fx->restore_delta = wrote ? delta : NULL;
    th_fx_open_store(fx);
    v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
    m = th_declare(fx, "m", WEIR_STATE_MAP, NOTTL);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k%d", i);
        th_key(fx, k, WEIR_TS_NONE);
        if (i == 1) {
            assert_int_equal(th_value_is(v, NULL), 0);
            assert_int_equal(th_map_is(m, "u", NULL), 0);
        } else {
            assert_int_equal(th_value_is(v, "before"), 1);
            assert_int_equal(th_map_is(m, "u", "mv"), 1);
        }
    }
    th_fx_close_store(fx);
    if (wrote) {
        /* Cut the delta short: the store refuses to open from it. */
        assert_int_equal(truncate(delta, 9), 0);
        state_store_config cfg;
        state_store_config_init(&cfg);
        cfg.path = cp;
        cfg.cache_entries = TH_PARAM(state);
        cfg.restore_delta = delta;
        state_store *s2 = NULL;
        assert_int_equal(state_store_open(fx->env, &cfg, &s2, &err), WEIR_EIO);
        assert_non_null(strstr(err, "is damaged"));
    }
    free(err);
    fx->restore_delta = NULL;
    fx->s = NULL;
    th_fx_free(fx);
}

/* A second open of a directory, by this process or by another one, fails
 * at once with a message that names the directory and the lock. */
static void test_lock(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    state_store_config cfg;
    state_store_config_init(&cfg);
    cfg.path = fx->path;
    state_store *s2 = NULL;
    char *err = NULL;
    assert_int_equal(state_store_open(fx->env, &cfg, &s2, &err), WEIR_EIO);
    assert_null(s2);
    assert_non_null(strstr(err, fx->path));
    assert_non_null(strstr(err, "LOCK"));
    assert_non_null(strstr(err, "in use"));
    free(err);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A real second process: RocksDB's lock is per process. */
        state_env *env = NULL;
        if (state_env_new(NULL, &env, NULL) != 0)
            _exit(10);
        state_store *s3 = NULL;
        char *e = NULL;
        int rc = state_store_open(env, &cfg, &s3, &e);
        int ok = rc == WEIR_EIO && !s3 && e && strstr(e, fx->path) &&
                 strstr(e, "LOCK") && strstr(e, "another process");
        if (!ok)
            fprintf(stderr, "child: rc %d: %s\n", rc, e ? e : "(none)");
        _exit(ok ? 0 : 11);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* Released on close: the directory opens again. */
    th_fx_close_store(fx);
    assert_int_equal(state_store_open(fx->env, &cfg, &s2, &err), 0);
    assert_int_equal(state_store_close(s2, NULL), 0);
    th_fx_free(fx);
}

static void test_paths(void **state)
{
    char *p = NULL, *err = NULL;
    assert_int_equal(state_store_path("/var/weir", "job", "count", 3, &p, &err),
                     0);
    assert_string_equal(p, "/var/weir/job/count/3");
    free(p);
    assert_int_equal(state_store_path("/x", "..", "count", 0, &p, &err),
                     WEIR_EINVAL);
    assert_null(p);
    assert_int_equal(state_store_path("/x", "j", "a/b", 0, &p, &err),
                     WEIR_EINVAL);
    assert_int_equal(state_store_path("/x", "", "a", 0, &p, &err), WEIR_EINVAL);
    assert_int_equal(state_store_path("", "j", "a", 0, &p, &err), WEIR_EINVAL);
    free(err);
    err = NULL;

    /* open creates missing parents; a file in the way is an error. */
    th_fx *fx = th_fx_new(0, 0);
    char deep[400];
    snprintf(deep, sizeof deep, "%s/a/b/c/0", fx->dir);
    state_store_config cfg;
    state_store_config_init(&cfg);
    cfg.path = deep;
    state_store *s2 = NULL;
    assert_int_equal(state_store_open(fx->env, &cfg, &s2, &err), 0);
    assert_int_equal(state_store_close(s2, NULL), 0);
    char file[400];
    snprintf(file, sizeof file, "%s/file", fx->dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(deep, sizeof deep, "%s/file/0", fx->dir);
    assert_int_equal(state_store_open(fx->env, &cfg, &s2, &err), WEIR_EIO);
    assert_non_null(strstr(err, deep));
    free(err);
    th_fx_free(fx);
}

static void test_stats(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
    char k[32];
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof k, "k%d", i);
        th_key(fx, k, WEIR_TS_NONE);
        th_value_put(v, "some bytes");
    }
    assert_int_equal(state_stats_sample(fx->s, NULL), 0);
    state_stats ss;
    state_stats_get(v, &ss);
    assert_string_equal(ss.name, "v");
    assert_int_equal(ss.has_ttl, 0);
    assert_int_equal(ss.est_keys, 300);
    assert_true(ss.live_bytes > 0);
    assert_int_equal(state_flush(fx->s, NULL), 0);
    assert_int_equal(state_stats_sample(fx->s, NULL), 0);
    state_stats_get(v, &ss);
    assert_int_equal(ss.est_keys, 300);
    assert_int_equal(ss.leak_suspected, 0);
    th_fx_free(fx);
}

/* Writes raw records into the store's directory with plain RocksDB,
 * following the layout documented in state.h. */
static void raw_put(th_fx *fx, const char *cf, const char *k, size_t klen,
                    const char *v, size_t vlen)
{
    rocksdb_options_t *o = rocksdb_options_create();
    char *err = NULL;
    size_t n = 0;
    char **names = rocksdb_list_column_families(o, fx->path, &n, &err);
    assert_null(err);
    const rocksdb_options_t **opts = calloc(n, sizeof *opts);
    rocksdb_column_family_handle_t **hs = calloc(n, sizeof *hs);
    for (size_t i = 0; i < n; i++)
        opts[i] = o;
    rocksdb_t *db = rocksdb_open_column_families(
        o, fx->path, (int)n, (const char *const *)names, opts, hs, &err);
    if (err)
        fail_msg("raw open: %s", err);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], cf) == 0) {
            rocksdb_put_cf(db, wo, hs[i], k, klen, v, vlen, &err);
            assert_null(err);
            found = 1;
        }
    }
    assert_true(found);
    for (size_t i = 0; i < n; i++)
        rocksdb_column_family_handle_destroy(hs[i]);
    rocksdb_close(db);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);
    rocksdb_list_column_families_destroy(names, n);
    free(opts);
    free(hs);
}

/* Damaged bytes on disk are reported as WEIR_EIO, not misread. */
static void test_corrupt(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
    th_declare(fx, "l", WEIR_STATE_LIST, NOTTL);
    th_fx_close_store(fx);
    /* key group 7, varint length 1, "k" */
    const char key[] = {0, 7, 1, 'k'};
    raw_put(fx, "s.v", key, sizeof key, "abc", 3); /* shorter than a stamp */
    const char list[] = {0x7f, -1, -1, -1, -1, -1, -1, -1, 5, 'a'};
    raw_put(fx, "s.l", key, sizeof key, list, sizeof list); /* truncated */
    th_fx_open_store(fx);
    weir_state *v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
    weir_state *l = th_declare(fx, "l", WEIR_STATE_LIST, NOTTL);
    th_key(fx, "k", WEIR_TS_NONE);
    const void *p;
    size_t len;
    char *err = NULL;
    assert_int_equal(state_value_get(v, &p, &len, &err), WEIR_EIO);
    assert_non_null(strstr(err, "corrupt"));
    char buf[64];
    assert_int_equal(state_list_iter(l, NULL, buf, &err), WEIR_EIO);
    assert_non_null(strstr(err, "corrupt list"));
    free(err);
    th_fx_close_store(fx);

    /* A directory of another format is refused. */
    raw_put(fx, "default", "weir.format", 11, "2", 1);
    state_store_config cfg;
    state_store_config_init(&cfg);
    cfg.path = fx->path;
    err = NULL;
    assert_int_equal(state_store_open(fx->env, &cfg, &fx->s, &err),
                     WEIR_EINVAL);
    assert_non_null(strstr(err, "format"));
    free(err);
    fx->s = NULL;
    th_fx_free(fx);
}

/* Prefetch hints (state_prefetch_slots/entries) change nothing: a walk over
 * keys with hints two and one records ahead, stale hints and hints for keys
 * that do not exist, reads what was written. Only value and list states get
 * a hint, and only with the cache on. */
static void test_prefetch(void **state)
{
    size_t cache = TH_PARAM(state);
    th_fx *fx = th_fx_new(cache, 0);
    weir_state *v = th_declare(fx, "v", WEIR_STATE_VALUE, NOTTL);
    th_declare(fx, "m", WEIR_STATE_MAP, NOTTL);
    th_declare(fx, "l", WEIR_STATE_LIST, NOTTL);
    char key[32], val[32];
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%d", i);
        snprintf(val, sizeof val, "v%d", i);
        th_key(fx, key, WEIR_TS_NONE);
        th_value_put(v, val);
    }
    state_hint ring[2] = {{.n = 0}, {.n = 0}};
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%d", i + 2); /* k300, k301: absent */
        state_prefetch_slots(fx->s, 7, key, strlen(key), &ring[i & 1]);
        assert_int_equal(ring[i & 1].n, cache ? 2 : 0);
        state_prefetch_entries(fx->s, &ring[(i + 1) & 1]);
        snprintf(key, sizeof key, "k%d", i);
        snprintf(val, sizeof val, "v%d", i);
        th_key(fx, key, WEIR_TS_NONE);
        assert_int_equal(th_value_is(v, val), 1);
        /* A stale hint: the entry it names goes away. */
        if (i % 7 == 0)
            assert_int_equal(state_value_delete(v, NULL), 0);
    }
    state_prefetch_entries(fx->s, &ring[0]);
    state_prefetch_entries(fx->s, &ring[1]);
    char big[STATE_PREFETCH_KEY + 1];
    memset(big, 'x', sizeof big);
    state_prefetch_slots(fx->s, 3, big, sizeof big, &ring[0]);
    assert_int_equal(ring[0].n, 0);
    state_prefetch_slots(fx->s, 3, "", 0, &ring[0]);
    assert_int_equal(ring[0].n, cache ? 2 : 0);
    state_prefetch_entries(fx->s, &ring[0]);
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof key, "k%d", i);
        snprintf(val, sizeof val, "v%d", i);
        th_key(fx, key, WEIR_TS_NONE);
        assert_int_equal(th_value_is(v, i % 7 ? val : NULL), i % 7 ? 1 : 0);
    }
    th_fx_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TH_BOTH(test_value),         TH_BOTH(test_wrong_use),
        TH_BOTH(test_map),           TH_BOTH(test_iter_stop),
        TH_BOTH(test_list),          TH_BOTH(test_large_values),
        TH_BOTH(test_eviction),      TH_BOTH(test_tombstone),
        TH_BOTH(test_declare_rules), TH_BOTH(test_reopen),
        TH_BOTH(test_checkpoint),    TH_BOTH(test_checkpoint_delta),
        TH_BOTH(test_lock),          TH_BOTH(test_stats),
        TH_BOTH(test_corrupt),       TH_BOTH(test_put_returned_bytes),
        TH_BOTH(test_prefetch),      cmocka_unit_test(test_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
