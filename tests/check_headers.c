/* Response header blocks (parse, dup, build, edit, get), token lists and
 * request header line validation; their refusals and allocation failure. */
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <check.h>

#include "alloc.h"
#include "cbhttp.h"
#include "headers.h"

#include "helpers/failalloc.h"
#include "helpers/testutil.h"

/* True when every pointer of the block lies inside [h, h + size). */
static bool block_contained(const api_header *h, size_t count, size_t size)
{
    const char *lo = (const char *)h, *hi = lo + size;
    size_t      i;

    for (i = 0; i < count; i++) {
        if (h[i].name < lo || h[i].name >= hi || h[i].value < lo || h[i].value >= hi)
            return false;
        if (h[i].value + strlen(h[i].value) >= hi)
            return false;
    }
    return true;
}

static api_header *parse(const char *raw, size_t *count, size_t *size)
{
    api_header *h = NULL;

    ck_assert_int_eq(cbh_headers_parse(raw, strlen(raw), &h, count, size), CB_OK);
    if (*count)
        ck_assert(block_contained(h, *count, *size));
    return h;
}

START_TEST(test_parse_basic)
{
    const char *raw = "HTTP/1.1 200 OK\r\n"
                      "Content-Type: text/plain\r\n"
                      "X-Empty:\r\n"
                      "x-lower:   padded value \t \r\n"
                      "Set-Cookie: a=1\r\n"
                      "Set-Cookie: b=2\r\n"
                      "\r\n";
    size_t      count, size;
    api_header *h = parse(raw, &count, &size);

    ck_assert_uint_eq(count, 5);
    ck_assert_str_eq(h[0].name, "Content-Type");
    ck_assert_str_eq(h[0].value, "text/plain");
    ck_assert_str_eq(h[1].name, "X-Empty");
    ck_assert_str_eq(h[1].value, "");
    ck_assert_str_eq(h[2].name, "x-lower");
    ck_assert_str_eq(h[2].value, "padded value");
    ck_assert_str_eq(h[3].value, "a=1");
    ck_assert_str_eq(h[4].value, "b=2");
    /* The block is the array plus exactly its strings. */
    ck_assert_uint_eq(size, 5 * sizeof(api_header) + sizeof("Content-Type") + sizeof("text/plain") +
                                sizeof("X-Empty") + sizeof("") + sizeof("x-lower") +
                                sizeof("padded value") +
                                2 * (sizeof("Set-Cookie") + sizeof("a=1")));
    cbh_free(h);
}
END_TEST

START_TEST(test_parse_empty_and_junk)
{
    api_header *h = (api_header *)1;
    size_t      count = 9, size = 9;

    ck_assert_int_eq(cbh_headers_parse("", 0, &h, &count, &size), CB_OK);
    ck_assert_ptr_null(h);
    ck_assert_uint_eq(count, 0);
    ck_assert_uint_eq(size, 0);
    ck_assert_int_eq(cbh_headers_parse(NULL, 0, &h, &count, &size), CB_OK);
    ck_assert_ptr_null(h);
    /* Only a status line and junk: nothing. */
    h = parse("HTTP/1.1 204 No Content\r\nno colon here\r\n: empty name\r\n\r\n", &count, &size);
    ck_assert_ptr_null(h);
    ck_assert_uint_eq(count, 0);
    ck_assert_int_eq(cbh_headers_parse("x", 1, NULL, &count, &size), CB_ERR_INVALID);
    ck_assert_int_eq(cbh_headers_parse(NULL, 3, &h, &count, &size), CB_ERR_INVALID);
}
END_TEST

