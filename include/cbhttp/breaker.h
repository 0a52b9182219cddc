/*
 * cbhttp: the circuit breaker core. Usable on its own around any operation,
 * with no HTTP involved.
 *
 * States: CLOSED admits every call and counts failures in a rolling window;
 * OPEN rejects every call until the reset timeout has passed; HALF_OPEN admits
 * a limited number of probes, closes after enough successes and reopens on
 * any failure (or judges the probes by rate: half_open_by_rate). An isolated
 * breaker (cb_breaker_isolate) is OPEN until cb_breaker_reset.
 *
 * Thread-safety: every function taking a cb_breaker * may be called from
 * several threads at once. The CLOSED fast path (acquire + record of a
 * success) takes no lock and reads only the coarse clock; failures, OPEN and
 * HALF_OPEN, transitions and events take the breaker's lock. With a
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
 *
 * Trips. In CLOSED, one recorded outcome of the current period is judged by
 * every rule that is on, and any one of them opens the breaker:
 *   - failure_threshold failures inside the window (always on; CB_NEVER
 *     turns it off);
 *   - consecutive_failures failures in a row (off by default);
 *   - failure_rate_threshold and slow_call_rate_threshold percent of the
 *     calls inside the window, once it holds minimum_calls calls (off by
 *     default).
 * The window is the last failure_window_ms (time-based, the default) or the
 * last window_calls recorded calls (count-based).
 *
 * Half-open. By default a HALF_OPEN period closes after success_threshold
 * successes and reopens on the first failure. With slow-call tripping on
 * (slow_call_ms set), a slow probe is no success: the period reopens once
 * its slow probes reach slow_call_rate_threshold percent of half_open_max
 * (rounded up), or once the probes left can no longer make
 * success_threshold. With half_open_by_rate the period waits for all
 * half_open_max probes and then reopens if their failure rate reaches
 * failure_rate_threshold or their slow-call rate reaches
 * slow_call_rate_threshold, and closes otherwise (resilience4j,
 * failsafe-go); success_threshold is then not used. A reopened period
 * grows the next OPEN duration (backoff) either way.
 *
 * Events for one call, in order (one thread; see cb_listener_fn):
 *   cb_breaker_acquire: STATE_CHANGE OPEN -> HALF_OPEN when the reset timeout
 *     has passed, then REJECTED if the call is refused.
 *   cb_breaker_record*, cb_breaker_release: the outcome (SUCCESS, FAILURE or
 *     IGNORED), then FAILURE_RATE_EXCEEDED and SLOW_CALL_RATE_EXCEEDED when
 *     a rate rule was exceeded (in that order, both if both were), then the
 *     STATE_CHANGE it caused. An IGNORED outcome never causes more.
 *   cb_breaker_reset: STATE_CHANGE to CLOSED (unless it was CLOSED), then
 *     RESET.
 *   cb_breaker_trip*, cb_breaker_isolate: STATE_CHANGE to OPEN (unless it was
 *     OPEN).
 *
 * Zero that means zero. Every numeric field's 0 means its default, so some
 * values cannot be written as 0; none is needed:
 *   - minimum_calls = 0 would mean "judge the rate from the first call":
 *     write 1. A rate is only judged after an outcome is recorded, so the
 *     window then holds at least one call and 0 and 1 behave alike.
 *   - failure_rate_threshold = 0 is "off": a threshold of 0 % would open on
 *     a window of successes. "Any failure opens" is failure_threshold = 1,
 *     or failure_rate_threshold = 1 with minimum_calls = 1 for "any failure
 *     among the last 100 calls or fewer".
 *   - slow_call_rate_threshold = 0 means 100: 0 % would open on fast calls.
 *   - reset_timeout_ms = 0 means 30000: an OPEN period lasts at least 1 ms
 *     anyway, so write 1.
 *   - half_open_max = 0 means 3: "never probe" is cb_breaker_isolate.
 *   - failure_threshold = 0 means 5: "no count trip" (a rate-only breaker,
 *     as resilience4j and Polly's advanced breaker are) is CB_NEVER.
 *   - reset_backoff_multiplier = 0 means 2: "no growth" is 1, or leaving
 *     max_reset_timeout_ms at 0.
 */
