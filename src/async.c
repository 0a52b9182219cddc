/*
 * The engine: drives calls (request.c's step machines) on a libcurl multi
 * handle. Two drivers share it:
 *
 *   - api_async: many calls of one event loop. Transfers run on the
 *     engine's multi handle; waits (retry backoff) and deadlines sit in one
 *     timer heap keyed on the client's clock; finished calls queue up and
 *     their done callbacks run at the end of the current dispatch, never
 *     inside the api_async_request that submitted them. The loop is either
 *     api_async_run (curl_multi_poll) or an adapter's (socket and timer
 *     callbacks, hiredis style).
 *   - cbh_engine_perform: one blocking call, as curl_easy_perform runs
 *     libcurl's own multi engine: the thread's pooled multi handle, and
 *     waits that are sleeps (the client's sleep hook when set).
 *
 * libcurl cannot be re-entered from its own callbacks, and the adapter's
 * watch (and set_timer) run inside libcurl's socket (timer) callback. What
 * such code asks of the engine that needs libcurl (a new call's transfer,
 * a cancel), and the failure of a transfer whose socket could not be
 * watched, waits on the deferred list until the outermost entry point is
 * about to return, outside libcurl.
 */
#include <limits.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "request.h"

#define POLL_SLICE_MS 1000 /* longest single wait of the blocking loop */
#define SPARE_MAX                                                                                  \
    64 /* finished calls kept for reuse: a call is 1.7 KB,
                              past malloc's fast bins */

/* What a call waits for on the deferred list (link.defer). */
enum { DEFER_NONE, DEFER_ADD, DEFER_CANCEL, DEFER_FAIL_WATCH, DEFER_FAIL_NOMEM };

/* A socket an adapter watches: curl_multi_assign keeps it with libcurl. */
typedef struct sockrec {
    curl_socket_t fd;
    void         *slot;   /* the adapter's per-socket state */
    unsigned      events; /* what it watches: API_WATCH_* */
    size_t        idx;    /* place in api_async.socks */
} sockrec;

struct api_async {
    api_client    *c;
    CURLM         *multi;
    cbh_call      *calls;     /* accepted, done not yet run */
    cbh_call      *done_head; /* finished, done due (FIFO) */
    cbh_call      *spare;     /* finished calls kept for the next ones */
    size_t         spare_n;
    cbh_call     **done_tail;
    cbh_call     **heap; /* by link.due: waits and deadlines */
    size_t         heap_n, heap_cap;
    size_t         pending;
    api_loop       loop;
    bool           attached;
    sockrec      **socks; /* sockets the adapter watches */
    size_t         socks_n, socks_cap;
    cbh_easy_stash stash;      /* easy handles for this engine's calls */
    uint64_t       curl_due;   /* real ms when libcurl wants its timeout; 0 = none */
    unsigned       depth;      /* dispatches in progress (done callbacks may nest) */
    unsigned       in_curl;    /* inside a loop function libcurl's callback called */
    cbh_call      *deferred;   /* calls with a libcurl step deferred (link.defer_next) */
    bool           free_asked; /* api_async_free from inside a dispatch */
    bool           freeing;
};

static uint64_t real_now(void) { return cb_clock_monotonic_ms(NULL); }

/* ---- the timer heap ------------------------------------------------------ */

static void heap_set(api_async *a, size_t i, cbh_call *k)
{
    a->heap[i] = k;
    k->link.heap_idx = i;
}

static void heap_up(api_async *a, size_t i)
{
    cbh_call *k = a->heap[i];

    while (i > 0 && a->heap[(i - 1) / 2]->link.due > k->link.due) {
        heap_set(a, i, a->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(a, i, k);
}

static void heap_down(api_async *a, size_t i)
{
    cbh_call *k = a->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= a->heap_n)
            break;
        if (c + 1 < a->heap_n && a->heap[c + 1]->link.due < a->heap[c]->link.due)
            c++;
        if (a->heap[c]->link.due >= k->link.due)
            break;
        heap_set(a, i, a->heap[c]);
        i = c;
    }
    heap_set(a, i, k);
}

