/*
 * The per-origin map. One mutex guards the hash table; each origin carries an
 * atomic reference count so that a call can use its origin without the lock
 * while the sweeper knows never to free it.
 *
 * Eviction is incremental: a cursor walks the table a few entries at a time,
 * driven by gets. An entry is freed only when nobody holds it, nobody pinned
 * it, it has been unused for idle_ms and its breaker is CLOSED: forgetting an
 * OPEN breaker would let traffic back onto a failing host.
 */
#include <string.h>

#include "origin.h"

#define ORIGIN_DEFAULT_IDLE_MS 600000u
#define ORIGIN_SWEEP_BATCH 64u     /* most candidates checked per sweep step */
#define ORIGIN_SWEEP_ON_CREATE 4u  /* entries examined by a get that creates */
#define ORIGIN_SWEEP_EVERY_GETS 4096u
#define ORIGIN_EVICT_STEP 1024u    /* most entries examined per lock hold */

struct cbh_origins {
    pthread_mutex_t    lock;
    cbh_origin        *head;   /* the uthash table */
    cbh_origin        *cursor; /* next entry the sweep examines; NULL = the head */
    cbh_origins_config cfg;
    unsigned           idle_ms;
    unsigned           sweep_every_ms;
    unsigned           gets_since_sweep;
    uint64_t           last_sweep_ms;
};

static uint64_t origin_now(const cbh_origins *m)
{
    return m->cfg.clock ? m->cfg.clock(m->cfg.clock_data) : cb_clock_monotonic_ms(NULL);
}

/* Every breaker's listener: tags the event with its origin. No map lock is
 * held here (see origin_sweep and origin_reconfigure). */
static void origin_on_event(cb_breaker *b, const cb_event *ev, void *user_data)
{
    cbh_origin  *o = user_data;
    cbh_origins *m = o->map;

    (void)b;
    if (m->cfg.on_event)
        m->cfg.on_event(o, ev, m->cfg.event_data);
}

/* The config a breaker of o gets: in's numbers (NULL = the map's defaults)
 * with the map's own callbacks and clock, whatever in carried. */
static void origin_breaker_cfg(const cbh_origins *m, cbh_origin *o, const cb_config *in,
                               cb_config *out)
{
    *out = in ? *in : m->cfg.defaults;
    /* A listener sends every success of the breaker down its locked path,
     * so the trampoline is installed only when someone listens. */
    out->listener = m->cfg.on_event ? origin_on_event : NULL;
    out->listener_data = m->cfg.on_event ? o : NULL;
    out->classify = m->cfg.classify;
    out->classify_data = m->cfg.classify_data;
    out->clock = m->cfg.clock;
    out->clock_data = m->cfg.clock_data;
}

/* Field by field rather than memcmp: padding and callbacks must not count. */
static bool origin_same_numbers(const cb_config *a, const cb_config *b)
{
    return a->failure_threshold == b->failure_threshold &&
           a->failure_window_ms == b->failure_window_ms &&
           a->reset_timeout_ms == b->reset_timeout_ms && a->half_open_max == b->half_open_max &&
           a->success_threshold == b->success_threshold &&
           a->failure_rate_threshold == b->failure_rate_threshold &&
           a->minimum_calls == b->minimum_calls && a->slow_call_ms == b->slow_call_ms &&
           a->slow_call_rate_threshold == b->slow_call_rate_threshold &&
           a->max_reset_timeout_ms == b->max_reset_timeout_ms &&
           a->reset_backoff_multiplier == b->reset_backoff_multiplier &&
           a->reset_jitter_pct == b->reset_jitter_pct && a->mode == b->mode;
}

cbh_origins *cbh_origins_new(const cbh_origins_config *cfg)
{
    cbh_origins *m;
    cb_breaker  *probe;
    cb_config    c;

    m = cbh_calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    if (cfg)
        m->cfg = *cfg;
    m->idle_ms = m->cfg.idle_ms ? m->cfg.idle_ms : ORIGIN_DEFAULT_IDLE_MS;
    m->sweep_every_ms = m->idle_ms / 8 ? m->idle_ms / 8 : 1;
    /* Validate the defaults once, so that creating an origin later fails
     * only for OOM or a bad per-request config. */
    c = m->cfg.defaults;
    c.listener = NULL;
    c.classify = NULL;
    c.clock = m->cfg.clock;
    c.clock_data = m->cfg.clock_data;
    if (!(probe = cb_breaker_new(&c))) {
        cbh_free(m);
        return NULL;
    }
    cb_breaker_free(probe);
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        cbh_free(m);
        return NULL;
    }
    m->last_sweep_ms = origin_now(m);
    return m;
}

static void origin_destroy(cbh_origin *o)
{
    cb_breaker_free(o->breaker);
    cbh_budget_destroy(&o->budget);
    pthread_mutex_destroy(&o->cfg_lock);
    cbh_free(o->key);
    cbh_free(o);
}

