/*
 * Fuzzes URL handling: cbh_base_parse, cbh_url_resolve with and without a
 * base, and cbh_url_same_origin.
 *
 * Input: "BASE\nPATH". The security property checked: a path resolved
 * against a base never leaves it, i.e. every accepted resolve has exactly
 * the base's origin and starts with the base's canonical URL prefix. A
 * violation aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbhttp.h"
#include "url.h"

static void check_absolute(const char *s)
{
    cbh_url u;
    char    err[128];

    if (cbh_url_resolve(NULL, s, &u, err, sizeof(err)) == CB_OK) {
        cbh_base b;

        /* The origin key names what libcurl connects to: the rebuilt URL
         * starts with it (modulo the default port, which the key always
         * spells out) and compares same-origin with itself. */
        if (!u.url || !u.origin || u.origin_len == 0 || strlen(u.origin) < u.origin_len)
            abort();
        if (!cbh_url_same_origin(u.url, u.url))
            abort();
        /* Parsing the origin key as a base gives the same key back. */
        if (cbh_base_parse(u.origin, &b, NULL, 0) == CB_OK) {
            if (b.origin_len != u.origin_len || memcmp(b.origin, u.origin, u.origin_len) != 0)
                abort();
        }
        cbh_base_free(&b);
    }
    cbh_url_release(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char    *buf, *nl, *base_s, *path;
    cbh_base base;
    cbh_url  u;
    char     err[128];

    if (size > 64 * 1024)
        return 0;
    buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';

    nl = memchr(buf, '\n', size);
    if (nl) {
        *nl = '\0';
        base_s = buf;
        path = nl + 1;
    } else {
        base_s = buf;
        path = buf;
    }

    if (cbh_base_parse(base_s, &base, err, sizeof(err)) == CB_OK) {
        if (!base.origin || !base.prefix || !base.url_prefix ||
            strlen(base.origin) != base.origin_len ||
            strlen(base.url_prefix) != base.url_prefix_len)
            abort();
        if (cbh_url_resolve(&base, path, &u, err, sizeof(err)) == CB_OK) {
            /* The security property: the host can never change. */
            if (u.origin_len != base.origin_len ||
                memcmp(u.origin, base.origin, base.origin_len) != 0)
                abort();
            if (u.https != base.https)
                abort();
            if (strncmp(u.url, base.url_prefix, base.url_prefix_len) != 0)
                abort();
            /* What follows the prefix is the path (or its query). */
            {
                char next = u.url[base.url_prefix_len];
                if (next != '/' && next != '?' && next != '\0')
                    abort();
            }
            /* The full URL, parsed on its own, is the same origin. */
            {
                cbh_url again;

                if (cbh_url_resolve(NULL, u.url, &again, NULL, 0) == CB_OK &&
                    (again.origin_len != base.origin_len ||
                     memcmp(again.origin, base.origin, base.origin_len) != 0))
                    abort();
                cbh_url_release(&again);
            }
        }
        cbh_url_release(&u);
    }
    cbh_base_free(&base);

    check_absolute(path);
    if (nl)
        check_absolute(base_s);
    (void)cbh_url_same_origin(base_s, path);
    free(buf);
    return 0;
}
