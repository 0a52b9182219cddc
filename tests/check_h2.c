/*
 * HTTPS with HTTP/2 against a private nginx (tests/helpers/nginx.h) that
 * serves a certificate for 127.0.0.1 signed by a CA made for the run
 * (tests/helpers/tlsgen.h), the client's ca_file: the blocking api_get
 * negotiates h2 and verifies the certificate against ca_file, and the async
 * engine multiplexes many calls to one origin over one connection.
 *
 * nginx tells what it saw: /proto answers $server_protocol ("HTTP/2.0")
 * and /conn its $connection serial, the same for every stream of one
 * connection. Without nginx (scripts/deps.sh installs nginx-light, and
 * make test runs it) the suite says so and passes without running.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "cbhttp.h"
#include "helpers/nginx.h"
#include "helpers/testutil.h"
#include "helpers/tlsgen.h"

#define INFLIGHT 50
#define RUN_LIMIT_MS 15000

static tu_tls    g_tls;
static tu_nginx *g_nginx;

static void nginx_up(void)
{
    char why[512];

    ck_assert_msg(tu_tls_init(&g_tls), "cannot make the test certificates (see stderr)");
    g_nginx = tu_nginx_start(&(tu_nginx_opts){ .cert_file = g_tls.server.pem,
                                               .key_file = g_tls.server.key,
                                               .access_log = true },
                             why, sizeof(why));
    ck_assert_msg(g_nginx != NULL, "%s", why);
}

static void nginx_down(void)
{
    tu_nginx_stop(g_nginx);
    g_nginx = NULL;
    tu_tls_cleanup(&g_tls);
}

/* A client on the nginx HTTPS origin, verifying against the generated CA;
 * no cache and no retries, so that every call is one request. */
static api_client *h2_client(void)
{
    api_client *c = api_client_new(&(api_client_config){
        .base_url = tu_nginx_tls_url(g_nginx),
        .ca_file = g_tls.ca.pem,
        .timeout_ms = 10000,
        .retry = { .max_attempts = 1 },
        .cache = { .disabled = true },
    });

    ck_assert_ptr_nonnull(c);
    return c;
}

/* The connection serial in a /conn body ("CONN REQUESTS"). */
static long conn_of(const api_response *r)
{
    char *end;
    long  v;

    ck_assert_ptr_nonnull(r->body);
    v = strtol(r->body, &end, 10);
    ck_assert_msg(end != r->body && *end == ' ', "not a /conn body: %s", r->body);
    return v;
}

/* ---- blocking ------------------------------------------------------------- */

START_TEST(test_blocking_get_over_h2)
{
    api_client  *c = h2_client();
    api_response r;
    const char  *proto;

    ck_assert_int_eq(api_get(c, "/proto", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "HTTP/2.0");
    proto = api_response_header(&r, "X-Proto");
    ck_assert_ptr_nonnull(proto);
    ck_assert_str_eq(proto, "HTTP/2.0");
    api_response_free(&r);

    /* A JSON body and a static file come through h2 unchanged. */
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"ok\":true}\n");
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/static/hello.json", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "{\"ok\":true,\"static\":true}\n");
    api_response_free(&r);
    api_client_free(c);
}
END_TEST

/* The control: the same nginx over plain HTTP says HTTP/1.1, so the h2
 * answer above is the server's word, not a constant. */
START_TEST(test_blocking_plain_is_http11)
{
    api_client *c = api_client_new(
        &(api_client_config){ .base_url = tu_nginx_url(g_nginx), .cache = { .disabled = true } });
    api_response r;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/proto", NULL, &r), CB_OK);
    ck_assert_str_eq(r.body, "HTTP/1.1");
    api_response_free(&r);
    api_client_free(c);
}
END_TEST

/* Sequential blocking calls on one thread reuse their h2 connection. */
START_TEST(test_blocking_h2_keeps_connection)
{
    api_client  *c = h2_client();
    api_response r;
    long         first = -1;
    int          i;

    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(api_get(c, "/conn", NULL, &r), CB_OK);
        ck_assert_str_eq(api_response_header(&r, "X-Proto"), "HTTP/2.0");
        if (i == 0)
            first = conn_of(&r);
        else
            ck_assert_int_eq(conn_of(&r), first);
        api_response_free(&r);
    }
    api_client_free(c);
}
END_TEST

/* A certificate the client cannot verify is refused: without ca_file the
 * system's CAs do not know ours. */
START_TEST(test_blocking_unknown_ca_refused)
{
    api_client  *c = api_client_new(&(api_client_config){
         .base_url = tu_nginx_tls_url(g_nginx),
         .retry = { .max_attempts = 1 },
         .cache = { .disabled = true },
    });
    api_response r;
    cb_err       err;

    ck_assert_ptr_nonnull(c);
    err = api_get(c, "/ok", NULL, &r);
    ck_assert_msg(err != CB_OK && err != CB_ERR_HTTP, "got %s", cb_strerror(err));
    ck_assert_int_eq(r.status, 0);
    api_response_free(&r);
    api_client_free(c);
}
END_TEST

/* ---- async: multiplexing --------------------------------------------------- */

typedef struct slot {
    api_response resp;
    cb_err       err;
    int          done; /* times done ran */
} slot;

