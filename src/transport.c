/*
 * The libcurl layer.
 *
 * libcurl 7.88 (Debian 12) cannot share one connection cache between threads
 * safely (CURL_LOCK_DATA_CONNECT), so each easy handle keeps its own
 * connections, and handles live in a LIFO pool: a thread making sequential
 * calls gets the same handle, and so the same kept-alive connection, back.
 * DNS answers and TLS sessions are shared through a CURLSH with real locks.
 */
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "headers.h"
#include "transport.h"
#include "url.h"

#define POOL_MAX 64           /* idle handles kept; more are closed */
#define BODY_INITIAL 4096     /* first allocation when no Content-Length */
#define REDIRECT_URL_MAX 8192
#define PREALLOC_MAX (16u << 20) /* most bytes allocated ahead on a Content-Length */

struct cbh_transport {
    pthread_mutex_t lock;
    CURL           *idle[POOL_MAX];
    pthread_t       idle_owner[POOL_MAX]; /* the thread that last used it */
    size_t          n_idle;
    CURLSH         *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
    char           *ca_file;
    char           *user_agent;
    size_t          max_body;
    size_t          max_header;
    unsigned        max_redirects;
    bool            cross_origin;
};

/* A bounded receive buffer. */
typedef struct xfer_buf {
    char  *data;
    size_t len;
    size_t cap;
    size_t max;
    bool   overflow; /* the bound was hit */
    bool   oom;
} xfer_buf;

