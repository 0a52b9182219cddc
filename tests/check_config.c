/* api_config_parse / api_config_free: the strict JSON loader of client
 * configs. Every field, every kind of refusal, and the messages. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "cbhttp.h"

#include "helpers/failalloc.h"
#include "helpers/testutil.h"

static const char full_doc[] =
    "{\n"
    "  \"base_url\": \"http://127.0.0.1:8080/api\",\n"
    "  \"timeout_ms\": 2000,\n"
    "  \"connect_timeout_ms\": 500,\n"
    "  \"user_agent\": \"tester/1.0\",\n"
    "  \"default_headers\": [\"X-A: 1\", \"X-B: two\"],\n"
    "  \"max_body_bytes\": 1048576,\n"
    "  \"max_header_bytes\": 32768,\n"
    "  \"max_redirects\": 5,\n"
    "  \"allow_cross_origin_redirects\": true,\n"
    "  \"ca_file\": \"/etc/ssl/ca.pem\",\n"
    "  \"origin_idle_ms\": 120000,\n"
    "  \"max_origins\": 5000,\n"
    "  \"log_level\": \"warn\",\n"
    "  \"origins\": {\n"
    "    \"http://other:81\": {\"failure_threshold\": 10, \"mode\": \"disabled\"},\n"
    "    \"https://third\": {}\n"
    "  },\n"
    "  \"circuit_breaker\": {\n"
    "    \"failure_threshold\": 3, \"failure_window_ms\": 10000, \"reset_timeout_ms\": 1000,\n"
    "    \"half_open_max\": 4, \"success_threshold\": 2, \"failure_rate_threshold\": 50,\n"
    "    \"minimum_calls\": 20, \"slow_call_ms\": 750, \"slow_call_rate_threshold\": 80,\n"
    "    \"max_reset_timeout_ms\": 60000, \"reset_backoff_multiplier\": 3,\n"
    "    \"reset_jitter_pct\": 10, \"mode\": \"metrics_only\"\n"
    "  },\n"
    "  \"retry\": {\n"
    "    \"max_attempts\": 4, \"base_delay_ms\": 50, \"max_delay_ms\": 5000,\n"
    "    \"budget_percent\": 30, \"budget_min_per_sec\": 5, \"budget_window_ms\": 20000,\n"
    "    \"budget_disabled\": true\n"
    "  },\n"
    "  \"cache\": {\n"
    "    \"disabled\": false, \"max_bytes\": 4194304, \"max_entries\": 100,\n"
    "    \"max_entry_bytes\": 65536, \"heuristic\": true\n"
    "  }\n"
    "}\n";

START_TEST(test_full_document)
{
    api_config               cfg;
    char                     err[256] = "junk";
    const api_client_config *c = &cfg.client;
    const cb_config         *b = &c->circuit_breaker;

    ck_assert_int_eq(api_config_parse(full_doc, strlen(full_doc), &cfg, err, sizeof err), CB_OK);
    ck_assert_str_eq(err, "");
    ck_assert_str_eq(c->base_url, "http://127.0.0.1:8080/api");
    ck_assert_uint_eq(c->timeout_ms, 2000);
    ck_assert_uint_eq(c->connect_timeout_ms, 500);
    ck_assert_str_eq(c->user_agent, "tester/1.0");
    ck_assert_ptr_nonnull(c->default_headers);
    ck_assert_str_eq(c->default_headers[0], "X-A: 1");
    ck_assert_str_eq(c->default_headers[1], "X-B: two");
    ck_assert_ptr_null(c->default_headers[2]);
    ck_assert_uint_eq(c->max_body_bytes, 1048576);
    ck_assert_uint_eq(c->max_header_bytes, 32768);
    ck_assert_uint_eq(c->max_redirects, 5);
    ck_assert(c->allow_cross_origin_redirects);
    ck_assert_str_eq(c->ca_file, "/etc/ssl/ca.pem");
    ck_assert_uint_eq(c->origin_idle_ms, 120000);
    ck_assert_uint_eq(c->max_origins, 5000);
    ck_assert_int_eq(c->log_level, API_LOG_WARN);

    ck_assert_uint_eq(b->failure_threshold, 3);
    ck_assert_uint_eq(b->failure_window_ms, 10000);
    ck_assert_uint_eq(b->reset_timeout_ms, 1000);
    ck_assert_uint_eq(b->half_open_max, 4);
    ck_assert_uint_eq(b->success_threshold, 2);
    ck_assert_uint_eq(b->failure_rate_threshold, 50);
    ck_assert_uint_eq(b->minimum_calls, 20);
    ck_assert_uint_eq(b->slow_call_ms, 750);
    ck_assert_uint_eq(b->slow_call_rate_threshold, 80);
    ck_assert_uint_eq(b->max_reset_timeout_ms, 60000);
    ck_assert_uint_eq(b->reset_backoff_multiplier, 3);
    ck_assert_uint_eq(b->reset_jitter_pct, 10);
    ck_assert_int_eq(b->mode, CB_MODE_METRICS_ONLY);
    ck_assert_ptr_null(b->listener);
    ck_assert_ptr_null(b->clock);

    ck_assert_uint_eq(c->retry.max_attempts, 4);
    ck_assert_uint_eq(c->retry.base_delay_ms, 50);
    ck_assert_uint_eq(c->retry.max_delay_ms, 5000);
    ck_assert_uint_eq(c->retry.budget_percent, 30);
    ck_assert_uint_eq(c->retry.budget_min_per_sec, 5);
    ck_assert_uint_eq(c->retry.budget_window_ms, 20000);
    ck_assert(c->retry.budget_disabled);

    ck_assert(!c->cache.disabled);
    ck_assert_uint_eq(c->cache.max_bytes, 4194304);
    ck_assert_uint_eq(c->cache.max_entries, 100);
    ck_assert_uint_eq(c->cache.max_entry_bytes, 65536);
    ck_assert(c->cache.heuristic);

    /* Fields the document cannot set stay zero (their defaults). */
    ck_assert_ptr_null(c->logger);
    ck_assert_ptr_null(c->on_event);
    ck_assert_ptr_null(c->classify);
    ck_assert_ptr_null(c->sleep_fn);

    /* Origins, in document order, each starting from the top-level
     * circuit_breaker even though that came later in the document. */
    ck_assert_uint_eq(cfg.origin_count, 2);
    ck_assert_str_eq(cfg.origins[0].origin, "http://other:81");
    ck_assert_uint_eq(cfg.origins[0].circuit_breaker.failure_threshold, 10);
    ck_assert_uint_eq(cfg.origins[0].circuit_breaker.reset_timeout_ms, 1000);
    ck_assert_int_eq(cfg.origins[0].circuit_breaker.mode, CB_MODE_DISABLED);
    ck_assert_str_eq(cfg.origins[1].origin, "https://third");
    ck_assert_uint_eq(cfg.origins[1].circuit_breaker.failure_threshold, 3);
    ck_assert_int_eq(cfg.origins[1].circuit_breaker.mode, CB_MODE_METRICS_ONLY);

    api_config_free(&cfg);
    ck_assert_ptr_null(cfg.client.base_url);
    ck_assert_ptr_null(cfg.origins);
    ck_assert_uint_eq(cfg.origin_count, 0);
    api_config_free(&cfg); /* twice is fine: it was zeroed */
    api_config_free(NULL);
}
END_TEST

