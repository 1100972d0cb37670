/*
 * registry.c - loading operator plugins (see registry.h).
 *
 * A plugin is loaded in three steps. First the whole load is tried in a
 * child process (probe.h; one child for a whole directory):
 * reg_probe_child() stages the file there and reads every string the host
 * will read, so that a constructor that crashes, exits or hangs, or a table
 * with a bad pointer, costs only the child. Then
 * reg_stage_load() dlopen()s the file in this process, calls its entry point
 * and builds host-owned, normalised copies of every descriptor into a
 * staging reg_plugin; any problem rejects the whole file, and the staging
 * copy is freed and the handle closed. reg_commit() then checks the
 * operator names against those already registered and, when none clashes,
 * moves the operators into the registry's sorted index. A registered
 * plugin's handle is never closed: the host keeps pointers into its static
 * data (names, port lists, choices) and its code.
 */
#include "plugin/registry.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "plugin/probe.h"

/* Sizes of the v1.0 structs: the end of their last v1.0 field. A plugin
 * that declares less is refused; one that declares more was built against a
 * newer minor and is read with min(size, sizeof). These stay fixed when the
 * header appends fields. */
#define REG_V1_PLUGIN_SIZE   (offsetof(weir_plugin, operators) + sizeof(void *))
#define REG_V1_OPERATOR_SIZE (offsetof(weir_operator, close) + sizeof(void *))
#define REG_V1_PARAM_SIZE                                                      \
    (offsetof(weir_param_def, description) + sizeof(void *))

/* While the header is v1.0, the minimum is the whole struct. */
_Static_assert(WEIR_ABI_MINOR > 0 || REG_V1_PLUGIN_SIZE == sizeof(weir_plugin),
               "v1.0 weir_plugin size");
_Static_assert(WEIR_ABI_MINOR > 0 ||
                   REG_V1_OPERATOR_SIZE == sizeof(weir_operator),
               "v1.0 weir_operator size");
_Static_assert(WEIR_ABI_MINOR > 0 ||
                   REG_V1_PARAM_SIZE == sizeof(weir_param_def),
               "v1.0 weir_param_def size");

/* The fields every major version keeps at the start of weir_plugin. */
#define REG_PLUGIN_VERSION_END (offsetof(weir_plugin, abi_minor) + 4)

/* Refuses absurd tables before they exhaust memory. */
#define REG_MAX_ENTRIES 4096

/* The probe's time-out unless reg_set_probe_timeout() changes it. */
#define REG_PROBE_TIMEOUT_MS 5000

/* <bin>/../plugins and <bin>/../lib/weir/plugins. */
#define REG_N_DEFAULT_DIRS 2

static const char *const reg_default_inputs[] = {"in", NULL};
static const char *const reg_default_outputs[] = {"out", NULL};

struct reg_registry {
    const weir_host_api *host;
    int probe_timeout_ms; /* 0: no probe */
    reg_plugin **plugins; /* in load order */
    size_t n_plugins;
    reg_operator **ops; /* sorted by name */
    size_t n_ops;
    char **rejected; /* messages of the files that failed, in order */
    size_t n_rejected;
};

/* A plugin being loaded: the host-owned copies before they are committed. */
typedef struct reg_stage {
    reg_plugin *plugin;
    reg_operator **ops;
    size_t n_ops;
} reg_stage;

/* ------------------------------------------------------------------------ */
/* Memory                                                                    */
/* ------------------------------------------------------------------------ */

static void reg_operator_free(reg_operator *op)
{
    if (!op)
        return;
    for (size_t i = 0; i < op->n_params; i++)
        free((void *)op->params[i]);
    free(op->params);
    free(op->inputs);
    free(op->outputs);
    free(op);
}

static void reg_plugin_free(reg_plugin *p)
{
    if (!p)
        return;
    free(p->path);
    free(p);
}

static void reg_stage_discard(reg_stage *st)
{
    for (size_t i = 0; i < st->n_ops; i++)
        reg_operator_free(st->ops[i]);
    free(st->ops);
    if (st->plugin) {
        if (st->plugin->handle)
            dlclose(st->plugin->handle);
        reg_plugin_free(st->plugin);
    }
    memset(st, 0, sizeof *st);
}

