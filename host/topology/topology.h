/*
 * topology.h - the job file: parsing, validation, and the validated model.
 *
 * A topology file is YAML (see schemas/topology.schema.json and
 * examples/). topo_load_file() parses it with libyaml, validates it fully
 * against the schema and against each operator's parameter table from the
 * plugin registry, and returns a model in which every value has been
 * checked, converted (durations to ms, sizes to bytes) and defaulted.
 *
 * Every error message has the form
 *   FILE:LINE:COLUMN: FIELD.PATH: what is wrong[; hint]
 * e.g. "job.yaml:12:7: operators[1].config.windw: unknown parameter; did you
 * mean 'window'?". topo_load_file() stops at the first error;
 * topo_check_file() goes on and reports every independent error (a check
 * that depends on a part already found broken is skipped, so that one
 * mistake is reported once).
 *
 * Thread: the functions are reentrant; a loaded topo_job is read-only and
 * may be shared by threads.
 */
#ifndef WEIR_HOST_TOPOLOGY_H
#define WEIR_HOST_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>

#include "plugin/registry.h"

#include "weir/weir.h"

/* Limits that keep a hostile file from exhausting the host. */
#define TOPO_MAX_FILE_BYTES (1024u * 1024)
#define TOPO_MAX_NODES      1000000u
#define TOPO_MAX_DEPTH      64u

/* One validated parameter value. Every def of the table has one entry; an
 * entry with is_set == 0 was neither given nor defaulted. */
typedef struct topo_value {
    const weir_param_def *def;
    int is_set;
    int from_default;
    int b;     /* BOOL */
    int64_t i; /* INT, DURATION (ms), SIZE (bytes) */
    double d;  /* DOUBLE; also INT/DURATION/SIZE converted */
    char *str; /* STRING, ENUM: the text (NUL-terminated copy) */
    size_t str_len;
    void *mp; /* every type: the value encoded as msgpack */
    size_t mp_len;
    int line, col; /* where it was set (0 for defaults) */
} topo_value;

typedef struct topo_params {
    topo_value *v;
    size_t n;
} topo_params;

/* The value named `name`, or NULL when the table has no such parameter. */
const topo_value *topo_param(const topo_params *p, const char *name);
/* Shortcuts for host-defined sections, whose parameters all have defaults:
 * they return the value, or 0 / NULL for an unknown name. */
int64_t topo_param_int(const topo_params *p, const char *name);
double topo_param_double(const topo_params *p, const char *name);
const char *topo_param_str(const topo_params *p, const char *name);

typedef enum topo_partition {
    TOPO_FORWARD = 0,   /* subtask i -> subtask i; equal parallelism */
    TOPO_REBALANCE = 1, /* round robin over all consumers */
    TOPO_KEY = 2,       /* hash(key) -> key group -> consumer */
    TOPO_BROADCAST = 3  /* every record to every consumer */
} topo_partition;

const char *topo_partition_name(topo_partition p);

typedef struct topo_input {
    uint32_t from;      /* index of the producing operator in job->ops */
    uint32_t from_port; /* output port index of the producer */
    uint32_t to_port;   /* input port index of this operator */
    topo_partition partition;
    int line, col;
} topo_input;

typedef struct topo_op {
    char *id;
    char *type; /* operator name in the registry */
    const reg_operator *reg;
    uint32_t parallelism;
    topo_input *inputs;
    size_t n_inputs;
    topo_params config;     /* validated against reg->params */
    topo_params watermarks; /* topo_section_defs("watermarks"); sources */
    topo_params async;      /* topo_section_defs("async"): set (defaults
                               included) for operators with async_invoke,
                               empty (n == 0) for the others */
    int chain;              /* `chain:` (default 1); 0 keeps the operator
                               out of operator chains (runtime/plan.h) */
    int line, col;
} topo_op;

typedef struct topo_job {
    char *path; /* as given to topo_load_file() */
    char *name; /* `job:`, or the file's stem */
    uint32_t max_parallelism;
    topo_op *ops; /* topologically sorted: producers before consumers */
    size_t n_ops;
    /* Host sections; see topo_section_defs() for their parameters. */
    topo_params runtime;
    topo_params state;
    topo_params checkpoint;
    topo_params restart;
    topo_params metrics;
} topo_job;

