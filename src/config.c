/*
 * A strict JSON loader for api_client_config. Every key is checked against
 * the field tables below: an unknown key, a duplicate key or a value of the
 * wrong type is refused with a message naming its full path, because a typo
 * in a resilience setting (a threshold silently left at its default) is
 * worse than a client that refuses to start.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cbhttp.h"
#include "alloc.h"

/* Integers above 2^53 are not accepted (as I-JSON, RFC 7493, advises):
 * other tools reading the same document as doubles could not tell them
 * apart. Whether a number is an exact integer within range is read from
 * its text (cfg_mark_numbers), not from cJSON's double: 2^53 + 1 rounds to
 * 2^53 and 1e-400 to 0. */
#define CFG_EXACT_MAX ((uint64_t)1 << 53)
#define CFG_SIZE_MAX ((uint64_t)SIZE_MAX < CFG_EXACT_MAX ? (uint64_t)SIZE_MAX : CFG_EXACT_MAX)

#define CFG_PATH_MAX 256

enum cfg_kind {
    CFG_UINT,      /* unsigned, 0..max */
    CFG_SIZE,      /* size_t, 0..CFG_SIZE_MAX */
    CFG_BOOL,      /* bool: true or false */
    CFG_STRING,    /* const char *, copied */
    CFG_HEADERS,   /* const char *const *: an array of strings, copied */
    CFG_LOG_LEVEL, /* api_log_level from its lower-case name */
    CFG_MODE,      /* cb_mode from its lower-case name */
    CFG_BREAKER,   /* a nested cb_config object */
    CFG_RETRY,     /* a nested api_retry_config object */
    CFG_CACHE,     /* a nested api_cache_config object */
    CFG_ORIGINS    /* the per-origin breaker overrides (root only) */
};

typedef struct cfg_field {
    const char   *name;
    enum cfg_kind kind;
    size_t        offset;
    uint64_t      max; /* CFG_UINT only */
} cfg_field;

typedef struct cfg_section {
    const cfg_field *fields;
    size_t           count;
} cfg_section;

#define U_(type, f)                                                                                \
    {                                                                                              \
#f, CFG_UINT, offsetof(type, f), UINT_MAX                                                  \
    }
#define PCT_(type, f)                                                                              \
    {                                                                                              \
#f, CFG_UINT, offsetof(type, f), 100                                                       \
    }
#define Z_(type, f)                                                                                \
    {                                                                                              \
#f, CFG_SIZE, offsetof(type, f), 0                                                         \
    }
#define B_(type, f)                                                                                \
    {                                                                                              \
#f, CFG_BOOL, offsetof(type, f), 0                                                         \
    }
#define S_(type, f)                                                                                \
    {                                                                                              \
#f, CFG_STRING, offsetof(type, f), 0                                                       \
    }
#define K_(type, f, kind)                                                                          \
    {                                                                                              \
#f, kind, offsetof(type, f), 0                                                             \
    }

/* The rows of the breaker section, one per CB_CONFIG_NUMBERS entry. */
#define BREAKER_ROW_UINT(f) U_(cb_config, f)
#define BREAKER_ROW_PCT(f) PCT_(cb_config, f)
#define BREAKER_ROW_MODE(f) K_(cb_config, f, CFG_MODE)
#define BREAKER_ROW_BOOL(f) B_(cb_config, f)
#define BREAKER_ROW_(f, kind, dflt) BREAKER_ROW_##kind(f),

static const cfg_field breaker_fields[] = { CB_CONFIG_NUMBERS(BREAKER_ROW_) };

static const cfg_field retry_fields[] = {
    U_(api_retry_config, max_attempts),       U_(api_retry_config, base_delay_ms),
    U_(api_retry_config, max_delay_ms),       U_(api_retry_config, budget_percent),
    U_(api_retry_config, budget_min_per_sec), U_(api_retry_config, budget_window_ms),
    B_(api_retry_config, budget_disabled),
};

static const cfg_field cache_fields[] = {
    B_(api_cache_config, disabled),    Z_(api_cache_config, max_bytes),
    U_(api_cache_config, max_entries), Z_(api_cache_config, max_entry_bytes),
    B_(api_cache_config, heuristic),
};

