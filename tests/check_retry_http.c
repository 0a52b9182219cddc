/*
 * Retries against the fixture server: which calls are retried (methods,
 * Idempotency-Key, statuses, transport errors), the full-jitter backoff
 * bounds, Retry-After (seconds, HTTP-date, too long, negative, garbage), the
 * call deadline, the breaker cutting retries short, and the retry budget.
 * A fake clock and a recording sleep (tests/helpers) make every delay
 * visible and free; one test sleeps for real.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "cbhttp.h"
#include "fixture.h"
#include "helpers/clients.h"
#include "helpers/testutil.h"

static uint64_t sleeps_sum(const tu_clock *tc)
{
    uint64_t s = 0;
    unsigned i;

    for (i = 0; i < tc->n_sleeps; i++)
        s += tc->sleeps[i];
    return s;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* ---- the basic loop ------------------------------------------------------ */

START_TEST(test_flaky_recovers)
{
    fixture           *f = fixture_start();
    tu_clock           tc;
    api_client_config  cfg;
    api_client        *c;
    api_response       r;
    api_origin_metrics om;

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 3;
    cfg.retry.base_delay_ms = 100;
    cfg.retry.max_delay_ms = 150;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(api_get(c, "/flaky/k/2", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.attempts, 3);
    ck_assert_ptr_nonnull(strstr(r.body, "\"attempt\":3"));
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 3);
    ck_assert_uint_eq(tc.n_sleeps, 2);
    ck_assert_uint_le(tc.sleeps[0], 100);
    ck_assert_uint_le(tc.sleeps[1], 150); /* 200 capped at max_delay_ms */
    om = tu_origin_metrics(c, NULL);
    ck_assert_uint_eq(om.attempts, 3);
    ck_assert_uint_eq(om.retries, 2);
    ck_assert_uint_eq(om.retries_denied, 0);
    /* The breaker saw two failures and a success. */
    ck_assert_uint_eq(om.breaker.failures, 2);
    ck_assert_uint_eq(om.breaker.successes, 1);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* Not enough attempts: the last failure is returned, filled in. */
START_TEST(test_flaky_exhausted)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 3;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(api_get(c, "/flaky/k/5", NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 503);
    ck_assert_uint_eq(r.attempts, 3);
    ck_assert_ptr_nonnull(strstr(r.body, "\"attempt\":3"));
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 3);
    ck_assert_uint_eq(tc.n_sleeps, 2);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* Full jitter: retry n sleeps in [0, min(max, base * 2^n)]. */
START_TEST(test_backoff_bounds)
{
    fixture *f = fixture_start();
    uint64_t seed, total = 0;

    for (seed = 1; seed <= 12; seed++) {
        tu_clock          tc;
        api_client_config cfg;
        api_client       *c;
        api_response      r;
        unsigned          i;

        memset(&cfg, 0, sizeof(cfg));
        cfg.random_seed = seed;
        cfg.retry.max_attempts = 9;
        cfg.retry.base_delay_ms = 10;
        cfg.retry.max_delay_ms = 300;
        cfg.retry.budget_disabled = true;
        c = tu_retry_client(fixture_url(f), &tc, &cfg);
        ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_HTTP);
        ck_assert_uint_eq(r.attempts, 9);
        api_response_free(&r);
        ck_assert_uint_eq(tc.n_sleeps, 8);
        for (i = 0; i < tc.n_sleeps; i++) {
            uint64_t cap = min_u64(300, 10ull << i);

            ck_assert_msg(tc.sleeps[i] <= cap, "seed %llu retry %u slept %llu > %llu",
                          (unsigned long long)seed, i, (unsigned long long)tc.sleeps[i],
                          (unsigned long long)cap);
        }
        total += sleeps_sum(&tc);
        api_client_free(c);
    }
    /* Jitter, not zero: 96 sleeps with caps up to 300 ms add up. */
    ck_assert_uint_gt(total, 1000);
    ck_assert_uint_eq(fixture_requests(f), 12 * 9);
    fixture_stop(f);
}
END_TEST

