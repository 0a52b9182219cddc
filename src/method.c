/* HTTP methods and their classes: the table is in method.h. */
#include <string.h>

#include "method.h"

typedef struct method_info {
    const char *name;
    bool        safe, idempotent, cacheable, body;
} method_info;

/* Indexed by cbh_method; CBH_METHOD_OTHER is none of the classes. */
#define METHOD_ROW_(name, safe, idem, cache, body) { #name, safe, idem, cache, body },
static const method_info methods[] = { { NULL, false, false, false, false },
                                       CBH_METHODS(METHOD_ROW_) };
#undef METHOD_ROW_

cbh_method cbh_method_of(const char *m)
{
    size_t i;

    if (!m)
        return CBH_METHOD_OTHER;
    for (i = 1; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(m, methods[i].name) == 0)
            return (cbh_method)i;
    return CBH_METHOD_OTHER;
}

bool cbh_method_is_safe(const char *m) { return methods[cbh_method_of(m)].safe; }

bool cbh_method_is_idempotent(const char *m) { return methods[cbh_method_of(m)].idempotent; }

bool cbh_method_is_cacheable(const char *m) { return methods[cbh_method_of(m)].cacheable; }

bool cbh_method_has_body(const char *m) { return methods[cbh_method_of(m)].body; }
