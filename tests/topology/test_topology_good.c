/*
 * test_topology_good.c - the validated model of the files in good/:
 * defaults, unit conversion, topological order, default partitioning, port
 * resolution, and every value's msgpack encoding decoded back with
 * msgpack-c. Also `weir validate` on each good file (exit 0, summary).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>
#include <jansson.h>

#include "plugin/registry.h"
#include "runtime/api.h"
#include "topology/topology.h"

#include "weir/msgpack.h"

static reg_registry *reg;

static int setup(void **state)
{
    (void)state;
    char *err = NULL;
    reg = reg_new(api_table());
    if (!reg || reg_load_dir(reg, TOPO_PLUGIN_DIR, NULL, NULL, &err) != 1) {
        fprintf(stderr, "cannot load %s: %s\n", TOPO_PLUGIN_DIR,
                err ? err : "?");
        free(err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    reg_free(reg);
    return 0;
}

static topo_job *load(const char *name)
{
    char path[1024];
    char *err = NULL;
    topo_job *job = NULL;
    snprintf(path, sizeof path, "%s/good/%s", TOPO_SRC_DIR, name);
    int rc = topo_load_file(path, reg, &job, &err);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err ? err : "?");
        free(err);
        fail();
    }
    assert_non_null(job);
    assert_string_equal(job->path, path);
    return job;
}

static topo_job *load_str(const char *name, const char *yaml, char **err)
{
    topo_job *job = NULL;
    int rc = topo_load_string(name, yaml, strlen(yaml), reg, &job, err);
    if (!err && rc != 0)
        fail();
    return job;
}

static const topo_op *op(const topo_job *job, const char *id)
{
    int k = topo_find_op(job, id);
    assert_true(k >= 0);
    return &job->ops[k];
}

/* Producers come before consumers, and input indices stay in range. */
static void assert_sorted(const topo_job *job)
{
    for (size_t k = 0; k < job->n_ops; k++) {
        for (size_t j = 0; j < job->ops[k].n_inputs; j++)
            assert_true(job->ops[k].inputs[j].from < k);
    }
}

/* Decodes v's msgpack into `u` (the caller destroys it). */
static const msgpack_object *mp(const topo_value *v, msgpack_unpacked *u)
{
    size_t off = 0;
    assert_non_null(v);
    assert_non_null(v->mp);
    msgpack_unpacked_init(u);
    assert_int_equal(msgpack_unpack_next(u, v->mp, v->mp_len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, v->mp_len);
    return &u->data;
}

static void assert_mp_int(const topo_value *v, int64_t want)
{
    msgpack_unpacked u;
    int64_t got = 0;
    assert_int_equal(weir_mp_as_int(mp(v, &u), &got), WEIR_OK);
    assert_int_equal(got, want);
    msgpack_unpacked_destroy(&u);
}

static void assert_mp_str(const topo_value *v, const char *want)
{
    msgpack_unpacked u;
    const msgpack_object *o = mp(v, &u);
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(want));
    assert_memory_equal(o->via.str.ptr, want, strlen(want));
    msgpack_unpacked_destroy(&u);
}

static void assert_obj_str(const msgpack_object *o, const char *want)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(want));
    assert_memory_equal(o->via.str.ptr, want, strlen(want));
}

static void assert_obj_int(const msgpack_object *o, int64_t want)
{
    int64_t got = 0;
    assert_int_equal(weir_mp_as_int(o, &got), WEIR_OK);
    assert_int_equal(got, want);
}

/* ------------------------------------------------------------------------ */

