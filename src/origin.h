/* The per-origin map: one breaker, one retry budget and a set of counters
 * per origin key, created on first use, evicted when no call used it for
 * idle_ms (whatever its breaker state) and, least recently used first, when
 * the map holds max_origins. Origins in use or pinned are never evicted.
 *
 * Memory. An origin is compact until a call goes through it: one
 * allocation holding the key, the map's links and a compact breaker that
 * shares the map's config (about 230 bytes). Its first call inflates it
 * (cbh_origins_inflate): the breaker's stripes and window, the retry
 * budget's slots and the counters are allocated then (about 3.4 KB).
 * Once nobody has used it for the deflation time (the longer of the
 * breaker's failure window and the budget's CBH_BUDGET_SLOTS seconds) it
 * deflates again, its counts kept in the breaker's carry, so that a map of
 * a million origins that each served a call costs what a map of compact
 * ones does. Deflation changes nothing an origin reports or decides; it is
 * skipped while the breaker holds more than counts (not CLOSED, a run of
 * failures, a count window) or the counts outgrow the carry. Origins that
 * are only looked up, tripped or reset stay compact. */
#ifndef CBH_ORIGIN_H
#define CBH_ORIGIN_H

#include <pthread.h>
#include <stdatomic.h>

#include "cbhttp.h"
#include "breaker_core.h"
#include "retry.h"
#include "table.h"

typedef struct cbh_origins cbh_origins;

/* What an origin's calls need beyond its breaker: allocated by its first
 * call (cbh_origins_inflate). */
typedef struct cbh_origin_ext {
    cbh_budget budget;
    /* The counters of api_origin_metrics (metrics.h lists them). */
#define CBH_ORIGIN_COUNTER_(field, json, prom, help) _Atomic uint64_t field;
    API_RETRY_COUNTERS(CBH_ORIGIN_COUNTER_)
    API_CACHE_COUNTERS(CBH_ORIGIN_COUNTER_)
#undef CBH_ORIGIN_COUNTER_
} cbh_origin_ext;

typedef struct cbh_origin {
    cb_breaker              breaker;      /* compact until the first call; shares the map's config
                             until a call brings other numbers */
    cbh_origin_ext *_Atomic ext;          /* NULL until the first call */
    _Atomic uint64_t        last_used_ms; /* the start of its last call, or its end once released */
    _Atomic unsigned        refs;         /* callers holding it: not evicted while > 0. Taken only
                              under the map's lock, dropped without it. */
    unsigned                key_len;
    bool                    pinned; /* set by cbh_origins_pin (api_client_set_origin_breaker):
                            kept, never evicted, off the LRU list. Under the
                            map's lock. */
    cbh_link                link;   /* the map's table, by key; under the map's lock */
    /* The map's LRU list, most recently got first; under the map's lock. */
    struct cbh_origin *lru_prev, *lru_next;
    char               key[]; /* "scheme://host:port", NUL-terminated */
} cbh_origin;

/* The map o belongs to: its breaker's env is the map's config. */
cbh_origins *cbh_origin_map(const cbh_origin *o);

/* The origin's calls' part: NULL before its first call. The acquire pairs
 * with the release that publishes it. */
static inline cbh_origin_ext *cbh_origin_ext_of(cbh_origin *o)
{
    return atomic_load_explicit(&o->ext, memory_order_acquire);
}

/* The retry and cache counters of o (held by the caller) into om's
 * fields of API_RETRY_COUNTERS and API_CACHE_COUNTERS. */
void cbh_origin_counters(cbh_origin *o, api_origin_metrics *om);

/* Makes o ready for a call (held by the caller): allocates what its calls
 * count in, unless done. CB_OK or CB_ERR_NOMEM. Thread-safe. */
cb_err cbh_origins_inflate(cbh_origin *o);

/* Called for every breaker event of every origin, with no lock of the map
 * held (breaker events raised while the map examines or reconfigures an
 * origin included), so it may call back into the map. */
typedef void (*cbh_origin_event_fn)(cbh_origin *o, const cb_event *ev, void *user_data);

