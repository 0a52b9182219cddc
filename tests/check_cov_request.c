/*
 * The flow of one call (src/request.c), along paths the client suites do
 * not take: retry_after_opens_breaker with answers that carry no usable
 * Retry-After, with a 429 and with "Retry-After: 0", the rejection message
 * for an origin longer than the response's error buffer, a failing HEAD
 * answered by its stored HEAD response, one answered by a stored GET
 * without its body, and a blocking backoff sleep that a signal
 * interrupts.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "cbhttp.h"
#include "fixture.h"

#include "helpers/clients.h"
#include "helpers/testutil.h"

static api_client *backoff_client(fixture *f)
{
    api_client_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.cache.disabled = true;
    cfg.retry_after_opens_breaker = true;
    cfg.circuit_breaker.failure_threshold = 100;
    return tu_client_on(fixture_url(f), 1, &cfg);
}

/* Only a 429 or 503 with a Retry-After the library can read opens the
 * breaker; a 500 with one, a 503 without one or with garbage do not. */
START_TEST(test_server_backoff_needs_retry_after)
{
    fixture     *f = fixture_start();
    api_client  *c;
    api_response r;

    ck_assert_ptr_nonnull(f);
    c = backoff_client(f);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/retry-after/a/1?code=500&value=30", NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 500);
    ck_assert_str_eq(api_response_header(&r, "Retry-After"), "30");
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_CLOSED);
    ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_HTTP);
    ck_assert_ptr_null(api_response_header(&r, "Retry-After"));
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_CLOSED);
    ck_assert_int_eq(api_get(c, "/retry-after/b/1?value=soon", NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 503);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_CLOSED);
    /* The control: a readable one does open it, and the next call is
     * rejected without reaching the server. */
    ck_assert_int_eq(api_get(c, "/retry-after/c/1?value=30", NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    unsigned long before = fixture_requests(f);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), before);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* "circuit open for <origin>": an origin too long for the error buffer is
 * cut there, and the message stays terminated. */
