/* Hostile and broken servers: resets, hangs, drips, absurd headers, broken
 * framing, oversized bodies, lying lengths, hostile Retry-After and caching
 * headers, and redirects that try to leave the origin. For each: the exact
 * error code, how the origin's breaker counted it, and (under ASan or
 * valgrind) that nothing leaks.
 *
 * One test runs several threads against one client.
 */
/* cbhttp: threaded */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "cbhttp.h"
#include "fixture.h"
#include "helpers/clients.h"
#include "helpers/testutil.h"

static fixture *fx;

static void fx_setup(void)
{
    fx = fixture_start();
    ck_assert_ptr_nonnull(fx);
}

static void fx_teardown(void)
{
    fixture_stop(fx);
    fx = NULL;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* tu_client_on on base (the fixture or its raw listener) with a breaker
 * that never opens here; extra is copied, not modified, and sets no
 * max_attempts of its own (attempts does; 0 leaves the library default). */
static api_client *hostile_client(const char *base, unsigned attempts,
                                  const api_client_config *extra)
{
    api_client_config cfg;

    if (extra)
        cfg = *extra;
    else
        memset(&cfg, 0, sizeof(cfg));
    cfg.circuit_breaker.failure_threshold = 100;
    return tu_client_on(base, attempts, &cfg);
}

/* The origin's breaker recorded exactly this many failures and successes. */
static void check_breaker(api_client *c, uint64_t failures, uint64_t successes)
{
    cb_metrics m;

    ck_assert_int_eq(api_client_breaker_metrics(c, "/", &m), CB_OK);
    ck_assert_uint_eq(m.failures, failures);
    ck_assert_uint_eq(m.successes, successes);
}

/* A response over our own limits is not the server failing: CB_ERR_TOO_LARGE
 * is recorded as a success, a broken transfer as a failure. */
static void check_breaker_after(api_client *c, cb_err rc)
{
    if (rc == CB_ERR_TOO_LARGE)
        check_breaker(c, 0, 1);
    else
        check_breaker(c, 1, 0);
}

/* One GET, expected to fail with want, status 0, and a body that is a
 * valid empty string. */
static void get_fails(api_client *c, const char *path, unsigned timeout_ms, cb_err want)
{
    api_response resp;
    api_options  opts = { .timeout_ms = timeout_ms };
    cb_err       rc = api_get(c, path, &opts, &resp);

    ck_assert_msg(rc == want, "%s: got %s (%s), want %s", path, cb_strerror(rc), resp.error,
                  cb_strerror(want));
    ck_assert_int_eq(resp.status, 0);
    ck_assert_ptr_nonnull(resp.body);
    ck_assert_uint_eq(resp.body_len, 0);
    ck_assert_uint_eq(resp.attempts, 1);
    api_response_free(&resp);
}

/* ---- broken connections ------------------------------------------------ */

/* Broken exchanges that must end as CB_ERR_TRANSPORT with exactly one
 * breaker failure: each one GET against a script of the fixture (raw: the
 * hand-written listener, for what libmicrohttpd will not send). */
static const struct {
    bool        raw;
    const char *path;
} transport_failures[] = {
    { false, "/reset-mid-body" },         { true, "/raw/close" }, /* closes without answering */
    { true, "/raw/bad-status-line" },     { true, "/raw/not-http" }, { true, "/raw/bad-chunked" },
    { true, "/raw/content-length-lies" }, /* says 100, sends ten, closes */
    { true, "/raw/two-lengths" },         /* Content-Length 5 and 10 */
    { true, "/raw/length-list" },         /* Content-Length: 5, 10 */
    { true, "/raw/length-and-chunked" },  /* Content-Length beside Transfer-Encoding */
};

START_TEST(test_transport_failure)
{
    const char *base = transport_failures[_i].raw ? fixture_raw_url(fx) : fixture_url(fx);
    api_client *c = hostile_client(base, 1, NULL);

    get_fails(c, transport_failures[_i].path, 0, CB_ERR_TRANSPORT);
    check_breaker(c, 1, 0);
    api_client_free(c);
}
END_TEST

/* With retries the reset is retried (a transport error is retryable), and
 * every attempt is a breaker failure. */
START_TEST(test_reset_mid_body_retried)
{
    api_client_config cfg;
    tu_clock          tc;
    api_client       *c;
    api_response      resp;

    memset(&cfg, 0, sizeof(cfg));
    tu_clock_install(&tc, &cfg);
    cfg.retry.base_delay_ms = 1;
    c = hostile_client(fixture_url(fx), 3, &cfg);
    ck_assert_int_eq(api_get(c, "/reset-mid-body", NULL, &resp), CB_ERR_TRANSPORT);
    ck_assert_uint_eq(resp.attempts, 3);
    ck_assert_uint_eq(fixture_requests_path(fx, "/reset-mid-body"), 3);
    api_response_free(&resp);
    check_breaker(c, 3, 0);
    api_client_free(c);
}
END_TEST

/* Accepts, reads the request, never answers: the deadline ends it. The
 * elapsed time is bounded from below only. No retry runs past the
 * deadline. */
START_TEST(test_hang_times_out)
{
    api_client  *c = hostile_client(fixture_url(fx), 3, NULL);
    api_response resp;
    api_options  opts = { .timeout_ms = 300 };
    uint64_t     t0 = mono_ms();

    ck_assert_int_eq(api_get(c, "/hang", &opts, &resp), CB_ERR_TIMEOUT);
    ck_assert_uint_ge(mono_ms() - t0, 290);
    ck_assert_uint_eq(resp.attempts, 1);
    ck_assert_int_eq(resp.status, 0);
    api_response_free(&resp);
    check_breaker(c, 1, 0);
    api_client_free(c);
}
END_TEST

/* Bytes keep coming, but too slowly: the deadline covers the body too. */
START_TEST(test_drip_beyond_deadline)
{
    api_client *c = hostile_client(fixture_url(fx), 1, NULL);
    uint64_t    t0 = mono_ms();

    get_fails(c, "/drip/100/50", 300, CB_ERR_TIMEOUT);
    ck_assert_uint_ge(mono_ms() - t0, 290);
    check_breaker(c, 1, 0);
    api_client_free(c);
}
END_TEST

/* ---- broken framing ----------------------------------------------------- */

/* The raw listener itself works: the transport failures of its scripts
 * (test_transport_failure) are the scripts' own. */
START_TEST(test_raw_ok)
{
    api_client  *c = hostile_client(fixture_raw_url(fx), 1, NULL);
    api_response resp;

    ck_assert_int_eq(api_get(c, "/raw/ok", NULL, &resp), CB_OK);
    ck_assert_int_eq(resp.status, 200);
    api_response_free(&resp);
    check_breaker(c, 0, 1);
    api_client_free(c);
}
END_TEST

/* ---- size limits -------------------------------------------------------- */

/* The largest single allocation the library asked for, to show that a
 * hostile size never turns into a matching buffer. */
static atomic_size_t biggest;

static void note_size(size_t n)
{
    size_t b = atomic_load(&biggest);

    while (n > b && !atomic_compare_exchange_weak(&biggest, &b, n))
        ;
}

static void *big_malloc(size_t n)
{
    note_size(n);
    return malloc(n);
}

static void *big_calloc(size_t n, size_t size)
{
    note_size(size && n > SIZE_MAX / size ? SIZE_MAX : n * size);
    return calloc(n, size);
}

static void *big_realloc(void *p, size_t n)
{
    note_size(n);
    return realloc(p, n);
}

static const cb_allocator tracking = { big_malloc, big_calloc, big_realloc, free };

static api_client *limited_client(const char *base)
{
    api_client_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.max_body_bytes = 64 * 1024;
    cfg.max_header_bytes = 16 * 1024;
    return hostile_client(base, 0, &cfg);
}

/* A single header line far larger than max_header_bytes (and than
 * libcurl's own 100 KiB line limit). */
START_TEST(test_huge_header_raw)
{
    api_client  *c;
    api_response resp;
    cb_err       rc;

    ck_assert_int_eq(cb_set_allocator(&tracking), CB_OK);
    atomic_store(&biggest, 0);
    c = limited_client(fixture_raw_url(fx));
    rc = api_get(c, "/raw/huge-headers/4000000", NULL, &resp);
    ck_assert_msg(rc == CB_ERR_TOO_LARGE || rc == CB_ERR_TRANSPORT, "%s (%s)", cb_strerror(rc),
                  resp.error);
    ck_assert_uint_eq(resp.attempts, 1); /* never retried */
    ck_assert_int_eq(resp.status, 0);
    api_response_free(&resp);
    check_breaker_after(c, rc);
    api_client_free(c);
    ck_assert_uint_le(atomic_load(&biggest), 64 * 1024);
    ck_assert_int_eq(cb_set_allocator(NULL), CB_OK);
}
END_TEST

START_TEST(test_huge_header_mhd)
{
    api_client  *c = limited_client(fixture_url(fx));
    api_response resp;
    cb_err       rc = api_get(c, "/headers/huge/65536", NULL, &resp);

    ck_assert_msg(rc == CB_ERR_TOO_LARGE || rc == CB_ERR_TRANSPORT, "%s (%s)", cb_strerror(rc),
                  resp.error);
    ck_assert_uint_eq(resp.attempts, 1);
    api_response_free(&resp);
    check_breaker_after(c, rc);
    api_client_free(c);
}
END_TEST

/* Many small headers adding up to far more than max_header_bytes. */
START_TEST(test_many_headers_raw)
{
    api_client  *c;
    api_response resp;
    cb_err       rc;

    ck_assert_int_eq(cb_set_allocator(&tracking), CB_OK);
    atomic_store(&biggest, 0);
    c = limited_client(fixture_raw_url(fx));
    rc = api_get(c, "/raw/many-headers/50000", NULL, &resp);
    ck_assert_msg(rc == CB_ERR_TOO_LARGE || rc == CB_ERR_TRANSPORT, "%s (%s)", cb_strerror(rc),
                  resp.error);
    ck_assert_uint_eq(resp.attempts, 1);
    api_response_free(&resp);
    check_breaker_after(c, rc);
    api_client_free(c);
    ck_assert_uint_le(atomic_load(&biggest), 64 * 1024);
    ck_assert_int_eq(cb_set_allocator(NULL), CB_OK);
}
END_TEST

START_TEST(test_many_headers_mhd)
{
    api_client  *c = limited_client(fixture_url(fx));
    api_response resp;
    cb_err       rc = api_get(c, "/headers/many/5000", NULL, &resp);

    ck_assert_msg(rc == CB_ERR_TOO_LARGE || rc == CB_ERR_TRANSPORT, "%s (%s)", cb_strerror(rc),
                  resp.error);
    api_response_free(&resp);
    check_breaker_after(c, rc);
    api_client_free(c);
}
END_TEST

/* Headers just under the limit still work. */
START_TEST(test_headers_under_limit)
{
    api_client  *c = limited_client(fixture_url(fx));
    api_response resp;

    ck_assert_int_eq(api_get(c, "/headers/many/100", NULL, &resp), CB_OK);
    ck_assert_str_eq(api_response_header(&resp, "x-many-99"), "value-99");
    api_response_free(&resp);
    check_breaker(c, 0, 1);
    api_client_free(c);
}
END_TEST

/* Bodies over max_body_bytes: announced by Content-Length (libcurl refuses
 * before reading), chunked, and with no length at all until the close.
 * None is retried, and no buffer grows past the limit. */
static void check_too_large(const char *base, const char *path)
{
    api_client  *c;
    api_response resp;

    ck_assert_int_eq(cb_set_allocator(&tracking), CB_OK);
    atomic_store(&biggest, 0);
    c = limited_client(base);
    ck_assert_int_eq(api_get(c, path, NULL, &resp), CB_ERR_TOO_LARGE);
    ck_assert_uint_eq(resp.attempts, 1);
    ck_assert_int_eq(resp.status, 0);
    ck_assert_uint_eq(resp.body_len, 0);
    ck_assert_ptr_nonnull(resp.body);
    api_response_free(&resp);
    /* Our own limit, not the server failing: a success for the breaker. */
    check_breaker(c, 0, 1);
    api_client_free(c);
    ck_assert_uint_le(atomic_load(&biggest), 64 * 1024 + 1);
    ck_assert_int_eq(cb_set_allocator(NULL), CB_OK);
}

START_TEST(test_body_too_large_with_length) { check_too_large(fixture_url(fx), "/large/10000000"); }
END_TEST

START_TEST(test_body_too_large_chunked)
{
    check_too_large(fixture_url(fx), "/large-chunked/10000000");
}
END_TEST

START_TEST(test_body_too_large_no_length)
{
    check_too_large(fixture_raw_url(fx), "/raw/no-content-length-large/10000000");
}
END_TEST

/* Exactly max_body_bytes is allowed, in both framings. */
START_TEST(test_body_at_limit)
{
    api_client  *c = limited_client(fixture_url(fx));
    api_response resp;

    ck_assert_int_eq(api_get(c, "/large/65536", NULL, &resp), CB_OK);
    ck_assert_uint_eq(resp.body_len, 65536);
    api_response_free(&resp);
    ck_assert_int_eq(api_get(c, "/large-chunked/65536", NULL, &resp), CB_OK);
    ck_assert_uint_eq(resp.body_len, 65536);
    api_response_free(&resp);
    check_breaker(c, 0, 2);
    api_client_free(c);
}
END_TEST

/* ---- framing, interim responses, trailers ------------------------------ */

/* A list of identical lengths is one length (RFC 9112 6.3). */
START_TEST(test_same_lengths_accepted)
{
    api_client  *c = hostile_client(fixture_raw_url(fx), 1, NULL);
    api_response resp;

    ck_assert_int_eq(api_get(c, "/raw/same-lengths", NULL, &resp), CB_OK);
    ck_assert_str_eq(resp.body, "hello");
    api_response_free(&resp);
    api_client_free(c);
}
END_TEST

/* Conflicting framing delivers no body at all, not the first 5 bytes. */
START_TEST(test_conflicting_length_no_body)
{
    api_client  *c = hostile_client(fixture_raw_url(fx), 1, NULL);
    api_response resp;

    ck_assert_int_eq(api_get(c, "/raw/two-lengths", NULL, &resp), CB_ERR_TRANSPORT);
    ck_assert_str_eq(resp.body, "");
    ck_assert_ptr_null(strstr(resp.error, "write"));
    ck_assert_ptr_nonnull(strstr(resp.error, "Content-Length"));
    api_response_free(&resp);
    api_client_free(c);
}
END_TEST

/* The header limit covers the whole response head: endless interim
 * responses end at max_header_bytes as our own limit, not after libcurl's
 * 300 KB as a transport failure; a few of them are fine. */
START_TEST(test_endless_interim_responses)
{
    api_client  *c = limited_client(fixture_raw_url(fx));
    api_response resp;

    ck_assert_int_eq(api_get(c, "/raw/interim/3", NULL, &resp), CB_OK);
    ck_assert_str_eq(resp.body, "ok");
    ck_assert_int_eq(resp.status, 200);
    ck_assert_ptr_null(api_response_header(&resp, "X-Progress"));
    api_response_free(&resp);
    ck_assert_int_eq(api_get(c, "/raw/interim/100000", NULL, &resp), CB_ERR_TOO_LARGE);
    ck_assert_ptr_nonnull(strstr(resp.error, "headers exceeded 16384"));
    api_response_free(&resp);
    check_breaker(c, 0, 2);
    api_client_free(c);
}
END_TEST

/* Trailer fields never join the header section nor drive caching. */
START_TEST(test_trailers_are_not_headers)
{
    api_client  *c = hostile_client(fixture_raw_url(fx), 1, NULL);
    api_response resp;
    unsigned     i;

    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(api_get(c, "/raw/trailer", NULL, &resp), CB_OK);
        ck_assert_str_eq(resp.body, "hello");
        ck_assert_ptr_null(api_response_header(&resp, "X-Trailer"));
        ck_assert_ptr_null(api_response_header(&resp, "Cache-Control"));
        ck_assert(!resp.from_cache);
        ck_assert_uint_eq(resp.attempts, 1);
        api_response_free(&resp);
    }
    api_client_free(c);
}
END_TEST