typedef struct xfer_state {
    CURL    *easy;
    xfer_buf body;
    xfer_buf head;       /* the header block of the current response */
    size_t   head_seen;  /* every header byte of the exchange: interim
                            responses and trailers count against the limit */
    int64_t  length;     /* the block's Content-Length, -1 when none */
    bool     chunked;    /* the block has Transfer-Encoding */
    bool     final;      /* the block is a final (non-1xx) response's */
    bool     head_done;  /* the final response's header block is complete */
    bool     trailers;   /* the final block ended: lines now are trailer fields */
    bool     framing;    /* the framing contradicts itself (RFC 9112 6.3) */
} xfer_state;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

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
static bool buf_append(xfer_buf *b, const char *p, size_t n)
{
    if (n > b->max - b->len) {
        b->overflow = true;
        return false;
    }
    if (b->len + n >= b->cap) {
        size_t need = b->len + n; /* <= max: the byte for the NUL comes next */
        size_t cap = b->cap ? b->cap : BODY_INITIAL;
        char  *d;

        if (need == SIZE_MAX) {
            b->oom = true;
            return false;
        }
        while (cap <= need)
            cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
        if (b->max < SIZE_MAX && cap > b->max + 1)
            cap = b->max + 1;
        d = cbh_realloc(b->data, cap);
        if (!d) {
            b->oom = true;
            return false;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    xfer_state *st = ud;
    size_t      bytes = size * n;

    /* Size the buffer once when the server announced the length, trusting
     * the announcement only up to PREALLOC_MAX: a hostile server may name
     * any length, and the bound on what it really sends is max. */
    if (!st->body.data && bytes) {
        curl_off_t cl = -1;

        curl_easy_getinfo(st->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
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
static bool content_length_add(xfer_state *st, const char *v, size_t n)
{
    size_t i = 0;

    while (i < n) {
        int64_t x = 0;
        size_t  digits = 0;

        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
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

/* Watches the framing fields of a final response: conflicting lengths, or
 * a length beside Transfer-Encoding, are the classic request-smuggling and
 * response-splitting shapes, an unrecoverable error. */
static bool framing_ok(xfer_state *st, const char *p, size_t n)
{
    const char *colon = memchr(p, ':', n);
    size_t      name;

    if (!colon)
        return true;
    name = (size_t)(colon - p);
    if (name == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
        if (!content_length_add(st, colon + 1, n - name - 1))
            return false;
    } else if (name == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
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
    xfer_state *st = ud;
    size_t      bytes = size * n;

    if (bytes > st->head.max - st->head_seen) {
        st->head.overflow = true;
        return 0;
    }
    st->head_seen += bytes;
    if (st->trailers)
        return bytes;
    if (bytes >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        int code = status_of(p, bytes);

        st->head.len = 0;
        st->head_done = false;
        st->final = code >= 200 || code == 0;
        st->length = -1;
        st->chunked = false;
    } else if (bytes <= 2 && (bytes == 0 || p[0] == '\r' || p[0] == '\n')) {
        st->head_done = st->trailers = st->final;
    } else if (st->final && !framing_ok(st, p, bytes)) {
        st->framing = true;
        return 0;
    }
    return buf_append(&st->head, p, bytes) ? bytes : 0;
}

/* Options that never change for a handle. */
static CURL *transport_new_handle(cbh_transport *t)
{
    CURL *e = curl_easy_init();

    if (!e)
        return NULL;
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
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    /* A limit beyond what curl_off_t holds is no limit (0). */
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                     t->max_body <= (uint64_t)INT64_MAX ? (curl_off_t)t->max_body : 0);
    curl_easy_setopt(e, CURLOPT_SHARE, t->share);
    if (t->user_agent)
        curl_easy_setopt(e, CURLOPT_USERAGENT, t->user_agent);
    if (t->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
    return e;
}

/* A thread gets back the handle it used last when that one is idle: its
 * kept-alive connection then stays with one thread, as with a handle per
 * thread. Handing connections around between threads cost ~20% of
 * throughput with two threads on two cores (the scheduler pairs each client
 * thread with the server side of its connection; swapping breaks that). */
static CURL *pool_take(cbh_transport *t)
{
    CURL     *e = NULL;
    pthread_t self = pthread_self();
    size_t    i;

    pthread_mutex_lock(&t->lock);
    if (t->n_idle) {
        i = t->n_idle;
        while (i > 0 && !pthread_equal(t->idle_owner[i - 1], self))
            i--;
        i = i ? i - 1 : t->n_idle - 1;
        e = t->idle[i];
        /* Keep the stack order of the others: newest on top. */
        memmove(&t->idle[i], &t->idle[i + 1], (t->n_idle - i - 1) * sizeof(t->idle[0]));
        memmove(&t->idle_owner[i], &t->idle_owner[i + 1],
                (t->n_idle - i - 1) * sizeof(t->idle_owner[0]));
        t->n_idle--;
    }
    pthread_mutex_unlock(&t->lock);
    return e ? e : transport_new_handle(t);
}

static void pool_give(cbh_transport *t, CURL *e)
{
    pthread_mutex_lock(&t->lock);
    if (t->n_idle < POOL_MAX) {
        t->idle_owner[t->n_idle] = pthread_self();
        t->idle[t->n_idle++] = e;
        e = NULL;
    }
    pthread_mutex_unlock(&t->lock);
    if (e)
        curl_easy_cleanup(e);
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
    curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    if (cfg->user_agent && !(t->user_agent = cbh_strdup(cfg->user_agent)))
        goto fail;
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
    while (t->n_idle)
        curl_easy_cleanup(t->idle[--t->n_idle]);
    if (t->share)
        curl_share_cleanup(t->share);
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&t->share_locks[i]);
    pthread_mutex_destroy(&t->lock);
    cbh_free(t->user_agent);
    cbh_free(t->ca_file);
    cbh_free(t);
}

/* libcurl's results in our codes. */
static cb_err transport_map_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return CB_OK;
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

/* Forgets what an earlier hop received (limits are per exchange). */
static void state_new_hop(xfer_state *st)
{
    st->body.len = st->head.len = st->head_seen = 0;
    st->body.overflow = st->head.overflow = false;
    st->length = -1;
    st->chunked = st->final = st->head_done = st->trailers = st->framing = false;
}

/* The exchange's result: our own limits and failures first (a callback
 * that stopped the transfer makes libcurl say only "write error"), then
 * libcurl's code for what really happened. */
static cb_err xfer_result(const xfer_state *st, CURLcode rc, char *msg, size_t msg_size)
{
    long sent = 0;

    if (rc == CURLE_OK)
        return CB_OK;
    if (st->body.overflow || st->head.overflow) {
        snprintf(msg, msg_size, "response %s exceeded %zu bytes",
                 st->body.overflow ? "body" : "headers",
                 st->body.overflow ? st->body.max : st->head.max);
        return CB_ERR_TOO_LARGE;
    }
    if (st->framing) {
        snprintf(msg, msg_size, "conflicting message framing (Content-Length)");
        return CB_ERR_TRANSPORT;
    }
    if (st->body.oom || st->head.oom)
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
static void set_request(CURL *e, const char *method, const char *body, size_t body_len,
                        struct curl_slist *headers)
{
    bool has_body = body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                    strcmp(method, "PATCH") == 0;

    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (!has_body) {
        /* HTTPGET also undoes an earlier POST or NOBODY on this handle. */
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
    } else {
        curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") ? method : NULL);
    }
}

static bool is_redirect(long status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* Decides whether a 3xx is followed and how: RFC 9110 15.4 lets 301/302
 * turn POST into GET (every client does), 303 always becomes GET, 307/308
 * keep method and body. */
static bool redirect_next(const cbh_transport *t, CURL *e, long status, const char *from,
                          const char **method, const char **body, size_t *body_len,
                          char *next, size_t next_size)
{
    char *loc = NULL;

    if (!is_redirect(status))
        return false;
    if (curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK || !loc)
        return false;
    if (strncasecmp(loc, "http://", 7) != 0 && strncasecmp(loc, "https://", 8) != 0)
        return false;
    if (!t->cross_origin && !cbh_url_same_origin(from, loc))
        return false;
    if (strlen(loc) >= next_size)
        return false;
    strcpy(next, loc);
    if (status == 303 || ((status == 301 || status == 302) && strcmp(*method, "POST") == 0)) {
        if (strcmp(*method, "HEAD") != 0)
            *method = "GET";
        *body = NULL;
        *body_len = 0;
    }
    return true;
}

cb_err cbh_transport_perform(cbh_transport *t, const cbh_xfer *x, api_response *resp)
{
    xfer_state        st;
    CURL             *e;
    CURLcode          rc = CURLE_OK;
    cb_err            err;
    const char       *method = x->method, *body = x->body, *url = x->url;
    size_t            body_len = x->body_len;
    unsigned          hops = 0;
    uint64_t          start = cb_clock_monotonic_ms(NULL);
    char             *next = NULL;
    /* A stack node that turns off "Expect: 100-continue": it costs a round
     * trip on every body libcurl deems large. */
    struct curl_slist expect = { (char *)"Expect:", (struct curl_slist *)x->headers };

    e = pool_take(t);
    if (!e) {
        snprintf(resp->error, sizeof(resp->error), "cannot create a libcurl handle");
        return CB_ERR_NOMEM;
    }
    memset(&st, 0, sizeof(st));
    st.easy = e;
    st.body.max = t->max_body;
    st.head.max = t->max_header;
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &st);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &st);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, resp->error);
    resp->error[0] = '\0';

    for (;;) {
        uint64_t spent = cb_clock_monotonic_ms(NULL) - start;
        uint64_t left = spent < x->timeout_ms ? x->timeout_ms - spent : 1;
        uint64_t conn = x->connect_timeout_ms < left ? x->connect_timeout_ms : left;

        set_request(e, method, body, body_len,
                    body ? &expect : (struct curl_slist *)x->headers);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)left);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)conn);
        state_new_hop(&st);
        rc = curl_easy_perform(e);
        if (rc != CURLE_OK)
            break;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
        if (hops >= t->max_redirects || !is_redirect(resp->status))
            break;
        if (!next && !(next = cbh_malloc(REDIRECT_URL_MAX))) {
            rc = CURLE_OUT_OF_MEMORY;
            break;
        }
        if (!redirect_next(t, e, resp->status, url, &method, &body, &body_len, next,
                           REDIRECT_URL_MAX))
            break;
        url = next;
        hops++;
    }

    err = xfer_result(&st, rc, resp->error, sizeof(resp->error));
    if (err != CB_OK)
        resp->status = 0;

    /* The handle must not keep pointers into this call's memory. */
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
    pool_give(t, e);
    cbh_free(next);

    if (err == CB_OK && st.head.len &&
        cbh_headers_parse(st.head.data, st.head.len, &resp->headers, &resp->header_count,
                          &resp->headers_size_) != CB_OK)
        err = CB_ERR_NOMEM;
    cbh_free(st.head.data);
    if (err != CB_OK) {
        cbh_free(st.body.data);
        return err;
    }
    if (!st.body.data && !(st.body.data = cbh_malloc(1))) {
        return CB_ERR_NOMEM;
    }
    st.body.data[st.body.len] = '\0';
    resp->body = st.body.data;
    resp->body_len = st.body.len;
    return CB_OK;
}
