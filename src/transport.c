/*
 * The libcurl layer.
 *
 * Transfers run on multi handles, whose connection cache holds the kept-
 * alive connections. libcurl 7.88 (Debian 12) cannot share one connection
 * cache between threads safely (CURL_LOCK_DATA_CONNECT), so blocking calls
 * take a multi handle from a LIFO pool: a thread making sequential calls
 * gets the same one, and so the same connection, back. An async engine has
 * a multi handle of its own. Easy handles are pooled the same way. TLS
 * sessions are shared through a CURLSH with real locks; DNS answers stay
 * in each multi handle's cache.
 */
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "buf.h"
#include "headers.h"
#include "method.h"
#include "transport.h"
#include "url.h"

#define POOL_MAX 64     /* idle handles kept; more are closed */
#define BUF_INITIAL 512 /* first allocation of a body without Content-Length: most are small */
#define REDIRECT_URL_MAX 8192
#define PREALLOC_MAX (16u << 20) /* most bytes allocated ahead on a Content-Length */

/* An easy handle with what it was last set up with: an exchange sets only
 * the options that differ from its handle's last exchange. A string
 * option costs libcurl a strdup and a free (the URL ~1k instructions a
 * request), and consecutive calls mostly go to one URL. */
struct cbh_easy {
    CURL     *curl;
    cbh_xchg *x;    /* the exchange in progress: the callbacks' state */
    void     *priv; /* its owner's pointer (cbh_xchg_private) */
    char     *url;  /* a copy of the URL set; NULL = none */
    size_t    url_len;
    long      timeout_ms, connect_ms; /* set; -1 = none */
    bool      plain_get;              /* set for a GET without body */
    bool      posted;                 /* POSTFIELDS points at a body */
    bool      shared;                 /* CURLOPT_SHARE is set: TLS sessions */
};

/* Idle handles, newest on top, each with the thread that last used it. */
typedef struct handle_pool {
    void     *idle[POOL_MAX];
    pthread_t owner[POOL_MAX];
    size_t    n;
} handle_pool;

