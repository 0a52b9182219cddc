/*
 * The async engine (api_async_*) on one thread, against raw libcurl multi
 * and against itself, in one run.
 *
 *   1. throughput with 32 calls in flight: GET /ok of a private nginx over
 *      plain HTTP/1.1 keep-alive, cbhttp (api_async_get + api_async_run,
 *      each done submitting the next call; cache disabled, one attempt per
 *      call) vs raw libcurl multi with 32 reused easy handles
 *      (curl_multi_perform + curl_multi_poll, the same URL, and the same
 *      request on the wire: the raw side sends the User-Agent line cbhttp
 *      sends by default, as a header line as cbhttp does), rounds
 *      interleaved; requests per second, and the loop thread's CPU time
 *      per request (which other load on the machine disturbs less);
 *   2. memory: CALLS calls in flight at once on one engine, against an
 *      endpoint that answers after a delay; cbhttp's own bytes per call in
 *      flight, counted by an allocator installed with cb_set_allocator
 *      (libcurl's own allocations are counted apart, through
 *      curl_global_init_mem, and not in the figure). It runs in a child
 *      process, because an allocator must be installed before any other
 *      call, and the counting must not slow the throughput rounds;
 *   3. the cost of api_async_get rejected by an open breaker: submission
 *      plus its done on the next run of the loop, beside the blocking
 *      api_get rejection measured in the same run.
 *
 * The blocking api_get against curl_easy_perform is bench_http's
 * http_seq_ratio / nginx_seq_ratio; it is not measured again here.
 *
 * Needs nginx for (1) and for (2) at 10,000 calls: the fixture server runs
 * a thread per connection and libmicrohttpd closes connections beyond its
 * default limit (FD_SETSIZE - 4 = 1020; fixtures/fixture.c sets none), so
 * (2) runs 1,000 calls against the fixture's /delay/{ms} and, with nginx,
 * 10,000 against nginx's /sleep/{s} (the echo module). The file descriptor
 * limit is raised to its hard limit for the 10,000 sockets.
 *
 * Each throughput figure is the median of ROUNDS rounds; a ratio is the
 * median of the per-round ratios. Prints a table, then one line per figure:
 * "name value unit". Targets are reported, never enforced.
 *
 *   bench_async [requests_per_round [calls_in_flight_for_memory]]
 *               (defaults 20000 and 10000)
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <cbhttp.h>

#include "bench.h"
#include "fixture.h"
#include "helpers/nginx.h"

#define ROUNDS 7
#define INFLIGHT 32
#define REJECT_CALLS 200000ul
#define REJECT_BATCH 1000
#define FIXTURE_MEM_CALLS 1000 /* within libmicrohttpd's default connection limit */

#define TARGET_RATIO 0.95
#define TARGET_BYTES_PER_CALL 2048.0

static unsigned long g_requests = 20000; /* per round, per side */
static unsigned      g_mem_calls = 10000;

/* ---- raw libcurl multi ------------------------------------------------------ */

typedef struct rawmulti {
    CURLM             *m;
    CURL              *e[INFLIGHT];
    rawbuf             body[INFLIGHT];
    char               ua[64];
    struct curl_slist *headers; /* cbhttp's default User-Agent line */
} rawmulti;

static void rawmulti_init(rawmulti *r, const char *url)
{
    int i;

    memset(r, 0, sizeof(*r));
    if (!(r->m = curl_multi_init()))
        die("curl_multi_init failed");
    /* What cbhttp puts on the wire by default (api_client_config.user_agent
     * NULL): the same bytes, so that the ratio compares the work around
     * one request, not two different requests. */
    snprintf(r->ua, sizeof(r->ua), "User-Agent: cbhttp/%s", cbhttp_version());
    if (!(r->headers = curl_slist_append(NULL, r->ua)))
        die("curl_slist_append failed");
    curl_multi_setopt(r->m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    for (i = 0; i < INFLIGHT; i++) {
        CURL *e = curl_easy_init();

        if (!e)
            die("curl_easy_init failed");
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_PROXY, "");
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, raw_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &r->body[i]);
        curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)&r->body[i]);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
        r->e[i] = e;
    }
}

