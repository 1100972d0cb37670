/*
 * supervisor.c - the restart strategies and the supervisor process.
 *
 * Restart strategies (the topology's `restart` section). A "failure" is a
 * worker that died by a signal or exited with any code other than
 * WORKER_EXIT_OK and WORKER_EXIT_UNRECOVERABLE. The strategy sees each
 * failure with the time it happened and how long the worker had run, and
 * either gives a delay before the next start or gives up.
 *
 *   none               No restart: the first failure ends the run
 *                      (SUP_EXIT_FAILED).
 *   fixed_delay        Up to `attempts` restarts over the whole run, each
 *                      after `delay`; failure number attempts + 1 ends the
 *                      run (SUP_EXIT_EXHAUSTED). attempts: 0 allows none.
 *   exponential_delay  Restarts without limit (as in Flink). The first
 *                      delay is `initial_delay`; each failure multiplies the
 *                      next one by `multiplier`, up to `max_delay`. `jitter`
 *                      j moves every delay by a uniformly drawn share in
 *                      [-j, +j] of itself (from a deterministic PRNG seeded
 *                      by the tracker), and the result never exceeds
 *                      max_delay. A worker that ran for at least
 *                      `reset_after` before it failed resets the delay to
 *                      initial_delay (reset_after: 0 never resets).
 *   failure_rate       Restarts after `delay` as long as at most
 *                      `max_failures` failures fall within the last
 *                      `interval` (a failure at t counts at `now` while
 *                      now - t < interval); the failure that makes it
 *                      max_failures + 1 ends the run (SUP_EXIT_EXHAUSTED).
 *
 * The supervisor process. Signals SIGINT, SIGTERM and SIGCHLD are blocked
 * and read from a signalfd, polled together with the control endpoint
 * (supctl.h): the supervisor sleeps until
 * the worker dies (SIGCHLD), a stop signal arrives, or a restart delay
 * ends; it never polls. The worker is forked with SIGINT and SIGTERM still
 * blocked (so a stop request sent before the worker is ready stays pending
 * until it waits for it), in its own process group (a terminal's Ctrl-C
 * reaches the supervisor only, which forwards it once), and with
 * PR_SET_PDEATHSIG = SIGKILL so that it dies with the supervisor.
 */
#include "supervisor/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/crash.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "runtime/worker.h"
#include "supervisor/supctl.h"

#define SUP_WHO "supervisor"

/* ------------------------------------------------------------------------ */
/* Strategies                                                                */
/* ------------------------------------------------------------------------ */

static const char *const sup_kind_names[] = {
    "none", "fixed_delay", "exponential_delay", "failure_rate"};

static const char *sup_kind_name(sup_kind k)
{
    return (unsigned)k < 4 ? sup_kind_names[k] : "?";
}

void sup_strategy_from_topology(const topo_params *restart, sup_strategy *out)
{
    memset(out, 0, sizeof *out);
    const char *name = topo_param_str(restart, "strategy");
    out->kind = SUP_NONE;
    for (int k = 0; name && k < 4; k++) {
        if (!strcmp(name, sup_kind_names[k]))
            out->kind = (sup_kind)k;
    }
    out->attempts = (uint32_t)topo_param_int(restart, "attempts");
    out->delay_ms = topo_param_int(restart, "delay");
    out->initial_delay_ms = topo_param_int(restart, "initial_delay");
    out->max_delay_ms = topo_param_int(restart, "max_delay");
    out->multiplier = topo_param_double(restart, "multiplier");
    out->jitter = topo_param_double(restart, "jitter");
    out->reset_after_ms = topo_param_int(restart, "reset_after");
    out->max_failures = (uint32_t)topo_param_int(restart, "max_failures");
    out->interval_ms = topo_param_int(restart, "interval");
}

void sup_tracker_init(sup_tracker *t, const sup_strategy *s, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->s = *s;
    t->next_delay_ms = s->initial_delay_ms;
    t->rng = seed;
}

void sup_tracker_free(sup_tracker *t)
{
    free(t->times);
    t->times = NULL;
    t->n_times = 0;
}

