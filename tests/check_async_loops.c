/*
 * The asynchronous engine driven by each event-loop adapter (libuv,
 * libevent, epoll) against the fixture server, every test once per loop:
 * 200 calls in flight across three origins, calls to one origin side by
 * side, a retry sleeping on the loop's timer while other calls run,
 * cancellation (before the first turn, in flight, while sleeping),
 * api_async_free with calls in flight (outside the loop and from inside a
 * done callback), cache hits, rejections and cancellations completing on a
 * later turn (also when caused from inside a done callback), deadlines,
 * transport failures and refused connections, and the attach rules. Every
 * test ends by checking that nothing of the adapter is left on the loop:
 * uv_run returns and uv_loop_close succeeds, the event base has no event,
 * the epoll fd is closed, and no epoll or timer fd leaked.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "cbhttp.h"

/* Each call an adapter makes into the engine is one turn of the loop for
 * the engine. The adapters' calls are counted (through these wrappers), so
 * that a test can tell whether a done ran in the turn that caused it. */
static unsigned turns;

static void counted_on_socket(api_async *a, int fd, unsigned events)
{
    turns++;
    api_async_on_socket(a, fd, events);
}

static void counted_on_timer(api_async *a)
{
    turns++;
    api_async_on_timer(a);
}

#define api_async_on_socket counted_on_socket
#define api_async_on_timer counted_on_timer
#include "cbhttp/adapters/epoll.h"
#include "cbhttp/adapters/libevent.h"
#include "cbhttp/adapters/libuv.h"
#undef api_async_on_socket
#undef api_async_on_timer

#include "fixture.h"
#include "helpers/testutil.h"

/* ---- one loop, behind a small driver table ------------------------------ */

typedef enum idle_action { IDLE_NOTHING, IDLE_STOP, IDLE_FREE } idle_action;

typedef struct loopctx loopctx;

typedef struct driver {
    const char *name;
    void (*init)(loopctx *l);
    int (*attach)(loopctx *l); /* attaches l->a: 0 or -1 */
    void (*run)(loopctx *l);   /* until stopped, or nothing keeps the loop alive */
    void (*stop)(loopctx *l);  /* from a callback: run returns soon */
    void (*fini)(loopctx *l);  /* asserts nothing is left on the loop, frees it */
} driver;

struct loopctx {
    const driver *d;
    fixture      *f;
    api_client   *c;
    api_async    *a;        /* NULL once freed */
    int           inflight; /* submitted by the test, done not run yet */
    idle_action   on_idle;  /* what the last done of a batch does */
    bool          stopped;

    uv_loop_t          uv;
    struct event_base *base;
    api_epoll         *ep;     /* freed with the engine */
    int                ep_fd;  /* its fd, to check that it was closed */
    int                app_ep; /* the application's own epoll set */

