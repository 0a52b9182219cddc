/* cbhttp: threaded */
/*
 * The HTTP client against the in-process fixture server: creation and bad
 * configs, responses and headers, methods and bodies, header injection, body
 * limits, every error code, URL safety and redirects, keep-alive, the
 * per-origin breakers (opening, rejection without I/O, probing, isolation,
 * classification, per-request and per-origin configs, manual controls,
 * events, idle eviction) and many threads sharing one client.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "cbhttp.h"
#include "fixture.h"
#include "helpers/clients.h"
#include "helpers/testutil.h"

/* ---- helpers ------------------------------------------------------------ */

/* Clients on the fixture come from tu_client_on(fixture_url(f), 1, cfg):
 * retries off, so that one call is one attempt unless cfg says otherwise. */

/* "http://localhost:PORT": the same server under another origin. */
static void localhost_url(const fixture *f, const char *path, char *out, size_t size)
{
    snprintf(out, size, "http://localhost:%u%s", (unsigned)fixture_port(f), path);
}

static void abs_url(const fixture *f, const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s%s", fixture_url(f), path);
}

/* A client whose base URL is a closed port. */
static api_client *client_refused(api_client_config *cfg)
{
    static char base[64];

    snprintf(base, sizeof(base), "http://127.0.0.1:%u", (unsigned)tu_closed_port());
    return tu_client_on(base, 1, cfg);
}

/* The body of a /echo response as JSON; the caller deletes it. */
static cJSON *echo_json(const api_response *r)
{
    cJSON *j;

    ck_assert_ptr_nonnull(r->body);
    j = cJSON_ParseWithLength(r->body, r->body_len);
    ck_assert_msg(j != NULL, "not JSON: %s", r->body);
    return j;
}

static const char *json_str(const cJSON *j, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A request header as the server saw it (names compared ignoring case),
 * and how many lines carried that name. */
static const char *echo_header(const cJSON *j, const char *name, int *count)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "headers"), *it;
    const char  *val = NULL;
    int          n = 0;

    cJSON_ArrayForEach(it, h)
    {
        if (strcasecmp(it->string, name) == 0) {
            n++;
            if (!val && cJSON_IsString(it))
                val = it->valuestring;
        }
    }
    if (count)
        *count = n;
    return val;
}

/* ---- creation ----------------------------------------------------------- */

/* api_client_create says which field it refused; api_client_new's NULL
 * stays as it was. */
START_TEST(test_create_says_why)
{
    static const char *const bad_lines[] = { "X-Ok: 1", "X-Bad\r\n: 2", NULL };
    static const struct {
        api_client_config cfg;
        const char       *starts;
    } cases[] = {
        { { .base_url = "ftp://example.com" }, "base_url: " },
        { { .circuit_breaker = { .success_threshold = 4, .half_open_max = 3 } },
          "circuit_breaker: success_threshold (4) > half_open_max (3)" },
        { { .user_agent = "agent\x01" }, "user_agent: " },
        { { .user_agent = "agent\x7f" }, "user_agent: " },
        { { .default_headers = bad_lines }, "default_headers[1]: " },
    };
    api_client *c = (api_client *)1;
    char        err[256];
    size_t      i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(api_client_create(&cases[i].cfg, &c, err, sizeof(err)), CB_ERR_INVALID);
        ck_assert_ptr_null(c);
        ck_assert_msg(strncmp(err, cases[i].starts, strlen(cases[i].starts)) == 0,
                      "case %zu: \"%s\"", i, err);
        ck_assert_ptr_null(api_client_new(&cases[i].cfg));
    }
    /* A short buffer truncates, NULL err is fine, NULL out is refused. */
    ck_assert_int_eq(api_client_create(&cases[1].cfg, &c, err, 8), CB_ERR_INVALID);
    ck_assert_str_eq(err, "circuit");
    ck_assert_int_eq(api_client_create(&cases[1].cfg, &c, NULL, 0), CB_ERR_INVALID);
    /* A buffer of size 0 is not written to at all. */
    strcpy(err, "kept");
    ck_assert_int_eq(api_client_create(&cases[1].cfg, &c, err, 0), CB_ERR_INVALID);
    ck_assert_str_eq(err, "kept");
    ck_assert_int_eq(api_client_create(NULL, NULL, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_int_eq(api_client_create(NULL, &c, err, sizeof(err)), CB_OK);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(err, "");
    api_client_free(c);
}
END_TEST

START_TEST(test_new_free)
{
    api_client *c = api_client_new(NULL);

    /* NULL config: no base URL, all defaults. */
    ck_assert_ptr_nonnull(c);
    api_client_free(c);
    api_client_free(NULL);
}
END_TEST

static const char *const bad_bases[] = {
    "ftp://x",
    "http://",
    "http://a:99999",
    "http://u@h",
    "garbage",
    "",
    "http://a:0",
    "http:/a",
    "http://a b",
    "http://a/\r\nX: y",
    "file:///etc/passwd",
    "http://a?q=1",
    "http://a#frag",
    "//a",
    "http://[::1",
    "http://a:-1",
};

START_TEST(test_bad_base_url)
{
    api_client_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.base_url = bad_bases[_i];
    ck_assert_msg(api_client_new(&cfg) == NULL, "accepted base URL \"%s\"", bad_bases[_i]);
}
END_TEST

START_TEST(test_good_base_urls)
{
    static const char *const good[] = { "http://127.0.0.1:8080", "https://example.com",
                                        "http://Example.COM:1/api", "http://h/prefix/",
                                        "http://[::1]:9000" };
    api_client_config        cfg;
    size_t                   i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        api_client *c;

        memset(&cfg, 0, sizeof(cfg));
        cfg.base_url = good[i];
        c = api_client_new(&cfg);
        ck_assert_msg(c != NULL, "refused base URL \"%s\"", good[i]);
        api_client_free(c);
    }
}
END_TEST

START_TEST(test_bad_default_headers)
{
    static const char *const crlf[] = { "X-A: 1", "X-B: 2\r\nX-Evil: 1", NULL };
    static const char *const lf[] = { "X-B: 2\nX-Evil: 1", NULL };
    static const char *const noname[] = { ": v", NULL };
    api_client_config        cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.default_headers = crlf;
    ck_assert_ptr_null(api_client_new(&cfg));
    cfg.default_headers = lf;
    ck_assert_ptr_null(api_client_new(&cfg));
    cfg.default_headers = noname;
    ck_assert_ptr_null(api_client_new(&cfg));
    cfg.default_headers = NULL;
    cfg.user_agent = "ua\r\nX-Evil: 1";
    ck_assert_ptr_null(api_client_new(&cfg));
    /* A contradictory breaker config is a bad client config too. */
    cfg.user_agent = NULL;
    cfg.circuit_breaker.half_open_max = 1;
    cfg.circuit_breaker.success_threshold = 2;
    ck_assert_ptr_null(api_client_new(&cfg));
}
END_TEST

/* ---- responses ---------------------------------------------------------- */

