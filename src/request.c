/*
 * The flow of one call, api_get / api_request:
 *
 *   1. check the arguments, resolve the URL, build the header list;
 *   2. find the origin (its breaker, retry budget, counters);
 *   3. ask the cache: a fresh hit returns at once, with no I/O and no permit;
 *   4. attempts: each takes a breaker permit (a rejection ends the call at
 *      once), runs one exchange, records the outcome, and decides whether and
 *      when to retry (idempotency, status, Retry-After, backoff, deadline,
 *      budget, and never into a breaker that just opened);
 *   5. the cache again: store, refresh after a 304, or stand in with a stale
 *      entry when the call failed; unsafe methods invalidate.
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "client_priv.h"
#include "headers.h"
#include "log.h"
#include "mix.h"

#define STACK_HEADERS 16 /* header lines handled without allocation */
#define CT_LINE_MAX 256  /* "Content-Type: value" */
#define REQUEST_HEAD_MAX (512u * 1024u) /* well below libcurl's 1 MiB */

/* Handed out as the body of a response that has none, so that callers can
 * always print resp->body. api_response_free knows not to free it. */
static char empty_body[1];

/* One call's working state. */
typedef struct call {
    api_client        *c;
    const char        *method;
    const api_options *opts;
    api_retry_config   retry;
    api_cache_options  cache_opts;
    bool               use_cache;
    bool               idempotent;
    uint64_t           start;
    uint64_t           deadline;
    bool               conditional;
    /* Request headers: lines (for Vary) and libcurl list nodes pointing at
     * the same strings; no copies. */
    const char       **lines;
    struct curl_slist *nodes;
    size_t             n_lines;
    /* Large members last: api_request zeroes the call only up to here. */
    cbh_url            url;
    cbh_cache_cond     cond;
    const char        *stack_lines[STACK_HEADERS + 1];
    struct curl_slist  stack_nodes[STACK_HEADERS + 3];
} call;

static bool method_valid(const char *m)
{
    size_t n = 0;

    for (; m[n]; n++)
        if (!strchr("!#$%&'*+-.^_`|~", m[n]) && !(m[n] >= '0' && m[n] <= '9') &&
            !((m[n] | 0x20) >= 'a' && (m[n] | 0x20) <= 'z'))
            return false;
    return n > 0 && n <= 32;
}

static bool method_is(const char *m, const char *name) { return strcmp(m, name) == 0; }

/* Name length of a "Name: value" line (valid lines only). */
static size_t line_name_len(const char *line) { return (size_t)(strchr(line, ':') - line); }

/* True when the per-request headers carry a line with this line's name:
 * the caller's own header replaces the client's default. */
static bool overridden(const char *const *req, const char *line)
{
    size_t n = line_name_len(line);

    for (; req && *req; req++)
        if (line_name_len(*req) == n && strncasecmp(*req, line, n) == 0)
            return true;
    return false;
}

/* A Content-Type value obeys the rule of every header line the caller
 * sends (no control character but tab) and fits its line buffer. */
static bool content_type_valid(const char *ct)
{
    char line[CT_LINE_MAX];

    return (size_t)snprintf(line, sizeof(line), "Content-Type: %s", ct) < sizeof(line) &&
           cbh_header_line_valid(line);
}

/* libcurl 7.88 builds a request head of at most 1 MiB and reports more as
 * out of memory after the permit was taken; a request that cannot be sent
 * is the caller's error, found before any attempt. Counts the method, URL,
 * every line and the conditional headers a revalidation may add. */
static cb_err request_size_check(const call *k, api_response *resp)
{
    size_t total = strlen(k->method) + strlen(k->url.url) + sizeof(k->cond) + CT_LINE_MAX;
    size_t i;

    for (i = 0; i < k->n_lines; i++)
        total += strlen(k->lines[i]) + 2;
    if (k->c->user_agent)
        total += strlen(k->c->user_agent);
    if (total <= REQUEST_HEAD_MAX)
        return CB_OK;
    snprintf(resp->error, sizeof(resp->error), "request head of %zu bytes exceeds %u", total,
             REQUEST_HEAD_MAX);
    return CB_ERR_INVALID;
}

/* Builds the header lines: the client's defaults not overridden, then the
 * request's own. Validates the request's lines (CR/LF and friends). */