void cbh_origins_free(cbh_origins *m)
{
    cbh_origin *o, *tmp;

    if (!m)
        return;
    HASH_ITER(hh, m->head, o, tmp)
    {
        HASH_DELETE(hh, m->head, o);
        origin_destroy(o);
    }
    pthread_mutex_destroy(&m->lock);
    cbh_free(m);
}

/*
 * Creates and adds an origin; called with the lock held, so that two threads
 * asking for a new key at once create it once. *err gets CB_ERR_INVALID when
 * cfg is rejected by the breaker, CB_ERR_NOMEM otherwise.
 */
static cbh_origin *origin_create(cbh_origins *m, const char *key, size_t key_len,
                                 const cb_config *cfg, uint64_t now, cb_err *err)
{
    cbh_origin *o;
    cb_config   c;

    *err = CB_ERR_NOMEM;
    if (!(o = cbh_calloc(1, sizeof(*o))))
        return NULL;
    if (!(o->key = cbh_strndup(key, key_len)) || pthread_mutex_init(&o->cfg_lock, NULL) != 0) {
        cbh_free(o->key);
        cbh_free(o);
        return NULL;
    }
    o->map = m;
    cbh_budget_init(&o->budget);
    origin_breaker_cfg(m, o, cfg, &c);
    if (!(o->breaker = cb_breaker_new(&c))) {
        /* cb_breaker_new says NULL for both a bad config and OOM; the map's
         * defaults are known to be valid, so a second try tells them apart. */
        cb_breaker *probe;
        cb_config   d;

        if (cfg) {
            origin_breaker_cfg(m, o, NULL, &d);
            if ((probe = cb_breaker_new(&d)) != NULL) {
                cb_breaker_free(probe);
                *err = CB_ERR_INVALID;
            }
        }
        o->breaker = NULL;
        origin_destroy(o);
        return NULL;
    }
    o->applied = c;
    atomic_init(&o->refs, 1);
    atomic_init(&o->last_used_ms, now);
    HASH_ADD_KEYPTR(hh, m->head, o->key, key_len, o);
    if (!o->hh.tbl) { /* uthash could not allocate: the add was undone */
        origin_destroy(o);
        return NULL;
    }
    *err = CB_OK;
    return o;
}

/* Evictable now: called with the lock held. refs is read first, with
 * acquire: seeing 0 makes every write its holders did (pinned included)
 * visible. */
static bool origin_idle(const cbh_origins *m, cbh_origin *o, uint64_t now)
{
    uint64_t last;

    if (atomic_load_explicit(&o->refs, memory_order_acquire) != 0 || o->pinned)
        return false;
    last = atomic_load_explicit(&o->last_used_ms, memory_order_relaxed);
    return last <= now && now - last >= m->idle_ms;
}

/* Removes o from the table, keeping the sweep cursor valid. Lock held. */
static void origin_unlink(cbh_origins *m, cbh_origin *o)
{
    if (m->cursor == o)
        m->cursor = o->hh.next;
    HASH_DELETE(hh, m->head, o);
}

/*
 * One bounded sweep step: examines at most budget entries from the cursor
 * (stopping at the end of the table), then frees the idle ones whose breaker
 * is CLOSED. The states are read without the map lock, because reading a
 * state may turn OPEN into HALF_OPEN and raise an event whose listener may
 * call back into the map; the candidates hold a reference meanwhile, so no
 * other sweeper frees them, and they are re-checked under the lock after.
 * *examined gets the number of entries looked at.
 */
static size_t origin_sweep(cbh_origins *m, size_t budget, uint64_t now, size_t *examined)
{
    cbh_origin *cand[ORIGIN_SWEEP_BATCH];
    bool        closed[ORIGIN_SWEEP_BATCH];
    size_t      n = 0, seen = 0, removed = 0, i;

    pthread_mutex_lock(&m->lock);
    while (seen < budget && n < ORIGIN_SWEEP_BATCH) {
        cbh_origin *o = m->cursor ? m->cursor : m->head;

        if (!o)
            break;
        m->cursor = o->hh.next;
        seen++;
        if (origin_idle(m, o, now)) {
            atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
            cand[n++] = o;
        }
        if (!m->cursor)
            break; /* the end: the next step starts again at the head */
    }
    pthread_mutex_unlock(&m->lock);
    if (examined)
        *examined = seen;
    if (n == 0)
        return 0;

    for (i = 0; i < n; i++)
        closed[i] = cb_breaker_state(cand[i]->breaker) == CB_CLOSED;

    pthread_mutex_lock(&m->lock);
    for (i = 0; i < n; i++) {
        cbh_origin *o = cand[i];

        atomic_fetch_sub_explicit(&o->refs, 1, memory_order_release);
        /* A get between the two locked phases took a reference or moved
         * last_used_ms: then it stays. */
        if (closed[i] && origin_idle(m, o, now))
            origin_unlink(m, o);
        else
            cand[i] = NULL;
    }
    pthread_mutex_unlock(&m->lock);

    /* Freeing a breaker is the slowest part: outside the lock. */
    for (i = 0; i < n; i++)
        if (cand[i]) {
            origin_destroy(cand[i]);
            removed++;
        }
    return removed;
}

