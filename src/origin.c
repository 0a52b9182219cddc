/*
 * The per-origin map. One mutex guards the hash table and an LRU list; each
 * origin carries an atomic reference count so that a call can use its
 * origin without the lock while the evictor knows never to free it.
 *
 * Eviction works on the LRU list (most recently got first, pinned origins
 * not on it), from its tail, a few entries per get: an origin is freed when
 * nobody holds it and either nobody used it for idle_ms (whatever its
 * breaker state: a dead host's OPEN breaker must not stay forever) or the
 * map is at max_origins and a new origin needs the room. Each step is
 * O(1) and a get takes a bounded number of them (plus one per origin held
 * at that moment when the map is full), so a get costs the same with ten
 * origins or a million.
 */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "alloc.h"
#include "clock.h"
#include "origin.h"

#define ORIGIN_DEFAULT_IDLE_MS 600000u
#define ORIGIN_DEFAULT_MAX 100000u
#define ORIGIN_SWEEP_PER_GET 4u /* idle origins freed at most by one get */
#define ORIGIN_SWEEP_BATCH 64u  /* ... by the get that comes every idle_ms / 8 */
#define ORIGIN_EVICT_STEP 1024u /* most entries examined per lock hold */

/* The origin's own counters, in the order its breaker's carry keeps them. */
#define ORIGIN_COUNTERS(X) API_RETRY_COUNTERS(X) API_CACHE_COUNTERS(X)
#define ORIGIN_ONE_(field, json, prom, help) +1
enum { ORIGIN_CARRIED = 0 ORIGIN_COUNTERS(ORIGIN_ONE_) };
#undef ORIGIN_ONE_
_Static_assert(ORIGIN_CARRIED <= CBH_CARRY_EXTRA_MAX, "the origin's counters must fit the carry");

struct cbh_origins {
    pthread_mutex_t    lock;
    cbh_table          table;    /* every origin, by key */
    cbh_origin        *lru_head; /* most recently got */
    cbh_origin        *lru_tail; /* least recently got: the next to evict */
    size_t             lru_count;
    size_t             max; /* most origins in the table */
    cbh_origins_config cfg;
    cb_config          bcfg; /* every breaker's callbacks and clock, and the
                                    numbers of those not reconfigured: normalised */
    unsigned           idle_ms;
    unsigned           sweep_every_ms;
    uint64_t           last_sweep_ms;
    /* Deflation walks the LRU list from its tail towards its head: every
     * origin behind this one (older) has been looked at since it was last
     * got; NULL when all have. */
    cbh_origin *deflate_next;
    uint64_t    deflate_ms; /* the idle time after which an origin may deflate */
};

cbh_origins *cbh_origin_map(const cbh_origin *o)
{
    return (cbh_origins *)(void *)((char *)o->breaker.env - offsetof(cbh_origins, bcfg));
}

static cbh_origin *origin_of(cbh_link *l)
{
    return (cbh_origin *)(void *)((char *)l - offsetof(cbh_origin, link));
}

/* Calls fn on every origin in the table (lock held); fn may free it. */
static void origin_each(cbh_origins *m, void (*fn)(cbh_origin *o, void *ud), void *ud)
{
    size_t i;

    for (i = 0; i < m->table.nheads; i++) {
        cbh_link *l = m->table.heads[i], *next;

        for (; l; l = next) {
            next = l->next;
            fn(origin_of(l), ud);
        }
    }
}

static cbh_origin *origin_find(cbh_origins *m, const char *key, size_t len, uint64_t hash)
{
    cbh_link *l;

    for (l = cbh_table_chain(&m->table, hash); l; l = l->next) {
        cbh_origin *o = origin_of(l);

        if (l->hash == hash && o->key_len == len && memcmp(o->key, key, len) == 0)
            return o;
    }
    return NULL;
}

static uint64_t origin_now(const cbh_origins *m)
{
    return cbh_clock_now(m->cfg.clock, m->cfg.clock_data);
}