/* SIZE_MAX is the C idiom for "no limit": it must behave as a huge limit,
 * never wrap (it overflowed the buffer's growth bound once). The limits
 * around it and at the small end behave exactly too. */
START_TEST(test_size_limits_extremes)
{
    static const size_t limits[] = { SIZE_MAX, SIZE_MAX - 1, (size_t)1 << 40, 1 };
    api_client_config   cfg;
    api_client         *c;
    api_response        resp;
    size_t              i;

    for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        memset(&cfg, 0, sizeof(cfg));
        cfg.max_body_bytes = limits[i];
        cfg.max_header_bytes = limits[i] > 1 ? limits[i] : 64 * 1024;
        c = hostile_client(fixture_url(fx), 1, &cfg);
        ck_assert_ptr_nonnull(c);
        if (limits[i] > 1) {
            ck_assert_int_eq(api_get(c, "/large/100000", NULL, &resp), CB_OK);
            ck_assert_uint_eq(resp.body_len, 100000);
            api_response_free(&resp);
            ck_assert_int_eq(api_get(c, "/large-chunked/100000", NULL, &resp), CB_OK);
            ck_assert_uint_eq(resp.body_len, 100000);
            api_response_free(&resp);
        } else {
            ck_assert_int_eq(api_get(c, "/large/1", NULL, &resp), CB_OK);
            ck_assert_uint_eq(resp.body_len, 1);
            api_response_free(&resp);
            ck_assert_int_eq(api_get(c, "/large/2", NULL, &resp), CB_ERR_TOO_LARGE);
            api_response_free(&resp);
        }
        api_client_free(c);
        /* The header limit at SIZE_MAX, against a server's many headers. */
        memset(&cfg, 0, sizeof(cfg));
        cfg.max_header_bytes = limits[i];
        c = hostile_client(fixture_raw_url(fx), 1, &cfg);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(api_get(c, "/raw/many-headers/2000", NULL, &resp),
                         limits[i] > 1 ? CB_OK : CB_ERR_TOO_LARGE);
        api_response_free(&resp);
        api_client_free(c);
    }
}
END_TEST

