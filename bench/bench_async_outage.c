/*
 * The outage scenario of bench_outage, driven from one event-loop thread:
 * a service goes down for a second under a steady rate of calls, with the
 * circuit breaker on and off, side by side in one run.
 *
 * Each run starts its own fixture server, client and engine and lasts 3 s:
 * 1 s healthy, 1 s of outage, 1 s recovered. One thread submits
 * calls_per_sec calls a second on a fixed schedule (the waits between slots
 * are api_async_run timeouts, no sleeps), alternating a cacheable endpoint
 * (max-age=1, stale-if-error=60) and /ok, and never waits for a call to end
 * before submitting the next: unlike bench_outage's blocking workers, no
 * slot is skipped, so a hanging service shows as calls piling up in flight
 * (and as requests reaching it) rather than as calls not made. The default
 * rate, 1000/s, is bench_outage's offered load (2 threads, one call every
 * 2 ms each).
 *
 * The two sides differ only in cb_config.failure_threshold: 5 (on) or
 * 1000000000 (off: the breaker never opens). Both have failure_window_ms
 * 1000, reset_timeout_ms 300, retry max_attempts 2 and a 200 ms deadline
 * per call. The outage is a 503 from every request, then a server that
 * accepts requests and never answers (hang).
 *
 * For each run it reports the requests that reached the server during the
 * outage, the calls by how they were served (from the network, a fresh
 * cache hit, a stale cache entry, or the application's own fallback after
 * an error, of which rejections by the open circuit), the latency the
 * caller saw from submission to its done callback (p50, p99, max), the most
 * calls in flight at once, and how late the loop got to a slot (a done
 * callback or the outage switch holding the thread). A call belongs to the
 * phase it was submitted in. Prints two tables, then one line per figure:
 * "name value unit". It never fails on a figure.
 *
 * The fixture server runs in this process with a thread per connection.
 * With a couple of hundred requests held (hang, breaker off) its threads
 * compete with the loop thread for the CPUs when they wake: the "over"
 * column (how long an api_async_run ran past its timeout, with the thread's
 * CPU time in it) tells such a wait for a CPU (long, little CPU) from work
 * done in the engine (long, as much CPU).
 *
 *   bench_async_outage [calls_per_sec]     (default 1000)
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <cbhttp.h>

#include "bench.h"
#include "fixture.h"

#define PHASE_MS 1000
#define TIMEOUT_MS 200
#define DRAIN_MS 5000 /* a run waits at most this for its last calls */
#define CACHE_PATH "/cache/outage?cc=max-age%3D1%2Cstale-if-error%3D60"
#define BREAKER_OFF_THRESHOLD 1000000000u

static unsigned g_rate = 1000;

enum phase { PH_HEALTHY = 0, PH_OUTAGE, PH_RECOVERED };
enum kind { K_NETWORK = 0, K_FRESH, K_STALE, K_FALLBACK, K_REJECTED, K_COUNT };

/* One call: its response storage and, once done, what the caller saw. */
typedef struct call {
    api_response  resp;
    uint64_t      start_ns;
    double        at_ms; /* when it was submitted, from the first slot */
    double        ms;    /* submission to done */
    unsigned char phase;
    unsigned char kind; /* K_REJECTED is a K_FALLBACK caused by the open circuit */
    bool          done;
} call;

typedef struct figures {
    unsigned calls;
    unsigned kind[K_COUNT]; /* kind[K_FALLBACK] includes the rejections */
    double   p50, p99, max;
} figures;

typedef struct run_result {
    const char *scenario; /* "503", "hang" */
    bool        breaker;
    uint64_t    sent_to_dead, sent_total;
    figures     outage, all;
    double      recovery_ms; /* see recovery() */
    size_t      max_inflight;
    double      max_lag_ms;  /* latest a slot was submitted after its time */
    double      max_over_ms; /* longest api_async_run beyond its timeout */
    double      over_cpu_ms; /* the thread's CPU time in that call: near 0 when
                                the machine, not the engine, held it */
    double      switch_ms;   /* the longest fixture_set_outage (on this thread) */
    unsigned    unfinished;  /* calls still in flight after DRAIN_MS */
} run_result;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int kind_of(cb_err err, const api_response *r)
{
    if (r->from_cache && r->stale)
        return K_STALE;
    if (err != CB_OK)
        return err == CB_ERR_CIRCUIT_OPEN ? K_REJECTED : K_FALLBACK;
    /* A 304 that refreshed the entry went to the network. */
    return r->from_cache && !r->revalidated ? K_FRESH : K_NETWORK;
}