START_TEST(test_parse_bad_names_dropped)
{
    const char *raw = "Good: 1\r\n"
                      "Bad Name: 2\r\n"
                      "Bad(Name): 3\r\n"
                      "Space : 4\r\n"
                      "A!#$%&'*+-.^_`|~9: 5\r\n"
                      "NoColon\r\n"
                      "Last: ok"; /* no final CRLF */
    size_t      count, size;
    api_header *h = parse(raw, &count, &size);

    ck_assert_uint_eq(count, 3);
    ck_assert_str_eq(h[0].name, "Good");
    ck_assert_str_eq(h[1].name, "A!#$%&'*+-.^_`|~9");
    ck_assert_str_eq(h[1].value, "5");
    ck_assert_str_eq(h[2].name, "Last");
    ck_assert_str_eq(h[2].value, "ok");
    cbh_free(h);
}
END_TEST

/* A status line starts a new block only after the blank line that ends
 * the one before: inside a block, a line beginning "HTTP/" is a malformed
 * field (dropped), and the headers before it stay. */
START_TEST(test_parse_status_only_between_blocks)
{
    size_t      count, size;
    api_header *h = parse("HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n"
                          "HTTP/1.1 200 OK\r\nX-Before: 1\r\nHTTP/x: y\r\nX-After: 2\r\n\r\n",
                          &count, &size);

    ck_assert_uint_eq(count, 2);
    ck_assert_str_eq(h[0].name, "X-Before");
    ck_assert_str_eq(h[1].name, "X-After");
    cbh_free(h);
}
END_TEST

START_TEST(test_parse_folding)
{
    const char *raw = "HTTP/1.1 200 OK\r\n"
                      "X-Long: first\r\n"
                      "   second  \r\n"
                      "\tthird\r\n"
                      "X-Empty:\r\n"
                      "  later\r\n"
                      "X-Blank-Fold: v\r\n"
                      "   \r\n"
                      "Bad Name: x\r\n"
                      "  orphan of a dropped line\r\n"
                      "Next: n\n"; /* bare LF is fine too */
    size_t      count, size;
    api_header *h = parse(raw, &count, &size);

    ck_assert_uint_eq(count, 4);
    ck_assert_str_eq(h[0].value, "first second third");
    ck_assert_str_eq(h[1].value, "later");
    ck_assert_str_eq(h[2].value, "v");
    ck_assert_str_eq(h[3].name, "Next");
    ck_assert_str_eq(h[3].value, "n");
    cbh_free(h);
    /* A fold before any header has nothing to continue. */
    h = parse("  lonely\r\nA: b\r\n", &count, &size);
    ck_assert_uint_eq(count, 1);
    ck_assert_str_eq(h[0].value, "b");
    cbh_free(h);
}
END_TEST

START_TEST(test_parse_several_responses)
{
    /* A 100 Continue and a redirect before the final response: only the
     * last response's headers remain, even when earlier ones were larger. */
    const char *raw = "HTTP/1.1 100 Continue\r\n\r\n"
                      "HTTP/1.1 301 Moved\r\n"
                      "Location: /elsewhere/with/a/long/path/to/make/it/bigger\r\n"
                      "X-Many: 1\r\nX-Many: 2\r\nX-Many: 3\r\nX-Many: 4\r\n\r\n"
                      "HTTP/2 200\r\n"
                      "ETag: \"v1\"\r\n\r\n";
    size_t      count, size;
    api_header *h = parse(raw, &count, &size);

    ck_assert_uint_eq(count, 1);
    ck_assert_str_eq(h[0].name, "ETag");
    ck_assert_str_eq(h[0].value, "\"v1\"");
    ck_assert_uint_eq(size, sizeof(api_header) + sizeof("ETag") + sizeof("\"v1\""));
    cbh_free(h);
}
END_TEST

START_TEST(test_dup_relocates)
{
    const char *raw = "A: 1\r\nBb: two\r\nCcc: three\r\n";
    size_t      count, size, i;
    api_header *h = parse(raw, &count, &size), *d = NULL;

    ck_assert_int_eq(cbh_headers_dup(h, count, size, &d), CB_OK);
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_ne(d, h);
    ck_assert(block_contained(d, count, size));
    /* Freeing the original must leave the copy intact. */
    for (i = 0; i < count; i++)
        memset((char *)h[i].value, 'X', strlen(h[i].value));
    cbh_free(h);
    ck_assert_str_eq(d[0].name, "A");
    ck_assert_str_eq(d[0].value, "1");
    ck_assert_str_eq(d[1].value, "two");
    ck_assert_str_eq(d[2].name, "Ccc");
    ck_assert_str_eq(d[2].value, "three");
    cbh_free(d);

    d = (api_header *)1;
    ck_assert_int_eq(cbh_headers_dup(NULL, 0, 0, &d), CB_OK);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(cbh_headers_dup(NULL, 0, 0, NULL), CB_ERR_INVALID);
}
END_TEST