static void test_defaults(void **state)
{
    (void)state;
    topo_job *job = load("defaults.yaml");
    assert_string_equal(job->name, "defaults");
    assert_int_equal(job->max_parallelism, 128);
    assert_int_equal(job->n_ops, 1);
    const topo_op *src = &job->ops[0];
    assert_string_equal(src->id, "src");
    assert_string_equal(src->type, "test_source");
    assert_ptr_equal(src->reg, reg_find(reg, "test_source"));
    assert_int_equal(src->parallelism, 1);
    assert_int_equal(src->n_inputs, 0);
    assert_int_equal(src->line, 3);
    assert_int_equal(src->col, 5);
    assert_int_equal(topo_param_int(&src->config, "rate"), 0);
    assert_string_equal(topo_param_str(&src->config, "key_field"), "user");
    assert_true(topo_param(&src->config, "rate")->from_default);
    assert_int_equal(topo_param(&src->config, "rate")->line, 0);

    /* the host sections, all from their defaults */
    assert_int_equal(topo_param_int(&job->runtime, "batch_size"), 256);
    assert_int_equal(topo_param_int(&job->runtime, "buffer_timeout"), 2);
    assert_int_equal(topo_param_int(&job->runtime, "channel_capacity"), 64);
    assert_string_equal(topo_param_str(&job->state, "dir"), "./weir-state");
    assert_int_equal(topo_param_int(&job->state, "block_cache"),
                     64 * 1024 * 1024);
    assert_int_equal(topo_param_int(&job->state, "write_buffer"),
                     64 * 1024 * 1024);
    assert_int_equal(topo_param_int(&job->state, "cache_entries"), 100000);
    assert_int_equal(topo_param_int(&job->state, "sweep_batch"), 100);
    assert_int_equal(topo_param_int(&job->checkpoint, "interval"), 0);
    assert_string_equal(topo_param_str(&job->checkpoint, "dir"),
                        "./weir-checkpoints");
    assert_string_equal(topo_param_str(&job->checkpoint, "mode"),
                        "exactly_once");
    assert_int_equal(topo_param_int(&job->checkpoint, "min_pause"), 0);
    assert_int_equal(topo_param_int(&job->checkpoint, "timeout"), 600000);
    assert_int_equal(topo_param_int(&job->checkpoint, "retain"), 3);
    assert_int_equal(topo_param(&job->checkpoint, "allow_fresh_start")->b, 0);
    assert_string_equal(topo_param_str(&job->restart, "strategy"), "none");
    assert_int_equal(topo_param_int(&job->restart, "attempts"), 3);
    assert_int_equal(topo_param_int(&job->restart, "delay"), 1000);
    assert_int_equal(topo_param_int(&job->restart, "initial_delay"), 100);
    assert_int_equal(topo_param_int(&job->restart, "max_delay"), 30000);
    assert_true(topo_param_double(&job->restart, "multiplier") == 2.0);
    assert_true(topo_param_double(&job->restart, "jitter") == 0.1);
    assert_int_equal(topo_param_int(&job->restart, "reset_after"), 600000);
    assert_int_equal(topo_param_int(&job->restart, "max_failures"), 3);
    assert_int_equal(topo_param_int(&job->restart, "interval"), 300000);
    assert_string_equal(topo_param_str(&job->metrics, "listen"), "");
    assert_int_equal(topo_param_int(&job->metrics, "interval"), 10000);

    /* every value of every section is set, from its default */
    const topo_params *secs[] = {&job->runtime, &job->state, &job->checkpoint,
                                 &job->restart, &job->metrics};
    const char *names[] = {"runtime", "state", "checkpoint", "restart",
                           "metrics"};
    for (size_t s = 0; s < 5; s++) {
        const weir_param_def *const *defs = topo_section_defs(names[s]);
        size_t n = 0;
        while (defs[n])
            n++;
        assert_int_equal(secs[s]->n, n);
        for (size_t k = 0; k < n; k++) {
            assert_ptr_equal(secs[s]->v[k].def, defs[k]);
            assert_true(secs[s]->v[k].is_set);
            assert_true(secs[s]->v[k].from_default);
            assert_non_null(secs[s]->v[k].mp);
        }
    }
    /* unknown names */
    assert_null(topo_param(&job->runtime, "nope"));
    assert_int_equal(topo_param_int(&job->runtime, "nope"), 0);
    assert_true(topo_param_double(&job->runtime, "nope") == 0.0);
    assert_null(topo_param_str(&job->runtime, "nope"));
    assert_null(topo_section_defs("nope"));
    assert_null(topo_section_defs(NULL));
    assert_int_equal(topo_find_op(job, "nope"), -1);
    topo_free(job);
}

