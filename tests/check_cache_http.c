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

/* One origin's metrics (there is only one in these tests). */
static api_origin_metrics origin_metrics(env *e, api_cache_metrics *cache)
{
    api_client_metrics m;
    api_origin_metrics om;

    ck_assert_int_eq(api_client_metrics_get(e->c, &m), CB_OK);
    ck_assert_uint_eq(m.origin_count, 1);
    om = m.origins[0];
    om.origin = NULL;
    if (cache)
        *cache = m.cache;
    api_client_metrics_free(&m);
    return om;
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
static cb_err get(env *e, const char *path, const api_cache_options *co,
                  const char *const *headers, api_response *r)
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
    env          e;
    api_response r;
    char        *first;
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
    om = origin_metrics(&e, NULL);
    ck_assert_uint_eq(om.cache_hits, 1);
    ck_assert_uint_eq(om.cache_misses, 1);
    ck_assert_uint_eq(om.attempts, 1);
    free(first);
    env_stop(&e);
}
END_TEST

START_TEST(test_etag_revalidation_304)
{
    env          e;
    api_response r;
    char        *first;
    api_origin_metrics om;
    const char  *path = "/cache/b?cc=max-age=10&etag=x";

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

    om = origin_metrics(&e, NULL);
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
    ck_assert_uint_eq(origin_metrics(&e, NULL).cache_hits, 0);
    ck_assert_uint_eq(origin_metrics(&e, NULL).cache_not_modified, 3);

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
    ck_assert_uint_eq(origin_metrics(&e, NULL).cache_stale_served, 0);
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
    env          e;
    char        *b;

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
    env          e;
    api_response r;
    const char  *path = "/cache/l?cc=max-age=60";
    uint64_t     before;
    size_t       i;

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
    ck_assert_uint_eq(origin_metrics(&e, NULL).cache_stale_served, 1);

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

START_TEST(test_stale_if_error_503)
{
    stale_if_error_case(FIXTURE_DOWN_503, CB_ERR_HTTP);
}
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
    ck_assert_uint_eq(origin_metrics(&e, NULL).cache_stale_served, 1);
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
    env              e;
    api_cache_config cc = { .max_entries = 3 };
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
    env               e;
    api_cache_config  cc = { .max_entry_bytes = 1500 };
    api_response      r;
    char              pad[3000 + 8];
    const char       *hdr[] = { pad, NULL };
    const char       *path = "/cache/big?cc=max-age=60&vary=X-Pad";
    int               i;

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
    ck_assert_int_eq(api_request(e.c, "HEAD", "/cache/hd?cc=max-age=60", NULL, 0, NULL, &r),
                     CB_OK);
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
    ck_assert_uint_eq(origin_metrics(&e, NULL).cache_stale_served, 3);
    env_stop(&e);
}
END_TEST

/* ---- Extreme bounds ---------------------------------------------------------------- */

/* Every size bound at 0 (the default), 1, SIZE_MAX - 1 and SIZE_MAX (UINT_MAX
 * for max_entries), through api_client_new: the client works, reports the
 * bound, and stores a small response unless a bound of 1 byte forbids it. */
START_TEST(test_extreme_bounds)
{
    static const size_t sizes[] = { 0, 1, SIZE_MAX - 1, SIZE_MAX };
    static const unsigned counts[] = { 0, 1, UINT_MAX - 1, UINT_MAX };
    fixture *f = fixture_start();
    size_t   i, field;
    int      key = 0;

    ck_assert_ptr_nonnull(f);
    for (field = 0; field < 3; field++) {
        for (i = 0; i < 4; i++) {
            api_client_config cfg;
            api_client       *c;
            api_response      r;
            api_client_metrics m;
            char              path[64];
            bool              fits = true;

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
    om = origin_metrics(&e, &cm);
    ck_assert_uint_eq(om.cache_hits + om.cache_misses, CONC_THREADS * CONC_CALLS);
    /* Every miss went to the server (no retries); POSTs are extra, and so
     * is the plain request that follows a 304 whose entry another thread
     * evicted meanwhile (the caller never sees that 304: checked above). */
    ck_assert_uint_ge(om.attempts,
                      om.cache_misses + CONC_THREADS * (CONC_CALLS / CONC_POST_EVERY));
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
    suite_add_tcase(s, tc);

    /* Its own case, so that CK_RUN_CASE=concurrency runs it alone (under
     * TSan with CK_FORK=no). */
    tc = tcase_create("concurrency");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_concurrent_readers_writers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(cache_http_suite());
}
