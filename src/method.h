/* HTTP request methods and what each one is (RFC 9110 9.2), in one table:
 * whether the retry policy, the cache and the transport treat a method as
 * safe, idempotent, cacheable or carrying a body is read from here and
 * nowhere else. Method names are case-sensitive (RFC 9110 9.1). A method
 * not in the table (an extension) is none of these. */
#ifndef CBH_METHOD_H
#define CBH_METHOD_H

#include <stdbool.h>

/*
 * X(name, safe, idempotent, cacheable, body):
 *   safe        read-only (RFC 9110 9.2.1); a successful call of any other
 *               method invalidates what the cache holds for its URL
 *               (RFC 9111 4.4);
 *   idempotent  retried without an Idempotency-Key. TRACE, idempotent in
 *               RFC 9110, is not retried (as before this table);
 *   cacheable   stored and served by this cache (GET and HEAD; RFC 9110
 *               also allows POST, which no cache of this kind stores);
 *   body        sent with a request body, empty when the caller gave none.
 */
#define CBH_METHODS(X)                                                                             \
    X(GET, 1, 1, 1, 0)                                                                             \
    X(HEAD, 1, 1, 1, 0)                                                                            \
    X(POST, 0, 0, 0, 1)                                                                            \
    X(PUT, 0, 1, 0, 1)                                                                             \
    X(DELETE, 0, 1, 0, 0)                                                                          \
    X(OPTIONS, 1, 1, 0, 0)                                                                         \
    X(TRACE, 1, 0, 0, 0)                                                                           \
    X(PATCH, 0, 0, 0, 1)

#define CBH_METHOD_ENUM_(name, safe, idem, cache, body) CBH_METHOD_##name,
typedef enum cbh_method {
    CBH_METHOD_OTHER = 0, /* an extension method, or NULL */
    CBH_METHODS(CBH_METHOD_ENUM_)
} cbh_method;
#undef CBH_METHOD_ENUM_

/* Which method of the table m names; CBH_METHOD_OTHER for NULL or any
 * other name. */
cbh_method cbh_method_of(const char *m);

/* The classes of the table (false for NULL and extension methods). */
bool cbh_method_is_safe(const char *m);
bool cbh_method_is_idempotent(const char *m);
bool cbh_method_is_cacheable(const char *m);
bool cbh_method_has_body(const char *m);

/* A successful call invalidates the cached entries of its URL: every
 * method that is not safe, extensions included. */
static inline bool cbh_method_invalidates(const char *m) { return !cbh_method_is_safe(m); }

#endif
