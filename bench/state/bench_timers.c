/*
 * bench_timers - what per-key timers (state/timers.h) cost.
 *
 *   bench_timers [records [timers]]
 *
 * 1. Idle timer service: the bench_state "count events per key" loop (a
 *    read-modify-write of an 8-byte counter under one of 100k 16-byte keys,
 *    uniform) on a store without timers, and on a store with 10k pending
 *    processing-time timers a day in the future plus the runtime's check
 *    `state_timer_next(s, PROCESSING) <= now` after every record. Both
 *    stores are open side by side and the records go through them in
 *    alternating blocks of 50k, so that the machine's noise hits both
 *    alike; records/s of each and their ratio are printed. With the cache
 *    off (RocksDB-bound, `records` / 6) and with a 100k-entry cache
 *    (`records`, default 3M). Then the check alone, in ns per call.
 * 2. Register and fire: `timers` timers (default 1M; 100k keys, 10 times
 *    each) registered, then fired in budgets of 1000 by a callback that does
 *    nothing, then by one that updates a value state of the timer's key,
 *    then the periodic pattern: each fired timer registers the next one of
 *    its key. Timers/s of each phase, and of register + fire together.
 *
 * Single thread. Not a test: it prints numbers.
 */
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "common/log.h"
#include "state/state.h"
#include "state/timers.h"

#define N_KEYS  100000
#define KEY_LEN 16
#define MAX_PAR 128
#define N_IDLE  10000
#define BUDGET  1000
#define BLOCK   50000
#define DAY_MS  (INT64_C(24) * 3600 * 1000)
#define PERIOD  1000

static char keys[N_KEYS][KEY_LEN];
static uint16_t kgs[N_KEYS];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *what, char *err)
{
    fprintf(stderr, "bench_timers: %s: %s\n", what, err ? err : "failed");
    exit(1);
}

static state_store *open_store(state_env *env, const char *dir, size_t cache,
                               weir_state **st)
{
    state_store_config cfg;
    state_store_config_init(&cfg);
    cfg.path = dir;
    cfg.name = "bench#0";
    cfg.cache_entries = cache;
    state_store *s = NULL;
    char *err = NULL;
    if (state_store_open(env, &cfg, &s, &err))
        die("state_store_open", err);
    weir_state_desc d = {.size = sizeof d,
                         .kind = WEIR_STATE_VALUE,
                         .name = "count",
                         .ttl_ms = WEIR_TTL_NONE};
    if (state_declare(s, &d, 0, st, &err))
        die("state_declare", err);
    return s;
}

static void close_store(state_store *s)
{
    char *err = NULL;
    if (state_store_close(s, &err))
        die("state_store_close", err);
}

/* One read-modify-write of key k's counter. */
static void count_one(state_store *s, weir_state *st, uint32_t k)
{
    if (state_set_key(s, kgs[k], keys[k], KEY_LEN, WEIR_TS_NONE))
        die("set_key", NULL);
    const void *v;
    size_t len;
    uint64_t c = 0;
    char *err = NULL;
    int rc = state_value_get(st, &v, &len, &err);
    if (rc == 0 && len == sizeof c)
        memcpy(&c, v, sizeof c);
    else if (rc != WEIR_ENOTFOUND)
        die("value_get", err);
    c++;
    if (state_value_put(st, &c, sizeof c, &err))
        die("value_put", err);
}

static int never_fn(void *arg, weir_time_domain d, int64_t ts, const void *key,
                    size_t key_len)
{
    (void)arg, (void)d, (void)ts, (void)key, (void)key_len;
    die("an idle timer fired", NULL);
    return 0;
}

/* Adds N_IDLE processing-time timers a day ahead to s. */
static void add_idle_timers(state_store *s)
{
    char *err = NULL;
    int64_t far = state_now(s) + DAY_MS;
    for (uint32_t i = 0; i < N_IDLE; i++) {
        uint32_t k = (uint32_t)((uint64_t)i * N_KEYS / N_IDLE);
        state_set_key(s, kgs[k], keys[k], KEY_LEN, WEIR_TS_NONE);
        if (state_timer_register(s, WEIR_TIME_PROCESSING, far + i, &err))
            die("register", err);
    }
    state_clear_key(s);
}

/* Runs records [from, to) through the count loop; with the runtime's check
 * after each when `check`. Returns the seconds taken. */
static double count_block(state_store *s, weir_state *st, const uint32_t *seq,
                          size_t from, size_t to, int check)
{
    char *err = NULL;
    double t0 = now_s();
    if (!check) {
        for (size_t i = from; i < to; i++)
            count_one(s, st, seq[i]);
        return now_s() - t0;
    }
    for (size_t i = from; i < to; i++) {
        count_one(s, st, seq[i]);
        if (state_timer_next(s, WEIR_TIME_PROCESSING) <= state_now(s) &&
            state_timer_fire(s, WEIR_TIME_PROCESSING, state_now(s), BUDGET,
                             never_fn, NULL, &err) != 0)
            die("fire", err);
    }
    return now_s() - t0;
}

