/*
 * demo: a scripted outage, narrated. `make demo` builds and runs it.
 *
 * One client talks to the in-process test server. The script:
 *
 *   1. healthy calls, and one cacheable response stored in the cache;
 *   2. the server starts answering 503: calls fail, the breaker opens
 *      (the state change arrives through the client's on_event listener);
 *   3. while OPEN, calls are rejected in microseconds without touching the
 *      network (the server's request counter does not move), the
 *      application serves fallback data, and the cache stands in with its
 *      stored entry, marked stale (stale-if-error);
 *   4. the server goes away completely (connections refused); after the
 *      real reset timeout (500 ms) the breaker admits a probe (HALF_OPEN),
 *      the probe fails and the breaker opens again;
 *   5. the server comes back; after the next reset timeout two successful
 *      probes close the breaker;
 *   6. healthy again, and a summary: calls made vs requests that reached
 *      the server.
 *
 * Every line starts with the milliseconds elapsed since the start. The whole
 * run takes about 1.5 s.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cbhttp.h>

#include "fixture.h"

#define RESET_TIMEOUT_MS 500

static double   t_start; /* ms on CLOCK_MONOTONIC when the demo began */
static fixture *srv;

/* What the demo counts for its summary. */
static struct {
    unsigned calls;     /* api_get calls made */
    unsigned ok_live;   /* answered by the server */
    unsigned rejected;  /* CB_ERR_CIRCUIT_OPEN */
    unsigned fallback;  /* answered by the application's fallback */
    unsigned stale;     /* answered by the cache, stale */
    unsigned failed;    /* other failures */
    double   reject_us; /* total time spent in rejected calls */
} tally;

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A timeline line: "[  123.4 ms] ...". */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;

    printf("[%7.1f ms] ", now_ms() - t_start);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void phase(const char *title) { printf("\n== %s\n", title); }

/* The client's listener: every breaker event of every origin arrives here,
 * on the thread that caused it, with no lock held. Only state changes are
 * worth a line in the story. */
static void on_event(const char *origin, const cb_event *ev, void *user_data)
{
    (void)user_data;
    if (ev->type == CB_EVENT_STATE_CHANGE)
        say("   *** EVENT breaker %s: %s -> %s", origin, cb_state_name(ev->from),
            cb_state_name(ev->to));
}

/*
 * One call to path. Prints the outcome with its latency and the breaker
 * state after it; on failure the application serves its fallback.
 */
static void call(api_client *c, const char *path, const api_options *opts)
{
    api_response resp;
    double       t0 = now_ms();
    cb_err       err = api_get(c, path, opts, &resp);
    double       us = (now_ms() - t0) * 1e3;
    char         lat[32];
    const char  *state = cb_state_name(api_client_breaker_state(c, path));

    /* Shown without the query string, and bodies without their newline. */
    int plen = (int)strcspn(path, "?");
    int blen = (int)(resp.body_len && resp.body[resp.body_len - 1] == '\n' ? resp.body_len - 1
                                                                           : resp.body_len);

    tally.calls++;
    if (blen > 40)
        blen = 40;
    if (us < 1000)
        snprintf(lat, sizeof(lat), "%6.1f us", us);
    else
        snprintf(lat, sizeof(lat), "%6.1f ms", us / 1e3);

    if (err == CB_OK && resp.stale) {
        tally.stale++;
        say("GET %-12.*s -> %ld from the cache, STALE, standing in for %s  %s  [%s]", plen, path,
            resp.status,
            resp.cause == CB_ERR_CIRCUIT_OPEN ? "CIRCUIT_OPEN" : cb_strerror(resp.cause), lat,
            state);
        say("   body: %.*s...", blen, resp.body);
    } else if (err == CB_OK) {
        tally.ok_live += !resp.from_cache;
        say("GET %-12.*s -> %ld%s  %s  [%s]  %.*s", plen, path, resp.status,
            resp.from_cache ? " fresh cache hit, no I/O" : "", lat, state, blen, resp.body);
    } else if (err == CB_ERR_CIRCUIT_OPEN) {
        tally.rejected++;
        tally.fallback++;
        tally.reject_us += us;
        say("GET %-12.*s -> CIRCUIT_OPEN, no I/O  %s  [%s]  fallback data served", plen, path, lat,
            state);
    } else {
        char what[64];

        tally.failed++;
        tally.fallback++;
        if (err == CB_ERR_HTTP)
            snprintf(what, sizeof(what), "HTTP %ld", resp.status);
        else
            snprintf(what, sizeof(what), "%s", cb_strerror(err));
        say("GET %-12.*s -> %s  %s  [%s]  fallback data served", plen, path, what, lat, state);
    }
    api_response_free(&resp);
}

static void server_count(const char *note)
{
    say("   server has received %llu request(s)%s", (unsigned long long)fixture_requests(srv),
        note);
}

