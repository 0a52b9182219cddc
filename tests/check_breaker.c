/*
 * The breaker on its own: states and transitions, the rolling window,
 * probes, the earlier-period rule, rate and slow-call trips, backoff and
 * jitter, the classifier, events, modes, config checks, NULL safety and a
 * multi-threaded stress test. All timing runs on a fake clock, except one
 * test that sleeps for real on the default clock.
 */
/* cbhttp: threaded */
#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cbhttp.h>

#include "helpers/testutil.h"

/* The fake clock: tests move it by hand. It starts above 0 because 0 means
 * "never" in the metrics. */
static uint64_t fake_now;

static uint64_t fake_clock(void *ud)
{
    (void)ud;
    return fake_now;
}

static void setup(void) { fake_now = 1000; }

static cb_config fake_cfg(void)
{
    cb_config c;

    memset(&c, 0, sizeof(c));
    c.clock = fake_clock;
    return c;
}

static int op_calls;

static cb_err op_ok(void *ctx)
{
    (void)ctx;
    op_calls++;
    return CB_OK;
}

static cb_err op_fail(void *ctx)
{
    (void)ctx;
    op_calls++;
    return CB_ERR_CONNECT;
}

static cb_err op_http(void *ctx)
{
    (void)ctx;
    op_calls++;
    return CB_ERR_HTTP;
}

/* Records one failed call through acquire/record. */
static void fail_once(cb_breaker *b)
{
    cb_permit p;

    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record(b, &p, false);
}

static void succeed_once(cb_breaker *b)
{
    cb_permit p;

    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record(b, &p, true);
}

static cb_metrics metrics(cb_breaker *b)
{
    cb_metrics m;

    cb_breaker_metrics(b, &m);
    return m;
}

/* An event recorder for the listener tests. */
#define MAX_EVENTS 64
static cb_event events[MAX_EVENTS];
static unsigned nevents;

static void recorder(cb_breaker *b, const cb_event *ev, void *ud)
{
    (void)b;
    (void)ud;
    if (nevents < MAX_EVENTS)
        events[nevents++] = *ev;
}

/* ---- basics ---------------------------------------------------------- */

START_TEST(test_state_names)
{
    ck_assert_str_eq(cb_state_name(CB_CLOSED), "CLOSED");
    ck_assert_str_eq(cb_state_name(CB_OPEN), "OPEN");
    ck_assert_str_eq(cb_state_name(CB_HALF_OPEN), "HALF_OPEN");
    ck_assert_str_eq(cb_state_name((cb_state)42), "UNKNOWN");
}
END_TEST

START_TEST(test_defaults)
{
    cb_breaker *b = cb_breaker_new(NULL);
    cb_config   c;

    ck_assert_ptr_nonnull(b);
    cb_breaker_config(b, &c);
    ck_assert_uint_eq(c.failure_threshold, 5);
    ck_assert_uint_eq(c.failure_window_ms, 60000);
    ck_assert_uint_eq(c.reset_timeout_ms, 30000);
    ck_assert_uint_eq(c.half_open_max, 3);
    ck_assert_uint_eq(c.success_threshold, 1);
    ck_assert_uint_eq(c.minimum_calls, 10);
    ck_assert_uint_eq(c.slow_call_rate_threshold, 100);
    ck_assert_uint_eq(c.reset_backoff_multiplier, 2);
    ck_assert_uint_eq(c.failure_rate_threshold, 0);
    ck_assert_int_eq(c.mode, CB_MODE_NORMAL);
    ck_assert(c.clock == cb_clock_monotonic_ms);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_free(b);
}
END_TEST

/* Scenario 3: one success and one failure. */
START_TEST(test_one_success_one_failure)
{
    cb_breaker *b = cb_breaker_new(NULL);
    cb_metrics  m;

    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(cb_breaker_execute(b, op_ok, NULL), CB_OK);
    ck_assert_int_eq(cb_breaker_execute(b, op_fail, NULL), CB_ERR_CONNECT);
    m = metrics(b);
    ck_assert_uint_eq(m.total_requests, 2);
    ck_assert_uint_eq(m.failures, 1);
    ck_assert_uint_eq(m.successes, 1);
    ck_assert_uint_eq(m.rejected, 0);
    ck_assert_uint_eq(m.window_failures, 1);
    ck_assert_uint_eq(m.consecutive_successes, 0);
    ck_assert_int_eq(m.state, CB_CLOSED);
    cb_breaker_free(b);
}
END_TEST

/* Scenario 1: three failures open it; the next execute does not run op. */
START_TEST(test_three_failures_open)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    int         i;

    c.failure_threshold = 3;
    b = cb_breaker_new(&c);
    ck_assert_ptr_nonnull(b);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
        ck_assert_int_eq(cb_breaker_execute(b, op_fail, NULL), CB_ERR_CONNECT);
    }
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    op_calls = 0;
    ck_assert_int_eq(cb_breaker_execute(b, op_ok, NULL), CB_ERR_CIRCUIT_OPEN);
    ck_assert_int_eq(op_calls, 0);
    ck_assert_uint_eq(metrics(b).rejected, 1);
    ck_assert_uint_eq(metrics(b).total_requests, 4);
    ck_assert_uint_eq(metrics(b).times_opened, 1);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_metrics_fields)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_metrics  m;

    b = cb_breaker_new(&c);
    ck_assert_ptr_nonnull(b);
    m = metrics(b);
    ck_assert_uint_eq(m.last_success_ms, 0);
    ck_assert_uint_eq(m.last_failure_ms, 0);
    ck_assert_uint_eq(m.state_since_ms, 1000);
    ck_assert_uint_eq(m.current_open_ms, 30000);
    fake_now = 1100;
    succeed_once(b);
    fake_now = 1200;
    fail_once(b);
    fake_now = 1300;
    succeed_once(b);
    succeed_once(b);
    m = metrics(b);
    ck_assert_uint_eq(m.last_success_ms, 1300);
    ck_assert_uint_eq(m.last_failure_ms, 1200);
    ck_assert_uint_eq(m.consecutive_successes, 2);
    ck_assert_uint_eq(m.successes, 3);
    ck_assert_uint_eq(m.failures, 1);
    ck_assert_uint_eq(m.total_requests, 4);
    ck_assert_uint_eq(m.window_failures, 1);
    ck_assert_uint_eq(m.window_calls, 0); /* not tracked without a rate trip */
    ck_assert_uint_eq(m.late_outcomes, 0);
    ck_assert_uint_eq(m.times_opened, 0);
    cb_breaker_free(b);
}
END_TEST

/* A metrics call right after an acquire already counts it. */
START_TEST(test_metrics_inflight)
{
    cb_breaker *b = cb_breaker_new(NULL);
    cb_permit   p;

    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    ck_assert_uint_eq(metrics(b).total_requests, 1);
    ck_assert_uint_eq(metrics(b).successes, 0);
    cb_breaker_record(b, &p, true);
    ck_assert_uint_eq(metrics(b).successes, 1);
    ck_assert_uint_eq(metrics(b).total_requests, 1);
    cb_breaker_free(b);
}
END_TEST

/* ---- transitions ------------------------------------------------------ */

START_TEST(test_open_half_open_closed)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    c.failure_threshold = 2;
    c.reset_timeout_ms = 100;
    b = cb_breaker_new(&c);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(metrics(b).state_since_ms, 1000);
    fake_now += 99;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    fake_now += 1;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    ck_assert_uint_eq(metrics(b).state_since_ms, 1100);
    succeed_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    ck_assert_uint_eq(metrics(b).window_failures, 0);
    ck_assert_uint_eq(metrics(b).times_opened, 1);
    cb_breaker_free(b);
}
END_TEST

/* Scenario 2 on the fake clock. */
START_TEST(test_recovers_fake_clock)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.failure_threshold = 2;
    c.reset_timeout_ms = 100;
    b = cb_breaker_new(&c);
    ck_assert_int_eq(cb_breaker_execute(b, op_fail, NULL), CB_ERR_CONNECT);
    ck_assert_int_eq(cb_breaker_execute(b, op_fail, NULL), CB_ERR_CONNECT);
    ck_assert_int_eq(cb_breaker_execute(b, op_ok, NULL), CB_ERR_CIRCUIT_OPEN);
    fake_now += 150;
    op_calls = 0;
    ck_assert_int_eq(cb_breaker_execute(b, op_ok, NULL), CB_OK);
    ck_assert_int_eq(op_calls, 1);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_free(b);
}
END_TEST

/* Scenario 2 with a real 150 ms sleep on the default clock. */
START_TEST(test_recovers_real_sleep)
{
    cb_breaker *b = cb_breaker_new(&(cb_config){ .failure_threshold = 2, .reset_timeout_ms = 100 });
    struct timespec ts = { 0, 150 * 1000000L };

    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(cb_breaker_execute(b, op_fail, NULL), CB_ERR_CONNECT);
    ck_assert_int_eq(cb_breaker_execute(b, op_fail, NULL), CB_ERR_CONNECT);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_int_eq(cb_breaker_execute(b, op_ok, NULL), CB_ERR_CIRCUIT_OPEN);
    while (nanosleep(&ts, &ts) != 0)
        ;
    op_calls = 0;
    ck_assert_int_eq(cb_breaker_execute(b, op_ok, NULL), CB_OK);
    ck_assert_int_eq(op_calls, 1);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    ck_assert_uint_gt(metrics(b).last_success_ms, 0);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_half_open_failure_reopens)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    b = cb_breaker_new(&c);
    fail_once(b);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(metrics(b).times_opened, 2);
    /* The reset timeout restarted at the failure (no backoff configured). */
    fake_now += 99;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    fake_now += 1;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_half_open_limits)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p[4];
    cb_metrics  m;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.half_open_max = 3;
    c.success_threshold = 2;
    b = cb_breaker_new(&c);
    fail_once(b);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_acquire(b, &p[0]), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(b, &p[1]), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(b, &p[2]), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(b, &p[3]), CB_ERR_CIRCUIT_OPEN);
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_record(b, &p[0], true);
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    /* Still no probe left: the limit is per period, not concurrent. */
    ck_assert_int_eq(cb_breaker_acquire(b, &p[3]), CB_ERR_CIRCUIT_OPEN);
    cb_breaker_record(b, &p[1], true);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    /* p[2] now belongs to the earlier HALF_OPEN period. */
    cb_breaker_record(b, &p[2], false);
    m = metrics(b);
    ck_assert_int_eq(m.state, CB_CLOSED);
    ck_assert_uint_eq(m.late_outcomes, 1);
    ck_assert_uint_eq(m.window_failures, 0);
    ck_assert_uint_eq(m.rejected, 2);
    ck_assert_uint_eq(m.successes, 2);
    ck_assert_uint_eq(m.failures, 2);
    ck_assert_uint_eq(m.total_requests, 6);
    cb_breaker_free(b);
}
END_TEST

/* Each HALF_OPEN period gets its own half_open_max probes. */
START_TEST(test_half_open_new_period)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.half_open_max = 1;
    b = cb_breaker_new(&c);
    fail_once(b);
    fake_now += 100;
    fail_once(b); /* the one probe fails: OPEN again */
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_record(b, &p, true);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_free(b);
}
END_TEST

/* Issue 9, #14: probes admitted and never recorded (a lost or hung call)
 * used to keep HALF_OPEN rejecting everything until a manual reset. */
/* An ignored outcome (a cancelled call) counts nothing, moves nothing, and
 * gives a HALF_OPEN probe slot back; from an earlier period it frees no
 * slot of the current one. */
START_TEST(test_release_ignored)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p, q, old;
    cb_metrics  m;
    int         i;

    c.failure_threshold = 2;
    c.reset_timeout_ms = 100;
    c.half_open_max = 1;
    b = cb_breaker_new(&c);
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
        cb_breaker_release(b, &p);
    }
    m = metrics(b);
    ck_assert_uint_eq(m.ignored, 5);
    ck_assert_uint_eq(m.successes + m.failures, 0);
    ck_assert_int_eq(m.state, CB_CLOSED);
    ck_assert_int_eq(cb_breaker_acquire(b, &old), CB_OK);
    fail_once(b);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(b, &q), CB_ERR_CIRCUIT_OPEN);
    cb_breaker_release(b, &old); /* CLOSED-period permit: no slot freed */
    ck_assert_int_eq(cb_breaker_acquire(b, &q), CB_ERR_CIRCUIT_OPEN);
    cb_breaker_release(b, &p); /* the probe's own slot comes back */
    ck_assert_int_eq(cb_breaker_acquire(b, &q), CB_OK);
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_record(b, &q, true);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_release(NULL, &q);
    cb_breaker_release(b, NULL);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_half_open_lost_probes_expire)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   lost[2], p;
    cb_metrics  m;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.half_open_max = 2;
    c.half_open_max_wait_ms = 500;
    b = cb_breaker_new(&c);
    fail_once(b);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_acquire(b, &lost[0]), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(b, &lost[1]), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    fake_now += 499;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(metrics(b).half_open_expired, 0);
    /* The wait is over: a new period with a fresh allowance. */
    fake_now += 1;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    m = metrics(b);
    ck_assert_int_eq(m.state, CB_HALF_OPEN);
    ck_assert_uint_eq(m.half_open_expired, 1);
    ck_assert_uint_eq(m.state_since_ms, fake_now);
    /* The lost probes turn up late: counted, but they move nothing. */
    cb_breaker_record(b, &lost[0], true);
    cb_breaker_record(b, &lost[1], false);
    m = metrics(b);
    ck_assert_int_eq(m.state, CB_HALF_OPEN);
    ck_assert_uint_eq(m.successes, 1);
    ck_assert_uint_eq(m.failures, 2);
    ck_assert_uint_eq(m.late_outcomes, 2);
    ck_assert_uint_eq(m.times_opened, 1);
    /* The new period still has its second probe, and its own outcome
     * decides. */
    succeed_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_record(b, &p, true);
    m = metrics(b);
    ck_assert_uint_eq(m.successes, 3);
    ck_assert_uint_eq(m.total_requests, m.successes + m.failures + m.rejected);
    cb_breaker_free(b);
}
END_TEST

