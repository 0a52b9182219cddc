/*
 * Following redirects, through the public API only (max_redirects,
 * allow_cross_origin_redirects) against the fixture: the fixture's
 * /redirect?code=3xx&to=... sends the client on to /echo, and /echo tells
 * what arrived (method, body, headers; X-Echo-Method also for a HEAD).
 *
 * Method rewriting (RFC 9110 15.4): 303 turns anything but HEAD into a GET
 * without a body; 301 and 302 do so for POST only; 307 and 308 keep the
 * method and the body; HEAD stays HEAD. Redirects stay on the origin unless
 * cross-origin ones are allowed, never leave http/https, and are bounded.
 *
 * The assertions are on what the servers saw and what the caller got, not
 * on which layer follows the hop, so they hold wherever that is done.
 */
/* cbhttp: threaded */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbhttp.h>

#include "fixture.h"

#include "helpers/testutil.h"

static fixture *f; /* the origin of the client */
static fixture *g; /* another origin */

static void setup(void)
{
    f = fixture_start();
    g = fixture_start();
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(g);
}

static void teardown(void)
{
    fixture_stop(f);
    fixture_stop(g);
    f = g = NULL;
}

/* A client of f following up to max redirects; no cache and no retries, so
 * that each call is exactly the exchanges it causes. */
