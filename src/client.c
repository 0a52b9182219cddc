/*
 * The client object: creation from a config, the per-origin breaker
 * controls, and the glue that turns breaker events into the caller's events
 * and log lines. The flow of one call lives in request.c.
 */
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "client_priv.h"
#include "clock.h"
#include "headers.h"
#include "log.h"

#define DEFAULT_TIMEOUT_MS 30000u
#define DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define DEFAULT_MAX_BODY (8u * 1024 * 1024)
#define DEFAULT_MAX_HEADER (64u * 1024)

/* The coarse clock: deadlines and backoff are in milliseconds, and a precise
 * CLOCK_MONOTONIC read costs ~50 ns on this kind of VM, a rejected call's
 * whole budget is 300 ns. */
uint64_t cbh_client_now(const api_client *c)
{
    return cbh_clock_now(c->cfg.clock, c->cfg.clock_data);
}

cb_err cbh_client_resolve(const api_client *c, const char *url_or_path, cbh_url *u, char *err,
                          size_t err_size)
{
    return cbh_url_resolve(c->has_base ? &c->base : NULL, url_or_path, u, err, err_size);
}

/* Breaker events of every origin: to the caller's listener, and to the log
 * (state changes at WARN: they are what an operator wants to see). */
static void client_on_event(cbh_origin *o, const cb_event *ev, void *ud)
{
    api_client *c = ud;

    if (ev->type == CB_EVENT_STATE_CHANGE)
        cbh_log(c->cfg.logger, c->cfg.log_data, c->cfg.log_level, API_LOG_WARN,
                "breaker %s: %s -> %s", o->key, cb_state_name(ev->from), cb_state_name(ev->to));
    if (c->cfg.on_event)
        c->cfg.on_event(o->key, ev, c->cfg.event_data);
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* "User-Agent: ua", or NULL when out of memory. */
static char *user_agent_line(const char *ua)
{
    static const char name[] = "User-Agent: ";
    size_t            n = strlen(ua);
    char             *line;

    if (!(line = cbh_malloc(sizeof(name) + n)))
        return NULL;
    memcpy(line, name, sizeof(name) - 1);
    memcpy(line + sizeof(name) - 1, ua, n + 1);
    return line;
}

/* Copies the caller's NULL-terminated header lines (each was checked by
 * client_config_check), with the User-Agent line first unless they carry
 * their own. Sent as a header line, the agent costs libcurl no formatting
 * per request: CURLOPT_USERAGENT cost 5.4k instructions on every call
 * (callgrind, 32 async calls in flight on nginx). */
static cb_err copy_default_headers(api_client *c, const char *const *lines, const char *ua)
{
    size_t n = 0, i, j = 0;
    bool   own_ua = false;

    for (; lines && lines[n]; n++)
        own_ua = own_ua || cbh_header_line_is(lines[n], "User-Agent");
    /* n + 2 pointers fit in a size_t: the caller's array holds n + 1 and
     * its lines at least as many bytes, so even an allocator hook whose
     * calloc does not check n * size gets it right. An empty ua sends no
     * agent. */
    c->default_headers = cbh_calloc(n + 2, sizeof(char *));
    if (!c->default_headers)
        return CB_ERR_NOMEM;
    if (!own_ua && ua[0] && !(c->default_headers[j++] = user_agent_line(ua)))
        return CB_ERR_NOMEM;
    for (i = 0; i < n; i++)
        if (!(c->default_headers[j++] = cbh_strdup(lines[i])))
            return CB_ERR_NOMEM;
    return CB_OK;
}

/* The parts of a config that can be wrong, each with the field it names;
 * what is left to fail afterwards is memory. */
static cb_err client_config_check(const api_client_config *cfg, char *err, size_t err_size)
{
    char     detail[160];
    cbh_base base;

    if (cfg->base_url) {
        if (cbh_base_parse(cfg->base_url, &base, detail, sizeof(detail)) != CB_OK) {
            snprintf(err, err_size, "base_url: %s", detail);
            return CB_ERR_INVALID;
        }
        cbh_base_free(&base);
    }
    if (cb_config_check(&cfg->circuit_breaker, detail, sizeof(detail)) != CB_OK) {
        snprintf(err, err_size, "circuit_breaker: %s", detail);
        return CB_ERR_INVALID;
    }
    if (cfg->user_agent && has_ctl(cfg->user_agent)) {
        snprintf(err, err_size, "user_agent: control characters");
        return CB_ERR_INVALID;
    }
    for (size_t i = 0; cfg->default_headers && cfg->default_headers[i]; i++)
        if (!cbh_header_line_valid(cfg->default_headers[i])) {
            snprintf(err, err_size,
                     "default_headers[%zu]: not a \"Name: value\" line "
                     "without control characters",
                     i);
            return CB_ERR_INVALID;
        }
    return CB_OK;
}

CB_EXPORT api_client *api_client_new(const api_client_config *cfg)
{
    api_client *c = NULL;

    api_client_create(cfg, &c, NULL, 0);
    return c;
}

CB_EXPORT cb_err api_client_create(const api_client_config *cfg, api_client **out, char *err,
                                   size_t err_size)
{
    static const api_client_config none;
    api_client                    *c;
    cbh_origins_config             oc;
    cbh_transport_config           tc;
    char                           ua[64], scratch[1];
    cb_err                         rc;

    if (!err || !err_size) {
        err = scratch;
        err_size = sizeof(scratch);
    }
    err[0] = '\0';
    if (!out) {
        snprintf(err, err_size, "out: NULL");
        return CB_ERR_INVALID;
    }
    *out = NULL;
    if (!cfg)
        cfg = &none;
    if ((rc = client_config_check(cfg, err, err_size)) != CB_OK)
        return rc;
    c = cbh_calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, err_size, "out of memory");
        return CB_ERR_NOMEM;
    }
    c->cfg = *cfg;
    c->cfg.base_url = NULL;
    c->cfg.user_agent = NULL;
    c->cfg.default_headers = NULL;
    c->cfg.ca_file = NULL;
    if (!c->cfg.timeout_ms)
        c->cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!c->cfg.connect_timeout_ms)
        c->cfg.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (!c->cfg.max_body_bytes)
        c->cfg.max_body_bytes = DEFAULT_MAX_BODY;
    if (!c->cfg.max_header_bytes)
        c->cfg.max_header_bytes = DEFAULT_MAX_HEADER;
    cbh_retry_config_norm(&cfg->retry, &c->retry);

    if (cfg->base_url) {
        if (cbh_base_parse(cfg->base_url, &c->base, NULL, 0) != CB_OK)
            goto fail;
        c->has_base = true;
    }
    snprintf(ua, sizeof(ua), "cbhttp/%s", cbhttp_version());
    if (!(c->user_agent = cbh_strdup(cfg->user_agent ? cfg->user_agent : ua)))
        goto fail;
    if (copy_default_headers(c, cfg->default_headers, c->user_agent) != CB_OK)
        goto fail;

    memset(&oc, 0, sizeof(oc));
    oc.defaults = cfg->circuit_breaker;
    oc.idle_ms = cfg->origin_idle_ms;
    oc.max_origins = cfg->max_origins;
    oc.clock = cfg->clock;
    oc.clock_data = cfg->clock_data;
    /* A breaker with a listener takes its lock on every success: only
     * install one when someone listens. */
    if (cfg->on_event || cfg->logger) {
        oc.on_event = client_on_event;
        oc.event_data = c;
    }
    if (!(c->origins = cbh_origins_new(&oc)))
        goto fail;

    if (!cfg->cache.disabled &&
        !(c->cache = cbh_cache_new(&cfg->cache, cfg->clock, cfg->clock_data, NULL, NULL)))
        goto fail;

    memset(&tc, 0, sizeof(tc));
    tc.ca_file = cfg->ca_file;
    tc.max_body_bytes = c->cfg.max_body_bytes;
    tc.max_header_bytes = c->cfg.max_header_bytes;
    tc.max_redirects = cfg->max_redirects;
    tc.cross_origin_redirects = cfg->allow_cross_origin_redirects;
    if (!(c->transport = cbh_transport_new(&tc)))
        goto fail;
    c->cfg.user_agent = c->user_agent;
    c->cfg.default_headers = (const char *const *)c->default_headers;
    *out = c;
    return CB_OK;