static void rawmulti_free(rawmulti *r)
{
    int i;

    for (i = 0; i < INFLIGHT; i++) {
        curl_easy_cleanup(r->e[i]);
        free(r->body[i].data);
    }
    curl_multi_cleanup(r->m);
    curl_slist_free_all(r->headers);
}

/* n GETs, INFLIGHT at a time; returns requests per second, *cpu the
 * thread's CPU time per request in ns. */
static double raw_round(rawmulti *r, unsigned long n, double *cpu)
{
    unsigned long started = 0, done = 0, errors = 0;
    double        t0 = wall_ns(), c0 = cpu_ns();
    int           i, running;

    for (i = 0; i < INFLIGHT && started < n; i++, started++)
        curl_multi_add_handle(r->m, r->e[i]);
    while (done < n) {
        CURLMsg *msg;
        int      left;

        curl_multi_perform(r->m, &running);
        while ((msg = curl_multi_info_read(r->m, &left))) {
            CURL   *e = msg->easy_handle;
            rawbuf *b;
            long    status = 0;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result != CURLE_OK || status != 200)
                errors++;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&b);
            b->len = 0;
            curl_multi_remove_handle(r->m, e);
            done++;
            if (started < n) {
                started++;
                curl_multi_add_handle(r->m, e);
            }
        }
        if (done < n)
            curl_multi_poll(r->m, NULL, 0, 1000, NULL);
    }
    if (errors)
        fprintf(stderr, "bench_async: %lu failed raw requests\n", errors);
    *cpu = (cpu_ns() - c0) / (double)n;
    return (double)n / ((wall_ns() - t0) / 1e9);
}

/* ---- cbhttp async ---------------------------------------------------------- */

typedef struct around {
    api_async    *a;
    const char   *path;
    unsigned long n, started, done, errors;
} around;

typedef struct aslot {
    api_response resp;
    around      *r;
} aslot;

static void submit(around *r, aslot *s);

static void async_done(cb_err err, api_response *resp, void *ud)
{
    aslot  *s = ud;
    around *r = s->r;

    if (err != CB_OK || resp->status != 200)
        r->errors++;
    api_response_free(resp);
    r->done++;
    if (r->started < r->n)
        submit(r, s);
}

/* Submits the next call into slot s (a slot's resp is free again once its
 * done has freed it). */
static void submit(around *r, aslot *s)
{
    r->started++;
    if (api_async_get(r->a, r->path, NULL, &s->resp, async_done, s) != CB_OK) {
        r->errors++;
        r->done++;
        api_response_free(&s->resp);
    }
}

static double async_round(api_async *a, const char *path, unsigned long n, double *cpu)
{
    aslot  slots[INFLIGHT];
    around r = { .a = a, .path = path, .n = n };
    double t0 = wall_ns(), c0 = cpu_ns();
    int    i, left = 0;

    for (i = 0; i < INFLIGHT && r.started < n; i++) {
        slots[i].r = &r;
        submit(&r, &slots[i]);
    }
    while (r.done < n && (left = api_async_run(a, 1000)) > 0)
        ;
    if (left < 0 || r.done < n)
        die("api_async_run failed");
    if (r.errors)
        fprintf(stderr, "bench_async: %lu failed cbhttp requests\n", r.errors);
    *cpu = (cpu_ns() - c0) / (double)n;
    return (double)n / ((wall_ns() - t0) / 1e9);
}

typedef struct pair {
    double cbhttp_rps, curl_rps, ratio;
    double cbhttp_cpu_ns, curl_cpu_ns, cpu_ratio; /* per request, the loop thread */
} pair;