static void heap_remove(api_async *a, cbh_call *k)
{
    size_t i = k->link.heap_idx;

    if (i == SIZE_MAX)
        return;
    k->link.heap_idx = SIZE_MAX;
    if (i == --a->heap_n)
        return;
    heap_set(a, i, a->heap[a->heap_n]);
    heap_up(a, i);
    heap_down(a, a->heap[i]->link.heap_idx);
}

/* Grown as calls are accepted, so that adding a timer never fails. */
static bool heap_reserve(api_async *a, size_t n)
{
    cbh_call **h;
    size_t     cap = a->heap_cap ? a->heap_cap : 16;

    if (n <= a->heap_cap)
        return true;
    while (cap < n)
        cap *= 2;
    h = cbh_realloc(a->heap, cap * sizeof(*h));
    if (!h)
        return false;
    a->heap = h;
    a->heap_cap = cap;
    return true;
}

static void heap_add(api_async *a, cbh_call *k, uint64_t due)
{
    k->link.due = due;
    a->heap[a->heap_n] = k;
    k->link.heap_idx = a->heap_n++;
    heap_up(a, k->link.heap_idx);
}

/* ---- calls --------------------------------------------------------------- */

/* Queues k's done for the end of the dispatch. */
/* ---- the deferred list --------------------------------------------------- */

static void defer(api_async *a, cbh_call *k, unsigned what)
{
    if (!k->link.defer) {
        k->link.defer_next = a->deferred;
        a->deferred = k;
    }
    k->link.defer = what;
}

/* Takes k off the deferred list, if it is there: its step moved on. */
static void undefer(api_async *a, cbh_call *k)
{
    cbh_call **pp = &a->deferred;

    if (!k->link.defer)
        return;
    while (*pp != k)
        pp = &(*pp)->link.defer_next;
    *pp = k->link.defer_next;
    k->link.defer = DEFER_NONE;
}

static void call_queue_done(api_async *a, cbh_call *k)
{
    heap_remove(a, k);
    undefer(a, k);
    k->link.step = CBH_STEP_DONE;
    k->link.done_next = NULL;
    *a->done_tail = k;
    a->done_tail = &k->link.done_next;
}

static void call_apply(api_async *a, cbh_call *k, cbh_step step);

/* Starts k's transfer. libcurl refusing it is the engine's failure, not the
 * origin's. */
static void call_add(api_async *a, cbh_call *k)
{
    if (curl_multi_add_handle(a->multi, k->xchg.easy) != CURLM_OK)
        call_apply(a, k,
                   cbh_call_local_failure(k, CB_ERR_NOMEM, "libcurl could not start the transfer"));
}

/* Carries out what a step asked for. */
static void call_apply(api_async *a, cbh_call *k, cbh_step step)
{
    heap_remove(a, k);
    undefer(a, k);
    k->link.step = step;
    switch (step) {
    case CBH_STEP_TRANSFER:
        heap_add(a, k, k->deadline);
        if (a->in_curl)
            defer(a, k, DEFER_ADD);
        else
            call_add(a, k);
        break;
    case CBH_STEP_WAIT:
        heap_add(a, k, k->wake);
        break;
    case CBH_STEP_DONE:
        call_queue_done(a, k);
        break;
    }
}

static void call_unlink(api_async *a, cbh_call *k)
{
    if (k->link.prev)
        k->link.prev->link.next = k->link.next;
    else
        a->calls = k->link.next;
    if (k->link.next)
        k->link.next->link.prev = k->link.prev;
    a->pending--;
}

/* Stops whatever the call is doing and ends it with CB_ERR_CANCELLED; from
 * inside libcurl, once it has returned. */
static void call_cancel(api_async *a, cbh_call *k)
{
    if (k->link.step == CBH_STEP_DONE)
        return;
    if (k->link.step == CBH_STEP_TRANSFER && k->link.defer != DEFER_ADD) {
        if (a->in_curl) {
            defer(a, k, DEFER_CANCEL);
            return;
        }
        curl_multi_remove_handle(a->multi, k->xchg.easy);
    }
    cbh_call_cancel(k);
    call_queue_done(a, k);
}

/* Carries out the deferred steps, outside libcurl (in_curl is 0). Each may
 * call libcurl, whose callbacks may defer more: until none is left. */