/* Zero waits reset_timeout_ms, reported as such by cb_breaker_config; the
 * wait counts from the last probe's admission, so a probe admitted late in
 * a quiet period is not abandoned at once. */
START_TEST(test_half_open_wait_default)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p[3];

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.half_open_max = 2;
    c.success_threshold = 2;
    b = cb_breaker_new(&c);
    cb_breaker_config(b, &c);
    ck_assert_uint_eq(c.half_open_max_wait_ms, 100);
    fail_once(b);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_acquire(b, &p[0]), CB_OK);
    fake_now += 1000; /* no allowance used up yet: nothing expires */
    ck_assert_int_eq(cb_breaker_acquire(b, &p[1]), CB_OK);
    fake_now += 99;
    ck_assert_int_eq(cb_breaker_acquire(b, &p[2]), CB_ERR_CIRCUIT_OPEN);
    /* Overdue but not yet noticed: the old probes still count as probes. */
    fake_now += 1;
    cb_breaker_record(b, &p[0], true);
    cb_breaker_record(b, &p[1], true);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    ck_assert_uint_eq(metrics(b).half_open_expired, 0);
    ck_assert_uint_eq(metrics(b).late_outcomes, 0);
    cb_breaker_free(b);
}
END_TEST

/* A period abandoned once starts a fresh count of successes: a success of
 * the abandoned period is not carried over. */
START_TEST(test_half_open_expiry_repeats)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p[2];
    int         round;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.half_open_max = 2;
    c.success_threshold = 2;
    c.half_open_max_wait_ms = 50;
    b = cb_breaker_new(&c);
    fail_once(b);
    fake_now += 100;
    for (round = 0; round < 3; round++) {
        ck_assert_int_eq(cb_breaker_acquire(b, &p[0]), CB_OK);
        ck_assert_int_eq(cb_breaker_acquire(b, &p[1]), CB_OK);
        cb_breaker_record(b, &p[0], true); /* p[1] is lost */
        fake_now += 50;
    }
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    ck_assert_uint_eq(metrics(b).half_open_expired, 2);
    ck_assert_uint_eq(metrics(b).successes, 3);
    cb_breaker_free(b);
}
END_TEST

/* ---- rolling window --------------------------------------------------- */

START_TEST(test_window_expiry)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.failure_threshold = 3;
    c.failure_window_ms = 1000; /* 10 ms buckets: exact on multiples of 10 */
    b = cb_breaker_new(&c);
    fake_now = 10000;
    fail_once(b);
    fake_now = 10500;
    fail_once(b);
    ck_assert_uint_eq(metrics(b).window_failures, 2);
    fake_now = 10990;
    ck_assert_uint_eq(metrics(b).window_failures, 2);
    fake_now = 11000; /* the first failure is exactly one window old */
    ck_assert_uint_eq(metrics(b).window_failures, 1);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    ck_assert_uint_eq(metrics(b).window_failures, 2);
    fake_now = 11499;
    fail_once(b); /* 10500, 11000, 11499: three inside the window */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(metrics(b).failures, 4);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_window_long_gap)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.failure_threshold = 2;
    c.failure_window_ms = 60000;
    b = cb_breaker_new(&c);
    fail_once(b);
    fake_now += 10u * 60000u;
    ck_assert_uint_eq(metrics(b).window_failures, 0);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    fake_now += 59000;
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* Successes do not clear the window: only time does. */
START_TEST(test_window_successes_do_not_reset)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    int         i;

    c.failure_threshold = 3;
    b = cb_breaker_new(&c);
    fail_once(b);
    for (i = 0; i < 50; i++)
        succeed_once(b);
    fail_once(b);
    ck_assert_uint_eq(metrics(b).consecutive_successes, 0);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* Issue 9, #16: a failure at least failure_window_ms old never counts, for
 * any window length; the bucket granularity may only drop it earlier, and
 * by less than 2 * ceil(window / 100) ms (see breaker.h). Each failure is
 * placed on and around the bucket boundaries of both widths breaker.h
 * allows, where an overshoot would show. */
static void window_check_one(cb_breaker *b, unsigned len, uint64_t t0)
{
    uint64_t slack = 2 * (((uint64_t)len + 99) / 100);

    cb_breaker_reset(b);
    fake_now = t0;
    fail_once(b);
    ck_assert_uint_eq(metrics(b).window_failures, 1);
    if (len > slack) {
        fake_now = t0 + len - slack + 1;
        ck_assert_msg(metrics(b).window_failures == 1, "window %u: a failure %u ms old was dropped",
                      len, (unsigned)(fake_now - t0));
    }
    fake_now = t0 + len;
    ck_assert_msg(metrics(b).window_failures == 0, "window %u: a failure %u ms old still counts",
                  len, len);
    fake_now = t0 + len + 1;
    ck_assert_uint_eq(metrics(b).window_failures, 0);
}

static void window_check_len(unsigned len)
{
    cb_config   c = fake_cfg();
    uint64_t    w0 = len / 100 ? len / 100 : 1, w1 = ((uint64_t)len + 99) / 100;
    uint64_t    lcm = w0 * w1, phases[11], t; /* up to w1 + 1 <= 11 */
    cb_breaker *b;
    unsigned    i, n = 0;

    c.failure_threshold = UINT_MAX;
    c.failure_window_ms = len;
    b = cb_breaker_new(&c);
    ck_assert_ptr_nonnull(b);
    if (w1 <= 10) {
        for (i = 0; i <= w1; i++)
            phases[n++] = i;
    } else {
        uint64_t some[] = { 0, 1, w0 - 1, w0, w0 + 1, w1 - 1, w1, w1 + 1, 7919 % w1 };

        for (i = 0; i < sizeof(some) / sizeof(some[0]); i++)
            phases[n++] = some[i];
    }
    for (i = 0; i < n; i++) {
        /* The clock only moves forwards: the next multiple of both widths. */
        t = (fake_now / lcm + 2) * lcm;
        window_check_one(b, len, t + phases[i]);
    }
    cb_breaker_free(b);
}

START_TEST(test_window_never_overshoots)
{
    static const unsigned big[] = { 60001,   60000,   59999,       60099,        65536,   99999,
                                    1000001, 1234567, 2147483647u, UINT_MAX - 1, UINT_MAX };
    unsigned              len, i;

    for (len = 1; len <= 1000; len++)
        window_check_len(len);
    for (i = 0; i < sizeof(big) / sizeof(big[0]); i++)
        window_check_len(big[i]);
}
END_TEST

/* The two cases of the issue, spelled out. */
START_TEST(test_window_overshoot_cases)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.failure_threshold = 2;
    c.failure_window_ms = 202;
    b = cb_breaker_new(&c);
    fake_now = 3000; /* on a boundary of the old 3 ms buckets */
    fail_once(b);
    fake_now += 203;
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_free(b);

    c.failure_window_ms = 60001;
    b = cb_breaker_new(&c);
    fake_now = 601000; /* on a boundary of the old 601 ms buckets */
    fail_once(b);
    fake_now += 60099;
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_free(b);
}
END_TEST

/* ---- the earlier-period rule ----------------------------------------- */

START_TEST(test_late_outcome_while_open)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   slow_call;
    cb_metrics  m;

    c.failure_threshold = 2;
    c.reset_timeout_ms = 100;
    b = cb_breaker_new(&c);
    ck_assert_int_eq(cb_breaker_acquire(b, &slow_call), CB_OK);
    fail_once(b);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    /* A success from the CLOSED period does not close it... */
    cb_breaker_record(b, &slow_call, true);
    m = metrics(b);
    ck_assert_int_eq(m.state, CB_OPEN);
    ck_assert_uint_eq(m.successes, 1);
    ck_assert_uint_eq(m.late_outcomes, 1);
    ck_assert_uint_eq(m.total_requests, 3);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_late_failure_in_half_open)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   old;
    cb_metrics  m;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    b = cb_breaker_new(&c);
    ck_assert_int_eq(cb_breaker_acquire(b, &old), CB_OK);
    fail_once(b);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    /* ...and a failure from the CLOSED period does not reopen it. */
    cb_breaker_record(b, &old, false);
    m = metrics(b);
    ck_assert_int_eq(m.state, CB_HALF_OPEN);
    ck_assert_uint_eq(m.failures, 2);
    ck_assert_uint_eq(m.late_outcomes, 1);
    ck_assert_uint_eq(m.last_failure_ms, 1100);
    succeed_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_late_across_reset)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   old;
    cb_metrics  m;

    c.failure_threshold = 1;
    b = cb_breaker_new(&c);
    ck_assert_int_eq(cb_breaker_acquire(b, &old), CB_OK);
    cb_breaker_reset(b);
    /* Reset clears the counts, but the call in flight is still admitted. */
    ck_assert_uint_eq(metrics(b).total_requests, 1);
    ck_assert_uint_eq(metrics(b).failures, 0);
    cb_breaker_record(b, &old, false);
    m = metrics(b);
    ck_assert_int_eq(m.state, CB_CLOSED);
    ck_assert_uint_eq(m.failures, 1);
    ck_assert_uint_eq(m.late_outcomes, 1);
    ck_assert_uint_eq(m.window_failures, 0);
    /* The in-flight call stays counted as admitted across the reset. */
    ck_assert_uint_eq(m.total_requests, 1);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_late_across_trip)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   probe;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    b = cb_breaker_new(&c);
    fail_once(b);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_acquire(b, &probe), CB_OK);
    cb_breaker_trip(b);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    /* The probe of the previous HALF_OPEN period cannot close this one. */
    cb_breaker_record(b, &probe, true);
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    ck_assert_uint_eq(metrics(b).late_outcomes, 1);
    cb_breaker_free(b);
}
END_TEST

/* ---- rate and slow-call trips ---------------------------------------- */

START_TEST(test_rate_trip)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    int         i;

    c.failure_threshold = 1000;
    c.failure_rate_threshold = 50;
    c.minimum_calls = 10;
    b = cb_breaker_new(&c);
    /* 4 failures in 4 calls: 100 %, but below minimum_calls. */
    for (i = 0; i < 4; i++)
        fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    for (i = 0; i < 5; i++)
        succeed_once(b);
    ck_assert_uint_eq(metrics(b).window_calls, 9);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    /* The 10th call: 5 failures of 10 = 50 %. */
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_rate_below_threshold)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    int         i;

    c.failure_threshold = 1000;
    c.failure_rate_threshold = 50;
    c.minimum_calls = 10;
    b = cb_breaker_new(&c);
    for (i = 0; i < 100; i++) {
        if (i % 3 == 0)
            fail_once(b); /* 34 % */
        else
            succeed_once(b);
    }
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    ck_assert_uint_eq(metrics(b).window_calls, 100);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_slow_trip)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;
    cb_metrics  m;
    int         i;

    c.slow_call_ms = 100;
    c.slow_call_rate_threshold = 50;
    c.minimum_calls = 4;
    b = cb_breaker_new(&c);
    /* 100 ms exactly is not slower than slow_call_ms. */
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    fake_now += 100;
    cb_breaker_record(b, &p, true);
    ck_assert_uint_eq(metrics(b).slow_calls, 0);
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
        fake_now += 101;
        cb_breaker_record(b, &p, true);
    }
    m = metrics(b);
    ck_assert_uint_eq(m.slow_calls, 2);
    ck_assert_uint_eq(m.window_calls, 3);
    ck_assert_int_eq(m.state, CB_CLOSED); /* 3 calls < minimum_calls */
    succeed_once(b);                      /* 2 slow of 4 = 50 % */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(metrics(b).failures, 0);
    cb_breaker_free(b);
}
END_TEST

/* Below the slow-call rate nothing trips; the rate is slow calls over all
 * calls in the window, and reaching it trips. */
START_TEST(test_slow_rate_below_then_at)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;
    int         i;

    c.slow_call_ms = 100;
    c.slow_call_rate_threshold = 50;
    c.minimum_calls = 4;
    c.listener = recorder;
    nevents = 0;
    b = cb_breaker_new(&c);
    for (i = 0; i < 4; i++)
        succeed_once(b);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
        fake_now += 101;
        cb_breaker_record(b, &p, true);
    }
    /* 3 slow of 7: 42.9 %. */
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    ck_assert_uint_eq(metrics(b).slow_calls, 3);
    for (i = 0; i < (int)nevents; i++)
        ck_assert_int_ne(events[i].type, CB_EVENT_SLOW_CALL_RATE_EXCEEDED);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    fake_now += 101;
    cb_breaker_record(b, &p, true); /* 4 of 8: 50 % */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* A permit taken before slow_call_ms was configured carries no start time:
 * its outcome is never judged slow, however late it comes. */
START_TEST(test_untimed_permit_not_slow)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;
    cb_metrics  m;

    b = cb_breaker_new(&c);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    ck_assert_int_eq(cb_breaker_configure(b, &(cb_config){ .slow_call_ms = 10 }), CB_OK);
    fake_now += 1000;
    cb_breaker_record(b, &p, true);
    m = metrics(b);
    ck_assert_uint_eq(m.slow_calls, 0);
    ck_assert_uint_eq(m.successes, 1);
    ck_assert_uint_eq(m.window_calls, 1);
    /* A permit taken now is timed. */
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    fake_now += 11;
    cb_breaker_record(b, &p, true);
    ck_assert_uint_eq(metrics(b).slow_calls, 1);
    cb_breaker_free(b);
}
END_TEST

/* ---- backoff and jitter ----------------------------------------------- */

/* Fails the probe of each HALF_OPEN period and returns the OPEN duration. */
static unsigned reopen(cb_breaker *b)
{
    fake_now += metrics(b).current_open_ms;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    return metrics(b).current_open_ms;
}

