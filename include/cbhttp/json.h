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
 * Parses the resp->body_len bytes of resp->body as one JSON value into *out
 * (free it with cJSON_Delete). Nothing past body_len is read; whitespace may
 * follow the value, anything else is refused. *out is NULL on failure.
 * CB_ERR_PARSE if the body is not JSON (empty bodies and cJSON running out
 * of memory included: cJSON does not tell them apart), CB_ERR_INVALID for
 * NULL arguments. Thread-safe.
 */
CB_EXPORT cb_err api_response_json(const api_response *resp, struct cJSON **out);

/*
 * Sends json as the body of a request with "Content-Type: application/json"
 * (unless opts->content_type says otherwise). json is printed unformatted and
 * not modified. Same semantics as api_request; a NULL json is
 * CB_ERR_INVALID and failing to print it CB_ERR_NOMEM, with *resp
 * initialised as for any failed call (call api_response_free as always).
 */
CB_EXPORT cb_err api_request_json(api_client *c, const char *method, const char *path,
                                  const struct cJSON *json, const api_options *opts,
                                  api_response *resp);

/*
 * A client configuration read from a JSON document, e.g.
 *   {"timeout_ms": 2000, "log_level": "warn",
 *    "circuit_breaker": {"failure_threshold": 3, "reset_timeout_ms": 1000},
 *    "retry": {"max_attempts": 4}, "cache": {"max_bytes": 1048576},
 *    "origins": {"http://other:80": {"failure_threshold": 10}}}
 *
 * Every key is optional; an absent key keeps the field's zero value, i.e.
 * its documented default. Keys are the C field names, case-sensitive:
 *   top level:  base_url, user_agent, ca_file (strings);
 *               default_headers (array of "Name: value" strings, no CR/LF);
 *               timeout_ms, connect_timeout_ms, max_redirects,
 *               origin_idle_ms (unsigned);
 *               max_body_bytes, max_header_bytes, max_origins (size_t);
 *               allow_cross_origin_redirects, retry_after_opens_breaker
 *               (true/false);
 *               log_level ("debug", "info", "warn", "error");
 *               circuit_breaker, retry, cache, origins (objects, below).
 *   circuit_breaker: every numeric cb_config field (failure_threshold,
 *               failure_window_ms, reset_timeout_ms, half_open_max,
 *               success_threshold, failure_rate_threshold, minimum_calls,
 *               slow_call_ms, slow_call_rate_threshold, max_reset_timeout_ms,
 *               reset_backoff_multiplier, reset_jitter_pct,
 *               half_open_max_wait_ms) and
 *               "mode": "normal" | "metrics_only" | "disabled".
 *               The three percentages must be 0-100.
 *   retry:      max_attempts, base_delay_ms, max_delay_ms, budget_percent,
 *               budget_min_per_sec, budget_window_ms, budget_disabled (bool).
 *   cache:      disabled, heuristic (bool); max_bytes, max_entry_bytes
 *               (size_t); max_entries (unsigned).
 *   origins:    an object mapping an origin (anything
 *               api_client_set_origin_breaker accepts: an absolute
 *               http(s) URL, or a path resolved against base_url) to
 *               an object of circuit_breaker keys. Each entry starts from
 *               the top-level circuit_breaker and overrides the keys it
 *               names. Entries keep document order.
 * Numbers must be integral (1e3 and 7.0 are), non-negative and within the
 * field's range; size_t fields stop at 2^53, the largest integer a JSON
 * parser keeps exactly. Callbacks, the clock and the other test hooks
 * cannot be set from JSON; null is not accepted for any key (omit it).
 *
 * Errors: unknown keys, duplicate keys and values of the wrong type or range
 * are CB_ERR_INVALID, a non-object top level too; malformed JSON (or
 * anything but whitespace after the document) is CB_ERR_PARSE. The message
 * goes into err (when err_size > 0, always NUL-terminated, "" on success)
 * and names the key path, e.g.
 *   "retry.max_attempts: expected a non-negative integer"
 *   "cache.colour: unknown key"
 *   "origins[\"http://a\"].mode: expected one of \"normal\", ..."
 *   "malformed JSON at line 3, column 28 (byte 49)"
 * Semantic checks (a contradictory breaker config, a bad URL) happen in
 * api_client_new_from_config, which then returns NULL.
 *
 * json holds len bytes and needs no terminator. On success the strings of
 * *out are copies it owns until api_config_free; on failure *out is zeroed
 * and owns nothing (api_config_free on it is harmless). Thread-safe on
 * distinct outputs.
 */
typedef struct api_origin_config {
    char     *origin; /* a URL naming the origin */
    cb_config circuit_breaker;
} api_origin_config;

typedef struct api_config {
    api_client_config  client;
    api_origin_config *origins;
    size_t             origin_count;
    char              *strings_; /* reserved, always NULL: kept so that the
                                    struct keeps the size and layout released
                                    in 0.1.0 (each string is its own
                                    allocation, freed by api_config_free) */
} api_config;

CB_EXPORT cb_err api_config_parse(const char *json, size_t len, api_config *out, char *err,
                                  size_t err_size);
/* Frees what api_config_parse stored in *cfg and zeroes it. NULL is fine. */
CB_EXPORT void api_config_free(api_config *cfg);

/* Creates a client from a parsed config (api_client_new), then applies each
 * per-origin override with api_client_set_origin_breaker. NULL (and nothing
 * left behind) on a bad config, a bad origin or OOM. cfg may be freed once
 * this returns: the client copies what it keeps. */
CB_EXPORT api_client *api_client_new_from_config(const api_config *cfg);

#ifdef __cplusplus
}
#endif
#endif /* CBHTTP_JSON_H */