static void deferred_run(api_async *a)
{
    cbh_call *k;

    while ((k = a->deferred)) {
        unsigned what = k->link.defer;

        a->deferred = k->link.defer_next;
        k->link.defer = DEFER_NONE;
        if (what == DEFER_ADD) {
            call_add(a, k);
        } else if (what == DEFER_CANCEL) {
            call_cancel(a, k);
        } else {
            curl_multi_remove_handle(a->multi, k->xchg.easy);
            call_apply(a, k,
                       cbh_call_local_failure(k, CB_ERR_NOMEM,
                                              what == DEFER_FAIL_WATCH
                                                  ? "the event loop could not watch a socket"
                                                  : "out of memory"));
        }
    }
}

/* A finished call's memory, kept for the next submission (the engine's
 * steady state then allocates no call at all). */
static void call_recycle(api_async *a, cbh_call *k)
{
    if (a->spare_n >= SPARE_MAX || a->freeing) {
        cbh_free(k);
        return;
    }
    k->link.next = a->spare;
    a->spare = k;
    a->spare_n++;
}

static cbh_call *call_alloc(api_async *a)
{
    cbh_call *k = a->spare;

    if (!k)
        return cbh_malloc(sizeof(*k));
    a->spare = k->link.next;
    a->spare_n--;
    return k;
}

/* Runs the done callbacks that were due when it began, in order. A
 * callback may submit, cancel, or ask for the engine to be freed; a call it
 * ends (a cancel, a fresh hit) completes on the next turn, not in this
 * one. */
static void run_dones(api_async *a)
{
    cbh_call *k = a->done_head;

    a->done_head = NULL;
    a->done_tail = &a->done_head;
    while (k) {
        cbh_call     *next = k->link.done_next;
        api_done_fn   done = k->link.done;
        void         *ud = k->link.user_data;
        api_response *resp = k->resp;
        cb_err        err;

        call_unlink(a, k);
        err = cbh_call_finish(k);
        call_recycle(a, k);
        done(err, resp, ud);
        k = next;
    }
}

/* Transfers libcurl reports finished. */
static void read_infos(api_async *a)
{
    CURLMsg *m;
    int      left;

    while ((m = curl_multi_info_read(a->multi, &left))) {
        cbh_call *k;
        CURLcode  rc = m->data.result;
        CURL     *e = m->easy_handle;

        if (m->msg != CURLMSG_DONE)
            continue;
        k = cbh_xchg_private(e);
        curl_multi_remove_handle(a->multi, e);
        if (k)
            call_apply(a, k, cbh_call_transfer_done(k, rc));
    }
}

/* Waits that ended and deadlines that passed. A transfer past the deadline
 * is taken off the multi handle and ends as a timeout. */
static void run_timers(api_async *a)
{
    uint64_t now = cbh_client_now(a->c);

    while (a->heap_n && a->heap[0]->link.due <= now) {
        cbh_call *k = a->heap[0];

        heap_remove(a, k);
        if (k->link.step == CBH_STEP_TRANSFER) {
            curl_multi_remove_handle(a->multi, k->xchg.easy);
            call_apply(a, k, cbh_call_transfer_done(k, CURLE_OPERATION_TIMEDOUT));
        } else {
            call_apply(a, k, cbh_call_wake(k));
        }
    }
}

static void engine_destroy(api_async *a);
static long next_wait(api_async *a);

/* ---- the adapter's side -------------------------------------------------- */

static void socks_remove(api_async *a, sockrec *r)
{
    sockrec *last = a->socks[--a->socks_n];

    a->socks[r->idx] = last;
    last->idx = r->idx;
    cbh_free(r);
}

/* The adapter's watch, from inside libcurl. */
static int loop_watch(api_async *a, curl_socket_t fd, unsigned ev, sockrec *r)
{
    int rc;

    a->in_curl++;
    rc = a->loop.watch(a->loop.data, fd, ev, &r->slot);
    a->in_curl--;
    return rc;
}

