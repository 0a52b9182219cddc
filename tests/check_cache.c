/* The response cache through its internal API, with a fake monotonic clock
 * and a fake wall clock: hits, expiry, revalidation, 304 merging, Vary,
 * bounds and LRU, stale-if-error, request directives, metrics, allocation
 * failures and concurrent use. */
/* cbhttp: threaded */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "alloc.h"
#include "cache.h"
#include "table.h"
#include "cbhttp.h"
#include "headers.h"
#include "httpdate.h"
#include "response.h"
#include "url.h"

#include "helpers/failalloc.h"
#include "helpers/testutil.h"

#define WALL 1700000000LL
#define DATE_NOW "Tue, 14 Nov 2023 22:13:20 GMT" /* == WALL */
#define URL "http://h:80/a"

static uint64_t now_ms = 5000;
static int64_t  wall_s = WALL;

static uint64_t fake_clock(void *ud)
{
    (void)ud;
    return now_ms;
}

static int64_t fake_wall(void *ud)
{
    (void)ud;
    return wall_s;
}

static cbh_cache *mk(const api_cache_config *cfg)
{
    cbh_cache *c;

    now_ms = 5000;
    wall_s = WALL;
    c = cbh_cache_new(cfg, fake_clock, NULL, fake_wall, NULL);
    ck_assert_ptr_nonnull(c);
    return c;
}

static void resp_make(cbh_payload *r, long status, const char *raw, const char *body)
{
    memset(r, 0, sizeof(*r));
    r->status = status;
    r->body = cbh_strdup(body);
    r->body_len = strlen(body);
    ck_assert_int_eq(
        cbh_headers_parse(raw, strlen(raw), &r->headers, &r->header_count, &r->headers_size),
        CB_OK);
}

/* Stores a response to method url (request headers req) received now. */
static void put(cbh_cache *c, const char *method, const char *url, const char *const *req,
                long status, const char *raw, const char *body)
{
    cbh_payload r;

    resp_make(&r, status, raw, body);
    ck_assert_int_eq(cbh_cache_store(c, method, url, req, NULL, &r, now_ms, now_ms, NULL), CB_OK);
    cbh_payload_free(&r);
}

/* Looks up and returns the result; *body gets a copy of a FRESH body. */
static cbh_cache_res get(cbh_cache *c, const char *method, const char *url, const char *const *req,
                         const api_cache_options *opts, cbh_cache_cond *cond, char *body,
                         size_t body_size)
{
    cbh_payload    r;
    cbh_cache_cond local;
    cbh_cache_res  res;

    memset(&r, 0, sizeof r);
    res = cbh_cache_lookup(c, method, url, req, opts, &r, cond ? cond : &local);
    if (res == CBH_CACHE_FRESH) {
        ck_assert_ptr_nonnull(r.body);
        ck_assert_uint_eq(strlen(r.body), r.body_len);
        if (body)
            snprintf(body, body_size, "%s", r.body);
    } else {
        ck_assert_ptr_null(r.body);
        ck_assert_int_eq(r.status, 0);
    }
    cbh_payload_free(&r);
    return res;
}

#define FRESH_HDRS "Date: " DATE_NOW "\r\nCache-Control: max-age=60\r\n"

START_TEST(test_fresh_hit)
{
    cbh_cache     *c = mk(NULL);
    cbh_payload    r;
    cbh_cache_cond cond;
    char           body[64];

    put(c, "GET", URL, NULL, 200, FRESH_HDRS "Content-Type: text/plain\r\n", "hello");
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(cbh_cache_lookup(c, "GET", URL, NULL, NULL, &r, &cond), CBH_CACHE_FRESH);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "hello");
    ck_assert_uint_eq(r.body_len, 5);
    /* The stored three and the Age the cache computes (RFC 9111 4.2.3). */
    ck_assert_uint_eq(r.header_count, 4);
    ck_assert_str_eq(cbh_headers_get(r.headers, r.header_count, "Age"), "0");
    ck_assert_str_eq(cbh_headers_get(r.headers, r.header_count, "content-type"), "text/plain");
    ck_assert_uint_gt(r.headers_size, 0);
    /* The copy is the caller's: a second lookup gets its own. */
    cbh_payload_free(&r);
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, body, sizeof body), CBH_CACHE_FRESH);
    ck_assert_str_eq(body, "hello");
    /* Other URLs, methods and NULL arguments miss. */
    ck_assert_int_eq(get(c, "GET", URL "x", NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "GET", "http://h:80/A", NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "POST", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(NULL, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(cbh_cache_lookup(c, "GET", URL, NULL, NULL, NULL, &cond), CBH_CACHE_MISS);
    /* POST responses are never stored. */
    put(c, "POST", URL "p", NULL, 200, FRESH_HDRS, "x");
    ck_assert_int_eq(get(c, "GET", URL "p", NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_expiry_gives_stale_with_cond)
{
    cbh_cache     *c = mk(NULL);
    cbh_cache_cond cond;

    put(c, "GET", URL, NULL, 200,
        FRESH_HDRS "ETag: W/\"abc\"\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n", "b");
    now_ms += 59999;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_str_eq(cond.if_none_match, "");
    now_ms += 1;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    ck_assert_str_eq(cond.if_none_match, "If-None-Match: W/\"abc\"");
    ck_assert_str_eq(cond.if_modified_since, "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT");
    /* Only an ETag, or only a Last-Modified. */
    put(c, "GET", URL "e", NULL, 200, "Cache-Control: max-age=0\r\nETag: \"x\"\r\n", "b");
    ck_assert_int_eq(get(c, "GET", URL "e", NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    ck_assert_str_eq(cond.if_none_match, "If-None-Match: \"x\"");
    ck_assert_str_eq(cond.if_modified_since, "");
    put(c, "GET", URL "l", NULL, 200, "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n", "b");
    ck_assert_int_eq(get(c, "GET", URL "l", NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    ck_assert_str_eq(cond.if_none_match, "");
    ck_assert_str_eq(cond.if_modified_since, "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT");
    /* Without somewhere to put the validators there is no STALE. */
    {
        cbh_payload r = { 0 };

        ck_assert_int_eq(cbh_cache_lookup(c, "GET", URL, NULL, NULL, &r, NULL), CBH_CACHE_MISS);
    }
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_age_header_and_date)
{
    cbh_cache *c = mk(NULL);

    /* Age: 50 of 60 s already used up. */
    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=60\r\nAge: 50\r\nETag: \"e\"\r\n", "b");
    now_ms += 9999;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    now_ms += 1;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    /* A Date 30 s behind our wall clock: apparent age 30 s. */
    put(c, "GET", URL "d", NULL, 200,
        "Date: Tue, 14 Nov 2023 22:12:50 GMT\r\nCache-Control: max-age=40\r\nETag: \"e\"\r\n", "b");
    now_ms += 9999;
    ck_assert_int_eq(get(c, "GET", URL "d", NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    now_ms += 1;
    ck_assert_int_eq(get(c, "GET", URL "d", NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    /* Expires - Date sets the lifetime whatever the wall clock says. */
    wall_s = WALL + 1000;
    put(c, "GET", URL "x", NULL, 200,
        "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\nExpires: Tue, 14 Nov 2023 22:13:30 GMT\r\n", "b");
    /* ...but it arrived 1000 s old by our clock: already stale, and no
     * validator, so a miss. */
    ck_assert_int_eq(get(c, "GET", URL "x", NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_no_validator_miss_but_kept)
{
    cbh_cache        *c = mk(NULL);
    api_cache_options opts = { .max_stale_ms = 60000 };
    api_cache_metrics m;
    cbh_payload       r = { 0 };

    put(c, "GET", URL, NULL, 200, FRESH_HDRS, "old");
    now_ms += 61000;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 1);
    ck_assert(cbh_cache_serve_stale(c, "GET", URL, NULL, &opts, CB_ERR_CONNECT, &r));
    ck_assert_str_eq(r.body, "old");
    ck_assert_int_eq(r.status, 200);
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_no_store_not_stored)
{
    cbh_cache        *c = mk(NULL);
    api_cache_metrics m;

    put(c, "GET", URL, NULL, 200, "Cache-Control: no-store, max-age=60\r\nETag: \"e\"\r\n", "b");
    put(c, "GET", URL "2", NULL, 200, "Cache-Control: max-age=60\r\nVary: *\r\n", "b");
    put(c, "GET", URL "3", NULL, 200, "Content-Type: text/plain\r\n", "no freshness");
    put(c, "GET", URL "4", NULL, 500, "ETag: \"e\"\r\n", "err without freshness");
    put(c, "GET", URL "5", NULL, 206, FRESH_HDRS, "part");
    put(c, "GET", URL "6", NULL, 302, "ETag: \"e\"\r\n", "redirect without freshness");
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 0);
    ck_assert_uint_eq(m.stores, 0);
    ck_assert_uint_eq(m.bytes, 0);
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    /* Statuses storable with explicit freshness. */
    put(c, "GET", URL "7", NULL, 302, FRESH_HDRS "Location: /x\r\n", "");
    put(c, "GET", URL "8", NULL, 404, "ETag: \"e\"\r\n", "not found");
    ck_assert_int_eq(get(c, "GET", URL "7", NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL "8", NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_no_cache_always_stale)
{
    cbh_cache     *c = mk(NULL);
    cbh_cache_cond cond;

    put(c, "GET", URL, NULL, 200, "Cache-Control: no-cache, max-age=600\r\nETag: \"n\"\r\n", "b");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    ck_assert_str_eq(cond.if_none_match, "If-None-Match: \"n\"");
    now_ms += 1000;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_serve_stale_rules)
{
    cbh_cache        *c = mk(NULL);
    api_cache_options none = { 0 }, five = { .max_stale_ms = 5000 }, bypass = { .bypass = true };
    cbh_payload       r = { 0 };

    /* no-cache forbids standing in, whatever the option; must-revalidate
     * once stale. */
    put(c, "GET", URL "m", NULL, 200,
        "Cache-Control: max-age=10, must-revalidate, stale-if-error=100\r\n", "m");
    put(c, "GET", URL "n", NULL, 200, "Cache-Control: no-cache\r\nETag: \"n\"\r\n", "n");
    ck_assert(!cbh_cache_serve_stale(c, "GET", URL "n", NULL, &five, CB_ERR_TIMEOUT, &r));
    ck_assert_ptr_null(r.body);
    ck_assert(cbh_cache_serve_stale(c, "GET", URL "m", NULL, &five, CB_ERR_TIMEOUT, &r));
    cbh_payload_free(&r);
    now_ms += 10001;
    ck_assert(!cbh_cache_serve_stale(c, "GET", URL "m", NULL, &five, CB_ERR_TIMEOUT, &r));
    ck_assert_ptr_null(r.body);

    /* stale-if-error from the response: 10 s fresh + 30 s. */
    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=10, stale-if-error=30\r\n", "s");
    /* Still fresh: served too (the call failed anyway). */
    ck_assert(cbh_cache_serve_stale(c, "GET", URL, NULL, NULL, CB_ERR_CIRCUIT_OPEN, &r));
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "s");
    cbh_payload_free(&r);
    now_ms += 40000;
    ck_assert(cbh_cache_serve_stale(c, "GET", URL, NULL, &none, CB_ERR_TIMEOUT, &r));
    ck_assert_str_eq(r.body, "s");
    cbh_payload_free(&r);
    ck_assert(!cbh_cache_serve_stale(c, "GET", URL, NULL, &bypass, CB_ERR_TIMEOUT, &r));
    now_ms += 1;
    ck_assert(!cbh_cache_serve_stale(c, "GET", URL, NULL, &none, CB_ERR_TIMEOUT, &r));
    ck_assert(!cbh_cache_serve_stale(c, "GET", URL, NULL, &five, CB_ERR_TIMEOUT, &r));
    /* The larger of the two windows counts. */
    {
        api_cache_options big = { .max_stale_ms = 30001 };

        ck_assert(cbh_cache_serve_stale(c, "GET", URL, NULL, &big, CB_ERR_TIMEOUT, &r));
        cbh_payload_free(&r);
    }

    /* max_stale_ms alone. */
    put(c, "GET", URL "o", NULL, 200, "Cache-Control: max-age=10\r\n", "o");
    now_ms += 15000;
    ck_assert(cbh_cache_serve_stale(c, "GET", URL "o", NULL, &five, CB_ERR_HTTP, &r));
    ck_assert_str_eq(r.body, "o");
    cbh_payload_free(&r);
    ck_assert(!cbh_cache_serve_stale(c, "GET", URL "o", NULL, &none, CB_ERR_HTTP, &r));
    now_ms += 1;
    ck_assert(!cbh_cache_serve_stale(c, "GET", URL "o", NULL, &five, CB_ERR_HTTP, &r));
    ck_assert(!cbh_cache_serve_stale(c, "GET", URL "none", NULL, &five, CB_ERR_HTTP, &r));
    ck_assert(!cbh_cache_serve_stale(c, "POST", URL "o", NULL, &five, CB_ERR_HTTP, &r));
    ck_assert_ptr_null(r.body);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_serve_stale_replaces_payload)
{
    cbh_cache  *c = mk(NULL);
    cbh_payload r;

    put(c, "GET", URL, NULL, 200, FRESH_HDRS, "cached");
    /* A failed attempt's 503 payload is replaced (and freed). */
    resp_make(&r, 503, "Retry-After: 1\r\n", "unavailable");
    ck_assert(cbh_cache_serve_stale(c, "GET", URL, NULL, NULL, CB_ERR_HTTP, &r));
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "cached");
    ck_assert_ptr_null(cbh_headers_get(r.headers, r.header_count, "Retry-After"));
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_304_merge_and_refresh)
{
    cbh_cache     *c = mk(NULL);
    cbh_payload    r;
    cbh_cache_cond cond;
    bool           refreshed;
    char           body[32];

    put(c, "GET", URL, NULL, 200,
        "Date: " DATE_NOW "\r\nCache-Control: max-age=10\r\nETag: \"v1\"\r\n"
        "Content-Length: 5\r\nContent-Encoding: identity\r\nX-Old: a\r\nX-Both: old\r\n"
        "X-Both: old2\r\n",
        "hello");
    now_ms += 20000;
    wall_s += 20;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);

    resp_make(&r, 304,
              "HTTP/1.1 304 Not Modified\r\nDate: Tue, 14 Nov 2023 22:13:40 GMT\r\n"
              "Cache-Control: max-age=100\r\nETag: \"v1\"\r\nContent-Length: 0\r\n"
              "Content-Encoding: gzip\r\nX-Both: new\r\nX-New: b\r\n",
              "");
    ck_assert_int_eq(
        cbh_cache_store(c, "GET", URL, NULL, &cond, &r, now_ms - 5, now_ms, &refreshed), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "hello");
    ck_assert_uint_eq(r.body_len, 5);
    ck_assert(refreshed);
    ck_assert_str_eq(cbh_headers_get(r.headers, r.header_count, "X-Old"), "a");
    ck_assert_str_eq(cbh_headers_get(r.headers, r.header_count, "X-New"), "b");
    ck_assert_str_eq(cbh_headers_get(r.headers, r.header_count, "X-Both"), "new");
    ck_assert_str_eq(cbh_headers_get(r.headers, r.header_count, "Content-Length"), "5");
    ck_assert_str_eq(cbh_headers_get(r.headers, r.header_count, "Content-Encoding"), "identity");
    ck_assert_str_eq(cbh_headers_get(r.headers, r.header_count, "Cache-Control"), "max-age=100");
    ck_assert_str_eq(cbh_headers_get(r.headers, r.header_count, "Date"),
                     "Tue, 14 Nov 2023 22:13:40 GMT");
    {
        /* X-Both appears once: the 304's value replaced both old ones. */
        size_t i, n = 0;

        for (i = 0; i < r.header_count; i++)
            n += strcmp(r.headers[i].name, "X-Both") == 0;
        ck_assert_uint_eq(n, 1);
    }
    cbh_payload_free(&r);
    /* Fresh again for the new lifetime, age reset. */
    now_ms += 99999;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, body, sizeof body), CBH_CACHE_FRESH);
    ck_assert_str_eq(body, "hello");
    now_ms += 1;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);

    /* A 304 with nothing stored stays a 304. */
    resp_make(&r, 304, "ETag: \"zz\"\r\n", "");
    ck_assert_int_eq(
        cbh_cache_store(c, "GET", URL "other", NULL, NULL, &r, now_ms, now_ms, &refreshed), CB_OK);
    ck_assert_int_eq(r.status, 304);
    ck_assert(!refreshed);
    cbh_payload_free(&r);

    /* A 304 saying no-store serves the entry once and drops it. */
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    resp_make(&r, 304, "Cache-Control: no-store\r\n", "");
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL, NULL, &cond, &r, now_ms, now_ms, &refreshed),
                     CB_OK);
    ck_assert(refreshed);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "hello");
    cbh_payload_free(&r);
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_free(c);
}
END_TEST

/* ---- A 304 only refreshes the version it validates ---------------------------- */

#define LM1 "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
#define LM2 "Last-Modified: Sun, 06 Nov 1994 08:49:38 GMT\r\n"

typedef struct replaced_case {
    const char *v1, *v2; /* validator headers of the two versions */
    const char *h304;    /* validator headers of the 304 */
    bool        refresh; /* the 304 refreshes version 2's entry */
} replaced_case;

static const replaced_case replaced_cases[] = {
    /* The 304 confirms version 1, which is no longer stored. */
    { "ETag: \"v1\"\r\n", "ETag: \"v2\"\r\n", "ETag: \"v1\"\r\n", false },
    { "ETag: \"v1\"\r\n", "ETag: \"v2\"\r\n", "ETag: W/\"v1\"\r\n", false },
    { "ETag: W/\"v1\"\r\n", "ETag: W/\"v2\"\r\n", "ETag: W/\"v1\"\r\n", false },
    { LM1, LM2, LM1, false },
    /* Without a validator of its own it confirms what the request sent. */
    { "ETag: \"v1\"\r\n", "ETag: \"v2\"\r\n", "", false },
    { LM1, LM2, "", false },
    { "ETag: \"v1\"\r\n" LM1, "ETag: \"v2\"\r\n" LM1, LM1, false }, /* same second */
    /* Version 2 lacks the validator sent, or has a longer one, or lacks
     * the one the 304 carries. */
    { "ETag: \"v1\"\r\n", LM1, "", false },
    { "ETag: \"v1\"\r\n", "ETag: \"v22\"\r\n", "", false },
    { LM1, LM2, "ETag: \"v1\"\r\n", false },
    { "ETag: \"v1\"\r\n" LM1, "ETag: \"v1\"\r\n" LM2, "", false },
    { "ETag: \"v1\"\r\n", "ETag: \"v2\"\r\n", LM1, false },
    /* A strong ETag is compared strongly. */
    { "ETag: \"v1\"\r\n", "ETag: W/\"v2\"\r\n", "ETag: \"v2\"\r\n", false },
    /* The 304 names version 2 itself: that is the entry it refreshes. */
    { "ETag: \"v1\"\r\n", "ETag: \"v2\"\r\n", "ETag: \"v2\"\r\n", true },
    { "ETag: \"v1\"\r\n", "ETag: \"v2\"\r\n", "ETag: W/\"v2\"\r\n", true },
    { "ETag: \"v1\"\r\n", "ETag: W/\"v2\"\r\n", "ETag: W/\"v2\"\r\n", true },
};

/* The interleaving of two threads, exactly: A looks up version 1 and sends
 * its validators; B stores version 2; A's 304 arrives. */
START_TEST(test_304_for_replaced_version)
{
    const replaced_case *t = &replaced_cases[_i];
    api_cache_options    any = { .max_stale_ms = 600000 };
    cbh_cache           *c = mk(NULL);
    cbh_cache_cond       cond_a;
    cbh_payload          r;
    bool                 refreshed;
    char                 hdrs[256];

    snprintf(hdrs, sizeof hdrs, "Cache-Control: max-age=0\r\n%s", t->v1);
    put(c, "GET", URL, NULL, 200, hdrs, "one");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond_a, NULL, 0), CBH_CACHE_STALE);
    snprintf(hdrs, sizeof hdrs, "Cache-Control: max-age=0\r\n%s", t->v2);
    put(c, "GET", URL, NULL, 200, hdrs, "two");

    snprintf(hdrs, sizeof hdrs, "Cache-Control: max-age=60\r\n%s", t->h304);
    resp_make(&r, 304, hdrs, "");
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL, NULL, &cond_a, &r, now_ms, now_ms, &refreshed),
                     CB_OK);
    if (t->refresh) {
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(r.body, "two");
        ck_assert(refreshed);
        cbh_payload_free(&r);
        ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    } else {
        /* Left for the caller to ask again; version 2 stays as stored. */
        ck_assert_int_eq(r.status, 304);
        ck_assert(!refreshed);
        cbh_payload_free(&r);
        ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
        ck_assert(cbh_cache_serve_stale(c, "GET", URL, NULL, &any, CB_ERR_TIMEOUT, &r));
        ck_assert_str_eq(r.body, "two");
        ck_assert_str_eq(cbh_headers_get(r.headers, r.header_count, "Cache-Control"), "max-age=0");
        cbh_payload_free(&r);
    }
    cbh_cache_free(c);
}
END_TEST

