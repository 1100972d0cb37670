#include "statetool/bootstrap.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "checkpoint/manifest.h"
#include "common/err.h"
#include "common/fs.h"
#include "runtime/plan.h"
#include "state/codec.h"
#include "statetool/entry.h"
#include "statetool/writer.h"

/* An entry written, kept to find keys given twice. */
typedef struct boot_ent {
    char *k; /* the state key */
    size_t klen;
    size_t plen; /* key group | varint | record key: the record key part */
    uint64_t line;
} boot_ent;

typedef struct boot {
    const boot_options *o;
    uint32_t par, maxp;
    stw_db **w;
    boot_ent *ents;
    size_t n_ents, cap_ents;
    boot_stats st;
    uint64_t line;
    char *vbuf; /* stamp | value bytes */
    size_t vcap;
} boot;

static int boot_oom(char **errptr)
{
    err_set(errptr, WEIR_ENOMEM, "out of memory");
    return WEIR_ENOMEM;
}

static int boot_valid_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') ||
              s[n] == '_'))
            return 0;
    return n >= 1 && n <= 64;
}

/* 1 when `dir` does not exist or is an empty directory. */
static int boot_dir_free(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT;
    struct dirent *de;
    int empty = 1;
    while (empty && (de = readdir(d)) != NULL)
        empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* Sets the message of bad options; returns NULL. */
WEIR_PRINTF(2, 3)
static const topo_op *boot_bad_opt(char **errptr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_setv(errptr, WEIR_EINVAL, fmt, ap);
    va_end(ap);
    return NULL;
}

/* The operator of the options, checked; NULL (with the message) when the
 * options are bad. */
static const topo_op *boot_check(const boot_options *o, char **errptr)
{
    int k = topo_find_op(o->job, o->op_id);
    if (k < 0)
        return boot_bad_opt(errptr, "the job '%s' (%s) has no operator '%s'",
                            o->job->name, o->job->path, o->op_id);
    const topo_op *op = &o->job->ops[k];
    if (!(op->reg->op.flags & WEIR_OP_KEYED))
        return boot_bad_opt(errptr,
                            "operator '%s' (%s) is not keyed: it has no keyed "
                            "state to bootstrap",
                            o->op_id, op->type);
    if (!boot_valid_name(o->state))
        return boot_bad_opt(errptr,
                            "--state '%s': a state name is 1 to 64 "
                            "characters out of a-z, 0-9 and _",
                            o->state);
    uint32_t par = o->parallelism ? o->parallelism : op->parallelism;
    if (par > o->job->max_parallelism)
        return boot_bad_opt(errptr,
                            "--parallelism %u is above the job's "
                            "max_parallelism %u",
                            par, o->job->max_parallelism);
    if (!boot_dir_free(o->out))
        return boot_bad_opt(errptr,
                            "%s exists and is not an empty directory; a "
                            "savepoint is written into a new directory",
                            o->out);
    return op;
}

static int boot_writers(boot *b, const topo_op *op, char **errptr)
{
    stw_state st = {.name = b->o->state, .id = 0, .kind = (uint8_t)b->o->kind};
    b->w = calloc(b->par + 1, sizeof *b->w);
    if (!b->w)
        return boot_oom(errptr);
    for (uint32_t i = 0; i < b->par; i++) {
        char *dir = NULL;
        if (asprintf(&dir, "%s/%s-%u/state", b->o->out, op->id, i) < 0)
            return boot_oom(errptr);
        int rc = stw_create(dir, &st, 1, &b->w[i], errptr);
        free(dir);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Sets a message "FILE:LINE: <why>" and returns `code`. */
static int boot_bad(boot *b, int code, const char *why, char **errptr)
{
    return err_set(errptr, code, "%s:%" PRIu64 ": %s", b->o->input, b->line,
                   why);
}

static int boot_member_check(boot *b, json_t *obj, char **errptr)
{
    static const char *const known[] = {
        "key", "user_key", "value", "expiry", "subtask", "key_group", NULL};
    const char *name;
    json_t *x;
    json_object_foreach(obj, name, x)
    {
        size_t i = 0;
        while (known[i] && strcmp(known[i], name) != 0)
            i++;
        int map_only = known[i] && strcmp(name, "user_key") == 0;
        if (!known[i] || (map_only && b->o->kind != WEIR_STATE_MAP)) {
            char why[160];
            snprintf(why, sizeof why, "unknown member '%.64s'%s", name,
                     map_only ? " (user_key is for map state)" : "");
            return boot_bad(b, WEIR_EINVAL, why, errptr);
        }
    }
    const char *need[] = {"key", "value",
                          b->o->kind == WEIR_STATE_MAP ? "user_key" : NULL};
    for (int i = 0; i < 3 && need[i]; i++)
        if (!json_object_get(obj, need[i])) {
            char why[64];
            snprintf(why, sizeof why, "no \"%s\"", need[i]);
            return boot_bad(b, WEIR_EINVAL, why, errptr);
        }
    return 0;
}

/* The expiry stamp of a line: STAMP_NONE without one. */
static int boot_expiry(boot *b, json_t *obj, int64_t *stamp, char **errptr)
{
    json_t *e = json_object_get(obj, "expiry");
    *stamp = STAMP_NONE;
    if (!e || json_is_null(e))
        return 0;
    if (!json_is_integer(e))
        return boot_bad(b, WEIR_EINVAL,
                        "\"expiry\" is ms since the epoch (an integer) or "
                        "null",
                        errptr);
    *stamp = json_integer_value(e);
    return 0;
}

/* Appends bytes to the value buffer. */
static int boot_vadd(boot *b, size_t *len, const char *p, size_t n, int list)
{
    size_t need = *len + n + (list ? 10 : 0);
    if (need > b->vcap) {
        size_t cap = need > 2 * b->vcap ? need : 2 * b->vcap;
        char *nb = realloc(b->vbuf, cap);
        if (!nb)
            return -1;
        b->vbuf = nb;
        b->vcap = cap;
    }
    if (list)
        *len += ste_list_elem_encode(b->vbuf + *len, p, n);
    else {
        if (n)
            memcpy(b->vbuf + *len, p, n);
        *len += n;
    }
    return 0;
}

/* The stored value of a line (stamp | bytes) in b->vbuf. */
static int boot_value(boot *b, json_t *v, int64_t stamp, size_t *len,
                      char **errptr)
{
    int list = b->o->kind == WEIR_STATE_LIST;
    char st[STAMP_LEN];
    stamp_put(st, stamp);
    *len = 0;
    if (boot_vadd(b, len, st, STAMP_LEN, 0) < 0)
        return boot_oom(errptr);
    if (list && !json_is_array(v))
        return boot_bad(b, WEIR_EINVAL,
                        "the \"value\" of a list state is an array of its "
                        "elements",
                        errptr);
    size_t n = list ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        char *bytes = NULL, *why = NULL;
        size_t blen = 0;
        int rc = mpj_value_from(list ? json_array_get(v, i) : v, b->o->format,
                                &bytes, &blen, &why);
        if (rc == 0 && boot_vadd(b, len, bytes, blen, list) < 0)
            rc = err_set(&why, WEIR_ENOMEM, "out of memory");
        free(bytes);
        if (rc < 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "\"value\"%s: %s", list ? "[...]" : "",
                     why ? why : "bad value");
            free(why);
            return boot_bad(b, rc, msg, errptr);
        }
    }
    return 0;
}

/* A key member as bytes, checked. */
static int boot_key(boot *b, json_t *obj, const char *name, char **out,
                    size_t *n, char **errptr)
{
    char *why = NULL;
    int rc = mpj_key_bytes(json_object_get(obj, name), out, n, &why);
    char msg[512];
    if (rc == 0 && *n > KEY_MAX) {
        snprintf(msg, sizeof msg, "\"%s\" has %zu bytes; at most %d", name, *n,
                 KEY_MAX);
        free(*out);
        *out = NULL;
        return boot_bad(b, WEIR_EINVAL, msg, errptr);
    }
    if (rc < 0) {
        snprintf(msg, sizeof msg, "\"%s\": %s", name, why ? why : "bad key");
        free(why);
        return boot_bad(b, rc, msg, errptr);
    }
    return 0;
}

static int boot_remember(boot *b, char *k, size_t klen, size_t plen)
{
    if (b->n_ents == b->cap_ents) {
        size_t cap = b->cap_ents ? 2 * b->cap_ents : 1024;
        boot_ent *n = realloc(b->ents, cap * sizeof *n);
        if (!n)
            return -1;
        b->ents = n;
        b->cap_ents = cap;
    }
    b->ents[b->n_ents++] = (boot_ent){k, klen, plen, b->line};
    return 0;
}

/* Writes the entry of one input object. */
static int boot_line(boot *b, json_t *obj, char **errptr)
{
    char *key = NULL, *ukey = NULL, *sk = NULL;
    size_t klen = 0, ulen = 0, vlen = 0;
    int64_t stamp = STAMP_NONE;
    int map = b->o->kind == WEIR_STATE_MAP;
    int rc = boot_member_check(b, obj, errptr);
    if (rc == 0)
        rc = boot_key(b, obj, "key", &key, &klen, errptr);
    if (rc == 0 && map)
        rc = boot_key(b, obj, "user_key", &ukey, &ulen, errptr);
    if (rc == 0)
        rc = boot_expiry(b, obj, &stamp, errptr);
    if (rc == 0)
        rc = boot_value(b, json_object_get(obj, "value"), stamp, &vlen, errptr);
    if (rc < 0)
        goto out;
    uint32_t kg = plan_key_group(key, klen, b->maxp);
    uint32_t j = plan_kg_to_index(kg, b->par, b->maxp);
    if (!(sk = malloc(ste_key_size(klen, ulen)))) {
        rc = boot_oom(errptr);
        goto out;
    }
    size_t sklen = ste_key_encode(sk, (uint16_t)kg, key, klen, ukey, ulen);
    rc = stw_put(b->w[j], 0, sk, sklen, b->vbuf, vlen, errptr);
    if (rc == 0 && stamp != STAMP_NONE) {
        char *ik = malloc(ste_index_size(sklen));
        if (!ik) {
            rc = boot_oom(errptr);
            goto out;
        }
        size_t iklen =
            ste_index_encode(ik, b->o->ttl_domain, stamp, 0, sk, sklen);
        rc = stw_put(b->w[j], STW_INDEX, ik, iklen, "", 0, errptr);
        free(ik);
    }
    if (rc == 0 && boot_remember(b, sk, sklen, sklen - ulen) < 0)
        rc = boot_oom(errptr);
    if (rc == 0) {
        sk = NULL; /* kept in b->ents */
        b->st.entries++;
    }
out:
    free(sk);
    free(key);
    free(ukey);
    return rc;
}

static int boot_read(boot *b, char **errptr)
{
    FILE *f = fopen(b->o->input, "r");
    if (!f)
        return err_set(errptr, WEIR_EINVAL, "%s: %s", b->o->input,
                       strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&buf, &cap, f)) >= 0) {
        b->line++;
        size_t len = (size_t)n;
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
        size_t sp = strspn(buf, " \t");
        if (sp >= len)
            continue;
        json_error_t je;
        json_t *obj = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
        if (!obj || !json_is_object(obj)) {
            char why[256];
            snprintf(why, sizeof why, "%s", obj ? "not a JSON object" : "");
            if (!obj)
                snprintf(why, sizeof why, "invalid JSON at column %d: %s",
                         je.column, je.text);
            rc = boot_bad(b, WEIR_EINVAL, why, errptr);
        } else {
            b->st.lines++;
            rc = boot_line(b, obj, errptr);
        }
        json_decref(obj);
    }
    if (rc == 0 && ferror(f))
        rc = err_set(errptr, WEIR_EIO, "%s: read: %s", b->o->input,
                     strerror(errno));
    free(buf);
    fclose(f);
    return rc;
}

