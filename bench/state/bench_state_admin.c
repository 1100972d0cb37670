/*
 * bench_state_admin - the cost of live state changes (state/state_admin.h)
 * on a store with many keys: a TTL override of a state declared without
 * TTL, in one call and in bounded batches, the checkpoint after it, and
 * purges by prefix and of everything.
 *
 *   bench_state_admin [keys [budget_ms]]
 *
 * The store is built like a subtask's: a 100k-entry write-back cache, the
 * env's defaults. `keys` (default 1M) keys of 8-byte values are written and
 * flushed first. Runs, each on a fresh copy of that content:
 *   whole    state_admin_set_ttl(budget 0): the whole rewrite in one call
 *   batched  state_admin_set_ttl(budget_ms, default 50), then
 *            state_admin_step() until done: the call, the longest step, the
 *            number of steps and the total
 *   then a state_checkpoint_delta() of the rewritten store (the pause of
 *   the checkpoint that follows), purge --prefix k1 (about 1/9 of the keys)
 *   and purge --all. Prints milliseconds. Not a test: it prints numbers.
 */
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "state/state.h"
#include "state/state_admin.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int rm_one(const char *p, const struct stat *sb, int f, struct FTW *w)
{
    (void)sb, (void)f, (void)w;
    remove(p);
    return 0;
}

static void die(const char *what, char *err)
{
    fprintf(stderr, "bench_state_admin: %s: %s\n", what, err ? err : "?");
    exit(1);
}

static state_store *open_store(state_env *env, const char *path,
                               weir_state **st)
{
    state_store_config cfg;
    state_store_config_init(&cfg);
    cfg.path = path;
    cfg.name = "bench#0";
    state_store *s = NULL;
    char *err = NULL;
    if (state_store_open(env, &cfg, &s, &err) < 0)
        die("open", err);
    weir_state_desc d = {.size = sizeof d,
                         .kind = WEIR_STATE_VALUE,
                         .name = "count",
                         .ttl_ms = WEIR_TTL_NONE};
    if (state_declare(s, &d, 0, st, &err) < 0)
        die("declare", err);
    return s;
}

/* Writes `n` keys "k<i>" through the store (the cache, then RocksDB). */
static void fill(state_store *s, weir_state *st, uint64_t n)
{
    char k[32], *err = NULL;
    for (uint64_t i = 0; i < n; i++) {
        int len = snprintf(k, sizeof k, "k%" PRIu64, i);
        if (state_set_key(s, (uint16_t)(i % 128), k, (size_t)len,
                          WEIR_TS_NONE) < 0 ||
            state_value_put(st, "12345678", 8, &err) < 0)
            die("put", err);
    }
    state_clear_key(s);
    if (state_flush(s, &err) < 0)
        die("flush", err);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    double budget_ms = argc > 2 ? atof(argv[2]) : 50;
    log_set_level(WEIR_LOG_WARN);
    char dir[] = "/tmp/weir-bench-admin-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    state_env *env = NULL;
    char *err = NULL, path[256], cp[256];
    if (state_env_new(NULL, &env, &err) < 0)
        die("env", err);
    state_admin_result res;
    printf("%" PRIu64 " keys, cache 100k entries, batch %d entries\n", n,
           STATE_ADMIN_BATCH);
    for (int run = 0; run < 2; run++) {
        snprintf(path, sizeof path, "%s/s%d", dir, run);
        weir_state *st;
        state_store *s = open_store(env, path, &st);
        fill(s, st, n);
        double t0 = now_ms();
        if (run == 0) {
            if (state_admin_set_ttl(st, 3600000, WEIR_TIME_PROCESSING, 0, &res,
                                    &err) < 0)
                die("set_ttl", err);
            printf("whole:   one call %.0f ms (%" PRIu64 " rewritten)\n",
                   now_ms() - t0, res.rewritten);
        } else {
            if (state_admin_set_ttl(st, 3600000, WEIR_TIME_PROCESSING,
                                    (int64_t)(budget_ms * 1e6), &res, &err) < 0)
                die("set_ttl", err);
            double call = now_ms() - t0, longest = 0;
            int steps = 0, got;
            for (;;) {
                double s0 = now_ms();
                if ((got = state_admin_step(s, STATE_ADMIN_BATCH, &err)) < 0)
                    die("step", err);
                if (got == 0)
                    break;
                double d = now_ms() - s0;
                longest = d > longest ? d : longest;
                steps++;
            }
            printf("batched: call %.1f ms (budget %.0f ms), then %d steps, "
                   "longest %.1f ms; total %.0f ms\n",
                   call, budget_ms, steps, longest, now_ms() - t0);
            snprintf(cp, sizeof cp, "%s/cp", dir);
            char delta[300];
            snprintf(delta, sizeof delta, "%s/cp.delta", dir);
            int wrote;
            t0 = now_ms();
            if (state_checkpoint_delta(s, cp, delta, &wrote, &err) < 0)
                die("checkpoint", err);
            printf("checkpoint after the rewrite: %.0f ms\n", now_ms() - t0);
            t0 = now_ms();
            if (state_cache_detach(st, &err) < 0)
                die("detach", err);
            printf("(writing the cache out first: %.0f ms)\n", now_ms() - t0);
            t0 = now_ms();
            if (state_admin_purge(st, STATE_PURGE_PREFIX, "k1", 2, 0, &res,
                                  &err) < 0)
                die("purge", err);
            printf("purge --prefix k1: %.0f ms (%" PRIu64 " of %" PRIu64 ")\n",
                   now_ms() - t0, res.purged, res.scanned);
            t0 = now_ms();
            if (state_admin_purge(st, STATE_PURGE_ALL, NULL, 0, 0, &res, &err) <
                0)
                die("purge", err);
            printf("purge --all: %.0f ms (%" PRIu64 ")\n", now_ms() - t0,
                   res.purged);
        }
        if (state_store_close(s, &err) < 0)
            die("close", err);
    }
    state_env_free(env);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