/* splitmix64: a uniform double in [0, 1). */
static double sup_rand_unit(sup_tracker *t)
{
    uint64_t z = (t->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

static int64_t sup_clamp_ms(double v, int64_t max)
{
    if (!(v > 0))
        return 0;
    if (v >= (double)max)
        return max;
    return (int64_t)llround(v);
}

static int sup_exponential(sup_tracker *t, int64_t ran_ms, int64_t *delay_ms)
{
    const sup_strategy *s = &t->s;
    if (s->reset_after_ms > 0 && ran_ms >= s->reset_after_ms) {
        t->next_delay_ms = s->initial_delay_ms;
        t->failures = 0;
    }
    t->failures++;
    int64_t base =
        t->next_delay_ms < s->max_delay_ms ? t->next_delay_ms : s->max_delay_ms;
    double d = (double)base;
    if (s->jitter > 0)
        d *= 1.0 + s->jitter * (2.0 * sup_rand_unit(t) - 1.0);
    *delay_ms = sup_clamp_ms(d, s->max_delay_ms);
    t->next_delay_ms =
        sup_clamp_ms((double)base * s->multiplier, s->max_delay_ms);
    return 1;
}

/* Keeps the failure times within the window ending at now_ms, and records
 * now_ms unless that makes more than max_failures. */
static int sup_failure_rate(sup_tracker *t, int64_t now_ms, int64_t *delay_ms)
{
    const sup_strategy *s = &t->s;
    uint32_t old = 0;
    while (old < t->n_times && now_ms - t->times[old] >= s->interval_ms)
        old++;
    if (old > 0) {
        memmove(t->times, t->times + old,
                (t->n_times - old) * sizeof *t->times);
        t->n_times -= old;
    }
    t->failures++;
    if (t->n_times + 1 > s->max_failures)
        return 0;
    int64_t *v = realloc(t->times, (t->n_times + 1) * sizeof *v);
    if (!v)
        return 0; /* cannot count: give up rather than restart blindly */
    t->times = v;
    t->times[t->n_times++] = now_ms;
    *delay_ms = s->delay_ms;
    return 1;
}

int sup_on_failure(sup_tracker *t, int64_t now_ms, int64_t ran_ms,
                   int64_t *delay_ms)
{
    *delay_ms = 0;
    switch (t->s.kind) {
    case SUP_FIXED_DELAY:
        t->failures++;
        if (t->failures > t->s.attempts)
            return 0;
        *delay_ms = t->s.delay_ms;
        return 1;
    case SUP_EXPONENTIAL_DELAY: return sup_exponential(t, ran_ms, delay_ms);
    case SUP_FAILURE_RATE: return sup_failure_rate(t, now_ms, delay_ms);
    case SUP_NONE:
    default: t->failures++; return 0;
    }
}

/* ------------------------------------------------------------------------ */
/* Run directory                                                             */
/* ------------------------------------------------------------------------ */

/* The job name as a path component: never "." or "..", never a '/'. */
static const char *sup_job_dir_name(const topo_job *job)
{
    const char *name = job->name;
    if (!name || !*name || !strcmp(name, ".") || !strcmp(name, "..") ||
        strchr(name, '/'))
        return "job";
    return name;
}

int sup_run_dir_create(const topo_job *job, char **out, char **errptr)
{
    *out = NULL;
    const char *base = topo_param_str(&job->checkpoint, "dir");
    if (!base || !*base)
        base = ".";
    const char *name = sup_job_dir_name(job);
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    char *path = NULL;
    if (asprintf(&path, "%s/%s/%s-%ld", base, name, stamp, (long)getpid()) < 0)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    /* The run directory holds the control endpoints (always 0600) and the
     * checkpoints; its mode follows runtime.file_access (0700 by default). */
    int rc = fs_mkdirs(path, errptr);
    if (rc < 0) {
        free(path);
        return rc;
    }
    *out = path;
    return 0;
}

void sup_run_dir_finish(const topo_job *job, const char *run_dir)
{
    if (topo_param_int(&job->checkpoint, "interval") > 0)
        return; /* it holds the run's checkpoints */
    char *err = NULL;
    if (fs_rmtree(run_dir, &err) < 0) {
        log_msg(WEIR_LOG_WARN, SUP_WHO, "%s", err);
        free(err);
        return;
    }
    /* The job's and the base directory too, when nothing else is there. */
    char *dir = strdup(run_dir);
    for (int up = 0; dir && up < 2; up++) {
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
            break;
        *slash = 0;
        if (rmdir(dir) < 0)
            break;
    }
    free(dir);
}

static int sup_has_keyed(const topo_job *job)
{
    for (size_t i = 0; i < job->n_ops; i++)
        if (job->ops[i].reg->op.flags & WEIR_OP_KEYED)
            return 1;
    return 0;
}

/*
 * The longest wait for a run lock. Its holder is a supervisor: one thread,
 * which releases its locks as soon as it dies, so a longer wait only delays
 * the refusal of a second run of a job that is running.
 */
#define SUP_RUN_LOCK_WAIT_MS 1000

/* Locks `name` in `dir` and appends the descriptor to `l`. */
static int sup_lock_add(const topo_job *job, sup_locks *l, const char *dir,
                        const char *name, const char *what, char **errptr)
{
    int *v = realloc(l->fd, (l->n + 1) * sizeof *v);
    if (!v)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    l->fd = v;
    int64_t wait_ms = topo_param_int(&job->runtime, "lock_wait");
    if (wait_ms > SUP_RUN_LOCK_WAIT_MS)
        wait_ms = SUP_RUN_LOCK_WAIT_MS;
    int rc = fs_lock_dir(dir, name, what, wait_ms, errptr);
    if (rc < 0)
        return rc;
    l->fd[l->n++] = rc;
    return 0;
}

/* Locks <section.dir>/<job>/.run.lock. */
static int sup_lock_section(const topo_job *job, sup_locks *l,
                            const topo_params *section, const char *what,
                            char **errptr)
{
    const char *base = topo_param_str(section, "dir");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", base && *base ? base : ".",
             sup_job_dir_name(job));
    return sup_lock_add(job, l, dir, ".run.lock", what, errptr);
}

/* Whether an earlier output parameter of the job names the same path
 * (locking it twice would find it locked by ourselves). */
static int sup_output_seen(const topo_job *job, size_t op, size_t k)
{
    const topo_value *v = &job->ops[op].config.v[k];
    for (size_t i = 0; i <= op; i++) {
        const topo_params *p = &job->ops[i].config;
        for (size_t j = 0; j < (i == op ? k : p->n); j++)
            if (p->v[j].is_set && p->v[j].str &&
                (p->v[j].def->flags & WEIR_PARAM_OUTPUT_PATH) &&
                !strcmp(p->v[j].str, v->str))
                return 1;
    }
    return 0;
}

/* Locks the file .<base>.run.lock beside an operator's output path. */
static int sup_lock_output(const topo_job *job, sup_locks *l, size_t op,
                           size_t k, char **errptr)
{
    const char *path = job->ops[op].config.v[k].str;
    char dir[4096], name[1024], what[512];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
        return 0; /* a directory spelled with a trailing '/': none beside */
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path + 1), path);
    else
        snprintf(dir, sizeof dir, ".");
    snprintf(name, sizeof name, ".%s.run.lock", base);
    snprintf(what, sizeof what, "output %s of operator '%s'", path,
             job->ops[op].id);
    int rc = sup_lock_add(job, l, dir, name, what, errptr);
    return rc;
}