struct cbh_transport {
    pthread_mutex_t lock; /* guards both pools */
    handle_pool     easies;
    handle_pool     multis;
    CURLSH         *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
    char           *ca_file;
    size_t          max_body;
    size_t          max_header;
    unsigned        max_redirects;
    bool            cross_origin;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode       global_rc = CURLE_FAILED_INIT;

/* curl_global_init is not thread-safe in 7.88: run it exactly once. It is
 * never undone; a library cannot know when its host is done with libcurl. */
static void transport_global_init(void) { global_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
    cbh_transport *t = ud;

    (void)h;
    (void)access;
    if ((unsigned)data < CURL_LOCK_DATA_LAST)
        pthread_mutex_lock(&t->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
    cbh_transport *t = ud;

    (void)h;
    if ((unsigned)data < CURL_LOCK_DATA_LAST)
        pthread_mutex_unlock(&t->share_locks[data]);
}

/* Appends n bytes, keeping room for a NUL; false stops the transfer. Every
 * sum is checked: max may be SIZE_MAX, the idiom for "no limit". */
static bool buf_append(cbh_rbuf *b, const char *p, size_t n)
{
    if (n > b->max - b->len) {
        b->overflow = true;
        return false;
    }
    /* len + n <= max: the byte for the NUL comes next, within max + 1. */
    if (b->len + n == SIZE_MAX || !cbh_buf_reserve(&b->data, &b->cap, b->len + n + 1, BUF_INITIAL,
                                                   b->max < SIZE_MAX ? b->max + 1 : SIZE_MAX)) {
        b->oom = true;
        return false;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    cbh_xchg *st = ((cbh_easy *)ud)->x;
    size_t    bytes = size * n;

    /* Size the buffer once when the server announced the length, trusting
     * the announcement only up to PREALLOC_MAX: a hostile server may name
     * any length, and the bound on what it really sends is max. */
    if (!st->body.data && bytes) {
        int64_t cl = st->length; /* the final response's, parsed by on_header */

        if (cl > 0 && (uint64_t)cl <= st->body.max && (uint64_t)cl < PREALLOC_MAX) {
            st->body.data = cbh_malloc((size_t)cl + 1);
            if (!st->body.data) {
                st->body.oom = true;
                return 0;
            }
            st->body.cap = (size_t)cl + 1;
        }
    }
    return buf_append(&st->body, p, bytes) ? bytes : 0;
}

/* The status code of a status line "HTTP/x[.y] NNN ...", 0 if unreadable. */
static int status_of(const char *p, size_t n)
{
    const char *sp = memchr(p, ' ', n);
    size_t      i;
    int         code = 0;

    if (!sp || (size_t)(sp - p) + 4 > n)
        return 0;
    for (i = 1; i <= 3; i++) {
        if (sp[i] < '0' || sp[i] > '9')
            return 0;
        code = code * 10 + (sp[i] - '0');
    }
    return code;
}

/* Folds one Content-Length field value (a list of identical decimal values
 * is allowed, RFC 9112 6.3) into st->length; false for anything else. */
static bool content_length_add(cbh_xchg *st, const char *v, size_t n)
{
    size_t i = 0;

    while (i < n) {
        int64_t x = 0;
        size_t  digits = 0;

        /* Empty list elements are allowed (RFC 9110 5.6.1), and libcurl
         * leaves the line end in the value. */
        while (i < n &&
               (v[i] == ' ' || v[i] == '\t' || v[i] == ',' || v[i] == '\r' || v[i] == '\n'))
            i++;
        if (i == n)
            break;
        for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits++) {
            if (x > (INT64_MAX - 9) / 10)
                return false;
            x = x * 10 + (v[i] - '0');
        }
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n'))
            i++;
        if (!digits || (i < n && v[i] != ',') || (st->length >= 0 && st->length != x))
            return false;
        st->length = x;
    }
    return true;
}

/* Watches the framing fields of a final response (the header just added
 * to the block): conflicting lengths, or a length beside
 * Transfer-Encoding, are the classic request-smuggling and
 * response-splitting shapes, an unrecoverable error. */
static bool framing_ok(cbh_xchg *st)
{
    const char *name, *value;
    size_t      name_len, value_len;

    cbh_headers_acc_last(&st->head, &name, &name_len, &value, &value_len);
    if (name_len == 14 && strncasecmp(name, "Content-Length", 14) == 0) {
        if (!content_length_add(st, value, value_len))
            return false;
    } else if (name_len == 17 && strncasecmp(name, "Transfer-Encoding", 17) == 0) {
        st->chunked = true;
    }
    return !(st->chunked && st->length >= 0);
}

/* Header lines of every response of the exchange arrive here: interim 1xx
 * blocks, the final block and, after the body, trailer fields. Only the
 * final block is kept; trailers never join it (RFC 9110 6.5: they must
 * not drive caching or pass for headers); all of it counts against the
 * header limit. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    cbh_xchg *st = ((cbh_easy *)ud)->x;
    size_t    bytes = size * n, had;

    if (bytes > st->head_max - st->head_seen) {
        st->head_overflow = true;
        return 0;
    }
    st->head_seen += bytes;
    if (st->trailers)
        return bytes;
    if (cbh_headers_acc_status(&st->head, p, bytes)) {
        int code = status_of(p, bytes);

        st->head_done = false;
        st->final = code >= 200 || code == 0;
        st->length = -1;
        st->chunked = false;
        return bytes;
    } else if (bytes <= 2 && (bytes == 0 || p[0] == '\r' || p[0] == '\n')) {
        st->head_done = st->trailers = st->final;
    }
    /* libcurl hands over one whole line per call. */
    had = st->head.count;
    if (!cbh_headers_acc_line(&st->head, p, bytes)) {
        st->head_oom = true;
        return 0;
    }
    if (st->final && st->head.count > had && !framing_ok(st)) {
        st->framing = true;
        return 0;
    }
    return bytes;
}

static void easy_free(cbh_easy *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    cbh_free(h->url);
    cbh_free(h);
}

/* Options that never change for a handle. */
static cbh_easy *transport_new_handle(cbh_transport *t)
{
    cbh_easy *h = cbh_calloc(1, sizeof(*h));
    CURL     *e = h ? curl_easy_init() : NULL;

    if (!e) {
        cbh_free(h);
        return NULL;
    }
    h->curl = e;
    h->timeout_ms = h->connect_ms = -1;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    /* No proxy from the environment: a request goes to the host named. */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 0L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    /* The callbacks and the engine reach the exchange through h: these
     * stay the same for every exchange. */
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(e, CURLOPT_PRIVATE, h);
    /* A limit beyond what curl_off_t holds is no limit (0). */
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                     t->max_body <= (uint64_t)INT64_MAX ? (curl_off_t)t->max_body : 0);
    if (t->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
    return h;
}

/* A thread gets back the handle it used last when that one is idle: its
 * kept-alive connection then stays with one thread, as with a handle per
 * thread. Handing connections around between threads cost ~20% of
 * throughput with two threads on two cores (the scheduler pairs each client
 * thread with the server side of its connection; swapping breaks that).
 * NULL when the pool is empty. */
static void *pool_take(cbh_transport *t, handle_pool *p)
{
    void     *h = NULL;
    pthread_t self = pthread_self();
    size_t    i;

    pthread_mutex_lock(&t->lock);
    if (p->n) {
        i = p->n;
        while (i > 0 && !pthread_equal(p->owner[i - 1], self))
            i--;
        i = i ? i - 1 : p->n - 1;
        h = p->idle[i];
        /* Keep the stack order of the others: newest on top. */
        memmove(&p->idle[i], &p->idle[i + 1], (p->n - i - 1) * sizeof(p->idle[0]));
        memmove(&p->owner[i], &p->owner[i + 1], (p->n - i - 1) * sizeof(p->owner[0]));
        p->n--;
    }
    pthread_mutex_unlock(&t->lock);
    return h;
}

/* False when the pool is full: the caller closes the handle. */
static bool pool_give(cbh_transport *t, handle_pool *p, void *h)
{
    bool kept = false;

    pthread_mutex_lock(&t->lock);
    if (p->n < POOL_MAX) {
        p->owner[p->n] = pthread_self();
        p->idle[p->n++] = h;
        kept = true;
    }
    pthread_mutex_unlock(&t->lock);
    return kept;
}

CURLM *cbh_transport_multi_new(void)
{
    CURLM *m = curl_multi_init();

    /* HTTP/2: calls to one origin share a connection instead of opening one
     * each (the easy handles also set PIPEWAIT). */
    if (m)
        curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return m;
}

CURLM *cbh_transport_multi_take(cbh_transport *t)
{
    CURLM *m = pool_take(t, &t->multis);

    return m ? m : cbh_transport_multi_new();
}

void cbh_transport_multi_give(cbh_transport *t, CURLM *m)
{
    if (m && !pool_give(t, &t->multis, m))
        curl_multi_cleanup(m);
}

cbh_transport *cbh_transport_new(const cbh_transport_config *cfg)
{
    cbh_transport *t;
    int            i;

    pthread_once(&global_once, transport_global_init);
    if (global_rc != CURLE_OK || !cfg)
        return NULL;
    t = cbh_calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&t->share_locks[i], NULL);
    t->max_body = cfg->max_body_bytes;
    t->max_header = cfg->max_header_bytes;
    t->max_redirects = cfg->max_redirects;
    t->cross_origin = cfg->cross_origin_redirects;
    t->share = curl_share_init();
    if (!t->share)
        goto fail;
    curl_share_setopt(t->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(t->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(t->share, CURLSHOPT_USERDATA, t);
    /* DNS answers stay in each multi handle's own cache (one per thread or
     * engine, kept across calls): sharing them cost two locks per request.
     * TLS sessions are shared, so that a new thread resumes them. */
    curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    if (cfg->ca_file && !(t->ca_file = cbh_strdup(cfg->ca_file)))
        goto fail;
    return t;
fail:
    cbh_transport_free(t);
    return NULL;
}

void cbh_transport_free(cbh_transport *t)
{
    int i;

    if (!t)
        return;
    while (t->multis.n)
        curl_multi_cleanup(t->multis.idle[--t->multis.n]);
    while (t->easies.n)
        easy_free(t->easies.idle[--t->easies.n]);
    if (t->share)
        curl_share_cleanup(t->share);
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&t->share_locks[i]);
    pthread_mutex_destroy(&t->lock);
    cbh_free(t->ca_file);
    cbh_free(t);
}

/* libcurl's failures in our codes (xfer_result answers CURLE_OK itself). */
static cb_err transport_map_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return CB_ERR_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return CB_ERR_TIMEOUT;
    case CURLE_FILESIZE_EXCEEDED:
        return CB_ERR_TOO_LARGE;
    case CURLE_OUT_OF_MEMORY:
        return CB_ERR_NOMEM;
    case CURLE_URL_MALFORMAT:
        return CB_ERR_INVALID;
    /* CURLE_UNSUPPORTED_PROTOCOL is left to the default: the URL was checked
     * to be http(s) before, so here it is the server's fault ("Unsupported
     * HTTP version in response"), a transport error, not a bad argument. */
    default:
        return CB_ERR_TRANSPORT;
    }
}

