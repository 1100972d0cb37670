/*
 * probe.c - trying a plugin's load in a child process (see probe.h).
 *
 * The child writes its report on a pipe: one byte '0' + step each time it
 * enters a step, then either 'K' (the load would succeed) or 'E' followed by
 * the error code in decimal, a space and the message. The parent reads the
 * pipe while polling for the child's exit, until the child is reaped or the
 * time-out passes.
 */
#include "plugin/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
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

/* The longest report the parent keeps; a longer message is cut. */
#define PROBE_REPORT_MAX 4096

/* Without a pidfd, how often the parent checks for the child's exit while
 * the pipe is still open. */
#define PROBE_TICK_MS 100

struct probe_chan {
    int fd;
};

/* What the parent saw of one child. */
typedef struct probe_report {
    char buf[PROBE_REPORT_MAX];
    size_t len;
    int status;    /* from waitpid(), when reaped */
    int reaped;    /* 1 when status is valid */
    int timed_out; /* 1 when the parent killed the child */
} probe_report;

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

static _Noreturn void probe_child(int fd, pid_t parent, probe_fn fn, void *arg)
{
    probe_child_setup(parent);
#ifdef __GLIBC__
    on_exit(probe_on_exit, NULL);
#endif
    probe_chan chan = {fd};
    char *err = NULL;
    int rc = fn(arg, &chan, &err);
    if (rc == 0) {
        probe_write_all(fd, "K", 1);
    } else {
        char head[32];
        int n = snprintf(head, sizeof head, "E%d ", rc < 0 ? rc : WEIR_EINVAL);
        probe_write_all(fd, head, (size_t)n);
        const char *msg = err ? err : "the probe failed without a message";
        size_t len = strlen(msg);
        probe_write_all(
            fd, msg, len < PROBE_REPORT_MAX / 2 ? len : PROBE_REPORT_MAX / 2);
    }
    /* No exit(): neither the plugin's destructors nor the parent's atexit
     * handlers, stdio buffers or leak checks run in the child. */
    _exit(0);
}

/* ------------------------------------------------------------------------ */
/* The parent                                                                */
/* ------------------------------------------------------------------------ */

static long long probe_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what the pipe holds now, without waiting. Returns 1 at end of
 * file, 0 after reading something, -1 when there was nothing. */
static int probe_read(int fd, probe_report *r)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return -1;
    char scratch[512];
    int full = r->len >= sizeof r->buf - 1;
    char *dst = full ? scratch : r->buf + r->len;
    size_t room = full ? sizeof scratch : sizeof r->buf - 1 - r->len;
    ssize_t got = read(fd, dst, room);
    if (got < 0)
        return errno == EINTR || errno == EAGAIN ? -1 : 1;
    if (got == 0)
        return 1;
    if (!full)
        r->len += (size_t)got;
    return 0;
}

static void probe_kill(pid_t pid, probe_report *r)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, &r->status, 0) < 0) {
        if (errno != EINTR)
            return;
    }
    r->reaped = 1;
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

/* Collects the child's report and its exit status, killing it when it is
 * still running at the time-out. Wakes when the child writes or exits;
 * without a pidfd, it also looks for the exit every PROBE_TICK_MS, and
 * every millisecond once the pipe is closed (the pipe closes just before
 * the child becomes waitable). */
static void probe_wait(pid_t pid, int fd, int timeout_ms, probe_report *r)
{
    long long deadline = probe_now_ms() + timeout_ms;
    int pidfd = probe_pidfd(pid);
    int eof = 0;
    for (;;) {
        long long left = deadline - probe_now_ms();
        if (left <= 0) {
            r->timed_out = 1;
            probe_kill(pid, r);
            break;
        }
        int wait = (int)(left < PROBE_TICK_MS ? left : PROBE_TICK_MS);
        if (pidfd >= 0)
            wait = (int)(left < INT_MAX ? left : INT_MAX);
        else if (eof)
            wait = 1;
        struct pollfd p[2] = {{.fd = eof ? -1 : fd, .events = POLLIN},
                              {.fd = pidfd, .events = POLLIN}};
        poll(p, 2, wait);
        if (p[0].revents && probe_read(fd, r) == 1)
            eof = 1;
        pid_t w = waitpid(pid, &r->status, WNOHANG);
        r->reaped = w == pid;
        /* ECHILD: SIGCHLD is ignored, so the child was reaped for us and
         * its status is lost; its report is all there is. */
        if (r->reaped || (w < 0 && errno != EINTR))
            break;
    }
    if (pidfd >= 0)
        close(pidfd);
    /* What the child wrote last may still be in the pipe. */
    for (int i = 0; !eof && i < 64; i++) {
        if (probe_read(fd, r) != 0)
            break;
    }
    r->buf[r->len] = '\0';
}

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

/* Turns the report into the result of probe_run(). */
static int probe_verdict(const char *path, int timeout_ms,
                         const probe_report *r, char **errptr)
{
    probe_step step = PROBE_OPENING;
    const char *p = r->buf;
    for (; *p >= '0' && *p <= '0' + PROBE_TABLES; p++)
        step = (probe_step)(*p - '0');
    if (*p == 'K')
        return 0;
    if (*p == 'E') {
        char *msg = NULL;
        long code = strtol(p + 1, &msg, 10);
        if (code >= 0 || !msg || *msg != ' ')
            code = WEIR_EINVAL;
        return err_set(errptr, (int)code, "%s", msg && *msg ? msg + 1 : p);
    }
    if (r->timed_out)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: probing it did not finish within %g s (%s); "
                       "killed it",
                       path, timeout_ms / 1000.0, probe_step_text(step, 0));
    if (r->reaped && WIFSIGNALED(r->status)) {
        char buf[32];
        return err_set(errptr, WEIR_EINVAL,
                       "%s: probing it crashed with %s (%s)", path,
                       probe_signal_name(WTERMSIG(r->status), buf, sizeof buf),
                       probe_step_text(step, 1));
    }
    if (r->reaped && WIFEXITED(r->status))
        return err_set(errptr, WEIR_EINVAL,
                       "%s: probing it exited with status %d before it "
                       "finished (%s)",
                       path, WEXITSTATUS(r->status), probe_step_text(step, 0));
    return err_set(errptr, WEIR_EINVAL,
                   "%s: probing it ended without a report (%s)", path,
                   probe_step_text(step, 0));
}

int probe_run(const char *path, int timeout_ms, probe_fn fn, void *arg,
              char **errptr)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return err_set(errptr, WEIR_EIO, "%s: cannot probe it: pipe: %s", path,
                       strerror(errno));
    /* Nothing buffered here may be written a second time by the child. */
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return err_set(errptr, WEIR_EIO, "%s: cannot probe it: fork: %s", path,
                       strerror(e));
    }
    if (pid == 0) {
        close(fds[0]);
        probe_child(fds[1], parent, fn, arg);
    }
    close(fds[1]);
    probe_report *r = calloc(1, sizeof *r);
    if (!r) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(fds[0]);
        return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", path);
    }
    probe_wait(pid, fds[0], timeout_ms, r);
    close(fds[0]);
    int rc = probe_verdict(path, timeout_ms, r, errptr);
    free(r);
    return rc;
}