reg_registry *reg_new(const weir_host_api *host)
{
    reg_registry *reg = calloc(1, sizeof *reg);
    if (reg) {
        reg->host = host;
        reg->probe_timeout_ms = REG_PROBE_TIMEOUT_MS;
    }
    return reg;
}

void reg_set_probe_timeout(reg_registry *reg, int timeout_ms)
{
    reg->probe_timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

void reg_free(reg_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n_ops; i++)
        reg_operator_free(reg->ops[i]);
    free(reg->ops);
    for (size_t i = 0; i < reg->n_plugins; i++)
        reg_plugin_free(reg->plugins[i]); /* the handle stays open */
    free(reg->plugins);
    for (size_t i = 0; i < reg->n_rejected; i++)
        free(reg->rejected[i]);
    free(reg->rejected);
    free(reg);
}

/* ------------------------------------------------------------------------ */
/* Opening the file                                                          */
/* ------------------------------------------------------------------------ */

/* Whether the file starts with the ELF magic. Returns 1, 0, or -1 when it
 * cannot be read (dlopen will then explain). */
static int reg_is_elf(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    unsigned char magic[4] = {0};
    size_t n = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return n == 4 && !memcmp(magic, "\177ELF", 4);
}

/* dlerror() repeats the path; drop it so the message names the file once. */
static const char *reg_dlerror_cause(const char *path, const char *dlerr)
{
    size_t n = strlen(path);
    if (!strncmp(dlerr, path, n) && !strncmp(dlerr + n, ": ", 2))
        return dlerr + n + 2;
    return dlerr;
}

static int reg_open(const char *path, void **handle, char **errptr)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return err_set(errptr, errno == ENOENT ? WEIR_ENOTFOUND : WEIR_EIO,
                       "%s: cannot open plugin: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return err_set(errptr, WEIR_EINVAL,
                       "%s: not a regular file, cannot be a plugin", path);
    dlerror();
    *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (*handle)
        return 0;
    const char *dlerr = dlerror();
    const char *cause = reg_dlerror_cause(path, dlerr ? dlerr : "unknown");
    if (reg_is_elf(path) == 0)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: not an ELF shared object (dlopen: %s)", path,
                       cause);
    if (strstr(cause, "undefined symbol"))
        return err_set(errptr, WEIR_EINVAL,
                       "%s: unresolved symbol at load time (dlopen: %s)", path,
                       cause);
    return err_set(errptr, WEIR_EINVAL, "%s: dlopen failed: %s", path, cause);
}

/* Finds and calls the entry point; *out is the plugin's own descriptor. */
static int reg_call_entry(const reg_registry *reg, const char *path,
                          void *handle, const weir_plugin **out, char **errptr)
{
    dlerror();
    void *sym = dlsym(handle, WEIR_PLUGIN_ENTRY_SYMBOL);
    if (!sym)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: missing entry symbol %s (not a Weir plugin, or "
                       "built without WEIR_EXPORT)",
                       path, WEIR_PLUGIN_ENTRY_SYMBOL);
    weir_plugin_entry_fn entry;
    /* POSIX allows converting dlsym's object pointer to a function pointer. */
    memcpy(&entry, &sym, sizeof entry);
    *out = entry(reg->host);
    if (!*out)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: %s returned NULL (the plugin refused to load)",
                       path, WEIR_PLUGIN_ENTRY_SYMBOL);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Normalising descriptors                                                   */
/* ------------------------------------------------------------------------ */