/* A count whose array alone would not fit in size_t is refused, not
 * wrapped into a small size that passes the check against the block. */
START_TEST(test_dup_impossible_count)
{
    const char         *raw = "A: 1\r\nB: 2\r\n";
    static const size_t counts[] = { SIZE_MAX, SIZE_MAX - 1, SIZE_MAX / sizeof(api_header) + 1,
                                     SIZE_MAX / sizeof(api_header) + 2 };
    size_t              count, size, i;
    api_header         *h = parse(raw, &count, &size), *d;

    for (i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        d = (api_header *)1;
        ck_assert_int_eq(cbh_headers_dup(h, counts[i], size, &d), CB_ERR_INVALID);
        ck_assert_ptr_null(d);
        ck_assert_int_eq(cbh_headers_dup(h, counts[i], SIZE_MAX, &d), CB_ERR_INVALID);
    }
    /* One more entry than the block holds. */
    ck_assert_int_eq(cbh_headers_dup(h, size / sizeof(api_header) + 1, size, &d), CB_ERR_INVALID);
    ck_assert_int_eq(cbh_headers_dup(h, count, size, &d), CB_OK);
    cbh_free(d);
    cbh_free(h);
}
END_TEST

START_TEST(test_build)
{
    api_header  list[] = { { "Name", "value" }, { "Other", "" } };
    api_header *b = NULL, *d = NULL;
    size_t      size = 0;

    ck_assert_int_eq(cbh_headers_build(list, 2, &b, &size), CB_OK);
    ck_assert(block_contained(b, 2, size));
    ck_assert_str_eq(b[0].name, "Name");
    ck_assert_str_eq(b[1].name, "Other");
    ck_assert_str_eq(b[1].value, "");
    ck_assert_int_eq(cbh_headers_dup(b, 2, size, &d), CB_OK);
    ck_assert_str_eq(d[0].value, "value");
    cbh_free(b);
    cbh_free(d);
    ck_assert_int_eq(cbh_headers_build(NULL, 0, &b, &size), CB_OK);
    ck_assert_ptr_null(b);
    ck_assert_uint_eq(size, 0);
}
END_TEST

START_TEST(test_get_case_insensitive)
{
    size_t      count, size;
    api_header *h = parse("Content-Type: a\r\nETag: \"x\"\r\ncontent-type: b\r\n", &count, &size);

    ck_assert_str_eq(cbh_headers_get(h, count, "content-type"), "a");
    ck_assert_str_eq(cbh_headers_get(h, count, "CONTENT-TYPE"), "a");
    ck_assert_str_eq(cbh_headers_get(h, count, "etag"), "\"x\"");
    ck_assert_ptr_null(cbh_headers_get(h, count, "Content"));
    ck_assert_ptr_null(cbh_headers_get(h, count, "Content-Type-X"));
    ck_assert_ptr_null(cbh_headers_get(NULL, 0, "a"));
    ck_assert_ptr_null(cbh_headers_get(h, count, NULL));
    cbh_free(h);
}
END_TEST

