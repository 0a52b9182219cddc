/* Cache-Control parsing and RFC 9111 freshness arithmetic for a private
 * cache. */
#include <string.h>
#include <strings.h>

#include "cachectl.h"
#include "headers.h"
#include "httpdate.h"

/* Delta-seconds saturate here (RFC 9111 1.2.2 suggests 2^31). */
#define CC_DELTA_MAX 2147483648ULL

/* Heuristic freshness is at most one day (RFC 9111 4.2.2 leaves the cap to
 * the cache; a day is what browsers use). */
#define CC_HEURISTIC_MAX_S 86400ULL

static bool cc_is_ows(char ch) { return ch == ' ' || ch == '\t'; }

/* Parses delta-seconds: 1*DIGIT, saturating at CC_DELTA_MAX. */
static bool cc_delta(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    size_t   i;

    if (n == 0)
        return false;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v < CC_DELTA_MAX)
            v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v > CC_DELTA_MAX ? CC_DELTA_MAX : v;
    return true;
}

static bool cc_name_is(const char *name, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(name, lit, n) == 0;
}

/* A delta-seconds argument, or false when it is missing or invalid
 * (RFC 9111 1.2.2: digits only; a quoted form is accepted, 5.2). */
static bool cc_arg(const char *value, size_t vlen, bool junk, uint64_t *v)
{
    return value && !junk && cc_delta(value, vlen, v);
}

/* Applies one directive; value is NULL when it had none. A quoted value
 * arrives without its quotes (escapes kept: none of ours need them). junk:
 * something other than whitespace followed the value. */
static void cc_parse_directive(const char *name, size_t n, const char *value, size_t vlen,
                               bool junk, cbh_cc *cc)
{
    uint64_t v;

    if (cc_name_is(name, n, "no-store")) {
        cc->no_store = true;
    } else if (cc_name_is(name, n, "no-cache")) {
        cc->no_cache = true;
        /* A field list limits no-cache to those fields (5.2.2.4); an empty
         * one means nothing to limit, so the bare form. */
        if (value && vlen > 0)
            cc->no_cache_fields = true;
        else
            cc->no_cache_bare = true;
    } else if (cc_name_is(name, n, "must-revalidate") || cc_name_is(name, n, "proxy-revalidate")) {
        cc->must_revalidate = true;
    } else if (cc_name_is(name, n, "must-understand")) {
        cc->must_understand = true;
    } else if (cc_name_is(name, n, "only-if-cached")) {
        cc->only_if_cached = true;
    } else if (cc_name_is(name, n, "max-age")) {
        /* An invalid max-age makes the response stale (RFC 9111 4.2.1);
         * of several, the most restrictive (smallest) rules. */
        if (!cc_arg(value, vlen, junk, &v))
            v = 0;
        if (!cc->has_max_age || v < cc->max_age_s)
            cc->max_age_s = v;
        cc->has_max_age = true;
    } else if (cc_name_is(name, n, "max-stale")) {
        /* Bare: any staleness. An invalid value grants none. */
        if (!value)
            v = UINT64_MAX;
        else if (!cc_arg(value, vlen, junk, &v))
            v = 0;
        if (!cc->has_max_stale || v < cc->max_stale_s)
            cc->max_stale_s = v;
        cc->has_max_stale = true;
    } else if (cc_name_is(name, n, "min-fresh")) {
        /* An invalid min-fresh asks for the most: nothing is fresh enough. */
        if (!cc_arg(value, vlen, junk, &v))
            v = CC_DELTA_MAX;
        if (!cc->has_min_fresh || v > cc->min_fresh_s)
            cc->min_fresh_s = v;
        cc->has_min_fresh = true;
    } else if (cc_name_is(name, n, "stale-if-error")) {
        /* An invalid stale-if-error grants nothing: it is simply ignored. */
        if (cc_arg(value, vlen, junk, &v) &&
            (!cc->has_stale_if_error || v < cc->stale_if_error_s)) {
            cc->stale_if_error_s = v;
            cc->has_stale_if_error = true;
        }
    } else if (cc_name_is(name, n, "stale-while-revalidate")) {
        if (cc_arg(value, vlen, junk, &v) &&
            (!cc->has_stale_while_revalidate || v < cc->stale_while_revalidate_s)) {
            cc->stale_while_revalidate_s = v;
            cc->has_stale_while_revalidate = true;
        }
    }
}

typedef void (*cc_fn)(const char *name, size_t n, const char *value, size_t vlen, bool junk,
                      void *ctx);

/* Splits a Cache-Control value into directives (RFC 9111 5.2: token
 * ["=" (token / quoted-string)], commas between). */