/* Strings are copies: the document may go away. */
START_TEST(test_strings_copied)
{
    char      *doc = strdup("{\"base_url\":\"http://h:1\",\"origins\":{\"http://o:2\":{}}}");
    api_config cfg;

    ck_assert_int_eq(api_config_parse(doc, strlen(doc), &cfg, NULL, 0), CB_OK);
    memset(doc, 'x', strlen(doc));
    free(doc);
    ck_assert_str_eq(cfg.client.base_url, "http://h:1");
    ck_assert_str_eq(cfg.origins[0].origin, "http://o:2");
    api_config_free(&cfg);
}
END_TEST

START_TEST(test_empty_object_defaults)
{
    api_config cfg;
    api_config zero;

    memset(&zero, 0, sizeof zero);
    ck_assert_int_eq(api_config_parse(" {} ", 4, &cfg, NULL, 0), CB_OK);
    ck_assert_int_eq(memcmp(&cfg, &zero, sizeof cfg), 0);
    api_config_free(&cfg);

    ck_assert_int_eq(api_config_parse("{\"default_headers\":[],\"origins\":{}}", 35, &cfg, NULL, 0),
                     CB_OK);
    ck_assert_ptr_nonnull(cfg.client.default_headers);
    ck_assert_ptr_null(cfg.client.default_headers[0]);
    ck_assert_uint_eq(cfg.origin_count, 0);
    api_config_free(&cfg);
}
END_TEST

/* Each refused document: the code and the exact message. */
typedef struct bad_case {
    const char *doc;
    cb_err      rc;
    const char *msg;
} bad_case;

