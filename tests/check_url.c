/* URL parsing, joining and origin keys: the rules that keep every request on
 * the host the caller named. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

#include "helpers/failalloc.h"
#include "helpers/testutil.h"

/* ---- Base URLs ----------------------------------------------------------- */

typedef struct base_case {
    const char *in;
    const char *origin; /* NULL = must be refused */
    const char *prefix;
    const char *url_prefix;
} base_case;

static const base_case bases[] = {
    { "http://example.com", "http://example.com:80", "", "http://example.com" },
    { "https://example.com", "https://example.com:443", "", "https://example.com" },
    { "HTTP://Example.COM", "http://example.com:80", "", "http://example.com" },
    { "HtTpS://API.Example.com:8443/V1/", "https://api.example.com:8443", "/V1",
      "https://api.example.com:8443/V1" },
    { "http://example.com:80", "http://example.com:80", "", "http://example.com" },
    { "http://example.com:0080/", "http://example.com:80", "", "http://example.com" },
    { "https://example.com:80", "https://example.com:80", "", "https://example.com:80" },
    { "http://127.0.0.1:8080", "http://127.0.0.1:8080", "", "http://127.0.0.1:8080" },
    { "http://[::1]:8080", "http://[::1]:8080", "", "http://[::1]:8080" },
    { "http://[0:0:0:0:0:0:0:1]/x", "http://[::1]:80", "/x", "http://[::1]/x" },
    { "http://[FE80::AB]", "http://[fe80::ab]:80", "", "http://[fe80::ab]" },
    { "http://h/api//", "http://h:80", "/api", "http://h/api" },
    { "http://h/", "http://h:80", "", "http://h" },
    { "http://my_host.local~x:1", "http://my_host.local~x:1", "", "http://my_host.local~x:1" },
    { "http://h:65535", "http://h:65535", "", "http://h:65535" },
    { "http://h/a%20b", "http://h:80", "/a%20b", "http://h/a%20b" },
    { "http://example.com./", "http://example.com.:80", "", "http://example.com." },
    /* A last label that only looks numeric is a name. */
    { "http://a.0b", "http://a.0b:80", "", "http://a.0b" },
    { "http://a.0x1g/", "http://a.0x1g:80", "", "http://a.0x1g" },
    /* Refused. */
    { NULL, NULL, NULL, NULL },
    { "", NULL, NULL, NULL },
    { "example.com", NULL, NULL, NULL },
    { "ftp://example.com", NULL, NULL, NULL },
    { "file:///etc/passwd", NULL, NULL, NULL },
    { "gopher://h", NULL, NULL, NULL },
    { "http:/h", NULL, NULL, NULL },
    { "http://", NULL, NULL, NULL },
    { "http:///path", NULL, NULL, NULL },
    { "http://:80", NULL, NULL, NULL },
    { "http://user@h", NULL, NULL, NULL },
    { "http://user:pw@h/", NULL, NULL, NULL },
    { "http://h@evil", NULL, NULL, NULL },
    { "http://h/path?q=1", NULL, NULL, NULL },
    { "http://h?q", NULL, NULL, NULL },
    { "http://h/#frag", NULL, NULL, NULL },
    { "http://h#frag", NULL, NULL, NULL },
    { "http://h:0", NULL, NULL, NULL },
    { "http://h:65536", NULL, NULL, NULL },
    { "http://h:abc", NULL, NULL, NULL },
    { "http://h:", NULL, NULL, NULL },
    { "http://h:-1", NULL, NULL, NULL },
    { "http://h:123456", NULL, NULL, NULL },
    { "http://h:80:81", NULL, NULL, NULL },
    { "http://h h", NULL, NULL, NULL },
    { "http://h\tx", NULL, NULL, NULL },
    { "http://h\r\nHost: evil", NULL, NULL, NULL },
    { "http://h\\evil", NULL, NULL, NULL },
    { "http://evil\\@good", NULL, NULL, NULL },
    { "http://h%2eevil", NULL, NULL, NULL },
    { "http://h/a b", NULL, NULL, NULL },
    { "http://h/a\\b", NULL, NULL, NULL },
    { "http://h/../x", NULL, NULL, NULL },
    { "http://h/a/./x", NULL, NULL, NULL },
    { "http://exa\xc3\xa9mple.com", NULL, NULL, NULL },
    { "http://[::1", NULL, NULL, NULL },
    { "http://[::1]x", NULL, NULL, NULL },
    { "http://[fe80::1%25eth0]", NULL, NULL, NULL },
    { "http://[v1.x]", NULL, NULL, NULL },
    { "http://[]", NULL, NULL, NULL },
    { "http://[1.2.3.4]", NULL, NULL, NULL },
    { "http://a..b", NULL, NULL, NULL },
    { "http://.a", NULL, NULL, NULL },
    /* Numeric hosts that resolvers read as other addresses. */
    { "http://0x7f.1", NULL, NULL, NULL },
    { "http://2130706433", NULL, NULL, NULL },
    { "http://010.0.0.1", NULL, NULL, NULL },
    { "http://127.1", NULL, NULL, NULL },
    { "http://1.2.3.256", NULL, NULL, NULL },
    { "http://1.2.3.4.5", NULL, NULL, NULL },
    { "http://evil.0x10", NULL, NULL, NULL },
    { "http://a.1.", NULL, NULL, NULL },
    { "http://0x/", NULL, NULL, NULL },
};

