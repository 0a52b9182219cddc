/* cbhttp: threaded */
/*
 * The asynchronous engine (api_async_*) with api_async_run as the loop,
 * against the fixture server: when done runs (once, never inside
 * api_async_request or api_async_cancel), completions without I/O (fresh
 * cache hits, rejections), hundreds of calls across origins, a breaker
 * opening while calls are in flight (their late outcomes), retries waiting
 * on a timer, deadlines (real and on the fake clock), cancellation, freeing
 * with calls in flight and from inside a done, what callbacks may do, bad
 * input, results identical to the blocking API, copies made at submission,
 * redirects across origins, and a blocking caller on another thread sharing
 * the client. The adapters (libuv, libevent, epoll) are check_async_loops'.
 *
 * Time: the only wall-time assertions are lower bounds after a real wait.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "cbhttp.h"
#include "fixture.h"
#include "helpers/clients.h"
#include "helpers/testutil.h"

/* Turns of the loop after which a wait is taken for a hang (the Check
 * timeout usually strikes first; under CK_FORK=no it is the only guard). */
#define MAX_TURNS 100000

/* ---- recording calls ------------------------------------------------------ */

typedef struct call call;
typedef void (*then_fn)(call *k);

struct call {
    api_response resp;
    api_async   *a;
    int          done; /* times done ran */
    cb_err       err;
    int          rank;             /* 1-based place among the test's completions */
    bool         in_free;          /* done ran inside api_async_free */
    uint64_t     t_submit, t_done; /* real ms */
    then_fn      then;             /* run by done after recording */
    void        *arg;
    long         note; /* for then functions */
};

/* Reset before every test: with CK_FORK=no the tests share a process. */
static int g_rank;       /* completions so far */
static int g_submitting; /* api_async_request calls in progress */
static int g_cancelling; /* api_async_cancel calls in progress */
static int g_freeing;    /* api_async_free calls in progress */
static int g_bad_dones;  /* dones that ran inside a submit or a cancel */

static void reset_globals(void)
{
    g_rank = 0;
    g_submitting = 0;
    g_cancelling = 0;
    g_freeing = 0;
    g_bad_dones = 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void on_done(cb_err err, api_response *resp, void *ud)
{
    call *k = ud;

    ck_assert_ptr_eq(resp, &k->resp);
    if (g_submitting || g_cancelling)
        g_bad_dones++;
    k->done++;
    k->err = err;
    k->rank = ++g_rank;
    k->in_free = g_freeing > 0;
    k->t_done = now_ms();
    if (k->then)
        k->then(k);
}

static cb_err submit_req(api_async *a, call *k, const char *method, const char *path,
                         const char *body, size_t body_len, const api_options *o)
{
    cb_err err;

    k->a = a;
    k->done = 0;
    k->t_submit = now_ms();
    g_submitting++;
    err = api_async_request(a, method, path, body, body_len, o, &k->resp, on_done, k);
    g_submitting--;
    return err;
}

/* GET path; it must be accepted, and done must not have run. */
static void submit(api_async *a, call *k, const char *path, const api_options *o)
{
    cb_err err = submit_req(a, k, "GET", path, NULL, 0, o);

    ck_assert_msg(err == CB_OK, "GET %s refused: %s (%s)", path, cb_strerror(err), k->resp.error);
    ck_assert_msg(k->done == 0, "done ran inside api_async_request(%s)", path);
}

static void cancel(api_async *a, api_response *resp)
{
    g_cancelling++;
    api_async_cancel(a, resp);
    g_cancelling--;
}

static void free_engine(api_async *a)
{
    g_freeing++;
    api_async_free(a);
    g_freeing--;
}

/* Runs the loop until nothing is in flight. */
static void run_all(api_async *a)
{
    int n, turns = 0;

    while ((n = api_async_run(a, 100)) > 0)
        ck_assert_msg(++turns < MAX_TURNS, "the loop never went idle");
    ck_assert_int_eq(n, 0);
}

typedef bool (*pred_fn)(void *arg);

/* Runs the loop in short turns until pred holds; calls stay in flight. */
static void run_until(api_async *a, pred_fn pred, void *arg)
{
    int turns = 0;

    while (!pred(arg)) {
        int n = api_async_run(a, 20);

        ck_assert_msg(n > 0, "the loop went idle first (%d)", n);
        ck_assert_msg(++turns < MAX_TURNS, "waited for ever");
    }
}

typedef struct path_count {
    const fixture *f;
    const char    *prefix;
    uint64_t       n;
} path_count;

/* The fixture received at least n requests whose path starts with prefix. */
static bool fixture_saw(void *arg)
{
    path_count *p = arg;

    return fixture_requests_path(p->f, p->prefix) >= p->n;
}

static void wait_fixture(api_async *a, const fixture *f, const char *prefix, uint64_t n)
{
    path_count p = { f, prefix, n };

    run_until(a, fixture_saw, &p);
}

typedef struct breaker_wait {
    api_client *c;
    const char *url;
    uint64_t    failures; /* at least */
    bool        open;     /* ...and OPEN */
} breaker_wait;

static bool breaker_reached(void *arg)
{
    breaker_wait *w = arg;
    cb_metrics    m;

    if (api_client_breaker_metrics(w->c, w->url, &m) != CB_OK)
        return false;
    return m.failures >= w->failures && (!w->open || m.state == CB_OPEN);
}

static cb_metrics breaker_metrics(api_client *c, const char *url)
{
    cb_metrics m;

    ck_assert_int_eq(api_client_breaker_metrics(c, url, &m), CB_OK);
    return m;
}

static api_client *client_new(const fixture *f, api_client_config *cfg)
{
    return tu_engine_client(f ? fixture_url(f) : NULL, cfg);
}

/* ---- JSON of /echo ---------------------------------------------------------- */

static cJSON *body_json(const api_response *r)
{
    cJSON *j;

    ck_assert_ptr_nonnull(r->body);
    j = cJSON_ParseWithLength(r->body, r->body_len);
    ck_assert_msg(j != NULL, "not JSON: %s", r->body);
    return j;
}

/* A request header /echo saw (names ignore case): its value (copied into
 * out, "" when absent) and how many lines carried it. */
static int echo_header(const api_response *r, const char *name, char *out, size_t size)
{
    cJSON       *j = body_json(r);
    const cJSON *it;
    int          n = 0;

    out[0] = '\0';
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "headers"))
    {
        if (strcasecmp(it->string, name) == 0 && cJSON_IsString(it)) {
            if (!n)
                snprintf(out, size, "%s", it->valuestring);
            n++;
        }
    }
    cJSON_Delete(j);
    return n;
}

static void echo_str(const api_response *r, const char *name, char *out, size_t size)
{
    cJSON       *j = body_json(r);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);

    ck_assert_msg(cJSON_IsString(v), "no \"%s\" in %s", name, r->body);
    snprintf(out, size, "%s", v->valuestring);
    cJSON_Delete(j);
}

static void echo_arg(const api_response *r, const char *name, char *out, size_t size)
{
    cJSON       *j = body_json(r);
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "args"), name);

    ck_assert_msg(cJSON_IsString(v), "no args.%s in %s", name, r->body);
    snprintf(out, size, "%s", v->valuestring);
    cJSON_Delete(j);
}

/* The body with the fixture's request counter "n" taken out, which differs
 * between two otherwise identical requests; a non-JSON body as it is.
 * Returns a string to free(). */