/* A server may announce any length: with no limit, a claimed 2^62 bytes
 * must not become a 2^62-byte allocation (it fails as a short body). */
START_TEST(test_announced_length_not_trusted)
{
    api_client_config cfg;
    api_client       *c;
    api_response      resp;

    memset(&cfg, 0, sizeof(cfg));
    cfg.max_body_bytes = SIZE_MAX;
    c = hostile_client(fixture_raw_url(fx), 1, &cfg);
    ck_assert_int_eq(api_get(c, "/raw/content-length-huge", NULL, &resp), CB_ERR_TRANSPORT);
    api_response_free(&resp);
    api_client_free(c);
}
END_TEST

/* ---- status classes for the breaker ------------------------------------ */

START_TEST(test_4xx_is_success_5xx_failure)
{
    api_client  *c = hostile_client(fixture_url(fx), 1, NULL);
    api_response resp;

    ck_assert_int_eq(api_get(c, "/status/404", NULL, &resp), CB_ERR_HTTP);
    ck_assert_int_eq(resp.status, 404);
    api_response_free(&resp);
    check_breaker(c, 0, 1);
    ck_assert_int_eq(api_get(c, "/status/500", NULL, &resp), CB_ERR_HTTP);
    ck_assert_int_eq(resp.status, 500);
    api_response_free(&resp);
    check_breaker(c, 1, 1);
    ck_assert_int_eq(api_get(c, "/status/429", NULL, &resp), CB_ERR_HTTP);
    api_response_free(&resp);
    check_breaker(c, 2, 1);
    api_client_free(c);
}
END_TEST

