/* The response cache.
 *
 * Layout: a hash table of nodes keyed by the URL; each node holds a short
 * list (newest first, at most CACHE_MAX_VARIANTS) of entries, one per method
 * (GET or HEAD) and Vary variant. Every entry is also on one global LRU list.
 * Everything a lookup needs (freshness lifetime, initial age, validators,
 * the Vary names and the request values they were stored under) is computed
 * at store time, so a fresh hit costs a hash, a few compares and two
 * allocations (body and header block copies).
 *
 * HEAD: a HEAD lookup uses a stored HEAD response if there is one, else the
 * GET response of that URL without its body (RFC 9110 9.3.2: same headers).
 * A GET lookup never uses a HEAD response, which has no body.
 *
 * Bytes: an entry counts its body, its header block, its URL and its Vary
 * block; the bookkeeping structs are not counted.
 *
 * One mutex guards everything. The clock callbacks run before it is taken;
 * nothing else calls out of the cache.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "cache.h"
#include "cachectl.h"
#include "headers.h"

#define CACHE_DEFAULT_MAX_BYTES ((size_t)32 << 20)
#define CACHE_DEFAULT_MAX_ENTRIES 10000u
#define CACHE_DEFAULT_MAX_ENTRY_BYTES ((size_t)1 << 20)
/* Variants per URL: bounds the list a lookup walks. */
#define CACHE_MAX_VARIANTS 16u
#define CACHE_INITIAL_BUCKETS 64u

typedef struct cache_vary {
    const char *name;  /* as the response's Vary header spelled it */
    const char *value; /* the request's value, trimmed; NULL = absent */
} cache_vary;

typedef struct cache_node cache_node;

typedef struct cache_entry {
    struct cache_entry *lru_prev, *lru_next; /* lru_prev is more recent */
    struct cache_entry *next;                /* next (older) variant of node */
    cache_node *node;
    bool head;           /* a HEAD response (no body) */
    long status;
    char *body;          /* inside this allocation, after the struct */
    size_t body_len;
    api_header *headers;
    size_t header_count, headers_size;
    cache_vary *vary;    /* one block: array then strings */
    size_t vary_count, vary_size;
    const char *etag;          /* into headers, or NULL */
    const char *last_modified; /* into headers, or NULL */
    uint64_t stored_ms;  /* monotonic time of the response (age origin) */
    cbh_freshness fr;
    size_t bytes;        /* what counts against max_bytes */
} cache_entry;

struct cache_node {
    cache_node *hnext; /* next node in the same bucket */
    uint64_t hash;
    char *url;
    size_t url_len;
    cache_entry *entries; /* newest first */
    unsigned count;
};

struct cbh_cache {
    pthread_mutex_t lock;
    /* Chained hash table of nodes. Not uthash: it lets chains grow to ~10
     * before expanding, and walking them cost more than the rest of a hit;
     * this one keeps at most one node per bucket on average. */
    cache_node **buckets;
    size_t nbuckets; /* a power of two */
    size_t nnodes;
    cache_entry *lru_head, *lru_tail; /* head = most recently used */
    size_t max_bytes, max_entry_bytes;
    unsigned max_entries;
    bool heuristic;
    cb_clock_fn clock;
    void *clock_data;
    int64_t (*wall)(void *);
    void *wall_data;
    uint64_t entries, bytes, stores, evictions, invalidations;
};

/* What the request's own headers ask of the cache. */
typedef struct cache_req {
    bool no_store;
    bool revalidate;  /* no-cache, or Pragma: no-cache without Cache-Control */
    bool has_max_age;
    uint64_t max_age_ms;
} cache_req;

static int64_t cache_wall_default(void *data)
{
    (void)data;
    return (int64_t)time(NULL);
}

/* 1 for HEAD, 0 for GET, -1 for methods the cache does not handle. */
static int cache_method(const char *method)
{
    if (strcmp(method, "GET") == 0)
        return 0;
    if (strcmp(method, "HEAD") == 0)
        return 1;
    return -1;
}

