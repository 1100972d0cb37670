/*
 * weir.h - the Weir plugin ABI, version 1.
 *
 * This header is the whole contract between the Weir host and an operator
 * plugin. A plugin is a shared object that exports exactly one symbol,
 * weir_plugin_entry(), and includes nothing of the host but the headers in
 * sdk/include/weir/.
 *
 * Stability rules (see CONTRIBUTING.md, "ABI rules"):
 *   - WEIR_ABI_MAJOR changes only when an existing layout or signature
 *     changes. The host refuses a plugin whose major differs from its own.
 *   - WEIR_ABI_MINOR grows when something is appended. A struct that crosses
 *     the boundary starts with a uint32_t `size` set by whoever allocated it;
 *     the reader copies min(size, sizeof) into a zeroed struct, so a field
 *     the writer did not know reads as zero/NULL. A NULL callback means "not
 *     implemented". Tables are append-only; a changed signature gets a new
 *     slot (foo2) instead.
 *   - Layout is pinned by _Static_assert tests in tests/abi.
 *
 * Conventions:
 *   - Bytes are (pointer, length) pairs and are never NUL-terminated.
 *     Names (operator, port, parameter, state, metric) are NUL-terminated
 *     C strings.
 *   - Functions return int: 0 (WEIR_OK) on success, a negative WEIR_E* code
 *     on failure. WEIR_ERETRY means "transient, the same call may succeed
 *     later". A plugin explains a failure with weir_set_error(). Returned
 *     from process() it means the plugin took nothing of the record (no
 *     emit, no state write): the host offers the same record again after a
 *     backoff (1 ms doubling to 1 s) for up to the topology's
 *     runtime.retry_timeout, then fails the subtask. From any other
 *     callback it is a failure like any other code.
 *   - Times are int64_t milliseconds. Event time is the record's timestamp;
 *     processing time is the host's clock (which tests may fake).
 *   - Threading: the host creates one instance of an operator per subtask and
 *     calls all of that instance's callbacks on one thread, never two at once.
 *     Host services may be called only from inside a callback, on that
 *     thread, with the ctx that callback received. The thread may be shared
 *     with other instances: a chained operator (forward edge, see the host's
 *     README) runs on its producer's thread, its process() called from
 *     inside the producer's weir_emit(). Plugins keep no mutable
 *     globals: everything lives in the instance.
 *   - Ownership: pointers passed into a callback are borrowed for the
 *     duration of the callback. weir_emit() and the state put functions copy
 *     their inputs. Bytes returned by a state get function stay valid until
 *     the next state call on the same ctx or the end of the callback,
 *     whichever comes first.
 *   - Checked arguments: the host trusts nothing a plugin passes. A host
 *     service that returns int refuses with WEIR_EINVAL, and changes
 *     nothing, when it is called
 *       - with a ctx on a thread that is not its own instance's (another
 *         instance's ctx, a thread the plugin started),
 *       - with a weir_state that the calling instance did not declare
 *         (another subtask's, a stale or a NULL one),
 *       - with a NULL pointer and a non-zero length (NULL with length 0 is
 *         fine), or a NULL name, output pointer or callback,
 *       - beyond the limits the calls below state (the job's
 *         runtime.max_record_size, 16 MiB by default, among them).
 *     Its message ("weir_value_put: state handle belongs to another subtask
 *     (count#1)") is kept as the callback's error, as weir_set_error() would
 *     keep it: a plugin that returns the code fails with the host's
 *     explanation, named after the operator, subtask and callback. A later
 *     weir_set_error() replaces it. (A call from a thread that is no
 *     instance's can only be logged.)
 */
#ifndef WEIR_WEIR_H
#define WEIR_WEIR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Versions, visibility, status codes                                        */
/* ------------------------------------------------------------------------ */

#define WEIR_ABI_MAJOR 1
#define WEIR_ABI_MINOR 3

/* Marks the one symbol a plugin exports; build with -fvisibility=hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define WEIR_EXPORT            __attribute__((visibility("default")))
#define WEIR_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define WEIR_EXPORT
#define WEIR_PRINTF(fmt, args)
#endif

/* Status codes. New codes may be appended in a minor version; treat an
 * unknown negative code like WEIR_EFAIL. */
#define WEIR_OK        0
#define WEIR_EFAIL     (-1)  /* generic failure; the message says why */
#define WEIR_EINVAL    (-2)  /* bad argument or bad input data */
#define WEIR_ENOMEM    (-3)  /* allocation failed */
#define WEIR_ENOTSUP   (-4)  /* the host does not implement this service */
#define WEIR_ENOTFOUND (-5)  /* no such key, parameter, state or port */
#define WEIR_ERETRY    (-6)  /* transient: the same call may succeed later */
#define WEIR_EIO       (-7)  /* I/O error (state backend, files) */
#define WEIR_ESTATE    (-8)  /* called in the wrong state or callback */
#define WEIR_EOF       (-9)  /* a source has nothing more, ever */
#define WEIR_EAGAIN    (-10) /* a source has nothing right now */
#define WEIR_ETIMEDOUT (-11) /* since 1.3: an async request timed out */
#define WEIR_ECANCELED (-12) /* since 1.3: an async request was abandoned */

/* Returns a static English description of a WEIR_E* code. */
static inline const char *weir_strerror(int code)
{
    switch (code) {
    case WEIR_OK: return "ok";
    case WEIR_EFAIL: return "failure";
    case WEIR_EINVAL: return "invalid argument";
    case WEIR_ENOMEM: return "out of memory";
    case WEIR_ENOTSUP: return "not supported by this host";
    case WEIR_ENOTFOUND: return "not found";
    case WEIR_ERETRY: return "transient failure, retry";
    case WEIR_EIO: return "I/O error";
    case WEIR_ESTATE: return "called in the wrong state";
    case WEIR_EOF: return "end of input";
    case WEIR_EAGAIN: return "no input right now";
    case WEIR_ETIMEDOUT: return "timed out";
    case WEIR_ECANCELED: return "canceled";
    default: return "unknown error";
    }
}

/* Event time of a record that has none. */
#define WEIR_TS_NONE       INT64_MIN
/* The watermark before any watermark arrived, and after the end of input. */
#define WEIR_WATERMARK_MIN INT64_MIN
#define WEIR_WATERMARK_MAX INT64_MAX

/* True when the struct at `p`, whose first field is `uint32_t size`, is large
 * enough to contain `field`. Used on tables written by the other side. */