START_TEST(test_max_attempts_one)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    api_retry_config  three;
    api_options       o;

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 1;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/flaky/a/1", NULL, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 0);
    ck_assert_uint_eq(fixture_requests(f), 2);

    /* A per-request retry policy overrides the client's. */
    memset(&three, 0, sizeof(three));
    three.max_attempts = 3;
    memset(&o, 0, sizeof(o));
    o.retry = &three;
    ck_assert_int_eq(api_get(c, "/flaky/b/2", &o, &r), CB_OK);
    ck_assert_uint_eq(r.attempts, 3);
    api_response_free(&r);
    api_client_free(c);

    /* And the default is three attempts. */
    memset(&cfg, 0, sizeof(cfg));
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(api_get(c, "/status/500", NULL, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 3);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- what is retried ------------------------------------------------------ */

typedef struct method_case {
    const char *method;
    bool        idempotency_key;
    unsigned    attempts; /* against /flaky/{key}/1 with 3 attempts allowed */
} method_case;

static const method_case method_cases[] = {
    { "GET", false, 2 },    { "HEAD", false, 2 },    { "PUT", false, 2 },
    { "DELETE", false, 2 }, { "OPTIONS", false, 2 }, { "POST", false, 1 },
    { "PATCH", false, 1 },  { "POST", true, 2 },     { "PATCH", true, 2 },
};

START_TEST(test_methods)
{
    static const char *const key[] = { "Idempotency-Key: x", NULL };
    static const char *const lower[] = { "idempotency-key: abc", NULL };
    const method_case       *mc = &method_cases[_i];
    fixture                 *f = fixture_start();
    tu_clock                 tc;
    api_client_config        cfg;
    api_client              *c;
    api_response             r;
    api_options              o;
    cb_err                   want;
    const char              *body;

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 3;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    memset(&o, 0, sizeof(o));
    o.headers = mc->idempotency_key ? (_i % 2 ? key : lower) : NULL;
    want = mc->attempts == 2 ? CB_OK : CB_ERR_HTTP;
    body = strcmp(mc->method, "POST") == 0 || strcmp(mc->method, "PUT") == 0 ||
                   strcmp(mc->method, "PATCH") == 0
               ? "body"
               : NULL;
    ck_assert_msg(api_request(c, mc->method, "/flaky/m/1", body, body ? 4 : 0, &o, &r) == want,
                  "%s%s", mc->method, mc->idempotency_key ? " with a key" : "");
    ck_assert_uint_eq(r.attempts, mc->attempts);
    ck_assert_int_eq(r.status, mc->attempts == 2 ? 200 : 503);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), mc->attempts);
    ck_assert_uint_eq(tc.n_sleeps, mc->attempts - 1);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

typedef struct status_case {
    unsigned status;
    bool     retried;
} status_case;

static const status_case status_cases[] = {
    { 400, false }, { 401, false }, { 403, false }, { 404, false }, { 409, false },
    { 501, false }, { 505, false }, { 408, true },  { 429, true },  { 500, true },
    { 502, true },  { 503, true },  { 504, true },
};

START_TEST(test_statuses)
{
    const status_case *sc = &status_cases[_i];
    fixture           *f = fixture_start();
    tu_clock           tc;
    api_client_config  cfg;
    api_client        *c;
    api_response       r;
    char               path[64];

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 3;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    snprintf(path, sizeof(path), "/status/%u", sc->status);
    ck_assert_int_eq(api_get(c, path, NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, (long)sc->status);
    ck_assert_msg(r.attempts == (sc->retried ? 3u : 1u), "status %u: %u attempts", sc->status,
                  r.attempts);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), sc->retried ? 3 : 1);
    /* Through /flaky too: a retried status recovers. */
    snprintf(path, sizeof(path), "/flaky/s/1?code=%u", sc->status);
    ck_assert_int_eq(api_get(c, path, NULL, &r), sc->retried ? CB_OK : CB_ERR_HTTP);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* Connect errors, timeouts and transport errors are retried; a body over
 * the limit is not. */
