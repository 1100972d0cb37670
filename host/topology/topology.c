/*
 * topology.c - the job model: top-level keys, host sections, operators,
 * inputs and the checks on the graph they form, and the topological order.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "topology/topo_internal.h"

#define TOPO_ID_MAX   128
#define TOPO_PATH_MAX 512

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */
/* ------------------------------------------------------------------------ */

enum {
    K_JOB,
    K_MAXPAR,
    K_RUNTIME,
    K_STATE,
    K_CHECKPOINT,
    K_RESTART,
    K_METRICS,
    K_OPERATORS,
    K_TOP_N
};
static const char *const topo_top_keys[K_TOP_N] = {
    "job",        "max_parallelism", "runtime", "state",
    "checkpoint", "restart",         "metrics", "operators"};

enum {
    K_ID,
    K_TYPE,
    K_PAR,
    K_CONFIG,
    K_INPUTS,
    K_WATERMARKS,
    K_ASYNC,
    K_CHAIN,
    K_OP_N
};
static const char *const topo_op_keys[K_OP_N] = {
    "id",     "type",       "parallelism", "config",
    "inputs", "watermarks", "async",       "chain"};

enum { K_FROM, K_PARTITION, K_PORT, K_IN_N };
static const char *const topo_in_keys[K_IN_N] = {"from", "partition", "port"};

static const char *const topo_partitions[] = {"forward", "rebalance", "key",
                                              "broadcast", NULL};

static const weir_param_def topo_def_job = {
    .size = sizeof(weir_param_def),
    .name = "job",
    .type = WEIR_PARAM_STRING,
};
static const weir_param_def topo_def_maxpar = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "max_parallelism",
    .type = WEIR_PARAM_INT,
    .default_value = "128",
    .min = 1,
    .max = 32768,
};
static const weir_param_def topo_def_par = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN,
    .name = "parallelism",
    .type = WEIR_PARAM_INT,
    .min = 1,
};
static const weir_param_def topo_def_str = {
    .size = sizeof(weir_param_def),
    .name = "string",
    .type = WEIR_PARAM_STRING,
};
static const weir_param_def topo_def_partition = {
    .size = sizeof(weir_param_def),
    .name = "partition",
    .type = WEIR_PARAM_ENUM,
    .choices = topo_partitions,
};

const char *topo_partition_name(topo_partition p)
{
    return (unsigned)p < 4 ? topo_partitions[p] : "unknown";
}

/* ------------------------------------------------------------------------ */
/* Builder                                                                   */
/* ------------------------------------------------------------------------ */

/* An input as written, before it is resolved. */
typedef struct tb_in {
    const topo_ynode *node;      /* the list entry */
    const topo_ynode *from;      /* "op" or "op.port" */
    const topo_ynode *partition; /* or NULL */
    const topo_ynode *port;      /* or NULL */
    int bad;                     /* it was written wrongly (reported) */
} tb_in;

/* While collecting every error (topo_check_file()), what was found broken,
 * so that the checks depending on it are skipped instead of reporting the
 * same mistake again. */
typedef struct tb_op {
    const topo_ynode *node;
    const topo_ynode *inputs; /* or NULL */
    tb_in *ins;
    size_t n_ins;
    int unusable;   /* not a mapping, or no known type: no ports, no flags */
    int par_bad;    /* its parallelism is not known */
    int inputs_bad; /* its inputs, or one of them, were written wrongly */
} tb_op;

typedef struct tb {
    const char *file;
    char **errptr;
    const reg_registry *reg;
    topo_job *job;
    topo_op *ops; /* file order */
    tb_op *raw;
    size_t n_ops;
    topo_strmap ids;   /* id -> file index */
    topo_collect *col; /* NULL: stop at the first error */
    int maxpar_bad;    /* max_parallelism is not known */
    int id_bad;        /* an operator's id is missing or invalid */
    int graph_bad;     /* an operator or input cannot be resolved */
} tb;

/* Passes the result of one check through the collector (see
 * topo_collect_note()): returns a negative code to stop at, else 0. Sets
 * *failed (when not NULL) if the check failed, collected or not. */
static int tb_go(tb *b, int rc, int *failed)
{
    if (rc < 0 && failed)
        *failed = 1;
    return topo_collect_note(b->col, rc, b->errptr);
}

static int tb_nomem(tb *b)
{
    return err_set(b->errptr, WEIR_ENOMEM, "%s: out of memory", b->file);
}

static int tb_err(tb *b, const topo_ynode *n, const char *path, const char *fmt,
                  ...) WEIR_PRINTF(4, 5);

static int tb_err(tb *b, const topo_ynode *n, const char *path, const char *fmt,
                  ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0)
        return tb_nomem(b);
    topo_err(b->errptr, b->file, n->line, n->col, path, "%s", msg);
    free(msg);
    return WEIR_EINVAL;
}

/* Formats a field path for a message into buf; a path longer than cap is
 * cut, which only shortens the message. */
static void tb_path(char *buf, size_t cap, const char *fmt, ...)
    WEIR_PRINTF(3, 4);

static void tb_path(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* Reports the unknown key `key` (at field `sub`) of a mapping that allows
 * `allowed`. Returns WEIR_EINVAL. */
static int tb_unknown_key(tb *b, const topo_ynode *key, const char *sub,
                          const char *const *allowed, size_t n_allowed,
                          const char *noun)
{
    const char *merge = topo_merge_hint(key->str, key->len);
    if (merge)
        return tb_err(b, key, sub, "unknown key in %s; %s", noun, merge);
    const char *best = topo_suggest(key->str, key->len, allowed, n_allowed);
    if (best)
        return tb_err(b, key, sub,
                      "unknown key in %s; did you mean "
                      "'%s'?",
                      noun, best);
    char list[256] = "";
    size_t o = 0;
    for (size_t i = 0; i < n_allowed; i++) {
        int w = snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "",
                         allowed[i]);
        if (w > 0 && (size_t)w < sizeof list - o)
            o += (size_t)w;
    }
    return tb_err(b, key, sub, "unknown key in %s; valid keys: %s", noun, list);
}