/* The exchange's result: our own limits and failures first (a callback
 * that stopped the transfer makes libcurl say only "write error"), then
 * libcurl's code for what really happened. */
static cb_err xfer_result(const cbh_xchg *st, CURLcode rc, char *msg, size_t msg_size)
{
    long sent = 0;

    if (rc == CURLE_OK)
        return CB_OK;
    if (st->body.overflow || st->head_overflow) {
        snprintf(msg, msg_size, "response %s exceeded %zu bytes",
                 st->body.overflow ? "body" : "headers",
                 st->body.overflow ? st->body.max : st->head_max);
        return CB_ERR_TOO_LARGE;
    }
    if (st->framing) {
        snprintf(msg, msg_size, "conflicting message framing (Content-Length)");
        return CB_ERR_TRANSPORT;
    }
    if (st->body.oom || st->head_oom)
        return CB_ERR_NOMEM;
    if (rc == CURLE_OUT_OF_MEMORY) {
        curl_easy_getinfo(st->easy, CURLINFO_REQUEST_SIZE, &sent);
        /* libcurl 7.88 reports its own size limits as out of memory: a
         * request it would not build (nothing was sent: the caller's), or a
         * response header line over 100 KiB (the server's). */
        if (sent == 0) {
            snprintf(msg, msg_size, "request too large for libcurl");
            return CB_ERR_INVALID;
        }
        if (!st->head_done) {
            snprintf(msg, msg_size, "response header line too long");
            return CB_ERR_TOO_LARGE;
        }
    }
    if (!msg[0])
        snprintf(msg, msg_size, "%s", curl_easy_strerror(rc));
    return transport_map_error(rc);
}