static void cc_each(const char *value, cc_fn fn, void *ctx)
{
    const char *p = value;

    while (*p) {
        const char *name, *val = NULL;
        size_t      n, vlen = 0;
        bool        junk = false;

        /* At the end this reads an empty name, which applies nothing. */
        while (*p == ',' || cc_is_ows(*p))
            p++;
        name = p;
        while (cbh_is_tchar((unsigned char)*p))
            p++;
        n = (size_t)(p - name);
        while (cc_is_ows(*p))
            p++;
        if (*p == '=') {
            p++;
            while (cc_is_ows(*p))
                p++;
            if (*p == '"') {
                val = ++p;
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1])
                        p++;
                    p++;
                }
                vlen = (size_t)(p - val);
                if (*p == '"')
                    p++;
            } else {
                val = p;
                while (*p && *p != ',' && !cc_is_ows(*p))
                    p++;
                vlen = (size_t)(p - val);
            }
        }
        /* Skip to the next comma: whatever else is here is junk, but the
         * directive read so far still counts (an argument does not). */
        while (*p && *p != ',') {
            if (!cc_is_ows(*p))
                junk = true;
            p++;
        }
        if (n > 0)
            fn(name, n, val, vlen, junk, ctx);
    }
}

static void cc_apply(const char *name, size_t n, const char *value, size_t vlen, bool junk,
                     void *ctx)
{
    cc_parse_directive(name, n, value, vlen, junk, ctx);
}

void cbh_cc_parse(const char *value, cbh_cc *cc)
{
    if (!value || !cc)
        return;
    cc_each(value, cc_apply, cc);
}

typedef struct cc_field_find {
    const char *directive, *field;
    bool        found;
} cc_field_find;

static void cc_field_check(const char *name, size_t n, const char *value, size_t vlen, bool junk,
                           void *ctx)
{
    cc_field_find *f = ctx;
    char           list[1024];

    (void)junk;
    if (f->found || !value || !cc_name_is(name, n, f->directive))
        return;
    /* Field lists are short; a longer one is cut (its tail not omitted,
     * which at worst keeps a field the origin wanted revalidated). */
    if (vlen >= sizeof(list))
        vlen = sizeof(list) - 1;
    memcpy(list, value, vlen);
    list[vlen] = '\0';
    f->found = cbh_list_has(list, f->field, strlen(f->field));
}

bool cbh_cc_lists_field(const api_header *h, size_t count, const char *directive, const char *field)
{
    cc_field_find f = { directive, field, false };
    size_t        i;

    if (!h || !directive || !field)
        return false;
    for (i = 0; i < count && !f.found; i++)
        if (strcasecmp(h[i].name, "Cache-Control") == 0)
            cc_each(h[i].value, cc_field_check, &f);
    return f.found;
}

void cbh_cc_from_headers(const api_header *h, size_t count, cbh_cc *cc)
{
    size_t i;

    if (!h || !cc)
        return;
    for (i = 0; i < count; i++)
        if (strcasecmp(h[i].name, "Cache-Control") == 0)
            cbh_cc_parse(h[i].value, cc);
}

/* Statuses a cache may store without explicit freshness (RFC 9110 15.1):
 * also the ones whose caching rules we implement, for must-understand. A
 * 206 is stored only for the Range it answered (cache.c). */
static bool cc_heuristic_status(long status)
{
    switch (status) {
    case 200:
    case 203:
    case 204:
    case 206:
    case 300:
    case 301:
    case 308:
    case 404:
    case 405:
    case 410:
    case 414:
    case 501:
        return true;
    default:
        return false;
    }
}

void cbh_vary_each(const api_header *h, size_t                                count,
                   void (*fn)(const char *name, size_t len, void *ctx), void *ctx)
{
    size_t i;

    for (i = 0; i < count; i++) {
        const char *v = h[i].value;

        if (strcasecmp(h[i].name, "Vary") != 0)
            continue;
        while (*v) {
            const char *name;

            while (*v == ',' || cc_is_ows(*v))
                v++;
            name = v;
            while (cbh_is_tchar((unsigned char)*v))
                v++;
            if (v > name)
                fn(name, (size_t)(v - name), ctx);
            while (*v && *v != ',')
                v++;
        }
    }
}

/* '*' is a token character, so "Vary: *" arrives as a name. */
static void cc_vary_star_name(const char *name, size_t len, void *ctx)
{
    (void)len;
    if (name[0] == '*')
        *(bool *)ctx = true;
}

/* True when any Vary header lists "*". */
static bool cc_vary_star(const api_header *h, size_t count)
{
    bool star = false;

    cbh_vary_each(h, count, cc_vary_star_name, &star);
    return star;
}

static uint64_t cc_sat_ms(uint64_t s) { return s > CC_DELTA_MAX ? CC_DELTA_MAX * 1000 : s * 1000; }

/* a - b when a is later, else 0. In unsigned arithmetic: the difference of
 * two int64_t always fits in a uint64_t, where a signed subtraction (a wall
 * clock at INT64_MAX, a Date in year 0) would overflow. */
static uint64_t cc_later_by(int64_t a, int64_t b) { return a > b ? (uint64_t)a - (uint64_t)b : 0; }

/* Every value of header name in h agrees with the first (or there is at
 * most one). RFC 9111 4.2.1: a cache may use the first or treat the
 * response as stale; we do the latter, the same for every field. */
static bool cc_single_valued(const api_header *h, size_t count, const char *name)
{
    const char *first = NULL;
    size_t      i;

    for (i = 0; i < count; i++) {
        if (strcasecmp(h[i].name, name) != 0)
            continue;
        if (!first)
            first = h[i].value;
        else if (strcmp(first, h[i].value) != 0)
            return false;
    }
    return true;
}

