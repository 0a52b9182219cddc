/*
 * The ready logger api_log_stderr and api_log_level_name: the exact line
 * format on stderr (captured onto a temporary file), every level name and
 * values outside the enum, lines longer than the logger's stack buffer and
 * the allocation-failure path, whole lines from several threads; then a
 * client logging through it, its log_level, silence without a logger, and a
 * line longer than the library's buffer handed over cut, ending in "...".
 */
/* cbhttp: threaded */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include <cbhttp.h>

#include "log.h"

#include "fixture.h"

#include "helpers/capture.h"
#include "helpers/testutil.h"

/* Everything fn(arg) writes to stderr, from malloc. */
static char *stderr_of(void (*fn)(void *), void *arg)
{
    tu_capture cap;
    char      *out;

    ck_assert(tu_capture_start(&cap, STDERR_FILENO));
    fn(arg);
    out = tu_capture_end(&cap, NULL);
    ck_assert_ptr_nonnull(out);
    return out;
}

/* ---- api_log_level_name -------------------------------------------------- */

START_TEST(test_level_names)
{
    ck_assert_str_eq(api_log_level_name(API_LOG_DEBUG), "DEBUG");
    ck_assert_str_eq(api_log_level_name(API_LOG_INFO), "INFO");
    ck_assert_str_eq(api_log_level_name(API_LOG_WARN), "WARN");
    ck_assert_str_eq(api_log_level_name(API_LOG_ERROR), "ERROR");
    /* Outside the enum: never NULL. */
    ck_assert_str_eq(api_log_level_name((api_log_level)(API_LOG_ERROR + 1)), "UNKNOWN");
    ck_assert_str_eq(api_log_level_name((api_log_level)1000), "UNKNOWN");
    ck_assert_str_eq(api_log_level_name((api_log_level)-1), "UNKNOWN");
}
END_TEST

/* ---- api_log_stderr ------------------------------------------------------- */

typedef struct one_line {
    int         level;
    const char *msg;
} one_line;

static void log_one(void *arg)
{
    const one_line *l = arg;
    api_log_stderr((api_log_level)l->level, l->msg, NULL);
}

static void expect_line(int level, const char *msg, const char *want)
{
    one_line l = { level, msg };
    char    *out = stderr_of(log_one, &l);
    ck_assert_str_eq(out, want);
    free(out);
}

START_TEST(test_stderr_format)
{
    expect_line(API_LOG_DEBUG, "hello", "cbhttp DEBUG: hello\n");
    expect_line(API_LOG_INFO, "serving stale", "cbhttp INFO: serving stale\n");
    expect_line(API_LOG_WARN, "breaker x: CLOSED -> OPEN",
                "cbhttp WARN: breaker x: CLOSED -> OPEN\n");
    expect_line(API_LOG_ERROR, "bad", "cbhttp ERROR: bad\n");
    expect_line(API_LOG_ERROR + 1, "odd level", "cbhttp UNKNOWN: odd level\n");
    expect_line(-7, "negative", "cbhttp UNKNOWN: negative\n");
    /* Empty and NULL messages still make one whole line. */
    expect_line(API_LOG_INFO, "", "cbhttp INFO: \n");
    expect_line(API_LOG_WARN, NULL, "cbhttp WARN: \n");
    /* The message goes out as it is: no format directives are expanded. */
    expect_line(API_LOG_DEBUG, "100% %s %n done", "cbhttp DEBUG: 100% %s %n done\n");
}
END_TEST

/* A message of len bytes: 'a'..'z' repeated. */
static char *long_msg(size_t len)
{
    char *m = malloc(len + 1);
    ck_assert_ptr_nonnull(m);
    for (size_t i = 0; i < len; i++)
        m[i] = (char)('a' + i % 26);
    m[len] = '\0';
    return m;
}

