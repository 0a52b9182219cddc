/*
 * The breaker's hot paths: acquire + record(success) on a CLOSED breaker
 * with 1, 2 and 4 threads sharing one breaker, and the cost of a rejection
 * on an OPEN one. Prints a table, then one machine-readable line per figure:
 * "name value unit".
 *
 *   bench_breaker [pairs_per_round]     (default 20000000)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cbhttp.h>

#include "bench.h"

#define ROUNDS 5

/* One thread's share: n acquire/record pairs. The volatile sink keeps the
 * compiler from dropping a loop whose results nobody reads. */
static volatile unsigned sink;

static void run_pairs(cb_breaker *b, unsigned long n)
{
    cb_permit     p;
    unsigned      ok = 0;
    unsigned long i;

    for (i = 0; i < n; i++) {
        if (cb_breaker_acquire(b, &p) == CB_OK) {
            cb_breaker_record(b, &p, true);
            ok++;
        }
    }
    sink += ok;
}

typedef struct worker {
    pthread_t          tid;
    cb_breaker        *b;
    unsigned long      n;
    pthread_barrier_t *start;
    double             ns; /* this thread's elapsed time */
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    double  t0;

    pthread_barrier_wait(w->start);
    t0 = wall_ns();
    run_pairs(w->b, w->n);
    w->ns = wall_ns() - t0;
    return NULL;
}

/* Runs nthreads threads of n pairs each on one breaker; returns the wall
 * time of the slowest thread in ns. */
static double run_threads(cb_breaker *b, int nthreads, unsigned long n)
{
    worker            w[8];
    pthread_barrier_t start;
    double            worst = 0;
    int               i;

    pthread_barrier_init(&start, NULL, (unsigned)nthreads);
    for (i = 0; i < nthreads; i++) {
        w[i].b = b;
        w[i].n = n;
        w[i].start = &start;
        pthread_create(&w[i].tid, NULL, worker_main, &w[i]);
    }
    for (i = 0; i < nthreads; i++) {
        pthread_join(w[i].tid, NULL);
        if (w[i].ns > worst)
            worst = w[i].ns;
    }
    pthread_barrier_destroy(&start);
    return worst;
}

static void check_counts(cb_breaker *b, uint64_t expect)
{
    cb_metrics m;

    cb_breaker_metrics(b, &m);
    if (m.total_requests != expect || m.successes != expect) {
        fprintf(stderr, "bench_breaker: counts off: total %llu successes %llu, want %llu\n",
                (unsigned long long)m.total_requests, (unsigned long long)m.successes,
                (unsigned long long)expect);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    unsigned long    n = argc > 1 ? strtoul(argv[1], NULL, 10) : 20000000ul;
    static const int threads[] = { 2, 4 };
    double           r[ROUNDS], pair_1t, rej;
    double           pair_mt[2], tput_mt[2];
    cb_breaker      *b;
    cb_permit        p;
    unsigned long    i;
    int              k, t;

    if (n == 0)
        n = 1;

    /* 1 thread. */
    b = cb_breaker_new(NULL);
    if (!b)
        return 1;
    run_pairs(b, n / 10); /* warm-up */
    for (k = 0; k < ROUNDS; k++) {
        double t0 = wall_ns();

        run_pairs(b, n);
        r[k] = (wall_ns() - t0) / (double)n;
    }
    pair_1t = median(r, ROUNDS);
    check_counts(b, (uint64_t)n / 10 + (uint64_t)n * ROUNDS);
    cb_breaker_free(b);

    /* 2 and 4 threads on one breaker: n / threads pairs each. */
    for (t = 0; t < 2; t++) {
        unsigned long per = n / (unsigned long)threads[t];

        b = cb_breaker_new(NULL);
        if (!b)
            return 1;
        for (k = 0; k < ROUNDS; k++)
            r[k] = run_threads(b, threads[t], per);
        check_counts(b, (uint64_t)per * (uint64_t)threads[t] * ROUNDS);
        pair_mt[t] = median(r, ROUNDS) / (double)per;
        tput_mt[t] = (double)per * threads[t] / (median(r, ROUNDS) / 1e9) / 1e6;
        cb_breaker_free(b);
    }

    /* Rejections on an OPEN breaker (the reset timeout never passes). */
    b = cb_breaker_new(&(cb_config){ .reset_timeout_ms = 3600000 });
    if (!b)
        return 1;
    cb_breaker_trip(b);
    for (k = 0; k < ROUNDS; k++) {
        unsigned rejected = 0;
        double   t0 = wall_ns();

        for (i = 0; i < n; i++)
            rejected += cb_breaker_acquire(b, &p) == CB_ERR_CIRCUIT_OPEN;
        r[k] = (wall_ns() - t0) / (double)n;
        sink += rejected;
    }
    rej = median(r, ROUNDS);
    cb_breaker_free(b);

    printf("%-34s %12s\n", "breaker (median of 5 rounds)", "value");
    printf("%-34s %9.2f ns\n", "acquire+record, 1 thread", pair_1t);
    printf("%-34s %9.2f M/s\n", "  throughput", 1e3 / pair_1t);
    for (t = 0; t < 2; t++) {
        printf("acquire+record, %d threads %-8s %9.2f ns/pair/thread\n", threads[t], "",
               pair_mt[t]);
        printf("%-34s %9.2f M/s\n", "  total throughput", tput_mt[t]);
    }
    printf("%-34s %9.2f ns\n", "rejection (OPEN), 1 thread", rej);
    printf("\n");
    printf("breaker_pair_1t %.2f ns\n", pair_1t);
    printf("breaker_pair_2t %.2f ns\n", pair_mt[0]);
    printf("breaker_throughput_2t %.2f Mops\n", tput_mt[0]);
    printf("breaker_pair_4t %.2f ns\n", pair_mt[1]);
    printf("breaker_throughput_4t %.2f Mops\n", tput_mt[1]);
    printf("breaker_reject_1t %.2f ns\n", rej);
    return 0;
}
