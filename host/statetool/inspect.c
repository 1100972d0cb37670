#include "statetool/inspect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint/manifest.h"
#include "common/err.h"
#include "common/fs.h"
#include "runtime/plan.h"
#include "state/codec.h"
#include "statetool/entry.h"
#include "statetool/view.h"

#include "weir/weir.h"

struct insp_ckpt {
    ckpt_manifest *m;
    char *dir;
};

static int insp_oom(char **errptr)
{
    err_set(errptr, WEIR_ENOMEM, "out of memory");
    return WEIR_ENOMEM;
}

static int insp_exists(const char *dir, const char *name)
{
    char *p = NULL;
    struct stat sb;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        return 0;
    int ok = lstat(p, &sb) == 0;
    free(p);
    return ok;
}

/* A run directory with a `completed` log (fs_newest_entry). */
static int insp_has_log(const char *path, void *arg)
{
    (void)arg;
    return insp_exists(path, "completed");
}

/* The newest valid checkpoint of run directory `run`. */
static int insp_open_run(insp_ckpt *c, const char *run, char **errptr)
{
    int rc = ckpt_find_latest(run, NULL, NULL, &c->m, errptr);
    if (rc == 0 && !(c->dir = ckpt_dir(run, c->m->id)))
        rc = insp_oom(errptr);
    return rc;
}

