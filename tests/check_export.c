/* The metrics exporters on a hand-built snapshot: JSON parsed back with
 * cJSON, Prometheus text checked line by line against the 0.0.4 grammar. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "cbhttp.h"
#include "export.h"

#include "helpers/failalloc.h"
#include "helpers/testutil.h"

#define NASTY_ORIGIN "http://we\"ird\\host\n:8080"

static api_origin_metrics origins[2];
static api_client_metrics snap;

static void build_snapshot(void)
{
    memset(origins, 0, sizeof origins);
    origins[0].origin = (char *)"http://127.0.0.1:8080";
    origins[0].breaker.state = CB_OPEN;
    origins[0].breaker.total_requests = 100;
    origins[0].breaker.successes = 60;
    origins[0].breaker.failures = 30;
    origins[0].breaker.rejected = 10;
    origins[0].breaker.window_failures = 5;
    origins[0].breaker.consecutive_successes = 0;
    origins[0].breaker.times_opened = 2;
    origins[0].breaker.slow_calls = 4;
    origins[0].breaker.late_outcomes = 1;
    origins[0].breaker.half_open_expired = 6;
    origins[0].breaker.ignored = 8;
    origins[0].breaker.consecutive_failures = 3;
    origins[0].breaker.isolated = 1;
    origins[0].breaker.last_failure_ms = 123456789;
    origins[0].breaker.last_success_ms = 123450000;
    origins[0].attempts = 95;
    origins[0].retries = 7;
    origins[0].retries_denied = 3;
    origins[0].budget_available = 9;
    origins[0].cache_hits = 11;
    origins[0].cache_misses = 12;
    origins[0].cache_revalidations = 13;
    origins[0].cache_not_modified = 14;
    origins[0].cache_stale_served = 15;

    origins[1].origin = (char *)NASTY_ORIGIN;
    origins[1].breaker.state = CB_HALF_OPEN;
    origins[1].breaker.total_requests = 18446744073709551615ull; /* exact, not a double */
    origins[1].breaker.consecutive_successes = 2;
    origins[1].budget_available = 10;

    memset(&snap, 0, sizeof snap);
    snap.origins = origins;
    snap.origin_count = 2;
    snap.cache.entries = 21;
    snap.cache.bytes = 22;
    snap.cache.stores = 23;
    snap.cache.evictions = 24;
    snap.cache.invalidations = 25;
    snap.cache.max_bytes = 33554432;
    snap.cache.max_entries = 10000;
}

static double num(const cJSON *obj, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);

    ck_assert_msg(cJSON_IsNumber(it), "%s missing or not a number", name);
    return it->valuedouble;
}

static const cJSON *obj(const cJSON *o, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);

    ck_assert_msg(cJSON_IsObject(it), "%s missing or not an object", name);
    return it;
}

