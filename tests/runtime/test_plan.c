/* Unit tests of the physical plan (runtime/plan.h): subtasks, channels per
 * partitioning, and Flink-compatible key-group ranges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/plan.h"

static const char *const one_port[] = {"out", NULL};
static reg_operator fake_src = {.outputs = (const char **)one_port,
                                .n_outputs = 1};
static reg_operator fake_op = {
    .outputs = (const char **)one_port, .n_outputs = 1, .n_inputs = 1};

/* src (p_src) -> op (p_op) with partitioning `part`. */
static void make_job(topo_job *job, topo_op *ops, topo_input *in,
                     uint32_t p_src, uint32_t p_op, topo_partition part)
{
    memset(job, 0, sizeof *job);
    memset(ops, 0, 2 * sizeof *ops);
    ops[0] = (topo_op){.id = "src", .reg = &fake_src, .parallelism = p_src};
    *in = (topo_input){.from = 0, .partition = part};
    ops[1] = (topo_op){.id = "op",
                       .reg = &fake_op,
                       .parallelism = p_op,
                       .inputs = in,
                       .n_inputs = 1};
    job->ops = ops;
    job->n_ops = 2;
    job->max_parallelism = 128;
}

static void test_channels_per_partition(void **unused)
{
    static const struct {
        topo_partition part;
        uint32_t p_src, p_op, channels;
    } cases[] = {
        {TOPO_FORWARD, 3, 3, 3}, {TOPO_REBALANCE, 2, 3, 6},
        {TOPO_KEY, 4, 2, 8},     {TOPO_BROADCAST, 1, 4, 4},
        {TOPO_KEY, 1, 1, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        topo_job job;
        topo_op ops[2];
        topo_input in;
        make_job(&job, ops, &in, cases[c].p_src, cases[c].p_op, cases[c].part);
        plan *p = NULL;
        assert_int_equal(plan_build(&job, "t", &p, NULL), 0);
        assert_int_equal(p->n_subtasks, cases[c].p_src + cases[c].p_op);
        assert_int_equal(p->n_channels, cases[c].channels);
        /* Every consumer reads as many channels as producers reach it. */
        uint32_t total_in = 0;
        for (uint32_t s = cases[c].p_src; s < p->n_subtasks; s++)
            total_in += p->subtasks[s].n_inputs;
        assert_int_equal(total_in, cases[c].channels);
        /* Producers route to consumers in subtask order. */
        for (uint32_t s = 0; s < cases[c].p_src; s++) {
            const plan_route *r = &p->subtasks[s].outputs[0].routes[0];
            assert_int_equal(r->partition, cases[c].part);
            for (uint32_t j = 0; j < r->n_channels; j++) {
                const plan_channel *ch = &p->channels[r->channels[j]];
                assert_int_equal(ch->producer, s);
                uint32_t want = cases[c].part == TOPO_FORWARD ? s : j;
                assert_int_equal(ch->consumer, cases[c].p_src + want);
            }
        }
        /* Addresses are unique. */
        for (uint32_t i = 0; i < p->n_channels; i++)
            for (uint32_t j = i + 1; j < p->n_channels; j++)
                assert_string_not_equal(p->channels[i].address,
                                        p->channels[j].address);
        plan_free(p);
    }
}

/* Key groups: each subtask owns a contiguous range, the ranges tile
 * [0, max) exactly, and plan_kg_to_index agrees with the ranges. */
static void test_key_group_ranges(void **unused)
{
    static const uint32_t pars[] = {1, 2, 3, 5, 7, 128};
    for (size_t c = 0; c < sizeof pars / sizeof pars[0]; c++) {
        topo_job job;
        topo_op ops[2];
        topo_input in;
        make_job(&job, ops, &in, 1, pars[c], TOPO_KEY);
        plan *p = NULL;
        assert_int_equal(plan_build(&job, "t", &p, NULL), 0);
        uint32_t next = 0;
        for (uint32_t i = 0; i < pars[c]; i++) {
            const plan_subtask *s = &p->subtasks[1 + i];
            assert_int_equal(s->kg_first, next);
            assert_true(s->kg_last >= s->kg_first);
            for (uint32_t kg = s->kg_first; kg <= s->kg_last; kg++)
                assert_int_equal(plan_kg_to_index(kg, pars[c], 128), i);
            next = s->kg_last + 1;
        }
        assert_int_equal(next, 128);
        plan_free(p);
    }
}

/* The key group of a key is stable and spreads keys over all groups. */
static void test_key_group_hash(void **unused)
{
    uint32_t hits[128] = {0};
    char key[32];
    for (int i = 0; i < 12800; i++) {
        int n = snprintf(key, sizeof key, "user-%d", i);
        uint32_t kg = plan_key_group(key, (size_t)n, 128);
        assert_true(kg < 128);
        assert_int_equal(kg, plan_key_group(key, (size_t)n, 128));
        hits[kg]++;
    }
    for (int g = 0; g < 128; g++)
        assert_true(hits[g] > 40 && hits[g] < 180); /* mean 100 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channels_per_partition),
        cmocka_unit_test(test_key_group_ranges),
        cmocka_unit_test(test_key_group_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