static size_t reg_min(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Length of a NULL-terminated pointer list, or -1 when it is absurdly long. */
static long reg_list_len(const void *const *list)
{
    long n = 0;
    while (list[n]) {
        if (++n > REG_MAX_ENTRIES)
            return -1;
    }
    return n;
}

static int reg_check_plugin(const char *path, const weir_plugin *raw,
                            weir_plugin *out, char **errptr)
{
    uint32_t size = raw->size;
    if (size < REG_PLUGIN_VERSION_END)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: weir_plugin size %u is smaller than the v1 "
                       "minimum %zu",
                       path, size, REG_V1_PLUGIN_SIZE);
    if (raw->abi_major != WEIR_ABI_MAJOR)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: ABI major version mismatch: the plugin was built "
                       "for ABI %u.%u, the host wants major %d (rebuild it "
                       "against this Weir SDK)",
                       path, raw->abi_major, raw->abi_minor, WEIR_ABI_MAJOR);
    if (size < REG_V1_PLUGIN_SIZE)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: weir_plugin size %u is smaller than the v1 "
                       "minimum %zu",
                       path, size, REG_V1_PLUGIN_SIZE);
    memset(out, 0, sizeof *out);
    memcpy(out, raw, reg_min(size, sizeof *out));
    out->size = sizeof *out;
    if (out->abi_minor > WEIR_ABI_MINOR)
        log_msg(WEIR_LOG_DEBUG, "plugins",
                "%s: built for ABI %u.%u, the host has %d.%d; services the "
                "host lacks report WEIR_ENOTSUP",
                path, out->abi_major, out->abi_minor, WEIR_ABI_MAJOR,
                WEIR_ABI_MINOR);
    if (!out->operators || !out->operators[0])
        return err_set(errptr, WEIR_EINVAL,
                       "%s: the plugin declares no operators", path);
    return 0;
}

/* Whether `s` is a valid parameter name: [a-z0-9_]+. */
static int reg_param_name_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return 0;
    }
    return 1;
}

static int reg_norm_param(const char *path, const char *opname, size_t idx,
                          const weir_param_def *raw, weir_param_def **out,
                          char **errptr)
{
    if (raw->size < REG_V1_PARAM_SIZE)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s': parameter #%zu: weir_param_def "
                       "size %u is smaller than the v1 minimum %zu",
                       path, opname, idx, raw->size, REG_V1_PARAM_SIZE);
    weir_param_def *d = calloc(1, sizeof *d);
    if (!d)
        return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", path);
    memcpy(d, raw, reg_min(raw->size, sizeof *d));
    d->size = sizeof *d;
    *out = d;
    if (!d->name || !d->name[0])
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s': parameter #%zu has no name", path,
                       opname, idx);
    if (!reg_param_name_ok(d->name))
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s': parameter '%s': bad name (use "
                       "[a-z0-9_]+)",
                       path, opname, d->name);
    int type = (int)d->type; /* as int: the plugin may store anything */
    if (type < WEIR_PARAM_BOOL || type > WEIR_PARAM_ANY)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s': parameter '%s' has unknown type %d",
                       path, opname, d->name, type);
    if (d->type == WEIR_PARAM_ENUM && (!d->choices || !d->choices[0]))
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s': enum parameter '%s' has no choices",
                       path, opname, d->name);
    if (d->type == WEIR_PARAM_ENUM &&
        reg_list_len((const void *)d->choices) < 0)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s': enum parameter '%s' has more than "
                       "%d choices",
                       path, opname, d->name, REG_MAX_ENTRIES);
    return 0;
}

static int reg_norm_params(const char *path, reg_operator *ro, char **errptr)
{
    const weir_param_def *const *raw = ro->op.params;
    ro->op.params = NULL;
    if (!raw)
        return 0;
    long n = reg_list_len((const void *)raw);
    if (n < 0)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s': more than %d parameters", path,
                       ro->op.name, REG_MAX_ENTRIES);
    ro->params = calloc((size_t)n + 1, sizeof *ro->params);
    if (!ro->params)
        return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < (size_t)n; i++) {
        weir_param_def *d = NULL;
        int rc = reg_norm_param(path, ro->op.name, i, raw[i], &d, errptr);
        if (d)
            ro->params[ro->n_params++] = d;
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(ro->params[j]->name, d->name))
                return err_set(errptr, WEIR_EINVAL,
                               "%s: operator '%s': parameter '%s' is "
                               "declared twice",
                               path, ro->op.name, d->name);
        }
    }
    ro->op.params = ro->params;
    return 0;
}

/* Copies a port list (or the default) into a host-owned NULL-terminated
 * array; `what` is "input" or "output". */