static cb_err call_headers(call *k, api_response *resp)
{
    const char *const *req = k->opts ? k->opts->headers : NULL;
    const char *const *def = (const char *const *)k->c->default_headers;
    size_t             n = 0, i;

    for (i = 0; req && req[i]; i++) {
        if (!cbh_header_line_valid(req[i])) {
            snprintf(resp->error, sizeof(resp->error), "invalid header line #%zu", i);
            return CB_ERR_INVALID;
        }
        if (cbh_header_line_is(req[i], "Idempotency-Key"))
            k->idempotent = true;
    }
    n = i;
    for (i = 0; def && def[i]; i++)
        n++;
    if (k->opts && k->opts->content_type) {
        if (!content_type_valid(k->opts->content_type)) {
            snprintf(resp->error, sizeof(resp->error), "invalid content_type");
            return CB_ERR_INVALID;
        }
        n++;
    }
    if (n <= STACK_HEADERS) {
        k->lines = k->stack_lines;
        k->nodes = k->stack_nodes;
    } else {
        k->lines = cbh_calloc(n + 1, sizeof(*k->lines));
        k->nodes = cbh_calloc(n + 3, sizeof(*k->nodes));
        if (!k->lines || !k->nodes)
            return CB_ERR_NOMEM;
    }
    n = 0;
    for (i = 0; def && def[i]; i++)
        if (!overridden(req, def[i]))
            k->lines[n++] = def[i];
    for (i = 0; req && req[i]; i++)
        k->lines[n++] = req[i];
    k->lines[n] = NULL;
    k->n_lines = n;
    return request_size_check(k, resp);
}

/* Links the lines, the Content-Type line and the conditional headers into
 * a libcurl list. */
static struct curl_slist *call_slist(call *k, const char *content_type_line)
{
    struct curl_slist *head = NULL, **tail = &head;
    size_t             i, used = 0;
    const char        *extra[3] = { content_type_line,
                                    k->conditional ? k->cond.if_none_match : NULL,
                                    k->conditional ? k->cond.if_modified_since : NULL };

    for (i = 0; i < k->n_lines; i++) {
        k->nodes[used].data = (char *)k->lines[i];
        *tail = &k->nodes[used++];
        tail = &(*tail)->next;
    }
    for (i = 0; i < 3; i++) {
        if (!extra[i] || !extra[i][0])
            continue;
        k->nodes[used].data = (char *)extra[i];
        *tail = &k->nodes[used++];
        tail = &(*tail)->next;
    }
    *tail = NULL;
    return head;
}

static void call_release(call *k)
{
    if (k->lines != k->stack_lines)
        cbh_free(k->lines);
    if (k->nodes != k->stack_nodes)
        cbh_free(k->nodes);
    cbh_url_release(&k->url);
}

/* The contract's list: the origin is failing when it cannot be reached or
 * answered badly. A response over our own size limit or our own lack of
 * memory says nothing about the server's health. */
static bool default_classify(cb_err err, long status)
{
    if (err != CB_OK)
        return err == CB_ERR_CONNECT || err == CB_ERR_TIMEOUT || err == CB_ERR_TRANSPORT;
    return status >= 500 || status == 429;
}

/* Frees what one attempt put in resp, keeping the call's counters. */
static void response_clear_payload(api_response *resp)
{
    if (resp->body != empty_body)
        cbh_free(resp->body);
    cbh_free(resp->headers);
    resp->body = NULL;
    resp->body_len = 0;
    resp->headers = NULL;
    resp->header_count = 0;
    resp->headers_size_ = 0;
    resp->status = 0;
}

