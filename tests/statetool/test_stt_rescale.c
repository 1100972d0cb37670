/*
 * test_stt_rescale.c - reading checkpointed state offline
 * (statetool/view.h) and redistributing it over another parallelism
 * (statetool/rescale.h), on real RocksDB stores written through the state
 * API (host/state) with the write-back cache on, so that every checkpoint
 * has a delta file with values and deletions on top of its RocksDB part.
 *
 * The oracle is the list of writes the test made (which key holds what),
 * and the owner of a key is computed here from the key group as the plan
 * documents it (kg * parallelism / max_parallelism). The rescaled stores
 * are opened with state_store_open() and read through the state API: every
 * value, map entry, list element and timer must be in the new subtask that
 * owns its key, and nowhere else, and the expiry index must still expire
 * exactly the entries with a TTL (state ids differ between the old stores,
 * so the index entries must have been renumbered).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "checkpoint/manifest.h"
#include "common/fs.h"
#include "common/log.h"
#include "state/state.h"
#include "state/timers.h"
#include "statetool/entry.h"
#include "statetool/rescale.h"
#include "statetool/view.h"

#define MAXP   16
#define NKEYS  200
#define OLDPAR 2
#define TTL    1000

static int64_t fake_now;

static int64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

typedef struct fx {
    char root[128];
    char chk[256];
    state_env *env;
    char keys[NKEYS][16];
} fx;

/* What key k holds after the writes of make_checkpoint(). */
static int has_value(int k)
{
    return k % 7 != 0;
}

static void want_value(int k, char *buf, size_t n)
{
    snprintf(buf, n, "%s-%d", k % 5 == 0 ? "new" : "val", k);
}

/* Independent of the host: xxh3 of the key modulo MAXP, and the owner as
 * the plan documents it. */
static uint32_t kg_of(const char *key)
{
    return (uint32_t)(XXH3_64bits(key, strlen(key)) % MAXP);
}

static uint32_t owner(const char *key, uint32_t par)
{
    return kg_of(key) * par / MAXP;
}

/* Fails the test when rc < 0; frees and clears *err either way. */
static void check(int rc, char **err)
{
    if (rc < 0)
        fail_msg("%s", *err ? *err : "error");
    free(*err);
    *err = NULL;
}

static state_store *open_store(fx *f, const char *path, const char *delta)
{
    state_store_config cfg;
    state_store_config_init(&cfg);
    cfg.path = path;
    cfg.clock = fake_clock;
    cfg.cache_entries = 10000;
    cfg.restore_delta = delta;
    state_store *s = NULL;
    char *err = NULL;
    check(state_store_open(f->env, &cfg, &s, &err), &err);
    return s;
}

static weir_state *declare(state_store *s, const char *name,
                           weir_state_kind kind, int64_t ttl)
{
    weir_state_desc d = {.size = sizeof d,
                         .name = name,
                         .kind = kind,
                         .ttl_ms = ttl,
                         .ttl_domain = WEIR_TIME_PROCESSING};
    weir_state *st = NULL;
    char *err = NULL;
    check(state_declare(s, &d, 0, &st, &err), &err);
    return st;
}

/* Declares v (value, TTL), m (map) and l (list) in an order that depends
 * on the subtask, so that their ids differ between the old stores. */
static void declare_all(state_store *s, int order, weir_state **v,
                        weir_state **m, weir_state **l)
{
    if (order == 0) {
        *v = declare(s, "v", WEIR_STATE_VALUE, TTL);
        *m = declare(s, "m", WEIR_STATE_MAP, WEIR_TTL_NONE);
        *l = declare(s, "l", WEIR_STATE_LIST, WEIR_TTL_NONE);
    } else {
        *l = declare(s, "l", WEIR_STATE_LIST, WEIR_TTL_NONE);
        *m = declare(s, "m", WEIR_STATE_MAP, WEIR_TTL_NONE);
        *v = declare(s, "v", WEIR_STATE_VALUE, TTL);
    }
}

static void set_key(state_store *s, const char *key)
{
    assert_int_equal(
        state_set_key(s, (uint16_t)kg_of(key), key, strlen(key), WEIR_TS_NONE),
        0);
}

/* Old subtask i: every key it owns gets v, two map entries, two list
 * elements and an event-time timer; flushed; then some values change and
 * some are deleted, which stays in the cache and so goes to the delta. */
