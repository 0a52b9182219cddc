/*
 * The circuit breaker.
 *
 * Fast path. Everything the CLOSED fast path needs to know is packed into
 * one atomic word: the state (bits 0-1), a few flags derived from the config
 * (bits 2-5) and a period generation (bits 8-63) that grows by one on every
 * state change, reset and trip, and when a HALF_OPEN period whose probes
 * were lost starts afresh. acquire on a CLOSED breaker is one load of
 * that word and one relaxed fetch_add on an admitted counter; the permit
 * keeps the word. record(success) compares the permit's generation with the
 * current one and, when they match in CLOSED and no success needs the lock
 * (no rate or slow-call trip, no listener), does one relaxed fetch_add and
 * stores last_success_ms when the coarse clock moved. No mutex, no precise
 * clock. The counters are striped by permit address so that threads on one
 * breaker mostly write to different cache lines.
 *
 * Everything else (failures, OPEN and HALF_OPEN, transitions, late outcomes,
 * events) runs under the mutex. The word is only ever written with the
 * mutex held, so the lock-free readers see either the old period or the new
 * one: a permit taken from the old one is an earlier-period permit whose
 * outcome is counted but moves nothing.
 *
 * Counters never go back: reset moves baselines instead, so that a lock-free
 * increment racing with a reset is never lost and the reported counts still
 * add up (see breaker_reset_locked).
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "cbhttp.h"
#include "alloc.h"
#include "mix.h"
#include "window.h"

#if defined(__GNUC__)
#define CBH_LIKELY(x) __builtin_expect(!!(x), 1)
#define CBH_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define CBH_LIKELY(x) (x)
#define CBH_UNLIKELY(x) (x)
#endif

/* The state word. */
#define W_STATE_MASK 0x3u
#define W_TIMED 0x4u        /* acquire stamps the permit with the clock */
#define W_SLOWREC 0x8u      /* a CLOSED success must take the locked path */
#define W_DISABLED 0x10u    /* CB_MODE_DISABLED */
#define W_METRICS_ONLY 0x20u /* CB_MODE_METRICS_ONLY */
#define W_SHADOW 0x40u      /* permit only: admitted where NORMAL would reject */
#define W_FLAGS (W_TIMED | W_SLOWREC | W_DISABLED | W_METRICS_ONLY)
#define W_GEN_SHIFT 8
#define W_GEN_ONE ((uint64_t)1 << W_GEN_SHIFT)

#define W_STATE(w) ((cb_state)((w) & W_STATE_MASK))
#define W_SAME_GEN(a, b) ((((a) ^ (b)) >> W_GEN_SHIFT) == 0)

#define CBH_CACHELINE 64

/* The per-call counters, split into stripes of a cache line each. A call
 * counts in the stripe its permit's address picks: threads keep their
 * permits on their own stacks, so concurrent threads mostly land on
 * different lines. Only the sums mean anything. */
#define CBH_STRIPES 8

typedef struct cbh_stripe {
    _Alignas(CBH_CACHELINE) _Atomic uint64_t admitted;
    _Atomic uint64_t successes;
} cbh_stripe;

/* Events gathered under the lock and delivered after it is released. No
 * operation produces more than three. */
typedef struct evq {
    cb_event ev[4];
    unsigned n;
} evq;

struct cb_breaker {
    /* Read by every call, written only on transitions and configure. */
    _Alignas(CBH_CACHELINE) _Atomic uint64_t word;
    _Atomic uint64_t open_until; /* OPEN: the clock time it turns HALF_OPEN */
    cb_clock_fn clock;
    void *clock_data;
    cb_listener_fn listener;
    void *listener_data;
    cb_classify_fn classify;
    void *classify_data;

    /* Written by every call: kept off the read-mostly line above, and
     * spread over stripes so that threads do not fight over one line. */
    cbh_stripe stripes[CBH_STRIPES];
    _Alignas(CBH_CACHELINE) _Atomic uint64_t last_success_ms;
    _Atomic uint64_t rejected;

