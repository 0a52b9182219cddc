/* cbhttp: threaded */
/*
 * The transport's reading of responses, through the public API: framing
 * fields in every spelling a server may use (lists, tabs, bare LF line
 * ends, values libcurl lets through and the library refuses), header names
 * that only resemble the framing ones, redirects that cannot be followed,
 * bodies larger than what is allocated ahead, and more concurrent calls
 * than the handle pools keep.
 *
 * Responses the fixture cannot produce come from a scripted listener of
 * this file: a thread on an ephemeral loopback port that reads one request
 * head per connection, answers with the bytes it was given and closes.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>

#include "cbhttp.h"
#include "fixture.h"

#include "helpers/clients.h"
#include "helpers/testutil.h"

/* ---- the scripted listener ------------------------------------------------- */

typedef struct script {
    int             fd;
    unsigned short  port;
    pthread_t       thread;
    pthread_mutex_t lock;
    const char     *reply; /* the bytes every connection gets */
    unsigned        served;
    char            url[64];
} script;

/* Reads until the end of the request head (or the peer stops sending). */
static void script_read_head(int c)
{
    char   buf[4096];
    size_t have = 0;

    for (;;) {
        ssize_t n = recv(c, buf + have, sizeof(buf) - 1 - have, 0);

        if (n <= 0)
            return;
        have += (size_t)n;
        buf[have] = '\0';
        if (strstr(buf, "\r\n\r\n") || have == sizeof(buf) - 1)
            return;
    }
}

static void *script_main(void *arg)
{
    script *s = arg;

    for (;;) {
        int         c = accept(s->fd, NULL, NULL);
        const char *reply;

        if (c < 0)
            return NULL; /* shut down */
        script_read_head(c);
        pthread_mutex_lock(&s->lock);
        reply = s->reply;
        s->served++;
        pthread_mutex_unlock(&s->lock);
        if (reply) {
            size_t off = 0, len = strlen(reply);

            while (off < len) {
                ssize_t n = send(c, reply + off, len - off, MSG_NOSIGNAL);

                if (n <= 0)
                    break;
                off += (size_t)n;
            }
        }
        shutdown(c, SHUT_WR);
        /* Let the client read to the end before the close. */
        script_read_head(c);
        close(c);
    }
}

static void script_start(script *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->fd = tu_listen_loopback(16, &s->port, s->url, sizeof(s->url));
    ck_assert_int_eq(pthread_create(&s->thread, NULL, script_main, s), 0);
}

static void script_reply(script *s, const char *reply)
{
    pthread_mutex_lock(&s->lock);
    s->reply = reply;
    pthread_mutex_unlock(&s->lock);
}

static void script_stop(script *s)
{
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->fd);
    pthread_mutex_destroy(&s->lock);
}

/* A client on the listener: one attempt, no cache, so that each call is
 * exactly one exchange. */
static api_client *script_client(const script *s, size_t max_body)
{
    api_client_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.cache.disabled = true;
    cfg.max_body_bytes = max_body;
    return tu_client_on(s->url, 1, &cfg);
}

/* ---- framing fields ----------------------------------------------------------- */

typedef struct framing_case {
    const char *name;
    const char *reply;
    cb_err      want;
    const char *body; /* with CB_OK: the body; otherwise a part of the error */
} framing_case;

static const framing_case framing[] = {
    { "bare LF line ends", "HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 2\n\nok",
      CB_OK, "ok" },
    { "tab and blanks around the length", "HTTP/1.1 200 OK\r\nContent-Length:\t2 \t\r\n\r\nok",
      CB_OK, "ok" },
    { "a list of equal lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2,\t2 , 2\r\n\r\nok", CB_OK,
      "ok" },
    { "names as long as the framing ones",
      "HTTP/1.1 200 OK\r\nX-Abcdefghijkl: 14\r\nX-Abcdefghijklmno: 17\r\n"
      "Content-Length: 2\r\n\r\nok",
      CB_OK, "ok" },
    /* libcurl 7.88 refuses a header line without a colon itself. */
    { "a header line without a colon",
      "HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 2\r\n\r\nok", CB_ERR_TRANSPORT, "colon" },
    /* libcurl reads the 2 and ignores the rest: the library does not. */
    { "a length followed by junk", "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok",
      CB_ERR_TRANSPORT, "framing" },
    { "two lists that disagree",
      "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 3\r\n\r\nok", CB_ERR_TRANSPORT,
      "framing" },
    /* libcurl refuses this one itself. */
    { "a length that is no number", "HTTP/1.1 200 OK\r\nContent-Length: ,\r\n\r\nok",
      CB_ERR_TRANSPORT, "Content-Length" },
    /* RFC 9112 5.2: an obsolete folded line (no colon of its own) joins
     * the field before it; the framing check passes over it. */
    { "an obs-fold continuation line",
      "HTTP/1.1 200 OK\r\nX-Fold: a\r\n  b\r\nContent-Length: 2\r\n\r\nok", CB_OK, "ok" },
    /* RFC 9110 5.6.1: empty list elements are allowed (libcurl takes it). */
    { "an empty list element at the end", "HTTP/1.1 200 OK\r\nContent-Length: 2,\r\n\r\nok", CB_OK,
      "ok" },
};