/* Every breaker's listener: tags the event with its origin, the one the
 * breaker is embedded in. No map lock is held here (see origin_sweep and
 * origin_reconfigure). */
static void origin_on_event(cb_breaker *b, const cb_event *ev, void *user_data)
{
    cbh_origin  *o = (cbh_origin *)(void *)((char *)b - offsetof(cbh_origin, breaker));
    cbh_origins *m = user_data;

    if (m->cfg.on_event)
        m->cfg.on_event(o, ev, m->cfg.event_data);
}

/* The config a breaker of the map gets: in's numbers (NULL = the map's
 * defaults) with the map's own callbacks and clock, whatever in carried. */
static void origin_breaker_cfg(const cbh_origins *m, const cb_config *in, cb_config *out)
{
    *out = in ? *in : m->cfg.defaults;
    /* A listener sends every success of the breaker down its locked path,
     * so the trampoline is installed only when someone listens. */
    out->listener = m->cfg.on_event ? origin_on_event : NULL;
    out->listener_data = m->cfg.on_event ? (void *)m : NULL;
    out->classify = NULL;
    out->classify_data = NULL;
    out->classify_outcome = NULL;
    out->classify_outcome_data = NULL;
    out->clock = m->cfg.clock;
    out->clock_data = m->cfg.clock_data;
}

cbh_origins *cbh_origins_new(const cbh_origins_config *cfg)
{
    cbh_origins *m;

    if (cfg && cb_config_check(&cfg->defaults, NULL, 0) != CB_OK)
        return NULL;
    m = cbh_calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    if (cfg)
        m->cfg = *cfg;
    {
        cb_config c;

        origin_breaker_cfg(m, NULL, &c);
        /* Cannot fail: cb_config_check passed on these numbers. */
        (void)cbh_breaker_config_norm(&c, &m->bcfg);
    }
    m->idle_ms = m->cfg.idle_ms ? m->cfg.idle_ms : ORIGIN_DEFAULT_IDLE_MS;
    m->max = m->cfg.max_origins ? m->cfg.max_origins : ORIGIN_DEFAULT_MAX;
    m->sweep_every_ms = m->idle_ms / 8 ? m->idle_ms / 8 : 1;
    /* By then a breaker's time window and a retry budget have emptied. */
    m->deflate_ms = m->bcfg.failure_window_ms > CBH_BUDGET_SLOTS * 1000u ? m->bcfg.failure_window_ms
                                                                         : CBH_BUDGET_SLOTS * 1000u;
    if (!cbh_table_init(&m->table, 16)) {
        cbh_free(m);
        return NULL;
    }
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        cbh_table_destroy(&m->table);
        cbh_free(m);
        return NULL;
    }
    m->last_sweep_ms = origin_now(m);
    return m;
}

static void origin_destroy(cbh_origin *o)
{
    cbh_origin_ext *x = cbh_origin_ext_of(o);

    cbh_breaker_destroy(&o->breaker);
    if (x) {
        cbh_budget_destroy(&x->budget);
        cbh_free(x);
    }
    cbh_free(o);
}

cb_err cbh_origins_inflate(cbh_origin *o)
{
    cbh_origin_ext *x, *none = NULL;

    if (!cbh_origin_ext_of(o)) {
        uint64_t v[ORIGIN_CARRIED];
        unsigned i = 0;

        if (!(x = cbh_calloc(1, sizeof(*x))))
            return CB_ERR_NOMEM;
        cbh_budget_init(&x->budget);
        /* Counted on from what a deflate kept. */
        cbh_breaker_carried(&o->breaker, v, ORIGIN_CARRIED);
#define SEED_(field, json, prom, help) atomic_init(&x->field, v[i++]);
        ORIGIN_COUNTERS(SEED_)
#undef SEED_
        /* Two first calls at once: one publishes, the other frees its own. */
        if (!atomic_compare_exchange_strong_explicit(&o->ext, &none, x, memory_order_acq_rel,
                                                     memory_order_acquire)) {
            cbh_budget_destroy(&x->budget);
            cbh_free(x);
        }
    }
    return cbh_breaker_inflate(&o->breaker);
}