static int ent_cmp(const void *x, const void *y)
{
    const boot_ent *a = x, *b = y;
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = memcmp(a->k, b->k, n);
    if (c)
        return c;
    if (a->klen != b->klen)
        return a->klen < b->klen ? -1 : 1;
    return a->line < b->line ? -1 : a->line > b->line;
}

/* Refuses keys given twice; counts distinct record keys. */
static int boot_duplicates(boot *b, char **errptr)
{
    if (b->n_ents)
        qsort(b->ents, b->n_ents, sizeof *b->ents, ent_cmp);
    for (size_t i = 0; i < b->n_ents; i++) {
        const boot_ent *e = &b->ents[i], *p = i ? &b->ents[i - 1] : NULL;
        if (p && p->klen == e->klen && memcmp(p->k, e->k, e->klen) == 0) {
            b->line = e->line;
            char why[96];
            snprintf(why, sizeof why, "the same %s as on line %" PRIu64,
                     b->o->kind == WEIR_STATE_MAP ? "key and user_key" : "key",
                     p->line);
            return boot_bad(b, WEIR_EINVAL, why, errptr);
        }
        if (!p || p->plen != e->plen || memcmp(p->k, e->k, e->plen) != 0)
            b->st.keys++;
    }
    return 0;
}

/* Bytes of the regular files under `dir`. */
static uint64_t boot_du(const char *dir)
{
    DIR *d = opendir(dir);
    uint64_t sum = 0;
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *p = NULL;
        struct stat sb;
        if (asprintf(&p, "%s/%s", dir, de->d_name) < 0)
            continue;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            sum += boot_du(p);
        else if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode))
            sum += (uint64_t)sb.st_size;
        free(p);
    }
    closedir(d);
    return sum;
}