START_TEST(test_backoff_growth_and_cap)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.max_reset_timeout_ms = 1000;
    b = cb_breaker_new(&c);
    fail_once(b);
    ck_assert_uint_eq(metrics(b).current_open_ms, 100);
    ck_assert_uint_eq(reopen(b), 200);
    ck_assert_uint_eq(reopen(b), 400);
    ck_assert_uint_eq(reopen(b), 800);
    ck_assert_uint_eq(reopen(b), 1000);
    ck_assert_uint_eq(reopen(b), 1000);
    /* The duration really is in force: 999 ms later it still rejects. */
    fake_now += 999;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    fake_now += 1;
    succeed_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    /* Closing resets the growth. */
    fail_once(b);
    ck_assert_uint_eq(metrics(b).current_open_ms, 100);
    ck_assert_uint_eq(reopen(b), 200);
    /* So does reset. */
    cb_breaker_reset(b);
    fail_once(b);
    ck_assert_uint_eq(metrics(b).current_open_ms, 100);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_backoff_multiplier)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.max_reset_timeout_ms = 5000;
    c.reset_backoff_multiplier = 3;
    b = cb_breaker_new(&c);
    fail_once(b);
    ck_assert_uint_eq(reopen(b), 300);
    ck_assert_uint_eq(reopen(b), 900);
    ck_assert_uint_eq(reopen(b), 2700);
    ck_assert_uint_eq(reopen(b), 5000);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_no_backoff_without_max)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    b = cb_breaker_new(&c);
    fail_once(b);
    ck_assert_uint_eq(reopen(b), 100);
    ck_assert_uint_eq(reopen(b), 100);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_jitter_bounds)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    unsigned    lo = ~0u, hi = 0, d;
    int         i;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 1000;
    c.reset_jitter_pct = 20;
    b = cb_breaker_new(&c);
    for (i = 0; i < 500; i++) {
        cb_breaker_trip(b);
        d = metrics(b).current_open_ms;
        ck_assert_uint_ge(d, 800);
        ck_assert_uint_le(d, 1200);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* It does vary, over most of the range. */
    ck_assert_uint_lt(lo, 900);
    ck_assert_uint_gt(hi, 1100);
    /* And the jittered duration is the one in force. */
    cb_breaker_trip(b);
    d = metrics(b).current_open_ms;
    fake_now += d - 1;
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    fake_now += 1;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* A multiplier of 1 with a cap: the OPEN duration does not grow. */
START_TEST(test_backoff_multiplier_one)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.max_reset_timeout_ms = 5000;
    c.reset_backoff_multiplier = 1;
    b = cb_breaker_new(&c);
    fail_once(b);
    ck_assert_uint_eq(metrics(b).current_open_ms, 100);
    ck_assert_uint_eq(reopen(b), 100);
    ck_assert_uint_eq(reopen(b), 100);
    cb_breaker_free(b);
}
END_TEST

/* Full jitter on 1 ms can draw 0: an OPEN period still lasts 1 ms, so a
 * trip never reads HALF_OPEN at the instant it happened. (Each trip draws
 * 0 with probability 1/3; 60 of them all missing it is below 1e-10.) */
START_TEST(test_jitter_floor)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    unsigned    d, ones = 0;
    int         i;

    c.reset_timeout_ms = 1;
    c.reset_jitter_pct = 100;
    b = cb_breaker_new(&c);
    for (i = 0; i < 60; i++) {
        cb_breaker_trip(b);
        d = metrics(b).current_open_ms;
        ck_assert_uint_ge(d, 1);
        ck_assert_uint_le(d, 2);
        ones += d == 1;
        ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    }
    /* 1 is drawn as itself and stands for 0: about two thirds of them. */
    ck_assert_uint_gt(ones, 20);
    cb_breaker_free(b);
}
END_TEST

/* Full jitter on UINT_MAX ms can draw up to twice that: the duration is
 * capped at UINT_MAX rather than wrapped to a short one. Half the draws
 * are above; 40 trips all below is 2^-40. */
START_TEST(test_jitter_ceiling)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    unsigned    capped = 0, d;
    int         i;

    c.reset_timeout_ms = UINT_MAX;
    c.reset_jitter_pct = 100;
    b = cb_breaker_new(&c);
    for (i = 0; i < 40; i++) {
        cb_breaker_trip(b);
        d = metrics(b).current_open_ms;
        capped += d == UINT_MAX;
    }
    ck_assert_uint_gt(capped, 0);
    /* A capped period is in force for UINT_MAX ms, not less. */
    while (metrics(b).current_open_ms != UINT_MAX)
        cb_breaker_trip(b);
    fake_now += (uint64_t)UINT_MAX - 1;
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    fake_now += 1;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* ---- classifier ------------------------------------------------------- */

static int classify_calls;

static bool only_connect_fails(cb_err err, void *ud)
{
    ck_assert_ptr_eq(ud, &classify_calls);
    classify_calls++;
    return err == CB_ERR_CONNECT;
}

START_TEST(test_classifier)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;
    cb_metrics  m;

    c.failure_threshold = 2;
    c.classify = only_connect_fails;
    c.classify_data = &classify_calls;
    b = cb_breaker_new(&c);
    classify_calls = 0;
    ck_assert_int_eq(cb_breaker_execute(b, op_http, NULL), CB_ERR_HTTP);
    ck_assert_int_eq(cb_breaker_execute(b, op_http, NULL), CB_ERR_HTTP);
    ck_assert_int_eq(cb_breaker_execute(b, op_http, NULL), CB_ERR_HTTP);
    m = metrics(b);
    ck_assert_uint_eq(m.successes, 3);
    ck_assert_uint_eq(m.failures, 0);
    ck_assert_int_eq(classify_calls, 3);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record_err(b, &p, CB_ERR_TIMEOUT);
    ck_assert_uint_eq(metrics(b).failures, 0);
    ck_assert_int_eq(cb_breaker_execute(b, op_fail, NULL), CB_ERR_CONNECT);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record_err(b, &p, CB_ERR_CONNECT);
    ck_assert_uint_eq(metrics(b).failures, 2);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_int_eq(classify_calls, 6);
    /* A plain bool record bypasses the classifier. */
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_default_classifier)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    b = cb_breaker_new(&c);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record_err(b, &p, CB_ERR_HTTP);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record_err(b, &p, CB_OK);
    ck_assert_uint_eq(metrics(b).failures, 1);
    ck_assert_uint_eq(metrics(b).successes, 1);
    cb_breaker_free(b);
}
END_TEST

/* ---- events ----------------------------------------------------------- */

START_TEST(test_events_in_order)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    c.failure_threshold = 2;
    c.reset_timeout_ms = 100;
    c.listener = recorder;
    nevents = 0;
    b = cb_breaker_new(&c);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    fake_now += 7;
    cb_breaker_record(b, &p, true);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    fake_now += 3;
    cb_breaker_record_err(b, &p, CB_ERR_TIMEOUT);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record(b, &p, false); /* second failure: opens */
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK); /* turns HALF_OPEN */
    cb_breaker_record(b, &p, true);                     /* closes */

    ck_assert_uint_eq(nevents, 8);
    ck_assert_int_eq(events[0].type, CB_EVENT_SUCCESS);
    ck_assert_uint_eq(events[0].duration_ms, 7);
    ck_assert_int_eq(events[0].state, CB_CLOSED);
    ck_assert_uint_eq(events[0].at_ms, 1007);
    ck_assert(!events[0].slow);
    ck_assert_int_eq(events[1].type, CB_EVENT_FAILURE);
    ck_assert_int_eq(events[1].error, CB_ERR_TIMEOUT);
    ck_assert_uint_eq(events[1].duration_ms, 3);
    ck_assert_int_eq(events[2].type, CB_EVENT_FAILURE);
    ck_assert_int_eq(events[2].error, CB_ERR_TRANSPORT);
    ck_assert_int_eq(events[2].state, CB_CLOSED);
    ck_assert_int_eq(events[3].type, CB_EVENT_STATE_CHANGE);
    ck_assert_int_eq(events[3].from, CB_CLOSED);
    ck_assert_int_eq(events[3].to, CB_OPEN);
    ck_assert_uint_eq(events[3].at_ms, 1010);
    ck_assert_int_eq(events[4].type, CB_EVENT_REJECTED);
    ck_assert_int_eq(events[4].state, CB_OPEN);
    ck_assert_int_eq(events[5].type, CB_EVENT_STATE_CHANGE);
    ck_assert_int_eq(events[5].from, CB_OPEN);
    ck_assert_int_eq(events[5].to, CB_HALF_OPEN);
    ck_assert_uint_eq(events[5].at_ms, 1110);
    ck_assert_int_eq(events[6].type, CB_EVENT_SUCCESS);
    ck_assert_int_eq(events[6].state, CB_HALF_OPEN);
    ck_assert_int_eq(events[7].type, CB_EVENT_STATE_CHANGE);
    ck_assert_int_eq(events[7].from, CB_HALF_OPEN);
    ck_assert_int_eq(events[7].to, CB_CLOSED);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_events_slow_flag)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    c.slow_call_ms = 50;
    c.listener = recorder;
    nevents = 0;
    b = cb_breaker_new(&c);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    fake_now += 51;
    cb_breaker_record(b, &p, false);
    ck_assert_uint_eq(nevents, 1);
    ck_assert_int_eq(events[0].type, CB_EVENT_FAILURE);
    ck_assert(events[0].slow);
    ck_assert_uint_eq(events[0].duration_ms, 51);
    cb_breaker_free(b);
}
END_TEST

/* The listener calls back into the same breaker: it must not deadlock and
 * must see the change already in effect. */
static cb_state   seen_state[MAX_EVENTS];
static cb_metrics seen_metrics[MAX_EVENTS];

static void reentrant(cb_breaker *b, const cb_event *ev, void *ud)
{
    cb_config c;

    (void)ud;
    if (nevents >= MAX_EVENTS)
        return;
    seen_state[nevents] = cb_breaker_state(b);
    cb_breaker_metrics(b, &seen_metrics[nevents]);
    cb_breaker_config(b, &c);
    events[nevents++] = *ev;
}