static pair throughput(const char *base)
{
    double      a[ROUNDS], b[ROUNDS], q[ROUNDS], ac[ROUNDS], bc[ROUNDS], qc[ROUNDS], ignored;
    char        url[256];
    rawmulti    raw;
    api_client *c;
    api_async  *as = NULL;
    pair        p;
    int         k;

    snprintf(url, sizeof(url), "%s/ok", base);
    c = api_client_new(&(api_client_config){
        .base_url = base,
        .timeout_ms = 10000,
        .retry = { .max_attempts = 1 },
        .cache = { .disabled = true },
    });
    if (!c || !(as = api_async_new(c)))
        die("api_client_new / api_async_new failed");
    rawmulti_init(&raw, url);

    /* Warm-up: connections open. */
    async_round(as, "/ok", g_requests / 10 + INFLIGHT, &ignored);
    raw_round(&raw, g_requests / 10 + INFLIGHT, &ignored);
    for (k = 0; k < ROUNDS; k++) {
        a[k] = async_round(as, "/ok", g_requests, &ac[k]);
        b[k] = raw_round(&raw, g_requests, &bc[k]);
        q[k] = a[k] / b[k];
        qc[k] = bc[k] / ac[k];
    }
    p.cbhttp_rps = median(a, ROUNDS);
    p.curl_rps = median(b, ROUNDS);
    p.ratio = median(q, ROUNDS);
    p.cbhttp_cpu_ns = median(ac, ROUNDS);
    p.curl_cpu_ns = median(bc, ROUNDS);
    p.cpu_ratio = median(qc, ROUNDS);

    rawmulti_free(&raw);
    api_async_free(as);
    api_client_free(c);
    return p;
}

/* ---- rejection by an open breaker ------------------------------------------ */

static void reject_done(cb_err err, api_response *resp, void *ud)
{
    unsigned long *wrong = ud;

    *wrong += err != CB_ERR_CIRCUIT_OPEN;
    api_response_free(resp);
}

typedef struct reject_figs {
    double async_ns, async_cpu_ns, submit_ns, blocking_ns, blocking_cpu_ns;
} reject_figs;

/* ns per async rejection (submission and done), in batches; *submit_ns
 * gets the submissions' share, *cpu the CPU time. */
static double async_reject_round(api_async *a, unsigned long n, double *submit_ns, double *cpu)
{
    static api_response resps[REJECT_BATCH];
    unsigned long       wrong = 0, i;
    double              t0 = wall_ns(), c0 = cpu_ns(), sub = 0;

    for (i = 0; i < n; i += REJECT_BATCH) {
        double s0 = wall_ns();
        int    k;

        for (k = 0; k < REJECT_BATCH; k++)
            if (api_async_get(a, "/ok", NULL, &resps[k], reject_done, &wrong) != CB_OK) {
                wrong++;
                api_response_free(&resps[k]);
            }
        sub += wall_ns() - s0;
        if (api_async_run(a, 0) != 0)
            die("rejected calls still in flight after one run");
    }
    *cpu = (cpu_ns() - c0) / (double)n;
    *submit_ns = sub / (double)n;
    t0 = wall_ns() - t0;
    if (wrong)
        fprintf(stderr, "bench_async: %lu calls were not rejected\n", wrong);
    return t0 / (double)n;
}

static double blocking_reject_round(api_client *c, unsigned long n, double *cpu)
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
        fprintf(stderr, "bench_async: %lu blocking calls were not rejected\n", wrong);
    return t0 / (double)n;
}

static reject_figs rejection(const char *base)
{
    double      a[ROUNDS], ac[ROUNDS], as[ROUNDS], b[ROUNDS], bc[ROUNDS], ignored;
    api_client *c = api_client_new(&(api_client_config){
        .base_url = base,
        .circuit_breaker = { .reset_timeout_ms = 3600000 },
        .cache = { .disabled = true },
    });
    api_async  *e = NULL;
    reject_figs r;
    int         k;

    if (!c || !(e = api_async_new(c)))
        die("api_client_new / api_async_new failed");
    api_client_trip(c, "/ok");
    async_reject_round(e, REJECT_CALLS / 10, &ignored, &ignored);
    blocking_reject_round(c, REJECT_CALLS / 10, &ignored);
    for (k = 0; k < ROUNDS; k++) {
        a[k] = async_reject_round(e, REJECT_CALLS, &as[k], &ac[k]);
        b[k] = blocking_reject_round(c, REJECT_CALLS, &bc[k]);
    }
    r.async_ns = median(a, ROUNDS);
    r.async_cpu_ns = median(ac, ROUNDS);
    r.submit_ns = median(as, ROUNDS);
    r.blocking_ns = median(b, ROUNDS);
    r.blocking_cpu_ns = median(bc, ROUNDS);
    api_async_free(e);
    api_client_free(c);
    return r;
}