START_TEST(test_transport_errors)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    api_options       o;
    char              url[64];

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 3;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(api_get(c, "/reset-mid-body", NULL, &r), CB_ERR_TRANSPORT);
    ck_assert_uint_eq(r.attempts, 3);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(f, "/reset-mid-body"), 3);
    api_client_free(c);
    cfg.max_body_bytes = 100;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(api_get(c, "/large/1000", NULL, &r), CB_ERR_TOO_LARGE);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/large-chunked/1000", NULL, &r), CB_ERR_TOO_LARGE);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 0);
    cfg.max_body_bytes = 0;
    /* The fake clock stands still during an attempt, so the deadline in
     * fake time leaves room for a second real timeout. */
    memset(&o, 0, sizeof(o));
    o.timeout_ms = 150;
    cfg.retry.max_attempts = 2;
    api_client_free(c);
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(api_get(c, "/delay/3000", &o, &r), CB_ERR_TIMEOUT);
    ck_assert_uint_eq(r.attempts, 2);
    api_response_free(&r);
    api_client_free(c);

    memset(&cfg, 0, sizeof(cfg));
    tu_clock_install(&tc, &cfg);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)tu_closed_port());
    cfg.base_url = url;
    cfg.retry.max_attempts = 3;
    cfg.circuit_breaker.failure_threshold = 100;
    c = api_client_new(&cfg);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CONNECT);
    ck_assert_uint_eq(r.attempts, 3);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 2);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- Retry-After ------------------------------------------------------------ */

static cb_err get_retry_after(api_client *c, const char *key, unsigned fails, const char *value,
                              const api_options *o, api_response *r)
{
    char path[256];

    snprintf(path, sizeof(path), "/retry-after/%s/%u?value=%s", key, fails, value);
    return api_get(c, path, o, r);
}

START_TEST(test_retry_after_seconds)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;

    memset(&cfg, 0, sizeof(cfg));
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(get_retry_after(c, "s", 1, "1", NULL, &r), CB_OK);
    ck_assert_uint_eq(r.attempts, 2);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 1);
    ck_assert_uint_eq(tc.sleeps[0], 1000);
    /* Surrounding spaces are fine (sent encoded). */
    ck_assert_int_eq(get_retry_after(c, "t", 1, "%202%20", NULL, &r), CB_OK);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 2);
    ck_assert_uint_eq(tc.sleeps[1], 2000);
    /* 429 with Retry-After as well. */
    ck_assert_int_eq(get_retry_after(c, "u", 1, "3&code=429", NULL, &r), CB_OK);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 3);
    ck_assert_uint_eq(tc.sleeps[2], 3000);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* "Sun, 06 Nov 1994 08:49:37 GMT" URL-encoded for a query value. */
