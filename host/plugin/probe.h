/*
 * probe.h - trying plugins' loads in a throw-away child process first.
 *
 * A plugin runs code as soon as it is dlopen()ed (constructors) and when
 * its entry point is called, and its tables may hold pointers that fault
 * when read. The registry therefore tries each load in a child process
 * before it loads the file itself: probe_run() fork()s a child that runs the
 * caller's probe_fn for each file in turn (the fn dlopen()s the file and
 * reads everything the real load will read, marking its progress with
 * probe_reached()) and reports each outcome through a pipe, then _exit()s.
 * The parent never maps a file. It gives each file the time-out, SIGKILLs a
 * child that takes longer, and turns a crash, a time-out, an exit without a
 * report, or fn's own error into one message per file.
 *
 * One child probes a whole batch, so that a directory of good plugins costs
 * one fork(). When the child dies while probing a file that was not its
 * first, that file is probed again first in a new child, so that a crash is
 * blamed on the file that crashes on its own; a time-out is blamed at once.
 * The files after it go on in the new child.
 *
 * In the child, stdout goes to /dev/null (a command's stdout is its
 * output), stderr stays (a plugin's own diagnostics, such as an assertion
 * message, remain visible), the fault signals (SIGSEGV, SIGBUS, SIGILL,
 * SIGFPE, SIGABRT, SIGSYS, SIGTRAP) get their default action back, so that
 * a fault kills the child even under a sanitizer's handler, no core file is
 * written, the child is killed when the parent dies, and exit() called by a
 * plugin ends the child at once, without the parent's atexit handlers.
 *
 * Thread: fork() copies only the calling thread, so probe_run() must be
 * called while the process has no other thread: a lock another thread held
 * at the fork (in malloc, stdio or the dynamic linker) would stay locked in
 * the child, which would show as a time-out. The weir command loads its
 * plugins before it starts any thread; so do the tests and benchmarks.
 */
#ifndef WEIR_HOST_PROBE_H
#define WEIR_HOST_PROBE_H

#include <stddef.h>

/* How far the child got with a file: it starts at PROBE_OPENING and says
 * when it enters the next step, so that a crash is blamed on the right
 * code. */
typedef enum probe_step {
    PROBE_OPENING, /* dlopen(), which runs the plugin's constructors */
    PROBE_ENTRY,   /* the call of weir_plugin_entry */
    PROBE_TABLES,  /* reading the tables the entry returned */
} probe_step;

typedef struct probe_chan probe_chan;

/* What the child runs for file `i`. Returns 0 when the file would load, or
 * a negative WEIR_E* code with a one-line message "FILE: cause" in
 * *errptr. */
typedef int (*probe_fn)(void *arg, size_t i, probe_chan *chan, char **errptr);

/* The outcome for one file: rc 0 (it would load), or a negative WEIR_E*
 * code and a malloc'ed one-line message the caller frees (NULL only when
 * memory ran out). */
typedef struct probe_result {
    int rc;
    char *msg;
} probe_result;

/* In the child: tells the parent that the probe enters `step`. A NULL
 * `chan` (the real load, in the parent) does nothing. */
void probe_reached(probe_chan *chan, probe_step step);

/*
 * Probes the files paths[0..n-1] with fn(arg, i), each allowed `timeout_ms`
 * (> 0), and fills results[0..n-1]. A failed file's message is fn's own
 * when fn failed, else "PATH: probing it crashed with SIGSEGV (in
 * weir_plugin_entry)", "PATH: probing it exited with status 3 before it
 * finished (...)" or "PATH: probing it did not finish within 5 s (...);
 * killed it", the parenthesis naming the step. When no child can be started
 * (pipe() or fork() fails) the files not yet probed are refused with the
 * system's reason. Must be called with no other thread running (see
 * above).
 */
void probe_run(const char *const *paths, size_t n, int timeout_ms, probe_fn fn,
               void *arg, probe_result *results);

#endif
