/*
 * runtime.h - executing a validated job in this process.
 *
 * rt_start() builds the plan, binds and connects one ZeroMQ PUSH/PULL pair
 * per channel (inproc), and starts one thread per subtask. Each thread opens
 * its plugin instance, runs it (sources: poll(); others: process() per record
 * from its inputs) until every input reached end of stream, calls finish(),
 * forwards end of stream, and closes the instance. The first failure of any
 * subtask cancels the job: every thread stops, closes its instance, and
 * rt_wait() returns the failure with a message naming operator, subtask and
 * the plugin's own message.
 *
 * Thread: rt_start/rt_wait/rt_destroy on one (main) thread; rt_request_stop
 * and rt_done from any thread (they only touch atomics).
 */
#ifndef WEIR_HOST_RUNTIME_H
#define WEIR_HOST_RUNTIME_H

#include <stdint.h>

#include "topology/topology.h"

typedef struct rt_job rt_job;

/* The failure code of a job whose checkpoint cannot be restored into it
 * whatever the number of attempts (a state whose format version the
 * plugin cannot migrate): the worker reports it as unrecoverable, so the
 * supervisor does not restart. */
#define RT_ERESTORE (-101)

/* Totals of one subtask, for reports and tests. */
typedef struct rt_task_stats {
    const char *op_id;
    uint32_t index;
    const char *chained_to; /* the operator whose thread runs this subtask
                               (its producer, runtime/plan.h), or NULL */
    uint64_t records_in;
    uint64_t records_out;
    uint64_t batches_out;
    uint64_t blocked_ns;   /* time spent waiting on full output channels */
    uint64_t late_records; /* records behind the watermark on arrival */
    int64_t watermark;     /* after rt_wait(): the last watermark */
} rt_task_stats;

/* Checkpoint counters of the job. */
typedef struct rt_ckpt_stats {
    uint64_t completed, failed;
    uint64_t last_completed_id;
} rt_ckpt_stats;
rt_ckpt_stats rt_ckpt_stats_get(rt_job *rt);

struct ckpt_manifest;

typedef struct rt_options {
    /* This run's checkpoint directory; checkpoints are taken when it is set
     * and the topology's checkpoint.interval is not 0. */
    const char *run_dir;
    /* The checkpoint to start from and its directory (both NULL for a fresh
     * start); they must outlive the rt_job. */
    const struct ckpt_manifest *restore;
    const char *restore_dir;
    int attempt; /* the worker's attempt number: restarts so far */
    /* Start although the checkpoint holds state of operators the job no
     * longer has (that state is dropped); without it such a restore is
     * refused. */
    int allow_non_restored;
} rt_options;

/* Starts `job` (which must outlive the rt_job). Returns 0, or a negative
 * code with *errptr set; nothing is left running on failure. A failure here
 * (the state directory is locked, a checkpoint does not fit the job) is not
 * cured by trying again; failures of plugins come from rt_wait(). */
int rt_start_with(const topo_job *job, const rt_options *opts, rt_job **out,
                  char **errptr);
/* rt_start_with() without checkpoints and restore. */
int rt_start(const topo_job *job, rt_job **out, char **errptr);

/* Asks the job to stop gracefully: sources stop as if their input ended,
 * and the rest drains and finishes. A second call cancels at once. */
void rt_request_stop(rt_job *rt);

/* Whether every subtask thread has ended. */
int rt_done(const rt_job *rt);

/* Joins every thread and tears down sockets and the ZeroMQ context.
 * Returns 0 when the job finished (or was stopped) cleanly, or the failing
 * subtask's code with its message in *errptr. */
int rt_wait(rt_job *rt, char **errptr);

/* Per-subtask totals; callable while the job runs (values are then a
 * moment's reading) and after rt_wait() until rt_destroy(). Subtasks are
 * numbered as in the plan: operators in topological order, then index. */
uint32_t rt_task_count(const rt_job *rt);
rt_task_stats rt_task_stats_get(const rt_job *rt, uint32_t i);

/* One declared keyed state of a subtask, as of the subtask's last sample
 * of its statistics (every state.stats_interval, after a live change of
 * its state, and when it closes). */
typedef struct rt_state_info {
    char name[64];
    int kind;         /* weir_state_kind */
    int has_ttl;      /* 0: no TTL in force */
    int64_t ttl_ms;   /* in force (an override included) */
    uint64_t keys;    /* estimated */
    uint64_t bytes;   /* estimated live bytes */
    uint64_t expired; /* by read, sweep and compaction */
    int leak_suspected;
    /* TTL settings (state/state_admin.h) */
    int domain;              /* weir_time_domain in force */
    int64_t declared_ttl_ms; /* as the operator declared it */
    int declared_domain;
    int ttl_override;    /* a `weir ctl state ttl` override is in force */
    int rewrite_pending; /* its rewrite of existing entries goes on */
    uint64_t rewritten;  /* entries it rewrote so far in this run */
    /* expiry and leak detail */
    uint64_t expired_read, expired_sweep, expired_compaction, hook_calls;
    uint32_t growth_streak; /* consecutive samples with more keys */
    int64_t sampled_ms;     /* wall clock of the sample */
} rt_state_info;

/* Copies up to `cap` states of subtask i into out[]; returns how many the
 * subtask has (0 before its first sample). Thread: any. */
size_t rt_task_states(rt_job *rt, uint32_t i, rt_state_info *out, size_t cap);

/* The job's metrics (plugins' and the host's) in the Prometheus text
 * format, malloc'ed; callable while the job runs and after rt_wait(). */
char *rt_metrics_render(rt_job *rt);

void rt_destroy(rt_job *rt);

/* Checks that checkpoint `m` (in `restore_dir`) fits `job`: it is of this
 * job, has its max_parallelism, and every operator it holds exists (unless
 * allow_non_restored) and can take its subtasks (plugin snapshots cannot
 * be rescaled). 0, or WEIR_EINVAL with the reason. rt_start_with() and the
 * test harness call it. */
int rt_restore_check(const topo_job *job, const struct ckpt_manifest *m,
                     const char *restore_dir, int allow_non_restored,
                     char **errptr);

/* Rebuilds the working state directories of keyed operator `op` under
 * `dir` (<state.dir>/<job>/<op id>) from checkpoint `m` in `restore_dir`:
 * a copy of each subtask's state when the parallelism is unchanged, else
 * the key groups redistributed over the new subtasks. */
int rt_restore_op_state(const topo_op *op, const struct ckpt_manifest *m,
                        const char *restore_dir, const char *dir,
                        char **errptr);

#endif