#ifndef CBHTTP_BREAKER_H
#define CBHTTP_BREAKER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cb_state { CB_CLOSED = 0, CB_OPEN = 1, CB_HALF_OPEN = 2 } cb_state;

/* A count that is never reached: failure_threshold = CB_NEVER turns the
 * count trip off, for a breaker that opens by rate or by consecutive
 * failures only. */
#define CB_NEVER 0xffffffffu

/* The largest window_calls accepted (one byte per call is kept). */
#define CB_WINDOW_CALLS_MAX 10000u

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
    CB_EVENT_STATE_CHANGE = 0,        /* from -> to */
    CB_EVENT_SUCCESS,                 /* duration_ms, slow */
    CB_EVENT_FAILURE,                 /* error, duration_ms, slow */
    CB_EVENT_REJECTED,                /* state at the time of rejection */
    CB_EVENT_IGNORED,                 /* an outcome that is neither success nor
                                  failure: error (CB_OK from
                                  cb_breaker_release), duration_ms */
    CB_EVENT_FAILURE_RATE_EXCEEDED,   /* rate, calls: the failure rate that
                                         reached failure_rate_threshold */
    CB_EVENT_SLOW_CALL_RATE_EXCEEDED, /* rate, calls: the slow-call rate that
                                         reached slow_call_rate_threshold */
    CB_EVENT_RESET                    /* cb_breaker_reset; from: the state before */
} cb_event_type;

typedef struct cb_event {
    cb_event_type type;
    cb_state      from;        /* STATE_CHANGE */
    cb_state      to;          /* STATE_CHANGE */
    cb_state      state;       /* the state when the event happened */
    cb_err        error;       /* FAILURE: the error passed to cb_breaker_record_err
                             (CB_ERR_TRANSPORT when recorded as a plain bool) */
    uint64_t      duration_ms; /* SUCCESS/FAILURE: from acquire to record */
    bool          slow;        /* SUCCESS/FAILURE: slower than slow_call_ms */
    uint64_t      at_ms;       /* the breaker clock when it happened */
    double        rate;        /* *_RATE_EXCEEDED: percent (0-100) of calls */
    unsigned      calls;       /* *_RATE_EXCEEDED: the calls it was judged over */
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

/* What an outcome counts as. */
typedef enum cb_outcome {
    CB_OUTCOME_SUCCESS = 0,
    CB_OUTCOME_FAILURE = 1,
    CB_OUTCOME_IGNORED = 2 /* neither: the permit is given back, as with
                              cb_breaker_release */
} cb_outcome;

/* Outcome classifier (cb_config.classify_outcome): like cb_classify_fn,
 * with a third answer, CB_OUTCOME_IGNORED (resilience4j ignoreExceptions,
 * gobreaker IsExcluded). Called with no lock held; it may not call back
 * into the breaker. */
typedef cb_outcome (*cb_outcome_fn)(cb_err err, void *user_data);

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
     * max_reset_timeout_ms. 0 = no growth: always reset_timeout_ms.
     * reset_backoff_permille (below) gives non-integer factors. */
    unsigned max_reset_timeout_ms;
    unsigned reset_backoff_multiplier;
    /* Randomises every OPEN duration by up to +/- this percentage (0-100)
     * so that many processes do not probe in step. 0 = none. Applied after
     * the max_reset_timeout_ms cap; an OPEN duration is at least 1 ms. */
    unsigned reset_jitter_pct;

    cb_mode mode;

    cb_classify_fn classify; /* NULL = every error is a failure (but see
                                     classify_outcome) */
    void          *classify_data;
    cb_listener_fn listener; /* NULL = no events */
    void          *listener_data;
    cb_clock_fn    clock; /* NULL = cb_clock_monotonic_ms; never called
                                     with the breaker's lock held */
    void          *clock_data;

    /* How long a HALF_OPEN period whose probes have all been admitted waits
     * for them, counted from the admission of the last one, before a new
     * period starts (see "Lost probes" above). Like resilience4j's
     * maxWaitDurationInHalfOpenState, except that the breaker stays
     * HALF_OPEN rather than going OPEN. 0 = reset_timeout_ms. */
    unsigned half_open_max_wait_ms;

    /* Consecutive-failure trip: opens after this many failures in a row in
     * CLOSED, whatever the window holds (gobreaker's default ReadyToTrip,
     * Polly's basic breaker, Finagle and Linkerd failure accrual). A
     * success breaks the run; ignored outcomes and outcomes of earlier
     * periods do not. Successes stay lock-free. 0 = off. With
     * failure_threshold = CB_NEVER it is the only count rule. */
    unsigned consecutive_failures;

    /* Count-based window (resilience4j COUNT_BASED): the window is the last
     * window_calls recorded calls of the CLOSED period instead of the last
     * failure_window_ms (which is then unused), judged by the same rules:
     * failure_threshold failures, the failure and slow-call rates, and
     * minimum_calls, capped at window_calls as resilience4j does. At most
     * CB_WINDOW_CALLS_MAX; above it the config is refused. Like a rate trip
     * it makes every success take the breaker's lock. 0 = time-based. */
    unsigned window_calls;

    /* Outcome classifier with an "ignore" answer; when set it is used
     * instead of classify. NULL and classify NULL = CB_OK is a success,
     * CB_ERR_CANCELLED is ignored (a cancelled call says nothing about the
     * service), any other error is a failure. */
    cb_outcome_fn classify_outcome;
    void         *classify_outcome_data;

    /* HALF_OPEN judged by rate (resilience4j, failsafe-go): see
     * "Half-open" above. Needs failure_rate_threshold. false = the first
     * failure reopens. */
    bool half_open_by_rate;

    /* Backoff growth in thousandths (resilience4j's 1.5 multiplier = 1500),
     * used instead of reset_backoff_multiplier when set; at least 1000.
     * Each level multiplies exactly, rounding down only at the end:
     * 100 ms at 1500 gives 150, 225, 337, 506. Only with
     * max_reset_timeout_ms. 0 = use reset_backoff_multiplier. */
    unsigned reset_backoff_permille;
} cb_config;

