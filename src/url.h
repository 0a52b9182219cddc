/* URL handling: parsing the base URL, joining a request path onto it, and
 * deriving the origin key (scheme, lower-cased host, port with the default
 * filled in) that selects a breaker. Nothing in a path may change the host. */
#ifndef CBH_URL_H
#define CBH_URL_H

#include "cbhttp.h"

/* A parsed base URL: "http(s)://host[:port][/prefix]". */
typedef struct cbh_base {
    char *origin; /* "http://host:port", host lower-cased, port always present */
    char *prefix; /* path prefix without trailing '/', "" if none */
    bool  https;
} cbh_base;

/* Parses base_url. CB_ERR_INVALID (with detail in err) for anything but
 * http/https with a host, an optional port 1-65535 and an optional path;
 * userinfo, query, fragment, control characters, spaces and backslashes are
 * refused. CB_ERR_NOMEM. */
cb_err cbh_base_parse(const char *base_url, cbh_base *out, char *err, size_t err_size);
void   cbh_base_free(cbh_base *b);

/* A resolved request URL. Short URLs live in buf_ without allocation. */
typedef struct cbh_url {
    const char *url;    /* the full URL handed to libcurl */
    const char *origin; /* its origin key, "scheme://host:port" */
    size_t      origin_len;
    bool        https;
    char       *heap_;
    char        buf_[512];
} cbh_url;

/*
 * Resolves path against base (or, with base NULL, parses path as an absolute
 * http/https URL). With a base, path must start with a single '/'; anything
 * that could change the host ("//x", "\\", "@" before the path, an absolute
 * URL), control characters, spaces, CR/LF, and '#' fragments are
 * CB_ERR_INVALID with detail in err. Percent-encoded bytes pass unchanged.
 * On success out must be released with cbh_url_release.
 */
cb_err cbh_url_resolve(const cbh_base *base, const char *path, cbh_url *out,
                       char *err, size_t err_size);
void   cbh_url_release(cbh_url *u);

/* True when two URLs have the same origin (for redirects). */
bool cbh_url_same_origin(const char *a, const char *b);

#endif
