/* The meaning of an outcome (see outcome.h). */
#include "outcome.h"

bool cbh_outcome_unreachable(cb_err err)
{
    return err == CB_ERR_CONNECT || err == CB_ERR_TIMEOUT || err == CB_ERR_TRANSPORT;
}

bool cbh_outcome_breaker_failure(cb_err err, long status)
{
    if (err != CB_OK)
        return cbh_outcome_unreachable(err);
    return status >= 500 || status == 429;
}

bool cbh_outcome_retryable_status(long status)
{
    switch (status) {
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
        return true;
    default:
        return false;
    }
}

bool cbh_outcome_retryable(cb_err err, long status)
{
    return err != CB_OK ? cbh_outcome_unreachable(err) : cbh_outcome_retryable_status(status);
}

bool cbh_outcome_outage(cb_err err, long status)
{
    return err == CB_ERR_CIRCUIT_OPEN || cbh_outcome_unreachable(err) || err == CB_ERR_CACHE_MISS ||
           (err == CB_ERR_HTTP && status >= 500);
}