int sup_lock_run(const topo_job *job, sup_locks *out, char **errptr)
{
    *out = (sup_locks){0};
    int rc = 0;
    if (topo_param_int(&job->checkpoint, "interval") > 0)
        rc = sup_lock_section(job, out, &job->checkpoint,
                              "checkpoint directory", errptr);
    if (rc == 0 && sup_has_keyed(job))
        rc = sup_lock_section(job, out, &job->state, "state directory", errptr);
    for (size_t i = 0; rc == 0 && i < job->n_ops; i++) {
        const topo_params *p = &job->ops[i].config;
        for (size_t k = 0; rc == 0 && k < p->n; k++)
            if (p->v[k].is_set && p->v[k].str && *p->v[k].str &&
                (p->v[k].def->flags & WEIR_PARAM_OUTPUT_PATH) &&
                !sup_output_seen(job, i, k))
                rc = sup_lock_output(job, out, i, k, errptr);
    }
    if (rc < 0)
        sup_unlock_run(out);
    return rc;
}

void sup_unlock_run(sup_locks *l)
{
    for (size_t i = 0; i < l->n; i++)
        close(l->fd[i]);
    free(l->fd);
    *l = (sup_locks){0};
}

/* ------------------------------------------------------------------------ */
/* The supervisor process                                                    */
/* ------------------------------------------------------------------------ */

