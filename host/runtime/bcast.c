#include "runtime/bcast.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/manifest.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "runtime/keyed.h"

#define BCAST_MAGIC    "WBS1"
#define BCAST_NAME_MAX 64

typedef struct bcast_entry {
    char *key;
    size_t key_len;
    char *value;
    size_t len;
} bcast_entry;

/* One named state: entries sorted by key (bytewise, a prefix first). */
struct weir_broadcast_state {
    char name[BCAST_NAME_MAX + 1];
    int declared; /* 0: restored and not declared (yet) */
    bcast_entry *e;
    size_t n, cap;
};

struct bcast_set {
    weir_broadcast_state **st;
    size_t n, cap;
    int writable;  /* inside process_broadcast() */
    int iterating; /* inside a bcast_iter() callback */
};

/* ------------------------------------------------------------------------ */
/* Sets and states                                                           */
/* ------------------------------------------------------------------------ */

static void bcast_state_free(weir_broadcast_state *st)
{
    for (size_t i = 0; i < st->n; i++) {
        free(st->e[i].key);
        free(st->e[i].value);
    }
    free(st->e);
    free(st);
}

void bcast_set_free(bcast_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        bcast_state_free(s->st[i]);
    free(s->st);
    free(s);
}

void bcast_free(task *t)
{
    bcast_set_free(t->bcast);
    t->bcast = NULL;
}

size_t bcast_set_count(const bcast_set *s)
{
    return s ? s->n : 0;
}

static weir_broadcast_state *bcast_find_state(const bcast_set *s,
                                              const char *name)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (!strcmp(s->st[i]->name, name))
            return s->st[i];
    return NULL;
}

long bcast_set_entries(const bcast_set *s, const char *name)
{
    const weir_broadcast_state *st = bcast_find_state(s, name);
    return st ? (long)st->n : -1;
}

/* Appends a new, empty state named `name` (valid, not present). */
static weir_broadcast_state *bcast_add_state(bcast_set *s, const char *name,
                                             size_t name_len)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4;
        weir_broadcast_state **v = realloc(s->st, cap * sizeof *v);
        if (!v)
            return NULL;
        s->st = v;
        s->cap = cap;
    }
    weir_broadcast_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    memcpy(st->name, name, name_len);
    st->name[name_len] = '\0';
    s->st[s->n++] = st;
    return st;
}

static int bcast_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > BCAST_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return 0;
    return 1;
}

/* Bytewise order, a prefix before its extensions. */
static int bcast_cmp(const void *a, size_t an, const void *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

/* Index of `key` in st, or where it would go (*found = 0). */
static size_t bcast_search(const weir_broadcast_state *st, const void *key,
                           size_t key_len, int *found)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = bcast_cmp(key, key_len, st->e[mid].key, st->e[mid].key_len);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    *found = 0;
    return lo;
}

