/* The per-origin map: lookup, configuration, events, eviction rules and
 * bounds, and concurrent use. Time comes from a fake clock. */
/* cbhttp: threaded */
#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "origin.h"

#include "helpers/failalloc.h"
#include "helpers/testutil.h"

static _Atomic uint64_t fake_now;

static uint64_t fake_clock(void *ud)
{
    (void)ud;
    return atomic_load(&fake_now);
}

static void set_now(uint64_t ms) { atomic_store(&fake_now, ms); }

/* Events seen by the map's listener. */
typedef struct events {
    cbh_origins *m;
    cbh_origin  *last_origin;
    char         last_key[64];
    cb_event     last;
    int          count;
    int          state_changes;
    size_t       count_seen; /* cbh_origins_count called from the listener */
} events;

static void on_event(cbh_origin *o, const cb_event *ev, void *ud)
{
    events *e = ud;

    e->last_origin = o;
    snprintf(e->last_key, sizeof(e->last_key), "%s", o->key);
    e->last = *ev;
    e->count++;
    if (ev->type == CB_EVENT_STATE_CHANGE)
        e->state_changes++;
    /* The listener runs without the map lock: calling back must not
     * deadlock. */
    if (e->m)
        e->count_seen = cbh_origins_count(e->m);
}

static cbh_origins *new_map_max(unsigned idle_ms, size_t max, events *ev)
{
    cbh_origins_config c;
    cbh_origins       *m;

    memset(&c, 0, sizeof(c));
    c.idle_ms = idle_ms;
    c.max_origins = max;
    c.clock = fake_clock;
    if (ev) {
        c.on_event = on_event;
        c.event_data = ev;
    }
    m = cbh_origins_new(&c);
    ck_assert_ptr_nonnull(m);
    if (ev)
        ev->m = m;
    return m;
}

static cbh_origins *new_map(unsigned idle_ms, events *ev) { return new_map_max(idle_ms, 0, ev); }

static cbh_origin *get(cbh_origins *m, const char *key, const cb_config *cfg, bool create)
{
    cb_err      err = CB_ERR_COUNT_;
    cbh_origin *o = cbh_origins_get(m, key, strlen(key), cfg, create, &err);

    ck_assert_int_eq(err, o ? CB_OK : err);
    return o;
}

static unsigned refs(cbh_origin *o) { return atomic_load(&o->refs); }

/* ---- Lookup --------------------------------------------------------------- */

START_TEST(test_create_and_lookup)
{
    cbh_origins *m;
    cbh_origin  *a, *a2, *b;
    cb_err       err;
    const char   buf[] = "http://a:80/and more bytes";

    set_now(1000);
    m = new_map(0, NULL);
    ck_assert_uint_eq(cbh_origins_count(m), 0);
    ck_assert_ptr_null(cbh_origins_get(m, "http://a:80", 11, NULL, false, &err));
    ck_assert_int_eq(err, CB_ERR_INVALID);
    ck_assert_uint_eq(cbh_origins_count(m), 0);

    a = cbh_origins_get(m, buf, 11, NULL, true, &err); /* key_len, no NUL needed */
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(err, CB_OK);
    ck_assert_str_eq(a->key, "http://a:80");
    /* Compact until a call inflates it. */
    ck_assert(!cbh_breaker_inflated(&a->breaker));
    ck_assert_ptr_null(cbh_origin_ext_of(a));
    ck_assert_ptr_eq(cbh_origin_map(a), m);
    ck_assert_uint_eq(refs(a), 1);
    ck_assert_uint_eq(atomic_load(&a->last_used_ms), 1000);

    a2 = get(m, "http://a:80", NULL, false);
    ck_assert_ptr_eq(a, a2);
    ck_assert_uint_eq(refs(a), 2);
    /* The map matches keys exactly: normalising is the URL module's job. */
    b = get(m, "http://A:80", NULL, true);
    ck_assert_ptr_ne(a, b);
    ck_assert_uint_eq(cbh_origins_count(m), 2);
    ck_assert_ptr_null(get(m, "http://a:8", NULL, false));
    ck_assert_ptr_null(get(m, "http://a:800", NULL, false));

    set_now(2000);
    cbh_origins_release(a2);
    ck_assert_uint_eq(refs(a), 1);
    ck_assert_uint_eq(atomic_load(&a->last_used_ms), 2000);
    cbh_origins_release(a);
    cbh_origins_release(b);
    cbh_origins_release(NULL);
    ck_assert_uint_eq(refs(a), 0);
    cbh_origins_free(m);
}
END_TEST

START_TEST(test_bad_arguments)
{
    cbh_origins       *m;
    cb_err             err;
    cbh_origins_config c;

    set_now(0);
    m = new_map(0, NULL);
    ck_assert_ptr_null(cbh_origins_get(NULL, "k", 1, NULL, true, &err));
    ck_assert_int_eq(err, CB_ERR_INVALID);
    ck_assert_ptr_null(cbh_origins_get(m, NULL, 1, NULL, true, &err));
    ck_assert_ptr_null(cbh_origins_get(m, "k", 0, NULL, true, NULL));
    /* Lengths an origin cannot keep (it stores them as unsigned): refused
     * before a byte is read, not truncated into another key's length. */
    ck_assert_ptr_null(cbh_origins_get(m, "k", (size_t)UINT_MAX + 1, NULL, true, &err));
    ck_assert_int_eq(err, CB_ERR_INVALID);
    ck_assert_ptr_null(cbh_origins_get(m, "k", SIZE_MAX, NULL, true, &err));
    ck_assert_int_eq(err, CB_ERR_INVALID);
    ck_assert_uint_eq(cbh_origins_count(m), 0);
    ck_assert_uint_eq(cbh_origins_count(NULL), 0);
    ck_assert_uint_eq(cbh_origins_evict_idle(NULL), 0);
    cbh_origins_foreach(NULL, NULL, NULL);
    cbh_origins_free(NULL);
    cbh_origins_free(m);

    /* Invalid defaults: no map. */
    memset(&c, 0, sizeof(c));
    c.defaults.success_threshold = 5;
    c.defaults.half_open_max = 2;
    ck_assert_ptr_null(cbh_origins_new(&c));
    /* NULL config: all defaults. */
    m = cbh_origins_new(NULL);
    ck_assert_ptr_nonnull(m);
    cbh_origins_free(m);
}
END_TEST

/* ---- Configuration ---------------------------------------------------------- */

static void bogus_listener(cb_breaker *b, const cb_event *ev, void *ud)
{
    (void)b;
    (void)ev;
    (void)ud;
    ck_abort_msg("the caller's listener must be replaced by the map's");
}

static uint64_t bogus_clock(void *ud)
{
    (void)ud;
    ck_abort_msg("the caller's clock must be replaced by the map's");
    return 0;
}

START_TEST(test_create_with_cfg_and_defaults)
{
    cbh_origins_config c;
    cbh_origins       *m;
    cbh_origin        *o;
    cb_config          got, want = { .failure_threshold = 2, .reset_timeout_ms = 500 };
    events             ev;

    memset(&ev, 0, sizeof(ev));
    memset(&c, 0, sizeof(c));
    c.defaults.failure_threshold = 7;
    c.clock = fake_clock;
    c.on_event = on_event;
    c.event_data = &ev;
    set_now(0);
    m = cbh_origins_new(&c);
    ck_assert_ptr_nonnull(m);

    o = get(m, "http://d:80", NULL, true);
    cb_breaker_config(&o->breaker, &got);
    ck_assert_uint_eq(got.failure_threshold, 7);
    cbh_origins_release(o);

    want.listener = bogus_listener;
    want.clock = bogus_clock;
    o = get(m, "http://c:80", &want, true);
    cb_breaker_config(&o->breaker, &got);
    ck_assert_uint_eq(got.failure_threshold, 2);
    ck_assert_uint_eq(got.reset_timeout_ms, 500);
    cb_breaker_trip(&o->breaker); /* must reach on_event, not bogus_listener */
    ck_assert_int_eq(ev.state_changes, 1);
    ck_assert_ptr_eq(ev.last_origin, o);
    cbh_origins_release(o);
    cbh_origins_free(m);
}
END_TEST

