/*
 * probe.c - trying plugins' loads in a child process (see probe.h).
 *
 * The child writes its report on a pipe, for each file in turn: 'S' when it
 * starts the file, one byte '0' + step each time it enters a step, then
 * either 'K' (the load would succeed) or 'E' followed by the error code in
 * decimal, a space, the message and a NUL. The parent reads the pipe and
 * waits for the child's exit (on a pidfd where the kernel has them), resets
 * the time-out at each file, and after the child is gone decides what the
 * files it did not finish get, and where the next child starts.
 */
#include "plugin/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "common/err.h"

/* The longest message kept for one file; a longer one is cut. */
#define PROBE_MSG_MAX 2048

/* With a pidfd, how many times per time-out the parent reads the pipe
 * while the child runs. */
#define PROBE_CHECKS 4

/* Without a pidfd, how often the parent checks for the child's exit while
 * the pipe is still open. */
#define PROBE_TICK_MS 100

struct probe_chan {
    int fd;
};

/* The parent's view of one child, which probes files first..n-1. */
typedef struct probe_watch {
    const char *const *paths;
    size_t n;
    int timeout_ms;
    probe_result *results;
    size_t first;    /* the child's first file */
    size_t next;     /* the file its next 'S' starts */
    size_t cur;      /* the file it is probing, when active */
    int active;      /* 'S' seen for cur, its outcome not yet */
    int in_msg;      /* inside the message after an 'E' */
    probe_step step; /* how far it got with cur */
    char msg[PROBE_MSG_MAX];
    size_t msg_len;
    long long deadline; /* for the current file, in probe_now_ms() time */
    int status;         /* from waitpid(), when reaped */
    int reaped;
    int timed_out; /* the parent killed it */
} probe_watch;

static const int probe_fault_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE,
                                          SIGABRT, SIGSYS, SIGTRAP};

/* ------------------------------------------------------------------------ */
/* The child                                                                 */
/* ------------------------------------------------------------------------ */

static void probe_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

void probe_reached(probe_chan *chan, probe_step step)
{
    if (!chan)
        return;
    char c = (char)('0' + (int)step);
    probe_write_all(chan->fd, &c, 1);
}

/* Makes the child's faults kill it, silently for the parent's terminal
 * (no core file), and its stdout harmless. */
static void probe_child_setup(pid_t parent)
{
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    if (getppid() != parent)
        _exit(127); /* the parent died before the line above */
    sigset_t faults;
    sigemptyset(&faults);
    for (size_t i = 0; i < sizeof probe_fault_signals / sizeof(int); i++) {
        signal(probe_fault_signals[i], SIG_DFL);
        sigaddset(&faults, probe_fault_signals[i]);
    }
    sigprocmask(SIG_UNBLOCK, &faults, NULL);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDOUT_FILENO);
        close(null);
    }
}

#ifdef __GLIBC__
/* Runs first when the plugin calls exit() in the child: ends the child with
 * that status before the parent's atexit handlers (which could remove its
 * files), stdio flushing or a leak checker run in the copy. */
static void probe_on_exit(int status, void *arg)
{
    (void)arg;
    _exit(status);
}
#endif

static void probe_child_report(int fd, int rc, const char *err)
{
    if (rc == 0) {
        probe_write_all(fd, "K", 1);
        return;
    }
    char head[32];
    int n = snprintf(head, sizeof head, "E%d ", rc < 0 ? rc : WEIR_EINVAL);
    probe_write_all(fd, head, (size_t)n);
    const char *msg = err ? err : "the probe failed without a message";
    size_t len = strlen(msg);
    probe_write_all(fd, msg, len < PROBE_MSG_MAX ? len : PROBE_MSG_MAX);
    probe_write_all(fd, "", 1);
}

static _Noreturn void probe_child(int fd, pid_t parent, size_t first, size_t n,
                                  probe_fn fn, void *arg)
{
    probe_child_setup(parent);
#ifdef __GLIBC__
    on_exit(probe_on_exit, NULL);
#endif
    probe_chan chan = {fd};
    for (size_t i = first; i < n; i++) {
        probe_write_all(fd, "S", 1);
        char *err = NULL;
        int rc = fn(arg, i, &chan, &err);
        probe_child_report(fd, rc, err);
        free(err);
    }
    /* No exit(): neither the plugins' destructors nor the parent's atexit
     * handlers, stdio buffers or leak checks run in the child. */
    _exit(0);
}

/* ------------------------------------------------------------------------ */
/* The parent: reading the report                                            */
/* ------------------------------------------------------------------------ */

static long long probe_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Stores a failed file's outcome (the message is NULL when memory ran
 * out). */
WEIR_PRINTF(3, 4)
static void probe_set(probe_result *r, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    r->rc = err_setv(&r->msg, rc, fmt, ap);
    va_end(ap);
}

