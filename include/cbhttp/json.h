/*
 * cbhttp: JSON helpers on top of cJSON (<cjson/cJSON.h>).
 */
#ifndef CBHTTP_JSON_H
#define CBHTTP_JSON_H

#include "client.h"

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

/*
 * Parses resp->body as JSON into *out (free it with cJSON_Delete).
 * CB_ERR_PARSE if the body is not JSON (empty bodies included),
 * CB_ERR_INVALID for NULL arguments, CB_ERR_NOMEM.
 */
CB_EXPORT cb_err api_response_json(const api_response *resp, struct cJSON **out);

/*
 * Sends json as the body of a request with "Content-Type: application/json"
 * (unless opts->content_type says otherwise). json is printed unformatted and
 * not modified. Same semantics as api_request.
 */
CB_EXPORT cb_err api_request_json(api_client *c, const char *method, const char *path,
                                  const struct cJSON *json, const api_options *opts,
                                  api_response *resp);

/*
 * A client configuration read from a JSON document, e.g.
 *   {"base_url": "http://127.0.0.1:8080", "timeout_ms": 2000,
 *    "circuit_breaker": {"failure_threshold": 3, "reset_timeout_ms": 1000},
 *    "retry": {"max_attempts": 4}, "cache": {"max_bytes": 1048576},
 *    "origins": {"http://other:80": {"failure_threshold": 10}}}
 * Unknown keys and values of the wrong type are refused: CB_ERR_INVALID with
 * a message naming the key (e.g. "retry.max_attempts: expected a
 * non-negative integer") in err (if err_size > 0). The strings it holds live
 * in *out until api_config_free.
 */
typedef struct api_origin_config {
    char     *origin; /* a URL naming the origin */
    cb_config circuit_breaker;
} api_origin_config;

typedef struct api_config {
    api_client_config  client;
    api_origin_config *origins;
    size_t             origin_count;
    char              *strings_; /* private */
} api_config;

CB_EXPORT cb_err api_config_parse(const char *json, size_t len, api_config *out,
                                  char *err, size_t err_size);
CB_EXPORT void   api_config_free(api_config *cfg);

/* Creates a client from a parsed config, applying its per-origin overrides.
 * NULL on a bad config or OOM. */
CB_EXPORT api_client *api_client_new_from_config(const api_config *cfg);

#ifdef __cplusplus
}
#endif
#endif /* CBHTTP_JSON_H */