    /* Everything below is guarded by lock. */
    _Alignas(CBH_CACHELINE) pthread_mutex_t lock;
    cb_config cfg;
    uint64_t failures;
    uint64_t last_failure_ms;
    uint64_t slow_calls;
    uint64_t late_outcomes;
    uint64_t times_opened;
    uint64_t state_since_ms;
    uint64_t succ_at_failure; /* raw successes at the last failure */
    /* Baselines subtracted by metrics: what reset cleared. */
    uint64_t base_admitted;
    uint64_t base_successes;
    uint64_t base_failures;
    uint64_t base_rejected;
    uint64_t half_open_last_ms;  /* when its last probe was admitted */
    uint64_t half_open_expired;  /* HALF_OPEN periods abandoned for lost probes */
    uint64_t ignored;            /* permits given back uncounted */
    unsigned half_open_admitted; /* probes admitted in this HALF_OPEN period */
    unsigned half_open_successes;
    unsigned backoff_level;      /* failed HALF_OPEN periods since it closed */
    unsigned open_ms;            /* the OPEN duration in force */
    uint64_t rng;                /* xorshift64 state for the jitter */
    cbh_window window;
    void *mem; /* what cbh_calloc returned, before alignment */
};

CB_EXPORT const char *cb_state_name(cb_state s)
{
    switch (s) {
    case CB_CLOSED:
        return "CLOSED";
    case CB_OPEN:
        return "OPEN";
    case CB_HALF_OPEN:
        return "HALF_OPEN";
    }
    return "UNKNOWN";
}

/* Fills defaults into a copy of in and checks it; false when the config
 * contradicts itself. */
static bool config_norm(const cb_config *in, cb_config *out)
{
    static const cb_config zero;

    *out = in ? *in : zero;
    if (!out->failure_threshold)
        out->failure_threshold = 5;
    if (!out->failure_window_ms)
        out->failure_window_ms = 60000;
    if (!out->reset_timeout_ms)
        out->reset_timeout_ms = 30000;
    if (!out->half_open_max)
        out->half_open_max = 3;
    if (!out->success_threshold)
        out->success_threshold = 1;
    if (!out->minimum_calls)
        out->minimum_calls = 10;
    if (!out->slow_call_rate_threshold)
        out->slow_call_rate_threshold = 100;
    if (!out->reset_backoff_multiplier)
        out->reset_backoff_multiplier = 2;
    if (!out->clock)
        out->clock = cb_clock_monotonic_ms;
    if (!out->half_open_max_wait_ms)
        out->half_open_max_wait_ms = out->reset_timeout_ms;

    if (out->success_threshold > out->half_open_max)
        return false;
    if (out->failure_rate_threshold > 100 || out->slow_call_rate_threshold > 100 ||
        out->reset_jitter_pct > 100)
        return false;
    if (out->max_reset_timeout_ms && out->reset_timeout_ms > out->max_reset_timeout_ms)
        return false;
    if ((unsigned)out->mode > (unsigned)CB_MODE_DISABLED)
        return false;
    return true;
}

/* Whether successes must be counted in the window (a rate trip needs the
 * calls as its denominator). */
static bool tracks_calls(const cb_config *c)
{
    return c->failure_rate_threshold || c->slow_call_ms;
}

static uint64_t config_flags(const cb_config *c)
{
    uint64_t f = 0;

    if (c->mode == CB_MODE_DISABLED)
        return W_DISABLED;
    if (c->mode == CB_MODE_METRICS_ONLY)
        f |= W_METRICS_ONLY;
    if (c->slow_call_ms || c->listener)
        f |= W_TIMED;
    if (tracks_calls(c) || c->listener)
        f |= W_SLOWREC;
    return f;
}

static uint64_t now_ms(const cb_breaker *b) { return b->clock(b->clock_data); }

/* A Fibonacci hash of the permit's address, above the bits that vary
 * inside one stack frame or one small object. */
static inline cbh_stripe *stripe_of(cb_breaker *b, const cb_permit *p)
{
    uint64_t h = ((uint64_t)(uintptr_t)p >> 6) * 0x9e3779b97f4a7c15ull;

    return &b->stripes[h >> 61];
}

static uint64_t sum_successes(cb_breaker *b)
{
    uint64_t n = 0;
    unsigned i;

    for (i = 0; i < CBH_STRIPES; i++)
        n += atomic_load_explicit(&b->stripes[i].successes, memory_order_acquire);
    return n;
}

static uint64_t sum_admitted(cb_breaker *b)
{
    uint64_t n = 0;
    unsigned i;

    for (i = 0; i < CBH_STRIPES; i++)
        n += atomic_load_explicit(&b->stripes[i].admitted, memory_order_acquire);
    return n;
}

