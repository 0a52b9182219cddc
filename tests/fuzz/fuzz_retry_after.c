/*
 * Fuzzes cbh_retry_after_ms: anything a server sends in Retry-After.
 * Properties: an accepted value never exceeds a year, and a value in
 * delta-seconds does not depend on the clock.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "retry.h"

#define YEAR_MS (365ull * 24 * 3600 * 1000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char    *s;
    uint64_t ms = 0, ms2 = 0;
    int64_t  nows[] = { 0, 1700000000, 253402300799, -1, INT64_MAX / 2 };
    size_t   i;

    if (size > 4096)
        return 0;
    s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    for (i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
        if (cbh_retry_after_ms(s, nows[i], &ms)) {
            if (ms > YEAR_MS)
                abort();
            /* The same input twice gives the same answer. */
            if (!cbh_retry_after_ms(s, nows[i], &ms2) || ms2 != ms)
                abort();
        }
    }
    free(s);
    return 0;
}
