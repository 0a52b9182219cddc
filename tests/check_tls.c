/*
 * TLS through the public API against the fixture serving HTTPS on loopback
 * (fixture_start_tls), with certificates made by the test itself
 * (tests/helpers/tlsgen.c): ca_file reaches libcurl, verification of the
 * peer and of the host name cannot be escaped, a refused handshake sends
 * no request and counts as a failure for the origin's breaker.
 */
/* cbhttp: threaded */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbhttp.h>

#include "fixture.h"

#include "helpers/testutil.h"
#include "helpers/tlsgen.h"

/* Made once for the suite, before the tests fork. */
static tu_tls      pki;
static tu_tls_cert self_signed; /* the right names, but no CA vouches for it */
static tu_tls_cert wrong_host;  /* from the CA, for example.invalid only */
static bool        pki_ok;

static void pki_setup(void)
{
    pki_ok = tu_tls_init(&pki) &&
             tu_tls_issue(&pki, "self", "IP:127.0.0.1,DNS:localhost", true, &self_signed) &&
             tu_tls_issue(&pki, "wrong", "DNS:example.invalid", false, &wrong_host);
}

static void pki_teardown(void) { tu_tls_cleanup(&pki); }

/* An HTTPS fixture presenting cert. */
static fixture *tls_fixture(const tu_tls_cert *cert)
{
    char    *pem, *key;
    fixture *f;

    ck_assert_msg(pki_ok, "could not generate certificates with openssl");
    pem = tu_read_file(cert->pem, NULL);
    key = tu_read_file(cert->key, NULL);
    ck_assert_ptr_nonnull(pem);
    ck_assert_ptr_nonnull(key);
    f = fixture_start_tls(pem, key);
    free(pem);
    free(key);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(strncmp(fixture_url(f), "https://127.0.0.1:", 18), 0);
    return f;
}

/* A client of base; ca_file NULL means the system bundle. One attempt per
 * call, no cache: each call is one handshake. */