/* Why a host is refused, said exactly. */
static const struct {
    const char *in;
    const char *msg;
} host_refusals[] = {
    { "http://a*b", "invalid character in the host" },
    { "http://a!b/", "invalid character in the host" },
    { "http://a,b", "invalid character in the host" },
    { "http://a$b", "invalid character in the host" },
    { "http://a=b:8080/", "invalid character in the host" },
    { "http://a.b..", "empty label in the host" },
    { "http://a.1.", "numeric host is not a dotted-quad IPv4 address" },
    { "http://0x/", "numeric host is not a dotted-quad IPv4 address" },
    { "http://[]", "invalid IPv6 address" },
};

START_TEST(test_host_refusal_messages)
{
    cbh_base b;
    char     err[128] = "";

    ck_assert_int_eq(cbh_base_parse(host_refusals[_i].in, &b, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_str_eq(err, host_refusals[_i].msg);
    ck_assert_ptr_null(b.origin);
}
END_TEST

/* A host of 255 bytes is the longest DNS name; one more is refused. An
 * IPv6 literal longer than any address is refused before it is read. */
START_TEST(test_host_lengths)
{
    char     url[300], err[128] = "";
    cbh_base b;

    memcpy(url, "http://", 7);
    memset(url + 7, 'a', 255);
    url[7 + 255] = '\0';
    ck_assert_int_eq(cbh_base_parse(url, &b, err, sizeof(err)), CB_OK);
    ck_assert_uint_eq(b.origin_len, 7 + 255 + 3);
    cbh_base_free(&b);
    memset(url + 7, 'a', 256);
    url[7 + 256] = '\0';
    ck_assert_int_eq(cbh_base_parse(url, &b, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_str_eq(err, "host name too long");
    /* No room for the message: still refused, nothing written. */
    err[0] = 'x';
    ck_assert_int_eq(cbh_base_parse(url, &b, err, 0), CB_ERR_INVALID);
    ck_assert_int_eq(err[0], 'x');

    strcpy(url, "http://[");
    for (int i = 0; i < 35; i++)
        strcat(url, "1:");
    strcat(url, "1]/");
    ck_assert_int_eq(cbh_base_parse(url, &b, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_str_eq(err, "invalid IPv6 address");
}
END_TEST

START_TEST(test_base_table)
{
    const base_case *t = &bases[_i];
    cbh_base         b;
    char             err[128] = "";
    cb_err           rc = cbh_base_parse(t->in, &b, err, sizeof(err));

    if (!t->origin) {
        ck_assert_msg(rc == CB_ERR_INVALID, "accepted base %s", t->in ? t->in : "(null)");
        ck_assert_msg(err[0] != '\0', "no detail for %s", t->in ? t->in : "(null)");
        ck_assert_ptr_null(b.origin);
        cbh_base_free(&b);
        return;
    }
    ck_assert_msg(rc == CB_OK, "refused base %s: %s", t->in, err);
    ck_assert_str_eq(b.origin, t->origin);
    ck_assert_uint_eq(b.origin_len, strlen(t->origin));
    ck_assert_str_eq(b.prefix, t->prefix);
    ck_assert_str_eq(b.url_prefix, t->url_prefix);
    ck_assert_uint_eq(b.url_prefix_len, strlen(t->url_prefix));
    ck_assert(b.https == (strncmp(t->origin, "https", 5) == 0));
    cbh_base_free(&b);
    cbh_base_free(&b); /* idempotent */
}
END_TEST

START_TEST(test_base_null_out)
{
    ck_assert_int_eq(cbh_base_parse("http://h", NULL, NULL, 0), CB_ERR_INVALID);
    cbh_base_free(NULL);
}
END_TEST

START_TEST(test_base_error_detail)
{
    cbh_base b;
    char     err[128];

    ck_assert_int_eq(cbh_base_parse("http://u@h", &b, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "userinfo"));
    ck_assert_int_eq(cbh_base_parse("http://h:0", &b, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "port"));
    ck_assert_int_eq(cbh_base_parse("ftp://h", &b, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "http"));
    /* A tiny or absent buffer is fine. */
    ck_assert_int_eq(cbh_base_parse("ftp://h", &b, err, 1), CB_ERR_INVALID);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(cbh_base_parse("ftp://h", &b, NULL, 0), CB_ERR_INVALID);
}
END_TEST

/* ---- Paths against a base -------------------------------------------------- */

typedef struct path_case {
    const char *path;
    const char *url; /* NULL = must be refused */
} path_case;

static const path_case paths[] = {
    { "/", "http://api.test:8080/v1/" },
    { "/users", "http://api.test:8080/v1/users" },
    { "/users/42?x=1&y=%20", "http://api.test:8080/v1/users/42?x=1&y=%20" },
    { "/a/b/c/", "http://api.test:8080/v1/a/b/c/" },
    { "/search?q=a/../b", "http://api.test:8080/v1/search?q=a/../b" }, /* query is data */
    { "/search?q=x?y", "http://api.test:8080/v1/search?q=x?y" },
    { "/%0d%0a", "http://api.test:8080/v1/%0d%0a" }, /* encoded CR/LF: data */
    { "/a%0D%0AHost:%20evil", "http://api.test:8080/v1/a%0D%0AHost:%20evil" },
    { "/x%40evil", "http://api.test:8080/v1/x%40evil" }, /* encoded '@': data */
    { "/%2F%2Fevil", "http://api.test:8080/v1/%2F%2Fevil" },
    { "/%00", "http://api.test:8080/v1/%00" },
    { "/a.b/.c/..d/...", "http://api.test:8080/v1/a.b/.c/..d/..." },
    { "/a:b;c=d,e!$&'()*+~-_", "http://api.test:8080/v1/a:b;c=d,e!$&'()*+~-_" },
    { "/?", "http://api.test:8080/v1/?" },
    /* Refused: anything that could move the host or split the request. */
    { NULL, NULL },
    { "", NULL },
    { "users", NULL },
    { "http://evil", NULL },
    { "http://evil/x", NULL },
    { "https://evil:443/", NULL },
    { "HTTP://evil", NULL },
    { "//evil", NULL },
    { "//evil/x", NULL },
    { "///evil", NULL },
    { "/\\evil", NULL },
    { "\\\\evil", NULL },
    { "\\evil", NULL },
    { "/x\\y", NULL },
    { "@evil", NULL },
    { "/x@evil", NULL },
    { "/x?u=a@b", NULL },
    { "?q=1", NULL },
    { "#x", NULL },
    { "/a#frag", NULL },
    { "/a b", NULL },
    { "/a\tb", NULL },
    { "/a\r\nHost: x", NULL },
    { "/a\rb", NULL },
    { "/a\nb", NULL },
    { "/a\x7f", NULL },
    { "/a\x01", NULL },
    { "/caf\xc3\xa9", NULL },
    { "/\xff", NULL },
    { "/%zz", NULL },
    { "/%", NULL },
    { "/%4", NULL },
    { "/a%g0", NULL },
    { "/..", NULL },
    { "/../admin", NULL },
    { "/a/../../admin", NULL },
    { "/a/..", NULL },
    { "/a/..?x", NULL },
    { "/.", NULL },
    { "/./a", NULL },
    { "/%2e%2e/admin", NULL },
    { "/%2E%2e/admin", NULL },
    { "/.%2e/admin", NULL },
    { "/%2e/a", NULL },
};

START_TEST(test_path_table)
{
    const path_case *t = &paths[_i];
    cbh_base         b;
    cbh_url          u;
    char             err[128] = "";
    cb_err           rc;

    ck_assert_int_eq(cbh_base_parse("http://API.test:8080/v1/", &b, NULL, 0), CB_OK);
    rc = cbh_url_resolve(&b, t->path, &u, err, sizeof(err));
    if (!t->url) {
        ck_assert_msg(rc == CB_ERR_INVALID, "accepted path \"%s\" as %s",
                      t->path ? t->path : "(null)", rc == CB_OK ? u.url : "?");
        ck_assert_msg(err[0] != '\0', "no detail for %s", t->path ? t->path : "(null)");
        ck_assert_ptr_null(u.url);
    } else {
        ck_assert_msg(rc == CB_OK, "refused path %s: %s", t->path, err);
        ck_assert_str_eq(u.url, t->url);
        ck_assert_str_eq(u.origin, "http://api.test:8080");
        ck_assert_uint_eq(u.origin_len, strlen(u.origin));
        ck_assert(!u.https);
        ck_assert_ptr_null(u.heap_); /* short: no allocation */
    }
    cbh_url_release(&u);
    cbh_base_free(&b);
}
END_TEST

START_TEST(test_path_details)
{
    cbh_base b;
    cbh_url  u;
    char     err[128];

    ck_assert_int_eq(cbh_base_parse("http://h", &b, NULL, 0), CB_OK);
    ck_assert_int_eq(cbh_url_resolve(&b, "x", &u, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_str_eq(err, "path must start with '/'");
    ck_assert_int_eq(cbh_url_resolve(&b, "//evil", &u, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "//"));
    ck_assert_int_eq(cbh_url_resolve(&b, "/a\r\n", &u, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "control"));
    ck_assert_int_eq(cbh_url_resolve(&b, "/%zz", &u, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "percent"));
    ck_assert_int_eq(cbh_url_resolve(&b, "/../x", &u, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "dot"));
    ck_assert_int_eq(cbh_url_resolve(&b, "/x@y", &u, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "@"));
    /* NULL out and NULL err buffers are handled. */
    ck_assert_int_eq(cbh_url_resolve(&b, "/x", NULL, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_int_eq(cbh_url_resolve(&b, "x", &u, NULL, 0), CB_ERR_INVALID);
    cbh_url_release(&u);
    cbh_url_release(NULL);
    cbh_base_free(&b);
}
END_TEST

START_TEST(test_base_without_prefix_and_https)
{
    cbh_base b;
    cbh_url  u;

    ck_assert_int_eq(cbh_base_parse("HTTPS://Example.COM", &b, NULL, 0), CB_OK);
    ck_assert_int_eq(cbh_url_resolve(&b, "/x", &u, NULL, 0), CB_OK);
    ck_assert_str_eq(u.url, "https://example.com/x");
    ck_assert_str_eq(u.origin, "https://example.com:443");
    ck_assert(u.https);
    cbh_url_release(&u);
    ck_assert_ptr_null(u.url);
    cbh_base_free(&b);

    ck_assert_int_eq(cbh_base_parse("http://[::1]:8080/p", &b, NULL, 0), CB_OK);
    ck_assert_int_eq(cbh_url_resolve(&b, "/x", &u, NULL, 0), CB_OK);
    ck_assert_str_eq(u.url, "http://[::1]:8080/p/x");
    ck_assert_str_eq(u.origin, "http://[::1]:8080");
    cbh_url_release(&u);
    cbh_base_free(&b);
}
END_TEST

/* ---- Absolute URLs without a base ---------------------------------------- */

typedef struct abs_case {
    const char *in;
    const char *url; /* NULL = refused */
    const char *origin;
} abs_case;

static const abs_case absolutes[] = {
    { "http://example.com/x", "http://example.com/x", "http://example.com:80" },
    { "HTTP://Example.COM", "http://example.com/", "http://example.com:80" },
    { "HTTP://Example.COM/Path", "http://example.com/Path", "http://example.com:80" },
    { "http://example.com:80/", "http://example.com/", "http://example.com:80" },
    { "https://example.com:443/a?b=c", "https://example.com/a?b=c", "https://example.com:443" },
    { "https://example.com:8443", "https://example.com:8443/", "https://example.com:8443" },
    { "http://h?q=1", "http://h/?q=1", "http://h:80" },
    { "http://[::1]:8080/x", "http://[::1]:8080/x", "http://[::1]:8080" },
    { "http://[::FFFF:127.0.0.1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:127.0.0.1]:80" },
    { "http://127.0.0.1:9/%0d%0a", "http://127.0.0.1:9/%0d%0a", "http://127.0.0.1:9" },
    /* Refused. */
    { "/x", NULL, NULL },
    { "//evil/x", NULL, NULL },
    { "evil.com/x", NULL, NULL },
    { "ftp://h/x", NULL, NULL },
    { "file:///etc/passwd", NULL, NULL },
    { "javascript:alert(1)", NULL, NULL },
    { "http://u@h/", NULL, NULL },
    { "http://good@evil/", NULL, NULL },
    { "http://evil\\@good/", NULL, NULL },
    { "http://h\\evil/", NULL, NULL },
    { "http://h/x@y", NULL, NULL },
    { "http://h/x#f", NULL, NULL },
    { "http://h#f", NULL, NULL },
    { "http://h/a b", NULL, NULL },
    { "http://h/a\r\nX: y", NULL, NULL },
    { "http://h/../x", NULL, NULL },
    { "http://h:0/", NULL, NULL },
    { "http://h:65536/", NULL, NULL },
    { "http://h:abc/", NULL, NULL },
    { " http://h/", NULL, NULL },
    { "http://h/%zz", NULL, NULL },
};

START_TEST(test_absolute_table)
{
    const abs_case *t = &absolutes[_i];
    cbh_url         u;
    char            err[128] = "";
    cb_err          rc = cbh_url_resolve(NULL, t->in, &u, err, sizeof(err));

    if (!t->url) {
        ck_assert_msg(rc == CB_ERR_INVALID, "accepted %s", t->in);
        ck_assert(err[0] != '\0');
    } else {
        ck_assert_msg(rc == CB_OK, "refused %s: %s", t->in, err);
        ck_assert_str_eq(u.url, t->url);
        ck_assert_str_eq(u.origin, t->origin);
        ck_assert_uint_eq(u.origin_len, strlen(t->origin));
    }
    cbh_url_release(&u);
}
END_TEST

START_TEST(test_base_with_empty_origin_is_no_base)
{
    /* A zeroed cbh_base (as a client without base_url holds) means "absolute
     * URLs only". */
    cbh_base b;
    cbh_url  u;

    memset(&b, 0, sizeof(b));
    ck_assert_int_eq(cbh_url_resolve(&b, "/x", &u, NULL, 0), CB_ERR_INVALID);
    ck_assert_int_eq(cbh_url_resolve(&b, "http://h/x", &u, NULL, 0), CB_OK);
    ck_assert_str_eq(u.url, "http://h/x");
    cbh_url_release(&u);
}
END_TEST

/* ---- Long URLs ------------------------------------------------------------- */

START_TEST(test_long_url_uses_heap)
{
    cbh_base b;
    cbh_url  u;
    size_t   n = 5000, i;
    char    *p = malloc(n + 1);
    char    *want;

    ck_assert_ptr_nonnull(p);
    p[0] = '/';
    for (i = 1; i < n; i++)
        p[i] = (char)('a' + i % 26);
    p[n] = '\0';
    ck_assert_int_eq(cbh_base_parse("http://h:81/pre", &b, NULL, 0), CB_OK);
    ck_assert_int_eq(cbh_url_resolve(&b, p, &u, NULL, 0), CB_OK);
    ck_assert_ptr_nonnull(u.heap_);
    want = malloc(n + 32);
    snprintf(want, n + 32, "http://h:81/pre%s", p);
    ck_assert_str_eq(u.url, want);
    ck_assert_str_eq(u.origin, "http://h:81");
    cbh_url_release(&u);
    ck_assert_ptr_null(u.heap_);

    /* The boundary: a URL that just fits buf_ stays inline, one more byte
     * goes to the heap. origin "http://h:81" + NUL is 12 bytes. */
    {
        size_t fit = sizeof(u.buf_) - 12 - 1 - strlen("http://h:81/pre");

        memset(p + 1, 'x', fit - 1);
        p[fit] = '\0';
        ck_assert_int_eq(cbh_url_resolve(&b, p, &u, NULL, 0), CB_OK);
        ck_assert_ptr_null(u.heap_);
        ck_assert_uint_eq(strlen(u.url), sizeof(u.buf_) - 12 - 1);
        cbh_url_release(&u);
        p[fit] = 'x';
        p[fit + 1] = '\0';
        ck_assert_int_eq(cbh_url_resolve(&b, p, &u, NULL, 0), CB_OK);
        ck_assert_ptr_nonnull(u.heap_);
        cbh_url_release(&u);
    }

    /* Absolute long URL too. */
    snprintf(want, n + 32, "http://h%s", p);
    ck_assert_int_eq(cbh_url_resolve(NULL, want, &u, NULL, 0), CB_OK);
    ck_assert_str_eq(u.url, want);
    cbh_url_release(&u);
    cbh_base_free(&b);
    free(p);
    free(want);
}
END_TEST

START_TEST(test_too_long_url)
{
    cbh_base b;
    cbh_url  u;
    size_t   n = CBH_URL_MAX + 10;
    char    *p = malloc(n + 1);
    char     err[64];

    ck_assert_ptr_nonnull(p);
    memset(p, 'a', n);
    p[0] = '/';
    p[n] = '\0';
    ck_assert_int_eq(cbh_base_parse("http://h", &b, NULL, 0), CB_OK);
    ck_assert_int_eq(cbh_url_resolve(&b, p, &u, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_str_eq(err, "URL too long");
    cbh_base_free(&b);
    free(p);
}
END_TEST

/* A path that fits alone but not behind the base's prefix. */
START_TEST(test_too_long_with_prefix)
{
    cbh_base b;
    cbh_url  u;
    size_t   n = CBH_URL_MAX - 10;
    char    *p = malloc(n + 1);
    char     err[64];

    ck_assert_ptr_nonnull(p);
    memset(p, 'a', n);
    p[0] = '/';
    p[n] = '\0';
    ck_assert_int_eq(cbh_base_parse("http://h/prefix", &b, NULL, 0), CB_OK);
    ck_assert_int_eq(cbh_url_resolve(&b, p, &u, err, sizeof(err)), CB_ERR_INVALID);
    ck_assert_str_eq(err, "URL too long");
    /* Without the prefix it is accepted. */
    cbh_base_free(&b);
    ck_assert_int_eq(cbh_base_parse("http://h", &b, NULL, 0), CB_OK);
    ck_assert_int_eq(cbh_url_resolve(&b, p, &u, err, sizeof(err)), CB_OK);
    ck_assert_uint_eq(strlen(u.url), strlen("http://h") + n);
    cbh_url_release(&u);
    cbh_base_free(&b);
    free(p);
}
END_TEST

/* ---- Allocation failures ---------------------------------------------------- */

START_TEST(test_oom)
{
    cbh_base b;
    cbh_url  u;
    char     p[600];

    ck_assert_int_eq(cbh_base_parse("http://h/p", &b, NULL, 0), CB_OK);
    memset(p, 'a', sizeof(p) - 1);
    p[0] = '/';
    p[sizeof(p) - 1] = '\0';
    tu_alloc_install();
    tu_alloc_fail_from(1);
    ck_assert_int_eq(cbh_url_resolve(&b, p, &u, NULL, 0), CB_ERR_NOMEM);
    cbh_url_release(&u);
    /* The same for an absolute URL, without a base. */
    {
        char abs[700];

        snprintf(abs, sizeof(abs), "http://h%s", p);
        ck_assert_int_eq(cbh_url_resolve(NULL, abs, &u, NULL, 0), CB_ERR_NOMEM);
        cbh_url_release(&u);
    }
    /* Short URLs need no allocation at all. */
    ck_assert_int_eq(cbh_url_resolve(&b, "/short", &u, NULL, 0), CB_OK);
    ck_assert_str_eq(u.url, "http://h/p/short");
    cbh_url_release(&u);
    ck_assert(cbh_url_same_origin("http://h/x", "http://H:80/y"));
    {
        cbh_base b2;

        ck_assert_int_eq(cbh_base_parse("http://h/p", &b2, NULL, 0), CB_ERR_NOMEM);
        cbh_base_free(&b2);
    }
    cb_set_allocator(NULL);
    cbh_base_free(&b);
}
END_TEST

/* ---- Same origin ------------------------------------------------------------ */

typedef struct same_case {
    const char *a, *b;
    bool        same;
} same_case;

static const same_case sames[] = {
    { "http://h/x", "http://h/y", true },
    { "http://h/x", "http://H:80/y?z#f", true },
    { "HTTP://h", "http://h:80", true },
    { "https://h/", "https://h:443/", true },
    { "http://[::1]:8080/", "http://[0::1]:8080/a", true },
    { "http://h/a@b", "http://h/", true }, /* '@' after the authority cannot move the host */
    { "http://h/", "https://h/", false },
    { "http://h/", "http://h:8080/", false },
    { "https://h:80/", "http://h:80/", false },
    { "http://h/", "http://g/", false },
    { "http://h/", "http://h.evil/", false },
    { "http://h/", "http://h@evil/", false },
    { "http://h/", "http://evil@h/", false },
    { "http://h/", "http://h\\@evil/", false },
    { "http://h/", "//h/", false },
    { "http://h/", "/x", false },
    { "http://h/", "ftp://h/", false },
    { "http://h/", "http://h/a b", false },
    { "http://h/", "http://h/a\r\nX: y", false },
    { "http://h/", "http://h/a\x7f", false },
    { "http://h/", "http://h/a\\b", false },
    { "http://h/", "http://h/caf\xc3\xa9", false },
    { "http://h/", "", false },
    { "http://[::1]/", "http://[::2]/", false },
    { "http://[::1]/", "http://127.0.0.1/", false },
};

START_TEST(test_same_origin_table)
{
    const same_case *t = &sames[_i];

    ck_assert_msg(cbh_url_same_origin(t->a, t->b) == t->same, "%s vs %s", t->a, t->b);
    ck_assert_msg(cbh_url_same_origin(t->b, t->a) == t->same, "%s vs %s", t->b, t->a);
}
END_TEST

START_TEST(test_same_origin_null)
{
    ck_assert(!cbh_url_same_origin(NULL, "http://h/"));
    ck_assert(!cbh_url_same_origin("http://h/", NULL));
    ck_assert(!cbh_url_same_origin(NULL, NULL));
}
END_TEST

static Suite *url_suite(void)
{
    Suite *s = suite_create("url");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_base_table, 0, sizeof(bases) / sizeof(bases[0]));
    tcase_add_test(tc, test_base_null_out);
    tcase_add_loop_test(tc, test_host_refusal_messages, 0,
                        sizeof(host_refusals) / sizeof(host_refusals[0]));
    tcase_add_test(tc, test_host_lengths);
    tcase_add_test(tc, test_base_error_detail);
    tcase_add_loop_test(tc, test_path_table, 0, sizeof(paths) / sizeof(paths[0]));
    tcase_add_test(tc, test_path_details);
    tcase_add_test(tc, test_base_without_prefix_and_https);
    tcase_add_loop_test(tc, test_absolute_table, 0, sizeof(absolutes) / sizeof(absolutes[0]));
    tcase_add_test(tc, test_base_with_empty_origin_is_no_base);
    tcase_add_test(tc, test_long_url_uses_heap);
    tcase_add_test(tc, test_too_long_url);
    tcase_add_test(tc, test_too_long_with_prefix);
    tcase_add_test(tc, test_oom);
    tcase_add_loop_test(tc, test_same_origin_table, 0, sizeof(sames) / sizeof(sames[0]));
    tcase_add_test(tc, test_same_origin_null);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(url_suite()); }
