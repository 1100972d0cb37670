#include "runtime/guard.h"

#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "plugin/registry.h"
#include "runtime/task.h"
#include "runtime/worker.h"

/* Size of the alternate signal stacks (mapped lazily by the kernel). */
#define GUARD_ALTSTACK_BYTES ((size_t)256 * 1024)
/* Frames in a backtrace. */
#define GUARD_FRAMES         64
/* How long the watchdog waits for the stuck thread's backtrace. */
#define GUARD_DUMP_WAIT_NS   (2LL * 1000 * 1000 * 1000)
/* The watchdog's tick: a tenth of the limit, within these bounds. */
#define GUARD_TICK_MIN_NS    (10LL * 1000 * 1000)
#define GUARD_TICK_MAX_NS    (1000LL * 1000 * 1000)

/* The signal the watchdog sends a stuck thread for its backtrace. */
#define GUARD_SIG_DUMP (SIGRTMIN + 2)

static const int guard_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define GUARD_N_SIGNALS (sizeof guard_signals / sizeof guard_signals[0])

static const char *const guard_cb_names[GUARD_N_CB] = {
    [GUARD_NONE] = "none",
    [GUARD_OPEN] = "open",
    [GUARD_RESTORE] = "restore",
    [GUARD_POLL] = "poll",
    [GUARD_PROCESS] = "process",
    [GUARD_ON_WATERMARK] = "on_watermark",
    [GUARD_ON_TIMER] = "on_timer",
    [GUARD_ON_STATE_EXPIRED] = "on_state_expired",
    [GUARD_SNAPSHOT] = "snapshot",
    [GUARD_NOTIFY_CHECKPOINT_COMPLETE] = "notify_checkpoint_complete",
    [GUARD_FINISH] = "finish",
    [GUARD_CLOSE] = "close",
    [GUARD_PROCESS_BROADCAST] = "process_broadcast",
    [GUARD_ASYNC_INVOKE] = "async_invoke",
    [GUARD_ON_ASYNC_RESULT] = "on_async_result",
    [GUARD_MIGRATE_STATE] = "migrate_state",
};

/* The actions in place before guard_install(), which the crash handler
 * restores before the signal is delivered again. */
static struct sigaction guard_old[GUARD_N_SIGNALS];
static atomic_int guard_installed;
/* Set by the stuck thread once its backtrace is written. */
static atomic_int guard_dumped;

/* The subtask the thread runs, and the signal stack guard.c mapped for it
 * (NULL when the thread had one already). Initial-exec TLS: reading it in a
 * signal handler allocates nothing. */
static _Thread_local __attribute__((tls_model("initial-exec")))
task *guard_self;
static _Thread_local
    __attribute__((tls_model("initial-exec"))) void *guard_altstack;

const char *guard_cb_name(guard_cb cb)
{
    return (unsigned)cb < GUARD_N_CB ? guard_cb_names[cb] : "?";
}

/* ------------------------------------------------------------------------ */
/* Async-signal-safe formatting                                              */
/* ------------------------------------------------------------------------ */

typedef struct guard_line {
    char b[1024];
    size_t n;
} guard_line;

static void guard_put(guard_line *l, const char *s)
{
    for (; s && *s && l->n < sizeof l->b - 1; s++)
        l->b[l->n++] = *s;
}

static void guard_put_hex(guard_line *l, uintptr_t v)
{
    char d[2 * sizeof v + 1];
    size_t i = sizeof d - 1;
    d[i] = 0;
    do {
        d[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v && i > 0);
    guard_put(l, "0x");
    guard_put(l, d + i);
}

static void guard_write(const guard_line *l)
{
    ssize_t w = write(STDERR_FILENO, l->b, l->n);
    (void)w;
}

static const char *guard_signame(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "a signal";
    }
}

/* " in count#1 (type count, plugin /x/count.so) in process()". */
static void guard_put_where(guard_line *l, const task *t, guard_cb cb)
{
    guard_put(l, " in ");
    guard_put(l, t->who);
    guard_put(l, " (type ");
    guard_put(l, t->op->type);
    guard_put(l, ", plugin ");
    guard_put(l, t->reg->plugin ? t->reg->plugin->path : "?");
    guard_put(l, ") in ");
    guard_put(l, guard_cb_name(cb));
    guard_put(l, "()");
}

static void guard_backtrace(void)
{
    void *frames[GUARD_FRAMES];
    int n = backtrace(frames, GUARD_FRAMES);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
}