static void cache_req_parse(const char *const *req, cache_req *r)
{
    cbh_cc cc = { 0 };
    bool has_cc = false, pragma = false;
    size_t n;

    memset(r, 0, sizeof(*r));
    for (; req && *req; req++) {
        const char *v;

        /* Every lookup runs this: a first-letter test skips most lines. */
        switch (**req) {
        case 'c': case 'C':
            if ((v = cbh_header_line_value(*req, "Cache-Control", &n)) != NULL) {
                cbh_cc_parse(v, &cc);
                has_cc = true;
            }
            break;
        case 'p': case 'P':
            if ((v = cbh_header_line_value(*req, "Pragma", &n)) != NULL)
                pragma = pragma || (n >= 8 && strncasecmp(v, "no-cache", 8) == 0);
            break;
        default:
            break;
        }
    }
    r->no_store = cc.no_store;
    /* Pragma only counts when Cache-Control is absent (RFC 9111 5.4). */
    r->revalidate = cc.no_cache || (cc.has_max_age && cc.max_age_s == 0) || (!has_cc && pragma);
    r->has_max_age = cc.has_max_age;
    r->max_age_ms = cc.max_age_s * 1000;
}

/* The request's value of header name: the first line wins. */
static const char *cache_req_value(const char *const *req, const char *name, size_t *len)
{
    for (; req && *req; req++) {
        const char *v = cbh_header_line_value(*req, name, len);

        if (v)
            return v;
    }
    return NULL;
}

static bool cache_vary_match(const cache_entry *e, const char *const *req)
{
    size_t i, n;

    for (i = 0; i < e->vary_count; i++) {
        const char *v = cache_req_value(req, e->vary[i].name, &n);
        const char *stored = e->vary[i].value;

        if (!v || !stored) {
            if (v || stored)
                return false;
            continue;
        }
        if (strlen(stored) != n || memcmp(stored, v, n) != 0)
            return false;
    }
    return true;
}

typedef struct cache_vary_build {
    const char *const *req;
    cache_vary *arr; /* NULL while counting */
    char *strings;
    size_t count, bytes;
    size_t limit;    /* bytes beyond which the entry could never be stored */
    bool too_big;
} cache_vary_build;

static void cache_vary_add(const char *name, size_t len, void *ctx)
{
    cache_vary_build *b = ctx;
    char tmp[128];
    const char *v = NULL;
    size_t vlen = 0, need;

    /* Field names longer than this are not real headers; they are kept,
     * and match only requests that lack them too. */
    if (len < sizeof(tmp)) {
        memcpy(tmp, name, len);
        tmp[len] = '\0';
        v = cache_req_value(b->req, tmp, &vlen);
    }
    /* Each listed name copies the request's value: "Vary: a,a,a,..." with
     * a long "a" would multiply it. Stop counting past the per-entry cap
     * (bytes never exceeds limit, so limit - bytes cannot wrap). */
    need = len + 1 + (v ? vlen + 1 : 0);
    if (b->too_big || need > b->limit - b->bytes) {
        b->too_big = true;
        return;
    }
    if (b->arr) {
        char *p = b->strings + b->bytes;

        memcpy(p, name, len);
        p[len] = '\0';
        b->arr[b->count].name = p;
        b->arr[b->count].value = NULL;
        if (v) {
            memcpy(p + len + 1, v, vlen);
            p[len + 1 + vlen] = '\0';
            b->arr[b->count].value = p + len + 1;
        }
    }
    b->count++;
    b->bytes += need;
}

/* Builds the Vary block of a response for the request that got it. False
 * on OOM or when the block alone would exceed limit bytes. */
static bool cache_vary_build_block(const cbh_payload *resp, const char *const *req,
                                   size_t limit, cache_vary **out, size_t *count, size_t *size)
{
    cache_vary_build b = { req, NULL, NULL, 0, 0, limit, false };
    size_t total;

    *out = NULL;
    *count = *size = 0;
    cbh_vary_each(resp->headers, resp->header_count, cache_vary_add, &b);
    if (b.too_big || b.count > (limit - b.bytes) / sizeof(cache_vary))
        return false;
    if (b.count == 0)
        return true;
    total = b.count * sizeof(cache_vary) + b.bytes;
    b.arr = cbh_malloc(total);
    if (!b.arr)
        return false;
    b.strings = (char *)(b.arr + b.count);
    b.count = b.bytes = 0;
    cbh_vary_each(resp->headers, resp->header_count, cache_vary_add, &b);
    *out = b.arr;
    *count = b.count;
    *size = total;
    return true;
}