static uint64_t rng_next(cb_breaker *b)
{
    uint64_t x = b->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return b->rng = x;
}

/* The next OPEN duration: reset_timeout_ms grown by the backoff level,
 * capped, then jittered (the jitter may take it past the cap). */
static unsigned open_duration(cb_breaker *b)
{
    const cb_config *c = &b->cfg;
    uint64_t d = c->reset_timeout_ms;
    unsigned i;

    if (c->max_reset_timeout_ms && c->reset_backoff_multiplier > 1) {
        for (i = 0; i < b->backoff_level && d < c->max_reset_timeout_ms; i++)
            d *= c->reset_backoff_multiplier;
        if (d > c->max_reset_timeout_ms)
            d = c->max_reset_timeout_ms;
    }
    if (c->reset_jitter_pct) {
        uint64_t span = d * c->reset_jitter_pct / 100;

        d = d - span + rng_next(b) % (2 * span + 1);
    }
    if (d < 1)
        d = 1; /* an OPEN period always lasts a little */
    if (d > UINT_MAX)
        d = UINT_MAX;
    return (unsigned)d;
}

static void evq_push(cb_breaker *b, evq *q, const cb_event *ev)
{
    if (b->listener && !(atomic_load_explicit(&b->word, memory_order_relaxed) & W_DISABLED) &&
        q->n < sizeof(q->ev) / sizeof(q->ev[0]))
        q->ev[q->n++] = *ev;
}

/* Delivers the queued events. Called with no lock held. */
static void evq_emit(cb_breaker *b, const evq *q)
{
    unsigned i;

    for (i = 0; i < q->n; i++)
        b->listener(b, &q->ev[i], b->listener_data);
}

/* Starts a new period in state to. Lock held. */
static void set_state(cb_breaker *b, cb_state to, uint64_t now, evq *q)
{
    uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);
    cb_state from = W_STATE(w);

    if (to == CB_OPEN) {
        b->open_ms = open_duration(b);
        if (from != CB_OPEN)
            b->times_opened++;
        /* Published before the word so that a lock-free reader of the new
         * word never sees an older deadline. */
        atomic_store_explicit(&b->open_until, cbh_add_sat(now, b->open_ms),
                              memory_order_release);
    } else if (to == CB_CLOSED) {
        b->backoff_level = 0;
        b->open_ms = b->cfg.reset_timeout_ms;
    }
    b->half_open_admitted = 0;
    b->half_open_successes = 0;
    cbh_window_clear(&b->window);
    b->state_since_ms = now;
    w = ((w & ~(uint64_t)W_STATE_MASK) + W_GEN_ONE) | (uint64_t)to;
    atomic_store_explicit(&b->word, w, memory_order_release);
    if (from != to) {
        cb_event ev = { .type = CB_EVENT_STATE_CHANGE, .from = from, .to = to,
                        .state = to, .at_ms = now };

        evq_push(b, q, &ev);
    }
}

/* OPEN turns HALF_OPEN once its duration has passed. Lock held. */
static void maybe_half_open(cb_breaker *b, uint64_t now, evq *q)
{
    uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);

    if (W_STATE(w) == CB_OPEN && !(w & W_DISABLED) &&
        now >= atomic_load_explicit(&b->open_until, memory_order_relaxed))
        set_state(b, CB_HALF_OPEN, now, q);
}

/* A HALF_OPEN period that handed out all its probes and heard from too few
 * of them within half_open_max_wait_ms of the last one is abandoned for a
 * fresh one: a lost or hung probe must not keep the breaker rejecting
 * forever. Its outcomes, should they come, are then earlier-period ones.
 * Checked only where a probe is wanted (acquire), so an observer never
 * turns a probe's outcome into a late one. No STATE_CHANGE event: the state
 * stays HALF_OPEN, as a repeated trip stays OPEN. Lock held. */
static void maybe_restart_half_open(cb_breaker *b, uint64_t now, evq *q)
{
    uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);

    if (W_STATE(w) == CB_HALF_OPEN && !(w & W_DISABLED) &&
        b->half_open_admitted >= b->cfg.half_open_max &&
        now >= cbh_add_sat(b->half_open_last_ms, b->cfg.half_open_max_wait_ms)) {
        b->half_open_expired++;
        set_state(b, CB_HALF_OPEN, now, q);
    }
}

