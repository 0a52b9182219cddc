#include <string.h>

#include "window.h"

void cbh_window_init(cbh_window *w, unsigned window_ms)
{
    uint64_t ms = window_ms ? window_ms : 1;

    w->width_ms = (ms + CBH_WINDOW_BUCKETS - 1) / CBH_WINDOW_BUCKETS;
    w->nbuckets = (unsigned)((ms + w->width_ms - 1) / w->width_ms);
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
    for (i = w->head + 1; i <= idx; i++) {
        cbh_window_bucket *bk = &w->ring[i % w->nbuckets];

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