static void cache_entry_free(cache_entry *e)
{
    if (!e)
        return;
    cbh_free(e->headers);
    cbh_free(e->vary);
    cbh_free(e);
}

static void cache_entry_validators(cache_entry *e)
{
    e->etag = cbh_headers_get(e->headers, e->header_count, "ETag");
    e->last_modified = cbh_headers_get(e->headers, e->header_count, "Last-Modified");
}

/* What a 304 confirms (RFC 9111 4.3.4): its own validators, and the ones
 * the request sent, which it declares current. */
typedef struct cache_check {
    const char *etag;          /* the 304's ETag, or NULL */
    const char *last_modified; /* the 304's Last-Modified (looked at without ETag), or NULL */
    const char *sent_etag;     /* what If-None-Match sent, or NULL */
    const char *sent_lm;       /* what If-Modified-Since sent, or NULL */
    size_t sent_etag_len, sent_lm_len;
} cache_check;

static void cache_check_init(cache_check *v, const cbh_payload *r, const cbh_cache_cond *cond)
{
    memset(v, 0, sizeof(*v));
    v->etag = cbh_headers_get(r->headers, r->header_count, "ETag");
    if (!v->etag)
        v->last_modified = cbh_headers_get(r->headers, r->header_count, "Last-Modified");
    if (cond) {
        v->sent_etag = cbh_header_line_value(cond->if_none_match, "If-None-Match",
                                             &v->sent_etag_len);
        v->sent_lm = cbh_header_line_value(cond->if_modified_since, "If-Modified-Since",
                                           &v->sent_lm_len);
    }
}

static bool cache_etag_weak(const char *tag) { return strncmp(tag, "W/", 2) == 0; }

/* RFC 9110 8.8.3.2: a strong ETag matches only the same strong ETag; a weak
 * one matches either form of the same opaque tag. */
static bool cache_etag_match(const char *got, const char *stored)
{
    if (!cache_etag_weak(got))
        return !cache_etag_weak(stored) && strcmp(got, stored) == 0;
    return strcmp(got + 2, stored + (cache_etag_weak(stored) ? 2 : 0)) == 0;
}

static bool cache_same(const char *stored, const char *v, size_t n)
{
    return stored && strlen(stored) == n && memcmp(stored, v, n) == 0;
}

/* True when the 304 described by v is about entry e. An ETag in the 304
 * decides alone. Without one, the 304 is only about the validators the
 * request sent: a Last-Modified of its own must agree, and e must be where
 * they came from (else another thread replaced it, and a 304 for the old
 * version would relabel the new body). With nothing at all to go by, only
 * an entry without validators qualifies (the RFC's last rule). */
static bool cache_validated(const cache_entry *e, const cache_check *v)
{
    if (v->etag)
        return e->etag && cache_etag_match(v->etag, e->etag);
    if (v->last_modified && !(e->last_modified && strcmp(v->last_modified, e->last_modified) == 0))
        return false;
    if (v->sent_etag || v->sent_lm)
        return (!v->sent_etag || cache_same(e->etag, v->sent_etag, v->sent_etag_len)) &&
               (!v->sent_lm || cache_same(e->last_modified, v->sent_lm, v->sent_lm_len));
    return v->last_modified || (!e->etag && !e->last_modified);
}

/* A multiplicative hash over 8-byte words: an FNV-style byte loop is one
 * serial multiply per byte, which showed up as a third of a hit's time. */
static uint64_t cache_hash(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, w;

    while (n >= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 32);
}

static cache_node *cache_node_find(cbh_cache *c, const char *url, size_t url_len)
{
    uint64_t h = cache_hash(url, url_len);
    cache_node *node = c->buckets[h & (c->nbuckets - 1)];

    while (node && (node->hash != h || node->url_len != url_len ||
                    memcmp(node->url, url, url_len) != 0))
        node = node->hnext;
    return node;
}

/* Doubles the table when it holds more nodes than buckets. Running out of
 * memory here only leaves the chains longer. */
