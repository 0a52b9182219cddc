/*
 * cbh_buf_reserve (src/buf.h), the growth rule of export.c's text and of
 * transport.c's receive buffers: the initial size, doubling, the limit (also
 * when the initial size is above it, as for a body limit under 512 bytes),
 * no allocation when there is room, and a refused allocation that leaves
 * the buffer as it was.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#include "helpers/failalloc.h"
#include "helpers/testutil.h"

START_TEST(test_initial_then_doubling)
{
    char  *p = NULL;
    size_t cap = 0;

    ck_assert(cbh_buf_reserve(&p, &cap, 10, 16, 1000));
    ck_assert_uint_eq(cap, 16);
    ck_assert(cbh_buf_reserve(&p, &cap, 40, 16, 1000));
    ck_assert_uint_eq(cap, 64);
    /* Past half the limit, the next step is the limit itself. */
    ck_assert(cbh_buf_reserve(&p, &cap, 600, 16, 1000));
    ck_assert_uint_eq(cap, 1000);
    memset(p, 'x', cap);
    cbh_free(p);
}
END_TEST

/* An initial size above the limit is cut to it: a body limit of 100 bytes
 * allocates 101 (with the NUL), not the usual first 512. */
START_TEST(test_initial_above_limit)
{
    char  *p = NULL;
    size_t cap = 0;

    ck_assert(cbh_buf_reserve(&p, &cap, 51, 512, 101));
    ck_assert_uint_eq(cap, 101);
    memset(p, 'x', cap);
    cbh_free(p);
}
END_TEST

START_TEST(test_room_already)
{
    char  *p = NULL, *before;
    size_t cap = 0;

    tu_alloc_install();
    ck_assert(cbh_buf_reserve(&p, &cap, 100, 128, 4096));
    before = p;
    /* Enough room: nothing is allocated, even when allocation would fail. */
    tu_alloc_fail_from(1);
    ck_assert(cbh_buf_reserve(&p, &cap, 128, 128, 4096));
    ck_assert(!tu_alloc_disarm());
    ck_assert_ptr_eq(p, before);
    ck_assert_uint_eq(cap, 128);
    cbh_free(p);
    tu_alloc_uninstall();
}
END_TEST

START_TEST(test_refused_keeps_buffer)
{
    char  *p = NULL, *before;
    size_t cap = 0;

    tu_alloc_install();
    tu_alloc_fail_at(1);
    ck_assert(!cbh_buf_reserve(&p, &cap, 10, 16, 1000));
    ck_assert(tu_alloc_disarm());
    ck_assert_ptr_null(p);
    ck_assert_uint_eq(cap, 0);

    ck_assert(cbh_buf_reserve(&p, &cap, 10, 16, 1000));
    strcpy(p, "kept");
    before = p;
    tu_alloc_fail_at(1);
    ck_assert(!cbh_buf_reserve(&p, &cap, 17, 16, 1000));
    ck_assert(tu_alloc_disarm());
    ck_assert_ptr_eq(p, before);
    ck_assert_uint_eq(cap, 16);
    ck_assert_str_eq(p, "kept");
    cbh_free(p);
    tu_alloc_uninstall();
}
END_TEST

static Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("reserve");

    tcase_add_test(tc, test_initial_then_doubling);
    tcase_add_test(tc, test_initial_above_limit);
    tcase_add_test(tc, test_room_already);
    tcase_add_test(tc, test_refused_keeps_buffer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run_suite(buf_suite()); }
