/*
 * Fuzzes response header blocks (cbh_headers_parse, _dup, _build, _get)
 * and request header line validation.
 * Properties: every string of a block lies inside the block's size, a copy
 * holds the same pairs, and lookups find the first pair of a name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "headers.h"

static void check_block(const api_header *h, size_t count, size_t size)
{
    const char *lo, *hi;
    size_t      i;

    if (count == 0)
        return;
    if (!h)
        abort();
    lo = (const char *)h;
    hi = lo + size;
    for (i = 0; i < count; i++) {
        if (h[i].name < lo || h[i].name >= hi || h[i].value < lo || h[i].value >= hi)
            abort();
        if (h[i].name + strlen(h[i].name) >= hi || h[i].value + strlen(h[i].value) >= hi)
            abort();
        if (!h[i].name[0])
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    api_header *h = NULL, *d = NULL, *b = NULL;
    size_t      count = 0, hsize = 0, bsize = 0, i;
    char       *s;

    if (size > 256 * 1024)
        return 0;
    /* The block is not NUL-terminated: parse must respect len. */
    if (cbh_headers_parse((const char *)data, size, &h, &count, &hsize) == CB_OK) {
        check_block(h, count, hsize);
        if (cbh_headers_dup(h, count, hsize, &d) == CB_OK) {
            check_block(d, count, hsize);
            for (i = 0; i < count; i++)
                if (strcmp(h[i].name, d[i].name) != 0 || strcmp(h[i].value, d[i].value) != 0)
                    abort();
            for (i = 0; i < count; i++) {
                const char *v = cbh_headers_get(d, count, h[i].name);
                size_t      j;

                if (!v)
                    abort();
                for (j = 0; j < count; j++)
                    if (strcasecmp(d[j].name, h[i].name) == 0)
                        break;
                if (v != d[j].value)
                    abort();
            }
        }
        if (cbh_headers_build(h, count, &b, &bsize) == CB_OK) {
            check_block(b, count, bsize);
            for (i = 0; i < count; i++)
                if (strcmp(h[i].name, b[i].name) != 0 || strcmp(h[i].value, b[i].value) != 0)
                    abort();
        }
        cbh_free(b);
        cbh_free(d);
        cbh_free(h);
    }

    s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (cbh_header_line_valid(s)) {
        /* A valid line has a colon and no CR/LF anywhere. */
        if (!strchr(s, ':') || strpbrk(s, "\r\n"))
            abort();
        {
            size_t      n = (size_t)(strchr(s, ':') - s), len = 0;
            char       *name = malloc(n + 1);
            const char *v;

            if (name) {
                memcpy(name, s, n);
                name[n] = '\0';
                if (!cbh_header_line_is(s, name))
                    abort();
                v = cbh_header_line_value(s, name, &len);
                if (!v || v < s || v + len > s + size)
                    abort();
                free(name);
            }
        }
    }
    (void)cbh_headers_get(NULL, 0, s);
    free(s);
    return 0;
}
