/* api_response_json: parsing response bodies. api_request_json needs a
 * client and a server, so the client suite covers it. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "cbhttp.h"

#include "helpers/testutil.h"

/* A response whose body is exactly len bytes of heap memory with no NUL
 * after it, so that ASan catches any read past body_len. */
static api_response resp_exact(const char *text, size_t len)
{
    api_response r;

    memset(&r, 0, sizeof r);
    r.body = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(r.body);
    memcpy(r.body, text, len);
    r.body_len = len;
    r.status = 200;
    return r;
}

static cb_err parse_text(const char *text, cJSON **out)
{
    api_response r = resp_exact(text, strlen(text));
    cb_err       rc = api_response_json(&r, out);

    free(r.body);
    return rc;
}

START_TEST(test_object)
{
    cJSON *j = NULL;

    ck_assert_int_eq(parse_text("{\"a\": 1, \"b\": [true, null], \"c\": \"x\"}", &j), CB_OK);
    ck_assert_ptr_nonnull(j);
    ck_assert(cJSON_IsObject(j));
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(j, "a")->valueint, 1);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "b")), 2);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "c")->valuestring, "x");
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_array_and_scalars)
{
    cJSON *j = NULL;

    ck_assert_int_eq(parse_text("[1,2,3]", &j), CB_OK);
    ck_assert(cJSON_IsArray(j));
    ck_assert_int_eq(cJSON_GetArraySize(j), 3);
    cJSON_Delete(j);

    ck_assert_int_eq(parse_text("42", &j), CB_OK);
    ck_assert(cJSON_IsNumber(j));
    ck_assert(j->valuedouble == 42.0);
    cJSON_Delete(j);

    ck_assert_int_eq(parse_text("\"hi\"", &j), CB_OK);
    ck_assert_str_eq(j->valuestring, "hi");
    cJSON_Delete(j);

    ck_assert_int_eq(parse_text("null", &j), CB_OK);
    ck_assert(cJSON_IsNull(j));
    cJSON_Delete(j);

    ck_assert_int_eq(parse_text("false", &j), CB_OK);
    ck_assert(cJSON_IsFalse(j));
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_surrounding_whitespace)
{
    cJSON *j = NULL;

    ck_assert_int_eq(parse_text("  \r\n\t{\"a\":1}\r\n \t", &j), CB_OK);
    ck_assert(cJSON_IsObject(j));
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_broken)
{
    static const char *const bad[] = {
        "{",   "{\"a\":}",    "[1,2",   "nul",    "{\"a\" 1}",
        "'x'", "{\"a\":1,}x", "\"open", "<html>", "{a:1}",
    };
    size_t i;

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *j = (cJSON *)&j; /* must be reset to NULL */

        ck_assert_msg(parse_text(bad[i], &j) == CB_ERR_PARSE, "accepted %s", bad[i]);
        ck_assert_ptr_null(j);
    }
}
END_TEST

START_TEST(test_trailing_garbage)
{
    cJSON *j = (cJSON *)&j;

    ck_assert_int_eq(parse_text("{\"a\":1} x", &j), CB_ERR_PARSE);
    ck_assert_ptr_null(j);
    ck_assert_int_eq(parse_text("{\"a\":1}{\"b\":2}", &j), CB_ERR_PARSE);
    ck_assert_int_eq(parse_text("1 2", &j), CB_ERR_PARSE);
    ck_assert_int_eq(parse_text("[] ,", &j), CB_ERR_PARSE);
}
END_TEST

START_TEST(test_embedded_nul)
{
    api_response r = resp_exact("{\"a\":1}\0junk", 12);
    cJSON       *j = (cJSON *)&j;

    ck_assert_int_eq(api_response_json(&r, &j), CB_ERR_PARSE);
    ck_assert_ptr_null(j);
    free(r.body);
}
END_TEST

