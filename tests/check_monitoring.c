/* Monitoring: the logger (levels, filtering, silence without one), the
 * client's event listener, the metrics snapshot after a scripted mix of
 * outcomes, its JSON and Prometheus exports, and a client built from a JSON
 * config with a per-origin override, all against the fixture server. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "cbhttp.h"
#include "fixture.h"
#include "helpers/failalloc.h"
#include "helpers/testutil.h"

/* ---- Capturing logger and listener ------------------------------------------ */

#define CAP_MAX 256

typedef struct logcap {
    unsigned      n;
    api_log_level level[CAP_MAX];
    char          msg[CAP_MAX][512];
} logcap;

static void cap_log(api_log_level level, const char *msg, void *ud)
{
    logcap *l = ud;

    if (l->n < CAP_MAX) {
        l->level[l->n] = level;
        snprintf(l->msg[l->n], sizeof(l->msg[0]), "%s", msg);
        l->n++;
    }
}

/* Lines at exactly level containing every non-NULL needle. */
static unsigned log_count(const logcap *l, api_log_level level, const char *a, const char *b,
                          const char *c)
{
    unsigned i, n = 0;

    for (i = 0; i < l->n; i++)
        if (l->level[i] == level && (!a || strstr(l->msg[i], a)) && (!b || strstr(l->msg[i], b)) &&
            (!c || strstr(l->msg[i], c)))
            n++;
    return n;
}

typedef struct evcap {
    unsigned n;
    cb_event ev[CAP_MAX];
    char     origin[CAP_MAX][64];
} evcap;

static void cap_event(const char *origin, const cb_event *ev, void *ud)
{
    evcap *e = ud;

    if (e->n < CAP_MAX) {
        e->ev[e->n] = *ev;
        snprintf(e->origin[e->n], sizeof(e->origin[0]), "%s", origin);
        e->n++;
    }
}

static unsigned ev_count(const evcap *e, cb_event_type type)
{
    unsigned i, n = 0;

    for (i = 0; i < e->n; i++)
        n += e->ev[i].type == type;
    return n;
}

/* ---- Environment ----------------------------------------------------------------- */

typedef struct env {
    fixture    *f;
    tu_clock    tc;
    api_client *c;
    logcap      log;
    evcap       ev;
} env;

typedef struct env_opts {
    unsigned      threshold; /* 0 = 2 */
    unsigned      attempts;  /* 0 = 1 */
    bool          logger;
    api_log_level log_level;
    bool          listener;
} env_opts;

static env *env_start(const env_opts *o)
{
    env              *e = calloc(1, sizeof(*e));
    api_client_config cfg;

    ck_assert_ptr_nonnull(e);
    e->f = fixture_start();
    ck_assert_ptr_nonnull(e->f);
    memset(&cfg, 0, sizeof(cfg));
    cfg.base_url = fixture_url(e->f);
    cfg.timeout_ms = 10000;
    cfg.circuit_breaker.failure_threshold = o->threshold ? o->threshold : 2;
    cfg.circuit_breaker.reset_timeout_ms = 5000;
    cfg.retry.max_attempts = o->attempts ? o->attempts : 1;
    cfg.retry.base_delay_ms = 10;
    if (o->logger) {
        cfg.logger = cap_log;
        cfg.log_data = &e->log;
        cfg.log_level = o->log_level;
    }
    if (o->listener) {
        cfg.on_event = cap_event;
        cfg.event_data = &e->ev;
    }
    tu_clock_install(&e->tc, &cfg);
    e->c = api_client_new(&cfg);
    ck_assert_ptr_nonnull(e->c);
    return e;
}

static void env_stop(env *e)
{
    api_client_free(e->c);
    fixture_stop(e->f);
    free(e);
}

static cb_err call(env *e, const char *path)
{
    api_response r;
    cb_err       err = api_get(e->c, path, NULL, &r);

    api_response_free(&r);
    return err;
}

/* Two failures (the default threshold here) open the breaker; then one
 * rejection; then recovery after the reset timeout. */
static void outage_script(env *e)
{
    ck_assert_int_eq(call(e, "/ok"), CB_OK);
    fixture_set_outage(e->f, FIXTURE_DOWN_503);
    ck_assert_int_eq(call(e, "/ok"), CB_ERR_HTTP);
    ck_assert_int_eq(call(e, "/ok"), CB_ERR_HTTP);
    ck_assert_int_eq(api_client_breaker_state(e->c, "/"), CB_OPEN);
    ck_assert_int_eq(call(e, "/ok"), CB_ERR_CIRCUIT_OPEN);
    fixture_set_outage(e->f, FIXTURE_UP);
    e->tc.now_ms += 6000;
    ck_assert_int_eq(call(e, "/ok"), CB_OK);
    ck_assert_int_eq(api_client_breaker_state(e->c, "/"), CB_CLOSED);
}