/* ---- Retry-After ----------------------------------------------------- */

/* A client with the fake clock and sleep, three attempts, max_delay 2 s,
 * and the jitter seeded from the clock: unlike tu_retry_client (breaker
 * threshold 1000, seed 42, the caller's settings), a fixed preset whose
 * breaker never opens here. */
static api_client *retry_after_client(tu_clock *tc)
{
    api_client_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    tu_clock_install(tc, &cfg);
    cfg.retry.base_delay_ms = 10;
    cfg.retry.max_delay_ms = 2000;
    return hostile_client(fixture_url(fx), 3, &cfg);
}

static void check_sleeps_below(const tu_clock *tc, uint64_t max)
{
    unsigned i;

    for (i = 0; i < tc->n_sleeps; i++)
        ck_assert_uint_lt(tc->sleeps[i], max);
}

/* Years away (as seconds, as a date, and as a number no integer holds):
 * no retry at all, and no sleep. */
static void check_retry_after_far(const char *key, const char *value)
{
    tu_clock     tc;
    api_client  *c = retry_after_client(&tc);
    api_response resp;
    char         path[256];

    snprintf(path, sizeof(path), "/retry-after/%s/5?value=%s", key, value);
    ck_assert_int_eq(api_get(c, path, NULL, &resp), CB_ERR_HTTP);
    ck_assert_int_eq(resp.status, 503);
    ck_assert_uint_eq(resp.attempts, 1);
    api_response_free(&resp);
    ck_assert_uint_eq(tc.n_sleeps, 0);
    check_sleeps_below(&tc, 2000);
    check_breaker(c, 1, 0);
    api_client_free(c);
}

