/*
 * cbhttp: a circuit-breaking HTTP/JSON client for C.
 *
 * This header gives the whole API:
 *   cbhttp/common.h   version, error codes, allocator hook, clock
 *   cbhttp/breaker.h  the standalone circuit breaker (cb_*)
 *   cbhttp/client.h   the HTTP client (api_*)
 *   cbhttp/async.h    asynchronous calls on an event loop (api_async_*)
 *   cbhttp/json.h     JSON bodies and JSON configuration (cJSON)
 *   cbhttp/metrics.h  metrics snapshots, JSON and Prometheus output
 */
#ifndef CBHTTP_H
#define CBHTTP_H

#include "cbhttp/common.h"
#include "cbhttp/breaker.h"
#include "cbhttp/client.h"
#include "cbhttp/async.h"
#include "cbhttp/json.h"
#include "cbhttp/metrics.h"

#endif /* CBHTTP_H */
