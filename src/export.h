/* Metrics exporters: a snapshot (api_client_metrics) as JSON or as
 * Prometheus text. */
#ifndef CBH_EXPORT_H
#define CBH_EXPORT_H

#include "cbhttp.h"

/* The snapshot as JSON / Prometheus text; NULL on OOM. Free with cbh_free. */
char *cbh_metrics_to_json(const api_client_metrics *m);
char *cbh_metrics_to_prometheus(const api_client_metrics *m);

#endif