/* ---- Logger ------------------------------------------------------------------------ */

START_TEST(test_log_state_changes_at_warn)
{
    env_opts o = { .logger = true };
    env     *e = env_start(&o);
    unsigned i;

    outage_script(e);
    /* Every transition, at WARN, naming the origin and both states. */
    ck_assert_uint_eq(log_count(&e->log, API_LOG_WARN, fixture_url(e->f), "CLOSED -> OPEN", NULL),
                      1);
    ck_assert_uint_eq(
        log_count(&e->log, API_LOG_WARN, fixture_url(e->f), "OPEN -> HALF_OPEN", NULL), 1);
    ck_assert_uint_eq(
        log_count(&e->log, API_LOG_WARN, fixture_url(e->f), "HALF_OPEN -> CLOSED", NULL), 1);
    ck_assert_uint_eq(log_count(&e->log, API_LOG_WARN, NULL, NULL, NULL), 3);
    /* The rejection, at DEBUG, with the URL. */
    ck_assert_uint_eq(log_count(&e->log, API_LOG_DEBUG, "rejected", fixture_url(e->f), "/ok"), 1);
    for (i = 0; i < e->log.n; i++) {
        ck_assert_ptr_null(strchr(e->log.msg[i], '\n'));
        ck_assert_uint_gt(strlen(e->log.msg[i]), 0);
    }
    env_stop(e);
}
END_TEST

START_TEST(test_log_retries_at_debug)
{
    env_opts o = { .logger = true, .threshold = 10, .attempts = 3 };
    env     *e = env_start(&o);

    fixture_set_outage(e->f, FIXTURE_DOWN_503);
    ck_assert_int_eq(call(e, "/ok"), CB_ERR_HTTP);
    ck_assert_uint_eq(e->tc.n_sleeps, 2);
    ck_assert_uint_eq(log_count(&e->log, API_LOG_DEBUG, "retrying", "/ok", NULL), 2);
    ck_assert_uint_eq(log_count(&e->log, API_LOG_WARN, NULL, NULL, NULL), 0);
    ck_assert_uint_eq(log_count(&e->log, API_LOG_ERROR, NULL, NULL, NULL), 0);
    env_stop(e);
}
END_TEST

START_TEST(test_log_level_filters)
{
    static const api_log_level levels[] = { API_LOG_INFO, API_LOG_WARN, API_LOG_ERROR };
    size_t                     k;

    for (k = 0; k < 3; k++) {
        env_opts o = { .logger = true, .threshold = 4, .attempts = 2, .log_level = levels[k] };
        env     *e = env_start(&o);
        unsigned i;

        outage_script(e); /* retries, state changes and a rejection */
        for (i = 0; i < e->log.n; i++)
            ck_assert_int_ge(e->log.level[i], levels[k]);
        ck_assert_uint_eq(log_count(&e->log, API_LOG_DEBUG, NULL, NULL, NULL), 0);
        if (levels[k] <= API_LOG_WARN)
            ck_assert_uint_eq(log_count(&e->log, API_LOG_WARN, NULL, NULL, NULL), 3);
        else
            ck_assert_uint_eq(log_count(&e->log, API_LOG_WARN, NULL, NULL, NULL), 0);
        env_stop(e);
    }
}
END_TEST

static size_t file_size(int fd)
{
    struct stat st;

    ck_assert_int_eq(fstat(fd, &st), 0);
    return (size_t)st.st_size;
}

START_TEST(test_no_logger_prints_nothing)
{
    char     out_name[] = "/tmp/cbh-mon-outXXXXXX", err_name[] = "/tmp/cbh-mon-errXXXXXX";
    int      out = mkstemp(out_name), err = mkstemp(err_name);
    int      saved_out = dup(1), saved_err = dup(2);
    env_opts o = { .threshold = 4, .attempts = 2 };
    env     *e;
    size_t   n_out, n_err;

    ck_assert_int_ge(out, 0);
    ck_assert_int_ge(err, 0);
    unlink(out_name);
    unlink(err_name);
    e = env_start(&o);
    fflush(stdout);
    fflush(stderr);
    dup2(out, 1);
    dup2(err, 2);
    outage_script(e);
    ck_assert_int_eq(call(e, "/cache/x?cc=max-age=1&cc=stale-if-error=60"), CB_OK);
    ck_assert_int_eq(call(e, "/no-such-endpoint"), CB_ERR_HTTP);
    e->tc.now_ms += 5000;
    fixture_set_outage(e->f, FIXTURE_DOWN_503);
    ck_assert_int_eq(call(e, "/cache/x?cc=max-age=1&cc=stale-if-error=60"), CB_OK);
    fixture_set_outage(e->f, FIXTURE_UP);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    n_out = file_size(out);
    n_err = file_size(err);
    ck_assert_uint_eq(n_out, 0);
    ck_assert_uint_eq(n_err, 0);
    close(out);
    close(err);
    close(saved_out);
    close(saved_err);
    env_stop(e);
}
END_TEST

