/*
 * plan.h - the physical plan: operators x parallelism = subtasks, and every
 * logical edge expanded into channels between subtasks.
 *
 * A channel connects one producer subtask's output port to one consumer
 * subtask's input port and is its own ZeroMQ socket pair, so a consumer can
 * stop reading one channel (barrier alignment) while reading the others.
 * Channel addresses and subtask placement are data in the plan, not
 * assumptions in the code, so a plan can later span processes and hosts.
 *
 * Key partitioning follows Flink: key group = xxh3_64(key) % max_parallelism;
 * subtask = key_group * parallelism / max_parallelism, so each subtask owns a
 * contiguous range of key groups and state can be rescaled by moving ranges.
 *
 * Thread: a plan is built once and then read-only.
 */
#ifndef WEIR_HOST_PLAN_H
#define WEIR_HOST_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "topology/topology.h"

/* A group of channels that one output port feeds for one logical edge: a
 * record emitted on the port goes to one (forward, rebalance, key) or all
 * (broadcast) of `channels`, which are ordered by consumer subtask index. */
typedef struct plan_route {
    topo_partition partition;
    uint32_t consumer_op; /* index in job->ops */
    uint32_t *channels;   /* channel ids, one per target subtask */
    uint32_t n_channels;
} plan_route;

typedef struct plan_port {
    plan_route *routes;
    uint32_t n_routes;
} plan_port;

typedef struct plan_subtask {
    uint32_t id;    /* global subtask id, index in plan->subtasks */
    uint32_t op;    /* index in job->ops */
    uint32_t index; /* 0 .. parallelism-1 */
    uint32_t parallelism;
    uint32_t kg_first; /* key groups [kg_first, kg_last] belong here */
    uint32_t kg_last;
    uint32_t *inputs; /* channel ids this subtask reads */
    uint32_t n_inputs;
    plan_port *outputs; /* one per output port of the operator */
    uint32_t n_outputs;
} plan_subtask;

typedef struct plan_channel {
    uint32_t id;
    uint32_t producer; /* subtask id */
    uint32_t consumer; /* subtask id */
    uint32_t to_port;  /* consumer's input port index */
    int chained;       /* the consumer runs in the producer's thread: the
                          channel has no sockets, records go by call */
    char address[96];  /* e.g. "inproc://weir/3" */
} plan_channel;

typedef struct plan {
    const topo_job *job;
    uint32_t max_parallelism;
    plan_subtask *subtasks;
    uint32_t n_subtasks;
    plan_channel *channels;
    uint32_t n_channels;
    uint32_t *op_first_subtask; /* job->ops[i]'s subtask 0 has this id */
    /* Operator chaining: op_chain_up[i] is the operator whose threads run
     * job->ops[i] (subtask k of one in subtask k of the other), or -1 when
     * ops[i] has threads of its own. See plan_chainable(). */
    int32_t *op_chain_up;
} plan;

/*
 * Operator chaining. Operator B is chained to operator A, and so runs in
 * A's threads (B's subtask k in A's subtask k, A's weir_emit calling B's
 * process() directly), when all of these hold:
 *  - runtime.chaining is true (the default), and neither A nor B sets
 *    `chain: false`;
 *  - B has exactly one input edge, from A, with partition forward (so equal
 *    parallelism), into an input port that is not a broadcast input;
 *  - that edge is A's only output edge (over all of A's output ports), so
 *    chains are straight lines;
 *  - neither A nor B is asynchronous (its plugin sets async_invoke).
 * Chains grow transitively: when C is chained to B and B to A, all three
 * run in A's threads. A source can head a chain. Returns the index of A in
 * job->ops, or -1 when ops[op] is not chained.
 */
int32_t plan_chainable(const topo_job *job, uint32_t op);

/* The first operator of the chain operator `op` belongs to (`op` itself
 * when it is not chained to another). */
uint32_t plan_chain_head(const plan *p, uint32_t op);

/* Builds the plan of `job`. Channel addresses are "inproc://<prefix>/<id>".
 * Returns 0, or a negative code with *errptr set. */
int plan_build(const topo_job *job, const char *addr_prefix, plan **out,
               char **errptr);
void plan_free(plan *p);

/* The key group of a key, in [0, max_parallelism). */
uint32_t plan_key_group(const void *key, size_t len, uint32_t max_parallelism);
/* The subtask index (0-based, within the operator) owning a key group. */
uint32_t plan_kg_to_index(uint32_t key_group, uint32_t parallelism,
                          uint32_t max_parallelism);
/* The key groups [*first, *last] of subtask `index`: the inverse of
 * plan_kg_to_index(). The range is empty (*first > *last) when the
 * parallelism exceeds max_parallelism and the subtask owns no key group. */
void plan_kg_range(uint32_t index, uint32_t parallelism,
                   uint32_t max_parallelism, uint32_t *first, uint32_t *last);

#endif
