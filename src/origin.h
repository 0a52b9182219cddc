/* The per-origin map: one breaker, one retry budget and a set of counters
 * per origin key, created on first use and evicted when idle (CLOSED and
 * unused for idle_ms; OPEN and HALF_OPEN breakers are never evicted). */
#ifndef CBH_ORIGIN_H
#define CBH_ORIGIN_H

#include <stdatomic.h>
#include <uthash.h>

#include "alloc.h"
#include "cbhttp.h"
#include "retry.h"

typedef struct cbh_origins cbh_origins;

typedef struct cbh_origin {
    char       *key;     /* "scheme://host:port" */
    cb_breaker *breaker;
    cb_config   applied; /* the config last applied to the breaker */
    bool        pinned;  /* set by api_client_set_origin_breaker: kept, never evicted */
    cbh_budget  budget;
    cbh_origins *map;

    _Atomic uint64_t attempts;
    _Atomic uint64_t retries;
    _Atomic uint64_t retries_denied;
    _Atomic uint64_t cache_hits;
    _Atomic uint64_t cache_misses;
    _Atomic uint64_t cache_revalidations;
    _Atomic uint64_t cache_not_modified;
    _Atomic uint64_t cache_stale_served;

    _Atomic uint64_t last_used_ms;
    _Atomic unsigned refs; /* callers holding it: not evicted while > 0 */
    UT_hash_handle   hh;
} cbh_origin;

/* Called for every breaker event of every origin, with no lock held. */
typedef void (*cbh_origin_event_fn)(cbh_origin *o, const cb_event *ev, void *user_data);

typedef struct cbh_origins_config {
    cb_config           defaults; /* breaker config for new origins (callbacks ignored) */
    unsigned            idle_ms;  /* eviction age; 0 = default 600000 */
    cb_clock_fn         clock;    /* NULL = cb_clock_monotonic_ms */
    void               *clock_data;
    cbh_origin_event_fn on_event; /* may be NULL */
    void               *event_data;
    cb_classify_fn      classify; /* handed to every breaker; may be NULL */
    void               *classify_data;
} cbh_origins_config;

/* NULL on OOM or when cfg->defaults is not a valid breaker config. */
cbh_origins *cbh_origins_new(const cbh_origins_config *cfg);
void         cbh_origins_free(cbh_origins *m);

/*
 * Finds the origin for key (key_len bytes, no NUL needed), creating it with
 * cfg (NULL = the defaults) when missing and create is true. When it exists
 * and cfg is given and differs from what was applied, its breaker is
 * reconfigured (state and counts kept). Takes a reference: pair with
 * cbh_origins_release. NULL when missing (create false), on OOM, or for an
 * invalid cfg (*err says which: CB_ERR_INVALID / CB_ERR_NOMEM; err may be
 * NULL). Updates last_used_ms. Thread-safe.
 */
cbh_origin *cbh_origins_get(cbh_origins *m, const char *key, size_t key_len,
                            const cb_config *cfg, bool create, cb_err *err);
void        cbh_origins_release(cbh_origin *o);

/* Evicts idle origins now (also done incrementally by cbh_origins_get).
 * Returns how many were removed. */
size_t cbh_origins_evict_idle(cbh_origins *m);

/* Number of origins in the map. */
size_t cbh_origins_count(cbh_origins *m);

/* Calls fn for every origin while holding the map's lock: fn must not call
 * back into the map. */
void cbh_origins_foreach(cbh_origins *m, void (*fn)(cbh_origin *o, void *ud), void *ud);

#endif