typedef struct sup_state {
    const topo_job *job;
    const sup_options *opts;
    char *run_dir;
    sigset_t waitset;    /* SIGINT, SIGTERM, SIGCHLD: blocked, waited for */
    sigset_t child_mask; /* the worker's mask: the caller's + INT, TERM */
    pid_t worker;
    int attempt;            /* of the running (or next) worker */
    int stop;               /* 0; 1 a stop was forwarded; 2 the worker killed */
    int64_t start_ns;       /* the running worker's fork */
    int64_t death_ns;       /* the last failure's SIGCHLD; 0 before any */
    int64_t delay_ns;       /* time spent in the last restart delay */
    int64_t stop_ns;        /* when the first stop was forwarded */
    int report_fd;          /* read end of the running worker's report pipe */
    int reported;           /* the exit code the worker reported, or -1 */
    int sfd;                /* signalfd of waitset */
    supctl *ctl;            /* the control endpoint, or NULL */
    int64_t run_started_ms; /* wall clock */
    char last_failure[256]; /* how the last worker failed */
} sup_state;

/* The worker gets this long past runtime.stop_timeout to end by itself
 * (it ends itself at stop_timeout) before the supervisor kills it. */
#define SUP_STOP_MARGIN_MS 5000

static int64_t sup_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t sup_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *sup_signame(int sig, char *buf, size_t len)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, len, "SIG%s", abbrev);
    else
        snprintf(buf, len, "signal %d", sig);
    return buf;
}

static const char *sup_code_cause(int code)
{
    switch (code) {
    case WORKER_EXIT_OK: return "finished";
    case WORKER_EXIT_FAILED: return "job failed";
    case WORKER_EXIT_UNRECOVERABLE: return "unrecoverable";
    case WORKER_EXIT_LOCKED: return "state directory locked";
    case CRASH_EXIT_CODE: return "crash point";
    case 127: return "cannot execute the worker";
    default: return "unexpected exit code";
    }
}

/* Whether exit code `code` can be taken as the worker's own: a code that
 * ends the run counts only when the worker reported it. */
static int sup_trusted(const sup_state *st, int code)
{
    switch (code) {
    case WORKER_EXIT_OK:
    case WORKER_EXIT_UNRECOVERABLE:
    case WORKER_EXIT_LOCKED: return code == st->reported;
    default: return 1;
    }
}

/* Logs how the worker ended, in one line, and keeps it for `status`. */
static void sup_log_end(sup_state *st, int status, double ran_s,
                        weir_log_level level)
{
    char sig[32];
    if (st->worker && WIFSIGNALED(status))
        snprintf(st->last_failure, sizeof st->last_failure,
                 "worker %ld killed by %s after %.1f s", (long)st->worker,
                 sup_signame(WTERMSIG(status), sig, sizeof sig), ran_s);
    else if (st->worker)
        snprintf(st->last_failure, sizeof st->last_failure,
                 "worker %ld exited with code %d after %.1f s",
                 (long)st->worker, WEXITSTATUS(status), ran_s);
    if (st->worker == 0)
        log_msg(level, SUP_WHO, "no worker could be started");
    else if (WIFSIGNALED(status))
        log_msg(level, SUP_WHO, "worker %ld killed by %s after %.1f s",
                (long)st->worker,
                sup_signame(WTERMSIG(status), sig, sizeof sig), ran_s);
    else
        log_msg(level, SUP_WHO,
                "worker %ld exited with code %d (%s) after "
                "%.1f s",
                (long)st->worker, WEXITSTATUS(status),
                sup_trusted(st, WEXITSTATUS(status))
                    ? sup_code_cause(WEXITSTATUS(status))
                    : "not reported by the worker",
                ran_s);
}