/* The counters of an inflated origin, in the carry's order. */
static void ext_counts(cbh_origin_ext *x, uint64_t v[ORIGIN_CARRIED])
{
    unsigned i = 0;

#define READ_(field, json, prom, help)                                                             \
    v[i++] = atomic_load_explicit(&x->field, memory_order_relaxed);
    ORIGIN_COUNTERS(READ_)
#undef READ_
}

void cbh_origin_counters(cbh_origin *o, api_origin_metrics *om)
{
    cbh_origin_ext *x = cbh_origin_ext_of(o);
    uint64_t        v[ORIGIN_CARRIED];
    unsigned        i = 0;

    if (x)
        ext_counts(x, v);
    else /* never called (zeros) or deflated: the carried counts */
        cbh_breaker_carried(&o->breaker, v, ORIGIN_CARRIED);
#define WRITE_(field, json, prom, help) om->field = v[i++];
    ORIGIN_COUNTERS(WRITE_)
#undef WRITE_
}

static void origin_destroy_each(cbh_origin *o, void *ud)
{
    (void)ud;
    origin_destroy(o);
}

void cbh_origins_free(cbh_origins *m)
{
    if (!m)
        return;
    origin_each(m, origin_destroy_each, NULL);
    cbh_table_destroy(&m->table);
    pthread_mutex_destroy(&m->lock);
    cbh_free(m);
}

/* ---- The LRU list (all under the lock) --------------------------------- */

static void lru_unlink(cbh_origins *m, cbh_origin *o)
{
    /* The cursor moves to the next newer origin, still unexamined. */
    if (m->deflate_next == o)
        m->deflate_next = o->lru_prev;
    if (o->lru_prev)
        o->lru_prev->lru_next = o->lru_next;
    else
        m->lru_head = o->lru_next;
    if (o->lru_next)
        o->lru_next->lru_prev = o->lru_prev;
    else
        m->lru_tail = o->lru_prev;
    o->lru_prev = o->lru_next = NULL;
    m->lru_count--;
}

static void lru_push_front(cbh_origins *m, cbh_origin *o)
{
    o->lru_prev = NULL;
    o->lru_next = m->lru_head;
    if (m->lru_head)
        m->lru_head->lru_prev = o;
    else
        m->lru_tail = o;
    m->lru_head = o;
    m->lru_count++;
    /* Everything else was examined: o is the one to look at next. */
    if (!m->deflate_next)
        m->deflate_next = o;
}

static void lru_touch(cbh_origins *m, cbh_origin *o)
{
    if (o->pinned || m->lru_head == o)
        return;
    lru_unlink(m, o);
    lru_push_front(m, o);
}

/* Nobody holds o: refs is only ever raised under the lock (held here), so
 * 0 stays 0 until it is dropped. The acquire pairs with the release of
 * cbh_origins_release: its last_used_ms stamp is visible afterwards. */
static bool origin_unheld(cbh_origin *o)
{
    return atomic_load_explicit(&o->refs, memory_order_acquire) == 0;
}

/* Whether nobody has used o for ms (a clock gone backwards: not yet). */
static bool origin_unused_for(cbh_origin *o, uint64_t now, uint64_t ms)
{
    uint64_t last = atomic_load_explicit(&o->last_used_ms, memory_order_relaxed);

    return last <= now && now - last >= ms;
}

/* Takes o out of the table and the list and puts it on *dead, a chain
 * (through lru_next) that the caller frees once the lock is dropped. */
static void origin_unlink(cbh_origins *m, cbh_origin *o, cbh_origin **dead)
{
    cbh_table_del(&m->table, &o->link);
    lru_unlink(m, o);
    o->lru_next = *dead;
    *dead = o;
}

/* Frees a chain built by origin_unlink (without the lock: freeing breakers
 * is the slowest part). Returns how many. */