START_TEST(test_listener_reentrant)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.listener = reentrant;
    nevents = 0;
    b = cb_breaker_new(&c);
    fail_once(b);
    ck_assert_uint_eq(nevents, 2);
    ck_assert_int_eq(events[1].type, CB_EVENT_STATE_CHANGE);
    ck_assert_int_eq(seen_state[1], CB_OPEN);
    ck_assert_int_eq(seen_metrics[1].state, CB_OPEN);
    ck_assert_uint_eq(seen_metrics[1].times_opened, 1);
    ck_assert_uint_eq(seen_metrics[0].failures, 1);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(nevents, 3);
    ck_assert_uint_eq(seen_metrics[2].rejected, 1);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    ck_assert_uint_eq(nevents, 4);
    ck_assert_int_eq(seen_state[3], CB_HALF_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* A listener may even reset or trip the breaker it listens to. */
static void resets_on_open(cb_breaker *b, const cb_event *ev, void *ud)
{
    (void)ud;
    if (ev->type == CB_EVENT_STATE_CHANGE && ev->to == CB_OPEN)
        cb_breaker_reset(b);
    recorder(b, ev, NULL);
}

START_TEST(test_listener_resets)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.failure_threshold = 1;
    c.listener = resets_on_open;
    nevents = 0;
    b = cb_breaker_new(&c);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    /* FAILURE, OPEN -> CLOSED and RESET (from the reset, delivered inside),
     * CLOSED -> OPEN */
    ck_assert_uint_eq(nevents, 4);
    ck_assert_int_eq(events[1].type, CB_EVENT_STATE_CHANGE);
    ck_assert_int_eq(events[1].from, CB_OPEN);
    ck_assert_int_eq(events[1].to, CB_CLOSED);
    ck_assert_int_eq(events[2].type, CB_EVENT_RESET);
    ck_assert_int_eq(events[3].to, CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* ---- manual controls -------------------------------------------------- */

START_TEST(test_trip_and_reset)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;
    cb_metrics  m;

    c.reset_timeout_ms = 100;
    c.listener = recorder;
    nevents = 0;
    b = cb_breaker_new(&c);
    succeed_once(b);
    fail_once(b);
    cb_breaker_trip(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(metrics(b).times_opened, 1);
    /* Tripping an OPEN breaker restarts its timeout, without an event. */
    fake_now += 60;
    cb_breaker_trip(b);
    fake_now += 60;
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(metrics(b).times_opened, 1);
    fake_now += 40;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_trip(b); /* from HALF_OPEN too */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(metrics(b).times_opened, 2);

    cb_breaker_reset(b);
    m = metrics(b);
    ck_assert_int_eq(m.state, CB_CLOSED);
    ck_assert_uint_eq(m.total_requests, 0);
    ck_assert_uint_eq(m.successes, 0);
    ck_assert_uint_eq(m.failures, 0);
    ck_assert_uint_eq(m.rejected, 0);
    ck_assert_uint_eq(m.window_failures, 0);
    ck_assert_uint_eq(m.consecutive_successes, 0);
    ck_assert_uint_eq(m.last_failure_ms, 0);
    ck_assert_uint_eq(m.last_success_ms, 0);
    ck_assert_uint_eq(m.times_opened, 0);
    ck_assert_uint_eq(m.state_since_ms, fake_now);
    succeed_once(b);
    ck_assert_uint_eq(metrics(b).total_requests, 1);
    ck_assert_uint_eq(metrics(b).successes, 1);

    /* CLOSED->OPEN, REJECTED, OPEN->HALF_OPEN, HALF_OPEN->OPEN, OPEN->CLOSED,
     * RESET, plus the SUCCESS/FAILURE events of the calls. */
    ck_assert_uint_eq(nevents, 9);
    ck_assert_int_eq(events[2].type, CB_EVENT_STATE_CHANGE);
    ck_assert_int_eq(events[2].to, CB_OPEN);
    ck_assert_int_eq(events[3].type, CB_EVENT_REJECTED);
    ck_assert_int_eq(events[4].to, CB_HALF_OPEN);
    ck_assert_int_eq(events[5].from, CB_HALF_OPEN);
    ck_assert_int_eq(events[5].to, CB_OPEN);
    ck_assert_int_eq(events[6].from, CB_OPEN);
    ck_assert_int_eq(events[6].to, CB_CLOSED);
    ck_assert_int_eq(events[7].type, CB_EVENT_RESET);
    ck_assert_int_eq(events[7].from, CB_OPEN);
    ck_assert_int_eq(events[8].type, CB_EVENT_SUCCESS);
    cb_breaker_free(b);
}
END_TEST

/* ---- config ----------------------------------------------------------- */

START_TEST(test_config_rejected)
{
    ck_assert_ptr_null(cb_breaker_new(&(cb_config){ .success_threshold = 4 }));
    ck_assert_ptr_null(cb_breaker_new(&(cb_config){ .half_open_max = 2, .success_threshold = 3 }));
    ck_assert_ptr_null(cb_breaker_new(&(cb_config){ .failure_rate_threshold = 101 }));
    ck_assert_ptr_null(cb_breaker_new(&(cb_config){ .slow_call_rate_threshold = 101 }));
    ck_assert_ptr_null(cb_breaker_new(&(cb_config){ .reset_jitter_pct = 101 }));
    ck_assert_ptr_null(cb_breaker_new(&(cb_config){ .max_reset_timeout_ms = 1000 }));
    ck_assert_ptr_null(
        cb_breaker_new(&(cb_config){ .reset_timeout_ms = 2000, .max_reset_timeout_ms = 1000 }));
    ck_assert_ptr_null(cb_breaker_new(&(cb_config){ .mode = (cb_mode)3 }));
    ck_assert_ptr_null(cb_breaker_new(&(cb_config){ .mode = (cb_mode)-1 }));
}
END_TEST

START_TEST(test_config_edges_accepted)
{
    static const cb_config ok[] = {
        { .half_open_max = 3, .success_threshold = 3 },
        { .failure_rate_threshold = 100,
          .slow_call_rate_threshold = 100,
          .slow_call_ms = 1,
          .reset_jitter_pct = 100 },
        { .reset_timeout_ms = 1000, .max_reset_timeout_ms = 1000 },
        { .mode = CB_MODE_DISABLED },
        { .mode = CB_MODE_METRICS_ONLY },
        { .failure_window_ms = 1 },
        { .failure_window_ms = 0xffffffffu, .failure_threshold = 0xffffffffu },
    };
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        cb_breaker *b = cb_breaker_new(&ok[i]);

        ck_assert_msg(b != NULL, "config %zu refused", i);
        succeed_once(b);
        fail_once(b);
        cb_breaker_free(b);
    }
}
END_TEST

START_TEST(test_configure)
{
    cb_config   c = fake_cfg(), got;
    cb_breaker *b;

    c.failure_threshold = 5;
    c.listener = recorder;
    nevents = 0;
    b = cb_breaker_new(&c);
    fail_once(b);
    fail_once(b);
    /* Bad configs change nothing. */
    ck_assert_int_eq(cb_breaker_configure(b, &(cb_config){ .success_threshold = 9 }),
                     CB_ERR_INVALID);
    ck_assert_int_eq(cb_breaker_configure(b, &(cb_config){ .reset_jitter_pct = 200 }),
                     CB_ERR_INVALID);
    ck_assert_int_eq(cb_breaker_configure(b, NULL), CB_ERR_INVALID);
    ck_assert_int_eq(cb_breaker_configure(NULL, &c), CB_ERR_INVALID);
    cb_breaker_config(b, &got);
    ck_assert_uint_eq(got.failure_threshold, 5);
    /* A lower threshold keeps the counts: the next failure opens it. */
    ck_assert_int_eq(
        cb_breaker_configure(b, &(cb_config){ .failure_threshold = 3, .reset_timeout_ms = 500 }),
        CB_OK);
    cb_breaker_config(b, &got);
    ck_assert_uint_eq(got.failure_threshold, 3);
    ck_assert_uint_eq(got.reset_timeout_ms, 500);
    ck_assert(got.clock == fake_clock); /* callbacks kept */
    ck_assert(got.listener == recorder);
    ck_assert_uint_eq(metrics(b).failures, 2);
    ck_assert_uint_eq(metrics(b).window_failures, 2);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(metrics(b).current_open_ms, 500);
    /* The listener given to new still gets the events. */
    ck_assert_uint_eq(nevents, 4);
    cb_breaker_free(b);
}
END_TEST

/* Another valid value of each kind of CB_CONFIG_NUMBERS. */
static unsigned bump_UINT(unsigned v) { return v + 1; }
static unsigned bump_PCT(unsigned v) { return v ? v - 1 : 1; }
static cb_mode  bump_MODE(cb_mode m) { return (cb_mode)(((unsigned)m + 1) % 3); }
static bool     bump_BOOL(bool v) { return !v; }

/* Configures b from base with only field f changed, then back: each time
 * the change must be applied, never taken for "the same numbers". */
#define CONFIGURE_ONE_(f, kind, dflt)                                                              \
    do {                                                                                           \
        cb_config c = *base, got;                                                                  \
                                                                                                   \
        c.f = bump_##kind(c.f);                                                                    \
        ck_assert_msg(cb_breaker_configure(b, &c) == CB_OK, #f " refused");                        \
        cb_breaker_config(b, &got);                                                                \
        ck_assert_msg(got.f == c.f, #f " not applied");                                            \
        ck_assert_msg(cb_breaker_configure(b, base) == CB_OK, #f " back refused");                 \
        cb_breaker_config(b, &got);                                                                \
        ck_assert_msg(got.f == base->f, #f " not put back");                                       \
        n++;                                                                                       \
    } while (0);

static unsigned configure_each(cb_breaker *b, const cb_config *base)
{
    unsigned n = 0;

    CB_CONFIG_NUMBERS(CONFIGURE_ONE_)
    return n;
}

START_TEST(test_configure_each_number)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    /* Every option on, so that each has a neighbour value that is valid;
     * a count window. */
    c.failure_rate_threshold = 50;
    c.slow_call_ms = 100;
    c.max_reset_timeout_ms = 60000;
    c.reset_jitter_pct = 10;
    c.half_open_max_wait_ms = 500;
    c.consecutive_failures = 4;
    c.window_calls = 20;
    c.reset_backoff_permille = 1500;
    b = cb_breaker_new(&c);
    cb_breaker_config(b, &c);
    ck_assert_uint_eq(configure_each(b, &c), 18);
    cb_breaker_free(b);
}
END_TEST

/* A time window that counts only failures: a new window width, or a rate
 * that needs the calls too, starts the window afresh; other changes keep
 * its counts. */
START_TEST(test_configure_window_changes)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.failure_threshold = 3;
    b = cb_breaker_new(&c);
    fail_once(b);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_configure(b, &(cb_config){ .failure_threshold = 4 }), CB_OK);
    ck_assert_uint_eq(metrics(b).window_failures, 2);
    ck_assert_int_eq(
        cb_breaker_configure(b, &(cb_config){ .failure_threshold = 4, .failure_window_ms = 1000 }),
        CB_OK);
    ck_assert_uint_eq(metrics(b).window_failures, 0);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_configure(b, &(cb_config){ .failure_threshold = 4,
                                                           .failure_window_ms = 1000,
                                                           .failure_rate_threshold = 90 }),
                     CB_OK);
    ck_assert_uint_eq(metrics(b).window_failures, 0);
    ck_assert_uint_eq(metrics(b).failures, 3);
    cb_breaker_free(b);
}
END_TEST

/* ---- modes ------------------------------------------------------------ */

START_TEST(test_metrics_only)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p[3];
    cb_metrics  m;
    int         i;

    c.failure_threshold = 2;
    c.reset_timeout_ms = 100;
    c.half_open_max = 1;
    c.mode = CB_MODE_METRICS_ONLY;
    c.listener = recorder;
    nevents = 0;
    b = cb_breaker_new(&c);
    fail_once(b);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    /* OPEN, but nothing is rejected; these calls cannot move it. */
    for (i = 0; i < 3; i++)
        succeed_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_acquire(b, &p[0]), CB_OK); /* the probe */
    ck_assert_int_eq(cb_breaker_acquire(b, &p[1]), CB_OK); /* beyond the limit */
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_record(b, &p[1], false); /* not a probe: stays HALF_OPEN */
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_record(b, &p[0], true);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    m = metrics(b);
    ck_assert_uint_eq(m.rejected, 0);
    ck_assert_uint_eq(m.total_requests, 7);
    ck_assert_uint_eq(m.successes, 4);
    ck_assert_uint_eq(m.failures, 3);
    ck_assert_uint_eq(m.times_opened, 1);
    ck_assert_uint_eq(m.late_outcomes, 0);
    /* Events: 2 FAILURE + OPEN, 3 SUCCESS, HALF_OPEN, FAILURE, SUCCESS,
     * CLOSED; never REJECTED. */
    ck_assert_uint_eq(nevents, 10);
    for (i = 0; i < (int)nevents; i++)
        ck_assert_int_ne(events[i].type, CB_EVENT_REJECTED);
    ck_assert_int_eq(events[2].to, CB_OPEN);
    ck_assert_int_eq(events[6].to, CB_HALF_OPEN);
    ck_assert_int_eq(events[9].to, CB_CLOSED);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_disabled)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_metrics  m;
    int         i;

    c.failure_threshold = 1;
    c.mode = CB_MODE_DISABLED;
    c.listener = recorder;
    nevents = 0;
    b = cb_breaker_new(&c);
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(cb_breaker_execute(b, op_fail, NULL), CB_ERR_CONNECT);
        ck_assert_int_eq(cb_breaker_execute(b, op_ok, NULL), CB_OK);
    }
    m = metrics(b);
    ck_assert_int_eq(m.state, CB_CLOSED);
    ck_assert_uint_eq(m.total_requests, 20);
    ck_assert_uint_eq(m.failures, 10);
    ck_assert_uint_eq(m.successes, 10);
    ck_assert_uint_eq(m.window_failures, 0);
    ck_assert_uint_eq(m.times_opened, 0);
    ck_assert_uint_eq(nevents, 0);
    /* Switched to NORMAL it behaves again, with its counts kept. */
    ck_assert_int_eq(cb_breaker_configure(b, &(cb_config){ .failure_threshold = 1 }), CB_OK);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(metrics(b).failures, 11);
    ck_assert_uint_eq(nevents, 2);
    /* Disabled again while OPEN: everything is admitted, state frozen. */
    ck_assert_int_eq(cb_breaker_configure(b, &(cb_config){ .mode = CB_MODE_DISABLED }), CB_OK);
    fake_now += 1000000;
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(cb_breaker_execute(b, op_ok, NULL), CB_OK);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(nevents, 2);
    cb_breaker_free(b);
}
END_TEST

/* A permit DISABLED mode admitted while OPEN, recorded once NORMAL again:
 * an outcome of the current period, but an OPEN breaker has no window to
 * count it in; it stays OPEN. */
START_TEST(test_disabled_permit_recorded_while_open)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;
    cb_metrics  m;

    c.failure_threshold = 1;
    b = cb_breaker_new(&c);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_int_eq(
        cb_breaker_configure(b, &(cb_config){ .failure_threshold = 1, .mode = CB_MODE_DISABLED }),
        CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    ck_assert_int_eq(cb_breaker_configure(b, &(cb_config){ .failure_threshold = 1 }), CB_OK);
    cb_breaker_record(b, &p, false);
    m = metrics(b);
    ck_assert_int_eq(m.state, CB_OPEN);
    ck_assert_uint_eq(m.failures, 2);
    ck_assert_uint_eq(m.window_failures, 0); /* emptied when it opened, and left so */
    ck_assert_uint_eq(m.late_outcomes, 0);
    ck_assert_uint_eq(m.times_opened, 1);
    cb_breaker_free(b);
}
END_TEST

/* A permit DISABLED mode admitted in HALF_OPEN held no probe slot: given
 * back once NORMAL again it frees none, so the period's one probe is still
 * there, and only one. */
