/*
 * bootstrap.h - a savepoint built offline from JSON lines (`weir state
 * bootstrap`), so that `weir run --from SAVEPOINT JOB.yaml` starts with
 * that keyed state.
 *
 * Input: one JSON object per line (empty lines skipped), by state kind:
 *   value: {"key": K, "value": V}
 *   map:   {"key": K, "user_key": U, "value": V}   (one map entry a line)
 *   list:  {"key": K, "value": [V, ...]}           (the whole list a line)
 * each with an optional "expiry": ms since the epoch (or null: never). K and
 * U are keys as mpjson.h reads them (string, integer as its decimal text,
 * or {"$base64": ...}); V is a value in the chosen mpj_format (msgpack:
 * any JSON). The members "subtask" and "key_group" of `weir state dump`
 * output are accepted and ignored (the placement is recomputed), so a
 * dump can be bootstrapped again. Any other member, a missing one, a key
 * (with its user key) given twice or a key over 65000 bytes is an error
 * naming the file and the line.
 *
 * Output: the directory `out` (which must not exist, or be empty) in the
 * checkpoint layout (schemas/checkpoint-manifest.md): one state directory
 * <op>-<i>/state per subtask i of the operator, written by
 * statetool/writer.h, holding the state's entries of the key groups that
 * subtask owns, computed as the runtime does (plan_key_group(),
 * plan_kg_to_index() with the job's max_parallelism); an entry with an
 * expiry also gets its expiry index entry (in the time domain given).
 * Then MANIFEST.json, with checksums and "savepoint": true, id 0, the
 * job's name and max_parallelism, one task per subtask and no other
 * operator (they start fresh at restore).
 *
 * Thread: any one thread. Errors: 0 or a negative WEIR_E* code with a
 * one-line message: WEIR_EINVAL for bad options or input (naming the
 * operator, the option or FILE:LINE), WEIR_EIO for the file system.
 */
#ifndef WEIR_HOST_STATETOOL_BOOTSTRAP_H
#define WEIR_HOST_STATETOOL_BOOTSTRAP_H

#include <stdint.h>

#include "statetool/mpjson.h"
#include "topology/topology.h"

#include "weir/weir.h"

typedef struct boot_options {
    const topo_job *job;
    const char *op_id;
    const char *state;    /* the state's name, as the operator declares it */
    weir_state_kind kind; /* 0 means WEIR_STATE_VALUE */
    const char *input;    /* JSON lines */
    const char *out;      /* the savepoint directory */
    uint32_t parallelism; /* the operator's in the savepoint; 0: the job's */
    mpj_format format;    /* of the values */
    weir_time_domain ttl_domain; /* of the expiry stamps given */
} boot_options;

typedef struct boot_stats {
    uint64_t lines;   /* input lines holding an object */
    uint64_t keys;    /* distinct keys */
    uint64_t entries; /* state entries written (map entries count each) */
    uint32_t parallelism;
} boot_stats;

int boot_savepoint(const boot_options *o, boot_stats *stats, char **errptr);

#endif
