/* tutil.c - see tutil.h. */
#define _GNU_SOURCE

#include "tutil.h"

#include <dlfcn.h>
#include <ftw.h>
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hx.h"

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *tmpl = NULL;
    assert_true(asprintf(&tmpl, "%s/weir-tests-XXXXXX",
                         base && *base ? base : "/tmp") > 0);
    assert_non_null(mkdtemp(tmpl));
    return tmpl;
}

static int tu_rm_one(const char *path, const struct stat *st, int flag,
                     struct FTW *ftw)
{
    return remove(path);
}

void tu_rmtree(const char *dir)
{
    nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_path(const char *dir, const char *name)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

void tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (cap - n < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static json_t *tu_obj_to_json(const msgpack_object *o)
{
    json_t *j = NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return o->via.u64 > (uint64_t)INT64_MAX
                   ? NULL
                   : json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return json_stringn_nocheck(o->via.str.size ? o->via.str.ptr : "",
                                    o->via.str.size);
    case MSGPACK_OBJECT_ARRAY:
        j = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            json_t *x = tu_obj_to_json(&o->via.array.ptr[i]);
            if (!x || json_array_append_new(j, x) < 0) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    case MSGPACK_OBJECT_MAP:
        j = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            json_t *x = kv->key.type == MSGPACK_OBJECT_STR
                            ? tu_obj_to_json(&kv->val)
                            : NULL;
            if (!x || json_object_setn_new_nocheck(
                          j, kv->key.via.str.size ? kv->key.via.str.ptr : "",
                          kv->key.via.str.size, x) < 0) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    default: return NULL;
    }
}

json_t *tu_mp_to_json(const void *data, size_t len)
{
    msgpack_unpacked u;
    size_t off = 0;
    json_t *j = NULL;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        off == len)
        j = tu_obj_to_json(&u.data);
    msgpack_unpacked_destroy(&u);
    return j;
}

static void tu_pack_json(msgpack_packer *pk, json_t *j)
{
    const char *k;
    size_t i;
    json_t *x;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach(j, k, x)
        {
            msgpack_pack_str_with_body(pk, k, strlen(k));
            tu_pack_json(pk, x);
        }
        break;
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, x) tu_pack_json(pk, x);
        break;
    case JSON_STRING:
        msgpack_pack_str_with_body(pk, json_string_value(j),
                                   json_string_length(j));
        break;
    case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(j)); break;
    case JSON_REAL: msgpack_pack_double(pk, json_real_value(j)); break;
    case JSON_TRUE: msgpack_pack_true(pk); break;
    case JSON_FALSE: msgpack_pack_false(pk); break;
    case JSON_NULL: msgpack_pack_nil(pk); break;
    }
}

void *tu_json_to_mp(const char *json, size_t *len)
{
    json_error_t err;
    json_t *j = json_loads(json, JSON_DECODE_ANY | JSON_PRESERVE_ORDER, &err);
    if (!j)
        fail_msg("bad JSON in test: %s: %s", json, err.text);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    tu_pack_json(&pk, j);
    json_decref(j);
    *len = sb.size;
    return msgpack_sbuffer_release(&sb);
}

/* ------------------------------------------------------------------------ */
/* hx.h                                                                      */
/* ------------------------------------------------------------------------ */

static void hx_config(const hx_spec *s, weir_test_config *c)
{
    weir_test_config_init(c);
    c->plugin_path = s->so;
    c->op = s->op;
    c->id = s->op;
    c->params = s->params;
    c->parallelism = s->par ? s->par : 1;
    c->subtask = s->sub;
    c->without = s->without;
    c->now_ms = s->now_ms;
}

int hx_try(const hx_spec *s, weir_test **out)
{
    weir_test_config c;
    hx_config(s, &c);
    int rc = weir_test_new(&c, out);
    assert_non_null(*out);
    return rc;
}

int hx_try_restore(const hx_spec *s, uint64_t id, uint32_t version,
                   const void *data, size_t len, weir_test **out)
{
    weir_test_config c;
    hx_config(s, &c);
    c.restore_snapshot = data;
    c.restore_snapshot_len = len;
    c.restore_snapshot_version = version;
    c.restore_snapshot_set = 1;
    c.restore_snapshot_id = id;
    int rc = weir_test_new(&c, out);
    assert_non_null(*out);
    return rc;
}

weir_test *hx_open(const hx_spec *s)
{
    weir_test *t = NULL;
    int rc = hx_try(s, &t);
    if (rc < 0)
        fail_msg("weir_test_new(%s): %d %s", s->op, rc, weir_test_error(t));
    return t;
}

weir_test *hx_new(const char *so, const char *op, const weir_test_param *params,
                  uint32_t sub, uint32_t par)
{
    hx_spec s = {.so = so, .op = op, .params = params, .sub = sub, .par = par};
    return hx_open(&s);
}