START_TEST(test_line_valid)
{
    ck_assert(cbh_header_line_valid("X-Ok: value"));
    ck_assert(cbh_header_line_valid("X-Ok:"));
    ck_assert(cbh_header_line_valid("X-Ok:\tval\tue with tab"));
    ck_assert(cbh_header_line_valid("X-Utf8: caf\xc3\xa9"));
    ck_assert(cbh_header_line_valid("a!#$%&'*+-.^_`|~0:x"));
    ck_assert(!cbh_header_line_valid(NULL));
    ck_assert(!cbh_header_line_valid(""));
    ck_assert(!cbh_header_line_valid(": no name"));
    ck_assert(!cbh_header_line_valid("NoColon"));
    ck_assert(!cbh_header_line_valid("Bad Name: x"));
    ck_assert(!cbh_header_line_valid("Bad\tName: x"));
    ck_assert(!cbh_header_line_valid("Name : x"));
    ck_assert(!cbh_header_line_valid("Bad(Name): x"));
    ck_assert(!cbh_header_line_valid("Bad\"Name\": x"));
    ck_assert(!cbh_header_line_valid("X: a\r\nInjected: yes"));
    ck_assert(!cbh_header_line_valid("X: a\nInjected: yes"));
    ck_assert(!cbh_header_line_valid("X: a\r"));
    ck_assert(!cbh_header_line_valid("X: bell\a"));
    ck_assert(!cbh_header_line_valid("X: del\x7f"));
    ck_assert(!cbh_header_line_valid("X: esc\x1b[0m"));
    ck_assert(!cbh_header_line_valid("X\r\n: v"));
    {
        /* An embedded NUL ends the C string: what follows is never sent,
         * and what precedes must itself be valid. */
        const char with_nul[] = "X: a\0\r\nY: b";

        ck_assert(cbh_header_line_valid(with_nul));
        ck_assert(!cbh_header_line_valid("X\0: a"));
    }
}
END_TEST

START_TEST(test_line_is)
{
    size_t      n;
    const char *v;

    ck_assert(cbh_header_line_is("Idempotency-Key: 1", "idempotency-key"));
    ck_assert(cbh_header_line_is("CACHE-CONTROL:no-cache", "Cache-Control"));
    ck_assert(!cbh_header_line_is("Cache-Controls: x", "Cache-Control"));
    ck_assert(!cbh_header_line_is("Cache: x", "Cache-Control"));
    ck_assert(!cbh_header_line_is("Cache-Control x", "Cache-Control"));
    ck_assert(!cbh_header_line_is(NULL, "a"));
    ck_assert(!cbh_header_line_is("a: b", NULL));
    ck_assert(!cbh_header_line_is(": b", ""));
    v = cbh_header_line_value("Accept:  text/html \t", "accept", &n);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(n, 9);
    ck_assert(strncmp(v, "text/html", n) == 0);
    ck_assert_ptr_null(cbh_header_line_value("Accept-Language: en", "Accept", &n));
}
END_TEST

static bool drop_named(const char *name, void *ctx) { return strcasecmp(name, ctx) == 0; }

START_TEST(test_edit)
{
    static const char raw[] = "A: 1\r\nDrop: x\r\nB: 2\r\ndrop: y\r\n";
    api_header       *h, *out, add[2] = { { "Age", "7" }, { "C", "" } };
    size_t            n, size, count, osize;

    ck_assert_int_eq(cbh_headers_parse(raw, strlen(raw), &h, &n, &size), CB_OK);
    ck_assert_int_eq(
        cbh_headers_edit(h, n, drop_named, (void *)"drop", add, 2, &out, &count, &osize), CB_OK);
    ck_assert_uint_eq(count, 4);
    ck_assert_str_eq(out[0].name, "A");
    ck_assert_str_eq(out[1].value, "2");
    ck_assert_str_eq(out[2].name, "Age");
    ck_assert_str_eq(out[3].value, "");
    /* The block is self-contained: it copies like any other. */
    {
        api_header *dup;

        ck_assert_int_eq(cbh_headers_dup(out, count, osize, &dup), CB_OK);
        ck_assert_str_eq(dup[2].value, "7");
        cbh_free(dup);
    }
    cbh_free(out);
    /* Keep everything, add nothing: a copy. */
    ck_assert_int_eq(cbh_headers_edit(h, n, NULL, NULL, NULL, 0, &out, &count, &osize), CB_OK);
    ck_assert_uint_eq(count, 4);
    ck_assert_str_eq(out[3].value, "y");
    cbh_free(out);
    /* Nothing left: NULL/0/0. */
    ck_assert_int_eq(cbh_headers_edit(NULL, 0, NULL, NULL, NULL, 0, &out, &count, &osize), CB_OK);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(count + osize, 0);
    ck_assert_int_eq(cbh_headers_edit(h, n, NULL, NULL, NULL, 0, NULL, &count, &osize),
                     CB_ERR_INVALID);
    cbh_free(h);
}
END_TEST