/* Applies cfg to an existing origin when its numbers differ. Runs without the
 * map lock (a breaker that reacts to new thresholds may raise events); the
 * origin's own cfg_lock keeps concurrent reconfigurations in order so that
 * applied always describes the breaker. */
static cb_err origin_reconfigure(cbh_origins *m, cbh_origin *o, const cb_config *cfg)
{
    cb_err err = CB_OK;

    pthread_mutex_lock(&o->cfg_lock);
    if (!origin_same_numbers(&o->applied, cfg)) {
        cb_config c;

        origin_breaker_cfg(m, o, cfg, &c);
        err = cb_breaker_configure(o->breaker, &c);
        if (err == CB_OK)
            o->applied = c;
    }
    pthread_mutex_unlock(&o->cfg_lock);
    return err;
}

cbh_origin *cbh_origins_get(cbh_origins *m, const char *key, size_t key_len,
                            const cb_config *cfg, bool create, cb_err *err)
{
    cbh_origin *o;
    cb_err      e = CB_OK;
    uint64_t    now;
    size_t      sweep = 0;
    bool        created = false;

    if (!m || !key || key_len == 0) {
        if (err)
            *err = CB_ERR_INVALID;
        return NULL;
    }
    now = origin_now(m);
    pthread_mutex_lock(&m->lock);
    HASH_FIND(hh, m->head, key, key_len, o);
    if (o) {
        atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
        atomic_store_explicit(&o->last_used_ms, now, memory_order_relaxed);
    } else if (create) {
        o = origin_create(m, key, key_len, cfg, now, &e);
        created = o != NULL;
        /* Each new origin pays for examining a few old ones: the table
         * cannot outgrow the sweep, however many hosts come and go. */
        if (created)
            sweep = ORIGIN_SWEEP_ON_CREATE;
    } else {
        e = CB_ERR_INVALID;
    }
    if (++m->gets_since_sweep >= ORIGIN_SWEEP_EVERY_GETS ||
        now >= m->last_sweep_ms + m->sweep_every_ms) {
        m->gets_since_sweep = 0;
        m->last_sweep_ms = now;
        sweep = ORIGIN_SWEEP_BATCH;
    }
    pthread_mutex_unlock(&m->lock);

    if (sweep)
        origin_sweep(m, sweep, now, NULL);
    if (o && cfg && !created && (e = origin_reconfigure(m, o, cfg)) != CB_OK) {
        atomic_fetch_sub_explicit(&o->refs, 1, memory_order_release);
        o = NULL;
    }
    if (err)
        *err = e;
    return o;
}

void cbh_origins_release(cbh_origin *o)
{
    if (!o)
        return;
    /* Stamped before the reference goes: afterwards o may be freed. */
    atomic_store_explicit(&o->last_used_ms, origin_now(o->map), memory_order_relaxed);
    atomic_fetch_sub_explicit(&o->refs, 1, memory_order_release);
}

size_t cbh_origins_evict_idle(cbh_origins *m)
{
    size_t   total, done = 0, removed = 0;
    uint64_t now;

    if (!m)
        return 0;
    now = origin_now(m);
    pthread_mutex_lock(&m->lock);
    total = HASH_COUNT(m->head);
    /* Start a whole pass at the head so that every entry is seen once. */
    m->cursor = NULL;
    pthread_mutex_unlock(&m->lock);
    while (done < total) {
        size_t seen = 0, step = total - done;

        /* Bounded steps: the lock is dropped between them, so gets never
         * wait long behind an eviction pass over a huge map. */
        if (step > ORIGIN_EVICT_STEP)
            step = ORIGIN_EVICT_STEP;
        removed += origin_sweep(m, step, now, &seen);
        if (seen == 0)
            break;
        done += seen;
    }
    return removed;
}

size_t cbh_origins_count(cbh_origins *m)
{
    size_t n;

    if (!m)
        return 0;
    pthread_mutex_lock(&m->lock);
    n = HASH_COUNT(m->head);
    pthread_mutex_unlock(&m->lock);
    return n;
}

void cbh_origins_foreach(cbh_origins *m, void (*fn)(cbh_origin *o, void *ud), void *ud)
{
    cbh_origin **snap, *o, *tmp;
    size_t       n = 0, i;

    if (!m || !fn)
        return;
    pthread_mutex_lock(&m->lock);
    snap = cbh_malloc((HASH_COUNT(m->head) + 1) * sizeof(*snap));
    if (!snap) {
        HASH_ITER(hh, m->head, o, tmp)
        fn(o, ud);
        pthread_mutex_unlock(&m->lock);
        return;
    }
    HASH_ITER(hh, m->head, o, tmp)
    {
        atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
        snap[n++] = o;
    }
    pthread_mutex_unlock(&m->lock);
    for (i = 0; i < n; i++) {
        fn(snap[i], ud);
        /* Not cbh_origins_release: looking at an origin is not using it. */
        atomic_fetch_sub_explicit(&snap[i]->refs, 1, memory_order_release);
    }
    cbh_free(snap);
}
