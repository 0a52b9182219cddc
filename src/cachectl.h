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
    bool     no_cache;        /* either form below (kept for older readers) */
    bool     no_cache_bare;   /* the unqualified form: revalidate before every use */
    bool     no_cache_fields; /* no-cache="a, b": those fields are not stored */
    bool     must_revalidate; /* also proxy-revalidate: a private cache treats them alike */
    bool     has_max_age;
    uint64_t max_age_s; /* the smallest given; saturates instead of overflowing */
    bool     has_stale_if_error;
    uint64_t stale_if_error_s;
    bool     has_stale_while_revalidate; /* parsed only: no background revalidation yet */
    uint64_t stale_while_revalidate_s;
    bool     must_understand;
    /* Request directives. */
    bool     only_if_cached;
    bool     has_max_stale;
    uint64_t max_stale_s; /* UINT64_MAX for a bare max-stale (any staleness) */
    bool     has_min_fresh;
    uint64_t min_fresh_s;
} cbh_cc;

/* Parses one Cache-Control header value into cc, adding to what cc already
 * holds (several headers combine; on contradictions the most restrictive
 * reading wins: the smallest max-age, any no-store). A value must be
 * delta-seconds, quoted or not, with nothing after it but whitespace:
 * "max-age=1.5", "max-age=5x", "max-age=5 x" are invalid (max-age 0).
 * Whitespace around '=' is tolerated. Unknown directives, private (we are
 * a private cache) and s-maxage are ignored. Never fails: bad syntax yields
 * what could be read. */
void cbh_cc_parse(const char *value, cbh_cc *cc);

/* Parses every Cache-Control header of h. */
void cbh_cc_from_headers(const api_header *h, size_t count, cbh_cc *cc);

/* True when a Cache-Control header of h has directive (e.g. "no-cache")
 * with a field-name list naming field (case-insensitive). */
bool cbh_cc_lists_field(const api_header *h, size_t count, const char *directive,
                        const char *field);

/* Calls fn(name, len, ctx) for each field name the Vary headers of h list
 * ("*" included, as a name). */
void cbh_vary_each(const api_header *h, size_t                                count,
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
    uint64_t stale_while_revalidate_ms; /* parsed, not acted on yet */
    bool     no_cache;                  /* must revalidate before every use (unqualified) */
    bool     no_cache_fields;           /* no-cache="...": omit the fields it lists */
    bool     must_revalidate;           /* never served stale */
} cbh_freshness;

/* Computes freshness for a response to a GET or HEAD (RFC 9111 3, 4.2).
 * Storable: a final status that is cacheable by default (200, 203, 204,
 * 206, 300, 301, 308, 404, 405, 410, 414, 501) or has explicit freshness
 * (max-age or Expires), 5xx included; never 1xx or 304. It also needs a
 * lifetime > 0 or a validator, a validator when it says no-cache, no
 * no-store (ignored with must-understand on a status we implement) and no
 * Vary: *. With must-understand, other statuses are never stored.
 * Freshness information that is invalid (max-age, Expires, Age) makes the
 * response stale: lifetime 0; so do two different Expires or Age values.
 * Of several max-age values the smallest rules (cbh_cc_parse).
 * Heuristic freshness (10% of Date - Last-Modified, at most one day) only
 * when heuristic is true, for the statuses cacheable by default.
 * Delta-seconds saturate at 2^31. */
void cbh_freshness_of(long status, const api_header *h, size_t count, int64_t request_epoch,
                      int64_t response_epoch, bool heuristic, cbh_freshness *out);

#endif
