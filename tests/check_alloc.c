/* Allocation failure: every library entry point that allocates is run with
 * the Nth allocation failing, for N = 1, 2, ... until the operation runs to
 * the end without reaching the failure. Each run must return CB_ERR_NOMEM
 * (NULL for constructors) or succeed, never crash, and leave no allocation
 * behind once everything is freed.
 *
 * The counting allocator sees only what goes through cb_set_allocator: the
 * library's own allocations and cJSON's. libcurl and the fixture server use
 * the C library's malloc and are unaffected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "alloc.h"
#include "cbhttp.h"
#include "fixture.h"
#include "helpers/failalloc.h"
#include "helpers/testutil.h"

/* Far more allocation points than any operation here has: a loop that
 * reaches this did not converge. */
#define MAX_N 5000

static void check_rc(cb_err rc, unsigned long n)
{
    ck_assert_msg(rc == CB_OK || rc == CB_ERR_NOMEM, "N=%lu: %s", n, cb_strerror(rc));
}

/* ---- the operations ---------------------------------------------------- */

static const char *const default_headers[] = { "Accept: application/json", "X-Test: alloc", NULL };

/* (a) api_client_new + api_client_free, with every string option set so
 * that each copy is an allocation point. */
START_TEST(test_client_new)
{
    api_client_config cfg;
    unsigned long     n;

    tu_alloc_install();
    memset(&cfg, 0, sizeof(cfg));
    cfg.base_url = "http://127.0.0.1:1/api";
    cfg.user_agent = "alloc-test/1";
    cfg.default_headers = default_headers;
    cfg.ca_file = "/nonexistent/ca.pem";
    for (n = 1; n < MAX_N; n++) {
        api_client *c;
        bool        hit;

        tu_alloc_fail_at(n);
        c = api_client_new(&cfg);
        hit = tu_alloc_disarm();
        api_client_free(c);
        ck_assert_int_eq(tu_alloc_live(), 0);
        if (!hit) {
            ck_assert_ptr_nonnull(c);
            break;
        }
    }
    ck_assert_uint_lt(n, MAX_N);
    ck_assert_uint_gt(n, 3); /* it did allocate several times */
    tu_alloc_uninstall();
}
END_TEST

/* (b) A GET that fails twice with 503 and succeeds on the third attempt
 * (fake sleep, so the backoff costs nothing). */
START_TEST(test_get_with_retries)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    tu_clock          tc;
    unsigned long     n;

    ck_assert_ptr_nonnull(f);
    tu_alloc_install();
    memset(&cfg, 0, sizeof(cfg));
    cfg.base_url = fixture_url(f);
    cfg.retry.max_attempts = 3;
    cfg.retry.base_delay_ms = 1;
    cfg.default_headers = default_headers;
    cfg.random_seed = 7;
    tu_clock_install(&tc, &cfg);
    for (n = 1; n < MAX_N; n++) {
        api_client  *c = api_client_new(&cfg);
        api_response resp;
        char         path[64];
        const char  *hdrs[] = { "X-Per-Request: yes", NULL };
        api_options  opts = { .headers = hdrs };
        cb_err       rc;
        bool         hit;

        ck_assert_ptr_nonnull(c);
        snprintf(path, sizeof(path), "/flaky/alloc-b-%lu/2", n);
        tu_alloc_fail_at(n);
        rc = api_get(c, path, &opts, &resp);
        hit = tu_alloc_disarm();
        check_rc(rc, n);
        /* Whatever happened, the response is freeable and has a body. */
        ck_assert_ptr_nonnull(resp.body);
        if (!hit) {
            ck_assert_int_eq(rc, CB_OK);
            ck_assert_int_eq(resp.status, 200);
            ck_assert_uint_eq(resp.attempts, 3);
        }
        api_response_free(&resp);
        api_client_free(c);
        ck_assert_int_eq(tu_alloc_live(), 0);
        if (!hit)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
    tu_alloc_uninstall();
    fixture_stop(f);
}
END_TEST