START_TEST(test_get_ok)
{
    fixture     *f = fixture_start();
    api_client  *c;
    api_response r;
    cJSON       *j;

    ck_assert_ptr_nonnull(f);
    c = tu_client_on(fixture_url(f), 1, NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert(!r.from_cache);
    ck_assert(!r.stale);
    ck_assert_uint_gt(r.body_len, 0);
    ck_assert_uint_eq(strlen(r.body), r.body_len);
    j = echo_json(&r);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok")));
    ck_assert_str_eq(json_str(j, "path"), "/ok");
    cJSON_Delete(j);
    /* Header lookup ignores case; absent names give NULL. */
    ck_assert_ptr_nonnull(api_response_header(&r, "Content-Type"));
    ck_assert_str_eq(api_response_header(&r, "content-type"), "application/json");
    ck_assert_str_eq(api_response_header(&r, "CONTENT-TYPE"), "application/json");
    ck_assert_ptr_nonnull(api_response_header(&r, "date"));
    ck_assert_ptr_null(api_response_header(&r, "X-Not-There"));
    ck_assert_ptr_null(api_response_header(&r, NULL));
    ck_assert_ptr_null(api_response_header(NULL, "Date"));
    ck_assert_uint_gt(r.header_count, 0);
    ck_assert_uint_eq(fixture_requests(f), 1);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* Every body-carrying method reaches /echo with its method and body. */
START_TEST(test_methods_with_body)
{
    static const char *const methods[] = { "POST", "PUT", "PATCH", "DELETE" };
    fixture                 *f = fixture_start();
    api_client              *c = tu_client_on(fixture_url(f), 1, NULL);
    size_t                   i;

    ck_assert_ptr_nonnull(c);
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        api_response r;
        char         body[64];
        cJSON       *j;
        const cJSON *bl;

        snprintf(body, sizeof(body), "payload-of-%s", methods[i]);
        ck_assert_int_eq(api_request(c, methods[i], "/echo", body, strlen(body), NULL, &r), CB_OK);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(r.attempts, 1);
        j = echo_json(&r);
        ck_assert_str_eq(json_str(j, "method"), methods[i]);
        ck_assert_str_eq(json_str(j, "body"), body);
        bl = cJSON_GetObjectItemCaseSensitive(j, "body_len");
        ck_assert(cJSON_IsNumber(bl));
        ck_assert_int_eq((int)bl->valuedouble, (int)strlen(body));
        cJSON_Delete(j);
        api_response_free(&r);
    }
    /* A body with an embedded NUL is sent by length. */
    {
        api_response r;
        cJSON       *j;

        ck_assert_int_eq(api_request(c, "POST", "/echo", "a\0b", 3, NULL, &r), CB_OK);
        j = echo_json(&r);
        ck_assert_int_eq((int)cJSON_GetObjectItemCaseSensitive(j, "body_len")->valuedouble, 3);
        cJSON_Delete(j);
        api_response_free(&r);
    }
    /* GET after a POST on the same pooled handle is a GET again. */
    {
        api_response r;
        cJSON       *j;

        ck_assert_int_eq(api_get(c, "/echo", NULL, &r), CB_OK);
        j = echo_json(&r);
        ck_assert_str_eq(json_str(j, "method"), "GET");
        ck_assert_str_eq(json_str(j, "body"), "");
        cJSON_Delete(j);
        api_response_free(&r);
    }
    ck_assert_uint_eq(fixture_requests_path(f, "/echo"), 6);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_head)
{
    fixture     *f = fixture_start();
    api_client  *c = tu_client_on(fixture_url(f), 1, NULL);
    api_response r;

    ck_assert_int_eq(api_request(c, "HEAD", "/ok", NULL, 0, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_ptr_nonnull(r.body);
    ck_assert_str_eq(r.body, "");
    ck_assert_str_eq(api_response_header(&r, "content-type"), "application/json");
    api_response_free(&r);
    /* The handle that did HEAD does a full GET next. */
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    ck_assert_uint_gt(r.body_len, 0);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 2);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_default_headers_and_user_agent)
{
    static const char *const defs[] = { "X-Team: blue", "X-Trace: default", NULL };
    static const char *const mine[] = { "x-trace: mine", "X-Extra: 1", NULL };
    fixture                 *f = fixture_start();
    api_client_config        cfg;
    api_client              *c;
    api_options              o;
    api_response             r;
    cJSON                   *j;
    int                      n;

    memset(&cfg, 0, sizeof(cfg));
    cfg.default_headers = defs;
    cfg.user_agent = "check-client/1.0";
    c = tu_client_on(fixture_url(f), 1, &cfg);
    ck_assert_ptr_nonnull(c);

    ck_assert_int_eq(api_get(c, "/echo", NULL, &r), CB_OK);
    j = echo_json(&r);
    ck_assert_str_eq(echo_header(j, "User-Agent", NULL), "check-client/1.0");
    ck_assert_str_eq(echo_header(j, "X-Team", NULL), "blue");
    ck_assert_str_eq(echo_header(j, "X-Trace", NULL), "default");
    cJSON_Delete(j);
    api_response_free(&r);

    /* A per-request header replaces the default of the same name (any case);
     * the other defaults stay. */
    memset(&o, 0, sizeof(o));
    o.headers = mine;
    ck_assert_int_eq(api_get(c, "/echo", &o, &r), CB_OK);
    j = echo_json(&r);
    ck_assert_str_eq(echo_header(j, "X-Trace", &n), "mine");
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(echo_header(j, "X-Team", NULL), "blue");
    ck_assert_str_eq(echo_header(j, "X-Extra", NULL), "1");
    cJSON_Delete(j);
    api_response_free(&r);
    api_client_free(c);

    /* The default user agent names the library. */
    c = tu_client_on(fixture_url(f), 1, NULL);
    ck_assert_int_eq(api_get(c, "/echo", NULL, &r), CB_OK);
    j = echo_json(&r);
    ck_assert_ptr_nonnull(echo_header(j, "User-Agent", NULL));
    ck_assert(strncmp(echo_header(j, "User-Agent", NULL), "cbhttp/", 7) == 0);
    cJSON_Delete(j);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_header_injection)
{
    static const char *const        crlf[] = { "X-Ok: 1", "X-A: 1\r\nX-Evil: 1", NULL };
    static const char *const        lf[] = { "X-A: 1\nX-Evil: 1", NULL };
    static const char *const        cr[] = { "X-A: 1\rX-Evil: 1", NULL };
    static const char *const        nocolon[] = { "X-A 1", NULL };
    static const char *const        badname[] = { "X A: 1", NULL };
    static const char *const *const cases[] = { crlf, lf, cr, nocolon, badname };
    fixture                        *f = fixture_start();
    api_client                     *c = tu_client_on(fixture_url(f), 1, NULL);
    size_t                          i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        api_options  o;
        api_response r;

        memset(&o, 0, sizeof(o));
        o.headers = cases[i];
        ck_assert_int_eq(api_get(c, "/echo", &o, &r), CB_ERR_INVALID);
        ck_assert_uint_eq(r.attempts, 0);
        ck_assert_int_eq(r.status, 0);
        ck_assert_str_ne(r.error, "");
        api_response_free(&r);
        ck_assert_int_eq(api_request(c, "POST", "/echo", "x", 1, &o, &r), CB_ERR_INVALID);
        api_response_free(&r);
    }
    /* A content type with CR/LF is refused as well. */
    {
        api_options  o;
        api_response r;

        memset(&o, 0, sizeof(o));
        o.content_type = "text/plain\r\nX-Evil: 1";
        ck_assert_int_eq(api_request(c, "POST", "/echo", "x", 1, &o, &r), CB_ERR_INVALID);
        api_response_free(&r);
    }
    /* So is every other control character in a content type: the rule of
     * header lines applies to every caller string sent as one. */
    {
        static const char *const bad_ct[] = { "text/\x01plain", "a\x0b",          "a\x0c",
                                              "\x1b[31m",       "text/plain\x7f", "a\nb" };
        size_t                   j;

        for (j = 0; j < sizeof(bad_ct) / sizeof(bad_ct[0]); j++) {
            api_options  o;
            api_response r;

            memset(&o, 0, sizeof(o));
            o.content_type = bad_ct[j];
            ck_assert_int_eq(api_request(c, "POST", "/echo", "x", 1, &o, &r), CB_ERR_INVALID);
            ck_assert_str_eq(r.error, "invalid content_type");
            ck_assert_uint_eq(r.attempts, 0);
            api_response_free(&r);
        }
    }
    ck_assert_uint_eq(fixture_requests(f), 0);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* A request libcurl could not build (its head over 1 MiB) is the caller's
 * error, found before any attempt: no permit, no breaker outcome, nothing
 * sent, not a "response too large". */
START_TEST(test_request_too_large)
{
    fixture     *f = fixture_start();
    api_client  *c = tu_client_on(fixture_url(f), 1, NULL);
    size_t       big = 1024 * 1024;
    char        *path = malloc(big + 8), *hdr = malloc(2 * big + 8);
    const char  *hdrs[] = { hdr, NULL };
    api_options  o;
    api_response r;
    cb_metrics   m;

    ck_assert_ptr_nonnull(path);
    ck_assert_ptr_nonnull(hdr);
    memcpy(path, "/echo?", 6);
    memset(path + 6, 'a', big - 6);
    path[700 * 1024] = '\0'; /* a URL we accept, a request head libcurl would not */
    ck_assert_int_eq(api_get(c, path, NULL, &r), CB_ERR_INVALID);
    ck_assert_uint_eq(r.attempts, 0);
    ck_assert_ptr_nonnull(strstr(r.error, "request head"));
    api_response_free(&r);
    memcpy(hdr, "X-Big: ", 7);
    memset(hdr + 7, 'b', 2 * big - 7);
    hdr[2 * big] = '\0';
    memset(&o, 0, sizeof(o));
    o.headers = hdrs;
    ck_assert_int_eq(api_get(c, "/echo", &o, &r), CB_ERR_INVALID);
    ck_assert_uint_eq(r.attempts, 0);
    api_response_free(&r);
    /* No breaker was even consulted; a normal-sized call still works. */
    ck_assert_int_eq(api_client_breaker_metrics(c, "/", &m), CB_ERR_INVALID);
    ck_assert_uint_eq(fixture_requests(f), 0);
    hdr[300 * 1024] = '\0';
    ck_assert_int_eq(api_get(c, "/echo", &o, &r), CB_OK);
    api_response_free(&r);
    free(path);
    free(hdr);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_body_limit)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      r;

    memset(&cfg, 0, sizeof(cfg));
    cfg.max_body_bytes = 1000;
    c = tu_client_on(fixture_url(f), 1, &cfg);
    ck_assert_ptr_nonnull(c);
    /* Exactly the limit is fine. */
    ck_assert_int_eq(api_get(c, "/large/1000", NULL, &r), CB_OK);
    ck_assert_uint_eq(r.body_len, 1000);
    ck_assert_int_eq(r.body[0], 'a');
    ck_assert_int_eq(r.body[999], (char)('a' + 999 % 26));
    api_response_free(&r);
    /* With Content-Length. */
    ck_assert_int_eq(api_get(c, "/large/1001", NULL, &r), CB_ERR_TOO_LARGE);
    ck_assert_str_ne(r.error, "");
    ck_assert_uint_eq(r.body_len, 0);
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/large/5000000", NULL, &r), CB_ERR_TOO_LARGE);
    api_response_free(&r);
    /* Without Content-Length (chunked). */
    ck_assert_int_eq(api_get(c, "/large-chunked/1001", NULL, &r), CB_ERR_TOO_LARGE);
    ck_assert_str_ne(r.error, "");
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/large-chunked/900", NULL, &r), CB_OK);
    ck_assert_uint_eq(r.body_len, 900);
    api_response_free(&r);
    api_client_free(c);

    /* Without Content-Length and without chunking: read until close. */
    memset(&cfg, 0, sizeof(cfg));
    cfg.max_body_bytes = 1000;
    cfg.retry.max_attempts = 1;
    c = api_client_new(&cfg);
    {
        char url[128];

        snprintf(url, sizeof(url), "%s/raw/no-content-length-large/100000", fixture_raw_url(f));
        ck_assert_int_eq(api_get(c, url, NULL, &r), CB_ERR_TOO_LARGE);
        api_response_free(&r);
    }
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* api_get overwrites *resp first, whatever it held; freeing is idempotent. */
START_TEST(test_response_overwrite_and_free)
{
    fixture     *f = fixture_start();
    api_client  *c = tu_client_on(fixture_url(f), 1, NULL);
    api_response r, z;

    memset(&r, 0xA5, sizeof(r));
    ck_assert_int_eq(api_get(c, "relative", NULL, &r), CB_ERR_INVALID);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_eq(r.attempts, 0);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_ptr_nonnull(r.body);
    ck_assert(!r.from_cache && !r.stale);
    api_response_free(&r);
    api_response_free(&r);

    memset(&r, 0xA5, sizeof(r));
    ck_assert_int_eq(api_get(NULL, "/ok", NULL, &r), CB_ERR_INVALID);
    ck_assert_uint_eq(r.attempts, 0);
    api_response_free(&r);

    memset(&r, 0xA5, sizeof(r));
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.attempts, 1);
    /* A second call on a response that was not freed leaks, but a freed one
     * is reused cleanly. */
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/status/404", NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 404);
    api_response_free(&r);
    ck_assert_ptr_null(r.body);
    ck_assert_int_eq(r.status, 0);
    api_response_free(&r);

    memset(&z, 0, sizeof(z));
    api_response_free(&z);
    api_response_free(NULL);
    ck_assert_int_eq(api_get(c, "/ok", NULL, NULL), CB_ERR_INVALID);
    ck_assert_int_eq(api_get(c, NULL, NULL, &r), CB_ERR_INVALID);
    api_response_free(&r);
    ck_assert_int_eq(api_request(c, NULL, "/ok", NULL, 0, NULL, &r), CB_ERR_INVALID);
    api_response_free(&r);
    ck_assert_int_eq(api_request(c, "GE T", "/ok", NULL, 0, NULL, &r), CB_ERR_INVALID);
    api_response_free(&r);
    ck_assert_int_eq(api_request(c, "GET\r\n", "/ok", NULL, 0, NULL, &r), CB_ERR_INVALID);
    api_response_free(&r);
    ck_assert_int_eq(api_request(c, "", "/ok", NULL, 0, NULL, &r), CB_ERR_INVALID);
    api_response_free(&r);
    ck_assert_int_eq(api_request(c, "POST", "/echo", NULL, 5, NULL, &r), CB_ERR_INVALID);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 2);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- every error code --------------------------------------------------- */

START_TEST(test_err_http)
{
    fixture     *f = fixture_start();
    api_client  *c = tu_client_on(fixture_url(f), 1, NULL);
    api_response r;
    cJSON       *j;

    ck_assert_int_eq(api_get(c, "/status/404", NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 404);
    ck_assert_uint_eq(r.attempts, 1);
    j = echo_json(&r);
    ck_assert_int_eq((int)cJSON_GetObjectItemCaseSensitive(j, "status")->valuedouble, 404);
    cJSON_Delete(j);
    ck_assert_str_eq(api_response_header(&r, "Content-Type"), "application/json");
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/status/500", NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 500);
    ck_assert_uint_gt(r.body_len, 0);
    api_response_free(&r);
    /* 3xx below 400 are not errors. */
    ck_assert_int_eq(api_get(c, "/status/204", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 204);
    ck_assert_uint_eq(r.body_len, 0);
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/status/399", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 399);
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/status/400", NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 400);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_err_connect)
{
    api_client_config cfg;
    api_client       *c;
    api_response      r;

    memset(&cfg, 0, sizeof(cfg));
    c = client_refused(&cfg);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CONNECT);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert_str_ne(r.error, "");
    ck_assert_ptr_nonnull(r.body);
    ck_assert_uint_eq(r.body_len, 0);
    api_response_free(&r);
    api_client_free(c);
}
END_TEST

/* The fixture's DOWN_REFUSE outage, then back up on the same port. Under
 * gVisor a connection may still slip into the closing listener and be
 * reset, so a transport error is accepted there too. */
START_TEST(test_err_connect_outage)
{
    fixture     *f = fixture_start();
    api_client  *c = tu_client_on(fixture_url(f), 1, NULL);
    api_response r;
    cb_err       e;

    fixture_set_outage(f, FIXTURE_DOWN_REFUSE);
    e = api_get(c, "/ok", NULL, &r);
    ck_assert_msg(e == CB_ERR_CONNECT || e == CB_ERR_TRANSPORT, "%s", cb_strerror(e));
    ck_assert_int_eq(r.status, 0);
    api_response_free(&r);
    fixture_set_outage(f, FIXTURE_UP);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_err_timeout)
{
    fixture     *f = fixture_start();
    api_client  *c = tu_client_on(fixture_url(f), 1, NULL);
    api_options  o;
    api_response r;

    memset(&o, 0, sizeof(o));
    o.timeout_ms = 200;
    ck_assert_int_eq(api_get(c, "/delay/3000", &o, &r), CB_ERR_TIMEOUT);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert_str_ne(r.error, "");
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/hang", &o, &r), CB_ERR_TIMEOUT);
    ck_assert_str_ne(r.error, "");
    api_response_free(&r);
    /* The client's default deadline applies without options. */
    api_client_free(c);
    {
        api_client_config cfg;

        memset(&cfg, 0, sizeof(cfg));
        cfg.timeout_ms = 200;
        c = tu_client_on(fixture_url(f), 1, &cfg);
        ck_assert_int_eq(api_get(c, "/hang", NULL, &r), CB_ERR_TIMEOUT);
        api_response_free(&r);
        /* A delay inside the deadline is fine. */
        ck_assert_int_eq(api_get(c, "/delay/10", NULL, &r), CB_OK);
        api_response_free(&r);
        api_client_free(c);
    }
    fixture_stop(f);
}
END_TEST

START_TEST(test_err_transport)
{
    static const char *const raw[] = { "/raw/bad-status-line", "/raw/not-http", "/raw/bad-chunked",
                                       "/raw/content-length-lies", "/raw/close" };
    fixture                 *f = fixture_start();
    api_client              *c = tu_client_on(fixture_url(f), 1, NULL);
    api_response             r;
    size_t                   i;
    cb_err                   e;

    ck_assert_int_eq(api_get(c, "/reset-mid-body", NULL, &r), CB_ERR_TRANSPORT);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_ne(r.error, "");
    api_response_free(&r);
    fixture_set_outage(f, FIXTURE_DOWN_RESET);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_TRANSPORT);
    ck_assert_str_ne(r.error, "");
    api_response_free(&r);
    fixture_set_outage(f, FIXTURE_UP);
    api_client_free(c);

    /* Bad bytes from the raw listener, by absolute URL. */
    {
        api_client_config cfg;

        memset(&cfg, 0, sizeof(cfg));
        cfg.retry.max_attempts = 1;
        c = api_client_new(&cfg);
    }
    for (i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        char url[128];

        snprintf(url, sizeof(url), "%s%s", fixture_raw_url(f), raw[i]);
        e = api_get(c, url, NULL, &r);
        ck_assert_msg(e == CB_ERR_TRANSPORT, "%s: %s (%s)", raw[i], cb_strerror(e), r.error);
        ck_assert_int_eq(r.status, 0);
        ck_assert_str_ne(r.error, "");
        api_response_free(&r);
    }
    /* Five transport errors opened the raw origin's breaker (default 5). */
    {
        char url[128];

        snprintf(url, sizeof(url), "%s/raw/ok", fixture_raw_url(f));
        ck_assert_int_eq(api_get(c, url, NULL, &r), CB_ERR_CIRCUIT_OPEN);
        api_response_free(&r);
        ck_assert_int_eq(api_client_reset(c, url), CB_OK);
        ck_assert_int_eq(api_get(c, url, NULL, &r), CB_OK);
        ck_assert_int_eq(r.status, 200);
        api_response_free(&r);
    }
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_err_circuit_open_and_strerror)
{
    fixture     *f = fixture_start();
    api_client  *c = tu_client_on(fixture_url(f), 1, NULL);
    api_response r;
    int          e;

    ck_assert_int_eq(api_client_trip(c, "/ok"), CB_OK);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(r.attempts, 0);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_ne(r.error, "");
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 0);
    for (e = 0; e <= CB_ERR_TOO_LARGE + 5; e++)
        ck_assert_ptr_nonnull(cb_strerror((cb_err)e));
    ck_assert_ptr_nonnull(cb_strerror((cb_err)-1));
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- URL safety ------------------------------------------------------------ */

static const char *const bad_paths[] = {
    "http://evil/", "//evil",        "\\evil",    "/a@b",     "/a b",      "/a\r\nX: y", "",
    "relative",     "/ok#frag",      "/a\tb",     "/\\evil",  "/../admin", "/a/../../x", "/a%zz",
    "ftp://evil/",  "https://evil/", "/ok?x=a@b", "@evil/ok", "/a\x7f",    "/\xc3\xa9",  "/a\nb",
    "?x=1",         "http:evil",     "/%2e%2e/x",
};

START_TEST(test_bad_paths)
{
    fixture     *f = fixture_start();
    api_client  *c = tu_client_on(fixture_url(f), 1, NULL);
    api_response r;

    ck_assert_msg(api_get(c, bad_paths[_i], NULL, &r) == CB_ERR_INVALID, "accepted \"%s\"",
                  bad_paths[_i]);
    ck_assert_uint_eq(r.attempts, 0);
    ck_assert_str_ne(r.error, "");
    api_response_free(&r);
    ck_assert_int_eq(api_request(c, "POST", bad_paths[_i], "x", 1, NULL, &r), CB_ERR_INVALID);
    api_response_free(&r);
    /* No breaker was made for an invalid URL, and nothing reached the server. */
    ck_assert_int_eq(api_client_breaker_state(c, bad_paths[_i]), CB_CLOSED);
    ck_assert_uint_eq(fixture_requests(f), 0);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_good_paths)
{
    static const char *const good[] = { "/ok", "/echo?x=1&y=%40", "/echo?to=http://h/x",
                                        "/status/200", "/echo%2f" };
    fixture                 *f = fixture_start();
    api_client              *c = tu_client_on(fixture_url(f), 1, NULL);
    size_t                   i;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        api_response r;
        cb_err       e = api_get(c, good[i], NULL, &r);

        ck_assert_msg(e == CB_OK || e == CB_ERR_HTTP, "\"%s\": %s (%s)", good[i], cb_strerror(e),
                      r.error);
        ck_assert_uint_eq(r.attempts, 1);
        api_response_free(&r);
    }
    ck_assert_uint_eq(fixture_requests(f), sizeof(good) / sizeof(good[0]));
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* A base URL prefix is kept and cannot be climbed out of. */
START_TEST(test_base_prefix)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    char              base[128];

    snprintf(base, sizeof(base), "%s/status", fixture_url(f));
    memset(&cfg, 0, sizeof(cfg));
    cfg.base_url = base;
    cfg.retry.max_attempts = 1;
    c = api_client_new(&cfg);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/418", NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 418);
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/../ok", NULL, &r), CB_ERR_INVALID);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(f, "/status/418"), 1);
    ck_assert_uint_eq(fixture_requests(f), 1);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_no_base_url)
{
    static const char *const bad[] = { "/ok",
                                       "ok",
                                       "ftp://127.0.0.1/x",
                                       "file:///etc/passwd",
                                       "gopher://127.0.0.1/",
                                       "http://",
                                       "http:///ok",
                                       "http://u:p@127.0.0.1/",
                                       "HTTP//127.0.0.1/",
                                       "" };
    fixture                 *f = fixture_start();
    api_client_config        cfg;
    api_client              *c;
    api_response             r;
    char                     url[128];
    size_t                   i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 1;
    c = api_client_new(&cfg);
    ck_assert_ptr_nonnull(c);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(api_get(c, bad[i], NULL, &r) == CB_ERR_INVALID, "accepted \"%s\"", bad[i]);
        ck_assert_uint_eq(r.attempts, 0);
        api_response_free(&r);
    }
    abs_url(f, "/ok", url, sizeof(url));
    ck_assert_int_eq(api_get(c, url, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);
    /* Scheme and host are case-insensitive. */
    snprintf(url, sizeof(url), "HTTP://127.0.0.1:%u/ok", (unsigned)fixture_port(f));
    ck_assert_int_eq(api_get(c, url, NULL, &r), CB_OK);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 2);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- redirects ------------------------------------------------------------- */

static cb_err get_redirect(api_client *c, const char *to, api_response *r)
{
    char path[512];

    snprintf(path, sizeof(path), "/redirect?to=%s", to);
    return api_get(c, path, NULL, r);
}

START_TEST(test_redirect_off_by_default)
{
    fixture     *f = fixture_start();
    api_client  *c = tu_client_on(fixture_url(f), 1, NULL);
    api_response r;
    char         to[128];

    abs_url(f, "/ok", to, sizeof(to));
    ck_assert_int_eq(get_redirect(c, to, &r), CB_OK);
    ck_assert_int_eq(r.status, 302);
    ck_assert_str_eq(api_response_header(&r, "Location"), to);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(f, "/redirect"), 1);
    ck_assert_uint_eq(fixture_requests_path(f, "/ok"), 0);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_redirect_same_origin)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    cJSON            *j;
    char              to[128], path[256];

    memset(&cfg, 0, sizeof(cfg));
    cfg.max_redirects = 3;
    c = tu_client_on(fixture_url(f), 1, &cfg);
    abs_url(f, "/ok", to, sizeof(to));
    ck_assert_int_eq(get_redirect(c, to, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.attempts, 1);
    j = echo_json(&r);
    ck_assert_str_eq(json_str(j, "path"), "/ok");
    cJSON_Delete(j);
    /* Only the final response's headers are kept. */
    ck_assert_ptr_null(api_response_header(&r, "Location"));
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(f, "/ok"), 1);

    /* A relative Location is same-origin. */
    ck_assert_int_eq(get_redirect(c, "/status/201", &r), CB_OK);
    ck_assert_int_eq(r.status, 201);
    api_response_free(&r);

    /* A chain longer than max_redirects stops with the last 3xx. */
    snprintf(path, sizeof(path),
             "/redirect?to=/redirect%%3Fto%%3D/redirect%%253Fto%%253D/"
             "redirect%%25253Fto%%25253D/ok");
    ck_assert_uint_eq(fixture_requests_path(f, "/redirect"), 2);
    ck_assert_int_eq(api_get(c, path, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 302);
    ck_assert_str_eq(api_response_header(&r, "Location"), "/ok");
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(f, "/redirect"), 6); /* 1 + 3 hops */
    ck_assert_uint_eq(fixture_requests_path(f, "/ok"), 1);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_redirect_cross_origin)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    char              to[128];

    memset(&cfg, 0, sizeof(cfg));
    cfg.max_redirects = 3;
    c = tu_client_on(fixture_url(f), 1, &cfg);
    localhost_url(f, "/ok", to, sizeof(to));
    ck_assert_int_eq(get_redirect(c, to, &r), CB_OK);
    ck_assert_int_eq(r.status, 302);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(f, "/ok"), 0);
    /* Other schemes: never. */
    ck_assert_int_eq(get_redirect(c, "ftp://127.0.0.1/x", &r), CB_OK);
    ck_assert_int_eq(r.status, 302);
    api_response_free(&r);
    api_client_free(c);

    cfg.allow_cross_origin_redirects = true;
    c = tu_client_on(fixture_url(f), 1, &cfg);
    ck_assert_int_eq(get_redirect(c, to, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(f, "/ok"), 1);
    /* Other schemes still never, even cross-origin allowed. */
    ck_assert_int_eq(get_redirect(c, "file:///etc/passwd", &r), CB_OK);
    ck_assert_int_eq(r.status, 302);
    ck_assert_ptr_null(strstr(r.body, "root:"));
    api_response_free(&r);
    ck_assert_int_eq(get_redirect(c, "ftp://127.0.0.1/x", &r), CB_OK);
    ck_assert_int_eq(r.status, 302);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- keep-alive ------------------------------------------------------------ */

START_TEST(test_keep_alive)
{
    fixture    *f = fixture_start();
    api_client *c = tu_client_on(fixture_url(f), 1, NULL);
    int         i;

    for (i = 0; i < 20; i++) {
        api_response r;

        ck_assert_int_eq(api_get(c, i % 2 ? "/ok" : "/status/404", NULL, &r),
                         i % 2 ? CB_OK : CB_ERR_HTTP);
        api_response_free(&r);
    }
    ck_assert_uint_eq(fixture_requests(f), 20);
    ck_assert_uint_eq(fixture_connections(f), 1);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- breakers ------------------------------------------------------------- */

START_TEST(test_breaker_opens_and_recovers)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    cb_metrics        m;
    int               i;

    memset(&cfg, 0, sizeof(cfg));
    tu_clock_install(&tc, &cfg);
    cfg.circuit_breaker.failure_threshold = 3;
    cfg.circuit_breaker.reset_timeout_ms = 5000;
    c = tu_client_on(fixture_url(f), 1, &cfg);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_CLOSED);
    ck_assert_int_eq(api_client_breaker_metrics(c, "/ok", &m), CB_ERR_INVALID);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_CLOSED);
        ck_assert_int_eq(api_get(c, "/status/500", NULL, &r), CB_ERR_HTTP);
        ck_assert_uint_eq(r.attempts, 1);
        api_response_free(&r);
    }
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_OPEN);
    ck_assert_uint_eq(fixture_requests(f), 3);

    /* Open: rejected with no network I/O. */
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(r.attempts, 0);
    ck_assert_int_eq(r.status, 0);
    api_response_free(&r);
    ck_assert_int_eq(api_request(c, "POST", "/echo", "x", 1, NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 3);
    ck_assert_int_eq(api_client_breaker_metrics(c, "/ok", &m), CB_OK);
    ck_assert_int_eq(m.state, CB_OPEN);
    ck_assert_uint_eq(m.failures, 3);
    ck_assert_uint_eq(m.rejected, 2);
    ck_assert_uint_eq(m.times_opened, 1);

    /* Not yet. */
    tc.now_ms += 4999;
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_OPEN);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    /* Past the reset timeout: a probe is admitted, and its success closes. */
    tc.now_ms += 2;
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_HALF_OPEN);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_CLOSED);
    ck_assert_uint_eq(fixture_requests(f), 4);

    /* A failed probe reopens it. */
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_HTTP);
        api_response_free(&r);
    }
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_OPEN);
    tc.now_ms += 5001;
    ck_assert_int_eq(api_get(c, "/status/502", NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_OPEN);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 8);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_breaker_per_origin)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    char              ip_bad[128], ip_ok[128], lh_ok[128], lh_upper[128];
    int               i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 1;
    cfg.circuit_breaker.failure_threshold = 3;
    c = api_client_new(&cfg);
    abs_url(f, "/status/500", ip_bad, sizeof(ip_bad));
    abs_url(f, "/ok", ip_ok, sizeof(ip_ok));
    localhost_url(f, "/ok", lh_ok, sizeof(lh_ok));
    snprintf(lh_upper, sizeof(lh_upper), "http://LOCALHOST:%u/x", (unsigned)fixture_port(f));
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(api_get(c, ip_bad, NULL, &r), CB_ERR_HTTP);
        api_response_free(&r);
    }
    ck_assert_int_eq(api_client_breaker_state(c, ip_ok), CB_OPEN);
    ck_assert_int_eq(api_client_breaker_state(c, lh_ok), CB_CLOSED);
    ck_assert_int_eq(api_get(c, ip_ok, NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    /* Same port, other host name: its own breaker, still closed. */
    ck_assert_int_eq(api_get(c, lh_ok, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, lh_ok), CB_CLOSED);
    /* Host case does not make another origin. */
    ck_assert_int_eq(api_client_breaker_state(c, lh_upper), CB_CLOSED);
    ck_assert_int_eq(api_client_trip(c, lh_upper), CB_OK);
    ck_assert_int_eq(api_client_breaker_state(c, lh_ok), CB_OPEN);
    ck_assert_uint_eq(fixture_requests(f), 4);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* 4xx are successes for the breaker; 5xx and 429 failures. */
START_TEST(test_breaker_classification)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    cb_metrics        m;
    int               i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.circuit_breaker.failure_threshold = 3;
    c = tu_client_on(fixture_url(f), 1, &cfg);
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(api_get(c, i % 2 ? "/status/404" : "/status/400", NULL, &r), CB_ERR_HTTP);
        api_response_free(&r);
    }
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_CLOSED);
    ck_assert_int_eq(api_client_breaker_metrics(c, "/", &m), CB_OK);
    ck_assert_uint_eq(m.successes, 10);
    ck_assert_uint_eq(m.failures, 0);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(api_get(c, "/status/429", NULL, &r), CB_ERR_HTTP);
        ck_assert_int_eq(r.status, 429);
        api_response_free(&r);
    }
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    api_client_free(c);

    /* Other 5xx count too. */
    c = tu_client_on(fixture_url(f), 1, &cfg);
    ck_assert_int_eq(api_get(c, "/status/502", NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/status/599", NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/status/504", NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_breaker_connect_errors_and_timeouts)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    api_options       o;
    cb_metrics        m;
    int               i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.circuit_breaker.failure_threshold = 2;
    c = client_refused(&cfg);
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CONNECT);
        api_response_free(&r);
    }
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_OPEN);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(r.attempts, 0);
    api_response_free(&r);
    api_client_free(c);

    c = tu_client_on(fixture_url(f), 1, &cfg);
    memset(&o, 0, sizeof(o));
    o.timeout_ms = 150;
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(api_get(c, "/delay/2000", &o, &r), CB_ERR_TIMEOUT);
        api_response_free(&r);
    }
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_OPEN);
    ck_assert_int_eq(api_client_breaker_metrics(c, "/ok", &m), CB_OK);
    ck_assert_uint_eq(m.failures, 2);
    api_client_free(c);

    /* Transport errors too. */
    c = tu_client_on(fixture_url(f), 1, &cfg);
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(api_get(c, "/reset-mid-body", NULL, &r), CB_ERR_TRANSPORT);
        api_response_free(&r);
    }
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_OPEN);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