static const bad_case bad_cases[] = {
    /* Unknown keys, at every level. */
    { "{\"colour\":1}", CB_ERR_INVALID, "colour: unknown key" },
    { "{\"cache\":{\"colour\":1}}", CB_ERR_INVALID, "cache.colour: unknown key" },
    { "{\"retry\":{\"attempts\":1}}", CB_ERR_INVALID, "retry.attempts: unknown key" },
    { "{\"circuit_breaker\":{\"threshold\":1}}", CB_ERR_INVALID,
      "circuit_breaker.threshold: unknown key" },
    { "{\"origins\":{\"http://a\":{\"retry\":{}}}}", CB_ERR_INVALID,
      "origins[\"http://a\"].retry: unknown key" },
    /* An empty key is unknown too; at the top level the path is empty. */
    { "{\"\":1}", CB_ERR_INVALID, "unknown key" },
    { "{\"retry\":{\"\":1}}", CB_ERR_INVALID, "retry.: unknown key" },
    /* Keys are case-sensitive, unlike cJSON_GetObjectItem. */
    { "{\"Timeout_ms\":1}", CB_ERR_INVALID, "Timeout_ms: unknown key" },
    /* Duplicates. */
    { "{\"timeout_ms\":1,\"timeout_ms\":2}", CB_ERR_INVALID, "timeout_ms: duplicate key" },
    { "{\"retry\":{\"max_attempts\":1,\"max_attempts\":1}}", CB_ERR_INVALID,
      "retry.max_attempts: duplicate key" },
    { "{\"origins\":{\"http://a\":{},\"http://a\":{}}}", CB_ERR_INVALID,
      "origins[\"http://a\"]: duplicate key" },
    { "{\"origins\":{\"http://a\":{},\"http://b\":{},\"http://a\":{}}}", CB_ERR_INVALID,
      "origins[\"http://a\"]: duplicate key" },
    /* The first repeat in document order is named, whichever name sorts
     * first, and a third copy changes nothing. */
    { "{\"origins\":{\"http://b\":{},\"http://a\":{},\"http://b\":{},\"http://a\":{}}}",
      CB_ERR_INVALID, "origins[\"http://b\"]: duplicate key" },
    { "{\"origins\":{\"http://a\":{},\"http://a\":{\"x\":1},\"http://a\":{}}}", CB_ERR_INVALID,
      "origins[\"http://a\"]: duplicate key" },
    /* The first error in document order is the one reported. */
    { "{\"origins\":{\"http://a\":{},\"http://b\":{\"x\":1},\"http://a\":{}}}", CB_ERR_INVALID,
      "origins[\"http://b\"].x: unknown key" },
    /* Wrong types: integers. */
    { "{\"retry\":{\"max_attempts\":\"3\"}}", CB_ERR_INVALID,
      "retry.max_attempts: expected a non-negative integer" },
    { "{\"retry\":{\"max_attempts\":true}}", CB_ERR_INVALID,
      "retry.max_attempts: expected a non-negative integer" },
    { "{\"timeout_ms\":null}", CB_ERR_INVALID, "timeout_ms: expected a non-negative integer" },
    { "{\"cache\":{\"max_bytes\":[1]}}", CB_ERR_INVALID,
      "cache.max_bytes: expected a non-negative integer" },
    /* Negative, fractional, too large. */
    { "{\"retry\":{\"max_attempts\":-1}}", CB_ERR_INVALID,
      "retry.max_attempts: expected a non-negative integer" },
    { "{\"timeout_ms\":1.5}", CB_ERR_INVALID, "timeout_ms: expected a non-negative integer" },
    { "{\"cache\":{\"max_bytes\":-0.5}}", CB_ERR_INVALID,
      "cache.max_bytes: expected a non-negative integer" },
    { "{\"timeout_ms\":4294967296}", CB_ERR_INVALID,
      "timeout_ms: out of range (at most 4294967295)" },
    { "{\"cache\":{\"max_bytes\":1e300}}", CB_ERR_INVALID,
      "cache.max_bytes: out of range (at most 9007199254740992)" },
    { "{\"circuit_breaker\":{\"failure_rate_threshold\":101}}", CB_ERR_INVALID,
      "circuit_breaker.failure_rate_threshold: out of range (at most 100)" },
    /* Numbers are judged by their text, not by the double cJSON made of
     * them: 2^53 + 1 would round to 2^53, 1e-400 to 0, 1.0000000000000001
     * to 1, and each was once taken silently. */
    { "{\"cache\":{\"max_bytes\":9007199254740993}}", CB_ERR_INVALID,
      "cache.max_bytes: out of range (at most 9007199254740992)" },
    { "{\"cache\":{\"max_entry_bytes\":9007199254740993e0}}", CB_ERR_INVALID,
      "cache.max_entry_bytes: out of range (at most 9007199254740992)" },
    { "{\"max_body_bytes\":900719925474099.21e1}", CB_ERR_INVALID,
      "max_body_bytes: expected a non-negative integer" },
    { "{\"max_header_bytes\":9007199254740992.5}", CB_ERR_INVALID,
      "max_header_bytes: expected a non-negative integer" },
    { "{\"max_header_bytes\":18446744073709551616}", CB_ERR_INVALID,
      "max_header_bytes: out of range (at most 9007199254740992)" },
    /* Zeros inside a number past 19 significant digits. */
    { "{\"max_body_bytes\":100000000000000000001}", CB_ERR_INVALID,
      "max_body_bytes: out of range (at most 9007199254740992)" },
    { "{\"max_body_bytes\":1e16}", CB_ERR_INVALID,
      "max_body_bytes: out of range (at most 9007199254740992)" },
    { "{\"max_body_bytes\":1e99999999999999999999}", CB_ERR_INVALID,
      "max_body_bytes: out of range (at most 9007199254740992)" },
    { "{\"max_origins\":9007199254740993}", CB_ERR_INVALID,
      "max_origins: out of range (at most 9007199254740992)" },
    { "{\"max_origins\":-1}", CB_ERR_INVALID, "max_origins: expected a non-negative integer" },
    { "{\"max_origins\":1.5}", CB_ERR_INVALID, "max_origins: expected a non-negative integer" },
    { "{\"cache\":{\"max_bytes\":-1}}", CB_ERR_INVALID,
      "cache.max_bytes: expected a non-negative integer" },
    { "{\"cache\":{\"max_bytes\":1.5}}", CB_ERR_INVALID,
      "cache.max_bytes: expected a non-negative integer" },
    { "{\"cache\":{\"max_bytes\":-1e300}}", CB_ERR_INVALID,
      "cache.max_bytes: expected a non-negative integer" },
    { "{\"timeout_ms\":1e300}", CB_ERR_INVALID, "timeout_ms: out of range (at most 4294967295)" },
    { "{\"timeout_ms\":9007199254740993}", CB_ERR_INVALID,
      "timeout_ms: out of range (at most 4294967295)" },
    { "{\"timeout_ms\":4294967295.5}", CB_ERR_INVALID,
      "timeout_ms: out of range (at most 4294967295)" },
    { "{\"timeout_ms\":4294967295.0000000001}", CB_ERR_INVALID,
      "timeout_ms: expected a non-negative integer" },
    { "{\"timeout_ms\":1.0000000000000001}", CB_ERR_INVALID,
      "timeout_ms: expected a non-negative integer" },
    { "{\"timeout_ms\":1e-400}", CB_ERR_INVALID, "timeout_ms: expected a non-negative integer" },
    { "{\"timeout_ms\":12e-1}", CB_ERR_INVALID, "timeout_ms: expected a non-negative integer" },
    { "{\"timeout_ms\":-1e-400}", CB_ERR_INVALID, "timeout_ms: expected a non-negative integer" },
    { "{\"retry\":{\"max_attempts\":-5e0}}", CB_ERR_INVALID,
      "retry.max_attempts: expected a non-negative integer" },
    { "{\"origins\":{\"http://a\":{\"failure_threshold\":9007199254740993}}}", CB_ERR_INVALID,
      "origins[\"http://a\"].failure_threshold: out of range (at most 4294967295)" },
    { "{\"circuit_breaker\":{\"reset_jitter_pct\":100.000000000000001}}", CB_ERR_INVALID,
      "circuit_breaker.reset_jitter_pct: expected a non-negative integer" },
    { "{\"circuit_breaker\":{\"reset_jitter_pct\":1e2}}", CB_OK, "" },
    /* Booleans. */
    { "{\"cache\":{\"disabled\":1}}", CB_ERR_INVALID, "cache.disabled: expected true or false" },
    { "{\"allow_cross_origin_redirects\":\"true\"}", CB_ERR_INVALID,
      "allow_cross_origin_redirects: expected true or false" },
    /* Strings. */
    { "{\"base_url\":5}", CB_ERR_INVALID, "base_url: expected a string" },
    { "{\"user_agent\":null}", CB_ERR_INVALID, "user_agent: expected a string" },
    { "{\"ca_file\":{}}", CB_ERR_INVALID, "ca_file: expected a string" },
    /* Arrays of strings. */
    { "{\"default_headers\":\"X-A: 1\"}", CB_ERR_INVALID,
      "default_headers: expected an array of strings" },
    { "{\"default_headers\":[\"X-A: 1\",2]}", CB_ERR_INVALID,
      "default_headers[1]: expected a string" },
    { "{\"default_headers\":[\"X-A: 1\\r\\nX-Evil: 1\"]}", CB_ERR_INVALID,
      "default_headers[0]: CR or LF in a header" },
    /* Objects. */
    { "{\"retry\":[]}", CB_ERR_INVALID, "retry: expected an object" },
    { "{\"circuit_breaker\":3}", CB_ERR_INVALID, "circuit_breaker: expected an object" },
    { "{\"cache\":true}", CB_ERR_INVALID, "cache: expected an object" },
    /* Names. */
    { "{\"log_level\":\"verbose\"}", CB_ERR_INVALID,
      "log_level: expected one of \"debug\", \"info\", \"warn\", \"error\"" },
    { "{\"log_level\":\"WARN\"}", CB_ERR_INVALID,
      "log_level: expected one of \"debug\", \"info\", \"warn\", \"error\"" },
    { "{\"log_level\":2}", CB_ERR_INVALID,
      "log_level: expected one of \"debug\", \"info\", \"warn\", \"error\"" },
    { "{\"circuit_breaker\":{\"mode\":\"off\"}}", CB_ERR_INVALID,
      "circuit_breaker.mode: expected one of \"normal\", \"metrics_only\", \"disabled\"" },
    { "{\"origins\":{\"http://a\":{\"mode\":1}}}", CB_ERR_INVALID,
      "origins[\"http://a\"].mode: expected one of \"normal\", \"metrics_only\", \"disabled\"" },
    /* Origins. */
    { "{\"origins\":[]}", CB_ERR_INVALID,
      "origins: expected an object mapping origin URLs to breaker configs" },
    { "{\"origins\":{\"http://a\":5}}", CB_ERR_INVALID,
      "origins[\"http://a\"]: expected an object" },
    { "{\"origins\":{\"\":{}}}", CB_ERR_INVALID, "origins[\"\"]: empty origin" },
    { "{\"origins\":{\"http://a\":{\"failure_threshold\":-3}}}", CB_ERR_INVALID,
      "origins[\"http://a\"].failure_threshold: expected a non-negative integer" },
    /* Roots that are not objects. */
    { "[]", CB_ERR_INVALID, "the top level must be a JSON object" },
    { "\"base_url\"", CB_ERR_INVALID, "the top level must be a JSON object" },
    { "42", CB_ERR_INVALID, "the top level must be a JSON object" },
    { "null", CB_ERR_INVALID, "the top level must be a JSON object" },
    /* Malformed JSON. */
    { "", CB_ERR_PARSE, "malformed JSON: empty document" },
    { " \n\t", CB_ERR_PARSE, "malformed JSON: empty document" },
    { "{} {}", CB_ERR_PARSE,
      "malformed JSON at line 1, column 4 (byte 3): unexpected data after the document" },
    { "{\"a\":1}\n,", CB_ERR_PARSE,
      "malformed JSON at line 2, column 1 (byte 8): unexpected data after the document" },
};