/* Builds the worker's argv; the strings are borrowed except the attempt
 * number, which lives in `num`. */
static char **sup_worker_argv(const sup_state *st, char *num, size_t num_len)
{
    const sup_options *o = st->opts;
    char **v = calloc(13 + 2 * o->n_plugin_dirs, sizeof *v);
    if (!v)
        return NULL;
    size_t n = 0;
    v[n++] = (char *)o->self;
    v[n++] = "run";
    v[n++] = "--worker";
    v[n++] = "--run-dir";
    v[n++] = st->run_dir;
    if (o->allow_non_restored)
        v[n++] = "--allow-non-restored-state";
    if (o->from) { /* also on restarts: the run may have no checkpoint */
        v[n++] = "--from";
        v[n++] = (char *)o->from;
    }
    snprintf(num, num_len, "%d", st->attempt);
    v[n++] = "--attempt";
    v[n++] = num;
    for (size_t i = 0; i < o->n_plugin_dirs; i++) {
        v[n++] = "--dir";
        v[n++] = (char *)o->plugin_dirs[i];
    }
    v[n++] = "--"; /* a job path may start with '-' */
    v[n++] = (char *)o->job_path;
    v[n] = NULL;
    return v;
}

/* The child side of the fork: async-signal-safe calls only. */
static void sup_exec_worker(const sup_state *st, pid_t parent, char **argv,
                            char **envp, int report_fd)
{
    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    sigprocmask(SIG_SETMASK, &st->child_mask, NULL);
    /* The report pipe's write end is the one descriptor the worker keeps. */
    fcntl(report_fd, F_SETFD, 0);
    execve(argv[0], argv, envp);
    /* One write, so that the line never interleaves with another's. */
    char msg[4200];
    static const char head[] = "weir: supervisor: cannot execute ";
    size_t n = sizeof head - 1, a = strlen(argv[0]);
    if (a > sizeof msg - n - 1)
        a = sizeof msg - n - 1;
    memcpy(msg, head, n);
    memcpy(msg + n, argv[0], a);
    msg[n + a] = '\n';
    ssize_t w = write(STDERR_FILENO, msg, n + a + 1);
    (void)w;
    _exit(127);
}

/* The worker's environment: ours, with WORKER_REPORT_ENV set to `fd`.
 * The strings are borrowed except the new entry, which lives in `buf`. */
static char **sup_worker_env(int fd, char *buf, size_t len)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **v = calloc(n + 2, sizeof *v);
    if (!v)
        return NULL;
    const size_t klen = strlen(WORKER_REPORT_ENV);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], WORKER_REPORT_ENV, klen) != 0 ||
            environ[i][klen] != '=')
            v[k++] = environ[i];
    snprintf(buf, len, "%s=%d", WORKER_REPORT_ENV, fd);
    v[k++] = buf;
    v[k] = NULL;
    return v;
}

/* Reads what the reaped worker reported on its pipe (it is gone, so the
 * pipe holds all it wrote) and closes the pipe. */
static void sup_read_report(sup_state *st)
{
    st->reported = -1;
    if (st->report_fd < 0)
        return;
    char buf[64];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(st->report_fd, buf + n, sizeof buf - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == sizeof buf - 1)
            break;
    }
    buf[n] = 0;
    int code;
    char nl;
    if (sscanf(buf, "exit %d%c", &code, &nl) == 2 && nl == '\n')
        st->reported = code;
    close(st->report_fd);
    st->report_fd = -1;
}

/* Starts a worker with st->attempt. Returns 0, or -1 when fork failed
 * (logged). */