CB_EXPORT cb_breaker *cb_breaker_new(const cb_config *cfg)
{
    cb_config c;
    cb_breaker *b;
    void *mem;
    uint64_t now;
    unsigned i;

    if (!config_norm(cfg, &c))
        return NULL;
    /* Over-allocated so that the hot counters get cache lines of their own
     * whatever alignment the allocator hook gives. */
    mem = cbh_calloc(1, sizeof(*b) + CBH_CACHELINE - 1);
    if (!mem)
        return NULL;
    b = (cb_breaker *)(((uintptr_t)mem + CBH_CACHELINE - 1) &
                       ~(uintptr_t)(CBH_CACHELINE - 1));
    b->mem = mem;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        cbh_free(mem);
        return NULL;
    }
    b->cfg = c;
    b->clock = c.clock;
    b->clock_data = c.clock_data;
    b->listener = c.listener;
    b->listener_data = c.listener_data;
    b->classify = c.classify;
    b->classify_data = c.classify_data;
    /* Seeded from the address: breakers in one process jitter apart. */
    b->rng = cbh_splitmix64((uint64_t)(uintptr_t)b) | 1;
    b->open_ms = c.reset_timeout_ms;
    cbh_window_init(&b->window, c.failure_window_ms);
    now = now_ms(b);
    b->state_since_ms = now;
    /* Generation 1, so that a zeroed permit counts as an earlier period. */
    atomic_init(&b->word, W_GEN_ONE | config_flags(&c) | CB_CLOSED);
    atomic_init(&b->open_until, 0);
    for (i = 0; i < CBH_STRIPES; i++) {
        atomic_init(&b->stripes[i].admitted, 0);
        atomic_init(&b->stripes[i].successes, 0);
    }
    atomic_init(&b->last_success_ms, 0);
    atomic_init(&b->rejected, 0);
    return b;
}

CB_EXPORT void cb_breaker_free(cb_breaker *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    cbh_free(b->mem);
}

CB_EXPORT cb_err cb_breaker_configure(cb_breaker *b, const cb_config *cfg)
{
    cb_config c;
    uint64_t w;
    bool new_window;

    if (!b || !cfg || !config_norm(cfg, &c))
        return CB_ERR_INVALID;
    pthread_mutex_lock(&b->lock);
    /* The callbacks and clock stay those of cb_breaker_new. */
    c.classify = b->cfg.classify;
    c.classify_data = b->cfg.classify_data;
    c.listener = b->cfg.listener;
    c.listener_data = b->cfg.listener_data;
    c.clock = b->cfg.clock;
    c.clock_data = b->cfg.clock_data;
    /* Buckets of another width, or calls that were not counted so far,
     * cannot be carried over: the window starts afresh then. */
    new_window = c.failure_window_ms != b->cfg.failure_window_ms ||
                 (tracks_calls(&c) && !tracks_calls(&b->cfg));
    b->cfg = c;
    if (new_window)
        cbh_window_init(&b->window, c.failure_window_ms);
    w = atomic_load_explicit(&b->word, memory_order_relaxed);
    w = (w & ~(uint64_t)W_FLAGS) | config_flags(&c);
    atomic_store_explicit(&b->word, w, memory_order_release);
    pthread_mutex_unlock(&b->lock);
    return CB_OK;
}

CB_EXPORT void cb_breaker_config(cb_breaker *b, cb_config *out)
{
    if (!out)
        return;
    if (!b) {
        memset(out, 0, sizeof(*out));
        return;
    }
    pthread_mutex_lock(&b->lock);
    *out = b->cfg;
    pthread_mutex_unlock(&b->lock);
}

