#include "th_state.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

const th_param th_cache_off = {0};
const th_param th_cache_on = {64};

static int th_hook(void *arg, weir_state *st, const void *key, size_t key_len,
                   const void *ukey, size_t ukey_len, const void *value,
                   size_t value_len)
{
    th_fx *fx = arg;
    if (fx->n_calls == fx->cap_calls) {
        fx->cap_calls = fx->cap_calls ? fx->cap_calls * 2 : 64;
        fx->calls = realloc(fx->calls, fx->cap_calls * sizeof *fx->calls);
        assert_non_null(fx->calls);
    }
    th_hook_call *c = &fx->calls[fx->n_calls++];
    memset(c, 0, sizeof *c);
    assert_true(key_len < sizeof c->key);
    memcpy(c->key, key, key_len);
    c->key_len = key_len;
    if (ukey) {
        assert_true(ukey_len < sizeof c->ukey);
        memcpy(c->ukey, ukey, ukey_len);
        c->ukey_len = ukey_len;
        c->has_ukey = 1;
    }
    assert_true(value_len < sizeof c->value);
    memcpy(c->value, value, value_len);
    c->value_len = value_len;
    if (fx->action)
        return fx->action(fx, st, key, key_len, ukey, ukey_len, value,
                          value_len);
    return fx->hook_rc;
}

static int64_t th_clock(void *arg)
{
    return ((th_fx *)arg)->now;
}

void th_fx_open_store(th_fx *fx)
{
    state_store_config cfg;
    state_store_config_init(&cfg);
    cfg.path = fx->path;
    cfg.name = "test#0";
    cfg.clock = th_clock;
    cfg.clock_arg = fx;
    cfg.cache_entries = fx->cache_entries;
    cfg.restore_delta = fx->restore_delta;
    if (fx->with_hook) {
        cfg.on_expired = th_hook;
        cfg.on_expired_arg = fx;
    }
    char *err = NULL;
    int rc = state_store_open(fx->env, &cfg, &fx->s, &err);
    if (rc)
        fail_msg("state_store_open: %s", err);
    free(err);
}

th_fx *th_fx_new(size_t cache_entries, int with_hook)
{
    th_fx *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/weir-state-test-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/store", fx->dir);
    fx->cache_entries = cache_entries;
    fx->with_hook = with_hook;
    fx->now = 1000000;
    state_env_config ec;
    state_env_config_init(&ec);
    ec.block_cache_bytes = 8 << 20;
    ec.write_buffer_bytes = 64 << 20;
    ec.expected_stores = 4;
    char *err = NULL;
    assert_int_equal(state_env_new(&ec, &fx->env, &err), 0);
    th_fx_open_store(fx);
    return fx;
}

void th_fx_close_store(th_fx *fx)
{
    char *err = NULL;
    int rc = state_store_close(fx->s, &err);
    fx->s = NULL;
    if (rc)
        fail_msg("state_store_close: %s", err);
}

/* Keeps walking when one removal fails (nftw stops at a nonzero return). */
static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void th_fx_free(th_fx *fx)
{
    if (!fx)
        return;
    if (fx->s)
        th_fx_close_store(fx);
    state_env_free(fx->env);
    for (int i = 0; i < 5 && access(fx->dir, F_OK) == 0; i++)
        nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx->calls);
    free(fx);
}

weir_state *th_declare(th_fx *fx, const char *name, weir_state_kind kind,
                       int64_t ttl_ms, weir_ttl_update upd,
                       weir_ttl_visibility vis, weir_time_domain dom)
{
    weir_state_desc d = {.size = sizeof d,
                         .kind = kind,
                         .name = name,
                         .ttl_ms = ttl_ms,
                         .ttl_update = upd,
                         .ttl_visibility = vis,
                         .ttl_domain = dom};
    weir_state *st = NULL;
    char *err = NULL;
    int rc = state_declare(fx->s, &d, fx->with_hook, &st, &err);
    if (rc)
        fail_msg("state_declare %s: %s", name, err);
    return st;
}