START_TEST(test_disabled_permit_released_in_half_open)
{
    const cb_config normal = { .failure_threshold = 1,
                               .reset_timeout_ms = 100,
                               .half_open_max = 1 };
    cb_config       c = fake_cfg(), off = normal;
    cb_breaker     *b;
    cb_permit       p, probe;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.half_open_max = 1;
    off.mode = CB_MODE_DISABLED;
    b = cb_breaker_new(&c);
    fail_once(b);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    ck_assert_int_eq(cb_breaker_configure(b, &off), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    ck_assert_int_eq(cb_breaker_configure(b, &normal), CB_OK);
    cb_breaker_record_err(b, &p, CB_ERR_CANCELLED);
    ck_assert_uint_eq(metrics(b).ignored, 1);
    ck_assert_int_eq(cb_breaker_acquire(b, &probe), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    cb_breaker_record(b, &probe, true);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_free(b);
}
END_TEST

/* A HALF_OPEN period whose probes are lost is abandoned for a fresh one,
 * but not while the breaker is DISABLED: then nothing is a probe. */
START_TEST(test_disabled_keeps_half_open_period)
{
    const cb_config normal = { .failure_threshold = 1,
                               .reset_timeout_ms = 100,
                               .half_open_max = 1,
                               .half_open_max_wait_ms = 50 };
    cb_config       c = normal, off = normal;
    cb_breaker     *b;
    cb_permit       lost, p;

    c.clock = fake_clock;
    off.mode = CB_MODE_DISABLED;
    b = cb_breaker_new(&c);
    fail_once(b);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_acquire(b, &lost), CB_OK);
    fake_now += 50;
    ck_assert_int_eq(cb_breaker_configure(b, &off), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    ck_assert_uint_eq(metrics(b).half_open_expired, 0);
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    /* NORMAL again, the lost probe's period is abandoned at once. */
    ck_assert_int_eq(cb_breaker_configure(b, &normal), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    ck_assert_uint_eq(metrics(b).half_open_expired, 1);
    cb_breaker_free(b);
}
END_TEST

/* A permit no acquire filled in (zeroed) belongs to no period: counted as
 * a late outcome, and as a call, never as more outcomes than calls. */
START_TEST(test_zeroed_permit)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;
    cb_metrics  m;

    c.failure_threshold = 1;
    b = cb_breaker_new(&c);
    memset(&p, 0, sizeof(p));
    cb_breaker_record(b, &p, false);
    m = metrics(b);
    ck_assert_int_eq(m.state, CB_CLOSED);
    ck_assert_uint_eq(m.failures, 1);
    ck_assert_uint_eq(m.late_outcomes, 1);
    ck_assert_uint_eq(m.window_failures, 0);
    ck_assert_uint_eq(m.total_requests, 1);
    cb_breaker_free(b);
}
END_TEST

/* ---- NULL safety ------------------------------------------------------ */

START_TEST(test_null_safety)
{
    cb_breaker *b = cb_breaker_new(NULL);
    cb_permit   p;
    cb_metrics  m;
    cb_config   c;

    memset(&m, 0xff, sizeof(m));
    memset(&c, 0xff, sizeof(c));
    cb_breaker_free(NULL);
    ck_assert_int_eq(cb_breaker_acquire(NULL, &p), CB_ERR_INVALID);
    ck_assert_int_eq(cb_breaker_acquire(b, NULL), CB_ERR_INVALID);
    cb_breaker_record(NULL, &p, true);
    cb_breaker_record(b, NULL, false);
    cb_breaker_record_err(NULL, &p, CB_OK);
    cb_breaker_record_err(b, NULL, CB_ERR_CONNECT);
    ck_assert_int_eq(cb_breaker_execute(NULL, op_ok, NULL), CB_ERR_INVALID);
    ck_assert_int_eq(cb_breaker_execute(b, NULL, NULL), CB_ERR_INVALID);
    ck_assert_int_eq(cb_breaker_state(NULL), CB_CLOSED);
    cb_breaker_metrics(NULL, &m);
    ck_assert_uint_eq(m.total_requests, 0);
    ck_assert_int_eq(m.state, CB_CLOSED);
    cb_breaker_metrics(b, NULL);
    cb_breaker_reset(NULL);
    cb_breaker_trip(NULL);
    ck_assert_int_eq(cb_breaker_configure(NULL, NULL), CB_ERR_INVALID);
    cb_breaker_config(NULL, &c);
    ck_assert_uint_eq(c.failure_threshold, 0);
    cb_breaker_config(b, NULL);
    /* None of it counted anything. */
    m = metrics(b);
    ck_assert_uint_eq(m.total_requests, 0);
    ck_assert_uint_eq(m.failures, 0);
    cb_breaker_free(b);
}
END_TEST

/* ---- a clock near its end -------------------------------------------- */

/* Issue 9, #15: now + reset_timeout_ms wrapped past UINT64_MAX, so the
 * breaker went HALF_OPEN at once. */
START_TEST(test_open_deadline_saturates)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    b = cb_breaker_new(&c);
    fake_now = UINT64_MAX - 50;
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    fake_now = UINT64_MAX - 1;
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    /* A manual trip takes the same path. */
    cb_breaker_reset(b);
    cb_breaker_trip(b);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* The same for the HALF_OPEN wait for lost probes, and for an OPEN
 * duration grown by backoff and jitter: no deadline wraps. */
START_TEST(test_deadlines_saturate)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.half_open_max = 1;
    c.half_open_max_wait_ms = UINT_MAX;
    b = cb_breaker_new(&c);
    fake_now = UINT64_MAX - 1000;
    fail_once(b);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK); /* a probe, then lost */
    fake_now = UINT64_MAX - 1;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(metrics(b).half_open_expired, 0);
    cb_breaker_free(b);

    c = fake_cfg();
    c.failure_threshold = 1;
    c.reset_timeout_ms = 1000;
    c.max_reset_timeout_ms = UINT_MAX;
    c.reset_jitter_pct = 50;
    b = cb_breaker_new(&c);
    fake_now = 1000;
    fail_once(b);
    fake_now = UINT64_MAX - 100;
    fail_once(b); /* the probe fails: OPEN for 2000 ms +/- 50 % */
    ck_assert_uint_ge(metrics(b).current_open_ms, 1000);
    fake_now = UINT64_MAX - 1;
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* The window's bucket loop used to run forever once the clock reached
 * UINT64_MAX with 1 ms buckets. */
START_TEST(test_window_clock_end)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.failure_threshold = 3;
    c.failure_window_ms = 100;
    b = cb_breaker_new(&c);
    fake_now = UINT64_MAX - 150;
    fail_once(b);
    fake_now = UINT64_MAX - 50;
    fail_once(b);
    fake_now = UINT64_MAX;
    ck_assert_uint_eq(metrics(b).window_failures, 1);
    fail_once(b);
    ck_assert_uint_eq(metrics(b).window_failures, 2);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_free(b);
}
END_TEST

/* ---- threads ---------------------------------------------------------- */

static _Atomic uint64_t stress_now;
static _Atomic int      stress_stop;

static uint64_t stress_clock(void *ud)
{
    (void)ud;
    return atomic_load(&stress_now);
}

typedef struct stress_arg {
    cb_breaker *b;
    unsigned    seed;
    uint64_t    admitted, rejected, successes, failures;
} stress_arg;

#define STRESS_CALLS 200000

static void *stress_worker(void *arg)
{
    stress_arg *a = arg;
    uint64_t    x = a->seed * 2654435761u + 1;
    cb_permit   p;
    int         i;

    for (i = 0; i < STRESS_CALLS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (cb_breaker_acquire(a->b, &p) != CB_OK) {
            a->rejected++;
            continue;
        }
        a->admitted++;
        if (x % 16 == 0) {
            a->failures++;
            cb_breaker_record_err(a->b, &p, CB_ERR_TIMEOUT);
        } else {
            a->successes++;
            cb_breaker_record(a->b, &p, true);
        }
        if (i % 4096 == 0)
            atomic_fetch_add(&stress_now, 1);
    }
    return NULL;
}

typedef struct chaos_arg {
    cb_breaker *b;
    bool        do_reset;
} chaos_arg;

/* Trips (and resets) the breaker while the workers run, checking on the
 * way that a snapshot never shows fewer requests than outcomes. */
static void *stress_chaos(void *arg)
{
    cb_breaker *b = ((chaos_arg *)arg)->b;
    bool        do_reset = ((chaos_arg *)arg)->do_reset;
    unsigned    i = 0;
    cb_metrics  m;

    while (!atomic_load(&stress_stop)) {
        if (i % 3 == 0)
            cb_breaker_trip(b);
        else if (do_reset && i % 3 == 1)
            cb_breaker_reset(b);
        cb_breaker_metrics(b, &m);
        ck_assert_uint_ge(m.total_requests, m.successes + m.failures + m.rejected);
        atomic_fetch_add(&stress_now, 3);
        i++;
        sched_yield();
    }
    return NULL;
}

