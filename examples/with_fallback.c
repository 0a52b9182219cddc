/*
 * with_fallback: serve something useful when the upstream is down.
 *
 * get_price() asks the price service (here the in-process test server). When
 * the call fails for any reason, and in particular when the circuit breaker
 * is OPEN and rejects the call without touching the network, it returns the
 * last price it saw, or a fixed default if it never saw one. The caller
 * always gets an answer, and learns whether it is live.
 *
 * The program drives an outage: a few live answers, then the server answers
 * 503, the breaker opens after three failures and every further call is
 * answered by the fallback in microseconds; then the server comes back, the
 * breaker lets a probe through after its reset timeout and closes.
 *
 *   make examples && build/examples/with_fallback
 */
#include <stdio.h>
#include <time.h>

#include <cJSON.h>
#include <cbhttp.h>

#include "fixture.h"

/* What get_price() hands back. */
typedef struct price {
    double value;
    bool   live; /* true: fresh from the service; false: the fallback */
    cb_err why;  /* with !live: why the live call did not succeed */
} price;

/* The last live price: the fallback prefers it to a fixed default.
 * (One thread in this example; a real program would guard it.) */
static double last_good = 100.0;

/* Asks the service. Its JSON answer carries the price in "float" (the test
 * server's /json document stands in for a real price feed). */
static price get_price(api_client *client)
{
    price        p = { .value = last_good, .live = false };
    api_response resp;
    cJSON       *doc = NULL;
    cb_err       err = api_get(client, "/json", NULL, &resp);

    if (err == CB_OK)
        err = api_response_json(&resp, &doc);
    if (err == CB_OK) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "float");

        if (cJSON_IsNumber(v)) {
            /* Live data: remember it for the bad days. */
            p.value = last_good = v->valuedouble;
            p.live = true;
        } else {
            err = CB_ERR_PARSE;
        }
    }
    /* CB_ERR_CIRCUIT_OPEN means no request was sent at all; any other code
     * means one was tried and failed. Both get the fallback. */
    p.why = err;
    cJSON_Delete(doc);
    api_response_free(&resp);
    return p;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* One call, one line: what came back, how, how fast, and the breaker state. */
static void show(api_client *client, const char *label)
{
    double t0 = now_ms();
    price  p = get_price(client);
    double us = (now_ms() - t0) * 1e3;

    printf("%-23s price %6.2f %-8s %9.1f us  breaker %-9s %s\n", label, p.value,
           p.live ? "LIVE" : "FALLBACK", us, cb_state_name(api_client_breaker_state(client, "/")),
           p.live ? "" : cb_strerror(p.why));
}

int main(void)
{
    fixture    *f = fixture_start();
    api_client *client;
    int         i;

    if (!f) {
        fprintf(stderr, "with_fallback: cannot start the fixture server\n");
        return 1;
    }
    client = api_client_new(&(api_client_config){
        .base_url = fixture_url(f),
        .timeout_ms = 1000,
        /* Open after 3 failures; try again after 300 ms. */
        .circuit_breaker = { .failure_threshold = 3, .reset_timeout_ms = 300 },
        /* One attempt per call keeps the story short. */
        .retry = { .max_attempts = 1 },
        /* No response cache: this example shows the application's own
         * fallback (see demo.c for stale-if-error from the cache). */
        .cache = { .disabled = true },
    });
    if (!client) {
        fprintf(stderr, "with_fallback: api_client_new failed\n");
        fixture_stop(f);
        return 1;
    }

    puts("-- the service is up");
    for (i = 0; i < 2; i++)
        show(client, "get_price()");

    puts("-- the service answers 503 from now on");
    fixture_set_outage(f, FIXTURE_DOWN_503);
    for (i = 0; i < 6; i++)
        show(client, i < 3 ? "get_price() (fails)" : "get_price() (rejected)");
    printf("   requests that reached the server so far: %llu\n",
           (unsigned long long)fixture_requests(f));

    puts("-- the service is back; waiting out the 300 ms reset timeout");
    fixture_set_outage(f, FIXTURE_UP);
    sleep_ms(350);
    show(client, "get_price() (probe)");
    show(client, "get_price()");

    printf("   requests that reached the server: %llu of 10 calls\n",
           (unsigned long long)fixture_requests(f));
    api_client_free(client);
    fixture_stop(f);
    return 0;
}