#define WEIR_HAS_FIELD(p, type, field)                                         \
    ((p)->size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* ------------------------------------------------------------------------ */
/* Opaque and shared types                                                   */
/* ------------------------------------------------------------------------ */

typedef struct weir_host_api weir_host_api;
typedef struct weir_state weir_state;   /* a declared state, owned by host */
typedef struct weir_metric weir_metric; /* a registered metric, owned by host */
/* Since 1.2: a declared broadcast state, owned by the host. */
typedef struct weir_broadcast_state weir_broadcast_state;
/* Since 1.3: one in-flight asynchronous request, owned by the host. */
typedef struct weir_async weir_async;

/*
 * The context the host passes to every callback. Only `api` is public; the
 * host's private fields follow it. A ctx belongs to one operator instance
 * and is valid from open() to the end of close().
 */
typedef struct weir_ctx {
    const weir_host_api *api;
} weir_ctx;

/* A record as delivered to process(). Everything is borrowed for the call.
 * `value` is msgpack by convention (see weir/msgpack.h); the host does not
 * look inside it. */
typedef struct weir_record { /* since 1.0, every field */
    uint32_t size;
    uint32_t reserved;
    const void *key;
    size_t key_len;
    int64_t ts; /* event time in ms, or WEIR_TS_NONE */
    const void *value;
    size_t value_len;
} weir_record;

typedef enum weir_time_domain {
    WEIR_TIME_PROCESSING = 0,
    WEIR_TIME_EVENT = 1
} weir_time_domain;

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

/*
 * Parameter types. Values come from the operator's `config` mapping in the
 * topology file and are validated by the host against the operator's table
 * before open() is called, so open() never sees a missing required value, a
 * wrong type or an out-of-range number.
 */
typedef enum weir_param_type {
    WEIR_PARAM_BOOL = 1,     /* true/false */
    WEIR_PARAM_INT = 2,      /* int64 */
    WEIR_PARAM_DOUBLE = 3,   /* double */
    WEIR_PARAM_STRING = 4,   /* bytes, UTF-8 */
    WEIR_PARAM_DURATION = 5, /* "250ms", "10s", "5m", "2h", "7d" -> int64 ms */
    WEIR_PARAM_SIZE = 6,     /* "512", "64KiB", "64MiB", "1GB" -> int64 bytes */
    WEIR_PARAM_ENUM = 7,     /* a string out of `choices` */
    WEIR_PARAM_ANY = 8       /* any YAML value, handed over as msgpack */
} weir_param_type;

#define WEIR_PARAM_REQUIRED    0x1u /* the topology must set it */
#define WEIR_PARAM_HAS_MIN     0x2u /* `min` is enforced (numeric types) */
#define WEIR_PARAM_HAS_MAX     0x4u /* `max` is enforced (numeric types) */
/*
 * Since 1.1. A STRING parameter that names a file or directory the operator
 * writes (a sink's output). The host locks that path for the whole run,
 * across restarts, so that a second run writing to it is refused before
 * it can touch it. Older hosts ignore the flag.
 */
#define WEIR_PARAM_OUTPUT_PATH 0x8u

/*
 * One entry of an operator's parameter table. For DURATION, min and max are
 * in milliseconds; for SIZE, in bytes. `default_value` is written as it would
 * be in YAML ("10s", "42", "true") and is validated like a user's value; NULL
 * means no default (then weir_param_* returns WEIR_ENOTFOUND when unset).
 */
typedef struct weir_param_def { /* since 1.0, every field */
    uint32_t size;
    uint32_t flags;             /* WEIR_PARAM_* flags */
    const char *name;           /* [a-z0-9_]+ */
    weir_param_type type;       /* */
    const char *default_value;  /* or NULL */
    double min;                 /* with WEIR_PARAM_HAS_MIN */
    double max;                 /* with WEIR_PARAM_HAS_MAX */
    const char *const *choices; /* ENUM: NULL-terminated list */
    const char *description;    /* one line, shown by `weir plugins` */
} weir_param_def;

/* ------------------------------------------------------------------------ */
/* Keyed state                                                               */
/* ------------------------------------------------------------------------ */

typedef enum weir_state_kind {
    WEIR_STATE_VALUE = 1, /* one value per key */
    WEIR_STATE_MAP = 2,   /* a map of user keys to values per key */
    WEIR_STATE_LIST = 3   /* an appendable list per key */
} weir_state_kind;

/* TTL that must be spelled out to declare a state without expiry. A state
 * declared with ttl_ms == 0 is refused: leaving state without a TTL is an
 * explicit choice, and the host reports such states as leak risks. */
#define WEIR_TTL_NONE ((int64_t)-1)

typedef enum weir_ttl_update {
    WEIR_TTL_ON_CREATE_AND_WRITE = 0, /* default: writes refresh the expiry */
    WEIR_TTL_ON_READ_AND_WRITE = 1    /* reads refresh it too */
} weir_ttl_update;

typedef enum weir_ttl_visibility {
    WEIR_TTL_NEVER_RETURN_EXPIRED = 0,         /* default */
    WEIR_TTL_RETURN_EXPIRED_IF_NOT_CLEANED = 1 /* cheaper, may return stale */
} weir_ttl_visibility;

/*
 * Declares a named keyed state; see weir_state_declare(). Keyed state lives
 * in the host's RocksDB store of the subtask, is scoped to the current key
 * (value and list state: one per key; map state: user keys under the key),
 * survives restarts through checkpoints, and is served through a write-back
 * cache that does not change any of the rules below.
 *
 * TTL. Every state says how long an entry may live: ttl_ms > 0, or
 * WEIR_TTL_NONE, an explicit "for ever" that the host reports as a leak risk
 * (and flags as a probable leak when the state's key count keeps growing).
 * An entry's expiry stamp is set when it is written (and, with
 * WEIR_TTL_ON_READ_AND_WRITE, when it is read) to
 *   - processing time (WEIR_TIME_PROCESSING, default): now + ttl_ms; the
 *     entry is expired once weir_now() >= stamp;
 *   - event time (WEIR_TIME_EVENT): the current record's event time (the
 *     watermark for callbacks without one: timers, hooks) + ttl_ms; the
 *     entry is expired once the watermark >= stamp. Nothing expires before
 *     the first watermark; at the end of a bounded job every entry does.
 * Visibility: WEIR_TTL_NEVER_RETURN_EXPIRED (default) makes an expired
 * entry absent to every read; WEIR_TTL_RETURN_EXPIRED_IF_NOT_CLEANED may
 * return it until it has been removed (cheaper; with read-and-write update
 * such a read refreshes it). Expired entries are removed by an incremental
 * sweep between batches (which calls on_state_expired first, when the
 * operator has it), on access, and by RocksDB compactions (never for states
 * of an operator with on_state_expired, whose entries always pass the hook).
 */
typedef struct weir_state_desc { /* since 1.0, but format_version */
    uint32_t size;
    weir_state_kind kind;
    const char *name; /* unique within the operator, [a-z0-9_]+ */
    int64_t ttl_ms;   /* > 0, or WEIR_TTL_NONE; 0 is an error */
    weir_ttl_update ttl_update;
    weir_ttl_visibility ttl_visibility;
    weir_time_domain ttl_domain;
    uint32_t reserved;
    /* Since 1.3. The version of the bytes this state's entries hold, 0 in
     * plugins built before 1.3. Checkpoints record it per state; restoring
     * entries written under another version calls the operator's
     * migrate_state() for each of them (see there), and is refused when the
     * operator has no such hook. */
    uint32_t format_version;
    uint32_t reserved2;
} weir_state_desc;

/* Called by weir_map_iter() for each entry; return 0 to go on, 1 to stop
 * early, or a negative code to stop and make weir_map_iter() return it. The
 * bytes are valid only during the call; no state call may be made from it. */
typedef int (*weir_map_iter_fn)(void *arg, const void *ukey, size_t ukey_len,
                                const void *value, size_t value_len);

/* ------------------------------------------------------------------------ */
/* Broadcast state (since 1.2)                                               */
/* ------------------------------------------------------------------------ */

/*
 * A broadcast state is a named map of byte keys to byte values that the host
 * keeps for an operator with a broadcast input (weir_operator's
 * broadcast_inputs), one copy per subtask, meant to be the same on every
 * subtask: rules, configuration, small reference tables that arrive as a
 * stream while the job runs (Flink's broadcast state pattern).
 *
 *   - Declaring: in open(), with weir_broadcast_declare(), by an operator
 *     that has a broadcast input. When the job starts from a checkpoint, the
 *     state holds the checkpoint's content as soon as declare returns, so
 *     open() may iterate it to rebuild what the instance derives from it.
 *   - Writing: weir_broadcast_put() and weir_broadcast_delete() only inside
 *     process_broadcast(); anywhere else they return WEIR_ESTATE and change
 *     nothing. Reading: weir_broadcast_get() and weir_broadcast_iter() from
 *     every callback after the declaration, process() of a keyed operator
 *     included (which sees the state read-only, whatever its current key).
 *   - Determinism: every subtask receives every record of a broadcast input,
 *     so the copies stay equal exactly when process_broadcast() writes as a
 *     function of the broadcast records (and of the state) alone: never of
 *     the subtask index, the clock, the watermark, keyed state, or the
 *     order of records on other inputs. With one producer subtask on the
 *     broadcast input (parallelism 1), its records arrive in the same order
 *     everywhere; with several producers their records interleave
 *     differently on each subtask, so writes must then commute across
 *     producers (for instance, each producer owns its keys). The host
 *     compares the copies of every completed checkpoint and logs a warning
 *     naming the operator when they differ.
 *   - Checkpoints: at a barrier every subtask writes its copy next to its
 *     snapshot (<op>-<index>/broadcast, listed in the manifest). With
 *     checkpoint.mode exactly_once a broadcast input is aligned like any
 *     other input, so checkpoint n holds, on every subtask, the effect of
 *     exactly the broadcast records before barrier n. With at_least_once a
 *     copy may also hold records after the barrier, which a restore then
 *     delivers again: writes must be idempotent (e.g. carry a version and
 *     ignore versions already applied). A restore gives every subtask the
 *     copy it wrote; one restored with another parallelism (a keyed
 *     operator rescaled) gives subtask i the copy of old subtask i modulo
 *     the old parallelism.
 *   - Lifetime and size: no TTL, an entry stays until it is deleted. The
 *     state lives in memory: a get is a binary search, a put of a new key or
 *     a delete moves the entries after it, and every checkpoint writes the
 *     whole state. It is meant for up to about 100 000 entries and some
 *     megabytes; bulk data belongs in keyed state. Keys are at most
 *     WEIR_BROADCAST_MAX_KEY bytes, values at most WEIR_BROADCAST_MAX_VALUE.
 *   - Bytes returned by weir_broadcast_get() stay valid until the next put
 *     or delete on that state or the end of the callback, whichever comes
 *     first. weir_broadcast_iter() visits the entries in byte order of the
 *     keys (a prefix before its extensions); its callback must not call the
 *     broadcast state functions (they return WEIR_ESTATE).
 */
#define WEIR_BROADCAST_MAX_KEY   65000
#define WEIR_BROADCAST_MAX_VALUE (16 * 1024 * 1024)

/* ------------------------------------------------------------------------ */
/* Metrics                                                                   */
/* ------------------------------------------------------------------------ */

typedef enum weir_metric_kind {
    WEIR_METRIC_COUNTER = 1,  /* monotonic, uint64 increments */
    WEIR_METRIC_GAUGE = 2,    /* a double that goes up and down */
    WEIR_METRIC_HISTOGRAM = 3 /* observations, exported with default buckets */
} weir_metric_kind;

/* ------------------------------------------------------------------------ */
/* Operators and plugins                                                     */
/* ------------------------------------------------------------------------ */

/* Operator flags. */
#define WEIR_OP_SOURCE 0x1u /* no inputs; the host calls poll() */
#define WEIR_OP_KEYED  0x2u /* uses keyed state or timers: needs key input */

/*
 * Lifecycle of one operator instance (one per subtask). Every callback of
 * an instance runs on that subtask's thread, started by the host (shared
 * with its producer's subtask when the operator is chained), never two at
 * once; weir_plugin_entry() alone runs on the host's main thread,
 * once per process. "emit" says whether the callback may call weir_emit().
 *
 *   weir_plugin_entry()                   main thread, after dlopen()
 *          |
 *          v
 *   open() ---- fails ----> (nothing else; close() is not called)  no emit
 *          |   reads parameters, declares states and metrics; broadcast
 *          |   state is restored when weir_broadcast_declare() returns
 *          v
 *   restore()           only when the job starts from a checkpoint or
 *          |            savepoint: the bytes snapshot() wrote
 *          v
 *   [migrate_state()]   1.3: once per restored keyed-state entry written
 *          |            under another format_version               no emit
 *          v
 *   +-------------------- running: in any order, one at a time ---------+
 *   | poll()                    sources: called again and again   emit |
 *   | process()                 one record of a normal input      emit |
 *   | process_broadcast()       1.2: one record of a broadcast    emit |
 *   |                           input (no current key)                 |
 *   | async_invoke()            1.3: instead of process(); starts a    |
 *   |   ... any thread: weir_async_complete(req) ...                   |
 *   | on_async_result()         1.3: the request's result        emit |
 *   | on_timer()                a timer of the current key is due emit |
 *   | on_watermark()            the watermark advanced (after the      |
 *   |                           event-time timers it made due)    emit |
 *   | on_state_expired()        a TTL entry is about to go        emit |
 *   | snapshot()                a checkpoint barrier arrived      emit |
 *   | notify_checkpoint_complete()  a checkpoint is durable       emit |
 *   +-------------------------------------------------------------------+
 *          |  every input ended (or poll() returned WEIR_EOF): the
 *          |  watermark jumps to WEIR_WATERMARK_MAX (timers, on_watermark)
 *          v
 *   finish()            once                                        emit
 *          |  with checkpoints, snapshot() and notify_checkpoint_complete()
 *          |  may still follow (the final checkpoint)
 *          v
 *   close()             once after a successful open(), also when the
 *                       job fails or is cancelled                  no emit
 *
 * Checkpoints, relative to records: snapshot(ctx, id) runs when barrier id
 * has reached the instance, between two callbacks, never inside one. With
 * checkpoint.mode exactly_once the inputs are aligned first, so every
 * record before barrier id on every input has been processed and none after
 * it; a source's snapshot() runs between two poll() calls. The host sends
 * the barrier downstream before it calls snapshot(), so a record emitted in
 * snapshot() belongs to the next checkpoint. Keyed state, timers and
 * broadcast state are snapshotted by the host at the same point.
 * notify_checkpoint_complete(id) comes later, between callbacks, once
 * checkpoint id is complete on every subtask; it names the newest
 * completed checkpoint, so an id may be skipped (a newer one implies the
 * older ones). A failure in any callback fails the subtask; the job then
 * restarts from the last completed checkpoint: open(), restore(), ...
 * again, in a new instance.
 */

/*
 * An operator: its metadata, parameters and callbacks. `self` is the instance
 * pointer that open() stored. All callbacks but open() and close() are
 * optional (NULL = not implemented), except that a source needs poll() and a
 * non-source needs process(). A callback that returns a negative code fails
 * the subtask; the host logs the plugin's weir_set_error() message with the
 * operator id and subtask index, and restarts from the last checkpoint when
 * the job has checkpoints.
 */
typedef struct weir_operator {
    /* Since 1.0: size .. reserved and open .. close; 1.2: broadcast_inputs,
     * process_broadcast; 1.3: migrate_state, async_invoke,
     * on_async_result. */
    uint32_t size;
    uint32_t flags; /* WEIR_OP_* */
    const char *name;
    const char *version;
    const char *description;
    /* Port names, NULL-terminated. A NULL pointer means one port named
     * "in" (input; sources have none) or "out" (output); a list holding only
     * the terminating NULL declares no ports (a sink has no outputs). Ports
     * are addressed by their index in the list. */
    const char *const *input_ports;
    const char *const *output_ports;
    /* Parameter table, NULL-terminated array of pointers, or NULL. */
    const weir_param_def *const *params;
    /* Version of the bytes snapshot() writes; passed back to restore(). */
    uint32_t snapshot_version;
    uint32_t reserved;

    /* Required. Creates the instance: read parameters, declare states and
     * metrics, store the instance in *self. On failure, call set_error and
     * return a negative code; close() is then not called. */
    int (*open)(weir_ctx *ctx, void **self);

    /* Required for non-sources. One record from input port `port`. For keyed
     * operators the record's key is the current key for state and timers. */
    int (*process)(weir_ctx *ctx, void *self, const weir_record *rec,
                   uint32_t port);

    /* Required for sources. Emit zero or more records and return WEIR_OK to
     * be called again, WEIR_EAGAIN when nothing is available now (the host
     * backs off briefly), or WEIR_EOF when the source is exhausted. A poll
     * should return within a few milliseconds so that the host can interleave
     * checkpoint barriers; emit at most a few thousand records per call. */
    int (*poll)(weir_ctx *ctx, void *self);

    /* Optional. A timer registered with weir_timer_register() is due. The
     * timer's key is the current key during the call; `key` repeats it. */
    int (*on_timer)(weir_ctx *ctx, void *self, const void *key, size_t key_len,
                    weir_time_domain domain, int64_t ts);

    /* Optional. The subtask's watermark advanced to `watermark`, after every
     * event-time timer at or before it fired.
     *
     * Watermarks: a source subtask's watermark is the largest event time it
     * emitted minus the operator's `watermarks.out_of_orderness` (topology),
     * sent in band every `watermarks.interval`; a source idle for
     * `watermarks.idle_timeout` is ignored by consumers until it emits again.
     * Any other subtask's watermark is the minimum over its inputs, and it
     * forwards it downstream after its own timers fired. A record whose event
     * time is below the watermark when it arrives is late: the host counts
     * it and still delivers it to process(); the operator decides what to do
     * (compare with weir_watermark(), emit to a side output port, ...). */
    int (*on_watermark)(weir_ctx *ctx, void *self, int64_t watermark);

    /* Optional. TTL hook: an entry of `state` for `key` expired and is about
     * to be deleted. `ukey` is the map key (NULL for value and list state);
     * for list state it is called once per element (`value` is one
     * element). It runs when the host's incremental sweep finds the entry,
     * and also when an access meets an expired entry (read, overwrite,
     * delete, clear), before that access goes on. The key is the current key
     * during the call, so the hook may read and write state (putting the
     * entry again keeps it) and emit; state calls made inside it never call
     * it again. Within one run it fires once per expired entry; after a
     * restore it may fire again for entries that expired after the restored
     * checkpoint (at least once). Event-time entries expire as the watermark
     * passes their stamp, so with event-time TTL every remaining entry
     * expires (and its hook fires) when a bounded job's input ends. */
    int (*on_state_expired)(weir_ctx *ctx, void *self, weir_state *state,
                            const void *key, size_t key_len, const void *ukey,
                            size_t ukey_len, const void *value,
                            size_t value_len);

    /* Optional. A checkpoint barrier reached this instance: write the
     * instance's non-keyed state with weir_snapshot_write() (sources: their
     * read position; two-phase-commit sinks: pre-commit here). */
    int (*snapshot)(weir_ctx *ctx, void *self, uint64_t checkpoint_id);

    /* Optional. Called after open() and before any other callback when the
     * job starts from a checkpoint, with the bytes snapshot() wrote and the
     * snapshot_version of the plugin that wrote them. */
    int (*restore)(weir_ctx *ctx, void *self, uint64_t checkpoint_id,
                   uint32_t version, const void *data, size_t len);

    /* Optional. Checkpoint `checkpoint_id` is complete and durable on every
     * subtask (two-phase-commit sinks commit here). */
    int (*notify_checkpoint_complete)(weir_ctx *ctx, void *self,
                                      uint64_t checkpoint_id);

    /* Optional. Every input reached its end (bounded jobs), or a source
     * returned WEIR_EOF. May emit; called once, before close(). */
    int (*finish)(weir_ctx *ctx, void *self);

    /* Required. Releases the instance. Must not emit. Called once after a
     * successful open(), also when the job fails or is cancelled. */
    void (*close)(weir_ctx *ctx, void *self);

    /* --- since 1.2 --- */

    /* The broadcast inputs: bit i set makes input port i (i < 64) one. The
     * topology must wire a broadcast input with `partition: broadcast` (it
     * is refused otherwise; a keyed operator's other inputs stay
     * partitioned by key), so that every subtask receives every record of
     * it. Its records go to process_broadcast(), never to process(), and
     * only process_broadcast() may write broadcast state. 0, as in every
     * operator built before 1.2: no broadcast input. A source has none, and
     * a bit for a port the operator does not declare is refused. */
    uint64_t broadcast_inputs;

    /* Required when broadcast_inputs is not 0, refused when it is 0. One
     * record from broadcast input port `port`. There is no current key:
     * keyed state, timers and weir_current_key() return WEIR_ESTATE. It may
     * emit. Records of the broadcast and of the other inputs interleave in
     * no particular order; an operator that needs them in event-time order
     * buffers (keyed state, timers) and lets the watermark decide, as the
     * bundled `rules` operator does. */
    int (*process_broadcast)(weir_ctx *ctx, void *self, const weir_record *rec,
                             uint32_t port);

    /* --- since 1.3 --- */

    /* Optional. Keyed state migration across plugin versions. When a job
     * starts from a checkpoint or savepoint whose entries of `state` were
     * written with another format_version than the one declared now, the
     * host calls this once per entry, after open() and restore() and before
     * any record, with the entry's key as the current key, `from_version`
     * the version it was written with, `ukey` its map key (NULL for value
     * and list state; list state: once per element). The host has removed
     * the old entry before the call: the hook writes the migrated entry with
     * the ordinary state functions of `state` (value_put, map_put,
     * list_add), or writes nothing to drop it. TTL stamps of rewritten
     * entries start afresh. It must not emit. A negative code fails the
     * restore, with the hook's message. Without this hook such a restore is
     * refused, naming operator, state and both versions. */
    int (*migrate_state)(weir_ctx *ctx, void *self, weir_state *state,
                         uint32_t from_version, const void *ukey,
                         size_t ukey_len, const void *value, size_t value_len);

    /* Async I/O (Flink's AsyncWaitOperator). An operator that sets
     * async_invoke is asynchronous: every record of its (non-broadcast)
     * inputs goes to async_invoke() instead of process(), which may then be
     * NULL. async_invoke() starts a request for the record, typically by
     * handing `req` and a copy of what it needs to an I/O thread or event
     * loop of the plugin's own, and returns at once. Whoever holds `req`
     * later calls weir_async_complete(req, ...) exactly once, from any
     * thread; the host then calls on_async_result() on the subtask's own
     * thread with the same record (its key is the current key, so keyed
     * state and timers work as in process()), which emits the result.
     *
     * The host, not the plugin, owns the rest, configured by the operator's
     * `async` section in the topology:
     *   - capacity: at most that many requests are in flight per subtask; a
     *     new record waits (back pressure upstream) until one completes;
     *   - mode ordered (default): on_async_result() is called in the order
     *     of the input records, a completed request waiting behind an
     *     earlier one; unordered: in completion order, but never across a
     *     watermark (results of records before a watermark are delivered
     *     before it is forwarded, as in Flink);
     *   - timeout: a request not completed in time counts as failed with
     *     WEIR_ETIMEDOUT; a request completed with WEIR_ERETRY or
     *     WEIR_ETIMEDOUT is invoked again (a new req; the old one must still
     *     be completed, and its late result is dropped) after a backoff that
     *     doubles from retry_backoff, up to max_retries times; then, and for
     *     any other negative status, on_async_result() receives the status
     *     and no result, and decides (emit an error record, or return a
     *     negative code to fail the subtask);
     *   - checkpoints: the input records of requests in flight at a barrier
     *     (completed or not, as long as their result was not delivered) are
     *     stored in the checkpoint and invoked again after a restore, before
     *     any new input, so every record's result is emitted exactly once
     *     with respect to the checkpoint; the watermark and the end of input
     *     wait for the requests started before them.
     * async_invoke() returns WEIR_OK when it took req (it may complete it
     * before returning). A negative code means it kept nothing, and req
     * must not be completed: WEIR_ERETRY counts as a failed attempt (retried
     * as above), any other code fails the subtask.
     * A plugin must complete or abandon (status WEIR_ECANCELED) every req it
     * holds before its close() returns; weir_async_complete() must not be
     * called after that. Since 1.3. */
    int (*async_invoke)(weir_ctx *ctx, void *self, const weir_record *rec,
                        uint32_t port, weir_async *req);
    /* The request for `rec` from input port `port` ended: status WEIR_OK
     * with the `result` bytes passed to weir_async_complete() (borrowed for
     * the call), or the final negative status with no result. Required
     * when async_invoke is set. */
    int (*on_async_result)(weir_ctx *ctx, void *self, const weir_record *rec,
                           uint32_t port, int status, const void *result,
                           size_t result_len);
} weir_operator;

/*
 * What weir_plugin_entry() returns. Static storage in the plugin: the host
 * never frees it and never unloads the plugin.
 */
typedef struct weir_plugin { /* since 1.0, every field */
    uint32_t size;
    uint32_t abi_major; /* WEIR_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor; /* WEIR_ABI_MINOR the plugin was built with */
    uint32_t reserved;
    const char *name;
    const char *version;
    const char *description;
    const weir_operator *const *operators; /* NULL-terminated, at least one */
} weir_plugin;

/* Convenience initialiser for a weir_plugin: fills size and ABI version. */
#define WEIR_PLUGIN_INIT                                                       \
    .size = sizeof(weir_plugin), .abi_major = WEIR_ABI_MAJOR,                  \
    .abi_minor = WEIR_ABI_MINOR

/*
 * Since 1.1. Boilerplate of a parameter table entry and of the entry point:
 *
 *   static const weir_param_def p_gap = WEIR_PARAM(
 *       "gap", WEIR_PARAM_DURATION, "30m", "idle time that closes a session",
 *       .flags = WEIR_PARAM_HAS_MIN, .min = 1);
 *   ...
 *   WEIR_PLUGIN_ENTRY(plugin)   // defines weir_plugin_entry()
 *
 * WEIR_PARAM fills `size` and takes further designated initialisers after
 * the description. WEIR_PLUGIN_ENTRY defines the exported entry point,
 * returning &plugin, or NULL to a host of another ABI major.
 */
#define WEIR_PARAM(name_, type_, default_, desc_, ...)                         \
    {                                                                          \
        .size = sizeof(weir_param_def), .name = (name_), .type = (type_),      \
        .default_value = (default_), .description = (desc_), __VA_ARGS__       \
    }
#define WEIR_PLUGIN_ENTRY(plugin_)                                             \
    WEIR_EXPORT const weir_plugin *weir_plugin_entry(                          \
        const weir_host_api *host)                                             \
    {                                                                          \
        return host && host->abi_major != WEIR_ABI_MAJOR ? NULL : &(plugin_);  \
    }

/*
 * The one exported function. Called once by the host right after dlopen(),
 * on the host's main thread. `host` is valid for the life of the process and
 * describes the host's ABI version; the function may return NULL to refuse
 * (for instance when host->abi_minor is older than it needs).
 */
#define WEIR_PLUGIN_ENTRY_SYMBOL "weir_plugin_entry"
typedef const weir_plugin *(*weir_plugin_entry_fn)(const weir_host_api *host);
WEIR_EXPORT const weir_plugin *weir_plugin_entry(const weir_host_api *host);

/* ------------------------------------------------------------------------ */
/* Host services                                                             */
/* ------------------------------------------------------------------------ */

typedef enum weir_log_level {
    WEIR_LOG_ERROR = 0,
    WEIR_LOG_WARN = 1,
    WEIR_LOG_INFO = 2,
    WEIR_LOG_DEBUG = 3
} weir_log_level;

/*
 * The host's service table. Append-only: a plugin built against a newer minor
 * may find the table shorter than its header says, which the weir_* wrappers
 * below detect (they return WEIR_ENOTSUP). A service the host lists but does
 * not implement yet also returns WEIR_ENOTSUP.
 *
 * Call these through the weir_* inline wrappers below.
 */
struct weir_host_api {
    uint32_t size;
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t reserved;

    /* Each group names the minor version that added its slots; a host of
     * an older minor has a shorter table (WEIR_API_HAS). Slots since 1.0:
     * log .. histogram_observe; 1.2: broadcast_*; 1.3: async_complete. */

    /* --- diagnostics (since 1.0) --- */
    void (*log)(weir_ctx *ctx, weir_log_level level, const char *fmt,
                va_list ap);
    /* Records the message that explains the negative code a callback is about
     * to return. Returns WEIR_EFAIL so that `return weir_set_error(...)`
     * works. Later calls replace earlier ones. On a thread that is not the
     * instance's own, the message is dropped. */
    int (*set_error)(weir_ctx *ctx, const char *fmt, va_list ap);

    /* --- identity (since 1.0) --- */
    const char *(*operator_id)(weir_ctx *ctx); /* the topology's id */
    uint32_t (*subtask_index)(weir_ctx *ctx);
    uint32_t (*parallelism)(weir_ctx *ctx);

    /* --- parameters (since 1.0; valid from open() on; strings live as long
     * as ctx) ---
     * Each returns WEIR_ENOTFOUND when the parameter is unset and has no
     * default, WEIR_EINVAL when it is declared with another type, and
     * WEIR_EINVAL (with a message) for a NULL name or output pointer. */
    int (*param_bool)(weir_ctx *ctx, const char *name, int *out);
    int (*param_int)(weir_ctx *ctx, const char *name, int64_t *out);
    int (*param_double)(weir_ctx *ctx, const char *name, double *out);
    int (*param_string)(weir_ctx *ctx, const char *name, const char **ptr,
                        size_t *len);
    /* ANY parameters (and any other) encoded as msgpack. */
    int (*param_msgpack)(weir_ctx *ctx, const char *name, const void **ptr,
                         size_t *len);

    /* --- records (since 1.0) --- */
    /* Sends a record to every consumer of output port `port`. Copies its
     * inputs. May block while downstream is back-pressured. Not allowed in
     * open() and close() (WEIR_ESTATE). Refused with WEIR_EINVAL, and
     * nothing sent: a port the operator does not declare, a NULL key or
     * value with a non-zero length, and key_len + value_len above the job's
     * runtime.max_record_size. */
    int (*emit)(weir_ctx *ctx, uint32_t port, const void *key, size_t key_len,
                int64_t ts, const void *value, size_t value_len);
    /* Index of an output port by name, or WEIR_ENOTFOUND; WEIR_EINVAL for a
     * NULL name. */
    int (*output_port)(weir_ctx *ctx, const char *name);

    /* --- time (since 1.0) --- */
    int64_t (*now)(weir_ctx *ctx);       /* processing time, ms */
    int64_t (*watermark)(weir_ctx *ctx); /* current input watermark */
    /* The key that keyed state and timers use in this callback. Returns
     * WEIR_ESTATE outside process()/on_timer()/on_state_expired(), and
     * WEIR_EINVAL for a NULL key or key_len pointer. */
    int (*current_key)(weir_ctx *ctx, const void **key, size_t *key_len);

    /* --- keyed state (since 1.0; declare in open(); use with a current
     * key) ---
     * A weir_state may be used only with the ctx of the instance that
     * declared it; any other handle is refused with WEIR_EINVAL and never
     * touched. A get with a NULL value or len pointer, an iter with a NULL
     * fn, and a put or add whose value is longer than the job's
     * runtime.max_record_size are refused with WEIR_EINVAL too. Map user
     * keys are at most 65000 bytes. */
    int (*state_declare)(weir_ctx *ctx, const weir_state_desc *desc,
                         weir_state **out);
    /* Value state. get returns WEIR_ENOTFOUND when absent or expired. */
    int (*value_get)(weir_ctx *ctx, weir_state *st, const void **value,
                     size_t *len);
    int (*value_put)(weir_ctx *ctx, weir_state *st, const void *value,
                     size_t len);
    int (*value_delete)(weir_ctx *ctx, weir_state *st);
    /* Map state: user keys under the current key. */
    int (*map_get)(weir_ctx *ctx, weir_state *st, const void *ukey,
                   size_t ukey_len, const void **value, size_t *len);
    int (*map_put)(weir_ctx *ctx, weir_state *st, const void *ukey,
                   size_t ukey_len, const void *value, size_t len);
    int (*map_delete)(weir_ctx *ctx, weir_state *st, const void *ukey,
                      size_t ukey_len);
    int (*map_iter)(weir_ctx *ctx, weir_state *st, weir_map_iter_fn fn,
                    void *arg);
    int (*map_clear)(weir_ctx *ctx, weir_state *st);
    /* List state: append, and iterate in append order (ukey is NULL). */
    int (*list_add)(weir_ctx *ctx, weir_state *st, const void *value,
                    size_t len);
    int (*list_iter)(weir_ctx *ctx, weir_state *st, weir_map_iter_fn fn,
                     void *arg);
    int (*list_clear)(weir_ctx *ctx, weir_state *st);

    /* --- timers (since 1.0) ---
     * Timers belong to the current key and are kept with its keyed state
     * (checkpointed and restored with it). Registering the same key, domain
     * and time twice keeps one timer; deleting an absent timer is not an
     * error. A timer never fires inside the call that registers it:
     *   - an event-time timer fires once the operator's watermark is >= ts,
     *     in timestamp order, before on_watermark() sees that watermark;
     *   - a processing-time timer fires once weir_now() >= ts, checked
     *     between batches (about every millisecond when idle); timers that
     *     came due while the job was down fire right after a restore.
     * When every input has ended, the watermark jumps to WEIR_WATERMARK_MAX:
     * all pending event-time timers fire, then on_watermark(), then
     * finish(). Pending processing-time timers are not fired at the end of a
     * bounded job. */
    /* Both return WEIR_EINVAL for an unknown domain. */
    int (*timer_register)(weir_ctx *ctx, weir_time_domain domain, int64_t ts);
    int (*timer_delete)(weir_ctx *ctx, weir_time_domain domain, int64_t ts);

    /* --- non-keyed snapshot (since 1.0; only inside snapshot()) --- */
    /* Appends bytes to this instance's snapshot for the checkpoint.
     * WEIR_ESTATE outside snapshot(); WEIR_EINVAL for NULL data with a
     * non-zero len. */
    int (*snapshot_write)(weir_ctx *ctx, const void *data, size_t len);

    /* --- metrics (since 1.0; register in open(); update from any
     * callback) ---
     * `label_name`/`label_value` add one label (both NULL for none), so a
     * plugin can keep e.g. one counter per rule. Registering the same name and
     * label twice returns the same metric. WEIR_EINVAL for a bad name or
     * label, or a NULL `out`. Since 1.2 a registration is also allowed in
     * later callbacks (a counter per rule for rules that arrive on a
     * broadcast input); it costs a lookup among the job's metrics, so keep
     * the metric it returns. The updates below take no ctx, so the host
     * cannot check them: give them only metrics the calling instance
     * registered (a NULL metric is ignored). */
    int (*metric_register)(weir_ctx *ctx, weir_metric_kind kind,
                           const char *name, const char *help,
                           const char *label_name, const char *label_value,
                           weir_metric **out);
    void (*counter_add)(weir_metric *m, uint64_t delta);
    void (*gauge_set)(weir_metric *m, double value);
    void (*histogram_observe)(weir_metric *m, double value);

    /* --- broadcast state (since 1.2; see "Broadcast state" above) ---
     * declare: only in open() (WEIR_ESTATE elsewhere); WEIR_EINVAL for a
     * name that is not [a-z0-9_]{1,64}, a name declared twice, or an
     * operator without broadcast input. get: WEIR_ENOTFOUND when absent.
     * put, delete: only in process_broadcast() (WEIR_ESTATE elsewhere);
     * deleting an absent key is not an error. Every call refuses with
     * WEIR_EINVAL a handle this instance did not declare, a NULL pointer
     * with a non-zero length, a NULL output pointer or callback, and a key
     * or value over the limits. */
    int (*broadcast_declare)(weir_ctx *ctx, const char *name,
                             weir_broadcast_state **out);
    int (*broadcast_get)(weir_ctx *ctx, weir_broadcast_state *st,
                         const void *key, size_t key_len, const void **value,
                         size_t *len);
    int (*broadcast_put)(weir_ctx *ctx, weir_broadcast_state *st,
                         const void *key, size_t key_len, const void *value,
                         size_t len);
    int (*broadcast_delete)(weir_ctx *ctx, weir_broadcast_state *st,
                            const void *key, size_t key_len);
    int (*broadcast_iter)(weir_ctx *ctx, weir_broadcast_state *st,
                          weir_map_iter_fn fn, void *arg);

    /* --- async I/O (since 1.3; see async_invoke in weir_operator) ---
     * The one host service that may be called from any thread, and with no
     * ctx: it hands the result of `req` back to its subtask and wakes it.
     * `result` is copied (at most the job's runtime.max_record_size bytes);
     * status is WEIR_OK, or a negative code (WEIR_ERETRY and WEIR_ETIMEDOUT
     * ask for a retry). Returns WEIR_OK, or WEIR_EINVAL for a NULL req, a
     * req completed before, or a result over the limit (the request then
     * fails with WEIR_EINVAL). Completing a req whose request timed out or
     * was retried is fine: the result is dropped. */
    int (*async_complete)(weir_async *req, int status, const void *result,
                          size_t len);
};

/* ------------------------------------------------------------------------ */
/* Wrappers: what plugins call                                               */
/* ------------------------------------------------------------------------ */

/* Whether the host's table has slot `f` (a newer plugin on an older host). */
#define WEIR_API_HAS(ctx, f)                                                   \
    ((ctx)->api->size >= offsetof(weir_host_api, f) + sizeof(void *) &&        \
     (ctx)->api->f != NULL)
#define WEIR_API_CALL(ctx, f, ...)                                             \
    (WEIR_API_HAS(ctx, f) ? (ctx)->api->f((ctx), __VA_ARGS__) : WEIR_ENOTSUP)

static inline WEIR_PRINTF(3, 4) void weir_log(weir_ctx *ctx,
                                              weir_log_level level,
                                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx->api->log(ctx, level, fmt, ap);
    va_end(ap);
}

static inline WEIR_PRINTF(2, 3) int weir_set_error(weir_ctx *ctx,
                                                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx->api->set_error(ctx, fmt, ap);
    va_end(ap);
    return WEIR_EFAIL;
}

static inline const char *weir_operator_id(weir_ctx *ctx)
{
    return ctx->api->operator_id(ctx);
}
static inline uint32_t weir_subtask_index(weir_ctx *ctx)
{
    return ctx->api->subtask_index(ctx);
}
static inline uint32_t weir_parallelism(weir_ctx *ctx)
{
    return ctx->api->parallelism(ctx);
}

static inline int weir_param_bool(weir_ctx *ctx, const char *name, int *out)
{
    return WEIR_API_CALL(ctx, param_bool, name, out);
}
static inline int weir_param_int(weir_ctx *ctx, const char *name, int64_t *out)
{
    return WEIR_API_CALL(ctx, param_int, name, out);
}
static inline int weir_param_double(weir_ctx *ctx, const char *name,
                                    double *out)
{
    return WEIR_API_CALL(ctx, param_double, name, out);
}
static inline int weir_param_string(weir_ctx *ctx, const char *name,
                                    const char **ptr, size_t *len)
{
    return WEIR_API_CALL(ctx, param_string, name, ptr, len);
}
static inline int weir_param_msgpack(weir_ctx *ctx, const char *name,
                                     const void **ptr, size_t *len)
{
    return WEIR_API_CALL(ctx, param_msgpack, name, ptr, len);
}

static inline int weir_emit(weir_ctx *ctx, uint32_t port, const void *key,
                            size_t key_len, int64_t ts, const void *value,
                            size_t value_len)
{
    return ctx->api->emit(ctx, port, key, key_len, ts, value, value_len);
}
static inline int weir_output_port(weir_ctx *ctx, const char *name)
{
    return WEIR_API_CALL(ctx, output_port, name);
}

static inline int64_t weir_now(weir_ctx *ctx)
{
    return ctx->api->now(ctx);
}
static inline int64_t weir_watermark(weir_ctx *ctx)
{
    return WEIR_API_HAS(ctx, watermark) ? ctx->api->watermark(ctx)
                                        : WEIR_WATERMARK_MIN;
}
static inline int weir_current_key(weir_ctx *ctx, const void **key,
                                   size_t *key_len)
{
    return WEIR_API_CALL(ctx, current_key, key, key_len);
}

/* Declares a keyed state. Only in open(). Fails with WEIR_EINVAL (and a
 * logged reason) for a bad name, a duplicate name, ttl_ms == 0, or a NULL
 * descriptor or `out`. */
static inline int weir_state_declare(weir_ctx *ctx, const weir_state_desc *d,
                                     weir_state **out)
{
    return WEIR_API_CALL(ctx, state_declare, d, out);
}
static inline int weir_value_get(weir_ctx *ctx, weir_state *st,
                                 const void **value, size_t *len)
{
    return WEIR_API_CALL(ctx, value_get, st, value, len);
}
static inline int weir_value_put(weir_ctx *ctx, weir_state *st,
                                 const void *value, size_t len)
{
    return WEIR_API_CALL(ctx, value_put, st, value, len);
}
static inline int weir_value_delete(weir_ctx *ctx, weir_state *st)
{
    return WEIR_API_CALL(ctx, value_delete, st);
}
static inline int weir_map_get(weir_ctx *ctx, weir_state *st, const void *uk,
                               size_t uk_len, const void **value, size_t *len)
{
    return WEIR_API_CALL(ctx, map_get, st, uk, uk_len, value, len);
}
static inline int weir_map_put(weir_ctx *ctx, weir_state *st, const void *uk,
                               size_t uk_len, const void *value, size_t len)
{
    return WEIR_API_CALL(ctx, map_put, st, uk, uk_len, value, len);
}
static inline int weir_map_delete(weir_ctx *ctx, weir_state *st, const void *uk,
                                  size_t uk_len)
{
    return WEIR_API_CALL(ctx, map_delete, st, uk, uk_len);
}
static inline int weir_map_iter(weir_ctx *ctx, weir_state *st,
                                weir_map_iter_fn fn, void *arg)
{
    return WEIR_API_CALL(ctx, map_iter, st, fn, arg);
}
static inline int weir_map_clear(weir_ctx *ctx, weir_state *st)
{
    return WEIR_API_CALL(ctx, map_clear, st);
}
static inline int weir_list_add(weir_ctx *ctx, weir_state *st,
                                const void *value, size_t len)
{
    return WEIR_API_CALL(ctx, list_add, st, value, len);
}
static inline int weir_list_iter(weir_ctx *ctx, weir_state *st,
                                 weir_map_iter_fn fn, void *arg)
{
    return WEIR_API_CALL(ctx, list_iter, st, fn, arg);
}
static inline int weir_list_clear(weir_ctx *ctx, weir_state *st)
{
    return WEIR_API_CALL(ctx, list_clear, st);
}

static inline int weir_timer_register(weir_ctx *ctx, weir_time_domain domain,
                                      int64_t ts)
{
    return WEIR_API_CALL(ctx, timer_register, domain, ts);
}
static inline int weir_timer_delete(weir_ctx *ctx, weir_time_domain domain,
                                    int64_t ts)
{
    return WEIR_API_CALL(ctx, timer_delete, domain, ts);
}

static inline int weir_snapshot_write(weir_ctx *ctx, const void *data,
                                      size_t len)
{
    return WEIR_API_CALL(ctx, snapshot_write, data, len);
}

static inline int weir_metric_register(weir_ctx *ctx, weir_metric_kind kind,
                                       const char *name, const char *help,
                                       const char *label_name,
                                       const char *label_value,
                                       weir_metric **out)
{
    return WEIR_API_CALL(ctx, metric_register, kind, name, help, label_name,
                         label_value, out);
}
/* Metric updates are no-ops on a NULL metric, so a plugin may ignore a failed
 * registration. */
static inline void weir_counter_add(weir_ctx *ctx, weir_metric *m,
                                    uint64_t delta)
{
    if (m && WEIR_API_HAS(ctx, counter_add))
        ctx->api->counter_add(m, delta);
}
static inline void weir_gauge_set(weir_ctx *ctx, weir_metric *m, double v)
{
    if (m && WEIR_API_HAS(ctx, gauge_set))
        ctx->api->gauge_set(m, v);
}
static inline void weir_histogram_observe(weir_ctx *ctx, weir_metric *m,
                                          double v)
{
    if (m && WEIR_API_HAS(ctx, histogram_observe))
        ctx->api->histogram_observe(m, v);
}

/* Broadcast state (since 1.2): WEIR_ENOTSUP on an older host. */
static inline int weir_broadcast_declare(weir_ctx *ctx, const char *name,
                                         weir_broadcast_state **out)
{
    return WEIR_API_CALL(ctx, broadcast_declare, name, out);
}
static inline int weir_broadcast_get(weir_ctx *ctx, weir_broadcast_state *st,
                                     const void *key, size_t key_len,
                                     const void **value, size_t *len)
{
    return WEIR_API_CALL(ctx, broadcast_get, st, key, key_len, value, len);
}
static inline int weir_broadcast_put(weir_ctx *ctx, weir_broadcast_state *st,
                                     const void *key, size_t key_len,
                                     const void *value, size_t len)
{
    return WEIR_API_CALL(ctx, broadcast_put, st, key, key_len, value, len);
}
static inline int weir_broadcast_delete(weir_ctx *ctx, weir_broadcast_state *st,
                                        const void *key, size_t key_len)
{
    return WEIR_API_CALL(ctx, broadcast_delete, st, key, key_len);
}
static inline int weir_broadcast_iter(weir_ctx *ctx, weir_broadcast_state *st,
                                      weir_map_iter_fn fn, void *arg)
{
    return WEIR_API_CALL(ctx, broadcast_iter, st, fn, arg);
}

/* Since 1.3. Thread-safe: completes an async request from any thread. The
 * host table is the one weir_plugin_entry() received (keep it in a static or
 * in the instance); ctx->api of any callback is the same table. */
static inline int weir_async_complete(const weir_host_api *api, weir_async *req,
                                      int status, const void *result,
                                      size_t len)
{
    if (api->size < offsetof(weir_host_api, async_complete) + sizeof(void *) ||
        api->async_complete == NULL)
        return WEIR_ENOTSUP;
    return api->async_complete(req, status, result, len);
}

#ifdef __cplusplus
}
#endif
#endif /* WEIR_WEIR_H */