int insp_open(const char *path, insp_ckpt **out, char **errptr)
{
    *out = NULL;
    insp_ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return insp_oom(errptr);
    int rc;
    char *run = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        rc = err_set(errptr, WEIR_EINVAL, "%s: not a directory", path);
    } else if (!insp_exists(path, "MANIFEST.json") &&
               insp_exists(path, "completed")) {
        rc = insp_open_run(c, path, errptr);
    } else if (!insp_exists(path, "MANIFEST.json") &&
               (run = fs_newest_entry(path, insp_has_log, NULL)) != NULL) {
        rc = insp_open_run(c, run, errptr);
        free(run);
    } else {
        rc = ckpt_manifest_load_path(path, &c->m, errptr);
        if (rc == 0 && !(c->dir = strdup(path)))
            rc = insp_oom(errptr);
    }
    if (rc < 0) {
        insp_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void insp_close(insp_ckpt *c)
{
    if (!c)
        return;
    ckpt_manifest_free(c->m);
    free(c->dir);
    free(c);
}

const char *insp_dir(const insp_ckpt *c)
{
    return c->dir;
}

static const char *insp_kind_name(uint8_t k)
{
    switch (k) {
    case WEIR_STATE_VALUE: return "value";
    case WEIR_STATE_MAP: return "map";
    case WEIR_STATE_LIST: return "list";
    default: return "unknown";
    }
}

/* Opens the state of task t. */
static int insp_view(const insp_ckpt *c, const ckpt_task *t, stv_db **v,
                     char **errptr)
{
    char *dir = NULL, *delta = NULL;
    int rc;
    if (asprintf(&dir, "%s/%s", c->dir, t->state_dir) < 0 ||
        asprintf(&delta, "%s.delta", dir) < 0)
        rc = insp_oom(errptr);
    else
        rc = stv_open(dir, delta, v, errptr);
    free(dir);
    free(delta);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* ls                                                                        */
/* ------------------------------------------------------------------------ */

static int insp_count_fn(void *arg, const char *k, size_t klen, const char *v,
                         size_t vlen)
{
    (void)k, (void)klen, (void)v, (void)vlen;
    (*(uint64_t *)arg)++;
    return 0;
}

static const ckpt_file *insp_file(const ckpt_manifest *m, const char *path)
{
    for (size_t i = 0; path && i < m->n_files; i++)
        if (strcmp(m->files[i].path, path) == 0)
            return &m->files[i];
    return NULL;
}

/* {"est_entries", "sst_bytes"[, "entries"]} of the timers or the index. */
static int insp_cf_json(stv_db *v, stv_cf which, int exact, json_t **out,
                        char **errptr)
{
    uint64_t keys, bytes, n = 0;
    stv_estimate(v, NULL, which, &keys, &bytes);
    *out = json_pack("{s:I,s:I}", "est_entries", (json_int_t)keys, "sst_bytes",
                     (json_int_t)bytes);
    if (!*out)
        return insp_oom(errptr);
    if (!exact)
        return 0;
    int rc = stv_scan_cf(v, which, insp_count_fn, &n, errptr);
    if (rc == 0 &&
        json_object_set_new(*out, "entries", json_integer((json_int_t)n)))
        rc = insp_oom(errptr);
    return rc;
}

/* The TTL override a state carries (weir ctl ... state ttl), as JSON:
 * {"ttl_ms", "time", "set_ms", "rewrite_pending"}, or null for none. A
 * record too short to read is shown as {"damaged": true}. */
static json_t *insp_ttl_json(const stv_state *st)
{
    if (!st->ttl_rec)
        return json_null();
    if (st->ttl_len < META_TTL_HDR)
        return json_pack("{s:b}", "damaged", 1);
    const char *r = st->ttl_rec;
    return json_pack("{s:I,s:s,s:I,s:b}", "ttl_ms",
                     (json_int_t)(int64_t)get_be64(r + 1), "time",
                     r[9] == WEIR_TIME_EVENT ? "event" : "processing", "set_ms",
                     (json_int_t)(int64_t)get_be64(r + 10), "rewrite_pending",
                     r[META_TTL_PENDING] != 0);
}

static int insp_states_json(stv_db *v, int exact, json_t *states, char **errptr)
{
    for (size_t i = 0; i < stv_state_count(v); i++) {
        const stv_state *st = stv_state_at(v, i);
        uint64_t keys, bytes, n = 0;
        stv_estimate(v, st, 0, &keys, &bytes);
        json_t *o = json_pack(
            "{s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "name", st->name, "kind",
            insp_kind_name(st->kind), "format_version", (json_int_t)st->format,
            "est_entries", (json_int_t)keys, "sst_bytes", (json_int_t)bytes,
            "delta_puts", (json_int_t)st->delta_puts, "delta_deletes",
            (json_int_t)st->delta_deletes);
        if (!o || json_array_append_new(states, o) ||
            json_object_set_new(o, "ttl_override", insp_ttl_json(st)))
            return insp_oom(errptr);
        if (!exact)
            continue;
        int rc =
            stv_scan_state(v, st, NULL, 0, NULL, 0, insp_count_fn, &n, errptr);
        if (rc < 0)
            return rc;
        if (json_object_set_new(o, "entries", json_integer((json_int_t)n)))
            return insp_oom(errptr);
    }
    return 0;
}

/* The keyed part of a subtask's description. */
static int insp_keyed_json(const insp_ckpt *c, const ckpt_task *t, int exact,
                           json_t *o, char **errptr)
{
    uint32_t first, last;
    plan_kg_range(t->index, t->parallelism, c->m->max_parallelism, &first,
                  &last);
    json_t *states = json_array(), *timers = NULL, *index = NULL;
    stv_db *v = NULL;
    int rc = states ? insp_view(c, t, &v, errptr) : insp_oom(errptr);
    if (rc == 0)
        rc = insp_states_json(v, exact, states, errptr);
    if (rc == 0)
        rc = insp_cf_json(v, STV_TIMERS, exact, &timers, errptr);
    if (rc == 0)
        rc = insp_cf_json(v, STV_INDEX, exact, &index, errptr);
    if (rc < 0) {
        json_decref(states);
        json_decref(timers);
        json_decref(index);
        stv_close(v);
        return rc;
    }
    /* set_new takes its value even when it fails. */
    int bad = json_object_set_new(
        o, "key_groups",
        json_pack("[I,I]", (json_int_t)first, (json_int_t)last));
    bad |= json_object_set_new(o, "states", states);
    bad |= json_object_set_new(o, "timers", timers);
    bad |= json_object_set_new(o, "expiry_index", index);
    stv_close(v);
    return bad ? insp_oom(errptr) : 0;
}

/* Bytes of the files of a state directory and its delta. */
static uint64_t insp_state_files(const ckpt_manifest *m, const char *dir)
{
    size_t n = dir ? strlen(dir) : 0;
    uint64_t sum = 0;
    for (size_t i = 0; dir && i < m->n_files; i++) {
        const char *p = m->files[i].path;
        if (strncmp(p, dir, n) == 0 &&
            (p[n] == '/' || strcmp(p + n, ".delta") == 0))
            sum += m->files[i].size;
    }
    return sum;
}

static int insp_task_json(const insp_ckpt *c, const ckpt_task *t, int exact,
                          json_t **out, char **errptr)
{
    const ckpt_file *snap = insp_file(c->m, t->snapshot);
    json_t *o = json_pack(
        "{s:I,s:o,s:I,s:o,s:I,s:I}", "index", (json_int_t)t->index, "state_dir",
        t->state_dir ? json_string(t->state_dir) : json_null(), "state_bytes",
        (json_int_t)insp_state_files(c->m, t->state_dir), "snapshot",
        t->snapshot ? json_string(t->snapshot) : json_null(), "snapshot_bytes",
        (json_int_t)(snap ? snap->size : 0), "snapshot_version",
        (json_int_t)t->snapshot_version);
    if (!o)
        return insp_oom(errptr);
    int rc = t->state_dir ? insp_keyed_json(c, t, exact, o, errptr) : 0;
    if (rc < 0) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* The operator object of `op_id` in ops, created when missing. */
static json_t *insp_op_json(json_t *ops, const char *op_id, uint32_t par)
{
    size_t i;
    json_t *o;
    json_array_foreach(ops, i, o)
    {
        if (!strcmp(json_string_value(json_object_get(o, "id")), op_id))
            return o;
    }
    o = json_pack("{s:s,s:I,s:[]}", "id", op_id, "parallelism", (json_int_t)par,
                  "subtasks");
    return o && !json_array_append_new(ops, o) ? o : NULL;
}

static int insp_task_cmp(const void *x, const void *y)
{
    const ckpt_task *a = *(const ckpt_task *const *)x,
                    *b = *(const ckpt_task *const *)y;
    return a->index < b->index ? -1 : a->index > b->index;
}

int insp_ls(insp_ckpt *c, int exact, json_t **out, char **errptr)
{
    const ckpt_manifest *m = c->m;
    json_t *root =
        json_pack("{s:s,s:I,s:s,s:I,s:I,s:b,s:b,s:I,s:[]}", "path", c->dir,
                  "id", (json_int_t)m->id, "job", m->job, "triggered_ms",
                  (json_int_t)m->triggered_ms, "completed_ms",
                  (json_int_t)m->completed_ms, "final", m->final, "savepoint",
                  m->savepoint, "max_parallelism",
                  (json_int_t)m->max_parallelism, "operators");
    const ckpt_task **order = calloc(m->n_tasks + 1, sizeof *order);
    int rc = root && order ? 0 : insp_oom(errptr);
    for (size_t i = 0; rc == 0 && i < m->n_tasks; i++)
        order[i] = &m->tasks[i];
    if (rc == 0 && m->n_tasks)
        qsort(order, m->n_tasks, sizeof *order, insp_task_cmp);
    json_t *ops = json_object_get(root, "operators");
    /* Operators in manifest order; subtasks by index. */
    for (size_t i = 0; rc == 0 && i < m->n_tasks; i++)
        if (!insp_op_json(ops, m->tasks[i].op_id, m->tasks[i].parallelism))
            rc = insp_oom(errptr);
    for (size_t i = 0; rc == 0 && i < m->n_tasks; i++) {
        const ckpt_task *t = order[i];
        json_t *task = NULL;
        rc = insp_task_json(c, t, exact, &task, errptr);
        json_t *op =
            rc == 0 ? insp_op_json(ops, t->op_id, t->parallelism) : NULL;
        if (rc == 0 &&
            json_array_append_new(json_object_get(op, "subtasks"), task))
            rc = insp_oom(errptr);
    }
    free(order);
    if (rc < 0) {
        json_decref(root);
        return rc;
    }
    *out = root;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* dump                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct insp_dumper {
    const insp_dump_opts *o;
    uint32_t subtask;
    uint8_t kind;
    insp_entry_fn fn;
    void *arg;
    uint64_t count;
    char **errptr;
} insp_dumper;

static int insp_elem_fn(void *arg, const char *e, size_t len)
{
    json_t **a = arg;
    json_t *j = mpj_value_as(e, len, ((insp_dumper *)a[1])->o->format);
    return json_array_append_new(a[0], j) ? -2 : 0;
}

/* The JSON of a state value (the elements of a list). */
static json_t *insp_value(insp_dumper *d, const char *b, size_t n, int *bad)
{
    *bad = 0;
    if (d->kind != WEIR_STATE_LIST)
        return mpj_value_as(b, n, d->o->format);
    json_t *arr = json_array();
    void *ctx[2] = {arr, d};
    int rc = arr ? ste_list_each(b, n, insp_elem_fn, ctx) : -2;
    if (rc == -1)
        *bad = 1;
    if (rc < 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

static int insp_emit(insp_dumper *d, json_t *e)
{
    if (!e)
        return insp_oom(d->errptr);
    int rc = d->fn(d->arg, e);
    json_decref(e);
    d->count++;
    return rc;
}

static int insp_state_fn(void *arg, const char *k, size_t klen, const char *v,
                         size_t vlen)
{
    insp_dumper *d = arg;
    ste_key sk;
    int64_t stamp;
    const char *b;
    size_t n;
    int bad = 0;
    if (ste_key_parse(k, klen, &sk) < 0 ||
        ste_value_parse(v, vlen, &stamp, &b, &n) < 0)
        bad = 1;
    json_t *val = bad ? NULL : insp_value(d, b, n, &bad);
    if (bad)
        return err_set(d->errptr, WEIR_EIO,
                       "operator '%s' subtask %u: state '%s' has a malformed "
                       "entry (key of %zu bytes, value of %zu bytes)",
                       d->o->op_id, d->subtask, d->o->state, klen, vlen);
    json_t *e = json_pack("{s:I,s:I,s:o}", "subtask", (json_int_t)d->subtask,
                          "key_group", (json_int_t)sk.kg, "key",
                          mpj_bytes(sk.key, sk.key_len));
    int oom = !e || (d->kind == WEIR_STATE_MAP &&
                     json_object_set_new(e, "user_key",
                                         mpj_bytes(sk.ukey, sk.ukey_len)));
    oom = oom || json_object_set_new(e, "value", val);
    val = NULL; /* set_new took it, or e is NULL and it is freed here */
    oom = oom || json_object_set_new(e, "expiry",
                                     stamp == STAMP_NONE ? json_null()
                                                         : json_integer(stamp));
    if (oom) {
        json_decref(val);
        json_decref(e);
        return insp_oom(d->errptr);
    }
    return insp_emit(d, e);
}

static int insp_timer_fn(void *arg, const char *k, size_t klen, const char *v,
                         size_t vlen)
{
    insp_dumper *d = arg;
    ste_timer tk;
    (void)v, (void)vlen;
    if (ste_timer_parse(k, klen, &tk) < 0)
        return err_set(d->errptr, WEIR_EIO,
                       "operator '%s' subtask %u: a malformed timer (%zu "
                       "bytes)",
                       d->o->op_id, d->subtask, klen);
    if (d->o->key && (tk.key_len != d->o->key_len ||
                      memcmp(tk.key, d->o->key, tk.key_len) != 0))
        return 0;
    return insp_emit(d, json_pack("{s:I,s:I,s:o,s:s,s:I}", "subtask",
                                  (json_int_t)d->subtask, "key_group",
                                  (json_int_t)tk.kg, "key",
                                  mpj_bytes(tk.key, tk.key_len), "domain",
                                  tk.domain ? "event" : "processing", "ts",
                                  (json_int_t)tk.ts));
}

/* The bounds of the state keys of one record key: [lo, hi). */
static int insp_key_bounds(const insp_dump_opts *o, uint32_t kg, char **lo,
                           size_t *lo_len, char **hi, size_t *hi_len)
{
    *lo = malloc(ste_key_size(o->key_len, 0));
    *hi = malloc(ste_key_size(o->key_len, 0));
    if (!*lo || !*hi)
        return -1;
    *lo_len = ste_key_encode(*lo, (uint16_t)kg, o->key, o->key_len, NULL, 0);
    memcpy(*hi, *lo, *lo_len);
    *hi_len = *lo_len;
    /* The next prefix: increment the last byte that is not 0xff. */
    while (*hi_len && (unsigned char)(*hi)[*hi_len - 1] == 0xff)
        (*hi_len)--;
    if (*hi_len)
        (*hi)[*hi_len - 1]++;
    return 0;
}

static int insp_dump_task(insp_ckpt *c, const ckpt_task *t, insp_dumper *d,
                          int *found, char **errptr)
{
    stv_db *v = NULL;
    char *lo = NULL, *hi = NULL;
    size_t lo_len = 0, hi_len = 0;
    int rc = insp_view(c, t, &v, errptr);
    const stv_state *st =
        rc == 0 && !d->o->timers ? stv_state_find(v, d->o->state) : NULL;
    d->subtask = t->index;
    if (rc == 0 && d->o->timers) {
        *found = 1;
        rc = stv_scan_cf(v, STV_TIMERS, insp_timer_fn, d, errptr);
    } else if (rc == 0 && st) {
        *found = 1;
        d->kind = st->kind;
        if (d->o->key &&
            insp_key_bounds(
                d->o,
                plan_key_group(d->o->key, d->o->key_len, c->m->max_parallelism),
                &lo, &lo_len, &hi, &hi_len) < 0)
            rc = insp_oom(errptr);
        if (rc == 0)
            rc = stv_scan_state(v, st, lo, lo_len, hi_len ? hi : NULL, hi_len,
                                insp_state_fn, d, errptr);
    }
    free(lo);
    free(hi);
    stv_close(v);
    return rc;
}

/* "a, b, c": the operators of the checkpoint with keyed state. */
static char *insp_keyed_ops(const ckpt_manifest *m)
{
    char *s = NULL;
    for (size_t i = 0; i < m->n_tasks; i++) {
        const ckpt_task *t = &m->tasks[i];
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = m->tasks[j].state_dir &&
                   strcmp(m->tasks[j].op_id, t->op_id) == 0;
        if (!t->state_dir || seen)
            continue;
        char *n = NULL;
        if (asprintf(&n, "%s%s'%s'", s ? s : "", s ? ", " : "", t->op_id) < 0)
            break;
        free(s);
        s = n;
    }
    return s;
}

int insp_dump(insp_ckpt *c, const insp_dump_opts *o, insp_entry_fn fn,
              void *arg, uint64_t *count, char **errptr)
{
    insp_dumper d = {.o = o, .fn = fn, .arg = arg, .errptr = errptr};
    const ckpt_manifest *m = c->m;
    const ckpt_task **order = calloc(m->n_tasks + 1, sizeof *order);
    size_t n = 0;
    int rc = 0, found = 0, any_op = 0;
    *count = 0;
    if (!order)
        return insp_oom(errptr);
    for (size_t i = 0; i < m->n_tasks; i++)
        if (strcmp(m->tasks[i].op_id, o->op_id) == 0) {
            any_op = 1;
            if (m->tasks[i].state_dir)
                order[n++] = &m->tasks[i];
        }
    qsort(order, n, sizeof *order, insp_task_cmp);
    uint32_t only = UINT32_MAX;
    if (o->key && n && !o->timers)
        only = plan_kg_to_index(
            plan_key_group(o->key, o->key_len, m->max_parallelism),
            order[0]->parallelism, m->max_parallelism);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (only == UINT32_MAX || order[i]->index == only)
            rc = insp_dump_task(c, order[i], &d, &found, errptr);
    free(order);
    if (rc == 0 && !found) {
        char *ops = insp_keyed_ops(m);
        if (!any_op || !n)
            rc = err_set(errptr, WEIR_ENOTFOUND,
                         "checkpoint %llu (%s) has no keyed state of operator "
                         "'%s'; operators with keyed state: %s",
                         (unsigned long long)m->id, c->dir, o->op_id,
                         ops ? ops : "none");
        else if (only == UINT32_MAX)
            rc = err_set(errptr, WEIR_ENOTFOUND,
                         "checkpoint %llu (%s): operator '%s' has no state "
                         "'%s' (`weir state ls` lists its states)",
                         (unsigned long long)m->id, c->dir, o->op_id, o->state);
        free(ops);
    }
    *count = d.count;
    return rc;
}