static size_t origin_free_chain(cbh_origin *dead)
{
    size_t n = 0;

    while (dead) {
        cbh_origin *next = dead->lru_next;

        origin_destroy(dead);
        dead = next;
        n++;
    }
    return n;
}

/*
 * One bounded idle sweep from the tail: at most budget steps, each freeing
 * an idle origin or moving a held one to the front (it is in use now); it
 * stops at the first unheld origin that is not idle, since everything in
 * front of it was got later. Lock held. *stopped says whether it reached
 * such an origin (or the end of the list) rather than the budget.
 */
static size_t origin_sweep(cbh_origins *m, size_t budget, uint64_t now, cbh_origin **dead,
                           bool *stopped)
{
    size_t steps = 0;

    *stopped = false;
    while (steps < budget) {
        cbh_origin *o = m->lru_tail;

        if (!o) {
            *stopped = true;
            break;
        }
        steps++;
        if (!origin_unheld(o)) {
            /* In use: to the front. When it is the front already (the list
             * holds one origin), nothing behind it is left to look at. */
            if (o == m->lru_head) {
                *stopped = true;
                break;
            }
            lru_touch(m, o);
        } else if (origin_unused_for(o, now, m->idle_ms)) {
            origin_unlink(m, o, dead);
        } else {
            *stopped = true;
            break;
        }
    }
    return steps;
}

/* Gives back what an idle origin's calls allocated (its breaker's inflated
 * part, its counters and budget), keeping every count in the breaker's
 * carry: nothing it reports or decides changes. Refused while its breaker
 * holds more than counts (cbh_breaker_deflate). Called once o has been
 * unused for deflate_ms; nobody holds it (lock held, refs 0), so nothing
 * else touches it. */
static void origin_deflate(cbh_origin *o, uint64_t now)
{
    cbh_origin_ext *x = cbh_origin_ext_of(o);
    uint64_t        v[ORIGIN_CARRIED];

    /* Its budget is idle too: it counted requests only while a call held
     * o, and deflate_ms spans the budget's slots. */
    if (x)
        ext_counts(x, v);
    else if (cbh_breaker_inflated(&o->breaker))
        cbh_breaker_carried(&o->breaker, v, ORIGIN_CARRIED);
    else
        return; /* compact already */
    if (!cbh_breaker_deflate(&o->breaker, now, v, ORIGIN_CARRIED) || !x)
        return;
    atomic_store_explicit(&o->ext, NULL, memory_order_relaxed);
    cbh_budget_destroy(&x->budget);
    cbh_free(x);
}

/* Looks at up to budget origins from the deflation cursor, deflating those
 * unused for deflate_ms; stops at the first that was used since (every
 * newer one was too). A held origin is in use: it goes to the front, as
 * in origin_sweep. Returns the origins looked at; *stopped says whether
 * it stopped before the budget ran out. Lock held. */
static size_t origin_deflate_some(cbh_origins *m, size_t budget, uint64_t now, bool *stopped)
{
    size_t steps = 0;

    *stopped = true;
    while (m->deflate_next) {
        cbh_origin *o = m->deflate_next;

        if (steps == budget) {
            *stopped = false;
            break;
        }
        steps++;
        if (!origin_unheld(o)) {
            /* The front already: every other origin has been looked at. */
            if (o == m->lru_head)
                break;
            lru_touch(m, o);
            continue;
        }
        if (!origin_unused_for(o, now, m->deflate_ms))
            break;
        origin_deflate(o, now);
        m->deflate_next = o->lru_prev;
    }
    return steps;
}

/*
 * Makes room for one more origin when the table holds max: frees the least
 * recently got unheld origins, moving held ones to the front on the way.
 * Visits each listed origin at most once, so the cost is O(1) plus the
 * number of held origins. Returns false when nothing could be freed (every
 * origin held or pinned). Lock held.
 */
