/*
 * The write-back cache's entry table (host/state/state_cache.c) against a
 * plain model: random inserts, finds, value changes, appends and removals
 * over keys both shorter and longer than the inline space, with map-state
 * groups, a tiny table (long probe runs, wrapping, backward-shift deletion)
 * and hash collisions forced by a weak hash. After every step each live
 * key must be found with its exact value, each removed one must not, and
 * every group list must hold exactly its live members.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "state/state_cache.h"

#define N_KEYS  96
#define MAX_VAL 200
#define PLEN    4

typedef struct model_ent {
    char key[80];
    uint32_t klen;
    uint16_t sid;
    uint16_t plen;
    int live;
    uint32_t idx;
    char val[MAX_VAL * 4];
    size_t vlen;
} model_ent;

static model_ent model[N_KEYS];
static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A deliberately weak hash (few distinct values) when `weak`, so that
 * probe runs are long and tags collide; FNV-1a otherwise. */
static uint64_t hash_of(uint16_t sid, const char *k, size_t n, int weak)
{
    uint64_t h = 1469598103934665603ull ^ sid;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
    return weak ? (h & 7) * 0x9E3779B97F4A7C15ull : h;
}

static void model_init(void)
{
    for (int i = 0; i < N_KEYS; i++) {
        model_ent *m = &model[i];
        memset(m, 0, sizeof *m);
        m->sid = (uint16_t)(i % 3);
        /* Groups of 8 keys share a 4-byte prefix; lengths cross the inline
         * size in both directions. */
        m->klen = (uint32_t)(PLEN + 1 + (i * 7) % 60);
        memcpy(m->key, "grp", 3);
        m->key[3] = (char)('a' + i / 8);
        for (uint32_t j = PLEN; j < m->klen; j++)
            m->key[j] = (char)('0' + (i + j) % 10);
        m->key[PLEN] = (char)i;
        m->plen = (i % 2) ? PLEN : 0;
    }
}

static void check_all(state_cache *c, int weak)
{
    uint64_t bytes = 0;
    uint32_t used = 0;
    for (int i = 0; i < N_KEYS; i++) {
        model_ent *m = &model[i];
        uint32_t f = state_cache_find(c, m->sid, m->key, m->klen,
                                      hash_of(m->sid, m->key, m->klen, weak));
        if (!m->live) {
            assert_int_equal(f, STATE_CACHE_NONE);
            continue;
        }
        assert_int_equal(f, m->idx);
        state_cache_ent *e = state_cache_at(c, f);
        assert_int_equal(e->klen, m->klen);
        assert_memory_equal(state_cache_key(e), m->key, m->klen);
        assert_int_equal(e->vlen, m->vlen);
        if (m->vlen)
            assert_memory_equal(state_cache_val(e), m->val, m->vlen);
        bytes += m->klen + m->vlen;
        used++;
    }
    assert_int_equal(c->bytes, bytes);
    assert_int_equal(c->used, used);
    /* Every group list holds exactly its live members. */
    for (int g = 0; g < N_KEYS; g += 8) {
        for (uint16_t sid = 0; sid < 3; sid++) {
            int want = 0, got = 0;
            for (int i = g; i < g + 8; i++)
                if (model[i].live && model[i].plen && model[i].sid == sid)
                    want++;
            const char *p = model[g].key;
            for (uint32_t e = state_cache_group(
                     c, sid, p, PLEN, hash_of(sid, p, PLEN, weak) ^ 1);
                 e != STATE_CACHE_NONE; e = state_cache_next(c, e)) {
                state_cache_ent *ce = state_cache_at(c, e);
                assert_int_equal(ce->sid, sid);
                assert_memory_equal(state_cache_key(ce), p, PLEN);
                got++;
            }
            assert_int_equal(got, want);
        }
    }
}

