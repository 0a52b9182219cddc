/* What an attempt's outcome means, in one place: for the breaker (is the
 * origin failing?), for retry (may another attempt help?) and for the
 * cache (is this an outage a stale entry may stand in for?). err is the
 * transport result (CB_OK when a response arrived), status the HTTP status
 * (0 if none). */
#ifndef CBH_OUTCOME_H
#define CBH_OUTCOME_H

#include "cbhttp.h"

/* The origin could not be reached or answered brokenly: CB_ERR_CONNECT,
 * CB_ERR_TIMEOUT, CB_ERR_TRANSPORT. A response over our own size limit or
 * our own lack of memory says nothing about the server. */
bool cbh_outcome_unreachable(cb_err err);

/* The default classifier (the contract's list): unreachable, or a 5xx or
 * 429 answer. */
bool cbh_outcome_breaker_failure(cb_err err, long status);

/* Retryable statuses: 408, 429, 500, 502, 503, 504. */
bool cbh_outcome_retryable_status(long status);

/* Another attempt may help: unreachable, or a retryable status. */
bool cbh_outcome_retryable(cb_err err, long status);

/* An outage a stale cached entry may stand in for: the circuit is open,
 * the origin is unreachable, it answered 5xx, or (only-if-cached) the
 * cache had nothing fresh. err is the call's result here. */
bool cbh_outcome_outage(cb_err err, long status);

#endif
