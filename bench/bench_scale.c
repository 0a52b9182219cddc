/*
 * How the per-origin map and the cache scale.
 *
 *   origins: 10, 10k and 1M origins "http://h<i>.test:80/" created with
 *            api_client_trip (no network I/O happens for trip or state).
 *            Memory per origin three ways: the RSS delta
 *            (/proc/self/statm), the heap in use (mallinfo2, chunk headers
 *            included) and what the library itself holds, counted by an
 *            allocator installed with cb_set_allocator
 *            (malloc_usable_size of every live block, and the blocks);
 *            origins nobody calls stay compact. Then ns per
 *            api_client_breaker_state lookup in random order, the three
 *            maps measured in interleaved rounds.
 *   served:  10k and 1M origins that each served one call (the map's
 *            own API on a fake clock: permit, success, the counters a
 *            request bumps), 100 ms apart, so that the origins called more
 *            than the deflation time ago deflate as new ones are got; then
 *            the time passes for the last ones too. Bytes per origin once
 *            all are idle, and, for 10k, while all are still inflated.
 *   cache:   10k entries filled from the fixture's
 *            /cache/k<i>?cc=max-age%3D3600; bytes per entry (the cache's own
 *            accounting, and the heap it gives back when cleared), and ns per
 *            fresh hit for a random key vs one key hit over and over.
 *
 *   bench_scale [max_origins]     (default 1000000)
 */
#include <malloc.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cbhttp.h>

#include "bench.h"
#include "fixture.h"
#include "origin.h"

#define ROUNDS 5
#define LOOKUPS 1000000ul
#define CACHE_ENTRIES 10000u
#define CACHE_HITS 200000ul

/* Resident bytes, from the second field of /proc/self/statm. */
static double rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE         *fp = fopen("/proc/self/statm", "r");

    if (!fp || fscanf(fp, "%lu %lu", &size, &resident) != 2)
        die("cannot read /proc/self/statm");
    fclose(fp);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

/* Heap bytes in use (small blocks and mmapped ones), every arena. */
static double heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();

    return (double)mi.uordblks + (double)mi.hblkhd;
}

/* The counting allocator: every block the library holds, by its usable
 * size. */
static _Atomic long long lib_bytes, lib_blocks;

static void *count_malloc(size_t n)
{
    void *p = malloc(n);

    if (p) {
        atomic_fetch_add(&lib_bytes, (long long)malloc_usable_size(p));
        atomic_fetch_add(&lib_blocks, 1);
    }
    return p;
}

static void *count_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (p) {
        atomic_fetch_add(&lib_bytes, (long long)malloc_usable_size(p));
        atomic_fetch_add(&lib_blocks, 1);
    }
    return p;
}

static void *count_realloc(void *old, size_t n)
{
    size_t before = old ? malloc_usable_size(old) : 0;
    void  *p = realloc(old, n);

    if (p) {
        atomic_fetch_add(&lib_bytes, (long long)malloc_usable_size(p) - (long long)before);
        if (!old)
            atomic_fetch_add(&lib_blocks, 1);
    }
    return p;
}

static void count_free(void *p)
{
    if (p) {
        atomic_fetch_sub(&lib_bytes, (long long)malloc_usable_size(p));
        atomic_fetch_sub(&lib_blocks, 1);
    }
    free(p);
}

/* xorshift64*: the random lookup order. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

/* ---- origins -------------------------------------------------------------- */

typedef struct omap {
    unsigned long n;
    char        **urls;
    api_client   *c;
    double        rss_per, heap_per, lib_per, blocks_per, create_ns;
} omap;

static void omap_build(omap *m, unsigned long n)
{
    unsigned long i;
    double        rss0, heap0, t0;
    long long     lib0, blocks0;

    m->n = n;
    m->urls = malloc(n * sizeof(*m->urls));
    if (!m->urls)
        die("out of memory");
    for (i = 0; i < n; i++) {
        char buf[64];
        int  len = snprintf(buf, sizeof(buf), "http://h%lu.test:80/", i);

        if (!(m->urls[i] = malloc((size_t)len + 1)))
            die("out of memory");
        memcpy(m->urls[i], buf, (size_t)len + 1);
    }
    /* Every origin is kept: no cap, and none is idle long enough to go. */
    m->c = api_client_new(&(api_client_config){ .circuit_breaker = { .reset_timeout_ms = 3600000 },
                                                .max_origins = SIZE_MAX,
                                                .origin_idle_ms = UINT_MAX });
    if (!m->c)
        die("api_client_new failed");

    rss0 = rss_bytes();
    heap0 = heap_bytes();
    lib0 = atomic_load(&lib_bytes);
    blocks0 = atomic_load(&lib_blocks);
    t0 = wall_ns();
    for (i = 0; i < n; i++)
        if (api_client_trip(m->c, m->urls[i]) != CB_OK)
            die("api_client_trip failed");
    m->create_ns = (wall_ns() - t0) / (double)n;
    m->rss_per = (rss_bytes() - rss0) / (double)n;
    m->heap_per = (heap_bytes() - heap0) / (double)n;
    m->lib_per = (double)(atomic_load(&lib_bytes) - lib0) / (double)n;
    m->blocks_per = (double)(atomic_load(&lib_blocks) - blocks0) / (double)n;
}