/*
 * Every number of cb_config, in field order, once: X(field, kind, default).
 * The defaults, the comparison that decides whether a reconfiguration
 * changes anything, and the JSON config loader's rows are generated from
 * it (the struct above keeps its documentation; the library checks at
 * compile time that this list and the callbacks are all of its fields).
 * kind: UINT any unsigned, PCT an unsigned percentage 0-100, MODE a
 * cb_mode (by name in JSON), BOOL a bool. default: what 0 becomes in
 * cb_config_check, cb_breaker_new and cb_breaker_configure when it is a
 * plain "0 = N"; 0 where 0 stays 0 (off, none) or the rule is another
 * field (half_open_max_wait_ms: 0 = reset_timeout_ms).
 */
#define CB_CONFIG_NUMBERS(X)                                                                       \
    X(failure_threshold, UINT, 5)                                                                  \
    X(failure_window_ms, UINT, 60000)                                                              \
    X(reset_timeout_ms, UINT, 30000)                                                               \
    X(half_open_max, UINT, 3)                                                                      \
    X(success_threshold, UINT, 1)                                                                  \
    X(failure_rate_threshold, PCT, 0)                                                              \
    X(minimum_calls, UINT, 10)                                                                     \
    X(slow_call_ms, UINT, 0)                                                                       \
    X(slow_call_rate_threshold, PCT, 100)                                                          \
    X(max_reset_timeout_ms, UINT, 0)                                                               \
    X(reset_backoff_multiplier, UINT, 2)                                                           \
    X(reset_jitter_pct, PCT, 0)                                                                    \
    X(mode, MODE, CB_MODE_NORMAL)                                                                  \
    X(half_open_max_wait_ms, UINT, 0)                                                              \
    X(consecutive_failures, UINT, 0)                                                               \
    X(window_calls, UINT, 0)                                                                       \
    X(half_open_by_rate, BOOL, false)                                                              \
    X(reset_backoff_permille, UINT, 0)