static void write_old(fx *f, uint32_t i)
{
    char path[300], dir[300], delta[320];
    snprintf(path, sizeof path, "%s/old/%u", f->root, i);
    state_store *s = open_store(f, path, NULL);
    weir_state *v, *m, *l;
    declare_all(s, (int)i, &v, &m, &l);
    char *err = NULL, buf[64];
    for (int k = 0; k < NKEYS; k++) {
        if (owner(f->keys[k], OLDPAR) != i)
            continue;
        set_key(s, f->keys[k]);
        snprintf(buf, sizeof buf, "val-%d", k);
        check(state_value_put(v, buf, strlen(buf), &err), &err);
        snprintf(buf, sizeof buf, "%d-a", k);
        check(state_map_put(m, "a", 1, buf, strlen(buf), &err), &err);
        snprintf(buf, sizeof buf, "%d-b", k);
        check(state_map_put(m, "b", 1, buf, strlen(buf), &err), &err);
        check(state_list_add(l, "1", 1, &err), &err);
        check(state_list_add(l, "2", 1, &err), &err);
        check(state_timer_register(s, WEIR_TIME_EVENT, k, &err), &err);
    }
    check(state_flush(s, &err), &err);
    for (int k = 0; k < NKEYS; k++) {
        if (owner(f->keys[k], OLDPAR) != i)
            continue;
        set_key(s, f->keys[k]);
        want_value(k, buf, sizeof buf);
        if (k % 5 == 0)
            check(state_value_put(v, buf, strlen(buf), &err), &err);
        if (!has_value(k))
            check(state_value_delete(v, &err), &err);
    }
    state_clear_key(s);
    snprintf(dir, sizeof dir, "%s/count-%u/state", f->chk, i);
    snprintf(delta, sizeof delta, "%s.delta", dir);
    char parent[300];
    snprintf(parent, sizeof parent, "%s/count-%u", f->chk, i);
    check(fs_mkdirs(parent, &err), &err);
    int wrote = 0;
    check(state_checkpoint_delta(s, dir, delta, &wrote, &err), &err);
    assert_true(wrote);
    check(state_store_close(s, &err), &err);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->root, "/tmp/weir-stt-test-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->chk, sizeof f->chk, "%s/chk-1", f->root);
    state_env_config cfg;
    state_env_config_init(&cfg);
    cfg.block_cache_bytes = 8 << 20;
    cfg.write_buffer_bytes = 32 << 20;
    char *err = NULL;
    check(state_env_new(&cfg, &f->env, &err), &err);
    for (int k = 0; k < NKEYS; k++)
        snprintf(f->keys[k], sizeof f->keys[k], "key%d", k);
    fake_now = 0;
    for (uint32_t i = 0; i < OLDPAR; i++)
        write_old(f, i);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    state_env_free(f->env);
    fs_rmtree(f->root, NULL);
    free(f);
    return 0;
}

static void manifest_of(ckpt_manifest *m, ckpt_task *tasks, char dirs[][32])
{
    memset(m, 0, sizeof *m);
    m->job = "j";
    m->id = 1;
    m->max_parallelism = MAXP;
    for (uint32_t i = 0; i < OLDPAR; i++) {
        snprintf(dirs[i], 32, "count-%u/state", i);
        tasks[i] = (ckpt_task){.op_id = "count",
                               .index = i,
                               .parallelism = OLDPAR,
                               .state_dir = dirs[i]};
    }
    m->tasks = tasks;
    m->n_tasks = OLDPAR;
}

/* Every file under dir with its size and mtime, as one string. */
static void tree_listing(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    char names[64][256];
    int n = 0;
    while ((de = readdir(d)) != NULL && n < 64)
        if (de->d_name[0] != '.')
            snprintf(names[n++], sizeof names[0], "%s", de->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0],
          (int (*)(const void *, const void *))strcmp);
    for (int i = 0; i < n; i++) {
        char *p = NULL;
        struct stat sb;
        assert_true(asprintf(&p, "%s/%s", dir, names[i]) > 0);
        assert_int_equal(lstat(p, &sb), 0);
        size_t at = strlen(out);
        snprintf(out + at, cap - at, "%s:%lld:%lld.%09ld;", p,
                 (long long)sb.st_size, (long long)sb.st_mtim.tv_sec,
                 sb.st_mtim.tv_nsec);
        if (S_ISDIR(sb.st_mode))
            tree_listing(p, out, cap);
        free(p);
    }
}

typedef struct seen {
    fx *f;
    int found[NKEYS];
    char value[NKEYS][32];
    uint32_t kg_bad;
} seen;

static int seen_value(void *arg, const char *k, size_t klen, const char *v,
                      size_t vlen)
{
    seen *s = arg;
    ste_key sk;
    int64_t stamp;
    const char *b;
    size_t n;
    assert_int_equal(ste_key_parse(k, klen, &sk), 0);
    assert_int_equal(ste_value_parse(v, vlen, &stamp, &b, &n), 0);
    assert_int_equal(stamp, TTL); /* written at now = 0 */
    char name[16] = {0};
    assert_true(sk.key_len < sizeof name);
    memcpy(name, sk.key, sk.key_len);
    int idx = atoi(name + 3);
    assert_true(idx >= 0 && idx < NKEYS);
    if (sk.kg != kg_of(s->f->keys[idx]))
        s->kg_bad++;
    s->found[idx]++;
    assert_true(n < sizeof s->value[0]);
    memcpy(s->value[idx], b, n);
    return 0;
}

