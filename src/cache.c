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
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "cache.h"
#include "cachectl.h"
#include "clock.h"
#include "table.h"
#include "headers.h"
#include "httpdate.h"
#include "method.h"
#include "url.h"

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
    cache_node         *node;
    bool                head; /* a HEAD response (no body) */
    long                status;
    char               *body; /* inside this allocation, after the struct */
    size_t              body_len;
    api_header         *headers;
    size_t              header_count, headers_size;
    cache_vary         *vary; /* one block: array then strings */
    size_t              vary_count, vary_size;
    const char         *etag;          /* into headers, or NULL */
    const char         *last_modified; /* into headers, or NULL */
    uint64_t            stored_ms;     /* monotonic time of the response (age origin) */
    cbh_freshness       fr;
    size_t              bytes; /* what counts against max_bytes */
} cache_entry;

struct cache_node {
    cbh_link     link; /* the cache's table, by URL */
    char        *url;
    size_t       url_len;
    cache_entry *entries; /* newest first */
    unsigned     count;
};

struct cbh_cache {
    pthread_mutex_t lock;
    cbh_table       table;               /* the nodes, by URL (table.h) */
    cache_entry    *lru_head, *lru_tail; /* head = most recently used */
    size_t          max_bytes, max_entry_bytes;
    unsigned        max_entries;
    bool            heuristic;
    cb_clock_fn     clock;
    void           *clock_data;
    int64_t (*wall)(void *);
    void    *wall_data;
    uint64_t entries, bytes, stores, evictions, invalidations;
};

/* What the request's own headers ask of the cache (RFC 9111 5.2.1, 4.3.2,
 * RFC 9110 14.2). Values point into the request's lines (not terminated at
 * their length). */
typedef struct cache_req {
    bool        no_store;
    bool        revalidate; /* no-cache, or Pragma: no-cache without Cache-Control */
    bool        has_max_age;
    uint64_t    max_age_ms;
    bool        has_max_stale;
    uint64_t    max_stale_ms; /* UINT64_MAX: any staleness */
    bool        has_min_fresh;
    uint64_t    min_fresh_ms;
    bool        only_if_cached;
    bool        origin_cond; /* If-Match / If-Unmodified-Since: the origin's to judge */
    const char *inm, *ims, *range, *if_range;
    size_t      inm_len, ims_len, range_len, if_range_len;
} cache_req;

static int64_t cache_wall_default(void *data)
{
    (void)data;
    return (int64_t)time(NULL);
}

/* 1 for HEAD, 0 for GET, -1 for methods the cache does not handle. */
static int cache_method(const char *method)
{
    if (!cbh_method_is_cacheable(method))
        return -1;
    return cbh_method_of(method) == CBH_METHOD_HEAD;
}

static uint64_t cache_s_to_ms(uint64_t s) { return s > UINT64_MAX / 1000 ? UINT64_MAX : s * 1000; }

