/*
 * async_libuv: many calls in flight on one libuv loop, with fallback data
 * for a service whose circuit is open.
 *
 * A dashboard fills nine tiles per round from three services (here three
 * in-process test servers, three origins): "prices", "stock" and
 * "reviews", which takes 200 ms per answer. All nine calls of a round are
 * in flight at once on one thread, so a round takes about 200 ms, not
 * 9 x 200.
 *
 * After the first round "stock" starts answering 503. In round 2 its three
 * calls fail and its breaker opens (threshold 3); in round 3 its calls are
 * rejected at once with CB_ERR_CIRCUIT_OPEN, nothing is sent, and its tiles
 * show the last good data, while the other services carry on.
 *
 *   make examples && build/examples/async_libuv
 */
#include <stdio.h>
#include <time.h>

#include <cJSON.h>
#include <cbhttp.h>
#include <cbhttp/adapters/libuv.h>

#include "fixture.h"

#define N_SERVICES 3
#define PER_SERVICE 3

typedef struct service {
    const char *name;
    const char *path;
    fixture    *server;
    long        last_good; /* the fallback data: the last answer's number */
} service;

typedef struct tile {
    service     *svc;
    api_response resp;
    char         shown[80];
} tile;

/* The test server numbers its answers ("n"): that is our "data". */
static long answer_number(const api_response *resp)
{
    cJSON *doc = NULL;
    long   n = -1;

    if (api_response_json(resp, &doc) == CB_OK &&
        cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(doc, "n")))
        n = (long)cJSON_GetObjectItemCaseSensitive(doc, "n")->valuedouble;
    cJSON_Delete(doc);
    return n;
}

/* Runs on the loop's thread when a call ends, whatever its result. */
static void on_done(cb_err err, api_response *resp, void *user_data)
{
    tile *t = user_data;

    if (err == CB_OK) {
        /* Live data: keep it for the bad days. */
        t->svc->last_good = answer_number(resp);
        snprintf(t->shown, sizeof(t->shown), "LIVE      answer #%ld", t->svc->last_good);
    } else {
        /* CB_ERR_CIRCUIT_OPEN: the breaker rejected the call, nothing was
         * sent. Any other code: it was sent and failed. */
        snprintf(t->shown, sizeof(t->shown), "FALLBACK  answer #%ld (%s)", t->svc->last_good,
                 err == CB_ERR_CIRCUIT_OPEN ? "circuit open, nothing sent" : cb_strerror(err));
    }
    api_response_free(resp);
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(void)
{
    service     svcs[N_SERVICES] = { { "prices", "/json", NULL, 0 },
                                     { "stock", "/ok", NULL, 0 },
                                     { "reviews", "/delay/200", NULL, 0 } };
    tile        tiles[N_SERVICES * PER_SERVICE];
    uv_loop_t  *loop = uv_default_loop();
    api_client *client;
    api_async  *a;
    cb_err      err;
    int         i, round, rc = 1;

    for (i = 0; i < N_SERVICES; i++)
        if (!(svcs[i].server = fixture_start()))
            goto out;
    /* No base URL: each path names its origin. */
    client = api_client_new(&(api_client_config){
        .timeout_ms = 2000,
        .circuit_breaker = { .failure_threshold = 3, .reset_timeout_ms = 60000 },
        .retry = { .max_attempts = 1 },
        .cache = { .disabled = true },
    });
    a = client ? api_async_new(client) : NULL;
    /* Attach before submitting anything. */
    if (!a || api_libuv_attach(a, loop) != 0) {
        fprintf(stderr, "async_libuv: cannot set up the engine\n");
        api_async_free(a);
        goto out_client;
    }

    for (round = 1; round <= 3; round++) {
        double t0 = now_ms();

        if (round == 2)
            fixture_set_outage(svcs[1].server, FIXTURE_DOWN_503);
        printf("-- round %d%s\n", round, round == 2 ? " (stock answers 503 from now on)" : "");
        for (i = 0; i < N_SERVICES * PER_SERVICE; i++) {
            char url[128];

            tiles[i].svc = &svcs[i / PER_SERVICE];
            snprintf(url, sizeof(url), "%s%s", fixture_url(tiles[i].svc->server),
                     tiles[i].svc->path);
            /* Returns at once; on_done runs later. A call not accepted
             * (a bad URL, out of memory) gets no done: handle it here. */
            err = api_async_get(a, url, NULL, &tiles[i].resp, on_done, &tiles[i]);
            if (err != CB_OK)
                on_done(err, &tiles[i].resp, &tiles[i]);
        }
        /* Runs until every call is done and nothing else needs the loop. */
        uv_run(loop, UV_RUN_DEFAULT);
        for (i = 0; i < N_SERVICES * PER_SERVICE; i++)
            printf("   %-8s %s\n", tiles[i].svc->name, tiles[i].shown);
        printf("   %d calls in %.0f ms; requests that reached stock so far: %llu\n",
               N_SERVICES * PER_SERVICE, now_ms() - t0,
               (unsigned long long)fixture_requests(svcs[1].server));
    }
    rc = 0;

    api_async_free(a);
    /* The adapter closes its libuv handles asynchronously: one more run. */
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
out_client:
    api_client_free(client);
out:
    for (i = 0; i < N_SERVICES; i++)
        fixture_stop(svcs[i].server);
    return rc;
}