START_TEST(test_reconfigure_keeps_state)
{
    cbh_origins *m;
    cbh_origin  *o, *o2;
    cb_config    c1 = { .failure_threshold = 3 }, c2 = { .failure_threshold = 9 }, got;
    cb_metrics   mt;

    set_now(0);
    m = new_map(0, NULL);
    o = get(m, "http://r:80", &c1, true);
    cb_breaker_trip(&o->breaker);
    ck_assert_int_eq(cb_breaker_state(&o->breaker), CB_OPEN);
    cbh_origins_release(o);

    o2 = get(m, "http://r:80", &c2, true);
    ck_assert_ptr_eq(o, o2);
    cb_breaker_config(&o2->breaker, &got);
    ck_assert_uint_eq(got.failure_threshold, 9);
    ck_assert_int_eq(cb_breaker_state(&o2->breaker), CB_OPEN);
    cb_breaker_metrics(&o2->breaker, &mt);
    ck_assert_uint_eq(mt.times_opened, 1);
    cbh_origins_release(o2);

    /* The same numbers (callbacks aside) do not reconfigure; NULL keeps the
     * applied config. */
    c2.listener = bogus_listener;
    o = get(m, "http://r:80", &c2, true);
    cbh_origins_release(o);
    o = get(m, "http://r:80", NULL, true);
    cb_breaker_config(&o->breaker, &got);
    ck_assert_uint_eq(got.failure_threshold, 9);
    ck_assert_int_eq(cb_breaker_state(&o->breaker), CB_OPEN);
    cbh_origins_release(o);
    cbh_origins_free(m);
}
END_TEST

START_TEST(test_invalid_cfg)
{
    cbh_origins *m;
    cbh_origin  *o;
    cb_config    bad = { .success_threshold = 4, .half_open_max = 2 }, got;
    cb_config    good = { .failure_threshold = 4 };
    cb_err       err = CB_OK;

    set_now(0);
    m = new_map(0, NULL);
    ck_assert_ptr_null(cbh_origins_get(m, "http://i:80", 11, &bad, true, &err));
    ck_assert_int_eq(err, CB_ERR_INVALID);
    ck_assert_uint_eq(cbh_origins_count(m), 0);

    o = get(m, "http://i:80", &good, true);
    cbh_origins_release(o);
    err = CB_OK;
    ck_assert_ptr_null(cbh_origins_get(m, "http://i:80", 11, &bad, true, &err));
    ck_assert_int_eq(err, CB_ERR_INVALID);
    ck_assert_uint_eq(refs(o), 0); /* the failed get kept no reference */
    cb_breaker_config(&o->breaker, &got);
    ck_assert_uint_eq(got.failure_threshold, 4);
    cbh_origins_free(m);
}
END_TEST

/* ---- Events ------------------------------------------------------------------ */

START_TEST(test_events_name_their_origin)
{
    events       ev;
    cbh_origins *m;
    cbh_origin  *a, *b;
    cb_permit    p;

    memset(&ev, 0, sizeof(ev));
    set_now(0);
    m = new_map(0, &ev);
    a = get(m, "http://a:80", NULL, true);
    b = get(m, "http://b:80", NULL, true);
    cb_breaker_trip(&b->breaker);
    ck_assert_ptr_eq(ev.last_origin, b);
    ck_assert_str_eq(ev.last_key, "http://b:80");
    ck_assert_int_eq(ev.last.type, CB_EVENT_STATE_CHANGE);
    ck_assert_int_eq(ev.last.to, CB_OPEN);
    ck_assert_uint_eq(ev.count_seen, 2); /* called back into the map */

    ck_assert_int_eq(cb_breaker_acquire(&a->breaker, &p), CB_OK);
    cb_breaker_record(&a->breaker, &p, false);
    ck_assert_ptr_eq(ev.last_origin, a);
    ck_assert_int_eq(ev.last.type, CB_EVENT_FAILURE);
    ck_assert_int_eq(cb_breaker_state(&a->breaker), CB_CLOSED);
    cbh_origins_release(a);
    cbh_origins_release(b);
    cbh_origins_free(m);
}
END_TEST

/* ---- Eviction rules ----------------------------------------------------------- */

START_TEST(test_eviction_rules)
{
    cbh_origins *m;
    cbh_origin  *idle, *open, *held, *pinned, *fresh;

    set_now(10000);
    m = new_map(1000, NULL);
    idle = get(m, "http://idle:80", NULL, true);
    open = get(m, "http://open:80", NULL, true);
    held = get(m, "http://held:80", NULL, true);
    pinned = get(m, "http://pinned:80", NULL, true);
    cb_breaker_trip(&open->breaker);
    cbh_origins_pin(pinned); /* while holding a reference */
    cbh_origins_pin(pinned); /* twice is fine */
    cbh_origins_release(idle);
    cbh_origins_release(open);
    cbh_origins_release(pinned);

    /* Not idle long enough yet. */
    set_now(10999);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 0);
    ck_assert_uint_eq(cbh_origins_count(m), 4);

    /* The get that creates "fresh" sweeps the idle ones out itself, the
     * OPEN one included: its reset timeout (30 s) has not even passed, but
     * nobody called it for idle_ms. */
    set_now(11000);
    fresh = get(m, "http://fresh:80", NULL, true);
    cbh_origins_release(fresh);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 0);
    ck_assert_uint_eq(cbh_origins_count(m), 3);
    ck_assert_ptr_null(get(m, "http://idle:80", NULL, false));
    ck_assert_ptr_null(get(m, "http://open:80", NULL, false));

    /* Held and pinned stay, whatever their age. */
    set_now(30000);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 1); /* fresh */
    ck_assert_uint_eq(cbh_origins_count(m), 2);

    /* Once released it goes, idle_ms after the release. */
    cbh_origins_release(held);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 0); /* just used */
    set_now(31000);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 1);
    ck_assert_uint_eq(cbh_origins_count(m), 1);
    set_now(1000000);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 0);
    pinned = get(m, "http://pinned:80", NULL, false);
    ck_assert_ptr_nonnull(pinned);
    cbh_origins_release(pinned);
    cbh_origins_pin(NULL);
    cbh_origins_free(m);
}
END_TEST

START_TEST(test_open_and_half_open_evicted)
{
    events       ev;
    cbh_origins *m;
    cbh_origin  *o;
    cb_config    c = { .reset_timeout_ms = 100 };
    cb_metrics   mt;

    memset(&ev, 0, sizeof(ev));
    set_now(0);
    m = new_map(1000, &ev);
    o = get(m, "http://h:80", &c, true);
    cb_breaker_trip(&o->breaker);
    cbh_origins_release(o);
    o = get(m, "http://o:80", NULL, true);
    cb_breaker_trip(&o->breaker);
    cbh_origins_release(o);
    ev.state_changes = 0;
    /* h is HALF_OPEN by now (had anyone looked), o still OPEN: both go.
     * Eviction reads no breaker, so it raises no event. */
    set_now(5000);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 2);
    ck_assert_int_eq(ev.state_changes, 0);
    ck_assert_uint_eq(cbh_origins_count(m), 0);

    /* What a later call sees: a fresh CLOSED breaker, zeroed counts. */
    o = get(m, "http://o:80", NULL, true);
    ck_assert_int_eq(cb_breaker_state(&o->breaker), CB_CLOSED);
    cb_breaker_metrics(&o->breaker, &mt);
    ck_assert_uint_eq(mt.times_opened, 0);
    ck_assert_uint_eq(mt.total_requests, 0);
    cbh_origins_release(o);
    cbh_origins_free(m);
}
END_TEST

