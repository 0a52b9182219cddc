/* An intrusive chained hash table: the objects carry the links, the table
 * only an array of chain heads, a power of two long, doubled when it holds
 * more objects than heads (so chains stay about one long). Finding,
 * comparing keys and iterating are the caller's, on the chains; the
 * table is not thread-safe (its owner's lock guards it).
 *
 * Why not uthash: its handle costs 56 bytes an object, and it lets chains
 * grow to ten before expanding, walking them costing more than the rest
 * of a lookup. A link here is 16 bytes. */
#ifndef CBH_TABLE_H
#define CBH_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cbh_link {
    struct cbh_link *next; /* the next object in the same chain */
    uint64_t         hash;
} cbh_link;

typedef struct cbh_table {
    cbh_link **heads;
    size_t     nheads; /* a power of two */
    size_t     count;
} cbh_table;

/* A 64-bit hash of n bytes, for keys. */
uint64_t cbh_table_hash(const void *key, size_t n);

/* An empty table of nheads (a power of two) chains; false when out of
 * memory. */
bool cbh_table_init(cbh_table *t, size_t nheads);

/* Frees the chain heads, not the objects. */
void cbh_table_destroy(cbh_table *t);

/* The chain where objects of this hash are (compare l->hash first). */
static inline cbh_link *cbh_table_chain(const cbh_table *t, uint64_t hash)
{
    return t->heads[hash & (t->nheads - 1)];
}

/* Adds l with its hash, then doubles the heads when there are more objects
 * than heads; when that cannot be allocated the chains only get longer. */
void cbh_table_add(cbh_table *t, cbh_link *l, uint64_t hash);

/* Takes l (in the table) out. */
void cbh_table_del(cbh_table *t, cbh_link *l);

#endif
