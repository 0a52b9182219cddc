/* The retry policy: eligibility, backoff, Retry-After and the budget, with
 * explicit times instead of a clock. */
/* cbhttp: threaded */
#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpdate.h"
#include "outcome.h"
#include "retry.h"

#include "helpers/testutil.h"

static api_retry_config norm(const api_retry_config *in)
{
    api_retry_config rc;

    cbh_retry_config_norm(in, &rc);
    return rc;
}

/* ---- Config -------------------------------------------------------------- */

START_TEST(test_norm_defaults)
{
    api_retry_config rc = norm(NULL), zero;

    ck_assert_uint_eq(rc.max_attempts, 3);
    ck_assert_uint_eq(rc.base_delay_ms, 100);
    ck_assert_uint_eq(rc.max_delay_ms, 10000);
    ck_assert_uint_eq(rc.budget_percent, 20);
    ck_assert_uint_eq(rc.budget_min_per_sec, 10);
    ck_assert_uint_eq(rc.budget_window_ms, 10000);
    ck_assert(!rc.budget_disabled);
    memset(&zero, 0, sizeof(zero));
    rc = norm(&zero);
    ck_assert_uint_eq(rc.max_attempts, 3);
    ck_assert_uint_eq(rc.budget_window_ms, 10000);
}
END_TEST

START_TEST(test_norm_keeps_values)
{
    api_retry_config in = { .max_attempts = 1,
                            .base_delay_ms = 7,
                            .max_delay_ms = 70,
                            .budget_percent = 50,
                            .budget_min_per_sec = 2,
                            .budget_window_ms = 3000,
                            .budget_disabled = true };
    api_retry_config rc = norm(&in);

    ck_assert_uint_eq(rc.max_attempts, 1);
    ck_assert_uint_eq(rc.base_delay_ms, 7);
    ck_assert_uint_eq(rc.max_delay_ms, 70);
    ck_assert_uint_eq(rc.budget_percent, 50);
    ck_assert_uint_eq(rc.budget_min_per_sec, 2);
    ck_assert_uint_eq(rc.budget_window_ms, 3000);
    ck_assert(rc.budget_disabled);

    in.budget_window_ms = 3600000;
    rc = norm(&in);
    ck_assert_uint_eq(rc.budget_window_ms, CBH_BUDGET_SLOTS * 1000u);
}
END_TEST

/* ---- Eligibility ----------------------------------------------------------- */

START_TEST(test_methods)
{
    ck_assert(cbh_retry_method_ok("GET", false));
    ck_assert(cbh_retry_method_ok("HEAD", false));
    ck_assert(cbh_retry_method_ok("PUT", false));
    ck_assert(cbh_retry_method_ok("DELETE", false));
    ck_assert(cbh_retry_method_ok("OPTIONS", false));
    ck_assert(!cbh_retry_method_ok("POST", false));
    ck_assert(!cbh_retry_method_ok("PATCH", false));
    ck_assert(!cbh_retry_method_ok("get", false)); /* methods are case-sensitive */
    ck_assert(!cbh_retry_method_ok("GETX", false));
    ck_assert(!cbh_retry_method_ok("", false));
    ck_assert(!cbh_retry_method_ok(NULL, false));
    ck_assert(cbh_retry_method_ok("POST", true));
    ck_assert(cbh_retry_method_ok("PATCH", true));
}
END_TEST

START_TEST(test_statuses)
{
    static const long yes[] = { 408, 429, 500, 502, 503, 504 };
    long              s;
    size_t            i;

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        ck_assert(cbh_outcome_retryable_status(yes[i]));
    for (s = 0; s < 1000; s++) {
        bool listed = false;

        for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
            listed |= yes[i] == s;
        ck_assert_msg(cbh_outcome_retryable_status(s) == listed, "status %ld", s);
    }
}
END_TEST