/* Every acquire that is not a CLOSED one. */
static cb_err acquire_slow(cb_breaker *b, cb_permit *p, uint64_t w)
{
    uint64_t now = now_ms(b);
    uint64_t shadow = 0;
    evq q;
    cb_state st;
    bool admit;

    q.n = 0;
    /* Rejections while OPEN stay lock-free: this is the path a failing
     * dependency hammers. */
    if (W_STATE(w) == CB_OPEN && !(w & (W_DISABLED | W_METRICS_ONLY)) &&
        now < atomic_load_explicit(&b->open_until, memory_order_acquire)) {
        atomic_fetch_add_explicit(&b->rejected, 1, memory_order_relaxed);
        if (b->listener) {
            cb_event ev = { .type = CB_EVENT_REJECTED, .state = CB_OPEN, .at_ms = now };

            b->listener(b, &ev, b->listener_data);
        }
        return CB_ERR_CIRCUIT_OPEN;
    }

    pthread_mutex_lock(&b->lock);
    maybe_half_open(b, now, &q);
    maybe_restart_half_open(b, now, &q);
    w = atomic_load_explicit(&b->word, memory_order_relaxed);
    st = W_STATE(w);
    if (w & W_DISABLED) {
        admit = true;
    } else if (st == CB_CLOSED) {
        admit = true;
    } else if (st == CB_HALF_OPEN && b->half_open_admitted < b->cfg.half_open_max) {
        b->half_open_admitted++;
        b->half_open_last_ms = now;
        admit = true;
    } else if (w & W_METRICS_ONLY) {
        /* Admitted all the same, but its outcome must not count as a
         * probe nor move an OPEN breaker. */
        shadow = W_SHADOW;
        admit = true;
    } else {
        admit = false;
    }
    if (admit) {
        atomic_fetch_add_explicit(&stripe_of(b, p)->admitted, 1, memory_order_relaxed);
        p->opaque_[0] = w | shadow;
        p->opaque_[1] = (w & W_TIMED) ? now : 0;
    } else {
        cb_event ev = { .type = CB_EVENT_REJECTED, .state = st, .at_ms = now };

        atomic_fetch_add_explicit(&b->rejected, 1, memory_order_relaxed);
        evq_push(b, &q, &ev);
    }
    pthread_mutex_unlock(&b->lock);
    evq_emit(b, &q);
    return admit ? CB_OK : CB_ERR_CIRCUIT_OPEN;
}

CB_EXPORT cb_err cb_breaker_acquire(cb_breaker *b, cb_permit *p)
{
    uint64_t w;

    if (CBH_UNLIKELY(!b || !p))
        return CB_ERR_INVALID;
    w = atomic_load_explicit(&b->word, memory_order_acquire);
    if (CBH_LIKELY(W_STATE(w) == CB_CLOSED)) {
        atomic_fetch_add_explicit(&stripe_of(b, p)->admitted, 1, memory_order_relaxed);
        p->opaque_[0] = w;
        p->opaque_[1] = (w & W_TIMED) ? now_ms(b) : 0;
        return CB_OK;
    }
    return acquire_slow(b, p, w);
}

/* The judgement of a CLOSED period's outcome: the count, rate and slow-call
 * trips. Lock held. */
static void closed_outcome(cb_breaker *b, uint64_t now, bool failure, bool slow, evq *q)
{
    const cb_config *c = &b->cfg;
    cbh_window *win = &b->window;
    bool trip;

    if (tracks_calls(c))
        cbh_window_add(win, now, 1, failure, slow);
    else if (failure)
        cbh_window_add(win, now, 0, 1, 0);
    else
        return;
    trip = win->failures >= c->failure_threshold;
    if (!trip && tracks_calls(c) && win->calls >= c->minimum_calls) {
        if (c->failure_rate_threshold &&
            win->failures * 100 >= (uint64_t)c->failure_rate_threshold * win->calls)
            trip = true;
        if (c->slow_call_ms &&
            win->slow * 100 >= (uint64_t)c->slow_call_rate_threshold * win->calls)
            trip = true;
    }
    if (trip)
        set_state(b, CB_OPEN, now, q);
}

