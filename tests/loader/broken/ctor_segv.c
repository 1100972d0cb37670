/* Broken: a constructor that writes to address 8, as through a field of a
 * NULL struct pointer (SIGSEGV while dlopen() runs it; not 0 itself, which
 * UBSan would stop first in the sanitizer build). Its table would be valid;
 * it declares ctor_segv_op. */
#include <stdint.h>

#include "../test_plugin.h"

__attribute__((constructor)) static void ctor_segv(void)
{
    volatile int *volatile p = (volatile int *)(uintptr_t)8;
    *p = 1;
}

static const weir_operator op = TP_OP("ctor_segv_op");
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