/* ns per api_client_breaker_state, random order; *cpu: CPU time. */
static double omap_lookup_round(omap *m, uint64_t seed, double *cpu)
{
    unsigned long i, wrong = 0;
    double        t0 = wall_ns(), c0 = cpu_ns();

    for (i = 0; i < LOOKUPS; i++)
        wrong += api_client_breaker_state(m->c, m->urls[rng_next(&seed) % m->n]) != CB_OPEN;
    *cpu = (cpu_ns() - c0) / (double)LOOKUPS;
    t0 = wall_ns() - t0;
    if (wrong)
        fprintf(stderr, "bench_scale: %lu lookups did not find an OPEN breaker\n", wrong);
    return t0 / (double)LOOKUPS;
}

static void omap_free(omap *m)
{
    unsigned long i;

    api_client_free(m->c);
    for (i = 0; i < m->n; i++)
        free(m->urls[i]);
    free(m->urls);
}

/* ---- origins that served a call ----------------------------------------- */

static _Atomic uint64_t served_now;

static uint64_t served_clock(void *ud)
{
    (void)ud;
    return atomic_load(&served_now);
}

typedef struct served {
    unsigned long n;
    double        hot_per;  /* heap per origin with every origin inflated (0: not measured) */
    double        idle_per; /* heap per origin once all are idle */
    double        lib_per;  /* what the library holds, once all are idle */
} served;

/* One call's worth of work on key, at the fake clock's now. */
static void served_call(cbh_origins *m, const char *key, size_t len)
{
    cbh_origin *o = cbh_origins_get(m, key, len, NULL, true, NULL);
    cb_permit   p;

    if (!o || cbh_origins_inflate(o) != CB_OK || cb_breaker_acquire(&o->breaker, &p) != CB_OK)
        die("served: no origin");
    cb_breaker_record(&o->breaker, &p, true);
    cbh_budget_note_request(&cbh_origin_ext_of(o)->budget, atomic_load(&served_now));
    atomic_fetch_add(&cbh_origin_ext_of(o)->attempts, 1);
    cbh_origins_release(o);
}

/* spaced: calls 100 ms apart (idle ones deflate as the map goes), or all
 * at one instant (every origin inflated at the end, then measured). */
static void served_run(served *r, unsigned long n, bool spaced)
{
    cbh_origins_config cfg = { .idle_ms = UINT_MAX,
                               .max_origins = SIZE_MAX,
                               .clock = served_clock };
    cbh_origins       *m;
    double             heap0;
    long long          lib0;
    unsigned long      i;

    r->n = n;
    atomic_store(&served_now, 1000);
    heap0 = heap_bytes();
    lib0 = atomic_load(&lib_bytes);
    if (!(m = cbh_origins_new(&cfg)))
        die("cbh_origins_new failed");
    for (i = 0; i < n; i++) {
        char buf[64];
        int  len = snprintf(buf, sizeof(buf), "http://h%lu.test:80", i);

        served_call(m, buf, (size_t)len);
        if (spaced)
            atomic_fetch_add(&served_now, 100);
    }
    if (!spaced)
        r->hot_per = (heap_bytes() - heap0) / (double)n;
    atomic_fetch_add(&served_now, CBH_BUDGET_SLOTS * 1000u);
    (void)cbh_origins_evict_idle(m);
    if (cbh_origins_count(m) != n)
        die("served: origins were evicted");
    r->idle_per = (heap_bytes() - heap0) / (double)n;
    r->lib_per = (double)(atomic_load(&lib_bytes) - lib0) / (double)n;
    cbh_origins_free(m);
}

/* ---- cache ---------------------------------------------------------------- */

typedef struct cres {
    uint64_t entries;
    double   acct_per; /* the cache's own byte accounting, per entry */
    double   heap_per; /* heap given back by api_client_cache_clear, per entry */
    double   body_len; /* average stored body */
    double   fill_us;  /* per network call that stored an entry */
    double   hit_one_ns, hit_rand_ns, hit_one_cpu, hit_rand_cpu;
} cres;

