/*
 * Fuzzes HTTP-date parsing (IMF-fixdate, RFC 850, asctime) and formatting.
 * Properties: a parsed date formats to an IMF-fixdate that parses back to
 * the same epoch; formatting any epoch stays inside a 30-byte buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpdate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char   *s;
    int64_t epoch, again;
    char    out[30];

    if (size > 4096)
        return 0;
    s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (cbh_http_date_parse(s, &epoch)) {
        memset(out, 0, sizeof(out));
        cbh_http_date_format(epoch, out, sizeof(out));
        if (!memchr(out, '\0', sizeof(out)))
            abort();
        if (!cbh_http_date_parse(out, &again) || again != epoch)
            abort();
    }
    /* Formatting arbitrary epochs, hostile ones included (Expires
     * arithmetic may hand over anything). */
    if (size >= 8) {
        memcpy(&epoch, data, sizeof(epoch));
        cbh_http_date_format(epoch, out, sizeof(out));
        if (!memchr(out, '\0', sizeof(out)))
            abort();
        /* Within 0000..9999 the IMF-fixdate round-trips. */
        if (epoch >= -62167219200LL && epoch <= 253402300799LL) {
            if (!cbh_http_date_parse(out, &again) || again != epoch)
                abort();
        }
        cbh_http_date_format(epoch, out, 1);
        if (out[0] != '\0')
            abort();
    }
    free(s);
    return 0;
}
