/*
 * cbhttp: common definitions shared by the breaker core and the HTTP client:
 * the export macro, version numbers, error codes and the allocator hook.
 */
#ifndef CBHTTP_COMMON_H
#define CBHTTP_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CBHTTP_BUILDING) && defined(__GNUC__)
#define CB_EXPORT __attribute__((visibility("default")))
#else
#define CB_EXPORT
#endif

#define CBHTTP_VERSION_MAJOR 0
#define CBHTTP_VERSION_MINOR 1
#define CBHTTP_VERSION_PATCH 0
#define CBHTTP_VERSION_NUM                                                                         \
    ((CBHTTP_VERSION_MAJOR << 16) | (CBHTTP_VERSION_MINOR << 8) | CBHTTP_VERSION_PATCH)

/* The version of the library actually loaded, as "MAJOR.MINOR.PATCH". */
CB_EXPORT const char *cbhttp_version(void);

/*
 * Error codes. The list only ever grows at its end: values are never
 * renumbered. Each entry carries its value, so that moving one is a compile
 * error (src/errors.c checks every value against its place). One X-macro
 * list produces the enum and cb_strerror().
 */
#define CB_ERRNO_MAP(X)                                                                            \
    X(OK, 0, "success")                                                                            \
    X(ERR_CIRCUIT_OPEN, 1, "circuit open: call rejected without network I/O")                      \
    X(ERR_INVALID, 2, "invalid argument")                                                          \
    X(ERR_NOMEM, 3, "out of memory")                                                               \
    X(ERR_CONNECT, 4, "could not connect")                                                         \
    X(ERR_TIMEOUT, 5, "timed out")                                                                 \
    X(ERR_TRANSPORT, 6, "transport error")                                                         \
    X(ERR_HTTP, 7, "HTTP error status")                                                            \
    X(ERR_TOO_LARGE, 8, "response too large")                                                      \
    X(ERR_PARSE, 9, "body is not valid JSON")                                                      \
    X(ERR_CACHE_MISS, 10, "not in cache (only-if-cached)")                                         \
    X(ERR_CANCELLED, 11, "cancelled")                                                              \
    X(ERR_OVERLOADED, 12, "overloaded: refused by a concurrency or rate limit")

typedef enum cb_err {
#define CB_ERR_GEN_(name, value, msg) CB_##name = value,
    CB_ERRNO_MAP(CB_ERR_GEN_)
#undef CB_ERR_GEN_
        CB_ERR_COUNT_ /* not an error: the number of codes */
} cb_err;

/* A static, human-readable string for err. Never NULL, also for values
 * outside the enum. Thread-safe. */
CB_EXPORT const char *cb_strerror(cb_err err);

/*
 * Allocator hook. Every allocation the library makes (and those of cJSON
 * objects it creates) goes through these four functions. Install it before
 * any other call, from one thread; NULL restores the C library's functions.
 * realloc and free must accept NULL. Returns CB_ERR_INVALID if any of the
 * four is NULL.
 *
 * NOTE: cJSON has one set of hooks per process, so this also routes the
 * host program's own cJSON allocations through a (cJSON_InitHooks) --
 * cbhttp hands cJSON objects to the caller (api_response_json) and receives
 * them (api_request_json), and they must be freed by the allocator that
 * made them. A program that installs its own cJSON hooks should install
 * them through this function instead. libcurl's allocations are not
 * routed (libcurl only offers that at its global initialisation).
 */
typedef struct cb_allocator {
    void *(*malloc_fn)(size_t size);
    void *(*calloc_fn)(size_t n, size_t size);
    void *(*realloc_fn)(void *ptr, size_t size);
    void (*free_fn)(void *ptr);
} cb_allocator;

CB_EXPORT cb_err cb_set_allocator(const cb_allocator *a);

/* Frees memory the library handed to the caller as a plain buffer (the
 * strings returned by the metrics exporters, for example). NULL is fine. */
CB_EXPORT void cb_free(void *ptr);

/* Milliseconds on a monotonic clock. The breaker and client accept one of
 * these so that tests can drive time by hand. */
typedef uint64_t (*cb_clock_fn)(void *user_data);

/* The default clock: CLOCK_MONOTONIC_COARSE in milliseconds. Its resolution
 * is one kernel tick (1-4 ms); it costs a few ns where CLOCK_MONOTONIC costs
 * ~25 ns, which matters on the breaker's fast path. user_data is ignored. */
CB_EXPORT uint64_t cb_clock_monotonic_ms(void *user_data);

#ifdef __cplusplus
}
#endif
#endif /* CBHTTP_COMMON_H */