/* Every outcome that is not a CLOSED success on the fast path. */
static void record_slow(cb_breaker *b, const cb_permit *p, bool failure, cb_err err)
{
    uint64_t pw = p->opaque_[0];
    uint64_t now = now_ms(b);
    uint64_t dur = 0, w;
    evq q;
    bool slow = false, late;
    cb_state st;

    q.n = 0;
    if ((pw & W_TIMED) && now > p->opaque_[1])
        dur = now - p->opaque_[1];

    pthread_mutex_lock(&b->lock);
    w = atomic_load_explicit(&b->word, memory_order_relaxed);
    st = W_STATE(w);
    late = !W_SAME_GEN(w, pw);
    if (b->cfg.slow_call_ms && (pw & W_TIMED) && dur > b->cfg.slow_call_ms) {
        slow = true;
        b->slow_calls++;
    }
    if (late)
        b->late_outcomes++;
    if (failure) {
        b->failures++;
        b->last_failure_ms = now;
        b->succ_at_failure = sum_successes(b);
    } else {
        atomic_fetch_add_explicit(&stripe_of(b, p)->successes, 1, memory_order_relaxed);
        atomic_store_explicit(&b->last_success_ms, now, memory_order_relaxed);
    }
    {
        cb_event ev = { .type = failure ? CB_EVENT_FAILURE : CB_EVENT_SUCCESS,
                        .state = st, .error = err, .duration_ms = dur, .slow = slow,
                        .at_ms = now };

        evq_push(b, &q, &ev);
    }
    /* Only an outcome of the current period, from a call NORMAL mode would
     * have admitted, may move the state. */
    if (!late && !(pw & W_SHADOW) && !(w & W_DISABLED)) {
        if (st == CB_CLOSED) {
            closed_outcome(b, now, failure, slow, &q);
        } else if (st == CB_HALF_OPEN) {
            if (failure) {
                b->backoff_level++;
                set_state(b, CB_OPEN, now, &q);
            } else if (++b->half_open_successes >= b->cfg.success_threshold) {
                set_state(b, CB_CLOSED, now, &q);
            }
        }
    }
    pthread_mutex_unlock(&b->lock);
    evq_emit(b, &q);
}

static inline void record_outcome(cb_breaker *b, const cb_permit *p, bool failure, cb_err err)
{
    if (!failure) {
        uint64_t w = atomic_load_explicit(&b->word, memory_order_relaxed);

        /* Same period, CLOSED, and no success needs the lock. */
        if (CBH_LIKELY(W_SAME_GEN(w, p->opaque_[0]) &&
                       (w & (W_STATE_MASK | W_SLOWREC)) == CB_CLOSED)) {
            uint64_t now = now_ms(b);

            atomic_fetch_add_explicit(&stripe_of(b, p)->successes, 1, memory_order_relaxed);
            /* The coarse clock moves every few ms: storing only on change
             * keeps this line shared between threads instead of bouncing. */
            if (atomic_load_explicit(&b->last_success_ms, memory_order_relaxed) != now)
                atomic_store_explicit(&b->last_success_ms, now, memory_order_relaxed);
            return;
        }
    }
    record_slow(b, p, failure, err);
}

CB_EXPORT void cb_breaker_record(cb_breaker *b, const cb_permit *p, bool success)
{
    if (CBH_UNLIKELY(!b || !p))
        return;
    record_outcome(b, p, !success, success ? CB_OK : CB_ERR_TRANSPORT);
}

static bool is_failure(const cb_breaker *b, cb_err err)
{
    return b->classify ? b->classify(err, b->classify_data) : err != CB_OK;
}

CB_EXPORT void cb_breaker_record_err(cb_breaker *b, const cb_permit *p, cb_err err)
{
    if (!b || !p)
        return;
    record_outcome(b, p, is_failure(b, err), err);
}

CB_EXPORT void cb_breaker_release(cb_breaker *b, const cb_permit *p)
{
    uint64_t w;

    if (!b || !p)
        return;
    pthread_mutex_lock(&b->lock);
    w = atomic_load_explicit(&b->word, memory_order_relaxed);
    b->ignored++;
    if (W_STATE(w) == CB_HALF_OPEN && W_SAME_GEN(w, p->opaque_[0]) && b->half_open_admitted)
        b->half_open_admitted--;
    pthread_mutex_unlock(&b->lock);
}

CB_EXPORT cb_err cb_breaker_execute(cb_breaker *b, cb_err (*op)(void *ctx), void *ctx)
{
    cb_permit p;
    cb_err rc;

    if (!b || !op)
        return CB_ERR_INVALID;
    if (cb_breaker_acquire(b, &p) != CB_OK)
        return CB_ERR_CIRCUIT_OPEN;
    rc = op(ctx);
    record_outcome(b, &p, is_failure(b, rc), rc);
    return rc;
}

CB_EXPORT cb_state cb_breaker_state(cb_breaker *b)
{
    uint64_t w, now;
    evq q;

    q.n = 0;
    if (!b)
        return CB_CLOSED;
    w = atomic_load_explicit(&b->word, memory_order_acquire);
    if (W_STATE(w) != CB_OPEN || (w & W_DISABLED))
        return W_STATE(w);
    now = now_ms(b);
    if (now < atomic_load_explicit(&b->open_until, memory_order_acquire))
        return CB_OPEN;
    pthread_mutex_lock(&b->lock);
    maybe_half_open(b, now, &q);
    w = atomic_load_explicit(&b->word, memory_order_relaxed);
    pthread_mutex_unlock(&b->lock);
    evq_emit(b, &q);
    return W_STATE(w);
}

