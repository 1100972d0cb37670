/*
 * task.h - one subtask: its thread, its plugin instance, its channels.
 *
 * Private to runtime/: runtime.c creates tasks and their sockets, task.c
 * runs a task's loop on its thread, api.c implements weir_host_api on top of
 * a task (the weir_ctx a plugin receives is the first member of its task).
 * The test harness (testing/harness.c) is the one user outside runtime/: it
 * builds a job of one task without channels and drives it on the caller's
 * thread, with the `capture` and `clock` hooks of rt_job.
 */
#ifndef WEIR_HOST_TASK_H
#define WEIR_HOST_TASK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "runtime/guard.h"
#include "runtime/plan.h"
#include "runtime/wire.h"
#include "topology/topology.h"

/* Where a task's records go instead of its channels (the test harness,
 * testing/harness.c): called by task_emit() after its checks, on the
 * task's thread. Returns 0 or a negative code, which weir_emit returns. */
typedef int (*task_capture_fn)(void *arg, uint32_t port, const void *key,
                               size_t key_len, int64_t ts, const void *value,
                               size_t value_len);
/* A processing-time clock in ms since the epoch (the test harness's fake
 * one). */
typedef int64_t (*task_clock_fn)(void *arg);

/* The running job (rt_job in runtime.h), shared by its tasks. */
typedef struct rt_job {
    const topo_job *job;
    plan *plan;
    void *zctx;
    struct task *tasks;
    uint32_t n_tasks;
    struct metrics_registry *metrics; /* plugin and host metrics */
    /* keyed state (runtime/keyed.h) */
    struct state_env *senv; /* NULL when no operator is keyed */
    int state_lock_fd;      /* flock on <state.dir>/<job>/LOCK, or -1 */
    size_t sweep_batch;
    /* checkpoints (runtime/coord.h) */
    const char *run_dir; /* NULL: no checkpoints */
    int ck_enabled, ck_exactly_once;
    int64_t ck_interval_ms, ck_min_pause_ms, ck_timeout_ms;
    uint32_t ck_retain;
    int64_t ck_tolerable_failed; /* -1: any number */
    int64_t ck_failed_in_row;    /* consecutive failures, under ck_lock */
    int ck_requested;            /* a checkpoint was asked for (control) */
    uint64_t ck_last_failed;     /* id of the newest failed checkpoint */
    pthread_t ck_thread;
    int ck_thread_started;
    pthread_mutex_t ck_lock; /* guards the ck_ fields below */
    pthread_cond_t ck_cond;
    int ck_stop;
    uint64_t ck_next_id;  /* id of the next checkpoint */
    uint64_t ck_inflight; /* checkpoint in progress, or 0 */
    int ck_inflight_final;
    int64_t ck_inflight_ms, ck_inflight_ns; /* trigger times */
    uint32_t ck_acks;
    int ck_declined;
    struct coord_ack_info *ck_info; /* per task, for the in-flight id */
    uint8_t *ck_acked;              /* per task */
    uint8_t *ck_finished;           /* per task */
    uint32_t ck_n_finished;
    int ck_final_done;
    int64_t ck_last_end_ns;
    _Atomic uint64_t ck_completed;
    struct ckpt_sum_cache *ck_sums;
    uint64_t ck_n_completed, ck_n_failed;
    double ck_last_ms, ck_last_sync_ms, ck_last_align_ms; /* of the newest */
    uint64_t ck_last_bytes;                               /* of the newest */
    int ck_bcast_warned; /* differing broadcast copies were logged */
    int attempt;         /* the worker's attempt number */
    int allow_non_restored;
    int64_t retry_timeout_ms; /* runtime.retry_timeout */
    /* restore: the checkpoint this run starts from, or NULL */
    const struct ckpt_manifest *restore;
    const char *restore_dir;
    /* settings from the topology's runtime section */
    uint32_t batch_size;
    size_t batch_bytes;
    int64_t buffer_timeout_ns;
    int channel_capacity;
    /* control */
    atomic_int stopping;       /* graceful stop requested: sources end */
    atomic_int stop_requested; /* by rt_request_stop (not end of input) */
    atomic_int cancelled;      /* stop now: a task failed or a second stop */
    atomic_int n_running;
    atomic_int n_opened; /* subtasks whose open (and restore) succeeded */
    /* the test harness (testing/harness.c): NULL in a job */
    task_capture_fn capture; /* emits go here, not to channels */
    void *capture_arg;
    task_clock_fn clock; /* weir_now() and the stores' processing time */
    void *clock_arg;
    pthread_mutex_t lock; /* guards error */
    char *error;          /* first failure */
    int error_code;
} rt_job;