/* Two stores side by side, one without timers and one with the idle
 * service; the records go through both in alternating blocks of BLOCK (the
 * first of each pair alternating too), so that the machine's noise hits
 * both alike. Prints records/s of each and their ratio. */
static void bench_idle(state_env *env, const char *root, const uint32_t *seq,
                       size_t n, size_t cache, int *run_no)
{
    char dir[2][256];
    weir_state *st[2];
    state_store *s[2];
    for (int w = 0; w < 2; w++) {
        snprintf(dir[w], sizeof dir[w], "%s/run%d", root, (*run_no)++);
        s[w] = open_store(env, dir[w], cache, &st[w]);
    }
    add_idle_timers(s[1]);
    double secs[2] = {0, 0};
    size_t b = 0;
    for (size_t from = 0; from < n; from += BLOCK, b++) {
        size_t to = n - from < BLOCK ? n : from + BLOCK;
        for (int i = 0; i < 2; i++) {
            int w = i ^ (int)(b & 1);
            secs[w] += count_block(s[w], st[w], seq, from, to, w);
        }
    }
    for (int w = 0; w < 2; w++) {
        close_store(s[w]);
        rm_rf(dir[w]);
    }
    char name[64];
    snprintf(name, sizeof name, "count per key, cache %s",
             cache ? "100k entries" : "off");
    double r0 = (double)n / secs[0], r1 = (double)n / secs[1];
    printf("%-36s %9zu %12.0f %12.0f %8.3f\n", name, n, r0, r1, r1 / r0);
    fflush(stdout);
}

/* The per-record check alone: ns per call, on a store with the idle
 * timers. */
static double check_ns(state_env *env, const char *dir)
{
    weir_state *st;
    state_store *s = open_store(env, dir, 0, &st);
    add_idle_timers(s);
    const size_t n = 100000000;
    volatile int64_t now = state_now(s);
    size_t due = 0;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++)
        due += state_timer_next(s, WEIR_TIME_PROCESSING) <= now;
    double dt = now_s() - t0;
    if (due)
        die("an idle timer was due", NULL);
    close_store(s);
    return dt * 1e9 / (double)n;
}

/* ------------------------------------------------------------------------ */
/* Register and fire                                                         */
/* ------------------------------------------------------------------------ */

typedef struct fire_ctx {
    state_store *s;
    weir_state *st;
    int mode; /* 0 nothing, 1 update state, 2 register the next one */
    int64_t end;
    size_t n;
} fire_ctx;

static int fire_fn(void *arg, weir_time_domain d, int64_t ts, const void *key,
                   size_t key_len)
{
    (void)key, (void)key_len;
    fire_ctx *c = arg;
    c->n++;
    char *err = NULL;
    if (c->mode == 1) {
        const void *v;
        size_t len;
        uint64_t x = 0;
        int rc = state_value_get(c->st, &v, &len, &err);
        if (rc == 0 && len == sizeof x)
            memcpy(&x, v, sizeof x);
        else if (rc != WEIR_ENOTFOUND)
            die("value_get", err);
        x++;
        if (state_value_put(c->st, &x, sizeof x, &err))
            die("value_put", err);
    } else if (c->mode == 2 && ts + PERIOD < c->end) {
        if (state_timer_register(c->s, d, ts + PERIOD, &err))
            die("register", err);
    }
    return 0;
}

/* Fires every timer up to `limit`; returns the seconds taken. */
static double fire_all(state_store *s, fire_ctx *c, int64_t limit)
{
    char *err = NULL;
    double t0 = now_s();
    for (;;) {
        int n = state_timer_fire(s, WEIR_TIME_EVENT, limit, BUDGET, fire_fn, c,
                                 &err);
        if (n < 0)
            die("fire", err);
        if (n < BUDGET)
            break;
    }
    return now_s() - t0;
}

/* Registers n timers: key i % N_KEYS at time (i / N_KEYS) * PERIOD + jitter;
 * returns the seconds taken. */
static double register_n(state_store *s, size_t n, uint64_t seed)
{
    char *err = NULL;
    uint64_t rs = seed;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        uint32_t k = (uint32_t)(i % N_KEYS);
        int64_t ts =
            (int64_t)(i / N_KEYS) * PERIOD + (int64_t)(splitmix(&rs) % PERIOD);
        if (state_set_key(s, kgs[k], keys[k], KEY_LEN, WEIR_TS_NONE))
            die("set_key", NULL);
        if (state_timer_register(s, WEIR_TIME_EVENT, ts, &err))
            die("register", err);
    }
    state_clear_key(s);
    return now_s() - t0;
}