/* The file's 'E' message ("CODE MESSAGE") is complete. */
static void probe_take_error(probe_watch *w)
{
    w->msg[w->msg_len] = '\0';
    char *text = NULL;
    long code = strtol(w->msg, &text, 10);
    if (code >= 0 || code < INT_MIN || *text != ' ')
        code = WEIR_EINVAL;
    else
        text++;
    probe_set(&w->results[w->cur], (int)code, "%s", text);
}

/* Follows the child's report, byte by byte. */
static void probe_feed(probe_watch *w, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (w->in_msg) {
            if (c != '\0') {
                if (w->msg_len < sizeof w->msg - 1)
                    w->msg[w->msg_len++] = c;
                continue;
            }
            probe_take_error(w);
            w->in_msg = w->active = 0;
            w->deadline = probe_now_ms() + w->timeout_ms;
        } else if (c == 'S' && !w->active && w->next < w->n) {
            w->cur = w->next++;
            w->active = 1;
            w->step = PROBE_OPENING;
            w->deadline = probe_now_ms() + w->timeout_ms;
        } else if (w->active && c >= '0' && c <= '0' + PROBE_TABLES) {
            w->step = (probe_step)(c - '0');
        } else if (w->active && c == 'K') {
            w->results[w->cur] = (probe_result){0, NULL};
            w->active = 0;
            w->deadline = probe_now_ms() + w->timeout_ms;
        } else if (w->active && c == 'E') {
            w->in_msg = 1;
            w->msg_len = 0;
        }
    }
}

/* Reads what the pipe holds now, without waiting. Returns 1 at end of
 * file, 0 after reading something, -1 when there was nothing. */
static int probe_read(int fd, probe_watch *w)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return -1;
    char buf[4096];
    ssize_t got = read(fd, buf, sizeof buf);
    if (got < 0)
        return errno == EINTR || errno == EAGAIN ? -1 : 1;
    if (got == 0)
        return 1;
    probe_feed(w, buf, (size_t)got);
    return 0;
}

static void probe_kill(pid_t pid, probe_watch *w)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, &w->status, 0) < 0) {
        if (errno != EINTR)
            return;
    }
    w->reaped = 1;
}

/* A descriptor that becomes readable when the child exits, or -1 where the
 * kernel has no pidfd_open (Linux before 5.3). */
static int probe_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    return -1;
#endif
}

/* Reads everything the pipe holds now; sets *eof at its end. */
static void probe_drain(int fd, probe_watch *w, int *eof)
{
    for (int i = 0; !*eof && i < 64; i++) {
        int r = probe_read(fd, w);
        if (r == 1)
            *eof = 1;
        if (r != 0)
            break;
    }
}

/*
 * Follows the child until it exits, killing it when a file takes longer
 * than the time-out. With a pidfd the parent sleeps until the child exits,
 * and reads the pipe only then and every PROBE_CHECKS-th of the time-out,
 * so that a batch of good files costs one wake-up: a file's time then
 * starts when the parent sees it start, so a hung file is killed after
 * between one and 1 + 1/PROBE_CHECKS time-outs. Without a pidfd it wakes
 * for every report, looks for the exit every PROBE_TICK_MS, and every
 * millisecond once the pipe is closed (the pipe closes just before the
 * child becomes waitable).
 */
static void probe_wait(pid_t pid, int fd, probe_watch *w)
{
    int pidfd = probe_pidfd(pid);
    int eof = 0;
    int check_ms =
        w->timeout_ms / PROBE_CHECKS ? w->timeout_ms / PROBE_CHECKS : 1;
    w->deadline = probe_now_ms() + w->timeout_ms;
    for (;;) {
        long long left = w->deadline - probe_now_ms();
        if (left <= 0) {
            probe_drain(fd, w, &eof); /* it may have gone on meanwhile */
            if (w->deadline > probe_now_ms())
                continue;
            w->timed_out = 1;
            probe_kill(pid, w);
            break;
        }
        struct pollfd p[2] = {{.fd = -1}, {.fd = pidfd, .events = POLLIN}};
        int wait = (int)(left < check_ms ? left : check_ms);
        if (pidfd < 0) {
            p[0] = (struct pollfd){.fd = eof ? -1 : fd, .events = POLLIN};
            wait = eof ? 1 : (int)(left < PROBE_TICK_MS ? left : PROBE_TICK_MS);
        }
        poll(p, 2, wait);
        probe_drain(fd, w, &eof);
        pid_t r = waitpid(pid, &w->status, WNOHANG);
        w->reaped = r == pid;
        /* ECHILD: SIGCHLD is ignored, so the child was reaped for us and
         * its status is lost; its report is all there is. */
        if (w->reaped || (r < 0 && errno != EINTR))
            break;
    }
    if (pidfd >= 0)
        close(pidfd);
    /* What the child wrote last may still be in the pipe. */
    probe_drain(fd, w, &eof);
}