static char *bcast_dup(const void *p, size_t n)
{
    char *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

/* Stores a copy of (key, value) in st, replacing the key's value. */
static int bcast_store(weir_broadcast_state *st, const void *key,
                       size_t key_len, const void *value, size_t len)
{
    int found;
    size_t at = bcast_search(st, key, key_len, &found);
    char *v = bcast_dup(value, len);
    if (!v)
        return WEIR_ENOMEM;
    if (found) {
        free(st->e[at].value);
        st->e[at].value = v;
        st->e[at].len = len;
        return 0;
    }
    char *k = bcast_dup(key, key_len);
    if (k && st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 16;
        bcast_entry *e = realloc(st->e, cap * sizeof *e);
        if (e) {
            st->e = e;
            st->cap = cap;
        } else {
            free(k);
            k = NULL;
        }
    }
    if (!k) {
        free(v);
        return WEIR_ENOMEM;
    }
    memmove(&st->e[at + 1], &st->e[at], (st->n - at) * sizeof *st->e);
    st->e[at] = (bcast_entry){k, key_len, v, len};
    st->n++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Services                                                                  */
/* ------------------------------------------------------------------------ */

static WEIR_PRINTF(3, 4) int bcast_fail(task *t, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_setv(&t->error, code, fmt, ap);
    va_end(ap);
    return code;
}

int bcast_is_input(const task *t, uint32_t port)
{
    return port < 64 && (t->reg->op.broadcast_inputs >> port & 1u);
}

int bcast_process(task *t, const weir_record *rec, uint32_t port)
{
    /* No current key: keyed state and timers refuse (WEIR_ESTATE). */
    t->has_key = 0;
    keyed_clear_key(t);
    if (t->bcast)
        t->bcast->writable = 1;
    guard_cb g = guard_enter(&t->guard, GUARD_PROCESS_BROADCAST);
    int rc = t->reg->op.process_broadcast(&t->ctx, t->self, rec, port);
    guard_leave(&t->guard, g);
    if (t->bcast)
        t->bcast->writable = 0;
    return rc;
}

int bcast_declare(task *t, const char *name, weir_broadcast_state **out)
{
    const char *fn = "weir_broadcast_declare";
    if (!name || !out)
        return bcast_fail(t, WEIR_EINVAL, "%s: NULL %s", fn,
                          name ? "out" : "name");
    if (t->phase != TASK_PHASE_OPEN)
        return bcast_fail(t, WEIR_ESTATE,
                          "%s: broadcast states are declared in open()", fn);
    if (!t->reg->op.broadcast_inputs)
        return bcast_fail(t, WEIR_EINVAL,
                          "%s: operator '%s' (type %s) has no broadcast "
                          "input (weir_operator.broadcast_inputs)",
                          fn, t->op->id, t->op->type);
    size_t n = strlen(name);
    if (!bcast_name_ok(name, n))
        return bcast_fail(t, WEIR_EINVAL,
                          "%s: bad name '%.80s' (use [a-z0-9_], 1 to %d "
                          "characters)",
                          fn, name, BCAST_NAME_MAX);
    if (!t->bcast && !(t->bcast = calloc(1, sizeof *t->bcast)))
        return bcast_fail(t, WEIR_ENOMEM, "%s: out of memory", fn);
    weir_broadcast_state *st = bcast_find_state(t->bcast, name);
    if (st && st->declared)
        return bcast_fail(t, WEIR_EINVAL,
                          "%s: broadcast state '%s' is declared twice", fn,
                          name);
    if (!st && !(st = bcast_add_state(t->bcast, name, n)))
        return bcast_fail(t, WEIR_ENOMEM, "%s: out of memory", fn);
    st->declared = 1;
    *out = st;
    return 0;
}

/* Checks that st is a state this instance declared, and that no iteration
 * is running. */
static int bcast_handle(task *t, weir_broadcast_state *st, const char *fn)
{
    bcast_set *s = t->bcast;
    size_t i = 0;
    while (s && i < s->n && s->st[i] != st)
        i++;
    if (!st || !s || i == s->n || !st->declared)
        return bcast_fail(t, WEIR_EINVAL,
                          "%s: not a broadcast state that %s declared", fn,
                          t->who);
    if (s->iterating)
        return bcast_fail(t, WEIR_ESTATE,
                          "%s: called from a weir_broadcast_iter() callback",
                          fn);
    return 0;
}

static int bcast_check_key(task *t, const void *key, size_t key_len,
                           const char *fn)
{
    if (!key && key_len)
        return bcast_fail(t, WEIR_EINVAL, "%s: NULL key with length %zu", fn,
                          key_len);
    if (key_len > WEIR_BROADCAST_MAX_KEY)
        return bcast_fail(t, WEIR_EINVAL, "%s: key of %zu bytes (at most %d)",
                          fn, key_len, WEIR_BROADCAST_MAX_KEY);
    return 0;
}

/* Writes are allowed only inside process_broadcast(). */
static int bcast_check_write(task *t, weir_broadcast_state *st, const char *fn)
{
    int rc = bcast_handle(t, st, fn);
    if (rc < 0)
        return rc;
    if (!t->bcast->writable)
        return bcast_fail(t, WEIR_ESTATE,
                          "%s: broadcast state '%s' is read-only here; only "
                          "process_broadcast() writes it",
                          fn, st->name);
    return 0;
}

int bcast_get(task *t, weir_broadcast_state *st, const void *key,
              size_t key_len, const void **value, size_t *len)
{
    const char *fn = "weir_broadcast_get";
    int rc = bcast_handle(t, st, fn);
    if (rc < 0 || (rc = bcast_check_key(t, key, key_len, fn)) < 0)
        return rc;
    if (!value || !len)
        return bcast_fail(t, WEIR_EINVAL, "%s: NULL %s pointer", fn,
                          value ? "len" : "value");
    int found;
    size_t at = bcast_search(st, key, key_len, &found);
    if (!found)
        return WEIR_ENOTFOUND;
    *value = st->e[at].value;
    *len = st->e[at].len;
    return 0;
}

int bcast_put(task *t, weir_broadcast_state *st, const void *key,
              size_t key_len, const void *value, size_t len)
{
    const char *fn = "weir_broadcast_put";
    int rc = bcast_check_write(t, st, fn);
    if (rc < 0 || (rc = bcast_check_key(t, key, key_len, fn)) < 0)
        return rc;
    if (!value && len)
        return bcast_fail(t, WEIR_EINVAL, "%s: NULL value with length %zu", fn,
                          len);
    if (len > WEIR_BROADCAST_MAX_VALUE)
        return bcast_fail(t, WEIR_EINVAL, "%s: value of %zu bytes (at most %d)",
                          fn, len, WEIR_BROADCAST_MAX_VALUE);
    if ((rc = bcast_store(st, key, key_len, value, len)) < 0)
        return bcast_fail(t, rc, "%s: out of memory", fn);
    return 0;
}

int bcast_delete(task *t, weir_broadcast_state *st, const void *key,
                 size_t key_len)
{
    const char *fn = "weir_broadcast_delete";
    int rc = bcast_check_write(t, st, fn);
    if (rc < 0 || (rc = bcast_check_key(t, key, key_len, fn)) < 0)
        return rc;
    int found;
    size_t at = bcast_search(st, key, key_len, &found);
    if (!found)
        return 0;
    free(st->e[at].key);
    free(st->e[at].value);
    memmove(&st->e[at], &st->e[at + 1], (st->n - at - 1) * sizeof *st->e);
    st->n--;
    return 0;
}

int bcast_iter(task *t, weir_broadcast_state *st, weir_map_iter_fn fn,
               void *arg)
{
    int rc = bcast_handle(t, st, "weir_broadcast_iter");
    if (rc < 0)
        return rc;
    if (!fn)
        return bcast_fail(t, WEIR_EINVAL, "weir_broadcast_iter: NULL fn");
    t->bcast->iterating = 1;
    for (size_t i = 0; i < st->n && rc == 0; i++)
        rc = fn(arg, st->e[i].key, st->e[i].key_len, st->e[i].value,
                st->e[i].len);
    t->bcast->iterating = 0;
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct bcast_buf {
    char *p;
    size_t n, cap;
} bcast_buf;

static int bcast_put_bytes(bcast_buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return WEIR_ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

static int bcast_put_u32(bcast_buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    return bcast_put_bytes(b, x, 4);
}

static int bcast_cmp_names(const void *a, const void *b)
{
    const weir_broadcast_state *x = *(const weir_broadcast_state *const *)a;
    const weir_broadcast_state *y = *(const weir_broadcast_state *const *)b;
    return strcmp(x->name, y->name);
}

int bcast_encode(const bcast_set *s, char **data, size_t *len, char **errptr)
{
    bcast_buf b = {0};
    size_t n = 0;
    int rc = 0;
    weir_broadcast_state **v = calloc(s && s->n ? s->n : 1, sizeof *v);
    if (!v)
        goto nomem;
    for (size_t i = 0; s && i < s->n; i++)
        if (s->st[i]->declared)
            v[n++] = s->st[i];
    qsort(v, n, sizeof *v, bcast_cmp_names);
    rc = bcast_put_bytes(&b, BCAST_MAGIC, 4) || bcast_put_u32(&b, (uint32_t)n);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const weir_broadcast_state *st = v[i];
        unsigned char nl = (unsigned char)strlen(st->name);
        if (st->n > UINT32_MAX)
            goto nomem;
        rc = bcast_put_bytes(&b, &nl, 1) || bcast_put_bytes(&b, st->name, nl) ||
             bcast_put_u32(&b, (uint32_t)st->n);
        for (size_t k = 0; k < st->n && rc == 0; k++) {
            const bcast_entry *e = &st->e[k];
            rc = bcast_put_u32(&b, (uint32_t)e->key_len) ||
                 bcast_put_bytes(&b, e->key, e->key_len) ||
                 bcast_put_u32(&b, (uint32_t)e->len) ||
                 bcast_put_bytes(&b, e->value, e->len);
        }
    }
    if (rc)
        goto nomem;
    free(v);
    *data = b.p;
    *len = b.n;
    return 0;
nomem:
    free(v);
    free(b.p);
    return err_set(errptr, WEIR_ENOMEM,
                   "encoding broadcast state: out of "
                   "memory");
}

typedef struct bcast_rd {
    const unsigned char *p;
    size_t n, off;
    const char *what;
    char **errptr;
} bcast_rd;

static int bcast_bad(bcast_rd *r, const char *why)
{
    return err_set(r->errptr, WEIR_EINVAL,
                   "%s: not a valid broadcast state file: %s at byte %zu",
                   r->what, why, r->off);
}

static int bcast_get_u32(bcast_rd *r, uint32_t *v)
{
    if (r->n - r->off < 4)
        return bcast_bad(r, "truncated");
    const unsigned char *p = r->p + r->off;
    *v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
    r->off += 4;
    return 0;
}

/* A length-prefixed byte string of at most `max` bytes, in place. */
static int bcast_get_bytes(bcast_rd *r, uint32_t max, const char *what_len,
                           const void **p, size_t *n)
{
    uint32_t len = 0;
    int rc = bcast_get_u32(r, &len);
    if (rc < 0)
        return rc;
    if (len > max)
        return bcast_bad(r, what_len);
    if (r->n - r->off < len)
        return bcast_bad(r, "truncated");
    *p = r->p + r->off;
    *n = len;
    r->off += len;
    return 0;
}

static int bcast_decode_state(bcast_rd *r, bcast_set *s)
{
    if (r->off >= r->n)
        return bcast_bad(r, "truncated");
    size_t nl = r->p[r->off++];
    if (r->n - r->off < nl)
        return bcast_bad(r, "truncated");
    const char *name = (const char *)r->p + r->off;
    if (!bcast_name_ok(name, nl))
        return bcast_bad(r, "invalid state name");
    char nm[BCAST_NAME_MAX + 1];
    memcpy(nm, name, nl);
    nm[nl] = '\0';
    if (bcast_find_state(s, nm))
        return bcast_bad(r, "state name repeated");
    r->off += nl;
    weir_broadcast_state *st = bcast_add_state(s, nm, nl);
    uint32_t count = 0;
    int rc = st ? bcast_get_u32(r, &count)
                : err_set(r->errptr, WEIR_ENOMEM, "out of memory");
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        const void *k, *v;
        size_t kn, vn;
        if ((rc = bcast_get_bytes(r, WEIR_BROADCAST_MAX_KEY, "key too long", &k,
                                  &kn)) < 0 ||
            (rc = bcast_get_bytes(r, WEIR_BROADCAST_MAX_VALUE, "value too long",
                                  &v, &vn)) < 0)
            break;
        if (st->n && bcast_cmp(st->e[st->n - 1].key, st->e[st->n - 1].key_len,
                               k, kn) >= 0)
            return bcast_bad(r, "keys out of order");
        /* In order: bcast_store appends. */
        if ((rc = bcast_store(st, k, kn, v, vn)) < 0)
            return err_set(r->errptr, WEIR_ENOMEM, "out of memory");
    }
    return rc;
}

int bcast_decode(const char *what, const void *data, size_t len,
                 bcast_set **out, char **errptr)
{
    bcast_rd r = {data, len, 0, what, errptr};
    bcast_set *s = calloc(1, sizeof *s);
    if (!s)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    uint32_t n = 0;
    int rc = 0;
    if (len < 4 || memcmp(data, BCAST_MAGIC, 4) != 0)
        rc = bcast_bad(&r, "no WBS1 header");
    else
        r.off = 4;
    if (rc == 0)
        rc = bcast_get_u32(&r, &n);
    for (uint32_t i = 0; rc == 0 && i < n; i++)
        rc = bcast_decode_state(&r, s);
    if (rc == 0 && r.off != len)
        rc = bcast_bad(&r, "trailing bytes");
    if (rc < 0) {
        bcast_set_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                               */
/* ------------------------------------------------------------------------ */

int bcast_snapshot(task *t, const char *path, int *wrote, char **errptr)
{
    size_t declared = 0;
    for (size_t i = 0; t->bcast && i < t->bcast->n; i++)
        declared += t->bcast->st[i]->declared != 0;
    *wrote = 0;
    if (!declared)
        return 0;
    char *data = NULL;
    size_t len = 0;
    int rc = bcast_encode(t->bcast, &data, &len, errptr);
    if (rc == 0)
        rc = fs_write_file(path, data, len, errptr);
    free(data);
    *wrote = rc == 0;
    return rc;
}

int bcast_restore(task *t, char **errptr)
{
    const ckpt_manifest *m = t->rt->restore;
    for (size_t i = 0; m && i < m->n_tasks; i++) {
        const ckpt_task *e = &m->tasks[i];
        /* With the parallelism of the checkpoint, the subtask's own copy;
         * after a rescale, one of the (equal) copies. */
        if (strcmp(e->op_id, t->op->id) != 0 || !e->broadcast ||
            e->parallelism == 0 || e->index != t->ps->index % e->parallelism)
            continue;
        char path[4200], *data = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s", t->rt->restore_dir, e->broadcast);
        int rc = fs_read_file(path, &data, &len, errptr);
        bcast_set *s = NULL;
        if (rc == 0)
            rc = bcast_decode(path, data, len, &s, errptr);
        free(data);
        if (rc < 0)
            return rc;
        bcast_set_free(t->bcast);
        t->bcast = s;
        return 0;
    }
    return 0;
}

void bcast_opened(task *t)
{
    bcast_set *s = t->bcast;
    size_t kept = 0;
    for (size_t i = 0; s && i < s->n; i++) {
        weir_broadcast_state *st = s->st[i];
        if (st->declared) {
            s->st[kept++] = st;
            continue;
        }
        log_msg(WEIR_LOG_WARN, t->who,
                "the checkpoint holds broadcast state '%s' (%zu entries), "
                "which the operator no longer declares; it is dropped",
                st->name, st->n);
        bcast_state_free(st);
    }
    if (s)
        s->n = kept;
}

static const ckpt_file *bcast_file(const ckpt_manifest *m, const char *path)
{
    size_t lo = 0, hi = m->n_files;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(path, m->files[mid].path);
        if (c == 0)
            return &m->files[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int bcast_check_copies(const ckpt_manifest *m, char **errptr)
{
    int differ = 0;
    for (size_t i = 0; i < m->n_tasks; i++) {
        const ckpt_task *a = &m->tasks[i];
        size_t j = 0;
        /* a is the reference copy of its operator: the first listed. */
        while (j < i && (!m->tasks[j].broadcast ||
                         strcmp(m->tasks[j].op_id, a->op_id) != 0))
            j++;
        if (!a->broadcast || j < i)
            continue;
        const ckpt_file *fa = bcast_file(m, a->broadcast);
        for (size_t k = i + 1; fa && k < m->n_tasks; k++) {
            const ckpt_task *b = &m->tasks[k];
            if (!b->broadcast || strcmp(b->op_id, a->op_id) != 0)
                continue;
            const ckpt_file *fb = bcast_file(m, b->broadcast);
            if (fb && fb->size == fa->size && fb->xxh3 == fa->xxh3)
                continue;
            if (!differ++)
                err_set(errptr, WEIR_EINVAL,
                        "checkpoint %llu: the broadcast state of operator "
                        "'%s' differs between subtasks %u and %u (its "
                        "process_broadcast() must write as a function of "
                        "the broadcast records only)",
                        (unsigned long long)m->id, a->op_id, a->index + 1,
                        b->index + 1);
            break;
        }
    }
    return differ;
}
