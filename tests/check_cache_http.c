/* The response cache through the client, against the fixture server: fresh
 * hits with no I/O and no breaker permit, revalidation (ETag and
 * Last-Modified), the Cache-Control directives, Expires, Age, Vary,
 * invalidation by unsafe methods, stale-if-error and max_stale_ms (also
 * from an open circuit), the per-request options, the bounds, HEAD,
 * concurrency, and the JSON helpers on real responses.
 *
 * The fake clock drives the breakers and the cache's notion of age; the
 * fixture's Date headers are real wall time, so every freshness check keeps
 * a margin of a few seconds around the boundary. */
/* cbhttp: threaded */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "cbhttp.h"
#include "fixture.h"
#include "helpers/clients.h"
#include "helpers/testutil.h"

/* ---- Test environment ---------------------------------------------------- */

typedef struct env {
    fixture    *f;
    tu_clock    tc;
    api_client *c;
} env;

/* Starts the fixture and a client on it with the fake clock, no retries
 * (so that attempts and request counts are exact) and the given cache and
 * breaker settings (NULL = defaults). */
static void env_start(env *e, const api_cache_config *cache, const cb_config *breaker)
{
    api_client_config cfg;

    memset(e, 0, sizeof(*e));
    e->f = fixture_start();
    ck_assert_ptr_nonnull(e->f);
    memset(&cfg, 0, sizeof(cfg));
    cfg.base_url = fixture_url(e->f);
    cfg.retry.max_attempts = 1;
    cfg.timeout_ms = 10000;
    if (cache)
        cfg.cache = *cache;
    if (breaker)
        cfg.circuit_breaker = *breaker;
    tu_clock_install(&e->tc, &cfg);
    e->c = api_client_new(&cfg);
    ck_assert_ptr_nonnull(e->c);
}

static void env_stop(env *e)
{
    api_client_free(e->c);
    fixture_stop(e->f);
}

static void advance(env *e, uint64_t ms) { e->tc.now_ms += ms; }

static uint64_t served(env *e, const char *prefix) { return fixture_requests_path(e->f, prefix); }

static uint64_t permits(env *e)
{
    cb_metrics m;

    if (api_client_breaker_metrics(e->c, "/", &m) != CB_OK)
        return 0;
    return m.total_requests;
}

static api_cache_metrics cache_metrics(env *e)
{
    api_client_metrics m;
    api_cache_metrics  cm;

    ck_assert_int_eq(api_client_metrics_get(e->c, &m), CB_OK);
    cm = m.cache;
    api_client_metrics_free(&m);
    return cm;
}

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* An admin request sent straight through libcurl, so that it touches
 * neither the client's breaker nor its cache. */
static void admin(env *e, const char *path)
{
    char  url[512];
    CURL *h = curl_easy_init();
    long  status = 0;

    ck_assert_ptr_nonnull(h);
    snprintf(url, sizeof(url), "%s%s", fixture_url(e->f), path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    ck_assert_int_eq(status, 200);
    curl_easy_cleanup(h);
}

/* GET with optional cache options and header lines. */
static cb_err get(env *e, const char *path, const api_cache_options *co, const char *const *headers,
                  api_response *r)
{
    api_options o;

    memset(&o, 0, sizeof(o));
    o.cache = co;
    o.headers = headers;
    return api_get(e->c, path, &o, r);
}

/* The "version" or "n" member of a fixture JSON body. */
static long long body_num(const api_response *r, const char *name)
{
    cJSON    *j = NULL;
    long long v = -1;

    if (api_response_json(r, &j) != CB_OK)
        return -1;
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, name)))
        v = (long long)cJSON_GetObjectItemCaseSensitive(j, name)->valuedouble;
    cJSON_Delete(j);
    return v;
}

/* Fetches path from the network and returns a copy of its body. */
static char *fetch_fresh(env *e, const char *path)
{
    api_response r;
    char        *body;

    ck_assert_int_eq(api_get(e->c, path, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(!r.from_cache);
    ck_assert_uint_eq(r.attempts, 1);
    body = strdup(r.body);
    api_response_free(&r);
    return body;
}

/* ---- Freshness and revalidation ------------------------------------------ */

START_TEST(test_fresh_hit_no_io_no_permit)
{
    env                e;
    api_response       r;
    char              *first;
    api_origin_metrics om;

    env_start(&e, NULL, NULL);
    first = fetch_fresh(&e, "/cache/a?cc=max-age=60");
    ck_assert_uint_eq(served(&e, "/cache/a"), 1);
    ck_assert_uint_eq(permits(&e), 1);

    advance(&e, 30000);
    ck_assert_int_eq(api_get(e.c, "/cache/a?cc=max-age=60", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.from_cache);
    ck_assert(!r.stale);
    ck_assert(!r.revalidated);
    ck_assert_uint_eq(r.attempts, 0);
    ck_assert_str_eq(r.body, first);
    ck_assert_uint_eq(r.body_len, strlen(first));
    ck_assert_ptr_nonnull(api_response_header(&r, "Cache-Control"));
    ck_assert_str_eq(api_response_header(&r, "cache-control"), "max-age=60");
    api_response_free(&r);

    /* Nothing reached the server and the breaker saw nothing. */
    ck_assert_uint_eq(served(&e, "/cache/a"), 1);
    ck_assert_uint_eq(permits(&e), 1);
    om = tu_origin_metrics(e.c, NULL);
    ck_assert_uint_eq(om.cache_hits, 1);
    ck_assert_uint_eq(om.cache_misses, 1);
    ck_assert_uint_eq(om.attempts, 1);
    free(first);
    env_stop(&e);
}
END_TEST

START_TEST(test_etag_revalidation_304)
{
    env                e;
    api_response       r;
    char              *first;
    api_origin_metrics om;
    const char        *path = "/cache/b?cc=max-age=10&etag=x";

    env_start(&e, NULL, NULL);
    first = fetch_fresh(&e, path);
    advance(&e, 15000);

    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    /* The server said 304 (it only does for a matching If-None-Match), the
     * caller sees the stored 200 and its body, not a new one. */
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.from_cache);
    ck_assert(r.revalidated);
    ck_assert(!r.stale);
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert_str_eq(r.body, first);
    ck_assert_str_eq(api_response_header(&r, "ETag"), "\"x-v1\"");
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/b"), 2);
    ck_assert_uint_eq(permits(&e), 2);

    /* The 304 refreshed the entry: fresh again for another max-age. */
    advance(&e, 5000);
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert_uint_eq(r.attempts, 0);
    ck_assert_str_eq(r.body, first);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/b"), 2);

    om = tu_origin_metrics(e.c, NULL);
    ck_assert_uint_eq(om.cache_revalidations, 1);
    ck_assert_uint_eq(om.cache_not_modified, 1);
    ck_assert_uint_eq(om.cache_hits, 1);
    free(first);
    env_stop(&e);
}
END_TEST

START_TEST(test_changed_resource_replaces_entry)
{
    env          e;
    api_response r;
    char        *first, *second;
    const char  *path = "/cache/c?cc=max-age=10&etag=x";

    env_start(&e, NULL, NULL);
    first = fetch_fresh(&e, path);
    ck_assert_int_eq(strstr(first, "\"version\":1") != NULL, 1);
    admin(&e, "/admin/cache/c/bump");
    advance(&e, 15000);

    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(!r.from_cache);
    ck_assert(!r.revalidated);
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert_int_eq(body_num(&r, "version"), 2);
    ck_assert_str_eq(api_response_header(&r, "ETag"), "\"x-v2\"");
    second = strdup(r.body);
    api_response_free(&r);

    /* The new body is what is stored now. */
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert_uint_eq(r.attempts, 0);
    ck_assert_str_eq(r.body, second);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/c"), 2);
    free(first);
    free(second);
    env_stop(&e);
}
END_TEST

START_TEST(test_last_modified_revalidation)
{
    env          e;
    api_response r;
    char        *first;
    const char  *path = "/cache/d?cc=max-age=10&lm=1";

    env_start(&e, NULL, NULL);
    first = fetch_fresh(&e, path);
    advance(&e, 15000);

    /* Only a validator is Last-Modified: If-Modified-Since earns a 304. */
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.from_cache);
    ck_assert(r.revalidated);
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert_str_eq(r.body, first);
    ck_assert_ptr_nonnull(api_response_header(&r, "Last-Modified"));
    api_response_free(&r);

    /* A newer version has a later Last-Modified: a full 200. */
    admin(&e, "/admin/cache/d/bump");
    advance(&e, 15000);
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(!r.from_cache);
    ck_assert(!r.revalidated);
    ck_assert_int_eq(body_num(&r, "version"), 2);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/d"), 3);
    free(first);
    env_stop(&e);
}
END_TEST

START_TEST(test_no_store_never_stored)
{
    env          e;
    api_response r;
    int          i;

    env_start(&e, NULL, NULL);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(api_get(e.c, "/cache/e?cc=no-store&etag=x&lm=1", NULL, &r), CB_OK);
        ck_assert_int_eq(r.status, 200);
        ck_assert(!r.from_cache);
        ck_assert_uint_eq(r.attempts, 1);
        api_response_free(&r);
    }
    ck_assert_uint_eq(served(&e, "/cache/e"), 3);
    ck_assert_uint_eq(cache_metrics(&e).entries, 0);
    ck_assert_uint_eq(cache_metrics(&e).stores, 0);

    /* A request's own no-store keeps a cacheable response out too. */
    {
        const char *const h[] = { "Cache-Control: no-store", NULL };

        ck_assert_int_eq(get(&e, "/cache/e2?cc=max-age=60", NULL, h, &r), CB_OK);
        api_response_free(&r);
        ck_assert_uint_eq(cache_metrics(&e).entries, 0);
    }
    env_stop(&e);
}
END_TEST

START_TEST(test_no_cache_revalidates_every_time)
{
    env          e;
    api_response r;
    char        *first;
    int          i;
    const char  *path = "/cache/f?cc=no-cache&etag=x";

    env_start(&e, NULL, NULL);
    first = fetch_fresh(&e, path);
    ck_assert_uint_eq(cache_metrics(&e).entries, 1);
    for (i = 0; i < 3; i++) {
        /* No time passes, yet every use asks the origin. */
        ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
        ck_assert_int_eq(r.status, 200);
        ck_assert(r.from_cache);
        ck_assert(r.revalidated);
        ck_assert_uint_eq(r.attempts, 1);
        ck_assert_str_eq(r.body, first);
        api_response_free(&r);
    }
    ck_assert_uint_eq(served(&e, "/cache/f"), 4);
    ck_assert_uint_eq(tu_origin_metrics(e.c, NULL).cache_hits, 0);
    ck_assert_uint_eq(tu_origin_metrics(e.c, NULL).cache_not_modified, 3);

    /* no-cache without a validator is useless to store. */
    free(first);
    first = fetch_fresh(&e, "/cache/f2?cc=no-cache");
    ck_assert_uint_eq(cache_metrics(&e).entries, 1);
    free(first);
    env_stop(&e);
}
END_TEST

