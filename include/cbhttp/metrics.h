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

typedef struct api_origin_metrics {
    char      *origin;           /* "http://127.0.0.1:8080" */
    cb_metrics breaker;
    uint64_t   attempts;         /* network attempts sent */
    uint64_t   retries;          /* attempts that were retries */
    uint64_t   retries_denied;   /* retries the budget held back */
    unsigned   budget_available; /* retries the budget would allow now */
    uint64_t   cache_hits;       /* fresh hits, no I/O */
    uint64_t   cache_misses;
    uint64_t   cache_revalidations; /* conditional requests sent */
    uint64_t   cache_not_modified;  /* ...answered 304 */
    uint64_t   cache_stale_served;  /* stale entries served on failure */
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