START_TEST(test_refused)
{
    const bad_case *bc = &bad_cases[_i];
    api_config      cfg;
    api_config      zero;
    char            err[256];

    memset(&cfg, 0xA5, sizeof cfg); /* must be zeroed on failure */
    memset(&zero, 0, sizeof zero);
    ck_assert_msg(api_config_parse(bc->doc, strlen(bc->doc), &cfg, err, sizeof err) == bc->rc,
                  "%s: wrong code; message %s", bc->doc, err);
    ck_assert_msg(strcmp(err, bc->msg) == 0, "%s: got \"%s\", want \"%s\"", bc->doc, err, bc->msg);
    if (bc->rc != CB_OK)
        ck_assert_int_eq(memcmp(&cfg, &zero, sizeof cfg), 0);
    api_config_free(&cfg);
}
END_TEST

START_TEST(test_malformed_position)
{
    const char *doc = "{\n  \"timeout_ms\": 10,\n  \"retry\": {\"max_attempts\" 3}\n}";
    api_config  cfg;
    char        err[256];

    ck_assert_int_eq(api_config_parse(doc, strlen(doc), &cfg, err, sizeof err), CB_ERR_PARSE);
    ck_assert_msg(strstr(err, "malformed JSON at line 3") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "column 28") != NULL, "%s", err);
    ck_assert_ptr_null(cfg.client.base_url);

    ck_assert_int_eq(api_config_parse("{\"a\":", 5, &cfg, err, sizeof err), CB_ERR_PARSE);
    ck_assert_msg(strncmp(err, "malformed JSON at line 1", 24) == 0, "%s", err);
}
END_TEST