static int reg_norm_ports(const char *path, const char *opname,
                          const char *what, const char *const *raw,
                          const char *const *dflt, const char ***out,
                          size_t *n_out, char **errptr)
{
    const char *const *src = raw ? raw : dflt;
    long n = reg_list_len((const void *)src);
    if (n < 0)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s': more than %d %s ports", path, opname,
                       REG_MAX_ENTRIES, what);
    *out = calloc((size_t)n + 1, sizeof **out);
    if (!*out)
        return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < (size_t)n; i++) {
        if (!src[i][0])
            return err_set(errptr, WEIR_EINVAL,
                           "%s: operator '%s': %s port #%zu has an empty name",
                           path, opname, what, i);
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(src[i], src[j]))
                return err_set(errptr, WEIR_EINVAL,
                               "%s: operator '%s': %s port '%s' is declared "
                               "twice",
                               path, opname, what, src[i]);
        }
        (*out)[i] = src[i];
    }
    *n_out = (size_t)n;
    return 0;
}

static int reg_check_callbacks(const char *path, const weir_operator *op,
                               char **errptr)
{
    const char *missing = NULL;
    int source = (op->flags & WEIR_OP_SOURCE) != 0;
    if (!op->open)
        missing = "open";
    else if (!op->close)
        missing = "close";
    else if (source && !op->poll)
        missing = "poll";
    else if (!source && !op->process && !op->async_invoke)
        missing = "process";
    if (missing)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s'%s: required callback %s is NULL",
                       path, op->name, source ? " (source)" : "", missing);
    return 0;
}

/* Since 1.3: an asynchronous operator (async_invoke set) needs
 * on_async_result() and may leave process() NULL; a source cannot be one,
 * and on_async_result() alone is refused. */
static int reg_check_async(const char *path, const weir_operator *op,
                           char **errptr)
{
    if (!op->async_invoke && op->on_async_result)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s': on_async_result is set but "
                       "async_invoke is NULL",
                       path, op->name);
    if (!op->async_invoke)
        return 0;
    if (op->flags & WEIR_OP_SOURCE)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s' is a source and cannot be "
                       "asynchronous (async_invoke is set)",
                       path, op->name);
    if (!op->on_async_result)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s': async_invoke is set but the "
                       "required callback on_async_result is NULL",
                       path, op->name);
    return 0;
}

/* Since 1.2: broadcast inputs name declared input ports and come with
 * process_broadcast(), and process_broadcast() with broadcast inputs. An
 * operator of an older minor reads both as zero. */
static int reg_check_broadcast(const char *path, const reg_operator *ro,
                               char **errptr)
{
    const weir_operator *op = &ro->op;
    uint64_t bits = op->broadcast_inputs;
    if (!bits && op->process_broadcast)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s': process_broadcast is set but "
                       "broadcast_inputs names no input port",
                       path, op->name);
    if (!bits)
        return 0;
    if (op->flags & WEIR_OP_SOURCE)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s' is a source and cannot have "
                       "broadcast inputs",
                       path, op->name);
    for (unsigned i = 0; i < 64; i++)
        if ((bits >> i & 1u) && i >= ro->n_inputs)
            return err_set(errptr, WEIR_EINVAL,
                           "%s: operator '%s': broadcast_inputs has bit %u "
                           "set, but the operator has %zu input port%s",
                           path, op->name, i, ro->n_inputs,
                           ro->n_inputs == 1 ? "" : "s");
    if (!op->process_broadcast)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s': broadcast_inputs is set but "
                       "the required callback process_broadcast is NULL",
                       path, op->name);
    return 0;
}

static int reg_norm_operator(const char *path, size_t idx,
                             const weir_operator *raw, reg_operator **out,
                             char **errptr)
{
    if (raw->size < REG_V1_OPERATOR_SIZE)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator #%zu: weir_operator size %u is smaller "
                       "than the v1 minimum %zu",
                       path, idx, raw->size, REG_V1_OPERATOR_SIZE);
    reg_operator *ro = calloc(1, sizeof *ro);
    if (!ro)
        return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", path);
    *out = ro;
    memcpy(&ro->op, raw, reg_min(raw->size, sizeof ro->op));
    ro->op.size = sizeof ro->op;
    weir_operator *op = &ro->op;
    if (!op->name || !op->name[0])
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator #%zu has no name (NULL or empty)", path,
                       idx);
    int rc = reg_check_callbacks(path, op, errptr);
    if (rc == 0)
        rc = reg_check_async(path, op, errptr);
    if (rc < 0)
        return rc;
    int source = (op->flags & WEIR_OP_SOURCE) != 0;
    static const char *const none[] = {NULL};
    rc =
        reg_norm_ports(path, op->name, "input", source ? none : op->input_ports,
                       reg_default_inputs, &ro->inputs, &ro->n_inputs, errptr);
    if (rc < 0)
        return rc;
    if (!source && ro->n_inputs == 0)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: operator '%s' is not a source but declares no "
                       "input ports",
                       path, op->name);
    rc = reg_norm_ports(path, op->name, "output", op->output_ports,
                        reg_default_outputs, &ro->outputs, &ro->n_outputs,
                        errptr);
    if (rc < 0)
        return rc;
    op->input_ports = ro->inputs;
    op->output_ports = ro->outputs;
    if ((rc = reg_check_broadcast(path, ro, errptr)) < 0)
        return rc;
    return reg_norm_params(path, ro, errptr);
}