static void expect_long(int level, size_t len)
{
    char       *msg = long_msg(len);
    const char *name = api_log_level_name((api_log_level)level);
    size_t      want_len = strlen("cbhttp ") + strlen(name) + 2 + len + 1;
    char       *want = malloc(want_len + 1);

    ck_assert_ptr_nonnull(want);
    snprintf(want, want_len + 1, "cbhttp %s: %s\n", name, msg);
    one_line l = { level, msg };
    char    *out = stderr_of(log_one, &l);
    ck_assert_uint_eq(strlen(out), want_len);
    ck_assert_msg(strcmp(out, want) == 0, "line of %zu bytes differs", len);
    free(out);
    free(want);
    free(msg);
}

START_TEST(test_stderr_long_lines)
{
    /* The logger composes a line in a 1024-byte stack buffer when it fits
     * (with its NUL) and in an allocation otherwise: both sides of the edge
     * for each name length, and far beyond. */
    for (int level = API_LOG_DEBUG; level <= API_LOG_ERROR + 1; level++) {
        size_t fixed = strlen("cbhttp ") + strlen(api_log_level_name((api_log_level)level)) + 2 +
                       2; /* ": ", then the newline and the NUL */
        for (size_t len = 1024 - fixed - 2; len <= 1024 - fixed + 2; len++)
            expect_long(level, len);
    }
    expect_long(API_LOG_WARN, 100000);
}
END_TEST

/* An allocator whose malloc always fails. */
static void *no_malloc(size_t size)
{
    (void)size;
    return NULL;
}

START_TEST(test_stderr_without_memory)
{
    cb_allocator a = { no_malloc, calloc, realloc, free };

    ck_assert_int_eq(cb_set_allocator(&a), CB_OK);
    /* Too long for the stack buffer and no memory: still one exact line. */
    expect_long(API_LOG_ERROR, 5000);
    expect_line(API_LOG_INFO, "short", "cbhttp INFO: short\n");
    ck_assert_int_eq(cb_set_allocator(NULL), CB_OK);
}
END_TEST

enum { THREADS = 4, LINES = 200, LINE_LEN = 3000 };

static void *log_many(void *arg)
{
    const char *msg = arg;
    for (int i = 0; i < LINES; i++)
        api_log_stderr(API_LOG_INFO, msg, NULL);
    return NULL;
}

static void log_threads(void *arg)
{
    char    **msgs = arg;
    pthread_t t[THREADS];

    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, log_many, msgs[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
}

START_TEST(test_stderr_lines_whole_across_threads)
{
    char *msgs[THREADS];

    /* Each thread its own letter, long lines (the allocated path): a line
     * mixing letters was written in pieces. */
    for (int i = 0; i < THREADS; i++) {
        msgs[i] = malloc(LINE_LEN + 1);
        ck_assert_ptr_nonnull(msgs[i]);
        memset(msgs[i], 'A' + i, LINE_LEN);
        msgs[i][LINE_LEN] = '\0';
    }
    char *out = stderr_of(log_threads, msgs);
    int   counts[THREADS] = { 0 };
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        const char *prefix = "cbhttp INFO: ";
        ck_assert_int_eq(strncmp(line, prefix, strlen(prefix)), 0);
        const char *body = line + strlen(prefix);
        ck_assert_uint_eq(strlen(body), LINE_LEN);
        int who = body[0] - 'A';
        ck_assert(who >= 0 && who < THREADS);
        ck_assert_uint_eq(strspn(body, msgs[who]), LINE_LEN);
        counts[who]++;
    }
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(counts[i], LINES);
        free(msgs[i]);
    }
    free(out);
}
END_TEST

/* ---- a client logging ------------------------------------------------------ */

typedef struct client_run {
    fixture      *f;
    api_log_fn    logger;
    api_log_level level;
} client_run;

/* With failure_threshold 1 and two attempts allowed: a 503 opens the
 * breaker (WARN) so that the retry is dropped, then a call is rejected
 * (DEBUG). */