static void on_done(cb_err err, api_response *resp, void *user_data)
{
    call *c = user_data;

    c->ms = (double)(now_ns() - c->start_ns) / 1e6;
    c->kind = (unsigned char)kind_of(err, resp);
    c->done = true;
    api_response_free(resp);
}

/* Nearest rank: the smallest value with at least p of the sample at or
 * below it. v is sorted, n > 0. */
static double pct(const double *v, size_t n, double p)
{
    size_t k = (size_t)(p * (double)n + 0.999999);

    return v[k ? k - 1 : 0];
}

/* Figures of the finished calls submitted in phase only_phase (-1 = all). */
static void tally(const call *calls, size_t n, int only_phase, figures *out)
{
    double *v = malloc(sizeof(*v) * (n ? n : 1));
    size_t  k = 0, i;

    if (!v)
        die("out of memory");
    memset(out, 0, sizeof(*out));
    for (i = 0; i < n; i++) {
        const call *c = &calls[i];

        if (!c->done || (only_phase >= 0 && c->phase != only_phase))
            continue;
        v[k++] = c->ms;
        out->kind[c->kind]++;
        if (c->kind == K_REJECTED)
            out->kind[K_FALLBACK]++;
    }
    out->calls = (unsigned)k;
    if (k) {
        qsort(v, k, sizeof(*v), cmp_double);
        out->p50 = pct(v, k, 0.50);
        out->p99 = pct(v, k, 0.99);
        out->max = v[k - 1];
    }
    free(v);
}

/* From the end of the outage to the submission of the first call after it
 * that was served from the network; -1 when there was none. */
static double recovery(const call *calls, size_t n)
{
    double up = 2.0 * PHASE_MS;
    size_t i;

    for (i = 0; i < n; i++)
        if (calls[i].done && calls[i].at_ms >= up && calls[i].kind == K_NETWORK)
            return calls[i].at_ms - up;
    return -1;
}

/* fixture_set_outage is synchronous (hang -> up releases what it held):
 * timed, as it holds the loop thread. */
static void switch_outage(fixture *f, fixture_outage mode, run_result *out)
{
    uint64_t t = now_ns();
    double   ms;

    fixture_set_outage(f, mode);
    ms = (double)(now_ns() - t) / 1e6;
    if (ms > out->switch_ms)
        out->switch_ms = ms;
}