/* Reads Age (RFC 9111 5.1: delta-seconds). False when it is not one: a
 * list of different values, a fraction, a sign, parameters, garbage. */
static bool cc_age(const char *s, uint64_t *out)
{
    size_t      n = strcspn(s, ", \t");
    const char *rest = s + n;

    if (!cc_delta(s, n, out))
        return false;
    /* "7, 7" repeats one value (two Age lines folded); anything else is
     * two different ages. */
    while (*rest) {
        uint64_t other;
        size_t   m;

        while (*rest == ',' || cc_is_ows(*rest))
            rest++;
        m = strcspn(rest, ", \t");
        if (m == 0)
            break;
        if (!cc_delta(rest, m, &other) || other != *out)
            return false;
        rest += m;
    }
    return true;
}

void cbh_freshness_of(long status, const api_header *h, size_t count, int64_t request_epoch,
                      int64_t response_epoch, bool heuristic, cbh_freshness *out)
{
    cbh_cc      cc = { 0 };
    const char *date_s, *expires_s, *lm_s, *age_s;
    int64_t     date, expires, lm;
    bool        has_date, explicit_fresh = false, invalid = false, no_store;
    uint64_t    age_value = 0, apparent, corrected, delay;

    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!h)
        count = 0;
    cbh_cc_from_headers(h, count, &cc);
    date_s = cbh_headers_get(h, count, "Date");
    expires_s = cbh_headers_get(h, count, "Expires");
    lm_s = cbh_headers_get(h, count, "Last-Modified");
    age_s = cbh_headers_get(h, count, "Age");

    has_date = date_s && cbh_http_date_parse(date_s, &date);
    if (!has_date)
        date = response_epoch;

    /* Freshness lifetime (RFC 9111 4.2.1); s-maxage is for shared caches. */
    if (cc.has_max_age) {
        out->lifetime_ms = cc_sat_ms(cc.max_age_s);
        explicit_fresh = true;
    } else if (expires_s) {
        /* An invalid Expires ("0", "-1") means already expired. */
        if (cbh_http_date_parse(expires_s, &expires))
            out->lifetime_ms = cc_sat_ms(cc_later_by(expires, date));
        explicit_fresh = true;
        invalid = !cc_single_valued(h, count, "Expires");
    } else if (heuristic && lm_s && cc_heuristic_status(status) && cbh_http_date_parse(lm_s, &lm) &&
               date > lm) {
        uint64_t s = cc_later_by(date, lm) / 10;

        out->lifetime_ms = cc_sat_ms(s > CC_HEURISTIC_MAX_S ? CC_HEURISTIC_MAX_S : s);
    }

    /* Age (RFC 9111 4.2.3). An invalid one, or two different ones, counts
     * as 0 for the arithmetic but makes the response stale, like invalid
     * max-age and Expires: its real age is unknown. */
    if (age_s && (!cc_single_valued(h, count, "Age") || !cc_age(age_s, &age_value))) {
        size_t n = strcspn(age_s, ", \t");

        if (!cc_delta(age_s, n, &age_value))
            age_value = 0;
        invalid = true;
    }
    if (invalid)
        out->lifetime_ms = 0;
    apparent = cc_later_by(response_epoch, date);
    delay = cc_later_by(response_epoch, request_epoch);
    corrected = delay > UINT64_MAX - age_value ? UINT64_MAX : age_value + delay;
    out->initial_age_ms = cc_sat_ms(apparent > corrected ? apparent : corrected);

    out->has_validator = cbh_headers_get(h, count, "ETag") != NULL || lm_s != NULL;
    out->no_cache = cc.no_cache_bare;
    out->no_cache_fields = cc.no_cache_fields;
    out->must_revalidate = cc.must_revalidate;
    if (cc.has_stale_if_error)
        out->stale_if_error_ms = cc_sat_ms(cc.stale_if_error_s);
    if (cc.has_stale_while_revalidate)
        out->stale_while_revalidate_ms = cc_sat_ms(cc.stale_while_revalidate_s);

    /* must-understand (RFC 9111 5.2.2.3): a status whose caching we
     * implement may be stored even with no-store; any other never. */
    no_store = cc.no_store && !(cc.must_understand && cc_heuristic_status(status));
    if (cc.must_understand && !cc_heuristic_status(status))
        no_store = true;

    /* Storable (RFC 9111 3): a final status that is cacheable by default
     * or explicitly fresh (a 5xx too: cache.c keeps the last good response
     * beside it); no no-store; no Vary: *; and something that makes it
     * useful later: freshness or a validator (only a validator when
     * no-cache forces a revalidation before every use). */
    out->storable = status >= 200 && status <= 999 && status != 304 && !no_store &&
                    (cc_heuristic_status(status) || explicit_fresh) && !cc_vary_star(h, count) &&
                    (out->lifetime_ms > 0 || out->has_validator) &&
                    (!cc.no_cache_bare || out->has_validator);
}