static int sup_spawn(sup_state *st)
{
    char num[24], envbuf[64];
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        log_msg(WEIR_LOG_ERROR, SUP_WHO, "cannot start a worker: pipe: %s",
                strerror(errno));
        return -1;
    }
    char **argv = sup_worker_argv(st, num, sizeof num);
    char **envp = sup_worker_env(pfd[1], envbuf, sizeof envbuf);
    if (!argv || !envp) {
        log_msg(WEIR_LOG_ERROR, SUP_WHO, "out of memory");
        free(argv), free(envp);
        close(pfd[0]), close(pfd[1]);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    int err = errno;
    if (pid == 0)
        sup_exec_worker(st, parent, argv, envp, pfd[1]);
    int64_t now = sup_now_ns();
    free(argv);
    free(envp);
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        log_msg(WEIR_LOG_ERROR, SUP_WHO, "cannot start a worker: fork: %s",
                strerror(err));
        return -1;
    }
    st->report_fd = pfd[0];
    st->worker = pid;
    st->start_ns = now;
    log_msg(WEIR_LOG_INFO, SUP_WHO, "worker %ld started (attempt %d)",
            (long)pid, st->attempt);
    if (st->death_ns) {
        double total = (double)(now - st->death_ns) / 1e6;
        double delay = (double)st->delay_ns / 1e6;
        log_msg(WEIR_LOG_INFO, SUP_WHO,
                "worker restarted %.1f ms after the failure (plus %.1f ms "
                "restart delay)",
                total - delay, delay);
    }
    return 0;
}

/* A stop signal while the worker runs: the first is forwarded, the next
 * kills the worker. */
static void sup_forward(sup_state *st, int sig)
{
    char name[32];
    sup_signame(sig, name, sizeof name);
    if (st->stop == 0) {
        log_msg(WEIR_LOG_INFO, SUP_WHO, "%s: stopping worker %ld", name,
                (long)st->worker);
        kill(st->worker, sig);
        st->stop = 1;
        st->stop_ns = sup_now_ns();
    } else {
        log_msg(WEIR_LOG_WARN, SUP_WHO, "%s again: killing worker %ld", name,
                (long)st->worker);
        kill(st->worker, SIGKILL);
        st->stop = 2;
    }
}

/* What the control endpoint says of the run. */
static supctl_info sup_info(const sup_state *st, const char *state)
{
    return (supctl_info){.worker = (long)st->worker,
                         .attempt = st->attempt,
                         .restarts = (uint32_t)st->attempt,
                         .run_started_ms = st->run_started_ms,
                         .state = state,
                         .last_failure =
                             st->last_failure[0] ? st->last_failure : NULL};
}

/*
 * Waits until a signal arrives (returns its number) or `deadline` (CLOCK_
 * MONOTONIC ns; INT64_MAX: none) passes (returns 0), serving the control
 * endpoint meanwhile.
 */
static int sup_wait_event(sup_state *st, int64_t deadline, const char *state)
{
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(st->sfd, &si, sizeof si);
        if (n == (ssize_t)sizeof si)
            return (int)si.ssi_signo;
        int64_t now = sup_now_ns();
        if (now >= deadline)
            return 0;
        int64_t until = supctl_deadline_ns(st->ctl);
        if (deadline < until)
            until = deadline;
        long timeout = -1;
        if (until != INT64_MAX)
            timeout = (long)((until - now + 999999) / 1000000);
        zmq_pollitem_t items[2] = {{.fd = st->sfd, .events = ZMQ_POLLIN}};
        int n_items = 1;
        if (st->ctl)
            n_items += supctl_poll_items(st->ctl, items + 1);
        if (zmq_poll(items, n_items, timeout) < 0 && errno != EINTR)
            log_msg(WEIR_LOG_WARN, SUP_WHO, "poll: %s", zmq_strerror(errno));
        supctl_info info = sup_info(st, state);
        supctl_handle(st->ctl, items + 1, n_items - 1, &info);
    }
}

/* Waits until the worker is reaped, forwarding stop signals meanwhile.
 * Returns its wait status; sets st->death_ns. */