/* Splits the mapping `map` into slots by key; unknown keys are errors
 * (each one is reported when collecting; the known keys still fill their
 * slots).
 * `path` prefixes the key in messages ("" at the top level). */
static int tb_keys(tb *b, const topo_ynode *map, const char *path,
                   const char *const *allowed, size_t n_allowed,
                   const char *noun, const topo_ynode **slots)
{
    char q[TOPO_QUOTE_MAX], sub[TOPO_PATH_MAX + TOPO_QUOTE_MAX];
    for (size_t k = 0; k < n_allowed; k++)
        slots[k] = NULL;
    for (size_t k = 0; k + 1 < map->n; k += 2) {
        const topo_ynode *key = map->kids[k];
        size_t a = 0;
        while (a < n_allowed && !(strlen(allowed[a]) == key->len &&
                                  !memcmp(allowed[a], key->str, key->len)))
            a++;
        if (a < n_allowed) {
            slots[a] = map->kids[k + 1];
            continue;
        }
        topo_quote(key->str, key->len, q, sizeof q);
        tb_path(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", q);
        int rc = tb_unknown_key(b, key, sub, allowed, n_allowed, noun);
        if ((rc = tb_go(b, rc, NULL)) < 0)
            return rc;
    }
    return 0;
}

/* Whether s is [A-Za-z0-9_-]+ (plus '.' when dots is set), at most
 * TOPO_ID_MAX long. */
static int tb_name_ok(const char *s, size_t len, int dots)
{
    if (len == 0 || len > TOPO_ID_MAX)
        return 0;
    for (size_t k = 0; k < len; k++) {
        char c = s[k];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              (dots && c == '.')))
            return 0;
    }
    return 1;
}

/* Reads a string value through the shared value code (so that a list or a
 * null gets the usual message) and returns a malloc'ed copy. */
static int tb_string(tb *b, const topo_ynode *n, const char *path,
                     const weir_param_def *def, char **out)
{
    topo_value v = {0};
    int rc = topo_value_from_node(b->file, path, def, n, &v, b->errptr);
    if (rc == 0) {
        *out = v.str;
        v.str = NULL;
    }
    topo_value_clear(&v);
    return rc;
}