static void step(state_cache *c, int weak)
{
    model_ent *m = &model[next_rand() % N_KEYS];
    uint64_t h = hash_of(m->sid, m->key, m->klen, weak);
    unsigned op = (unsigned)(next_rand() % 4);
    if (!m->live) {
        if (state_cache_full(c))
            return;
        uint64_t gh = m->plen ? hash_of(m->sid, m->key, PLEN, weak) ^ 1 : 0;
        m->idx = state_cache_insert(c, m->sid, m->key, m->klen, h, m->plen, gh);
        assert_int_not_equal(m->idx, STATE_CACHE_NONE);
        m->live = 1;
        m->vlen = 0;
        return;
    }
    char v[MAX_VAL];
    size_t n = next_rand() % MAX_VAL;
    for (size_t i = 0; i < n; i++)
        v[i] = (char)next_rand();
    if (op == 0) {
        state_cache_remove(c, m->idx);
        m->live = 0;
    } else if (op == 1 && m->vlen + n <= sizeof m->val) {
        assert_int_equal(state_cache_append(c, m->idx, v, n), 0);
        memcpy(m->val + m->vlen, v, n);
        m->vlen += n;
    } else {
        /* Mostly short values, so that entries move back and forth. */
        if (op == 2)
            n %= 12;
        assert_int_equal(state_cache_set_value(c, m->idx, v, n), 0);
        memcpy(m->val, v, n);
        m->vlen = n;
    }
}

static void run(uint32_t max, int weak, int steps)
{
    model_init();
    state_cache *c = state_cache_new(max);
    assert_non_null(c);
    for (int s = 0; s < steps; s++) {
        step(c, weak);
        check_all(c, weak);
    }
    /* The clock hands out each live entry once, never a free slot. */
    uint32_t out[N_KEYS];
    size_t got = state_cache_victims(c, out, N_KEYS);
    assert_true(got <= c->used);
    for (size_t i = 0; i < got; i++)
        assert_true(state_cache_at(c, out[i])->flags & SC_USED);
    /* The write order is by sid, then by key bytes. */
    state_cache_sort(c, out, got);
    for (size_t i = 1; i < got; i++) {
        state_cache_ent *a = state_cache_at(c, out[i - 1]);
        state_cache_ent *b = state_cache_at(c, out[i]);
        uint32_t n = a->klen < b->klen ? a->klen : b->klen;
        int r = memcmp(state_cache_key(a), state_cache_key(b), n);
        assert_true(
            a->sid < b->sid ||
            (a->sid == b->sid && (r < 0 || (r == 0 && a->klen <= b->klen))));
    }
    state_cache_free(c);
}

static void test_model_roomy(void **st)
{
    (void)st;
    run(N_KEYS, 0, 20000);
}

static void test_model_full_table(void **st)
{
    (void)st;
    run(40, 0, 20000); /* the pool fills: inserts are skipped when full */
}

static void test_model_colliding_hashes(void **st)
{
    (void)st;
    run(N_KEYS, 1, 20000);
}

static void test_inline_and_heap(void **st)
{
    (void)st;
    state_cache *c = state_cache_new(4);
    assert_non_null(c);
    char k[STATE_CACHE_INLINE + 10];
    memset(k, 'k', sizeof k);
    /* A key that fits, a value that makes it spill, then a short one. */
    uint32_t i = state_cache_insert(c, 1, k, 8, 42, 0, 0);
    assert_int_equal(state_cache_set_value(c, i, "0123456789", 10), 0);
    char big[100];
    memset(big, 'v', sizeof big);
    assert_int_equal(state_cache_set_value(c, i, big, sizeof big), 0);
    state_cache_ent *e = state_cache_at(c, i);
    assert_memory_equal(state_cache_key(e), k, 8);
    assert_memory_equal(state_cache_val(e), big, sizeof big);
    assert_int_equal(state_cache_set_value(c, i, "ab", 2), 0);
    assert_memory_equal(state_cache_val(e), "ab", 2);
    /* Freed and reused by a short key and by a long key. */
    state_cache_remove(c, i);
    i = state_cache_insert(c, 1, k, 3, 43, 0, 0);
    assert_int_equal(state_cache_find(c, 1, k, 3, 43), i);
    state_cache_remove(c, i);
    i = state_cache_insert(c, 2, k, sizeof k, 44, 0, 0);
    assert_int_equal(state_cache_find(c, 2, k, sizeof k, 44), i);
    assert_int_equal(state_cache_find(c, 1, k, sizeof k, 44), STATE_CACHE_NONE);
    assert_memory_equal(state_cache_key(state_cache_at(c, i)), k, sizeof k);
    state_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_roomy),
        cmocka_unit_test(test_model_full_table),
        cmocka_unit_test(test_model_colliding_hashes),
        cmocka_unit_test(test_inline_and_heap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