START_TEST(test_retry_after_years)
{
    check_retry_after_far("years-s", "315360000");
    check_retry_after_far("huge-s", "99999999999999999999999");
    check_retry_after_far("years-date", "Fri,%2031%20Dec%209999%2023:59:59%20GMT");
}
END_TEST

/* A negative Retry-After is read as "now": the retry happens at once. */
START_TEST(test_retry_after_negative)
{
    tu_clock     tc;
    api_client  *c = retry_after_client(&tc);
    api_response resp;

    ck_assert_int_eq(api_get(c, "/retry-after/neg/1?value=-5", NULL, &resp), CB_OK);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_uint_eq(resp.attempts, 2);
    api_response_free(&resp);
    check_sleeps_below(&tc, 1);
    check_breaker(c, 1, 1);
    api_client_free(c);
}
END_TEST

/* Garbage falls back to the ordinary backoff, capped by max_delay. */
START_TEST(test_retry_after_garbage)
{
    tu_clock     tc;
    api_client  *c = retry_after_client(&tc);
    api_response resp;

    ck_assert_int_eq(api_get(c, "/retry-after/junk/2?value=soon%0d%0aX:%20y", NULL, &resp), CB_OK);
    ck_assert_uint_eq(resp.attempts, 3);
    api_response_free(&resp);
    ck_assert_uint_eq(tc.n_sleeps, 2);
    check_sleeps_below(&tc, 2000 + 1);
    api_client_free(c);
}
END_TEST

