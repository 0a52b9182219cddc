/*
 * cbhttp: asynchronous calls. An api_async is the engine of one event loop:
 * a libcurl multi handle and the calls in flight on it, each a step machine
 * (src/request.c) that the engine drives with transfer completions and
 * timers. Breakers, cache, retry budget and metrics are the client's, shared
 * with blocking callers on other threads; api_request itself runs this same
 * engine on a private instance until its one call is done.
 *
 * Threading: an api_async and everything done with it belong to one thread,
 * the loop's: every api_async_* function, and every adapter callback, must
 * be called on it. The api_client it was made from stays thread-safe.
 *
 * Driving it, two ways:
 *   - api_async_run(a, timeout_ms) in a loop of your own: it waits for
 *     sockets and timers itself (curl_multi_poll);
 *   - an event loop, through an adapter: api_async_attach() hands the engine
 *     a table of "watch this socket" / "arm the timer" functions, and the
 *     loop calls api_async_on_socket() / api_async_on_timer() back. Ready
 *     header-only adapters: cbhttp/adapters/libuv.h, libevent.h, epoll.h.
 */
#ifndef CBHTTP_ASYNC_H
#define CBHTTP_ASYNC_H

#include "client.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct api_async api_async; /* opaque */

/*
 * The end of a call. err is the call's result, as api_request would have
 * returned it; resp is the caller's storage passed at submission, filled.
 * Runs exactly once per accepted call, on the loop's thread, never inside
 * the api_async_request that submitted it, with no lock held. It may submit
 * new calls, cancel other calls and free resp (api_response_free); it may
 * call api_async_free on its own engine (the free is then finished when
 * the engine's current dispatch returns).
 */
typedef void (*api_done_fn)(cb_err err, api_response *resp, void *user_data);

/* A new engine for client c (which must outlive it). NULL on NULL c or OOM.
 * It does nothing until a call is submitted. */
CB_EXPORT api_async *api_async_new(api_client *c);

/* Frees the engine. Calls still in flight end with CB_ERR_CANCELLED; a
 * call that had already ended (a fresh hit, a rejection) but whose done had
 * not run yet keeps its own result. Either way its done runs inside this
 * function, where submitting to this engine is refused. An attached loop is
 * detached. NULL is fine. */
CB_EXPORT void api_async_free(api_async *a);

/*
 * Submits a call: the same arguments, rules and results as api_request (the
 * breaker, retry, cache and deadline of the client and opts; opts and body
 * are copied). Returns CB_OK when the call was accepted: done then runs once
 * it ends. Any other code (NULL a, resp or done, a bad method, path, header
 * or config) means it was not accepted: done never runs and *resp is filled
 * as api_request fills it on that error. resp must stay valid until done
 * runs; after done the caller frees it with api_response_free. A fresh
 * cache hit or a rejection by an open breaker sends nothing and completes
 * on the next turn of the loop.
 */
CB_EXPORT cb_err api_async_request(api_async *a, const char *method, const char *path,
                                   const char *body, size_t body_len, const api_options *opts,
                                   api_response *resp, api_done_fn done, void *user_data);

/* api_async_request with "GET" and no body. */
CB_EXPORT cb_err api_async_get(api_async *a, const char *path, const api_options *opts,
                               api_response *resp, api_done_fn done, void *user_data);

/* Ends the call that fills resp with CB_ERR_CANCELLED: its transfer (or its
 * wait for a retry) stops at once, its breaker permit is given back
 * without counting an outcome, and its done runs on the next turn of the
 * loop. Nothing happens when no call of this engine fills resp (never
 * submitted, or its done already ran) or when the call has already ended
 * and only its done is still to run (it keeps its result). */
CB_EXPORT void api_async_cancel(api_async *a, api_response *resp);

/*
 * For programs without an event loop: waits at most timeout_ms for a socket
 * or a timer, runs everything that is ready (transfers, timers, done
 * callbacks) and returns the number of calls still in flight (0 = idle), or
 * -1 on error (NULL a, a loop attached, or called from inside a done
 * callback). With nothing in flight it returns 0 at once.
 */
CB_EXPORT int api_async_run(api_async *a, unsigned timeout_ms);

/* Calls accepted whose done has not run yet. 0 for NULL. */
CB_EXPORT size_t api_async_pending(const api_async *a);

/* ---- Event-loop integration (for adapters) ------------------------------ */

#define API_WATCH_READ 1u  /* wait until the socket is readable */
#define API_WATCH_WRITE 2u /* wait until the socket is writable */
#define API_WATCH_ERROR 4u /* only in api_async_on_socket: the socket failed */

/*
 * What an event loop does for the engine. The engine calls these on the
 * loop's thread, never from inside another of them. watch and set_timer
 * may run inside libcurl, which cannot be re-entered: from them,
 * api_async_request and api_async_cancel work (the transfer's start or
 * removal waits until libcurl has returned), api_async_free takes effect
 * when the engine's current entry point returns, and api_async_on_socket
 * and api_async_on_timer do nothing.
 */
typedef struct api_loop {
    void *data; /* the adapter's state, passed to every function below */
    /*
     * Watch fd for events (API_WATCH_READ | API_WATCH_WRITE), replacing what
     * was watched for it before; events 0 means stop watching it (libcurl
     * may close it right after). *sock is a slot for the adapter's
     * per-socket state: NULL the first time a socket is seen, kept by the
     * engine until the call with events 0, in which the adapter frees what
     * it put there. Returns 0, or -1 when it cannot watch: the transfer
     * that asked for the socket then fails at once with CB_ERR_NOMEM ("the
     * event loop could not watch a socket"), and its origin's breaker
     * counts nothing, the origin not having been asked.
     */
    int (*watch)(void *data, int fd, unsigned events, void **sock);
    /* Arm the loop's one timer to call api_async_on_timer after ms
     * milliseconds (0: on the next turn of the loop), replacing an earlier
     * arming; ms < 0 disarms it. */
    void (*set_timer)(void *data, long ms);
    /* Called once when the engine is freed or another loop is attached,
     * after every socket was unwatched: release data. May be NULL. */
    void (*detach)(void *data);
} api_loop;

/* Hands the engine to an event loop (loop is copied). From then on the loop
 * drives it and api_async_run refuses. CB_ERR_INVALID for NULL arguments or
 * a table without watch or set_timer, or while calls are in flight. */
CB_EXPORT cb_err api_async_attach(api_async *a, const api_loop *loop);

/* For adapters: fd became ready for events (API_WATCH_* bits). Runs what is
 * ready, done callbacks included. */
CB_EXPORT void api_async_on_socket(api_async *a, int fd, unsigned events);

/* For adapters: the timer armed with set_timer fired. */
CB_EXPORT void api_async_on_timer(api_async *a);

#ifdef __cplusplus
}
#endif
#endif /* CBHTTP_ASYNC_H */