/* The three meanings of an outcome, side by side. */
START_TEST(test_outcomes)
{
    ck_assert(cbh_outcome_breaker_failure(CB_OK, 503));
    ck_assert(cbh_outcome_breaker_failure(CB_OK, 429));
    ck_assert(cbh_outcome_breaker_failure(CB_ERR_TIMEOUT, 0));
    ck_assert(!cbh_outcome_breaker_failure(CB_OK, 404));
    ck_assert(!cbh_outcome_breaker_failure(CB_ERR_TOO_LARGE, 0));
    ck_assert(!cbh_outcome_breaker_failure(CB_ERR_NOMEM, 0));
    ck_assert(cbh_outcome_retryable(CB_OK, 408));
    ck_assert(!cbh_outcome_retryable(CB_OK, 501)); /* a 5xx that will not change */
    ck_assert(!cbh_outcome_retryable(CB_ERR_TOO_LARGE, 0));
    ck_assert(cbh_outcome_outage(CB_ERR_HTTP, 503));
    ck_assert(!cbh_outcome_outage(CB_ERR_HTTP, 404));
    ck_assert(cbh_outcome_outage(CB_ERR_CIRCUIT_OPEN, 0));
    ck_assert(cbh_outcome_outage(CB_ERR_CACHE_MISS, 0));
    ck_assert(cbh_outcome_outage(CB_ERR_CONNECT, 0));
    ck_assert(!cbh_outcome_outage(CB_ERR_NOMEM, 0));
    ck_assert(!cbh_outcome_outage(CB_OK, 200));
}
END_TEST

START_TEST(test_errors)
{
    int e;

    for (e = 0; e < CB_ERR_COUNT_ + 2; e++) {
        bool want = e == CB_ERR_CONNECT || e == CB_ERR_TIMEOUT || e == CB_ERR_TRANSPORT;

        ck_assert_msg(cbh_outcome_retryable((cb_err)e, 0) == want, "err %d", e);
    }
}
END_TEST

/* ---- Backoff --------------------------------------------------------------- */

