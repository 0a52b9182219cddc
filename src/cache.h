/* The response cache: an in-memory, bounded (entries, bytes, per-entry
 * size), LRU, thread-safe store of GET/HEAD responses, keyed by method, URL
 * and the request headers the response's Vary names.
 *
 * - HEAD: HEAD responses are stored apart from GET ones; a HEAD lookup uses
 *   a HEAD entry, else the URL's GET entry (headers only, empty body). A GET
 *   lookup never uses a HEAD entry.
 * - Variants: each URL keeps up to 16 entries (method x Vary values); a
 *   lookup matches an entry when every header its Vary named has the same
 *   normalised value in req_headers as when it was stored (absent ==
 *   absent; all lines of a name joined, list whitespace and Accept* case
 *   folded). req_headers must therefore be every header the request
 *   really sent (defaults included). A 206 also varies on Range.
 * - 5xx: stored when explicitly fresh, beside the newest good response of
 *   the same variant; a lookup uses it only while fresh, serve_stale never.
 * - Served responses carry a computed Age (stored ones never keep one);
 *   hop-by-hop fields, those Connection names and no-cache="..." fields
 *   are not stored.
 * - Bytes (max_bytes, max_entry_bytes, metrics): body + header block + URL +
 *   the stored Vary names and values of each entry.
 * - Request headers: Cache-Control: no-store -> lookup misses and store does
 *   not store; no-cache, max-age=0 (or Pragma: no-cache alone) -> revalidate;
 *   max-age=N -> an entry older than N s is treated as stale; min-fresh=N,
 *   max-stale[=N] as RFC 9111 5.2.1; If-None-Match / If-Modified-Since ->
 *   a 304 from a fresh matching entry (else never our validators beside
 *   them); If-Match / If-Unmodified-Since -> miss; Range (+ If-Range) -> a
 *   206 cut from a stored 200, several ranges -> miss.
 * - The cache never touches an api_response: it reads and hands back
 *   cbh_payload (response.h), and the caller moves it into the response
 *   and sets from_cache, revalidated, stale and cause. A payload the cache
 *   fills has what it held freed first (cbh_payload_free), so pass a
 *   zeroed or owned one.
 * - All functions are thread-safe. The clock and wall callbacks are called
 *   with no lock held. cfg->disabled is not looked at: the caller simply
 *   does not create a cache. */
#ifndef CBH_CACHE_H
#define CBH_CACHE_H

#include "cbhttp.h"
#include "response.h"

typedef struct cbh_cache cbh_cache;

/* cfg NULL = defaults. clock: monotonic ms (NULL = cb_clock_monotonic_ms);
 * wall: epoch seconds (NULL = time()). NULL on OOM. Ages run on the
 * monotonic clock; the wall clock is read only at store time, to compare
 * with Date/Expires/Last-Modified. */
cbh_cache *cbh_cache_new(const api_cache_config *cfg, cb_clock_fn clock, void *clock_data,
                         int64_t (*wall)(void *), void *wall_data);
void       cbh_cache_free(cbh_cache *c);

typedef enum cbh_cache_res {
    CBH_CACHE_MISS = 0, /* nothing usable: go to the network */
    CBH_CACHE_FRESH,    /* out was filled from the cache: no I/O */
    CBH_CACHE_STALE     /* an entry exists but must be revalidated: send cond */
} cbh_cache_res;

/* Conditional request headers for revalidation, "" when absent. */
typedef struct cbh_cache_cond {
    char if_none_match[1024];   /* "If-None-Match: \"etag\"" */
    char if_modified_since[64]; /* "If-Modified-Since: <date>" */
} cbh_cache_cond;

/*
 * Looks up method+url for a request carrying req_headers (NULL-terminated
 * "Name: value" lines, may be NULL; used for Vary). On FRESH, *out holds a
 * copy of the entry (status, body, headers; for a HEAD, no body), owned by
 * the caller, to be returned as it is (marked from_cache): the stored 200,
 * a 304 for the caller's own conditional, a 206 for its Range, or a fresh
 * stored 5xx (the caller then tries cbh_cache_serve_stale); otherwise *out
 * is untouched. On STALE, cond holds the validators to send (cond NULL: never
 * STALE). opts may be NULL. MISS for opts->bypass, a NULL out, methods
 * other than GET/HEAD, no entry, a stale entry without a validator (kept
 * for serve_stale), or when copying the entry ran out of memory. FRESH needs
 * current_age < lifetime, no no-cache (stored or requested) and no
 * opts->revalidate.
 */