/* ---- Event listener ------------------------------------------------------------------ */

START_TEST(test_on_event_listener)
{
    env_opts        o = { .listener = true };
    env            *e = env_start(&o);
    const cb_event *sc = NULL;
    unsigned        i, changes = 0, before;

    ck_assert_int_eq(call(e, "/cache/ev?cc=max-age=60"), CB_OK);
    before = e->ev.n;
    /* A fresh hit takes no permit: no event at all. */
    ck_assert_int_eq(call(e, "/cache/ev?cc=max-age=60"), CB_OK);
    ck_assert_uint_eq(e->ev.n, before);

    fixture_set_outage(e->f, FIXTURE_DOWN_503);
    ck_assert_int_eq(call(e, "/ok"), CB_ERR_HTTP);
    ck_assert_int_eq(call(e, "/ok"), CB_ERR_HTTP);
    ck_assert_int_eq(call(e, "/ok"), CB_ERR_CIRCUIT_OPEN);

    for (i = 0; i < e->ev.n; i++) {
        const cb_event *ev = &e->ev.ev[i];

        ck_assert_str_eq(e->ev.origin[i], fixture_url(e->f));
        if (ev->type == CB_EVENT_STATE_CHANGE) {
            sc = ev;
            changes++;
        }
        if (ev->type == CB_EVENT_FAILURE)
            ck_assert_int_eq(ev->error, CB_ERR_HTTP);
        if (ev->type == CB_EVENT_REJECTED)
            ck_assert_int_eq(ev->state, CB_OPEN);
    }
    ck_assert_uint_eq(changes, 1);
    ck_assert_ptr_nonnull(sc);
    ck_assert_int_eq(sc->from, CB_CLOSED);
    ck_assert_int_eq(sc->to, CB_OPEN);
    ck_assert_uint_eq(sc->at_ms, e->tc.now_ms); /* the injected clock */
    ck_assert_uint_eq(ev_count(&e->ev, CB_EVENT_REJECTED), 1);
    ck_assert_uint_eq(ev_count(&e->ev, CB_EVENT_FAILURE), 2);
    ck_assert_uint_eq(ev_count(&e->ev, CB_EVENT_SUCCESS), 1);
    /* The rejection comes after the change that caused it. */
    ck_assert_int_eq(e->ev.ev[e->ev.n - 1].type, CB_EVENT_REJECTED);

    /* Recovery: OPEN -> HALF_OPEN -> CLOSED, in order. */
    fixture_set_outage(e->f, FIXTURE_UP);
    e->tc.now_ms += 6000;
    before = e->ev.n;
    ck_assert_int_eq(call(e, "/ok"), CB_OK);
    changes = 0;
    for (i = before; i < e->ev.n; i++) {
        const cb_event *ev = &e->ev.ev[i];

        if (ev->type != CB_EVENT_STATE_CHANGE)
            continue;
        ck_assert_int_eq(ev->from, changes == 0 ? CB_OPEN : CB_HALF_OPEN);
        ck_assert_int_eq(ev->to, changes == 0 ? CB_HALF_OPEN : CB_CLOSED);
        changes++;
    }
    ck_assert_uint_eq(changes, 2);
    env_stop(e);
}
END_TEST

/* ---- Metrics ----------------------------------------------------------------------- */

