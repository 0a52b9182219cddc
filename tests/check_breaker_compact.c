/*
 * The breaker's compact form and its allocations (src/breaker_core.h): an
 * embedded breaker that nobody has called holds no inflated part, answers
 * configure as an inflated one would, and inflates on the first outcome
 * even of a permit no acquire filled in; every allocation of cb_breaker_new,
 * cbh_breaker_inflate and cb_breaker_configure failing in turn is refused
 * cleanly, with nothing changed and nothing leaked. A fake clock throughout.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include <cbhttp.h>

#include "breaker_core.h"

#include "helpers/failalloc.h"
#include "helpers/testutil.h"

static uint64_t fake_now;

static uint64_t fake_clock(void *ud)
{
    (void)ud;
    return fake_now;
}

static void setup(void) { fake_now = 1000; }

static cb_metrics metrics(cb_breaker *b)
{
    cb_metrics m;

    cb_breaker_metrics(b, &m);
    return m;
}

/* An embedded breaker on normalised copies of cfg (which the caller keeps
 * alive in *env and *num). */
static void embed(cb_breaker *b, cb_config *env, cb_config *num, const cb_config *cfg)
{
    cb_config c = *cfg;

    c.clock = fake_clock;
    ck_assert(cbh_breaker_config_norm(&c, env));
    *num = *env;
    cbh_breaker_init(b, env, num);
    ck_assert(!cbh_breaker_inflated(b));
}

/* Every allocation of cb_breaker_new with a count window failing in turn:
 * NULL each time, nothing leaked, until all succeed. */
START_TEST(test_new_out_of_memory)
{
    const cb_config c = { .window_calls = 10, .clock = fake_clock };
    cb_breaker     *b = NULL;
    unsigned long   n, refused = 0;

    tu_alloc_install();
    for (n = 1; n < 10 && !b; n++) {
        tu_alloc_fail_at(n);
        b = cb_breaker_new(&c);
        if (!b) {
            ck_assert(tu_alloc_disarm());
            ck_assert_int_eq(tu_alloc_live(), 0);
            refused++;
        }
    }
    tu_alloc_disarm();
    ck_assert_ptr_nonnull(b);
    /* The block, the inflated part and the ring: three refusals. */
    ck_assert_uint_eq(refused, 3);
    cb_breaker_free(b);
    tu_alloc_uninstall();
}
END_TEST

/* An embedded breaker with a count window whose ring cannot be allocated
 * stays compact; a later inflate succeeds and the window works. */
START_TEST(test_inflate_ring_out_of_memory)
{
    cb_config  env, num;
    cb_breaker b;
    cb_permit  p;
    int        i;

    tu_alloc_install();
    embed(&b, &env, &num, &(cb_config){ .window_calls = 4, .failure_threshold = 2 });
    tu_alloc_fail_at(2); /* the inflated part succeeds, its ring does not */
    ck_assert_int_eq(cbh_breaker_inflate(&b), CB_ERR_NOMEM);
    ck_assert(tu_alloc_disarm());
    ck_assert(!cbh_breaker_inflated(&b));
    ck_assert_int_eq(tu_alloc_live(), 0);
    ck_assert_int_eq(cbh_breaker_inflate(&b), CB_OK);
    ck_assert(cbh_breaker_inflated(&b));
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(cb_breaker_acquire(&b, &p), CB_OK);
        cb_breaker_record(&b, &p, false);
    }
    ck_assert_int_eq(cb_breaker_state(&b), CB_OPEN);
    cbh_breaker_destroy(&b);
    tu_alloc_uninstall();
}
END_TEST

/* configure to a count window whose ring cannot be allocated: refused,
 * and the config in force is the old one. */
