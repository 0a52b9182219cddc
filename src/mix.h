/* splitmix64 (Steele, Lea, Flood): turns a counter or an address into a
 * well-mixed 64-bit value. Seeds the jitter of breakers and of retries. */
#ifndef CBH_MIX_H
#define CBH_MIX_H

#include <stdint.h>

static inline uint64_t cbh_splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

#endif
