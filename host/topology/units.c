/*
 * units.c - durations and sizes: parsing what users write and formatting
 * what messages show.
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "topology/topo_internal.h"

typedef struct topo_unit {
    const char *name;
    int64_t mult;
} topo_unit;

static const topo_unit topo_duration_units[] = {
    {"", 1},          {"ms", 1},          {"s", 1000},
    {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 86400 * 1000},
    {NULL, 0},
};

static const topo_unit topo_size_units[] = {
    {"", 1},
    {"B", 1},
    {"KB", 1000},
    {"kB", 1000},
    {"MB", 1000 * 1000},
    {"GB", 1000 * 1000 * 1000},
    {"TB", (int64_t)1000 * 1000 * 1000 * 1000},
    {"KiB", (int64_t)1 << 10},
    {"MiB", (int64_t)1 << 20},
    {"GiB", (int64_t)1 << 30},
    {"TiB", (int64_t)1 << 40},
    {NULL, 0},
};

/* Parses NUMBER UNIT with the unit out of `units`. `what` is "duration" or
 * "size", `example` the usage hint. */
static int topo_parse_unit(const char *s, size_t len, const topo_unit *units,
                           const char *what, const char *example, int64_t *out,
                           char **errptr)
{
    char q[TOPO_QUOTE_MAX], qu[TOPO_QUOTE_MAX];
    topo_quote(s, len, q, sizeof q);
    if (len == 0)
        return err_set(errptr, WEIR_EINVAL, "empty %s (write e.g. %s)", what,
                       example);
    if (s[0] == '-')
        return err_set(errptr, WEIR_EINVAL, "'%s': a %s cannot be negative", q,
                       what);
    size_t k = 0;
    uint64_t v = 0;
    int over = 0;
    while (k < len && s[k] >= '0' && s[k] <= '9') {
        uint64_t d = (uint64_t)(s[k] - '0');
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            over = 1;
        else
            v = v * 10 + d;
        k++;
    }
    if (k == 0)
        return err_set(errptr, WEIR_EINVAL, "'%s' is not a %s (write e.g. %s)",
                       q, what, example);
    if (k < len && s[k] == '.')
        return err_set(errptr, WEIR_EINVAL,
                       "'%s': fractions are not supported; use a smaller "
                       "unit (write e.g. %s)",
                       q, example);
    const topo_unit *u = units;
    for (; u->name; u++) {
        if (strlen(u->name) == len - k && !memcmp(u->name, s + k, len - k))
            break;
    }
    if (!u->name) {
        topo_quote(s + k, len - k, qu, sizeof qu);
        return err_set(errptr, WEIR_EINVAL,
                       "'%s': unknown %s unit '%s' (write e.g. %s)", q, what,
                       qu, example);
    }
    if (over || v > (uint64_t)(INT64_MAX / u->mult))
        return err_set(errptr, WEIR_EINVAL,
                       "'%s': %s too large (over 2^63-1 %s)", q, what,
                       units == topo_duration_units ? "ms" : "bytes");
    *out = (int64_t)v * u->mult;
    return 0;
}

int topo_parse_duration(const char *s, size_t len, int64_t *ms, char **errptr)
{
    return topo_parse_unit(s, len, topo_duration_units, "duration",
                           "250ms, 10s, 5m, 2h, 7d", ms, errptr);
}

int topo_parse_size(const char *s, size_t len, int64_t *bytes, char **errptr)
{
    return topo_parse_unit(s, len, topo_size_units, "size",
                           "512, 4KiB, 64MiB, 1GiB, 10KB, 1MB", bytes, errptr);
}

void topo_fmt_duration(int64_t ms, char *buf, size_t cap)
{
    static const topo_unit units[] = {
        {"d", 86400 * 1000}, {"h", 3600 * 1000}, {"m", 60 * 1000},
        {"s", 1000},         {"ms", 1},
    };
    if (ms == 0 || ms < 0) {
        snprintf(buf, cap, "%lldms", (long long)ms);
        return;
    }
    for (size_t k = 0; k < sizeof units / sizeof units[0]; k++) {
        if (ms % units[k].mult == 0) {
            snprintf(buf, cap, "%lld%s", (long long)(ms / units[k].mult),
                     units[k].name);
            return;
        }
    }
}

void topo_fmt_size(int64_t bytes, char *buf, size_t cap)
{
    static const topo_unit units[] = {
        {"TiB", (int64_t)1 << 40},
        {"GiB", (int64_t)1 << 30},
        {"MiB", (int64_t)1 << 20},
        {"KiB", (int64_t)1 << 10},
    };
    if (bytes > 0) {
        for (size_t k = 0; k < sizeof units / sizeof units[0]; k++) {
            if (bytes % units[k].mult == 0) {
                snprintf(buf, cap, "%lld%s", (long long)(bytes / units[k].mult),
                         units[k].name);
                return;
            }
        }
    }
    snprintf(buf, cap, "%lldB", (long long)bytes);
}