static void print_rate(const char *name, size_t n, double secs)
{
    printf("%-44s %9zu %12.0f %9.3f\n", name, n, (double)n / secs,
           secs * 1e9 / (double)n);
    fflush(stdout);
}

static void bench_fire(state_env *env, const char *root, size_t n, int *run_no)
{
    char dir[256];
    weir_state *st;
    uint64_t pending = 0;
    char *err = NULL;

    /* Register, then fire with a callback that does nothing. */
    snprintf(dir, sizeof dir, "%s/run%d", root, (*run_no)++);
    state_store *s = open_store(env, dir, 100000, &st);
    double t_reg = register_n(s, n, 1);
    print_rate("register", n, t_reg);
    fire_ctx c = {s, st, 0, 0, 0};
    double t_fire = fire_all(s, &c, INT64_MAX);
    if (c.n != n)
        die("fired fewer than registered", NULL);
    print_rate("fire, callback does nothing", n, t_fire);
    print_rate("register + fire", n, t_reg + t_fire);
    if (state_timer_count(s, &pending, &err) || pending)
        die("timers left", err);
    close_store(s);
    rm_rf(dir);

    /* Fire with a callback that updates a value of the timer's key. */
    snprintf(dir, sizeof dir, "%s/run%d", root, (*run_no)++);
    s = open_store(env, dir, 100000, &st);
    register_n(s, n, 2);
    c = (fire_ctx){s, st, 1, 0, 0};
    t_fire = fire_all(s, &c, INT64_MAX);
    if (c.n != n)
        die("fired fewer than registered", NULL);
    print_rate("fire, callback updates a value (cache 100k)", n, t_fire);
    close_store(s);
    rm_rf(dir);

    /* Periodic: one timer per key, each fire registers the next one. */
    snprintf(dir, sizeof dir, "%s/run%d", root, (*run_no)++);
    s = open_store(env, dir, 100000, &st);
    register_n(s, N_KEYS, 3);
    size_t rounds = n / N_KEYS;
    c = (fire_ctx){s, st, 2, (int64_t)rounds * PERIOD, 0};
    double t0 = now_s();
    for (size_t r = 1; r <= rounds; r++)
        fire_all(s, &c, (int64_t)r * PERIOD - 1);
    double t_per = now_s() - t0;
    print_rate("periodic: fire + register the next", c.n, t_per);
    close_store(s);
    rm_rf(dir);
}

int main(int argc, char **argv)
{
    size_t n_rec = argc > 1 ? strtoul(argv[1], NULL, 10) : 3000000;
    size_t n_tim = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
    log_set_level(WEIR_LOG_ERROR);
    for (uint32_t i = 0; i < N_KEYS; i++) {
        char tmp[KEY_LEN + 1];
        snprintf(tmp, sizeof tmp, "user%012" PRIu32, i * 2654435761u);
        memcpy(keys[i], tmp, KEY_LEN);
        kgs[i] = (uint16_t)(XXH3_64bits(keys[i], KEY_LEN) % MAX_PAR);
    }
    uint32_t *seq = malloc(n_rec * sizeof *seq);
    char root[] = "/tmp/weir-bench-timers-XXXXXX";
    if (!seq || !mkdtemp(root))
        die("setup", NULL);
    uint64_t rs = 42;
    for (size_t i = 0; i < n_rec; i++)
        seq[i] = (uint32_t)(splitmix(&rs) % N_KEYS);
    state_env *env = NULL;
    char *err = NULL;
    if (state_env_new(NULL, &env, &err))
        die("state_env_new", err);
    int run_no = 0;

    printf("bench_timers: idle timer service (%d timers a day ahead, check "
           "per record), interleaved blocks of %d records, one thread\n",
           N_IDLE, BLOCK);
    printf("%-36s %9s %12s %12s %8s\n", "run", "records", "no timers r/s",
           "idle svc r/s", "ratio");
    bench_idle(env, root, seq, n_rec / 6, 0, &run_no);
    bench_idle(env, root, seq, n_rec, 100000, &run_no);

    char dir[256];
    snprintf(dir, sizeof dir, "%s/run%d", root, run_no++);
    printf("the check alone: %.2f ns per record\n", check_ns(env, dir));
    rm_rf(dir);

    printf("\nbench_timers: register and fire, %d keys, budget %d, cache "
           "100k entries\n",
           N_KEYS, BUDGET);
    printf("%-44s %9s %12s %9s\n", "phase", "timers", "timers/s", "ns/timer");
    bench_fire(env, root, n_tim, &run_no);

    state_env_free(env);
    rm_rf(root);
    free(seq);
    return 0;
}