/* A failure after strings were already copied frees them (ASan/LSan see a
 * leak otherwise) and leaves nothing behind. */
START_TEST(test_failure_after_allocations)
{
    const char *doc = "{\"base_url\":\"http://a\",\"user_agent\":\"x\",\"ca_file\":\"f\","
                      "\"default_headers\":[\"A: 1\",\"B: 2\"],"
                      "\"origins\":{\"http://b\":{},\"http://c\":{\"bogus\":1}}}";
    api_config  cfg;
    char        err[256];

    ck_assert_int_eq(api_config_parse(doc, strlen(doc), &cfg, err, sizeof err), CB_ERR_INVALID);
    ck_assert_str_eq(err, "origins[\"http://c\"].bogus: unknown key");
    ck_assert_ptr_null(cfg.client.base_url);
    ck_assert_ptr_null(cfg.client.default_headers);
    ck_assert_ptr_null(cfg.origins);
    ck_assert_uint_eq(cfg.origin_count, 0);
}
END_TEST

START_TEST(test_boundaries)
{
    api_config  cfg;
    char        err[256];
    const char *ok = "{\"timeout_ms\":4294967295,\"cache\":{\"max_bytes\":9007199254740992,"
                     "\"max_entries\":0},\"retry\":{\"max_attempts\":1e2,\"base_delay_ms\":7.0},"
                     "\"circuit_breaker\":{\"reset_jitter_pct\":100,\"minimum_calls\":-0}}";

    ck_assert_int_eq(api_config_parse(ok, strlen(ok), &cfg, err, sizeof err), CB_OK);
    ck_assert_uint_eq(cfg.client.timeout_ms, 4294967295u);
    ck_assert_uint_eq(cfg.client.cache.max_bytes, (size_t)9007199254740992ull);
    ck_assert_uint_eq(cfg.client.retry.max_attempts, 100);
    ck_assert_uint_eq(cfg.client.retry.base_delay_ms, 7);
    ck_assert_uint_eq(cfg.client.circuit_breaker.reset_jitter_pct, 100);
    api_config_free(&cfg);
}
END_TEST

/* Exact integers in every notation JSON allows are taken, up to each
 * field's own limit; the value is the one the text names. */
START_TEST(test_exact_integers)
{
    static const struct {
        const char *doc;
        uint64_t    want; /* of max_body_bytes / timeout_ms / max_origins */
    } ok[] = {
        { "{\"max_body_bytes\":9007199254740992}", 9007199254740992ull },
        { "{\"max_body_bytes\":9.007199254740992e15}", 9007199254740992ull },
        { "{\"max_body_bytes\":90071992547409920e-1}", 9007199254740992ull },
        { "{\"max_body_bytes\":9007199254740991}", 9007199254740991ull },
        { "{\"max_body_bytes\":0.5e1}", 5 },
        { "{\"max_body_bytes\":500e-2}", 5 },
        { "{\"max_body_bytes\":5E+0}", 5 },
        { "{\"max_body_bytes\":-0.0}", 0 },
        { "{\"max_body_bytes\":0e-99999999999999999999}", 0 },
        { "{\"max_body_bytes\":0.000}", 0 },
        { "{\"max_body_bytes\":1}", 1 },
        { "{\"timeout_ms\":4294967295}", 4294967295u },
        { "{\"timeout_ms\":4.294967295e9}", 4294967295u },
        { "{\"timeout_ms\":42949672950e-1}", 4294967295u },
        { "{\"timeout_ms\":0}", 0 },
        { "{\"max_origins\":0}", 0 },
        { "{\"max_origins\":1}", 1 },
        { "{\"max_origins\":9007199254740991}", 9007199254740991ull },
        { "{\"max_origins\":9007199254740992}", 9007199254740992ull },
    };
    size_t i;

    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        api_config cfg;
        char       err[256];
        uint64_t   got;

        ck_assert_msg(api_config_parse(ok[i].doc, strlen(ok[i].doc), &cfg, err, sizeof err) ==
                          CB_OK,
                      "%s: %s", ok[i].doc, err);
        got = strstr(ok[i].doc, "timeout_ms")    ? cfg.client.timeout_ms
              : strstr(ok[i].doc, "max_origins") ? (uint64_t)cfg.client.max_origins
                                                 : (uint64_t)cfg.client.max_body_bytes;
        ck_assert_msg(got == ok[i].want, "%s: got %llu", ok[i].doc, (unsigned long long)got);
        api_config_free(&cfg);
    }
}
END_TEST