static void cache_table_grow(cbh_cache *c)
{
    size_t n = c->nbuckets * 2, i;
    cache_node **b;

    if (c->nnodes <= c->nbuckets || n < c->nbuckets)
        return;
    b = cbh_calloc(n, sizeof(*b));
    if (!b)
        return;
    for (i = 0; i < c->nbuckets; i++) {
        cache_node *node = c->buckets[i], *next;

        for (; node; node = next) {
            next = node->hnext;
            node->hnext = b[node->hash & (n - 1)];
            b[node->hash & (n - 1)] = node;
        }
    }
    cbh_free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

static void cache_table_add(cbh_cache *c, cache_node *node)
{
    cache_node **slot = &c->buckets[node->hash & (c->nbuckets - 1)];

    node->hnext = *slot;
    *slot = node;
    c->nnodes++;
    cache_table_grow(c);
}

static void cache_table_del(cbh_cache *c, cache_node *node)
{
    cache_node **pp = &c->buckets[node->hash & (c->nbuckets - 1)];

    while (*pp && *pp != node)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = node->hnext;
        c->nnodes--;
    }
}

static void cache_lru_unlink(cbh_cache *c, cache_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void cache_lru_push(cbh_cache *c, cache_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = e;
    else
        c->lru_tail = e;
    c->lru_head = e;
}

static void cache_lru_touch(cbh_cache *c, cache_entry *e)
{
    if (c->lru_head != e) {
        cache_lru_unlink(c, e);
        cache_lru_push(c, e);
    }
}

/* Unlinks and frees e; frees its node when e was the last variant. */
static void cache_remove(cbh_cache *c, cache_entry *e)
{
    cache_node *node = e->node;
    cache_entry **pp = &node->entries;

    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp)
        *pp = e->next;
    node->count--;
    cache_lru_unlink(c, e);
    c->entries--;
    c->bytes -= e->bytes;
    cache_entry_free(e);
    if (node->count == 0) {
        cache_table_del(c, node);
        cbh_free(node->url);
        cbh_free(node);
    }
}

static bool cache_usable(const cache_entry *e, bool head_entry, const char *const *req,
                         const cache_check *v)
{
    return e->head == head_entry && cache_vary_match(e, req) && (!v || cache_validated(e, v));
}

/* The entry a request would use: same method and matching Vary values,
 * newest first; for HEAD, a GET entry when no HEAD entry matches. With v,
 * only an entry that 304 validates. */
static cache_entry *cache_find(cbh_cache *c, const char *url, size_t url_len, int head,
                               const char *const *req, const cache_check *v)
{
    cache_node *node = cache_node_find(c, url, url_len);
    cache_entry *e;

    if (!node)
        return NULL;
    for (e = node->entries; e; e = e->next)
        if (cache_usable(e, head == 1, req, v))
            return e;
    if (head == 1)
        for (e = node->entries; e; e = e->next)
            if (cache_usable(e, false, req, v))
                return e;
    return NULL;
}

/* Drops the entries a new response to this request supersedes. */
static void cache_drop_matching(cbh_cache *c, cache_node *node, int head, const char *const *req,
                                const cache_entry *keep)
{
    cache_entry *e = node->entries, *next;

    /* The node survives: keep is in it, or the caller does not touch it. */
    while (e) {
        next = e->next;
        if (e != keep && e->head == (head == 1) && cache_vary_match(e, req))
            cache_remove(c, e);
        e = next;
    }
}

/* Evicts least recently used entries until the bounds hold again, never
 * keep (the entry just stored, which fits on its own). */
static void cache_evict(cbh_cache *c, const cache_entry *keep)
{
    while ((c->entries > c->max_entries || c->bytes > c->max_bytes) && c->lru_tail) {
        cache_entry *victim = c->lru_tail;

        if (victim == keep) {
            victim = victim->lru_prev;
            if (!victim)
                break;
        }
        cache_remove(c, victim);
        c->evictions++;
    }
}

static uint64_t cache_age(const cache_entry *e, uint64_t now)
{
    uint64_t elapsed = now > e->stored_ms ? now - e->stored_ms : 0;
    uint64_t age = e->fr.initial_age_ms + elapsed;

    return age < elapsed ? UINT64_MAX : age;
}

