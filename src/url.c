/*
 * URL handling. This file is the line of defence that keeps a request on the
 * host the caller named: every URL libcurl sees is rebuilt here from parts
 * that were checked one byte at a time, never passed through as given.
 *
 * The rules are stricter than RFC 3986 where the RFC leaves room for
 * confusion between parsers (libcurl, proxies, the server): no userinfo, no
 * backslash, no raw non-ASCII byte, no numeric host that a resolver would
 * read differently from how it looks, no dot segment that could climb out of
 * the base URL's prefix.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "url.h"

/* "https://" + 255 host bytes + "[]" + ":65535" fits easily. */
#define URL_ROOT_MAX 300
#define URL_HOST_MAX 255

/* The parts of an absolute URL's front, pointing into the parsed string. */
typedef struct url_parts {
    bool          https;
    bool          ipv6;
    const char   *host; /* without the brackets of an IPv6 literal */
    size_t        host_len;
    uint16_t      port; /* the effective port: default filled in */
    const char   *rest; /* what follows the authority: "", "/...", "?..." or "#..." */
    unsigned char v6[16];
} url_parts;

static cb_err url_fail(char *err, size_t err_size, const char *msg)
{
    if (err && err_size)
        snprintf(err, err_size, "%s", msg);
    return CB_ERR_INVALID;
}

static bool url_is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static bool url_is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static bool url_is_alnum(unsigned char c)
{
    return url_is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

static char url_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c; }

/*
 * A host made of digits and dots (or whose last label looks numeric) is read
 * by inet_aton-style resolvers as an IPv4 address, with octal ("010") and hex
 * ("0x7f") parts and fewer than four parts allowed. Only the one unambiguous
 * spelling is accepted: four decimal parts 0-255 without leading zeros.
 */
static bool url_ipv4_strict(const char *h, size_t n)
{
    size_t   i = 0;
    unsigned parts = 0;

    while (parts < 4) {
        unsigned v = 0;
        size_t   start = i;

        while (i < n && url_is_digit((unsigned char)h[i]) && i - start < 3)
            v = v * 10 + (unsigned)(h[i++] - '0');
        if (i == start || v > 255 || (i - start > 1 && h[start] == '0'))
            return false;
        parts++;
        if (parts < 4) {
            if (i >= n || h[i] != '.')
                return false;
            i++;
        }
    }
    return i == n;
}

/* True when the last label of a reg-name is "numeric" in the WHATWG sense
 * (all digits, or 0x followed by hex digits): such a host is an IPv4
 * address to most resolvers and must pass url_ipv4_strict. h[0..n) is not
 * empty and has no empty label (url_check_host), so the last label is not
 * empty either, once a final dot is dropped. */
static bool url_ends_numeric(const char *h, size_t n)
{
    size_t start, i;

    if (h[n - 1] == '.')
        n--; /* "1.2.3.4." still resolves as an address */
    start = n;
    while (start > 0 && h[start - 1] != '.')
        start--;
    if (n - start >= 2 && h[start] == '0' && (h[start + 1] | 0x20) == 'x') {
        for (i = start + 2; i < n; i++)
            if (!url_is_hex((unsigned char)h[i]))
                return false;
        return true;
    }
    for (i = start; i < n; i++)
        if (!url_is_digit((unsigned char)h[i]))
            return false;
    return true;
}

/* Checks a reg-name or IPv4 host; *msg says why it is refused. */
static bool url_check_host(const char *h, size_t n, const char **msg)
{
    size_t i;

    if (n == 0) {
        *msg = "empty host";
        return false;
    }
    if (n > URL_HOST_MAX) {
        *msg = "host name too long";
        return false;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];

        if (c == '%') {
            *msg = "percent-encoding is not allowed in the host";
            return false;
        }
        if (!url_is_alnum(c) && c != '-' && c != '.' && c != '_' && c != '~') {
            *msg = "invalid character in the host";
            return false;
        }
        /* Empty labels ("a..b", ".a") mean nothing to DNS. */
        if (c == '.' && (i == 0 || h[i - 1] == '.')) {
            *msg = "empty label in the host";
            return false;
        }
    }
    if (url_ends_numeric(h, n) && !url_ipv4_strict(h, n)) {
        *msg = "numeric host is not a dotted-quad IPv4 address";
        return false;
    }
    return true;
}

/*
 * Parses "scheme://authority" at the front of s into p. The authority ends at
 * the first '/', '?', '#' or the end, exactly where libcurl ends it; every
 * byte inside is checked, so '@' (userinfo) or '\' can never make libcurl see
 * another host than the one checked here.
 */
