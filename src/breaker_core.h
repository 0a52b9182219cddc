/*
 * The breaker's layout, for the modules that keep breakers by the million
 * (the per-origin map embeds one in every origin).
 *
 * A breaker is compact until it is inflated. The compact part holds what a
 * breaker nobody calls needs (its state word, the OPEN deadline and duration,
 * times_opened, the jitter's state and a one-word lock) and no pointer: the
 * shared-state work will place it in shared memory, where each process maps
 * at its own address. It refers to its inflated part by an offset from
 * itself (0 = not inflated), which stays valid in any mapping that holds
 * both.
 *
 * The inflated part holds the per-call counters in cache-line stripes, the
 * rolling window and every count of the locked paths. cb_breaker_new
 * inflates at once; an embedded breaker (cbh_breaker_init) is inflated by
 * cbh_breaker_inflate, before its first call, and deflated again by
 * cbh_breaker_deflate once it is idle and nothing but its counts is left
 * in the inflated part: the counts then go into the core's carry, a few
 * bytes of variable-length numbers, and the next inflate starts from them.
 * A compact breaker answers state, metrics, configure, reset, trip and
 * isolate as an inflated one would (its counts are the carried ones);
 * acquire inflates it, and refuses with CB_ERR_NOMEM when that cannot be
 * allocated (only embedded breakers can meet this).
 *
 * Process-local pointers sit beside the compact part: env (the callbacks
 * and clock, never changed after init) and cfg (the numbers in force, read
 * under the lock; shared by many breakers until one is reconfigured).
 */
#ifndef CBH_BREAKER_CORE_H
#define CBH_BREAKER_CORE_H

#include <stdatomic.h>
#include <stdint.h>

#include "cbhttp.h"
#include "lock.h"

/* Bytes of counts a compact breaker keeps. A breaker's counts and its
 * owner's (the origin's eight) take 19 bytes when all are zero and 30 to
 * 40 after some thousands of calls: deflate refuses counts that do not
 * fit, and the breaker stays inflated. */
#define CBH_CARRY_BYTES 40
/* Most numbers an owner may carry beside the breaker's counts. */
#define CBH_CARRY_EXTRA_MAX 8

/* The compact part: no pointers. */
typedef struct cbh_breaker_core {
    _Atomic uint64_t word;       /* state, flags, period generation */
    _Atomic uint64_t open_until; /* OPEN: the clock time it turns HALF_OPEN */
    _Atomic uint64_t hot;        /* offset of the inflated part from this core;
                                    0 = compact. Written once, under lock. */
    uint64_t         state_since_ms;
    uint64_t         times_opened;
    uint64_t         rng;     /* xorshift64 state for the jitter */
    unsigned         open_ms; /* the OPEN duration in force */
    cbh_lock         lock;    /* guards everything but the atomics */
    /* A deflated breaker's counts, then its owner's: LEB128 numbers in a
     * fixed order (breaker.c). All zero bytes read as zero counts. */
    uint8_t carry[CBH_CARRY_BYTES];
} cbh_breaker_core;

struct cb_breaker {
    const cb_config *env;     /* callbacks and clock: fixed, read without the lock */
    cb_config       *cfg;     /* numbers in force: read under the lock; written
                             only when it is the breaker's own */
    unsigned         flags;   /* how it was made (breaker.c), fixed */
    bool             own_cfg; /* cfg is a heap copy of its own (under the lock) */
    cbh_breaker_core core;
};

/* Initialises an embedded, compact breaker. env (callbacks, clock) and cfg
 * (numbers) must be normalised (cb_config_check passes) and outlive the
 * breaker; they may be one config shared by many breakers. Allocates
 * nothing; cannot fail. */
void cbh_breaker_init(cb_breaker *b, const cb_config *env, const cb_config *cfg);

/* Allocates the inflated part (stripes, window, counts) unless there is
 * one. CB_OK or CB_ERR_NOMEM. Thread-safe. */
cb_err cbh_breaker_inflate(cb_breaker *b);

/*
 * Gives back the inflated part of an idle breaker, keeping its counts and
 * the owner's n_extra numbers (<= CBH_CARRY_EXTRA_MAX) in the carry.
 * Refused (false, nothing changed) unless the breaker is CLOSED, not
 * isolated, in no run of consecutive failures, its time window empty at
 * now (a count window is never empty: it keeps the last calls whatever
 * their age), and everything fits CBH_CARRY_BYTES. A compact breaker
 * deflates too: only the owner's numbers change. Nothing the breaker
 * reports or decides changes: metrics read the carried counts, the next
 * inflate starts from them. The caller guarantees that no other thread
 * uses b meanwhile and that no permit is outstanding.
 */
bool cbh_breaker_deflate(cb_breaker *b, uint64_t now, const uint64_t *extra, unsigned n_extra);

/* The owner's numbers its last deflate kept (zeros when none):
 * n_extra (<= CBH_CARRY_EXTRA_MAX) of them into extra. Thread-safe. */
void cbh_breaker_carried(cb_breaker *b, uint64_t *extra, unsigned n_extra);

/* Whether b has its inflated part. */
bool cbh_breaker_inflated(const cb_breaker *b);

/* Frees what an embedded breaker allocated (its inflated part, its own
 * config). No other thread may use it any more. */
void cbh_breaker_destroy(cb_breaker *b);

/* Fills defaults into a copy of in and checks it; false when refused. */
bool cbh_breaker_config_norm(const cb_config *in, cb_config *out);

#endif