static bool never_failure(cb_err err, long status, void *ud)
{
    (void)err;
    (void)status;
    (*(int *)ud)++;
    return false;
}

static bool fail_on_4xx(cb_err err, long status, void *ud)
{
    (*(int *)ud)++;
    return err != CB_OK || status >= 400;
}

START_TEST(test_breaker_custom_classifier)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    api_options       o;
    int               client_calls = 0, req_calls = 0, i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.circuit_breaker.failure_threshold = 3;
    cfg.classify = never_failure;
    cfg.classify_data = &client_calls;
    c = tu_client_on(fixture_url(f), 1, &cfg);
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(api_get(c, "/status/500", NULL, &r), CB_ERR_HTTP);
        api_response_free(&r);
    }
    ck_assert_int_eq(client_calls, 5);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_CLOSED);

    /* The per-request classifier overrides the client's. */
    memset(&o, 0, sizeof(o));
    o.classify = fail_on_4xx;
    o.classify_data = &req_calls;
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(api_get(c, "/status/404", &o, &r), CB_ERR_HTTP);
        api_response_free(&r);
    }
    ck_assert_int_eq(req_calls, 3);
    ck_assert_int_eq(client_calls, 5);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_breaker_per_request_config)
{
    fixture     *f = fixture_start();
    api_client  *c;
    api_response r;
    api_options  o;
    cb_config    two, five, bad;
    cb_metrics   m;

    memset(&two, 0, sizeof(two));
    two.failure_threshold = 2;
    memset(&five, 0, sizeof(five));
    five.failure_threshold = 5;
    c = tu_client_on(fixture_url(f), 1, NULL); /* client default: 5 */
    memset(&o, 0, sizeof(o));

    /* Created on first use with the request's config. */
    o.circuit_breaker = &two;
    ck_assert_int_eq(api_get(c, "/status/500", &o, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/status/500", NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    api_client_reset(c, "/");
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_CLOSED);

    /* A later config updates thresholds and keeps the counts: with five,
     * one failure leaves it CLOSED; lowered to two, one more failure opens
     * it (a fresh breaker would need two). */
    o.circuit_breaker = &five;
    ck_assert_int_eq(api_get(c, "/status/500", &o, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_CLOSED);
    ck_assert_int_eq(api_client_breaker_metrics(c, "/", &m), CB_OK);
    ck_assert_uint_eq(m.window_failures, 1);
    o.circuit_breaker = &two;
    ck_assert_int_eq(api_get(c, "/status/500", &o, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    /* A new config keeps the state: still OPEN, still rejecting. */
    o.circuit_breaker = &five;
    ck_assert_int_eq(api_get(c, "/ok", &o, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/"), CB_OPEN);
    ck_assert_int_eq(api_client_breaker_metrics(c, "/", &m), CB_OK);
    ck_assert_int_eq(m.state, CB_OPEN);
    ck_assert_uint_ge(m.rejected, 1);

    /* A contradictory per-request config is refused without I/O. */
    memset(&bad, 0, sizeof(bad));
    bad.half_open_max = 1;
    bad.success_threshold = 3;
    o.circuit_breaker = &bad;
    api_client_reset(c, "/");
    ck_assert_int_eq(api_get(c, "/ok", &o, &r), CB_ERR_INVALID);
    ck_assert_str_eq(r.error, "circuit_breaker: success_threshold (3) > half_open_max (1)");
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests_path(f, "/ok"), 0);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_set_origin_breaker)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    cb_config         one, bad;
    char              ip[128], lh[128];

    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 1;
    c = api_client_new(&cfg); /* no base URL: absolute URLs, default threshold 5 */
    abs_url(f, "/status/500", ip, sizeof(ip));
    localhost_url(f, "/status/500", lh, sizeof(lh));
    memset(&one, 0, sizeof(one));
    one.failure_threshold = 1;
    memset(&bad, 0, sizeof(bad));
    bad.half_open_max = 1;
    bad.success_threshold = 2;
    ck_assert_int_eq(api_client_set_origin_breaker(c, ip, &one), CB_OK);
    ck_assert_int_eq(api_client_set_origin_breaker(c, ip, &bad), CB_ERR_INVALID);
    ck_assert_int_eq(api_client_set_origin_breaker(c, ip, NULL), CB_ERR_INVALID);
    ck_assert_int_eq(api_client_set_origin_breaker(c, "/relative", &one), CB_ERR_INVALID);
    ck_assert_int_eq(api_client_set_origin_breaker(c, "ftp://x/", &one), CB_ERR_INVALID);
    ck_assert_int_eq(api_client_set_origin_breaker(NULL, ip, &one), CB_ERR_INVALID);
    ck_assert_int_eq(api_get(c, ip, NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, ip), CB_OPEN);
    /* Another origin keeps the client default (5). */
    ck_assert_int_eq(api_get(c, lh, NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, lh), CB_CLOSED);
    ck_assert_uint_eq(fixture_requests(f), 2);
    api_client_free(c);

    /* With a base URL, a path names the base's origin. */
    c = tu_client_on(fixture_url(f), 1, NULL);
    ck_assert_int_eq(api_client_set_origin_breaker(c, "/", &one), CB_OK);
    ck_assert_int_eq(api_client_set_origin_breaker(c, "//evil", &one), CB_ERR_INVALID);
    ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_OPEN);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_trip_and_reset)
{
    fixture     *f = fixture_start();
    api_client  *c = tu_client_on(fixture_url(f), 1, NULL);
    api_response r;

    ck_assert_int_eq(api_client_trip(c, "/anything"), CB_OK);
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_OPEN);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(r.attempts, 0);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 0);
    ck_assert_int_eq(api_client_reset(c, "/ok"), CB_OK);
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_CLOSED);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 1);
    ck_assert_int_eq(api_client_trip(c, "//evil"), CB_ERR_INVALID);
    ck_assert_int_eq(api_client_reset(c, "http://"), CB_ERR_INVALID);
    ck_assert_int_eq(api_client_trip(NULL, "/"), CB_ERR_INVALID);
    ck_assert_int_eq(api_client_breaker_state(NULL, "/"), CB_CLOSED);
    /* No URL names no origin: nothing is tripped. */
    ck_assert_int_eq(api_client_trip(c, NULL), CB_ERR_INVALID);
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_CLOSED);
    {
        cb_metrics m;

        ck_assert_int_eq(api_client_breaker_metrics(c, "/ok", NULL), CB_ERR_INVALID);
        ck_assert_int_eq(api_client_breaker_metrics(c, "/ok", &m), CB_OK);
        ck_assert_uint_eq(m.total_requests, 1);
    }
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* A User-Agent among the default headers replaces the library's own, and
 * an empty user_agent sends none at all. */