START_TEST(test_configure_ring_out_of_memory)
{
    cb_config   got;
    cb_breaker *b;

    tu_alloc_install();
    b = cb_breaker_new(&(cb_config){ .clock = fake_clock, .failure_threshold = 3 });
    ck_assert_ptr_nonnull(b);
    tu_alloc_fail_at(1);
    ck_assert_int_eq(
        cb_breaker_configure(b, &(cb_config){ .failure_threshold = 3, .window_calls = 8 }),
        CB_ERR_NOMEM);
    ck_assert(tu_alloc_disarm());
    cb_breaker_config(b, &got);
    ck_assert_uint_eq(got.window_calls, 0);
    ck_assert_int_eq(
        cb_breaker_configure(b, &(cb_config){ .failure_threshold = 3, .window_calls = 8 }), CB_OK);
    cb_breaker_config(b, &got);
    ck_assert_uint_eq(got.window_calls, 8);
    cb_breaker_free(b);
    tu_alloc_uninstall();
}
END_TEST

/* A compact breaker takes a new window width without inflating, and its
 * first calls then follow the new config. */
START_TEST(test_configure_compact)
{
    cb_config  env, num, got;
    cb_breaker b;
    cb_permit  p;
    int        i;

    embed(&b, &env, &num, &(cb_config){ .failure_threshold = 5 });
    ck_assert_int_eq(
        cb_breaker_configure(&b, &(cb_config){ .failure_threshold = 2, .failure_window_ms = 1000 }),
        CB_OK);
    ck_assert(!cbh_breaker_inflated(&b));
    cb_breaker_config(&b, &got);
    ck_assert_uint_eq(got.failure_window_ms, 1000);
    ck_assert_uint_eq(metrics(&b).total_requests, 0);
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(cb_breaker_acquire(&b, &p), CB_OK);
        cb_breaker_record(&b, &p, false);
    }
    ck_assert_int_eq(cb_breaker_state(&b), CB_OPEN);
    cbh_breaker_destroy(&b);
}
END_TEST

/* A permit no acquire filled in, recorded on a compact breaker: the
 * breaker inflates to count it (a late outcome, one call); out of memory,
 * it is dropped and the breaker stays compact. The same for a permit given
 * back uncounted. */
START_TEST(test_outcome_inflates_compact)
{
    cb_config  env, num;
    cb_breaker b;
    cb_permit  p;
    cb_metrics m;

    memset(&p, 0, sizeof(p));
    tu_alloc_install();
    embed(&b, &env, &num, &(cb_config){ .failure_threshold = 1 });
    tu_alloc_fail_from(1);
    cb_breaker_record(&b, &p, false);
    cb_breaker_record_err(&b, &p, CB_ERR_CANCELLED);
    ck_assert(tu_alloc_disarm());
    ck_assert(!cbh_breaker_inflated(&b));
    m = metrics(&b);
    ck_assert_uint_eq(m.failures, 0);
    ck_assert_uint_eq(m.ignored, 0);

    cb_breaker_record(&b, &p, false);
    ck_assert(cbh_breaker_inflated(&b));
    m = metrics(&b);
    ck_assert_uint_eq(m.failures, 1);
    ck_assert_uint_eq(m.late_outcomes, 1);
    ck_assert_uint_eq(m.total_requests, 1);
    ck_assert_int_eq(m.state, CB_CLOSED); /* of no period: moves nothing */
    cbh_breaker_destroy(&b);

    embed(&b, &env, &num, &(cb_config){ .failure_threshold = 1 });
    cb_breaker_record_err(&b, &p, CB_ERR_CANCELLED);
    ck_assert(cbh_breaker_inflated(&b));
    ck_assert_uint_eq(metrics(&b).ignored, 1);
    cbh_breaker_destroy(&b);
    ck_assert_int_eq(tu_alloc_live(), 0);
    tu_alloc_uninstall();
}
END_TEST

/* cb_breaker_free on an embedded breaker frees what it allocated (its
 * inflated part, its own config) and not the breaker, which its owner
 * holds. */