void th_key(th_fx *fx, const char *key, int64_t ts)
{
    assert_int_equal(state_set_key(fx->s, 7, key, strlen(key), ts), 0);
}

static int check_bytes(int rc, const void *v, size_t len, const char *want,
                       char *err)
{
    if (rc == WEIR_ENOTFOUND)
        return 0;
    if (rc)
        fail_msg("get: %d %s", rc, err ? err : "");
    if (!want)
        fail_msg("get: found %.*s, wanted nothing", (int)len, (const char *)v);
    if (len != strlen(want) || memcmp(v, want, len) != 0)
        fail_msg("get: found '%.*s', wanted '%s'", (int)len, (const char *)v,
                 want);
    return 1;
}

int th_value_is(weir_state *st, const char *want)
{
    const void *v = NULL;
    size_t len = 0;
    char *err = NULL;
    int rc = state_value_get(st, &v, &len, &err);
    int r = check_bytes(rc, v, len, want, err);
    free(err);
    return r;
}

int th_map_is(weir_state *st, const char *ukey, const char *want)
{
    const void *v = NULL;
    size_t len = 0;
    char *err = NULL;
    int rc = state_map_get(st, ukey, strlen(ukey), &v, &len, &err);
    int r = check_bytes(rc, v, len, want, err);
    free(err);
    return r;
}

void th_value_put(weir_state *st, const char *v)
{
    char *err = NULL;
    int rc = state_value_put(st, v, strlen(v), &err);
    if (rc)
        fail_msg("value_put: %d %s", rc, err);
}

void th_map_put(weir_state *st, const char *ukey, const char *v)
{
    char *err = NULL;
    int rc = state_map_put(st, ukey, strlen(ukey), v, strlen(v), &err);
    if (rc)
        fail_msg("map_put: %d %s", rc, err);
}

typedef struct join {
    char *buf;
    size_t len, used;
} join;

static int join_fn(void *arg, const void *ukey, size_t ukey_len,
                   const void *value, size_t value_len)
{
    join *j = arg;
    int n;
    if (ukey)
        n = snprintf(j->buf + j->used, j->len - j->used, "%s%.*s=%.*s",
                     j->used ? "," : "", (int)ukey_len, (const char *)ukey,
                     (int)value_len, (const char *)value);
    else
        n = snprintf(j->buf + j->used, j->len - j->used, "%s%.*s",
                     j->used ? "," : "", (int)value_len, (const char *)value);
    assert_true(n >= 0 && (size_t)n < j->len - j->used);
    j->used += (size_t)n;
    return 0;
}

void th_list_join(weir_state *st, char *buf, size_t len)
{
    join j = {buf, len, 0};
    buf[0] = '\0';
    char *err = NULL;
    int rc = state_list_iter(st, join_fn, &j, &err);
    if (rc)
        fail_msg("list_iter: %d %s", rc, err);
}

void th_map_join(weir_state *st, char *buf, size_t len)
{
    join j = {buf, len, 0};
    buf[0] = '\0';
    char *err = NULL;
    int rc = state_map_iter(st, join_fn, &j, &err);
    if (rc)
        fail_msg("map_iter: %d %s", rc, err);
}

size_t th_sweep_all(th_fx *fx, size_t budget)
{
    size_t total = 0;
    for (;;) {
        size_t exp = 0;
        char *err = NULL;
        int n = state_sweep(fx->s, budget, &exp, &err);
        if (n < 0)
            fail_msg("sweep: %d %s", n, err);
        assert_true((size_t)n <= budget);
        total += exp;
        if ((size_t)n < budget)
            return total;
    }
}

size_t th_hook_count(const th_fx *fx, const char *key)
{
    size_t n = 0;
    for (size_t i = 0; i < fx->n_calls; i++)
        if (fx->calls[i].key_len == strlen(key) &&
            memcmp(fx->calls[i].key, key, fx->calls[i].key_len) == 0)
            n++;
    return n;
}