START_TEST(test_empty)
{
    api_response r;
    cJSON       *j = (cJSON *)&j;

    memset(&r, 0, sizeof r);
    ck_assert_int_eq(api_response_json(&r, &j), CB_ERR_PARSE); /* body NULL */
    ck_assert_ptr_null(j);
    r.body = (char *)"";
    ck_assert_int_eq(api_response_json(&r, &j), CB_ERR_PARSE); /* body_len 0 */
    ck_assert_int_eq(parse_text("   \n", &j), CB_ERR_PARSE);
    ck_assert_ptr_null(j);
}
END_TEST

START_TEST(test_null_args)
{
    api_response r = resp_exact("{}", 2);
    cJSON       *j = (cJSON *)&j;

    ck_assert_int_eq(api_response_json(NULL, &j), CB_ERR_INVALID);
    ck_assert_ptr_null(j);
    ck_assert_int_eq(api_response_json(&r, NULL), CB_ERR_INVALID);
    ck_assert_int_eq(api_response_json(NULL, NULL), CB_ERR_INVALID);
    free(r.body);
}
END_TEST

/* A copy of text[0..len) that ends right where an inaccessible page starts:
 * a read past body_len faults even inside cJSON, which ASan does not
 * instrument. The mapping is left for the forked test to drop at exit. */
static api_response resp_guarded(const char *text, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char  *map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    api_response r;

    ck_assert(map != MAP_FAILED);
    ck_assert_int_eq(mprotect(map + page, page, PROT_NONE), 0);
    ck_assert_uint_le(len, page);
    memset(&r, 0, sizeof r);
    r.body = map + page - len;
    memcpy(r.body, text, len);
    r.body_len = len;
    return r;
}

START_TEST(test_guard_page)
{
    static const char *const docs[] = {
        "{\"a\":[1,2,{\"b\":\"c\"}]}",
        "[1,2]",
        "123",
        "-1.5e3",
        "true",
        "null",
        "\"str\"",
        "{\"a\":1",
        "[1,2",
        "\"open",
        "{\"a\" 1}",
        "-",
        "tru",
        "{\"a\":\"\\u00",
        "  ",
    };
    size_t i;

    for (i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        api_response r = resp_guarded(docs[i], strlen(docs[i]));
        cJSON       *j = NULL;
        cb_err       rc = api_response_json(&r, &j);

        ck_assert(rc == CB_OK || rc == CB_ERR_PARSE);
        ck_assert_msg(i < 7 ? rc == CB_OK : rc == CB_ERR_PARSE, "%s: %d", docs[i], (int)rc);
        cJSON_Delete(j);
    }
}
END_TEST

/* The body holds more than body_len bytes: only the first body_len count,
 * and nothing past them is read (ASan checks the exact-size buffers). */
START_TEST(test_length_bounded)
{
    api_response r = resp_exact("[1,2]garbage", 5);
    cJSON       *j = NULL;

    ck_assert_int_eq(api_response_json(&r, &j), CB_OK);
    ck_assert_int_eq(cJSON_GetArraySize(j), 2);
    cJSON_Delete(j);
    free(r.body);

    /* Cut in the middle of a value: never reads on to find its end. */
    r = resp_exact("{\"abc\":\"defgh\"}", 10);
    j = (cJSON *)&j;
    ck_assert_int_eq(api_response_json(&r, &j), CB_ERR_PARSE);
    ck_assert_ptr_null(j);
    free(r.body);

    r = resp_exact("12345", 3);
    ck_assert_int_eq(api_response_json(&r, &j), CB_OK);
    ck_assert(j->valuedouble == 123.0);
    cJSON_Delete(j);
    free(r.body);

    r = resp_exact("true", 4);
    ck_assert_int_eq(api_response_json(&r, &j), CB_OK);
    ck_assert(cJSON_IsTrue(j));
    cJSON_Delete(j);
    free(r.body);
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("response_json");

    tcase_add_test(tc, test_object);
    tcase_add_test(tc, test_array_and_scalars);
    tcase_add_test(tc, test_surrounding_whitespace);
    tcase_add_test(tc, test_broken);
    tcase_add_test(tc, test_trailing_garbage);
    tcase_add_test(tc, test_embedded_nul);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_null_args);
    tcase_add_test(tc, test_length_bounded);
    tcase_add_test(tc, test_guard_page);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(json_suite()); }
