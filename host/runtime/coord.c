#include "runtime/coord.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint/manifest.h"
#include "common/crash.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "runtime/bcast.h"

/* How long the coordinator sleeps while a checkpoint is in flight. */
#define COORD_TICK_NS     ((int64_t)20 * 1000000)
/* The longest sleep, so that a stop is seen promptly. */
#define COORD_MAX_WAIT_NS ((int64_t)50 * 1000000)

/* Consecutive failures of the final checkpoint before the job fails. */
#define COORD_FINAL_TRIES 3

static int64_t coord_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int coord_enabled(const rt_job *rt)
{
    return rt->ck_enabled;
}

uint64_t coord_completed(const rt_job *rt)
{
    return atomic_load(&((rt_job *)rt)->ck_completed);
}

uint64_t coord_poll(task *t)
{
    uint64_t id = atomic_load_explicit(&t->ck_trigger, memory_order_acquire);
    return id > t->ck_taken ? id : 0;
}

/*
 * Counts one more failed checkpoint in a row; past
 * checkpoint.tolerable_failed_checkpoints the job fails (and restarts from
 * its last complete checkpoint under the restart strategy). Called with
 * ck_lock held.
 */
static void coord_count_failure(rt_job *rt, uint64_t id, const char *why)
{
    rt->ck_failed_in_row++;
    if (id > rt->ck_last_failed)
        rt->ck_last_failed = id;
    if (rt->ck_tolerable_failed < 0 ||
        rt->ck_failed_in_row <= rt->ck_tolerable_failed)
        return;
    char msg[1024];
    snprintf(msg, sizeof msg,
             "%lld checkpoints in a row failed, more than "
             "checkpoint.tolerable_failed_checkpoints (%lld) allows; the last "
             "one: %s",
             (long long)rt->ck_failed_in_row,
             (long long)rt->ck_tolerable_failed, why);
    rt_fail(rt, WEIR_EIO, msg);
}

/* Starts checkpoint ck_next_id: creates its directory and asks the sources
 * and the finished subtasks to take part. Called with ck_lock held. */
static void coord_trigger(rt_job *rt, int final)
{
    uint64_t id = rt->ck_next_id++;
    char *dir = ckpt_dir(rt->run_dir, id), *err = NULL;
    int rc = dir ? fs_mkdirs(dir, &err) : WEIR_ENOMEM;
    if (rc < 0) {
        log_msg(WEIR_LOG_WARN, "checkpoint", "checkpoint %llu not started: %s",
                (unsigned long long)id, err ? err : "out of memory");
        if (rc == FS_ENOSPC)
            rt_fail(rt, rc, err);
        free(dir);
        rt->ck_n_failed++;
        rt->ck_last_end_ns = task_mono_ns();
        coord_count_failure(rt, id, err ? err : "out of memory");
        free(err);
        return;
    }
    free(dir);
    rt->ck_inflight = id;
    rt->ck_inflight_final = final;
    rt->ck_inflight_ms = coord_wall_ms();
    rt->ck_inflight_ns = task_mono_ns();
    rt->ck_acks = 0;
    rt->ck_declined = 0;
    memset(rt->ck_acked, 0, rt->n_tasks);
    for (uint32_t i = 0; i < rt->n_tasks; i++) {
        task *t = &rt->tasks[i];
        if ((t->reg->op.flags & WEIR_OP_SOURCE) || rt->ck_finished[i])
            atomic_store_explicit(&t->ck_trigger, id, memory_order_release);
    }
    log_msg(WEIR_LOG_DEBUG, "checkpoint", "triggered %scheckpoint %llu",
            final ? "final " : "", (unsigned long long)id);
    pthread_cond_broadcast(&rt->ck_cond);
}

/* The manifest's description of the in-flight checkpoint. */
static int coord_manifest(rt_job *rt, ckpt_manifest *m)
{
    *m = (ckpt_manifest){.version = CKPT_FORMAT_VERSION,
                         .job = rt->job->name,
                         .id = rt->ck_inflight,
                         .triggered_ms = rt->ck_inflight_ms,
                         .completed_ms = coord_wall_ms(),
                         /* A stop's last checkpoint is no end of input:
                          * a run from it goes on. */
                         .final = rt->ck_inflight_final &&
                                  !atomic_load(&rt->stop_requested),
                         .max_parallelism = rt->plan->max_parallelism};
    m->tasks = calloc(rt->n_tasks, sizeof *m->tasks);
    if (!m->tasks)
        return WEIR_ENOMEM;
    m->n_tasks = rt->n_tasks;
    for (uint32_t i = 0; i < rt->n_tasks; i++) {
        const task *t = &rt->tasks[i];
        const coord_ack_info *a = &rt->ck_info[i];
        ckpt_task *e = &m->tasks[i];
        e->op_id = t->op->id;
        e->index = t->ps->index;
        e->parallelism = t->ps->parallelism;
        e->snapshot_version = t->reg->op.snapshot_version;
        e->sync_ms = a->sync_ns / 1000000;
        e->align_ms = a->align_ns / 1000000;
        if ((a->has_state && asprintf(&e->state_dir, "%s-%u/state", t->op->id,
                                      t->ps->index) < 0) ||
            (a->has_snapshot && asprintf(&e->snapshot, "%s-%u/snapshot",
                                         t->op->id, t->ps->index) < 0) ||
            (a->has_broadcast && asprintf(&e->broadcast, "%s-%u/broadcast",
                                          t->op->id, t->ps->index) < 0) ||
            (a->has_async &&
             asprintf(&e->async, "%s-%u/async", t->op->id, t->ps->index) < 0))
            return WEIR_ENOMEM;
    }
    return 0;
}