/* A 304 to a request the cache did not make conditional (the caller sent
 * its own validators) refreshes only an entry without validators when it
 * carries none itself (RFC 9111 4.3.4, third rule). */
START_TEST(test_304_without_cond)
{
    cbh_cache  *c = mk(NULL);
    cbh_payload r;

    put(c, "GET", URL "n", NULL, 200, FRESH_HDRS, "none");
    put(c, "GET", URL "e", NULL, 200, FRESH_HDRS "ETag: \"e\"\r\n", "etag");
    resp_make(&r, 304, "Cache-Control: max-age=100\r\n", "");
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL "n", NULL, NULL, &r, now_ms, now_ms, NULL),
                     CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "none");
    cbh_payload_free(&r);
    resp_make(&r, 304, "Cache-Control: max-age=100\r\n", "");
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL "e", NULL, NULL, &r, now_ms, now_ms, NULL),
                     CB_OK);
    ck_assert_int_eq(r.status, 304);
    cbh_payload_free(&r);
    /* With its ETag it is that entry's, whoever sent the validators. */
    resp_make(&r, 304, "Cache-Control: max-age=100\r\nETag: \"e\"\r\n", "");
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL "e", NULL, NULL, &r, now_ms, now_ms, NULL),
                     CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "etag");
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

/* When several stored variants suit a request, the 304 refreshes the one
 * whose validators it confirms, not merely the newest. */