/* (c) A cacheable GET that stores an entry, then a fresh hit. */
START_TEST(test_cache_store_and_hit)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    unsigned long     n;

    ck_assert_ptr_nonnull(f);
    tu_alloc_install();
    memset(&cfg, 0, sizeof(cfg));
    cfg.base_url = fixture_url(f);
    for (n = 1; n < MAX_N; n++) {
        api_client  *c = api_client_new(&cfg);
        api_response r1, r2;
        char         path[96];
        cb_err       rc1, rc2;
        bool         hit;

        ck_assert_ptr_nonnull(c);
        snprintf(path, sizeof(path), "/cache/alloc-c-%lu?cc=max-age%%3D600&etag=v", n);
        tu_alloc_fail_at(n);
        rc1 = api_get(c, path, NULL, &r1);
        rc2 = api_get(c, path, NULL, &r2);
        hit = tu_alloc_disarm();
        check_rc(rc1, n);
        check_rc(rc2, n);
        ck_assert_ptr_nonnull(r1.body);
        ck_assert_ptr_nonnull(r2.body);
        if (!hit) {
            ck_assert_int_eq(rc1, CB_OK);
            ck_assert_uint_eq(r1.attempts, 1);
            ck_assert(!r1.from_cache);
            ck_assert_int_eq(rc2, CB_OK);
            ck_assert(r2.from_cache);
            ck_assert_uint_eq(r2.attempts, 0);
            ck_assert_int_eq(r2.status, 200);
            ck_assert_uint_eq(r2.body_len, r1.body_len);
            ck_assert_mem_eq(r2.body, r1.body, r1.body_len);
        }
        if (rc2 == CB_OK && r2.from_cache)
            ck_assert_int_eq(r2.status, 200);
        api_response_free(&r1);
        api_response_free(&r2);
        api_client_free(c);
        ck_assert_int_eq(tu_alloc_live(), 0);
        if (!hit)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
    tu_alloc_uninstall();
    fixture_stop(f);
}
END_TEST

/* Twelve request headers: more than the call keeps on its stack. */
static const char *const many_headers[] = { "X-H-0: 0", "X-H-1: 1", "X-H-2: 2",   "X-H-3: 3",
                                            "X-H-4: 4", "X-H-5: 5", "X-H-6: 6",   "X-H-7: 7",
                                            "X-H-8: 8", "X-H-9: 9", "X-H-10: 10", "X-Test: request",
                                            NULL };

/* (g) A POST with a body and many headers, redirected by a 303 (followed as
 * a GET), then api_request_json with the same headers. */
START_TEST(test_redirected_post_many_headers)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    unsigned long     n;
    cJSON            *doc = cJSON_CreateObject();

    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(doc);
    cJSON_AddNumberToObject(doc, "n", 1);
    tu_alloc_install();
    memset(&cfg, 0, sizeof(cfg));
    cfg.base_url = fixture_url(f);
    cfg.default_headers = default_headers;
    cfg.retry.max_attempts = 1;
    cfg.max_redirects = 2;
    for (n = 1; n < MAX_N; n++) {
        api_client  *c = api_client_new(&cfg);
        api_options  opts = { .headers = many_headers };
        api_response r1, r2;
        cb_err       rc1, rc2;
        bool         hit;

        ck_assert_ptr_nonnull(c);
        tu_alloc_fail_at(n);
        rc1 = api_request(c, "POST", "/redirect?to=/echo&code=303", "body", 4, &opts, &r1);
        rc2 = api_request_json(c, "PUT", "/echo", doc, &opts, &r2);
        hit = tu_alloc_disarm();
        check_rc(rc1, n);
        check_rc(rc2, n);
        ck_assert_ptr_nonnull(r1.body);
        ck_assert_ptr_nonnull(r2.body);
        if (!hit) {
            ck_assert_int_eq(r1.status, 200);
            ck_assert_ptr_nonnull(strstr(r1.body, "\"method\":\"GET\""));
            ck_assert_ptr_nonnull(strstr(r1.body, "\"X-H-10\":\"10\""));
            /* The request's X-Test replaced the client's. */
            ck_assert_ptr_nonnull(strstr(r1.body, "\"X-Test\":\"request\""));
            ck_assert_ptr_null(strstr(r1.body, "\"X-Test\":\"alloc\""));
            ck_assert_int_eq(r2.status, 200);
            ck_assert_ptr_nonnull(strstr(r2.body, "\"method\":\"PUT\""));
            ck_assert_ptr_nonnull(strstr(r2.body, "\"X-H-0\":\"0\""));
        }
        api_response_free(&r1);
        api_response_free(&r2);
        api_client_free(c);
        ck_assert_int_eq(tu_alloc_live(), 0);
        if (!hit)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
    ck_assert_uint_gt(n, 5);
    tu_alloc_uninstall();
    cJSON_Delete(doc);
    fixture_stop(f);
}
END_TEST

