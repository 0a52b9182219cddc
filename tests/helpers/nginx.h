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
 * $server_protocol \"$request\" $status" (then log_extra) to
 * tu_nginx_access_log() when asked for.
 *
 * A suite may add its own locations (server_conf, e.g. static files under
 * cache headers) and files under the document root (tu_nginx_put_file;
 * /static/ serves root/static/ as it is).
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
    /* nginx config text added inside the server block after the built-in
     * locations (say, "location /c/ { expires 60s; }"); NULL = none. The
     * document root is tu_nginx_root(). */
    const char *server_conf;
    /* Appended, after a space, to every access.log line: nginx variables
     * such as "inm=\"$http_if_none_match\"" (no single quote: the format
     * is a single-quoted nginx string; nginx writes a '"' inside a value
     * as \x22 and an empty value as -); NULL = none. */
    const char *log_extra;
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

/* The document root (the directory "root" names), valid until
 * tu_nginx_stop. */
const char *tu_nginx_root(const tu_nginx *n);

/* Writes len bytes of body to root/path (path relative, its directories
 * made as needed), replacing the file, with its modification time set to
 * mtime (0 = now): nginx's ETag and Last-Modified come from the size and
 * mtime. nginx sees the new file at its next request. */
bool tu_nginx_put_file(const tu_nginx *n, const char *path, const void *body, size_t len,
                       long long mtime);
/* Removes root/path; true when it is gone (also when it never was). */
bool tu_nginx_remove_file(const tu_nginx *n, const char *path);

/* How many access.log lines contain needle (say "\"GET /c/a HTTP/1.1\"
 * 304"), or -1 without an access log. It first makes one request of its own
 * (GET /ok) and waits for the answer: nginx runs as one process and writes
 * a request's line before it reads the next request, so every response a
 * caller has received by then is counted. */
long tu_nginx_log_count(const tu_nginx *n, const char *needle);
/* Copies the last line containing needle (without its newline) to out;
 * false when there is none. Synchronises as tu_nginx_log_count does. */
bool tu_nginx_log_last(const tu_nginx *n, const char *needle, char *out, size_t len);

/* Stops nginx (SIGTERM, then SIGKILL after 5 s), removes its directory
 * (kept, for its logs, when the environment has CBH_NGINX_KEEP) and frees
 * n. NULL is fine. */
void tu_nginx_stop(tu_nginx *n);

#endif