static void test_full(void **state)
{
    (void)state;
    msgpack_unpacked u;
    topo_job *job = load("full.yaml");
    assert_string_equal(job->name, "clicks");
    assert_int_equal(job->max_parallelism, 64);
    /* sorted producers first although the file lists them last */
    assert_int_equal(job->n_ops, 3);
    assert_string_equal(job->ops[0].id, "src");
    assert_string_equal(job->ops[1].id, "count");
    assert_string_equal(job->ops[2].id, "out");
    assert_sorted(job);
    const topo_op *count = op(job, "count");
    assert_int_equal(count->parallelism, 4);
    assert_int_equal(count->n_inputs, 1);
    assert_int_equal(count->inputs[0].from, 0);
    assert_int_equal(count->inputs[0].partition, TOPO_KEY);
    assert_int_equal(count->inputs[0].line, 25);
    assert_int_equal(count->inputs[0].col, 9);
    assert_int_equal(topo_param_int(&count->config, "ttl"), 2 * 3600 * 1000);
    assert_false(topo_param(&count->config, "ttl")->from_default);
    assert_int_equal(topo_param(&count->config, "ttl")->line, 23);
    assert_int_equal(topo_param(&count->config, "ttl")->col, 19);
    assert_mp_int(topo_param(&count->config, "ttl"), 7200000);
    const topo_op *out = op(job, "out");
    assert_int_equal(out->inputs[0].from, 1);
    assert_int_equal(out->inputs[0].partition, TOPO_REBALANCE);
    const topo_op *src = op(job, "src");
    assert_int_equal(topo_param_int(&src->config, "rate"), 1000);
    assert_mp_int(topo_param(&src->config, "rate"), 1000);
    assert_mp_str(topo_param(&src->config, "key_field"), "user");

    assert_int_equal(topo_param_int(&job->runtime, "batch_size"), 512);
    assert_int_equal(topo_param_int(&job->runtime, "buffer_timeout"), 5);
    assert_int_equal(topo_param_int(&job->runtime, "channel_capacity"), 64);
    assert_string_equal(topo_param_str(&job->state, "dir"), "/tmp/weir-state");
    assert_int_equal(topo_param_int(&job->state, "block_cache"),
                     128 * 1024 * 1024);
    assert_int_equal(topo_param_int(&job->checkpoint, "interval"), 30000);
    assert_string_equal(topo_param_str(&job->checkpoint, "mode"),
                        "at_least_once");
    assert_mp_str(topo_param(&job->checkpoint, "mode"), "at_least_once");
    const topo_value *fresh = topo_param(&job->checkpoint, "allow_fresh_start");
    assert_int_equal(fresh->b, 1);
    const msgpack_object *o = mp(fresh, &u);
    assert_int_equal(o->type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(o->via.boolean);
    msgpack_unpacked_destroy(&u);
    assert_string_equal(topo_param_str(&job->restart, "strategy"),
                        "exponential_delay");
    assert_int_equal(topo_param_int(&job->restart, "initial_delay"), 250);
    assert_int_equal(topo_param_int(&job->restart, "max_delay"), 60000);
    const topo_value *mult = topo_param(&job->restart, "multiplier");
    assert_true(mult->d == 1.5);
    o = mp(mult, &u);
    assert_int_equal(o->type, MSGPACK_OBJECT_FLOAT64);
    assert_true(o->via.f64 == 1.5);
    msgpack_unpacked_destroy(&u);
    assert_string_equal(topo_param_str(&job->metrics, "listen"),
                        "127.0.0.1:9249");
    topo_free(job);
}

static void test_partitions(void **state)
{
    (void)state;
    topo_job *job = load("partitions.yaml");
    assert_int_equal(job->max_parallelism, 256);
    assert_sorted(job);
    assert_int_equal(op(job, "same")->inputs[0].partition, TOPO_FORWARD);
    assert_int_equal(op(job, "wider")->inputs[0].partition, TOPO_REBALANCE);
    assert_int_equal(op(job, "one")->inputs[0].partition, TOPO_REBALANCE);
    assert_int_equal(op(job, "bcast")->inputs[0].partition, TOPO_BROADCAST);
    assert_int_equal(op(job, "keyed")->inputs[0].partition, TOPO_KEY);
    assert_int_equal(op(job, "keyed")->parallelism, 200);
    assert_string_equal(topo_partition_name(TOPO_FORWARD), "forward");
    assert_string_equal(topo_partition_name(TOPO_REBALANCE), "rebalance");
    assert_string_equal(topo_partition_name(TOPO_KEY), "key");
    assert_string_equal(topo_partition_name(TOPO_BROADCAST), "broadcast");
    topo_free(job);

    /* a keyed operator with parallelism 1 takes forward too */
    job = load_str("k.yaml",
                   "operators:\n"
                   "  - {id: s, type: test_source}\n"
                   "  - {id: c, type: test_count, inputs: [s]}\n",
                   NULL);
    assert_int_equal(op(job, "c")->inputs[0].partition, TOPO_FORWARD);
    topo_free(job);
}

static void test_ports(void **state)
{
    (void)state;
    topo_job *job = load("ports.yaml");
    assert_sorted(job);
    int s1 = topo_find_op(job, "s1"), s2 = topo_find_op(job, "s2");
    int jx = topo_find_op(job, "j");
    const topo_op *j = &job->ops[jx];
    assert_int_equal(j->n_inputs, 3);
    /* {from: s2.errors, port: right} */
    assert_int_equal(j->inputs[0].from, s2);
    assert_int_equal(j->inputs[0].from_port, 1);
    assert_int_equal(j->inputs[0].to_port, 1);
    /* {from: s1, port: left} */
    assert_int_equal(j->inputs[1].from, s1);
    assert_int_equal(j->inputs[1].from_port, 0);
    assert_int_equal(j->inputs[1].to_port, 0);
    /* s2: its first output into the first input */
    assert_int_equal(j->inputs[2].from, s2);
    assert_int_equal(j->inputs[2].from_port, 0);
    assert_int_equal(j->inputs[2].to_port, 0);
    const topo_op *m = op(job, "m");
    assert_int_equal(m->inputs[0].from, jx);
    assert_int_equal(m->inputs[0].from_port, 1); /* unmatched */
    assert_int_equal(m->inputs[1].from, jx);
    assert_int_equal(m->inputs[1].from_port, 0); /* matched */
    topo_free(job);
}

static void test_chain_order(void **state)
{
    (void)state;
    topo_job *job = load("chain.yaml");
    assert_int_equal(job->n_ops, 4);
    const char *want[] = {"a", "b", "c", "d"};
    for (size_t k = 0; k < 4; k++)
        assert_string_equal(job->ops[k].id, want[k]);
    assert_sorted(job);
    for (size_t k = 1; k < 4; k++)
        assert_int_equal(job->ops[k].inputs[0].from, k - 1);
    topo_free(job);

    /* a long chain written backwards: order without deep recursion */
    size_t n = 5000, cap = n * 80, o = 0;
    char *y = malloc(cap);
    assert_non_null(y);
    o += (size_t)snprintf(y + o, cap - o, "operators:\n");
    for (size_t k = n - 1; k > 0; k--)
        o += (size_t)snprintf(y + o, cap - o,
                              "  - {id: op%zu, type: test_map, inputs: "
                              "[op%zu]}\n",
                              k, k - 1);
    snprintf(y + o, cap - o, "  - {id: op0, type: test_source}\n");
    job = load_str("long.yaml", y, NULL);
    free(y);
    assert_int_equal(job->n_ops, n);
    for (size_t k = 0; k < n; k++) {
        char id[32];
        snprintf(id, sizeof id, "op%zu", k);
        assert_string_equal(job->ops[k].id, id);
    }
    assert_sorted(job);
    topo_free(job);
}

static void test_values(void **state)
{
    (void)state;
    msgpack_unpacked u;
    topo_job *job = load("values.yaml");
    const topo_op *m = op(job, "m");
    const topo_params *c = &m->config;
    assert_int_equal(topo_param(c, "flag")->b, 1);
    assert_int_equal(topo_param_int(c, "count"), 42);
    assert_true(topo_param_double(c, "count") == 42.0);
    assert_true(topo_param_double(c, "ratio") == 0.25);
    assert_string_equal(topo_param_str(c, "name"), "hello world");
    assert_int_equal(topo_param(c, "name")->str_len, 11);
    assert_int_equal(topo_param_int(c, "window"), 250);
    assert_int_equal(topo_param_int(c, "buffer"), 10000);
    assert_string_equal(topo_param_str(c, "mode"), "fast");
    assert_mp_int(topo_param(c, "count"), 42);
    assert_mp_int(topo_param(c, "window"), 250);
    assert_mp_int(topo_param(c, "buffer"), 10000);
    assert_mp_str(topo_param(c, "mode"), "fast");
    assert_mp_str(topo_param(c, "name"), "hello world");
    const msgpack_object *o = mp(topo_param(c, "ratio"), &u);
    assert_int_equal(o->type, MSGPACK_OBJECT_FLOAT64);
    assert_true(o->via.f64 == 0.25);
    msgpack_unpacked_destroy(&u);

    /* ANY: the whole mapping, typed per the YAML 1.2 core schema */
    const msgpack_object *x = mp(topo_param(c, "extra"), &u);
    assert_int_equal(x->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(x->via.map.size, 11);
    assert_obj_str(weir_mp_find(x, "s"), "plain text");
    assert_obj_str(weir_mp_find(x, "quoted"), "123");
    assert_obj_str(weir_mp_find(x, "single"), "true");
    assert_obj_str(weir_mp_find(x, "empty"), "");
    assert_obj_str(weir_mp_find(x, "tagged"), "42");
    assert_obj_str(weir_mp_find(x, "text"), "line one\nline two\n");
    const msgpack_object *ints = weir_mp_find(x, "ints");
    assert_int_equal(ints->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(ints->via.array.size, 6);
    int64_t want_ints[] = {0, -7, 31, 15, INT64_MAX};
    for (size_t k = 0; k < 5; k++)
        assert_obj_int(&ints->via.array.ptr[k], want_ints[k]);
    assert_int_equal(ints->via.array.ptr[5].type,
                     MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(ints->via.array.ptr[5].via.u64 == UINT64_MAX);
    const msgpack_object *fl = weir_mp_find(x, "floats");
    assert_int_equal(fl->via.array.size, 5);
    double want_fl[] = {1.5, -0.5, 1000.0, INFINITY, -INFINITY};
    for (size_t k = 0; k < 5; k++) {
        assert_int_equal(fl->via.array.ptr[k].type, MSGPACK_OBJECT_FLOAT64);
        assert_true(fl->via.array.ptr[k].via.f64 == want_fl[k]);
    }
    const msgpack_object *bo = weir_mp_find(x, "bools");
    assert_int_equal(bo->via.array.size, 3);
    assert_int_equal(bo->via.array.ptr[0].type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(bo->via.array.ptr[0].via.boolean);
    assert_false(bo->via.array.ptr[1].via.boolean);
    assert_true(bo->via.array.ptr[2].via.boolean);
    assert_int_equal(weir_mp_find(x, "nothing")->type, MSGPACK_OBJECT_NIL);
    const msgpack_object *ne = weir_mp_find(x, "nested");
    assert_int_equal(ne->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(ne->via.map.size, 2);
    assert_obj_int(&ne->via.map.ptr[0].key, 1); /* an integer key */
    assert_obj_str(&ne->via.map.ptr[0].val, "one");
    const msgpack_object *deeper = weir_mp_find(ne, "deeper");
    assert_int_equal(deeper->via.array.size, 2);
    assert_int_equal(deeper->via.array.ptr[0].type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(deeper->via.array.ptr[0].via.array.size, 0);
    assert_int_equal(deeper->via.array.ptr[1].type, MSGPACK_OBJECT_MAP);
    assert_int_equal(deeper->via.array.ptr[1].via.map.size, 0);
    msgpack_unpacked_destroy(&u);

    /* quoted durations and sizes, a number as a string, a scalar ANY */
    const topo_params *c2 = &op(job, "m2")->config;
    assert_int_equal(topo_param_int(c2, "window"), 5 * 60 * 1000);
    assert_int_equal(topo_param_int(c2, "buffer"), 1024 * 1024 * 1024);
    assert_string_equal(topo_param_str(c2, "name"), "12");
    assert_mp_int(topo_param(c2, "extra"), 7);
    /* an unset parameter without default */
    const topo_value *unset = topo_param(&op(job, "src")->config, "extra");
    assert_true(unset->is_set); /* test_source2's extra has a default */
    assert_false(topo_param(&op(job, "m")->config, "extra")->from_default);

    /* test_source2's ANY default, parsed as YAML */
    x = mp(unset, &u);
    assert_int_equal(x->type, MSGPACK_OBJECT_MAP);
    assert_obj_int(weir_mp_find(x, "a"), 1);
    const msgpack_object *b = weir_mp_find(x, "b");
    assert_int_equal(b->via.array.size, 4);
    assert_obj_str(&b->via.array.ptr[0], "x");
    assert_true(b->via.array.ptr[1].via.f64 == 2.5);
    assert_int_equal(b->via.array.ptr[2].type, MSGPACK_OBJECT_BOOLEAN);
    assert_int_equal(b->via.array.ptr[3].type, MSGPACK_OBJECT_NIL);
    msgpack_unpacked_destroy(&u);
    topo_free(job);
}

static void test_unset_without_default(void **state)
{
    (void)state;
    topo_job *job = load_str("u.yaml",
                             "operators:\n"
                             "  - {id: s, type: test_source}\n"
                             "  - {id: m, type: test_map, inputs: [s]}\n",
                             NULL);
    const topo_value *v = topo_param(&op(job, "m")->config, "name");
    assert_non_null(v);
    assert_false(v->is_set);
    assert_null(v->mp);
    assert_null(topo_param_str(&op(job, "m")->config, "name"));
    topo_free(job);
}

static void test_anchors(void **state)
{
    (void)state;
    msgpack_unpacked u;
    topo_job *job = load("anchors.yaml");
    for (int k = 0; k < 2; k++) {
        const topo_params *c = &op(job, k ? "second" : "first")->config;
        assert_int_equal(topo_param_int(c, "count"), 7);
        assert_string_equal(topo_param_str(c, "mode"), "slow");
        const msgpack_object *o = mp(topo_param(c, "extra"), &u);
        assert_int_equal(o->via.array.size, 3);
        assert_obj_str(&o->via.array.ptr[2], "c");
        msgpack_unpacked_destroy(&u);
    }
    const msgpack_object *o =
        mp(topo_param(&op(job, "third")->config, "extra"), &u);
    const msgpack_object *again = weir_mp_find(o, "again");
    assert_non_null(again);
    assert_int_equal(again->via.array.size, 3);
    assert_obj_str(&again->via.array.ptr[0], "a");
    msgpack_unpacked_destroy(&u);
    topo_free(job);
}

static void test_names(void **state)
{
    (void)state;
    const char *y = "operators: [{id: s, type: test_source}]\n";
    topo_job *job = load_str("some/dir/my-job.yml", y, NULL);
    assert_string_equal(job->name, "my-job");
    assert_string_equal(job->path, "some/dir/my-job.yml");
    topo_free(job);
    job = load_str("noext", y, NULL);
    assert_string_equal(job->name, "noext");
    topo_free(job);
    job = load_str("x.yaml",
                   "job: a.b-c_1\noperators: [{id: s, type: "
                   "test_source}]\n",
                   NULL);
    assert_string_equal(job->name, "a.b-c_1");
    topo_free(job);
}

/* Loading with no registry or an empty one reports the type as unknown. */
static void test_no_plugins(void **state)
{
    (void)state;
    char *err = NULL;
    topo_job *job = NULL;
    const char *y = "operators: [{id: s, type: test_source}]\n";
    assert_int_equal(topo_load_string("n.yaml", y, strlen(y), NULL, &job, &err),
                     WEIR_EINVAL);
    assert_null(job);
    assert_non_null(strstr(err, "n.yaml:1:27: operators[0].type: unknown "
                                "operator type 'test_source'; no plugins"));
    free(err);
    err = NULL;
    reg_registry *empty = reg_new(api_table());
    assert_int_equal(
        topo_load_string("n.yaml", y, strlen(y), empty, &job, &err),
        WEIR_EINVAL);
    assert_non_null(strstr(err, "no plugins are loaded"));
    free(err);
    reg_free(empty);
}

/* topo_params_from_strings with a plugin's table and the host's. */
static void test_from_strings(void **state)
{
    (void)state;
    const reg_operator *ro = reg_find(reg, "test_map");
    assert_non_null(ro);
    topo_params p = {0};
    char *err = NULL;
    const char *names[] = {"window", "mode", "extra", "flag", "buffer", "name"};
    const char *values[] = {"2h", "slow", "[1, {a: b}]", "true", "1MiB", "007"};
    assert_int_equal(topo_params_from_strings(ro->params, ro->n_params, names,
                                              values, 6, &p, &err),
                     0);
    assert_int_equal(p.n, ro->n_params);
    assert_int_equal(topo_param_int(&p, "window"), 7200000);
    assert_string_equal(topo_param_str(&p, "mode"), "slow");
    assert_int_equal(topo_param(&p, "flag")->b, 1);
    assert_int_equal(topo_param_int(&p, "buffer"), 1048576);
    assert_string_equal(topo_param_str(&p, "name"), "007"); /* text kept */
    assert_int_equal(topo_param_int(&p, "count"), 10);      /* default */
    assert_true(topo_param(&p, "count")->from_default);
    msgpack_unpacked u;
    const msgpack_object *o = mp(topo_param(&p, "extra"), &u);
    assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
    assert_obj_int(&o->via.array.ptr[0], 1);
    assert_obj_str(weir_mp_find(&o->via.array.ptr[1], "a"), "b");
    msgpack_unpacked_destroy(&u);
    topo_params_free(&p);
    topo_params_free(&p); /* freeing twice is harmless */

    struct {
        const char *name, *value, *want;
    } bad[] = {
        {"windw", "1s", "windw: unknown parameter; did you mean 'window'?"},
        {"count", "abc", "count: expected an integer, got the string 'abc'"},
        {"count", "0", "count: 0 is below the minimum 1"},
        {"mode", "turbo", "mode: 'turbo' is not one of: fast, safe, slow"},
        {"window", "5x", "window: '5x': unknown duration unit 'x'"},
        {"extra", "[1, 2", "extra: did not find expected ',' or ']'"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        err = NULL;
        int rc = topo_params_from_strings(
            ro->params, ro->n_params, &bad[k].name, &bad[k].value, 1, &p, &err);
        assert_int_equal(rc, WEIR_EINVAL);
        assert_null(p.v);
        if (!strstr(err, bad[k].want)) {
            fprintf(stderr, "want %s\ngot  %s\n", bad[k].want, err);
            fail();
        }
        free(err);
    }
    /* the same name twice */
    const char *twice_n[] = {"count", "count"}, *twice_v[] = {"1", "2"};
    err = NULL;
    assert_int_equal(topo_params_from_strings(ro->params, ro->n_params, twice_n,
                                              twice_v, 2, &p, &err),
                     WEIR_EINVAL);
    assert_string_equal(err, "count: given twice");
    free(err);
    /* a required parameter left out */
    const reg_operator *rq = reg_find(reg, "test_required");
    const char *lvl_n[] = {"level"}, *lvl_v[] = {"3"};
    err = NULL;
    assert_int_equal(topo_params_from_strings(rq->params, rq->n_params, lvl_n,
                                              lvl_v, 1, &p, &err),
                     WEIR_EINVAL);
    assert_non_null(strstr(err, "missing required parameter 'path'"));
    free(err);
    /* a plugin table whose default is broken */
    const reg_operator *bd = reg_find(reg, "test_bad_default");
    err = NULL;
    assert_int_equal(topo_params_from_strings(bd->params, bd->n_params, NULL,
                                              NULL, 0, &p, &err),
                     WEIR_EINVAL);
    assert_non_null(strstr(err, "invalid default '10x'"));
    free(err);
}

/* Every host section's table validates with no values given: all its
 * defaults are valid, and each entry has one. */
static void test_section_defaults_valid(void **state)
{
    (void)state;
    const char *names[] = {"runtime", "state", "checkpoint", "restart",
                           "metrics"};
    for (size_t s = 0; s < 5; s++) {
        const weir_param_def *const *defs = topo_section_defs(names[s]);
        assert_non_null(defs);
        size_t n = 0;
        for (; defs[n]; n++) {
            assert_non_null(defs[n]->default_value);
            assert_non_null(defs[n]->description);
            assert_int_equal(defs[n]->size, sizeof(weir_param_def));
        }
        topo_params p = {0};
        char *err = NULL;
        assert_int_equal(
            topo_params_from_strings(defs, n, NULL, NULL, 0, &p, &err), 0);
        for (size_t k = 0; k < n; k++)
            assert_true(p.v[k].is_set && p.v[k].from_default);
        topo_params_free(&p);
    }
}

/* schemas/topology.schema.json describes each host section with the same
 * keys, defaults, choices and numeric bounds as the C tables. */
static void test_schema_matches_tables(void **state)
{
    (void)state;
    json_error_t jerr;
    json_t *schema = json_load_file(TOPO_SCHEMA, 0, &jerr);
    if (!schema) {
        fprintf(stderr, "%s:%d: %s\n", TOPO_SCHEMA, jerr.line, jerr.text);
        fail();
    }
    json_t *defs = json_object_get(schema, "$defs");
    const char *names[] = {"runtime", "state",   "checkpoint",
                           "restart", "metrics", "async"};
    for (size_t s = 0; s < 6; s++) {
        const weir_param_def *const *d = topo_section_defs(names[s]);
        json_t *props =
            json_object_get(json_object_get(defs, names[s]), "properties");
        assert_non_null(props);
        size_t n = 0;
        for (; d[n]; n++) {
            json_t *p = json_object_get(props, d[n]->name);
            if (!p) {
                fprintf(stderr, "schema lacks %s.%s\n", names[s], d[n]->name);
                fail();
            }
            assert_non_null(json_object_get(p, "description"));
            json_t *dv = json_object_get(p, "default");
            assert_non_null(dv);
            switch (d[n]->type) {
            case WEIR_PARAM_INT:
                assert_true(json_is_integer(dv));
                assert_int_equal(json_integer_value(dv),
                                 strtoll(d[n]->default_value, NULL, 10));
                break;
            case WEIR_PARAM_DOUBLE:
                assert_true(json_is_number(dv));
                assert_true(json_number_value(dv) ==
                            strtod(d[n]->default_value, NULL));
                break;
            case WEIR_PARAM_BOOL:
                assert_true(json_is_boolean(dv));
                assert_int_equal(json_is_true(dv),
                                 !strcmp(d[n]->default_value, "true"));
                break;
            default:
                assert_true(json_is_string(dv));
                assert_string_equal(json_string_value(dv), d[n]->default_value);
            }
            if (d[n]->type == WEIR_PARAM_INT ||
                d[n]->type == WEIR_PARAM_DOUBLE) {
                json_t *mn = json_object_get(p, "minimum");
                json_t *mx = json_object_get(p, "maximum");
                assert_int_equal(mn != NULL,
                                 (d[n]->flags & WEIR_PARAM_HAS_MIN) != 0);
                assert_int_equal(mx != NULL,
                                 (d[n]->flags & WEIR_PARAM_HAS_MAX) != 0);
                if (mn)
                    assert_true(json_number_value(mn) == d[n]->min);
                if (mx)
                    assert_true(json_number_value(mx) == d[n]->max);
            }
            if (d[n]->type == WEIR_PARAM_ENUM) {
                json_t *e = json_object_get(p, "enum");
                size_t c = 0;
                for (; d[n]->choices[c]; c++)
                    assert_string_equal(json_string_value(json_array_get(e, c)),
                                        d[n]->choices[c]);
                assert_int_equal(json_array_size(e), c);
            }
        }
        assert_int_equal(json_object_size(props), n);
    }
    json_decref(schema);
}

/* `weir validate` prints the summary and exits 0. */
static void test_weir_validate_ok(void **state)
{
    (void)state;
    struct {
        const char *file;
        const char *first_line; /* after the path */
        const char *also;
    } cases[] = {
        {"defaults.yaml", ": ok (1 operator, 1 subtask)\n", "  src"},
        {"full.yaml", ": ok (3 operators, 6 subtasks)\n", "<- src (key)"},
        {"partitions.yaml", ": ok (6 operators, 210 subtasks)\n",
         "<- src (broadcast)"},
        {"ports.yaml", ": ok (4 operators, 4 subtasks)\n",
         "<- s2.errors (forward, into right)"},
        {"chain.yaml", ": ok (4 operators, 4 subtasks)\n", "job chain"},
        {"values.yaml", ": ok (3 operators, 3 subtasks)\n", "src.out"},
        {"anchors.yaml", ": ok (4 operators, 4 subtasks)\n", "third"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char path[1024], want[1200], out[8192];
        snprintf(path, sizeof path, "%s/good/%s", TOPO_SRC_DIR, cases[k].file);
        int pipefd[2];
        assert_int_equal(pipe(pipefd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            dup2(pipefd[1], 1);
            close(pipefd[0]);
            close(pipefd[1]);
            execl(WEIR_BIN, WEIR_BIN, "validate", "--dir", TOPO_PLUGIN_DIR,
                  path, (char *)NULL);
            _exit(127);
        }
        close(pipefd[1]);
        size_t len = 0;
        ssize_t r;
        while ((r = read(pipefd[0], out + len, sizeof out - 1 - len)) > 0)
            len += (size_t)r;
        out[len] = '\0';
        close(pipefd[0]);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        snprintf(want, sizeof want, "%s%s", path, cases[k].first_line);
        if (strncmp(out, want, strlen(want)) || !strstr(out, cases[k].also)) {
            fprintf(stderr, "want %s...%s\ngot %s\n", want, cases[k].also, out);
            fail();
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_partitions),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_chain_order),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_unset_without_default),
        cmocka_unit_test(test_anchors),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_no_plugins),
        cmocka_unit_test(test_from_strings),
        cmocka_unit_test(test_section_defaults_valid),
        cmocka_unit_test(test_schema_matches_tables),
        cmocka_unit_test(test_weir_validate_ok),
    };
    return cmocka_run_group_tests_name("topology model", tests, setup,
                                       teardown);
}