static void coord_manifest_release(ckpt_manifest *m)
{
    for (size_t i = 0; i < m->n_tasks; i++) {
        free(m->tasks[i].state_dir);
        free(m->tasks[i].snapshot);
        free(m->tasks[i].broadcast);
        free(m->tasks[i].async);
    }
    free(m->tasks);
    for (size_t i = 0; i < m->n_files; i++)
        free(m->files[i].path);
    free(m->files);
}

/* Abandons the in-flight checkpoint and removes its directory. Called with
 * ck_lock held; drops it around the file-system work. */
static void coord_abort(rt_job *rt, const char *why)
{
    uint64_t id = rt->ck_inflight;
    int final = rt->ck_inflight_final;
    rt->ck_inflight = 0;
    rt->ck_n_failed++;
    rt->ck_last_end_ns = task_mono_ns();
    pthread_mutex_unlock(&rt->ck_lock);
    log_msg(WEIR_LOG_WARN, "checkpoint", "%scheckpoint %llu aborted: %s",
            final ? "final " : "", (unsigned long long)id, why);
    coord_count_failure(rt, id, why);
    char *dir = ckpt_dir(rt->run_dir, id), *err = NULL;
    if (dir && fs_rmtree(dir, &err) < 0) {
        log_msg(WEIR_LOG_WARN, "checkpoint", "%s", err);
        free(err);
    }
    free(dir);
    pthread_mutex_lock(&rt->ck_lock);
}

/* Warns, once per run, when the broadcast state copies of an operator's
 * subtasks differ in a completed checkpoint (weir.h: "Determinism"). */
static void coord_check_broadcast(rt_job *rt, const ckpt_manifest *m)
{
    char *err = NULL;
    if (bcast_check_copies(m, &err) > 0)
        log_msg(rt->ck_bcast_warned ? WEIR_LOG_DEBUG : WEIR_LOG_WARN,
                "checkpoint", "%s", err);
    rt->ck_bcast_warned |= err != NULL;
    free(err);
}

static void coord_log_complete(rt_job *rt, const ckpt_manifest *m)
{
    int64_t sync = 0, align = 0;
    for (uint32_t i = 0; i < rt->n_tasks; i++) {
        if (rt->ck_info[i].sync_ns > sync)
            sync = rt->ck_info[i].sync_ns;
        if (rt->ck_info[i].align_ns > align)
            align = rt->ck_info[i].align_ns;
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < m->n_files; i++)
        bytes += m->files[i].size;
    rt->ck_last_bytes = bytes;
    rt->ck_last_ms = (double)(task_mono_ns() - rt->ck_inflight_ns) / 1e6;
    rt->ck_last_sync_ms = (double)sync / 1e6;
    rt->ck_last_align_ms = (double)align / 1e6;
    log_msg(WEIR_LOG_INFO, "checkpoint",
            "%scheckpoint %llu complete: %.1f ms, %zu files, %.1f KiB, "
            "longest sync pause %.2f ms, longest alignment %.2f ms",
            m->final ? "final " : "", (unsigned long long)m->id,
            (double)(task_mono_ns() - rt->ck_inflight_ns) / 1e6, m->n_files,
            (double)bytes / 1024.0, (double)sync / 1e6, (double)align / 1e6);
}

/* Writes the manifest of the fully acked in-flight checkpoint and
 * publishes it as completed. Called with ck_lock held; drops it around the
 * file-system work (acks for this id have all arrived, so nothing changes
 * under it). */