fail:
    /* Every field was checked above: only memory can have run out. */
    api_client_free(c);
    snprintf(err, err_size, "out of memory");
    return CB_ERR_NOMEM;
}

CB_EXPORT void api_client_free(api_client *c)
{
    size_t i;

    if (!c)
        return;
    cbh_transport_free(c->transport);
    cbh_cache_free(c->cache);
    cbh_origins_free(c->origins);
    cbh_base_free(&c->base);
    if (c->default_headers)
        for (i = 0; c->default_headers[i]; i++)
            cbh_free(c->default_headers[i]);
    cbh_free(c->default_headers);
    cbh_free(c->user_agent);
    cbh_free(c);
}

static bool is_absolute(const char *s)
{
    return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

/* Finds (or creates) the origin of url_or_path; the caller releases it. */
static cbh_origin *client_origin(api_client *c, const char *url_or_path, const cb_config *cfg,
                                 bool create, cb_err *err)
{
    cbh_url     u;
    cbh_origin *o;

    *err = CB_ERR_INVALID;
    if (!c || !url_or_path)
        return NULL;
    /* The controls name an origin, so they also take an absolute URL when
     * the client has a base URL; request paths stay strictly relative. */
    if (cbh_url_resolve(is_absolute(url_or_path) ? NULL
                        : c->has_base            ? &c->base
                                                 : NULL,
                        url_or_path, &u, NULL, 0) != CB_OK)
        return NULL;
    o = cbh_origins_get(c->origins, u.origin, u.origin_len, cfg, create, err);
    cbh_url_release(&u);
    return o;
}

CB_EXPORT cb_err api_client_set_origin_breaker(api_client *c, const char *url_or_path,
                                               const cb_config *cfg)
{
    cb_err      err;
    cbh_origin *o;

    if (!cfg)
        return CB_ERR_INVALID;
    if (!(o = client_origin(c, url_or_path, cfg, true, &err)))
        return err;
    cbh_origins_pin(o);
    cbh_origins_release(o);
    return CB_OK;
}

CB_EXPORT cb_state api_client_breaker_state(api_client *c, const char *url_or_path)
{
    cb_err      err;
    cb_state    s;
    cbh_origin *o = client_origin(c, url_or_path, NULL, false, &err);

    if (!o)
        return CB_CLOSED;
    s = cb_breaker_state(&o->breaker);
    cbh_origins_release(o);
    return s;
}

CB_EXPORT cb_err api_client_breaker_metrics(api_client *c, const char *url_or_path, cb_metrics *out)
{
    cb_err      err;
    cbh_origin *o;

    if (!out)
        return CB_ERR_INVALID;
    if (!(o = client_origin(c, url_or_path, NULL, false, &err)))
        return CB_ERR_INVALID;
    cb_breaker_metrics(&o->breaker, out);
    cbh_origins_release(o);
    return CB_OK;
}

/* Applies a manual control to the breaker of that origin (created if
 * needed). */
static cb_err client_control(api_client *c, const char *url_or_path, void (*control)(cb_breaker *b))
{
    cb_err      err;
    cbh_origin *o = client_origin(c, url_or_path, NULL, true, &err);

    if (!o)
        return err;
    control(&o->breaker);
    cbh_origins_release(o);
    return CB_OK;
}

CB_EXPORT cb_err api_client_trip(api_client *c, const char *url_or_path)
{
    return client_control(c, url_or_path, cb_breaker_trip);
}

CB_EXPORT cb_err api_client_reset(api_client *c, const char *url_or_path)
{
    return client_control(c, url_or_path, cb_breaker_reset);
}

CB_EXPORT void api_client_cache_clear(api_client *c)
{
    if (c && c->cache)
        cbh_cache_clear(c->cache);
}
