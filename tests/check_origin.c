/* The per-origin map: lookup, configuration, events, eviction rules and
 * bounds, and concurrent use. Time comes from a fake clock. */
/* cbhttp: threaded */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "origin.h"

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

static cbh_origins *new_map(unsigned idle_ms, events *ev)
{
    cbh_origins_config c;
    cbh_origins       *m;

    memset(&c, 0, sizeof(c));
    c.idle_ms = idle_ms;
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

static cbh_origin *get(cbh_origins *m, const char *key, const cb_config *cfg, bool create)
{
    cb_err err = CB_ERR_COUNT_;
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
    ck_assert_ptr_nonnull(a->breaker);
    ck_assert_ptr_eq(a->map, m);
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
    cb_breaker_config(o->breaker, &got);
    ck_assert_uint_eq(got.failure_threshold, 7);
    cbh_origins_release(o);

    want.listener = bogus_listener;
    want.clock = bogus_clock;
    o = get(m, "http://c:80", &want, true);
    cb_breaker_config(o->breaker, &got);
    ck_assert_uint_eq(got.failure_threshold, 2);
    ck_assert_uint_eq(got.reset_timeout_ms, 500);
    ck_assert_uint_eq(o->applied.failure_threshold, 2);
    cb_breaker_trip(o->breaker); /* must reach on_event, not bogus_listener */
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
    cb_breaker_trip(o->breaker);
    ck_assert_int_eq(cb_breaker_state(o->breaker), CB_OPEN);
    cbh_origins_release(o);

    o2 = get(m, "http://r:80", &c2, true);
    ck_assert_ptr_eq(o, o2);
    cb_breaker_config(o2->breaker, &got);
    ck_assert_uint_eq(got.failure_threshold, 9);
    ck_assert_uint_eq(o2->applied.failure_threshold, 9);
    ck_assert_int_eq(cb_breaker_state(o2->breaker), CB_OPEN);
    cb_breaker_metrics(o2->breaker, &mt);
    ck_assert_uint_eq(mt.times_opened, 1);
    cbh_origins_release(o2);

    /* The same numbers (callbacks aside) do not reconfigure; NULL keeps the
     * applied config. */
    c2.listener = bogus_listener;
    o = get(m, "http://r:80", &c2, true);
    cbh_origins_release(o);
    o = get(m, "http://r:80", NULL, true);
    cb_breaker_config(o->breaker, &got);
    ck_assert_uint_eq(got.failure_threshold, 9);
    ck_assert_int_eq(cb_breaker_state(o->breaker), CB_OPEN);
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
    cb_breaker_config(o->breaker, &got);
    ck_assert_uint_eq(got.failure_threshold, 4);
    ck_assert_uint_eq(o->applied.failure_threshold, 4);
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
    cb_breaker_trip(b->breaker);
    ck_assert_ptr_eq(ev.last_origin, b);
    ck_assert_str_eq(ev.last_key, "http://b:80");
    ck_assert_int_eq(ev.last.type, CB_EVENT_STATE_CHANGE);
    ck_assert_int_eq(ev.last.to, CB_OPEN);
    ck_assert_uint_eq(ev.count_seen, 2); /* called back into the map */

    ck_assert_int_eq(cb_breaker_acquire(a->breaker, &p), CB_OK);
    cb_breaker_record(a->breaker, &p, false);
    ck_assert_ptr_eq(ev.last_origin, a);
    ck_assert_int_eq(ev.last.type, CB_EVENT_FAILURE);
    ck_assert_int_eq(cb_breaker_state(a->breaker), CB_CLOSED);
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
    cb_breaker_trip(open->breaker);
    pinned->pinned = true; /* written while holding a reference */
    cbh_origins_release(idle);
    cbh_origins_release(open);
    cbh_origins_release(pinned);

    /* Not idle long enough yet. */
    set_now(10999);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 0);
    ck_assert_uint_eq(cbh_origins_count(m), 4);

    /* The get that creates "fresh" may already sweep "idle" out itself. */
    set_now(11000);
    fresh = get(m, "http://fresh:80", NULL, true);
    cbh_origins_release(fresh);
    (void)cbh_origins_evict_idle(m);
    ck_assert_uint_eq(cbh_origins_count(m), 4);
    ck_assert_ptr_null(get(m, "http://idle:80", NULL, false));

    /* OPEN (reset timeout 30 s not passed), held and pinned stay, whatever
     * their age. */
    set_now(30000);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 1); /* fresh */
    ck_assert_uint_eq(cbh_origins_count(m), 3);

    /* Once released / closed they go. */
    open = get(m, "http://open:80", NULL, false);
    cb_breaker_reset(open->breaker);
    cbh_origins_release(open);
    cbh_origins_release(held);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 0); /* just used */
    set_now(31000);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 2);
    ck_assert_uint_eq(cbh_origins_count(m), 1);
    pinned = get(m, "http://pinned:80", NULL, false);
    ck_assert_ptr_nonnull(pinned);
    cbh_origins_release(pinned);
    cbh_origins_free(m);
}
END_TEST

START_TEST(test_half_open_not_evicted)
{
    events       ev;
    cbh_origins *m;
    cbh_origin  *o;
    cb_config    c = { .reset_timeout_ms = 100 };

    memset(&ev, 0, sizeof(ev));
    set_now(0);
    m = new_map(1000, &ev);
    o = get(m, "http://h:80", &c, true);
    cb_breaker_trip(o->breaker);
    cbh_origins_release(o);
    ev.state_changes = 0;
    /* The sweep's state read turns OPEN into HALF_OPEN and raises an event;
     * the listener calls back into the map (count), which would deadlock if
     * the sweep held the lock. HALF_OPEN is not evictable either. */
    set_now(5000);
    ck_assert_uint_eq(cbh_origins_evict_idle(m), 0);
    ck_assert_int_eq(ev.state_changes, 1);
    ck_assert_int_eq(ev.last.to, CB_HALF_OPEN);
    ck_assert_uint_eq(ev.count_seen, 1);
    ck_assert_uint_eq(cbh_origins_count(m), 1);
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

            if (cb_breaker_acquire(o->breaker, &p) == CB_OK)
                cb_breaker_record(o->breaker, &p, (x & 0x30) != 0);
            if ((x & 0xff) == 7)
                cb_breaker_reset(o->breaker);
            atomic_fetch_add_explicit(&o->attempts, 1, memory_order_relaxed);
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
    tcase_add_test(tc, test_half_open_not_evicted);
    tcase_add_test(tc, test_idle_measured_from_release);
    tcase_add_test(tc, test_100k_origins_evicted_by_new_ones);
    tcase_add_test(tc, test_growth_stays_bounded);
    tcase_add_test(tc, test_gets_sweep_without_creations);
    tcase_add_test(tc, test_time_triggers_sweep);
    tcase_add_test(tc, test_foreach);
    tcase_add_test(tc, test_oom);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(origin_suite());
}