    int anon_fds; /* epoll and timer fds open when the test began */
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Epoll instances and timerfds open in this process (the fixture's and
 * libcurl's included), to catch one an adapter or loop leaves behind. */
static int count_anon_fds(void)
{
    DIR           *d = opendir("/proc/self/fd");
    struct dirent *de;
    int            n = 0;

    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL) {
        char    path[300], target[64];
        ssize_t len;

        snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
        len = readlink(path, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (strcmp(target, "anon_inode:[eventpoll]") == 0 ||
            strcmp(target, "anon_inode:[timerfd]") == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* libuv */

static void drv_uv_init(loopctx *l) { ck_assert_int_eq(uv_loop_init(&l->uv), 0); }
static int  drv_uv_attach(loopctx *l) { return api_libuv_attach(l->a, &l->uv); }
static void drv_uv_run(loopctx *l) { uv_run(&l->uv, UV_RUN_DEFAULT); }
static void drv_uv_stop(loopctx *l) { uv_stop(&l->uv); }

static void drv_uv_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "left on the loop: %s handle, active %d, closing %d\n",
            uv_handle_type_name(uv_handle_get_type(h)), uv_is_active(h), uv_is_closing(h));
}

static void drv_uv_fini(loopctx *l)
{
    int rc = uv_loop_close(&l->uv);

    if (rc != 0)
        uv_walk(&l->uv, drv_uv_walk, NULL);
    ck_assert_msg(rc == 0, "uv_loop_close: %s", uv_strerror(rc));
}

/* libevent */

static void drv_ev_init(loopctx *l)
{
    l->base = event_base_new();
    ck_assert_ptr_nonnull(l->base);
}
static int  drv_ev_attach(loopctx *l) { return api_libevent_attach(l->a, l->base); }
static void drv_ev_run(loopctx *l) { ck_assert_int_ge(event_base_dispatch(l->base), 0); }
static void drv_ev_stop(loopctx *l) { event_base_loopbreak(l->base); }

static void drv_ev_fini(loopctx *l)
{
    ck_assert_int_eq(
        event_base_get_num_events(l->base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE), 0);
    event_base_free(l->base);
}

/* epoll: the adapter's fd nested in an epoll set of the "application". */

static void drv_ep_init(loopctx *l)
{
    l->app_ep = epoll_create1(EPOLL_CLOEXEC);
    l->ep_fd = -1;
    ck_assert_int_ge(l->app_ep, 0);
}

static int drv_ep_attach(loopctx *l)
{
    struct epoll_event ev = { .events = EPOLLIN };
    api_epoll         *e = api_epoll_attach(l->a);

    if (!e)
        return -1;
    l->ep = e;
    l->ep_fd = api_epoll_fd(e);
    ev.data.fd = l->ep_fd;
    ck_assert_int_eq(epoll_ctl(l->app_ep, EPOLL_CTL_ADD, l->ep_fd, &ev), 0);
    return 0;
}

static void drv_ep_run(loopctx *l)
{
    /* The application's loop: it ends when the engine has nothing left. */
    while (!l->stopped && l->a && api_async_pending(l->a) > 0) {
        struct epoll_event ev;
        int                n = epoll_wait(l->app_ep, &ev, 1, 5000);

        if (n == 1) {
            ck_assert_int_eq(ev.data.fd, api_epoll_fd(l->ep));
            api_epoll_dispatch(l->ep);
        }
    }
    l->stopped = false;
}

static void drv_ep_stop(loopctx *l) { l->stopped = true; }

static void drv_ep_fini(loopctx *l)
{
    struct epoll_event ev;

    /* The engine closed the adapter's fd, which left the application's set. */
    ck_assert_int_eq(epoll_wait(l->app_ep, &ev, 1, 0), 0);
    if (l->ep_fd >= 0)
        ck_assert_int_ne(epoll_ctl(l->app_ep, EPOLL_CTL_DEL, l->ep_fd, NULL), 0);
    close(l->app_ep);
}

static const driver drivers[] = {
    { "libuv", drv_uv_init, drv_uv_attach, drv_uv_run, drv_uv_stop, drv_uv_fini },
    { "libevent", drv_ev_init, drv_ev_attach, drv_ev_run, drv_ev_stop, drv_ev_fini },
    { "epoll", drv_ep_init, drv_ep_attach, drv_ep_run, drv_ep_stop, drv_ep_fini },
};
#define N_DRIVERS ((int)(sizeof(drivers) / sizeof(drivers[0])))

/* ---- calls -------------------------------------------------------------- */

typedef struct call call;
typedef void (*then_fn)(call *k);

struct call {
    loopctx     *l;
    char         path[96];
    api_response resp;
    int          done; /* times done ran */
    cb_err       err;
    uint64_t     t_submit, t_done;
    unsigned     turn_min; /* done must run in a later turn than this */
    then_fn      then;     /* run by done after recording */
    void        *arg;
};

static void free_engine(loopctx *l)
{
    api_async *a = l->a;

    /* NULL first: done callbacks run inside api_async_free. */
    l->a = NULL;
    l->ep = NULL;
    api_async_free(a);
}

static void on_done(cb_err err, api_response *resp, void *ud)
{
    call    *k = ud;
    loopctx *l = k->l;

    ck_assert_ptr_eq(resp, &k->resp);
    /* Never in the turn that submitted or cancelled the call (except
     * inside api_async_free, which runs every pending done). */
    if (l->a)
        ck_assert_msg(turns > k->turn_min,
                      "%s: done ran in the turn that submitted or "
                      "cancelled it",
                      k->path);
    k->done++;
    k->err = err;
    k->t_done = now_ms();
    l->inflight--;
    if (k->then)
        k->then(k);
    if (l->inflight == 0 && l->a) {
        if (l->on_idle == IDLE_FREE)
            free_engine(l);
        else if (l->on_idle == IDLE_STOP)
            l->d->stop(l);
    }
}

/* Submits path (GET); done must not have run when this returns. */
static void submit_opts(loopctx *l, call *k, const char *path, const api_options *o)
{
    k->l = l;
    k->done = 0;
    k->t_submit = now_ms();
    k->turn_min = turns;
    snprintf(k->path, sizeof(k->path), "%s", path);
    l->inflight++;
    ck_assert_int_eq(api_async_get(l->a, path, o, &k->resp, on_done, k), CB_OK);
    ck_assert_msg(k->done == 0, "done ran inside api_async_get(%s)", path);
}

/* Cancels k, whose done must not run inside api_async_cancel, nor in this
 * turn. */
static void cancel(loopctx *l, call *k)
{
    k->turn_min = turns;
    api_async_cancel(l->a, &k->resp);
    ck_assert_int_eq(k->done, 0);
}

static void submit(loopctx *l, call *k, const char *path) { submit_opts(l, k, path, NULL); }

/* libcurl learns whether an origin multiplexes from its first answer, and
 * may hold the first calls to an origin until then
 * (test_one_origin_side_by_side is about that): tests about something else
 * make one call first. */
static void warm_up(loopctx *l)
{
    call        k;
    idle_action was = l->on_idle;

    memset(&k, 0, sizeof(k));
    l->on_idle = IDLE_STOP;
    submit(l, &k, "/status/204");
    l->d->run(l);
    ck_assert_int_eq(k.err, CB_OK);
    api_response_free(&k.resp);
    l->on_idle = was;
}

static void ctx_begin(loopctx *l, int drv, api_client_config *cfg, bool base_url)
{
    memset(l, 0, sizeof(*l));
    l->d = &drivers[drv];
    l->anon_fds = count_anon_fds();
    l->f = fixture_start();
    ck_assert_ptr_nonnull(l->f);
    if (base_url)
        cfg->base_url = fixture_url(l->f);
    if (!cfg->retry.max_attempts)
        cfg->retry.max_attempts = 1;
    if (!cfg->timeout_ms)
        cfg->timeout_ms = 20000;
    l->c = api_client_new(cfg);
    ck_assert_ptr_nonnull(l->c);
    l->a = api_async_new(l->c);
    ck_assert_ptr_nonnull(l->a);
    l->d->init(l);
    ck_assert_int_eq(l->d->attach(l), 0);
}

/* Frees the engine if the test did not, runs the loop until it returns,
 * and checks that nothing is left. */
static void ctx_end(loopctx *l)
{
    uint64_t t0 = now_ms();

    if (l->a)
        free_engine(l);
    l->d->run(l);
    ck_assert_uint_lt(now_ms() - t0, 2000);
    l->d->fini(l);
    api_client_free(l->c);
    fixture_stop(l->f);
    ck_assert_int_eq(count_anon_fds(), l->anon_fds);
}

/* The value of args.id and of the Host header in a /echo body. */
static void echo_id_host(const api_response *r, char *id, char *host, size_t size)
{
    cJSON       *j = cJSON_ParseWithLength(r->body, r->body_len);
    const cJSON *v, *it;

    ck_assert_msg(j != NULL, "not JSON: %s", r->body);
    v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "args"), "id");
    ck_assert(cJSON_IsString(v));
    snprintf(id, size, "%s", v->valuestring);
    host[0] = '\0';
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "headers"))
    {
        if (strcasecmp(it->string, "Host") == 0 && cJSON_IsString(it))
            snprintf(host, size, "%s", it->valuestring);
    }
    cJSON_Delete(j);
}