static bool url_parse_front(const char *s, url_parts *p, const char **msg)
{
    const char *a, *end, *h, *hend, *q;

    memset(p, 0, sizeof(*p));
    if (strncasecmp(s, "http://", 7) == 0) {
        a = s + 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        a = s + 8;
        p->https = true;
    } else {
        *msg = "URL must start with http:// or https://";
        return false;
    }
    for (end = a; *end && *end != '/' && *end != '?' && *end != '#'; end++) {
        unsigned char c = (unsigned char)*end;

        if (c == '@') {
            *msg = "userinfo ('@') is not allowed in the URL";
            return false;
        }
        if (c == '\\') {
            *msg = "backslash is not allowed in the URL";
            return false;
        }
        if (c <= 0x20 || c >= 0x7f) {
            *msg = "control character, space or non-ASCII byte in the host";
            return false;
        }
    }
    if (a[0] == '[') {
        char lit[64];

        h = a + 1;
        hend = memchr(h, ']', (size_t)(end - h));
        if (!hend) {
            *msg = "unterminated IPv6 literal";
            return false;
        }
        if ((size_t)(hend - h) >= sizeof(lit) || hend == h) {
            *msg = "invalid IPv6 address";
            return false;
        }
        memcpy(lit, h, (size_t)(hend - h));
        lit[hend - h] = '\0';
        /* inet_pton refuses zone IDs ("%eth0") and IPvFuture, both on
         * purpose: neither has one meaning across resolvers. */
        if (inet_pton(AF_INET6, lit, p->v6) != 1) {
            *msg = "invalid IPv6 address";
            return false;
        }
        p->ipv6 = true;
        q = hend + 1;
        if (q != end && *q != ':') {
            *msg = "invalid character after the IPv6 address";
            return false;
        }
    } else {
        h = a;
        hend = memchr(a, ':', (size_t)(end - a));
        if (!hend)
            hend = end;
        if (!url_check_host(h, (size_t)(hend - h), msg))
            return false;
        q = hend;
    }
    p->host = h;
    p->host_len = (size_t)(hend - h);
    p->port = p->https ? 443 : 80;
    if (q != end) {
        unsigned v = 0;
        size_t   digits = 0;

        /* q points at ':'; leading zeros are fine, the value is rewritten. */
        for (q++; q < end; q++, digits++) {
            if (!url_is_digit((unsigned char)*q) || digits >= 5) {
                *msg = "port must be a number from 1 to 65535";
                return false;
            }
            v = v * 10 + (unsigned)(*q - '0');
        }
        if (digits == 0 || v == 0 || v > 65535) {
            *msg = "port must be a number from 1 to 65535";
            return false;
        }
        p->port = (uint16_t)v;
    }
    p->rest = end;
    return true;
}

/* Writes the canonical host of p (lower-cased; IPv6 in inet_ntop form inside
 * brackets) to dst, which has URL_ROOT_MAX bytes. Returns its length. */
static size_t url_put_host(char *dst, const url_parts *p)
{
    size_t i;

    if (p->ipv6) {
        char txt[INET6_ADDRSTRLEN];

        /* Cannot fail: AF_INET6, and room for the longest form. */
        inet_ntop(AF_INET6, p->v6, txt, sizeof(txt));
        return (size_t)snprintf(dst, URL_ROOT_MAX, "[%s]", txt);
    }
    for (i = 0; i < p->host_len; i++)
        dst[i] = url_lower(p->host[i]);
    return p->host_len;
}

/* "scheme://" into dst; its length. Every call builds two of these, so no
 * snprintf: it cost a tenth of a call's own work. */
static size_t url_put_scheme(char *dst, bool https)
{
    static const char http[] = "http://", https_[] = "https://";

    if (https) {
        memcpy(dst, https_, sizeof(https_) - 1);
        return sizeof(https_) - 1;
    }
    memcpy(dst, http, sizeof(http) - 1);
    return sizeof(http) - 1;
}

/* ":port" into dst; its length. A uint16_t has at most five digits. */
static size_t url_put_port(char *dst, uint16_t port)
{
    char   digits[5];
    size_t n = 0, i;

    do
        digits[n++] = (char)('0' + port % 10);
    while ((port /= 10) != 0);
    dst[0] = ':';
    for (i = 0; i < n; i++)
        dst[1 + i] = digits[n - 1 - i];
    return n + 1;
}

/* "scheme://host:port", the port always written: the origin key. */
static size_t url_put_origin(char *dst, const url_parts *p)
{
    size_t n = url_put_scheme(dst, p->https);

    n += url_put_host(dst + n, p);
    n += url_put_port(dst + n, p->port);
    return n;
}

/* "scheme://host[:port]", the port only when not the scheme's default. */
static size_t url_put_root(char *dst, const url_parts *p)
{
    size_t n = url_put_scheme(dst, p->https);

    n += url_put_host(dst + n, p);
    if (p->port != (p->https ? 443u : 80u))
        n += url_put_port(dst + n, p->port);
    return n;
}