/* Loads the file and normalises everything into `st`. In a probe child,
 * `chan` hears of each step; in the real load it is NULL. */
static int reg_stage_load(const reg_registry *reg, const char *path,
                          reg_stage *st, probe_chan *chan, char **errptr)
{
    st->plugin = calloc(1, sizeof *st->plugin);
    if (!st->plugin || !(st->plugin->path = strdup(path)))
        return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", path);
    int rc = reg_open(path, &st->plugin->handle, errptr);
    if (rc < 0)
        return rc;
    probe_reached(chan, PROBE_ENTRY);
    const weir_plugin *raw = NULL;
    rc = reg_call_entry(reg, path, st->plugin->handle, &raw, errptr);
    if (rc < 0)
        return rc;
    probe_reached(chan, PROBE_TABLES);
    rc = reg_check_plugin(path, raw, &st->plugin->desc, errptr);
    if (rc < 0)
        return rc;
    const weir_operator *const *ops = st->plugin->desc.operators;
    st->plugin->desc.operators = NULL;
    long n = reg_list_len((const void *)ops);
    if (n < 0)
        return err_set(errptr, WEIR_EINVAL, "%s: more than %d operators", path,
                       REG_MAX_ENTRIES);
    st->ops = calloc((size_t)n, sizeof *st->ops);
    if (!st->ops)
        return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < (size_t)n; i++) {
        reg_operator *ro = NULL;
        rc = reg_norm_operator(path, i, ops[i], &ro, errptr);
        if (ro)
            st->ops[st->n_ops++] = ro;
        if (rc < 0)
            return rc;
        ro->plugin = st->plugin;
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(st->ops[j]->op.name, ro->op.name))
                return err_set(errptr, WEIR_EINVAL,
                               "%s: duplicate operator '%s' (declared twice "
                               "in this file)",
                               path, ro->op.name);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The probe                                                                 */
/* ------------------------------------------------------------------------ */

static size_t reg_touch_str(const char *s)
{
    return s ? strlen(s) : 0;
}

/* Reads every string of a staged plugin that the host may read later
 * (`weir plugins` prints versions, descriptions, defaults and choices), so
 * that a bad pointer among them faults in the probe. Returns a sum to keep
 * the reads. */
static size_t reg_touch(const reg_stage *st)
{
    const weir_plugin *d = &st->plugin->desc;
    size_t sum = reg_touch_str(d->name) + reg_touch_str(d->version) +
                 reg_touch_str(d->description);
    for (size_t i = 0; i < st->n_ops; i++) {
        const reg_operator *ro = st->ops[i];
        sum += reg_touch_str(ro->op.name) + reg_touch_str(ro->op.version) +
               reg_touch_str(ro->op.description);
        for (size_t j = 0; j < ro->n_inputs; j++)
            sum += reg_touch_str(ro->inputs[j]);
        for (size_t j = 0; j < ro->n_outputs; j++)
            sum += reg_touch_str(ro->outputs[j]);
        for (size_t j = 0; j < ro->n_params; j++) {
            const weir_param_def *p = ro->params[j];
            sum += reg_touch_str(p->name) + reg_touch_str(p->default_value) +
                   reg_touch_str(p->description);
            for (size_t k = 0; p->type == WEIR_PARAM_ENUM && p->choices[k]; k++)
                sum += reg_touch_str(p->choices[k]);
        }
    }
    return sum;
}

typedef struct reg_probe_arg {
    const reg_registry *reg;
    const char *const *paths;
} reg_probe_arg;

