/*
 * cbhttp: the circuit breaker core. Usable on its own around any operation,
 * with no HTTP involved.
 *
 * States: CLOSED admits every call and counts failures in a rolling window;
 * OPEN rejects every call until the reset timeout has passed; HALF_OPEN admits
 * a limited number of probes, closes after enough successes and reopens on
 * any failure.
 *
 * Thread-safety: every function taking a cb_breaker * may be called from
 * several threads at once. The CLOSED fast path (acquire + record of a
 * success) takes no lock and reads only the coarse clock; failures, OPEN and
 * HALF_OPEN, transitions and events take the breaker's mutex. With a
 * failure-rate or slow-call trip, or a listener, successes take it too.
 *
 * Periods: every state change, cb_breaker_reset and cb_breaker_trip starts
 * a new period. A permit belongs to the period it was acquired in; its
 * outcome, recorded in a later period, is counted (successes or failures,
 * and late_outcomes) but never moves the state nor enters the window.
 *
 * Rolling window. A failure counts while it is younger than
 * failure_window_ms: one recorded at t still counts at now = t +
 * failure_window_ms - 1 at best, and never from t + failure_window_ms on
 * (the window is (now - failure_window_ms, now]). Granularity can only
 * make it leave earlier, never later: time is cut into buckets of w ms,
 * w = floor(failure_window_ms / 100) or ceil(failure_window_ms / 100)
 * (whichever covers more of the window; both are 600 ms for the 60 s
 * default, 10 ms for a 1 s window, 1 ms up to 100 ms), and the window is
 * the newest n = min(100, floor(failure_window_ms / w)) of them, so n * w
 * never exceeds failure_window_ms. A failure recorded at t counts while
 * floor(now / w) - floor(t / w) < n, which drops it less than
 * 2 * ceil(failure_window_ms / 100) ms early (about 2 %), less than w ms
 * early when w divides the window (every multiple of 100 ms), and not at
 * all for a window of up to 100 ms. With a fake clock the result is exact and
 * deterministic.
 *
 * Lost probes. A HALF_OPEN period whose half_open_max probes have all been
 * admitted and that has neither closed nor reopened half_open_max_wait_ms
 * after the last of them was admitted is abandoned: the next
 * cb_breaker_acquire starts a new HALF_OPEN period with a fresh allowance
 * (the check is made lazily there; there are no timers). Until then an
 * outcome of the old period's probes still counts as a probe; afterwards it
 * is an earlier-period outcome (counted, moves nothing). The restart emits
 * no STATE_CHANGE event (the state stays HALF_OPEN); it increments
 * cb_metrics.half_open_expired and moves state_since_ms to the restart.
 *
 * Clock arithmetic saturates: a deadline (now + a duration) that would pass
 * UINT64_MAX is UINT64_MAX, reached only when the clock reads UINT64_MAX.
 */
#ifndef CBHTTP_BREAKER_H
#define CBHTTP_BREAKER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cb_state { CB_CLOSED = 0, CB_OPEN = 1, CB_HALF_OPEN = 2 } cb_state;

/* "CLOSED", "OPEN", "HALF_OPEN"; "UNKNOWN" for other values. Never NULL. */
CB_EXPORT const char *cb_state_name(cb_state s);

typedef enum cb_mode {
    CB_MODE_NORMAL = 0,   /* the breaker opens and rejects */
    CB_MODE_METRICS_ONLY, /* counts, computes state and emits events, but
                             never rejects a call: a call NORMAL would have
                             rejected is admitted, counted, and its outcome
                             moves nothing (it is not a probe); no REJECTED
                             events, rejected stays 0 */
    CB_MODE_DISABLED      /* admits everything, counts totals only, never
                             changes state by itself (cb_breaker_reset and
                             cb_breaker_trip still do), emits no events */
} cb_mode;

typedef enum cb_event_type {
    CB_EVENT_STATE_CHANGE = 0, /* from -> to */
    CB_EVENT_SUCCESS,          /* duration_ms, slow */
    CB_EVENT_FAILURE,          /* error, duration_ms, slow */
    CB_EVENT_REJECTED          /* state at the time of rejection */
} cb_event_type;

typedef struct cb_event {
    cb_event_type type;
    cb_state from;        /* STATE_CHANGE */
    cb_state to;          /* STATE_CHANGE */
    cb_state state;       /* the state when the event happened */
    cb_err   error;       /* FAILURE: the error passed to cb_breaker_record_err
                             (CB_ERR_TRANSPORT when recorded as a plain bool) */
    uint64_t duration_ms; /* SUCCESS/FAILURE: from acquire to record */
    bool     slow;        /* SUCCESS/FAILURE: slower than slow_call_ms */
    uint64_t at_ms;       /* the breaker clock when it happened */
} cb_event;