/* The view of an old subtask is its state with the delta applied; opening
 * and reading it changes no file of the checkpoint. */
static void test_view_applies_delta(void **state)
{
    fx *f = *state;
    static char before[1 << 16], after[1 << 16];
    before[0] = after[0] = 0;
    tree_listing(f->chk, before, sizeof before);
    seen s = {.f = f};
    for (uint32_t i = 0; i < OLDPAR; i++) {
        char dir[300], delta[320], *err = NULL;
        snprintf(dir, sizeof dir, "%s/count-%u/state", f->chk, i);
        snprintf(delta, sizeof delta, "%s.delta", dir);
        stv_db *v = NULL;
        check(stv_open(dir, delta, &v, &err), &err);
        assert_int_equal(stv_state_count(v), 3);
        const stv_state *st = stv_state_find(v, "v");
        assert_non_null(st);
        assert_int_equal(st->kind, WEIR_STATE_VALUE);
        assert_true(st->delta_puts > 0 && st->delta_deletes > 0);
        check(stv_scan_state(v, st, NULL, 0, NULL, 0, seen_value, &s, &err),
              &err);
        stv_close(v);
    }
    for (int k = 0; k < NKEYS; k++) {
        char want[32];
        want_value(k, want, sizeof want);
        assert_int_equal(s.found[k], has_value(k));
        if (has_value(k))
            assert_string_equal(s.value[k], want);
    }
    assert_int_equal(s.kg_bad, 0);
    tree_listing(f->chk, after, sizeof after);
    assert_string_equal(before, after);
}

static int join_fn(void *arg, const void *ukey, size_t ulen, const void *v,
                   size_t vlen)
{
    char *buf = arg;
    size_t at = strlen(buf);
    if (ukey)
        at += (size_t)sprintf(buf + at, "%.*s=", (int)ulen, (const char *)ukey);
    sprintf(buf + at, "%.*s,", (int)vlen, (const char *)v);
    return 0;
}

/* Reads every key from the new stores: present in its owner only. */
static void check_new_stores(fx *f, uint32_t par, state_store **s,
                             weir_state **v, weir_state **m, weir_state **l)
{
    char *err = NULL;
    for (int k = 0; k < NKEYS; k++) {
        uint32_t j = owner(f->keys[k], par);
        char want[32], got[128] = {0};
        want_value(k, want, sizeof want);
        for (uint32_t x = 0; x < par; x++) {
            const void *val;
            size_t len;
            set_key(s[x], f->keys[k]);
            int rc = state_value_get(v[x], &val, &len, &err);
            if (x != j || !has_value(k)) {
                assert_int_equal(rc, WEIR_ENOTFOUND);
                continue;
            }
            check(rc, &err);
            assert_int_equal(len, strlen(want));
            assert_memory_equal(val, want, len);
        }
        set_key(s[j], f->keys[k]);
        check(state_map_iter(m[j], join_fn, got, &err), &err);
        char wm[64];
        snprintf(wm, sizeof wm, "a=%d-a,b=%d-b,", k, k);
        assert_string_equal(got, wm);
        got[0] = 0;
        check(state_list_iter(l[j], join_fn, got, &err), &err);
        assert_string_equal(got, "1,2,");
    }
}

