/*
 * The flow of one call, api_request / api_async_request, as the steps of a
 * machine that a driver (async.c) runs; each step returns what to do next
 * (start a transfer, wait until a time, or finish), so the same flow serves
 * a blocking thread and an event loop, and waits are timers, never sleeps.
 *
 *   init     check the arguments, resolve the URL, build the header list
 *            (bad input ends here: no I/O, no permit);
 *   start    find the origin (its breaker, retry budget, counters); ask the
 *            cache: a fresh hit ends the call with no I/O and no permit;
 *   attempt  take a breaker permit (a rejection ends the call at once) and
 *            begin an exchange -> TRANSFER;
 *   transfer_done
 *            record the outcome; follow a redirect as a new hop through the
 *            target origin's breaker (credentials stay behind when it
 *            leaves the origin); or decide whether and when to retry
 *            (idempotency, status, Retry-After, backoff, deadline, budget,
 *            never into a breaker that just opened) -> WAIT;
 *   wake     the backoff ended -> attempt;
 *   end      the cache again: store (under the URL the response answers),
 *            refresh after a 304, or stand in with a stale entry when the
 *            call failed; unsafe methods invalidate -> DONE.
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "headers.h"
#include "log.h"
#include "method.h"
#include "mix.h"
#include "outcome.h"
#include "request.h"
#include "response.h"
#include "sat.h"

#define REQUEST_HEAD_MAX (512u * 1024u) /* well below libcurl's 1 MiB */

#define CLIENT_LOG(k, level, ...)                                                                  \
    cbh_log((k)->c->cfg.logger, (k)->c->cfg.log_data, (k)->c->cfg.log_level, level, __VA_ARGS__)

/* A method is a token (RFC 9110 9.1), of at most 32 bytes here. */
static bool method_valid(const char *m)
{
    size_t n = 0;

    for (; m[n]; n++)
        if (!cbh_is_tchar((unsigned char)m[n]))
            return false;
    return n > 0 && n <= 32;
}

static const char *call_url(const cbh_call *k) { return k->hop_url ? k->hop_url : k->url.url; }

/* Counts one event in the origin's counters: the call inflated the origin
 * (call_origin), so they exist. */
#define CALL_COUNT(o, field)                                                                       \
    atomic_fetch_add_explicit(&cbh_origin_ext_of(o)->field, 1, memory_order_relaxed)

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
static bool content_type_valid(cbh_call *k, const char *ct)
{
    return (size_t)snprintf(k->ct_line, sizeof(k->ct_line), "Content-Type: %s", ct) <
               sizeof(k->ct_line) &&
           cbh_header_line_valid(k->ct_line);
}

/* libcurl 7.88 builds a request head of at most 1 MiB and reports more as
 * out of memory after the permit was taken; a request that cannot be sent
 * is the caller's error, found before any attempt. Counts the method, URL,
 * every line and the conditional headers a revalidation may add. */
static cb_err request_size_check(const cbh_call *k)
{
    size_t total =
        strlen(k->method) + strlen(k->url.url) + sizeof(cbh_cache_cond) + CBH_CT_LINE_MAX;
    size_t i;

    for (i = 0; i < k->n_lines; i++)
        total += strlen(k->lines[i]) + 2;
    if (total <= REQUEST_HEAD_MAX)
        return CB_OK;
    snprintf(k->resp->error, sizeof(k->resp->error), "request head of %zu bytes exceeds %u", total,
             REQUEST_HEAD_MAX);
    return CB_ERR_INVALID;
}

/* Copies what an async call must not borrow from its caller into one
 * block: the body, the request's own header lines (placed into k->lines)
 * and its breaker config. */
static cb_err call_copy(cbh_call *k, const char *const *req, size_t first_req)
{
    size_t i, n = (k->body ? k->body_len + 1 : 0) + (k->cb_cfg ? sizeof(cb_config) : 0);
    char  *p;

    for (i = 0; req && req[i]; i++)
        n += strlen(req[i]) + 1;
    if (n == 0)
        return CB_OK; /* nothing borrowed */
    if (!(k->owned = cbh_malloc(n)))
        return CB_ERR_NOMEM;
    p = k->owned;
    if (k->cb_cfg) {
        memcpy(p, k->cb_cfg, sizeof(cb_config));
        k->cb_cfg = (const cb_config *)(void *)p;
        p += sizeof(cb_config);
    }
    for (i = 0; req && req[i]; i++) {
        size_t len = strlen(req[i]) + 1;

        k->lines[first_req + i] = memcpy(p, req[i], len);
        p += len;
    }
    if (k->body) {
        k->body = memcpy(p, k->body, k->body_len);
        p[k->body_len] = '\0';
    }
    return CB_OK;
}

