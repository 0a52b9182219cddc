/*
 * cbhttp adapter for libuv: an api_async driven by a uv_loop_t.
 *
 *     #include <cbhttp/adapters/libuv.h>
 *
 *     api_async *a = api_async_new(client);
 *     if (!a || api_libuv_attach(a, loop) != 0)
 *         ...;                       (before submitting any call)
 *     api_async_get(a, "/x", NULL, &resp, done, user_data);
 *     uv_run(loop, UV_RUN_DEFAULT);
 *
 * Header-only and all static: the program that includes it links libuv
 * (`pkg-config --cflags --libs libuv`); libcbhttp itself does not. Like
 * <uv.h> itself, it needs POSIX declarations: under a strict -std=c11,
 * define _POSIX_C_SOURCE=200809L (or _GNU_SOURCE) before any include.
 *
 * What it puts on the loop: one uv_timer_t (the engine's timer) and one
 * uv_poll_t per socket the engine watches. Each is active only while the
 * engine needs it, so the loop stays alive while calls are in flight and
 * the adapter never keeps it alive once the engine is freed.
 *
 * Threading: every api_async_* call and the loop itself (uv_run) on one
 * thread, as async.h requires. The adapter adds no lock.
 *
 * Lifetime:
 *   - Attach before the first call is submitted (api_async_attach refuses
 *     while calls are in flight): 0 on success, -1 for NULL arguments, out
 *     of memory or a refusal. Attaching another loop later detaches this
 *     one.
 *   - api_async_free (from anywhere on the loop's thread, also from inside
 *     a done callback while uv_run runs) detaches the adapter: it closes
 *     its handles with uv_close. libuv closes handles asynchronously, so the
 *     adapter's memory is freed by their close callbacks on the loop's next
 *     turn: run the loop once more after api_async_free (uv_run returns on
 *     its own once those callbacks ran; UV_RUN_NOWAIT is enough) before
 *     uv_loop_close, which returns UV_EBUSY until then.
 *   - The loop must outlive the engine.
 *
 * Timers: libuv before 1.45 runs a timer re-armed with 0 ms from its own
 * callback again in the same pass, without polling sockets; "next turn"
 * from inside the timer callback is therefore armed as 1 ms.
 *
 * Memory: the adapter's small structs come from calloc/free (the
 * cb_allocator hook has no public allocate function).
 */
#ifndef CBHTTP_ADAPTERS_LIBUV_H
#define CBHTTP_ADAPTERS_LIBUV_H

#include <stdint.h>
#include <stdlib.h>

#include <uv.h>

#include "../async.h"

struct api_libuv;

/* One watched socket. The poll handle comes first so that the handle's
 * address is the struct's (the close callback frees it). */
typedef struct api_libuv_sock {
    uv_poll_t              poll;
    struct api_libuv      *lv;
    int                    fd;
    unsigned               events; /* API_WATCH_READ | API_WATCH_WRITE */
    struct api_libuv_sock *prev, *next;
} api_libuv_sock;

typedef struct api_libuv {
    uv_timer_t      timer;    /* first, for the same reason */
    api_async      *a;        /* NULL once detached */
    int             in_timer; /* inside the timer callback */
    api_libuv_sock *socks;    /* open sockets, to close any left at detach */
} api_libuv;

/* Close callback of every handle: handle->data is the struct to free. */
static void api_libuv_free_cb(uv_handle_t *h) { free(h->data); }

static void api_libuv_sock_close(api_libuv *lv, api_libuv_sock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        lv->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    /* uv_close stops the poll and takes the fd out of the loop's epoll set
     * at once, so libcurl may close the fd right after; the struct is
     * freed by the close callback, which never touches the adapter. */
    uv_close((uv_handle_t *)&s->poll, api_libuv_free_cb);
}

static int api_libuv_start(api_libuv_sock *s);

