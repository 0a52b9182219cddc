/* The clock a component reads: the caller's cb_clock_fn, or
 * cb_clock_monotonic_ms (clock.c) when none was given. */
#ifndef CBH_CLOCK_H
#define CBH_CLOCK_H

#include "cbhttp.h"

/* For components that keep the function: fill the default in once. */
static inline cb_clock_fn cbh_clock_or_default(cb_clock_fn clock)
{
    return clock ? clock : cb_clock_monotonic_ms;
}

/* For components that keep the caller's config as given: read through it.
 * The default is called directly, not through a pointer. */
static inline uint64_t cbh_clock_now(cb_clock_fn clock, void *clock_data)
{
    return clock ? clock(clock_data) : cb_clock_monotonic_ms(NULL);
}

#endif