static void test_rescale(void **state, uint32_t par)
{
    fx *f = *state;
    ckpt_manifest m;
    ckpt_task tasks[OLDPAR];
    char dirs[OLDPAR][32];
    manifest_of(&m, tasks, dirs);
    static char before[1 << 16], after[1 << 16];
    before[0] = after[0] = 0;
    tree_listing(f->chk, before, sizeof before);
    char dst[300], *err = NULL;
    snprintf(dst, sizeof dst, "%s/new-%u", f->root, par);
    rsc_stats st;
    check(rsc_redistribute(&m, f->chk, "count", par, dst, &st, &err), &err);
    tree_listing(f->chk, after, sizeof after);
    assert_string_equal(before, after);
    assert_int_equal(st.from, OLDPAR);
    assert_int_equal(st.to, par);
    assert_int_equal(st.timers, NKEYS);
    /* v (minus deletions) + 2 map entries + 1 list per key. */
    int live = 0;
    for (int k = 0; k < NKEYS; k++)
        live += has_value(k);
    assert_int_equal(st.entries, (uint64_t)(live + 3 * NKEYS));

    state_store *s[8];
    weir_state *v[8], *mm[8], *l[8];
    uint64_t timers = 0;
    for (uint32_t j = 0; j < par; j++) {
        char path[320];
        snprintf(path, sizeof path, "%s/%u", dst, j);
        s[j] = open_store(f, path, NULL);
        declare_all(s[j], 0, &v[j], &mm[j], &l[j]);
        uint64_t n = 0, want = 0;
        check(state_timer_count(s[j], &n, &err), &err);
        for (int k = 0; k < NKEYS; k++)
            want += owner(f->keys[k], par) == j;
        assert_int_equal(n, want);
        timers += n;
    }
    assert_int_equal(timers, NKEYS);
    check_new_stores(f, par, s, v, mm, l);
    /* Past the TTL, the sweep expires exactly the live values of each new
     * store through its (renumbered) index. */
    fake_now = 10 * TTL;
    for (uint32_t j = 0; j < par; j++) {
        size_t expired = 0, want = 0;
        int rc;
        do {
            size_t e = 0;
            rc = state_sweep(s[j], 1000, &e, &err);
            check(rc, &err);
            expired += e;
        } while (rc == 1000);
        for (int k = 0; k < NKEYS; k++)
            want += owner(f->keys[k], par) == j && has_value(k);
        assert_int_equal(expired, want);
        check(state_store_close(s[j], &err), &err);
    }
    fake_now = 0;
}

static void test_rescale_to_3(void **state)
{
    test_rescale(state, 3);
}

static void test_rescale_to_1(void **state)
{
    test_rescale(state, 1);
}

static void test_rescale_to_5(void **state)
{
    test_rescale(state, 5);
}

static void test_damaged_delta_refused(void **state)
{
    fx *f = *state;
    ckpt_manifest m;
    ckpt_task tasks[OLDPAR];
    char dirs[OLDPAR][32];
    manifest_of(&m, tasks, dirs);
    char delta[320], copy[320], dst[300], *err = NULL;
    snprintf(delta, sizeof delta, "%s/count-1/state.delta", f->chk);
    snprintf(copy, sizeof copy, "%s/saved.delta", f->root);
    char *data = NULL;
    size_t len = 0;
    check(fs_read_file(delta, &data, &len, &err), &err);
    check(fs_write_file(copy, data, len, &err), &err);
    check(fs_write_file(delta, data, len - 3, &err), &err);
    snprintf(dst, sizeof dst, "%s/new-damaged", f->root);
    int rc = rsc_redistribute(&m, f->chk, "count", 3, dst, NULL, &err);
    assert_int_equal(rc, WEIR_EIO);
    assert_non_null(strstr(err, "operator 'count': rescaling"));
    assert_non_null(strstr(err, "state.delta is damaged"));
    free(err);
    err = NULL;
    check(fs_write_file(delta, data, len, &err), &err);
    free(data);
}

static void test_kind_conflict_refused(void **state)
{
    fx *f = *state;
    char *err = NULL;
    /* A third "checkpoint" whose two subtasks declare x differently. */
    char chk[300];
    snprintf(chk, sizeof chk, "%s/chk-conflict", f->root);
    for (uint32_t i = 0; i < 2; i++) {
        char path[320], dir[340];
        snprintf(path, sizeof path, "%s/conflict/%u", f->root, i);
        state_store *s = open_store(f, path, NULL);
        declare(s, "x", i ? WEIR_STATE_MAP : WEIR_STATE_VALUE, WEIR_TTL_NONE);
        snprintf(dir, sizeof dir, "%s/count-%u", chk, i);
        check(fs_mkdirs(dir, &err), &err);
        strcat(dir, "/state");
        check(state_checkpoint(s, dir, &err), &err);
        check(state_store_close(s, &err), &err);
    }
    ckpt_manifest m;
    ckpt_task tasks[OLDPAR];
    char dirs[OLDPAR][32];
    manifest_of(&m, tasks, dirs);
    char dst[300];
    snprintf(dst, sizeof dst, "%s/new-conflict", f->root);
    int rc = rsc_redistribute(&m, chk, "count", 3, dst, NULL, &err);
    assert_int_equal(rc, WEIR_EINVAL);
    assert_non_null(strstr(err, "state 'x' is of kind"));
    free(err);
}

int main(void)
{
    log_set_level(WEIR_LOG_ERROR); /* no-TTL warnings of every store */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_view_applies_delta),
        cmocka_unit_test(test_rescale_to_3),
        cmocka_unit_test(test_rescale_to_1),
        cmocka_unit_test(test_rescale_to_5),
        cmocka_unit_test(test_damaged_delta_refused),
        cmocka_unit_test(test_kind_conflict_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
