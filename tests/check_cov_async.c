/*
 * The engine (src/async.c) along paths the other async suites do not take:
 * allocation failure at every point of a submission and of an attached
 * loop's socket bookkeeping, an adapter whose watch fails, an upload that
 * waits to read and write at once, the entry points called in odd states
 * (NULL, not attached, from a done inside api_async_free, attach from a
 * done), and a run whose timeout does not fit in an int.
 *
 * The loop here is a small poll(2) loop of this file behind api_loop, the
 * same table the header-only adapters fill: it lets a test make watch fail
 * and see the events the engine asks for.
 *
 * Time: the only wall-time assertions are lower bounds after a real wait.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "cbhttp.h"
#include "fixture.h"

#include "helpers/failalloc.h"
#include "helpers/clients.h"
#include "helpers/testutil.h"

#define MAX_TURNS 100000
#define MAX_N 5000 /* allocation points: far more than one operation has */

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- recording calls ------------------------------------------------------ */

typedef struct call call;
typedef void (*then_fn)(call *k);

struct call {
    api_response resp;
    api_async   *a;
    int          done;
    cb_err       err;
    then_fn      then;
    void        *arg;
};

static void on_done(cb_err err, api_response *resp, void *ud)
{
    call *k = ud;

    ck_assert_ptr_eq(resp, &k->resp);
    k->done++;
    k->err = err;
    if (k->then)
        k->then(k);
}

static cb_err submit_req(api_async *a, call *k, const char *method, const char *path,
                         const char *body, size_t body_len, const api_options *o)
{
    k->a = a;
    k->done = 0;
    return api_async_request(a, method, path, body, body_len, o, &k->resp, on_done, k);
}

static void run_all(api_async *a)
{
    int n, turns = 0;

    while ((n = api_async_run(a, 100)) > 0)
        ck_assert_msg(++turns < MAX_TURNS, "the loop never went idle");
    ck_assert_int_eq(n, 0);
}

static api_client *client_new(const fixture *f, api_client_config *cfg)
{
    return tu_engine_client(f ? fixture_url(f) : NULL, cfg);
}

/* ---- a poll(2) loop behind api_loop ---------------------------------------- */

#define PL_FDS 64

typedef struct ploop {
    api_async *a;
    int        fd[PL_FDS];
    unsigned   ev[PL_FDS];
    void      *slot[PL_FDS]; /* what watch put into the engine's slot */
    int        n;
    bool       armed;
    uint64_t   timer_at;    /* real ms */
    int        fail_watch;  /* watch with events != 0 fails from this call on (0: never) */
    unsigned   watch_calls; /* with events != 0 */
    unsigned   both_seen;   /* watches asking for READ and WRITE together */
    unsigned   timer_calls, detached;
    char       marks[PL_FDS]; /* slot values: addresses inside this struct */
} ploop;

static int pl_find(const ploop *l, int fd)
{
    int i;

    for (i = 0; i < l->n; i++)
        if (l->fd[i] == fd)
            return i;
    return -1;
}

static int pl_watch(void *data, int fd, unsigned events, void **sock)
{
    ploop *l = data;
    int    i = pl_find(l, fd);

    if (events == 0) {
        if (i >= 0) {
            /* The slot the engine kept is the one this loop gave it. */
            ck_assert_ptr_eq(*sock, l->slot[i]);
            l->n--;
            l->fd[i] = l->fd[l->n];
            l->ev[i] = l->ev[l->n];
            l->slot[i] = l->slot[l->n];
        }
        *sock = NULL;
        return 0;
    }
    l->watch_calls++;
    if (l->fail_watch && l->watch_calls >= (unsigned)l->fail_watch)
        return -1;
    if ((events & (API_WATCH_READ | API_WATCH_WRITE)) == (API_WATCH_READ | API_WATCH_WRITE))
        l->both_seen++;
    if (i < 0) {
        ck_assert_int_lt(l->n, PL_FDS);
        /* A socket seen for the first time comes with an empty slot. */
        ck_assert_ptr_null(*sock);
        i = l->n++;
        l->fd[i] = fd;
        l->slot[i] = &l->marks[i];
        *sock = l->slot[i];
    }
    l->ev[i] = events;
    return 0;
}

