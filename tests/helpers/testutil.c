#include <string.h>

#include "testutil.h"

uint64_t tu_clock_now(void *ud) { return ((tu_clock *)ud)->now_ms; }

void tu_clock_sleep(uint64_t ms, void *ud)
{
    tu_clock *tc = ud;

    if (tc->n_sleeps < TU_MAX_SLEEPS)
        tc->sleeps[tc->n_sleeps++] = ms;
    tc->now_ms += ms;
}

void tu_clock_install(tu_clock *tc, api_client_config *cfg)
{
    memset(tc, 0, sizeof(*tc));
    tc->now_ms = 1000;
    cfg->clock = tu_clock_now;
    cfg->clock_data = tc;
    cfg->sleep_fn = tu_clock_sleep;
    cfg->sleep_data = tc;
}
