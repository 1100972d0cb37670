/*
 * probe.h - trying a plugin's load in a throw-away child process first.
 *
 * A plugin runs code as soon as it is dlopen()ed (constructors) and when
 * its entry point is called, and its tables may hold pointers that fault
 * when read. The registry therefore loads each file once in a child
 * process: probe_run() fork()s, the child runs the caller's probe_fn (which
 * dlopen()s the file and reads everything the real load will read, marking
 * its progress with probe_reached()) and reports success or an error
 * message through a pipe, then _exit()s. The parent never maps the file. It
 * waits at most the given time-out, SIGKILLs a child that takes longer, and
 * turns a crash, a time-out, an exit without a report, or the child's own
 * error into one message.
 *
 * In the child, stdout goes to /dev/null (a command's stdout is its
 * output), stderr stays (a plugin's own diagnostics, such as an assertion
 * message, remain visible), the fault signals (SIGSEGV, SIGBUS, SIGILL,
 * SIGFPE, SIGABRT, SIGSYS, SIGTRAP) get their default action back, so that
 * a fault kills the child even under a sanitizer's handler, no core file is
 * written, and the child is killed when the parent dies.
 *
 * Thread: fork() copies only the calling thread, so probe_run() must be
 * called while the process has no other thread: a lock another thread held
 * at the fork (in malloc, stdio or the dynamic linker) would stay locked in
 * the child, which would show as a time-out. The weir command loads its
 * plugins before it starts any thread; so do the tests and benchmarks. The
 * cost is one fork() and one extra dlopen() per file.
 */
#ifndef WEIR_HOST_PROBE_H
#define WEIR_HOST_PROBE_H

/* How far the child got: it starts at PROBE_OPENING and says when it
 * enters the next step, so that a crash is blamed on the right code. */
typedef enum probe_step {
    PROBE_OPENING, /* dlopen(), which runs the plugin's constructors */
    PROBE_ENTRY,   /* the call of weir_plugin_entry */
    PROBE_TABLES,  /* reading the tables the entry returned */
} probe_step;

typedef struct probe_chan probe_chan;

/* What the child runs. Returns 0 when the file would load, or a negative
 * WEIR_E* code with a one-line message "FILE: cause" in *errptr. */
typedef int (*probe_fn)(void *arg, probe_chan *chan, char **errptr);

/* In the child: tells the parent that the probe enters `step`. A NULL
 * `chan` (the real load, in the parent) does nothing. */
void probe_reached(probe_chan *chan, probe_step step);

/*
 * Runs fn(arg) in a child process for the file `path` and waits at most
 * `timeout_ms` (> 0) for it. Returns 0 when fn returned 0 in the child.
 * Otherwise returns a negative code with a one-line message in *errptr:
 * the child's own message when fn failed, or "PATH: probing it crashed with
 * SIGSEGV (in weir_plugin_entry)", "... exited with status 3 before it
 * finished (...)" or "... did not finish within 5 s (...); killed it", the
 * parenthesis naming the step. When no child can be started (fork() or
 * pipe() fails) the file is refused as well, with the system's reason.
 * Must be called with no other thread running (see above).
 */
int probe_run(const char *path, int timeout_ms, probe_fn fn, void *arg,
              char **errptr);

#endif