/* A scripted mix; the expected counters are worked out step by step. */
static void metrics_script(env *e)
{
    api_response r;

    /* 1. a success */
    ck_assert_int_eq(call(e, "/ok"), CB_OK);
    /* 2-3. stored with a validator, then revalidated with a 304 */
    ck_assert_int_eq(call(e, "/cache/v?cc=max-age=5&etag=x"), CB_OK);
    e->tc.now_ms += 10000;
    ck_assert_int_eq(api_get(e->c, "/cache/v?cc=max-age=5&etag=x", NULL, &r), CB_OK);
    ck_assert(r.revalidated);
    api_response_free(&r);
    /* 4-5. stored, then a fresh hit */
    ck_assert_int_eq(call(e, "/cache/m?cc=max-age=10&cc=stale-if-error=600"), CB_OK);
    ck_assert_int_eq(api_get(e->c, "/cache/m?cc=max-age=10&cc=stale-if-error=600", NULL, &r),
                     CB_OK);
    ck_assert(r.from_cache && !r.stale);
    api_response_free(&r);
    /* 6. two failed attempts (one retry) */
    fixture_set_outage(e->f, FIXTURE_DOWN_503);
    ck_assert_int_eq(call(e, "/ok"), CB_ERR_HTTP);
    /* 7. the third failure opens it; no retry into an open breaker; the
     *    stale entry stands in */
    e->tc.now_ms += 20000;
    ck_assert_int_eq(api_get(e->c, "/cache/m?cc=max-age=10&cc=stale-if-error=600", NULL, &r),
                     CB_OK);
    ck_assert(r.stale);
    ck_assert_int_eq(r.cause, CB_ERR_HTTP);
    ck_assert_uint_eq(r.attempts, 1);
    api_response_free(&r);
    ck_assert_int_eq(api_client_breaker_state(e->c, "/"), CB_OPEN);
    /* 8. a rejection */
    ck_assert_int_eq(call(e, "/ok"), CB_ERR_CIRCUIT_OPEN);
    /* 9. a rejection covered by the stale entry */
    ck_assert_int_eq(api_get(e->c, "/cache/m?cc=max-age=10&cc=stale-if-error=600", NULL, &r),
                     CB_OK);
    ck_assert(r.stale);
    ck_assert_int_eq(r.cause, CB_ERR_CIRCUIT_OPEN);
    ck_assert_uint_eq(r.attempts, 0);
    api_response_free(&r);
}

static env *metrics_env(void)
{
    env_opts o = { .threshold = 3, .attempts = 2 };
    env     *e = env_start(&o);

    metrics_script(e);
    return e;
}

START_TEST(test_metrics_struct_exact)
{
    env                      *e = metrics_env();
    api_client_metrics        m;
    const api_origin_metrics *om;

    ck_assert_int_eq(api_client_metrics_get(e->c, &m), CB_OK);
    ck_assert_uint_eq(m.origin_count, 1);
    om = &m.origins[0];
    ck_assert_str_eq(om->origin, fixture_url(e->f));
    ck_assert_int_eq(om->breaker.state, CB_OPEN);
    ck_assert_uint_eq(om->breaker.total_requests, 9);
    ck_assert_uint_eq(om->breaker.successes, 4);
    ck_assert_uint_eq(om->breaker.failures, 3);
    ck_assert_uint_eq(om->breaker.rejected, 2);
    ck_assert_uint_eq(om->breaker.times_opened, 1);
    ck_assert_uint_eq(om->breaker.consecutive_successes, 0);
    ck_assert_uint_gt(om->breaker.last_failure_ms, om->breaker.last_success_ms);
    ck_assert_uint_eq(om->attempts, 7);
    ck_assert_uint_eq(om->retries, 1);
    ck_assert_uint_eq(om->retries_denied, 0);
    ck_assert_uint_eq(om->cache_hits, 1);
    ck_assert_uint_eq(om->cache_misses, 8);
    ck_assert_uint_eq(om->cache_revalidations, 1);
    ck_assert_uint_eq(om->cache_not_modified, 1);
    ck_assert_uint_eq(om->cache_stale_served, 2);
    ck_assert_uint_eq(m.cache.entries, 2);
    ck_assert_uint_eq(m.cache.stores, 2);
    ck_assert_uint_eq(m.cache.evictions, 0);
    ck_assert_uint_eq(m.cache.invalidations, 0);
    ck_assert_uint_gt(m.cache.bytes, 0);
    ck_assert_uint_eq(m.cache.max_entries, 10000);
    ck_assert_uint_eq(m.cache.max_bytes, (uint64_t)32 << 20);
    /* The network saw exactly the attempts. */
    ck_assert_uint_eq(fixture_requests(e->f), om->attempts);
    api_client_metrics_free(&m);
    ck_assert_uint_eq(m.origin_count, 0);
    ck_assert_ptr_null(m.origins);
    api_client_metrics_free(NULL);
    /* Nowhere to write is refused; no client leaves *out zeroed. */
    ck_assert_int_eq(api_client_metrics_get(e->c, NULL), CB_ERR_INVALID);
    memset(&m, 0xA5, sizeof(m));
    ck_assert_int_eq(api_client_metrics_get(NULL, &m), CB_ERR_INVALID);
    ck_assert_uint_eq(m.origin_count, 0);
    ck_assert_ptr_null(m.origins);
    env_stop(e);
}
END_TEST

static const api_origin_metrics *origin_named(const api_client_metrics *m, const char *name)
{
    size_t i;

    for (i = 0; i < m->origin_count; i++)
        if (strcmp(m->origins[i].origin, name) == 0)
            return &m->origins[i];
    ck_abort_msg("no origin %s", name);
    return NULL;
}

