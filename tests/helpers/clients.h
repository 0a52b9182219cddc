/* Shared by the integration suites: clients set up the way most tests want
 * them, and one origin's metrics in a single call. */
#ifndef CBH_CLIENTS_H
#define CBH_CLIENTS_H

#include <cbhttp.h>

#include "testutil.h"

/* A client on base. cfg (NULL for all defaults) carries more settings and
 * is modified: base_url is set, and retry.max_attempts becomes attempts if
 * cfg had none (attempts 1: one call is one attempt; 0: the library's
 * default). NULL if api_client_new fails. */
api_client *tu_client_on(const char *base, unsigned attempts, api_client_config *cfg);

/* A client on base with tc's fake clock and sleep installed into cfg (which
 * must not be NULL and is modified), a breaker that does not get in the way
 * unless cfg lowers the threshold (1000), and random_seed 42 unless cfg has
 * one. Asserts that the client was made. */
api_client *tu_retry_client(const char *base, tu_clock *tc, api_client_config *cfg);

/* A client on base (NULL: none) for the engine's suites: one attempt, a
 * breaker that does not open on its own (1000) and a 20 s timeout unless
 * cfg (NULL for defaults; modified) sets them. Asserts that it was made. */
api_client *tu_engine_client(const char *base, api_client_config *cfg);

/* The metrics of the client's one origin (asserting that there is exactly
 * one), with .origin set to NULL as the string is freed; *cache (if not
 * NULL) gets the cache's figures of the same snapshot. */
api_origin_metrics tu_origin_metrics(api_client *c, api_cache_metrics *cache);

#endif