static void client_calls(void *arg)
{
    client_run       *cr = arg;
    api_client_config cfg;
    tu_clock          clk;
    api_response      r;

    memset(&cfg, 0, sizeof cfg);
    tu_clock_install(&clk, &cfg);
    cfg.base_url = fixture_url(cr->f);
    cfg.logger = cr->logger;
    cfg.log_level = cr->level;
    cfg.circuit_breaker.failure_threshold = 1;
    cfg.circuit_breaker.reset_timeout_ms = 60000;
    cfg.retry.max_attempts = 2;
    cfg.retry.budget_disabled = true;
    cfg.cache.disabled = true;
    api_client *c = api_client_new(&cfg);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    api_client_free(c);
}

/* Every line of out is "cbhttp LEVEL: msg" with a known level; returns how
 * many have level. */
static int lines_at(const char *out, const char *level)
{
    int         n = 0;
    const char *p = out;

    while (*p) {
        const char *nl = strchr(p, '\n');
        ck_assert_msg(nl != NULL, "unterminated line: %s", p);
        ck_assert_int_eq(strncmp(p, "cbhttp ", 7), 0);
        const char *name = p + 7;
        size_t      nlen = strcspn(name, ":");
        ck_assert_msg((nlen == 5 && strncmp(name, "DEBUG", 5) == 0) ||
                          (nlen == 4 && strncmp(name, "INFO", 4) == 0) ||
                          (nlen == 4 && strncmp(name, "WARN", 4) == 0) ||
                          (nlen == 5 && strncmp(name, "ERROR", 5) == 0),
                      "bad level in: %.*s", (int)(nl - p), p);
        ck_assert_msg(name[nlen + 1] == ' ' && name + nlen + 2 < nl, "empty line: %.*s",
                      (int)(nl - p), p);
        if (strlen(level) == nlen && strncmp(name, level, nlen) == 0)
            n++;
        p = nl + 1;
    }
    return n;
}

START_TEST(test_client_logs_to_stderr)
{
    fixture *f = fixture_start();
    ck_assert_ptr_nonnull(f);
    client_run cr = { f, api_log_stderr, API_LOG_DEBUG };
    char       want[128];

    char *out = stderr_of(client_calls, &cr);
    /* The state change, exactly. */
    snprintf(want, sizeof want, "cbhttp WARN: breaker %s: CLOSED -> OPEN\n", fixture_url(f));
    ck_assert_msg(strstr(out, want) != NULL, "no \"%s\" in:\n%s", want, out);
    ck_assert_int_eq(lines_at(out, "WARN"), 1);
    /* The rejection, at DEBUG, naming the URL. */
    ck_assert_int_ge(lines_at(out, "DEBUG"), 1);
    ck_assert_msg(strstr(out, "cbhttp DEBUG: GET ") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "/status/503") != NULL, "%s", out);
    free(out);

    /* log_level WARN: the DEBUG lines are dropped, the WARN one stays. */
    cr.level = API_LOG_WARN;
    out = stderr_of(client_calls, &cr);
    ck_assert_int_eq(lines_at(out, "DEBUG"), 0);
    ck_assert_int_eq(lines_at(out, "WARN"), 1);
    free(out);

    /* ERROR: nothing at all (nothing logs at ERROR). */
    cr.level = API_LOG_ERROR;
    out = stderr_of(client_calls, &cr);
    ck_assert_str_eq(out, "");
    free(out);

    /* No logger: the library prints nothing, whatever happens. */
    cr.logger = NULL;
    cr.level = API_LOG_DEBUG;
    out = stderr_of(client_calls, &cr);
    ck_assert_str_eq(out, "");
    free(out);
    fixture_stop(f);
}
END_TEST

/* ---- lines longer than the library's line buffer ---------------------------- */

typedef struct kept_lines {
    int    n;
    char   last[1024];
    size_t last_len;
} kept_lines;

static void keep_line(api_log_level level, const char *msg, void *ud)
{
    kept_lines *k = ud;

    (void)level;
    k->n++;
    k->last_len = strlen(msg);
    snprintf(k->last, sizeof k->last, "%s", msg);
}