/* ---- memory per call in flight (child process) ------------------------------ */

/* Every block carries its size in front of it; 16 bytes keep malloc's
 * alignment. */
#define HDR 16

typedef struct counter {
    atomic_size_t live, peak, blocks, calls;
} counter;

static counter g_lib;  /* cbhttp's allocations (cb_set_allocator) */
static counter g_curl; /* libcurl's (curl_global_init_mem) */

static void count_add(counter *c, size_t n)
{
    size_t live = atomic_fetch_add_explicit(&c->live, n, memory_order_relaxed) + n;
    size_t peak = atomic_load_explicit(&c->peak, memory_order_relaxed);

    while (live > peak && !atomic_compare_exchange_weak_explicit(
                              &c->peak, &peak, live, memory_order_relaxed, memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed);
}

static void *cnt_malloc(counter *c, size_t n)
{
    char *p;

    if (n > SIZE_MAX - HDR || !(p = malloc(n + HDR)))
        return NULL;
    *(size_t *)p = n;
    count_add(c, n);
    atomic_fetch_add_explicit(&c->blocks, 1, memory_order_relaxed);
    return p + HDR;
}

static void cnt_free(counter *c, void *ptr)
{
    char *p = ptr;

    if (!p)
        return;
    p -= HDR;
    atomic_fetch_sub_explicit(&c->live, *(size_t *)p, memory_order_relaxed);
    atomic_fetch_sub_explicit(&c->blocks, 1, memory_order_relaxed);
    free(p);
}

static void *cnt_calloc(counter *c, size_t n, size_t size)
{
    void *p;

    if (size && n > (SIZE_MAX - HDR) / size)
        return NULL;
    if ((p = cnt_malloc(c, n * size)))
        memset(p, 0, n * size);
    return p;
}

static void *cnt_realloc(counter *c, void *ptr, size_t n)
{
    char  *p = ptr, *q;
    size_t old;

    if (!p)
        return cnt_malloc(c, n);
    p -= HDR;
    old = *(size_t *)p;
    if (n > SIZE_MAX - HDR || !(q = realloc(p, n + HDR)))
        return NULL;
    *(size_t *)q = n;
    atomic_fetch_sub_explicit(&c->live, old, memory_order_relaxed);
    count_add(c, n);
    return q + HDR;
}

static void *lib_malloc(size_t n) { return cnt_malloc(&g_lib, n); }
static void *lib_calloc(size_t n, size_t s) { return cnt_calloc(&g_lib, n, s); }
static void *lib_realloc(void *p, size_t n) { return cnt_realloc(&g_lib, p, n); }
static void  lib_free(void *p) { cnt_free(&g_lib, p); }
static void *curl_malloc_cb(size_t n) { return cnt_malloc(&g_curl, n); }
static void *curl_calloc_cb(size_t n, size_t s) { return cnt_calloc(&g_curl, n, s); }
static void *curl_realloc_cb(void *p, size_t n) { return cnt_realloc(&g_curl, p, n); }
static void  curl_free_cb(void *p) { cnt_free(&g_curl, p); }

static char *curl_strdup_cb(const char *s)
{
    size_t n = strlen(s) + 1;
    char  *d = cnt_malloc(&g_curl, n);

    if (d)
        memcpy(d, s, n);
    return d;
}

typedef struct memslot {
    api_response resp;
    cb_err       err;
    bool         done;
} memslot;

typedef struct memrun {
    unsigned long done, ok;
    size_t        max_pending;
    char          first_error[256]; /* resp.error of the first failure */
} memrun;

static memrun *g_memrun;

static void mem_done(cb_err err, api_response *resp, void *ud)
{
    memslot *s = ud;

    s->err = err;
    s->done = true;
    g_memrun->done++;
    g_memrun->ok += err == CB_OK && resp->status == 200;
    if ((err != CB_OK || resp->status != 200) && !g_memrun->first_error[0])
        snprintf(g_memrun->first_error, sizeof(g_memrun->first_error), "%s (%.200s)",
                 cb_strerror(err), resp->error);
    api_response_free(resp);
}

typedef struct memfigs {
    unsigned calls, ok;
    size_t   max_pending;
    double   submit_bytes, peak_bytes, curl_peak_bytes; /* per call */
    double   blocks_per_call;
    double   elapsed_ms;
    long     kept;
    char     first_error[256];
} memfigs;

/* n calls of path submitted at once on one engine on base. */
static memfigs inflight_memory(const char *base, const char *path, unsigned n, unsigned timeout_ms)
{
    memslot    *s = calloc(n, sizeof(*s));
    memrun      run = { 0 };
    memfigs     m = { .calls = n };
    api_client *c;
    api_async  *a = NULL;
    size_t      base_live, base_blocks, curl_base;
    double      t0;
    unsigned    i;
    int         left;
    bool        warm_done = false;

    if (!s)
        die("out of memory");
    g_memrun = &run;
    c = api_client_new(&(api_client_config){
        .base_url = base,
        .timeout_ms = timeout_ms,
        .retry = { .max_attempts = 1 },
        .cache = { .disabled = true },
        .circuit_breaker = { .mode = CB_MODE_DISABLED },
    });
    if (!c || !(a = api_async_new(c)))
        die("api_client_new / api_async_new failed");

    /* One call first, so that what the engine and the client set up once
     * (the multi handle, the origin's state) is in the baseline. */
    {
        memslot w = { 0 };

        if (api_async_get(a, "/ok", NULL, &w.resp, mem_done, &w) != CB_OK)
            die("api_async_get failed");
        while (api_async_run(a, 1000) > 0)
            ;
        warm_done = w.done;
    }
    if (!warm_done)
        die("the warm-up call did not end");
    run = (memrun){ 0 };

    base_live = atomic_load(&g_lib.live);
    base_blocks = atomic_load(&g_lib.blocks);
    curl_base = atomic_load(&g_curl.live);
    atomic_store(&g_lib.peak, base_live);
    atomic_store(&g_curl.peak, curl_base);

    t0 = wall_ns();
    for (i = 0; i < n; i++)
        if (api_async_get(a, path, NULL, &s[i].resp, mem_done, &s[i]) != CB_OK)
            die("api_async_get refused a call");
    m.submit_bytes = (double)(atomic_load(&g_lib.live) - base_live) / n;
    m.blocks_per_call = (double)(atomic_load(&g_lib.blocks) - base_blocks) / n;
    while ((left = api_async_run(a, 100)) > 0)
        if ((size_t)left > run.max_pending)
            run.max_pending = (size_t)left;
    m.elapsed_ms = (wall_ns() - t0) / 1e6;
    if (left < 0)
        die("api_async_run failed");
    m.peak_bytes = (double)(atomic_load(&g_lib.peak) - base_live) / n;
    m.curl_peak_bytes = (double)(atomic_load(&g_curl.peak) - curl_base) / n;
    m.ok = (unsigned)run.ok;
    m.max_pending = run.max_pending;
    memcpy(m.first_error, run.first_error, sizeof(m.first_error));
    /* Every call's memory is given back once its done has run; what stays
     * is the engine's (its timer heap keeps its largest size). */
    m.kept = (long)atomic_load(&g_lib.live) - (long)base_live;
    api_async_free(a);
    api_client_free(c);
    free(s);
    return m;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void print_mem(const char *what, const memfigs *m)
{
    printf("%-40s %6u calls: %u ok, peak in flight %zu, %.0f ms\n", what, m->calls, m->ok,
           m->max_pending, m->elapsed_ms);
    if (m->ok < m->calls)
        printf("%-40s first failure: %s\n", "", m->first_error);
    printf("%-40s cbhttp %7.0f B/call at submission, %7.0f B/call at peak  %s\n", "",
           m->submit_bytes, m->peak_bytes,
           m->peak_bytes <= TARGET_BYTES_PER_CALL ? "target met" : "TARGET MISSED");
    printf("%-40s %.1f blocks/call; libcurl (not ours) %.0f B/call at peak; kept after: %ld B\n",
           "", m->blocks_per_call, m->curl_peak_bytes, m->kept);
}

static void print_mem_lines(const char *pre, const memfigs *m)
{
    printf("%s_calls %u calls\n", pre, m->calls);
    printf("%s_ok %u calls\n", pre, m->ok);
    printf("%s_max_pending %zu calls\n", pre, m->max_pending);
    printf("%s_submit_bytes_per_call %.0f B\n", pre, m->submit_bytes);
    printf("%s_bytes_per_call %.0f B\n", pre, m->peak_bytes);
    printf("%s_blocks_per_call %.1f blocks\n", pre, m->blocks_per_call);
    printf("%s_curl_bytes_per_call %.0f B\n", pre, m->curl_peak_bytes);
}

/* The memory part, in a child process: the allocator goes in first. */
static int memory_child(void)
{
    static const cb_allocator counting = { lib_malloc, lib_calloc, lib_realloc, lib_free };
    memfigs                   fx, ng = { 0 };
    bool                      have_ng = false;
    fixture                  *f;
    char                      path[64];

    if (cb_set_allocator(&counting) != CB_OK)
        die("cb_set_allocator failed");
    if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, curl_malloc_cb, curl_free_cb, curl_realloc_cb,
                             curl_strdup_cb, curl_calloc_cb) != CURLE_OK)
        die("curl_global_init_mem failed");
    raise_fd_limit();

    if (!(f = fixture_start()))
        die("cannot start the fixture server");
    fx = inflight_memory(fixture_url(f), "/delay/3000", FIXTURE_MEM_CALLS, 30000);
    fixture_stop(f);

    if (tu_nginx_binary()) {
        char      why[256];
        tu_nginx *n = tu_nginx_start(&(tu_nginx_opts){ .worker_connections = 2 * g_mem_calls + 64 },
                                     why, sizeof(why));

        if (!n) {
            fprintf(stderr, "bench_async: %s\n", why);
        } else if (!tu_nginx_has_sleep(n)) {
            fprintf(stderr, "bench_async: nginx has no echo module: no /sleep\n");
            tu_nginx_stop(n);
        } else {
            /* Long enough that every call is connected and waiting at
             * once, also when some SYNs wait for a retransmission. */
            snprintf(path, sizeof(path), "/sleep/5");
            ng = inflight_memory(tu_nginx_url(n), path, g_mem_calls, 60000);
            have_ng = true;
            tu_nginx_stop(n);
        }
    }

    printf("Calls in flight at once on one engine (cbhttp's own allocations; target "
           "%.0f B per call)\n",
           TARGET_BYTES_PER_CALL);
    print_mem("fixture /delay/3000", &fx);
    if (have_ng)
        print_mem("nginx /sleep/5", &ng);
    else
        printf("%-40s skipped (nginx missing or without its echo module)\n", "nginx /sleep/5");
    printf("\n");
    print_mem_lines("async_mem_fixture", &fx);
    if (have_ng)
        print_mem_lines("async_mem", &ng);
    fflush(stdout);
    curl_global_cleanup();
    return 0;
}

