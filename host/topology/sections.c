/*
 * sections.c - the parameter tables of the host's own topology sections
 * (runtime, state, checkpoint, restart, metrics). They are ordinary
 * weir_param_def tables, validated by the code that validates plugin
 * parameters; every entry has a default. schemas/topology.schema.json
 * describes the same keys, and a test keeps the two in step.
 */
#include <string.h>

#include "topology/topo_internal.h"

#define P(name_, type_, dflt_, flags_, min_, max_, desc_)                      \
    {                                                                          \
        .size = sizeof(weir_param_def), .flags = (flags_), .name = (name_),    \
        .type = (type_), .default_value = (dflt_), .min = (min_),              \
        .max = (max_), .description = (desc_)                                  \
    }
#define MIN    WEIR_PARAM_HAS_MIN
#define MINMAX (WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX)

/* --- runtime --- */
static const weir_param_def rt_batch_size =
    P("batch_size", WEIR_PARAM_INT, "256", MINMAX, 1, 65536,
      "Records per message on a channel: larger batches raise throughput "
      "and latency.");
static const weir_param_def rt_buffer_timeout =
    P("buffer_timeout", WEIR_PARAM_DURATION, "2ms", MINMAX, 0, 60000,
      "Longest time a partly filled batch waits before it is sent.");
static const weir_param_def rt_channel_capacity =
    P("channel_capacity", WEIR_PARAM_INT, "64", MINMAX, 1, 1048576,
      "Batches buffered per channel before the producer blocks (back "
      "pressure; the ZeroMQ high-water mark).");
static const weir_param_def rt_lock_wait =
    P("lock_wait", WEIR_PARAM_DURATION, "10s", MINMAX, 0, 3600000,
      "How long a worker waits for the lock on its state directory while "
      "another process holds it (such as the worker of a run that was just "
      "killed, whose threads are still exiting) before it gives up with "
      "exit code 5; a run of a job that another weir run is running is "
      "refused after at most 1s.");
static const weir_param_def rt_stop_timeout =
    P("stop_timeout", WEIR_PARAM_DURATION, "30s", MINMAX, 100, 86400000,
      "After SIGINT or SIGTERM, how long the job may take to stop "
      "gracefully before the worker is ended by force (exit code 1).");

static const weir_param_def rt_callback_timeout =
    P("callback_timeout", WEIR_PARAM_DURATION, "60s", MIN, 0, 0,
      "A subtask inside one plugin callback for longer than this is "
      "reported (operator, subtask, callback, plugin) and the worker ends, "
      "to be restarted by the restart strategy; 0 disables the watchdog.");
static const weir_param_def rt_retry_timeout =
    P("retry_timeout", WEIR_PARAM_DURATION, "10s", MINMAX, 0, 86400000,
      "How long a record that process() answers with WEIR_ERETRY is "
      "offered again (after 1 ms, doubling up to 1 s) before the subtask "
      "fails.");
static const char *const rt_file_accesses[] = {"private", "group", "world",
                                               "inherit", NULL};
static const weir_param_def rt_file_access = {
    .size = sizeof(weir_param_def),
    .name = "file_access",
    .type = WEIR_PARAM_ENUM,
    .default_value = "private",
    .choices = rt_file_accesses,
    .description = "Who may read what weir creates (state, checkpoints, "
                   "run directories, sink output; RocksDB's files too): "
                   "private (umask 077: directories 0700, files 0600), group "
                   "(umask 027: 0750, 0640), world (umask 022: 0755, 0644), "
                   "or inherit (the umask weir was started with)."};
static const weir_param_def rt_max_record_size =
    P("max_record_size", WEIR_PARAM_SIZE, "16MiB", MINMAX, 1, 1073741824,
      "Largest record an operator may emit (key plus value bytes) and "
      "largest value it may put into keyed state; larger ones are refused "
      "with WEIR_EINVAL. At most 1GiB.");
static const weir_param_def rt_chaining =
    P("chaining", WEIR_PARAM_BOOL, "true", 0, 0, 0,
      "Runs an operator in the thread of its producer when the two are "
      "chainable (a forward edge of equal parallelism that is the "
      "producer's only output and the consumer's only input, neither "
      "asynchronous nor with chain: false): records are passed by call "
      "instead of through a channel. false runs every subtask in its own "
      "thread.");