START_TEST(test_backoff_bounds)
{
    api_retry_config rc = norm(NULL);
    uint64_t         rng = 12345;
    unsigned         n;

    for (n = 0; n <= 100; n++) {
        uint64_t cap = n < 10 ? (100ull << n) : 10000;
        uint64_t lo = UINT64_MAX, hi = 0;
        int      i;

        if (cap > 10000)
            cap = 10000;
        for (i = 0; i < 2000; i++) {
            uint64_t d = cbh_backoff_ms(&rc, n, &rng);

            ck_assert_msg(d <= cap, "n=%u d=%llu cap=%llu", n, (unsigned long long)d,
                          (unsigned long long)cap);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        /* Full jitter: draws spread over the whole range. */
        ck_assert_msg(lo < cap / 10 + 1, "n=%u lo=%llu", n, (unsigned long long)lo);
        ck_assert_msg(hi > cap - cap / 10 - 1, "n=%u hi=%llu", n, (unsigned long long)hi);
    }
    ck_assert(cbh_backoff_ms(&rc, UINT_MAX, &rng) <= 10000);
}
END_TEST

START_TEST(test_backoff_mean)
{
    api_retry_config rc = norm(NULL);
    uint64_t         rng = 99, sum = 0;
    int              i;

    /* Uniform on [0, 400]: mean 200. */
    for (i = 0; i < 20000; i++)
        sum += cbh_backoff_ms(&rc, 2, &rng);
    ck_assert_uint_ge(sum / 20000, 190);
    ck_assert_uint_le(sum / 20000, 210);
}
END_TEST

START_TEST(test_backoff_extremes)
{
    api_retry_config rc = { .base_delay_ms = UINT_MAX, .max_delay_ms = UINT_MAX };
    uint64_t         rng = 0; /* a zero state is replaced, not stuck */
    uint64_t         a, b;
    unsigned         n;

    for (n = 0; n < 70; n++)
        ck_assert_uint_le(cbh_backoff_ms(&rc, n, &rng), UINT_MAX);
    ck_assert_uint_ne(rng, 0);
    rc.base_delay_ms = 1000;
    rc.max_delay_ms = 10; /* base above the cap: the cap wins */
    for (n = 0; n < 70; n++)
        ck_assert_uint_le(cbh_backoff_ms(&rc, n, &rng), 10);
    rc.base_delay_ms = 1;
    rc.max_delay_ms = 0;
    ck_assert_uint_eq(cbh_backoff_ms(&rc, 5, &rng), 0);
    /* Deterministic for one seed; different for another. */
    rc = norm(NULL);
    rng = 7;
    a = cbh_backoff_ms(&rc, 6, &rng);
    rng = 7;
    b = cbh_backoff_ms(&rc, 6, &rng);
    ck_assert_uint_eq(a, b);
    ck_assert_uint_eq(cbh_backoff_ms(NULL, 1, &rng), 0);
    ck_assert_uint_eq(cbh_backoff_ms(&rc, 1, NULL), 0);
}
END_TEST

/* ---- Retry-After ------------------------------------------------------------ */

START_TEST(test_retry_after_seconds)
{
    uint64_t ms = 1;

    ck_assert(cbh_retry_after_ms("0", 0, &ms));
    ck_assert_uint_eq(ms, 0);
    ck_assert(cbh_retry_after_ms("5", 0, &ms));
    ck_assert_uint_eq(ms, 5000);
    ck_assert(cbh_retry_after_ms("  120\t", 0, &ms));
    ck_assert_uint_eq(ms, 120000);
    ck_assert(cbh_retry_after_ms("007", 0, &ms));
    ck_assert_uint_eq(ms, 7000);
    ck_assert(cbh_retry_after_ms("\t \t9", 0, &ms));
    ck_assert_uint_eq(ms, 9000);
}
END_TEST

START_TEST(test_retry_after_negative)
{
    uint64_t ms = 1;

    ck_assert(cbh_retry_after_ms("-1", 0, &ms));
    ck_assert_uint_eq(ms, 0);
    ms = 1;
    ck_assert(cbh_retry_after_ms(" -3600 ", 0, &ms));
    ck_assert_uint_eq(ms, 0);
    ms = 1;
    ck_assert(cbh_retry_after_ms("-99999999999999999999999", 0, &ms));
    ck_assert_uint_eq(ms, 0);
}
END_TEST

START_TEST(test_retry_after_huge)
{
    const uint64_t year_ms = 365ull * 24 * 3600 * 1000;
    uint64_t       ms;

    ck_assert(cbh_retry_after_ms("31536000", 0, &ms));
    ck_assert_uint_eq(ms, year_ms);
    ck_assert(cbh_retry_after_ms("31536001", 0, &ms));
    ck_assert_uint_eq(ms, year_ms);
    ck_assert(cbh_retry_after_ms("99999999999999999999999999999999", 0, &ms));
    ck_assert_uint_eq(ms, year_ms);
    ck_assert(cbh_retry_after_ms("18446744073709551617", 0, &ms));
    ck_assert_uint_eq(ms, year_ms);
}
END_TEST

START_TEST(test_retry_after_garbage)
{
    static const char *const bad[] = { "",
                                       "   ",
                                       "abc",
                                       "1.5",
                                       "+5",
                                       "5s",
                                       "5 s",
                                       "0x10",
                                       "-",
                                       "--1",
                                       "- 1",
                                       "1e3",
                                       "1,2",
                                       "Mon",
                                       "-Sun, 06 Nov 1994 08:49:37 GMT",
                                       "Sun, 06 Nov 1994 08:49:37 GMT garbage" };
    uint64_t                 ms = 42;
    size_t                   i;

    /* Longer than any HTTP-date: refused without being parsed. */
    char long_date[80];

    memset(long_date, 'S', sizeof(long_date) - 1);
    long_date[sizeof(long_date) - 1] = '\0';
    ck_assert(!cbh_retry_after_ms(long_date, 0, &ms));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!cbh_retry_after_ms(bad[i], 0, &ms), "accepted \"%s\"", bad[i]);
    ck_assert(!cbh_retry_after_ms(NULL, 0, &ms));
    ck_assert(!cbh_retry_after_ms("5", 0, NULL));
    ck_assert_uint_eq(ms, 42);
}
END_TEST