static void pl_set_timer(void *data, long ms)
{
    ploop *l = data;

    l->timer_calls++;
    l->armed = ms >= 0;
    l->timer_at = ms >= 0 ? now_ms() + (uint64_t)ms : 0;
}

static void pl_detach(void *data)
{
    ploop *l = data;

    l->detached++;
    l->armed = false;
}

static void pl_attach(ploop *l, api_async *a)
{
    api_loop t = { l, pl_watch, pl_set_timer, pl_detach };

    memset(l, 0, sizeof(*l));
    l->a = a;
    ck_assert_int_eq(api_async_attach(a, &t), CB_OK);
}

/* One turn: waits for a watched socket or the timer (at most 100 ms), then
 * hands what is ready to the engine. */
static void pl_turn(ploop *l)
{
    struct pollfd p[PL_FDS];
    int           i, n = l->n, wait = 100;
    uint64_t      now = now_ms();

    for (i = 0; i < n; i++) {
        p[i].fd = l->fd[i];
        p[i].events = (short)(((l->ev[i] & API_WATCH_READ) ? POLLIN : 0) |
                              ((l->ev[i] & API_WATCH_WRITE) ? POLLOUT : 0));
        p[i].revents = 0;
    }
    if (l->armed)
        wait = l->timer_at <= now ? 0 : l->timer_at - now < 100 ? (int)(l->timer_at - now) : 100;
    ck_assert_int_ge(poll(p, (nfds_t)n, wait), 0);
    for (i = 0; i < n; i++) {
        unsigned ev = 0;

        if (p[i].revents & POLLIN)
            ev |= API_WATCH_READ;
        if (p[i].revents & POLLOUT)
            ev |= API_WATCH_WRITE;
        if (p[i].revents & (POLLERR | POLLHUP | POLLNVAL))
            ev |= API_WATCH_ERROR;
        /* Still watched: an earlier dispatch of this turn may have dropped it. */
        if (ev && pl_find(l, p[i].fd) >= 0)
            api_async_on_socket(l->a, p[i].fd, ev);
    }
    if (l->armed && l->timer_at <= now_ms()) {
        l->armed = false;
        api_async_on_timer(l->a);
    }
}

/* Turns until nothing is in flight. */
static void pl_run(ploop *l)
{
    int turns = 0;

    while (api_async_pending(l->a) > 0) {
        pl_turn(l);
        ck_assert_msg(++turns < MAX_TURNS, "the loop never went idle");
    }
}

/* ---- allocation failure ----------------------------------------------------- */

/* What a submission copies (body, header lines, breaker config) and what a
 * call allocates on its way (the timer heap, the call, a redirect to
 * another origin and its URL): the n-th allocation fails, for every n until
 * none is reached. A call is either refused with CB_ERR_NOMEM (done never
 * runs) or accepted, and then done runs once with CB_OK or CB_ERR_NOMEM;
 * nothing leaks. */
