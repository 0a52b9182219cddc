/*
 * cbhttp adapter for Linux epoll: an api_async behind ONE file descriptor,
 * for a program with an epoll or poll loop of its own.
 *
 *     #include <cbhttp/adapters/epoll.h>
 *
 *     api_async *a = api_async_new(client);
 *     api_epoll *e = api_epoll_attach(a);     (before submitting any call)
 *     struct epoll_event ev = { .events = EPOLLIN };
 *     epoll_ctl(my_epfd, EPOLL_CTL_ADD, api_epoll_fd(e), &ev);
 *     ... api_async_get(a, "/x", NULL, &resp, done, user_data);
 *     while (api_async_pending(a) > 0) {
 *         epoll_wait(my_epfd, ...);           (or poll() for POLLIN)
 *         if (api_epoll_fd(e) is among the ready ones)
 *             api_epoll_dispatch(e);
 *     }
 *
 * Header-only and all static; needs nothing but Linux (epoll, timerfd).
 *
 * The adapter owns an epoll instance holding the engine's sockets and a
 * timerfd for the engine's timer. That epoll fd is readable (level
 * triggered) whenever a socket or the timer is ready; api_epoll_dispatch
 * never blocks: it handles what is ready (at most API_EPOLL_MAX_EVENTS
 * events, so that the application's other work is not starved; the fd
 * stays readable when more is ready) and returns.
 *
 * Threading: every api_async_* and api_epoll_* call on one thread, as
 * async.h requires. The adapter adds no lock.
 *
 * Lifetime:
 *   - api_epoll_attach before the first call is submitted
 *     (api_async_attach refuses while calls are in flight); NULL for a NULL
 *     engine, out of memory, no more fds, or a refusal.
 *   - The engine owns the api_epoll: api_async_free (or attaching another
 *     loop) frees it and closes its fd, which also takes that fd out of the
 *     application's epoll set. Do not use e, nor the fd number, after that
 *     (skip an event for it that your epoll_wait returned before). When
 *     api_async_free runs inside a done callback during api_epoll_dispatch,
 *     e is freed when that dispatch returns.
 *   - Calling api_epoll_dispatch from inside a done callback does nothing.
 *
 * Events: EPOLLIN and EPOLLHUP are passed as API_WATCH_READ, EPOLLOUT as
 * API_WATCH_WRITE, EPOLLERR as API_WATCH_ERROR.
 *
 * Memory: the adapter's struct comes from calloc/free (the cb_allocator
 * hook has no public allocate function).
 */
#ifndef CBHTTP_ADAPTERS_EPOLL_H
#define CBHTTP_ADAPTERS_EPOLL_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../async.h"

/* Events one api_epoll_dispatch handles at most. */
#ifndef API_EPOLL_MAX_EVENTS
#define API_EPOLL_MAX_EVENTS 256
#endif

/* <time.h> hides CLOCK_MONOTONIC under strict ISO C without a POSIX
 * feature macro; its value is part of the Linux ABI. */
#ifdef CLOCK_MONOTONIC
#define API_EPOLL_CLOCK CLOCK_MONOTONIC
#else
#define API_EPOLL_CLOCK 1
#endif

typedef struct api_epoll {
    api_async *a;
    int        epfd;        /* the fd the application watches */
    int        tfd;         /* the engine's timer, inside epfd */
    int        dispatching; /* inside api_epoll_dispatch */
    int        detached;    /* the engine let go while dispatching: free on return */
} api_epoll;

static void api_epoll_destroy(api_epoll *e)
{
    /* Closing epfd drops every registration still in it. */
    close(e->tfd);
    close(e->epfd);
    free(e);
}

/* api_loop.watch. Nothing is allocated per socket: the slot only says
 * whether fd is in the epoll set yet (it then holds e). */