/* ------------------------------------------------------------------------ */
/* Signal handlers                                                           */
/* ------------------------------------------------------------------------ */

static void guard_on_crash(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    const task *t = guard_self;
    guard_cb cb = t ? (guard_cb)(atomic_load_explicit(&t->guard.word,
                                                      memory_order_relaxed) &
                                 GUARD_CB_MASK)
                    : GUARD_NONE;
    guard_line l = {.n = 0};
    guard_put(&l, "weir: worker crashed: ");
    guard_put(&l, guard_signame(sig));
    if (cb != GUARD_NONE) {
        guard_put_where(&l, t, cb);
    } else {
        guard_put(&l, " in host code");
        if (t) {
            guard_put(&l, " (thread of ");
            guard_put(&l, t->who);
            guard_put(&l, ")");
        }
    }
    /* A fault the kernel raised has an address; a kill() or raise() not. */
    if (si && si->si_code > 0) {
        guard_put(&l, " at address ");
        guard_put_hex(&l, (uintptr_t)si->si_addr);
    }
    guard_put(&l, "\n");
    guard_write(&l);
    guard_backtrace();
    for (size_t i = 0; i < GUARD_N_SIGNALS; i++)
        if (guard_signals[i] == sig)
            sigaction(sig, &guard_old[i], NULL);
    /* A fault happens again when the handler returns, now under the
     * restored action, which sees the original siginfo. A sent signal is
     * sent again: pending until the handler returns (it is blocked in it),
     * then delivered under the restored action. */
    if (!si || si->si_code <= 0)
        raise(sig);
}

static void guard_on_dump(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    int saved = errno;
    const task *t = guard_self;
    guard_line l = {.n = 0};
    if (t) {
        guard_cb cb = (guard_cb)(atomic_load_explicit(&t->guard.word,
                                                      memory_order_relaxed) &
                                 GUARD_CB_MASK);
        guard_put(&l, "weir: backtrace of the stuck thread");
        guard_put_where(&l, t, cb);
        guard_put(&l, ":\n");
        guard_write(&l);
        guard_backtrace();
    }
    atomic_store(&guard_dumped, 1);
    errno = saved;
}

/* Gives the calling thread an alternate signal stack unless it has one
 * (a sanitizer runtime gives every thread its own). */