static api_client *client(unsigned max, bool cross_origin)
{
    api_client_config cfg;
    api_client       *c;

    memset(&cfg, 0, sizeof cfg);
    cfg.base_url = fixture_url(f);
    cfg.max_redirects = max;
    cfg.allow_cross_origin_redirects = cross_origin;
    cfg.cache.disabled = true;
    cfg.retry.max_attempts = 1;
    cfg.timeout_ms = 10000;
    c = api_client_new(&cfg);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* Percent-encodes s for a query value. */
static void qenc(char *out, size_t size, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t            n = 0;

    for (; *s && n + 4 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
}

/* The path of a redirect with code to `to`, in a static buffer. */
static const char *redir(int code, const char *to)
{
    static char out[4096];
    char        enc[3800];

    qenc(enc, sizeof enc, to);
    snprintf(out, sizeof out, "/redirect?code=%d&to=%s", code, enc);
    return out;
}

/* What /echo saw, from its JSON body. */
typedef struct seen {
    char   method[16];
    char   body[256];
    size_t body_len;
    char   content_type[64]; /* "" when absent */
} seen;

static seen echo_seen(const api_response *r)
{
    seen         s;
    cJSON       *doc = cJSON_Parse(r->body);
    const cJSON *m, *b, *h, *ct;

    memset(&s, 0, sizeof s);
    ck_assert_msg(doc != NULL, "not JSON: %s", r->body);
    m = cJSON_GetObjectItemCaseSensitive(doc, "method");
    b = cJSON_GetObjectItemCaseSensitive(doc, "body");
    h = cJSON_GetObjectItemCaseSensitive(doc, "headers");
    ck_assert(cJSON_IsString(m) && cJSON_IsString(b) && cJSON_IsObject(h));
    snprintf(s.method, sizeof s.method, "%s", m->valuestring);
    snprintf(s.body, sizeof s.body, "%s", b->valuestring);
    s.body_len = (size_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(doc, "body_len"));
    ct = cJSON_GetObjectItem(h, "Content-Type"); /* header names ignore case */
    if (cJSON_IsString(ct))
        snprintf(s.content_type, sizeof s.content_type, "%s", ct->valuestring);
    cJSON_Delete(doc);
    return s;
}

/* method (with body, if any) to path; asserts a final 200 from /echo of f. */
static seen call_echo(api_client *c, const char *method, const char *path, const char *body)
{
    api_response r;
    api_options  o;
    cb_err       err;
    seen         s;

    memset(&o, 0, sizeof o);
    o.content_type = body ? "text/plain" : NULL;
    err = body ? api_request(c, method, path, body, strlen(body), &o, &r)
               : api_request(c, method, path, NULL, 0, NULL, &r);
    ck_assert_msg(err == CB_OK, "%s %s: %s (%s)", method, path, cb_strerror(err), r.error);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(api_response_header(&r, "X-Echo-Method"));
    if (strcmp(method, "HEAD") == 0) {
        /* No body to read: the headers tell. */
        memset(&s, 0, sizeof s);
        snprintf(s.method, sizeof s.method, "%s", api_response_header(&r, "X-Echo-Method"));
        s.body_len = (size_t)atol(api_response_header(&r, "X-Echo-Body-Len"));
        ck_assert_uint_eq(r.body_len, 0);
    } else {
        s = echo_seen(&r);
        ck_assert_str_eq(s.method, api_response_header(&r, "X-Echo-Method"));
    }
    api_response_free(&r);
    return s;
}

START_TEST(test_303_becomes_get)
{
    api_client *c = client(3, false);
    const char *methods[] = { "POST", "PUT", "PATCH", "DELETE", "OPTIONS" };

    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        seen s = call_echo(c, methods[i], redir(303, "/echo"), "payload");
        ck_assert_msg(strcmp(s.method, "GET") == 0, "%s via 303 arrived as %s", methods[i],
                      s.method);
        ck_assert_uint_eq(s.body_len, 0);
        ck_assert_str_eq(s.body, "");
    }
    /* A GET stays a GET. */
    seen s = call_echo(c, "GET", redir(303, "/echo"), NULL);
    ck_assert_str_eq(s.method, "GET");
    ck_assert_uint_eq(fixture_requests_path(f, "/redirect"), 6);
    ck_assert_uint_eq(fixture_requests_path(f, "/echo"), 6);
    api_client_free(c);
}
END_TEST

START_TEST(test_301_302_post_becomes_get)
{
    api_client *c = client(3, false);
    const int   codes[] = { 301, 302 };

    for (size_t i = 0; i < 2; i++) {
        seen s = call_echo(c, "POST", redir(codes[i], "/echo"), "form=1");
        ck_assert_msg(strcmp(s.method, "GET") == 0, "POST via %d arrived as %s", codes[i],
                      s.method);
        ck_assert_uint_eq(s.body_len, 0);

        /* Only POST is rewritten: other methods keep method and body. */
        s = call_echo(c, "PUT", redir(codes[i], "/echo"), "put-body");
        ck_assert_str_eq(s.method, "PUT");
        ck_assert_str_eq(s.body, "put-body");
        s = call_echo(c, "DELETE", redir(codes[i], "/echo"), NULL);
        ck_assert_str_eq(s.method, "DELETE");
        ck_assert_uint_eq(s.body_len, 0);
        s = call_echo(c, "GET", redir(codes[i], "/echo"), NULL);
        ck_assert_str_eq(s.method, "GET");
    }
    api_client_free(c);
}
END_TEST

START_TEST(test_307_308_keep_method_and_body)
{
    api_client *c = client(3, false);
    const int   codes[] = { 307, 308 };
    const char *methods[] = { "POST", "PUT", "PATCH", "DELETE" };

    for (size_t i = 0; i < 2; i++) {
        for (size_t j = 0; j < sizeof methods / sizeof methods[0]; j++) {
            seen s = call_echo(c, methods[j], redir(codes[i], "/echo"), "{\"keep\":true}");
            ck_assert_msg(strcmp(s.method, methods[j]) == 0, "%s via %d arrived as %s", methods[j],
                          codes[i], s.method);
            ck_assert_str_eq(s.body, "{\"keep\":true}");
            ck_assert_uint_eq(s.body_len, 13);
            ck_assert_str_eq(s.content_type, "text/plain");
        }
        seen s = call_echo(c, "GET", redir(codes[i], "/echo"), NULL);
        ck_assert_str_eq(s.method, "GET");
    }
    api_client_free(c);
}
END_TEST

START_TEST(test_head_stays_head)
{
    api_client *c = client(3, false);
    const int   codes[] = { 301, 302, 303, 307, 308 };

    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        seen s = call_echo(c, "HEAD", redir(codes[i], "/echo"), NULL);
        ck_assert_msg(strcmp(s.method, "HEAD") == 0, "HEAD via %d arrived as %s", codes[i],
                      s.method);
        ck_assert_uint_eq(s.body_len, 0);
    }
    ck_assert_uint_eq(fixture_requests_path(f, "/echo"), 5);
    api_client_free(c);
}
END_TEST