/* Issue 9, point 8: 10k dead hosts, each failed once (threshold 1: OPEN),
 * used to stay forever at ~3.7 KB each. After idle_ms they go, driven by
 * nothing but ordinary gets of another origin, or by evict_idle. */
static void fail_once(cbh_origins *m, unsigned from, unsigned to)
{
    char     k[64];
    unsigned i;

    for (i = from; i < to; i++) {
        cbh_origin *o;
        cb_permit   p;

        snprintf(k, sizeof(k), "http://dead-%u.example:80", i);
        o = get(m, k, NULL, true);
        ck_assert_int_eq(cb_breaker_acquire(&o->breaker, &p), CB_OK);
        cb_breaker_record(&o->breaker, &p, false);
        ck_assert_int_eq(cb_breaker_state(&o->breaker), CB_OPEN);
        cbh_origins_release(o);
    }
}

START_TEST(test_dead_hosts_evicted)
{
    cbh_origins_config c;
    cbh_origins       *m;
    cbh_origin        *o;
    unsigned           i;

    memset(&c, 0, sizeof(c));
    c.idle_ms = 60000;
    c.clock = fake_clock;
    c.defaults.failure_threshold = 1;
    set_now(1000);
    ck_assert_ptr_nonnull(m = cbh_origins_new(&c));
    fail_once(m, 0, 10000);
    ck_assert_uint_eq(cbh_origins_count(m), 10000);

    /* Past reset_timeout_ms (30 s) but not idle_ms: all stay. */
    set_now(1000 + 59999);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 0);
    ck_assert_uint_eq(cbh_origins_count(m), 10000);

    /* Past idle_ms: gets of one live origin sweep them all out. */
    set_now(1000 + 60000 + 10000);
    for (i = 0; i < 3000; i++) {
        o = get(m, "http://live.example:80", NULL, true);
        cbh_origins_release(o);
    }
    ck_assert_uint_eq(cbh_origins_count(m), 1);

    /* The same through evict_idle. */
    fail_once(m, 0, 10000);
    set_now(1000 + 200000);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 10001);
    ck_assert_uint_eq(cbh_origins_count(m), 0);
    cbh_origins_free(m);
}
END_TEST

START_TEST(test_idle_measured_from_release)
{
    cbh_origins *m;
    cbh_origin  *o;

    set_now(0);
    m = new_map(1000, NULL);
    o = get(m, "http://slow:80", NULL, true);
    set_now(5000); /* a long call */
    cbh_origins_release(o);
    set_now(5500);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 0);
    set_now(6000);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 1);
    cbh_origins_free(m);
}
END_TEST

/* ---- Bounds with many origins ------------------------------------------------- */

static void key_of(char *buf, size_t n, unsigned i)
{
    snprintf(buf, n, "http://host-%u.example:80", i);
}

static void make_origins(cbh_origins *m, unsigned from, unsigned to)
{
    char     k[64];
    unsigned i;

    for (i = from; i < to; i++) {
        cbh_origin *o;

        key_of(k, sizeof(k), i);
        o = get(m, k, NULL, true);
        ck_assert_ptr_nonnull(o);
        cbh_origins_release(o);
    }
}

START_TEST(test_100k_origins_evicted_by_new_ones)
{
    cbh_origins *m;

    set_now(1);
    m = new_map(1000, NULL);
    make_origins(m, 0, 100000);
    ck_assert_uint_eq(cbh_origins_count(m), 100000);
    /* All idle now; the next 100k new hosts pay for sweeping them out. */
    set_now(5000);
    make_origins(m, 100000, 200000);
    ck_assert_uint_eq(cbh_origins_count(m), 100000);
    set_now(10000);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 100000);
    ck_assert_uint_eq(cbh_origins_count(m), 0);
    cbh_origins_free(m);
}
END_TEST

START_TEST(test_growth_stays_bounded)
{
    /* One new host per millisecond, idle_ms 1000: about 1000 live origins.
     * The map must stay within a small multiple of that for 200k hosts. */
    cbh_origins *m;
    char         k[64];
    unsigned     i;
    size_t       max = 0;

    set_now(0);
    m = new_map(1000, NULL);
    for (i = 0; i < 200000; i++) {
        cbh_origin *o;

        set_now(i);
        key_of(k, sizeof(k), i);
        o = get(m, k, NULL, true);
        cbh_origins_release(o);
        if (i % 1000 == 0) {
            size_t n = cbh_origins_count(m);

            max = n > max ? n : max;
        }
    }
    ck_assert_msg(max <= 2000, "map grew to %zu", max);
    cbh_origins_free(m);
}
END_TEST

START_TEST(test_gets_sweep_without_creations)
{
    /* No new hosts at all: repeated gets of one origin still sweep the idle
     * ones out, 64 entries every 4096 gets. */
    cbh_origins *m;
    cbh_origin  *o;
    unsigned     i;

    set_now(0);
    m = new_map(1000000, NULL);
    make_origins(m, 0, 1000);
    set_now(2000000);
    o = get(m, "http://keep:80", NULL, true);
    cbh_origins_release(o);
    for (i = 0; i < 4096 * 40; i++) {
        o = get(m, "http://keep:80", NULL, false);
        cbh_origins_release(o);
    }
    ck_assert_uint_eq(cbh_origins_count(m), 1);
    cbh_origins_free(m);
}
END_TEST

START_TEST(test_time_triggers_sweep)
{
    /* Every idle_ms / 8 a get examines a batch. */
    cbh_origins *m;
    cbh_origin  *o;
    unsigned     i;

    set_now(0);
    m = new_map(800, NULL);
    make_origins(m, 0, 50);
    o = get(m, "http://keep:80", NULL, true);
    cbh_origins_release(o);
    for (i = 1; i <= 20; i++) {
        set_now(1000 + i * 100);
        o = get(m, "http://keep:80", NULL, false);
        cbh_origins_release(o);
    }
    ck_assert_uint_eq(cbh_origins_count(m), 1);
    cbh_origins_free(m);
}
END_TEST

/* ---- The cap (max_origins) ----------------------------------------------- */

/* Creates origin i, releases it, and checks the cap after every step. */
static void make_capped(cbh_origins *m, unsigned i, size_t max)
{
    char        k[64];
    cbh_origin *o;

    key_of(k, sizeof(k), i);
    o = get(m, k, NULL, true);
    ck_assert_msg(o != NULL, "origin %u refused", i);
    ck_assert_uint_le(cbh_origins_count(m), max);
    cbh_origins_release(o);
    ck_assert_uint_le(cbh_origins_count(m), max);
}