/* Copies e into out (freeing what out held). False on OOM, out intact. */
static bool cache_fill(const cache_entry *e, bool with_body, cbh_payload *out)
{
    size_t blen = with_body ? e->body_len : 0;
    char *body = cbh_malloc(blen + 1);
    api_header *h = NULL;

    if (!body)
        return false;
    memcpy(body, e->body, blen);
    body[blen] = '\0';
    if (cbh_headers_dup(e->headers, e->header_count, e->headers_size, &h) != CB_OK) {
        cbh_free(body);
        return false;
    }
    cbh_payload_free(out);
    out->status = e->status;
    out->body = body;
    out->body_len = blen;
    out->headers = h;
    out->header_count = h ? e->header_count : 0;
    out->headers_size = h ? e->headers_size : 0;
    return true;
}

/* Writes "Name: value" into buf unless it would not fit or is not a valid
 * header line (a stored value is sent back verbatim: it must be clean). */
static void cache_cond_line(char *buf, size_t size, const char *name, const char *value)
{
    size_t nl = strlen(name), vl;

    buf[0] = '\0';
    if (!value)
        return;
    vl = strlen(value);
    if (nl + 2 + vl + 1 > size)
        return;
    memcpy(buf, name, nl);
    memcpy(buf + nl, ": ", 2);
    memcpy(buf + nl + 2, value, vl + 1);
    if (!cbh_header_line_valid(buf))
        buf[0] = '\0';
}

cbh_cache *cbh_cache_new(const api_cache_config *cfg, cb_clock_fn clock, void *clock_data,
                         int64_t (*wall)(void *), void *wall_data)
{
    cbh_cache *c = cbh_calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->nbuckets = CACHE_INITIAL_BUCKETS;
    c->buckets = cbh_calloc(c->nbuckets, sizeof(*c->buckets));
    if (!c->buckets || pthread_mutex_init(&c->lock, NULL) != 0) {
        cbh_free(c->buckets);
        cbh_free(c);
        return NULL;
    }
    c->max_bytes = cfg && cfg->max_bytes ? cfg->max_bytes : CACHE_DEFAULT_MAX_BYTES;
    c->max_entries = cfg && cfg->max_entries ? cfg->max_entries : CACHE_DEFAULT_MAX_ENTRIES;
    c->max_entry_bytes =
        cfg && cfg->max_entry_bytes ? cfg->max_entry_bytes : CACHE_DEFAULT_MAX_ENTRY_BYTES;
    if (c->max_entry_bytes > c->max_bytes)
        c->max_entry_bytes = c->max_bytes;
    c->heuristic = cfg && cfg->heuristic;
    c->clock = clock ? clock : cb_clock_monotonic_ms;
    c->clock_data = clock_data;
    c->wall = wall ? wall : cache_wall_default;
    c->wall_data = wall_data;
    return c;
}

static void cache_clear_locked(cbh_cache *c)
{
    while (c->lru_head)
        cache_remove(c, c->lru_head);
}

void cbh_cache_free(cbh_cache *c)
{
    if (!c)
        return;
    cache_clear_locked(c);
    pthread_mutex_destroy(&c->lock);
    cbh_free(c->buckets);
    cbh_free(c);
}

cbh_cache_res cbh_cache_lookup(cbh_cache *c, const char *method, const char *url,
                               const char *const *req_headers, const api_cache_options *opts,
                               cbh_payload *out, cbh_cache_cond *cond)
{
    cbh_cache_res res = CBH_CACHE_MISS;
    cache_req rq;
    cache_entry *e;
    uint64_t now, age;
    int head;

    if (cond)
        cond->if_none_match[0] = cond->if_modified_since[0] = '\0';
    if (!c || !method || !url || !out || (opts && opts->bypass))
        return CBH_CACHE_MISS;
    head = cache_method(method);
    if (head < 0)
        return CBH_CACHE_MISS;
    cache_req_parse(req_headers, &rq);
    if (rq.no_store)
        return CBH_CACHE_MISS;
    if (opts && opts->revalidate)
        rq.revalidate = true;
    now = c->clock(c->clock_data);

    pthread_mutex_lock(&c->lock);
    e = cache_find(c, url, strlen(url), head, req_headers, NULL);
    if (!e)
        goto out;
    age = cache_age(e, now);
    if (!rq.revalidate && !e->fr.no_cache && age < e->fr.lifetime_ms &&
        (!rq.has_max_age || age <= rq.max_age_ms)) {
        if (cache_fill(e, head == 0, out)) {
            cache_lru_touch(c, e);
            res = CBH_CACHE_FRESH;
        }
        goto out;
    }
    if (cond) {
        cache_cond_line(cond->if_none_match, sizeof(cond->if_none_match), "If-None-Match",
                        e->etag);
        cache_cond_line(cond->if_modified_since, sizeof(cond->if_modified_since),
                        "If-Modified-Since", e->last_modified);
        if (cond->if_none_match[0] || cond->if_modified_since[0]) {
            cache_lru_touch(c, e);
            res = CBH_CACHE_STALE;
        }
    }
out:
    pthread_mutex_unlock(&c->lock);
    return res;
}