static void http_date_arg(time_t t, char *out, size_t size)
{
    struct tm tm;
    char      d[64];
    size_t    i, n = 0;

    gmtime_r(&t, &tm);
    strftime(d, sizeof(d), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    for (i = 0; d[i] && n + 4 < size; i++) {
        if (d[i] == ' ' || d[i] == ',' || d[i] == ':') {
            n += (size_t)snprintf(out + n, size - n, "%%%02X", (unsigned char)d[i]);
        } else {
            out[n++] = d[i];
        }
    }
    out[n] = '\0';
}

START_TEST(test_retry_after_date)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    char              v[128];

    memset(&cfg, 0, sizeof(cfg));
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    http_date_arg(time(NULL) + 5, v, sizeof(v));
    ck_assert_int_eq(get_retry_after(c, "d", 1, v, NULL, &r), CB_OK);
    ck_assert_uint_eq(r.attempts, 2);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 1);
    /* Second resolution, and a second may tick between the two clocks. */
    ck_assert_uint_ge(tc.sleeps[0], 3000);
    ck_assert_uint_le(tc.sleeps[0], 5000);

    /* A date in the past: retry at once. */
    ck_assert_int_eq(
        get_retry_after(c, "p", 1, "Sun%2C%2006%20Nov%201994%2008%3A49%3A37%20GMT", NULL, &r),
        CB_OK);
    ck_assert_uint_eq(r.attempts, 2);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 2);
    ck_assert_uint_eq(tc.sleeps[1], 0);

    /* A date beyond max_delay_ms: no retry. */
    http_date_arg(time(NULL) + 60, v, sizeof(v));
    ck_assert_int_eq(get_retry_after(c, "far", 1, v, NULL, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 2);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_retry_after_too_long)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;

    memset(&cfg, 0, sizeof(cfg));
    c = tu_retry_client(fixture_url(f), &tc, &cfg); /* max_delay_ms 10000 */
    ck_assert_int_eq(get_retry_after(c, "l", 1, "20", NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 503);
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert_str_eq(api_response_header(&r, "Retry-After"), "20");
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 0);
    ck_assert_uint_eq(fixture_requests(f), 1);
    /* Exactly max_delay_ms is honoured. */
    ck_assert_int_eq(get_retry_after(c, "m", 1, "10", NULL, &r), CB_OK);
    ck_assert_uint_eq(r.attempts, 2);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 1);
    ck_assert_uint_eq(tc.sleeps[0], 10000);
    api_client_free(c);

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_delay_ms = 500;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(get_retry_after(c, "n", 1, "1", NULL, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 0);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_retry_after_negative_and_garbage)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.base_delay_ms = 100;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    /* Negative: read as 0, retried at once. */
    ck_assert_int_eq(get_retry_after(c, "neg", 1, "-1", NULL, &r), CB_OK);
    ck_assert_uint_eq(r.attempts, 2);
    api_response_free(&r);
    ck_assert_uint_eq(sleeps_sum(&tc), 0);
    ck_assert_uint_eq(fixture_requests(f), 2);
    /* Garbage: ignored, the backoff decides (at most base_delay_ms). */
    tc.n_sleeps = 0;
    ck_assert_int_eq(get_retry_after(c, "g", 1, "soon", NULL, &r), CB_OK);
    ck_assert_uint_eq(r.attempts, 2);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 1);
    ck_assert_uint_le(tc.sleeps[0], 100);
    tc.n_sleeps = 0;
    ck_assert_int_eq(get_retry_after(c, "h", 1, "1.5", NULL, &r), CB_OK);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 1);
    ck_assert_uint_le(tc.sleeps[0], 100);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- the deadline ----------------------------------------------------------- */

