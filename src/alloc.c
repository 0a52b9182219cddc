#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cbhttp.h"
#include "alloc.h"

/* Set once before use (documented), so plain reads are fine afterwards. */
static cb_allocator allocator = { malloc, calloc, realloc, free };

void *cbh_malloc(size_t size) { return allocator.malloc_fn(size ? size : 1); }

void *cbh_calloc(size_t n, size_t size)
{
    if (n == 0 || size == 0)
        n = size = 1;
    return allocator.calloc_fn(n, size);
}

void *cbh_realloc(void *ptr, size_t size) { return allocator.realloc_fn(ptr, size ? size : 1); }

void cbh_free(void *ptr)
{
    if (ptr)
        allocator.free_fn(ptr);
}

char *cbh_strndup(const char *s, size_t len)
{
    char *d;

    if (!s)
        return NULL;
    d = cbh_malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

char *cbh_strdup(const char *s) { return s ? cbh_strndup(s, strlen(s)) : NULL; }

/* cJSON's hooks take malloc/free only; it has no realloc hook when
 * malloc/free are replaced, which is what we want. */
static _Thread_local int cjson_oom;

static void *cjson_malloc(size_t size)
{
    void *p = cbh_malloc(size);

    if (!p)
        cjson_oom = 1;
    return p;
}

void        cbh_cjson_oom_reset(void) { cjson_oom = 0; }
int         cbh_cjson_oom(void) { return cjson_oom; }
static void cjson_free(void *ptr) { cbh_free(ptr); }

CB_EXPORT cb_err cb_set_allocator(const cb_allocator *a)
{
    static cb_allocator libc = { malloc, calloc, realloc, free };
    cJSON_Hooks         hooks = { cjson_malloc, cjson_free };

    if (a && (!a->malloc_fn || !a->calloc_fn || !a->realloc_fn || !a->free_fn))
        return CB_ERR_INVALID;
    allocator = a ? *a : libc;
    cJSON_InitHooks(&hooks);
    return CB_OK;
}

CB_EXPORT void cb_free(void *ptr) { cbh_free(ptr); }