/* Headers a 304 never replaces (RFC 9111 3.2): the stored body's framing
 * and encoding, and hop-by-hop fields. */
static bool cache_merge_skip(const char *name)
{
    static const char *const skip[] = { "Content-Length", "Content-Encoding",
                                        "Transfer-Encoding", "Content-Range", "Connection",
                                        "Keep-Alive", "TE", "Trailer", "Upgrade",
                                        "Proxy-Connection" };
    size_t i;

    for (i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (strcasecmp(name, skip[i]) == 0)
            return true;
    return false;
}

/* The stored headers with those the 304 carries replacing same-named ones:
 * kept stored fields in order, then the 304's. */
static cb_err cache_merge(const cache_entry *e, const cbh_payload *r, api_header **out,
                          size_t *count, size_t *size)
{
    size_t n = 0, i, total;
    api_header *list;
    cb_err err;

    *out = NULL;
    *count = *size = 0;
    /* Counts no allocation could hold must not wrap into a small one. */
    if (r->header_count > SIZE_MAX / sizeof(*list) - e->header_count)
        return CB_ERR_NOMEM;
    total = e->header_count + r->header_count;
    if (total == 0)
        return CB_OK;
    list = cbh_malloc(total * sizeof(*list));
    if (!list)
        return CB_ERR_NOMEM;
    for (i = 0; i < e->header_count; i++) {
        const char *name = e->headers[i].name;

        if (cache_merge_skip(name) || !cbh_headers_get(r->headers, r->header_count, name))
            list[n++] = e->headers[i];
    }
    for (i = 0; i < r->header_count; i++)
        if (!cache_merge_skip(r->headers[i].name))
            list[n++] = r->headers[i];
    err = cbh_headers_build(list, n, out, size);
    cbh_free(list);
    if (err == CB_OK)
        *count = *out ? n : 0;
    return err;
}

/* A 304: refresh the entry the request would have used, if the 304 is about
 * it, and hand its response to the caller in *p (*refreshed set). Without
 * such an entry *p stays the 304. */
static cb_err cache_refresh(cbh_cache *c, const char *url, int head, const char *const *req,
                            const cbh_cache_cond *cond, cbh_payload *p, int64_t request_epoch,
                            int64_t response_epoch, uint64_t response_ms, bool *refreshed)
{
    cbh_payload out = { 0 };
    api_header *merged;
    size_t count, size, rest;
    cbh_freshness fr;
    cache_check v;
    cache_entry *e;
    cb_err err = CB_OK;
    bool too_big;

    cache_check_init(&v, p, cond);
    pthread_mutex_lock(&c->lock);
    e = cache_find(c, url, strlen(url), head, req, &v);
    if (!e)
        goto out;
    err = cache_merge(e, p, &merged, &count, &size);
    if (err != CB_OK)
        goto out;
    cbh_freshness_of(e->status, merged, count, request_epoch, response_epoch, c->heuristic, &fr);
    rest = e->bytes - e->headers_size;
    too_big = size > SIZE_MAX - rest;
    c->bytes -= e->bytes;
    e->bytes = too_big ? SIZE_MAX : rest + size;
    c->bytes += e->bytes;
    cbh_free(e->headers);
    e->headers = merged;
    e->header_count = count;
    e->headers_size = size;
    cache_entry_validators(e);
    e->fr = fr;
    e->stored_ms = response_ms;
    cache_lru_touch(c, e);
    if (!cache_fill(e, head == 0, &out))
        err = CB_ERR_NOMEM;
    /* The refreshed headers may forbid storing (no-store) or grow the
     * entry past the per-entry cap: then it goes, after serving. */
    if (!fr.storable || too_big || e->bytes > c->max_entry_bytes)
        cache_remove(c, e);
    else
        cache_evict(c, e);
out:
    pthread_mutex_unlock(&c->lock);
    if (err == CB_OK && out.body) {
        cbh_payload_free(p);
        *p = out;
        *refreshed = true;
    }
    return err;
}

/* The bytes an entry counts (body, header block, URL, Vary block); false
 * when the sum does not fit in a size_t, so exceeds any bound. */
static bool cache_entry_bytes(size_t blen, size_t headers_size, size_t url_len, size_t vary_size,
                              size_t *out)
{
    const size_t parts[] = { headers_size, url_len, vary_size };
    size_t i;

    *out = blen;
    for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (parts[i] > SIZE_MAX - *out)
            return false;
        *out += parts[i];
    }
    return true;
}