/* ---- 200 calls in flight across three origins ---------------------------- */

#define FANOUT 200

START_TEST(test_fanout_three_origins)
{
    api_client_config cfg = { .circuit_breaker = { .failure_threshold = 1000 } };
    loopctx           l;
    fixture          *f2;
    call             *k = calloc(FANOUT, sizeof(*k));
    char              origin[3][64], path[128];
    int               i;

    ck_assert_ptr_nonnull(k);
    /* No base URL: every path is an absolute URL. */
    ctx_begin(&l, _i, &cfg, false);
    f2 = fixture_start();
    ck_assert_ptr_nonnull(f2);
    /* 127.0.0.1 and localhost on the same port are two origins. */
    snprintf(origin[0], sizeof(origin[0]), "127.0.0.1:%u", (unsigned)fixture_port(l.f));
    snprintf(origin[1], sizeof(origin[1]), "localhost:%u", (unsigned)fixture_port(l.f));
    snprintf(origin[2], sizeof(origin[2]), "127.0.0.1:%u", (unsigned)fixture_port(f2));

    l.on_idle = IDLE_FREE;
    for (i = 0; i < FANOUT; i++) {
        snprintf(path, sizeof(path), "http://%s/echo?id=%d", origin[i % 3], i);
        submit(&l, &k[i], path);
    }
    ck_assert_uint_eq(api_async_pending(l.a), FANOUT);

    /* The last done frees the engine; the loop must then end by itself. */
    l.d->run(&l);
    ck_assert_ptr_null(l.a);

    for (i = 0; i < FANOUT; i++) {
        char id[64], host[64], want[16];

        ck_assert_msg(k[i].done == 1, "call %d: done ran %d times", i, k[i].done);
        ck_assert_msg(k[i].err == CB_OK, "call %d: %s (%s)", i, cb_strerror(k[i].err),
                      k[i].resp.error);
        ck_assert_int_eq(k[i].resp.status, 200);
        echo_id_host(&k[i].resp, id, host, sizeof(id));
        snprintf(want, sizeof(want), "%d", i);
        ck_assert_str_eq(id, want);
        ck_assert_str_eq(host, origin[i % 3]);
        api_response_free(&k[i].resp);
    }
    ck_assert_uint_eq(fixture_requests_path(l.f, "/echo") + fixture_requests_path(f2, "/echo"),
                      FANOUT);
    ck_assert_uint_eq(fixture_requests_path(f2, "/echo"), FANOUT / 3);
    fixture_stop(f2);
    free(k);
    ctx_end(&l);
}
END_TEST

/* ---- calls to one origin run side by side --------------------------------- */

