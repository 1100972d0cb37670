#include "common/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = -1;

static _Thread_local log_tap_fn log_tap;
static _Thread_local void *log_tap_arg;

void log_set_thread_tap(log_tap_fn fn, void *arg)
{
    log_tap = fn;
    log_tap_arg = fn ? arg : NULL;
}

void log_get_thread_tap(log_tap_fn *fn, void **arg)
{
    *fn = log_tap;
    *arg = log_tap_arg;
}

static weir_log_level log_level_from_env(void)
{
    const char *s = getenv("WEIR_LOG");
    if (!s)
        return WEIR_LOG_INFO;
    if (!strcasecmp(s, "error"))
        return WEIR_LOG_ERROR;
    if (!strcasecmp(s, "warn"))
        return WEIR_LOG_WARN;
    if (!strcasecmp(s, "debug"))
        return WEIR_LOG_DEBUG;
    return WEIR_LOG_INFO;
}

void log_set_level(weir_log_level level)
{
    atomic_store(&log_level, (int)level);
}

weir_log_level log_get_level(void)
{
    int l = atomic_load(&log_level);
    if (l < 0) {
        l = (int)log_level_from_env();
        atomic_store(&log_level, l);
    }
    return (weir_log_level)l;
}

static const char *log_level_name(weir_log_level level)
{
    static const char *const names[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
    return (unsigned)level < 4 ? names[level] : "?    ";
}

void log_msgv(weir_log_level level, const char *who, const char *fmt,
              va_list ap)
{
    if (log_tap) {
        char msg[2048];
        va_list cp;
        va_copy(cp, ap);
        if (vsnprintf(msg, sizeof msg, fmt, cp) >= 0)
            log_tap(log_tap_arg, level, who, msg);
        va_end(cp);
    }
    if (level > log_get_level())
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(
        line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
        tm.tm_sec, ts.tv_nsec / 1000000, log_level_name(level));
    if (who && n >= 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, "[%s] ", who);
    if (n >= 0 && (size_t)n < sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void log_msg(weir_log_level level, const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_msgv(level, who, fmt, ap);
    va_end(ap);
}