/* Builds an entry from resp outside the lock. NULL when it is too large or
 * memory ran out. */
static cache_entry *cache_entry_new(cbh_cache *c, size_t url_len, int head,
                                    const cbh_payload *resp, const char *const *req,
                                    const cbh_freshness *fr, uint64_t response_ms)
{
    size_t blen = head == 1 || !resp->body ? 0 : resp->body_len, bytes;
    cache_entry *e;

    /* Refused before anything is copied when it cannot fit (the Vary block
     * is counted once built). max_entry_bytes may be SIZE_MAX: the body's
     * allocation (struct, body, NUL) is checked on its own so that it
     * cannot wrap. */
    if (!cache_entry_bytes(blen, resp->headers_size, url_len, 0, &bytes) ||
        bytes > c->max_entry_bytes || blen > SIZE_MAX - sizeof(*e) - 1)
        return NULL;
    e = cbh_calloc(1, sizeof(*e) + blen + 1);
    if (!e)
        return NULL;
    e->body = (char *)(e + 1);
    if (blen)
        memcpy(e->body, resp->body, blen);
    e->body_len = blen;
    e->head = head == 1;
    e->status = resp->status;
    e->fr = *fr;
    e->stored_ms = response_ms;
    if (cbh_headers_dup(resp->headers, resp->header_count, resp->headers_size, &e->headers) !=
            CB_OK ||
        !cache_vary_build_block(resp, req, c->max_entry_bytes, &e->vary, &e->vary_count,
                                &e->vary_size)) {
        cache_entry_free(e);
        return NULL;
    }
    e->header_count = e->headers ? resp->header_count : 0;
    e->headers_size = e->headers ? resp->headers_size : 0;
    cache_entry_validators(e);
    if (!cache_entry_bytes(blen, e->headers_size, url_len, e->vary_size, &e->bytes) ||
        e->bytes > c->max_entry_bytes) {
        cache_entry_free(e);
        return NULL;
    }
    return e;
}

/* The wall-clock time the request left: response_epoch less the exchange's
 * duration, saturating at the clock's low end rather than wrapping. */
static int64_t cache_request_epoch(int64_t response_epoch, uint64_t request_ms,
                                   uint64_t response_ms)
{
    /* At most UINT64_MAX / 1000, so it fits in an int64_t. */
    int64_t delay_s = (int64_t)(response_ms > request_ms ? (response_ms - request_ms) / 1000 : 0);

    return response_epoch >= INT64_MIN + delay_s ? response_epoch - delay_s : INT64_MIN;
}