static void cache_req_parse(const char *const *req, cache_req *r)
{
    cbh_cc cc = { 0 };
    bool   has_cc = false, pragma = false;
    size_t n;

    memset(r, 0, sizeof(*r));
    for (; req && *req; req++) {
        const char *v;

        /* Every lookup runs this: a first-letter test skips most lines. */
        switch (**req) {
        case 'c':
        case 'C':
            if ((v = cbh_header_line_value(*req, "Cache-Control", &n)) != NULL) {
                cbh_cc_parse(v, &cc);
                has_cc = true;
            }
            break;
        case 'p':
        case 'P':
            if ((v = cbh_header_line_value(*req, "Pragma", &n)) != NULL)
                pragma = pragma || cbh_list_has(v, "no-cache", 8);
            break;
        case 'i':
        case 'I':
            if (!r->inm && (v = cbh_header_line_value(*req, "If-None-Match", &n)) != NULL) {
                r->inm = v;
                r->inm_len = n;
            } else if (!r->ims &&
                       (v = cbh_header_line_value(*req, "If-Modified-Since", &n)) != NULL) {
                r->ims = v;
                r->ims_len = n;
            } else if (!r->if_range && (v = cbh_header_line_value(*req, "If-Range", &n)) != NULL) {
                r->if_range = v;
                r->if_range_len = n;
            } else if (cbh_header_line_is(*req, "If-Match") ||
                       cbh_header_line_is(*req, "If-Unmodified-Since")) {
                r->origin_cond = true;
            }
            break;
        case 'r':
        case 'R':
            if (!r->range && (v = cbh_header_line_value(*req, "Range", &n)) != NULL) {
                r->range = v;
                r->range_len = n;
            }
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
    r->has_max_stale = cc.has_max_stale;
    r->max_stale_ms = cache_s_to_ms(cc.max_stale_s);
    r->has_min_fresh = cc.has_min_fresh;
    r->min_fresh_ms = cache_s_to_ms(cc.min_fresh_s);
    r->only_if_cached = cc.only_if_cached;
}

/*
 * Vary matching (RFC 9111 4.1) compares the request's values of a header
 * normalised: every line of the name combined into one list, list elements
 * trimmed and empty ones dropped, whitespace runs collapsed to one space
 * and removed around ';', and for the Accept family (case-insensitive by
 * their definitions) lower-cased. Quoted strings are left as they are.
 * One normaliser feeds three sinks: counting, copying, comparing.
 */
typedef struct cache_norm {
    char       *out; /* copy here (NULL: do not) */
    const char *cmp; /* compare with this NUL-terminated value (NULL: do not) */
    size_t      len; /* bytes produced so far */
    bool        differs;
} cache_norm;

static void cache_norm_put(cache_norm *s, char ch)
{
    if (s->out)
        s->out[s->len] = ch;
    if (s->cmp && !s->differs && s->cmp[s->len] != ch)
        s->differs = true;
    s->len++;
}

static bool cache_vary_folds_case(const char *name)
{
    return strcasecmp(name, "Accept") == 0 || strcasecmp(name, "Accept-Encoding") == 0 ||
           strcasecmp(name, "Accept-Language") == 0 || strcasecmp(name, "Accept-Charset") == 0;
}

/* Feeds the normalised value of name in req to s; false when absent. */
static bool cache_norm_value(const char *const *req, const char *name, cache_norm *s)
{
    bool found = false, fold = cache_vary_folds_case(name), any = false;

    for (; req && *req; req++) {
        size_t      n, i = 0;
        const char *v = cbh_header_line_value(*req, name, &n);

        if (!v)
            continue;
        found = true;
        while (i < n) {
            bool quoted = false, ws = false, started = false;
            char last = 0;

            /* One list element. */
            for (; i < n && (quoted || v[i] != ','); i++) {
                char ch = v[i];

                if (!quoted && (ch == ' ' || ch == '\t')) {
                    ws = started;
                    continue;
                }
                if (!started && any)
                    cache_norm_put(s, ',');
                if (ws && ch != ';' && last != ';')
                    cache_norm_put(s, ' ');
                ws = false;
                if (ch == '"')
                    quoted = !quoted;
                else if (quoted && ch == '\\' && i + 1 < n) {
                    cache_norm_put(s, ch);
                    ch = v[++i];
                }
                if (!quoted && fold && ch >= 'A' && ch <= 'Z')
                    ch = (char)(ch + 32);
                cache_norm_put(s, ch);
                last = ch;
                started = any = true;
            }
            i++; /* the comma */
        }
    }
    return found;
}

static bool cache_vary_match(const cache_entry *e, const char *const *req)
{
    size_t i;

    for (i = 0; i < e->vary_count; i++) {
        const char *stored = e->vary[i].value;
        cache_norm  s = { NULL, stored ? stored : "", 0, false };
        bool        present = cache_norm_value(req, e->vary[i].name, &s);

        if (present != (stored != NULL))
            return false;
        if (present && (s.differs || stored[s.len] != '\0'))
            return false;
    }
    return true;
}

typedef struct cache_vary_build {
    const char *const *req;
    cache_vary        *arr; /* NULL while counting */
    char              *strings;
    size_t             count, bytes;
    size_t             limit; /* bytes beyond which the entry could never be stored */
    bool               too_big;
} cache_vary_build;

static void cache_vary_add(const char *name, size_t len, void *ctx)
{
    cache_vary_build *b = ctx;
    char              tmp[128];
    cache_norm        norm = { NULL, NULL, 0, false };
    bool              present = false;
    size_t            need;

    /* Field names longer than this are not real headers; they are kept,
     * and match only requests that lack them too. */
    if (len < sizeof(tmp)) {
        memcpy(tmp, name, len);
        tmp[len] = '\0';
        present = cache_norm_value(b->req, tmp, &norm);
    }
    /* Each listed name copies the request's value: "Vary: a,a,a,..." with
     * a long "a" would multiply it. Stop counting past the per-entry cap
     * (bytes never exceeds limit, so limit - bytes cannot wrap). */
    need = len + 1 + (present ? norm.len + 1 : 0);
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
        if (present) {
            norm.out = p + len + 1;
            norm.len = 0;
            cache_norm_value(b->req, tmp, &norm);
            norm.out[norm.len] = '\0';
            b->arr[b->count].value = norm.out;
        }
    }
    b->count++;
    b->bytes += need;
}

/* A 206 and a 416 answer only the range they were asked for: each is
 * kept for that range alone, and neither supersedes the full response. */
static bool cache_status_partial(long status) { return status == 206 || status == 416; }

/* The Vary names of resp; a partial answer also varies on Range. */
static void cache_vary_collect(const cbh_payload *resp, cache_vary_build *b)
{
    cbh_vary_each(resp->headers, resp->header_count, cache_vary_add, b);
    if (cache_status_partial(resp->status))
        cache_vary_add("Range", 5, b);
}

/* Builds the Vary block of a response for the request that got it. False
 * on OOM or when the block alone would exceed limit bytes. */
static bool cache_vary_build_block(const cbh_payload *resp, const char *const *req, size_t limit,
                                   cache_vary **out, size_t *count, size_t *size)
{
    cache_vary_build b = { req, NULL, NULL, 0, 0, limit, false };
    size_t           total;

    *out = NULL;
    *count = *size = 0;
    cache_vary_collect(resp, &b);
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
    cache_vary_collect(resp, &b);
    *out = b.arr;
    *count = b.count;
    *size = total;
    return true;
}

static void cache_entry_free(cache_entry *e)
{
    cbh_free(e->headers);
    cbh_free(e->vary);
    cbh_free(e);
}

static void cache_entry_validators(cache_entry *e)
{
    e->etag = cbh_headers_get(e->headers, e->header_count, "ETag");
    e->last_modified = cbh_headers_get(e->headers, e->header_count, "Last-Modified");
}

/* Hop-by-hop fields (RFC 9110 7.6.1): about one connection, never stored. */
static bool cache_hop_by_hop(const char *name)
{
    static const char *const hop[] = { "Connection", "Keep-Alive",        "Proxy-Connection",
                                       "TE",         "Transfer-Encoding", "Upgrade" };
    size_t                   i;

    for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (strcasecmp(name, hop[i]) == 0)
            return true;
    return false;
}

/* What a response's own headers exclude from storage (RFC 9111 3.1). */
typedef struct cache_strip {
    const api_header *h; /* the response the fields came in */
    size_t            count;
    bool              fields;   /* it has no-cache="...": look the names up */
    bool              keep_age; /* for a 304's fields: Age still counts for freshness */
} cache_strip;

static void cache_strip_init(cache_strip *st, const api_header *h, size_t count, bool keep_age)
{
    cbh_cc cc = { 0 };

    cbh_cc_from_headers(h, count, &cc);
    st->h = h;
    st->count = count;
    st->fields = cc.no_cache_fields;
    st->keep_age = keep_age;
}

/* True when name is listed by a Connection header of the response. */
static bool cache_connection_listed(const cache_strip *st, const char *name)
{
    size_t i, len = strlen(name);

    for (i = 0; i < st->count; i++)
        if (strcasecmp(st->h[i].name, "Connection") == 0 && cbh_list_has(st->h[i].value, name, len))
            return true;
    return false;
}

/* Not stored: hop-by-hop fields and those Connection names, the fields
 * no-cache="..." lists (served only after revalidation: we simply do not
 * keep them), and Age, which the cache computes on every use. */
static bool cache_strip_drop(const char *name, void *ctx)
{
    const cache_strip *st = ctx;

    return (!st->keep_age && strcasecmp(name, "Age") == 0) || cache_hop_by_hop(name) ||
           cache_connection_listed(st, name) ||
           (st->fields && cbh_cc_lists_field(st->h, st->count, "no-cache", name));
}

/* What a 304 confirms (RFC 9111 4.3.4): its own validators, and the ones
 * the request sent, which it declares current. */
typedef struct cache_check {
    const char *etag;          /* the 304's ETag, or NULL */
    const char *last_modified; /* the 304's Last-Modified (looked at without ETag), or NULL */
    const char *sent_etag;     /* what If-None-Match sent, or NULL */
    const char *sent_lm;       /* what If-Modified-Since sent, or NULL */
    size_t      sent_etag_len, sent_lm_len;
} cache_check;

static void cache_check_init(cache_check *v, const cbh_payload *r, const cbh_cache_cond *cond)
{
    memset(v, 0, sizeof(*v));
    v->etag = cbh_headers_get(r->headers, r->header_count, "ETag");
    if (!v->etag)
        v->last_modified = cbh_headers_get(r->headers, r->header_count, "Last-Modified");
    if (cond) {
        v->sent_etag =
            cbh_header_line_value(cond->if_none_match, "If-None-Match", &v->sent_etag_len);
        v->sent_lm =
            cbh_header_line_value(cond->if_modified_since, "If-Modified-Since", &v->sent_lm_len);
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

static cache_node *cache_node_of(cbh_link *l)
{
    return (cache_node *)(void *)((char *)l - offsetof(cache_node, link));
}

static cache_node *cache_node_find(cbh_cache *c, const char *url, size_t url_len)
{
    uint64_t  h = cbh_table_hash(url, url_len);
    cbh_link *l;

    for (l = cbh_table_chain(&c->table, h); l; l = l->next) {
        cache_node *node = cache_node_of(l);

        if (l->hash == h && node->url_len == url_len && memcmp(node->url, url, url_len) == 0)
            return node;
    }
    return NULL;
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

/* Unlinks and frees e, which is on its node's list; frees the node when e
 * was the last variant. */
static void cache_remove(cbh_cache *c, cache_entry *e)
{
    cache_node   *node = e->node;
    cache_entry **pp = &node->entries;

    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    node->count--;
    cache_lru_unlink(c, e);
    c->entries--;
    c->bytes -= e->bytes;
    cache_entry_free(e);
    if (node->count == 0) {
        cbh_table_del(&c->table, &node->link);
        cbh_free(node->url);
        cbh_free(node);
    }
}

static bool cache_usable(const cache_entry *e, bool head_entry, const char *const *req,
                         const cache_check *v, bool errors)
{
    return e->head == head_entry && (errors || e->status < 500) && cache_vary_match(e, req) &&
           (!v || cache_validated(e, v));
}

/* The entry a request would use: same method and matching Vary values,
 * newest first; for HEAD, a GET entry when no HEAD entry matches. With v,
 * only an entry that 304 validates. errors: a 5xx entry may be the one;
 * else the newest other entry (the last good response kept beside it). */
static cache_entry *cache_find(cbh_cache *c, const char *url, size_t url_len, int head,
                               const char *const *req, const cache_check *v, bool errors)
{
    cache_node  *node = cache_node_find(c, url, url_len);
    cache_entry *e;

    if (!node)
        return NULL;
    for (e = node->entries; e; e = e->next)
        if (cache_usable(e, head == 1, req, v, errors))
            return e;
    if (head == 1)
        for (e = node->entries; e; e = e->next)
            if (cache_usable(e, false, req, v, errors))
                return e;
    return NULL;
}

/* Drops the entries a new response of status to this request supersedes:
 * all of them, except that a 5xx supersedes only 5xx (the last good
 * response stays for stale-if-error) and a partial answer (206, 416) only
 * the partial answers of its range. */
static void cache_drop_matching(cbh_cache *c, cache_node *node, int head, const char *const *req,
                                const cache_entry *keep, long status)
{
    cache_entry *e = node->entries, *next;

    /* The node survives: keep is in it, or the caller does not touch it. */
    while (e) {
        next = e->next;
        if (e != keep && e->head == (head == 1) && cache_vary_match(e, req) &&
            (status < 500 || e->status >= 500) &&
            (!cache_status_partial(status) || cache_status_partial(e->status)))
            cache_remove(c, e);
        e = next;
    }
}

/* Evicts least recently used entries until the bounds hold again. The
 * entry just stored or refreshed is the most recently used and fits on its
 * own (max_entries >= 1, its bytes <= max_entry_bytes <= max_bytes): while
 * a bound is exceeded, the tail is another entry. */
static void cache_evict(cbh_cache *c)
{
    while (c->entries > c->max_entries || c->bytes > c->max_bytes) {
        cache_remove(c, c->lru_tail);
        c->evictions++;
    }
}

static uint64_t cache_age(const cache_entry *e, uint64_t now)
{
    uint64_t elapsed = now > e->stored_ms ? now - e->stored_ms : 0;
    uint64_t age = e->fr.initial_age_ms + elapsed;

    return age < elapsed ? UINT64_MAX : age;
}

/* RFC 9110 8.8.3.2 weak comparison: the opaque tags, W/ ignored. */
static bool cache_etag_weak_eq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);

    if (alen >= 2 && strncmp(a, "W/", 2) == 0) {
        a += 2;
        alen -= 2;
    }
    if (blen >= 2 && strncmp(b, "W/", 2) == 0) {
        b += 2;
        blen -= 2;
    }
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* True when an If-None-Match list (or "*") names etag weakly. */
static bool cache_inm_match(const char *list, size_t len, const char *etag)
{
    size_t i = 0;

    while (i < len) {
        size_t start, end;

        while (i < len && (list[i] == ',' || list[i] == ' ' || list[i] == '\t'))
            i++;
        start = i;
        /* An entity-tag has no comma outside its quotes. */
        while (i < len && list[i] != ',') {
            if (list[i] == '"') {
                for (i++; i < len && list[i] != '"'; i++)
                    ;
            }
            if (i < len)
                i++;
        }
        end = i;
        while (end > start && (list[end - 1] == ' ' || list[end - 1] == '\t'))
            end--;
        if (end - start == 1 && list[start] == '*')
            return true;
        if (end > start && etag && cache_etag_weak_eq(list + start, end - start, etag))
            return true;
    }
    return false;
}

/* Parses an HTTP-date that is len bytes of a request line. */
static bool cache_req_date(const char *v, size_t len, int64_t *out)
{
    char buf[64];

    if (len >= sizeof(buf))
        return false;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return cbh_http_date_parse(buf, out);
}

/* The caller's own conditional, evaluated on e (RFC 9111 4.3.2, RFC 9110
 * 13.2.2): If-None-Match when present, else If-Modified-Since (the caller
 * checks that one of them is) against Last-Modified (or Date). True:
 * answer 304. Only 2xx full responses are evaluated, as an origin would
 * (a stored status is never below 200). */
static bool cache_not_modified(const cache_entry *e, const cache_req *rq)
{
    const char *lm;
    int64_t     since, t;

    if (e->status > 299 || e->status == 206)
        return false;
    if (rq->inm)
        return cache_inm_match(rq->inm, rq->inm_len, e->etag);
    if (!cache_req_date(rq->ims, rq->ims_len, &since))
        return false;
    lm = e->last_modified ? e->last_modified : cbh_headers_get(e->headers, e->header_count, "Date");
    return lm && cbh_http_date_parse(lm, &t) && t <= since;
}

/* If-Range (RFC 9110 13.1.5): the range applies only when the validator
 * is e's current one, compared strongly (a weak ETag never matches; a date
 * must be e's Last-Modified exactly). */
static bool cache_if_range_ok(const cache_entry *e, const cache_req *rq)
{
    const char *v = rq->if_range;
    size_t      n = rq->if_range_len;

    if (!v)
        return true;
    if (n >= 2 && strncmp(v, "W/", 2) == 0)
        return false;
    if (n > 0 && v[0] == '"')
        return e->etag && !cache_etag_weak(e->etag) && strlen(e->etag) == n &&
               memcmp(e->etag, v, n) == 0;
    return e->last_modified && strlen(e->last_modified) == n && memcmp(e->last_modified, v, n) == 0;
}

static bool cache_digits(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t    v = 0;

    while (*p < end && **p >= '0' && **p <= '9') {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(**p - '0');
        (*p)++;
    }
    *out = v;
    return *p > s;
}

typedef enum cache_range {
    CACHE_RANGE_NONE,  /* no usable Range: the whole response */
    CACHE_RANGE_ONE,   /* [*first, *last] of the body */
    CACHE_RANGE_ORIGIN /* several ranges, or none satisfiable: the origin's */
} cache_range;

/* A Range header against a body of len bytes (RFC 9110 14.1.1): one
 * "bytes=" range (a-b, a-, -n) is served; a syntax error or another unit
 * is ignored as an origin may; several ranges or an unsatisfiable one go
 * to the origin (which answers with 206 multipart or 416). */
static cache_range cache_range_parse(const char *v, size_t n, size_t len, size_t *first,
                                     size_t *last)
{
    const char *p = v, *end = v + n;
    uint64_t    a = 0, b = 0;
    bool        has_a, has_b;

    if (n < 6 || strncasecmp(v, "bytes=", 6) != 0)
        return CACHE_RANGE_NONE;
    p += 6;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    has_a = cache_digits(&p, end, &a);
    if (p >= end || *p != '-')
        return CACHE_RANGE_NONE;
    p++;
    has_b = cache_digits(&p, end, &b);
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p < end && *p == ',')
        return CACHE_RANGE_ORIGIN;
    if (p != end || (!has_a && !has_b) || (has_a && has_b && b < a))
        return CACHE_RANGE_NONE;
    if (!has_a) {
        /* A suffix: the last b bytes. */
        if (b == 0 || len == 0)
            return CACHE_RANGE_ORIGIN;
        *first = b >= len ? 0 : len - (size_t)b;
        *last = len - 1;
        return CACHE_RANGE_ONE;
    }
    if (a >= len)
        return CACHE_RANGE_ORIGIN;
    *first = (size_t)a;
    *last = has_b && b < len - 1 ? (size_t)b : len - 1;
    return CACHE_RANGE_ONE;
}

static bool cache_drop_framing(const char *name, void *ctx)
{
    (void)ctx;
    return strcasecmp(name, "Content-Length") == 0 || strcasecmp(name, "Content-Range") == 0;
}

/* The fields a 304 carries (RFC 9110 15.4.5): those a 200 would have sent
 * that guide caches, nothing about the body. */
static bool cache_drop_for_304(const char *name, void *ctx)
{
    static const char *const keep[] = { "Cache-Control", "Content-Location", "Date", "ETag",
                                        "Expires",       "Last-Modified",    "Vary" };
    size_t                   i;

    (void)ctx;
    for (i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        if (strcasecmp(name, keep[i]) == 0)
            return false;
    return true;
}

typedef enum cache_served {
    CACHE_SERVED, /* out holds what the caller sees */
    CACHE_ORIGIN, /* the request needs the origin (a Range e cannot answer) */
    CACHE_NOMEM
} cache_served;

/*
 * What the caller sees from e for request rq at current age age_ms (RFC
 * 9111 4): e's status, headers and body (none for HEAD) with an Age header
 * (5.1); a 304 when the caller's own conditional matches (4.3.2; only with
 * conditionals); a 206 for a single satisfiable Range on a stored 200
 * (RFC 9110 14, 9111 3.4), or CACHE_ORIGIN for other ranges unless
 * whole_ok (then the whole response). out's old contents are freed on
 * success only.
 */
static cache_served cache_serve(const cache_entry *e, bool with_body, const cache_req *rq,
                                bool conditionals, bool whole_ok, uint64_t age_ms, cbh_payload *out)
{
    api_header add[3];
    char       age[24], crange[80], clen[24];
    size_t     nadd = 0, first = 0, last = 0, blen, count, size;
    bool (*drop)(const char *, void *) = NULL;
    long        status = e->status;
    const char *src = e->body;
    api_header *h = NULL;
    char       *body;

    blen = with_body ? e->body_len : 0;
    if (conditionals && (rq->inm || rq->ims) && cache_not_modified(e, rq)) {
        status = 304;
        blen = 0;
        drop = cache_drop_for_304;
    } else if (with_body && rq->range && e->status == 200 && cache_if_range_ok(e, rq)) {
        cache_range range = cache_range_parse(rq->range, rq->range_len, e->body_len, &first, &last);

        if (range == CACHE_RANGE_ORIGIN && !whole_ok)
            return CACHE_ORIGIN;
        if (range == CACHE_RANGE_ONE) {
            status = 206;
            src = e->body + first;
            blen = last - first + 1;
            drop = cache_drop_framing;
            snprintf(crange, sizeof(crange), "bytes %zu-%zu/%zu", first, last, e->body_len);
            snprintf(clen, sizeof(clen), "%zu", blen);
            add[nadd].name = "Content-Range";
            add[nadd++].value = crange;
            add[nadd].name = "Content-Length";
            add[nadd++].value = clen;
        }
    }
    snprintf(age, sizeof(age), "%llu", (unsigned long long)(age_ms / 1000));
    add[nadd].name = "Age";
    add[nadd++].value = age;
    if (!(body = cbh_malloc(blen + 1)))
        return CACHE_NOMEM;
    memcpy(body, src, blen);
    body[blen] = '\0';
    if (cbh_headers_edit(e->headers, e->header_count, drop, NULL, add, nadd, &h, &count, &size) !=
        CB_OK) {
        cbh_free(body);
        return CACHE_NOMEM;
    }
    cbh_payload_free(out);
    out->status = status;
    out->body = body;
    out->body_len = blen;
    out->headers = h;
    out->header_count = count;
    out->headers_size = size;
    return CACHE_SERVED;
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
    if (!cbh_table_init(&c->table, CACHE_INITIAL_BUCKETS)) {
        cbh_free(c);
        return NULL;
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        cbh_table_destroy(&c->table);
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
    c->clock = cbh_clock_or_default(clock);
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
    cbh_table_destroy(&c->table);
    cbh_free(c);
}

/* May e be used without contacting the origin, for rq at age (RFC 9111
 * 4.2, 5.2.1)? Fresh for every request directive, or stale within the
 * request's max-stale when e allows serving it stale. A 5xx only while
 * fresh. */
static bool cache_usable_now(const cache_entry *e, const cache_req *rq, uint64_t age)
{
    uint64_t life = e->fr.lifetime_ms;

    if (rq->revalidate || e->fr.no_cache || (rq->has_max_age && age > rq->max_age_ms))
        return false;
    if (age < life)
        return !rq->has_min_fresh || (life - age > rq->min_fresh_ms);
    return rq->has_max_stale && !e->fr.must_revalidate && e->status < 500 &&
           age - life <= rq->max_stale_ms;
}

cbh_cache_res cbh_cache_lookup(cbh_cache *c, const char *method, const char *url,
                               const char *const *req_headers, const api_cache_options *opts,
                               cbh_payload *out, cbh_cache_cond *cond)
{
    cbh_cache_res res = CBH_CACHE_MISS;
    cache_req     rq;
    cache_entry  *e;
    uint64_t      now, age;
    size_t        url_len;
    int           head;

    if (cond)
        cond->if_none_match[0] = cond->if_modified_since[0] = '\0';
    if (!c || !method || !url || !out || (opts && opts->bypass))
        return CBH_CACHE_MISS;
    head = cache_method(method);
    if (head < 0)
        return CBH_CACHE_MISS;
    cache_req_parse(req_headers, &rq);
    /* Preconditions only the origin can judge go there untouched. */
    if (rq.no_store || rq.origin_cond)
        return CBH_CACHE_MISS;
    if (opts && opts->revalidate)
        rq.revalidate = true;
    url_len = strlen(url);
    now = c->clock(c->clock_data);

    pthread_mutex_lock(&c->lock);
    e = cache_find(c, url, url_len, head, req_headers, NULL, true);
    /* A stored 5xx answers only while fresh; else the good one beside it. */
    if (e && e->status >= 500 && !cache_usable_now(e, &rq, cache_age(e, now)))
        e = cache_find(c, url, url_len, head, req_headers, NULL, false);
    if (!e)
        goto out;
    age = cache_age(e, now);
    if (cache_usable_now(e, &rq, age)) {
        /* Else out of memory, or several ranges: the request goes as it is. */
        if (cache_serve(e, head == 0, &rq, true, false, age, out) == CACHE_SERVED) {
            cache_lru_touch(c, e);
            res = CBH_CACHE_FRESH;
        }
        goto out;
    }
    /* Our validators would mix with the caller's own conditional: that
     * request goes as it is (a 304 to it still freshens e). */
    if (cond && !rq.inm && !rq.ims) {
        cache_cond_line(cond->if_none_match, sizeof(cond->if_none_match), "If-None-Match", e->etag);
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

bool cbh_cache_only_if_cached(const char *const *req_headers)
{
    cache_req rq;

    cache_req_parse(req_headers, &rq);
    return rq.only_if_cached;
}

/* Fields of a 304 (or HEAD) response that do not update the stored ones
 * (RFC 9111 3.2): those excluded from storage (3.1: hop-by-hop, named by
 * its Connection, listed by its no-cache="..."), Content-Length, and the
 * two whose stored body depends on them, Content-Encoding and
 * Content-Range. */
static bool cache_update_skip(const cache_strip *st, const char *name)
{
    return cache_strip_drop(name, (void *)st) || strcasecmp(name, "Content-Length") == 0 ||
           strcasecmp(name, "Content-Encoding") == 0 || strcasecmp(name, "Content-Range") == 0;
}

/* The stored headers with those the 304 carries replacing same-named ones:
 * kept stored fields in order, then the 304's (its Age included: the
 * caller computes freshness from the result, then strips it). */
static cb_err cache_merge(const cache_entry *e, const cbh_payload *r, api_header **out,
                          size_t *count, size_t *size)
{
    size_t      n = 0, i, j, total;
    cache_strip st;
    api_header *list;
    cb_err      err;

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
    cache_strip_init(&st, r->headers, r->header_count, true);
    for (i = 0; i < e->header_count; i++) {
        const char *name = e->headers[i].name;
        bool        replaced = false;

        for (j = 0; j < r->header_count && !replaced; j++)
            replaced = strcasecmp(r->headers[j].name, name) == 0 && !cache_update_skip(&st, name);
        if (!replaced)
            list[n++] = e->headers[i];
    }
    for (i = 0; i < r->header_count; i++)
        if (!cache_update_skip(&st, r->headers[i].name))
            list[n++] = r->headers[i];
    err = cbh_headers_build(list, n, out, size);
    cbh_free(list);
    if (err == CB_OK)
        *count = n; /* n == 0: *out is NULL */
    return err;
}

/* Gives e the headers of r (a 304, or a HEAD response that matches it)
 * merged into its own, and the freshness they imply from response_ms on.
 * False on OOM (e unchanged). Leaves e over its bounds or unstorable to
 * the caller (see cache_updated). */
static bool cache_update(cbh_cache *c, cache_entry *e, const cbh_payload *r, int64_t request_epoch,
                         int64_t response_epoch, uint64_t response_ms)
{
    api_header   *merged, *stripped;
    size_t        count, size, scount, ssize, rest;
    cache_strip   st;
    cbh_freshness fr;

    if (cache_merge(e, r, &merged, &count, &size) != CB_OK)
        return false;
    cbh_freshness_of(e->status, merged, count, request_epoch, response_epoch, c->heuristic, &fr);
    cache_strip_init(&st, merged, count, false);
    if (cbh_headers_edit(merged, count, cache_strip_drop, &st, NULL, 0, &stripped, &scount,
                         &ssize) != CB_OK) {
        cbh_free(merged);
        return false;
    }
    cbh_free(merged);
    /* Every part counted is a live allocation: the sum fits. */
    rest = e->bytes - e->headers_size;
    c->bytes -= e->bytes;
    e->bytes = rest + ssize;
    c->bytes += e->bytes;
    cbh_free(e->headers);
    e->headers = stripped;
    e->header_count = scount;
    e->headers_size = ssize;
    cache_entry_validators(e);
    e->fr = fr;
    e->stored_ms = response_ms;
    return true;
}

/* After cache_update: the refreshed headers may forbid storing (no-store)
 * or grow the entry past the per-entry cap; then it goes. */
static void cache_updated(cbh_cache *c, cache_entry *e)
{
    if (!e->fr.storable || e->bytes > c->max_entry_bytes)
        cache_remove(c, e);
    else
        cache_evict(c);
}

/* A 304: refresh the entry the request would have used, if the 304 is about
 * it, and hand its response to the caller in *p (*refreshed set), unless
 * the 304 answers the caller's own conditional (keep_304): then *p stays
 * the 304 the caller asked for. Without such an entry *p stays the 304. */
static cb_err cache_refresh(cbh_cache *c, const char *url, int head, const char *const *req,
                            const cbh_cache_cond *cond, cbh_payload *p, int64_t request_epoch,
                            int64_t response_epoch, uint64_t response_ms, bool *refreshed)
{
    cbh_payload  out = { 0 };
    cache_check  v;
    cache_req    rq;
    cache_entry *e;
    cb_err       err = CB_OK;
    bool         keep_304;

    cache_req_parse(req, &rq);
    keep_304 =
        (!cond || (!cond->if_none_match[0] && !cond->if_modified_since[0])) && (rq.inm || rq.ims);
    cache_check_init(&v, p, cond);
    pthread_mutex_lock(&c->lock);
    e = cache_find(c, url, strlen(url), head, req, &v, false);
    if (!e)
        goto out;
    if (!cache_update(c, e, p, request_epoch, response_epoch, response_ms)) {
        err = keep_304 ? CB_OK : CB_ERR_NOMEM;
        goto out;
    }
    cache_lru_touch(c, e);
    if (!keep_304 && cache_serve(e, head == 0, &rq, false, true, cache_age(e, response_ms), &out) !=
                         CACHE_SERVED)
        err = CB_ERR_NOMEM;
    cache_updated(c, e);
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
    size_t       i;

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
static cache_entry *cache_entry_new(cbh_cache *c, size_t url_len, int head, const cbh_payload *resp,
                                    const char *const *req, const cbh_freshness *fr,
                                    uint64_t response_ms)
{
    size_t       blen = head == 1 || !resp->body ? 0 : resp->body_len, bytes;
    cache_strip  st;
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
    cache_strip_init(&st, resp->headers, resp->header_count, false);
    if (cbh_headers_edit(resp->headers, resp->header_count, cache_strip_drop, &st, NULL, 0,
                         &e->headers, &e->header_count, &e->headers_size) != CB_OK ||
        !cache_vary_build_block(resp, req, c->max_entry_bytes, &e->vary, &e->vary_count,
                                &e->vary_size)) {
        cache_entry_free(e);
        return NULL;
    }
    cache_entry_validators(e);
    /* Body, headers and Vary block are allocated now, the URL is the
     * caller's: their sum fits. The Vary block may take it past the cap. */
    e->bytes = blen + e->headers_size + url_len + e->vary_size;
    if (e->bytes > c->max_entry_bytes) {
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

/* The stored response's Content-Length, as its header says or its body. */
static bool cache_same_length(const cache_entry *e, const char *cl)
{
    const char *stored = cbh_headers_get(e->headers, e->header_count, "Content-Length");
    char        buf[24];

    if (stored)
        return strcmp(stored, cl) == 0;
    snprintf(buf, sizeof(buf), "%zu", e->body_len);
    return strcmp(buf, cl) == 0;
}

/* A 200 to a HEAD (RFC 9111 4.3.5): each stored GET response the request
 * could have used is updated with its headers (3.2) when the validators it
 * carries match (and its Content-Length, if any), else treated as stale.
 * A validator the HEAD response lacks is not compared. */
static void cache_head_freshen(cbh_cache *c, cache_node *node, const char *const *req,
                               const cbh_payload *r, int64_t request_epoch, int64_t response_epoch,
                               uint64_t response_ms)
{
    const char  *etag = cbh_headers_get(r->headers, r->header_count, "ETag");
    const char  *lm = cbh_headers_get(r->headers, r->header_count, "Last-Modified");
    const char  *cl = cbh_headers_get(r->headers, r->header_count, "Content-Length");
    cache_entry *e = node->entries, *next;

    for (; e; e = next) {
        next = e->next;
        if (e->head || !cache_vary_match(e, req))
            continue;
        if (e->status == 200 && (!etag || (e->etag && strcmp(e->etag, etag) == 0)) &&
            (!lm || (e->last_modified && strcmp(e->last_modified, lm) == 0)) &&
            (!cl || cache_same_length(e, cl))) {
            /* Removing e may free node (with its last entry), so node is
             * not read again; nothing else is removed in the loop
             * (eviction waits), so next stays valid. */
            if (cache_update(c, e, r, request_epoch, response_epoch, response_ms) &&
                (!e->fr.storable || e->bytes > c->max_entry_bytes))
                cache_remove(c, e);
        } else {
            e->fr.lifetime_ms = 0;
        }
    }
    cache_evict(c);
}

cb_err cbh_cache_store(cbh_cache *c, const char *method, const char *url,
                       const char *const *req_headers, const cbh_cache_cond *cond, cbh_payload *p,
                       uint64_t request_ms, uint64_t response_ms, bool *refreshed)
{
    bool          ignored;
    cbh_freshness fr;
    cache_req     rq;
    cache_entry  *e;
    cache_node   *node;
    int64_t       response_epoch, request_epoch;
    size_t        url_len;
    int           head;

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
        return cache_refresh(c, url, head, req_headers, cond, p, request_epoch, response_epoch,
                             response_ms, refreshed);
    if (rq.no_store)
        return CB_OK;

    cbh_freshness_of(p->status, p->headers, p->header_count, request_epoch, response_epoch,
                     c->heuristic, &fr);
    /* A partial answer is kept only for the range it answers. */
    e = fr.storable && (!cache_status_partial(p->status) || rq.range)
            ? cache_entry_new(c, url_len, head, p, req_headers, &fr, response_ms)
            : NULL;

    pthread_mutex_lock(&c->lock);
    node = cache_node_find(c, url, url_len);
    if (node && head == 1 && p->status == 200)
        cache_head_freshen(c, node, req_headers, p, request_epoch, response_epoch, response_ms);
    node = cache_node_find(c, url, url_len); /* freshening may have emptied it */
    if (!e) {
        /* A new answer that is not stored still supersedes the old one, so
         * it is not served again; a 5xx is kept out of this so that the old
         * entry can stand in for the failing origin, and a partial answer
         * is only about its range. */
        if (node && p->status > 0 && p->status < 500 && !cache_status_partial(p->status))
            cache_drop_matching(c, node, head, req_headers, NULL, p->status);
        goto out;
    }
    if (!node) {
        node = cbh_calloc(1, sizeof(*node));
        if (node)
            node->url = cbh_strndup(url, url_len);
        if (!node || !node->url)
            goto oom;
        node->url_len = url_len;
        cbh_table_add(&c->table, &node->link, cbh_table_hash(url, url_len));
    }
    e->node = node;
    e->next = node->entries;
    node->entries = e;
    node->count++;
    cache_lru_push(c, e);
    c->entries++;
    c->bytes += e->bytes;
    c->stores++;
    cache_drop_matching(c, node, head, req_headers, e, p->status);
    if (node->count > CACHE_MAX_VARIANTS) {
        cache_entry *old = node->entries;

        while (old->next)
            old = old->next;
        cache_remove(c, old);
        c->evictions++;
    }
    cache_evict(c);
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
    cache_req    rq;
    uint64_t     now, age, over, allowed;
    bool         served = false;
    int          head;

    (void)cause;
    if (!c || !method || !url || !out || (opts && opts->bypass))
        return false;
    head = cache_method(method);
    if (head < 0)
        return false;
    now = c->clock(c->clock_data);

    cache_req_parse(req_headers, &rq);
    pthread_mutex_lock(&c->lock);
    /* Never a stored 5xx: the last good response beside it. */
    e = cache_find(c, url, strlen(url), head, req_headers, NULL, false);
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
    if (rq.has_max_stale && rq.max_stale_ms > allowed)
        allowed = rq.max_stale_ms;
    if (over <= allowed && cache_serve(e, head == 0, &rq, false, true, age, out) == CACHE_SERVED) {
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

/* The absolute form of reference ref against the absolute URL base (RFC
 * 3986 5.2, enough for what Location carries): absolute, network-path,
 * absolute-path or relative-path; the fragment dropped. NULL on OOM. */
static char *cache_url_join(const char *base, const char *ref)
{
    const char *scheme_end = strstr(base, "://"), *path, *cut;
    size_t      rlen = strcspn(ref, "#"), keep, n;
    char       *out;

    if (!scheme_end)
        return NULL;
    path = scheme_end + 3 + strcspn(scheme_end + 3, "/?");
    if (strncasecmp(ref, "http://", 7) == 0 || strncasecmp(ref, "https://", 8) == 0)
        keep = 0;
    else if (ref[0] == '/' && ref[1] == '/')
        keep = (size_t)(scheme_end - base) + 1;
    else if (ref[0] == '/')
        keep = (size_t)(path - base);
    else {
        /* Relative: the base's path up to its last '/'. */
        cut = path + strcspn(path, "?");
        while (cut > path && cut[-1] != '/')
            cut--;
        keep = cut > path ? (size_t)(cut - base) : (size_t)(path - base);
    }
    n = keep + rlen + 2;
    if (!(out = cbh_malloc(n)))
        return NULL;
    memcpy(out, base, keep);
    /* A base without a path gets one before a relative reference (an
     * absolute one, keep 0, never ends at path: "scheme://" precedes it). */
    if (keep == (size_t)(path - base) && ref[0] != '/')
        out[keep++] = '/';
    memcpy(out + keep, ref, rlen);
    out[keep + rlen] = '\0';
    return out;
}

void cbh_cache_invalidate_related(cbh_cache *c, const char *url, const api_header *h, size_t count)
{
    size_t i;

    if (!c || !url || !h)
        return;
    for (i = 0; i < count; i++) {
        char    err[8], *abs;
        cbh_url u;

        if (strcasecmp(h[i].name, "Location") != 0 &&
            strcasecmp(h[i].name, "Content-Location") != 0)
            continue;
        if (!(abs = cache_url_join(url, h[i].value)))
            continue;
        memset(&u, 0, sizeof(u));
        /* The canonical form is the one the cache is keyed by. */
        if (cbh_url_resolve(NULL, abs, &u, err, sizeof(err)) == CB_OK &&
            cbh_url_same_origin(url, u.url))
            cbh_cache_invalidate(c, u.url);
        cbh_url_release(&u);
        cbh_free(abs);
    }
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