static void call_sleep(const api_client *c, uint64_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

    if (c->cfg.sleep_fn) {
        c->cfg.sleep_fn(ms, c->cfg.sleep_data);
        return;
    }
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A well-mixed, non-zero seed for the backoff's xorshift generator. */
static uint64_t mix_seed(uint64_t x)
{
    x = cbh_splitmix64(x);
    return x ? x : 1;
}

/* Decides the delay before the next attempt, or returns false when the
 * call should stop here (with a log line saying why). */
static bool retry_delay(call *k, cbh_origin *o, cb_err err, api_response *resp, unsigned n,
                        uint64_t *rng, uint64_t *delay)
{
    api_client *c = k->c;
    const char *ra;
    uint64_t    now;

    if (n + 1 >= k->retry.max_attempts || !k->idempotent)
        return false;
    if (err != CB_OK ? !cbh_retry_err_ok(err) : !cbh_retry_status_ok(resp->status))
        return false;
    ra = err == CB_OK ? api_response_header(resp, "Retry-After") : NULL;
    if (ra && cbh_retry_after_ms(ra, (int64_t)time(NULL), delay)) {
        if (*delay > k->retry.max_delay_ms) {
            cbh_log(c->cfg.logger, c->cfg.log_data, c->cfg.log_level, API_LOG_DEBUG,
                    "%s %s: Retry-After %s is beyond max_delay_ms, not retrying", k->method,
                    k->url.url, ra);
            return false;
        }
    } else {
        *delay = cbh_backoff_ms(&k->retry, n, rng);
    }
    now = cbh_client_now(c);
    if (now + *delay >= k->deadline)
        return false;
    /* No retry storm: once the breaker opened, the next attempt could only
     * be rejected, so do not even sleep for it. */
    if (cb_breaker_state(o->breaker) == CB_OPEN)
        return false;
    if (!cbh_budget_try_retry(&o->budget, &k->retry, now)) {
        atomic_fetch_add_explicit(&o->retries_denied, 1, memory_order_relaxed);
        cbh_log(c->cfg.logger, c->cfg.log_data, c->cfg.log_level, API_LOG_DEBUG,
                "%s %s: retry budget of %s exhausted", k->method, k->url.url, o->key);
        return false;
    }
    cbh_log(c->cfg.logger, c->cfg.log_data, c->cfg.log_level, API_LOG_DEBUG,
            "%s %s: attempt %u failed (%s, status %ld), retrying in %llu ms", k->method,
            k->url.url, n + 1, cb_strerror(err != CB_OK ? err : CB_ERR_HTTP), resp->status,
            (unsigned long long)*delay);
    return true;
}

/* "circuit open for <origin>", without snprintf: this is the path that
 * must cost nanoseconds. */
static void rejection_error(api_response *resp, const char *origin)
{
    static const char prefix[] = "circuit open for ";
    size_t            n = strlen(origin);

    if (n > sizeof(resp->error) - sizeof(prefix))
        n = sizeof(resp->error) - sizeof(prefix);
    memcpy(resp->error, prefix, sizeof(prefix) - 1);
    memcpy(resp->error + sizeof(prefix) - 1, origin, n);
    resp->error[sizeof(prefix) - 1 + n] = '\0';
}

/* Step 4: the attempts. Returns the call's result so far. */
static cb_err call_attempts(call *k, cbh_origin *o, const char *body, size_t body_len,
                            api_response *resp)
{
    api_client     *c = k->c;
    cbh_xfer        x;
    cb_err          err = CB_OK;
    char            ct_line[CT_LINE_MAX];
    uint64_t        rng, delay;
    unsigned        n;
    api_classify_fn classify = k->opts && k->opts->classify ? k->opts->classify : c->cfg.classify;
    void *classify_data = k->opts && k->opts->classify ? k->opts->classify_data
                                                       : c->cfg.classify_data;

    ct_line[0] = '\0';
    if (k->opts && k->opts->content_type)
        snprintf(ct_line, sizeof(ct_line), "Content-Type: %s", k->opts->content_type);
    rng = mix_seed((c->cfg.random_seed ? c->cfg.random_seed : (uint64_t)(uintptr_t)c ^ k->start) +
                   atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed));
    memset(&x, 0, sizeof(x));
    x.method = k->method;
    x.url = k->url.url;
    x.body = body;
    x.body_len = body_len;
    x.headers = call_slist(k, ct_line[0] ? ct_line : NULL);

    for (n = 0;; n++) {
        cb_permit p;
        cb_err    terr;
        bool      failure;
        uint64_t  now;

        if (cb_breaker_acquire(o->breaker, &p) != CB_OK) {
            cbh_log(c->cfg.logger, c->cfg.log_data, c->cfg.log_level, API_LOG_DEBUG,
                    "%s %s: rejected, circuit of %s is open", k->method, k->url.url, o->key);
            rejection_error(resp, o->key);
            return CB_ERR_CIRCUIT_OPEN;
        }
        now = cbh_client_now(c);
        atomic_fetch_add_explicit(&o->attempts, 1, memory_order_relaxed);
        if (n == 0)
            cbh_budget_note_request(&o->budget, now);
        else
            atomic_fetch_add_explicit(&o->retries, 1, memory_order_relaxed);
        resp->attempts++;
        response_clear_payload(resp);
        x.timeout_ms = k->deadline > now ? k->deadline - now : 1;
        x.connect_timeout_ms = c->cfg.connect_timeout_ms;
        terr = cbh_transport_perform(c->transport, &x, resp);
        failure = classify ? classify(terr, resp->status, classify_data)
                           : default_classify(terr, resp->status);
        cb_breaker_record_err(o->breaker, &p,
                              failure ? (terr != CB_OK ? terr : CB_ERR_HTTP) : CB_OK);
        err = terr != CB_OK ? terr : resp->status >= 400 ? CB_ERR_HTTP : CB_OK;
        if (!retry_delay(k, o, terr, resp, n, &rng, &delay))
            return err;
        call_sleep(c, delay);
    }
}