static void stress(bool with_reset)
{
    cb_config   c;
    cb_breaker *b;
    stress_arg  a[4];
    pthread_t   t[4], chaos;
    chaos_arg   ca;
    uint64_t    adm = 0, rej = 0, succ = 0, fail = 0;
    cb_metrics  m;
    int         i;

    memset(&c, 0, sizeof(c));
    c.clock = stress_clock;
    c.failure_threshold = 20;
    c.failure_window_ms = 100;
    c.reset_timeout_ms = 10;
    c.half_open_max = 5;
    c.success_threshold = 3;
    atomic_store(&stress_now, 1000);
    atomic_store(&stress_stop, 0);
    b = cb_breaker_new(&c);
    ck_assert_ptr_nonnull(b);
    ca.b = b;
    ca.do_reset = with_reset;
    ck_assert_int_eq(pthread_create(&chaos, NULL, stress_chaos, &ca), 0);
    for (i = 0; i < 4; i++) {
        memset(&a[i], 0, sizeof(a[i]));
        a[i].b = b;
        a[i].seed = (unsigned)i + 1;
        ck_assert_int_eq(pthread_create(&t[i], NULL, stress_worker, &a[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        adm += a[i].admitted;
        rej += a[i].rejected;
        succ += a[i].successes;
        fail += a[i].failures;
    }
    atomic_store(&stress_stop, 1);
    pthread_join(chaos, NULL);

    m = metrics(b);
    /* Every count adds up, whatever raced with what. */
    ck_assert_uint_eq(m.total_requests, m.successes + m.failures + m.rejected);
    if (!with_reset) {
        ck_assert_uint_eq(m.total_requests, adm + rej);
        ck_assert_uint_eq(m.rejected, rej);
        ck_assert_uint_eq(m.successes, succ);
        ck_assert_uint_eq(m.failures, fail);
        ck_assert_uint_eq(adm + rej, 4u * STRESS_CALLS);
        ck_assert_uint_gt(m.times_opened, 0);
    }
    ck_assert_uint_le(m.late_outcomes, m.successes + m.failures);
    cb_breaker_reset(b);
    m = metrics(b);
    ck_assert_uint_eq(m.total_requests, 0);
    ck_assert_uint_eq(m.successes, 0);
    cb_breaker_free(b);
}

START_TEST(test_stress_trips) { stress(false); }
END_TEST

START_TEST(test_stress_resets) { stress(true); }
END_TEST

static _Atomic unsigned mt_events;

static void counting_listener(cb_breaker *b, const cb_event *ev, void *ud)
{
    cb_metrics m;

    (void)ev;
    (void)ud;
    cb_breaker_metrics(b, &m);
    (void)cb_breaker_state(b);
    atomic_fetch_add(&mt_events, 1);
}

START_TEST(test_stress_listener)
{
    cb_config   c;
    cb_breaker *b;
    stress_arg  a[4];
    pthread_t   t[4], chaos;
    chaos_arg   ca;
    int         i;

    memset(&c, 0, sizeof(c));
    c.clock = stress_clock;
    c.failure_threshold = 20;
    c.failure_window_ms = 100;
    c.reset_timeout_ms = 10;
    c.listener = counting_listener;
    atomic_store(&stress_now, 1000);
    atomic_store(&stress_stop, 0);
    atomic_store(&mt_events, 0);
    b = cb_breaker_new(&c);
    ck_assert_ptr_nonnull(b);
    ca.b = b;
    ca.do_reset = false;
    ck_assert_int_eq(pthread_create(&chaos, NULL, stress_chaos, &ca), 0);
    for (i = 0; i < 4; i++) {
        memset(&a[i], 0, sizeof(a[i]));
        a[i].b = b;
        a[i].seed = (unsigned)i + 11;
        ck_assert_int_eq(pthread_create(&t[i], NULL, stress_worker, &a[i]), 0);
    }
    for (i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    atomic_store(&stress_stop, 1);
    pthread_join(chaos, NULL);
    /* Every call produced SUCCESS, FAILURE or REJECTED, plus the changes. */
    ck_assert_uint_ge(atomic_load(&mt_events), 4u * STRESS_CALLS);
    ck_assert_uint_eq(metrics(b).total_requests, 4u * STRESS_CALLS);
    cb_breaker_free(b);
}
END_TEST

/* Workers that lose one permit in 8 (never record it) against a clock
 * that moves: HALF_OPEN periods keep expiring while late outcomes of the
 * abandoned ones race with the new probes. Under TSan this checks the
 * expiry path; in any build, that the counts add up and that the breaker
 * is never left wedged. */
typedef struct lossy_arg {
    cb_breaker *b;
    unsigned    seed;
    uint64_t    rejected, lost;
} lossy_arg;

static void *lossy_worker(void *arg)
{
    lossy_arg *a = arg;
    uint64_t   x = a->seed * 2654435761u + 1;
    cb_permit  p;
    int        i;

    for (i = 0; i < STRESS_CALLS / 4; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (cb_breaker_acquire(a->b, &p) != CB_OK) {
            a->rejected++;
            if (i % 64 == 0)
                atomic_fetch_add(&stress_now, 1);
            continue;
        }
        if (x % 8 == 0)
            a->lost++;
        else
            cb_breaker_record(a->b, &p, x % 4 != 1);
    }
    return NULL;
}

START_TEST(test_stress_lost_probes)
{
    cb_config   c;
    cb_breaker *b;
    lossy_arg   a[4];
    pthread_t   t[4];
    uint64_t    rej = 0, lost = 0;
    cb_permit   p;
    cb_metrics  m;
    int         i;

    memset(&c, 0, sizeof(c));
    c.clock = stress_clock;
    c.failure_threshold = 3;
    c.failure_window_ms = 100;
    c.reset_timeout_ms = 5;
    c.half_open_max = 2;
    c.success_threshold = 2;
    c.half_open_max_wait_ms = 3;
    atomic_store(&stress_now, 1000);
    b = cb_breaker_new(&c);
    ck_assert_ptr_nonnull(b);
    for (i = 0; i < 4; i++) {
        memset(&a[i], 0, sizeof(a[i]));
        a[i].b = b;
        a[i].seed = (unsigned)i + 21;
        ck_assert_int_eq(pthread_create(&t[i], NULL, lossy_worker, &a[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        rej += a[i].rejected;
        lost += a[i].lost;
    }
    m = metrics(b);
    ck_assert_uint_eq(m.total_requests, 4u * (STRESS_CALLS / 4));
    ck_assert_uint_eq(m.rejected, rej);
    ck_assert_uint_eq(m.total_requests, m.successes + m.failures + m.rejected + lost);
    ck_assert_uint_gt(m.half_open_expired, 0);
    /* Whatever state it ended in, time alone lets calls through, even
     * when they are lost too. */
    for (i = 0; i < 3; i++) {
        atomic_fetch_add(&stress_now, 100);
        ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    }
    cb_breaker_free(b);
}
END_TEST

/* ---- issue 11: trips and windows --------------------------------------- */

/* A call that takes ms on the fake clock. */
static void call_taking(cb_breaker *b, uint64_t ms, bool success)
{
    cb_permit p;

    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    fake_now += ms;
    cb_breaker_record(b, &p, success);
}

START_TEST(test_consecutive_failures)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    int         i;

    c.failure_threshold = CB_NEVER;
    c.consecutive_failures = 3;
    b = cb_breaker_new(&c);
    ck_assert_ptr_nonnull(b);
    /* 40 failures in the window, never three in a row: stays CLOSED. */
    for (i = 0; i < 20; i++) {
        fail_once(b);
        fail_once(b);
        ck_assert_uint_eq(metrics(b).consecutive_failures, 2);
        succeed_once(b);
        ck_assert_uint_eq(metrics(b).consecutive_failures, 0);
    }
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    ck_assert_uint_eq(metrics(b).window_failures, 40);
    fail_once(b);
    fail_once(b);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(metrics(b).consecutive_failures, 0); /* a new period */
    cb_breaker_free(b);
}
END_TEST

/* A run spans any time: it is not a window. */
START_TEST(test_consecutive_failures_any_time)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.failure_window_ms = 1000;
    c.consecutive_failures = 3;
    b = cb_breaker_new(&c);
    fail_once(b);
    fake_now += 1000000;
    fail_once(b);
    fake_now += 1000000;
    ck_assert_uint_eq(metrics(b).window_failures, 0);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* Ignored outcomes and outcomes of earlier periods do not break a run. */
START_TEST(test_consecutive_failures_unbroken)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p, old;

    c.failure_threshold = CB_NEVER;
    c.consecutive_failures = 3;
    b = cb_breaker_new(&c);
    ck_assert_int_eq(cb_breaker_acquire(b, &old), CB_OK);
    cb_breaker_reset(b); /* old is from an earlier period now */
    fail_once(b);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_release(b, &p);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record_err(b, &p, CB_ERR_CANCELLED);
    fail_once(b);
    cb_breaker_record(b, &old, true);
    ck_assert_uint_eq(metrics(b).late_outcomes, 1);
    ck_assert_uint_eq(metrics(b).consecutive_failures, 2);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* gobreaker's default ReadyToTrip (ConsecutiveFailures > 5), from its
 * documented semantics: five failures in a row leave it closed, a success
 * starts the count again, and the sixth failure in a row opens it. */
START_TEST(test_peer_gobreaker_ready_to_trip)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    int         i;

    c.failure_threshold = CB_NEVER;
    c.consecutive_failures = 6;
    c.reset_timeout_ms = 60000; /* gobreaker's default Timeout */
    b = cb_breaker_new(&c);
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(cb_breaker_execute(b, op_fail, NULL), CB_ERR_CONNECT);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    ck_assert_int_eq(cb_breaker_execute(b, op_ok, NULL), CB_OK);
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(cb_breaker_execute(b, op_fail, NULL), CB_ERR_CONNECT);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    ck_assert_int_eq(cb_breaker_execute(b, op_fail, NULL), CB_ERR_CONNECT);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    fake_now += 59999;
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    fake_now += 1;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_count_window)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_metrics  m;
    int         i;

    c.failure_threshold = CB_NEVER;
    c.window_calls = 4;
    c.failure_rate_threshold = 50; /* minimum_calls 10 is capped at 4 */
    b = cb_breaker_new(&c);
    ck_assert_ptr_nonnull(b);
    succeed_once(b);
    fail_once(b);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED); /* 3 calls < 4 */
    succeed_once(b);                                  /* S F F S: 50 % */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_reset(b);
    ck_assert_uint_eq(metrics(b).window_calls, 0);
    /* The window slides: a thousand successes later only 4 count. */
    for (i = 0; i < 1000; i++)
        succeed_once(b);
    m = metrics(b);
    ck_assert_uint_eq(m.window_calls, 4);
    ck_assert_uint_eq(m.window_failures, 0);
    /* Time plays no part. */
    fail_once(b);
    fake_now += 1000000000;
    ck_assert_uint_eq(metrics(b).window_failures, 1);
    fail_once(b); /* S S F F: 50 % of the last 4 */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* failure_threshold counts inside the count-based window too. */
START_TEST(test_count_window_threshold)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    int         i;

    c.failure_threshold = 3;
    c.window_calls = 5;
    b = cb_breaker_new(&c);
    for (i = 0; i < 10; i++) {
        fail_once(b);
        fail_once(b);
        succeed_once(b);
        succeed_once(b);
        succeed_once(b);
    }
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    ck_assert_uint_eq(metrics(b).window_failures, 2);
    fail_once(b); /* F S S S F */
    fail_once(b); /* S S S F F */
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    fail_once(b); /* S S F F F */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_count_window_slow)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.window_calls = 4;
    c.slow_call_ms = 100;
    c.slow_call_rate_threshold = 75;
    b = cb_breaker_new(&c);
    call_taking(b, 101, true);
    call_taking(b, 5, true);
    call_taking(b, 101, true);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    call_taking(b, 101, true); /* 3 slow of 4 */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* resilience4j COUNT_BASED, from its documented semantics: a window of 5
 * calls, minimumNumberOfCalls 5, failureRateThreshold 50: no judgement
 * before 5 calls, then 3 failures of the last 5 open it. */
START_TEST(test_peer_r4j_count_based)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.failure_threshold = CB_NEVER;
    c.window_calls = 5;
    c.minimum_calls = 5;
    c.failure_rate_threshold = 50;
    b = cb_breaker_new(&c);
    fail_once(b);
    fail_once(b);
    fail_once(b);
    succeed_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED); /* 4 calls: not judged */
    succeed_once(b);                                  /* 3 of 5 = 60 % */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_count_window_bounds)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    char        err[128];

    c.window_calls = CB_WINDOW_CALLS_MAX;
    b = cb_breaker_new(&c);
    ck_assert_ptr_nonnull(b);
    succeed_once(b);
    cb_breaker_free(b);
    c.window_calls = CB_WINDOW_CALLS_MAX + 1;
    ck_assert_ptr_null(cb_breaker_new(&c));
    ck_assert_int_eq(cb_config_check(&c, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_str_eq(err, "window_calls (10001) > CB_WINDOW_CALLS_MAX (10000)");
}
END_TEST

/* configure switches between a time-based and a count-based window, each
 * time starting it afresh, and keeps it when it stays. */
START_TEST(test_count_window_configure)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    c.failure_threshold = 3;
    b = cb_breaker_new(&c);
    fail_once(b);
    fail_once(b);
    ck_assert_int_eq(
        cb_breaker_configure(b, &(cb_config){ .failure_threshold = 3, .window_calls = 3 }), CB_OK);
    ck_assert_uint_eq(metrics(b).window_failures, 0);
    fail_once(b);
    fail_once(b);
    ck_assert_int_eq(
        cb_breaker_configure(b, &(cb_config){ .failure_threshold = 4, .window_calls = 3 }), CB_OK);
    ck_assert_uint_eq(metrics(b).window_failures, 2);
    ck_assert_int_eq(
        cb_breaker_configure(b, &(cb_config){ .failure_threshold = 3, .window_calls = 10 }), CB_OK);
    ck_assert_uint_eq(metrics(b).window_failures, 0);
    ck_assert_int_eq(cb_breaker_configure(b, &(cb_config){ .failure_threshold = 3 }), CB_OK);
    fail_once(b);
    fail_once(b);
    fail_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* ---- issue 11: ignored outcomes ------------------------------------------ */

static cb_outcome http_ignored(cb_err err, void *ud)
{
    (void)ud;
    if (err == CB_OK)
        return CB_OUTCOME_SUCCESS;
    return err == CB_ERR_HTTP ? CB_OUTCOME_IGNORED : CB_OUTCOME_FAILURE;
}

START_TEST(test_classify_outcome_ignored)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;
    cb_metrics  m;
    int         i;

    c.failure_threshold = 2;
    c.classify_outcome = http_ignored;
    c.classify = only_connect_fails; /* not used: classify_outcome wins */
    c.listener = recorder;
    nevents = 0;
    b = cb_breaker_new(&c);
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(cb_breaker_execute(b, op_http, NULL), CB_ERR_HTTP);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    fake_now += 4;
    cb_breaker_record_err(b, &p, CB_ERR_HTTP);
    m = metrics(b);
    ck_assert_uint_eq(m.ignored, 6);
    ck_assert_uint_eq(m.failures + m.successes, 0);
    ck_assert_uint_eq(m.total_requests, 6);
    ck_assert_int_eq(m.state, CB_CLOSED);
    ck_assert_uint_eq(nevents, 6);
    ck_assert_int_eq(events[5].type, CB_EVENT_IGNORED);
    ck_assert_int_eq(events[5].error, CB_ERR_HTTP);
    ck_assert_int_eq(events[5].state, CB_CLOSED);
    ck_assert_uint_eq(events[5].duration_ms, 4);
    ck_assert_int_eq(cb_breaker_execute(b, op_fail, NULL), CB_ERR_CONNECT);
    ck_assert_int_eq(cb_breaker_execute(b, op_fail, NULL), CB_ERR_CONNECT);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* Without a classifier a cancellation is ignored, for execute and
 * record_err alike; a bool classifier keeps deciding alone. */
START_TEST(test_default_ignores_cancelled)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    c.failure_threshold = 1;
    b = cb_breaker_new(&c);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record_err(b, &p, CB_ERR_CANCELLED);
    ck_assert_uint_eq(metrics(b).ignored, 1);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_free(b);

    c.classify = only_connect_fails;
    c.classify_data = &classify_calls;
    b = cb_breaker_new(&c);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record_err(b, &p, CB_ERR_CANCELLED);
    ck_assert_uint_eq(metrics(b).ignored, 0);
    ck_assert_uint_eq(metrics(b).successes, 1);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_record_outcome)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;
    cb_metrics  m;

    c.failure_threshold = 3;
    b = cb_breaker_new(&c);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record_outcome(b, &p, CB_OUTCOME_SUCCESS);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record_outcome(b, &p, CB_OUTCOME_FAILURE);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record_outcome(b, &p, CB_OUTCOME_IGNORED);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record_outcome(b, &p, (cb_outcome)7); /* a failure */
    m = metrics(b);
    ck_assert_uint_eq(m.successes, 1);
    ck_assert_uint_eq(m.failures, 2);
    ck_assert_uint_eq(m.ignored, 1);
    ck_assert_uint_eq(m.total_requests, 4);
    cb_breaker_record_outcome(NULL, &p, CB_OUTCOME_SUCCESS);
    cb_breaker_record_outcome(b, NULL, CB_OUTCOME_SUCCESS);
    cb_breaker_free(b);
}
END_TEST

/* A probe the classifier ignores gives its slot back, as release does; a
 * METRICS_ONLY call beyond the probes never had one to give. */
START_TEST(test_ignored_probe_slots)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p, q, shadow;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.half_open_max = 1;
    b = cb_breaker_new(&c);
    fail_once(b);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(b, &q), CB_ERR_CIRCUIT_OPEN);
    cb_breaker_record_err(b, &p, CB_ERR_CANCELLED);
    ck_assert_int_eq(cb_breaker_acquire(b, &q), CB_OK);
    cb_breaker_free(b);

    c.mode = CB_MODE_METRICS_ONLY;
    b = cb_breaker_new(&c);
    fail_once(b);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);      /* the probe */
    ck_assert_int_eq(cb_breaker_acquire(b, &shadow), CB_OK); /* beyond it */
    cb_breaker_release(b, &shadow);
    /* Still one probe out: a failure of a second "probe" would not count. */
    ck_assert_int_eq(cb_breaker_acquire(b, &q), CB_OK);
    cb_breaker_record(b, &q, false);
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_record(b, &p, true);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_free(b);
}
END_TEST

/* Counts still add up across a reset when permits were given back. */
START_TEST(test_reset_with_ignored)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;
    cb_metrics  m;

    b = cb_breaker_new(&c);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_release(b, &p);
    succeed_once(b);
    cb_breaker_reset(b);
    m = metrics(b);
    ck_assert_uint_eq(m.total_requests, 0);
    ck_assert_uint_eq(m.ignored, 0);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_release(b, &p);
    m = metrics(b);
    ck_assert_uint_eq(m.total_requests, 1);
    ck_assert_uint_eq(m.ignored, 1);
    cb_breaker_free(b);
}
END_TEST

/* ---- issue 11: zero that means zero -------------------------------------- */

/* minimum_calls = 1 is the zero a rate needs; CB_NEVER turns the count
 * trip off for a rate-only breaker. */
START_TEST(test_zero_spellings)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    int         i;

    c.failure_rate_threshold = 50;
    c.minimum_calls = 1;
    b = cb_breaker_new(&c);
    fail_once(b); /* 1 of 1 */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);

    c = fake_cfg();
    c.failure_rate_threshold = 50;
    b = cb_breaker_new(&c); /* the default count trip still opens at 5 */
    for (i = 0; i < 5; i++) {
        succeed_once(b);
        succeed_once(b);
        succeed_once(b);
        fail_once(b);
    }
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);

    c.failure_threshold = CB_NEVER; /* rate only: 25 % stays CLOSED */
    b = cb_breaker_new(&c);
    for (i = 0; i < 50; i++) {
        succeed_once(b);
        succeed_once(b);
        succeed_once(b);
        fail_once(b);
    }
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    ck_assert_uint_eq(metrics(b).window_failures, 50);
    cb_breaker_free(b);
}
END_TEST

/* ---- issue 11: half-open ------------------------------------------------- */

static cb_breaker *half_open_breaker(cb_config *c)
{
    cb_breaker *b;

    c->clock = fake_clock;
    c->failure_threshold = 1;
    c->reset_timeout_ms = 100;
    b = cb_breaker_new(c);
    ck_assert_ptr_nonnull(b);
    fail_once(b);
    fake_now += metrics(b).current_open_ms;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    return b;
}

