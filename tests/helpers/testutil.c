#include <stdlib.h>
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

int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int      failed;

    srunner_set_fork_status(sr, CK_FORK_GETENV);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