/* Digits inside strings and keys, and numbers where a config wants none,
 * do not shift which text belongs to which number. */
START_TEST(test_numbers_among_strings)
{
    const char *doc = "{\"user_agent\":\"a\\\"12 \\\\\\\" 3e5 -4\","
                      "\"origins\":{\"http://1.2.3.4:5\":{\"failure_threshold\":6},"
                      "\"http://[::7]:8\":{\"reset_timeout_ms\":9007000000000000e-12}},"
                      "\"default_headers\":[\"X-1: 2\"],\"timeout_ms\":1e1,"
                      "\"cache\":{\"max_bytes\":9007199254740992}}";
    const char *bad = "{\"user_agent\":\"9007199254740993\",\"cache\":{\"max_entries\":7,"
                      "\"max_bytes\":9007199254740993}}";
    api_config  cfg;
    char        err[256];

    ck_assert_msg(api_config_parse(doc, strlen(doc), &cfg, err, sizeof err) == CB_OK, "%s", err);
    ck_assert_str_eq(cfg.client.user_agent, "a\"12 \\\" 3e5 -4");
    ck_assert_uint_eq(cfg.origin_count, 2);
    ck_assert_uint_eq(cfg.origins[0].circuit_breaker.failure_threshold, 6);
    ck_assert_uint_eq(cfg.origins[1].circuit_breaker.reset_timeout_ms, 9007);
    ck_assert_uint_eq(cfg.client.timeout_ms, 10);
    ck_assert_uint_eq(cfg.client.cache.max_bytes, (size_t)9007199254740992ull);
    api_config_free(&cfg);

    ck_assert_int_eq(api_config_parse(bad, strlen(bad), &cfg, err, sizeof err), CB_ERR_INVALID);
    ck_assert_str_eq(err, "cache.max_bytes: out of range (at most 9007199254740992)");

    /* A number in an array of strings is still refused as one. */
    bad = "{\"default_headers\":[\"A: 1\",9007199254740993],\"timeout_ms\":3}";
    ck_assert_int_eq(api_config_parse(bad, strlen(bad), &cfg, err, sizeof err), CB_ERR_INVALID);
    ck_assert_str_eq(err, "default_headers[1]: expected a string");
}
END_TEST

/* A document with n origins "http://hI.example:80"; dup >= 0 repeats the
 * key of entry dup as the last entry. */
static char *origins_doc(size_t n, long dup, size_t *len)
{
    size_t cap = 64 + (n + 1) * 64, l = 0, i;
    char  *d = malloc(cap);

    ck_assert_ptr_nonnull(d);
    l += (size_t)snprintf(d + l, cap - l, "{\"origins\":{");
    for (i = 0; i < n; i++)
        l += (size_t)snprintf(d + l, cap - l,
                              "%s\"http://h%zu.example:80\":{\"failure_threshold\":%zu}",
                              i ? "," : "", i, i % 9 + 1);
    if (dup >= 0)
        l += (size_t)snprintf(d + l, cap - l, ",\"http://h%ld.example:80\":{}", dup);
    l += (size_t)snprintf(d + l, cap - l, "}}");
    ck_assert_uint_lt(l, cap);
    *len = l;
    return d;
}

/* 40k origins: each taken, in order; a duplicate is still found wherever
 * its twin is, and named. The duplicate check used to walk every earlier
 * key (40k took seconds, past this suite's 4 s timeout); now it sorts the
 * keys once. */
START_TEST(test_many_origins)
{
    static const long dups[] = { 0, 20000, 39999 };
    api_config        cfg;
    char              err[256], want[256];
    size_t            len, i;
    char             *doc = origins_doc(40000, -1, &len);

    ck_assert_msg(api_config_parse(doc, len, &cfg, err, sizeof err) == CB_OK, "%s", err);
    ck_assert_uint_eq(cfg.origin_count, 40000);
    for (i = 0; i < 40000; i += 4999) {
        char k[64];

        snprintf(k, sizeof k, "http://h%zu.example:80", i);
        ck_assert_str_eq(cfg.origins[i].origin, k);
        ck_assert_uint_eq(cfg.origins[i].circuit_breaker.failure_threshold, i % 9 + 1);
    }
    api_config_free(&cfg);
    free(doc);

    for (i = 0; i < sizeof dups / sizeof dups[0]; i++) {
        doc = origins_doc(40000, dups[i], &len);
        ck_assert_int_eq(api_config_parse(doc, len, &cfg, err, sizeof err), CB_ERR_INVALID);
        snprintf(want, sizeof want, "origins[\"http://h%ld.example:80\"]: duplicate key", dups[i]);
        ck_assert_str_eq(err, want);
        ck_assert_ptr_null(cfg.origins);
        free(doc);
    }
}
END_TEST