START_TEST(test_framing)
{
    const framing_case *t = &framing[_i];
    script              s;
    api_client         *c;
    api_response        r;
    cb_err              rc;

    script_start(&s);
    script_reply(&s, t->reply);
    c = script_client(&s, 0);
    ck_assert_ptr_nonnull(c);
    rc = api_get(c, "/x", NULL, &r);
    ck_assert_msg(rc == t->want, "%s: got %s (%s), want %s", t->name, cb_strerror(rc), r.error,
                  cb_strerror(t->want));
    ck_assert_ptr_nonnull(r.body);
    if (rc == CB_OK) {
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(r.body, t->body);
    } else {
        ck_assert_int_eq(r.status, 0);
        ck_assert_uint_eq(r.body_len, 0);
        ck_assert_msg(strstr(r.error, t->body) != NULL, "%s: %s", t->name, r.error);
    }
    api_response_free(&r);
    api_client_free(c);
    script_stop(&s);
}
END_TEST

/* Header lines after a bare-LF status line are kept as headers, and names
 * of framing length that are not framing fields are ordinary headers. */
START_TEST(test_headers_kept)
{
    script       s;
    api_client  *c;
    api_response r;

    script_start(&s);
    c = script_client(&s, 0);
    ck_assert_ptr_nonnull(c);
    script_reply(&s, framing[0].reply);
    ck_assert_int_eq(api_get(c, "/x", NULL, &r), CB_OK);
    ck_assert_str_eq(api_response_header(&r, "content-type"), "text/plain");
    api_response_free(&r);
    script_reply(&s, framing[3].reply);
    ck_assert_int_eq(api_get(c, "/x", NULL, &r), CB_OK);
    ck_assert_str_eq(api_response_header(&r, "X-Abcdefghijkl"), "14");
    ck_assert_str_eq(api_response_header(&r, "X-Abcdefghijklmno"), "17");
    ck_assert_ptr_null(api_response_header(&r, "X-Absent"));
    ck_assert_ptr_null(api_response_header(&r, NULL));
    ck_assert_ptr_null(api_response_header(NULL, "X-Abcdefghijkl"));
    api_response_free(&r);
    /* A folded line is joined to its field with one blank. */
    script_reply(&s, "HTTP/1.1 200 OK\r\nX-Fold: a\r\n  b\r\nContent-Length: 2\r\n\r\nok");
    ck_assert_int_eq(api_get(c, "/x", NULL, &r), CB_OK);
    ck_assert_str_eq(api_response_header(&r, "X-Fold"), "a b");
    ck_assert_str_eq(r.body, "ok");
    api_response_free(&r);
    api_client_free(c);
    script_stop(&s);
}
END_TEST

/* A Content-Length beyond int64: with a body limit libcurl refuses it as
 * too large; with none (max_body_bytes SIZE_MAX) libcurl lets it pass, and
 * the library's own reading refuses it as broken framing. */
/* A field line that begins "HTTP/" inside a header block is a malformed
 * field, not the status line of a new response: the headers before it
 * stay, and the framing check still sees the whole block. */
