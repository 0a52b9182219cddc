/*
 * api_request_json against the fixture's /echo: the document it sends and
 * the Content-Type (application/json unless the caller names another), the
 * caller's options passed on untouched, a NULL json, and cJSON failing to
 * print the document (the failing allocator). Apart from check_json.c,
 * which the package build runs and which therefore starts no server.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "cbhttp.h"
#include "fixture.h"

#include "helpers/clients.h"
#include "helpers/failalloc.h"
#include "helpers/testutil.h"

/* The value of header name in /echo's "headers" object (as sent), or NULL. */
static const char *echoed_header(cJSON *echo, const char *name)
{
    cJSON *h;

    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(
                              echo, "headers")) if (h->string && strcasecmp(h->string, name) == 0 &&
                                                    cJSON_IsString(h)) return h->valuestring;
    return NULL;
}

START_TEST(test_request_json_sends_document)
{
    fixture *f = fixture_start();
    ck_assert_ptr_nonnull(f);
    api_client *c = tu_client_on(fixture_url(f), 1, NULL);
    ck_assert_ptr_nonnull(c);
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "name", "a \"b\"");
    cJSON_AddNumberToObject(doc, "n", 7);
    api_response r;
    cJSON       *echo = NULL;

    /* No options: the document, unformatted, as application/json. */
    ck_assert_int_eq(api_request_json(c, "POST", "/echo", doc, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(api_response_json(&r, &echo), CB_OK);
    ck_assert_str_eq(cJSON_GetObjectItem(echo, "method")->valuestring, "POST");
    ck_assert_str_eq(cJSON_GetObjectItem(echo, "body")->valuestring,
                     "{\"name\":\"a \\\"b\\\"\",\"n\":7}");
    ck_assert_str_eq(echoed_header(echo, "Content-Type"), "application/json");
    cJSON_Delete(echo);
    api_response_free(&r);

    /* Options without a content_type: still application/json, and the
     * options' own headers go out too. */
    const char *hdrs[] = { "X-Test: 1", NULL };
    api_options o;
    memset(&o, 0, sizeof o);
    o.headers = hdrs;
    ck_assert_int_eq(api_request_json(c, "PUT", "/echo", doc, &o, &r), CB_OK);
    ck_assert_int_eq(api_response_json(&r, &echo), CB_OK);
    ck_assert_str_eq(cJSON_GetObjectItem(echo, "method")->valuestring, "PUT");
    ck_assert_str_eq(echoed_header(echo, "Content-Type"), "application/json");
    ck_assert_str_eq(echoed_header(echo, "X-Test"), "1");
    cJSON_Delete(echo);
    api_response_free(&r);

    /* A caller's content_type replaces it, and opts is not modified. */
    o.content_type = "application/merge-patch+json";
    ck_assert_int_eq(api_request_json(c, "PATCH", "/echo", doc, &o, &r), CB_OK);
    ck_assert_int_eq(api_response_json(&r, &echo), CB_OK);
    ck_assert_str_eq(echoed_header(echo, "Content-Type"), "application/merge-patch+json");
    ck_assert_int_eq(cJSON_GetObjectItem(echo, "body_len")->valueint, 24);
    ck_assert_ptr_eq(o.headers, hdrs);
    cJSON_Delete(echo);
    api_response_free(&r);

    /* Failures of the call itself come back as from api_request. */
    ck_assert_int_eq(api_request_json(c, "BAD METHOD", "/echo", doc, NULL, &r), CB_ERR_INVALID);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(r.body);
    api_response_free(&r);

    cJSON_Delete(doc);
    api_client_free(c);
    ck_assert_uint_eq(fixture_requests_path(f, "/echo"), 3);
    fixture_stop(f);
}
END_TEST

START_TEST(test_request_json_null_json)
{
    fixture *f = fixture_start();
    ck_assert_ptr_nonnull(f);
    api_client *c = tu_client_on(fixture_url(f), 1, NULL);
    ck_assert_ptr_nonnull(c);
    api_response r;

    memset(&r, 0x5a, sizeof r);
    ck_assert_int_eq(api_request_json(c, "POST", "/echo", NULL, NULL, &r), CB_ERR_INVALID);
    /* *resp is initialised as for any failed call. */
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(r.body);
    ck_assert_str_eq(r.body, "");
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_ptr_null(r.headers);
    ck_assert_msg(strstr(r.error, "json is NULL") != NULL, "%s", r.error);
    api_response_free(&r);
    /* Without a response to fill, the code alone. */
    ck_assert_int_eq(api_request_json(c, "POST", "/echo", NULL, NULL, NULL), CB_ERR_INVALID);
    api_client_free(c);
    /* Nothing was sent. */
    ck_assert_uint_eq(fixture_requests(f), 0);
    fixture_stop(f);
}
END_TEST

START_TEST(test_request_json_print_oom)
{
    fixture *f = fixture_start();
    ck_assert_ptr_nonnull(f);
    tu_alloc_install();
    api_client *c = tu_client_on(fixture_url(f), 1, NULL);
    ck_assert_ptr_nonnull(c);
    cJSON *doc = cJSON_CreateObject();
    ck_assert_ptr_nonnull(doc);
    cJSON_AddStringToObject(doc, "k", "v");
    api_response r;

    /* The first allocation of the call is cJSON's print buffer. */
    tu_alloc_fail_at(1);
    ck_assert_int_eq(api_request_json(c, "POST", "/echo", doc, NULL, &r), CB_ERR_NOMEM);
    ck_assert(tu_alloc_disarm());
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(r.body);
    ck_assert_msg(strstr(r.error, "out of memory") != NULL, "%s", r.error);
    api_response_free(&r);
    tu_alloc_fail_at(1);
    ck_assert_int_eq(api_request_json(c, "POST", "/echo", doc, NULL, NULL), CB_ERR_NOMEM);
    ck_assert(tu_alloc_disarm());
    ck_assert_uint_eq(fixture_requests(f), 0);

    /* Memory back: the same call goes through, and everything is freed. */
    ck_assert_int_eq(api_request_json(c, "POST", "/echo", doc, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);
    cJSON_Delete(doc);
    api_client_free(c);
    tu_alloc_uninstall();
    fixture_stop(f);
}
END_TEST

static Suite *cov_json_suite(void)
{
    Suite *s = suite_create("cov_json");
    TCase *tc = tcase_create("request_json");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_request_json_sends_document);
    tcase_add_test(tc, test_request_json_null_json);
    tcase_add_test(tc, test_request_json_print_oom);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(cov_json_suite()); }