/* An origin idle for longer than its window and budget gives its inflated
 * parts back (the blocks go) and reports every figure as before. */
START_TEST(test_metrics_survive_deflation)
{
    env                      *e;
    api_client_metrics        before, after;
    const api_origin_metrics *a, *b;
    long                      live;

    tu_alloc_install();
    e = env_start(&(env_opts){ .threshold = 3, .attempts = 2 });
    ck_assert_int_eq(call(e, "/ok"), CB_OK);
    ck_assert_int_eq(call(e, "/ok"), CB_OK);
    fixture_set_outage(e->f, FIXTURE_DOWN_503);
    ck_assert_int_eq(call(e, "/ok"), CB_ERR_HTTP);
    fixture_set_outage(e->f, FIXTURE_UP);
    ck_assert_int_eq(call(e, "/ok"), CB_OK);
    e->tc.now_ms += 70000;
    ck_assert_int_eq(api_client_metrics_get(e->c, &before), CB_OK);
    live = tu_alloc_live();
    /* Another origin's lookup runs the sweep that deflates the first. */
    ck_assert_int_eq(api_client_trip(e->c, "http://other.test:80/"), CB_OK);
    ck_assert_int_lt(tu_alloc_live(), live);
    ck_assert_int_eq(api_client_metrics_get(e->c, &after), CB_OK);
    a = origin_named(&before, fixture_url(e->f));
    b = origin_named(&after, fixture_url(e->f));
    ck_assert_uint_eq(a->breaker.failures, 2);
    ck_assert_uint_eq(a->breaker.successes, 3);
    ck_assert_uint_eq(a->retries, 1);
    ck_assert_int_eq(memcmp(&a->breaker, &b->breaker, sizeof(a->breaker)), 0);
#define SAME_(field, json, prom, help) ck_assert_uint_eq(a->field, b->field);
    API_RETRY_COUNTERS(SAME_)
    API_CACHE_COUNTERS(SAME_)
#undef SAME_
    ck_assert_uint_eq(a->budget_available, b->budget_available);
    api_client_metrics_free(&before);
    api_client_metrics_free(&after);
    /* And it counts on from there. */
    ck_assert_int_eq(call(e, "/ok"), CB_OK);
    ck_assert_int_eq(api_client_metrics_get(e->c, &after), CB_OK);
    b = origin_named(&after, fixture_url(e->f));
    ck_assert_uint_eq(b->breaker.successes, 4);
    ck_assert_uint_eq(b->attempts, 6);
    api_client_metrics_free(&after);
    env_stop(e);
    tu_alloc_uninstall();
}
END_TEST

static uint64_t jnum(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    ck_assert_msg(cJSON_IsNumber(v), "missing number %s", name);
    return (uint64_t)v->valuedouble;
}

