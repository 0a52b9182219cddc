/* Shared by the test suites: a fake clock and a sleep that records what it
 * was asked for and advances that clock instead of sleeping. */
#ifndef CBH_TESTUTIL_H
#define CBH_TESTUTIL_H

#include <stdint.h>

#include <cbhttp.h>
#include <check.h>

#define TU_MAX_SLEEPS 64

typedef struct tu_clock {
    uint64_t now_ms;                /* the time it reports */
    uint64_t sleeps[TU_MAX_SLEEPS]; /* every sleep requested, in order */
    unsigned n_sleeps;
} tu_clock;

/* cb_clock_fn: returns ((tu_clock *)ud)->now_ms. */
uint64_t tu_clock_now(void *ud);
/* A sleep_fn for api_client_config: records ms and advances the clock. */
void tu_clock_sleep(uint64_t ms, void *ud);
/* Sets up cfg->clock/clock_data/sleep_fn/sleep_data to use tc (now = 1000). */
void tu_clock_install(tu_clock *tc, api_client_config *cfg);

/* A loopback port nobody listens on: bound, then closed. */
unsigned short tu_closed_port(void);

/* A socket listening on a free loopback port: *port, and url gets
 * "http://127.0.0.1:<port>". */
int tu_listen_loopback(int backlog, unsigned short *port, char *url, size_t url_size);

/* Runs every test of s and returns the process exit status. Each test
 * forks (isolated, crash-safe) unless the environment says CK_FORK=no, as
 * CI does under ThreadSanitizer and valgrind. */
int tu_run_suite(Suite *s);

#endif
