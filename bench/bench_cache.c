/*
 * The response cache: what a fresh hit costs through api_get (lookup, copy
 * of body and headers into the response, api_response_free), for a ~400 B
 * and a 64 KiB body, against the network call for the same URL (cache
 * bypassed) on loopback. Rounds interleaved, median of ROUNDS.
 *
 * The fixture has no cacheable endpoint of a chosen size (its /large/{bytes}
 * sends no caching headers), so the 400 B and 64 KiB bodies come from a
 * minimal keep-alive server in this file that answers every GET with
 * "Cache-Control: max-age=3600" and a body of the size named in the path.
 * For comparison, a ~400 B body from the fixture's
 * /cache/{key}?cc=max-age%3D3600, whose JSON body echoes the key: the key
 * is padded until the body is about 400 bytes, which makes its URL long.
 *
 *   bench_cache [hits_per_round]     (default 200000)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cbhttp.h>

#include "bench.h"
#include "fixture.h"

#define ROUNDS 7
#define NET_CALLS 500
#define SMALL 400
#define LARGE (64 * 1024)
#define TARGET_HIT_NS 500.0

/* ---- a minimal cacheable-body server --------------------------------------- */

typedef struct mini {
    int            lfd;
    unsigned short port;
    pthread_t      tid;
    char          *body; /* LARGE bytes of 'x' */
} mini;

static bool write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Serves one keep-alive connection: GET /bytes/{n} -> n bytes, cacheable. */
static void mini_conn(mini *m, int fd)
{
    char   req[8192];
    size_t have = 0;
    int    one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (;;) {
        char   *end, head[256];
        ssize_t r;
        size_t  n = 0, used, hl;

        while (!(end = memmem(req, have, "\r\n\r\n", 4))) {
            if (have == sizeof(req) || (r = recv(fd, req + have, sizeof(req) - have, 0)) <= 0)
                return;
            have += (size_t)r;
        }
        used = (size_t)(end + 4 - req);
        if (sscanf(req, "GET /bytes/%zu", &n) != 1 || n > LARGE)
            n = 0;
        hl = (size_t)snprintf(head, sizeof(head),
                              "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                              "Cache-Control: max-age=3600\r\nContent-Length: %zu\r\n\r\n",
                              n);
        if (!write_all(fd, head, hl) || !write_all(fd, m->body, n))
            return;
        memmove(req, req + used, have - used);
        have -= used;
    }
}

static void *mini_main(void *arg)
{
    mini *m = arg;
    int   fd;

    while ((fd = accept(m->lfd, NULL, NULL)) >= 0) {
        mini_conn(m, fd);
        close(fd);
    }
    return NULL;
}

static void mini_start(mini *m)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t          len = sizeof(a);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    m->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (m->lfd < 0 || bind(m->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(m->lfd, 16) != 0 || getsockname(m->lfd, (struct sockaddr *)&a, &len) != 0)
        die("mini server: cannot listen");
    m->port = ntohs(a.sin_port);
    if (!(m->body = malloc(LARGE)))
        die("out of memory");
    memset(m->body, 'x', LARGE);
    if (pthread_create(&m->tid, NULL, mini_main, m) != 0)
        die("pthread_create failed");
}

static void mini_stop(mini *m)
{
    /* Wakes accept (and ends a blocked recv once the client is gone). */
    shutdown(m->lfd, SHUT_RDWR);
    close(m->lfd);
    pthread_join(m->tid, NULL);
    free(m->body);
}

/* ---- measurements ---------------------------------------------------------- */

/* ns per fresh hit, wall; *cpu gets the CPU time. */
static double hit_round(api_client *c, const char *url, unsigned long n, double *cpu)
{
    unsigned long i, misses = 0;
    double        t0 = wall_ns(), c0 = cpu_ns();

    for (i = 0; i < n; i++) {
        api_response resp;

        if (api_get(c, url, NULL, &resp) != CB_OK || !resp.from_cache)
            misses++;
        api_response_free(&resp);
    }
    *cpu = (cpu_ns() - c0) / (double)n;
    t0 = wall_ns() - t0;
    if (misses)
        fprintf(stderr, "bench_cache: %lu calls were not fresh hits\n", misses);
    return t0 / (double)n;
}