/* (h) A stored entry that is stale at once, revalidated by a 304: only the
 * revalidating call is armed. */
START_TEST(test_revalidation)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    unsigned long     n;

    ck_assert_ptr_nonnull(f);
    tu_alloc_install();
    memset(&cfg, 0, sizeof(cfg));
    cfg.base_url = fixture_url(f);
    cfg.retry.max_attempts = 1;
    for (n = 1; n < MAX_N; n++) {
        api_client  *c = api_client_new(&cfg);
        api_response r1, r2;
        char         path[96];
        cb_err       rc;
        bool         hit;

        ck_assert_ptr_nonnull(c);
        snprintf(path, sizeof(path), "/cache/alloc-h-%lu?cc=max-age%%3D0&etag=v", n);
        ck_assert_int_eq(api_get(c, path, NULL, &r1), CB_OK);
        ck_assert(!r1.from_cache);
        tu_alloc_fail_at(n);
        rc = api_get(c, path, NULL, &r2);
        hit = tu_alloc_disarm();
        check_rc(rc, n);
        ck_assert_ptr_nonnull(r2.body);
        if (!hit) {
            ck_assert_int_eq(rc, CB_OK);
            ck_assert_int_eq(r2.status, 200);
            ck_assert(r2.revalidated);
            ck_assert(r2.from_cache);
            ck_assert_uint_eq(r2.body_len, r1.body_len);
        }
        api_response_free(&r1);
        api_response_free(&r2);
        api_client_free(c);
        ck_assert_int_eq(tu_alloc_live(), 0);
        if (!hit)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
    ck_assert_uint_gt(n, 2);
    tu_alloc_uninstall();
    fixture_stop(f);
}
END_TEST

/* (d) The metrics exporters, on a client with two origins and a cache. */
START_TEST(test_metrics)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      resp;
    unsigned long     n;
    char              other[64];

    ck_assert_ptr_nonnull(f);
    tu_alloc_install();
    memset(&cfg, 0, sizeof(cfg));
    cfg.base_url = fixture_url(f);
    c = api_client_new(&cfg);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &resp), CB_OK);
    api_response_free(&resp);
    snprintf(other, sizeof(other), "http://localhost:%u/", (unsigned)fixture_port(f));
    ck_assert_int_eq(api_client_trip(c, other), CB_OK);
    for (n = 1; n < MAX_N; n++) {
        char  *json = NULL, *prom = NULL;
        cb_err rj, rp;
        long   before = tu_alloc_live();
        bool   hit;

        tu_alloc_fail_at(n);
        rj = api_client_metrics_json(c, &json);
        rp = api_client_metrics_prometheus(c, &prom);
        hit = tu_alloc_disarm();
        check_rc(rj, n);
        check_rc(rp, n);
        if (rj == CB_OK)
            ck_assert_ptr_nonnull(json);
        else
            ck_assert_ptr_null(json);
        if (rp == CB_OK)
            ck_assert_ptr_nonnull(prom);
        else
            ck_assert_ptr_null(prom);
        if (!hit) {
            ck_assert_int_eq(rj, CB_OK);
            ck_assert_int_eq(rp, CB_OK);
            ck_assert_ptr_nonnull(strstr(json, "\"origins\""));
            ck_assert_ptr_nonnull(strstr(prom, "cbhttp_"));
        }
        cb_free(json);
        cb_free(prom);
        ck_assert_int_eq(tu_alloc_live(), before);
        if (!hit)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
    api_client_free(c);
    tu_alloc_uninstall();
    fixture_stop(f);
}
END_TEST

/* (d2) A call to an origin that exists but is still compact (made by a
 * control, not a call): the call's first act is to inflate it (budget,
 * counters, breaker stripes). Whichever allocation fails, inflation's
 * included, the call returns CB_ERR_NOMEM with nothing leaked, and the
 * next call to the same origin, partly inflated or not, goes through. */
