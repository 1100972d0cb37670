/*
 * crash.h - crash-point injection for tests.
 *
 * WEIR_CRASH_AT="<point>[:<n>]" makes the process _exit(CRASH_EXIT_CODE)
 * the n-th time (default 1st) it passes crash_point("<point>"), in the
 * worker attempt WEIR_CRASH_ATTEMPT (default 0, the first start; the
 * environment passes to restarted workers, which must not crash again for
 * a test to see the recovery). Points are
 * named where they are called; the checkpoint tests use:
 *   barrier_received   a subtask got a barrier, before aligning/snapshotting
 *   state_snapshotted  a subtask wrote its snapshot, before acking
 *   manifest_written   the manifest is fsync'ed, not yet renamed
 *   manifest_renamed   the manifest is in place, not yet in the log
 *   before_notify      the checkpoint is complete, subtasks not yet told
 *   sink_precommit     a sink (an operator without outputs) returned from
 *                      snapshot(): a two-phase-commit sink pre-committed
 *   sink_commit        a sink returned from notify_checkpoint_complete():
 *                      a two-phase-commit sink committed
 * Thread-safe. Costs one relaxed atomic load when no point is armed.
 */
#ifndef WEIR_HOST_CRASH_H
#define WEIR_HOST_CRASH_H

#define CRASH_EXIT_CODE 86

void crash_point(const char *name);

/* Tells the crash points which worker attempt this process is (call before
 * starting threads); a process that never calls it counts as attempt 0. */
void crash_set_attempt(int attempt);

#endif