START_TEST(test_must_revalidate_blocks_stale)
{
    env               e;
    api_response      r;
    char             *first;
    api_cache_options co = { .max_stale_ms = 600000 };
    const char       *path = "/cache/g?cc=max-age=10&cc=must-revalidate&cc=stale-if-error=600";

    env_start(&e, NULL, NULL);
    first = fetch_fresh(&e, path);
    /* Fresh it is served like any other entry. */
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    api_response_free(&r);

    advance(&e, 20000);
    fixture_set_outage(e.f, FIXTURE_DOWN_503);
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 503);
    ck_assert(!r.from_cache);
    ck_assert(!r.stale);
    api_response_free(&r);
    /* Not even when the caller would accept any staleness. */
    ck_assert_int_eq(get(&e, path, &co, NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 503);
    ck_assert(!r.from_cache);
    api_response_free(&r);
    ck_assert_uint_eq(tu_origin_metrics(e.c, NULL).cache_stale_served, 0);
    free(first);
    env_stop(&e);
}
END_TEST

START_TEST(test_expires_minus_date)
{
    env          e;
    api_response r;
    char        *first;
    const char  *path = "/cache/h?expires=30";

    env_start(&e, NULL, NULL);
    first = fetch_fresh(&e, path);
    ck_assert_ptr_nonnull(strstr(first, "\"version\":1"));

    advance(&e, 20000);
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert_uint_eq(r.attempts, 0);
    ck_assert_str_eq(r.body, first);
    ck_assert_ptr_nonnull(api_response_header(&r, "Expires"));
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/h"), 1);

    advance(&e, 15000); /* 35 s: past Expires - Date */
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(!r.from_cache);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/h"), 2);

    /* An Expires in the past: never fresh, not stored (no validator). */
    free(first);
    first = fetch_fresh(&e, "/cache/h2?expires=-60");
    free(first);
    first = fetch_fresh(&e, "/cache/h2?expires=-60");
    ck_assert_uint_eq(served(&e, "/cache/h2"), 2);
    free(first);
    env_stop(&e);
}
END_TEST

START_TEST(test_age_header_reduces_freshness)
{
    env          e;
    api_response r;
    char        *body;

    env_start(&e, NULL, NULL);
    /* The same max-age with and without an upstream Age of 50 s. */
    body = fetch_fresh(&e, "/cache/i?cc=max-age=60&age=50");
    free(body);
    body = fetch_fresh(&e, "/cache/i2?cc=max-age=60");
    free(body);

    advance(&e, 3000);
    ck_assert_int_eq(api_get(e.c, "/cache/i?cc=max-age=60&age=50", NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    api_response_free(&r);

    advance(&e, 17000); /* 20 s here + 50 s upstream > 60 s */
    ck_assert_int_eq(api_get(e.c, "/cache/i?cc=max-age=60&age=50", NULL, &r), CB_OK);
    ck_assert(!r.from_cache);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_int_eq(api_get(e.c, "/cache/i2?cc=max-age=60", NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert_uint_eq(r.attempts, 0);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/i2"), 1);
    ck_assert_uint_eq(served(&e, "/cache/i"), 3);
    env_stop(&e);
}
END_TEST

/* The value the fixture saw for Accept, from the body's "vary" object. */
static char *seen_accept(const api_response *r)
{
    cJSON *j = NULL, *v;
    char  *out = NULL;

    ck_assert_int_eq(api_response_json(r, &j), CB_OK);
    v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "vary"), "Accept");
    if (cJSON_IsString(v))
        out = strdup(v->valuestring);
    cJSON_Delete(j);
    return out;
}

START_TEST(test_vary_keeps_variants_apart)
{
    env               e;
    api_response      r;
    char             *a;
    const char *const json[] = { "Accept: application/json", NULL };
    const char *const text[] = { "Accept: text/plain", NULL };
    const char       *path = "/cache/j?cc=max-age=60&vary=Accept";
    int               i;

    env_start(&e, NULL, NULL);
    ck_assert_int_eq(get(&e, path, NULL, json, &r), CB_OK);
    ck_assert(!r.from_cache);
    api_response_free(&r);
    ck_assert_int_eq(get(&e, path, NULL, text, &r), CB_OK);
    ck_assert(!r.from_cache); /* another variant: to the server */
    a = seen_accept(&r);
    ck_assert_str_eq(a, "text/plain");
    free(a);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/j"), 2);

    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(get(&e, path, NULL, json, &r), CB_OK);
        ck_assert(r.from_cache);
        a = seen_accept(&r);
        ck_assert_str_eq(a, "application/json");
        free(a);
        api_response_free(&r);
        ck_assert_int_eq(get(&e, path, NULL, text, &r), CB_OK);
        ck_assert(r.from_cache);
        a = seen_accept(&r);
        ck_assert_str_eq(a, "text/plain");
        free(a);
        api_response_free(&r);
    }
    ck_assert_uint_eq(served(&e, "/cache/j"), 2);
    ck_assert_uint_eq(cache_metrics(&e).entries, 2);
    env_stop(&e);
}
END_TEST

START_TEST(test_vary_star_not_stored)
{
    env   e;
    char *b;

    env_start(&e, NULL, NULL);
    b = fetch_fresh(&e, "/cache/k?cc=max-age=60&etag=x&vary=*");
    free(b);
    b = fetch_fresh(&e, "/cache/k?cc=max-age=60&etag=x&vary=*");
    free(b);
    ck_assert_uint_eq(served(&e, "/cache/k"), 2);
    ck_assert_uint_eq(cache_metrics(&e).entries, 0);
    env_stop(&e);
}
END_TEST

START_TEST(test_unsafe_methods_invalidate)
{
    static const char *const methods[] = { "POST", "PUT", "DELETE" };
    env                      e;
    api_response             r;
    const char              *path = "/cache/l?cc=max-age=60";
    uint64_t                 before;
    size_t                   i;

    env_start(&e, NULL, NULL);
    for (i = 0; i < 3; i++) {
        char *b = fetch_fresh(&e, path);

        free(b);
        ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
        ck_assert(r.from_cache);
        api_response_free(&r);

        ck_assert_int_eq(api_request(e.c, methods[i], path, "{}", 2, NULL, &r), CB_OK);
        ck_assert_int_eq(r.status, 200);
        ck_assert(!r.from_cache);
        api_response_free(&r);
        ck_assert_uint_eq(cache_metrics(&e).invalidations, i + 1);
        ck_assert_uint_eq(cache_metrics(&e).entries, 0);
        /* fetch_fresh at the top of the loop proves the next GET goes out. */
    }
    free(fetch_fresh(&e, path));
    ck_assert_uint_eq(served(&e, "/cache/l"), 7);

    /* A failed unsafe request leaves the entry alone. */
    fixture_set_outage(e.f, FIXTURE_DOWN_503);
    ck_assert_int_eq(api_request(e.c, "POST", path, "{}", 2, NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 503);
    api_response_free(&r);
    fixture_set_outage(e.f, FIXTURE_UP);
    before = served(&e, "/cache/l");
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/l"), before);

    /* Another URL's POST does not touch it. */
    ck_assert_int_eq(api_request(e.c, "POST", "/cache/l-other", "x", 1, NULL, &r), CB_OK);
    api_response_free(&r);
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    api_response_free(&r);
    ck_assert_uint_eq(cache_metrics(&e).invalidations, 3);
    env_stop(&e);
}
END_TEST

/* ---- Stale on failure ----------------------------------------------------- */

static void stale_if_error_case(fixture_outage mode, cb_err cause)
{
    env          e;
    api_response r;
    char        *first;
    const char  *path = "/cache/m?cc=max-age=10&cc=stale-if-error=60";

    env_start(&e, NULL, NULL);
    first = fetch_fresh(&e, path);
    advance(&e, 20000);
    fixture_set_outage(e.f, mode);

    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.from_cache);
    ck_assert(r.stale);
    ck_assert_int_eq(r.cause, cause);
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert_str_eq(r.body, first);
    api_response_free(&r);
    ck_assert_uint_eq(tu_origin_metrics(e.c, NULL).cache_stale_served, 1);

    /* Past stale-if-error the failure shows through. */
    advance(&e, 60000);
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), cause);
    ck_assert(!r.from_cache);
    ck_assert(!r.stale);
    if (cause == CB_ERR_HTTP)
        ck_assert_int_eq(r.status, 503);
    api_response_free(&r);

    /* Back up: fresh data replaces it. */
    fixture_set_outage(e.f, FIXTURE_UP);
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(!r.from_cache);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_ne(r.body, first);
    api_response_free(&r);
    free(first);
    env_stop(&e);
}

START_TEST(test_stale_if_error_503) { stale_if_error_case(FIXTURE_DOWN_503, CB_ERR_HTTP); }
END_TEST

START_TEST(test_stale_if_error_refused)
{
    stale_if_error_case(FIXTURE_DOWN_REFUSE, CB_ERR_CONNECT);
}
END_TEST

START_TEST(test_max_stale_option)
{
    env               e;
    api_response      r;
    char             *first;
    api_cache_options enough = { .max_stale_ms = 30000 };
    api_cache_options short_ = { .max_stale_ms = 2000 };
    const char       *path = "/cache/n?cc=max-age=10";

    env_start(&e, NULL, NULL);
    first = fetch_fresh(&e, path);
    advance(&e, 20000); /* about 10 s past freshness */
    fixture_set_outage(e.f, FIXTURE_DOWN_503);

    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_ERR_HTTP);
    ck_assert(!r.from_cache);
    api_response_free(&r);
    ck_assert_int_eq(get(&e, path, &short_, NULL, &r), CB_ERR_HTTP);
    ck_assert(!r.from_cache);
    api_response_free(&r);
    ck_assert_int_eq(get(&e, path, &enough, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert(r.stale);
    ck_assert_int_eq(r.cause, CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, first);
    api_response_free(&r);
    free(first);
    env_stop(&e);
}
END_TEST

START_TEST(test_stale_from_open_circuit_and_recovery)
{
    env          e;
    api_response r;
    char        *first;
    cb_config    bc = { .failure_threshold = 2, .reset_timeout_ms = 60000 };
    const char  *path = "/cache/o?cc=max-age=10&cc=stale-if-error=600";
    uint64_t     before;
    int          i;

    env_start(&e, NULL, &bc);
    first = fetch_fresh(&e, path);
    advance(&e, 20000);

    /* Trip it with real failures. */
    fixture_set_outage(e.f, FIXTURE_DOWN_503);
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(api_get(e.c, "/ok", NULL, &r), CB_ERR_HTTP);
        api_response_free(&r);
    }
    ck_assert_int_eq(api_client_breaker_state(e.c, "/"), CB_OPEN);

    before = fixture_requests(e.f);
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert(r.stale);
    ck_assert_int_eq(r.cause, CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(r.attempts, 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, first);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(e.f), before);

    /* Without a stale entry the rejection shows. */
    ck_assert_int_eq(api_get(e.c, "/cache/o-none?cc=max-age=10", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    ck_assert(!r.from_cache);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(e.f), before);

    /* Recovery: the server is back and the reset timeout has passed. */
    fixture_set_outage(e.f, FIXTURE_UP);
    advance(&e, 61000);
    ck_assert_int_eq(api_client_breaker_state(e.c, "/"), CB_HALF_OPEN);
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(!r.from_cache);
    ck_assert(!r.stale);
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert_str_ne(r.body, first);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(e.c, "/"), CB_CLOSED);
    ck_assert_uint_eq(fixture_requests(e.f), before + 1);
    ck_assert_uint_eq(tu_origin_metrics(e.c, NULL).cache_stale_served, 1);
    free(first);
    env_stop(&e);
}
END_TEST