/* Sets the method, body and headers of one hop. */
static void set_request(cbh_easy *h, const char *method, const char *body, size_t body_len,
                        struct curl_slist *headers)
{
    CURL      *e = h->curl;
    cbh_method m = cbh_method_of(method);
    bool       has_body = body != NULL || cbh_method_has_body(method);

    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    if (m == CBH_METHOD_GET && !has_body && h->plain_get)
        return;
    h->plain_get = false;
    if (m == CBH_METHOD_HEAD) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (!has_body) {
        /* HTTPGET also undoes an earlier POST or NOBODY on this handle. */
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m == CBH_METHOD_GET ? NULL : method);
        h->plain_get = m == CBH_METHOD_GET;
    } else {
        curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m == CBH_METHOD_POST ? NULL : method);
        h->posted = true;
    }
}

/* Sets the URL unless the handle has it already; libcurl reads its own
 * copy at the start of every transfer. False on OOM. */
static bool set_url(cbh_transport *t, cbh_easy *h, const char *url)
{
    size_t len = strlen(url);
    bool   tls = strncasecmp(url, "https:", 6) == 0;
    char  *copy;

    if (h->url && h->url_len == len && memcmp(h->url, url, len) == 0)
        return true;
    if (!(copy = cbh_malloc(len + 1)))
        return false;
    memcpy(copy, url, len + 1);
    cbh_free(h->url);
    h->url = NULL;
    /* libcurl fails this only for want of memory, and has then dropped
     * the URL it had: the exchange fails too (nothing is remembered, so
     * the next one sets it again). */
    if (curl_easy_setopt(h->curl, CURLOPT_URL, url) != CURLE_OK) {
        cbh_free(copy);
        return false;
    }
    /* HTTP/2 can only come over TLS here (ALPN): there a new call waits for
     * the origin's connection to say whether it multiplexes, instead of
     * opening one of its own; over plain HTTP/1.1 waiting would serialise
     * calls to one origin. */
    curl_easy_setopt(h->curl, CURLOPT_PIPEWAIT, tls ? 1L : 0L);
    /* The share holds TLS sessions only: a handle joins it with its first
     * https URL, since every transfer of a handle in a share pays for the
     * share's lock checks. */
    if (!h->shared && tls)
        h->shared = curl_easy_setopt(h->curl, CURLOPT_SHARE, t->share) == CURLE_OK;
    h->url = copy;
    h->url_len = len;
    return true;
}