/* Five times more: quadratic work would take minutes here, linear work
 * a fraction of a second (the tcase's timeout is the only clock). */
START_TEST(test_origins_scale)
{
    api_config cfg;
    char       err[256];
    size_t     len;
    char      *doc = origins_doc(200000, 199999, &len);

    ck_assert_int_eq(api_config_parse(doc, len, &cfg, err, sizeof err), CB_ERR_INVALID);
    ck_assert_str_eq(err, "origins[\"http://h199999.example:80\"]: duplicate key");
    free(doc);
    doc = origins_doc(200000, -1, &len);
    ck_assert_msg(api_config_parse(doc, len, &cfg, err, sizeof err) == CB_OK, "%s", err);
    ck_assert_uint_eq(cfg.origin_count, 200000);
    api_config_free(&cfg);
    free(doc);
}
END_TEST

/* Only len bytes are read: what follows is not part of the document. */
START_TEST(test_length_bounded)
{
    const char *doc = "{\"timeout_ms\":5}GARBAGE";
    api_config  cfg;
    char        err[64];

    ck_assert_int_eq(api_config_parse(doc, 16, &cfg, err, sizeof err), CB_OK);
    ck_assert_uint_eq(cfg.client.timeout_ms, 5);
    api_config_free(&cfg);
    ck_assert_int_eq(api_config_parse(doc, 10, &cfg, err, sizeof err), CB_ERR_PARSE);
}
END_TEST

START_TEST(test_null_args_and_small_err)
{
    api_config cfg;
    char       err[8];

    ck_assert_int_eq(api_config_parse(NULL, 0, &cfg, NULL, 0), CB_ERR_INVALID);
    ck_assert_int_eq(api_config_parse("{}", 2, NULL, NULL, 0), CB_ERR_INVALID);
    /* A short buffer gets a cut but terminated message. */
    ck_assert_int_eq(api_config_parse("{\"colour\":1}", 12, &cfg, err, sizeof err), CB_ERR_INVALID);
    ck_assert_str_eq(err, "colour:");
    ck_assert_int_eq(api_config_parse("{\"colour\":1}", 12, &cfg, err, 1), CB_ERR_INVALID);
    ck_assert_str_eq(err, "");
}
END_TEST

/* The config builds a client with its per-origin breakers in place; no
 * request is made, so no server is needed. */
/* Whitespace of every kind around the document; a message buffer of size 0
 * is left alone; trailing zeros after a decimal point keep a number exact. */
START_TEST(test_whitespace_and_fractions)
{
    const char *doc = " \t\r\n{\"max_body_bytes\":15.00,\"timeout_ms\":1500.0e-2}\r\n\t ";
    api_config  cfg;
    char        err[64];

    ck_assert_msg(api_config_parse(doc, strlen(doc), &cfg, err, sizeof err) == CB_OK, "%s", err);
    ck_assert_str_eq(err, "");
    ck_assert_uint_eq(cfg.client.max_body_bytes, 15);
    ck_assert_uint_eq(cfg.client.timeout_ms, 15);
    api_config_free(&cfg);
    doc = "{\"max_body_bytes\":100.10}";
    ck_assert_int_eq(api_config_parse(doc, strlen(doc), &cfg, err, sizeof err), CB_ERR_INVALID);
    ck_assert_str_eq(err, "max_body_bytes: expected a non-negative integer");
    strcpy(err, "kept");
    ck_assert_int_eq(api_config_parse(doc, strlen(doc), &cfg, err, 0), CB_ERR_INVALID);
    ck_assert_str_eq(err, "kept");
    ck_assert_int_eq(api_config_parse("\n\t", 2, &cfg, err, sizeof err), CB_ERR_PARSE);
    ck_assert_str_eq(err, "malformed JSON: empty document");
}
END_TEST

/* A config built by hand rather than parsed: an override list that is
 * missing, or an override without its origin, makes no client. */
START_TEST(test_client_from_hand_built_config)
{
    api_config        cfg;
    api_origin_config oc;

    memset(&cfg, 0, sizeof cfg);
    cfg.origin_count = 1;
    ck_assert_ptr_null(api_client_new_from_config(&cfg));
    memset(&oc, 0, sizeof oc);
    cfg.origins = &oc;
    ck_assert_ptr_null(api_client_new_from_config(&cfg));
    /* With its origin named, the same config is fine. */
    oc.origin = (char *)"http://127.0.0.1:9";
    oc.circuit_breaker.failure_threshold = 4;
    api_client *c = api_client_new_from_config(&cfg);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_client_breaker_state(c, "http://127.0.0.1:9/"), CB_CLOSED);
    api_client_free(c);
}
END_TEST