START_TEST(test_rewrites_compose_over_hops)
{
    api_client *c = client(3, false);
    char        inner[1024];

    /* 307 then 303: the body survives the first hop, not the second. */
    snprintf(inner, sizeof inner, "%s", redir(303, "/echo"));
    seen s = call_echo(c, "POST", redir(307, inner), "twice");
    ck_assert_str_eq(s.method, "GET");
    ck_assert_uint_eq(s.body_len, 0);

    /* 308 then 307: POST and its body all the way. */
    snprintf(inner, sizeof inner, "%s", redir(307, "/echo"));
    s = call_echo(c, "POST", redir(308, inner), "twice");
    ck_assert_str_eq(s.method, "POST");
    ck_assert_str_eq(s.body, "twice");

    /* 302 then 307: GET from the first hop on, no body comes back. */
    snprintf(inner, sizeof inner, "%s", redir(307, "/echo"));
    s = call_echo(c, "POST", redir(302, inner), "gone");
    ck_assert_str_eq(s.method, "GET");
    ck_assert_uint_eq(s.body_len, 0);
    ck_assert_uint_eq(fixture_requests_path(f, "/redirect"), 6);
    api_client_free(c);
}
END_TEST

/* A Location may carry a fragment (RFC 9110 10.2.2): it is followed,
 * and the fragment never goes into the request. */
