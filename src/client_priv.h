/* The client object shared by client.c (lifecycle, controls), request.c
 * (the flow of one call) and client_metrics.c. */
#ifndef CBH_CLIENT_PRIV_H
#define CBH_CLIENT_PRIV_H

#include <stdatomic.h>

#include <curl/curl.h>

#include "cache.h"
#include "origin.h"
#include "response.h"
#include "transport.h"
#include "url.h"

struct api_client {
    cbh_base          base;
    bool              has_base;
    api_client_config cfg;   /* a copy; its strings point into owned copies */
    api_retry_config  retry; /* normalised default retry policy */
    cbh_origins      *origins;
    cbh_cache        *cache; /* NULL when disabled */
    cbh_transport    *transport;
    char             *user_agent;
    char            **default_headers; /* NULL-terminated copies */
    _Atomic uint64_t  calls;           /* seeds each call's jitter */
};

/* The client's monotonic clock in ms (injected, or cb_clock_monotonic_ms:
 * CLOCK_MONOTONIC_COARSE). */
uint64_t cbh_client_now(const api_client *c);

/* Resolves url_or_path against the client's base URL. */
cb_err cbh_client_resolve(const api_client *c, const char *url_or_path, cbh_url *u, char *err,
                          size_t err_size);

#endif
