/*
 * Monitoring a cbhttp client through an outage.
 *
 * The program starts the in-process fixture server, makes a client that logs
 * to stderr (api_log_stderr) and reports breaker events to a listener that
 * prints a timeline on stdout, and then plays a short outage:
 *
 *   1. healthy calls: a plain endpoint and a cached one (revalidated with
 *      its ETag on every use, so a 304 keeps it current);
 *   2. the server answers 503: calls fail and are retried (the cached
 *      resource is served stale instead, as its stale-if-error allows), and
 *      the breaker of the origin opens;
 *   3. while it is open, calls are rejected without touching the network,
 *      and the cached resource is served stale in their place;
 *   4. the server recovers; after the reset timeout (300 ms here) a probe
 *      closes the breaker and fresh data flows again.
 *
 * Finally it prints the client's metrics as JSON and in the Prometheus text
 * format. Build with `make examples`, run build/examples/monitoring.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cbhttp.h>

#include "fixture.h"

#define CATALOG "/cache/catalog?cc=max-age=0&cc=stale-if-error=60&etag=catalog"

static struct timespec start;

/* Milliseconds since the program started, for the timeline. */
static long elapsed_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The listener: breaker events of every origin. It runs on the thread that
 * made the call, with no lock of the client held. */
static void on_event(const char *origin, const cb_event *ev, void *user_data)
{
    (void)user_data;
    switch (ev->type) {
    case CB_EVENT_STATE_CHANGE:
        printf("%6ld ms  event  %s: %s -> %s\n", elapsed_ms(), origin, cb_state_name(ev->from),
               cb_state_name(ev->to));
        break;
    case CB_EVENT_REJECTED:
        printf("%6ld ms  event  %s: call rejected (%s)\n", elapsed_ms(), origin,
               cb_state_name(ev->state));
        break;
    case CB_EVENT_FAILURE:
        printf("%6ld ms  event  %s: failure (%s)\n", elapsed_ms(), origin, cb_strerror(ev->error));
        break;
    case CB_EVENT_FAILURE_RATE_EXCEEDED:
        printf("%6ld ms  event  %s: failure rate %.0f%% over %u calls\n", elapsed_ms(), origin,
               ev->rate, ev->calls);
        break;
    default:
        break; /* successes, ignored outcomes, resets: too many to be interesting here */
    }
    fflush(stdout);
}

/* One GET, with a line saying what came back and from where. */
static void get(api_client *c, const char *path)
{
    api_response r;
    cb_err       err = api_get(c, path, NULL, &r);

    printf("%6ld ms  GET %-8s -> ", elapsed_ms(), path[1] == 'c' ? "catalog" : path);
    if (err == CB_OK && r.stale)
        printf("%ld from the cache, STALE (standing in for: %s)\n", r.status, cb_strerror(r.cause));
    else if (err == CB_OK && r.revalidated)
        printf("%ld from the cache, revalidated (304)\n", r.status);
    else if (err == CB_OK && r.from_cache)
        printf("%ld from the cache\n", r.status);
    else if (err == CB_OK || err == CB_ERR_HTTP)
        printf("%ld after %u attempt(s)\n", r.status, r.attempts);
    else
        printf("%s\n", cb_strerror(err));
    fflush(stdout);
    api_response_free(&r);
}

int main(void)
{
    api_client_config cfg = { 0 };
    api_client       *client;
    fixture          *server;
    char             *text;
    int               i;

    clock_gettime(CLOCK_MONOTONIC, &start);
    server = fixture_start();
    if (!server) {
        fprintf(stderr, "cannot start the fixture server\n");
        return 1;
    }

    cfg.base_url = fixture_url(server);
    cfg.timeout_ms = 2000;
    cfg.circuit_breaker.failure_threshold = 3;  /* three failures open it... */
    cfg.circuit_breaker.reset_timeout_ms = 300; /* ...for 300 ms */
    cfg.retry.max_attempts = 2;
    cfg.retry.base_delay_ms = 20;
    cfg.logger = api_log_stderr;
    cfg.log_level = API_LOG_DEBUG;
    cfg.on_event = on_event;
    client = api_client_new(&cfg);
    if (!client) {
        fprintf(stderr, "cannot create the client\n");
        fixture_stop(server);
        return 1;
    }
    printf("server at %s\n\n", fixture_url(server));

    printf("-- healthy --\n");
    get(client, "/ok");
    get(client, CATALOG);
    get(client, CATALOG);

    printf("\n-- the server answers 503 --\n");
    fixture_set_outage(server, FIXTURE_DOWN_503);
    get(client, CATALOG); /* two failed attempts; the stale copy stands in */
    get(client, "/ok");   /* the third failure opens the breaker */

    printf("\n-- breaker open: no network I/O --\n");
    for (i = 0; i < 2; i++)
        get(client, "/ok");
    get(client, CATALOG);

    printf("\n-- the server is back; waiting for the reset timeout --\n");
    fixture_set_outage(server, FIXTURE_UP);
    sleep_ms(350);
    get(client, "/ok"); /* the probe: HALF_OPEN, then CLOSED */
    get(client, CATALOG);
    printf("breaker: %s\n", cb_state_name(api_client_breaker_state(client, "/")));

    printf("\n-- metrics (JSON) --\n");
    if (api_client_metrics_json(client, &text) == CB_OK) {
        printf("%s\n", text);
        cb_free(text);
    }
    printf("\n-- metrics (Prometheus) --\n");
    if (api_client_metrics_prometheus(client, &text) == CB_OK) {
        fputs(text, stdout);
        cb_free(text);
    }

    api_client_free(client);
    fixture_stop(server);
    return 0;
}
