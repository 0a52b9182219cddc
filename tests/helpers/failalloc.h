/* A cb_allocator for allocation-failure tests: it counts the allocation
 * calls and the blocks still live, and fails the call it is armed for (or
 * that call and all later ones). Counters are atomic, so threads inside the library may
 * allocate while a test runs; arming is meant for one test thread. */
#ifndef CBH_FAILALLOC_H
#define CBH_FAILALLOC_H

#include <stdbool.h>

#include <cbhttp.h>

/* The counting allocator itself (for tests of cb_set_allocator). */
extern const cb_allocator tu_alloc_counting;

/* Resets the counters, disarms, and installs tu_alloc_counting (asserting
 * that cb_set_allocator accepts it). */
void tu_alloc_install(void);

/* Asserts that every block allocated since tu_alloc_install was freed, then
 * restores the C library's allocator. */
void tu_alloc_uninstall(void);

/* Counts calls from zero again and fails the n-th (1-based) from now on;
 * only that one. 0 fails nothing. */
void tu_alloc_fail_at(unsigned long n);

/* As tu_alloc_fail_at, but the n-th call and every later one fail, until
 * tu_alloc_disarm (1: every call from now on). */
void tu_alloc_fail_from(unsigned long n);

/* Stops failing. Returns true when an armed failure happened. */
bool tu_alloc_disarm(void);

/* Blocks allocated through the hook and not yet freed through it. */
long tu_alloc_live(void);

#endif
