#include <string.h>

#include "alloc.h"
#include "window.h"

/* How many buckets of width_ms fit in window_ms, at most the ring size:
 * rounded down, so that the window never reaches past window_ms. */
static unsigned window_fit(uint64_t window_ms, uint64_t width_ms)
{
    uint64_t n = window_ms / width_ms;

    return n < CBH_WINDOW_BUCKETS ? (unsigned)n : CBH_WINDOW_BUCKETS;
}

/* The age up to which an outcome surely still counts, wherever it fell in
 * its bucket. */
static uint64_t window_cover(uint64_t window_ms, uint64_t width_ms)
{
    return (window_fit(window_ms, width_ms) - 1) * width_ms;
}

/* The bucket width: ceil(window_ms / 100) always fits in the ring, but
 * when it does not divide the window the rounding down of the bucket count
 * can lose almost a bucket more; floor(window_ms / 100) then often covers
 * more (60001 ms: 100 buckets of 600 ms rather than 99 of 601). */
static uint64_t window_width(uint64_t window_ms)
{
    uint64_t up = (window_ms + CBH_WINDOW_BUCKETS - 1) / CBH_WINDOW_BUCKETS;
    uint64_t down = window_ms / CBH_WINDOW_BUCKETS;

    if (down && window_cover(window_ms, down) > window_cover(window_ms, up))
        return down;
    return up;
}

void cbh_window_init(cbh_window *w, unsigned window_ms)
{
    w->width_ms = window_width(window_ms);
    w->nbuckets = window_fit(window_ms, w->width_ms);
    w->head = 0;
    w->count = 0;
    w->next = 0;
    w->outcomes = NULL;
    cbh_window_clear(w);
}

void cbh_window_init_count(cbh_window *w, unsigned n, uint8_t *ring)
{
    cbh_window_init(w, 1);
    w->count = n;
    w->outcomes = ring;
    cbh_window_clear(w);
}

uint8_t *cbh_window_ring_new(unsigned n) { return cbh_calloc(n, 1); }

void cbh_window_ring_free(uint8_t *ring) { cbh_free(ring); }

void cbh_window_clear(cbh_window *w)
{
    memset(w->ring, 0, sizeof(w->ring));
    if (w->count)
        memset(w->outcomes, 0, w->count);
    w->next = 0;
    w->calls = w->failures = w->slow = 0;
}

void cbh_window_advance(cbh_window *w, uint64_t now)
{
    uint64_t idx = now / w->width_ms;
    uint64_t i;

    if (w->count || idx <= w->head)
        return;
    /* An empty window, or a jump past its whole span, only moves the head:
     * there is nothing to expire one bucket at a time. Slow calls are
     * calls, so no calls means no slow ones; failures may come without
     * calls (a breaker that tracks only failures). */
    if (w->calls == 0 && w->failures == 0) {
        w->head = idx;
        return;
    }
    if (idx - w->head >= w->nbuckets) {
        cbh_window_clear(w);
        w->head = idx;
        return;
    }
    /* "i != idx" rather than "i <= idx": idx may be UINT64_MAX (a clock at
     * its end with 1 ms buckets), where i++ would wrap and never stop. */
    for (i = w->head; i != idx;) {
        cbh_window_bucket *bk = &w->ring[++i % w->nbuckets];

        w->calls -= bk->calls;
        w->failures -= bk->failures;
        w->slow -= bk->slow;
        bk->calls = bk->failures = bk->slow = 0;
    }
    w->head = idx;
}

/* Count mode: the newest outcome replaces the oldest once the ring is
 * full (calls == count). */
static void window_push(cbh_window *w, unsigned failures, unsigned slow)
{
    uint8_t *slot = &w->outcomes[w->next];
    uint8_t  f = (uint8_t)((failures ? CBH_WINDOW_F_FAILURE : 0) | (slow ? CBH_WINDOW_F_SLOW : 0));

    if (w->calls == w->count) {
        w->failures -= (*slot & CBH_WINDOW_F_FAILURE) != 0;
        w->slow -= (*slot & CBH_WINDOW_F_SLOW) != 0;
    } else {
        w->calls++;
    }
    *slot = f;
    w->failures += (f & CBH_WINDOW_F_FAILURE) != 0;
    w->slow += (f & CBH_WINDOW_F_SLOW) != 0;
    w->next = w->next + 1 == w->count ? 0 : w->next + 1;
}

void cbh_window_add(cbh_window *w, uint64_t now, unsigned calls, unsigned failures, unsigned slow)
{
    cbh_window_bucket *bk;

    if (w->count) {
        window_push(w, failures, slow);
        return;
    }
    cbh_window_advance(w, now);
    bk = &w->ring[w->head % w->nbuckets];
    bk->calls += calls;
    bk->failures += failures;
    bk->slow += slow;
    w->calls += calls;
    w->failures += failures;
    w->slow += slow;
}
