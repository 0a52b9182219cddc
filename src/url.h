/* URL handling: parsing the base URL, joining a request path onto it, and
 * deriving the origin key (scheme, lower-cased host, port with the default
 * filled in) that selects a breaker. Nothing in a path may change the host. */
#ifndef CBH_URL_H
#define CBH_URL_H

#include "cbhttp.h"

/* Longest URL accepted (path and query included), in bytes. */
#define CBH_URL_MAX (1024u * 1024u)

/* A parsed base URL: "http(s)://host[:port][/prefix]". */
typedef struct cbh_base {
    char *origin; /* "http://host:port", host lower-cased, port always present */
    char *prefix; /* path prefix without trailing '/', "" if none */
    bool  https;
    /* The canonical "scheme://host[:port]" + prefix that every request
     * URL starts with (scheme and host lower-cased, the port written only
     * when it is not the scheme's default, IPv6 in inet_ntop form), and the
     * lengths of origin and of url_prefix. */
    char  *url_prefix;
    size_t origin_len;
    size_t url_prefix_len;
} cbh_base;

/* Parses base_url. CB_ERR_INVALID (with detail in err) for anything but
 * http/https with a host, an optional port 1-65535 and an optional path;
 * userinfo, query, fragment, control characters, spaces and backslashes are
 * refused. CB_ERR_NOMEM. The host is a reg-name (letters, digits, "-._~"),
 * a dotted-quad IPv4 address (a host whose last label is numeric must be one:
 * "0x7f.1" or "010.0.0.1" are refused because resolvers read them as other
 * addresses) or a bracketed IPv6 address without zone. The prefix follows
 * the path rules of cbh_url_resolve (no dot segments). On failure *out is
 * zeroed; cbh_base_free on it is harmless. */
cb_err cbh_base_parse(const char *base_url, cbh_base *out, char *err, size_t err_size);
void   cbh_base_free(cbh_base *b);

/* A resolved request URL. Short URLs live in buf_ without allocation; url
 * and origin then point into the struct itself, so it must not be copied
 * by value once resolved (resolve into its final place). */
typedef struct cbh_url {
    const char *url;    /* the full URL handed to libcurl */
    const char *origin; /* its origin key, "scheme://host:port" */
    size_t      origin_len;
    bool        https;
    char       *heap_;
    char        buf_[384];
} cbh_url;

/*
 * Resolves path against base (or, with base NULL, parses path as an absolute
 * http/https URL). With a base, path must start with a single '/'; anything
 * that could change the host ("//x", "\\", "@" before the path, an absolute
 * URL), control characters, spaces, CR/LF, and '#' fragments are
 * CB_ERR_INVALID with detail in err. Percent-encoded bytes pass unchanged.
 * On success out must be released with cbh_url_release.
 *
 * The path rules in full (path and query alike): bytes below 0x20, 0x7f and
 * bytes >= 0x80 (callers percent-encode), space, backslash, '#', '@'
 * (anywhere, also in the query: the contract lists it; send %40) and a '%'
 * not followed by two hex digits are refused. Percent-encoded bytes are data
 * and pass unchanged, "%0d%0a" and "%40" included: libcurl never decodes
 * them, so they cannot split the request or move the host. Dot segments
 * ("." or "..", also written "%2e") in the path part are refused, so that a
 * path can never climb out of the base URL's prefix. A URL longer than
 * CBH_URL_MAX is CB_ERR_INVALID. Without a base the URL is rebuilt from its
 * parsed parts (canonical scheme, host and port, "/" added before a bare
 * query or an empty path), so what libcurl connects to is exactly the host
 * of the origin key. Short URLs do not allocate. out is left safe to pass
 * to cbh_url_release also on failure. Thread-safe (base is only read).
 */
cb_err cbh_url_resolve(const cbh_base *base, const char *path, cbh_url *out, char *err,
                       size_t err_size);
void   cbh_url_release(cbh_url *u);

/* True when two absolute URLs have the same origin (for redirects): the
 * same scheme, host (case-insensitive, IPv6 compared as addresses) and port,
 * default ports filled in. The authorities are parsed with the strict rules
 * of cbh_base_parse and the rest must hold no control character, space,
 * backslash or non-ASCII byte; anything invalid gives false. Never
 * allocates. */
bool cbh_url_same_origin(const char *a, const char *b);

#endif