START_TEST(test_stale_from_manual_trip)
{
    env          e;
    api_response r;
    char        *first;
    const char  *path = "/cache/p?cc=max-age=10&etag=x&cc=stale-if-error=600";
    uint64_t     before, p;

    env_start(&e, NULL, NULL);
    first = fetch_fresh(&e, path);
    ck_assert_int_eq(api_client_trip(e.c, "/"), CB_OK);

    /* Still fresh: a hit, no permit asked, so no rejection either. */
    p = permits(&e);
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert(!r.stale);
    api_response_free(&r);
    ck_assert_uint_eq(permits(&e), p);

    /* Stale, with a validator: the revalidation is rejected, the entry
     * stands in. */
    advance(&e, 20000);
    before = served(&e, "/cache/p");
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert(r.stale);
    ck_assert(!r.revalidated);
    ck_assert_int_eq(r.cause, CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(r.attempts, 0);
    ck_assert_str_eq(r.body, first);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/p"), before);
    free(first);
    env_stop(&e);
}
END_TEST

/* ---- Per-request options ---------------------------------------------------- */

START_TEST(test_bypass_neither_reads_nor_writes)
{
    env               e;
    api_response      r;
    api_cache_options bypass = { .bypass = true };
    const char       *path = "/cache/q?cc=max-age=60";
    char             *stored;

    env_start(&e, NULL, NULL);
    ck_assert_int_eq(get(&e, path, &bypass, NULL, &r), CB_OK);
    ck_assert(!r.from_cache);
    api_response_free(&r);
    ck_assert_uint_eq(cache_metrics(&e).entries, 0);

    stored = fetch_fresh(&e, path);
    ck_assert_uint_eq(cache_metrics(&e).entries, 1);

    ck_assert_int_eq(get(&e, path, &bypass, NULL, &r), CB_OK);
    ck_assert(!r.from_cache);
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert_str_ne(r.body, stored);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/q"), 3);

    /* The bypassing response did not replace the stored one. */
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert_str_eq(r.body, stored);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/q"), 3);
    ck_assert_uint_eq(cache_metrics(&e).stores, 1);
    free(stored);
    env_stop(&e);
}
END_TEST

START_TEST(test_revalidate_option)
{
    env               e;
    api_response      r;
    api_cache_options reval = { .revalidate = true };
    const char       *path = "/cache/s?cc=max-age=60&etag=x";
    char             *first;

    env_start(&e, NULL, NULL);
    first = fetch_fresh(&e, path);
    ck_assert_int_eq(get(&e, path, &reval, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert(r.revalidated);
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, first);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/s"), 2);
    free(first);

    /* Without a validator it is a plain refetch. */
    first = fetch_fresh(&e, "/cache/s2?cc=max-age=60");
    ck_assert_int_eq(get(&e, "/cache/s2?cc=max-age=60", &reval, NULL, &r), CB_OK);
    ck_assert(!r.from_cache);
    ck_assert(!r.revalidated);
    ck_assert_uint_eq(r.attempts, 1);
    ck_assert_str_ne(r.body, first);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/s2"), 2);
    free(first);
    env_stop(&e);
}
END_TEST

START_TEST(test_only_if_cached)
{
    env               e;
    api_response      r;
    api_cache_options oic = { .only_if_cached = true };
    const char       *path = "/cache/t?cc=max-age=10";
    char             *first;

    env_start(&e, NULL, NULL);
    ck_assert_int_eq(get(&e, path, &oic, NULL, &r), CB_ERR_CACHE_MISS);
    ck_assert(!r.from_cache);
    ck_assert_uint_eq(r.attempts, 0);
    ck_assert_ptr_nonnull(r.body);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(e.f), 0);
    ck_assert_uint_eq(permits(&e), 0);

    first = fetch_fresh(&e, path);
    ck_assert_int_eq(get(&e, path, &oic, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert_str_eq(r.body, first);
    api_response_free(&r);

    /* Stale and nothing allows serving it stale: a miss, still no I/O. */
    advance(&e, 20000);
    ck_assert_int_eq(get(&e, path, &oic, NULL, &r), CB_ERR_CACHE_MISS);
    api_response_free(&r);
    ck_assert_uint_eq(fixture_requests(e.f), 1);
    ck_assert_uint_eq(permits(&e), 1);
    free(first);
    env_stop(&e);
}
END_TEST

/* ---- Bounds --------------------------------------------------------------------- */

static bool is_hit(env *e, const char *path)
{
    api_response r;
    bool         hit;

    ck_assert_int_eq(api_get(e->c, path, NULL, &r), CB_OK);
    hit = r.from_cache;
    api_response_free(&r);
    return hit;
}

START_TEST(test_lru_max_entries)
{
    env               e;
    api_cache_config  cc = { .max_entries = 3 };
    api_cache_metrics m;

    env_start(&e, &cc, NULL);
    ck_assert(!is_hit(&e, "/cache/lru1?cc=max-age=60"));
    ck_assert(!is_hit(&e, "/cache/lru2?cc=max-age=60"));
    ck_assert(!is_hit(&e, "/cache/lru3?cc=max-age=60"));
    ck_assert(is_hit(&e, "/cache/lru1?cc=max-age=60")); /* 1 becomes most recent */
    ck_assert_uint_eq(cache_metrics(&e).evictions, 0);

    ck_assert(!is_hit(&e, "/cache/lru4?cc=max-age=60")); /* evicts 2 */
    m = cache_metrics(&e);
    ck_assert_uint_eq(m.evictions, 1);
    ck_assert_uint_eq(m.entries, 3);
    ck_assert_uint_eq(m.max_entries, 3);

    ck_assert(is_hit(&e, "/cache/lru1?cc=max-age=60"));
    ck_assert(is_hit(&e, "/cache/lru3?cc=max-age=60"));
    ck_assert(is_hit(&e, "/cache/lru4?cc=max-age=60"));
    ck_assert(!is_hit(&e, "/cache/lru2?cc=max-age=60")); /* evicts 1 */
    ck_assert_uint_eq(cache_metrics(&e).evictions, 2);
    ck_assert(!is_hit(&e, "/cache/lru1?cc=max-age=60")); /* evicts 3 */
    ck_assert(is_hit(&e, "/cache/lru4?cc=max-age=60"));
    ck_assert(is_hit(&e, "/cache/lru2?cc=max-age=60"));
    ck_assert(is_hit(&e, "/cache/lru1?cc=max-age=60"));
    ck_assert_uint_eq(cache_metrics(&e).evictions, 3);
    ck_assert_uint_eq(cache_metrics(&e).entries, 3);
    env_stop(&e);
}
END_TEST

START_TEST(test_max_bytes_bound)
{
    env               e;
    api_cache_config  cc = { .max_bytes = 2000 };
    api_cache_metrics m;
    char              path[64];
    int               i;

    env_start(&e, &cc, NULL);
    for (i = 0; i < 12; i++) {
        snprintf(path, sizeof(path), "/cache/mb%d?cc=max-age=60", i);
        ck_assert(!is_hit(&e, path));
        m = cache_metrics(&e);
        ck_assert_uint_le(m.bytes, 2000);
        ck_assert_uint_eq(m.max_bytes, 2000);
        ck_assert_uint_ge(m.entries, 1); /* the newest always fits */
    }
    m = cache_metrics(&e);
    ck_assert_uint_gt(m.evictions, 0);
    ck_assert_uint_eq(m.stores, 12);
    ck_assert_uint_eq(m.entries + m.evictions, 12);
    /* The newest survives, the oldest went. */
    ck_assert(is_hit(&e, "/cache/mb11?cc=max-age=60"));
    ck_assert(!is_hit(&e, "/cache/mb0?cc=max-age=60"));
    env_stop(&e);
}
END_TEST

START_TEST(test_max_entry_bytes)
{
    env              e;
    api_cache_config cc = { .max_entry_bytes = 1500 };
    api_response     r;
    char             pad[3000 + 8];
    const char      *hdr[] = { pad, NULL };
    const char      *path = "/cache/big?cc=max-age=60&vary=X-Pad";
    int              i;

    memcpy(pad, "X-Pad: ", 7);
    memset(pad + 7, 'p', 3000);
    pad[3007] = '\0';
    env_start(&e, &cc, NULL);
    ck_assert(!is_hit(&e, "/cache/small?cc=max-age=60"));
    ck_assert(is_hit(&e, "/cache/small?cc=max-age=60"));

    /* The fixture echoes X-Pad into the body: a 3 KB response. */
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(get(&e, path, NULL, (const char *const *)hdr, &r), CB_OK);
        ck_assert_uint_gt(r.body_len, 3000);
        ck_assert(!r.from_cache);
        api_response_free(&r);
    }
    ck_assert_uint_eq(served(&e, "/cache/big"), 2);
    ck_assert_uint_eq(cache_metrics(&e).entries, 1);
    env_stop(&e);
}
END_TEST

/* ---- HEAD ------------------------------------------------------------------------ */

START_TEST(test_head)
{
    env          e;
    api_response r;
    char        *b;

    env_start(&e, NULL, NULL);
    /* A HEAD may use the stored GET response, without its body. */
    b = fetch_fresh(&e, "/cache/hd?cc=max-age=60");
    ck_assert_int_eq(api_request(e.c, "HEAD", "/cache/hd?cc=max-age=60", NULL, 0, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.from_cache);
    ck_assert_uint_eq(r.attempts, 0);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_str_eq(r.body, "");
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/hd"), 1);
    free(b);

    /* A HEAD response is stored for HEAD, and never answers a GET. */
    ck_assert_int_eq(api_request(e.c, "HEAD", "/cache/hd2?cc=max-age=60", NULL, 0, NULL, &r),
                     CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(!r.from_cache);
    ck_assert_uint_eq(r.body_len, 0);
    api_response_free(&r);
    ck_assert_int_eq(api_request(e.c, "HEAD", "/cache/hd2?cc=max-age=60", NULL, 0, NULL, &r),
                     CB_OK);
    ck_assert(r.from_cache);
    ck_assert_uint_eq(r.body_len, 0);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/hd2"), 1);
    b = fetch_fresh(&e, "/cache/hd2?cc=max-age=60");
    ck_assert_uint_gt(strlen(b), 0);
    free(b);
    ck_assert_uint_eq(served(&e, "/cache/hd2"), 2);
    ck_assert(is_hit(&e, "/cache/hd2?cc=max-age=60"));
    env_stop(&e);
}
END_TEST

/* A classifier that, when it sees a 304, empties the cache: the entry whose
 * validators were sent vanishes between the response and its refresh, as
 * when another thread evicts it. */
typedef struct vanish {
    api_client *c;
    unsigned    cleared;
} vanish;

static bool vanish_classify(cb_err err, long status, void *ud)
{
    vanish *v = ud;

    if (status == 304 && !v->cleared++)
        api_client_cache_clear(v->c);
    return err != CB_OK || status >= 500 || status == 429;
}

START_TEST(test_304_after_entry_vanished)
{
    env          e;
    api_response r;
    api_options  o;
    vanish       v = { NULL, 0 };
    const char  *path = "/cache/vanish?cc=no-cache&etag=x";

    env_start(&e, NULL, NULL);
    free(fetch_fresh(&e, path));
    v.c = e.c;
    memset(&o, 0, sizeof(o));
    o.classify = vanish_classify;
    o.classify_data = &v;
    ck_assert_int_eq(api_get(e.c, path, &o, &r), CB_OK);
    ck_assert_uint_eq(v.cleared, 1);
    /* Never the bare 304: a plain request fetched the full response. */
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(body_num(&r, "version"), 1);
    ck_assert(!r.revalidated);
    ck_assert_uint_eq(r.attempts, 2);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/vanish"), 3);
    ck_assert_uint_eq(cache_metrics(&e).entries, 1); /* stored again */
    env_stop(&e);
}
END_TEST

/* ---- A 304 for a version that was replaced meanwhile ------------------------------ */

typedef struct racer {
    env         *e;
    const char  *path;
    cb_err       err;
    api_response r;
} racer;

static void *racer_get(void *p)
{
    racer *a = p;

    a->err = api_get(a->e->c, a->path, NULL, &a->r);
    return NULL;
}

static void admin_key(env *e, const char *key, const char *what)
{
    char path[128];

    snprintf(path, sizeof(path), "/admin/cache/%s/%s", key, what);
    admin(e, path);
}

/* A revalidates version 1 and the server answers 304 for it, but the answer
 * is held; meanwhile the resource becomes version 2 and B stores it. When
 * A's 304 finally arrives it confirms version 1 only: it must not relabel
 * B's entry (version 2's body under version 1's validator). A asks again,
 * plainly, and gets version 2. validator: the header the 304 carries. */
static void replaced_version_case(const char *key, const char *query, const char *validator)
{
    env          e;
    racer        a;
    api_response r;
    pthread_t    t;
    char         path[128], prefix[64], *v2;

    snprintf(path, sizeof(path), "/cache/%s?%s", key, query);
    snprintf(prefix, sizeof(prefix), "/cache/%s", key);
    env_start(&e, NULL, NULL);
    free(fetch_fresh(&e, path));

    admin_key(&e, key, "hold");
    memset(&a, 0, sizeof(a));
    a.e = &e;
    a.path = path;
    ck_assert_int_eq(pthread_create(&t, NULL, racer_get, &a), 0);
    admin_key(&e, key, "held"); /* A's 304 for version 1 is decided */
    admin_key(&e, key, "bump");

    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(!r.from_cache);
    ck_assert_int_eq(body_num(&r, "version"), 2);
    ck_assert_ptr_nonnull(api_response_header(&r, validator));
    v2 = strdup(api_response_header(&r, validator));
    api_response_free(&r);

    admin_key(&e, key, "release");
    pthread_join(t, NULL);
    ck_assert_int_eq(a.err, CB_OK);
    ck_assert_int_eq(a.r.status, 200);
    ck_assert_int_eq(body_num(&a.r, "version"), 2);
    ck_assert_str_eq(api_response_header(&a.r, validator), v2);
    ck_assert(!a.r.revalidated);
    ck_assert_uint_eq(a.r.attempts, 2);
    api_response_free(&a.r);

    /* The entry is version 2 under its own validator, which the server
     * confirms from now on. */
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_OK);
    ck_assert(r.from_cache && r.revalidated);
    ck_assert_int_eq(body_num(&r, "version"), 2);
    ck_assert_str_eq(api_response_header(&r, validator), v2);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, prefix), 5);
    free(v2);
    env_stop(&e);
}

START_TEST(test_304_for_replaced_version_etag)
{
    replaced_version_case("race-etag", "cc=no-cache&etag=x", "ETag");
}
END_TEST

START_TEST(test_304_for_replaced_version_last_modified)
{
    replaced_version_case("race-lm", "cc=no-cache&lm=1", "Last-Modified");
}
END_TEST

/* ---- A stored error status is an error ----------------------------------------------- */

/* The result of a call does not depend on where its response came from: a
 * stored 4xx is CB_ERR_HTTP with the response filled, as from the network. */
START_TEST(test_cached_4xx_is_http_error)
{
    static const long codes[] = { 404, 410, 403 };
    env               e;
    api_response      r;
    api_cache_options oic = { .only_if_cached = true };
    char              path[96];
    size_t            i;

    env_start(&e, NULL, NULL);
    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        snprintf(path, sizeof(path), "/cache/e%ld?status=%ld&cc=max-age=600", codes[i], codes[i]);
        ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_ERR_HTTP);
        ck_assert_int_eq(r.status, codes[i]);
        ck_assert(!r.from_cache);
        api_response_free(&r);

        ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_ERR_HTTP);
        ck_assert_int_eq(r.status, codes[i]);
        ck_assert(r.from_cache && !r.stale);
        ck_assert_uint_eq(r.attempts, 0);
        ck_assert_int_eq(body_num(&r, "version"), 1);
        api_response_free(&r);

        ck_assert_int_eq(get(&e, path, &oic, NULL, &r), CB_ERR_HTTP);
        ck_assert_int_eq(r.status, codes[i]);
        ck_assert(r.from_cache);
        api_response_free(&r);
    }
    ck_assert_uint_eq(fixture_requests(e.f), 3);
    ck_assert_uint_eq(cache_metrics(&e).entries, 3);
    env_stop(&e);
}
END_TEST

