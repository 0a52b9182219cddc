/*
 * cbhttp: the HTTP/JSON client. Every request goes through libcurl, through
 * the circuit breaker of its origin (scheme, host, port), through the retry
 * policy and through an in-memory response cache.
 *
 * Thread-safety: one api_client may be shared by any number of threads;
 * every api_client_* / api_get / api_request call is safe concurrently.
 * An api_response belongs to the thread that filled it.
 */
#ifndef CBHTTP_CLIENT_H
#define CBHTTP_CLIENT_H

#include "breaker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct api_client api_client; /* opaque */

/* ---- Retry ------------------------------------------------------------- */

typedef struct api_retry_config {
    unsigned max_attempts;  /* attempts including the first; default 3; 1 = never retry */
    unsigned base_delay_ms; /* backoff base; default 100 */
    unsigned max_delay_ms;  /* backoff cap and the longest Retry-After honoured; default 10000 */

    /* Retry budget per origin (in the spirit of Finagle's RetryBudget): a
     * retry is allowed while the origin saw fewer than budget_min_per_sec
     * retries in the last second, or while retries in the last
     * budget_window_ms stay under budget_percent of the requests in it.
     * Defaults: 20 percent, 10 per second, 10000 ms. */
    unsigned budget_percent;
    unsigned budget_min_per_sec;
    unsigned budget_window_ms;
    bool     budget_disabled; /* true = no budget: every eligible retry runs */
} api_retry_config;

/* ---- Cache ------------------------------------------------------------- */

typedef struct api_cache_options {
    bool     bypass;         /* neither read from nor write to the cache */
    unsigned max_stale_ms;   /* may serve an entry this long past its freshness when the
                              request fails or the circuit is open; 0 = only what the
                              response's own stale-if-error allows */
    bool     revalidate;     /* treat a fresh entry as stale: always ask the origin
                              (conditionally, when the entry has a validator) */
    bool     only_if_cached; /* never touch the network: a miss returns
                                CB_ERR_CACHE_MISS */
} api_cache_options;

/* Client-wide cache settings. */
typedef struct api_cache_config {
    bool     disabled;        /* no cache at all */
    size_t   max_bytes;       /* total bytes of stored bodies and headers; default 32 MiB */
    unsigned max_entries;     /* default 10000 */
    size_t   max_entry_bytes; /* larger responses are not stored; default 1 MiB */
    /* Heuristic freshness (RFC 9111 4.2.2): a 200 with Last-Modified and no
     * explicit freshness is fresh for 10% of its age, at most 1 day. Off
     * unless set, because it surprises people. */
    bool heuristic;
} api_cache_config;

/* ---- Requests and responses --------------------------------------------- */

typedef struct api_header {
    const char *name;  /* as the server sent it */
    const char *value; /* leading and trailing whitespace removed */
} api_header;

/*
 * Classifies an attempt's outcome for the breaker: return true for a
 * failure. err is the transport result (CB_OK when a response arrived) and
 * status the HTTP status (0 if none). The default: any transport error,
 * 5xx and 429 are failures.
 */
typedef bool (*api_classify_fn)(cb_err err, long status, void *user_data);

typedef struct api_options { /* per request; NULL pointers = the client's defaults */
    const cb_config         *circuit_breaker;
    const api_retry_config  *retry;
    const api_cache_options *cache;
    const char *const       *headers;    /* NULL-terminated array of "Name: value" */
    unsigned                 timeout_ms; /* deadline for the whole call, retries included */

    api_classify_fn classify; /* NULL = the client's classifier */
    void           *classify_data;
    const char     *content_type; /* for api_request bodies; NULL = none added */
} api_options;

typedef struct api_response {
    long   status; /* final HTTP status, 0 if none was received */
    char  *body;   /* NUL-terminated; owned by the response; never NULL after a call */
    size_t body_len;
    unsigned
        attempts; /* network attempts made for this call (0 for a fresh cache hit or a rejection) */
    bool   from_cache; /* the body came from the cache */
    bool   stale;      /* ...and it was stale, served because of `cause` */
    cb_err cause;      /* with stale: the failure it stands in for (e.g. CB_ERR_CIRCUIT_OPEN) */

    /* Fields beyond the contract. */
    api_header *headers; /* the final response's headers, in order */
    size_t      header_count;
    char        error[256];    /* detail on failure: libcurl's message or what was invalid */
    uint64_t    elapsed_ms;    /* wall time of the whole call */
    bool        revalidated;   /* a 304 refreshed the cached entry */
    size_t      headers_size_; /* private: bytes of the block headers points
                                  into, so that copying it (the cache) is one
                                  memcpy. It must live here: an api_response
                                  is the caller's storage, the library keeps
                                  nothing of its own per response. */
} api_response;

