/*
 * Public entry points that no module suite is about: cbhttp_version against
 * the header's version macros, and the default User-Agent built from it as
 * a server sees it; api_async_attach called directly (the adapters call it
 * for every other suite): what it refuses, and the detach of the loop it
 * replaces.
 */
#include <stdio.h>
#include <string.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "cbhttp.h"
#include "fixture.h"

#include "helpers/clients.h"
#include "helpers/testutil.h"

START_TEST(test_version_matches_header)
{
    char want[32];

    snprintf(want, sizeof(want), "%d.%d.%d", CBHTTP_VERSION_MAJOR, CBHTTP_VERSION_MINOR,
             CBHTTP_VERSION_PATCH);
    ck_assert_ptr_nonnull(cbhttp_version());
    ck_assert_str_eq(cbhttp_version(), want);
    /* The same static string on every call. */
    ck_assert_ptr_eq(cbhttp_version(), cbhttp_version());
    ck_assert_int_eq(CBHTTP_VERSION_NUM, (CBHTTP_VERSION_MAJOR << 16) |
                                             (CBHTTP_VERSION_MINOR << 8) | CBHTTP_VERSION_PATCH);
}
END_TEST

/* Without a user_agent, requests say "cbhttp/VERSION"; a configured one
 * replaces it. */
START_TEST(test_default_user_agent)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    cJSON            *echo = NULL, *ua;
    char              want[48];

    ck_assert_ptr_nonnull(f);
    snprintf(want, sizeof(want), "cbhttp/%s", cbhttp_version());
    c = tu_client_on(fixture_url(f), 1, NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/echo", NULL, &r), CB_OK);
    ck_assert_int_eq(api_response_json(&r, &echo), CB_OK);
    ua = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(echo, "headers"), "User-Agent");
    ck_assert_msg(cJSON_IsString(ua), "%s", r.body);
    ck_assert_str_eq(ua->valuestring, want);
    cJSON_Delete(echo);
    api_response_free(&r);
    api_client_free(c);

    memset(&cfg, 0, sizeof(cfg));
    cfg.user_agent = "tester/2";
    c = tu_client_on(fixture_url(f), 1, &cfg);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/echo", NULL, &r), CB_OK);
    ck_assert_int_eq(api_response_json(&r, &echo), CB_OK);
    ua = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(echo, "headers"), "User-Agent");
    ck_assert_msg(cJSON_IsString(ua), "%s", r.body);
    ck_assert_str_eq(ua->valuestring, "tester/2");
    cJSON_Delete(echo);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* A loop table that only counts. */
typedef struct fake_loop {
    int watches, timers, detaches;
} fake_loop;

static int fake_watch(void *data, int fd, unsigned events, void **sock)
{
    (void)fd;
    (void)events;
    (void)sock;
    ((fake_loop *)data)->watches++;
    return 0;
}

static void fake_set_timer(void *data, long ms)
{
    (void)ms;
    ((fake_loop *)data)->timers++;
}

static void fake_detach(void *data) { ((fake_loop *)data)->detaches++; }

START_TEST(test_async_attach)
{
    api_client *c = tu_client_on("http://127.0.0.1:9", 1, NULL);
    api_async  *a;
    fake_loop   one = { 0 }, two = { 0 };
    api_loop    l1 = { &one, fake_watch, fake_set_timer, fake_detach };
    api_loop    l2 = { &two, fake_watch, fake_set_timer, fake_detach };
    api_loop    bad;

    ck_assert_ptr_nonnull(c);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(api_async_attach(NULL, &l1), CB_ERR_INVALID);
    ck_assert_int_eq(api_async_attach(a, NULL), CB_ERR_INVALID);
    bad = l1;
    bad.watch = NULL;
    ck_assert_int_eq(api_async_attach(a, &bad), CB_ERR_INVALID);
    bad = l1;
    bad.set_timer = NULL;
    ck_assert_int_eq(api_async_attach(a, &bad), CB_ERR_INVALID);
    ck_assert_int_eq(one.detaches, 0);

    ck_assert_int_eq(api_async_attach(a, &l1), CB_OK);
    /* The table was copied: changing ours afterwards changes nothing. */
    l1.detach = NULL;
    /* Attaching another loop detaches the first, once. */
    ck_assert_int_eq(api_async_attach(a, &l2), CB_OK);
    ck_assert_int_eq(one.detaches, 1);
    ck_assert_int_eq(two.detaches, 0);
    /* Freeing the engine detaches the loop in force. */
    api_async_free(a);
    ck_assert_int_eq(one.detaches, 1);
    ck_assert_int_eq(two.detaches, 1);
    api_client_free(c);
}
END_TEST

static Suite *cov_api_suite(void)
{
    Suite *s = suite_create("cov_api");
    TCase *tc = tcase_create("version");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_version_matches_header);
    tcase_add_test(tc, test_default_user_agent);
    tcase_add_test(tc, test_async_attach);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(cov_api_suite()); }
