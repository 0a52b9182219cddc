/* The breaker's rolling window: counts of calls, failures and slow calls
 * over the last window_ms, kept in a ring of time buckets. Not thread-safe:
 * the breaker calls it with its lock held.
 *
 * Granularity. Time is cut into buckets of width_ms = ceil(window_ms / 100)
 * (1 ms for windows up to 100 ms, 600 ms for the 60 s default), and the
 * window spans nbuckets = ceil(window_ms / width_ms) of them, which is
 * window_ms itself whenever width_ms divides it (every multiple of 100 ms).
 * An outcome recorded at time t is counted while
 *     floor(now / width_ms) - floor(t / width_ms) < nbuckets,
 * that is until (floor(t / width_ms) + nbuckets) * width_ms: never longer
 * than the window, and at most width_ms - 1 ms less when t is not on a bucket
 * boundary. With a fake clock the result is exact and deterministic. */
#ifndef CBH_WINDOW_H
#define CBH_WINDOW_H

#include <stdint.h>

#define CBH_WINDOW_BUCKETS 100

typedef struct cbh_window_bucket {
    uint32_t calls;
    uint32_t failures;
    uint32_t slow;
} cbh_window_bucket;

typedef struct cbh_window {
    uint64_t width_ms;
    unsigned nbuckets;
    uint64_t head;     /* absolute index (time / width_ms) of the newest bucket */
    uint64_t calls;    /* sums over the live buckets */
    uint64_t failures;
    uint64_t slow;
    cbh_window_bucket ring[CBH_WINDOW_BUCKETS];
} cbh_window;

/* Sets the geometry for window_ms (> 0) and empties the window. */
void cbh_window_init(cbh_window *w, unsigned window_ms);

/* Empties the window, keeping its geometry. */
void cbh_window_clear(cbh_window *w);

/* Drops the buckets that have left the window at now. A clock that went
 * backwards leaves the window as it is. */
void cbh_window_advance(cbh_window *w, uint64_t now);

/* Adds one outcome at now (advancing first). An outcome older than the
 * newest bucket (a clock that went backwards) goes into the newest one. */
void cbh_window_add(cbh_window *w, uint64_t now, unsigned calls, unsigned failures,
                    unsigned slow);

#endif