/* Loads and validates `path`. Returns 0 and *out, or a negative code with
 * the message in *errptr. */
int topo_load_file(const char *path, const reg_registry *reg, topo_job **out,
                   char **errptr);
/* Same from memory; `name` is used as the file name in messages. */
int topo_load_string(const char *name, const char *yaml, size_t len,
                     const reg_registry *reg, topo_job **out, char **errptr);
void topo_free(topo_job *job);

/* The most errors topo_check_file() collects; it stops after them. */
#define TOPO_MAX_ERRORS 100

/* One error found in a topology file. */
typedef struct topo_error {
    char *msg;        /* the whole message, as topo_load_file() gives it */
    int line, col;    /* 1-based; 0 when the message has no position */
    char *field;      /* the field path ("operators[1].config.window"), or
                         NULL when the message names none */
    const char *what; /* points into msg: the text after position and field */
} topo_error;

/* The errors of one file, in the order the loader found them (file order
 * within each pass: keys and sections, operators, inputs, the graph). */
typedef struct topo_errors {
    topo_error *v;
    size_t n;
    int truncated; /* 1 when loading stopped at TOPO_MAX_ERRORS */
} topo_errors;

/*
 * Loads and validates `path` like topo_load_file(), but collects every
 * error instead of stopping at the first. Returns 0 and *out when the file
 * is valid (errs stays empty); otherwise a negative code with *out NULL and
 * at least one entry in *errs (errs->n == 0 only for WEIR_ENOMEM when even
 * that message could not be stored). A file that cannot be read or parsed
 * as YAML has exactly one error. The caller topo_errors_free()s errs in
 * either case.
 */
int topo_check_file(const char *path, const reg_registry *reg, topo_job **out,
                    topo_errors *errs);
/* Same from memory; `name` is used as the file name in messages. */
int topo_check_string(const char *name, const char *yaml, size_t len,
                      const reg_registry *reg, topo_job **out,
                      topo_errors *errs);
void topo_errors_free(topo_errors *errs);

/* The index of operator `id` in job->ops, or -1. */
int topo_find_op(const topo_job *job, const char *id);

/* Parses a duration ("250ms", "10s", "5m", "2h", "7d", or a bare number of
 * ms) or a size ("512", "4KiB", "64MiB", "1GiB", "10KB", "1MB"). Returns 0,
 * or WEIR_EINVAL with a reason in *errptr. */
int topo_parse_duration(const char *s, size_t len, int64_t *ms, char **errptr);
int topo_parse_size(const char *s, size_t len, int64_t *bytes, char **errptr);

/* Validates a YAML-less parameter set (used by tests and by host sections):
 * `names`/`values` are n textual key/value pairs. */
int topo_params_from_strings(const weir_param_def *const *defs, size_t n_defs,
                             const char *const *names,
                             const char *const *values, size_t n,
                             topo_params *out, char **errptr);
void topo_params_free(topo_params *p);

/* Validates the YAML text yaml[0..len) (a mapping, or empty) as the
 * `config:` of an operator `op_id` of type `ro`, exactly as topo_load does
 * for a job file, into *out (one value per parameter of ro). Messages read
 * "FILE:LINE:COLUMN: config.NAME: what is wrong", `file` naming the text
 * (NULL: "config"). Used by the test harness (testing/harness.h). On
 * failure *out is left empty. */
int topo_config_from_yaml(const char *file, const char *yaml, size_t len,
                          const reg_operator *ro, const char *op_id,
                          topo_params *out, char **errptr);

/* NULL-terminated parameter tables of the host sections ("runtime", "state",
 * "checkpoint", "restart", "metrics", and the per-operator "watermarks" and
 * "async");
 * NULL for an unknown section. */
const weir_param_def *const *topo_section_defs(const char *section);

/* The definition of the per-operator key `chain` (a boolean, default
 * true). */
const weir_param_def *topo_op_chain_def(void);

#endif
