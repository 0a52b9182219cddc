/* The libcurl layer: a pool of easy handles (each keeping its own
 * connections alive), one exchange per call, bounded receive buffers and
 * libcurl's errors mapped to cb_err. Knows nothing of breakers or retries. */
#ifndef CBH_TRANSPORT_H
#define CBH_TRANSPORT_H

#include <curl/curl.h>

#include "cbhttp.h"

typedef struct cbh_transport cbh_transport;

typedef struct cbh_transport_config {
    const char *ca_file;       /* NULL = the system's bundle */
    const char *user_agent;
    size_t      max_body_bytes;
    size_t      max_header_bytes;
    unsigned    max_redirects; /* 0 = never follow */
    bool        cross_origin_redirects;
} cbh_transport_config;

/* One exchange. */
typedef struct cbh_xfer {
    const char *method;  /* "GET", "HEAD", ... */
    const char *url;
    const char *body;    /* may be NULL */
    size_t      body_len;
    const struct curl_slist *headers; /* may be NULL */
    uint64_t    timeout_ms;         /* whole exchange, >= 1 */
    uint64_t    connect_timeout_ms; /* >= 1 */
} cbh_xfer;

/* NULL on OOM or if libcurl cannot be initialised. Strings are copied. */
cbh_transport *cbh_transport_new(const cbh_transport_config *cfg);
void           cbh_transport_free(cbh_transport *t);

/*
 * Performs x and fills resp's status, body (always NUL-terminated), headers
 * and error text. Returns CB_OK when a response arrived (whatever its
 * status), CB_ERR_CONNECT / TIMEOUT / TRANSPORT / TOO_LARGE / NOMEM /
 * INVALID otherwise. Redirects are followed here when configured (same
 * origin only unless allowed; http/https only). Thread-safe.
 */
cb_err cbh_transport_perform(cbh_transport *t, const cbh_xfer *x, api_response *resp);

#endif