int main(void)
{
    /* The cached document: fresh for 1 s, and the cache may serve it for
     * another 60 s when the origin fails (RFC 5861 stale-if-error). */
    static const char quote[] = "/cache/quote?cc=max-age%3D1%2C%20stale-if-error%3D60";
    /* Calls that must reach the origin skip the cache. */
    const api_options live = { .cache = &(api_cache_options){ .bypass = true } };
    api_client       *c;
    uint64_t          before;
    int               i;

    t_start = now_ms();
    srv = fixture_start();
    if (!srv) {
        fprintf(stderr, "demo: cannot start the fixture server\n");
        return 1;
    }
    c = api_client_new(&(api_client_config){
        .base_url = fixture_url(srv),
        .timeout_ms = 1000,
        .connect_timeout_ms = 200,
        .circuit_breaker = {
            .failure_threshold = 3,      /* 3 failures...            */
            .failure_window_ms = 10000,  /* ...within 10 s open it   */
            .reset_timeout_ms = RESET_TIMEOUT_MS,
            .half_open_max = 2,          /* at most 2 probes at once */
            .success_threshold = 2,      /* 2 good probes close it   */
        },
        /* No retries: one attempt per call keeps the timeline readable. */
        .retry = { .max_attempts = 1 },
        .on_event = on_event,
    });
    if (!c) {
        fprintf(stderr, "demo: api_client_new failed\n");
        fixture_stop(srv);
        return 1;
    }
    printf("cbhttp %s demo: server %s, breaker opens after 3 failures, "
           "reset timeout %d ms, 2 probes close it\n",
           cbhttp_version(), fixture_url(srv), RESET_TIMEOUT_MS);

    phase("1. healthy");
    for (i = 0; i < 3; i++)
        call(c, "/ok", &live);
    call(c, quote, NULL); /* stored in the cache */
    call(c, quote, NULL); /* a fresh hit: no I/O */
    server_count("");

    phase("2. outage: the server answers 503");
    fixture_set_outage(srv, FIXTURE_DOWN_503);
    for (i = 0; i < 3; i++)
        call(c, "/ok", &live);

    phase("3. OPEN: calls fail fast, nothing reaches the server");
    before = fixture_requests(srv);
    server_count(" before");
    for (i = 0; i < 5; i++)
        call(c, "/ok", &live);
    /* The quote's freshness has not run out yet (1 s), so the cache would
     * answer it as a plain hit; once it has, the open circuit makes the cache
     * stand in with the stale copy. Waiting 1 s here would overlap the reset
     * timeout, so the request asks for revalidation instead: the entry is
     * treated as stale, the breaker rejects the revalidation, and
     * stale-if-error lets the cache answer. */
    call(c, quote, &(api_options){ .cache = &(api_cache_options){ .revalidate = true } });
    server_count(fixture_requests(srv) == before ? " (unchanged)" : " (CHANGED?)");
    say("   %u rejected calls took %.1f us on average", tally.rejected,
        tally.rejected ? tally.reject_us / tally.rejected : 0.0);

    phase("4. the server is gone (connection refused); wait for the reset timeout");
    fixture_set_outage(srv, FIXTURE_DOWN_REFUSE);
    sleep_ms(RESET_TIMEOUT_MS + 50);
    say("   breaker state now: %s", cb_state_name(api_client_breaker_state(c, "/ok")));
    call(c, "/ok", &live); /* the probe fails: OPEN again */
    call(c, "/ok", &live); /* rejected */

    phase("5. the server is back; wait for the next reset timeout");
    fixture_set_outage(srv, FIXTURE_UP);
    sleep_ms(RESET_TIMEOUT_MS + 50);
    say("   breaker state now: %s", cb_state_name(api_client_breaker_state(c, "/ok")));
    call(c, "/ok", &live); /* probe 1: still HALF_OPEN */
    call(c, "/ok", &live); /* probe 2: CLOSED */

    phase("6. healthy again");
    for (i = 0; i < 3; i++)
        call(c, "/ok", &live);

    phase("summary");
    printf("calls made:                    %u\n", tally.calls);
    printf("  answered by the server:      %u\n", tally.ok_live);
    printf("  rejected by the breaker:     %u (avg %.1f us each, no I/O)\n", tally.rejected,
           tally.rejected ? tally.reject_us / tally.rejected : 0.0);
    printf("  failed after reaching out:   %u\n", tally.failed);
    printf("  served stale by the cache:   %u\n", tally.stale);
    printf("  application fallbacks:       %u\n", tally.fallback);
    printf("requests that reached server:  %llu\n", (unsigned long long)fixture_requests(srv));
    printf("total time:                    %.0f ms\n", now_ms() - t_start);

    api_client_free(c);
    fixture_stop(srv);
    return 0;
}