/* libcurl's own connect timeout when none is set (DEFAULT_CONNECT_TIMEOUT). */
#define CURL_CONNECT_DEFAULT_MS 300000L

static void set_timeouts(cbh_easy *h, long timeout_ms, long connect_ms)
{
    /* A connect timeout no shorter than the whole one limits nothing, and
     * costs libcurl a second timer on every transfer; without it libcurl
     * limits connecting by the whole timeout and its default, which is no
     * shorter. */
    if (connect_ms == timeout_ms && timeout_ms <= CURL_CONNECT_DEFAULT_MS)
        connect_ms = 0;
    if (h->timeout_ms != timeout_ms) {
        curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
        h->timeout_ms = timeout_ms;
    }
    if (h->connect_ms != connect_ms) {
        curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
        h->connect_ms = connect_ms;
    }
}

static bool is_redirect(long status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* Decides whether a 3xx is followed and how: RFC 9110 15.4 lets 301/302
 * turn POST into GET (every client does), 303 always becomes GET (HEAD
 * stays HEAD), 307/308 keep method and body. */
static bool redirect_next(const cbh_transport *t, CURL *e, long status, const char *method,
                          cbh_redirect *next)
{
    char *loc = NULL, *from = NULL;

    if (curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK || !loc ||
        curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &from) != CURLE_OK || !from)
        return false;
    if (strncasecmp(loc, "http://", 7) != 0 && strncasecmp(loc, "https://", 8) != 0)
        return false;
    if (!t->cross_origin && !cbh_url_same_origin(from, loc))
        return false;
    if (strlen(loc) >= REDIRECT_URL_MAX || !(next->url = cbh_strdup(loc)))
        return false;
    next->method = method;
    next->drop_body = false;
    if (status == 303 ||
        ((status == 301 || status == 302) && cbh_method_of(method) == CBH_METHOD_POST)) {
        if (cbh_method_of(method) != CBH_METHOD_HEAD)
            next->method = "GET";
        next->drop_body = true;
    }
    return true;
}

/* An idle handle goes to the engine's stash when it has room, else to the
 * pool; closed when neither has. */
static void handle_give(cbh_transport *t, cbh_easy_stash *s, cbh_easy *h)
{
    if (s && s->n < CBH_STASH_MAX)
        s->idle[s->n++] = h;
    else if (!pool_give(t, &t->easies, h))
        easy_free(h);
}