#define SIDE_BY_SIDE 10

/* When the first answer arrives, every call must have reached the server. */
static void all_arrived(call *k)
{
    fixture *f = k->arg;

    if (k->l->inflight == SIDE_BY_SIDE - 1)
        ck_assert_msg(fixture_requests_path(f, "/delay/") == SIDE_BY_SIDE,
                      "the first answer came when only %llu of %d calls to the origin had "
                      "been sent",
                      (unsigned long long)fixture_requests_path(f, "/delay/"), SIDE_BY_SIDE);
}

START_TEST(test_one_origin_side_by_side)
{
    api_client_config cfg = { .circuit_breaker = { .failure_threshold = 1000 } };
    call              k[SIDE_BY_SIDE];
    loopctx           l;
    int               i;

    memset(k, 0, sizeof(k));
    ctx_begin(&l, _i, &cfg, true);
    l.on_idle = IDLE_STOP;
    for (i = 0; i < SIDE_BY_SIDE; i++) {
        k[i].then = all_arrived;
        k[i].arg = l.f;
        submit(&l, &k[i], "/delay/500");
    }
    l.d->run(&l);
    for (i = 0; i < SIDE_BY_SIDE; i++) {
        ck_assert_int_eq(k[i].err, CB_OK);
        api_response_free(&k[i].resp);
    }
    /* HTTP/1.1: side by side means a connection each. */
    ck_assert_uint_eq(fixture_connections(l.f), SIDE_BY_SIDE);
    ctx_end(&l);
}
END_TEST

/* ---- a retry sleeping on the loop's timer -------------------------------- */

typedef struct retry_scene {
    call r, d, chain;
    int  chain_done;     /* chained calls finished */
    int  chain_before_r; /* ... before the retrying call ended */
} retry_scene;

static void chain_again(call *k)
{
    retry_scene *s = k->arg;

    ck_assert_int_eq(k->err, CB_OK);
    api_response_free(&k->resp);
    s->chain_done++;
    /* Keep the loop busy for as long as the retrying call sleeps. */
    if (!s->r.done)
        submit(k->l, k, "/ok");
}

static void retry_ended(call *k)
{
    retry_scene *s = k->arg;

    s->chain_before_r = s->chain_done;
}

START_TEST(test_retry_sleeps_on_timer)
{
    api_client_config cfg = { .circuit_breaker = { .failure_threshold = 1000 } };
    api_retry_config  retry = { .max_attempts = 3, .max_delay_ms = 5000 };
    api_options       opts = { .retry = &retry };
    retry_scene       s;
    loopctx           l;

    memset(&s, 0, sizeof(s));
    ctx_begin(&l, _i, &cfg, true);
    l.on_idle = IDLE_FREE;
    /* A 503 with Retry-After: 1, then 200: one fixed 1 s sleep. */
    s.r.then = retry_ended;
    s.r.arg = &s;
    submit_opts(&l, &s.r, "/retry-after/async/1?value=1", &opts);
    submit(&l, &s.d, "/delay/300");
    s.chain.then = chain_again;
    s.chain.arg = &s;
    submit(&l, &s.chain, "/ok");
    l.d->run(&l);

    ck_assert_int_eq(s.r.done, 1);
    ck_assert_int_eq(s.r.err, CB_OK);
    ck_assert_int_eq(s.r.resp.status, 200);
    ck_assert_uint_eq(s.r.resp.attempts, 2);
    ck_assert_uint_ge(s.r.t_done - s.r.t_submit, 900);
    ck_assert_uint_eq(fixture_requests_path(l.f, "/retry-after"), 2);
    /* Meanwhile the loop ran other calls: one of 300 ms, and many short
     * ones one after the other. */
    ck_assert_int_eq(s.d.err, CB_OK);
    ck_assert_uint_lt(s.d.t_done, s.r.t_done);
    ck_assert_msg(s.chain_before_r >= 10, "only %d calls ran during the sleep", s.chain_before_r);
    api_response_free(&s.r.resp);
    api_response_free(&s.d.resp);
    ctx_end(&l);
}
END_TEST

/* ---- cancellation --------------------------------------------------------- */

typedef struct cancel_scene {
    call x;       /* in flight on the server: /delay/5000 */
    call z;       /* cancelled before the loop's first turn */
    call sleeper; /* asleep before its retry */
    call trigger; /* /delay/200: cancels x and sleeper */
} cancel_scene;

static void cancel_others(call *k)
{
    cancel_scene *s = k->arg;

    ck_assert_msg(s->x.done == 0,
                  "/delay/5000 ended before /delay/200 (%s): calls to one "
                  "origin did not run side by side",
                  cb_strerror(s->x.err));
    /* Their done does not run inside api_async_cancel (that it waits for a
     * later turn is test_later_turn_from_done's). */
    api_async_cancel(k->l->a, &s->x.resp);
    api_async_cancel(k->l->a, &s->sleeper.resp);
    ck_assert_int_eq(s->x.done, 0);
    ck_assert_int_eq(s->sleeper.done, 0);
}