START_TEST(test_http_prefixed_field)
{
    script       s;
    api_client  *c;
    api_response r;
    cb_err       rc;

    script_start(&s);
    c = script_client(&s, 0);
    ck_assert_ptr_nonnull(c);
    script_reply(&s, "HTTP/1.1 200 OK\r\nX-Before: 1\r\nHTTP/x: y\r\nContent-Length: 2\r\n\r\nok");
    ck_assert_int_eq(api_get(c, "/x", NULL, &r), CB_OK);
    ck_assert_str_eq(r.body, "ok");
    ck_assert_ptr_nonnull(api_response_header(&r, "X-Before"));
    api_response_free(&r);
    script_reply(&s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nHTTP/z: 1\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
    rc = api_get(c, "/x", NULL, &r);
    ck_assert_msg(rc == CB_ERR_TRANSPORT, "%s", cb_strerror(rc));
    api_response_free(&r);
    api_client_free(c);
    script_stop(&s);
}
END_TEST

START_TEST(test_length_overflow)
{
    static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nok";
    script            s;
    api_client       *c;
    api_response      r;
    cb_err            rc;

    script_start(&s);
    script_reply(&s, reply);
    c = script_client(&s, 0);
    ck_assert_ptr_nonnull(c);
    rc = api_get(c, "/x", NULL, &r);
    ck_assert_msg(rc == CB_ERR_TOO_LARGE, "%s (%s)", cb_strerror(rc), r.error);
    api_response_free(&r);
    api_client_free(c);

    c = script_client(&s, SIZE_MAX);
    ck_assert_ptr_nonnull(c);
    rc = api_get(c, "/x", NULL, &r);
    ck_assert_msg(rc == CB_ERR_TRANSPORT, "%s (%s)", cb_strerror(rc), r.error);
    ck_assert_msg(strstr(r.error, "framing") != NULL, "%s", r.error);
    ck_assert_int_eq(r.status, 0);
    api_response_free(&r);
    api_client_free(c);
    script_stop(&s);
}
END_TEST

/* ---- against the fixture ---------------------------------------------------- */

static fixture *fx;

static void fx_setup(void)
{
    fx = fixture_start();
    ck_assert_ptr_nonnull(fx);
}

static void fx_teardown(void)
{
    fixture_stop(fx);
    fx = NULL;
}

static api_client *redirect_client(void)
{
    api_client_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.cache.disabled = true;
    cfg.max_redirects = 3;
    return tu_client_on(fixture_url(fx), 1, &cfg);
}

/* A redirect whose Location is longer than the library follows (8 KiB) is
 * handed back as it is, not followed. */
START_TEST(test_redirect_location_too_long)
{
    api_client  *c = redirect_client();
    api_response r;
    size_t       n = 9000;
    char        *path = malloc(n + 64);
    int          k;

    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(path);
    k = snprintf(path, n + 64, "/redirect?to=/ok%%3Fpad%%3D");
    memset(path + k, 'p', n);
    path[k + n] = '\0';
    ck_assert_int_eq(api_get(c, path, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 302);
    ck_assert_ptr_nonnull(api_response_header(&r, "Location"));
    ck_assert_uint_gt(strlen(api_response_header(&r, "Location")), 8192);
    ck_assert_uint_eq(fixture_requests_path(fx, "/ok"), 0);
    api_response_free(&r);
    /* A short one to the same place is followed. */
    ck_assert_int_eq(api_get(c, "/redirect?to=/ok", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(fixture_requests_path(fx, "/ok"), 1);
    api_response_free(&r);
    free(path);
    api_client_free(c);
}
END_TEST

/* A Location the library would not take from a caller (an '@' in its
 * path) ends the call with the reason, and the target is never asked. */
START_TEST(test_redirect_to_refused_url)
{
    api_client  *c = redirect_client();
    api_response r;
    cb_err       rc;

    ck_assert_ptr_nonnull(c);
    rc = api_get(c, "/redirect?to=/ok/a%40b", NULL, &r);
    ck_assert_int_eq(rc, CB_ERR_INVALID);
    ck_assert_msg(strstr(r.error, "'@'") != NULL, "%s", r.error);
    /* What the caller holds is the redirect that could not be followed. */
    ck_assert_int_eq(r.status, 302);
    ck_assert_str_eq(api_response_header(&r, "Location"), "/ok/a@b");
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert_uint_eq(fixture_requests_path(fx, "/ok"), 0);
    api_response_free(&r);
    api_client_free(c);
}
END_TEST

/* A redirect status without a Location is the answer itself. */
START_TEST(test_redirect_without_location)
{
    api_client  *c = redirect_client();
    api_response r;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/status/302", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 302);
    ck_assert_ptr_null(api_response_header(&r, "Location"));
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(fx), 1);
    api_client_free(c);
}
END_TEST

/* A 303 answering a HEAD is followed as a HEAD (RFC 9110 15.4.4). */
START_TEST(test_redirect_303_head_stays_head)
{
    api_client  *c = redirect_client();
    api_response r;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_request(c, "HEAD", "/redirect?to=/echo&code=303", NULL, 0, NULL, &r),
                     CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(api_response_header(&r, "X-Echo-Method"), "HEAD");
    ck_assert_uint_eq(r.body_len, 0);
    api_response_free(&r);
    api_client_free(c);
}
END_TEST

/* POST, PUT and PATCH without a body still send one, empty, with its
 * length: a server may refuse such a request without Content-Length. */
START_TEST(test_body_methods_without_body)
{
    static const char *const methods[] = { "POST", "PUT", "PATCH" };
    api_client_config        cfg;
    api_client              *c;
    api_response             r;
    size_t                   i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.cache.disabled = true;
    c = tu_client_on(fixture_url(fx), 1, &cfg);
    ck_assert_ptr_nonnull(c);
    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        char want[64];

        ck_assert_int_eq(api_request(c, methods[i], "/echo", NULL, 0, NULL, &r), CB_OK);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(api_response_header(&r, "X-Echo-Method"), methods[i]);
        ck_assert_str_eq(api_response_header(&r, "X-Echo-Body-Len"), "0");
        snprintf(want, sizeof(want), "\"Content-Length\":\"0\"");
        ck_assert_msg(strstr(r.body, want) != NULL, "%s: %s", methods[i], r.body);
        api_response_free(&r);
    }
    /* DELETE without a body sends none at all. */
    ck_assert_int_eq(api_request(c, "DELETE", "/echo", NULL, 0, NULL, &r), CB_OK);
    ck_assert_str_eq(api_response_header(&r, "X-Echo-Method"), "DELETE");
    ck_assert_ptr_null(strstr(r.body, "\"Content-Length\""));
    api_response_free(&r);
    api_client_free(c);
}
END_TEST

/* A body announced above what is allocated ahead (16 MiB) is read by
 * growing the buffer, and arrives whole. */
START_TEST(test_body_beyond_preallocation)
{
    const size_t      len = (16u << 20) + 1000;
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    char              path[64];
    size_t            i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.cache.disabled = true;
    cfg.max_body_bytes = 32u << 20;
    c = tu_client_on(fixture_url(fx), 1, &cfg);
    ck_assert_ptr_nonnull(c);
    snprintf(path, sizeof(path), "/large/%zu", len);
    ck_assert_int_eq(api_get(c, path, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, len);
    for (i = 0; i < len; i += 4099)
        ck_assert_int_eq(r.body[i], 'a' + (int)(i % 26));
    ck_assert_int_eq(r.body[len - 1], 'a' + (int)((len - 1) % 26));
    ck_assert_int_eq(r.body[len], '\0');
    api_response_free(&r);
    api_client_free(c);
}
END_TEST

/* ---- more calls at once than the pools keep --------------------------------- */

#define POOL_THREADS 72 /* the transport keeps 64 idle handles of each kind */

typedef struct pool_arg {
    api_client *c;
    cb_err      rc;
    long        status;
} pool_arg;

static void *pool_call(void *p)
{
    pool_arg    *a = p;
    api_response r;

    a->rc = api_get(a->c, "/delay/300", NULL, &r);
    a->status = r.status;
    api_response_free(&r);
    return NULL;
}

/* Every call of a burst wider than the pools succeeds; the handles beyond
 * the pool are closed when their calls end, and the client goes on. */
START_TEST(test_burst_beyond_pool)
{
    api_client_config cfg;
    api_client       *c;
    pthread_t         th[POOL_THREADS];
    pool_arg          args[POOL_THREADS];
    api_response      r;
    int               round, i;

    memset(&cfg, 0, sizeof(cfg));
    cfg.cache.disabled = true;
    cfg.circuit_breaker.failure_threshold = 1000;
    cfg.circuit_breaker.half_open_max = POOL_THREADS;
    c = tu_client_on(fixture_url(fx), 1, &cfg);
    ck_assert_ptr_nonnull(c);
    for (round = 0; round < 2; round++) {
        for (i = 0; i < POOL_THREADS; i++) {
            args[i].c = c;
            args[i].rc = CB_ERR_INVALID;
            ck_assert_int_eq(pthread_create(&th[i], NULL, pool_call, &args[i]), 0);
        }
        for (i = 0; i < POOL_THREADS; i++) {
            pthread_join(th[i], NULL);
            ck_assert_msg(args[i].rc == CB_OK, "call %d: %s", i, cb_strerror(args[i].rc));
            ck_assert_int_eq(args[i].status, 200);
        }
    }
    ck_assert_uint_eq(fixture_requests_path(fx, "/delay/"), 2 * POOL_THREADS);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);
    api_client_free(c);
}
END_TEST

static Suite *cov_transport_suite(void)
{
    Suite *s = suite_create("cov_transport");
    TCase *tc = tcase_create("scripted");

    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_framing, 0, sizeof(framing) / sizeof(framing[0]));
    tcase_add_test(tc, test_headers_kept);
    tcase_add_test(tc, test_http_prefixed_field);
    tcase_add_test(tc, test_length_overflow);
    suite_add_tcase(s, tc);

    tc = tcase_create("fixture");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_add_test(tc, test_redirect_location_too_long);
    tcase_add_test(tc, test_redirect_without_location);
    tcase_add_test(tc, test_redirect_to_refused_url);
    tcase_add_test(tc, test_redirect_303_head_stays_head);
    tcase_add_test(tc, test_body_methods_without_body);
    tcase_add_test(tc, test_body_beyond_preallocation);
    tcase_add_test(tc, test_burst_beyond_pool);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(cov_transport_suite()); }