START_TEST(test_cap_holds)
{
    /* Three timings: a clock that stands still (no origin is ever idle),
     * one that runs fast enough for idle eviction to join in, and one that
     * jumps backwards. The count never exceeds the cap, and the most
     * recently used origins are the ones left. */
    static const int steps[] = { 0, 1, -7 };
    size_t           t;

    for (t = 0; t < sizeof(steps) / sizeof(steps[0]); t++) {
        cbh_origins *m;
        cbh_origin  *hot;
        unsigned     i;

        set_now(1000000);
        m = new_map_max(50, 100, NULL);
        for (i = 0; i < 1000; i++) {
            atomic_fetch_add(&fake_now, (uint64_t)(int64_t)steps[t]);
            make_capped(m, i, 100);
            /* One origin used all the time survives whatever comes. */
            if (steps[t] == 0) {
                hot = get(m, "http://hot:80", NULL, true);
                cbh_origins_release(hot);
                ck_assert_uint_le(cbh_origins_count(m), 100);
            }
        }
        if (steps[t] == 0) {
            ck_assert_uint_eq(cbh_origins_count(m), 100);
            ck_assert_ptr_nonnull(hot = get(m, "http://hot:80", NULL, false));
            cbh_origins_release(hot);
            /* The 99 others are the last 99 created. */
            for (i = 901; i < 1000; i++) {
                char        k[64];
                cbh_origin *o;

                key_of(k, sizeof(k), i);
                ck_assert_msg((o = get(m, k, NULL, false)) != NULL, "%s evicted", k);
                cbh_origins_release(o);
            }
        } else if (steps[t] < 0) {
            /* Time ran backwards: nothing looks idle, the cap alone rules. */
            ck_assert_uint_eq(cbh_origins_count(m), 100);
            for (i = 900; i < 1000; i++) {
                char        k[64];
                cbh_origin *o;

                key_of(k, sizeof(k), i);
                ck_assert_msg((o = get(m, k, NULL, false)) != NULL, "%s evicted", k);
                cbh_origins_release(o);
            }
        } else {
            /* 1 ms per origin, idle after 50: idle eviction keeps it near
             * 50 (plus what the 4-per-get sweep lags behind). */
            ck_assert_uint_le(cbh_origins_count(m), 100);
            ck_assert_uint_ge(cbh_origins_count(m), 40);
        }
        cbh_origins_free(m);
    }
}
END_TEST

START_TEST(test_cap_lru_order)
{
    /* Use, not creation, decides: a is used again after b and c, so b goes
     * first. */
    cbh_origins *m;
    cbh_origin  *o, *x;

    set_now(0);
    m = new_map_max(1000000, 3, NULL);
    o = get(m, "http://a:80", NULL, true);
    cbh_origins_release(o);
    o = get(m, "http://b:80", NULL, true);
    cbh_origins_release(o);
    o = get(m, "http://c:80", NULL, true);
    cbh_origins_release(o);
    o = get(m, "http://a:80", NULL, false);
    cbh_origins_release(o);
    o = get(m, "http://d:80", NULL, true);
    cbh_origins_release(o);
    ck_assert_ptr_null(get(m, "http://b:80", NULL, false));
    ck_assert_uint_eq(cbh_origins_count(m), 3);
    cbh_origins_free(m);

    /* A held origin drifts to the tail (x, got first and held through):
     * creations step over it, moving it to the front, and evict the next
     * ones instead. */
    m = new_map_max(1000000, 3, NULL);
    x = get(m, "http://x:80", NULL, true);
    o = get(m, "http://y:80", NULL, true);
    cbh_origins_release(o);
    o = get(m, "http://z:80", NULL, true);
    cbh_origins_release(o);
    o = get(m, "http://w:80", NULL, true); /* evicts y */
    cbh_origins_release(o);
    o = get(m, "http://v:80", NULL, true); /* evicts z */
    cbh_origins_release(o);
    ck_assert_ptr_null(get(m, "http://y:80", NULL, false));
    ck_assert_ptr_null(get(m, "http://z:80", NULL, false));
    ck_assert_uint_eq(refs(x), 1);
    cbh_origins_release(x);
    o = get(m, "http://u:80", NULL, true); /* x was moved to the front: w goes */
    cbh_origins_release(o);
    ck_assert_ptr_null(get(m, "http://w:80", NULL, false));
    ck_assert_ptr_nonnull(o = get(m, "http://x:80", NULL, false));
    cbh_origins_release(o);
    ck_assert_uint_eq(cbh_origins_count(m), 3);
    cbh_origins_free(m);
}
END_TEST

START_TEST(test_cap_held_and_pinned)
{
    cbh_origins *m;
    cbh_origin  *a, *b, *p, *d, *e, *x;
    cb_err       err = CB_OK;

    set_now(0);
    m = new_map_max(1000, 3, NULL);
    a = get(m, "http://a:80", NULL, true);
    b = get(m, "http://b:80", NULL, true);
    p = get(m, "http://p:80", NULL, true);
    cbh_origins_pin(p);
    cbh_origins_release(p);

    /* Two held, one pinned: no room, and the count stays at the cap. */
    ck_assert_ptr_null(cbh_origins_get(m, "http://d:80", 11, NULL, true, &err));
    ck_assert_int_eq(err, CB_ERR_NOMEM);
    ck_assert_uint_eq(cbh_origins_count(m), 3);
    /* Lookups of existing ones still work; pinned never goes, idle or not. */
    set_now(5000);
    ck_assert_ptr_nonnull(x = get(m, "http://p:80", NULL, false));
    cbh_origins_release(x);
    ck_assert_ptr_null(cbh_origins_get(m, "http://d:80", 11, NULL, true, &err));
    ck_assert_int_eq(err, CB_ERR_NOMEM);

    /* Releasing one makes room: it is the one evicted. */
    cbh_origins_release(a);
    d = get(m, "http://d:80", NULL, true);
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_null(get(m, "http://a:80", NULL, false));
    ck_assert_uint_eq(cbh_origins_count(m), 3);
    ck_assert_ptr_null(cbh_origins_get(m, "http://e:80", 11, NULL, true, &err));
    ck_assert_int_eq(err, CB_ERR_NOMEM);
    cbh_origins_release(b);
    cbh_origins_release(d);
    e = get(m, "http://e:80", NULL, true); /* b was got before d */
    ck_assert_ptr_nonnull(e);
    cbh_origins_release(e);
    ck_assert_ptr_null(get(m, "http://b:80", NULL, false));
    ck_assert_ptr_nonnull(x = get(m, "http://d:80", NULL, false));
    cbh_origins_release(x);
    ck_assert_uint_eq(cbh_origins_count(m), 3);

    /* Pinned fill the map: nothing else fits. */
    ck_assert_ptr_nonnull(x = get(m, "http://d:80", NULL, false));
    cbh_origins_pin(x);
    cbh_origins_release(x);
    ck_assert_ptr_nonnull(x = get(m, "http://e:80", NULL, false));
    cbh_origins_pin(x);
    cbh_origins_release(x);
    ck_assert_ptr_null(cbh_origins_get(m, "http://f:80", 11, NULL, true, &err));
    ck_assert_int_eq(err, CB_ERR_NOMEM);
    set_now(100000000);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 0);
    ck_assert_uint_eq(cbh_origins_count(m), 3);
    cbh_origins_free(m);
}
END_TEST

START_TEST(test_cap_limits)
{
    /* max_origins at 1, SIZE_MAX - 1 and SIZE_MAX (no limit: nothing in
     * the map adds to or multiplies it), and 0 (the default, 100000). */
    static const size_t maxes[] = { 1, SIZE_MAX - 1, SIZE_MAX };
    cbh_origins        *m;
    cbh_origin         *a, *b;
    cb_err              err;
    size_t              i;
    char                k[64];

    set_now(0);
    m = new_map_max(1000, 1, NULL);
    a = get(m, "http://a:80", NULL, true);
    ck_assert_ptr_null(cbh_origins_get(m, "http://b:80", 11, NULL, true, &err));
    ck_assert_int_eq(err, CB_ERR_NOMEM);
    cbh_origins_release(a);
    b = get(m, "http://b:80", NULL, true);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(cbh_origins_count(m), 1);
    ck_assert_ptr_null(get(m, "http://a:80", NULL, false));
    cbh_origins_release(b);
    cbh_origins_free(m);

    for (i = 1; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
        m = new_map_max(1000, maxes[i], NULL);
        make_origins(m, 0, 5000);
        ck_assert_uint_eq(cbh_origins_count(m), 5000);
        set_now(2000);
        ck_assert_uint_eq(cbh_origins_evict_idle(m), 5000);
        set_now(0);
        cbh_origins_free(m);
    }
    (void)maxes[0];

    /* The default: 100000 origins at one instant, then one more evicts
     * the oldest. */
    m = new_map_max(1000, 0, NULL);
    make_origins(m, 0, 100000);
    ck_assert_uint_eq(cbh_origins_count(m), 100000);
    make_origins(m, 100000, 100001);
    ck_assert_uint_eq(cbh_origins_count(m), 100000);
    key_of(k, sizeof(k), 0);
    ck_assert_ptr_null(get(m, k, NULL, false));
    key_of(k, sizeof(k), 1);
    ck_assert_ptr_nonnull(a = get(m, k, NULL, false));
    cbh_origins_release(a);
    cbh_origins_free(m);
}
END_TEST