START_TEST(test_free_embedded)
{
    cb_config  env, num;
    cb_breaker b;
    cb_permit  p;

    tu_alloc_install();
    embed(&b, &env, &num, &(cb_config){ .failure_threshold = 1 });
    ck_assert_int_eq(cb_breaker_configure(&b, &(cb_config){ .failure_threshold = 2 }), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(&b, &p), CB_OK);
    cb_breaker_record(&b, &p, true);
    ck_assert_int_gt(tu_alloc_live(), 0);
    cb_breaker_free(&b);
    ck_assert_int_eq(tu_alloc_live(), 0);
    ck_assert(!cbh_breaker_inflated(&b));
    tu_alloc_uninstall();
}
END_TEST

/* The carry on its own: a breaker that was never inflated deflates too
 * (only its owner's numbers change), a deflated one keeps its counts and
 * its owner's numbers apart, too many owner numbers are refused, and a
 * reader asking for more than were kept gets zeros past them. */
START_TEST(test_carry)
{
    const uint64_t nine[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    uint64_t       got[CBH_CARRY_EXTRA_MAX + 1];
    cb_config      env, num;
    cb_breaker     b;
    cb_permit      p;
    cb_metrics     m;

    embed(&b, &env, &num, &(cb_config){ .failure_threshold = 3 });
    ck_assert(!cbh_breaker_deflate(&b, fake_now, nine, CBH_CARRY_EXTRA_MAX + 1));
    ck_assert(cbh_breaker_deflate(&b, fake_now, nine, 2));
    ck_assert(!cbh_breaker_inflated(&b));
    memset(got, 0xff, sizeof(got));
    cbh_breaker_carried(&b, got, CBH_CARRY_EXTRA_MAX + 1);
    ck_assert_uint_eq(got[0], 1);
    ck_assert_uint_eq(got[1], 2);
    ck_assert_uint_eq(got[2], 0);
    ck_assert_uint_eq(got[CBH_CARRY_EXTRA_MAX], UINT64_MAX); /* past the clamp: untouched */
    m = metrics(&b);
    ck_assert_uint_eq(m.total_requests, 0);

    /* Calls, then idle past the window: the counts go to the carry. */
    ck_assert_int_eq(cb_breaker_acquire(&b, &p), CB_OK);
    cb_breaker_record(&b, &p, true);
    ck_assert_int_eq(cb_breaker_acquire(&b, &p), CB_OK);
    cb_breaker_record(&b, &p, false);
    ck_assert_int_eq(cb_breaker_acquire(&b, &p), CB_OK);
    cb_breaker_record(&b, &p, true);
    /* Inside the window: refused, nothing changed. */
    ck_assert(!cbh_breaker_deflate(&b, fake_now, nine + 5, 2));
    ck_assert(cbh_breaker_inflated(&b));
    fake_now += env.failure_window_ms;
    ck_assert(cbh_breaker_deflate(&b, fake_now, nine + 5, 2));
    ck_assert(!cbh_breaker_inflated(&b));
    m = metrics(&b);
    ck_assert_uint_eq(m.total_requests, 3);
    ck_assert_uint_eq(m.successes, 2);
    ck_assert_uint_eq(m.failures, 1);
    ck_assert_uint_eq(m.consecutive_successes, 1);
    ck_assert_uint_eq(m.last_failure_ms, 1000);
    cbh_breaker_carried(&b, got, 2);
    ck_assert_uint_eq(got[0], 6);
    ck_assert_uint_eq(got[1], 7);
    cbh_breaker_destroy(&b);
}
END_TEST

static Suite *compact_suite(void)
{
    Suite *s = suite_create("breaker_compact");
    TCase *tc = tcase_create("compact");

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_new_out_of_memory);
    tcase_add_test(tc, test_inflate_ring_out_of_memory);
    tcase_add_test(tc, test_configure_ring_out_of_memory);
    tcase_add_test(tc, test_configure_compact);
    tcase_add_test(tc, test_outcome_inflates_compact);
    tcase_add_test(tc, test_free_embedded);
    tcase_add_test(tc, test_carry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(compact_suite()); }