/* Step 5 on failure: a stale entry may stand in. resp's payload is kept if
 * none can. */
static bool call_serve_stale(call *k, cbh_origin *o, cb_err cause, api_response *resp)
{
    api_response saved = *resp;
    unsigned     attempts = resp->attempts;

    resp->body = NULL;
    resp->headers = NULL;
    resp->header_count = 0;
    resp->headers_size_ = 0;
    resp->body_len = 0;
    if (!cbh_cache_serve_stale(k->c->cache, k->method, k->url.url, k->lines, &k->cache_opts,
                               cause, resp)) {
        *resp = saved;
        return false;
    }
    if (saved.body != empty_body)
        cbh_free(saved.body);
    cbh_free(saved.headers);
    resp->attempts = attempts;
    atomic_fetch_add_explicit(&o->cache_stale_served, 1, memory_order_relaxed);
    cbh_log(k->c->cfg.logger, k->c->cfg.log_data, k->c->cfg.log_level, API_LOG_INFO,
            "%s %s: serving a stale cached response (%s)", k->method, k->url.url,
            cb_strerror(cause));
    return true;
}

static bool is_outage(cb_err err, const api_response *resp)
{
    return err == CB_ERR_CIRCUIT_OPEN || err == CB_ERR_CONNECT || err == CB_ERR_TIMEOUT ||
           err == CB_ERR_TRANSPORT || (err == CB_ERR_HTTP && resp->status >= 500);
}

/* Steps 3 to 5 for a resolved call. */
static cb_err call_run(call *k, cbh_origin *o, const char *body, size_t body_len,
                       api_response *resp)
{
    api_client   *c = k->c;
    cbh_cache_res res = CBH_CACHE_MISS;
    cb_err        err;
    uint64_t      sent;

    if (k->use_cache) {
        res = cbh_cache_lookup(c->cache, k->method, k->url.url, k->lines, &k->cache_opts, resp,
                               &k->cond);
        if (res == CBH_CACHE_FRESH) {
            atomic_fetch_add_explicit(&o->cache_hits, 1, memory_order_relaxed);
            goto served;
        }
        atomic_fetch_add_explicit(&o->cache_misses, 1, memory_order_relaxed);
        if (k->cache_opts.only_if_cached) {
            if (call_serve_stale(k, o, CB_ERR_CACHE_MISS, resp))
                goto served;
            snprintf(resp->error, sizeof(resp->error), "not in cache");
            return CB_ERR_CACHE_MISS;
        }
        if (res == CBH_CACHE_STALE) {
            k->conditional = true;
            atomic_fetch_add_explicit(&o->cache_revalidations, 1, memory_order_relaxed);
        }
    }

again:
    sent = k->use_cache ? cbh_client_now(c) : 0;
    err = call_attempts(k, o, body, body_len, resp);

    if (k->use_cache) {
        if (resp->status && (err == CB_OK || err == CB_ERR_HTTP)) {
            bool not_modified = resp->status == 304 && k->conditional;

            if (cbh_cache_store(c->cache, k->method, k->url.url, k->lines,
                                k->conditional ? &k->cond : NULL, resp, sent,
                                cbh_client_now(c)) != CB_OK)
                return CB_ERR_NOMEM;
            /* Our validators earned a 304 but the entry they came from went
             * meanwhile (evicted, invalidated, or replaced by another
             * version, which that 304 does not confirm): the caller must
             * never see that 304, so ask once more, plainly. */
            if (not_modified && resp->status == 304) {
                k->conditional = false;
                goto again;
            }
            if (not_modified && resp->status != 304)
                atomic_fetch_add_explicit(&o->cache_not_modified, 1, memory_order_relaxed);
            err = resp->status >= 400 ? CB_ERR_HTTP : CB_OK;
        }
        if (is_outage(err, resp) && call_serve_stale(k, o, err, resp))
            goto served;
    } else if (c->cache && err == CB_OK && !method_is(k->method, "GET") &&
               !method_is(k->method, "HEAD") && !method_is(k->method, "OPTIONS") &&
               !method_is(k->method, "TRACE")) {
        /* RFC 9111 4.4: a successful unsafe request invalidates the URL. */
        cbh_cache_invalidate(c->cache, k->url.url);
    }
    return err;

served:
    /* Straight from the cache, fresh or standing in: the result is what
     * this response gives from the network (a stored 4xx is CB_ERR_HTTP
     * with the response filled), whatever the cache was asked for. */
    return resp->status >= 400 ? CB_ERR_HTTP : CB_OK;
}

