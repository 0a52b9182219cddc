/*
 * cbhttp adapter for libevent 2: an api_async driven by a struct event_base.
 *
 *     #include <cbhttp/adapters/libevent.h>
 *
 *     api_async *a = api_async_new(client);
 *     if (!a || api_libevent_attach(a, base) != 0)
 *         ...;                       (before submitting any call)
 *     api_async_get(a, "/x", NULL, &resp, done, user_data);
 *     event_base_dispatch(base);
 *
 * Header-only and all static: the program that includes it links libevent
 * (`pkg-config --cflags --libs libevent`, or libevent_core); libcbhttp
 * itself does not.
 *
 * What it puts on the base: one timer event (the engine's timer) and one
 * persistent event per socket the engine watches (event_new), each added
 * only while the engine needs it, so event_base_dispatch returns once
 * nothing is in flight that needs the loop, and at the latest once the
 * engine is freed.
 *
 * Threading: every api_async_* call and the base's loop on one thread, as
 * async.h requires. The adapter adds no lock and needs no libevent
 * threading support.
 *
 * Lifetime:
 *   - Attach before the first call is submitted (api_async_attach refuses
 *     while calls are in flight): 0 on success, -1 for NULL arguments, out
 *     of memory or a refusal. Attaching another loop later detaches this
 *     one.
 *   - api_async_free (from anywhere on the loop's thread, also from inside
 *     a done callback while the base dispatches) detaches the adapter: its
 *     events are freed and its memory released at once; nothing of it is
 *     left on the base.
 *   - The base must outlive the engine.
 *
 * libevent reports a failed socket as readable and writable (what was
 * asked), so API_WATCH_ERROR is never passed.
 *
 * Memory: the adapter's small structs come from calloc/free (the
 * cb_allocator hook has no public allocate function).
 */
#ifndef CBHTTP_ADAPTERS_LIBEVENT_H
#define CBHTTP_ADAPTERS_LIBEVENT_H

#include <stdlib.h>
#include <sys/time.h>

#include <event2/event.h>

#include "../async.h"

struct api_libevent;

typedef struct api_libevent_sock {
    struct event             *ev;
    struct api_libevent      *le;
    int                       fd;
    unsigned                  events; /* API_WATCH_READ | API_WATCH_WRITE */
    struct api_libevent_sock *prev, *next;
} api_libevent_sock;

typedef struct api_libevent {
    api_async         *a;
    struct event_base *base;
    struct event      *timer;
    api_libevent_sock *socks; /* to free any left at detach */
} api_libevent;

static void api_libevent_sock_free(api_libevent *le, api_libevent_sock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        le->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    /* Safe also from inside this event's own callback. */
    event_free(s->ev);
    free(s);
}

static void api_libevent_on_sock(evutil_socket_t fd, short what, void *arg)
{
    api_libevent_sock *s = (api_libevent_sock *)arg;
    unsigned           ev = 0;

    if (what & EV_READ)
        ev |= API_WATCH_READ;
    if (what & EV_WRITE)
        ev |= API_WATCH_WRITE;
    /* This may free s (unwatch) or the whole adapter (api_async_free from a
     * done callback): neither is touched afterwards. */
    api_async_on_socket(s->le->a, (int)fd, ev);
}

/* (Re)arms s's event for s->events. */
static int api_libevent_arm(api_libevent *le, api_libevent_sock *s)
{
    short what = EV_PERSIST;

    if (s->events & API_WATCH_READ)
        what |= EV_READ;
    if (s->events & API_WATCH_WRITE)
        what |= EV_WRITE;
    /* An added event cannot change what it waits for: delete, reassign,
     * add again. */
    event_del(s->ev);
    if (event_assign(s->ev, le->base, s->fd, what, api_libevent_on_sock, s) != 0)
        return -1;
    return event_add(s->ev, NULL) == 0 ? 0 : -1;
}

/* api_loop.watch */
static int api_libevent_watch(void *data, int fd, unsigned events, void **slot)
{
    api_libevent      *le = (api_libevent *)data;
    api_libevent_sock *s = (api_libevent_sock *)*slot;

    events &= API_WATCH_READ | API_WATCH_WRITE;
    if (!events) {
        if (s)
            api_libevent_sock_free(le, s);
        *slot = NULL;
        return 0;
    }
    if (!s) {
        s = (api_libevent_sock *)calloc(1, sizeof(*s));
        if (!s)
            return -1;
        /* event_new only allocates here; api_libevent_arm assigns it. */
        s->ev = event_new(le->base, fd, EV_READ, api_libevent_on_sock, s);
        if (!s->ev) {
            free(s);
            return -1;
        }
        s->le = le;
        s->fd = fd;
        s->next = le->socks;
        if (le->socks)
            le->socks->prev = s;
        le->socks = s;
        s->events = events;
        if (api_libevent_arm(le, s) != 0) {
            api_libevent_sock_free(le, s);
            return -1;
        }
        *slot = s;
        return 0;
    }
    if (s->events == events)
        return 0;
    s->events = events;
    return api_libevent_arm(le, s);
}

static void api_libevent_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    /* May free the adapter (api_async_free from a done callback). */
    api_async_on_timer(((api_libevent *)arg)->a);
}

/* api_loop.set_timer */
static void api_libevent_set_timer(void *data, long ms)
{
    api_libevent  *le = (api_libevent *)data;
    struct timeval tv;

    if (ms < 0) {
        evtimer_del(le->timer);
        return;
    }
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    /* The base's cached time may be old (a long callback): a timeout
     * counted from it would fire early. */
    event_base_update_cache_time(le->base);
    /* Adding a pending timer again reschedules it. */
    evtimer_add(le->timer, &tv);
}

/* api_loop.detach: every socket should be unwatched by now; free any that
 * is not, the timer and the adapter. */
static void api_libevent_detach(void *data)
{
    api_libevent *le = (api_libevent *)data;

    while (le->socks)
        api_libevent_sock_free(le, le->socks);
    event_free(le->timer);
    free(le);
}

/* Drives a from base: 0, or -1 (NULL arguments, out of memory, or the
 * engine refused, e.g. calls already in flight). */
static inline int api_libevent_attach(api_async *a, struct event_base *base)
{
    api_libevent *le;
    api_loop      tbl;

    if (!a || !base)
        return -1;
    le = (api_libevent *)calloc(1, sizeof(*le));
    if (!le)
        return -1;
    le->a = a;
    le->base = base;
    le->timer = evtimer_new(base, api_libevent_on_timer, le);
    if (!le->timer) {
        free(le);
        return -1;
    }
    tbl.data = le;
    tbl.watch = api_libevent_watch;
    tbl.set_timer = api_libevent_set_timer;
    tbl.detach = api_libevent_detach;
    if (api_async_attach(a, &tbl) != CB_OK) {
        event_free(le->timer);
        free(le);
        return -1;
    }
    return 0;
}

#endif /* CBHTTP_ADAPTERS_LIBEVENT_H */