static double cache_hit_round(api_client *c, char **paths, unsigned n, uint64_t seed, double *cpu)
{
    unsigned long i, misses = 0;
    double        t0 = wall_ns(), c0 = cpu_ns();

    for (i = 0; i < CACHE_HITS; i++) {
        api_response resp;
        const char  *p = paths[n == 1 ? 0 : rng_next(&seed) % n];

        if (api_get(c, p, NULL, &resp) != CB_OK || !resp.from_cache)
            misses++;
        api_response_free(&resp);
    }
    *cpu = (cpu_ns() - c0) / (double)CACHE_HITS;
    t0 = wall_ns() - t0;
    if (misses)
        fprintf(stderr, "bench_scale: %lu cache lookups were not fresh hits\n", misses);
    return t0 / (double)CACHE_HITS;
}

static void cache_bench(cres *r)
{
    fixture           *f = fixture_start();
    api_client        *c;
    api_client_metrics m;
    char             **paths;
    double             t0, heap_full, one[ROUNDS], rnd[ROUNDS], onec[ROUNDS], rndc[ROUNDS];
    size_t             body_total = 0;
    unsigned           i;
    int                k;

    if (!f)
        die("cannot start the fixture server");
    c = api_client_new(&(api_client_config){
        .base_url = fixture_url(f),
        .timeout_ms = 10000,
        .cache = { .max_entries = CACHE_ENTRIES },
    });
    paths = malloc(CACHE_ENTRIES * sizeof(*paths));
    if (!c || !paths)
        die("setup failed");
    for (i = 0; i < CACHE_ENTRIES; i++) {
        char buf[64];
        int  len = snprintf(buf, sizeof(buf), "/cache/k%u?cc=max-age%%3D3600", i);

        if (!(paths[i] = malloc((size_t)len + 1)))
            die("out of memory");
        memcpy(paths[i], buf, (size_t)len + 1);
    }

    t0 = wall_ns();
    for (i = 0; i < CACHE_ENTRIES; i++) {
        api_response resp;

        if (api_get(c, paths[i], NULL, &resp) != CB_OK)
            die("filling the cache failed");
        body_total += resp.body_len;
        api_response_free(&resp);
    }
    r->fill_us = (wall_ns() - t0) / 1e3 / CACHE_ENTRIES;
    r->body_len = (double)body_total / CACHE_ENTRIES;

    for (k = 0; k < ROUNDS; k++) {
        one[k] = cache_hit_round(c, paths, 1, 0x9E3779B97F4A7C15ull + (uint64_t)k, &onec[k]);
        rnd[k] =
            cache_hit_round(c, paths, CACHE_ENTRIES, 0x9E3779B97F4A7C15ull + (uint64_t)k, &rndc[k]);
    }
    r->hit_one_ns = median(one, ROUNDS);
    r->hit_rand_ns = median(rnd, ROUNDS);
    r->hit_one_cpu = median(onec, ROUNDS);
    r->hit_rand_cpu = median(rndc, ROUNDS);

    if (api_client_metrics_get(c, &m) != CB_OK)
        die("api_client_metrics_get failed");
    r->entries = m.cache.entries;
    r->acct_per = m.cache.entries ? (double)m.cache.bytes / (double)m.cache.entries : 0;
    api_client_metrics_free(&m);

    /* The heap the cache gives back when emptied: what it really held. The
     * fixture is idle meanwhile, so nothing else allocates. */
    heap_full = heap_bytes();
    api_client_cache_clear(c);
    r->heap_per = r->entries ? (heap_full - heap_bytes()) / (double)r->entries : 0;

    api_client_free(c);
    fixture_stop(f);
    for (i = 0; i < CACHE_ENTRIES; i++)
        free(paths[i]);
    free(paths);
}