START_TEST(test_retry_after_date)
{
    /* Sun, 06 Nov 1994 08:49:37 GMT is 784111777. */
    const int64_t t = 784111777;
    uint64_t      ms;
    char          buf[64];
    int64_t       parsed;

    ck_assert(cbh_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", &parsed));
    ck_assert_int_eq(parsed, t);
    ck_assert(cbh_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", t - 30, &ms));
    ck_assert_uint_eq(ms, 30000);
    ck_assert(cbh_retry_after_ms("  Sun, 06 Nov 1994 08:49:37 GMT  ", t - 1, &ms));
    ck_assert_uint_eq(ms, 1000);
    /* The obsolete forms go through the same parser. */
    ck_assert(cbh_retry_after_ms("Sunday, 06-Nov-94 08:49:37 GMT", t - 2, &ms));
    ck_assert_uint_eq(ms, 2000);
    ck_assert(cbh_retry_after_ms("Sun Nov  6 08:49:37 1994", t - 3, &ms));
    ck_assert_uint_eq(ms, 3000);
    /* Now and the past give 0. */
    ms = 5;
    ck_assert(cbh_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", t, &ms));
    ck_assert_uint_eq(ms, 0);
    ms = 5;
    ck_assert(cbh_retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", t + 86400, &ms));
    ck_assert_uint_eq(ms, 0);
    /* Far future: clamped to a year. */
    cbh_http_date_format(t + 10 * 365 * 86400LL, buf, sizeof(buf));
    ck_assert(cbh_retry_after_ms(buf, t, &ms));
    ck_assert_uint_eq(ms, 365ull * 24 * 3600 * 1000);
}
END_TEST

/* ---- Budget ------------------------------------------------------------------ */

START_TEST(test_budget_floor_without_requests)
{
    api_retry_config rc = norm(NULL);
    cbh_budget       b;
    int              i;

    cbh_budget_init(&b);
    /* The contract's floor: 10 retries in one second are never refused, even
     * with no request counted at all. */
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 5000), 10);
    for (i = 0; i < 10; i++)
        ck_assert_msg(cbh_budget_try_retry(&b, &rc, 5000 + (uint64_t)i * 99), "retry %d", i);
    ck_assert(!cbh_budget_try_retry(&b, &rc, 5999));
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 5999), 0);
    /* The next second the floor is back, but the window has 10 retries and
     * no requests, so only the floor grants. */
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 6000), 10);
    for (i = 0; i < 10; i++)
        ck_assert(cbh_budget_try_retry(&b, &rc, 6000));
    ck_assert(!cbh_budget_try_retry(&b, &rc, 6000));
    cbh_budget_destroy(&b);
}
END_TEST

START_TEST(test_budget_floor_from_time_zero)
{
    /* A fake clock starting at 0: second 0 must not look like an old slot. */
    api_retry_config rc = norm(NULL);
    cbh_budget       b;
    int              i;

    cbh_budget_init(&b);
    for (i = 0; i < 10; i++)
        ck_assert(cbh_budget_try_retry(&b, &rc, 0));
    ck_assert(!cbh_budget_try_retry(&b, &rc, 999));
    cbh_budget_destroy(&b);
}
END_TEST

START_TEST(test_budget_floor_under_load)
{
    /* Whatever happened before, fewer than 10 retries in the current second
     * are always granted. */
    api_retry_config rc = norm(NULL);
    cbh_budget       b;
    uint64_t         sec;
    int              i;

    cbh_budget_init(&b);
    for (sec = 100; sec < 140; sec++) {
        for (i = 0; i < 10; i++)
            ck_assert(cbh_budget_try_retry(&b, &rc, sec * 1000 + 500));
    }
    cbh_budget_destroy(&b);
}
END_TEST

START_TEST(test_budget_percentage)
{
    api_retry_config in = { .budget_percent = 20,
                            .budget_min_per_sec = 1,
                            .budget_window_ms = 10000 };
    api_retry_config rc = norm(&in);
    cbh_budget       b;
    int              i, granted = 0;

    cbh_budget_init(&b);
    /* 100 requests spread over 5 seconds: 20 retries allowed by the share. */
    for (i = 0; i < 100; i++)
        cbh_budget_note_request(&b, 1000 + (uint64_t)(i / 20) * 1000);
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 5500), 20);
    for (i = 0; i < 40; i++)
        granted += cbh_budget_try_retry(&b, &rc, 5500);
    ck_assert_int_eq(granted, 20);
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 5500), 0);
    /* The next second: the floor (1 per second) still grants one. */
    ck_assert(cbh_budget_try_retry(&b, &rc, 6000));
    ck_assert(!cbh_budget_try_retry(&b, &rc, 6000));
    /* More requests refill the share; the floor's retry counted against it
     * too, so 10 more requests (2 more at 20 %) buy exactly 1 more. */
    for (i = 0; i < 10; i++)
        cbh_budget_note_request(&b, 6100);
    ck_assert(cbh_budget_try_retry(&b, &rc, 6100));
    ck_assert(!cbh_budget_try_retry(&b, &rc, 6100));
    cbh_budget_destroy(&b);
}
END_TEST