START_TEST(test_stale_4xx_is_http_error)
{
    env               e;
    api_response      r;
    api_cache_options oic = { .only_if_cached = true };
    const char       *path = "/cache/s404?status=404&cc=max-age=10&cc=stale-if-error=600";

    env_start(&e, NULL, NULL);
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    advance(&e, 20000);

    /* Standing in for a failing origin... */
    fixture_set_outage(e.f, FIXTURE_DOWN_503);
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 404);
    ck_assert(r.from_cache && r.stale);
    ck_assert_int_eq(r.cause, CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);

    /* ...for an open circuit... */
    ck_assert_int_eq(api_client_trip(e.c, "/"), CB_OK);
    ck_assert_int_eq(api_get(e.c, path, NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 404);
    ck_assert(r.from_cache && r.stale);
    ck_assert_int_eq(r.cause, CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(r.attempts, 0);
    api_response_free(&r);

    /* ...and for only-if-cached. */
    ck_assert_int_eq(get(&e, path, &oic, NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 404);
    ck_assert(r.from_cache && r.stale);
    ck_assert_int_eq(r.cause, CB_ERR_CACHE_MISS);
    api_response_free(&r);
    ck_assert_uint_eq(tu_origin_metrics(e.c, NULL).cache_stale_served, 3);
    env_stop(&e);
}
END_TEST

/* ---- Extreme bounds ---------------------------------------------------------------- */

/* Every size bound at 0 (the default), 1, SIZE_MAX - 1 and SIZE_MAX (UINT_MAX
 * for max_entries), through api_client_new: the client works, reports the
 * bound, and stores a small response unless a bound of 1 byte forbids it. */
START_TEST(test_extreme_bounds)
{
    static const size_t   sizes[] = { 0, 1, SIZE_MAX - 1, SIZE_MAX };
    static const unsigned counts[] = { 0, 1, UINT_MAX - 1, UINT_MAX };
    fixture              *f = fixture_start();
    size_t                i, field;
    int                   key = 0;

    ck_assert_ptr_nonnull(f);
    for (field = 0; field < 3; field++) {
        for (i = 0; i < 4; i++) {
            api_client_config  cfg;
            api_client        *c;
            api_response       r;
            api_client_metrics m;
            char               path[64];
            bool               fits = true;

            memset(&cfg, 0, sizeof(cfg));
            cfg.base_url = fixture_url(f);
            cfg.retry.max_attempts = 1;
            if (field == 0) {
                cfg.cache.max_bytes = sizes[i];
                fits = sizes[i] != 1;
            } else if (field == 1) {
                cfg.cache.max_entry_bytes = sizes[i];
                fits = sizes[i] != 1;
            } else {
                cfg.cache.max_entries = counts[i];
            }
            c = api_client_new(&cfg);
            ck_assert_msg(c != NULL, "field %zu value %zu", field, i);
            snprintf(path, sizeof(path), "/cache/bound%d?cc=max-age=600&etag=x", key++);
            ck_assert_int_eq(api_get(c, path, NULL, &r), CB_OK);
            ck_assert(!r.from_cache);
            api_response_free(&r);
            ck_assert_int_eq(api_get(c, path, NULL, &r), CB_OK);
            ck_assert_msg(r.from_cache == fits, "field %zu value %zu", field, i);
            api_response_free(&r);
            ck_assert_int_eq(api_client_metrics_get(c, &m), CB_OK);
            ck_assert_uint_eq(m.cache.entries, fits ? 1 : 0);
            if (field == 0 && sizes[i])
                ck_assert_uint_eq(m.cache.max_bytes, sizes[i]);
            if (field == 2 && counts[i])
                ck_assert_uint_eq(m.cache.max_entries, counts[i]);
            api_client_metrics_free(&m);
            api_client_free(c);
        }
    }
    fixture_stop(f);
}
END_TEST

/* ---- Concurrency ------------------------------------------------------------------- */

#define CONC_THREADS 4
#define CONC_CALLS 120
#define CONC_POST_EVERY 40

typedef struct conc_arg {
    env *e;
    int  id;
    int  failures;
    char first[1024]; /* what went wrong first */
} conc_arg;

static void conc_fail(conc_arg *a, const char *path, cb_err err, const api_response *r)
{
    if (!a->failures++)
        snprintf(a->first, sizeof(a->first), "%s: %s status %ld cache %d/%d/%d body %.60s (%.200s)",
                 path, cb_strerror(err), r->status, r->from_cache, r->revalidated, r->stale,
                 r->body ? r->body : "(null)", r->error);
}

static void *conc_worker(void *p)
{
    conc_arg *a = p;
    char      path[96];
    int       i;

    for (i = 0; i < CONC_CALLS; i++) {
        api_response r;
        cb_err       err;
        int          k = (i * 3 + a->id) % 8;

        /* Fresh entries, entries revalidated on every use, uncached ones,
         * and now and then a new key that pushes the LRU. */
        if (i % 10 == 9)
            snprintf(path, sizeof(path), "/cache/churn-%d-%d?cc=max-age=600", a->id, i);
        else if (k < 4)
            snprintf(path, sizeof(path), "/cache/cc%d?cc=max-age=600", k);
        else if (k < 6)
            snprintf(path, sizeof(path), "/cache/cc%d?cc=no-cache&etag=t", k);
        else
            snprintf(path, sizeof(path), "/cache/cc%d?cc=no-store", k);
        err = api_get(a->e->c, path, NULL, &r);
        if (err != CB_OK || r.status != 200 || body_num(&r, "version") != 1)
            conc_fail(a, path, err, &r);
        api_response_free(&r);
        if (i % CONC_POST_EVERY == CONC_POST_EVERY - 1) {
            /* Invalidations racing the readers. */
            snprintf(path, sizeof(path), "/cache/cc%d?cc=max-age=600", a->id);
            err = api_request(a->e->c, "POST", path, "", 0, NULL, &r);
            if (err != CB_OK)
                conc_fail(a, path, err, &r);
            api_response_free(&r);
        }
    }
    return NULL;
}

START_TEST(test_concurrent_readers_writers)
{
    env                e;
    api_cache_config   cc = { .max_entries = 6 };
    pthread_t          t[CONC_THREADS];
    conc_arg           a[CONC_THREADS];
    api_origin_metrics om;
    api_cache_metrics  cm;
    int                i;

    env_start(&e, &cc, NULL);
    for (i = 0; i < CONC_THREADS; i++) {
        a[i].e = &e;
        a[i].id = i;
        a[i].failures = 0;
        ck_assert_int_eq(pthread_create(&t[i], NULL, conc_worker, &a[i]), 0);
    }
    for (i = 0; i < CONC_THREADS; i++)
        pthread_join(t[i], NULL);
    for (i = 0; i < CONC_THREADS; i++)
        ck_assert_msg(a[i].failures == 0, "%d failures, first: %s", a[i].failures, a[i].first);
    om = tu_origin_metrics(e.c, &cm);
    ck_assert_uint_eq(om.cache_hits + om.cache_misses, CONC_THREADS * CONC_CALLS);
    /* Every miss went to the server (no retries); POSTs are extra, and so
     * is the plain request that follows a 304 whose entry another thread
     * evicted meanwhile (the caller never sees that 304: checked above). */
    ck_assert_uint_ge(om.attempts, om.cache_misses + CONC_THREADS * (CONC_CALLS / CONC_POST_EVERY));
    ck_assert_uint_eq(om.attempts, fixture_requests(e.f));
    ck_assert_uint_eq(om.breaker.total_requests, om.attempts);
    ck_assert_uint_eq(om.breaker.failures, 0);
    ck_assert_uint_gt(om.cache_hits, 0);
    ck_assert_uint_gt(om.cache_not_modified, 0);
    ck_assert_uint_le(cm.entries, 6);
    ck_assert_uint_gt(cm.evictions, 0);
    ck_assert_uint_le(cm.invalidations, CONC_THREADS * (CONC_CALLS / CONC_POST_EVERY));
    env_stop(&e);
}
END_TEST

/* ---- JSON helpers on real responses ------------------------------------------------ */

START_TEST(test_request_json_echo)
{
    env          e;
    api_response r;
    cJSON       *obj = cJSON_CreateObject(), *echo = NULL, *sent = NULL, *hdrs, *ct;

    env_start(&e, NULL, NULL);
    cJSON_AddStringToObject(obj, "name", "widget \"w\"");
    cJSON_AddNumberToObject(obj, "count", 3);
    cJSON_AddItemToObject(obj, "tags", cJSON_CreateStringArray((const char *[]){ "a", "b" }, 2));

    ck_assert_int_eq(api_request_json(e.c, "POST", "/echo", obj, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(api_response_json(&r, &echo), CB_OK);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(echo, "method")->valuestring, "POST");
    hdrs = cJSON_GetObjectItemCaseSensitive(echo, "headers");
    ct = cJSON_GetObjectItem(hdrs, "Content-Type"); /* case-insensitive lookup */
    ck_assert(cJSON_IsString(ct));
    ck_assert_str_eq(ct->valuestring, "application/json");
    sent = cJSON_Parse(cJSON_GetObjectItemCaseSensitive(echo, "body")->valuestring);
    ck_assert_ptr_nonnull(sent);
    ck_assert(cJSON_Compare(sent, obj, 1));
    /* json is not modified by the call. */
    ck_assert_int_eq(cJSON_GetArraySize(obj), 3);
    cJSON_Delete(sent);
    cJSON_Delete(echo);
    api_response_free(&r);

    /* A POST is not cached. */
    ck_assert_uint_eq(cache_metrics(&e).entries, 0);
    cJSON_Delete(obj);
    env_stop(&e);
}
END_TEST

START_TEST(test_response_json_real_and_not_json)
{
    env          e;
    api_response r;
    cJSON       *j = NULL, *o;

    env_start(&e, NULL, NULL);
    ck_assert_int_eq(api_get(e.c, "/json", NULL, &r), CB_OK);
    ck_assert_int_eq(api_response_json(&r, &j), CB_OK);
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(j, "integer")->valueint, 42);
    ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(j, "negative")->valueint, -7);
    ck_assert(cJSON_GetObjectItemCaseSensitive(j, "float")->valuedouble == 3.25);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "true")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "null")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "array")), 4);
    o = cJSON_GetObjectItemCaseSensitive(j, "object");
    o = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "nested"), "deep");
    ck_assert_int_eq(cJSON_GetArraySize(o), 2);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "string")->valuestring,
                     "h\xc3\xa9llo \"quoted\" \\ / \xe2\x98\x83 \xf0\x9f\x98\x80");
    cJSON_Delete(j);
    api_response_free(&r);

    j = NULL;
    ck_assert_int_eq(api_get(e.c, "/large/100", NULL, &r), CB_OK);
    ck_assert_uint_eq(r.body_len, 100);
    ck_assert_int_eq(api_response_json(&r, &j), CB_ERR_PARSE);
    ck_assert_ptr_null(j);
    api_response_free(&r);

    ck_assert_int_eq(api_get(e.c, "/status/204", NULL, &r), CB_OK);
    ck_assert_int_eq(api_response_json(&r, &j), CB_ERR_PARSE);
    api_response_free(&r);
    env_stop(&e);
}
END_TEST