START_TEST(test_json)
{
    char        *text;
    cJSON       *root;
    const cJSON *arr, *o, *b, *r, *c;

    build_snapshot();
    text = cbh_metrics_to_json(&snap);
    ck_assert_ptr_nonnull(text);
    root = cJSON_Parse(text);
    ck_assert_msg(root != NULL, "not JSON: %s", text);

    arr = cJSON_GetObjectItemCaseSensitive(root, "origins");
    ck_assert(cJSON_IsArray(arr));
    ck_assert_int_eq(cJSON_GetArraySize(arr), 2);

    o = cJSON_GetArrayItem(arr, 0);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "origin")->valuestring,
                     "http://127.0.0.1:8080");
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "state")->valuestring, "OPEN");
    b = obj(o, "breaker");
    ck_assert(num(b, "total_requests") == 100);
    ck_assert(num(b, "successes") == 60);
    ck_assert(num(b, "failures") == 30);
    ck_assert(num(b, "rejected") == 10);
    ck_assert(num(b, "window_failures") == 5);
    ck_assert(num(b, "consecutive_successes") == 0);
    ck_assert(num(b, "times_opened") == 2);
    ck_assert(num(b, "slow_calls") == 4);
    ck_assert(num(b, "late_outcomes") == 1);
    ck_assert(num(b, "half_open_expired") == 6);
    ck_assert(num(b, "ignored") == 8);
    ck_assert(num(b, "consecutive_failures") == 3);
    ck_assert(num(b, "isolated") == 1);
    ck_assert(num(b, "last_failure_ms") == 123456789);
    ck_assert(num(b, "last_success_ms") == 123450000);
    r = obj(o, "retry");
    ck_assert(num(r, "attempts") == 95);
    ck_assert(num(r, "retries") == 7);
    ck_assert(num(r, "retries_denied") == 3);
    ck_assert(num(r, "budget_available") == 9);
    c = obj(o, "cache");
    ck_assert(num(c, "hits") == 11);
    ck_assert(num(c, "misses") == 12);
    ck_assert(num(c, "revalidations") == 13);
    ck_assert(num(c, "not_modified") == 14);
    ck_assert(num(c, "stale_served") == 15);

    o = cJSON_GetArrayItem(arr, 1);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "origin")->valuestring, NASTY_ORIGIN);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(o, "state")->valuestring, "HALF_OPEN");
    ck_assert(num(obj(o, "breaker"), "consecutive_successes") == 2);
    ck_assert(num(obj(o, "retry"), "budget_available") == 10);
    /* The 64-bit counter is printed exactly, digit for digit. */
    ck_assert_ptr_nonnull(strstr(text, "\"total_requests\":18446744073709551615"));

    c = obj(root, "cache");
    ck_assert(num(c, "entries") == 21);
    ck_assert(num(c, "bytes") == 22);
    ck_assert(num(c, "stores") == 23);
    ck_assert(num(c, "evictions") == 24);
    ck_assert(num(c, "invalidations") == 25);
    ck_assert(num(c, "max_bytes") == 33554432);
    ck_assert(num(c, "max_entries") == 10000);

    cJSON_Delete(root);
    cb_free(text);
}
END_TEST

START_TEST(test_json_empty)
{
    api_client_metrics m;
    char              *text;

    memset(&m, 0, sizeof m);
    text = cbh_metrics_to_json(&m);
    ck_assert_ptr_nonnull(text);
    ck_assert_str_eq(text, "{\"origins\":[],\"cache\":{\"entries\":0,\"bytes\":0,\"stores\":0,"
                           "\"evictions\":0,\"invalidations\":0,\"max_bytes\":0,"
                           "\"max_entries\":0}}");
    cb_free(text);
    ck_assert_ptr_null(cbh_metrics_to_json(NULL));
    ck_assert_ptr_null(cbh_metrics_to_prometheus(NULL));
}
END_TEST

/* Control characters in an origin are escaped as JSON requires. */
START_TEST(test_json_control_chars)
{
    api_origin_metrics o;
    api_client_metrics m;
    char              *text;
    cJSON             *root;

    memset(&o, 0, sizeof o);
    memset(&m, 0, sizeof m);
    o.origin = (char *)"a\x01\tb";
    m.origins = &o;
    m.origin_count = 1;
    text = cbh_metrics_to_json(&m);
    ck_assert_ptr_nonnull(strstr(text, "\"a\\u0001\\tb\""));
    root = cJSON_Parse(text);
    ck_assert_ptr_nonnull(root);
    ck_assert_str_eq(
        cJSON_GetArrayItem(cJSON_GetObjectItem(root, "origins"), 0)->child->valuestring,
        "a\x01\tb");
    cJSON_Delete(root);
    cb_free(text);
}
END_TEST

/* Every character JSON must escape, in an origin; and an origin that is
 * NULL, written as the empty string by both exporters. */
START_TEST(test_escapes_and_null_origin)
{
    api_origin_metrics o[2];
    api_client_metrics m;
    char              *text;
    cJSON             *root, *list;

    memset(o, 0, sizeof o);
    memset(&m, 0, sizeof m);
    o[0].origin = (char *)"q\"b\\n\nr\rt\t.";
    o[1].origin = NULL;
    m.origins = o;
    m.origin_count = 2;
    text = cbh_metrics_to_json(&m);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "\"q\\\"b\\\\n\\nr\\rt\\t.\"") != NULL, "%s", text);
    root = cJSON_Parse(text);
    ck_assert_ptr_nonnull(root);
    list = cJSON_GetObjectItem(root, "origins");
    ck_assert_int_eq(cJSON_GetArraySize(list), 2);
    ck_assert_str_eq(cJSON_GetArrayItem(list, 0)->child->valuestring, "q\"b\\n\nr\rt\t.");
    ck_assert_str_eq(cJSON_GetArrayItem(list, 1)->child->valuestring, "");
    cJSON_Delete(root);
    cb_free(text);

    text = cbh_metrics_to_prometheus(&m);
    ck_assert_ptr_nonnull(text);
    /* The text format escapes backslash, quote and newline only. */
    ck_assert_msg(strstr(text, "{origin=\"q\\\"b\\\\n\\nr\rt\t.\"}") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "{origin=\"\"}") != NULL, "%s", text);
    cb_free(text);
}
END_TEST