START_TEST(test_user_agent_sources)
{
    static const char *const lines[] = { "user-agent: mine/2", "X-After: 1", NULL };
    fixture                 *f = fixture_start();
    api_client_config        cfg;
    api_client              *c;
    api_response             r;
    cJSON                   *j;
    int                      n;

    memset(&cfg, 0, sizeof(cfg));
    cfg.default_headers = lines;
    cfg.user_agent = "ignored/1";
    c = tu_client_on(fixture_url(f), 1, &cfg);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/echo", NULL, &r), CB_OK);
    j = echo_json(&r);
    ck_assert_str_eq(echo_header(j, "User-Agent", &n), "mine/2");
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(echo_header(j, "X-After", NULL), "1");
    cJSON_Delete(j);
    api_response_free(&r);
    api_client_free(c);

    memset(&cfg, 0, sizeof(cfg));
    cfg.user_agent = "";
    c = tu_client_on(fixture_url(f), 1, &cfg);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/echo", NULL, &r), CB_OK);
    j = echo_json(&r);
    ck_assert_ptr_null(echo_header(j, "User-Agent", &n));
    ck_assert_int_eq(n, 0);
    cJSON_Delete(j);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* Without a cache every call goes out, and clearing the cache that is not
 * there (or of no client) is a no-op. */
START_TEST(test_cache_clear_without_cache)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    int               i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.cache.disabled = true;
    c = tu_client_on(fixture_url(f), 1, &cfg);
    ck_assert_ptr_nonnull(c);
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(api_get(c, "/cache/nc?cc=max-age%3D60", NULL, &r), CB_OK);
        ck_assert(!r.from_cache);
        api_response_free(&r);
        api_client_cache_clear(c);
    }
    api_client_cache_clear(NULL);
    ck_assert_uint_eq(fixture_requests_path(f, "/cache/nc"), 2);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* Events of every origin with their origin string. */