static int64_t boot_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int boot_manifest(boot *b, const topo_op *op, char **errptr)
{
    ckpt_manifest m = {.version = CKPT_FORMAT_VERSION,
                       .job = b->o->job->name,
                       .id = 0,
                       .triggered_ms = boot_wall_ms(),
                       .savepoint = 1,
                       .max_parallelism = b->maxp};
    m.completed_ms = m.triggered_ms;
    m.tasks = calloc(b->par, sizeof *m.tasks);
    int rc = m.tasks ? 0 : boot_oom(errptr);
    for (uint32_t i = 0; rc == 0 && i < b->par; i++) {
        ckpt_task *t = &m.tasks[m.n_tasks++];
        char *full = NULL;
        t->op_id = op->id;
        t->index = i;
        t->parallelism = b->par;
        if (asprintf(&t->state_dir, "%s-%u/state", op->id, i) < 0 ||
            asprintf(&full, "%s/%s", b->o->out, t->state_dir) < 0) {
            t->state_dir = NULL;
            rc = boot_oom(errptr);
            break;
        }
        t->state_bytes = boot_du(full);
        free(full);
    }
    if (rc == 0)
        rc = ckpt_write_manifest(b->o->out, &m, errptr);
    for (size_t i = 0; i < m.n_tasks; i++)
        free(m.tasks[i].state_dir);
    free(m.tasks);
    for (size_t i = 0; i < m.n_files; i++)
        free(m.files[i].path);
    free(m.files);
    return rc;
}