/* ---- Monitoring --------------------------------------------------------- */

typedef enum api_log_level {
    API_LOG_DEBUG = 0,
    API_LOG_INFO,
    API_LOG_WARN,
    API_LOG_ERROR
} api_log_level;

/* A logger. msg is a complete line without a newline, valid during the call.
 * Called with no client lock held, from the thread making the request. */
typedef void (*api_log_fn)(api_log_level level, const char *msg, void *user_data);

/* A ready logger writing "cbhttp LEVEL: msg" lines to stderr. The library
 * never calls it unless it is installed as the client's logger. */
CB_EXPORT void api_log_stderr(api_log_level level, const char *msg, void *user_data);

/* "DEBUG", "INFO", "WARN", "ERROR". Never NULL. */
CB_EXPORT const char *api_log_level_name(api_log_level level);

/*
 * Breaker events of every origin, tagged with the origin
 * ("http://127.0.0.1:8080"). Called with no lock held, on the thread that
 * caused the event; ev->type tells which. origin is valid during the call.
 */
typedef void (*api_event_fn)(const char *origin, const cb_event *ev, void *user_data);

/* ---- The client ---------------------------------------------------------- */

typedef struct api_client_config {
    const char      *base_url; /* "http://host:port[/prefix]"; NULL = paths must be absolute URLs */
    cb_config        circuit_breaker; /* default config of every host's breaker (its
                                         listener, classifier and clock are replaced
                                         by the client's own) */
    api_retry_config retry;           /* default retry policy */
    unsigned         timeout_ms;      /* default deadline per call; default 30000 */

    /* Fields beyond the contract. */
    unsigned           connect_timeout_ms; /* default 10000 */
    const char        *user_agent;         /* NULL = "cbhttp/VERSION" */
    const char *const *default_headers;    /* NULL-terminated "Name: value", sent on every call */
    size_t             max_body_bytes; /* default 8 MiB; larger bodies fail with CB_ERR_TOO_LARGE */
    size_t             max_header_bytes; /* total response header bytes; default 64 KiB */
    unsigned           max_redirects;    /* 0 = redirects are not followed (the default) */
    bool               allow_cross_origin_redirects; /* with max_redirects: may leave the origin
                                              (never to a scheme other than http/https) */
    const char        *ca_file; /* PEM bundle for TLS verification; NULL = system's.
                                      Verification cannot be turned off. */
    api_cache_config   cache;
    api_classify_fn    classify; /* NULL = the default classifier */
    void              *classify_data;
    api_event_fn       on_event; /* breaker events of every origin */
    void              *event_data;
    api_log_fn         logger; /* NULL = silent */
    void              *log_data;
    api_log_level      log_level; /* least level passed to logger; default DEBUG */
    /* Origin eviction. An origin (its breaker, retry budget and counters)
     * that no call used for origin_idle_ms may be evicted whatever its
     * breaker state, an OPEN one included; default 600000 (10 min). A later
     * call to it starts on a fresh CLOSED breaker with zeroed counts. That
     * is acceptable because nobody called it for idle_ms: an OPEN breaker
     * would have let a probe through long before (reset_timeout_ms defaults
     * to 30 s), and the fresh one opens again after failure_threshold
     * failures. Keep origin_idle_ms above the breaker's reset timeout (and
     * max_reset_timeout_ms), or eviction shortens open periods. Origins a
     * call is using and origins pinned by api_client_set_origin_breaker are
     * never evicted. See max_origins for the hard bound. */
    unsigned origin_idle_ms;

    /* Test hooks: a clock and a sleep so that retry timing is deterministic.
     * NULL = the real ones. sleep_fn must sleep (or pretend to) for ms. */
    cb_clock_fn clock;
    void       *clock_data;
    void (*sleep_fn)(uint64_t ms, void *user_data);
    void    *sleep_data;
    uint64_t random_seed; /* jitter seed; 0 = from the clock and address */

    /* The most origins the client keeps at once (about 3.7 KB each);
     * 0 = 100000 (some 370 MB at worst: set it lower where memory is
     * tight); SIZE_MAX = no limit. Before a new origin would exceed it, the
     * least recently used origin (by the start of its last call) that no
     * call is using and that is not pinned is evicted, whatever its breaker
     * state; it comes back on its next use with a fresh CLOSED breaker, as
     * after origin_idle_ms. Pinned origins count towards the bound. When
     * every origin is in use or pinned, a call that needs a new origin
     * (api_get, api_request, api_client_trip, api_client_set_origin_breaker,
     * ...) fails with CB_ERR_NOMEM and does no I/O: memory stays bounded
     * rather than the bound giving way. */
    size_t max_origins;

    /* Server-directed backoff for every caller: a 429 or 503 carrying a
     * Retry-After opens the origin's breaker for that long
     * (cb_breaker_trip_for; at most retry.max_delay_ms, at least 1 ms), so
     * that other calls to the origin are rejected without I/O meanwhile,
     * not only this call's retries; the call itself then makes no further
     * attempt, and the first call after the time is the probe. Off by
     * default: one instance of a service behind a load balancer would then
     * stop the traffic to all of them. */
    bool retry_after_opens_breaker;
} api_client_config;

