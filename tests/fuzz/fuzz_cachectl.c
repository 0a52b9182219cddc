/*
 * Fuzzes the Cache-Control parser and the freshness arithmetic.
 *
 * Input: the whole input, NUL-terminated, is one Cache-Control value; the
 * same bytes are then read as a raw header block (after the first 4 bytes,
 * which choose the status, the heuristic flag and the clock offsets) and
 * fed to cbh_freshness_of.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cachectl.h"
#include "headers.h"

static const long statuses[] = { 200, 203, 204, 206, 300, 301, 304, 307, 308, 404,
                                 405, 410, 414, 429, 500, 501, 503, 100, 999, 0 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char         *s;
    cbh_cc        cc;
    api_header   *h = NULL;
    size_t        count = 0, hsize = 0;
    cbh_freshness fr;

    if (size > 64 * 1024)
        return 0;
    s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    memset(&cc, 0, sizeof(cc));
    cbh_cc_parse(s, &cc);
    /* Parsing again may only make it more restrictive. */
    {
        cbh_cc again = cc;

        cbh_cc_parse(s, &again);
        if (again.has_max_age != cc.has_max_age || again.max_age_s != cc.max_age_s ||
            again.no_store != cc.no_store)
            abort();
    }

    if (size >= 4) {
        long status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
        bool heuristic = data[1] & 1;
        /* A realistic clock: now, give or take, with the response up to a
         * few minutes after the request (or a little before: clocks step). */
        int64_t req = 1700000000 + (int64_t)(int8_t)data[2] * 86400;
        int64_t resp = req + (int64_t)(int8_t)data[3] * 3;

        if (cbh_headers_parse(s + 4, size - 4, &h, &count, &hsize) == CB_OK) {
            memset(&fr, 0, sizeof(fr));
            cbh_freshness_of(status, h, count, req, resp, heuristic, &fr);
            if (fr.storable && fr.lifetime_ms == 0 && !fr.has_validator)
                abort();
            if (fr.storable && fr.no_cache && !fr.has_validator)
                abort();
            memset(&cc, 0, sizeof(cc));
            cbh_cc_from_headers(h, count, &cc);
            cbh_free(h);
        }
    }
    free(s);
    return 0;
}