START_TEST(test_list_has)
{
    ck_assert(cbh_list_has("close, X-Foo", "x-foo", 5));
    ck_assert(cbh_list_has(" ,X-Foo ,", "X-Foo", 5));
    ck_assert(cbh_list_has("\"X-Foo\"", "X-Foo", 5));
    ck_assert(!cbh_list_has("X-Foobar", "X-Foo", 5));
    ck_assert(!cbh_list_has("X-Fo", "X-Foo", 5));
    ck_assert(!cbh_list_has("", "X", 1));
    ck_assert(!cbh_list_has("a,,b", "", 0));
    ck_assert(!cbh_list_has(NULL, "X", 1));
}
END_TEST

/* ---- edges: arguments, line ends, bytes past ASCII, allocation failure ---- */

START_TEST(test_parse_edges)
{
    api_header *h = (api_header *)1;
    size_t      count = 9, size = 9;

    /* Every output pointer is required. */
    ck_assert_int_eq(cbh_headers_parse("A: 1", 4, &h, NULL, &size), CB_ERR_INVALID);
    ck_assert_int_eq(cbh_headers_parse("A: 1", 4, &h, &count, NULL), CB_ERR_INVALID);
    /* A status line alone, or one after the headers of an earlier response:
     * the last response has no header. */
    h = parse("HTTP/1.1 200 OK\r\n", &count, &size);
    ck_assert_ptr_null(h);
    ck_assert_uint_eq(count + size, 0);
    h = parse("HTTP/1.1 100 Continue\r\nA: 1\r\n\r\nHTTP/1.1 204 No Content\r\n", &count, &size);
    ck_assert_ptr_null(h);
    ck_assert_uint_eq(count, 0);
    /* Bare LF line ends, a tab and stray CRs around a value, a byte past
     * ASCII in a name (dropped: not a tchar) and in a value (kept:
     * obs-text). */
    h = parse("A: 1\nB:\tx\t\r\r\nN\xe9: 3\nC: caf\xc3\xa9\n\n", &count, &size);
    ck_assert_uint_eq(count, 3);
    ck_assert_str_eq(h[0].name, "A");
    ck_assert_str_eq(h[0].value, "1");
    ck_assert_str_eq(h[1].name, "B");
    ck_assert_str_eq(h[1].value, "x");
    ck_assert_str_eq(h[2].name, "C");
    ck_assert_str_eq(h[2].value, "caf\xc3\xa9");
    cbh_free(h);
    ck_assert(!cbh_is_tchar(0x80));
    ck_assert(!cbh_is_tchar(0xff));
    ck_assert(!cbh_is_tchar(0x7f));
    ck_assert(cbh_is_tchar('~'));
}
END_TEST