static void oom_sweep(bool attached)
{
    static const char body[] = "{\"k\":\"v\"}";
    const char *const hdrs[] = { "X-A: 1", "X-B: 2", NULL };
    cb_config         bcfg = { .failure_threshold = 1000 };
    fixture          *f = fixture_start();
    unsigned long     n;
    char              hop[128];
    bool              full_run = false;

    ck_assert_ptr_nonnull(f);
    snprintf(hop, sizeof(hop), "/redirect?to=%s/raw/ok", fixture_raw_url(f));
    tu_alloc_install();
    for (n = 1; n < MAX_N && !full_run; n++) {
        api_client_config cfg = { .max_redirects = 2,
                                  .allow_cross_origin_redirects = true,
                                  .timeout_ms = attached ? 1000 : 0 };
        api_options       o = { .headers = hdrs, .circuit_breaker = &bcfg };
        api_client       *c = client_new(f, &cfg);
        api_async        *a;
        call              k[2];
        cb_err            rc[2];
        ploop             l;
        bool              hit;
        int               i;

        memset(k, 0, sizeof(k));
        tu_alloc_fail_at(n);
        a = api_async_new(c);
        if (!a) {
            ck_assert(tu_alloc_disarm());
            api_client_free(c);
            ck_assert_int_eq(tu_alloc_live(), 0);
            continue;
        }
        if (attached)
            pl_attach(&l, a);
        rc[0] = submit_req(a, &k[0], "POST", "/echo", body, strlen(body), &o);
        rc[1] = submit_req(a, &k[1], "GET", hop, NULL, 0, NULL);
        if (attached)
            pl_run(&l);
        else
            run_all(a);
        hit = tu_alloc_disarm();
        for (i = 0; i < 2; i++) {
            ck_assert_msg(rc[i] == CB_OK || rc[i] == CB_ERR_NOMEM, "N=%lu call %d: %s", n, i,
                          cb_strerror(rc[i]));
            ck_assert_int_eq(k[i].done, rc[i] == CB_OK ? 1 : 0);
            ck_assert_ptr_nonnull(k[i].resp.body);
            /* Attached, a failure in the engine's socket bookkeeping fails
             * the transfer that needed the socket, with CB_ERR_NOMEM. */
            if (rc[i] == CB_OK)
                ck_assert_msg(k[i].err == CB_OK || k[i].err == CB_ERR_NOMEM,
                              "N=%lu call %d: %s (%s)", n, i, cb_strerror(k[i].err),
                              k[i].resp.error);
            if (!hit) {
                ck_assert_int_eq(k[i].err, CB_OK);
                ck_assert_int_eq(k[i].resp.status, 200);
            }
            api_response_free(&k[i].resp);
        }
        if (!hit) {
            full_run = true;
        }
        api_async_free(a);
        if (attached)
            ck_assert_uint_eq(l.detached, 1);
        api_client_free(c);
        ck_assert_int_eq(tu_alloc_live(), 0);
    }
    ck_assert(full_run);
    ck_assert_uint_gt(n, 10);
    tu_alloc_uninstall();
    fixture_stop(f);
}

START_TEST(test_oom_run) { oom_sweep(false); }
END_TEST

START_TEST(test_oom_attached) { oom_sweep(true); }
END_TEST

/* ---- an adapter that cannot watch ------------------------------------------- */

/* A watch that fails: the call on that socket ends at once, before its
 * deadline, with CB_ERR_NOMEM naming the loop, and its origin's breaker
 * counts nothing (the origin was never asked); the engine goes on with the
 * next call once watching works. */
