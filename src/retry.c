/*
 * The retry policy: eligibility, full-jitter backoff, Retry-After and the
 * per-origin retry budget. Pure functions except the budget, which keeps
 * counts in one-second slots under its own mutex.
 */
#include <limits.h>
#include <string.h>

#include "httpdate.h"
#include "method.h"
#include "mix.h"
#include "retry.h"

#define RETRY_DEFAULT_ATTEMPTS 3u
#define RETRY_DEFAULT_BASE_MS 100u
#define RETRY_DEFAULT_MAX_MS 10000u
#define BUDGET_DEFAULT_PERCENT 20u
#define BUDGET_DEFAULT_MIN_PER_SEC 10u
#define BUDGET_DEFAULT_WINDOW_MS 10000u
#define RETRY_AFTER_MAX_S (365ull * 24 * 3600)

void cbh_retry_config_norm(const api_retry_config *in, api_retry_config *out)
{
    api_retry_config c;

    if (in)
        c = *in;
    else
        memset(&c, 0, sizeof(c));
    if (!c.max_attempts)
        c.max_attempts = RETRY_DEFAULT_ATTEMPTS;
    if (!c.base_delay_ms)
        c.base_delay_ms = RETRY_DEFAULT_BASE_MS;
    if (!c.max_delay_ms)
        c.max_delay_ms = RETRY_DEFAULT_MAX_MS;
    if (!c.budget_percent)
        c.budget_percent = BUDGET_DEFAULT_PERCENT;
    if (!c.budget_min_per_sec)
        c.budget_min_per_sec = BUDGET_DEFAULT_MIN_PER_SEC;
    if (!c.budget_window_ms)
        c.budget_window_ms = BUDGET_DEFAULT_WINDOW_MS;
    /* The ring holds CBH_BUDGET_SLOTS seconds; a longer window would count
     * slots that have already been reused for newer seconds. */
    if (c.budget_window_ms > CBH_BUDGET_SLOTS * 1000u)
        c.budget_window_ms = CBH_BUDGET_SLOTS * 1000u;
    *out = c;
}

bool cbh_retry_method_ok(const char *method, bool has_idempotency_key)
{
    return has_idempotency_key || cbh_method_is_idempotent(method);
}

uint64_t cbh_backoff_ms(const api_retry_config *rc, unsigned n, uint64_t *rng)
{
    uint64_t cap, base, max, r;

    if (!rc)
        return 0;
    base = rc->base_delay_ms;
    max = rc->max_delay_ms;
    /* base * 2^n without overflow: once it would pass max, max is the cap
     * (base < 2^32, so n >= 32 always passes any 32-bit max). */
    if (n >= 32 || base > (max >> n))
        cap = max;
    else
        cap = base << n;
    r = rng ? cbh_xorshift64(rng) : 0;
    /* Modulo bias is below 2^-32 for caps that fit 32 bits. */
    return r % (cap + 1);
}

/* Seconds -> milliseconds, clamped to a year so that a hostile header cannot
 * produce a delay that overflows or parks a caller forever. */
static uint64_t retry_secs_to_ms(uint64_t s)
{
    if (s > RETRY_AFTER_MAX_S)
        s = RETRY_AFTER_MAX_S;
    return s * 1000u;
}

bool cbh_retry_after_ms(const char *value, int64_t now_epoch, uint64_t *out_ms)
{
    const char *s, *e;
    char        date[64];
    int64_t     when;
    bool        neg = false;

    if (!value || !out_ms)
        return false;
    s = value;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (e == s)
        return false;

    /* delta-seconds is 1*DIGIT. A leading '-' is not HTTP, but servers and
     * proxies do send "-1": it means "now", so it is read as 0. */
    if (*s == '-' && e - s > 1) {
        neg = true;
        s++;
    }
    if (*s >= '0' && *s <= '9') {
        uint64_t    v = 0;
        const char *p;

        for (p = s; p < e; p++) {
            if (*p < '0' || *p > '9')
                return false;
            if (v <= RETRY_AFTER_MAX_S) /* keeps v from overflowing */
                v = v * 10 + (uint64_t)(*p - '0');
        }
        *out_ms = neg ? 0 : retry_secs_to_ms(v);
        return true;
    }
    if (neg || (size_t)(e - s) >= sizeof(date))
        return false;
    memcpy(date, s, (size_t)(e - s));
    date[e - s] = '\0';
    if (!cbh_http_date_parse(date, &when))
        return false;
    *out_ms = when <= now_epoch ? 0 : retry_secs_to_ms((uint64_t)(when - now_epoch));
    return true;
}

/* ---- The budget --------------------------------------------------------- */