/* ---- hostile caching headers ------------------------------------------ */

static api_client *cache_client(tu_clock *tc)
{
    api_client_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    tu_clock_install(tc, &cfg);
    return hostile_client(fixture_url(fx), 1, &cfg);
}

/* GETs path and returns whether the answer came from the cache with no
 * network attempt. */
static bool fetch_cached(api_client *c, const char *path)
{
    api_response resp;
    bool         cached;

    ck_assert_int_eq(api_get(c, path, NULL, &resp), CB_OK);
    ck_assert_int_eq(resp.status, 200);
    cached = resp.from_cache && resp.attempts == 0;
    api_response_free(&resp);
    return cached;
}

/* A max-age no integer holds is stored and saturates: still fresh a year
 * later (it did not wrap to something small or negative). */
START_TEST(test_max_age_overflow)
{
    tu_clock    tc;
    api_client *c = cache_client(&tc);
    const char *path = "/cache/ovf?cc=max-age%3D99999999999999999999";

    ck_assert(!fetch_cached(c, path));
    ck_assert(fetch_cached(c, path));
    tc.now_ms += 365ull * 24 * 3600 * 1000;
    ck_assert(fetch_cached(c, path));
    ck_assert_uint_eq(fixture_requests_path(fx, "/cache/ovf"), 1);
    api_client_free(c);
}
END_TEST

/* Two Cache-Control headers: max-age=600 and no-store. Not stored. */
START_TEST(test_cc_no_store_wins)
{
    tu_clock    tc;
    api_client *c = cache_client(&tc);
    const char *path = "/cache/dup-ns?cc=max-age%3D600&cc=no-store";

    ck_assert(!fetch_cached(c, path));
    ck_assert(!fetch_cached(c, path));
    ck_assert_uint_eq(fixture_requests_path(fx, "/cache/dup-ns"), 2);
    api_client_free(c);
}
END_TEST

/* max-age=600 and max-age=10 in two headers: the smaller one rules. Ten
 * seconds, not one: Date has whole seconds, so a response can already be a
 * second old when it arrives. */
START_TEST(test_cc_smallest_max_age_wins)
{
    tu_clock    tc;
    api_client *c = cache_client(&tc);
    const char *path = "/cache/dup-ma?cc=max-age%3D600&cc=max-age%3D10";

    ck_assert(!fetch_cached(c, path));
    ck_assert(fetch_cached(c, path));
    tc.now_ms += 20000;
    ck_assert(!fetch_cached(c, path));
    ck_assert_uint_eq(fixture_requests_path(fx, "/cache/dup-ma"), 2);
    api_client_free(c);
}
END_TEST

/* max-age=600 with no-cache in one header: every use asks the origin. */
START_TEST(test_cc_no_cache_wins)
{
    tu_clock    tc;
    api_client *c = cache_client(&tc);
    const char *path = "/cache/dup-nc?cc=max-age%3D600,%20no-cache&etag=v";

    ck_assert(!fetch_cached(c, path));
    ck_assert(!fetch_cached(c, path));
    ck_assert_uint_eq(fixture_requests_path(fx, "/cache/dup-nc"), 2);
    api_client_free(c);
}
END_TEST

/* A negative or garbage max-age is not a long lifetime. */
START_TEST(test_cc_negative_max_age)
{
    tu_clock    tc;
    api_client *c = cache_client(&tc);
    const char *path = "/cache/neg?cc=max-age%3D-1";

    ck_assert(!fetch_cached(c, path));
    ck_assert(!fetch_cached(c, path));
    api_client_free(c);
}
END_TEST

/* ---- redirects ------------------------------------------------------- */

static api_client *redirect_client(bool cross)
{
    api_client_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.max_redirects = 5;
    cfg.allow_cross_origin_redirects = cross;
    return hostile_client(fixture_url(fx), 1, &cfg);
}

/* GET /redirect?to=target: the final status, 302 when not followed. */
static long redirect_status(api_client *c, const char *target)
{
    char         path[512];
    api_response resp;
    long         status;
    cb_err       rc;

    snprintf(path, sizeof(path), "/redirect?to=%s", target);
    rc = api_get(c, path, NULL, &resp);
    ck_assert_msg(rc == CB_OK || rc == CB_ERR_HTTP, "%s: %s", target, cb_strerror(rc));
    status = resp.status;
    api_response_free(&resp);
    return status;
}

