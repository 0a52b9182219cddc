/* Metrics of a client: a snapshot of every origin, and its exports. */
#include <string.h>

#include "alloc.h"
#include "client_priv.h"
#include "export.h"

typedef struct snapshot {
    api_client_metrics *m;
    size_t              cap;
    uint64_t            now; /* the client's clock, for the retry budget */
    api_retry_config    retry;
    bool                oom;
} snapshot;

/* Copies one origin's figures into the snapshot (cbh_origins_foreach runs
 * it on a referenced snapshot of the map, without its lock). */
static void snapshot_origin(cbh_origin *o, void *ud)
{
    snapshot           *s = ud;
    api_origin_metrics *om;
    cbh_origin_ext     *x;

    if (s->oom)
        return;
    if (s->m->origin_count == s->cap) {
        size_t              cap = s->cap ? s->cap * 2 : 16;
        api_origin_metrics *a = cbh_realloc(s->m->origins, cap * sizeof(*a));

        if (!a) {
            s->oom = true;
            return;
        }
        s->m->origins = a;
        s->cap = cap;
    }
    om = &s->m->origins[s->m->origin_count];
    memset(om, 0, sizeof(*om));
    if (!(om->origin = cbh_strdup(o->key))) {
        s->oom = true;
        return;
    }
    s->m->origin_count++;
    cb_breaker_metrics(&o->breaker, &om->breaker);
    cbh_origin_counters(o, om);
    /* An origin with no calls in the budget's window has a fresh one (NULL). */
    x = cbh_origin_ext_of(o);
    om->budget_available = cbh_budget_available(x ? &x->budget : NULL, &s->retry, s->now);
}

CB_EXPORT cb_err api_client_metrics_get(api_client *c, api_client_metrics *out)
{
    snapshot s;

    if (!out)
        return CB_ERR_INVALID;
    memset(out, 0, sizeof(*out));
    if (!c)
        return CB_ERR_INVALID;
    memset(&s, 0, sizeof(s));
    s.m = out;
    s.now = cbh_client_now(c);
    s.retry = c->retry;
    cbh_origins_foreach(c->origins, snapshot_origin, &s);
    if (s.oom) {
        api_client_metrics_free(out);
        return CB_ERR_NOMEM;
    }
    if (c->cache)
        cbh_cache_metrics(c->cache, &out->cache);
    return CB_OK;
}

CB_EXPORT void api_client_metrics_free(api_client_metrics *m)
{
    size_t i;

    if (!m)
        return;
    for (i = 0; i < m->origin_count; i++)
        cbh_free(m->origins[i].origin);
    cbh_free(m->origins);
    memset(m, 0, sizeof(*m));
}

static cb_err client_export(api_client *c, char **out, char *(*fmt)(const api_client_metrics *))
{
    api_client_metrics m;
    cb_err             err;

    if (!out)
        return CB_ERR_INVALID;
    *out = NULL;
    if ((err = api_client_metrics_get(c, &m)) != CB_OK)
        return err;
    *out = fmt(&m);
    api_client_metrics_free(&m);
    return *out ? CB_OK : CB_ERR_NOMEM;
}

CB_EXPORT cb_err api_client_metrics_json(api_client *c, char **out)
{
    return client_export(c, out, cbh_metrics_to_json);
}

CB_EXPORT cb_err api_client_metrics_prometheus(api_client *c, char **out)
{
    return client_export(c, out, cbh_metrics_to_prometheus);
}
