#include <string.h>

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
    uint64_t ms = window_ms ? window_ms : 1;

    w->width_ms = window_width(ms);
    w->nbuckets = window_fit(ms, w->width_ms);
    w->head = 0;
    cbh_window_clear(w);
}

void cbh_window_clear(cbh_window *w)
{
    memset(w->ring, 0, sizeof(w->ring));
    w->calls = w->failures = w->slow = 0;
}

void cbh_window_advance(cbh_window *w, uint64_t now)
{
    uint64_t idx = now / w->width_ms;
    uint64_t i;

    if (idx <= w->head)
        return;
    /* An empty window, or a jump past its whole span, only moves the head:
     * there is nothing to expire one bucket at a time. */
    if (w->calls == 0 && w->failures == 0 && w->slow == 0) {
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

void cbh_window_add(cbh_window *w, uint64_t now, unsigned calls, unsigned failures,
                    unsigned slow)
{
    cbh_window_bucket *bk;

    cbh_window_advance(w, now);
    bk = &w->ring[w->head % w->nbuckets];
    bk->calls += calls;
    bk->failures += failures;
    bk->slow += slow;
    w->calls += calls;
    w->failures += failures;
    w->slow += slow;
}