static const weir_param_def *const topo_runtime_defs[] = {&rt_batch_size,
                                                          &rt_buffer_timeout,
                                                          &rt_channel_capacity,
                                                          &rt_lock_wait,
                                                          &rt_stop_timeout,
                                                          &rt_callback_timeout,
                                                          &rt_retry_timeout,
                                                          &rt_file_access,
                                                          &rt_max_record_size,
                                                          &rt_chaining,
                                                          NULL};

/* --- state --- */
static const weir_param_def st_dir =
    P("dir", WEIR_PARAM_STRING, "./weir-state", 0, 0, 0,
      "Directory of the RocksDB instances of the stateful subtasks.");
static const weir_param_def st_block_cache =
    P("block_cache", WEIR_PARAM_SIZE, "64MiB", MIN, 0, 0,
      "RocksDB block cache shared by all subtasks of the process.");
static const weir_param_def st_write_buffer =
    P("write_buffer", WEIR_PARAM_SIZE, "64MiB", MIN, 1048576, 0,
      "Memtable memory shared by all subtasks (RocksDB write-buffer "
      "manager).");
static const weir_param_def st_cache_entries =
    P("cache_entries", WEIR_PARAM_INT, "100000", MINMAX, 0, 1e9,
      "Entries of the write-back cache in front of RocksDB, per subtask; 0 "
      "disables the cache.");
static const weir_param_def st_sweep_batch =
    P("sweep_batch", WEIR_PARAM_INT, "100", MINMAX, 1, 1e6,
      "Expired entries removed per step of the expiry sweep.");
static const weir_param_def st_cache_max_value =
    P("cache_max_value", WEIR_PARAM_SIZE, "64KiB", MIN, 0, 0,
      "Values larger than this bypass the write-back cache.");
static const weir_param_def st_leak_samples =
    P("leak_samples", WEIR_PARAM_INT, "5", MINMAX, 1, 1000,
      "A state without TTL whose key count grew in this many consecutive "
      "samples (one every stats_interval) is reported as a probable leak.");
static const weir_param_def st_stats_interval =
    P("stats_interval", WEIR_PARAM_DURATION, "10s", MINMAX, 100, 3600000,
      "How often each keyed subtask samples the key counts and sizes of "
      "its states (weir ctl status, weir_state_keys, the leak detector).");
static const weir_param_def st_compact_interval =
    P("compact_interval", WEIR_PARAM_DURATION, "24h", MIN, 0, 0,
      "How often every state is compacted in the background, so that "
      "expired entries in files RocksDB never compacts are dropped too; "
      "0 = never.");
static const weir_param_def st_min_free =
    P("min_free_space", WEIR_PARAM_SIZE, "64MiB", MIN, 0, 0,
      "Free space kept on the file systems of dir and of checkpoint.dir "
      "beyond what RocksDB is estimated to write next (an open, a flush, a "
      "compaction, a checkpoint); a subtask that would go below it fails "
      "with \"no space left on device\" (and is restarted under the "
      "restart strategy) before RocksDB meets a full disk.");
static const weir_param_def *const topo_state_defs[] = {&st_dir,
                                                        &st_block_cache,
                                                        &st_write_buffer,
                                                        &st_cache_entries,
                                                        &st_sweep_batch,
                                                        &st_cache_max_value,
                                                        &st_leak_samples,
                                                        &st_stats_interval,
                                                        &st_compact_interval,
                                                        &st_min_free,
                                                        NULL};

/* --- checkpoint --- */
static const char *const cp_modes[] = {"exactly_once", "at_least_once", NULL};
static const weir_param_def cp_interval =
    P("interval", WEIR_PARAM_DURATION, "0s", MIN, 0, 0,
      "Time between the starts of two checkpoints; 0s disables "
      "checkpoints.");
static const weir_param_def cp_dir =
    P("dir", WEIR_PARAM_STRING, "./weir-checkpoints", 0, 0, 0,
      "Directory that holds the checkpoints and their manifests.");
static const weir_param_def cp_mode = {
    .size = sizeof(weir_param_def),
    .name = "mode",
    .type = WEIR_PARAM_ENUM,
    .default_value = "exactly_once",
    .choices = cp_modes,
    .description = "exactly_once aligns barriers; at_least_once does not "
                   "wait for alignment."};
static const weir_param_def cp_min_pause =
    P("min_pause", WEIR_PARAM_DURATION, "0s", MIN, 0, 0,
      "Least time between the end of one checkpoint and the start of the "
      "next.");
