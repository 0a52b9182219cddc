/*
 * cbhttp against raw libcurl on loopback, side by side in one run.
 *
 *   1. sequential keep-alive GETs of the fixture's /ok: api_get (cache
 *      disabled) vs one reused libcurl easy handle (NOSIGNAL, same URL);
 *   2. the same with 2 and 4 threads: one shared api_client vs one easy
 *      handle per thread;
 *   3. failing: a rejection with the circuit open, vs a call that fails
 *      without a breaker against a closed port and against a server that
 *      never answers (/hang, 200 ms timeout);
 *   4. (1) again against a private nginx (tests/helpers/nginx.c), when
 *      nginx is installed.
 *
 * Rounds are interleaved (A, B, A, B, ...) and each figure is the median of
 * ROUNDS rounds; a ratio is the median of the per-round ratios. The fixture
 * server runs in this process and competes for the CPUs with the client;
 * it does so equally for both sides. Prints a table, then one line per
 * figure: "name value unit". Targets are reported, never enforced.
 *
 *   bench_http [requests_per_round]     (default 3000)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <cbhttp.h>

#include "bench.h"
#include "fixture.h"
#include "helpers/nginx.h"

#define ROUNDS 7
#define MAX_THREADS 4
#define REJECT_CALLS 1000000ul
#define REFUSED_CALLS 200
#define HANG_CALLS 3
#define HANG_TIMEOUT_MS 200

#define TARGET_RATIO 0.97
#define TARGET_REJECT_NS 300.0

static unsigned long g_requests = 3000; /* per round, per side */

/* ---- raw libcurl -------------------------------------------------------- */

/* A raw handle and its body (bench.h's rawbuf). */
typedef struct raw {
    CURL  *e;
    rawbuf body;
} raw;