/* us per network call (cache bypassed). */
static double net_round(api_client *c, const char *url, int n)
{
    api_options opts = { .cache = &(api_cache_options){ .bypass = true } };
    int         i, errors = 0;
    double      t0 = wall_ns();

    for (i = 0; i < n; i++) {
        api_response resp;

        if (api_get(c, url, &opts, &resp) != CB_OK || resp.from_cache)
            errors++;
        api_response_free(&resp);
    }
    t0 = wall_ns() - t0;
    if (errors)
        fprintf(stderr, "bench_cache: %d network calls failed\n", errors);
    return t0 / 1e3 / n;
}

/* A fixture /cache URL whose body is exactly SMALL bytes, found by padding
 * the key; *got is the size reached (SMALL unless the fixture changed). */
static void small_url(api_client *c, fixture *f, char *url, size_t size, size_t *got)
{
    api_options opts = { .cache = &(api_cache_options){ .bypass = true } };
    char        key[SMALL + 1];
    size_t      pad = 1;
    int         tries;

    *got = 0;
    for (tries = 0; tries < 8; tries++) {
        api_response resp;

        memset(key, 'k', pad);
        key[pad] = '\0';
        snprintf(url, size, "%s/cache/%s?cc=max-age%%3D3600", fixture_url(f), key);
        if (api_get(c, url, &opts, &resp) != CB_OK)
            die("fixture /cache failed");
        *got = resp.body_len;
        api_response_free(&resp);
        if (*got == SMALL)
            return;
        /* The key appears twice in the body (path and key). */
        if (*got > SMALL || pad + (SMALL - *got) / 2 > SMALL)
            return;
        pad += (SMALL - *got) / 2 ? (SMALL - *got) / 2 : 1;
    }
}

static const char *verdict(double wall, double cpu)
{
    return wall <= TARGET_HIT_NS  ? "target met"
           : cpu <= TARGET_HIT_NS ? "target met in CPU time only"
                                  : "TARGET MISSED";
}