static void cancel_again(call *k)
{
    /* Already done: nothing happens. */
    api_async_cancel(k->l->a, &k->resp);
}

START_TEST(test_cancel)
{
    /* Two failures open the breaker: the sleeper's 503 is one; a cancelled
     * call must not count as the second. */
    api_client_config cfg = { .circuit_breaker = { .failure_threshold = 2 } };
    api_retry_config  retry = { .max_attempts = 2, .max_delay_ms = 10000 };
    api_options       opts = { .retry = &retry };
    api_response      never;
    cancel_scene      s;
    cb_metrics        m;
    loopctx           l;
    uint64_t          t0 = now_ms();

    memset(&s, 0, sizeof(s));
    memset(&never, 0, sizeof(never));
    ctx_begin(&l, _i, &cfg, true);
    warm_up(&l);
    l.on_idle = IDLE_STOP;
    s.x.then = cancel_again;
    submit(&l, &s.x, "/delay/5000");
    submit_opts(&l, &s.sleeper, "/retry-after/cancel/1?value=5", &opts);
    s.trigger.then = cancel_others;
    s.trigger.arg = &s;
    submit(&l, &s.trigger, "/delay/200");
    submit(&l, &s.z, "/ok");
    cancel(&l, &s.z);
    api_async_cancel(l.a, &never); /* never submitted: nothing happens */
    l.d->run(&l);

    ck_assert_uint_lt(now_ms() - t0, 3000);
    ck_assert_int_eq(s.trigger.err, CB_OK);
    ck_assert_int_eq(s.x.done, 1);
    ck_assert_int_eq(s.x.err, CB_ERR_CANCELLED);
    ck_assert_int_eq(s.z.done, 1);
    ck_assert_int_eq(s.z.err, CB_ERR_CANCELLED);
    ck_assert_int_eq(s.sleeper.done, 1);
    ck_assert_int_eq(s.sleeper.err, CB_ERR_CANCELLED);
    ck_assert_uint_eq(s.sleeper.resp.attempts, 1);
    ck_assert_uint_eq(fixture_requests_path(l.f, "/retry-after"), 1);
    ck_assert_int_eq(api_client_breaker_metrics(l.c, "/", &m), CB_OK);
    ck_assert_uint_eq(m.failures, 1);
    ck_assert_int_eq(m.state, CB_CLOSED);
    ck_assert_uint_eq(api_async_pending(l.a), 0);

    /* The engine still works after cancellations. */
    api_response_free(&s.trigger.resp);
    submit(&l, &s.trigger, "/ok");
    s.trigger.then = NULL;
    l.d->run(&l);
    ck_assert_int_eq(s.trigger.err, CB_OK);

    api_response_free(&s.x.resp);
    api_response_free(&s.z.resp);
    api_response_free(&s.sleeper.resp);
    api_response_free(&s.trigger.resp);
    ctx_end(&l);
}
END_TEST

/* ---- api_async_free with calls in flight ----------------------------------- */

#define N_DELAYED 20
#define N_SLEEPING 3

typedef struct free_scene {
    call delayed[N_DELAYED];   /* on the server */
    call sleeping[N_SLEEPING]; /* asleep before a retry */
    call late;                 /* submitted right before the free */
    call trigger;              /* /delay/300: stops the loop or frees the engine */
} free_scene;

static void submit_in_flight(loopctx *l, free_scene *s, const api_options *opts)
{
    char path[96];
    int  i;

    for (i = 0; i < N_DELAYED; i++)
        submit(l, &s->delayed[i], "/delay/5000");
    for (i = 0; i < N_SLEEPING; i++) {
        snprintf(path, sizeof(path), "/retry-after/free-%d/1?value=5", i);
        submit_opts(l, &s->sleeping[i], path, opts);
    }
    submit(l, &s->trigger, "/delay/300");
}

static void check_all_cancelled(free_scene *s, bool with_late)
{
    int i;

    for (i = 0; i < N_DELAYED; i++) {
        ck_assert_int_eq(s->delayed[i].done, 1);
        ck_assert_int_eq(s->delayed[i].err, CB_ERR_CANCELLED);
        api_response_free(&s->delayed[i].resp);
    }
    for (i = 0; i < N_SLEEPING; i++) {
        ck_assert_int_eq(s->sleeping[i].done, 1);
        ck_assert_int_eq(s->sleeping[i].err, CB_ERR_CANCELLED);
        api_response_free(&s->sleeping[i].resp);
    }
    if (with_late) {
        ck_assert_int_eq(s->late.done, 1);
        ck_assert_int_eq(s->late.err, CB_ERR_CANCELLED);
        api_response_free(&s->late.resp);
    }
    ck_assert_int_eq(s->trigger.done, 1);
    ck_assert_int_eq(s->trigger.err, CB_OK);
    api_response_free(&s->trigger.resp);
}

