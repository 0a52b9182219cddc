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
 * events) runs under the lock (one word, lock.h). The word is only ever
 * written with the lock held, so the lock-free readers see either the old period or the new
 * one: a permit taken from the old one is an earlier-period permit whose
 * outcome is counted but moves nothing.
 *
 * Counters never go back: reset moves baselines instead, so that a lock-free
 * increment racing with a reset is never lost and the reported counts still
 * add up (see breaker_reset_locked).
 *
 * Consecutive failures are counted without making successes take the lock:
 * each failure compares the striped success sum with the one the previous
 * failure saw (run_mark); any success in between breaks the run. A success
 * that must not break it (an earlier period's) moves the mark along.
 *
 * Layout (breaker_core.h): the state word, the OPEN deadline and the lock
 * sit in a compact, pointer-free core; the stripes, the window and the
 * locked counts in an inflated part that acquire allocates on a breaker's
 * first call (cb_breaker_new at once). Every path that may meet a compact
 * breaker (state, metrics, configure, reset, the trips) reads its counts
 * as zeros and writes none.
 */
#include <stdio.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>

#include "cbhttp.h"
#include "alloc.h"
#include "clock.h"
#include "mix.h"
#include "breaker_core.h"
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
#define W_TIMED 0x4u         /* acquire stamps the permit with the clock */
#define W_SLOWREC 0x8u       /* a CLOSED success must take the locked path */
#define W_DISABLED 0x10u     /* CB_MODE_DISABLED */
#define W_METRICS_ONLY 0x20u /* CB_MODE_METRICS_ONLY */
#define W_SHADOW 0x40u       /* permit only: admitted where NORMAL would reject */
#define W_ISOLATED 0x80u     /* OPEN until reset (cb_breaker_isolate) */
#define W_FLAGS (W_TIMED | W_SLOWREC | W_DISABLED | W_METRICS_ONLY)
#define W_GEN_SHIFT 8
#define W_GEN_ONE ((uint64_t)1 << W_GEN_SHIFT)

#define W_STATE(w) ((cb_state)((w)&W_STATE_MASK))
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
 * operation produces more than four (outcome, two rates, state change). */
typedef struct evq {
    cb_event ev[6];
    unsigned n;
} evq;

/* The inflated part (see breaker_core.h): allocated by cbh_breaker_inflate,
 * aligned to a cache line, found from the core by its offset. */
typedef struct cbh_breaker_hot {
    /* Written by every call: spread over stripes so that threads do not
     * fight over one line. */
    cbh_stripe stripes[CBH_STRIPES];
    _Alignas(CBH_CACHELINE) _Atomic uint64_t last_success_ms;
    _Atomic uint64_t rejected;

    /* Everything below is guarded by the core's lock. */
    _Alignas(CBH_CACHELINE) uint64_t failures;
    uint64_t last_failure_ms;
    uint64_t slow_calls;
    uint64_t late_outcomes;
    uint64_t succ_at_failure; /* raw successes at the last failure */
    /* Baselines subtracted by metrics: what reset cleared. */
    uint64_t   base_admitted;
    uint64_t   base_successes;
    uint64_t   base_failures;
    uint64_t   base_rejected;
    uint64_t   half_open_last_ms; /* when its last probe was admitted */
    uint64_t   half_open_expired; /* HALF_OPEN periods abandoned for lost probes */
    uint64_t   ignored;           /* permits given back uncounted (raw) */
    uint64_t   base_ignored;
    uint64_t   run_mark;            /* raw successes the last failure saw */
    unsigned   run_failures;        /* consecutive failures in this CLOSED period */
    unsigned   half_open_admitted;  /* probes admitted in this HALF_OPEN period */
    unsigned   half_open_successes; /* fast successes (slow ones do not count
                                     while slow-call tripping is on) */
    unsigned   half_open_reported;  /* probes of this period that reported */
    unsigned   half_open_failures;
    unsigned   half_open_slow;
    unsigned   backoff_level; /* failed HALF_OPEN periods since it closed */
    unsigned   shift;         /* bytes between the allocation and this block */
    cbh_window window;
} cbh_breaker_hot;

/* cb_breaker.flags, set when it is made */
#define CBH_BREAKER_BLOCK 0x1u /* cb_breaker_new: b, env and cfg are one block */

/* cb_breaker_new's block: the breaker and its config, env then cfg. */
typedef struct breaker_block {
    cb_breaker b;
    cb_config  env;
    cb_config  cfg;
} breaker_block;

/* The inflated part, or NULL for a compact breaker. The acquire pairs with
 * the release that publishes it (breaker_install). */
static inline cbh_breaker_hot *hot_of(const cb_breaker *b)
{
    uint64_t off = atomic_load_explicit(&b->core.hot, memory_order_acquire);

    return off ? (cbh_breaker_hot *)((uintptr_t)&b->core + (uintptr_t)off) : NULL;
}

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

/* Writes the reason a config is refused; always returns false. */
static bool config_why(char *err, size_t n, const char *fmt, unsigned a, unsigned b)
{
    if (err && n)
        snprintf(err, n, fmt, a, b);
    return false;
}

/* Checks a config with its defaults filled in; false, with the reason in
 * err, when it contradicts itself. */
static bool config_valid(const cb_config *c, char *err, size_t n)
{
    if (c->success_threshold > c->half_open_max)
        return config_why(err, n, "success_threshold (%u) > half_open_max (%u)",
                          c->success_threshold, c->half_open_max);
    if (c->failure_rate_threshold > 100)
        return config_why(err, n, "failure_rate_threshold (%u) > %u", c->failure_rate_threshold,
                          100);
    if (c->slow_call_rate_threshold > 100)
        return config_why(err, n, "slow_call_rate_threshold (%u) > %u", c->slow_call_rate_threshold,
                          100);
    if (c->reset_jitter_pct > 100)
        return config_why(err, n, "reset_jitter_pct (%u) > %u", c->reset_jitter_pct, 100);
    if (c->max_reset_timeout_ms && c->reset_timeout_ms > c->max_reset_timeout_ms)
        return config_why(err, n, "reset_timeout_ms (%u) > max_reset_timeout_ms (%u)",
                          c->reset_timeout_ms, c->max_reset_timeout_ms);
    if ((unsigned)c->mode > (unsigned)CB_MODE_DISABLED)
        return config_why(err, n, "mode (%u) is not a cb_mode (0-%u)", (unsigned)c->mode,
                          (unsigned)CB_MODE_DISABLED);
    if (c->window_calls > CB_WINDOW_CALLS_MAX)
        return config_why(err, n, "window_calls (%u) > CB_WINDOW_CALLS_MAX (%u)", c->window_calls,
                          CB_WINDOW_CALLS_MAX);
    if (c->reset_backoff_permille && c->reset_backoff_permille < 1000)
        return config_why(err, n, "reset_backoff_permille (%u) < %u", c->reset_backoff_permille,
                          1000);
    if (c->half_open_by_rate && !c->failure_rate_threshold)
        return config_why(err, n, "half_open_by_rate needs failure_rate_threshold (%u)",
                          c->failure_rate_threshold, 0);
    return true;
}

/* The C type of each kind of CB_CONFIG_NUMBERS. */
#define CBH_KIND_UINT unsigned
#define CBH_KIND_PCT unsigned
#define CBH_KIND_MODE cb_mode
#define CBH_KIND_BOOL bool

/* The fields of cb_config that are not numbers: the callbacks and their
 * data, filled in by the caller or the origin map, never by a default. */
/* clang-format off */
#define CBH_CONFIG_HOOKS(X) \
    X(classify)             \
    X(classify_data)        \
    X(listener)             \
    X(listener_data)        \
    X(clock)                \
    X(clock_data)           \
    X(classify_outcome)     \
    X(classify_outcome_data)
/* clang-format on */

/* Each listed number has the type its kind says. */
#define CFG_TYPE_OK_(f, kind, dflt)                                                                \
    _Static_assert(_Generic(((cb_config *)0)->f, CBH_KIND_##kind : 1, default : 0),                \
                   "cb_config." #f " is not of the type of its kind " #kind);
CB_CONFIG_NUMBERS(CFG_TYPE_OK_)

/* Coverage: a union of char arrays, one per listed field, as long as the
 * struct up to the field's end, is as large as the largest, so it says
 * where the last listed field ends. A field appended to cb_config (fields
 * are only ever appended) and listed in neither CB_CONFIG_NUMBERS nor
 * CBH_CONFIG_HOOKS ends past that, and the struct grows beyond it. */
#define CFG_END_(f) char f[offsetof(cb_config, f) + sizeof(((cb_config *)0)->f)];
#define CFG_NUM_END_(f, kind, dflt) CFG_END_(f)
typedef union cfg_ends {
    CB_CONFIG_NUMBERS(CFG_NUM_END_)
    CBH_CONFIG_HOOKS(CFG_END_)
} cfg_ends;
_Static_assert((sizeof(cfg_ends) + _Alignof(cb_config) - 1) / _Alignof(cb_config) *
                       _Alignof(cb_config) ==
                   sizeof(cb_config),
               "a field of cb_config is missing from CB_CONFIG_NUMBERS (breaker.h) or, if it "
               "is no number, from CBH_CONFIG_HOOKS");

/* Fills defaults into a copy of in and checks it; false when the config
 * contradicts itself, with the reason in err. */
static bool config_norm_why(const cb_config *in, cb_config *out, char *err, size_t n)
{
    static const cb_config zero;

    *out = in ? *in : zero;
#define CFG_DEFAULT_(f, kind, dflt)                                                                \
    if (!out->f)                                                                                   \
        out->f = dflt;
    CB_CONFIG_NUMBERS(CFG_DEFAULT_)
#undef CFG_DEFAULT_
    /* The rules that are not a plain "0 = N". */
    out->clock = cbh_clock_or_default(out->clock);
    if (!out->half_open_max_wait_ms)
        out->half_open_max_wait_ms = out->reset_timeout_ms;
    if (err && n)
        err[0] = '\0';
    return config_valid(out, err, n);
}

static bool config_norm(const cb_config *in, cb_config *out)
{
    return config_norm_why(in, out, NULL, 0);
}

bool cbh_breaker_config_norm(const cb_config *in, cb_config *out) { return config_norm(in, out); }

CB_EXPORT cb_err cb_config_check(const cb_config *cfg, char *err, size_t n)
{
    cb_config c;

    return config_norm_why(cfg, &c, err, n) ? CB_OK : CB_ERR_INVALID;
}

/* Whether successes must be counted in the window (a rate trip needs the
 * calls as its denominator, a count-based window every outcome). */
static bool tracks_calls(const cb_config *c)
{
    return c->failure_rate_threshold || c->slow_call_ms || c->window_calls;
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

static uint64_t now_ms(const cb_breaker *b) { return b->env->clock(b->env->clock_data); }

static unsigned clamp_u(uint64_t v) { return v > UINT_MAX ? UINT_MAX : (unsigned)v; }

/* A Fibonacci hash of the permit's address, above the bits that vary
 * inside one stack frame or one small object. */
static inline cbh_stripe *stripe_of(cbh_breaker_hot *h, const cb_permit *p)
{
    uint64_t x = ((uint64_t)(uintptr_t)p >> 6) * 0x9e3779b97f4a7c15ull;

    return &h->stripes[x >> 61];
}

static uint64_t sum_successes(const cbh_breaker_hot *h)
{
    uint64_t n = 0;
    unsigned i;

    for (i = 0; i < CBH_STRIPES; i++)
        n += atomic_load_explicit(&h->stripes[i].successes, memory_order_acquire);
    return n;
}

static uint64_t sum_admitted(const cbh_breaker_hot *h)
{
    uint64_t n = 0;
    unsigned i;

    for (i = 0; i < CBH_STRIPES; i++)
        n += atomic_load_explicit(&h->stripes[i].admitted, memory_order_acquire);
    return n;
}

/* The next OPEN duration: reset_timeout_ms grown by the backoff level,
 * capped, then jittered (the jitter may take it past the cap). */
static unsigned open_duration(cb_breaker *b)
{
    const cb_config       *c = b->cfg;
    const cbh_breaker_hot *h = hot_of(b);
    uint64_t               d = c->reset_timeout_ms;
    unsigned               i, level = h ? h->backoff_level : 0;

    if (c->max_reset_timeout_ms && c->reset_backoff_permille > 1000) {
        /* In floating point, so that 1.5 grows 100 ms to 337 at the third
         * level (as 100 * 1.5^3 does) rather than to 336. */
        double x = (double)d, f = c->reset_backoff_permille / 1000.0;

        for (i = 0; i < level && x < c->max_reset_timeout_ms; i++)
            x *= f;
        d = x < c->max_reset_timeout_ms ? (uint64_t)x : c->max_reset_timeout_ms;
    } else if (c->max_reset_timeout_ms && !c->reset_backoff_permille &&
               c->reset_backoff_multiplier > 1) {
        for (i = 0; i < level && d < c->max_reset_timeout_ms; i++)
            d *= c->reset_backoff_multiplier;
        if (d > c->max_reset_timeout_ms)
            d = c->max_reset_timeout_ms;
    }
    if (c->reset_jitter_pct) {
        uint64_t span = d * c->reset_jitter_pct / 100;

        d = d - span + cbh_xorshift64(&b->core.rng) % (2 * span + 1);
    }
    if (d < 1)
        d = 1; /* an OPEN period always lasts a little */
    if (d > UINT_MAX)
        d = UINT_MAX;
    return (unsigned)d;
}

static void evq_push(cb_breaker *b, evq *q, const cb_event *ev)
{
    if (b->env->listener &&
        !(atomic_load_explicit(&b->core.word, memory_order_relaxed) & W_DISABLED) &&
        q->n < sizeof(q->ev) / sizeof(q->ev[0]))
        q->ev[q->n++] = *ev;
}

/* Delivers the queued events. Called with no lock held. */
static void evq_emit(cb_breaker *b, const evq *q)
{
    unsigned i;

    for (i = 0; i < q->n; i++)
        b->env->listener(b, &q->ev[i], b->env->listener_data);
}

/* Starts a new period in state to. For OPEN, until is the time it turns
 * HALF_OPEN and open_ms the duration reported; until 0 = the backoff's next
 * duration. Lock held. */
static void set_state_until(cb_breaker *b, cb_state to, uint64_t now, unsigned open_ms,
                            uint64_t until, evq *q)
{
    uint64_t         w = atomic_load_explicit(&b->core.word, memory_order_relaxed);
    cbh_breaker_hot *h = hot_of(b);
    cb_state         from = W_STATE(w);

    if (to == CB_OPEN) {
        if (!until) {
            open_ms = open_duration(b);
            until = cbh_add_sat(now, open_ms);
        }
        b->core.open_ms = open_ms;
        if (from != CB_OPEN)
            b->core.times_opened++;
        /* Published before the word so that a lock-free reader of the new
         * word never sees an older deadline. */
        atomic_store_explicit(&b->core.open_until, until, memory_order_release);
    } else if (to == CB_CLOSED) {
        if (h)
            h->backoff_level = 0;
        b->core.open_ms = b->cfg->reset_timeout_ms;
    }
    /* A compact breaker has counted nothing: there is nothing to clear. */
    if (h) {
        h->half_open_admitted = 0;
        h->half_open_successes = 0;
        h->half_open_reported = 0;
        h->half_open_failures = 0;
        h->half_open_slow = 0;
        h->run_failures = 0;
        cbh_window_clear(&h->window);
    }
    b->core.state_since_ms = now;
    w = ((w & ~(uint64_t)W_STATE_MASK) + W_GEN_ONE) | (uint64_t)to;
    atomic_store_explicit(&b->core.word, w, memory_order_release);
    if (from != to) {
        cb_event ev = {
            .type = CB_EVENT_STATE_CHANGE, .from = from, .to = to, .state = to, .at_ms = now
        };

        evq_push(b, q, &ev);
    }
}

static void set_state(cb_breaker *b, cb_state to, uint64_t now, evq *q)
{
    set_state_until(b, to, now, 0, 0, q);
}

/* OPEN turns HALF_OPEN once its duration has passed, unless isolated.
 * Lock held. */
static void maybe_half_open(cb_breaker *b, uint64_t now, evq *q)
{
    uint64_t w = atomic_load_explicit(&b->core.word, memory_order_relaxed);

    if (W_STATE(w) == CB_OPEN && !(w & (W_DISABLED | W_ISOLATED)) &&
        now >= atomic_load_explicit(&b->core.open_until, memory_order_relaxed))
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
    uint64_t         w = atomic_load_explicit(&b->core.word, memory_order_relaxed);
    cbh_breaker_hot *h = hot_of(b);

    /* A compact breaker has admitted no probe. */
    if (h && W_STATE(w) == CB_HALF_OPEN && !(w & W_DISABLED) &&
        h->half_open_admitted >= b->cfg->half_open_max &&
        now >= cbh_add_sat(h->half_open_last_ms, b->cfg->half_open_max_wait_ms)) {
        h->half_open_expired++;
        set_state(b, CB_HALF_OPEN, now, q);
    }
}

void cbh_breaker_init(cb_breaker *b, const cb_config *env, const cb_config *cfg)
{
    memset(b, 0, sizeof(*b));
    b->env = env;
    b->cfg = (cb_config *)cfg; /* written only once it is the breaker's own */
    /* Seeded from the address: breakers in one process jitter apart. */
    b->core.rng = cbh_splitmix64((uint64_t)(uintptr_t)b) | 1;
    b->core.open_ms = cfg->reset_timeout_ms;
    b->core.state_since_ms = now_ms(b);
    /* Generation 1, so that a zeroed permit counts as an earlier period. */
    atomic_init(&b->core.word, W_GEN_ONE | config_flags(cfg) | CB_CLOSED);
    atomic_init(&b->core.open_until, 0);
    atomic_init(&b->core.hot, 0);
}

/* A zeroed inflated part, aligned to a cache line whatever alignment the
 * allocator hook gives; NULL when out of memory. */
static cbh_breaker_hot *hot_new(void)
{
    char            *mem = cbh_calloc(1, sizeof(cbh_breaker_hot) + CBH_CACHELINE - 1);
    cbh_breaker_hot *h;
    unsigned         i;

    if (!mem)
        return NULL;
    h = (cbh_breaker_hot *)(((uintptr_t)mem + CBH_CACHELINE - 1) & ~(uintptr_t)(CBH_CACHELINE - 1));
    h->shift = (unsigned)((char *)h - mem);
    for (i = 0; i < CBH_STRIPES; i++) {
        atomic_init(&h->stripes[i].admitted, 0);
        atomic_init(&h->stripes[i].successes, 0);
    }
    atomic_init(&h->last_success_ms, 0);
    atomic_init(&h->rejected, 0);
    return h;
}

static void hot_free(cbh_breaker_hot *h)
{
    if (!h)
        return;
    cbh_window_ring_free(h->window.outcomes);
    cbh_free((char *)h - h->shift);
}

/* ---- Counts, and the carry of a deflated breaker ----------------------- */

/* A breaker's counts as its metrics report them: what deflate keeps, in
 * the carry's order, followed there by the owner's numbers. */
enum {
    C_ADMITTED, /* admitted calls (rejected ones not included) */
    C_SUCCESSES,
    C_FAILURES,
    C_REJECTED,
    C_SLOW,
    C_LATE,
    C_EXPIRED, /* half_open_expired */
    C_IGNORED,
    C_CONSECUTIVE_SUCCESSES,
    C_LAST_FAILURE_MS,
    C_LAST_SUCCESS_MS,
    C_N
};

/* The counts of an inflated breaker. Lock held. */
static void hot_counts(const cbh_breaker_hot *h, uint64_t v[C_N])
{
    /* Outcomes before admissions: a record follows its acquire, so the
     * admitted count read last is never below the outcomes. */
    uint64_t succ = sum_successes(h), fail = h->failures, adm = sum_admitted(h);
    uint64_t outcomes =
        (succ - h->base_successes) + (fail - h->base_failures) + (h->ignored - h->base_ignored);

    v[C_SUCCESSES] = succ - h->base_successes;
    v[C_FAILURES] = fail - h->base_failures;
    v[C_IGNORED] = h->ignored - h->base_ignored;
    v[C_REJECTED] = atomic_load_explicit(&h->rejected, memory_order_relaxed) - h->base_rejected;
    /* Relaxed counters may be seen out of step while other threads run;
     * the snapshot never shows fewer admissions than outcomes. */
    v[C_ADMITTED] = adm < h->base_admitted + outcomes ? outcomes : adm - h->base_admitted;
    v[C_SLOW] = h->slow_calls;
    v[C_LATE] = h->late_outcomes;
    v[C_EXPIRED] = h->half_open_expired;
    v[C_CONSECUTIVE_SUCCESSES] = succ - h->succ_at_failure;
    v[C_LAST_FAILURE_MS] = h->last_failure_ms;
    v[C_LAST_SUCCESS_MS] = atomic_load_explicit(&h->last_success_ms, memory_order_relaxed);
}

/* Starts a fresh inflated part from carried counts: the raw counters are
 * the counts, every baseline zero. No run of failures is carried. */
static void hot_seed(cbh_breaker_hot *h, const uint64_t v[C_N])
{
    uint64_t consec = v[C_CONSECUTIVE_SUCCESSES];

    atomic_store_explicit(&h->stripes[0].admitted, v[C_ADMITTED], memory_order_relaxed);
    atomic_store_explicit(&h->stripes[0].successes, v[C_SUCCESSES], memory_order_relaxed);
    atomic_store_explicit(&h->rejected, v[C_REJECTED], memory_order_relaxed);
    atomic_store_explicit(&h->last_success_ms, v[C_LAST_SUCCESS_MS], memory_order_relaxed);
    h->failures = v[C_FAILURES];
    h->ignored = v[C_IGNORED];
    h->slow_calls = v[C_SLOW];
    h->late_outcomes = v[C_LATE];
    h->half_open_expired = v[C_EXPIRED];
    h->last_failure_ms = v[C_LAST_FAILURE_MS];
    h->succ_at_failure = v[C_SUCCESSES] - (consec < v[C_SUCCESSES] ? consec : v[C_SUCCESSES]);
    h->run_mark = v[C_SUCCESSES];
}

/* Writes n numbers into the carry as LEB128 (seven bits a byte, low
 * first, the top bit set on every byte but a number's last). False, the
 * carry unchanged, when they do not fit. */
static bool carry_put(cbh_breaker_core *c, const uint64_t *v, unsigned n)
{
    uint8_t  buf[CBH_CARRY_BYTES];
    size_t   len = 0;
    unsigned i;

    memset(buf, 0, sizeof(buf));
    for (i = 0; i < n; i++) {
        uint64_t x = v[i];

        do {
            if (len == sizeof(buf))
                return false;
            buf[len++] = (uint8_t)((x & 0x7f) | (x > 0x7f ? 0x80 : 0));
            x >>= 7;
        } while (x);
    }
    memcpy(c->carry, buf, sizeof(buf));
    return true;
}

/* Reads n numbers from the carry (those past its end read as zero) into v,
 * or skips them when v is NULL. Returns the offset after the last. */
static size_t carry_get(const cbh_breaker_core *c, uint64_t *v, unsigned n)
{
    size_t   pos = 0;
    unsigned i;

    for (i = 0; i < n; i++) {
        uint64_t x = 0;
        unsigned shift = 0;

        /* carry_put writes at most ten bytes a number: shift stays < 64. */
        while (pos < sizeof(c->carry)) {
            uint8_t byte = c->carry[pos++];

            x |= (uint64_t)(byte & 0x7f) << shift;
            shift += 7;
            if (!(byte & 0x80))
                break;
        }
        if (v)
            v[i] = x;
    }
    return pos;
}

/* Zeroes the breaker's counts in the carry, keeping its owner's numbers
 * byte for byte: a zero takes one byte, no more than the count it
 * replaces, so they always fit. */
static void carry_clear_counts(cbh_breaker_core *c)
{
    size_t off = carry_get(c, NULL, C_N), rest = sizeof(c->carry) - off;

    memmove(c->carry + C_N, c->carry + off, rest);
    memset(c->carry, 0, C_N);
    memset(c->carry + C_N + rest, 0, off - C_N);
}

/* The failures of the current run: none once a success came after the
 * last failure (see closed_outcome). Lock held. */
static unsigned run_failures_now(const cbh_breaker_hot *h)
{
    return sum_successes(h) == h->run_mark ? h->run_failures : 0;
}

/* Whether an inflated breaker holds nothing but counts at now. Lock held. */
static bool hot_idle(cb_breaker *b, cbh_breaker_hot *h, uint64_t now)
{
    uint64_t w = atomic_load_explicit(&b->core.word, memory_order_relaxed);

    if (W_STATE(w) != CB_CLOSED || (w & W_ISOLATED) || h->window.count || run_failures_now(h))
        return false;
    cbh_window_advance(&h->window, now);
    return !h->window.calls && !h->window.failures && !h->window.slow;
}

bool cbh_breaker_deflate(cb_breaker *b, uint64_t now, const uint64_t *extra, unsigned n_extra)
{
    uint64_t         v[C_N + CBH_CARRY_EXTRA_MAX];
    cbh_breaker_hot *h;
    bool             ok;

    if (n_extra > CBH_CARRY_EXTRA_MAX)
        return false;
    cbh_lock_take(&b->core.lock);
    h = hot_of(b);
    if (h && !hot_idle(b, h, now)) {
        cbh_lock_drop(&b->core.lock);
        return false;
    }
    if (h)
        hot_counts(h, v);
    else
        carry_get(&b->core, v, C_N);
    if (n_extra)
        memcpy(v + C_N, extra, n_extra * sizeof(*extra));
    ok = carry_put(&b->core, v, C_N + n_extra);
    if (ok)
        atomic_store_explicit(&b->core.hot, 0, memory_order_relaxed);
    cbh_lock_drop(&b->core.lock);
    if (ok)
        hot_free(h);
    return ok;
}

void cbh_breaker_carried(cb_breaker *b, uint64_t *extra, unsigned n_extra)
{
    uint64_t v[C_N + CBH_CARRY_EXTRA_MAX];

    if (n_extra > CBH_CARRY_EXTRA_MAX)
        n_extra = CBH_CARRY_EXTRA_MAX;
    cbh_lock_take(&b->core.lock);
    carry_get(&b->core, v, C_N + n_extra);
    cbh_lock_drop(&b->core.lock);
    memcpy(extra, v + C_N, n_extra * sizeof(*extra));
}

bool cbh_breaker_inflated(const cb_breaker *b) { return hot_of(b) != NULL; }

cb_err cbh_breaker_inflate(cb_breaker *b)
{
    cbh_breaker_hot *h;
    cb_err           err = CB_OK;

    if (hot_of(b))
        return CB_OK;
    if (!(h = hot_new()))
        return CB_ERR_NOMEM;
    cbh_lock_take(&b->core.lock);
    if (!hot_of(b)) {
        uint64_t v[C_N];

        /* What an earlier deflate kept (zeros for a breaker never inflated). */
        carry_get(&b->core, v, C_N);
        hot_seed(h, v);
    }
    if (hot_of(b)) {
        /* Another thread was first. */
    } else if (b->cfg->window_calls) {
        uint8_t *ring = cbh_window_ring_new(b->cfg->window_calls);

        if (ring) {
            cbh_window_init_count(&h->window, b->cfg->window_calls, ring);
            /* Published last: a lock-free reader that finds the offset
             * finds the part complete. */
            atomic_store_explicit(&b->core.hot, (uint64_t)((uintptr_t)h - (uintptr_t)&b->core),
                                  memory_order_release);
            h = NULL;
        } else {
            err = CB_ERR_NOMEM;
        }
    } else {
        cbh_window_init(&h->window, b->cfg->failure_window_ms);
        atomic_store_explicit(&b->core.hot, (uint64_t)((uintptr_t)h - (uintptr_t)&b->core),
                              memory_order_release);
        h = NULL;
    }
    cbh_lock_drop(&b->core.lock);
    hot_free(h);
    return err;
}

void cbh_breaker_destroy(cb_breaker *b)
{
    hot_free(hot_of(b));
    atomic_store_explicit(&b->core.hot, 0, memory_order_relaxed);
    if (b->own_cfg)
        cbh_free(b->cfg);
    b->own_cfg = false;
}

CB_EXPORT cb_breaker *cb_breaker_new(const cb_config *cfg)
{
    breaker_block *blk;
    cb_config      c;

    if (!config_norm(cfg, &c))
        return NULL;
    if (!(blk = cbh_calloc(1, sizeof(*blk))))
        return NULL;
    blk->env = c;
    blk->cfg = c;
    cbh_breaker_init(&blk->b, &blk->env, &blk->cfg);
    blk->b.flags = CBH_BREAKER_BLOCK;
    /* A breaker of its own is used at once: inflated now, so that acquire
     * never meets an allocation. */
    if (cbh_breaker_inflate(&blk->b) != CB_OK) {
        cbh_free(blk);
        return NULL;
    }
    return &blk->b;
}

CB_EXPORT void cb_breaker_free(cb_breaker *b)
{
    if (!b)
        return;
    cbh_breaker_destroy(b);
    if (b->flags & CBH_BREAKER_BLOCK)
        cbh_free((breaker_block *)b); /* b is the block's first member */
}

/* Whether two normalised configs have the same numbers and mode (the
 * callbacks and clock do not count: configure keeps the breaker's own).
 * Every field of CB_CONFIG_NUMBERS, field by field rather than memcmp:
 * padding and callbacks must not count. */
static bool config_same_numbers(const cb_config *a, const cb_config *b)
{
#define CFG_SAME_(f, kind, dflt) a->f == b->f &&
    return CB_CONFIG_NUMBERS(CFG_SAME_) true;
#undef CFG_SAME_
}

/* Copies the callbacks and their data (CBH_CONFIG_HOOKS) of from into to,
 * leaving its numbers. */
static void config_copy_hooks(cb_config *to, const cb_config *from)
{
#define CFG_HOOK_COPY_(f) to->f = from->f;
    CBH_CONFIG_HOOKS(CFG_HOOK_COPY_)
#undef CFG_HOOK_COPY_
}

CB_EXPORT cb_err cb_breaker_configure(cb_breaker *b, const cb_config *cfg)
{
    cb_config        c, *own = NULL;
    cbh_breaker_hot *h;
    uint64_t         w;
    bool             new_window;
    uint8_t         *ring = NULL, *old_ring = NULL;

    if (!b || !cfg || !config_norm(cfg, &c))
        return CB_ERR_INVALID;
    /* The callbacks and clock stay those the breaker was made with. */
    config_copy_hooks(&c, b->env);
    cbh_lock_take(&b->core.lock);
    /* The same numbers change nothing: many breakers can go on sharing one
     * config. */
    if (config_same_numbers(&c, b->cfg)) {
        cbh_lock_drop(&b->core.lock);
        return CB_OK;
    }
    cbh_lock_drop(&b->core.lock);
    /* Allocated before the lock, and freed after it when not needed. */
    if (c.window_calls && !(ring = cbh_window_ring_new(c.window_calls)))
        return CB_ERR_NOMEM;
    if (!(b->flags & CBH_BREAKER_BLOCK) && !(own = cbh_malloc(sizeof(*own)))) {
        cbh_window_ring_free(ring);
        return CB_ERR_NOMEM;
    }
    cbh_lock_take(&b->core.lock);
    h = hot_of(b);
    /* Buckets of another width, or calls that were not counted so far,
     * cannot be carried over: the window starts afresh then. */
    new_window = c.window_calls != b->cfg->window_calls ||
                 (!c.window_calls && c.failure_window_ms != b->cfg->failure_window_ms) ||
                 (tracks_calls(&c) && !tracks_calls(b->cfg));
    /* A shared config is never written: the breaker gets its own. */
    if (own && !b->own_cfg) {
        b->cfg = own;
        b->own_cfg = true;
        own = NULL;
    }
    *b->cfg = c;
    if (new_window && h) {
        old_ring = h->window.outcomes;
        if (c.window_calls) {
            cbh_window_init_count(&h->window, c.window_calls, ring);
            ring = NULL;
        } else {
            cbh_window_init(&h->window, c.failure_window_ms);
        }
    }
    w = atomic_load_explicit(&b->core.word, memory_order_relaxed);
    w = (w & ~(uint64_t)W_FLAGS) | config_flags(&c);
    atomic_store_explicit(&b->core.word, w, memory_order_release);
    cbh_lock_drop(&b->core.lock);
    cbh_free(own);
    cbh_window_ring_free(ring);
    cbh_window_ring_free(old_ring);
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
    cbh_lock_take(&b->core.lock);
    *out = *b->cfg;
    cbh_lock_drop(&b->core.lock);
    /* Callbacks and clock: the breaker's own, whatever config it shares. */
    config_copy_hooks(out, b->env);
}

/* Every acquire that is not a CLOSED one (h: the inflated part). */
static cb_err acquire_slow(cb_breaker *b, cbh_breaker_hot *h, cb_permit *p, uint64_t w)
{
    uint64_t now = now_ms(b);
    uint64_t shadow = 0;
    evq      q;
    cb_state st;
    bool     admit;

    q.n = 0;
    /* Rejections while OPEN stay lock-free: this is the path a failing
     * dependency hammers. */
    if (W_STATE(w) == CB_OPEN && !(w & (W_DISABLED | W_METRICS_ONLY)) &&
        now < atomic_load_explicit(&b->core.open_until, memory_order_acquire)) {
        atomic_fetch_add_explicit(&h->rejected, 1, memory_order_relaxed);
        if (b->env->listener) {
            cb_event ev = { .type = CB_EVENT_REJECTED, .state = CB_OPEN, .at_ms = now };

            b->env->listener(b, &ev, b->env->listener_data);
        }
        return CB_ERR_CIRCUIT_OPEN;
    }

    cbh_lock_take(&b->core.lock);
    maybe_half_open(b, now, &q);
    maybe_restart_half_open(b, now, &q);
    w = atomic_load_explicit(&b->core.word, memory_order_relaxed);
    st = W_STATE(w);
    if (w & W_DISABLED) {
        admit = true;
    } else if (st == CB_CLOSED) {
        admit = true;
    } else if (st == CB_HALF_OPEN && h->half_open_admitted < b->cfg->half_open_max) {
        h->half_open_admitted++;
        h->half_open_last_ms = now;
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
        atomic_fetch_add_explicit(&stripe_of(h, p)->admitted, 1, memory_order_relaxed);
        p->opaque_[0] = w | shadow;
        p->opaque_[1] = (w & W_TIMED) ? now : 0;
    } else {
        cb_event ev = { .type = CB_EVENT_REJECTED, .state = st, .at_ms = now };

        atomic_fetch_add_explicit(&h->rejected, 1, memory_order_relaxed);
        evq_push(b, &q, &ev);
    }
    cbh_lock_drop(&b->core.lock);
    evq_emit(b, &q);
    return admit ? CB_OK : CB_ERR_CIRCUIT_OPEN;
}

CB_EXPORT cb_err cb_breaker_acquire(cb_breaker *b, cb_permit *p)
{
    cbh_breaker_hot *h;
    uint64_t         w;

    if (CBH_UNLIKELY(!b || !p))
        return CB_ERR_INVALID;
    w = atomic_load_explicit(&b->core.word, memory_order_acquire);
    h = hot_of(b);
    if (CBH_UNLIKELY(!h)) {
        /* A compact breaker's first call: it needs its counters now. */
        if (cbh_breaker_inflate(b) != CB_OK)
            return CB_ERR_NOMEM;
        h = hot_of(b);
    }
    if (CBH_LIKELY(W_STATE(w) == CB_CLOSED)) {
        atomic_fetch_add_explicit(&stripe_of(h, p)->admitted, 1, memory_order_relaxed);
        p->opaque_[0] = w;
        p->opaque_[1] = (w & W_TIMED) ? now_ms(b) : 0;
        return CB_OK;
    }
    return acquire_slow(b, h, p, w);
}

/* Queues a *_RATE_EXCEEDED event: part of calls over total. */
static void push_rate(cb_breaker *b, evq *q, cb_event_type type, cb_state st, uint64_t now,
                      uint64_t part, uint64_t total)
{
    cb_event ev = { .type = type,
                    .state = st,
                    .at_ms = now,
                    .rate = total ? (double)part * 100.0 / (double)total : 0,
                    .calls = clamp_u(total) };

    evq_push(b, q, &ev);
}

/* The rate rules over calls outcomes of which failures failed and slow were
 * slow: queues an event per rule exceeded and says whether any was. */
static bool rates_exceeded(cb_breaker *b, evq *q, cb_state st, uint64_t now, uint64_t calls,
                           uint64_t failures, uint64_t slow)
{
    const cb_config *c = b->cfg;
    bool             over = false;

    if (c->failure_rate_threshold &&
        failures * 100 >= (uint64_t)c->failure_rate_threshold * calls) {
        push_rate(b, q, CB_EVENT_FAILURE_RATE_EXCEEDED, st, now, failures, calls);
        over = true;
    }
    if (c->slow_call_ms && slow * 100 >= (uint64_t)c->slow_call_rate_threshold * calls) {
        push_rate(b, q, CB_EVENT_SLOW_CALL_RATE_EXCEEDED, st, now, slow, calls);
        over = true;
    }
    return over;
}

/* The judgement of a CLOSED period's outcome: the count, consecutive, rate
 * and slow-call trips. succ is the raw success sum, read with the lock
 * held, for a failure. Lock held. */
static void closed_outcome(cb_breaker *b, cbh_breaker_hot *h, uint64_t now, bool failure, bool slow,
                           uint64_t succ, evq *q)
{
    const cb_config *c = b->cfg;
    cbh_window      *win = &h->window;
    uint64_t         min_calls = c->minimum_calls;
    bool             trip = false;

    if (failure) {
        /* A success since the previous failure broke the run. */
        if (h->run_failures && succ == h->run_mark && h->run_failures < UINT_MAX)
            h->run_failures++;
        else
            h->run_failures = 1;
        h->run_mark = succ;
        if (c->consecutive_failures && h->run_failures >= c->consecutive_failures)
            trip = true;
    }
    if (tracks_calls(c))
        cbh_window_add(win, now, 1, failure, slow);
    else if (failure)
        cbh_window_add(win, now, 0, 1, 0);
    else
        return;
    if (win->failures >= c->failure_threshold)
        trip = true;
    /* A count-based window caps minimum_calls at its size (resilience4j). */
    if (win->count && min_calls > win->count)
        min_calls = win->count;
    if (tracks_calls(c) && win->calls >= min_calls &&
        rates_exceeded(b, q, CB_CLOSED, now, win->calls, win->failures, win->slow))
        trip = true;
    if (trip)
        set_state(b, CB_OPEN, now, q);
}

/* The judgement of a HALF_OPEN probe's outcome (see "Half-open" in
 * breaker.h). Lock held. */
static void half_open_outcome(cb_breaker *b, cbh_breaker_hot *h, uint64_t now, bool failure,
                              bool slow, evq *q)
{
    const cb_config *c = b->cfg;
    unsigned         max = c->half_open_max;
    bool             reopen = false, close = false;

    h->half_open_reported++;
    h->half_open_failures += failure;
    h->half_open_slow += slow;
    if (!failure && !slow)
        h->half_open_successes++;
    if (c->half_open_by_rate) {
        if (h->half_open_reported < max)
            return;
        reopen = rates_exceeded(b, q, CB_HALF_OPEN, now, h->half_open_reported,
                                h->half_open_failures, h->half_open_slow);
        close = !reopen;
    } else if (failure) {
        reopen = true;
    } else if (slow &&
               (uint64_t)h->half_open_slow * 100 >= (uint64_t)c->slow_call_rate_threshold * max) {
        push_rate(b, q, CB_EVENT_SLOW_CALL_RATE_EXCEEDED, CB_HALF_OPEN, now, h->half_open_slow,
                  max);
        reopen = true;
    } else if (h->half_open_successes >= c->success_threshold) {
        close = true;
    } else if (h->half_open_successes + (max - h->half_open_reported) < c->success_threshold) {
        reopen = true; /* slow probes left too few to close */
    }
    if (reopen) {
        h->backoff_level++;
        set_state(b, CB_OPEN, now, q);
    } else if (close) {
        set_state(b, CB_CLOSED, now, q);
    }
}

/* The inflated part for an outcome or a release. A permit from acquire
 * means there is one; only a permit no acquire filled in can meet a compact
 * breaker, and then there is nothing to count it in when memory is out. */
static cbh_breaker_hot *hot_for_outcome(cb_breaker *b)
{
    cbh_breaker_hot *h = hot_of(b);

    if (!h && cbh_breaker_inflate(b) == CB_OK)
        h = hot_of(b);
    return h;
}

/* Every outcome that is not a CLOSED success on the fast path. */
static void record_slow(cb_breaker *b, const cb_permit *p, bool failure, cb_err err)
{
    uint64_t         pw = p->opaque_[0];
    uint64_t         now = now_ms(b);
    uint64_t         dur = 0, w, succ = 0;
    cbh_breaker_hot *h = hot_for_outcome(b);
    evq              q;
    bool             slow = false, late, counts;
    cb_state         st;

    if (!h)
        return;
    q.n = 0;
    if ((pw & W_TIMED) && now > p->opaque_[1])
        dur = now - p->opaque_[1];

    cbh_lock_take(&b->core.lock);
    w = atomic_load_explicit(&b->core.word, memory_order_relaxed);
    st = W_STATE(w);
    late = !W_SAME_GEN(w, pw);
    if (b->cfg->slow_call_ms && (pw & W_TIMED) && dur > b->cfg->slow_call_ms) {
        slow = true;
        h->slow_calls++;
    }
    if (late)
        h->late_outcomes++;
    /* Only an outcome of the current period, from a call NORMAL mode would
     * have admitted, may move the state. */
    counts = !late && !(pw & W_SHADOW) && !(w & W_DISABLED);
    if (failure) {
        h->failures++;
        h->last_failure_ms = now;
        h->succ_at_failure = succ = sum_successes(h);
    } else {
        atomic_fetch_add_explicit(&stripe_of(h, p)->successes, 1, memory_order_relaxed);
        atomic_store_explicit(&h->last_success_ms, now, memory_order_relaxed);
        /* A success that moves nothing must not break a run of failures. */
        if (!(counts && st == CB_CLOSED) && h->run_failures)
            h->run_mark++;
    }
    {
        cb_event ev = { .type = failure ? CB_EVENT_FAILURE : CB_EVENT_SUCCESS,
                        .state = st,
                        .error = err,
                        .duration_ms = dur,
                        .slow = slow,
                        .at_ms = now };

        evq_push(b, &q, &ev);
    }
    if (counts) {
        if (st == CB_CLOSED)
            closed_outcome(b, h, now, failure, slow, succ, &q);
        else if (st == CB_HALF_OPEN)
            half_open_outcome(b, h, now, failure, slow, &q);
    }
    cbh_lock_drop(&b->core.lock);
    evq_emit(b, &q);
}

static inline void record_outcome(cb_breaker *b, const cb_permit *p, bool failure, cb_err err)
{
    if (!failure) {
        uint64_t         w = atomic_load_explicit(&b->core.word, memory_order_relaxed);
        cbh_breaker_hot *h = hot_of(b);

        /* Same period, CLOSED, and no success needs the lock. (A permit of
         * this period means acquire inflated the breaker.) */
        if (CBH_LIKELY(W_SAME_GEN(w, p->opaque_[0]) &&
                       (w & (W_STATE_MASK | W_SLOWREC)) == CB_CLOSED && h)) {
            uint64_t now = now_ms(b);

            atomic_fetch_add_explicit(&stripe_of(h, p)->successes, 1, memory_order_relaxed);
            /* The coarse clock moves every few ms: storing only on change
             * keeps this line shared between threads instead of bouncing. */
            if (atomic_load_explicit(&h->last_success_ms, memory_order_relaxed) != now)
                atomic_store_explicit(&h->last_success_ms, now, memory_order_relaxed);
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

static cb_outcome classify_err(const cb_breaker *b, cb_err err)
{
    if (b->env->classify_outcome)
        return b->env->classify_outcome(err, b->env->classify_outcome_data);
    if (b->env->classify)
        return b->env->classify(err, b->env->classify_data) ? CB_OUTCOME_FAILURE
                                                            : CB_OUTCOME_SUCCESS;
    if (err == CB_OK)
        return CB_OUTCOME_SUCCESS;
    return err == CB_ERR_CANCELLED ? CB_OUTCOME_IGNORED : CB_OUTCOME_FAILURE;
}

/* Gives a permit back uncounted. */
static void release_permit(cb_breaker *b, const cb_permit *p, cb_err err)
{
    uint64_t         pw = p->opaque_[0];
    uint64_t         now = now_ms(b);
    uint64_t         w;
    cbh_breaker_hot *h = hot_for_outcome(b);
    evq              q;

    if (!h)
        return;
    q.n = 0;
    cbh_lock_take(&b->core.lock);
    w = atomic_load_explicit(&b->core.word, memory_order_relaxed);
    h->ignored++;
    /* Only a probe of this period holds a slot; a shadow permit never did. */
    if (W_STATE(w) == CB_HALF_OPEN && W_SAME_GEN(w, pw) && !(pw & W_SHADOW) &&
        h->half_open_admitted)
        h->half_open_admitted--;
    {
        cb_event ev = { .type = CB_EVENT_IGNORED,
                        .state = W_STATE(w),
                        .error = err,
                        .duration_ms =
                            (pw & W_TIMED) && now > p->opaque_[1] ? now - p->opaque_[1] : 0,
                        .at_ms = now };

        evq_push(b, &q, &ev);
    }
    cbh_lock_drop(&b->core.lock);
    evq_emit(b, &q);
}

/* Records an outcome the classifier (or the caller) gave; events carry
 * err. An unknown outcome is a failure. */
static void record_as(cb_breaker *b, const cb_permit *p, cb_outcome o, cb_err err)
{
    if (o == CB_OUTCOME_IGNORED)
        release_permit(b, p, err);
    else
        record_outcome(b, p, o != CB_OUTCOME_SUCCESS, err);
}

CB_EXPORT void cb_breaker_record_err(cb_breaker *b, const cb_permit *p, cb_err err)
{
    if (!b || !p)
        return;
    record_as(b, p, classify_err(b, err), err);
}

CB_EXPORT void cb_breaker_record_outcome(cb_breaker *b, const cb_permit *p, cb_outcome o)
{
    if (!b || !p)
        return;
    record_as(b, p, o,
              o == CB_OUTCOME_SUCCESS || o == CB_OUTCOME_IGNORED ? CB_OK : CB_ERR_TRANSPORT);
}

CB_EXPORT void cb_breaker_release(cb_breaker *b, const cb_permit *p)
{
    if (!b || !p)
        return;
    release_permit(b, p, CB_OK);
}

CB_EXPORT cb_err cb_breaker_execute(cb_breaker *b, cb_err (*op)(void *ctx), void *ctx)
{
    cb_permit p;
    cb_err    rc;

    if (!b || !op)
        return CB_ERR_INVALID;
    if (cb_breaker_acquire(b, &p) != CB_OK)
        return CB_ERR_CIRCUIT_OPEN;
    rc = op(ctx);
    record_as(b, &p, classify_err(b, rc), rc);
    return rc;
}

CB_EXPORT cb_state cb_breaker_state(cb_breaker *b)
{
    uint64_t w, now;
    evq      q;

    q.n = 0;
    if (!b)
        return CB_CLOSED;
    w = atomic_load_explicit(&b->core.word, memory_order_acquire);
    if (W_STATE(w) != CB_OPEN || (w & W_DISABLED))
        return W_STATE(w);
    now = now_ms(b);
    if (now < atomic_load_explicit(&b->core.open_until, memory_order_acquire))
        return CB_OPEN;
    cbh_lock_take(&b->core.lock);
    maybe_half_open(b, now, &q);
    w = atomic_load_explicit(&b->core.word, memory_order_relaxed);
    cbh_lock_drop(&b->core.lock);
    evq_emit(b, &q);
    return W_STATE(w);
}

CB_EXPORT void cb_breaker_metrics(cb_breaker *b, cb_metrics *out)
{
    cbh_breaker_hot *h;
    uint64_t         now, w, v[C_N];
    evq              q;

    q.n = 0;
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!b)
        return;
    now = now_ms(b);
    cbh_lock_take(&b->core.lock);
    maybe_half_open(b, now, &q);
    if ((h = hot_of(b))) {
        cbh_window_advance(&h->window, now);
        hot_counts(h, v);
        out->window_failures = clamp_u(h->window.failures);
        out->window_calls = tracks_calls(b->cfg) ? clamp_u(h->window.calls) : 0;
        out->consecutive_failures = run_failures_now(h);
    } else {
        /* Compact: the carried counts, an empty window, no run. */
        carry_get(&b->core, v, C_N);
    }
    w = atomic_load_explicit(&b->core.word, memory_order_relaxed);
    out->state = W_STATE(w);
    out->successes = v[C_SUCCESSES];
    out->failures = v[C_FAILURES];
    out->rejected = v[C_REJECTED];
    out->total_requests = v[C_ADMITTED] + v[C_REJECTED];
    out->consecutive_successes = clamp_u(v[C_CONSECUTIVE_SUCCESSES]);
    out->last_failure_ms = v[C_LAST_FAILURE_MS];
    out->last_success_ms = v[C_LAST_SUCCESS_MS];
    out->times_opened = b->core.times_opened;
    out->slow_calls = v[C_SLOW];
    out->late_outcomes = v[C_LATE];
    out->current_open_ms = b->core.open_ms;
    out->state_since_ms = b->core.state_since_ms;
    out->half_open_expired = v[C_EXPIRED];
    out->ignored = v[C_IGNORED];
    out->isolated = (w & W_ISOLATED) ? 1 : 0;
    cbh_lock_drop(&b->core.lock);
    evq_emit(b, &q);
}

/* Clears every count. The raw counters are never lowered, since the fast
 * path adds to them without the lock; the baselines move instead. The
 * admitted baseline is the outcomes recorded so far, not the admissions:
 * calls still in flight stay counted as admitted, so that once they are
 * recorded the successes and failures add up to the admitted calls. */
static void breaker_reset_locked(cb_breaker *b, uint64_t now, evq *q)
{
    cbh_breaker_hot *h = hot_of(b);

    if (h) {
        uint64_t succ = sum_successes(h);

        h->base_successes = succ;
        h->base_failures = h->failures;
        h->base_ignored = h->ignored;
        h->base_admitted = succ + h->failures + h->ignored;
        h->base_rejected = atomic_load_explicit(&h->rejected, memory_order_relaxed);
        h->succ_at_failure = succ;
        h->last_failure_ms = 0;
        atomic_store_explicit(&h->last_success_ms, 0, memory_order_relaxed);
        h->slow_calls = 0;
        h->late_outcomes = 0;
        h->half_open_expired = 0;
        h->backoff_level = 0;
    } else {
        /* Compact: its carried counts go, its owner's numbers stay. */
        carry_clear_counts(&b->core);
    }
    b->core.times_opened = 0;
    {
        uint64_t w = atomic_load_explicit(&b->core.word, memory_order_relaxed);
        cb_event ev = { .type = CB_EVENT_RESET,
                        .from = W_STATE(w),
                        .to = CB_CLOSED,
                        .state = CB_CLOSED,
                        .at_ms = now };

        /* Isolation ends here, and only here. */
        atomic_store_explicit(&b->core.word, w & ~(uint64_t)W_ISOLATED, memory_order_relaxed);
        set_state(b, CB_CLOSED, now, q);
        evq_push(b, q, &ev);
    }
}

CB_EXPORT void cb_breaker_reset(cb_breaker *b)
{
    uint64_t now;
    evq      q;

    q.n = 0;
    if (!b)
        return;
    now = now_ms(b);
    cbh_lock_take(&b->core.lock);
    breaker_reset_locked(b, now, &q);
    cbh_lock_drop(&b->core.lock);
    evq_emit(b, &q);
}

/* The manual trips: to OPEN until until (0 = the backoff's next duration),
 * or isolated. An isolated breaker stays as it is. */
static void breaker_trip(cb_breaker *b, bool timed, unsigned ms, uint64_t until, bool isolate)
{
    uint64_t now, w;
    evq      q;

    q.n = 0;
    if (!b)
        return;
    now = now_ms(b);
    if (timed) {
        if (!ms)
            ms = 1;
        until = cbh_add_sat(now, ms);
    } else if (until) {
        /* An OPEN period lasts at least 1 ms, even one asked to end in the
         * past. */
        if (until <= now)
            until = cbh_add_sat(now, 1);
        ms = clamp_u(until - now);
    }
    cbh_lock_take(&b->core.lock);
    w = atomic_load_explicit(&b->core.word, memory_order_relaxed);
    if (!(w & W_ISOLATED)) {
        if (isolate) {
            /* Published before the flag, as set_state publishes a deadline
             * before the word. */
            set_state_until(b, CB_OPEN, now, UINT_MAX, UINT64_MAX, &q);
            w = atomic_load_explicit(&b->core.word, memory_order_relaxed);
            atomic_store_explicit(&b->core.word, w | W_ISOLATED, memory_order_release);
        } else {
            set_state_until(b, CB_OPEN, now, ms, until, &q);
        }
    }
    cbh_lock_drop(&b->core.lock);
    evq_emit(b, &q);
}

CB_EXPORT void cb_breaker_trip(cb_breaker *b) { breaker_trip(b, false, 0, 0, false); }

CB_EXPORT void cb_breaker_trip_for(cb_breaker *b, unsigned ms)
{
    breaker_trip(b, true, ms, 0, false);
}

CB_EXPORT void cb_breaker_trip_until(cb_breaker *b, uint64_t t)
{
    /* t = 0 is "before now" on every clock; it must not read as "no
     * deadline given". */
    breaker_trip(b, false, 0, t ? t : 1, false);
}

CB_EXPORT void cb_breaker_isolate(cb_breaker *b) { breaker_trip(b, false, 0, 0, true); }