/* The origins entry has no field in api_client_config: it fills
 * api_config.origins instead, after every other key (see cfg_parse_root). */
static const cfg_field root_fields[] = {
    S_(api_client_config, base_url),
    K_(api_client_config, circuit_breaker, CFG_BREAKER),
    K_(api_client_config, retry, CFG_RETRY),
    U_(api_client_config, timeout_ms),
    U_(api_client_config, connect_timeout_ms),
    S_(api_client_config, user_agent),
    K_(api_client_config, default_headers, CFG_HEADERS),
    Z_(api_client_config, max_body_bytes),
    Z_(api_client_config, max_header_bytes),
    U_(api_client_config, max_redirects),
    B_(api_client_config, allow_cross_origin_redirects),
    B_(api_client_config, retry_after_opens_breaker),
    S_(api_client_config, ca_file),
    K_(api_client_config, cache, CFG_CACHE),
    K_(api_client_config, log_level, CFG_LOG_LEVEL),
    U_(api_client_config, origin_idle_ms),
    Z_(api_client_config, max_origins),
    { "origins", CFG_ORIGINS, 0, 0 },
};

#define SECTION_(arr)                                                                              \
    {                                                                                              \
        arr, sizeof arr / sizeof arr[0]                                                            \
    }
static const cfg_section breaker_section = SECTION_(breaker_fields);
static const cfg_section retry_section = SECTION_(retry_fields);
static const cfg_section cache_section = SECTION_(cache_fields);
static const cfg_section root_section = SECTION_(root_fields);

static const char *const log_level_names[] = { "debug", "info", "warn", "error" };
static const char *const mode_names[] = { "normal", "metrics_only", "disabled" };

typedef struct cfg_ctx {
    api_config *out;
    char       *err;
    size_t      err_size;
} cfg_ctx;