static int sup_wait_worker(sup_state *st)
{
    const int64_t grace_ns =
        (topo_param_int(&st->job->runtime, "stop_timeout") +
         SUP_STOP_MARGIN_MS) *
        1000000;
    for (;;) {
        int64_t deadline = INT64_MAX;
        if (st->stop == 1) {
            deadline = st->stop_ns + grace_ns;
            if (sup_now_ns() >= deadline) {
                log_msg(WEIR_LOG_ERROR, SUP_WHO,
                        "worker %ld did not stop within %.1f s: killing it",
                        (long)st->worker, (double)grace_ns / 1e9);
                kill(st->worker, SIGKILL);
                st->stop = 2;
                continue;
            }
        }
        int sig =
            sup_wait_event(st, deadline, st->stop ? "stopping" : "running");
        if (sig == 0)
            continue;
        if (sig != SIGCHLD) {
            sup_forward(st, sig);
            continue;
        }
        int64_t now = sup_now_ns();
        int status = 0;
        pid_t r;
        do
            r = waitpid(st->worker, &status, WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r == st->worker || (r < 0 && errno == ECHILD)) {
            if (r < 0) /* cannot happen: the worker is our child */
                status = WORKER_EXIT_FAILED << 8;
            st->death_ns = now;
            sup_read_report(st);
            supctl_info info = sup_info(st, "running");
            supctl_worker_ended(st->ctl, "its process is gone", &info);
            return status;
        }
    }
}

/* Sleeps for the restart delay. Returns 1 when a stop signal arrived
 * (at once; also one already pending when the delay is 0), 0 when the
 * delay is over. */
static int sup_sleep(sup_state *st, int64_t delay_ms)
{
    const int64_t max_ms = INT64_MAX / 4 / 1000000; /* ~73 years */
    int64_t t0 = sup_now_ns();
    int64_t deadline = t0 + (delay_ms < max_ms ? delay_ms : max_ms) * 1000000;
    int stopped = 0;
    pid_t worker = st->worker;
    st->worker = 0; /* none runs: the control endpoint says so */
    for (;;) {
        int sig = sup_wait_event(st, deadline, "restarting");
        if (sig == SIGINT || sig == SIGTERM) {
            char name[32];
            log_msg(WEIR_LOG_INFO, SUP_WHO,
                    "%s during the restart delay: not restarting",
                    sup_signame(sig, name, sizeof name));
            stopped = 1;
            break;
        }
        if (sig == 0)
            break;
    }
    st->worker = worker;
    st->delay_ns = sup_now_ns() - t0;
    return stopped;
}

/* The code to exit with after a worker ended with `status`, or -1 to
 * restart it. */
static int sup_decide(sup_state *st, sup_tracker *tr, int status)
{
    double ran_s = (double)(st->death_ns - st->start_ns) / 1e9;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code >= 0 && !sup_trusted(st, code)) {
        /* Not the worker's own decision: a plugin called exit(), or the
         * worker died before it could say why. */
        log_msg(WEIR_LOG_WARN, SUP_WHO,
                "worker %ld exited with code %d without reporting it (a "
                "plugin may have called exit()): a failure",
                (long)st->worker, code);
        code = -1;
    }
    if (code == WORKER_EXIT_OK) {
        sup_log_end(st, status, ran_s, WEIR_LOG_INFO);
        log_msg(WEIR_LOG_INFO, SUP_WHO, "job '%s' %s", st->job->name,
                st->stop ? "stopped" : "finished");
        return SUP_EXIT_OK;
    }
    if (code == WORKER_EXIT_UNRECOVERABLE) {
        sup_log_end(st, status, ran_s, WEIR_LOG_ERROR);
        log_msg(WEIR_LOG_ERROR, SUP_WHO,
                "job '%s' cannot be recovered: not restarting", st->job->name);
        return SUP_EXIT_NO_CHECKPOINT;
    }
    if (code == WORKER_EXIT_LOCKED) {
        sup_log_end(st, status, ran_s, WEIR_LOG_ERROR);
        log_msg(WEIR_LOG_ERROR, SUP_WHO,
                "job '%s': its state directory is locked by another process: "
                "not restarting",
                st->job->name);
        return SUP_EXIT_LOCKED;
    }
    sup_log_end(st, status, ran_s, st->stop ? WEIR_LOG_ERROR : WEIR_LOG_WARN);
    if (st->stop) {
        log_msg(WEIR_LOG_ERROR, SUP_WHO,
                "job '%s' did not stop cleanly: not restarting", st->job->name);
        return SUP_EXIT_FAILED;
    }
    int64_t delay = 0;
    int64_t ran_ms = (st->death_ns - st->start_ns) / 1000000;
    int64_t now_ms = st->death_ns / 1000000;
    if (!sup_on_failure(tr, now_ms, ran_ms, &delay)) {
        if (tr->s.kind == SUP_NONE) {
            log_msg(WEIR_LOG_ERROR, SUP_WHO,
                    "job '%s' failed (restart strategy none)", st->job->name);
            return SUP_EXIT_FAILED;
        }
        log_msg(WEIR_LOG_ERROR, SUP_WHO,
                "job '%s' failed: restart strategy %s gave up after %u "
                "failures",
                st->job->name, sup_kind_name(tr->s.kind), tr->failures);
        return SUP_EXIT_EXHAUSTED;
    }
    log_msg(WEIR_LOG_INFO, SUP_WHO, "restarting in %lld ms (attempt %d)",
            (long long)delay, st->attempt + 1);
    if (sup_sleep(st, delay))
        return SUP_EXIT_OK;
    return -1;
}

