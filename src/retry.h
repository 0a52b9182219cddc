/* The retry policy: which calls may be retried, how long to wait, and the
 * per-origin retry budget that keeps retries from multiplying the load on a
 * failing service. The decisions are used by request.c's retry step. */
#ifndef CBH_RETRY_H
#define CBH_RETRY_H

#include <pthread.h>

#include "cbhttp.h"

#define CBH_BUDGET_SLOTS 64 /* one per second: the longest budget window */

/* Fills defaults into a copy of in (NULL = all defaults); budget_window_ms
 * is capped at CBH_BUDGET_SLOTS seconds. Every zero field takes its default
 * (3 attempts, 100 ms base, 10000 ms cap, budget 20 %, floor 10 per second,
 * window 10000 ms); budget_disabled is kept as given. */
void cbh_retry_config_norm(const api_retry_config *in, api_retry_config *out);

/* GET, HEAD, PUT, DELETE, OPTIONS (cbh_method_is_idempotent, method.h), or
 * any method when the request carries an Idempotency-Key. */
bool cbh_retry_method_ok(const char *method, bool has_idempotency_key);

/* Which outcomes are retryable: outcome.h (cbh_outcome_retryable). */

/* Full-jitter exponential backoff for retry number n (0 = the first retry):
 * uniform in [0, min(max_delay_ms, base_delay_ms * 2^n)], both ends
 * included, for any n (no overflow). *rng is a xorshift64 state, advanced;
 * a zero state is replaced by a fixed non-zero one. rng NULL gives 0. */
uint64_t cbh_backoff_ms(const api_retry_config *rc, unsigned n, uint64_t *rng);

/* Parses a Retry-After value: delta-seconds, or an HTTP-date relative to
 * now_epoch (seconds). A date in the past gives 0. Values beyond a year are
 * clamped to a year. False when it is neither. Spaces and tabs around the
 * value are ignored. A negative number ("-1", which some servers send) is
 * read as 0 rather than refused; "+1", "1.5" and "1 s" are garbage. */
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
 * Granted while the retries counted in the current second are fewer than
 * budget_min_per_sec (the floor), or while the retries in the last
 * budget_window_ms (whole seconds, rounded up) are fewer than budget_percent
 * percent of the requests in it. Always true when rc->budget_disabled
 * (nothing is counted then). */
bool cbh_budget_try_retry(cbh_budget *b, const api_retry_config *rc, uint64_t now_ms);
/* How many retries would be granted now (for metrics); UINT_MAX when
 * rc->budget_disabled. A NULL b is a budget that has counted nothing. */
unsigned cbh_budget_available(cbh_budget *b, const api_retry_config *rc, uint64_t now_ms);

#endif