static bool origin_make_room(cbh_origins *m, cbh_origin **dead)
{
    while (m->table.count >= m->max) {
        size_t      left = m->lru_count;
        cbh_origin *o = NULL;

        while (left > 0) {
            o = m->lru_tail;
            left--;
            if (origin_unheld(o))
                break;
            lru_touch(m, o);
            o = NULL;
        }
        if (!o)
            return false;
        origin_unlink(m, o, dead);
    }
    return true;
}

/*
 * Creates and adds an origin; called with the lock held, so that two threads
 * asking for a new key at once create it once. *err gets CB_ERR_INVALID when
 * cfg is rejected by the breaker, CB_ERR_NOMEM otherwise (out of memory, or
 * no room: max origins, every one held or pinned).
 */
static cbh_origin *origin_create(cbh_origins *m, const char *key, size_t key_len, uint64_t hash,
                                 const cb_config *cfg, uint64_t now, cbh_origin **dead, cb_err *err)
{
    cbh_origin *o;

    *err = CB_ERR_NOMEM;
    /* A config the breaker refuses is told apart from OOM before anything
     * is allocated. */
    if (cfg && cb_config_check(cfg, NULL, 0) != CB_OK) {
        *err = CB_ERR_INVALID;
        return NULL;
    }
    /* Room first, so that the count never exceeds max, not even between
     * the add and an eviction. */
    if (!origin_make_room(m, dead))
        return NULL;
    /* One block: the origin and its key. */
    if (!(o = cbh_calloc(1, sizeof(*o) + key_len + 1)))
        return NULL;
    memcpy(o->key, key, key_len);
    o->key[key_len] = '\0';
    o->key_len = (unsigned)key_len;
    cbh_breaker_init(&o->breaker, &m->bcfg, &m->bcfg);
    /* Other numbers than the map's: the breaker gets a config of its own
     * (configure with the map's numbers changes nothing). */
    if (cfg) {
        cb_config c;

        origin_breaker_cfg(m, cfg, &c);
        if (cb_breaker_configure(&o->breaker, &c) != CB_OK) {
            origin_destroy(o);
            return NULL;
        }
    }
    atomic_init(&o->ext, NULL);
    atomic_init(&o->refs, 1);
    atomic_init(&o->last_used_ms, now);
    cbh_table_add(&m->table, &o->link, hash);
    lru_push_front(m, o);
    *err = CB_OK;
    return o;
}

/* Applies cfg to an existing origin when its numbers differ. Runs without the
 * map lock (a breaker that reacts to new thresholds may raise events); the
 * breaker's configure compares under its own lock and changes nothing for
 * the numbers it has. */
static cb_err origin_reconfigure(cbh_origins *m, cbh_origin *o, const cb_config *cfg)
{
    cb_config c;

    origin_breaker_cfg(m, cfg, &c);
    return cb_breaker_configure(&o->breaker, &c);
}

cbh_origin *cbh_origins_get(cbh_origins *m, const char *key, size_t key_len, const cb_config *cfg,
                            bool create, cb_err *err)
{
    cbh_origin *o, *dead = NULL;
    cb_err      e = CB_OK;
    uint64_t    now, hash;
    size_t      budget = ORIGIN_SWEEP_PER_GET;
    bool        created = false, stopped;

    /* An origin keeps its key's length as unsigned. */
    if (!m || !key || key_len == 0 || key_len > UINT_MAX) {
        if (err)
            *err = CB_ERR_INVALID;
        return NULL;
    }
    now = origin_now(m);
    hash = cbh_table_hash(key, key_len);
    pthread_mutex_lock(&m->lock);
    o = origin_find(m, key, key_len, hash);
    if (o) {
        atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
        atomic_store_explicit(&o->last_used_ms, now, memory_order_relaxed);
        lru_touch(m, o);
    }
    /* Every get pays for a few idle ones (o, now held, is safe), before a
     * creation: they may make the room it needs. */
    if (now < m->last_sweep_ms || now - m->last_sweep_ms >= m->sweep_every_ms) {
        m->last_sweep_ms = now;
        budget = ORIGIN_SWEEP_BATCH;
    }
    origin_sweep(m, budget, now, &dead, &stopped);
    origin_deflate_some(m, budget, now, &stopped);
    if (!o && create) {
        o = origin_create(m, key, key_len, hash, cfg, now, &dead, &e);
        created = o != NULL;
    } else if (!o) {
        e = CB_ERR_INVALID;
    }
    pthread_mutex_unlock(&m->lock);

    origin_free_chain(dead);
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
    atomic_store_explicit(&o->last_used_ms, origin_now(cbh_origin_map(o)), memory_order_relaxed);
    atomic_fetch_sub_explicit(&o->refs, 1, memory_order_release);
}