/* Creates a client. cfg may be NULL only to mean "no base URL, defaults".
 * Returns NULL on a bad config (a base URL that is not http(s)://host[:port][/path],
 * a contradictory breaker config, ...) or when out of memory. Strings are
 * copied. */
CB_EXPORT api_client *api_client_new(const api_client_config *cfg);

/* api_client_new that says why (nghttp2's *_new(&out) shape): CB_OK with
 * *out set; CB_ERR_INVALID with a message in err naming the field
 * ("circuit_breaker: success_threshold (4) > half_open_max (3)",
 * "base_url: ..."); CB_ERR_NOMEM. *out is NULL on failure. err may be NULL
 * (err_size is then ignored); the message is truncated to err_size. */
CB_EXPORT cb_err api_client_create(const api_client_config *cfg, api_client **out, char *err,
                                   size_t err_size);

/* Frees the client, its breakers, connections and cache. NULL is fine. No
 * call may still be running on it. */
CB_EXPORT void api_client_free(api_client *c);

/*
 * Sets the breaker config used for one origin, creating or updating its
 * breaker. Here and in the other breaker controls below, url_or_path is an
 * absolute http(s) URL naming the origin (also when the client has a base
 * URL) or a path resolved against the base URL.
 * Requests that carry their own circuit_breaker config still override it.
 * Returns CB_ERR_INVALID for a bad URL or config.
 */
CB_EXPORT cb_err api_client_set_origin_breaker(api_client *c, const char *url_or_path,
                                               const cb_config *cfg);

/*
 * GET path. *resp is overwritten first; call api_response_free(resp) after
 * every call whatever it returned. Returns CB_OK when a response with a
 * status below 400 arrived (or the cache served one), CB_ERR_HTTP for a final
 * status >= 400 (the response is filled), CB_ERR_CIRCUIT_OPEN when the
 * origin's breaker rejected the call and no stale entry could stand in, or
 * another code for transport failures. opts may be NULL.
 */
CB_EXPORT cb_err api_get(api_client *c, const char *path, const api_options *opts,
                         api_response *resp);

/* Any method ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS" or
 * another token), with an optional body (copied before the call returns).
 * Same rules as api_get; only GET and HEAD use the cache, and a successful
 * unsafe method invalidates the cached entry of its URL. */
CB_EXPORT cb_err api_request(api_client *c, const char *method, const char *path, const char *body,
                             size_t body_len, const api_options *opts, api_response *resp);

/* Frees the contents of resp and zeroes it. NULL is fine. */
CB_EXPORT void api_response_free(api_response *resp);

/* The value of the first header named name (case-insensitive), or NULL.
 * Valid until api_response_free(resp). */
CB_EXPORT const char *api_response_header(const api_response *resp, const char *name);

/* State of the breaker a request to this URL or path would use; CB_CLOSED if
 * it has none yet or the URL is invalid. */
CB_EXPORT cb_state api_client_breaker_state(api_client *c, const char *url_or_path);

/* Metrics of that breaker. Returns CB_ERR_INVALID if none exists yet. */
CB_EXPORT cb_err api_client_breaker_metrics(api_client *c, const char *url_or_path,
                                            cb_metrics *out);

/* Manual controls on the breaker of that origin (created if needed). */
CB_EXPORT cb_err api_client_trip(api_client *c, const char *url_or_path);
CB_EXPORT cb_err api_client_reset(api_client *c, const char *url_or_path);

/* Drops every cached response. */
CB_EXPORT void api_client_cache_clear(api_client *c);

#ifdef __cplusplus
}
#endif
#endif /* CBHTTP_CLIENT_H */