#define MAX_EVENTS 64
typedef struct ev_log {
    pthread_mutex_t lock;
    size_t          n;
    cb_event        ev[MAX_EVENTS];
    char            origin[MAX_EVENTS][64];
} ev_log;

static void on_event(const char *origin, const cb_event *ev, void *ud)
{
    ev_log *l = ud;

    pthread_mutex_lock(&l->lock);
    if (l->n < MAX_EVENTS) {
        l->ev[l->n] = *ev;
        snprintf(l->origin[l->n], sizeof(l->origin[0]), "%s", origin);
        l->n++;
    }
    pthread_mutex_unlock(&l->lock);
}

/* Index of the first event of type after start, or -1. */
static int find_event(const ev_log *l, size_t start, cb_event_type t)
{
    size_t i;

    for (i = start; i < l->n; i++)
        if (l->ev[i].type == t)
            return (int)i;
    return -1;
}

START_TEST(test_events)
{
    fixture          *f = fixture_start();
    tu_clock          tc;
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    ev_log            l;
    char              origin[64], lh[128], lh_origin[64];
    int               i, k;

    memset(&l, 0, sizeof(l));
    pthread_mutex_init(&l.lock, NULL);
    memset(&cfg, 0, sizeof(cfg));
    tu_clock_install(&tc, &cfg);
    cfg.circuit_breaker.failure_threshold = 2;
    cfg.circuit_breaker.reset_timeout_ms = 1000;
    cfg.on_event = on_event;
    cfg.event_data = &l;
    c = tu_client_on(fixture_url(f), 1, &cfg);
    snprintf(origin, sizeof(origin), "http://127.0.0.1:%u", (unsigned)fixture_port(f));
    for (i = 0; i < 2; i++) {
        api_get(c, "/status/500", NULL, &r);
        api_response_free(&r);
    }
    k = find_event(&l, 0, CB_EVENT_STATE_CHANGE);
    ck_assert_int_ge(k, 0);
    ck_assert_int_eq(l.ev[k].from, CB_CLOSED);
    ck_assert_int_eq(l.ev[k].to, CB_OPEN);
    ck_assert_str_eq(l.origin[k], origin);
    ck_assert_int_lt(find_event(&l, (size_t)k + 1, CB_EVENT_STATE_CHANGE), 0);

    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    k = find_event(&l, 0, CB_EVENT_REJECTED);
    ck_assert_int_ge(k, 0);
    ck_assert_str_eq(l.origin[k], origin);
    ck_assert_int_eq(l.ev[k].state, CB_OPEN);

    /* OPEN -> HALF_OPEN -> CLOSED, in order. */
    tc.now_ms += 1001;
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    api_response_free(&r);
    k = find_event(&l, (size_t)k + 1, CB_EVENT_STATE_CHANGE);
    ck_assert_int_ge(k, 0);
    ck_assert_int_eq(l.ev[k].from, CB_OPEN);
    ck_assert_int_eq(l.ev[k].to, CB_HALF_OPEN);
    k = find_event(&l, (size_t)k + 1, CB_EVENT_STATE_CHANGE);
    ck_assert_int_ge(k, 0);
    ck_assert_int_eq(l.ev[k].from, CB_HALF_OPEN);
    ck_assert_int_eq(l.ev[k].to, CB_CLOSED);
    ck_assert_str_eq(l.origin[k], origin);

    /* Another origin's events name that origin (lower-case host, port). */
    localhost_url(f, "/ok", lh, sizeof(lh));
    snprintf(lh_origin, sizeof(lh_origin), "http://localhost:%u", (unsigned)fixture_port(f));
    k = (int)l.n;
    ck_assert_int_eq(api_client_trip(c, lh), CB_OK);
    k = find_event(&l, (size_t)k, CB_EVENT_STATE_CHANGE);
    ck_assert_int_ge(k, 0);
    ck_assert_str_eq(l.origin[k], lh_origin);
    ck_assert_int_eq(l.ev[k].to, CB_OPEN);
    api_client_free(c);
    pthread_mutex_destroy(&l.lock);
    fixture_stop(f);
}
END_TEST