START_TEST(test_metrics_json)
{
    env                      *e = metrics_env();
    api_client_metrics        m;
    const api_origin_metrics *om;
    char                     *text = NULL;
    cJSON                    *j, *origins, *o, *br, *rt, *ca, *gc;

    ck_assert_int_eq(api_client_metrics_json(e->c, &text), CB_OK);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(api_client_metrics_get(e->c, &m), CB_OK);
    om = &m.origins[0];
    j = cJSON_Parse(text);
    ck_assert_msg(j != NULL, "not JSON: %s", text);
    ck_assert(cJSON_IsObject(j));

    origins = cJSON_GetObjectItemCaseSensitive(j, "origins");
    ck_assert(cJSON_IsArray(origins));
    ck_assert_int_eq(cJSON_GetArraySize(origins), 1);
    o = cJSON_GetArrayItem(origins, 0);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "origin")->valuestring, fixture_url(e->f));
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "state")->valuestring, "OPEN");

    br = cJSON_GetObjectItemCaseSensitive(o, "breaker");
    ck_assert(cJSON_IsObject(br));
    ck_assert_uint_eq(jnum(br, "total_requests"), 9);
    ck_assert_uint_eq(jnum(br, "successes"), 4);
    ck_assert_uint_eq(jnum(br, "failures"), 3);
    ck_assert_uint_eq(jnum(br, "rejected"), 2);
    ck_assert_uint_eq(jnum(br, "times_opened"), 1);
    ck_assert_uint_eq(jnum(br, "window_failures"), om->breaker.window_failures);
    ck_assert_uint_eq(jnum(br, "consecutive_successes"), 0);
    ck_assert_uint_eq(jnum(br, "last_failure_ms"), om->breaker.last_failure_ms);
    ck_assert_uint_eq(jnum(br, "last_success_ms"), om->breaker.last_success_ms);

    rt = cJSON_GetObjectItemCaseSensitive(o, "retry");
    ck_assert(cJSON_IsObject(rt));
    ck_assert_uint_eq(jnum(rt, "attempts"), 7);
    ck_assert_uint_eq(jnum(rt, "retries"), 1);
    ck_assert_uint_eq(jnum(rt, "retries_denied"), 0);
    ck_assert_uint_eq(jnum(rt, "budget_available"), om->budget_available);

    ca = cJSON_GetObjectItemCaseSensitive(o, "cache");
    ck_assert(cJSON_IsObject(ca));
    ck_assert_uint_eq(jnum(ca, "hits"), 1);
    ck_assert_uint_eq(jnum(ca, "misses"), 8);
    ck_assert_uint_eq(jnum(ca, "revalidations"), 1);
    ck_assert_uint_eq(jnum(ca, "not_modified"), 1);
    ck_assert_uint_eq(jnum(ca, "stale_served"), 2);

    gc = cJSON_GetObjectItemCaseSensitive(j, "cache");
    ck_assert(cJSON_IsObject(gc));
    ck_assert_uint_eq(jnum(gc, "entries"), 2);
    ck_assert_uint_eq(jnum(gc, "bytes"), m.cache.bytes);
    ck_assert_uint_eq(jnum(gc, "stores"), 2);
    ck_assert_uint_eq(jnum(gc, "evictions"), 0);
    ck_assert_uint_eq(jnum(gc, "invalidations"), 0);
    ck_assert_uint_eq(jnum(gc, "max_bytes"), (uint64_t)32 << 20);
    ck_assert_uint_eq(jnum(gc, "max_entries"), 10000);

    cJSON_Delete(j);
    cb_free(text);
    api_client_metrics_free(&m);
    ck_assert_int_eq(api_client_metrics_json(NULL, &text), CB_ERR_INVALID);
    ck_assert_int_eq(api_client_metrics_json(e->c, NULL), CB_ERR_INVALID);
    env_stop(e);
}
END_TEST

/* One sample of the exposition text. */
typedef struct prom_sample {
    char     name[96];
    char     origin[96]; /* "" without the label */
    uint64_t value;
} prom_sample;

#define PROM_MAX 128

typedef struct prom_doc {
    prom_sample s[PROM_MAX];
    unsigned    n;
    unsigned    families;
} prom_doc;

/* Checks the text line by line and collects its samples. */
static void prom_parse(char *text, prom_doc *d)
{
    char     help_name[96] = "", family[96] = "", *line, *save = NULL;
    bool     want_type = false;
    char     seen[64][96];
    unsigned n_seen = 0, i;

    memset(d, 0, sizeof(*d));
    ck_assert_msg(text[strlen(text) - 1] == '\n', "the text must end with a newline");
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            ck_assert_msg(!want_type, "HELP without TYPE before: %s", line);
            ck_assert_int_eq(sscanf(line + 7, "%95s", help_name), 1);
            ck_assert_msg(strncmp(help_name, "cbhttp_", 7) == 0, "prefix: %s", line);
            ck_assert_msg(strlen(line) > 7 + strlen(help_name) + 1, "empty HELP: %s", line);
            for (i = 0; i < n_seen; i++)
                ck_assert_msg(strcmp(seen[i], help_name) != 0, "family twice: %s", help_name);
            ck_assert_uint_lt(n_seen, 64);
            snprintf(seen[n_seen++], sizeof(seen[0]), "%s", help_name);
            want_type = true;
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[96], type[32];

            ck_assert_msg(want_type, "TYPE without HELP: %s", line);
            ck_assert_int_eq(sscanf(line + 7, "%95s %31s", name, type), 2);
            ck_assert_str_eq(name, help_name);
            ck_assert_msg(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0, "type: %s",
                          line);
            if (strcmp(type, "counter") == 0) {
                size_t nl = strlen(name);

                ck_assert_msg(nl > 6 && strcmp(name + nl - 6, "_total") == 0,
                              "counter without _total: %s", name);
            }
            snprintf(family, sizeof(family), "%s", name);
            want_type = false;
            d->families++;
        } else {
            prom_sample *s = &d->s[d->n];
            const char  *p = line;
            size_t       k = strcspn(p, "{ ");
            char        *end;

            ck_assert_msg(line[0] != '#', "unexpected comment: %s", line);
            ck_assert_msg(!want_type, "sample before TYPE: %s", line);
            ck_assert_uint_lt(d->n, PROM_MAX);
            ck_assert_uint_lt(k, sizeof(s->name));
            memcpy(s->name, p, k);
            s->name[k] = '\0';
            ck_assert_msg(strcmp(s->name, family) == 0, "sample %s in family %s", s->name, family);
            p += k;
            s->origin[0] = '\0';
            if (*p == '{') {
                const char *q;

                ck_assert_msg(strncmp(p, "{origin=\"", 9) == 0, "labels: %s", line);
                p += 9;
                q = strstr(p, "\"} ");
                ck_assert_ptr_nonnull(q);
                ck_assert_uint_lt((size_t)(q - p), sizeof(s->origin));
                memcpy(s->origin, p, (size_t)(q - p));
                s->origin[q - p] = '\0';
                p = q + 2;
            }
            ck_assert_msg(*p == ' ', "no value: %s", line);
            s->value = strtoull(p + 1, &end, 10);
            ck_assert_msg(end != p + 1 && *end == '\0', "value: %s", line);
            d->n++;
        }
    }
    ck_assert(!want_type);
}