/*
 * Each slot holds the counts of one second; slot_sec stores that second + 1
 * so that a zeroed slot is "empty" even for second 0 of a fake clock. A slot
 * whose stamp differs from the second asked for holds an older second and is
 * treated as (and, when written, reset to) zero.
 */
void cbh_budget_init(cbh_budget *b)
{
    memset(b->slot_sec, 0, sizeof(b->slot_sec));
    memset(b->requests, 0, sizeof(b->requests));
    memset(b->retries, 0, sizeof(b->retries));
    pthread_mutex_init(&b->lock, NULL);
}

void cbh_budget_destroy(cbh_budget *b) { pthread_mutex_destroy(&b->lock); }

/* The slot of second sec, cleared when it still holds an older second.
 * Called with the lock held. */
static unsigned budget_slot(cbh_budget *b, uint64_t sec)
{
    unsigned i = (unsigned)(sec % CBH_BUDGET_SLOTS);

    if (b->slot_sec[i] != sec + 1) {
        b->slot_sec[i] = sec + 1;
        b->requests[i] = 0;
        b->retries[i] = 0;
    }
    return i;
}

/* Sums requests and retries over the window's seconds ending at sec. */
static void budget_sum(const cbh_budget *b, const api_retry_config *rc, uint64_t sec,
                       uint64_t *requests, uint64_t *retries)
{
    uint64_t secs = (rc->budget_window_ms + 999u) / 1000u, k;

    if (secs == 0)
        secs = 1;
    if (secs > CBH_BUDGET_SLOTS)
        secs = CBH_BUDGET_SLOTS;
    *requests = *retries = 0;
    for (k = 0; k < secs && k <= sec; k++) {
        unsigned i = (unsigned)((sec - k) % CBH_BUDGET_SLOTS);

        if (b->slot_sec[i] == sec - k + 1) {
            *requests += b->requests[i];
            *retries += b->retries[i];
        }
    }
}

/* Retries in the current second: the floor's count. One-second slots make
 * this at most the true count of the last 1000 ms, so the floor never holds
 * back a retry the contract promises. */
static uint64_t budget_this_second(const cbh_budget *b, uint64_t sec)
{
    unsigned i = (unsigned)(sec % CBH_BUDGET_SLOTS);

    return b->slot_sec[i] == sec + 1 ? b->retries[i] : 0;
}

void cbh_budget_note_request(cbh_budget *b, uint64_t now_ms)
{
    unsigned i;

    pthread_mutex_lock(&b->lock);
    i = budget_slot(b, now_ms / 1000u);
    if (b->requests[i] < UINT32_MAX)
        b->requests[i]++;
    pthread_mutex_unlock(&b->lock);
}

/* How many more retries the budget grants now; called with the lock held.
 * Granting one adds to both the floor's count and the window's, and both
 * conditions only get harder as they grow, so the answer is the larger of
 * what each condition alone still allows. */
static uint64_t budget_left(const cbh_budget *b, const api_retry_config *rc, uint64_t now_ms)
{
    uint64_t sec = now_ms / 1000u, requests, retries, floor_left = 0, pct_left = 0, cur, allowed;

    cur = budget_this_second(b, sec);
    if (cur < rc->budget_min_per_sec)
        floor_left = rc->budget_min_per_sec - cur;
    budget_sum(b, rc, sec, &requests, &retries);
    /* retries < requests * percent / 100, in integers: retries * 100 <
     * requests * percent, so ceil(requests * percent / 100) retries fit. */
    allowed = (requests * rc->budget_percent + 99u) / 100u;
    if (retries < allowed)
        pct_left = allowed - retries;
    return floor_left > pct_left ? floor_left : pct_left;
}

bool cbh_budget_try_retry(cbh_budget *b, const api_retry_config *rc, uint64_t now_ms)
{
    bool ok;

    if (!rc || rc->budget_disabled)
        return true;
    pthread_mutex_lock(&b->lock);
    ok = budget_left(b, rc, now_ms) > 0;
    if (ok) {
        unsigned i = budget_slot(b, now_ms / 1000u);

        if (b->retries[i] < UINT32_MAX)
            b->retries[i]++;
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

unsigned cbh_budget_available(cbh_budget *b, const api_retry_config *rc, uint64_t now_ms)
{
    uint64_t left;

    if (!rc || rc->budget_disabled)
        return UINT_MAX;
    if (!b) {
        static const cbh_budget empty; /* nothing counted: every slot stale */

        left = budget_left(&empty, rc, now_ms);
    } else {
        pthread_mutex_lock(&b->lock);
        left = budget_left(b, rc, now_ms);
        pthread_mutex_unlock(&b->lock);
    }
    return left > UINT_MAX ? UINT_MAX : (unsigned)left;
}
