/* The intrusive hash table: adding, finding along chains, deleting from
 * any place in a chain, growth, and growth that runs out of memory. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

#include "helpers/failalloc.h"

typedef struct item {
    cbh_link link; /* first: an item is its link */
    unsigned key;
} item;

static item *find(cbh_table *t, unsigned key)
{
    uint64_t  h = cbh_table_hash(&key, sizeof(key));
    cbh_link *l;

    for (l = cbh_table_chain(t, h); l; l = l->next)
        if (l->hash == h && ((item *)l)->key == key)
            return (item *)l;
    return NULL;
}

static void add(cbh_table *t, item *it, unsigned key)
{
    it->key = key;
    cbh_table_add(t, &it->link, cbh_table_hash(&key, sizeof(key)));
}

/* The longest chain: growth keeps them short. */
static size_t longest_chain(const cbh_table *t)
{
    size_t i, most = 0;

    for (i = 0; i < t->nheads; i++) {
        size_t    n = 0;
        cbh_link *l;

        for (l = t->heads[i]; l; l = l->next)
            n++;
        if (n > most)
            most = n;
    }
    return most;
}

START_TEST(test_hash)
{
    const char *a = "http://example.com:80", *b = "http://example.com:81";

    ck_assert_uint_eq(cbh_table_hash(a, strlen(a)), cbh_table_hash(a, strlen(a)));
    ck_assert_uint_ne(cbh_table_hash(a, strlen(a)), cbh_table_hash(b, strlen(b)));
    /* The length counts: a prefix of zero bytes is another key. */
    ck_assert_uint_ne(cbh_table_hash("\0\0", 2), cbh_table_hash("\0", 1));
    ck_assert_uint_ne(cbh_table_hash("", 0), cbh_table_hash("\0", 1));
}
END_TEST

START_TEST(test_add_find_del_grow)
{
    enum { N = 5000 };
    cbh_table t;
    item     *items = calloc(N, sizeof(*items));
    unsigned  i;

    ck_assert_ptr_nonnull(items);
    ck_assert(cbh_table_init(&t, 4));
    for (i = 0; i < N; i++)
        add(&t, &items[i], i * 7919u);
    ck_assert_uint_eq(t.count, N);
    /* Doubled whenever it held more items than heads. */
    ck_assert_uint_ge(t.nheads, N);
    ck_assert_uint_lt(t.nheads, 2 * N);
    ck_assert_uint_le(longest_chain(&t), 12);
    for (i = 0; i < N; i++)
        ck_assert_ptr_eq(find(&t, i * 7919u), &items[i]);
    ck_assert_ptr_null(find(&t, 1));
    /* Every other item out, wherever it sits in its chain. */
    for (i = 0; i < N; i += 2)
        cbh_table_del(&t, &items[i].link);
    ck_assert_uint_eq(t.count, N / 2);
    for (i = 0; i < N; i++)
        ck_assert_ptr_eq(find(&t, i * 7919u), i % 2 ? &items[i] : NULL);
    cbh_table_destroy(&t);
    ck_assert_ptr_null(t.heads);
    ck_assert_uint_eq(t.count, 0);
    free(items);
}
END_TEST

/* Growth that cannot allocate leaves the chains longer; nothing is lost. */
START_TEST(test_grow_oom)
{
    enum { N = 64 };
    cbh_table t;
    item      items[N], extra;
    unsigned  i;

    tu_alloc_install();
    ck_assert(cbh_table_init(&t, 2));
    tu_alloc_fail_from(1);
    for (i = 0; i < N; i++)
        add(&t, &items[i], i);
    ck_assert(tu_alloc_disarm());
    ck_assert_uint_eq(t.nheads, 2);
    ck_assert_uint_eq(t.count, N);
    for (i = 0; i < N; i++)
        ck_assert_ptr_eq(find(&t, i), &items[i]);
    /* Memory back: the next add grows it again. */
    add(&t, &extra, 1000);
    ck_assert_uint_eq(t.nheads, 4);
    ck_assert_ptr_eq(find(&t, 1000), &extra);
    ck_assert_ptr_eq(find(&t, 63), &items[63]);
    cbh_table_destroy(&t);
    tu_alloc_fail_at(1);
    ck_assert(!cbh_table_init(&t, 8));
    ck_assert(tu_alloc_disarm());
    tu_alloc_uninstall();
}
END_TEST

int main(void)
{
    Suite   *s = suite_create("table");
    TCase   *tc = tcase_create("core");
    SRunner *sr;
    int      failed;

    tcase_add_test(tc, test_hash);
    tcase_add_test(tc, test_add_find_del_grow);
    tcase_add_test(tc, test_grow_oom);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
