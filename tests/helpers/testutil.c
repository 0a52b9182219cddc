#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* A TCP socket bound to a free loopback port (*port). */
static int tu_bound(unsigned short *port)
{
    struct sockaddr_in sa;
    socklen_t          len = sizeof(sa);
    int                fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

unsigned short tu_closed_port(void)
{
    unsigned short port;

    close(tu_bound(&port));
    return port;
}

int tu_listen_loopback(int backlog, unsigned short *port, char *url, size_t url_size)
{
    int fd = tu_bound(port);

    ck_assert_int_eq(listen(fd, backlog), 0);
    snprintf(url, url_size, "http://127.0.0.1:%u", (unsigned)*port);
    return fd;
}
