/* Cache-Control and the freshness arithmetic of RFC 9111 for a private
 * cache: which responses may be stored, for how long they are fresh, how
 * old they are, and whether they may stand in when stale. */
#ifndef CBH_CACHECTL_H
#define CBH_CACHECTL_H

#include <stdbool.h>
#include <stdint.h>

#include "cbhttp.h"

typedef struct cbh_cc {
    bool     no_store;
    bool     no_cache;        /* the unqualified form; no-cache="x" is treated alike */
    bool     must_revalidate; /* also proxy-revalidate: a private cache treats them alike */
    bool     has_max_age;
    uint64_t max_age_s;       /* saturates instead of overflowing */
    bool     has_stale_if_error;
    uint64_t stale_if_error_s;
    bool     only_if_cached;  /* request directive */
} cbh_cc;

/* Parses one Cache-Control header value into cc, adding to what cc already
 * holds (several headers combine; on contradictions the most restrictive
 * reading wins: the smallest max-age, any no-store). Unknown directives and
 * s-maxage are ignored. Never fails: bad syntax yields what could be read. */
void cbh_cc_parse(const char *value, cbh_cc *cc);

/* Parses every Cache-Control header of h. */
void cbh_cc_from_headers(const api_header *h, size_t count, cbh_cc *cc);

/* Calls fn(name, len, ctx) for each field name the Vary headers of h list
 * ("*" included, as a name). */
void cbh_vary_each(const api_header *h, size_t count,
                   void (*fn)(const char *name, size_t len, void *ctx), void *ctx);

/*
 * Freshness facts of a response received at response_epoch (local wall
 * clock, seconds) after request_epoch.
 */
typedef struct cbh_freshness {
    bool     storable;       /* may be stored at all (status, no-store, Vary: *) */
    bool     has_validator;  /* ETag or Last-Modified */
    uint64_t lifetime_ms;    /* freshness lifetime: max-age, else Expires - Date,
                                else heuristic (if allowed), else 0 */
    uint64_t initial_age_ms; /* corrected initial age (RFC 9111 4.2.3) */
    uint64_t stale_if_error_ms;
    bool     no_cache;       /* must revalidate before every use */
    bool     must_revalidate;/* never served stale */
} cbh_freshness;

/* Computes freshness for a response to a GET or HEAD. status other than the
 * heuristically cacheable ones (200, 203, 204, 300, 301, 308, 404, 405, 410,
 * 414) is storable only with explicit freshness (max-age or Expires); 5xx
 * (501 included), 1xx, 206 and 304 never. A storable response also needs a
 * lifetime > 0 or a validator, and a validator when it says no-cache.
 * An invalid max-age counts as 0 and an invalid Expires as already expired.
 * Heuristic freshness (10% of Date - Last-Modified, at most one day) only
 * when heuristic is true. Delta-seconds saturate at 2^31. */
void cbh_freshness_of(long status, const api_header *h, size_t count, int64_t request_epoch,
                      int64_t response_epoch, bool heuristic, cbh_freshness *out);

#endif
