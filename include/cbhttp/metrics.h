/*
 * cbhttp: metrics of a client, per origin, as a struct, as JSON and as
 * Prometheus text exposition format.
 */
#ifndef CBHTTP_METRICS_H
#define CBHTTP_METRICS_H

#include "client.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The per-origin counters, one list per group: the struct fields below,
 * the library's own counters, the snapshot copy and the JSON and
 * Prometheus rows are all generated from it.
 *   X(field, JSON name in its group, Prometheus family, help text)
 */
#define API_RETRY_COUNTERS(X)                                                                      \
    X(attempts, "attempts", "cbhttp_attempts_total", "Network attempts sent.")                     \
    X(retries, "retries", "cbhttp_retries_total", "Network attempts that were retries.")           \
    X(retries_denied, "retries_denied", "cbhttp_retries_denied_total",                             \
      "Retries held back by the retry budget.")
#define API_CACHE_COUNTERS(X)                                                                      \
    X(cache_hits, "hits", "cbhttp_cache_hits_total",                                               \
      "Fresh cache hits served without network I/O.")                                              \
    X(cache_misses, "misses", "cbhttp_cache_misses_total",                                         \
      "Cache lookups that found no usable entry.")                                                 \
    X(cache_revalidations, "revalidations", "cbhttp_cache_revalidations_total",                    \
      "Conditional requests sent to revalidate a cached entry.")                                   \
    X(cache_not_modified, "not_modified", "cbhttp_cache_not_modified_total",                       \
      "Revalidations answered 304 Not Modified.")                                                  \
    X(cache_stale_served, "stale_served", "cbhttp_cache_stale_served_total",                       \
      "Stale cache entries served in place of a failure.")

#define API_COUNTER_FIELD_(field, json, prom, help) uint64_t field;

typedef struct api_origin_metrics {
    char      *origin; /* "http://127.0.0.1:8080" */
    cb_metrics breaker;
    API_RETRY_COUNTERS(API_COUNTER_FIELD_) /* attempts, retries, retries_denied */
    unsigned budget_available;             /* retries the budget would allow now */
    API_CACHE_COUNTERS(API_COUNTER_FIELD_) /* cache_hits ... cache_stale_served */
} api_origin_metrics;

typedef struct api_cache_metrics {
    uint64_t entries;
    uint64_t bytes;
    uint64_t stores;
    uint64_t evictions;     /* LRU evictions for the entry or byte bound */
    uint64_t invalidations; /* removed by unsafe methods */
    uint64_t max_bytes;
    uint64_t max_entries;
} api_cache_metrics;

typedef struct api_client_metrics {
    api_origin_metrics *origins;
    size_t              origin_count;
    api_cache_metrics   cache;
} api_client_metrics;

/* A snapshot of every origin's metrics. Free with api_client_metrics_free.
 * CB_ERR_INVALID for NULL arguments, CB_ERR_NOMEM. */
CB_EXPORT cb_err api_client_metrics_get(api_client *c, api_client_metrics *out);
CB_EXPORT void   api_client_metrics_free(api_client_metrics *m);

/*
 * The snapshot as a JSON document:
 *   {"origins": [{"origin": "...", "state": "CLOSED", "breaker": {...},
 *                 "retry": {...}, "cache": {...}}], "cache": {...}}
 * *out is NUL-terminated; free it with cb_free.
 */
CB_EXPORT cb_err api_client_metrics_json(api_client *c, char **out);

/*
 * The snapshot in Prometheus text exposition format 0.0.4: metric names
 * prefixed with "cbhttp_", the origin as a label, "# HELP" and "# TYPE"
 * lines. *out is NUL-terminated; free it with cb_free.
 */
CB_EXPORT cb_err api_client_metrics_prometheus(api_client *c, char **out);

#ifdef __cplusplus
}
#endif
#endif /* CBHTTP_METRICS_H */