START_TEST(test_client_from_config)
{
    const char *doc = "{\"timeout_ms\":1000,"
                      "\"circuit_breaker\":{\"failure_threshold\":3},"
                      "\"origins\":{\"http://Other.example:81\":{\"failure_threshold\":7,"
                      "\"reset_timeout_ms\":5000}}}";
    api_config  cfg;
    api_client *c;
    cb_metrics  m;
    char        err[256];

    ck_assert_int_eq(api_config_parse(doc, strlen(doc), &cfg, err, sizeof err), CB_OK);
    c = api_client_new_from_config(&cfg);
    ck_assert_ptr_nonnull(c);
    /* The override created that origin's breaker already. */
    ck_assert_int_eq(api_client_breaker_metrics(c, "http://other.example:81/x", &m), CB_OK);
    ck_assert_int_eq(m.state, CB_CLOSED);
    ck_assert_int_eq(api_client_breaker_state(c, "http://other.example:81/"), CB_CLOSED);
    api_client_free(c);
    api_config_free(&cfg);
    ck_assert_ptr_null(api_client_new_from_config(NULL));

    /* With a base URL, an override named by a path applies to its origin. */
    doc = "{\"base_url\":\"http://127.0.0.1:9/api\","
          "\"origins\":{\"/\":{\"failure_threshold\":2}}}";
    ck_assert_int_eq(api_config_parse(doc, strlen(doc), &cfg, err, sizeof err), CB_OK);
    c = api_client_new_from_config(&cfg);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_client_breaker_metrics(c, "/anything", &m), CB_OK);
    api_client_free(c);
    api_config_free(&cfg);
}
END_TEST

/* max_origins from the document reaches the client: the overrides are
 * pinned origins, and pinned origins count towards it. */
START_TEST(test_client_max_origins_from_config)
{
    const char *doc = "{\"max_origins\":2,\"origins\":{\"http://a:1\":{},\"http://b:1\":{}}}";
    const char *over = "{\"max_origins\":2,"
                       "\"origins\":{\"http://a:1\":{},\"http://b:1\":{},\"http://c:1\":{}}}";
    api_config  cfg;
    api_client *c;
    char        err[256];

    ck_assert_msg(api_config_parse(doc, strlen(doc), &cfg, err, sizeof err) == CB_OK, "%s", err);
    ck_assert_uint_eq(cfg.client.max_origins, 2);
    ck_assert_ptr_nonnull(c = api_client_new_from_config(&cfg));
    ck_assert_int_eq(api_client_trip(c, "http://other:1/"), CB_ERR_NOMEM);
    api_client_free(c);
    api_config_free(&cfg);

    ck_assert_msg(api_config_parse(over, strlen(over), &cfg, err, sizeof err) == CB_OK, "%s", err);
    ck_assert_ptr_null(api_client_new_from_config(&cfg));
    api_config_free(&cfg);
}
END_TEST

START_TEST(test_client_from_bad_config)
{
    /* Well-formed documents whose values the client refuses. */
    static const char *const docs[] = {
        "{\"base_url\":\"ftp://127.0.0.1:9\"}",
        "{\"origins\":{\"gopher://x\":{}}}",
        "{\"base_url\":\"http://127.0.0.1:9\",\"origins\":{\"//other:81\":{}}}",
        "{\"origins\":{\"http://x\":{\"success_threshold\":5,\"half_open_max\":2}}}",
    };
    size_t i;

    for (i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        api_config cfg;

        ck_assert_int_eq(api_config_parse(docs[i], strlen(docs[i]), &cfg, NULL, 0), CB_OK);
        ck_assert_msg(api_client_new_from_config(&cfg) == NULL, "accepted %s", docs[i]);
        api_config_free(&cfg);
    }
}
END_TEST

/* Every allocation failing in turn: never a crash or a leak, and *out owns
 * nothing afterwards. cJSON reports its own OOM as a parse failure. */
START_TEST(test_out_of_memory)
{
    api_config cfg;
    char       err[256];
    long       n;
    cb_err     rc = CB_ERR_NOMEM;

    tu_alloc_install();
    for (n = 0; n < 10000; n++) {
        tu_alloc_fail_at((unsigned long)n + 1); /* n allocations succeed */
        rc = api_config_parse(full_doc, strlen(full_doc), &cfg, err, sizeof err);
        tu_alloc_disarm();
        if (rc == CB_OK)
            break;
        ck_assert_msg(rc == CB_ERR_NOMEM || rc == CB_ERR_PARSE, "n=%ld rc=%d %s", n, (int)rc, err);
        ck_assert_ptr_null(cfg.client.base_url);
        ck_assert_ptr_null(cfg.origins);
    }
    ck_assert_int_eq(rc, CB_OK);
    ck_assert_uint_eq(cfg.origin_count, 2);
    api_config_free(&cfg);
    cb_set_allocator(NULL);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("parse");

    tcase_add_test(tc, test_full_document);
    tcase_add_test(tc, test_strings_copied);
    tcase_add_test(tc, test_empty_object_defaults);
    tcase_add_loop_test(tc, test_refused, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, test_malformed_position);
    tcase_add_test(tc, test_failure_after_allocations);
    tcase_add_test(tc, test_boundaries);
    tcase_add_test(tc, test_exact_integers);
    tcase_add_test(tc, test_numbers_among_strings);
    tcase_add_test(tc, test_many_origins);
    tcase_add_test(tc, test_length_bounded);
    tcase_add_test(tc, test_null_args_and_small_err);
    tcase_add_test(tc, test_out_of_memory);
    suite_add_tcase(s, tc);

    tc = tcase_create("scale");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_origins_scale);
    suite_add_tcase(s, tc);

    tc = tcase_create("client");
    tcase_add_test(tc, test_whitespace_and_fractions);
    tcase_add_test(tc, test_client_from_config);
    tcase_add_test(tc, test_client_from_hand_built_config);
    tcase_add_test(tc, test_client_from_bad_config);
    tcase_add_test(tc, test_client_max_origins_from_config);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(config_suite()); }