static int tb_int(tb *b, const topo_ynode *n, const char *path,
                  const weir_param_def *def, int64_t *out)
{
    topo_value v = {0};
    int rc = topo_value_from_node(b->file, path, def, n, &v, b->errptr);
    *out = v.i;
    topo_value_clear(&v);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Top level                                                                 */
/* ------------------------------------------------------------------------ */

static char *tb_stem(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    if (len == 0)
        return strdup("job");
    return strndup(base, len);
}

static int tb_job_name(tb *b, const topo_ynode *n)
{
    char q[TOPO_QUOTE_MAX];
    if (!n) {
        b->job->name = tb_stem(b->file);
        return b->job->name ? 0 : tb_nomem(b);
    }
    int rc = tb_string(b, n, "job", &topo_def_job, &b->job->name);
    if (rc < 0)
        return rc;
    if (!tb_name_ok(b->job->name, strlen(b->job->name), 1))
        return tb_err(b, n, "job",
                      "'%s' is not a valid job name (use 1 to %d letters, "
                      "digits, '_', '-' and '.')",
                      topo_quote(n->str, n->len, q, sizeof q), TOPO_ID_MAX);
    return 0;
}

static int tb_sections(tb *b, const topo_ynode *root,
                       const topo_ynode *const *slots)
{
    static const struct {
        int slot;
        const char *name;
        size_t off;
    } secs[] = {
        {K_RUNTIME, "runtime", offsetof(topo_job, runtime)},
        {K_STATE, "state", offsetof(topo_job, state)},
        {K_CHECKPOINT, "checkpoint", offsetof(topo_job, checkpoint)},
        {K_RESTART, "restart", offsetof(topo_job, restart)},
        {K_METRICS, "metrics", offsetof(topo_job, metrics)},
    };
    int restart_bad = 0;
    for (size_t k = 0; k < sizeof secs / sizeof secs[0]; k++) {
        const weir_param_def *const *defs = topo_section_defs(secs[k].name);
        size_t n = 0;
        while (defs[n])
            n++;
        const topo_ynode *node = slots[secs[k].slot];
        const topo_ynode *at = node ? node : root;
        topo_params *out = (topo_params *)((char *)b->job + secs[k].off);
        int rc =
            topo_params_build(b->file, secs[k].name, at->line, at->col, defs, n,
                              node, NULL, "key", b->col, out, b->errptr);
        if ((rc = tb_go(b, rc,
                        secs[k].slot == K_RESTART ? &restart_bad : NULL)) < 0)
            return rc;
    }
    if (restart_bad)
        return 0; /* the delays are not known */
    /* exponential_delay must not start above its ceiling */
    const topo_value *lo = topo_param(&b->job->restart, "initial_delay");
    const topo_value *hi = topo_param(&b->job->restart, "max_delay");
    if (lo->i > hi->i) {
        const topo_value *at = hi->line ? hi : lo;
        topo_ynode where = {.line = at->line, .col = at->col};
        return tb_err(b, &where,
                      at == hi ? "restart.max_delay" : "restart.initial_delay",
                      "max_delay (%lldms) is below initial_delay (%lldms)",
                      (long long)hi->i, (long long)lo->i);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Operators                                                                 */
/* ------------------------------------------------------------------------ */

static int tb_op_id(tb *b, size_t i, const topo_ynode *n, const char *path)
{
    char q[TOPO_QUOTE_MAX], sub[TOPO_PATH_MAX];
    tb_path(sub, sizeof sub, "%s.id", path);
    topo_op *op = &b->ops[i];
    int rc = tb_string(b, n, sub, &topo_def_str, &op->id);
    if (rc < 0)
        return rc;
    size_t len = strlen(op->id);
    topo_quote(n->str, n->len, q, sizeof q);
    if (len != n->len || !tb_name_ok(op->id, len, 0))
        return tb_err(b, n, sub,
                      "'%s' is not a valid operator id (use 1 to %d "
                      "letters, digits, '_' and '-')",
                      q, TOPO_ID_MAX);
    uintptr_t first;
    if (topo_strmap_get(&b->ids, op->id, len, &first)) {
        const topo_ynode *fn = topo_ymap_get(b->raw[first].node, "id");
        return tb_err(b, n, sub,
                      "duplicate operator id '%s' (first at line %d column "
                      "%d)",
                      q, fn->line, fn->col);
    }
    if (topo_strmap_put(&b->ids, op->id, len, i) < 0)
        return tb_nomem(b);
    return 0;
}

static int tb_op_type(tb *b, topo_op *op, const topo_ynode *n, const char *path)
{
    char q[TOPO_QUOTE_MAX], sub[TOPO_PATH_MAX];
    tb_path(sub, sizeof sub, "%s.type", path);
    int rc = tb_string(b, n, sub, &topo_def_str, &op->type);
    if (rc < 0)
        return rc;
    op->reg = b->reg ? reg_find(b->reg, op->type) : NULL;
    if (op->reg)
        return 0;
    topo_quote(n->str, n->len, q, sizeof q);
    if (!b->reg || reg_count(b->reg) == 0)
        return tb_err(b, n, sub,
                      "unknown operator type '%s'; no plugins are loaded "
                      "(add a plugin directory with --dir)",
                      q);
    const reg_operator *best = reg_suggest(b->reg, op->type);
    if (best)
        return tb_err(b, n, sub,
                      "unknown operator type '%s'; did you mean '%s'?", q,
                      best->op.name);
    return tb_err(b, n, sub,
                  "unknown operator type '%s' (`weir plugins` lists the "
                  "loaded ones)",
                  q);
}

static int tb_op_parallelism(tb *b, topo_op *op, const topo_ynode *n,
                             const char *path)
{
    char sub[TOPO_PATH_MAX];
    int64_t par = 1;
    tb_path(sub, sizeof sub, "%s.parallelism", path);
    if (n) {
        int rc = tb_int(b, n, sub, &topo_def_par, &par);
        if (rc < 0)
            return rc;
        if (!b->maxpar_bad && par > (int64_t)b->job->max_parallelism)
            return tb_err(b, n, sub,
                          "%lld is above max_parallelism %u; lower it or "
                          "raise max_parallelism",
                          (long long)par, b->job->max_parallelism);
    }
    op->parallelism = (uint32_t)par;
    return 0;
}

/* `chain:`, a boolean; true without it. */
static int tb_op_chain(tb *b, topo_op *op, const topo_ynode *n,
                       const char *path)
{
    char sub[TOPO_PATH_MAX];
    op->chain = 1;
    if (!n)
        return 0;
    tb_path(sub, sizeof sub, "%s.chain", path);
    topo_value v = {0};
    int rc = topo_value_from_node(b->file, sub, topo_op_chain_def(), n, &v,
                                  b->errptr);
    if (rc == 0)
        op->chain = v.b;
    topo_value_clear(&v);
    return rc;
}

static int tb_op_config(tb *b, topo_op *op, const topo_ynode *opnode,
                        const topo_ynode *n, const char *path)
{
    char sub[TOPO_PATH_MAX], who[3 * TOPO_QUOTE_MAX];
    const reg_operator *ro = op->reg;
    const char *plugin =
        ro->plugin && ro->plugin->desc.name ? ro->plugin->desc.name : "?";
    tb_path(sub, sizeof sub, "%s.config", path);
    snprintf(who, sizeof who, "plugin '%s' (operator type '%s', used by '%s')",
             plugin, ro->op.name, op->id ? op->id : "?");
    topo_owner owner = {.what = who};
    const topo_ynode *at = n ? n : opnode;
    return topo_params_build(b->file, sub, at->line, at->col, ro->params,
                             ro->n_params, n, &owner, "parameter", b->col,
                             &op->config, b->errptr);
}

/* The operator's host settings for watermarks (topo_section_defs
 * "watermarks"); only sources may set them. */
static int tb_op_watermarks(tb *b, topo_op *op, const topo_ynode *opnode,
                            const topo_ynode *n, const char *path)
{
    char sub[TOPO_PATH_MAX];
    tb_path(sub, sizeof sub, "%s.watermarks", path);
    if (n && !(op->reg->op.flags & WEIR_OP_SOURCE))
        return tb_err(b, n, sub,
                      "only sources generate watermarks; '%s' (%s) is not a "
                      "source, it forwards the minimum of its inputs",
                      op->id ? op->id : "?", op->type);
    const weir_param_def *const *defs = topo_section_defs("watermarks");
    size_t nd = 0;
    while (defs[nd])
        nd++;
    const topo_ynode *at = n ? n : opnode;
    return topo_params_build(b->file, sub, at->line, at->col, defs, nd, n, NULL,
                             "key", b->col, &op->watermarks, b->errptr);
}

/* One input as written (`e`, at field `sub`) into `in`. */
static int tb_op_input(tb *b, tb_in *in, const topo_ynode *e, const char *sub)
{
    char buf[TOPO_QUOTE_MAX + 32];
    in->node = e;
    if (e->kind == TOPO_YSCALAR && e->type != TOPO_YNULL) {
        in->from = e;
        return 0;
    }
    if (e->kind != TOPO_YMAP)
        return tb_err(b, e, sub,
                      "expected a producer id or a mapping with 'from', "
                      "got %s",
                      topo_ydescribe(e, buf, sizeof buf));
    const topo_ynode *slots[K_IN_N];
    int rc = tb_keys(b, e, sub, topo_in_keys, K_IN_N, "an input", slots);
    if (rc < 0)
        return rc;
    if (!slots[K_FROM])
        return tb_err(b, e, sub,
                      "missing key 'from' (the producing operator's id)");
    in->from = slots[K_FROM];
    in->partition = slots[K_PARTITION];
    in->port = slots[K_PORT];
    char fsub[TOPO_PATH_MAX + 8];
    tb_path(fsub, sizeof fsub, "%s.from", sub);
    if (in->from->kind != TOPO_YSCALAR || in->from->type == TOPO_YNULL)
        return tb_err(b, in->from, fsub, "expected an operator id, got %s",
                      topo_ydescribe(in->from, buf, sizeof buf));
    tb_path(fsub, sizeof fsub, "%s.port", sub);
    if (in->port &&
        (in->port->kind != TOPO_YSCALAR || in->port->type == TOPO_YNULL))
        return tb_err(b, in->port, fsub, "expected an input port name, got %s",
                      topo_ydescribe(in->port, buf, sizeof buf));
    return 0;
}

/* The operator's async I/O settings (topo_section_defs "async"); only an
 * asynchronous operator (async_invoke set) may set them, and it gets the
 * defaults without the section. */
static int tb_op_async(tb *b, topo_op *op, const topo_ynode *opnode,
                       const topo_ynode *n, const char *path)
{
    char sub[TOPO_PATH_MAX];
    tb_path(sub, sizeof sub, "%s.async", path);
    if (n && !op->reg->op.async_invoke)
        return tb_err(b, n, sub,
                      "'%s' (%s) is not an asynchronous operator (its plugin "
                      "has no async_invoke); only those take an 'async' "
                      "section",
                      op->id ? op->id : "?", op->type);
    if (!op->reg->op.async_invoke)
        return 0;
    const weir_param_def *const *defs = topo_section_defs("async");
    size_t nd = 0;
    while (defs[nd])
        nd++;
    const topo_ynode *at = n ? n : opnode;
    return topo_params_build(b->file, sub, at->line, at->col, defs, nd, n, NULL,
                             "key", b->col, &op->async, b->errptr);
}

/* Records the inputs as written; they are resolved once every id is
 * known. */
static int tb_op_inputs(tb *b, size_t i, const topo_ynode *n, const char *path)
{
    char sub[TOPO_PATH_MAX], buf[TOPO_QUOTE_MAX + 32];
    tb_op *raw = &b->raw[i];
    if (!n || (n->kind == TOPO_YSCALAR && n->type == TOPO_YNULL))
        return 0;
    raw->inputs = n;
    tb_path(sub, sizeof sub, "%s.inputs", path);
    if (n->kind != TOPO_YSEQ) {
        raw->inputs_bad = 1;
        return tb_err(b, n, sub,
                      "expected a list of inputs, got %s; write e.g. "
                      "'inputs: [src]'",
                      topo_ydescribe(n, buf, sizeof buf));
    }
    raw->ins = calloc(n->n ? n->n : 1, sizeof *raw->ins);
    if (!raw->ins)
        return tb_nomem(b);
    for (size_t j = 0; j < n->n; j++) {
        tb_in *in = &raw->ins[raw->n_ins++];
        tb_path(sub, sizeof sub, "%s.inputs[%zu]", path, j);
        int rc = tb_go(b, tb_op_input(b, in, n->kids[j], sub), &in->bad);
        if (rc < 0)
            return rc;
        raw->inputs_bad |= in->bad;
    }
    return 0;
}

/* The checks of one operator after its keys: each is reported on its own;
 * what needs the type (config, watermarks) is skipped without one. */
static int tb_operator_parts(tb *b, size_t i, const topo_ynode *n,
                             const topo_ynode *const *slots, const char *path)
{
    topo_op *op = &b->ops[i];
    tb_op *raw = &b->raw[i];
    int rc, id_bad = 0, type_bad = 0;
    if (!slots[K_ID])
        rc = tb_err(b, n, path, "missing key 'id'");
    else
        rc = tb_op_id(b, i, slots[K_ID], path);
    if ((rc = tb_go(b, rc, &id_bad)) < 0)
        return rc;
    b->id_bad |= id_bad;
    if (!slots[K_TYPE])
        rc = tb_err(b, n, path,
                    "missing key 'type' (the operator's name "
                    "in its plugin)");
    else
        rc = tb_op_type(b, op, slots[K_TYPE], path);
    if ((rc = tb_go(b, rc, &type_bad)) < 0)
        return rc;
    if (type_bad || !op->reg) {
        raw->unusable = 1;
        op->reg = NULL;
    }
    if ((rc = tb_go(b, tb_op_parallelism(b, op, slots[K_PAR], path),
                    &raw->par_bad)) < 0)
        return rc;
    if (raw->par_bad)
        op->parallelism = 1;
    if ((rc = tb_go(b, tb_op_chain(b, op, slots[K_CHAIN], path), NULL)) < 0)
        return rc;
    if (!raw->unusable) {
        if ((rc = tb_go(b, tb_op_config(b, op, n, slots[K_CONFIG], path),
                        NULL)) < 0 ||
            (rc =
                 tb_go(b, tb_op_watermarks(b, op, n, slots[K_WATERMARKS], path),
                       NULL)) < 0 ||
            (rc = tb_go(b, tb_op_async(b, op, n, slots[K_ASYNC], path), NULL)) <
                0)
            return rc;
    }
    return tb_go(b, tb_op_inputs(b, i, slots[K_INPUTS], path), NULL);
}

static int tb_operator(tb *b, size_t i, const topo_ynode *n)
{
    char path[TOPO_PATH_MAX], buf[TOPO_QUOTE_MAX + 32];
    tb_path(path, sizeof path, "operators[%zu]", i);
    b->raw[i].node = n;
    if (n->kind != TOPO_YMAP) {
        b->raw[i].unusable = 1;
        b->id_bad = 1;
        return tb_err(b, n, path,
                      "expected an operator (a mapping with id and type), "
                      "got %s",
                      topo_ydescribe(n, buf, sizeof buf));
    }
    const topo_ynode *slots[K_OP_N];
    int rc = tb_keys(b, n, path, topo_op_keys, K_OP_N, "an operator", slots);
    if (rc < 0)
        return rc;
    topo_op *op = &b->ops[i];
    op->line = n->line;
    op->col = n->col;
    return tb_operator_parts(b, i, n, slots, path);
}

static int tb_operators(tb *b, const topo_ynode *root, const topo_ynode *n)
{
    char buf[TOPO_QUOTE_MAX + 32];
    if (!n)
        return tb_err(b, root, NULL,
                      "missing key 'operators' (the list of operators)");
    if (n->kind != TOPO_YSEQ)
        return tb_err(b, n, "operators", "expected a list of operators, got %s",
                      topo_ydescribe(n, buf, sizeof buf));
    if (n->n == 0)
        return tb_err(b, n, "operators",
                      "the list is empty; a job needs at "
                      "least one operator");
    b->ops = calloc(n->n, sizeof *b->ops);
    b->raw = calloc(n->n, sizeof *b->raw);
    if (!b->ops || !b->raw)
        return tb_nomem(b);
    b->n_ops = n->n;
    for (size_t i = 0; i < n->n; i++) {
        int rc = tb_go(b, tb_operator(b, i, n->kids[i]), NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Inputs                                                                    */
/* ------------------------------------------------------------------------ */

static int tb_port_list(const char *const *ports, size_t n, char *buf,
                        size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < n; k++) {
        int w = snprintf(buf + o, cap - o, "%s%s", k ? ", " : "", ports[k]);
        if (w < 0 || (size_t)w >= cap - o)
            break;
        o += (size_t)w;
    }
    return 0;
}

/* Finds port `name` (len bytes) in `ports`; an error names `what`. */
static int tb_port(tb *b, const topo_ynode *at, const char *path,
                   const topo_op *op, int output, const char *name, size_t len,
                   uint32_t *out)
{
    const char *const *ports = output ? op->reg->outputs : op->reg->inputs;
    size_t n = output ? op->reg->n_outputs : op->reg->n_inputs;
    char q[TOPO_QUOTE_MAX], list[512];
    for (size_t k = 0; k < n; k++) {
        if (strlen(ports[k]) == len && !memcmp(ports[k], name, len)) {
            *out = (uint32_t)k;
            return 0;
        }
    }
    topo_quote(name, len, q, sizeof q);
    tb_port_list(ports, n, list, sizeof list);
    const char *best = topo_suggest(name, len, ports, n);
    return tb_err(b, at, path,
                  "operator '%s' (type %s) has no %s port '%s'; its %s "
                  "ports are: %s%s%s%s",
                  op->id, op->type, output ? "output" : "input", q,
                  output ? "output" : "input", list,
                  best ? "; did you mean '" : "", best ? best : "",
                  best ? "'?" : "");
}

/* What tb_from() returns when the input cannot be checked because what it
 * names is broken (already reported). */
#define TB_SKIP 1

/* Resolves `from` ("op" or "op.port"): producer index and port. Returns 0,
 * TB_SKIP, or a negative code. */
static int tb_from(tb *b, size_t i, const tb_in *in, const char *path,
                   topo_input *out)
{
    const topo_ynode *f = in->from;
    char q[TOPO_QUOTE_MAX];
    const char *dot = memchr(f->str, '.', f->len);
    size_t idlen = dot ? (size_t)(dot - f->str) : f->len;
    uintptr_t idx;
    if (!topo_strmap_get(&b->ids, f->str, idlen, &idx)) {
        if (b->col && b->id_bad)
            return TB_SKIP; /* it may be the operator whose id is broken */
        const char **ids = malloc(b->n_ops * sizeof *ids);
        if (!ids)
            return tb_nomem(b);
        size_t n = 0;
        for (size_t k = 0; k < b->n_ops; k++)
            if (b->ops[k].id)
                ids[n++] = b->ops[k].id;
        const char *best = topo_suggest(f->str, idlen, ids, n);
        topo_quote(f->str, idlen, q, sizeof q);
        int rc =
            best ? tb_err(b, f, path,
                          "unknown operator '%s'; did you mean '%s'?", q, best)
                 : tb_err(b, f, path,
                          "unknown operator '%s' (no operator has this "
                          "id)",
                          q);
        free(ids);
        return rc;
    }
    if (idx == i)
        return tb_err(b, f, path,
                      "cycle: %s -> %s (an operator cannot consume its own "
                      "output)",
                      b->ops[i].id, b->ops[i].id);
    const topo_op *prod = &b->ops[idx];
    out->from = (uint32_t)idx;
    if (b->raw[idx].unusable)
        return TB_SKIP; /* no ports known */
    if (dot)
        return tb_port(b, f, path, prod, 1, dot + 1, f->len - idlen - 1,
                       &out->from_port);
    if (prod->reg->n_outputs == 0)
        return tb_err(b, f, path,
                      "operator '%s' (type %s) has no output ports (it is a "
                      "sink)",
                      prod->id, prod->type);
    out->from_port = 0;
    return 0;
}

/* The partitioning of an input and the checks on it; `par_bad` says that
 * the parallelism of the producer or the consumer is not known (so only the
 * word itself is checked). */
static int tb_partition(tb *b, const topo_op *op, const tb_in *in,
                        const char *path, int par_bad, topo_input *out)
{
    const topo_op *prod = &b->ops[out->from];
    char sub[TOPO_PATH_MAX + 16];
    tb_path(sub, sizeof sub, "%s.partition", path);
    if (in->partition) {
        char *word = NULL;
        int rc = tb_string(b, in->partition, sub, &topo_def_partition, &word);
        if (rc < 0)
            return rc;
        for (int k = 0; word && k < 4; k++)
            if (!strcmp(word, topo_partitions[k]))
                out->partition = (topo_partition)k;
        free(word);
    } else {
        out->partition = prod->parallelism == op->parallelism ? TOPO_FORWARD
                                                              : TOPO_REBALANCE;
    }
    const topo_ynode *at = in->partition ? in->partition : in->node;
    const char *apath = in->partition ? sub : path;
    if (par_bad)
        return 0; /* the checks below compare parallelisms */
    if (out->partition == TOPO_FORWARD && prod->parallelism != op->parallelism)
        return tb_err(b, at, apath,
                      "forward needs equal parallelism, but '%s' has %u and "
                      "'%s' has %u; use rebalance, key or broadcast",
                      prod->id, prod->parallelism, op->id, op->parallelism);
    int bcast = out->to_port < 64 &&
                (op->reg->op.broadcast_inputs >> out->to_port & 1u);
    if (bcast && out->partition != TOPO_BROADCAST)
        return tb_err(b, at, apath,
                      "port '%s' of operator '%s' (type %s) is a broadcast "
                      "input, so its input from '%s' must be partitioned by "
                      "broadcast, not %s%s; add 'partition: broadcast'",
                      op->reg->inputs[out->to_port], op->id, op->type, prod->id,
                      topo_partition_name(out->partition),
                      in->partition ? "" : " (the default)");
    if ((op->reg->op.flags & WEIR_OP_KEYED) && op->parallelism > 1 && !bcast &&
        out->partition != TOPO_KEY)
        return tb_err(b, at, apath,
                      "operator '%s' (type %s) keeps keyed state and has "
                      "parallelism %u, so its input from '%s' must be "
                      "partitioned by key, not %s%s; add 'partition: key'",
                      op->id, op->type, op->parallelism, prod->id,
                      topo_partition_name(out->partition),
                      in->partition ? "" : " (the default)");
    return 0;
}

/* One input j of operator i into op->inputs[j]. Returns 0 when it is
 * resolved, TB_SKIP when it is not (its error is collected, or it depends
 * on a broken part), or a negative code. */
static int tb_resolve_input(tb *b, size_t i, size_t j)
{
    topo_op *op = &b->ops[i];
    const tb_in *in = &b->raw[i].ins[j];
    topo_input *t = &op->inputs[j];
    char path[TOPO_PATH_MAX];
    tb_path(path, sizeof path, "operators[%zu].inputs[%zu]", i, j);
    t->line = in->node->line;
    t->col = in->node->col;
    int bad = 0;
    int rc = tb_from(b, i, in, path, t);
    if (rc == TB_SKIP)
        return TB_SKIP;
    if ((rc = tb_go(b, rc, &bad)) < 0 || bad)
        return rc < 0 ? rc : TB_SKIP;
    if (in->port) {
        char sub[TOPO_PATH_MAX + 8];
        tb_path(sub, sizeof sub, "%s.port", path);
        rc = tb_port(b, in->port, sub, op, 0, in->port->str, in->port->len,
                     &t->to_port);
        if ((rc = tb_go(b, rc, &bad)) < 0 || bad)
            return rc < 0 ? rc : TB_SKIP;
    }
    int par_bad = b->raw[i].par_bad || b->raw[t->from].par_bad;
    rc = tb_partition(b, op, in, path, par_bad, t);
    if ((rc = tb_go(b, rc, &bad)) < 0)
        return rc;
    for (size_t k = 0; k < j; k++) {
        const topo_input *o = &op->inputs[k];
        if (b->raw[i].ins[k].bad)
            continue;
        if (o->from == t->from && o->from_port == t->from_port &&
            o->to_port == t->to_port) {
            rc = tb_err(b, in->node, path,
                        "the same input as inputs[%zu] (from '%s' "
                        "into port '%s')",
                        k, b->ops[t->from].id, op->reg->inputs[t->to_port]);
            if ((rc = tb_go(b, rc, &bad)) < 0)
                return rc;
            break;
        }
    }
    return bad ? TB_SKIP : 0;
}

static int tb_resolve(tb *b, size_t i)
{
    topo_op *op = &b->ops[i];
    tb_op *raw = &b->raw[i];
    int source = (op->reg->op.flags & WEIR_OP_SOURCE) != 0;
    if (source && raw->n_ins > 0)
        return tb_err(b, raw->inputs, NULL,
                      "operators[%zu].inputs: operator '%s' (type %s) is a "
                      "source and cannot have inputs",
                      i, op->id, op->type);
    if (!source && raw->n_ins == 0 && !raw->inputs_bad)
        return tb_err(b, raw->inputs ? raw->inputs : raw->node, NULL,
                      "operators[%zu]: operator '%s' (type %s) has no inputs; "
                      "only sources may have none (add e.g. 'inputs: [%s]')",
                      i, op->id, op->type,
                      i && b->ops[i - 1].id ? b->ops[i - 1].id : "src");
    op->inputs = calloc(raw->n_ins ? raw->n_ins : 1, sizeof *op->inputs);
    if (!op->inputs)
        return tb_nomem(b);
    for (size_t j = 0; j < raw->n_ins; j++) {
        int rc = 0;
        if (!raw->ins[j].bad)
            rc = tb_resolve_input(b, i, j);
        if (rc < 0)
            return rc;
        if (rc == TB_SKIP || raw->ins[j].bad) {
            /* Reported, or depends on what was: the later checks skip it. */
            raw->ins[j].bad = 1;
            b->graph_bad = 1;
        }
        op->n_inputs++;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Order                                                                     */
/* ------------------------------------------------------------------------ */

static int tb_cycle(tb *b, const size_t *stack, size_t top, size_t v_pos,
                    size_t u, size_t j)
{
    char msg[1024], path[TOPO_PATH_MAX];
    size_t o = 0;
    const char *v = b->ops[stack[v_pos]].id;
    int w = snprintf(msg, sizeof msg, "%s", v);
    o = w > 0 ? (size_t)w : 0;
    for (size_t k = top + 1; k-- > v_pos;) {
        /* stack[top] .. stack[v_pos + 1], then v again */
        const char *id = k > v_pos ? b->ops[stack[k]].id : v;
        w = snprintf(msg + o, sizeof msg - o, " -> %s", id);
        if (w < 0 || (size_t)w >= sizeof msg - o) {
            memcpy(msg + sizeof msg - 4, "...", 4);
            break;
        }
        o += (size_t)w;
    }
    tb_path(path, sizeof path, "operators[%zu].inputs[%zu]", u, j);
    return tb_err(b, b->raw[u].ins[j].node, path, "cycle: %s", msg);
}

/* Depth-first over inputs in file order: post-order puts producers before
 * consumers; an input that reaches an operator still on the stack closes a
 * cycle. Iterative, so a long chain costs no C stack. */
static int tb_order(tb *b, size_t *order)
{
    size_t n = b->n_ops, n_order = 0, cap = n ? n : 1;
    unsigned char *state = calloc(cap, 1);
    size_t *next = calloc(cap, sizeof *next);
    size_t *stack = malloc(cap * sizeof *stack);
    size_t *pos = malloc(cap * sizeof *pos);
    int rc = 0;
    if (!state || !next || !stack || !pos) {
        rc = tb_nomem(b);
        goto out;
    }
    for (size_t r = 0; r < n && rc == 0; r++) {
        if (state[r])
            continue;
        size_t top = 0;
        stack[0] = r;
        pos[r] = 0;
        state[r] = 1;
        for (;;) {
            size_t u = stack[top];
            if (next[u] < b->ops[u].n_inputs) {
                size_t j = next[u]++;
                size_t v = b->ops[u].inputs[j].from;
                if (state[v] == 1) {
                    rc = tb_cycle(b, stack, top, pos[v], u, j);
                    break;
                }
                if (state[v] == 0) {
                    stack[++top] = v;
                    pos[v] = top;
                    state[v] = 1;
                }
                continue;
            }
            state[u] = 2;
            order[n_order++] = u;
            if (top == 0)
                break;
            top--;
        }
    }
out:
    free(state);
    free(next);
    free(stack);
    free(pos);
    return rc;
}

/* Moves the operators into job->ops in `order`, renumbering inputs. */
static int tb_place(tb *b, const size_t *order)
{
    size_t n = b->n_ops;
    size_t *inv = malloc((n ? n : 1) * sizeof *inv);
    b->job->ops = calloc(n ? n : 1, sizeof *b->job->ops);
    if (!inv || !b->job->ops) {
        free(inv);
        return tb_nomem(b);
    }
    for (size_t k = 0; k < n; k++)
        inv[order[k]] = k;
    for (size_t k = 0; k < n; k++) {
        topo_op *op = &b->job->ops[k];
        *op = b->ops[order[k]];
        memset(&b->ops[order[k]], 0, sizeof *op);
        for (size_t j = 0; j < op->n_inputs; j++)
            op->inputs[j].from = (uint32_t)inv[op->inputs[j].from];
    }
    b->job->n_ops = n;
    free(inv);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                              */
/* ------------------------------------------------------------------------ */

static void topo_op_free(topo_op *op)
{
    free(op->id);
    free(op->type);
    free(op->inputs);
    topo_params_free(&op->config);
    topo_params_free(&op->watermarks);
    topo_params_free(&op->async);
}

void topo_free(topo_job *job)
{
    if (!job)
        return;
    for (size_t k = 0; k < job->n_ops; k++)
        topo_op_free(&job->ops[k]);
    free(job->ops);
    free(job->path);
    free(job->name);
    topo_params_free(&job->runtime);
    topo_params_free(&job->state);
    topo_params_free(&job->checkpoint);
    topo_params_free(&job->restart);
    topo_params_free(&job->metrics);
    free(job);
}

static int tb_root(tb *b, const topo_ynode *root)
{
    const topo_ynode *slots[K_TOP_N];
    int64_t maxpar = 128;
    size_t *order = NULL;
    int rc =
        tb_keys(b, root, "", topo_top_keys, K_TOP_N, "the topology", slots);
    if (rc < 0)
        return rc;
    if ((rc = tb_go(b, tb_job_name(b, slots[K_JOB]), NULL)) < 0)
        return rc;
    if (slots[K_MAXPAR] &&
        (rc = tb_go(b,
                    tb_int(b, slots[K_MAXPAR], "max_parallelism",
                           &topo_def_maxpar, &maxpar),
                    &b->maxpar_bad)) < 0)
        return rc;
    if (b->maxpar_bad)
        maxpar = 128;
    b->job->max_parallelism = (uint32_t)maxpar;
    if ((rc = tb_go(b, tb_sections(b, root, slots), NULL)) < 0)
        return rc;
    int ops_bad = 0;
    if ((rc = tb_go(b, tb_operators(b, root, slots[K_OPERATORS]), &ops_bad)) <
        0)
        return rc;
    if (ops_bad && b->n_ops == 0)
        return WEIR_EINVAL; /* collected: no operators to check further */
    for (size_t i = 0; i < b->n_ops; i++) {
        if (b->raw[i].unusable || !b->ops[i].id) {
            b->graph_bad = 1;
            continue;
        }
        int bad = 0;
        if ((rc = tb_go(b, tb_resolve(b, i), &bad)) < 0)
            return rc;
        b->graph_bad |= bad;
    }
    if (b->graph_bad || b->id_bad)
        return WEIR_EINVAL; /* collected; a cycle needs the whole graph */
    order = malloc((b->n_ops ? b->n_ops : 1) * sizeof *order);
    if (!order)
        return tb_nomem(b);
    rc = tb_go(b, tb_order(b, order), NULL);
    if (rc == 0 && b->col && b->col->errs->n > 0)
        rc = WEIR_EINVAL; /* collected */
    if (rc == 0)
        rc = tb_place(b, order);
    free(order);
    return rc;
}

static int topo_read(FILE *f, const char *path, char **out, size_t *out_len,
                     char **errptr);

/* topo_load_string() and, with a collector `col`, topo_check_string(). */
static int topo_load(const char *name, const char *yaml, size_t len,
                     const reg_registry *reg, topo_collect *col, topo_job **out,
                     char **errptr)
{
    tb b = {.file = name ? name : "topology",
            .errptr = errptr,
            .reg = reg,
            .col = col};
    topo_ydoc *doc = NULL;
    const topo_ynode *root = NULL;
    char buf[TOPO_QUOTE_MAX + 32];
    int rc;
    *out = NULL;
    if (len > TOPO_MAX_FILE_BYTES)
        return topo_err(errptr, b.file, 1, 1, NULL,
                        "the file has %zu bytes, more than the limit of %u",
                        len, TOPO_MAX_FILE_BYTES);
    rc = topo_yparse(b.file, yaml, len, &doc, &root, errptr);
    if (rc < 0)
        return rc;
    if (!root || (root->kind == TOPO_YSCALAR && root->type == TOPO_YNULL)) {
        rc = topo_err(errptr, b.file, root ? root->line : 1,
                      root ? root->col : 1, NULL,
                      "empty topology (expected a mapping with at least "
                      "'operators')");
        goto out;
    }
    if (root->kind != TOPO_YMAP) {
        rc = topo_err(errptr, b.file, root->line, root->col, NULL,
                      "the top level must be a mapping (job, operators, ...), "
                      "not %s",
                      topo_ydescribe(root, buf, sizeof buf));
        goto out;
    }
    b.job = calloc(1, sizeof *b.job);
    if (!b.job || !(b.job->path = strdup(b.file))) {
        rc = tb_nomem(&b);
        goto out;
    }
    rc = tb_root(&b, root);
out:
    for (size_t k = 0; k < b.n_ops; k++) {
        topo_op_free(&b.ops[k]);
        free(b.raw[k].ins);
    }
    free(b.ops);
    free(b.raw);
    topo_strmap_free(&b.ids);
    topo_yfree(doc);
    if (rc < 0) {
        topo_free(b.job);
        return rc;
    }
    *out = b.job;
    return 0;
}

int topo_load_string(const char *name, const char *yaml, size_t len,
                     const reg_registry *reg, topo_job **out, char **errptr)
{
    return topo_load(name, yaml, len, reg, NULL, out, errptr);
}

/* Ends a check: the message of a fatal error (one that stopped loading) is
 * the last entry of `errs`. */
static int topo_check_end(topo_errors *errs, const char *file, int rc,
                          char *msg)
{
    if (rc >= 0) {
        free(msg);
        return rc;
    }
    if (msg && topo_errors_add(errs, file, msg) < 0)
        return WEIR_ENOMEM;
    return rc;
}

int topo_check_string(const char *name, const char *yaml, size_t len,
                      const reg_registry *reg, topo_job **out,
                      topo_errors *errs)
{
    const char *file = name ? name : "topology";
    topo_collect col = {.errs = errs, .file = file};
    int rc = topo_load(file, yaml, len, reg, &col, out, &col.cur);
    if (rc == 0 && errs->n > 0) { /* cannot happen: errors fail the load */
        topo_free(*out);
        *out = NULL;
        rc = WEIR_EINVAL;
    }
    return topo_check_end(errs, file, rc, col.cur);
}

int topo_check_file(const char *path, const reg_registry *reg, topo_job **out,
                    topo_errors *errs)
{
    char *msg = NULL, *buf = NULL;
    size_t len = 0;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int rc = err_set(&msg, WEIR_EIO, "%s: cannot open: %s", path,
                         strerror(errno));
        return topo_check_end(errs, path, rc, msg);
    }
    int rc = topo_read(f, path, &buf, &len, &msg);
    fclose(f);
    if (rc < 0)
        return topo_check_end(errs, path, rc, msg);
    rc = topo_check_string(path, buf, len, reg, out, errs);
    free(buf);
    return rc;
}

/* Reads all of `f` into a malloc'ed buffer, refusing more than
 * TOPO_MAX_FILE_BYTES before parsing anything. */
static int topo_read(FILE *f, const char *path, char **out, size_t *out_len,
                     char **errptr)
{
    struct stat st;
    size_t cap = 65536, len = 0;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
        if (st.st_size > (off_t)TOPO_MAX_FILE_BYTES)
            return topo_err(errptr, path, 1, 1, NULL,
                            "the file has %lld bytes, more than the limit "
                            "of %u",
                            (long long)st.st_size, TOPO_MAX_FILE_BYTES);
        cap = (size_t)st.st_size + 1;
    }
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", path);
        len += fread(buf + len, 1, cap - len, f);
        if (ferror(f)) {
            free(buf);
            return err_set(errptr, WEIR_EIO, "%s: cannot read: %s", path,
                           strerror(errno));
        }
        if (len > TOPO_MAX_FILE_BYTES) {
            free(buf);
            return topo_err(errptr, path, 1, 1, NULL,
                            "the file has more than %u bytes, the limit",
                            TOPO_MAX_FILE_BYTES);
        }
        if (feof(f))
            break;
        if (len == cap) {
            cap = cap * 2 > (size_t)TOPO_MAX_FILE_BYTES + 1
                      ? (size_t)TOPO_MAX_FILE_BYTES + 1
                      : cap * 2;
            char *nb = realloc(buf, cap);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    *out = buf;
    *out_len = len;
    return 0;
}

int topo_load_file(const char *path, const reg_registry *reg, topo_job **out,
                   char **errptr)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(errptr, WEIR_EIO, "%s: cannot open: %s", path,
                       strerror(errno));
    char *buf = NULL;
    size_t len = 0;
    int rc = topo_read(f, path, &buf, &len, errptr);
    fclose(f);
    if (rc < 0)
        return rc;
    rc = topo_load_string(path, buf, len, reg, out, errptr);
    free(buf);
    return rc;
}

int topo_find_op(const topo_job *job, const char *id)
{
    for (size_t k = 0; job && k < job->n_ops; k++) {
        if (!strcmp(job->ops[k].id, id))
            return (int)k;
    }
    return -1;
}

int topo_config_from_yaml(const char *file, const char *yaml, size_t len,
                          const reg_operator *ro, const char *op_id,
                          topo_params *out, char **errptr)
{
    topo_ydoc *doc = NULL;
    const topo_ynode *root = NULL;
    char who[3 * TOPO_QUOTE_MAX], buf[TOPO_QUOTE_MAX + 32];
    const char *f = file ? file : "config";
    memset(out, 0, sizeof *out);
    if (len > TOPO_MAX_FILE_BYTES)
        return topo_err(errptr, f, 1, 1, "config",
                        "%zu bytes, more than the limit of %u", len,
                        TOPO_MAX_FILE_BYTES);
    int rc =
        topo_yparse(f, yaml ? yaml : "", yaml ? len : 0, &doc, &root, errptr);
    if (rc < 0)
        return rc;
    if (root && root->kind != TOPO_YMAP &&
        !(root->kind == TOPO_YSCALAR && root->type == TOPO_YNULL)) {
        rc = topo_err(errptr, f, root->line, root->col, "config",
                      "expected a mapping of parameters, not %s",
                      topo_ydescribe(root, buf, sizeof buf));
        goto out;
    }
    const char *plugin =
        ro->plugin && ro->plugin->desc.name ? ro->plugin->desc.name : "?";
    snprintf(who, sizeof who, "plugin '%s' (operator type '%s', used by '%s')",
             plugin, ro->op.name, op_id ? op_id : "?");
    topo_owner owner = {.what = who};
    rc = topo_params_build(f, "config", root ? root->line : 1,
                           root ? root->col : 1, ro->params, ro->n_params, root,
                           &owner, "parameter", NULL, out, errptr);
out:
    topo_yfree(doc);
    return rc;
}