/* A ticket from cb_breaker_acquire; pass it back to cb_breaker_record.
 * Its fields are private. */
typedef struct cb_permit {
    uint64_t opaque_[2];
} cb_permit;

typedef struct cb_metrics {
    cb_state state;
    uint64_t total_requests;        /* every acquire: admitted and rejected */
    uint64_t successes;             /* recorded successes */
    uint64_t failures;              /* recorded failures */
    uint64_t rejected;              /* acquires rejected with CB_ERR_CIRCUIT_OPEN */
    unsigned window_failures;       /* failures inside the current window */
    unsigned consecutive_successes; /* successes since the last failure */
    uint64_t last_failure_ms;       /* breaker clock ms, 0 = never (so a clock
                                    that starts at 0 should start above it) */
    uint64_t last_success_ms;
    uint64_t times_opened;
    /* Fields beyond the contract. */
    uint64_t slow_calls;           /* recorded calls slower than slow_call_ms */
    uint64_t late_outcomes;        /* outcomes of permits from an earlier period */
    unsigned window_calls;         /* calls recorded inside the current window;
                                    counted only while a failure-rate or
                                    slow-call trip is on, 0 otherwise */
    unsigned current_open_ms;      /* the OPEN duration now in force */
    uint64_t state_since_ms;       /* when the current state (or HALF_OPEN
                                    period) began */
    uint64_t half_open_expired;    /* HALF_OPEN periods abandoned because their
                                    probes did not all report in time */
    uint64_t ignored;              /* permits given back with cb_breaker_release
                                    or an ignored outcome */
    unsigned consecutive_failures; /* failures in a row in the current
                                      CLOSED period (0 otherwise) */
    unsigned isolated;             /* 1 while isolated (cb_breaker_isolate) */
} cb_metrics;

/*
 * Checks a config the way cb_breaker_new does, with defaults filled in
 * first. Returns CB_OK, or CB_ERR_INVALID with a message naming the field
 * and the values in err (truncated to n bytes, NUL-terminated; err may be
 * NULL when n is 0), e.g. "success_threshold (4) > half_open_max (3)". A
 * NULL cfg is the defaults: CB_OK. Refused: success_threshold >
 * half_open_max, a percentage above 100, reset_timeout_ms >
 * max_reset_timeout_ms (when the latter is set), an unknown mode,
 * window_calls > CB_WINDOW_CALLS_MAX, reset_backoff_permille below 1000,
 * half_open_by_rate without failure_rate_threshold. Thread-safe.
 */
CB_EXPORT cb_err cb_config_check(const cb_config *cfg, char *err, size_t n);

/*
 * Creates a breaker. cfg may be NULL (all defaults); zero fields take their
 * defaults. Returns NULL when out of memory or when cb_config_check refuses
 * the config. The config is copied.
 */
CB_EXPORT cb_breaker *cb_breaker_new(const cb_config *cfg);

/* Frees the breaker. NULL is fine. No other thread may use it any more. */
CB_EXPORT void cb_breaker_free(cb_breaker *b);

/*
 * Replaces the numeric thresholds and mode with those of cfg, keeping the
 * state and every count. The callbacks and clock stay those given to
 * cb_breaker_new. A new failure_window_ms or window_calls, or turning a
 * rate or slow-call trip on, starts the rolling window afresh. Returns
 * CB_ERR_INVALID (and changes nothing) for a bad config or NULL arguments,
 * CB_ERR_NOMEM when a count-based window cannot be allocated.
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
 * HALF_OPEN slow calls count only when slow-call tripping is on (see
 * "Half-open"). NULL arguments are ignored.
 */
CB_EXPORT void cb_breaker_record(cb_breaker *b, const cb_permit *p, bool success);

/* Like cb_breaker_record, with the call's result: the classifier decides
 * whether err is a success, a failure or ignored (then it acts as
 * cb_breaker_release), and FAILURE and IGNORED events carry err. */