START_TEST(test_deadline)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    api_options       o;
    uint64_t          start;

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 10;
    cfg.retry.base_delay_ms = 400;
    cfg.retry.max_delay_ms = 5000;
    cfg.retry.budget_disabled = true;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    memset(&o, 0, sizeof(o));

    /* Retry-After beyond the deadline: no sleep at all. */
    o.timeout_ms = 500;
    ck_assert_int_eq(get_retry_after(c, "dl", 3, "1", &o, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 0);

    /* Backoff: every sleep ends before the deadline. */
    o.timeout_ms = 1000;
    start = tc.now_ms;
    ck_assert_int_eq(api_get(c, "/status/503", &o, &r), CB_ERR_HTTP);
    ck_assert_uint_ge(r.attempts, 1);
    ck_assert_uint_lt(r.attempts, 10);
    ck_assert_uint_eq(tc.n_sleeps, r.attempts - 1);
    api_response_free(&r);
    ck_assert_uint_lt(sleeps_sum(&tc), 1000);
    ck_assert_uint_lt(tc.now_ms - start, 1000);
    api_client_free(c);

    /* The client's default deadline counts the same way. */
    memset(&cfg, 0, sizeof(cfg));
    cfg.timeout_ms = 700;
    cfg.retry.max_attempts = 10;
    cfg.retry.base_delay_ms = 300;
    cfg.retry.budget_disabled = true;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_uint_lt(sleeps_sum(&tc), 700);
    ck_assert_int_eq(get_retry_after(c, "dm", 3, "1", NULL, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- the breaker ends retries ------------------------------------------------ */

/* A clock near its end (an injected one may start anywhere): the deadline
 * saturates instead of wrapping into the past, so the call keeps its whole
 * budget and its retries. */
START_TEST(test_deadline_near_clock_end)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 3;
    cfg.retry.base_delay_ms = 10;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    tc.now_ms = UINT64_MAX - 1000; /* start + 30000 would wrap */
    ck_assert_int_eq(api_get(c, "/flaky/end/1", NULL, &r), CB_OK);
    ck_assert_uint_eq(r.attempts, 2);
    ck_assert_uint_eq(tc.n_sleeps, 1);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* retry_after_opens_breaker: the server's Retry-After holds back every
 * caller of the origin, capped at max_delay_ms; without the option the
 * breaker is untouched (the retry runs). */
START_TEST(test_retry_after_opens_breaker)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    uint64_t          sent;

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 3;
    cfg.retry.max_delay_ms = 5000;
    cfg.retry_after_opens_breaker = true;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(api_get(c, "/retry-after/ob/3?value=2", NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 503);
    ck_assert_uint_eq(r.attempts, 1); /* the open breaker ends the retries */
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    sent = fixture_requests(f);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), sent);
    tc.now_ms += 1999;
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    tc.now_ms += 1;
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_HALF_OPEN);
    /* A Retry-After beyond max_delay_ms opens it for max_delay_ms. */
    ck_assert_int_eq(api_get(c, "/retry-after/ob2/1?value=600", NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    tc.now_ms += 4999;
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    tc.now_ms += 1;
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_HALF_OPEN);
    api_client_free(c);

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 3;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(api_get(c, "/retry-after/off/1?value=1", NULL, &r), CB_OK);
    ck_assert_uint_eq(r.attempts, 2);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_CLOSED);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_breaker_stops_retries)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    cb_err            e;

    memset(&cfg, 0, sizeof(cfg));
    cfg.circuit_breaker.failure_threshold = 2;
    cfg.retry.max_attempts = 5;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    e = api_get(c, "/status/503", NULL, &r);
    ck_assert_msg(e == CB_ERR_HTTP || e == CB_ERR_CIRCUIT_OPEN, "%s", cb_strerror(e));
    if (e == CB_ERR_HTTP)
        ck_assert_int_eq(r.status, 503);
    ck_assert_uint_eq(r.attempts, 2);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 2);
    /* One sleep between the two attempts, none after the opening. */
    ck_assert_uint_eq(tc.n_sleeps, 1);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    /* The next call is rejected at once, without sleeping. */
    ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(r.attempts, 0);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 1);
    ck_assert_uint_eq(fixture_requests(f), 2);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* A breaker opened by another path mid-call also stops the retries: after a
 * HALF_OPEN probe fails, no retry is even attempted. */
START_TEST(test_half_open_probe_not_retried)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;

    memset(&cfg, 0, sizeof(cfg));
    cfg.circuit_breaker.failure_threshold = 1;
    cfg.circuit_breaker.reset_timeout_ms = 1000;
    cfg.retry.max_attempts = 5;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(api_get(c, "/status/500", NULL, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    tc.now_ms += 1001;
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_HALF_OPEN);
    tc.n_sleeps = 0;
    ck_assert_int_eq(api_get(c, "/status/500", NULL, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_uint_eq(tc.n_sleeps, 0);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    ck_assert_uint_eq(fixture_requests(f), 2);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- the retry budget ---------------------------------------------------------- */

START_TEST(test_budget_denies)
{
    fixture           *f = fixture_start();
    tu_clock           tc;
    api_client_config  cfg;
    api_client        *c;
    api_response       r;
    api_origin_metrics om;

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 5;
    cfg.retry.base_delay_ms = 1;
    cfg.retry.max_delay_ms = 1;
    cfg.retry.budget_percent = 1;
    cfg.retry.budget_min_per_sec = 1;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    /* The floor grants one retry in this second; the 1 % ratio none. */
    ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 2);
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 3);
    om = tu_origin_metrics(c, NULL);
    ck_assert_uint_eq(om.retries, 1);
    ck_assert_uint_ge(om.retries_denied, 2);
    ck_assert_uint_eq(om.budget_available, 0);
    api_client_free(c);

    /* The same budget, disabled: every eligible retry runs. */
    cfg.retry.budget_disabled = true;
    cfg.random_seed = 0;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 5);
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 5);
    api_response_free(&r);
    om = tu_origin_metrics(c, NULL);
    ck_assert_uint_eq(om.retries, 8);
    ck_assert_uint_eq(om.retries_denied, 0);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* With the defaults, 10 retries within one second are always granted, in
 * one call or spread over many. */