static uint64_t prom_value(const prom_doc *d, const char *name, const char *origin)
{
    unsigned i, found = 0;
    uint64_t v = 0;

    for (i = 0; i < d->n; i++)
        if (strcmp(d->s[i].name, name) == 0) {
            ck_assert_str_eq(d->s[i].origin, origin ? origin : "");
            v = d->s[i].value;
            found++;
        }
    ck_assert_msg(found == 1, "%s: %u samples", name, found);
    return v;
}

START_TEST(test_metrics_prometheus)
{
    env                      *e = metrics_env();
    api_client_metrics        m;
    const api_origin_metrics *om;
    const char               *org;
    char                     *text = NULL;
    prom_doc                 *d = calloc(1, sizeof(*d));
    unsigned                  i;

    ck_assert_int_eq(api_client_metrics_prometheus(e->c, &text), CB_OK);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(api_client_metrics_get(e->c, &m), CB_OK);
    om = &m.origins[0];
    org = fixture_url(e->f);
    prom_parse(text, d);
    ck_assert_uint_eq(d->n, d->families); /* one origin: one sample each */
    for (i = 0; i < d->n; i++)
        ck_assert(d->s[i].origin[0] == '\0' || strcmp(d->s[i].origin, org) == 0);

    ck_assert_uint_eq(prom_value(d, "cbhttp_breaker_state", org), 1);
    ck_assert_uint_eq(prom_value(d, "cbhttp_breaker_open", org), 1);
    ck_assert_uint_eq(prom_value(d, "cbhttp_breaker_requests_total", org), 9);
    ck_assert_uint_eq(prom_value(d, "cbhttp_breaker_successes_total", org), 4);
    ck_assert_uint_eq(prom_value(d, "cbhttp_breaker_failures_total", org), 3);
    ck_assert_uint_eq(prom_value(d, "cbhttp_breaker_rejected_total", org), 2);
    ck_assert_uint_eq(prom_value(d, "cbhttp_breaker_opened_total", org), 1);
    ck_assert_uint_eq(prom_value(d, "cbhttp_breaker_window_failures", org),
                      om->breaker.window_failures);
    ck_assert_uint_eq(prom_value(d, "cbhttp_breaker_consecutive_successes", org), 0);
    ck_assert_uint_eq(prom_value(d, "cbhttp_attempts_total", org), 7);
    ck_assert_uint_eq(prom_value(d, "cbhttp_retries_total", org), 1);
    ck_assert_uint_eq(prom_value(d, "cbhttp_retries_denied_total", org), 0);
    ck_assert_uint_eq(prom_value(d, "cbhttp_retry_budget_available", org), om->budget_available);
    ck_assert_uint_eq(prom_value(d, "cbhttp_cache_hits_total", org), 1);
    ck_assert_uint_eq(prom_value(d, "cbhttp_cache_misses_total", org), 8);
    ck_assert_uint_eq(prom_value(d, "cbhttp_cache_revalidations_total", org), 1);
    ck_assert_uint_eq(prom_value(d, "cbhttp_cache_not_modified_total", org), 1);
    ck_assert_uint_eq(prom_value(d, "cbhttp_cache_stale_served_total", org), 2);
    ck_assert_uint_eq(prom_value(d, "cbhttp_cache_entries", NULL), 2);
    ck_assert_uint_eq(prom_value(d, "cbhttp_cache_bytes", NULL), m.cache.bytes);
    ck_assert_uint_eq(prom_value(d, "cbhttp_cache_stores_total", NULL), 2);
    ck_assert_uint_eq(prom_value(d, "cbhttp_cache_evictions_total", NULL), 0);
    ck_assert_uint_eq(prom_value(d, "cbhttp_cache_invalidations_total", NULL), 0);
    ck_assert_uint_eq(prom_value(d, "cbhttp_cache_max_entries", NULL), 10000);
    ck_assert_uint_eq(prom_value(d, "cbhttp_cache_max_bytes", NULL), (uint64_t)32 << 20);

    api_client_metrics_free(&m);
    cb_free(text);
    free(d);
    env_stop(e);
}
END_TEST