static void coord_finish(rt_job *rt)
{
    ckpt_manifest m;
    char *err = NULL;
    int rc = coord_manifest(rt, &m);
    pthread_mutex_unlock(&rt->ck_lock);
    if (rc == 0)
        rc = ckpt_complete(rt->run_dir, &m, rt->ck_sums, &err);
    if (rc == 0) {
        coord_log_complete(rt, &m);
        coord_check_broadcast(rt, &m);
    }
    pthread_mutex_lock(&rt->ck_lock);
    if (rc < 0) {
        char why[1024];
        snprintf(why, sizeof why, "writing the manifest: %s",
                 err ? err : weir_strerror(rc));
        free(err);
        coord_manifest_release(&m);
        coord_abort(rt, why);
        if (rc == FS_ENOSPC)
            rt_fail(rt, rc, why);
        return;
    }
    crash_point("before_notify");
    uint64_t id = rt->ck_inflight;
    rt->ck_inflight = 0;
    rt->ck_n_completed++;
    rt->ck_failed_in_row = 0;
    rt->ck_last_end_ns = task_mono_ns();
    if (rt->ck_inflight_final) /* also a stop's, which m.final is not */
        rt->ck_final_done = 1;
    atomic_store(&rt->ck_completed, id);
    pthread_cond_broadcast(&rt->ck_cond);
    coord_manifest_release(&m);
    pthread_mutex_unlock(&rt->ck_lock);
    if (ckpt_retain(rt->run_dir, rt->ck_retain, &err) < 0) {
        log_msg(WEIR_LOG_WARN, "checkpoint", "retiring old checkpoints: %s",
                err);
        free(err);
    }
    pthread_mutex_lock(&rt->ck_lock);
}

/* One step of the coordinator; returns how long to sleep, in ns. Called
 * with ck_lock held. */
static int64_t coord_step(rt_job *rt, int *final_failures)
{
    int64_t now = task_mono_ns();
    if (rt->ck_inflight) {
        /* Before the count: the last ack may be the one that declines. */
        if (rt->ck_declined) {
            coord_abort(rt, "a subtask could not take its snapshot");
            return 0;
        }
        if (rt->ck_acks == rt->n_tasks) {
            int final = rt->ck_inflight_final;
            coord_finish(rt);
            if (final && !rt->ck_final_done &&
                ++*final_failures >= COORD_FINAL_TRIES)
                rt_fail(rt, WEIR_EIO,
                        "the final checkpoint failed repeatedly; see the "
                        "log for why");
            return 0;
        }
        if (now - rt->ck_inflight_ns >= rt->ck_timeout_ms * 1000000) {
            coord_abort(rt, "timed out");
            return 0;
        }
        return COORD_TICK_NS;
    }
    if (rt->ck_n_finished == rt->n_tasks) {
        if (!rt->ck_final_done)
            coord_trigger(rt, 1);
        return COORD_TICK_NS;
    }
    int64_t due = rt->ck_last_end_ns + rt->ck_min_pause_ms * 1000000;
    int64_t next = rt->ck_inflight_ns + rt->ck_interval_ms * 1000000;
    if (next < due)
        next = due;
    if (now >= next || rt->ck_requested) {
        rt->ck_requested = 0;
        coord_trigger(rt, 0);
        return COORD_TICK_NS;
    }
    return next - now;
}

static void *coord_main(void *arg)
{
    rt_job *rt = arg;
    int final_failures = 0;
    pthread_mutex_lock(&rt->ck_lock);
    rt->ck_inflight_ns = rt->ck_last_end_ns = task_mono_ns();
    while (!rt->ck_stop && !atomic_load(&rt->cancelled)) {
        int64_t wait = coord_step(rt, &final_failures);
        if (wait <= 0)
            continue;
        if (wait > COORD_MAX_WAIT_NS)
            wait = COORD_MAX_WAIT_NS;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)wait;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&rt->ck_cond, &rt->ck_lock, &ts);
    }
    pthread_cond_broadcast(&rt->ck_cond);
    pthread_mutex_unlock(&rt->ck_lock);
    return NULL;
}

/* The first checkpoint id of this attempt: past every chk-<id> directory
 * the run already has (completed, aborted or half-written by a crashed
 * attempt), past every id in its log and past the checkpoint restored. */
static uint64_t coord_first_id(const rt_job *rt)
{
    uint64_t max = rt->restore ? rt->restore->id : 0;
    uint64_t *ids = NULL;
    size_t n = 0;
    if (ckpt_log_read(rt->run_dir, &ids, &n, NULL) == 0 && n &&
        ids[n - 1] > max)
        max = ids[n - 1]; /* also when its directory was removed by hand */
    free(ids);
    DIR *d = opendir(rt->run_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "chk-", 4) != 0)
            continue;
        unsigned long long id = strtoull(e->d_name + 4, &end, 10);
        if (*end == 0 && id > max)
            max = id;
    }
    if (d)
        closedir(d);
    return max + 1;
}