START_TEST(test_budget_default_floor)
{
    fixture           *f = fixture_start();
    tu_clock           tc;
    api_client_config  cfg;
    api_client        *c;
    api_response       r;
    api_origin_metrics om;
    int                i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 11;
    cfg.retry.base_delay_ms = 1;
    cfg.retry.max_delay_ms = 1;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 11);
    api_response_free(&r);
    ck_assert_uint_lt(tc.now_ms, 2000); /* all in the same second */
    om = tu_origin_metrics(c, NULL);
    ck_assert_uint_eq(om.retries, 10);
    ck_assert_uint_eq(om.retries_denied, 0);
    api_client_free(c);

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.base_delay_ms = 1;
    cfg.retry.max_delay_ms = 1;
    c = tu_retry_client(fixture_url(f), &tc, &cfg);
    for (i = 0; i < 10; i++) {
        char path[64];

        snprintf(path, sizeof(path), "/flaky/floor%d/1", i);
        ck_assert_int_eq(api_get(c, path, NULL, &r), CB_OK);
        ck_assert_uint_eq(r.attempts, 2);
        api_response_free(&r);
    }
    om = tu_origin_metrics(c, NULL);
    ck_assert_uint_eq(om.retries, 10);
    ck_assert_uint_eq(om.retries_denied, 0);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- for real ------------------------------------------------------------------ */

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

START_TEST(test_real_retry_after)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    uint64_t          t0, t1;

    memset(&cfg, 0, sizeof(cfg));
    cfg.base_url = fixture_url(f);
    c = api_client_new(&cfg);
    ck_assert_ptr_nonnull(c);
    t0 = mono_ns();
    ck_assert_int_eq(get_retry_after(c, "real", 1, "1", NULL, &r), CB_OK);
    t1 = mono_ns();
    ck_assert_uint_eq(r.attempts, 2);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_ge(r.elapsed_ms, 1000);
    api_response_free(&r);
    ck_assert_uint_ge(t1 - t0, 1000000000u);
    ck_assert_uint_eq(fixture_requests(f), 2);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

static Suite *retry_http_suite(void)
{
    Suite *s = suite_create("retry_http");
    TCase *tc;

    tc = tcase_create("loop");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_flaky_recovers);
    tcase_add_test(tc, test_flaky_exhausted);
    tcase_add_test(tc, test_backoff_bounds);
    tcase_add_test(tc, test_max_attempts_one);
    tcase_add_loop_test(tc, test_methods, 0, (int)(sizeof(method_cases) / sizeof(method_cases[0])));
    tcase_add_loop_test(tc, test_statuses, 0,
                        (int)(sizeof(status_cases) / sizeof(status_cases[0])));
    tcase_add_test(tc, test_transport_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("retry_after");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_retry_after_seconds);
    tcase_add_test(tc, test_retry_after_date);
    tcase_add_test(tc, test_retry_after_too_long);
    tcase_add_test(tc, test_retry_after_negative_and_garbage);
    tcase_add_test(tc, test_deadline);
    tcase_add_test(tc, test_deadline_near_clock_end);
    tcase_add_test(tc, test_retry_after_opens_breaker);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_breaker_stops_retries);
    tcase_add_test(tc, test_half_open_probe_not_retried);
    tcase_add_test(tc, test_budget_denies);
    tcase_add_test(tc, test_budget_default_floor);
    tcase_add_test(tc, test_real_retry_after);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(retry_http_suite()); }
