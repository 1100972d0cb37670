#include "runtime/api.h"

static const weir_host_api api_host = {
    .size = sizeof(weir_host_api),
    .abi_major = WEIR_ABI_MAJOR,
    .abi_minor = WEIR_ABI_MINOR,
};

const weir_host_api *api_table(void)
{
    return &api_host;
}