CB_EXPORT void cb_breaker_record_err(cb_breaker *b, const cb_permit *p, cb_err err);

/* Like cb_breaker_record with a tri-state outcome: CB_OUTCOME_IGNORED acts
 * as cb_breaker_release. An unknown value counts as a failure. */
CB_EXPORT void cb_breaker_record_outcome(cb_breaker *b, const cb_permit *p, cb_outcome o);

/* Gives a permit back with an outcome that is neither success nor failure
 * (resilience4j's ignored exceptions, gobreaker's IsExcluded): a cancelled
 * call, an operation that never reached the protected service. Nothing is
 * counted but cb_metrics.ignored, the state never moves, a run of
 * consecutive failures is not broken, and a probe of the current HALF_OPEN
 * period frees its slot for another probe. Emits an IGNORED event. It
 * takes the place of cb_breaker_record for that permit. NULL arguments are
 * ignored. */
CB_EXPORT void cb_breaker_release(cb_breaker *b, const cb_permit *p);

/*
 * Acquires, runs op(ctx), records its result (through the classifier; by
 * default CB_OK is a success, CB_ERR_CANCELLED ignored) and returns op's
 * result; or returns
 * CB_ERR_CIRCUIT_OPEN without calling op. CB_ERR_INVALID for NULL b or op.
 */
CB_EXPORT cb_err cb_breaker_execute(cb_breaker *b, cb_err (*op)(void *ctx), void *ctx);

/* The current state. An OPEN breaker whose reset timeout has passed turns
 * HALF_OPEN here. CB_CLOSED for NULL. */
CB_EXPORT cb_state cb_breaker_state(cb_breaker *b);

/* A consistent snapshot of the counters. Zeroes *out for a NULL breaker. */
CB_EXPORT void cb_breaker_metrics(cb_breaker *b, cb_metrics *out);

/* Back to CLOSED with every count and the open-duration backoff cleared;
 * ends an isolation. Outcomes of permits issued before the reset do not
 * move the state. Calls still in flight stay counted as admitted
 * (total_requests) so that, once recorded, successes + failures + ignored +
 * rejected == total_requests again. Emits STATE_CHANGE (unless it was
 * CLOSED), then RESET (resilience4j's order). */
CB_EXPORT void cb_breaker_reset(cb_breaker *b);

/* To OPEN by hand (from any state), starting a new reset timeout at the
 * current backoff level. An isolated breaker stays isolated. */
CB_EXPORT void cb_breaker_trip(cb_breaker *b);

/* To OPEN for ms milliseconds (at least 1), then HALF_OPEN as usual
 * (resilience4j transitionToOpenStateFor, Polly's break-duration
 * generator; the HTTP client's use: a Retry-After). The duration is taken
 * as given: no backoff growth, no jitter, and the backoff level is kept.
 * cb_metrics.current_open_ms reports it. An isolated breaker stays
 * isolated. Thread-safe; NULL is ignored. */
CB_EXPORT void cb_breaker_trip_for(cb_breaker *b, unsigned ms);

/* To OPEN until the breaker clock reads t (resilience4j
 * transitionToOpenStateUntil); a t not after now opens it for 1 ms.
 * current_open_ms is t - now, at most UINT_MAX. Otherwise as
 * cb_breaker_trip_for. */
CB_EXPORT void cb_breaker_trip_until(cb_breaker *b, uint64_t t);

/* Forced open (Polly Isolate, resilience4j FORCED_OPEN): OPEN, rejecting
 * every call until cb_breaker_reset, never turning HALF_OPEN by itself,
 * whatever the clock says; trips do not end it, cb_breaker_configure keeps
 * it. cb_breaker_state reports CB_OPEN and cb_metrics.isolated 1,
 * current_open_ms UINT_MAX. The mode still applies: METRICS_ONLY and
 * DISABLED breakers keep admitting calls. Thread-safe; NULL is ignored. */
CB_EXPORT void cb_breaker_isolate(cb_breaker *b);

#ifdef __cplusplus
}
#endif
#endif /* CBHTTP_BREAKER_H */
