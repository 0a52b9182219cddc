/* Internal logging: formats a line only when a logger is installed and the
 * level passes the client's threshold, so that silent clients pay nothing
 * beyond one comparison. */
#ifndef CBH_LOG_H
#define CBH_LOG_H

#include "cbhttp.h"

/* The longest line cbh_log passes on, NUL included; longer lines are cut and
 * end in "...". */
#define CBH_LOG_LINE_MAX 512

#if defined(__GNUC__)
#define CBH_PRINTF_(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CBH_PRINTF_(fmt, args)
#endif

/*
 * Formats fmt (not NULL) into a stack buffer and calls fn(level, line, ud)
 * when fn is not NULL and level >= min; a line vsnprintf cannot format is
 * dropped. Allocates nothing and takes no lock, so it may
 * be called anywhere as long as no library lock is held (the logger may call
 * back into the library).
 */
void cbh_log(api_log_fn fn, void *ud, api_log_level min, api_log_level level, const char *fmt, ...)
    CBH_PRINTF_(5, 6);

#endif