static void stop_loop(call *k) { k->l->d->stop(k->l); }

START_TEST(test_free_in_flight)
{
    api_client_config cfg = { .circuit_breaker = { .failure_threshold = 1000 } };
    api_retry_config  retry = { .max_attempts = 2, .max_delay_ms = 10000 };
    api_options       opts = { .retry = &retry };
    free_scene       *s = calloc(1, sizeof(*s));
    loopctx           l;
    uint64_t          t0 = now_ms();
    int               i;

    ck_assert_ptr_nonnull(s);
    ctx_begin(&l, _i, &cfg, true);
    warm_up(&l);
    s->trigger.then = stop_loop;
    submit_in_flight(&l, s, &opts);
    l.d->run(&l); /* until the trigger stops it */
    for (i = 0; i < N_DELAYED; i++)
        ck_assert_msg(s->delayed[i].done == 0, "a /delay/5000 ended before /delay/300: calls "
                                               "to one origin did not run side by side");
    ck_assert_uint_eq(fixture_requests_path(l.f, "/delay/5000"), N_DELAYED);
    ck_assert_uint_eq(fixture_requests_path(l.f, "/retry-after"), N_SLEEPING);

    /* Outside the loop: every done runs inside api_async_free. */
    submit(&l, &s->late, "/ok");
    free_engine(&l);
    check_all_cancelled(s, true);
    ck_assert_uint_lt(now_ms() - t0, 3000);
    free(s);
    ctx_end(&l); /* the loop still ends, and nothing is left on it */
}
END_TEST

static void free_from_done(call *k)
{
    free_scene *s = k->arg;
    int         i;

    for (i = 0; i < N_DELAYED; i++)
        ck_assert_msg(s->delayed[i].done == 0, "a /delay/5000 ended before /delay/300: calls "
                                               "to one origin did not run side by side");
    free_engine(k->l);
}

START_TEST(test_free_from_done)
{
    api_client_config cfg = { .circuit_breaker = { .failure_threshold = 1000 } };
    api_retry_config  retry = { .max_attempts = 2, .max_delay_ms = 10000 };
    api_options       opts = { .retry = &retry };
    free_scene       *s = calloc(1, sizeof(*s));
    loopctx           l;
    uint64_t          t0 = now_ms();

    ck_assert_ptr_nonnull(s);
    ctx_begin(&l, _i, &cfg, true);
    warm_up(&l);
    s->trigger.then = free_from_done;
    s->trigger.arg = s;
    submit_in_flight(&l, s, &opts);
    /* The trigger's done frees the engine while 23 calls are in flight; the
     * free finishes when that dispatch returns, and the loop ends. */
    l.d->run(&l);
    ck_assert_ptr_null(l.a);
    check_all_cancelled(s, false);
    ck_assert_uint_lt(now_ms() - t0, 3000);
    free(s);
    ctx_end(&l);
}
END_TEST

/* ---- cache hits and rejections complete on the next turn ------------------- */