static void raw_init(raw *r, const char *url, long timeout_ms)
{
    memset(r, 0, sizeof(*r));
    if (!(r->e = curl_easy_init()))
        die("curl_easy_init failed");
    curl_easy_setopt(r->e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->e, CURLOPT_URL, url);
    curl_easy_setopt(r->e, CURLOPT_PROXY, ""); /* cbhttp ignores *_proxy too */
    curl_easy_setopt(r->e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(r->e, CURLOPT_WRITEFUNCTION, raw_write);
    curl_easy_setopt(r->e, CURLOPT_WRITEDATA, &r->body);
    if (timeout_ms)
        curl_easy_setopt(r->e, CURLOPT_TIMEOUT_MS, timeout_ms);
}

static void raw_free(raw *r)
{
    curl_easy_cleanup(r->e);
    free(r->body.data);
}

/* One GET; returns the status (0 on a transport error). */
static long raw_get(raw *r)
{
    long status = 0;

    r->body.len = 0;
    if (curl_easy_perform(r->e) != CURLE_OK)
        return 0;
    curl_easy_getinfo(r->e, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* ---- the two sides of a throughput round ---------------------------------- */

typedef struct side {
    api_client *client;            /* cbhttp side */
    const char *path;              /* its path */
    raw         raws[MAX_THREADS]; /* libcurl side: one handle per thread */
} side;

typedef struct worker {
    pthread_t          tid;
    side              *s;
    int                idx;
    bool               use_cbhttp;
    unsigned long      n;
    pthread_barrier_t *start;
    unsigned long      errors;
} worker;

static unsigned long run_cbhttp(api_client *c, const char *path, unsigned long n)
{
    unsigned long errors = 0, i;

    for (i = 0; i < n; i++) {
        api_response resp;

        if (api_get(c, path, NULL, &resp) != CB_OK || resp.status != 200)
            errors++;
        api_response_free(&resp);
    }
    return errors;
}

static unsigned long run_raw(raw *r, unsigned long n)
{
    unsigned long errors = 0, i;

    for (i = 0; i < n; i++)
        if (raw_get(r) != 200)
            errors++;
    return errors;
}

static void *worker_main(void *arg)
{
    worker *w = arg;

    pthread_barrier_wait(w->start);
    w->errors = w->use_cbhttp ? run_cbhttp(w->s->client, w->s->path, w->n)
                              : run_raw(&w->s->raws[w->idx], w->n);
    return NULL;
}

/* n requests spread over nthreads threads; returns requests per second. */
static double round_rps(side *s, bool use_cbhttp, int nthreads, unsigned long n)
{
    worker            w[MAX_THREADS];
    pthread_barrier_t start;
    unsigned long     per = n / (unsigned long)nthreads, errors = 0;
    double            t0;
    int               i;

    if (nthreads == 1) {
        t0 = wall_ns();
        errors = use_cbhttp ? run_cbhttp(s->client, s->path, n) : run_raw(&s->raws[0], n);
        if (errors)
            fprintf(stderr, "bench_http: %lu failed requests\n", errors);
        return (double)n / ((wall_ns() - t0) / 1e9);
    }
    pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
    for (i = 0; i < nthreads; i++) {
        w[i] = (worker){ .s = s, .idx = i, .use_cbhttp = use_cbhttp, .n = per, .start = &start };
        if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
            die("pthread_create failed");
    }
    pthread_barrier_wait(&start);
    t0 = wall_ns();
    for (i = 0; i < nthreads; i++) {
        pthread_join(w[i].tid, NULL);
        errors += w[i].errors;
    }
    t0 = wall_ns() - t0;
    pthread_barrier_destroy(&start);
    if (errors)
        fprintf(stderr, "bench_http: %lu failed requests\n", errors);
    return (double)(per * (unsigned long)nthreads) / (t0 / 1e9);
}

typedef struct pair {
    double cbhttp_rps, curl_rps, ratio;
} pair;

/* Interleaved rounds of cbhttp (A) and raw libcurl (B). */
static pair compare(side *s, int nthreads, unsigned long n)
{
    double a[ROUNDS], b[ROUNDS], q[ROUNDS];
    pair   p;
    int    k;

    round_rps(s, true, nthreads, n / 10 + 1); /* warm-up: connections open */
    round_rps(s, false, nthreads, n / 10 + 1);
    for (k = 0; k < ROUNDS; k++) {
        a[k] = round_rps(s, true, nthreads, n);
        b[k] = round_rps(s, false, nthreads, n);
        q[k] = a[k] / b[k];
    }
    p.cbhttp_rps = median(a, ROUNDS);
    p.curl_rps = median(b, ROUNDS);
    p.ratio = median(q, ROUNDS);
    return p;
}

static api_client *client_for(const char *base)
{
    api_client *c = api_client_new(&(api_client_config){
        .base_url = base,
        .timeout_ms = 10000,
        .cache = { .disabled = true },
    });

    if (!c)
        die("api_client_new failed");
    return c;
}

/* Benchmarks sequential and threaded GETs of base/ok. */
static void throughput(const char *base, int max_threads, pair *out /* [3] */)
{
    static const int threads[] = { 1, 2, 4 };
    char             url[256];
    side             s;
    int              i, t;

    snprintf(url, sizeof(url), "%s/ok", base);
    s.client = client_for(base);
    s.path = "/ok";
    for (i = 0; i < MAX_THREADS; i++)
        raw_init(&s.raws[i], url, 10000);
    for (t = 0; t < 3 && threads[t] <= max_threads; t++)
        out[t] = compare(&s, threads[t], g_requests);
    for (i = 0; i < MAX_THREADS; i++)
        raw_free(&s.raws[i]);
    api_client_free(s.client);
}

/* ---- failing calls --------------------------------------------------------- */

/* A loopback port nobody listens on: bound, then closed. */
static unsigned short closed_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t          len = sizeof(a);
    int                fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("cannot find a free port");
    close(fd);
    return ntohs(a.sin_port);
}

/* ns per api_get rejected by an open circuit; *cpu gets the CPU time. */
static double reject_round(api_client *c, unsigned long n, double *cpu)
{
    unsigned long i, wrong = 0;
    double        t0 = wall_ns(), c0 = cpu_ns();

    for (i = 0; i < n; i++) {
        api_response resp;

        wrong += api_get(c, "/ok", NULL, &resp) != CB_ERR_CIRCUIT_OPEN;
        api_response_free(&resp);
    }
    *cpu = (cpu_ns() - c0) / (double)n;
    t0 = wall_ns() - t0;
    if (wrong)
        fprintf(stderr, "bench_http: %lu calls were not rejected\n", wrong);
    return t0 / (double)n;
}

/* us per call that fails against url: raw libcurl. */
static double fail_raw_round(raw *r, int n)
{
    int    i, wrong = 0;
    double t0 = wall_ns();

    for (i = 0; i < n; i++)
        wrong += raw_get(r) != 0;
    t0 = wall_ns() - t0;
    if (wrong)
        fprintf(stderr, "bench_http: %d raw calls did not fail\n", wrong);
    return t0 / 1e3 / n;
}

/* us per call that fails against url: cbhttp with no breaker in the way. */
static double fail_cbhttp_round(api_client *c, const char *url, unsigned timeout_ms, int n)
{
    api_options opts = { .timeout_ms = timeout_ms };
    int         i, wrong = 0;
    double      t0 = wall_ns();

    for (i = 0; i < n; i++) {
        api_response resp;
        cb_err       err = api_get(c, url, &opts, &resp);

        wrong += err == CB_OK || err == CB_ERR_CIRCUIT_OPEN;
        api_response_free(&resp);
    }
    t0 = wall_ns() - t0;
    if (wrong)
        fprintf(stderr, "bench_http: %d cbhttp calls did not fail on the network\n", wrong);
    return t0 / 1e3 / n;
}

typedef struct failing {
    double reject_ns;                           /* circuit open, cache disabled */
    double reject_cached_ns;                    /* circuit open, default client (cache on) */
    double reject_cpu_ns, reject_cached_cpu_ns; /* the same in CPU time */
    double refused_curl_us, refused_cbhttp_us;
    double hang_curl_ms, hang_cbhttp_ms;
} failing;

static void failing_calls(fixture *f, failing *out)
{
    double      a[ROUNDS], a2[ROUNDS], b[ROUNDS], c[ROUNDS], h1[HANG_CALLS], h2[HANG_CALLS];
    double      ac[ROUNDS], ac2[ROUNDS], ignored;
    char        refused_url[64], hang_url[256];
    cb_config   open_long = { .reset_timeout_ms = 3600000 };
    api_client *tripped, *tripped_cached, *nobreaker;
    raw         r;
    int         k;

    /* Rejections: the breaker of the fixture's origin is tripped by hand and
     * stays OPEN for an hour. */
    tripped = api_client_new(&(api_client_config){
        .base_url = fixture_url(f), .circuit_breaker = open_long, .cache = { .disabled = true } });
    tripped_cached = api_client_new(
        &(api_client_config){ .base_url = fixture_url(f), .circuit_breaker = open_long });
    /* The comparison: the same library with the breaker out of the way and
     * a single attempt per call. */
    nobreaker =
        api_client_new(&(api_client_config){ .circuit_breaker = { .mode = CB_MODE_DISABLED },
                                             .retry = { .max_attempts = 1 },
                                             .cache = { .disabled = true } });
    if (!tripped || !tripped_cached || !nobreaker)
        die("api_client_new failed");
    api_client_trip(tripped, "/ok");
    api_client_trip(tripped_cached, "/ok");
    snprintf(refused_url, sizeof(refused_url), "http://127.0.0.1:%u/ok", closed_port());
    raw_init(&r, refused_url, 10000);

    reject_round(tripped, REJECT_CALLS / 10, &ignored);
    reject_round(tripped_cached, REJECT_CALLS / 10, &ignored);
    for (k = 0; k < ROUNDS; k++) {
        a[k] = reject_round(tripped, REJECT_CALLS, &ac[k]);
        a2[k] = reject_round(tripped_cached, REJECT_CALLS, &ac2[k]);
        b[k] = fail_raw_round(&r, REFUSED_CALLS);
        c[k] = fail_cbhttp_round(nobreaker, refused_url, 10000, REFUSED_CALLS);
    }
    out->reject_ns = median(a, ROUNDS);
    out->reject_cached_ns = median(a2, ROUNDS);
    out->reject_cpu_ns = median(ac, ROUNDS);
    out->reject_cached_cpu_ns = median(ac2, ROUNDS);
    out->refused_curl_us = median(b, ROUNDS);
    out->refused_cbhttp_us = median(c, ROUNDS);
    raw_free(&r);

    /* A server that accepts and never answers: a few calls only. */
    snprintf(hang_url, sizeof(hang_url), "%s/hang", fixture_url(f));
    raw_init(&r, hang_url, HANG_TIMEOUT_MS);
    for (k = 0; k < HANG_CALLS; k++) {
        h1[k] = fail_raw_round(&r, 1) / 1e3;
        h2[k] = fail_cbhttp_round(nobreaker, hang_url, HANG_TIMEOUT_MS, 1) / 1e3;
    }
    out->hang_curl_ms = median(h1, HANG_CALLS);
    out->hang_cbhttp_ms = median(h2, HANG_CALLS);
    raw_free(&r);

    api_client_free(tripped);
    api_client_free(tripped_cached);
    api_client_free(nobreaker);
}

/* ---- main --------------------------------------------------------------------- */

static const char *verdict(bool met) { return met ? "target met" : "TARGET MISSED"; }

int main(int argc, char **argv)
{
    static const int threads[] = { 1, 2, 4 };
    pair             fx[3], ng;
    failing          fl;
    fixture         *f;
    bool             have_nginx = tu_nginx_binary() != NULL;
    int              t;

    if (argc > 1 && strtoul(argv[1], NULL, 10) > 0)
        g_requests = strtoul(argv[1], NULL, 10);
    /* Before any thread exists: libcurl's global init is not thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        die("curl_global_init failed");
    signal(SIGPIPE, SIG_IGN);
    if (!(f = fixture_start()))
        die("cannot start the fixture server");

    throughput(fixture_url(f), 4, fx);
    failing_calls(f, &fl);
    fixture_stop(f);

    if (have_nginx) {
        char      why[256];
        tu_nginx *n = tu_nginx_start(NULL, why, sizeof(why));

        if (!n) {
            fprintf(stderr, "bench_http: %s\n", why);
            have_nginx = false;
        } else {
            throughput(tu_nginx_url(n), 1, &ng);
            tu_nginx_stop(n);
        }
    }

    printf("HTTP on loopback, %lu requests per side per round, median of %d interleaved "
           "rounds\n(the in-process fixture server shares the CPUs with the client, "
           "equally for both sides)\n\n",
           g_requests, ROUNDS);
    printf("%-36s %12s %12s %8s\n", "keep-alive GET /ok (fixture)", "cbhttp", "libcurl", "ratio");
    for (t = 0; t < 3; t++)
        printf("%d thread(s)%-25s %10.0f/s %10.0f/s %8.3f  %s\n", threads[t], "", fx[t].cbhttp_rps,
               fx[t].curl_rps, fx[t].ratio, verdict(fx[t].ratio >= TARGET_RATIO));
    if (have_nginx)
        printf("%-36s %10.0f/s %10.0f/s %8.3f  %s\n", "1 thread, nginx /ok", ng.cbhttp_rps,
               ng.curl_rps, ng.ratio, verdict(ng.ratio >= TARGET_RATIO));
    else
        printf("%-36s skipped (nginx not found or did not start)\n", "nginx");
    printf("\n%-52s %12s\n", "a failing call", "time/call");
    printf("%-52s %9.1f ns  %s\n", "rejected, circuit open (cache disabled), wall", fl.reject_ns,
           verdict(fl.reject_ns <= TARGET_REJECT_NS));
    printf("%-52s %9.1f ns  %s\n", "  the same, thread CPU time", fl.reject_cpu_ns,
           verdict(fl.reject_cpu_ns <= TARGET_REJECT_NS));
    printf("%-52s %9.1f ns\n", "rejected, circuit open (default client, cache on)",
           fl.reject_cached_ns);
    printf("%-52s %9.1f ns\n", "  the same, thread CPU time", fl.reject_cached_cpu_ns);
    printf("%-52s %9.1f us\n", "connection refused, raw libcurl", fl.refused_curl_us);
    printf("%-52s %9.1f us\n", "connection refused, cbhttp without breaker", fl.refused_cbhttp_us);
    printf("%-52s %9.1f ms\n", "server never answers (200 ms timeout), raw libcurl",
           fl.hang_curl_ms);
    printf("%-52s %9.1f ms\n", "server never answers (200 ms timeout), cbhttp", fl.hang_cbhttp_ms);
    printf("%-52s %9.0fx\n", "refused / rejected", fl.refused_curl_us * 1e3 / fl.reject_ns);
    printf("\n");

    printf("http_seq_cbhttp_rps %.0f rps\n", fx[0].cbhttp_rps);
    printf("http_seq_curl_rps %.0f rps\n", fx[0].curl_rps);
    printf("http_seq_ratio %.3f ratio\n", fx[0].ratio);
    for (t = 1; t < 3; t++) {
        printf("http_%dt_cbhttp_rps %.0f rps\n", threads[t], fx[t].cbhttp_rps);
        printf("http_%dt_curl_rps %.0f rps\n", threads[t], fx[t].curl_rps);
        printf("http_%dt_ratio %.3f ratio\n", threads[t], fx[t].ratio);
    }
    if (have_nginx) {
        printf("nginx_seq_cbhttp_rps %.0f rps\n", ng.cbhttp_rps);
        printf("nginx_seq_curl_rps %.0f rps\n", ng.curl_rps);
        printf("nginx_seq_ratio %.3f ratio\n", ng.ratio);
    }
    printf("http_reject_ns %.1f ns\n", fl.reject_ns);
    printf("http_reject_cpu_ns %.1f ns\n", fl.reject_cpu_ns);
    printf("http_reject_cache_on_ns %.1f ns\n", fl.reject_cached_ns);
    printf("http_reject_cache_on_cpu_ns %.1f ns\n", fl.reject_cached_cpu_ns);
    printf("http_refused_curl_us %.1f us\n", fl.refused_curl_us);
    printf("http_refused_cbhttp_us %.1f us\n", fl.refused_cbhttp_us);
    printf("http_hang_curl_ms %.1f ms\n", fl.hang_curl_ms);
    printf("http_hang_cbhttp_ms %.1f ms\n", fl.hang_cbhttp_ms);
    curl_global_cleanup();
    return 0;
}