typedef struct cb_breaker cb_breaker; /* opaque */

/*
 * Event listener. Called with no lock of the breaker held, after the change
 * it reports took effect, on the thread that caused it; it may call any
 * cb_breaker_* function, including on the same breaker (but not free it).
 * Events from one thread arrive in order (an outcome before the state change
 * it caused); concurrent threads may interleave. Tripping an OPEN breaker
 * again restarts its timeout without a STATE_CHANGE event.
 */
typedef void (*cb_listener_fn)(cb_breaker *b, const cb_event *ev, void *user_data);

/* Failure classifier for cb_breaker_execute and cb_breaker_record_err:
 * returns true when err counts as a failure. The default counts every
 * err != CB_OK. */
typedef bool (*cb_classify_fn)(cb_err err, void *user_data);

typedef struct cb_config {
    unsigned failure_threshold; /* failures inside the rolling window that open it; default 5 */
    unsigned failure_window_ms; /* rolling window for counting failures; default 60000 */
    unsigned reset_timeout_ms;  /* time OPEN before a probe is allowed (HALF_OPEN); default 30000 */
    unsigned half_open_max;     /* most probe calls admitted in one HALF_OPEN period; default 3 */
    unsigned success_threshold; /* successes in HALF_OPEN that close it; default 1 */

    /* Failure-rate trip: opens when failures are at least this percentage
     * (1-100) of the calls recorded in the window, once the window holds at
     * least minimum_calls calls. 0 = off. Enabling a rate trip makes every
     * success take the breaker's lock. */
    unsigned failure_rate_threshold;
    unsigned minimum_calls; /* default 10 */

    /* Slow-call trip: calls slower than slow_call_ms count as slow; when
     * slow calls reach slow_call_rate_threshold percent (default 100) of the
     * calls in the window (and minimum_calls is reached) it opens.
     * 0 = off. */
    unsigned slow_call_ms;
    unsigned slow_call_rate_threshold;

    /* Open-duration backoff: each failed HALF_OPEN period multiplies the
     * next OPEN duration by reset_backoff_multiplier (default 2) up to
     * max_reset_timeout_ms. 0 = no growth: always reset_timeout_ms. */
    unsigned max_reset_timeout_ms;
    unsigned reset_backoff_multiplier;
    /* Randomises every OPEN duration by up to +/- this percentage (0-100)
     * so that many processes do not probe in step. 0 = none. Applied after
     * the max_reset_timeout_ms cap; an OPEN duration is at least 1 ms. */
    unsigned reset_jitter_pct;

    cb_mode mode;

    cb_classify_fn classify;      /* NULL = every error is a failure */
    void          *classify_data;
    cb_listener_fn listener;      /* NULL = no events */
    void          *listener_data;
    cb_clock_fn    clock;         /* NULL = cb_clock_monotonic_ms; never called
                                     with the breaker's lock held */
    void          *clock_data;

    /* How long a HALF_OPEN period whose probes have all been admitted waits
     * for them, counted from the admission of the last one, before a new
     * period starts (see "Lost probes" above). Like resilience4j's
     * maxWaitDurationInHalfOpenState, except that the breaker stays
     * HALF_OPEN rather than going OPEN. 0 = reset_timeout_ms. */
    unsigned half_open_max_wait_ms;
} cb_config;

/* A ticket from cb_breaker_acquire; pass it back to cb_breaker_record.
 * Its fields are private. */
typedef struct cb_permit {
    uint64_t opaque_[2];
} cb_permit;

typedef struct cb_metrics {
    cb_state state;
    uint64_t total_requests;     /* every acquire: admitted and rejected */
    uint64_t successes;          /* recorded successes */
    uint64_t failures;           /* recorded failures */
    uint64_t rejected;           /* acquires rejected with CB_ERR_CIRCUIT_OPEN */
    unsigned window_failures;    /* failures inside the current window */
    unsigned consecutive_successes; /* successes since the last failure */
    uint64_t last_failure_ms;    /* breaker clock ms, 0 = never (so a clock
                                    that starts at 0 should start above it) */
    uint64_t last_success_ms;
    uint64_t times_opened;
    /* Fields beyond the contract. */
    uint64_t slow_calls;         /* recorded calls slower than slow_call_ms */
    uint64_t late_outcomes;      /* outcomes of permits from an earlier period */
    unsigned window_calls;       /* calls recorded inside the current window;
                                    counted only while a failure-rate or
                                    slow-call trip is on, 0 otherwise */
    unsigned current_open_ms;    /* the OPEN duration now in force */
    uint64_t state_since_ms;     /* when the current state (or HALF_OPEN
                                    period) began */
    uint64_t half_open_expired;  /* HALF_OPEN periods abandoned because their
                                    probes did not all report in time */
    uint64_t ignored;            /* permits given back with cb_breaker_release */
} cb_metrics;