void cbh_origins_pin(cbh_origin *o)
{
    cbh_origins *m;

    if (!o)
        return;
    m = cbh_origin_map(o);
    pthread_mutex_lock(&m->lock);
    if (!o->pinned) {
        lru_unlink(m, o);
        o->pinned = true;
    }
    pthread_mutex_unlock(&m->lock);
}

size_t cbh_origins_evict_idle(cbh_origins *m)
{
    size_t   total, seen = 0, removed = 0;
    uint64_t now;
    bool     stopped = false;

    if (!m)
        return 0;
    now = origin_now(m);
    pthread_mutex_lock(&m->lock);
    total = m->lru_count;
    pthread_mutex_unlock(&m->lock);
    /* Bounded steps: the lock is dropped between them, so gets never wait
     * long behind an eviction pass over a huge map. total bounds the pass:
     * held origins move to the front and would otherwise come round
     * again. */
    while (!stopped && seen < total) {
        cbh_origin *dead = NULL;
        size_t      step = total - seen < ORIGIN_EVICT_STEP ? total - seen : ORIGIN_EVICT_STEP;

        pthread_mutex_lock(&m->lock);
        seen += origin_sweep(m, step, now, &dead, &stopped);
        pthread_mutex_unlock(&m->lock);
        removed += origin_free_chain(dead);
    }
    /* Then the idle ones left deflate, in steps of the same bound; total
     * bounds this pass too. */
    pthread_mutex_lock(&m->lock);
    total = m->lru_count;
    pthread_mutex_unlock(&m->lock);
    for (seen = 0, stopped = false; !stopped && seen < total;) {
        size_t step = total - seen < ORIGIN_EVICT_STEP ? total - seen : ORIGIN_EVICT_STEP;

        pthread_mutex_lock(&m->lock);
        seen += origin_deflate_some(m, step, now, &stopped);
        pthread_mutex_unlock(&m->lock);
    }
    return removed;
}

size_t cbh_origins_count(cbh_origins *m)
{
    size_t n;

    if (!m)
        return 0;
    pthread_mutex_lock(&m->lock);
    n = m->table.count;
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* The snapshot cbh_origins_foreach takes under the lock. */
typedef struct origin_snap {
    cbh_origin **o;
    size_t       n;
} origin_snap;

static void origin_snap_add(cbh_origin *o, void *ud)
{
    origin_snap *s = ud;

    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
    s->o[s->n++] = o;
}

void cbh_origins_foreach(cbh_origins *m, void (*fn)(cbh_origin *o, void *ud), void *ud)
{
    origin_snap s = { NULL, 0 };
    size_t      i;

    if (!m || !fn)
        return;
    pthread_mutex_lock(&m->lock);
    /* Every origin is far larger than a pointer: the size cannot overflow. */
    if (!(s.o = cbh_malloc((m->table.count + 1) * sizeof(*s.o)))) {
        origin_each(m, fn, ud);
        pthread_mutex_unlock(&m->lock);
        return;
    }
    origin_each(m, origin_snap_add, &s);
    pthread_mutex_unlock(&m->lock);
    for (i = 0; i < s.n; i++) {
        fn(s.o[i], ud);
        /* Not cbh_origins_release: looking at an origin is not using it. */
        atomic_fetch_sub_explicit(&s.o[i]->refs, 1, memory_order_release);
    }
    cbh_free(s.o);
}
