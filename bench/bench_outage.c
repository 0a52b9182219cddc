/*
 * The outage scenario: a service goes down for a second under steady load,
 * with the circuit breaker on and off, side by side in one run.
 *
 * Each run starts its own fixture server and client and lasts 3 s: 1 s
 * healthy, 1 s of outage, 1 s recovered. Two worker threads (by default)
 * share the client and each makes one call every 2 ms on a fixed schedule,
 * alternating a cacheable endpoint (max-age=1, stale-if-error=60) and /ok.
 * A call runs to its end before the next one starts: slots that pass while
 * a call is still running are skipped and counted, not made up later (so a
 * hanging service also shows as calls the caller could not make).
 *
 * With so few synchronous callers a hanging service can hold at most one
 * request per worker: without a breaker two workers send it only about ten
 * a second, and the five failures that open the breaker take some 600 ms to
 * gather. The breaker's gain then shows in the calls served (stale or
 * fallback at once instead of after the deadline) more than in the requests
 * spared. More workers at a longer period (bench_outage 16 16: the same
 * offered load) show the many-callers case.
 *
 * The two sides differ only in cb_config.mode: CB_MODE_NORMAL (on) or
 * CB_MODE_DISABLED (off). Both have failure_threshold 5, failure_window_ms
 * 1000, reset_timeout_ms 300, retry max_attempts 2 and a 200 ms deadline per
 * call. The outage is a 503 from every request, then a server that accepts
 * requests and never answers (hang).
 *
 * For each run it reports the requests that reached the server during the
 * outage, the calls by how they were served (from the network, a fresh
 * cache hit, a stale cache entry, or the application's own fallback after
 * an error, of which rejections by the open circuit), and the latency the
 * caller saw (p50, p99, max), for the outage window and for the whole run.
 * A call belongs to the phase it started in. Prints two tables, then one
 * line per figure: "name value unit". It never fails on a figure.
 *
 *   bench_outage [workers [period_ms]]     (default 2 workers, 2 ms)
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <cbhttp.h>

#include "bench.h"
#include "fixture.h"

#define MAX_WORKERS 64
#define PHASE_MS 1000
#define TIMEOUT_MS 200
#define CACHE_PATH "/cache/outage?cc=max-age%3D1%2Cstale-if-error%3D60"

static int      g_workers = 2;
static unsigned g_period_ms = 2;
/* Slots in a run, plus slack: a worker never makes more calls than this. */
static int g_max_calls;

enum phase { PH_HEALTHY = 0, PH_OUTAGE, PH_RECOVERED, PH_STOP };
enum kind { K_NETWORK = 0, K_FRESH, K_STALE, K_FALLBACK, K_REJECTED, K_COUNT };

typedef struct sample {
    double        at_ms; /* when it started, from the first slot */
    double        ms;
    unsigned char phase;
    unsigned char kind; /* K_REJECTED is a K_FALLBACK caused by the open circuit */
} sample;

typedef struct worker {
    pthread_t         thread;
    int               id;
    api_client       *client;
    const atomic_int *phase;
    uint64_t          t0_ns;
    sample           *s; /* g_max_calls */
    int               n;
    unsigned          skipped[PH_STOP]; /* per phase */
} worker;

/* The figures of one window (the outage, or the whole run). */
typedef struct figures {
    unsigned calls, skipped;
    unsigned kind[K_COUNT]; /* kind[K_FALLBACK] includes the rejections */
    double   p50, p99, max;
} figures;