/* ---- foreach ----------------------------------------------------------------- */

typedef struct visit {
    cbh_origins *m;
    int          n;
} visit;

static void count_and_call_back(cbh_origin *o, void *ud)
{
    visit      *v = ud;
    cbh_origin *again;

    ck_assert_uint_ge(refs(o), 1); /* held during the visit */
    again = get(v->m, o->key, NULL, false);
    ck_assert_ptr_eq(again, o);
    cbh_origins_release(again);
    v->n++;
}

START_TEST(test_foreach)
{
    cbh_origins *m;
    visit        v;
    cbh_origin  *o;

    set_now(0);
    m = new_map(1000, NULL);
    make_origins(m, 0, 100);
    v.m = m;
    v.n = 0;
    cbh_origins_foreach(m, count_and_call_back, &v);
    ck_assert_int_eq(v.n, 100);
    o = get(m, "http://host-5.example:80", NULL, false);
    ck_assert_uint_eq(refs(o), 1);
    cbh_origins_release(o);
    cbh_origins_foreach(m, NULL, NULL);
    cbh_origins_free(m);
}
END_TEST

/* ---- Allocation failures ---------------------------------------------------- */

static int fail_after = -1; /* allocations left before failing; -1 = never */

static bool alloc_ok(void)
{
    if (fail_after < 0)
        return true;
    if (fail_after == 0)
        return false;
    fail_after--;
    return true;
}

static void *t_malloc(size_t n) { return alloc_ok() ? malloc(n) : NULL; }
static void *t_calloc(size_t n, size_t s) { return alloc_ok() ? calloc(n, s) : NULL; }
static void *t_realloc(void *p, size_t n) { return alloc_ok() ? realloc(p, n) : NULL; }

static void count_only(cbh_origin *o, void *ud)
{
    (void)o;
    (*(int *)ud)++;
}

/* foreach without memory for its snapshot visits every origin under the
 * lock; an origin made with numbers of its own whose config copy cannot be
 * allocated is not made. */
START_TEST(test_foreach_and_create_oom)
{
    cb_config    own = { .failure_threshold = 9 };
    cbh_origins *m;
    int          n = 0;
    cb_err       err = CB_OK;

    tu_alloc_install();
    set_now(0);
    m = new_map(1000, NULL);
    make_origins(m, 0, 10);
    tu_alloc_fail_at(1);
    cbh_origins_foreach(m, count_only, &n);
    ck_assert(tu_alloc_disarm());
    ck_assert_int_eq(n, 10);
    tu_alloc_fail_at(2); /* the origin, then its own config */
    ck_assert_ptr_null(cbh_origins_get(m, "http://own:80", 12, &own, true, &err));
    ck_assert(tu_alloc_disarm());
    ck_assert_int_eq(err, CB_ERR_NOMEM);
    ck_assert_uint_eq(cbh_origins_count(m), 10);
    cbh_origins_free(m);
    tu_alloc_uninstall();
}
END_TEST

START_TEST(test_oom)
{
    static const cb_allocator a = { t_malloc, t_calloc, t_realloc, free };
    int                       n;
    bool                      succeeded = false;

    ck_assert_int_eq(cb_set_allocator(&a), CB_OK);
    set_now(0);
    /* Every allocation of creating a map and two origins fails in turn:
     * each step either works or reports CB_ERR_NOMEM, never crashes or
     * leaks (ASan checks the latter). */
    for (n = 0; n < 40 && !succeeded; n++) {
        cbh_origins *m;
        cbh_origin  *o1, *o2;
        cb_err       e1 = CB_OK, e2 = CB_OK;

        fail_after = n;
        m = cbh_origins_new(NULL);
        if (!m)
            continue;
        o1 = cbh_origins_get(m, "http://a:80", 11, NULL, true, &e1);
        o2 = cbh_origins_get(m, "http://b:80", 11, NULL, true, &e2);
        ck_assert(o1 || e1 == CB_ERR_NOMEM);
        ck_assert(o2 || e2 == CB_ERR_NOMEM);
        ck_assert_uint_eq(cbh_origins_count(m), (size_t)(o1 != NULL) + (o2 != NULL));
        succeeded = o1 && o2;
        cbh_origins_release(o1);
        cbh_origins_release(o2);
        fail_after = -1;
        cbh_origins_free(m);
    }
    fail_after = -1;
    ck_assert(succeeded);
    cb_set_allocator(NULL);
}
END_TEST

/* Inflation, allocation by allocation: the origin's part first, then the
 * breaker's. A failure at either leaves the origin compact enough to be
 * freed and inflated later; a compact breaker's acquire reports the
 * failure instead of admitting a call it cannot count. */
START_TEST(test_inflate_oom)
{
    cbh_origins *m;
    cbh_origin  *o;
    cb_permit    p;

    tu_alloc_install();
    set_now(0);
    m = new_map(0, NULL);
    o = get(m, "http://a:80", NULL, true);
    ck_assert_ptr_nonnull(o);

    tu_alloc_fail_at(1); /* the origin's budget and counters */
    ck_assert_int_eq(cbh_origins_inflate(o), CB_ERR_NOMEM);
    ck_assert(tu_alloc_disarm());
    ck_assert_ptr_null(cbh_origin_ext_of(o));
    ck_assert(!cbh_breaker_inflated(&o->breaker));

    tu_alloc_fail_at(2); /* the breaker's stripes and window */
    ck_assert_int_eq(cbh_origins_inflate(o), CB_ERR_NOMEM);
    ck_assert(tu_alloc_disarm());
    ck_assert_ptr_nonnull(cbh_origin_ext_of(o));
    ck_assert(!cbh_breaker_inflated(&o->breaker));
    tu_alloc_fail_at(1);
    ck_assert_int_eq(cb_breaker_acquire(&o->breaker, &p), CB_ERR_NOMEM);
    ck_assert(tu_alloc_disarm());
    ck_assert_int_eq(cb_breaker_state(&o->breaker), CB_CLOSED);

    ck_assert_int_eq(cbh_origins_inflate(o), CB_OK);
    ck_assert(cbh_breaker_inflated(&o->breaker));
    ck_assert_int_eq(cb_breaker_acquire(&o->breaker, &p), CB_OK);
    cb_breaker_record(&o->breaker, &p, true);
    cbh_origins_release(o);
    cbh_origins_free(m);
    tu_alloc_uninstall(); /* asserts that nothing is left */
}
END_TEST

/* ---- Threads ----------------------------------------------------------------- */

#define STRESS_KEYS 64
#define STRESS_ITERS 20000

typedef struct stress {
    cbh_origins *m;
    unsigned     seed;
    int          id;
} stress;

