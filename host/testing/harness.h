/*
 * harness.h - the test harness of weir/testing.h, on the real host.
 *
 * The public contract is sdk/include/weir/testing.h; this file states how
 * it is built. A weir_test is a job of one operator and one subtask:
 *   - a registry (plugin/registry.h) holding the plugin, loaded from its
 *     file (probe, dlopen, entry) or registered from a descriptor;
 *   - a topo_job built in memory: the operator's `config` validated from
 *     YAML by the topology loader (topo_config_from_yaml), the host
 *     sections (runtime, state, checkpoint) with their defaults and the
 *     state directory; and its plan (runtime/plan.h);
 *   - an rt_job and one task (runtime/task.h) whose weir_ctx plugins get,
 *     served by the runtime's api_table(); the job's `capture` hook takes
 *     the emitted records, its `clock` hook is the fake processing time;
 *   - keyed state and timers through runtime/keyed.h, broadcast state
 *     through runtime/bcast.h, async requests through runtime/async.h
 *     (served by polling its eventfd in the harness's calls), or with
 *     config.async_direct the request table of testing/direct.h, checkpoints
 * written like task.c and coord.c write them (checkpoint/manifest.h) and
 * restored like runtime.c restores them (rt_restore_check,
 * rt_restore_op_state). Each call sets the thread's task owner (task_owner) to
 * the harness's task for its duration and restores the previous one, so the
 * services' thread checks pass on the caller's thread and harnesses can nest.
 * Log lines are captured with a thread tap (common/log.h) during each call.
 *
 * The library weir_testing (a shared object exporting only weir_test_*)
 * is this file's .c, direct.c and the host library.
 */
#ifndef WEIR_HOST_TESTING_HARNESS_H
#define WEIR_HOST_TESTING_HARNESS_H

#include "weir/testing.h"

#endif