/* The probe child's work for file `i` (probe_fn): the load as
 * reg_stage_load() does it, and every string read. Nothing is freed or
 * closed: the child _exit()s. */
static int reg_probe_child(void *arg, size_t i, probe_chan *chan, char **errptr)
{
    const reg_probe_arg *pa = arg;
    reg_stage st = {0};
    int rc = reg_stage_load(pa->reg, pa->paths[i], &st, chan, errptr);
    if (rc < 0)
        return rc;
    volatile size_t sum = reg_touch(&st);
    (void)sum;
    return 0;
}

/* Probes paths[0..n-1] in a child process (probe.h) into res[]; with
 * probing off, every file passes. */
static void reg_probe(const reg_registry *reg, const char *const *paths,
                      size_t n, probe_result *res)
{
    if (reg->probe_timeout_ms <= 0) {
        for (size_t i = 0; i < n; i++)
            res[i] = (probe_result){0, NULL};
        return;
    }
    reg_probe_arg pa = {reg, paths};
    probe_run(paths, n, reg->probe_timeout_ms, reg_probe_child, &pa, res);
}

/* ------------------------------------------------------------------------ */
/* Registering                                                               */
/* ------------------------------------------------------------------------ */

static int reg_cmp_ops(const void *a, const void *b)
{
    const reg_operator *x = *(const reg_operator *const *)a;
    const reg_operator *y = *(const reg_operator *const *)b;
    return strcmp(x->op.name, y->op.name);
}

static int reg_commit(reg_registry *reg, reg_stage *st, char **errptr)
{
    const char *path = st->plugin->path;
    for (size_t i = 0; i < st->n_ops; i++) {
        const reg_operator *old = reg_find(reg, st->ops[i]->op.name);
        if (old)
            return err_set(errptr, WEIR_EINVAL,
                           "%s: duplicate operator '%s' (already provided by "
                           "%s)",
                           path, old->op.name, old->plugin->path);
    }
    reg_plugin **plugins =
        realloc(reg->plugins, (reg->n_plugins + 1) * sizeof *plugins);
    if (!plugins)
        return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", path);
    reg->plugins = plugins;
    reg_operator **ops =
        realloc(reg->ops, (reg->n_ops + st->n_ops) * sizeof *ops);
    if (!ops)
        return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", path);
    reg->ops = ops;
    memcpy(reg->ops + reg->n_ops, st->ops, st->n_ops * sizeof *ops);
    reg->n_ops += st->n_ops;
    qsort(reg->ops, reg->n_ops, sizeof *reg->ops, reg_cmp_ops);
    reg->plugins[reg->n_plugins++] = st->plugin;
    free(st->ops);
    memset(st, 0, sizeof *st);
    return 0;
}

/* Keeps a copy of a failed file's message for reg_rejected(). */
static void reg_remember(reg_registry *reg, const char *msg)
{
    char **grown =
        realloc(reg->rejected, (reg->n_rejected + 1) * sizeof *grown);
    if (!grown)
        return;
    reg->rejected = grown;
    if ((grown[reg->n_rejected] = strdup(msg)) != NULL)
        reg->n_rejected++;
}

/* Loads `path` here after its probe's outcome `pr` (whose message it takes
 * over), like reg_load_file(). */
static int reg_load_probed(reg_registry *reg, const char *path,
                           probe_result *pr, char **errptr)
{
    reg_stage st = {0};
    char *msg = pr->msg;
    int rc = pr->rc;
    pr->msg = NULL;
    if (rc == 0)
        rc = reg_stage_load(reg, path, &st, NULL, &msg);
    if (rc == 0)
        rc = reg_commit(reg, &st, &msg);
    if (rc == 0) {
        log_msg(WEIR_LOG_DEBUG, "plugins", "loaded %s", path);
        return 0;
    }
    reg_stage_discard(&st);
    if (!msg)
        err_set(&msg, rc, "%s: cannot load it", path);
    if (msg)
        reg_remember(reg, msg);
    if (errptr) {
        free(*errptr);
        *errptr = msg;
    } else {
        free(msg);
    }
    return rc;
}