static void *stress_worker(void *arg)
{
    stress  *s = arg;
    char     k[64];
    unsigned x = s->seed;
    int      i;

    for (i = 0; i < STRESS_ITERS; i++) {
        cbh_origin *o;
        cb_config   c = { .failure_threshold = 2 + (x >> 8) % 3 };

        x = x * 1103515245u + 12345u;
        atomic_fetch_add(&fake_now, 1);
        snprintf(k, sizeof(k), "http://s%u:80", (x >> 16) % STRESS_KEYS);
        o = cbh_origins_get(s->m, k, strlen(k), (x & 4) ? &c : NULL, (x & 3) != 0, NULL);
        if (o) {
            cb_permit p;

            if ((x & 8) && cbh_origins_inflate(o) == CB_OK) {
                if (cb_breaker_acquire(&o->breaker, &p) == CB_OK)
                    cb_breaker_record(&o->breaker, &p, (x & 0x30) != 0);
                atomic_fetch_add_explicit(&cbh_origin_ext_of(o)->attempts, 1, memory_order_relaxed);
            }
            if ((x & 0xff) == 7)
                cb_breaker_reset(&o->breaker);
            cbh_origins_release(o);
        }
        if (s->id == 0 && i % 500 == 0)
            cbh_origins_evict_idle(s->m);
        if (s->id == 1 && i % 700 == 0)
            (void)cbh_origins_count(s->m);
    }
    return NULL;
}

static void check_unreferenced(cbh_origin *o, void *ud)
{
    (void)ud;
    /* Only the foreach's own reference. */
    ck_assert_uint_eq(refs(o), 1);
}

/* ---- Deflation ------------------------------------------------------------ */

#define DEFLATE_MS (CBH_BUDGET_SLOTS * 1000u) /* the default window is shorter */

/* One call through o (held): inflate, permit, outcome, and the counters a
 * request counts. */
static void call_once(cbh_origin *o, bool success)
{
    cb_permit p;

    ck_assert_int_eq(cbh_origins_inflate(o), CB_OK);
    ck_assert_int_eq(cb_breaker_acquire(&o->breaker, &p), CB_OK);
    cb_breaker_record(&o->breaker, &p, success);
    cbh_budget_note_request(&cbh_origin_ext_of(o)->budget, atomic_load(&fake_now));
    atomic_fetch_add(&cbh_origin_ext_of(o)->attempts, 1);
    atomic_fetch_add(&cbh_origin_ext_of(o)->cache_misses, 1);
}

/* Everything an origin reports, for before/after comparisons. */
typedef struct origin_view {
    cb_metrics         b;
    api_origin_metrics c;
} origin_view;

static void view(cbh_origin *o, origin_view *v)
{
    memset(v, 0, sizeof(*v));
    cb_breaker_metrics(&o->breaker, &v->b);
    cbh_origin_counters(o, &v->c);
}

static void assert_same_view(const origin_view *a, const origin_view *b)
{
    ck_assert_int_eq(a->b.state, b->b.state);
    ck_assert_uint_eq(a->b.total_requests, b->b.total_requests);
    ck_assert_uint_eq(a->b.successes, b->b.successes);
    ck_assert_uint_eq(a->b.failures, b->b.failures);
    ck_assert_uint_eq(a->b.rejected, b->b.rejected);
    ck_assert_uint_eq(a->b.consecutive_successes, b->b.consecutive_successes);
    ck_assert_uint_eq(a->b.last_failure_ms, b->b.last_failure_ms);
    ck_assert_uint_eq(a->b.last_success_ms, b->b.last_success_ms);
    ck_assert_uint_eq(a->b.times_opened, b->b.times_opened);
    ck_assert_uint_eq(a->b.ignored, b->b.ignored);
    ck_assert_uint_eq(a->b.current_open_ms, b->b.current_open_ms);
    ck_assert_uint_eq(a->b.state_since_ms, b->b.state_since_ms);
    ck_assert_uint_eq(a->c.attempts, b->c.attempts);
    ck_assert_uint_eq(a->c.cache_misses, b->c.cache_misses);
    ck_assert_uint_eq(a->c.cache_hits, b->c.cache_hits);
}

/* An origin unused for the deflation time gives back its inflated parts and
 * reports, and later counts on, exactly what it had. */
START_TEST(test_deflate_keeps_counts)
{
    cbh_origins *m;
    cbh_origin  *o, *other;
    origin_view  before, after;
    cb_permit    p;
    int          i;

    set_now(1000000);
    m = new_map(3600000, NULL);
    o = get(m, "http://a:80", NULL, true);
    for (i = 0; i < 3; i++)
        call_once(o, true);
    set_now(1000500);
    call_once(o, false);
    /* An earlier trip and its rejection count too. */
    cb_breaker_trip(&o->breaker);
    ck_assert_int_eq(cb_breaker_acquire(&o->breaker, &p), CB_ERR_CIRCUIT_OPEN);
    cb_breaker_reset(&o->breaker);
    call_once(o, true);
    call_once(o, true);
    atomic_fetch_add(&cbh_origin_ext_of(o)->cache_hits, 5);
    cbh_origins_release(o);
    view(o, &before);
    ck_assert_uint_eq(before.b.successes, 2); /* the reset cleared the first ones */
    ck_assert_uint_eq(before.c.attempts, 6);

    /* One millisecond short: a get's sweep leaves it as it is. */
    set_now(1000500 + DEFLATE_MS - 1);
    other = get(m, "http://b:80", NULL, true);
    cbh_origins_release(other);
    ck_assert(cbh_breaker_inflated(&o->breaker));
    ck_assert_ptr_nonnull(cbh_origin_ext_of(o));

    /* Then a get deflates it: the origin behind the cursor. */
    set_now(1000500 + DEFLATE_MS);
    other = get(m, "http://b:80", NULL, true);
    cbh_origins_release(other);
    ck_assert(!cbh_breaker_inflated(&o->breaker));
    ck_assert_ptr_null(cbh_origin_ext_of(o));
    view(o, &after);
    assert_same_view(&before, &after);
    ck_assert_uint_eq(after.c.cache_hits, 5);

    /* Its next call counts on from there. */
    o = get(m, "http://a:80", NULL, false);
    ck_assert_ptr_nonnull(o);
    call_once(o, true);
    view(o, &after);
    ck_assert_uint_eq(after.b.successes, before.b.successes + 1);
    ck_assert_uint_eq(after.b.total_requests, before.b.total_requests + 1);
    ck_assert_uint_eq(after.b.consecutive_successes, before.b.consecutive_successes + 1);
    ck_assert_uint_eq(after.c.attempts, before.c.attempts + 1);
    ck_assert_uint_eq(after.c.cache_hits, 5);
    /* A run of failures starts afresh and trips it at the threshold. */
    for (i = 0; i < 5; i++)
        call_once(o, false);
    view(o, &after);
    ck_assert_int_eq(after.b.state, CB_OPEN);
    ck_assert_uint_eq(after.b.failures, before.b.failures + 5);
    ck_assert_uint_eq(after.b.times_opened, before.b.times_opened + 1);
    cbh_origins_release(o);
    cbh_origins_free(m);
}
END_TEST

/* What deflation must not lose keeps an origin inflated: a run of
 * failures, an OPEN breaker, a count window, a caller holding it, counts
 * too large for the carry. */