START_TEST(test_budget_window_expiry)
{
    api_retry_config in = { .budget_percent = 10,
                            .budget_min_per_sec = 1,
                            .budget_window_ms = 3000 };
    api_retry_config rc = norm(&in);
    cbh_budget       b;
    int              i, granted = 0;

    cbh_budget_init(&b);
    for (i = 0; i < 100; i++)
        cbh_budget_note_request(&b, 10000);
    for (i = 0; i < 20; i++)
        granted += cbh_budget_try_retry(&b, &rc, 10000);
    ck_assert_int_eq(granted, 10);
    /* Seconds 10..12 form the window at 12.9 s: still exhausted but for the
     * floor. */
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 12900), 1);
    /* At 13.0 s second 10 has left the 3-second window: no requests, no
     * retries counted; only the floor. */
    for (i = 0; i < 100; i++)
        cbh_budget_note_request(&b, 13000);
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 13000), 10);
    /* Long after, a slot reused by a later second starts from zero. */
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 10000 + CBH_BUDGET_SLOTS * 1000u + 500), 1);
    cbh_budget_destroy(&b);
}
END_TEST

START_TEST(test_budget_ring_wraps)
{
    /* The longest window: 64 one-second slots, each second's data replaced
     * exactly when its slot comes round again. */
    api_retry_config in = { .budget_percent = 100,
                            .budget_min_per_sec = 1,
                            .budget_window_ms = 1000000 };
    api_retry_config rc = norm(&in);
    cbh_budget       b;
    uint64_t         s;

    cbh_budget_init(&b);
    for (s = 0; s < CBH_BUDGET_SLOTS; s++)
        cbh_budget_note_request(&b, s * 1000);
    /* 64 requests in the window at 100 %: 64 retries (floor included). */
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, (CBH_BUDGET_SLOTS - 1) * 1000), 64);
    /* One second later second 0 has dropped out. */
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, CBH_BUDGET_SLOTS * 1000), 63);
    cbh_budget_destroy(&b);
}
END_TEST

START_TEST(test_budget_disabled)
{
    api_retry_config in = { .budget_disabled = true };
    api_retry_config rc = norm(&in);
    cbh_budget       b;
    int              i;

    cbh_budget_init(&b);
    for (i = 0; i < 1000; i++)
        ck_assert(cbh_budget_try_retry(&b, &rc, 0));
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 0), UINT_MAX);
    cbh_budget_destroy(&b);
}
END_TEST

/* A config that did not go through cbh_retry_config_norm: a window of 0 is
 * read as one second, one beyond the ring as the ring, and no config at all
 * as no budget. */
START_TEST(test_budget_raw_config)
{
    api_retry_config rc = { .budget_percent = 100, .budget_min_per_sec = 0, .budget_window_ms = 0 };
    cbh_budget       b;
    int              i;

    cbh_budget_init(&b);
    cbh_budget_note_request(&b, 5000);
    cbh_budget_note_request(&b, 6000);
    /* Window 0: second 6 alone, one request, one retry. */
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 6000), 1);
    /* Window of 1000 s: capped at the 64 s the ring holds, both requests. */
    rc.budget_window_ms = 1000000;
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 6000), 2);
    ck_assert(cbh_budget_try_retry(&b, &rc, 6000));
    ck_assert(cbh_budget_try_retry(&b, &rc, 6000));
    ck_assert(!cbh_budget_try_retry(&b, &rc, 6000));
    /* No config: always granted, without limit. */
    for (i = 0; i < 10; i++)
        ck_assert(cbh_budget_try_retry(&b, NULL, 6000));
    ck_assert_uint_eq(cbh_budget_available(&b, NULL, 6000), UINT_MAX);
    cbh_budget_destroy(&b);
}
END_TEST

/* More retries allowed than an unsigned holds: the count saturates. */
START_TEST(test_budget_available_saturates)
{
    api_retry_config rc = { .budget_percent = UINT_MAX,
                            .budget_min_per_sec = 1,
                            .budget_window_ms = 1000 };
    cbh_budget       b;
    int              i;

    cbh_budget_init(&b);
    for (i = 0; i < 200; i++)
        cbh_budget_note_request(&b, 1000);
    /* 200 * (2^32 - 1) / 100 retries: above UINT_MAX. */
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 1000), UINT_MAX);
    cbh_budget_note_request(&b, 1000);
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 1000), UINT_MAX);
    /* With two requests it is exact again. */
    cbh_budget_destroy(&b);
    cbh_budget_init(&b);
    cbh_budget_note_request(&b, 1000);
    cbh_budget_note_request(&b, 1000);
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 1000), (2ull * UINT_MAX + 99) / 100);
    cbh_budget_destroy(&b);
}
END_TEST

/* The per-second counts stop at UINT32_MAX rather than wrap to 0, which
 * would suddenly forget a second's load. Four billion calls take too long,
 * so the counts are set near the top by hand (slot i holds second i here). */