START_TEST(test_304_picks_validated_variant)
{
    cbh_cache     *c = mk(NULL);
    const char    *by_accept[] = { "Accept: a", NULL };
    const char    *by_x[] = { "X-B: b", NULL };
    const char    *both[] = { "Accept: a", "X-B: b", NULL };
    cbh_cache_cond cond;
    cbh_payload    r;

    put(c, "GET", URL, by_accept, 200,
        "Cache-Control: max-age=0\r\nETag: \"a\"\r\nVary: Accept\r\n", "by-accept");
    ck_assert_int_eq(get(c, "GET", URL, both, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    ck_assert_str_eq(cond.if_none_match, "If-None-Match: \"a\"");
    /* Meanwhile a variant that suits the request too, and is newer. */
    put(c, "GET", URL, by_x, 200, "Cache-Control: max-age=0\r\nETag: \"b\"\r\nVary: X-B\r\n",
        "by-x-b");
    resp_make(&r, 304, "Cache-Control: max-age=60\r\nETag: \"a\"\r\n", "");
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL, both, &cond, &r, now_ms, now_ms, NULL), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "by-accept");
    ck_assert_str_eq(cbh_headers_get(r.headers, r.header_count, "ETag"), "\"a\"");
    cbh_payload_free(&r);
    ck_assert_int_eq(get(c, "GET", URL, by_accept, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL, by_x, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_vary_variants)
{
    cbh_cache        *c = mk(NULL);
    const char       *en[] = { "Accept-Language: en", "X-Other: 1", NULL };
    const char       *en2[] = { "accept-language:   en  ", NULL };
    const char       *fr[] = { "Accept-Language: fr", NULL };
    const char       *de[] = { "Accept-Language: de", NULL };
    const char       *empty[] = { "Accept-Language:", NULL };
    const char       *both[] = { "Accept-Language: en", "Accept: text/html", NULL };
    char              body[32];
    api_cache_metrics m;

    put(c, "GET", URL, en, 200, FRESH_HDRS "Vary: Accept-Language\r\n", "EN");
    put(c, "GET", URL, fr, 200, FRESH_HDRS "vary: accept-language\r\n", "FR");
    ck_assert_int_eq(get(c, "GET", URL, en, NULL, NULL, body, sizeof body), CBH_CACHE_FRESH);
    ck_assert_str_eq(body, "EN");
    ck_assert_int_eq(get(c, "GET", URL, en2, NULL, NULL, body, sizeof body), CBH_CACHE_FRESH);
    ck_assert_str_eq(body, "EN");
    ck_assert_int_eq(get(c, "GET", URL, fr, NULL, NULL, body, sizeof body), CBH_CACHE_FRESH);
    ck_assert_str_eq(body, "FR");
    ck_assert_int_eq(get(c, "GET", URL, de, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "GET", URL, empty, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    /* Absent matches absent. */
    put(c, "GET", URL, NULL, 200, FRESH_HDRS "Vary: Accept-Language\r\n", "NONE");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, body, sizeof body), CBH_CACHE_FRESH);
    ck_assert_str_eq(body, "NONE");
    /* Several names, in one header or several. */
    put(c, "GET", URL "2", both, 200,
        FRESH_HDRS "Vary: Accept-Language, Accept\r\nVary: X-Absent\r\n", "B");
    ck_assert_int_eq(get(c, "GET", URL "2", both, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL "2", en, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    /* A new response for the same variant replaces the old one. */
    put(c, "GET", URL, fr, 200, FRESH_HDRS "Vary: Accept-Language\r\n", "FR2");
    ck_assert_int_eq(get(c, "GET", URL, fr, NULL, NULL, body, sizeof body), CBH_CACHE_FRESH);
    ck_assert_str_eq(body, "FR2");
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 4);
    /* Vary: * is never stored and does not disturb the others. */
    put(c, "GET", URL, de, 200, FRESH_HDRS "Vary: *\r\n", "STAR");
    ck_assert_int_eq(get(c, "GET", URL, de, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "GET", URL, en, NULL, NULL, body, sizeof body), CBH_CACHE_FRESH);
    ck_assert_str_eq(body, "EN");
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_variants_bounded_per_url)
{
    cbh_cache        *c = mk(NULL);
    api_cache_metrics m;
    char              line[64];
    const char       *req[] = { line, NULL };
    int               i;

    for (i = 0; i < 40; i++) {
        snprintf(line, sizeof line, "X-V: %d", i);
        put(c, "GET", URL, req, 200, FRESH_HDRS "Vary: X-V\r\n", "v");
    }
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 16);
    ck_assert_uint_eq(m.evictions, 24);
    /* The newest survive. */
    ck_assert_int_eq(get(c, "GET", URL, req, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    snprintf(line, sizeof line, "X-V: 0");
    ck_assert_int_eq(get(c, "GET", URL, req, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_head)
{
    cbh_cache     *c = mk(NULL);
    cbh_payload    r = { 0 };
    cbh_cache_cond cond;

    /* HEAD is served from the GET entry, without the body. */
    put(c, "GET", URL, NULL, 200, FRESH_HDRS "X-Kind: get\r\nETag: \"g\"\r\n", "body");
    ck_assert_int_eq(cbh_cache_lookup(c, "HEAD", URL, NULL, NULL, &r, &cond), CBH_CACHE_FRESH);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "");
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_str_eq(cbh_headers_get(r.headers, r.header_count, "X-Kind"), "get");
    cbh_payload_free(&r);
    /* A stored HEAD response is preferred for HEAD, never used for GET. */
    put(c, "HEAD", URL, NULL, 200, FRESH_HDRS "X-Kind: head\r\n", "ignored");
    ck_assert_int_eq(cbh_cache_lookup(c, "HEAD", URL, NULL, NULL, &r, &cond), CBH_CACHE_FRESH);
    ck_assert_str_eq(cbh_headers_get(r.headers, r.header_count, "X-Kind"), "head");
    ck_assert_str_eq(r.body, "");
    cbh_payload_free(&r);
    put(c, "HEAD", URL "h", NULL, 200, FRESH_HDRS, "");
    ck_assert_int_eq(get(c, "GET", URL "h", NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "HEAD", URL "h", NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    cbh_cache_invalidate(c, URL "h");
    ck_assert_int_eq(get(c, "HEAD", URL "h", NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_head_revalidates_get_entry)
{
    cbh_cache     *c = mk(NULL);
    cbh_payload    r;
    cbh_cache_cond cond;
    bool           refreshed;

    put(c, "GET", URL, NULL, 200, FRESH_HDRS "ETag: \"g\"\r\n", "body");
    now_ms += 61000;
    ck_assert_int_eq(get(c, "HEAD", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    ck_assert_str_eq(cond.if_none_match, "If-None-Match: \"g\"");
    resp_make(&r, 304, "Cache-Control: max-age=60\r\n", "");
    ck_assert_int_eq(cbh_cache_store(c, "HEAD", URL, NULL, &cond, &r, now_ms, now_ms, &refreshed),
                     CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "");
    ck_assert(refreshed);
    cbh_payload_free(&r);
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_new_answer_supersedes)
{
    cbh_cache        *c = mk(NULL);
    api_cache_options reval = { .revalidate = true };

    put(c, "GET", URL, NULL, 200, FRESH_HDRS, "v1");
    ck_assert_int_eq(get(c, "GET", URL, NULL, &reval, NULL, NULL, 0), CBH_CACHE_MISS);
    /* A 5xx keeps the entry (for stale-if-error)... */
    put(c, "GET", URL, NULL, 503, "", "down");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    /* ...a new final answer that may not be stored drops it. */
    put(c, "GET", URL, NULL, 200, "Cache-Control: no-store\r\n", "v2");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    put(c, "GET", URL, NULL, 200, FRESH_HDRS, "v3");
    put(c, "GET", URL, NULL, 404, "", "gone");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_invalidate)
{
    cbh_cache        *c = mk(NULL);
    const char       *en[] = { "Accept-Language: en", NULL };
    api_cache_metrics m;

    put(c, "GET", URL, NULL, 200, FRESH_HDRS "Vary: Accept-Language\r\n", "a");
    put(c, "GET", URL, en, 200, FRESH_HDRS "Vary: Accept-Language\r\n", "b");
    put(c, "HEAD", URL, NULL, 200, FRESH_HDRS, "");
    put(c, "GET", URL "/keep", NULL, 200, FRESH_HDRS, "k");
    cbh_cache_invalidate(c, URL);
    cbh_cache_invalidate(c, URL "/nothing");
    cbh_cache_invalidate(c, NULL);
    cbh_cache_invalidate(NULL, URL);
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "GET", URL, en, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "HEAD", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "GET", URL "/keep", NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.invalidations, 3);
    ck_assert_uint_eq(m.entries, 1);
    ck_assert_uint_eq(m.stores, 4);
    /* Storing again after invalidation works. */
    put(c, "GET", URL, NULL, 200, FRESH_HDRS, "again");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    cbh_cache_clear(c);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 0);
    ck_assert_uint_eq(m.bytes, 0);
    ck_assert_int_eq(get(c, "GET", URL "/keep", NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_clear(NULL);
    cbh_cache_free(c);
    cbh_cache_free(NULL);
}
END_TEST

START_TEST(test_lru_by_entries)
{
    api_cache_config  cfg = { .max_entries = 3 };
    cbh_cache        *c = mk(&cfg);
    api_cache_metrics m;

    put(c, "GET", URL "1", NULL, 200, FRESH_HDRS, "1");
    put(c, "GET", URL "2", NULL, 200, FRESH_HDRS, "2");
    put(c, "GET", URL "3", NULL, 200, FRESH_HDRS, "3");
    /* Using 1 makes 2 the least recently used. */
    ck_assert_int_eq(get(c, "GET", URL "1", NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    put(c, "GET", URL "4", NULL, 200, FRESH_HDRS, "4");
    ck_assert_int_eq(get(c, "GET", URL "2", NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "GET", URL "1", NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL "3", NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL "4", NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    put(c, "GET", URL "5", NULL, 200, FRESH_HDRS, "5");
    ck_assert_int_eq(get(c, "GET", URL "1", NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 3);
    ck_assert_uint_eq(m.evictions, 2);
    ck_assert_uint_eq(m.stores, 5);
    ck_assert_uint_eq(m.max_entries, 3);
    cbh_cache_free(c);
}
END_TEST

/* The bytes an entry counts: body + header block + URL (no Vary here). */
static size_t entry_bytes(const char *raw, const char *body, const char *url)
{
    api_header *h;
    size_t      n, size;

    ck_assert_int_eq(cbh_headers_parse(raw, strlen(raw), &h, &n, &size), CB_OK);
    cbh_free(h);
    return strlen(body) + size + strlen(url);
}

START_TEST(test_lru_by_bytes)
{
    char              body[1001];
    size_t            one;
    api_cache_config  cfg = { 0 };
    cbh_cache        *c;
    api_cache_metrics m;

    memset(body, 'x', 1000);
    body[1000] = '\0';
    one = entry_bytes(FRESH_HDRS, body, URL "1");
    cfg.max_bytes = 2 * one + one / 2; /* room for two entries */
    c = mk(&cfg);
    put(c, "GET", URL "1", NULL, 200, FRESH_HDRS, body);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.bytes, one);
    put(c, "GET", URL "2", NULL, 200, FRESH_HDRS, body);
    ck_assert_int_eq(get(c, "GET", URL "1", NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    put(c, "GET", URL "3", NULL, 200, FRESH_HDRS, body);
    ck_assert_int_eq(get(c, "GET", URL "2", NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "GET", URL "1", NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL "3", NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 2);
    ck_assert_uint_eq(m.bytes, 2 * one);
    ck_assert_uint_eq(m.evictions, 1);
    ck_assert_uint_eq(m.max_bytes, cfg.max_bytes);
    /* One entry larger than everything else together evicts them all. */
    {
        char big[2200];

        memset(big, 'y', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        put(c, "GET", URL "4", NULL, 200, FRESH_HDRS, big);
        cbh_cache_metrics(c, &m);
        ck_assert_uint_eq(m.entries, 1);
        ck_assert_uint_eq(m.evictions, 3);
        ck_assert_uint_le(m.bytes, cfg.max_bytes);
    }
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_per_entry_cap)
{
    api_cache_config  cfg = { .max_entry_bytes = 300 };
    cbh_cache        *c = mk(&cfg);
    char              body[400];
    api_cache_metrics m;

    memset(body, 'z', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    put(c, "GET", URL, NULL, 200, FRESH_HDRS, body);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 0);
    ck_assert_uint_eq(m.stores, 0);
    /* Headers and URL count too. */
    body[300 - entry_bytes(FRESH_HDRS, "", URL) + 1] = '\0';
    put(c, "GET", URL, NULL, 200, FRESH_HDRS, body);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 0);
    body[300 - entry_bytes(FRESH_HDRS, "", URL)] = '\0';
    put(c, "GET", URL, NULL, 200, FRESH_HDRS, body);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 1);
    ck_assert_uint_eq(m.bytes, 300);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_defaults)
{
    cbh_cache        *c = cbh_cache_new(NULL, NULL, NULL, NULL, NULL);
    api_cache_metrics m;

    ck_assert_ptr_nonnull(c);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.max_entries, 10000);
    ck_assert_uint_eq(m.max_bytes, 32u << 20);
    ck_assert_uint_eq(m.entries + m.bytes + m.stores + m.evictions + m.invalidations, 0);
    /* Real clocks: a fresh response is a hit. */
    {
        cbh_payload r;

        resp_make(&r, 200, "Cache-Control: max-age=60\r\n", "real");
        cbh_cache_store(c, "GET", URL, NULL, NULL, &r, cb_clock_monotonic_ms(NULL),
                        cb_clock_monotonic_ms(NULL), NULL);
        cbh_payload_free(&r);
        ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    }
    cbh_cache_metrics(NULL, &m);
    ck_assert_uint_eq(m.entries, 0);
    cbh_cache_metrics(c, NULL);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_bypass)
{
    cbh_cache        *c = mk(NULL);
    api_cache_options bypass = { .bypass = true };

    put(c, "GET", URL, NULL, 200, FRESH_HDRS, "b");
    ck_assert_int_eq(get(c, "GET", URL, NULL, &bypass, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_request_directives)
{
    cbh_cache        *c = mk(NULL);
    const char       *no_cache[] = { "X-A: 1", "Cache-Control: no-cache", NULL };
    const char       *max0[] = { "cache-control: max-age=0", NULL };
    const char       *max5[] = { "Cache-Control: max-age=5", NULL };
    const char       *pragma[] = { "Pragma: no-cache", NULL };
    const char       *pragma_cc[] = { "Pragma: no-cache", "Cache-Control: max-age=60", NULL };
    const char       *no_store[] = { "Cache-Control: no-store", NULL };
    api_cache_options reval = { .revalidate = true };
    api_cache_metrics m;

    put(c, "GET", URL, NULL, 200, FRESH_HDRS "ETag: \"e\"\r\n", "b");
    ck_assert_int_eq(get(c, "GET", URL, no_cache, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    ck_assert_int_eq(get(c, "GET", URL, max0, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    ck_assert_int_eq(get(c, "GET", URL, pragma, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    ck_assert_int_eq(get(c, "GET", URL, pragma_cc, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL, NULL, &reval, NULL, NULL, 0), CBH_CACHE_STALE);
    ck_assert_int_eq(get(c, "GET", URL, no_store, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "GET", URL, max5, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    now_ms += 5001;
    ck_assert_int_eq(get(c, "GET", URL, max5, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    /* A request saying no-store is not stored. */
    put(c, "GET", URL "n", no_store, 200, FRESH_HDRS, "b");
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 1);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_metrics_counts)
{
    api_cache_config  cfg = { .max_entries = 2 };
    cbh_cache        *c = mk(&cfg);
    api_cache_metrics m;
    size_t            one = entry_bytes(FRESH_HDRS, "abc", URL "1");

    put(c, "GET", URL "1", NULL, 200, FRESH_HDRS, "abc");
    put(c, "GET", URL "2", NULL, 200, FRESH_HDRS, "abc");
    put(c, "GET", URL "3", NULL, 200, FRESH_HDRS, "abc");
    put(c, "GET", URL "3", NULL, 200, FRESH_HDRS, "abc"); /* a replacement */
    put(c, "GET", URL "4", NULL, 200, "Cache-Control: no-store\r\n", "abc");
    cbh_cache_invalidate(c, URL "3");
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.stores, 4);
    ck_assert_uint_eq(m.evictions, 1);
    ck_assert_uint_eq(m.invalidations, 1);
    ck_assert_uint_eq(m.entries, 1);
    ck_assert_uint_eq(m.bytes, one);
    ck_assert_uint_eq(m.max_entries, 2);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_many_urls)
{
    cbh_cache        *c = mk(NULL);
    api_cache_metrics m;
    char              url[64];
    int               i;

    /* Enough URLs to grow the table several times. */
    for (i = 0; i < 3000; i++) {
        snprintf(url, sizeof url, "http://h/%d", i);
        put(c, "GET", url, NULL, 200, FRESH_HDRS, "v");
    }
    for (i = 0; i < 3000; i += 2) {
        snprintf(url, sizeof url, "http://h/%d", i);
        cbh_cache_invalidate(c, url);
    }
    for (i = 0; i < 3000; i++) {
        snprintf(url, sizeof url, "http://h/%d", i);
        ck_assert_int_eq(get(c, "GET", url, NULL, NULL, NULL, NULL, 0),
                         i % 2 ? CBH_CACHE_FRESH : CBH_CACHE_MISS);
    }
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 1500);
    ck_assert_uint_eq(m.invalidations, 1500);
    cbh_cache_free(c);
}
END_TEST

/* ---- Extreme bounds -------------------------------------------------------- */

static const size_t   bound_sizes[] = { 0, 1, SIZE_MAX - 1, SIZE_MAX };
static const unsigned bound_counts[] = { 0, 1, UINT_MAX - 1, UINT_MAX };

/* Stores a response claiming body_len bytes of which only the first few
 * exist: a bound check that overflowed would read (and crash) past them. */
static void put_claimed(cbh_cache *c, const char *url, size_t body_len, size_t headers_size)
{
    static char few[8] = "abcdefg";
    cbh_payload r;

    resp_make(&r, 200, FRESH_HDRS, "");
    cbh_free(r.body);
    r.body = few;
    r.body_len = body_len;
    if (headers_size)
        r.headers_size = headers_size;
    ck_assert_int_eq(cbh_cache_store(c, "GET", url, NULL, NULL, &r, now_ms, now_ms, NULL), CB_OK);
    r.body = NULL;
    cbh_payload_free(&r);
}

/* max_bytes, max_entry_bytes and max_entries at 0 (default), 1, MAX - 1 and
 * MAX, in every combination: a small response is stored unless a 1-byte
 * bound forbids it, and sizes whose sum or allocation would wrap are
 * refused before anything is allocated (so ASan's huge-allocation abort
 * never fires either). */
START_TEST(test_extreme_bounds)
{
    size_t a, b, n, i;

    for (a = 0; a < 4; a++)
        for (b = 0; b < 4; b++)
            for (n = 0; n < 4; n++) {
                api_cache_config    cfg = { .max_bytes = bound_sizes[a],
                                            .max_entry_bytes = bound_sizes[b],
                                            .max_entries = bound_counts[n] };
                cbh_cache          *c = mk(&cfg);
                bool                fits = bound_sizes[a] != 1 && bound_sizes[b] != 1;
                api_cache_metrics   m;
                static const size_t claims[] = { SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 64,
                                                 SIZE_MAX - 128 };

                put(c, "GET", URL, NULL, 200, FRESH_HDRS "ETag: \"e\"\r\n", "small");
                ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0),
                                 fits ? CBH_CACHE_FRESH : CBH_CACHE_MISS);
                for (i = 0; i < sizeof claims / sizeof claims[0]; i++)
                    put_claimed(c, URL "big", claims[i], 0);
                put_claimed(c, URL "hdr", 1, SIZE_MAX);
                put_claimed(c, URL "hdr", 1, SIZE_MAX - 1);
                ck_assert_int_eq(get(c, "GET", URL "big", NULL, NULL, NULL, NULL, 0),
                                 CBH_CACHE_MISS);
                ck_assert_int_eq(get(c, "GET", URL "hdr", NULL, NULL, NULL, NULL, 0),
                                 CBH_CACHE_MISS);
                cbh_cache_metrics(c, &m);
                ck_assert_uint_eq(m.entries, fits ? 1 : 0);
                ck_assert_uint_eq(m.stores, fits ? 1 : 0);
                ck_assert_uint_eq(m.max_bytes, bound_sizes[a] ? bound_sizes[a] : 32u << 20);
                ck_assert_uint_eq(m.max_entries, bound_counts[n] ? bound_counts[n] : 10000);
                cbh_cache_free(c);
            }
}
END_TEST

/* A 304 claiming more headers than memory can hold: the merged list's size
 * must not wrap around to a small allocation. */
START_TEST(test_304_impossible_header_count)
{
    api_cache_config cfg = { .max_bytes = SIZE_MAX, .max_entry_bytes = SIZE_MAX };
    cbh_cache       *c = mk(&cfg);
    cbh_cache_cond   cond;
    cbh_payload      r;
    bool             refreshed;
    size_t           real;

    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=0\r\nETag: \"v1\"\r\n", "one");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    resp_make(&r, 304, "ETag: \"v1\"\r\n", "");
    real = r.header_count;
    r.header_count = SIZE_MAX / sizeof(api_header) + 1;
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL, NULL, &cond, &r, now_ms, now_ms, &refreshed),
                     CB_ERR_NOMEM);
    ck_assert_int_eq(r.status, 304);
    ck_assert(!refreshed);
    r.header_count = real;
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

/* 0000-01-01 and 9999-12-31 23:59:59, the range of an HTTP-date. */
#define DATE_MIN_EPOCH (-62167219200LL)
#define DATE_MAX_EPOCH 253402300799LL

/* Wall and monotonic clocks at their ends: no signed overflow (run it under
 * -fsanitize=undefined), the entry is stored, and where the wall clock
 * leaves room for it the response delay (UINT64_MAX ms) saturates the
 * initial age to 2^31 s: stale at once. */
START_TEST(test_extreme_clocks)
{
    static const int64_t walls[] = { INT64_MIN, INT64_MIN + 1, -1, 0, WALL, INT64_MAX };
    size_t               i;

    for (i = 0; i < sizeof walls / sizeof walls[0]; i++) {
        cbh_cache        *c = mk(NULL);
        cbh_payload       r;
        api_cache_metrics m;
        cbh_cache_res     res;

        wall_s = walls[i];
        resp_make(&r, 200, "Cache-Control: max-age=60\r\nETag: \"e\"\r\n", "b");
        ck_assert_int_eq(cbh_cache_store(c, "GET", URL, NULL, NULL, &r, 0, UINT64_MAX, NULL),
                         CB_OK);
        cbh_payload_free(&r);
        cbh_cache_metrics(c, &m);
        ck_assert_uint_eq(m.entries, 1);
        now_ms = UINT64_MAX;
        res = get(c, "GET", URL, NULL, NULL, NULL, NULL, 0);
        if (walls[i] > INT64_MIN + 100000)
            ck_assert_int_eq(res, CBH_CACHE_STALE);
        else
            ck_assert(res == CBH_CACHE_STALE || res == CBH_CACHE_FRESH);
        /* Dates at the ends of what HTTP-dates can say, against that clock. */
        {
            char hdrs[256], lo[32], hi[32];

            cbh_http_date_format(DATE_MIN_EPOCH, lo, sizeof lo);
            cbh_http_date_format(DATE_MAX_EPOCH, hi, sizeof hi);
            snprintf(hdrs, sizeof hdrs, "Date: %s\r\nExpires: %s\r\nLast-Modified: %s\r\n", lo, hi,
                     lo);
            put(c, "GET", URL "d", NULL, 200, hdrs, "d");
            snprintf(hdrs, sizeof hdrs, "Date: %s\r\nExpires: %s\r\nETag: \"e\"\r\n", hi, lo);
            put(c, "GET", URL "e", NULL, 200, hdrs, "e");
            cbh_cache_metrics(c, &m);
            ck_assert_uint_ge(m.entries, 2);
        }
        cbh_cache_free(c);
    }
}
END_TEST

/* ---- Allocation failures -------------------------------------------------- */

START_TEST(test_alloc_failures)
{
    int budget;

    /* Every allocation in turn fails; nothing crashes or leaks (ASan). */
    for (budget = 0; budget < 60; budget++) {
        const char    *req[] = { "Accept: a", NULL };
        cbh_cache     *c;
        cbh_payload    r;
        cbh_cache_cond cond;
        cb_err         err;
        bool           refreshed;

        tu_alloc_install();
        c = mk(NULL);
        resp_make(&r, 200, FRESH_HDRS "ETag: \"e\"\r\nVary: Accept\r\n", "body");
        tu_alloc_fail_from((unsigned long)budget + 1); /* budget calls succeed */
        cbh_cache_store(c, "GET", URL, req, NULL, &r, now_ms, now_ms, NULL);
        cbh_cache_store(c, "GET", URL "2", req, NULL, &r, now_ms, now_ms, NULL);
        cbh_payload_free(&r);
        memset(&r, 0, sizeof r);
        if (cbh_cache_lookup(c, "GET", URL, req, NULL, &r, &cond) == CBH_CACHE_FRESH)
            ck_assert_str_eq(r.body, "body");
        cbh_payload_free(&r);
        now_ms += 61000;
        cbh_cache_lookup(c, "GET", URL, req, NULL, &r, &cond);
        tu_alloc_disarm();
        resp_make(&r, 304, "X-New: 1\r\n", "");
        tu_alloc_fail_from((unsigned long)budget + 1);
        err = cbh_cache_store(c, "GET", URL, req, &cond, &r, now_ms, now_ms, &refreshed);
        ck_assert(err == CB_OK || err == CB_ERR_NOMEM);
        if (err == CB_ERR_NOMEM)
            ck_assert(r.status == 304 && !refreshed);
        cbh_payload_free(&r);
        memset(&r, 0, sizeof r);
        cbh_cache_serve_stale(c, "GET", URL, req, NULL, CB_ERR_CONNECT, &r);
        cbh_payload_free(&r);
        cbh_cache_invalidate(c, URL);
        cbh_cache_free(c);
        tu_alloc_disarm();
        tu_alloc_uninstall(); /* and nothing leaked */
    }
}
END_TEST

/* ---- Concurrency ----------------------------------------------------------- */

#define STRESS_THREADS 4
#define STRESS_ITERS 20000
#define STRESS_URLS 50

static atomic_ulong stress_stores;

static void *stress_run(void *arg)
{
    cbh_cache        *c = arg;
    unsigned          seed = (unsigned)(uintptr_t)&seed;
    const char       *en[] = { "Accept-Language: en", NULL };
    const char       *fr[] = { "Accept-Language: fr", NULL };
    api_cache_options opts = { .max_stale_ms = 1000 };
    int               i;

    for (i = 0; i < STRESS_ITERS; i++) {
        char               url[64];
        unsigned           op = (unsigned)rand_r(&seed) % 10;
        const char *const *req = (rand_r(&seed) & 1) ? en : fr;
        cbh_payload        r;
        cbh_cache_cond     cond;

        snprintf(url, sizeof url, "http://h/%d", rand_r(&seed) % STRESS_URLS);
        memset(&r, 0, sizeof r);
        if (op < 5) {
            cbh_cache_res res = cbh_cache_lookup(c, "GET", url, req, NULL, &r, &cond);

            if (res == CBH_CACHE_FRESH)
                ck_assert(r.body_len == 0 || r.body[0] == 'v');
        } else if (op < 8) {
            resp_make(&r, 200,
                      "Cache-Control: max-age=1\r\nETag: \"e\"\r\nVary: Accept-Language\r\n",
                      "v-body-of-some-length");
            cbh_cache_store(c, "GET", url, req, NULL, &r, cb_clock_monotonic_ms(NULL),
                            cb_clock_monotonic_ms(NULL), NULL);
            atomic_fetch_add(&stress_stores, 1);
        } else if (op < 9) {
            if (cbh_cache_serve_stale(c, "GET", url, req, &opts, CB_ERR_TIMEOUT, &r))
                ck_assert(r.status == 200 && r.body[0] == 'v');
        } else {
            if (rand_r(&seed) % 50 == 0)
                cbh_cache_clear(c);
            else
                cbh_cache_invalidate(c, url);
        }
        cbh_payload_free(&r);
    }
    return NULL;
}

START_TEST(test_concurrent)
{
    api_cache_config  cfg = { .max_entries = 40, .max_bytes = 40 * 1024 };
    cbh_cache        *c = cbh_cache_new(&cfg, NULL, NULL, NULL, NULL);
    pthread_t         t[STRESS_THREADS];
    api_cache_metrics m;
    int               i;

    ck_assert_ptr_nonnull(c);
    for (i = 0; i < STRESS_THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, stress_run, c), 0);
    for (i = 0; i < STRESS_THREADS; i++)
        pthread_join(t[i], NULL);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.stores, atomic_load(&stress_stores));
    ck_assert_uint_le(m.entries, 40);
    ck_assert_uint_le(m.bytes, 40 * 1024);
    ck_assert(m.entries > 0 || m.bytes == 0);
    ck_assert_uint_le(m.entries, m.stores);
    ck_assert_uint_le(m.evictions + m.invalidations, m.stores);
    cbh_cache_clear(c);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 0);
    ck_assert_uint_eq(m.bytes, 0);
    cbh_cache_free(c);
}
END_TEST

/* ---- RFC 9111 details (issue 12) ------------------------------------------ */

static const char *hdr(const cbh_payload *r, const char *name)
{
    return cbh_headers_get(r->headers, r->header_count, name);
}

/* A lookup that must be FRESH; the payload is the caller's. */
static void hit(cbh_cache *c, const char *method, const char *const *req, cbh_payload *r)
{
    cbh_cache_cond cond;

    memset(r, 0, sizeof(*r));
    ck_assert_int_eq(cbh_cache_lookup(c, method, URL, req, NULL, r, &cond), CBH_CACHE_FRESH);
}

START_TEST(test_304_update_exact)
{
    cbh_cache     *c = mk(NULL);
    cbh_payload    r;
    cbh_cache_cond cond;
    bool           refreshed;

    put(c, "GET", URL, NULL, 200,
        "Date: " DATE_NOW "\r\nCache-Control: max-age=10\r\nETag: \"v1\"\r\n"
        "Content-Type: text/plain\r\nContent-Range: bytes 0-4/5\r\nTrailer: X-T\r\n"
        "X-Hop: stored\r\nAge: 3\r\nConnection: X-Gone\r\nX-Gone: 1\r\n",
        "hello");
    hit(c, "GET", NULL, &r);
    ck_assert_ptr_null(hdr(&r, "X-Gone"));
    ck_assert_ptr_null(hdr(&r, "Connection"));
    ck_assert_str_eq(hdr(&r, "Age"), "3");
    cbh_payload_free(&r);
    now_ms += 20000;
    wall_s += 20;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    resp_make(&r, 304,
              "Date: Tue, 14 Nov 2023 22:13:40 GMT\r\nCache-Control: max-age=100\r\n"
              "ETag: \"v1\"\r\nContent-Type: text/html\r\nContent-Range: bytes 0-0/1\r\n"
              "Trailer: X-U\r\nConnection: X-Hop\r\nX-Hop: from-304\r\nKeep-Alive: 5\r\n"
              "Age: 4\r\n",
              "");
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL, NULL, &cond, &r, now_ms, now_ms, &refreshed),
                     CB_OK);
    ck_assert(refreshed);
    ck_assert_int_eq(r.status, 200);
    /* Replaced: what 3.2 does not except. */
    ck_assert_str_eq(hdr(&r, "Content-Type"), "text/html");
    ck_assert_str_eq(hdr(&r, "Trailer"), "X-U");
    /* Kept: Content-Range; a field the 304's Connection names; its
     * hop-by-hop fields are not added. Age is the new one's. */
    ck_assert_str_eq(hdr(&r, "Content-Range"), "bytes 0-4/5");
    ck_assert_str_eq(hdr(&r, "X-Hop"), "stored");
    ck_assert_ptr_null(hdr(&r, "Keep-Alive"));
    ck_assert_ptr_null(hdr(&r, "Connection"));
    ck_assert_str_eq(hdr(&r, "Age"), "4");
    cbh_payload_free(&r);
    now_ms += 2000;
    hit(c, "GET", NULL, &r);
    ck_assert_str_eq(hdr(&r, "Age"), "6");
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_5xx_beside_good)
{
    cbh_cache        *c = mk(NULL);
    cbh_payload       r;
    api_cache_options o = { .max_stale_ms = 600000 };

    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=1\r\nETag: \"g\"\r\n", "good");
    put(c, "GET", URL, NULL, 503, "Cache-Control: max-age=30\r\n", "bad");
    hit(c, "GET", NULL, &r);
    ck_assert_int_eq(r.status, 503);
    cbh_payload_free(&r);
    memset(&r, 0, sizeof(r));
    ck_assert(cbh_cache_serve_stale(c, "GET", URL, NULL, &o, CB_ERR_HTTP, &r));
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "good");
    cbh_payload_free(&r);
    /* A second 5xx replaces the first, not the good one. */
    put(c, "GET", URL, NULL, 500, "Cache-Control: max-age=30\r\n", "bad2");
    hit(c, "GET", NULL, &r);
    ck_assert_int_eq(r.status, 500);
    cbh_payload_free(&r);
    {
        api_cache_metrics m;

        cbh_cache_metrics(c, &m);
        ck_assert_uint_eq(m.entries, 2);
    }
    /* Stale, the 5xx is passed over: the good entry is revalidated. */
    now_ms += 31000;
    {
        cbh_cache_cond cond;

        ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
        ck_assert_str_eq(cond.if_none_match, "If-None-Match: \"g\"");
    }
    /* A good answer supersedes both. */
    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=60\r\n", "new");
    {
        api_cache_metrics m;

        cbh_cache_metrics(c, &m);
        ck_assert_uint_eq(m.entries, 1);
    }
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_range_edges)
{
    static const struct {
        const char *range;
        int         status; /* 0: MISS (to the origin) */
        const char *body;
    } cases[] = {
        { "Range: bytes=0-0", 206, "0" },
        { "Range: bytes=8-20", 206, "89" },
        { "Range: bytes=-20", 206, "0123456789" },
        { "Range: bytes=9-", 206, "9" },
        { "Range: BYTES=1-2", 206, "12" },
        { "Range: bytes=2-1", 200, "0123456789" },
        { "Range: bytes=x-1", 200, "0123456789" },
        { "Range: bytes=-", 200, "0123456789" },
        { "Range: bytes=10-", 0, NULL },
        { "Range: bytes=-0", 0, NULL },
        { "Range: bytes=0-1, 5-6", 0, NULL },
        { "Range: bytes=99999999999999999999-", 200, "0123456789" },
        { "Range: b", 200, "0123456789" },
        { "Range: bytes= \t1-2", 206, "12" },
        { "Range: bytes=0-1 \t, 4-5", 0, NULL },
        { "Range: bytes=0-1x", 200, "0123456789" },
        { "Range: bytes=0-1 x", 200, "0123456789" },
        { "Range: bytes=3-3", 206, "3" },
        { "Range: bytes=-3", 206, "789" },
        { "Range: items=0-1", 200, "0123456789" },
        { "Range: bytes=", 200, "0123456789" },
        { "Range: bytes=5", 200, "0123456789" },
    };
    cbh_cache *c = mk(NULL);
    size_t     i;

    put(c, "GET", URL, NULL, 200, FRESH_HDRS "Content-Length: 10\r\n", "0123456789");
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char    *req[] = { cases[i].range, NULL };
        cbh_payload    r = { 0 };
        cbh_cache_cond cond;
        cbh_cache_res  res = cbh_cache_lookup(c, "GET", URL, req, NULL, &r, &cond);

        if (!cases[i].status) {
            ck_assert_msg(res == CBH_CACHE_MISS, "%s", cases[i].range);
            continue;
        }
        ck_assert_msg(res == CBH_CACHE_FRESH, "%s", cases[i].range);
        ck_assert_int_eq(r.status, cases[i].status);
        ck_assert_str_eq(r.body, cases[i].body);
        if (r.status == 206) {
            char len[24];

            snprintf(len, sizeof(len), "%zu", strlen(cases[i].body));
            ck_assert_str_eq(hdr(&r, "Content-Length"), len);
        }
        cbh_payload_free(&r);
    }
    /* HEAD ignores Range. */
    {
        const char *req[] = { "Range: bytes=0-1", NULL };
        cbh_payload r;

        hit(c, "HEAD", req, &r);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(hdr(&r, "Content-Length"), "10");
        cbh_payload_free(&r);
    }
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_head_response_updates_get)
{
    cbh_cache  *c = mk(NULL);
    cbh_payload r;

    put(c, "GET", URL, NULL, 200,
        "Cache-Control: max-age=10\r\nETag: \"a\"\r\nContent-Length: 4\r\nX-V: 1\r\n", "body");
    now_ms += 8000;
    put(c, "HEAD", URL, NULL, 200,
        "Cache-Control: max-age=10\r\nETag: \"a\"\r\nContent-Length: 4\r\nX-V: 2\r\n", "");
    now_ms += 8000;
    hit(c, "GET", NULL, &r);
    ck_assert_str_eq(r.body, "body");
    ck_assert_str_eq(hdr(&r, "X-V"), "2");
    ck_assert_str_eq(hdr(&r, "Age"), "8");
    cbh_payload_free(&r);
    /* Another length: the stored GET is stale, not updated. */
    put(c, "HEAD", URL, NULL, 200,
        "Cache-Control: max-age=10\r\nETag: \"a\"\r\nContent-Length: 5\r\nX-V: 3\r\n", "");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_caller_304_kept)
{
    static const char *const req[] = { "If-None-Match: W/\"e\"", NULL };
    cbh_cache               *c = mk(NULL);
    cbh_payload              r;
    bool                     refreshed;

    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=1\r\nETag: \"e\"\r\n", "b");
    hit(c, "GET", req, &r);
    ck_assert_int_eq(r.status, 304);
    ck_assert_str_eq(r.body, "");
    ck_assert_str_eq(hdr(&r, "ETag"), "\"e\"");
    cbh_payload_free(&r);
    now_ms += 2000;
    /* Stale: no validators of ours beside the caller's. */
    ck_assert_int_eq(get(c, "GET", URL, req, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    resp_make(&r, 304, "Cache-Control: max-age=60\r\nETag: \"e\"\r\n", "");
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL, req, NULL, &r, now_ms, now_ms, &refreshed),
                     CB_OK);
    ck_assert(!refreshed);
    ck_assert_int_eq(r.status, 304);
    cbh_payload_free(&r);
    hit(c, "GET", NULL, &r);
    ck_assert_str_eq(r.body, "b");
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_vary_quotes_and_empty)
{
    static const char *const a[] = { "X-Q: \"a  b\" ;  p=1", NULL };
    static const char *const b[] = { "X-Q: \"a  b\";p=1", NULL };
    static const char *const c2[] = { "X-Q: \"a b\";p=1", NULL };
    static const char *const empty[] = { "X-Q:", NULL };
    cbh_cache               *c = mk(NULL);
    cbh_payload              r;

    put(c, "GET", URL, a, 200, FRESH_HDRS "Vary: X-Q\r\n", "q");
    hit(c, "GET", b, &r);
    cbh_payload_free(&r);
    ck_assert_int_eq(get(c, "GET", URL, c2, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "GET", URL, empty, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_free(c);
}
END_TEST

/* ---- Request header lines, Vary normalising and bounds --------------------- */

/* Request lines are told apart by name, not by their first letter: others
 * beginning like ours change nothing, and of a repeated conditional or
 * Range the first line counts. If-Match and If-Unmodified-Since are the
 * origin's to judge: a miss. */
START_TEST(test_request_lines)
{
    static const char *const others[] = { "Connection: x", "content-type: y", "Prefer: z",
                                          "Referer: r",    "If-Foo: 1",       NULL };
    static const char *const pragma_other[] = { "Pragma: foo", NULL };
    static const char *const pragma_two[] = { "Pragma: foo", "Pragma: no-cache", NULL };
    static const char *const pragma_first[] = { "Pragma: no-cache", "Pragma: foo", NULL };
    static const char *const if_match[] = { "If-Match: \"e\"", NULL };
    static const char *const if_unmod[] = { "If-Unmodified-Since: " DATE_NOW, NULL };
    static const char *const inm_two[] = { "If-None-Match: \"x\"", "If-None-Match: \"e\"", NULL };
    static const char *const ims_two[] = { "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT",
                                           "If-Modified-Since: " DATE_NOW, NULL };
    static const char *const range_two[] = { "Range: bytes=0-0", "Range: bytes=1-1", NULL };
    static const char *const if_range_two[] = { "If-Range: \"e\"", "If-Range: \"x\"",
                                                "Range: bytes=1-2", NULL };
    cbh_cache               *c = mk(NULL);
    cbh_payload              r;
    cbh_cache_cond           cond;

    put(c, "GET", URL, NULL, 200,
        FRESH_HDRS "ETag: \"e\"\r\nLast-Modified: Tue, 14 Nov 2023 22:00:00 GMT\r\n", "hello");
    hit(c, "GET", others, &r);
    ck_assert_int_eq(r.status, 200);
    cbh_payload_free(&r);
    hit(c, "GET", pragma_other, &r);
    cbh_payload_free(&r);
    ck_assert_int_eq(get(c, "GET", URL, pragma_two, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    ck_assert_int_eq(get(c, "GET", URL, pragma_first, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    ck_assert_int_eq(get(c, "GET", URL, if_match, NULL, &cond, NULL, 0), CBH_CACHE_MISS);
    ck_assert_int_eq(get(c, "GET", URL, if_unmod, NULL, &cond, NULL, 0), CBH_CACHE_MISS);
    /* The first If-None-Match does not match: the stored 200, no 304. */
    hit(c, "GET", inm_two, &r);
    ck_assert_int_eq(r.status, 200);
    cbh_payload_free(&r);
    /* The first If-Modified-Since is before Last-Modified: a 200 too. */
    hit(c, "GET", ims_two, &r);
    ck_assert_int_eq(r.status, 200);
    cbh_payload_free(&r);
    hit(c, "GET", range_two, &r);
    ck_assert_int_eq(r.status, 206);
    ck_assert_str_eq(r.body, "h");
    cbh_payload_free(&r);
    hit(c, "GET", if_range_two, &r);
    ck_assert_int_eq(r.status, 206);
    ck_assert_str_eq(r.body, "el");
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_vary_normalising)
{
    static const char *const cs_upper[] = { "Accept-Charset: UTF-8", NULL };
    static const char *const cs_lower[] = { "accept-charset: utf-8", NULL };
    static const char *const ws_tab[] = { "X-A: a \t b", NULL };
    static const char *const ws_one[] = { "X-A: a b", NULL };
    static const char *const ws_none[] = { "X-A: ab", NULL };
    /* Inside quotes whitespace is data, an escaped quote included. */
    static const char *const q_two[] = { "X-Q: \"a\\\"  b\"", NULL };
    static const char *const q_one[] = { "X-Q: \"a\\\" b\"", NULL };
    static const char *const q_end[] = { "X-Q: \"a\\", NULL };
    char                     vary[256], line[256];
    const char              *long_req[] = { line, NULL };
    cbh_cache               *c = mk(NULL);

    put(c, "GET", URL "cs", cs_upper, 200, FRESH_HDRS "Vary: Accept-Charset\r\n", "cs");
    ck_assert_int_eq(get(c, "GET", URL "cs", cs_lower, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    put(c, "GET", URL "ws", ws_tab, 200, FRESH_HDRS "Vary: X-A\r\n", "ws");
    ck_assert_int_eq(get(c, "GET", URL "ws", ws_one, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL "ws", ws_none, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    put(c, "GET", URL "q", q_two, 200, FRESH_HDRS "Vary: X-Q\r\n", "q");
    ck_assert_int_eq(get(c, "GET", URL "q", q_two, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL "q", q_one, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    put(c, "GET", URL "qe", q_end, 200, FRESH_HDRS "Vary: X-Q\r\n", "qe");
    ck_assert_int_eq(get(c, "GET", URL "qe", q_end, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL "qe", q_one, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    /* A Vary name too long for a real header is kept: it matches only
     * requests without it. */
    snprintf(vary, sizeof vary, FRESH_HDRS "Vary: X-%0150d\r\n", 0);
    snprintf(line, sizeof line, "X-%0150d: v", 0);
    put(c, "GET", URL "long", NULL, 200, vary, "long");
    ck_assert_int_eq(get(c, "GET", URL "long", NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL "long", long_req, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_free(c);
}
END_TEST

/* Stores the response with a Vary block built for req into a cache of
 * max_entry_bytes; true when it was stored. */
static bool vary_stored(size_t max_entry_bytes, const char *hdrs, const char *const *req)
{
    api_cache_config  cfg = { .max_entry_bytes = max_entry_bytes };
    cbh_cache        *c = mk(&cfg);
    api_cache_metrics m;

    put(c, "GET", URL, req, 200, hdrs, "b");
    cbh_cache_metrics(c, &m);
    cbh_cache_free(c);
    return m.stores == 1;
}

/* The allocations a store of that response makes (by failing the n-th,
 * for n = 1, 2, ..., until no n-th is made). */
static unsigned long vary_store_allocs(size_t max_entry_bytes, const char *hdrs,
                                       const char *const *req)
{
    unsigned long n;

    for (n = 1;; n++) {
        api_cache_config cfg = { .max_entry_bytes = max_entry_bytes };
        cbh_cache       *c;
        cbh_payload      r;
        bool             made;

        tu_alloc_install();
        c = mk(&cfg);
        resp_make(&r, 200, hdrs, "b");
        tu_alloc_fail_at(n);
        cbh_cache_store(c, "GET", URL, req, NULL, &r, now_ms, now_ms, NULL);
        made = tu_alloc_disarm();
        cbh_payload_free(&r);
        cbh_cache_free(c);
        tu_alloc_uninstall();
        if (!made)
            return n - 1;
    }
}

/* The Vary block counts against max_entry_bytes: a request value copied
 * into it, or many names (each a struct besides its string), can make an
 * entry too big that is small without it. */
START_TEST(test_vary_block_bounds)
{
    static char big[2100], many[1900], mid[700];
    const char *big_req[] = { big, NULL };
    const char *mid_req[] = { mid, NULL };
    const char *small_req[] = { "X-Big: small", NULL };
    char        hdrs[2000];
    size_t      i;

    snprintf(big, sizeof big, "X-Big: %02000d", 0);
    snprintf(mid, sizeof mid, "X-Big: %0600d", 0);
    ck_assert(vary_stored(1000, FRESH_HDRS "Vary: X-Big\r\n", small_req));
    /* The value alone is over the cap. */
    ck_assert(!vary_stored(1000, FRESH_HDRS "Vary: X-Big\r\n", big_req));
    /* The value fits; with the headers, body and URL it does not. */
    ck_assert(vary_stored(2000, FRESH_HDRS "Vary: X-Big\r\n", mid_req));
    ck_assert(!vary_stored(700, FRESH_HDRS "Vary: X-Big\r\n", mid_req));
    /* 600 one-letter names: 1200 bytes of strings, 600 structs. */
    for (i = 0; i < 600; i++)
        memcpy(many + 2 * i, "a,", 2);
    many[1199] = '\0';
    snprintf(hdrs, sizeof hdrs, FRESH_HDRS "Vary: %s\r\n", many);
    ck_assert(!vary_stored(4000, hdrs, NULL));
    ck_assert(vary_stored(20000, hdrs, NULL));
    /* Refused before the block is allocated when its strings alone, or
     * with its structs, are over the cap: the entry and its header copy
     * are all a refused store allocates. One that fits on its own but not
     * with the rest is built first. */
    ck_assert_uint_eq(vary_store_allocs(1000, FRESH_HDRS "Vary: X-Big\r\n", big_req), 2);
    ck_assert_uint_eq(vary_store_allocs(4000, hdrs, NULL), 2);
    ck_assert_uint_eq(vary_store_allocs(700, FRESH_HDRS "Vary: X-Big\r\n", mid_req), 3);
}
END_TEST

/* Two URLs with the same cbh_table_hash value, of the same length and of
 * different lengths (found by searching against the function): each keeps
 * its own entry, and removing one leaves the other. */
START_TEST(test_hash_collisions)
{
    static const char *const pairs[][2] = {
        { "http://h/g5by1a2", "http:/ro/g}j{1hs" },
        { "http://h/z674ewy", "tu8u4dfiHNrd6)>7l" },
    };
    size_t i;

    for (i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        cbh_cache        *c = mk(NULL);
        char              body[16];
        api_cache_metrics m;

        /* They still collide (the test means nothing otherwise). */
        ck_assert_uint_eq(cbh_table_hash(pairs[i][0], strlen(pairs[i][0])),
                          cbh_table_hash(pairs[i][1], strlen(pairs[i][1])));
        put(c, "GET", pairs[i][0], NULL, 200, FRESH_HDRS, "first");
        put(c, "GET", pairs[i][1], NULL, 200, FRESH_HDRS, "second");
        ck_assert_int_eq(get(c, "GET", pairs[i][0], NULL, NULL, NULL, body, sizeof body),
                         CBH_CACHE_FRESH);
        ck_assert_str_eq(body, "first");
        ck_assert_int_eq(get(c, "GET", pairs[i][1], NULL, NULL, NULL, body, sizeof body),
                         CBH_CACHE_FRESH);
        ck_assert_str_eq(body, "second");
        /* The older node is the second in its chain. */
        cbh_cache_invalidate(c, pairs[i][0]);
        ck_assert_int_eq(get(c, "GET", pairs[i][0], NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
        ck_assert_int_eq(get(c, "GET", pairs[i][1], NULL, NULL, NULL, body, sizeof body),
                         CBH_CACHE_FRESH);
        ck_assert_str_eq(body, "second");
        cbh_cache_invalidate(c, pairs[i][1]);
        cbh_cache_metrics(c, &m);
        ck_assert_uint_eq(m.entries, 0);
        ck_assert_uint_eq(m.invalidations, 2);
        cbh_cache_free(c);
    }
}
END_TEST

/* The table grows as URLs are added; when that allocation fails the
 * chains only get longer: every entry is still found, and the next
 * growth succeeds. */
START_TEST(test_table_grow_oom)
{
    unsigned long k;
    bool          grow_failed = false;

    for (k = 1; k <= 12; k++) {
        cbh_cache        *c;
        cbh_payload       r;
        char              url[64];
        int               i;
        bool              failed;
        api_cache_metrics m;

        tu_alloc_install();
        c = mk(NULL);
        for (i = 0; i < 64; i++) {
            snprintf(url, sizeof url, URL "/%d", i);
            put(c, "GET", url, NULL, 200, FRESH_HDRS, "x");
        }
        resp_make(&r, 200, FRESH_HDRS, "x");
        tu_alloc_fail_at(k);
        ck_assert_int_eq(cbh_cache_store(c, "GET", URL "/64", NULL, NULL, &r, now_ms, now_ms, NULL),
                         CB_OK);
        failed = tu_alloc_disarm();
        cbh_payload_free(&r);
        cbh_cache_metrics(c, &m);
        if (failed && m.entries == 65)
            grow_failed = true;
        for (i = 0; i < (int)m.entries; i++) {
            snprintf(url, sizeof url, URL "/%d", i);
            ck_assert_int_eq(get(c, "GET", url, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
        }
        for (i = 65; i < 200; i++) {
            snprintf(url, sizeof url, URL "/%d", i);
            put(c, "GET", url, NULL, 200, FRESH_HDRS, "x");
        }
        for (i = 0; i < 200; i++) {
            snprintf(url, sizeof url, URL "/%d", i);
            if (i != 64 || m.entries == 65)
                ck_assert_int_eq(get(c, "GET", url, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
        }
        cbh_cache_free(c);
        tu_alloc_uninstall();
    }
    ck_assert(grow_failed);
}
END_TEST

/* ---- Conditionals and ranges answered from the cache ----------------------- */

/* Looks up URL u with one request line; returns the status served (0 for
 * anything but FRESH). */
static long status_for(cbh_cache *c, const char *u, const char *line)
{
    const char    *req[] = { line, NULL };
    cbh_payload    r = { 0 };
    cbh_cache_cond cond;
    long           st = 0;

    if (cbh_cache_lookup(c, "GET", u, req, NULL, &r, &cond) == CBH_CACHE_FRESH)
        st = r.status;
    cbh_payload_free(&r);
    return st;
}

/* If-None-Match lists, compared weakly (RFC 9110 13.1.2). */
START_TEST(test_inm_lists)
{
    static const struct {
        const char *inm;
        int         status;
    } cases[] = {
        { "If-None-Match: \"x\"", 304 },          /* weak match of W/"x" */
        { "If-None-Match: \"y\"", 200 },          /* same length, other tag */
        { "If-None-Match: \"q\",\t\"x\"", 304 },  /* a tab between */
        { "If-None-Match: \"x\" , \"q\"", 304 },  /* blanks after a member */
        { "If-None-Match: \"x", 200 },            /* unterminated */
        { "If-None-Match: x", 200 },              /* one character, not '*' */
        { "If-None-Match: \"q\",  ,", 200 },      /* an empty member */
        { "If-None-Match: \"q\"\t, \"x\"", 304 }, /* a tab after a member */
        { "If-None-Match: *", 304 },
    };
    cbh_cache *c = mk(NULL);
    size_t     i;

    put(c, "GET", URL, NULL, 200, FRESH_HDRS "ETag: W/\"x\"\r\n", "b");
    put(c, "GET", URL "n", NULL, 200, FRESH_HDRS, "b");
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char    *req[] = { cases[i].inm, NULL };
        cbh_payload    r = { 0 };
        cbh_cache_cond cond;

        ck_assert_int_eq(cbh_cache_lookup(c, "GET", URL, req, NULL, &r, &cond), CBH_CACHE_FRESH);
        ck_assert_msg(r.status == cases[i].status, "%s: %ld", cases[i].inm, r.status);
        cbh_payload_free(&r);
        /* An entry without an ETag matches only '*'. */
        ck_assert_int_eq(cbh_cache_lookup(c, "GET", URL "n", req, NULL, &r, &cond),
                         CBH_CACHE_FRESH);
        ck_assert_int_eq(r.status, strcmp(cases[i].inm, "If-None-Match: *") == 0 ? 304 : 200);
        cbh_payload_free(&r);
    }
    /* A one-character (malformed) stored ETag is compared as it is. */
    put(c, "GET", URL "s", NULL, 200, FRESH_HDRS "ETag: x\r\n", "b");
    ck_assert_int_eq(status_for(c, URL "s", "If-None-Match: x"), 304);
    ck_assert_int_eq(status_for(c, URL "s", "If-None-Match: y"), 200);
    cbh_cache_free(c);
}
END_TEST

START_TEST(test_ims_edges)
{
    static const char *const range[] = { "Range: bytes=0-1", NULL };
    static const char *const range_inm[] = { "Range: bytes=0-1", "If-None-Match: *", NULL };
    char                     ims[128];
    cbh_cache               *c = mk(NULL);
    cbh_payload              r;

    put(c, "GET", URL, NULL, 200, FRESH_HDRS "Last-Modified: Tue, 14 Nov 2023 22:00:00 GMT\r\n",
        "b");
    ck_assert_int_eq(status_for(c, URL, "If-Modified-Since: " DATE_NOW), 304);
    /* Not a date, or too long to be one: no 304. */
    ck_assert_int_eq(status_for(c, URL, "If-Modified-Since: garbage"), 200);
    snprintf(ims, sizeof ims, "If-Modified-Since: %s%060d", DATE_NOW, 0);
    ck_assert_int_eq(status_for(c, URL, ims), 200);
    /* Without Last-Modified, Date stands in. */
    put(c, "GET", URL "d", NULL, 200, FRESH_HDRS, "b");
    ck_assert_int_eq(status_for(c, URL "d", "If-Modified-Since: " DATE_NOW), 304);
    ck_assert_int_eq(status_for(c, URL "d", "If-Modified-Since: Tue, 14 Nov 2023 22:13:19 GMT"),
                     200);
    /* Neither, or one that does not parse: never a 304. */
    put(c, "GET", URL "n", NULL, 200, "Cache-Control: max-age=60\r\n", "b");
    ck_assert_int_eq(status_for(c, URL "n", "If-Modified-Since: " DATE_NOW), 200);
    put(c, "GET", URL "x", NULL, 200, "Cache-Control: max-age=60\r\nLast-Modified: yesterday\r\n",
        "b");
    ck_assert_int_eq(status_for(c, URL "x", "If-Modified-Since: " DATE_NOW), 200);
    /* Only a full 2xx is evaluated: a 404, a stored 206, are served as
     * they are. */
    put(c, "GET", URL "404", NULL, 404, FRESH_HDRS "ETag: \"e\"\r\n", "gone");
    ck_assert_int_eq(status_for(c, URL "404", "If-None-Match: *"), 404);
    put(c, "GET", URL "p", range, 206, FRESH_HDRS "Content-Range: bytes 0-1/9\r\n", "pa");
    memset(&r, 0, sizeof r);
    {
        cbh_cache_cond cond;

        ck_assert_int_eq(cbh_cache_lookup(c, "GET", URL "p", range_inm, NULL, &r, &cond),
                         CBH_CACHE_FRESH);
    }
    ck_assert_int_eq(r.status, 206);
    ck_assert_str_eq(r.body, "pa");
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

/* If-Range is compared strongly and exactly (RFC 9110 13.1.5). */
START_TEST(test_if_range_edges)
{
    cbh_cache *c = mk(NULL);

#define LM_IR "Tue, 14 Nov 2023 22:00:00 GMT"
    put(c, "GET", URL, NULL, 200, FRESH_HDRS "ETag: \"e\"\r\nLast-Modified: " LM_IR "\r\n",
        "0123456789");
    put(c, "GET", URL "w", NULL, 200, FRESH_HDRS "ETag: W/\"e\"\r\n", "0123456789");
    put(c, "GET", URL "n", NULL, 200, FRESH_HDRS, "0123456789");
    {
        static const struct {
            const char *u, *if_range;
            long        status;
        } cases[] = {
            { URL, "If-Range: \"e\"", 206 },
            { URL, "If-Range: " LM_IR, 206 },
            { URL, "If-Range: W/\"e\"", 200 },
            { URL, "If-Range:", 200 },
            { URL, "If-Range: \"f\"", 200 },
            { URL, "If-Range: \"ef\"", 200 },
            { URL, "If-Range: Tue, 14 Nov 2023 22:00:01 GMT", 200 },
            { URL, "If-Range: Tue, 14 Nov 2023 22:00:00 GMT ", 206 }, /* trimmed */
            { URL, "If-Range: Tue, 14 Nov 2023 22:00:00 UTC+0", 200 },
            { URL "w", "If-Range: \"e\"", 200 },
            { URL "n", "If-Range: \"e\"", 200 },
            { URL "n", "If-Range: " LM_IR, 200 },
        };
        size_t i;

        for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const char    *req[] = { "Range: bytes=0-1", cases[i].if_range, NULL };
            cbh_payload    r = { 0 };
            cbh_cache_cond cond;

            ck_assert_int_eq(cbh_cache_lookup(c, "GET", cases[i].u, req, NULL, &r, &cond),
                             CBH_CACHE_FRESH);
            ck_assert_msg(r.status == cases[i].status, "%s %s: %ld", cases[i].u, cases[i].if_range,
                          r.status);
            ck_assert_str_eq(r.body, r.status == 206 ? "01" : "0123456789");
            cbh_payload_free(&r);
        }
    }
#undef LM_IR
    cbh_cache_free(c);
}
END_TEST

/* A stored Content-Range (a 200 that carried one) is not served with the
 * 206 cut from it: only ours. Serving stale, several ranges give the
 * whole response instead of nothing; an empty body has no suffix. */
START_TEST(test_range_served_fields)
{
    static const char *const one[] = { "Range: bytes=2-3", NULL };
    static const char *const two[] = { "Range: bytes=0-1, 3-4", NULL };
    static const char *const suffix[] = { "Range: bytes=-5", NULL };
    api_cache_options        any = { .max_stale_ms = 600000 };
    cbh_cache               *c = mk(NULL);
    cbh_payload              r;
    size_t                   i, n = 0;

    put(c, "GET", URL, NULL, 200, FRESH_HDRS "Content-Range: bytes 0-9/10\r\n", "0123456789");
    hit(c, "GET", one, &r);
    ck_assert_int_eq(r.status, 206);
    ck_assert_str_eq(r.body, "23");
    for (i = 0; i < r.header_count; i++)
        n += strcasecmp(r.headers[i].name, "Content-Range") == 0;
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(hdr(&r, "Content-Range"), "bytes 2-3/10");
    cbh_payload_free(&r);
    ck_assert_int_eq(get(c, "GET", URL, two, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    memset(&r, 0, sizeof r);
    ck_assert(cbh_cache_serve_stale(c, "GET", URL, two, &any, CB_ERR_TIMEOUT, &r));
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "0123456789");
    cbh_payload_free(&r);
    put(c, "GET", URL "e", NULL, 200, FRESH_HDRS, "");
    ck_assert_int_eq(get(c, "GET", URL "e", suffix, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_free(c);
}
END_TEST

/* The validators the cache sends are written only when the header line
 * they make fits and is clean: a stored value goes back verbatim. */
START_TEST(test_cond_lines_checked)
{
    char           hdrs[1400];
    cbh_cache     *c = mk(NULL);
    cbh_cache_cond cond;

    snprintf(hdrs, sizeof hdrs,
             "Cache-Control: max-age=0\r\nETag: \"%01100d\"\r\n"
             "Last-Modified: Tue, 14 Nov 2023 22:00:00 GMT\r\n",
             0);
    put(c, "GET", URL, NULL, 200, hdrs, "b");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    ck_assert_str_eq(cond.if_none_match, "");
    ck_assert_str_eq(cond.if_modified_since, "If-Modified-Since: Tue, 14 Nov 2023 22:00:00 GMT");
    put(c, "GET", URL "c", NULL, 200, "Cache-Control: max-age=0\r\nETag: \"a\x01z\"\r\n", "b");
    ck_assert_int_eq(get(c, "GET", URL "c", NULL, NULL, &cond, NULL, 0), CBH_CACHE_MISS);
    ck_assert_str_eq(cond.if_none_match, "");
    ck_assert_str_eq(cond.if_modified_since, "");
    {
        /* It is stored as it came: only the line sent back is refused. */
        api_cache_options any = { .max_stale_ms = 600000 };
        cbh_payload       r = { 0 };

        ck_assert(cbh_cache_serve_stale(c, "GET", URL "c", NULL, &any, CB_ERR_TIMEOUT, &r));
        ck_assert_str_eq(hdr(&r, "ETag"), "\"a\x01z\"");
        cbh_payload_free(&r);
    }
    cbh_cache_free(c);
}
END_TEST

/* A stale 5xx is not served on a request's max-stale: the good response
 * beside it is. */
START_TEST(test_max_stale_skips_5xx)
{
    static const char *const req[] = { "Cache-Control: max-stale=100", NULL };
    cbh_cache               *c = mk(NULL);
    cbh_payload              r;

    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=60\r\nETag: \"g\"\r\n", "good");
    put(c, "GET", URL, NULL, 503, "Cache-Control: max-age=10\r\n", "bad");
    now_ms += 20000;
    hit(c, "GET", req, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "good");
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

/* NULL arguments to each entry point: nothing happens, nothing is lost. */
START_TEST(test_null_arguments)
{
    static const api_header loc[] = { { "Location", "/a" } };
    cbh_cache              *c = mk(NULL);
    cbh_payload             r;
    cbh_cache_cond          cond;
    bool                    refreshed = true;

    put(c, "GET", URL, NULL, 200, FRESH_HDRS, "b");
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(cbh_cache_lookup(c, "GET", NULL, NULL, NULL, &r, &cond), CBH_CACHE_MISS);
    ck_assert_int_eq(cbh_cache_lookup(c, NULL, URL, NULL, NULL, &r, &cond), CBH_CACHE_MISS);
    resp_make(&r, 200, "Cache-Control: max-age=60\r\n", "new");
    ck_assert_int_eq(cbh_cache_store(NULL, "GET", URL, NULL, NULL, &r, 0, 0, &refreshed), CB_OK);
    ck_assert(!refreshed);
    refreshed = true;
    ck_assert_int_eq(cbh_cache_store(c, NULL, URL, NULL, NULL, &r, 0, 0, &refreshed), CB_OK);
    ck_assert(!refreshed);
    ck_assert_int_eq(cbh_cache_store(c, "GET", NULL, NULL, NULL, &r, 0, 0, NULL), CB_OK);
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL, NULL, NULL, NULL, 0, 0, NULL), CB_OK);
    cbh_payload_free(&r);
    memset(&r, 0, sizeof r);
    ck_assert(!cbh_cache_serve_stale(NULL, "GET", URL, NULL, NULL, CB_ERR_TIMEOUT, &r));
    ck_assert(!cbh_cache_serve_stale(c, NULL, URL, NULL, NULL, CB_ERR_TIMEOUT, &r));
    ck_assert(!cbh_cache_serve_stale(c, "GET", NULL, NULL, NULL, CB_ERR_TIMEOUT, &r));
    ck_assert(!cbh_cache_serve_stale(c, "GET", URL, NULL, NULL, CB_ERR_TIMEOUT, NULL));
    cbh_cache_invalidate_related(NULL, URL, loc, 1);
    cbh_cache_invalidate_related(c, NULL, loc, 1);
    cbh_cache_invalidate_related(c, URL, NULL, 1);
    /* A base that is not absolute resolves nothing. */
    cbh_cache_invalidate_related(c, "/a", loc, 1);
    {
        char body[8];

        ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, body, sizeof body), CBH_CACHE_FRESH);
        ck_assert_str_eq(body, "b");
    }
    cbh_cache_free(c);
}
END_TEST

/* A stale entry and a request with its own If-Modified-Since: our
 * validators are not added beside it, the request goes as it is. */
START_TEST(test_caller_ims_not_mixed)
{
    static const char *const req[] = { "If-Modified-Since: " DATE_NOW, NULL };
    cbh_cache               *c = mk(NULL);
    cbh_cache_cond           cond;

    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=1\r\nETag: \"e\"\r\n", "b");
    now_ms += 2000;
    ck_assert_int_eq(get(c, "GET", URL, req, NULL, &cond, NULL, 0), CBH_CACHE_MISS);
    ck_assert_str_eq(cond.if_none_match, "");
    ck_assert_str_eq(cond.if_modified_since, "");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    cbh_cache_free(c);
}
END_TEST

/* ---- 304s and HEAD responses that update entries --------------------------- */

/* An entry whose every header was excluded from storage (Connection names
 * its Cache-Control) and a 304 with no header, or only one that does not
 * update: the merged list is empty. Without freshness or a validator left
 * the entry goes, after the response is handed back. */
START_TEST(test_304_merge_nothing)
{
    static const char *const h304[] = { "", "Content-Length: 0\r\n" };
    size_t                   i;

    for (i = 0; i < sizeof h304 / sizeof h304[0]; i++) {
        cbh_cache        *c = mk(NULL);
        cbh_payload       r;
        bool              refreshed = false;
        api_cache_metrics m;

        put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=1\r\nConnection: Cache-Control\r\n",
            "body");
        hit(c, "GET", NULL, &r);
        ck_assert_uint_eq(r.header_count, 1); /* only the Age we add */
        cbh_payload_free(&r);
        now_ms += 2000;
        resp_make(&r, 304, h304[i], "");
        ck_assert_int_eq(cbh_cache_store(c, "GET", URL, NULL, NULL, &r, now_ms, now_ms, &refreshed),
                         CB_OK);
        ck_assert(refreshed);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(r.body, "body");
        ck_assert_uint_eq(r.header_count, 1);
        cbh_payload_free(&r);
        cbh_cache_metrics(c, &m);
        ck_assert_uint_eq(m.entries, 0);
        cbh_cache_free(c);
    }
}
END_TEST

/* A 304 whose fields take the entry past max_entry_bytes: the response is
 * still handed back, the entry goes. */
START_TEST(test_304_grows_past_cap)
{
    api_cache_config  cfg = { .max_entry_bytes = 600 };
    cbh_cache        *c = mk(&cfg);
    cbh_cache_cond    cond;
    cbh_payload       r;
    bool              refreshed = false;
    char              hdrs[700];
    api_cache_metrics m;

    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=0\r\nETag: \"e\"\r\n", "body");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
    snprintf(hdrs, sizeof hdrs, "Cache-Control: max-age=60\r\nETag: \"e\"\r\nX-Pad: %0500d\r\n", 0);
    resp_make(&r, 304, hdrs, "");
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL, NULL, &cond, &r, now_ms, now_ms, &refreshed),
                     CB_OK);
    ck_assert(refreshed);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "body");
    ck_assert_uint_eq(strlen(hdr(&r, "X-Pad")), 500);
    cbh_payload_free(&r);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 0);
    ck_assert_uint_eq(m.bytes, 0);
    cbh_cache_free(c);
}
END_TEST

/* A 304 to the caller's own If-Modified-Since stays a 304 and refreshes
 * the entry; out of memory while refreshing, it still does not fail. */
START_TEST(test_caller_ims_304)
{
    static const char *const req[] = { "If-Modified-Since: Tue, 14 Nov 2023 22:00:00 GMT", NULL };
    int                      oom;

    for (oom = 0; oom < 2; oom++) {
        cbh_cache  *c;
        cbh_payload r;
        bool        refreshed = true;
        char        body[8];

        tu_alloc_install();
        c = mk(NULL);
        put(c, "GET", URL, NULL, 200,
            "Cache-Control: max-age=1\r\nLast-Modified: Tue, 14 Nov 2023 22:00:00 GMT\r\n", "b");
        now_ms += 2000;
        resp_make(&r, 304,
                  "Cache-Control: max-age=60\r\nLast-Modified: Tue, 14 Nov 2023 22:00:00 GMT\r\n",
                  "");
        if (oom)
            tu_alloc_fail_from(1);
        ck_assert_int_eq(cbh_cache_store(c, "GET", URL, req, NULL, &r, now_ms, now_ms, &refreshed),
                         CB_OK);
        ck_assert(tu_alloc_disarm() == (oom == 1));
        ck_assert(!refreshed);
        ck_assert_int_eq(r.status, 304);
        cbh_payload_free(&r);
        /* Refreshed (max-age=60 from now), unless memory ran out. */
        ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, body, sizeof body),
                         oom ? CBH_CACHE_STALE : CBH_CACHE_FRESH);
        cbh_cache_free(c);
        tu_alloc_uninstall();
    }
}
END_TEST

/* A 304 that carries a Last-Modified and no ETag, to a request the cache
 * did not make conditional, refreshes the entry with that Last-Modified;
 * one with no validator does not refresh an entry that has one. */
START_TEST(test_304_last_modified_only)
{
    cbh_cache  *c = mk(NULL);
    cbh_payload r;
    bool        refreshed;

    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=0\r\n" LM1, "lm");
    resp_make(&r, 304, "Cache-Control: max-age=60\r\n" LM1, "");
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL, NULL, NULL, &r, now_ms, now_ms, &refreshed),
                     CB_OK);
    ck_assert(refreshed);
    ck_assert_str_eq(r.body, "lm");
    cbh_payload_free(&r);
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    resp_make(&r, 304, "Cache-Control: max-age=600\r\n", "");
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL, NULL, NULL, &r, now_ms, now_ms, &refreshed),
                     CB_OK);
    ck_assert(!refreshed);
    ck_assert_int_eq(r.status, 304);
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

/* A 200 to a HEAD and the stored GET responses (RFC 9111 4.3.5). */
START_TEST(test_head_freshen_cases)
{
    cbh_cache        *c = mk(NULL);
    api_cache_metrics m;
    char              hdrs[700];

    /* No Content-Length stored: the body's length is compared. */
    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=10\r\nETag: \"a\"\r\n", "hello");
    put(c, "HEAD", URL, NULL, 200, "Cache-Control: max-age=100\r\nContent-Length: 5\r\n", "");
    now_ms += 20000;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    put(c, "HEAD", URL, NULL, 200, "Cache-Control: max-age=100\r\nContent-Length: 6\r\n", "");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);

    /* A validator the HEAD response has and the entry lacks: stale. */
    put(c, "GET", URL "e", NULL, 200, "Cache-Control: max-age=600\r\n" LM1, "b");
    put(c, "HEAD", URL "e", NULL, 200, "Cache-Control: max-age=600\r\nETag: \"a\"\r\n", "");
    ck_assert_int_eq(get(c, "GET", URL "e", NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    put(c, "GET", URL "l", NULL, 200, "Cache-Control: max-age=600\r\nETag: \"a\"\r\n", "b");
    put(c, "HEAD", URL "l", NULL, 200, "Cache-Control: max-age=600\r\n" LM1, "");
    ck_assert_int_eq(get(c, "GET", URL "l", NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    /* A stored 404 is not the 200 the HEAD describes: stale. */
    put(c, "GET", URL "404", NULL, 404, "Cache-Control: max-age=600\r\nETag: \"a\"\r\n", "gone");
    put(c, "HEAD", URL "404", NULL, 200, "Cache-Control: max-age=600\r\n", "");
    ck_assert_int_eq(get(c, "GET", URL "404", NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);

    /* The updated entry may no longer be stored: no-store, or too big. */
    put(c, "GET", URL "ns", NULL, 200, "Cache-Control: max-age=600\r\nETag: \"a\"\r\n", "b");
    put(c, "HEAD", URL "ns", NULL, 200, "Cache-Control: no-store\r\nETag: \"a\"\r\n", "");
    ck_assert_int_eq(get(c, "GET", URL "ns", NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_free(c);
    {
        api_cache_config cfg = { .max_entry_bytes = 600 };

        c = mk(&cfg);
        put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=600\r\nETag: \"a\"\r\n", "b");
        snprintf(hdrs, sizeof hdrs,
                 "Cache-Control: max-age=600\r\nETag: \"a\"\r\nX-Pad: %0500d\r\n", 0);
        put(c, "HEAD", URL, NULL, 200, hdrs, "");
        ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
        cbh_cache_metrics(c, &m);
        ck_assert_uint_eq(m.entries, 0);
        cbh_cache_free(c);
    }
}
END_TEST

/* Only a 200 to a HEAD updates GET entries; out of memory the entry stays
 * as it was. */
START_TEST(test_head_freshen_not)
{
    cbh_cache  *c;
    cbh_payload r;

    c = mk(NULL);
    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=600\r\nETag: \"a\"\r\nX-V: 1\r\n", "b");
    put(c, "HEAD", URL, NULL, 404, "Cache-Control: max-age=0\r\nX-V: 2\r\n", "");
    hit(c, "GET", NULL, &r);
    ck_assert_str_eq(hdr(&r, "X-V"), "1");
    cbh_payload_free(&r);
    cbh_cache_free(c);

    tu_alloc_install();
    c = mk(NULL);
    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=10\r\nETag: \"a\"\r\nX-V: 1\r\n", "b");
    resp_make(&r, 200, "Cache-Control: max-age=600\r\nETag: \"a\"\r\nX-V: 2\r\n", "");
    tu_alloc_fail_from(1);
    ck_assert_int_eq(cbh_cache_store(c, "HEAD", URL, NULL, NULL, &r, now_ms, now_ms, NULL), CB_OK);
    ck_assert(tu_alloc_disarm());
    cbh_payload_free(&r);
    hit(c, "GET", NULL, &r);
    ck_assert_str_eq(hdr(&r, "X-V"), "1");
    cbh_payload_free(&r);
    now_ms += 20000;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    cbh_cache_free(c);
    tu_alloc_uninstall();
}
END_TEST

/* A partial answer, stored or not, and a response without a status do not
 * supersede the full response. */
START_TEST(test_partial_keeps_full)
{
    static const char *const range[] = { "Range: bytes=0-1", NULL };
    cbh_cache               *c = mk(NULL);
    cbh_payload              r;

    put(c, "GET", URL, NULL, 200, FRESH_HDRS, "0123456789");
    put(c, "GET", URL, range, 206, FRESH_HDRS "Content-Range: bytes 0-1/10\r\n", "01");
    put(c, "GET", URL, NULL, 206, FRESH_HDRS "Content-Range: bytes 2-3/10\r\n", "23");
    put(c, "GET", URL, NULL, 0, "", "");
    hit(c, "GET", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "0123456789");
    cbh_payload_free(&r);
    hit(c, "GET", range, &r);
    ck_assert_int_eq(r.status, 206);
    ck_assert_str_eq(r.body, "01");
    ck_assert_str_eq(hdr(&r, "Content-Range"), "bytes 0-1/10");
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

/* ---- Ages and stale service ---------------------------------------------- */

/* An initial age plus a time since storage beyond 2^64 ms saturates: the
 * entry is stale, never young again. */
START_TEST(test_age_saturates)
{
    static const char *const any[] = { "Cache-Control: max-stale", NULL };
    cbh_cache               *c = mk(NULL);
    cbh_payload              r = { 0 };
    char                     age[32];

    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=60\r\nAge: 10\r\nETag: \"e\"\r\n", "b");
    now_ms = UINT64_MAX;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    ck_assert(cbh_cache_serve_stale(c, "GET", URL, any, NULL, CB_ERR_TIMEOUT, &r));
    snprintf(age, sizeof age, "%llu", (unsigned long long)(UINT64_MAX / 1000));
    ck_assert_str_eq(hdr(&r, "Age"), age);
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

/* The request's own max-stale lets serve_stale use a stale entry. */
START_TEST(test_serve_stale_request_max_stale)
{
    static const char *const ok[] = { "Cache-Control: max-stale=100", NULL };
    static const char *const short_[] = { "Cache-Control: max-stale=5", NULL };
    cbh_cache               *c = mk(NULL);
    cbh_payload              r = { 0 };

    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=10\r\n", "old");
    now_ms += 30000;
    ck_assert(!cbh_cache_serve_stale(c, "GET", URL, NULL, NULL, CB_ERR_TIMEOUT, &r));
    ck_assert(!cbh_cache_serve_stale(c, "GET", URL, short_, NULL, CB_ERR_TIMEOUT, &r));
    ck_assert(cbh_cache_serve_stale(c, "GET", URL, ok, NULL, CB_ERR_TIMEOUT, &r));
    ck_assert_str_eq(r.body, "old");
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

/* A HEAD with no HEAD entry falls back to the GET entries, but only to one
 * its Vary values match. */
START_TEST(test_head_fallback_vary)
{
    static const char *const a[] = { "X-A: a", NULL };
    static const char *const b[] = { "X-A: b", NULL };
    cbh_cache               *c = mk(NULL);

    put(c, "GET", URL, a, 200, FRESH_HDRS "Vary: X-A\r\n", "a");
    ck_assert_int_eq(get(c, "HEAD", URL, a, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "HEAD", URL, b, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_free(c);
}
END_TEST

/* ---- Invalidation by Location / Content-Location --------------------------- */

/* Stores a fresh entry at the canonical form of u (the form the cache is
 * keyed by). */
static void put_canonical(cbh_cache *c, const char *u)
{
    cbh_url url;
    char    err[64];

    memset(&url, 0, sizeof url);
    ck_assert_int_eq(cbh_url_resolve(NULL, u, &url, err, sizeof err), CB_OK);
    put(c, "GET", url.url, NULL, 200, FRESH_HDRS, "b");
    cbh_url_release(&url);
}

static bool stored_canonical(cbh_cache *c, const char *u)
{
    cbh_url url;
    char    err[64];
    bool    fresh;

    memset(&url, 0, sizeof url);
    ck_assert_int_eq(cbh_url_resolve(NULL, u, &url, err, sizeof err), CB_OK);
    fresh = get(c, "GET", url.url, NULL, NULL, NULL, NULL, 0) == CBH_CACHE_FRESH;
    cbh_url_release(&url);
    return fresh;
}

START_TEST(test_invalidate_related_forms)
{
    static const struct {
        const char *base, *location, *gone;
    } cases[] = {
        { "https://h/a", "https://h/b", "https://h/b" }, /* absolute https */
        { "http://h/a", "//h/b", "http://h/b" },         /* network-path */
        { "http://h", "b", "http://h/b" },               /* relative, no base path */
        { "http://h/d/a", "b", "http://h/d/b" },         /* relative */
        { "http://h/a", "http://h/b", "http://h/b" },    /* absolute http */
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cbh_cache *c = mk(NULL);
        api_header h[] = { { "Location", cases[i].location } };

        put_canonical(c, cases[i].gone);
        put_canonical(c, "http://h/keep");
        cbh_cache_invalidate_related(c, cases[i].base, h, 1);
        ck_assert_msg(!stored_canonical(c, cases[i].gone), "%s + %s", cases[i].base,
                      cases[i].location);
        ck_assert(stored_canonical(c, "http://h/keep"));
        cbh_cache_free(c);
    }
    {
        /* A reference that does not resolve (a space) invalidates nothing;
         * neither does one whose copy cannot be allocated. */
        cbh_cache *c;
        api_header bad[] = { { "Location", "/b c" }, { "Content-Location", "/keep" } };

        tu_alloc_install();
        c = mk(NULL);
        put_canonical(c, "http://h/keep");
        cbh_cache_invalidate_related(c, "http://h/a", bad, 1);
        ck_assert(stored_canonical(c, "http://h/keep"));
        tu_alloc_fail_from(1);
        cbh_cache_invalidate_related(c, "http://h/a", bad + 1, 1);
        ck_assert(tu_alloc_disarm());
        ck_assert(stored_canonical(c, "http://h/keep"));
        cbh_cache_invalidate_related(c, "http://h/a", bad + 1, 1);
        ck_assert(!stored_canonical(c, "http://h/keep"));
        cbh_cache_free(c);
        tu_alloc_uninstall();
    }
}
END_TEST

/* min-fresh and max-stale of the request, against the entry's age. */
START_TEST(test_request_freshness_directives)
{
    static const char *const fresh30[] = { "Cache-Control: min-fresh=30", NULL };
    static const char *const fresh70[] = { "Cache-Control: min-fresh=70", NULL };
    static const char *const stale100[] = { "Cache-Control: max-stale=100", NULL };
    static const char *const stale5[] = { "Cache-Control: max-stale=5", NULL };
    api_cache_options        plain = { .max_stale_ms = 1 };
    cbh_cache               *c = mk(NULL);
    cbh_payload              r;

    put(c, "GET", URL, NULL, 200, FRESH_HDRS "ETag: \"e\"\r\n", "b");
    put(c, "GET", URL "m", NULL, 200,
        "Cache-Control: max-age=10, must-revalidate\r\nETag: \"e\"\r\n", "m");
    ck_assert_int_eq(get(c, "GET", URL, fresh30, &plain, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL, fresh70, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    now_ms += 70000; /* 10 s stale */
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    hit(c, "GET", stale100, &r);
    ck_assert_str_eq(r.body, "b");
    ck_assert_str_eq(hdr(&r, "Age"), "70");
    cbh_payload_free(&r);
    ck_assert_int_eq(get(c, "GET", URL, stale5, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    /* must-revalidate: never served stale. */
    ck_assert_int_eq(get(c, "GET", URL "m", stale100, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    cbh_cache_free(c);
}
END_TEST

/* More Vary normalising: list members joined by one comma, over every
 * line of the name; and a too-big Vary block stays too big whatever
 * names follow. */
START_TEST(test_vary_lists)
{
    static const char *const spaced[] = { "X-A: a , b", NULL };
    static const char *const tight[] = { "X-A: a,b", NULL };
    static const char *const lines[] = { "X-A: a", "X-A: b", NULL };
    static const char *const blank[] = { "X-A: a b", NULL };
    static char              big[1100];
    const char              *big_req[] = { big, "X-A: a", NULL };
    cbh_cache               *c = mk(NULL);

    put(c, "GET", URL, spaced, 200, FRESH_HDRS "Vary: X-A\r\n", "b");
    ck_assert_int_eq(get(c, "GET", URL, tight, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL, lines, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    ck_assert_int_eq(get(c, "GET", URL, blank, NULL, NULL, NULL, 0), CBH_CACHE_MISS);
    cbh_cache_free(c);
    snprintf(big, sizeof big, "X-Big: %01050d", 0);
    ck_assert(!vary_stored(1000, FRESH_HDRS "Vary: X-Big, X-A\r\n", big_req));
    ck_assert(vary_stored(1000, FRESH_HDRS "Vary: X-A\r\n", big_req));
}
END_TEST

/* A 416 is kept for its range only, like a 206, and a new partial answer
 * for a range replaces the old one for it. */
START_TEST(test_partial_answers)
{
    static const char *const far[] = { "Range: bytes=100-", NULL };
    static const char *const near[] = { "Range: bytes=0-1", NULL };
    cbh_cache               *c = mk(NULL);
    cbh_payload              r;
    api_cache_metrics        m;

    put(c, "GET", URL, NULL, 200, FRESH_HDRS, "0123456789");
    put(c, "GET", URL, far, 416, FRESH_HDRS "Content-Range: bytes */10\r\n", "");
    hit(c, "GET", far, &r);
    ck_assert_int_eq(r.status, 416);
    cbh_payload_free(&r);
    hit(c, "GET", NULL, &r);
    ck_assert_int_eq(r.status, 200);
    cbh_payload_free(&r);
    put(c, "GET", URL, near, 206, FRESH_HDRS "Content-Range: bytes 0-1/10\r\n", "01");
    put(c, "GET", URL, near, 206, FRESH_HDRS "Content-Range: bytes 0-1/10\r\n", "ab");
    hit(c, "GET", near, &r);
    ck_assert_int_eq(r.status, 206);
    ck_assert_str_eq(r.body, "ab");
    cbh_payload_free(&r);
    cbh_cache_metrics(c, &m);
    ck_assert_uint_eq(m.entries, 3);
    cbh_cache_free(c);
}
END_TEST

/* A 304 served for the caller's conditional carries only the fields a 304
 * has (RFC 9110 15.4.5), not those about the body. */
START_TEST(test_304_fields)
{
    static const char *const req[] = { "If-None-Match: \"e\"", NULL };
    cbh_cache               *c = mk(NULL);
    cbh_payload              r;

    put(c, "GET", URL, NULL, 200,
        FRESH_HDRS "ETag: \"e\"\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n", "b");
    hit(c, "GET", req, &r);
    ck_assert_int_eq(r.status, 304);
    ck_assert_ptr_null(hdr(&r, "Content-Type"));
    ck_assert_ptr_null(hdr(&r, "Content-Length"));
    ck_assert_str_eq(hdr(&r, "ETag"), "\"e\"");
    ck_assert_str_eq(hdr(&r, "Cache-Control"), "max-age=60");
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

/* A response without a body (NULL) is stored with an empty one. */
START_TEST(test_null_body_stored)
{
    cbh_cache  *c = mk(NULL);
    cbh_payload r;

    resp_make(&r, 200, FRESH_HDRS, "");
    cbh_free(r.body);
    r.body = NULL;
    ck_assert_int_eq(cbh_cache_store(c, "GET", URL, NULL, NULL, &r, now_ms, now_ms, NULL), CB_OK);
    cbh_payload_free(&r);
    hit(c, "GET", NULL, &r);
    ck_assert_ptr_nonnull(r.body);
    ck_assert_uint_eq(r.body_len, 0);
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

/* Each allocation of a refreshing 304 failing in turn: either the stored
 * response comes back refreshed, or CB_ERR_NOMEM and the 304 as it was. */
START_TEST(test_304_refresh_oom)
{
    unsigned long k;
    int           nomem = 0, ok = 0;

    for (k = 1; k <= 12; k++) {
        cbh_cache     *c;
        cbh_cache_cond cond;
        cbh_payload    r;
        bool           refreshed;
        cb_err         err;

        tu_alloc_install();
        c = mk(NULL);
        put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=0\r\nETag: \"e\"\r\nX-A: 1\r\n",
            "body");
        ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, &cond, NULL, 0), CBH_CACHE_STALE);
        resp_make(&r, 304, "Cache-Control: max-age=60\r\nETag: \"e\"\r\nX-B: 2\r\n", "");
        tu_alloc_fail_at(k);
        err = cbh_cache_store(c, "GET", URL, NULL, &cond, &r, now_ms, now_ms, &refreshed);
        tu_alloc_disarm();
        if (err == CB_OK) {
            ck_assert(refreshed);
            ck_assert_int_eq(r.status, 200);
            ck_assert_str_eq(r.body, "body");
            ck_assert_str_eq(hdr(&r, "X-B"), "2");
            ok++;
        } else {
            ck_assert_int_eq(err, CB_ERR_NOMEM);
            ck_assert(!refreshed);
            ck_assert_int_eq(r.status, 304);
            nomem++;
        }
        cbh_payload_free(&r);
        cbh_cache_free(c);
        tu_alloc_uninstall();
    }
    ck_assert_int_ge(nomem, 4);
    ck_assert_int_ge(ok, 1);
}
END_TEST

/* Making a cache with each of its allocations failing. */
START_TEST(test_new_oom)
{
    unsigned long k;

    for (k = 1; k <= 2; k++) {
        tu_alloc_install();
        tu_alloc_fail_at(k);
        ck_assert_ptr_null(cbh_cache_new(NULL, fake_clock, NULL, fake_wall, NULL));
        ck_assert(tu_alloc_disarm());
        tu_alloc_uninstall();
    }
}
END_TEST

/* More HEAD 200s against stored GETs: the same Last-Modified updates the
 * entry, another one or another ETag makes it stale. */
START_TEST(test_head_freshen_validators)
{
    cbh_cache *c = mk(NULL);

    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=10\r\n" LM1, "b");
    put(c, "HEAD", URL, NULL, 200, "Cache-Control: max-age=100\r\n" LM1, "");
    now_ms += 20000;
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_FRESH);
    put(c, "HEAD", URL, NULL, 200, "Cache-Control: max-age=100\r\n" LM2, "");
    ck_assert_int_eq(get(c, "GET", URL, NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    put(c, "GET", URL "e", NULL, 200, "Cache-Control: max-age=100\r\nETag: \"a\"\r\n", "b");
    put(c, "HEAD", URL "e", NULL, 200, "Cache-Control: max-age=100\r\nETag: \"b\"\r\n", "");
    ck_assert_int_eq(get(c, "GET", URL "e", NULL, NULL, NULL, NULL, 0), CBH_CACHE_STALE);
    cbh_cache_free(c);
}
END_TEST

/* serve_stale takes the largest of what the entry, the options and the
 * request allow. */
START_TEST(test_serve_stale_largest_allowance)
{
    static const char *const small[] = { "Cache-Control: max-stale=5", NULL };
    api_cache_options        opts = { .max_stale_ms = 100000 };
    cbh_cache               *c = mk(NULL);
    cbh_payload              r = { 0 };

    put(c, "GET", URL, NULL, 200, "Cache-Control: max-age=10\r\n", "old");
    now_ms += 30000;
    ck_assert(cbh_cache_serve_stale(c, "GET", URL, small, &opts, CB_ERR_TIMEOUT, &r));
    ck_assert_str_eq(r.body, "old");
    cbh_payload_free(&r);
    cbh_cache_free(c);
}
END_TEST

/* Location on another origin, an absolute http one, and fields that are
 * neither Location nor Content-Location. */
START_TEST(test_invalidate_related_origin)
{
    cbh_cache *c = mk(NULL);
    api_header h[] = { { "X-Location", "/a" },
                       { "Location", "http://other/a" },
                       { "Content-Location", "http://h/b" } };

    put_canonical(c, "http://h/a");
    put_canonical(c, "http://h/b");
    cbh_cache_invalidate_related(c, "http://h/x", h, 3);
    ck_assert(stored_canonical(c, "http://h/a"));
    ck_assert(!stored_canonical(c, "http://h/b"));
    cbh_cache_free(c);
}
END_TEST

static Suite *cache_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("cache");
    TCase *st = tcase_create("stress");

    tcase_add_test(tc, test_304_update_exact);
    tcase_add_test(tc, test_5xx_beside_good);
    tcase_add_test(tc, test_range_edges);
    tcase_add_test(tc, test_head_response_updates_get);
    tcase_add_test(tc, test_caller_304_kept);
    tcase_add_test(tc, test_vary_quotes_and_empty);
    tcase_add_test(tc, test_fresh_hit);
    tcase_add_test(tc, test_expiry_gives_stale_with_cond);
    tcase_add_test(tc, test_age_header_and_date);
    tcase_add_test(tc, test_no_validator_miss_but_kept);
    tcase_add_test(tc, test_no_store_not_stored);
    tcase_add_test(tc, test_no_cache_always_stale);
    tcase_add_test(tc, test_serve_stale_rules);
    tcase_add_test(tc, test_serve_stale_replaces_payload);
    tcase_add_test(tc, test_304_merge_and_refresh);
    tcase_add_loop_test(tc, test_304_for_replaced_version, 0,
                        sizeof(replaced_cases) / sizeof(replaced_cases[0]));
    tcase_add_test(tc, test_304_without_cond);
    tcase_add_test(tc, test_304_picks_validated_variant);
    tcase_add_test(tc, test_vary_variants);
    tcase_add_test(tc, test_variants_bounded_per_url);
    tcase_add_test(tc, test_head);
    tcase_add_test(tc, test_head_revalidates_get_entry);
    tcase_add_test(tc, test_new_answer_supersedes);
    tcase_add_test(tc, test_invalidate);
    tcase_add_test(tc, test_lru_by_entries);
    tcase_add_test(tc, test_lru_by_bytes);
    tcase_add_test(tc, test_per_entry_cap);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_bypass);
    tcase_add_test(tc, test_request_directives);
    tcase_add_test(tc, test_metrics_counts);
    tcase_add_test(tc, test_many_urls);
    tcase_add_test(tc, test_extreme_bounds);
    tcase_add_test(tc, test_304_impossible_header_count);
    tcase_add_test(tc, test_extreme_clocks);
    tcase_add_test(tc, test_alloc_failures);
    tcase_add_test(tc, test_request_lines);
    tcase_add_test(tc, test_vary_normalising);
    tcase_add_test(tc, test_vary_block_bounds);
    tcase_add_test(tc, test_hash_collisions);
    tcase_add_test(tc, test_table_grow_oom);
    tcase_add_test(tc, test_inm_lists);
    tcase_add_test(tc, test_ims_edges);
    tcase_add_test(tc, test_if_range_edges);
    tcase_add_test(tc, test_range_served_fields);
    tcase_add_test(tc, test_cond_lines_checked);
    tcase_add_test(tc, test_max_stale_skips_5xx);
    tcase_add_test(tc, test_null_arguments);
    tcase_add_test(tc, test_caller_ims_not_mixed);
    tcase_add_test(tc, test_304_merge_nothing);
    tcase_add_test(tc, test_304_grows_past_cap);
    tcase_add_test(tc, test_caller_ims_304);
    tcase_add_test(tc, test_304_last_modified_only);
    tcase_add_test(tc, test_head_freshen_cases);
    tcase_add_test(tc, test_head_freshen_not);
    tcase_add_test(tc, test_partial_keeps_full);
    tcase_add_test(tc, test_age_saturates);
    tcase_add_test(tc, test_serve_stale_request_max_stale);
    tcase_add_test(tc, test_head_fallback_vary);
    tcase_add_test(tc, test_invalidate_related_forms);
    tcase_add_test(tc, test_request_freshness_directives);
    tcase_add_test(tc, test_vary_lists);
    tcase_add_test(tc, test_partial_answers);
    tcase_add_test(tc, test_304_fields);
    tcase_add_test(tc, test_null_body_stored);
    tcase_add_test(tc, test_304_refresh_oom);
    tcase_add_test(tc, test_new_oom);
    tcase_add_test(tc, test_head_freshen_validators);
    tcase_add_test(tc, test_serve_stale_largest_allowance);
    tcase_add_test(tc, test_invalidate_related_origin);
    suite_add_tcase(s, tc);

    tcase_add_test(st, test_concurrent);
    tcase_set_timeout(st, 60);
    suite_add_tcase(s, st);
    return s;
}

int main(void) { return tu_run_suite(cache_suite()); }