START_TEST(test_half_open_by_rate_closes)
{
    cb_config   c = { .half_open_max = 4, .failure_rate_threshold = 50, .half_open_by_rate = true };
    cb_breaker *b = half_open_breaker(&c);
    cb_permit   p[5];
    int         i;

    for (i = 0; i < 4; i++)
        ck_assert_int_eq(cb_breaker_acquire(b, &p[i]), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(b, &p[4]), CB_ERR_CIRCUIT_OPEN);
    cb_breaker_record(b, &p[0], false); /* the first failure does not reopen */
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_record(b, &p[1], true); /* nor does the first success close */
    cb_breaker_record(b, &p[2], true);
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_record(b, &p[3], true); /* 1 of 4 = 25 % */
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_half_open_by_rate_reopens)
{
    cb_config   c = { .half_open_max = 4,
                      .failure_rate_threshold = 50,
                      .half_open_by_rate = true,
                      .max_reset_timeout_ms = 1000,
                      .listener = recorder };
    cb_breaker *b;
    cb_permit   p;

    nevents = 0;
    b = half_open_breaker(&c);
    succeed_once(b);
    /* An ignored probe frees its slot and is not judged. */
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_release(b, &p);
    fail_once(b);
    succeed_once(b);
    nevents = 0;
    fail_once(b); /* 2 of 4 = 50 % */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(metrics(b).current_open_ms, 200); /* backoff grew */
    ck_assert_uint_eq(nevents, 3);
    ck_assert_int_eq(events[0].type, CB_EVENT_FAILURE);
    ck_assert_int_eq(events[1].type, CB_EVENT_FAILURE_RATE_EXCEEDED);
    ck_assert_int_eq(events[1].state, CB_HALF_OPEN);
    ck_assert(events[1].rate == 50.0);
    ck_assert_uint_eq(events[1].calls, 4);
    ck_assert_int_eq(events[2].type, CB_EVENT_STATE_CHANGE);
    ck_assert_int_eq(events[2].to, CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* resilience4j, from its documented semantics: with
 * permittedNumberOfCallsInHalfOpenState 4 and a slow-call rate threshold of
 * 50 %, HALF_OPEN reopens when 3 of the 4 probes are slow, though all of
 * them succeeded. */
START_TEST(test_peer_r4j_half_open_slow)
{
    cb_config   c = { .half_open_max = 4,
                      .failure_rate_threshold = 50,
                      .slow_call_ms = 100,
                      .slow_call_rate_threshold = 50,
                      .half_open_by_rate = true,
                      .listener = recorder };
    cb_breaker *b;

    nevents = 0;
    b = half_open_breaker(&c);
    call_taking(b, 101, true);
    call_taking(b, 10, true);
    call_taking(b, 101, true);
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    nevents = 0;
    call_taking(b, 101, true);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(nevents, 3);
    ck_assert_int_eq(events[1].type, CB_EVENT_SLOW_CALL_RATE_EXCEEDED);
    ck_assert(events[1].rate == 75.0);
    cb_breaker_free(b);
}
END_TEST

/* Without half_open_by_rate, slow probes count once slow-call tripping is
 * on: they are no successes, and enough of them reopen it. */
START_TEST(test_half_open_slow_counts)
{
    cb_config   c = { .half_open_max = 4, .slow_call_ms = 100, .slow_call_rate_threshold = 75 };
    cb_breaker *b = half_open_breaker(&c);

    call_taking(b, 101, true);
    call_taking(b, 101, true);
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN); /* slow: no success */
    call_taking(b, 101, true);                           /* 3 of 4 */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);

    /* A fast one still closes it. */
    c = (cb_config){ .half_open_max = 4, .slow_call_ms = 100, .slow_call_rate_threshold = 75 };
    b = half_open_breaker(&c);
    call_taking(b, 101, true);
    call_taking(b, 10, true);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_free(b);

    /* Slow probes that leave too few to make success_threshold reopen it. */
    c = (cb_config){ .half_open_max = 3, .success_threshold = 2, .slow_call_ms = 100 };
    b = half_open_breaker(&c);
    call_taking(b, 10, true);
    call_taking(b, 101, true);
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    call_taking(b, 101, true); /* 1 success, none left: cannot close */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* A lost probe of a rate-judged period is abandoned like any other. */
START_TEST(test_half_open_by_rate_lost_probe)
{
    cb_config   c = { .half_open_max = 2,
                      .failure_rate_threshold = 50,
                      .half_open_by_rate = true,
                      .half_open_max_wait_ms = 50 };
    cb_breaker *b = half_open_breaker(&c);
    cb_permit   lost;

    succeed_once(b);
    ck_assert_int_eq(cb_breaker_acquire(b, &lost), CB_OK);
    fake_now += 50;
    succeed_once(b); /* a new period: its first probe */
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    ck_assert_uint_eq(metrics(b).half_open_expired, 1);
    succeed_once(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_half_open_by_rate_needs_rate)
{
    char err[96];

    ck_assert_ptr_null(cb_breaker_new(&(cb_config){ .half_open_by_rate = true }));
    ck_assert_int_eq(cb_config_check(&(cb_config){ .half_open_by_rate = true }, err, sizeof(err)),
                     CB_ERR_INVALID);
    ck_assert_str_eq(err, "half_open_by_rate needs failure_rate_threshold (0)");
}
END_TEST

/* ---- issue 11: manual control -------------------------------------------- */

START_TEST(test_trip_for)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.max_reset_timeout_ms = 1000;
    b = cb_breaker_new(&c);
    cb_breaker_trip_for(b, 2500); /* may pass max_reset_timeout_ms */
    ck_assert_uint_eq(metrics(b).current_open_ms, 2500);
    ck_assert_uint_eq(metrics(b).times_opened, 1);
    fake_now += 2499;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    fake_now += 1;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    fail_once(b); /* the backoff resumes where it was: level 1 */
    ck_assert_uint_eq(metrics(b).current_open_ms, 200);
    /* Shorter, again from OPEN; 0 is 1 ms. */
    cb_breaker_trip_for(b, 0);
    ck_assert_uint_eq(metrics(b).current_open_ms, 1);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    fake_now += 1;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_trip_for(NULL, 5);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_trip_until)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;

    b = cb_breaker_new(&c);
    cb_breaker_trip_until(b, fake_now + 700);
    ck_assert_uint_eq(metrics(b).current_open_ms, 700);
    fake_now += 699;
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    fake_now += 1;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_trip_until(b, fake_now - 10); /* in the past: 1 ms */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(metrics(b).current_open_ms, 1);
    fake_now += 1;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_trip_until(b, 0);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_trip_until(b, UINT64_MAX); /* far: reported as UINT_MAX */
    ck_assert_uint_eq(metrics(b).current_open_ms, UINT_MAX);
    fake_now += 1000000000000ull;
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* Polly's Isolate and resilience4j's FORCED_OPEN, from their documented
 * semantics: every call is rejected, however long it waits, until Reset;
 * then it is CLOSED. */
START_TEST(test_peer_isolate)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;
    cb_metrics  m;

    c.reset_timeout_ms = 100;
    c.listener = recorder;
    nevents = 0;
    b = cb_breaker_new(&c);
    cb_breaker_isolate(b);
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    fake_now += 1000000000;
    op_calls = 0;
    ck_assert_int_eq(cb_breaker_execute(b, op_ok, NULL), CB_ERR_CIRCUIT_OPEN);
    ck_assert_int_eq(op_calls, 0);
    /* Trips and configure do not end it. */
    cb_breaker_trip(b);
    cb_breaker_trip_for(b, 10);
    cb_breaker_trip_until(b, fake_now + 10);
    ck_assert_int_eq(cb_breaker_configure(b, &(cb_config){ .reset_timeout_ms = 5 }), CB_OK);
    fake_now += 1000000;
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    m = metrics(b);
    ck_assert_int_eq(m.state, CB_OPEN);
    ck_assert_uint_eq(m.isolated, 1);
    ck_assert_uint_eq(m.times_opened, 1);
    ck_assert_uint_eq(m.current_open_ms, UINT_MAX);
    ck_assert_uint_eq(m.rejected, 2);
    cb_breaker_reset(b);
    m = metrics(b);
    ck_assert_int_eq(m.state, CB_CLOSED);
    ck_assert_uint_eq(m.isolated, 0);
    succeed_once(b);
    /* CLOSED -> OPEN, 2 REJECTED, OPEN -> CLOSED, RESET, SUCCESS. */
    ck_assert_uint_eq(nevents, 6);
    ck_assert_int_eq(events[0].to, CB_OPEN);
    ck_assert_int_eq(events[3].to, CB_CLOSED);
    ck_assert_int_eq(events[4].type, CB_EVENT_RESET);
    ck_assert_int_eq(events[4].from, CB_OPEN);
    /* Isolating again after a reset works; from HALF_OPEN too. */
    cb_breaker_trip(b);
    fake_now += 100;
    ck_assert_int_eq(cb_breaker_state(b), CB_HALF_OPEN);
    cb_breaker_isolate(b);
    fake_now += 100000;
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    cb_breaker_isolate(NULL);
    cb_breaker_free(b);
}
END_TEST

/* An isolated breaker stays OPEN even when the clock reaches its end,
 * where a saturated deadline would let an ordinary OPEN one go. */
START_TEST(test_isolate_clock_end)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    b = cb_breaker_new(&c);
    cb_breaker_isolate(b);
    fake_now = UINT64_MAX;
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    cb_breaker_free(b);
}
END_TEST

/* ---- issue 11: non-integer backoff --------------------------------------- */

/* resilience4j's exponential backoff with multiplier 1.5 (100 * 1.5^n). */
START_TEST(test_backoff_permille)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    char        err[64];

    c.failure_threshold = 1;
    c.reset_timeout_ms = 100;
    c.max_reset_timeout_ms = 1000;
    c.reset_backoff_multiplier = 3; /* permille wins */
    c.reset_backoff_permille = 1500;
    b = cb_breaker_new(&c);
    fail_once(b);
    ck_assert_uint_eq(metrics(b).current_open_ms, 100);
    ck_assert_uint_eq(reopen(b), 150);
    ck_assert_uint_eq(reopen(b), 225);
    ck_assert_uint_eq(reopen(b), 337);
    ck_assert_uint_eq(reopen(b), 506);
    ck_assert_uint_eq(reopen(b), 759);
    ck_assert_uint_eq(reopen(b), 1000);
    ck_assert_uint_eq(reopen(b), 1000);
    cb_breaker_free(b);

    c.reset_backoff_permille = 1000; /* no growth */
    b = cb_breaker_new(&c);
    fail_once(b);
    ck_assert_uint_eq(reopen(b), 100);
    cb_breaker_free(b);

    c.reset_backoff_permille = 999;
    ck_assert_ptr_null(cb_breaker_new(&c));
    ck_assert_int_eq(cb_config_check(&c, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_str_eq(err, "reset_backoff_permille (999) < 1000");
}
END_TEST

/* ---- issue 11: events ---------------------------------------------------- */

START_TEST(test_events_rate_exceeded)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    int         i;

    c.failure_threshold = CB_NEVER;
    c.failure_rate_threshold = 50;
    c.slow_call_ms = 100;
    c.slow_call_rate_threshold = 40;
    c.minimum_calls = 4;
    c.listener = recorder;
    b = cb_breaker_new(&c);
    call_taking(b, 150, true);
    call_taking(b, 5, false);
    call_taking(b, 5, true);
    nevents = 0;
    call_taking(b, 150, false); /* 2 of 4 failed, 2 of 4 slow */
    ck_assert_int_eq(cb_breaker_state(b), CB_OPEN);
    ck_assert_uint_eq(nevents, 4);
    ck_assert_int_eq(events[0].type, CB_EVENT_FAILURE);
    ck_assert(events[0].slow);
    ck_assert_int_eq(events[1].type, CB_EVENT_FAILURE_RATE_EXCEEDED);
    ck_assert(events[1].rate == 50.0);
    ck_assert_uint_eq(events[1].calls, 4);
    ck_assert_int_eq(events[1].state, CB_CLOSED);
    ck_assert_uint_eq(events[1].at_ms, fake_now);
    ck_assert_int_eq(events[2].type, CB_EVENT_SLOW_CALL_RATE_EXCEEDED);
    ck_assert(events[2].rate == 50.0);
    ck_assert_int_eq(events[3].type, CB_EVENT_STATE_CHANGE);
    ck_assert_int_eq(events[3].to, CB_OPEN);
    cb_breaker_free(b);

    /* Only the rule exceeded is reported. */
    c.slow_call_ms = 0;
    b = cb_breaker_new(&c);
    for (i = 0; i < 3; i++)
        succeed_once(b);
    nevents = 0;
    fail_once(b);
    fail_once(b);
    fail_once(b); /* 3 of 6 */
    ck_assert_uint_eq(nevents, 5);
    ck_assert_int_eq(events[3].type, CB_EVENT_FAILURE_RATE_EXCEEDED);
    ck_assert(events[3].rate == 50.0);
    ck_assert_uint_eq(events[3].calls, 6);
    ck_assert_int_eq(events[4].type, CB_EVENT_STATE_CHANGE);
    cb_breaker_free(b);
}
END_TEST

START_TEST(test_events_reset_and_ignored)
{
    cb_config   c = fake_cfg();
    cb_breaker *b;
    cb_permit   p;

    c.listener = recorder;
    nevents = 0;
    b = cb_breaker_new(&c);
    cb_breaker_reset(b); /* from CLOSED: RESET alone */
    ck_assert_uint_eq(nevents, 1);
    ck_assert_int_eq(events[0].type, CB_EVENT_RESET);
    ck_assert_int_eq(events[0].from, CB_CLOSED);
    ck_assert_int_eq(events[0].to, CB_CLOSED);
    ck_assert_uint_eq(events[0].at_ms, fake_now);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    fake_now += 9;
    cb_breaker_release(b, &p);
    ck_assert_uint_eq(nevents, 2);
    ck_assert_int_eq(events[1].type, CB_EVENT_IGNORED);
    ck_assert_int_eq(events[1].error, CB_OK);
    ck_assert_uint_eq(events[1].duration_ms, 9);
    cb_breaker_free(b);
}
END_TEST

/* ---- issue 11: configs that say why -------------------------------------- */

