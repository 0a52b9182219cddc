/* The client presets and metrics shortcut of clients.h. */
#include "clients.h"

#include <string.h>

#include <check.h>

api_client *tu_client_on(const char *base, unsigned attempts, api_client_config *cfg)
{
    api_client_config local;

    if (!cfg) {
        memset(&local, 0, sizeof(local));
        cfg = &local;
    }
    cfg->base_url = base;
    if (!cfg->retry.max_attempts)
        cfg->retry.max_attempts = attempts;
    return api_client_new(cfg);
}

api_client *tu_retry_client(const char *base, tu_clock *tc, api_client_config *cfg)
{
    api_client *c;

    tu_clock_install(tc, cfg);
    if (!cfg->circuit_breaker.failure_threshold)
        cfg->circuit_breaker.failure_threshold = 1000;
    if (!cfg->random_seed)
        cfg->random_seed = 42;
    c = tu_client_on(base, 0, cfg);
    ck_assert_ptr_nonnull(c);
    return c;
}

api_origin_metrics tu_origin_metrics(api_client *c, api_cache_metrics *cache)
{
    api_client_metrics m;
    api_origin_metrics om;

    ck_assert_int_eq(api_client_metrics_get(c, &m), CB_OK);
    ck_assert_uint_eq(m.origin_count, 1);
    om = m.origins[0];
    om.origin = NULL;
    if (cache)
        *cache = m.cache;
    api_client_metrics_free(&m);
    return om;
}

api_client *tu_engine_client(const char *base, api_client_config *cfg)
{
    api_client_config local;
    api_client       *c;

    if (!cfg) {
        memset(&local, 0, sizeof(local));
        cfg = &local;
    }
    if (base)
        cfg->base_url = base;
    if (!cfg->retry.max_attempts)
        cfg->retry.max_attempts = 1;
    if (!cfg->circuit_breaker.failure_threshold)
        cfg->circuit_breaker.failure_threshold = 1000;
    if (!cfg->timeout_ms)
        cfg->timeout_ms = 20000;
    c = api_client_new(cfg);
    ck_assert_ptr_nonnull(c);
    return c;
}
