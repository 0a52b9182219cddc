/* HTTP-date (RFC 9110 5.6.7): IMF-fixdate, the obsolete RFC 850 form and
 * asctime(). Used by Retry-After, Date, Expires and Last-Modified. */
#ifndef CBH_HTTPDATE_H
#define CBH_HTTPDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses s into seconds since the epoch (UTC). False for anything else. */
bool cbh_http_date_parse(const char *s, int64_t *epoch);

/* Formats epoch as an IMF-fixdate into buf: 30 bytes hold it whole, fewer
 * truncate it as snprintf does (0: nothing written). NULL buf: nothing. */
void cbh_http_date_format(int64_t epoch, char *buf, size_t size);

#endif