static void on_done(cb_err err, api_response *resp, void *user_data)
{
    slot *s = user_data;

    ck_assert_ptr_eq(resp, &s->resp);
    s->err = err;
    s->done++;
}

/* Runs a until nothing is in flight, within RUN_LIMIT_MS. */
static void run_until_idle(api_async *a)
{
    int waited = 0, left;

    while ((left = api_async_run(a, 100)) > 0 && waited < RUN_LIMIT_MS)
        waited += 100; /* an upper bound: run returns early when work is done */
    ck_assert_int_eq(left, 0);
    ck_assert_uint_eq(api_async_pending(a), 0);
}

/* INFLIGHT GETs of /conn submitted at once on a; returns how many distinct
 * connections carried them, and every serial in conns[]. */
static int multiplexed_round(api_async *a, long *conns)
{
    slot *s = calloc(INFLIGHT, sizeof(*s));
    int   i, j, distinct = 0;

    ck_assert_ptr_nonnull(s);
    for (i = 0; i < INFLIGHT; i++)
        ck_assert_int_eq(api_async_get(a, "/conn", NULL, &s[i].resp, on_done, &s[i]), CB_OK);
    ck_assert_uint_eq(api_async_pending(a), INFLIGHT);
    run_until_idle(a);
    for (i = 0; i < INFLIGHT; i++) {
        ck_assert_int_eq(s[i].done, 1);
        ck_assert_msg(s[i].err == CB_OK, "call %d: %s (%s)", i, cb_strerror(s[i].err),
                      s[i].resp.error);
        ck_assert_int_eq(s[i].resp.status, 200);
        ck_assert_str_eq(api_response_header(&s[i].resp, "X-Proto"), "HTTP/2.0");
        conns[i] = conn_of(&s[i].resp);
        api_response_free(&s[i].resp);
    }
    free(s);
    for (i = 0; i < INFLIGHT; i++) {
        for (j = 0; j < i && conns[j] != conns[i]; j++)
            ;
        distinct += j == i;
    }
    return distinct;
}

/* 50 calls in flight to one https origin share ONE connection: the engine
 * asks libcurl to multiplex (CURLPIPE_MULTIPLEX) and to wait for the first
 * connection to know whether it can (CURLOPT_PIPEWAIT), instead of opening
 * one connection per call. A second round reuses that connection. */
START_TEST(test_async_multiplexes_one_connection)
{
    api_client *c = h2_client();
    api_async  *a = api_async_new(c);
    long        first[INFLIGHT], second[INFLIGHT];
    int         d;

    ck_assert_ptr_nonnull(a);
    d = multiplexed_round(a, first);
    ck_assert_msg(d == 1, "%d calls in flight used %d connections (first: %ld, last: %ld)",
                  INFLIGHT, d, first[0], first[INFLIGHT - 1]);
    d = multiplexed_round(a, second);
    ck_assert_msg(d == 1, "second round: %d connections", d);
    ck_assert_int_eq(second[0], first[0]);
    api_async_free(a);
    api_client_free(c);
}
END_TEST

/* nginx's own log agrees: every /conn request of one engine's rounds came
 * on one connection, and all of them were HTTP/2. */
START_TEST(test_async_access_log_agrees)
{
    api_client *c = h2_client();
    api_async  *a = api_async_new(c);
    long        conns[INFLIGHT], seen = -1;
    char        line[512];
    FILE       *fp;
    int         lines = 0;

    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(multiplexed_round(a, conns), 1);
    api_async_free(a);
    api_client_free(c);

    /* nginx writes its log line when a request ends, before the response
     * reaches us: every line is there already. */
    fp = fopen(tu_nginx_access_log(g_nginx), "r");
    ck_assert_ptr_nonnull(fp);
    while (fgets(line, sizeof(line), fp)) {
        long conn;
        char proto[32];

        if (sscanf(line, "%ld %*d %31s", &conn, proto) != 2 || conn != conns[0])
            continue;
        ck_assert_str_eq(proto, "HTTP/2.0");
        ck_assert_msg(strstr(line, "\"GET /conn HTTP/2.0\" 200"), "%s", line);
        seen = conn;
        lines++;
    }
    fclose(fp);
    ck_assert_int_eq(seen, conns[0]);
    ck_assert_int_eq(lines, INFLIGHT);
}
END_TEST

static Suite *h2_suite(void)
{
    Suite *s = suite_create("h2");
    TCase *tc = tcase_create("blocking");

    /* Unchecked: nginx starts once, in the runner, before the tests fork. */
    tcase_add_unchecked_fixture(tc, nginx_up, nginx_down);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_blocking_get_over_h2);
    tcase_add_test(tc, test_blocking_plain_is_http11);
    tcase_add_test(tc, test_blocking_h2_keeps_connection);
    tcase_add_test(tc, test_blocking_unknown_ca_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("async");
    tcase_add_unchecked_fixture(tc, nginx_up, nginx_down);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_async_multiplexes_one_connection);
    tcase_add_test(tc, test_async_access_log_agrees);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (!tu_nginx_binary()) {
        printf("check_h2: skipped: nginx is not installed (scripts/deps.sh installs "
               "nginx-light; make test runs it)\n");
        return EXIT_SUCCESS;
    }
    return tu_run_suite(h2_suite());
}
