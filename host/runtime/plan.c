#include "runtime/plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

#include "common/err.h"

uint32_t plan_key_group(const void *key, size_t len, uint32_t max_parallelism)
{
    return (uint32_t)(XXH3_64bits(key, len) % max_parallelism);
}

uint32_t plan_kg_to_index(uint32_t key_group, uint32_t parallelism,
                          uint32_t max_parallelism)
{
    return (uint32_t)((uint64_t)key_group * parallelism / max_parallelism);
}

void plan_kg_range(uint32_t index, uint32_t parallelism, uint32_t max_par,
                   uint32_t *first, uint32_t *last)
{
    *first =
        (uint32_t)(((uint64_t)index * max_par + parallelism - 1) / parallelism);
    *last = (uint32_t)(((uint64_t)(index + 1) * max_par + parallelism - 1) /
                       parallelism) -
            1;
}

static int plan_add_channel(plan *p, uint32_t *cap, uint32_t producer,
                            uint32_t consumer, uint32_t to_port,
                            const char *prefix, uint32_t *id)
{
    if (p->n_channels == *cap) {
        uint32_t ncap = *cap ? *cap * 2 : 16;
        plan_channel *n = realloc(p->channels, ncap * sizeof *n);
        if (!n)
            return WEIR_ENOMEM;
        p->channels = n;
        *cap = ncap;
    }
    plan_channel *c = &p->channels[p->n_channels];
    c->id = p->n_channels;
    c->producer = producer;
    c->consumer = consumer;
    c->to_port = to_port;
    c->chained = 0;
    snprintf(c->address, sizeof c->address, "inproc://%s/%u", prefix, c->id);
    *id = p->n_channels++;
    return 0;
}

static int plan_add_input(plan_subtask *s, uint32_t channel)
{
    uint32_t *n = realloc(s->inputs, (s->n_inputs + 1) * sizeof *n);
    if (!n)
        return WEIR_ENOMEM;
    s->inputs = n;
    s->inputs[s->n_inputs++] = channel;
    return 0;
}

static plan_route *plan_add_route(plan_port *port)
{
    plan_route *n = realloc(port->routes, (port->n_routes + 1) * sizeof *n);
    if (!n)
        return NULL;
    port->routes = n;
    plan_route *r = &port->routes[port->n_routes++];
    *r = (plan_route){0};
    return r;
}

/* Expands edge `in` of consumer operator `cop` into channels. Forward
 * connects i -> i; every other partitioning connects all pairs. */
static int plan_expand_edge(plan *p, uint32_t *cap, uint32_t cop,
                            const topo_input *in, const char *prefix)
{
    const topo_op *prod = &p->job->ops[in->from];
    const topo_op *cons = &p->job->ops[cop];
    int fwd = in->partition == TOPO_FORWARD;
    for (uint32_t i = 0; i < prod->parallelism; i++) {
        plan_subtask *ps = &p->subtasks[p->op_first_subtask[in->from] + i];
        plan_route *r = plan_add_route(&ps->outputs[in->from_port]);
        if (!r)
            return WEIR_ENOMEM;
        r->partition = in->partition;
        r->consumer_op = cop;
        uint32_t n = fwd ? 1 : cons->parallelism;
        r->channels = calloc(n, sizeof *r->channels);
        if (!r->channels)
            return WEIR_ENOMEM;
        r->n_channels = n;
        for (uint32_t j = 0; j < n; j++) {
            uint32_t cidx = fwd ? i : j;
            uint32_t csub = p->op_first_subtask[cop] + cidx;
            uint32_t ch;
            int rc = plan_add_channel(p, cap, ps->id, csub, in->to_port, prefix,
                                      &ch);
            if (rc < 0 || (rc = plan_add_input(&p->subtasks[csub], ch)) < 0)
                return rc;
            r->channels[j] = ch;
        }
    }
    return 0;
}