CB_EXPORT cb_err api_request(api_client *c, const char *method, const char *path,
                             const char *body, size_t body_len, const api_options *opts,
                             api_response *resp)
{
    call        k;
    cbh_origin *o = NULL;
    cb_err      err;

    if (!resp)
        return CB_ERR_INVALID;
    if (!c || !method || !path || (!body && body_len) || !method_valid(method)) {
        cbh_response_fail(resp, "invalid argument");
        return CB_ERR_INVALID;
    }
    memset(resp, 0, sizeof(*resp));
    /* The URL's own buffer need not be zeroed: resolve initialises it. */
    memset(&k, 0, offsetof(call, url));
    k.url.heap_ = NULL;
    k.cond.if_none_match[0] = k.cond.if_modified_since[0] = '\0';
    k.c = c;
    k.method = method;
    k.opts = opts;
    k.start = cbh_client_now(c);
    k.deadline = k.start + (opts && opts->timeout_ms ? opts->timeout_ms : c->cfg.timeout_ms);
    k.idempotent = cbh_retry_method_ok(method, false);
    if (opts && opts->retry)
        cbh_retry_config_norm(opts->retry, &k.retry);
    else
        k.retry = c->retry;
    if (opts && opts->cache)
        k.cache_opts = *opts->cache;
    k.use_cache = c->cache && !k.cache_opts.bypass &&
                  (method_is(method, "GET") || method_is(method, "HEAD"));

    err = cbh_client_resolve(c, path, &k.url, resp->error, sizeof(resp->error));
    if (err == CB_OK)
        err = call_headers(&k, resp);
    if (err == CB_OK) {
        o = cbh_origins_get(c->origins, k.url.origin, k.url.origin_len,
                            opts ? opts->circuit_breaker : NULL, true, &err);
        if (!o && err == CB_ERR_INVALID)
            snprintf(resp->error, sizeof(resp->error), "invalid circuit_breaker config");
    }
    if (o) {
        err = call_run(&k, o, body, body_len, resp);
        cbh_origins_release(o);
    }
    call_release(&k);
    if (!resp->body)
        resp->body = empty_body;
    resp->elapsed_ms = cbh_client_now(c) - k.start;
    return err;
}

void cbh_response_fail(api_response *resp, const char *msg)
{
    memset(resp, 0, sizeof(*resp));
    resp->body = empty_body;
    snprintf(resp->error, sizeof(resp->error), "%s", msg);
}

CB_EXPORT cb_err api_get(api_client *c, const char *path, const api_options *opts,
                         api_response *resp)
{
    return api_request(c, "GET", path, NULL, 0, opts, resp);
}

CB_EXPORT void api_response_free(api_response *resp)
{
    if (!resp)
        return;
    if (resp->body != empty_body)
        cbh_free(resp->body);
    cbh_free(resp->headers);
    memset(resp, 0, sizeof(*resp));
}

CB_EXPORT const char *api_response_header(const api_response *resp, const char *name)
{
    if (!resp || !name)
        return NULL;
    return cbh_headers_get(resp->headers, resp->header_count, name);
}
