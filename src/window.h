/* The breaker's rolling window: counts of calls, failures and slow calls
 * over the last window_ms, kept in a ring of time buckets. Not thread-safe:
 * the breaker calls it with its lock held.
 *
 * Granularity. Time is cut into buckets of width_ms, and the window is the
 * newest nbuckets of them, with nbuckets * width_ms <= window_ms so that
 * an outcome never counts at an age of window_ms or more. An outcome
 * recorded at time t is counted while
 *     floor(now / width_ms) - floor(t / width_ms) < nbuckets,
 * that is for an age between (nbuckets - 1) * width_ms + 1 and
 * nbuckets * width_ms, depending on where t falls in its bucket. width_ms
 * is floor(window_ms / 100) or ceil(window_ms / 100), whichever makes the
 * shorter of those ages the longer (see window_width), so that an outcome
 * leaves less than 2 * ceil(window_ms / 100) ms early. Windows up to 100 ms
 * are exact (1 ms buckets). With a fake clock the result is deterministic.
 *
 * Count mode (cbh_window_init_count): the window is instead the last n
 * outcomes added, kept one byte each in a ring; time plays no part and
 * cbh_window_advance does nothing. The sums mean the same in both modes. */
#ifndef CBH_WINDOW_H
#define CBH_WINDOW_H

#include <stdint.h>

#include "sat.h"

#define CBH_WINDOW_BUCKETS 100

typedef struct cbh_window_bucket {
    uint32_t calls;
    uint32_t failures;
    uint32_t slow;
} cbh_window_bucket;

typedef struct cbh_window {
    uint64_t          width_ms;
    unsigned          nbuckets;
    uint64_t          head;  /* absolute index (time / width_ms) of the newest bucket */
    uint64_t          calls; /* sums over the live buckets */
    uint64_t          failures;
    uint64_t          slow;
    cbh_window_bucket ring[CBH_WINDOW_BUCKETS];
    /* Count mode: count > 0 outcomes in outcomes[], the oldest (once
     * full) at next. Each byte is CBH_WINDOW_F_* bits. */
    unsigned count;
    unsigned next;
    uint8_t *outcomes;
} cbh_window;

#define CBH_WINDOW_F_FAILURE 0x1u
#define CBH_WINDOW_F_SLOW 0x2u

/* Sets the geometry for window_ms (> 0) and empties the window: time
 * mode. A count-mode ring the window had is not freed (see
 * cbh_window_free). */
void cbh_window_init(cbh_window *w, unsigned window_ms);

/* Empties the window and makes it count mode over the last n (> 0)
 * outcomes, using ring (n zeroed bytes from cbh_window_ring_new), which
 * the window then owns. */
void cbh_window_init_count(cbh_window *w, unsigned n, uint8_t *ring);

/* A zeroed ring for n (> 0) outcomes, or NULL when out of memory. */
uint8_t *cbh_window_ring_new(unsigned n);

/* Frees a count-mode ring (the window's own, or one never handed over). */
void cbh_window_ring_free(uint8_t *ring);

/* Empties the window, keeping its geometry. */
void cbh_window_clear(cbh_window *w);

/* Drops the buckets that have left the window at now. A clock that went
 * backwards leaves the window as it is. */
void cbh_window_advance(cbh_window *w, uint64_t now);

/* Adds one outcome at now (advancing first). An outcome older than the
 * newest bucket (a clock that went backwards) goes into the newest one.
 * In count mode calls must be 1: one outcome, pushing out the oldest. */
void cbh_window_add(cbh_window *w, uint64_t now, unsigned calls, unsigned failures, unsigned slow);

#endif