cbh_cache_res cbh_cache_lookup(cbh_cache *c, const char *method, const char *url,
                               const char *const *req_headers, const api_cache_options *opts,
                               cbh_payload *out, cbh_cache_cond *cond);

/* True when the request's Cache-Control says only-if-cached (RFC 9111
 * 5.2.1.7): the caller treats it as api_cache_options.only_if_cached. */
bool cbh_cache_only_if_cached(const char *const *req_headers);

/*
 * After a network response *p (status, body, headers) to a GET/HEAD:
 * stores a copy of it when allowed (*p is only read), or on a 304 refreshes
 * the stored entry it validates and replaces *p with that stored response
 * (status, body, merged headers; what *p held is freed) and sets
 * *refreshed: the caller then marks the response from_cache and
 * revalidated, not stale. *refreshed is false otherwise; refreshed may be
 * NULL.
 *
 * cond: the validators the request sent, as cbh_cache_lookup gave them
 * (NULL or empty when the request was not made conditional by the cache).
 * A 304 only refreshes an entry the request would use whose validators it
 * confirms (RFC 9111 4.3.4): with a strong ETag, an entry with that same
 * strong ETag; with a weak ETag, an entry whose ETag matches it weakly;
 * without an ETag, an entry whose Last-Modified equals the 304's (if it
 * has one) and whose ETag and Last-Modified are the ones cond sent; with
 * no validator at all and no cond, only an entry that has none either. The
 * newest such entry is refreshed. A 304 that validates no entry (another
 * version was stored meanwhile, or the entry went) leaves *p as it is:
 * the caller asks again without validators.
 *
 * request_ms and response_ms are the monotonic times around the exchange.
 * Do not call it for opts->bypass or for a response served from the cache.
 * A final response below 500 that is not stored removes the entries it
 * supersedes (same method and variant); a 5xx leaves them for serve_stale,
 * and a stored 5xx supersedes only 5xx. A 304 to the caller's own
 * conditional (no cond) refreshes the entry but stays a 304 in *p. A 200
 * to a HEAD updates or makes stale the GET entries (RFC 9111 4.3.5).
 * Returns CB_ERR_NOMEM only when *p could not be rebuilt after a 304
 * (*p then still holds the 304, *refreshed false); CB_OK otherwise.
 */
cb_err cbh_cache_store(cbh_cache *c, const char *method, const char *url,
                       const char *const *req_headers, const cbh_cache_cond *cond, cbh_payload *p,
                       uint64_t request_ms, uint64_t response_ms, bool *refreshed);

/*
 * When a call failed with cause (or ended with a 5xx): fills *out with a
 * stale entry for method+url if one is allowed by max_stale_ms (opts) or its
 * stale-if-error, and not forbidden by must-revalidate / no-cache. Allowed
 * means current_age - lifetime <= max(max_stale_ms, stale-if-error); a
 * still-fresh entry always qualifies. Returns true when *out was filled
 * (status, body, headers; owned by the caller, who marks the response
 * from_cache and stale with cause); false leaves *out untouched. cause is
 * the caller's to record; the cache does not look at it.
 */
bool cbh_cache_serve_stale(cbh_cache *c, const char *method, const char *url,
                           const char *const *req_headers, const api_cache_options *opts,
                           cb_err cause, cbh_payload *out);

/* Removes every entry for url (any method, any variant); counted in
 * metrics' invalidations (one per entry). */
void cbh_cache_invalidate(cbh_cache *c, const char *url);
/* After a successful (2xx, 3xx) unsafe request to url: invalidates the
 * URLs its response's Location and Content-Location headers name, resolved
 * against url, when they have url's origin (RFC 9111 4.4); others, and
 * references that do not resolve, are left alone. */
void cbh_cache_invalidate_related(cbh_cache *c, const char *url, const api_header *h, size_t count);
void cbh_cache_clear(cbh_cache *c);
void cbh_cache_metrics(cbh_cache *c, api_cache_metrics *out);

#endif