/* The same origin: followed once max_redirects allows it (sanity). */
START_TEST(test_redirect_same_origin)
{
    api_client *c = redirect_client(false);
    char        to[128];

    snprintf(to, sizeof(to), "%s/ok", fixture_url(fx));
    ck_assert_int_eq(redirect_status(c, to), 200);
    ck_assert_int_eq(redirect_status(c, "/ok"), 200);
    ck_assert_uint_eq(fixture_requests_path(fx, "/ok"), 2);
    api_client_free(c);

    /* The default (max_redirects 0) follows nothing. */
    c = hostile_client(fixture_url(fx), 1, NULL);
    ck_assert_int_eq(redirect_status(c, "/ok"), 302);
    ck_assert_uint_eq(fixture_requests_path(fx, "/ok"), 2);
    api_client_free(c);
}
END_TEST

/* Another host (localhost is another origin than 127.0.0.1, though it
 * reaches the same server, so the fixture can prove nothing arrived):
 * not followed unless allowed. */
START_TEST(test_redirect_other_host)
{
    api_client *c = redirect_client(false);
    char        to[128];

    snprintf(to, sizeof(to), "http://localhost:%u/ok", (unsigned)fixture_port(fx));
    ck_assert_int_eq(redirect_status(c, to), 302);
    ck_assert_uint_eq(fixture_requests_path(fx, "/ok"), 0);
    /* The other host's breaker was never created or touched. */
    {
        cb_metrics m;

        ck_assert_int_eq(api_client_breaker_metrics(c, to, &m), CB_ERR_INVALID);
    }
    api_client_free(c);

    c = redirect_client(true);
    ck_assert_int_eq(redirect_status(c, to), 200);
    ck_assert_uint_eq(fixture_requests_path(fx, "/ok"), 1);
    api_client_free(c);
}
END_TEST

/* Another port on the same host is another origin too. */
START_TEST(test_redirect_other_port)
{
    api_client *c = redirect_client(false);
    char        to[128];

    snprintf(to, sizeof(to), "%s/raw/ok", fixture_raw_url(fx));
    ck_assert_int_eq(redirect_status(c, to), 302);
    api_client_free(c);
}
END_TEST

/* Other schemes are never followed, not even with cross-origin allowed. */
START_TEST(test_redirect_other_scheme)
{
    static const char *const targets[] = {
        "file:///etc/passwd",          "ftp://127.0.0.1/x",   "gopher://127.0.0.1:70/",
        "dict://127.0.0.1:11211/stat", "javascript:alert(1)", "data:text/plain,hi",
    };
    bool   cross;
    size_t i;

    for (cross = false;; cross = true) {
        api_client *c = redirect_client(cross);

        for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
            ck_assert_int_eq(redirect_status(c, targets[i]), 302);
        check_breaker(c, 0, sizeof(targets) / sizeof(targets[0]));
        api_client_free(c);
        if (cross)
            break;
    }
}
END_TEST

/* http -> https on the same host and port is another origin: refused
 * without cross-origin (with it, the TLS handshake against a plain HTTP
 * server fails, as a transport error). */
START_TEST(test_redirect_to_https)
{
    api_client *c = redirect_client(false);
    char        to[128];

    snprintf(to, sizeof(to), "https://127.0.0.1:%u/ok", (unsigned)fixture_port(fx));
    ck_assert_int_eq(redirect_status(c, to), 302);
    ck_assert_uint_eq(fixture_requests_path(fx, "/ok"), 0);
    api_client_free(c);
}
END_TEST

/* Percent-encodes what would end the query argument. */
static void pct_encode(const char *in, char *out, size_t size)
{
    size_t n = 0;

    for (; *in && n + 4 < size; in++) {
        if (*in == '%' || *in == '?' || *in == '=' || *in == '&')
            n += (size_t)snprintf(out + n, size - n, "%%%02X", (unsigned char)*in);
        else
            out[n++] = *in;
    }
    out[n] = '\0';
}

/* A chain of redirects longer than max_redirects ends at the limit with
 * the last 3xx: five hops followed, the sixth response returned. */
START_TEST(test_redirect_chain_limit)
{
    api_client  *c = redirect_client(false);
    api_response resp;
    char         target[4096] = "/ok", enc[2048];
    int          i;

    for (i = 0; i < 7; i++) {
        pct_encode(target, enc, sizeof(enc));
        snprintf(target, sizeof(target), "/redirect?to=%s", enc);
    }
    ck_assert_int_eq(api_get(c, target, NULL, &resp), CB_OK);
    ck_assert_int_eq(resp.status, 302);
    ck_assert_uint_eq(resp.attempts, 1);
    api_response_free(&resp);
    ck_assert_uint_eq(fixture_requests_path(fx, "/redirect"), 6);
    ck_assert_uint_eq(fixture_requests_path(fx, "/ok"), 0);
    /* Every hop is an exchange of its own through the breaker: the first
     * request and five followed redirects, each answered. */
    check_breaker(c, 0, 6);
    api_client_free(c);
}
END_TEST

