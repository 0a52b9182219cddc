/* The one place every allocation of the library goes through, so that an
 * allocator hook and allocation-failure tests are possible. */
#ifndef CBH_ALLOC_H
#define CBH_ALLOC_H

#include <stddef.h>

void *cbh_malloc(size_t size);
void *cbh_calloc(size_t n, size_t size);
void *cbh_realloc(void *ptr, size_t size);
void  cbh_free(void *ptr);
char *cbh_strdup(const char *s);              /* NULL for NULL or OOM */
char *cbh_strndup(const char *s, size_t len); /* copies len bytes, adds NUL */

/* cJSON reports running out of memory as a parse failure. Its allocation
 * hook notes a failure here, per thread, so that a caller can tell the two
 * apart: reset before cJSON_Parse*, ask after it returned NULL. */
void cbh_cjson_oom_reset(void);
int  cbh_cjson_oom(void);

#endif