/* True when s[0..n) is "." or "..", each dot possibly written "%2e". */
static bool url_is_dot_segment(const char *s, size_t n)
{
    size_t i = 0;
    int    dots = 0;

    while (i < n) {
        if (s[i] == '.') {
            i++;
        } else if (n - i >= 3 && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] | 0x20) == 'e') {
            i += 3;
        } else {
            return false;
        }
        dots++;
    }
    return dots == 1 || dots == 2;
}

/*
 * Checks a path (with its query when allow_query) byte by byte. *len gets
 * its length. The dot-segment test runs on the path part only: ".." in a
 * query string is data.
 */
/* Letters, digits and "-._~": never special in a path (dot segments are
 * checked at each '/'). */
static bool url_plain(unsigned char c)
{
    return (unsigned)((c | 0x20) - 'a') < 26u || (unsigned)(c - '0') < 10u || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static bool url_check_path(const char *s, bool allow_query, size_t *len, const char **msg)
{
    size_t i, seg = 0;
    bool   in_query = false;

    for (i = 0;; i++) {
        unsigned char c = (unsigned char)s[i];

        /* Most bytes of a path are letters and digits: skip them cheaply.
         * This loop runs on every call, fresh cache hits included. */
        if (url_plain(c))
            continue;
        if (!in_query && (c == '/' || c == '?' || c == '\0')) {
            if (i > seg && url_is_dot_segment(s + seg, i - seg)) {
                *msg = "dot segments ('.' or '..') are not allowed in the path";
                return false;
            }
            seg = i + 1;
        }
        if (c == '\0')
            break;
        if (c < 0x20 || c == 0x7f) {
            *msg = "control character (CR, LF, ...) in the path";
            return false;
        }
        if (c >= 0x80) {
            *msg = "non-ASCII byte in the path: percent-encode it";
            return false;
        }
        switch (c) {
        case ' ':
            *msg = "space in the path: percent-encode it as %20";
            return false;
        case '\\':
            *msg = "backslash is not allowed in the path";
            return false;
        case '#':
            *msg = "fragment ('#') is not allowed";
            return false;
        case '@':
            *msg = "'@' is not allowed in the path: percent-encode it as %40";
            return false;
        case '%':
            if (!url_is_hex((unsigned char)s[i + 1]) || !url_is_hex((unsigned char)s[i + 2])) {
                *msg = "invalid percent-encoding in the path";
                return false;
            }
            break;
        case '?':
            if (!allow_query) {
                *msg = "query ('?') is not allowed in the base URL";
                return false;
            }
            in_query = true;
            break;
        default:
            break;
        }
    }
    if (i >= CBH_URL_MAX) {
        *msg = "URL too long";
        return false;
    }
    *len = i;
    return true;
}

cb_err cbh_base_parse(const char *base_url, cbh_base *out, char *err, size_t err_size)
{
    url_parts   p;
    const char *msg = NULL;
    char        root[URL_ROOT_MAX], origin[URL_ROOT_MAX];
    size_t      plen = 0, rlen, olen;

    if (!out)
        return url_fail(err, err_size, "no output");
    memset(out, 0, sizeof(*out));
    if (!base_url)
        return url_fail(err, err_size, "no base URL");
    if (!url_parse_front(base_url, &p, &msg))
        return url_fail(err, err_size, msg);
    if (*p.rest == '?')
        return url_fail(err, err_size, "query ('?') is not allowed in the base URL");
    if (*p.rest == '#')
        return url_fail(err, err_size, "fragment ('#') is not allowed");
    if (!url_check_path(p.rest, false, &plen, &msg))
        return url_fail(err, err_size, msg);
    /* "http://h/api/" and "http://h/api" are the same base: requests add
     * their own leading '/'. */
    while (plen > 0 && p.rest[plen - 1] == '/')
        plen--;
    olen = url_put_origin(origin, &p);
    rlen = url_put_root(root, &p);
    out->origin = cbh_strndup(origin, olen);
    out->prefix = cbh_strndup(p.rest, plen);
    out->url_prefix = cbh_malloc(rlen + plen + 1);
    if (!out->origin || !out->prefix || !out->url_prefix) {
        cbh_base_free(out);
        return CB_ERR_NOMEM;
    }
    memcpy(out->url_prefix, root, rlen);
    memcpy(out->url_prefix + rlen, p.rest, plen);
    out->url_prefix[rlen + plen] = '\0';
    out->origin_len = olen;
    out->url_prefix_len = rlen + plen;
    out->https = p.https;
    return CB_OK;
}

void cbh_base_free(cbh_base *b)
{
    if (!b)
        return;
    cbh_free(b->origin);
    cbh_free(b->prefix);
    cbh_free(b->url_prefix);
    memset(b, 0, sizeof(*b));
}

/* Lays "origin\0url\0" out in u's inline buffer or, when too long, on the
 * heap, and points u's fields at them. url is front + tail. */
static cb_err url_assemble(cbh_url *u, const char *origin, size_t olen, const char *front,
                           size_t flen, const char *mid, size_t mlen, const char *tail, size_t tlen)
{
    size_t total = olen + 1 + flen + mlen + tlen + 1;
    char  *dst = u->buf_;

    if (total > sizeof(u->buf_)) {
        if (!(u->heap_ = cbh_malloc(total)))
            return CB_ERR_NOMEM;
        dst = u->heap_;
    }
    memcpy(dst, origin, olen);
    dst[olen] = '\0';
    u->origin = dst;
    u->origin_len = olen;
    dst += olen + 1;
    memcpy(dst, front, flen);
    memcpy(dst + flen, mid, mlen);
    memcpy(dst + flen + mlen, tail, tlen);
    dst[flen + mlen + tlen] = '\0';
    u->url = dst;
    return CB_OK;
}

cb_err cbh_url_resolve(const cbh_base *base, const char *path, cbh_url *out, char *err,
                       size_t err_size)
{
    url_parts   p;
    const char *msg = NULL;
    size_t      len = 0;
    char        root[URL_ROOT_MAX], origin[URL_ROOT_MAX];
    size_t      rlen, olen;
    cb_err      rc;

    if (!out)
        return url_fail(err, err_size, "no output");
    out->url = out->origin = NULL;
    out->origin_len = 0;
    out->heap_ = NULL;
    out->https = false;
    if (!path)
        return url_fail(err, err_size, "no path");

    if (base && base->origin) {
        /* Only a path may follow a base: "//host", "\host", "http://..." and
         * "@host" are all refused here or by url_check_path below. */
        if (path[0] != '/')
            return url_fail(err, err_size, "path must start with '/'");
        if (path[1] == '/')
            return url_fail(err, err_size, "path must not start with '//'");
        if (!url_check_path(path, true, &len, &msg))
            return url_fail(err, err_size, msg);
        if (base->url_prefix_len + len > CBH_URL_MAX)
            return url_fail(err, err_size, "URL too long");
        rc = url_assemble(out, base->origin, base->origin_len, base->url_prefix,
                          base->url_prefix_len, "", 0, path, len);
        if (rc != CB_OK)
            return rc;
        out->https = base->https;
        return CB_OK;
    }

    if (!url_parse_front(path, &p, &msg))
        return url_fail(err, err_size, msg);
    if (*p.rest == '#')
        return url_fail(err, err_size, "fragment ('#') is not allowed");
    if (!url_check_path(p.rest, true, &len, &msg))
        return url_fail(err, err_size, msg);
    olen = url_put_origin(origin, &p);
    rlen = url_put_root(root, &p);
    /* An empty path or a bare query gets the "/" every request line needs,
     * so that "http://h" and "http://h/" are one URL (one cache key). */
    rc = url_assemble(out, origin, olen, root, rlen, "/", *p.rest == '/' ? 0 : 1, p.rest, len);
    if (rc != CB_OK)
        return rc;
    out->https = p.https;
    return CB_OK;
}

void cbh_url_release(cbh_url *u)
{
    if (!u)
        return;
    cbh_free(u->heap_);
    u->heap_ = NULL;
    u->url = u->origin = NULL;
    u->origin_len = 0;
}

/* The rest of a redirect target may hold a fragment and '@' (it cannot move
 * the host once the authority has ended), but nothing libcurl or a server
 * could read as a line break or another delimiter. */
static bool url_rest_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c <= 0x20 || c >= 0x7f || c == '\\')
            return false;
    }
    return true;
}

bool cbh_url_same_origin(const char *a, const char *b)
{
    url_parts   pa, pb;
    const char *msg;
    size_t      i;

    if (!a || !b || !url_parse_front(a, &pa, &msg) || !url_parse_front(b, &pb, &msg))
        return false;
    if (!url_rest_ok(pa.rest) || !url_rest_ok(pb.rest))
        return false;
    if (pa.https != pb.https || pa.port != pb.port || pa.ipv6 != pb.ipv6)
        return false;
    if (pa.ipv6)
        return memcmp(pa.v6, pb.v6, sizeof(pa.v6)) == 0;
    if (pa.host_len != pb.host_len)
        return false;
    for (i = 0; i < pa.host_len; i++)
        if (url_lower(pa.host[i]) != url_lower(pb.host[i]))
            return false;
    return true;
}