static const weir_param_def cp_timeout =
    P("timeout", WEIR_PARAM_DURATION, "10m", MIN, 1, 0,
      "A checkpoint not complete after this long is declared failed.");
static const weir_param_def cp_retain =
    P("retain", WEIR_PARAM_INT, "3", MINMAX, 1, 1000,
      "Completed checkpoints kept on disk.");
static const weir_param_def cp_allow_fresh_start =
    P("allow_fresh_start", WEIR_PARAM_BOOL, "false", 0, 0, 0,
      "Start with empty state when dir holds no valid checkpoint; without "
      "it such a start is refused once the job has had checkpoints.");
static const weir_param_def cp_tolerable_failed =
    P("tolerable_failed_checkpoints", WEIR_PARAM_INT, "5", MINMAX, -1, 1e9,
      "Consecutive failed checkpoints (aborted, timed out or declined) "
      "tolerated; one more fails the job, which then restarts under the "
      "restart strategy. -1 tolerates any number.");
static const weir_param_def *const topo_checkpoint_defs[] = {
    &cp_interval,
    &cp_dir,
    &cp_mode,
    &cp_min_pause,
    &cp_timeout,
    &cp_retain,
    &cp_allow_fresh_start,
    &cp_tolerable_failed,
    NULL};

/* --- restart --- */
static const char *const rs_strategies[] = {
    "none", "fixed_delay", "exponential_delay", "failure_rate", NULL};
static const weir_param_def rs_strategy = {
    .size = sizeof(weir_param_def),
    .name = "strategy",
    .type = WEIR_PARAM_ENUM,
    .default_value = "none",
    .choices = rs_strategies,
    .description = "What happens when a worker fails: none (the job "
                   "fails), fixed_delay, exponential_delay or "
                   "failure_rate."};
static const weir_param_def rs_attempts =
    P("attempts", WEIR_PARAM_INT, "3", MINMAX, 0, 1e9,
      "fixed_delay: restarts allowed before the job fails.");
static const weir_param_def rs_delay =
    P("delay", WEIR_PARAM_DURATION, "1s", MIN, 0, 0,
      "fixed_delay and failure_rate: wait before each restart.");
static const weir_param_def rs_initial_delay =
    P("initial_delay", WEIR_PARAM_DURATION, "100ms", MIN, 0, 0,
      "exponential_delay: wait before the first restart.");
static const weir_param_def rs_max_delay =
    P("max_delay", WEIR_PARAM_DURATION, "30s", MIN, 0, 0,
      "exponential_delay: longest wait between restarts.");
static const weir_param_def rs_multiplier =
    P("multiplier", WEIR_PARAM_DOUBLE, "2.0", MINMAX, 1.0, 100.0,
      "exponential_delay: factor applied to the wait after each failure.");
static const weir_param_def rs_jitter =
    P("jitter", WEIR_PARAM_DOUBLE, "0.1", MINMAX, 0.0, 1.0,
      "exponential_delay: random share added to or taken from each wait.");
static const weir_param_def rs_reset_after =
    P("reset_after", WEIR_PARAM_DURATION, "10m", MIN, 0, 0,
      "exponential_delay: a run this long without failure resets the wait "
      "to initial_delay.");
static const weir_param_def rs_max_failures =
    P("max_failures", WEIR_PARAM_INT, "3", MINMAX, 1, 1e9,
      "failure_rate: failures allowed within interval.");
static const weir_param_def rs_interval =
    P("interval", WEIR_PARAM_DURATION, "5m", MIN, 1, 0,
      "failure_rate: the window in which failures are counted.");
static const weir_param_def *const topo_restart_defs[] = {
    &rs_strategy,     &rs_attempts,   &rs_delay,  &rs_initial_delay,
    &rs_max_delay,    &rs_multiplier, &rs_jitter, &rs_reset_after,
    &rs_max_failures, &rs_interval,   NULL};

/* --- metrics --- */
static const weir_param_def mx_listen =
    P("listen", WEIR_PARAM_STRING, "", 0, 0, 0,
      "host:port of the Prometheus /metrics endpoint, e.g. "
      "127.0.0.1:9249; empty disables it.");
static const weir_param_def mx_interval =
    P("interval", WEIR_PARAM_DURATION, "10s", MINMAX, 100, 3600000,
      "How often rates and gauges are sampled.");
static const weir_param_def mx_max_connections =
    P("max_connections", WEIR_PARAM_INT, "32", MINMAX, 1, 1024,
      "Connections to /metrics held at once, half of them per client "
      "address; more are refused, so that clients cannot exhaust the "
      "worker's file descriptors.");