struct task;
/* Records the first failure of the job and cancels every task. */
void rt_fail(rt_job *rt, int code, const char *msg);

/* One outgoing channel: its PUSH socket and the batch being filled; or,
 * for a chained channel (plan_channel.chained), the consumer that runs in
 * this task's thread, whose input `chain_input` it is (no socket, no
 * batch: records and control messages are delivered by call). */
typedef struct task_out {
    void *sock;
    wire_batch batch;
    uint32_t channel;
    struct task *chain;
    uint32_t chain_input;
} task_out;

/* One route of an output port (see plan_route), resolved to task_outs. */
typedef struct task_route {
    topo_partition partition;
    uint32_t n;
    task_out **outs;
    uint64_t rr; /* next target for rebalance */
} task_route;

typedef struct task_port {
    task_route *routes;
    uint32_t n_routes;
} task_port;

/* Which callback the plugin is in: gates services (emit is refused in open
 * and close; current_key exists only in keyed callbacks). */
enum task_phase {
    TASK_PHASE_NONE = 0,
    TASK_PHASE_OPEN,
    TASK_PHASE_RUN, /* process, poll, finish, timers, watermark */
    TASK_PHASE_CLOSE,
    TASK_PHASE_MIGRATE /* migrate_state, after restore */
};

typedef struct task {
    weir_ctx ctx; /* first: plugins get &task->ctx */
    struct rt_job *rt;
    const plan_subtask *ps;
    const topo_op *op;
    const reg_operator *reg;
    char who[96]; /* "op#index" for logs */
    void *self;   /* the plugin instance */
    int opened;
    enum task_phase phase;
    guard_mark guard; /* the plugin callback running (runtime/guard.h) */
    pthread_t thread;
    int thread_started;
    atomic_int done;

    /* inputs */
    void **in_socks;
    uint32_t *in_port; /* consumer input port of each input */
    uint8_t *in_ended;
    uint32_t n_in, n_ended;
    wire_reader reader;

    /* outputs */
    task_out *outs;
    uint32_t n_outs;
    task_port *ports;
    uint32_t n_ports;

    /* current record (keyed callbacks) */
    const void *cur_key;
    size_t cur_key_len;
    int has_key;
    /* keyed_fire_timers: the code the plugin's on_timer() failed with (0:
     * none), so that the job's message is the plugin's own. */
    int timer_cb_rc;

    /* event time */
    _Atomic int64_t wm; /* this subtask's watermark (readable by rt stats) */
    int64_t *in_wm;     /* per input: its latest watermark */
    uint8_t *in_idle;   /* per input: the producer declared itself idle */
    int out_idle;       /* this subtask told its consumers it is idle */
    /* sources: watermark generation (topology `watermarks:`) */
    int64_t max_ts;       /* largest event time emitted */
    int64_t wm_sent;      /* last watermark sent */
    int64_t wm_next_ns;   /* when to send the next one */
    int64_t last_emit_ns; /* when the source last emitted */
    uint64_t emitted_seen;
    int64_t wm_delay_ms, wm_interval_ns, wm_idle_ns;

    /* checkpoints (runtime/coord.h) */
    _Atomic uint64_t ck_trigger; /* requested by the coordinator */
    uint64_t ck_aligning;        /* barrier id being aligned, or 0 */
    uint8_t *in_barrier;         /* per input: barrier ck_aligning arrived */
    int64_t align_start_ns;
    uint64_t ck_taken;    /* last checkpoint this task took part in */
    uint64_t ck_notified; /* last checkpoint notified to the plugin */
    int finished;         /* input ended, finish() ran, EOS sent */
    char *snap_buf;       /* weir_snapshot_write() data */
    size_t snap_len, snap_cap;
    int in_snapshot;

    /* broadcast state (runtime/bcast.h) */
    struct bcast_set *bcast; /* NULL until declared or restored */

    /* async I/O (runtime/async.h): NULL unless the operator is async */
    struct async_q *async;

    /* keyed state and timers (runtime/keyed.h) */
    struct state_store *store; /* opened on the first state_declare */
    int64_t next_sample_ns, sample_every_ns;
    /* live state changes (keyed_admin_post): applied at the next barrier */
    pthread_mutex_t admin_lock; /* guards the two below */
    struct keyed_admin_msg *admin_q;
    int admin_closed; /* the store is closed: nothing is taken any more */
    /* the states' statistics of the last sample, for other threads */
    pthread_mutex_t pub_lock;
    struct rt_state_info *pub;
    size_t n_pub;

    /* operator chaining (plan_chainable): a member of a chain has no thread
     * of its own; the chain's head runs it. */
    struct task *chain_up;   /* the task whose emits call this one, or NULL */
    struct task *chain_head; /* the task whose thread runs this one (itself
                                when it is not chained to another) */
    struct task **chain;     /* the head only: its members, upstream first */
    uint32_t n_chain;
    /* Nonzero while the thread is in a callback of a chained member called
     * from this task (the watchdog watches the member's mark instead). */
    atomic_int chain_busy;

    /* failure */
    char *error;   /* last weir_set_error message of the plugin */
    int exit_code; /* 0, or the failing code */

    /* host API checks (runtime/api.c), set when the thread starts */
    size_t max_record;      /* runtime.max_record_size, bytes */
    atomic_int api_misused; /* a misuse of the host API was logged */

    /* totals: written by the task's thread only, readable from any */
    _Atomic uint64_t records_in, records_out, batches_out, blocked_ns;
    _Atomic uint64_t late_records; /* event time below the watermark */
} task;