static int plan_make_subtasks(plan *p)
{
    const topo_job *job = p->job;
    p->op_first_subtask = calloc(job->n_ops ? job->n_ops : 1, sizeof(uint32_t));
    if (!p->op_first_subtask)
        return WEIR_ENOMEM;
    uint32_t total = 0;
    for (size_t i = 0; i < job->n_ops; i++) {
        p->op_first_subtask[i] = total;
        total += job->ops[i].parallelism;
    }
    p->subtasks = calloc(total ? total : 1, sizeof *p->subtasks);
    if (!p->subtasks)
        return WEIR_ENOMEM;
    p->n_subtasks = total;
    for (size_t i = 0; i < job->n_ops; i++) {
        const topo_op *op = &job->ops[i];
        for (uint32_t k = 0; k < op->parallelism; k++) {
            plan_subtask *s = &p->subtasks[p->op_first_subtask[i] + k];
            s->id = p->op_first_subtask[i] + k;
            s->op = (uint32_t)i;
            s->index = k;
            s->parallelism = op->parallelism;
            plan_kg_range(k, op->parallelism, p->max_parallelism, &s->kg_first,
                          &s->kg_last);
            s->n_outputs = (uint32_t)op->reg->n_outputs;
            s->outputs =
                calloc(s->n_outputs ? s->n_outputs : 1, sizeof *s->outputs);
            if (!s->outputs)
                return WEIR_ENOMEM;
        }
    }
    return 0;
}

int32_t plan_chainable(const topo_job *job, uint32_t op)
{
    const topo_value *on = topo_param(&job->runtime, "chaining");
    if (!on || !on->is_set || !on->b)
        return -1;
    const topo_op *b = &job->ops[op];
    if (!b->chain || b->n_inputs != 1 || b->reg->op.async_invoke ||
        (b->reg->op.flags & WEIR_OP_SOURCE))
        return -1;
    const topo_input *in = &b->inputs[0];
    if (in->partition != TOPO_FORWARD ||
        (in->to_port < 64 && (b->reg->op.broadcast_inputs >> in->to_port & 1u)))
        return -1;
    const topo_op *a = &job->ops[in->from];
    if (!a->chain || a->reg->op.async_invoke ||
        a->parallelism != b->parallelism)
        return -1;
    uint32_t edges = 0; /* A's output edges */
    for (size_t i = 0; i < job->n_ops; i++)
        for (size_t e = 0; e < job->ops[i].n_inputs; e++)
            edges += job->ops[i].inputs[e].from == in->from;
    return edges == 1 ? (int32_t)in->from : -1;
}

uint32_t plan_chain_head(const plan *p, uint32_t op)
{
    while (p->op_chain_up[op] >= 0)
        op = (uint32_t)p->op_chain_up[op];
    return op;
}

/* Decides which operators are chained (plan_chainable) and marks the
 * channels that chaining replaces by calls. */
static int plan_chain(plan *p)
{
    const topo_job *job = p->job;
    p->op_chain_up = calloc(job->n_ops ? job->n_ops : 1, sizeof(int32_t));
    if (!p->op_chain_up)
        return WEIR_ENOMEM;
    for (size_t i = 0; i < job->n_ops; i++)
        p->op_chain_up[i] = plan_chainable(job, (uint32_t)i);
    for (uint32_t c = 0; c < p->n_channels; c++) {
        plan_channel *ch = &p->channels[c];
        uint32_t cop = p->subtasks[ch->consumer].op;
        ch->chained =
            p->op_chain_up[cop] >= 0 &&
            (uint32_t)p->op_chain_up[cop] == p->subtasks[ch->producer].op;
    }
    return 0;
}

int plan_build(const topo_job *job, const char *addr_prefix, plan **out,
               char **errptr)
{
    plan *p = calloc(1, sizeof *p);
    uint32_t cap = 0;
    int rc = WEIR_ENOMEM;
    if (!p)
        goto out;
    p->job = job;
    p->max_parallelism = job->max_parallelism;
    if ((rc = plan_make_subtasks(p)) < 0)
        goto out;
    for (size_t i = 0; i < job->n_ops; i++)
        for (size_t e = 0; e < job->ops[i].n_inputs; e++)
            if ((rc = plan_expand_edge(p, &cap, (uint32_t)i,
                                       &job->ops[i].inputs[e], addr_prefix)) <
                0)
                goto out;
    if ((rc = plan_chain(p)) < 0)
        goto out;
    *out = p;
    return 0;
out:
    plan_free(p);
    return err_set(errptr, rc, "building the plan: %s", weir_strerror(rc));
}

void plan_free(plan *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->n_subtasks; i++) {
        plan_subtask *s = &p->subtasks[i];
        for (uint32_t o = 0; o < s->n_outputs; o++) {
            for (uint32_t r = 0; r < s->outputs[o].n_routes; r++)
                free(s->outputs[o].routes[r].channels);
            free(s->outputs[o].routes);
        }
        free(s->outputs);
        free(s->inputs);
    }
    free(p->subtasks);
    free(p->channels);
    free(p->op_first_subtask);
    free(p->op_chain_up);
    free(p);
}