/* ---- Config end to end ----------------------------------------------------------------- */

static api_client *client_from_doc(const char *doc, logcap *log)
{
    api_config  cfg;
    api_client *c;
    char        err[256];

    ck_assert_msg(api_config_parse(doc, strlen(doc), &cfg, err, sizeof(err)) == CB_OK, "%s", err);
    cfg.client.logger = cap_log;
    cfg.client.log_data = log;
    c = api_client_new_from_config(&cfg);
    ck_assert_ptr_nonnull(c);
    api_config_free(&cfg);
    return c;
}

START_TEST(test_config_end_to_end)
{
    fixture     *f = fixture_start();
    char         doc[1024];
    logcap      *log = calloc(2, sizeof(*log));
    api_client  *with, *without;
    api_response r;
    int          i;

    ck_assert_ptr_nonnull(f);
    snprintf(doc, sizeof(doc),
             "{\"base_url\": \"%s\", \"timeout_ms\": 5000, \"log_level\": \"warn\","
             " \"circuit_breaker\": {\"failure_threshold\": 5, \"reset_timeout_ms\": 60000},"
             " \"retry\": {\"max_attempts\": 1},"
             " \"origins\": {\"%s\": {\"failure_threshold\": 2, \"reset_timeout_ms\": 60000}}}",
             fixture_url(f), fixture_url(f));
    with = client_from_doc(doc, &log[0]);
    snprintf(doc, sizeof(doc),
             "{\"base_url\": \"%s\", \"timeout_ms\": 5000, \"log_level\": \"warn\","
             " \"circuit_breaker\": {\"failure_threshold\": 5, \"reset_timeout_ms\": 60000},"
             " \"retry\": {\"max_attempts\": 1}}",
             fixture_url(f));
    without = client_from_doc(doc, &log[1]);

    /* Working calls first: the config's base URL is used. */
    ck_assert_int_eq(api_get(with, "/ok", NULL, &r), CB_OK);
    ck_assert_int_eq(r.status, 200);
    api_response_free(&r);

    fixture_set_outage(f, FIXTURE_DOWN_503);
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(api_get(with, "/ok", NULL, &r), CB_ERR_HTTP);
        ck_assert_uint_eq(r.attempts, 1); /* retry.max_attempts = 1 */
        api_response_free(&r);
        ck_assert_int_eq(api_get(without, "/ok", NULL, &r), CB_ERR_HTTP);
        api_response_free(&r);
    }
    /* The override's threshold of 2 opened it; the global 5 has not. */
    ck_assert_int_eq(api_client_breaker_state(with, "/"), CB_OPEN);
    ck_assert_int_eq(api_client_breaker_state(without, "/"), CB_CLOSED);
    ck_assert_int_eq(api_get(with, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(api_get(without, "/ok", NULL, &r), CB_ERR_HTTP);
        api_response_free(&r);
    }
    ck_assert_int_eq(api_client_breaker_state(without, "/"), CB_OPEN);

    /* log_level "warn" from the config: the state change, no DEBUG lines. */
    ck_assert_uint_eq(log_count(&log[0], API_LOG_WARN, fixture_url(f), "CLOSED -> OPEN", NULL), 1);
    ck_assert_uint_eq(log_count(&log[0], API_LOG_DEBUG, NULL, NULL, NULL), 0);
    ck_assert_uint_eq(log_count(&log[1], API_LOG_WARN, fixture_url(f), "CLOSED -> OPEN", NULL), 1);

    api_client_free(with);
    api_client_free(without);
    free(log);
    fixture_stop(f);
}
END_TEST

static Suite *monitoring_suite(void)
{
    Suite *s = suite_create("monitoring");
    TCase *tc = tcase_create("monitoring");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_log_state_changes_at_warn);
    tcase_add_test(tc, test_log_retries_at_debug);
    tcase_add_test(tc, test_log_level_filters);
    tcase_add_test(tc, test_no_logger_prints_nothing);
    tcase_add_test(tc, test_on_event_listener);
    tcase_add_test(tc, test_metrics_struct_exact);
    tcase_add_test(tc, test_metrics_survive_deflation);
    tcase_add_test(tc, test_metrics_json);
    tcase_add_test(tc, test_metrics_prometheus);
    tcase_add_test(tc, test_config_end_to_end);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(monitoring_suite()); }