START_TEST(test_location_with_fragment)
{
    api_client  *c = client(1, false);
    api_response r;

    ck_assert_int_eq(api_get(c, redir(302, "/echo?x=1#frag"), NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(strstr(r.body, "frag"));
    ck_assert_ptr_nonnull(strstr(r.body, "\"x\":\"1\""));
    api_response_free(&r);
    api_client_free(c);
}
END_TEST

START_TEST(test_off_by_default)
{
    api_client  *c = client(0, true);
    api_response r;

    ck_assert_int_eq(api_request(c, "POST", redir(307, "/echo"), "x", 1, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 307);
    ck_assert_str_eq(api_response_header(&r, "Location"), "/echo");
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(f, "/echo"), 0);
    api_client_free(c);
}
END_TEST

START_TEST(test_same_origin_only_by_default)
{
    api_client  *c = client(5, false);
    api_response r;
    char         to[256];

    /* Another port is another origin. */
    snprintf(to, sizeof to, "%s/echo", fixture_url(g));
    ck_assert_int_eq(api_get(c, redir(302, to), NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 302);
    ck_assert_str_eq(api_response_header(&r, "Location"), to);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(g), 0);

    /* So is another name for the same server. */
    snprintf(to, sizeof to, "http://localhost:%u/echo", (unsigned)fixture_port(f));
    ck_assert_int_eq(api_request(c, "POST", redir(307, to), "b", 1, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 307);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(f, "/echo"), 0);

    /* The same origin spelt absolutely is followed. */
    snprintf(to, sizeof to, "%s/echo", fixture_url(f));
    seen s = call_echo(c, "POST", redir(307, to), "same");
    ck_assert_str_eq(s.method, "POST");
    ck_assert_str_eq(s.body, "same");
    ck_assert_uint_eq(fixture_requests(g), 0);
    api_client_free(c);
}
END_TEST

START_TEST(test_cross_origin_when_allowed)
{
    api_client  *c = client(5, true);
    api_response r;
    char         to[256];

    snprintf(to, sizeof to, "%s/echo", fixture_url(g));
    ck_assert_int_eq(api_request(c, "POST", redir(303, to), "away", 4, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    seen s = echo_seen(&r);
    ck_assert_str_eq(s.method, "GET");
    ck_assert_uint_eq(s.body_len, 0);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(g, "/echo"), 1);

    ck_assert_int_eq(api_request(c, "PUT", redir(308, to), "away", 4, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    s = echo_seen(&r);
    ck_assert_str_eq(s.method, "PUT");
    ck_assert_str_eq(s.body, "away");
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(g, "/echo"), 2);

    /* Never to another scheme, allowed or not. */
    const char *bad[] = { "ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(api_get(c, redir(302, bad[i]), NULL, &r), CB_OK);
        ck_assert_int_eq(r.status, 302);
        api_response_free(&r);
    }
    api_client_free(c);
}
END_TEST

/* A chain of n redirects (each 307) ending at /echo. */
static void chain(char *out, size_t size, int n)
{
    char tmp[4096];

    snprintf(out, size, "/echo");
    for (int i = 0; i < n; i++) {
        snprintf(tmp, sizeof tmp, "%s", redir(307, out));
        snprintf(out, size, "%s", tmp);
    }
}

START_TEST(test_max_redirects_bound)
{
    char         path[4096];
    api_response r;

    chain(path, sizeof path, 3);

    /* Two hops allowed: the third redirect is returned as it is. */
    api_client *c = client(2, false);
    ck_assert_int_eq(api_request(c, "POST", path, "b", 1, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 307);
    ck_assert_str_eq(api_response_header(&r, "Location"), "/echo");
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(f, "/redirect"), 3);
    ck_assert_uint_eq(fixture_requests_path(f, "/echo"), 0);
    api_client_free(c);

    /* Three: it arrives. */
    c = client(3, false);
    seen s = call_echo(c, "POST", path, "b");
    ck_assert_str_eq(s.method, "POST");
    ck_assert_str_eq(s.body, "b");
    ck_assert_uint_eq(fixture_requests_path(f, "/redirect"), 6);
    ck_assert_uint_eq(fixture_requests_path(f, "/echo"), 1);
    api_client_free(c);

    /* One: a single hop. */
    c = client(1, false);
    ck_assert_int_eq(api_get(c, path, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 307);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(f, "/redirect"), 8);
    api_client_free(c);
}
END_TEST

START_TEST(test_redirect_to_error)
{
    api_client  *c = client(3, false);
    api_response r;

    /* The final response decides the result. */
    ck_assert_int_eq(api_get(c, redir(302, "/status/404"), NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 404);
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, redir(301, "/status/201"), NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 201);
    api_response_free(&r);
    api_client_free(c);
}
END_TEST

/* ---- each origin on its own (redirects followed above the transport) ---- */

/* The value /echo saw for header name, "" when absent. */
static const char *echo_header(const api_response *r, const char *name)
{
    static char  out[256];
    cJSON       *doc = cJSON_Parse(r->body);
    const cJSON *v;

    out[0] = '\0';
    ck_assert_ptr_nonnull(doc);
    v = cJSON_GetObjectItem(cJSON_GetObjectItemCaseSensitive(doc, "headers"), name);
    if (cJSON_IsString(v))
        snprintf(out, sizeof out, "%s", v->valuestring);
    cJSON_Delete(doc);
    return out;
}

START_TEST(test_credentials_stay_on_their_origin)
{
    api_client  *c = client(3, true);
    const char  *hdrs[] = { "Authorization: Bearer secret", "Cookie: session=1",
                            "Proxy-Authorization: Basic eDp5", "X-Trace: t1", NULL };
    api_options  o;
    api_response r;
    char         to[256];

    memset(&o, 0, sizeof o);
    o.headers = hdrs;
    /* On the same origin they follow the hop. */
    ck_assert_int_eq(api_request(c, "POST", redir(307, "/echo"), "b", 1, &o, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(echo_header(&r, "Authorization"), "Bearer secret");
    ck_assert_str_eq(echo_header(&r, "Cookie"), "session=1");
    ck_assert_str_eq(echo_header(&r, "X-Trace"), "t1");
    api_response_free(&r);

    /* To another origin they are dropped; other headers are not. */
    snprintf(to, sizeof to, "%s/echo", fixture_url(g));
    ck_assert_int_eq(api_request(c, "POST", redir(307, to), "b", 1, &o, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(echo_header(&r, "Authorization"), "");
    ck_assert_str_eq(echo_header(&r, "Cookie"), "");
    ck_assert_str_eq(echo_header(&r, "Proxy-Authorization"), "");
    ck_assert_str_eq(echo_header(&r, "X-Trace"), "t1");
    api_response_free(&r);
    api_client_free(c);
}
END_TEST

START_TEST(test_cross_origin_hop_counts_on_its_origin)
{
    api_client  *c = client(3, true);
    api_response r;
    cb_metrics   mf, mg;
    char         to[256];

    /* The 503 is the other origin's failure, not the first one's. */
    snprintf(to, sizeof to, "%s/status/503", fixture_url(g));
    ck_assert_int_eq(api_get(c, redir(302, to), NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 503);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_metrics(c, fixture_url(g), &mg), CB_OK);
    ck_assert_uint_eq(mg.failures, 1);
    ck_assert_int_eq(api_client_breaker_metrics(c, fixture_url(f), &mf), CB_OK);
    ck_assert_uint_eq(mf.failures, 0);

    /* An open breaker on the target stops the hop without sending it. */
    ck_assert_int_eq(api_client_trip(c, fixture_url(g)), CB_OK);
    ck_assert_int_eq(api_get(c, redir(302, to), NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(g), 1);
    api_client_free(c);
}
END_TEST

/* A followed redirect is cached only under the URL its final response
 * answers: the redirecting URL (a 302 without freshness, not storable)
 * goes to the network again, and another origin's content never sits under
 * the first origin's URL. */
START_TEST(test_cached_under_the_answering_url)
{
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    char              target[256], from[4096];
    unsigned          i;

    memset(&cfg, 0, sizeof cfg); /* no base URL: absolute URLs to both origins */
    cfg.max_redirects = 2;
    cfg.allow_cross_origin_redirects = true;
    cfg.retry.max_attempts = 1;
    c = api_client_new(&cfg);
    ck_assert_ptr_nonnull(c);
    snprintf(target, sizeof target, "%s/cache/rt?cc=max-age%%3D600", fixture_url(g));
    snprintf(from, sizeof from, "%s%s", fixture_url(f), redir(302, target));
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(api_get(c, from, NULL, &r), CB_OK);
        ck_assert_int_eq(r.status, 200);
        ck_assert_ptr_nonnull(strstr(r.body, "\"key\":\"rt\""));
        /* The second time the hop's answer comes from the cache, but the
         * redirect itself was asked again. */
        ck_assert_uint_eq(fixture_requests_path(f, "/redirect"), i + 1);
        ck_assert_uint_eq(fixture_requests_path(g, "/cache/rt"), 1);
        api_response_free(&r);
    }
    /* The target URL itself is a fresh hit. */
    ck_assert_int_eq(api_get(c, target, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert_uint_eq(r.attempts, 0);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(g, "/cache/rt"), 1);
    api_client_free(c);
}
END_TEST

static Suite *redirect_suite(void)
{
    Suite *s = suite_create("redirect");
    TCase *tc = tcase_create("follow");

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_303_becomes_get);
    tcase_add_test(tc, test_301_302_post_becomes_get);
    tcase_add_test(tc, test_307_308_keep_method_and_body);
    tcase_add_test(tc, test_head_stays_head);
    tcase_add_test(tc, test_rewrites_compose_over_hops);
    tcase_add_test(tc, test_off_by_default);
    tcase_add_test(tc, test_location_with_fragment);
    tcase_add_test(tc, test_same_origin_only_by_default);
    tcase_add_test(tc, test_cross_origin_when_allowed);
    tcase_add_test(tc, test_max_redirects_bound);
    tcase_add_test(tc, test_redirect_to_error);
    suite_add_tcase(s, tc);

    /* What following redirects in src/request.c adds: each hop through the
     * breaker and the credentials of its own origin. */
    tc = tcase_create("origins");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_credentials_stay_on_their_origin);
    tcase_add_test(tc, test_cross_origin_hop_counts_on_its_origin);
    tcase_add_test(tc, test_cached_under_the_answering_url);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(redirect_suite()); }
