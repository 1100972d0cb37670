#include "common/crash.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 0: not parsed yet, 1: nothing armed, 2: armed. */
static atomic_int crash_armed;
static pthread_once_t crash_once = PTHREAD_ONCE_INIT;
static char crash_name[64];
static atomic_long crash_left;
static atomic_int crash_attempt;

static void crash_parse(void)
{
    const char *s = getenv("WEIR_CRASH_AT");
    const char *at = getenv("WEIR_CRASH_ATTEMPT");
    int armed = 1;
    if (s && *s && (at ? atoi(at) : 0) == atomic_load(&crash_attempt)) {
        const char *colon = strchr(s, ':');
        size_t n = colon ? (size_t)(colon - s) : strlen(s);
        if (n < sizeof crash_name) {
            memcpy(crash_name, s, n);
            crash_name[n] = 0;
            long count = colon ? atol(colon + 1) : 1;
            atomic_store(&crash_left, count > 0 ? count : 1);
            armed = 2;
        }
    }
    atomic_store(&crash_armed, armed);
}

void crash_point(const char *name)
{
    int a = atomic_load_explicit(&crash_armed, memory_order_relaxed);
    if (a == 0) {
        pthread_once(&crash_once, crash_parse);
        a = atomic_load(&crash_armed);
    }
    if (a != 2 || strcmp(name, crash_name) != 0)
        return;
    if (atomic_fetch_sub(&crash_left, 1) == 1) {
        static const char msg[] = "weir: crash point reached\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        _exit(CRASH_EXIT_CODE);
    }
}

void crash_set_attempt(int attempt)
{
    atomic_store(&crash_attempt, attempt);
}