START_TEST(test_dup_and_build_edges)
{
    static const char raw[] = "A: 1\r\nB: 2\r\n";
    api_header       *h, *d = (api_header *)1, *b = (api_header *)1;
    size_t            count, size, bsize = 9;
    api_header        no_name[] = { { "A", "1" }, { NULL, "x" } };
    api_header        no_value[] = { { "A", NULL } };

    h = parse(raw, &count, &size);
    /* Nothing to copy: NULL and CB_OK, whichever of the three says so. */
    ck_assert_int_eq(cbh_headers_dup(NULL, count, size, &d), CB_OK);
    ck_assert_ptr_null(d);
    d = (api_header *)1;
    ck_assert_int_eq(cbh_headers_dup(h, 0, size, &d), CB_OK);
    ck_assert_ptr_null(d);
    d = (api_header *)1;
    ck_assert_int_eq(cbh_headers_dup(h, count, 0, &d), CB_OK);
    ck_assert_ptr_null(d);
    /* Building: every output pointer, a list for a count, both strings of
     * every entry. */
    ck_assert_int_eq(cbh_headers_build(no_value, 1, NULL, &bsize), CB_ERR_INVALID);
    ck_assert_int_eq(cbh_headers_build(no_value, 1, &b, NULL), CB_ERR_INVALID);
    ck_assert_int_eq(cbh_headers_build(NULL, 1, &b, &bsize), CB_ERR_INVALID);
    ck_assert_int_eq(cbh_headers_build(no_name, 2, &b, &bsize), CB_ERR_INVALID);
    ck_assert_ptr_null(b);
    ck_assert_uint_eq(bsize, 0);
    ck_assert_int_eq(cbh_headers_build(no_value, 1, &b, &bsize), CB_ERR_INVALID);
    ck_assert_ptr_null(b);
    cbh_free(h);
}
END_TEST

START_TEST(test_edit_edges)
{
    api_header add[1] = { { "A", "1" } }, *out = (api_header *)1;
    size_t     count = 9, size = 9;

    ck_assert_int_eq(cbh_headers_edit(NULL, 0, NULL, NULL, add, 1, &out, NULL, &size),
                     CB_ERR_INVALID);
    ck_assert_int_eq(cbh_headers_edit(NULL, 0, NULL, NULL, add, 1, &out, &count, NULL),
                     CB_ERR_INVALID);
    /* A count without its array, on either side. */
    ck_assert_int_eq(cbh_headers_edit(NULL, 1, NULL, NULL, add, 1, &out, &count, &size),
                     CB_ERR_INVALID);
    ck_assert_int_eq(cbh_headers_edit(NULL, 0, NULL, NULL, NULL, 1, &out, &count, &size),
                     CB_ERR_INVALID);
    /* Additions alone make a block. */
    ck_assert_int_eq(cbh_headers_edit(NULL, 0, NULL, NULL, add, 1, &out, &count, &size), CB_OK);
    ck_assert_uint_eq(count, 1);
    ck_assert(block_contained(out, count, size));
    ck_assert_str_eq(out[0].value, "1");
    cbh_free(out);
}
END_TEST

START_TEST(test_list_has_edges)
{
    ck_assert(!cbh_list_has("X", NULL, 1));
    /* Whitespace before a comma, and an element that is only quotes. */
    ck_assert(cbh_list_has("a \t, b", "a", 1));
    ck_assert(!cbh_list_has("\"\", x", "", 0));
    ck_assert(!cbh_list_has("\"", "\"", 0));
    /* A quote at one end only is not a quoted token. */
    ck_assert(!cbh_list_has("\"ab", "ab", 2));
    ck_assert(!cbh_list_has("ab\"", "ab", 2));
    ck_assert(cbh_list_has("\"ab", "\"ab", 3));
    /* The same length and another token. */
    ck_assert(!cbh_list_has("abc", "abd", 3));
    /* A list ending in a separator: the empty last element matches nothing. */
    ck_assert(!cbh_list_has("a, ", "b", 1));
    ck_assert(cbh_list_has("b, ", "b", 1));
}
END_TEST

/* The value of a request line by name, trimmed; its length only when asked. */
START_TEST(test_line_value)
{
    size_t n = 99;

    const char *v = cbh_header_line_value("Range: \tbytes=0-1 ", "range", &n);

    /* The value points into the line; n ends it before the trailing blank. */
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(n, 9);
    ck_assert_int_eq(strncmp(v, "bytes=0-1", n), 0);
    ck_assert_str_eq(cbh_header_line_value("Range:x", "Range", NULL), "x");
    ck_assert_ptr_null(cbh_header_line_value("Ranges: x", "Range", &n));
    ck_assert_ptr_null(cbh_header_line_value(NULL, "Range", &n));
}
END_TEST

/* Every allocation of the block functions failing: CB_ERR_NOMEM, nothing
 * written, nothing leaked. */