cb_err cbh_xchg_begin(cbh_transport *t, cbh_xchg *x, const cbh_xfer *req, char *err, void *priv)
{
    cbh_easy_stash *s = req->stash;
    cbh_easy       *h = s && s->n ? s->idle[--s->n] : pool_take(t, &t->easies);
    uint64_t        conn =
        req->connect_timeout_ms < req->timeout_ms ? req->connect_timeout_ms : req->timeout_ms;
    CURL *e;

    memset(x, 0, sizeof(*x));
    if (!h && !(h = transport_new_handle(t))) {
        snprintf(err, CURL_ERROR_SIZE, "cannot create a libcurl handle");
        return CB_ERR_NOMEM;
    }
    if (!set_url(t, h, req->url)) {
        handle_give(t, s, h);
        snprintf(err, CURL_ERROR_SIZE, "out of memory");
        return CB_ERR_NOMEM;
    }
    e = h->curl;
    x->easy = e;
    x->handle = h;
    x->stash = s;
    x->method = req->method;
    x->body.max = t->max_body;
    x->head_max = t->max_header;
    x->length = -1;
    /* A node that turns off "Expect: 100-continue": it costs a round trip
     * on every body libcurl deems large. */
    x->expect.data = (char *)"Expect:";
    x->expect.next = (struct curl_slist *)req->headers;
    err[0] = '\0';
    h->x = x;
    h->priv = priv;
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
    set_request(h, req->method, req->body, req->body_len,
                req->body ? &x->expect : (struct curl_slist *)req->headers);
    set_timeouts(h, (long)req->timeout_ms, (long)conn);
    return CB_OK;
}

/* The handle goes back clean: it must not keep pointers into this call's
 * memory. */
static void xchg_release(cbh_transport *t, cbh_xchg *x)
{
    cbh_easy *h = x->handle;
    CURL     *e = x->easy;

    if (!e)
        return;
    h->x = NULL;
    h->priv = NULL;
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    /* This also makes the handle's method POST again. */
    if (h->posted) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
        h->posted = false;
        h->plain_get = false;
    }
    handle_give(t, x->stash, h);
    x->easy = NULL;
    x->handle = NULL;
}

void cbh_easy_stash_drain(cbh_transport *t, cbh_easy_stash *s)
{
    while (s->n)
        handle_give(t, NULL, s->idle[--s->n]);
}

void cbh_xchg_abort(cbh_transport *t, cbh_xchg *x)
{
    xchg_release(t, x);
    cbh_free(x->body.data);
    cbh_headers_acc_free(&x->head);
    x->body.data = NULL;
}

void *cbh_xchg_private(CURL *e)
{
    cbh_easy *h = NULL;

    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&h);
    return h ? h->priv : NULL;
}

cb_err cbh_xchg_end(cbh_transport *t, cbh_xchg *x, CURLcode rc, cbh_payload *out, char *msg,
                    unsigned hops, cbh_redirect *next, bool *follow)
{
    cb_err err = xfer_result(x, rc, msg, CURL_ERROR_SIZE);

    memset(out, 0, sizeof(*out));
    *follow = false;
    if (err == CB_OK) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &out->status);
        if (hops < t->max_redirects && is_redirect(out->status))
            *follow = redirect_next(t, x->easy, out->status, x->method, next);
    }
    xchg_release(t, x);
    if (err == CB_OK)
        cbh_headers_acc_finish(&x->head, &out->headers, &out->header_count, &out->headers_size);
    cbh_headers_acc_free(&x->head);
    if (err != CB_OK) {
        cbh_free(x->body.data);
        x->body.data = NULL;
        cbh_payload_free(out);
        if (*follow) {
            cbh_free(next->url);
            next->url = NULL;
            *follow = false;
        }
        return err;
    }
    /* No body: NULL, and response.c hands out its empty one. */
    if (x->body.data)
        x->body.data[x->body.len] = '\0';
    out->body = x->body.data;
    out->body_len = x->body.len;
    x->body.data = NULL;
    return CB_OK;
}