int main(int argc, char **argv)
{
    unsigned long max =
        argc > 1 && strtoul(argv[1], NULL, 10) ? strtoul(argv[1], NULL, 10) : 1000000ul;
    unsigned long sizes[3] = { 10, 10000, 1000000 };
    char          names[3][16];
    double        look[3][ROUNDS], lookc[3][ROUNDS], look_ns[3], look_cpu[3];
    omap          maps[3];
    cres          cr;
    served        sv[3];
    int           i, k, nmaps = 0;

    if (cb_set_allocator(
            &(cb_allocator){ count_malloc, count_calloc, count_realloc, count_free }) != CB_OK)
        die("cb_set_allocator failed");
    if (max < sizes[2])
        sizes[2] = max;
    for (i = 0; i < 3; i++)
        snprintf(names[i], sizeof(names[i]),
                 sizes[i] % 1000000 == 0 ? "%luM"
                 : sizes[i] % 1000 == 0  ? "%luk"
                                         : "%lu",
                 sizes[i] % 1000000 == 0 ? sizes[i] / 1000000
                 : sizes[i] % 1000 == 0  ? sizes[i] / 1000
                                         : sizes[i]);
    for (i = 0; i < 3; i++) {
        omap_build(&maps[i], sizes[i]);
        nmaps++;
    }
    for (k = 0; k < ROUNDS; k++)
        for (i = 0; i < nmaps; i++)
            look[i][k] =
                omap_lookup_round(&maps[i], 0x243F6A8885A308D3ull + (uint64_t)k, &lookc[i][k]);
    for (i = 0; i < nmaps; i++) {
        look_ns[i] = median(look[i], ROUNDS);
        look_cpu[i] = median(lookc[i], ROUNDS);
        omap_free(&maps[i]);
    }

    served_run(&sv[0], sizes[1], false);
    served_run(&sv[1], sizes[1], true);
    served_run(&sv[2], sizes[2], true);
    cache_bench(&cr);

    printf("per-origin map: api_client_trip creates, api_client_breaker_state looks up "
           "(random order, median of %d interleaved rounds of %lu)\n\n",
           ROUNDS, LOOKUPS);
    printf("%-10s %14s %14s %14s %8s %12s %14s %14s\n", "origins", "RSS/origin", "heap/origin",
           "lib/origin", "blocks", "create", "lookup", "lookup (CPU)");
    for (i = 0; i < nmaps; i++)
        printf("%-10lu %12.0f B %12.0f B %12.0f B %8.2f %9.0f ns %11.1f ns %11.1f ns\n", maps[i].n,
               maps[i].rss_per, maps[i].heap_per, maps[i].lib_per, maps[i].blocks_per,
               maps[i].create_ns, look_ns[i], look_cpu[i]);
    printf("(with 10 origins the RSS delta is below page granularity: read the heap column)\n");

    printf("\norigins that served one call each, then idle (deflated)\n\n");
    printf("%-30s %14s %14s\n", "", "heap/origin", "lib/origin");
    printf("%-30s %12.0f B %14s\n", "10k, all inflated (no time)", sv[0].hot_per, "");
    printf("%-30s %12.0f B %12.0f B\n", "10k, once idle (from above)", sv[0].idle_per,
           sv[0].lib_per);
    for (i = 1; i < 3; i++)
        printf("%-30lu %12.0f B %12.0f B\n", sv[i].n, sv[i].idle_per, sv[i].lib_per);

    printf("\ncache with %llu entries (fixture /cache/k<i>, %.0f B bodies on average)\n\n",
           (unsigned long long)cr.entries, cr.body_len);
    printf("%-44s %10.0f B\n", "bytes per entry, cache's own accounting", cr.acct_per);
    printf("%-44s %10.0f B\n", "bytes per entry, heap freed by cache_clear", cr.heap_per);
    printf("%-44s %10.1f us\n", "fill: network call that stored an entry", cr.fill_us);
    printf("%-44s %10.1f ns (CPU %.1f ns)\n", "fresh hit, one key over and over", cr.hit_one_ns,
           cr.hit_one_cpu);
    printf("%-44s %10.1f ns (CPU %.1f ns)\n", "fresh hit, random key of 10k", cr.hit_rand_ns,
           cr.hit_rand_cpu);
    printf("\n");

    for (i = 0; i < nmaps; i++) {
        printf("origins_%s_rss_bytes_per_origin %.0f bytes\n", names[i], maps[i].rss_per);
        printf("origins_%s_heap_bytes_per_origin %.0f bytes\n", names[i], maps[i].heap_per);
        printf("origins_%s_lib_bytes_per_origin %.0f bytes\n", names[i], maps[i].lib_per);
        printf("origins_%s_create_ns %.0f ns\n", names[i], maps[i].create_ns);
        printf("origins_%s_lookup_ns %.1f ns\n", names[i], look_ns[i]);
        printf("origins_%s_lookup_cpu_ns %.1f ns\n", names[i], look_cpu[i]);
    }
    printf("origins_10k_served_inflated_heap_bytes_per_origin %.0f bytes\n", sv[0].hot_per);
    printf("origins_%s_served_idle_heap_bytes_per_origin %.0f bytes\n", names[1], sv[1].idle_per);
    printf("origins_%s_served_idle_heap_bytes_per_origin %.0f bytes\n", names[2], sv[2].idle_per);
    printf("origins_%s_served_idle_lib_bytes_per_origin %.0f bytes\n", names[2], sv[2].lib_per);
    printf("cache_10k_entries %llu entries\n", (unsigned long long)cr.entries);
    printf("cache_10k_bytes_per_entry %.0f bytes\n", cr.acct_per);
    printf("cache_10k_heap_bytes_per_entry %.0f bytes\n", cr.heap_per);
    printf("cache_10k_hit_random_ns %.1f ns\n", cr.hit_rand_ns);
    printf("cache_10k_hit_random_cpu_ns %.1f ns\n", cr.hit_rand_cpu);
    printf("cache_10k_hit_one_ns %.1f ns\n", cr.hit_one_ns);
    printf("cache_10k_hit_one_cpu_ns %.1f ns\n", cr.hit_one_cpu);
    return 0;
}
