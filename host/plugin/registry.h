/*
 * registry.h - loading operator plugins and finding operators by name.
 *
 * The registry dlopen()s plugin shared objects (RTLD_NOW | RTLD_LOCAL),
 * calls their weir_plugin_entry(), checks the ABI version and descriptors,
 * and keeps a normalised copy of every descriptor: each struct the plugin
 * wrote is copied with min(size, sizeof) into a zeroed host-owned struct, so
 * the rest of the host reads current-layout structs and never the plugin's.
 * Plugins are never unloaded; reg_free() releases only the host's copies.
 *
 * Before a file is dlopen()ed here, the same load is tried in a child
 * process (plugin/probe.h; one child for all the files of a directory): a
 * plugin whose constructor or entry point crashes, exits or hangs, or whose
 * tables hold a bad pointer, is refused with a message naming the file and
 * the cause, and this process goes on. A plugin's constructors and entry
 * point therefore run twice (once in the child); a plugin must not rely on
 * running once. What a plugin does later (a thread its constructor started,
 * its callbacks) is not probed.
 *
 * Thread: not thread-safe. Load on the main thread before any other thread
 * starts: the probe fork()s, and a child forked from a multi-threaded
 * process can block on a lock another thread held (it would be refused as
 * timed out). After loading, lookups are read-only and may run from any
 * thread.
 */
#ifndef WEIR_HOST_REGISTRY_H
#define WEIR_HOST_REGISTRY_H

#include <stddef.h>

#include "weir/weir.h"

typedef struct reg_plugin reg_plugin;

/* One operator of a loaded plugin, with normalised descriptors. The arrays
 * are host-owned and NULL-terminated, and op.params, op.input_ports and
 * op.output_ports point at them; the strings stay in the plugin's memory,
 * which is never unloaded. */
typedef struct reg_operator {
    weir_operator op;              /* normalised copy */
    const weir_param_def **params; /* normalised copies, n_params of them */
    size_t n_params;
    const char **inputs; /* input port names ("in" by default); none for
                            sources */
    size_t n_inputs;
    const char **outputs; /* output port names ("out" by default) */
    size_t n_outputs;
    const reg_plugin *plugin;
} reg_operator;

struct reg_plugin {
    char *path;       /* the .so as found */
    weir_plugin desc; /* normalised copy; desc.operators is not used */
    void *handle;     /* dlopen handle, never closed */
};

typedef struct reg_registry reg_registry;

/* Called once per plugin that fails to load; `msg` is one line naming the
 * file and the cause, e.g. "plugins/x.so: missing symbol weir_plugin_entry". */
typedef void (*reg_error_fn)(void *arg, const char *msg);

/* Creates an empty registry whose plugins receive `host` in their entry
 * call. `host` must outlive the registry. Returns NULL when out of memory.
 * Its probe time-out is 5 s. */
reg_registry *reg_new(const weir_host_api *host);
void reg_free(reg_registry *reg);

/* Sets how long the probe of one file may take before the child is killed
 * and the file refused, in milliseconds. 0 (or less) turns probing off:
 * files are dlopen()ed in this process directly, and a crashing plugin
 * crashes it. */
void reg_set_probe_timeout(reg_registry *reg, int timeout_ms);

/* Loads one plugin file. The file is refused as a whole when its probe
 * crashes, exits or does not finish in time (see above: "FILE: probing it
 * crashed with SIGSEGV (in weir_plugin_entry)"), when it cannot be
 * dlopen()ed (not ELF, unresolved symbol), lacks weir_plugin_entry, the
 * entry returns NULL, the ABI major differs, a struct's `size` is below the
 * v1.0 size, there are no operators, an operator has no name or lacks a
 * required callback, a name clashes with this or an already registered
 * plugin, a port list repeats or has an empty name, broadcast_inputs names
 * a port that does not exist or comes without process_broadcast (or the
 * other way round, or on a source), or a parameter has no
 * (or a non-[a-z0-9_]+) name, an unknown type, a duplicate name, or is an
 * ENUM without choices. Default values are checked later, by the topology.
 * On failure returns a negative code and a one-line message "FILE: cause"
 * in *errptr (also kept for reg_rejected()); nothing of the file is
 * registered, and it is dlclose()d or was never dlopen()ed here. */
int reg_load_file(reg_registry *reg, const char *path, char **errptr);

/* Registers a plugin descriptor that is already in this process (linked
 * into the program, e.g. by the test harness), with the checks and
 * normalisation of reg_load_file() but without dlopen, probe or entry
 * call; `name` stands for the file in messages (NULL: "(in-process
 * plugin)"). The descriptor and its strings must outlive the registry. */
int reg_add_plugin(reg_registry *reg, const char *name,
                   const weir_plugin *plugin, char **errptr);
/* Loads every "*.so" in `dir` (not recursive) in name order. A bad file is
 * reported as "plugin FILE: cause; skipped" through `on_error` (NULL:
 * logged as a warning) and skipped; good files next to it still load.
 * Returns the number of plugins loaded, or a negative code with *errptr set
 * when `dir` cannot be read. */
int reg_load_dir(reg_registry *reg, const char *dir, reg_error_fn on_error,
                 void *arg, char **errptr);

/* Loads the default directories that exist, in this order: <dir of the
 * running binary>/../plugins (the build tree and an install put bin/weir
 * next to plugins/) and <dir of the binary>/../lib/weir/plugins. The
 * current directory is never a default: a checkout's ./plugins must not run
 * code because a command was started there. A directory reached twice (by
 * another spelling) is loaded once; a missing one is skipped silently. Bad
 * files are reported like reg_load_dir() does. Returns the number of
 * plugins loaded. */
int reg_load_default(reg_registry *reg, reg_error_fn on_error, void *arg);
/* The same, leaving out default directories that are (by realpath) one of
 * skip[0..n_skip): directories already loaded explicitly. */
int reg_load_default_skip(reg_registry *reg, const char *const *skip,
                          size_t n_skip, reg_error_fn on_error, void *arg);

/* The messages ("FILE: cause") of the files that failed to load so far, in
 * the order they failed; reg_rejected() returns NULL past the end. The
 * strings belong to the registry. */
size_t reg_rejected_count(const reg_registry *reg);
const char *reg_rejected(const reg_registry *reg, size_t i);

/* The operator named `name`, or NULL. */
const reg_operator *reg_find(const reg_registry *reg, const char *name);

/* All operators, sorted by name. */
size_t reg_count(const reg_registry *reg);
const reg_operator *reg_get(const reg_registry *reg, size_t i);

/* The parameter definition `name` of `op`, or NULL. */
const weir_param_def *reg_param(const reg_operator *op, const char *name);

/* The registered operator whose name is closest to `name` (edit distance at
 * most max(2, strlen(name) / 3)), for "did you mean" hints; NULL when none is
 * close. */
const reg_operator *reg_suggest(const reg_registry *reg, const char *name);

#endif