/* ---- main --------------------------------------------------------------------- */

static const char *verdict(bool met) { return met ? "target met" : "TARGET MISSED"; }

int main(int argc, char **argv)
{
    reject_figs rj;
    pair        ng = { 0 };
    bool        have_ng = false;
    fixture    *f;
    pid_t       child;
    int         status;

    if (argc > 1 && strtoul(argv[1], NULL, 10) > 0)
        g_requests = strtoul(argv[1], NULL, 10);
    if (argc > 2 && strtoul(argv[2], NULL, 10) > 0)
        g_mem_calls = (unsigned)strtoul(argv[2], NULL, 10);
    signal(SIGPIPE, SIG_IGN);

    /* The memory part first, alone, in a child that installs its allocator
     * before anything else. */
    fflush(stdout);
    if ((child = fork()) < 0)
        die("fork failed");
    if (child == 0)
        _exit(memory_child());
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
        die("the memory measurement failed");

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        die("curl_global_init failed");
    if (tu_nginx_binary()) {
        char      why[256];
        tu_nginx *n = tu_nginx_start(NULL, why, sizeof(why));

        if (n) {
            ng = throughput(tu_nginx_url(n));
            have_ng = true;
            tu_nginx_stop(n);
        } else {
            fprintf(stderr, "bench_async: %s\n", why);
        }
    }
    if (!(f = fixture_start()))
        die("cannot start the fixture server");
    rj = rejection(fixture_url(f));
    fixture_stop(f);

    printf("One thread, %d calls in flight, GET /ok of a private nginx (HTTP/1.1 keep-alive),\n"
           "%lu requests per side per round, median of %d interleaved rounds\n",
           INFLIGHT, g_requests, ROUNDS);
    if (have_ng) {
        printf("%-36s %12s %12s %8s\n", "", "cbhttp", "libcurl", "ratio");
        printf("%-36s %10.0f/s %10.0f/s %8.3f  %s\n", "api_async vs libcurl multi", ng.cbhttp_rps,
               ng.curl_rps, ng.ratio, verdict(ng.ratio >= TARGET_RATIO));
        printf("%-36s %9.2f us %9.2f us %8.3f  (libcurl / cbhttp)\n",
               "  loop thread CPU per request", ng.cbhttp_cpu_ns / 1e3, ng.curl_cpu_ns / 1e3,
               ng.cpu_ratio);
    } else
        printf("%-36s skipped (nginx missing or did not start)\n", "api_async vs libcurl multi");
    printf("(the blocking api_get vs curl_easy_perform: bench_http, http_seq_ratio)\n\n");
    printf("%-52s %12s\n", "rejected by an open circuit (cache disabled)", "time/call");
    printf("%-52s %9.1f ns\n", "api_async_get + its done on the next run, wall", rj.async_ns);
    printf("%-52s %9.1f ns\n", "  the same, thread CPU time", rj.async_cpu_ns);
    printf("%-52s %9.1f ns\n", "  of which the submission", rj.submit_ns);
    printf("%-52s %9.1f ns\n", "blocking api_get, wall (same run)", rj.blocking_ns);
    printf("%-52s %9.1f ns\n", "  the same, thread CPU time", rj.blocking_cpu_ns);
    printf("\n");

    if (have_ng) {
        printf("async_32_cbhttp_rps %.0f rps\n", ng.cbhttp_rps);
        printf("async_32_curl_rps %.0f rps\n", ng.curl_rps);
        printf("async_32_ratio %.3f ratio\n", ng.ratio);
        printf("async_32_cbhttp_cpu_ns %.0f ns\n", ng.cbhttp_cpu_ns);
        printf("async_32_curl_cpu_ns %.0f ns\n", ng.curl_cpu_ns);
        printf("async_32_cpu_ratio %.3f ratio\n", ng.cpu_ratio);
    }
    printf("async_reject_ns %.1f ns\n", rj.async_ns);
    printf("async_reject_cpu_ns %.1f ns\n", rj.async_cpu_ns);
    printf("async_reject_submit_ns %.1f ns\n", rj.submit_ns);
    printf("async_reject_blocking_ns %.1f ns\n", rj.blocking_ns);
    printf("async_reject_blocking_cpu_ns %.1f ns\n", rj.blocking_cpu_ns);
    curl_global_cleanup();
    return 0;
}