static unsigned clamp_u(uint64_t v) { return v > UINT_MAX ? UINT_MAX : (unsigned)v; }

CB_EXPORT void cb_breaker_metrics(cb_breaker *b, cb_metrics *out)
{
    uint64_t now, succ, fail, adm, outcomes;
    evq q;

    q.n = 0;
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!b)
        return;
    now = now_ms(b);
    pthread_mutex_lock(&b->lock);
    maybe_half_open(b, now, &q);
    cbh_window_advance(&b->window, now);
    /* Outcomes before admissions: a record follows its acquire, so the
     * admitted count read last is never below the outcomes. */
    succ = sum_successes(b);
    fail = b->failures;
    adm = sum_admitted(b);
    outcomes = (succ - b->base_successes) + (fail - b->base_failures);
    out->state = W_STATE(atomic_load_explicit(&b->word, memory_order_relaxed));
    out->successes = succ - b->base_successes;
    out->failures = fail - b->base_failures;
    out->rejected = atomic_load_explicit(&b->rejected, memory_order_relaxed) - b->base_rejected;
    /* Relaxed counters may be seen out of step while other threads run;
     * the snapshot never shows fewer admissions than outcomes. */
    if (adm < b->base_admitted + outcomes)
        adm = outcomes;
    else
        adm -= b->base_admitted;
    out->total_requests = adm + out->rejected;
    out->window_failures = clamp_u(b->window.failures);
    out->consecutive_successes = clamp_u(succ - b->succ_at_failure);
    out->last_failure_ms = b->last_failure_ms;
    out->last_success_ms = atomic_load_explicit(&b->last_success_ms, memory_order_relaxed);
    out->times_opened = b->times_opened;
    out->slow_calls = b->slow_calls;
    out->late_outcomes = b->late_outcomes;
    out->window_calls = tracks_calls(&b->cfg) ? clamp_u(b->window.calls) : 0;
    out->current_open_ms = b->open_ms;
    out->state_since_ms = b->state_since_ms;
    out->half_open_expired = b->half_open_expired;
    out->ignored = b->ignored;
    pthread_mutex_unlock(&b->lock);
    evq_emit(b, &q);
}

/* Clears every count. The raw counters are never lowered, since the fast
 * path adds to them without the lock; the baselines move instead. The
 * admitted baseline is the outcomes recorded so far, not the admissions:
 * calls still in flight stay counted as admitted, so that once they are
 * recorded the successes and failures add up to the admitted calls. */
static void breaker_reset_locked(cb_breaker *b, uint64_t now, evq *q)
{
    uint64_t succ = sum_successes(b);

    b->base_successes = succ;
    b->base_failures = b->failures;
    b->base_admitted = succ + b->failures;
    b->base_rejected = atomic_load_explicit(&b->rejected, memory_order_relaxed);
    b->succ_at_failure = succ;
    b->last_failure_ms = 0;
    atomic_store_explicit(&b->last_success_ms, 0, memory_order_relaxed);
    b->slow_calls = 0;
    b->late_outcomes = 0;
    b->times_opened = 0;
    b->half_open_expired = 0;
    b->ignored = 0;
    b->backoff_level = 0;
    set_state(b, CB_CLOSED, now, q);
}

CB_EXPORT void cb_breaker_reset(cb_breaker *b)
{
    uint64_t now;
    evq q;

    q.n = 0;
    if (!b)
        return;
    now = now_ms(b);
    pthread_mutex_lock(&b->lock);
    breaker_reset_locked(b, now, &q);
    pthread_mutex_unlock(&b->lock);
    evq_emit(b, &q);
}

CB_EXPORT void cb_breaker_trip(cb_breaker *b)
{
    uint64_t now;
    evq q;

    q.n = 0;
    if (!b)
        return;
    now = now_ms(b);
    pthread_mutex_lock(&b->lock);
    set_state(b, CB_OPEN, now, &q);
    pthread_mutex_unlock(&b->lock);
    evq_emit(b, &q);
}