/* Runs workers until one ends the run; returns the exit code. */
static int sup_loop(sup_state *st, sup_tracker *tr)
{
    for (;;) {
        int status;
        if (sup_spawn(st) == 0) {
            status = sup_wait_worker(st);
        } else {
            /* No worker: a failure that ran for no time. */
            st->worker = 0;
            st->start_ns = st->death_ns = sup_now_ns();
            status = WORKER_EXIT_FAILED << 8;
        }
        int rc = sup_decide(st, tr, status);
        if (rc >= 0)
            return rc;
        st->attempt++;
    }
}

int sup_run(const topo_job *job, const sup_options *opts)
{
    if (!opts->self || !opts->job_path) {
        log_msg(WEIR_LOG_ERROR, SUP_WHO, "no weir binary or job to run");
        return SUP_EXIT_USAGE;
    }
    sup_state st = {.job = job, .opts = opts, .report_fd = -1};
    char *err = NULL;
    sup_locks locks;
    int lrc = sup_lock_run(job, &locks, &err);
    if (lrc < 0) {
        log_msg(WEIR_LOG_ERROR, SUP_WHO, "%s", err);
        free(err);
        return lrc == FS_ELOCKED ? SUP_EXIT_LOCKED : SUP_EXIT_FAILED;
    }
    if (sup_run_dir_create(job, &st.run_dir, &err) < 0) {
        log_msg(WEIR_LOG_ERROR, SUP_WHO, "%s", err);
        free(err);
        sup_unlock_run(&locks);
        return SUP_EXIT_USAGE;
    }
    sigemptyset(&st.waitset);
    sigaddset(&st.waitset, SIGINT);
    sigaddset(&st.waitset, SIGTERM);
    sigaddset(&st.waitset, SIGCHLD);
    /* An inherited SIG_IGN for SIGCHLD would reap the worker for us. */
    signal(SIGCHLD, SIG_DFL);
    sigprocmask(SIG_BLOCK, &st.waitset, &st.child_mask);
    sigaddset(&st.child_mask, SIGINT);
    sigaddset(&st.child_mask, SIGTERM);
    st.sfd = signalfd(-1, &st.waitset, SFD_NONBLOCK | SFD_CLOEXEC);
    if (st.sfd < 0) {
        log_msg(WEIR_LOG_ERROR, SUP_WHO, "signalfd: %s", strerror(errno));
        free(st.run_dir);
        sup_unlock_run(&locks);
        return SUP_EXIT_FAILED;
    }
    st.run_started_ms = sup_wall_ms();
    st.ctl = supctl_open(job, st.run_dir);

    sup_strategy s;
    sup_strategy_from_topology(&job->restart, &s);
    sup_tracker tr;
    sup_tracker_init(&tr, &s,
                     (uint64_t)sup_now_ns() ^ ((uint64_t)getpid() << 32));
    log_msg(WEIR_LOG_INFO, SUP_WHO,
            "job '%s': run directory %s, restart strategy %s", job->name,
            st.run_dir, sup_kind_name(s.kind));
    int rc = sup_loop(&st, &tr);
    sup_tracker_free(&tr);
    supctl_close(st.ctl);
    close(st.sfd);
    sup_run_dir_finish(job, st.run_dir);
    free(st.run_dir);
    sup_unlock_run(&locks);
    return rc;
}