/* Adds to a single-writer counter. A relaxed load and store compile to plain
 * moves, unlike an atomic add, and readers still see whole values. */
#define TASK_COUNT(c, n)                                                       \
    atomic_store_explicit(                                                     \
        &(c), atomic_load_explicit(&(c), memory_order_relaxed) + (n),          \
        memory_order_relaxed)

/* The thread body: runs the task until it finishes, fails or is cancelled.
 * The thread is the task's owner: task_self() returns the task on it. */
void *task_main(void *arg);

/* The task whose thread calls, or NULL on any thread that is not running
 * task_main() (a thread a plugin started, the main thread). The host
 * services check with it that a ctx is used on its own subtask's thread.
 * Inline, as it is on the way into every service: the thread-local
 * variable is written by task_main() only. */
extern _Thread_local task *task_owner;
static inline task *task_self(void)
{
    return task_owner;
}

/* Appends a record to output port `port`, on the task's thread. The caller
 * (weir_emit, runtime/api.c) has checked the arguments: port < n_ports, no
 * NULL with a non-zero length (NULL with 0 is fine), key_len + value_len at
 * most max_record. Returns 0; WEIR_ESTATE outside the run phase (open and
 * close), with a message in t->error; or the channel's error. */
int task_emit(task *t, uint32_t port, const void *key, size_t key_len,
              int64_t ts, const void *value, size_t value_len);

/* Fails the task (and so the job) with a message naming the operator, the
 * subtask, `what` (the callback or step) and t->error or the code's
 * description. Returns `code`. Subtask thread. */
int task_fail(task *t, const char *what, int code);

/* Opens the instance of `t` as a run does: its keyed store, its broadcast
 * and async state restored, open(), the plugin's snapshot restored, keyed
 * state migrated. Thread: the task's own. Returns 0, or the code of a
 * failure already recorded with task_fail(). */
int task_open_instance(task *t);

/* Moves the subtask's watermark to `wm` (larger than t->wm): event-time
 * timers up to it fire, on_watermark() hears of it, and it goes downstream
 * (except WEIR_WATERMARK_MAX, which end of stream implies). For
 * runtime/async.c, which holds watermarks back behind requests in flight.
 * Returns 0 or a negative code. Subtask thread. */
int task_set_watermark(task *t, int64_t wm);

/* Monotonic clock in ns. */
int64_t task_mono_ns(void);
/* Wall clock (processing time) in ms. */
int64_t task_wall_ms(void);

#endif