/* ---- RFC 9111 conformance (issue 12) ------------------------------------- */

/* Any method with header lines and no cache options. */
static cb_err call(env *e, const char *method, const char *path, const char *const *headers,
                   api_response *r)
{
    api_options o;

    memset(&o, 0, sizeof(o));
    o.headers = headers;
    return api_request(e->c, method, path, NULL, 0, &o, r);
}

/* The Age a response carries, or -1 without one. */
static long long age_of(const api_response *r)
{
    const char *a = api_response_header(r, "Age");

    return a ? atoll(a) : -1;
}

/* How a request was answered. */
enum { HIT, NET, REVAL };

/* GETs path with headers and asserts how it was answered: HIT (the cache,
 * no I/O), NET (the network, not from the cache) or REVAL (a 304 refreshed
 * the entry). The response is left in *r. */
static void get_expect(env *e, const char *path, const char *const *headers, int how,
                       api_response *r)
{
    char     prefix[128];
    uint64_t before;

    snprintf(prefix, sizeof(prefix), "%.*s", (int)strcspn(path, "?"), path);
    before = served(e, prefix);
    get(e, path, NULL, headers, r);
    ck_assert_msg(r->from_cache == (how != NET), "%s: from_cache %d", path, r->from_cache);
    ck_assert_msg(r->revalidated == (how == REVAL), "%s: revalidated %d", path, r->revalidated);
    ck_assert_msg(served(e, prefix) == before + (how == HIT ? 0 : 1),
                  "%s: served %llu, before %llu", path, (unsigned long long)served(e, prefix),
                  (unsigned long long)before);
}

/* Point 1: Age is computed on every hit and sent; a garbage Age is
 * freshness information we cannot trust (stale). */
START_TEST(test_age_on_hits)
{
    static const char *const bad[] = { "/cache/ag2?cc=max-age=60&age=5a",
                                       "/cache/ag3?cc=max-age=60&age=5;p=1",
                                       "/cache/ag4?cc=max-age=60&age=5.0",
                                       "/cache/ag5?cc=max-age=60&age=-5",
                                       "/cache/ag6?cc=max-age=60&age=5&age=9" };
    env                      e;
    api_response             r;
    size_t                   i;

    env_start(&e, NULL, NULL);
    get_expect(&e, "/cache/ag?cc=max-age=600&age=100", NULL, NET, &r);
    ck_assert_int_eq(age_of(&r), 100);
    api_response_free(&r);
    advance(&e, 10000);
    get_expect(&e, "/cache/ag?cc=max-age=600&age=100", NULL, HIT, &r);
    ck_assert_int_ge(age_of(&r), 110);
    ck_assert_int_le(age_of(&r), 112);
    {
        size_t n = 0, j;

        for (j = 0; j < r.header_count; j++)
            n += strcasecmp(r.headers[j].name, "Age") == 0;
        ck_assert_uint_eq(n, 1);
    }
    api_response_free(&r);
    advance(&e, 5000);
    get_expect(&e, "/cache/ag?cc=max-age=600&age=100", NULL, HIT, &r);
    ck_assert_int_ge(age_of(&r), 115);
    ck_assert_int_le(age_of(&r), 117);
    api_response_free(&r);
    /* An Age that is not delta-seconds, or two different ones: stale. */
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        get_expect(&e, bad[i], NULL, NET, &r);
        api_response_free(&r);
        get_expect(&e, bad[i], NULL, NET, &r);
        api_response_free(&r);
    }
    env_stop(&e);
}
END_TEST