static cb_err cfg_fail(cfg_ctx *x, cb_err rc, const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Writes "path: message" into the caller's error buffer. */
static cb_err cfg_fail(cfg_ctx *x, cb_err rc, const char *path, const char *fmt, ...)
{
    va_list ap;
    int     n = 0;

    if (!x->err || x->err_size == 0)
        return rc;
    if (path && *path)
        n = snprintf(x->err, x->err_size, "%s: ", path);
    /* A negative n (snprintf failing) is huge as a size_t. */
    if ((size_t)n >= x->err_size)
        return rc;
    va_start(ap, fmt);
    vsnprintf(x->err + n, x->err_size - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

static void cfg_pathf(char *dst, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Formats a key path into dst (CFG_PATH_MAX bytes). A path too long for it
 * is cut: paths only ever appear in messages. */
static void cfg_pathf(char *dst, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(dst, CFG_PATH_MAX, fmt, ap);
    va_end(ap);
}

/* parent.key, or key at the top level (parent ""). */
static void cfg_path(char *dst, const char *parent, const char *key)
{
    if (*parent)
        cfg_pathf(dst, "%s.%s", parent, key);
    else
        cfg_pathf(dst, "%s", key);
}

/*
 * What the text of a number says. cfg_mark_numbers stores it in the
 * number's cJSON item as valueint, which nothing else reads (the tree lives
 * only inside cfg_parse_doc), and for CFG_NUM_EXACT puts the exact value in
 * valuedouble.
 */
enum cfg_num {
    CFG_NUM_EXACT = 1, /* a non-negative integer at most 2^53 (-0 included) */
    CFG_NUM_HUGE,      /* a non-negative integer above 2^53 */
    CFG_NUM_FRACTION,  /* non-negative, not an integer */
    CFG_NUM_NEGATIVE   /* below zero */
};

static int cfg_num_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* Classifies the number text s[0..n): the text of a number cJSON took.
 * cJSON starts a number only at '-' or a digit and hands strtod the longest
 * run of number characters, and the document parsed, so strtod read all of
 * that run: it is -?D*(.D*)?([eE][+-]?D+)? with a mantissa digit, and
 * nothing here needs checking again. Exact: the value is digits * 10^exp,
 * with the significant digits counted and the trailing zeros moved into the
 * exponent, so no precision is ever lost. */
static enum cfg_num cfg_classify(const char *s, size_t n, uint64_t *value)
{
    /* The exponent is clamped here: far beyond any meaningful number, and
     * with the digit counts (each below the document's length) its sum
     * stays far inside int64_t. */
    const int64_t clamp = (int64_t)1 << 50;
    uint64_t      core = 0;  /* the significant digits, while sig <= 19 */
    size_t        sig = 0;   /* digits from the first to the last non-zero one */
    int64_t       zeros = 0; /* zeros after the last non-zero digit so far */
    int64_t       frac = 0;  /* digits after the decimal point */
    int64_t       exp = 0, e10;
    bool          neg = s[0] == '-', point = false, eneg = false;
    size_t        i = neg;

    for (; i < n && (s[i] | 0x20) != 'e'; i++) {
        if (s[i] == '.') {
            point = true;
            continue;
        }
        if (point)
            frac++;
        if (s[i] == '0') {
            if (sig > 0)
                zeros++;
            continue;
        }
        /* A non-zero digit: the zeros before it become significant. Past
         * 19 digits core no longer matters (the value is then above 2^53
         * or not an integer) and is left alone. */
        if (sig > 0 && zeros > 0) {
            sig += (size_t)zeros;
            for (; zeros > 0 && sig <= 19; zeros--)
                core *= 10;
            zeros = 0;
        }
        sig++;
        if (sig <= 19)
            core = core * 10 + (uint64_t)(s[i] - '0');
    }
    if (i < n) { /* the exponent: 'e' or 'E', a sign or not, digits */
        i++;
        if (s[i] == '+' || s[i] == '-')
            eneg = s[i++] == '-';
        for (; i < n; i++)
            if (exp < clamp)
                exp = exp * 10 + (s[i] - '0');
    }
    if (sig == 0) { /* 0, -0, 0.000, 0e-999: zero whatever the sign */
        *value = 0;
        return CFG_NUM_EXACT;
    }
    if (neg)
        return CFG_NUM_NEGATIVE;
    e10 = (eneg ? -exp : exp) - frac + zeros;
    if (e10 < 0)
        return CFG_NUM_FRACTION;
    /* 2^53 has 16 digits: more digits than that is above it. */
    if (sig > 16 || (int64_t)sig + e10 > 16)
        return CFG_NUM_HUGE;
    for (; e10 > 0; e10--)
        core *= 10;
    if (core > CFG_EXACT_MAX)
        return CFG_NUM_HUGE;
    *value = core;
    return CFG_NUM_EXACT;
}

/* The text of the next number from json[*pos], strings skipped as cJSON
 * skips them (a backslash escapes the next byte); *pos moves past it. Only
 * called while cJSON's tree holds a number not yet seen, so one lies ahead,
 * outside any string, and a closing bracket of the document after it: the
 * scan ends inside the text cJSON parsed. */
static size_t cfg_next_number(const char *json, size_t *pos, size_t *len)
{
    size_t i = *pos, start;

    while (json[i] != '-' && (json[i] < '0' || json[i] > '9')) {
        if (json[i] == '"')
            for (i++; json[i] != '"'; i++)
                if (json[i] == '\\')
                    i++;
        i++;
    }
    for (start = i; cfg_num_char(json[i]); i++)
        ;
    *len = i - start;
    *pos = i;
    return start;
}

/*
 * Marks every number of the tree under item (and its siblings) with what
 * its text says. cJSON keeps children in document order, so a pre-order
 * walk meets the numbers in the order a scan of the text finds them.
 * Recursion is bounded by cJSON's nesting limit (CJSON_NESTING_LIMIT).
 */
static void cfg_mark_numbers(cJSON *item, const char *json, size_t *pos)
{
    for (; item; item = item->next) {
        if (cJSON_IsNumber(item)) {
            size_t       len, start = cfg_next_number(json, pos, &len);
            uint64_t     v = 0;
            enum cfg_num k = cfg_classify(json + start, len, &v);

            item->valueint = (int)k;
            if (k == CFG_NUM_EXACT)
                item->valuedouble = (double)v; /* exact: v <= 2^53 */
        } else if (item->child) {
            cfg_mark_numbers(item->child, json, pos);
        }
    }
}

static cb_err cfg_integer(cfg_ctx *x, const char *path, const cJSON *item, uint64_t max,
                          uint64_t *v)
{
    if (!cJSON_IsNumber(item))
        return cfg_fail(x, CB_ERR_INVALID, path, "expected a non-negative integer");
    switch (item->valueint) {
    case CFG_NUM_EXACT:
        /* max is at most 2^53 and so is the value: both exact. */
        *v = (uint64_t)item->valuedouble;
        if (*v > max)
            break;
        return CB_OK;
    case CFG_NUM_HUGE:
        break;
    case CFG_NUM_FRACTION:
        /* A fraction above the range reads better as out of range. */
        if (item->valuedouble > (double)max)
            break;
        return cfg_fail(x, CB_ERR_INVALID, path, "expected a non-negative integer");
    default:
        return cfg_fail(x, CB_ERR_INVALID, path, "expected a non-negative integer");
    }
    return cfg_fail(x, CB_ERR_INVALID, path, "out of range (at most %llu)",
                    (unsigned long long)max);
}

static cb_err cfg_name(cfg_ctx *x, const char *path, const cJSON *item, const char *const *names,
                       size_t count, unsigned *v)
{
    size_t i;

    if (cJSON_IsString(item)) {
        for (i = 0; i < count; i++) {
            if (strcmp(item->valuestring, names[i]) == 0) {
                *v = (unsigned)i;
                return CB_OK;
            }
        }
    }
    if (count == 3)
        return cfg_fail(x, CB_ERR_INVALID, path, "expected one of \"%s\", \"%s\", \"%s\"", names[0],
                        names[1], names[2]);
    return cfg_fail(x, CB_ERR_INVALID, path, "expected one of \"%s\", \"%s\", \"%s\", \"%s\"",
                    names[0], names[1], names[2], names[3]);
}

static cb_err cfg_headers(cfg_ctx *x, const char *path, const cJSON *item, const char *const **slot)
{
    char         epath[CFG_PATH_MAX];
    const cJSON *h;
    char       **list;
    size_t       n = 0, i = 0;

    if (!cJSON_IsArray(item))
        return cfg_fail(x, CB_ERR_INVALID, path, "expected an array of strings");
    for (h = item->child; h; h = h->next)
        n++;
    /* n counts cJSON items in memory, each larger than a pointer and the
     * array's item besides: n + 1 pointers fit in a size_t, so even an
     * allocator hook whose calloc does not check n * size gets it right. */
    list = cbh_calloc(n + 1, sizeof *list);
    if (!list)
        return cfg_fail(x, CB_ERR_NOMEM, path, "out of memory");
    /* Owned by *out from here on, so that a failure below frees it. */
    *slot = (const char *const *)list;
    for (h = item->child; h; h = h->next, i++) {
        cfg_pathf(epath, "%s[%zu]", path, i);
        if (!cJSON_IsString(h))
            return cfg_fail(x, CB_ERR_INVALID, epath, "expected a string");
        /* Caught here, with the index, rather than as a bare refusal from
         * api_client_new: a header line with CR/LF could smuggle others. */
        if (strpbrk(h->valuestring, "\r\n"))
            return cfg_fail(x, CB_ERR_INVALID, epath, "CR or LF in a header");
        list[i] = cbh_strdup(h->valuestring);
        if (!list[i])
            return cfg_fail(x, CB_ERR_NOMEM, epath, "out of memory");
    }
    return CB_OK;
}

static cb_err cfg_parse_object(cfg_ctx *x, const cfg_section *sec, const char *path,
                               const cJSON *obj, void *base);

/* Refuses a key that already appeared earlier in the same object: cJSON keeps
 * both, and silently taking either would hide a mistake. Only for objects
 * whose keys come from a field table: every earlier key is a distinct known
 * one (an unknown or repeated key ends the parse first), so this walks at
 * most the table's length. The origins object has its own check, on
 * sorted keys. Every member of a parsed object has its key string. */
static int cfg_is_duplicate(const cJSON *obj, const cJSON *item)
{
    const cJSON *p;

    for (p = obj->child; p != item; p = p->next)
        if (strcmp(p->string, item->string) == 0)
            return 1;
    return 0;
}

static cb_err cfg_field_value(cfg_ctx *x, const cfg_field *f, const char *path, const cJSON *item,
                              void *base)
{
    char    *slot = (char *)base + f->offset;
    uint64_t v;
    unsigned u = 0;
    cb_err   rc;

    switch (f->kind) {
    case CFG_UINT:
        if ((rc = cfg_integer(x, path, item, f->max, &v)) != CB_OK)
            return rc;
        u = (unsigned)v;
        memcpy(slot, &u, sizeof u);
        return CB_OK;
    case CFG_SIZE: {
        size_t z;

        if ((rc = cfg_integer(x, path, item, CFG_SIZE_MAX, &v)) != CB_OK)
            return rc;
        z = (size_t)v;
        memcpy(slot, &z, sizeof z);
        return CB_OK;
    }
    case CFG_BOOL: {
        bool b;

        if (!cJSON_IsBool(item))
            return cfg_fail(x, CB_ERR_INVALID, path, "expected true or false");
        b = cJSON_IsTrue(item) != 0;
        memcpy(slot, &b, sizeof b);
        return CB_OK;
    }
    case CFG_STRING: {
        char *s;

        if (!cJSON_IsString(item))
            return cfg_fail(x, CB_ERR_INVALID, path, "expected a string");
        s = cbh_strdup(item->valuestring);
        if (!s)
            return cfg_fail(x, CB_ERR_NOMEM, path, "out of memory");
        memcpy(slot, &s, sizeof s);
        return CB_OK;
    }
    case CFG_HEADERS:
        return cfg_headers(x, path, item, (const char *const **)(void *)slot);
    case CFG_LOG_LEVEL: {
        api_log_level l;

        if ((rc = cfg_name(x, path, item, log_level_names, 4, &u)) != CB_OK)
            return rc;
        l = (api_log_level)u;
        memcpy(slot, &l, sizeof l);
        return CB_OK;
    }
    case CFG_MODE: {
        cb_mode m;

        if ((rc = cfg_name(x, path, item, mode_names, 3, &u)) != CB_OK)
            return rc;
        m = (cb_mode)u;
        memcpy(slot, &m, sizeof m);
        return CB_OK;
    }
    case CFG_BREAKER:
        return cfg_parse_object(x, &breaker_section, path, item, slot);
    case CFG_RETRY:
        return cfg_parse_object(x, &retry_section, path, item, slot);
    case CFG_CACHE:
        return cfg_parse_object(x, &cache_section, path, item, slot);
    default: /* CFG_ORIGINS: cfg_parse_origins reads it once the root is read */
        return CB_OK;
    }
}

/* Fills the fields of base named by obj's keys; "origins" is left for
 * cfg_parse_origins, once the whole root has been read. */
static cb_err cfg_parse_object(cfg_ctx *x, const cfg_section *sec, const char *path,
                               const cJSON *obj, void *base)
{
    char         kpath[CFG_PATH_MAX];
    const cJSON *item;
    size_t       i;
    cb_err       rc;

    if (!cJSON_IsObject(obj))
        return cfg_fail(x, CB_ERR_INVALID, path, "expected an object");
    for (item = obj->child; item; item = item->next) {
        const cfg_field *f = NULL;

        cfg_path(kpath, path, item->string);
        for (i = 0; i < sec->count && !f; i++)
            if (strcmp(item->string, sec->fields[i].name) == 0)
                f = &sec->fields[i];
        if (!f)
            return cfg_fail(x, CB_ERR_INVALID, kpath, "unknown key");
        if (cfg_is_duplicate(obj, item))
            return cfg_fail(x, CB_ERR_INVALID, kpath, "duplicate key");
        if ((rc = cfg_field_value(x, f, kpath, item, base)) != CB_OK)
            return rc;
    }
    return CB_OK;
}

/* One origin key, for the duplicate check of cfg_parse_origins. */
typedef struct cfg_key {
    const char *name;  /* the cJSON item's own key */
    size_t      index; /* its place in the document */
} cfg_key;

/* By name, and equal names in document order. */
static int cfg_key_cmp(const void *a, const void *b)
{
    const cfg_key *ka = a, *kb = b;
    int            c = strcmp(ka->name, kb->name);

    if (c)
        return c;
    return (ka->index > kb->index) - (ka->index < kb->index);
}

/* The document index of the first key (in document order) that repeats an
 * earlier one, or SIZE_MAX: keys sorted by name, then by index, put each
 * repeat right after a key of the same name. O(n log n), for documents
 * that name tens of thousands of origins. */
static size_t cfg_first_repeat(cfg_key *keys, size_t n)
{
    size_t i, first = SIZE_MAX;

    qsort(keys, n, sizeof *keys, cfg_key_cmp);
    for (i = 1; i < n; i++)
        if (strcmp(keys[i].name, keys[i - 1].name) == 0 && keys[i].index < first)
            first = keys[i].index;
    return first;
}

/*
 * "origins": {"<url or path>": {<circuit_breaker keys>}, ...}. Each entry
 * starts from the top-level circuit_breaker (wherever it appears in the
 * document) and overrides the keys it names, so an override need only say
 * what differs. Entries are taken in document order and the first error
 * met is the one reported, a duplicate key included.
 */
static cb_err cfg_parse_origins(cfg_ctx *x, const cJSON *obj)
{
    char         opath[CFG_PATH_MAX];
    api_config  *out = x->out;
    const cJSON *item;
    cfg_key     *keys;
    size_t       n = 0, i = 0, repeat;
    cb_err       rc = CB_OK;

    if (!cJSON_IsObject(obj))
        return cfg_fail(x, CB_ERR_INVALID, "origins",
                        "expected an object mapping origin URLs to breaker configs");
    for (item = obj->child; item; item = item->next)
        n++;
    if (n == 0)
        return CB_OK;
    /* Checked, since an allocator hook's calloc may not check n * size:
     * an api_origin_config is larger than what one entry of the document
     * holds in memory. A cfg_key is not larger than its cJSON item. */
    if (n > SIZE_MAX / sizeof *out->origins)
        return cfg_fail(x, CB_ERR_NOMEM, "origins", "out of memory");
    out->origins = cbh_calloc(n, sizeof *out->origins);
    keys = cbh_calloc(n, sizeof *keys);
    if (!out->origins || !keys) {
        cbh_free(keys);
        return cfg_fail(x, CB_ERR_NOMEM, "origins", "out of memory");
    }
    for (item = obj->child; item; item = item->next, i++) {
        keys[i].name = item->string;
        keys[i].index = i;
    }
    repeat = cfg_first_repeat(keys, n);
    cbh_free(keys);
    for (item = obj->child, i = 0; item && rc == CB_OK; item = item->next, i++) {
        api_origin_config *oc = &out->origins[out->origin_count];

        cfg_pathf(opath, "origins[\"%s\"]", item->string);
        if (!item->string[0]) {
            rc = cfg_fail(x, CB_ERR_INVALID, opath, "empty origin");
            break;
        }
        if (i == repeat) {
            rc = cfg_fail(x, CB_ERR_INVALID, opath, "duplicate key");
            break;
        }
        oc->origin = cbh_strdup(item->string);
        if (!oc->origin) {
            rc = cfg_fail(x, CB_ERR_NOMEM, opath, "out of memory");
            break;
        }
        oc->circuit_breaker = out->client.circuit_breaker;
        out->origin_count++;
        rc = cfg_parse_object(x, &breaker_section, opath, item, &oc->circuit_breaker);
    }
    return rc;
}

/* Line and column (both from 1) of byte pos, for messages. */
static void cfg_position(const char *json, size_t pos, size_t *line, size_t *col)
{
    size_t i;

    *line = 1;
    *col = 1;
    for (i = 0; i < pos; i++) {
        if (json[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static int cfg_is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static cb_err cfg_malformed(cfg_ctx *x, const char *json, size_t pos, const char *what)
{
    size_t line, col;

    cfg_position(json, pos, &line, &col);
    return cfg_fail(x, CB_ERR_PARSE, NULL, "malformed JSON at line %zu, column %zu (byte %zu)%s",
                    line, col, pos, what);
}

static cb_err cfg_parse_doc(cfg_ctx *x, const char *json, size_t len)
{
    const char  *end = NULL;
    const cJSON *origins;
    cJSON       *root;
    size_t       i;
    cb_err       rc;

    for (i = 0; i < len && cfg_is_space(json[i]); i++)
        ;
    if (i == len)
        return cfg_fail(x, CB_ERR_PARSE, NULL, "malformed JSON: empty document");
    cbh_cjson_oom_reset();
    root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root && cbh_cjson_oom())
        return cfg_fail(x, CB_ERR_NOMEM, NULL, "out of memory");
    if (!root) {
        /* cJSON points end at the byte where parsing failed. */
        return cfg_malformed(x, json, (size_t)(end - json), "");
    }
    /* On success too: end is where the value ended, within len. */
    i = (size_t)(end - json);
    while (i < len && cfg_is_space(json[i]))
        i++;
    if (i != len) {
        cJSON_Delete(root);
        return cfg_malformed(x, json, i, ": unexpected data after the document");
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cfg_fail(x, CB_ERR_INVALID, NULL, "the top level must be a JSON object");
    }
    {
        size_t pos = 0;

        cfg_mark_numbers(root, json, &pos);
    }
    rc = cfg_parse_object(x, &root_section, "", root, &x->out->client);
    if (rc == CB_OK) {
        origins = NULL;
        for (const cJSON *it = root->child; it; it = it->next)
            if (strcmp(it->string, "origins") == 0)
                origins = it;
        if (origins)
            rc = cfg_parse_origins(x, origins);
    }
    cJSON_Delete(root);
    return rc;
}

CB_EXPORT cb_err api_config_parse(const char *json, size_t len, api_config *out, char *err,
                                  size_t err_size)
{
    cfg_ctx x = { out, err, err_size };
    cb_err  rc;

    if (err && err_size > 0)
        err[0] = '\0';
    if (out)
        memset(out, 0, sizeof *out);
    if (!out)
        return cfg_fail(&x, CB_ERR_INVALID, NULL, "out is NULL");
    if (!json)
        return cfg_fail(&x, CB_ERR_INVALID, NULL, "json is NULL");
    rc = cfg_parse_doc(&x, json, len);
    if (rc != CB_OK)
        api_config_free(out);
    return rc;
}

CB_EXPORT void api_config_free(api_config *cfg)
{
    size_t i;

    if (!cfg)
        return;
    /* Every string below was copied by api_config_parse, so the const in
     * api_client_config is only the view given to the client. */
    cbh_free((void *)cfg->client.base_url);
    cbh_free((void *)cfg->client.user_agent);
    cbh_free((void *)cfg->client.ca_file);
    if (cfg->client.default_headers) {
        for (i = 0; cfg->client.default_headers[i]; i++)
            cbh_free((void *)cfg->client.default_headers[i]);
        cbh_free((void *)cfg->client.default_headers);
    }
    for (i = 0; cfg->origins && i < cfg->origin_count; i++)
        cbh_free(cfg->origins[i].origin);
    cbh_free(cfg->origins);
    cbh_free(cfg->strings_);
    memset(cfg, 0, sizeof *cfg);
}

CB_EXPORT api_client *api_client_new_from_config(const api_config *cfg)
{
    api_client *c;
    size_t      i;

    if (!cfg)
        return NULL;
    c = api_client_new(&cfg->client);
    if (!c)
        return NULL;
    for (i = 0; i < cfg->origin_count; i++) {
        if (!cfg->origins || !cfg->origins[i].origin ||
            api_client_set_origin_breaker(c, cfg->origins[i].origin,
                                          &cfg->origins[i].circuit_breaker) != CB_OK) {
            api_client_free(c);
            return NULL;
        }
    }
    return c;
}
