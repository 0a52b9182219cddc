/* The counting, failing allocator of failalloc.h. */
#include "failalloc.h"

#include <stdatomic.h>
#include <stdlib.h>

#include <check.h>

static atomic_long  live;    /* allocations not yet freed */
static atomic_ulong calls;   /* allocation calls since arming */
static atomic_ulong fail_at; /* 0 = never fail; else the call to fail */
static atomic_bool  sticky;  /* calls after fail_at fail too */
static atomic_bool  failed;  /* the armed failure happened */

/* True when this allocation call is one to fail. */
static bool should_fail(void)
{
    unsigned long at = atomic_load(&fail_at);
    unsigned long n = atomic_fetch_add(&calls, 1) + 1;

    if (at && (n == at || (n > at && atomic_load(&sticky)))) {
        atomic_store(&failed, true);
        return true;
    }
    return false;
}

static void *ca_malloc(size_t size)
{
    void *p;

    if (should_fail())
        return NULL;
    p = malloc(size);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

static void *ca_calloc(size_t n, size_t size)
{
    void *p;

    if (should_fail())
        return NULL;
    p = calloc(n, size);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

static void *ca_realloc(void *ptr, size_t size)
{
    void *p;

    if (should_fail())
        return NULL;
    p = realloc(ptr, size);
    if (p && !ptr)
        atomic_fetch_add(&live, 1);
    return p;
}

static void ca_free(void *ptr)
{
    if (ptr)
        atomic_fetch_sub(&live, 1);
    free(ptr);
}

const cb_allocator tu_alloc_counting = { ca_malloc, ca_calloc, ca_realloc, ca_free };

void tu_alloc_install(void)
{
    atomic_store(&live, 0);
    atomic_store(&calls, 0);
    atomic_store(&fail_at, 0);
    atomic_store(&sticky, false);
    atomic_store(&failed, false);
    ck_assert_int_eq(cb_set_allocator(&tu_alloc_counting), CB_OK);
}

void tu_alloc_uninstall(void)
{
    ck_assert_int_eq(atomic_load(&live), 0);
    ck_assert_int_eq(cb_set_allocator(NULL), CB_OK);
}

/* Disarmed while the counters are reset, so that no call in between fails
 * by the previous arming. */
static void arm(unsigned long n, bool from_on)
{
    atomic_store(&fail_at, 0);
    atomic_store(&failed, false);
    atomic_store(&calls, 0);
    atomic_store(&sticky, from_on);
    atomic_store(&fail_at, n);
}

void tu_alloc_fail_at(unsigned long n) { arm(n, false); }

void tu_alloc_fail_from(unsigned long n) { arm(n, true); }

bool tu_alloc_disarm(void)
{
    atomic_store(&fail_at, 0);
    atomic_store(&sticky, false);
    return atomic_load(&failed);
}

long tu_alloc_live(void) { return atomic_load(&live); }