typedef struct run_result {
    const char *scenario; /* "503", "hang" */
    bool        breaker;
    uint64_t    sent_to_dead, sent_total;
    figures     outage, all;
    double      recovery_ms; /* see recovery() */
} run_result;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t_ns)
{
    struct timespec ts = { .tv_sec = (time_t)(t_ns / 1000000000u),
                           .tv_nsec = (long)(t_ns % 1000000000u) };

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
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

static void *worker_main(void *arg)
{
    worker  *w = arg;
    uint64_t next = w->t0_ns, period = (uint64_t)g_period_ms * 1000000u;
    int      i;

    for (i = 0; i < g_max_calls; i++) {
        api_response resp;
        const char  *path = (i + w->id) % 2 ? "/ok" : CACHE_PATH;
        uint64_t     start, end;
        cb_err       err;
        int          ph;

        sleep_until(next);
        if ((ph = atomic_load(w->phase)) == PH_STOP)
            break;
        start = now_ns();
        err = api_get(w->client, path, NULL, &resp);
        end = now_ns();
        w->s[w->n].at_ms = (double)(start - w->t0_ns) / 1e6;
        w->s[w->n].ms = (double)(end - start) / 1e6;
        w->s[w->n].phase = (unsigned char)ph;
        w->s[w->n].kind = (unsigned char)kind_of(err, &resp);
        w->n++;
        api_response_free(&resp);

        /* Slots that passed during the call are skipped, not made up. */
        next += period;
        if (end > next) {
            uint64_t missed = (end - next) / period + 1;

            w->skipped[ph] += (unsigned)missed;
            next += missed * period;
        }
    }
    return NULL;
}

/* Nearest rank: the smallest value with at least p of the sample at or
 * below it. v is sorted, n > 0. */
static double pct(const double *v, size_t n, double p)
{
    size_t k = (size_t)(p * (double)n + 0.999999);

    return v[k ? k - 1 : 0];
}

/* Figures of the calls that started in phase only_phase (-1 = all). */
static void tally(worker *ws, int only_phase, figures *out)
{
    double *v = malloc(sizeof(*v) * (size_t)g_workers * (size_t)g_max_calls);
    size_t  n = 0;
    int     t, i;

    if (!v)
        die("out of memory");
    memset(out, 0, sizeof(*out));
    for (t = 0; t < g_workers; t++) {
        for (i = 0; i < ws[t].n; i++) {
            const sample *s = &ws[t].s[i];

            if (only_phase >= 0 && s->phase != only_phase)
                continue;
            v[n++] = s->ms;
            out->kind[s->kind]++;
            if (s->kind == K_REJECTED)
                out->kind[K_FALLBACK]++;
        }
        for (i = 0; i < PH_STOP; i++)
            if (only_phase < 0 || i == only_phase)
                out->skipped += ws[t].skipped[i];
    }
    out->calls = (unsigned)n;
    if (n) {
        qsort(v, n, sizeof(*v), cmp_double);
        out->p50 = pct(v, n, 0.50);
        out->p99 = pct(v, n, 0.99);
        out->max = v[n - 1];
    }
    free(v);
}

/* From the end of the outage to the start of the first call after it that
 * was served from the network; -1 when there was none. */
static double recovery(const worker *ws)
{
    double up = 2.0 * PHASE_MS, best = -1;
    int    t, i;

    for (t = 0; t < g_workers; t++)
        for (i = 0; i < ws[t].n; i++) {
            const sample *s = &ws[t].s[i];

            if (s->at_ms >= up && s->kind == K_NETWORK) {
                if (best < 0 || s->at_ms - up < best)
                    best = s->at_ms - up;
                break;
            }
        }
    return best;
}

static void run(const char *scenario, fixture_outage mode, bool breaker, run_result *out)
{
    atomic_int  phase = PH_HEALTHY;
    worker     *ws = calloc((size_t)g_workers, sizeof(*ws));
    fixture    *f = fixture_start();
    api_client *c;
    uint64_t    t0, before;
    int         t;

    if (!ws || !f)
        die(ws ? "cannot start the fixture server" : "out of memory");
    for (t = 0; t < g_workers; t++)
        if (!(ws[t].s = malloc(sizeof(*ws[t].s) * (size_t)g_max_calls)))
            die("out of memory");
    c = api_client_new(&(api_client_config){
        .base_url = fixture_url(f),
        .circuit_breaker = { .failure_threshold = 5,
                             .failure_window_ms = 1000,
                             .reset_timeout_ms = 300,
                             .mode = breaker ? CB_MODE_NORMAL : CB_MODE_DISABLED },
        .retry = { .max_attempts = 2 },
        .timeout_ms = TIMEOUT_MS });
    if (!c)
        die("api_client_new failed");

    t0 = now_ns() + 20000000u; /* the first slot, once every thread is up */
    for (t = 0; t < g_workers; t++) {
        ws[t].id = t;
        ws[t].client = c;
        ws[t].phase = &phase;
        ws[t].t0_ns = t0;
        if (pthread_create(&ws[t].thread, NULL, worker_main, &ws[t]) != 0)
            die("pthread_create failed");
    }

    sleep_until(t0 + (uint64_t)PHASE_MS * 1000000u);
    before = fixture_requests(f);
    fixture_set_outage(f, mode);
    atomic_store(&phase, PH_OUTAGE);
    sleep_until(t0 + 2 * (uint64_t)PHASE_MS * 1000000u);
    atomic_store(&phase, PH_RECOVERED);
    out->sent_to_dead = fixture_requests(f) - before;
    fixture_set_outage(f, FIXTURE_UP);
    sleep_until(t0 + 3 * (uint64_t)PHASE_MS * 1000000u);
    atomic_store(&phase, PH_STOP);
    for (t = 0; t < g_workers; t++)
        pthread_join(ws[t].thread, NULL);

    out->scenario = scenario;
    out->breaker = breaker;
    out->sent_total = fixture_requests(f);
    out->recovery_ms = recovery(ws);
    tally(ws, PH_OUTAGE, &out->outage);
    tally(ws, -1, &out->all);
    api_client_free(c);
    fixture_stop(f);
    for (t = 0; t < g_workers; t++)
        free(ws[t].s);
    free(ws);
}

static void table_row(const run_result *r, uint64_t sent, const figures *x, bool recov)
{
    printf("%-8s %-7s %8llu %6u %8u %8u %6u %8u %6u %7u %8.2f %8.2f %8.2f", r->scenario,
           r->breaker ? "on" : "off", (unsigned long long)sent, x->calls, x->kind[K_NETWORK],
           x->kind[K_FRESH], x->kind[K_STALE], x->kind[K_FALLBACK], x->kind[K_REJECTED], x->skipped,
           x->p50, x->p99, x->max);
    if (recov)
        printf(" %9.1f", r->recovery_ms);
    printf("\n");
}

static void table_head(bool recov)
{
    printf("%-8s %-7s %8s %6s %8s %8s %6s %8s %6s %7s %8s %8s %8s%s\n", "scenario", "breaker",
           "sent", "calls", "net-ok", "cache", "stale", "fallback", "(open)", "skipped", "p50 ms",
           "p99 ms", "max ms", recov ? " recovery" : "");
}

static void machine(const char *pre, const figures *x)
{
    printf("%s_calls %u calls\n", pre, x->calls);
    printf("%s_network_ok %u calls\n", pre, x->kind[K_NETWORK]);
    printf("%s_cache_fresh %u calls\n", pre, x->kind[K_FRESH]);
    printf("%s_stale %u calls\n", pre, x->kind[K_STALE]);
    printf("%s_fallback %u calls\n", pre, x->kind[K_FALLBACK]);
    printf("%s_rejected %u calls\n", pre, x->kind[K_REJECTED]);
    printf("%s_skipped %u calls\n", pre, x->skipped);
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

        g_workers = v >= 1 && v <= MAX_WORKERS ? (int)v : g_workers;
    }
    if (argc > 2) {
        long v = strtol(argv[2], NULL, 10);

        g_period_ms = v >= 1 && v <= 1000 ? (unsigned)v : g_period_ms;
    }
    g_max_calls = (int)(3 * PHASE_MS / g_period_ms) + 100;

    /* Before any thread exists: libcurl's global init is not thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        die("curl_global_init failed");
    signal(SIGPIPE, SIG_IGN);

    /* On then off for each scenario, so that both sides of a pair run close
     * together in time on a shared machine. */
    for (i = 0; i < 4; i++)
        run(scen[i / 2].name, scen[i / 2].mode, i % 2 == 0, &r[i]);

    printf("Outage under steady load: %d threads, one call each every %d ms (GET %s\n"
           "and /ok in turn), %d ms healthy, %d ms down, %d ms recovered; %d ms deadline,\n"
           "2 attempts; breaker: 5 failures in 1000 ms open it, probe after 300 ms.\n"
           "sent: requests that reached the server; fallback: calls that failed (the\n"
           "application's own fallback), (open) those rejected by the open circuit;\n"
           "skipped: scheduled calls not made because the worker was still waiting;\n"
           "recovery: ms from the end of the outage to the first call after it served\n"
           "from the network.\n\n",
           g_workers, g_period_ms, CACHE_PATH, PHASE_MS, PHASE_MS, PHASE_MS, TIMEOUT_MS);
    printf("During the outage (calls that started in it)\n");
    table_head(true);
    for (i = 0; i < 4; i++)
        table_row(&r[i], r[i].sent_to_dead, &r[i].outage, true);
    printf("\nThe whole run\n");
    table_head(false);
    for (i = 0; i < 4; i++)
        table_row(&r[i], r[i].sent_total, &r[i].all, false);
    printf("\n");

    for (i = 0; i < 4; i++) {
        char pre[64], all[80];

        snprintf(pre, sizeof(pre), "outage_%s_%s", r[i].scenario, r[i].breaker ? "on" : "off");
        snprintf(all, sizeof(all), "%s_all", pre);
        printf("%s_sent_to_dead %llu requests\n", pre, (unsigned long long)r[i].sent_to_dead);
        machine(pre, &r[i].outage);
        printf("%s_recovery %.1f ms\n", pre, r[i].recovery_ms);
        printf("%s_sent %llu requests\n", all, (unsigned long long)r[i].sent_total);
        machine(all, &r[i].all);
    }
    curl_global_cleanup();
    return 0;
}