int coord_start(rt_job *rt, char **errptr)
{
    if (!rt->ck_enabled)
        return 0;
    int rc = fs_mkdirs(rt->run_dir, errptr);
    if (rc < 0 ||
        (rc = ckpt_remove_unfinished(
             rt->run_dir, rt->restore ? rt->restore->id : 0, errptr)) < 0)
        return rc;
    rt->ck_next_id = coord_first_id(rt);
    rt->ck_info = calloc(rt->n_tasks + 1, sizeof *rt->ck_info);
    rt->ck_acked = calloc(rt->n_tasks + 1, 1);
    rt->ck_finished = calloc(rt->n_tasks + 1, 1);
    rt->ck_sums = ckpt_sum_cache_new();
    if (!rt->ck_info || !rt->ck_acked || !rt->ck_finished || !rt->ck_sums)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    int e = pthread_create(&rt->ck_thread, NULL, coord_main, rt);
    if (e != 0)
        return err_set(errptr, WEIR_EFAIL,
                       "starting the checkpoint coordinator: %s", strerror(e));
    rt->ck_thread_started = 1;
    return 0;
}

void coord_stop(rt_job *rt)
{
    if (rt->ck_thread_started) {
        pthread_mutex_lock(&rt->ck_lock);
        rt->ck_stop = 1;
        pthread_cond_broadcast(&rt->ck_cond);
        pthread_mutex_unlock(&rt->ck_lock);
        pthread_join(rt->ck_thread, NULL);
        rt->ck_thread_started = 0;
    }
    free(rt->ck_info);
    free(rt->ck_acked);
    free(rt->ck_finished);
    ckpt_sum_cache_free(rt->ck_sums);
    rt->ck_info = NULL;
    rt->ck_acked = rt->ck_finished = NULL;
    rt->ck_sums = NULL;
}

void coord_ack(task *t, uint64_t id, int ok, const coord_ack_info *info)
{
    rt_job *rt = t->rt;
    uint32_t i = t->ps->id;
    pthread_mutex_lock(&rt->ck_lock);
    if (id == rt->ck_inflight && !rt->ck_acked[i]) {
        rt->ck_acked[i] = 1;
        rt->ck_info[i] = *info;
        rt->ck_acks++;
        if (!ok)
            rt->ck_declined = 1;
        if (rt->ck_acks == rt->n_tasks || !ok)
            pthread_cond_broadcast(&rt->ck_cond);
    }
    pthread_mutex_unlock(&rt->ck_lock);
}

void coord_task_finished(task *t)
{
    rt_job *rt = t->rt;
    if (!rt->ck_enabled)
        return;
    uint32_t i = t->ps->id;
    pthread_mutex_lock(&rt->ck_lock);
    if (!rt->ck_finished[i]) {
        rt->ck_finished[i] = 1;
        rt->ck_n_finished++;
    }
    /* An ended input can no longer bring the in-flight barrier. */
    if (rt->ck_inflight && !rt->ck_acked[i] && t->ck_taken < rt->ck_inflight)
        atomic_store_explicit(&t->ck_trigger, rt->ck_inflight,
                              memory_order_release);
    pthread_cond_broadcast(&rt->ck_cond);
    pthread_mutex_unlock(&rt->ck_lock);
}

int coord_done(rt_job *rt, int ms)
{
    if (!rt->ck_enabled)
        return 1;
    pthread_mutex_lock(&rt->ck_lock);
    int done = rt->ck_final_done || rt->ck_stop || atomic_load(&rt->cancelled);
    if (!done && ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)ms * 1000000;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&rt->ck_cond, &rt->ck_lock, &ts);
        done = rt->ck_final_done || rt->ck_stop || atomic_load(&rt->cancelled);
    }
    pthread_mutex_unlock(&rt->ck_lock);
    return done;
}

int coord_request(rt_job *rt, uint64_t *id, char **errptr)
{
    if (!rt->ck_enabled)
        return err_set(errptr, WEIR_ESTATE,
                       "checkpoints are not enabled for this job "
                       "(checkpoint.interval is 0s)");
    pthread_mutex_lock(&rt->ck_lock);
    int done = rt->ck_n_finished == rt->n_tasks || rt->ck_stop ||
               atomic_load(&rt->cancelled);
    if (!done) {
        /* The in-flight checkpoint (if any) ends first; the next id is the
         * one the request gets, as only the coordinator takes ids. */
        *id = rt->ck_next_id;
        rt->ck_requested = 1;
        pthread_cond_broadcast(&rt->ck_cond);
    }
    pthread_mutex_unlock(&rt->ck_lock);
    if (done)
        return err_set(errptr, WEIR_ESTATE,
                       "the job is ending: no more checkpoints are taken");
    return 0;
}

int coord_result(rt_job *rt, uint64_t id)
{
    pthread_mutex_lock(&rt->ck_lock);
    int r = 0;
    if (atomic_load(&rt->ck_completed) >= id)
        r = 1;
    else if (rt->ck_last_failed >= id)
        r = -1;
    pthread_mutex_unlock(&rt->ck_lock);
    return r;
}