weir_test *hx_restart(weir_test *t, const hx_spec *s)
{
    uint64_t id = 0;
    if (weir_test_checkpoint(t, &id) < 0)
        fail_msg("checkpoint: %s", weir_test_error(t));
    weir_test_config c;
    hx_config(s, &c);
    c.restore_from = weir_test_checkpoint_dir(t, id);
    weir_test *r = NULL;
    int rc = weir_test_new(&c, &r);
    if (rc < 0)
        fail_msg("restart from checkpoint %llu: %s", (unsigned long long)id,
                 weir_test_error(r));
    weir_test_free(t);
    return r;
}

const weir_test_record *hx_rec(const weir_test *t, size_t i)
{
    return weir_test_emitted(t, WEIR_TEST_ALL_PORTS, i);
}

size_t hx_n(const weir_test *t)
{
    return weir_test_emitted_count(t, WEIR_TEST_ALL_PORTS);
}

int hx_snapshot(weir_test *t, const void **data, size_t *len)
{
    uint64_t id = 0;
    int rc = weir_test_checkpoint(t, &id);
    weir_test_snapshot_data(t, data, len);
    return rc;
}

int hx_error_is(const weir_test *t, const char *msg)
{
    const char *e = weir_test_error(t);
    size_t n = strlen(e), m = strlen(msg);
    if (!strcmp(e, msg))
        return 1;
    return n >= m + 2 && !strcmp(e + n - m, msg) && e[n - m - 2] == ':' &&
           e[n - m - 1] == ' ';
}

const char *hx_find_log(const weir_test *t, const char *needle)
{
    return weir_test_find_log(t, WEIR_LOG_DEBUG, needle);
}

size_t hx_logs_of(const weir_test *t, const char *id)
{
    size_t n = 0, len = strlen(id);
    for (size_t i = 0; i < weir_test_log_count(t); i++) {
        const char *line = weir_test_log_line(t, i, NULL);
        n += line[0] == '[' && !strncmp(line + 1, id, len) &&
             line[1 + len] == '#';
    }
    return n;
}

size_t hx_count_logs(const weir_test *t, weir_log_level level,
                     const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; i < weir_test_log_count(t); i++) {
        weir_log_level l;
        const char *line = weir_test_log_line(t, i, &l);
        n += l == level && strstr(line, needle);
    }
    return n;
}

const weir_plugin *hx_plugin(const char *so)
{
    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        fail_msg("dlopen %s: %s", so, dlerror());
    weir_plugin_entry_fn entry =
        (weir_plugin_entry_fn)(uintptr_t)dlsym(h, WEIR_PLUGIN_ENTRY_SYMBOL);
    assert_non_null(entry);
    static const weir_host_api header = {.size = sizeof header,
                                         .abi_major = WEIR_ABI_MAJOR,
                                         .abi_minor = WEIR_ABI_MINOR};
    const weir_plugin *p = entry(&header);
    assert_non_null(p);
    assert_int_equal(p->abi_major, WEIR_ABI_MAJOR);
    return p;
}

const weir_operator *hx_operator(const char *so, const char *name)
{
    const weir_plugin *p = hx_plugin(so);
    for (size_t i = 0; p->operators[i]; i++)
        if (strcmp(p->operators[i]->name, name) == 0)
            return p->operators[i];
    fail_msg("%s has no operator %s", so, name);
    return NULL;
}

void hx_check_defaults(const char *so, const char *name)
{
    hx_spec s = {.so = so, .op = name};
    weir_test *t = NULL;
    int rc = hx_try(&s, &t);
    if (rc < 0 && strstr(weir_test_error(t), "invalid default"))
        fail_msg("%s: %s", name, weir_test_error(t));
    weir_test_free(t);
}

int hx_process_json(weir_test *t, const char *key, int64_t ts, const char *json)
{
    size_t len = 0;
    void *mp = tu_json_to_mp(json, &len);
    int rc = weir_test_process(t, 0, key, strlen(key), ts, mp, len);
    free(mp);
    return rc;
}

uint64_t hx_entries(weir_test *t)
{
    uint64_t n = 0;
    int rc = weir_test_state_entries(t, NULL, &n);
    if (rc < 0)
        fail_msg("weir_test_state_entries: %s", weir_test_error(t));
    return n;
}

uint64_t hx_timers(weir_test *t)
{
    uint64_t n = 0;
    int rc = weir_test_timer_count(t, &n);
    if (rc < 0)
        fail_msg("weir_test_timer_count: %s", weir_test_error(t));
    return n;
}

int64_t hx_counter(const weir_test *t, const char *name, const char *label)
{
    return (int64_t)weir_test_metric(t, name, label);
}
