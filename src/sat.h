/* Saturating arithmetic for times: an injected clock may start anywhere,
 * up to UINT64_MAX, and a deadline computed as now + duration must then be
 * far, never in the past. */
#ifndef CBH_SAT_H
#define CBH_SAT_H

#include <stdint.h>

/* a + b, or UINT64_MAX when that would wrap. */
static inline uint64_t cbh_add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

#endif
