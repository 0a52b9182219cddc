/*
 * Helpers shared by the benchmark programs. The Makefile builds every
 * C file in bench/ into its own program, so they live here as static inline
 * functions; a program that does not use one gets no warning for it.
 */
#ifndef CBHTTP_BENCH_H
#define CBHTTP_BENCH_H

#include <errno.h> /* program_invocation_short_name (_GNU_SOURCE) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Wall-clock time in ns, from CLOCK_MONOTONIC. */
static inline double wall_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* CPU time of the calling thread in ns: the cost of a call even when other
 * processes compete for the CPUs (wall time then includes time spent
 * descheduled). */
static inline double cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* qsort comparator for doubles, ascending. */
static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Median of n values (v is reordered); the mean of the middle two when n is
 * even. */
static inline double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Prints "<program>: what" to stderr and exits with status 1. */
static inline void die(const char *what)
{
    fprintf(stderr, "%s: %s\n", program_invocation_short_name, what);
    exit(1);
}

/* The body buffer of a raw libcurl baseline: the raw side keeps the body
 * too, as any real caller must. */
typedef struct rawbuf {
    char  *data;
    size_t len, cap;
} rawbuf;

/* A CURLOPT_WRITEFUNCTION appending to the rawbuf in its user data. */
static inline size_t raw_write(char *p, size_t size, size_t n, void *ud)
{
    rawbuf *b = ud;
    size_t  bytes = size * n;

    if (b->len + bytes + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        char  *d;

        while (cap < b->len + bytes + 1)
            cap *= 2;
        if (!(d = realloc(b->data, cap)))
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, bytes);
    b->len += bytes;
    b->data[b->len] = '\0';
    return bytes;
}

#endif
