#include <time.h>

#include "cbhttp.h"

CB_EXPORT uint64_t cb_clock_monotonic_ms(void *user_data)
{
    struct timespec ts;

    (void)user_data;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
