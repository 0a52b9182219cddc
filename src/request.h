/* One call as a step machine: request.c decides (cache, breaker, retry,
 * redirects, deadline) and a driver does the I/O: the async engine
 * (async.c) for api_async_*, the blocking loop (also async.c) for
 * api_request. Each step returns what the driver must do next. */
#ifndef CBH_REQUEST_H
#define CBH_REQUEST_H

#include "client_priv.h"

#define CBH_STACK_HEADERS 8 /* header lines handled without allocation */
#define CBH_CT_LINE_MAX 256 /* "Content-Type: value" */

typedef enum cbh_step {
    CBH_STEP_TRANSFER, /* run k->xchg.easy on a multi handle, then cbh_call_transfer_done */
    CBH_STEP_WAIT,     /* call cbh_call_wake at k->wake (client clock), not before */
    CBH_STEP_DONE      /* the call ended: cbh_call_finish */
} cbh_step;

typedef struct cbh_call cbh_call;

/* The engine's bookkeeping inside a call; only async.c touches it. */
typedef struct cbh_call_link {
    cbh_call   *prev, *next; /* the engine's calls not yet delivered */
    cbh_call   *done_next;   /* the queue of calls whose done is due */
    size_t      heap_idx;    /* place in the timer heap; SIZE_MAX = none */
    uint64_t    due;         /* the heap key: wake or deadline */
    cbh_step    step;        /* what the call waits for */
    cbh_call   *defer_next;  /* the engine's deferred list (see async.c) */
    unsigned    defer;       /* what waits there for libcurl to return: 0 = nothing */
    api_done_fn done;
    void       *user_data;
} cbh_call_link;

/* Only request.c writes these fields (but link). */
struct cbh_call {
    api_client        *c;
    api_response      *resp;   /* the caller's: filled as the call goes */
    const char        *method; /* of the current hop */
    const char        *body;   /* NULL for none */
    size_t             body_len;
    const cb_config   *cb_cfg; /* the request's breaker config, or NULL */
    api_classify_fn    classify;
    void              *classify_data;
    api_retry_config   retry;
    api_cache_options  cache_opts;
    cbh_origin        *o; /* the current hop's origin (a reference) */
    cb_permit          permit;
    bool               has_permit;
    bool               use_cache;
    bool               idempotent;
    bool               conditional; /* cond is sent with this attempt */
    unsigned           n;           /* attempt number since the (re)start */
    unsigned           hops;        /* redirects followed */
    uint64_t           start;
    uint64_t           timeout_ms; /* the call's whole budget */
    uint64_t           deadline;   /* start + timeout_ms, saturated (the heap's key) */
    uint64_t           sent;       /* when the current exchange began */
    uint64_t           wake;       /* with CBH_STEP_WAIT */
    uint64_t           rng;        /* backoff jitter state */
    cb_err             result;     /* with CBH_STEP_DONE */
    char              *hop_url;    /* a redirect's target (owned); NULL = url.url */
    cbh_cache_cond    *cond;       /* validators of a stale entry (owned), or NULL:
                                     allocated only to revalidate, it is 1 KiB */
    void              *owned;      /* copies of body, headers and config (async) */
    const char       **lines;      /* request header lines, for Vary and libcurl */
    struct curl_slist *nodes;
    size_t             n_lines;
    cbh_xfer           x;
    cbh_xchg           xchg;
    cbh_call_link      link;
    char               ct_line[CBH_CT_LINE_MAX];
    cbh_url            url;
    const char        *stack_lines[CBH_STACK_HEADERS + 1];
    struct curl_slist  stack_nodes[CBH_STACK_HEADERS + 3];
};

/*
 * Checks the arguments and prepares k (zeroed by the caller up to its url
 * member) without I/O or a breaker permit. copy: the body,
 * the request's header lines and breaker config are copied (async calls);
 * else they are used in place. On error resp is filled as every failed call
 * leaves it and k needs no cbh_call_finish. stash: where the call's
 * exchanges take easy handles from first (an engine's own), or NULL.
 */
cb_err cbh_call_init(cbh_call *k, api_client *c, const char *method, const char *path,
                     const char *body, size_t body_len, const api_options *opts, api_response *resp,
                     bool copy, cbh_easy_stash *stash);

/* The steps; each returns what the driver does next. */
cbh_step cbh_call_start(cbh_call *k);
cbh_step cbh_call_transfer_done(cbh_call *k, CURLcode rc); /* removed from its multi */
cbh_step cbh_call_wake(cbh_call *k);
/* Ends the call with CB_ERR_CANCELLED (its transfer, if any, removed from
 * its multi handle first): the permit is given back uncounted. */
void cbh_call_cancel(cbh_call *k);
/* Ends a call whose transfer the engine could not run (err, msg: out of
 * memory, a loop that could not watch its socket; the transfer, if any,
 * removed from its multi handle first): nothing the origin did, so the
 * permit is given back uncounted and there is no retry. */
cbh_step cbh_call_local_failure(cbh_call *k, cb_err err, const char *msg);

/* Releases what the call holds and completes resp; returns its result. */
cb_err cbh_call_finish(cbh_call *k);

/* The blocking driver (async.c): runs k from its start to CBH_STEP_DONE on
 * the calling thread. */
void cbh_engine_perform(cbh_call *k);

#endif