/* Point 2: hop-by-hop fields and those Connection names are not stored. */
START_TEST(test_hop_by_hop_not_stored)
{
    static const char *const hop[] = { "Keep-Alive", "Proxy-Connection", "TE",
                                       "Upgrade",    "X-Conn-Listed",    "Connection" };
    const char              *path = "/cache/hop?cc=max-age=60&hdr=Keep-Alive:%20timeout%3D5"
                                    "&hdr=Proxy-Connection:%20keep-alive&hdr=TE:%20trailers"
                                    "&hdr=Upgrade:%20h2c&hdr=X-Conn-Listed:%201"
                                    "&hdr=Connection:%20X-Conn-Listed&hdr=X-Kept:%201";
    env                      e;
    api_response             r;
    size_t                   i;

    env_start(&e, NULL, NULL);
    get_expect(&e, path, NULL, NET, &r);
    /* The network response has them (what libmicrohttpd lets through). */
    ck_assert_ptr_nonnull(api_response_header(&r, "X-Conn-Listed"));
    ck_assert_ptr_nonnull(api_response_header(&r, "Keep-Alive"));
    api_response_free(&r);
    get_expect(&e, path, NULL, HIT, &r);
    for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        ck_assert_msg(!api_response_header(&r, hop[i]), "%s stored", hop[i]);
    ck_assert_str_eq(api_response_header(&r, "X-Kept"), "1");
    api_response_free(&r);
    /* Chunked framing is not stored either. */
    get_expect(&e, "/cache/hop2?cc=max-age=60&hdr=Transfer-Encoding:%20chunked", NULL, NET, &r);
    api_response_free(&r);
    get_expect(&e, "/cache/hop2?cc=max-age=60&hdr=Transfer-Encoding:%20chunked", NULL, HIT, &r);
    ck_assert(!api_response_header(&r, "Transfer-Encoding"));
    api_response_free(&r);
    env_stop(&e);
}
END_TEST

/* Point 3: the request's own Cache-Control (and Pragma). */
START_TEST(test_request_cache_control)
{
    static const char *const stale5[] = { "Cache-Control: max-stale=5", NULL };
    static const char *const stale1[] = { "Cache-Control: max-stale=1", NULL };
    static const char *const stale_any[] = { "Cache-Control: max-stale", NULL };
    static const char *const fresh40[] = { "Cache-Control: min-fresh=40", NULL };
    static const char *const fresh20[] = { "Cache-Control: min-fresh=20", NULL };
    static const char *const age10[] = { "Cache-Control: max-age=10", NULL };
    static const char *const nocache[] = { "Cache-Control: no-cache", NULL };
    static const char *const pragma[] = { "Pragma: no-cache", NULL };
    static const char *const pragma_cc[] = { "Pragma: no-cache", "Cache-Control: max-age=600",
                                             NULL };
    static const char *const oic[] = { "Cache-Control: only-if-cached", NULL };
    static const char *const nostore[] = { "Cache-Control: no-store", NULL };
    const char              *p = "/cache/rq?cc=max-age=60&etag=t";
    const char              *s = "/cache/rs?cc=max-age=2";
    const char              *mr = "/cache/rm?cc=max-age=2,must-revalidate";
    env                      e;
    api_response             r;
    uint64_t                 before;

    env_start(&e, NULL, NULL);
    get_expect(&e, p, NULL, NET, &r);
    api_response_free(&r);
    advance(&e, 30000);
    get_expect(&e, p, fresh20, HIT, &r); /* 30 s left >= 20 */
    api_response_free(&r);
    get_expect(&e, p, fresh40, REVAL, &r); /* 30 s left < 40 */
    api_response_free(&r);
    advance(&e, 30000);
    get_expect(&e, p, age10, REVAL, &r);
    api_response_free(&r);
    get_expect(&e, p, nocache, REVAL, &r);
    api_response_free(&r);
    get_expect(&e, p, pragma, REVAL, &r);
    api_response_free(&r);
    /* Pragma does not count beside Cache-Control. */
    get_expect(&e, p, pragma_cc, HIT, &r);
    api_response_free(&r);

    /* max-stale: a stale entry without I/O, within the bound. */
    get_expect(&e, s, NULL, NET, &r);
    api_response_free(&r);
    advance(&e, 5000);
    get_expect(&e, s, stale5, HIT, &r);
    ck_assert_int_ge(age_of(&r), 5);
    api_response_free(&r);
    get_expect(&e, s, stale_any, HIT, &r);
    api_response_free(&r);
    get_expect(&e, s, stale1, NET, &r);
    api_response_free(&r);
    /* ...never against must-revalidate. */
    get_expect(&e, mr, NULL, NET, &r);
    api_response_free(&r);
    advance(&e, 5000);
    get_expect(&e, mr, stale_any, NET, &r);
    api_response_free(&r);

    /* only-if-cached: a miss never touches the network. */
    before = served(&e, "/cache/ro");
    ck_assert_int_eq(get(&e, "/cache/ro?cc=max-age=60", NULL, oic, &r), CB_ERR_CACHE_MISS);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/ro"), before);
    get_expect(&e, "/cache/ro?cc=max-age=60", NULL, NET, &r);
    api_response_free(&r);
    get_expect(&e, "/cache/ro?cc=max-age=60", oic, HIT, &r);
    api_response_free(&r);
    /* no-store: neither served nor stored. */
    get_expect(&e, "/cache/ro?cc=max-age=60", nostore, NET, &r);
    api_response_free(&r);
    get_expect(&e, "/cache/rn?cc=max-age=60", nostore, NET, &r);
    api_response_free(&r);
    get_expect(&e, "/cache/rn?cc=max-age=60", NULL, NET, &r);
    api_response_free(&r);
    env_stop(&e);
}
END_TEST

/* Point 4: a successful unsafe request invalidates its Location and
 * Content-Location, same origin only. */