int boot_savepoint(const boot_options *o, boot_stats *stats, char **errptr)
{
    boot_options opt = *o;
    const topo_op *op = NULL;
    if (!opt.kind)
        opt.kind = WEIR_STATE_VALUE;
    if (opt.kind != WEIR_STATE_VALUE && opt.kind != WEIR_STATE_MAP &&
        opt.kind != WEIR_STATE_LIST)
        return err_set(errptr, WEIR_EINVAL, "unknown state kind %d",
                       (int)opt.kind);
    if (!(op = boot_check(&opt, errptr)))
        return WEIR_EINVAL;
    boot b = {.o = &opt,
              .par = opt.parallelism ? opt.parallelism : op->parallelism,
              .maxp = opt.job->max_parallelism};
    b.st.parallelism = b.par;
    int rc = fs_mkdirs(opt.out, errptr);
    if (rc == 0)
        rc = boot_writers(&b, op, errptr);
    if (rc == 0)
        rc = boot_read(&b, errptr);
    if (rc == 0)
        rc = boot_duplicates(&b, errptr);
    for (uint32_t i = 0; b.w && i < b.par; i++) {
        int r = rc == 0 ? stw_finish(b.w[i], errptr) : 0;
        if (rc != 0)
            stw_abandon(b.w[i]);
        rc = rc ? rc : r;
    }
    if (rc == 0)
        rc = boot_manifest(&b, op, errptr);
    if (rc < 0)
        fs_rmtree(opt.out, NULL); /* it was new or empty: nothing is lost */
    else if (stats)
        *stats = b.st;
    for (size_t i = 0; i < b.n_ents; i++)
        free(b.ents[i].k);
    free(b.ents);
    free(b.w);
    free(b.vbuf);
    return rc;
}