static void run(const char *scenario, fixture_outage mode, bool breaker, run_result *out)
{
    size_t      max_calls = (size_t)g_rate * 3 * PHASE_MS / 1000 + 16, n = 0;
    call       *calls = calloc(max_calls, sizeof(*calls));
    fixture    *f = fixture_start();
    uint64_t    period = 1000000000u / g_rate, t0, next, end, before = 0, deadline;
    api_client *c;
    api_async  *a = NULL;
    int         phase = PH_HEALTHY;
    size_t      i;

    if (!calls || !f)
        die(calls ? "cannot start the fixture server" : "out of memory");
    memset(out, 0, sizeof(*out));
    c = api_client_new(&(api_client_config){
        .base_url = fixture_url(f),
        .circuit_breaker = { .failure_threshold = breaker ? 5 : BREAKER_OFF_THRESHOLD,
                             .failure_window_ms = 1000,
                             .reset_timeout_ms = 300 },
        .retry = { .max_attempts = 2 },
        .timeout_ms = TIMEOUT_MS });
    if (!c || !(a = api_async_new(c)))
        die("api_client_new / api_async_new failed");

    t0 = next = now_ns() + 20000000u;
    end = t0 + 3 * (uint64_t)PHASE_MS * 1000000u;
    for (;;) {
        uint64_t now = now_ns();
        long     wait_ms;
        double   over, c0;
        int      left;

        /* Phase changes, at their times, from this thread. */
        if (phase == PH_HEALTHY && now >= t0 + (uint64_t)PHASE_MS * 1000000u) {
            before = fixture_requests(f);
            switch_outage(f, mode, out);
            phase = PH_OUTAGE;
            now = now_ns();
        } else if (phase == PH_OUTAGE && now >= t0 + 2 * (uint64_t)PHASE_MS * 1000000u) {
            out->sent_to_dead = fixture_requests(f) - before;
            switch_outage(f, FIXTURE_UP, out);
            phase = PH_RECOVERED;
            now = now_ns();
        }

        /* Every slot that is due, also those a stall of the thread delayed:
         * none is skipped. */
        while (next < end && now >= next && n < max_calls) {
            call  *k = &calls[n];
            double lag = (double)(now - next) / 1e6;
            cb_err err;

            k->start_ns = now;
            k->at_ms = (double)(next - t0) / 1e6;
            k->phase = (unsigned char)phase;
            err = api_async_get(a, (n % 2) ? "/ok" : CACHE_PATH, NULL, &k->resp, on_done, k);
            if (err != CB_OK) {
                /* Not accepted: the caller's fallback, at once. */
                k->ms = (double)(now_ns() - k->start_ns) / 1e6;
                k->kind = (unsigned char)kind_of(err, &k->resp);
                k->done = true;
                api_response_free(&k->resp);
            }
            if (lag > out->max_lag_ms)
                out->max_lag_ms = lag;
            n++;
            next += period;
        }
        if (phase == PH_RECOVERED && (next >= end || n == max_calls))
            break;

        wait_ms = next > now ? (long)((next - now + 999999) / 1000000) : 0;
        c0 = cpu_ns();
        if ((left = api_async_run(a, (unsigned)wait_ms)) < 0)
            die("api_async_run failed");
        over = (double)(now_ns() - now) / 1e6 - (double)wait_ms;
        if (over > out->max_over_ms) {
            out->max_over_ms = over;
            out->over_cpu_ms = (cpu_ns() - c0) / 1e6;
        }
        if ((size_t)left > out->max_inflight)
            out->max_inflight = (size_t)left;
    }

    /* The last calls end within their deadline. */
    deadline = now_ns() + (uint64_t)DRAIN_MS * 1000000u;
    while (api_async_run(a, 100) > 0 && now_ns() < deadline)
        ;
    for (i = 0; i < n; i++)
        out->unfinished += !calls[i].done;

    out->scenario = scenario;
    out->breaker = breaker;
    out->sent_total = fixture_requests(f);
    out->recovery_ms = recovery(calls, n);
    tally(calls, n, PH_OUTAGE, &out->outage);
    tally(calls, n, -1, &out->all);
    /* Calls still in flight end here with CB_ERR_CANCELLED. */
    api_async_free(a);
    api_client_free(c);
    fixture_stop(f);
    free(calls);
}

static void table_row(const run_result *r, uint64_t sent, const figures *x, bool extra)
{
    printf("%-8s %-7s %8llu %6u %8u %8u %6u %8u %6u %8.2f %8.2f %8.2f", r->scenario,
           r->breaker ? "on" : "off", (unsigned long long)sent, x->calls, x->kind[K_NETWORK],
           x->kind[K_FRESH], x->kind[K_STALE], x->kind[K_FALLBACK], x->kind[K_REJECTED], x->p50,
           x->p99, x->max);
    if (extra)
        printf(" %9.1f %9zu %7.2f %7.2f %7.2f %7.2f", r->recovery_ms, r->max_inflight,
               r->max_lag_ms, r->max_over_ms, r->over_cpu_ms, r->switch_ms);
    printf("\n");
}

static void table_head(bool extra)
{
    printf("%-8s %-7s %8s %6s %8s %8s %6s %8s %6s %8s %8s %8s%s\n", "scenario", "breaker", "sent",
           "calls", "net-ok", "cache", "stale", "fallback", "(open)", "p50 ms", "p99 ms", "max ms",
           extra ? "  recovery  inflight  lag ms over ms (cpu)   switch" : "");
}