static void api_libuv_on_poll(uv_poll_t *p, int status, int events)
{
    api_libuv_sock *s = (api_libuv_sock *)p->data;
    unsigned        ev = 0;

    if (!s->lv->a)
        return;
    if (status < 0) {
        /* libuv stopped the poll on the error. */
        ev = API_WATCH_ERROR | s->events;
    } else {
        if (events & (UV_READABLE | UV_DISCONNECT))
            ev |= API_WATCH_READ;
        if (events & UV_WRITABLE)
            ev |= API_WATCH_WRITE;
    }
    /* This may unwatch this socket, or free the engine; s and s->lv stay
     * allocated until their close callbacks, which run later. */
    api_async_on_socket(s->lv->a, s->fd, ev);
    /* The engine still watches the socket after an error: keep the promise
     * of watch() by polling again. */
    if (status < 0 && s->lv->a && !uv_is_closing((uv_handle_t *)p) &&
        !uv_is_active((uv_handle_t *)p) && s->events)
        (void)api_libuv_start(s);
}

static int api_libuv_start(api_libuv_sock *s)
{
    int uvev = 0;

    if (s->events & API_WATCH_READ)
        uvev |= UV_READABLE;
    if (s->events & API_WATCH_WRITE)
        uvev |= UV_WRITABLE;
    return uv_poll_start(&s->poll, uvev, api_libuv_on_poll) == 0 ? 0 : -1;
}

/* api_loop.watch */
static int api_libuv_watch(void *data, int fd, unsigned events, void **slot)
{
    api_libuv      *lv = (api_libuv *)data;
    api_libuv_sock *s = (api_libuv_sock *)*slot;

    events &= API_WATCH_READ | API_WATCH_WRITE;
    if (!events) {
        if (s)
            api_libuv_sock_close(lv, s);
        *slot = NULL;
        return 0;
    }
    if (!s) {
        s = (api_libuv_sock *)calloc(1, sizeof(*s));
        if (!s)
            return -1;
        if (uv_poll_init_socket(lv->timer.loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        s->lv = lv;
        s->fd = fd;
        s->next = lv->socks;
        if (lv->socks)
            lv->socks->prev = s;
        lv->socks = s;
        s->events = events;
        if (api_libuv_start(s) != 0) {
            api_libuv_sock_close(lv, s);
            return -1;
        }
        *slot = s;
        return 0;
    }
    s->events = events;
    return api_libuv_start(s);
}

static void api_libuv_on_timer(uv_timer_t *t)
{
    api_libuv *lv = (api_libuv *)t->data;

    if (!lv->a)
        return;
    lv->in_timer = 1;
    api_async_on_timer(lv->a);
    /* Still allocated even if the engine was freed meanwhile: the timer's
     * close callback has not run yet. */
    lv->in_timer = 0;
}

/* api_loop.set_timer */
static void api_libuv_set_timer(void *data, long ms)
{
    api_libuv *lv = (api_libuv *)data;

    if (ms < 0) {
        uv_timer_stop(&lv->timer);
        return;
    }
    if (ms == 0 && lv->in_timer)
        ms = 1;
    /* The loop's cached time may be old (a long callback, or arming before
     * uv_run): a timer counted from it would fire early. */
    uv_update_time(lv->timer.loop);
    uv_timer_start(&lv->timer, api_libuv_on_timer, (uint64_t)ms, 0);
}

/* api_loop.detach: every socket should be unwatched by now; close any that
 * is not, then the timer, whose close callback frees the adapter. */
static void api_libuv_detach(void *data)
{
    api_libuv *lv = (api_libuv *)data;

    while (lv->socks)
        api_libuv_sock_close(lv, lv->socks);
    lv->a = NULL;
    uv_close((uv_handle_t *)&lv->timer, api_libuv_free_cb);
}

/* Drives a from loop: 0, or -1 (NULL arguments, out of memory, or the
 * engine refused, e.g. calls already in flight). */
static inline int api_libuv_attach(api_async *a, uv_loop_t *loop)
{
    api_libuv *lv;
    api_loop   tbl;

    if (!a || !loop)
        return -1;
    lv = (api_libuv *)calloc(1, sizeof(*lv));
    if (!lv)
        return -1;
    if (uv_timer_init(loop, &lv->timer) != 0) {
        free(lv);
        return -1;
    }
    lv->timer.data = lv;
    lv->a = a;
    tbl.data = lv;
    tbl.watch = api_libuv_watch;
    tbl.set_timer = api_libuv_set_timer;
    tbl.detach = api_libuv_detach;
    if (api_async_attach(a, &tbl) != CB_OK) {
        lv->a = NULL;
        uv_close((uv_handle_t *)&lv->timer, api_libuv_free_cb);
        return -1;
    }
    return 0;
}

#endif /* CBHTTP_ADAPTERS_LIBUV_H */
