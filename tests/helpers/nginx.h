/*
 * A private nginx for tests and benchmarks: started as the current user
 * (root in CI) in a fresh temporary directory with a generated config, on
 * ephemeral loopback ports, in the foreground (daemon off, no master
 * process), and stopped by tu_nginx_stop, which also removes the directory.
 *
 * It listens for plain HTTP/1.1 with keep-alive and, when given a
 * certificate, also for HTTPS with HTTP/2 (ALPN h2, http/1.1). Both
 * listeners serve the same locations:
 *
 *   /ok               200 {"ok":true} (application/json)
 *   /static/hello.json   a small static file (the same JSON, from disk)
 *   /proto            200, body and X-Proto header: $server_protocol
 *                     ("HTTP/1.1", "HTTP/2.0")
 *   /conn             200, body "$connection $connection_requests" and an
 *                     X-Connection header: the connection's serial number,
 *                     equal for every request (every h2 stream) it carries;
 *                     X-Proto as above
 *   /sleep/{s}        (with the echo module, which nginx-light ships) answers
 *                     200 "slept" after s seconds, a decimal (0.5)
 *
 * Requests are logged with "$connection $connection_requests
 * $server_protocol $request" to tu_nginx_access_log() when asked for.
 *
 * Plain POSIX, no Check: benchmarks use it too. Not thread-safe; start and
 * stop it from one thread, which must outlive it (nginx gets SIGTERM when
 * that thread ends). Stop it in the process that started it: a Check test
 * forked after the start must not stop it.
 */
#ifndef CBH_TU_NGINX_H
#define CBH_TU_NGINX_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tu_nginx tu_nginx;

typedef struct tu_nginx_opts {
    /* PEM files of the server certificate (chain) and its key, both set:
     * an HTTPS + HTTP/2 listener too. nginx reads them at start;
     * tests/helpers/tlsgen.h makes them (server.pem, server.key). */
    const char *cert_file;
    const char *key_file;
    unsigned    worker_connections; /* 0 = 1024; the fd limit is raised to match */
    unsigned    max_streams;        /* http2_max_concurrent_streams; 0 = nginx's 128 */
    bool        access_log;         /* write access.log (see above) */
} tu_nginx_opts;

/* The nginx binary that would be used: $CBH_NGINX, else /usr/sbin/nginx,
 * else the first "nginx" on PATH; NULL when there is none. */
const char *tu_nginx_binary(void);

/* Starts one. opts may be NULL (plain HTTP only). Returns NULL when nginx
 * is missing or does not come up, with the reason in why (may be NULL). */
tu_nginx *tu_nginx_start(const tu_nginx_opts *opts, char *why, size_t why_len);

/* "http://127.0.0.1:PORT", valid until tu_nginx_stop. */
const char *tu_nginx_url(const tu_nginx *n);
/* "https://127.0.0.1:PORT" (h2), or NULL without a certificate. */
const char *tu_nginx_tls_url(const tu_nginx *n);
/* The path of access.log (empty until the first request), or NULL. */
const char *tu_nginx_access_log(const tu_nginx *n);
/* Whether /sleep/{s} is served (the echo module was found). */
bool tu_nginx_has_sleep(const tu_nginx *n);

/* Stops nginx (SIGTERM, then SIGKILL after 5 s), removes its directory
 * (kept, for its logs, when the environment has CBH_NGINX_KEEP) and frees
 * n. NULL is fine. */
void tu_nginx_stop(tu_nginx *n);

#endif