typedef struct cbh_origins_config {
    cb_config           defaults;    /* breaker config for new origins (callbacks ignored) */
    unsigned            idle_ms;     /* eviction age; 0 = default 600000 */
    size_t              max_origins; /* most origins at once; 0 = default 100000,
                                        SIZE_MAX = no limit */
    cb_clock_fn         clock;       /* NULL = cb_clock_monotonic_ms */
    void               *clock_data;
    cbh_origin_event_fn on_event; /* may be NULL: then breakers get no listener at
                                     all, which keeps their success path lock-free */
    void               *event_data;
} cbh_origins_config;

/* NULL on OOM or when cfg->defaults is not a valid breaker config. */
cbh_origins *cbh_origins_new(const cbh_origins_config *cfg);
void         cbh_origins_free(cbh_origins *m);

/*
 * Finds the origin for key (key_len bytes, no NUL needed), creating it with
 * cfg (NULL = the defaults) when missing and create is true. When it exists
 * and cfg is given and differs from what was applied, its breaker is
 * reconfigured (state and counts kept). Takes a reference: pair with
 * cbh_origins_release. NULL when missing (create false), on OOM, when the
 * map is full, or for an invalid cfg (*err says which: CB_ERR_INVALID /
 * CB_ERR_NOMEM; err may be NULL). Updates last_used_ms and moves the origin
 * to the front of the LRU list. Thread-safe.
 *
 * Keys are matched byte for byte: callers normalise them (cbh_url_resolve
 * does). The callbacks and clock in cfg are ignored: every breaker gets the
 * map's event trampoline, classifier and clock. "Differs" compares the
 * numeric fields and the mode only. *err is CB_OK on success and
 * CB_ERR_INVALID (not found) when create is false and the key is missing.
 *
 * Eviction and deflation run here, bounded, whatever the map's size:
 * - Idle: every get looks at the tail of the LRU list (the origin whose last
 *   call started longest ago) and frees up to 4 origins unused for idle_ms
 *   or more, up to 64 once every idle_ms / 8; the look stops at the first
 *   origin that is not idle, so it costs O(1) when nothing is. The breaker
 *   state does not matter (an OPEN or HALF_OPEN breaker goes too): a later
 *   call to that origin starts on a fresh CLOSED breaker with zeroed
 *   counters and budget. Acceptable because nobody called it for idle_ms:
 *   an OPEN breaker would have let probes through long before (idle_ms is
 *   meant to exceed the reset timeout), and the fresh one opens again after
 *   failure_threshold failures. An origin whose call ended recently but
 *   started long ago sits at the tail and holds back the idle ones in front
 *   of it until it is idle itself: the delay is at most its call's length.
 * - Cap: creating an origin in a map holding max_origins first frees the
 *   least recently used origin (by the start of its last call) that no
 *   caller holds, idle or not. Held origins met at the tail are moved to
 *   the front (they are in use), so the cost is O(1) plus the number of
 *   origins held at that moment. When every origin is held or pinned, the
 *   get creates nothing and fails with CB_ERR_NOMEM: the count never
 *   exceeds max_origins.
 * - Deflation: a cursor walks the LRU list from the tail; every get
 *   looks at up to as many origins as the idle sweep may free, deflating
 *   those unused for the deflation time, and stops at the first used
 *   since. Each origin is looked at once per get of it: one that cannot
 *   deflate then (an OPEN breaker, say) stays inflated until its next
 *   call or its eviction.
 * Held (refs > 0) and pinned origins are never evicted or deflated. Evicted origins are
 * freed after the lock is dropped; no breaker is read or called during
 * eviction, so no event is raised by it.
 */
cbh_origin *cbh_origins_get(cbh_origins *m, const char *key, size_t key_len, const cb_config *cfg,
                            bool create, cb_err *err);
/* Drops a reference taken by cbh_origins_get, stamping last_used_ms first
 * so that a long call does not look idle when it ends. NULL is fine. */
void cbh_origins_release(cbh_origin *o);

/* Pins o (held by the caller, between cbh_origins_get and
 * cbh_origins_release): it is never evicted, idle or not; it still counts
 * towards max_origins. Thread-safe. NULL is fine. */
void cbh_origins_pin(cbh_origin *o);

/* Evicts idle origins now (also done incrementally by cbh_origins_get):
 * refs == 0, not pinned, last used idle_ms or more ago, whatever the
 * breaker state. Walks the LRU list from its tail in bounded batches that
 * drop the lock in between, until the first origin that is not idle; then
 * deflates, the same way, what the cursor finds unused for the deflation
 * time. Returns how many were removed. */
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