/* A rejection names the URL: with a path of 700 bytes the line does not fit
 * in the 512 bytes the library formats into, and is handed over cut, ending
 * in "...", rather than looking complete. */
START_TEST(test_client_long_line_cut)
{
    fixture *f = fixture_start();
    ck_assert_ptr_nonnull(f);
    api_client_config cfg;
    tu_clock          clk;
    kept_lines        k;
    api_response      r;
    char              path[702];

    memset(&k, 0, sizeof k);
    memset(&cfg, 0, sizeof cfg);
    tu_clock_install(&clk, &cfg);
    cfg.base_url = fixture_url(f);
    cfg.logger = keep_line;
    cfg.log_data = &k;
    cfg.log_level = API_LOG_DEBUG;
    cfg.circuit_breaker.failure_threshold = 1;
    cfg.circuit_breaker.reset_timeout_ms = 60000;
    cfg.retry.max_attempts = 1;
    cfg.cache.disabled = true;
    api_client *c = api_client_new(&cfg);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(api_get(c, "/status/503", NULL, &r), CB_ERR_HTTP);
    api_response_free(&r);
    ck_assert_int_ge(k.n, 1); /* the state change */

    path[0] = '/';
    memset(path + 1, 'p', sizeof path - 2);
    path[sizeof path - 1] = '\0';
    int before = k.n;
    ck_assert_int_eq(api_get(c, path, NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    ck_assert_int_eq(k.n, before + 1);
    ck_assert_uint_eq(k.last_len, 511);
    ck_assert_msg(strncmp(k.last, "GET ", 4) == 0, "%s", k.last);
    ck_assert_str_eq(k.last + 508, "...");
    ck_assert_msg(strstr(k.last, "pppppppppp") != NULL, "%s", k.last);

    /* A short line is whole: no "..." added. */
    ck_assert_int_eq(api_get(c, "/ok", NULL, &r), CB_ERR_CIRCUIT_OPEN);
    api_response_free(&r);
    ck_assert_int_eq(k.n, before + 2);
    ck_assert_uint_lt(k.last_len, 200);
    ck_assert_msg(strstr(k.last, "/ok: rejected, circuit of ") != NULL, "%s", k.last);
    ck_assert_msg(strstr(k.last, " is open") == k.last + k.last_len - 8, "%s", k.last);
    api_client_free(c);
    fixture_stop(f);
}
END_TEST

/* cbh_log hands over what it formats, and nothing when vsnprintf fails: a
 * wide character the C locale cannot encode makes it return -1, where a
 * partly written buffer would otherwise go out as a line. */
START_TEST(test_line_that_cannot_be_formatted)
{
    kept_lines k;

    memset(&k, 0, sizeof k);
    cbh_log(keep_line, &k, API_LOG_INFO, API_LOG_WARN, "a %s line", "whole");
    ck_assert_int_eq(k.n, 1);
    ck_assert_str_eq(k.last, "a whole line");
    cbh_log(keep_line, &k, API_LOG_INFO, API_LOG_WARN, "x%lcy", (wint_t)0x100);
    ck_assert_int_eq(k.n, 1);
    ck_assert_str_eq(k.last, "a whole line");
    /* Below the threshold nothing is formatted or handed over. */
    cbh_log(keep_line, &k, API_LOG_ERROR, API_LOG_WARN, "quiet");
    ck_assert_int_eq(k.n, 1);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("stderr");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_level_names);
    tcase_add_test(tc, test_stderr_format);
    tcase_add_test(tc, test_stderr_long_lines);
    tcase_add_test(tc, test_stderr_without_memory);
    tcase_add_test(tc, test_stderr_lines_whole_across_threads);
    tcase_add_test(tc, test_client_logs_to_stderr);
    tcase_add_test(tc, test_client_long_line_cut);
    tcase_add_test(tc, test_line_that_cannot_be_formatted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(log_suite()); }