START_TEST(test_next_turn)
{
    api_client_config cfg = { .circuit_breaker = { .failure_threshold = 1000,
                                                   .reset_timeout_ms = 60000 } };
    call              first, hit, rejected;
    loopctx           l;

    memset(&first, 0, sizeof(first));
    hit = rejected = first;
    ctx_begin(&l, _i, &cfg, true);
    l.on_idle = IDLE_STOP;
    submit(&l, &first, "/cache/turn?cc=max-age%3D60");
    l.d->run(&l);
    ck_assert_int_eq(first.err, CB_OK);
    ck_assert(!first.resp.from_cache);

    /* Submitted before the loop runs: done on its first turn, not in
     * api_async_get (submit checks). */
    submit(&l, &hit, "/cache/turn?cc=max-age%3D60");
    l.d->run(&l);
    ck_assert_int_eq(hit.done, 1);
    ck_assert_int_eq(hit.err, CB_OK);
    ck_assert(hit.resp.from_cache);
    ck_assert_uint_eq(hit.resp.attempts, 0);
    ck_assert_str_eq(hit.resp.body, first.resp.body);

    ck_assert_int_eq(api_client_trip(l.c, "/"), CB_OK);
    submit(&l, &rejected, "/ok");
    l.d->run(&l);
    ck_assert_int_eq(rejected.done, 1);
    ck_assert_int_eq(rejected.err, CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(rejected.resp.attempts, 0);

    ck_assert_uint_eq(fixture_requests_path(l.f, "/cache/turn"), 1);
    ck_assert_uint_eq(fixture_requests_path(l.f, "/ok"), 0);
    api_response_free(&first.resp);
    api_response_free(&hit.resp);
    api_response_free(&rejected.resp);
    ctx_end(&l);
}
END_TEST

/* ---- inside a done callback: results wait for a later turn ------------------ */

#define HIT_CHAIN 50

typedef struct later_scene {
    call warm, victim, trig, hit, rejected;
    int  hits;
} later_scene;

/* A done that submits a fresh hit again and again: each done in a later
 * turn, or such a chain would keep the loop from ever turning. */
static void hit_again(call *k)
{
    later_scene *s = k->arg;

    ck_assert_int_eq(k->err, CB_OK);
    ck_assert(k->resp.from_cache);
    api_response_free(&k->resp);
    if (++s->hits < HIT_CHAIN)
        submit(k->l, k, "/cache/later?cc=max-age%3D60");
}

/* Inside a dispatch: a fresh hit, a cancellation and a rejection. The
 * generic check in on_done asserts that none of their dones runs in this
 * turn. */
static void act_from_done(call *k)
{
    later_scene *s = k->arg;

    ck_assert_int_eq(k->err, CB_OK);
    s->hit.then = hit_again;
    s->hit.arg = s;
    submit(k->l, &s->hit, "/cache/later?cc=max-age%3D60");
    cancel(k->l, &s->victim);
    ck_assert_int_eq(api_client_trip(k->l->c, "/"), CB_OK);
    submit(k->l, &s->rejected, "/ok");
}

START_TEST(test_later_turn_from_done)
{
    api_client_config cfg = { .circuit_breaker = { .failure_threshold = 1000,
                                                   .reset_timeout_ms = 60000 } };
    later_scene       s;
    loopctx           l;

    memset(&s, 0, sizeof(s));
    ctx_begin(&l, _i, &cfg, true);
    l.on_idle = IDLE_STOP;
    submit(&l, &s.warm, "/cache/later?cc=max-age%3D60");
    l.d->run(&l);
    ck_assert_int_eq(s.warm.err, CB_OK);

    submit(&l, &s.victim, "/delay/5000");
    s.trig.then = act_from_done;
    s.trig.arg = &s;
    submit(&l, &s.trig, "/delay/200");
    l.d->run(&l);
    ck_assert_int_eq(s.hits, HIT_CHAIN);
    ck_assert_int_eq(s.victim.done, 1);
    ck_assert_int_eq(s.victim.err, CB_ERR_CANCELLED);
    ck_assert_int_eq(s.rejected.done, 1);
    ck_assert_int_eq(s.rejected.err, CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(fixture_requests_path(l.f, "/cache/later"), 1);
    ck_assert_uint_eq(fixture_requests_path(l.f, "/ok"), 0);
    api_response_free(&s.warm.resp);
    api_response_free(&s.victim.resp);
    api_response_free(&s.trig.resp);
    api_response_free(&s.rejected.resp);
    ctx_end(&l);
}
END_TEST

/* ---- outcomes other than success ------------------------------------------- */

static void submit_post(loopctx *l, call *k, const char *path, const char *body)
{
    k->l = l;
    k->done = 0;
    k->t_submit = now_ms();
    k->turn_min = turns;
    snprintf(k->path, sizeof(k->path), "POST %s", path);
    l->inflight++;
    ck_assert_int_eq(
        api_async_request(l->a, "POST", path, body, strlen(body), NULL, &k->resp, on_done, k),
        CB_OK);
    ck_assert_int_eq(k->done, 0);
}

START_TEST(test_outcomes)
{
    api_client_config cfg = { .circuit_breaker = { .failure_threshold = 1000 } };
    api_options       short_deadline = { .timeout_ms = 300 };
    call              timeout, reset, missing, post, refused, back;
    loopctx           l;
    int               n;

    memset(&timeout, 0, sizeof(timeout));
    reset = missing = post = refused = back = timeout;
    ctx_begin(&l, _i, &cfg, true);
    /* No stop and no free: an idle engine leaves nothing that keeps the
     * loop alive, so the loop ends by itself when the calls are done. */
    l.on_idle = IDLE_NOTHING;
    submit_opts(&l, &timeout, "/delay/5000", &short_deadline);
    submit(&l, &reset, "/reset-mid-body");
    submit(&l, &missing, "/status/404");
    submit_post(&l, &post, "/echo", "hello, loop");
    l.d->run(&l);
    ck_assert_int_eq(l.inflight, 0);

    /* The deadline is one of the engine's timers, on the loop's timer. */
    ck_assert_int_eq(timeout.err, CB_ERR_TIMEOUT);
    ck_assert_uint_ge(timeout.t_done - timeout.t_submit, 250);
    ck_assert_uint_lt(timeout.t_done - timeout.t_submit, 2000);
    ck_assert_int_eq(reset.err, CB_ERR_TRANSPORT);
    ck_assert_int_eq(missing.err, CB_ERR_HTTP);
    ck_assert_int_eq(missing.resp.status, 404);
    ck_assert_int_eq(post.err, CB_OK);
    ck_assert_ptr_nonnull(strstr(post.resp.body, "\"body\":\"hello, loop\""));

    /* Connections refused (the socket fails), then the server is back. */
    fixture_set_outage(l.f, FIXTURE_DOWN_REFUSE);
    submit(&l, &refused, "/ok");
    l.d->run(&l);
    ck_assert_int_eq(refused.err, CB_ERR_CONNECT);
    fixture_set_outage(l.f, FIXTURE_UP);
    submit(&l, &back, "/ok");
    l.d->run(&l);
    ck_assert_int_eq(back.err, CB_OK);

    n = 0;
    n += timeout.done + reset.done + missing.done + post.done + refused.done + back.done;
    ck_assert_int_eq(n, 6);
    api_response_free(&timeout.resp);
    api_response_free(&reset.resp);
    api_response_free(&missing.resp);
    api_response_free(&post.resp);
    api_response_free(&refused.resp);
    api_response_free(&back.resp);
    ctx_end(&l);
}
END_TEST

/* ---- attach rules ----------------------------------------------------------- */

START_TEST(test_attach_rules)
{
    api_client_config cfg = { .circuit_breaker = { .failure_threshold = 1000 } };
    loopctx           l;
    api_async        *main_a, *busy;
    call              k, pre;
    int               old_fd;

    memset(&k, 0, sizeof(k));
    memset(&pre, 0, sizeof(pre));
    ctx_begin(&l, _i, &cfg, true);
    /* Attached: api_async_run refuses. */
    ck_assert_int_eq(api_async_run(l.a, 0), -1);

    /* A second attach replaces the first adapter, which is detached (for
     * epoll: its fd closed, which took it out of the application's set). */
    old_fd = l.ep_fd;
    ck_assert_int_eq(l.d->attach(&l), 0);
    if (old_fd >= 0)
        ck_assert_int_ne(epoll_ctl(l.app_ep, EPOLL_CTL_DEL, old_fd, NULL), 0);
    l.on_idle = IDLE_STOP;
    submit(&l, &k, "/ok");
    l.d->run(&l);
    ck_assert_int_eq(k.done, 1);
    ck_assert_int_eq(k.err, CB_OK);
    api_response_free(&k.resp);

    /* Idle again (its kept-alive connection still open): a third adapter
     * takes over, and the connection serves it. */
    ck_assert_int_eq(l.d->attach(&l), 0);
    submit(&l, &k, "/ok");
    l.d->run(&l);
    ck_assert_int_eq(k.done, 1);
    ck_assert_int_eq(k.err, CB_OK);
    api_response_free(&k.resp);
    ck_assert_uint_eq(fixture_connections(l.f), 1);
    l.on_idle = IDLE_NOTHING;

    /* NULL arguments. */
    ck_assert_int_eq(api_libuv_attach(NULL, &l.uv), -1);
    ck_assert_int_eq(api_libevent_attach(NULL, NULL), -1);
    ck_assert_ptr_null(api_epoll_attach(NULL));
    ck_assert_int_eq(api_epoll_fd(NULL), -1);
    api_epoll_dispatch(NULL);

    /* An engine with a call in flight refuses to be attached, and the
     * failed attach leaves nothing on the loop. */
    busy = api_async_new(l.c);
    ck_assert_ptr_nonnull(busy);
    main_a = l.a;
    l.a = busy;
    submit(&l, &pre, "/ok");
    ck_assert_int_eq(l.d->attach(&l), -1);
    free_engine(&l); /* busy */
    l.a = main_a;
    ck_assert_int_eq(pre.done, 1);
    ck_assert_int_eq(pre.err, CB_ERR_CANCELLED);
    api_response_free(&pre.resp);
    ctx_end(&l);
}
END_TEST

/* ---- the suite ---------------------------------------------------------------- */

static void print_driver_order(void)
{
    int i;

    /* Loop tests run once per driver, _i indexing this list. */
    for (i = 0; i < N_DRIVERS; i++)
        fprintf(stderr, "%s%d=%s", i ? ", " : "async loops: ", i, drivers[i].name);
    fputc('\n', stderr);
}

static Suite *loops_suite(void)
{
    Suite *s = suite_create("async_loops");
    TCase *tc;

    tc = tcase_create("loops");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_fanout_three_origins, 0, N_DRIVERS);
    tcase_add_loop_test(tc, test_one_origin_side_by_side, 0, N_DRIVERS);
    tcase_add_loop_test(tc, test_retry_sleeps_on_timer, 0, N_DRIVERS);
    tcase_add_loop_test(tc, test_cancel, 0, N_DRIVERS);
    tcase_add_loop_test(tc, test_free_in_flight, 0, N_DRIVERS);
    tcase_add_loop_test(tc, test_free_from_done, 0, N_DRIVERS);
    tcase_add_loop_test(tc, test_next_turn, 0, N_DRIVERS);
    tcase_add_loop_test(tc, test_later_turn_from_done, 0, N_DRIVERS);
    tcase_add_loop_test(tc, test_outcomes, 0, N_DRIVERS);
    tcase_add_loop_test(tc, test_attach_rules, 0, N_DRIVERS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    print_driver_order();
    return tu_run_suite(loops_suite());
}