/* ---- Prometheus --------------------------------------------------------- */

typedef struct sample {
    char name[128];
    char origin[128]; /* unescaped label value; "" when there is no label */
    int  has_label;
    char value[64];
} sample;

static int is_name_start(int c) { return isalpha(c) || c == '_' || c == ':'; }
static int is_name_char(int c) { return isalnum(c) || c == '_' || c == ':'; }

/* Parses one sample line of the 0.0.4 text format (name, optional
 * {label="value"} with escapes, one space, a value); 0 if malformed. */
static int parse_sample(const char *line, sample *s)
{
    const char *p = line;
    size_t      n = 0;

    memset(s, 0, sizeof *s);
    if (!is_name_start((unsigned char)*p))
        return 0;
    while (is_name_char((unsigned char)*p) && n < sizeof s->name - 1)
        s->name[n++] = *p++;
    if (*p == '{') {
        p++;
        if (strncmp(p, "origin=\"", 8) != 0)
            return 0;
        p += 8;
        n = 0;
        s->has_label = 1;
        while (*p && *p != '"') {
            char ch = *p++;

            if (ch == '\n')
                return 0; /* a raw newline may not appear in a label */
            if (ch == '\\') {
                if (*p == '\\')
                    ch = '\\';
                else if (*p == '"')
                    ch = '"';
                else if (*p == 'n')
                    ch = '\n';
                else
                    return 0;
                p++;
            }
            if (n < sizeof s->origin - 1)
                s->origin[n++] = ch;
        }
        if (*p++ != '"' || *p++ != '}')
            return 0;
    }
    if (*p++ != ' ')
        return 0;
    n = 0;
    if (!isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p) && n < sizeof s->value - 1)
        s->value[n++] = *p++;
    return *p == '\0';
}

#define MAX_FAMILIES 64

typedef struct family {
    char name[128];
    char type[16];
    int  help, samples;
} family;

static family fams[MAX_FAMILIES];
static size_t nfams;

static family *fam_find(const char *name)
{
    size_t i;

    for (i = 0; i < nfams; i++)
        if (strcmp(fams[i].name, name) == 0)
            return &fams[i];
    return NULL;
}

/* Finds the value of family name for the given origin (NULL: no label). */
static const char *value_of(const char *text, const char *name, const char *origin)
{
    static char found[64];
    const char *line = text;

    while (*line) {
        const char *nl = strchr(line, '\n');
        char        buf[512];
        sample      s;
        size_t      len = (size_t)(nl - line);

        ck_assert_uint_lt(len, sizeof buf);
        memcpy(buf, line, len);
        buf[len] = '\0';
        if (buf[0] != '#' && parse_sample(buf, &s) && strcmp(s.name, name) == 0 &&
            (origin ? s.has_label && strcmp(s.origin, origin) == 0 : !s.has_label)) {
            strcpy(found, s.value);
            return found;
        }
        line = nl + 1;
    }
    return NULL;
}