START_TEST(test_deflate_refused)
{
    cb_config    counted = { .window_calls = 10, .failure_rate_threshold = 50 };
    cbh_origins *m;
    cbh_origin  *run, *open, *count, *held, *huge, *plain;
    origin_view  before, after;

    set_now(5000);
    m = new_map(3600000, NULL);
    run = get(m, "http://run:80", NULL, true);
    call_once(run, false);
    cbh_origins_release(run);
    open = get(m, "http://open:80", NULL, true);
    call_once(open, true);
    cb_breaker_trip(&open->breaker);
    cbh_origins_release(open);
    count = get(m, "http://count:80", &counted, true);
    call_once(count, true);
    cbh_origins_release(count);
    held = get(m, "http://held:80", NULL, true);
    call_once(held, true);
    huge = get(m, "http://huge:80", NULL, true);
    call_once(huge, true);
#define HUGE_(field, json, prom, help) atomic_store(&cbh_origin_ext_of(huge)->field, UINT64_MAX);
    API_RETRY_COUNTERS(HUGE_)
    API_CACHE_COUNTERS(HUGE_)
#undef HUGE_
    view(huge, &before);
    cbh_origins_release(huge);
    plain = get(m, "http://plain:80", NULL, true);
    call_once(plain, true);
    cbh_origins_release(plain);

    set_now(5000 + DEFLATE_MS);
    (void)cbh_origins_evict_idle(m);
    ck_assert(cbh_breaker_inflated(&run->breaker));
    view(run, &after);
    ck_assert_uint_eq(after.b.consecutive_failures, 1);
    ck_assert(cbh_breaker_inflated(&open->breaker));
    ck_assert(cbh_breaker_inflated(&count->breaker));
    ck_assert(cbh_breaker_inflated(&held->breaker));
    ck_assert(cbh_breaker_inflated(&huge->breaker));
    view(huge, &after);
    assert_same_view(&before, &after);
    ck_assert_uint_eq(after.c.retries_denied, UINT64_MAX);
    ck_assert(!cbh_breaker_inflated(&plain->breaker));

    /* Released, the held one goes once it has been idle long enough. */
    cbh_origins_release(held);
    set_now(5000 + 2 * DEFLATE_MS);
    (void)cbh_origins_evict_idle(m);
    ck_assert(!cbh_breaker_inflated(&held->breaker));
    cbh_origins_free(m);
}
END_TEST

/* A reset of a deflated breaker clears its counts and keeps the origin's. */
START_TEST(test_deflated_reset)
{
    cbh_origins *m;
    cbh_origin  *o;
    origin_view  v;

    set_now(7000);
    m = new_map(3600000, NULL);
    o = get(m, "http://a:80", NULL, true);
    call_once(o, true);
    call_once(o, false);
    call_once(o, true);
    cbh_origins_release(o);
    set_now(7000 + DEFLATE_MS);
    (void)cbh_origins_evict_idle(m);
    ck_assert(!cbh_breaker_inflated(&o->breaker));
    cb_breaker_reset(&o->breaker);
    view(o, &v);
    ck_assert_uint_eq(v.b.total_requests, 0);
    ck_assert_uint_eq(v.b.successes, 0);
    ck_assert_uint_eq(v.b.failures, 0);
    ck_assert_uint_eq(v.b.last_success_ms, 0);
    ck_assert_uint_eq(v.c.attempts, 3);
    ck_assert_uint_eq(v.c.cache_misses, 3);
    /* And the next inflate starts from the cleared counts. */
    o = get(m, "http://a:80", NULL, false);
    call_once(o, true);
    view(o, &v);
    ck_assert_uint_eq(v.b.successes, 1);
    ck_assert_uint_eq(v.b.total_requests, 1);
    ck_assert_uint_eq(v.c.attempts, 4);
    cbh_origins_release(o);
    cbh_origins_free(m);
}
END_TEST

/* Threads calling a few origins while others deflate them: every call is
 * counted once (run under TSan in CI). */
typedef struct deflate_arg {
    cbh_origins *m;
    int          id;
} deflate_arg;

static void *deflate_worker(void *arg)
{
    deflate_arg *a = arg;
    int          i;

    for (i = 0; i < 2000; i++) {
        char        key[32];
        cbh_origin *o;

        snprintf(key, sizeof(key), "http://h%d:80", i % 8);
        o = get(a->m, key, NULL, true);
        call_once(o, true);
        cbh_origins_release(o);
        if (a->id == 0 && i % 50 == 0) {
            atomic_fetch_add(&fake_now, DEFLATE_MS);
            (void)cbh_origins_evict_idle(a->m);
        }
    }
    return NULL;
}

START_TEST(test_deflate_threads)
{
    pthread_t          t[3];
    deflate_arg        a[3];
    cbh_origins       *m;
    uint64_t           total = 0, attempts = 0;
    api_origin_metrics c;
    int                i;

    set_now(1);
    m = new_map(UINT_MAX, NULL);
    for (i = 0; i < 3; i++) {
        a[i].m = m;
        a[i].id = i;
        ck_assert_int_eq(pthread_create(&t[i], NULL, deflate_worker, &a[i]), 0);
    }
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (i = 0; i < 8; i++) {
        char        key[32];
        cbh_origin *o;
        cb_metrics  bm;

        snprintf(key, sizeof(key), "http://h%d:80", i);
        o = get(m, key, NULL, false);
        ck_assert_ptr_nonnull(o);
        cb_breaker_metrics(&o->breaker, &bm);
        cbh_origin_counters(o, &c);
        total += bm.successes;
        attempts += c.attempts;
        cbh_origins_release(o);
    }
    ck_assert_uint_eq(total, 3 * 2000);
    ck_assert_uint_eq(attempts, 3 * 2000);
    cbh_origins_free(m);
}
END_TEST

START_TEST(test_threads)
{
    cbh_origins *m;
    pthread_t    th[4];
    stress       s[4];
    int          i;

    set_now(0);
    m = new_map(50, NULL); /* short idle: lots of eviction */
    for (i = 0; i < 4; i++) {
        s[i].m = m;
        s[i].seed = 1234u + (unsigned)i * 7919u;
        s[i].id = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, stress_worker, &s[i]), 0);
    }
    for (i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    ck_assert_uint_le(cbh_origins_count(m), STRESS_KEYS);
    cbh_origins_foreach(m, check_unreferenced, NULL);
    cbh_origins_free(m);
}
END_TEST

/* The cap under threads: 4 threads on 64 keys with room for 16, a fifth
 * watching the count. Each thread holds at most one origin, so there is
 * always room and no get may fail. */
typedef struct capped {
    cbh_origins   *m;
    unsigned       seed;
    _Atomic int   *stop;
    _Atomic size_t max_seen;
    _Atomic int    refused;
} capped;

static void *capped_worker(void *arg)
{
    capped  *s = arg;
    char     k[64];
    unsigned x = s->seed;
    int      i;

    for (i = 0; i < STRESS_ITERS; i++) {
        cbh_origin *o;

        x = x * 1103515245u + 12345u;
        if ((x & 7) == 0)
            atomic_fetch_add(&fake_now, 1);
        snprintf(k, sizeof(k), "http://c%u:80", (x >> 16) % STRESS_KEYS);
        o = cbh_origins_get(s->m, k, strlen(k), NULL, true, NULL);
        if (!o) {
            atomic_fetch_add(&s->refused, 1);
            continue;
        }
        if ((x & 0xff) == 3)
            cb_breaker_trip(&o->breaker);
        cbh_origins_release(o);
    }
    return NULL;
}

static void *capped_watcher(void *arg)
{
    capped *s = arg;

    while (!atomic_load(s->stop)) {
        size_t n = cbh_origins_count(s->m);

        if (n > atomic_load(&s->max_seen))
            atomic_store(&s->max_seen, n);
    }
    return NULL;
}

START_TEST(test_cap_threads)
{
    _Atomic int  stop = 0;
    capped       s[4];
    pthread_t    th[4], w;
    size_t       max_seen = 0;
    int          i, refused = 0;
    cbh_origins *m;

    set_now(0);
    m = new_map_max(20, 16, NULL);
    for (i = 0; i < 4; i++) {
        memset(&s[i], 0, sizeof(s[i]));
        s[i].m = m;
        s[i].seed = 99u + (unsigned)i * 7919u;
        s[i].stop = &stop;
    }
    ck_assert_int_eq(pthread_create(&w, NULL, capped_watcher, &s[0]), 0);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, capped_worker, &s[i]), 0);
    for (i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    atomic_store(&stop, 1);
    pthread_join(w, NULL);
    for (i = 0; i < 4; i++)
        refused += atomic_load(&s[i].refused);
    max_seen = atomic_load(&s[0].max_seen);
    ck_assert_int_eq(refused, 0);
    ck_assert_msg(max_seen <= 16, "count reached %zu", max_seen);
    ck_assert_uint_le(cbh_origins_count(m), 16);
    cbh_origins_foreach(m, check_unreferenced, NULL);
    cbh_origins_free(m);
}
END_TEST