static void guard_altstack_begin(void)
{
    stack_t old;
    if (sigaltstack(NULL, &old) < 0 || !(old.ss_flags & SS_DISABLE))
        return;
    void *p = mmap(NULL, GUARD_ALTSTACK_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return;
    stack_t ss = {.ss_sp = p, .ss_size = GUARD_ALTSTACK_BYTES};
    if (sigaltstack(&ss, NULL) < 0) {
        munmap(p, GUARD_ALTSTACK_BYTES);
        return;
    }
    guard_altstack = p;
}

void guard_install(void)
{
    if (atomic_exchange(&guard_installed, 1))
        return;
    /* The first backtrace() loads libgcc_s (dlopen, malloc): not in a
     * signal handler. */
    void *frames[4];
    backtrace(frames, 4);
    guard_altstack_begin();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sa.sa_sigaction = guard_on_crash;
    for (size_t i = 0; i < GUARD_N_SIGNALS; i++)
        if (sigaction(guard_signals[i], &sa, &guard_old[i]) < 0)
            log_msg(WEIR_LOG_WARN, "guard", "cannot handle %s: %s",
                    guard_signame(guard_signals[i]), strerror(errno));
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sa.sa_sigaction = guard_on_dump;
    if (sigaction(GUARD_SIG_DUMP, &sa, NULL) < 0)
        log_msg(WEIR_LOG_WARN, "guard", "cannot handle SIGRTMIN+2: %s",
                strerror(errno));
}

void guard_thread_begin(task *t)
{
    guard_self = t;
    guard_altstack_begin();
}

task *guard_thread_switch(task *t)
{
    task *was = guard_self;
    guard_self = t;
    return was;
}

void guard_thread_end(void)
{
    guard_self = NULL;
    if (!guard_altstack)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    if (sigaltstack(&ss, NULL) == 0)
        munmap(guard_altstack, GUARD_ALTSTACK_BYTES);
    guard_altstack = NULL;
}

/* ------------------------------------------------------------------------ */
/* The watchdog                                                              */
/* ------------------------------------------------------------------------ */

struct guard_watch {
    rt_job *rt;
    int64_t limit_ns, tick_ns;
    uint64_t *seen;   /* per task: the mark last read */
    int64_t *seen_ns; /* per task: when it was first read */
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop */
    pthread_cond_t cond;
    int stop;
};

static int64_t guard_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Asks the stuck thread for its backtrace and waits a while for it. */
static void guard_dump(const task *t)
{
    /* A chained member runs in its chain head's thread. */
    const task *h = t->chain_head ? t->chain_head : t;
    if (!atomic_load(&guard_installed) ||
        pthread_kill(h->thread, GUARD_SIG_DUMP) != 0)
        return;
    int64_t end = guard_now_ns() + GUARD_DUMP_WAIT_NS;
    struct timespec pause = {0, 10L * 1000 * 1000};
    while (!atomic_load(&guard_dumped) && guard_now_ns() < end)
        nanosleep(&pause, NULL);
}

/* Reports the stuck subtask and ends the process. */
static void guard_stuck(const guard_watch *w, const task *t, guard_cb cb,
                        int64_t ns)
{
    log_msg(WEIR_LOG_ERROR, "watchdog",
            "%s (type %s, plugin %s) has been in %s() for %.1f s, over "
            "runtime.callback_timeout %.1f s: ending the worker",
            t->who, t->op->type, t->reg->plugin ? t->reg->plugin->path : "?",
            guard_cb_name(cb), (double)ns / 1e9, (double)w->limit_ns / 1e9);
    guard_dump(t);
    _exit(worker_failed_exit_code());
}

/* Reads every mark once. A mark is stuck when it has not changed since it
 * was first read, callback_timeout ago, and shows a callback. */
static void guard_check(guard_watch *w)
{
    int64_t now = guard_now_ns();
    for (uint32_t i = 0; i < w->rt->n_tasks; i++) {
        const task *t = &w->rt->tasks[i];
        uint64_t word =
            atomic_load_explicit(&t->guard.word, memory_order_relaxed);
        /* In a call into a chained member: the member's mark is watched,
         * and this one's time starts again when the call returns. */
        if (word != w->seen[i] ||
            atomic_load_explicit(&t->chain_busy, memory_order_relaxed)) {
            w->seen[i] = word;
            w->seen_ns[i] = now;
            continue;
        }
        guard_cb cb = (guard_cb)(word & GUARD_CB_MASK);
        if (cb != GUARD_NONE && now - w->seen_ns[i] >= w->limit_ns)
            guard_stuck(w, t, cb, now - w->seen_ns[i]);
    }
}

static void *guard_watch_main(void *arg)
{
    guard_watch *w = arg;
    int64_t next = guard_now_ns();
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        next += w->tick_ns;
        struct timespec ts = {.tv_sec = next / 1000000000,
                              .tv_nsec = next % 1000000000};
        while (!w->stop &&
               pthread_cond_timedwait(&w->cond, &w->lock, &ts) != ETIMEDOUT)
            ;
        if (w->stop)
            break;
        pthread_mutex_unlock(&w->lock);
        guard_check(w);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static void guard_watch_free(guard_watch *w)
{
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w->seen);
    free(w->seen_ns);
    free(w);
}

guard_watch *guard_watch_start(rt_job *rt)
{
    int64_t limit_ms = topo_param_int(&rt->job->runtime, "callback_timeout");
    if (limit_ms <= 0)
        return NULL;
    guard_watch *w = calloc(1, sizeof *w);
    if (!w)
        goto fail;
    w->rt = rt;
    w->limit_ns = limit_ms * 1000000;
    w->tick_ns = w->limit_ns / 10;
    if (w->tick_ns < GUARD_TICK_MIN_NS)
        w->tick_ns = GUARD_TICK_MIN_NS;
    if (w->tick_ns > GUARD_TICK_MAX_NS)
        w->tick_ns = GUARD_TICK_MAX_NS;
    w->seen = calloc(rt->n_tasks + 1, sizeof *w->seen);
    w->seen_ns = calloc(rt->n_tasks + 1, sizeof *w->seen_ns);
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!w->seen || !w->seen_ns) {
        guard_watch_free(w);
        goto fail;
    }
    int e = pthread_create(&w->thread, NULL, guard_watch_main, w);
    if (e != 0) {
        log_msg(WEIR_LOG_WARN, "watchdog", "cannot start: %s", strerror(e));
        guard_watch_free(w);
        return NULL;
    }
    return w;
fail:
    log_msg(WEIR_LOG_WARN, "watchdog", "cannot start: out of memory");
    return NULL;
}

void guard_watch_stop(guard_watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    guard_watch_free(w);
}
