/* The response cache: an in-memory, bounded (entries, bytes, per-entry
 * size), LRU, thread-safe store of GET/HEAD responses, keyed by method, URL
 * and the request headers the response's Vary names. */
#ifndef CBH_CACHE_H
#define CBH_CACHE_H

#include "cbhttp.h"

typedef struct cbh_cache cbh_cache;

/* cfg NULL = defaults. clock: monotonic ms (NULL = cb_clock_monotonic_ms);
 * wall: epoch seconds (NULL = time()). NULL on OOM. */
cbh_cache *cbh_cache_new(const api_cache_config *cfg, cb_clock_fn clock, void *clock_data,
                         int64_t (*wall)(void *), void *wall_data);
void       cbh_cache_free(cbh_cache *c);

typedef enum cbh_cache_res {
    CBH_CACHE_MISS = 0, /* nothing usable: go to the network */
    CBH_CACHE_FRESH,    /* resp was filled from the cache: no I/O */
    CBH_CACHE_STALE     /* an entry exists but must be revalidated: send cond */
} cbh_cache_res;

/* Conditional request headers for revalidation, "" when absent. */
typedef struct cbh_cache_cond {
    char if_none_match[1024];    /* "If-None-Match: \"etag\"" */
    char if_modified_since[64];  /* "If-Modified-Since: <date>" */
} cbh_cache_cond;

/*
 * Looks up method+url for a request carrying req_headers (NULL-terminated
 * "Name: value" lines, may be NULL; used for Vary). On FRESH, resp is filled
 * (status, body, headers, from_cache) and must then be returned as it is.
 * On STALE, cond holds the validators to send. opts may be NULL.
 */
cbh_cache_res cbh_cache_lookup(cbh_cache *c, const char *method, const char *url,
                               const char *const *req_headers, const api_cache_options *opts,
                               api_response *resp, cbh_cache_cond *cond);

/*
 * After a network response (resp filled: status, body, headers) to a
 * GET/HEAD: stores it when allowed, or on a 304 refreshes the stored entry's
 * headers and replaces resp's contents with the stored response (status,
 * body, merged headers; from_cache and revalidated set). request_ms and
 * response_ms are the monotonic times around the exchange. Returns
 * CB_ERR_NOMEM only when resp could not be rebuilt after a 304.
 */
cb_err cbh_cache_store(cbh_cache *c, const char *method, const char *url,
                       const char *const *req_headers, api_response *resp,
                       uint64_t request_ms, uint64_t response_ms);

/*
 * When a call failed with cause (or ended with a 5xx): fills resp with a
 * stale entry for method+url if one is allowed by max_stale_ms (opts) or its
 * stale-if-error, and not forbidden by must-revalidate / no-cache. Returns
 * true when resp was filled (from_cache, stale, cause set).
 */
bool cbh_cache_serve_stale(cbh_cache *c, const char *method, const char *url,
                           const char *const *req_headers, const api_cache_options *opts,
                           cb_err cause, api_response *resp);

/* Removes every entry for url (any method, any variant). */
void cbh_cache_invalidate(cbh_cache *c, const char *url);
void cbh_cache_clear(cbh_cache *c);
void cbh_cache_metrics(cbh_cache *c, api_cache_metrics *out);

#endif