/*
 * Creates a breaker. cfg may be NULL (all defaults); zero fields take their
 * defaults. Returns NULL when out of memory or when the config contradicts
 * itself: success_threshold > half_open_max, a percentage above 100,
 * reset_timeout_ms > max_reset_timeout_ms (when the latter is set), or an
 * unknown mode. The config is copied.
 */
CB_EXPORT cb_breaker *cb_breaker_new(const cb_config *cfg);

/* Frees the breaker. NULL is fine. No other thread may use it any more. */
CB_EXPORT void cb_breaker_free(cb_breaker *b);

/*
 * Replaces the numeric thresholds and mode with those of cfg, keeping the
 * state and every count. The callbacks and clock stay those given to
 * cb_breaker_new. A new failure_window_ms, or turning a rate or slow-call
 * trip on, starts the rolling window afresh. Returns CB_ERR_INVALID (and
 * changes nothing) for a bad config or NULL arguments.
 */
CB_EXPORT cb_err cb_breaker_configure(cb_breaker *b, const cb_config *cfg);

/* The effective config (defaults filled in). A NULL out is ignored; a NULL b
 * zeroes *out. */
CB_EXPORT void cb_breaker_config(cb_breaker *b, cb_config *out);

/*
 * Asks to run one call. CB_OK with *p filled in: run it and then call
 * cb_breaker_record exactly once with the same permit. CB_ERR_CIRCUIT_OPEN:
 * do not run it. CB_ERR_INVALID for NULL arguments. An OPEN breaker whose
 * reset timeout has passed turns HALF_OPEN here, and a HALF_OPEN period
 * whose probes are overdue is restarted here (see "Lost probes").
 */
CB_EXPORT cb_err cb_breaker_acquire(cb_breaker *b, cb_permit *p);

/*
 * Records the outcome of an admitted call. An outcome for a permit from an
 * earlier period (admitted before the breaker last changed state, was reset
 * or tripped) is counted in the metrics but does not move the state. A
 * permit that no acquire filled in counts as an earlier period. In
 * HALF_OPEN only success and failure matter (slow calls do not reopen it).
 * NULL arguments are ignored.
 */
CB_EXPORT void cb_breaker_record(cb_breaker *b, const cb_permit *p, bool success);

/* Like cb_breaker_record, with the call's result: the classifier decides
 * whether err is a failure, and failure events carry err. */
CB_EXPORT void cb_breaker_record_err(cb_breaker *b, const cb_permit *p, cb_err err);

/* Gives a permit back with an outcome that is neither success nor failure
 * (resilience4j's ignored exceptions, gobreaker's IsExcluded): a cancelled
 * call, an operation that never reached the protected service. Nothing is
 * counted but cb_metrics.ignored, the state never moves, and a probe of
 * the current HALF_OPEN period frees its slot for another probe. It takes
 * the place of cb_breaker_record for that permit. NULL arguments are
 * ignored. */
CB_EXPORT void cb_breaker_release(cb_breaker *b, const cb_permit *p);

/*
 * Acquires, runs op(ctx), records its result (through the classifier; by
 * default CB_OK is a success) and returns op's result; or returns
 * CB_ERR_CIRCUIT_OPEN without calling op. CB_ERR_INVALID for NULL b or op.
 */
CB_EXPORT cb_err cb_breaker_execute(cb_breaker *b, cb_err (*op)(void *ctx), void *ctx);

/* The current state. An OPEN breaker whose reset timeout has passed turns
 * HALF_OPEN here. CB_CLOSED for NULL. */
CB_EXPORT cb_state cb_breaker_state(cb_breaker *b);

/* A consistent snapshot of the counters. Zeroes *out for a NULL breaker. */
CB_EXPORT void cb_breaker_metrics(cb_breaker *b, cb_metrics *out);

/* Back to CLOSED with every count and the open-duration backoff cleared.
 * Outcomes of permits issued before the reset do not move the state. Calls
 * still in flight stay counted as admitted (total_requests) so that, once
 * recorded, successes + failures + rejected == total_requests again. */
CB_EXPORT void cb_breaker_reset(cb_breaker *b);

/* To OPEN by hand (from any state), starting a new reset timeout at the
 * current backoff level. */
CB_EXPORT void cb_breaker_trip(cb_breaker *b);

#ifdef __cplusplus
}
#endif
#endif /* CBHTTP_BREAKER_H */
