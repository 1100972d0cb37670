/*
 * manifest.c - checkpoint manifests (schemas/checkpoint-manifest.md), the
 * `completed` log, restore-time selection and retention (manifest.h).
 *
 * One writer per run directory: ckpt_complete() and ckpt_retain() on the
 * same run_dir must not run at the same time (the coordinator calls both
 * from its thread). Readers may run any time: every file they read is
 * replaced atomically (rename) or only appended to.
 */
#include "checkpoint/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "checkpoint/fsutil.h"
#include "common/crash.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"

#include "weir/weir.h"

#define MANIFEST_NAME "MANIFEST.json"
#define LOG_NAME      "completed"

typedef unsigned long long ull;

char *ckpt_dir(const char *run_dir, uint64_t id)
{
    char *s = NULL;
    if (asprintf(&s, "%s/chk-%" PRIu64, run_dir, id) < 0)
        return NULL;
    return s;
}

static char *path_join(const char *a, const char *b)
{
    char *s = NULL;
    return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Manifest structure                                                        */
/* ------------------------------------------------------------------------ */

static void task_clear(ckpt_task *t)
{
    free(t->op_id);
    free(t->state_dir);
    free(t->snapshot);
    free(t->broadcast);
    free(t->async);
}

void ckpt_manifest_free(ckpt_manifest *m)
{
    if (!m)
        return;
    free(m->job);
    for (size_t i = 0; i < m->n_tasks; i++)
        task_clear(&m->tasks[i]);
    free(m->tasks);
    ckpt_files_free(m->files, m->n_files);
    free(m);
}

/* A path inside the checkpoint: relative, '/'-separated, no empty, "." or
 * ".." component. */
static int safe_relpath(const char *p)
{
    if (!*p || *p == '/')
        return 0;
    for (const char *c = p;;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') ||
            (n == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        if (!e)
            return 1;
        c = e + 1;
    }
}

static const ckpt_file *file_find(const ckpt_file *files, size_t n,
                                  const char *path)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(files[mid].path, path);
        if (c == 0)
            return &files[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* 1 when some file lies under directory `dir` (files sorted). */
static int dir_listed(const ckpt_file *files, size_t n, const char *dir)
{
    size_t len = strlen(dir);
    size_t lo = 0, hi = n;
    while (lo < hi) { /* first path >= dir */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(files[mid].path, dir) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* "dir/..." sorts after "dir" and before "dir0"; entries such as
     * "dir-x" or "dir.x" may come first, so scan the prefix range. */
    for (; lo < n && strncmp(files[lo].path, dir, len) == 0; lo++)
        if (files[lo].path[len] == '/')
            return 1;
    return 0;
}

/*
 * Checks the tasks of m: fields, duplicates and, with `files`, that each
 * task's snapshot is a listed file and its state_dir holds listed files.
 * Messages name the task ("task count#1: ..."); errors return `code`
 * (WEIR_EINVAL for a manifest being written, WEIR_EIO for one read).
 */
static int tasks_check(const ckpt_manifest *m, int with_files, int code,
                       char **errptr)
{
    for (size_t i = 0; i < m->n_tasks; i++) {
        const ckpt_task *t = &m->tasks[i];
        if (!t->op_id || !*t->op_id)
            return err_set(errptr, code, "task %zu: no operator id", i);
        if (t->parallelism == 0 || t->index >= t->parallelism)
            return err_set(errptr, code,
                           "task %s#%u: index %u is not below parallelism %u",
                           t->op_id, t->index, t->index, t->parallelism);
        for (size_t j = 0; j < i; j++)
            if (m->tasks[j].index == t->index &&
                strcmp(m->tasks[j].op_id, t->op_id) == 0)
                return err_set(errptr, code, "task %s#%u: listed twice",
                               t->op_id, t->index);
        if (t->state_bytes > INT64_MAX)
            return err_set(errptr, code, "task %s#%u: state_bytes too large",
                           t->op_id, t->index);
        if (t->state_dir && !safe_relpath(t->state_dir))
            return err_set(errptr, code,
                           "task %s#%u: state_dir \"%s\" is not a relative "
                           "path inside the checkpoint",
                           t->op_id, t->index, t->state_dir);
        if (t->snapshot && !safe_relpath(t->snapshot))
            return err_set(errptr, code,
                           "task %s#%u: snapshot \"%s\" is not a relative "
                           "path inside the checkpoint",
                           t->op_id, t->index, t->snapshot);
        if (t->broadcast && !safe_relpath(t->broadcast))
            return err_set(errptr, code,
                           "task %s#%u: broadcast \"%s\" is not a relative "
                           "path inside the checkpoint",
                           t->op_id, t->index, t->broadcast);
        if (t->async && !safe_relpath(t->async))
            return err_set(errptr, code,
                           "task %s#%u: async \"%s\" is not a relative "
                           "path inside the checkpoint",
                           t->op_id, t->index, t->async);
        if (!with_files)
            continue;
        if (t->async && !file_find(m->files, m->n_files, t->async))
            return err_set(errptr, code,
                           "task %s#%u: async %s is not among the files",
                           t->op_id, t->index, t->async);
        if (t->snapshot && !file_find(m->files, m->n_files, t->snapshot))
            return err_set(errptr, code,
                           "task %s#%u: snapshot %s is not among the files",
                           t->op_id, t->index, t->snapshot);
        if (t->broadcast && !file_find(m->files, m->n_files, t->broadcast))
            return err_set(errptr, code,
                           "task %s#%u: broadcast %s is not among the files",
                           t->op_id, t->index, t->broadcast);
        if (t->state_dir && !dir_listed(m->files, m->n_files, t->state_dir))
            return err_set(errptr, code,
                           "task %s#%u: state_dir %s holds no file", t->op_id,
                           t->index, t->state_dir);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */
/* ------------------------------------------------------------------------ */

static int obj_set(json_t *o, const char *k, json_t *v)
{
    return v ? json_object_set_new(o, k, v) : -1;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *task_to_json(const ckpt_task *t)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (obj_set(o, "op", json_string(t->op_id)) ||
        obj_set(o, "index", json_integer(t->index)) ||
        obj_set(o, "parallelism", json_integer(t->parallelism)) ||
        obj_set(o, "state_dir", str_or_null(t->state_dir)) ||
        obj_set(o, "snapshot", str_or_null(t->snapshot)) ||
        obj_set(o, "snapshot_version", json_integer(t->snapshot_version)) ||
        obj_set(o, "broadcast", str_or_null(t->broadcast)) ||
        (t->async && obj_set(o, "async", json_string(t->async))) ||
        obj_set(o, "state_bytes", json_integer((json_int_t)t->state_bytes)) ||
        obj_set(o, "sync_ms", json_integer(t->sync_ms)) ||
        obj_set(o, "align_ms", json_integer(t->align_ms))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *file_to_json(const ckpt_file *f)
{
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, f->xxh3);
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (obj_set(o, "path", json_string(f->path)) ||
        obj_set(o, "size", json_integer((json_int_t)f->size)) ||
        obj_set(o, "xxh3", json_string(hex))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The manifest as a malloc'ed JSON text ending in a newline; NULL when out
 * of memory. */
static char *manifest_dump(const ckpt_manifest *m)
{
    json_t *root = json_object(), *tasks = json_array(), *files = json_array();
    char *text = NULL, *out = NULL;
    int bad = !root || !tasks || !files;
    bad = bad || obj_set(root, "format", json_integer(CKPT_FORMAT_VERSION)) ||
          obj_set(root, "job", json_string(m->job)) ||
          obj_set(root, "id", json_integer((json_int_t)m->id)) ||
          obj_set(root, "triggered_ms", json_integer(m->triggered_ms)) ||
          obj_set(root, "completed_ms", json_integer(m->completed_ms)) ||
          obj_set(root, "final", json_boolean(m->final)) ||
          (m->savepoint && obj_set(root, "savepoint", json_true())) ||
          obj_set(root, "max_parallelism", json_integer(m->max_parallelism));
    for (size_t i = 0; !bad && i < m->n_tasks; i++)
        bad = json_array_append_new(tasks, task_to_json(&m->tasks[i]));
    for (size_t i = 0; !bad && i < m->n_files; i++)
        bad = json_array_append_new(files, file_to_json(&m->files[i]));
    if (!bad) {
        bad = json_object_set(root, "tasks", tasks) ||
              json_object_set(root, "files", files);
    }
    if (!bad)
        text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text && asprintf(&out, "%s\n", text) < 0)
        out = NULL;
    free(text);
    json_decref(tasks);
    json_decref(files);
    json_decref(root);
    return out;
}

/* Decoding: every error names the member, e.g. "files[3].size". */
typedef struct jctx {
    char **errptr;
    const char *where; /* "" or "tasks[2]" */
} jctx;

static int jfail(const jctx *c, const char *key, const char *problem)
{
    return err_set(c->errptr, WEIR_EIO, "%s%s%s: %s", c->where,
                   *c->where ? "." : "", key, problem);
}

static int get_int(const jctx *c, json_t *o, const char *key, int64_t min,
                   int64_t max, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return jfail(c, key, "missing");
    if (!json_is_integer(v))
        return jfail(c, key, "not an integer");
    json_int_t x = json_integer_value(v);
    if (x < min || x > max) {
        char msg[96];
        snprintf(msg, sizeof msg, "%lld is out of range [%lld, %lld]",
                 (long long)x, (long long)min, (long long)max);
        return jfail(c, key, msg);
    }
    *out = (int64_t)x;
    return 0;
}

/* A string member; with `nullable`, null or absent gives *out = NULL. */
static int get_str(const jctx *c, json_t *o, const char *key, int nullable,
                   char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if ((!v || json_is_null(v)) && nullable)
        return 0;
    if (!v)
        return jfail(c, key, "missing");
    if (!json_is_string(v))
        return jfail(c, key,
                     nullable ? "not a string or null" : "not a string");
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return jfail(c, key, "contains a NUL character");
    if (!*s && !nullable)
        return jfail(c, key, "empty");
    if (!(*out = strdup(s)))
        return err_set(c->errptr, WEIR_ENOMEM, "out of memory");
    return 0;
}

static int task_from_json(json_t *o, size_t i, ckpt_task *t, char **errptr)
{
    char where[48];
    snprintf(where, sizeof where, "tasks[%zu]", i);
    jctx c = {errptr, where};
    int64_t index = 0, par = 0, sv = 0, bytes = 0;
    if (!json_is_object(o))
        return err_set(errptr, WEIR_EIO, "%s: not an object", where);
    int rc = get_str(&c, o, "op", 0, &t->op_id);
    rc = rc ? rc : get_int(&c, o, "index", 0, UINT32_MAX, &index);
    rc = rc ? rc : get_int(&c, o, "parallelism", 1, UINT32_MAX, &par);
    rc = rc ? rc : get_str(&c, o, "state_dir", 1, &t->state_dir);
    rc = rc ? rc : get_str(&c, o, "snapshot", 1, &t->snapshot);
    rc = rc ? rc : get_str(&c, o, "broadcast", 1, &t->broadcast);
    rc = rc ? rc : get_str(&c, o, "async", 1, &t->async);
    rc = rc ? rc : get_int(&c, o, "snapshot_version", 0, UINT32_MAX, &sv);
    rc = rc ? rc : get_int(&c, o, "state_bytes", 0, INT64_MAX, &bytes);
    rc = rc ? rc : get_int(&c, o, "sync_ms", INT64_MIN, INT64_MAX, &t->sync_ms);
    rc = rc ? rc
            : get_int(&c, o, "align_ms", INT64_MIN, INT64_MAX, &t->align_ms);
    if (rc)
        return rc;
    t->index = (uint32_t)index;
    t->parallelism = (uint32_t)par;
    t->snapshot_version = (uint32_t)sv;
    t->state_bytes = (uint64_t)bytes;
    return 0;
}

static int parse_hex64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char ch = s[i];
        int d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    if (s[16])
        return -1;
    *out = v;
    return 0;
}

static int file_from_json(json_t *o, size_t i, ckpt_file *f, char **errptr)
{
    char where[48];
    snprintf(where, sizeof where, "files[%zu]", i);
    jctx c = {errptr, where};
    int64_t size = 0;
    char *hex = NULL;
    if (!json_is_object(o))
        return err_set(errptr, WEIR_EIO, "%s: not an object", where);
    int rc = get_str(&c, o, "path", 0, &f->path);
    rc = rc ? rc : get_int(&c, o, "size", 0, INT64_MAX, &size);
    rc = rc ? rc : get_str(&c, o, "xxh3", 0, &hex);
    if (!rc && !safe_relpath(f->path))
        rc = jfail(&c, "path", "not a relative path inside the checkpoint");
    if (!rc && parse_hex64(hex, &f->xxh3))
        rc = jfail(&c, "xxh3", "not 16 lowercase hexadecimal digits");
    free(hex);
    f->size = (uint64_t)size;
    return rc;
}

static int array_of(const jctx *c, json_t *root, const char *key, json_t **out)
{
    *out = json_object_get(root, key);
    if (!*out)
        return jfail(c, key, "missing");
    if (!json_is_array(*out))
        return jfail(c, key, "not an array");
    return 0;
}

/* Decodes a manifest whose "format" was checked. Messages name the member
 * (no prefix). */
static int manifest_from_json(json_t *root, ckpt_manifest *m, char **errptr)
{
    jctx c = {errptr, ""};
    int64_t id = 0, maxp = 0;
    json_t *tasks, *files, *fin;
    int rc = get_str(&c, root, "job", 0, &m->job);
    rc = rc ? rc : get_int(&c, root, "id", 0, INT64_MAX, &id);
    rc = rc ? rc
            : get_int(&c, root, "triggered_ms", INT64_MIN, INT64_MAX,
                      &m->triggered_ms);
    rc = rc ? rc
            : get_int(&c, root, "completed_ms", INT64_MIN, INT64_MAX,
                      &m->completed_ms);
    rc = rc ? rc : get_int(&c, root, "max_parallelism", 0, UINT32_MAX, &maxp);
    rc = rc ? rc : array_of(&c, root, "tasks", &tasks);
    rc = rc ? rc : array_of(&c, root, "files", &files);
    if (rc)
        return rc;
    fin = json_object_get(root, "final");
    if (!fin)
        return jfail(&c, "final", "missing");
    if (!json_is_boolean(fin))
        return jfail(&c, "final", "not a boolean");
    m->version = CKPT_FORMAT_VERSION;
    m->id = (uint64_t)id;
    m->max_parallelism = (uint32_t)maxp;
    m->final = json_is_true(fin);
    json_t *sp = json_object_get(root, "savepoint");
    if (sp && !json_is_boolean(sp))
        return jfail(&c, "savepoint", "not a boolean");
    m->savepoint = json_is_true(sp); /* false when absent */

    size_t nt = json_array_size(tasks), nf = json_array_size(files);
    m->tasks = calloc(nt ? nt : 1, sizeof *m->tasks);
    m->files = calloc(nf ? nf : 1, sizeof *m->files);
    if (!m->tasks || !m->files)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    for (size_t i = 0; i < nt; i++) {
        m->n_tasks = i + 1;
        rc = task_from_json(json_array_get(tasks, i), i, &m->tasks[i], errptr);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < nf; i++) {
        m->n_files = i + 1;
        rc = file_from_json(json_array_get(files, i), i, &m->files[i], errptr);
        if (rc)
            return rc;
        if (i && strcmp(m->files[i - 1].path, m->files[i].path) >= 0)
            return err_set(errptr, WEIR_EIO,
                           "files[%zu].path: \"%s\" does not sort after "
                           "\"%s\" (duplicate or out of order)",
                           i, m->files[i].path, m->files[i - 1].path);
    }
    return tasks_check(m, 1, WEIR_EIO, errptr);
}

/* Parses MANIFEST.json text. Messages start with "MANIFEST.json: ". */
static int manifest_parse(const char *text, size_t len, ckpt_manifest **out,
                          char **errptr)
{
    json_error_t jerr;
    ckpt_manifest *m = NULL;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = 0;
    if (!root) {
        rc = err_set(errptr, WEIR_EIO,
                     MANIFEST_NAME ": invalid JSON at line %d column %d: %s",
                     jerr.line, jerr.column, jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = err_set(errptr, WEIR_EIO, MANIFEST_NAME ": not a JSON object");
        goto out;
    }
    json_t *fmt = json_object_get(root, "format");
    if (!fmt || !json_is_integer(fmt)) {
        rc = err_set(errptr, WEIR_EIO, MANIFEST_NAME ": format: %s",
                     fmt ? "not an integer" : "missing");
        goto out;
    }
    if (json_integer_value(fmt) != CKPT_FORMAT_VERSION) {
        rc = err_set(errptr, WEIR_ENOTSUP,
                     MANIFEST_NAME ": unknown format version %lld (this "
                                   "build reads version %d)",
                     (long long)json_integer_value(fmt), CKPT_FORMAT_VERSION);
        goto out;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
        goto out;
    }
    rc = manifest_from_json(root, m, errptr);
    if (rc) {
        err_prefix(errptr, MANIFEST_NAME);
        goto out;
    }
    *out = m;
    m = NULL;
out:
    ckpt_manifest_free(m);
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Loading and verifying                                                     */
/* ------------------------------------------------------------------------ */

/* Checks one listed file. The message is "<path>: <problem>". */
static int verify_file(const char *chk, const ckpt_file *f, char **errptr)
{
    char *full = path_join(chk, f->path);
    if (!full)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    int rc = 0;
    int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    free(full);
    if (fd < 0) {
        if (errno == ENOENT)
            return err_set(errptr, WEIR_EIO, "%s: missing", f->path);
        if (errno == ELOOP)
            return err_set(errptr, WEIR_EIO, "%s: not a regular file", f->path);
        return err_set(errptr, WEIR_EIO, "%s: open: %s", f->path,
                       strerror(errno));
    }
    struct stat st;
    uint64_t size, sum;
    if (fstat(fd, &st)) {
        rc =
            err_set(errptr, WEIR_EIO, "%s: stat: %s", f->path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = err_set(errptr, WEIR_EIO, "%s: not a regular file", f->path);
    } else if ((uint64_t)st.st_size != f->size) {
        rc = err_set(errptr, WEIR_EIO,
                     "%s: size is %llu bytes, the manifest says %llu", f->path,
                     (ull)st.st_size, (ull)f->size);
    } else if ((rc = ckpt_hash_fd(fd, f->path, &size, &sum, errptr)) != 0) {
        /* message set */
    } else if (size != f->size) {
        rc = err_set(errptr, WEIR_EIO,
                     "%s: read %llu bytes, the manifest says %llu", f->path,
                     (ull)size, (ull)f->size);
    } else if (sum != f->xxh3) {
        rc = err_set(errptr, WEIR_EIO,
                     "%s: checksum mismatch: xxh3 is %016llx, the manifest "
                     "says %016llx",
                     f->path, (ull)sum, (ull)f->xxh3);
    }
    close(fd);
    return rc;
}

/*
 * Loads <chk>/MANIFEST.json (and verifies it). `want_id` >= 0: the
 * manifest must be for that id. Every message starts with
 * "checkpoint <id> (<chk>): ".
 */
static int load_dir(const char *chk, int64_t want_id, int verify,
                    ckpt_manifest **out, char **errptr)
{
    char *path = path_join(chk, MANIFEST_NAME), *text = NULL;
    ckpt_manifest *m = NULL;
    size_t len = 0;
    int rc;
    if (!path) {
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
        goto out;
    }
    rc = ckpt_read_file(path, &text, &len, errptr);
    if (rc) {
        err_prefix(errptr, MANIFEST_NAME);
        goto out;
    }
    rc = manifest_parse(text, len, &m, errptr);
    if (rc)
        goto out;
    if (want_id >= 0 && m->id != (uint64_t)want_id) {
        rc = err_set(errptr, WEIR_EIO,
                     MANIFEST_NAME ": id: the manifest is for checkpoint %llu",
                     (ull)m->id);
        goto out;
    }
    for (size_t i = 0; verify && i < m->n_files && !rc; i++)
        rc = verify_file(chk, &m->files[i], errptr);
    if (rc)
        goto out;
    *out = m;
    m = NULL;
out:
    if (rc && want_id >= 0)
        err_prefix(errptr, "checkpoint %lld (%s)", (long long)want_id, chk);
    else if (rc && m)
        err_prefix(errptr, "checkpoint %llu (%s)", (ull)m->id, chk);
    else if (rc)
        err_prefix(errptr, "checkpoint (%s)", chk);
    ckpt_manifest_free(m);
    free(text);
    free(path);
    return rc;
}

int ckpt_manifest_load(const char *run_dir, uint64_t id, int verify,
                       ckpt_manifest **out, char **errptr)
{
    if (id > INT64_MAX)
        return err_set(errptr, WEIR_EINVAL, "checkpoint id %llu is too large",
                       (ull)id);
    char *chk = ckpt_dir(run_dir, id);
    if (!chk)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    int rc = load_dir(chk, (int64_t)id, verify, out, errptr);
    free(chk);
    return rc;
}

int ckpt_manifest_load_path(const char *chk_dir, ckpt_manifest **out,
                            char **errptr)
{
    return load_dir(chk_dir, -1, 1, out, errptr);
}

/* ------------------------------------------------------------------------ */
/* The completed log                                                         */
/* ------------------------------------------------------------------------ */

/*
 * Reads the log: the ids of its complete lines in *ids / *n, and the length
 * of those lines in *valid (bytes after it are a torn last append, which is
 * ignored: its write never finished, so its fsync never returned and the
 * checkpoint was never reported complete).
 */
static int log_load(const char *run_dir, int warn, uint64_t **ids, size_t *n,
                    size_t *valid, char **errptr)
{
    char *path = path_join(run_dir, LOG_NAME), *text = NULL;
    uint64_t *v = NULL;
    size_t len = 0, cnt = 0, cap = 0, line = 0;
    int rc = 0;
    *ids = NULL;
    *n = 0;
    *valid = 0;
    if (!path)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    char *why = NULL;
    rc = ckpt_read_file(path, &text, &len, &why);
    if (rc == WEIR_ENOTFOUND)
        rc = 0; /* no log yet: no checkpoint */
    else if (rc)
        err_set(errptr, rc, "%s: %s", path, why);
    free(why);
    if (rc || !text)
        goto out;
    size_t pos = 0;
    for (char *nl; (nl = memchr(text + pos, '\n', len - pos)) != NULL;
         pos = (size_t)(nl - text) + 1) {
        const char *s = text + pos;
        size_t sl = (size_t)(nl - s);
        uint64_t id = 0;
        int ok = sl > 0 && sl <= 20 && (s[0] != '0' || sl == 1);
        for (size_t i = 0; ok && i < sl; i++) {
            ok = s[i] >= '0' && s[i] <= '9' &&
                 id <= (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10;
            id = id * 10 + (uint64_t)(s[i] - '0');
        }
        line++;
        if (!ok) {
            rc =
                err_set(errptr, WEIR_EIO, "%s: line %zu: malformed id \"%.*s\"",
                        path, line, (int)(sl > 40 ? 40 : sl), s);
            goto out;
        }
        if (cnt && id <= v[cnt - 1]) {
            rc = err_set(errptr, WEIR_EIO,
                         "%s: line %zu: id %llu does not follow %llu", path,
                         line, (ull)id, (ull)v[cnt - 1]);
            goto out;
        }
        if (cnt == cap) {
            cap = cap ? 2 * cap : 16;
            uint64_t *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
                goto out;
            }
            v = nv;
        }
        v[cnt++] = id;
    }
    if (pos < len && warn)
        log_msg(WEIR_LOG_WARN, "checkpoint",
                "%s: ignoring an unfinished last line (%zu bytes)", path,
                len - pos);
    *ids = v;
    *n = cnt;
    *valid = pos;
    v = NULL;
out:
    free(v);
    free(text);
    free(path);
    return rc;
}

int ckpt_log_read(const char *run_dir, uint64_t **ids, size_t *n, char **errptr)
{
    size_t valid;
    return log_load(run_dir, 1, ids, n, &valid, errptr);
}

/* Appends "<id>\n" to the log and makes it durable. */
static int log_append(const char *run_dir, uint64_t id, char **errptr)
{
    uint64_t *ids = NULL;
    size_t n = 0, valid = 0;
    char *path = NULL;
    int fd = -1, created = 0;
    int rc = log_load(run_dir, 1, &ids, &n, &valid, errptr);
    if (rc)
        goto out;
    if (n && id <= ids[n - 1]) {
        rc = err_set(errptr, WEIR_EINVAL,
                     "id %llu is not above %llu, the newest in the log",
                     (ull)id, (ull)ids[n - 1]);
        goto out;
    }
    if (!(path = path_join(run_dir, LOG_NAME))) {
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
        goto out;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC,
                  0666);
        created = 1;
    }
    if (fd < 0) {
        rc = fs_write_error(errptr, errno, run_dir, "%s: open", path);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) ||
        ((uint64_t)st.st_size > valid && ftruncate(fd, (off_t)valid))) {
        rc = err_set(errptr, WEIR_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    char line[24];
    int ll = snprintf(line, sizeof line, "%llu\n", (ull)id);
    ssize_t w;
    do
        w = write(fd, line, (size_t)ll);
    while (w < 0 && errno == EINTR);
    if (w != ll || fsync(fd)) {
        /* A torn or unsynced line must not list the checkpoint later. */
        int e = w < 0 || w == ll ? errno : ENOSPC;
        rc = fs_write_error(errptr, e, run_dir, "%s: %s", path,
                            w == ll ? "fsync" : "write");
        if (ftruncate(fd, (off_t)valid) == 0)
            (void)fsync(fd);
        goto out;
    }
    if (created)
        rc = ckpt_fsync_dir(run_dir, errptr);
out:
    if (fd >= 0)
        close(fd);
    free(path);
    free(ids);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Completing a checkpoint                                                   */
/* ------------------------------------------------------------------------ */

/* Checks m, lists and checksums the files of `chk` into m->files and
 * writes chk/MANIFEST.json (crash point "manifest_written" before the
 * rename). */
static int manifest_write_in(const char *chk, ckpt_manifest *m,
                             ckpt_sum_cache *cache, char **errptr)
{
    static const char *const skip[] = {MANIFEST_NAME, MANIFEST_NAME ".tmp",
                                       NULL};
    ckpt_file *files = NULL;
    size_t n_files = 0;
    char *text = NULL, *path = NULL;
    int rc;
    if (!m->job || !*m->job)
        return err_set(errptr, WEIR_EINVAL, "no job name");
    if (m->id > INT64_MAX)
        return err_set(errptr, WEIR_EINVAL, "id too large");
    if ((rc = tasks_check(m, 0, WEIR_EINVAL, errptr)) != 0)
        return rc;
    rc = ckpt_scan_tree(chk, skip, cache, &files, &n_files, errptr);
    if (rc)
        return rc;
    ckpt_files_free(m->files, m->n_files);
    m->files = files;
    m->n_files = n_files;
    if ((rc = tasks_check(m, 1, WEIR_EIO, errptr)) != 0)
        return rc;
    m->version = CKPT_FORMAT_VERSION;
    if (m->completed_ms == 0)
        m->completed_ms = wall_ms();

    text = manifest_dump(m);
    path = path_join(chk, MANIFEST_NAME);
    if (!text || !path)
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
    else
        rc = ckpt_write_atomic(chk, path, text, strlen(text),
                               "manifest_written", errptr);
    free(text);
    free(path);
    return rc;
}

static int complete_in(const char *run_dir, const char *chk, ckpt_manifest *m,
                       ckpt_sum_cache *cache, char **errptr)
{
    uint64_t *ids = NULL;
    size_t n_ids = 0, valid;
    int rc;
    if (m->id > INT64_MAX)
        return err_set(errptr, WEIR_EINVAL, "id too large");
    if ((rc = log_load(run_dir, 0, &ids, &n_ids, &valid, errptr)) != 0)
        return rc;
    if (n_ids && m->id <= ids[n_ids - 1])
        rc = err_set(errptr, WEIR_EINVAL,
                     "id %llu is not above %llu, the newest in the log",
                     (ull)m->id, (ull)ids[n_ids - 1]);
    free(ids);
    if (rc)
        return rc;

    if ((rc = manifest_write_in(chk, m, cache, errptr)) != 0)
        return rc;
    crash_point("manifest_renamed");
    return log_append(run_dir, m->id, errptr);
}

int ckpt_complete(const char *run_dir, ckpt_manifest *m, ckpt_sum_cache *cache,
                  char **errptr)
{
    char *chk = ckpt_dir(run_dir, m->id);
    if (!chk)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    int rc = complete_in(run_dir, chk, m, cache, errptr);
    if (rc)
        err_prefix(errptr, "checkpoint %llu (%s)", (ull)m->id, chk);
    free(chk);
    return rc;
}

int ckpt_write_manifest(const char *chk_dir, ckpt_manifest *m, char **errptr)
{
    int rc = manifest_write_in(chk_dir, m, NULL, errptr);
    if (rc)
        err_prefix(errptr, "checkpoint %llu (%s)", (ull)m->id, chk_dir);
    return rc;
}

int ckpt_mark_savepoint(const char *dir, char **errptr)
{
    ckpt_manifest *m = NULL;
    char *text = NULL, *path = NULL;
    int rc = load_dir(dir, -1, 0, &m, errptr);
    if (rc)
        goto out;
    m->savepoint = 1;
    text = manifest_dump(m);
    path = path_join(dir, MANIFEST_NAME);
    if (!text || !path)
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
    else
        rc = ckpt_write_atomic(dir, path, text, strlen(text), NULL, errptr);
    if (rc)
        err_prefix(errptr, "checkpoint %llu (%s)", (ull)m->id, dir);
out:
    ckpt_manifest_free(m);
    free(text);
    free(path);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Restore: the newest good checkpoint                                       */
/* ------------------------------------------------------------------------ */

/* Appends "; <s>" (or "<s>" first) to the malloc'ed *acc. */
static void append_why(char **acc, const char *s)
{
    char *n = NULL;
    if (asprintf(&n, "%s%s%s", *acc ? *acc : "", *acc ? "; " : "", s) < 0)
        return;
    free(*acc);
    *acc = n;
}

int ckpt_find_latest(const char *run_dir, ckpt_damaged_fn on_damaged, void *arg,
                     ckpt_manifest **out, char **errptr)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    char *whys = NULL, *why = NULL;
    int rc = ckpt_log_read(run_dir, &ids, &n, errptr);
    if (rc)
        return rc;
    if (n == 0) {
        rc = err_set(errptr, WEIR_ENOTFOUND,
                     "no completed checkpoint in %s (%s/" LOG_NAME
                     " is missing or empty)",
                     run_dir, run_dir);
        goto out;
    }
    for (size_t i = n; i-- > 0;) {
        rc = ckpt_manifest_load(run_dir, ids[i], 1, out, &why);
        if (rc == 0)
            goto out;
        if (rc == WEIR_ENOMEM) {
            err_set(errptr, rc, "%s", why ? why : "out of memory");
            goto out;
        }
        const char *w = why ? why : "damaged";
        if (on_damaged)
            on_damaged(arg, ids[i], w);
        else
            log_msg(WEIR_LOG_WARN, "checkpoint",
                    "skipping damaged checkpoint %llu: %s", (ull)ids[i], w);
        append_why(&whys, w);
    }
    rc = err_set(errptr, WEIR_EIO, "no valid checkpoint in %s: %s", run_dir,
                 whys ? whys : "all damaged");
out:
    free(why);
    free(whys);
    free(ids);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Retention                                                                 */
/* ------------------------------------------------------------------------ */

/* "chk-<id>" with a canonical decimal id (as ckpt_dir() writes it). */
static int parse_chk_name(const char *name, uint64_t *id)
{
    if (strncmp(name, "chk-", 4) != 0)
        return 0;
    const char *s = name + 4;
    size_t n = strlen(s);
    if (n == 0 || n > 20 || (s[0] == '0' && n > 1))
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' ||
            v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *id = v;
    return 1;
}

static int id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Rewrites the log with ids[0..n) atomically. */
static int log_rewrite(const char *run_dir, const uint64_t *ids, size_t n,
                       char **errptr)
{
    char *text = malloc(n * 21 + 1), *path = path_join(run_dir, LOG_NAME);
    int rc = 0;
    if (!text || !path) {
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
        goto out;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(text + len, "%llu\n", (ull)ids[i]);
    rc = ckpt_write_atomic(run_dir, path, text, len, NULL, errptr);
out:
    free(text);
    free(path);
    return rc;
}

/* Removes every chk- directory of run_dir whose id is below `below` and not
 * in the sorted keep[0..n). */
static int remove_chk_dirs(const char *run_dir, const uint64_t *keep, size_t n,
                           uint64_t below, char **errptr)
{
    DIR *d = opendir(run_dir);
    if (!d && errno == ENOENT)
        return 0;
    if (!d)
        return err_set(errptr, WEIR_EIO, "%s: opendir: %s", run_dir,
                       strerror(errno));
    int rc = 0;
    struct dirent *de;
    for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
        uint64_t id;
        if (!parse_chk_name(de->d_name, &id) || id >= below ||
            (n && bsearch(&id, keep, n, sizeof *keep, id_cmp)))
            continue;
        char *p = path_join(run_dir, de->d_name);
        struct stat st;
        if (!p) {
            rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
            goto out;
        }
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rc = fs_rmtree(p, errptr);
        free(p);
        if (rc)
            goto out;
    }
    if (errno)
        rc = err_set(errptr, WEIR_EIO, "%s: readdir: %s", run_dir,
                     strerror(errno));
out:
    closedir(d);
    return rc;
}

int ckpt_retain(const char *run_dir, uint32_t retain, char **errptr)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc;
    if (retain < 1)
        return err_set(errptr, WEIR_EINVAL,
                       "retain: at least one checkpoint must be kept");
    if ((rc = ckpt_log_read(run_dir, &ids, &n, errptr)) != 0)
        goto out;
    if (n == 0)
        goto out; /* nothing complete: every chk- dir may be in progress */
    size_t first = n > retain ? n - retain : 0;
    if (first > 0 &&
        (rc = log_rewrite(run_dir, ids + first, n - first, errptr)) != 0)
        goto out;
    /* From here on, ids[first..n) are the kept ones (sorted). */
    rc = remove_chk_dirs(run_dir, ids + first, n - first, ids[n - 1], errptr);
out:
    free(ids);
    return rc;
}

int ckpt_remove_unfinished(const char *run_dir, uint64_t keep, char **errptr)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = ckpt_log_read(run_dir, &ids, &n, errptr);
    uint64_t *k = rc == 0 ? realloc(ids, (n + 1) * sizeof *ids) : NULL;
    if (rc == 0 && !k)
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
    if (rc == 0) {
        ids = k;
        ids[n++] = keep;
        qsort(ids, n, sizeof *ids, id_cmp);
        rc = remove_chk_dirs(run_dir, ids, n, UINT64_MAX, errptr);
    }
    free(ids);
    return rc;
}