/* Builds the header lines: the client's defaults not overridden, then the
 * request's own. Validates the request's lines (CR/LF and friends). */
static cb_err call_headers(cbh_call *k, const api_options *opts, bool copy)
{
    const char *const *req = opts ? opts->headers : NULL;
    const char *const *def = (const char *const *)k->c->default_headers;
    api_response      *resp = k->resp;
    size_t             n = 0, i, first_req;

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
    if (opts && opts->content_type && !content_type_valid(k, opts->content_type)) {
        snprintf(resp->error, sizeof(resp->error), "invalid content_type");
        return CB_ERR_INVALID;
    }
    if (n <= CBH_STACK_HEADERS) {
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
    first_req = n;
    for (i = 0; req && req[i]; i++)
        k->lines[n++] = req[i];
    k->lines[n] = NULL;
    k->n_lines = n;
    if (copy && call_copy(k, req, first_req) != CB_OK)
        return CB_ERR_NOMEM;
    return request_size_check(k);
}

/* Credentials never follow a redirect to another origin (as libcurl and
 * browsers do): the lines that carry them are dropped from the call. */
static bool is_credential(const char *line)
{
    return cbh_header_line_is(line, "Authorization") || cbh_header_line_is(line, "Cookie") ||
           cbh_header_line_is(line, "Proxy-Authorization");
}

static void call_drop_credentials(cbh_call *k)
{
    size_t i, n = 0;

    for (i = 0; i < k->n_lines; i++)
        if (!is_credential(k->lines[i]))
            k->lines[n++] = k->lines[i];
    k->lines[n] = NULL;
    k->n_lines = n;
}

/* Links the lines, the Content-Type line and the conditional headers into
 * a libcurl list, in the call's own nodes. */
static struct curl_slist *call_slist(cbh_call *k)
{
    struct curl_slist *head = NULL, **tail = &head;
    size_t             i, used = 0;
    const char        *extra[3];

    extra[0] = k->ct_line;
    extra[1] = k->conditional ? k->cond->if_none_match : NULL;
    extra[2] = k->conditional ? k->cond->if_modified_since : NULL;

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

/* A well-mixed, non-zero seed for the backoff's xorshift generator. */
static uint64_t mix_seed(uint64_t x)
{
    x = cbh_splitmix64(x);
    return x ? x : 1;
}

cb_err cbh_call_init(cbh_call *k, api_client *c, const char *method, const char *path,
                     const char *body, size_t body_len, const api_options *opts, api_response *resp,
                     bool copy, cbh_easy_stash *stash)
{
    cb_err err;

    if (!c || !method || !path || (!body && body_len) || !method_valid(method)) {
        cbh_response_fail(resp, "invalid argument");
        return CB_ERR_INVALID;
    }
    memset(resp, 0, sizeof(*resp));
    k->c = c;
    k->resp = resp;
    k->method = method;
    k->body = body;
    k->body_len = body_len;
    k->x.stash = stash; /* the same for every exchange of the call */
    k->cb_cfg = opts ? opts->circuit_breaker : NULL;
    k->classify = opts && opts->classify ? opts->classify : c->cfg.classify;
    k->classify_data = opts && opts->classify ? opts->classify_data : c->cfg.classify_data;
    k->start = cbh_client_now(c);
    k->timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : c->cfg.timeout_ms;
    k->deadline = cbh_add_sat(k->start, k->timeout_ms);
    k->idempotent = cbh_retry_method_ok(method, false);
    if (opts && opts->retry)
        cbh_retry_config_norm(opts->retry, &k->retry);
    else
        k->retry = c->retry;
    if (opts && opts->cache)
        k->cache_opts = *opts->cache;
    k->use_cache = c->cache && !k->cache_opts.bypass && cbh_method_is_cacheable(method);
    k->link.heap_idx = SIZE_MAX;
    err = cbh_client_resolve(c, path, &k->url, resp->error, sizeof(resp->error));
    if (err == CB_OK)
        err = call_headers(k, opts, copy);
    if (err != CB_OK) {
        cbh_call_finish(k);
        return err;
    }
    k->rng =
        mix_seed((c->cfg.random_seed ? c->cfg.random_seed : (uint64_t)(uintptr_t)c ^ k->start) +
                 atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed));
    return CB_OK;
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

/* Finds (or creates) the origin of url for the call's next hop. */
static cb_err call_origin(cbh_call *k, const char *origin, size_t len)
{
    cb_err err = CB_OK;

    cbh_origins_release(k->o);
    k->o = cbh_origins_get(k->c->origins, origin, len, k->cb_cfg, true, &err);
    /* A call needs the origin's counters, budget and breaker window. */
    if (k->o && (err = cbh_origins_inflate(k->o)) != CB_OK) {
        cbh_origins_release(k->o);
        k->o = NULL;
    }
    if (!k->o && err == CB_ERR_INVALID) {
        char detail[160] = "";

        cb_config_check(k->cb_cfg, detail, sizeof(detail));
        snprintf(k->resp->error, sizeof(k->resp->error), "circuit_breaker: %s", detail);
    }
    return k->o ? CB_OK : err;
}

static cbh_step call_end(cbh_call *k, cb_err err);
static cbh_step call_exchange(cbh_call *k, bool hop);

static cbh_step call_attempt(cbh_call *k) { return call_exchange(k, false); }

/* Milliseconds left of the call's deadline at now, from the time spent
 * rather than from the deadline itself, which saturates near the end of an
 * injected clock. */
static uint64_t call_left(const cbh_call *k, uint64_t now)
{
    uint64_t spent = now > k->start ? now - k->start : 0;

    return spent < k->timeout_ms ? k->timeout_ms - spent : 0;
}

/* Takes a permit and begins one exchange: an attempt of the call, or a
 * redirect hop within the attempt. */
static cbh_step call_exchange(cbh_call *k, bool hop)
{
    api_client   *c = k->c;
    cbh_origin   *o = k->o;
    api_response *resp = k->resp;
    uint64_t      now;

    if (cb_breaker_acquire(&o->breaker, &k->permit) != CB_OK) {
        CLIENT_LOG(k, API_LOG_DEBUG, "%s %s: rejected, circuit of %s is open", k->method,
                   call_url(k), o->key);
        rejection_error(resp, o->key);
        return call_end(k, CB_ERR_CIRCUIT_OPEN);
    }
    k->has_permit = true;
    now = cbh_client_now(c);
    CALL_COUNT(o, attempts);
    if (k->n == 0)
        cbh_budget_note_request(&cbh_origin_ext_of(o)->budget, now);
    else if (!hop)
        CALL_COUNT(o, retries);
    if (!hop)
        resp->attempts++;
    cbh_response_clear_payload(resp);
    k->sent = now;
    k->x.method = k->method;
    k->x.url = call_url(k);
    k->x.body = k->body;
    k->x.body_len = k->body_len;
    k->x.headers = call_slist(k);
    k->x.timeout_ms = call_left(k, now) ? call_left(k, now) : 1;
    k->x.connect_timeout_ms = c->cfg.connect_timeout_ms;
    if (cbh_xchg_begin(c->transport, &k->xchg, &k->x, resp->error, k) != CB_OK) {
        cb_breaker_record_err(&o->breaker, &k->permit, CB_OK);
        k->has_permit = false;
        return call_end(k, CB_ERR_NOMEM);
    }
    return CBH_STEP_TRANSFER;
}

/* A stale entry's validators go with the next exchange. */
static bool call_revalidate(cbh_call *k, const cbh_cache_cond *cond)
{
    if (!k->cond && !(k->cond = cbh_malloc(sizeof(*k->cond))))
        return false;
    *k->cond = *cond;
    k->conditional = true;
    CALL_COUNT(k->o, cache_revalidations);
    return true;
}

/* The cache before an exchange to the current URL (the call's, or a
 * redirect's target): a fresh hit ends the call with no I/O and no permit,
 * a stale entry with validators makes the exchange conditional. */
static cbh_step call_consult_cache(cbh_call *k, bool hop)
{
    cbh_cache_res  res;
    cbh_cache_cond cond;
    cbh_payload    hit = { 0 };

    if (!k->use_cache)
        return call_exchange(k, hop);
    res = cbh_cache_lookup(k->c->cache, k->method, call_url(k), k->lines, &k->cache_opts, &hit,
                           &cond);
    if (res == CBH_CACHE_FRESH) {
        cbh_response_set_payload(k->resp, &hit);
        k->resp->from_cache = true;
        CALL_COUNT(k->o, cache_hits);
        /* A stored 5xx is still an outage: the last good response may stand
         * in for it (call_end). Where a response came from never changes
         * the result. */
        if (k->resp->status >= 500)
            return call_end(k, CB_ERR_HTTP);
        k->result = k->resp->status >= 400 ? CB_ERR_HTTP : CB_OK;
        return CBH_STEP_DONE;
    }
    CALL_COUNT(k->o, cache_misses);
    if (k->cache_opts.only_if_cached || cbh_cache_only_if_cached(k->lines)) {
        snprintf(k->resp->error, sizeof(k->resp->error), "not in cache");
        return call_end(k, CB_ERR_CACHE_MISS);
    }
    if (res == CBH_CACHE_STALE && !call_revalidate(k, &cond)) {
        snprintf(k->resp->error, sizeof(k->resp->error), "out of memory");
        return call_end(k, CB_ERR_NOMEM);
    }
    return call_exchange(k, hop);
}

cbh_step cbh_call_start(cbh_call *k)
{
    cb_err err = call_origin(k, k->url.origin, k->url.origin_len);

    if (err != CB_OK) {
        k->result = err;
        return CBH_STEP_DONE;
    }
    return call_consult_cache(k, false);
}

/* Decides the delay before the next attempt, or returns false when the
 * call should stop here (with a log line saying why). */
static bool retry_delay(cbh_call *k, cb_err err, uint64_t *delay)
{
    api_client   *c = k->c;
    cbh_origin   *o = k->o;
    api_response *resp = k->resp;
    const char   *ra;
    uint64_t      now;

    if (k->n + 1 >= k->retry.max_attempts || !k->idempotent)
        return false;
    if (!cbh_outcome_retryable(err, resp->status))
        return false;
    ra = err == CB_OK ? api_response_header(resp, "Retry-After") : NULL;
    if (ra && cbh_retry_after_ms(ra, (int64_t)time(NULL), delay)) {
        if (*delay > k->retry.max_delay_ms) {
            CLIENT_LOG(k, API_LOG_DEBUG,
                       "%s %s: Retry-After %s is beyond max_delay_ms, not retrying", k->method,
                       call_url(k), ra);
            return false;
        }
    } else {
        *delay = cbh_backoff_ms(&k->retry, k->n, &k->rng);
    }
    now = cbh_client_now(c);
    if (*delay >= call_left(k, now))
        return false;
    /* No retry storm: once the breaker opened, the next attempt could only
     * be rejected, so do not even wait for it. */
    if (cb_breaker_state(&o->breaker) == CB_OPEN)
        return false;
    if (!cbh_budget_try_retry(&cbh_origin_ext_of(o)->budget, &k->retry, now)) {
        CALL_COUNT(o, retries_denied);
        CLIENT_LOG(k, API_LOG_DEBUG, "%s %s: retry budget of %s exhausted", k->method, call_url(k),
                   o->key);
        return false;
    }
    CLIENT_LOG(k, API_LOG_DEBUG, "%s %s: attempt %u failed (%s, status %ld), retrying in %llu ms",
               k->method, call_url(k), k->n + 1, cb_strerror(err != CB_OK ? err : CB_ERR_HTTP),
               resp->status, (unsigned long long)*delay);
    return true;
}

/* A redirect the transport decided to follow becomes the next hop: the
 * target origin's breaker, no credentials across origins, no validators
 * (they belong to the first URL's entry). */
static cbh_step call_redirect(cbh_call *k, cbh_redirect *next)
{
    cbh_url target;
    cb_err  err;
    bool    same;

    memset(&target, 0, sizeof(target));
    /* A Location may carry a fragment (RFC 9110 10.2.2); it never goes
     * into a request. */
    if (strchr(next->url, '#'))
        *strchr(next->url, '#') = '\0';
    err = cbh_url_resolve(NULL, next->url, &target, k->resp->error, sizeof(k->resp->error));
    if (err != CB_OK) {
        cbh_free(next->url);
        return call_end(k, err);
    }
    same = target.origin_len == strlen(k->o->key) &&
           memcmp(target.origin, k->o->key, target.origin_len) == 0;
    err = same ? CB_OK : call_origin(k, target.origin, target.origin_len);
    cbh_url_release(&target);
    cbh_free(k->hop_url);
    k->hop_url = next->url;
    if (err != CB_OK)
        return call_end(k, err);
    if (!same)
        call_drop_credentials(k);
    k->method = next->method;
    if (next->drop_body) {
        k->body = NULL;
        k->body_len = 0;
        k->ct_line[0] = '\0';
    }
    k->conditional = false;
    k->hops++;
    return call_consult_cache(k, true);
}

/* A 429 or 503 with Retry-After, when the client is told to, opens the
 * origin's breaker for that long: the server asked every caller to wait. */
static void call_server_backoff(cbh_call *k)
{
    const char *ra;
    uint64_t    ms;

    if (k->resp->status != 429 && k->resp->status != 503)
        return;
    ra = api_response_header(k->resp, "Retry-After");
    if (!ra || !cbh_retry_after_ms(ra, (int64_t)time(NULL), &ms))
        return;
    if (ms > k->retry.max_delay_ms)
        ms = k->retry.max_delay_ms;
    cb_breaker_trip_for(&k->o->breaker, ms ? (unsigned)ms : 1);
    CLIENT_LOG(k, API_LOG_INFO, "%s %s: Retry-After %s opens the circuit of %s for %llu ms",
               k->method, call_url(k), ra, k->o->key, (unsigned long long)(ms ? ms : 1));
}

cbh_step cbh_call_transfer_done(cbh_call *k, CURLcode rc)
{
    api_response *resp = k->resp;
    cbh_redirect  next = { 0 };
    cbh_payload   got;
    cb_err        terr, err;
    bool          failure, follow = false;
    uint64_t      delay;

    terr = cbh_xchg_end(k->c->transport, &k->xchg, rc, &got, resp->error, k->hops, &next, &follow);
    cbh_response_set_payload(resp, &got);
    failure = k->classify ? k->classify(terr, resp->status, k->classify_data)
                          : cbh_outcome_breaker_failure(terr, resp->status);
    cb_breaker_record_err(&k->o->breaker, &k->permit,
                          failure ? (terr != CB_OK ? terr : CB_ERR_HTTP) : CB_OK);
    k->has_permit = false;
    if (terr == CB_OK && k->c->cfg.retry_after_opens_breaker)
        call_server_backoff(k);
    if (follow)
        return call_redirect(k, &next);
    err = terr != CB_OK ? terr : resp->status >= 400 ? CB_ERR_HTTP : CB_OK;
    if (!retry_delay(k, terr, &delay))
        return call_end(k, err);
    k->wake = cbh_add_sat(cbh_client_now(k->c), delay);
    k->n++;
    return CBH_STEP_WAIT;
}

cbh_step cbh_call_wake(cbh_call *k) { return call_attempt(k); }

cbh_step cbh_call_local_failure(cbh_call *k, cb_err err, const char *msg)
{
    cbh_xchg_abort(k->c->transport, &k->xchg);
    if (k->has_permit)
        cb_breaker_release(&k->o->breaker, &k->permit);
    k->has_permit = false;
    cbh_response_clear_payload(k->resp);
    snprintf(k->resp->error, sizeof(k->resp->error), "%s", msg);
    k->result = err;
    return CBH_STEP_DONE;
}

void cbh_call_cancel(cbh_call *k)
{
    (void)cbh_call_local_failure(k, CB_ERR_CANCELLED, "cancelled");
}

/* A stale entry may stand in for a failure; resp's payload is kept if none
 * can. */
static bool call_serve_stale(cbh_call *k, cb_err cause)
{
    api_response *resp = k->resp;
    cbh_payload   stale = { 0 };

    /* The call's own method: a HEAD takes a stored HEAD response, else the
     * GET one without its body (cache_find). */
    if (!cbh_cache_serve_stale(k->c->cache, k->method, call_url(k), k->lines, &k->cache_opts, cause,
                               &stale))
        return false;
    cbh_response_set_payload(resp, &stale);
    resp->from_cache = true;
    resp->stale = true;
    resp->cause = cause;
    CALL_COUNT(k->o, cache_stale_served);
    CLIENT_LOG(k, API_LOG_INFO, "%s %s: serving a stale cached response (%s)", k->method,
               call_url(k), cb_strerror(cause));
    return true;
}

/* The cache after the attempts: store the response under the URL it
 * answers, or refresh the entry a 304 validates. Returns false when a 304
 * validated nothing (the entry went or changed meanwhile): the caller must
 * never see that 304, so the call asks once more, plainly. */
static bool call_store(cbh_call *k, cb_err *err)
{
    api_response *resp = k->resp;
    bool          not_modified = resp->status == 304 && k->conditional;
    bool          refreshed;
    cbh_payload   p;
    cb_err        serr;

    cbh_response_take_payload(resp, &p);
    serr = cbh_cache_store(k->c->cache, k->method, call_url(k), k->lines,
                           k->conditional ? k->cond : NULL, &p, k->sent, cbh_client_now(k->c),
                           &refreshed);
    cbh_response_set_payload(resp, &p);
    if (refreshed) {
        resp->from_cache = true;
        resp->revalidated = true;
        resp->stale = false;
    }
    if (serr != CB_OK) {
        *err = CB_ERR_NOMEM;
        return true;
    }
    if (not_modified && resp->status == 304)
        return false;
    if (not_modified)
        CALL_COUNT(k->o, cache_not_modified);
    *err = resp->status >= 400 ? CB_ERR_HTTP : CB_OK;
    return true;
}

/* The last step: the cache, then the result. */
static cbh_step call_end(cbh_call *k, cb_err err)
{
    api_response *resp = k->resp;

    if (k->use_cache) {
        if (resp->status && !resp->from_cache && (err == CB_OK || err == CB_ERR_HTTP) &&
            !call_store(k, &err)) {
            k->conditional = false;
            k->n = 0;
            return call_attempt(k);
        }
        if (cbh_outcome_outage(err, resp->status) && call_serve_stale(k, err))
            err = resp->status >= 400 ? CB_ERR_HTTP : CB_OK;
    } else if (k->c->cache && err == CB_OK && cbh_method_invalidates(k->method)) {
        /* RFC 9111 4.4: a successful unsafe request invalidates the URL,
         * and those its Location and Content-Location name (same origin). */
        cbh_cache_invalidate(k->c->cache, k->url.url);
        cbh_cache_invalidate_related(k->c->cache, call_url(k), resp->headers, resp->header_count);
    }
    k->result = err;
    return CBH_STEP_DONE;
}

cb_err cbh_call_finish(cbh_call *k)
{
    api_response *resp = k->resp;

    cbh_origins_release(k->o);
    k->o = NULL;
    if (k->lines != k->stack_lines)
        cbh_free(k->lines);
    if (k->nodes != k->stack_nodes)
        cbh_free(k->nodes);
    k->lines = NULL;
    k->nodes = NULL;
    cbh_free(k->hop_url);
    cbh_free(k->owned);
    cbh_free(k->cond);
    k->hop_url = k->owned = NULL;
    k->cond = NULL;
    cbh_url_release(&k->url);
    cbh_response_complete(resp);
    resp->elapsed_ms = cbh_client_now(k->c) - k->start;
    return k->result;
}

CB_EXPORT cb_err api_request(api_client *c, const char *method, const char *path, const char *body,
                             size_t body_len, const api_options *opts, api_response *resp)
{
    cbh_call k;
    cb_err   err;

    if (!resp)
        return CB_ERR_INVALID;
    /* Everything before the URL's buffers: resolve initialises those. */
    memset(&k, 0, offsetof(cbh_call, url));
    k.url.heap_ = NULL;
    err = cbh_call_init(&k, c, method, path, body, body_len, opts, resp, false, NULL);
    if (err != CB_OK)
        return err;
    cbh_engine_perform(&k);
    return cbh_call_finish(&k);
}

CB_EXPORT cb_err api_get(api_client *c, const char *path, const api_options *opts,
                         api_response *resp)
{
    return api_request(c, "GET", path, NULL, 0, opts, resp);
}