static size_t origin_count(api_client *c)
{
    api_client_metrics m;
    size_t             n;

    ck_assert_int_eq(api_client_metrics_get(c, &m), CB_OK);
    n = m.origin_count;
    api_client_metrics_free(&m);
    return n;
}

START_TEST(test_idle_eviction)
{
    fixture           *f = fixture_start();
    tu_clock           tc;
    api_client_config  cfg;
    api_client        *c;
    api_response       r;
    api_client_metrics m;
    char               ip[128], lh[128];

    memset(&cfg, 0, sizeof(cfg));
    tu_clock_install(&tc, &cfg);
    cfg.origin_idle_ms = 1000;
    cfg.retry.max_attempts = 1;
    cfg.circuit_breaker.reset_timeout_ms = 600000;
    c = api_client_new(&cfg);
    abs_url(f, "/ok", ip, sizeof(ip));
    localhost_url(f, "/ok", lh, sizeof(lh));
    ck_assert_int_eq(api_get(c, ip, NULL, &r), CB_OK);
    api_response_free(&r);
    ck_assert_int_eq(api_client_trip(c, lh), CB_OK);
    ck_assert_uint_eq(origin_count(c), 2);

    /* Not idle long enough yet. */
    tc.now_ms += 500;
    ck_assert_int_eq(api_client_breaker_state(c, "http://127.0.0.2:1/"), CB_CLOSED);
    ck_assert_uint_eq(origin_count(c), 2);

    /* Any later lookup sweeps: both go, the OPEN one too (nobody called it
     * for origin_idle_ms), and it comes back as a fresh CLOSED breaker. */
    tc.now_ms += 5000;
    ck_assert_int_eq(api_client_breaker_state(c, "http://127.0.0.2:1/"), CB_CLOSED);
    ck_assert_int_eq(api_client_metrics_get(c, &m), CB_OK);
    ck_assert_uint_eq(m.origin_count, 0);
    api_client_metrics_free(&m);
    ck_assert_int_eq(api_client_breaker_state(c, lh), CB_CLOSED);
    ck_assert_int_eq(api_get(c, lh, NULL, &r), CB_OK);
    api_response_free(&r);
    /* The evicted origin comes back fresh on next use. */
    ck_assert_int_eq(api_get(c, ip, NULL, &r), CB_OK);
    api_response_free(&r);
    ck_assert_uint_eq(origin_count(c), 2);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- threads --------------------------------------------------------------- */

#define N_THREADS 6
#define N_CALLS 60

typedef struct worker {
    api_client *c;
    int         id;
    uint64_t    attempts;
    unsigned    ok, http, open, other;
} worker;

static void *worker_run(void *arg)
{
    worker *w = arg;
    int     i;

    for (i = 0; i < N_CALLS; i++) {
        api_response r;
        const char  *path = (i + w->id) % 3 == 0 ? "/status/500" : "/ok";
        cb_err       e = api_get(w->c, path, NULL, &r);

        w->attempts += r.attempts;
        if (e == CB_OK)
            w->ok++;
        else if (e == CB_ERR_HTTP)
            w->http++;
        else if (e == CB_ERR_CIRCUIT_OPEN)
            w->open++;
        else
            w->other++;
        api_response_free(&r);
    }
    return NULL;
}

static void run_threads(const fixture *f, api_client *c)
{
    pthread_t          t[N_THREADS];
    worker             w[N_THREADS];
    uint64_t           attempts = 0;
    unsigned           calls = 0, other = 0;
    api_client_metrics m;
    size_t             i;

    for (i = 0; i < N_THREADS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].c = c;
        w[i].id = (int)i;
        ck_assert_int_eq(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    for (i = 0; i < N_THREADS; i++) {
        pthread_join(t[i], NULL);
        attempts += w[i].attempts;
        calls += w[i].ok + w[i].http + w[i].open + w[i].other;
        other += w[i].other;
    }
    ck_assert_uint_eq(calls, N_THREADS * N_CALLS);
    ck_assert_uint_eq(other, 0);
    ck_assert_uint_eq(attempts, fixture_requests(f));
    ck_assert_int_eq(api_client_metrics_get(c, &m), CB_OK);
    ck_assert_uint_eq(m.origin_count, 1);
    ck_assert_uint_eq(m.origins[0].attempts, attempts);
    ck_assert_uint_eq(m.origins[0].breaker.successes + m.origins[0].breaker.failures, attempts);
    ck_assert_uint_eq(m.origins[0].breaker.total_requests,
                      attempts + m.origins[0].breaker.rejected);
    api_client_metrics_free(&m);
}

START_TEST(test_threads_shared_client)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;

    /* A breaker that never opens: every call goes out. */
    memset(&cfg, 0, sizeof(cfg));
    cfg.circuit_breaker.failure_threshold = 1000000;
    cfg.retry.max_attempts = 2;
    cfg.retry.base_delay_ms = 1;
    cfg.retry.max_delay_ms = 2;
    c = tu_client_on(fixture_url(f), 1, &cfg);
    ck_assert_ptr_nonnull(c);
    run_threads(f, c);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_threads_flapping_breaker)
{
    fixture          *f = fixture_start();
    api_client_config cfg;
    api_client       *c;

    /* A breaker that opens and recovers all the time under the threads. */
    memset(&cfg, 0, sizeof(cfg));
    cfg.circuit_breaker.failure_threshold = 3;
    cfg.circuit_breaker.reset_timeout_ms = 5;
    cfg.circuit_breaker.half_open_max = 2;
    c = tu_client_on(fixture_url(f), 1, &cfg);
    ck_assert_ptr_nonnull(c);
    run_threads(f, c);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- the suite ----------------------------------------------------------- */

static Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *tc;

    tc = tcase_create("basics");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_new_free);
    tcase_add_test(tc, test_create_says_why);
    tcase_add_loop_test(tc, test_bad_base_url, 0, (int)(sizeof(bad_bases) / sizeof(bad_bases[0])));
    tcase_add_test(tc, test_good_base_urls);
    tcase_add_test(tc, test_bad_default_headers);
    tcase_add_test(tc, test_get_ok);
    tcase_add_test(tc, test_methods_with_body);
    tcase_add_test(tc, test_head);
    tcase_add_test(tc, test_default_headers_and_user_agent);
    tcase_add_test(tc, test_user_agent_sources);
    tcase_add_test(tc, test_cache_clear_without_cache);
    tcase_add_test(tc, test_header_injection);
    tcase_add_test(tc, test_body_limit);
    tcase_add_test(tc, test_request_too_large);
    tcase_add_test(tc, test_response_overwrite_and_free);
    tcase_add_test(tc, test_keep_alive);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_err_http);
    tcase_add_test(tc, test_err_connect);
    tcase_add_test(tc, test_err_connect_outage);
    tcase_add_test(tc, test_err_timeout);
    tcase_add_test(tc, test_err_transport);
    tcase_add_test(tc, test_err_circuit_open_and_strerror);
    suite_add_tcase(s, tc);

    tc = tcase_create("urls");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_bad_paths, 0, (int)(sizeof(bad_paths) / sizeof(bad_paths[0])));
    tcase_add_test(tc, test_good_paths);
    tcase_add_test(tc, test_base_prefix);
    tcase_add_test(tc, test_no_base_url);
    tcase_add_test(tc, test_redirect_off_by_default);
    tcase_add_test(tc, test_redirect_same_origin);
    tcase_add_test(tc, test_redirect_cross_origin);
    suite_add_tcase(s, tc);

    tc = tcase_create("breakers");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_breaker_opens_and_recovers);
    tcase_add_test(tc, test_breaker_per_origin);
    tcase_add_test(tc, test_breaker_classification);
    tcase_add_test(tc, test_breaker_connect_errors_and_timeouts);
    tcase_add_test(tc, test_breaker_custom_classifier);
    tcase_add_test(tc, test_breaker_per_request_config);
    tcase_add_test(tc, test_set_origin_breaker);
    tcase_add_test(tc, test_trip_and_reset);
    tcase_add_test(tc, test_events);
    tcase_add_test(tc, test_idle_eviction);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_threads_shared_client);
    tcase_add_test(tc, test_threads_flapping_breaker);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(client_suite()); }
