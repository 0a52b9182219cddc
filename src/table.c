/* The intrusive hash table (table.h). */
#include <string.h>

#include "alloc.h"
#include "table.h"

/* 8 bytes at a time, multiplied in and folded (the murmur finaliser's
 * constants): fast for URL-sized keys and well spread in the low bits the
 * chain index takes. */
uint64_t cbh_table_hash(const void *key, size_t n)
{
    const unsigned char *s = key;
    uint64_t             h = 0x9e3779b97f4a7c15ULL ^ n, w;

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

bool cbh_table_init(cbh_table *t, size_t nheads)
{
    t->heads = cbh_calloc(nheads, sizeof(*t->heads));
    t->nheads = nheads;
    t->count = 0;
    return t->heads != NULL;
}

void cbh_table_destroy(cbh_table *t)
{
    cbh_free(t->heads);
    t->heads = NULL;
    t->nheads = t->count = 0;
}

/* Doubles the heads, moving every object to its new chain. (nheads is
 * below the object count, and every object is larger than two heads: the
 * doubled size cannot overflow.) */
static void table_grow(cbh_table *t)
{
    size_t     n = t->nheads * 2, i;
    cbh_link **heads = cbh_calloc(n, sizeof(*heads));

    if (!heads)
        return;
    for (i = 0; i < t->nheads; i++) {
        cbh_link *l = t->heads[i], *next;

        for (; l; l = next) {
            next = l->next;
            l->next = heads[l->hash & (n - 1)];
            heads[l->hash & (n - 1)] = l;
        }
    }
    cbh_free(t->heads);
    t->heads = heads;
    t->nheads = n;
}

void cbh_table_add(cbh_table *t, cbh_link *l, uint64_t hash)
{
    cbh_link **head = &t->heads[hash & (t->nheads - 1)];

    l->hash = hash;
    l->next = *head;
    *head = l;
    if (++t->count > t->nheads)
        table_grow(t);
}

void cbh_table_del(cbh_table *t, cbh_link *l)
{
    cbh_link **pp = &t->heads[l->hash & (t->nheads - 1)];

    while (*pp != l)
        pp = &(*pp)->next;
    *pp = l->next;
    t->count--;
}