/* The record of a socket libcurl starts to use, NULL when out of memory. */
static sockrec *socks_add(api_async *a, curl_socket_t fd)
{
    sockrec *r;

    if (a->socks_n == a->socks_cap) {
        size_t    cap = a->socks_cap ? a->socks_cap * 2 : 16;
        sockrec **s = cbh_realloc(a->socks, cap * sizeof(*s));

        if (!s)
            return NULL;
        a->socks = s;
        a->socks_cap = cap;
    }
    if (!(r = cbh_calloc(1, sizeof(*r))))
        return NULL;
    r->fd = fd;
    r->idx = a->socks_n;
    a->socks[a->socks_n++] = r;
    curl_multi_assign(a->multi, fd, r);
    return r;
}

/* A socket that cannot be watched fails the transfer that wants it, once
 * libcurl has returned; libcurl itself is told all is well, since a -1
 * here would leave its multi handle in no state to go on. */
static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *ud, void *sockp)
{
    api_async *a = ud;
    sockrec   *r = sockp;
    cbh_call  *k;
    unsigned   ev = 0;

    if (what == CURL_POLL_REMOVE) {
        if (r) {
            loop_watch(a, fd, 0, r);
            socks_remove(a, r);
            curl_multi_assign(a->multi, fd, NULL);
        }
        return 0;
    }
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= API_WATCH_READ;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= API_WATCH_WRITE;
    if (r || (r = socks_add(a, fd))) {
        r->events = ev;
        if (loop_watch(a, fd, ev, r) == 0)
            return 0;
    }
    k = cbh_xchg_private(e);
    if (k && k->link.step == CBH_STEP_TRANSFER)
        defer(a, k, r ? DEFER_FAIL_WATCH : DEFER_FAIL_NOMEM);
    return 0;
}

static int on_curl_timer(CURLM *m, long ms, void *ud)
{
    api_async *a = ud;

    (void)m;
    /* Only noted: libcurl forbids acting from inside this callback, and
     * every libcurl call of the engine's runs inside an entry point, whose
     * end (engine_leave) re-arms the adapter's timer. */
    a->curl_due = ms < 0 ? 0 : real_now() + (uint64_t)ms;
    return 0;
}

/* Milliseconds until the engine next needs to run; -1 = nothing to wait for. */
static long next_wait(api_async *a)
{
    long wait = -1;

    if (a->done_head || a->free_asked)
        return 0;
    if (a->heap_n) {
        uint64_t now = cbh_client_now(a->c), due = a->heap[0]->link.due;

        wait = due <= now ? 0 : due - now > LONG_MAX ? LONG_MAX : (long)(due - now);
    }
    if (a->curl_due) {
        uint64_t now = real_now();
        long     cw = a->curl_due <= now ? 0 : (long)(a->curl_due - now);

        if (wait < 0 || cw < wait)
            wait = cw;
    }
    return wait;
}

/* Leaves an entry point (depth counted one up for it): the outermost one
 * carries out what was deferred, then re-arms the adapter's timer. */
static void engine_leave(api_async *a)
{
    if (a->depth == 1)
        deferred_run(a);
    if (--a->depth == 0 && a->attached)
        a->loop.set_timer(a->loop.data, next_wait(a));
}

/* The common end of every entry point that ran something: finished
 * transfers, timers, done callbacks, and the adapter's timer re-armed.
 * Returns false when a done callback freed the engine (a is gone). */
static bool dispatch_end(api_async *a)
{
    a->depth++;
    read_infos(a);
    run_timers(a);
    run_dones(a);
    if (a->free_asked && a->depth == 1) {
        a->depth--;
        engine_destroy(a);
        return false;
    }
    engine_leave(a);
    return true;
}

CB_EXPORT void api_async_on_socket(api_async *a, int fd, unsigned events)
{
    int running, mask = 0;

    if (!a || !a->attached || a->freeing || a->in_curl)
        return;
    if (events & API_WATCH_READ)
        mask |= CURL_CSELECT_IN;
    if (events & API_WATCH_WRITE)
        mask |= CURL_CSELECT_OUT;
    if (events & API_WATCH_ERROR)
        mask |= CURL_CSELECT_ERR;
    a->depth++;
    curl_multi_socket_action(a->multi, fd, mask, &running);
    a->depth--;
    dispatch_end(a);
}

