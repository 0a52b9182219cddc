/* The libcurl layer: easy handles and multi handles in pools, one exchange
 * split into begin (an easy handle set up for one attempt) and end (status,
 * headers, body, libcurl's errors mapped to cb_err, the redirect decision),
 * so that any driver (the async engine, the blocking loop) can run the
 * transfer in between. Bounded receive buffers. Knows nothing of breakers
 * or retries. */
#ifndef CBH_TRANSPORT_H
#define CBH_TRANSPORT_H

#include <curl/curl.h>

#include "cbhttp.h"
#include "headers.h"
#include "response.h"

typedef struct cbh_transport cbh_transport;

typedef struct cbh_transport_config {
    const char *ca_file; /* NULL = the system's bundle */
    size_t      max_body_bytes;
    size_t      max_header_bytes;
    unsigned    max_redirects; /* 0 = never follow */
    bool        cross_origin_redirects;
} cbh_transport_config;

typedef struct cbh_easy cbh_easy; /* a pooled handle (transport.c) */

#define CBH_STASH_MAX 64 /* idle handles an engine keeps for itself */

/* Idle easy handles kept by one engine (one thread), out of the shared
 * pool: taking one and giving it back then takes no lock. Zero-initialise
 * it; cbh_easy_stash_drain gives them to the pool before it goes. */
typedef struct cbh_easy_stash {
    cbh_easy *idle[CBH_STASH_MAX];
    size_t    n;
} cbh_easy_stash;

/* What one exchange sends. The strings must outlive the exchange. */
typedef struct cbh_xfer {
    cbh_easy_stash          *stash;  /* the driver's idle handles; NULL = the pool only */
    const char              *method; /* "GET", "HEAD", ... */
    const char              *url;
    const char              *body; /* may be NULL */
    size_t                   body_len;
    const struct curl_slist *headers;            /* may be NULL */
    uint64_t                 timeout_ms;         /* whole exchange, >= 1 */
    uint64_t                 connect_timeout_ms; /* >= 1 */
} cbh_xfer;

/* A bounded receive buffer. */
typedef struct cbh_rbuf {
    char  *data;
    size_t len;
    size_t cap;
    size_t max;
    bool   overflow; /* the bound was hit */
    bool   oom;
} cbh_rbuf;

/* One exchange in progress: what libcurl writes into while the transfer
 * runs. Lives inside its call (no allocation of its own); only
 * transport.c looks inside. */
typedef struct cbh_xchg {
    CURL             *easy;   /* NULL when no exchange is in progress */
    cbh_easy         *handle; /* easy's pool record */
    cbh_easy_stash   *stash;  /* where the handle goes back first, or NULL */
    const char       *method; /* the request's */
    struct curl_slist expect; /* "Expect:" ahead of the caller's list */
    cbh_rbuf          body;
    cbh_headers_acc   head;          /* the current response's headers, parsed as they come */
    size_t            head_max;      /* the header limit */
    size_t            head_seen;     /* every header byte of the exchange: interim
                                    responses and trailers count against the limit */
    bool              head_overflow; /* the limit was hit */
    bool              head_oom;
    int64_t           length;    /* the block's Content-Length, -1 when none */
    bool              chunked;   /* the block has Transfer-Encoding */
    bool              final;     /* the block is a final (non-1xx) response's */
    bool              head_done; /* the final response's header block is complete */
    bool              trailers;  /* the final block ended: lines now are trailer fields */
    bool              framing;   /* the framing contradicts itself (RFC 9112 6.3) */
} cbh_xchg;

/* Where a followed redirect goes, as the transport decided it. */
typedef struct cbh_redirect {
    char       *url;       /* the absolute target; the caller cbh_frees it */
    const char *method;    /* the next hop's method (303 and POST on 301/302: GET) */
    bool        drop_body; /* the next hop sends no body */
} cbh_redirect;

/* NULL on OOM or if libcurl cannot be initialised. Strings are copied. */
cbh_transport *cbh_transport_new(const cbh_transport_config *cfg);
/* Every multi handle taken must have been given back. */
void cbh_transport_free(cbh_transport *t);

/*
 * Sets up an exchange for req on a pooled easy handle; libcurl writes its
 * error text into err (CURL_ERROR_SIZE bytes, kept until end or abort).
 * x->easy is then ready for curl_multi_add_handle;
 * cbh_xchg_private(x->easy) returns priv. CB_OK or CB_ERR_NOMEM (x->easy NULL).
 * Thread-safe.
 */
cb_err cbh_xchg_begin(cbh_transport *t, cbh_xchg *x, const cbh_xfer *req, char *err, void *priv);

/* The priv given to cbh_xchg_begin for the exchange running on e (a
 * handle a multi reports done), or NULL. */
void *cbh_xchg_private(CURL *e);

/*
 * Ends an exchange whose transfer finished with rc (removed from its multi
 * handle first). Fills *out (status, body always NUL-terminated, headers)
 * and the error text in err (the buffer given to begin), and returns CB_OK
 * when a response arrived (whatever its status), CB_ERR_CONNECT / TIMEOUT
 * / TRANSPORT / TOO_LARGE / NOMEM / INVALID otherwise (*out empty). When next is not NULL and the
 * response is a redirect to follow (hops already taken < max_redirects;
 * http/https only; the same origin unless cross-origin redirects are on),
 * fills *next and sets *follow. The easy handle goes back to the pool.
 */
cb_err cbh_xchg_end(cbh_transport *t, cbh_xchg *x, CURLcode rc, cbh_payload *out, char *err,
                    unsigned hops, cbh_redirect *next, bool *follow);

/* Drops an exchange that will not finish (cancelled, or its deadline
 * passed; already removed from its multi handle). NULL easy is fine. */
void cbh_xchg_abort(cbh_transport *t, cbh_xchg *x);

/* Gives the stash's handles back to the pool (closing those it has no
 * room for). */
void cbh_easy_stash_drain(cbh_transport *t, cbh_easy_stash *s);

/* A multi handle for a thread's blocking calls, from a pool: a thread gets
 * back the one it used last, and with it its kept-alive connections. NULL
 * on OOM. Thread-safe. */
CURLM *cbh_transport_multi_take(cbh_transport *t);
void   cbh_transport_multi_give(cbh_transport *t, CURLM *m);

/* A new multi handle set up like the pooled ones (HTTP/2 multiplexing on),
 * for an engine of its own. NULL on OOM. */
CURLM *cbh_transport_multi_new(void);

#endif