static int api_epoll_watch(void *data, int fd, unsigned events, void **slot)
{
    api_epoll         *e = (api_epoll *)data;
    struct epoll_event ev;
    int                op;

    if (!(events & (API_WATCH_READ | API_WATCH_WRITE))) {
        /* Errors do not matter: libcurl may have closed fd already, which
         * removed it from the set. */
        if (*slot)
            (void)epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
        *slot = NULL;
        return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events =
        ((events & API_WATCH_READ) ? EPOLLIN : 0u) | ((events & API_WATCH_WRITE) ? EPOLLOUT : 0u);
    ev.data.fd = fd;
    op = *slot ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(e->epfd, op, fd, &ev) != 0) {
        /* The set and the slot disagree (fd closed and reused, or added
         * under a duplicate): the other operation is the right one. */
        if (errno == ENOENT && op == EPOLL_CTL_MOD)
            op = EPOLL_CTL_ADD;
        else if (errno == EEXIST && op == EPOLL_CTL_ADD)
            op = EPOLL_CTL_MOD;
        else
            return -1;
        if (epoll_ctl(e->epfd, op, fd, &ev) != 0)
            return -1;
    }
    *slot = e;
    return 0;
}

/* api_loop.set_timer */
static void api_epoll_set_timer(void *data, long ms)
{
    api_epoll        *e = (api_epoll *)data;
    struct itimerspec its;

    memset(&its, 0, sizeof(its)); /* all zero: disarmed */
    if (ms == 0) {
        its.it_value.tv_nsec = 1; /* zero would disarm: expire at once */
    } else if (ms > 0) {
        its.it_value.tv_sec = (time_t)(ms / 1000);
        its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
    }
    /* Setting the timer also clears an expiration not read yet. */
    (void)timerfd_settime(e->tfd, 0, &its, NULL);
}

/* api_loop.detach */
static void api_epoll_detach(void *data)
{
    api_epoll *e = (api_epoll *)data;

    e->a = NULL;
    if (e->dispatching)
        e->detached = 1;
    else
        api_epoll_destroy(e);
}

/* Drives a through a new epoll instance: the adapter, or NULL (NULL a, out
 * of memory or fds, or the engine refused, e.g. calls already in flight).
 * The engine frees it (see above). */
static inline api_epoll *api_epoll_attach(api_async *a)
{
    api_epoll         *e;
    api_loop           tbl;
    struct epoll_event ev;

    if (!a)
        return NULL;
    e = (api_epoll *)calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->a = a;
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->tfd = timerfd_create(API_EPOLL_CLOCK, TFD_NONBLOCK | TFD_CLOEXEC);
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.fd = e->tfd;
    if (e->epfd < 0 || e->tfd < 0 || epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->tfd, &ev) != 0)
        goto fail;
    tbl.data = e;
    tbl.watch = api_epoll_watch;
    tbl.set_timer = api_epoll_set_timer;
    tbl.detach = api_epoll_detach;
    if (api_async_attach(a, &tbl) != CB_OK)
        goto fail;
    return e;
fail:
    if (e->tfd >= 0)
        close(e->tfd);
    if (e->epfd >= 0)
        close(e->epfd);
    free(e);
    return NULL;
}

/* The fd to watch for readability (EPOLLIN / POLLIN); -1 for NULL. Valid
 * until the engine is freed. */
static inline int api_epoll_fd(const api_epoll *e) { return e ? e->epfd : -1; }

/* Handles what is ready, without blocking: socket events go to
 * api_async_on_socket, an expired timer to api_async_on_timer. NULL, or a
 * call from inside a done callback, does nothing. */
static inline void api_epoll_dispatch(api_epoll *e)
{
    int i;

    if (!e || e->dispatching)
        return;
    e->dispatching = 1;
    /* One event per epoll_wait: a callback may unwatch (and libcurl close
     * and reuse) any fd, which would make the rest of a batch stale. Level
     * triggering keeps what was not taken ready, round-robin. */
    for (i = 0; i < API_EPOLL_MAX_EVENTS && !e->detached; i++) {
        struct epoll_event ev;
        int                n = epoll_wait(e->epfd, &ev, 1, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (ev.data.fd == e->tfd) {
            uint64_t ticks;

            /* Read before running the timer, which may arm it again. */
            if (read(e->tfd, &ticks, sizeof(ticks)) == (ssize_t)sizeof(ticks))
                api_async_on_timer(e->a);
        } else {
            unsigned bits = 0;

            if (ev.events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
                bits |= API_WATCH_READ;
            if (ev.events & EPOLLOUT)
                bits |= API_WATCH_WRITE;
            if (ev.events & EPOLLERR)
                bits |= API_WATCH_ERROR;
            api_async_on_socket(e->a, ev.data.fd, bits);
        }
    }
    e->dispatching = 0;
    if (e->detached)
        api_epoll_destroy(e);
}

#endif /* CBHTTP_ADAPTERS_EPOLL_H */