START_TEST(test_config_check_messages)
{
    static const struct {
        cb_config   c;
        const char *msg;
    } bad[] = {
        { { .success_threshold = 4 }, "success_threshold (4) > half_open_max (3)" },
        { { .half_open_max = 2, .success_threshold = 3 },
          "success_threshold (3) > half_open_max (2)" },
        { { .failure_rate_threshold = 101 }, "failure_rate_threshold (101) > 100" },
        { { .slow_call_rate_threshold = 101 }, "slow_call_rate_threshold (101) > 100" },
        { { .reset_jitter_pct = 101 }, "reset_jitter_pct (101) > 100" },
        { { .max_reset_timeout_ms = 1000 },
          "reset_timeout_ms (30000) > max_reset_timeout_ms (1000)" },
        { { .mode = (cb_mode)3 }, "mode (3) is not a cb_mode (0-2)" },
    };
    char   err[128], tiny[8];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(cb_config_check(&bad[i].c, err, sizeof(err)), CB_ERR_INVALID);
        ck_assert_str_eq(err, bad[i].msg);
        ck_assert_ptr_null(cb_breaker_new(&bad[i].c));
        ck_assert_int_eq(cb_config_check(&bad[i].c, NULL, 0), CB_ERR_INVALID);
    }
    ck_assert_int_eq(cb_config_check(&bad[0].c, tiny, sizeof(tiny)), CB_ERR_INVALID);
    ck_assert_str_eq(tiny, "success");
    /* A buffer of size 0 is never written, whatever the answer. */
    strcpy(err, "kept");
    ck_assert_int_eq(cb_config_check(&bad[0].c, err, 0), CB_ERR_INVALID);
    ck_assert_str_eq(err, "kept");
    ck_assert_int_eq(cb_config_check(NULL, err, 0), CB_OK);
    ck_assert_str_eq(err, "kept");
    strcpy(err, "junk");
    ck_assert_int_eq(cb_config_check(NULL, err, sizeof(err)), CB_OK);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(cb_config_check(&(cb_config){ .half_open_max = 3, .success_threshold = 3 },
                                     err, sizeof(err)),
                     CB_OK);
}
END_TEST

/* ---- issue 11: threads --------------------------------------------------- */

static cb_outcome timeout_ignored(cb_err err, void *ud)
{
    (void)ud;
    if (err == CB_OK)
        return CB_OUTCOME_SUCCESS;
    return err == CB_ERR_TIMEOUT ? CB_OUTCOME_IGNORED : CB_OUTCOME_FAILURE;
}

typedef struct manual_arg {
    cb_breaker *b;
    unsigned    seed;
    uint64_t    rejected, successes, failures, ignored;
} manual_arg;

static void *manual_worker(void *arg)
{
    manual_arg *a = arg;
    uint64_t    x = a->seed * 2654435761u + 1;
    cb_permit   p;
    int         i;

    for (i = 0; i < STRESS_CALLS / 2; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (cb_breaker_acquire(a->b, &p) != CB_OK) {
            a->rejected++;
            continue;
        }
        switch (x % 8) {
        case 0:
            a->failures++;
            cb_breaker_record_err(a->b, &p, CB_ERR_CONNECT);
            break;
        case 1:
            a->ignored++;
            cb_breaker_record_err(a->b, &p, CB_ERR_TIMEOUT);
            break;
        default:
            a->successes++;
            cb_breaker_record(a->b, &p, true);
        }
        if (i % 1024 == 0)
            atomic_fetch_add(&stress_now, 1);
    }
    return NULL;
}

/* Isolates, trips for a time and until a time while workers run with a
 * consecutive-failure trip, a count-based window judged by rate, rate-judged
 * half-open periods and ignored outcomes; then every count adds up and the
 * isolation holds until reset. */
static void *manual_chaos(void *arg)
{
    cb_breaker *b = arg;
    unsigned    i = 0;
    cb_metrics  m;

    while (!atomic_load(&stress_stop)) {
        switch (i % 5) {
        case 0:
            cb_breaker_isolate(b);
            break;
        case 1:
            cb_breaker_reset(b);
            break;
        case 2:
            cb_breaker_trip_for(b, 3);
            break;
        case 3:
            cb_breaker_trip_until(b, atomic_load(&stress_now) + 2);
            break;
        default:
            break;
        }
        cb_breaker_metrics(b, &m);
        ck_assert_uint_ge(m.total_requests, m.successes + m.failures + m.rejected + m.ignored);
        atomic_fetch_add(&stress_now, 2);
        i++;
        sched_yield();
    }
    return NULL;
}

START_TEST(test_stress_manual_states)
{
    cb_config   c;
    cb_breaker *b;
    manual_arg  a[4];
    pthread_t   t[4], chaos;
    uint64_t    rej = 0, succ = 0, fail = 0, ign = 0;
    cb_permit   p;
    cb_metrics  m;
    int         i;

    memset(&c, 0, sizeof(c));
    c.clock = stress_clock;
    c.failure_threshold = CB_NEVER;
    c.consecutive_failures = 4;
    c.window_calls = 50;
    c.failure_rate_threshold = 10;
    c.minimum_calls = 20;
    c.reset_timeout_ms = 5;
    c.half_open_max = 4;
    c.half_open_by_rate = true;
    c.half_open_max_wait_ms = 5;
    c.max_reset_timeout_ms = 40;
    c.reset_backoff_permille = 1500;
    c.classify_outcome = timeout_ignored;
    c.listener = counting_listener;
    atomic_store(&stress_now, 1000);
    atomic_store(&stress_stop, 0);
    b = cb_breaker_new(&c);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(pthread_create(&chaos, NULL, manual_chaos, b), 0);
    for (i = 0; i < 4; i++) {
        memset(&a[i], 0, sizeof(a[i]));
        a[i].b = b;
        a[i].seed = (unsigned)i + 31;
        ck_assert_int_eq(pthread_create(&t[i], NULL, manual_worker, &a[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        rej += a[i].rejected;
        succ += a[i].successes;
        fail += a[i].failures;
        ign += a[i].ignored;
    }
    atomic_store(&stress_stop, 1);
    pthread_join(chaos, NULL);
    m = metrics(b);
    ck_assert_uint_eq(m.total_requests, m.successes + m.failures + m.rejected + m.ignored);
    ck_assert_uint_le(m.successes, succ);
    ck_assert_uint_le(m.failures, fail);
    ck_assert_uint_le(m.ignored, ign);
    ck_assert_uint_le(m.rejected, rej);
    /* Isolated, it stays so whatever time does; reset ends it. */
    cb_breaker_isolate(b);
    atomic_fetch_add(&stress_now, 1000000);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_ERR_CIRCUIT_OPEN);
    cb_breaker_reset(b);
    ck_assert_int_eq(cb_breaker_acquire(b, &p), CB_OK);
    cb_breaker_record(b, &p, true);
    cb_breaker_free(b);
}
END_TEST

/* Many threads on the consecutive-failure count while successes stay on
 * the lock-free path: the run is never longer than the failures recorded,
 * and with failures only it opens. */
static void *fail_worker(void *arg)
{
    cb_breaker *b = arg;
    cb_permit   p;
    int         i;

    for (i = 0; i < STRESS_CALLS / 4; i++) {
        if (cb_breaker_acquire(b, &p) != CB_OK)
            continue;
        cb_breaker_record(b, &p, (i & 1) != 0);
    }
    return NULL;
}

START_TEST(test_stress_consecutive)
{
    cb_config   c;
    cb_breaker *b;
    pthread_t   t[4];
    int         i;

    memset(&c, 0, sizeof(c));
    c.clock = stress_clock;
    c.failure_threshold = CB_NEVER;
    c.consecutive_failures = 1000000;
    atomic_store(&stress_now, 1000);
    b = cb_breaker_new(&c);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, fail_worker, b), 0);
    for (i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(cb_breaker_state(b), CB_CLOSED);
    ck_assert_uint_le(metrics(b).consecutive_failures, metrics(b).failures);
    ck_assert_uint_eq(metrics(b).total_requests, 4u * (STRESS_CALLS / 4));
    cb_breaker_free(b);
}
END_TEST

static Suite *breaker_suite(void)
{
    Suite *s = suite_create("breaker");
    TCase *tc;

    tc = tcase_create("basics");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_state_names);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_one_success_one_failure);
    tcase_add_test(tc, test_three_failures_open);
    tcase_add_test(tc, test_metrics_fields);
    tcase_add_test(tc, test_metrics_inflight);
    tcase_add_test(tc, test_null_safety);
    suite_add_tcase(s, tc);

    tc = tcase_create("transitions");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_open_half_open_closed);
    tcase_add_test(tc, test_recovers_fake_clock);
    tcase_add_test(tc, test_recovers_real_sleep);
    tcase_add_test(tc, test_half_open_failure_reopens);
    tcase_add_test(tc, test_half_open_limits);
    tcase_add_test(tc, test_half_open_new_period);
    tcase_add_test(tc, test_half_open_lost_probes_expire);
    tcase_add_test(tc, test_release_ignored);
    tcase_add_test(tc, test_half_open_wait_default);
    tcase_add_test(tc, test_half_open_expiry_repeats);
    suite_add_tcase(s, tc);

    tc = tcase_create("window");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_window_expiry);
    tcase_add_test(tc, test_window_long_gap);
    tcase_add_test(tc, test_window_successes_do_not_reset);
    tcase_add_test(tc, test_window_never_overshoots);
    tcase_add_test(tc, test_window_overshoot_cases);
    suite_add_tcase(s, tc);

    tc = tcase_create("periods");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_late_outcome_while_open);
    tcase_add_test(tc, test_late_failure_in_half_open);
    tcase_add_test(tc, test_late_across_reset);
    tcase_add_test(tc, test_late_across_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("trips");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_rate_trip);
    tcase_add_test(tc, test_rate_below_threshold);
    tcase_add_test(tc, test_slow_trip);
    tcase_add_test(tc, test_slow_rate_below_then_at);
    tcase_add_test(tc, test_untimed_permit_not_slow);
    suite_add_tcase(s, tc);

    tc = tcase_create("backoff");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_backoff_growth_and_cap);
    tcase_add_test(tc, test_backoff_multiplier);
    tcase_add_test(tc, test_no_backoff_without_max);
    tcase_add_test(tc, test_jitter_bounds);
    tcase_add_test(tc, test_backoff_multiplier_one);
    tcase_add_test(tc, test_jitter_floor);
    tcase_add_test(tc, test_jitter_ceiling);
    suite_add_tcase(s, tc);

    tc = tcase_create("classifier");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_classifier);
    tcase_add_test(tc, test_default_classifier);
    suite_add_tcase(s, tc);

    tc = tcase_create("events");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_events_in_order);
    tcase_add_test(tc, test_events_slow_flag);
    tcase_add_test(tc, test_listener_reentrant);
    tcase_add_test(tc, test_listener_resets);
    suite_add_tcase(s, tc);

    tc = tcase_create("manual");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_trip_and_reset);
    suite_add_tcase(s, tc);

    tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_config_rejected);
    tcase_add_test(tc, test_config_edges_accepted);
    tcase_add_test(tc, test_configure);
    tcase_add_test(tc, test_configure_each_number);
    tcase_add_test(tc, test_configure_window_changes);
    suite_add_tcase(s, tc);

    tc = tcase_create("modes");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_metrics_only);
    tcase_add_test(tc, test_disabled);
    tcase_add_test(tc, test_disabled_permit_recorded_while_open);
    tcase_add_test(tc, test_disabled_permit_released_in_half_open);
    tcase_add_test(tc, test_disabled_keeps_half_open_period);
    tcase_add_test(tc, test_zeroed_permit);
    suite_add_tcase(s, tc);

    tc = tcase_create("clock_end");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_open_deadline_saturates);
    tcase_add_test(tc, test_deadlines_saturate);
    tcase_add_test(tc, test_window_clock_end);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_stress_trips);
    tcase_add_test(tc, test_stress_resets);
    tcase_add_test(tc, test_stress_listener);
    tcase_add_test(tc, test_stress_lost_probes);
    tcase_add_test(tc, test_stress_manual_states);
    tcase_add_test(tc, test_stress_consecutive);
    suite_add_tcase(s, tc);

    tc = tcase_create("issue11_trips");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_consecutive_failures);
    tcase_add_test(tc, test_consecutive_failures_any_time);
    tcase_add_test(tc, test_consecutive_failures_unbroken);
    tcase_add_test(tc, test_peer_gobreaker_ready_to_trip);
    tcase_add_test(tc, test_count_window);
    tcase_add_test(tc, test_count_window_threshold);
    tcase_add_test(tc, test_count_window_slow);
    tcase_add_test(tc, test_peer_r4j_count_based);
    tcase_add_test(tc, test_count_window_bounds);
    tcase_add_test(tc, test_count_window_configure);
    tcase_add_test(tc, test_zero_spellings);
    suite_add_tcase(s, tc);

    tc = tcase_create("issue11_ignored");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_classify_outcome_ignored);
    tcase_add_test(tc, test_default_ignores_cancelled);
    tcase_add_test(tc, test_record_outcome);
    tcase_add_test(tc, test_ignored_probe_slots);
    tcase_add_test(tc, test_reset_with_ignored);
    suite_add_tcase(s, tc);

    tc = tcase_create("issue11_half_open");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_half_open_by_rate_closes);
    tcase_add_test(tc, test_half_open_by_rate_reopens);
    tcase_add_test(tc, test_peer_r4j_half_open_slow);
    tcase_add_test(tc, test_half_open_slow_counts);
    tcase_add_test(tc, test_half_open_by_rate_lost_probe);
    tcase_add_test(tc, test_half_open_by_rate_needs_rate);
    suite_add_tcase(s, tc);

    tc = tcase_create("issue11_manual");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_trip_for);
    tcase_add_test(tc, test_trip_until);
    tcase_add_test(tc, test_peer_isolate);
    tcase_add_test(tc, test_isolate_clock_end);
    tcase_add_test(tc, test_backoff_permille);
    suite_add_tcase(s, tc);

    tc = tcase_create("issue11_events");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_events_rate_exceeded);
    tcase_add_test(tc, test_events_reset_and_ignored);
    tcase_add_test(tc, test_config_check_messages);
    suite_add_tcase(s, tc);

    return s;
}

int main(void) { return tu_run_suite(breaker_suite()); }