START_TEST(test_budget_counts_saturate)
{
    api_retry_config rc = { .budget_percent = 20,
                            .budget_min_per_sec = 1,
                            .budget_window_ms = 1000 };
    cbh_budget       b;

    cbh_budget_init(&b);
    cbh_budget_note_request(&b, 5000);
    b.requests[5] = UINT32_MAX;
    cbh_budget_note_request(&b, 5000);
    ck_assert_uint_eq(b.requests[5], UINT32_MAX);
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 5000), (UINT32_MAX * 20ull + 99) / 100);
    cbh_budget_destroy(&b);

    /* Two full seconds of requests leave room at 60 % for a retry beyond
     * UINT32_MAX of them; the count stays at the top. */
    rc.budget_percent = 60;
    rc.budget_window_ms = 2000;
    cbh_budget_init(&b);
    cbh_budget_note_request(&b, 4000);
    cbh_budget_note_request(&b, 5000);
    b.requests[4] = b.requests[5] = UINT32_MAX;
    b.retries[5] = UINT32_MAX;
    ck_assert(cbh_budget_try_retry(&b, &rc, 5000));
    ck_assert_uint_eq(b.retries[5], UINT32_MAX);
    ck_assert_uint_eq(cbh_budget_available(&b, &rc, 5000),
                      (2ull * UINT32_MAX * 60 + 99) / 100 - UINT32_MAX);
    cbh_budget_destroy(&b);
}
END_TEST

START_TEST(test_budget_clock_backwards)
{
    /* A clock that steps back (two threads reading it) must not break the
     * counts or the floor. */
    api_retry_config rc = norm(NULL);
    cbh_budget       b;
    int              i;

    cbh_budget_init(&b);
    for (i = 0; i < 10; i++)
        ck_assert(cbh_budget_try_retry(&b, &rc, 50000));
    for (i = 0; i < 10; i++)
        ck_assert(cbh_budget_try_retry(&b, &rc, 49000));
    cbh_budget_destroy(&b);
}
END_TEST

typedef struct budget_thread {
    cbh_budget      *b;
    api_retry_config rc;
    int              granted;
} budget_thread;

static void *budget_worker(void *arg)
{
    budget_thread *t = arg;
    int            i;

    for (i = 0; i < 10000; i++) {
        cbh_budget_note_request(t->b, 7000);
        t->granted += cbh_budget_try_retry(t->b, &t->rc, 7000);
    }
    return NULL;
}

START_TEST(test_budget_threads)
{
    cbh_budget    b;
    budget_thread t[4];
    pthread_t     th[4];
    int           i, total = 0;

    cbh_budget_init(&b);
    for (i = 0; i < 4; i++) {
        t[i].b = &b;
        t[i].rc = norm(NULL);
        t[i].granted = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, budget_worker, &t[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += t[i].granted;
    }
    /* 40000 requests at 20 %: never more than 8000 (+ the floor). */
    ck_assert_int_le(total, 8000 + 10);
    ck_assert_int_ge(total, 7990);
    cbh_budget_destroy(&b);
}
END_TEST

static Suite *retry_suite(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_norm_defaults);
    tcase_add_test(tc, test_norm_keeps_values);
    tcase_add_test(tc, test_methods);
    tcase_add_test(tc, test_statuses);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_outcomes);
    tcase_add_test(tc, test_backoff_bounds);
    tcase_add_test(tc, test_backoff_mean);
    tcase_add_test(tc, test_backoff_extremes);
    tcase_add_test(tc, test_retry_after_seconds);
    tcase_add_test(tc, test_retry_after_negative);
    tcase_add_test(tc, test_retry_after_huge);
    tcase_add_test(tc, test_retry_after_garbage);
    tcase_add_test(tc, test_retry_after_date);
    tcase_add_test(tc, test_budget_floor_without_requests);
    tcase_add_test(tc, test_budget_floor_from_time_zero);
    tcase_add_test(tc, test_budget_floor_under_load);
    tcase_add_test(tc, test_budget_percentage);
    tcase_add_test(tc, test_budget_window_expiry);
    tcase_add_test(tc, test_budget_ring_wraps);
    tcase_add_test(tc, test_budget_disabled);
    tcase_add_test(tc, test_budget_raw_config);
    tcase_add_test(tc, test_budget_available_saturates);
    tcase_add_test(tc, test_budget_counts_saturate);
    tcase_add_test(tc, test_budget_clock_backwards);
    tcase_add_test(tc, test_budget_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(retry_suite()); }