START_TEST(test_watch_fails)
{
    fixture          *f = fixture_start();
    api_client_config cfg = { .timeout_ms = 1000 };
    api_client       *c;
    api_async        *a;
    ploop             l;
    call              k;
    cb_metrics        m;

    ck_assert_ptr_nonnull(f);
    c = client_new(f, &cfg);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    pl_attach(&l, a);
    l.fail_watch = 1;
    memset(&k, 0, sizeof(k));
    ck_assert_int_eq(submit_req(a, &k, "GET", "/ok", NULL, 0, NULL), CB_OK);
    pl_run(&l);
    ck_assert_int_eq(k.done, 1);
    ck_assert_msg(k.err == CB_ERR_NOMEM, "%s (%s)", cb_strerror(k.err), k.resp.error);
    ck_assert_str_eq(k.resp.error, "the event loop could not watch a socket");
    ck_assert_int_eq(k.resp.status, 0);
    ck_assert_uint_ge(l.watch_calls, 1);
    ck_assert_uint_eq(fixture_requests(f), 0);
    ck_assert_int_eq(api_client_breaker_metrics(c, "/", &m), CB_OK);
    ck_assert_uint_eq(m.failures, 0);
    ck_assert_uint_eq(m.successes, 0);
    ck_assert_uint_eq(m.ignored, 1);
    api_response_free(&k.resp);

    l.fail_watch = 0;
    ck_assert_int_eq(submit_req(a, &k, "GET", "/ok", NULL, 0, NULL), CB_OK);
    pl_run(&l);
    ck_assert_int_eq(k.done, 1);
    ck_assert_int_eq(k.err, CB_OK);
    ck_assert_int_eq(k.resp.status, 200);
    ck_assert_uint_eq(fixture_requests(f), 1);
    api_response_free(&k.resp);
    api_async_free(a);
    ck_assert_uint_eq(l.detached, 1);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* A loop whose watch submits a call (an application doing its own work
 * from inside the loop's callbacks): libcurl refuses to start a transfer
 * from inside its own callback, so the engine starts it once libcurl has
 * returned; both calls succeed. */
typedef struct submit_in_watch {
    ploop      l;
    api_async *a;
    call      *k;
    cb_err     rc;
    bool       tried;
} submit_in_watch;

static int watch_and_submit(void *data, int fd, unsigned events, void **sock)
{
    submit_in_watch *s = data;

    if (events && !s->tried) {
        s->tried = true;
        s->rc = submit_req(s->a, s->k, "GET", "/ok", NULL, 0, NULL);
    }
    return pl_watch(&s->l, fd, events, sock);
}

/* The three tests below: the fixture, a client, an engine whose loop's
 * watch is watch (with s as its data), and two calls: outer (submitted by
 * the test) and inner (what watch works on). */
typedef struct watch_env {
    fixture        *f;
    api_client     *c;
    api_async      *a;
    submit_in_watch s;
    call            outer, inner;
} watch_env;

static void watch_env_start(watch_env *e,
                            int (*watch)(void *data, int fd, unsigned events, void **sock))
{
    api_loop t;

    memset(e, 0, sizeof(*e));
    e->f = fixture_start();
    ck_assert_ptr_nonnull(e->f);
    e->c = client_new(e->f, NULL);
    e->a = api_async_new(e->c);
    ck_assert_ptr_nonnull(e->a);
    e->s.l.a = e->a;
    e->s.a = e->a;
    e->s.k = &e->inner;
    /* set_timer and detach get s: its first member is the ploop. */
    t = (api_loop){ &e->s, watch, pl_set_timer, pl_detach };
    ck_assert_int_eq(api_async_attach(e->a, &t), CB_OK);
}

static void watch_env_stop(watch_env *e)
{
    api_response_free(&e->inner.resp);
    api_response_free(&e->outer.resp);
    api_async_free(e->a);
    api_client_free(e->c);
    fixture_stop(e->f);
}

START_TEST(test_submit_from_watch)
{
    watch_env e;

    watch_env_start(&e, watch_and_submit);
    ck_assert_int_eq(submit_req(e.a, &e.outer, "GET", "/ok", NULL, 0, NULL), CB_OK);
    pl_run(&e.s.l);
    ck_assert(e.s.tried);
    ck_assert_int_eq(e.s.rc, CB_OK);
    ck_assert_int_eq(e.inner.done, 1);
    ck_assert_msg(e.inner.err == CB_OK, "%s (%s)", cb_strerror(e.inner.err), e.inner.resp.error);
    ck_assert_int_eq(e.inner.resp.status, 200);
    ck_assert_int_eq(e.outer.done, 1);
    ck_assert_int_eq(e.outer.err, CB_OK);
    ck_assert_int_eq(e.outer.resp.status, 200);
    ck_assert_uint_eq(fixture_requests_path(e.f, "/ok"), 2);
    watch_env_stop(&e);
}
END_TEST

/* A watch that submits a call and cancels it at once: its transfer never
 * started, so the cancel needs no libcurl and ends it there; the server
 * never sees it. */
static int watch_submit_cancel(void *data, int fd, unsigned events, void **sock)
{
    submit_in_watch *s = data;

    if (events && !s->tried) {
        s->tried = true;
        s->rc = submit_req(s->a, s->k, "GET", "/ok", NULL, 0, NULL);
        api_async_cancel(s->a, &s->k->resp);
    }
    return pl_watch(&s->l, fd, events, sock);
}

START_TEST(test_submit_cancel_from_watch)
{
    watch_env e;

    watch_env_start(&e, watch_submit_cancel);
    ck_assert_int_eq(submit_req(e.a, &e.outer, "GET", "/delay/50", NULL, 0, NULL), CB_OK);
    pl_run(&e.s.l);
    ck_assert(e.s.tried);
    ck_assert_int_eq(e.s.rc, CB_OK);
    ck_assert_int_eq(e.inner.done, 1);
    ck_assert_int_eq(e.inner.err, CB_ERR_CANCELLED);
    ck_assert_int_eq(e.outer.done, 1);
    ck_assert_int_eq(e.outer.err, CB_OK);
    ck_assert_uint_eq(fixture_requests_path(e.f, "/ok"), 0);
    watch_env_stop(&e);
}
END_TEST

/* A loop whose watch cancels the call whose transfer it is asked to watch:
 * libcurl cannot take the transfer off from inside its callback, so the
 * cancel waits until it has returned; the call ends once, cancelled, and
 * the engine stays sound (ASan, valgrind). */
static int watch_and_cancel(void *data, int fd, unsigned events, void **sock)
{
    submit_in_watch *s = data;

    if (events && !s->tried) {
        s->tried = true;
        api_async_cancel(s->a, &s->k->resp);
        /* Re-entering the engine's socket entry point from here is ignored. */
        api_async_on_socket(s->a, fd, events);
    }
    return pl_watch(&s->l, fd, events, sock);
}

START_TEST(test_cancel_from_watch)
{
    watch_env  e;
    cb_metrics m;

    watch_env_start(&e, watch_and_cancel);
    ck_assert_int_eq(submit_req(e.a, &e.inner, "GET", "/delay/200", NULL, 0, NULL), CB_OK);
    pl_run(&e.s.l);
    ck_assert(e.s.tried);
    ck_assert_int_eq(e.inner.done, 1);
    ck_assert_int_eq(e.inner.err, CB_ERR_CANCELLED);
    ck_assert_int_eq(e.inner.resp.status, 0);
    ck_assert_int_eq(api_client_breaker_metrics(e.c, "/", &m), CB_OK);
    ck_assert_uint_eq(m.failures + m.successes, 0);
    /* The engine goes on. */
    ck_assert_int_eq(submit_req(e.a, &e.outer, "GET", "/ok", NULL, 0, NULL), CB_OK);
    pl_run(&e.s.l);
    ck_assert_int_eq(e.outer.done, 1);
    ck_assert_int_eq(e.outer.err, CB_OK);
    ck_assert_int_eq(e.outer.resp.status, 200);
    watch_env_stop(&e);
}
END_TEST

/* ---- entry points in odd states ------------------------------------------------ */

static void noop_done(cb_err err, api_response *resp, void *ud)
{
    (void)err;
    (void)resp;
    (void)ud;
    ck_abort_msg("a refused call's done ran");
}

/* The adapter's entry points do nothing on NULL or on an engine that no
 * loop was attached to: a call that already ended (a rejection) waits for
 * the engine's own turn. */
START_TEST(test_adapter_calls_unattached)
{
    api_client *c = client_new(NULL, NULL);
    api_async  *a = api_async_new(c);
    call        k;

    ck_assert_ptr_nonnull(a);
    api_async_on_socket(NULL, 0, API_WATCH_READ);
    api_async_on_timer(NULL);
    ck_assert_int_eq(api_client_trip(c, "http://127.0.0.1:9/"), CB_OK);
    memset(&k, 0, sizeof(k));
    ck_assert_int_eq(submit_req(a, &k, "GET", "http://127.0.0.1:9/x", NULL, 0, NULL), CB_OK);
    api_async_on_timer(a);
    api_async_on_socket(a, 0, API_WATCH_READ | API_WATCH_WRITE | API_WATCH_ERROR);
    ck_assert_int_eq(k.done, 0);
    ck_assert_uint_eq(api_async_pending(a), 1);
    ck_assert_int_eq(api_async_run(a, 0), 0);
    ck_assert_int_eq(k.done, 1);
    ck_assert_int_eq(k.err, CB_ERR_CIRCUIT_OPEN);
    api_response_free(&k.resp);
    api_async_free(a);
    api_client_free(c);
}
END_TEST

/* What a done running inside api_async_free may still do, with the
 * engine's own loop (_i 0) or a loop attached (_i 1): nothing to the
 * engine. A new call is refused (its done never runs, its response says
 * why), cancelling another call changes nothing, the loop entry points and
 * attach refuse or do nothing, and a second free is ignored; the call still
 * in flight then ends cancelled. */
typedef struct in_free {
    call        *other; /* in flight when the free began */
    api_response refused;
    cb_err       submit_rc, attach_rc;
    int          run_rc;
    size_t       pending;
    ploop        l;
} in_free;

static void poke_engine_in_free(call *k)
{
    in_free *s = k->arg;
    api_loop t = { &s->l, pl_watch, pl_set_timer, pl_detach };

    s->submit_rc =
        api_async_request(k->a, "GET", "/ok", NULL, 0, NULL, &s->refused, noop_done, NULL);
    api_async_cancel(k->a, &s->other->resp);
    s->run_rc = api_async_run(k->a, 0);
    api_async_on_timer(k->a);
    api_async_on_socket(k->a, 0, API_WATCH_READ);
    s->attach_rc = api_async_attach(k->a, &t);
    api_async_free(k->a);
    s->pending = api_async_pending(k->a);
}

START_TEST(test_done_inside_free)
{
    fixture    *f = fixture_start();
    api_client *c;
    api_async  *a;
    call        hit, slow;
    in_free     s;
    ploop       drv;
    bool        attached = _i == 1;

    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    if (attached)
        pl_attach(&drv, a);
    memset(&hit, 0, sizeof(hit));
    memset(&slow, 0, sizeof(slow));
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(
        submit_req(a, &hit, "GET", "/cache/inside-free?cc=max-age%3D600", NULL, 0, NULL), CB_OK);
    if (attached)
        pl_run(&drv);
    else
        run_all(a);
    ck_assert_int_eq(hit.err, CB_OK);
    api_response_free(&hit.resp);
    s.other = &slow;
    ck_assert_int_eq(submit_req(a, &slow, "GET", "/hang", NULL, 0, NULL), CB_OK);
    while (fixture_requests_path(f, "/hang") < 1) {
        if (attached)
            pl_turn(&drv);
        else
            ck_assert_int_gt(api_async_run(a, 20), 0);
    }
    /* A fresh hit: ended at once, its done due on the next turn, which is
     * inside the free. It keeps its result. */
    hit.then = poke_engine_in_free;
    hit.arg = &s;
    ck_assert_int_eq(
        submit_req(a, &hit, "GET", "/cache/inside-free?cc=max-age%3D600", NULL, 0, NULL), CB_OK);
    api_async_free(a);

    ck_assert_int_eq(hit.done, 1);
    ck_assert_int_eq(hit.err, CB_OK);
    ck_assert(hit.resp.from_cache);
    ck_assert_int_eq(hit.resp.status, 200);
    ck_assert_int_eq(s.submit_rc, CB_ERR_INVALID);
    ck_assert_str_eq(s.refused.error, "engine is being freed");
    ck_assert_int_eq(s.run_rc, -1);
    ck_assert_int_eq(s.attach_rc, CB_ERR_INVALID);
    ck_assert_uint_eq(s.l.watch_calls + s.l.timer_calls + s.l.detached, 0);
    ck_assert_uint_eq(s.pending, 1); /* the hanging call, its done still to run */
    ck_assert_int_eq(slow.done, 1);
    ck_assert_int_eq(slow.err, CB_ERR_CANCELLED);
    ck_assert_str_eq(slow.resp.error, "cancelled");
    if (attached)
        ck_assert_uint_eq(drv.detached, 1);
    api_response_free(&s.refused);
    api_response_free(&hit.resp);
    api_response_free(&slow.resp);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* A done that asks for the engine to be freed: from then on submissions
 * are refused, though the engine lives until its dispatch returns. */
typedef struct free_then {
    api_response refused;
    cb_err       rc;
} free_then;

static void free_then_submit(call *k)
{
    free_then *s = k->arg;

    api_async_free(k->a);
    s->rc = api_async_request(k->a, "GET", "/ok", NULL, 0, NULL, &s->refused, noop_done, NULL);
}

START_TEST(test_submit_after_free_asked)
{
    fixture    *f = fixture_start();
    api_client *c;
    api_async  *a;
    call        k, slow;
    free_then   s;

    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    memset(&k, 0, sizeof(k));
    memset(&slow, 0, sizeof(slow));
    memset(&s, 0, sizeof(s));
    k.then = free_then_submit;
    k.arg = &s;
    ck_assert_int_eq(submit_req(a, &slow, "GET", "/hang", NULL, 0, NULL), CB_OK);
    ck_assert_int_eq(submit_req(a, &k, "GET", "/ok", NULL, 0, NULL), CB_OK);
    /* The run in which k's done freed the engine reports it idle. */
    while (api_async_run(a, 100) > 0)
        ;
    ck_assert_int_eq(k.done, 1);
    ck_assert_int_eq(k.err, CB_OK);
    ck_assert_int_eq(s.rc, CB_ERR_INVALID);
    ck_assert_str_eq(s.refused.error, "engine is being freed");
    ck_assert_int_eq(slow.done, 1);
    ck_assert_int_eq(slow.err, CB_ERR_CANCELLED);
    api_response_free(&s.refused);
    api_response_free(&k.resp);
    api_response_free(&slow.resp);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* Attaching from inside a done is refused, even when that done ended the
 * last call: the engine is in the middle of a dispatch. Once it returns,
 * the same attach works and the loop drives the next call. */
typedef struct attach_in_done {
    ploop  l;
    cb_err rc;
} attach_in_done;

static void attach_from_done(call *k)
{
    attach_in_done *s = k->arg;
    api_loop        t = { &s->l, pl_watch, pl_set_timer, pl_detach };

    ck_assert_uint_eq(api_async_pending(k->a), 0);
    s->rc = api_async_attach(k->a, &t);
}

START_TEST(test_attach_from_done)
{
    fixture       *f = fixture_start();
    api_client    *c;
    api_async     *a;
    call           k;
    attach_in_done s;

    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    memset(&k, 0, sizeof(k));
    memset(&s, 0, sizeof(s));
    k.then = attach_from_done;
    k.arg = &s;
    ck_assert_int_eq(submit_req(a, &k, "GET", "/ok", NULL, 0, NULL), CB_OK);
    run_all(a);
    ck_assert_int_eq(k.done, 1);
    ck_assert_int_eq(s.rc, CB_ERR_INVALID);
    ck_assert_uint_eq(s.l.timer_calls + s.l.watch_calls, 0);
    api_response_free(&k.resp);
    /* Not attached: the engine's own loop still runs it. */
    k.then = NULL;
    ck_assert_int_eq(submit_req(a, &k, "GET", "/ok", NULL, 0, NULL), CB_OK);
    run_all(a);
    ck_assert_int_eq(k.err, CB_OK);
    api_response_free(&k.resp);

    pl_attach(&s.l, a);
    ck_assert_int_eq(submit_req(a, &k, "GET", "/ok", NULL, 0, NULL), CB_OK);
    ck_assert_int_eq(api_async_run(a, 0), -1);
    pl_run(&s.l);
    ck_assert_int_eq(k.err, CB_OK);
    ck_assert_int_eq(k.resp.status, 200);
    /* Driven by this loop (a reused connection may need no watch at all). */
    ck_assert_uint_gt(s.l.timer_calls, 0);
    api_response_free(&k.resp);

    /* Another loop, whose table has no detach, takes over: the first one is
     * detached (its timer disarmed), the new one drives the next call. */
    {
        ploop    l2;
        api_loop t2 = { &l2, pl_watch, pl_set_timer, NULL };

        memset(&l2, 0, sizeof(l2));
        l2.a = a;
        s.l.armed = true;
        ck_assert_int_eq(api_async_attach(a, &t2), CB_OK);
        ck_assert_uint_eq(s.l.detached, 1);
        ck_assert(!s.l.armed);
        ck_assert_int_eq(s.l.n, 0);
        ck_assert_int_eq(submit_req(a, &k, "GET", "/ok", NULL, 0, NULL), CB_OK);
        pl_run(&l2);
        ck_assert_int_eq(k.err, CB_OK);
        ck_assert_uint_gt(l2.timer_calls, 0);
        api_response_free(&k.resp);
        api_async_free(a);
        ck_assert_uint_eq(l2.detached, 0);
        ck_assert_int_eq(l2.n, 0);
        ck_assert_uint_eq(s.l.detached, 1);
    }
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* A run told to wait longer than an int of milliseconds, with a call whose
 * deadline is as far: the wait is cut to what poll takes, not wrapped into
 * a negative one, and the run returns when the transfer has work. */
START_TEST(test_run_timeout_beyond_int)
{
    fixture    *f = fixture_start();
    api_client *c;
    api_async  *a;
    api_options o = { .timeout_ms = 3000000000u };
    call        k;
    int         n, turns = 0;
    uint64_t    t0;

    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    memset(&k, 0, sizeof(k));
    t0 = now_ms();
    ck_assert_int_eq(submit_req(a, &k, "GET", "/delay/50", NULL, 0, &o), CB_OK);
    while ((n = api_async_run(a, UINT_MAX)) > 0)
        ck_assert_int_lt(++turns, MAX_TURNS);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(k.done, 1);
    ck_assert_int_eq(k.err, CB_OK);
    ck_assert_int_eq(k.resp.status, 200);
    ck_assert_uint_ge(now_ms() - t0, 50);
    api_response_free(&k.resp);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- an upload that waits to write and to read ------------------------------- */

/* A listener for one request that does not read it for a while (so that
 * the client's send buffer fills), then reads the head and the
 * Content-Length bytes of body and answers with the number it read. */
typedef struct slow_sink {
    int            fd;
    pthread_t      thread;
    unsigned short port;
    char           url[64];
} slow_sink;

static void *sink_main(void *arg)
{
    slow_sink *s = arg;
    int        c = accept(s->fd, NULL, NULL);
    char       buf[65536], reply[128];
    size_t     have = 0, want = 0, got = 0;
    char      *eoh = NULL;

    if (c < 0)
        return NULL;
    usleep(300 * 1000);
    while (!eoh) {
        ssize_t n = recv(c, buf + have, sizeof(buf) - 1 - have, 0);

        if (n <= 0)
            goto out;
        have += (size_t)n;
        buf[have] = '\0';
        eoh = strstr(buf, "\r\n\r\n");
    }
    {
        const char *cl = strstr(buf, "Content-Length: ");

        if (cl)
            want = strtoul(cl + 16, NULL, 10);
    }
    got = have - (size_t)(eoh + 4 - buf);
    while (got < want) {
        ssize_t n = recv(c, buf, sizeof(buf), 0);

        if (n <= 0)
            break;
        got += (size_t)n;
    }
    {
        char num[32];
        int  k = snprintf(num, sizeof(num), "%zu", got);

        k = snprintf(reply, sizeof(reply), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", k,
                     num);
        ck_assert_int_eq(send(c, reply, (size_t)k, MSG_NOSIGNAL), k);
    }
out:
    close(c);
    return NULL;
}

static void sink_start(slow_sink *s)
{
    memset(s, 0, sizeof(*s));
    s->fd = tu_listen_loopback(4, &s->port, s->url, sizeof(s->url));
    ck_assert_int_eq(pthread_create(&s->thread, NULL, sink_main, s), 0);
}

static void sink_stop(slow_sink *s)
{
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->fd);
}

/* While a body is on its way, libcurl waits for the socket to be writable
 * and readable at once (an early answer ends the upload): the adapter is
 * asked for both, and the 16 MiB, more than the kernel buffers between the
 * two ends hold, arrive whole. */
START_TEST(test_upload_both_ways)
{
    const size_t len = 16u << 20;
    slow_sink    s;
    api_client  *c;
    api_async   *a;
    ploop        l;
    call         k;
    char        *body = malloc(len), want[32];

    ck_assert_ptr_nonnull(body);
    memset(body, 'u', len);
    sink_start(&s);
    c = api_client_new(&(api_client_config){
        .base_url = s.url, .retry = { .max_attempts = 1 }, .timeout_ms = 30000 });
    ck_assert_ptr_nonnull(c);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    pl_attach(&l, a);
    memset(&k, 0, sizeof(k));
    ck_assert_int_eq(submit_req(a, &k, "POST", "/upload", body, len, NULL), CB_OK);
    pl_run(&l);
    ck_assert_msg(k.err == CB_OK, "%s (%s)", cb_strerror(k.err), k.resp.error);
    ck_assert_int_eq(k.resp.status, 200);
    snprintf(want, sizeof(want), "%zu", len);
    ck_assert_str_eq(k.resp.body, want);
    ck_assert_uint_gt(l.both_seen, 0);
    api_response_free(&k.resp);
    api_async_free(a);
    api_client_free(c);
    sink_stop(&s);
    free(body);
}
END_TEST

static Suite *cov_async_suite(void)
{
    Suite *s = suite_create("cov_async");
    TCase *tc = tcase_create("engine");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_oom_run);
    tcase_add_test(tc, test_oom_attached);
    tcase_add_test(tc, test_watch_fails);
    tcase_add_test(tc, test_upload_both_ways);
    tcase_add_test(tc, test_submit_from_watch);
    tcase_add_test(tc, test_cancel_from_watch);
    tcase_add_test(tc, test_submit_cancel_from_watch);
    tcase_add_test(tc, test_adapter_calls_unattached);
    tcase_add_loop_test(tc, test_done_inside_free, 0, 2);
    tcase_add_test(tc, test_submit_after_free_asked);
    tcase_add_test(tc, test_attach_from_done);
    tcase_add_test(tc, test_run_timeout_beyond_int);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(cov_async_suite()); }
