/* The library's two small generators: splitmix64 (Steele, Lea, Flood)
 * turns a counter or an address into a well-mixed 64-bit value and seeds
 * the jitter of breakers and of retries; xorshift64 (Marsaglia) draws that
 * jitter. Fast, and good enough to spread probes and retries apart. */
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

/* Advances the xorshift64 state *s and returns the new value. A zero state
 * would stay zero forever, so it is replaced by a constant; any other state
 * never reaches zero. */
static inline uint64_t cbh_xorshift64(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

#endif