static const weir_param_def mx_connection_timeout =
    P("connection_timeout", WEIR_PARAM_DURATION, "10s", MINMAX, 1000, 3600000,
      "A /metrics connection idle for this long is closed (whole seconds, "
      "rounded up).");
static const weir_param_def *const topo_metrics_defs[] = {
    &mx_listen, &mx_interval, &mx_max_connections, &mx_connection_timeout,
    NULL};

/* --- watermarks (per source operator) --- */
static const weir_param_def wm_out_of_orderness =
    P("out_of_orderness", WEIR_PARAM_DURATION, "0ms", MIN, 0, 0,
      "How far behind the largest event time seen a record may still be "
      "on time; the watermark trails the largest event time by this much.");
static const weir_param_def wm_interval =
    P("interval", WEIR_PARAM_DURATION, "200ms", MINMAX, 1, 3600000,
      "How often a source sends its watermark downstream.");
static const weir_param_def wm_idle_timeout =
    P("idle_timeout", WEIR_PARAM_DURATION, "0ms", MIN, 0, 0,
      "A source subtask that emitted nothing for this long is marked idle "
      "and no longer holds back the watermark downstream; 0 = never.");
static const weir_param_def *const topo_watermarks_defs[] = {
    &wm_out_of_orderness, &wm_interval, &wm_idle_timeout, NULL};

/* --- async (per asynchronous operator; runtime/async.h) --- */
static const weir_param_def as_capacity =
    P("capacity", WEIR_PARAM_INT, "100", MINMAX, 1, 1048576,
      "Requests in flight per subtask at most; a new record waits (back "
      "pressure upstream) until one is delivered.");
static const weir_param_def as_timeout =
    P("timeout", WEIR_PARAM_DURATION, "10s", MINMAX, 1, 86400000,
      "How long one attempt of a request may take before it counts as "
      "failed with WEIR_ETIMEDOUT (and is retried).");
static const char *const as_modes[] = {"ordered", "unordered", NULL};
static const weir_param_def as_mode = {
    .size = sizeof(weir_param_def),
    .name = "mode",
    .type = WEIR_PARAM_ENUM,
    .default_value = "ordered",
    .choices = as_modes,
    .description = "ordered: results are delivered in the order of the "
                   "input records; unordered: in completion order, but never "
                   "across a watermark."};
static const weir_param_def as_max_retries =
    P("max_retries", WEIR_PARAM_INT, "3", MINMAX, 0, 1000,
      "Attempts after the first for a request that failed with WEIR_ERETRY "
      "or timed out; then on_async_result() receives the failure.");
static const weir_param_def as_retry_backoff =
    P("retry_backoff", WEIR_PARAM_DURATION, "100ms", MINMAX, 0, 3600000,
      "Pause before the first retry; it doubles for each further one, up to "
      "retry_backoff_max.");
static const weir_param_def as_retry_backoff_max =
    P("retry_backoff_max", WEIR_PARAM_DURATION, "10s", MINMAX, 0, 3600000,
      "Longest pause between two attempts.");
static const weir_param_def *const topo_async_defs[] = {
    &as_capacity,      &as_timeout,           &as_mode, &as_max_retries,
    &as_retry_backoff, &as_retry_backoff_max, NULL};

/* --- the operator key `chain` --- */
static const weir_param_def op_chain =
    P("chain", WEIR_PARAM_BOOL, "true", 0, 0, 0,
      "false keeps the operator out of operator chains: it runs in its own "
      "threads, neither in its producer's nor with its consumer in its own "
      "(runtime.chaining).");

const weir_param_def *topo_op_chain_def(void)
{
    return &op_chain;
}

const weir_param_def *const *topo_section_defs(const char *section)
{
    static const struct {
        const char *name;
        const weir_param_def *const *defs;
    } sections[] = {
        {"runtime", topo_runtime_defs},
        {"state", topo_state_defs},
        {"checkpoint", topo_checkpoint_defs},
        {"restart", topo_restart_defs},
        {"metrics", topo_metrics_defs},
        {"watermarks", topo_watermarks_defs},
        {"async", topo_async_defs},
    };
    if (!section)
        return NULL;
    for (size_t k = 0; k < sizeof sections / sizeof sections[0]; k++) {
        if (!strcmp(sections[k].name, section))
            return sections[k].defs;
    }
    return NULL;
}