int main(int argc, char **argv)
{
    unsigned long n_hits =
        argc > 1 && strtoul(argv[1], NULL, 10) ? strtoul(argv[1], NULL, 10) : 200000ul;
    unsigned long n_hits_large = n_hits / 10 ? n_hits / 10 : 1;
    double        hs[ROUNDS], hl[ROUNDS], ns[ROUNDS], nl[ROUNDS], hsc[ROUNDS], hlc[ROUNDS];
    double        hm[ROUNDS], hmc[ROUNDS], nm[ROUNDS];
    double        hit_s, hit_l, net_s, net_l, hit_s_cpu, hit_l_cpu, ignored;
    double        hit_m, hit_m_cpu, net_m;
    char          url_s[1024], url_l[128], url_m[128];
    size_t        small_len;
    api_client   *c;
    fixture      *f;
    mini          m;
    int           k;

    signal(SIGPIPE, SIG_IGN);
    if (!(f = fixture_start()))
        die("cannot start the fixture server");
    mini_start(&m);
    /* No base URL: the two servers are named by absolute URLs. */
    c = api_client_new(&(api_client_config){ .timeout_ms = 10000 });
    if (!c)
        die("api_client_new failed");

    small_url(c, f, url_s, sizeof(url_s), &small_len);
    snprintf(url_l, sizeof(url_l), "http://127.0.0.1:%u/bytes/%d", m.port, LARGE);
    snprintf(url_m, sizeof(url_m), "http://127.0.0.1:%u/bytes/%d", m.port, SMALL);

    /* Store both (and warm the connections). The stored body's size is
     * read back from a hit: the fixture's counters in it change its length
     * by a byte or two from one request to the next. */
    {
        api_response resp;

        api_get(c, url_s, NULL, &resp);
        api_response_free(&resp);
        api_get(c, url_l, NULL, &resp);
        api_response_free(&resp);
        api_get(c, url_m, NULL, &resp);
        api_response_free(&resp);
        if (api_get(c, url_s, NULL, &resp) != CB_OK || !resp.from_cache)
            die("the ~400 B response was not cached");
        small_len = resp.body_len;
        api_response_free(&resp);
    }
    hit_round(c, url_s, 1000, &ignored);
    hit_round(c, url_l, 100, &ignored);
    hit_round(c, url_m, 1000, &ignored);
    net_round(c, url_s, 50);
    net_round(c, url_l, 50);
    for (k = 0; k < ROUNDS; k++) {
        hm[k] = hit_round(c, url_m, n_hits, &hmc[k]);
        nm[k] = net_round(c, url_m, NET_CALLS);
        hs[k] = hit_round(c, url_s, n_hits, &hsc[k]);
        ns[k] = net_round(c, url_s, NET_CALLS);
        hl[k] = hit_round(c, url_l, n_hits_large, &hlc[k]);
        nl[k] = net_round(c, url_l, NET_CALLS);
    }
    hit_s = median(hs, ROUNDS);
    hit_l = median(hl, ROUNDS);
    hit_s_cpu = median(hsc, ROUNDS);
    hit_m = median(hm, ROUNDS);
    hit_m_cpu = median(hmc, ROUNDS);
    net_m = median(nm, ROUNDS);
    hit_l_cpu = median(hlc, ROUNDS);
    net_s = median(ns, ROUNDS);
    net_l = median(nl, ROUNDS);

    api_client_free(c);
    mini_stop(&m);
    fixture_stop(f);

    printf("cache: fresh hit through api_get (+ api_response_free) vs the network call for "
           "the same URL\nmedian of %d interleaved rounds; %lu / %lu hits, %d network calls "
           "per round\n\n",
           ROUNDS, n_hits, n_hits_large, NET_CALLS);
    printf("%-24s %13s %13s %13s %9s\n", "body", "hit (wall)", "hit (CPU)", "network", "speed-up");
    printf("%-24s %10.1f ns %10.1f ns %10.1f us %8.0fx  %s\n", "400 B, short path", hit_m,
           hit_m_cpu, net_m, net_m * 1e3 / hit_m, verdict(hit_m, hit_m_cpu));
    printf("%-24s %10.1f ns %10.1f ns %10.1f us %8.0fx  %s\n", "~400 B, fixture /cache", hit_s,
           hit_s_cpu, net_s, net_s * 1e3 / hit_s, verdict(hit_s, hit_s_cpu));
    printf("%-24s %10.1f ns %10.1f ns %10.1f us %8.0fx\n", "64 KiB (local server)", hit_l,
           hit_l_cpu, net_l, net_l * 1e3 / hit_l);
    printf("(\"short path\": %s; \"fixture /cache\": a %zu-byte body whose\n"
           " %zu-character URL is padded to reach that size; the URL is checked on every\n"
           " call, so its length shows in the hit cost)\n",
           url_m, small_len, strlen(url_s));
    printf("\n");
    printf("cache_hit_400b_ns %.1f ns\n", hit_m);
    printf("cache_hit_400b_cpu_ns %.1f ns\n", hit_m_cpu);
    printf("cache_net_400b_us %.1f us\n", net_m);
    printf("cache_hit_fixture400b_ns %.1f ns\n", hit_s);
    printf("cache_hit_fixture400b_cpu_ns %.1f ns\n", hit_s_cpu);
    printf("cache_net_fixture400b_us %.1f us\n", net_s);
    printf("cache_hit_64k_ns %.1f ns\n", hit_l);
    printf("cache_hit_64k_cpu_ns %.1f ns\n", hit_l_cpu);
    printf("cache_net_64k_us %.1f us\n", net_l);
    printf("cache_small_body_bytes %zu bytes\n", small_len);
    return 0;
}