START_TEST(test_invalidate_location)
{
    env               e;
    api_response      r;
    api_client_config cfg;
    api_client       *other;
    char              url[512], post[1024];
    const char       *t1 = "/cache/il1?cc=max-age=60", *t2 = "/cache/il2?cc=max-age=60";

    env_start(&e, NULL, NULL);
    get_expect(&e, t1, NULL, NET, &r);
    api_response_free(&r);
    get_expect(&e, t2, NULL, NET, &r);
    api_response_free(&r);
    get_expect(&e, "/cache/il3?cc=max-age=60", NULL, NET, &r);
    api_response_free(&r);
    /* Location: an absolute path; Content-Location: relative to the
     * request's directory. */
    ck_assert_int_eq(api_request(e.c, "POST",
                                 "/cache/ilp?loc=%2Fcache%2Fil1%3Fcc%3Dmax-age%3D60"
                                 "&cloc=il2%3Fcc%3Dmax-age%3D60",
                                 "x", 1, NULL, &r),
                     CB_OK);
    api_response_free(&r);
    get_expect(&e, t1, NULL, NET, &r);
    api_response_free(&r);
    get_expect(&e, t2, NULL, NET, &r);
    api_response_free(&r);
    get_expect(&e, "/cache/il3?cc=max-age=60", NULL, HIT, &r);
    api_response_free(&r);
    /* A failed one invalidates nothing. */
    ck_assert_int_eq(api_request(e.c, "POST",
                                 "/cache/ilf?status=500&loc=%2Fcache%2Fil1%3Fcc%3Dmax-age%3D60",
                                 "x", 1, NULL, &r),
                     CB_ERR_HTTP);
    api_response_free(&r);
    get_expect(&e, t1, NULL, HIT, &r);
    api_response_free(&r);

    /* Another origin (the same server as "localhost") is never touched. */
    memset(&cfg, 0, sizeof(cfg));
    cfg.retry.max_attempts = 1;
    other = api_client_new(&cfg);
    ck_assert_ptr_nonnull(other);
    snprintf(url, sizeof(url), "http://localhost:%u/cache/ilx?cc=max-age=60",
             (unsigned)fixture_port(e.f));
    ck_assert_int_eq(api_get(other, url, NULL, &r), CB_OK);
    ck_assert(!r.from_cache);
    api_response_free(&r);
    snprintf(
        post, sizeof(post),
        "%s/cache/ilp?loc=http%%3A%%2F%%2Flocalhost%%3A%u%%2Fcache%%2Filx%%3Fcc%%3Dmax-age%%3D60",
        fixture_url(e.f), (unsigned)fixture_port(e.f));
    ck_assert_int_eq(api_request(other, "POST", post, "x", 1, NULL, &r), CB_OK);
    api_response_free(&r);
    ck_assert_int_eq(api_get(other, url, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    api_response_free(&r);
    /* The same origin through an absolute Location is. */
    snprintf(post, sizeof(post),
             "http://localhost:%u/cache/"
             "ilp?loc=http%%3A%%2F%%2Flocalhost%%3A%u%%2Fcache%%2Filx%%3Fcc%%3Dmax-age%%3D60",
             (unsigned)fixture_port(e.f), (unsigned)fixture_port(e.f));
    ck_assert_int_eq(api_request(other, "POST", post, "x", 1, NULL, &r), CB_OK);
    api_response_free(&r);
    ck_assert_int_eq(api_get(other, url, NULL, &r), CB_OK);
    ck_assert(!r.from_cache);
    api_response_free(&r);
    api_client_free(other);
    env_stop(&e);
}
END_TEST

/* Point 5: a Range answered from a stored full 200. */
/* A 416 answers one range, as a 206 does: even with explicit freshness it
 * never replaces the stored full response (nginx puts expires on its 416s
 * too). */
START_TEST(test_416_keeps_full_response)
{
    static const char *const far[] = { "Range: bytes=5000-", NULL };
    static const char *const near[] = { "Range: bytes=0-3", NULL };
    const char              *p = "/cache/r416?cc=max-age%3D60";
    env                      e;
    api_response             r;

    env_start(&e, NULL, NULL);
    ck_assert_int_eq(get(&e, p, NULL, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);
    admin(&e, "/admin/cache/r416/respond?status=416&cc=max-age%3D60");
    ck_assert_int_eq(get(&e, p, NULL, far, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 416);
    api_response_free(&r);
    admin(&e, "/admin/cache/r416/respond?status=0");
    ck_assert_int_eq(get(&e, p, NULL, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.from_cache);
    api_response_free(&r);
    ck_assert_int_eq(get(&e, p, NULL, near, &r), CB_OK);
    ck_assert_int_eq(r.status, 206);
    ck_assert(r.from_cache);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/r416"), 2);
    env_stop(&e);
}
END_TEST

START_TEST(test_range_from_cache)
{
    static const char *const first5[] = { "Range: bytes=0-4", NULL };
    static const char *const suffix[] = { "Range: bytes=-6", NULL };
    static const char *const open_[] = { "Range: bytes=3-", NULL };
    static const char *const multi[] = { "Range: bytes=0-1,3-4", NULL };
    static const char *const beyond[] = { "Range: bytes=99999-", NULL };
    static const char *const unit[] = { "Range: items=0-4", NULL };
    const char              *p = "/cache/rg?cc=max-age=60&etag=t";
    env                      e;
    api_response             r;
    char                    *full, want[64], irange[96], ir_bad[] = "If-Range: \"nope\"";
    const char              *ir_ok[3], *ir_no[3];
    size_t                   len;

    env_start(&e, NULL, NULL);
    full = fetch_fresh(&e, p);
    len = strlen(full);
    get_expect(&e, p, first5, HIT, &r);
    ck_assert_int_eq(r.status, 206);
    ck_assert_uint_eq(r.body_len, 5);
    ck_assert_int_eq(memcmp(r.body, full, 5), 0);
    snprintf(want, sizeof(want), "bytes 0-4/%zu", len);
    ck_assert_str_eq(api_response_header(&r, "Content-Range"), want);
    ck_assert_str_eq(api_response_header(&r, "Content-Length"), "5");
    api_response_free(&r);
    get_expect(&e, p, suffix, HIT, &r);
    ck_assert_int_eq(r.status, 206);
    ck_assert_str_eq(r.body, full + len - 6);
    snprintf(want, sizeof(want), "bytes %zu-%zu/%zu", len - 6, len - 1, len);
    ck_assert_str_eq(api_response_header(&r, "Content-Range"), want);
    api_response_free(&r);
    get_expect(&e, p, open_, HIT, &r);
    ck_assert_int_eq(r.status, 206);
    ck_assert_str_eq(r.body, full + 3);
    api_response_free(&r);
    /* An unknown unit is ignored, as an origin would: the whole 200. */
    get_expect(&e, p, unit, HIT, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, full);
    api_response_free(&r);
    /* If-Range: the range only for the current validator. */
    snprintf(irange, sizeof(irange), "If-Range: %s", api_response_header(&r, "ETag") ? "" : "");
    get_expect(&e, p, NULL, HIT, &r);
    snprintf(irange, sizeof(irange), "If-Range: %s", api_response_header(&r, "ETag"));
    api_response_free(&r);
    ir_ok[0] = ir_no[0] = "Range: bytes=0-4";
    ir_ok[1] = irange;
    ir_no[1] = ir_bad;
    ir_ok[2] = ir_no[2] = NULL;
    get_expect(&e, p, ir_ok, HIT, &r);
    ck_assert_int_eq(r.status, 206);
    api_response_free(&r);
    get_expect(&e, p, ir_no, HIT, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, full);
    api_response_free(&r);
    /* Several ranges, or none satisfiable: the origin's to answer. */
    get_expect(&e, p, multi, NET, &r);
    api_response_free(&r);
    get_expect(&e, p, beyond, NET, &r);
    api_response_free(&r);
    free(full);

    /* A 206 from the origin is kept for its range only. */
    get_expect(&e, "/cache/rg2?cc=max-age=60&range=1", first5, NET, &r);
    ck_assert_int_eq(r.status, 206);
    ck_assert_uint_eq(r.body_len, 5);
    api_response_free(&r);
    get_expect(&e, "/cache/rg2?cc=max-age=60&range=1", first5, HIT, &r);
    ck_assert_int_eq(r.status, 206);
    ck_assert_uint_eq(r.body_len, 5);
    api_response_free(&r);
    get_expect(&e, "/cache/rg2?cc=max-age=60&range=1", NULL, NET, &r);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);
    /* ...and the full 200 then answers ranges itself. */
    get_expect(&e, "/cache/rg2?cc=max-age=60&range=1", open_, HIT, &r);
    ck_assert_int_eq(r.status, 206);
    api_response_free(&r);
    env_stop(&e);
}
END_TEST

/* Point 6: HEAD from a stored GET; a HEAD response freshens the stored GET
 * when its validators match, and makes it stale when they do not. */
START_TEST(test_head_freshens_get)
{
    static const char *const force[] = { "Cache-Control: no-cache", "If-None-Match: \"x\"", NULL };
    const char              *p = "/cache/hf?cc=max-age=10&etag=t";
    env                      e;
    api_response             r;

    env_start(&e, NULL, NULL);
    get_expect(&e, p, NULL, NET, &r);
    api_response_free(&r);
    advance(&e, 8000);
    /* A HEAD that reaches the origin (the caller forced it). */
    ck_assert_int_eq(call(&e, "HEAD", p, force, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(!r.from_cache);
    api_response_free(&r);
    advance(&e, 7000);
    /* 15 s after the GET, 7 s after the HEAD: fresh thanks to the HEAD. */
    get_expect(&e, p, NULL, HIT, &r);
    ck_assert_int_le(age_of(&r), 8);
    api_response_free(&r);
    /* A HEAD from the cache. */
    ck_assert_int_eq(call(&e, "HEAD", p, NULL, &r), CB_OK);
    ck_assert(r.from_cache);
    ck_assert_uint_eq(r.body_len, 0);
    api_response_free(&r);

    /* The resource changed: the HEAD's ETag differs, the GET is stale. */
    admin(&e, "/admin/cache/hf/bump");
    ck_assert_int_eq(call(&e, "HEAD", p, force, &r), CB_OK);
    api_response_free(&r);
    get_expect(&e, p, NULL, NET, &r);
    ck_assert_int_eq(body_num(&r, "version"), 2);
    api_response_free(&r);
    env_stop(&e);
}
END_TEST

/* Point 7: the caller's own conditional, answered 304 from a fresh entry. */
START_TEST(test_caller_conditional)
{
    static const char *const ims_late[] = { "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT",
                                            NULL };
    static const char *const ims_early[] = { "If-Modified-Since: Thu, 01 Jan 1970 00:00:10 GMT",
                                             NULL };
    static const char *const inm_other[] = { "If-None-Match: \"other\"", NULL };
    static const char *const inm_star[] = { "If-None-Match: *", NULL };
    const char              *p = "/cache/cc?cc=max-age=60&etag=t&lm=1";
    env                      e;
    api_response             r;
    char                     inm[128];
    const char              *inm_ok[2] = { inm, NULL };

    env_start(&e, NULL, NULL);
    get_expect(&e, p, NULL, NET, &r);
    snprintf(inm, sizeof(inm), "If-None-Match: \"x\", %s", api_response_header(&r, "ETag"));
    api_response_free(&r);
    ck_assert_int_eq(get(&e, p, NULL, inm_ok, &r), CB_OK);
    ck_assert_int_eq(r.status, 304);
    ck_assert(r.from_cache);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_ptr_nonnull(api_response_header(&r, "ETag"));
    ck_assert(!api_response_header(&r, "Content-Type"));
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/cc"), 1);
    get_expect(&e, p, inm_star, HIT, &r);
    ck_assert_int_eq(r.status, 304);
    api_response_free(&r);
    get_expect(&e, p, inm_other, HIT, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_gt(r.body_len, 0);
    api_response_free(&r);
    get_expect(&e, p, ims_late, HIT, &r);
    ck_assert_int_eq(r.status, 304);
    api_response_free(&r);
    get_expect(&e, p, ims_early, HIT, &r);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);

    /* Stale: the caller's request goes as it is; the origin's 304 reaches
     * the caller and freshens the entry. */
    advance(&e, 61000);
    get_expect(&e, p, inm_ok, NET, &r);
    ck_assert_int_eq(r.status, 304);
    api_response_free(&r);
    get_expect(&e, p, NULL, HIT, &r);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);
    env_stop(&e);
}
END_TEST

/* Point 8: what a 304 updates (RFC 9111 3.2). */
START_TEST(test_304_updates)
{
    const char  *p = "/cache/up?cc=max-age=1&etag=t&hdr=X-Custom:%20a"
                     "&hdr=Connection:%20X-Hop&hdr=X-Hop:%201";
    env          e;
    api_response r;
    char        *b;

    env_start(&e, NULL, NULL);
    b = fetch_fresh(&e, p);
    advance(&e, 2000);
    get_expect(&e, p, NULL, REVAL, &r);
    ck_assert_str_eq(r.body, b);
    /* libmicrohttpd's "Content-Length: 0" on the 304 is not copied. */
    {
        char len[24];

        snprintf(len, sizeof(len), "%zu", strlen(b));
        ck_assert_str_eq(api_response_header(&r, "Content-Length"), len);
    }
    ck_assert_str_eq(api_response_header(&r, "X-Custom"), "a");
    ck_assert(!api_response_header(&r, "X-Hop"));
    ck_assert(!api_response_header(&r, "Connection"));
    ck_assert_ptr_nonnull(api_response_header(&r, "Age"));
    api_response_free(&r);
    get_expect(&e, p, NULL, HIT, &r);
    ck_assert(!api_response_header(&r, "X-Hop"));
    api_response_free(&r);
    free(b);
    env_stop(&e);
}
END_TEST

/* Point 9: duplicate, conflicting and malformed freshness information is
 * stale; quoted values are read; no-cache="field" omits the field. */
START_TEST(test_directive_parsing)
{
    static const char *const stale[] = {
        "/cache/dp3?cc=max-age=60%20x",      "/cache/dp4?cc=max-age=6.0e1",
        "/cache/dp5?expires=60&expires=120", "/cache/dp6?expires=garbage",
        "/cache/dp7?cc=max-age=-60",         "/cache/dp8?cc=max-age=60&age=1&age=2",
    };
    static const char *const fresh[] = {
        "/cache/df1?cc=max-age=%2260%22",
        "/cache/df2?cc=max-age=60&cc=max-age=60",
        "/cache/df3?cc=max-age=60,%20max-age=60",
        "/cache/df4?cc=MAX-AGE=60",
        "/cache/df5?cc=max-age=60&expires=-10",
        "/cache/df6?cc=private,max-age=60",
        "/cache/df7?cc=max-age=60,private=%22X-A%22",
    };
    const char  *nc = "/cache/dn?cc=max-age=60,no-cache=%22X-Secret%22&hdr=X-Secret:%20s"
                      "&hdr=X-Public:%20p";
    env          e;
    api_response r;
    size_t       i;

    env_start(&e, NULL, NULL);
    for (i = 0; i < sizeof(stale) / sizeof(stale[0]); i++) {
        get_expect(&e, stale[i], NULL, NET, &r);
        api_response_free(&r);
        get_expect(&e, stale[i], NULL, NET, &r);
        api_response_free(&r);
    }
    for (i = 0; i < sizeof(fresh) / sizeof(fresh[0]); i++) {
        get_expect(&e, fresh[i], NULL, NET, &r);
        api_response_free(&r);
        get_expect(&e, fresh[i], NULL, HIT, &r);
        api_response_free(&r);
    }
    /* Of two max-age, the smaller (the most restrictive) rules. */
    get_expect(&e, "/cache/dm1?cc=max-age=600,%20max-age=10", NULL, NET, &r);
    api_response_free(&r);
    get_expect(&e, "/cache/dm2?cc=max-age=10&cc=max-age=600", NULL, NET, &r);
    api_response_free(&r);
    get_expect(&e, "/cache/dm1?cc=max-age=600,%20max-age=10", NULL, HIT, &r);
    api_response_free(&r);
    get_expect(&e, "/cache/dm2?cc=max-age=10&cc=max-age=600", NULL, HIT, &r);
    api_response_free(&r);
    advance(&e, 20000);
    get_expect(&e, "/cache/dm1?cc=max-age=600,%20max-age=10", NULL, NET, &r);
    api_response_free(&r);
    get_expect(&e, "/cache/dm2?cc=max-age=10&cc=max-age=600", NULL, NET, &r);
    api_response_free(&r);

    get_expect(&e, nc, NULL, NET, &r);
    ck_assert_str_eq(api_response_header(&r, "X-Secret"), "s");
    api_response_free(&r);
    get_expect(&e, nc, NULL, HIT, &r);
    ck_assert(!api_response_header(&r, "X-Secret"));
    ck_assert_str_eq(api_response_header(&r, "X-Public"), "p");
    api_response_free(&r);
    env_stop(&e);
}
END_TEST

/* Point 10: Vary compares normalised values; another variant's ETag is
 * never used for this one. */
START_TEST(test_vary_normalised)
{
    static const char *const stored[] = { "Accept-Encoding: gzip, br", NULL };
    static const char *const spaced[] = { "Accept-Encoding:gzip ,br", NULL };
    static const char *const upper[] = { "Accept-Encoding: GZIP,  BR", NULL };
    static const char *const lines[] = { "Accept-Encoding: gzip", "Accept-Encoding: br", NULL };
    static const char *const order[] = { "Accept-Encoding: br, gzip", NULL };
    static const char *const a_c[] = { "X-V: a", "X-V: c", NULL };
    static const char *const a_b[] = { "X-V: a", "X-V: b", NULL };
    static const char *const case_x[] = { "X-V: A", "X-V: c", NULL };
    const char              *p = "/cache/vn?cc=max-age=60&vary=Accept-Encoding";
    const char              *q = "/cache/vx?cc=max-age=1&etag=t&vary=X-V";
    env                      e;
    api_response             r;

    env_start(&e, NULL, NULL);
    get_expect(&e, p, stored, NET, &r);
    api_response_free(&r);
    get_expect(&e, p, spaced, HIT, &r);
    api_response_free(&r);
    get_expect(&e, p, upper, HIT, &r);
    api_response_free(&r);
    get_expect(&e, p, lines, HIT, &r);
    api_response_free(&r);
    get_expect(&e, p, order, NET, &r);
    api_response_free(&r);

    /* Two lines are one list: (a, c) and (a, b) are different variants,
     * and a header not known to be case-insensitive keeps its case. */
    get_expect(&e, q, a_c, NET, &r);
    api_response_free(&r);
    advance(&e, 2000);
    get_expect(&e, q, a_b, NET, &r);
    api_response_free(&r);
    get_expect(&e, q, case_x, NET, &r);
    api_response_free(&r);
    get_expect(&e, q, a_c, REVAL, &r);
    api_response_free(&r);
    env_stop(&e);
}
END_TEST

/* Point 11: statuses cacheable by default; a 5xx with explicit freshness
 * is stored and served without I/O, while the last good response beside
 * it still stands in under stale-if-error, and a stale 5xx never serves. */
START_TEST(test_cacheable_statuses_and_5xx)
{
    static const int plain[] = { 203, 204, 300, 301, 308, 404, 405, 410, 414, 501 };
    static const int more[] = { 206, 500, 502, 503, 504 };
    api_cache_config cache = { 0 };
    cb_config        lenient = { .failure_threshold = 1000 }; /* the 5xx must not open it */
    const char      *p = "/cache/e5?cc=max-age=1,stale-if-error=600&etag=t";
    env              e;
    api_response     r;
    char             path[128];
    size_t           i;

    env_start(&e, NULL, &lenient);
    for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        snprintf(path, sizeof(path), "/cache/cs%d?status=%d&cc=max-age=60", plain[i], plain[i]);
        get_expect(&e, path, NULL, NET, &r);
        api_response_free(&r);
        get_expect(&e, path, NULL, HIT, &r);
        ck_assert_int_eq(r.status, plain[i]);
        api_response_free(&r);
    }
    for (i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
        snprintf(path, sizeof(path), "/cache/cm%d?status=%d&cc=max-age=60", more[i], more[i]);
        get_expect(&e, path, NULL, NET, &r);
        api_response_free(&r);
        /* A 206 to a request without Range is not kept; 5xx is. */
        get_expect(&e, path, NULL, more[i] == 206 ? NET : HIT, &r);
        api_response_free(&r);
    }

    /* The last good response survives a stored 503. */
    get_expect(&e, p, NULL, NET, &r);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);
    admin(&e, "/admin/cache/e5/respond?status=503&cc=max-age%3D30");
    advance(&e, 2000);
    ck_assert_int_eq(get(&e, p, NULL, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.from_cache && r.stale);
    ck_assert_int_eq(r.cause, CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/e5"), 2);
    /* The fresh 503 answers without I/O, and the good one stands in. */
    ck_assert_int_eq(get(&e, p, NULL, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.from_cache && r.stale);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/e5"), 2);
    /* Once the 503 is stale it is never served: the origin is asked. */
    advance(&e, 31000);
    ck_assert_int_eq(get(&e, p, NULL, NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.stale);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/e5"), 3);
    admin(&e, "/admin/cache/e5/respond?status=0");
    advance(&e, 31000);
    get_expect(&e, p, NULL, REVAL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(!r.stale);
    api_response_free(&r);

    /* Without stale-if-error, the stored 503 is what the caller gets. */
    get_expect(&e, "/cache/e6?cc=max-age=1", NULL, NET, &r);
    api_response_free(&r);
    admin(&e, "/admin/cache/e6/respond?status=503&cc=max-age%3D30");
    advance(&e, 2000);
    ck_assert_int_eq(get(&e, "/cache/e6?cc=max-age=1", NULL, NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 503);
    ck_assert(!r.from_cache);
    api_response_free(&r);
    ck_assert_int_eq(get(&e, "/cache/e6?cc=max-age=1", NULL, NULL, &r), CB_ERR_HTTP);
    ck_assert_int_eq(r.status, 503);
    ck_assert(r.from_cache && !r.stale);
    api_response_free(&r);
    ck_assert_uint_eq(served(&e, "/cache/e6"), 2);
    env_stop(&e);

    /* Heuristic freshness covers every status cacheable by default. */
    cache.heuristic = true;
    env_start(&e, &cache, &lenient);
    for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        snprintf(path, sizeof(path), "/cache/ch%d?status=%d&lm=1", plain[i], plain[i]);
        get_expect(&e, path, NULL, NET, &r);
        api_response_free(&r);
        get_expect(&e, path, NULL, HIT, &r);
        api_response_free(&r);
    }
    env_stop(&e);
}
END_TEST

/* Point 12: must-understand and stale-while-revalidate. */
START_TEST(test_must_understand_swr)
{
    const char  *mu = "/cache/mu?cc=no-store,%20must-understand,%20max-age=60";
    const char  *unk = "/cache/mx?status=299&cc=must-understand,%20max-age=60";
    const char  *swr = "/cache/sw?cc=max-age=1,%20stale-while-revalidate=60";
    env          e;
    api_response r;

    env_start(&e, NULL, NULL);
    /* A status we implement: no-store is overridden. */
    get_expect(&e, mu, NULL, NET, &r);
    api_response_free(&r);
    get_expect(&e, mu, NULL, HIT, &r);
    api_response_free(&r);
    /* One we do not: never stored, even with max-age. */
    get_expect(&e, unk, NULL, NET, &r);
    api_response_free(&r);
    get_expect(&e, unk, NULL, NET, &r);
    api_response_free(&r);
    /* stale-while-revalidate is parsed, but without background
     * revalidation a stale response is not served: the origin is asked. */
    get_expect(&e, swr, NULL, NET, &r);
    api_response_free(&r);
    advance(&e, 2000);
    get_expect(&e, swr, NULL, NET, &r);
    api_response_free(&r);
    env_stop(&e);
}
END_TEST

static Suite *cache_http_suite(void)
{
    Suite *s = suite_create("cache_http");
    TCase *tc = tcase_create("cache");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_fresh_hit_no_io_no_permit);
    tcase_add_test(tc, test_etag_revalidation_304);
    tcase_add_test(tc, test_changed_resource_replaces_entry);
    tcase_add_test(tc, test_last_modified_revalidation);
    tcase_add_test(tc, test_no_store_never_stored);
    tcase_add_test(tc, test_no_cache_revalidates_every_time);
    tcase_add_test(tc, test_must_revalidate_blocks_stale);
    tcase_add_test(tc, test_expires_minus_date);
    tcase_add_test(tc, test_age_header_reduces_freshness);
    tcase_add_test(tc, test_vary_keeps_variants_apart);
    tcase_add_test(tc, test_vary_star_not_stored);
    tcase_add_test(tc, test_unsafe_methods_invalidate);
    tcase_add_test(tc, test_stale_if_error_503);
    tcase_add_test(tc, test_stale_if_error_refused);
    tcase_add_test(tc, test_max_stale_option);
    tcase_add_test(tc, test_stale_from_open_circuit_and_recovery);
    tcase_add_test(tc, test_stale_from_manual_trip);
    tcase_add_test(tc, test_bypass_neither_reads_nor_writes);
    tcase_add_test(tc, test_revalidate_option);
    tcase_add_test(tc, test_only_if_cached);
    tcase_add_test(tc, test_lru_max_entries);
    tcase_add_test(tc, test_max_bytes_bound);
    tcase_add_test(tc, test_max_entry_bytes);
    tcase_add_test(tc, test_head);
    tcase_add_test(tc, test_304_after_entry_vanished);
    tcase_add_test(tc, test_304_for_replaced_version_etag);
    tcase_add_test(tc, test_304_for_replaced_version_last_modified);
    tcase_add_test(tc, test_cached_4xx_is_http_error);
    tcase_add_test(tc, test_stale_4xx_is_http_error);
    tcase_add_test(tc, test_extreme_bounds);
    tcase_add_test(tc, test_request_json_echo);
    tcase_add_test(tc, test_response_json_real_and_not_json);
    tcase_add_test(tc, test_age_on_hits);
    tcase_add_test(tc, test_hop_by_hop_not_stored);
    tcase_add_test(tc, test_request_cache_control);
    tcase_add_test(tc, test_invalidate_location);
    tcase_add_test(tc, test_range_from_cache);
    tcase_add_test(tc, test_416_keeps_full_response);
    tcase_add_test(tc, test_head_freshens_get);
    tcase_add_test(tc, test_caller_conditional);
    tcase_add_test(tc, test_304_updates);
    tcase_add_test(tc, test_directive_parsing);
    tcase_add_test(tc, test_vary_normalised);
    tcase_add_test(tc, test_cacheable_statuses_and_5xx);
    tcase_add_test(tc, test_must_understand_swr);
    suite_add_tcase(s, tc);

    /* Its own case, so that CK_RUN_CASE=concurrency runs it alone (under
     * TSan with CK_FORK=no). */
    tc = tcase_create("concurrency");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_concurrent_readers_writers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(cache_http_suite()); }