START_TEST(test_prometheus_syntax)
{
    char       *text;
    const char *line;
    family     *cur = NULL;

    build_snapshot();
    text = cbh_metrics_to_prometheus(&snap);
    ck_assert_ptr_nonnull(text);
    ck_assert(strlen(text) > 0);
    ck_assert_int_eq(text[strlen(text) - 1], '\n'); /* every line, the last too */
    nfams = 0;

    for (line = text; *line;) {
        const char *nl = strchr(line, '\n');
        char        buf[512], name[128], rest[256];
        size_t      len;

        ck_assert_ptr_nonnull(nl);
        len = (size_t)(nl - line);
        ck_assert_uint_lt(len, sizeof buf);
        memcpy(buf, line, len);
        buf[len] = '\0';
        ck_assert_msg(len > 0, "empty line");

        if (strncmp(buf, "# HELP ", 7) == 0) {
            ck_assert_int_eq(sscanf(buf + 7, "%127s %255[^\n]", name, rest), 2);
            ck_assert_msg(strncmp(name, "cbhttp_", 7) == 0, "unprefixed %s", name);
            ck_assert_msg(fam_find(name) == NULL, "second HELP for %s", name);
            ck_assert_uint_lt(nfams, MAX_FAMILIES);
            cur = &fams[nfams++];
            strcpy(cur->name, name);
            cur->help = 1;
        } else if (strncmp(buf, "# TYPE ", 7) == 0) {
            ck_assert_int_eq(sscanf(buf + 7, "%127s %255s", name, rest), 2);
            ck_assert_msg(cur && strcmp(cur->name, name) == 0, "TYPE %s without HELP", name);
            ck_assert_msg(cur->type[0] == '\0', "second TYPE for %s", name);
            ck_assert_msg(cur->samples == 0, "TYPE after samples for %s", name);
            ck_assert_msg(strcmp(rest, "counter") == 0 || strcmp(rest, "gauge") == 0, "%s", rest);
            strcpy(cur->type, rest);
            /* Counters, and only counters, end in _total. */
            len = strlen(name);
            ck_assert_msg((strcmp(rest, "counter") == 0) ==
                              (len > 6 && strcmp(name + len - 6, "_total") == 0),
                          "%s is a %s", name, rest);
        } else {
            sample s;

            ck_assert_msg(buf[0] != '#', "unknown comment %s", buf);
            ck_assert_msg(parse_sample(buf, &s), "bad sample line: %s", buf);
            ck_assert_msg(cur && strcmp(cur->name, s.name) == 0 && cur->type[0],
                          "sample %s outside its family", s.name);
            cur->samples++;
        }
        line = nl + 1;
    }

    ck_assert_uint_ge(nfams, 20);
    for (size_t i = 0; i < nfams; i++) {
        ck_assert_msg(fams[i].type[0], "%s has no TYPE", fams[i].name);
        ck_assert_msg(fams[i].samples >= 1, "%s has no sample", fams[i].name);
    }
    /* Per-origin families have one sample per origin; cache ones one. */
    ck_assert_int_eq(fam_find("cbhttp_breaker_state")->samples, 2);
    ck_assert_int_eq(fam_find("cbhttp_cache_entries")->samples, 1);
    cb_free(text);
}
END_TEST

START_TEST(test_prometheus_values)
{
    char       *text;
    const char *a = "http://127.0.0.1:8080";

    build_snapshot();
    text = cbh_metrics_to_prometheus(&snap);
    ck_assert_ptr_nonnull(text);

    /* Escaping, exactly as the format spells it. */
    ck_assert_ptr_nonnull(
        strstr(text, "cbhttp_breaker_state{origin=\"http://we\\\"ird\\\\host\\n:8080\"} 2\n"));

    ck_assert_str_eq(value_of(text, "cbhttp_breaker_state", a), "1");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_open", a), "1");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_open", NASTY_ORIGIN), "0");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_state", NASTY_ORIGIN), "2");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_requests_total", a), "100");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_requests_total", NASTY_ORIGIN),
                     "18446744073709551615");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_successes_total", a), "60");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_failures_total", a), "30");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_rejected_total", a), "10");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_opened_total", a), "2");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_slow_calls_total", a), "4");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_late_outcomes_total", a), "1");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_half_open_expired_total", a), "6");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_ignored_total", a), "8");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_consecutive_failures", a), "3");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_isolated", a), "1");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_isolated", NASTY_ORIGIN), "0");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_window_failures", a), "5");
    ck_assert_str_eq(value_of(text, "cbhttp_breaker_consecutive_successes", NASTY_ORIGIN), "2");
    ck_assert_str_eq(value_of(text, "cbhttp_attempts_total", a), "95");
    ck_assert_str_eq(value_of(text, "cbhttp_retries_total", a), "7");
    ck_assert_str_eq(value_of(text, "cbhttp_retries_denied_total", a), "3");
    ck_assert_str_eq(value_of(text, "cbhttp_retry_budget_available", a), "9");
    ck_assert_str_eq(value_of(text, "cbhttp_retry_budget_available", NASTY_ORIGIN), "10");
    ck_assert_str_eq(value_of(text, "cbhttp_cache_hits_total", a), "11");
    ck_assert_str_eq(value_of(text, "cbhttp_cache_misses_total", a), "12");
    ck_assert_str_eq(value_of(text, "cbhttp_cache_revalidations_total", a), "13");
    ck_assert_str_eq(value_of(text, "cbhttp_cache_not_modified_total", a), "14");
    ck_assert_str_eq(value_of(text, "cbhttp_cache_stale_served_total", a), "15");
    ck_assert_str_eq(value_of(text, "cbhttp_cache_entries", NULL), "21");
    ck_assert_str_eq(value_of(text, "cbhttp_cache_bytes", NULL), "22");
    ck_assert_str_eq(value_of(text, "cbhttp_cache_stores_total", NULL), "23");
    ck_assert_str_eq(value_of(text, "cbhttp_cache_evictions_total", NULL), "24");
    ck_assert_str_eq(value_of(text, "cbhttp_cache_invalidations_total", NULL), "25");
    ck_assert_str_eq(value_of(text, "cbhttp_cache_max_bytes", NULL), "33554432");
    ck_assert_str_eq(value_of(text, "cbhttp_cache_max_entries", NULL), "10000");
    cb_free(text);
}
END_TEST