/* ------------------------------------------------------------------------ */
/* The parent: verdicts                                                      */
/* ------------------------------------------------------------------------ */

static const char *probe_signal_name(int sig, char *buf, size_t n)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {
        {SIGSEGV, "SIGSEGV"}, {SIGBUS, "SIGBUS"},   {SIGILL, "SIGILL"},
        {SIGFPE, "SIGFPE"},   {SIGABRT, "SIGABRT"}, {SIGSYS, "SIGSYS"},
        {SIGTRAP, "SIGTRAP"}, {SIGKILL, "SIGKILL"}, {SIGTERM, "SIGTERM"},
        {SIGINT, "SIGINT"},   {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"},
        {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (names[i].sig == sig)
            return names[i].name;
    }
    snprintf(buf, n, "signal %d", sig);
    return buf;
}

/* Where the child was, for the message; `crashed` adds the likely cause of
 * a fault while reading tables. */
static const char *probe_step_text(probe_step step, int crashed)
{
    switch (step) {
    case PROBE_OPENING: return "in its constructor, while dlopen() ran it";
    case PROBE_ENTRY: return "in weir_plugin_entry";
    case PROBE_TABLES: break;
    }
    return crashed ? "reading the tables weir_plugin_entry returned: a bad "
                     "pointer in them"
                   : "reading the tables weir_plugin_entry returned";
}

/* Why the child ended while it probed file `i` at `step`. */
static void probe_blame(const probe_watch *w, size_t i, probe_step step)
{
    const char *path = w->paths[i];
    probe_result *r = &w->results[i];
    if (w->timed_out) {
        probe_set(r, WEIR_EINVAL,
                  "%s: probing it did not finish within %g s (%s); killed it",
                  path, w->timeout_ms / 1000.0, probe_step_text(step, 0));
    } else if (w->reaped && WIFSIGNALED(w->status)) {
        char buf[32];
        probe_set(r, WEIR_EINVAL, "%s: probing it crashed with %s (%s)", path,
                  probe_signal_name(WTERMSIG(w->status), buf, sizeof buf),
                  probe_step_text(step, 1));
    } else if (w->reaped && WIFEXITED(w->status)) {
        probe_set(r, WEIR_EINVAL,
                  "%s: probing it exited with status %d before it finished "
                  "(%s)",
                  path, WEXITSTATUS(w->status), probe_step_text(step, 0));
    } else {
        probe_set(r, WEIR_EINVAL, "%s: probing it ended without a report (%s)",
                  path, probe_step_text(step, 0));
    }
}

/* After the child is gone: blames the file it died in when that file was
 * its first (or it timed out), and returns where the next child starts. */
static size_t probe_settle(const probe_watch *w)
{
    if (w->active) {
        if (w->cur != w->first && !w->timed_out)
            return w->cur; /* again, first in a new child */
        probe_blame(w, w->cur, w->step);
        return w->cur + 1;
    }
    if (w->next == w->first && w->first < w->n) {
        /* It ended before it started a file: never loop on that. */
        probe_blame(w, w->first, PROBE_OPENING);
        return w->first + 1;
    }
    return w->next;
}

/* Refuses files first..n-1 when no child can be started. */
static void probe_refuse(const probe_watch *w, const char *what, int err)
{
    for (size_t i = w->first; i < w->n; i++)
        probe_set(&w->results[i], WEIR_EIO, "%s: cannot probe it: %s: %s",
                  w->paths[i], what, strerror(err));
}

/* Starts one child at file `first` and follows it. Returns where the next
 * child starts (n when every file has its outcome). */
static size_t probe_one_child(probe_watch *w, probe_fn fn, void *arg)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        probe_refuse(w, "pipe", errno);
        return w->n;
    }
    /* Nothing buffered here may be written a second time by the child. */
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        probe_refuse(w, "fork", e);
        return w->n;
    }
    if (pid == 0) {
        close(fds[0]);
        probe_child(fds[1], parent, w->first, w->n, fn, arg);
    }
    close(fds[1]);
    probe_wait(pid, fds[0], w);
    close(fds[0]);
    return probe_settle(w);
}

void probe_run(const char *const *paths, size_t n, int timeout_ms, probe_fn fn,
               void *arg, probe_result *results)
{
    for (size_t i = 0; i < n; i++)
        results[i] = (probe_result){0, NULL};
    probe_watch *w = malloc(sizeof *w);
    size_t first = 0;
    while (w && first < n) {
        *w = (probe_watch){.paths = paths,
                           .n = n,
                           .timeout_ms = timeout_ms,
                           .results = results,
                           .first = first,
                           .next = first};
        first = probe_one_child(w, fn, arg);
    }
    for (size_t i = first; !w && i < n; i++)
        probe_set(&results[i], WEIR_ENOMEM, "%s: out of memory", paths[i]);
    free(w);
}