int reg_add_plugin(reg_registry *reg, const char *name,
                   const weir_plugin *plugin, char **errptr)
{
    reg_stage st = {0};
    const char *path = name ? name : "(in-process plugin)";
    int rc = 0;
    if (!plugin)
        return err_set(errptr, WEIR_EINVAL, "%s: the plugin is NULL", path);
    st.plugin = calloc(1, sizeof *st.plugin);
    if (!st.plugin || !(st.plugin->path = strdup(path))) {
        rc = err_set(errptr, WEIR_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if ((rc = reg_check_plugin(path, plugin, &st.plugin->desc, errptr)) < 0)
        goto out;
    const weir_operator *const *ops = st.plugin->desc.operators;
    st.plugin->desc.operators = NULL;
    long n = reg_list_len((const void *)ops);
    if (n < 0) {
        rc = err_set(errptr, WEIR_EINVAL, "%s: more than %d operators", path,
                     REG_MAX_ENTRIES);
        goto out;
    }
    if (!(st.ops = calloc((size_t)n, sizeof *st.ops))) {
        rc = err_set(errptr, WEIR_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i < (size_t)n; i++) {
        reg_operator *ro = NULL;
        rc = reg_norm_operator(path, i, ops[i], &ro, errptr);
        if (ro)
            st.ops[st.n_ops++] = ro;
        if (rc < 0)
            goto out;
        ro->plugin = st.plugin;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(st.ops[j]->op.name, ro->op.name)) {
                rc = err_set(errptr, WEIR_EINVAL,
                             "%s: duplicate operator '%s' (declared twice "
                             "in this plugin)",
                             path, ro->op.name);
                goto out;
            }
    }
    rc = reg_commit(reg, &st, errptr);
out:
    if (rc < 0)
        reg_stage_discard(&st);
    return rc;
}

int reg_load_file(reg_registry *reg, const char *path, char **errptr)
{
    probe_result pr;
    reg_probe(reg, &path, 1, &pr);
    return reg_load_probed(reg, path, &pr, errptr);
}

/* ------------------------------------------------------------------------ */
/* Directories                                                               */
/* ------------------------------------------------------------------------ */

static int reg_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int reg_is_so_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 3 && !strcmp(name + n - 3, ".so");
}

/* The paths of the "*.so" files in `dir` ("DIR/NAME"), sorted by name;
 * *paths is malloc'ed, as is each path. */
static int reg_list_dir(const char *dir, char ***paths, size_t *n,
                        char **errptr)
{
    size_t dl = strlen(dir);
    const char *sep = dl && dir[dl - 1] == '/' ? "" : "/";
    *paths = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return err_set(errptr, errno == ENOENT ? WEIR_ENOTFOUND : WEIR_EIO,
                       "%s: cannot read plugin directory: %s", dir,
                       strerror(errno));
    int rc = 0;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!reg_is_so_name(e->d_name))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(*paths, cap * sizeof *grown);
            if (!grown) {
                rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
                goto out;
            }
            *paths = grown;
        }
        if (asprintf(&(*paths)[*n], "%s%s%s", dir, sep, e->d_name) < 0) {
            rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
            goto out;
        }
        (*n)++;
    }
    if (*n)
        qsort(*paths, *n, sizeof **paths, reg_cmp_str);
out:
    closedir(d);
    return rc;
}

static void reg_report(reg_error_fn on_error, void *arg, const char *msg)
{
    if (on_error)
        on_error(arg, msg);
    else
        log_msg(WEIR_LOG_WARN, "plugins", "%s", msg);
}

int reg_load_dir(reg_registry *reg, const char *dir, reg_error_fn on_error,
                 void *arg, char **errptr)
{
    char **paths = NULL;
    size_t n = 0;
    probe_result *res = NULL;
    int rc = reg_list_dir(dir, &paths, &n, errptr);
    if (rc == 0 && n > 0 && !(res = calloc(n, sizeof *res)))
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
    if (rc < 0)
        goto out;
    /* One probe for the whole directory, then the real loads in order. */
    reg_probe(reg, (const char *const *)paths, n, res);
    for (size_t i = 0; i < n; i++) {
        char *msg = NULL;
        if (reg_load_probed(reg, paths[i], &res[i], &msg) == 0) {
            rc++;
        } else {
            char *line = NULL;
            if (asprintf(&line, "plugin %s; skipped", msg ? msg : paths[i]) < 0)
                line = NULL;
            reg_report(on_error, arg, line ? line : paths[i]);
            free(line);
        }
        free(msg);
    }
out:
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    free(res);
    return rc;
}