static api_client *tls_client(const char *base, const char *ca_file)
{
    api_client_config cfg;
    api_client       *c;

    memset(&cfg, 0, sizeof cfg);
    cfg.base_url = base;
    cfg.ca_file = ca_file;
    cfg.retry.max_attempts = 1;
    cfg.cache.disabled = true;
    cfg.timeout_ms = 10000;
    c = api_client_new(&cfg);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* The call fails as a refused TLS handshake: a transport error with
 * libcurl's reason, no status, and nothing reached the server's HTTP layer. */
static void assert_refused(fixture *f, cb_err err, const api_response *r)
{
    ck_assert_int_eq(err, CB_ERR_TRANSPORT);
    ck_assert_int_eq(r->status, 0);
    ck_assert_msg(r->error[0] != '\0', "no error detail");
    ck_assert_uint_eq(r->attempts, 1);
    ck_assert_uint_eq(fixture_requests(f), 0);
}

START_TEST(test_ca_file_verifies)
{
    fixture     *f = tls_fixture(&pki.server);
    api_client  *c = tls_client(fixture_url(f), pki.ca.pem);
    api_response r;

    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"path\":\"/ok\""));
    api_response_free(&r);

    /* A body both ways over the same verified connection. */
    ck_assert_int_eq(api_request(c, "POST", "/echo", "sealed", 6, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(api_response_header(&r, "X-Echo-Method"), "POST");
    ck_assert_ptr_nonnull(strstr(r.body, "\"body\":\"sealed\""));
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 2);
    ck_assert_uint_eq(fixture_connections(f), 1);
    api_client_free(c);

    /* The DNS name in the certificate works as well as the address. */
    char base[64];
    snprintf(base, sizeof base, "https://localhost:%u", (unsigned)fixture_port(f));
    c = tls_client(base, pki.ca.pem);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_system_bundle_refuses)
{
    fixture     *f = tls_fixture(&pki.server);
    api_client  *c = tls_client(fixture_url(f), NULL);
    api_response r;

    cb_err err = api_get(c, "/ok", NULL, &r);
    assert_refused(f, err, &r);
    ck_assert_msg(strstr(r.error, "certificate") != NULL, "error: %s", r.error);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_self_signed_refused)
{
    fixture     *f = tls_fixture(&self_signed);
    api_client  *c = tls_client(fixture_url(f), pki.ca.pem);
    api_response r;

    cb_err err = api_get(c, "/ok", NULL, &r);
    assert_refused(f, err, &r);
    ck_assert_msg(strstr(r.error, "certificate") != NULL, "error: %s", r.error);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_wrong_host_refused)
{
    fixture     *f = tls_fixture(&wrong_host);
    api_client  *c = tls_client(fixture_url(f), pki.ca.pem);
    api_response r;

    /* The chain is good (the CA signed it); the name is not 127.0.0.1. */
    cb_err err = api_get(c, "/ok", NULL, &r);
    assert_refused(f, err, &r);
    ck_assert_msg(strstr(r.error, "127.0.0.1") != NULL, "error: %s", r.error);
    api_response_free(&r);
    api_client_free(c);

    char base[64];
    snprintf(base, sizeof base, "https://localhost:%u", (unsigned)fixture_port(f));
    c = tls_client(base, pki.ca.pem);
    err = api_get(c, "/ok", NULL, &r);
    assert_refused(f, err, &r);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_bad_ca_file)
{
    fixture     *f = tls_fixture(&pki.server);
    char         missing[TU_TLS_PATH + 16];
    api_response r;

    /* A CA file that does not exist, or that holds another issuer:
     * verification stays on, the call fails. */
    snprintf(missing, sizeof missing, "%s/absent.pem", pki.dir);
    api_client *c = tls_client(fixture_url(f), missing);
    cb_err      err = api_get(c, "/ok", NULL, &r);
    assert_refused(f, err, &r);
    api_response_free(&r);
    api_client_free(c);

    c = tls_client(fixture_url(f), self_signed.pem);
    err = api_get(c, "/ok", NULL, &r);
    assert_refused(f, err, &r);
    api_response_free(&r);
    api_client_free(c);

    /* The server's own certificate as ca_file is a pin that works: libcurl
     * 7.88 with OpenSSL accepts a trust anchor that is not self-signed
     * (X509_V_FLAG_PARTIAL_CHAIN, unless CURLSSLOPT_NO_PARTIALCHAIN). */
    c = tls_client(fixture_url(f), pki.server.pem);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_refusal_trips_breaker)
{
    fixture          *f = tls_fixture(&self_signed);
    api_client_config cfg;
    api_response      r;
    cb_metrics        m;

    memset(&cfg, 0, sizeof cfg);
    cfg.base_url = fixture_url(f);
    cfg.ca_file = pki.ca.pem;
    cfg.retry.max_attempts = 1;
    cfg.cache.disabled = true;
    cfg.circuit_breaker.failure_threshold = 2;
    cfg.circuit_breaker.reset_timeout_ms = 60000;
    api_client *c = api_client_new(&cfg);
    ck_assert_ptr_nonnull(c);

    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_TRANSPORT);
        api_response_free(&r);
    }
    ck_assert_int_eq(api_client_breaker_state(c, "/ok"), CB_OPEN);
    ck_assert_int_eq(api_client_breaker_metrics(c, "/ok", &m), CB_OK);
    ck_assert_uint_eq(m.failures, 2);
    ck_assert_uint_eq(m.successes, 0);
    ck_assert_uint_eq(m.times_opened, 1);

    /* Open: the next call is rejected without a handshake. */
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(r.attempts, 0);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(f), 0);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_https_to_plain_server)
{
    fixture     *f = fixture_start();
    char         base[64];
    api_response r;

    ck_assert_ptr_nonnull(f);
    snprintf(base, sizeof base, "https://127.0.0.1:%u", (unsigned)fixture_port(f));
    api_client *c = tls_client(base, pki_ok ? pki.ca.pem : NULL);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_TRANSPORT);
    ck_assert_int_eq(r.status, 0);
    api_response_free(&r);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_tls_outage_and_back)
{
    fixture       *f = tls_fixture(&pki.server);
    api_client    *c = tls_client(fixture_url(f), pki.ca.pem);
    unsigned short port = fixture_port(f);
    api_response   r;

    fixture_set_outage(f, FIXTURE_DOWN_REFUSE);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CONNECT);
    api_response_free(&r);
    /* The daemon started again on the same port presents the same certificate. */
    fixture_set_outage(f, FIXTURE_UP);
    ck_assert_uint_eq(fixture_port(f), port);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);

    fixture_set_outage(f, FIXTURE_DOWN_503);
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 503);
    api_response_free(&r);
    fixture_set_outage(f, FIXTURE_UP);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("https");

    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, pki_setup, pki_teardown);
    tcase_add_test(tc, test_ca_file_verifies);
    tcase_add_test(tc, test_system_bundle_refuses);
    tcase_add_test(tc, test_self_signed_refused);
    tcase_add_test(tc, test_wrong_host_refused);
    tcase_add_test(tc, test_bad_ca_file);
    tcase_add_test(tc, test_refusal_trips_breaker);
    tcase_add_test(tc, test_https_to_plain_server);
    tcase_add_test(tc, test_tls_outage_and_back);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(tls_suite()); }
