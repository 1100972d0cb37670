/*
 * log.h - the host's log, one line per message on stderr:
 *   2026-11-21T07:00:00.123Z WARN  [count#1] message
 * Thread-safe (one write() per line). The level threshold comes from
 * WEIR_LOG (error, warn, info, debug; default info) or log_set_level().
 */
#ifndef WEIR_HOST_LOG_H
#define WEIR_HOST_LOG_H

#include <stdarg.h>

#include "weir/weir.h"

void log_set_level(weir_log_level level);
weir_log_level log_get_level(void);
/* `who` names the subsystem or subtask ("runtime", "count#1"); may be NULL. */
WEIR_PRINTF(3, 4)
void log_msg(weir_log_level level, const char *who, const char *fmt, ...);
void log_msgv(weir_log_level level, const char *who, const char *fmt,
              va_list ap);

/* A tap sees every message logged on the thread that installed it, at any
 * level (before the threshold applies), as one formatted line without time
 * stamp or level; the message still goes to stderr as usual. `msg` is
 * valid during the call only. The test harness (testing/harness.c)
 * captures what a plugin and the host log during its calls this way.
 * log_set_thread_tap(NULL, NULL) removes it. Thread: the calling thread's
 * own tap only. */
typedef void (*log_tap_fn)(void *arg, weir_log_level level, const char *who,
                           const char *msg);
void log_set_thread_tap(log_tap_fn fn, void *arg);
void log_get_thread_tap(log_tap_fn *fn, void **arg);

#endif