static void machine(const char *pre, const figures *x)
{
    printf("%s_calls %u calls\n", pre, x->calls);
    printf("%s_network_ok %u calls\n", pre, x->kind[K_NETWORK]);
    printf("%s_cache_fresh %u calls\n", pre, x->kind[K_FRESH]);
    printf("%s_stale %u calls\n", pre, x->kind[K_STALE]);
    printf("%s_fallback %u calls\n", pre, x->kind[K_FALLBACK]);
    printf("%s_rejected %u calls\n", pre, x->kind[K_REJECTED]);
    printf("%s_p50 %.3f ms\n", pre, x->p50);
    printf("%s_p99 %.3f ms\n", pre, x->p99);
    printf("%s_max %.3f ms\n", pre, x->max);
}

int main(int argc, char **argv)
{
    static const struct {
        const char    *name;
        fixture_outage mode;
    } scen[] = { { "503", FIXTURE_DOWN_503 }, { "hang", FIXTURE_DOWN_HANG } };
    run_result r[4];
    int        i;

    if (argc > 1) {
        long v = strtol(argv[1], NULL, 10);

        g_rate = v >= 1 && v <= 100000 ? (unsigned)v : g_rate;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        die("curl_global_init failed");
    signal(SIGPIPE, SIG_IGN);

    /* On then off for each scenario, so that both sides of a pair run close
     * together in time on a shared machine. */
    for (i = 0; i < 4; i++)
        run(scen[i / 2].name, scen[i / 2].mode, i % 2 == 0, &r[i]);

    printf("Outage under a steady rate, one event-loop thread: %u calls/s (GET %s\n"
           "and /ok in turn), %d ms healthy, %d ms down, %d ms recovered; %d ms deadline,\n"
           "2 attempts; breaker on: 5 failures in 1000 ms open it, probe after 300 ms;\n"
           "off: a threshold it never reaches. sent: requests that reached the server;\n"
           "fallback: calls that failed (the application's own fallback), (open) those\n"
           "rejected by the open circuit; latency: submission to done; recovery: ms from\n"
           "the end of the outage to the first call after it served from the network;\n"
           "inflight: most calls in flight at once; lag: latest submission after its slot;\n"
           "over: longest api_async_run past its timeout (cpu: the thread's CPU time in it);\n"
           "switch: longest fixture_set_outage (ms).\n\n",
           g_rate, CACHE_PATH, PHASE_MS, PHASE_MS, PHASE_MS, TIMEOUT_MS);
    printf("During the outage (calls submitted in it)\n");
    table_head(true);
    for (i = 0; i < 4; i++)
        table_row(&r[i], r[i].sent_to_dead, &r[i].outage, true);
    printf("\nThe whole run\n");
    table_head(false);
    for (i = 0; i < 4; i++)
        table_row(&r[i], r[i].sent_total, &r[i].all, false);
    for (i = 0; i < 4; i++)
        if (r[i].unfinished)
            printf("%s, breaker %s: %u calls had not ended %d ms after the run\n", r[i].scenario,
                   r[i].breaker ? "on" : "off", r[i].unfinished, DRAIN_MS);
    printf("\n");

    for (i = 0; i < 4; i++) {
        char pre[64], all[80];

        snprintf(pre, sizeof(pre), "async_outage_%s_%s", r[i].scenario,
                 r[i].breaker ? "on" : "off");
        snprintf(all, sizeof(all), "%s_all", pre);
        printf("%s_sent_to_dead %llu requests\n", pre, (unsigned long long)r[i].sent_to_dead);
        machine(pre, &r[i].outage);
        printf("%s_recovery %.1f ms\n", pre, r[i].recovery_ms);
        printf("%s_max_inflight %zu calls\n", pre, r[i].max_inflight);
        printf("%s_max_lag %.2f ms\n", pre, r[i].max_lag_ms);
        printf("%s_max_run_over %.2f ms\n", pre, r[i].max_over_ms);
        printf("%s_max_run_over_cpu %.2f ms\n", pre, r[i].over_cpu_ms);
        printf("%s_switch %.2f ms\n", pre, r[i].switch_ms);
        printf("%s_sent %llu requests\n", all, (unsigned long long)r[i].sent_total);
        machine(all, &r[i].all);
    }
    curl_global_cleanup();
    return 0;
}