START_TEST(test_call_inflates_origin)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    unsigned long     n, failed = 0;

    ck_assert_ptr_nonnull(f);
    tu_alloc_install();
    memset(&cfg, 0, sizeof(cfg));
    cfg.base_url = fixture_url(f);
    cfg.retry.max_attempts = 1;
    for (n = 1; n < MAX_N; n++) {
        api_client  *c = api_client_new(&cfg);
        api_response resp;
        cb_metrics   mt;
        cb_err       rc;
        bool         hit;

        ck_assert_ptr_nonnull(c);
        /* The origin, compact: a reset creates it without a call. */
        ck_assert_int_eq(api_client_reset(c, "/"), CB_OK);
        ck_assert_int_eq(api_client_breaker_metrics(c, "/", &mt), CB_OK);
        ck_assert_uint_eq(mt.total_requests, 0);
        tu_alloc_fail_at(n);
        rc = api_get(c, "/ok", NULL, &resp);
        hit = tu_alloc_disarm();
        ck_assert_ptr_nonnull(resp.body);
        if (hit) {
            ck_assert_msg(rc == CB_ERR_NOMEM, "N=%lu: %s", n, cb_strerror(rc));
            failed++;
        } else {
            ck_assert_int_eq(rc, CB_OK);
        }
        api_response_free(&resp);
        /* Whatever the first call left, the origin serves the next one. */
        ck_assert_int_eq(api_get(c, "/ok", NULL, &resp), CB_OK);
        ck_assert_int_eq(resp.status, 200);
        api_response_free(&resp);
        api_client_free(c);
        ck_assert_int_eq(tu_alloc_live(), 0);
        if (!hit)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
    ck_assert_uint_gt(failed, 2); /* inflation alone allocates twice */
    tu_alloc_uninstall();
    fixture_stop(f);
}
END_TEST