cb_err cbh_cache_store(cbh_cache *c, const char *method, const char *url,
                       const char *const *req_headers, const cbh_cache_cond *cond,
                       cbh_payload *p, uint64_t request_ms, uint64_t response_ms,
                       bool *refreshed)
{
    bool ignored;
    cbh_freshness fr;
    cache_req rq;
    cache_entry *e;
    cache_node *node;
    int64_t response_epoch, request_epoch;
    size_t url_len;
    int head;

    if (!refreshed)
        refreshed = &ignored;
    *refreshed = false;
    if (!c || !method || !url || !p)
        return CB_OK;
    head = cache_method(method);
    if (head < 0)
        return CB_OK;
    url_len = strlen(url);
    cache_req_parse(req_headers, &rq);
    /* Wall-clock times of the exchange, for Date/Expires arithmetic: the
     * monotonic interval gives the response delay. */
    response_epoch = c->wall(c->wall_data);
    request_epoch = cache_request_epoch(response_epoch, request_ms, response_ms);
    if (p->status == 304)
        return cache_refresh(c, url, head, req_headers, cond, p, request_epoch,
                             response_epoch, response_ms, refreshed);
    if (rq.no_store)
        return CB_OK;

    cbh_freshness_of(p->status, p->headers, p->header_count, request_epoch,
                     response_epoch, c->heuristic, &fr);
    e = fr.storable ? cache_entry_new(c, url_len, head, p, req_headers, &fr, response_ms)
                    : NULL;

    pthread_mutex_lock(&c->lock);
    node = cache_node_find(c, url, url_len);
    if (!e) {
        /* A new answer that is not stored still supersedes the old one, so
         * it is not served again; a 5xx is kept out of this so that the old
         * entry can stand in for the failing origin. */
        if (node && p->status > 0 && p->status < 500)
            cache_drop_matching(c, node, head, req_headers, NULL);
        goto out;
    }
    if (!node) {
        node = cbh_calloc(1, sizeof(*node));
        if (node)
            node->url = cbh_strndup(url, url_len);
        if (!node || !node->url)
            goto oom;
        node->url_len = url_len;
        node->hash = cache_hash(url, url_len);
        cache_table_add(c, node);
    }
    e->node = node;
    e->next = node->entries;
    node->entries = e;
    node->count++;
    cache_lru_push(c, e);
    c->entries++;
    c->bytes += e->bytes;
    c->stores++;
    cache_drop_matching(c, node, head, req_headers, e);
    if (node->count > CACHE_MAX_VARIANTS) {
        cache_entry *old = node->entries;

        while (old->next)
            old = old->next;
        cache_remove(c, old);
        c->evictions++;
    }
    cache_evict(c, e);
out:
    pthread_mutex_unlock(&c->lock);
    return CB_OK;
oom:
    pthread_mutex_unlock(&c->lock);
    if (node)
        cbh_free(node->url);
    cbh_free(node);
    cache_entry_free(e);
    return CB_OK;
}

bool cbh_cache_serve_stale(cbh_cache *c, const char *method, const char *url,
                           const char *const *req_headers, const api_cache_options *opts,
                           cb_err cause, cbh_payload *out)
{
    cache_entry *e;
    uint64_t now, age, over, allowed;
    bool served = false;
    int head;

    (void)cause;
    if (!c || !method || !url || !out || (opts && opts->bypass))
        return false;
    head = cache_method(method);
    if (head < 0)
        return false;
    now = c->clock(c->clock_data);

    pthread_mutex_lock(&c->lock);
    e = cache_find(c, url, strlen(url), head, req_headers, NULL);
    /* no-cache forbids any use without validation; must-revalidate only
     * forbids use once stale (RFC 9111 5.2.2.2, 5.2.2.4). */
    if (!e || e->fr.no_cache)
        goto out;
    age = cache_age(e, now);
    over = age > e->fr.lifetime_ms ? age - e->fr.lifetime_ms : 0;
    if (over > 0 && e->fr.must_revalidate)
        goto out;
    allowed = e->fr.stale_if_error_ms;
    if (opts && opts->max_stale_ms > allowed)
        allowed = opts->max_stale_ms;
    if (over <= allowed && cache_fill(e, head == 0, out)) {
        cache_lru_touch(c, e);
        served = true;
    }
out:
    pthread_mutex_unlock(&c->lock);
    return served;
}

void cbh_cache_invalidate(cbh_cache *c, const char *url)
{
    cache_node *node;

    if (!c || !url)
        return;
    pthread_mutex_lock(&c->lock);
    node = cache_node_find(c, url, strlen(url));
    if (node) {
        unsigned n = node->count;

        /* The last removal frees the node: count first, touch it no more. */
        c->invalidations += n;
        while (n--)
            cache_remove(c, node->entries);
    }
    pthread_mutex_unlock(&c->lock);
}

void cbh_cache_clear(cbh_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    cache_clear_locked(c);
    pthread_mutex_unlock(&c->lock);
}

void cbh_cache_metrics(cbh_cache *c, api_cache_metrics *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    out->entries = c->entries;
    out->bytes = c->bytes;
    out->stores = c->stores;
    out->evictions = c->evictions;
    out->invalidations = c->invalidations;
    out->max_bytes = c->max_bytes;
    out->max_entries = c->max_entries;
    pthread_mutex_unlock(&c->lock);
}
