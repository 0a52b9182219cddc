/*
 * response.c, the one owner of api_response: payloads moved in and out, the
 * empty-body sentinel that is never handed on or freed, the read-only view,
 * and the failed-call shape. No server: the functions are called directly.
 */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "alloc.h"
#include "cbhttp.h"
#include "headers.h"
#include "response.h"

#include "helpers/failalloc.h"
#include "helpers/testutil.h"

/* A payload with a body and two headers, from the library's allocator. */
static cbh_payload payload(long status, const char *body)
{
    static const char raw[] = "A: 1\r\nB: two\r\n";
    cbh_payload       p;

    memset(&p, 0, sizeof(p));
    p.status = status;
    if (body) {
        p.body = cbh_strdup(body);
        ck_assert_ptr_nonnull(p.body);
        p.body_len = strlen(body);
    }
    ck_assert_int_eq(
        cbh_headers_parse(raw, strlen(raw), &p.headers, &p.header_count, &p.headers_size), CB_OK);
    return p;
}

START_TEST(test_set_take)
{
    api_response r;
    cbh_payload  p, out;

    tu_alloc_install();
    memset(&r, 0, sizeof(r));
    r.attempts = 3;
    p = payload(200, "hello");
    cbh_response_set_payload(&r, &p);
    /* p was emptied: the response owns everything now. */
    ck_assert_ptr_null(p.body);
    ck_assert_ptr_null(p.headers);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "hello");
    ck_assert_uint_eq(r.header_count, 2);
    ck_assert_str_eq(api_response_header(&r, "b"), "two");
    ck_assert_uint_eq(r.attempts, 3);

    /* Setting another payload frees the first one. */
    p = payload(201, "again");
    cbh_response_set_payload(&r, &p);
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(r.body, "again");

    /* Taking moves it out and leaves the response empty, counters kept. */
    cbh_response_take_payload(&r, &out);
    ck_assert_int_eq(out.status, 201);
    ck_assert_str_eq(out.body, "again");
    ck_assert_uint_eq(out.header_count, 2);
    ck_assert_ptr_null(r.body);
    ck_assert_ptr_null(r.headers);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_eq(r.attempts, 3);
    cbh_payload_free(&out);
    ck_assert_ptr_null(out.body);
    cbh_payload_free(NULL);
    api_response_free(&r);
    ck_assert_int_eq(tu_alloc_live(), 0);
    tu_alloc_uninstall();
}
END_TEST

/* A failed call's response has the empty body; it never leaves the
 * response as a payload, and freeing the response does not free it. */
START_TEST(test_empty_body_sentinel)
{
    api_response r;
    cbh_payload  out, p;
    char         longmsg[400];

    memset(&r, 0x5a, sizeof(r));
    cbh_response_fail(&r, "went wrong");
    ck_assert_ptr_nonnull(r.body);
    ck_assert_str_eq(r.body, "");
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_null(r.headers);
    ck_assert_str_eq(r.error, "went wrong");
    cbh_response_take_payload(&r, &out);
    ck_assert_ptr_null(out.body);
    ck_assert_uint_eq(out.body_len, 0);
    api_response_free(&r);
    api_response_free(&r);
    api_response_free(NULL);

    /* A message longer than the buffer is cut, terminated. */
    memset(longmsg, 'm', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = '\0';
    cbh_response_fail(&r, longmsg);
    ck_assert_uint_eq(strlen(r.error), sizeof(r.error) - 1);
    /* Replacing the sentinel with a payload does not free the sentinel. */
    tu_alloc_install();
    p = payload(204, NULL);
    cbh_response_set_payload(&r, &p);
    ck_assert_ptr_null(r.body);
    /* Completing a response without a body gives it the empty one. */
    cbh_response_complete(&r);
    ck_assert_ptr_nonnull(r.body);
    ck_assert_str_eq(r.body, "");
    api_response_free(&r);
    ck_assert_int_eq(tu_alloc_live(), 0);
    tu_alloc_uninstall();
    ck_assert_ptr_null(api_response_header(&r, "A"));
}
END_TEST

static Suite *cov_response_suite(void)
{
    Suite *s = suite_create("cov_response");
    TCase *tc = tcase_create("response");

    tcase_add_test(tc, test_set_take);
    tcase_add_test(tc, test_empty_body_sentinel);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(cov_response_suite()); }
