/*
 * th_state.h - fixture for the state tests: a temporary directory under
 * /tmp (removed at teardown), a state env, one store with a fake clock, and
 * a recording expiry hook.
 */
#ifndef WEIR_TESTS_TH_STATE_H
#define WEIR_TESTS_TH_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "state/state.h"

/* One recorded hook call. */
typedef struct th_hook_call {
    char key[64];
    char ukey[64];
    char value[256];
    size_t key_len, ukey_len, value_len;
    int has_ukey;
} th_hook_call;

typedef struct th_fx th_fx;

/* Called by the recording hook after it recorded a call; may use state. */
typedef int (*th_hook_action)(th_fx *fx, weir_state *st, const void *key,
                              size_t key_len, const void *ukey, size_t ukey_len,
                              const void *value, size_t value_len);

struct th_fx {
    char dir[256];  /* temporary root, removed at teardown */
    char path[512]; /* the store's directory (dir/store) */
    state_env *env;
    state_store *s;
    int64_t now; /* the fake processing clock */
    size_t cache_entries;
    int with_hook;
    th_hook_call *calls;
    size_t n_calls, cap_calls;
    th_hook_action action;
    void *action_arg;
    int hook_rc;               /* returned by the hook when action is NULL */
    const char *restore_delta; /* passed to the next th_fx_open_store */
};

/* Parameter of a test: the cache size (0 = off). */
typedef struct th_param {
    size_t cache_entries;
} th_param;

/* Creates the temp dir and env, opens the store (hook on when with_hook). */
th_fx *th_fx_new(size_t cache_entries, int with_hook);
/* Opens the store at fx->path (after th_fx_close_store). */
void th_fx_open_store(th_fx *fx);
void th_fx_close_store(th_fx *fx);
/* Closes everything and removes the directory. */
void th_fx_free(th_fx *fx);

/* Declares a state or fails the test. */
weir_state *th_declare(th_fx *fx, const char *name, weir_state_kind kind,
                       int64_t ttl_ms, weir_ttl_update upd,
                       weir_ttl_visibility vis, weir_time_domain dom);

/* Sets the current key from a C string (key group 7). */
void th_key(th_fx *fx, const char *key, int64_t ts);

/* value_get as a C string compare: 1 when found and equal to `want`, 0 when
 * not found; fails the test on an error or on a different value. */
int th_value_is(weir_state *st, const char *want);
int th_map_is(weir_state *st, const char *ukey, const char *want);
void th_value_put(weir_state *st, const char *v);
void th_map_put(weir_state *st, const char *ukey, const char *v);

/* Joins the list elements with ',' into buf. */
void th_list_join(weir_state *st, char *buf, size_t len);
/* Joins "ukey=value" pairs of the map with ',' into buf. */
void th_map_join(weir_state *st, char *buf, size_t len);

/* Runs state_sweep until it processes less than `budget`; returns the total
 * number of entries expired. */
size_t th_sweep_all(th_fx *fx, size_t budget);

/* Number of hook calls whose key is `key`. */
size_t th_hook_count(const th_fx *fx, const char *key);

/* Two cmocka tests of `f`: cache off, and a cache of 64 entries (small,
 * so that tests evict too). */
extern const th_param th_cache_off, th_cache_on;
#define TH_BOTH(f)                                                             \
    {#f " [cache off]", f, NULL, NULL, (void *)&th_cache_off},                 \
    {                                                                          \
#f " [cache on]", f, NULL, NULL, (void *)&th_cache_on                  \
    }
#define TH_PARAM(state) (((const th_param *)*(state))->cache_entries)

#endif