static char *body_sans_n(const api_response *r)
{
    cJSON *j;
    char  *s;

    ck_assert_ptr_nonnull(r->body);
    j = cJSON_ParseWithLength(r->body, r->body_len);
    if (!j) {
        s = strdup(r->body);
        ck_assert_ptr_nonnull(s);
        return s;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(j, "n");
    s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* ---- done runs once, on the loop, never inside the submission --------------- */

START_TEST(test_done_once_next_turn)
{
    fixture    *f = fixture_start();
    api_client *c;
    api_async  *a;
    call        ok, miss, hit, rej, hit2;
    uint64_t    before;
    cb_metrics  m;

    memset(&ok, 0, sizeof(ok));
    memset(&miss, 0, sizeof(miss));
    memset(&hit, 0, sizeof(hit));
    memset(&rej, 0, sizeof(rej));
    memset(&hit2, 0, sizeof(hit2));
    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);

    /* Idle: nothing to do, at once. */
    ck_assert_uint_eq(api_async_pending(a), 0);
    ck_assert_int_eq(api_async_run(a, 0), 0);
    ck_assert_int_eq(api_async_run(a, 5000), 0);

    submit(a, &ok, "/ok", NULL);
    ck_assert_uint_eq(api_async_pending(a), 1);
    run_all(a);
    ck_assert_int_eq(ok.done, 1);
    ck_assert_int_eq(ok.err, CB_OK);
    ck_assert_int_eq(ok.resp.status, 200);
    ck_assert_uint_eq(ok.resp.attempts, 1);
    ck_assert_uint_eq(api_async_pending(a), 0);
    /* More turns never run it again. */
    ck_assert_int_eq(api_async_run(a, 0), 0);
    ck_assert_int_eq(api_async_run(a, 10), 0);
    ck_assert_int_eq(ok.done, 1);

    /* A fresh cache hit: nothing sent, done on the next turn. */
    submit(a, &miss, "/cache/once?cc=max-age%3D60", NULL);
    run_all(a);
    ck_assert_int_eq(miss.err, CB_OK);
    ck_assert(!miss.resp.from_cache);
    ck_assert_uint_eq(miss.resp.attempts, 1);
    before = fixture_requests(f);
    submit(a, &hit, "/cache/once?cc=max-age%3D60", NULL);
    ck_assert_uint_eq(api_async_pending(a), 1);
    ck_assert_int_eq(api_async_run(a, 0), 0);
    ck_assert_int_eq(hit.done, 1);
    ck_assert_int_eq(hit.err, CB_OK);
    ck_assert(hit.resp.from_cache);
    ck_assert_uint_eq(hit.resp.attempts, 0);
    ck_assert_int_eq(hit.resp.status, 200);
    ck_assert_str_eq(hit.resp.body, miss.resp.body);
    ck_assert_uint_eq(fixture_requests(f), before);

    /* An open breaker: rejected without I/O, done on the next turn. */
    ck_assert_int_eq(api_client_trip(c, "/"), CB_OK);
    submit(a, &rej, "/ok", NULL);
    ck_assert_uint_eq(api_async_pending(a), 1);
    ck_assert_int_eq(api_async_run(a, 0), 0);
    ck_assert_int_eq(rej.done, 1);
    ck_assert_int_eq(rej.err, CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(rej.resp.attempts, 0);
    ck_assert_int_eq(rej.resp.status, 0);
    ck_assert_ptr_nonnull(rej.resp.body);
    ck_assert_str_eq(rej.resp.body, "");
    ck_assert_str_ne(rej.resp.error, "");
    ck_assert_uint_eq(fixture_requests(f), before);
    m = breaker_metrics(c, "/");
    ck_assert_uint_eq(m.rejected, 1);

    /* A fresh entry is still served while the circuit is open. */
    submit(a, &hit2, "/cache/once?cc=max-age%3D60", NULL);
    ck_assert_int_eq(api_async_run(a, 0), 0);
    ck_assert_int_eq(hit2.done, 1);
    ck_assert_int_eq(hit2.err, CB_OK);
    ck_assert(hit2.resp.from_cache);
    ck_assert_uint_eq(hit2.resp.attempts, 0);
    ck_assert_uint_eq(fixture_requests(f), before);

    ck_assert_int_eq(api_async_run(a, 0), 0);
    ck_assert_int_eq(ok.done + miss.done + hit.done + rej.done + hit2.done, 5);
    ck_assert_int_eq(g_bad_dones, 0);
    api_response_free(&ok.resp);
    api_response_free(&miss.resp);
    api_response_free(&hit.resp);
    api_response_free(&rej.resp);
    api_response_free(&hit2.resp);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- hundreds in flight, several origins ------------------------------------- */

#define FANOUT 300

START_TEST(test_fanout_origins)
{
    fixture    *f = fixture_start(), *f2 = fixture_start();
    api_client *c;
    api_async  *a;
    call       *k = calloc(FANOUT, sizeof(*k));
    char        origin[3][64], path[128];
    size_t      last;
    int         i, turns = 0, n;

    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(f2);
    ck_assert_ptr_nonnull(k);
    c = client_new(NULL, NULL); /* no base URL: absolute URLs */
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    /* 127.0.0.1 and localhost on one port are two origins. */
    snprintf(origin[0], sizeof(origin[0]), "127.0.0.1:%u", (unsigned)fixture_port(f));
    snprintf(origin[1], sizeof(origin[1]), "localhost:%u", (unsigned)fixture_port(f));
    snprintf(origin[2], sizeof(origin[2]), "127.0.0.1:%u", (unsigned)fixture_port(f2));
    for (i = 0; i < FANOUT; i++) {
        snprintf(path, sizeof(path), "http://%s/echo?id=%d", origin[i % 3], i);
        submit(a, &k[i], path, NULL);
    }
    ck_assert_uint_eq(api_async_pending(a), FANOUT);

    /* Pending counts down, by exactly the dones that ran. */
    last = FANOUT;
    while ((n = api_async_run(a, 100)) > 0) {
        ck_assert_uint_eq((size_t)n, api_async_pending(a));
        ck_assert_uint_le(api_async_pending(a), last);
        ck_assert_int_eq(n, FANOUT - g_rank);
        last = api_async_pending(a);
        ck_assert(++turns < MAX_TURNS);
    }
    ck_assert_int_eq(n, 0);
    ck_assert_uint_eq(api_async_pending(a), 0);
    ck_assert_int_eq(g_rank, FANOUT);

    for (i = 0; i < FANOUT; i++) {
        char id[32], host[64], want[16];

        ck_assert_msg(k[i].done == 1, "call %d: done ran %d times", i, k[i].done);
        ck_assert_msg(k[i].err == CB_OK, "call %d: %s (%s)", i, cb_strerror(k[i].err),
                      k[i].resp.error);
        ck_assert_int_eq(k[i].resp.status, 200);
        echo_arg(&k[i].resp, "id", id, sizeof(id));
        snprintf(want, sizeof(want), "%d", i);
        ck_assert_str_eq(id, want);
        ck_assert_int_eq(echo_header(&k[i].resp, "Host", host, sizeof(host)), 1);
        ck_assert_str_eq(host, origin[i % 3]);
        api_response_free(&k[i].resp);
    }
    ck_assert_uint_eq(fixture_requests_path(f, "/echo"), 2 * FANOUT / 3);
    ck_assert_uint_eq(fixture_requests_path(f2, "/echo"), FANOUT / 3);
    ck_assert_int_eq(g_bad_dones, 0);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
    fixture_stop(f2);
    free(k);
}
END_TEST

/* ---- a breaker opening while calls are in flight ------------------------------ */

#define N_FAST_FAIL 3 /* /status/503: the failures that open it */
#define N_HANG_OK 10  /* /hang, released after it opened: late successes */
#define N_HANG_BAD 7  /* the same, classified as failures: late failures */
#define N_AFTER 5     /* submitted once it is open */

static bool classify_all_fail(cb_err err, long status, void *ud)
{
    (void)err;
    (void)status;
    (void)ud;
    return true;
}

START_TEST(test_breaker_opens_in_flight)
{
    api_client_config cfg = { .circuit_breaker = { .failure_threshold = N_FAST_FAIL,
                                                   .reset_timeout_ms = 600000 } };
    api_options       bad = { .classify = classify_all_fail };
    fixture          *f = fixture_start();
    api_client       *c;
    api_async        *a;
    call              fast[N_FAST_FAIL], ok[N_HANG_OK], badc[N_HANG_BAD], after[N_AFTER];
    breaker_wait      bw;
    cb_metrics        m;
    uint64_t          reqs;
    int               i;

    memset(fast, 0, sizeof(fast));
    memset(ok, 0, sizeof(ok));
    memset(badc, 0, sizeof(badc));
    memset(after, 0, sizeof(after));
    ck_assert_ptr_nonnull(f);
    cfg.cache.disabled = true;
    c = client_new(f, &cfg);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);

    /* Every permit is taken at submission, while the breaker is CLOSED. */
    for (i = 0; i < N_HANG_OK; i++)
        submit(a, &ok[i], "/hang", NULL);
    for (i = 0; i < N_HANG_BAD; i++)
        submit(a, &badc[i], "/hang", &bad);
    for (i = 0; i < N_FAST_FAIL; i++)
        submit(a, &fast[i], "/status/503", NULL);
    ck_assert_uint_eq(breaker_metrics(c, "/").total_requests, 20);

    /* The three 503s open it while the seventeen hang on the server. */
    bw.c = c;
    bw.url = "/";
    bw.failures = N_FAST_FAIL;
    bw.open = true;
    run_until(a, breaker_reached, &bw);
    wait_fixture(a, f, "/hang", N_HANG_OK + N_HANG_BAD);
    for (i = 0; i < N_FAST_FAIL; i++) {
        ck_assert_int_eq(fast[i].done, 1);
        ck_assert_int_eq(fast[i].err, CB_ERR_HTTP);
        ck_assert_int_eq(fast[i].resp.status, 503);
    }
    m = breaker_metrics(c, "/");
    ck_assert_int_eq(m.state, CB_OPEN);
    ck_assert_uint_eq(m.failures, N_FAST_FAIL);
    ck_assert_uint_eq(m.successes, 0);
    ck_assert_uint_eq(m.times_opened, 1);
    ck_assert_uint_eq(m.late_outcomes, 0);
    ck_assert_uint_eq(api_async_pending(a), N_HANG_OK + N_HANG_BAD);

    /* New calls are rejected without I/O, on the next turn. */
    reqs = fixture_requests(f);
    for (i = 0; i < N_AFTER; i++)
        submit(a, &after[i], "/ok", NULL);
    ck_assert_int_eq(api_async_run(a, 0), N_HANG_OK + N_HANG_BAD);
    for (i = 0; i < N_AFTER; i++) {
        ck_assert_int_eq(after[i].done, 1);
        ck_assert_int_eq(after[i].err, CB_ERR_CIRCUIT_OPEN);
        ck_assert_uint_eq(after[i].resp.attempts, 0);
    }
    ck_assert_uint_eq(fixture_requests(f), reqs);
    ck_assert_uint_eq(fixture_requests_path(f, "/ok"), 0);

    /* The calls admitted before the trip finish; their outcomes are
     * counted as late and leave the state alone. */
    fixture_set_outage(f, FIXTURE_UP); /* releases /hang */
    run_all(a);
    for (i = 0; i < N_HANG_OK; i++) {
        ck_assert_int_eq(ok[i].done, 1);
        ck_assert_int_eq(ok[i].err, CB_OK);
        ck_assert_int_eq(ok[i].resp.status, 200);
        ck_assert_uint_eq(ok[i].resp.attempts, 1);
    }
    for (i = 0; i < N_HANG_BAD; i++) {
        /* The classification feeds the breaker, not the result. */
        ck_assert_int_eq(badc[i].done, 1);
        ck_assert_int_eq(badc[i].err, CB_OK);
        ck_assert_int_eq(badc[i].resp.status, 200);
    }
    m = breaker_metrics(c, "/");
    ck_assert_int_eq(m.state, CB_OPEN);
    ck_assert_uint_eq(m.times_opened, 1);
    ck_assert_uint_eq(m.successes, N_HANG_OK);
    ck_assert_uint_eq(m.failures, N_FAST_FAIL + N_HANG_BAD);
    ck_assert_uint_eq(m.late_outcomes, N_HANG_OK + N_HANG_BAD);
    ck_assert_uint_eq(m.rejected, N_AFTER);
    ck_assert_uint_eq(m.total_requests, 20 + N_AFTER);
    ck_assert_uint_eq(m.ignored, 0);
    ck_assert_uint_eq(fixture_requests(f), reqs);
    ck_assert_int_eq(g_bad_dones, 0);

    for (i = 0; i < N_FAST_FAIL; i++)
        api_response_free(&fast[i].resp);
    for (i = 0; i < N_HANG_OK; i++)
        api_response_free(&ok[i].resp);
    for (i = 0; i < N_HANG_BAD; i++)
        api_response_free(&badc[i].resp);
    for (i = 0; i < N_AFTER; i++)
        api_response_free(&after[i].resp);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- a retry waits on a timer, other calls proceed ----------------------------- */

#define N_QUICK 5

/* A quick call's done: where the retrying call stood when it ended. */
static void note_retry_progress(call *k)
{
    const fixture *f = k->arg;

    k->note = (long)fixture_requests_path(f, "/retry-after");
}

START_TEST(test_retry_timer_others_proceed)
{
    /* Full jitter makes a plain backoff anywhere in [0, base]: a
     * Retry-After of 1 s pins the wait, so the order proves it. */
    api_retry_config retry = {
        .max_attempts = 2, .base_delay_ms = 300, .max_delay_ms = 5000, .budget_disabled = true
    };
    api_options opts = { .retry = &retry };
    fixture    *f = fixture_start();
    api_client *c;
    api_async  *a;
    call        r, q[N_QUICK];
    int         i;

    memset(&r, 0, sizeof(r));
    memset(q, 0, sizeof(q));
    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    submit(a, &r, "/retry-after/rt/1?value=1", &opts);
    /* Its first attempt (the 503) is answered before the quick calls are
     * sent, so that they run while it waits. */
    wait_fixture(a, f, "/retry-after", 1);
    for (i = 0; i < N_QUICK; i++) {
        q[i].then = note_retry_progress;
        q[i].arg = f;
        submit(a, &q[i], "/delay/50", NULL);
    }
    run_all(a);

    ck_assert_int_eq(r.done, 1);
    ck_assert_int_eq(r.err, CB_OK);
    ck_assert_int_eq(r.resp.status, 200);
    ck_assert_uint_eq(r.resp.attempts, 2);
    ck_assert_int_eq(r.rank, N_QUICK + 1); /* last */
    /* The client's clock is the coarse monotonic one: exact on it, a
     * few ms of slack on CLOCK_MONOTONIC. */
    ck_assert_uint_ge(r.resp.elapsed_ms, 1000);
    ck_assert_uint_ge(r.t_done - r.t_submit, 990);
    for (i = 0; i < N_QUICK; i++) {
        ck_assert_int_eq(q[i].done, 1);
        ck_assert_int_eq(q[i].err, CB_OK);
        ck_assert_int_lt(q[i].rank, r.rank);
        /* Only the first attempt had been made when it ended. */
        ck_assert_int_eq(q[i].note, 1);
        api_response_free(&q[i].resp);
    }
    ck_assert_uint_eq(fixture_requests_path(f, "/retry-after"), 2);
    api_response_free(&r.resp);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- deadlines ----------------------------------------------------------------- */

START_TEST(test_deadline_real)
{
    api_client_config cfg = { .retry = { .max_attempts = 3, .base_delay_ms = 10 } };
    api_options       opts = { .timeout_ms = 300 };
    fixture          *f = fixture_start();
    api_client       *c;
    api_async        *a;
    call              h, after;
    cb_metrics        m;

    memset(&h, 0, sizeof(h));
    memset(&after, 0, sizeof(after));
    ck_assert_ptr_nonnull(f);
    c = client_new(f, &cfg);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    submit(a, &h, "/hang", &opts);
    run_all(a);
    ck_assert_int_eq(h.done, 1);
    ck_assert_int_eq(h.err, CB_ERR_TIMEOUT);
    ck_assert_uint_ge(h.resp.elapsed_ms, 300);
    ck_assert_uint_ge(h.t_done - h.t_submit, 290);
    ck_assert_uint_eq(h.resp.attempts, 1); /* no retry past the deadline */
    ck_assert_int_eq(h.resp.status, 0);
    ck_assert_str_ne(h.resp.error, "");
    ck_assert_uint_eq(fixture_requests_path(f, "/hang"), 1);
    m = breaker_metrics(c, "/");
    ck_assert_uint_eq(m.failures, 1);
    /* The transfer was taken off the engine: nothing left to run... */
    ck_assert_uint_eq(api_async_pending(a), 0);
    ck_assert_int_eq(api_async_run(a, 0), 0);
    /* ...and its connection, cut, is not the one the next call uses. */
    fixture_set_outage(f, FIXTURE_UP);
    submit(a, &after, "/ok", NULL);
    run_all(a);
    ck_assert_int_eq(after.err, CB_OK);
    ck_assert_uint_eq(fixture_connections(f), 2);
    ck_assert_int_eq(h.done, 1);
    api_response_free(&h.resp);
    api_response_free(&after.resp);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_deadline_fake_clock)
{
    api_client_config cfg;
    api_options       opts = { .timeout_ms = 30000 };
    tu_clock          tc;
    fixture          *f = fixture_start();
    api_client       *c;
    api_async        *a;
    call              h, d;
    int               i;

    memset(&cfg, 0, sizeof(cfg));
    memset(&h, 0, sizeof(h));
    memset(&d, 0, sizeof(d));
    ck_assert_ptr_nonnull(f);
    tu_clock_install(&tc, &cfg);
    cfg.retry.max_attempts = 3;
    c = client_new(f, &cfg);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    submit(a, &h, "/hang", &opts);
    submit(a, &d, "/delay/60000", &opts);
    wait_fixture(a, f, "/hang", 1);
    wait_fixture(a, f, "/delay", 1);
    /* The client's clock has not moved: no deadline yet. */
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(api_async_run(a, 10), 2);
    ck_assert_int_eq(h.done + d.done, 0);

    /* Past the deadline on the client's clock: the engine's own timer
     * ends both on the next turn, whatever real time did. */
    tc.now_ms += 30001;
    ck_assert_int_eq(api_async_run(a, 0), 0);
    ck_assert_int_eq(h.done, 1);
    ck_assert_int_eq(h.err, CB_ERR_TIMEOUT);
    ck_assert_int_eq(d.done, 1);
    ck_assert_int_eq(d.err, CB_ERR_TIMEOUT);
    ck_assert_uint_eq(h.resp.attempts, 1);
    ck_assert_uint_ge(h.resp.elapsed_ms, 30000);
    ck_assert_uint_eq(fixture_requests_path(f, "/hang"), 1);
    ck_assert_uint_eq(fixture_requests_path(f, "/delay"), 1);
    ck_assert_uint_eq(breaker_metrics(c, "/").failures, 2);
    api_response_free(&h.resp);
    api_response_free(&d.resp);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- cancellation ------------------------------------------------------------- */

START_TEST(test_cancel_transfer)
{
    fixture     *f = fixture_start();
    api_client  *c;
    api_async   *a;
    call         h, other;
    api_response stranger;
    cb_metrics   m0, m;

    memset(&h, 0, sizeof(h));
    memset(&other, 0, sizeof(other));
    memset(&stranger, 0, sizeof(stranger));
    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    submit(a, &h, "/hang", NULL);
    submit(a, &other, "/hang", NULL);
    wait_fixture(a, f, "/hang", 2);
    m0 = breaker_metrics(c, "/");
    ck_assert_uint_eq(m0.ignored, 0);

    /* Unknown responses: nothing happens. */
    cancel(a, &stranger);
    cancel(a, NULL);
    cancel(NULL, &h.resp);
    ck_assert_uint_eq(api_async_pending(a), 2);

    cancel(a, &h.resp);
    ck_assert_int_eq(h.done, 0); /* not inside cancel */
    ck_assert_uint_eq(api_async_pending(a), 2);
    ck_assert_int_eq(api_async_run(a, 0), 1);
    ck_assert_int_eq(h.done, 1);
    ck_assert_int_eq(h.err, CB_ERR_CANCELLED);
    ck_assert_int_eq(h.resp.status, 0);
    ck_assert_ptr_nonnull(h.resp.body);
    ck_assert_str_ne(h.resp.error, "");
    ck_assert_int_eq(other.done, 0);

    /* The permit came back uncounted. */
    m = breaker_metrics(c, "/");
    ck_assert_uint_eq(m.ignored, m0.ignored + 1);
    ck_assert_uint_eq(m.failures, m0.failures);
    ck_assert_uint_eq(m.successes, m0.successes);
    ck_assert_int_eq(m.state, CB_CLOSED);

    /* Cancelling it again, finished: nothing. */
    cancel(a, &h.resp);
    ck_assert_int_eq(api_async_run(a, 0), 1);
    ck_assert_int_eq(h.done, 1);

    /* The other call is untouched and completes normally. */
    fixture_set_outage(f, FIXTURE_UP);
    run_all(a);
    ck_assert_int_eq(other.done, 1);
    ck_assert_int_eq(other.err, CB_OK);
    m = breaker_metrics(c, "/");
    ck_assert_uint_eq(m.ignored, 1);
    ck_assert_uint_eq(m.successes, 1);
    ck_assert_uint_eq(fixture_requests_path(f, "/hang"), 2);
    ck_assert_int_eq(g_bad_dones, 0);
    api_response_free(&h.resp);
    api_response_free(&other.resp);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_cancel_waiting_retry)
{
    api_client_config cfg;
    api_retry_config  retry = { .max_attempts = 3, .max_delay_ms = 10000, .budget_disabled = true };
    api_options       opts = { .retry = &retry };
    tu_clock          tc;
    fixture          *f = fixture_start();
    api_client       *c;
    api_async        *a;
    call              w;
    breaker_wait      bw;
    cb_metrics        m;
    int               i;

    memset(&cfg, 0, sizeof(cfg));
    memset(&w, 0, sizeof(w));
    ck_assert_ptr_nonnull(f);
    tu_clock_install(&tc, &cfg);
    c = client_new(f, &cfg);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    /* A 503 with Retry-After: 5; the fake clock holds the wait. */
    submit(a, &w, "/retry-after/cw/2?value=5", &opts);
    bw.c = c;
    bw.url = "/";
    bw.failures = 1;
    bw.open = false;
    run_until(a, breaker_reached, &bw); /* the 503 was recorded: waiting */
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(api_async_run(a, 10), 1);
    ck_assert_uint_eq(fixture_requests_path(f, "/retry-after"), 1);

    cancel(a, &w.resp);
    ck_assert_int_eq(w.done, 0);
    ck_assert_int_eq(api_async_run(a, 0), 0);
    ck_assert_int_eq(w.done, 1);
    ck_assert_int_eq(w.err, CB_ERR_CANCELLED);
    ck_assert_uint_eq(w.resp.attempts, 1);
    ck_assert_ptr_nonnull(w.resp.body);
    ck_assert_str_ne(w.resp.error, "");
    m = breaker_metrics(c, "/");
    ck_assert_uint_eq(m.failures, 1);
    ck_assert_uint_eq(m.successes, 0);
    ck_assert_uint_eq(m.ignored, 0); /* no permit is held while waiting */

    /* The wake-up was dropped with it: past it, nothing is sent. */
    tc.now_ms += 60000;
    ck_assert_int_eq(api_async_run(a, 0), 0);
    ck_assert_int_eq(api_async_run(a, 10), 0);
    ck_assert_uint_eq(fixture_requests_path(f, "/retry-after"), 1);
    ck_assert_int_eq(w.done, 1);
    ck_assert_int_eq(g_bad_dones, 0);
    api_response_free(&w.resp);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- api_async_free with calls in flight -------------------------------------- */

#define N_FREE_HANG 10
#define N_FREE_WAIT 2

START_TEST(test_free_in_flight)
{
    api_retry_config retry = { .max_attempts = 2, .max_delay_ms = 20000, .budget_disabled = true };
    api_options      opts = { .retry = &retry };
    fixture         *f = fixture_start();
    api_client      *c;
    api_async       *a;
    call             hang[N_FREE_HANG], wait[N_FREE_WAIT], seed, hit, rej;
    breaker_wait     bw;
    cb_metrics       m;
    char             path[64];
    int              i;

    memset(hang, 0, sizeof(hang));
    memset(wait, 0, sizeof(wait));
    memset(&seed, 0, sizeof(seed));
    memset(&hit, 0, sizeof(hit));
    memset(&rej, 0, sizeof(rej));
    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    submit(a, &seed, "/cache/free?cc=max-age%3D60", NULL);
    run_all(a);
    ck_assert_int_eq(seed.err, CB_OK);

    for (i = 0; i < N_FREE_HANG; i++)
        submit(a, &hang[i], "/hang", NULL);
    for (i = 0; i < N_FREE_WAIT; i++) {
        snprintf(path, sizeof(path), "/retry-after/free-%d/1?value=10", i);
        submit(a, &wait[i], path, &opts);
    }
    wait_fixture(a, f, "/hang", N_FREE_HANG);
    bw.c = c;
    bw.url = "/";
    bw.failures = N_FREE_WAIT; /* both 503s recorded: both wait */
    bw.open = false;
    run_until(a, breaker_reached, &bw);
    /* Two more, finished but not delivered: a fresh hit, a rejection. */
    submit(a, &hit, "/cache/free?cc=max-age%3D60", NULL);
    ck_assert_int_eq(api_client_trip(c, "/"), CB_OK);
    submit(a, &rej, "/ok", NULL);
    ck_assert_uint_eq(api_async_pending(a), N_FREE_HANG + N_FREE_WAIT + 2);

    free_engine(a);
    for (i = 0; i < N_FREE_HANG; i++) {
        ck_assert_int_eq(hang[i].done, 1);
        ck_assert(hang[i].in_free);
        ck_assert_int_eq(hang[i].err, CB_ERR_CANCELLED);
        api_response_free(&hang[i].resp);
    }
    for (i = 0; i < N_FREE_WAIT; i++) {
        ck_assert_int_eq(wait[i].done, 1);
        ck_assert(wait[i].in_free);
        ck_assert_int_eq(wait[i].err, CB_ERR_CANCELLED);
        ck_assert_uint_eq(wait[i].resp.attempts, 1);
        api_response_free(&wait[i].resp);
    }
    /* Their results were decided before the free: delivered once, inside
     * it, either as decided or as cancelled. */
    ck_assert_int_eq(hit.done, 1);
    ck_assert(hit.in_free);
    ck_assert(hit.err == CB_OK || hit.err == CB_ERR_CANCELLED);
    ck_assert_int_eq(rej.done, 1);
    ck_assert(rej.in_free);
    ck_assert(rej.err == CB_ERR_CIRCUIT_OPEN || rej.err == CB_ERR_CANCELLED);
    ck_assert_int_eq(g_rank, 1 + N_FREE_HANG + N_FREE_WAIT + 2);

    /* The hanging calls' permits came back uncounted; nothing more was
     * sent for the waiting ones. */
    m = breaker_metrics(c, "/");
    ck_assert_uint_eq(m.ignored, N_FREE_HANG);
    ck_assert_uint_eq(m.failures, N_FREE_WAIT);
    ck_assert_uint_eq(fixture_requests_path(f, "/retry-after"), N_FREE_WAIT);
    api_response_free(&seed.resp);
    api_response_free(&hit.resp);
    api_response_free(&rej.resp);
    api_async_free(NULL);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- what done callbacks may do ------------------------------------------------ */

typedef struct cb_scene {
    call first, chained, victim, queued_victim, hit;
    int  run_inside; /* what api_async_run returned inside a done */
    int  victim_done_after_cancel;
} cb_scene;

static void first_then(call *k)
{
    cb_scene *s = k->arg;

    /* A new call, submitted from inside done, and another call cancelled. */
    submit(k->a, &s->chained, "/echo?from=done", NULL);
    cancel(k->a, &s->victim.resp);
    s->victim_done_after_cancel = s->victim.done;
    /* The loop does not nest. */
    s->run_inside = api_async_run(k->a, 0);
}

/* A fresh hit's done cancelling a call that has finished (a rejection)
 * but whose done has not run yet. */
static void hit_then(call *k)
{
    cb_scene *s = k->arg;

    cancel(k->a, &s->queued_victim.resp);
}

START_TEST(test_callbacks_submit_cancel)
{
    fixture    *f = fixture_start();
    api_client *c;
    api_async  *a;
    cb_scene    s;
    char        from[32];

    memset(&s, 0, sizeof(s));
    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    submit(a, &s.victim, "/hang", NULL);
    wait_fixture(a, f, "/hang", 1);
    s.first.then = first_then;
    s.first.arg = &s;
    submit(a, &s.first, "/ok", NULL);
    run_all(a);

    ck_assert_int_eq(s.first.done, 1);
    ck_assert_int_eq(s.first.err, CB_OK);
    ck_assert_int_eq(s.run_inside, -1);
    ck_assert_int_eq(s.victim_done_after_cancel, 0);
    ck_assert_int_eq(s.victim.done, 1);
    ck_assert_int_eq(s.victim.err, CB_ERR_CANCELLED);
    ck_assert_int_gt(s.victim.rank, s.first.rank);
    ck_assert_int_eq(s.chained.done, 1);
    ck_assert_int_eq(s.chained.err, CB_OK);
    echo_arg(&s.chained.resp, "from", from, sizeof(from));
    ck_assert_str_eq(from, "done");
    ck_assert_uint_eq(breaker_metrics(c, "/").ignored, 1);

    /* A call finished but not yet delivered is delivered once. */
    submit(a, &s.hit, "/cache/cb?cc=max-age%3D60", NULL); /* a miss: fills the cache */
    run_all(a);
    api_response_free(&s.hit.resp);
    ck_assert_int_eq(api_client_trip(c, "/"), CB_OK);
    s.hit.then = hit_then;
    s.hit.arg = &s;
    submit(a, &s.hit, "/cache/cb?cc=max-age%3D60", NULL);
    submit(a, &s.queued_victim, "/ok", NULL);
    run_all(a);
    ck_assert_int_eq(s.hit.done, 1);
    ck_assert(s.hit.resp.from_cache);
    ck_assert_int_eq(s.queued_victim.done, 1);
    ck_assert(s.queued_victim.err == CB_ERR_CIRCUIT_OPEN ||
              s.queued_victim.err == CB_ERR_CANCELLED);
    ck_assert_int_eq(api_async_run(a, 0), 0);
    ck_assert_int_eq(s.queued_victim.done, 1);
    ck_assert_int_eq(g_bad_dones, 0);

    api_response_free(&s.first.resp);
    api_response_free(&s.chained.resp);
    api_response_free(&s.victim.resp);
    api_response_free(&s.hit.resp);
    api_response_free(&s.queued_victim.resp);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

#define N_LEFT 3

typedef struct free_scene {
    call trigger, left[N_LEFT];
    int  left_done_after_free; /* dones run when api_async_free returned */
} free_scene;

static void free_then(call *k)
{
    free_scene *s = k->arg;
    int         i;

    free_engine(k->a);
    /* Deferred: the engine is freed when this dispatch returns. */
    for (i = 0; i < N_LEFT; i++)
        s->left_done_after_free += s->left[i].done;
}

START_TEST(test_free_from_done)
{
    fixture    *f = fixture_start();
    api_client *c;
    api_async  *a;
    free_scene  s;
    cb_metrics  m;
    int         i, n;

    memset(&s, 0, sizeof(s));
    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    for (i = 0; i < N_LEFT; i++)
        submit(a, &s.left[i], "/hang", NULL);
    wait_fixture(a, f, "/hang", N_LEFT);
    s.trigger.then = free_then;
    s.trigger.arg = &s;
    submit(a, &s.trigger, "/ok", NULL);
    /* The turn in which the trigger's done frees the engine returns 0;
     * a is gone after it. */
    do {
        n = api_async_run(a, 100);
        ck_assert_int_ge(n, 0);
    } while (!s.trigger.done);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(s.trigger.err, CB_OK);
    ck_assert_int_eq(s.left_done_after_free, 0);
    for (i = 0; i < N_LEFT; i++) {
        ck_assert_int_eq(s.left[i].done, 1);
        ck_assert_int_eq(s.left[i].err, CB_ERR_CANCELLED);
        ck_assert_int_gt(s.left[i].rank, s.trigger.rank);
        api_response_free(&s.left[i].resp);
    }
    m = breaker_metrics(c, "/");
    ck_assert_uint_eq(m.ignored, N_LEFT);
    ck_assert_uint_eq(m.failures, 0);
    api_response_free(&s.trigger.resp);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- bad input ------------------------------------------------------------------ */

typedef struct bad_case {
    const char        *name;
    const char        *method;
    const char        *path;
    const char        *body;
    size_t             body_len;
    const char *const *headers;
    const char        *content_type;
    bool               null_engine, null_done, sync_too;
} bad_case;

static const char *const hdr_crlf[] = { "X-A: 1", "X-B: 2\r\nX-Evil: 1", NULL };
static const char *const hdr_lf[] = { "X-B: 2\nX-Evil: 1", NULL };
static const char *const hdr_noname[] = { ": v", NULL };
static const char *const hdr_nocolon[] = { "NoColon", NULL };

static const bad_case bad_cases[] = {
    { "NULL engine", "GET", "/ok", NULL, 0, NULL, NULL, true, false, false },
    { "NULL done", "GET", "/ok", NULL, 0, NULL, NULL, false, true, false },
    { "NULL method", NULL, "/ok", NULL, 0, NULL, NULL, false, false, true },
    { "empty method", "", "/ok", NULL, 0, NULL, NULL, false, false, true },
    { "method with a space", "GE T", "/ok", NULL, 0, NULL, NULL, false, false, true },
    { "method with CRLF", "GET\r\n", "/ok", NULL, 0, NULL, NULL, false, false, true },
    { "NULL path", "GET", NULL, NULL, 0, NULL, NULL, false, false, true },
    { "absolute URL with a base", "GET", "http://evil.example/ok", NULL, 0, NULL, NULL, false,
      false, true },
    { "path with CRLF", "GET", "/ok\r\nX-Evil: 1", NULL, 0, NULL, NULL, false, false, true },
    { "path with LF", "GET", "/ok\nX: y", NULL, 0, NULL, NULL, false, false, true },
    { "header with CRLF", "GET", "/ok", NULL, 0, hdr_crlf, NULL, false, false, true },
    { "header with LF", "GET", "/ok", NULL, 0, hdr_lf, NULL, false, false, true },
    { "header without a name", "GET", "/ok", NULL, 0, hdr_noname, NULL, false, false, true },
    { "header without a colon", "GET", "/ok", NULL, 0, hdr_nocolon, NULL, false, false, true },
    { "NULL body with a length", "POST", "/echo", NULL, 3, NULL, NULL, false, false, true },
    { "content type with CRLF", "POST", "/echo", "x", 1, NULL, "text/plain\r\nX-Evil: 1", false,
      false, true },
};
#define N_BAD ((int)(sizeof(bad_cases) / sizeof(bad_cases[0])))

START_TEST(test_bad_input)
{
    const bad_case *bc = &bad_cases[_i];
    api_options     opts = { .headers = bc->headers, .content_type = bc->content_type };
    fixture        *f = fixture_start();
    api_client     *c;
    api_async      *a;
    call            held, bad;
    api_response    sync;
    cb_err          err;

    memset(&held, 0, sizeof(held));
    memset(&bad, 0, sizeof(bad));
    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    submit(a, &held, "/hang", NULL); /* one call in flight throughout */
    wait_fixture(a, f, "/hang", 1);
    ck_assert_uint_eq(api_async_pending(a), 1);

    /* Garbage first: the refusal must fill every field. */
    memset(&bad.resp, 0x5a, sizeof(bad.resp));
    g_submitting++;
    err = api_async_request(bc->null_engine ? NULL : a, bc->method, bc->path, bc->body,
                            bc->body_len, &opts, &bad.resp, bc->null_done ? NULL : on_done, &bad);
    g_submitting--;
    ck_assert_msg(err == CB_ERR_INVALID, "%s: accepted (%s)", bc->name, cb_strerror(err));
    ck_assert_ptr_nonnull(bad.resp.body);
    ck_assert_str_eq(bad.resp.body, "");
    ck_assert_uint_eq(bad.resp.body_len, 0);
    ck_assert_int_eq(bad.resp.status, 0);
    ck_assert_uint_eq(bad.resp.attempts, 0);
    ck_assert_uint_eq(bad.resp.header_count, 0);
    ck_assert(!bad.resp.from_cache);
    ck_assert_msg(memchr(bad.resp.error, '\0', sizeof(bad.resp.error)) != NULL &&
                      bad.resp.error[0] != '\0',
                  "%s: no error text", bc->name);
    ck_assert_uint_eq(api_async_pending(a), 1);

    /* Filled as the blocking call fills it. */
    if (bc->sync_too) {
        ck_assert_int_eq(api_request(c, bc->method, bc->path, bc->body, bc->body_len, &opts, &sync),
                         CB_ERR_INVALID);
        ck_assert_str_eq(bad.resp.error, sync.error);
        ck_assert_str_eq(bad.resp.body, sync.body);
        api_response_free(&sync);
    }
    /* NULL resp: refused, nothing to fill. */
    ck_assert_int_eq(api_async_request(a, "GET", "/ok", NULL, 0, NULL, NULL, on_done, &bad),
                     CB_ERR_INVALID);
    ck_assert_uint_eq(api_async_pending(a), 1);

    fixture_set_outage(f, FIXTURE_UP);
    run_all(a);
    ck_assert_int_eq(held.done, 1);
    ck_assert_int_eq(held.err, CB_OK);
    ck_assert_int_eq(bad.done, 0);
    ck_assert_int_eq(g_rank, 1);
    ck_assert_uint_eq(fixture_requests(f), 1);
    api_response_free(&bad.resp);
    api_response_free(&held.resp);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

START_TEST(test_null_engine_calls)
{
    api_response r;

    ck_assert_ptr_null(api_async_new(NULL));
    api_async_free(NULL);
    api_async_cancel(NULL, NULL);
    ck_assert_uint_eq(api_async_pending(NULL), 0);
    ck_assert_int_eq(api_async_run(NULL, 0), -1);
    memset(&r, 0x5a, sizeof(r));
    ck_assert_int_eq(api_async_get(NULL, "/ok", NULL, &r, on_done, NULL), CB_ERR_INVALID);
    ck_assert_str_eq(r.body, "");
    ck_assert_str_eq(r.error, "invalid argument");
    api_response_free(&r);
}
END_TEST

/* ---- the same results as the blocking API ---------------------------------------- */

typedef struct origin_counts {
    uint64_t attempts, retries, successes, failures, requests;
} origin_counts;

static origin_counts counts_of(api_client *c, const char *origin)
{
    api_client_metrics cm;
    origin_counts      oc;
    size_t             i;

    memset(&oc, 0, sizeof(oc));
    ck_assert_int_eq(api_client_metrics_get(c, &cm), CB_OK);
    for (i = 0; i < cm.origin_count; i++) {
        if (strcmp(cm.origins[i].origin, origin) != 0)
            continue;
        oc.attempts = cm.origins[i].attempts;
        oc.retries = cm.origins[i].retries;
        oc.successes = cm.origins[i].breaker.successes;
        oc.failures = cm.origins[i].breaker.failures;
        oc.requests = cm.origins[i].breaker.total_requests;
    }
    api_client_metrics_free(&cm);
    return oc;
}

static origin_counts counts_delta(origin_counts a, origin_counts b)
{
    origin_counts d = { b.attempts - a.attempts, b.retries - a.retries, b.successes - a.successes,
                        b.failures - a.failures, b.requests - a.requests };

    return d;
}

typedef struct same_case {
    const char *name;
    int         where; /* 0: the fixture, 1: its raw listener, 2: a closed port */
    const char *path;
    cb_err      want;
    long        status;
    unsigned    attempts;
} same_case;

static const same_case same_cases[] = {
    { "200", 0, "/ok", CB_OK, 200, 1 },
    { "404", 0, "/no/such/thing", CB_ERR_HTTP, 404, 1 },
    { "503 retried", 0, "/status/503", CB_ERR_HTTP, 503, 2 },
    { "raw 200", 1, "/raw/ok", CB_OK, 200, 1 },
    { "connect refused", 2, "/ok", CB_ERR_CONNECT, 0, 2 },
};
#define N_SAME ((int)(sizeof(same_cases) / sizeof(same_cases[0])))

START_TEST(test_same_as_blocking)
{
    const same_case  *sc = &same_cases[_i];
    api_client_config cfg;
    fixture          *f = fixture_start();
    api_client       *c;
    api_async        *a;
    api_response      sync;
    call              k;
    origin_counts     c0, c1, c2, ds, da;
    char              origin[64], url[128];
    char             *bs, *ba;
    cb_err            serr;

    memset(&cfg, 0, sizeof(cfg));
    memset(&k, 0, sizeof(k));
    ck_assert_ptr_nonnull(f);
    cfg.retry.max_attempts = 2;
    cfg.retry.base_delay_ms = 20;
    cfg.retry.budget_disabled = true;
    cfg.cache.disabled = true;
    c = client_new(NULL, &cfg);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    if (sc->where == 0)
        snprintf(origin, sizeof(origin), "%s", fixture_url(f));
    else if (sc->where == 1)
        snprintf(origin, sizeof(origin), "%s", fixture_raw_url(f));
    else
        snprintf(origin, sizeof(origin), "http://127.0.0.1:%u", (unsigned)tu_closed_port());
    snprintf(url, sizeof(url), "%s%s", origin, sc->path);

    c0 = counts_of(c, origin);
    serr = api_get(c, url, NULL, &sync);
    c1 = counts_of(c, origin);
    submit(a, &k, url, NULL);
    run_all(a);
    c2 = counts_of(c, origin);

    ck_assert_msg(serr == sc->want, "%s: blocking %s (%s)", sc->name, cb_strerror(serr),
                  sync.error);
    ck_assert_int_eq(k.done, 1);
    ck_assert_msg(k.err == serr, "%s: async %s, blocking %s", sc->name, cb_strerror(k.err),
                  cb_strerror(serr));
    ck_assert_int_eq(sync.status, sc->status);
    ck_assert_int_eq(k.resp.status, sync.status);
    ck_assert_uint_eq(sync.attempts, sc->attempts);
    ck_assert_uint_eq(k.resp.attempts, sync.attempts);
    ck_assert_int_eq(k.resp.from_cache, sync.from_cache);
    ck_assert_uint_eq(k.resp.header_count > 0, sync.header_count > 0);
    if (sync.header_count) {
        const char *ct = api_response_header(&sync, "Content-Type");

        ck_assert_ptr_nonnull(ct);
        ck_assert_str_eq(api_response_header(&k.resp, "Content-Type"), ct);
    }
    bs = body_sans_n(&sync);
    ba = body_sans_n(&k.resp);
    ck_assert_str_eq(ba, bs);
    if (sc->status)
        ck_assert_uint_gt(strlen(bs), 0);
    if (k.err != CB_ERR_CONNECT) /* libcurl's text carries a duration */
        ck_assert_str_eq(k.resp.error, sync.error);
    ck_assert_int_eq(k.resp.error[0] != '\0', sync.error[0] != '\0');
    free(bs);
    free(ba);

    /* The client counted both the same. */
    ds = counts_delta(c0, c1);
    da = counts_delta(c1, c2);
    ck_assert_uint_eq(ds.attempts, sc->attempts);
    ck_assert_uint_eq(da.attempts, ds.attempts);
    ck_assert_uint_eq(da.retries, ds.retries);
    ck_assert_uint_eq(da.successes, ds.successes);
    ck_assert_uint_eq(da.failures, ds.failures);
    ck_assert_uint_eq(da.requests, ds.requests);
    ck_assert_uint_eq(ds.failures + ds.successes, sc->attempts);
    api_response_free(&sync);
    api_response_free(&k.resp);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- copies made at submission --------------------------------------------------- */

START_TEST(test_post_copies_at_submission)
{
    static const char original[] = "the original body, with a \"quote\" and\nnewline";
    fixture          *f = fixture_start();
    api_client       *c;
    api_async        *a;
    api_options      *opts;
    cb_config        *bcfg;
    api_retry_config *retry;
    char             *body, **lines, *ct, got[256], method[16];
    cJSON            *j;
    size_t            len = sizeof(original) - 1;
    call              k;

    memset(&k, 0, sizeof(k));
    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    /* Everything the caller hands over lives on the heap and is wiped and
     * freed right after the submission (ASan and valgrind see any use). */
    body = malloc(len);
    lines = calloc(3, sizeof(*lines));
    opts = calloc(1, sizeof(*opts));
    bcfg = calloc(1, sizeof(*bcfg));
    retry = calloc(1, sizeof(*retry));
    ck_assert(body && lines && opts && bcfg && retry);
    memcpy(body, original, len);
    lines[0] = strdup("X-Original: yes-original");
    lines[1] = strdup("Authorization: Bearer original-token");
    ct = strdup("text/x-original");
    ck_assert(lines[0] && lines[1] && ct);
    bcfg->failure_threshold = 1000;
    retry->max_attempts = 1;
    opts->headers = (const char *const *)lines;
    opts->content_type = ct;
    opts->circuit_breaker = bcfg;
    opts->retry = retry;
    ck_assert_int_eq(submit_req(a, &k, "POST", "/echo", body, len, opts), CB_OK);
    memset(body, 'X', len);
    memset(lines[0], 'Y', strlen(lines[0]));
    memset(lines[1], 'Z', strlen(lines[1]));
    free(lines[0]);
    free(lines[1]);
    memset(lines, 0, 3 * sizeof(*lines));
    free(lines);
    free(body);
    memset(bcfg, 0xff, sizeof(*bcfg));
    free(bcfg);
    memset(retry, 0, sizeof(*retry));
    free(retry);
    memset(ct, 'W', strlen(ct));
    free(ct);
    memset(opts, 0, sizeof(*opts));
    free(opts);
    run_all(a);

    ck_assert_int_eq(k.done, 1);
    ck_assert_msg(k.err == CB_OK, "%s (%s)", cb_strerror(k.err), k.resp.error);
    j = body_json(&k.resp);
    ck_assert_uint_eq((size_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "body_len")),
                      len);
    cJSON_Delete(j);
    echo_str(&k.resp, "body", got, sizeof(got));
    ck_assert_str_eq(got, original);
    echo_str(&k.resp, "method", method, sizeof(method));
    ck_assert_str_eq(method, "POST");
    ck_assert_int_eq(echo_header(&k.resp, "X-Original", got, sizeof(got)), 1);
    ck_assert_str_eq(got, "yes-original");
    ck_assert_int_eq(echo_header(&k.resp, "Authorization", got, sizeof(got)), 1);
    ck_assert_str_eq(got, "Bearer original-token");
    ck_assert_int_eq(echo_header(&k.resp, "Content-Type", got, sizeof(got)), 1);
    ck_assert_str_eq(got, "text/x-original");
    api_response_free(&k.resp);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- redirects through the engine ------------------------------------------------- */

static const char *const cred_lines[] = { "Authorization: Bearer secret", "Cookie: sid=42",
                                          "Proxy-Authorization: Basic eDp5", "X-Keep: kept", NULL };

/* Percent-encodes s for a query value. */
static void qenc(char *out, size_t size, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t            n = 0;

    for (; *s && n + 4 < size; s++) {
        unsigned char ch = (unsigned char)*s;

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out[n++] = (char)ch;
        } else {
            out[n++] = '%';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        }
    }
    out[n] = '\0';
}

static void redirect_path(char *out, size_t size, const char *to)
{
    char enc[512];

    qenc(enc, sizeof(enc), to);
    snprintf(out, size, "/redirect?code=302&to=%s", enc);
}

/* Runs one GET with the credential lines through the engine. */
static void redirect_call(api_async *a, call *k, const char *to)
{
    api_options opts = { .headers = cred_lines };
    char        path[600];

    memset(k, 0, sizeof(*k));
    redirect_path(path, sizeof(path), to);
    submit(a, k, path, &opts);
    run_all(a);
    ck_assert_int_eq(k->done, 1);
}

static void assert_creds(const call *k, bool sent)
{
    char v[128];

    ck_assert_msg(k->err == CB_OK, "%s (%s)", cb_strerror(k->err), k->resp.error);
    ck_assert_int_eq(k->resp.status, 200);
    ck_assert_int_eq(echo_header(&k->resp, "Authorization", v, sizeof(v)), (sent ? 1 : 0));
    if (sent)
        ck_assert_str_eq(v, "Bearer secret");
    ck_assert_int_eq(echo_header(&k->resp, "Cookie", v, sizeof(v)), (sent ? 1 : 0));
    if (sent)
        ck_assert_str_eq(v, "sid=42");
    ck_assert_int_eq(echo_header(&k->resp, "Proxy-Authorization", v, sizeof(v)), (sent ? 1 : 0));
    ck_assert_int_eq(echo_header(&k->resp, "X-Keep", v, sizeof(v)), 1);
    ck_assert_str_eq(v, "kept");
}

START_TEST(test_redirects)
{
    api_client_config cfg;
    fixture          *f = fixture_start(), *g = fixture_start();
    api_client       *c;
    api_async        *a;
    call              k;
    cb_metrics        m;
    char              to[256];

    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(g);
    memset(&cfg, 0, sizeof(cfg));
    cfg.max_redirects = 3;
    cfg.allow_cross_origin_redirects = true;
    cfg.cache.disabled = true;
    c = client_new(f, &cfg);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);

    /* A hop into an open breaker ends the call, sending nothing there. */
    snprintf(to, sizeof(to), "%s/echo", fixture_url(g));
    ck_assert_int_eq(api_client_trip(c, fixture_url(g)), CB_OK);
    redirect_call(a, &k, to);
    ck_assert_int_eq(k.err, CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(k.resp.attempts, 1);
    ck_assert_str_ne(k.resp.error, "");
    ck_assert_uint_eq(fixture_requests_path(f, "/redirect"), 1);
    ck_assert_uint_eq(fixture_requests(g), 0);
    m = breaker_metrics(c, fixture_url(g));
    ck_assert_uint_eq(m.rejected, 1);
    ck_assert_int_eq(m.state, CB_OPEN);
    api_response_free(&k.resp);

    /* Closed again: the hop is made, without the credentials. */
    ck_assert_int_eq(api_client_reset(c, fixture_url(g)), CB_OK);
    redirect_call(a, &k, to);
    assert_creds(&k, false);
    ck_assert_uint_eq(fixture_requests_path(g, "/echo"), 1);
    api_response_free(&k.resp);

    /* The same server under another name is another origin too. */
    snprintf(to, sizeof(to), "http://localhost:%u/echo", (unsigned)fixture_port(f));
    redirect_call(a, &k, to);
    assert_creds(&k, false);
    api_response_free(&k.resp);

    /* Same origin, relative and absolute: the credentials stay. */
    redirect_call(a, &k, "/echo");
    assert_creds(&k, true);
    api_response_free(&k.resp);
    snprintf(to, sizeof(to), "%s/echo", fixture_url(f));
    redirect_call(a, &k, to);
    assert_creds(&k, true);
    api_response_free(&k.resp);

    /* And a hop off the origin and back does not bring them back. */
    {
        char back[256];

        snprintf(back, sizeof(back), "%s/echo", fixture_url(f));
        qenc(to, sizeof(to), back);
        {
            char mid[512];

            snprintf(mid, sizeof(mid), "%s/redirect?code=302&to=%s", fixture_url(g), to);
            redirect_call(a, &k, mid);
        }
        assert_creds(&k, false);
        api_response_free(&k.resp);
    }
    ck_assert_int_eq(g_bad_dones, 0);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
    fixture_stop(g);
}
END_TEST

/* ---- a blocking caller on another thread, sharing the client ---------------------- */

#define BLOCKING_EXTRA 10
#define ASYNC_WIDTH 4

typedef struct blocker {
    api_client *c;
    atomic_int  first_done; /* its long call ended */
    cb_err      err;
    long        status;
    uint64_t    elapsed;
    int         extra_ok;
} blocker;

static void *blocker_main(void *arg)
{
    blocker     *b = arg;
    api_response r;
    uint64_t     t0 = now_ms();
    int          i;

    b->err = api_get(b->c, "/delay/600", NULL, &r);
    b->status = r.status;
    b->elapsed = now_ms() - t0;
    api_response_free(&r);
    atomic_store(&b->first_done, 1);
    for (i = 0; i < BLOCKING_EXTRA; i++) {
        if (api_get(b->c, "/ok", NULL, &r) == CB_OK && r.status == 200)
            b->extra_ok++;
        api_response_free(&r);
    }
    return NULL;
}

typedef struct chain {
    blocker *b;
    int      during; /* async calls that ended while the blocking one ran */
    int      total;
    int      failed;
} chain;

static void chain_then(call *k)
{
    chain *ch = k->arg;

    if (k->err != CB_OK || k->resp.status != 200)
        ch->failed++;
    api_response_free(&k->resp);
    ch->total++;
    if (!atomic_load(&ch->b->first_done)) {
        ch->during++;
        submit(k->a, k, "/ok", NULL);
    }
}

START_TEST(test_blocking_thread_shares_client)
{
    fixture    *f = fixture_start();
    api_client *c;
    api_async  *a;
    blocker     b;
    chain       ch;
    call        k[ASYNC_WIDTH];
    pthread_t   th;
    cb_metrics  m;
    int         i, turns = 0;

    memset(&b, 0, sizeof(b));
    memset(&ch, 0, sizeof(ch));
    memset(k, 0, sizeof(k));
    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    b.c = c;
    ch.b = &b;
    ck_assert_int_eq(pthread_create(&th, NULL, blocker_main, &b), 0);
    /* Its call is on the server before the loop starts. */
    while (fixture_requests_path(f, "/delay/600") < 1) {
        sleep_ms(2);
        ck_assert(++turns < MAX_TURNS);
    }
    for (i = 0; i < ASYNC_WIDTH; i++) {
        k[i].then = chain_then;
        k[i].arg = &ch;
        submit(a, &k[i], "/ok", NULL);
    }
    run_all(a);
    ck_assert_int_eq(pthread_join(th, NULL), 0);

    ck_assert_int_eq(b.err, CB_OK);
    ck_assert_int_eq(b.status, 200);
    ck_assert_uint_ge(b.elapsed, 590);
    ck_assert_int_eq(b.extra_ok, BLOCKING_EXTRA);
    ck_assert_int_eq(ch.failed, 0);
    /* The loop kept going while the other thread's call held. */
    ck_assert_int_ge(ch.during, ASYNC_WIDTH);
    /* One breaker for both. */
    m = breaker_metrics(c, "/");
    ck_assert_uint_eq(m.successes, (uint64_t)(1 + BLOCKING_EXTRA + ch.total));
    ck_assert_uint_eq(m.total_requests, (uint64_t)(1 + BLOCKING_EXTRA + ch.total));
    ck_assert_uint_eq(fixture_requests_path(f, "/ok"), (uint64_t)(BLOCKING_EXTRA + ch.total));
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- calls to a cold origin run side by side ----------------------------------- */

/*
 * A regression test. With CURLOPT_PIPEWAIT on every transfer (and
 * CURLPIPE_MULTIPLEX on the multi handle), a second call to a plain-http
 * origin whose HTTP version libcurl did not know yet (a new engine, or all
 * its connections closed) waited for the first call's response head, then
 * queued behind it on the same connection: a slow call held every other
 * call to its origin, a /hang held them until its deadline (reproduced
 * with libcurl 7.88.1 alone). PIPEWAIT now goes only with https, where
 * ALPN may offer HTTP/2.
 */
START_TEST(test_cold_origin_calls_side_by_side)
{
    fixture    *f = fixture_start();
    api_client *c;
    api_async  *a;
    call        slow, fast;

    memset(&slow, 0, sizeof(slow));
    memset(&fast, 0, sizeof(fast));
    ck_assert_ptr_nonnull(f);
    c = client_new(f, NULL);
    a = api_async_new(c);
    ck_assert_ptr_nonnull(a);
    submit(a, &slow, "/delay/1500", NULL);
    submit(a, &fast, "/ok", NULL);
    run_all(a);
    ck_assert_int_eq(slow.err, CB_OK);
    ck_assert_int_eq(fast.err, CB_OK);
    ck_assert_msg(fast.rank == 1,
                  "/ok waited for /delay/1500 on a cold origin (head-of-line blocking)");
    ck_assert_uint_eq(fixture_connections(f), 2);
    api_response_free(&slow.resp);
    api_response_free(&fast.resp);
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* ---- the suite -------------------------------------------------------------------- */

static Suite *async_suite(void)
{
    Suite *s = suite_create("async");
    TCase *tc;

    tc = tcase_create("engine");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, reset_globals, NULL);
    tcase_add_test(tc, test_done_once_next_turn);
    tcase_add_test(tc, test_fanout_origins);
    tcase_add_test(tc, test_breaker_opens_in_flight);
    tcase_add_test(tc, test_retry_timer_others_proceed);
    tcase_add_test(tc, test_deadline_real);
    tcase_add_test(tc, test_deadline_fake_clock);
    tcase_add_test(tc, test_cancel_transfer);
    tcase_add_test(tc, test_cancel_waiting_retry);
    tcase_add_test(tc, test_free_in_flight);
    tcase_add_test(tc, test_callbacks_submit_cancel);
    tcase_add_test(tc, test_free_from_done);
    tcase_add_loop_test(tc, test_bad_input, 0, N_BAD);
    tcase_add_test(tc, test_null_engine_calls);
    tcase_add_loop_test(tc, test_same_as_blocking, 0, N_SAME);
    tcase_add_test(tc, test_post_copies_at_submission);
    tcase_add_test(tc, test_redirects);
    tcase_add_test(tc, test_blocking_thread_shares_client);
    tcase_add_test(tc, test_cold_origin_calls_side_by_side);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(async_suite()); }