/* With no origins, families still carry HELP/TYPE and the cache samples. */
START_TEST(test_prometheus_no_origins)
{
    api_client_metrics m;
    char              *text;

    memset(&m, 0, sizeof m);
    text = cbh_metrics_to_prometheus(&m);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE cbhttp_breaker_state gauge\n"));
    ck_assert_ptr_null(strstr(text, "cbhttp_breaker_state{"));
    ck_assert_ptr_nonnull(strstr(text, "\ncbhttp_cache_entries 0\n"));
    cb_free(text);
}
END_TEST

/* Many origins force the buffer to grow several times. */
START_TEST(test_many_origins)
{
    enum { N = 500 };
    static api_origin_metrics many[N];
    static char               names[N][40];
    api_client_metrics        m;
    char                     *text;
    cJSON                    *root;
    size_t                    i;

    memset(&m, 0, sizeof m);
    for (i = 0; i < N; i++) {
        memset(&many[i], 0, sizeof many[i]);
        snprintf(names[i], sizeof names[i], "http://host-%zu:80", i);
        many[i].origin = names[i];
        many[i].attempts = i;
    }
    m.origins = many;
    m.origin_count = N;
    text = cbh_metrics_to_prometheus(&m);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(
        strstr(text, "cbhttp_attempts_total{origin=\"http://host-499:80\"} 499\n"));
    cb_free(text);
    text = cbh_metrics_to_json(&m);
    root = cJSON_Parse(text);
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(root, "origins")), N);
    cJSON_Delete(root);
    cb_free(text);
}
END_TEST

/* Every allocation failing in turn gives NULL without a leak. */
START_TEST(test_out_of_memory)
{
    char *(*const fns[2])(const api_client_metrics *) = { cbh_metrics_to_json,
                                                          cbh_metrics_to_prometheus };
    size_t f;
    long   n;

    build_snapshot();
    tu_alloc_install();
    for (f = 0; f < 2; f++) {
        char *text = NULL;

        for (n = 0; n < 100 && !text; n++) {
            tu_alloc_fail_at((unsigned long)n + 1); /* n allocations succeed */
            text = fns[f](&snap);
            tu_alloc_disarm();
        }
        ck_assert_ptr_nonnull(text);
        ck_assert_int_gt(n, 1); /* at least one failure was exercised */
        cb_free(text);
    }
    cb_set_allocator(NULL);
}
END_TEST

static Suite *export_suite(void)
{
    Suite *s = suite_create("export");
    TCase *tc = tcase_create("exporters");

    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_json_empty);
    tcase_add_test(tc, test_json_control_chars);
    tcase_add_test(tc, test_escapes_and_null_origin);
    tcase_add_test(tc, test_prometheus_syntax);
    tcase_add_test(tc, test_prometheus_values);
    tcase_add_test(tc, test_prometheus_no_origins);
    tcase_add_test(tc, test_many_origins);
    tcase_add_test(tc, test_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(export_suite()); }
