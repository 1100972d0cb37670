/*
 * rescale.h - redistributing a keyed operator's checkpointed state over a
 * new parallelism, by key group.
 *
 * Every entry of a subtask's store starts with, or carries at a fixed
 * offset, the key group of its key (state keys at 0, expiry index keys at
 * 11, timer keys at 9; statetool/entry.h). The key group never changes
 * with the parallelism (xxh3 of the key modulo max_parallelism), and new
 * subtask j owns the contiguous key groups plan_kg_range(j) gives. So the
 * store of new subtask j is built from the old subtasks whose ranges
 * overlap j's: each old subtask's state is read as a restore sees it (the
 * RocksDB checkpoint read-only, the delta applied: statetool/view.h), and
 * every entry of every state, of the timers and of the expiry index goes
 * to the new subtask that owns its key group (plan_kg_to_index()), with
 * its bytes and expiry stamp unchanged. Each old store is read once.
 *
 * State ids are per store; the new stores take them from the old ones when
 * those agree, and renumber a state whose id differs between old subtasks
 * (its index entries with it). A state must have the same kind in every
 * old subtask. The result holds no delta (it is folded in): a restore of a
 * rescaled operator must not apply the old subtasks' delta files again.
 *
 * Thread: any one thread; nothing is shared. Errors: 0 or a negative
 * WEIR_E* code with a one-line message naming the operator and the
 * directory or file at fault (WEIR_EIO for damaged state, WEIR_EINVAL for
 * state that cannot be merged).
 */
#ifndef WEIR_HOST_STATETOOL_RESCALE_H
#define WEIR_HOST_STATETOOL_RESCALE_H

#include <stdint.h>

struct ckpt_manifest;

/* What a rescale moved, for the log. */
typedef struct rsc_stats {
    uint32_t from, to; /* old and new parallelism */
    uint64_t entries;  /* state entries */
    uint64_t timers;
    uint64_t index; /* expiry index entries */
} rsc_stats;

/*
 * Builds <dst>/<j> for every j in [0, new_par) from the state of operator
 * `op_id` in checkpoint `m` (directory `chk_dir`), whose parallelism there
 * may be anything. `dst` is created if needed; <dst>/<j> must not exist.
 * `stats` may be NULL.
 */
int rsc_redistribute(const struct ckpt_manifest *m, const char *chk_dir,
                     const char *op_id, uint32_t new_par, const char *dst,
                     rsc_stats *stats, char **errptr);

#endif
