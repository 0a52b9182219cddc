/*
 * The flow of one call (src/request.c), along paths the client suites do
 * not take: retry_after_opens_breaker with answers that carry no usable
 * Retry-After, and the rejection message for an origin longer than the
 * response's error buffer.
 */
#include <stdio.h>
#include <string.h>

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

static Suite *cov_request_suite(void)
{
    Suite *s = suite_create("cov_request");
    TCase *tc = tcase_create("flow");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_server_backoff_needs_retry_after);
    tcase_add_test(tc, test_rejection_message_long_origin);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(cov_request_suite()); }
