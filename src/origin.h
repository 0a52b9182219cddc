/* The per-origin map: one breaker, one retry budget and a set of counters
 * per origin key, created on first use and evicted when idle (CLOSED and
 * unused for idle_ms; OPEN and HALF_OPEN breakers are never evicted). */
#ifndef CBH_ORIGIN_H
#define CBH_ORIGIN_H

#include <pthread.h>
#include <stdatomic.h>

/* alloc.h before uthash.h: it routes uthash's allocations through
 * cbh_malloc. OOM inside uthash must not exit() (the default): origin.c
 * sees a failed add as hh.tbl == NULL. */
#include "alloc.h"
#ifndef HASH_NONFATAL_OOM
#define HASH_NONFATAL_OOM 1
#endif
#include <uthash.h>

#include "cbhttp.h"
#include "retry.h"

typedef struct cbh_origins cbh_origins;

typedef struct cbh_origin {
    char       *key;     /* "scheme://host:port" */
    cb_breaker *breaker;
    cb_config   applied; /* the config last applied to the breaker (under cfg_lock) */
    bool        pinned;  /* set by api_client_set_origin_breaker: kept, never evicted.
                            Write it only while holding a reference (between
                            cbh_origins_get and cbh_origins_release): the
                            sweeper reads it only after seeing refs == 0. */
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
    pthread_mutex_t  cfg_lock; /* added: serialises reconfiguration and guards applied */
    UT_hash_handle   hh;
} cbh_origin;

/* Called for every breaker event of every origin, with no lock of the map
 * held (breaker events raised while the map examines or reconfigures an
 * origin included), so it may call back into the map. */
typedef void (*cbh_origin_event_fn)(cbh_origin *o, const cb_event *ev, void *user_data);

typedef struct cbh_origins_config {
    cb_config           defaults; /* breaker config for new origins (callbacks ignored) */
    unsigned            idle_ms;  /* eviction age; 0 = default 600000 */
    cb_clock_fn         clock;    /* NULL = cb_clock_monotonic_ms */
    void               *clock_data;
    cbh_origin_event_fn on_event; /* may be NULL: then breakers get no listener at
                                     all, which keeps their success path lock-free */
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
 *
 * Keys are matched byte for byte: callers normalise them (cbh_url_resolve
 * does). The callbacks and clock in cfg are ignored: every breaker gets the
 * map's event trampoline, classifier and clock. "Differs" compares the
 * numeric fields and the mode only. *err is CB_OK on success and
 * CB_ERR_INVALID (not found) when create is false and the key is missing.
 *
 * Eviction runs here, incrementally and bounded: a get that creates an
 * origin examines 4 more entries for idleness, and every 4096 gets or every
 * idle_ms / 8 one get examines 64; so a client talking to ever new hosts
 * keeps at most about 4/3 of the origins used within idle_ms (plus the
 * unevictable ones). The sweep checks breaker states without the map lock.
 */
cbh_origin *cbh_origins_get(cbh_origins *m, const char *key, size_t key_len,
                            const cb_config *cfg, bool create, cb_err *err);
/* Drops a reference taken by cbh_origins_get, stamping last_used_ms first
 * so that a long call does not look idle when it ends. NULL is fine. */
void        cbh_origins_release(cbh_origin *o);

/* Evicts idle origins now (also done incrementally by cbh_origins_get):
 * refs == 0, not pinned, state CLOSED, last used idle_ms or more ago. One
 * pass over the map, in bounded batches that drop the lock in between.
 * Returns how many were removed. */
size_t cbh_origins_evict_idle(cbh_origins *m);

/* Number of origins in the map. */
size_t cbh_origins_count(cbh_origins *m);

/* Calls fn for every origin. fn runs without the map's lock on a snapshot of
 * referenced origins (so breaker events it triggers may call into the map),
 * falling back to running under the lock when the snapshot cannot be
 * allocated: fn itself must not call back into the map. The references it
 * takes do not refresh last_used_ms. */
void cbh_origins_foreach(cbh_origins *m, void (*fn)(cbh_origin *o, void *ud), void *ud);

#endif