/* The directory of the running binary, malloc'ed, or NULL. */
static char *reg_exe_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    return strdup(buf[0] ? buf : "/");
}

int reg_load_default(reg_registry *reg, reg_error_fn on_error, void *arg)
{
    return reg_load_default_skip(reg, NULL, 0, on_error, arg);
}

/* Whether `dir` (a realpath) is one of the skip directories. */
static int reg_skipped(const char *dir, const char *const *skip, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *r = skip[i] ? realpath(skip[i], NULL) : NULL;
        int same = r && !strcmp(r, dir);
        free(r);
        if (same)
            return 1;
    }
    return 0;
}

int reg_load_default_skip(reg_registry *reg, const char *const *skip,
                          size_t n_skip, reg_error_fn on_error, void *arg)
{
    char *exe_dir = reg_exe_dir();
    char *cand[REG_N_DEFAULT_DIRS] = {NULL, NULL};
    if (exe_dir) {
        if (asprintf(&cand[0], "%s/../plugins", exe_dir) < 0)
            cand[0] = NULL;
        if (asprintf(&cand[1], "%s/../lib/weir/plugins", exe_dir) < 0)
            cand[1] = NULL;
    }
    char *seen[REG_N_DEFAULT_DIRS] = {NULL, NULL};
    int total = 0;
    for (size_t i = 0; i < REG_N_DEFAULT_DIRS; i++) {
        /* realpath() gives each directory one spelling, so the same folder
         * reached twice (a symlinked lib/weir/plugins) loads once. */
        char *dir = cand[i] ? realpath(cand[i], NULL) : NULL;
        struct stat sb;
        int dup = 0;
        for (size_t j = 0; dir && j < i; j++)
            dup |= seen[j] && !strcmp(seen[j], dir);
        if (dir && reg_skipped(dir, skip, n_skip))
            dup = 1;
        if (!dir || dup || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            free(dir);
            continue;
        }
        seen[i] = dir;
        char *err = NULL;
        int n = reg_load_dir(reg, dir, on_error, arg, &err);
        if (n < 0)
            reg_report(on_error, arg, err ? err : dir);
        else
            total += n;
        free(err);
    }
    for (size_t i = 0; i < REG_N_DEFAULT_DIRS; i++) {
        free(cand[i]);
        free(seen[i]);
    }
    free(exe_dir);
    return total;
}

/* ------------------------------------------------------------------------ */
/* Lookups                                                                   */
/* ------------------------------------------------------------------------ */

const reg_operator *reg_find(const reg_registry *reg, const char *name)
{
    size_t lo = 0, hi = reg->n_ops;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, reg->ops[mid]->op.name);
        if (c == 0)
            return reg->ops[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

size_t reg_rejected_count(const reg_registry *reg)
{
    return reg->n_rejected;
}

const char *reg_rejected(const reg_registry *reg, size_t i)
{
    return i < reg->n_rejected ? reg->rejected[i] : NULL;
}

size_t reg_count(const reg_registry *reg)
{
    return reg->n_ops;
}

const reg_operator *reg_get(const reg_registry *reg, size_t i)
{
    return i < reg->n_ops ? reg->ops[i] : NULL;
}

const weir_param_def *reg_param(const reg_operator *op, const char *name)
{
    for (size_t i = 0; i < op->n_params; i++) {
        if (!strcmp(op->params[i]->name, name))
            return op->params[i];
    }
    return NULL;
}

/* Levenshtein distance, capped at `cap` + 1 to bound the work. */
static size_t reg_distance(const char *a, const char *b, size_t cap)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 256 || lb > 256)
        return cap + 1;
    if ((la > lb ? la - lb : lb - la) > cap)
        return cap + 1;
    size_t row[257];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const reg_operator *reg_suggest(const reg_registry *reg, const char *name)
{
    size_t len = strlen(name);
    size_t cap = len / 3 > 2 ? len / 3 : 2;
    const reg_operator *best = NULL;
    size_t best_d = cap + 1;
    for (size_t i = 0; i < reg->n_ops; i++) {
        size_t d = reg_distance(name, reg->ops[i]->op.name, cap);
        if (d < best_d) {
            best_d = d;
            best = reg->ops[i];
        }
    }
    return best;
}