CB_EXPORT void api_async_on_timer(api_async *a)
{
    int running;

    if (!a || !a->attached || a->freeing || a->in_curl)
        return;
    a->depth++;
    if (a->curl_due && a->curl_due <= real_now()) {
        a->curl_due = 0;
        curl_multi_socket_action(a->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    a->depth--;
    dispatch_end(a);
}

/* Every watched socket leaves the current loop, which is then released. */
static void loop_detach(api_async *a)
{
    size_t i;

    for (i = 0; i < a->socks_n; i++)
        a->loop.watch(a->loop.data, a->socks[i]->fd, 0, &a->socks[i]->slot);
    a->loop.set_timer(a->loop.data, -1);
    if (a->loop.detach)
        a->loop.detach(a->loop.data);
}

CB_EXPORT cb_err api_async_attach(api_async *a, const api_loop *loop)
{
    size_t i;

    if (!a || !loop || !loop->watch || !loop->set_timer || a->pending || a->depth)
        return CB_ERR_INVALID;
    if (a->attached)
        loop_detach(a);
    a->loop = *loop;
    a->attached = true;
    /* Sockets libcurl still keeps (a connection closing down) move to the
     * new loop with what they waited for. */
    for (i = 0; i < a->socks_n; i++) {
        a->socks[i]->slot = NULL;
        if (a->socks[i]->events)
            a->loop.watch(a->loop.data, a->socks[i]->fd, a->socks[i]->events, &a->socks[i]->slot);
    }
    curl_multi_setopt(a->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(a->multi, CURLMOPT_SOCKETDATA, a);
    curl_multi_setopt(a->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(a->multi, CURLMOPT_TIMERDATA, a);
    return CB_OK;
}

/* ---- the engine's life --------------------------------------------------- */

CB_EXPORT api_async *api_async_new(api_client *c)
{
    api_async *a;

    if (!c || !(a = cbh_calloc(1, sizeof(*a))))
        return NULL;
    a->c = c;
    a->done_tail = &a->done_head;
    if (!(a->multi = cbh_transport_multi_new())) {
        cbh_free(a);
        return NULL;
    }
    return a;
}

/* Every call in flight ends cancelled, its done inside this function;
 * sockets are unwatched before libcurl closes them. */
static void engine_destroy(api_async *a)
{
    cbh_call *k;
    size_t    i;

    a->freeing = true;
    a->depth++;
    for (k = a->calls; k; k = k->link.next)
        call_cancel(a, k);
    while (a->done_head)
        run_dones(a);
    a->depth--;
    if (a->attached) {
        curl_multi_setopt(a->multi, CURLMOPT_SOCKETFUNCTION, NULL);
        curl_multi_setopt(a->multi, CURLMOPT_TIMERFUNCTION, NULL);
        loop_detach(a);
    }
    for (i = 0; i < a->socks_n; i++)
        cbh_free(a->socks[i]);
    curl_multi_cleanup(a->multi);
    cbh_easy_stash_drain(a->c->transport, &a->stash);
    while ((k = a->spare)) {
        a->spare = k->link.next;
        cbh_free(k);
    }
    cbh_free(a->socks);
    cbh_free(a->heap);
    cbh_free(a);
}

CB_EXPORT void api_async_free(api_async *a)
{
    if (!a || a->freeing)
        return;
    if (a->depth) {
        a->free_asked = true;
        return;
    }
    engine_destroy(a);
}

CB_EXPORT size_t api_async_pending(const api_async *a) { return a ? a->pending : 0; }

CB_EXPORT cb_err api_async_request(api_async *a, const char *method, const char *path,
                                   const char *body, size_t body_len, const api_options *opts,
                                   api_response *resp, api_done_fn done, void *user_data)
{
    cbh_call *k;
    cb_err    err;

    if (!resp)
        return CB_ERR_INVALID;
    if (!a || !done) {
        cbh_response_fail(resp, "invalid argument");
        return CB_ERR_INVALID;
    }
    if (a->freeing || a->free_asked) {
        cbh_response_fail(resp, "engine is being freed");
        return CB_ERR_INVALID;
    }
    if (!heap_reserve(a, a->pending + 1) || !(k = call_alloc(a))) {
        cbh_response_fail(resp, "out of memory");
        return CB_ERR_NOMEM;
    }
    memset(k, 0, offsetof(cbh_call, url));
    k->url.heap_ = NULL;
    err = cbh_call_init(k, a->c, method, path, body, body_len, opts, resp, true, &a->stash);
    if (err != CB_OK) {
        call_recycle(a, k);
        return err;
    }
    k->link.done = done;
    k->link.user_data = user_data;
    k->link.next = a->calls;
    if (a->calls)
        a->calls->link.prev = k;
    a->calls = k;
    a->pending++;
    a->depth++;
    call_apply(a, k, cbh_call_start(k));
    /* A call that ended at once (a fresh hit, a rejection) completes on the
     * next turn of the loop, never inside this function. */
    engine_leave(a);
    return CB_OK;
}

CB_EXPORT cb_err api_async_get(api_async *a, const char *path, const api_options *opts,
                               api_response *resp, api_done_fn done, void *user_data)
{
    return api_async_request(a, "GET", path, NULL, 0, opts, resp, done, user_data);
}

CB_EXPORT void api_async_cancel(api_async *a, api_response *resp)
{
    cbh_call *k;

    if (!a || !resp || a->freeing)
        return;
    for (k = a->calls; k; k = k->link.next)
        if (k->resp == resp)
            break;
    if (!k)
        return;
    /* Counted as an entry point: removing the transfer calls the adapter's
     * watch, which may call back in. */
    a->depth++;
    call_cancel(a, k);
    engine_leave(a);
}

CB_EXPORT int api_async_run(api_async *a, unsigned timeout_ms)
{
    int  running;
    long wait;

    if (!a || a->attached || a->depth || a->freeing)
        return -1;
    if (!a->pending)
        return 0;
    wait = next_wait(a);
    if (wait < 0 || wait > (long)timeout_ms)
        wait = (long)timeout_ms;
    a->depth++;
    if (wait > 0 && curl_multi_poll(a->multi, NULL, 0, (int)(wait > INT_MAX ? INT_MAX : wait),
                                    NULL) != CURLM_OK) {
        a->depth--;
        return -1;
    }
    curl_multi_perform(a->multi, &running);
    a->depth--;
    if (!dispatch_end(a))
        return 0;
    return a->pending > INT_MAX ? INT_MAX : (int)a->pending;
}

/* ---- the blocking driver ------------------------------------------------- */

static void blocking_sleep(const api_client *c, uint64_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

    if (c->cfg.sleep_fn) {
        c->cfg.sleep_fn(ms, c->cfg.sleep_data);
        return;
    }
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* One transfer on the thread's multi handle, to its end (*rc). False when
 * the multi interface itself failed: the engine's failure, not the
 * origin's. */
static bool blocking_transfer(CURLM *m, CURL *e, CURLcode *rc)
{
    CURLMsg *msg;
    int      running = 1, left;
    bool     ran = false;

    if (curl_multi_add_handle(m, e) != CURLM_OK)
        return false;
    while (curl_multi_perform(m, &running) == CURLM_OK) {
        if ((msg = curl_multi_info_read(m, &left)) && msg->msg == CURLMSG_DONE) {
            *rc = msg->data.result;
            ran = true;
            break;
        }
        if (curl_multi_poll(m, NULL, 0, POLL_SLICE_MS, NULL) != CURLM_OK)
            break;
    }
    curl_multi_remove_handle(m, e);
    return ran;
}

void cbh_engine_perform(cbh_call *k)
{
    cbh_step step = cbh_call_start(k);
    CURLM   *m = NULL;
    CURLcode rc = CURLE_OK;

    while (step != CBH_STEP_DONE) {
        if (step == CBH_STEP_WAIT) {
            uint64_t now = cbh_client_now(k->c);

            blocking_sleep(k->c, k->wake > now ? k->wake - now : 0);
            step = cbh_call_wake(k);
            continue;
        }
        if (!m && !(m = cbh_transport_multi_take(k->c->transport))) {
            step = cbh_call_local_failure(k, CB_ERR_NOMEM, "out of memory");
            continue;
        }
        step = blocking_transfer(m, k->xchg.easy, &rc)
                   ? cbh_call_transfer_done(k, rc)
                   : cbh_call_local_failure(k, CB_ERR_NOMEM, "libcurl's multi interface failed");
    }
    cbh_transport_multi_give(k->c->transport, m);
}