/* ---- Through the client ------------------------------------------------------ */

static size_t client_origins(api_client *c)
{
    api_client_metrics mt;
    size_t             n;

    ck_assert_int_eq(api_client_metrics_get(c, &mt), CB_OK);
    n = mt.origin_count;
    api_client_metrics_free(&mt);
    return n;
}

/* The issue's own case, with the public API and an injected clock: 10k
 * hosts that each failed once (threshold 1: the breaker OPEN) are gone
 * idle_ms later, driven by nothing but lookups; a pinned origin stays; a
 * later call to a dead host sees a fresh CLOSED breaker. No I/O at all. */
START_TEST(test_client_dead_hosts_evicted)
{
    api_client_config cfg;
    api_client       *c;
    tu_clock          tc;
    cb_config         pin = { .failure_threshold = 9 };
    cb_metrics        mt;
    char              url[80];
    unsigned          i;

    memset(&cfg, 0, sizeof(cfg));
    tu_clock_install(&tc, &cfg);
    cfg.origin_idle_ms = 60000;
    cfg.circuit_breaker.failure_threshold = 1;
    ck_assert_ptr_nonnull(c = api_client_new(&cfg));
    ck_assert_int_eq(api_client_set_origin_breaker(c, "http://pinned.example/", &pin), CB_OK);
    for (i = 0; i < 10000; i++) {
        snprintf(url, sizeof(url), "http://dead-%u.example/x", i);
        ck_assert_int_eq(api_client_trip(c, url), CB_OK);
    }
    ck_assert_uint_eq(client_origins(c), 10001);
    ck_assert_int_eq(api_client_breaker_state(c, "http://dead-7.example/"), CB_OPEN);

    tc.now_ms += 60000 + 1;
    for (i = 0; i < 3000; i++)
        (void)api_client_breaker_state(c, "http://nobody.example/");
    ck_assert_uint_eq(client_origins(c), 1);
    ck_assert_int_eq(api_client_breaker_metrics(c, "http://pinned.example/", &mt), CB_OK);
    ck_assert_int_eq(api_client_breaker_state(c, "http://dead-7.example/"), CB_CLOSED);
    ck_assert_int_eq(api_client_breaker_metrics(c, "http://dead-7.example/", &mt), CB_ERR_INVALID);
    api_client_free(c);
}
END_TEST

START_TEST(test_client_max_origins)
{
    api_client_config cfg;
    api_client       *c;
    api_response      r;
    tu_clock          tc;
    cb_config         pin = { .failure_threshold = 9 };
    char              url[80];
    unsigned          i;

    memset(&cfg, 0, sizeof(cfg));
    tu_clock_install(&tc, &cfg);
    cfg.max_origins = 100;
    ck_assert_ptr_nonnull(c = api_client_new(&cfg));
    for (i = 0; i < 1000; i++) {
        snprintf(url, sizeof(url), "http://h%u.example/", i);
        ck_assert_int_eq(api_client_trip(c, url), CB_OK);
        ck_assert_uint_le(client_origins(c), 100);
        tc.now_ms += i % 3;
    }
    ck_assert_uint_eq(client_origins(c), 100);
    ck_assert_int_eq(api_client_breaker_state(c, "http://h999.example/"), CB_OPEN);
    ck_assert_int_eq(api_client_breaker_state(c, "http://h900.example/"), CB_OPEN);
    ck_assert_int_eq(api_client_breaker_state(c, "http://h899.example/"), CB_CLOSED);
    api_client_free(c);

    /* Pinned origins fill a map of 2: a call to a third origin is refused
     * with CB_ERR_NOMEM, before any I/O (port 1 would refuse the
     * connection: CB_ERR_CONNECT). */
    cfg.max_origins = 2;
    ck_assert_ptr_nonnull(c = api_client_new(&cfg));
    ck_assert_int_eq(api_client_set_origin_breaker(c, "http://a.example/", &pin), CB_OK);
    ck_assert_int_eq(api_client_set_origin_breaker(c, "http://b.example/", &pin), CB_OK);
    ck_assert_int_eq(api_client_set_origin_breaker(c, "http://a.example/x", &pin), CB_OK);
    ck_assert_int_eq(api_client_trip(c, "http://c.example/"), CB_ERR_NOMEM);
    ck_assert_int_eq(api_client_set_origin_breaker(c, "http://c.example/", &pin), CB_ERR_NOMEM);
    ck_assert_int_eq(api_get(c, "http://127.0.0.1:1/", NULL, &r), CB_ERR_NOMEM);
    ck_assert_uint_eq(r.attempts, 0);
    api_response_free(&r);
    tc.now_ms += 100000000;
    ck_assert_int_eq(api_client_trip(c, "http://c.example/"), CB_ERR_NOMEM);
    ck_assert_uint_eq(client_origins(c), 2);
    api_client_free(c);

    /* 1, SIZE_MAX - 1 and SIZE_MAX (no limit, and no overflow), with the
     * other size limits at the same values. */
    {
        static const size_t maxes[] = { 1, SIZE_MAX - 1, SIZE_MAX };
        size_t              j;

        for (j = 0; j < sizeof(maxes) / sizeof(maxes[0]); j++) {
            cfg.max_origins = maxes[j];
            cfg.max_body_bytes = cfg.max_header_bytes = maxes[j];
            cfg.cache.max_bytes = cfg.cache.max_entry_bytes = maxes[j];
            ck_assert_ptr_nonnull(c = api_client_new(&cfg));
            for (i = 0; i < 300; i++) {
                snprintf(url, sizeof(url), "http://h%u.example/", i);
                ck_assert_int_eq(api_client_trip(c, url), CB_OK);
            }
            ck_assert_uint_eq(client_origins(c), maxes[j] == 1 ? 1 : 300);
            ck_assert_int_eq(api_client_breaker_state(c, "http://h299.example/"), CB_OPEN);
            api_client_free(c);
        }
    }
}
END_TEST

static Suite *origin_suite(void)
{
    Suite *s = suite_create("origin");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_create_and_lookup);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_create_with_cfg_and_defaults);
    tcase_add_test(tc, test_reconfigure_keeps_state);
    tcase_add_test(tc, test_invalid_cfg);
    tcase_add_test(tc, test_events_name_their_origin);
    tcase_add_test(tc, test_eviction_rules);
    tcase_add_test(tc, test_open_and_half_open_evicted);
    tcase_add_test(tc, test_dead_hosts_evicted);
    tcase_add_test(tc, test_idle_measured_from_release);
    tcase_add_test(tc, test_100k_origins_evicted_by_new_ones);
    tcase_add_test(tc, test_growth_stays_bounded);
    tcase_add_test(tc, test_gets_sweep_without_creations);
    tcase_add_test(tc, test_time_triggers_sweep);
    tcase_add_test(tc, test_cap_holds);
    tcase_add_test(tc, test_cap_lru_order);
    tcase_add_test(tc, test_cap_held_and_pinned);
    tcase_add_test(tc, test_cap_limits);
    tcase_add_test(tc, test_foreach);
    tcase_add_test(tc, test_foreach_and_create_oom);
    tcase_add_test(tc, test_oom);
    tcase_add_test(tc, test_inflate_oom);
    tcase_add_test(tc, test_deflate_keeps_counts);
    tcase_add_test(tc, test_deflate_refused);
    tcase_add_test(tc, test_deflated_reset);
    tcase_add_test(tc, test_deflate_threads);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_cap_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("client");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_client_dead_hosts_evicted);
    tcase_add_test(tc, test_client_max_origins);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(origin_suite()); }
