/* Growing a heap buffer: the one rule of the library's growable buffers
 * (export.c's text, transport.c's bounded receive buffers). Each keeps its
 * own length, NUL and failure bookkeeping; only the growth is shared. */
#ifndef CBH_BUF_H
#define CBH_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "alloc.h"

/* Makes *data (*cap bytes, NULL and 0 when empty) hold at least want
 * bytes: initial bytes first, then doubling, never past limit (want <=
 * limit). Returns false, leaving *data and *cap as they were, when the
 * allocator refuses. */
static inline bool cbh_buf_reserve(char **data, size_t *cap, size_t want, size_t initial,
                                   size_t limit)
{
    size_t c = *cap ? *cap : initial;
    char  *p;

    if (want <= *cap)
        return true;
    while (c < want)
        c = c > limit / 2 ? limit : c * 2;
    if (c > limit)
        c = limit;
    p = cbh_realloc(*data, c);
    if (!p)
        return false;
    *data = p;
    *cap = c;
    return true;
}

#endif
