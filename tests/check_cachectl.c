/* HTTP-date parsing/formatting and the Cache-Control / freshness rules of
 * RFC 9111 for a private cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "alloc.h"
#include "cachectl.h"
#include "cbhttp.h"
#include "headers.h"
#include "httpdate.h"

#include "helpers/testutil.h"

/* 1994-11-06 08:49:37 UTC, the RFC's example date. */
#define RFC_EPOCH 784111777LL

/* ---- httpdate ------------------------------------------------------------ */

START_TEST(test_date_three_formats)
{
    int64_t e = 0;

    ck_assert(cbh_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", &e));
    ck_assert_int_eq(e, RFC_EPOCH);
    e = 0;
    ck_assert(cbh_http_date_parse("Sunday, 06-Nov-94 08:49:37 GMT", &e));
    ck_assert_int_eq(e, RFC_EPOCH);
    e = 0;
    ck_assert(cbh_http_date_parse("Sun Nov  6 08:49:37 1994", &e));
    ck_assert_int_eq(e, RFC_EPOCH);
    ck_assert(cbh_http_date_parse("Thu, 01 Jan 1970 00:00:00 GMT", &e));
    ck_assert_int_eq(e, 0);
    ck_assert(cbh_http_date_parse("Wed Dec 31 23:59:59 1969", &e));
    ck_assert_int_eq(e, -1);
    ck_assert(cbh_http_date_parse("Fri, 31 Dec 9999 23:59:59 GMT", &e));
    ck_assert_int_eq(e, 253402300799LL);
    /* Case and surrounding whitespace are tolerated. */
    ck_assert(cbh_http_date_parse("  sun, 06 nov 1994 08:49:37 gmt ", &e));
    ck_assert_int_eq(e, RFC_EPOCH);
    ck_assert(cbh_http_date_parse("Sun Nov 16 08:49:37 1994", &e));
    ck_assert_int_eq(e, RFC_EPOCH + 10 * 86400);
    /* Tabs are whitespace too, at either end and in each form. */
    e = 0;
    ck_assert(cbh_http_date_parse("\t Sun, 06 Nov 1994 08:49:37 GMT\t", &e));
    ck_assert_int_eq(e, RFC_EPOCH);
    e = 0;
    ck_assert(cbh_http_date_parse("\tSunday, 06-Nov-94 08:49:37 GMT \t", &e));
    ck_assert_int_eq(e, RFC_EPOCH);
    e = 0;
    ck_assert(cbh_http_date_parse("Sun Nov  6 08:49:37 1994\t", &e));
    ck_assert_int_eq(e, RFC_EPOCH);
}
END_TEST

START_TEST(test_date_two_digit_years)
{
    int64_t e;

    ck_assert(cbh_http_date_parse("Thursday, 01-Jan-70 00:00:00 GMT", &e));
    ck_assert_int_eq(e, 0);
    ck_assert(cbh_http_date_parse("Friday, 31-Dec-99 23:59:59 GMT", &e));
    ck_assert_int_eq(e, 946684799LL);
    ck_assert(cbh_http_date_parse("Saturday, 01-Jan-00 00:00:00 GMT", &e));
    ck_assert_int_eq(e, 946684800LL);
    ck_assert(cbh_http_date_parse("Tuesday, 31-Dec-69 00:00:00 GMT", &e));
    ck_assert_int_eq(e, 3155673600LL); /* 2069-12-31 */
}
END_TEST

START_TEST(test_date_leap_years)
{
    int64_t e;

    ck_assert(cbh_http_date_parse("Thu, 29 Feb 2024 12:00:00 GMT", &e));
    ck_assert_int_eq(e, 1709208000LL);
    ck_assert(cbh_http_date_parse("Tue, 29 Feb 2000 00:00:00 GMT", &e));
    ck_assert_int_eq(e, 951782400LL);
    ck_assert(!cbh_http_date_parse("Thu, 29 Feb 1900 00:00:00 GMT", &e));
    ck_assert(!cbh_http_date_parse("Wed, 29 Feb 2023 00:00:00 GMT", &e));
    ck_assert(!cbh_http_date_parse("Tue, 29 Feb 2100 00:00:00 GMT", &e));
    /* A leap second reads as :59 (POSIX time has none). */
    ck_assert(cbh_http_date_parse("Mon, 31 Dec 2024 23:59:60 GMT", &e));
    ck_assert_int_eq(e, 1735689599LL);
}
END_TEST

/* Found by fuzz_httpdate: a leap second at the end of 9999 parsed to a
 * time in year 10000, which no HTTP-date can write back. */
START_TEST(test_date_leap_second_9999)
{
    int64_t e, again;
    char    buf[40];

    ck_assert(cbh_http_date_parse("Fri, 31 Dec 9999 23:59:60 GMT", &e));
    ck_assert_int_eq(e, 253402300799LL);
    cbh_http_date_format(e, buf, sizeof(buf));
    ck_assert_str_eq(buf, "Fri, 31 Dec 9999 23:59:59 GMT");
    ck_assert(cbh_http_date_parse(buf, &again));
    ck_assert_int_eq(again, e);
}
END_TEST

static const char *const bad_dates[] = {
    "",
    "0",
    "-1",
    "garbage",
    "Sun, 06 Nov 1994 08:49:37",
    "Sun, 06 Nov 1994 08:49:37 UTC",
    "Sun, 06 Nov 1994 08:49:37 GMT junk",
    "Sun, 6 Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 94 08:49:37 GMT",
    "Sun, 32 Jan 1994 08:49:37 GMT",
    "Sun, 00 Jan 1994 08:49:37 GMT",
    "Sun, 31 Apr 1994 08:49:37 GMT",
    "Sun, 06 Foo 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 24:00:00 GMT",
    "Sun, 06 Nov 1994 23:60:00 GMT",
    "Sun, 06 Nov 1994 23:59:61 GMT",
    "Sun, 06 Nov 1994 8:49:37 GMT",
    "Xyz, 06 Nov 1994 08:49:37 GMT",
    "Sun,06 Nov 1994 08:49:37 GMT",
    "Sunday, 06-Nov-1994 08:49:37 GMT",
    "Sunday, 06 Nov 94 08:49:37 GMT",
    "Sun Nov 6 08:49:37 1994",
    "Sun Nov  6 08:49:37 94",
    "Sun Nov  6 08:49:37 1994 GMT",
    "Sun, 06 Nov 1994 08:49:37 GMT\r\nX: y",
    "Sun, 06 Nov 19a4 08:49:37 GMT",
    "Sun, 06 Nov 1994 08:49:37 GMTGMTGMTGMTGMTGMTGMTGMTGMTGMTGMTGMTGMTGMTGMTGMTGMT",
    /* Each part of each form wrong in turn, the rest right. */
    "Sun, 06-Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov-1994 08:49:37 GMT",
    "Sun, 06 Nov 1994-08:49:37 GMT",
    "Sun, 06 Nov 1994 08-49:37 GMT",
    "Sun, 06 Nov 1994 08:4x:37 GMT",
    "Sun, 06 Nov 1994 08:49-37 GMT",
    "Sun, 06 Nov 1994 08:49:3x GMT",
    "Sunday,06-Nov-94 08:49:37 GMT",
    "Sunday, 0x-Nov-94 08:49:37 GMT",
    "Sunday, 06-Nox-94 08:49:37 GMT",
    "Sunday, 06-Nov 94 08:49:37 GMT",
    "Sunday, 06-Nov-9x 08:49:37 GMT",
    "Sunday, 06-Nov-94-08:49:37 GMT",
    "Sunday, 06-Nov-94 08:49:x7 GMT",
    "Sunday, 06-Nov-94 08:49:37 UTC",
    "Sunday, 06-Nov-94 08:49:37 GMTx",
    "Sunday, 31-Nov-94 08:49:37 GMT",
    "Sunx Nov  6 08:49:37 1994",
    "Sun Nox  6 08:49:37 1994",
    "Sun Nov_ 6 08:49:37 1994",
    "Sun Nov  x 08:49:37 1994",
    "Sun Nov x6 08:49:37 1994",
    "Sun Nov  6_08:49:37 1994",
    "Sun Nov  6 08:49:3x 1994",
    "Sun Nov  6 08:49:37_1994",
    "Sun Nov  6 08:49:37 19x4",
    "Sun Nov 31 08:49:37 1994",
};

START_TEST(test_date_invalid)
{
    int64_t e = 42;

    ck_assert_msg(!cbh_http_date_parse(bad_dates[_i], &e), "accepted: %s", bad_dates[_i]);
    ck_assert_int_eq(e, 42);
}
END_TEST

START_TEST(test_date_null)
{
    int64_t e;

    ck_assert(!cbh_http_date_parse(NULL, &e));
    ck_assert(!cbh_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", NULL));
}
END_TEST

START_TEST(test_date_format_round_trip)
{
    static const int64_t samples[] = { 0,
                                       1,
                                       RFC_EPOCH,
                                       951782400LL,
                                       1709208000LL,
                                       1735689599LL,
                                       2147483647LL,
                                       4102444800LL,
                                       253402300799LL,
                                       -1,
                                       -86400 };
    char                 buf[40];
    size_t               i;
    int64_t              e, t;

    cbh_http_date_format(RFC_EPOCH, buf, sizeof buf);
    ck_assert_str_eq(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    cbh_http_date_format(0, buf, sizeof buf);
    ck_assert_str_eq(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    cbh_http_date_format(-1, buf, sizeof buf);
    ck_assert_str_eq(buf, "Wed, 31 Dec 1969 23:59:59 GMT");
    for (i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        cbh_http_date_format(samples[i], buf, sizeof buf);
        ck_assert_uint_eq(strlen(buf), 29);
        ck_assert_msg(cbh_http_date_parse(buf, &e), "%s", buf);
        ck_assert_int_eq(e, samples[i]);
    }
    /* Every day over several years, including 2000 and 2100. */
    for (t = 946000000LL; t < 946000000LL + 4LL * 366 * 86400; t += 86400 + 3607) {
        cbh_http_date_format(t, buf, sizeof buf);
        ck_assert(cbh_http_date_parse(buf, &e));
        ck_assert_int_eq(e, t);
    }
    for (t = 4102000000LL; t < 4102000000LL + 2LL * 366 * 86400; t += 86400 + 1) {
        cbh_http_date_format(t, buf, sizeof buf);
        ck_assert(cbh_http_date_parse(buf, &e));
        ck_assert_int_eq(e, t);
    }
    /* Out of four-digit range: clamped, never overflowing the buffer. */
    cbh_http_date_format(INT64_MAX, buf, sizeof buf);
    ck_assert_str_eq(buf, "Fri, 31 Dec 9999 23:59:59 GMT");
    cbh_http_date_format(INT64_MIN, buf, sizeof buf);
    ck_assert(cbh_http_date_parse(buf, &e));
    cbh_http_date_format(RFC_EPOCH, buf, 10);
    ck_assert_uint_eq(strlen(buf), 9);
    /* Size 0 writes nothing; a NULL buffer is refused, not written. */
    memset(buf, 'x', sizeof buf);
    cbh_http_date_format(RFC_EPOCH, buf, 0);
    ck_assert_int_eq(buf[0], 'x');
    cbh_http_date_format(RFC_EPOCH, NULL, 30);
}
END_TEST

/* ---- Cache-Control ------------------------------------------------------- */

static cbh_cc cc_of(const char *v)
{
    cbh_cc cc;

    memset(&cc, 0, sizeof cc);
    cbh_cc_parse(v, &cc);
    return cc;
}

START_TEST(test_cc_directives)
{
    cbh_cc cc = cc_of("no-store");

    ck_assert(cc.no_store && !cc.no_cache && !cc.has_max_age);
    cc = cc_of("No-Cache");
    ck_assert(cc.no_cache && !cc.no_store);
    cc = cc_of("no-cache=\"Set-Cookie, X-Foo\"");
    ck_assert(cc.no_cache);
    cc = cc_of("must-revalidate");
    ck_assert(cc.must_revalidate);
    cc = cc_of("proxy-revalidate");
    ck_assert(cc.must_revalidate);
    cc = cc_of("only-if-cached");
    ck_assert(cc.only_if_cached);
    cc = cc_of("MAX-AGE=60");
    ck_assert(cc.has_max_age);
    ck_assert_uint_eq(cc.max_age_s, 60);
    cc = cc_of("stale-if-error=300");
    ck_assert(cc.has_stale_if_error);
    ck_assert_uint_eq(cc.stale_if_error_s, 300);
    /* Ignored: private (we are a private cache), public, s-maxage, unknown. */
    cc = cc_of("private, public, s-maxage=5, immutable, x-custom=\"a,b\"");
    ck_assert(!cc.no_store && !cc.no_cache && !cc.has_max_age && !cc.must_revalidate);
    cc = cc_of("private=\"Set-Cookie\", max-age=10");
    ck_assert_uint_eq(cc.max_age_s, 10);
}
END_TEST

START_TEST(test_cc_syntax)
{
    cbh_cc cc = cc_of("  max-age = 30 ,  ,, no-cache  ");

    ck_assert(cc.has_max_age && cc.no_cache);
    ck_assert_uint_eq(cc.max_age_s, 30);
    cc = cc_of("max-age=\"45\"");
    ck_assert_uint_eq(cc.max_age_s, 45);
    /* A comma inside a quoted string does not end the directive. */
    cc = cc_of("x=\"a, no-store, b\", max-age=5");
    ck_assert(!cc.no_store);
    ck_assert_uint_eq(cc.max_age_s, 5);
    cc = cc_of("x=\"a \\\" no-store\", max-age=6");
    ck_assert(!cc.no_store);
    ck_assert_uint_eq(cc.max_age_s, 6);
    /* Unterminated quote: the rest is its value. */
    cc = cc_of("x=\"open, no-store");
    ck_assert(!cc.no_store);
    cc = cc_of("");
    ck_assert(!cc.has_max_age && !cc.no_store);
    cc = cc_of(",;=, no-store");
    ck_assert(cc.no_store);
    cbh_cc_parse(NULL, &cc);
    cbh_cc_parse("no-store", NULL);
}
END_TEST

START_TEST(test_cc_overflow_and_invalid)
{
    cbh_cc cc = cc_of("max-age=99999999999999999999");

    ck_assert(cc.has_max_age);
    ck_assert_uint_eq(cc.max_age_s, 2147483648ULL);
    cc = cc_of("max-age=2147483647");
    ck_assert_uint_eq(cc.max_age_s, 2147483647ULL);
    /* Invalid freshness is no freshness (RFC 9111 4.2.1). */
    cc = cc_of("max-age=abc");
    ck_assert(cc.has_max_age);
    ck_assert_uint_eq(cc.max_age_s, 0);
    cc = cc_of("max-age=-5");
    ck_assert_uint_eq(cc.max_age_s, 0);
    cc = cc_of("max-age=");
    ck_assert(cc.has_max_age);
    ck_assert_uint_eq(cc.max_age_s, 0);
    cc = cc_of("max-age");
    ck_assert_uint_eq(cc.max_age_s, 0);
    cc = cc_of("max-age=12abc");
    ck_assert_uint_eq(cc.max_age_s, 0);
    cc = cc_of("max-age=1.5");
    ck_assert_uint_eq(cc.max_age_s, 0);
    /* Invalid stale-if-error grants nothing. */
    cc = cc_of("stale-if-error=x");
    ck_assert(!cc.has_stale_if_error);
    cc = cc_of("stale-if-error=99999999999999999999999");
    ck_assert_uint_eq(cc.stale_if_error_s, 2147483648ULL);
}
END_TEST

START_TEST(test_cc_combine_most_restrictive)
{
    cbh_cc cc = cc_of("max-age=100");

    cbh_cc_parse("max-age=10", &cc);
    ck_assert_uint_eq(cc.max_age_s, 10);
    cbh_cc_parse("max-age=50", &cc);
    ck_assert_uint_eq(cc.max_age_s, 10);
    cc = cc_of("max-age=60, max-age=0");
    ck_assert_uint_eq(cc.max_age_s, 0);
    cc = cc_of("stale-if-error=60, stale-if-error=30");
    ck_assert_uint_eq(cc.stale_if_error_s, 30);
    cc = cc_of("public, max-age=60");
    cbh_cc_parse("no-store", &cc);
    ck_assert(cc.no_store && cc.has_max_age);
}
END_TEST

/* Builds a header block from a raw string. */
static api_header *hdrs(const char *raw, size_t *count)
{
    api_header *h = NULL;
    size_t      size;

    ck_assert_int_eq(cbh_headers_parse(raw, strlen(raw), &h, count, &size), CB_OK);
    return h;
}

START_TEST(test_cc_from_headers)
{
    size_t      n;
    api_header *h = hdrs("Cache-Control: max-age=60\r\nX: y\r\ncache-control: no-cache\r\n"
                         "CACHE-CONTROL: max-age=30\r\n",
                         &n);
    cbh_cc      cc = { 0 };

    cbh_cc_from_headers(h, n, &cc);
    ck_assert(cc.no_cache);
    ck_assert_uint_eq(cc.max_age_s, 30);
    cbh_free(h);
}
END_TEST

/* ---- Freshness --------------------------------------------------------- */

#define NOW 1700000000LL
#define DATE_NOW "Tue, 14 Nov 2023 22:13:20 GMT" /* == NOW */

static cbh_freshness fresh_of(long status, const char *raw, bool heuristic)
{
    size_t        n = 0;
    api_header   *h = hdrs(raw, &n);
    cbh_freshness f;

    cbh_freshness_of(status, h, n, NOW, NOW, heuristic, &f);
    cbh_free(h);
    return f;
}

START_TEST(test_date_constant)
{
    int64_t e;

    ck_assert(cbh_http_date_parse(DATE_NOW, &e));
    ck_assert_int_eq(e, NOW);
}
END_TEST

START_TEST(test_fresh_max_age)
{
    cbh_freshness f = fresh_of(200,
                               "Date: " DATE_NOW "\r\nCache-Control: max-age=60\r\n"
                               "Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
                               false);

    /* max-age wins over Expires. */
    ck_assert(f.storable);
    ck_assert(!f.has_validator);
    ck_assert_uint_eq(f.lifetime_ms, 60000);
    ck_assert_uint_eq(f.initial_age_ms, 0);
    f = fresh_of(200, "Cache-Control: max-age=99999999999999999999\r\n", false);
    ck_assert_uint_eq(f.lifetime_ms, 2147483648000ULL);
}
END_TEST

START_TEST(test_fresh_expires)
{
    cbh_freshness f = fresh_of(200,
                               "Date: Tue, 14 Nov 2023 22:00:00 GMT\r\n"
                               "Expires: Tue, 14 Nov 2023 22:10:00 GMT\r\n",
                               false);

    /* Expires - Date, whatever our own clock says. */
    ck_assert(f.storable);
    ck_assert_uint_eq(f.lifetime_ms, 600000);
    /* ...but the response is 800 s old by our clock (apparent age). */
    ck_assert_uint_eq(f.initial_age_ms, 800000);
    /* No Date: the response time stands in. */
    f = fresh_of(200, "Expires: Tue, 14 Nov 2023 22:14:20 GMT\r\n", false);
    ck_assert_uint_eq(f.lifetime_ms, 60000);
    /* Invalid Expires: already expired, and nothing else to keep it for. */
    f = fresh_of(200, "Expires: 0\r\n", false);
    ck_assert_uint_eq(f.lifetime_ms, 0);
    ck_assert(!f.storable);
    f = fresh_of(200, "Expires: 0\r\nETag: \"a\"\r\n", false);
    ck_assert_uint_eq(f.lifetime_ms, 0);
    ck_assert(f.storable);
    /* Expires in the past. */
    f = fresh_of(200, "Date: " DATE_NOW "\r\nExpires: Tue, 14 Nov 2023 22:00:00 GMT\r\n", false);
    ck_assert_uint_eq(f.lifetime_ms, 0);
}
END_TEST

START_TEST(test_fresh_heuristic)
{
    const char   *raw = "Date: " DATE_NOW "\r\n"
                        "Last-Modified: Tue, 14 Nov 2023 20:13:20 GMT\r\n"; /* 2 h before */
    cbh_freshness f = fresh_of(200, raw, false);

    ck_assert_uint_eq(f.lifetime_ms, 0);
    ck_assert(f.has_validator);
    ck_assert(f.storable);
    f = fresh_of(200, raw, true);
    ck_assert_uint_eq(f.lifetime_ms, 720000); /* 10% of 2 h */
    /* Capped at one day. */
    f = fresh_of(200, "Date: " DATE_NOW "\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
                 true);
    ck_assert_uint_eq(f.lifetime_ms, 86400000);
    /* Not for statuses that need explicit freshness. */
    f = fresh_of(302, raw, true);
    ck_assert_uint_eq(f.lifetime_ms, 0);
    ck_assert(!f.storable);
    /* Explicit freshness overrides the heuristic, even a zero one. */
    f = fresh_of(
        200, "Cache-Control: max-age=0\r\nLast-Modified: Tue, 14 Nov 2023 20:13:20 GMT\r\n", true);
    ck_assert_uint_eq(f.lifetime_ms, 0);
    /* Last-Modified in the future gives nothing. */
    f = fresh_of(200, "Date: " DATE_NOW "\r\nLast-Modified: Wed, 15 Nov 2023 20:13:20 GMT\r\n",
                 true);
    ck_assert_uint_eq(f.lifetime_ms, 0);
}
END_TEST

START_TEST(test_fresh_age)
{
    size_t        n;
    api_header   *h;
    cbh_freshness f = fresh_of(200, "Cache-Control: max-age=60\r\nAge: 25\r\n", false);

    ck_assert_uint_eq(f.initial_age_ms, 25000);
    /* Age plus the response delay. */
    h = hdrs("Date: " DATE_NOW "\r\nCache-Control: max-age=60\r\nAge: 10\r\n", &n);
    cbh_freshness_of(200, h, n, NOW - 3, NOW, false, &f);
    ck_assert_uint_eq(f.initial_age_ms, 13000);
    /* The apparent age wins when larger. */
    cbh_freshness_of(200, h, n, NOW + 60, NOW + 100, false, &f);
    ck_assert_uint_eq(f.initial_age_ms, 100000);
    /* A Date in the future gives no negative age. */
    cbh_freshness_of(200, h, n, NOW - 500, NOW - 500, false, &f);
    ck_assert_uint_eq(f.initial_age_ms, 10000);
    cbh_free(h);
    /* Invalid Age is ignored; a list uses its first member. */
    f = fresh_of(200, "Cache-Control: max-age=60\r\nAge: x\r\n", false);
    ck_assert_uint_eq(f.initial_age_ms, 0);
    f = fresh_of(200, "Cache-Control: max-age=60\r\nAge: 7, 9\r\n", false);
    ck_assert_uint_eq(f.initial_age_ms, 7000);
    f = fresh_of(200, "Cache-Control: max-age=60\r\nAge: 99999999999999999999999\r\n", false);
    ck_assert_uint_eq(f.initial_age_ms, 2147483648000ULL);
}
END_TEST

START_TEST(test_fresh_flags)
{
    cbh_freshness f = fresh_of(200,
                               "Cache-Control: no-cache, must-revalidate, stale-if-error=30\r\n"
                               "ETag: \"v\"\r\n",
                               false);

    ck_assert(f.storable && f.no_cache && f.must_revalidate && f.has_validator);
    ck_assert_uint_eq(f.stale_if_error_ms, 30000);
    /* no-cache without a validator is useless to keep. */
    f = fresh_of(200, "Cache-Control: no-cache, max-age=60\r\n", false);
    ck_assert(!f.storable);
    f = fresh_of(200, "Cache-Control: no-store, max-age=60\r\nETag: \"v\"\r\n", false);
    ck_assert(!f.storable);
    f = fresh_of(200, "Cache-Control: max-age=60\r\nVary: Accept, *\r\n", false);
    ck_assert(!f.storable);
    f = fresh_of(200, "Cache-Control: max-age=60\r\nVary: Accept\r\n", false);
    ck_assert(f.storable);
    f = fresh_of(200, "Cache-Control: private, max-age=60\r\n", false);
    ck_assert(f.storable);
    /* Neither freshness nor a validator: nothing to keep it for. */
    f = fresh_of(200, "Content-Type: text/plain\r\n", false);
    ck_assert(!f.storable);
    f = fresh_of(200, "", false);
    ck_assert(!f.storable);
    cbh_freshness_of(200, NULL, 0, NOW, NOW, false, &f);
    ck_assert(!f.storable);
    cbh_freshness_of(200, NULL, 0, NOW, NOW, false, NULL);
}
END_TEST

static const struct {
    long status;
    bool plain;     /* storable with just a validator */
    bool explicit_; /* storable with max-age */
} status_cases[] = {
    { 100, false, false }, { 200, true, true },   { 201, false, true }, { 203, true, true },
    { 204, true, true },   { 206, true, true },   { 300, true, true },  { 301, true, true },
    { 302, false, true },  { 304, false, false }, { 307, false, true }, { 308, true, true },
    { 400, false, true },  { 403, false, true },  { 404, true, true },  { 405, true, true },
    { 410, true, true },   { 414, true, true },   { 429, false, true }, { 500, false, true },
    { 501, true, true },   { 502, false, true },  { 503, false, true }, { 0, false, false },
};

START_TEST(test_storable_by_status)
{
    long          st = status_cases[_i].status;
    cbh_freshness f = fresh_of(st, "ETag: \"v\"\r\n", false);

    ck_assert_msg(f.storable == status_cases[_i].plain, "status %ld plain", st);
    f = fresh_of(st, "Cache-Control: max-age=60\r\n", false);
    ck_assert_msg(f.storable == status_cases[_i].explicit_, "status %ld max-age", st);
    f = fresh_of(st, "Expires: Tue, 14 Nov 2023 22:14:20 GMT\r\n", false);
    ck_assert_msg(f.storable == status_cases[_i].explicit_, "status %ld expires", st);
}
END_TEST

/* Issue 12: the request directives, the strict value syntax, the new
 * response directives and the field lists. */
START_TEST(test_cc_rfc9111_directives)
{
    size_t      n;
    api_header *h;
    cbh_cc      cc = cc_of("max-stale=30, min-fresh=5");

    ck_assert(cc.has_max_stale && cc.has_min_fresh);
    ck_assert_uint_eq(cc.max_stale_s, 30);
    ck_assert_uint_eq(cc.min_fresh_s, 5);
    cc = cc_of("max-stale");
    ck_assert(cc.has_max_stale);
    ck_assert_uint_eq(cc.max_stale_s, UINT64_MAX);
    cc = cc_of("max-stale=x");
    ck_assert_uint_eq(cc.max_stale_s, 0);
    cc = cc_of("min-fresh=x");
    ck_assert_uint_eq(cc.min_fresh_s, 2147483648ULL);
    cc = cc_of("min-fresh=5, min-fresh=9");
    ck_assert_uint_eq(cc.min_fresh_s, 9);
    /* Trailing junk invalidates the value, not the directive. */
    cc = cc_of("max-age=60 x, no-store junk");
    ck_assert(cc.has_max_age && cc.no_store);
    ck_assert_uint_eq(cc.max_age_s, 0);
    cc = cc_of("max-age=60  , max-age=\"60\"");
    ck_assert_uint_eq(cc.max_age_s, 60);
    cc = cc_of("max-age=\"6 0\"");
    ck_assert_uint_eq(cc.max_age_s, 0);
    cc = cc_of("stale-while-revalidate=60, must-understand");
    ck_assert(cc.has_stale_while_revalidate && cc.must_understand);
    ck_assert_uint_eq(cc.stale_while_revalidate_s, 60);
    cc = cc_of("stale-while-revalidate=1.5");
    ck_assert(!cc.has_stale_while_revalidate);
    /* The two forms of no-cache. */
    cc = cc_of("no-cache");
    ck_assert(cc.no_cache && cc.no_cache_bare && !cc.no_cache_fields);
    cc = cc_of("no-cache=\"X-A\"");
    ck_assert(cc.no_cache && !cc.no_cache_bare && cc.no_cache_fields);
    cc = cc_of("no-cache=\"\"");
    ck_assert(cc.no_cache_bare && !cc.no_cache_fields);

    h = hdrs("Cache-Control: max-age=5, no-cache=\"X-A, x-b\"\r\n"
             "Cache-Control: private=\"X-P\", no-cache=X-C\r\n",
             &n);
    ck_assert(cbh_cc_lists_field(h, n, "no-cache", "x-a"));
    ck_assert(cbh_cc_lists_field(h, n, "no-cache", "X-B"));
    ck_assert(cbh_cc_lists_field(h, n, "no-cache", "X-C"));
    ck_assert(!cbh_cc_lists_field(h, n, "no-cache", "X-P"));
    ck_assert(cbh_cc_lists_field(h, n, "private", "X-P"));
    ck_assert(!cbh_cc_lists_field(h, n, "no-cache", "X"));
    ck_assert(!cbh_cc_lists_field(NULL, 0, "no-cache", "X-A"));
    cbh_free(h);
}
END_TEST

START_TEST(test_fresh_rfc9111)
{
    cbh_freshness f;

    /* Different Expires or Age values, or an Age that is not
     * delta-seconds: stale (but stored, for revalidation). */
    f = fresh_of(200,
                 "Date: " DATE_NOW "\r\nExpires: Tue, 14 Nov 2023 23:13:20 GMT\r\n"
                 "Expires: Tue, 14 Nov 2023 22:14:20 GMT\r\nETag: \"v\"\r\n",
                 false);
    ck_assert(f.storable);
    ck_assert_uint_eq(f.lifetime_ms, 0);
    f = fresh_of(200,
                 "Date: " DATE_NOW "\r\nExpires: Tue, 14 Nov 2023 23:13:20 GMT\r\n"
                 "Expires: Tue, 14 Nov 2023 23:13:20 GMT\r\n",
                 false);
    ck_assert_uint_eq(f.lifetime_ms, 3600000);
    f = fresh_of(200, "Cache-Control: max-age=60\r\nAge: 5\r\nAge: 5\r\n", false);
    ck_assert_uint_eq(f.lifetime_ms, 60000);
    ck_assert_uint_eq(f.initial_age_ms, 5000);
    f = fresh_of(200, "Cache-Control: max-age=60\r\nAge: 5, 5\r\n", false);
    ck_assert_uint_eq(f.lifetime_ms, 60000);
    {
        static const char *const bad[] = { "5a", "5;p=1", "5.0", "-5", "x", "5, 6" };
        size_t                   i;
        char                     raw[128];

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            snprintf(raw, sizeof(raw), "Cache-Control: max-age=60\r\nAge: %s\r\n", bad[i]);
            f = fresh_of(200, raw, false);
            ck_assert_msg(f.lifetime_ms == 0, "Age: %s", bad[i]);
        }
    }
    f = fresh_of(200, "Cache-Control: max-age=60\r\nAge: 5\r\nAge: 6\r\n", false);
    ck_assert_uint_eq(f.lifetime_ms, 0);

    /* no-cache with fields: stored, not revalidated; the fields go. */
    f = fresh_of(200, "Cache-Control: max-age=60, no-cache=\"X-A\"\r\n", false);
    ck_assert(f.storable && !f.no_cache && f.no_cache_fields);
    ck_assert_uint_eq(f.lifetime_ms, 60000);

    /* must-understand: no-store yields for statuses we implement. */
    f = fresh_of(200, "Cache-Control: no-store, must-understand, max-age=60\r\n", false);
    ck_assert(f.storable);
    f = fresh_of(299, "Cache-Control: must-understand, max-age=60\r\n", false);
    ck_assert(!f.storable);
    f = fresh_of(299, "Cache-Control: max-age=60\r\n", false);
    ck_assert(f.storable);

    f = fresh_of(200, "Cache-Control: max-age=60, stale-while-revalidate=30\r\n", false);
    ck_assert_uint_eq(f.stale_while_revalidate_ms, 30000);

    /* Heuristic freshness for every status cacheable by default. */
    f = fresh_of(501, "Date: " DATE_NOW "\r\nLast-Modified: Mon, 13 Nov 2023 22:13:20 GMT\r\n",
                 true);
    ck_assert(f.storable);
    ck_assert_uint_eq(f.lifetime_ms, 8640000);
    f = fresh_of(503, "Date: " DATE_NOW "\r\nLast-Modified: Mon, 13 Nov 2023 22:13:20 GMT\r\n",
                 true);
    ck_assert(!f.storable);
}
END_TEST

/* Repeated directives: the most restrictive value wins whatever the
 * order (the smallest max-stale, stale-if-error and stale-while-revalidate,
 * the largest min-fresh). */
START_TEST(test_cc_repeats_either_order)
{
    cbh_cc cc = cc_of("max-stale=5, max-stale=3");

    ck_assert_uint_eq(cc.max_stale_s, 3);
    cc = cc_of("max-stale=3, max-stale=5");
    ck_assert_uint_eq(cc.max_stale_s, 3);
    cc = cc_of("max-stale, max-stale=7");
    ck_assert_uint_eq(cc.max_stale_s, 7);
    cc = cc_of("min-fresh=3, min-fresh=5");
    ck_assert_uint_eq(cc.min_fresh_s, 5);
    cc = cc_of("min-fresh=5, min-fresh=3");
    ck_assert_uint_eq(cc.min_fresh_s, 5);
    cc = cc_of("stale-if-error=3, stale-if-error=5");
    ck_assert_uint_eq(cc.stale_if_error_s, 3);
    cc = cc_of("stale-while-revalidate=9, stale-while-revalidate=4");
    ck_assert_uint_eq(cc.stale_while_revalidate_s, 4);
    cc = cc_of("stale-while-revalidate=4, stale-while-revalidate=9");
    ck_assert_uint_eq(cc.stale_while_revalidate_s, 4);
}
END_TEST

START_TEST(test_cc_tabs_and_ends)
{
    size_t      n;
    api_header *h;
    char        raw[1400];
    cbh_cc      cc = cc_of("\tmax-age\t=\t30\t,\tno-store,\t");

    /* Tabs are whitespace wherever spaces are; a trailing comma ends it. */
    ck_assert(cc.has_max_age && cc.no_store);
    ck_assert_uint_eq(cc.max_age_s, 30);
    /* A backslash at the very end of an unterminated quote: the value
     * ends with the string, nothing past it is read. */
    cc = cc_of("max-age=\"7\\");
    ck_assert(cc.has_max_age);
    ck_assert_uint_eq(cc.max_age_s, 0);
    cbh_cc_from_headers(NULL, 0, &cc);
    h = hdrs("Cache-Control: no-store\r\n", &n);
    cbh_cc_from_headers(h, n, NULL);
    cbh_free(h);

    /* Once a field is found, a later no-cache list cannot unfind it. */
    h = hdrs("X-No-Cache: X-C\r\nCache-Control: no-cache=\"X-A\", no-cache=\"X-B\"\r\n", &n);
    ck_assert(cbh_cc_lists_field(h, n, "no-cache", "X-A"));
    ck_assert(!cbh_cc_lists_field(h, n, "no-cache", "X-C"));
    ck_assert(cbh_cc_lists_field(h, n, "no-cache", "X-B"));
    ck_assert(!cbh_cc_lists_field(h, n, NULL, "X-A"));
    ck_assert(!cbh_cc_lists_field(h, n, "no-cache", NULL));
    cbh_free(h);
    /* A bare no-cache lists nothing; a later list still counts. */
    h = hdrs("Cache-Control: no-cache, no-cache=\"X-A\"\r\n", &n);
    ck_assert(cbh_cc_lists_field(h, n, "no-cache", "X-A"));
    ck_assert(!cbh_cc_lists_field(h, n, "no-cache", "no-cache"));
    cbh_free(h);
    /* A list longer than 1 KiB is cut: a name at its start counts, one
     * past the cut does not. */
    snprintf(raw, sizeof raw, "Cache-Control: no-cache=\"X-First, %01100d, X-Last\"\r\n", 0);
    h = hdrs(raw, &n);
    ck_assert(cbh_cc_lists_field(h, n, "no-cache", "X-First"));
    ck_assert(!cbh_cc_lists_field(h, n, "no-cache", "X-Last"));
    cbh_free(h);
}
END_TEST

static void vary_collect(const char *name, size_t len, void *ctx)
{
    char *out = ctx;

    strncat(out, name, len);
    strcat(out, "|");
}

/* Vary: names are tokens; anything else up to the next comma is skipped,
 * a '*' in it included. */
START_TEST(test_vary_names)
{
    size_t      n;
    api_header *h = hdrs("Vary: a b, (c), d\r\nX: y\r\nvary: e\r\n", &n);
    char        names[64] = "";

    cbh_vary_each(h, n, vary_collect, names);
    ck_assert_str_eq(names, "a|d|e|");
    cbh_free(h);
    ck_assert(fresh_of(200, "Cache-Control: max-age=60\r\nVary: @ *\r\n", false).storable);
    ck_assert(!fresh_of(200, "Cache-Control: max-age=60\r\nVary: @, *\r\n", false).storable);
}
END_TEST

START_TEST(test_fresh_edges)
{
    size_t        n;
    api_header   *h;
    cbh_freshness f;

    /* An Age list that repeats one value, with a trailing comma, is that
     * value; a list with something else in it is no Age at all. */
    f = fresh_of(200, "Cache-Control: max-age=60\r\nAge: 7,\r\n", false);
    ck_assert_uint_eq(f.initial_age_ms, 7000);
    ck_assert_uint_eq(f.lifetime_ms, 60000);
    f = fresh_of(200, "Cache-Control: max-age=60\r\nAge: 7, x\r\n", false);
    ck_assert_uint_eq(f.initial_age_ms, 7000);
    ck_assert_uint_eq(f.lifetime_ms, 0);
    /* An invalid Date: the response time stands in for it. */
    f = fresh_of(200, "Date: garbage\r\nExpires: Tue, 14 Nov 2023 22:14:20 GMT\r\n", false);
    ck_assert_uint_eq(f.lifetime_ms, 60000);
    /* Heuristic freshness needs a Last-Modified that parses. */
    f = fresh_of(200, "Date: " DATE_NOW "\r\nETag: \"v\"\r\n", true);
    ck_assert_uint_eq(f.lifetime_ms, 0);
    f = fresh_of(200, "Date: " DATE_NOW "\r\nLast-Modified: yesterday\r\n", true);
    ck_assert_uint_eq(f.lifetime_ms, 0);
    ck_assert(f.storable); /* the Last-Modified is still a validator */
    /* A response delay too large to add to Age saturates. */
    h = hdrs("Cache-Control: max-age=60\r\nAge: 5\r\n", &n);
    cbh_freshness_of(200, h, n, INT64_MIN, INT64_MAX, false, &f);
    ck_assert_uint_eq(f.initial_age_ms, 2147483648000ULL);
    cbh_free(h);
    /* must-understand on a status we do not implement: never stored,
     * no-store or not. */
    f = fresh_of(299, "Cache-Control: no-store, must-understand, max-age=60\r\n", false);
    ck_assert(!f.storable);
    f = fresh_of(1000, "Cache-Control: max-age=60\r\n", false);
    ck_assert(!f.storable);
    f = fresh_of(-200, "Cache-Control: max-age=60\r\n", false);
    ck_assert(!f.storable);
}
END_TEST

static Suite *cachectl_suite(void)
{
    Suite *s = suite_create("cachectl");
    TCase *dates = tcase_create("httpdate");
    TCase *cc = tcase_create("cache-control");
    TCase *fr = tcase_create("freshness");

    tcase_add_test(dates, test_date_three_formats);
    tcase_add_test(dates, test_date_two_digit_years);
    tcase_add_test(dates, test_date_leap_years);
    tcase_add_test(dates, test_date_leap_second_9999);
    tcase_add_loop_test(dates, test_date_invalid, 0, (int)(sizeof bad_dates / sizeof bad_dates[0]));
    tcase_add_test(dates, test_date_null);
    tcase_add_test(dates, test_date_format_round_trip);
    suite_add_tcase(s, dates);

    tcase_add_test(cc, test_cc_directives);
    tcase_add_test(cc, test_cc_syntax);
    tcase_add_test(cc, test_cc_overflow_and_invalid);
    tcase_add_test(cc, test_cc_combine_most_restrictive);
    tcase_add_test(cc, test_cc_from_headers);
    tcase_add_test(cc, test_cc_rfc9111_directives);
    tcase_add_test(cc, test_cc_repeats_either_order);
    tcase_add_test(cc, test_cc_tabs_and_ends);
    tcase_add_test(cc, test_vary_names);
    suite_add_tcase(s, cc);

    tcase_add_test(fr, test_date_constant);
    tcase_add_test(fr, test_fresh_max_age);
    tcase_add_test(fr, test_fresh_expires);
    tcase_add_test(fr, test_fresh_heuristic);
    tcase_add_test(fr, test_fresh_age);
    tcase_add_test(fr, test_fresh_flags);
    tcase_add_test(fr, test_fresh_rfc9111);
    tcase_add_test(fr, test_fresh_edges);
    tcase_add_loop_test(fr, test_storable_by_status, 0,
                        (int)(sizeof status_cases / sizeof status_cases[0]));
    suite_add_tcase(s, fr);
    return s;
}

int main(void) { return tu_run_suite(cachectl_suite()); }