/* (e) cb_breaker_new. */
START_TEST(test_breaker_new)
{
    cb_config cfg = { .failure_threshold = 3, .failure_rate_threshold = 50, .slow_call_ms = 100 };
    unsigned long n;

    tu_alloc_install();
    for (n = 1; n < MAX_N; n++) {
        cb_breaker *b;
        bool        hit;

        tu_alloc_fail_at(n);
        b = cb_breaker_new(&cfg);
        hit = tu_alloc_disarm();
        if (hit) {
            ck_assert_ptr_null(b);
        } else {
            cb_permit p;

            ck_assert_ptr_nonnull(b);
            ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
            cb_breaker_record(b, &p, false);
        }
        cb_breaker_free(b);
        ck_assert_int_eq(tu_alloc_live(), 0);
        if (!hit)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
    tu_alloc_uninstall();
}
END_TEST

/* Every section, a string array and two origins: many allocation points,
 * cJSON's own included. */
static const char config_json[] =
    "{\"base_url\": \"http://127.0.0.1:1/api\", \"timeout_ms\": 2000,"
    " \"log_level\": \"warn\", \"user_agent\": \"svc/1.0\", \"ca_file\": \"/tmp/x.pem\","
    " \"default_headers\": [\"Accept: application/json\", \"X-A: b\"],"
    " \"circuit_breaker\": {\"failure_threshold\": 3, \"reset_timeout_ms\": 1000,"
    "                       \"mode\": \"metrics_only\"},"
    " \"retry\": {\"max_attempts\": 4, \"budget_disabled\": true},"
    " \"cache\": {\"max_bytes\": 1048576, \"heuristic\": true},"
    " \"origins\": {\"http://other:80\": {\"failure_threshold\": 10},"
    "               \"/sub\": {\"half_open_max\": 5}}}";

/* (f) api_config_parse, then api_client_new_from_config on its result. */
START_TEST(test_config_parse)
{
    unsigned long n;

    tu_alloc_install();
    for (n = 1; n < MAX_N; n++) {
        api_config cfg;
        char       err[256];
        cb_err     rc;
        bool       hit;

        tu_alloc_fail_at(n);
        rc = api_config_parse(config_json, strlen(config_json), &cfg, err, sizeof(err));
        hit = tu_alloc_disarm();
        ck_assert_msg(rc == CB_OK || rc == CB_ERR_NOMEM, "N=%lu: %s (%s)", n, cb_strerror(rc), err);
        if (rc != CB_OK)
            ck_assert_ptr_null(cfg.client.base_url);
        if (!hit) {
            ck_assert_int_eq(rc, CB_OK);
            ck_assert_uint_eq(cfg.origin_count, 2);
        }
        api_config_free(&cfg);
        ck_assert_int_eq(tu_alloc_live(), 0);
        if (!hit)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
    tu_alloc_uninstall();
}
END_TEST

START_TEST(test_client_from_config)
{
    api_config    cfg;
    unsigned long n;

    tu_alloc_install();
    ck_assert_int_eq(api_config_parse(config_json, strlen(config_json), &cfg, NULL, 0), CB_OK);
    for (n = 1; n < MAX_N; n++) {
        api_client *c;
        long        before = tu_alloc_live();
        bool        hit;

        tu_alloc_fail_at(n);
        c = api_client_new_from_config(&cfg);
        hit = tu_alloc_disarm();
        if (hit)
            ck_assert_ptr_null(c);
        else
            ck_assert_ptr_nonnull(c);
        api_client_free(c);
        ck_assert_int_eq(tu_alloc_live(), before);
        if (!hit)
            break;
    }
    ck_assert_uint_lt(n, MAX_N);
    api_config_free(&cfg);
    tu_alloc_uninstall();
}
END_TEST

/* The internal wrappers: a size of zero still gets a block of its own (the
 * C library may return NULL for malloc(0), which callers would read as out
 * of memory), and NULL strings copy to NULL without allocating. */
START_TEST(test_wrappers_zero_sizes)
{
    char *a, *b, *c, *d;

    tu_alloc_install();
    a = cbh_malloc(0);
    b = cbh_calloc(0, 8);
    c = cbh_calloc(8, 0);
    d = cbh_realloc(NULL, 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_ne(a, b);
    ck_assert_int_eq(b[0], 0);
    ck_assert_int_eq(tu_alloc_live(), 4);
    cbh_free(a);
    cbh_free(b);
    cbh_free(c);
    cbh_free(d);
    cbh_free(NULL);
    ck_assert_ptr_null(cbh_strdup(NULL));
    ck_assert_ptr_null(cbh_strndup(NULL, 3));
    ck_assert_int_eq(tu_alloc_live(), 0);
    a = cbh_strndup("abcdef", 3);
    ck_assert_str_eq(a, "abc");
    cb_free(a);
    tu_alloc_fail_at(1);
    ck_assert_ptr_null(cbh_strndup("abcdef", 3));
    ck_assert(tu_alloc_disarm());
    tu_alloc_uninstall();
}
END_TEST

/* The allocator hook itself: an allocator missing any of its four
 * functions is refused, and the one in force stays. */
START_TEST(test_set_allocator_invalid)
{
    int i;

    for (i = 0; i < 4; i++) {
        cb_allocator partial = tu_alloc_counting;

        if (i == 0)
            partial.malloc_fn = NULL;
        else if (i == 1)
            partial.calloc_fn = NULL;
        else if (i == 2)
            partial.realloc_fn = NULL;
        else
            partial.free_fn = NULL;
        ck_assert_int_eq(cb_set_allocator(&partial), CB_ERR_INVALID);
    }
    /* A refusal keeps the allocator in force: here the counting one. */
    tu_alloc_install();
    ck_assert_int_eq(cb_set_allocator(&(cb_allocator){ 0 }), CB_ERR_INVALID);
    {
        api_client_config cfg = { .base_url = "http://127.0.0.1:1" };
        api_client       *c = api_client_new(&cfg);

        ck_assert_ptr_nonnull(c);
        ck_assert_int_gt(tu_alloc_live(), 0);
        api_client_free(c);
    }
    tu_alloc_uninstall();
    ck_assert_int_eq(cb_set_allocator(NULL), CB_OK);
}
END_TEST

static Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("alloc");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_set_allocator_invalid);
    tcase_add_test(tc, test_wrappers_zero_sizes);
    tcase_add_test(tc, test_client_new);
    tcase_add_test(tc, test_get_with_retries);
    tcase_add_test(tc, test_cache_store_and_hit);
    tcase_add_test(tc, test_redirected_post_many_headers);
    tcase_add_test(tc, test_revalidation);
    tcase_add_test(tc, test_metrics);
    tcase_add_test(tc, test_call_inflates_origin);
    tcase_add_test(tc, test_breaker_new);
    tcase_add_test(tc, test_config_parse);
    tcase_add_test(tc, test_client_from_config);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(alloc_suite()); }
