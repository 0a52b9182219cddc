/* A lock of one word, for objects kept by the million (a pthread mutex is
 * 40 bytes) and meant for shared memory later (it holds no pointer and
 * needs no initialisation beyond zero). Spins briefly, then yields the CPU:
 * it guards short sections that never block. */
#ifndef CBH_LOCK_H
#define CBH_LOCK_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct cbh_lock {
    _Atomic uint32_t held;
} cbh_lock;

static inline void cbh_lock_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline void cbh_lock_take(cbh_lock *l)
{
    unsigned spins = 0;

    while (atomic_exchange_explicit(&l->held, 1, memory_order_acquire)) {
        while (atomic_load_explicit(&l->held, memory_order_relaxed)) {
            if (++spins < 100)
                cbh_lock_relax();
            else
                sched_yield();
        }
    }
}

static inline void cbh_lock_drop(cbh_lock *l)
{
    atomic_store_explicit(&l->held, 0, memory_order_release);
}

#endif
