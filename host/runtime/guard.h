/*
 * guard.h - watching plugin callbacks: the watchdog and the crash report.
 *
 * The mark. Every call of a plugin callback is bracketed by guard_enter()
 * and guard_leave() on its subtask's guard_mark: one relaxed atomic load and
 * store each, and no clock is read. The mark is one word holding the
 * callback being run (GUARD_NONE between callbacks) and a sequence number
 * that changes at every enter and leave, so that a reader can tell one long
 * invocation from many short ones. Only the subtask's own thread writes its
 * mark; any thread, and a signal handler, may read it.
 *
 * The watchdog. guard_watch_start() starts one thread per job that reads
 * every subtask's mark each tick (a tenth of runtime.callback_timeout,
 * between 10 ms and 1 s). A subtask seen in the same invocation of a
 * callback for callback_timeout is stuck: the watchdog logs one ERROR line
 * naming the subtask, its operator type, the plugin file and the callback,
 * has the stuck thread print its backtrace, and ends the process with
 * _exit(WORKER_EXIT_FAILED) (a stuck thread cannot be stopped, and exit()
 * would run destructors that wait for it); the supervisor restarts the
 * worker under the restart strategy. Time the host spends waiting on back
 * pressure inside a callback (weir_emit on a full channel) counts as
 * progress: guard_touch() renews the mark.
 *
 * The crash report. guard_install() handles SIGSEGV, SIGBUS, SIGFPE, SIGILL
 * and SIGABRT process-wide, on an alternate signal stack in subtask threads
 * (so a stack overflow is reported too). The handler writes one line to
 * stderr (a single write(2)),
 *   weir: worker crashed: SIGSEGV in count#1 (type count, plugin
 *   /x/count.so) in process()
 * or "... SIGSEGV in host code" outside plugin callbacks, then the
 * backtrace of the crashing thread (backtrace_symbols_fd) and restores the
 * action that was installed before guard_install() (the default, or a
 * sanitizer's handler), which then gets the signal: a fault recurs when the
 * handler returns, a sent or raised signal is raised again. The process
 * still dies by the signal, and the supervisor sees it.
 */
#ifndef WEIR_HOST_GUARD_H
#define WEIR_HOST_GUARD_H

#include <stdatomic.h>
#include <stdint.h>

/* The plugin callbacks, as the mark records them. */
typedef enum guard_cb {
    GUARD_NONE = 0,
    GUARD_OPEN,
    GUARD_RESTORE,
    GUARD_POLL,
    GUARD_PROCESS,
    GUARD_ON_WATERMARK,
    GUARD_ON_TIMER,
    GUARD_ON_STATE_EXPIRED,
    GUARD_SNAPSHOT,
    GUARD_NOTIFY_CHECKPOINT_COMPLETE,
    GUARD_FINISH,
    GUARD_CLOSE,
    GUARD_PROCESS_BROADCAST,
    GUARD_ASYNC_INVOKE,
    GUARD_ON_ASYNC_RESULT,
    GUARD_MIGRATE_STATE,
    GUARD_N_CB
} guard_cb;

/* One subtask's mark: (sequence << 8) | callback. */
typedef struct guard_mark {
    _Atomic uint64_t word;
} guard_mark;

#define GUARD_CB_MASK 0xffu

/* Stores a new sequence number with callback `cb`. */
static inline void guard_mark_set(guard_mark *m, guard_cb cb)
{
    uint64_t w = atomic_load_explicit(&m->word, memory_order_relaxed);
    atomic_store_explicit(&m->word, ((w | GUARD_CB_MASK) + 1) | (uint64_t)cb,
                          memory_order_relaxed);
}

/* Marks the subtask as inside callback `cb`. Returns the callback it was in
 * (GUARD_NONE, or the outer one when a callback runs inside another, as
 * on_state_expired inside a state read), which guard_leave() restores. */
static inline guard_cb guard_enter(guard_mark *m, guard_cb cb)
{
    guard_cb outer =
        (guard_cb)(atomic_load_explicit(&m->word, memory_order_relaxed) &
                   GUARD_CB_MASK);
    guard_mark_set(m, cb);
    return outer;
}

/* Marks the end of the callback entered with guard_enter(). */
static inline void guard_leave(guard_mark *m, guard_cb outer)
{
    guard_mark_set(m, outer);
}

/* Renews the mark without changing the callback: the host, not the plugin,
 * is what the subtask is waiting on (back pressure). */
static inline void guard_touch(guard_mark *m)
{
    uint64_t w = atomic_load_explicit(&m->word, memory_order_relaxed);
    guard_mark_set(m, (guard_cb)(w & GUARD_CB_MASK));
}

/* The callback's name, "process" for GUARD_PROCESS. */
const char *guard_cb_name(guard_cb cb);

struct task;
struct rt_job;

/* Installs the crash handlers (once per process; later calls do nothing)
 * and an alternate signal stack for the calling thread, and loads what
 * backtrace() needs, so that the handler does not. Call it on the main
 * thread before the subtasks start, after a sanitizer runtime installed
 * its own handlers. A handler that cannot be installed is logged as a
 * warning. */
void guard_install(void);

/* Tells the crash handler that the calling thread runs subtask `t`, and
 * gives the thread an alternate signal stack unless it has one. Call at
 * the start of the subtask's thread, and guard_thread_end() before it
 * returns (the stack is freed). Without guard_install() they only cost a
 * mapping. */
void guard_thread_begin(struct task *t);
void guard_thread_end(void);

/* Tells the crash handler that the calling thread now runs subtask `t` (a
 * chained member, runtime/plan.h) and returns the subtask it ran before,
 * to be given back when the call into the member returns. */
struct task *guard_thread_switch(struct task *t);

typedef struct guard_watch guard_watch;

/* Starts the watchdog over the subtasks of `rt`, with the limit of its
 * runtime.callback_timeout. Returns NULL when the limit is 0 or the thread
 * cannot be started (logged: the job runs unwatched). Thread: the thread
 * that owns `rt`; `rt` must outlive guard_watch_stop(). */
guard_watch *guard_watch_start(struct rt_job *rt);

/* Stops and frees the watchdog; NULL is allowed. Call after rt_wait() and
 * before rt_destroy(). */
void guard_watch_stop(guard_watch *w);

#endif