START_TEST(test_rejection_message_long_origin)
{
    api_client  *c = tu_client_on(NULL, 1, NULL); /* no base: absolute URLs */
    api_response r;
    char         url[300], origin[300];

    ck_assert_ptr_nonnull(c);
    memcpy(url, "http://", 7);
    memset(url + 7, 'h', 250);
    strcpy(url + 7 + 250, "/x");
    snprintf(origin, sizeof(origin), "%.*s:80", 7 + 250, url);
    ck_assert_int_eq(api_client_trip(c, url), CB_OK);
    ck_assert_int_eq(api_get(c, url, NULL, &r), CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(strlen(r.error), sizeof(r.error) - 1);
    ck_assert_int_eq(strncmp(r.error, "circuit open for ", 17), 0);
    ck_assert_int_eq(strncmp(r.error + 17, origin, sizeof(r.error) - 1 - 17), 0);
    ck_assert_uint_eq(r.attempts, 0);
    api_response_free(&r);

    /* A short origin is named whole. */
    ck_assert_int_eq(api_client_trip(c, "http://127.0.0.1:9/"), CB_OK);
    ck_assert_int_eq(api_get(c, "http://127.0.0.1:9/x", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    ck_assert_str_eq(r.error, "circuit open for http://127.0.0.1:9");
    api_response_free(&r);
    api_client_free(c);
}
END_TEST

/* A 429 with Retry-After opens the breaker as a 503 does. */
START_TEST(test_server_backoff_429)
{
    fixture     *f = fixture_start();
    api_client  *c;
    api_response r;
    uint64_t     before;

    ck_assert_ptr_nonnull(f);
    c = backoff_client(f);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/retry-after/t429/1?code=429&value=30", NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 429);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    before = fixture_requests(f);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), before);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* "Retry-After: 0" still opens the breaker, for the shortest time there
 * is (1 ms of the client's clock): the next call at the same instant is
 * rejected, one a millisecond later goes through. */
START_TEST(test_server_backoff_zero)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    tu_clock          tc;
    api_client       *c;
    api_response      r;
    uint64_t          before;

    ck_assert_ptr_nonnull(f);
    memset(&cfg, 0, sizeof(cfg));
    cfg.cache.disabled = true;
    cfg.retry_after_opens_breaker = true;
    cfg.circuit_breaker.failure_threshold = 100;
    tu_clock_install(&tc, &cfg);
    cfg.circuit_breaker.clock = tu_clock_now;
    cfg.circuit_breaker.clock_data = &tc;
    c = tu_client_on(fixture_url(f), 1, &cfg);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/retry-after/zero/1?value=0", NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(api_response_header(&r, "Retry-After"), "0");
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    before = fixture_requests(f);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), before);
    tc.now_ms += 1;
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), before + 1);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- a failing HEAD and the cache ---------------------------------------------- */

static api_client *stale_client(fixture *f, tu_clock *tc)
{
    api_client_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    tu_clock_install(tc, &cfg);
    cfg.circuit_breaker.failure_threshold = 100;
    return tu_client_on(fixture_url(f), 1, &cfg);
}

static void origin_respond(fixture *f, const char *key, int status)
{
    api_client  *admin = tu_client_on(fixture_url(f), 1, NULL);
    api_response r;
    char         path[128];

    ck_assert_ptr_nonnull(admin);
    snprintf(path, sizeof(path), "/admin/cache/%s/respond?status=%d", key, status);
    ck_assert_int_eq(
        api_get(admin, path, &(api_options){ .cache = &(api_cache_options){ .bypass = true } }, &r),
        CB_OK);
    api_response_free(&r);
    api_client_free(admin);
}

/* A HEAD whose origin fails is answered by the HEAD response stored for
 * its URL when stale-if-error allows: no body, from the cache, stale. */
START_TEST(test_head_served_stale)
{
    fixture     *f = fixture_start();
    tu_clock     tc;
    api_client  *c;
    api_response r;

    ck_assert_ptr_nonnull(f);
    c = stale_client(f, &tc);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_request(c, "HEAD", "/cache/hs?cc=max-age%3D1%2C%20stale-if-error%3D600",
                                 NULL, 0, NULL, &r),
                     CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(!r.from_cache);
    api_response_free(&r);
    origin_respond(f, "hs", 503);
    tc.now_ms += 5000;
    ck_assert_int_eq(api_request(c, "HEAD", "/cache/hs?cc=max-age%3D1%2C%20stale-if-error%3D600",
                                 NULL, 0, NULL, &r),
                     CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.from_cache);
    ck_assert(r.stale);
    ck_assert_int_eq(r.cause, CB_ERR_HTTP);
    ck_assert_uint_eq(r.body_len, 0);
    api_response_free(&r);
    /* Without a stored response, the failure is the answer. */
    origin_respond(f, "hs2", 503);
    ck_assert_int_eq(api_request(c, "HEAD", "/cache/hs2", NULL, 0, NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 503);
    ck_assert(!r.from_cache);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* A HEAD whose origin fails, with only a GET response stored: the stale
 * stand-in is that response without its body (a HEAD answer has none,
 * RFC 9110 9.3.2). */
START_TEST(test_head_stale_from_get)
{
    fixture     *f = fixture_start();
    tu_clock     tc;
    api_client  *c;
    api_response r;
    const char  *url = "/cache/hg?cc=max-age%3D1%2C%20stale-if-error%3D600";

    ck_assert_ptr_nonnull(f);
    c = stale_client(f, &tc);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, url, NULL, &r), CB_OK);
    ck_assert_uint_gt(r.body_len, 0);
    api_response_free(&r);
    origin_respond(f, "hg", 503);
    tc.now_ms += 5000;
    ck_assert_int_eq(api_request(c, "HEAD", url, NULL, 0, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.stale);
    ck_assert_uint_eq(r.body_len, 0);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- a signal during a backoff sleep ------------------------------------------ */

static void on_sigusr1(int sig) { (void)sig; }

typedef struct poker {
    pthread_t target;
    unsigned  after_ms;
} poker;

static void *poke_main(void *arg)
{
    poker          *p = arg;
    struct timespec ts = { 0, (long)p->after_ms * 1000000L };

    nanosleep(&ts, NULL);
    pthread_kill(p->target, SIGUSR1);
    return NULL;
}

static uint64_t real_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A blocking call sleeps its whole backoff (here Retry-After: 1, a second)
 * although a signal with a handler interrupts the sleep: the retry is not
 * sent early. */
START_TEST(test_backoff_sleep_survives_signal)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    struct sigaction  sa;
    poker             p;
    pthread_t         th;
    uint64_t          t0, spent;

    ck_assert_ptr_nonnull(f);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigusr1; /* no SA_RESTART: nanosleep returns EINTR */
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.cache.disabled = true;
    cfg.retry.max_delay_ms = 5000;
    c = tu_client_on(fixture_url(f), 2, &cfg);
    ck_assert_ptr_nonnull(c);
    p.target = pthread_self();
    p.after_ms = 300;
    t0 = real_ms();
    ck_assert_int_eq(pthread_create(&th, NULL, poke_main, &p), 0);
    ck_assert_int_eq(api_get(c, "/retry-after/sig/1?value=1", NULL, &r), CB_OK);
    spent = real_ms() - t0;
    pthread_join(th, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.attempts, 2);
    ck_assert_uint_ge(spent, 1000);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

static Suite *cov_request_suite(void)
{
    Suite *s = suite_create("cov_request");
    TCase *tc = tcase_create("flow");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_server_backoff_needs_retry_after);
    tcase_add_test(tc, test_rejection_message_long_origin);
    tcase_add_test(tc, test_server_backoff_429);
    tcase_add_test(tc, test_head_served_stale);
    tcase_add_test(tc, test_head_stale_from_get);
    tcase_add_test(tc, test_server_backoff_zero);
    tcase_add_test(tc, test_backoff_sleep_survives_signal);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(cov_request_suite()); }
