/* Metrics exporters: a client metrics snapshot as JSON and as Prometheus
 * text exposition format 0.0.4. Both are written by hand into a growable
 * buffer rather than through cJSON, so that 64-bit counters come out as
 * exact integers (cJSON stores numbers as doubles) and the result is plain
 * cbh_malloc memory the caller frees with cb_free. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cbhttp.h"
#include "alloc.h"
#include "buf.h"
#include "export.h"

/* ---- A growable string buffer ------------------------------------------ */

typedef struct strbuf {
    char  *p;
    size_t len;
    size_t cap;
    int    oom; /* once set, every later append is a no-op */
} strbuf;

/* Room for extra more bytes and a NUL. extra is the length of a string in
 * memory, or what vsnprintf said (at most INT_MAX): the sum cannot wrap. */
static int strbuf_reserve(strbuf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (!cbh_buf_reserve(&b->p, &b->cap, b->len + extra + 1, 1024, SIZE_MAX)) {
        b->oom = 1;
        return -1;
    }
    return 0;
}

static void strbuf_add(strbuf *b, const char *s, size_t n)
{
    if (strbuf_reserve(b, n) != 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void strbuf_puts(strbuf *b, const char *s) { strbuf_add(b, s, strlen(s)); }

static void strbuf_printf(strbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void strbuf_printf(strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int     n;

    /* Everything formatted here is a number or a short name: 64 bytes is
     * enough almost always, and the retry covers the rest. */
    if (strbuf_reserve(b, 64) != 0)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        if (strbuf_reserve(b, (size_t)n) != 0)
            return;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* Hands the text over, or NULL (freeing it) after any allocation failure.
 * Every document has text by then, always NUL-terminated. */
static char *strbuf_finish(strbuf *b)
{
    if (b->oom) {
        cbh_free(b->p);
        return NULL;
    }
    return b->p;
}

/* ---- JSON --------------------------------------------------------------- */

/* A JSON string literal. Bytes from 0x80 up pass through: origins are
 * ASCII or UTF-8 host names. */
static void json_string(strbuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    const unsigned char *run = p;

    strbuf_add(b, "\"", 1);
    for (; *p; p++) {
        if (*p >= 0x20 && *p != '"' && *p != '\\')
            continue;
        strbuf_add(b, (const char *)run, (size_t)(p - run));
        switch (*p) {
        case '"':
            strbuf_puts(b, "\\\"");
            break;
        case '\\':
            strbuf_puts(b, "\\\\");
            break;
        case '\n':
            strbuf_puts(b, "\\n");
            break;
        case '\r':
            strbuf_puts(b, "\\r");
            break;
        case '\t':
            strbuf_puts(b, "\\t");
            break;
        default:
            strbuf_printf(b, "\\u%04x", (unsigned)*p);
            break;
        }
        run = p + 1;
    }
    strbuf_add(b, (const char *)run, (size_t)(p - run));
    strbuf_add(b, "\"", 1);
}

/* "name":value, preceded by a comma unless it is the first member. */
static void json_u64(strbuf *b, int first, const char *name, uint64_t v)
{
    strbuf_printf(b, "%s\"%s\":%" PRIu64, first ? "" : ",", name, v);
}

static void json_origin(strbuf *b, const api_origin_metrics *o)
{
    const cb_metrics *m = &o->breaker;
    int               first;

    strbuf_puts(b, "{\"origin\":");
    json_string(b, o->origin);
    strbuf_puts(b, ",\"state\":");
    json_string(b, cb_state_name(m->state));

    strbuf_puts(b, ",\"breaker\":{");
    json_u64(b, 1, "total_requests", m->total_requests);
    json_u64(b, 0, "successes", m->successes);
    json_u64(b, 0, "failures", m->failures);
    json_u64(b, 0, "rejected", m->rejected);
    json_u64(b, 0, "window_failures", m->window_failures);
    json_u64(b, 0, "consecutive_successes", m->consecutive_successes);
    json_u64(b, 0, "times_opened", m->times_opened);
    json_u64(b, 0, "slow_calls", m->slow_calls);
    json_u64(b, 0, "late_outcomes", m->late_outcomes);
    json_u64(b, 0, "half_open_expired", m->half_open_expired);
    json_u64(b, 0, "ignored", m->ignored);
    json_u64(b, 0, "consecutive_failures", m->consecutive_failures);
    json_u64(b, 0, "isolated", m->isolated);
    json_u64(b, 0, "last_failure_ms", m->last_failure_ms);
    json_u64(b, 0, "last_success_ms", m->last_success_ms);

    /* The first member of a group has no comma before it. */
#define JSON_ROW_(field, json, prom, help)                                                         \
    json_u64(b, first, json, o->field);                                                            \
    first = 0;
    strbuf_puts(b, "},\"retry\":{");
    first = 1;
    API_RETRY_COUNTERS(JSON_ROW_)
    json_u64(b, 0, "budget_available", o->budget_available);

    strbuf_puts(b, "},\"cache\":{");
    first = 1;
    API_CACHE_COUNTERS(JSON_ROW_)
#undef JSON_ROW_
    strbuf_puts(b, "}}");
}

char *cbh_metrics_to_json(const api_client_metrics *m)
{
    strbuf b = { 0 };
    size_t i;

    if (!m)
        return NULL;
    strbuf_puts(&b, "{\"origins\":[");
    for (i = 0; m->origins && i < m->origin_count; i++) {
        if (i)
            strbuf_add(&b, ",", 1);
        json_origin(&b, &m->origins[i]);
    }
    strbuf_puts(&b, "],\"cache\":{");
    json_u64(&b, 1, "entries", m->cache.entries);
    json_u64(&b, 0, "bytes", m->cache.bytes);
    json_u64(&b, 0, "stores", m->cache.stores);
    json_u64(&b, 0, "evictions", m->cache.evictions);
    json_u64(&b, 0, "invalidations", m->cache.invalidations);
    json_u64(&b, 0, "max_bytes", m->cache.max_bytes);
    json_u64(&b, 0, "max_entries", m->cache.max_entries);
    strbuf_puts(&b, "}}");
    return strbuf_finish(&b);
}

/* ---- Prometheus ---------------------------------------------------------- */

/* How a per-origin family reads its value from api_origin_metrics. */
enum prom_kind {
    PROM_U64,   /* a uint64_t at offset */
    PROM_UINT,  /* an unsigned at offset */
    PROM_STATE, /* the breaker state as 0 (CLOSED), 1 (OPEN), 2 (HALF_OPEN) */
    PROM_OPEN   /* 1 while the breaker is OPEN, else 0 */
};

typedef struct prom_family {
    const char    *name;
    const char    *type; /* "counter" or "gauge" */
    const char    *help;
    enum prom_kind kind;
    size_t         offset;
} prom_family;

#define OM_(field) offsetof(api_origin_metrics, field)

/* Families labelled by origin, written family by family so that each has
 * its HELP and TYPE once, before all of its samples, as the format asks. */
static const prom_family origin_families[] = {
    { "cbhttp_breaker_state", "gauge", "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
      PROM_STATE, 0 },
    { "cbhttp_breaker_open", "gauge",
      "1 while the circuit breaker is open (rejecting calls), else 0.", PROM_OPEN, 0 },
    { "cbhttp_breaker_requests_total", "counter",
      "Calls that asked the breaker for a permit, admitted or rejected.", PROM_U64,
      OM_(breaker.total_requests) },
    { "cbhttp_breaker_successes_total", "counter", "Outcomes recorded as successes.", PROM_U64,
      OM_(breaker.successes) },
    { "cbhttp_breaker_failures_total", "counter", "Outcomes recorded as failures.", PROM_U64,
      OM_(breaker.failures) },
    { "cbhttp_breaker_rejected_total", "counter",
      "Calls rejected by the breaker without network I/O.", PROM_U64, OM_(breaker.rejected) },
    { "cbhttp_breaker_opened_total", "counter", "Times the breaker turned open.", PROM_U64,
      OM_(breaker.times_opened) },
    { "cbhttp_breaker_slow_calls_total", "counter", "Calls slower than the slow-call threshold.",
      PROM_U64, OM_(breaker.slow_calls) },
    { "cbhttp_breaker_late_outcomes_total", "counter",
      "Outcomes of permits from an earlier breaker period.", PROM_U64, OM_(breaker.late_outcomes) },
    { "cbhttp_breaker_half_open_expired_total", "counter",
      "HALF_OPEN periods abandoned because their probes did not report in time.", PROM_U64,
      OM_(breaker.half_open_expired) },
    { "cbhttp_breaker_ignored_total", "counter",
      "Permits given back without an outcome (cancelled calls).", PROM_U64, OM_(breaker.ignored) },
    { "cbhttp_breaker_consecutive_failures", "gauge",
      "Failures in a row in the current closed period.", PROM_UINT,
      OM_(breaker.consecutive_failures) },
    { "cbhttp_breaker_isolated", "gauge",
      "1 while the breaker is isolated (forced open until reset), else 0.", PROM_UINT,
      OM_(breaker.isolated) },
    { "cbhttp_breaker_window_failures", "gauge",
      "Failures inside the breaker's current rolling window.", PROM_UINT,
      OM_(breaker.window_failures) },
    { "cbhttp_breaker_consecutive_successes", "gauge", "Successes in a row since the last failure.",
      PROM_UINT, OM_(breaker.consecutive_successes) },
#define PROM_ROW_(field, json, prom, help) { prom, "counter", help, PROM_U64, OM_(field) },
    API_RETRY_COUNTERS(PROM_ROW_){ "cbhttp_retry_budget_available", "gauge",
                                   "Retries the retry budget would allow now.", PROM_UINT,
                                   OM_(budget_available) },
    API_CACHE_COUNTERS(PROM_ROW_)
#undef PROM_ROW_
};

#define CM_(field) offsetof(api_cache_metrics, field)

/* Client-wide cache families, without labels; all uint64_t. */
static const prom_family cache_families[] = {
    { "cbhttp_cache_entries", "gauge", "Responses held in the cache.", PROM_U64, CM_(entries) },
    { "cbhttp_cache_bytes", "gauge", "Bytes held in the cache.", PROM_U64, CM_(bytes) },
    { "cbhttp_cache_stores_total", "counter", "Responses stored in the cache.", PROM_U64,
      CM_(stores) },
    { "cbhttp_cache_evictions_total", "counter",
      "Entries evicted to respect the entry or byte bound.", PROM_U64, CM_(evictions) },
    { "cbhttp_cache_invalidations_total", "counter", "Entries removed by unsafe methods.", PROM_U64,
      CM_(invalidations) },
    { "cbhttp_cache_max_bytes", "gauge", "The cache's byte bound.", PROM_U64, CM_(max_bytes) },
    { "cbhttp_cache_max_entries", "gauge", "The cache's entry bound.", PROM_U64, CM_(max_entries) },
};

/* A label value: backslash, double quote and newline escaped, as the text
 * format requires; everything else is taken as UTF-8. */
static void prom_label_value(strbuf *b, const char *s)
{
    const char *p = s ? s : "";
    const char *run = p;

    for (; *p; p++) {
        const char *esc = NULL;

        if (*p == '\\')
            esc = "\\\\";
        else if (*p == '"')
            esc = "\\\"";
        else if (*p == '\n')
            esc = "\\n";
        if (!esc)
            continue;
        strbuf_add(b, run, (size_t)(p - run));
        strbuf_puts(b, esc);
        run = p + 1;
    }
    strbuf_add(b, run, (size_t)(p - run));
}

static void prom_header(strbuf *b, const prom_family *f)
{
    strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
}

static uint64_t prom_origin_value(const prom_family *f, const api_origin_metrics *o)
{
    const char *base = (const char *)o;
    uint64_t    u64;
    unsigned    u;

    switch (f->kind) {
    case PROM_STATE:
        return (uint64_t)o->breaker.state;
    case PROM_OPEN:
        return o->breaker.state == CB_OPEN;
    case PROM_UINT:
        memcpy(&u, base + f->offset, sizeof u);
        return u;
    default: /* PROM_U64 */
        memcpy(&u64, base + f->offset, sizeof u64);
        return u64;
    }
}

char *cbh_metrics_to_prometheus(const api_client_metrics *m)
{
    strbuf b = { 0 };
    size_t f, i;

    if (!m)
        return NULL;
    for (f = 0; f < sizeof origin_families / sizeof origin_families[0]; f++) {
        const prom_family *fam = &origin_families[f];

        prom_header(&b, fam);
        for (i = 0; m->origins && i < m->origin_count; i++) {
            strbuf_printf(&b, "%s{origin=\"", fam->name);
            prom_label_value(&b, m->origins[i].origin);
            strbuf_printf(&b, "\"} %" PRIu64 "\n", prom_origin_value(fam, &m->origins[i]));
        }
    }
    for (f = 0; f < sizeof cache_families / sizeof cache_families[0]; f++) {
        const prom_family *fam = &cache_families[f];
        uint64_t           v;

        memcpy(&v, (const char *)&m->cache + fam->offset, sizeof v);
        prom_header(&b, fam);
        strbuf_printf(&b, "%s %" PRIu64 "\n", fam->name, v);
    }
    return strbuf_finish(&b);
}