START_TEST(test_out_of_memory)
{
    static const char raw[] = "A: 1\r\nB: 2\r\n";
    api_header        list[] = { { "A", "1" } }, *h, *out;
    size_t            count, size, n, osize;

    h = parse(raw, &count, &size);
    tu_alloc_install();
    tu_alloc_fail_from(1);
    out = (api_header *)1;
    ck_assert_int_eq(cbh_headers_parse(raw, strlen(raw), &out, &n, &osize), CB_ERR_NOMEM);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(cbh_headers_dup(h, count, size, &out), CB_ERR_NOMEM);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(cbh_headers_build(list, 1, &out, &osize), CB_ERR_NOMEM);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(cbh_headers_edit(h, count, NULL, NULL, list, 1, &out, &n, &osize),
                     CB_ERR_NOMEM);
    ck_assert_ptr_null(out);
    ck_assert(tu_alloc_disarm());
    tu_alloc_uninstall();
    cbh_free(h);
}
END_TEST

/* A folded line whose segment needs more room than the block has, when
 * that room cannot be allocated: false, and the block is left as it was
 * (the field keeps its value, unextended). */
START_TEST(test_acc_fold_oom)
{
    cbh_headers_acc a;
    char            fold[2048];
    const char     *name, *value;
    size_t          name_len, value_len;
    api_header     *h;
    size_t          count, size;

    memset(&a, 0, sizeof(a));
    memset(fold, 'x', sizeof(fold));
    fold[0] = ' ';
    tu_alloc_install();
    ck_assert(cbh_headers_acc_line(&a, "X-Long: start\r\n", 15));
    tu_alloc_fail_at(1);
    ck_assert(!cbh_headers_acc_line(&a, fold, sizeof(fold)));
    ck_assert(tu_alloc_disarm());
    cbh_headers_acc_last(&a, &name, &name_len, &value, &value_len);
    ck_assert_uint_eq(value_len, 5);
    ck_assert_int_eq(memcmp(value, "start", 5), 0);
    /* With memory, the same segment joins the value. */
    ck_assert(cbh_headers_acc_line(&a, fold, sizeof(fold)));
    cbh_headers_acc_last(&a, &name, &name_len, &value, &value_len);
    ck_assert_uint_eq(value_len, 5 + 1 + sizeof(fold) - 1);
    cbh_headers_acc_finish(&a, &h, &count, &size);
    ck_assert_uint_eq(count, 1);
    ck_assert_str_eq(h[0].name, "X-Long");
    ck_assert_uint_eq(strlen(h[0].value), 5 + 1 + sizeof(fold) - 1);
    cb_free(h);
    tu_alloc_uninstall();
}
END_TEST

static Suite *headers_suite(void)
{
    Suite *s = suite_create("headers");
    TCase *tc = tcase_create("headers");

    tcase_add_test(tc, test_parse_basic);
    tcase_add_test(tc, test_parse_empty_and_junk);
    tcase_add_test(tc, test_parse_bad_names_dropped);
    tcase_add_test(tc, test_parse_status_only_between_blocks);
    tcase_add_test(tc, test_parse_folding);
    tcase_add_test(tc, test_acc_fold_oom);
    tcase_add_test(tc, test_parse_several_responses);
    tcase_add_test(tc, test_dup_relocates);
    tcase_add_test(tc, test_dup_impossible_count);
    tcase_add_test(tc, test_build);
    tcase_add_test(tc, test_get_case_insensitive);
    tcase_add_test(tc, test_line_valid);
    tcase_add_test(tc, test_line_is);
    tcase_add_test(tc, test_edit);
    tcase_add_test(tc, test_list_has);
    tcase_add_test(tc, test_parse_edges);
    tcase_add_test(tc, test_dup_and_build_edges);
    tcase_add_test(tc, test_edit_edges);
    tcase_add_test(tc, test_list_has_edges);
    tcase_add_test(tc, test_line_value);
    tcase_add_test(tc, test_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(headers_suite()); }
