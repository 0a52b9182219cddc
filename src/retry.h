/* The retry policy: which calls may be retried, how long to wait, and the
 * per-origin retry budget that keeps retries from multiplying the load on a
 * failing service. The loop itself lives in client.c. */
#ifndef CBH_RETRY_H
#define CBH_RETRY_H

#include <pthread.h>

#include "cbhttp.h"

#define CBH_BUDGET_SLOTS 64 /* one per second: the longest budget window */

/* Fills defaults into a copy of in (NULL = all defaults); budget_window_ms
 * is capped at CBH_BUDGET_SLOTS seconds. */
void cbh_retry_config_norm(const api_retry_config *in, api_retry_config *out);

/* GET, HEAD, PUT, DELETE, OPTIONS (case-sensitive, as HTTP methods are), or
 * any method when the request carries an Idempotency-Key. */
bool cbh_retry_method_ok(const char *method, bool has_idempotency_key);

/* 408, 429, 500, 502, 503, 504. */
bool cbh_retry_status_ok(long status);

/* CB_ERR_CONNECT, CB_ERR_TIMEOUT, CB_ERR_TRANSPORT. */
bool cbh_retry_err_ok(cb_err err);

/* Full-jitter exponential backoff for retry number n (0 = the first retry):
 * uniform in [0, min(max_delay_ms, base_delay_ms * 2^n)]. *rng is a
 * xorshift state (non-zero), advanced. */
uint64_t cbh_backoff_ms(const api_retry_config *rc, unsigned n, uint64_t *rng);

/* Parses a Retry-After value: delta-seconds, or an HTTP-date relative to
 * now_epoch (seconds). A date in the past gives 0. Values beyond a year are
 * clamped to a year. False when it is neither. */
bool cbh_retry_after_ms(const char *value, int64_t now_epoch, uint64_t *out_ms);

/* The per-origin retry budget: counts of requests and retries in one-second
 * slots. Thread-safe. */
typedef struct cbh_budget {
    pthread_mutex_t lock;
    uint64_t        slot_sec[CBH_BUDGET_SLOTS];
    uint32_t        requests[CBH_BUDGET_SLOTS];
    uint32_t        retries[CBH_BUDGET_SLOTS];
} cbh_budget;

void cbh_budget_init(cbh_budget *b);
void cbh_budget_destroy(cbh_budget *b);
/* Counts one original (non-retry) request at now_ms. */
void cbh_budget_note_request(cbh_budget *b, uint64_t now_ms);
/* Asks for one retry under the normalised config rc; counts it when granted.
 * Always true when rc->budget_disabled. */
bool cbh_budget_try_retry(cbh_budget *b, const api_retry_config *rc, uint64_t now_ms);
/* How many retries would be granted now (for metrics). */
unsigned cbh_budget_available(cbh_budget *b, const api_retry_config *rc, uint64_t now_ms);

#endif