/* ---- concurrency ------------------------------------------------------- */

typedef struct worker {
    api_client *c;
    unsigned    errors; /* unexpected results */
} worker;

#define WORKERS 4
#define ROUNDS 5

static void *hostile_worker(void *arg)
{
    static const char *const paths[] = { "/raw/bad-chunked", "/raw/content-length-lies",
                                         "/raw/not-http", "/raw/close" };
    worker                  *w = arg;
    unsigned                 i;

    for (i = 0; i < ROUNDS * 4; i++) {
        api_response resp;

        if (api_get(w->c, paths[i % 4], NULL, &resp) != CB_ERR_TRANSPORT)
            w->errors++;
        api_response_free(&resp);
    }
    return NULL;
}

/* Several threads meet broken servers on one client: every failure is
 * counted once, by the one breaker of that origin. */
START_TEST(test_threads_hostile)
{
    api_client *c = hostile_client(fixture_raw_url(fx), 1, NULL);
    pthread_t   t[WORKERS];
    worker      w[WORKERS];
    unsigned    i;

    for (i = 0; i < WORKERS; i++) {
        w[i] = (worker){ c, 0 };
        ck_assert_int_eq(pthread_create(&t[i], NULL, hostile_worker, &w[i]), 0);
    }
    for (i = 0; i < WORKERS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_uint_eq(w[i].errors, 0);
    }
    check_breaker(c, WORKERS * ROUNDS * 4, 0);
    api_client_free(c);
}
END_TEST

static Suite *hostile_suite(void)
{
    Suite *s = suite_create("hostile");
    TCase *conn = tcase_create("connections");
    TCase *size = tcase_create("limits");
    TCase *retry = tcase_create("retry_after");
    TCase *cache = tcase_create("caching");
    TCase *redir = tcase_create("redirects");
    TCase *thr = tcase_create("threads");
    TCase *all[] = { conn, size, retry, cache, redir, thr };
    size_t i;

    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        tcase_add_checked_fixture(all[i], fx_setup, fx_teardown);
        tcase_set_timeout(all[i], 30);
        suite_add_tcase(s, all[i]);
    }
    tcase_add_loop_test(conn, test_transport_failure, 0,
                        (int)(sizeof(transport_failures) / sizeof(transport_failures[0])));
    tcase_add_test(conn, test_reset_mid_body_retried);
    tcase_add_test(conn, test_hang_times_out);
    tcase_add_test(conn, test_drip_beyond_deadline);
    tcase_add_test(conn, test_raw_ok);
    tcase_add_test(conn, test_4xx_is_success_5xx_failure);

    tcase_add_test(size, test_huge_header_raw);
    tcase_add_test(size, test_huge_header_mhd);
    tcase_add_test(size, test_many_headers_raw);
    tcase_add_test(size, test_many_headers_mhd);
    tcase_add_test(size, test_headers_under_limit);
    tcase_add_test(size, test_body_too_large_with_length);
    tcase_add_test(size, test_body_too_large_chunked);
    tcase_add_test(size, test_body_too_large_no_length);
    tcase_add_test(size, test_body_at_limit);
    tcase_add_test(size, test_same_lengths_accepted);
    tcase_add_test(size, test_conflicting_length_no_body);
    tcase_add_test(size, test_endless_interim_responses);
    tcase_add_test(size, test_trailers_are_not_headers);
    tcase_add_test(size, test_size_limits_extremes);
    tcase_add_test(size, test_announced_length_not_trusted);

    tcase_add_test(retry, test_retry_after_years);
    tcase_add_test(retry, test_retry_after_negative);
    tcase_add_test(retry, test_retry_after_garbage);

    tcase_add_test(cache, test_max_age_overflow);
    tcase_add_test(cache, test_cc_no_store_wins);
    tcase_add_test(cache, test_cc_smallest_max_age_wins);
    tcase_add_test(cache, test_cc_no_cache_wins);
    tcase_add_test(cache, test_cc_negative_max_age);

    tcase_add_test(redir, test_redirect_same_origin);
    tcase_add_test(redir, test_redirect_other_host);
    tcase_add_test(redir, test_redirect_other_port);
    tcase_add_test(redir, test_redirect_other_scheme);
    tcase_add_test(redir, test_redirect_to_https);
    tcase_add_test(redir, test_redirect_chain_limit);

    tcase_add_test(thr, test_threads_hostile);
    return s;
}

int main(void) { return tu_run_suite(hostile_suite()); }
